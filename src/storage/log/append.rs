//! The append path: validation, idempotent producers, offset assignment, and the bounded write
//! queue with its space tickets.
//!
//! An append never touches a file: it checks its batches, gives them offsets and queues them for
//! the flusher, because assigning offsets in call order on the shard is what makes them
//! contiguous without a lock. Backpressure is first come first served (a ticket per waiter), so
//! waiting for space never reorders a producer's appends. Idempotent producers' retries are
//! recognised here, before any offset is given, and answered with the original offsets.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;

use super::deduplicate;
use super::{AppendAck, PartitionLog, Shared, State, now_ms};
use crate::batch::{self, BatchInfo, HeaderSearch};
use crate::runtime;
use crate::storage::config::{AckLevel, LogConfig, TimestampType};
use crate::storage::dedup::{self, DEDUP_HEADER, FirstCopy, FoundIds};
use crate::storage::error::{Result, StorageError};
use crate::storage::producer_state::{self, Outcome, ProducerStates};
use crate::storage::segment::{self, DATA_SUFFIX, Segment};

pub(super) struct PendingAppend {
    pub(super) bytes: Bytes,
    pub(super) batches: Vec<BatchInfo>,
    pub(super) ack: AppendAck,
    pub(super) level: AckLevel,
    pub(super) reply: Option<oneshot::Sender<Result<AppendAck>>>,
    /// What retries of its idempotent batches wait on (None for the leading part of an append
    /// split across segments: the part carrying the reply settles it).
    pub(super) outcome: Option<Outcome>,
    /// When it was queued: its wait for the flusher is `ringmq_log_queue_seconds`.
    pub(super) queued_at: std::time::Instant,
}

impl PendingAppend {
    /// Settles the append's outcome (the first settlement stands): written, or failed.
    pub(super) fn settle(&self, result: Result<(), StorageError>) {
        if let Some(outcome) = &self.outcome {
            outcome.borrow_mut().get_or_insert(result);
        }
    }

    pub(super) fn answer(self, result: Result<AppendAck>) {
        if let Err(error) = &result {
            self.settle(Err(error.clone()));
        }
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }

    /// Splits off the batches from the first one (never the first of all) that would end more
    /// than `offsets_max` past `segment_base`: they go to the next segment, with the reply.
    pub(super) fn split_beyond(
        &mut self,
        segment_base: u64,
        offsets_max: u64,
    ) -> Option<PendingAppend> {
        let keep = self.batches.iter().enumerate().position(|(index, info)| {
            index > 0 && (info.last_offset as u64).saturating_sub(segment_base) > offsets_max
        })?;
        let bytes_kept: usize = self.batches[..keep]
            .iter()
            .map(|info| info.size_bytes)
            .sum();
        let rest = PendingAppend {
            bytes: self.bytes.slice(bytes_kept..),
            batches: self.batches.split_off(keep),
            ack: self.ack,
            level: self.level,
            reply: self.reply.take(),
            outcome: self.outcome.take(),
            queued_at: self.queued_at,
        };
        self.bytes = self.bytes.slice(..bytes_kept);
        Some(rest)
    }
}

impl PartitionLog {
    /// Appends one or more record batches laid end to end in `records`. Offsets are assigned in
    /// the order appends are called; the acknowledgement waits as long as `level` asks.
    pub async fn append(&self, records: BytesMut, level: AckLevel) -> Result<AppendAck> {
        self.append_within(records, level, None).await
    }

    /// `append`, but refused with `Throttled` if the append cannot even be queued within
    /// `queue_wait_max` (the deadline covers only the wait for queue space, so a refused append
    /// was never written).
    pub async fn append_within(
        &self,
        records: BytesMut,
        level: AckLevel,
        queue_wait_max: Option<Duration>,
    ) -> Result<AppendAck> {
        let (batches, ids) = validate_batches(&records, &self.shared.config())?;
        let place_in_line = self
            .wait_for_queue_space(records.len(), queue_wait_max)
            .await?;
        let queued = self.enqueue(records, batches, ids, level);
        drop(place_in_line);
        match queued? {
            Queued::Retry { ack, outcome } => {
                if let Some(outcome) = outcome {
                    self.wait_for_outcome(&outcome).await?;
                }
                self.wait_until_acknowledged(ack.last_offset, level).await?;
                Ok(ack)
            }
            Queued::Appended { ack, answer, mark } => {
                if mark {
                    // A restart rebuilds the ids only where this marker is (storage::dedup).
                    let dir = self.shared.store.dir().to_path_buf();
                    runtime::blocking(move || dedup::mark(&dir)).await?;
                }
                match answer {
                    None => Ok(ack),
                    Some(answer) => answer.await.unwrap_or(Err(StorageError::Closed)),
                }
            }
        }
    }

    /// Assigns offsets to `batches` (in `records`) and queues them for the flusher, or, for an
    /// idempotent producer's retry, finds the original append. Records repeating a deduplication
    /// id of `ids` are dropped first. One borrow of the state, no `.await`: offsets are given in
    /// the order appends get here, and an id is decided and recorded in the same step.
    fn enqueue(
        &self,
        mut records: BytesMut,
        mut batches: Vec<BatchInfo>,
        ids: FoundIds,
        level: AckLevel,
    ) -> Result<Queued> {
        let shared = &self.shared;
        let mut state = shared.state.borrow_mut();
        state.check_open()?;
        // Idempotent producers: a retried batch gets its original offsets, nothing is stored.
        if let Some((ack, outcome)) = state.retried(&batches)? {
            return Ok(Queued::Retry { ack, outcome });
        }
        let outcome = Outcome::default();
        let now = now_ms();
        let (window_ms, ids_max, decompressed_max) = {
            let config = shared.config();
            let max = config.batch_decompressed_bytes_max;
            (config.dedup_window_ms, config.dedup_ids_max, max)
        };
        let mut screened = None;
        // This append carries the partition's first id: the marker is written before its answer.
        let mut mark = false;
        // With records dropped: the batches as sent, and where each went in the rebuilt append.
        let mut sent = None;
        if !ids.is_empty() {
            state.dedup.expire(now, window_ms);
            let found = deduplicate::screen(&state.dedup, &ids, batches.len(), now, window_ms);
            if found.dropped > 0 {
                let (bytes, rebuilt, map) =
                    deduplicate::rebuild(&records, &batches, &found.drops, decompressed_max)?;
                shared.metrics.dedup_dropped.increment(found.dropped as u64);
                if rebuilt.is_empty() {
                    let repeated = state.repeated_whole(&batches, found.first_copies);
                    shared.metrics.dedup_ids.set(state.dedup.len() as f64);
                    return repeated;
                }
                sent = Some((std::mem::replace(&mut batches, rebuilt), map));
                records = bytes;
            }
            screened = Some(found);
        }
        let log_append_time_ms =
            (shared.config().timestamp_type == TimestampType::LogAppendTime).then(now_ms);
        let base_offset = state.next_offset;
        let offsets: u64 = batches.iter().map(|info| info.records_count as u64).sum();
        if base_offset.saturating_add(offsets) > i64::MAX as u64 {
            return Err(
                batch::BatchError::BadRecord("the partition's offsets would pass 2^63").into(),
            );
        }
        let mut position = 0;
        for info in &mut batches {
            // Validated: 1 <= records_count and last_offset_delta = records_count - 1.
            let offset_count = (info.records_count - 1) as u64;
            let assigned = state.next_offset;
            let bytes = &mut records[position..position + info.size_bytes];
            batch::set_base_offset(bytes, assigned as i64);
            if let Some(now) = log_append_time_ms {
                batch::set_log_append_time(bytes, now);
                info.max_timestamp = now;
            }
            info.base_offset = assigned as i64;
            info.last_offset = (assigned + offset_count) as i64;
            state.next_offset = assigned + offset_count + 1;
            if sent.is_none() {
                state.producers.record(info, Some(&outcome));
            }
            position += info.size_bytes;
        }
        let ack = AppendAck {
            base_offset,
            last_offset: state.next_offset - 1,
            log_append_time_ms,
            log_start_offset: state.log_start_offset(),
        };
        if let Some((sent, map)) = &sent {
            state.record_rebuilt_producers(sent, map, &batches, &ack, &outcome);
        }
        if let Some(screened) = screened {
            for (batch_index, record, id) in screened.kept {
                let (rebuilt, index) = match &sent {
                    None => (Some(batch_index), Some(i64::from(record))),
                    Some((_, map)) => (
                        map.get(batch_index).copied().flatten(),
                        screened
                            .drops
                            .get(batch_index)
                            .and_then(|drops| deduplicate::rebuilt_index(record, drops)),
                    ),
                };
                if let (Some(info), Some(index)) = (rebuilt.and_then(|n| batches.get(n)), index) {
                    let offset = (info.base_offset + index) as u64;
                    state.dedup.record(id, offset, now, Some(&outcome), ids_max);
                }
            }
            shared.metrics.dedup_ids.set(state.dedup.len() as f64);
            if !state.dedup_marked && !state.dedup.is_empty() {
                state.dedup_marked = true;
                mark = true;
            }
        }
        let (reply, answer) = match level {
            AckLevel::None => (None, None),
            _ => {
                let (sender, receiver) = oneshot::channel();
                (Some(sender), Some(receiver))
            }
        };
        state.pending_bytes += records.len();
        shared.metrics.pending_bytes.set(state.pending_bytes as f64);
        state.pending.push_back(PendingAppend {
            bytes: records.freeze(),
            batches,
            ack,
            level,
            reply,
            outcome: Some(outcome),
            queued_at: std::time::Instant::now(),
        });
        drop(state);
        shared.work.notify();
        Ok(Queued::Appended { ack, answer, mark })
    }

    /// Waits until the original append of a retried batch is written or has failed: only then
    /// are its offsets known to hold its data (a failed write rewinds them for reuse).
    async fn wait_for_outcome(&self, outcome: &Outcome) -> Result<()> {
        loop {
            let progress = self.shared.settled.wait();
            if let Some(result) = outcome.borrow().clone() {
                return result;
            }
            self.shared.state.borrow().check_open()?;
            progress.await;
        }
    }

    /// Waits until the append that ends at `last_offset`, known written, is as durable as
    /// `level` asks (for a retried batch answered with its original offsets).
    async fn wait_until_acknowledged(&self, last_offset: u64, level: AckLevel) -> Result<()> {
        loop {
            let progress = match level {
                AckLevel::Fsynced => self.shared.synced.wait_past(last_offset),
                AckLevel::None | AckLevel::Written => self.shared.written.wait_past(last_offset),
            };
            {
                let state = self.shared.state.borrow();
                let done = match level {
                    AckLevel::None => true,
                    AckLevel::Written => state.high_watermark > last_offset,
                    AckLevel::Fsynced => state.synced_offset > last_offset,
                };
                if done {
                    return Ok(());
                }
                state.check_open()?;
                if level == AckLevel::Fsynced && !state.sync_requested {
                    drop(state);
                    // The queued appends may all be `written` ones, whose group the flusher does
                    // not sync: ask it for a sync of what is written, after whatever is queued.
                    self.shared.state.borrow_mut().sync_requested = true;
                    self.shared.work.notify();
                }
            }
            progress.await;
        }
    }

    /// Backpressure: waits while the queue of unwritten appends is full, first come first
    /// served. An append larger than the whole queue goes in alone, when the queue is empty.
    /// Returns the caller's place in line, which it holds until it has queued its append.
    async fn wait_for_queue_space(
        &self,
        bytes: usize,
        wait_max: Option<Duration>,
    ) -> Result<Option<SpaceTicket<'_>>> {
        let shared = &*self.shared;
        let fits = |state: &State| {
            state.pending_bytes == 0
                || state.pending_bytes + bytes <= shared.config().pending_bytes_max
        };
        let ticket = {
            let mut state = shared.state.borrow_mut();
            state.check_open()?;
            if state.space_queue.is_empty() && fits(&state) {
                return Ok(None);
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.space_queue.push_back(ticket);
            SpaceTicket { shared, ticket }
        };
        shared.metrics.backpressure_waits.increment(1);
        let started = Instant::now();
        loop {
            let space = shared.space.wait();
            {
                let state = shared.state.borrow();
                state.check_open()?;
                if state.space_queue.front() == Some(&ticket.ticket) && fits(&state) {
                    return Ok(Some(ticket));
                }
            }
            match wait_max {
                None => space.await,
                Some(wait_max) => {
                    let left = wait_max.saturating_sub(started.elapsed());
                    if left.is_zero() || runtime::timeout(left, space).await.is_none() {
                        return Err(StorageError::Throttled {
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                }
            }
        }
    }
}

/// What `enqueue` did with an append.
enum Queued {
    /// Queued with fresh offsets; `answer` brings the flusher's reply (None for acks `none`).
    Appended {
        ack: AppendAck,
        answer: Option<oneshot::Receiver<Result<AppendAck>>>,
        /// The append carries the partition's first deduplication id: write the marker.
        mark: bool,
    },
    /// An idempotent producer's retry of a batch appended before, with its original offsets
    /// and the outcome of that append while it is still queued.
    Retry {
        ack: AppendAck,
        outcome: Option<Outcome>,
    },
}

/// A place in the line for queue space; leaving (or being dropped while waiting) lets the next in.
struct SpaceTicket<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl Drop for SpaceTicket<'_> {
    fn drop(&mut self) {
        self.shared
            .state
            .borrow_mut()
            .space_queue
            .retain(|ticket| *ticket != self.ticket);
        self.shared.space.notify();
    }
}

impl State {
    /// Whether `batches` is an idempotent producer's retry of one batch already appended: then
    /// its original acknowledgement, and the outcome of its append if that is still pending.
    /// A retry mixed with new batches is out of sequence.
    fn retried(&self, batches: &[BatchInfo]) -> Result<Option<(AppendAck, Option<Outcome>)>> {
        let mut verdicts = Vec::with_capacity(batches.len());
        for info in batches {
            verdicts.push(self.producers.check(info)?);
        }
        if let [
            producer_state::Verdict::Duplicate {
                base_offset,
                last_offset,
                ref outcome,
            },
        ] = verdicts[..]
        {
            let ack = AppendAck {
                base_offset,
                last_offset,
                log_append_time_ms: None,
                log_start_offset: self.log_start_offset(),
            };
            return Ok(Some((ack, outcome.clone())));
        }
        if verdicts
            .iter()
            .any(|verdict| !matches!(verdict, producer_state::Verdict::Append))
        {
            let info = &batches[0];
            return Err(StorageError::OutOfOrderSequence {
                producer_id: info.producer_id,
                expected: -1,
                got: info.base_sequence,
            });
        }
        Ok(None)
    }
}

impl State {
    /// Answers an append whose every record repeats a deduplication id: nothing is stored, and
    /// it is acknowledged with its first copies' offsets once they are as durable as asked.
    /// Idempotent producers' sequences still advance past what they sent.
    fn repeated_whole(
        &mut self,
        sent: &[BatchInfo],
        first_copies: Vec<FirstCopy>,
    ) -> Result<Queued> {
        let (Some(first), Some(last)) = (
            first_copies.first(),
            first_copies.iter().max_by_key(|copy| copy.offset),
        ) else {
            return Err(StorageError::Failed(
                "an append dropped whole without a first copy".into(),
            ));
        };
        let ack = AppendAck {
            base_offset: first.offset,
            last_offset: last.offset,
            log_append_time_ms: None,
            log_start_offset: self.log_start_offset(),
        };
        // The latest first copy settles last: if an earlier one's write failed, so did its.
        let outcome = last.outcome.clone();
        for info in sent {
            let placed = BatchInfo {
                base_offset: ack.base_offset as i64,
                last_offset: ack.last_offset as i64,
                ..*info
            };
            self.producers.record(&placed, outcome.as_ref());
        }
        Ok(Queued::Retry { ack, outcome })
    }

    /// Idempotent producers' state after an append rebuilt without repeated records: each
    /// batch as sent (its sequence numbers counting every record sent), at the offsets its kept
    /// records got (a batch dropped whole: the append's).
    fn record_rebuilt_producers(
        &mut self,
        sent: &[BatchInfo],
        map: &[Option<usize>],
        rebuilt: &[BatchInfo],
        ack: &AppendAck,
        outcome: &Outcome,
    ) {
        for (index, info) in sent.iter().enumerate() {
            let (base_offset, last_offset) = match map.get(index).copied().flatten() {
                Some(n) => (rebuilt[n].base_offset, rebuilt[n].last_offset),
                None => (ack.base_offset as i64, ack.last_offset as i64),
            };
            let placed = BatchInfo {
                base_offset,
                last_offset,
                ..*info
            };
            self.producers.record(&placed, Some(outcome));
        }
    }
}

/// How much of the log's tail is read at open to rebuild idempotent producers' state: retries
/// come within seconds, far inside this.
const PRODUCER_STATE_SCAN_BYTES: u64 = 8 << 20;

/// The batches in the last `PRODUCER_STATE_SCAN_BYTES` of the active segment (from an index
/// entry, so on a batch boundary), from which idempotent producers' state is rebuilt. Blocking:
/// it runs on the blocking pool at open. Batches that fail their check are left out.
pub(super) fn recent_batches(dir: &Path, active: &Segment) -> Result<Vec<BatchInfo>> {
    let from_at_least = active.size_bytes.saturating_sub(PRODUCER_STATE_SCAN_BYTES);
    let start = active
        .index
        .entries()
        .map(|(_, position, _)| u64::from(position))
        .take_while(|position| *position <= from_at_least)
        .last()
        .unwrap_or(0);
    let mut file = fs::File::open(segment::file_path(dir, active.base_offset, DATA_SUFFIX))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, active.size_bytes.saturating_sub(start)),
        &mut bytes,
    )?;
    Ok(batch::iter_framed(&bytes)
        .filter_map(|(_, framed)| batch::validate(framed, batch::Limits::UNLIMITED).ok())
        .collect())
}

impl ProducerStates {
    /// Producers' state after `batches`, oldest first (none of them pending).
    pub(super) fn rebuilt(batches: &[BatchInfo]) -> ProducerStates {
        let mut states = ProducerStates::default();
        for info in batches {
            states.record(info, None);
        }
        states
    }
}

/// Checks every batch of an append (see `batch::validate`), sharing one decompression budget,
/// and gathers the deduplication ids its records carry when the topic deduplicates.
fn validate_batches(records: &[u8], config: &LogConfig) -> Result<(Vec<BatchInfo>, FoundIds)> {
    let limits = config.append_limits();
    let mut inflate_budget = limits.decompressed_bytes_max;
    let mut batches = Vec::new();
    let mut ids = FoundIds::new();
    let deduplicating = config.dedup_window_ms > 0;
    let mut position = 0;
    while let Some(rest) = records.get(position..).filter(|rest| !rest.is_empty()) {
        let mut search = deduplicating.then(|| HeaderSearch::new(DEDUP_HEADER.as_bytes()));
        let info =
            batch::validate_append_finding(rest, &limits, &mut inflate_budget, search.as_mut())?;
        if let Some(search) = search {
            dedup::gather(&mut ids, batches.len(), search.found);
        }
        position += info.size_bytes;
        batches.push(info);
    }
    if batches.is_empty() {
        return Err(batch::BatchError::Empty.into());
    }
    Ok((batches, ids))
}
