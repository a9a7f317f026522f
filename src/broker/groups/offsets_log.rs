//! The `__consumer_offsets` log: committed offsets as records, written before a commit is
//! answered and read back whole at start, since membership is not stored but commits must
//! outlive the process.
//!
//! A record's key is "group\0topic\0partition" and its value the offset as 8 big-endian bytes,
//! or no value (a tombstone) to delete it; appends wait for `fsynced`. On start each partition
//! is read whole, last value wins, and rewritten compacted when mostly superseded: this format
//! is on disk, so it does not change.
//!
//! Compaction rewrites one partition so that a crash at any moment leaves every committed offset
//! readable. The switch is a sequence of renames, each made durable (directory fsync) before the next:
//! the compacted copy is written whole in `<p>.compacting`, renamed to `<p>.compacted` (now it
//! is known complete), the old log is renamed to `<p>.retired`, the copy to `<p>`, and the
//! retired log is deleted. `recover` runs before the partition opens and rolls any interrupted
//! switch forward deterministically: a `.compacting` copy is incomplete and deleted; a
//! `.compacted` copy is complete and replaces `<p>`; a `.retired` log is the old one, kept only
//! when `<p>` is missing. At every step one complete log (old or compacted) is found.
//!
//! For tests, the environment variable `RINGMQ_FAULT_CRASH_AT=offsets_compaction:<step>` makes
//! the process SIGKILL itself at that step (`written`, `marked`, `retired`, `switched`), so a
//! test can prove that a crash there loses nothing.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use crate::batch::{BatchBuilder, Compression, Record, records};
use crate::broker::BrokerResult;
use crate::storage::dirsync;
use crate::storage::{AckLevel, LogConfig, PartitionLog};

/// Partitions of the internal offsets log. Fixed: it decides which shard coordinates a group.
pub const OFFSETS_PARTITIONS: u32 = 8;
pub const OFFSETS_LOG: &str = "__consumer_offsets";

/// (group, topic, partition) -> offset: the commits in force in one partition.
pub type Live = BTreeMap<(String, String, u32), u64>;

/// Records to append: (key, offset, or none to delete).
pub struct Records(Vec<(Vec<u8>, Option<u64>)>);

impl Records {
    /// `group`'s offsets for (topic, partition, offset) each.
    pub fn commits(group: &str, offsets: &[(String, u32, u64)]) -> Records {
        Records(
            offsets
                .iter()
                .map(|(topic, partition, offset)| {
                    (record_key(group, topic, *partition), Some(*offset))
                })
                .collect(),
        )
    }

    /// Deletions of `group`'s offsets for these (topic, partition)s.
    pub fn tombstones<'a>(
        group: &str,
        partitions: impl Iterator<Item = &'a (String, u32)>,
    ) -> Records {
        Records(
            partitions
                .map(|(topic, partition)| (record_key(group, topic, *partition), None))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Appends `records` to `log` and returns once they are fsynced.
pub async fn append(log: &PartitionLog, records: Records) -> BrokerResult<()> {
    log.append(batch(&records.0), AckLevel::Fsynced).await?;
    Ok(())
}

fn dir(data_dir: &Path, partition: u32) -> PathBuf {
    data_dir.join(OFFSETS_LOG).join(partition.to_string())
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        retention_ms: None,
        retention_bytes_max: None,
        ..LogConfig::default()
    }
}

fn record_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    format!("{group}\0{topic}\0{partition}").into_bytes()
}

fn parse_key(key: &[u8]) -> Option<(String, String, u32)> {
    let text = std::str::from_utf8(key).ok()?;
    let mut parts = text.split('\0');
    let (group, topic, partition) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    Some((group.to_string(), topic.to_string(), partition))
}

fn batch(entries: &[(Vec<u8>, Option<u64>)]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    let now = crate::storage::log::now_ms();
    for (key, offset) in entries {
        let value = offset.map(|offset| offset.to_be_bytes());
        builder.push(Record::new(now, Some(key), value.as_ref().map(|v| &v[..])));
    }
    BytesMut::from(&builder.build()[..])
}

/// Opens partition `partition` of the offsets log, after finishing any compaction a crash
/// interrupted, and returns it with the commits in force; rewrites it compacted first when most
/// of its records are superseded.
pub async fn open(
    data_dir: &Path,
    partition: u32,
    verify_on_start: bool,
) -> Result<(PartitionLog, Live), String> {
    let dir = dir(data_dir, partition);
    let labels = vec![
        ("topic".into(), OFFSETS_LOG.into()),
        ("partition".into(), partition.to_string()),
    ];
    recover(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
    let config = LogConfig {
        verify_on_start,
        ..config()
    };
    let mut log = PartitionLog::open(&dir, config, labels.clone())
        .await
        .map_err(|error| format!("{}: {error}", dir.display()))?;
    let (live, records_total) = read(&log).await?;
    if records_total > 2 * live.len() as u64 + 64 {
        log = compact(&dir, log, &live, labels).await?;
        tracing::info!(
            partition,
            records_before = records_total,
            records_after = live.len(),
            "compacted the offsets log"
        );
    }
    Ok((log, live))
}

/// Every (group, topic, partition) -> offset still in force in one offsets-log partition, and
/// how many records the log holds in all.
async fn read(log: &PartitionLog) -> Result<(Live, u64), String> {
    let mut live = BTreeMap::new();
    let mut records_total = 0;
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log
            .read(offset, 1 << 20)
            .await
            .map_err(|error| error.to_string())?;
        for chunk in &read.chunks {
            for (_, batch) in crate::batch::iter_framed(chunk) {
                for stored in records::decode(batch).map_err(|error| error.to_string())? {
                    offset = stored.offset as u64 + 1;
                    records_total += 1;
                    let Some(key) = stored.record.key.as_deref().and_then(parse_key) else {
                        continue;
                    };
                    match stored
                        .record
                        .value
                        .as_deref()
                        .and_then(|value| value.first_chunk::<8>().copied())
                    {
                        Some(value) => live.insert(key, u64::from_be_bytes(value)),
                        None => live.remove(&key),
                    };
                }
            }
        }
    }
    Ok((live, records_total))
}

/// The environment variable naming a step at which the process kills itself (tests only).
pub const CRASH_AT_ENV: &str = "RINGMQ_FAULT_CRASH_AT";

struct Paths {
    compacting: PathBuf,
    compacted: PathBuf,
    retired: PathBuf,
}

fn paths(dir: &Path) -> Paths {
    Paths {
        compacting: dir.with_extension("compacting"),
        compacted: dir.with_extension("compacted"),
        retired: dir.with_extension("retired"),
    }
}

/// Finishes or undoes a switch that a crash interrupted, before the partition at `dir` opens.
fn recover(dir: &Path) -> io::Result<()> {
    let paths = paths(dir);
    if paths.compacting.exists() {
        tracing::warn!(dir = %paths.compacting.display(), "removing an unfinished compaction of the offsets log");
        dirsync::remove_all_durable(&paths.compacting)?;
    }
    if paths.compacted.exists() {
        tracing::warn!(dir = %dir.display(), "finishing an interrupted compaction of the offsets log");
        if dir.exists() {
            dirsync::remove_all_durable(&paths.retired)?;
            dirsync::rename_durable(dir, &paths.retired)?;
        }
        dirsync::rename_durable(&paths.compacted, dir)?;
    }
    if paths.retired.exists() {
        if dir.exists() {
            dirsync::remove_all_durable(&paths.retired)?;
        } else {
            tracing::warn!(dir = %dir.display(), "restoring the offsets log from before an interrupted compaction");
            dirsync::rename_durable(&paths.retired, dir)?;
        }
    }
    Ok(())
}

/// Writes the `live` entries to a fresh log beside `dir` and switches it in for `old`,
/// returning the reopened log.
async fn compact(
    dir: &Path,
    old: PartitionLog,
    live: &Live,
    labels: Vec<(String, String)>,
) -> Result<PartitionLog, String> {
    let entries: Vec<(Vec<u8>, Option<u64>)> = live
        .iter()
        .map(|((g, t, p), offset)| (record_key(g, t, *p), Some(*offset)))
        .collect();
    let batches: Vec<BytesMut> = entries.chunks(1000).map(batch).collect();
    let config = config();
    let paths = paths(dir);
    let failed = |what: &str, error: &dyn std::fmt::Display| format!("{what}: {error}");
    dirsync::remove_all_durable(&paths.compacting)
        .map_err(|e| failed("removing an old copy", &e))?;
    let fresh = PartitionLog::open(&paths.compacting, config.clone(), labels.clone())
        .await
        .map_err(|e| failed("opening the copy", &e))?;
    for batch in batches {
        fresh
            .append(batch, AckLevel::Fsynced)
            .await
            .map_err(|e| failed("writing the copy", &e))?;
    }
    fresh
        .close()
        .await
        .map_err(|e| failed("closing the copy", &e))?;
    old.close()
        .await
        .map_err(|e| failed("closing the old log", &e))?;
    crash_point("written");
    let switch = || -> io::Result<()> {
        dirsync::rename_durable(&paths.compacting, &paths.compacted)?;
        crash_point("marked");
        dirsync::remove_all_durable(&paths.retired)?;
        dirsync::rename_durable(dir, &paths.retired)?;
        crash_point("retired");
        dirsync::rename_durable(&paths.compacted, dir)?;
        crash_point("switched");
        dirsync::remove_all_durable(&paths.retired)
    };
    switch().map_err(|e| failed("switching to the compacted log", &e))?;
    PartitionLog::open(dir, config, labels)
        .await
        .map_err(|e| failed("reopening the compacted log", &e))
}

/// Kills the process at `step` when the test fault variable names it.
fn crash_point(step: &str) {
    let Ok(wanted) = std::env::var(CRASH_AT_ENV) else {
        return;
    };
    if wanted.strip_prefix("offsets_compaction:") == Some(step) {
        tracing::error!(
            step,
            "fault hook: killing the process during offsets-log compaction"
        );
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log_dir(root: &Path, name: &str, marker: &str) -> PathBuf {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("marker"), marker).unwrap();
        dir
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("marker")).unwrap()
    }

    #[test]
    fn recovery_rolls_every_interrupted_state_forward_to_one_whole_log() {
        // (directories present, marker expected in <p> afterwards)
        let cases: [(&[(&str, &str)], &str); 6] = [
            (&[("0", "old"), ("0.compacting", "partial")], "old"),
            (&[("0", "old"), ("0.compacted", "new")], "new"),
            (&[("0.retired", "old"), ("0.compacted", "new")], "new"),
            (&[("0", "new"), ("0.retired", "old")], "new"),
            (&[("0.retired", "old"), ("0.compacting", "new")], "old"),
            (&[("0", "old")], "old"),
        ];
        for (present, expected) in cases {
            let root = tempfile::tempdir().unwrap();
            for (name, content) in present {
                log_dir(root.path(), name, content);
            }
            let dir = root.path().join("0");
            recover(&dir).unwrap();
            assert_eq!(marker(&dir), expected, "{present:?}");
            let left: Vec<String> = std::fs::read_dir(root.path())
                .unwrap()
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(left, vec!["0".to_string()], "{present:?}");
        }
    }
}
