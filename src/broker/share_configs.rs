//! Share groups' own configs (the `share.*` settings IncrementalAlterConfigs sets on Kafka's
//! GROUP resource) and the settings a group works with (`ShareSettings`: the broker's
//! defaults with its own configs applied, each within Kafka's bounds), durable in `share_groups.json` like the ACLs: changed on shard 0, one
//! admin change at a time, saved (temp file, fsync, rename), then handed to every shard as a
//! snapshot. A shard reads the file the first time it needs it, so start-up is unchanged and a
//! broker that never sees a share group never reads it.
//!
//! Bounded: configs for at most `GROUPS_MAX` groups, each only the names `CONFIG_NAMES` lists,
//! each value checked against Kafka's bounds before it is saved (`ShareSettings::resolve`).

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BrokerError, BrokerResult, ErrorKind, ShardState, admin, json_file};
use crate::config::ShareGroupConfig;

pub const AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";
pub const RECORD_LOCK_DURATION_MS: &str = "share.record.lock.duration.ms";
pub const DELIVERY_COUNT_LIMIT: &str = "share.delivery.count.limit";
pub const SESSION_TIMEOUT_MS: &str = "share.session.timeout.ms";
pub const HEARTBEAT_INTERVAL_MS: &str = "share.heartbeat.interval.ms";
/// Every group config a share group takes, in the order DescribeConfigs lists them.
pub const CONFIG_NAMES: [&str; 5] = [
    AUTO_OFFSET_RESET,
    RECORD_LOCK_DURATION_MS,
    DELIVERY_COUNT_LIMIT,
    SESSION_TIMEOUT_MS,
    HEARTBEAT_INTERVAL_MS,
];

/// The settings a share group works with: the broker's defaults with its own configs applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareSettings {
    /// Where a new queue group starts: "earliest" or "latest".
    pub auto_offset_reset: String,
    pub record_lock_duration_ms: u32,
    pub delivery_count_limit: u32,
    pub session_timeout_ms: u32,
    pub heartbeat_interval_ms: u32,
}

impl ShareSettings {
    pub fn defaults(config: &ShareGroupConfig) -> ShareSettings {
        ShareSettings {
            auto_offset_reset: config.auto_offset_reset.clone(),
            record_lock_duration_ms: config.record_lock_duration_ms,
            delivery_count_limit: config.delivery_count_limit,
            session_timeout_ms: config.session_timeout_ms,
            heartbeat_interval_ms: config.heartbeat_interval_ms,
        }
    }

    /// The defaults with `overrides` (group configs) applied, each checked against Kafka's
    /// bounds for it.
    pub fn resolve(
        config: &ShareGroupConfig,
        overrides: &BTreeMap<String, String>,
    ) -> BrokerResult<ShareSettings> {
        let mut settings = ShareSettings::defaults(config);
        for (key, value) in overrides {
            settings.set(key, value)?;
        }
        if settings.session_timeout_ms <= settings.heartbeat_interval_ms {
            return Err(invalid_config(format!(
                "{SESSION_TIMEOUT_MS} must be greater than {HEARTBEAT_INTERVAL_MS}"
            )));
        }
        Ok(settings)
    }

    fn set(&mut self, key: &str, value: &str) -> BrokerResult<()> {
        match key {
            AUTO_OFFSET_RESET => {
                if !matches!(value, "earliest" | "latest") {
                    return Err(invalid_config(format!(
                        "{key}={value:?} is not earliest or latest"
                    )));
                }
                self.auto_offset_reset = value.to_string();
            }
            // Kafka's group config takes at least 1 s.
            RECORD_LOCK_DURATION_MS => {
                self.record_lock_duration_ms = bounded(key, value, 1_000, 3_600_000)?
            }
            DELIVERY_COUNT_LIMIT => self.delivery_count_limit = bounded(key, value, 2, 10)?,
            SESSION_TIMEOUT_MS => self.session_timeout_ms = bounded(key, value, 1_000, 3_600_000)?,
            HEARTBEAT_INTERVAL_MS => {
                self.heartbeat_interval_ms = bounded(key, value, 100, 3_600_000)?
            }
            other => {
                return Err(invalid_config(format!(
                    "unknown share group config {other:?}"
                )));
            }
        }
        Ok(())
    }

    /// (name, value) of each config, in `CONFIG_NAMES` order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            (AUTO_OFFSET_RESET, self.auto_offset_reset.clone()),
            (
                RECORD_LOCK_DURATION_MS,
                self.record_lock_duration_ms.to_string(),
            ),
            (DELIVERY_COUNT_LIMIT, self.delivery_count_limit.to_string()),
            (SESSION_TIMEOUT_MS, self.session_timeout_ms.to_string()),
            (
                HEARTBEAT_INTERVAL_MS,
                self.heartbeat_interval_ms.to_string(),
            ),
        ]
    }
}

fn invalid_config(message: String) -> BrokerError {
    BrokerError::new(ErrorKind::InvalidConfig, message)
}

fn bounded(key: &str, value: &str, min: u32, max: u32) -> BrokerResult<u32> {
    let parsed: u32 = value
        .parse()
        .map_err(|_| invalid_config(format!("{key}={value:?} is not a number")))?;
    if !(min..=max).contains(&parsed) {
        return Err(invalid_config(format!(
            "{key}={parsed} is outside {min}..={max}"
        )));
    }
    Ok(parsed)
}

const FILE: &str = "share_groups.json";
/// Groups with configs of their own.
pub const GROUPS_MAX: usize = 100_000;

/// Every share group's own configs, by group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareConfigs {
    groups: BTreeMap<String, BTreeMap<String, String>>,
}

impl ShareConfigs {
    /// The configs `group` sets itself.
    pub fn of(&self, group: &str) -> BTreeMap<String, String> {
        self.groups.get(group).cloned().unwrap_or_default()
    }
}

/// `current` with `changes` applied (Some sets, None removes), all checked, or why not.
pub fn changed(
    config: &ShareGroupConfig,
    current: BTreeMap<String, String>,
    changes: &[(String, Option<String>)],
) -> BrokerResult<BTreeMap<String, String>> {
    let mut configs = current;
    for (key, value) in changes {
        if !CONFIG_NAMES.contains(&key.as_str()) {
            return Err(BrokerError::new(
                ErrorKind::InvalidConfig,
                format!("unknown share group config {key:?}"),
            ));
        }
        match value {
            Some(value) => configs.insert(key.clone(), value.clone()),
            None => configs.remove(key),
        };
    }
    ShareSettings::resolve(config, &configs)?;
    Ok(configs)
}

/// This shard's snapshot, read from the file the first time.
pub async fn snapshot(state: &ShardState) -> BrokerResult<Arc<ShareConfigs>> {
    if state.share_configs_read.get() || state.share_configs.generation() > 0 {
        return Ok(state.share_configs.get());
    }
    let dir = state.config.data_dir.clone();
    let loaded = crate::runtime::blocking(move || json_file::load::<ShareConfigs>(&dir, FILE))
        .await
        .map_err(|error| BrokerError::new(ErrorKind::StorageFailed, error))?;
    // A change that reached this shard while the file was read is newer (its generation is
    // above 0): keep it.
    if state.share_configs.generation() == 0 && !state.share_configs_read.replace(true) {
        state.share_configs.replace(Arc::new(loaded));
    }
    Ok(state.share_configs.get())
}

/// Sets `group`'s configs (None: forgets them), on shard 0: saved, then on every shard.
pub async fn change(
    state: &Rc<ShardState>,
    group: String,
    configs: Option<BTreeMap<String, String>>,
) -> BrokerResult<()> {
    assert_eq!(state.id, 0, "share group configs change on shard 0");
    let _turn = admin::admin_turn(state).await;
    let mut all = ShareConfigs::clone(&*snapshot(state).await?);
    match configs {
        Some(configs) if !configs.is_empty() => {
            if !all.groups.contains_key(&group) && all.groups.len() >= GROUPS_MAX {
                return Err(BrokerError::new(
                    ErrorKind::ResourceLimit,
                    format!("{GROUPS_MAX} share groups have configs of their own"),
                ));
            }
            all.groups.insert(group, configs);
        }
        _ => {
            if all.groups.remove(&group).is_none() {
                return Ok(());
            }
        }
    }
    let dir = state.config.data_dir.clone();
    let to_save = all.clone();
    crate::runtime::blocking(move || json_file::save(&dir, FILE, &to_save))
        .await
        .map_err(|error| {
            BrokerError::new(ErrorKind::StorageFailed, format!("saving {FILE}: {error}"))
        })?;
    // Saved: the change stands even if a shard takes it late (the error says so).
    super::snapshot::distribute(state, |shard| &shard.share_configs, Arc::new(all)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_checked_against_kafkas_bounds() {
        let config = ShareGroupConfig::default();
        let set = |key: &str, value: &str| BTreeMap::from([(key.to_string(), value.to_string())]);
        let refused = ShareSettings::resolve(&config, &set(DELIVERY_COUNT_LIMIT, "11"));
        assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidConfig);
        let refused = ShareSettings::resolve(&config, &set("share.isolation.level", "x"));
        assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidConfig);
        let settings =
            ShareSettings::resolve(&config, &set(AUTO_OFFSET_RESET, "earliest")).unwrap();
        assert_eq!(settings.auto_offset_reset, "earliest");
        assert_eq!(settings.delivery_count_limit, config.delivery_count_limit);
    }
}
