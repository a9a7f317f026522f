//! The `__consumer_offsets` log: committed offsets as records, written before a commit is
//! answered and read back whole at start, since membership is not stored but commits must
//! outlive the process.
//!
//! A record's key is "group\0topic\0partition" and its value the offset as 8 big-endian bytes,
//! or no value (a tombstone) to delete it; appends wait for `fsynced`. On start each partition
//! is read whole, last value wins, and rewritten compacted when mostly superseded: this format
//! is on disk, so it does not change.
//!
//! Compaction (`broker::compaction`) rewrites a partition so that a crash at any moment leaves
//! every committed offset readable; its fault hook's steps are `offsets_compaction:<step>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::BytesMut;

use crate::batch::{BatchBuilder, Compression, Record, records};
use crate::broker::BrokerResult;
use crate::broker::compaction::{self, Rewrite};
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
        // Internal records carry no deduplication ids: no scan at open.
        dedup_window_ms: 0,
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
    compaction::recover(&dir).map_err(|error| format!("{}: {error}", dir.display()))?;
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

pub use compaction::CRASH_AT_ENV;

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
    let rewrite = Rewrite {
        batches: entries.chunks(1000).map(batch).collect(),
        config: config(),
        labels,
        kind: "offsets",
    };
    compaction::compact(dir, old, rewrite).await
}
