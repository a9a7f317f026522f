//! One pipelined connection to a broker: requests from many tasks go out as they are made,
//! responses come back in any order and are matched to their requests by correlation id.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use futures_channel::oneshot;
use zerocopy::FromBytes;

use super::ClientError;
use crate::protocol::codec::{
    FrameStatus, RESPONSE_HEADER_BYTES, Reader, ResponseHeader, frame_status, read_room,
};
use crate::protocol::messages::{ApiKey, decode_response};
use crate::protocol::{ErrorCode, ProtocolError, Request, Response};
use crate::runtime::tls::Stream;
use crate::runtime::{self, Notify, TcpStream};

/// Responses larger than this are refused (and the connection dropped).
const RESPONSE_BYTES_MAX: usize = 256 << 20;
const READ_CHUNK_BYTES: usize = 64 * 1024;

type Waiter = oneshot::Sender<Result<Response, ClientError>>;

struct Shared {
    client_id: String,
    next_correlation: Cell<u32>,
    waiting: RefCell<HashMap<u32, (ApiKey, Waiter)>>,
    outbox: RefCell<Vec<Bytes>>,
    wrote: Notify,
    /// Why the connection is unusable, once it is.
    broken: RefCell<Option<String>>,
}

impl Shared {
    fn fail_all(&self, reason: String) {
        self.broken.borrow_mut().get_or_insert(reason.clone());
        for (_, (_, waiter)) in self.waiting.borrow_mut().drain() {
            let _ = waiter.send(Err(ClientError::Connection(reason.clone())));
        }
        self.wrote.notify();
    }
}

/// A cheap handle; clones share the connection, which closes when the last clone is dropped.
#[derive(Clone)]
pub struct Connection {
    shared: Rc<Shared>,
    _closer: Rc<Closer>,
}

/// Owned only by `Connection` handles (not by the I/O tasks), so its drop means "no one can
/// send any more requests": the writer then shuts the socket down and both tasks end.
struct Closer(Rc<Shared>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0
            .fail_all("the connection was closed by the client".into());
    }
}

/// TLS to the broker: the authority that signed its certificate, the name its certificate is
/// checked against, and for mutual TLS the client's own certificate and key.
#[derive(Clone)]
pub struct ClientTls {
    config: std::sync::Arc<rustls::ClientConfig>,
    server_name: String,
}

impl ClientTls {
    /// From PEM files: `ca_path` holds the authority; `identity` is (certificate, key).
    pub fn new(
        ca_path: &std::path::Path,
        server_name: &str,
        identity: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<ClientTls, ClientError> {
        let config = runtime::tls::client_config(ca_path, identity)
            .map_err(|error| ClientError::Connection(format!("TLS settings: {error}")))?;
        Ok(ClientTls {
            config,
            server_name: server_name.to_string(),
        })
    }
}

/// A user name and password to authenticate with, and the SASL mechanism (`SCRAM-SHA-256`,
/// `SCRAM-SHA-512`, or `PLAIN`, which sends the password itself: over TLS only).
#[derive(Clone)]
pub struct SaslCredentials {
    /// `SCRAM-SHA-256`, `SCRAM-SHA-512` or `PLAIN`.
    pub mechanism: String,
    /// The user's name.
    pub user: String,
    /// The user's password (SCRAM never sends it).
    pub password: String,
}

impl Connection {
    /// Authenticates this connection with `credentials` (before any other request).
    pub async fn authenticate(&self, credentials: &SaslCredentials) -> Result<(), ClientError> {
        let refused = |what: &str| ClientError::Connection(format!("authentication: {what}"));
        let mechanism = credentials.mechanism.clone();
        match self.request(Request::SaslHandshake { mechanism }).await? {
            Response::SaslMechanisms(_) => {}
            other => return Err(refused(&format!("unexpected answer {other:?}"))),
        }
        let exchange = |message: Vec<u8>| async move {
            match self
                .request(Request::SaslAuthenticate {
                    message: bytes::Bytes::from(message),
                })
                .await?
            {
                Response::SaslMessage(answer) => Ok(answer),
                other => Err(refused(&format!("unexpected answer {other:?}"))),
            }
        };
        let password = credentials.password.as_bytes();
        let Some(mechanism) = crate::auth::scram::Mechanism::from_name(&credentials.mechanism)
        else {
            // PLAIN: authorization id (empty), user, password.
            let message = [b"" as &[u8], credentials.user.as_bytes(), password].join(&0u8);
            exchange(message).await?;
            return Ok(());
        };
        let (mut scram, first) =
            crate::auth::scram::ClientExchange::start(mechanism, &credentials.user, password);
        let challenge = exchange(first).await?;
        let last = scram
            .server_first(&challenge)
            .map_err(|_| refused("the broker's SCRAM challenge is malformed"))?;
        let server_final = exchange(last).await?;
        scram
            .server_final(&server_final)
            .map_err(|_| refused("the broker could not prove it knows the credential"))
    }

    /// Connects to `address`, naming this client `client_id` in the broker's logs.
    pub async fn connect(address: &str, client_id: &str) -> Result<Connection, ClientError> {
        Connection::connect_with(address, client_id, None).await
    }

    /// Connects to `address`, over TLS when `tls` is given (the handshake done before this
    /// returns, so a refused certificate is this call's error).
    pub async fn connect_with(
        address: &str,
        client_id: &str,
        tls: Option<&ClientTls>,
    ) -> Result<Connection, ClientError> {
        let socket = TcpStream::connect(address)
            .await
            .map_err(|error| ClientError::Connection(format!("connect to {address}: {error}")))?;
        let _ = socket.set_nodelay(true);
        let stream = match tls {
            None => Stream::Plain(socket),
            Some(tls) => Stream::connect_tls(socket, tls.config.clone(), &tls.server_name)
                .await
                .map_err(|error| {
                    ClientError::Connection(format!("TLS handshake with {address}: {error}"))
                })?,
        };
        let shared = Rc::new(Shared {
            client_id: client_id.to_string(),
            next_correlation: Cell::new(1),
            waiting: RefCell::new(HashMap::new()),
            outbox: RefCell::new(Vec::new()),
            wrote: Notify::default(),
            broken: RefCell::new(None),
        });
        runtime::spawn_detached(read_loop(stream.clone(), shared.clone()));
        runtime::spawn_detached(write_loop(stream, shared.clone()));
        Ok(Connection {
            _closer: Rc::new(Closer(shared.clone())),
            shared,
        })
    }

    /// Sends `request` and waits for its response; a server error comes back as
    /// `ClientError::Server`.
    pub async fn request(&self, request: Request) -> Result<Response, ClientError> {
        if let Some(reason) = self.shared.broken.borrow().clone() {
            return Err(ClientError::Connection(reason));
        }
        let correlation_id = self.shared.next_correlation.get();
        // 0 is what a broker answers frames it could not read with; never use it for a request.
        self.shared
            .next_correlation
            .set(correlation_id.checked_add(1).unwrap_or(1));
        let (sender, receiver) = oneshot::channel();
        self.shared
            .waiting
            .borrow_mut()
            .insert(correlation_id, (request.api_key(), sender));
        let frame = request.encode(correlation_id, &self.shared.client_id);
        self.shared.outbox.borrow_mut().extend(frame);
        self.shared.wrote.notify();
        receiver
            .await
            .unwrap_or_else(|_| Err(ClientError::Connection("connection closed".into())))
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared.waiting.borrow().len()
    }
}

async fn write_loop(mut stream: Stream, shared: Rc<Shared>) {
    loop {
        let wrote = shared.wrote.wait();
        if shared.broken.borrow().is_some() {
            // Half-close: the broker answers by closing, which ends the read loop.
            let _ = stream.close().await;
            return;
        }
        let buffers = std::mem::take(&mut *shared.outbox.borrow_mut());
        if buffers.is_empty() {
            wrote.await;
            continue;
        }
        if let Err(error) = stream.send_all(buffers).await {
            shared.fail_all(format!("send failed: {error}"));
            return;
        }
    }
}

async fn read_loop(mut stream: Stream, shared: Rc<Shared>) {
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match frame_status(&buffer, RESPONSE_BYTES_MAX) {
                FrameStatus::Ready(size) => {
                    let mut frame = buffer.split_to(size);
                    frame.advance(4);
                    if let Err(reason) = deliver(&shared, frame) {
                        shared.fail_all(reason);
                        return;
                    }
                }
                FrameStatus::Incomplete => break,
                FrameStatus::TooLarge(size) => {
                    shared.fail_all(format!(
                        "response of {size} bytes is over the client's limit"
                    ));
                    return;
                }
            }
        }
        if shared.broken.borrow().is_some() {
            return;
        }
        buffer.reserve(read_room(&buffer, READ_CHUNK_BYTES));
        let (result, returned) = stream.read_some(buffer).await;
        buffer = returned;
        match result {
            Ok(0) => {
                shared.fail_all("the broker closed the connection".into());
                return;
            }
            Err(error) => {
                shared.fail_all(format!("read failed: {error}"));
                return;
            }
            Ok(_) => {}
        }
    }
}

/// Hands one response frame to the request waiting for it.
fn deliver(shared: &Shared, mut frame: BytesMut) -> Result<(), String> {
    let (header, _) = ResponseHeader::read_from_prefix(&frame)
        .map_err(|_| "response shorter than its header".to_string())?;
    let correlation_id = header.correlation_id.get();
    let message_length = header.message_length.get() as usize;
    frame.advance(RESPONSE_HEADER_BYTES);
    if frame.len() < message_length {
        return Err("response message runs past its frame".into());
    }
    let message = String::from_utf8_lossy(&frame.split_to(message_length)).into_owned();
    let code = header.error_code.get();
    if correlation_id == 0 {
        // The broker could not read one of our frames and is closing the connection.
        let name = ErrorCode::from_u16(code).map_or("unknown", |code| code.name());
        return Err(format!("broker closed the connection: {name}: {message}"));
    }
    let Some((api, waiter)) = shared.waiting.borrow_mut().remove(&correlation_id) else {
        return Err(format!(
            "response to unknown correlation id {correlation_id}"
        ));
    };
    let result = match ErrorCode::from_u16(code) {
        Some(ErrorCode::None) => decode_response(api, Reader::new(frame))
            .map_err(|error| ClientError::Connection(format!("undecodable response: {error}"))),
        Some(code) => Err(ClientError::Server(ProtocolError::new(code, message))),
        None => Err(ClientError::Server(ProtocolError::new(
            ErrorCode::Internal,
            format!("unknown error code {code}: {message}"),
        ))),
    };
    let _ = waiter.send(result);
    Ok(())
}
