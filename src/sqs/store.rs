//! What SQS keeps about a queue beyond its topic and queue group: its attributes as set (SQS's
//! names and values, the ones the broker has no setting for included) and its tags. They live
//! in an internal topic, `__sqs_queues` (one partition, fsynced, written only through the
//! service like any produce), one record per change keyed by the queue's name, a record
//! without a value for a deleted queue; the last record of a name wins. Each shard folds the
//! topic into a cache and reads on from where it stopped before each use, so a change made on
//! another shard is seen by the next request anywhere. The fold holds one record per queue (so
//! at most `topics_max`) and at most 10 move tasks per queue; `ringmq_sqs_store_records` shows it. Message move tasks keep their progress
//! there too (`task:` keys), so any connection may list them.

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
    /// An empty fold for shard `shard`, its fill published as a gauge.
    pub fn new(shard: usize) -> Store {
        Store {
            gauge: Some(metrics::gauge!("ringmq_sqs_store_records", "shard" => shard.to_string())),
            ..Store::default()
        }
    }

    fn publish(&self) {
        if let Some(gauge) = &self.gauge {
            gauge.set((self.queues.len() + self.tasks.len()) as f64);
        }
    }

    fn fold_task(&mut self, key: String, value: Option<&[u8]>) {
        let Some(parsed) = value.and_then(|value| serde_json::from_slice(value).ok()) else {
            self.tasks.remove(&key);
            return;
        };
        let source = task_source(&key).to_string();
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

/// The move tasks of `source`, newest first.
pub fn tasks_of(store: &SharedStore, source: &str) -> Vec<serde_json::Value> {
    store
        .borrow()
        .tasks
        .iter()
        .rev()
        .filter(|(key, _)| task_source(key) == source)
        .map(|(_, task)| task.clone())
        .collect()
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
                if name.starts_with(TASK_PREFIX) {
                    store.fold_task(name, stored.record.value.as_deref());
                    continue;
                }
                match stored.record.value.as_deref() {
                    None => {
                        store.queues.remove(&name);
                    }
                    Some(value) => match serde_json::from_slice::<QueueMeta>(value) {
                        Ok(meta) => {
                            store.queues.insert(name, meta);
                        }
                        Err(error) => {
                            tracing::warn!(%error, queue = name, "skipping a bad record of {TOPIC}")
                        }
                    },
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
