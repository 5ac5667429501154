//! logwisp's own diagnostics (SPEC §10): a level filter, text or JSON lines, written to
//! stderr, stdout or a file (`[logging]`). One logger for the process: diagnostics come
//! from every part (tailing, state, listeners, reload) of a single-threaded program.
//!
//! Text lines keep the form `logwisp: [scope] message` (scope omitted when global);
//! JSON lines are `{"time":…,"level":…,"scope":…,"message":…}`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Mutex;

use crate::config::{LogFormat, LogLevel, LogOutput, LoggingConfig};
use crate::entry::{unix_micros_now, write_json_string};
use crate::timefmt;

struct Logger {
    level: LogLevel,
    format: LogFormat,
    output: Output,
}

enum Output {
    Stderr,
    Stdout,
    File(File),
}

static LOGGER: Mutex<Logger> = Mutex::new(Logger {
    level: LogLevel::Info,
    format: LogFormat::Text,
    output: Output::Stderr,
});

/// Applies a `[logging]` table (at startup and at every reload). A log file is opened
/// for appending (created if needed); failing that, logging stays as it was.
pub fn configure(cfg: &LoggingConfig) -> Result<(), String> {
    let output = match &cfg.output {
        LogOutput::Stderr => Output::Stderr,
        LogOutput::Stdout => Output::Stdout,
        LogOutput::File(path) => Output::File(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open log file {}: {e}", path.display()))?,
        ),
    };
    let mut logger = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    logger.level = cfg.level;
    logger.format = cfg.format;
    logger.output = output;
    Ok(())
}

/// Whether messages of `level` are written at all (to skip building them).
pub fn enabled(level: LogLevel) -> bool {
    level <= LOGGER.lock().unwrap_or_else(|p| p.into_inner()).level
}

/// One line for `scope` (a stream's name, or "" for the process).
pub fn log(level: LogLevel, scope: &str, message: &str) {
    let mut logger = LOGGER.lock().unwrap_or_else(|p| p.into_inner());
    if level > logger.level {
        return;
    }
    let mut line = Vec::with_capacity(message.len() + 64);
    match logger.format {
        LogFormat::Text => {
            line.extend_from_slice(b"logwisp: ");
            if !scope.is_empty() {
                line.push(b'[');
                line.extend_from_slice(scope.as_bytes());
                line.extend_from_slice(b"] ");
            }
            line.extend_from_slice(message.as_bytes());
        }
        LogFormat::Json => {
            line.extend_from_slice(b"{\"time\":\"");
            line.extend_from_slice(&timefmt::rfc3339_micros(unix_micros_now()));
            line.extend_from_slice(b"\",\"level\":\"");
            line.extend_from_slice(level.as_str().as_bytes());
            line.extend_from_slice(b"\",\"scope\":");
            write_json_string(&mut line, scope.as_bytes());
            line.extend_from_slice(b",\"message\":");
            write_json_string(&mut line, message.as_bytes());
            line.push(b'}');
        }
    }
    line.push(b'\n');
    // A full disk or a closed stderr must not stop the service: the line is dropped.
    let _ = match &mut logger.output {
        Output::Stderr => io::stderr().write_all(&line),
        Output::Stdout => io::stdout().write_all(&line),
        Output::File(f) => f.write_all(&line),
    };
}

pub fn error(scope: &str, message: &str) {
    log(LogLevel::Error, scope, message);
}

pub fn warn(scope: &str, message: &str) {
    log(LogLevel::Warn, scope, message);
}

pub fn info(scope: &str, message: &str) {
    log(LogLevel::Info, scope, message);
}

pub fn debug(scope: &str, message: &str) {
    log(LogLevel::Debug, scope, message);
}
