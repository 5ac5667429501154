//! A minimal DNS stub resolver for A and AAAA, sans-IO: the query builder, the response
//! parser (RFC 1035 §4, with name compression and CNAME chains), and [`Lookup`], which
//! walks the search list and the nameservers with glibc's timeouts and attempts.
//!
//! Driving a `Lookup` from the reactor: bind one UDP socket (unconnected, `0.0.0.0:0`, or
//! `[::]:0` for IPv6 nameservers), send every [`Lookup::poll_transmit`], feed every
//! datagram received with its source to [`Lookup::on_datagram`], call
//! [`Lookup::on_tick`] at [`Lookup::next_deadline`], and stop when [`Lookup::outcome`]
//! is `Some`. A reply is taken only from the nameserver asked, with the id and question
//! asked (ids are random), so a stray or spoofed datagram is ignored.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::ResolvConf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    A,
    Aaaa,
}

impl QType {
    fn code(self) -> u16 {
        match self {
            QType::A => 1,
            QType::Aaaa => 28,
        }
    }
}

const TYPE_CNAME: u16 = 5;
const CLASS_IN: u16 = 1;
/// CNAME links followed before giving up on a looping or absurd chain.
const MAX_CNAME_CHAIN: usize = 8;
/// Compression pointers followed in one name: more than a 512-byte message can need.
const MAX_POINTERS: usize = 64;

/// A name that cannot go into a query: an empty label, a label over 63 bytes, or over
/// 255 bytes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadName;

/// A query for `name` (no trailing dot needed), recursion desired.
pub fn build_query(id: u16, name: &str, qtype: QType) -> Result<Vec<u8>, BadName> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    put_name(&mut q, name)?;
    q.extend_from_slice(&qtype.code().to_be_bytes());
    q.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(q)
}

fn put_name(q: &mut Vec<u8>, name: &str) -> Result<(), BadName> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.len() > 253 {
        return Err(BadName);
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(BadName);
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The addresses of the asked type; empty for "the name exists, no such record".
    Addrs(Vec<IpAddr>),
    NxDomain,
    /// The server could not answer (SERVFAIL, REFUSED...: the rcode), or the answer was
    /// truncated with no address in it; another server may do better.
    Failed(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not the answer to this query (another id or question): ignore it.
    NotOurs,
    Malformed(&'static str),
}

/// Reads a response to the query `(id, name, qtype)`.
pub fn parse_response(msg: &[u8], id: u16, name: &str, qtype: QType) -> Result<Reply, ParseError> {
    let short = ParseError::Malformed("short message");
    let header = msg.get(..12).ok_or(short.clone())?;
    let field = |i: usize| u16::from_be_bytes([header[i], header[i + 1]]);
    let flags = field(2);
    let is_response = flags & 0x8000 != 0;
    let opcode = (flags >> 11) & 0xf;
    if field(0) != id || !is_response || opcode != 0 || field(4) != 1 {
        return Err(ParseError::NotOurs);
    }
    let (qname, mut pos) = read_name(msg, 12)?;
    let qfixed = msg.get(pos..pos + 4).ok_or(short.clone())?;
    let want = name.strip_suffix('.').unwrap_or(name).as_bytes();
    if !qname.eq_ignore_ascii_case(want)
        || u16::from_be_bytes([qfixed[0], qfixed[1]]) != qtype.code()
        || u16::from_be_bytes([qfixed[2], qfixed[3]]) != CLASS_IN
    {
        return Err(ParseError::NotOurs);
    }
    pos += 4;
    let rcode = (flags & 0xf) as u8;
    match rcode {
        0 => {}
        3 => return Ok(Reply::NxDomain),
        other => return Ok(Reply::Failed(other)),
    }
    let truncated = flags & 0x0200 != 0;
    let mut records = Vec::new();
    for _ in 0..field(6) {
        let (owner, after) = read_name(msg, pos)?;
        let fixed = msg.get(after..after + 10).ok_or(short.clone())?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = after + 10;
        if msg.len() < start + len {
            // A truncated message may end mid-record; keep what came before.
            if truncated {
                break;
            }
            return Err(short);
        }
        if class == CLASS_IN {
            records.push((owner, rtype, start, len));
        }
        pos = start + len;
    }
    // The names that lead to the answer: the question, then each CNAME target in turn.
    let mut chain = vec![want.to_ascii_lowercase()];
    for _ in 0..MAX_CNAME_CHAIN {
        let last = chain.last().expect("starts non-empty");
        let next = records
            .iter()
            .find(|(owner, t, ..)| *t == TYPE_CNAME && owner.eq_ignore_ascii_case(last));
        let Some(&(_, _, start, _)) = next else { break };
        let (target, _) = read_name(msg, start)?;
        if chain.iter().any(|n| n.eq_ignore_ascii_case(&target)) {
            break;
        }
        chain.push(target.to_ascii_lowercase());
    }
    let mut addrs = Vec::new();
    for (owner, rtype, start, len) in &records {
        if *rtype != qtype.code() || !chain.iter().any(|n| n.eq_ignore_ascii_case(owner)) {
            continue;
        }
        let data = &msg[*start..*start + *len];
        let ip = match (qtype, <[u8; 4]>::try_from(data), <[u8; 16]>::try_from(data)) {
            (QType::A, Ok(v4), _) => IpAddr::V4(Ipv4Addr::from(v4)),
            (QType::Aaaa, _, Ok(v6)) => IpAddr::V6(Ipv6Addr::from(v6)),
            _ => return Err(ParseError::Malformed("address of the wrong length")),
        };
        if !addrs.contains(&ip) {
            addrs.push(ip);
        }
    }
    if truncated && addrs.is_empty() {
        return Ok(Reply::Failed(0));
    }
    Ok(Reply::Addrs(addrs))
}

/// The name at `pos` (dotted, as raw bytes) and where the bytes after it start.
fn read_name(msg: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), ParseError> {
    let mut name = Vec::new();
    let mut end = None;
    let mut pointers = 0;
    loop {
        let &len = msg
            .get(pos)
            .ok_or(ParseError::Malformed("name runs off the end"))?;
        match len {
            0 => break,
            1..=63 => {
                let label = msg
                    .get(pos + 1..pos + 1 + usize::from(len))
                    .ok_or(ParseError::Malformed("label runs off the end"))?;
                if !name.is_empty() {
                    name.push(b'.');
                }
                name.extend_from_slice(label);
                if name.len() > 255 {
                    return Err(ParseError::Malformed("name over 255 bytes"));
                }
                pos += 1 + usize::from(len);
            }
            0xc0..=0xff => {
                let low = *msg
                    .get(pos + 1)
                    .ok_or(ParseError::Malformed("pointer cut off"))?;
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(ParseError::Malformed("compression loop"));
                }
                end.get_or_insert(pos + 2);
                pos = usize::from(u16::from_be_bytes([len & 0x3f, low]));
            }
            _ => return Err(ParseError::Malformed("reserved label type")),
        }
    }
    Ok((name, end.unwrap_or(pos + 1)))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// Every server that answered said the name (with each search domain) does not exist
    /// or has no A/AAAA record.
    NotFound,
    /// No usable answer from any nameserver within `timeout × attempts`.
    Timeout,
    /// The nameservers answered with errors (SERVFAIL, REFUSED...).
    ServerFailure,
    BadName,
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NotFound => f.write_str("name not found"),
            ResolveError::Timeout => f.write_str("no answer from the nameservers"),
            ResolveError::ServerFailure => f.write_str("the nameservers failed to answer"),
            ResolveError::BadName => f.write_str("not a valid DNS name"),
        }
    }
}

/// A datagram for the reactor to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum QState {
    Waiting,
    Found(Vec<IpAddr>),
    /// NXDOMAIN, or no record of this type: final for this name.
    Negative,
    /// This server failed; another try may do better.
    Failed,
}

#[derive(Debug)]
struct Query {
    qtype: QType,
    id: u16,
    state: QState,
}

/// One resolution of one name to its A and AAAA addresses. Both are asked at once, like
/// glibc; names are tried in search-list order (`ndots`), servers in turn for each
/// attempt, each try waiting `timeout_ms`.
#[derive(Debug)]
pub struct Lookup {
    names: Vec<String>,
    name_idx: usize,
    servers: Vec<SocketAddr>,
    timeout_ms: u64,
    tries: usize,
    try_idx: usize,
    queries: [Query; 2],
    deadline: u64,
    rng: u64,
    /// A server answered with an error code (not just silence).
    saw_servfail: bool,
    transmits: VecDeque<Transmit>,
    outcome: Option<Result<Vec<IpAddr>, ResolveError>>,
}

impl Lookup {
    pub fn new(name: &str, conf: &ResolvConf, now_ms: u64, seed: u64) -> Lookup {
        let servers = if conf.nameservers.is_empty() {
            vec![SocketAddr::from(([127, 0, 0, 1], 53))]
        } else {
            conf.nameservers.clone()
        };
        let mut l = Lookup {
            names: candidates(name, conf),
            name_idx: 0,
            tries: servers.len() * conf.attempts.max(1) as usize,
            servers,
            timeout_ms: conf.timeout_ms.max(1),
            try_idx: 0,
            queries: [QType::A, QType::Aaaa].map(|qtype| Query {
                qtype,
                id: 0,
                state: QState::Waiting,
            }),
            deadline: 0,
            rng: seed,
            saw_servfail: false,
            transmits: VecDeque::new(),
            outcome: None,
        };
        if l.names.is_empty() {
            l.outcome = Some(Err(ResolveError::BadName));
        } else {
            l.send(now_ms);
        }
        l
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// `Some` once the lookup is over: addresses, IPv4 first, or why there are none.
    pub fn outcome(&self) -> Option<&Result<Vec<IpAddr>, ResolveError>> {
        self.outcome.as_ref()
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.outcome.is_none().then_some(self.deadline)
    }

    /// A datagram arrived on the lookup's socket from `from`.
    pub fn on_datagram(&mut self, from: SocketAddr, msg: &[u8], now_ms: u64) {
        if self.outcome.is_some() || from != self.server() {
            return;
        }
        let name = &self.names[self.name_idx];
        let mut nxdomain = false;
        for q in &mut self.queries {
            if q.state != QState::Waiting {
                continue;
            }
            match parse_response(msg, q.id, name, q.qtype) {
                Ok(Reply::Addrs(a)) if a.is_empty() => q.state = QState::Negative,
                Ok(Reply::Addrs(a)) => q.state = QState::Found(a),
                Ok(Reply::NxDomain) => {
                    q.state = QState::Negative;
                    nxdomain = true;
                }
                Ok(Reply::Failed(_)) => {
                    q.state = QState::Failed;
                    self.saw_servfail = true;
                }
                // Another query's answer, or garbage: the timeout deals with silence.
                Err(_) => {}
            }
        }
        if nxdomain {
            // The name does not exist, whatever its type.
            for q in &mut self.queries {
                q.state = QState::Negative;
            }
        }
        if self.queries.iter().all(|q| q.state != QState::Waiting) {
            self.settle(now_ms);
        }
    }

    pub fn on_tick(&mut self, now_ms: u64) {
        if self.outcome.is_none() && now_ms >= self.deadline {
            for q in &mut self.queries {
                if q.state == QState::Waiting {
                    q.state = QState::Failed;
                }
            }
            self.settle(now_ms);
        }
    }

    fn server(&self) -> SocketAddr {
        self.servers[self.try_idx % self.servers.len()]
    }

    fn found(&self) -> Vec<IpAddr> {
        let mut all = Vec::new();
        for q in &self.queries {
            if let QState::Found(a) = &q.state {
                all.extend_from_slice(a);
            }
        }
        all
    }

    /// No query is waiting: finish, or move on to the next try or name.
    fn settle(&mut self, now_ms: u64) {
        let found = self.found();
        if !found.is_empty() {
            // One family is enough; the other one failing is not worth a delay.
            self.outcome = Some(Ok(found));
            return;
        }
        if self.queries.iter().all(|q| q.state == QState::Negative) {
            self.name_idx += 1;
            self.try_idx = 0;
            if self.name_idx == self.names.len() {
                self.outcome = Some(Err(ResolveError::NotFound));
                return;
            }
            for q in &mut self.queries {
                q.state = QState::Waiting;
            }
            return self.send(now_ms);
        }
        // Some query failed or timed out on this server: ask the next one what is missing.
        self.try_idx += 1;
        if self.try_idx >= self.tries {
            let err = if self.saw_servfail {
                ResolveError::ServerFailure
            } else {
                ResolveError::Timeout
            };
            self.outcome = Some(Err(err));
            return;
        }
        for q in &mut self.queries {
            if q.state == QState::Failed {
                q.state = QState::Waiting;
            }
        }
        self.send(now_ms);
    }

    /// Sends every waiting query to the current server with a fresh id.
    fn send(&mut self, now_ms: u64) {
        let to = self.server();
        let name = &self.names[self.name_idx];
        for q in &mut self.queries {
            if q.state != QState::Waiting {
                continue;
            }
            // splitmix64: cheap, and the seed is what makes the ids unpredictable.
            self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            q.id = (z ^ (z >> 31)) as u16;
            match build_query(q.id, name, q.qtype) {
                Ok(payload) => self.transmits.push_back(Transmit { to, payload }),
                Err(BadName) => q.state = QState::Negative,
            }
        }
        self.deadline = now_ms.saturating_add(self.timeout_ms);
    }
}

/// The names to ask for, in glibc's order: as given first when it has at least `ndots`
/// dots, else the search domains first; only as given when it ends with a dot.
fn candidates(name: &str, conf: &ResolvConf) -> Vec<String> {
    if let Some(absolute) = name.strip_suffix('.') {
        return vec![absolute.to_owned()]
            .into_iter()
            .filter(|n| valid(n))
            .collect();
    }
    let searched = conf.search.iter().map(|d| format!("{name}.{d}"));
    let mut all: Vec<String> = if name.matches('.').count() >= conf.ndots {
        std::iter::once(name.to_owned()).chain(searched).collect()
    } else {
        searched.chain(std::iter::once(name.to_owned())).collect()
    };
    all.retain(|n| valid(n));
    all
}

fn valid(name: &str) -> bool {
    put_name(&mut Vec::new(), name).is_ok()
}

#[cfg(test)]
mod tests;
