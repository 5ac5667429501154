//! TLS for the reactor's connections (SPEC §13): a rustls server session driven over a
//! non-blocking socket, and the certificates it is set up from. The session owns no
//! readiness of its own: plaintext goes in and out like on a plain socket, encrypted
//! records wait in the session (bounded) until the socket takes them, and
//! [`TlsStream::push_pending`] sends them when it can.

use std::io::{self, IoSlice, Read, Write};
use std::path::Path;
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::config::TlsConfig;

/// Encrypted bytes a session may hold for a slow client before it stops taking
/// plaintext (the client is then "blocked" like a full socket).
pub const SESSION_BUFFER: usize = 64 * 1024;

fn read_pem<T>(
    path: &Path,
    what: &str,
    items: impl FnOnce(&Path) -> Result<T, rustls::pki_types::pem::Error>,
) -> Result<T, String> {
    items(path).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// Builds the session settings a listener hands every connection; every problem names
/// the file it is in.
pub fn server_config(s: &TlsConfig) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = read_pem(&s.cert_file, "certificate", |p| {
        CertificateDer::pem_file_iter(p)?.collect()
    })?;
    if certs.is_empty() {
        return Err(format!(
            "certificate {}: no certificate in the file",
            s.cert_file.display()
        ));
    }
    let key = read_pem(&s.key_file, "private key", |p| {
        PrivateKeyDer::from_pem_file(p)
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if s.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS versions: {e}"))?;
    let builder = match &s.client_ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let cas: Vec<CertificateDer<'static>> = read_pem(ca, "client CA", |p| {
                CertificateDer::pem_file_iter(p)?.collect()
            })?;
            if cas.is_empty() {
                return Err(format!(
                    "client CA {}: no certificate in the file",
                    ca.display()
                ));
            }
            for c in cas {
                roots
                    .add(c)
                    .map_err(|e| format!("client CA {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("client CA {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "certificate {} with key {}: {e}",
            s.cert_file.display(),
            s.key_file.display()
        )
    })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Reads plaintext from `session` over `sock`: decrypts what the socket has until some
/// plaintext is there (or the socket would block), sending the handshake's answers as it
/// goes. A failed handshake or a bad record is an error, after the alert that tells the
/// peer why has been sent. Server and client sessions alike.
fn read_plaintext<D>(
    session: &mut rustls::ConnectionCommon<D>,
    sock: &mut (impl Read + Write),
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match session.reader().read(buf) {
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // The peer closed TCP without close_notify: for a stream of events that is an
            // end like any other.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        match session.read_tls(sock) {
            Ok(0) => return Ok(0),
            Ok(_) => {
                if let Err(e) = session.process_new_packets() {
                    let _ = push_records(session, sock);
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
                push_records(session, sock)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                push_records(session, sock)?;
                return Err(e);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Sends the encrypted records `session` holds; true when none is left.
fn push_records<D>(
    session: &mut rustls::ConnectionCommon<D>,
    sock: &mut impl Write,
) -> io::Result<bool> {
    while session.wants_write() {
        match session.write_tls(sock) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A TLS session over a non-blocking socket: the reactor's TCP stream, or any byte pipe
/// that reads and writes like one (the `tls_records` fuzz target drives it over memory).
#[derive(Debug)]
pub struct TlsStream<S = TcpStream> {
    sock: S,
    session: ServerConnection,
}

impl<S: Read + Write> TlsStream<S> {
    pub fn new(sock: S, config: Arc<ServerConfig>) -> io::Result<TlsStream<S>> {
        let mut session = ServerConnection::new(config).map_err(io::Error::other)?;
        session.set_buffer_limit(Some(SESSION_BUFFER));
        Ok(TlsStream { sock, session })
    }

    pub fn socket(&mut self) -> &mut S {
        &mut self.sock
    }

    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// The client showed a certificate the server's client CA verified (the handshake
    /// fails otherwise, so any certificate here is a verified one).
    pub fn has_client_certificate(&self) -> bool {
        self.session
            .peer_certificates()
            .is_some_and(|chain| !chain.is_empty())
    }

    /// Reads plaintext ([`read_plaintext`]).
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_plaintext(&mut self.session, &mut self.sock, buf)
    }

    /// Takes plaintext into the session (encrypting it) as far as its buffer allows, and
    /// sends what the socket takes. WouldBlock when the session is full.
    pub fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.push_pending()?;
        let n = self.session.writer().write_vectored(bufs)?;
        if n == 0 && bufs.iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.push_pending()?;
        Ok(n)
    }

    /// Sends encrypted records the session holds; true when none is left.
    pub fn push_pending(&mut self) -> io::Result<bool> {
        push_records(&mut self.session, &mut self.sock)
    }

    /// Queues close_notify and sends what the socket takes.
    pub fn send_close_notify(&mut self) {
        self.session.send_close_notify();
        let _ = self.push_pending();
    }
}

impl TlsStream<TcpStream> {
    /// close_notify, then our FIN.
    pub fn shutdown_write(&mut self) {
        self.send_close_notify();
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}

/// Where Debian (and most distributions) keep the system's trusted CAs, for sinks whose
/// TLS names no `ca_file`.
#[cfg(feature = "forward")]
const SYSTEM_CA_BUNDLES: [&str; 3] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The settings of a sink's TLS to its broker (SPEC §16): the broker is verified against
/// `ca_file` (else the system's bundle), and a client certificate is shown when set.
#[cfg(feature = "forward")]
pub fn client_config(
    c: &crate::config::ForwardTlsConfig,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    let ca_path = match &c.ca_file {
        Some(p) => p.clone(),
        None => SYSTEM_CA_BUNDLES
            .iter()
            .map(Path::new)
            .find(|p| p.is_file())
            .map(Path::to_path_buf)
            .ok_or("no ca_file, and no system CA bundle (install ca-certificates)")?,
    };
    let cas: Vec<CertificateDer<'static>> = read_pem(&ca_path, "CA", |p| {
        CertificateDer::pem_file_iter(p)?.collect()
    })?;
    let (added, _) = roots.add_parsable_certificates(cas);
    if added == 0 {
        return Err(format!("CA {}: no usable certificate", ca_path.display()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_root_certificates(roots);
    let config = match (&c.cert_file, &c.key_file) {
        (Some(cert), Some(key)) => {
            let certs: Vec<CertificateDer<'static>> = read_pem(cert, "certificate", |p| {
                CertificateDer::pem_file_iter(p)?.collect()
            })?;
            if certs.is_empty() {
                return Err(format!(
                    "certificate {}: no certificate in the file",
                    cert.display()
                ));
            }
            let k = read_pem(key, "private key", |p| PrivateKeyDer::from_pem_file(p))?;
            builder.with_client_auth_cert(certs, k).map_err(|e| {
                format!(
                    "certificate {} with key {}: {e}",
                    cert.display(),
                    key.display()
                )
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// A TLS client session over a non-blocking socket: a sink's connection to its broker.
/// Like [`TlsStream`], it holds encrypted records (bounded) until the socket takes them.
#[cfg(feature = "forward")]
#[derive(Debug)]
pub struct TlsClient {
    sock: TcpStream,
    session: rustls::ClientConnection,
}

#[cfg(feature = "forward")]
impl TlsClient {
    /// Starts a handshake with the broker, verifying its certificate against `host`.
    pub fn new(
        sock: TcpStream,
        config: Arc<rustls::ClientConfig>,
        host: &str,
    ) -> io::Result<TlsClient> {
        let name = rustls::pki_types::ServerName::try_from(host.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut session = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        session.set_buffer_limit(Some(SESSION_BUFFER));
        Ok(TlsClient { sock, session })
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }

    pub fn into_socket(self) -> TcpStream {
        self.sock
    }

    pub fn is_handshaking(&self) -> bool {
        self.session.is_handshaking()
    }

    /// Moves the handshake on: sends what it has, reads what came. `Ok(true)` once it is
    /// done, `Ok(false)` while it waits for the socket; a failed handshake is an error.
    pub fn handshake(&mut self) -> io::Result<bool> {
        loop {
            self.push_pending()?;
            if !self.session.is_handshaking() {
                return Ok(true);
            }
            match self.session.read_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {
                    if let Err(e) = self.session.process_new_packets() {
                        let _ = self.push_pending();
                        return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.push_pending()?;
                    return Ok(!self.session.is_handshaking());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads plaintext, as [`TlsStream::read`].
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_plaintext(&mut self.session, &mut self.sock, buf)
    }

    /// Takes plaintext as far as the session's buffer allows; WouldBlock when full.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.push_pending()?;
        let n = self.session.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.push_pending()?;
        Ok(n)
    }

    /// Sends encrypted records the session holds; true when none is left.
    pub fn push_pending(&mut self) -> io::Result<bool> {
        push_records(&mut self.session, &mut self.sock)
    }

    pub fn wants_write(&self) -> bool {
        self.session.wants_write()
    }

    pub fn shutdown_write(&mut self) {
        self.session.send_close_notify();
        let _ = self.push_pending();
        let _ = self.sock.shutdown(std::net::Shutdown::Write);
    }
}
