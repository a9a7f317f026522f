//! Each shard's one queue timer. It wakes at the earliest lock or delay deadline of the
//! partitions the shard owns and ends what is due (messages available again, or dead-lettered
//! once out of deliveries), so delays and visibility timeouts end on time, not on the next
//! tick. Every `lock_check_interval_ms` it also retries dead letters that failed, publishes
//! the groups' metrics and tells each log what its groups have not settled (retention keeps
//! it). A state's `expire` is a no-op until its earliest deadline, so a tick costs little
//! where nothing expires.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{PartitionQueues, dead_letter, owner::now_ms};
use crate::broker::ShardState;

pub async fn run(state: Rc<ShardState>) {
    let interval = Duration::from_millis(state.config.queues.lock_check_interval_ms.max(1));
    let timer = state.queues.borrow().timer.clone();
    let mut full_tick_at = Instant::now() + interval;
    loop {
        // Registered before the deadlines are read, so one set meanwhile is not missed.
        let lowered = timer.wake.wait();
        let earliest_ms = state
            .queues
            .borrow()
            .all()
            .iter()
            .map(|queues| queues.next_deadline_ms())
            .min()
            .unwrap_or(u64::MAX);
        timer.arm(earliest_ms);
        let until_due = Duration::from_millis(earliest_ms.saturating_sub(now_ms()));
        let until_tick = full_tick_at.saturating_duration_since(Instant::now());
        // At least a millisecond: a deadline in the current millisecond is not spun on.
        let sleep = until_due.min(until_tick).max(DEADLINE_SLEEP_MIN);
        let sleeping = std::pin::pin!(crate::runtime::sleep(sleep));
        let lowered = std::pin::pin!(lowered);
        let woken = state
            .lifecycle
            .unless_stopping(futures_util::future::select(sleeping, lowered))
            .await;
        if woken.is_none() {
            return;
        }
        if Instant::now() >= full_tick_at {
            tick(&state).await;
            full_tick_at = Instant::now() + interval;
        } else {
            expire(&state).await;
        }
    }
}

/// The shortest sleep between two looks at the deadlines.
const DEADLINE_SLEEP_MIN: Duration = Duration::from_millis(1);

/// Ends what is due, between the full ticks.
async fn expire(state: &Rc<ShardState>) {
    let all = state.queues.borrow().all();
    for queues in all {
        if queues.next_deadline_ms() > now_ms() {
            continue;
        }
        for (group, letter) in queues.expire_all(now_ms()) {
            // An error is logged and the letter queued for the next tick by `write`.
            let _ = dead_letter::write(state, &queues, &group, letter).await;
        }
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
