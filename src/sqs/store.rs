//! What SQS keeps about a queue beyond its topic and queue group: its attributes as set (SQS's
//! names and values, the ones the broker has no setting for included) and its tags. They live
//! in an internal topic, `__sqs_queues` (one partition, fsynced, written only through the
//! service like any produce), one record per change keyed by the queue's name, a record
//! without a value for a deleted queue; the last record of a name wins. Each shard folds the
//! topic into a cache and reads on from where it stopped before each use, so a change made on
//! another shard is seen by the next request anywhere. Message move tasks keep their progress
//! there too (`task:` keys), so any connection may list them.
//!
//! Anyone with Write on the topic can append to it, so the fold is bounded by what exists, not
//! by what was written: a record of a queue whose topic does not exist is ignored, a deleted
//! queue's move tasks go with it, a queue keeps at most 10 tasks, and the fold holds at most
//! `sqs.store_keys_max` keys (`ringmq_sqs_store_records` against `ringmq_sqs_store_records_max`;
//! records past it are counted in `ringmq_sqs_store_ignored_total` and new queues refused).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};

use super::errors::{SqsError, from_broker};
use crate::batch::{BatchBuilder, Compression, Record, records};
use crate::broker::ErrorKind;
use crate::broker::service::{
    AckLevel, Fetch, NewTopic, OffsetQuery, PartitionChoice, Produce, RequestContext, Service,
};

pub const TOPIC: &str = "__sqs_queues";
/// Bytes read from the topic per fetch while catching up.
const FETCH_BYTES: u32 = 1 << 20;

/// One queue's SQS-side record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueMeta {
    pub attributes: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub created_s: u64,
    pub modified_s: u64,
}

/// One shard's fold of the topic.
#[derive(Default)]
pub struct Store {
    /// The shard, and a nonce of this run of it: a move task's `_runner`, by which a restarted
    /// shard knows the tasks its previous run left RUNNING.
    shard: usize,
    nonce: u64,
    /// Keys (queues and tasks) the fold holds at most.
    keys_max: usize,
    /// Records ignored because the fold was full.
    ignored: Option<metrics::Counter>,
    next_offset: u64,
    queues: HashMap<String, QueueMeta>,
    /// Message move tasks (`move_tasks`) by key: `task:<source queue>:<started ms>:<id>`.
    tasks: BTreeMap<String, serde_json::Value>,
    /// When the topic was last read to its end.
    refreshed: Option<std::time::Instant>,
    /// `ringmq_sqs_store_records` of this shard: queues and move tasks held.
    gauge: Option<metrics::Gauge>,
}

/// How stale a queue's record may be when a send or a receive reads it: a change made through
/// another shard takes up to this long to apply there (SQS's own attribute changes take up to
/// a minute). Writes, lists and move tasks read to the end at once.
const READ_STALENESS: std::time::Duration = std::time::Duration::from_secs(1);

/// The key prefix of a move task's records (no queue name holds a ':').
pub const TASK_PREFIX: &str = "task:";
/// Move tasks kept per source queue (what ListMessageMoveTasks may show: SQS's 10).
const TASKS_PER_QUEUE_MAX: usize = 10;

impl Store {
    /// An empty fold for shard `shard` of at most `keys_max` keys, its fill published as gauges.
    pub fn new(shard: usize, keys_max: usize) -> Store {
        let label = shard.to_string();
        metrics::gauge!("ringmq_sqs_store_records_max", "shard" => label.clone())
            .set(keys_max as f64);
        Store {
            shard,
            nonce: super::receipt::new_nonce(),
            keys_max,
            ignored: Some(
                metrics::counter!("ringmq_sqs_store_ignored_total", "shard" => label.clone()),
            ),
            gauge: Some(metrics::gauge!("ringmq_sqs_store_records", "shard" => label)),
            ..Store::default()
        }
    }

    /// This shard run's name for the move tasks it runs: `<shard>:<nonce>`.
    pub fn runner(&self) -> String {
        format!("{}:{:016x}", self.shard, self.nonce)
    }

    /// This shard's id.
    pub fn shard(&self) -> usize {
        self.shard
    }

    fn len(&self) -> usize {
        self.queues.len().saturating_add(self.tasks.len())
    }

    fn holds(&self, key: &str) -> bool {
        self.queues.contains_key(key) || self.tasks.contains_key(key)
    }

    /// Whether a new key fits: if the fold is full, first drops what names a queue that is gone.
    fn room_for(&mut self, key: &str, exists: &dyn Fn(&str) -> bool) -> bool {
        if self.holds(key) || self.len() < self.keys_max {
            return true;
        }
        self.queues.retain(|name, _| exists(name));
        self.tasks.retain(|key, _| exists(task_source(key)));
        self.len() < self.keys_max
    }

    fn ignore(&self) {
        if let Some(counter) = &self.ignored {
            counter.increment(1);
        }
    }

    fn publish(&self) {
        if let Some(gauge) = &self.gauge {
            gauge.set(self.len() as f64);
        }
    }

    /// Folds one record of a queue (`value` None: deleted); ignored when the queue is gone.
    fn fold_queue(&mut self, name: String, value: Option<&[u8]>, exists: &dyn Fn(&str) -> bool) {
        let Some(value) = value else {
            self.queues.remove(&name);
            // A deleted queue's move tasks go with it.
            self.tasks.retain(|key, _| task_source(key) != name);
            return;
        };
        if !exists(&name) {
            return;
        }
        match serde_json::from_slice::<QueueMeta>(value) {
            Ok(meta) if self.room_for(&name, exists) => {
                self.queues.insert(name, meta);
            }
            Ok(_) => self.ignore(),
            Err(error) => {
                tracing::debug!(%error, queue = name, "skipping a bad record of {TOPIC}")
            }
        }
    }

    fn fold_task(&mut self, key: String, value: Option<&[u8]>, exists: &dyn Fn(&str) -> bool) {
        let Some(mut parsed) =
            value.and_then(|value| serde_json::from_slice::<serde_json::Value>(value).ok())
        else {
            self.tasks.remove(&key);
            return;
        };
        let source = task_source(&key).to_string();
        if !exists(&source) {
            return;
        }
        if !self.room_for(&key, exists) {
            self.ignore();
            return;
        }
        // A cancel sticks: the task's own progress records (RUNNING) written after it, before
        // the task saw it, do not undo it.
        if self
            .tasks
            .get(&key)
            .is_some_and(|old| old["Status"] == "CANCELLING")
            && parsed["Status"] == "RUNNING"
        {
            parsed["Status"] = serde_json::Value::String("CANCELLING".into());
        }
        self.tasks.insert(key, parsed);
        let of_source: Vec<String> = self
            .tasks
            .keys()
            .filter(|key| task_source(key) == source)
            .cloned()
            .collect();
        // Keys sort by start time within a source: the oldest go first.
        for old in of_source
            .iter()
            .take(of_source.len().saturating_sub(TASKS_PER_QUEUE_MAX))
        {
            self.tasks.remove(old);
        }
    }
}

fn task_source(key: &str) -> &str {
    key.strip_prefix(TASK_PREFIX)
        .and_then(|rest| rest.split(':').next())
        .unwrap_or_default()
}

/// The move tasks of `source` with their keys, newest first.
pub fn tasks_of(store: &SharedStore, source: &str) -> Vec<(String, serde_json::Value)> {
    store
        .borrow()
        .tasks
        .iter()
        .rev()
        .filter(|(key, _)| task_source(key) == source)
        .map(|(key, task)| (key.clone(), task.clone()))
        .collect()
}

/// Every move task that is RUNNING or CANCELLING, with its key.
pub fn active_tasks(store: &SharedStore) -> Vec<(String, serde_json::Value)> {
    store
        .borrow()
        .tasks
        .iter()
        .filter(|(_, task)| task["Status"] == "RUNNING" || task["Status"] == "CANCELLING")
        .map(|(key, task)| (key.clone(), task.clone()))
        .collect()
}

/// The move task under `key`, as last refreshed.
pub fn task(store: &SharedStore, key: &str) -> Option<serde_json::Value> {
    store.borrow().tasks.get(key).cloned()
}

/// Whether `queue`'s topic exists, whoever asks: the fold is shared by every principal's
/// requests, so it must not depend on what one of them may describe.
fn queue_exists(service: &Service, queue: &str) -> bool {
    service.topic_exists(queue)
}

pub type SharedStore = Rc<RefCell<Store>>;

async fn ensure_topic(service: &Service, ctx: &RequestContext) -> Result<(), SqsError> {
    if service.topic(ctx, TOPIC).is_ok() {
        return Ok(());
    }
    // Never deleted by age or size: a queue's attributes, tags and tasks live only here, and a
    // shard folds the whole log at start (its records are few: one per change).
    let keep = |key: &str| (key.to_string(), "none".to_string());
    let topic = NewTopic {
        name: TOPIC.to_string(),
        partitions: 1,
        configs: vec![keep("retention_ms"), keep("retention_bytes")],
    };
    match service.create_topic(ctx, topic).await {
        Ok(()) => Ok(()),
        Err(error) if error.kind == ErrorKind::TopicExists => Ok(()),
        Err(error) => Err(from_broker(error)),
    }
}

/// Reads what was written since the last look.
pub async fn refresh(
    store: &SharedStore,
    service: &Service,
    ctx: &RequestContext,
) -> Result<(), SqsError> {
    if service.topic(ctx, TOPIC).is_err() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    loop {
        let offset = store.borrow().next_offset;
        let fetch = Fetch {
            topic: TOPIC.to_string(),
            partition: 0,
            offset,
            max_bytes: FETCH_BYTES,
            min_bytes: 0,
            max_wait_ms: 0,
        };
        let fetched = match service.fetch(ctx, fetch).await {
            Ok(fetched) => fetched,
            // Records below the log's start were deleted (by hand: the topic keeps everything
            // it is created with): fold what is left rather than nothing.
            Err(error) if error.kind == ErrorKind::OffsetOutOfRange => {
                let earliest = service
                    .list_offset(ctx, TOPIC, 0, OffsetQuery::Earliest)
                    .await;
                let start = earliest.map_err(from_broker)?.log_start_offset;
                if start <= offset {
                    return Ok(());
                }
                store.borrow_mut().next_offset = start;
                continue;
            }
            Err(error) => return Err(from_broker(error)),
        };
        if fetched.records.is_empty() {
            store.borrow_mut().refreshed = Some(started);
            return Ok(());
        }
        let exists = |queue: &str| queue_exists(service, queue);
        let mut store = store.borrow_mut();
        let before = store.next_offset;
        for batch in &fetched.records {
            let decoded = records::decode(batch)
                .map_err(|error| SqsError::internal_error(format!("{TOPIC}: {error}")))?;
            for stored in decoded {
                let Ok(offset) = u64::try_from(stored.offset) else {
                    continue;
                };
                if offset < store.next_offset {
                    continue;
                }
                store.next_offset = offset.saturating_add(1);
                let Some(name) = stored
                    .record
                    .key
                    .as_deref()
                    .and_then(|key| std::str::from_utf8(key).ok())
                else {
                    continue;
                };
                let name = name.to_string();
                let value = stored.record.value.as_deref();
                if name.starts_with(TASK_PREFIX) {
                    store.fold_task(name, value, &exists);
                } else {
                    store.fold_queue(name, value, &exists);
                }
            }
        }
        store.publish();
        if store.next_offset == before {
            // Batches that held nothing new (a concurrent refresh got them first).
            store.refreshed = Some(started);
            return Ok(());
        }
    }
}

/// The queue's record, if it has one (a queue made with `ringmq queue create` has none).
pub async fn get(
    store: &SharedStore,
    service: &Service,
    ctx: &RequestContext,
    queue: &str,
) -> Result<Option<QueueMeta>, SqsError> {
    let fresh = store
        .borrow()
        .refreshed
        .is_some_and(|at| at.elapsed() < READ_STALENESS);
    if !fresh {
        refresh(store, service, ctx).await?;
    }
    Ok(store.borrow().queues.get(queue).cloned())
}

/// Every queue's record, as last refreshed.
pub fn all(store: &SharedStore) -> Vec<(String, QueueMeta)> {
    store
        .borrow()
        .queues
        .iter()
        .map(|(name, meta)| (name.clone(), meta.clone()))
        .collect()
}

/// Whether the fold has room for a record under `key` (OverLimit if not): asked before a
/// queue is made, so a queue is not made that its record could not follow.
pub fn check_room(store: &SharedStore, service: &Service, key: &str) -> Result<(), SqsError> {
    let exists = |queue: &str| queue_exists(service, queue);
    if store.borrow_mut().room_for(key, &exists) {
        return Ok(());
    }
    let max = store.borrow().keys_max;
    Err(SqsError::over_limit(format!(
        "the SQS store holds its sqs.store_keys_max ({max}) queues and move tasks"
    )))
}

/// Writes the queue's record (None: the queue is gone), durably, then reads it back.
pub async fn put(
    store: &SharedStore,
    service: &Service,
    ctx: &RequestContext,
    queue: &str,
    meta: Option<&QueueMeta>,
) -> Result<(), SqsError> {
    let value = meta
        .map(serde_json::to_vec)
        .transpose()
        .map_err(|error| SqsError::internal_error(error.to_string()))?;
    write(store, service, ctx, queue, value).await
}

/// Writes a move task's record under `key` (`TASK_PREFIX`...), durably, then reads it back.
pub async fn put_task(
    store: &SharedStore,
    service: &Service,
    ctx: &RequestContext,
    key: &str,
    task: &serde_json::Value,
) -> Result<(), SqsError> {
    debug_assert!(key.starts_with(TASK_PREFIX));
    write(
        store,
        service,
        ctx,
        key,
        Some(task.to_string().into_bytes()),
    )
    .await
}

async fn write(
    store: &SharedStore,
    service: &Service,
    ctx: &RequestContext,
    queue: &str,
    value: Option<Vec<u8>>,
) -> Result<(), SqsError> {
    if value.is_some() {
        check_room(store, service, queue)?;
    }
    ensure_topic(service, ctx).await?;
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(
        super::now_ms() as i64,
        Some(queue.as_bytes()),
        value.as_deref(),
    ));
    let produce = Produce {
        topic: TOPIC.to_string(),
        partition: PartitionChoice::Index(0),
        acks: AckLevel::Fsynced,
        records: BytesMut::from(&builder.build()[..]),
    };
    service.produce(ctx, produce).await.map_err(from_broker)?;
    refresh(store, service, ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(status: &str, moved: u64) -> Vec<u8> {
        serde_json::json!({"Status": status, "ApproximateNumberOfMessagesMoved": moved})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_fold_keeps_only_existing_queues_up_to_its_bound() {
        let mut store = Store::new(0, 4);
        let exists = |queue: &str| queue.starts_with('q');
        let meta = serde_json::to_vec(&QueueMeta::default()).unwrap();
        store.fold_queue("ghost".into(), Some(&meta), &exists);
        store.fold_task("task:ghost:1:a".into(), Some(&task("RUNNING", 0)), &exists);
        assert_eq!(store.len(), 0, "nothing of a queue that does not exist");
        for name in ["q1", "q2", "q3", "q4", "q5"] {
            store.fold_queue(name.into(), Some(&meta), &exists);
        }
        assert_eq!(store.len(), 4, "the bound");
        assert!(!store.queues.contains_key("q5"));
        store.fold_queue("q1".into(), Some(&meta), &exists);
        assert_eq!(store.len(), 4, "a key held is rewritten in place");
        // Once q1..q3 are gone, their room is taken back when a new key needs it.
        let fewer = |queue: &str| queue == "q4" || queue == "q5";
        store.fold_queue("q5".into(), Some(&meta), &fewer);
        assert_eq!(store.len(), 2);
        assert!(store.queues.contains_key("q5"));
    }

    #[test]
    fn a_queue_takes_its_tasks_along_and_a_cancel_sticks() {
        let mut store = Store::new(0, 100);
        let exists = |_: &str| true;
        let meta = serde_json::to_vec(&QueueMeta::default()).unwrap();
        store.fold_queue("q".into(), Some(&meta), &exists);
        store.fold_task("task:q:1:a".into(), Some(&task("RUNNING", 1)), &exists);
        store.fold_task("task:q:1:a".into(), Some(&task("CANCELLING", 1)), &exists);
        store.fold_task("task:q:1:a".into(), Some(&task("RUNNING", 3)), &exists);
        let held = &store.tasks["task:q:1:a"];
        assert_eq!(
            held["Status"], "CANCELLING",
            "progress written after a cancel"
        );
        assert_eq!(held["ApproximateNumberOfMessagesMoved"], 3);
        store.fold_task("task:q:1:a".into(), Some(&task("CANCELLED", 3)), &exists);
        assert_eq!(store.tasks["task:q:1:a"]["Status"], "CANCELLED");
        store.fold_task("task:other:1:b".into(), Some(&task("RUNNING", 0)), &exists);
        store.fold_queue("q".into(), None, &exists);
        assert_eq!(
            store.tasks.keys().collect::<Vec<_>>(),
            ["task:other:1:b"],
            "q's tasks went with it"
        );
    }
}
