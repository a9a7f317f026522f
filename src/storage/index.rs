//! The sparse indexes of one segment: an offset index and a time index, one entry in each per
//! `index_interval_bytes` of batches, both pointing at a batch's first byte.
//!
//! The offset index maps (offset - segment base) to a byte position; the time index holds, for the
//! same batch, the largest timestamp of every batch *before* it. "Largest so far" is monotonic even
//! when producers' clocks are not, so a binary search finds where a scan by timestamp must start.
//! Index files are a cache of the data file: recovery checks them against it and rebuilds them
//! from the data when they disagree; they are never fsynced on the hot path.

use zerocopy::little_endian::{I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct OffsetEntry {
    pub relative_offset: U32,
    pub position: U32,
}

#[derive(
    FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug, PartialEq, Eq,
)]
#[repr(C)]
pub struct TimeEntry {
    pub max_timestamp_before: I64,
    pub relative_offset: U32,
    pub position: U32,
}

pub const OFFSET_ENTRY_BYTES: usize = size_of::<OffsetEntry>();
pub const TIME_ENTRY_BYTES: usize = size_of::<TimeEntry>();

/// Both indexes of one segment, in memory. Entries are strictly increasing in offset and position.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SparseIndex {
    offsets: Vec<OffsetEntry>,
    times: Vec<TimeEntry>,
}

impl SparseIndex {
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.offsets
            .last()
            .map(|entry| (entry.relative_offset.get(), entry.position.get()))
    }

    pub fn push(&mut self, relative_offset: u32, position: u32, max_timestamp_before: i64) {
        if let Some((last_offset, last_position)) = self.last() {
            assert!(
                relative_offset > last_offset && position > last_position,
                "index goes forward"
            );
        }
        self.offsets.push(OffsetEntry {
            relative_offset: relative_offset.into(),
            position: position.into(),
        });
        self.times.push(TimeEntry {
            max_timestamp_before: max_timestamp_before.into(),
            relative_offset: relative_offset.into(),
            position: position.into(),
        });
    }

    /// The position of the last indexed batch starting at or before `relative_offset` (0 if none).
    pub fn position_for_offset(&self, relative_offset: u32) -> u32 {
        let after = self
            .offsets
            .partition_point(|entry| entry.relative_offset.get() <= relative_offset);
        after
            .checked_sub(1)
            .map_or(0, |index| self.offsets[index].position.get())
    }

    /// Where a scan for the first batch with a timestamp >= `timestamp` may start: every batch
    /// before the returned position is older.
    pub fn position_for_timestamp(&self, timestamp: i64) -> u32 {
        let after = self
            .times
            .partition_point(|entry| entry.max_timestamp_before.get() < timestamp);
        after
            .checked_sub(1)
            .map_or(0, |index| self.times[index].position.get())
    }

    /// The file bytes of entries `from..`, for appending to the two index files.
    pub fn encode_from(&self, from: usize) -> (Vec<u8>, Vec<u8>) {
        (
            self.offsets[from..].as_bytes().to_vec(),
            self.times[from..].as_bytes().to_vec(),
        )
    }

    /// Reads both index files' bytes, keeping the longest prefix that is well-formed: whole
    /// entries, the two files agreeing, strictly increasing, positions inside `data_bytes`.
    /// Returns the index and whether the files were kept whole.
    pub fn decode(offset_bytes: &[u8], time_bytes: &[u8], data_bytes: u64) -> (SparseIndex, bool) {
        let offsets = <[OffsetEntry]>::ref_from_prefix_with_elems(
            offset_bytes,
            offset_bytes.len() / OFFSET_ENTRY_BYTES,
        )
        .map(|(entries, _)| entries)
        .unwrap_or_default();
        let times = <[TimeEntry]>::ref_from_prefix_with_elems(
            time_bytes,
            time_bytes.len() / TIME_ENTRY_BYTES,
        )
        .map(|(entries, _)| entries)
        .unwrap_or_default();
        let mut index = SparseIndex::default();
        for (offset, time) in offsets.iter().zip(times) {
            let (relative_offset, position) = (offset.relative_offset.get(), offset.position.get());
            let forward = index
                .last()
                .is_none_or(|(o, p)| relative_offset > o && position > p);
            let agree =
                time.relative_offset.get() == relative_offset && time.position.get() == position;
            let monotonic_time = index.times.last().is_none_or(|last| {
                time.max_timestamp_before.get() >= last.max_timestamp_before.get()
            });
            if !forward || !agree || !monotonic_time || u64::from(position) >= data_bytes {
                break;
            }
            index.offsets.push(*offset);
            index.times.push(*time);
        }
        let whole = index.len() == offsets.len()
            && offsets.len() == times.len()
            && offset_bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES)
            && time_bytes.len().is_multiple_of(TIME_ENTRY_BYTES);
        (index, whole)
    }

    /// Drops every entry at or past `position` (the data was cut there).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .offsets
            .partition_point(|entry| u64::from(entry.position.get()) < position);
        self.offsets.truncate(keep);
        self.times.truncate(keep);
    }

    pub fn entries(&self) -> impl Iterator<Item = (u32, u32, i64)> + '_ {
        self.times.iter().map(|entry| {
            (
                entry.relative_offset.get(),
                entry.position.get(),
                entry.max_timestamp_before.get(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SparseIndex {
        let mut index = SparseIndex::default();
        index.push(10, 4096, 100);
        index.push(20, 8192, 250);
        index.push(30, 12288, 250);
        index
    }

    #[test]
    fn lookups_land_on_the_entry_at_or_before() {
        let index = sample();
        assert_eq!(index.position_for_offset(0), 0);
        assert_eq!(index.position_for_offset(10), 4096);
        assert_eq!(index.position_for_offset(19), 4096);
        assert_eq!(index.position_for_offset(1000), 12288);
        assert_eq!(index.position_for_timestamp(50), 0);
        assert_eq!(index.position_for_timestamp(101), 4096);
        assert_eq!(index.position_for_timestamp(250), 4096);
        assert_eq!(index.position_for_timestamp(251), 12288);
    }

    #[test]
    fn decode_keeps_the_valid_prefix() {
        let index = sample();
        let (offsets, times) = index.encode_from(0);
        assert_eq!(
            SparseIndex::decode(&offsets, &times, 1 << 20),
            (index.clone(), true)
        );
        // An entry pointing past the data, as after a torn data write, is dropped.
        let (cut, whole) = SparseIndex::decode(&offsets, &times, 10_000);
        assert!(!whole);
        assert_eq!(cut.len(), 2);
        // A torn entry at the end of a file is dropped.
        let (cut, whole) = SparseIndex::decode(&offsets[..offsets.len() - 3], &times, 1 << 20);
        assert!(!whole);
        assert_eq!(cut.len(), 2);
    }
}
