//! logwisp: tail log files and directories and stream every new line, as JSON, to many
//! clients over raw TCP and HTTP Server-Sent Events, from one single-threaded reactor.
//!
//! Data flows top to bottom through these modules:
//!
//! - [`config`] and [`cli`]: what to run (validated TOML, command line).
//! - [`tail`]: inotify-driven file following, rotation, line splitting; [`journal`]:
//!   the systemd journal, read through `journalctl` children, as a source like a file.
//! - [`entry`]: a line becomes one JSON object, serialized once; [`filter`] decides which
//!   lines enter a stream and which entries each client gets.
//! - [`fanout`]: a bounded buffer of rendered frames per stream; clients are positions.
//!   [`format`](mod@format): what a server sends of each entry (json, raw, txt).
//! - [`history`]: where each entry came from, so a client behind the buffer is served
//!   from the files themselves; [`state`] keeps positions and ids across restarts.
//! - [`http`], [`sse`], [`tcp`], `ws` (feature `websocket`): the wire protocols;
//!   [`ratelimit`] guards them; [`page`] is the browser view served over HTTP.
//! - [`reactor`]: the mio event loop that owns every socket, file watch and timer
//!   ([`timer`]); [`stream`] holds one stream's run-time state, [`stats`] reports on it.
//! - [`acl`] and [`auth`]: who may connect and who may read (SPEC §13), decided from the
//!   peer address and the `Authorization` header alone; [`audit`] keeps their refusals
//!   from flooding the log.
//! - `forward` (feature `forward`): sans-IO NATS and MQTT client engines and a resolver,
//!   for sinks that feed a broker (SPEC §16).

pub mod acl;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod config;
pub mod entry;
pub mod fanout;
pub mod filter;
pub mod format;
#[cfg(feature = "forward")]
pub mod forward;
pub mod history;
pub mod http;
pub mod journal;
pub mod log;
pub mod memory;
pub mod metrics;
pub mod page;
pub mod ratelimit;
pub mod reactor;
pub mod sse;
pub mod state;
pub mod stats;
pub mod stream;
pub mod tail;
pub mod tcp;
pub mod timefmt;
pub mod timer;
#[cfg(feature = "tls")]
pub mod tls;
pub mod version;
#[cfg(feature = "websocket")]
pub mod ws;
