//! The coordinator's periodic work: expiring the sessions of silent members (so that their
//! partitions move to live ones) and publishing each group's committed offsets and lag as
//! metrics. It runs on each shard for the groups that shard coordinates, until the shard stops.

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::broker::ShardState;
use crate::runtime;

/// How often sessions are checked: a member is removed at most this long after its timeout.
const EXPIRY_INTERVAL: Duration = Duration::from_millis(100);

/// Expires sessions (every 100 ms) and publishes each group's committed offsets and lag (every
/// `group_lag_interval_ms`), until the shard stops.
pub async fn run_background(state: Rc<ShardState>) {
    let lag_every = Duration::from_millis(state.config.group_lag_interval_ms);
    let mut last_lag = Instant::now();
    while state
        .lifecycle
        .unless_stopping(runtime::sleep(EXPIRY_INTERVAL))
        .await
        .is_some()
    {
        expire_sessions(&state);
        if last_lag.elapsed() >= lag_every {
            last_lag = Instant::now();
            publish_lag(&state).await;
        }
    }
}

/// Removes members whose sessions expired and starts a new round for their groups.
pub fn expire_sessions(state: &ShardState) {
    let mut coordinator = state.coordinator.borrow_mut();
    for (name, group) in coordinator.groups.iter_mut() {
        group.expire_sessions(name, state);
    }
}

async fn publish_lag(state: &Rc<ShardState>) {
    // Copied out first: the coordinator must not stay borrowed across the awaits below.
    let committed: Vec<(String, String, u32, u64)> = {
        let coordinator = state.coordinator.borrow();
        coordinator
            .groups
            .iter()
            .flat_map(|(name, group)| {
                group
                    .committed()
                    .iter()
                    .map(move |((t, p), o)| (name.clone(), t.clone(), *p, *o))
            })
            .collect()
    };
    let mut revived = BTreeSet::new();
    for (group, topic, partition, offset) in committed {
        // A group of a deleted one's name commits again: its series are served again.
        if revived.insert(group.clone()) {
            crate::metrics::revive("group", &group);
        }
        let Ok(high_watermark) = state.high_watermark(&topic, partition).await else {
            continue;
        };
        let labels = [
            ("group", group),
            ("topic", topic),
            ("partition", partition.to_string()),
        ];
        metrics::gauge!("ringmq_group_committed_offset", &labels).set(offset as f64);
        metrics::gauge!("ringmq_group_lag", &labels)
            .set(high_watermark.saturating_sub(offset) as f64);
    }
}
