//! The read side of a partition log: by offset (fetch) and by timestamp (list offsets), over
//! the tail cache, the active segment and the sealed segments' read handles (an LRU of at most
//! `open_segment_files_max` per partition).
//!
//! Damage is stepped over, the way Kafka consumers already handle gaps after compaction or
//! truncation: a fetch at an offset inside a damaged range, or past a sealed segment's last good
//! batch, gets the next good batch, whose base offset is higher than the one asked for, and the
//! consumer moves on from that batch's last offset. A fetch that starts before damage gets the
//! good batches before it. When a read meets damage in a sealed segment that was not known (no
//! `verify_on_start`), that segment is checked whole once (a scan of one segment on the blocking
//! pool: damage is rare and this is its price), its ranges are recorded and exported, and the
//! read is planned again. Sealed segments are opened through the log's `SegmentStore`.

use std::collections::Bound;

use tracing::warn;

use super::{PartitionLog, ReadResult};
use crate::batch;
use crate::runtime::{self, File};
use crate::storage::damage;
use crate::storage::error::{Result, StorageError};
use crate::storage::segment_read::SegmentRead;

/// A record's offset and timestamp, as a lookup by time finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimedOffset {
    pub offset: u64,
    pub timestamp_ms: i64,
}

/// How many times a read plans again because retention deleted its segment under it, or because
/// it found damage that was not known.
const READ_REPLANS_MAX: usize = 3;

/// Where the next read plan looks.
enum Planned {
    Done(ReadResult),
    Read {
        plan: SegmentRead,
        active: bool,
        result: ReadResult,
    },
}

impl PartitionLog {
    /// Reads whole batches starting with the one that holds `offset` (or, when damage took
    /// `offset`, the next good batch after it), up to `max_bytes` (at least one batch, however
    /// large). Reading at the high watermark returns nothing.
    pub async fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let mut from = offset;
        let mut replans = 0;
        loop {
            let (plan, active, mut result) = match self.plan_read(offset, from, max_bytes)? {
                Planned::Done(result) => return Ok(result),
                Planned::Read {
                    plan,
                    active,
                    result,
                } => (plan, active, result),
            };
            let Some(file) = self.segment_file(plan.base_offset).await? else {
                replans += 1;
                if replans > READ_REPLANS_MAX {
                    return Err(self.out_of_range(offset));
                }
                continue;
            };
            let found = plan
                .find(&file, |header| {
                    header
                        .base_offset
                        .get()
                        .saturating_add(i64::from(header.last_offset_delta.get()))
                        >= offset as i64
                })
                .await;
            let chunk = match found {
                Ok(None) if active => return Ok(result),
                Ok(None) => {
                    // Nothing at or after `offset` in this sealed segment: go on in the next.
                    from = self.next_segment_base(plan.base_offset).unwrap_or(u64::MAX);
                    continue;
                }
                Ok(Some((position, first_size))) => {
                    plan.read_whole_batches(&file, position, first_size, max_bytes)
                        .await
                }
                Err(error) => Err(error),
            };
            match chunk {
                Ok(chunk) => {
                    self.shared
                        .metrics
                        .read_bytes_disk
                        .increment(chunk.len() as u64);
                    result.chunks.push(chunk);
                    return Ok(result);
                }
                Err(error @ StorageError::Corrupt { .. })
                    if !active && replans < READ_REPLANS_MAX =>
                {
                    replans += 1;
                    if !self.learn_damage(plan.base_offset).await? {
                        return Err(error);
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Plans a read of `offset` that looks from `from` (a later segment's base when earlier ones
    /// had nothing left), or answers it at once from the tail cache or with nothing.
    fn plan_read(&self, offset: u64, from: u64, max_bytes: usize) -> Result<Planned> {
        let state = self.shared.state.borrow();
        let result = ReadResult {
            chunks: Vec::new(),
            high_watermark: state.high_watermark,
            log_start_offset: state.log_start_offset(),
        };
        if offset < result.log_start_offset || offset > result.high_watermark {
            return Err(self.out_of_range(offset));
        }
        if offset == result.high_watermark || from >= result.high_watermark {
            return Ok(Planned::Done(result));
        }
        if let Some(chunks) = state.tail.read(offset, max_bytes) {
            let metrics = &self.shared.metrics;
            metrics
                .read_bytes_cache
                .increment(chunks.iter().map(|c| c.len() as u64).sum());
            return Ok(Planned::Done(ReadResult { chunks, ..result }));
        }
        let Some((base, segment)) = state.segments.range(..=from).next_back() else {
            return Err(self.out_of_range(offset));
        };
        let relative = u32::try_from(from.saturating_sub(*base)).unwrap_or(u32::MAX);
        let plan = SegmentRead {
            base_offset: *base,
            position: u64::from(segment.index.position_for_offset(relative)),
            end: segment.size_bytes,
            skips: state.damage.skips(*base),
        };
        let active = state.segments.keys().next_back() == Some(base);
        Ok(Planned::Read {
            plan,
            active,
            result,
        })
    }

    fn out_of_range(&self, offset: u64) -> StorageError {
        StorageError::OffsetOutOfRange {
            requested: offset,
            start: self.log_start_offset(),
            end: self.high_watermark(),
        }
    }

    fn next_segment_base(&self, base_offset: u64) -> Option<u64> {
        let state = self.shared.state.borrow();
        let after = (Bound::Excluded(base_offset), Bound::Unbounded);
        state.segments.range(after).next().map(|(base, _)| *base)
    }

    /// Checks the sealed segment at `base_offset` whole (once) and records its damage. Returns
    /// whether damage not known before was found.
    async fn learn_damage(&self, base_offset: u64) -> Result<bool> {
        if self.shared.state.borrow().damage.is_verified(base_offset) {
            return Ok(false);
        }
        let path = self.shared.store.data_path(base_offset);
        let scanned = runtime::blocking(move || {
            let file = match std::fs::File::open(&path) {
                Ok(file) => file,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(error) => return Err(error),
            };
            damage::scan_file(&file, base_offset, |_, _, _| Ok(())).map(Some)
        })
        .await?;
        // Gone: retention deleted it under the read, which plans again.
        let Some((ranges, _)) = scanned else {
            return Ok(true);
        };
        let next_base = self.next_segment_base(base_offset);
        let mut state = self.shared.state.borrow_mut();
        // Retention may have taken the segment while the scan ran (its file stays readable
        // until closed): damage recorded for it now would outlive it as a phantom.
        if !state.segments.contains_key(&base_offset) {
            return Ok(true);
        }
        state.damage.mark_verified(base_offset);
        let known = state.damage.skips(base_offset);
        let mut learned = false;
        for mut range in ranges {
            if range.end_offset.is_none() {
                range.end_offset = next_base;
            }
            if known.contains(&(range.start_byte, range.end_byte)) {
                continue;
            }
            warn!(dir = %self.shared.store.dir().display(), %range, "a read found damage in a sealed segment: isolated, reads skip it");
            state.damage.add(range);
            learned = true;
        }
        drop(state);
        self.shared.publish_gauges();
        Ok(learned)
    }

    /// The offset of the first record whose timestamp is at or after `timestamp_ms`, or None if
    /// every record is older.
    pub async fn offset_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<u64>> {
        let found = self.record_for_timestamp(timestamp_ms).await?;
        Ok(found.map(|record| record.offset))
    }

    /// The first record whose timestamp is at or after `timestamp_ms`, with that record's
    /// timestamp, or None if every record is older: Kafka's ListOffsets by time. The time index
    /// finds the batch; the batch is read to find the record.
    pub async fn record_for_timestamp(&self, timestamp_ms: i64) -> Result<Option<TimedOffset>> {
        for _ in 0..READ_REPLANS_MAX {
            let plan = {
                let state = self.shared.state.borrow();
                let start = state.log_start_offset();
                let found = state.segments.values().find(|segment| {
                    !segment.is_empty()
                        && segment.next_offset > start
                        && segment.max_timestamp >= timestamp_ms
                });
                let Some(segment) = found else {
                    return Ok(None);
                };
                SegmentRead {
                    base_offset: segment.base_offset,
                    position: u64::from(segment.index.position_for_timestamp(timestamp_ms)),
                    end: segment.size_bytes,
                    skips: state.damage.skips(segment.base_offset),
                }
            };
            let Some(file) = self.segment_file(plan.base_offset).await? else {
                continue;
            };
            let found = plan
                .find(&file, |header| header.max_timestamp.get() >= timestamp_ms)
                .await?;
            let Some((position, size)) = found else {
                return Ok(None);
            };
            let bytes = file.read_exact_at(size, position).await?;
            // A record found below a start DeleteRecords set is answered as the start (Kafka
            // looks on from the start): a consumer seeking there may see a few older records
            // but misses none at or after the time asked for.
            let start = self.log_start_offset();
            return self
                .record_at_or_after(&bytes, timestamp_ms)
                .map(|found| {
                    Some(TimedOffset {
                        offset: found.offset.max(start),
                        ..found
                    })
                })
                .map_err(|error| plan.corrupt(position, error));
        }
        Ok(None)
    }

    /// The record with the largest timestamp, the first of them when several share it (Kafka's
    /// MAX_TIMESTAMP, KIP-734), or None when the log holds no record. Each segment knows its
    /// largest batch timestamp, so this is a lookup of that timestamp, which no record passes.
    pub async fn record_with_max_timestamp(&self) -> Result<Option<TimedOffset>> {
        let max = {
            let state = self.shared.state.borrow();
            state
                .segments
                .values()
                .filter(|segment| !segment.is_empty())
                .map(|segment| segment.max_timestamp)
                .max()
        };
        match max {
            Some(max) => self.record_for_timestamp(max).await,
            None => Ok(None),
        }
    }

    /// The first record of `bytes` (one whole batch whose largest timestamp is at or after
    /// `timestamp_ms`) whose timestamp is at or after it, with its timestamp: Kafka answers with
    /// the record, not the batch. With LogAppendTime every record has the batch's time, so the
    /// batch's first record is the one. The batch is checked under the append cap before it is
    /// inflated, like any batch on append: what is on disk is not trusted.
    fn record_at_or_after(
        &self,
        bytes: &[u8],
        timestamp_ms: i64,
    ) -> std::result::Result<TimedOffset, batch::BatchError> {
        let header = batch::header(bytes)?;
        // The batch's start, with the batch's largest time (at or after the one asked for).
        let start = TimedOffset {
            offset: u64::try_from(header.base_offset.get()).unwrap_or(0),
            timestamp_ms: header.max_timestamp.get(),
        };
        if header.attributes.get() & batch::ATTRIBUTE_LOG_APPEND_TIME != 0 {
            return Ok(start);
        }
        let limits = self.config().append_limits();
        let mut inflate_budget = limits.decompressed_bytes_max;
        // A batch this broker would not take today (older data, or damage the read did not meet)
        // is answered at its start, which holds the time too; it is never inflated unchecked.
        if batch::validate_append(bytes, &limits, &mut inflate_budget).is_err() {
            return Ok(start);
        }
        let Ok(records) = batch::records::decode(bytes) else {
            return Ok(start);
        };
        let first = records
            .iter()
            .find(|stored| stored.record.timestamp_ms >= timestamp_ms)
            .and_then(|stored| {
                Some(TimedOffset {
                    offset: u64::try_from(stored.offset).ok()?,
                    timestamp_ms: stored.record.timestamp_ms,
                })
            });
        Ok(first.unwrap_or(start))
    }

    /// A read handle on the segment at `base_offset`, or None if retention deleted it.
    pub(super) async fn segment_file(&self, base_offset: u64) -> Result<Option<File>> {
        {
            let mut state = self.shared.state.borrow_mut();
            if state.segments.keys().next_back() == Some(&base_offset) {
                return Ok(Some(state.active.read.clone()));
            }
            if let Some(index) = state
                .read_files
                .iter()
                .position(|(base, _)| *base == base_offset)
            {
                let entry = state.read_files.remove(index);
                let file = entry.1.clone();
                state.read_files.push(entry);
                return Ok(Some(file));
            }
        }
        let Some(file) = self.shared.store.open_read(base_offset).await? else {
            return Ok(None);
        };
        let mut state = self.shared.state.borrow_mut();
        if !state.segments.contains_key(&base_offset) {
            return Ok(None);
        }
        state.read_files.push((base_offset, file.clone()));
        if state.read_files.len() > self.shared.config().open_segment_files_max {
            state.read_files.remove(0);
        }
        Ok(Some(file))
    }
}
