//! The request → decision step: what to answer, from the request and the listener's
//! routes alone. Pure, so every answer is tested without sockets. Rate limiting (which
//! needs the clock and per-IP state) comes before it; the reactor renders the bodies that
//! need run-time state (status, metrics) and moves the bytes.

use super::request::{HttpError, Method, Request};
use super::response::{error_body, reason};
use super::router::{Endpoint, Routes};
use crate::auth::{Auth, AuthKind, AuthOutcome, Principal};
use crate::filter::{self, ClientFilter, QueryError};
use crate::stream::StreamId;

/// Methods every endpoint answers (`Allow` of 405s and OPTIONS).
pub const ALLOW: &str = "GET, HEAD, OPTIONS";
/// Request headers a CORS preflight is told it may send when it names none we can echo:
/// what EventSource and fetch-based SSE clients add.
const CORS_ALLOW_HEADERS: &str =
    "Last-Event-ID, Cache-Control, Accept, Content-Type, Authorization";
/// How long a browser may cache a preflight answer (seconds; browsers cap it lower).
const CORS_MAX_AGE: &str = "86400";

#[derive(Debug)]
pub enum Decision {
    /// Answer with one response.
    Reply(Reply),
    /// Serve the stream, from the entry after `last_event_id`, the entries `filter`
    /// wants: as SSE, or as WebSocket frames after the upgrade `websocket` accepts.
    Stream {
        stream: StreamId,
        last_event_id: Option<u64>,
        chunked: bool,
        filter: Box<ClientFilter>,
        websocket: Option<WebSocket>,
    },
}

/// An accepted WebSocket upgrade: the `Sec-WebSocket-Accept` value.
#[cfg(feature = "websocket")]
pub type WebSocket = crate::ws::Accept;
#[cfg(not(feature = "websocket"))]
pub type WebSocket = std::convert::Infallible;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub content: Content,
    pub keep_alive: bool,
    /// HEAD: the head a GET would get, no body.
    pub head_only: bool,
    pub headers: Vec<(&'static str, String)>,
}

/// What a reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// No body at all (204).
    None,
    /// A JSON body, ready (errors, 404).
    Json(Vec<u8>),
    /// The status JSON of a stream.
    StreamStatus(StreamId),
    /// The status JSON of every stream (router mode).
    AllStatus,
    /// Prometheus metrics.
    Metrics,
    /// The head of an SSE stream (HEAD of the stream path); the connection closes after.
    StreamHead { chunked: bool },
    /// The browser view of a stream.
    Page(StreamId),
    /// Router mode: the list of streams.
    Index,
}

impl Reply {
    fn json(status: u16, body: Vec<u8>, keep_alive: bool) -> Reply {
        Reply {
            status,
            content: Content::Json(body),
            keep_alive,
            head_only: false,
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }
}

/// What to do with a well-formed request on a listener with `routes`.
pub fn decide(req: &Request, routes: &Routes) -> Decision {
    let head_only = req.method == Method::Head;
    if req.method == Method::Options && req.path == "*" {
        // RFC 9110 §9.3.7: OPTIONS * asks about the server as a whole.
        return Decision::Reply(no_content(req.keep_alive).header("Allow", ALLOW));
    }
    let Some(endpoint) = routes.lookup(&req.path) else {
        let mut reply = Reply::json(404, not_found_body(routes, &req.path), req.keep_alive);
        reply.head_only = head_only;
        return Decision::Reply(reply);
    };
    match req.method {
        Method::Get | Method::Head => {}
        Method::Options => {
            // A CORS preflight (a cross-origin fetch that adds Last-Event-ID or
            // Authorization) must succeed before the browser sends the real GET.
            let allow_headers = req
                .cors_request_headers
                .as_deref()
                .unwrap_or(CORS_ALLOW_HEADERS);
            return Decision::Reply(
                no_content(req.keep_alive)
                    .header("Allow", ALLOW)
                    .header("Access-Control-Allow-Methods", ALLOW)
                    .header("Access-Control-Allow-Headers", allow_headers)
                    .header("Access-Control-Max-Age", CORS_MAX_AGE)
                    .header("Vary", "Access-Control-Request-Headers"),
            );
        }
        Method::Other => {
            let body = error_body(
                "Method Not Allowed",
                Some("only GET, HEAD and OPTIONS are supported"),
            );
            return Decision::Reply(Reply::json(405, body, false).header("Allow", ALLOW));
        }
    }
    let chunked = !req.http10;
    let content = match endpoint {
        Endpoint::Status(s) => Content::StreamStatus(s),
        Endpoint::GlobalStatus => Content::AllStatus,
        Endpoint::Metrics => Content::Metrics,
        Endpoint::Page(s) => Content::Page(s),
        Endpoint::Index => Content::Index,
        Endpoint::AddSlash => {
            let location = match &req.query {
                Some(q) => format!("{}/?{q}", req.path),
                None => format!("{}/", req.path),
            };
            let mut reply =
                Reply::json(301, Vec::new(), req.keep_alive).header("Location", location);
            reply.content = Content::None;
            return Decision::Reply(reply);
        }
        Endpoint::Stream(stream) if !head_only => return stream_decision(req, stream),
        Endpoint::Stream(_) => Content::StreamHead { chunked },
    };
    let keep_alive = req.keep_alive && !matches!(content, Content::StreamHead { .. });
    Decision::Reply(Reply {
        status: 200,
        content,
        keep_alive,
        head_only,
        headers: Vec::new(),
    })
}

/// A GET of a stream path: its filters and resume point from the query (a bad one is a
/// 400 naming the parameter), and an upgrade to WebSocket when one is asked.
fn stream_decision(req: &Request, stream: StreamId) -> Decision {
    let bad = |e: QueryError| {
        let v = serde_json::json!({
            "error": "Bad Request",
            "message": e.to_string(),
            "parameter": e.param,
        });
        Decision::Reply(Reply::json(
            400,
            serde_json::to_vec(&v).unwrap_or_default(),
            false,
        ))
    };
    let filter = match ClientFilter::from_query(req.query.as_deref()) {
        Ok(f) => f,
        Err(e) => return bad(e),
    };
    // The header (what browsers send on their own) wins over the query parameter (what
    // a page or a WebSocket client, which cannot set headers, sends).
    let last_event_id = match req
        .last_event_id
        .as_deref()
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(id) => Some(id),
        None => match filter::last_event_id(req.query.as_deref()) {
            Ok(id) => id,
            Err(e) => return bad(e),
        },
    };
    #[cfg(feature = "websocket")]
    let websocket = match req.upgrade.decide(req.method == Method::Get, req.http10) {
        crate::ws::Handshake::NotRequested => None,
        crate::ws::Handshake::Accept(accept) => Some(accept),
        crate::ws::Handshake::Refuse(refusal) => {
            let body = error_body(reason(refusal.status()), Some(refusal.detail()));
            let mut reply = Reply::json(refusal.status(), body, false);
            for (name, value) in refusal.headers() {
                reply = reply.header(name, *value);
            }
            return Decision::Reply(reply);
        }
    };
    #[cfg(not(feature = "websocket"))]
    let websocket = None;
    Decision::Stream {
        stream,
        last_event_id,
        chunked: !req.http10 && websocket.is_none(),
        filter: Box::new(filter),
        websocket,
    }
}

fn no_content(keep_alive: bool) -> Reply {
    Reply {
        status: 204,
        content: Content::None,
        keep_alive,
        head_only: false,
        headers: Vec::new(),
    }
}

/// The answer to a request that could not be parsed; the connection closes after it.
pub fn error_reply(e: HttpError) -> Reply {
    Reply::json(
        e.status(),
        error_body(reason(e.status()), Some(e.detail())),
        false,
    )
}

/// The answer to a request refused by a limit; the connection closes after it.
/// Why a request was refused by authentication: for counters and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// No credentials, wrong ones, or unreadable ones: `401`.
    Unauthorized,
    /// Checking them would hash a password and the hash budget is spent: `503`.
    Busy,
}

/// The authentication step, after routing and rate limiting: `Ok` lets the request on,
/// `Err` is the answer. CORS preflights pass (browsers send them without credentials);
/// everything else on the listener is protected, unknown paths included, so a 404 does not
/// list the endpoints to strangers.
pub fn authenticate(
    req: &Request,
    auth: &mut Auth,
    client_certificate: bool,
    now_ms: u64,
) -> Result<Principal, (AuthRefusal, Reply)> {
    if req.method == Method::Options {
        return Ok(Principal::Anyone);
    }
    let outcome = match &req.authorization {
        Some(None) if auth.kind() != AuthKind::None => {
            AuthOutcome::Malformed("the Authorization header was sent more than once")
        }
        Some(None) => AuthOutcome::Allowed(Principal::Anyone),
        Some(Some(value)) => auth.check(Some(value), client_certificate, now_ms),
        None => auth.check(None, client_certificate, now_ms),
    };
    let message = match outcome {
        AuthOutcome::Allowed(who) => return Ok(who),
        AuthOutcome::Busy { retry_after_secs } => {
            let reply = Reply::json(
                503,
                error_body(
                    "Service Unavailable",
                    Some("too many password checks at once; retry shortly"),
                ),
                req.keep_alive,
            )
            .header("Retry-After", retry_after_secs.to_string());
            return Err((AuthRefusal::Busy, reply));
        }
        AuthOutcome::Missing if auth.kind() == AuthKind::Mtls => "a client certificate is required",
        AuthOutcome::Missing => "credentials are required",
        AuthOutcome::Invalid => "invalid credentials",
        AuthOutcome::Malformed(why) => why,
    };
    // A 401 must say how to authenticate; a certificate cannot be asked for over HTTP.
    let mut reply = match auth.www_authenticate() {
        Some(challenge) => Reply::json(
            401,
            error_body("Unauthorized", Some(message)),
            req.keep_alive,
        )
        .header("WWW-Authenticate", challenge),
        None => Reply::json(403, error_body("Forbidden", Some(message)), req.keep_alive),
    };
    reply.head_only = req.method == Method::Head;
    Err((AuthRefusal::Unauthorized, reply))
}

pub fn refusal_reply(status: u16, message: &str, retry_after_secs: u64) -> Reply {
    Reply::json(status, error_body(message, None), false)
        .header("Retry-After", retry_after_secs.to_string())
}

fn not_found_body(routes: &Routes, path: &str) -> Vec<u8> {
    let mut endpoints = Vec::new();
    let mut described = Vec::new();
    for (p, e) in routes.paths() {
        endpoints.push(p.to_string());
        described.push(format!("{p} ({})", e.describe()));
    }
    let v = serde_json::json!({
        "error": "Not Found",
        "path": path,
        "message": format!("Available endpoints: {}", described.join(", ")),
        "endpoints": endpoints,
    });
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{Parse, parse};
    use crate::http::router::{DEFAULT_METRICS_PATH, StreamPaths};

    const APP: StreamId = StreamId {
        index: 3,
        generation: 7,
    };

    fn routes() -> Routes {
        let mut r = Routes::new(false);
        r.add_stream(
            APP,
            "app",
            StreamPaths {
                stream: "/stream",
                status: "/status",
                metrics: DEFAULT_METRICS_PATH,
            },
        );
        r
    }

    fn decide_raw(raw: &str) -> Decision {
        match parse(raw.as_bytes()) {
            Parse::Done(req) => decide(&req, &routes()),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn reply(raw: &str) -> Reply {
        match decide_raw(raw) {
            Decision::Reply(r) => r,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    /// (stream, last id, chunked, websocket) of a stream decision.
    fn streamed(raw: &str) -> (StreamId, Option<u64>, bool, bool) {
        match decide_raw(raw) {
            Decision::Stream {
                stream,
                last_event_id,
                chunked,
                websocket,
                ..
            } => (stream, last_event_id, chunked, websocket.is_some()),
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    #[test]
    fn a_get_of_the_stream_path_streams_from_last_event_id() {
        assert_eq!(
            streamed("GET /stream HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 41\r\n\r\n"),
            (APP, Some(41), true, false)
        );
        assert_eq!(
            streamed("GET /stream HTTP/1.0\r\nLast-Event-ID: junk\r\n\r\n"),
            (APP, None, false, false)
        );
        // The query parameter, for clients that cannot set headers; the header wins.
        assert_eq!(
            streamed("GET /stream?last_event_id=7 HTTP/1.1\r\nHost: a\r\n\r\n"),
            (APP, Some(7), true, false)
        );
        assert_eq!(
            streamed("GET /stream?last_event_id=7 HTTP/1.1\r\nHost: a\r\nLast-Event-ID: 9\r\n\r\n"),
            (APP, Some(9), true, false)
        );
    }

    #[test]
    fn a_bad_filter_is_a_400_naming_the_parameter() {
        let r = reply("GET /stream?filter=%28 HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(r.status, 400);
        let Content::Json(body) = r.content else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["parameter"], "filter");
    }

    #[cfg(feature = "websocket")]
    #[test]
    fn a_websocket_upgrade_is_accepted_or_refused() {
        let ws = "GET /stream HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(streamed(ws), (APP, None, false, true));
        let old = ws.replace("Version: 13", "Version: 8");
        assert_eq!(reply(&old).status, 426);
    }

    #[test]
    fn the_page_is_at_the_root_and_a_router_adds_the_slash() {
        assert_eq!(
            reply("GET / HTTP/1.1\r\nHost: a\r\n\r\n").content,
            Content::Page(APP)
        );
        let mut r = Routes::new(true);
        r.add_stream(
            APP,
            "app",
            StreamPaths {
                stream: "/stream",
                status: "/status",
                metrics: DEFAULT_METRICS_PATH,
            },
        );
        let Parse::Done(req) = parse(b"GET /app?levels=ERROR HTTP/1.1\r\nHost: a\r\n\r\n") else {
            panic!()
        };
        let Decision::Reply(reply) = decide(&req, &r) else {
            panic!()
        };
        assert_eq!(reply.status, 301);
        assert!(
            reply
                .headers
                .contains(&("Location", "/app/?levels=ERROR".to_string()))
        );
    }

    #[test]
    fn the_table_of_answers() {
        let cases: &[(&str, u16, bool)] = &[
            ("GET /status HTTP/1.1\r\nHost: a\r\n\r\n", 200, true),
            ("GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n", 200, true),
            ("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404, true),
            (
                "GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                404,
                false,
            ),
            ("DELETE /status HTTP/1.1\r\nHost: a\r\n\r\n", 405, false),
            ("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 204, true),
            ("OPTIONS /stream HTTP/1.1\r\nHost: a\r\n\r\n", 204, true),
            ("HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n", 200, false),
        ];
        for (raw, status, keep_alive) in cases {
            let r = reply(raw);
            assert_eq!((r.status, r.keep_alive), (*status, *keep_alive), "{raw:?}");
        }
        assert_eq!(
            reply("GET /status HTTP/1.1\r\nHost: a\r\n\r\n").content,
            Content::StreamStatus(APP)
        );
        let head = reply("HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        assert_eq!(head.content, Content::StreamHead { chunked: true });
        assert!(head.head_only);
    }

    #[test]
    fn a_404_lists_the_endpoints() {
        let Content::Json(body) = reply("GET /x HTTP/1.1\r\nHost: a\r\n\r\n").content else {
            panic!("a JSON body");
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v["endpoints"],
            serde_json::json!(["/stream", "/status", "/metrics", "/"])
        );
        assert_eq!(v["path"], "/x");
    }

    #[test]
    fn a_preflight_echoes_the_headers_asked_for() {
        let r = reply(
            "OPTIONS /stream HTTP/1.1\r\nHost: a\r\nOrigin: http://x\r\n\
             Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id\r\n\r\n",
        );
        assert!(
            r.headers
                .contains(&("Access-Control-Allow-Headers", "last-event-id".to_string())),
            "{:?}",
            r.headers
        );
    }

    fn request(raw: &str) -> Request {
        match parse(raw.as_bytes()) {
            Parse::Done(req) => req,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn bearer() -> Auth {
        Auth::bearer("logs", vec![crate::auth::Token::new("t0k3n").unwrap()]).unwrap()
    }

    #[test]
    fn a_request_without_credentials_gets_401_with_the_challenge() {
        let req = request("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        let Err((why, r)) = authenticate(&req, &mut bearer(), false, 0) else {
            panic!("refused");
        };
        assert_eq!(why, AuthRefusal::Unauthorized);
        assert_eq!(r.status, 401);
        assert!(r.keep_alive);
        assert!(
            r.headers
                .contains(&("WWW-Authenticate", "Bearer realm=\"logs\"".into())),
            "{:?}",
            r.headers
        );
        let Content::Json(body) = r.content else {
            panic!("a JSON body")
        };
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["message"], "credentials are required");
    }

    #[test]
    fn the_right_token_passes_and_a_wrong_one_is_named_invalid() {
        let ok = request("GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0k3n\r\n\r\n");
        assert_eq!(
            authenticate(&ok, &mut bearer(), false, 0),
            Ok(Principal::Token(0))
        );
        let bad = request("GET /status HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer nope\r\n\r\n");
        let Err((_, r)) = authenticate(&bad, &mut bearer(), false, 0) else {
            panic!("refused");
        };
        let Content::Json(body) = r.content else {
            panic!("a JSON body")
        };
        assert!(String::from_utf8_lossy(&body).contains("invalid credentials"));
    }

    #[test]
    fn two_authorization_headers_are_refused_and_preflights_pass() {
        let twice = request(
            "GET /stream HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer t0k3n\r\n\
             Authorization: Bearer t0k3n\r\n\r\n",
        );
        assert!(authenticate(&twice, &mut bearer(), false, 0).is_err());
        assert_eq!(
            authenticate(&twice, &mut Auth::none(), false, 0),
            Ok(Principal::Anyone)
        );
        let preflight = request("OPTIONS /stream HTTP/1.1\r\nHost: a\r\nOrigin: http://x\r\n\r\n");
        assert_eq!(
            authenticate(&preflight, &mut bearer(), false, 0),
            Ok(Principal::Anyone)
        );
    }

    #[test]
    fn head_refusals_have_no_body_and_mtls_without_a_certificate_is_403() {
        let head = request("HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        let Err((_, r)) = authenticate(&head, &mut bearer(), false, 0) else {
            panic!("refused");
        };
        assert!(r.head_only);
        let get = request("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n");
        let Err((_, r)) = authenticate(&get, &mut Auth::mtls(), false, 0) else {
            panic!("refused");
        };
        assert_eq!(r.status, 403);
        assert!(r.headers.iter().all(|(n, _)| *n != "WWW-Authenticate"));
        assert_eq!(
            authenticate(&get, &mut Auth::mtls(), true, 0),
            Ok(Principal::Certificate)
        );
    }
}
