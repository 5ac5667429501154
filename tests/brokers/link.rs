//! An engine on a real socket, pumped the way the reactor will: write what the engine
//! has queued (partial writes allowed), read what arrived, feed it with the time, tick.

use std::fmt::Debug;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use logwisp::forward::{mqtt, nats};

/// How long any single expected thing may take.
pub const TIMEOUT: Duration = Duration::from_secs(15);

pub trait Engine {
    type Event: Debug;
    fn connected(&mut self, now: u64);
    fn on_bytes(&mut self, b: &[u8], now: u64);
    fn on_tick(&mut self, now: u64);
    fn output(&self) -> &[u8];
    fn consume_output(&mut self, n: usize);
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn connection_lost(&mut self);
}

macro_rules! engine {
    ($t:ty, $ev:ty) => {
        impl Engine for $t {
            type Event = $ev;
            fn connected(&mut self, now: u64) {
                <$t>::connected(self, now)
            }
            fn on_bytes(&mut self, b: &[u8], now: u64) {
                <$t>::on_bytes(self, b, now)
            }
            fn on_tick(&mut self, now: u64) {
                <$t>::on_tick(self, now)
            }
            fn output(&self) -> &[u8] {
                <$t>::output(self)
            }
            fn consume_output(&mut self, n: usize) {
                <$t>::consume_output(self, n)
            }
            fn poll_event(&mut self) -> Option<$ev> {
                <$t>::poll_event(self)
            }
            fn connection_lost(&mut self) {
                <$t>::connection_lost(self)
            }
        }
    };
}
engine!(nats::Nats, nats::Event);
engine!(mqtt::Mqtt, mqtt::Event);

pub struct Link<E: Engine> {
    pub engine: E,
    sock: Option<TcpStream>,
    t0: Instant,
    /// Every event so far, for failure messages.
    pub seen: Vec<String>,
}

impl<E: Engine> Link<E> {
    pub fn new(engine: E) -> Link<E> {
        Link {
            engine,
            sock: None,
            t0: Instant::now(),
            seen: Vec::new(),
        }
    }

    pub fn now(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// Connects to 127.0.0.1:`port` and starts the engine's handshake.
    pub fn connect(&mut self, port: u16) {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_nodelay(true).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(5)))
            .unwrap();
        sock.set_write_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        self.sock = Some(sock);
        let now = self.now();
        self.engine.connected(now);
    }

    /// One turn: write, read (waiting at most a few ms), tick. Events are returned.
    pub fn pump(&mut self) -> Vec<E::Event> {
        if let Some(sock) = &mut self.sock {
            let out = self.engine.output();
            if !out.is_empty() {
                match sock.write(out) {
                    Ok(n) => self.engine.consume_output(n),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => self.lost(),
                }
            }
        }
        if let Some(sock) = &mut self.sock {
            let mut buf = [0u8; 16 * 1024];
            match sock.read(&mut buf) {
                Ok(0) => self.lost(),
                Ok(n) => {
                    let now = self.now();
                    self.engine.on_bytes(&buf[..n], now);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => self.lost(),
            }
        }
        let now = self.now();
        self.engine.on_tick(now);
        let events: Vec<E::Event> = std::iter::from_fn(|| self.engine.poll_event()).collect();
        self.seen.extend(events.iter().map(|e| format!("{e:?}")));
        events
    }

    fn lost(&mut self) {
        self.sock = None;
        self.engine.connection_lost();
    }

    /// Pumps until `f` returns `Some` for an event, or panics after [`TIMEOUT`]. Other
    /// events go to `other`.
    pub fn until<T>(
        &mut self,
        what: &str,
        mut f: impl FnMut(&E::Event) -> Option<T>,
        mut other: impl FnMut(E::Event),
    ) -> T {
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            let mut found = None;
            for ev in self.pump() {
                match (found.is_none()).then(|| f(&ev)).flatten() {
                    Some(t) => found = Some(t),
                    None => other(ev),
                }
            }
            if let Some(t) = found {
                return t;
            }
        }
        panic!("no {what} within {TIMEOUT:?}; events: {:?}", self.seen);
    }

    /// Pumps for `d`, handing every event to `f`.
    pub fn pump_for(&mut self, d: Duration, mut f: impl FnMut(E::Event)) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            self.pump().into_iter().for_each(&mut f);
        }
    }
}
