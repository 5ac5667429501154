//! Abuse tests: the real binary on real sockets and files, fed what well-behaved clients
//! and disks never produce (SPEC §7 and §9). Every wait has a deadline; every test checks
//! that the server still serves a fresh client afterwards.
//!
//! Some cases are heavy (a thousand sockets, hundreds of MiB of log); they stay within a
//! few seconds each so the whole binary runs in well under three minutes.

mod files;
mod fuzz_regressions;
mod http;
mod limits;
mod signals;
#[path = "../support/mod.rs"]
mod support;
mod util;
