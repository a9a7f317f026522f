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

use std::cell::RefCell;

use super::errors::code_of;
use super::fetch_session::{FetchSessions, Opened};
use super::handlers::bad_partition;
use crate::broker::service::{Fetch, Fetched, PartitionEnds, RequestContext, Service};
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

/// Whether the fetch of `partition` can be answered from its log's ends alone: its offset is
/// the end, so there is nothing to read (any other offset is read, records or a refusal).
fn nothing_to_read(partition: &FetchPartition, ends: &PartitionEnds) -> bool {
    u64::try_from(partition.fetch_offset)
        .is_ok_and(|offset| offset == ends.high_watermark && offset >= ends.log_start_offset)
}

/// Reads every entry without waiting, keeping the response within `budget` bytes (the first
/// partition with data excepted). The owners are first asked, once each, where their
/// partitions end; only the entries with something to read are read, `READS_AT_ONCE` at a
/// time, so an idle consumer of thousands of partitions costs a hop per shard, not per entry.
async fn read_all(door: Door<'_>, request: &FetchRequest, budget: usize) -> Vec<PartitionFetch> {
    let entries = entries(request);
    let named: Vec<(&str, u32)> = entries
        .iter()
        .map(|(_, topic, partition)| {
            // A negative index cannot be asked about; u32::MAX is refused as unknown, and the
            // read below gives the negative index its own answer.
            (
                topic.0.as_str(),
                u32::try_from(partition.partition).unwrap_or(u32::MAX),
            )
        })
        .collect();
    let ends = door.0.partition_ends(door.1, &named).await;
    let mut results: Vec<Option<PartitionFetch>> = entries
        .iter()
        .zip(&ends)
        .map(|(&(index, _, partition), ends)| match ends {
            Ok(end) if nothing_to_read(partition, end) => Some((
                index,
                partition.partition,
                Ok(Fetched {
                    high_watermark: end.high_watermark,
                    log_start_offset: end.log_start_offset,
                    records: Vec::new(),
                }),
            )),
            _ => None,
        })
        .collect();
    let to_read: Vec<usize> = (0..entries.len())
        .filter(|slot| results[*slot].is_none())
        .collect();
    let mut left = budget;
    let mut any_data = false;
    for wave in to_read.chunks(READS_AT_ONCE) {
        let reads = wave.iter().map(|&slot| {
            let (index, topic, partition) = entries[slot];
            let max_bytes = usize::try_from(partition.partition_max_bytes.max(1))
                .unwrap_or(1)
                .min(left.max(1));
            async move {
                let max_bytes = u32::try_from(max_bytes).unwrap_or(u32::MAX);
                let result =
                    read_one(door, topic, partition, partition.fetch_offset, max_bytes, 0).await;
                (slot, (index, partition.partition, result))
            }
        });
        for (slot, mut result) in futures_util::future::join_all(reads).await {
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
            results[slot] = Some(result);
        }
    }
    results.into_iter().flatten().collect()
}

/// Waits up to `wait_ms` for data past what `seen` read in any partition: one wait per owner
/// shard over all its partitions (`Service::wait_for_any`). This pass only wakes the request,
/// which then reads again within its budget.
async fn wait_for_data(
    door: Door<'_>,
    request: &FetchRequest,
    seen: &[PartitionFetch],
    wait_ms: u32,
) {
    let waits: Vec<(&str, u32, u64)> = entries(request)
        .into_iter()
        .zip(seen)
        .filter_map(|((_, topic, partition), (_, _, result))| {
            let index = u32::try_from(partition.partition).ok()?;
            Some((
                topic.0.as_str(),
                index,
                result.as_ref().ok()?.high_watermark,
            ))
        })
        .collect();
    door.0.wait_for_any(door.1, &waits, wait_ms).await;
}

/// The bytes the whole response may hold: the request's `max_bytes`, capped by the broker's
/// `fetch_bytes_max` (the first partition with data may go past it by one read).
pub(crate) fn budget(state: &ShardState, request: &FetchRequest) -> usize {
    usize::try_from(request.max_bytes.max(1))
        .unwrap_or(1)
        .min(state.config.fetch_bytes_max as usize)
}

/// Kafka's fetch, in or out of a fetch session (`fetch_session.rs`): a session's incremental
/// fetch is served as the full fetch of all its partitions, and its answer then trimmed to the
/// partitions with something new.
pub async fn fetch(
    service: &Service,
    ctx: &RequestContext,
    state: &ShardState,
    sessions: &RefCell<FetchSessions>,
    request: FetchRequest,
) -> FetchResponse {
    let opened = sessions.borrow_mut().open(&request);
    let response = match opened {
        Opened::Refused(code) => return FetchResponse::default().with_error_code(code),
        Opened::Sessionless => serve(service, ctx, state, &request).await,
        Opened::New => {
            let response = serve(service, ctx, state, &request).await;
            let id = sessions.borrow_mut().create(&request, &response);
            response.with_session_id(id)
        }
        Opened::Incremental { id, expanded } => {
            let mut response = serve(service, ctx, state, &expanded).await;
            sessions.borrow_mut().trim(id, &mut response);
            response.with_session_id(id)
        }
    };
    publish_gauges(state, &sessions.borrow());
    response
}

fn publish_gauges(state: &ShardState, sessions: &FetchSessions) {
    let shard = state.id.to_string();
    metrics::gauge!("ringmq_kafka_fetch_sessions", "shard" => shard.clone())
        .set(sessions.sessions() as f64);
    metrics::gauge!("ringmq_kafka_fetch_session_partitions", "shard" => shard)
        .set(sessions.partitions_held() as f64);
}

/// Kafka's fetch of the partitions `request` names: everything available at once if that is
/// at least `min_bytes`; otherwise wait up to `max_wait_ms` for partitions to get data, then
/// read everything again.
async fn serve(
    service: &Service,
    ctx: &RequestContext,
    state: &ShardState,
    request: &FetchRequest,
) -> FetchResponse {
    let door = (service, ctx);
    let budget = budget(state, request);
    let mut results = read_all(door, request, budget).await;
    let wait_ms = u32::try_from(request.max_wait_ms).unwrap_or(0);
    let errors = results.iter().any(|(_, _, result)| result.is_err());
    let total: usize = results.iter().map(size).sum();
    if total < usize::try_from(request.min_bytes).unwrap_or(0).max(1) && wait_ms > 0 && !errors {
        wait_for_data(door, request, &results, wait_ms).await;
        results = read_all(door, request, budget).await;
    }
    respond(request, results)
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
