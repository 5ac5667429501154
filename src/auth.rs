//! HTTP authentication decisions (SPEC §13): given the `Authorization` header bytes, whether
//! the TLS layer verified a client certificate, and the time, say who the client is or why
//! not. No sockets, no clock, no files: the caller reads `users_file` / `tokens_file` and
//! hands over their text.
//!
//! - `basic`: users with argon2id or bcrypt hashes ([`hash`]). One hash costs up to
//!   hundreds of milliseconds and, for argon2id at the Go versions' parameters, 64 MiB, on
//!   the reactor's one thread. Three things keep that in check (`basic.rs`):
//!   - a success is remembered for [`VERIFIED_TTL_MS`] ([`VERIFIED_CAPACITY`] entries,
//!     least recently used out first), so a client reconnecting never costs a hash again;
//!   - a failure is remembered for [`FAILED_TTL_MS`], in a separate [`FAILED_CAPACITY`]
//!     so a flood of guesses cannot push out users who got in; this blunts a client stuck
//!     retrying one wrong password, not a guesser (each new guess is a new key);
//!   - a budget of [`HASH_BURST`] hashes, refilled at [`HASH_RATE_PER_SEC`], for the whole
//!     server: past it, a check that would hash answers [`AuthOutcome::Busy`] (remembered
//!     users still get in). Per-client limits are the rate limiter's job.
//!
//!   Entries are keyed by a BLAKE2b digest of (user, password, stored hash), never the
//!   password; a changed hash (reload) cannot match old entries. An unknown user is refused
//!   without hashing: hashing anyway to hide which names exist would hand every anonymous
//!   client that much CPU and memory.
//! - `bearer`: tokens compared in constant time (for a given length: token lengths are not
//!   secret, every generated token has the same one).
//! - `mtls`: the TLS layer verified a client certificate; `none`: everyone.
//!
//! Without the `auth` cargo feature, hashes still parse (so `--check` can judge a config)
//! but cannot be verified: [`Auth::basic`] refuses to build.

#[cfg(feature = "auth")]
mod basic;
#[cfg(feature = "auth")]
mod cache;
pub mod hash;
pub mod header;

use std::fmt;
use std::str::FromStr;

pub use hash::PasswordHash;
pub use header::{Credentials, Malformed};

/// How long a verified (user, password) is taken on trust.
pub const VERIFIED_TTL_MS: u64 = 10 * 60 * 1000;
pub const VERIFIED_CAPACITY: usize = 1024;
/// How long a failed (user, password) is refused without hashing it again.
pub const FAILED_TTL_MS: u64 = 60 * 1000;
pub const FAILED_CAPACITY: usize = 256;
/// Password hashes one server may compute per second, after a burst of [`HASH_BURST`]:
/// at the Go versions' argon2id parameters one hash holds the reactor for ~0.2–0.4 s.
pub const HASH_RATE_PER_SEC: f64 = 1.0;
pub const HASH_BURST: u32 = 4;

/// The `type` of an `[auth]` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    None,
    Basic,
    Bearer,
    Mtls,
}

impl AuthKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Basic => "basic",
            AuthKind::Bearer => "bearer",
            AuthKind::Mtls => "mtls",
        }
    }
}

impl FromStr for AuthKind {
    type Err = String;

    fn from_str(s: &str) -> Result<AuthKind, String> {
        match s {
            "none" => Ok(AuthKind::None),
            "basic" => Ok(AuthKind::Basic),
            "bearer" => Ok(AuthKind::Bearer),
            "mtls" => Ok(AuthKind::Mtls),
            _ => Err(format!(
                "auth type {s:?}: expected none, basic, bearer or mtls"
            )),
        }
    }
}

/// Who got in, for logs. A token is named by its position, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anyone,
    User(String),
    Token(usize),
    Certificate,
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anyone => f.write_str("anyone"),
            Principal::User(name) => write!(f, "user {name:?}"),
            Principal::Token(i) => write!(f, "token #{}", i + 1),
            Principal::Certificate => f.write_str("client certificate"),
        }
    }
}

/// `Missing`, `Invalid` and `Malformed` are all meant to become `401` with
/// [`Auth::www_authenticate`]; they differ for logs and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    Allowed(Principal),
    /// No credentials for this server's scheme: no header, or one for another scheme
    /// (RFC 6750 §3.1 treats an unsupported method as no authentication at all).
    Missing,
    /// Well-formed credentials that are wrong: unknown user, wrong password or token.
    Invalid,
    /// A header that cannot be read for its scheme.
    Malformed(&'static str),
    /// Checking would compute a password hash, and the hash budget is spent: answer `503`
    /// with `Retry-After` rather than stall every client on this thread.
    Busy {
        retry_after_secs: u64,
    },
}

/// A config error in users, tokens or realm. `line` is set for `users_file` and
/// `tokens_file`; the message names the user where there is one, never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    pub line: Option<usize>,
    pub message: String,
}

impl AuthError {
    fn new(message: impl Into<String>) -> AuthError {
        AuthError {
            line: None,
            message: message.into(),
        }
    }

    fn at(self, line: usize) -> AuthError {
        AuthError {
            line: Some(line),
            ..self
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    name: String,
    /// The stored text, part of the cache key so a new hash never meets old entries.
    hash_text: String,
    hash: PasswordHash,
}

impl User {
    pub fn new(name: &str, password_hash: &str) -> Result<User, AuthError> {
        if name.is_empty() {
            return Err(AuthError::new("empty user name"));
        }
        // Basic credentials are "user:password": a name with a colon could never log in.
        if name.contains(':') || name.chars().any(char::is_control) {
            return Err(AuthError::new(format!(
                "user {name:?}: a name cannot hold a colon or control characters"
            )));
        }
        let hash = PasswordHash::parse(password_hash)
            .map_err(|e| AuthError::new(format!("user {name:?}: password hash: {e}")))?;
        Ok(User {
            name: name.to_string(),
            hash_text: password_hash.to_string(),
            hash,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn password_hash(&self) -> &PasswordHash {
        &self.hash
    }
}

/// A bearer token as configured.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Vec<u8>);

impl Token {
    pub fn new(token: &str) -> Result<Token, AuthError> {
        if header::is_b64token(token.as_bytes()) {
            Ok(Token(token.as_bytes().to_vec()))
        } else {
            // The token itself stays out of the message: it is a secret.
            Err(AuthError::new(
                "a bearer token must be non-empty and made of A-Z a-z 0-9 - . _ ~ + / \
                 with optional trailing = (RFC 6750 b64token)",
            ))
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} bytes)", self.0.len())
    }
}

/// Lines of a text file that carry data: numbered from 1, trimmed, without blank lines
/// and `#` comments.
fn data_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

/// `users_file`: one `name:hash` a line (what `htpasswd -nB` prints).
pub fn parse_users_file(text: &str) -> Result<Vec<User>, AuthError> {
    let mut users: Vec<User> = Vec::new();
    for (n, line) in data_lines(text) {
        let (name, hash) = line
            .split_once(':')
            .ok_or_else(|| AuthError::new("expected name:hash").at(n))?;
        let user = User::new(name, hash).map_err(|e| e.at(n))?;
        if users.iter().any(|u| u.name == user.name) {
            return Err(AuthError::new(format!("user {name:?} appears twice")).at(n));
        }
        users.push(user);
    }
    Ok(users)
}

/// `tokens_file`: one token a line.
pub fn parse_tokens_file(text: &str) -> Result<Vec<Token>, AuthError> {
    data_lines(text)
        .map(|(n, line)| Token::new(line).map_err(|e| e.at(n)))
        .collect()
}

/// Compares in a time that depends on the lengths only, not on where the bytes differ.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| std::hint::black_box(acc | (x ^ y)));
    diff == 0
}

/// The authentication of one HTTP server.
#[derive(Debug)]
pub struct Auth {
    scheme: Scheme,
    /// The `WWW-Authenticate` value, rendered once.
    challenge: Option<String>,
}

#[derive(Debug)]
enum Scheme {
    None,
    Mtls,
    // Never built without the feature (see `basic::Basic` there).
    #[cfg_attr(not(feature = "auth"), allow(dead_code))]
    Basic(Box<basic::Basic>),
    Bearer(Vec<Token>),
}

impl Auth {
    pub fn none() -> Auth {
        Auth {
            scheme: Scheme::None,
            challenge: None,
        }
    }

    /// Client certificates checked by the TLS layer (which must require them).
    pub fn mtls() -> Auth {
        Auth {
            scheme: Scheme::Mtls,
            challenge: None,
        }
    }

    /// `users` from the config and the users file together; names must be unique.
    pub fn basic(realm: &str, users: Vec<User>) -> Result<Auth, AuthError> {
        check_realm(realm)?;
        if users.is_empty() {
            return Err(AuthError::new(
                "basic auth needs at least one user (users or users_file)",
            ));
        }
        for (i, u) in users.iter().enumerate() {
            if users[..i].iter().any(|v| v.name == u.name) {
                return Err(AuthError::new(format!(
                    "user {:?} is defined twice",
                    u.name
                )));
            }
        }
        #[cfg(feature = "auth")]
        {
            Ok(Auth {
                scheme: Scheme::Basic(Box::new(basic::Basic::new(users))),
                challenge: Some(format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")),
            })
        }
        #[cfg(not(feature = "auth"))]
        {
            Err(AuthError::new(
                "basic auth needs password hashing, and this logwisp was built without the \
                 `auth` feature (bearer tokens and mtls work without it)",
            ))
        }
    }

    /// `tokens` from the config and the tokens file together.
    pub fn bearer(realm: &str, tokens: Vec<Token>) -> Result<Auth, AuthError> {
        check_realm(realm)?;
        if tokens.is_empty() {
            return Err(AuthError::new(
                "bearer auth needs at least one token (tokens or tokens_file)",
            ));
        }
        Ok(Auth {
            scheme: Scheme::Bearer(tokens),
            challenge: Some(format!("Bearer realm=\"{realm}\"")),
        })
    }

    pub fn kind(&self) -> AuthKind {
        match self.scheme {
            Scheme::None => AuthKind::None,
            Scheme::Mtls => AuthKind::Mtls,
            Scheme::Basic(_) => AuthKind::Basic,
            Scheme::Bearer(_) => AuthKind::Bearer,
        }
    }

    /// The `WWW-Authenticate` value for a `401`; `None` for `none` and `mtls`, which never
    /// ask for credentials over HTTP.
    pub fn www_authenticate(&self) -> Option<&str> {
        self.challenge.as_deref()
    }

    /// Decides one request. `authorization` is the header's value, if the request had one;
    /// `client_cert` says the TLS layer verified a client certificate (only `mtls` asks).
    /// For `basic`, a check that misses the cache computes a password hash, right here.
    pub fn check(
        &mut self,
        authorization: Option<&[u8]>,
        client_cert: bool,
        now_ms: u64,
    ) -> AuthOutcome {
        match &mut self.scheme {
            Scheme::None => AuthOutcome::Allowed(Principal::Anyone),
            Scheme::Mtls if client_cert => AuthOutcome::Allowed(Principal::Certificate),
            Scheme::Mtls => AuthOutcome::Missing,
            Scheme::Bearer(tokens) => match authorization.map(header::parse) {
                None | Some(Ok(Credentials::Basic { .. } | Credentials::Other)) => {
                    AuthOutcome::Missing
                }
                Some(Err(Malformed(why))) => AuthOutcome::Malformed(why),
                Some(Ok(Credentials::Bearer(presented))) => {
                    // Every token is compared, so the time does not say which one matched.
                    let mut found = None;
                    for (i, Token(t)) in tokens.iter().enumerate() {
                        if ct_eq(t, presented.as_bytes()) {
                            found = Some(i);
                        }
                    }
                    found.map_or(AuthOutcome::Invalid, |i| {
                        AuthOutcome::Allowed(Principal::Token(i))
                    })
                }
            },
            Scheme::Basic(basic) => match authorization.map(header::parse) {
                None | Some(Ok(Credentials::Bearer(_) | Credentials::Other)) => {
                    AuthOutcome::Missing
                }
                Some(Err(Malformed(why))) => AuthOutcome::Malformed(why),
                Some(Ok(Credentials::Basic { user, password })) => {
                    basic.check(&user, &password, now_ms)
                }
            },
        }
    }

    /// Password hashes computed so far (cache misses): a counter for metrics and tests.
    pub fn hash_verifications(&self) -> u64 {
        match &self.scheme {
            Scheme::Basic(basic) => basic.verifications(),
            _ => 0,
        }
    }

    /// Takes over what `previous` (the same server before a reload) had verified, so a
    /// reload does not make every user cost a hash again. Safe whatever changed: entries
    /// are keyed by the stored hash too, and an unknown user never reaches the cache.
    pub fn take_cache_from(&mut self, previous: &mut Auth) {
        if let (Scheme::Basic(new), Scheme::Basic(old)) = (&mut self.scheme, &mut previous.scheme) {
            new.take_cache_from(old);
        }
    }
}

/// The realm is sent inside a quoted string: keep it printable and free of quoting.
fn check_realm(realm: &str) -> Result<(), AuthError> {
    if realm.is_empty()
        || !realm
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        return Err(AuthError::new(format!(
            "realm {realm:?}: must be non-empty printable ASCII without \" or \\"
        )));
    }
    Ok(())
}

/// Without the feature there is nothing to verify a hash with, and [`Auth::basic`] refuses
/// to build one: a type with no values makes that a fact the compiler checks.
#[cfg(not(feature = "auth"))]
mod basic {
    use super::AuthOutcome;

    #[derive(Debug)]
    pub enum Basic {}

    impl Basic {
        pub fn verifications(&self) -> u64 {
            match *self {}
        }

        pub fn take_cache_from(&mut self, _: &mut Basic) {
            match *self {}
        }

        pub fn check(&mut self, _: &str, _: &str, _: u64) -> AuthOutcome {
            match *self {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    pub fn basic_header(user: &str, password: &str) -> Vec<u8> {
        format!("Basic {}", b64(&format!("{user}:{password}"))).into_bytes()
    }

    #[test]
    fn constant_time_eq_is_eq() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert!(!ct_eq(b"\x80", b"\x00"));
    }

    #[test]
    fn auth_kinds_parse() {
        for k in [
            AuthKind::None,
            AuthKind::Basic,
            AuthKind::Bearer,
            AuthKind::Mtls,
        ] {
            assert_eq!(k.as_str().parse(), Ok(k));
        }
        assert_eq!(
            "Basic".parse::<AuthKind>(),
            Err("auth type \"Basic\": expected none, basic, bearer or mtls".to_string())
        );
    }

    #[test]
    fn none_lets_everyone_in_and_mtls_wants_a_certificate() {
        let mut a = Auth::none();
        assert_eq!(a.kind(), AuthKind::None);
        assert_eq!(a.www_authenticate(), None);
        assert_eq!(
            a.check(None, false, 0),
            AuthOutcome::Allowed(Principal::Anyone)
        );
        assert_eq!(
            a.check(Some(b"garbage"), false, 0),
            AuthOutcome::Allowed(Principal::Anyone)
        );

        let mut a = Auth::mtls();
        assert_eq!(a.kind(), AuthKind::Mtls);
        assert_eq!(a.www_authenticate(), None);
        assert_eq!(
            a.check(None, true, 0),
            AuthOutcome::Allowed(Principal::Certificate)
        );
        assert_eq!(a.check(None, false, 0), AuthOutcome::Missing);
        assert_eq!(
            a.check(Some(&basic_header("u", "p")), false, 0),
            AuthOutcome::Missing
        );
    }

    fn bearer() -> Auth {
        let tokens = vec![
            Token::new("first-token").unwrap(),
            Token::new("c2Vjb25kIHRva2Vu").unwrap(),
        ];
        Auth::bearer("logwisp", tokens).unwrap()
    }

    #[test]
    fn bearer_tokens_let_in_who_has_one() {
        let mut a = bearer();
        assert_eq!(a.kind(), AuthKind::Bearer);
        assert_eq!(a.www_authenticate(), Some("Bearer realm=\"logwisp\""));
        let cases: &[(Option<&[u8]>, AuthOutcome)] = &[
            (
                Some(b"Bearer first-token"),
                AuthOutcome::Allowed(Principal::Token(0)),
            ),
            (
                Some(b"bearer c2Vjb25kIHRva2Vu"),
                AuthOutcome::Allowed(Principal::Token(1)),
            ),
            (Some(b"Bearer first-tokem"), AuthOutcome::Invalid),
            (Some(b"Bearer first-token2"), AuthOutcome::Invalid),
            (Some(b"Bearer first"), AuthOutcome::Invalid),
            (None, AuthOutcome::Missing),
            (Some(b"Basic Zmlyc3QtdG9rZW46"), AuthOutcome::Missing),
            (Some(b"Token first-token"), AuthOutcome::Missing),
            (
                Some(b"Bearer"),
                AuthOutcome::Malformed("Bearer without a token"),
            ),
            (
                Some(b"Bearer a b"),
                AuthOutcome::Malformed("the Bearer token has characters outside b64token"),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(
                &a.check(*h, false, 0),
                want,
                "{:?}",
                h.map(String::from_utf8_lossy)
            );
        }
        // A client certificate does not stand in for a token.
        assert_eq!(a.check(None, true, 0), AuthOutcome::Missing);
        assert_eq!(a.hash_verifications(), 0);
    }

    #[test]
    fn tokens_file_and_bad_tokens() {
        let text = "# ops tokens\n\nfirst-token\r\n  c2Vjb25kIHRva2Vu==  \n";
        let tokens = parse_tokens_file(text).unwrap();
        assert_eq!(
            tokens,
            [
                Token::new("first-token").unwrap(),
                Token::new("c2Vjb25kIHRva2Vu==").unwrap()
            ]
        );
        let e = parse_tokens_file("good\nnot good\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(
            e.to_string().starts_with("line 2: a bearer token must be"),
            "{e}"
        );
        assert!(
            !e.to_string().contains("not good"),
            "the secret stays out of the message"
        );
        assert!(Token::new("").is_err());
        assert!(Token::new("=").is_err());
        assert_eq!(
            format!("{:?}", Token::new("secret").unwrap()),
            "Token(6 bytes)"
        );
        assert_eq!(parse_tokens_file("# none\n"), Ok(vec![]));
        let e = Auth::bearer("logwisp", vec![]).unwrap_err();
        assert!(e.message.contains("at least one token"), "{e}");
    }

    #[test]
    fn realms_are_checked_and_quoted() {
        let t = || vec![Token::new("t").unwrap()];
        assert_eq!(
            Auth::bearer("Logs at gw-1 (ops)", t())
                .unwrap()
                .www_authenticate(),
            Some("Bearer realm=\"Logs at gw-1 (ops)\"")
        );
        for bad in ["", "a\"b", "a\\b", "new\nline", "café"] {
            let e = Auth::bearer(bad, t()).unwrap_err();
            assert!(e.message.starts_with("realm "), "{bad:?}: {e}");
        }
    }

    use super::hash::HTPASSWD_COST_4;

    #[test]
    fn users_file_lines() {
        let text = format!(
            "# written by htpasswd -nB\n\nops:{HTPASSWD_COST_4}\r\n   \n  dev:{HTPASSWD_COST_4}  \n"
        );
        let users = parse_users_file(&text).unwrap();
        let names: Vec<&str> = users.iter().map(User::name).collect();
        assert_eq!(names, ["ops", "dev"]);
        assert!(matches!(
            users[0].password_hash(),
            PasswordHash::Bcrypt { cost: 4, .. }
        ));
        assert_eq!(parse_users_file(""), Ok(vec![]));
    }

    #[test]
    fn users_file_errors_name_the_line_and_the_user() {
        let cases = [
            ("ops\n", "line 1: expected name:hash"),
            (
                "# c\nops:hunter2\n",
                "line 2: user \"ops\": password hash: not a password hash",
            ),
            (":$2b$04$x\n", "line 1: empty user name"),
            (
                "a\tb:$2b$04$x\n",
                "line 1: user \"a\\tb\": a name cannot hold",
            ),
            (
                "ops:$argon2id$v=19$m=65536,t=3,p=0$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA\n",
                "line 1: user \"ops\": password hash: argon2id: p=0",
            ),
        ];
        for (text, want) in cases {
            let e = parse_users_file(text).unwrap_err();
            assert!(e.to_string().starts_with(want), "{text:?}: {e}");
        }
        let dup = format!("ops:{HTPASSWD_COST_4}\n\nops:{HTPASSWD_COST_4}\n");
        let e = parse_users_file(&dup).unwrap_err();
        assert_eq!(e.to_string(), "line 3: user \"ops\" appears twice");
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn basic_needs_unique_users() {
        let u = || User::new("ops", HTPASSWD_COST_4).unwrap();
        assert!(
            Auth::basic("logwisp", vec![])
                .unwrap_err()
                .message
                .contains("at least one user")
        );
        let e = Auth::basic("logwisp", vec![u(), u()]).unwrap_err();
        assert!(
            e.message.contains("\"ops\" is defined twice") || !cfg!(feature = "auth"),
            "{e}"
        );
    }

    #[cfg(not(feature = "auth"))]
    #[test]
    fn without_the_auth_feature_basic_is_a_clear_error() {
        let users = vec![User::new("ops", HTPASSWD_COST_4).unwrap()];
        let e = Auth::basic("logwisp", users).unwrap_err();
        assert!(e.message.contains("without the `auth` feature"), "{e}");
        assert!(
            bearer().check(Some(b"Bearer first-token"), false, 0)
                == AuthOutcome::Allowed(Principal::Token(0))
        );
    }
}
