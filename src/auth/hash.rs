//! Stored password hashes: the two formats the Go versions wrote, read and checked when the
//! config is loaded so that a bad hash is a config error, not a login that never works.
//!
//! - argon2id PHC strings, `$argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>` (salt and hash in
//!   unpadded standard base64; padding is tolerated).
//! - bcrypt, `$2b$10$<22 salt chars><31 hash chars>`; `$2a$` and `$2y$` are the same
//!   algorithm for passwords of up to 72 bytes, which is all bcrypt ever looks at.
//!
//! Costs are capped: every check runs on the reactor's one thread, so a hash that takes a
//! second (or a gigabyte) per wrong password would stall every client. The caps sit well
//! above what the Go versions and `htpasswd -B` produce.
//!
//! Reading works in every build; verifying needs the `auth` feature.

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, NO_PAD};

/// argon2 memory cap, KiB (the Go versions use 64 MiB).
pub const MAX_ARGON2_MEMORY_KIB: u32 = 256 * 1024;
/// argon2 passes cap (the Go versions use 3).
pub const MAX_ARGON2_TIME: u32 = 10;
/// argon2 lanes cap: the Go library takes a `uint8`.
pub const MAX_ARGON2_LANES: u32 = 255;
/// bcrypt cost cap (the Go versions default to 10; each step doubles the time).
pub const MAX_BCRYPT_COST: u32 = 14;

const PHC_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(&alphabet::BCRYPT, NO_PAD);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    Argon2id {
        memory_kib: u32,
        time: u32,
        lanes: u32,
        salt: Vec<u8>,
        hash: Vec<u8>,
    },
    /// The whole string, as the bcrypt crate wants it; already checked.
    Bcrypt { cost: u32, text: String },
}

impl PasswordHash {
    /// Reads a stored hash; the error says what is wrong with it.
    pub fn parse(s: &str) -> Result<PasswordHash, String> {
        if let Some(rest) = s.strip_prefix("$argon2id$") {
            return parse_argon2id(rest);
        }
        if let Some(variant) = ["$2a$", "$2b$", "$2y$"].iter().find(|p| s.starts_with(**p)) {
            return parse_bcrypt(s, &s[variant.len()..]);
        }
        Err(unsupported(s))
    }
}

fn unsupported(s: &str) -> String {
    let what = if s.starts_with("$argon2i$") || s.starts_with("$argon2d$") {
        "only the argon2id variant of argon2 is supported"
    } else if s.starts_with("$2x$") {
        "$2x$ marks hashes from a buggy bcrypt; make a new $2b$ hash"
    } else if s.starts_with("$apr1$") || s.starts_with("{SHA}") || s.starts_with("$1$") {
        "MD5 and SHA-1 hashes are too weak; make a bcrypt hash (htpasswd -nB USER)"
    } else if s.is_empty() {
        "empty"
    } else if !s.starts_with('$') {
        "not a password hash (plaintext passwords are not accepted)"
    } else {
        "unknown hash format"
    };
    format!(
        "{what}; expected argon2id ($argon2id$v=19$m=...,t=...,p=...$salt$hash) or bcrypt ($2b$...)"
    )
}

fn parse_argon2id(rest: &str) -> Result<PasswordHash, String> {
    let parts: Vec<&str> = rest.split('$').collect();
    let [version, params, salt, hash] = parts[..] else {
        return Err("argon2id: expected $argon2id$v=19$m=...,t=...,p=...$salt$hash".into());
    };
    if version != "v=19" {
        return Err(format!(
            "argon2id: version {version:?}: only v=19 is supported"
        ));
    }
    let mut values = [0u32; 3];
    let names = ["m", "t", "p"];
    let fields: Vec<&str> = params.split(',').collect();
    if fields.len() != 3 {
        return Err(format!(
            "argon2id: parameters {params:?}: expected m=...,t=...,p=..."
        ));
    }
    for ((field, name), value) in fields.iter().zip(names).zip(&mut values) {
        *value = field
            .strip_prefix(name)
            .and_then(|f| f.strip_prefix('='))
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| {
                format!(
                    "argon2id: parameters {params:?}: expected m=...,t=...,p=... (in that order)"
                )
            })?;
    }
    let [memory_kib, time, lanes] = values;
    if !(1..=MAX_ARGON2_LANES).contains(&lanes) {
        return Err(format!(
            "argon2id: p={lanes}: lanes must be 1 to {MAX_ARGON2_LANES}"
        ));
    }
    if memory_kib < 8 * lanes || memory_kib > MAX_ARGON2_MEMORY_KIB {
        return Err(format!(
            "argon2id: m={memory_kib}: memory must be 8*p to {MAX_ARGON2_MEMORY_KIB} KiB \
             (each check runs on the one reactor thread)"
        ));
    }
    if !(1..=MAX_ARGON2_TIME).contains(&time) {
        return Err(format!(
            "argon2id: t={time}: passes must be 1 to {MAX_ARGON2_TIME}"
        ));
    }
    let salt = PHC_B64
        .decode(salt)
        .map_err(|_| "argon2id: the salt is not base64".to_string())?;
    if !(8..=64).contains(&salt.len()) {
        return Err(format!(
            "argon2id: {}-byte salt: must be 8 to 64 bytes",
            salt.len()
        ));
    }
    let hash = PHC_B64
        .decode(hash)
        .map_err(|_| "argon2id: the hash is not base64".to_string())?;
    if !(16..=64).contains(&hash.len()) {
        return Err(format!(
            "argon2id: {}-byte hash: must be 16 to 64 bytes",
            hash.len()
        ));
    }
    Ok(PasswordHash::Argon2id {
        memory_kib,
        time,
        lanes,
        salt,
        hash,
    })
}

fn parse_bcrypt(s: &str, rest: &str) -> Result<PasswordHash, String> {
    let Some((cost, tail)) = rest.split_once('$') else {
        return Err("bcrypt: expected $2b$COST$ and 53 characters".into());
    };
    let cost: u32 = match cost.as_bytes() {
        [a, b] if a.is_ascii_digit() && b.is_ascii_digit() => {
            u32::from((a - b'0') * 10 + (b - b'0'))
        }
        _ => return Err(format!("bcrypt: cost {cost:?}: expected two digits")),
    };
    if !(4..=MAX_BCRYPT_COST).contains(&cost) {
        return Err(format!(
            "bcrypt: cost {cost}: must be 4 to {MAX_BCRYPT_COST} (each check runs on the one reactor thread)"
        ));
    }
    if !tail.is_ascii() {
        return Err("bcrypt: non-ASCII characters after the cost".into());
    }
    if tail.len() != 53 {
        return Err(format!(
            "bcrypt: {} characters after the cost: expected 53",
            tail.len()
        ));
    }
    let (salt, hash) = tail.split_at(22);
    let mut buf = [0u8; 24];
    // Exact decoded sizes (16 and 23 bytes) also reject non-canonical trailing bits.
    if BCRYPT_B64.decode_slice(salt, &mut buf).ok() != Some(16) {
        return Err("bcrypt: the salt is not bcrypt base64".into());
    }
    if BCRYPT_B64.decode_slice(hash, &mut buf).ok() != Some(23) {
        return Err("bcrypt: the hash is not bcrypt base64".into());
    }
    Ok(PasswordHash::Bcrypt {
        cost,
        text: s.to_string(),
    })
}

/// Whether `password` matches. The final compare is constant-time (ours for argon2, the
/// crate's own for bcrypt). Costs one full hash: callers cache the answer.
#[cfg(feature = "auth")]
pub fn verify(stored: &PasswordHash, password: &[u8]) -> bool {
    match stored {
        PasswordHash::Argon2id {
            memory_kib,
            time,
            lanes,
            salt,
            hash,
        } => {
            use argon2::{Algorithm, Argon2, Params, Version};
            let Ok(params) = Params::new(*memory_kib, *time, *lanes, Some(hash.len())) else {
                return false;
            };
            let mut out = vec![0u8; hash.len()];
            // Fails only on allocation failure (the block memory is allocated fallibly)
            // or inputs `parse` already ruled out: either way, not a match.
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password_into(password, salt, &mut out)
                .is_ok()
                && super::ct_eq(&out, hash)
        }
        // Truncates at 72 bytes as every bcrypt (htpasswd, Go's) does.
        PasswordHash::Bcrypt { text, .. } => bcrypt::verify(password, text).unwrap_or(false),
    }
}

/// `htpasswd -bnBC 4 ops 'correct horse'` (Apache's bcrypt, written as $2y$).
#[cfg(test)]
pub const HTPASSWD_COST_4: &str = "$2y$04$e9u7Lt4ayc/Lp4PYTeZo.umtJVNVqlVCXlb0/ehgtf1/lCs1vlKwW";

/// An argon2id PHC string made by the argon2 crate itself.
#[cfg(all(test, feature = "auth"))]
pub fn argon2id_phc(password: &str, salt: &[u8], m: u32, t: u32, p: u32) -> String {
    use argon2::{Algorithm, Argon2, Params, Version};
    use base64::Engine;
    let mut out = [0u8; 32];
    Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(m, t, p, Some(32)).unwrap(),
    )
    .hash_password_into(password.as_bytes(), salt, &mut out)
    .unwrap();
    let b = base64::engine::general_purpose::STANDARD_NO_PAD;
    format!(
        "$argon2id$v=19$m={m},t={t},p={p}${}${}",
        b.encode(salt),
        b.encode(out)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_ARGON2ID: &str = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$\
        AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

    #[test]
    fn reads_argon2id_phc_strings() {
        match PasswordHash::parse(GO_ARGON2ID).unwrap() {
            PasswordHash::Argon2id {
                memory_kib,
                time,
                lanes,
                salt,
                hash,
            } => {
                assert_eq!((memory_kib, time, lanes), (65536, 3, 4));
                assert_eq!(salt, b"somesaltsomesalt");
                assert_eq!(hash.len(), 32);
            }
            other => panic!("{other:?}"),
        }
        // Padded base64 is tolerated.
        let padded = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA==$\
            AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        assert_eq!(
            PasswordHash::parse(padded),
            PasswordHash::parse(GO_ARGON2ID)
        );
    }

    #[test]
    fn reads_bcrypt_in_all_three_spellings() {
        let tail = "$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        for v in ["2a", "2b", "2y"] {
            let s = format!("${v}{tail}");
            assert_eq!(
                PasswordHash::parse(&s),
                Ok(PasswordHash::Bcrypt {
                    cost: 10,
                    text: s.clone()
                })
            );
        }
    }

    #[test]
    fn bad_hashes_say_what_is_wrong() {
        let b = "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy";
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("hunter2", "plaintext passwords are not accepted"),
            ("$apr1$abc$def", "too weak"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "too weak"),
            (
                "$argon2i$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA",
                "only the argon2id",
            ),
            ("$6$salt$hash", "unknown hash format"),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ",
                "expected $argon2id$v=19",
            ),
            (
                "$argon2id$v=16$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "only v=19",
            ),
            (
                "$argon2id$v=19$t=3,m=65536,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "in that order",
            ),
            (
                "$argon2id$v=19$m=65536,t=3$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "expected m=...,t=...,p=...",
            ),
            (
                "$argon2id$v=19$m=+1,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "in that order",
            ),
            (
                "$argon2id$v=19$m=1048576,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "m=1048576: memory must be",
            ),
            (
                "$argon2id$v=19$m=16,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "m=16: memory must be 8*p",
            ),
            (
                "$argon2id$v=19$m=65536,t=0,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "t=0: passes",
            ),
            (
                "$argon2id$v=19$m=65536,t=99,p=4$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "t=99: passes",
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=0$c29tZXNhbHRzb21lc2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "p=0: lanes",
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$!!!$AAAAAAAAAAAAAAAAAAAAAA",
                "salt is not base64",
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
                "4-byte salt",
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$AAAA",
                "3-byte hash",
            ),
            (
                "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$AA-A",
                "hash is not base64",
            ),
            ("$2b$10", "expected $2b$COST$"),
            (
                "$2b$1$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "expected two digits",
            ),
            (
                "$2b$03$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "cost 3: must be 4 to 14",
            ),
            (
                "$2b$20$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "cost 20",
            ),
            (
                "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhW",
                "52 characters",
            ),
            (
                "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWé",
                "non-ASCII",
            ),
            (
                "$2b$10$N9qo8uLOickgx2ZMRZoMy+IjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "salt is not bcrypt base64",
            ),
            (
                "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lh+y",
                "hash is not bcrypt base64",
            ),
            (
                "$2x$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
                "buggy bcrypt",
            ),
        ];
        for (hash, want) in cases {
            let err = PasswordHash::parse(hash).expect_err(hash);
            assert!(err.contains(want), "{hash:?}: {err:?} lacks {want:?}");
        }
        assert!(PasswordHash::parse(&format!("$2b$10${b}")).is_ok());
    }

    #[cfg(feature = "auth")]
    mod verifying {
        use super::super::argon2id_phc as argon2id;
        use super::*;

        fn verifies(hash: &str, password: &str) -> bool {
            verify(&PasswordHash::parse(hash).unwrap(), password.as_bytes())
        }

        #[test]
        fn argon2id_made_here_verifies() {
            let h = argon2id("correct horse", b"saltsaltsalt", 64, 2, 2);
            assert!(verifies(&h, "correct horse"));
            assert!(!verifies(&h, "correct horsf"));
            assert!(!verifies(&h, ""));
        }

        #[test]
        fn argon2id_from_the_reference_implementation_verifies() {
            // `echo -n 'correct horse' | argon2 somesaltsomesalt -id -m 12 -t 3 -p 4 -l 32 -e`
            // (the reference C implementation, Debian's `argon2` package).
            let h = "$argon2id$v=19$m=4096,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$jx7HcOC2jL3AqJloTH26sGwyx1iYGzFCwJbkNXGIMrA";
            assert!(verifies(h, "correct horse"));
            assert!(!verifies(h, "Correct horse"));
        }

        #[test]
        fn bcrypt_made_here_and_by_htpasswd_verifies() {
            let h = bcrypt::hash("correct horse", 4).unwrap();
            assert!(h.starts_with("$2b$04$"), "{h}");
            assert!(verifies(&h, "correct horse"));
            assert!(!verifies(&h, "correct horse "));
            // `htpasswd -bnBC 4 ops 'correct horse'` (Apache's bcrypt, written as $2y$).
            assert!(verifies(HTPASSWD_COST_4, "correct horse"));
            assert!(!verifies(HTPASSWD_COST_4, "wrong"));
            // The same hash spelled $2a$ / $2b$ is the same hash.
            assert!(verifies(
                &HTPASSWD_COST_4.replacen("$2y$", "$2a$", 1),
                "correct horse"
            ));
            assert!(verifies(
                &HTPASSWD_COST_4.replacen("$2y$", "$2b$", 1),
                "correct horse"
            ));
        }

        /// The Go versions' parameters, timed. `cargo test --release --lib -- --ignored
        /// --nocapture go_parameters` prints how long one check holds the reactor.
        #[test]
        #[ignore = "64 MiB and a noticeable time per run; for measuring"]
        fn go_parameters_argon2id_timing() {
            // `echo -n 'correct horse' | argon2 somesaltsomesalt -id -m 16 -t 3 -p 4 -l 32 -e`
            let h = "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHRzb21lc2FsdA$7YbYS2w24dSTBgFeLZ/Pp5pFxLjWTXyOMrr1Ld8BcEI";
            let stored = PasswordHash::parse(h).unwrap();
            for password in ["correct horse", "wrong"] {
                let start = std::time::Instant::now();
                let ok = verify(&stored, password.as_bytes());
                println!(
                    "argon2id m=65536,t=3,p=4 {password:?}: {ok} in {:?}",
                    start.elapsed()
                );
                assert_eq!(ok, password == "correct horse");
            }
            // `htpasswd -bnBC 10 ops 'correct horse'`: the Go versions' default bcrypt cost.
            let h = "$2y$10$cLSAIiLJJILA7Er7g2T6KueJYTXSt1aDeE9SrWjthoXOoWsQYWx3O";
            let start = std::time::Instant::now();
            assert!(verifies(h, "correct horse"));
            println!("bcrypt cost 10: {:?}", start.elapsed());
        }
    }
}
