//! Damage found inside sealed segments, and how reads and checks step over it.
//!
//! A sealed segment was fdatasynced before the next one got data, so damage in it is damage at
//! rest (a flipped bit, a bad sector, a careless hand), not a torn write. Cutting the log there
//! would throw away every intact batch after it and, worse, hand their offsets out again. So the
//! damage is isolated instead: the bytes from the first bad batch to the next batch that checks
//! out whole (or to the end of the file) become one `DamagedRange`, logged with its byte and
//! offset range, counted in metrics, and skipped by reads. Offsets in it are never reused.
//!
//! The next good batch is found by `resync`: every byte position after the damage is a candidate,
//! filtered by the header (magic 2, a sane length, an offset at or after the one due), and only a
//! candidate that passes is read whole and checked against its CRC.

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;

use crate::batch::{self, BatchInfo, HEADER_BYTES};

/// How much of the file `resync` looks at per read.
const RESYNC_WINDOW_BYTES: usize = 1 << 20;

/// A run of unreadable bytes in one segment, and the offsets lost with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedRange {
    pub segment_base_offset: u64,
    /// First damaged byte in the segment's data file.
    pub start_byte: u64,
    /// One past the last damaged byte: where the next good batch starts, or the file's end.
    pub end_byte: u64,
    /// The first offset the damage took (the one due after the last good batch).
    pub first_offset: u64,
    /// The first offset after the damage: the next good batch's, or the next segment's base.
    /// `None` while it is not known yet (damage runs to the end of the file).
    pub end_offset: Option<u64>,
    pub reason: String,
}

impl DamagedRange {
    pub fn bytes(&self) -> u64 {
        self.end_byte - self.start_byte
    }

    pub fn contains_byte(&self, position: u64) -> bool {
        self.start_byte <= position && position < self.end_byte
    }
}

impl std::fmt::Display for DamagedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let end_offset = self
            .end_offset
            .map_or("?".to_string(), |end| end.to_string());
        write!(
            f,
            "segment {} bytes {}..{} ({} bytes), offsets {}..{}: {}",
            self.segment_base_offset,
            self.start_byte,
            self.end_byte,
            self.bytes(),
            self.first_offset,
            end_offset,
            self.reason
        )
    }
}

/// Finds the first whole, CRC-valid batch that starts after `from` (exclusive of `from` itself)
/// in `file` of `data_bytes`, whose base offset is at least `offset_min` and within 2^32 of the
/// segment's `base_offset`. Returns its position and what it holds.
pub fn resync(
    file: &fs::File,
    from: u64,
    data_bytes: u64,
    offset_min: u64,
    base_offset: u64,
) -> io::Result<Option<(u64, BatchInfo)>> {
    let mut window_start = from.saturating_add(1);
    while window_start.saturating_add(HEADER_BYTES as u64) <= data_bytes {
        let length = (data_bytes - window_start).min(RESYNC_WINDOW_BYTES as u64) as usize;
        let mut window = vec![0u8; length];
        file.read_exact_at(&mut window, window_start)?;
        let last_candidate = length.saturating_sub(HEADER_BYTES);
        for at in 0..=last_candidate {
            let position = window_start + at as u64;
            let Some(size) = plausible_header(&window[at..], position, data_bytes, offset_min)
            else {
                continue;
            };
            let mut whole = vec![0u8; size];
            file.read_exact_at(&mut whole, position)?;
            let Ok(info) = batch::validate(&whole, batch::Limits::UNLIMITED) else {
                continue;
            };
            let in_segment = (info.last_offset as u64).saturating_sub(base_offset) < 1 << 32;
            if in_segment {
                return Ok(Some((position, info)));
            }
        }
        // Candidates past `last_candidate` start in the next window.
        window_start += (last_candidate + 1) as u64;
    }
    Ok(None)
}

/// The size of the batch that may start at `bytes` (at `position` of a file of `data_bytes`),
/// if its header looks like one ringmq wrote: magic 2, a length that fits the file, an offset
/// not before `offset_min`, consistent record counts.
fn plausible_header(
    bytes: &[u8],
    position: u64,
    data_bytes: u64,
    offset_min: u64,
) -> Option<usize> {
    let header = batch::header(bytes).ok()?;
    if header.magic != batch::MAGIC_V2 {
        return None;
    }
    let size = batch::framed_size(bytes).ok()?;
    if size as u64 > data_bytes - position {
        return None;
    }
    let base = header.base_offset.get();
    let count = header.records_count.get();
    let plausible = base >= 0
        && base as u64 >= offset_min
        && count > 0
        && header.last_offset_delta.get() == count - 1;
    plausible.then_some(size)
}

/// Walks every batch of one segment file read-only, from its start: each whole, CRC-valid batch
/// whose offset follows its predecessor goes to `on_batch(position, info, bytes)`; each run of
/// damage becomes one range (from the first bad byte to the next good batch, or the file's end).
/// Returns the ranges and the offset after the last good batch. Zeros to the end of the file are
/// O_DIRECT padding, not damage.
pub fn scan_file(
    file: &fs::File,
    base_offset: u64,
    mut on_batch: impl FnMut(u64, &BatchInfo, &[u8]) -> io::Result<()>,
) -> io::Result<(Vec<DamagedRange>, u64)> {
    let data_bytes = file.metadata()?.len();
    let mut ranges = Vec::new();
    let mut position = 0u64;
    let mut next_offset = base_offset;
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut buffer = Vec::new();
    while position < data_bytes {
        let outcome = next_batch(&mut reader, &mut buffer, position, data_bytes, next_offset)?;
        let reason = match outcome {
            Ok(info) => {
                on_batch(position, &info, &buffer)?;
                position += info.size_bytes as u64;
                next_offset = info.last_offset as u64 + 1;
                continue;
            }
            Err(reason) => reason,
        };
        if zeros_to_end(file, position, data_bytes)? {
            break;
        }
        let found = resync(file, position, data_bytes, next_offset, base_offset)?;
        let (end_byte, end_offset) = match &found {
            Some((at, info)) => (*at, Some(info.base_offset as u64)),
            None => (data_bytes, None),
        };
        ranges.push(DamagedRange {
            segment_base_offset: base_offset,
            start_byte: position,
            end_byte,
            first_offset: next_offset,
            end_offset,
            reason,
        });
        let Some((at, info)) = found else { break };
        position = at;
        next_offset = info.base_offset as u64;
        io::Seek::seek(&mut reader, io::SeekFrom::Start(position))?;
    }
    Ok((ranges, next_offset))
}

/// Reads the batch at `position` (the reader stands there) into `buffer` and checks it whole.
/// The outer error is I/O; the inner one says why the bytes there are no good batch.
fn next_batch(
    reader: &mut impl io::Read,
    buffer: &mut Vec<u8>,
    position: u64,
    data_bytes: u64,
    next_offset: u64,
) -> io::Result<Result<BatchInfo, String>> {
    let remaining = data_bytes - position;
    if remaining < batch::LOG_OVERHEAD_BYTES as u64 {
        return Ok(Err(format!(
            "{remaining} trailing bytes, less than a batch header"
        )));
    }
    buffer.resize(batch::LOG_OVERHEAD_BYTES, 0);
    reader.read_exact(buffer)?;
    let size = match batch::framed_size(buffer) {
        Ok(size) if size as u64 <= remaining => size,
        Ok(size) => {
            return Ok(Err(format!(
                "torn batch: {size} bytes declared, {remaining} present"
            )));
        }
        Err(error) => return Ok(Err(error.to_string())),
    };
    buffer.resize(size, 0);
    reader.read_exact(&mut buffer[batch::LOG_OVERHEAD_BYTES..])?;
    let info = match batch::validate(buffer, batch::Limits::UNLIMITED) {
        Ok(info) => info,
        Err(error) => return Ok(Err(error.to_string())),
    };
    if info.base_offset < 0 || info.base_offset as u64 != next_offset {
        return Ok(Err(format!(
            "offset {} where {next_offset} was due",
            info.base_offset
        )));
    }
    Ok(Ok(info))
}

fn zeros_to_end(file: &fs::File, position: u64, data_bytes: u64) -> io::Result<bool> {
    let mut at = position;
    let mut chunk = vec![0u8; (data_bytes - position).min(1 << 16) as usize];
    while at < data_bytes {
        let length = (data_bytes - at).min(chunk.len() as u64) as usize;
        file.read_exact_at(&mut chunk[..length], at)?;
        if chunk[..length].iter().any(|byte| *byte != 0) {
            return Ok(false);
        }
        at += length as u64;
    }
    Ok(true)
}

/// The damaged ranges of a partition, by segment, with their totals for metrics.
#[derive(Clone, Debug, Default)]
pub struct DamageMap {
    by_segment: std::collections::BTreeMap<u64, Vec<DamagedRange>>,
    /// Sealed segments checked whole since the log opened: a read failure there is not news.
    verified: std::collections::BTreeSet<u64>,
}

impl DamageMap {
    pub fn add(&mut self, range: DamagedRange) {
        let ranges = self
            .by_segment
            .entry(range.segment_base_offset)
            .or_default();
        if !ranges.contains(&range) {
            ranges.push(range);
            ranges.sort_by_key(|range| range.start_byte);
        }
    }

    /// Gives the range of `base_offset` that runs to the end of its file the offset where the
    /// data continues (the next segment's base). Returns whether there was such a range.
    pub fn close_open_range(&mut self, base_offset: u64, end_offset: u64) -> bool {
        let open = self
            .by_segment
            .get_mut(&base_offset)
            .and_then(|ranges| ranges.iter_mut().find(|range| range.end_offset.is_none()));
        match open {
            Some(range) => {
                range.end_offset = Some(end_offset);
                true
            }
            None => false,
        }
    }

    /// The byte ranges to skip in the segment at `base_offset`, in file order.
    pub fn skips(&self, base_offset: u64) -> Vec<(u64, u64)> {
        self.by_segment
            .get(&base_offset)
            .map(|ranges| ranges.iter().map(|r| (r.start_byte, r.end_byte)).collect())
            .unwrap_or_default()
    }

    pub fn is_verified(&self, base_offset: u64) -> bool {
        self.verified.contains(&base_offset)
    }

    pub fn mark_verified(&mut self, base_offset: u64) {
        self.verified.insert(base_offset);
    }

    /// Forgets a segment's damage (retention deleted it).
    pub fn remove_segment(&mut self, base_offset: u64) {
        self.by_segment.remove(&base_offset);
        self.verified.remove(&base_offset);
    }

    pub fn ranges(&self) -> impl Iterator<Item = &DamagedRange> {
        self.by_segment.values().flatten()
    }

    pub fn total_bytes(&self) -> u64 {
        self.ranges().map(DamagedRange::bytes).sum()
    }

    pub fn count(&self) -> usize {
        self.ranges().count()
    }
}

/// Where a reader at `position` should continue: `position` itself, or the end of the damaged
/// range it falls in.
pub fn skip_damage(skips: &[(u64, u64)], position: u64) -> u64 {
    skips
        .iter()
        .find(|(start, end)| *start <= position && position < *end)
        .map_or(position, |(_, end)| *end)
}

/// The start of the first damaged range at or after `position`, if any: a read stops there.
pub fn next_damage(skips: &[(u64, u64)], position: u64) -> Option<u64> {
    skips
        .iter()
        .map(|(start, _)| *start)
        .filter(|start| *start >= position)
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};

    fn batch_at(offset: i64, value: &[u8]) -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(Record::new(1, None, Some(value)));
        builder.push(Record::new(2, None, Some(value)));
        let mut bytes = builder.build().to_vec();
        batch::set_base_offset(&mut bytes, offset);
        bytes
    }

    #[test]
    fn resync_finds_the_next_whole_batch_after_damage() {
        let mut data = Vec::new();
        for n in 0..20 {
            data.extend(batch_at(n * 2, &vec![b'v'; 30 + n as usize]));
        }
        let starts: Vec<usize> = batch::iter_framed(&data).map(|(at, _)| at).collect();
        // Damage the 5th batch's length field and the 6th batch's body.
        data[starts[5] + 8..starts[5] + 12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        data[starts[6] + 70] ^= 0x40;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        fs::write(&path, &data).unwrap();
        let file = fs::File::open(&path).unwrap();
        let found = resync(&file, starts[5] as u64, data.len() as u64, 10, 0)
            .unwrap()
            .unwrap();
        assert_eq!(found.0, starts[7] as u64);
        assert_eq!(found.1.base_offset, 14);
        // Nothing whole after the last batch.
        let last = *starts.last().unwrap() as u64;
        assert!(
            resync(&file, last, data.len() as u64, 0, 0)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn skips_jump_over_ranges() {
        let skips = [(100, 200), (300, 350)];
        assert_eq!(skip_damage(&skips, 50), 50);
        assert_eq!(skip_damage(&skips, 100), 200);
        assert_eq!(skip_damage(&skips, 349), 350);
        assert_eq!(next_damage(&skips, 150), Some(300));
        assert_eq!(next_damage(&skips, 351), None);
    }
}
