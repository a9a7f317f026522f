//! Each shard's one queue timer: every `lock_check_interval_ms` it ends the locks whose
//! deadline passed on the partitions the shard owns (messages available again, or
//! dead-lettered once out of deliveries), retries dead letters that failed, publishes the
//! groups' metrics and tells each log what its groups have not settled (retention keeps it). A state's `expire` is a no-op until its earliest deadline, so a tick costs
//! little where nothing expires.

use std::rc::Rc;
use std::time::Duration;

use super::{PartitionQueues, dead_letter, owner::now_ms};
use crate::broker::ShardState;

pub async fn run(state: Rc<ShardState>) {
    let interval = Duration::from_millis(state.config.queues.lock_check_interval_ms.max(1));
    loop {
        let slept = state
            .lifecycle
            .unless_stopping(crate::runtime::sleep(interval))
            .await;
        if slept.is_none() {
            return;
        }
        tick(&state).await;
    }
}

async fn tick(state: &Rc<ShardState>) {
    let all = state.queues.borrow().all();
    for queues in all {
        let mut letters = queues.expire_all(now_ms());
        letters.append(&mut queues.take_retries());
        for (group, letter) in letters {
            // An error is logged and the letter queued for the next tick by `write`.
            let _ = dead_letter::write(state, &queues, &group, letter).await;
        }
        if let Ok(log) = state.log(&queues.topic, queues.partition) {
            queues.publish_metrics(&log, now_ms()).await;
            log.set_retention_hold(queues.retention_hold());
        }
    }
}

/// Queues for dead-lettering what ran out of deliveries before a restart (its last lock died
/// with the process); the first tick writes them.
pub fn queue_exhausted(_state: &ShardState, queues: &Rc<PartitionQueues>) {
    for group in queues.group_names() {
        let exhausted = queues.with_group(&group, |queue| Ok(queue.exhausted()));
        for letter in exhausted.unwrap_or_default() {
            queues.retry_later(&group, letter);
        }
    }
}
