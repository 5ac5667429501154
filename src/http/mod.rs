//! HTTP/1.1 for logwisp: request heads in, routes, and JSON responses out. Connection
//! handling (reading, keep-alive, pipelining, upgrading to SSE) lives in the reactor.

pub mod decide;
pub mod request;
pub mod response;
pub mod router;
