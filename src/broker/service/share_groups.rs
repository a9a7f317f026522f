//! The service's share-group operations (Kafka's KIP-932): membership on the group's
//! coordinator (`broker::share_groups`), and reading as queue groups: share group G reading
//! topic T is queue group G on T, made on the first fetch with the group's
//! `share.auto.offset.reset` and `share.delivery.count.limit`, its records locked for
//! `share.record.lock.duration.ms` to the member that fetched them (the member id is the queue
//! consumer), and acknowledged as queue settles: ACCEPT acks, RELEASE releases (delivered
//! again, its count up), REJECT rejects (archived in the dead-letter topic, never delivered
//! again).
//!
//! Authorization as Kafka's: heartbeat, fetch and acknowledge need Read on the group (the
//! heartbeat Describe on each subscribed topic, fetch and acknowledge Read on each topic,
//! refused per partition); describe needs Describe, delete Delete, configs DescribeConfigs /
//! AlterConfigs on the group; offsets Read on the group (Describe) or Delete (alter, delete)
//! and Read on the topic. The fetch that makes the group's queue group on a topic needs no
//! more (Kafka makes share-group state on first use), so ACLs written for Kafka keep working.
//!
//! A member's locks are held under its incarnation (`share_groups::consumer_of`). Members
//! removed by any coordinator call are released by the service right after it
//! (`release_departed`, a bounded batch per call), whoever asked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::queues::NewQueueGroup;
use super::{Operation, RequestContext, ResourceType, Service, invalid_request};
use crate::broker::queues::owner::{self, PartitionReceive};
use crate::broker::queues::{Action, ReceivedMessage};
use crate::broker::share_configs;
use crate::broker::share_groups::{
    Departed, ShareBeat, ShareBeatReply, ShareGroupView, ShareGroups, ShareSettings, check_beat,
};
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

/// A long poll over many partitions wakes at least this often to look at all of them again.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// A ShareFetch's reading part: up to `max_records` from `partitions` for `member`.
#[derive(Clone, Debug)]
pub struct ShareFetch {
    pub group: String,
    pub member: String,
    pub partitions: Vec<(String, u32)>,
    pub max_records: u32,
    pub max_bytes: u32,
    pub wait_ms: u32,
}

/// One acknowledgement: offsets `first..=last` of a partition, settled as `action`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareAck {
    pub topic: String,
    pub partition: u32,
    pub first: u64,
    pub last: u64,
    pub action: Action,
}

/// What a fetch got from one partition, or why that partition was refused.
pub type SharePartitionRead = ((String, u32), BrokerResult<Vec<ReceivedMessage>>);

impl Service {
    /// ShareGroupHeartbeat: join (epoch 0), leave (-1) or keep alive, answered with the
    /// member's epoch and its partitions.
    pub async fn share_heartbeat(
        &self,
        ctx: &RequestContext,
        group: String,
        beat: ShareBeat,
    ) -> BrokerResult<ShareBeatReply> {
        self.authorize(ctx, ResourceType::Group, &group, Operation::Read)?;
        // Kafka: sizes first, then Describe on every subscribed topic, before the coordinator.
        check_beat(&self.state.config.share_groups, &beat)?;
        for topic in beat.topics.iter().flatten() {
            self.authorize(ctx, ResourceType::Topic, topic, Operation::Describe)?;
        }
        let name = group.clone();
        let (reply, departed) = self
            .state
            .on_coordinator(ctx.deadline, &group, move |c| async move {
                crate::broker::groups::check_kind(&c, &name, true)?;
                let (settings, _) = share_settings(&c, &name).await?;
                let topics = c.topics();
                let partitions_of = |topic: &str| topics.get(topic).map(|meta| meta.partitions);
                let config = &c.config.share_groups;
                Ok::<_, BrokerError>(share_work(&c, |groups, now| {
                    groups.heartbeat((config, &settings), &name, beat, &partitions_of, now)
                }))
            })
            .await?;
        // Members that left, joined again or went silent give their records back now, not at
        // the end of each lock.
        self.release_departed(ctx, departed).await;
        reply
    }

    /// Releases the locks of departed members (best effort, and whoever's request found them
    /// gone: a lock not released here ends at its deadline anyway).
    pub(super) async fn release_departed(&self, ctx: &RequestContext, departed: Vec<Departed>) {
        for gone in departed {
            for (topic, partition) in gone.partitions {
                let (group, consumer) = (gone.group.clone(), gone.consumer.clone());
                let name = topic.clone();
                let released = self
                    .state
                    .on_owner(ctx.deadline, &topic, partition, move |owner| async move {
                        owner::release_consumer(&owner, &name, partition, &group, &consumer).await
                    })
                    .await;
                if let Err(error) = released
                    && !matches!(
                        error.kind,
                        ErrorKind::UnknownQueueGroup | ErrorKind::UnknownTopic
                    )
                {
                    tracing::debug!(%error, "a share member's locks are left to expire");
                }
            }
        }
    }

    /// Releases what member incarnation `consumer` (as `share_fetch` answered it) holds on
    /// `partitions`: its share session closed or was replaced.
    pub async fn share_release(
        &self,
        ctx: &RequestContext,
        group: &str,
        consumer: String,
        partitions: Vec<(String, u32)>,
    ) {
        if self
            .authorize(ctx, ResourceType::Group, group, Operation::Read)
            .is_err()
        {
            return;
        }
        let gone = Departed {
            group: group.to_string(),
            consumer,
            partitions,
        };
        self.release_departed(ctx, vec![gone]).await;
    }

    /// ShareGroupDescribe: the members, their epochs, subscriptions and assignments.
    pub async fn describe_share_group(
        &self,
        ctx: &RequestContext,
        group: String,
    ) -> BrokerResult<ShareGroupView> {
        let (view, departed) = self
            .on_coordinator(
                ctx,
                &group.clone(),
                Operation::Describe,
                move |c| async move {
                    Ok(share_work(&c, |groups, now| groups.describe(&group, now)))
                },
            )
            .await?;
        self.release_departed(ctx, departed).await;
        view
    }

    /// Every share group the principal may describe, with its state ("Empty", "Stable").
    pub async fn list_share_groups(
        &self,
        ctx: &RequestContext,
    ) -> BrokerResult<Vec<(String, &'static str)>> {
        let shards = self
            .on_every_shard(ctx, |state| {
                vec![share_work(&state, |groups, now| groups.list(now))]
            })
            .await?;
        let mut all = Vec::new();
        for (listed, departed) in shards {
            all.extend(listed);
            self.release_departed(ctx, departed).await;
        }
        all.retain(|(group, _)| {
            self.is_authorized(ctx, ResourceType::Group, group, Operation::Describe)
        });
        all.sort();
        Ok(all)
    }

    /// The queue consumer of `member`'s live incarnation in share group `group` (asked of its
    /// coordinator), or `UnknownMember`: only members fetch and acknowledge, as Kafka's share
    /// coordinator says, and only under their current incarnation.
    async fn share_consumer(
        &self,
        ctx: &RequestContext,
        group: &str,
        member: &str,
    ) -> BrokerResult<String> {
        let (name, id) = (group.to_string(), member.to_string());
        let (consumer, departed) = self
            .state
            .on_coordinator(ctx.deadline, group, move |c| async move {
                Ok::<_, BrokerError>(share_work(&c, |groups, now| {
                    groups.consumer(&name, &id, now)
                }))
            })
            .await?;
        self.release_departed(ctx, departed).await;
        if let Some(consumer) = consumer {
            return Ok(consumer);
        }
        Err(BrokerError::new(
            ErrorKind::UnknownMember,
            format!("{member:?} is not a member of share group {group:?}"),
        ))
    }

    /// Whether `group` is a share group (so that the classic group APIs leave it alone).
    pub async fn is_share_group(&self, ctx: &RequestContext, group: &str) -> BrokerResult<bool> {
        let name = group.to_string();
        self.state
            .on_coordinator(ctx.deadline, group, move |c| async move {
                Ok::<_, BrokerError>(c.share_groups.borrow().contains(&name))
            })
            .await
    }

    /// Deletes an empty share group: its membership and configs, and its queue group on every
    /// topic it read (their state goes; the records stay in the topics).
    pub async fn delete_share_group(
        &self,
        ctx: &RequestContext,
        group: String,
    ) -> BrokerResult<()> {
        let name = group.clone();
        let (topics, departed) = self
            .on_coordinator(ctx, &group, Operation::Delete, move |c| async move {
                Ok(share_work(&c, |groups, now| groups.delete(&name, now)))
            })
            .await?;
        self.release_departed(ctx, departed).await;
        let mut topics = topics?;
        // Its queue groups on topics read before a restart too (membership is not kept).
        topics.extend(
            self.list_queue_groups(ctx)
                .await?
                .into_iter()
                .filter(|(_, queue_group)| *queue_group == group)
                .map(|(topic, _)| topic),
        );
        topics.sort();
        topics.dedup();
        // Kafka deletes a group's configs with it.
        let name = group.clone();
        self.state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                share_configs::change(&zero, name, None).await
            })
            .await?;
        for topic in topics {
            match self.delete_queue_group(ctx, &topic, &group).await {
                Err(error)
                    if matches!(
                        error.kind,
                        ErrorKind::UnknownQueueGroup | ErrorKind::UnknownTopic
                    ) => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// The settings a share group works with, and which configs it sets itself.
    pub async fn share_group_configs(
        &self,
        ctx: &RequestContext,
        group: String,
    ) -> BrokerResult<(ShareSettings, BTreeMap<String, String>)> {
        self.authorize(ctx, ResourceType::Group, &group, Operation::DescribeConfigs)?;
        share_settings(&self.state, &group).await
    }

    /// Sets (Some) or removes (None) share group configs, all or none.
    pub async fn alter_share_group_configs(
        &self,
        ctx: &RequestContext,
        group: String,
        changes: Vec<(String, Option<String>)>,
        validate_only: bool,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Group, &group, Operation::AlterConfigs)?;
        crate::broker::groups::validate_name(&group)?;
        let current = share_configs::snapshot(&self.state).await?.of(&group);
        let configs = share_configs::changed(&self.state.config.share_groups, current, &changes)?;
        if validate_only {
            return Ok(());
        }
        self.state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                share_configs::change(&zero, group, Some(configs)).await
            })
            .await
    }

    /// ShareFetch's read: locks up to `max_records` records of the partitions to the member
    /// (each partition's queue group made on first use), waiting up to `wait_ms` for the
    /// first. Partitions the principal may not read, or that do not exist, fail alone.
    /// Answers with the lock duration the records got, the member incarnation they are
    /// locked to (what a share session's end releases), and each partition's records.
    pub async fn share_fetch(
        &self,
        ctx: &RequestContext,
        fetch: ShareFetch,
    ) -> BrokerResult<(u32, String, Vec<SharePartitionRead>)> {
        self.authorize(ctx, ResourceType::Group, &fetch.group, Operation::Read)?;
        let consumer = self
            .share_consumer(ctx, &fetch.group, &fetch.member)
            .await?;
        let fetch = ShareFetch {
            member: consumer,
            ..fetch
        };
        let (settings, _) = share_settings(&self.state, &fetch.group).await?;
        let limit = self.state.config.queues.receive_messages_max;
        let max_records = fetch.max_records.clamp(1, limit);
        let max_bytes = match fetch.max_bytes {
            0 => self.state.config.fetch_bytes_max,
            asked => asked.min(self.state.config.fetch_bytes_max),
        };
        let mut results: Vec<SharePartitionRead> = Vec::with_capacity(fetch.partitions.len());
        let mut readable = Vec::new();
        for (index, (topic, partition)) in fetch.partitions.iter().enumerate() {
            let checked = self
                .authorize(ctx, ResourceType::Topic, topic, Operation::Read)
                .and_then(|()| self.check_exclusive(ctx, topic))
                .and_then(|()| self.state.check_partition(topic, *partition));
            if checked.is_ok() {
                readable.push(index);
            }
            results.push(((topic.clone(), *partition), checked.map(|()| Vec::new())));
        }
        let lock_ms = settings.record_lock_duration_ms;
        if readable.is_empty() {
            return Ok((lock_ms, fetch.member.clone(), results));
        }
        let wait = Duration::from_millis(u64::from(
            fetch.wait_ms.min(self.state.config.fetch_wait_ms_max),
        ));
        let until = Instant::now() + wait;
        let rotate = (owner::now_ms() % readable.len() as u64) as usize;
        readable.rotate_left(rotate);
        loop {
            let (mut got, mut bytes_left) = (0u32, max_bytes);
            for &index in &readable {
                let wanted = max_records.saturating_sub(got);
                if wanted == 0 || bytes_left == 0 {
                    break;
                }
                let (topic, partition) = results[index].0.clone();
                let read = self
                    .share_read_partition(
                        ctx,
                        &fetch,
                        &settings,
                        (topic, partition),
                        (wanted, bytes_left),
                    )
                    .await;
                match (&mut results[index].1, read) {
                    (Ok(messages), Ok(mut more)) => {
                        got = got.saturating_add(more.len() as u32);
                        let bytes: usize = more.iter().map(message_bytes).sum();
                        bytes_left =
                            bytes_left.saturating_sub(u32::try_from(bytes).unwrap_or(u32::MAX));
                        messages.append(&mut more);
                    }
                    (slot, Err(error)) => *slot = Err(error),
                    (Err(_), Ok(_)) => {}
                }
            }
            let left = until.saturating_duration_since(Instant::now());
            if got > 0 || left.is_zero() || self.state.lifecycle.stopping.get() {
                return Ok((lock_ms, fetch.member.clone(), results));
            }
            let targets: Vec<(String, u32)> = readable
                .iter()
                .filter(|&&index| results[index].1.is_ok())
                .map(|&index| results[index].0.clone())
                .collect();
            if targets.is_empty() {
                return Ok((lock_ms, fetch.member.clone(), results));
            }
            self.share_wait(ctx, &fetch, targets, left.min(WAIT_SLICE))
                .await?;
        }
    }

    /// One partition's receive, its queue group made first if the group never read it.
    async fn share_read_partition(
        &self,
        ctx: &RequestContext,
        fetch: &ShareFetch,
        settings: &ShareSettings,
        (topic, partition): (String, u32),
        (max_messages, max_bytes): (u32, u32),
    ) -> BrokerResult<Vec<ReceivedMessage>> {
        let piece = PartitionReceive {
            topic: topic.clone(),
            partition,
            group: fetch.group.clone(),
            consumer: fetch.member.clone(),
            max_messages,
            max_bytes,
            visibility_timeout_ms: settings.record_lock_duration_ms,
        };
        let mut defined = false;
        loop {
            let piece = piece.clone();
            let got = self
                .state
                .on_owner(ctx.deadline, &topic, partition, move |owner| async move {
                    owner::receive_once(&owner, &piece).await
                })
                .await;
            match got {
                Err(error) if error.kind == ErrorKind::UnknownQueueGroup && !defined => {
                    defined = true;
                    self.define_share_queue_group(ctx, &fetch.group, settings, &topic)
                        .await?;
                }
                // A partition added after the group was made: nothing here for it yet.
                Err(error) if error.kind == ErrorKind::UnknownQueueGroup => return Ok(Vec::new()),
                other => return other,
            }
        }
    }

    /// Makes share group `group`'s queue group on `topic` (by its settings) unless it is there.
    /// The caller's Read on the group and the topic suffices, as in Kafka (its dead-letter
    /// topic stays the broker's to make, on the first archived record).
    pub(super) async fn define_share_queue_group(
        &self,
        ctx: &RequestContext,
        group: &str,
        settings: &ShareSettings,
        topic: &str,
    ) -> BrokerResult<()> {
        let new = NewQueueGroup {
            topic: topic.to_string(),
            group: group.to_string(),
            configs: vec![
                ("start".into(), settings.auto_offset_reset.clone()),
                (
                    "max_deliveries".into(),
                    settings.delivery_count_limit.to_string(),
                ),
                (
                    "visibility_timeout_ms".into(),
                    settings.record_lock_duration_ms.to_string(),
                ),
            ],
        };
        // Kafka makes a share group's state on first use with Read on the group alone (KIP-932),
        // and clients moving between ringmq and Kafka keep their ACLs: no Create is asked here,
        // though defining a queue group through ringmq's own doors takes it.
        match self.define_queue_group(ctx, new).await {
            // Another member's fetch made it first, or a partition was added after the group
            // was made on the topic's others.
            Err(error) if error.kind == ErrorKind::QueueGroupExists => Ok(()),
            other => other,
        }
    }

    /// Waits until any of `targets` may have records for the member, or `wait` passes.
    async fn share_wait(
        &self,
        ctx: &RequestContext,
        fetch: &ShareFetch,
        targets: Vec<(String, u32)>,
        wait: Duration,
    ) -> BrokerResult<()> {
        let waits = targets.into_iter().map(|(topic, partition)| {
            let (group, member) = (fetch.group.clone(), fetch.member.clone());
            let (state, deadline) = (self.state.clone(), ctx.deadline);
            Box::pin(async move {
                let name = topic.clone();
                state
                    .on_owner(deadline, &topic, partition, move |owner| async move {
                        let waited =
                            owner::wait_acquirable(&owner, &name, partition, &group, &member, wait);
                        match waited.await {
                            // Made by another fetch later; until then, nothing to wake for.
                            Err(error) if error.kind == ErrorKind::UnknownQueueGroup => {
                                crate::runtime::sleep(wait).await;
                                Ok(false)
                            }
                            other => other,
                        }
                    })
                    .await
            })
        });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return Ok(());
        }
        let (first, _, _) = futures_util::future::select_all(waits).await;
        first.map(drop)
    }

    /// ShareAcknowledge (and ShareFetch's piggybacked acknowledgements): settles each
    /// partition's ranges as the member asks; a partition whose ranges are refused (records
    /// not acquired by the member, a lock that expired) fails alone and changes nothing.
    pub async fn share_acknowledge(
        &self,
        ctx: &RequestContext,
        group: &str,
        member: &str,
        acks: Vec<ShareAck>,
    ) -> BrokerResult<Vec<((String, u32), BrokerResult<()>)>> {
        self.authorize(ctx, ResourceType::Group, group, Operation::Read)?;
        if acks.len() > crate::broker::queues::settings::SETTLE_RANGES_MAX {
            return Err(invalid_request(format!(
                "at most {} acknowledgement ranges per request",
                crate::broker::queues::settings::SETTLE_RANGES_MAX
            )));
        }
        let consumer = self.share_consumer(ctx, group, member).await?;
        let member = consumer.as_str();
        let mut by_partition: BTreeMap<(String, u32), Vec<ShareAck>> = BTreeMap::new();
        for ack in acks {
            by_partition
                .entry((ack.topic.clone(), ack.partition))
                .or_default()
                .push(ack);
        }
        let mut results = Vec::with_capacity(by_partition.len());
        for ((topic, partition), acks) in by_partition {
            let result = self
                .share_settle_partition(ctx, group, member, &topic, partition, acks)
                .await;
            results.push(((topic, partition), result));
        }
        Ok(results)
    }

    async fn share_settle_partition(
        &self,
        ctx: &RequestContext,
        group: &str,
        member: &str,
        topic: &str,
        partition: u32,
        acks: Vec<ShareAck>,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Read)?;
        self.state.check_partition(topic, partition)?;
        // One settle of every range whatever its action, checked whole before anything
        // changes: the partition's acknowledgement is all or nothing, as Kafka's.
        let ranges: Vec<(u64, u64, Action)> = acks
            .into_iter()
            .map(|ack| (ack.first, ack.last, ack.action))
            .collect();
        let (topic_name, group, member) =
            (topic.to_string(), group.to_string(), member.to_string());
        self.state
            .on_owner(ctx.deadline, topic, partition, move |owner| async move {
                owner::settle_each(&owner, (&topic_name, partition, &group), &member, ranges).await
            })
            .await
    }
}

/// What a message counts against a fetch's bytes: its key, value and headers, as a queue
/// receive counts them.
fn message_bytes(message: &ReceivedMessage) -> usize {
    let headers: usize = message
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, |v| v.len()))
        .sum();
    message.key.as_ref().map_or(0, |k| k.len())
        + message.value.as_ref().map_or(0, |v| v.len())
        + headers
}

/// Any share-group work on coordinator `c`: groups empty past `empty_group_retention_ms` are
/// forgotten first, then `work` runs, the fill is published, and a bounded batch of departed
/// members is handed back for their locks to be released.
pub(super) fn share_work<R>(
    c: &crate::broker::ShardState,
    work: impl FnOnce(&mut ShareGroups, Instant) -> R,
) -> (R, Vec<Departed>) {
    let mut groups = c.share_groups.borrow_mut();
    let retention = Duration::from_millis(c.config.share_groups.empty_group_retention_ms);
    let now = Instant::now();
    let reaped = groups.sweep(retention, now);
    let result = work(&mut groups, now);
    let (departed, dropped) = groups.take_departed(c.config.share_groups.departed_partitions_max);
    let shard = c.id.to_string();
    if dropped > 0 {
        metrics::counter!("ringmq_share_departed_dropped_total", "shard" => shard.clone())
            .increment(dropped as u64);
    }
    if reaped > 0 {
        metrics::counter!("ringmq_share_groups_reaped_total", "shard" => shard.clone())
            .increment(reaped as u64);
    }
    metrics::gauge!("ringmq_share_groups", "shard" => shard.clone()).set(groups.len() as f64);
    metrics::gauge!("ringmq_share_group_members", "shard" => shard.clone())
        .set(groups.members() as f64);
    metrics::gauge!("ringmq_share_departed_pending", "shard" => shard)
        .set(groups.departed_pending() as f64);
    (result, departed)
}

/// The share group's settings (the broker's defaults and its own configs), and its own
/// configs, from this shard's snapshot.
pub(super) async fn share_settings(
    state: &crate::broker::ShardState,
    group: &str,
) -> BrokerResult<(ShareSettings, BTreeMap<String, String>)> {
    let own = share_configs::snapshot(state).await?.of(group);
    Ok((
        ShareSettings::resolve(&state.config.share_groups, &own)?,
        own,
    ))
}
