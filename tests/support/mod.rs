//! The harness the test binaries share (tests/integration, tests/abuse, tests/brokers):
//! each includes it with `#[path = "../support/mod.rs"] mod support;`. A temp dir per
//! test, the real logwisp started on free loopback ports, HTTP, SSE and TCP clients that
//! read with deadlines, polling helpers, and brokers as child processes. What only one
//! binary needs stays in that binary's util.rs, which re-exports [`prelude`].

// Each binary uses a different part of it.
#![allow(dead_code)]

pub mod brokers;
pub mod chunked;
pub mod files;
pub mod http;
#[cfg(feature = "forward")]
pub mod nats;
pub mod process;
pub mod server;
pub mod sse;
pub mod tcp;
pub mod wait;

/// What most tests use, for a suite's util.rs to re-export (`pub use
/// crate::support::prelude::*;`): everything but the brokers and the chunked decoder.
// A binary that imports its parts directly (tests/brokers) leaves it unused.
#[allow(unused_imports)]
pub mod prelude {
    pub use super::files::*;
    pub use super::http::*;
    pub use super::process::*;
    pub use super::server::*;
    pub use super::sse::*;
    pub use super::tcp::*;
    pub use super::wait::*;
}
