//! inotify watches (whom each one serves), the pipes of journalctl children, and reading
//! the streams' files and journals each turn.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Child;

use inotify::{EventMask, WatchDescriptor, WatchMask, Watches};
use mio::unix::pipe::Receiver;
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::conn::ConnState;
use super::{MAX_PIPES, PIPE_BASE, RELOAD_SETTLE_MS, Reactor, Timer};
use crate::entry::Stamp;
use crate::journal::{PipeOf, Pipes};
use crate::stream::StreamId;
use crate::tail::{Change, WatchOwner, Watcher};

/// inotify reads (of 8 KiB, a few hundred events each) per reactor turn.
const INOTIFY_READS_PER_TURN: usize = 16;
/// The largest inotify event: its 16-byte header and a name of NAME_MAX bytes, with its
/// NUL, padded to 16.
const MAX_INOTIFY_EVENT: usize = 16 + 256;

/// Who an inotify watch serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Stream {
        stream: StreamId,
        what: WatchOwner,
    },
    /// The directory of the config file (`config_auto_reload`).
    Config,
}

const DIR_MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MODIFY)
    .union(WatchMask::ATTRIB)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF)
    .union(WatchMask::ONLYDIR);
const FILE_MASK: WatchMask = WatchMask::MODIFY
    .union(WatchMask::ATTRIB)
    .union(WatchMask::DELETE_SELF);
/// A config file is replaced (editors, `mv`) or rewritten in place.
const CONFIG_MASK: WatchMask = WatchMask::CLOSE_WRITE
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::CREATE)
    .union(WatchMask::ONLYDIR);

/// The inotify watches of every stream, and whom each one serves (several streams, or
/// several targets of one, may watch one directory).
pub(super) struct WatchTable {
    pub watches: Watches,
    pub owners: HashMap<WatchDescriptor, Vec<Owner>>,
    by_token: HashMap<u64, WatchDescriptor>,
}

impl WatchTable {
    pub fn new(watches: Watches) -> WatchTable {
        WatchTable {
            watches,
            owners: HashMap::new(),
            by_token: HashMap::new(),
        }
    }

    pub fn add(&mut self, path: &Path, mask: WatchMask, owner: Owner) -> io::Result<u64> {
        let wd = self.watches.add(path, mask)?;
        let token = wd.get_watch_descriptor_id() as u64;
        let owners = self.owners.entry(wd.clone()).or_default();
        if !owners.contains(&owner) {
            owners.push(owner);
        }
        self.by_token.insert(token, wd);
        Ok(token)
    }

    pub fn remove(&mut self, token: u64, owner: Owner) {
        let Some(wd) = self.by_token.get(&token).cloned() else {
            return;
        };
        let Some(owners) = self.owners.get_mut(&wd) else {
            return;
        };
        owners.retain(|o| *o != owner);
        if owners.is_empty() {
            self.owners.remove(&wd);
            self.by_token.remove(&token);
            let _ = self.watches.remove(wd);
        }
    }

    /// Every watch a stream holds goes (the stream was removed).
    pub fn remove_stream(&mut self, stream: StreamId) {
        let tokens: Vec<(u64, Owner)> = self
            .by_token
            .iter()
            .flat_map(|(&token, wd)| {
                self.owners
                    .get(wd)
                    .into_iter()
                    .flatten()
                    .filter(|o| matches!(o, Owner::Stream { stream: s, .. } if *s == stream))
                    .map(move |&o| (token, o))
            })
            .collect();
        for (token, owner) in tokens {
            self.remove(token, owner);
        }
    }

    /// The kernel dropped the watch (its directory or file is gone): forget it.
    pub fn forget(&mut self, wd: &WatchDescriptor) -> Vec<Owner> {
        self.by_token.remove(&(wd.get_watch_descriptor_id() as u64));
        self.owners.remove(wd).unwrap_or_default()
    }
}

/// Adds and removes watches on behalf of one stream's tailer.
pub(super) struct StreamWatcher<'a> {
    pub table: &'a mut WatchTable,
    pub stream: StreamId,
}

impl Watcher for StreamWatcher<'_> {
    fn watch_dir(&mut self, dir: &Path, target: usize) -> io::Result<u64> {
        let owner = Owner::Stream {
            stream: self.stream,
            what: WatchOwner::Dir(target),
        };
        self.table.add(dir, DIR_MASK, owner)
    }

    fn watch_file(&mut self, file: &File, source: usize) -> io::Result<u64> {
        // A watch on a file follows its inode wherever it is renamed; the path through
        // our own descriptor reaches that inode whatever name it has now.
        let path = format!("/proc/self/fd/{}", file.as_raw_fd());
        let owner = Owner::Stream {
            stream: self.stream,
            what: WatchOwner::File(source),
        };
        self.table.add(Path::new(&path), FILE_MASK, owner)
    }

    fn unwatch(&mut self, token: u64, owner: WatchOwner) {
        let owner = Owner::Stream {
            stream: self.stream,
            what: owner,
        };
        self.table.remove(token, owner);
    }
}

/// Whom a child's pipe serves.
#[derive(Debug, Clone, Copy)]
struct PipeOwner {
    stream: StreamId,
    of: PipeOf,
    stderr: bool,
}

/// The pipes of every journalctl child, and the children that ended but are not reaped.
#[derive(Debug, Default)]
pub(super) struct PipeTable {
    owners: Slab<PipeOwner>,
    /// Each with whether it was sent SIGKILL already.
    zombies: Vec<(Child, bool)>,
    pub reap_armed: bool,
}

impl PipeTable {
    pub fn has_zombies(&self) -> bool {
        !self.zombies.is_empty()
    }

    /// Reaps the children that exited; those still running are killed (at once when
    /// logwisp is leaving: `last`, and then nobody waits for them).
    pub fn reap(&mut self, last: bool) {
        self.zombies.retain_mut(|(child, killed)| {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if !*killed {
                let _ = child.kill();
                *killed = true;
                return !last || !matches!(child.try_wait(), Ok(Some(_)));
            }
            !last
        });
    }
}

/// Registers children's pipes on behalf of one stream.
pub(super) struct StreamPipes<'a> {
    pub registry: &'a Registry,
    pub table: &'a mut PipeTable,
    pub stream: StreamId,
}

impl Pipes for StreamPipes<'_> {
    fn register(&mut self, pipe: &mut Receiver, of: PipeOf, stderr: bool) -> io::Result<usize> {
        if self.table.owners.len() >= MAX_PIPES {
            return Err(io::Error::other("too many journalctl pipes"));
        }
        let key = self.table.owners.insert(PipeOwner {
            stream: self.stream,
            of,
            stderr,
        });
        match self
            .registry
            .register(pipe, Token(PIPE_BASE - key), Interest::READABLE)
        {
            Ok(()) => Ok(key),
            Err(e) => {
                self.table.owners.remove(key);
                Err(e)
            }
        }
    }

    fn deregister(&mut self, pipe: &mut Receiver, key: usize) {
        let _ = self.registry.deregister(pipe);
        self.table.owners.try_remove(key);
    }

    fn reap_later(&mut self, child: Child) {
        self.table.zombies.push((child, false));
    }
}

impl Reactor {
    /// A journalctl pipe is readable (or closed): its owner reads it when it next reads.
    pub(super) fn handle_pipe(&mut self, key: usize) {
        let Some(&owner) = self.pipes.owners.get(key) else {
            return;
        };
        let Some(stream) = self.stream_mut(owner.stream) else {
            return;
        };
        match owner.of {
            PipeOf::Target(t) => {
                stream.journals.on_pipe(t, owner.stderr);
                stream.read_pending = true;
            }
            PipeOf::Replay(job) => {
                // Its client takes the entries when it is driven.
                if let Some(client) = stream.journals.replays.on_pipe(job, owner.stderr) {
                    self.ready.push(client);
                }
            }
        }
    }

    /// Clients that waited for a free replay child are driven again.
    pub(super) fn wake_replay_waiters(&mut self) {
        for (_, s) in &mut self.streams {
            self.ready.extend(s.journals.replays.take_woken());
        }
    }

    /// Ends a stream's journalctl children (the stream goes, or logwisp stops).
    pub(super) fn stop_journals(&mut self, index: usize) {
        let Some(stream) = self.streams.get_mut(index) else {
            return;
        };
        let mut pipes = StreamPipes {
            registry: self.poll.registry(),
            table: &mut self.pipes,
            stream: stream.id,
        };
        stream.journals.stop(&mut pipes);
        // Clients that were reading the journal again go on from history (or learn
        // what is lost) when driven.
        self.ready.extend(stream.journals.replays.take_woken());
    }

    /// Watches the config file's directory, so a change to the file reloads it.
    pub(super) fn watch_config(&mut self) {
        let want = self.config.config_auto_reload;
        match (want, self.config_watch, self.source.path()) {
            (true, None, Some(path)) => {
                let dir = path
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                match self.watch_table.add(dir, CONFIG_MASK, Owner::Config) {
                    Ok(token) => self.config_watch = Some(token),
                    Err(e) => crate::log::warn(
                        "",
                        &format!(
                            "cannot watch {} for config changes: {e}; SIGHUP still reloads",
                            dir.display()
                        ),
                    ),
                }
            }
            (false, Some(token), _) => {
                self.watch_table.remove(token, Owner::Config);
                self.config_watch = None;
            }
            _ => {}
        }
    }

    fn config_changed(&mut self, name: Option<&std::ffi::OsStr>) {
        let Some(path) = self.source.path() else {
            return;
        };
        if name.is_none() || name != path.file_name() {
            return;
        }
        if let Some(t) = self.reload_armed.take() {
            self.timers.cancel(t);
        }
        self.reload_armed = Some(self.arm(RELOAD_SETTLE_MS, Timer::Reload));
    }

    fn rescan_everything(&mut self) {
        for (_, s) in &mut self.streams {
            s.monitor.rescan_all();
            s.read_pending = true;
        }
    }

    pub(super) fn handle_inotify(&mut self, now: u64) {
        let mut buf = [0u8; 8192];
        self.inotify_pending = false;
        for _ in 0..INOTIFY_READS_PER_TURN {
            let events = match self.inotify.read_events(&mut buf) {
                Ok(events) => events,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    crate::log::warn(
                        "",
                        &format!("inotify read failed: {e}; looking at everything again"),
                    );
                    self.rescan_everything();
                    return;
                }
            };
            let mut count = 0;
            for event in events {
                count += 1;
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    self.counters.inotify_overflows += 1;
                    self.rescan_everything();
                    continue;
                }
                if event.mask.contains(EventMask::IGNORED) {
                    for o in self.watch_table.forget(&event.wd) {
                        match o {
                            Owner::Stream { stream, what } => {
                                if let Some(s) = self.stream_mut(stream) {
                                    match what {
                                        WatchOwner::Dir(t) => s.monitor.dir_unwatched(t),
                                        WatchOwner::File(k) => s.monitor.file_watch_gone(k),
                                    }
                                    s.read_pending = true;
                                }
                            }
                            Owner::Config => self.config_watch = None,
                        }
                    }
                    continue;
                }
                let Some(owners) = self.watch_table.owners.get(&event.wd).cloned() else {
                    continue;
                };
                let dir_moved = event.mask.contains(EventMask::MOVE_SELF)
                    && owners.iter().any(|o| {
                        matches!(
                            o,
                            Owner::Stream {
                                what: WatchOwner::Dir(_),
                                ..
                            }
                        )
                    });
                if dir_moved {
                    // The watch follows the moved directory; the path is what we want.
                    let owners = self.watch_table.forget(&event.wd);
                    let _ = self.watch_table.watches.remove(event.wd.clone());
                    for o in owners {
                        if let Owner::Stream {
                            stream,
                            what: WatchOwner::Dir(t),
                        } = o
                            && let Some(s) = self.stream_mut(stream)
                        {
                            s.monitor.dir_unwatched(t);
                            s.read_pending = true;
                        }
                    }
                    continue;
                }
                let change = if event.mask == EventMask::MODIFY {
                    Change::Written
                } else {
                    Change::Touched
                };
                for o in owners {
                    let (stream, what) = match o {
                        Owner::Config => {
                            self.config_changed(event.name);
                            continue;
                        }
                        Owner::Stream { stream, what } => (stream, what),
                    };
                    let Some(s) = self.stream_mut(stream) else {
                        continue;
                    };
                    match (what, event.name) {
                        (WatchOwner::Dir(t), Some(name)) => {
                            s.monitor.on_dir_event(t, name, change, now)
                        }
                        (WatchOwner::Dir(t), None)
                            if event.mask.contains(EventMask::DELETE_SELF) =>
                        {
                            s.monitor.dir_unwatched(t)
                        }
                        (WatchOwner::File(k), _) => s.monitor.on_file_event(k),
                        _ => continue,
                    }
                    s.read_pending = true;
                }
            }
            // A read takes every queued event that fits; with room left for one more of
            // the largest size the queue was empty, and a later event wakes epoll anew
            // (saves the read that would only say EAGAIN, one syscall per turn).
            if (count + 1) * MAX_INOTIFY_EVENT <= buf.len() {
                return;
            }
        }
        // More may be waiting: the next turn reads on, after everything else had its go
        // (a directory written to without pause must not starve clients or signals).
        self.inotify_pending = true;
    }

    /// The next entry of a stream's most advanced client in the shared buffer: reading
    /// may run ahead of it by what the buffer holds, no further.
    fn lead(&self, stream: &crate::stream::Stream) -> Option<u64> {
        stream
            .clients
            .iter()
            .filter_map(|&key| match self.conns.get(key).map(|c| &c.state) {
                Some(ConnState::Stream(client)) => client.sub.live_seq(),
                _ => None,
            })
            .max()
    }

    pub(super) fn read_files(&mut self, now: u64) {
        let stamp = Stamp::now();
        let ids: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.read_pending && !s.removing)
            .map(|(_, s)| s.id)
            .collect();
        for id in ids {
            let lead = self.lead(&self.streams[id.index]);
            let mut watcher = StreamWatcher {
                table: &mut self.watch_table,
                stream: id,
            };
            let mut pipes = StreamPipes {
                registry: self.poll.registry(),
                table: &mut self.pipes,
                stream: id,
            };
            let stream = &mut self.streams[id.index];
            if stream.read(
                &mut watcher,
                &mut pipes,
                now,
                &mut self.file_buf,
                stamp,
                lead,
            ) {
                stream.fresh = true;
            }
            self.plan_wake(id);
        }
    }
}
