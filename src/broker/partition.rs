//! What the owner shard does for one partition: produce, fetch with long polling, list offsets,
//! delete records before an offset, and opening its logs. Everything here runs on the shard
//! that owns the partition.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use metrics::Label;

use super::ShardState;
use super::error::BrokerResult;
use super::service::{Fetch, Fetched, ListedOffset, OffsetQuery, Produced, RecordsBefore};
use super::topics::{self, TopicMeta};
use crate::runtime;
use crate::shard::owner_of;
use crate::storage::{AckLevel, PartitionLog, dirsync};

fn partition_labels(topic: &str, partition: u32) -> Vec<(String, String)> {
    vec![
        ("topic".into(), topic.into()),
        ("partition".into(), partition.to_string()),
    ]
}

/// Opens the partitions of `topic` that `state`'s shard owns and has not open yet. For a
/// newly created topic (or partitions newly added), leftovers of an earlier topic of the same
/// name are removed first.
pub async fn open_owned(state: &ShardState, topic: &TopicMeta, fresh: bool) -> Result<(), String> {
    for partition in 0..topic.partitions {
        let open = state
            .logs
            .borrow()
            .get(&topic.name)
            .is_some_and(|logs| logs.contains_key(&partition));
        if owner_of(&topic.name, partition, state.shards()) != state.id {
            continue;
        }
        if open {
            // Open already: its settings follow the metadata's (a topic's settings changed).
            let log = state
                .log(&topic.name, partition)
                .map_err(|error| error.message)?;
            let mut config = topic.config.clone();
            config.verify_on_start |= state.config.verify_on_start;
            if log.config() != config {
                log.set_config(config).map_err(|error| error.to_string())?;
            }
            continue;
        }
        let dir = topics::partition_dir(&state.config.data_dir, &topic.name, partition);
        if fresh {
            dirsync::remove_all_durable_off_shard(&dir)
                .await
                .map_err(|error| format!("{}: {error}", dir.display()))?;
            super::queues::remove_owned(state, &topic.name, partition).await;
        }
        let mut config = topic.config.clone();
        config.verify_on_start |= state.config.verify_on_start;
        let log = PartitionLog::open(&dir, config, partition_labels(&topic.name, partition))
            .await
            .map_err(|error| format!("{}: {error}", dir.display()))?;
        state
            .logs
            .borrow_mut()
            .entry(topic.name.clone())
            .or_default()
            .insert(partition, log);
        super::queues::open_owned(state, &topic.name, partition).await?;
    }
    Ok(())
}

/// Closes and deletes the partitions of `topic` that this shard owns.
pub async fn remove_owned(state: &ShardState, topic: &str) {
    remove_owned_from(state, topic, 0).await
}

/// Closes and deletes this shard's partitions `first..` of `topic` (a growth rolled back).
pub async fn remove_owned_from(state: &ShardState, topic: &str, first: u32) {
    let logs: Vec<(u32, PartitionLog)> = {
        let mut all = state.logs.borrow_mut();
        let Some(partitions) = all.get_mut(topic) else {
            return;
        };
        let doomed: Vec<u32> = partitions.keys().copied().filter(|p| *p >= first).collect();
        let logs = doomed
            .into_iter()
            .filter_map(|p| partitions.remove(&p).map(|log| (p, log)))
            .collect();
        if partitions.is_empty() {
            all.remove(topic);
        }
        logs
    };
    for (partition, log) in logs {
        let _ = log.close().await;
        let dir = topics::partition_dir(&state.config.data_dir, topic, partition);
        if let Err(error) = dirsync::remove_all_durable_off_shard(&dir).await {
            tracing::warn!(dir = %dir.display(), %error, "could not delete a deleted topic's partition");
        }
        super::queues::remove_owned(state, topic, partition).await;
    }
}

pub async fn produce(
    state: &ShardState,
    topic: &str,
    partition: u32,
    acks: AckLevel,
    records: BytesMut,
) -> BrokerResult<Produced> {
    crate::shard::crash::test_panic_point(topic);
    let log = state.log(topic, partition)?;
    let started = Instant::now();
    let queue_wait_max = Duration::from_millis(state.config.produce_queue_wait_ms_max);
    let ack = log
        .append_within(records, acks, Some(queue_wait_max))
        .await?;
    metrics::histogram!("ringmq_produce_latency_seconds").record(started.elapsed().as_secs_f64());
    Ok(Produced {
        partition,
        base_offset: ack.base_offset,
        last_offset: ack.last_offset,
        log_start_offset: ack.log_start_offset,
        log_append_time_ms: ack.log_append_time_ms,
    })
}

/// Reads from `offset`; when less than `min_bytes` is there, waits for more until `max_wait_ms`
/// (capped by the broker's limit) has passed.
pub async fn fetch(state: &ShardState, request: Fetch) -> BrokerResult<Fetched> {
    let log = state.log(&request.topic, request.partition)?;
    let started = Instant::now();
    let wait_ms = request.max_wait_ms.min(state.config.fetch_wait_ms_max);
    let deadline = started + Duration::from_millis(u64::from(wait_ms));
    let max_bytes = request.max_bytes.clamp(1, state.config.fetch_bytes_max) as usize;
    // Time spent reading, not waiting: a long poll's idle wait would make the latency's p99
    // show how long consumers are willing to wait, not how fast the broker serves them.
    let mut serving = Duration::ZERO;
    let result = loop {
        let read_started = Instant::now();
        let result = log.read(request.offset, max_bytes).await?;
        serving += read_started.elapsed();
        let left = deadline.saturating_duration_since(Instant::now());
        let stopping = state.lifecycle.stopping.get();
        if result.size_bytes() >= request.min_bytes as usize || left.is_zero() || stopping {
            break result;
        }
        // Wake on data past what this read saw, at the deadline, or when the broker stops
        // (a shutdown answers long polls with what they have instead of waiting them out).
        runtime::timeout(
            left,
            state
                .lifecycle
                .unless_stopping(log.wait_for_data(result.high_watermark)),
        )
        .await;
    };
    let bytes = result.size_bytes() as u64;
    let labels = [
        Label::new("topic", request.topic.clone()),
        Label::new("partition", request.partition.to_string()),
    ];
    metrics::counter!("ringmq_partition_fetched_bytes_total", labels.iter()).increment(bytes);
    metrics::counter!("ringmq_partition_fetched_records_total", labels.iter())
        .increment(count_records(&result.chunks));
    metrics::histogram!("ringmq_fetch_latency_seconds").record(serving.as_secs_f64());
    Ok(Fetched {
        high_watermark: result.high_watermark,
        log_start_offset: result.log_start_offset,
        records: result.chunks,
    })
}

/// Records in whole batches, from their headers alone.
fn count_records(chunks: &[bytes::Bytes]) -> u64 {
    chunks
        .iter()
        .flat_map(|chunk| crate::batch::iter_framed(chunk))
        .filter_map(|(_, batch)| crate::batch::header(batch).ok())
        .map(|header| header.records_count.get().max(0) as u64)
        .sum()
}

pub async fn list_offsets(
    state: &ShardState,
    topic: &str,
    partition: u32,
    query: OffsetQuery,
) -> BrokerResult<ListedOffset> {
    let log = state.log(topic, partition)?;
    let found = match query {
        OffsetQuery::Earliest => Some((log.log_start_offset(), None)),
        OffsetQuery::Latest => Some((log.high_watermark(), None)),
        OffsetQuery::AtOrAfter(timestamp) => log
            .record_for_timestamp(timestamp)
            .await?
            .map(|record| (record.offset, Some(record.timestamp_ms))),
        OffsetQuery::MaxTimestamp => log
            .record_with_max_timestamp()
            .await?
            .map(|record| (record.offset, Some(record.timestamp_ms))),
    };
    Ok(ListedOffset {
        offset: found.map(|(offset, _)| offset),
        timestamp_ms: found.and_then(|(_, timestamp)| timestamp),
        high_watermark: log.high_watermark(),
        log_start_offset: log.log_start_offset(),
    })
}

/// Moves the partition's start to `before` (Kafka's DeleteRecords), durably; returns the new
/// start (its low watermark).
pub async fn delete_records(
    state: &ShardState,
    topic: &str,
    partition: u32,
    before: RecordsBefore,
) -> BrokerResult<u64> {
    let log = state.log(topic, partition)?;
    let offset = match before {
        RecordsBefore::HighWatermark => log.high_watermark(),
        RecordsBefore::Offset(offset) => offset,
    };
    Ok(log.delete_records_before(offset).await?)
}
