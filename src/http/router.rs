//! Which endpoint a path names on one HTTP listener. In standalone mode a listener serves
//! one stream at its own paths; in router mode it serves every stream on its port at
//! `/{name}{path}`, plus `/status` and `/metrics` for all of them. New endpoints are new
//! table rows.

use crate::stream::StreamId;

/// Metrics of every stream, on every HTTP listener (SPEC §12).
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The SSE stream of a stream.
    Stream(StreamId),
    /// The status of a stream.
    Status(StreamId),
    /// Router mode: status of every stream.
    GlobalStatus,
    /// Prometheus metrics of every stream.
    Metrics,
    /// The browser view of a stream (SPEC §15).
    Page(StreamId),
    /// Router mode: the list of streams, linking to their views.
    Index,
    /// Router mode: `/{name}` without its slash; the view is at `/{name}/`.
    AddSlash,
}

impl Endpoint {
    /// What it is, for 404 bodies.
    pub fn describe(self) -> &'static str {
        match self {
            Endpoint::Stream(_) => "SSE stream",
            Endpoint::Status(_) => "status",
            Endpoint::GlobalStatus => "all streams",
            Endpoint::Metrics => "metrics",
            Endpoint::Page(_) | Endpoint::Index => "browser view",
            Endpoint::AddSlash => "redirect",
        }
    }

    /// The stream it belongs to, if one.
    pub fn stream(self) -> Option<StreamId> {
        match self {
            Endpoint::Stream(s) | Endpoint::Status(s) | Endpoint::Page(s) => Some(s),
            Endpoint::GlobalStatus | Endpoint::Metrics | Endpoint::Index | Endpoint::AddSlash => {
                None
            }
        }
    }
}

/// A stream's paths as configured (before any router prefix).
#[derive(Debug, Clone, Copy)]
pub struct StreamPaths<'a> {
    pub stream: &'a str,
    pub status: &'a str,
    pub metrics: &'a str,
}

#[derive(Debug, Clone, Default)]
pub struct Routes {
    table: Vec<(String, Endpoint)>,
    router: bool,
}

impl Routes {
    pub fn new(router: bool) -> Routes {
        let mut r = Routes {
            table: Vec::new(),
            router,
        };
        if router {
            r.table
                .push(("/status".to_string(), Endpoint::GlobalStatus));
            r.table
                .push((DEFAULT_METRICS_PATH.to_string(), Endpoint::Metrics));
            r.table.push(("/".to_string(), Endpoint::Index));
        }
        r
    }

    pub fn is_router(&self) -> bool {
        self.router
    }

    /// Adds a stream's endpoints; returns their full paths (stream, status).
    pub fn add_stream(&mut self, id: StreamId, name: &str, paths: StreamPaths) -> (String, String) {
        let prefix = if self.router {
            format!("/{name}")
        } else {
            String::new()
        };
        let stream = format!("{prefix}{}", paths.stream);
        let status = format!("{prefix}{}", paths.status);
        self.table.push((stream.clone(), Endpoint::Stream(id)));
        self.table.push((status.clone(), Endpoint::Status(id)));
        if !self.router {
            self.table
                .push((paths.metrics.to_string(), Endpoint::Metrics));
        }
        // The view, unless a configured path already takes its place.
        let page = format!("{prefix}/");
        if self.lookup(&page).is_none() {
            self.table.push((page, Endpoint::Page(id)));
            if self.router {
                self.table.push((prefix, Endpoint::AddSlash));
            }
        }
        (stream, status)
    }

    pub fn lookup(&self, path: &str) -> Option<Endpoint> {
        self.table.iter().find(|(p, _)| p == path).map(|(_, e)| *e)
    }

    /// Every path served here, for 404 bodies (a redirect is not an endpoint).
    pub fn paths(&self) -> impl Iterator<Item = (&str, Endpoint)> {
        self.table
            .iter()
            .filter(|(_, e)| *e != Endpoint::AddSlash)
            .map(|(p, e)| (p.as_str(), *e))
    }

    /// The streams served here with their configured stream paths, for the router's index.
    pub fn views(&self) -> impl Iterator<Item = (StreamId, &str)> + '_ {
        self.table.iter().filter_map(|(p, e)| match e {
            Endpoint::Page(i) => Some((*i, p.as_str())),
            _ => None,
        })
    }

    /// Streams served by this listener.
    pub fn streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.table.iter().filter_map(|(_, e)| match e {
            Endpoint::Stream(i) => Some(*i),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: StreamId = StreamId {
        index: 0,
        generation: 1,
    };
    const B: StreamId = StreamId {
        index: 1,
        generation: 2,
    };

    fn paths<'a>(stream: &'a str, status: &'a str) -> StreamPaths<'a> {
        StreamPaths {
            stream,
            status,
            metrics: DEFAULT_METRICS_PATH,
        }
    }

    #[test]
    fn standalone_and_router_paths() {
        let mut s = Routes::new(false);
        s.add_stream(A, "app", paths("/stream", "/status"));
        assert_eq!(s.lookup("/stream"), Some(Endpoint::Stream(A)));
        assert_eq!(s.lookup("/status"), Some(Endpoint::Status(A)));
        assert_eq!(s.lookup("/metrics"), Some(Endpoint::Metrics));
        assert_eq!(s.lookup("/app/stream"), None);

        let mut r = Routes::new(true);
        r.add_stream(A, "app", paths("/stream", "/status"));
        r.add_stream(B, "sys", paths("/logs", "/info"));
        assert_eq!(r.lookup("/app/stream"), Some(Endpoint::Stream(A)));
        assert_eq!(r.lookup("/sys/logs"), Some(Endpoint::Stream(B)));
        assert_eq!(r.lookup("/sys/info"), Some(Endpoint::Status(B)));
        assert_eq!(r.lookup("/status"), Some(Endpoint::GlobalStatus));
        assert_eq!(r.lookup("/metrics"), Some(Endpoint::Metrics));
        assert_eq!(r.lookup("/stream"), None);
        assert_eq!(r.streams().collect::<Vec<_>>(), [A, B]);
    }
}
