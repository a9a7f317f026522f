//! A batching producer: records gather per partition into RecordBatch v2 batches, sent when a
//! batch reaches `batch_bytes` or has waited `linger_ms`, compressed with the chosen codec.
//! Keyed records go to the partition `partitioner` gives (murmur2 by default, as Kafka's Java
//! client, so that keys land where Kafka clients put them); unkeyed ones stick to a partition per
//! batch, rotating. Each `send` returns the record's offset once acknowledged.
//!
//! Delivery: at-least-once with `retries > 0` (a retried batch whose first attempt did land is
//! stored twice, and batches in flight together may land out of order on a retry), at-most-once
//! with `retries = 0` and `acks = none`.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_channel::oneshot;

use super::{Client, ClientError, Result};
use crate::batch::{BatchBuilder, Compression, HEADER_BYTES, Record};
use crate::partitioner::Partitioner;
use crate::protocol::{ErrorCode, ProtocolError};
use crate::runtime::{self, Notify};
use crate::storage::AckLevel;

#[derive(Clone, Debug)]
/// How a `Producer` batches and sends.
pub struct ProducerConfig {
    /// How long a batch waits for more records before it is sent.
    pub linger_ms: u64,
    /// A batch is sent once it holds this many bytes.
    pub batch_bytes: usize,
    /// The codec batches are compressed with (stored as sent).
    pub compression: Compression,
    /// When the broker acknowledges: `None`, `Written` (page cache) or `Fsynced` (on disk).
    pub acks: AckLevel,
    /// Retries of a batch refused with a retriable error (`throttled`, `disk_full`, ...).
    pub retries: u32,
    /// The wait before a retry.
    pub retry_backoff_ms: u64,
    /// Batches sent but not yet acknowledged; `send` waits beyond this (backpressure).
    pub inflight_batches_max: usize,
    /// The broker's limit on one record's encoded body (the topic's `record_bytes_max`): a
    /// larger record is refused by `send` with record_too_large, before it joins a batch, so
    /// it cannot fail the records batched with it.
    pub record_bytes_max: usize,
    /// The broker's limit on one batch (the topic's `batch_bytes_max`): an open batch is sent
    /// before a record that would take it past this.
    pub batch_bytes_max: usize,
    /// The key → partition rule of `send`: `Murmur2` (the default) agrees with Kafka's Java
    /// client, kafkajs, kafka-python, aiokafka and librdkafka's `murmur2_random`; `Crc32` with
    /// librdkafka's default `consistent_random`; `Xxh3` with ringmq before murmur2.
    pub partitioner: Partitioner,
}

impl Default for ProducerConfig {
    fn default() -> ProducerConfig {
        ProducerConfig {
            linger_ms: 5,
            batch_bytes: 256 * 1024,
            compression: Compression::None,
            acks: AckLevel::Fsynced,
            retries: 3,
            retry_backoff_ms: 100,
            inflight_batches_max: 64,
            record_bytes_max: 1 << 20,
            batch_bytes_max: 1 << 20,
            partitioner: Partitioner::Murmur2,
        }
    }
}

impl ProducerConfig {
    /// This configuration with keys partitioned by `partitioner`.
    pub fn with_partitioner(self, partitioner: Partitioner) -> ProducerConfig {
        ProducerConfig {
            partitioner,
            ..self
        }
    }
}

/// Where an acknowledged record was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordAck {
    /// The partition it was stored in.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
}

struct Accumulator {
    builder: BatchBuilder,
    waiters: Vec<oneshot::Sender<Result<RecordAck>>>,
    opened: Instant,
}

struct Shared {
    client: Client,
    config: ProducerConfig,
    partitions: RefCell<HashMap<String, u32>>,
    open: RefCell<HashMap<(String, u32), Accumulator>>,
    sticky: RefCell<HashMap<String, u32>>,
    inflight: Cell<usize>,
    released: Notify,
}

#[derive(Clone)]
/// Batches records per partition and sends them, keyed records to the partition their
/// `partitioner` gives and unkeyed ones to a sticky partition; each `send` returns a `Delivery`
/// to await.
pub struct Producer {
    shared: Rc<Shared>,
}

/// Resolves to where the record was stored, or why it was not.
pub type Delivery = oneshot::Receiver<Result<RecordAck>>;

impl Producer {
    /// A producer sending through `client` (it spawns its linger task on this thread).
    pub fn new(client: Client, config: ProducerConfig) -> Producer {
        let shared = Rc::new(Shared {
            client,
            config,
            partitions: RefCell::new(HashMap::new()),
            open: RefCell::new(HashMap::new()),
            sticky: RefCell::new(HashMap::new()),
            inflight: Cell::new(0),
            released: Notify::default(),
        });
        runtime::spawn_detached(linger_loop(Rc::downgrade(&shared)));
        Producer { shared }
    }

    async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(count) = self.shared.partitions.borrow().get(topic) {
            return Ok(*count);
        }
        let metadata = self.shared.client.metadata(&[topic]).await?;
        let count = metadata.first().map_or(0, |topic| topic.partitions);
        self.shared
            .partitions
            .borrow_mut()
            .insert(topic.to_string(), count);
        Ok(count)
    }

    /// Queues `record` for `topic`, partitioned by its key. Await the returned `Delivery` for
    /// its offset; `flush` sends everything queued now.
    pub async fn send(&self, topic: &str, record: Record) -> Result<Delivery> {
        let partitions = self.partition_count(topic).await?;
        let partition = match &record.key {
            Some(key) => self.shared.config.partitioner.partition(key, partitions),
            None => {
                *self
                    .shared
                    .sticky
                    .borrow_mut()
                    .entry(topic.to_string())
                    .or_insert(0)
                    % partitions.max(1)
            }
        };
        self.send_to(topic, partition, record).await
    }

    /// Queues `record` for `partition` of `topic`, whatever its key.
    pub async fn send_to(&self, topic: &str, partition: u32, record: Record) -> Result<Delivery> {
        let shared = &self.shared;
        let body = record_body_bytes_max(&record);
        // A record's share of a batch: its body and the length varint before it.
        let share = body + 5;
        let limit = shared.config.record_bytes_max.min(
            shared
                .config
                .batch_bytes_max
                .saturating_sub(HEADER_BYTES + 5),
        );
        if body > limit {
            return Err(ClientError::Server(ProtocolError::new(
                ErrorCode::RecordTooLarge,
                format!("a record of {body} bytes is over the limit of {limit} bytes"),
            )));
        }
        let would_overflow = shared
            .open
            .borrow()
            .get(&(topic.to_string(), partition))
            .is_some_and(|open| {
                !open.builder.is_empty()
                    && open.builder.size_bytes() + share > shared.config.batch_bytes_max
            });
        if would_overflow {
            self.send_batch(topic, partition).await;
        }
        let (sender, receiver) = oneshot::channel();
        let full = {
            let mut open = shared.open.borrow_mut();
            let accumulator = open
                .entry((topic.to_string(), partition))
                .or_insert_with(|| Accumulator {
                    builder: BatchBuilder::new(shared.config.compression),
                    waiters: Vec::new(),
                    opened: Instant::now(),
                });
            accumulator.builder.push(record);
            accumulator.waiters.push(sender);
            accumulator.builder.size_bytes() >= shared.config.batch_bytes
        };
        if full {
            self.send_batch(topic, partition).await;
        }
        Ok(receiver)
    }

    /// Sends the open batch of one partition, waiting first for room among the batches in flight.
    async fn send_batch(&self, topic: &str, partition: u32) {
        let shared = &self.shared;
        loop {
            let released = shared.released.wait();
            if shared.inflight.get() < shared.config.inflight_batches_max {
                break;
            }
            released.await;
        }
        let Some(accumulator) = shared
            .open
            .borrow_mut()
            .remove(&(topic.to_string(), partition))
        else {
            return;
        };
        if let Some(sticky) = shared.sticky.borrow_mut().get_mut(topic) {
            *sticky = sticky.wrapping_add(1);
        }
        shared.inflight.set(shared.inflight.get() + 1);
        runtime::spawn_detached(deliver(
            shared.clone(),
            topic.to_string(),
            partition,
            accumulator,
        ));
    }

    /// Sends every open batch and waits until every batch in flight is acknowledged.
    pub async fn flush(&self) {
        let keys: Vec<(String, u32)> = self.shared.open.borrow().keys().cloned().collect();
        for (topic, partition) in keys {
            self.send_batch(&topic, partition).await;
        }
        loop {
            let released = self.shared.released.wait();
            if self.shared.inflight.get() == 0 {
                return;
            }
            released.await;
        }
    }
}

/// The most bytes `record`'s body can take in a batch (what the broker compares with
/// `record_bytes_max`): its fields with their varint lengths, the deltas at their widest.
pub fn record_body_bytes_max(record: &Record) -> usize {
    let field = |value: &Option<bytes::Bytes>| 5 + value.as_ref().map_or(0, |bytes| bytes.len());
    let headers: usize = record
        .headers
        .iter()
        .map(|header| 5 + header.key.len() + field(&header.value))
        .sum();
    // attributes, timestamp delta (10), offset delta (5), header count (5)
    1 + 10 + 5 + field(&record.key) + field(&record.value) + 5 + headers
}

async fn deliver(shared: Rc<Shared>, topic: String, partition: u32, accumulator: Accumulator) {
    let records = accumulator.builder.build();
    let mut attempt = 0;
    let result = loop {
        let bytes = BytesMut::from(&records[..]);
        match shared
            .client
            .produce(&topic, Some(partition), &[], shared.config.acks, bytes)
            .await
        {
            Ok(response) => break Ok(response),
            Err(error) if attempt < shared.config.retries && retriable(&error) => {
                attempt += 1;
                runtime::sleep(Duration::from_millis(shared.config.retry_backoff_ms)).await;
            }
            Err(error) => break Err(error),
        }
    };
    for (index, waiter) in accumulator.waiters.into_iter().enumerate() {
        let _ = waiter.send(match &result {
            Ok(response) => Ok(RecordAck {
                partition,
                offset: response.base_offset + index as u64,
            }),
            Err(error) => Err(error.clone()),
        });
    }
    shared.inflight.set(shared.inflight.get() - 1);
    shared.released.notify();
}

fn retriable(error: &ClientError) -> bool {
    match error {
        ClientError::Server(error) => error.code.is_retriable(),
        ClientError::Connection(_) => false,
    }
}

/// Sends batches that have waited `linger_ms`, until the producer is dropped.
async fn linger_loop(shared: Weak<Shared>) {
    loop {
        let period = match shared.upgrade() {
            Some(live) => Duration::from_millis(live.config.linger_ms.max(1)),
            None => return,
        };
        runtime::sleep(period).await;
        let Some(live) = shared.upgrade() else { return };
        let expired: Vec<(String, u32)> = live
            .open
            .borrow()
            .iter()
            .filter(|(_, accumulator)| accumulator.opened.elapsed() >= period)
            .map(|(key, _)| key.clone())
            .collect();
        let producer = Producer { shared: live };
        for (topic, partition) in expired {
            producer.send_batch(&topic, partition).await;
        }
    }
}
