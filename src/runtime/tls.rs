//! TLS over our sockets, with rustls doing all of TLS; this module only moves bytes between
//! rustls and io_uring. A connection has a reader task and a writer task on one stream (both
//! halves of the socket are used at once), so the TLS session is shared between them: neither
//! holds it across an await, and every write of ciphertext to the socket happens under one
//! send lock, with the ciphertext taken from the session after the lock is held, so TLS records
//! go out whole and in the order the session made them.
//!
//! The handshake is finished before a connection is served (`Stream::accept_tls`,
//! `Stream::connect_tls`), within the caller's time limit, so a client that never completes one
//! holds nothing but its socket until then.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::{Notify, TcpStream};

/// Ciphertext read from the socket at a time.
const CIPHERTEXT_READ_BYTES: usize = 64 * 1024;
/// Plaintext handed to the session at a time before its ciphertext is sent: bounds the
/// ciphertext a send holds, whatever the size of the response.
const PLAINTEXT_CHUNK_BYTES: usize = 256 * 1024;

/// A connection's byte stream: plain TCP, or TLS over it. Clones share the connection.
#[derive(Clone)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Rc<TlsStream>),
}

impl Stream {
    /// Completes a server-side handshake on `socket` with `config`.
    pub async fn accept_tls(
        socket: TcpStream,
        config: Arc<rustls::ServerConfig>,
    ) -> io::Result<Stream> {
        let session = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        let stream = TlsStream::new(socket, rustls::Connection::Server(session));
        stream.handshake().await?;
        Ok(Stream::Tls(Rc::new(stream)))
    }

    /// Completes a client-side handshake on `socket` for `server_name`.
    pub async fn connect_tls(
        socket: TcpStream,
        config: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> io::Result<Stream> {
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        let session = rustls::ClientConnection::new(config, name).map_err(io::Error::other)?;
        let stream = TlsStream::new(socket, rustls::Connection::Client(session));
        stream.handshake().await?;
        Ok(Stream::Tls(Rc::new(stream)))
    }

    /// Reads what is there into the free capacity of `buffer`; 0 at the end of the stream.
    pub async fn read_some(&mut self, buffer: BytesMut) -> (io::Result<usize>, BytesMut) {
        match self {
            Stream::Plain(socket) => super::read_some(socket, buffer).await,
            Stream::Tls(tls) => tls.read_some(buffer).await,
        }
    }

    /// Sends every byte of `buffers`, in order.
    pub async fn send_all(&mut self, buffers: Vec<Bytes>) -> io::Result<()> {
        match self {
            Stream::Plain(socket) => super::send_all(socket, buffers).await,
            Stream::Tls(tls) => tls.send_all(buffers).await,
        }
    }

    /// Ends the stream (TLS: with a close_notify first).
    pub async fn close(&mut self) -> io::Result<()> {
        use compio::io::AsyncWrite;
        match self {
            Stream::Plain(socket) => socket.shutdown().await,
            Stream::Tls(tls) => tls.close().await,
        }
    }

    /// The subject of the peer's certificate (mutual TLS), if it presented one.
    pub fn peer_certificate(&self) -> Option<CertificateDer<'static>> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(tls) => tls
                .session
                .borrow()
                .peer_certificates()
                .and_then(|chain| chain.first().cloned())
                .map(CertificateDer::into_owned),
        }
    }
}

/// One TLS session over one socket, shared by a connection's reader and writer.
pub struct TlsStream {
    socket: TcpStream,
    session: RefCell<rustls::Connection>,
    /// Ciphertext read but not yet taken by the session.
    incoming: RefCell<BytesMut>,
    sending: Cell<bool>,
    sent: Notify,
}

impl TlsStream {
    fn new(socket: TcpStream, mut session: rustls::Connection) -> TlsStream {
        session.set_buffer_limit(Some(PLAINTEXT_CHUNK_BYTES));
        TlsStream {
            socket,
            session: RefCell::new(session),
            incoming: RefCell::new(BytesMut::new()),
            sending: Cell::new(false),
            sent: Notify::default(),
        }
    }

    async fn handshake(&self) -> io::Result<()> {
        while self.session.borrow().is_handshaking() {
            self.flush().await?;
            if !self.session.borrow().is_handshaking() {
                break;
            }
            if self.receive().await? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the peer closed during the TLS handshake",
                ));
            }
        }
        // The last flight (the client's Finished, the server's tickets) goes out now.
        self.flush().await
    }

    async fn read_some(&self, mut buffer: BytesMut) -> (io::Result<usize>, BytesMut) {
        loop {
            let mut chunk = [0u8; 16 * 1024];
            let room = buffer
                .capacity()
                .saturating_sub(buffer.len())
                .clamp(1, chunk.len());
            let read = self.session.borrow_mut().reader().read(&mut chunk[..room]);
            match read {
                Ok(count) => {
                    // 0: the peer's close_notify, the end of the stream.
                    buffer.extend_from_slice(&chunk[..count]);
                    return (Ok(count), buffer);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return (Err(error), buffer),
            }
            // Whatever the session wants to say (alerts, key updates) goes before we wait.
            if let Err(error) = self.flush().await {
                return (Err(error), buffer);
            }
            match self.receive().await {
                Ok(0) => return (Ok(0), buffer),
                Ok(_) => {}
                Err(error) => return (Err(error), buffer),
            }
        }
    }

    /// Hands the session ciphertext: what is left from an earlier read if the session can take
    /// some, else a new read from the socket. The bytes taken from the socket (0 at its end;
    /// 1 stands for progress made on what was left).
    async fn receive(&self) -> io::Result<usize> {
        let leftover = !self.incoming.borrow().is_empty() && self.session.borrow().wants_read();
        let count = if leftover {
            1
        } else {
            let room = BytesMut::with_capacity(CIPHERTEXT_READ_BYTES);
            let mut socket = self.socket.clone();
            let (result, read) = super::read_some(&mut socket, room).await;
            let count = result?;
            if count == 0 {
                return Ok(0);
            }
            self.incoming.borrow_mut().extend_from_slice(&read);
            count
        };
        if let Err(error) = self.feed() {
            // The alert that says why is queued in the session: sent at best effort, since
            // the connection ends here.
            let _ = self.flush().await;
            return Err(error);
        }
        Ok(count)
    }

    /// Feeds `incoming` to the session while it has room for the plaintext; the rest waits
    /// until the reader has taken what was decrypted.
    fn feed(&self) -> io::Result<()> {
        let mut incoming = self.incoming.borrow_mut();
        let mut session = self.session.borrow_mut();
        while !incoming.is_empty() && session.wants_read() {
            let mut rest = &incoming[..];
            let taken = session.read_tls(&mut rest)?;
            bytes::Buf::advance(&mut *incoming, taken);
            session
                .process_new_packets()
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            if taken == 0 {
                break;
            }
        }
        Ok(())
    }

    async fn send_all(&self, buffers: Vec<Bytes>) -> io::Result<()> {
        for buffer in buffers {
            let mut rest = &buffer[..];
            let mut stalled = false;
            while !rest.is_empty() {
                // The session takes what fits its send buffer (`PLAINTEXT_CHUNK_BYTES`);
                // sending its ciphertext empties it, so the next write takes more.
                let taken = self.session.borrow_mut().writer().write(rest)?;
                if taken == 0 && stalled {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "the TLS session takes no more plaintext",
                    ));
                }
                stalled = taken == 0;
                rest = &rest[taken..];
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// Sends all the ciphertext the session holds, under the send lock.
    async fn flush(&self) -> io::Result<()> {
        while self.sending.replace(true) {
            let sent = self.sent.wait();
            if !self.sending.get() {
                continue;
            }
            sent.await;
        }
        let result = self.flush_locked().await;
        self.sending.set(false);
        self.sent.notify();
        result
    }

    async fn flush_locked(&self) -> io::Result<()> {
        loop {
            let mut ciphertext = Vec::new();
            {
                let mut session = self.session.borrow_mut();
                while session.wants_write() {
                    session.write_tls(&mut ciphertext)?;
                }
            }
            if ciphertext.is_empty() {
                return Ok(());
            }
            let mut socket = self.socket.clone();
            super::send_all(&mut socket, vec![Bytes::from(ciphertext)]).await?;
        }
    }

    async fn close(&self) -> io::Result<()> {
        use compio::io::AsyncWrite;
        self.session.borrow_mut().send_close_notify();
        let _ = self.flush().await;
        self.socket.clone().shutdown().await
    }
}

/// The crypto every configuration here uses: rustls with ring.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let chain: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certificates| certificates.collect::<Result<_, _>>())
        .map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {error}", path.display()),
            )
        })?;
    if chain.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: no certificate in it", path.display()),
        ));
    }
    Ok(chain)
}

fn roots(path: &Path) -> io::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(path)? {
        roots.add(certificate).map_err(|error| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {error}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

/// A listener's TLS settings from PEM files: its certificate chain and key, and, for mutual
/// TLS, the authority whose certificates clients must present.
pub fn server_config(
    certificate_path: &Path,
    key_path: &Path,
    client_ca_path: Option<&Path>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let chain = certificates(certificate_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {error}", key_path.display()),
        )
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match client_ca_path {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots(path)?),
                provider(),
            )
            .build()
            .map_err(io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
    Ok(Arc::new(config))
}

/// A client's TLS settings: the authority that signed the broker's certificate, and the
/// client's own certificate and key for mutual TLS.
pub fn client_config(
    ca_path: &Path,
    identity: Option<(&Path, &Path)>,
) -> io::Result<Arc<rustls::ClientConfig>> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots(ca_path)?);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((certificate_path, key_path)) => {
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {error}", key_path.display()),
                )
            })?;
            builder
                .with_client_auth_cert(certificates(certificate_path)?, key)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?
        }
    };
    Ok(Arc::new(config))
}
