//! The browser view (SPEC §15): one self-contained HTML page per stream, compiled into the
//! binary, and in router mode an index of the streams.
//!
//! The page (`page/index.html`) has no external assets (edge boxes are often offline) and
//! reaches its stream by a URL relative to itself, so it works behind a reverse proxy under
//! any sub-path. It sets the client filters of SPEC §14 in the stream URL's query and in
//! its own URL (a reload keeps them), and resumes with `?last_event_id=N` when it has to
//! open a new EventSource (which cannot send `Last-Event-ID` itself). Entry text is only
//! ever inserted as text; the Content-Security-Policy below (inline script and style
//! allowed by hash only, no other sources) is a second line of defence.
//!
//! Serving it (the HTTP layer's part): `GET /` of a stream's HTTP server answers
//! [`stream_page_for`] with [`PAGE_HEADERS`]; in router mode `GET /` answers
//! [`router_index`] with [`INDEX_HEADERS`] and `GET /{name}/` the stream's page (the page
//! needs the trailing slash to resolve its relative stream URL; `/{name}` should redirect
//! there).

use std::borrow::Cow;
use std::fmt::Write as _;

const PAGE: &str = include_str!("page/index.html");

/// The element the page reads its stream URL from, as shipped (stream path `/stream`).
const STREAM_META: &str = r#"<meta name="logwisp-stream" content="./stream">"#;

pub const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Policy of the stream page: its one inline script and one inline style, by hash
/// (checked by a test against the page), and connections to its own origin only.
pub const PAGE_CSP: &str = "default-src 'none'; \
     script-src 'sha256-fHunj4ouQuF4Lt86ub0KBN0fe54LVfJ89zsW06wWiEI='; \
     style-src 'sha256-myvD8Sp35WlO0jiqQaKaSHjbmd7eO+vzXEV5tq6qdWs='; \
     connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'";

/// Policy of the router index: no script at all.
pub const INDEX_CSP: &str = "default-src 'none'; \
     style-src 'sha256-CcTaCvoXW6uYnP+GDxghNEI28xxh62sKCtVhudGQNYM='; img-src data:; base-uri 'none'; form-action 'none'";

/// Headers of the stream page, besides those every response carries (Date, length,
/// connection). `no-cache`: the page is small and changes with the binary.
pub const PAGE_HEADERS: [(&str, &str); 5] = [
    ("Content-Type", CONTENT_TYPE),
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", PAGE_CSP),
];

/// Headers of the router index.
pub const INDEX_HEADERS: [(&str, &str); 5] = [
    ("Content-Type", CONTENT_TYPE),
    ("Cache-Control", "no-cache"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", INDEX_CSP),
];

/// The page for a stream served at `/stream` (the default stream path).
pub fn stream_page() -> &'static [u8] {
    PAGE.as_bytes()
}

/// The page for a stream whose configured `stream_path` is given (`/stream`, `/events`):
/// the page sits at the stream's root (`/`, or `/{name}/` in router mode, where the
/// stream is `/{name}{stream_path}`), so the stream is `.{stream_path}` relative to it in
/// both modes. Borrowed for the default path; worth computing once per stream.
pub fn stream_page_for(stream_path: &str) -> Cow<'static, [u8]> {
    let relative = format!("./{}", stream_path.trim_start_matches('/'));
    if relative == "./stream" {
        return Cow::Borrowed(PAGE.as_bytes());
    }
    let mut meta = String::from(r#"<meta name="logwisp-stream" content=""#);
    escape_into(&mut meta, &relative);
    meta.push_str(r#"">"#);
    Cow::Owned(PAGE.replacen(STREAM_META, &meta, 1).into_bytes())
}

const INDEX_STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1f1f1f;--bg:#fff;--muted:#5f6368;--link:#0b57d0}\
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#131313;--muted:#a9a9a9;--link:#8ab4f8}}\
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.5 system-ui,-apple-system,\"Segoe UI\",Roboto,sans-serif}\
main{max-width:48rem;margin:2rem auto;padding:0 1rem}\
a{color:var(--link)}\
a:focus-visible{outline:2px solid var(--link);outline-offset:2px}\
li{margin:.4rem 0}\
code{color:var(--muted);margin-left:.6rem}";

/// Router mode's `GET /`: links to each stream's page. `streams` are `(name, stream_path)`
/// with the stream path as configured (`/stream`), before the router's `/{name}` prefix.
/// Links are relative, so the index works under a proxy's sub-path too.
pub fn router_index(streams: &[(&str, &str)]) -> Vec<u8> {
    let mut out = String::with_capacity(1024 + 160 * streams.len());
    out.push_str(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <link rel=\"icon\" href=\"data:,\">\n<title>logwisp</title>\n<style>",
    );
    out.push_str(INDEX_STYLE);
    out.push_str("</style>\n</head>\n<body>\n<main>\n<h1>logwisp</h1>\n");
    if streams.is_empty() {
        out.push_str("<p>No stream is served over HTTP here.</p>\n");
    } else {
        out.push_str("<ul>\n");
        for (name, path) in streams {
            out.push_str("<li><a href=\"./");
            encode_path_into(&mut out, name);
            out.push_str("/\">");
            escape_into(&mut out, name);
            out.push_str("</a><code>/");
            escape_into(&mut out, name);
            escape_into(&mut out, path);
            out.push_str("</code></li>\n");
        }
        out.push_str("</ul>\n");
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out.into_bytes()
}

/// Text or attribute value as HTML: nothing in it can end an element or an attribute.
fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// A path segment for an `href`: unreserved characters stay, the rest is %XX, so a name
/// cannot add a scheme, a query or another segment.
fn encode_path_into(out: &mut String, s: &str) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-4 SHA-256, enough to check the policy's hashes without a dependency.
    fn sha256(data: &[u8]) -> [u8; 32] {
        const K: [u32; 64] = [
            0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
            0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
            0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
            0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
            0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
            0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
            0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
            0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
            0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
            0xc67178f2,
        ];
        let mut h: [u32; 8] = [
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab,
            0x5be0cd19,
        ];
        let mut msg = data.to_vec();
        msg.push(0x80);
        while msg.len() % 64 != 56 {
            msg.push(0);
        }
        msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
        for block in msg.chunks(64) {
            let mut w = [0u32; 64];
            for (i, word) in block.chunks(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = hh
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                hh = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
                *x = x.wrapping_add(y);
            }
        }
        let mut out = [0u8; 32];
        for (i, x) in h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&x.to_be_bytes());
        }
        out
    }

    fn base64(data: &[u8]) -> String {
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in data.chunks(3) {
            let n = u32::from(c[0]) << 16
                | u32::from(*c.get(1).unwrap_or(&0)) << 8
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(char::from(A[(n >> (18 - 6 * i) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn csp_hash(text: &str) -> String {
        format!("'sha256-{}'", base64(&sha256(text.as_bytes())))
    }

    /// The text of the only `<tag>` element of `html`.
    fn element<'a>(html: &'a str, tag: &str) -> &'a str {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        assert_eq!(html.matches(&open).count(), 1, "one <{tag}>");
        let start = html.find(&open).map(|i| i + open.len()).unwrap_or(0);
        let end = html[start..]
            .find(&close)
            .map(|i| start + i)
            .unwrap_or(start);
        &html[start..end]
    }

    #[test]
    fn sha256_and_base64_are_right() {
        assert_eq!(
            base64(&sha256(b"abc")),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(
            base64(&sha256(&[b'a'; 1000])),
            "Qe3s5C1j6Nm/UVqbppMuHCDLyfWl0TRkWttdsblzfqM="
        );
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_script_and_styles() {
        let script = csp_hash(element(PAGE, "script"));
        let style = csp_hash(element(PAGE, "style"));
        let want = format!(
            "default-src 'none'; script-src {script}; style-src {style}; \
             connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'"
        );
        assert_eq!(PAGE_CSP, want, "the page changed: update PAGE_CSP");
        let index = String::from_utf8(router_index(&[("a", "/stream")])).unwrap();
        let style = csp_hash(element(&index, "style"));
        let want = format!(
            "default-src 'none'; style-src {style}; img-src data:; base-uri 'none'; \
             form-action 'none'"
        );
        assert_eq!(INDEX_CSP, want, "the index style changed: update INDEX_CSP");
        assert!(!index.contains("<script"));
    }

    #[test]
    fn the_page_is_small_and_self_contained() {
        let page = stream_page();
        assert!(page.len() <= 50 * 1024, "{} bytes", page.len());
        let text = std::str::from_utf8(page).unwrap();
        // JavaScript's `new URL(` is not a CSS url().
        let scan = text.replace("new URL(", "");
        for external in [
            "http:",
            "https:",
            "\"//",
            "'//",
            "@import",
            "url(",
            "stylesheet",
            " src=",
        ] {
            assert!(
                !scan.contains(external),
                "the page loads something: {external}"
            );
        }
        assert_eq!(text.matches(STREAM_META).count(), 1);
        // The page never parses entry text as markup.
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!text.contains(sink), "{sink}");
        }
    }

    #[test]
    fn the_stream_url_is_relative_to_the_page() {
        assert!(matches!(stream_page_for("/stream"), Cow::Borrowed(_)));
        let page = stream_page_for("/events/live");
        let text = std::str::from_utf8(&page).unwrap();
        assert!(text.contains(r#"<meta name="logwisp-stream" content="./events/live">"#));
        assert!(!text.contains(STREAM_META));
        assert_eq!(
            page.len(),
            PAGE.len() + "events/live".len() - "stream".len()
        );
        // A path cannot break out of the attribute.
        let page = stream_page_for("/a\"><script>x</script>");
        let text = std::str::from_utf8(&page).unwrap();
        assert!(text.contains(r#"content="./a&quot;&gt;&lt;script&gt;x&lt;/script&gt;">"#));
    }

    #[test]
    fn the_index_links_each_stream_relatively_and_escapes_names() {
        let index = router_index(&[("app", "/stream"), ("db-1", "/events")]);
        let text = std::str::from_utf8(&index).unwrap();
        assert!(text.contains(r#"<li><a href="./app/">app</a><code>/app/stream</code></li>"#));
        assert!(text.contains(r#"<li><a href="./db-1/">db-1</a><code>/db-1/events</code></li>"#));
        let index = router_index(&[("<b>\"x\"</b>", "/s&t")]);
        let text = std::str::from_utf8(&index).unwrap();
        assert!(text.contains(
            "<a href=\"./%3Cb%3E%22x%22%3C%2Fb%3E/\">&lt;b&gt;&quot;x&quot;&lt;/b&gt;</a>\
             <code>/&lt;b&gt;&quot;x&quot;&lt;/b&gt;/s&amp;t</code>"
        ));
        assert!(!text.contains("<b>"));
        let empty = router_index(&[]);
        assert!(std::str::from_utf8(&empty).unwrap().contains("No stream"));
    }
}
