//! Streaming clients: sending what each is owed, from the shared buffer or rendered from
//! disk, heartbeats, half-closed peers, goodbyes.

use std::net::IpAddr;

use super::conn::{self, Conn, ConnState, Finish, StreamClient};
use super::files::StreamPipes;
use super::{DISCARD_BUDGET, PROBE_MS, Reactor, Timer, WRITE_BUDGET};
use crate::fanout::{Flush, Framing};
use crate::stream::{CatchUp, ServerKind, Stream, StreamId};

/// What to do with a streaming client after a write attempt.
enum ClientWrite {
    /// Wait for the socket to become writable (or for new entries).
    Wait,
    /// Budget used up with more to send: go again next turn.
    Again,
    Close,
}

impl Reactor {
    pub(super) fn flush_fresh_streams(&mut self, now: u64) {
        let fresh: Vec<StreamId> = self
            .streams
            .iter()
            .filter(|(_, s)| s.fresh)
            .map(|(_, s)| s.id)
            .collect();
        for id in fresh {
            self.streams[id.index].fresh = false;
            self.flush_stream(id, now);
        }
    }

    /// Sends new entries to every client of a stream: moves clients about to lose their
    /// place in the buffer to disk, writes to those that can take it, then evicts.
    fn flush_stream(&mut self, id: StreamId, now: u64) {
        let planned_base = self.streams[id.index].ring.planned_base();
        let keys = std::mem::take(&mut self.streams[id.index].clients);
        let mut to_close = Vec::new();
        let mut catch_up = CatchUp::default();
        for &key in &keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let ConnState::Stream(client) = &mut conn.state else {
                continue;
            };
            let stream = &mut self.streams[id.index];
            client.sub.fall_behind(&stream.ring, planned_base);
            if conn.writable {
                let mut pipes = StreamPipes {
                    registry: self.poll.registry(),
                    table: &mut self.pipes,
                    stream: id,
                };
                match write_client(
                    (key, conn),
                    stream,
                    self.unix_secs,
                    self.started_unix_secs,
                    &mut self.file_buf,
                    &mut pipes,
                ) {
                    ClientWrite::Wait => {}
                    ClientWrite::Again => self.ready.push((key, conn.generation)),
                    ClientWrite::Close => to_close.push(key),
                }
            }
            // Writing may have served it from disk up into the part about to be evicted
            // (it rejoined there): out again before the eviction, a half-sent frame kept
            // whole, or its rest would be gone with the buffer.
            if let ConnState::Stream(client) = &mut conn.state {
                client.sub.fall_behind(&stream.ring, planned_base);
            }
            if let ConnState::Stream(client) = &conn.state
                && client.sub.on_disk()
            {
                catch_up.clients += 1;
                let lag = stream.ring.next_seq().saturating_sub(client.sub.next_seq());
                catch_up.max_lag = catch_up.max_lag.max(lag);
            }
        }
        let stream = &mut self.streams[id.index];
        stream.clients = keys;
        stream.catch_up = catch_up;
        // Sinks publish what is new, then those about to lose their place go to disk.
        #[cfg(feature = "forward")]
        {
            self.drive_stream_sinks(id);
            self.sinks_fall_behind(id, planned_base);
        }
        let stream = &mut self.streams[id.index];
        stream.ring.evict_excess();
        #[cfg(feature = "forward")]
        {
            let base = stream.ring.base_seq();
            stream.origins.evict_below(base);
        }
        for key in to_close {
            self.close(key, now);
        }
    }

    pub(super) fn heartbeat(&mut self, id: StreamId, kind: ServerKind, now: u64) {
        let Some(stream) = self.stream(id) else {
            return;
        };
        for key in stream.clients.clone() {
            if let Some(conn) = self.conns.get_mut(key)
                && let ConnState::Stream(client) = &mut conn.state
                && client.kind == kind
            {
                client.sub.request_heartbeat();
                if conn.writable {
                    self.write_stream_client(key, now);
                }
            }
        }
    }

    pub(super) fn drive_stream_client(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.broken {
            self.close(key, now);
            return;
        }
        if conn.readable && !conn.read_closed {
            // Whatever a streaming client sends is read and discarded (a WebSocket
            // client's frames are read for what they ask: a pong, a close).
            let mut taken = 0;
            loop {
                match conn::read_some(&mut conn.transport, &mut self.scratch) {
                    Ok((conn::Io::Done, n)) => {
                        #[cfg(feature = "websocket")]
                        if let ConnState::Stream(client) = &mut conn.state {
                            websocket_input(client, &self.scratch[..n]);
                        }
                        taken += n;
                        if taken >= DISCARD_BUDGET {
                            self.ready.push((key, conn.generation));
                            break;
                        }
                    }
                    Ok((conn::Io::WouldBlock, _)) => {
                        conn.readable = false;
                        break;
                    }
                    // A client that shuts down its sending side still reads the stream:
                    // only a failed write or a reset ends it.
                    Ok((conn::Io::Eof, _)) => {
                        conn.read_closed = true;
                        conn.readable = false;
                        conn::probe_peer(&mut conn.transport);
                        let generation = conn.generation;
                        let t = self.arm(PROBE_MS, Timer::Probe { key, generation });
                        self.conns[key].timer = Some(t);
                        break;
                    }
                    Err(_) => {
                        self.close(key, now);
                        return;
                    }
                }
            }
        }
        if let Some(c) = self.conns.get_mut(key)
            && !c.read_closed
            && !c.transport.handshaking()
            && let Some(t) = c.timer.take()
        {
            // A TLS client's handshake is done: its deadline goes.
            self.timers.cancel(t);
        }
        if self.conns.get(key).is_some_and(|c| c.writable) {
            self.write_stream_client(key, now);
        }
    }

    /// A half-closed client that closed for good since sends nothing more (its FIN is
    /// already in): only a probe tells it is gone.
    pub(super) fn probe(&mut self, key: usize, generation: u64) {
        if let Some(c) = self.conns.get_mut(key)
            && c.generation == generation
        {
            conn::probe_peer(&mut c.transport);
            let t = self.arm(PROBE_MS, Timer::Probe { key, generation });
            self.conns[key].timer = Some(t);
        }
    }

    pub(super) fn write_stream_client(&mut self, key: usize, now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let ConnState::Stream(client) = &conn.state else {
            return;
        };
        let Some(stream) = self
            .streams
            .get_mut(client.stream.index)
            .filter(|s| s.id == client.stream)
        else {
            return;
        };
        let mut pipes = StreamPipes {
            registry: self.poll.registry(),
            table: &mut self.pipes,
            stream: stream.id,
        };
        match write_client(
            (key, conn),
            stream,
            self.unix_secs,
            self.started_unix_secs,
            &mut self.file_buf,
            &mut pipes,
        ) {
            ClientWrite::Wait => {}
            ClientWrite::Again => self.ready.push((key, conn.generation)),
            ClientWrite::Close => self.close(key, now),
        }
    }

    /// Sends a streaming client what it is owed, then `goodbye` (SSE) and a close.
    pub(super) fn say_goodbye(&mut self, key: usize, goodbye: &'static [u8], now: u64) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let ConnState::Stream(client) = &mut conn.state else {
            return;
        };
        client.finish = Finish::Draining(goodbye);
        if conn.writable {
            self.write_stream_client(key, now);
        }
    }

    /// Releases a closed streaming client's place in its stream and limits.
    pub(super) fn forget_client(
        &mut self,
        (key, generation): (usize, u64),
        client: &StreamClient,
        peer: IpAddr,
        now: u64,
    ) {
        let Some(stream) = self
            .streams
            .get_mut(client.stream.index)
            .filter(|s| s.id == client.stream)
        else {
            return;
        };
        stream.unsubscribe(&client.sub);
        if !stream.journals.replays.is_empty() {
            let mut pipes = StreamPipes {
                registry: self.poll.registry(),
                table: &mut self.pipes,
                stream: stream.id,
            };
            let id = (key, generation);
            stream.journals.replays.cancel(id, &mut pipes);
        }
        // A client that was the most advanced one may have held reading back.
        stream.paced = false;
        let idx = client.index;
        if idx < stream.clients.len() && stream.clients[idx] == key {
            stream.clients.swap_remove(idx);
            if let Some(&moved) = stream.clients.get(idx)
                && let Some(ConnState::Stream(m)) = self.conns.get_mut(moved).map(|c| &mut c.state)
            {
                m.index = idx;
            }
        }
        let Some(stream) = self.stream_mut(client.stream) else {
            return;
        };
        if let Some(server) = stream.server_mut(client.kind) {
            server.active_clients = server.active_clients.saturating_sub(1);
            if client.counted
                && let Some(l) = server.limiter.as_mut()
            {
                l.close_connection(peer, now);
            }
        }
        if stream.removing && stream.clients.is_empty() {
            self.reap_stream(client.stream, false);
        }
    }
}

/// Feeds a WebSocket client's bytes to its decoder: pings are answered, a close (or a
/// protocol error) is answered with a close, after which the connection ends.
#[cfg(feature = "websocket")]
fn websocket_input(client: &mut StreamClient, mut input: &[u8]) {
    let Some(decoder) = client.ws.as_mut() else {
        return;
    };
    while !input.is_empty() {
        let (used, event) = decoder.feed(input);
        input = &input[used..];
        let Some(event) = event else { continue };
        let mut answer = Vec::new();
        let close_sent = client.finish == Finish::Closing;
        let next = event.respond(&mut answer, close_sent);
        client.sub.queue_control(&answer);
        if matches!(next, crate::ws::Next::Close) {
            client.finish = Finish::Closing;
            client.sub.end_body();
        }
    }
}

/// Sends a streaming client what it is owed (rendering it from disk when it is behind the
/// buffer); handles the goodbye.
fn write_client(
    (key, conn): (usize, &mut Conn),
    stream: &mut Stream,
    unix_secs: i64,
    started: i64,
    scratch: &mut [u8],
    pipes: &mut StreamPipes,
) -> ClientWrite {
    let id = (key, conn.generation);
    let ConnState::Stream(client) = &mut conn.state else {
        return ClientWrite::Wait;
    };
    let client: &mut StreamClient = client;
    let mut budget = WRITE_BUDGET;
    loop {
        let renderer = stream.renderer(
            client.kind,
            client.framing,
            unix_secs,
            (unix_secs - started).max(0) as u64,
        );
        let before = client.sub.bytes_sent;
        let seq_before = client.sub.next_seq();
        let result = client
            .sub
            .flush(&stream.ring, &renderer, &mut conn.transport, budget);
        let sent = client.sub.bytes_sent - before;
        stream.bytes_sent += sent;
        if let Some(server) = stream.server_mut(client.kind) {
            server.bytes_sent += sent;
            server.lines_sent += client.sub.next_seq().saturating_sub(seq_before);
        }
        budget = budget.saturating_sub(sent as usize);
        if sent > 0 {
            // Reading may have waited for this client to take entries.
            stream.paced = false;
        }
        match result {
            Err(_) => return ClientWrite::Close,
            Ok(Flush::Blocked) => {
                conn.writable = false;
                return ClientWrite::Wait;
            }
            Ok(Flush::Budget) => return ClientWrite::Again,
            Ok(Flush::Refill) => {
                if budget == 0 {
                    return ClientWrite::Again;
                }
                let (seq, pending) = (client.sub.next_seq(), client.sub.pending_bytes());
                stream.refill(&mut client.sub, scratch, id, pipes);
                // Entries rendered from disk count as sent once they are in its buffer.
                if let Some(server) = stream.server_mut(client.kind) {
                    server.lines_sent += client.sub.next_seq().saturating_sub(seq);
                }
                let moved = client.sub.next_seq() != seq
                    || client.sub.pending_bytes() != pending
                    || !client.sub.on_disk();
                if !moved {
                    return ClientWrite::Wait;
                }
            }
            Ok(Flush::Drained) => {
                // What the transport itself holds (TLS records) goes before "drained".
                match conn.transport.push_pending() {
                    Ok(conn::Io::WouldBlock) => {
                        conn.writable = false;
                        return ClientWrite::Wait;
                    }
                    Ok(_) => {}
                    Err(_) => return ClientWrite::Close,
                }
                match client.finish {
                    Finish::Streaming => return ClientWrite::Wait,
                    Finish::Draining(goodbye) => {
                        client.finish = Finish::Closing;
                        match client.framing {
                            Framing::Sse => client.sub.queue_control(goodbye),
                            Framing::Ws => {
                                #[cfg(feature = "websocket")]
                                {
                                    let mut close = Vec::new();
                                    crate::ws::write_close(
                                        &mut close,
                                        Some(crate::ws::CLOSE_GOING_AWAY),
                                        if goodbye == crate::sse::DISCONNECT {
                                            "server shutdown"
                                        } else {
                                            "stream removed"
                                        },
                                    );
                                    client.sub.queue_control(&close);
                                }
                            }
                            Framing::Lines => {}
                        }
                        client.sub.end_body();
                    }
                    Finish::Closing => {
                        conn.transport.shutdown_write();
                        return ClientWrite::Close;
                    }
                }
            }
        }
    }
}
