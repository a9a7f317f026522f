//! The service's consumer-group operations. Each runs on the group's coordinator shard. Two
//! kinds of membership share the offsets: ringmq's own (the broker divides the partitions:
//! `join_group`, `heartbeat`, `leave_group`), Kafka's classic one (the leader divides them:
//! `join_round`, `sync_round`, `round_heartbeat`, `leave_round`) and Kafka's KIP-848 consumer
//! protocol (the coordinator divides them and reconciles each member: `consumer_heartbeat`,
//! `describe_consumer_group`).

use crate::broker::BrokerResult;
use crate::broker::groups::client_assigned::{JoinRound, Joined, Synced};
use crate::broker::groups::consumer_protocol::{self, Beat};
use crate::broker::groups::{
    self, CommittedOffset, Committer, ConsumerGroupView, ConsumerHeartbeatReply, GroupDescription,
    GroupSummary, KafkaView, MemberAssignment, OffsetDeletion, client_assigned,
};

use super::{Operation, RequestContext, ResourceType, Service};

/// A join of ringmq's own protocol: the broker assigns the partitions of `topics`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinGroup {
    pub group: String,
    /// Empty for a new member.
    pub member_id: String,
    pub topics: Vec<String>,
    pub session_timeout_ms: u32,
    /// range, round-robin or sticky.
    pub strategy: String,
}

impl Service {
    /// Joins (or rejoins) a broker-assigned group; answers with the member's partitions.
    pub async fn join_group(
        &self,
        ctx: &RequestContext,
        join: JoinGroup,
    ) -> BrokerResult<MemberAssignment> {
        self.on_coordinator(
            ctx,
            &join.group.clone(),
            Operation::Read,
            move |c| async move {
                let JoinGroup {
                    group,
                    member_id,
                    topics,
                    session_timeout_ms,
                    strategy,
                } = join;
                groups::check_kind(&c, &group, false)?;
                groups::join(&c, group, member_id, topics, session_timeout_ms, strategy)
            },
        )
        .await
    }

    /// Keeps a broker-assigned member alive; answers with its partitions in the current
    /// generation (they change when the group rebalances).
    pub async fn heartbeat(
        &self,
        ctx: &RequestContext,
        group: String,
        member_id: String,
    ) -> BrokerResult<MemberAssignment> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            groups::heartbeat(&c, &group, &member_id)
        })
        .await
    }

    /// A broker-assigned member leaves; its partitions go to the others at once.
    pub async fn leave_group(
        &self,
        ctx: &RequestContext,
        group: String,
        member_id: String,
    ) -> BrokerResult<()> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            groups::leave(&c, &group, &member_id)
        })
        .await
    }

    /// Kafka's JoinGroup: waits for the round to complete, then answers with the generation,
    /// the leader, and (for the leader) every member's metadata.
    pub async fn join_round(&self, ctx: &RequestContext, join: JoinRound) -> BrokerResult<Joined> {
        self.on_coordinator(
            ctx,
            &join.group.clone(),
            Operation::Read,
            move |c| async move {
                groups::check_kind(&c, &join.group, false)?;
                client_assigned::join(&c, join).await
            },
        )
        .await
    }

    /// Kafka's SyncGroup: the leader hands in the assignments; each member gets its own.
    /// `member` is (member id, the static member's instance id).
    pub async fn sync_round(
        &self,
        ctx: &RequestContext,
        group: String,
        member: (String, Option<String>),
        generation: i32,
        assignments: Vec<(String, bytes::Bytes)>,
    ) -> BrokerResult<Synced> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            client_assigned::sync(&c, group, member, generation, assignments).await
        })
        .await
    }

    /// Kafka's Heartbeat: `RebalanceInProgress` tells the member to join again.
    pub async fn round_heartbeat(
        &self,
        ctx: &RequestContext,
        group: String,
        (member_id, instance_id): (String, Option<String>),
        generation: i32,
    ) -> BrokerResult<()> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            let me = (member_id.as_str(), instance_id.as_deref());
            client_assigned::heartbeat(&c, &group, me, generation)
        })
        .await
    }

    /// Kafka's LeaveGroup, for one member or several (v3+): (member id, instance id) each.
    pub async fn leave_round(
        &self,
        ctx: &RequestContext,
        group: String,
        members: Vec<(String, Option<String>)>,
    ) -> BrokerResult<()> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            client_assigned::leave(&c, &group, members)
        })
        .await
    }

    /// Kafka's ConsumerGroupHeartbeat (KIP-848): a join with epoch 0, a heartbeat, or a leave
    /// with epoch -1 or -2; answers with the member's epoch and, when it changed, its
    /// partitions.
    pub async fn consumer_heartbeat(
        &self,
        ctx: &RequestContext,
        group: String,
        beat: Beat,
    ) -> BrokerResult<ConsumerHeartbeatReply> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            groups::check_kind(&c, &group, false)?;
            consumer_protocol::heartbeat(&c, &group, beat)
        })
        .await
    }

    /// A KIP-848 group with its epochs, assignor, and each member's partitions and target.
    pub async fn describe_consumer_group(
        &self,
        ctx: &RequestContext,
        group: String,
    ) -> BrokerResult<ConsumerGroupView> {
        self.on_coordinator(
            ctx,
            &group.clone(),
            Operation::Describe,
            move |c| async move { groups::consumer_describe(&c, &group) },
        )
        .await
    }

    /// Checks that `member_id` of a KIP-848 group is at `member_epoch` (an OffsetFetch v9
    /// with a member): UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH if not.
    pub async fn check_member_epoch(
        &self,
        ctx: &RequestContext,
        group: String,
        member_id: String,
        member_epoch: i32,
    ) -> BrokerResult<()> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            groups::check_member_epoch(&c, &group, &member_id, member_epoch)
        })
        .await
    }

    /// Commits offsets as a member of `generation`, or, with an empty `member_id` and a
    /// negative generation, for a group without members (tools resetting offsets). A static
    /// member names its `instance_id`: a commit from a member that instance no longer is
    /// (a zombie of a restarted instance) is fenced.
    pub async fn commit_offsets(
        &self,
        ctx: &RequestContext,
        group: String,
        member: Committer,
        generation: i64,
        offsets: Vec<CommittedOffset>,
    ) -> BrokerResult<()> {
        for (topic, _, _) in &offsets {
            self.authorize(ctx, ResourceType::Topic, topic, Operation::Read)?;
        }
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            groups::check_kind(&c, &group, false)?;
            groups::commit_at(&c, group, member, generation, offsets).await
        })
        .await
    }

    /// The group's committed offsets: of `partitions`, or all of them when it is empty.
    pub async fn committed_offsets(
        &self,
        ctx: &RequestContext,
        group: String,
        partitions: Vec<(String, u32)>,
    ) -> BrokerResult<Vec<CommittedOffset>> {
        self.on_coordinator(ctx, &group.clone(), Operation::Read, move |c| async move {
            Ok(groups::fetch_offsets(&c, &group, partitions))
        })
        .await
    }

    /// A group, its members and their partitions, and its committed offsets.
    pub async fn describe_group(
        &self,
        ctx: &RequestContext,
        group: String,
    ) -> BrokerResult<GroupDescription> {
        self.on_coordinator(
            ctx,
            &group.clone(),
            Operation::Describe,
            move |c| async move { groups::describe(&c, &group) },
        )
        .await
    }

    /// A group as Kafka's DescribeGroups shows it (state Dead when there is no such group).
    pub async fn describe_group_for_kafka(
        &self,
        ctx: &RequestContext,
        group: String,
    ) -> BrokerResult<KafkaView> {
        self.on_coordinator(
            ctx,
            &group.clone(),
            Operation::Describe,
            move |c| async move { Ok(groups::kafka_describe(&c, &group)) },
        )
        .await
    }

    /// Every group of every coordinator, by name.
    pub async fn list_groups(&self, ctx: &RequestContext) -> BrokerResult<Vec<GroupSummary>> {
        let mut listed = self
            .on_every_shard(ctx, |state| groups::list(&state))
            .await?;
        listed.retain(|group| {
            self.is_authorized(ctx, ResourceType::Group, &group.name, Operation::Describe)
        });
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// Every group as Kafka's ListGroups shows them.
    pub async fn list_groups_for_kafka(
        &self,
        ctx: &RequestContext,
    ) -> BrokerResult<Vec<KafkaView>> {
        let mut listed = self
            .on_every_shard(ctx, |state| groups::kafka_list(&state))
            .await?;
        listed.retain(|group| {
            self.is_authorized(ctx, ResourceType::Group, &group.name, Operation::Describe)
        });
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listed)
    }

    /// Deletes committed offsets of `partitions`, each refused while the group's members
    /// consume its topic; one outcome per partition, in order.
    pub async fn delete_offsets(
        &self,
        ctx: &RequestContext,
        group: String,
        partitions: Vec<(String, u32)>,
    ) -> BrokerResult<Vec<OffsetDeletion>> {
        self.on_coordinator(
            ctx,
            &group.clone(),
            Operation::Delete,
            move |c| async move { groups::delete_offsets(&c, group, partitions).await },
        )
        .await
    }

    /// Deletes a group without members, and its committed offsets.
    pub async fn delete_group(&self, ctx: &RequestContext, group: String) -> BrokerResult<()> {
        self.on_coordinator(
            ctx,
            &group.clone(),
            Operation::Delete,
            move |c| async move { groups::delete(&c, group).await },
        )
        .await
    }
}
