//! The queue operations that run on a partition's owner shard, one partition at a time: define
//! and drop a group, describe it, receive (plan, read, lock, journal) and wait for something to
//! receive, and settle. The service (`broker::service::queues`) spreads a request over the
//! topic's partitions and brings each piece here.

use std::rc::Rc;
use std::time::{Duration, Instant};

use super::journal::Entry;
use super::settings::{self, QueueSettings, StartAt};
use super::state::{Action, Delivered, Incoming, View, fifo};
use super::{PartitionQueues, ReceivedMessage, consumer_id, dead_letter, delay, open_or_create};
use crate::batch::compression::DECOMPRESSED_BYTES_MAX;
use crate::batch::records::{self, StoredRecord};
use crate::broker::{BrokerError, BrokerResult, ErrorKind, ShardState};
use crate::storage::PartitionLog;

pub fn now_ms() -> u64 {
    u64::try_from(crate::storage::log::now_ms()).unwrap_or(0)
}

/// The queues of a partition this shard owns, or `UnknownQueueGroup` if it has none.
fn queues_of(
    state: &ShardState,
    topic: &str,
    partition: u32,
    group: &str,
) -> BrokerResult<Rc<PartitionQueues>> {
    state
        .queues
        .borrow()
        .get(topic, partition)
        .ok_or_else(|| super::unknown_group(topic, group))
}

/// Defines `group` on this partition; false if it was defined already. Within
/// `groups_per_topic_max`.
pub async fn define(
    state: &Rc<ShardState>,
    topic: &str,
    partition: u32,
    group: &str,
    settings: QueueSettings,
    start: StartAt,
) -> BrokerResult<bool> {
    let log = state.log(topic, partition)?;
    let queues = open_or_create(state, topic, partition).await?;
    let names = queues.group_names();
    if names.iter().any(|name| name == group) {
        return Ok(false);
    }
    let limit = state.config.queues.groups_per_topic_max as usize;
    if names.len() >= limit {
        return Err(BrokerError::new(
            ErrorKind::ResourceLimit,
            format!("topic {topic:?} has {limit} queue groups, its limit (groups_per_topic_max)"),
        ));
    }
    let start = match start {
        StartAt::Earliest => log.log_start_offset(),
        StartAt::Latest => log.high_watermark(),
        StartAt::Offset(offset) => offset.clamp(log.log_start_offset(), log.high_watermark()),
    };
    // In memory first, with no await since the check above, so that a concurrent define (two
    // first consumers at once) sees it and the journal never holds two definitions; receives
    // journal after it, so its record comes first.
    let entry = Entry::Define { start, settings };
    super::journal::fold(&mut queues.groups.borrow_mut(), group, entry.clone(), topic);
    // Retention keeps what the new group has yet to settle from here on, not from the next tick.
    log.set_retention_hold(queues.retention_hold());
    if let Err(error) = queues.journal(group, vec![entry]).await {
        queues.groups.borrow_mut().remove(group);
        return Err(error);
    }
    Ok(true)
}

/// Changes `group`'s settings on this partition by `overrides` (journaled first); its
/// messages, locks and FIFO key stay.
pub async fn configure(
    state: &ShardState,
    topic: &str,
    partition: u32,
    group: &str,
    overrides: &[(String, String)],
) -> BrokerResult<()> {
    let queues = queues_of(state, topic, partition, group)?;
    let mut settings = queues.with_group(group, |queue| Ok(queue.settings().clone()))?;
    let fifo = settings.fifo;
    let mut start = StartAt::Earliest;
    settings.apply(overrides, &mut start)?;
    settings.validate(topic)?;
    if settings.fifo != fifo {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            "a queue group's fifo setting is fixed when it is created",
        ));
    }
    let entry = Entry::Configure {
        settings: settings.clone(),
    };
    queues.journal(group, vec![entry]).await?;
    queues.with_group(group, |queue| {
        queue.configure(settings);
        Ok(())
    })?;
    queues.changed.notify();
    Ok(())
}

/// Drops `group` on this partition (journaled first); its locks die with it.
pub async fn drop_group(
    state: &ShardState,
    topic: &str,
    partition: u32,
    group: &str,
) -> BrokerResult<()> {
    let queues = queues_of(state, topic, partition, group)?;
    queues.with_group(group, |_| Ok(()))?;
    queues.journal(group, vec![Entry::Drop]).await?;
    queues.groups.borrow_mut().remove(group);
    queues.changed.notify();
    Ok(())
}

/// Starts `group` on this partition again at `offset` (held within the log) with its
/// settings: dropped, then defined anew (both journaled; a crash between leaves it undefined
/// here, and a share group's next fetch defines it by its auto offset reset). Its locks,
/// counts and archive state on this partition go. Returns where it starts.
pub async fn restart_at(
    state: &Rc<ShardState>,
    topic: &str,
    partition: u32,
    group: &str,
    offset: u64,
) -> BrokerResult<u64> {
    let queues = queues_of(state, topic, partition, group)?;
    let settings = queues.with_group(group, |queue| Ok(queue.settings().clone()))?;
    drop_group(state, topic, partition, group).await?;
    define(
        state,
        topic,
        partition,
        group,
        settings,
        StartAt::Offset(offset),
    )
    .await?;
    let queues = queues_of(state, topic, partition, group)?;
    queues.with_group(group, |queue| Ok(queue.settled_below()))
}

/// A group's settings and counts on this partition.
pub fn describe(
    state: &ShardState,
    topic: &str,
    partition: u32,
    group: &str,
) -> BrokerResult<(QueueSettings, View, super::state::Stats)> {
    let high_watermark = state.log(topic, partition)?.high_watermark();
    queues_of(state, topic, partition, group)?.with_group(group, |queue| {
        Ok((
            queue.settings().clone(),
            queue.view(high_watermark),
            queue.stats,
        ))
    })
}

/// (topic, group) of every group on a partition this shard owns.
pub fn list(state: &ShardState) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = state
        .queues
        .borrow()
        .all()
        .iter()
        .flat_map(|queues| {
            let topic = queues.topic.clone();
            queues
                .group_names()
                .into_iter()
                .map(move |group| (topic.clone(), group))
        })
        .collect();
    all.sort();
    all.dedup();
    all
}

/// What one partition's piece of a receive asks.
#[derive(Clone, Debug)]
pub struct PartitionReceive {
    pub topic: String,
    pub partition: u32,
    pub group: String,
    pub consumer: String,
    pub max_messages: u32,
    pub max_bytes: u32,
    /// 0: the group's.
    pub visibility_timeout_ms: u32,
}

/// Receives what this partition has now for the consumer, without waiting: plans the offsets,
/// reads them, locks those still available, journals the locks, and answers once fsynced.
pub async fn receive_once(
    state: &ShardState,
    receive: &PartitionReceive,
) -> BrokerResult<Vec<ReceivedMessage>> {
    let log = state.log(&receive.topic, receive.partition)?;
    let queues = queues_of(state, &receive.topic, receive.partition, &receive.group)?;
    let consumer = consumer_id(&receive.consumer);
    let (ranges, visibility_ms, delay_ms, fifo) = queues.with_group(&receive.group, |queue| {
        let visibility_ms =
            settings::visibility_for(queue.settings(), receive.visibility_timeout_ms)?;
        let wanted = u64::from(receive.max_messages);
        let ranges = queue.plan(
            consumer,
            wanted,
            log.log_start_offset(),
            log.high_watermark(),
        );
        let settings = queue.settings();
        Ok((ranges, visibility_ms, settings.delay_ms, settings.fifo))
    })?;
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let records = read_ranges(&log, &ranges, receive.max_bytes as usize).await?;
    let now = now_ms();
    let incoming: Vec<Incoming> = records
        .iter()
        .map(|(offset, stored)| Incoming {
            offset: *offset,
            due_ms: delay::due_ms(&stored.record, delay_ms, now),
            fifo_key: fifo::group_key(&stored.record, fifo),
        })
        .collect();
    let delivered = queues.with_group(&receive.group, |queue| {
        Ok(queue.acquire_incoming(consumer, &incoming, visibility_ms, now))
    })?;
    if delivered.is_empty() {
        return Ok(Vec::new());
    }
    queues
        .journal(&receive.group, acquisitions(&delivered, now))
        .await?;
    let mut records = records.into_iter().peekable();
    let mut messages = Vec::with_capacity(delivered.len());
    for this in delivered {
        while records
            .next_if(|(offset, _)| *offset < this.offset)
            .is_some()
        {}
        let Some((_, stored)) = records.next_if(|(offset, _)| *offset == this.offset) else {
            continue;
        };
        messages.push(ReceivedMessage {
            partition: receive.partition,
            offset: this.offset,
            deliveries: this.deliveries,
            lock_deadline_ms: this.deadline_ms,
            timestamp_ms: stored.record.timestamp_ms,
            key: stored.record.key,
            value: stored.record.value,
            headers: stored.record.headers,
        });
    }
    Ok(messages)
}

/// The journal entries of a receive's locks: runs of consecutive offsets alike.
fn acquisitions(delivered: &[Delivered], now: u64) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for this in delivered {
        if let Some(Entry::Acquired {
            last,
            deliveries,
            first_delivery_ms,
            ..
        }) = entries.last_mut()
            && last.checked_add(1) == Some(this.offset)
            && *deliveries == this.deliveries
            && *first_delivery_ms == this.first_delivery_ms
        {
            *last = this.offset;
            continue;
        }
        entries.push(Entry::Acquired {
            first: this.offset,
            last: this.offset,
            deliveries: this.deliveries,
            first_delivery_ms: this.first_delivery_ms,
            last_delivery_ms: now,
        });
    }
    entries
}

/// The first and the largest read of `read_ranges`.
const READ_BYTES_MIN: usize = 64 << 10;
const READ_BYTES_MAX: usize = 4 << 20;

/// The records of `ranges` (ascending), within `max_bytes` of keys, values and headers (the
/// first record always), by offset.
pub async fn read_ranges(
    log: &PartitionLog,
    ranges: &[(u64, u64)],
    max_bytes: usize,
) -> BrokerResult<Vec<(u64, StoredRecord)>> {
    let mut out: Vec<(u64, StoredRecord)> = Vec::new();
    let mut bytes = 0usize;
    // A read starts small and doubles while a range needs more: a receive of ten messages
    // read 4 MiB of the log per range before (the whole byte budget), and copying it from the
    // page cache was most of a small receive's cost.
    let read_bytes_max = max_bytes.clamp(READ_BYTES_MIN, READ_BYTES_MAX);
    for &(first, last) in ranges {
        let mut next = first;
        let mut read_bytes = READ_BYTES_MIN;
        while next <= last && next < log.high_watermark() {
            let read = log.read(next, read_bytes).await?;
            read_bytes = read_bytes.saturating_mul(2).min(read_bytes_max);
            let before = next;
            for chunk in &read.chunks {
                for (_, batch) in crate::batch::iter_framed(chunk) {
                    let wanted = (
                        i64::try_from(next).unwrap_or(i64::MAX),
                        i64::try_from(last).unwrap_or(i64::MAX),
                    );
                    let decoded = records::decode_offsets(batch, wanted, DECOMPRESSED_BYTES_MAX)
                        .map_err(|e| BrokerError::new(ErrorKind::StorageFailed, e.to_string()))?;
                    for stored in decoded {
                        let Ok(offset) = u64::try_from(stored.offset) else {
                            continue;
                        };
                        if offset < next || offset > last {
                            continue;
                        }
                        let size = record_bytes(&stored);
                        if !out.is_empty() && bytes.saturating_add(size) > max_bytes {
                            return Ok(out);
                        }
                        bytes = bytes.saturating_add(size);
                        next = offset + 1;
                        out.push((offset, stored));
                    }
                }
            }
            if next == before {
                // Nothing at or after `next` in this read: skipped (damage), move on.
                break;
            }
        }
    }
    Ok(out)
}

fn record_bytes(stored: &StoredRecord) -> usize {
    let record = &stored.record;
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    record.key.as_ref().map_or(0, |k| k.len())
        + record.value.as_ref().map_or(0, |v| v.len())
        + headers
}

/// Waits until a receive by `consumer` would find something on this partition, or `wait`
/// passes, or the broker stops. True when something is there.
pub async fn wait_acquirable(
    state: &ShardState,
    topic: &str,
    partition: u32,
    group: &str,
    consumer: &str,
    wait: Duration,
) -> BrokerResult<bool> {
    let log = state.log(topic, partition)?;
    let queues = queues_of(state, topic, partition, group)?;
    let consumer = consumer_id(consumer);
    let until = Instant::now() + wait;
    loop {
        let changed = queues.changed.wait();
        let high_watermark = log.high_watermark();
        let (ready, cursor) = queues.with_group(group, |queue| {
            Ok((
                queue.has_acquirable(consumer, high_watermark),
                queue.view(0).cursor,
            ))
        })?;
        let left = until.saturating_duration_since(Instant::now());
        if ready || left.is_zero() || state.lifecycle.stopping.get() {
            return Ok(ready);
        }
        // New data wakes the wait only while it could be delivered (the window has room);
        // otherwise only a settle or an expiry can.
        let data = async {
            if high_watermark > cursor {
                std::future::pending::<()>().await
            }
            log.wait_for_data(cursor).await
        };
        let (changed, data) = (std::pin::pin!(changed), std::pin::pin!(data));
        let either = futures_util::future::select(changed, data);
        crate::runtime::timeout(left, state.lifecycle.unless_stopping(either)).await;
    }
}

/// Settles `ranges` of this partition for `consumer`: all are checked before any changes (a
/// refusal changes nothing); acks are journaled, dead letters written, before the answer.
pub async fn settle(
    state: &Rc<ShardState>,
    topic: &str,
    partition: u32,
    group: &str,
    consumer: &str,
    ranges: Vec<(u64, u64)>,
    action: Action,
) -> BrokerResult<()> {
    let ranges = ranges
        .into_iter()
        .map(|(first, last)| (first, last, action))
        .collect();
    settle_each(state, (topic, partition, group), consumer, ranges).await
}

/// Settles each range of this partition as its own action (a Kafka share acknowledgement
/// mixes ACCEPT, RELEASE and REJECT): every range is checked before any changes, so a refusal
/// of one changes none of the others.
pub async fn settle_each(
    state: &Rc<ShardState>,
    (topic, partition, group): (&str, u32, &str),
    consumer: &str,
    mut ranges: Vec<(u64, u64, Action)>,
) -> BrokerResult<()> {
    let queues = queues_of(state, topic, partition, group)?;
    let consumer = consumer_id(consumer);
    ranges.sort_unstable_by_key(|&(first, last, _)| (first, last));
    if ranges.windows(2).any(|pair| pair[0].1 >= pair[1].0) {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            "the offset ranges of a settle overlap",
        ));
    }
    let now = now_ms();
    let (acked, dead_letters) = queues.with_group(group, |queue| {
        let mut checked = Vec::with_capacity(ranges.len());
        for &(first, last, action) in &ranges {
            let action = match action {
                Action::Extend { visibility_ms } => Action::Extend {
                    visibility_ms: settings::visibility_for(queue.settings(), visibility_ms)?,
                },
                other => other,
            };
            queue.check(consumer, first, last, now)?;
            checked.push((first, last, action));
        }
        let (mut acked, mut dead_letters) = (Vec::new(), Vec::new());
        for (first, last, action) in checked {
            let settled = queue.settle(consumer, first, last, action, now)?;
            acked.extend(settled.acked.map(|(first, last)| Entry::Settled {
                first,
                last,
                archived: false,
            }));
            dead_letters.extend(settled.dead_letters);
        }
        Ok((acked, dead_letters))
    })?;
    queues.changed.notify();
    queues.journal(group, acked).await?;
    for letter in dead_letters {
        dead_letter::write(state, &queues, group, letter).await?;
    }
    Ok(())
}

/// Purges `group` on this partition: acknowledges what is available now (journaled before the
/// answer); returns how many messages.
pub async fn purge(
    state: &ShardState,
    topic: &str,
    partition: u32,
    group: &str,
) -> BrokerResult<u64> {
    let log = state.log(topic, partition)?;
    let queues = queues_of(state, topic, partition, group)?;
    let (count, ranges) = queues.with_group(group, |queue| {
        Ok(queue.purge(log.log_start_offset(), log.high_watermark()))
    })?;
    let entries = ranges
        .into_iter()
        .map(|(first, last)| Entry::Settled {
            first,
            last,
            archived: false,
        })
        .collect();
    queues.journal(group, entries).await?;
    queues.changed.notify();
    Ok(count)
}

/// Releases every lock `consumer` holds in `group` on this partition (a Kafka share member
/// that closed its session or left the group): its messages are available again at once,
/// their delivery counts kept (at the limit they are dead-lettered, as any release). Returns
/// how many messages.
pub async fn release_consumer(
    state: &Rc<ShardState>,
    topic: &str,
    partition: u32,
    group: &str,
    consumer: &str,
) -> BrokerResult<u64> {
    let queues = queues_of(state, topic, partition, group)?;
    let id = consumer_id(consumer);
    let ranges: Vec<(u64, u64)> = queues.with_group(group, |queue| {
        let view = queue.view(0);
        if view.cursor <= view.settled_below {
            return Ok(Vec::new());
        }
        Ok(queue
            .spans_in(view.settled_below, view.cursor - 1)
            .into_iter()
            .filter(|(_, span)| {
                matches!(span.status, super::spans::Status::Locked { holder: Some(h), .. } if h == id)
            })
            .map(|(first, span)| (first, span.last))
            .collect())
    })?;
    if ranges.is_empty() {
        return Ok(0);
    }
    let count = ranges.iter().map(|(first, last)| last - first + 1).sum();
    let release = Action::Release { delay_ms: 0 };
    settle(state, topic, partition, group, consumer, ranges, release).await?;
    Ok(count)
}
