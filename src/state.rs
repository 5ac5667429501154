//! What survives a restart (SPEC §11): per stream, where each file was read to and which
//! ids were handed out, in one small JSON file per stream under `state_dir`. Written
//! atomically (a temporary file renamed over the old one), at most about once a second
//! and at shutdown, and only when something moved: an edge box's flash is not worn.
//!
//! Ids: each save records a ceiling no id of this run reaches before the next save, so
//! a restart (even after a crash) starts above every id it ever sent.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::journal::SavedCursor;
use crate::tail::{Checkpoint, FINGERPRINT_BYTES, Resume, source::Fingerprint};

/// Ids reserved ahead of each save, so a crash between saves cannot reuse one.
pub const ID_RESERVE: u64 = 1 << 32;
const VERSION: u64 = 1;

/// One stream's saved state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamState {
    /// First id of the run that saved it.
    pub first_id: u64,
    /// Last id whose entry lies before the checkpoints (0: none yet).
    pub last_id: u64,
    /// No id of the saving run reached this.
    pub id_ceiling: u64,
    /// Unix seconds of the save.
    pub saved_at: i64,
    pub checkpoints: Vec<Checkpoint>,
    /// Where each journal target was (SPEC §17); files written before journals were
    /// read have none.
    pub journals: Vec<SavedCursor>,
    /// Sinks (SPEC §16) with entries the broker had not confirmed; files written before
    /// forwarding have none.
    pub sinks: Vec<SavedSink>,
}

/// A sink's cursor: per file (identity), the offset of the first line its broker had not
/// confirmed. Lines from there up to the stream's checkpoint are published again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SavedSink {
    pub name: String,
    pub files: Vec<((u64, u64), u64)>,
}

impl StreamState {
    pub fn resume(&self) -> Resume {
        Resume {
            checkpoints: self.checkpoints.clone(),
            saved_at: self.saved_at,
            journals: self.journals.clone(),
        }
    }

    /// The state file's JSON, written straight into `out`: with ten thousand files
    /// followed, building a `Value` tree first cost tens of milliseconds every second.
    fn write_json(&self, stream: &str, out: &mut Vec<u8>) {
        use crate::entry::write_json_string;
        use crate::fanout::push_decimal;
        use std::os::unix::ffi::OsStrExt;
        out.extend_from_slice(b"{\"version\":");
        push_decimal(out, VERSION);
        out.extend_from_slice(b",\"stream\":");
        write_json_string(out, stream.as_bytes());
        for (key, value) in [
            ("first_id", self.first_id),
            ("last_id", self.last_id),
            ("id_ceiling", self.id_ceiling),
        ] {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            push_decimal(out, value);
        }
        out.extend_from_slice(format!(",\"saved_at\":{},\"files\":[", self.saved_at).as_bytes());
        for (i, c) in self.checkpoints.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"\n{\"dev\":");
            push_decimal(out, c.id.0);
            out.extend_from_slice(b",\"ino\":");
            push_decimal(out, c.id.1);
            out.extend_from_slice(b",\"fingerprint_len\":");
            push_decimal(out, c.fingerprint.len as u64);
            out.extend_from_slice(
                format!(",\"fingerprint\":\"{:016x}\"", c.fingerprint.hash).as_bytes(),
            );
            out.extend_from_slice(b",\"offset\":");
            push_decimal(out, c.offset);
            out.extend_from_slice(b",\"path\":");
            write_json_string(out, c.path.as_os_str().as_bytes());
            out.push(b'}');
        }
        out.push(b']');
        if !self.journals.is_empty() {
            out.extend_from_slice(b",\"journals\":[");
            for (i, j) in self.journals.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"\n{\"dir\":");
                match &j.dir {
                    Some(d) => write_json_string(out, d.as_os_str().as_bytes()),
                    None => out.extend_from_slice(b"null"),
                }
                out.extend_from_slice(b",\"target\":");
                write_json_string(out, j.target.as_bytes());
                out.extend_from_slice(b",\"cursor\":");
                write_json_string(out, j.cursor.as_bytes());
                out.push(b'}');
            }
            out.push(b']');
        }
        if !self.sinks.is_empty() {
            out.extend_from_slice(b",\"sinks\":[");
            for (i, sink) in self.sinks.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"\n{\"name\":");
                write_json_string(out, sink.name.as_bytes());
                out.extend_from_slice(b",\"files\":[");
                for (j, ((dev, ino), offset)) in sink.files.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"dev\":");
                    push_decimal(out, *dev);
                    out.extend_from_slice(b",\"ino\":");
                    push_decimal(out, *ino);
                    out.extend_from_slice(b",\"offset\":");
                    push_decimal(out, *offset);
                    out.push(b'}');
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
        out.extend_from_slice(b"}\n");
    }

    fn from_json(v: &Value) -> Result<StreamState, String> {
        let num = |key: &str| {
            v.get(key)
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("`{key}` is missing or not a number"))
        };
        if num("version")? != VERSION {
            return Err("written by an incompatible version".into());
        }
        let mut checkpoints = Vec::new();
        for f in v
            .get("files")
            .and_then(Value::as_array)
            .ok_or("`files` is missing")?
        {
            let field = |key: &str| {
                f.get(key)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("a file's `{key}` is missing"))
            };
            let hash = f
                .get("fingerprint")
                .and_then(Value::as_str)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or("a file's `fingerprint` is missing")?;
            let len = field("fingerprint_len")?.min(FINGERPRINT_BYTES as u64) as u32;
            checkpoints.push(Checkpoint {
                id: (field("dev")?, field("ino")?),
                fingerprint: Fingerprint { len, hash },
                offset: field("offset")?,
                path: PathBuf::from(f.get("path").and_then(Value::as_str).unwrap_or("")),
            });
        }
        let mut journals = Vec::new();
        for j in v
            .get("journals")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |key: &str| {
                j.get(key)
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| format!("a journal's `{key}` is missing"))
            };
            journals.push(SavedCursor {
                dir: j.get("dir").and_then(Value::as_str).map(PathBuf::from),
                target: text("target")?,
                cursor: text("cursor")?,
            });
        }
        let mut sinks = Vec::new();
        for k in v
            .get("sinks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = k
                .get("name")
                .and_then(Value::as_str)
                .ok_or("a sink's `name` is missing")?;
            let mut files = Vec::new();
            for f in k
                .get("files")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let field = |key: &str| {
                    f.get(key)
                        .and_then(Value::as_u64)
                        .ok_or_else(|| format!("a sink file's `{key}` is missing"))
                };
                files.push(((field("dev")?, field("ino")?), field("offset")?));
            }
            sinks.push(SavedSink {
                name: name.to_string(),
                files,
            });
        }
        Ok(StreamState {
            sinks,
            first_id: num("first_id")?,
            last_id: num("last_id")?,
            id_ceiling: num("id_ceiling")?,
            saved_at: v.get("saved_at").and_then(Value::as_i64).unwrap_or(0),
            checkpoints,
            journals,
        })
    }
}

/// The default state directory (SPEC §11): `$STATE_DIRECTORY` (systemd's, the first if it
/// lists several), else `$XDG_STATE_HOME/logwisp`, else `~/.local/state/logwisp`.
pub fn default_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dirs) = var("STATE_DIRECTORY") {
        let first = dirs
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        if !first.is_empty() {
            return Some(PathBuf::from(first));
        }
    }
    if let Some(xdg) = var("XDG_STATE_HOME") {
        return Some(Path::new(&xdg).join("logwisp"));
    }
    var("HOME").map(|home| Path::new(&home).join(".local/state/logwisp"))
}

/// Where state lives, and whether it can be written there.
#[derive(Debug)]
pub struct Store {
    pub dir: Option<PathBuf>,
    /// The last problem, reported once.
    pub problem: Option<String>,
    pub saves: u64,
    pub save_errors: u64,
}

impl Store {
    /// Uses `dir`, creating it; an unusable directory is reported once and logwisp runs
    /// without persistence.
    pub fn open(dir: Option<PathBuf>) -> Store {
        let mut store = Store {
            dir: None,
            problem: None,
            saves: 0,
            save_errors: 0,
        };
        let Some(dir) = dir else {
            store.report("no state directory (set state_dir, $STATE_DIRECTORY or $HOME)");
            return store;
        };
        let probe = dir.join(".logwisp-probe");
        let usable = fs::create_dir_all(&dir)
            .and_then(|()| fs::write(&probe, b""))
            .and_then(|()| fs::remove_file(&probe));
        match usable {
            Ok(()) => store.dir = Some(dir),
            Err(e) => store.report(&format!(
                "state directory {} is not usable ({e}); running without saved positions",
                dir.display()
            )),
        }
        store
    }

    fn report(&mut self, message: &str) {
        if self.problem.as_deref() != Some(message) {
            crate::log::warn("", message);
        }
        self.problem = Some(message.to_string());
    }

    fn file(&self, stream: &str) -> Option<PathBuf> {
        Some(self.dir.as_ref()?.join(format!("{stream}.json")))
    }

    /// The state an earlier run saved for `stream`, if any (a damaged file is reported
    /// and ignored).
    pub fn load(&mut self, stream: &str) -> Option<StreamState> {
        let path = self.file(stream)?;
        let text = match fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                self.report(&format!("cannot read {}: {e}", path.display()));
                return None;
            }
        };
        let parsed = serde_json::from_slice::<Value>(&text)
            .map_err(|e| e.to_string())
            .and_then(|v| StreamState::from_json(&v));
        match parsed {
            Ok(s) => Some(s),
            Err(e) => {
                self.report(&format!("ignoring {}: {e}", path.display()));
                None
            }
        }
    }

    /// Writes `stream`'s state: a temporary file, then a rename over the old one.
    pub fn save(&mut self, stream: &str, state: &StreamState) -> bool {
        let Some(path) = self.file(stream) else {
            return false;
        };
        let tmp = path.with_extension("json.tmp");
        let mut body = Vec::with_capacity(256 + 160 * state.checkpoints.len());
        state.write_json(stream, &mut body);
        let result = fs::File::create(&tmp)
            .and_then(|mut f| f.write_all(&body))
            .and_then(|()| fs::rename(&tmp, &path));
        match result {
            Ok(()) => {
                self.saves += 1;
                if self.problem.take().is_some() {
                    crate::log::info("", &format!("state is saved again in {}", path.display()));
                }
                true
            }
            Err(e) => {
                self.save_errors += 1;
                let _ = fs::remove_file(&tmp);
                self.report(&format!("cannot save {}: {e}", path.display()));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("logwisp-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut store = Store::open(Some(dir.clone()));
        assert!(store.dir.is_some());
        assert_eq!(store.load("app"), None);
        let state = StreamState {
            first_id: 100,
            last_id: 150,
            id_ceiling: 150 + ID_RESERVE,
            saved_at: 1_700_000_000,
            checkpoints: vec![
                Checkpoint {
                    id: (2049, 77),
                    fingerprint: Fingerprint {
                        len: 12,
                        hash: 0xdead_beef,
                    },
                    offset: 4096,
                    path: PathBuf::from("/var/log/app.log"),
                },
                Checkpoint {
                    id: (u64::MAX, 1),
                    fingerprint: Fingerprint {
                        len: 0,
                        hash: u64::MAX,
                    },
                    offset: 0,
                    path: PathBuf::from("/var/log/a \"quoted\"\\name\n\u{7f}é.log"),
                },
            ],
            journals: vec![
                SavedCursor {
                    dir: None,
                    target: "journal (this machine) units a.service".into(),
                    cursor: "s=75308cbb;i=1;b=6539;m=3e8;t=6617fff33ea55;x=9d31".into(),
                },
                SavedCursor {
                    dir: Some(PathBuf::from("/srv/journal")),
                    target: "journal /srv/journal".into(),
                    cursor: "s=1;i=2".into(),
                },
            ],
            sinks: vec![SavedSink {
                name: "nats:logs.\"{stream}\"".into(),
                files: vec![((2049, 77), 1000), ((1, 2), 0)],
            }],
        };
        assert!(store.save("app", &state));
        assert_eq!(store.load("app"), Some(state));
        fs::write(dir.join("bad.json"), b"{\"version\":1}").unwrap();
        assert_eq!(store.load("bad"), None, "damaged state is ignored");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_state_file_from_before_journals_still_loads() {
        let dir = std::env::temp_dir().join(format!("logwisp-state-old-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut store = Store::open(Some(dir.clone()));
        // As the previous version wrote it: no `journals` key.
        fs::write(
            dir.join("app.json"),
            b"{\"version\":1,\"stream\":\"app\",\"first_id\":5,\"last_id\":9,\"id_ceiling\":99,\"saved_at\":7,\"files\":[\n{\"dev\":1,\"ino\":2,\"fingerprint_len\":3,\"fingerprint\":\"00000000000000ff\",\"offset\":4,\"path\":\"/a.log\"}]}\n",
        )
        .unwrap();
        let state = store.load("app").expect("old state loads");
        assert_eq!(
            (state.first_id, state.last_id, state.id_ceiling),
            (5, 9, 99)
        );
        assert_eq!(state.checkpoints.len(), 1);
        assert!(state.journals.is_empty());
        assert!(state.sinks.is_empty(), "no sinks in an older file");
        // And a file with no journals is written as before (no new key).
        let mut out = Vec::new();
        state.write_json("app", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("journals") && !text.contains("sinks"));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unusable_directory_means_no_persistence() {
        let store = Store::open(Some(PathBuf::from("/proc/logwisp-cannot-be-here")));
        assert!(store.dir.is_none());
        assert!(store.problem.is_some());
    }
}
