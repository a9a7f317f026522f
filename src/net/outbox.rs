//! A connection's responses on their way to the socket, and the write loop that sends them.
//!
//! Kafka answers a connection's requests in the order they came, so each request takes a place
//! when it is read and the writer sends only a filled prefix; the native protocol matches by
//! correlation id, so a response is sendable as soon as it exists. Every response's bytes stay
//! counted (connection and shard) until the send that carries them has completed.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use bytes::Bytes;

use super::gate::{Gate, InFlight, Listener, Stage};
use crate::runtime::Notify;
use crate::runtime::tls::Stream;

/// Where a response goes: a numbered place in request order, or anywhere (out of order).
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    Ordered(u64),
    Any,
}

#[derive(Default)]
struct Outbox {
    ordered: bool,
    /// The sequence number of `places[0]`.
    first: u64,
    places: VecDeque<Option<Vec<Bytes>>>,
    ready: Vec<Bytes>,
}

impl Outbox {
    fn place(&mut self) -> Place {
        if !self.ordered {
            return Place::Any;
        }
        let sequence = self.first.saturating_add(self.places.len() as u64);
        self.places.push_back(None);
        Place::Ordered(sequence)
    }

    fn fill(&mut self, place: Place, buffers: Vec<Bytes>) {
        match place {
            Place::Any => self.ready.extend(buffers),
            Place::Ordered(sequence) => {
                let index = sequence.checked_sub(self.first).map(|index| index as usize);
                match index.and_then(|index| self.places.get_mut(index)) {
                    Some(slot) => *slot = Some(buffers),
                    None => debug_assert!(false, "a place filled twice or never taken"),
                }
                while let Some(Some(_)) = self.places.front() {
                    if let Some(Some(buffers)) = self.places.pop_front() {
                        self.ready.extend(buffers);
                    }
                    self.first = self.first.saturating_add(1);
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.places.is_empty() && self.ready.is_empty()
    }
}

/// What a connection's reader, handlers and writer share.
pub(super) struct Shared {
    /// Requests dispatched and not yet answered.
    pub requests: Cell<usize>,
    /// Bumped whenever a request finishes or a send completes: "nothing happened" for the idle
    /// timeout.
    pub activity: Cell<u64>,
    /// Bytes the writer took from the outbox and is sending (released when the send ends).
    sending: Cell<usize>,
    pub inflight: InFlight,
    /// Notified when bytes in flight drop or a request finishes.
    pub released: Notify,
    outbox: RefCell<Outbox>,
    /// Notified when the outbox gains sendable bytes or the connection is closing.
    filled: Notify,
    /// Nothing more will be queued; the writer sends what is left and stops.
    closing: Cell<bool>,
}

impl Shared {
    pub fn new(ordered: bool) -> Shared {
        Shared {
            requests: Cell::new(0),
            activity: Cell::new(0),
            sending: Cell::new(0),
            inflight: InFlight::default(),
            released: Notify::default(),
            outbox: RefCell::new(Outbox {
                ordered,
                ..Outbox::default()
            }),
            filled: Notify::default(),
            closing: Cell::new(false),
        }
    }

    /// Takes the response's place in the order (at read time, before any later request).
    pub fn place(&self) -> Place {
        self.outbox.borrow_mut().place()
    }

    /// Queues a response; its bytes count as in flight until written.
    pub fn respond(&self, gate: &Gate, place: Place, buffers: Vec<Bytes>) {
        let bytes = buffers.iter().map(Bytes::len).sum();
        self.inflight.add_response(bytes);
        gate.inflight.add_response(bytes);
        gate.publish_inflight();
        self.outbox.borrow_mut().fill(place, buffers);
        self.filled.notify();
    }

    /// Tells the writer to finish: send what is queued, then close the socket.
    pub fn close(&self) {
        self.closing.set(true);
        self.filled.notify();
    }

    /// Drops every response not yet written (the writer was abandoned), releasing its bytes.
    pub fn abandon(&self, gate: &Gate) {
        let queued: usize = {
            let mut outbox = self.outbox.borrow_mut();
            let ready = std::mem::take(&mut outbox.ready);
            let places = std::mem::take(&mut outbox.places);
            ready
                .iter()
                .chain(places.iter().flatten().flatten())
                .map(Bytes::len)
                .sum()
        };
        self.release_written(gate, queued + self.sending.replace(0));
    }

    fn release_written(&self, gate: &Gate, bytes: usize) {
        self.inflight.remove_response(bytes);
        gate.inflight.remove_response(bytes);
        gate.publish_inflight();
        self.released.notify();
        gate.released.notify();
    }
}

/// Sends responses as they become sendable, in vectored sends; after a failed send (the peer is
/// gone) drops them instead, still releasing their bytes.
pub(super) async fn write_loop(
    mut stream: Stream,
    shared: Rc<Shared>,
    gate: Rc<Gate>,
    listener: Listener,
) {
    let mut failed = false;
    loop {
        let filled = shared.filled.wait();
        let buffers = std::mem::take(&mut shared.outbox.borrow_mut().ready);
        if buffers.is_empty() {
            if shared.closing.get() && shared.outbox.borrow().is_empty() {
                if !failed {
                    let _ = stream.close().await;
                }
                return;
            }
            filled.await;
            continue;
        }
        let bytes = buffers.iter().map(Bytes::len).sum();
        shared.sending.set(bytes);
        let sending = std::time::Instant::now();
        if !failed && stream.send_all(buffers).await.is_err() {
            failed = true;
        }
        gate.stage(listener, Stage::Send, sending.elapsed());
        shared.sending.set(0);
        shared.release_written(&gate, bytes);
        shared.activity.set(shared.activity.get().wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(outbox: &mut Outbox, place: Place, text: &'static str) {
        outbox.fill(place, vec![Bytes::from_static(text.as_bytes())]);
    }

    #[test]
    fn ordered_responses_wait_for_every_earlier_one() {
        let mut outbox = Outbox {
            ordered: true,
            ..Outbox::default()
        };
        let (first, second, third) = (outbox.place(), outbox.place(), outbox.place());
        filled(&mut outbox, third, "c");
        filled(&mut outbox, second, "b");
        assert!(
            outbox.ready.is_empty(),
            "nothing before the first is answered"
        );
        filled(&mut outbox, first, "a");
        assert_eq!(outbox.ready, vec!["a", "b", "c"]);
        outbox.ready.clear();
        assert!(outbox.is_empty());
        let fourth = outbox.place();
        filled(&mut outbox, fourth, "d");
        assert_eq!(
            outbox.ready,
            vec!["d"],
            "numbering continues after the prefix left"
        );
    }

    #[test]
    fn unordered_responses_are_sendable_at_once() {
        let mut outbox = Outbox::default();
        let (first, second) = (outbox.place(), outbox.place());
        filled(&mut outbox, second, "b");
        assert_eq!(outbox.ready, vec!["b"]);
        filled(&mut outbox, first, "a");
        assert_eq!(outbox.ready, vec!["b", "a"]);
    }
}
