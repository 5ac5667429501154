//! Client connections: the transport, the readiness the kernel reported, and what the
//! connection is doing (reading a request, streaming, or finishing a last response).

use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;
use std::os::fd::AsRawFd;

use mio::net::TcpStream;

use crate::fanout::{Framing, Subscriber};
use crate::stream::{ServerKind, StreamId};
use crate::timer::TimerId;

/// The byte pipe under a connection. Above it, connections read and write plaintext; a
/// transport may hold bytes of its own (a TLS session's records), which it sends with
/// [`push_pending`](Self::push_pending), and it ends a connection in its own orderly way
/// ([`shutdown_write`](Self::shutdown_write): a FIN, or a TLS close_notify then a FIN).
#[derive(Debug)]
pub enum Transport {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<crate::tls::TlsStream>),
}

impl Transport {
    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.socket(),
        }
    }

    /// Still negotiating TLS (a plain connection never is).
    pub fn handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.is_handshaking(),
        }
    }

    /// A verified client certificate came with the TLS handshake.
    pub fn has_client_certificate(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.has_client_certificate(),
        }
    }

    /// Sends what the transport itself holds; `Done` when nothing is left.
    pub fn push_pending(&mut self) -> io::Result<Io> {
        match self {
            Transport::Plain(_) => Ok(Io::Done),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => Ok(if t.push_pending()? {
                Io::Done
            } else {
                Io::WouldBlock
            }),
        }
    }

    /// Ends our sending side in the transport's orderly way.
    pub fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(s) => {
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.shutdown_write(),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.write_vectored(&[IoSlice::new(buf)]),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
            #[cfg(feature = "tls")]
            Transport::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An HTTP connection between requests.
#[derive(Debug, Default)]
pub struct HttpState {
    /// Bytes received and not yet consumed (the head being read, pipelined requests).
    pub inbuf: Vec<u8>,
    /// Response bytes not yet written.
    pub out: Vec<u8>,
    pub sent: usize,
    /// Request body bytes still to skip before the next request.
    pub discard: u64,
    /// Close once `out` is written.
    pub close_after: bool,
    /// The final response is out and our side is shut down; reading until the peer
    /// closes, so unread input cannot turn our close into a reset that loses the response.
    pub lingering: bool,
    pub requests: u32,
}

impl HttpState {
    pub fn out_pending(&self) -> bool {
        self.sent < self.out.len()
    }
}

/// Shutdown progress of a streaming client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    Streaming,
    /// Send what is owed up to now, then the goodbye (an SSE `event: disconnect`), then
    /// close.
    Draining(&'static [u8]),
    /// The goodbye is queued; close when written.
    Closing,
}

#[derive(Debug)]
pub struct StreamClient {
    pub stream: StreamId,
    pub kind: ServerKind,
    pub framing: Framing,
    pub sub: Subscriber,
    /// A WebSocket client's frames, read (and answered) as they come.
    #[cfg(feature = "websocket")]
    pub ws: Option<crate::ws::Decoder>,
    /// Position in the stream's client list (kept in sync on removal).
    pub index: usize,
    /// Counted against the server's connection limits.
    pub counted: bool,
    pub finish: Finish,
}

#[derive(Debug)]
pub enum ConnState {
    Http(HttpState),
    Stream(Box<StreamClient>),
}

#[derive(Debug)]
pub struct Conn {
    pub transport: Transport,
    pub peer: IpAddr,
    /// The listener that accepted it (its key in the reactor's table).
    pub listener: usize,
    pub generation: u64,
    /// Readiness as last reported and not yet used up (cleared only on WouldBlock).
    pub readable: bool,
    pub writable: bool,
    /// The peer will send nothing more.
    pub read_closed: bool,
    /// The kernel reported the connection broken (reset, or closed both ways).
    pub broken: bool,
    pub timer: Option<TimerId>,
    pub state: ConnState,
}

/// Outcome of moving bytes on a non-blocking socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Did what was asked (wrote everything / read something).
    Done,
    WouldBlock,
    /// Peer closed its side (read returned 0).
    Eof,
}

/// Writes `buf[*sent..]`, advancing `*sent`, until done or the socket is full.
pub fn write_pending(t: &mut Transport, buf: &[u8], sent: &mut usize) -> io::Result<Io> {
    while *sent < buf.len() {
        match t.write(&buf[*sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Io::WouldBlock),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Io::Done)
}

/// Asks a peer that stopped sending whether it is still there: one byte of TCP urgent
/// data, which a reader does not see in its stream (unless it asked for `SO_OOBINLINE`),
/// but which a peer that has closed its socket answers with a reset. A half-closed client
/// (`nc host port < /dev/null`) keeps receiving; a gone one is noticed at once.
pub fn probe_peer(t: &mut Transport) {
    let fd = t.socket().as_raw_fd();
    let byte = 0u8;
    // SAFETY: `fd` is the connection's open socket, owned by `t` for the whole call; the
    // buffer is one valid byte on our stack; the flags make the call non-blocking and
    // keep a closed peer from raising SIGPIPE.
    unsafe {
        libc::send(
            fd,
            (&byte as *const u8).cast(),
            1,
            libc::MSG_OOB | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        );
    }
}

/// Reads once into `buf`, retrying on EINTR.
pub fn read_some(t: &mut Transport, buf: &mut [u8]) -> io::Result<(Io, usize)> {
    loop {
        match t.read(buf) {
            Ok(0) => return Ok((Io::Eof, 0)),
            Ok(n) => return Ok((Io::Done, n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok((Io::WouldBlock, 0)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
