//! A connection's read loop: cut frames, admit each request only while the connection and the
//! shard have room for it, and read more only while they have room, so that TCP pushes back on a
//! client that sends faster than it is served or reads slower than it asks. It also ends the
//! connection when it stays idle or leaves a frame half-sent for too long.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::future::{Either, select};

use super::gate::{CloseReason, Gate, InFlight, Stage};
use super::outbox::Shared;
use super::{Decoded, Wire};
use crate::broker::ShardState;
use crate::protocol::codec::FrameStatus;
use crate::runtime::{self, tls::Stream};

const READ_CHUNK_BYTES: usize = 64 * 1024;

/// How a connection's reading ended: the peer or the shard ended it (None), or the broker
/// closes it for a reason.
pub(super) type Ended = Option<CloseReason>;

pub(super) async fn read_loop<W: Wire>(
    state: &Rc<ShardState>,
    gate: &Rc<Gate>,
    wire: &W,
    mut stream: Stream,
    shared: &Rc<Shared>,
) -> Ended {
    let frame_bytes_max = state.config.frame_bytes_max;
    let mut buffer = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // When the first byte of the frame now in `buffer` arrived (reset after a pause of ours).
    let mut frame_started: Option<Instant> = None;
    // Whether the frame now in `buffer` has had its interim answer (`Wire::interim`).
    let mut interim_sent = false;
    loop {
        loop {
            match wire.frame(&buffer, frame_bytes_max) {
                FrameStatus::Ready(size) => {
                    // What remains belongs to the next frame, whose bytes came with the last read.
                    frame_started = None;
                    interim_sent = false;
                    // Admission comes before each request, not only before each read: one read
                    // may hold thousands of small requests, each with a large response.
                    let frame = buffer.split_to(size);
                    match admit(state, gate, wire, shared, frame).await {
                        Ok(true) => {}
                        Ok(false) => return Some(CloseReason::Malformed),
                        Err(ended) => return ended,
                    }
                }
                FrameStatus::Incomplete => {
                    if !interim_sent && let Some(answer) = wire.interim(&buffer) {
                        interim_sent = true;
                        let place = shared.place();
                        shared.respond(gate, place, answer);
                    }
                    break;
                }
                FrameStatus::TooLarge(size) => {
                    tracing::debug!(size, frame_bytes_max, "frame over the limit; closing");
                    if let Some(answer) = wire.too_large(size, frame_bytes_max) {
                        let place = shared.place();
                        shared.respond(gate, place, answer);
                    }
                    return Some(CloseReason::TooLarge);
                }
            }
        }
        let paused = match wait_for_room(state, gate, shared, false).await {
            Ok(paused) => paused,
            Err(ended) => return ended,
        };
        if paused {
            // Time the broker spent not reading is not the client's.
            frame_started = None;
        }
        if buffer.is_empty() {
            frame_started = None;
        } else if frame_started.is_none() {
            frame_started = Some(Instant::now());
        }
        buffer = match read(state, wire, &mut stream, buffer, shared, frame_started).await {
            Read::More(more) => more,
            Read::Ended => return None,
            Read::Closed(reason) => return Some(reason),
        };
    }
}

/// Decodes one frame and starts its request once there is room for it. Ok(false): the
/// connection must close (after the answer already queued), its byte stream can no longer be
/// trusted to be in step; Err: reading ended while the request waited for room.
async fn admit<W: Wire>(
    state: &Rc<ShardState>,
    gate: &Rc<Gate>,
    wire: &W,
    shared: &Rc<Shared>,
    frame: BytesMut,
) -> Result<bool, Ended> {
    let frame_bytes = frame.len();
    match wire.decode(state, frame) {
        Decoded::Request(request) => {
            let reserved = wire.response_bytes_bound(state, &request);
            let admitting = Instant::now();
            wait_for_room(state, gate, shared, reserved > 0).await?;
            gate.stage(W::LISTENER, Stage::Admit, admitting.elapsed());
            dispatch(state, gate, wire, shared, (frame_bytes, reserved), request);
            Ok(true)
        }
        Decoded::Answer(answer) => {
            let place = shared.place();
            shared.respond(gate, place, answer);
            Ok(true)
        }
        Decoded::Close(answer) => {
            if let Some(answer) = answer {
                let place = shared.place();
                shared.respond(gate, place, answer);
            }
            Ok(false)
        }
    }
}

/// Runs a request on its own task. Its frame and the worst case of its response count from now;
/// when the handler returns, they are exchanged for the response's real bytes.
fn dispatch<W: Wire>(
    state: &Rc<ShardState>,
    gate: &Rc<Gate>,
    wire: &W,
    shared: &Rc<Shared>,
    (frame_bytes, reserved): (usize, usize),
    request: W::Request,
) {
    let place = wire.answers(&request).then(|| shared.place());
    shared.requests.set(shared.requests.get() + 1);
    shared.inflight.add_request(frame_bytes, reserved);
    gate.inflight.add_request(frame_bytes, reserved);
    gate.publish_inflight();
    let (state, gate, shared, wire) = (state.clone(), gate.clone(), shared.clone(), wire.clone());
    runtime::spawn_detached(async move {
        let handling = Instant::now();
        let response: Vec<Bytes> = wire.handle(state, request).await;
        gate.stage(W::LISTENER, Stage::Handle, handling.elapsed());
        if let Some(place) = place {
            shared.respond(&gate, place, response);
        }
        shared.inflight.remove_request(frame_bytes, reserved);
        gate.inflight.remove_request(frame_bytes, reserved);
        gate.publish_inflight();
        shared.requests.set(shared.requests.get().saturating_sub(1));
        shared.activity.set(shared.activity.get().wrapping_add(1));
        shared.released.notify();
        gate.released.notify();
    });
}

/// Backpressure: waits while this connection or the whole shard holds its bound of bytes in
/// flight: real bytes only, or, for a request that reserves (`reserving`), real bytes and
/// reservations, so that fetches waiting for data never hold back the produces that bring it.
/// Ok(true) if it had to wait; Err(None) if the shard started stopping meanwhile,
/// Err(Some(Idle)) if the connection went idle meanwhile (a client that reads none of its
/// responses makes no progress at all, and holds its place and its bytes no longer than that).
async fn wait_for_room(
    state: &ShardState,
    gate: &Gate,
    shared: &Shared,
    reserving: bool,
) -> Result<bool, Ended> {
    let counted = |inflight: &InFlight| {
        if reserving {
            inflight.total()
        } else {
            inflight.real()
        }
    };
    let mut paused = false;
    // Created once: wake-ups from other connections must not restart the idle clock.
    let mut idle = std::pin::pin!(idle_unless_disabled(state, shared));
    loop {
        let connection_released = shared.released.wait();
        let shard_released = gate.released.wait();
        if state.lifecycle.stopping.get() {
            return Err(None);
        }
        let connection_full =
            counted(&shared.inflight) >= state.config.connection_inflight_bytes_max;
        let shard_full = counted(&gate.inflight) >= state.config.shard_inflight_bytes_max;
        if !connection_full && !shard_full {
            return Ok(paused);
        }
        if !paused {
            gate.pauses.increment(1);
            paused = true;
        }
        let connection_released = std::pin::pin!(connection_released);
        let shard_released = std::pin::pin!(shard_released);
        let released = select(connection_released, shard_released);
        match state
            .lifecycle
            .unless_stopping(select(released, idle.as_mut()))
            .await
        {
            None => return Err(None),
            Some(Either::Right(_)) => return Err(Some(CloseReason::Idle)),
            Some(Either::Left(_)) => {}
        }
    }
}

/// `idle`, or never when `idle_timeout_ms` is 0.
async fn idle_unless_disabled(state: &ShardState, shared: &Shared) {
    match state.config.idle_timeout_ms {
        0 => std::future::pending().await,
        limit => idle(shared, Duration::from_millis(limit)).await,
    }
}

enum Read {
    More(BytesMut),
    /// The peer closed, the socket failed, or the shard is stopping.
    Ended,
    Closed(CloseReason),
}

/// Reads more of a client's bytes into `buffer` (room for the rest of a frame whose length is
/// known, and at least `READ_CHUNK_BYTES`), unless the shard starts stopping. None when the
/// connection is done: the stream ended, failed, or the shard is stopping.
async fn read_more<W: Wire>(
    state: &ShardState,
    wire: &W,
    stream: &mut Stream,
    mut buffer: BytesMut,
) -> Option<BytesMut> {
    buffer.reserve(wire.read_room(&buffer, READ_CHUNK_BYTES));
    let (result, buffer) = state
        .lifecycle
        .unless_stopping(stream.read_some(buffer))
        .await?;
    matches!(result, Ok(read) if read > 0).then_some(buffer)
}

/// Reads more bytes, bounded in time: a started frame must complete within
/// `request_read_timeout_ms` of its first byte; with no frame started and no request in flight,
/// the connection may stay silent for `idle_timeout_ms`. Zero disables either.
async fn read<W: Wire>(
    state: &ShardState,
    wire: &W,
    stream: &mut Stream,
    buffer: BytesMut,
    shared: &Shared,
    frame_started: Option<Instant>,
) -> Read {
    let read = std::pin::pin!(read_more(state, wire, stream, buffer));
    let timer = std::pin::pin!(async {
        match frame_started {
            Some(started) => {
                let limit = state.config.request_read_timeout_ms;
                if limit == 0 {
                    return std::future::pending().await;
                }
                let deadline = started + Duration::from_millis(limit);
                runtime::sleep(deadline.saturating_duration_since(Instant::now())).await;
                CloseReason::ReadTimeout
            }
            None => {
                idle_unless_disabled(state, shared).await;
                CloseReason::Idle
            }
        }
    });
    match select(read, timer).await {
        Either::Left((Some(more), _)) => Read::More(more),
        Either::Left((None, _)) => Read::Ended,
        Either::Right((reason, _)) => Read::Closed(reason),
    }
}

/// Resolves once the connection has had no request in flight, no request finish and no response
/// written for `limit` (the caller reads nothing meanwhile).
pub(super) async fn idle(shared: &Shared, limit: Duration) {
    loop {
        loop {
            let released = shared.released.wait();
            if shared.requests.get() == 0 {
                break;
            }
            released.await;
        }
        let activity = shared.activity.get();
        runtime::sleep(limit).await;
        if shared.requests.get() == 0 && shared.activity.get() == activity {
            return;
        }
    }
}
