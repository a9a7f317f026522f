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
