//! Deadlines: polling until something holds, and watching that something does not happen.
//! Nothing here sleeps in place of a condition: every sleep is a pause between two looks.

use std::time::{Duration, Instant};

/// How long any single expected thing may take before a test gives up on it.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `cond` every 2 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Polls `f` until it returns `Some`, or panics naming `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let mut got = None;
    let ok = wait_until(timeout, || {
        got = f();
        got.is_some()
    });
    assert!(ok, "timed out after {timeout:?} waiting for {what}");
    got.unwrap()
}

/// Watches for `window`, failing as soon as `bad` returns an explanation. For asserting
/// that something does *not* happen over a period (the period is the point, not a guess).
pub fn hold_for(window: Duration, mut bad: impl FnMut() -> Option<String>) {
    let end = Instant::now() + window;
    while Instant::now() < end {
        if let Some(why) = bad() {
            panic!("{why}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
