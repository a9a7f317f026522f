//! One segment of a partition log: a data file of batches laid end to end, named by its base
//! offset, with its two sparse index files beside it. This module knows the file names, the rule
//! for placing index entries, and how to check a segment against its files when the log opens.
//!
//! Recovery trusts nothing: it checks the index files, then every batch from the last trusted
//! index entry to the end of the data (CRC, framing, contiguous offsets), cuts the data at the
//! first damage, and rebuilds the indexes from the data whenever they disagree with it.

use std::fs;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::batch::{self, BatchInfo, LOG_OVERHEAD_BYTES};

use super::damage::{self, DamagedRange};
use super::dirsync;
use super::index::SparseIndex;

pub const DATA_SUFFIX: &str = "log";
pub const OFFSET_INDEX_SUFFIX: &str = "index";
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

pub fn file_path(dir: &Path, base_offset: u64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{suffix}"))
}

/// Base offsets of the segments in `dir`, ascending, from the data files' names.
pub fn list_base_offsets(dir: &Path) -> io::Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        match stem.parse::<u64>() {
            Ok(base) if stem.len() == 20 && stem.bytes().all(|byte| byte.is_ascii_digit()) => {
                bases.push(base);
            }
            _ => tracing::warn!(
                dir = %dir.display(),
                file = name,
                "skipping a segment file whose name is not a 20-digit base offset"
            ),
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// What the log knows of one segment in memory.
#[derive(Clone, Debug)]
pub struct Segment {
    pub base_offset: u64,
    pub size_bytes: u64,
    /// One past the last offset stored in this segment.
    pub next_offset: u64,
    /// The largest batch timestamp in the segment, -1 while it is empty.
    pub max_timestamp: i64,
    /// When this process opened or created the segment: its age for rolling, by the broker's
    /// clock (producers' timestamps can be wrong), restarting at each start of the broker.
    pub opened_at: Instant,
    pub index: SparseIndex,
    pub bytes_since_index_entry: u64,
}

impl Segment {
    pub fn empty(base_offset: u64) -> Segment {
        Segment {
            base_offset,
            size_bytes: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            opened_at: Instant::now(),
            index: SparseIndex::default(),
            bytes_since_index_entry: 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }

    /// Accounts for a batch written at the segment's end; adds an index entry where one is due.
    /// The rule is the same on the write path and in recovery, so a rebuilt index equals the
    /// index the writer made. A batch that does not follow on, or whose offsets or position do
    /// not fit the index's u32 fields, is refused (the write path rolls before such a batch, so
    /// there it is a bug; in recovery it is damage).
    pub fn push_batch(
        &mut self,
        info: &BatchInfo,
        index_interval_bytes: u64,
    ) -> Result<(), String> {
        self.check_follows(info)?;
        if self.bytes_since_index_entry >= index_interval_bytes {
            // Both fit u32: `check_follows` bounds the batch's last offset and the position.
            let relative = (self.next_offset - self.base_offset) as u32;
            self.index
                .push(relative, self.size_bytes as u32, self.max_timestamp);
            self.bytes_since_index_entry = 0;
        }
        self.account(info);
        Ok(())
    }

    /// Whether `info` can be the segment's next batch: it starts at `next_offset`, ends within
    /// u32 of the base offset, and starts below 4 GiB.
    fn check_follows(&self, info: &BatchInfo) -> Result<(), String> {
        let base = u64::try_from(info.base_offset).ok();
        if base != Some(self.next_offset) || info.last_offset < info.base_offset {
            return Err(format!(
                "batch at offsets {}..={} where {} was due",
                info.base_offset, info.last_offset, self.next_offset
            ));
        }
        let relative_last = (info.last_offset as u64) - self.base_offset;
        if relative_last > u64::from(u32::MAX) {
            return Err(format!(
                "batch ends {relative_last} offsets past the segment's base {}: beyond a segment's reach",
                self.base_offset
            ));
        }
        if self.size_bytes > u64::from(u32::MAX) {
            return Err(format!(
                "segment position {} is beyond 4 GiB",
                self.size_bytes
            ));
        }
        Ok(())
    }

    /// Whether a batch ending at `last_offset` keeps this segment within `offsets_max` of its
    /// base offset: the roll decision of the write path, per batch.
    pub fn fits_offsets(&self, last_offset: u64, offsets_max: u64) -> bool {
        last_offset.saturating_sub(self.base_offset) <= offsets_max
    }

    /// Grows the segment by one batch, without looking at the index.
    fn account(&mut self, info: &BatchInfo) {
        self.bytes_since_index_entry += info.size_bytes as u64;
        self.size_bytes += info.size_bytes as u64;
        self.next_offset = info.last_offset as u64 + 1;
        self.max_timestamp = self.max_timestamp.max(info.max_timestamp);
    }
}

/// What recovery did to one segment.
#[derive(Debug)]
pub struct Recovered {
    pub segment: Segment,
    /// Bytes cut from the end of the data file, and why; None if the data was whole.
    pub damage: Option<(u64, String)>,
    /// Damage isolated inside a sealed segment (never cut): reads skip these byte ranges.
    pub damaged: Vec<DamagedRange>,
    pub index_rebuilt: bool,
}

/// How recovery treats one segment.
#[derive(Clone, Copy, Debug)]
pub struct RecoverMode {
    /// A sealed segment (not the last): damage is isolated, never cut.
    pub sealed: bool,
    /// Check every batch from the start, not only those after the last index entry.
    pub full_check: bool,
}

/// Checks the segment at `base_offset` in `dir` against its files and repairs what it must.
/// The active segment's damaged tail is cut (it is a torn write); a sealed segment's damage is
/// isolated into `damaged` ranges and the intact batches after it are kept.
pub fn recover(
    dir: &Path,
    base_offset: u64,
    index_interval_bytes: u64,
    mode: RecoverMode,
) -> io::Result<Recovered> {
    let data_path = file_path(dir, base_offset, DATA_SUFFIX);
    let mut data = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&data_path)?;
    let data_bytes = data.metadata()?.len();
    let offset_bytes =
        fs::read(file_path(dir, base_offset, OFFSET_INDEX_SUFFIX)).unwrap_or_default();
    let time_bytes = fs::read(file_path(dir, base_offset, TIME_INDEX_SUFFIX)).unwrap_or_default();
    let (index, index_whole) = SparseIndex::decode(&offset_bytes, &time_bytes, data_bytes);

    let scan = if mode.full_check {
        None
    } else {
        resume_from_index(
            &mut data,
            data_bytes,
            base_offset,
            &index,
            index_interval_bytes,
        )?
    };
    let index_rebuilt = (scan.is_none() && !mode.full_check) || !index_whole;
    let (mut segment, damage) = match scan {
        Some(found) => found,
        None => {
            let mut segment = Segment::empty(base_offset);
            let outcome = scan_batches(
                &mut data,
                data_bytes,
                &mut segment,
                index_interval_bytes,
                false,
            )?;
            (segment, outcome)
        }
    };
    // Zeros to the end are O_DIRECT's padding of the last block (a batch is never all zeros):
    // cut them, but they are no damage.
    let damage = match damage {
        Some((position, _)) if zeros_from(&mut data, position)? => {
            data.set_len(position)?;
            data.sync_all()?;
            None
        }
        other => other,
    };
    let mut damaged = Vec::new();
    let damage = match damage {
        Some((position, reason)) if mode.sealed => {
            isolate_damage(
                &mut data,
                data_bytes,
                &mut segment,
                index_interval_bytes,
                (position, reason),
                &mut damaged,
            )?;
            None
        }
        other => other,
    };
    let damage = match damage {
        Some((position, reason)) => {
            data.set_len(position)?;
            data.sync_all()?;
            Some((data_bytes - position, reason))
        }
        None => None,
    };
    let index_rebuilt = index_rebuilt || (mode.full_check && segment.index != index);
    if index_rebuilt || damage.is_some() || segment.index != index {
        write_index_files(dir, &segment)?;
    }
    Ok(Recovered {
        segment,
        damage,
        damaged,
        index_rebuilt,
    })
}

/// Where a scan met the first bytes that are not a whole valid batch, and why.
type FirstDamage = (u64, String);

/// Scans from the last index entry, when the batch there is the one the entry names: the
/// segment up to that entry is trusted, so a clean restart reads only the tail. None when the
/// index cannot be trusted that far (then the whole segment is scanned).
fn resume_from_index(
    data: &mut fs::File,
    data_bytes: u64,
    base_offset: u64,
    index: &SparseIndex,
    index_interval_bytes: u64,
) -> io::Result<Option<(Segment, Option<FirstDamage>)>> {
    let Some((relative, position)) = index.last() else {
        return Ok(None);
    };
    let mut segment = Segment::empty(base_offset);
    segment.index = index.clone();
    segment.size_bytes = u64::from(position);
    segment.next_offset = base_offset + u64::from(relative);
    segment.max_timestamp = index
        .entries()
        .last()
        .map_or(-1, |(_, _, timestamp)| timestamp);
    let outcome = scan_batches(data, data_bytes, &mut segment, index_interval_bytes, true)?;
    let trusted = outcome
        .as_ref()
        .is_none_or(|(position, _)| *position > u64::from(position_of_last(index)));
    Ok(trusted.then_some((segment, outcome)))
}

/// Records the damage at `first` as a range ending at the next whole batch, and goes on
/// scanning from there, until the data ends. The segment then covers the whole file.
fn isolate_damage(
    data: &mut fs::File,
    data_bytes: u64,
    segment: &mut Segment,
    index_interval_bytes: u64,
    first: (u64, String),
    damaged: &mut Vec<DamagedRange>,
) -> io::Result<()> {
    let mut next = Some(first);
    while let Some((position, reason)) = next.take() {
        let due = segment.next_offset;
        // Index positions are u32: nothing past 4 GiB can be indexed, so it is all damage.
        let found = if position < u64::from(u32::MAX) {
            damage::resync(data, position, data_bytes, due, segment.base_offset)?
                .filter(|(at, _)| *at < u64::from(u32::MAX))
        } else {
            None
        };
        let (end_byte, end_offset) = match &found {
            Some((at, info)) => (*at, Some(info.base_offset as u64)),
            None => (data_bytes, None),
        };
        damaged.push(DamagedRange {
            segment_base_offset: segment.base_offset,
            start_byte: position,
            end_byte,
            first_offset: due,
            end_offset,
            reason,
        });
        segment.size_bytes = end_byte;
        if let Some((_, info)) = found {
            segment.next_offset = info.base_offset as u64;
            // An index entry right after the damage lets reads of later offsets start there.
            segment.bytes_since_index_entry = index_interval_bytes;
            next = scan_batches(data, data_bytes, segment, index_interval_bytes, false)?;
        }
    }
    Ok(())
}

fn position_of_last(index: &SparseIndex) -> u32 {
    index.last().map_or(0, |(_, position)| position)
}

/// Whether every byte of `data` from `position` to its end is zero.
pub fn zeros_from(data: &mut fs::File, position: u64) -> io::Result<bool> {
    data.seek(SeekFrom::Start(position))?;
    let mut reader = BufReader::with_capacity(1 << 16, data);
    let mut chunk = [0u8; 1 << 16];
    loop {
        let read = reader.read(&mut chunk)?;
        if read == 0 {
            return Ok(true);
        }
        if chunk[..read].iter().any(|byte| *byte != 0) {
            return Ok(false);
        }
    }
}

/// Reads batches from `segment.size_bytes` to `data_bytes`, pushing each valid one into
/// `segment`. Returns where and why it stopped early, or None if the data ends on a whole batch.
/// With `resume_at_entry`, the first batch is the one the last index entry already names.
fn scan_batches(
    data: &mut fs::File,
    data_bytes: u64,
    segment: &mut Segment,
    index_interval_bytes: u64,
    resume_at_entry: bool,
) -> io::Result<Option<FirstDamage>> {
    data.seek(SeekFrom::Start(segment.size_bytes))?;
    let mut reader = BufReader::with_capacity(1 << 20, data);
    let mut buffer = Vec::new();
    let mut first = resume_at_entry;
    while segment.size_bytes < data_bytes {
        let position = segment.size_bytes;
        if position >= u64::from(u32::MAX) {
            return Ok(Some((position, "segment data past 4 GiB".to_string())));
        }
        let remaining = data_bytes - position;
        if remaining < LOG_OVERHEAD_BYTES as u64 {
            return Ok(Some((
                position,
                format!("{remaining} trailing bytes, less than a batch header"),
            )));
        }
        buffer.resize(LOG_OVERHEAD_BYTES, 0);
        reader.read_exact(&mut buffer)?;
        let size = match batch::framed_size(&buffer) {
            Ok(size) => size,
            Err(error) => return Ok(Some((position, error.to_string()))),
        };
        if size as u64 > remaining {
            return Ok(Some((
                position,
                format!("torn batch: {size} bytes declared, {remaining} present"),
            )));
        }
        buffer.resize(size, 0);
        reader.read_exact(&mut buffer[LOG_OVERHEAD_BYTES..])?;
        let info = match batch::validate(&buffer, batch::Limits::UNLIMITED) {
            Ok(info) => info,
            Err(error) => return Ok(Some((position, error.to_string()))),
        };
        if info.base_offset < 0 || info.base_offset as u64 != segment.next_offset {
            let reason = format!(
                "offset {} where {} was due",
                info.base_offset, segment.next_offset
            );
            return Ok(Some((position, reason)));
        }
        if first {
            // Its index entry exists; account for the batch without adding another.
            first = false;
            if let Err(reason) = segment.check_follows(&info) {
                return Ok(Some((position, reason)));
            }
            segment.bytes_since_index_entry = 0;
            segment.account(&info);
        } else if let Err(reason) = segment.push_batch(&info, index_interval_bytes) {
            return Ok(Some((position, reason)));
        }
    }
    Ok(None)
}

/// Replaces both index files with the segment's in-memory index.
pub fn write_index_files(dir: &Path, segment: &Segment) -> io::Result<()> {
    let (offsets, times) = segment.index.encode_from(0);
    for (suffix, bytes) in [(OFFSET_INDEX_SUFFIX, offsets), (TIME_INDEX_SUFFIX, times)] {
        let mut file = fs::File::create(file_path(dir, segment.base_offset, suffix))?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    Ok(())
}

/// Creates the three empty files of a new segment, durably: the directory is fsynced, so the
/// files' names survive a power cut as their fsynced data does.
pub fn create_files(dir: &Path, base_offset: u64) -> io::Result<()> {
    for suffix in [DATA_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(file_path(dir, base_offset, suffix))?;
    }
    dirsync::sync_dir(dir)
}

/// Deletes a segment's files, durably (the directory is fsynced).
pub fn remove_files(dir: &Path, base_offset: u64) -> io::Result<()> {
    remove_file_set(dir, base_offset)?;
    dirsync::sync_dir(dir)
}

/// Deletes a segment's files (those that exist) without the directory's fsync, so that a caller
/// deleting several segments pays for one.
pub fn remove_file_set(dir: &Path, base_offset: u64) -> io::Result<()> {
    for suffix in [DATA_SUFFIX, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX] {
        match fs::remove_file(file_path(dir, base_offset, suffix)) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}
