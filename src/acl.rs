//! IP access lists for one server (SPEC §13): `ip_allow` and `ip_deny`, checked when a
//! connection is accepted, before anything is read from it.
//!
//! - An empty allow list lets everyone in; a non-empty one lets in only the addresses it
//!   covers. Deny wins over allow.
//! - Entries are single addresses or CIDR networks, IPv4 or IPv6. An entry whose host bits
//!   are set (`10.0.0.1/8`) is rejected rather than masked: it is most often a typo for
//!   `/32` or for the network, and silently widening it would let in more than was asked.
//! - An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is the IPv4 address, both as a peer
//!   (a dual-stack socket reports IPv4 clients that way) and as an entry
//!   (`::ffff:10.0.0.0/104` is `10.0.0.0/8`). IPv6 networks never match IPv4 peers, even
//!   ones that span the mapped range such as `::/0`: a rule written for IPv6 stays one.
//!
//! Checking is a scan of a few masked compares per list, in a `u32` for IPv4 and a `u128`
//! for IPv6; lists are short, so nothing cleverer pays for itself.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One network: an address with its prefix length, host bits clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    V4 { addr: u32, prefix: u8 },
    V6 { addr: u128, prefix: u8 },
}

impl Net {
    pub fn contains(&self, ip: IpAddr) -> bool {
        // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; the deprecated
        // IPv4-compatible form ::a.b.c.d stays IPv6 (`to_canonical` leaves it alone).
        match (*self, ip.to_canonical()) {
            (Net::V4 { addr, prefix }, IpAddr::V4(ip)) => u32::from(ip) & mask32(prefix) == addr,
            (Net::V6 { addr, prefix }, IpAddr::V6(ip)) => u128::from(ip) & mask128(prefix) == addr,
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn v4_net(bits: u32, prefix: u8) -> (Net, bool) {
    let mask = mask32(prefix);
    (
        Net::V4 {
            addr: bits & mask,
            prefix,
        },
        bits & !mask != 0,
    )
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Net::V4 { addr, prefix } => write!(f, "{}/{prefix}", Ipv4Addr::from(addr)),
            Net::V6 { addr, prefix } => write!(f, "{}/{prefix}", Ipv6Addr::from(addr)),
        }
    }
}

/// Why an entry is not a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetError {
    NotAnAddress,
    BadPrefix,
    PrefixTooLong { max: u8 },
    HostBitsSet { network: Net },
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::NotAnAddress => f.write_str("not an IPv4 or IPv6 address"),
            NetError::BadPrefix => f.write_str("the prefix length after `/` is not a number"),
            NetError::PrefixTooLong { max } => write!(f, "prefix length over {max}"),
            NetError::HostBitsSet { network } => {
                write!(
                    f,
                    "host bits set after the prefix (the network is {network})"
                )
            }
        }
    }
}

impl FromStr for Net {
    type Err = NetError;

    fn from_str(s: &str) -> Result<Net, NetError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| NetError::NotAnAddress)?;
        let max: u8 = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => u16::from(max),
            // Digits only: `u8::from_str` would also take `+8`.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u16>().map_err(|_| NetError::BadPrefix)?
            }
            Some(_) => return Err(NetError::BadPrefix),
        };
        if prefix > u16::from(max) {
            return Err(NetError::PrefixTooLong { max });
        }
        let prefix = prefix as u8;
        let (net, host_bits) = match ip {
            IpAddr::V4(v4) => v4_net(u32::from(v4), prefix),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // The whole network lies inside ::ffff:0:0/96, so it is an IPv4 network.
                Some(v4) if prefix >= 96 => v4_net(u32::from(v4), prefix - 96),
                _ => {
                    let (bits, mask) = (u128::from(v6), mask128(prefix));
                    (
                        Net::V6 {
                            addr: bits & mask,
                            prefix,
                        },
                        bits & !mask != 0,
                    )
                }
            },
        };
        if host_bits {
            return Err(NetError::HostBitsSet { network: net });
        }
        Ok(net)
    }
}

/// A list entry that could not be read, named the way a config error should name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclError {
    /// `ip_allow` or `ip_deny`.
    pub list: &'static str,
    pub index: usize,
    pub entry: String,
    pub reason: NetError,
}

impl fmt::Display for AclError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}] {:?}: {}",
            self.list, self.index, self.entry, self.reason
        )
    }
}

impl std::error::Error for AclError {}

/// The allow and deny lists of one server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    allow: Vec<Net>,
    deny: Vec<Net>,
}

impl Acl {
    /// Parses both lists; the first bad entry is the error.
    pub fn new<S: AsRef<str>>(allow: &[S], deny: &[S]) -> Result<Acl, AclError> {
        Ok(Acl {
            allow: parse_list("ip_allow", allow)?,
            deny: parse_list("ip_deny", deny)?,
        })
    }

    /// No entries in either list: everyone is let in and the check can be skipped.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.deny.is_empty()
    }

    pub fn allows(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|n| n.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(ip))
    }
}

fn parse_list<S: AsRef<str>>(list: &'static str, entries: &[S]) -> Result<Vec<Net>, AclError> {
    entries
        .iter()
        .enumerate()
        .map(|(index, e)| {
            e.as_ref().parse().map_err(|reason| AclError {
                list,
                index,
                entry: e.as_ref().to_string(),
                reason,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> Net {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn acl(allow: &[&str], deny: &[&str]) -> Acl {
        Acl::new(allow, deny).unwrap()
    }

    #[test]
    fn entries_parse_to_masked_networks() {
        assert_eq!(
            net("10.0.0.0/8"),
            Net::V4 {
                addr: 0x0a00_0000,
                prefix: 8
            }
        );
        assert_eq!(
            net("192.168.1.7"),
            Net::V4 {
                addr: 0xc0a8_0107,
                prefix: 32
            }
        );
        assert_eq!(net("0.0.0.0/0"), Net::V4 { addr: 0, prefix: 0 });
        assert_eq!(
            net("::1"),
            Net::V6 {
                addr: 1,
                prefix: 128
            }
        );
        assert_eq!(net("::/0"), Net::V6 { addr: 0, prefix: 0 });
        assert_eq!(
            net("fd00::/8"),
            Net::V6 {
                addr: 0xfd << 120,
                prefix: 8
            }
        );
        assert_eq!(net("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(net("10.1.2.3/32").to_string(), "10.1.2.3/32");
    }

    #[test]
    fn ipv4_mapped_entries_are_ipv4_networks() {
        assert_eq!(net("::ffff:10.1.2.3"), net("10.1.2.3"));
        assert_eq!(net("::ffff:10.0.0.0/104"), net("10.0.0.0/8"));
        assert_eq!(net("::ffff:0:0/96"), net("0.0.0.0/0"));
        // Wider than the mapped range: stays IPv6.
        assert_eq!(
            net("::/80"),
            Net::V6 {
                addr: 0,
                prefix: 80
            }
        );
    }

    #[test]
    fn malformed_entries_say_what_is_wrong() {
        let cases = [
            ("", NetError::NotAnAddress),
            ("10.0.0", NetError::NotAnAddress),
            ("10.0.0.256", NetError::NotAnAddress),
            (" 10.0.0.1", NetError::NotAnAddress),
            ("fe80::1%eth0", NetError::NotAnAddress),
            ("example.com", NetError::NotAnAddress),
            ("10.0.0.0/", NetError::BadPrefix),
            ("10.0.0.0/+8", NetError::BadPrefix),
            ("10.0.0.0/8 ", NetError::BadPrefix),
            ("10.0.0.0/-1", NetError::BadPrefix),
            ("10.0.0.0/0008", NetError::BadPrefix),
            ("10.0.0.0/8/8", NetError::BadPrefix),
            ("::/999", NetError::PrefixTooLong { max: 128 }),
            ("10.0.0.0/33", NetError::PrefixTooLong { max: 32 }),
            ("::/129", NetError::PrefixTooLong { max: 128 }),
            (
                "10.0.0.1/8",
                NetError::HostBitsSet {
                    network: net("10.0.0.0/8"),
                },
            ),
            (
                "fd00::1/8",
                NetError::HostBitsSet {
                    network: net("fd00::/8"),
                },
            ),
            (
                "::ffff:10.0.0.1/104",
                NetError::HostBitsSet {
                    network: net("10.0.0.0/8"),
                },
            ),
        ];
        for (entry, want) in cases {
            assert_eq!(entry.parse::<Net>(), Err(want), "{entry:?}");
        }
    }

    #[test]
    fn errors_name_the_list_the_index_and_the_entry() {
        let e = Acl::new(&["10.0.0.0/8", "192.168.1.7/24"], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip_allow[1] \"192.168.1.7/24\": host bits set after the prefix (the network is 192.168.1.0/24)"
        );
        let e = Acl::new(&[], &["10.0.0.0/33"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "ip_deny[0] \"10.0.0.0/33\": prefix length over 32"
        );
        let e = Acl::new::<&str>(&[], &["nope"]).unwrap_err();
        assert_eq!((e.list, e.index), ("ip_deny", 0));
    }

    #[test]
    fn empty_lists_let_everyone_in() {
        let a = acl(&[], &[]);
        assert!(a.is_open());
        for p in [
            "127.0.0.1",
            "10.9.9.9",
            "::1",
            "::ffff:1.2.3.4",
            "2001:db8::1",
        ] {
            assert!(a.allows(ip(p)), "{p}");
        }
    }

    #[test]
    fn allow_list_lets_in_only_what_it_covers() {
        let a = acl(&["10.0.0.0/8", "192.168.1.7", "fd00::/8"], &[]);
        assert!(!a.is_open());
        for p in [
            "10.0.0.1",
            "10.255.255.255",
            "192.168.1.7",
            "fd12::3",
            "::ffff:10.1.2.3",
        ] {
            assert!(a.allows(ip(p)), "{p}");
        }
        for p in [
            "11.0.0.1",
            "192.168.1.8",
            "127.0.0.1",
            "fe00::1",
            "::1",
            "::ffff:11.0.0.1",
        ] {
            assert!(!a.allows(ip(p)), "{p}");
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let a = acl(&["10.0.0.0/8"], &["10.9.9.9", "10.1.0.0/16"]);
        assert!(a.allows(ip("10.0.0.1")));
        assert!(!a.allows(ip("10.9.9.9")));
        assert!(!a.allows(ip("10.1.200.3")));
        assert!(!a.allows(ip("::ffff:10.9.9.9")));
        // Deny alone: everyone else is let in.
        let a = acl(&[], &["127.0.0.2"]);
        assert!(a.allows(ip("127.0.0.1")));
        assert!(!a.allows(ip("127.0.0.2")));
    }

    #[test]
    fn mapped_peers_and_mapped_entries_meet() {
        let a = acl(&["::ffff:192.168.0.0/112"], &[]);
        assert!(a.allows(ip("192.168.3.4")));
        assert!(a.allows(ip("::ffff:192.168.3.4")));
        assert!(!a.allows(ip("192.169.0.1")));
    }

    #[test]
    fn ipv6_networks_do_not_match_ipv4_peers() {
        let a = acl(&[], &["::/0"]);
        assert!(!a.allows(ip("2001:db8::1")));
        assert!(a.allows(ip("10.0.0.1")));
        assert!(a.allows(ip("::ffff:10.0.0.1")));
        let a = acl(&["0.0.0.0/0"], &[]);
        assert!(a.allows(ip("8.8.8.8")));
        assert!(!a.allows(ip("::1")));
        // The deprecated IPv4-compatible form is IPv6, not 0.0.0.1.
        assert!(!a.allows(ip("::0.0.0.1")));
    }

    #[test]
    fn prefix_edges() {
        let a = acl(&["10.1.2.3/32", "2001:db8::1/128", "128.0.0.0/1"], &[]);
        assert!(a.allows(ip("10.1.2.3")));
        assert!(!a.allows(ip("10.1.2.2")));
        assert!(a.allows(ip("2001:db8::1")));
        assert!(!a.allows(ip("2001:db8::2")));
        assert!(a.allows(ip("200.0.0.1")));
        assert!(!a.allows(ip("127.255.255.255")));
    }
}
