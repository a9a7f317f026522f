//! What the group operations return: plain data that the protocol adapters render. ringmq's
//! own view (`GroupDescription`, with assigned partitions) and Kafka's (`KafkaView`, with the
//! members' opaque metadata and assignments) describe the same groups for the two protocols.

use bytes::Bytes;

/// A member's partitions in its group's current generation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberAssignment {
    pub member_id: String,
    pub generation: u32,
    pub partitions: Vec<(String, u32)>,
}

/// A committed offset: (topic, partition, offset).
pub type CommittedOffset = (String, u32, u64);

/// A group in one line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    /// empty, rebalancing or stable.
    pub state: String,
    pub generation: u32,
    pub members: u32,
}

/// One member, as ringmq's describe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    /// Empty for Kafka-protocol members: their assignments are opaque to the broker.
    pub partitions: Vec<(String, u32)>,
}

/// A group, as ringmq's describe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub summary: GroupSummary,
    pub strategy: String,
    pub members: Vec<MemberDescription>,
    pub offsets: Vec<CommittedOffset>,
}

/// A group as Kafka's ListGroups/DescribeGroups show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaView {
    pub name: String,
    /// Kafka's state names: Empty, PreparingRebalance, CompletingRebalance, Stable, Dead.
    pub state: &'static str,
    /// classic (JoinGroup/SyncGroup and ringmq's own) or consumer (KIP-848).
    pub group_type: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    pub members: Vec<KafkaMember>,
}

/// One member as Kafka's DescribeGroups shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaMember {
    pub member_id: String,
    pub client_id: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// What a KIP-848 heartbeat answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerHeartbeatReply {
    /// The member's id (made by the coordinator for a v0 join without one).
    pub member_id: String,
    /// Its epoch now; -1 or -2 after a leave.
    pub member_epoch: i32,
    pub heartbeat_interval_ms: u32,
    /// Its partitions, when they changed or the request was a full one; None: unchanged.
    pub assignment: Option<Vec<(String, u32)>>,
}

/// A KIP-848 group as Kafka's ConsumerGroupDescribe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerGroupView {
    pub name: String,
    /// Empty, Assigning, Reconciling or Stable.
    pub state: &'static str,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor: &'static str,
    pub members: Vec<ConsumerMemberView>,
}

/// One KIP-848 member: what it owns now and what it is moving towards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerMemberView {
    pub member_id: String,
    pub member_epoch: i32,
    pub client_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub topics: Vec<String>,
    pub assigned: Vec<(String, u32)>,
    pub target: Vec<(String, u32)>,
}
