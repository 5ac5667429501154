//! Request rate and connection limits for one server (SPEC §9).
//!
//! Token buckets refill at `requests_per_second` up to `burst_size`. With `limit_by = "ip"`
//! each client address has its own bucket, kept in a slab and found through a map from
//! address to slot; buckets of addresses unseen for [`IDLE_FORGET_MS`] (and with no open
//! connection) are removed by [`Limiter::sweep`], so a scan from many addresses cannot grow
//! memory without bound. Time is always an argument (milliseconds), never read here.

use std::collections::HashMap;
use std::net::IpAddr;

use slab::Slab;

use crate::config::{LimitBy, RateLimitConfig};

/// Buckets of addresses unseen this long are forgotten.
pub const IDLE_FORGET_MS: u64 = 5 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    updated_ms: u64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(burst: u32, now_ms: u64) -> TokenBucket {
        TokenBucket {
            tokens: f64::from(burst),
            updated_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64, rate: f64, burst: u32) {
        // A clock that seems to go backwards adds nothing (and takes nothing away).
        let elapsed = now_ms.saturating_sub(self.updated_ms);
        if elapsed > 0 {
            self.tokens = (self.tokens + elapsed as f64 * rate / 1000.0).min(f64::from(burst));
            self.updated_ms = now_ms;
        }
    }

    /// Takes a token, or says how many milliseconds until one is available.
    pub fn try_take(&mut self, now_ms: u64, rate: f64, burst: u32) -> Result<(), u64> {
        self.refill(now_ms, rate, burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            let missing = 1.0 - self.tokens;
            Err((missing * 1000.0 / rate).ceil().max(1.0) as u64)
        }
    }

    pub fn tokens(&self) -> f64 {
        self.tokens
    }
}

#[derive(Debug)]
struct Client {
    ip: IpAddr,
    bucket: TokenBucket,
    last_seen_ms: u64,
    connections: u32,
}

/// Why a request or connection is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Out of tokens; retry after this many whole seconds (at least 1).
    Rate { retry_after_secs: u64 },
    /// Too many open stream connections (per IP or in total).
    Connections,
}

#[derive(Debug)]
pub struct Limiter {
    pub config: RateLimitConfig,
    clients: Slab<Client>,
    by_ip: HashMap<IpAddr, usize>,
    global: TokenBucket,
    pub total_connections: u32,
    pub total_requests: u64,
    pub blocked_requests: u64,
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) count as their IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl Limiter {
    pub fn new(config: RateLimitConfig, now_ms: u64) -> Limiter {
        let global = TokenBucket::new(config.burst_size, now_ms);
        Limiter {
            config,
            clients: Slab::new(),
            by_ip: HashMap::new(),
            global,
            total_connections: 0,
            total_requests: 0,
            blocked_requests: 0,
        }
    }

    fn client(&mut self, ip: IpAddr, now_ms: u64) -> usize {
        let ip = canonical(ip);
        if let Some(&key) = self.by_ip.get(&ip) {
            self.clients[key].last_seen_ms = now_ms;
            return key;
        }
        let key = self.clients.insert(Client {
            ip,
            bucket: TokenBucket::new(self.config.burst_size, now_ms),
            last_seen_ms: now_ms,
            connections: 0,
        });
        self.by_ip.insert(ip, key);
        key
    }

    /// Every request (and every TCP connection) takes a token first.
    pub fn check_request(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), Refusal> {
        self.total_requests += 1;
        let (rate, burst) = (self.config.requests_per_second, self.config.burst_size);
        let key = self.client(ip, now_ms);
        let bucket = match self.config.limit_by {
            LimitBy::Ip => &mut self.clients[key].bucket,
            LimitBy::Global => &mut self.global,
        };
        bucket.try_take(now_ms, rate, burst).map_err(|wait_ms| {
            self.blocked_requests += 1;
            Refusal::Rate {
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            }
        })
    }

    /// Admits a stream connection if the per-IP and total limits allow; the caller must
    /// call [`close_connection`](Self::close_connection) when it ends.
    pub fn open_connection(&mut self, ip: IpAddr, now_ms: u64) -> Result<(), Refusal> {
        let key = self.client(ip, now_ms);
        let per_ip = self.config.max_connections_per_ip;
        let total = self.config.max_total_connections;
        if (per_ip > 0 && self.clients[key].connections >= per_ip)
            || (total > 0 && self.total_connections >= total)
        {
            self.blocked_requests += 1;
            return Err(Refusal::Connections);
        }
        self.clients[key].connections += 1;
        self.total_connections += 1;
        Ok(())
    }

    pub fn close_connection(&mut self, ip: IpAddr, now_ms: u64) {
        let ip = canonical(ip);
        if let Some(&key) = self.by_ip.get(&ip) {
            let c = &mut self.clients[key];
            c.connections = c.connections.saturating_sub(1);
            c.last_seen_ms = now_ms;
        }
        self.total_connections = self.total_connections.saturating_sub(1);
    }

    /// Forgets addresses idle for [`IDLE_FORGET_MS`] with no open connection.
    pub fn sweep(&mut self, now_ms: u64) {
        let stale: Vec<usize> = self
            .clients
            .iter()
            .filter(|(_, c)| {
                c.connections == 0 && now_ms.saturating_sub(c.last_seen_ms) >= IDLE_FORGET_MS
            })
            .map(|(k, _)| k)
            .collect();
        for key in stale {
            let c = self.clients.remove(key);
            self.by_ip.remove(&c.ip);
        }
        if self.clients.is_empty() {
            // Give the memory of a past flood back.
            self.clients.shrink_to_fit();
            self.by_ip.shrink_to_fit();
        }
    }

    pub fn active_ips(&self) -> usize {
        self.clients.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn cfg(rps: f64, burst: u32, by: LimitBy) -> RateLimitConfig {
        RateLimitConfig {
            requests_per_second: rps,
            burst_size: burst,
            limit_by: by,
            response_code: 429,
            response_message: "Rate limit exceeded".into(),
            max_connections_per_ip: 0,
            max_total_connections: 0,
        }
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    #[test]
    fn burst_then_refill() {
        let mut b = TokenBucket::new(3, 0);
        for _ in 0..3 {
            assert_eq!(b.try_take(0, 2.0, 3), Ok(()));
        }
        assert_eq!(b.try_take(0, 2.0, 3), Err(500));
        assert!(
            matches!(b.try_take(499, 2.0, 3), Err(1..=2)),
            "0.998 tokens: about 1 ms to go"
        );
        assert_eq!(b.try_take(500, 2.0, 3), Ok(()));
        // Long idle refills only to the burst.
        assert_eq!(b.try_take(1_000_000, 2.0, 3), Ok(()));
        assert!((b.tokens() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn fractional_rates() {
        let mut b = TokenBucket::new(1, 0);
        assert_eq!(b.try_take(0, 0.25, 1), Ok(()));
        assert_eq!(b.try_take(0, 0.25, 1), Err(4000));
        assert!(matches!(b.try_take(3999, 0.25, 1), Err(1..=2)));
        assert_eq!(b.try_take(4000, 0.25, 1), Ok(()));
    }

    #[test]
    fn clock_going_backwards_adds_nothing() {
        let mut b = TokenBucket::new(1, 1000);
        assert_eq!(b.try_take(1000, 1.0, 1), Ok(()));
        assert!(b.try_take(500, 1.0, 1).is_err());
        assert!(b.try_take(1999, 1.0, 1).is_err());
        assert_eq!(b.try_take(2000, 1.0, 1), Ok(()));
    }

    #[test]
    fn per_ip_buckets_are_independent_global_is_shared() {
        let mut l = Limiter::new(cfg(1.0, 2, LimitBy::Ip), 0);
        assert!(l.check_request(A, 0).is_ok());
        assert!(l.check_request(A, 0).is_ok());
        assert_eq!(
            l.check_request(A, 0),
            Err(Refusal::Rate {
                retry_after_secs: 1
            })
        );
        assert!(l.check_request(B, 0).is_ok());
        assert_eq!((l.total_requests, l.blocked_requests), (4, 1));
        assert_eq!(l.active_ips(), 2);

        let mut g = Limiter::new(cfg(1.0, 2, LimitBy::Global), 0);
        assert!(g.check_request(A, 0).is_ok());
        assert!(g.check_request(B, 0).is_ok());
        assert!(g.check_request(B, 0).is_err());
        assert!(g.check_request(A, 0).is_err());
    }

    #[test]
    fn mapped_ipv6_counts_as_ipv4() {
        let mut l = Limiter::new(cfg(1.0, 1, LimitBy::Ip), 0);
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(l.check_request(A, 0).is_ok());
        assert!(l.check_request(mapped, 0).is_err());
        assert_eq!(l.active_ips(), 1);
    }

    #[test]
    fn connection_limits_and_release() {
        let mut c = cfg(100.0, 100, LimitBy::Ip);
        c.max_connections_per_ip = 2;
        c.max_total_connections = 3;
        let mut l = Limiter::new(c, 0);
        assert!(l.open_connection(A, 0).is_ok());
        assert!(l.open_connection(A, 0).is_ok());
        assert_eq!(l.open_connection(A, 0), Err(Refusal::Connections));
        assert!(l.open_connection(B, 0).is_ok());
        assert_eq!(l.open_connection(B, 0), Err(Refusal::Connections), "total");
        l.close_connection(A, 1);
        assert!(l.open_connection(B, 1).is_ok());
        assert_eq!(l.total_connections, 3);
    }

    #[test]
    fn stale_ips_are_swept_but_connected_ones_stay() {
        let mut l = Limiter::new(cfg(1.0, 1, LimitBy::Ip), 0);
        for i in 0..1000u32 {
            let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
            let _ = l.check_request(ip, 0);
        }
        l.open_connection(A, 10).unwrap();
        assert_eq!(l.active_ips(), 1001);
        l.sweep(IDLE_FORGET_MS - 1);
        assert_eq!(l.active_ips(), 1001, "not yet");
        l.sweep(IDLE_FORGET_MS + 10);
        assert_eq!(l.active_ips(), 1, "only the connected address is left");
        l.close_connection(A, IDLE_FORGET_MS + 10);
        l.sweep(2 * IDLE_FORGET_MS + 10);
        assert_eq!(l.active_ips(), 0);
        assert!(
            l.check_request(A, 2 * IDLE_FORGET_MS + 10).is_ok(),
            "fresh full bucket"
        );
    }
}
