//! FIFO message groups: within a queue group with `fifo` on, messages with the same group key
//! (the `x-group-key` header, or the record's key) are delivered in offset order and one at a
//! time across all consumers; other keys proceed in parallel, messages without a key are not
//! ordered.
//!
//! Each key in play has a head, its lowest unsettled message seen: only the head may be
//! delivered (and redelivered after a release or an expiry). The key's later messages a receive
//! reads are parked (held like delayed messages, never planned), in order; when the head is
//! settled the first parked one becomes available and the new head. Receives read the window
//! from its lowest offset up, so the first message of a key seen is its lowest. Nothing of this
//! is journaled: after a restart parked messages are plain available ones again and the heads
//! are found anew the same way. Keys in play are bounded by the window (each holds at least one
//! of its messages), so by `window_messages_max`.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::batch::Record;

use super::super::settings::FifoKey;
use super::{QueueState, Span, Status, change};

/// The header that names a message's FIFO message group.
pub const GROUP_KEY_HEADER: &str = "x-group-key";

/// A parked message's status: locked by nobody, for ever (until its head settles).
pub(super) const PARKED: Status = Status::Locked {
    holder: None,
    deadline_ms: u64::MAX,
};

/// The keys in play of one queue group on one partition.
#[derive(Debug, Default)]
pub struct Fifo {
    /// Key -> its head and its parked messages (ascending).
    keys: HashMap<u64, (u64, VecDeque<u64>)>,
    /// Head offset -> key.
    heads: BTreeMap<u64, u64>,
}

impl Fifo {
    /// Keys in play now (the fill level of the map).
    pub fn keys(&self) -> usize {
        self.keys.len()
    }
}

/// The group key of `record` under `fifo`, hashed; None: unordered.
pub fn group_key(record: &Record, fifo: FifoKey) -> Option<u64> {
    let bytes = match fifo {
        FifoKey::Off => return None,
        FifoKey::Key => record.key.as_deref()?,
        FifoKey::Header => record
            .headers
            .iter()
            .rev()
            .find(|header| header.key == GROUP_KEY_HEADER)?
            .value
            .as_deref()?,
    };
    Some(xxhash_rust::xxh3::xxh3_64(bytes))
}

impl QueueState {
    /// Whether `offset` (of `key`) may be delivered now; if not, it is parked behind its head.
    /// `offset` is at the cursor (not yet in the window) or an available span's.
    pub(super) fn fifo_admit(&mut self, key: u64, offset: u64) -> bool {
        match self.fifo.keys.get_mut(&key) {
            None => {
                self.fifo.keys.insert(key, (offset, VecDeque::new()));
                self.fifo.heads.insert(offset, key);
                true
            }
            Some((head, _)) if *head == offset => true,
            Some((_, parked)) => {
                if !parked.contains(&offset) {
                    let at = parked.partition_point(|&o| o < offset);
                    parked.insert(at, offset);
                }
                if offset >= self.cursor {
                    self.append(Span::fresh(offset, PARKED));
                } else {
                    change(
                        &mut self.spans,
                        &mut self.ledger,
                        offset,
                        offset,
                        |_, span| span.status = PARKED,
                    );
                }
                false
            }
        }
    }

    /// Moves every key whose head is settled on to its next parked message (made available),
    /// or drops the key.
    pub(super) fn fifo_advance(&mut self) {
        if self.fifo.heads.is_empty() {
            return;
        }
        let settled: Vec<(u64, u64)> = self
            .fifo
            .heads
            .iter()
            .filter(|&(&offset, _)| {
                offset < self.settled_below
                    || self
                        .spans
                        .get(offset)
                        .is_none_or(|(_, span)| span.status.is_settled())
            })
            .map(|(&offset, &key)| (offset, key))
            .collect();
        for (offset, key) in settled {
            self.fifo.heads.remove(&offset);
            let Some((head, parked)) = self.fifo.keys.get_mut(&key) else {
                continue;
            };
            let Some(next) = parked.pop_front() else {
                self.fifo.keys.remove(&key);
                continue;
            };
            *head = next;
            self.fifo.heads.insert(next, key);
            change(&mut self.spans, &mut self.ledger, next, next, |_, span| {
                if span.status == PARKED {
                    span.status = Status::Available { expired_from: None };
                }
            });
        }
    }
}
