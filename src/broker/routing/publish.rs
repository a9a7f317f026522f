//! Publishing through an exchange. The routing decision is made on the shard that received the
//! publish, against its snapshot of the exchanges: each record is matched (following
//! exchange-to-exchange bindings and alternate exchanges, each exchange at most once, so a cycle
//! ends), then the records bound for each (topic, partition) become one append there, in publish
//! order, with `x-exchange` and `x-routing-key` headers added. The appends run at once, each on
//! its owner; the publish is answered when every one has reached the requested ack level or
//! failed, and says which failed.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};

use super::admin::unknown_exchange;
use super::model::{self, Destination};
use super::store::Exchanges;
use crate::batch::{Header, Record};
use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};
use crate::broker::rebatch;
use crate::broker::{ShardState, partition};
use crate::storage::AckLevel;

/// The headers every routed copy carries.
pub const EXCHANGE_HEADER: &str = "x-exchange";
pub const ROUTING_KEY_HEADER: &str = "x-routing-key";

/// One publish: record batches, one routing key for all of them.
#[derive(Debug)]
pub struct Publish {
    pub exchange: String,
    pub routing_key: String,
    /// Refuse the whole publish, storing nothing, if any record has no route.
    pub mandatory: bool,
    pub acks: AckLevel,
    /// Whole Kafka v2 record batches, end to end.
    pub records: BytesMut,
}

/// What became of the copies bound for one partition of one topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyOutcome {
    pub topic: String,
    /// None when the topic could not be found (deleted after it was bound).
    pub partition: Option<u32>,
    pub records: u32,
    /// The offsets of the first and last copy, or why they were not stored.
    pub result: Result<(u64, u64), BrokerError>,
}

/// What a publish did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Published {
    pub copies: Vec<CopyOutcome>,
    /// Records no binding matched (dropped, as RabbitMQ drops them without `mandatory`).
    pub unroutable: u32,
}

/// The topics `key` and `headers` reach from exchange `start`, sorted, each once. An exchange
/// none of whose bindings match hands the message to its alternate exchange.
pub fn route<'a>(
    exchanges: &'a Exchanges,
    start: &'a str,
    key: &str,
    headers: &[Header],
    matched: &mut Vec<u32>,
) -> Vec<&'a str> {
    let mut visited: Vec<&str> = Vec::new();
    let mut work: Vec<&str> = vec![start];
    let mut topics: Vec<&str> = Vec::new();
    while let Some(name) = work.pop() {
        if visited.contains(&name) {
            continue;
        }
        visited.push(name);
        let Some(exchange) = exchanges.get(name) else {
            continue;
        };
        exchange.matcher.matches(key, headers, matched);
        if matched.is_empty() {
            work.extend(exchange.meta.alternate_exchange.as_deref());
            continue;
        }
        for index in matched.iter() {
            match exchange
                .meta
                .bindings
                .get(*index as usize)
                .map(|b| &b.destination)
            {
                Some(Destination::Topic(topic)) => topics.push(topic),
                Some(Destination::Exchange(next)) => work.push(next),
                None => {}
            }
        }
    }
    topics.sort_unstable();
    topics.dedup();
    topics
}

/// Publishes through an exchange: routes, asks `may_write` for every topic a record is routed
/// to (the first refusal refuses the whole publish, before anything is stored), appends the
/// copies, and answers with each outcome.
pub async fn publish(
    state: &Rc<ShardState>,
    deadline: Instant,
    publish: Publish,
    may_write: impl Fn(&str) -> BrokerResult<()>,
) -> BrokerResult<Published> {
    let exchanges = state.exchanges();
    let name = publish.exchange.as_str();
    if exchanges.get(name).is_none() {
        return Err(unknown_exchange(name));
    }
    model::validate_routing_key(&publish.routing_key, &super::admin::limits(&state.config))?;
    let records = rebatch::decode(
        &publish.records,
        state,
        (
            state.config.publish_records_max,
            "a publish (publish_records_max)",
        ),
    )?;
    let metrics = super::ExchangeMetrics::of(name);
    metrics.published.increment(records.len() as u64);
    let mut matched = Vec::new();
    let copies_max = state.config.publish_copies_max;
    let mut copies_total = 0usize;
    let mut routes: Vec<Vec<&str>> = Vec::with_capacity(records.len());
    for record in &records {
        let topics = route(
            &exchanges,
            name,
            &publish.routing_key,
            &record.headers,
            &mut matched,
        );
        copies_total = copies_total.saturating_add(topics.len());
        if copies_total > copies_max {
            return Err(BrokerError::new(
                ErrorKind::RecordTooLarge,
                format!(
                    "a publish through {name:?} would store more than publish_copies_max ({copies_max}) copies: send fewer records at once"
                ),
            ));
        }
        routes.push(topics);
    }
    let unroutable = routes.iter().filter(|topics| topics.is_empty()).count();
    metrics.unroutable.increment(unroutable as u64);
    if publish.mandatory && unroutable > 0 {
        metrics.returned.increment(unroutable as u64);
        return Err(BrokerError::new(
            ErrorKind::Unroutable,
            format!(
                "exchange {name:?} has no route for routing key {:?}",
                publish.routing_key
            ),
        ));
    }
    let mut destinations: Vec<&str> = routes.iter().flatten().copied().collect();
    destinations.sort_unstable();
    destinations.dedup();
    destinations.into_iter().try_for_each(&may_write)?;
    let groups = group_by_partition(state, &records, &routes);
    let copies = append_all(state, deadline, &publish, &records, groups).await;
    let routed: u64 = copies
        .iter()
        .filter(|copy| copy.result.is_ok())
        .map(|copy| u64::from(copy.records))
        .sum();
    metrics.routed.increment(routed);
    Ok(Published {
        copies,
        unroutable: unroutable as u32,
    })
}

/// Where each record goes: the indices of the records bound for each (topic, partition), in
/// publish order; a topic that no longer exists gets no partition.
fn group_by_partition<'a>(
    state: &ShardState,
    records: &[Record],
    routes: &[Vec<&'a str>],
) -> BTreeMap<(&'a str, Option<u32>), Vec<usize>> {
    let topics = state.topics();
    let partitioner = state.config.key_partitioner;
    let mut groups: BTreeMap<(&str, Option<u32>), Vec<usize>> = BTreeMap::new();
    for (index, (record, destinations)) in records.iter().zip(routes).enumerate() {
        for topic in destinations {
            // As a produce to partition -1: the key picks the partition.
            let partition = topics.get(topic).map(|meta| {
                let key = record.key.as_deref().unwrap_or_default();
                partitioner.partition(key, meta.partitions)
            });
            groups.entry((*topic, partition)).or_default().push(index);
        }
    }
    groups
}

/// Appends every group's copies at once and gathers the outcomes.
async fn append_all(
    state: &Rc<ShardState>,
    deadline: Instant,
    publish: &Publish,
    records: &[Record],
    groups: BTreeMap<(&str, Option<u32>), Vec<usize>>,
) -> Vec<CopyOutcome> {
    let topics = state.topics();
    let appends = groups.into_iter().map(|((topic, partition), indices)| {
        let count = indices.len() as u32;
        let batch_bytes_max = topics.get(topic).map(|meta| meta.config.batch_bytes_max);
        let bytes = batch_bytes_max.map(|max| copies(publish, records, &indices, max));
        let (topic, acks) = (topic.to_string(), publish.acks);
        async move {
            let result = match (partition, bytes) {
                (Some(index), Some(bytes)) => {
                    let name = topic.clone();
                    state
                        .on_owner(deadline, &topic, index, move |owner| async move {
                            partition::produce(&owner, &name, index, acks, bytes).await
                        })
                        .await
                        .map(|done| (done.base_offset, done.last_offset))
                }
                _ => Err(BrokerError::unknown_topic(&topic)),
            };
            CopyOutcome {
                topic,
                partition,
                records: count,
                result,
            }
        }
    });
    futures_util::future::join_all(appends).await
}

/// The copies of `indices`, with the routing headers, as batches of at most `batch_bytes_max`.
fn copies(
    publish: &Publish,
    records: &[Record],
    indices: &[usize],
    batch_bytes_max: usize,
) -> BytesMut {
    let exchange = Bytes::copy_from_slice(publish.exchange.as_bytes());
    let key = Bytes::copy_from_slice(publish.routing_key.as_bytes());
    let copies = indices
        .iter()
        .filter_map(|index| records.get(*index))
        .map(|record| {
            let mut copy = record.clone();
            copy.headers.push(Header {
                key: EXCHANGE_HEADER.into(),
                value: Some(exchange.clone()),
            });
            copy.headers.push(Header {
                key: ROUTING_KEY_HEADER.into(),
                value: Some(key.clone()),
            });
            copy
        });
    rebatch::encode(copies, batch_bytes_max)
}
