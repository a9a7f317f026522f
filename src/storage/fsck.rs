//! The operator's view of a partition on disk: `ringmq log dump` prints every batch of a segment
//! or partition directory, `ringmq log verify` checks every checksum, offset and index entry.
//! Both read the files directly (the broker may be stopped) and never change them.

use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::batch::{self, LOG_OVERHEAD_BYTES, records};

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

/// Checks (and with `detail`, prints) the segment file or partition directory at `path`.
pub fn inspect(path: &Path, detail: Detail, out: &mut impl Write) -> io::Result<Report> {
    let mut report = Report::default();
    let mut expected_next: Option<u64> = None;
    for (base, data_path) in segment_files(path)? {
        report.segments += 1;
        writeln!(out, "segment {} ({})", base, data_path.display())?;
        let next = inspect_segment(&data_path, base, expected_next, detail, out, &mut report)?;
        expected_next = Some(next);
    }
    for line in &report.damage {
        writeln!(out, "DAMAGE: {line}")?;
    }
    writeln!(
        out,
        "{} segment(s), {} batch(es), {} record(s), {} byte(s): {}",
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

fn inspect_segment(
    data_path: &Path,
    base: u64,
    expected_first: Option<u64>,
    detail: Detail,
    out: &mut impl Write,
    report: &mut Report,
) -> io::Result<u64> {
    let file = fs::File::open(data_path)?;
    let data_bytes = file.metadata()?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut position = 0u64;
    let mut next_offset = base;
    if let Some(expected) = expected_first.filter(|expected| *expected != base) {
        report.damage.push(format!(
            "segment {base} starts at {base} but the previous one ends at {expected}"
        ));
    }
    let mut batch_starts = Vec::new();
    let mut buffer = Vec::new();
    let damage_before = report.damage.len();
    while position < data_bytes {
        let remaining = data_bytes - position;
        buffer.resize(LOG_OVERHEAD_BYTES.min(remaining as usize), 0);
        reader.read_exact(&mut buffer)?;
        let size = match batch::framed_size(&buffer) {
            Ok(size) if size as u64 <= remaining => size,
            Ok(size) => {
                report.damage.push(format!("segment {base} byte {position}: torn batch, {size} bytes declared, {remaining} present"));
                break;
            }
            Err(error) => {
                report
                    .damage
                    .push(format!("segment {base} byte {position}: {error}"));
                break;
            }
        };
        buffer.resize(size, 0);
        reader.read_exact(&mut buffer[LOG_OVERHEAD_BYTES..])?;
        let info = match batch::validate(&buffer, batch::Limits::UNLIMITED) {
            Ok(info) => info,
            Err(error) => {
                report
                    .damage
                    .push(format!("segment {base} byte {position}: {error}"));
                break;
            }
        };
        if info.base_offset as u64 != next_offset {
            report.damage.push(format!(
                "segment {base} byte {position}: offset {} where {next_offset} was due",
                info.base_offset
            ));
        }
        if detail != Detail::Quiet {
            writeln!(
                out,
                "  offset {}..={} position {} size {} records {} compression {} first_timestamp {} max_timestamp {} producer {}/{} sequence {}{}{}",
                info.base_offset,
                info.last_offset,
                position,
                size,
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
        }
        if detail == Detail::Records {
            match records::decode(&buffer) {
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
        }
        batch_starts.push((position, info.base_offset as u64, info.max_timestamp));
        report.batches += 1;
        report.records += info.records_count as u64;
        report.bytes += size as u64;
        next_offset = info.last_offset as u64 + 1;
        position += size as u64;
    }
    // Zeros to the end of the file are the padding of an O_DIRECT write, not damage.
    if report.damage.len() == damage_before + 1
        && segment::zeros_from(&mut fs::File::open(data_path)?, position)?
    {
        report.damage.pop();
        if detail != Detail::Quiet {
            writeln!(
                out,
                "  {} byte(s) of zero padding from byte {position}",
                data_bytes - position
            )?;
        }
    }
    check_index(data_path, base, data_bytes, &batch_starts, report);
    Ok(next_offset)
}

/// Every index entry must point at a batch boundary holding the offset it names, and carry the
/// largest timestamp of the batches before it.
fn check_index(
    data_path: &Path,
    base: u64,
    data_bytes: u64,
    batch_starts: &[(u64, u64, i64)],
    report: &mut Report,
) {
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
        while let Some((start, _, timestamp)) = batches.peek() {
            if *start >= u64::from(position) {
                break;
            }
            max_before = max_before.max(*timestamp);
            batches.next();
        }
        match batches.peek() {
            Some((start, offset, _)) if *start == u64::from(position) && *offset == base + u64::from(relative) => {
                if timestamp_before != max_before {
                    report.damage.push(format!("segment {base}: time index entry at byte {position} says {timestamp_before}, data says {max_before}"));
                }
            }
            _ => report.damage.push(format!("segment {base}: index entry for offset {} points at byte {position}, which is not that batch", base + u64::from(relative))),
        }
    }
}
