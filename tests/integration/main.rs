//! Integration tests: the real `logwisp` binary on free loopback ports, real files in a
//! temp dir per test, real sockets, exact bytes. Helpers live in `util`, which re-exports
//! the harness shared with the other test binaries (`support`, in tests/support).

mod access;
mod browser;
mod cli_config;
#[cfg(feature = "forward")]
mod forward;
mod http;
mod journal;
mod limits;
mod model;
mod proxy;
mod reload;
mod resume;
mod rotation;
mod router;
mod sse_clients;
mod streaming;
#[path = "../support/mod.rs"]
mod support;
mod tailing;
mod tls;
mod util;
mod view;
#[cfg(feature = "websocket")]
mod websocket;
