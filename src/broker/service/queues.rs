//! The queue operations of the service: queue groups on a topic (create, describe, list,
//! delete, purge), receive and settle. Each spreads over the topic's partitions and runs each piece on
//! the partition's owner (`broker::queues::owner`), within the request's deadline.
//!
//! Authorization (ACLs), asked before anything is done: receive and settle need Read on the
//! topic and Read on the queue group (a `Group` resource, like Kafka's share groups); create
//! needs Create on the group, Read on the topic, and creation rights for a dead-letter topic
//! that does not exist yet (it is created on first use); delete and purge need Delete on the group (purge Read on the topic too);
//! describe needs Describe on both, and a list leaves out what the principal may not describe.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::{RequestContext, Service, invalid_request};
use crate::broker::acls::{Operation, ResourceType};
use crate::broker::queues::owner::{self, PartitionReceive};
use crate::broker::queues::settings::{self, QueueSettings};
use crate::broker::queues::state::Stats;
use crate::broker::queues::{Action, ReceivedMessage, View};
use crate::broker::{BrokerError, BrokerResult, ErrorKind, ShardState, groups};

/// A long poll waits on every partition at once in slices of at most this, so the waits left
/// behind on other shards when one partition wakes end soon.
const WAIT_SLICE: Duration = Duration::from_secs(1);

/// A queue group to create on `topic`, with settings that differ from the broker's defaults.
#[derive(Clone, Debug)]
pub struct NewQueueGroup {
    pub topic: String,
    pub group: String,
    pub configs: Vec<(String, String)>,
}

/// One partition of a queue group, as describe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuePartition {
    pub partition: u32,
    pub view: View,
    pub stats: Stats,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueGroupDescription {
    pub topic: String,
    pub group: String,
    pub settings: Vec<(String, String)>,
    pub partitions: Vec<QueuePartition>,
}

/// A receive: up to `max_messages` for `consumer`, waiting up to `wait_ms` for the first.
#[derive(Clone, Debug)]
pub struct Receive {
    pub topic: String,
    pub group: String,
    pub consumer: String,
    pub max_messages: u32,
    /// 0: the broker's `fetch_bytes_max`.
    pub max_bytes: u32,
    pub wait_ms: u32,
    /// 0: the group's.
    pub visibility_timeout_ms: u32,
    /// Create the group with the defaults if it does not exist (its first consumer).
    pub create: bool,
}

/// A settle of `ranges` (partition, first offset, last offset) by `consumer`.
#[derive(Clone, Debug)]
pub struct Settle {
    pub topic: String,
    pub group: String,
    pub consumer: String,
    pub action: Action,
    pub ranges: Vec<(u32, u64, u64)>,
}

/// What a received message's key, value and headers hold, as a receive's byte budget counts.
fn message_bytes(message: &ReceivedMessage) -> usize {
    let headers: usize = message
        .headers
        .iter()
        .map(|header| header.key.len() + header.value.as_ref().map_or(0, |value| value.len()))
        .sum();
    let key = message.key.as_ref().map_or(0, |key| key.len());
    let value = message.value.as_ref().map_or(0, |value| value.len());
    key + value + headers
}

fn check_consumer(consumer: &str) -> BrokerResult<()> {
    if consumer.is_empty() || consumer.len() > settings::CONSUMER_ID_BYTES_MAX {
        return Err(invalid_request(format!(
            "a consumer id is 1 to {} bytes, not {}",
            settings::CONSUMER_ID_BYTES_MAX,
            consumer.len()
        )));
    }
    Ok(())
}

fn check_action(action: Action) -> BrokerResult<()> {
    let (what, value, max) = match action {
        Action::Release { delay_ms } => ("release delay", delay_ms, settings::RELEASE_DELAY_MS_MAX),
        Action::Extend { visibility_ms } => (
            "visibility timeout",
            visibility_ms,
            settings::VISIBILITY_TIMEOUT_MS_MAX,
        ),
        Action::Ack | Action::Reject => return Ok(()),
    };
    if value > max {
        return Err(invalid_request(format!("{what} {value} ms is over {max}")));
    }
    Ok(())
}

impl Service {
    /// Read on the topic and on the queue group: what a consumer needs.
    fn authorize_consumer(
        &self,
        ctx: &RequestContext,
        topic: &str,
        group: &str,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Read)?;
        self.authorize(ctx, ResourceType::Group, group, Operation::Read)
    }

    /// Creates queue group `group` on every partition of `topic` (`QueueGroupExists` if it is
    /// on all of them already; partitions missing it, after a crash mid-create, get it).
    pub async fn create_queue_group(
        &self,
        ctx: &RequestContext,
        new: NewQueueGroup,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Group, &new.group, Operation::Create)?;
        self.authorize(ctx, ResourceType::Topic, &new.topic, Operation::Read)?;
        let (settings, _) = QueueSettings::parse(
            &self.state.config.queues,
            &new.topic,
            &new.group,
            &new.configs,
        )?;
        if self
            .state
            .topics()
            .get(&settings.dead_letter_topic)
            .is_none()
        {
            self.authorize_creation(ctx, &settings.dead_letter_topic)?;
        }
        self.define_queue_group(ctx, new).await
    }

    /// `create_queue_group` once authorized: a share group's first read of a topic makes its
    /// queue group with no more than Read on both, as Kafka's share-partitions are made.
    pub(super) async fn define_queue_group(
        &self,
        ctx: &RequestContext,
        new: NewQueueGroup,
    ) -> BrokerResult<()> {
        // A temporary reply topic is its connection's alone: no queue group reads it.
        self.check_exclusive(ctx, &new.topic)?;
        groups::validate_name(&new.group)?;
        let partitions = self.state.partitions_of(&new.topic)?;
        let (settings, start) = QueueSettings::parse(
            &self.state.config.queues,
            &new.topic,
            &new.group,
            &new.configs,
        )?;
        let mut created = false;
        for partition in 0..partitions {
            let (topic, group, settings) = (new.topic.clone(), new.group.clone(), settings.clone());
            created |= self
                .state
                .on_owner(
                    ctx.deadline,
                    &new.topic,
                    partition,
                    move |owner| async move {
                        owner::define(&owner, &topic, partition, &group, settings, start).await
                    },
                )
                .await?;
        }
        if !created {
            return Err(BrokerError::new(
                ErrorKind::QueueGroupExists,
                format!(
                    "queue group {:?} exists on topic {:?}",
                    new.group, new.topic
                ),
            ));
        }
        Ok(())
    }

    /// A queue group's settings and, per partition, its counts.
    pub async fn describe_queue_group(
        &self,
        ctx: &RequestContext,
        topic: &str,
        group: &str,
    ) -> BrokerResult<QueueGroupDescription> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Describe)?;
        self.authorize(ctx, ResourceType::Group, group, Operation::Describe)?;
        let described = self
            .on_group_partitions(
                ctx,
                topic,
                group,
                |owner, name, partition, group| async move {
                    owner::describe(&owner, &name, partition, &group)
                },
            )
            .await?;
        let settings = described
            .first()
            .map(|(_, (settings, _, _))| settings.describe())
            .unwrap_or_default();
        Ok(QueueGroupDescription {
            topic: topic.to_string(),
            group: group.to_string(),
            settings,
            partitions: described
                .into_iter()
                .map(|(partition, (_, view, stats))| QueuePartition {
                    partition,
                    view,
                    stats,
                })
                .collect(),
        })
    }

    /// Every queue group the principal may describe (group and topic), as (topic, group).
    pub async fn list_queue_groups(
        &self,
        ctx: &RequestContext,
    ) -> BrokerResult<Vec<(String, String)>> {
        let mut all = self
            .on_every_shard(ctx, |state| owner::list(&state))
            .await?;
        all.retain(|(topic, group)| {
            self.is_authorized(ctx, ResourceType::Group, group, Operation::Describe)
                && self.is_authorized(ctx, ResourceType::Topic, topic, Operation::Describe)
        });
        all.sort();
        all.dedup();
        Ok(all)
    }

    /// Changes a queue group's settings (`key=value` as at creation, but not `fifo` or
    /// `start`) on every partition, journaled there before the answer. Needs Alter on the group,
    /// and creation rights for a new dead-letter topic that does not exist yet.
    pub async fn alter_queue_group(
        &self,
        ctx: &RequestContext,
        topic: &str,
        group: &str,
        configs: Vec<(String, String)>,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Group, group, Operation::Alter)?;
        if configs.iter().any(|(key, _)| key == "start") {
            return Err(invalid_request(
                "a queue group's start is fixed when it is created",
            ));
        }
        if let Some((_, dead_letter_topic)) =
            configs.iter().find(|(key, _)| key == "dead_letter_topic")
            && self.state.topics().get(dead_letter_topic).is_none()
        {
            self.authorize_creation(ctx, dead_letter_topic)?;
        }
        self.on_group_partitions(ctx, topic, group, move |owner, name, partition, group| {
            let configs = configs.clone();
            async move { owner::configure(&owner, &name, partition, &group, &configs).await }
        })
        .await
        .map(drop)
    }

    /// Deletes a queue group from every partition of its topic; its state and locks go, the
    /// messages stay in the topic.
    pub async fn delete_queue_group(
        &self,
        ctx: &RequestContext,
        topic: &str,
        group: &str,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Group, group, Operation::Delete)?;
        self.on_group_partitions(
            ctx,
            topic,
            group,
            |owner, name, partition, group| async move {
                owner::drop_group(&owner, &name, partition, &group).await
            },
        )
        .await
        .map(drop)
    }

    /// Runs `work` (owner, topic, partition, group) on the owner of each partition of `topic`
    /// that has queue group `group`, in partition order; (partition, what it returned) of each,
    /// or `UnknownQueueGroup` if no partition has the group.
    async fn on_group_partitions<R, F, Fut>(
        &self,
        ctx: &RequestContext,
        topic: &str,
        group: &str,
        work: F,
    ) -> BrokerResult<Vec<(u32, R)>>
    where
        R: Send + 'static,
        F: Fn(Rc<ShardState>, String, u32, String) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = BrokerResult<R>> + 'static,
    {
        let partitions = self.state.partitions_of(topic)?;
        let mut done = Vec::new();
        for partition in 0..partitions {
            let (name, group_name, work) = (topic.to_string(), group.to_string(), work.clone());
            let result = self
                .state
                .on_owner(ctx.deadline, topic, partition, move |owner| {
                    work(owner, name, partition, group_name)
                })
                .await;
            match result {
                Ok(value) => done.push((partition, value)),
                // A partition added after the group was created has no state for it.
                Err(error) if error.kind == ErrorKind::UnknownQueueGroup => {}
                Err(error) => return Err(error),
            }
        }
        if done.is_empty() {
            return Err(crate::broker::queues::unknown_group(topic, group));
        }
        Ok(done)
    }

    /// Purges a queue group: acknowledges, on every partition, every message available now
    /// (locked and delayed ones stay); returns how many. Needs Delete on the group.
    pub async fn purge_queue_group(
        &self,
        ctx: &RequestContext,
        topic: &str,
        group: &str,
    ) -> BrokerResult<u64> {
        self.authorize(ctx, ResourceType::Group, group, Operation::Delete)?;
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Read)?;
        let purged = self
            .on_group_partitions(
                ctx,
                topic,
                group,
                |owner, name, partition, group| async move {
                    owner::purge(&owner, &name, partition, &group).await
                },
            )
            .await?;
        Ok(purged.into_iter().map(|(_, count)| count).sum())
    }

    /// Receives up to `max_messages` across the topic's partitions, each locked to the
    /// consumer; with none there, waits up to `wait_ms` (capped by `fetch_wait_ms_max`).
    pub async fn receive(
        &self,
        ctx: &RequestContext,
        receive: Receive,
    ) -> BrokerResult<Vec<ReceivedMessage>> {
        self.authorize_consumer(ctx, &receive.topic, &receive.group)?;
        self.check_exclusive(ctx, &receive.topic)?;
        check_consumer(&receive.consumer)?;
        let limit = self.state.config.queues.receive_messages_max;
        if receive.max_messages == 0 || receive.max_messages > limit {
            return Err(invalid_request(format!(
                "a receive asks for 1 to {limit} messages (receive_messages_max), not {}",
                receive.max_messages
            )));
        }
        let partitions = self.state.partitions_of(&receive.topic)?;
        let wait = Duration::from_millis(u64::from(
            receive.wait_ms.min(self.state.config.fetch_wait_ms_max),
        ));
        let until = Instant::now() + wait;
        let mut created = !receive.create;
        loop {
            match self.receive_pass(ctx, &receive, partitions).await {
                Err(error) if error.kind == ErrorKind::UnknownQueueGroup && !created => {
                    created = true;
                    let new = NewQueueGroup {
                        topic: receive.topic.clone(),
                        group: receive.group.clone(),
                        configs: Vec::new(),
                    };
                    match self.create_queue_group(ctx, new).await {
                        Ok(()) => {}
                        Err(error) if error.kind == ErrorKind::QueueGroupExists => {}
                        Err(error) => return Err(error),
                    }
                }
                Err(error) => return Err(error),
                Ok(messages) => {
                    let left = until.saturating_duration_since(Instant::now());
                    if !messages.is_empty() || left.is_zero() || self.state.lifecycle.stopping.get()
                    {
                        return Ok(messages);
                    }
                    self.wait_any(ctx, &receive, partitions, left.min(WAIT_SLICE))
                        .await?;
                }
            }
        }
    }

    /// One pass over every partition, from a rotating start, without waiting.
    async fn receive_pass(
        &self,
        ctx: &RequestContext,
        receive: &Receive,
        partitions: u32,
    ) -> BrokerResult<Vec<ReceivedMessage>> {
        let start = (owner::now_ms() % u64::from(partitions)) as u32;
        let max_bytes = match receive.max_bytes {
            0 => self.state.config.fetch_bytes_max,
            asked => asked.min(self.state.config.fetch_bytes_max),
        };
        let mut messages: Vec<ReceivedMessage> = Vec::new();
        let mut known = false;
        // One budget for the whole receive, not one per partition: its answer is bounded by
        // `max_bytes` (plus the one message a partition may return past it).
        let mut bytes_left = max_bytes;
        for step in 0..partitions {
            let wanted = receive.max_messages.saturating_sub(messages.len() as u32);
            if wanted == 0 || bytes_left == 0 {
                break;
            }
            let partition = (start + step) % partitions;
            let piece = PartitionReceive {
                topic: receive.topic.clone(),
                partition,
                group: receive.group.clone(),
                consumer: receive.consumer.clone(),
                max_messages: wanted,
                max_bytes: bytes_left,
                visibility_timeout_ms: receive.visibility_timeout_ms,
            };
            let got = self
                .state
                .on_owner(
                    ctx.deadline,
                    &receive.topic,
                    partition,
                    move |owner| async move { owner::receive_once(&owner, &piece).await },
                )
                .await;
            match got {
                Ok(mut got) => {
                    known = true;
                    let size: usize = got.iter().map(message_bytes).sum();
                    let size = u32::try_from(size).unwrap_or(u32::MAX);
                    bytes_left = bytes_left.saturating_sub(size);
                    messages.append(&mut got);
                }
                // A partition added after the group was created has no state for it.
                Err(error) if error.kind == ErrorKind::UnknownQueueGroup => {}
                Err(error) => return Err(error),
            }
        }
        if !known {
            return Err(crate::broker::queues::unknown_group(
                &receive.topic,
                &receive.group,
            ));
        }
        Ok(messages)
    }

    /// Waits until any partition may have something for the consumer, or `wait` passes.
    async fn wait_any(
        &self,
        ctx: &RequestContext,
        receive: &Receive,
        partitions: u32,
        wait: Duration,
    ) -> BrokerResult<()> {
        let waits = (0..partitions).map(|partition| {
            let (topic, group, consumer) = (
                receive.topic.clone(),
                receive.group.clone(),
                receive.consumer.clone(),
            );
            Box::pin(self.state.on_owner(
                ctx.deadline,
                &receive.topic,
                partition,
                move |owner| async move {
                    match owner::wait_acquirable(&owner, &topic, partition, &group, &consumer, wait)
                        .await
                    {
                        Err(error) if error.kind == ErrorKind::UnknownQueueGroup => Ok(false),
                        other => other,
                    }
                },
            ))
        });
        if partitions == 0 {
            return Ok(());
        }
        let (first, _, _) = futures_util::future::select_all(waits).await;
        first.map(|_| ())
    }

    /// Settles messages the consumer holds: ack, release, reject or extend. Each partition's
    /// ranges are checked before any changes; partitions are settled in order, so a refusal
    /// leaves earlier partitions' ranges settled.
    pub async fn settle(&self, ctx: &RequestContext, settle: Settle) -> BrokerResult<()> {
        self.authorize_consumer(ctx, &settle.topic, &settle.group)?;
        check_consumer(&settle.consumer)?;
        check_action(settle.action)?;
        if settle.ranges.is_empty() || settle.ranges.len() > settings::SETTLE_RANGES_MAX {
            return Err(invalid_request(format!(
                "a settle names 1 to {} ranges, not {}",
                settings::SETTLE_RANGES_MAX,
                settle.ranges.len()
            )));
        }
        let mut by_partition: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        for (partition, first, last) in &settle.ranges {
            self.state.check_partition(&settle.topic, *partition)?;
            by_partition
                .entry(*partition)
                .or_default()
                .push((*first, *last));
        }
        for (partition, ranges) in by_partition {
            let (topic, group, consumer, action) = (
                settle.topic.clone(),
                settle.group.clone(),
                settle.consumer.clone(),
                settle.action,
            );
            self.state
                .on_owner(
                    ctx.deadline,
                    &settle.topic,
                    partition,
                    move |owner| async move {
                        owner::settle(&owner, &topic, partition, &group, &consumer, ranges, action)
                            .await
                    },
                )
                .await?;
        }
        Ok(())
    }
}
