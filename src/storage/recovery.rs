//! Opening a partition's segments after any stop, clean or not.
//!
//! Only the active (last) segment can hold a torn write: a segment is fdatasynced before the next
//! one gets data. So the active segment's damaged tail is cut (those offsets were never
//! acknowledged as fsynced), while damage in a sealed segment is damage at rest: it is isolated
//! (see `damage`), and every later segment is kept, so no intact record is destroyed and no
//! offset is handed out twice. A gap between segments (a missing file) is recorded the same way.

use std::collections::BTreeMap;
use std::path::Path;

use tracing::{info, warn};

use super::config::LogConfig;
use super::damage::{DamageMap, DamagedRange};
use super::error::Result;
use super::segment::{self, RecoverMode, Segment};
use super::segment_store::SegmentStore;

/// Checks every segment in `dir`: keeps every sealed segment (isolating its damage), cuts the
/// active segment's damaged tail, and returns the segments with the damage found.
pub fn recover_segments(
    store: &SegmentStore,
    config: &LogConfig,
) -> Result<(BTreeMap<u64, Segment>, DamageMap)> {
    let dir = store.dir();
    let bases = store.list()?;
    let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
    let mut damage = DamageMap::default();
    for (position, &base) in bases.iter().enumerate() {
        if let Some(previous) = segments.values().next_back() {
            if previous.next_offset > base {
                warn!(dir = %dir.display(), segment = base, expected = previous.next_offset, "segment overlaps its predecessor; dropping it and every later segment");
                for &dropped in &bases[position..] {
                    segment::remove_files(dir, dropped)?;
                }
                break;
            }
            if previous.next_offset < base {
                note_gap(dir, previous, base, &mut damage);
            }
        }
        let sealed = position + 1 < bases.len();
        let mode = RecoverMode {
            sealed,
            full_check: sealed && config.verify_on_start,
        };
        let recovered = segment::recover(dir, base, config.index_interval_bytes, mode)?;
        if mode.full_check {
            damage.mark_verified(base);
        }
        if recovered.index_rebuilt {
            info!(dir = %dir.display(), segment = base, "rebuilt the segment's indexes from its data");
        }
        if let Some((bytes, reason)) = &recovered.damage {
            warn!(dir = %dir.display(), segment = base, cut_bytes = bytes, valid_bytes = recovered.segment.size_bytes, next_offset = recovered.segment.next_offset, %reason, "cut a damaged tail from the active segment");
        }
        for range in recovered.damaged {
            warn!(dir = %dir.display(), segment = base, start_byte = range.start_byte, end_byte = range.end_byte, first_offset = range.first_offset, end_offset = ?range.end_offset, reason = %range.reason, "damage in a sealed segment: isolated, reads skip it, later data is kept");
            damage.add(range);
        }
        segments.insert(base, recovered.segment);
    }
    if segments.is_empty() {
        segment::create_files(dir, 0)?;
        segments.insert(0, Segment::empty(0));
    }
    Ok((segments, damage))
}

/// Offsets between `previous`'s end and the next segment's `base` have no data: either the
/// previous segment's damage ran to its end (its range now knows where it ends), or a file is
/// missing (a range of no bytes records the lost offsets).
fn note_gap(dir: &Path, previous: &Segment, base: u64, damage: &mut DamageMap) {
    let tail = DamagedRange {
        segment_base_offset: previous.base_offset,
        start_byte: previous.size_bytes,
        end_byte: previous.size_bytes,
        first_offset: previous.next_offset,
        end_offset: Some(base),
        reason: "offsets missing between segments".to_string(),
    };
    if damage.close_open_range(previous.base_offset, base) {
        return;
    }
    warn!(dir = %dir.display(), segment = base, first_offset = tail.first_offset, end_offset = base, "offsets missing before this segment; reads skip to it");
    damage.add(tail);
}
