//! Refusals (IP lists, authentication) are logged at most once per address per minute:
//! a scanner hammering a port must not flood the log. Every refusal is still counted.

use std::collections::HashMap;
use std::net::IpAddr;

/// One line per address per this long.
pub const WINDOW_MS: u64 = 60_000;
/// Addresses remembered at once; past it, expired ones are forgotten, and while all are
/// fresh a new address is counted but not logged.
const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Default)]
pub struct Audit {
    last_logged: HashMap<IpAddr, u64>,
}

impl Audit {
    /// Whether a refusal of `ip` at `now_ms` gets a log line.
    pub fn should_log(&mut self, ip: IpAddr, now_ms: u64) -> bool {
        if let Some(at) = self.last_logged.get_mut(&ip) {
            if now_ms.saturating_sub(*at) < WINDOW_MS {
                return false;
            }
            *at = now_ms;
            return true;
        }
        if self.last_logged.len() >= MAX_ADDRESSES {
            self.last_logged
                .retain(|_, at| now_ms.saturating_sub(*at) < WINDOW_MS);
            if self.last_logged.len() >= MAX_ADDRESSES {
                return false;
            }
        }
        self.last_logged.insert(ip, now_ms);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(i: u32) -> IpAddr {
        IpAddr::from(i.to_be_bytes())
    }

    #[test]
    fn once_per_address_per_window() {
        let mut a = Audit::default();
        assert!(a.should_log(ip(1), 0));
        assert!(!a.should_log(ip(1), WINDOW_MS - 1));
        assert!(a.should_log(ip(2), 10));
        assert!(a.should_log(ip(1), WINDOW_MS));
        assert!(!a.should_log(ip(1), WINDOW_MS + 5));
    }

    #[test]
    fn memory_is_bounded_and_expired_addresses_make_room() {
        let mut a = Audit::default();
        for i in 0..MAX_ADDRESSES as u32 {
            assert!(a.should_log(ip(i), 0));
        }
        assert!(!a.should_log(ip(u32::MAX), 1), "all fresh: not logged");
        assert_eq!(a.last_logged.len(), MAX_ADDRESSES);
        assert!(a.should_log(ip(u32::MAX), WINDOW_MS));
        assert_eq!(a.last_logged.len(), 1);
    }
}
