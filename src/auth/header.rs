//! The `Authorization` request header (RFC 7235 §4.2): `Basic` (RFC 7617) and `Bearer`
//! (RFC 6750) credentials. Any byte string gives an answer; nothing here panics.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};

/// RFC 7617 says padded base64; clients that leave the padding off mean the same thing.
const BASIC_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    Basic {
        user: String,
        password: String,
    },
    Bearer(&'a str),
    /// A well-formed header for a scheme this server does not speak (Digest, Negotiate…).
    Other,
}

/// Why a header could not be read; for logs and counters, never sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

pub fn parse(value: &[u8]) -> Result<Credentials<'_>, Malformed> {
    let value = value.trim_ascii();
    let scheme_len = value.iter().position(|&b| b == b' ').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(scheme_len);
    if scheme.is_empty() || !scheme.iter().all(|&b| is_tchar(b)) {
        return Err(Malformed("the scheme is not a token"));
    }
    // RFC 7235 allows one or more spaces between scheme and credentials.
    let rest = rest.trim_ascii_start();
    if scheme.eq_ignore_ascii_case(b"basic") {
        basic(rest)
    } else if scheme.eq_ignore_ascii_case(b"bearer") {
        bearer(rest)
    } else {
        Ok(Credentials::Other)
    }
}

fn basic(rest: &[u8]) -> Result<Credentials<'static>, Malformed> {
    if rest.is_empty() {
        return Err(Malformed("Basic without credentials"));
    }
    let decoded = BASIC_B64
        .decode(rest)
        .map_err(|_| Malformed("Basic credentials are not base64"))?;
    let text =
        String::from_utf8(decoded).map_err(|_| Malformed("Basic credentials are not UTF-8"))?;
    // The user-id cannot hold a colon, the password can: split at the first one.
    let (user, password) = text
        .split_once(':')
        .ok_or(Malformed("Basic credentials without a colon"))?;
    Ok(Credentials::Basic {
        user: user.to_string(),
        password: password.to_string(),
    })
}

fn bearer(rest: &[u8]) -> Result<Credentials<'_>, Malformed> {
    if rest.is_empty() {
        return Err(Malformed("Bearer without a token"));
    }
    if !is_b64token(rest) {
        return Err(Malformed(
            "the Bearer token has characters outside b64token",
        ));
    }
    // b64token is ASCII, so this cannot fail; the error path keeps it panic-free anyway.
    std::str::from_utf8(rest)
        .map(Credentials::Bearer)
        .map_err(|_| Malformed("the Bearer token is not ASCII"))
}

/// RFC 6750 §2.1: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
pub fn is_b64token(s: &[u8]) -> bool {
    let body = s.len() - s.iter().rev().take_while(|&&b| b == b'=').count();
    body > 0
        && s[..body]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic_of(user: &str, password: &str) -> Result<Credentials<'static>, Malformed> {
        Ok(Credentials::Basic {
            user: user.into(),
            password: password.into(),
        })
    }

    #[test]
    fn basic_credentials() {
        // RFC 7617 §2's example.
        assert_eq!(
            parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            basic_of("Aladdin", "open sesame")
        );
        assert_eq!(
            parse(b"basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
            basic_of("Aladdin", "open sesame")
        );
        assert_eq!(
            parse(b"BASIC   QWxhZGRpbjpvcGVuIHNlc2FtZQ== "),
            basic_of("Aladdin", "open sesame")
        );
        assert_eq!(
            parse(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ"),
            basic_of("Aladdin", "open sesame")
        );
        // RFC 7617 §2.1's UTF-8 example: "test" / "123£".
        assert_eq!(parse(b"Basic dGVzdDoxMjPCow=="), basic_of("test", "123£"));
        // Colons after the first belong to the password; both parts may be empty.
        assert_eq!(parse(b"Basic dTpwOnE6"), basic_of("u", "p:q:"));
        assert_eq!(parse(b"Basic Og=="), basic_of("", ""));
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(
            parse(b"Bearer mF_9.B5f-4.1JqM"),
            Ok(Credentials::Bearer("mF_9.B5f-4.1JqM"))
        );
        assert_eq!(
            parse(b"bearer abc+/~=="),
            Ok(Credentials::Bearer("abc+/~=="))
        );
        assert_eq!(parse(b"\tBearer  abc "), Ok(Credentials::Bearer("abc")));
    }

    #[test]
    fn other_schemes_are_not_ours() {
        for h in [
            &b"Digest username=\"x\", realm=\"y\""[..],
            b"Negotiate YII=",
            b"Token abc",
            b"Basicx",
        ] {
            assert_eq!(
                parse(h),
                Ok(Credentials::Other),
                "{:?}",
                String::from_utf8_lossy(h)
            );
        }
    }

    #[test]
    fn malformed_headers_say_why() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "the scheme is not a token"),
            (b"   ", "the scheme is not a token"),
            (b"(Basic) abc", "the scheme is not a token"),
            (b"B\xffsic abc", "the scheme is not a token"),
            (b"Basic", "Basic without credentials"),
            (b"Basic ", "Basic without credentials"),
            (b"Basic !!!!", "not base64"),
            (b"Basic QWxh ZGRp", "not base64"),
            (b"Basic Q", "not base64"),
            (b"Basic QQ===", "not base64"),
            (b"Basic /w==", "not UTF-8"),
            (b"Basic bm9jb2xvbg==", "without a colon"),
            (b"Bearer", "Bearer without a token"),
            (b"Bearer ", "Bearer without a token"),
            (b"Bearer a b", "outside b64token"),
            (b"Bearer ====", "outside b64token"),
            (b"Bearer a=b", "outside b64token"),
            (b"Bearer t\xc3\xa9", "outside b64token"),
            (b"Bearer a,b", "outside b64token"),
        ];
        for (h, why) in cases {
            match parse(h) {
                Err(Malformed(m)) => {
                    assert!(m.contains(why), "{:?}: {m}", String::from_utf8_lossy(h))
                }
                ok => panic!("{:?}: {ok:?}", String::from_utf8_lossy(h)),
            }
        }
    }
}
