//! One client connection of the native protocol: a read loop that cuts frames and starts a task
//! per request (many in flight), and a write loop that sends responses as they complete,
//! matched by correlation id, batched into vectored sends.
//!
//! Backpressure: while this connection's requests in flight hold more than
//! `connection_inflight_bytes_max`, or the shard's more than `shard_inflight_bytes_max`, the
//! socket is not read, so TCP pushes back on the client; each such pause is counted.
//! A frame that is too large or unreadable gets an error response, then the connection closes;
//! nothing it sent touches any other connection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::future::select;
use zerocopy::FromBytes;

use super::Gate;
use crate::broker::{self, ShardState};
use crate::protocol::codec::{FrameStatus, REQUEST_HEADER_BYTES, RequestHeader, frame_status};
use crate::protocol::messages::{ApiKey, SUPPORTED_APIS, encode_response};
use crate::protocol::{ErrorCode, ProtocolError, Request};
use crate::runtime::{self, Notify, TcpStream};

const READ_CHUNK_BYTES: usize = 64 * 1024;

/// What the read loop and the request tasks share with the write loop.
struct Connection {
    outbox: RefCell<Vec<Bytes>>,
    /// Notified when the outbox gains responses or the connection is closing.
    wrote: Notify,
    inflight_bytes: Cell<usize>,
    inflight_requests: Cell<usize>,
    released: Notify,
    /// No more responses will be queued; the writer sends what is left and stops.
    closing: Cell<bool>,
}

impl Connection {
    fn respond(&self, buffers: Vec<Bytes>) {
        self.outbox.borrow_mut().extend(buffers);
        self.wrote.notify();
    }
}

pub(crate) async fn serve(state: Rc<ShardState>, gate: Rc<Gate>, stream: TcpStream) {
    gate.connections.set(gate.connections.get() + 1);
    gate.connections_gauge.set(gate.connections.get() as f64);
    let connection = Rc::new(Connection {
        outbox: RefCell::new(Vec::new()),
        wrote: Notify::default(),
        inflight_bytes: Cell::new(0),
        inflight_requests: Cell::new(0),
        released: Notify::default(),
        closing: Cell::new(false),
    });
    let writer = runtime::spawn(write_loop(stream.clone(), connection.clone()));
    read_loop(&state, &gate, stream, &connection).await;
    // Every request already read is answered before the connection closes.
    loop {
        let released = connection.released.wait();
        if connection.inflight_requests.get() == 0 {
            break;
        }
        released.await;
    }
    connection.closing.set(true);
    connection.wrote.notify();
    let _ = writer.await;
    gate.connections.set(gate.connections.get() - 1);
    gate.connections_gauge.set(gate.connections.get() as f64);
    gate.released.notify();
}

async fn read_loop(
    state: &Rc<ShardState>,
    gate: &Rc<Gate>,
    mut stream: TcpStream,
    connection: &Rc<Connection>,
) {
    let frame_bytes_max = state.config.frame_bytes_max;
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match frame_status(&buffer, frame_bytes_max) {
                FrameStatus::Ready(size) => {
                    let frame = buffer.split_to(size);
                    if dispatch(state, gate, connection, frame).is_err() {
                        return;
                    }
                }
                FrameStatus::Incomplete => break,
                FrameStatus::TooLarge(size) => {
                    let error = ProtocolError::new(
                        ErrorCode::FrameTooLarge,
                        format!(
                            "frame of {size} bytes exceeds frame_bytes_max of {frame_bytes_max}; closing the connection"
                        ),
                    );
                    connection.respond(encode_response(0, Err(error)));
                    return;
                }
            }
        }
        if !wait_for_room(state, gate, connection).await {
            return;
        }
        let Some(more) = state
            .lifecycle
            .read_more(&mut stream, buffer, READ_CHUNK_BYTES)
            .await
        else {
            return;
        };
        buffer = more;
    }
}

/// Backpressure: waits while this connection or the whole shard holds too many bytes in flight.
/// Returns false if the shard started stopping meanwhile.
async fn wait_for_room(state: &ShardState, gate: &Gate, connection: &Connection) -> bool {
    let mut paused = false;
    loop {
        let connection_released = connection.released.wait();
        let shard_released = gate.released.wait();
        if state.lifecycle.stopping.get() {
            return false;
        }
        let connection_full =
            connection.inflight_bytes.get() >= state.config.connection_inflight_bytes_max;
        let shard_full = gate.inflight_bytes.get() >= state.config.shard_inflight_bytes_max;
        if !connection_full && !shard_full {
            return true;
        }
        if !paused {
            gate.pauses.increment(1);
            paused = true;
        }
        let connection_released = std::pin::pin!(connection_released);
        let shard_released = std::pin::pin!(shard_released);
        state
            .lifecycle
            .unless_stopping(select(connection_released, shard_released))
            .await;
    }
}

/// Starts the request in `frame`. Err means the connection must close (after the error response
/// already queued): its bytes can no longer be trusted to be in step with the protocol.
fn dispatch(
    state: &Rc<ShardState>,
    gate: &Rc<Gate>,
    connection: &Rc<Connection>,
    mut frame: BytesMut,
) -> Result<(), ()> {
    let size = frame.len();
    frame.advance(4);
    let Ok((header, _)) = RequestHeader::read_from_prefix(&frame) else {
        let error = ProtocolError::new(
            ErrorCode::MalformedRequest,
            format!("a request header takes {REQUEST_HEADER_BYTES} bytes"),
        );
        connection.respond(encode_response(0, Err(error)));
        return Err(());
    };
    let correlation_id = header.correlation_id.get();
    let prefix = REQUEST_HEADER_BYTES + header.client_id_length.get() as usize;
    if frame.len() < prefix {
        let error = ProtocolError::new(
            ErrorCode::MalformedRequest,
            "client id runs past the end of the frame",
        );
        connection.respond(encode_response(correlation_id, Err(error)));
        return Err(());
    }
    frame.advance(prefix);
    let (key, version) = (header.api_key.get(), header.api_version.get());
    let supported = ApiKey::from_u16(key)
        .and_then(|api| SUPPORTED_APIS.iter().find(|(known, _, _)| *known == api));
    let Some(&(api, min, max)) = supported else {
        let error = ProtocolError::new(
            ErrorCode::UnknownApi,
            format!("api key {key} is unknown; ApiVersions lists what this broker speaks"),
        );
        connection.respond(encode_response(correlation_id, Err(error)));
        return Ok(());
    };
    if version < min || version > max {
        let error = ProtocolError::new(
            ErrorCode::UnsupportedVersion,
            format!("{api:?} version {version} is unsupported; this broker speaks {min} to {max}"),
        );
        connection.respond(encode_response(correlation_id, Err(error)));
        return Ok(());
    }
    let request = match Request::decode(api, crate::protocol::codec::Reader::new(frame)) {
        Ok(request) => request,
        Err(error) => {
            let error = ProtocolError::new(
                error.code,
                format!("{}; closing the connection", error.message),
            );
            connection.respond(encode_response(correlation_id, Err(error)));
            return Err(());
        }
    };
    connection
        .inflight_bytes
        .set(connection.inflight_bytes.get() + size);
    connection
        .inflight_requests
        .set(connection.inflight_requests.get() + 1);
    gate.add_inflight(size);
    let (state, gate, connection) = (state.clone(), gate.clone(), connection.clone());
    runtime::spawn_detached(async move {
        let result = broker::handle(&state, request).await;
        connection.respond(encode_response(correlation_id, result));
        connection
            .inflight_bytes
            .set(connection.inflight_bytes.get() - size);
        connection
            .inflight_requests
            .set(connection.inflight_requests.get() - 1);
        connection.released.notify();
        gate.remove_inflight(size);
    });
    Ok(())
}

async fn write_loop(mut stream: TcpStream, connection: Rc<Connection>) {
    loop {
        let wrote = connection.wrote.wait();
        let buffers = std::mem::take(&mut *connection.outbox.borrow_mut());
        if buffers.is_empty() {
            if connection.closing.get() {
                let _ = stream.close().await;
                return;
            }
            wrote.await;
            continue;
        }
        if runtime::send_all(&mut stream, buffers).await.is_err() {
            // The peer is gone: drop what is queued from now on, but keep draining the outbox.
            loop {
                let wrote = connection.wrote.wait();
                connection.outbox.borrow_mut().clear();
                if connection.closing.get() {
                    return;
                }
                wrote.await;
            }
        }
    }
}
