//! Idempotent producers: per partition, what each producer id appended last, so that a batch a
//! producer sends again (a retry after a lost acknowledgement) is recognised and answered with
//! its original offsets instead of being stored twice, and a batch out of sequence or from a
//! fenced (older) epoch is refused.
//!
//! It lives in the log, as Kafka's does, so both protocols get it: a batch is idempotent when
//! its header carries a producer id and a base sequence (>= 0). The state is checked and updated
//! when offsets are assigned, in append order; it is rebuilt from the log's tail when the log
//! opens. Bounded: at most `PRODUCERS_MAX` producers per partition (the least recently seen
//! are forgotten; a forgotten producer's next batch is accepted as from a new producer).
//!
//! A retry that arrives while the original append is still queued waits on that append's
//! outcome, never on the high watermark: a failed write rewinds offset assignment, so the
//! original's offsets may be reused by another producer's data, and a retry that only waited
//! for the watermark to pass them would be acknowledged with that data.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

use crate::batch::BatchInfo;

use super::error::StorageError;

/// Batches remembered per producer for recognising retries (Kafka keeps 5 in flight).
const RECENT_BATCHES: usize = 5;
pub const PRODUCERS_MAX: usize = 10_000;

/// How one append ended: None while it is queued, then written (Ok) or failed. Shared by the
/// append and every retry of its batches.
pub type Outcome = Rc<RefCell<Option<Result<(), StorageError>>>>;

#[derive(Clone, Debug)]
struct RecentBatch {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: u64,
    last_offset: u64,
    /// The outcome of the append that carried it; None when it was read back from the disk.
    outcome: Option<Outcome>,
}

#[derive(Clone, Debug)]
struct Producer {
    epoch: i16,
    last_sequence: i32,
    /// The largest timestamp of its last batch (Kafka's DescribeProducers shows it).
    last_timestamp: i64,
    recent: VecDeque<RecentBatch>,
    last_seen: u64,
}

/// One idempotent producer as a partition knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProducerView {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

/// What to do with a batch.
#[derive(Clone, Debug)]
pub enum Verdict {
    Append,
    /// Already appended at these offsets: once `outcome` says it was written (None: it was),
    /// answer with them; store nothing.
    Duplicate {
        base_offset: u64,
        last_offset: u64,
        outcome: Option<Outcome>,
    },
}

#[derive(Default)]
pub struct ProducerStates {
    producers: HashMap<i64, Producer>,
    clock: u64,
}

fn idempotent(info: &BatchInfo) -> bool {
    info.producer_id >= 0 && info.base_sequence >= 0
}

fn last_sequence(info: &BatchInfo) -> i32 {
    info.base_sequence.wrapping_add(info.records_count - 1)
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch about to be appended (offsets not assigned yet).
    pub fn check(&self, info: &BatchInfo) -> Result<Verdict, StorageError> {
        if !idempotent(info) {
            return Ok(Verdict::Append);
        }
        let Some(producer) = self.producers.get(&info.producer_id) else {
            return Ok(Verdict::Append);
        };
        if info.producer_epoch < producer.epoch {
            return Err(StorageError::ProducerFenced {
                producer_id: info.producer_id,
                epoch: info.producer_epoch,
                current_epoch: producer.epoch,
            });
        }
        if info.producer_epoch > producer.epoch {
            // A new epoch starts its sequence again at 0.
            return match info.base_sequence {
                0 => Ok(Verdict::Append),
                got => Err(StorageError::OutOfOrderSequence {
                    producer_id: info.producer_id,
                    expected: 0,
                    got,
                }),
            };
        }
        let last = last_sequence(info);
        if let Some(batch) = producer
            .recent
            .iter()
            .find(|b| b.first_sequence == info.base_sequence && b.last_sequence == last)
        {
            return Ok(Verdict::Duplicate {
                base_offset: batch.base_offset,
                last_offset: batch.last_offset,
                outcome: batch.outcome.clone(),
            });
        }
        let expected = producer.last_sequence.wrapping_add(1);
        if info.base_sequence != expected {
            return Err(StorageError::OutOfOrderSequence {
                producer_id: info.producer_id,
                expected,
                got: info.base_sequence,
            });
        }
        Ok(Verdict::Append)
    }

    /// Records a batch whose offsets are assigned (`info.base_offset`, `info.last_offset`), with
    /// the outcome of the append carrying it (None: already on disk).
    pub fn record(&mut self, info: &BatchInfo, outcome: Option<&Outcome>) {
        if !idempotent(info) {
            return;
        }
        self.clock += 1;
        let clock = self.clock;
        let producer = self
            .producers
            .entry(info.producer_id)
            .or_insert_with(|| Producer {
                epoch: info.producer_epoch,
                last_sequence: -1,
                last_timestamp: -1,
                recent: VecDeque::new(),
                last_seen: clock,
            });
        if info.producer_epoch != producer.epoch {
            producer.epoch = info.producer_epoch;
            producer.recent.clear();
        }
        producer.last_sequence = last_sequence(info);
        producer.last_timestamp = info.max_timestamp;
        producer.last_seen = clock;
        producer.recent.push_back(RecentBatch {
            first_sequence: info.base_sequence,
            last_sequence: last_sequence(info),
            base_offset: info.base_offset as u64,
            last_offset: info.last_offset as u64,
            outcome: outcome.cloned(),
        });
        while producer.recent.len() > RECENT_BATCHES {
            producer.recent.pop_front();
        }
        if self.producers.len() > PRODUCERS_MAX {
            let oldest = self
                .producers
                .iter()
                .min_by_key(|(_, p)| p.last_seen)
                .map(|(id, _)| *id)
                .expect("not empty");
            self.producers.remove(&oldest);
        }
    }

    /// Every producer this partition remembers, by id.
    pub fn views(&self) -> Vec<ProducerView> {
        let mut views: Vec<ProducerView> = self
            .producers
            .iter()
            .map(|(id, producer)| ProducerView {
                producer_id: *id,
                epoch: producer.epoch,
                last_sequence: producer.last_sequence,
                last_timestamp: producer.last_timestamp,
            })
            .collect();
        views.sort_by_key(|view| view.producer_id);
        views
    }

    /// Forgets a producer whose batches were not written after all (a failed write), so that
    /// its retry is not refused as a duplicate or out of sequence.
    pub fn forget(&mut self, producer_id: i64) {
        self.producers.remove(&producer_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Compression;

    fn batch(
        producer_id: i64,
        epoch: i16,
        base_sequence: i32,
        count: i32,
        base_offset: i64,
    ) -> BatchInfo {
        BatchInfo {
            size_bytes: 100,
            base_offset,
            last_offset: base_offset + i64::from(count) - 1,
            records_count: count,
            max_timestamp: 0,
            first_timestamp: 0,
            compression: Compression::None,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            is_transactional: false,
            is_control: false,
        }
    }

    #[test]
    fn retries_are_duplicates_gaps_and_old_epochs_are_refused() {
        let mut states = ProducerStates::default();
        let first = batch(7, 0, 0, 3, 10);
        assert!(matches!(states.check(&first).unwrap(), Verdict::Append));
        let outcome = Outcome::default();
        states.record(&first, Some(&outcome));
        match states.check(&batch(7, 0, 0, 3, 0)).unwrap() {
            Verdict::Duplicate {
                base_offset: 10,
                last_offset: 12,
                outcome: Some(found),
            } => assert!(
                Rc::ptr_eq(&found, &outcome),
                "the retry waits on the original"
            ),
            other => panic!("not the original's duplicate: {other:?}"),
        }
        assert!(matches!(
            states.check(&batch(7, 0, 5, 1, 0)),
            Err(StorageError::OutOfOrderSequence {
                expected: 3,
                got: 5,
                ..
            })
        ));
        assert!(matches!(
            states.check(&batch(7, 0, 3, 2, 0)).unwrap(),
            Verdict::Append
        ));
        assert!(
            matches!(
                states.check(&batch(7, 1, 0, 1, 0)).unwrap(),
                Verdict::Append
            ),
            "a new epoch starts at 0"
        );
        states.record(&batch(7, 1, 0, 1, 20), None);
        assert!(matches!(
            states.check(&batch(7, 0, 3, 1, 0)),
            Err(StorageError::ProducerFenced {
                current_epoch: 1,
                ..
            })
        ));
        assert!(
            matches!(
                states.check(&batch(-1, -1, -1, 5, 0)).unwrap(),
                Verdict::Append
            ),
            "not idempotent"
        );
        states.forget(7);
        assert!(
            matches!(
                states.check(&batch(7, 0, 99, 1, 0)).unwrap(),
                Verdict::Append
            ),
            "forgotten: a new producer"
        );
    }
}
