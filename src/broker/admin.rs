//! Topic changes. They run on shard 0, one at a time: validate, write the new metadata durably,
//! then have every shard install the snapshot and open (or close and delete) its partitions.
//! The request is answered only when every shard is done, so a client that created a topic can
//! produce to any partition at once, through any connection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::error::{BrokerError, BrokerResult, ErrorKind};
use super::service::NewTopic;
use super::topics::{self, TopicMeta, Topics};
use super::{ShardState, fd_budget, partition};
use crate::storage::LogConfig;
use crate::storage::dirsync;
use crate::storage::log::now_ms;

/// Held while a topic change is under way on shard 0.
pub(super) struct AdminTurn<'a> {
    state: &'a ShardState,
}

impl Drop for AdminTurn<'_> {
    fn drop(&mut self) {
        self.state.admin_busy.set(false);
        self.state.admin_done.notify();
    }
}

pub(super) async fn admin_turn(state: &ShardState) -> AdminTurn<'_> {
    assert_eq!(state.id, 0, "topic changes run on shard 0");
    loop {
        let done = state.admin_done.wait();
        if !state.admin_busy.get() {
            state.admin_busy.set(true);
            return AdminTurn { state };
        }
        done.await;
    }
}

/// The refusal of a topic beyond the broker's `topics_max`.
pub fn topics_max_reached(topics_max: usize) -> BrokerError {
    BrokerError::new(
        ErrorKind::ResourceLimit,
        format!("the broker holds topics_max = {topics_max} topics already"),
    )
}

/// Checks a topic creation against the current topics and the broker's limits, and returns
/// the topic's settings: the broker's defaults with the request's changes.
pub fn validate_new_topic(state: &ShardState, topic: &NewTopic) -> BrokerResult<LogConfig> {
    let NewTopic {
        name,
        partitions,
        configs,
    } = topic;
    topics::validate_name(name)?;
    let current = state.topics();
    if current.get(name).is_some() {
        return Err(BrokerError::new(
            ErrorKind::TopicExists,
            format!("topic {name:?} already exists"),
        ));
    }
    if current.by_name.len() >= state.config.topics_max {
        return Err(topics_max_reached(state.config.topics_max));
    }
    if *partitions == 0 || *partitions > state.config.topic_partitions_max {
        return Err(BrokerError::new(
            ErrorKind::InvalidPartitions,
            format!(
                "partitions must be 1 to {}, not {partitions}",
                state.config.topic_partitions_max
            ),
        ));
    }
    let mut config = state.config.topic_defaults.clone();
    for (key, value) in configs {
        topics::apply_setting(&mut config, key, value)?;
    }
    config
        .validate()
        .map_err(|reason| BrokerError::new(ErrorKind::InvalidConfig, reason))?;
    // A limit of this machine, not a passing storage failure: retrying does not help.
    fd_budget::check_room(*partitions, &config)
        .map_err(|reason| BrokerError::new(ErrorKind::ResourceLimit, reason))?;
    if config.batch_bytes_max > state.config.frame_bytes_max {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            "batch_bytes_max exceeds the broker's frame_bytes_max",
        ));
    }
    Ok(config)
}

pub async fn create_topic(state: &ShardState, topic: NewTopic) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let config = validate_new_topic(state, &topic)?;
    let (current, name, partitions) = (state.topics(), topic.name, topic.partitions);
    let meta = Arc::new(TopicMeta {
        name: name.clone(),
        partitions,
        config,
        created_ms: now_ms(),
    });
    install(state, current, meta, 0).await?;
    tracing::info!(topic = %name, partitions, "created topic");
    crate::metrics::revive("topic", &name);
    Ok(())
}

pub async fn delete_topic(state: &ShardState, name: String) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let current = state.topics();
    if current.get(&name).is_none() {
        return Err(BrokerError::unknown_topic(&name));
    }
    let mut by_name = current.by_name.clone();
    by_name.remove(&name);
    let next = Arc::new(Topics { by_name });
    save(state, next.clone()).await?;
    tracing::info!(topic = %name, "deleted topic");
    crate::metrics::retire("topic", &name);
    broadcast(state, next, Change::Deleted(name)).await
}

/// Checks that `name` may grow to `partitions` (Kafka's CreatePartitions); returns the topic as
/// it would be.
pub fn validate_partition_growth(
    state: &ShardState,
    name: &str,
    partitions: u32,
) -> BrokerResult<Arc<TopicMeta>> {
    let current = state.topics();
    let meta = current
        .get(name)
        .ok_or_else(|| BrokerError::unknown_topic(name))?;
    if partitions <= meta.partitions || partitions > state.config.topic_partitions_max {
        return Err(BrokerError::new(
            ErrorKind::InvalidPartitions,
            format!(
                "topic {name:?} has {} partitions; it may grow to {} at most, and only grow",
                meta.partitions, state.config.topic_partitions_max
            ),
        ));
    }
    fd_budget::check_room(partitions - meta.partitions, &meta.config)
        .map_err(|reason| BrokerError::new(ErrorKind::ResourceLimit, reason))?;
    Ok(Arc::new(TopicMeta {
        partitions,
        ..TopicMeta::clone(meta)
    }))
}

/// Adds partitions to a topic. Its existing partitions and their data stay as they are; keys
/// hash over the new count from now on, as in Kafka.
pub async fn add_partitions(state: &ShardState, name: String, partitions: u32) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let grown = validate_partition_growth(state, &name, partitions)?;
    let current = state.topics();
    let before = current.get(&name).map_or(0, |meta| meta.partitions);
    install(state, current, grown, before).await?;
    tracing::info!(topic = %name, from = before, to = partitions, "added partitions");
    Ok(())
}

/// One change to a topic's settings (Kafka's IncrementalAlterConfigs SET and DELETE).
#[derive(Clone, Debug)]
pub enum ConfigChange {
    Set(String, String),
    /// Back to the broker's default.
    Delete(String),
}

/// Settings a topic keeps whatever is asked (Kafka's read-only ones here).
const READ_ONLY_SETTINGS: &[&str] = &[
    "cleanup.policy",
    "compression.type",
    "direct_io",
    "direct.io",
];

/// The topic's settings after `changes`: applied to its current settings, or, with
/// `replace_all` (Kafka's AlterConfigs), to the broker's defaults, so whatever is not named
/// reverts. Checked as topic creation checks them.
pub fn validate_config_changes(
    state: &ShardState,
    name: &str,
    changes: &[ConfigChange],
    replace_all: bool,
) -> BrokerResult<Arc<TopicMeta>> {
    let current = state.topics();
    let meta = current
        .get(name)
        .ok_or_else(|| BrokerError::unknown_topic(name))?;
    let defaults = &state.config.topic_defaults;
    let mut config = if replace_all {
        defaults.clone()
    } else {
        meta.config.clone()
    };
    let default_values = topics::describe(defaults);
    for change in changes {
        let key = match change {
            ConfigChange::Set(key, _) | ConfigChange::Delete(key) => key,
        };
        if READ_ONLY_SETTINGS.contains(&key.as_str()) {
            return Err(BrokerError::new(
                ErrorKind::InvalidConfig,
                format!("{key} is read-only on ringmq"),
            ));
        }
        match change {
            ConfigChange::Set(key, value) => topics::apply_setting(&mut config, key, value)?,
            ConfigChange::Delete(key) => {
                let default = default_values
                    .iter()
                    .find(|(name, _)| *name == described_name(key))
                    .map(|(_, value)| value.clone());
                match default {
                    Some(value) => topics::apply_setting(&mut config, key, &value)?,
                    // Unknown names are refused as a SET of them would be.
                    None => topics::apply_setting(&mut config, key, "")?,
                }
            }
        }
    }
    config
        .validate()
        .map_err(|reason| BrokerError::new(ErrorKind::InvalidConfig, reason))?;
    if config.batch_bytes_max > state.config.frame_bytes_max {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            "batch_bytes_max exceeds the broker's frame_bytes_max",
        ));
    }
    Ok(Arc::new(TopicMeta {
        config,
        ..TopicMeta::clone(meta)
    }))
}

/// The name `topics::describe` gives the setting `key` (Kafka's dotted names and our
/// alternatives alike), for reverting it to the default.
fn described_name(key: &str) -> String {
    match key.replace('.', "_").as_str() {
        "flush_ms" => "flush_interval_ms".into(),
        "max_message_bytes" => "batch_bytes_max".into(),
        "retention_bytes_max" => "retention_bytes".into(),
        "segment_bytes_max" => "segment_bytes".into(),
        "segment_age_ms_max" => "segment_ms".into(),
        "message_timestamp_type" => "timestamp_type".into(),
        other => other.to_string(),
    }
}

/// Changes a topic's settings: saved, then in force on every partition before the answer.
pub async fn alter_topic_config(
    state: &ShardState,
    name: String,
    changes: Vec<ConfigChange>,
    replace_all: bool,
) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let changed = validate_config_changes(state, &name, &changes, replace_all)?;
    let current = state.topics();
    let partitions = changed.partitions;
    install(state, current, changed, partitions).await?;
    tracing::info!(topic = %name, ?changes, "changed the topic's settings");
    Ok(())
}

/// Writes `meta` into the topic metadata and has every shard open its partitions from
/// `first_new` on. A refusal leaves no trace: the old metadata goes back before any new
/// partition is removed, so a crash in between leaves at worst orphans that start-up removes.
async fn install(
    state: &ShardState,
    current: Arc<Topics>,
    meta: Arc<TopicMeta>,
    first_new: u32,
) -> BrokerResult<()> {
    let name = meta.name.clone();
    let mut by_name: BTreeMap<_, _> = current.by_name.clone();
    by_name.insert(name.clone(), meta.clone());
    let next = Arc::new(Topics { by_name });
    save(state, next.clone()).await?;
    let Err(error) = broadcast(state, next, Change::Created(meta)).await else {
        return Ok(());
    };
    tracing::warn!(topic = %name, %error, "the topic change failed; rolling it back");
    save(state, current.clone()).await?;
    broadcast(state, current, Change::Trimmed(name, first_new)).await?;
    Err(error)
}

/// Writes the metadata file durably on the blocking pool: its fsyncs would stall every
/// connection of shard 0.
async fn save(state: &ShardState, topics: Arc<Topics>) -> BrokerResult<()> {
    let data_dir = state.config.data_dir.clone();
    let saved = crate::runtime::blocking(move || topics.save(&data_dir)).await;
    saved.map_err(|error| {
        let kind = if error.raw_os_error() == Some(libc::ENOSPC) {
            ErrorKind::DiskFull
        } else {
            ErrorKind::StorageFailed
        };
        BrokerError::new(kind, format!("writing topic metadata: {error}"))
    })
}

#[derive(Clone)]
enum Change {
    /// A new topic, or more partitions of one: open what is not open yet.
    Created(Arc<TopicMeta>),
    Deleted(String),
    /// A creation or growth rolled back: partitions from this one on go.
    Trimmed(String, u32),
}

/// Has every shard take the new snapshot and open or remove its partitions of the topic.
async fn broadcast(state: &ShardState, topics: Arc<Topics>, change: Change) -> BrokerResult<()> {
    for shard in 0..state.shards() {
        let (topics, change) = (topics.clone(), change.clone());
        let deadline = Duration::from_millis(state.config.shard_call_timeout_ms);
        let outcome = state
            .mailboxes
            .call(shard, deadline, move |target| async move {
                *target.topics.borrow_mut() = topics;
                match change {
                    Change::Created(meta) => partition::open_owned(&target, &meta, true).await,
                    Change::Deleted(name) => {
                        partition::remove_owned(&target, &name).await;
                        Ok(())
                    }
                    Change::Trimmed(name, first) => {
                        partition::remove_owned_from(&target, &name, first).await;
                        Ok(())
                    }
                }
            })
            .await
            .map_err(BrokerError::from)?;
        outcome.map_err(|reason| BrokerError::new(ErrorKind::StorageFailed, reason))?;
    }
    Ok(())
}

/// Removes partition directories whose topic no longer exists (a crash between the metadata
/// write and the deletion leaves them). Runs once, before the shards start.
pub fn remove_orphan_partitions(
    data_dir: &std::path::Path,
    topics: &Topics,
) -> std::io::Result<()> {
    let dir = data_dir.join(topics::TOPICS_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let known = name.rsplit_once('-').is_some_and(|(topic, partition)| {
            let partition: Option<u32> = partition.parse().ok();
            topics
                .get(topic)
                .is_some_and(|meta| partition.is_some_and(|p| p < meta.partitions))
        });
        if !known {
            tracing::warn!(dir = %entry.path().display(), "removing the partition of a deleted topic");
            dirsync::remove_all_durable(&entry.path())?;
        }
    }
    Ok(())
}
