//! Which endpoint a path names on one HTTP listener. In standalone mode a listener serves
//! one stream at its own paths; in router mode it serves every stream on its port at
//! `/{name}{path}`, plus `/status` for all of them. New endpoints are new table rows.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// SSE stream of the stream with this index.
    Stream(usize),
    /// Status of the stream with this index.
    Status(usize),
    /// Router mode: status of every stream.
    GlobalStatus,
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
        }
        r
    }

    pub fn is_router(&self) -> bool {
        self.router
    }

    /// Adds a stream's endpoints; returns their paths (stream, status).
    pub fn add_stream(
        &mut self,
        index: usize,
        name: &str,
        stream_path: &str,
        status_path: &str,
    ) -> (String, String) {
        let prefix = if self.router {
            format!("/{name}")
        } else {
            String::new()
        };
        let stream = format!("{prefix}{stream_path}");
        let status = format!("{prefix}{status_path}");
        self.table.push((stream.clone(), Endpoint::Stream(index)));
        self.table.push((status.clone(), Endpoint::Status(index)));
        (stream, status)
    }

    pub fn lookup(&self, path: &str) -> Option<Endpoint> {
        self.table.iter().find(|(p, _)| p == path).map(|(_, e)| *e)
    }

    /// Every path served here, for 404 bodies.
    pub fn paths(&self) -> impl Iterator<Item = (&str, Endpoint)> {
        self.table.iter().map(|(p, e)| (p.as_str(), *e))
    }

    /// Streams served by this listener.
    pub fn streams(&self) -> impl Iterator<Item = usize> + '_ {
        self.table.iter().filter_map(|(_, e)| match e {
            Endpoint::Stream(i) => Some(*i),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone_and_router_paths() {
        let mut s = Routes::new(false);
        s.add_stream(0, "app", "/stream", "/status");
        assert_eq!(s.lookup("/stream"), Some(Endpoint::Stream(0)));
        assert_eq!(s.lookup("/status"), Some(Endpoint::Status(0)));
        assert_eq!(s.lookup("/app/stream"), None);

        let mut r = Routes::new(true);
        r.add_stream(0, "app", "/stream", "/status");
        r.add_stream(1, "sys", "/logs", "/info");
        assert_eq!(r.lookup("/app/stream"), Some(Endpoint::Stream(0)));
        assert_eq!(r.lookup("/sys/logs"), Some(Endpoint::Stream(1)));
        assert_eq!(r.lookup("/sys/info"), Some(Endpoint::Status(1)));
        assert_eq!(r.lookup("/status"), Some(Endpoint::GlobalStatus));
        assert_eq!(r.lookup("/stream"), None);
        assert_eq!(r.streams().collect::<Vec<_>>(), [0, 1]);
    }
}
