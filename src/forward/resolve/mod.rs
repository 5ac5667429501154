//! From a broker URL to addresses, without glibc's NSS and without blocking the reactor.
//!
//! Why not `getaddrinfo` (what `ToSocketAddrs` calls): in the static binary it still
//! follows `/etc/nsswitch.conf`, and for any source that is not built into libc (Debian's
//! default `hosts: files mdns4_minimal [NOTFOUND=return] dns`, `resolve` or `myhostname`
//! on systemd hosts) it `dlopen`s `libnss_*.so.2`, which maps the shared `libc.so.6` and
//! `ld-linux` into the process (seen with strace on Debian 12). That needs the exact glibc
//! the binary was linked with on the target box, which is what linking statically was
//! meant to avoid, and glibc warns about it at link time. It also blocks, for
//! `timeout × attempts` per server when DNS is down, and one thread serves every client.
//!
//! So the reactor resolves like this: [`parse_url`] → an IP literal is used as is →
//! [`hosts_lookup`] in `/etc/hosts` → `localhost` names → else a [`dns::Lookup`], a
//! sans-IO A/AAAA query to the nameservers of `/etc/resolv.conf` over a UDP socket the
//! reactor owns. [`resolve`] does the first steps and hands back the lookup when DNS is
//! needed. mDNS (`.local`) and systemd-resolved's extra sources are not consulted; on a
//! systemd box resolv.conf points at its stub resolver, which covers most of it.

pub mod dns;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use self::dns::{Lookup, ResolveError, Transmit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `nats://`, port 4222.
    Nats,
    /// `tls://`: NATS with TLS after INFO, port 4222.
    NatsTls,
    /// `mqtt://`, port 1883.
    Mqtt,
    /// `mqtts://`: MQTT inside TLS from the first byte, port 8883.
    Mqtts,
}

impl Scheme {
    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Nats | Scheme::NatsTls => 4222,
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::NatsTls | Scheme::Mqtts)
    }

    pub fn is_nats(self) -> bool {
        matches!(self, Scheme::Nats | Scheme::NatsTls)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    Ip(IpAddr),
    /// A validated DNS name, lower-cased, without a trailing dot.
    Name(String),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(n) => f.write_str(n),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub scheme: Scheme,
    /// Also the name to verify the server's certificate against (and send as SNI).
    pub host: Host,
    pub port: u16,
    /// From `user:password@`, percent-decoded.
    pub username: Option<String>,
    pub password: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    Scheme(String),
    Host(String),
    Port(String),
    /// A path, query or fragment: broker URLs have none.
    Trailing(String),
    /// A `%` not followed by two hex digits, or a decoded value that is not UTF-8.
    Escape,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlError::Scheme(s) => write!(
                f,
                "unknown scheme {s:?}: expected nats://, tls://, mqtt:// or mqtts://"
            ),
            UrlError::Host(h) => write!(f, "bad host {h:?}"),
            UrlError::Port(p) => write!(f, "bad port {p:?}: expected 1 to 65535"),
            UrlError::Trailing(t) => write!(f, "unexpected {t:?} after the host and port"),
            UrlError::Escape => f.write_str("bad %-escape in the user or password"),
        }
    }
}

/// Parses `scheme://[user[:password]@]host[:port][/]`; `host` may be `[v6]`.
pub fn parse_url(url: &str) -> Result<Url, UrlError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| UrlError::Scheme(url.to_owned()))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "nats" => Scheme::Nats,
        "tls" => Scheme::NatsTls,
        "mqtt" => Scheme::Mqtt,
        "mqtts" => Scheme::Mqtts,
        _ => return Err(UrlError::Scheme(scheme.to_owned())),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, trailing) = rest.split_at(end);
    if !trailing.is_empty() && trailing != "/" {
        return Err(UrlError::Trailing(trailing.to_owned()));
    }
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (Some(percent_decode(user)?), Some(percent_decode(pass)?)),
            None => (Some(percent_decode(u)?), None),
        },
    };
    let (host, port) = parse_host_port(hostport, scheme.default_port())?;
    Ok(Url {
        scheme,
        host,
        port,
        username,
        password,
    })
}

/// Parses `host[:port]` as NATS servers list their cluster peers in INFO `connect_urls`.
pub fn parse_host_port(s: &str, default_port: u16) -> Result<(Host, u16), UrlError> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| UrlError::Host(s.to_owned()))?;
        let ip: Ipv6Addr = v6.parse().map_err(|_| UrlError::Host(v6.to_owned()))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| UrlError::Port(p.to_owned()))?,
            ),
        };
        (Host::Ip(IpAddr::V6(ip)), port)
    } else {
        let (h, p) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        (parse_host(h)?, p)
    };
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 && p.bytes().all(|b| b.is_ascii_digit()) => n,
            _ => return Err(UrlError::Port(p.to_owned())),
        },
    };
    Ok((host, port))
}

fn parse_host(h: &str) -> Result<Host, UrlError> {
    if let Ok(ip) = h.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    let name = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    // All-numeric dotted names are malformed IPv4 (e.g. 1.2.3.256), not names.
    let numeric = name.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if name.len() > 253 || numeric || !name.split('.').all(label_ok) {
        return Err(UrlError::Host(h.to_owned()));
    }
    Ok(Host::Name(name))
}

fn percent_decode(s: &str) -> Result<String, UrlError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3).ok_or(UrlError::Escape)?;
            let hex = std::str::from_utf8(hex).map_err(|_| UrlError::Escape)?;
            if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(UrlError::Escape);
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| UrlError::Escape)?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Escape)
}

/// The addresses `/etc/hosts` (its text) gives `name`, in file order, without repeats.
/// Entries with an IPv6 zone (`fe80::1%eth0`) are skipped: a zone needs an interface
/// index, which needs a system call.
pub fn hosts_lookup(hosts: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in hosts.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_ascii_whitespace();
        let Some(Ok(ip)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if fields.any(|alias| {
            alias
                .strip_suffix('.')
                .unwrap_or(alias)
                .eq_ignore_ascii_case(name)
        }) && !found.contains(&ip)
        {
            found.push(ip);
        }
    }
    found
}

/// What glibc's resolver takes from `/etc/resolv.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvConf {
    /// At most three, like glibc (`MAXNS`).
    pub nameservers: Vec<SocketAddr>,
    /// At most six domains (`MAXDNSRCH`).
    pub search: Vec<String>,
    pub ndots: usize,
    pub timeout_ms: u64,
    pub attempts: u32,
}

impl Default for ResolvConf {
    /// glibc's defaults, used for what the file does not say (and when it is missing).
    fn default() -> ResolvConf {
        ResolvConf {
            nameservers: Vec::new(),
            search: Vec::new(),
            ndots: 1,
            timeout_ms: 5000,
            attempts: 2,
        }
    }
}

impl ResolvConf {
    pub fn parse(text: &str) -> ResolvConf {
        let mut c = ResolvConf::default();
        for line in text.lines() {
            let mut words = line.split_ascii_whitespace();
            match words.next() {
                Some("nameserver") => {
                    let ip = words.next().and_then(|w| w.parse::<IpAddr>().ok());
                    if let Some(ip) = ip
                        && c.nameservers.len() < 3
                    {
                        c.nameservers.push(SocketAddr::new(ip, 53));
                    }
                }
                // The last of `domain` and `search` wins, as in glibc.
                Some("domain") => c.search = words.take(1).map(str::to_ascii_lowercase).collect(),
                Some("search") => {
                    c.search = words
                        .filter(|d| parse_host(d).is_ok())
                        .take(6)
                        .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                        .collect()
                }
                Some("options") => {
                    for opt in words {
                        let (key, val) = opt.split_once(':').unwrap_or((opt, ""));
                        let Ok(n) = val.parse::<u32>() else { continue };
                        match key {
                            "ndots" => c.ndots = n.min(15) as usize,
                            "timeout" => c.timeout_ms = u64::from(n.clamp(1, 30)) * 1000,
                            "attempts" => c.attempts = n.clamp(1, 5),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if c.nameservers.is_empty() {
            // No nameserver line: glibc asks the local host.
            c.nameservers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
        }
        c
    }

    /// Reads `/etc/resolv.conf`; defaults when it cannot be read. A blocking read of a
    /// small local file, meant for (re)connect time.
    pub fn from_system() -> ResolvConf {
        ResolvConf::parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
    }
}

/// Reads `/etc/hosts` (empty when it cannot be read); like [`ResolvConf::from_system`].
pub fn system_hosts() -> String {
    std::fs::read_to_string("/etc/hosts").unwrap_or_default()
}

/// The outcome of the steps that need no network.
#[derive(Debug)]
pub enum Resolution {
    /// IPv4 addresses first (edge networks often lack an IPv6 route), then IPv6.
    Ready(Vec<IpAddr>),
    /// Drive this with the reactor's UDP socket (see [`dns::Lookup`]).
    Dns(Lookup),
}

/// IP literal → `/etc/hosts` text → `localhost` names (RFC 6761) → DNS. `seed` makes
/// the DNS query ids unpredictable: pass [`super::random_u64`].
pub fn resolve(host: &Host, hosts: &str, conf: &ResolvConf, now_ms: u64, seed: u64) -> Resolution {
    let name = match host {
        Host::Ip(ip) => return Resolution::Ready(vec![*ip]),
        Host::Name(name) => name,
    };
    let mut found = hosts_lookup(hosts, name);
    if found.is_empty() && (name == "localhost" || name.ends_with(".localhost")) {
        found = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    if found.is_empty() {
        return Resolution::Dns(Lookup::new(name, conf, now_ms, seed));
    }
    found.sort_by_key(IpAddr::is_ipv6);
    Resolution::Ready(found)
}

#[cfg(test)]
mod tests;
