//! Dead letters: a message rejected, or out of deliveries, is copied to its group's dead-letter
//! topic (created on first use with the broker's defaults) with its key, value and headers, plus
//! headers saying where it came from and why, fsynced there, and only then archived in the
//! group (journaled). A crash in between writes it twice, never loses it.
//!
//! Headers added: `ringmq.dlq.topic`, `.partition`, `.offset`, `.group`, `.delivery_count`,
//! `.reason` (`rejected`, `lock expired N times`, `released N times`), `.first_delivery_ms`,
//! `.last_delivery_ms` (milliseconds since the epoch).

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::PartitionQueues;
use super::journal::Entry;
use super::owner::read_ranges;
use super::spans::Span;
use super::state::{DeadLetter, Reason};
use crate::batch::{BatchBuilder, Compression, Header, Record};
use crate::broker::service::NewTopic;
use crate::broker::{BrokerResult, ErrorKind, ShardState, admin, partition};
use crate::storage::AckLevel;

/// Records per dead-letter batch, and so per read of the source.
const LETTERS_PER_BATCH: u64 = 500;

fn reason_text(reason: Reason, deliveries: u32) -> String {
    match reason {
        Reason::Rejected => "rejected".to_string(),
        Reason::LockExpired => format!("lock expired {deliveries} times"),
        Reason::Released => format!("released {deliveries} times"),
    }
}

fn header(key: &str, value: String) -> Header {
    Header {
        key: key.to_string(),
        value: Some(Bytes::from(value)),
    }
}

/// Writes `letter`'s messages to the dead-letter topic and archives them. On an error they stay
/// dead-lettering (never delivered again) and the shard's background task retries.
pub async fn write(
    state: &Rc<ShardState>,
    queues: &Rc<PartitionQueues>,
    group: &str,
    letter: DeadLetter,
) -> BrokerResult<()> {
    let result = write_once(state, queues, group, letter).await;
    match &result {
        // The group was deleted meanwhile: its messages have no state left to archive.
        Err(error) if error.kind == ErrorKind::UnknownQueueGroup => {}
        Err(error) => {
            tracing::warn!(topic = %queues.topic, partition = queues.partition, group, %error, "writing dead letters failed; retrying in the background");
            queues.retry_later(group, letter);
        }
        Ok(()) => {}
    }
    result
}

async fn write_once(
    state: &Rc<ShardState>,
    queues: &Rc<PartitionQueues>,
    group: &str,
    letter: DeadLetter,
) -> BrokerResult<()> {
    let log = state.log(&queues.topic, queues.partition)?;
    let (dead_letter_topic, spans) = queues.with_group(group, |queue| {
        Ok((
            queue.settings().dead_letter_topic.clone(),
            queue.spans_in(letter.first, letter.last),
        ))
    })?;
    let target_partitions = ensure_topic(state, &dead_letter_topic).await?;
    let target = queues.partition % target_partitions.max(1);
    let mut first = letter.first;
    while first <= letter.last {
        let last = letter.last.min(first.saturating_add(LETTERS_PER_BATCH - 1));
        let records = read_ranges(
            &log,
            &[(first.max(log.log_start_offset()), last)],
            usize::MAX,
        )
        .await?;
        if !records.is_empty() {
            let mut builder = BatchBuilder::new(Compression::None);
            for (offset, stored) in records {
                builder.push(letter_record(
                    queues,
                    group,
                    letter.reason,
                    offset,
                    stored.record,
                    &spans,
                ));
            }
            let batch = BytesMut::from(&builder.build()[..]);
            let (name, deadline) = (dead_letter_topic.clone(), far_deadline(state));
            state
                .on_owner(
                    deadline,
                    &dead_letter_topic,
                    target,
                    move |owner| async move {
                        partition::produce(&owner, &name, target, AckLevel::Fsynced, batch).await
                    },
                )
                .await?;
        }
        let archived =
            queues.with_group(group, |queue| Ok(queue.finish_dead_letter(first, last)))?;
        if archived > 0 {
            queues
                .journal(
                    group,
                    vec![Entry::Settled {
                        first,
                        last,
                        archived: true,
                    }],
                )
                .await?;
        }
        first = last + 1;
    }
    queues.changed.notify();
    Ok(())
}

fn far_deadline(state: &ShardState) -> Instant {
    Instant::now() + Duration::from_millis(state.config.shard_call_timeout_ms)
}

/// The partition count of `topic`, created first (broker defaults, one partition) if missing.
async fn ensure_topic(state: &Rc<ShardState>, topic: &str) -> BrokerResult<u32> {
    if let Some(meta) = state.topics().get(topic) {
        return Ok(meta.partitions);
    }
    let new = NewTopic {
        name: topic.to_string(),
        partitions: 1,
        configs: Vec::new(),
    };
    let created = state
        .on_shard_until(far_deadline(state), 0, move |zero| async move {
            admin::create_topic(&zero, new).await
        })
        .await;
    match created {
        Ok(()) => {}
        Err(error) if error.kind == ErrorKind::TopicExists => {}
        Err(error) => return Err(error),
    }
    state
        .topics()
        .get(topic)
        .map(|meta| meta.partitions)
        .ok_or_else(|| crate::broker::BrokerError::unknown_topic(topic))
}

/// The dead letter of the message at `offset`: its record with the provenance headers added.
fn letter_record(
    queues: &PartitionQueues,
    group: &str,
    reason: Reason,
    offset: u64,
    mut record: Record,
    spans: &[(u64, Span)],
) -> Record {
    let span = spans
        .iter()
        .find(|(first, span)| *first <= offset && offset <= span.last)
        .map(|(_, span)| *span);
    let (deliveries, first_ms, last_ms) = span.map_or((0, 0, 0), |s| {
        (s.deliveries, s.first_delivery_ms, s.last_delivery_ms)
    });
    // A dead letter's deduplication id is kept by another name: under its own, the dead-letter
    // topic would drop the letter of a message dead-lettered again within the window (after a
    // redrive), and the message would be archived with no letter.
    for kept in &mut record.headers {
        if kept.key == crate::storage::dedup::DEDUP_HEADER {
            kept.key = "ringmq.dlq.dedup_id".into();
        }
    }
    record.headers.extend([
        header("ringmq.dlq.topic", queues.topic.clone()),
        header("ringmq.dlq.partition", queues.partition.to_string()),
        header("ringmq.dlq.offset", offset.to_string()),
        header("ringmq.dlq.group", group.to_string()),
        header("ringmq.dlq.delivery_count", deliveries.to_string()),
        header("ringmq.dlq.reason", reason_text(reason, deliveries)),
        header("ringmq.dlq.first_delivery_ms", first_ms.to_string()),
        header("ringmq.dlq.last_delivery_ms", last_ms.to_string()),
    ]);
    record
}
