//! The deduplication step of an append (see `storage::dedup` for the ids and why they live
//! here): which records repeat an id seen within the window, and the append rebuilt without
//! them, its other records kept in order.
//!
//! A batch losing records is re-encoded (same codec, producer fields and attributes) because a
//! batch's records must have offset deltas 0, 1, 2, ...: it is the one case where the log stores
//! other bytes than the producer sent. An idempotent producer's sequence numbers still count the
//! records it sent (its state is recorded from the original batch, and the rebuilt batch ends
//! at the original's last sequence, so the state read back at a restart agrees), so its next
//! batch follows.

use bytes::{BufMut, BytesMut};

use crate::batch::{self, BatchInfo, Limits};
use crate::storage::dedup::{DedupId, DedupIds, FirstCopy, FoundIds};
use crate::storage::error::Result;

/// What the ids of one append decided.
pub(super) struct Screened {
    /// The record indexes to drop, per batch of the append, sorted.
    pub(super) drops: Vec<Vec<i32>>,
    pub(super) dropped: usize,
    /// The first copies of the records dropped as repeats of earlier appends, in append order.
    pub(super) first_copies: Vec<FirstCopy>,
    /// The ids appended now: (batch, record index in the batch as sent, id).
    pub(super) kept: Vec<(usize, i32, DedupId)>,
}

/// Sorts the append's ids into repeats (of an earlier append within the window, or of a record
/// earlier in this one) and first copies.
pub(super) fn screen(
    dedup: &DedupIds,
    ids: &FoundIds,
    batches: usize,
    now_ms: i64,
    window_ms: u64,
) -> Screened {
    let mut screened = Screened {
        drops: vec![Vec::new(); batches],
        dropped: 0,
        first_copies: Vec::new(),
        kept: Vec::with_capacity(ids.len()),
    };
    let mut here = std::collections::HashSet::with_capacity(ids.len());
    for &(batch, record, id) in ids {
        let earlier = dedup.first_copy(id, now_ms, window_ms);
        let repeat = earlier.is_some() || here.contains(&id);
        if let Some(first) = earlier {
            screened.first_copies.push(first);
        }
        if repeat {
            if let Some(drops) = screened.drops.get_mut(batch) {
                drops.push(record);
                screened.dropped += 1;
            }
        } else if window_ms > 0 {
            here.insert(id);
            screened.kept.push((batch, record, id));
        }
    }
    for drops in &mut screened.drops {
        drops.sort_unstable();
        drops.dedup();
    }
    screened
}

/// The append rebuilt without the dropped records: its bytes, its batches, and for each batch
/// as sent the index of its rebuilt batch (None: every record dropped).
pub(super) fn rebuild(
    records: &[u8],
    batches: &[BatchInfo],
    drops: &[Vec<i32>],
    decompressed_bytes_max: usize,
) -> Result<(BytesMut, Vec<BatchInfo>, Vec<Option<usize>>)> {
    let mut bytes = BytesMut::with_capacity(records.len());
    let mut rebuilt = Vec::with_capacity(batches.len());
    let mut map = Vec::with_capacity(batches.len());
    let mut position = 0;
    for (index, info) in batches.iter().enumerate() {
        let sent = records
            .get(position..position + info.size_bytes)
            .ok_or(batch::BatchError::BadRecord("batch runs past the append"))?;
        position += info.size_bytes;
        let dropped = drops.get(index).map_or(&[][..], Vec::as_slice);
        let kept = if dropped.is_empty() {
            Some(bytes::Bytes::copy_from_slice(sent))
        } else {
            batch::without_records(sent, dropped, decompressed_bytes_max)?
        };
        match kept {
            None => map.push(None),
            Some(kept) => {
                let info = batch::validate(&kept, Limits::UNLIMITED)?;
                map.push(Some(rebuilt.len()));
                rebuilt.push(info);
                bytes.put_slice(&kept);
            }
        }
    }
    Ok((bytes, rebuilt, map))
}

/// The index in its rebuilt batch of record `record` of a batch as sent, `drops` its dropped
/// indexes (sorted); None if it was dropped itself.
pub(super) fn rebuilt_index(record: i32, drops: &[i32]) -> Option<i64> {
    let before = drops.partition_point(|dropped| *dropped < record);
    if drops.get(before) == Some(&record) {
        return None;
    }
    Some(i64::from(record) - before as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_within_one_append_are_dropped_too() {
        let ids = vec![(0, 0, 1), (0, 1, 2), (1, 0, 1), (1, 2, 3)];
        let screened = screen(&DedupIds::default(), &ids, 2, 1_000, 100);
        assert_eq!(screened.drops, vec![vec![], vec![0]]);
        assert_eq!(screened.dropped, 1);
        assert!(screened.first_copies.is_empty());
        assert_eq!(screened.kept.len(), 3);
        assert_eq!(rebuilt_index(2, &[0]), Some(1));
        assert_eq!(rebuilt_index(0, &[0]), None);
        assert_eq!(rebuilt_index(5, &[1, 3]), Some(3));
    }
}
