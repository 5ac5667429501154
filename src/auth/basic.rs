//! Basic authentication: users, the caches of verified and failed passwords, and the
//! budget of hashes (the parent module says why each exists).

use std::collections::HashMap;

use blake2::{Blake2b256, Digest};

use super::cache::{Cache, Key};
use super::{
    AuthOutcome, FAILED_CAPACITY, FAILED_TTL_MS, HASH_BURST, HASH_RATE_PER_SEC, Principal, User,
    VERIFIED_CAPACITY, VERIFIED_TTL_MS, hash,
};
use crate::ratelimit::TokenBucket;

#[derive(Debug)]
pub struct Basic {
    users: Vec<User>,
    by_name: HashMap<String, usize>,
    verified: Cache,
    failed: Cache,
    budget: TokenBucket,
    verifications: u64,
}

impl Basic {
    pub fn new(users: Vec<User>) -> Basic {
        let by_name = users
            .iter()
            .enumerate()
            .map(|(i, u)| (u.name.clone(), i))
            .collect();
        Basic {
            users,
            by_name,
            verified: Cache::new(VERIFIED_CAPACITY, VERIFIED_TTL_MS),
            failed: Cache::new(FAILED_CAPACITY, FAILED_TTL_MS),
            budget: TokenBucket::new(HASH_BURST, 0),
            verifications: 0,
        }
    }

    pub fn verifications(&self) -> u64 {
        self.verifications
    }

    pub fn take_cache_from(&mut self, old: &mut Basic) {
        std::mem::swap(&mut self.verified, &mut old.verified);
        std::mem::swap(&mut self.failed, &mut old.failed);
    }

    pub fn check(&mut self, name: &str, password: &str, now_ms: u64) -> AuthOutcome {
        let Some(&i) = self.by_name.get(name) else {
            return AuthOutcome::Invalid;
        };
        let user = &self.users[i];
        let key = cache_key(user, password);
        if self.verified.contains(&key, now_ms) {
            return AuthOutcome::Allowed(Principal::User(user.name.clone()));
        }
        if self.failed.contains(&key, now_ms) {
            return AuthOutcome::Invalid;
        }
        if let Err(wait_ms) = self.budget.try_take(now_ms, HASH_RATE_PER_SEC, HASH_BURST) {
            return AuthOutcome::Busy {
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            };
        }
        self.verifications += 1;
        if hash::verify(&user.hash, password.as_bytes()) {
            self.verified.insert(key, now_ms);
            AuthOutcome::Allowed(Principal::User(user.name.clone()))
        } else {
            self.failed.insert(key, now_ms);
            AuthOutcome::Invalid
        }
    }
}

/// Lengths go in first, so no two (user, password) pairs feed the same bytes.
fn cache_key(user: &User, password: &str) -> Key {
    let mut h = Blake2b256::new();
    h.update(b"logwisp basic-auth cache v1\0");
    for part in [
        user.name.as_bytes(),
        password.as_bytes(),
        user.hash_text.as_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::super::hash::{HTPASSWD_COST_4, argon2id_phc as argon2id};
    use super::super::tests::basic_header;
    use super::super::*;

    fn basic(users: &[(&str, &str)]) -> Auth {
        let users = users
            .iter()
            .map(|(n, h)| User::new(n, h).unwrap())
            .collect();
        Auth::basic("logwisp", users).unwrap()
    }

    #[test]
    fn basic_decides_and_names_the_user() {
        let mut a = basic(&[
            ("ops", HTPASSWD_COST_4),
            ("dev", &argon2id("s3cret", b"saltsalt", 8, 1, 1)),
        ]);
        assert_eq!(a.kind(), AuthKind::Basic);
        assert_eq!(
            a.www_authenticate(),
            Some("Basic realm=\"logwisp\", charset=\"UTF-8\"")
        );
        let user = |n: &str| AuthOutcome::Allowed(Principal::User(n.into()));
        let cases: &[(Option<Vec<u8>>, AuthOutcome)] = &[
            (Some(basic_header("ops", "correct horse")), user("ops")),
            (Some(basic_header("dev", "s3cret")), user("dev")),
            (Some(basic_header("ops", "s3cret")), AuthOutcome::Invalid),
            (
                Some(basic_header("dev", "correct horse")),
                AuthOutcome::Invalid,
            ),
            (
                Some(basic_header("OPS", "correct horse")),
                AuthOutcome::Invalid,
            ),
            (None, AuthOutcome::Missing),
            (Some(b"Bearer abc".to_vec()), AuthOutcome::Missing),
            (Some(b"Negotiate abc".to_vec()), AuthOutcome::Missing),
            (
                Some(b"Basic !".to_vec()),
                AuthOutcome::Malformed("Basic credentials are not base64"),
            ),
            (
                Some(b"Basic b3Bz".to_vec()),
                AuthOutcome::Malformed("Basic credentials without a colon"),
            ),
        ];
        for (h, want) in cases {
            assert_eq!(
                &a.check(h.as_deref(), false, 0),
                want,
                "{:?}",
                h.as_deref().map(String::from_utf8_lossy)
            );
        }
        // Client certificates do not stand in for a password.
        assert_eq!(a.check(None, true, 0), AuthOutcome::Missing);
    }

    #[test]
    fn unknown_users_cost_no_hash() {
        let mut a = basic(&[("ops", HTPASSWD_COST_4)]);
        assert_eq!(
            a.check(Some(&basic_header("root", "x")), false, 0),
            AuthOutcome::Invalid
        );
        assert_eq!(a.hash_verifications(), 0);
    }

    #[test]
    fn a_verified_password_is_not_hashed_again_until_it_expires() {
        let mut a = basic(&[("ops", HTPASSWD_COST_4)]);
        let h = basic_header("ops", "correct horse");
        let ok = AuthOutcome::Allowed(Principal::User("ops".into()));
        let t0 = 1_000_000;
        assert_eq!(a.check(Some(&h), false, t0), ok);
        assert_eq!(a.hash_verifications(), 1);
        for dt in [0, 1, 60_000, VERIFIED_TTL_MS - 1] {
            assert_eq!(a.check(Some(&h), false, t0 + dt), ok);
        }
        assert_eq!(a.hash_verifications(), 1, "cache hits");
        assert_eq!(a.check(Some(&h), false, t0 + VERIFIED_TTL_MS), ok);
        assert_eq!(a.hash_verifications(), 2, "expired: hashed again");
    }

    #[test]
    fn a_failed_password_is_refused_without_hashing_for_a_while() {
        let mut a = basic(&[("ops", HTPASSWD_COST_4)]);
        let wrong = basic_header("ops", "correct horse battery");
        for t in [0, 1, FAILED_TTL_MS - 1] {
            assert_eq!(a.check(Some(&wrong), false, t), AuthOutcome::Invalid);
        }
        assert_eq!(a.hash_verifications(), 1);
        assert_eq!(
            a.check(Some(&wrong), false, FAILED_TTL_MS),
            AuthOutcome::Invalid
        );
        assert_eq!(a.hash_verifications(), 2);
        // A remembered failure says nothing about another password.
        let right = basic_header("ops", "correct horse");
        assert_eq!(
            a.check(Some(&right), false, 5),
            AuthOutcome::Allowed(Principal::User("ops".into()))
        );
        assert_eq!(a.hash_verifications(), 3);
    }

    #[test]
    fn a_flood_of_failures_does_not_push_out_verified_users() {
        let mut a = basic(&[("ops", &argon2id("right", b"saltsalt", 8, 1, 1))]);
        let right = basic_header("ops", "right");
        assert!(matches!(
            a.check(Some(&right), false, 0),
            AuthOutcome::Allowed(_)
        ));
        // One guess a second, within the hash budget, for longer than failures are kept.
        let mut t = 0;
        for i in 0..FAILED_CAPACITY * 2 {
            t += 1000;
            let h = basic_header("ops", &format!("guess {i}"));
            assert_eq!(a.check(Some(&h), false, t), AuthOutcome::Invalid);
        }
        let before = a.hash_verifications();
        assert_eq!(before, 1 + 2 * FAILED_CAPACITY as u64);
        assert!(t < VERIFIED_TTL_MS);
        assert!(matches!(
            a.check(Some(&right), false, t),
            AuthOutcome::Allowed(_)
        ));
        assert_eq!(a.hash_verifications(), before, "still cached");
    }

    #[test]
    fn hashing_has_a_budget_and_cached_users_do_not_spend_it() {
        let mut a = basic(&[("ops", &argon2id("right", b"saltsalt", 8, 1, 1))]);
        let right = basic_header("ops", "right");
        let t0 = 5_000_000;
        assert!(matches!(
            a.check(Some(&right), false, t0),
            AuthOutcome::Allowed(_)
        ));
        for i in 1..HASH_BURST {
            let h = basic_header("ops", &format!("guess {i}"));
            assert_eq!(a.check(Some(&h), false, t0), AuthOutcome::Invalid);
        }
        let busy = AuthOutcome::Busy {
            retry_after_secs: 1,
        };
        assert_eq!(
            a.check(Some(&basic_header("ops", "one more")), false, t0),
            busy
        );
        assert_eq!(a.hash_verifications(), u64::from(HASH_BURST));
        // Remembered answers cost nothing, so they still come through.
        assert!(matches!(
            a.check(Some(&right), false, t0),
            AuthOutcome::Allowed(_)
        ));
        let guess_1 = basic_header("ops", "guess 1");
        assert_eq!(a.check(Some(&guess_1), false, t0), AuthOutcome::Invalid);
        // A second later there is room for one more hash.
        let later = t0 + (1000.0 / HASH_RATE_PER_SEC) as u64;
        assert_eq!(
            a.check(Some(&basic_header("ops", "one more")), false, later),
            AuthOutcome::Invalid
        );
        assert_eq!(
            a.check(Some(&basic_header("ops", "and another")), false, later),
            busy
        );
    }

    #[test]
    fn cache_entries_belong_to_the_stored_hash() {
        let mut a = basic(&[("ops", HTPASSWD_COST_4)]);
        let h = basic_header("ops", "correct horse");
        assert!(matches!(
            a.check(Some(&h), false, 0),
            AuthOutcome::Allowed(_)
        ));
        // Reload: same user, new password. The old password must not ride the cache.
        let mut b = basic(&[("ops", &argon2id("new", b"saltsalt", 8, 1, 1))]);
        b.take_cache_from(&mut a);
        assert_eq!(b.check(Some(&h), false, 1), AuthOutcome::Invalid);
        assert!(matches!(
            b.check(Some(&basic_header("ops", "new")), false, 1),
            AuthOutcome::Allowed(_)
        ));
        // Reload with nothing changed: the verified entry carries over.
        let mut c = basic(&[("ops", &argon2id("new", b"saltsalt", 8, 1, 1))]);
        c.take_cache_from(&mut b);
        assert!(matches!(
            c.check(Some(&basic_header("ops", "new")), false, 2),
            AuthOutcome::Allowed(_)
        ));
        assert_eq!(c.hash_verifications(), 0);
    }
}
