//! Deduplication at append: a record whose `x-dedup-id` header names an id already appended to
//! the partition within the topic's `dedup_window_ms` is dropped, and its produce is answered
//! with the offset of the first copy (SQS's MessageDeduplicationId, done where offsets are given).
//!
//! The ids live with the log, on its shard, beside idempotent producers' state, because only
//! there are "already appended" and "the next offset" decided in one step with no `.await`
//! between them: two produces racing with one id cannot both pass. Ids are kept as their 128-bit
//! xxh3 (a fixed 16 bytes whatever the producer sent; a collision is about as likely as a disk
//! returning a wrong block undetected), in append order, at most `dedup_ids_max` per partition:
//! the oldest are evicted first, and those past the window are dropped as appends come.
//!
//! Restart: the ids are rebuilt at open from the log itself, reading back its tail while its
//! segments are young enough to hold ids in the window, at most `dedup_scan_bytes_max` bytes,
//! with each id's time taken from its batch's timestamp. Only partitions that ever held an id
//! are read: the first id appended leaves an empty marker file (`dedup-ids`) in the
//! partition's directory, made durable on the blocking pool before that append is answered
//! (an append racing it in that millisecond may be answered first), so a broker with thousands
//! of partitions and no ids does not read their tails at every start. The log is the only record of what was
//! appended, so the rebuilt state can never disagree with it (a checkpoint file would have to
//! be reconciled with the log's tail after a crash anyway, which is this same scan). What the
//! scan costs is bounded by that setting and only batches that contain the header's name are
//! parsed; what it can miss is an id appended more than `dedup_scan_bytes_max` before the end of
//! the log, or one whose producer stamped a time far in the past.

use std::collections::{HashMap, VecDeque};
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use bytes::Bytes;

use super::config::LogConfig;
use super::error::Result;
use super::producer_state::Outcome;
use super::segment::{self, DATA_SUFFIX, Segment};
use crate::batch::{self, AppendLimits, HeaderSearch, Limits};

/// The header a producer sets to a message's deduplication id.
pub const DEDUP_HEADER: &str = "x-dedup-id";

/// The marker of a partition whose records ever carried a deduplication id.
pub const MARKER_FILE: &str = "dedup-ids";

/// Whether the partition in `dir` ever held a deduplication id. Blocking.
pub fn marked(dir: &Path) -> bool {
    dir.join(MARKER_FILE).exists()
}

/// Leaves the marker in `dir`, durably. Blocking: it runs on the blocking pool.
pub fn mark(dir: &Path) -> std::io::Result<()> {
    fs::File::create(dir.join(MARKER_FILE))?.sync_all()?;
    super::dirsync::sync_dir(dir)
}

/// What one inflated batch may take while the ids are rebuilt at open.
const SCAN_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// A deduplication id as kept: the xxh3-128 of the header's value.
pub type DedupId = u128;

pub fn dedup_id(value: &[u8]) -> DedupId {
    xxhash_rust::xxh3::xxh3_128(value)
}

/// One id's first copy.
struct Entry {
    offset: u64,
    appended_ms: i64,
    /// The outcome of the append that carries it (None: known on disk).
    outcome: Option<Outcome>,
}

/// The ids appended to one partition within the window.
#[derive(Default)]
pub struct DedupIds {
    by_id: HashMap<DedupId, Entry>,
    /// (id, offset) in append order, so in offset order: expiry and eviction take the front, a
    /// failed write's rewind the back. An id appended again after its window has a stale
    /// element here, recognised by its offset.
    order: VecDeque<(DedupId, u64)>,
}

/// The first copy of a duplicate: its offset and, while its append is queued, its outcome.
pub struct FirstCopy {
    pub offset: u64,
    pub outcome: Option<Outcome>,
}

impl DedupIds {
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The first copy of `id` if it was appended within the window before `now_ms`.
    pub fn first_copy(&self, id: DedupId, now_ms: i64, window_ms: u64) -> Option<FirstCopy> {
        let entry = self.by_id.get(&id)?;
        within(entry.appended_ms, now_ms, window_ms).then(|| FirstCopy {
            offset: entry.offset,
            outcome: entry.outcome.clone(),
        })
    }

    /// Remembers `id` as appended at `offset` (after every id at a lower offset), evicting the
    /// oldest past `ids_max`.
    pub fn record(
        &mut self,
        id: DedupId,
        offset: u64,
        appended_ms: i64,
        outcome: Option<&Outcome>,
        ids_max: usize,
    ) {
        debug_assert!(
            self.order.back().is_none_or(|(_, last)| *last < offset),
            "ids are recorded in offset order"
        );
        if ids_max == 0 {
            return;
        }
        let entry = Entry {
            offset,
            appended_ms,
            outcome: outcome.cloned(),
        };
        self.by_id.insert(id, entry);
        self.order.push_back((id, offset));
        while self.by_id.len() > ids_max {
            self.pop_front();
        }
        assert!(self.by_id.len() <= ids_max);
    }

    /// Drops the ids appended more than the window before `now_ms` (and stale order elements).
    pub fn expire(&mut self, now_ms: i64, window_ms: u64) {
        while let Some((id, offset)) = self.order.front().copied() {
            let expired = self.by_id.get(&id).is_none_or(|entry| {
                entry.offset != offset || !within(entry.appended_ms, now_ms, window_ms)
            });
            if !expired {
                break;
            }
            self.pop_front();
        }
    }

    /// Forgets the ids at `offset` and above: their write failed and the offsets are void, so a
    /// retry of those messages must be appended, not answered as a duplicate.
    pub fn forget_from(&mut self, offset: u64) {
        while let Some((id, at)) = self.order.back().copied() {
            if at < offset {
                break;
            }
            self.order.pop_back();
            if self.by_id.get(&id).is_some_and(|entry| entry.offset == at) {
                self.by_id.remove(&id);
            }
        }
    }

    fn pop_front(&mut self) {
        if let Some((id, offset)) = self.order.pop_front()
            && self
                .by_id
                .get(&id)
                .is_some_and(|entry| entry.offset == offset)
        {
            self.by_id.remove(&id);
        }
    }

    /// The ids rebuilt from `found` (id, offset, time; in any order), those within the window.
    pub fn rebuilt(mut found: Vec<(DedupId, u64, i64)>, config: &LogConfig, now_ms: i64) -> Self {
        found.sort_by_key(|(_, offset, _)| *offset);
        let mut ids = DedupIds::default();
        for (id, offset, appended_ms) in found {
            if within(appended_ms, now_ms, config.dedup_window_ms) {
                ids.record(
                    id,
                    offset,
                    appended_ms.min(now_ms),
                    None,
                    config.dedup_ids_max,
                );
            }
        }
        ids
    }
}

fn within(appended_ms: i64, now_ms: i64, window_ms: u64) -> bool {
    window_ms > 0
        && now_ms.saturating_sub(appended_ms) < i64::try_from(window_ms).unwrap_or(i64::MAX)
}

/// The ids in the log's tail that may still be in the window at `now_ms`: (id, offset, its
/// batch's timestamp). Blocking (it runs on the blocking pool at open); reads at most
/// `dedup_scan_bytes_max` (plus up to one index interval, to start on a batch boundary), newest
/// segments first, stopping at the first segment wholly older than the window.
pub fn scan(
    dir: &Path,
    segments: &[&Segment],
    config: &LogConfig,
    now_ms: i64,
) -> Result<Vec<(DedupId, u64, i64)>> {
    let mut found = Vec::new();
    if config.dedup_window_ms == 0 || config.dedup_ids_max == 0 || !marked(dir) {
        return Ok(found);
    }
    let horizon = now_ms.saturating_sub(i64::try_from(config.dedup_window_ms).unwrap_or(i64::MAX));
    let mut budget = config.dedup_scan_bytes_max;
    for segment in segments.iter().rev() {
        if budget == 0 || (segment.max_timestamp >= 0 && segment.max_timestamp < horizon) {
            break;
        }
        if segment.is_empty() {
            continue;
        }
        let from_at_least = segment.size_bytes.saturating_sub(budget);
        let start = segment
            .index
            .entries()
            .map(|(_, position, _)| u64::from(position))
            .take_while(|position| *position <= from_at_least)
            .last()
            .unwrap_or(0);
        let length = segment.size_bytes.saturating_sub(start);
        budget = budget.saturating_sub(length);
        let mut file = fs::File::open(segment::file_path(dir, segment.base_offset, DATA_SUFFIX))?;
        file.seek(SeekFrom::Start(start))?;
        let mut bytes = Vec::new();
        file.take(length).read_to_end(&mut bytes)?;
        ids_in(&bytes, horizon, &mut found);
    }
    Ok(found)
}

/// The ids in the whole batches of `bytes` whose timestamp is at or past `horizon`. A batch that
/// fails its check (damage) is skipped: it is unreadable to consumers too.
fn ids_in(bytes: &[u8], horizon: i64, found: &mut Vec<(DedupId, u64, i64)>) {
    let limits = AppendLimits {
        batch: Limits::UNLIMITED,
        decompressed_bytes_max: SCAN_DECOMPRESSED_BYTES_MAX,
    };
    for (_, framed) in batch::iter_framed(bytes) {
        let Ok(head) = batch::header(framed) else {
            continue;
        };
        if head.max_timestamp.get() < horizon {
            continue;
        }
        let mut search = HeaderSearch::new(DEDUP_HEADER.as_bytes());
        let mut budget = SCAN_DECOMPRESSED_BYTES_MAX;
        let Ok(info) =
            batch::validate_append_finding(framed, &limits, &mut budget, Some(&mut search))
        else {
            continue;
        };
        for (index, value) in search.found {
            let offset = info.base_offset.saturating_add(i64::from(index));
            found.push((dedup_id(&value), offset.max(0) as u64, info.max_timestamp));
        }
    }
}

/// The ids an append carries, found while its batches were checked: (batch index, record index
/// in that batch, id).
pub type FoundIds = Vec<(usize, i32, DedupId)>;

/// Hashes what a search of batch `batch_index` found into `ids`.
pub fn gather(ids: &mut FoundIds, batch_index: usize, found: Vec<(i32, Bytes)>) {
    ids.extend(
        found
            .into_iter()
            .map(|(record, value)| (batch_index, record, dedup_id(&value))),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_expire_with_the_window_and_the_oldest_go_first_past_the_bound() {
        let mut ids = DedupIds::default();
        for n in 0..5u64 {
            ids.record(u128::from(n), 10 + n, 1_000 + n as i64, None, 3);
        }
        assert_eq!(ids.len(), 3);
        assert!(ids.first_copy(0, 1_005, 100).is_none(), "evicted");
        assert_eq!(ids.first_copy(4, 1_005, 100).unwrap().offset, 14);
        assert!(ids.first_copy(4, 1_104, 100).is_none(), "past the window");
        assert!(ids.first_copy(4, 1_005, 0).is_none(), "window 0: off");
        ids.expire(1_103, 100);
        assert_eq!(ids.len(), 1, "ids 2 and 3 expired");
        ids.forget_from(14);
        assert!(ids.is_empty());
    }

    #[test]
    fn an_id_appended_again_is_not_removed_by_its_stale_element() {
        let mut ids = DedupIds::default();
        ids.record(7, 1, 0, None, 10);
        ids.record(7, 2, 500, None, 10);
        ids.expire(550, 100);
        assert_eq!(ids.first_copy(7, 550, 100).unwrap().offset, 2);
        ids.forget_from(2);
        assert!(ids.first_copy(7, 550, 100).is_none());
    }
}
