//! Integration tests: the real `logwisp` binary on free loopback ports, real files in a
//! temp dir per test, real sockets, exact bytes. Helpers live in `util`.

mod cli_config;
mod http;
mod limits;
mod model;
mod rotation;
mod router;
mod streaming;
mod tailing;
mod util;
