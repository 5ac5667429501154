//! The server half of the NATS text protocol, parsed one operation at a time from the
//! front of a buffer (the shape of nats-server's `parser.go`, without its state bytes: a
//! control line is short, so re-reading it when the rest arrives costs nothing).
//!
//! Lenient where real servers differ from the documentation (nats-server 2.9 sends
//! `MSG subj 1  23`, two spaces, and `INFO {...} ` with a trailing space; a bare `\n`
//! ends a line as in `parser.go`), strict about sizes: a control line longer than
//! [`MAX_CONTROL_LINE`] or a message longer than the caller's limit is an error, so a
//! broken server cannot make the buffer grow without bound.

use std::fmt;

/// Longest control line accepted. INFO carries the cluster's `connect_urls` and so can be
/// long; nats.go accepts INFO lines of this order too.
pub const MAX_CONTROL_LINE: usize = 64 * 1024;

/// One operation from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op<'a> {
    /// `INFO {json}`: the JSON text.
    Info(&'a [u8]),
    /// `MSG` (headers `None`) or `HMSG` (headers including the `NATS/1.0` line and the
    /// blank line that ends them).
    Msg {
        subject: &'a str,
        sid: u64,
        reply: Option<&'a str>,
        headers: Option<&'a [u8]>,
        payload: &'a [u8],
    },
    Ping,
    Pong,
    Ok,
    /// `-ERR 'text'`: the text without its quotes.
    Err(&'a str),
}

/// A reason to give up on the connection: the server's bytes are not the protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtoError {
    LineTooLong,
    UnknownOp(String),
    BadArgs(&'static str),
    MsgTooLarge(usize),
    /// The two bytes after a message payload were not `\r\n`.
    BadTerminator,
}

impl fmt::Display for ProtoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtoError::LineTooLong => write!(f, "control line over {MAX_CONTROL_LINE} bytes"),
            ProtoError::UnknownOp(op) => write!(f, "unknown operation {op:?}"),
            ProtoError::BadArgs(op) => write!(f, "malformed {op} arguments"),
            ProtoError::MsgTooLarge(n) => write!(f, "message of {n} bytes is over the limit"),
            ProtoError::BadTerminator => f.write_str("message payload not followed by CRLF"),
        }
    }
}

/// The result of looking at the front of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// An operation and the number of bytes it used.
    Op(Op<'a>, usize),
    /// More bytes are needed: the control line has no end yet (`None`), or the message
    /// it announces ends at buffer length `Some(n)`.
    Partial { need: Option<usize> },
}

/// Parses the operation at the front of `buf`. `max_msg` bounds MSG/HMSG sizes.
pub fn parse(buf: &[u8], max_msg: usize) -> Result<Parsed<'_>, ProtoError> {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > MAX_CONTROL_LINE {
            return Err(ProtoError::LineTooLong);
        }
        return Ok(Parsed::Partial { need: None });
    };
    if nl > MAX_CONTROL_LINE {
        return Err(ProtoError::LineTooLong);
    }
    let line = buf[..nl].strip_suffix(b"\r").unwrap_or(&buf[..nl]);
    let after_line = nl + 1;
    let (op, rest) = split_op(line);
    let op_upper = op.to_ascii_uppercase();
    let simple = |op: Op<'static>| -> Result<Parsed<'_>, ProtoError> {
        if rest.iter().all(|b| b.is_ascii_whitespace()) {
            Ok(Parsed::Op(op, after_line))
        } else {
            Err(ProtoError::BadArgs(op_name(&op)))
        }
    };
    match op_upper.as_slice() {
        b"PING" => simple(Op::Ping),
        b"PONG" => simple(Op::Pong),
        b"+OK" => simple(Op::Ok),
        b"-ERR" => {
            let text = std::str::from_utf8(trim(rest)).map_err(|_| ProtoError::BadArgs("-ERR"))?;
            let text = text
                .strip_prefix('\'')
                .and_then(|t| t.strip_suffix('\''))
                .unwrap_or(text);
            Ok(Parsed::Op(Op::Err(text), after_line))
        }
        b"INFO" => Ok(Parsed::Op(Op::Info(trim(rest)), after_line)),
        b"MSG" => msg(buf, rest, after_line, false, max_msg),
        b"HMSG" => msg(buf, rest, after_line, true, max_msg),
        _ => Err(ProtoError::UnknownOp(
            String::from_utf8_lossy(&op[..op.len().min(32)]).into_owned(),
        )),
    }
}

fn op_name(op: &Op<'_>) -> &'static str {
    match op {
        Op::Ping => "PING",
        Op::Pong => "PONG",
        Op::Ok => "+OK",
        Op::Info(_) => "INFO",
        Op::Msg { .. } => "MSG",
        Op::Err(_) => "-ERR",
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |e| e + 1);
    &s[start..end.max(start)]
}

fn split_op(line: &[u8]) -> (&[u8], &[u8]) {
    let line = trim(line);
    match line.iter().position(|&b| is_space(b)) {
        Some(i) => (&line[..i], &line[i..]),
        None => (line, &[]),
    }
}

fn number(arg: &[u8]) -> Option<u64> {
    if arg.is_empty() || arg.len() > 19 || !arg.iter().all(u8::is_ascii_digit) {
        return None;
    }
    arg.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn msg<'a>(
    buf: &'a [u8],
    args: &'a [u8],
    body_start: usize,
    with_headers: bool,
    max_msg: usize,
) -> Result<Parsed<'a>, ProtoError> {
    let name = if with_headers { "HMSG" } else { "MSG" };
    let bad = ProtoError::BadArgs(name);
    let mut parts = [&[][..]; 5];
    let mut n = 0;
    for part in args.split(|&b| is_space(b)).filter(|p| !p.is_empty()) {
        if n == parts.len() {
            return Err(bad);
        }
        parts[n] = part;
        n += 1;
    }
    let sizes = if with_headers { 2 } else { 1 };
    if n != 2 + sizes && n != 3 + sizes {
        return Err(bad);
    }
    let subject = std::str::from_utf8(parts[0]).map_err(|_| bad.clone())?;
    let sid = number(parts[1]).ok_or(bad.clone())?;
    let reply = if n == 3 + sizes {
        Some(std::str::from_utf8(parts[2]).map_err(|_| bad.clone())?)
    } else {
        None
    };
    let total = number(parts[n - 1]).ok_or(bad.clone())?;
    let header_len = if with_headers {
        number(parts[n - 2]).ok_or(bad.clone())?
    } else {
        0
    };
    if header_len > total {
        return Err(bad);
    }
    if total > max_msg as u64 {
        return Err(ProtoError::MsgTooLarge(
            usize::try_from(total).unwrap_or(usize::MAX),
        ));
    }
    let (total, header_len) = (total as usize, header_len as usize);
    let end = body_start + total;
    if buf.len() < end + 2 {
        return Ok(Parsed::Partial {
            need: Some(end + 2),
        });
    }
    if &buf[end..end + 2] != b"\r\n" {
        return Err(ProtoError::BadTerminator);
    }
    let body = &buf[body_start..end];
    Ok(Parsed::Op(
        Op::Msg {
            subject,
            sid,
            reply,
            headers: with_headers.then(|| &body[..header_len]),
            payload: &body[header_len..],
        },
        end + 2,
    ))
}

/// The status of an HMSG header block (`NATS/1.0 503` → `(503, "")`,
/// `NATS/1.0 408 Request Timeout` → `(408, "Request Timeout")`), if it has one.
pub fn header_status(headers: &[u8]) -> Option<(u16, &str)> {
    let first = headers.split(|&b| b == b'\n').next()?;
    let first = std::str::from_utf8(first).ok()?.trim_end_matches('\r');
    let rest = first.strip_prefix("NATS/1.0")?.trim_start();
    let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
    if code.len() != 3 {
        return None;
    }
    Some((code.parse().ok()?, text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(buf: &[u8]) -> (Op<'_>, usize) {
        match parse(buf, 1 << 20) {
            Ok(Parsed::Op(op, n)) => (op, n),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    #[test]
    fn simple_ops_in_any_case_with_or_without_cr() {
        assert_eq!(one(b"PING\r\n"), (Op::Ping, 6));
        assert_eq!(one(b"pong\n"), (Op::Pong, 5));
        assert_eq!(one(b"+OK\r\nPING"), (Op::Ok, 5));
        assert_eq!(
            one(b"-ERR 'Authorization Violation'\r\n").0,
            Op::Err("Authorization Violation")
        );
        assert_eq!(one(b"-ERR\r\n").0, Op::Err(""));
        assert_eq!(one(b"INFO {\"a\":1} \r\n").0, Op::Info(b"{\"a\":1}"));
    }

    #[test]
    fn msg_forms_as_nats_server_2_9_sends_them() {
        let (op, n) = one(b"MSG _INBOX.x.1 1  23\r\n{\"stream\":\"T\", \"seq\":1}\r\nPING\r\n");
        assert_eq!(n, 47);
        assert_eq!(
            op,
            Op::Msg {
                subject: "_INBOX.x.1",
                sid: 1,
                reply: None,
                headers: None,
                payload: b"{\"stream\":\"T\", \"seq\":1}"
            }
        );
        let (op, _) = one(b"HMSG _INBOX.x.9 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
        let Op::Msg {
            headers, payload, ..
        } = op
        else {
            panic!("{op:?}")
        };
        assert_eq!(payload, b"");
        assert_eq!(header_status(headers.unwrap()), Some((503, "")));
        let (op, _) = one(b"MSG a.b 7 r.1 2\r\nhi\r\n");
        assert!(matches!(
            op,
            Op::Msg {
                reply: Some("r.1"),
                sid: 7,
                ..
            }
        ));
    }

    #[test]
    fn partial_says_how_much_is_needed() {
        assert_eq!(parse(b"PIN", 10), Ok(Parsed::Partial { need: None }));
        assert_eq!(
            parse(b"MSG a 1 5\r\nhel", 10),
            Ok(Parsed::Partial {
                need: Some(11 + 5 + 2)
            })
        );
    }

    #[test]
    fn errors() {
        let err = |b: &[u8]| parse(b, 10).unwrap_err();
        assert_eq!(err(b"FOO\r\n"), ProtoError::UnknownOp("FOO".into()));
        assert_eq!(err(b"\r\n"), ProtoError::UnknownOp("".into()));
        assert_eq!(err(b"PING x\r\n"), ProtoError::BadArgs("PING"));
        assert_eq!(err(b"MSG a 1\r\n"), ProtoError::BadArgs("MSG"));
        assert_eq!(err(b"MSG a x 1\r\n"), ProtoError::BadArgs("MSG"));
        assert_eq!(err(b"MSG a 1 b c 1\r\n"), ProtoError::BadArgs("MSG"));
        assert_eq!(err(b"HMSG a 1 5 4\r\n"), ProtoError::BadArgs("HMSG"));
        assert_eq!(err(b"MSG a 1 11\r\n"), ProtoError::MsgTooLarge(11));
        assert_eq!(
            err(b"MSG a 1 99999999999999999999\r\n"),
            ProtoError::BadArgs("MSG")
        );
        assert_eq!(err(b"MSG a 1 2\r\nhixx"), ProtoError::BadTerminator);
        let long = vec![b'I'; MAX_CONTROL_LINE + 1];
        assert_eq!(err(&long), ProtoError::LineTooLong);
    }

    #[test]
    fn header_status_forms() {
        assert_eq!(header_status(b"NATS/1.0\r\nA: b\r\n\r\n"), None);
        assert_eq!(
            header_status(b"NATS/1.0 408 Request Timeout\r\n\r\n"),
            Some((408, "Request Timeout"))
        );
        assert_eq!(header_status(b"HTTP/1.1 200\r\n"), None);
    }
}
