//! Kafka's ShareFetch and ShareAcknowledge (KIP-932), translated onto the service's share
//! operations: a fetch checks its share session (`share_session.rs`), settles the
//! acknowledgements it carries, then locks records to the member and answers them as record
//! batches with their AcquiredRecords ranges and delivery counts; an acknowledge settles and
//! answers per partition.
//!
//! Acknowledgement batches are hostile input: a range is first..=last with either one type for
//! all of it or one type per offset (0 a gap, 1 ACCEPT, 2 RELEASE, 3 REJECT); anything else
//! fails its partition with INVALID_REQUEST before anything is settled there. Per-offset types
//! are bounded by the bytes that carried them (the decoder allocated nothing more).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::share_acknowledge_response::{
    PartitionData as AckPartition, ShareAcknowledgeTopicResponse,
};
use kafka_protocol::messages::share_fetch_response::{
    AcquiredRecords, PartitionData, ShareFetchableTopicResponse,
};
use kafka_protocol::messages::{
    ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest, ShareFetchResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::consumer_groups::TopicIds;
use super::errors::{INVALID_RECORD_STATE, INVALID_REQUEST, UNKNOWN_TOPIC_ID, code_of};
use super::share_session::{Checked, Ended, SessionPartition, ShareSessions};
use crate::batch::{BatchBuilder, Compression, Record};
use crate::broker::BrokerError;
use crate::broker::service::{
    Operation, ReceivedMessage, RequestContext, ResourceType, Service, SettleAction, ShareAck,
    ShareFetch,
};

/// Offsets one acknowledgement range may span with a single type: far more than a fetch
/// acquires, far less than an i64's reach.
const ACK_RANGE_OFFSETS_MAX: i64 = 1 << 31;

/// One partition's acknowledgements as the request gave them, each checked.
type PartitionAcks = BTreeMap<SessionPartition, Result<Vec<(u64, u64, SettleAction)>, i16>>;

/// Not a Kafka code: a partition's acknowledgements past the request's budget of ranges, which
/// `settle` turns into the whole request's INVALID_REQUEST (never sent as is).
const RANGES_EXHAUSTED: i16 = -1;

/// A batch's ranges as (first, last, action), gaps dropped; or INVALID_REQUEST. Each range
/// takes one from `budget` (the request's, `SETTLE_RANGES_MAX`), so alternating per-offset
/// types in a large frame are refused before they become millions of ranges.
fn ranges_of(
    first: i64,
    last: i64,
    types: &[i8],
    budget: &mut usize,
) -> Result<Vec<(u64, u64, SettleAction)>, i16> {
    let (Ok(start), Ok(end)) = (u64::try_from(first), u64::try_from(last)) else {
        return Err(INVALID_REQUEST);
    };
    if start > end || last - first >= ACK_RANGE_OFFSETS_MAX {
        return Err(INVALID_REQUEST);
    }
    let action = |kind: i8| -> Result<Option<SettleAction>, i16> {
        Ok(match kind {
            0 => None,
            1 => Some(SettleAction::Ack),
            2 => Some(SettleAction::Release { delay_ms: 0 }),
            3 => Some(SettleAction::Reject),
            _ => return Err(INVALID_REQUEST),
        })
    };
    let mut take = || match budget.checked_sub(1) {
        Some(left) => {
            *budget = left;
            Ok(())
        }
        None => Err(RANGES_EXHAUSTED),
    };
    match types {
        [one] => match action(*one)? {
            Some(a) => take().map(|()| vec![(start, end, a)]),
            None => Ok(Vec::new()),
        },
        many if u64::try_from(many.len()).ok() == Some(end - start + 1) => {
            let mut out: Vec<(u64, u64, SettleAction)> = Vec::new();
            for (offset, kind) in (start..=end).zip(many) {
                let Some(a) = action(*kind)? else { continue };
                match out.last_mut() {
                    Some((_, last, prev)) if *prev == a && *last + 1 == offset => *last = offset,
                    _ => {
                        take()?;
                        out.push((offset, offset, a));
                    }
                }
            }
            Ok(out)
        }
        _ => Err(INVALID_REQUEST),
    }
}

/// The acknowledgements of a request, by partition, in the two requests' shared shape.
fn acks_of<'a>(
    batches: impl Iterator<Item = (SessionPartition, Vec<(i64, i64, &'a [i8])>)>,
) -> PartitionAcks {
    let mut out = PartitionAcks::new();
    let mut budget = crate::broker::service::SETTLE_RANGES_MAX;
    for (partition, ranges) in batches {
        let mut checked = Ok(Vec::new());
        let mut previous_last: Option<i64> = None;
        for (first, last, types) in ranges {
            if previous_last.is_some_and(|p| first <= p) {
                checked = Err(INVALID_REQUEST);
            }
            previous_last = Some(last);
            if checked.is_err() {
                continue;
            }
            match (&mut checked, ranges_of(first, last, types, &mut budget)) {
                (Ok(all), Ok(mut more)) => all.append(&mut more),
                (slot, Err(code)) => *slot = Err(code),
                (Err(_), Ok(_)) => {}
            }
        }
        // A partition named twice: its acknowledgements are one list.
        match (
            out.entry(partition).or_insert_with(|| Ok(Vec::new())),
            checked,
        ) {
            (Ok(all), Ok(mut more)) => all.append(&mut more),
            (slot, Err(code)) => *slot = Err(code),
            (Err(_), Ok(_)) => {}
        }
    }
    out
}

/// Settles `acks`; the error code of each partition that had any (0: settled).
async fn settle(
    service: &Service,
    ctx: &RequestContext,
    (group, member): (&str, &str),
    ids: &TopicIds,
    acks: PartitionAcks,
) -> Result<BTreeMap<SessionPartition, (i16, Option<String>)>, BrokerError> {
    if acks
        .values()
        .any(|checked| checked == &Err(RANGES_EXHAUSTED))
    {
        let limit = crate::broker::service::SETTLE_RANGES_MAX;
        let message = format!("at most {limit} acknowledgement ranges per request");
        return Err(BrokerError::new(
            crate::broker::ErrorKind::InvalidRequest,
            message,
        ));
    }
    let mut codes = BTreeMap::new();
    let mut wanted = Vec::new();
    let mut names = BTreeMap::new();
    for ((id, index), checked) in acks {
        let name = ids.names.get(&id);
        let partition = u32::try_from(index).ok();
        match (checked, name, partition) {
            (Err(code), _, _) => {
                codes.insert((id, index), (code, None));
            }
            (Ok(_), None, _) | (Ok(_), _, None) => {
                codes.insert((id, index), (UNKNOWN_TOPIC_ID, None));
            }
            (Ok(ranges), Some(name), Some(partition)) => {
                codes.insert((id, index), (0, None));
                names.insert((name.clone(), partition), (id, index));
                wanted.extend(ranges.into_iter().map(|(first, last, action)| ShareAck {
                    topic: name.clone(),
                    partition,
                    first,
                    last,
                    action,
                }));
            }
        }
    }
    if wanted.is_empty() {
        return Ok(codes);
    }
    for (key, result) in service
        .share_acknowledge(ctx, group, member, wanted)
        .await?
    {
        if let (Some(slot), Err(error)) = (names.get(&key), result) {
            // A partition the group never read holds no records of the member's: acknowledging
            // there is a record-state error, not an unknown group (the group exists).
            let code = match error.kind {
                crate::broker::ErrorKind::UnknownQueueGroup => INVALID_RECORD_STATE,
                _ => code_of(&error),
            };
            codes.insert(*slot, (code, Some(error.message)));
        }
    }
    Ok(codes)
}

/// An ended session's member incarnation gives back what it still holds on the session's
/// partitions (after its final acknowledgements were settled), as Kafka releases them.
async fn release(
    service: &Service,
    ctx: &RequestContext,
    group: &str,
    ids: &TopicIds,
    ended: Ended,
) {
    let Some(consumer) = ended.consumer else {
        return;
    };
    let named: Vec<(String, u32)> = ended
        .partitions
        .iter()
        .filter_map(|(id, index)| Some((ids.names.get(id)?.clone(), u32::try_from(*index).ok()?)))
        .collect();
    service.share_release(ctx, group, consumer, named).await;
}

fn text(value: &Option<StrBytes>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.as_str().to_string())
        .filter(|v| !v.is_empty())
}

/// Reads, per partition: what the member acquired, or why the partition failed.
type Reads = BTreeMap<SessionPartition, Result<Vec<ReceivedMessage>, BrokerError>>;

/// A ShareFetch's acknowledgements, and the partitions it adds and forgets.
fn session_changes(
    request: &ShareFetchRequest,
) -> (PartitionAcks, Vec<SessionPartition>, Vec<SessionPartition>) {
    let acks = acks_of(request.topics.iter().flat_map(|topic| {
        topic.partitions.iter().map(|p| {
            let ranges = p
                .acknowledgement_batches
                .iter()
                .map(|b| {
                    (
                        b.first_offset,
                        b.last_offset,
                        b.acknowledge_types.as_slice(),
                    )
                })
                .collect();
            ((topic.topic_id, p.partition_index), ranges)
        })
    }));
    let added = request
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let forgotten = request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, *p)))
        .collect();
    (acks, added, forgotten)
}

pub async fn share_fetch(
    service: &Service,
    ctx: &RequestContext,
    sessions: &std::cell::RefCell<ShareSessions>,
    request: ShareFetchRequest,
) -> ShareFetchResponse {
    let group = request.group_id.as_ref().map(|g| g.0.as_str().to_string());
    let (Some(group), Some(member)) = (group.filter(|g| !g.is_empty()), text(&request.member_id))
    else {
        return refused_fetch(
            INVALID_REQUEST,
            "a share fetch names its group and member".into(),
        );
    };
    // The group first, as Kafka: whatever the topics, a member the group refuses gets nothing.
    if let Err(error) = service.authorize(ctx, ResourceType::Group, &group, Operation::Read) {
        return refused_fetch(code_of(&error), error.message);
    }
    let ids = TopicIds::new(service, ctx);
    let (acks, added, forgotten) = session_changes(&request);
    let has_acks = acks
        .values()
        .any(|a| a.as_ref().map_or(true, |r| !r.is_empty()));
    let checked = sessions.borrow_mut().fetch(
        (group.clone(), member.clone()),
        request.share_session_epoch,
        added,
        &forgotten,
        has_acks,
        Instant::now(),
    );
    let (partitions, ended) = match checked {
        Ok(Checked::Serve(partitions)) => (partitions, None),
        Ok(Checked::Reopened { serve, released }) => (serve, Some(released)),
        Ok(Checked::Closed(held)) => (Vec::new(), Some(held)),
        Err(code) => return refused_fetch(code, "share session refused".into()),
    };
    let settled = settle(service, ctx, (&group, &member), &ids, acks).await;
    // An ended session gives its records back at once, even when its final acknowledgements
    // were refused (a reopened one has none), and before the new session fetches.
    if let Some(ended) = ended {
        release(service, ctx, &group, &ids, ended).await;
    }
    let ack_codes = match settled {
        Ok(codes) => codes,
        Err(error) => return refused_fetch(code_of(&error), error.message),
    };
    let mut reads = Reads::new();
    let mut lock_ms = 0;
    let by_name: Vec<(SessionPartition, (String, u32))> = partitions
        .iter()
        .filter_map(|&(id, index)| {
            Some((
                (id, index),
                (ids.names.get(&id)?.clone(), u32::try_from(index).ok()?),
            ))
        })
        .collect();
    // MaxRecords 0 is librdkafka's acknowledgement-only fetch: nothing is acquired.
    if !by_name.is_empty() && request.max_records > 0 {
        let fetch = ShareFetch {
            group: group.clone(),
            member: member.clone(),
            partitions: by_name.iter().map(|(_, named)| named.clone()).collect(),
            max_records: u32::try_from(request.max_records).unwrap_or(1),
            max_bytes: u32::try_from(request.max_bytes).unwrap_or(0),
            wait_ms: u32::try_from(request.max_wait_ms).unwrap_or(0),
        };
        match service.share_fetch(ctx, fetch).await {
            Ok((lock, consumer, results)) => {
                sessions.borrow_mut().bind(&(group, member), consumer);
                lock_ms = lock;
                for ((key, _), (_, result)) in by_name.iter().zip(results) {
                    reads.insert(*key, result);
                }
            }
            Err(error) => return refused_fetch(code_of(&error), error.message),
        }
    } else {
        for (key, _) in &by_name {
            reads.insert(*key, Ok(Vec::new()));
        }
    }
    answer(&partitions, &ack_codes, reads)
        .with_acquisition_lock_timeout_ms(i32::try_from(lock_ms).unwrap_or(i32::MAX))
}

fn refused_fetch(code: i16, message: String) -> ShareFetchResponse {
    ShareFetchResponse::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// The answer for every partition of the session and every one acknowledged: its records
/// and AcquiredRecords, or its error, and its acknowledgement's outcome.
fn answer(
    partitions: &[SessionPartition],
    ack_codes: &BTreeMap<SessionPartition, (i16, Option<String>)>,
    mut reads: Reads,
) -> ShareFetchResponse {
    let covered: BTreeSet<SessionPartition> = partitions
        .iter()
        .copied()
        .chain(ack_codes.keys().copied())
        .collect();
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    for (id, index) in covered {
        let mut data = PartitionData::default().with_partition_index(index);
        if let Some((code, message)) = ack_codes.get(&(id, index)) {
            data = data
                .with_acknowledge_error_code(*code)
                .with_acknowledge_error_message(message.clone().map(StrBytes::from_string));
        }
        match reads.remove(&(id, index)) {
            Some(Ok(messages)) => {
                let (records, acquired) = batches(&messages);
                data = data
                    .with_records(Some(records))
                    .with_acquired_records(acquired);
            }
            Some(Err(error)) => {
                data = data
                    .with_error_code(code_of(&error))
                    .with_error_message(Some(StrBytes::from_string(error.message)));
            }
            // A topic id that names nothing the principal may see.
            None if partitions.contains(&(id, index)) => {
                data = data.with_error_code(UNKNOWN_TOPIC_ID);
            }
            None => {}
        }
        match topics.last_mut() {
            Some(topic) if topic.topic_id == id => topic.partitions.push(data),
            _ => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareFetchResponse::default().with_responses(topics)
}

/// The messages as record batches (one per run of consecutive offsets, its base offset the
/// run's first) and their AcquiredRecords (one per run of consecutive offsets alike in
/// delivery count).
fn batches(messages: &[ReceivedMessage]) -> (Bytes, Vec<AcquiredRecords>) {
    let mut sorted: Vec<&ReceivedMessage> = messages.iter().collect();
    sorted.sort_by_key(|m| m.offset);
    let mut out = BytesMut::new();
    let mut acquired: Vec<AcquiredRecords> = Vec::new();
    let mut run: Option<(u64, BatchBuilder)> = None;
    let mut previous: Option<u64> = None;
    for message in sorted {
        let offset = message.offset;
        let count = i16::try_from(message.deliveries).unwrap_or(i16::MAX);
        let Ok(offset_i64) = i64::try_from(offset) else {
            continue;
        };
        let follows = previous.and_then(|p| p.checked_add(1)) == Some(offset);
        match acquired.last_mut() {
            Some(last) if follows && last.delivery_count == count => last.last_offset = offset_i64,
            _ => acquired.push(
                AcquiredRecords::default()
                    .with_first_offset(offset_i64)
                    .with_last_offset(offset_i64)
                    .with_delivery_count(count),
            ),
        }
        if !follows && let Some((base, builder)) = run.take() {
            seal(&mut out, base, builder);
        }
        let (_, builder) =
            run.get_or_insert_with(|| (offset, BatchBuilder::new(Compression::None)));
        builder.push(Record {
            timestamp_ms: message.timestamp_ms,
            key: message.key.clone(),
            value: message.value.clone(),
            headers: message.headers.clone(),
        });
        previous = Some(offset);
    }
    if let Some((base, builder)) = run {
        seal(&mut out, base, builder);
    }
    (out.freeze(), acquired)
}

/// Appends the batch with its base offset set (outside the CRC, as the log sets it).
fn seal(out: &mut BytesMut, base: u64, builder: BatchBuilder) {
    let mut batch = BytesMut::from(&builder.build()[..]);
    if let (Some(field), Ok(base)) = (batch.get_mut(0..8), i64::try_from(base)) {
        field.copy_from_slice(&base.to_be_bytes());
    }
    out.extend_from_slice(&batch);
}

pub async fn share_acknowledge(
    service: &Service,
    ctx: &RequestContext,
    sessions: &std::cell::RefCell<ShareSessions>,
    request: ShareAcknowledgeRequest,
) -> ShareAcknowledgeResponse {
    let refused = |code: i16, message: String| {
        ShareAcknowledgeResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let group = request.group_id.as_ref().map(|g| g.0.as_str().to_string());
    let (Some(group), Some(member)) = (group.filter(|g| !g.is_empty()), text(&request.member_id))
    else {
        return refused(
            INVALID_REQUEST,
            "an acknowledge names its group and member".into(),
        );
    };
    // The group first, as Kafka: whatever the topics, a member the group refuses gets nothing.
    if let Err(error) = service.authorize(ctx, ResourceType::Group, &group, Operation::Read) {
        return refused(code_of(&error), error.message);
    }
    let checked = sessions.borrow_mut().acknowledge(
        (group.clone(), member.clone()),
        request.share_session_epoch,
        Instant::now(),
    );
    let closed = match checked {
        Err(code) => return refused(code, "share session refused".into()),
        Ok(Checked::Closed(held)) => Some(held),
        Ok(Checked::Serve(_) | Checked::Reopened { .. }) => None,
    };
    let ids = TopicIds::new(service, ctx);
    let acks = acks_of(request.topics.iter().flat_map(|topic| {
        topic.partitions.iter().map(|p| {
            let ranges = p
                .acknowledgement_batches
                .iter()
                .map(|b| {
                    (
                        b.first_offset,
                        b.last_offset,
                        b.acknowledge_types.as_slice(),
                    )
                })
                .collect();
            ((topic.topic_id, p.partition_index), ranges)
        })
    }));
    let settled = settle(service, ctx, (&group, &member), &ids, acks).await;
    // A closed session gives its records back even when its final acknowledgements failed.
    if let Some(closed) = closed {
        release(service, ctx, &group, &ids, closed).await;
    }
    let codes = match settled {
        Ok(codes) => codes,
        Err(error) => return refused(code_of(&error), error.message),
    };
    let mut topics: Vec<ShareAcknowledgeTopicResponse> = Vec::new();
    for ((id, index), (code, message)) in codes {
        let data = AckPartition::default()
            .with_partition_index(index)
            .with_error_code(code)
            .with_error_message(message.map(StrBytes::from_string));
        match topics.last_mut() {
            Some(topic) if topic.topic_id == id => topic.partitions.push(data),
            _ => topics.push(
                ShareAcknowledgeTopicResponse::default()
                    .with_topic_id(id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    ShareAcknowledgeResponse::default().with_responses(topics)
}

/// A ShareFetch's worst case: its bytes (capped by `fetch_bytes_max`), one record past them
/// (the first is always sent), and each record's framing in its own batch.
pub fn response_bytes_bound(
    fetch_bytes_max: u32,
    record_bytes_max: usize,
    records_max: u32,
    request: &ShareFetchRequest,
) -> usize {
    let bytes = u32::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(fetch_bytes_max) as usize;
    let records = u32::try_from(request.max_records)
        .unwrap_or(1)
        .clamp(1, records_max.max(1)) as usize;
    // A batch header (61) and a record's varints (under 40), and its AcquiredRecords entry.
    let per_record = 61 + 40 + 18;
    bytes
        .saturating_add(record_bytes_max)
        .saturating_add(records.saturating_mul(per_record))
        .saturating_add(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acknowledgement_ranges_are_checked_and_gaps_dropped() {
        let ack = SettleAction::Ack;
        let release = SettleAction::Release { delay_ms: 0 };
        let plenty = || 100;
        assert_eq!(ranges_of(5, 7, &[1], &mut plenty()), Ok(vec![(5, 7, ack)]));
        assert_eq!(
            ranges_of(5, 8, &[1, 0, 2, 2], &mut plenty()),
            Ok(vec![(5, 5, ack), (7, 8, release)])
        );
        assert_eq!(
            ranges_of(5, 7, &[1, 1], &mut plenty()),
            Err(INVALID_REQUEST)
        );
        assert_eq!(ranges_of(7, 5, &[1], &mut plenty()), Err(INVALID_REQUEST));
        assert_eq!(ranges_of(-1, 5, &[1], &mut plenty()), Err(INVALID_REQUEST));
        assert_eq!(
            ranges_of(0, i64::MAX, &[1], &mut plenty()),
            Err(INVALID_REQUEST)
        );
        assert_eq!(ranges_of(0, 0, &[4], &mut plenty()), Err(INVALID_REQUEST));
        assert_eq!(ranges_of(0, 0, &[], &mut plenty()), Err(INVALID_REQUEST));
        assert_eq!(ranges_of(3, 3, &[0], &mut plenty()), Ok(vec![]));
        // Each range takes one from the budget; none left refuses the rest.
        let mut budget = 2;
        let alternating = [1, 2, 1, 2];
        assert_eq!(
            ranges_of(0, 3, &alternating, &mut budget),
            Err(RANGES_EXHAUSTED)
        );
        assert_eq!(budget, 0);
    }

    #[test]
    fn batches_carry_their_offsets_and_delivery_counts() {
        let message = |offset: u64, deliveries: u32| ReceivedMessage {
            partition: 0,
            offset,
            deliveries,
            lock_deadline_ms: 0,
            timestamp_ms: 1,
            key: None,
            value: Some(Bytes::from(format!("v{offset}"))),
            headers: Vec::new(),
        };
        let (bytes, acquired) = batches(&[message(4, 1), message(3, 1), message(7, 2)]);
        let runs: Vec<(i64, i64, i16)> = acquired
            .iter()
            .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
            .collect();
        assert_eq!(runs, vec![(3, 4, 1), (7, 7, 2)]);
        let offsets: Vec<i64> = crate::batch::iter_framed(&bytes)
            .flat_map(|(_, batch)| crate::batch::records::decode(batch).unwrap())
            .map(|record| record.offset)
            .collect();
        assert_eq!(offsets, vec![3, 4, 7]);
    }
}
