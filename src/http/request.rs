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
    Options,
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
    /// A CORS preflight's `Access-Control-Request-Headers`, when it is a list of tokens.
    pub cors_request_headers: Option<String>,
    /// The `Authorization` header (`Some(None)` when it was sent more than once).
    pub authorization: Option<Option<Vec<u8>>>,
    /// What the head says about a WebSocket upgrade.
    #[cfg(feature = "websocket")]
    pub upgrade: crate::ws::UpgradeHeaders,
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

/// RFC 9112 §2.3: `HTTP/` DIGIT `.` DIGIT, the only well-formed version.
fn is_well_formed_version(v: &[u8]) -> bool {
    matches!(v.strip_prefix(b"HTTP/"), Some([a, b'.', b]) if a.is_ascii_digit() && b.is_ascii_digit())
}

/// Checks the request line on its own, before `httparse`, to tell 414/505 from 400 and to
/// apply what `httparse` lets through.
fn check_request_line(line: &[u8]) -> Result<(), HttpError> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    // RFC 9112 §3: the parts are separated by single spaces. A tab, a stray CR or any
    // other control byte is not a separator to guess at (a proxy may split differently).
    if line.iter().any(u8::is_ascii_control) {
        return Err(HttpError::BadRequest(
            "control character in the request line",
        ));
    }
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    match parts.as_slice() {
        [method, second] if !method.is_empty() && !second.is_empty() => {
            if second.starts_with(b"HTTP/") {
                return Err(HttpError::BadRequest("request line without a target"));
            }
            // `GET /path` with no version: HTTP/0.9.
            if second.len() > MAX_TARGET {
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
                b"HTTP/1.1" | b"HTTP/1.0" => {}
                v if is_well_formed_version(v) => return Err(HttpError::VersionNotSupported),
                _ => return Err(HttpError::BadRequest("malformed HTTP version")),
            }
            check_target(method, target)
        }
        _ => Err(HttpError::BadRequest("malformed request line")),
    }
}

/// What RFC 9112 §3.2 and RFC 3986 forbid in any request target: a fragment, bytes
/// outside ASCII, and the asterisk form on anything but OPTIONS.
fn check_target(method: &[u8], target: &[u8]) -> Result<(), HttpError> {
    if !target.is_ascii() {
        return Err(HttpError::BadRequest(
            "non-ASCII byte in the request target",
        ));
    }
    if target.contains(&b'#') {
        return Err(HttpError::BadRequest("fragment in the request target"));
    }
    if target == b"*" && method != b"OPTIONS" {
        return Err(HttpError::BadRequest(
            "the asterisk form is only for OPTIONS",
        ));
    }
    Ok(())
}

/// RFC 9110 §7.2: a Host value is `uri-host [ ":" port ]` (RFC 3986 §3.2.2), so no
/// userinfo, path, empty value or list. A reg-name may hold sub-delims, but a comma in a
/// singleton field is two values run together, so it is refused too.
fn valid_host(v: &[u8]) -> bool {
    let (host_ok, rest) = match v.strip_prefix(b"[") {
        Some(inner) => match inner.iter().position(|&b| b == b']') {
            Some(end) => (
                end > 0
                    && inner[..end]
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.'),
                &inner[end + 1..],
            ),
            None => return false,
        },
        None => {
            let end = v.iter().position(|&b| b == b':').unwrap_or(v.len());
            (end > 0 && is_reg_name(&v[..end]), &v[end..])
        }
    };
    host_ok
        && match rest {
            [] => true,
            [b':', port @ ..] => port.iter().all(u8::is_ascii_digit),
            _ => false,
        }
}

/// unreserved / pct-encoded / sub-delims except `,` (RFC 3986 §3.2.2).
fn is_reg_name(h: &[u8]) -> bool {
    let mut i = 0;
    while i < h.len() {
        match h[i] {
            b'%' => {
                let hex = h.get(i + 1..i + 3);
                if !hex.is_some_and(|x| x.iter().all(u8::is_ascii_hexdigit)) {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// `token *( OWS "," OWS token )`, the shape of `Access-Control-Request-Headers`.
fn is_token_list(v: &[u8]) -> bool {
    !v.is_empty() && header_tokens(v).all(|t| !t.is_empty() && t.iter().all(|&b| is_tchar(b)))
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
        Some("OPTIONS") => Method::Options,
        _ => Method::Other,
    };
    let mut hosts = 0;
    let mut host_valid = true;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut close = false;
    let mut keep_alive_token = false;
    let mut last_event_id = None;
    let mut cors_request_headers = None;
    let mut authorization: Option<Option<Vec<u8>>> = None;
    #[cfg(feature = "websocket")]
    let mut upgrade = crate::ws::UpgradeHeaders::default();
    for h in req.headers.iter() {
        let name = h.name;
        #[cfg(feature = "websocket")]
        upgrade.header(name, h.value);
        if name.eq_ignore_ascii_case("host") {
            hosts += 1;
            host_valid &= valid_host(h.value.trim_ascii());
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
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = Some(match authorization {
                None => Some(h.value.trim_ascii().to_vec()),
                Some(_) => None,
            });
        } else if name.eq_ignore_ascii_case("access-control-request-headers") {
            let v = h.value.trim_ascii();
            cors_request_headers =
                is_token_list(v).then(|| String::from_utf8_lossy(v).into_owned());
        }
    }
    if !http10 && hosts == 0 {
        return Err(HttpError::BadRequest("missing Host header"));
    }
    if hosts > 1 {
        return Err(HttpError::BadRequest("duplicate Host header"));
    }
    if !host_valid {
        return Err(HttpError::BadRequest("invalid Host header"));
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
        cors_request_headers,
        authorization,
        #[cfg(feature = "websocket")]
        upgrade,
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
            // Host: RFC 9110 §7.2 (uri-host and port, once).
            (b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: [::1]\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: xn--bcher-kva.example\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: a%2Db\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 200),
            (b"GET / HTTP/1.0\r\n\r\n", 200),
            (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: user:pw@a:80\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/path\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a?q\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: \r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: :80\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\nHost: u@a\r\n\r\n", 400),
            // Request line: RFC 9112 §3.
            (b"GET HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
            (b"GET / http/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/2\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/\r\nHost: a\r\n\r\n", 400),
            (b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\t\r\nHost: a\r\n\r\n", 400),
            (b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            // Request target: RFC 9112 §3.2.
            (b"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /stream?x=1#f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET http://a/#f HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET /%C3%A9 HTTP/1.1\r\nHost: a\r\n\r\n", 200),
            (b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"HEAD * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"POST * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"options * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 200),
            (b"OPTIONS /stream HTTP/1.1\r\nHost: a\r\n\r\n", 200),
            // Well-formed but unsupported stays 505, whatever the method and target.
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
            (b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505),
            (b"GET / HTTP/9.9\r\nHost: a\r\n\r\n", 505),
        ];
        for (raw, want) in cases {
            assert_eq!(status(raw), Some(*want), "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn options_and_cors_request_headers() {
        let r = done("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!((r.method, r.path.as_str()), (Method::Options, "*"));
        assert_eq!(r.cors_request_headers, None);
        let r = done(
            "OPTIONS /stream HTTP/1.1\r\nHost: a\r\nOrigin: http://b\r\n\
             Access-Control-Request-Method: GET\r\n\
             Access-Control-Request-Headers: last-event-id, authorization,x-custom\r\n\r\n",
        );
        assert_eq!(r.method, Method::Options);
        assert_eq!(
            r.cors_request_headers.as_deref(),
            Some("last-event-id, authorization,x-custom")
        );
        // Not a token list: not echoed (the fixed list is answered instead).
        for bad in ["a b", "a,,b", "", "a;b", "\"x\""] {
            let raw = format!(
                "OPTIONS /stream HTTP/1.1\r\nHost: a\r\nAccess-Control-Request-Headers: {bad}\r\n\r\n"
            );
            assert_eq!(done(&raw).cors_request_headers, None, "{bad:?}");
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
