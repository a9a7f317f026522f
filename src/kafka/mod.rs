//! The Kafka wire protocol, a second front door over the same engine: Kafka clients (librdkafka,
//! the Java client, ...) produce and consume without change. Each Kafka request is decoded with
//! the `kafka-protocol` crate and translated into the broker's own requests (`broker::handle`),
//! so routing to partition owners, storage and errors are exactly those of the native protocol.
//! Record batches are Kafka's RecordBatch v2 on both sides, so they pass through untouched.
//!
//! This file is the connection: Kafka answers requests of one connection in the order they came
//! (clients rely on it), and sends no answer at all to a produce with acks=0.

pub mod fetch;
pub mod groups;
pub mod handlers;

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};

use crate::broker::ShardState;
use crate::protocol::codec::{FrameStatus, frame_status};
use crate::runtime::{self, Notify, TcpListener, TcpStream};

const READ_CHUNK_BYTES: usize = 64 * 1024;

/// Accepts Kafka clients on this shard until it stops.
pub async fn accept_loop(
    state: Rc<ShardState>,
    listener: TcpListener,
    advertised: std::net::SocketAddr,
) {
    loop {
        let Some(accepted) = state.lifecycle.unless_stopping(listener.accept()).await else {
            return;
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                runtime::spawn_detached(serve(state.clone(), stream, advertised));
            }
            Err(error) => {
                tracing::warn!(%error, "kafka accept failed");
                runtime::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

/// One response place in the connection's order; filled when its request is done.
type Slot = Rc<RefCell<Option<Vec<Bytes>>>>;

struct Connection {
    slots: RefCell<VecDeque<Slot>>,
    filled: Notify,
    closing: std::cell::Cell<bool>,
}

async fn serve(state: Rc<ShardState>, stream: TcpStream, advertised: std::net::SocketAddr) {
    let connection = Rc::new(Connection {
        slots: RefCell::new(VecDeque::new()),
        filled: Notify::default(),
        closing: std::cell::Cell::new(false),
    });
    let writer = runtime::spawn(write_loop(stream.clone(), connection.clone()));
    read_loop(&state, stream, &connection, advertised).await;
    connection.closing.set(true);
    connection.filled.notify();
    let _ = writer.await;
}

async fn read_loop(
    state: &Rc<ShardState>,
    mut stream: TcpStream,
    connection: &Rc<Connection>,
    advertised: std::net::SocketAddr,
) {
    let frame_bytes_max = state.config.frame_bytes_max;
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match frame_status(&buffer, frame_bytes_max) {
                FrameStatus::Ready(size) => {
                    let mut frame = buffer.split_to(size).freeze();
                    frame.advance(4);
                    match handlers::prepare(frame) {
                        Ok(prepared) => {
                            // A produce with acks=0 gets no answer: it takes no place in the order.
                            let slot = (!prepared.no_response()).then(|| {
                                let slot: Slot = Rc::new(RefCell::new(None));
                                connection.slots.borrow_mut().push_back(slot.clone());
                                slot
                            });
                            let (state, connection) = (state.clone(), connection.clone());
                            runtime::spawn_detached(async move {
                                let response = handlers::handle(&state, prepared, advertised).await;
                                if let Some(slot) = slot {
                                    *slot.borrow_mut() = Some(response);
                                    connection.filled.notify();
                                }
                            });
                        }
                        Err(rejection) => {
                            // Undecodable: answer what can be answered, then close.
                            if let Some(response) = rejection {
                                let slot: Slot = Rc::new(RefCell::new(Some(response)));
                                connection.slots.borrow_mut().push_back(slot);
                                connection.filled.notify();
                            }
                            return;
                        }
                    }
                }
                FrameStatus::Incomplete => break,
                FrameStatus::TooLarge(size) => {
                    tracing::warn!(
                        size,
                        frame_bytes_max,
                        "kafka frame over the limit; closing the connection"
                    );
                    return;
                }
            }
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

/// Sends responses strictly in request order, as each next one is ready.
async fn write_loop(mut stream: TcpStream, connection: Rc<Connection>) {
    loop {
        let filled = connection.filled.wait();
        let mut ready = Vec::new();
        {
            let mut slots = connection.slots.borrow_mut();
            while slots.front().is_some_and(|slot| slot.borrow().is_some()) {
                let slot = slots.pop_front().expect("checked");
                ready.extend(slot.borrow_mut().take().expect("checked"));
            }
        }
        if ready.is_empty() {
            if connection.closing.get() && connection.slots.borrow().is_empty() {
                let _ = stream.close().await;
                return;
            }
            filled.await;
            continue;
        }
        if runtime::send_all(&mut stream, ready).await.is_err() {
            connection.slots.borrow_mut().clear();
            return;
        }
    }
}
