//! The operator's view of partitions on disk: `ringmq log dump` prints every batch of a segment
//! or partition directory, `ringmq log verify` checks every checksum, offset and index entry of
//! a segment, a partition, or a whole data directory. Both read the files directly (the broker
//! may be stopped) and never change them. Damage is reported as ranges, the same ones recovery
//! isolates: one line per run of damaged bytes, with its byte and offset range.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::batch::{self, records};

use super::damage::{self, DamagedRange};
use super::index::SparseIndex;
use super::segment::{self, OFFSET_INDEX_SUFFIX, TIME_INDEX_SUFFIX};

/// What a dump or verify found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub segments: usize,
    pub batches: u64,
    pub records: u64,
    pub bytes: u64,
    /// One line per problem; empty means the data is whole.
    pub damage: Vec<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Only problems and the summary.
    Quiet,
    /// One line per batch.
    Batches,
    /// One line per batch and per record.
    Records,
}

/// Checks (and with `detail`, prints) the segment file, partition directory or whole data
/// directory (every topic partition and the offsets log) at `path`. Anything else is refused
/// with an `InvalidInput` error, and so is a path that holds no segment at all: "ok" is only
/// ever said of data that was actually read.
pub fn inspect(path: &Path, detail: Detail, out: &mut impl Write) -> io::Result<Report> {
    let mut report = Report::default();
    let partitions = partitions_at(path)?;
    for partition in &partitions {
        if partitions.len() > 1 || partition != path {
            writeln!(out, "partition {}", partition.display())?;
        }
        inspect_partition(partition, detail, out, &mut report)?;
    }
    if report.segments == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no segment to verify there",
        ));
    }
    for line in &report.damage {
        writeln!(out, "DAMAGE: {line}")?;
    }
    writeln!(
        out,
        "{} partition(s), {} segment(s), {} batch(es), {} record(s), {} byte(s): {}",
        partitions.len(),
        report.segments,
        report.batches,
        report.records,
        report.bytes,
        if report.damage.is_empty() {
            "ok".to_string()
        } else {
            format!("{} problem(s)", report.damage.len())
        }
    )?;
    Ok(report)
}

/// The partitions `path` names: itself if it is a segment file or a directory of segments;
/// every partition under `topics/` and `__consumer_offsets/` if it is a data directory.
fn partitions_at(path: &Path) -> io::Result<Vec<PathBuf>> {
    if !path.is_dir() || !segment::list_base_offsets(path)?.is_empty() {
        return Ok(vec![path.to_path_buf()]);
    }
    let is_data_dir = ["topics.json", "topics", "__consumer_offsets"]
        .iter()
        .any(|name| path.join(name).exists());
    if !is_data_dir {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither a partition directory (no segment files) nor a data directory (no topics.json, topics/ or __consumer_offsets/)",
        ));
    }
    let mut partitions = Vec::new();
    for group in ["topics", "__consumer_offsets"] {
        let Ok(entries) = fs::read_dir(path.join(group)) else {
            continue;
        };
        for entry in entries {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                partitions.push(entry.path());
            }
        }
    }
    partitions.sort();
    Ok(partitions)
}

fn inspect_partition(
    path: &Path,
    detail: Detail,
    out: &mut impl Write,
    report: &mut Report,
) -> io::Result<()> {
    let mut ranges: Vec<DamagedRange> = Vec::new();
    let mut expected_next: Option<u64> = None;
    for (base, data_path) in segment_files(path)? {
        report.segments += 1;
        writeln!(out, "segment {} ({})", base, data_path.display())?;
        if let Some(expected) = expected_next {
            let open = ranges.iter_mut().find(|range| range.end_offset.is_none());
            match open {
                Some(range) => range.end_offset = Some(base),
                None if expected != base => report.damage.push(format!(
                    "segment {base} starts at {base} but the previous one ends at {expected}"
                )),
                None => {}
            }
        }
        let next = inspect_segment(&data_path, base, detail, out, report, &mut ranges)?;
        expected_next = Some(next);
    }
    report
        .damage
        .extend(ranges.iter().map(|range| range.to_string()));
    Ok(())
}

fn segment_files(path: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    if path.is_dir() {
        let bases = segment::list_base_offsets(path)?;
        return Ok(bases
            .into_iter()
            .map(|base| (base, segment::file_path(path, base, segment::DATA_SUFFIX)))
            .collect());
    }
    let stem = path
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or_default();
    let base = stem.parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not named by a base offset", path.display()),
        )
    })?;
    Ok(vec![(base, path.to_path_buf())])
}

/// Checks one segment file: every batch, with one damaged range per run of damage (not one
/// line per batch that a flipped byte throws out of step), then its index.
fn inspect_segment(
    data_path: &Path,
    base: u64,
    detail: Detail,
    out: &mut impl Write,
    report: &mut Report,
    ranges: &mut Vec<DamagedRange>,
) -> io::Result<u64> {
    let file = fs::File::open(data_path)?;
    let data_bytes = file.metadata()?.len();
    let mut batch_starts = Vec::new();
    let (found, next_offset) = damage::scan_file(&file, base, |position, info, bytes| {
        print_batch(out, detail, position, info, bytes)?;
        batch_starts.push((position, info.base_offset as u64, info.max_timestamp));
        report.batches += 1;
        report.records += info.records_count as u64;
        report.bytes += info.size_bytes as u64;
        Ok(())
    })?;
    let damaged: Vec<(u64, u64)> = found.iter().map(|r| (r.start_byte, r.end_byte)).collect();
    ranges.extend(found);
    check_index(data_path, base, data_bytes, &batch_starts, &damaged, report);
    Ok(next_offset)
}

fn print_batch(
    out: &mut impl Write,
    detail: Detail,
    position: u64,
    info: &batch::BatchInfo,
    bytes: &[u8],
) -> io::Result<()> {
    if detail == Detail::Quiet {
        return Ok(());
    }
    writeln!(
        out,
        "  offset {}..={} position {} size {} records {} compression {} first_timestamp {} max_timestamp {} producer {}/{} sequence {}{}{}",
        info.base_offset,
        info.last_offset,
        position,
        info.size_bytes,
        info.records_count,
        info.compression.name(),
        info.first_timestamp,
        info.max_timestamp,
        info.producer_id,
        info.producer_epoch,
        info.base_sequence,
        if info.is_transactional {
            " transactional"
        } else {
            ""
        },
        if info.is_control { " control" } else { "" },
    )?;
    if detail != Detail::Records {
        return Ok(());
    }
    match records::decode(bytes) {
        Ok(decoded) => {
            for stored in decoded {
                let show = |bytes: &Option<bytes::Bytes>| {
                    bytes.as_ref().map_or("null".to_string(), |b| {
                        format!("{:?}", String::from_utf8_lossy(b))
                    })
                };
                writeln!(
                    out,
                    "    record {} timestamp {} key {} value {} headers {}",
                    stored.offset,
                    stored.record.timestamp_ms,
                    show(&stored.record.key),
                    show(&stored.record.value),
                    stored.record.headers.len()
                )?;
            }
        }
        Err(error) => writeln!(out, "    records not decodable: {error}")?,
    }
    Ok(())
}

/// Every index entry must point at a batch boundary holding the offset it names, and carry the
/// largest timestamp of the batches before it. Entries inside `damaged` byte ranges are part of
/// that damage, and past the first damage the timestamps of the lost batches are unknown.
fn check_index(
    data_path: &Path,
    base: u64,
    data_bytes: u64,
    batch_starts: &[(u64, u64, i64)],
    damaged: &[(u64, u64)],
    report: &mut Report,
) {
    let first_damage = damaged.iter().map(|(start, _)| *start).min();
    let dir = data_path.parent().unwrap_or(Path::new("."));
    let offsets = fs::read(segment::file_path(dir, base, OFFSET_INDEX_SUFFIX)).unwrap_or_default();
    let times = fs::read(segment::file_path(dir, base, TIME_INDEX_SUFFIX)).unwrap_or_default();
    let (index, whole) = SparseIndex::decode(&offsets, &times, data_bytes);
    if !whole {
        report.damage.push(format!(
            "segment {base}: index files are damaged past entry {}",
            index.len()
        ));
    }
    let mut max_before = -1i64;
    let mut batches = batch_starts.iter().peekable();
    for (relative, position, timestamp_before) in index.entries() {
        let at = u64::from(position);
        if damaged.iter().any(|(start, end)| *start <= at && at < *end) {
            continue;
        }
        while let Some((start, _, timestamp)) = batches.peek() {
            if *start >= u64::from(position) {
                break;
            }
            max_before = max_before.max(*timestamp);
            batches.next();
        }
        match batches.peek() {
            Some((start, offset, _)) if *start == u64::from(position) && *offset == base + u64::from(relative) => {
                if timestamp_before != max_before && first_damage.is_none_or(|first| at < first) {
                    report.damage.push(format!("segment {base}: time index entry at byte {position} says {timestamp_before}, data says {max_before}"));
                }
            }
            _ => report.damage.push(format!("segment {base}: index entry for offset {} points at byte {position}, which is not that batch", base + u64::from(relative))),
        }
    }
}
