//! Inputs found by the fuzz targets (fuzz/), kept as tests of the library functions.

use logwisp::entry::{Stamp, write_entry};
use logwisp::http::request::{MAX_HEAD, Parse, parse};
use logwisp::tail::lines::LineSplitter;

fn split(max: usize, chunks: &[&[u8]]) -> Vec<(String, bool)> {
    let mut s = LineSplitter::new(max);
    let mut out = Vec::new();
    for c in chunks {
        s.feed(c, &mut |l: &[u8], cut: bool, _start: u64| {
            out.push((String::from_utf8_lossy(l).into_owned(), cut));
            true
        });
    }
    out
}

/// fuzz/line_splitter: a line is cut when it is longer than `max` after its `\r` is
/// stripped, however the reads split it. Hex inputs: `01 00 01 03 61 62 0d 0a` and
/// `03 00 02 02 c8 61 61 61 61 0d 62 62 62 0a`.
#[test]
fn cut_flag_does_not_depend_on_read_boundaries() {
    // "ab" is exactly max = 2: not cut, even when the CR and LF come in separate reads.
    assert_eq!(split(2, &[b"ab\r\n"]), [("ab".into(), false)]);
    assert_eq!(split(2, &[b"ab\r", b"\n"]), [("ab".into(), false)]);
    // "aaaa\rbbb" is 8 bytes over max = 4: cut, even when the CR sits at the cut.
    assert_eq!(split(4, &[b"aaaa\rbbb\n"]), [("aaaa".into(), true)]);
    assert_eq!(split(4, &[b"aa", b"aa\rbbb\n"]), [("aaaa".into(), true)]);
}

/// fuzz/http_head: empty lines before the request line must count against the head limit,
/// or a client grows the connection buffer without bound (re-scanned on every read).
#[test]
fn leading_blank_lines_are_bounded() {
    let crlf = b"\r\n".repeat(MAX_HEAD);
    match parse(&crlf) {
        Parse::Partial => panic!("{} bytes of CRLF are still Partial", crlf.len()),
        Parse::Error(e) => assert!([400, 431].contains(&e.status()), "{e:?}"),
        Parse::Done(r) => panic!("{r:?}"),
    }
}

fn entry(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    write_entry(
        &mut out,
        line,
        b"\"app.log\"",
        &Stamp::from_micros(1_704_110_400_123_456),
    );
    out
}

/// fuzz/entry: a JSON line whose values the grammar allows but serde_json rejects (lone
/// UTF-16 surrogate escapes, numbers past f64) must still give an entry it can parse: one
/// odd field must not make the whole entry unreadable. Found as
/// `{"a":777777777777777777777771,"b WARN ":[77777777E7777777]}` and `{"msg":"\ud800"}`.
#[test]
fn values_serde_json_rejects_do_not_reach_entries() {
    for line in [
        &br#"{"a":777777777777777777777771,"b WARN ":[77777777E7777777]}"#[..],
        br#"{"msg":"m","n":1e400}"#,
        br#"{"msg":"m","n":-1E+999}"#,
        br#"{"msg":"\ud800"}"#,
        br#"{"message":"ok","x":"\udc00x"}"#,
        br#"{"level":"\ud83d","msg":"m"}"#,
        br#"{"fields":{"k":["\udfff"]}}"#,
    ] {
        let out = entry(line);
        let parsed = serde_json::from_slice::<serde_json::Value>(&out);
        assert!(
            parsed.is_ok(),
            "{}: {}",
            String::from_utf8_lossy(line),
            String::from_utf8_lossy(&out)
        );
    }
    // A valid pair is fine and stays as it was.
    let out = entry(br#"{"msg":"\ud83d\ude00"}"#);
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["message"], "\u{1f600}");
}

/// fuzz/entry (latent: lines never contain `\n` in the product): JSON whitespace inside a
/// value is kept raw unless it holds a `\r`, so a raw `\n` could reach SSE framing.
#[test]
fn raw_newlines_in_json_values_never_reach_entries() {
    let out = entry(b"{\"a\":[1,\n2],\"msg\":\"m\"}");
    assert!(!out.contains(&b'\n'), "{}", String::from_utf8_lossy(&out));
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["fields"]["a"], serde_json::json!([1, 2]));
}
