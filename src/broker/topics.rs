//! Topic metadata: which topics exist, their partition counts and log settings. Small, durable,
//! and read on every shard: shard 0 owns changes and writes the file atomically (temp file,
//! fsync, rename, fsync of the directory), then hands every shard the new immutable snapshot.
//!
//! The file is JSON after a first line holding its xxh3 checksum, so that damage is refused at
//! start rather than read as some other set of topics.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::error::{BrokerError, BrokerResult, ErrorKind};
use super::json_file;
use crate::storage::{LogConfig, QueueRetentionPolicy, TimestampType};

pub const METADATA_FILE: &str = "topics.json";
pub const TOPICS_DIR: &str = "topics";
pub const TOPIC_NAME_BYTES_MAX: usize = 200;
/// The metadata file is refused past this size: 10,000 topics take about 6 MiB.
const METADATA_FILE_BYTES_MAX: u64 = 256 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub partitions: u32,
    pub config: LogConfig,
    pub created_ms: i64,
}

/// An immutable snapshot of every topic.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topics {
    pub by_name: BTreeMap<String, Arc<TopicMeta>>,
}

impl TopicMeta {
    /// The topic's id, as Kafka's topic UUIDs (Metadata v10+, KIP-848 assignments): derived
    /// from the name and the creation time, both durable, so it is the same after a restart and
    /// differs for a topic deleted and created again under the same name. Never all zeros
    /// (Kafka's "no id").
    pub fn id(&self) -> [u8; 16] {
        let mut key = Vec::with_capacity(self.name.len() + 8);
        key.extend_from_slice(self.name.as_bytes());
        key.extend_from_slice(&self.created_ms.to_be_bytes());
        let id = xxhash_rust::xxh3::xxh3_128(&key).max(1);
        id.to_be_bytes()
    }
}

impl Topics {
    pub fn get(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.by_name.get(name)
    }

    /// Reads the metadata file in `data_dir`; a missing file is an empty broker.
    pub fn load(data_dir: &Path) -> Result<Topics, String> {
        let Some(body) = json_file::load_checked(data_dir, METADATA_FILE, METADATA_FILE_BYTES_MAX)?
        else {
            return Ok(Topics::default());
        };
        let topics: Vec<TopicMeta> = serde_json::from_str(&body)
            .map_err(|error| format!("{}: {error}", data_dir.join(METADATA_FILE).display()))?;
        Ok(Topics {
            by_name: topics
                .into_iter()
                .map(|topic| (topic.name.clone(), Arc::new(topic)))
                .collect(),
        })
    }

    /// Writes the snapshot to `data_dir` so that a crash leaves either the old or the new file.
    pub fn save(&self, data_dir: &Path) -> io::Result<()> {
        let topics: Vec<&TopicMeta> = self.by_name.values().map(|topic| topic.as_ref()).collect();
        let body = serde_json::to_string_pretty(&topics).map_err(io::Error::other)?;
        json_file::save_checked(data_dir, METADATA_FILE, &body)
    }
}

/// The directory of one partition's log.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir
        .join(TOPICS_DIR)
        .join(format!("{topic}-{partition}"))
}

/// Topic names: 1 to 200 bytes of ASCII letters, digits, '.', '_' and '-' (Kafka's alphabet),
/// and not "." or "..", so a name is always a safe directory name.
pub fn validate_name(name: &str) -> BrokerResult<()> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    if name.is_empty()
        || name.len() > TOPIC_NAME_BYTES_MAX
        || !name.bytes().all(allowed)
        || name == "."
        || name == ".."
    {
        return Err(BrokerError::new(
            ErrorKind::InvalidTopicName,
            format!("topic name {name:?} must be 1 to {TOPIC_NAME_BYTES_MAX} of [a-zA-Z0-9._-]"),
        ));
    }
    Ok(())
}

/// Applies one `key=value` topic setting. Keys are ours (`retention_ms`) or Kafka's
/// (`retention.ms`); values are integers, `none` for "no limit", or a timestamp type.
pub fn apply_setting(config: &mut LogConfig, key: &str, value: &str) -> BrokerResult<()> {
    let invalid =
        |why: &str| BrokerError::new(ErrorKind::InvalidConfig, format!("{key}={value}: {why}"));
    let number = || {
        value
            .parse::<u64>()
            .map_err(|_| invalid("not a whole number"))
    };
    let optional = || match value {
        "none" | "-1" => Ok(None),
        _ => number().map(Some),
    };
    match key.replace('.', "_").as_str() {
        "retention_ms" => config.retention_ms = optional()?,
        "retention_bytes" | "retention_bytes_max" => config.retention_bytes_max = optional()?,
        "segment_bytes" | "segment_bytes_max" => config.segment_bytes_max = number()?,
        "segment_ms" | "segment_age_ms_max" => config.segment_age_ms_max = number()?,
        // Kafka's "never" is Long.MAX_VALUE; ours is none.
        "flush_ms" | "flush_interval_ms" => {
            config.flush_interval_ms = optional()?.filter(|ms| *ms < i64::MAX as u64)
        }
        "max_message_bytes" | "batch_bytes_max" => config.batch_bytes_max = number()? as usize,
        "record_bytes_max" => config.record_bytes_max = number()? as usize,
        "batch_decompressed_bytes_max" => config.batch_decompressed_bytes_max = number()? as usize,
        "segment_offsets_max" => config.segment_offsets_max = number()?,
        "index_interval_bytes" => config.index_interval_bytes = number()?,
        "writeback_bytes" => config.writeback_bytes = number()?,
        "dedup_window_ms" => config.dedup_window_ms = number()?,
        "dedup_ids_max" => config.dedup_ids_max = number()? as usize,
        "dedup_scan_bytes_max" => config.dedup_scan_bytes_max = number()?,
        "queue_retention_policy" => {
            config.queue_retention_policy = match value {
                "keep" => QueueRetentionPolicy::Keep,
                "drop" => QueueRetentionPolicy::Drop,
                _ => return Err(invalid("not keep or drop")),
            }
        }
        "direct_io" => {
            config.direct_io = match value {
                "true" => true,
                "false" => false,
                _ => return Err(invalid("not true or false")),
            }
        }
        "message_timestamp_type" | "timestamp_type" => {
            config.timestamp_type = match value {
                "CreateTime" | "create_time" => TimestampType::CreateTime,
                "LogAppendTime" | "log_append_time" => TimestampType::LogAppendTime,
                _ => return Err(invalid("not CreateTime or LogAppendTime")),
            }
        }
        _ => return Err(invalid("unknown setting")),
    }
    Ok(())
}

pub fn queue_retention_policy(policy: QueueRetentionPolicy) -> &'static str {
    match policy {
        QueueRetentionPolicy::Keep => "keep",
        QueueRetentionPolicy::Drop => "drop",
    }
}

/// The settings a topic shows in metadata, with our keys.
pub fn describe(config: &LogConfig) -> Vec<(String, String)> {
    let optional = |value: Option<u64>| value.map_or("none".to_string(), |value| value.to_string());
    vec![
        ("retention_ms".into(), optional(config.retention_ms)),
        (
            "retention_bytes".into(),
            optional(config.retention_bytes_max),
        ),
        ("segment_bytes".into(), config.segment_bytes_max.to_string()),
        ("segment_ms".into(), config.segment_age_ms_max.to_string()),
        (
            "flush_interval_ms".into(),
            optional(config.flush_interval_ms),
        ),
        ("batch_bytes_max".into(), config.batch_bytes_max.to_string()),
        (
            "record_bytes_max".into(),
            config.record_bytes_max.to_string(),
        ),
        (
            "batch_decompressed_bytes_max".into(),
            config.batch_decompressed_bytes_max.to_string(),
        ),
        (
            "segment_offsets_max".into(),
            config.segment_offsets_max.to_string(),
        ),
        (
            "index_interval_bytes".into(),
            config.index_interval_bytes.to_string(),
        ),
        (
            "timestamp_type".into(),
            format!("{:?}", config.timestamp_type),
        ),
        ("dedup_window_ms".into(), config.dedup_window_ms.to_string()),
        ("dedup_ids_max".into(), config.dedup_ids_max.to_string()),
        (
            "dedup_scan_bytes_max".into(),
            config.dedup_scan_bytes_max.to_string(),
        ),
        (
            "queue_retention_policy".into(),
            queue_retention_policy(config.queue_retention_policy).into(),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_directory_names() {
        for good in ["orders", "a.b_c-9", &"x".repeat(200)] {
            validate_name(good).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", &"x".repeat(201)] {
            assert_eq!(
                validate_name(bad).unwrap_err().kind,
                ErrorKind::InvalidTopicName,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn settings_accept_our_keys_and_kafkas() {
        let mut config = LogConfig::default();
        apply_setting(&mut config, "retention.ms", "1000").unwrap();
        apply_setting(&mut config, "retention_bytes", "none").unwrap();
        apply_setting(&mut config, "message.timestamp.type", "LogAppendTime").unwrap();
        assert_eq!(config.retention_ms, Some(1000));
        assert_eq!(config.retention_bytes_max, None);
        assert_eq!(config.timestamp_type, TimestampType::LogAppendTime);
        assert_eq!(
            apply_setting(&mut config, "bogus", "1").unwrap_err().kind,
            ErrorKind::InvalidConfig
        );
        assert_eq!(
            apply_setting(&mut config, "segment_bytes", "x")
                .unwrap_err()
                .kind,
            ErrorKind::InvalidConfig
        );
    }

    #[test]
    fn the_metadata_file_round_trips_and_refuses_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut topics = Topics::default();
        let meta = TopicMeta {
            name: "t".into(),
            partitions: 3,
            config: LogConfig::default(),
            created_ms: 5,
        };
        topics.by_name.insert("t".into(), Arc::new(meta));
        topics.save(dir.path()).unwrap();
        assert_eq!(Topics::load(dir.path()).unwrap(), topics);
        let path = dir.path().join(METADATA_FILE);
        let damaged = std::fs::read_to_string(&path)
            .unwrap()
            .replace("\"partitions\": 3", "\"partitions\": 4");
        std::fs::write(&path, damaged).unwrap();
        assert!(Topics::load(dir.path()).unwrap_err().contains("checksum"));
    }
}
