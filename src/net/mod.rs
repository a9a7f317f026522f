//! The one connection layer under both front doors (native and Kafka): accept, the connection
//! cap, bytes in flight, the read and write loops, response order, timeouts and shutdown drain.
//! A protocol plugs in through the small `Wire` trait (decode a frame, bound its response, handle
//! it); `server::connection` and `kafka` are thin adapters on it. The stream is taken in one place
//! (`serve`), which is where TLS will wrap it.
//!
//! # Why memory stays bounded
//!
//! Let C be `connection_inflight_bytes_max`, S `shard_inflight_bytes_max`, F `frame_bytes_max`.
//! Three amounts are counted per connection and per shard: *request* bytes (the frames of
//! requests being handled), *reserved* bytes (the worst case of a response, from
//! `Wire::response_bytes_bound`, held while its handler runs) and *response* bytes (produced
//! responses, until the send that carries them completes). Request and response bytes are the
//! *real* bytes. The socket is read only while the real bytes are below C (connection) and S
//! (shard). Each decoded request is admitted (its handler started) only once there is room for it,
//! checked before every request, not only before every read, because one read may carry thousands
//! of small requests: a request that reserves (a fetch) needs real + reserved below the bounds; a
//! request that does not (a produce, small answers) needs only real below them, so fetches
//! waiting for data can never hold back the produces that bring it. When a handler returns, its
//! reservation is exchanged for the response's real bytes, which never exceed it.
//!
//! Every admission starts below a bound and a shard is single-threaded, so at most one request
//! crosses each bound: a connection holds at most C + F real bytes plus C + R reserved ones (R the
//! largest single reservation), the response bytes included, since a response only turns reserved
//! bytes into real ones, plus its read buffer (at most F + 64 KiB); a shard at most S + F plus
//! S + R. A client that reads none of its responses soon fills its real bytes, stops being read
//! (TCP pushes back) and is served no further. The reservations are worst cases: a fetch of one
//! partition reserves its max bytes clamped by `fetch_bytes_max`, but at least the topic's
//! `batch_bytes_max`, because the log returns at least one whole batch (`fetch_bytes_bound`).
//! Other responses are small and reserve nothing; they are counted when produced. The Kafka
//! adapter refuses a fetch whose reservation alone exceeds S (it names more partitions than the
//! shard may hold answers for), so R <= S.
//!
//! # Timeouts
//!
//! A frame whose first byte arrived more than `request_read_timeout_ms` ago and is still not whole
//! closes its connection (slowloris); time the broker itself spent not reading (backpressure)
//! does not count. A connection with no request in flight on which nothing is read and nothing
//! written for `idle_timeout_ms` is closed; this includes a client that reads none of its
//! responses (paused, its writer stuck), whose unwritten responses are then dropped, so that such
//! clients hold neither their bytes nor their place under the connection cap for longer than that.
//! Each close is counted by reason in `ringmq_connection_closes_total`.
//!
//! # Shutdown
//!
//! Once the shard is stopping, accept loops end and readers stop; every request already admitted
//! is answered and written, then the connection closes; the shard is drained when its gate counts
//! no connection (bounded by `shutdown_grace_ms`, see `server`).

mod gate;
mod outbox;
mod read;
mod tls;

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::broker::ShardState;
use crate::runtime::{self, TcpListener, TcpStream};

pub(crate) use tls::{ListenerTls, SharedTls, Which};

pub(crate) use gate::{CloseReason, Gate, Listener, describe_metrics};

/// What a frame decodes to.
pub(crate) enum Decoded<R> {
    /// A request to admit and handle.
    Request(R),
    /// Answered at once, without a handler (an unknown API, say); the connection stays.
    Answer(Vec<Bytes>),
    /// The byte stream is out of step: send the answer if any, then close.
    Close(Option<Vec<Bytes>>),
}

/// One protocol on the connection layer. The native and Kafka protocols frame with a 4-byte
/// big-endian length prefix, which the layer cuts (`protocol::codec::frame_status`); HTTP (the
/// SQS door) cuts its own frames (a head and its Content-Length of body) through `frame`.
pub(crate) trait Wire: Clone + 'static {
    type Request: 'static;
    /// The listener, for the metrics.
    const LISTENER: Listener;
    /// True: responses go out in request order (Kafka). False: as they complete (native).
    const ORDERED: bool;

    /// Where the first frame in `buffer` ends (or that it is incomplete, or over the limit).
    fn frame(&self, buffer: &[u8], frame_bytes_max: usize) -> crate::protocol::codec::FrameStatus {
        crate::protocol::codec::frame_status(buffer, frame_bytes_max)
    }

    /// How many bytes to make room for before the next socket read.
    fn read_room(&self, buffer: &[u8], chunk_bytes: usize) -> usize {
        crate::protocol::codec::read_room(buffer, chunk_bytes)
    }

    /// An interim answer to the incomplete frame at the start of `buffer` (HTTP's
    /// `100 Continue`), sent at most once per frame; None for protocols without one.
    fn interim(&self, _buffer: &[u8]) -> Option<Vec<Bytes>> {
        None
    }

    /// Decodes one whole frame, its length prefix included.
    fn decode(&self, state: &ShardState, frame: BytesMut) -> Decoded<Self::Request>;

    /// The answer to a frame over `frame_bytes_max`, if the protocol has one; the connection
    /// closes after it.
    fn too_large(&self, size: usize, limit: usize) -> Option<Vec<Bytes>>;

    /// The most bytes the response to `request` can take (0 for small ones).
    fn response_bytes_bound(&self, state: &ShardState, request: &Self::Request) -> usize;

    /// False for a request that gets no response (Kafka's produce with acks=0).
    fn answers(&self, _request: &Self::Request) -> bool {
        true
    }

    /// The adapter for one new connection: a clone, plus whatever state is the connection's
    /// own (Kafka's SASL progress).
    fn for_connection(&self) -> Self {
        self.clone()
    }

    /// The connection's client certificate (DER, verified by the TLS handshake), when the
    /// listener asks for one: the adapter may take the connection's principal from it.
    fn client_certificate(&self, _state: &ShardState, _certificate: &[u8]) {}

    /// Serves the request; the encoded response, length prefix included.
    fn handle(
        self,
        state: Rc<ShardState>,
        request: Self::Request,
    ) -> impl Future<Output = Vec<Bytes>> + 'static;
}

/// Per-partition framing a fetch response adds around the records (a generous upper bound for
/// both protocols' partition headers).
const FETCH_PARTITION_OVERHEAD_BYTES: usize = 512;

/// The worst case of one partition's fetch response: `max_bytes` clamped by `fetch_bytes_max`,
/// but at least the topic's largest batch (a fetch returns at least one whole batch).
pub(crate) fn fetch_bytes_bound(
    state: &ShardState,
    topics: &crate::broker::topics::Topics,
    topic: &str,
    max_bytes: u32,
) -> usize {
    let asked = max_bytes.clamp(1, state.config.fetch_bytes_max.max(1)) as usize;
    let batch = topics
        .get(topic)
        .map_or(0, |meta| meta.config.batch_bytes_max);
    asked
        .max(batch)
        .saturating_add(FETCH_PARTITION_OVERHEAD_BYTES)
}

/// Accepts connections of one listener until the shard stops; at the cap (both listeners
/// counted), a new connection is closed at once.
pub(crate) async fn accept_loop<W: Wire>(
    state: Rc<ShardState>,
    gate: Rc<Gate>,
    listener: TcpListener,
    wire: W,
    (tls, which): (SharedTls, Which),
) {
    loop {
        let Some(accepted) = state.lifecycle.unless_stopping(listener.accept()).await else {
            return;
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::warn!(%error, listener = ?W::LISTENER, "accept failed");
                runtime::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if gate.connections() >= state.config.connections_per_shard_max {
            gate.closed(W::LISTENER, CloseReason::Refused);
            drop(stream);
            continue;
        }
        let _ = stream.set_nodelay(true);
        runtime::spawn_detached(serve(
            state.clone(),
            gate.clone(),
            (stream, ListenerTls::current(&tls, which)),
            wire.for_connection(),
        ));
    }
}

/// Serves one connection until the peer or the broker ends it; every request admitted is
/// answered (and its response written, if the peer still reads) before the socket closes.
async fn serve<W: Wire>(
    state: Rc<ShardState>,
    gate: Rc<Gate>,
    (socket, tls): (TcpStream, Option<std::sync::Arc<rustls::ServerConfig>>),
    wire: W,
) {
    gate.opened(W::LISTENER);
    let limit = Duration::from_millis(state.config.request_read_timeout_ms);
    let Some(stream) = tls::establish(socket, tls, limit).await else {
        gate.closed(W::LISTENER, CloseReason::TlsHandshake);
        gate.ended(W::LISTENER);
        return;
    };
    if let Some(certificate) = stream.peer_certificate() {
        wire.client_certificate(&state, &certificate);
    }
    let shared = Rc::new(outbox::Shared::new(W::ORDERED));
    let writer = runtime::spawn(outbox::write_loop(
        stream.clone(),
        shared.clone(),
        gate.clone(),
        W::LISTENER,
    ));
    let reason = read::read_loop(&state, &gate, &wire, stream, &shared).await;
    if let Some(reason) = reason {
        tracing::debug!(?reason, listener = ?W::LISTENER, "closing a connection");
        gate.closed(W::LISTENER, reason);
    }
    loop {
        let released = shared.released.wait();
        if shared.requests.get() == 0 {
            break;
        }
        released.await;
    }
    shared.close();
    if !finish_writing(&state, &gate, &shared, writer).await && reason.is_none() {
        gate.closed(W::LISTENER, CloseReason::Idle);
    }
    debug_assert_eq!(
        shared.inflight.total(),
        0,
        "a closed connection holds bytes"
    );
    gate.ended(W::LISTENER);
}

/// Lets the writer send what is left, unless it makes no progress for `idle_timeout_ms` (a
/// client that reads nothing): then it is abandoned with its responses. False if abandoned.
async fn finish_writing(
    state: &ShardState,
    gate: &Gate,
    shared: &outbox::Shared,
    mut writer: compio::runtime::JoinHandle<()>,
) -> bool {
    let limit = Duration::from_millis(state.config.idle_timeout_ms);
    if limit.is_zero() {
        let _ = writer.await;
        return true;
    }
    loop {
        let progress = shared.activity.get();
        if runtime::timeout(limit, &mut writer).await.is_some() {
            return true;
        }
        if shared.activity.get() == progress {
            // Dropping the task cancels its send; the socket closes with the last handle.
            drop(writer);
            shared.abandon(gate);
            return false;
        }
    }
}
