//! Kafka's Fetch, translated into per-partition broker fetches.
//!
//! One request may name the same partition many times (a 16 MiB frame holds about a million
//! partition entries), so what it may cost is bounded by the request, not by the entries: the
//! whole response holds at most the request's `max_bytes` (capped by `fetch_bytes_max`), of which
//! only the first partition with data may go past (Kafka's rule, KIP-74), and partitions are read a
//! few at a time so the bytes held while reading stay within a few times that budget.

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::FetchPartition;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};

use super::errors::code_of;
use super::handlers::bad_partition;
use crate::broker::service::{Fetch, Fetched, RequestContext, Service};
use crate::broker::{BrokerError, ErrorKind, ShardState};

/// Partition reads in flight at once for one request: enough to overlap cross-shard hops, few
/// enough that the bytes read but not yet trimmed to the budget stay small.
pub(crate) const READS_AT_ONCE: usize = 16;

/// One partition's part of a fetch: (topic index, partition, result).
type PartitionFetch = (usize, i32, Result<Fetched, BrokerError>);

/// Every partition entry of the request, in order: (topic index, topic, partition).
fn entries(request: &FetchRequest) -> Vec<(usize, &TopicName, &FetchPartition)> {
    request
        .topics
        .iter()
        .enumerate()
        .flat_map(|(index, topic)| {
            topic
                .partitions
                .iter()
                .map(move |partition| (index, &topic.topic, partition))
        })
        .collect()
}

/// One broker fetch from `offset`; negative partitions and offsets get Kafka's answers.
async fn read_one(
    (service, ctx): Door<'_>,
    topic: &TopicName,
    partition: &FetchPartition,
    offset: i64,
    max_bytes: u32,
    max_wait_ms: u32,
) -> Result<Fetched, BrokerError> {
    let index =
        u32::try_from(partition.partition).map_err(|_| bad_partition(partition.partition))?;
    let offset = u64::try_from(offset).map_err(|_| {
        BrokerError::new(
            ErrorKind::OffsetOutOfRange,
            format!("fetch offset {offset} is negative"),
        )
    })?;
    let fetch = Fetch {
        topic: topic.0.as_str().to_string(),
        partition: index,
        offset,
        max_bytes: max_bytes.max(1),
        min_bytes: 1,
        max_wait_ms,
    };
    service.fetch(ctx, fetch).await
}

/// The service and the request's context, which every read of one fetch shares.
type Door<'a> = (&'a Service, &'a RequestContext);

fn size(result: &PartitionFetch) -> usize {
    result.2.as_ref().map_or(0, Fetched::size_bytes)
}

/// Reads every entry without waiting, `READS_AT_ONCE` at a time, keeping the response within
/// `budget` bytes (the first partition with data excepted).
async fn read_all(door: Door<'_>, request: &FetchRequest, budget: usize) -> Vec<PartitionFetch> {
    let entries = entries(request);
    let mut results = Vec::with_capacity(entries.len());
    let mut left = budget;
    let mut any_data = false;
    for wave in entries.chunks(READS_AT_ONCE) {
        let reads = wave.iter().map(|&(index, topic, partition)| {
            let max_bytes = usize::try_from(partition.partition_max_bytes.max(1))
                .unwrap_or(1)
                .min(left.max(1));
            async move {
                let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
                let result =
                    read_one(door, topic, partition, partition.fetch_offset, max_bytes, 0).await;
                (index, partition.partition, result)
            }
        });
        for mut result in futures_util::future::join_all(reads).await {
            let bytes = size(&result);
            if bytes > left && any_data {
                // Over the budget: answered with no records, as Kafka does.
                if let Ok(fetched) = &mut result.2 {
                    fetched.records.clear();
                }
            } else {
                left = left.saturating_sub(bytes);
                any_data |= bytes > 0;
            }
            results.push(result);
        }
    }
    results
}

/// Waits up to `wait_ms` for data past what `seen` read in any partition. Each wait
/// asks for one byte from the high watermark it saw, and what it reads is dropped at once: this
/// pass only wakes the request, which then reads again within its budget.
async fn wait_for_data(
    door: Door<'_>,
    request: &FetchRequest,
    seen: &[PartitionFetch],
    wait_ms: u32,
) {
    // One wait per distinct partition (a request may name one a million times), and the first
    // to see data wakes the request, as Kafka answers once any partition has something.
    let mut distinct = std::collections::HashSet::new();
    let waits: Vec<_> = entries(request)
        .into_iter()
        .zip(seen)
        .filter_map(|((_, topic, partition), (_, _, result))| {
            let high_watermark = i64::try_from(result.as_ref().ok()?.high_watermark).ok()?;
            distinct
                .insert((topic, partition.partition))
                .then_some(Box::pin(async move {
                    let _ = read_one(door, topic, partition, high_watermark, 1, wait_ms).await;
                }))
        })
        .collect();
    if waits.is_empty() {
        return;
    }
    let any = futures_util::future::select_all(waits);
    let _ =
        crate::runtime::timeout(std::time::Duration::from_millis(u64::from(wait_ms)), any).await;
}

/// The bytes the whole response may hold: the request's `max_bytes`, capped by the broker's
/// `fetch_bytes_max` (the first partition with data may go past it by one read).
pub(crate) fn budget(state: &ShardState, request: &FetchRequest) -> usize {
    usize::try_from(request.max_bytes.max(1))
        .unwrap_or(1)
        .min(state.config.fetch_bytes_max as usize)
}

/// Kafka's fetch: everything available at once if that is at least `min_bytes`; otherwise wait
/// up to `max_wait_ms` for partitions to get data, then read everything again.
pub async fn fetch(
    service: &Service,
    ctx: &RequestContext,
    state: &ShardState,
    request: FetchRequest,
) -> FetchResponse {
    let door = (service, ctx);
    let budget = budget(state, &request);
    let mut results = read_all(door, &request, budget).await;
    let wait_ms = u32::try_from(request.max_wait_ms).unwrap_or(0);
    let errors = results.iter().any(|(_, _, result)| result.is_err());
    let total: usize = results.iter().map(size).sum();
    if total < usize::try_from(request.min_bytes).unwrap_or(0).max(1) && wait_ms > 0 && !errors {
        wait_for_data(door, &request, &results, wait_ms).await;
        results = read_all(door, &request, budget).await;
    }
    respond(&request, results)
}

fn respond(request: &FetchRequest, results: Vec<PartitionFetch>) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = request
        .topics
        .iter()
        .map(|topic| FetchableTopicResponse::default().with_topic(topic.topic.clone()))
        .collect();
    for (topic_index, partition, result) in results {
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_preferred_read_replica(BrokerId(-1));
        let data = match result {
            Ok(fetched) => {
                let records = match &fetched.records[..] {
                    [one] => one.clone(),
                    chunks => Bytes::from(chunks.concat()),
                };
                data.with_high_watermark(fetched.high_watermark as i64)
                    .with_last_stable_offset(fetched.high_watermark as i64)
                    .with_log_start_offset(fetched.log_start_offset as i64)
                    .with_aborted_transactions(Some(Vec::new()))
                    .with_records(Some(records))
            }
            Err(error) => data
                .with_error_code(code_of(&error))
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1)
                .with_records(Some(Bytes::new())),
        };
        // Indexes come from enumerating request.topics, as `responses` was built.
        debug_assert!(topic_index < responses.len());
        if let Some(topic) = responses.get_mut(topic_index) {
            topic.partitions.push(data);
        }
    }
    FetchResponse::default().with_responses(responses)
}
