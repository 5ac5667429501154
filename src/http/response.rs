//! Response heads and canned bodies. Responses are small and written whole into the
//! connection's output buffer; only SSE streams stay open.

use crate::fanout::push_decimal;

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        s if s < 500 => "Client Error",
        _ => "Server Error",
    }
}

/// A complete response (JSON, or the metrics text).
pub struct JsonResponse<'a> {
    pub status: u16,
    pub body: &'a [u8],
    pub keep_alive: bool,
    /// HEAD: the same head, no body.
    pub head_only: bool,
    pub extra_headers: &'a [(&'a str, &'a str)],
    /// The `Date` value, from [`crate::timefmt::http_date`] of the reactor's turn.
    pub date: [u8; 29],
    pub content_type: &'a str,
}

impl JsonResponse<'_> {
    pub fn write(&self, out: &mut Vec<u8>) {
        // RFC 9110 §6.4.1 and §8.6: a 204 has no content and no Content-Length.
        let no_content = self.status == 204;
        // An extra header of the same name replaces the default rather than repeating it:
        // Content-Type is a singleton field (RFC 9110 §8.3), and two Cache-Control
        // values would combine into both.
        let overridden = |name: &str| {
            self.extra_headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(&self.date);
        if !no_content && !overridden("Content-Type") {
            out.extend_from_slice(b"\r\nContent-Type: ");
            out.extend_from_slice(self.content_type.as_bytes());
        }
        if !no_content && !overridden("Cache-Control") {
            out.extend_from_slice(b"\r\nCache-Control: no-store");
        }
        out.extend_from_slice(b"\r\nAccess-Control-Allow-Origin: *\r\nServer: logwisp\r\n");
        for (name, value) in self.extra_headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !no_content {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, self.body.len() as u64);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if self.keep_alive {
            b"Connection: keep-alive\r\n\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });
        if !self.head_only && !no_content {
            out.extend_from_slice(self.body);
        }
    }
}

/// `{"error": <message>}` plus optional detail, as JSON bytes.
pub fn error_body(error: &str, message: Option<&str>) -> Vec<u8> {
    let mut v = serde_json::Map::new();
    v.insert("error".into(), error.into());
    if let Some(m) = message {
        v.insert("message".into(), m.into());
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_complete_response() {
        let mut out = Vec::new();
        JsonResponse {
            status: 429,
            body: br#"{"error":"Rate limit exceeded"}"#,
            keep_alive: false,
            head_only: false,
            extra_headers: &[("Retry-After", "2")],
            date: *b"Tue, 07 Jan 2025 10:30:00 GMT",
            content_type: "application/json",
        }
        .write(&mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with(
            "HTTP/1.1 429 Too Many Requests\r\nDate: Tue, 07 Jan 2025 10:30:00 GMT\r\n"
        ));
        assert!(text.contains("\r\nRetry-After: 2\r\n"));
        assert!(text.contains("\r\nContent-Length: 31\r\nConnection: close\r\n\r\n"));
        assert!(text.ends_with(r#"{"error":"Rate limit exceeded"}"#));
    }

    #[test]
    fn extra_headers_replace_the_defaults_of_the_same_name() {
        let mut out = Vec::new();
        JsonResponse {
            status: 200,
            body: b"<!doctype html>",
            keep_alive: true,
            head_only: false,
            extra_headers: &[
                ("Content-Type", "text/html; charset=utf-8"),
                ("cache-control", "no-cache"),
            ],
            date: *b"Thu, 01 Jan 1970 00:00:00 GMT",
            content_type: "text/html; charset=utf-8",
        }
        .write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 200 OK\r\n\
             Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Access-Control-Allow-Origin: *\r\n\
             Server: logwisp\r\n\
             Content-Type: text/html; charset=utf-8\r\n\
             cache-control: no-cache\r\n\
             Content-Length: 15\r\n\
             Connection: keep-alive\r\n\r\n\
             <!doctype html>"
        );
    }

    #[test]
    fn head_only_omits_the_body() {
        let mut out = Vec::new();
        JsonResponse {
            status: 200,
            body: b"{}",
            keep_alive: true,
            head_only: true,
            extra_headers: &[],
            date: *b"Thu, 01 Jan 1970 00:00:00 GMT",
            content_type: "application/json",
        }
        .write(&mut out);
        assert!(out.ends_with(b"Content-Length: 2\r\nConnection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn no_content_has_neither_body_nor_length() {
        let mut out = Vec::new();
        JsonResponse {
            status: 204,
            body: b"{}",
            keep_alive: true,
            head_only: false,
            extra_headers: &[("Allow", "GET, HEAD, OPTIONS")],
            date: *b"Thu, 01 Jan 1970 00:00:00 GMT",
            content_type: "application/json",
        }
        .write(&mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "HTTP/1.1 204 No Content\r\n\
             Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Access-Control-Allow-Origin: *\r\n\
             Server: logwisp\r\n\
             Allow: GET, HEAD, OPTIONS\r\n\
             Connection: keep-alive\r\n\r\n"
        );
    }
}
