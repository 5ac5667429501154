//! Request heads: `httparse` does the tokenizing; this module adds the limits and the
//! RFC 9112 strictness logwisp promises (SPEC §7) and boils a head down to what routing
//! needs. Pure: bytes in, a decision out.

use std::fmt;

/// Longest request target accepted (414 beyond).
pub const MAX_TARGET: usize = 8 * 1024;
/// Largest header section accepted after the request line (431 beyond).
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Most header fields accepted (431 beyond).
pub const MAX_HEADERS: usize = 64;
/// Largest request body read and discarded on a kept-open connection (413 beyond).
pub const MAX_BODY: u64 = 64 * 1024;
/// Empty lines tolerated before a request line (RFC 9112 asks for at least one).
pub const MAX_LEADING_EMPTY: usize = 64;
/// The most bytes a connection may buffer while its head is incomplete.
pub const MAX_HEAD: usize = MAX_TARGET + MAX_HEADER_BYTES + 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    None,
    Length(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// Path without the query.
    pub path: String,
    pub query: Option<String>,
    pub http10: bool,
    pub keep_alive: bool,
    pub last_event_id: Option<String>,
    pub body: Body,
    /// Bytes of the head, including its final empty line.
    pub head_len: usize,
}

/// A request that gets an error status and then a close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    BadRequest(&'static str),
    UriTooLong,
    HeadersTooLarge,
    VersionNotSupported,
    LengthRequired,
    PayloadTooLarge,
    Timeout,
}

impl HttpError {
    pub fn status(self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::Timeout => 408,
            HttpError::LengthRequired => 411,
            HttpError::PayloadTooLarge => 413,
            HttpError::UriTooLong => 414,
            HttpError::HeadersTooLarge => 431,
            HttpError::VersionNotSupported => 505,
        }
    }

    pub fn detail(self) -> &'static str {
        match self {
            HttpError::BadRequest(why) => why,
            HttpError::Timeout => "request head not received in time",
            HttpError::LengthRequired => "request bodies need a Content-Length",
            HttpError::PayloadTooLarge => "request body too large",
            HttpError::UriTooLong => "request target too long",
            HttpError::HeadersTooLarge => "request header section too large",
            HttpError::VersionNotSupported => "only HTTP/1.0 and HTTP/1.1 are supported",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.detail())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed.
    Partial,
    Done(Request),
    Error(HttpError),
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_http_version_like(v: &[u8]) -> bool {
    match v.strip_prefix(b"HTTP/") {
        Some([d]) => d.is_ascii_digit(),
        Some([a, b'.', b]) => a.is_ascii_digit() && b.is_ascii_digit(),
        _ => false,
    }
}

/// Checks the request line on its own, before `httparse`, to tell 414/505 from 400.
fn check_request_line(line: &[u8]) -> Result<(), HttpError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [method, target] if !method.is_empty() && !target.is_empty() => {
            // `GET /path` with no version: HTTP/0.9.
            if target.len() > MAX_TARGET {
                Err(HttpError::UriTooLong)
            } else {
                Err(HttpError::VersionNotSupported)
            }
        }
        [method, target, version] => {
            if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
                return Err(HttpError::BadRequest("malformed method"));
            }
            if target.len() > MAX_TARGET {
                return Err(HttpError::UriTooLong);
            }
            if target.is_empty() {
                return Err(HttpError::BadRequest("empty request target"));
            }
            match *version {
                b"HTTP/1.1" | b"HTTP/1.0" => Ok(()),
                v if is_http_version_like(v) => Err(HttpError::VersionNotSupported),
                _ => Err(HttpError::BadRequest("malformed HTTP version")),
            }
        }
        _ => Err(HttpError::BadRequest("malformed request line")),
    }
}

/// An over-long first line: a long target (414) if it starts like a request, else 400.
fn classify_long_line(buf: &[u8]) -> HttpError {
    let method_len = buf.iter().take_while(|&&b| is_tchar(b)).count();
    if method_len > 0 && buf.get(method_len) == Some(&b' ') {
        HttpError::UriTooLong
    } else {
        HttpError::BadRequest("malformed request line")
    }
}

fn header_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(|t| t.trim_ascii())
}

/// Parses the head at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parse {
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    let skip = buf
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if skip > MAX_LEADING_EMPTY {
        return Parse::Error(HttpError::BadRequest(
            "too many empty lines before the request",
        ));
    }
    let rest = &buf[skip..];
    let Some(line_end) = rest.iter().position(|&b| b == b'\n') else {
        if rest.len() > MAX_TARGET + 32 {
            return Parse::Error(classify_long_line(rest));
        }
        return Parse::Partial;
    };
    if let Err(e) = check_request_line(&rest[..line_end]) {
        return Parse::Error(e);
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD || buf.len() - skip - line_end > MAX_HEADER_BYTES {
                return Parse::Error(HttpError::HeadersTooLarge);
            }
            return Parse::Partial;
        }
        Ok(httparse::Status::Complete(n)) => n,
        Err(httparse::Error::TooManyHeaders) => return Parse::Error(HttpError::HeadersTooLarge),
        Err(httparse::Error::Version) => return Parse::Error(HttpError::VersionNotSupported),
        Err(httparse::Error::HeaderName) => {
            return Parse::Error(HttpError::BadRequest("invalid header name"));
        }
        Err(httparse::Error::HeaderValue) => {
            return Parse::Error(HttpError::BadRequest("invalid header value"));
        }
        Err(httparse::Error::NewLine) => {
            return Parse::Error(HttpError::BadRequest("invalid line ending"));
        }
        Err(httparse::Error::Token) => {
            return Parse::Error(HttpError::BadRequest("invalid token"));
        }
        Err(_) => return Parse::Error(HttpError::BadRequest("malformed request")),
    };
    if head_len - skip - line_end > MAX_HEADER_BYTES {
        return Parse::Error(HttpError::HeadersTooLarge);
    }
    match interpret(&req, head_len) {
        Ok(r) => Parse::Done(r),
        Err(e) => Parse::Error(e),
    }
}

fn interpret(req: &httparse::Request, head_len: usize) -> Result<Request, HttpError> {
    let http10 = req.version == Some(0);
    let method = match req.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let mut hosts = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut last_event_id = None;
    for h in req.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        } else if name.eq_ignore_ascii_case("content-length") {
            if content_length.is_some() {
                return Err(HttpError::BadRequest("duplicate Content-Length"));
            }
            let v = h.value.trim_ascii();
            if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
                return Err(HttpError::BadRequest("invalid Content-Length"));
            }
            let n = v.iter().fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for t in header_tokens(h.value) {
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive_token = true;
                }
            }
        } else if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = Some(String::from_utf8_lossy(h.value.trim_ascii()).into_owned());
        }
    }
    if !http10 && hosts == 0 {
        return Err(HttpError::BadRequest("missing Host header"));
    }
    if hosts > 1 {
        return Err(HttpError::BadRequest("duplicate Host header"));
    }
    if transfer_encoding && content_length.is_some() {
        return Err(HttpError::BadRequest(
            "Transfer-Encoding together with Content-Length",
        ));
    }
    if transfer_encoding {
        return Err(HttpError::LengthRequired);
    }
    let body = match content_length {
        None | Some(0) => Body::None,
        Some(n) if n > MAX_BODY => return Err(HttpError::PayloadTooLarge),
        Some(n) => Body::Length(n),
    };
    let target = req.path.unwrap_or("");
    let origin = if target.starts_with('/') {
        target
    } else if let Some(after_scheme) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        // Absolute form: keep only the path (and query).
        match after_scheme.find('/') {
            Some(i) => &after_scheme[i..],
            None => "/",
        }
    } else if target == "*" {
        "*"
    } else {
        return Err(HttpError::BadRequest("request target must be a path"));
    };
    let (path, query) = match origin.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (origin.to_string(), None),
    };
    let keep_alive = if http10 {
        keep_alive_token && !close
    } else {
        !close
    };
    Ok(Request {
        method,
        path,
        query,
        http10,
        keep_alive,
        last_event_id,
        body,
        head_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(raw: &str) -> Request {
        match parse(raw.as_bytes()) {
            Parse::Done(r) => r,
            other => panic!("{raw:?} gave {other:?}"),
        }
    }

    fn status(raw: &[u8]) -> Option<u16> {
        match parse(raw) {
            Parse::Error(e) => Some(e.status()),
            Parse::Done(_) => Some(200),
            Parse::Partial => None,
        }
    }

    #[test]
    fn simple_get() {
        let r = done("GET /stream?x=1 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 42\r\n\r\n");
        assert_eq!(r.method, Method::Get);
        assert_eq!(r.path, "/stream");
        assert_eq!(r.query.as_deref(), Some("x=1"));
        assert_eq!(r.last_event_id.as_deref(), Some("42"));
        assert!(r.keep_alive && !r.http10);
        assert_eq!(r.body, Body::None);
    }

    #[test]
    fn keep_alive_rules() {
        assert!(!done("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!done("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(done("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert_eq!(
            done("GET http://h:1/status HTTP/1.1\r\nHost: h\r\n\r\n").path,
            "/status"
        );
        assert_eq!(done("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").path, "/");
    }

    #[test]
    fn incomplete_is_partial() {
        assert_eq!(status(b"GET /stream HTTP/1.1\r\nHost: a\r\n"), None);
        assert_eq!(status(b"GET /str"), None);
        assert_eq!(status(b""), None);
    }

    #[test]
    fn strictness_table() {
        let cases: &[(&[u8], u16)] = &[
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 200),
            (b"garbage\r\n\r\n", 400),
            (b"\x00\x01\x02 / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n  folded\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 411),
            (b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999\r\n\r\n", 413),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
            (b"GET /\r\n", 505),
            (b"GET / FTP/1.0\r\n\r\n", 400),
            (b"GET nopath HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), Some(*want), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn size_limits() {
        let long_target = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "a".repeat(MAX_TARGET)
        );
        assert_eq!(status(long_target.as_bytes()), Some(414));
        let unterminated = format!("GET /{}", "a".repeat(MAX_TARGET + 100));
        assert_eq!(status(unterminated.as_bytes()), Some(414));
        let big_headers = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
            "b".repeat(MAX_HEADER_BYTES)
        );
        assert_eq!(status(big_headers.as_bytes()), Some(431));
        let growing = format!(
            "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}",
            "b".repeat(MAX_HEADER_BYTES)
        );
        assert_eq!(status(growing.as_bytes()), Some(431));
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a\r\n");
        for i in 0..1000 {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(status(many.as_bytes()), Some(431));
    }

    #[test]
    fn leading_empty_lines_are_bounded() {
        let many = "\r\n".repeat(MAX_LEADING_EMPTY);
        assert_eq!(status(many.as_bytes()), Some(400));
        let few = format!("{}GET / HTTP/1.1\r\nHost: a\r\n\r\n", "\r\n".repeat(3));
        assert_eq!(status(few.as_bytes()), Some(200));
    }

    #[test]
    fn body_length_is_reported() {
        let r = done("GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello");
        assert_eq!(r.body, Body::Length(5));
        assert_eq!(
            r.head_len,
            "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n".len()
        );
    }
}
