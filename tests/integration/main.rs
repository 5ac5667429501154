//! Integration tests: the real `logwisp` binary on free loopback ports, real files in a
//! temp dir per test, real sockets, exact bytes. Helpers live in `util`.

mod access;
#[path = "../support/brokers.rs"]
mod brokers;
mod browser;
#[path = "../support/chunked.rs"]
mod chunked;
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
mod streaming;
mod tailing;
mod tls;
mod util;
mod view;
#[cfg(feature = "websocket")]
mod websocket;
