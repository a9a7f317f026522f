//! The broker service: every operation the broker offers, typed, and the one way in for the
//! protocol adapters. An operation takes a `RequestContext` (who asks, until when) and typed
//! arguments, finds the shard that must do the work (the partition's owner, the group's
//! coordinator, shard 0 for topic changes), runs it there, and returns a domain result or a
//! `BrokerError`. Nothing here knows a wire format.

mod acls;
mod configs;
mod context;
mod disk;
mod exchanges;
mod groups;
mod many;
mod queues;
mod quotas;
mod records;
mod replies;
mod sasl;
mod share_groups;
mod share_offsets;
mod types;
mod users;

use std::rc::Rc;

pub use super::admin::ConfigChange;
pub use super::configs::{ConfigEntry, ConfigType};
pub use super::groups::client_assigned::{JoinRound, Joined, Synced};
pub use super::groups::consumer_protocol::{Assignor, Beat};
pub use super::groups::{
    CommittedOffset, Committer, ConsumerGroupView, ConsumerHeartbeatReply, ConsumerMemberView,
    GroupDescription, GroupSummary, KafkaMember, KafkaView, MemberAssignment, MemberDescription,
    OffsetDeletion,
};
pub use super::producer_ids::ProducerIdentity;
pub use super::queues::settings::SETTLE_RANGES_MAX;
pub use super::queues::state::Stats as QueueStats;
pub use super::queues::{Action as SettleAction, ReceivedMessage, View as QueueView};
pub use super::replies::inbox::Delivery;
pub use super::routing::admin::NewExchange;
pub use super::routing::model::{Binding, Destination, ExchangeKind, ExchangeMeta, HeaderMatch};
pub use super::routing::publish::{
    CopyOutcome, EXCHANGE_HEADER, Publish, Published, ROUTING_KEY_HEADER,
};
pub use super::share_groups::{
    CONFIG_NAMES as SHARE_GROUP_CONFIGS, ShareBeat, ShareBeatReply, ShareGroupView,
    ShareMemberView, ShareSettings,
};
pub use crate::auth::scram::{Credential, Mechanism};
pub use crate::broker::acls::{Acl, AclFilter, Operation, PatternType, Permission, ResourceType};
pub use crate::broker::quotas::QuotaKind;
pub use crate::broker::users::UserChange;
pub use acls::{CLUSTER, principal_name};
pub use context::{Principal, RequestContext};
pub use disk::LogDir;
pub use groups::JoinGroup;
pub use many::PartitionEnds;
pub use queues::{NewQueueGroup, QueueGroupDescription, QueuePartition, Receive, Settle};
pub use replies::{ExchangeRequest, ReplyOutcome, SendReply, SendRequest};
pub use sasl::{HandshakeRefusal, SaslSession};
pub use share_groups::{ShareAck, ShareFetch, SharePartitionRead};
pub use types::{
    AckLevel, Fetch, Fetched, ListedOffset, NewTopic, OffsetQuery, PartitionChoice, Produce,
    Produced, RecordsBefore, TopicInfo,
};
pub use users::authentication_failed;

use super::error::{BrokerError, BrokerResult, ErrorKind};
use super::{ShardState, admin, partition, topics};

/// The broker as one shard's connections see it. Cheap to clone: a handle on the shard.
#[derive(Clone)]
pub struct Service {
    state: Rc<ShardState>,
}

impl Service {
    pub fn new(state: Rc<ShardState>) -> Service {
        Service { state }
    }

    /// Runs `work` on the coordinator of `group`, within the request's deadline.
    /// The principal must be allowed `operation` on the group (ACLs).
    async fn on_coordinator<R, F, Fut>(
        &self,
        ctx: &RequestContext,
        group: &str,
        operation: Operation,
        work: F,
    ) -> BrokerResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = BrokerResult<R>> + 'static,
    {
        self.authorize(ctx, ResourceType::Group, group, operation)?;
        self.state.on_coordinator(ctx.deadline, group, work).await
    }

    /// Runs `gather` on every shard in turn, within the request's deadline, and joins what
    /// each returns.
    async fn on_every_shard<T, F>(&self, ctx: &RequestContext, gather: F) -> BrokerResult<Vec<T>>
    where
        T: Send + 'static,
        F: Fn(Rc<ShardState>) -> Vec<T> + Clone + Send + 'static,
    {
        let mut all = Vec::new();
        for shard in 0..self.state.shards() {
            let gather = gather.clone();
            let part = self
                .state
                .on_shard_until(ctx.deadline, shard, move |state| async move {
                    Ok::<_, BrokerError>(gather(state))
                })
                .await?;
            all.extend(part);
        }
        Ok(all)
    }

    /// The shards (cores) the broker runs on.
    pub fn shards(&self) -> usize {
        self.state.shards()
    }

    /// Appends record batches to a partition, once its owner has validated them, and answers
    /// when they reach the durability `acks` asks for.
    pub async fn produce(&self, ctx: &RequestContext, produce: Produce) -> BrokerResult<Produced> {
        self.authorize(ctx, ResourceType::Topic, &produce.topic, Operation::Write)?;
        let index = match &produce.partition {
            PartitionChoice::Index(index) => *index,
            PartitionChoice::ByKey(key) => {
                let partitions = self.state.partitions_of(&produce.topic)?;
                self.state.config.key_partitioner.partition(key, partitions)
            }
        };
        self.state.check_partition(&produce.topic, index)?;
        let topic = produce.topic.clone();
        self.state
            .on_owner(ctx.deadline, &topic, index, move |owner| async move {
                partition::produce(&owner, &produce.topic, index, produce.acks, produce.records)
                    .await
            })
            .await
    }

    /// Reads whole batches from `offset`; with `min_bytes` not there yet, waits for them up to
    /// `max_wait_ms` (capped by the broker's `fetch_wait_ms_max`).
    pub async fn fetch(&self, ctx: &RequestContext, fetch: Fetch) -> BrokerResult<Fetched> {
        self.authorize(ctx, ResourceType::Topic, &fetch.topic, Operation::Read)?;
        self.check_exclusive(ctx, &fetch.topic)?;
        self.state.check_partition(&fetch.topic, fetch.partition)?;
        let (topic, index) = (fetch.topic.clone(), fetch.partition);
        self.state
            .on_owner(ctx.deadline, &topic, index, move |owner| async move {
                partition::fetch(&owner, fetch).await
            })
            .await
    }

    /// A partition's start and end, or the record (offset and timestamp) at or after a timestamp
    /// or with the largest timestamp.
    pub async fn list_offset(
        &self,
        ctx: &RequestContext,
        topic: &str,
        index: u32,
        query: OffsetQuery,
    ) -> BrokerResult<ListedOffset> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Describe)?;
        self.state.check_partition(topic, index)?;
        let name = topic.to_string();
        self.state
            .on_owner(ctx.deadline, topic, index, move |owner| async move {
                partition::list_offsets(&owner, &name, index, query).await
            })
            .await
    }

    /// Partitions of a topic created without saying how many (`default_partitions`).
    pub fn default_partitions(&self) -> u32 {
        self.state.config.default_partitions
    }

    /// Every topic, by name.
    pub fn topics(&self, ctx: &RequestContext) -> Vec<TopicInfo> {
        self.state
            .topics()
            .by_name
            .values()
            .filter(|meta| {
                self.is_authorized(ctx, ResourceType::Topic, &meta.name, Operation::Describe)
            })
            .map(|meta| topic_info(meta))
            .collect()
    }

    /// One topic.
    pub fn topic(&self, ctx: &RequestContext, name: &str) -> BrokerResult<TopicInfo> {
        self.authorize(ctx, ResourceType::Topic, name, Operation::Describe)?;
        let topics = self.state.topics();
        let meta = topics
            .get(name)
            .ok_or_else(|| BrokerError::unknown_topic(name))?;
        Ok(topic_info(meta))
    }

    /// Whether a topic of this name exists, for an adapter's own bookkeeping (the SQS door's
    /// fold of `__sqs_queues`, shared by every principal's requests); never to answer a
    /// client, which `topic` does under the ACLs.
    pub fn topic_exists(&self, name: &str) -> bool {
        self.state.topics().get(name).is_some()
    }

    /// Creates a topic; answered once every shard has opened its partitions, so the client
    /// can produce to any of them at once through any connection.
    pub async fn create_topic(&self, ctx: &RequestContext, topic: NewTopic) -> BrokerResult<()> {
        self.authorize_creation(ctx, &topic.name)?;
        topics::validate_name(&topic.name)?;
        super::replies::check_user_topic_name(&topic.name)?;
        self.state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                admin::create_topic(&zero, topic).await
            })
            .await
    }

    /// A topic a client names before anyone created it (Kafka's auto-creation): the topic as it
    /// is, or, when the broker's `auto_create_topics` allows, created first with the broker's
    /// defaults (`default_partitions`, `topic_defaults`) through the same path as
    /// `create_topic` (validation, `topics_max`, shard 0). A creation that another connection's
    /// won meanwhile is that topic, not an error. An invalid name is refused as invalid, never
    /// created; with creation off an unknown topic stays unknown.
    pub async fn ensure_topic(&self, ctx: &RequestContext, name: &str) -> BrokerResult<TopicInfo> {
        if let Ok(info) = self.topic(ctx, name) {
            return Ok(info);
        }
        self.check_auto_create(ctx, name)?;
        let topic = NewTopic {
            name: name.to_string(),
            partitions: self.state.config.default_partitions,
            configs: Vec::new(),
        };
        match self.create_topic(ctx, topic).await {
            Ok(()) => {}
            Err(error) if error.kind == ErrorKind::TopicExists => {}
            Err(error) => return Err(error),
        }
        self.topic(ctx, name)
    }

    /// Whether `ensure_topic` may create `name`, decided on this shard with no trip to shard 0:
    /// a valid name (else `InvalidTopicName`), creation on (else `UnknownTopic`), room under
    /// `topics_max` (else `ResourceLimit`). A request naming many unknown topics costs a lookup
    /// for each that cannot be created, nothing more.
    pub fn check_auto_create(&self, _ctx: &RequestContext, name: &str) -> BrokerResult<()> {
        topics::validate_name(name)?;
        super::replies::check_user_topic_name(name)?;
        let config = &self.state.config;
        if !config.auto_create_topics {
            return Err(BrokerError::unknown_topic(name));
        }
        if self.state.topics().by_name.len() >= config.topics_max {
            return Err(admin::topics_max_reached(config.topics_max));
        }
        Ok(())
    }

    /// Checks what `create_topic` would check, without creating anything (Kafka's
    /// `validate_only`).
    pub fn validate_new_topic(&self, ctx: &RequestContext, topic: &NewTopic) -> BrokerResult<()> {
        self.authorize_creation(ctx, &topic.name)?;
        admin::validate_new_topic(&self.state, topic).map(|_| ())
    }

    /// An identity for an idempotent producer (transactional ids are refused until
    /// transactions are served), or the next epoch of the one it names.
    pub fn init_producer_id(
        &self,
        ctx: &RequestContext,
        current: Option<ProducerIdentity>,
    ) -> BrokerResult<ProducerIdentity> {
        // Kafka 3.0's rule: IdempotentWrite on the cluster, or Write on any topic.
        let may = self.is_authorized(
            ctx,
            ResourceType::Cluster,
            CLUSTER,
            Operation::IdempotentWrite,
        ) || self.may_write_some_topic(ctx);
        if !may {
            self.authorize(
                ctx,
                ResourceType::Cluster,
                CLUSTER,
                Operation::IdempotentWrite,
            )?;
        }
        super::producer_ids::init(ctx.transactional_id.as_deref(), current)
    }

    /// Grows a topic to `partitions` (it never shrinks); answered once every shard has opened
    /// its new partitions. Existing data stays where it is.
    pub async fn add_partitions(
        &self,
        ctx: &RequestContext,
        topic: String,
        partitions: u32,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, &topic, Operation::Alter)?;
        self.check_exclusive(ctx, &topic)?;
        self.state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                admin::add_partitions(&zero, topic, partitions).await
            })
            .await
    }

    /// Checks what `add_partitions` would check, changing nothing.
    pub fn validate_add_partitions(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partitions: u32,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Alter)?;
        admin::validate_partition_growth(&self.state, topic, partitions).map(|_| ())
    }

    /// Deletes a topic and its data; answered once every shard has closed its partitions.
    pub async fn delete_topic(&self, ctx: &RequestContext, name: String) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, &name, Operation::Delete)?;
        self.check_exclusive(ctx, &name)?;
        self.state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                admin::delete_topic(&zero, name).await
            })
            .await
    }
}

fn topic_info(meta: &topics::TopicMeta) -> TopicInfo {
    TopicInfo {
        name: meta.name.clone(),
        id: meta.id(),
        partitions: meta.partitions,
        configs: topics::describe(&meta.config),
    }
}

/// Whether `name` could be a topic's name (`InvalidTopicName` if not).
pub fn validate_topic_name(name: &str) -> BrokerResult<()> {
    topics::validate_name(name)
}

/// A refusal for an argument the caller got wrong, with the reason.
pub fn invalid_request(message: impl Into<String>) -> BrokerError {
    BrokerError::new(ErrorKind::InvalidRequest, message)
}

#[cfg(test)]
mod tests;
