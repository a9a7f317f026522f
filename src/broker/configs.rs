//! Settings as users see them: by Kafka's names (`retention.ms`, not our `retention_ms`), with
//! Kafka's value conventions (`-1` for "no limit"), a type, and whether they differ from the
//! default. Kafka's admin API (DescribeConfigs) shows these; `topics::apply_setting` accepts the
//! same names back, so a value read here can be written unchanged.

use crate::config::BrokerConfig;
use crate::storage::{LogConfig, TimestampType};

/// A setting's type, as Kafka's DescribeConfigs v3+ reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Long,
}

/// One setting of a topic or of the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: &'static str,
    pub value: String,
    pub config_type: ConfigType,
    /// Fixed: a single node has one answer for it, or the broker reads it only at start.
    pub read_only: bool,
    /// Equal to the broker's default (for a topic) or to ringmq's built-in default.
    pub is_default: bool,
}

/// Kafka's "no limit" for an optional limit.
fn limit(value: Option<u64>) -> String {
    value.map_or("-1".to_string(), |value| value.to_string())
}

/// (name, value, type, read-only) of every topic setting, by Kafka's names where Kafka has
/// one; ringmq's own limits keep our names with dots.
fn topic_values(config: &LogConfig) -> Vec<(&'static str, String, ConfigType, bool)> {
    use ConfigType::{Boolean, Int, Long, String as Text};
    let timestamp_type = match config.timestamp_type {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    vec![
        // Retention deletes whole segments; there is no compaction.
        ("cleanup.policy", "delete".into(), Text, true),
        // Batches are stored as producers compressed them, never recompressed.
        ("compression.type", "producer".into(), Text, true),
        ("min.insync.replicas", "1".into(), Int, true),
        ("retention.ms", limit(config.retention_ms), Long, false),
        (
            "retention.bytes",
            limit(config.retention_bytes_max),
            Long,
            false,
        ),
        (
            "segment.bytes",
            config.segment_bytes_max.to_string(),
            Int,
            false,
        ),
        (
            "segment.ms",
            config.segment_age_ms_max.to_string(),
            Long,
            false,
        ),
        // Kafka's default flush.ms is Long.MAX_VALUE: never by time.
        (
            "flush.ms",
            config
                .flush_interval_ms
                .map_or(i64::MAX.to_string(), |value| value.to_string()),
            Long,
            false,
        ),
        (
            "max.message.bytes",
            config.batch_bytes_max.to_string(),
            Int,
            false,
        ),
        ("message.timestamp.type", timestamp_type.into(), Text, false),
        (
            "index.interval.bytes",
            config.index_interval_bytes.to_string(),
            Int,
            false,
        ),
        (
            "record.bytes.max",
            config.record_bytes_max.to_string(),
            Int,
            false,
        ),
        (
            "batch.decompressed.bytes.max",
            config.batch_decompressed_bytes_max.to_string(),
            Int,
            false,
        ),
        (
            "segment.offsets.max",
            config.segment_offsets_max.to_string(),
            Long,
            false,
        ),
        ("direct.io", config.direct_io.to_string(), Boolean, false),
        (
            "dedup.window.ms",
            config.dedup_window_ms.to_string(),
            Long,
            false,
        ),
        (
            "dedup.ids.max",
            config.dedup_ids_max.to_string(),
            Int,
            false,
        ),
        (
            "dedup.scan.bytes.max",
            config.dedup_scan_bytes_max.to_string(),
            Long,
            false,
        ),
        (
            "queue.retention.policy",
            super::topics::queue_retention_policy(config.queue_retention_policy).into(),
            Text,
            false,
        ),
    ]
}

/// A topic's settings, each marked default when it equals the broker's topic default.
pub fn topic_entries(config: &LogConfig, defaults: &LogConfig) -> Vec<ConfigEntry> {
    let defaults = topic_values(defaults);
    topic_values(config)
        .into_iter()
        .zip(defaults)
        .map(
            |((name, value, config_type, read_only), (_, default, _, _))| ConfigEntry {
                name,
                is_default: value == default,
                value,
                config_type,
                read_only,
            },
        )
        .collect()
}

/// The broker's settings that Kafka tools ask about, all read-only: the broker reads its
/// configuration at start.
pub fn broker_entries(config: &BrokerConfig) -> Vec<ConfigEntry> {
    let builtin = BrokerConfig::default();
    let topics = topic_values(&config.topic_defaults);
    let topics_builtin = topic_values(&builtin.topic_defaults);
    let topic_default = |kafka: &str| {
        topics
            .iter()
            .zip(&topics_builtin)
            .find(|((name, ..), _)| *name == kafka)
            .map(|((_, value, config_type, _), (_, builtin, ..))| {
                (value.clone(), *config_type, value == builtin)
            })
    };
    let mut entries = vec![
        ConfigEntry {
            name: "broker.id",
            value: "0".into(),
            config_type: ConfigType::Int,
            read_only: true,
            is_default: true,
        },
        ConfigEntry {
            name: "log.dirs",
            value: config.data_dir.display().to_string(),
            config_type: ConfigType::String,
            read_only: true,
            is_default: config.data_dir == builtin.data_dir,
        },
        ConfigEntry {
            name: "message.max.bytes",
            value: config.frame_bytes_max.to_string(),
            config_type: ConfigType::Int,
            read_only: true,
            is_default: config.frame_bytes_max == builtin.frame_bytes_max,
        },
    ];
    // The topic defaults, under Kafka's broker-level names.
    for (broker_name, topic_name) in [
        ("log.retention.ms", "retention.ms"),
        ("log.retention.bytes", "retention.bytes"),
        ("log.segment.bytes", "segment.bytes"),
        ("log.roll.ms", "segment.ms"),
        ("log.flush.interval.ms", "flush.ms"),
        ("log.message.timestamp.type", "message.timestamp.type"),
        ("log.index.interval.bytes", "index.interval.bytes"),
    ] {
        if let Some((value, config_type, is_default)) = topic_default(topic_name) {
            entries.push(ConfigEntry {
                name: broker_name,
                value,
                config_type,
                read_only: true,
                is_default,
            });
        }
    }
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topics::apply_setting;

    #[test]
    fn every_writable_value_read_back_applies_unchanged() {
        let mut config = LogConfig {
            retention_ms: Some(60_000),
            flush_interval_ms: None,
            ..LogConfig::default()
        };
        config.timestamp_type = TimestampType::LogAppendTime;
        let entries = topic_entries(&config, &LogConfig::default());
        let mut copy = LogConfig::default();
        for entry in entries.iter().filter(|e| !e.read_only) {
            apply_setting(&mut copy, entry.name, &entry.value)
                .unwrap_or_else(|error| panic!("{}={}: {error}", entry.name, entry.value));
        }
        assert_eq!(topic_entries(&copy, &LogConfig::default()), entries);
        let retention = entries.iter().find(|e| e.name == "retention.ms").unwrap();
        assert_eq!(
            (retention.value.as_str(), retention.is_default),
            ("60000", false)
        );
        let bytes = entries
            .iter()
            .find(|e| e.name == "retention.bytes")
            .unwrap();
        assert_eq!((bytes.value.as_str(), bytes.is_default), ("-1", true));
    }
}
