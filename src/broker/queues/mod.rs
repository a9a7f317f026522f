//! Queues: a queue group reads a topic (all its partitions) as a work queue, as Kafka's share
//! groups (KIP-932) do. Inside a group consumers compete: each message is locked to one
//! consumer at a time and done only when acknowledged; several groups on one topic each get
//! every message. Built on the log: messages stay in the partition, and a group's state per
//! partition is a settled prefix and a bounded window of spans above it.
//!
//! Thread-per-core: a group's state for a partition lives on the shard owning the partition
//! (`ShardQueues` here, one `PartitionQueues` per partition with groups), next to its log, so
//! receives read and lock without locks or hops. Modules, one concept each: `spans` (the
//! window's runs of offsets), `state` (the state machine, pure, time passed in), `settings`
//! (a group's settings and the bounds), `journal` (the durable record, folded and compacted at
//! open), `owner` (the operations run on the owner shard), `dead_letter` (writing dead letters), `delay` (when a message is due),
//! `background` (lock expiry and metrics, one timer per shard), `metrics`.

pub mod background;
pub mod dead_letter;
pub mod delay;
pub mod journal;
pub mod metrics;
pub mod owner;
pub mod settings;
pub mod spans;
pub mod state;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use bytes::Bytes;

use crate::batch::Header;
use crate::broker::{BrokerError, BrokerResult, ErrorKind};
use crate::runtime::Notify;
use crate::storage::PartitionLog;
use journal::{Entry, Groups};
use metrics::QueueMetrics;
use spans::ConsumerId;
use state::{DeadLetter, QueueState};

pub use settings::{QueueSettings, StartAt};
pub use state::{Action, View};

/// A message a receive delivered, locked to its consumer until `lock_deadline_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub partition: u32,
    pub offset: u64,
    /// 1 on the first delivery.
    pub deliveries: u32,
    pub lock_deadline_ms: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A consumer's id as the state keys it.
pub fn consumer_id(name: &str) -> ConsumerId {
    xxhash_rust::xxh3::xxh3_64(name.as_bytes())
}

pub fn unknown_group(topic: &str, group: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownQueueGroup,
        format!("no queue group {group:?} on topic {topic:?}"),
    )
}

/// The queue groups of one partition: their states, the journal that keeps them, and the
/// signal that wakes waiting receives when messages may have become available.
pub struct PartitionQueues {
    pub topic: String,
    pub partition: u32,
    journal: PartitionLog,
    groups: RefCell<Groups>,
    metrics: RefCell<HashMap<String, QueueMetrics>>,
    /// Each group's oldest available offset as last read, and its batch's first timestamp:
    /// the age gauge reads the log only when that offset moves.
    oldest: RefCell<HashMap<String, (u64, u64)>>,
    /// Notified when a settle, an expiry or a dead letter may have freed something.
    pub changed: Notify,
    /// Dead letters to write at the next tick (a write failed, or a restart found them).
    retries: RefCell<Vec<(String, DeadLetter)>>,
    /// The shard's queue timer, told when a deadline here comes before the one it waits for.
    timer: Rc<DeadlineTimer>,
}

/// The shard's queue timer's schedule: the background task sleeps until the earliest lock or
/// delay deadline of the shard's queues (not only to its next `lock_check_interval_ms` tick),
/// so a delayed message or an expired lock is available again within a millisecond or two of
/// its time. A receive that sets an earlier deadline than the one slept for wakes it.
#[derive(Default)]
pub struct DeadlineTimer {
    /// The deadline the task sleeps until (ms since the epoch; u64::MAX: none).
    armed_at_ms: Cell<u64>,
    pub wake: Notify,
}

impl DeadlineTimer {
    /// Sleeps until `deadline_ms` at the latest from now on.
    pub fn arm(&self, deadline_ms: u64) {
        self.armed_at_ms.set(deadline_ms);
    }

    /// A deadline was set: wakes the task if it sleeps past it.
    fn lowered(&self, deadline_ms: u64) {
        if deadline_ms < self.armed_at_ms.get() {
            self.armed_at_ms.set(deadline_ms);
            self.wake.notify();
        }
    }
}

impl PartitionQueues {
    fn new(
        topic: &str,
        partition: u32,
        journal: PartitionLog,
        groups: Groups,
        timer: Rc<DeadlineTimer>,
    ) -> PartitionQueues {
        PartitionQueues {
            topic: topic.to_string(),
            partition,
            journal,
            groups: RefCell::new(groups),
            metrics: RefCell::new(HashMap::new()),
            oldest: RefCell::new(HashMap::new()),
            changed: Notify::default(),
            retries: RefCell::new(Vec::new()),
            timer,
        }
    }

    /// Runs `work` on group `name`'s state (never across an await).
    pub fn with_group<R>(
        &self,
        name: &str,
        work: impl FnOnce(&mut QueueState) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        let mut groups = self.groups.borrow_mut();
        let state = groups
            .get_mut(name)
            .ok_or_else(|| unknown_group(&self.topic, name))?;
        let result = work(state);
        self.timer.lowered(state.next_deadline_ms());
        result
    }

    /// The earliest lock or delay deadline of any group here (u64::MAX: none).
    pub fn next_deadline_ms(&self) -> u64 {
        self.groups
            .borrow()
            .values()
            .map(QueueState::next_deadline_ms)
            .min()
            .unwrap_or(u64::MAX)
    }

    pub fn group_names(&self) -> Vec<String> {
        self.groups.borrow().keys().cloned().collect()
    }

    /// Journals `entries` of `group`, answered once fsynced.
    pub async fn journal(&self, group: &str, entries: Vec<Entry>) -> BrokerResult<()> {
        let entries: Vec<(String, Entry)> = entries
            .into_iter()
            .map(|e| (group.to_string(), e))
            .collect();
        journal::append(&self.journal, &entries).await
    }

    /// Queues `letter` of `group` for the background task.
    pub fn retry_later(&self, group: &str, letter: DeadLetter) {
        self.retries.borrow_mut().push((group.to_string(), letter));
    }

    pub fn take_retries(&self) -> Vec<(String, DeadLetter)> {
        std::mem::take(&mut self.retries.borrow_mut())
    }

    /// Ends the expired locks of every group; returns the dead letters to write.
    pub fn expire_all(&self, now_ms: u64) -> Vec<(String, DeadLetter)> {
        let mut letters = Vec::new();
        let mut due_any = false;
        for (name, state) in self.groups.borrow_mut().iter_mut() {
            // A lock or a delay ended (or the deadline was early): the waiters check again.
            due_any |= state.next_deadline_ms() <= now_ms;
            letters.extend(state.expire(now_ms).into_iter().map(|l| (name.clone(), l)));
        }
        if due_any {
            self.changed.notify();
        }
        letters
    }

    /// The lowest offset some group has not settled (None: no group): what retention keeps.
    pub fn retention_hold(&self) -> Option<u64> {
        self.groups
            .borrow()
            .values()
            .map(QueueState::settled_below)
            .min()
    }

    /// Tells the partition's log what its queue groups still need (see `retention_hold`).
    pub fn hold_retention(&self, state: &crate::broker::ShardState) {
        if let Ok(log) = state.log(&self.topic, self.partition) {
            log.set_retention_hold(self.retention_hold());
        }
    }

    /// Publishes every group's metrics, reading from `log` the timestamp of each group's
    /// oldest available message when that message changed since the last time.
    pub async fn publish_metrics(&self, log: &PartitionLog, now_ms: u64) {
        let high_watermark = log.high_watermark();
        let oldest: Vec<(String, Option<u64>)> = self
            .groups
            .borrow()
            .iter()
            .map(|(name, state)| (name.clone(), state.view(high_watermark).oldest_available))
            .collect();
        for (name, offset) in &oldest {
            let known = self.oldest.borrow().get(name).map(|(at, _)| *at);
            if let Some(offset) = *offset
                && known != Some(offset)
                && let Some(timestamp) = batch_timestamp(log, offset).await
            {
                self.oldest
                    .borrow_mut()
                    .insert(name.clone(), (offset, timestamp));
            }
        }
        let groups = self.groups.borrow();
        let mut metrics = self.metrics.borrow_mut();
        let mut timestamps = self.oldest.borrow_mut();
        metrics.retain(|name, _| groups.contains_key(name));
        timestamps.retain(|name, _| groups.contains_key(name));
        for (name, state) in groups.iter() {
            let view = state.view(high_watermark);
            let age_ms = view
                .oldest_available
                .and_then(|offset| timestamps.get(name).filter(|(at, _)| *at == offset))
                .map_or(0, |(_, timestamp)| now_ms.saturating_sub(*timestamp));
            metrics
                .entry(name.clone())
                .or_insert_with(|| QueueMetrics::new(&self.topic, name, self.partition))
                .publish(&state.stats, &view, age_ms);
        }
    }
}

/// The first timestamp of the batch holding `offset` (clamped at 0), or None if it cannot be
/// read now (gone, damaged): the age gauge then waits for the next tick.
async fn batch_timestamp(log: &PartitionLog, offset: u64) -> Option<u64> {
    let read = log.read(offset, 1).await.ok()?;
    let first = read.chunks.first()?;
    let header = crate::batch::header(first).ok()?;
    Some(header.base_timestamp.get().max(0) as u64)
}

/// The queue groups of every partition this shard owns that has any.
#[derive(Default)]
pub struct ShardQueues {
    partitions: HashMap<(String, u32), Rc<PartitionQueues>>,
    pub timer: Rc<DeadlineTimer>,
}

impl ShardQueues {
    pub fn get(&self, topic: &str, partition: u32) -> Option<Rc<PartitionQueues>> {
        self.partitions
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn all(&self) -> Vec<Rc<PartitionQueues>> {
        self.partitions.values().cloned().collect()
    }

    fn insert(&mut self, queues: Rc<PartitionQueues>) {
        self.partitions
            .insert((queues.topic.clone(), queues.partition), queues);
    }

    fn remove(&mut self, topic: &str, partition: u32) -> Option<Rc<PartitionQueues>> {
        self.partitions.remove(&(topic.to_string(), partition))
    }
}

/// Opens the journal of a partition this shard owns, if it has one (at start, or when a topic's
/// partition opens), and queues the dead letters of messages that ran out of deliveries.
pub async fn open_owned(
    state: &crate::broker::ShardState,
    topic: &str,
    partition: u32,
) -> Result<(), String> {
    if state.queues.borrow().get(topic, partition).is_some() {
        return Ok(());
    }
    let Some((log, groups)) =
        journal::open(&state.config.data_dir, topic, partition, false).await?
    else {
        return Ok(());
    };
    let timer = state.queues.borrow().timer.clone();
    let queues = Rc::new(PartitionQueues::new(topic, partition, log, groups, timer));
    state.queues.borrow_mut().insert(queues.clone());
    queues.hold_retention(state);
    queues.timer.lowered(queues.next_deadline_ms());
    background::queue_exhausted(state, &queues);
    Ok(())
}

/// The queues of a partition this shard owns, with its journal created if new.
pub async fn open_or_create(
    state: &Rc<crate::broker::ShardState>,
    topic: &str,
    partition: u32,
) -> BrokerResult<Rc<PartitionQueues>> {
    if let Some(queues) = state.queues.borrow().get(topic, partition) {
        return Ok(queues);
    }
    let opened = journal::open(&state.config.data_dir, topic, partition, true)
        .await
        .map_err(|error| BrokerError::new(ErrorKind::StorageFailed, error))?;
    // Another request may have opened it while this one awaited: keep the first.
    if let Some(queues) = state.queues.borrow().get(topic, partition) {
        if let Some((log, _)) = opened {
            crate::runtime::spawn_detached(async move {
                let _ = log.close().await;
            });
        }
        return Ok(queues);
    }
    let (log, groups) = opened.ok_or_else(|| {
        BrokerError::new(ErrorKind::StorageFailed, "the queue journal did not open")
    })?;
    let timer = state.queues.borrow().timer.clone();
    let queues = Rc::new(PartitionQueues::new(topic, partition, log, groups, timer));
    state.queues.borrow_mut().insert(queues.clone());
    queues.timer.lowered(queues.next_deadline_ms());
    Ok(queues)
}

/// Closes and deletes the journal of a partition (its topic is deleted), or of leftovers of
/// an earlier topic of the same name.
pub async fn remove_owned(state: &crate::broker::ShardState, topic: &str, partition: u32) {
    let removed = state.queues.borrow_mut().remove(topic, partition);
    if let Some(queues) = removed {
        let _ = queues.journal.close().await;
        queues.changed.notify();
    }
    let dir = journal::dir(&state.config.data_dir, topic, partition);
    if let Err(error) = crate::storage::dirsync::remove_all_durable_off_shard(&dir).await {
        tracing::warn!(dir = %dir.display(), %error, "could not delete a queue journal");
    }
}

/// Closes every journal of this shard (at shutdown).
pub async fn close(state: &crate::broker::ShardState) {
    let all: Vec<Rc<PartitionQueues>> = state
        .queues
        .borrow_mut()
        .partitions
        .drain()
        .map(|(_, q)| q)
        .collect();
    for queues in all {
        if let Err(error) = queues.journal.close().await {
            tracing::warn!(topic = %queues.topic, partition = queues.partition, %error, "closing a queue journal failed");
        }
        queues.changed.notify();
    }
}
