//! One consumer group: its generation, its membership (none yet, broker-assigned,
//! client-assigned or KIP-848's consumer protocol: a group is one kind at a time) and its
//! committed offsets.
//!
//! The fields are private so that the rules binding them live in one place: which kind of
//! member may join, who may commit for which generation, what state a group reports. The
//! coordinator hands a membership to its own module's rounds only through `join_*` and the
//! accessors below, together with the generation those rounds advance.

use std::collections::BTreeMap;

use super::broker_assigned::BrokerAssigned;
use super::client_assigned::{ClientAssigned, Phase};
use super::consumer_protocol::ConsumerProtocol;
use super::views::{
    ConsumerGroupView, GroupDescription, GroupSummary, KafkaMember, KafkaView, MemberDescription,
};
use super::{Generation, assignment::Strategy, unknown_member};
use crate::broker::ShardState;
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

#[derive(Default)]
pub struct Group {
    generation: Generation,
    membership: Membership,
    /// (topic, partition) -> the next offset to consume, as last committed.
    committed: BTreeMap<(String, u32), u64>,
}

/// Who the members are and how they get their partitions. A kind whose last member left stays
/// (with its strategy or protocol, which describe still shows) until a member of the other kind
/// joins; `Empty` is a group no member has joined since the start, known by its commits only.
#[derive(Default)]
enum Membership {
    #[default]
    Empty,
    /// ringmq's protocol: the broker divides the partitions.
    BrokerAssigned(BrokerAssigned),
    /// Kafka's JoinGroup/SyncGroup: the leader divides them.
    ClientAssigned(ClientAssigned),
    /// KIP-848's ConsumerGroupHeartbeat: the coordinator divides them and reconciles each
    /// member with member epochs.
    ConsumerProtocol(ConsumerProtocol),
}

impl Group {
    /// Active members, of whichever kind.
    pub(super) fn members(&self) -> usize {
        match &self.membership {
            Membership::Empty => 0,
            Membership::BrokerAssigned(kind) => kind.members(),
            Membership::ClientAssigned(kind) => kind.members(),
            Membership::ConsumerProtocol(kind) => kind.members(),
        }
    }

    pub(super) fn committed(&self) -> &BTreeMap<(String, u32), u64> {
        &self.committed
    }

    pub(super) fn set_committed(&mut self, topic: String, partition: u32, offset: u64) {
        self.committed.insert((topic, partition), offset);
    }

    pub(super) fn forget_committed(&mut self, topic: &str, partition: u32) {
        self.committed.remove(&(topic.to_string(), partition));
    }

    /// Whether members may be consuming `topic`, so that its committed offsets must stay.
    /// Kafka-protocol members' subscriptions are opaque to the broker: while any is in, every
    /// topic counts as theirs.
    pub(super) fn consumes(&self, topic: &str) -> bool {
        match &self.membership {
            Membership::Empty => false,
            Membership::BrokerAssigned(kind) => kind.subscribes_to(topic),
            Membership::ClientAssigned(kind) => kind.members() > 0,
            Membership::ConsumerProtocol(kind) => kind.subscribes_to(topic),
        }
    }

    /// Runs `admit` on this group's broker-assigned membership. Refused while members of the
    /// other kind are in; a new membership replaces an empty one only once `admit` succeeds, so
    /// that a refused join leaves the group as it was.
    pub(super) fn join_broker_assigned<R>(
        &mut self,
        name: &str,
        strategy: Strategy,
        admit: impl FnOnce(&mut BrokerAssigned, &mut Generation) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        match &mut self.membership {
            Membership::BrokerAssigned(kind) => return admit(kind, &mut self.generation),
            Membership::ClientAssigned(kind) if kind.members() > 0 => {
                return Err(BrokerError::new(
                    ErrorKind::InconsistentGroupProtocol,
                    format!("group {name:?} has members of the Kafka protocol"),
                ));
            }
            Membership::ConsumerProtocol(kind) if kind.members() > 0 => {
                return Err(consumer_protocol_in_use(name));
            }
            _ => {}
        }
        let mut kind = BrokerAssigned::new(strategy);
        let admitted = admit(&mut kind, &mut self.generation)?;
        self.membership = Membership::BrokerAssigned(kind);
        Ok(admitted)
    }

    /// Runs `admit` on this group's client-assigned membership for `protocol_type`, as
    /// `join_broker_assigned` does for the other kind. A protocol type other than the current
    /// one is refused while members of it are in.
    pub(super) fn join_client_assigned<R>(
        &mut self,
        name: &str,
        protocol_type: &str,
        admit: impl FnOnce(&mut ClientAssigned, &mut Generation) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        match &mut self.membership {
            Membership::ClientAssigned(kind) if kind.protocol_type() == protocol_type => {
                return admit(kind, &mut self.generation);
            }
            Membership::ClientAssigned(kind) if kind.members() > 0 => {
                return Err(BrokerError::new(
                    ErrorKind::InconsistentGroupProtocol,
                    format!(
                        "group {name:?} uses protocol type {:?}",
                        kind.protocol_type()
                    ),
                ));
            }
            Membership::BrokerAssigned(kind) if kind.members() > 0 => {
                return Err(BrokerError::new(
                    ErrorKind::InconsistentGroupProtocol,
                    format!("group {name:?} has members of ringmq's own protocol"),
                ));
            }
            // As Kafka's coordinator without migration (`group.consumer.migration.policy`
            // disabled): a classic join to a consumer group with members is inconsistent.
            Membership::ConsumerProtocol(kind) if kind.members() > 0 => {
                return Err(consumer_protocol_in_use(name));
            }
            _ => {}
        }
        let mut kind = ClientAssigned::new(protocol_type.to_string());
        let admitted = admit(&mut kind, &mut self.generation)?;
        self.membership = Membership::ClientAssigned(kind);
        Ok(admitted)
    }

    /// Runs `admit` on this group's KIP-848 membership, made if the group has no members of
    /// another kind; a group with such members is "not a consumer group", as Kafka says it
    /// (GROUP_ID_NOT_FOUND).
    pub(super) fn join_consumer_protocol<R>(
        &mut self,
        name: &str,
        admit: impl FnOnce(&mut ConsumerProtocol, &mut Generation) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        let others = self.members();
        match &mut self.membership {
            Membership::ConsumerProtocol(kind) => return admit(kind, &mut self.generation),
            _ if others > 0 => return Err(not_a_consumer_group(name)),
            _ => {}
        }
        let mut kind = ConsumerProtocol::default();
        let admitted = admit(&mut kind, &mut self.generation)?;
        self.membership = Membership::ConsumerProtocol(kind);
        Ok(admitted)
    }

    /// This group's KIP-848 membership, for a member's heartbeat or leave.
    pub(super) fn consumer_protocol(
        &mut self,
        name: &str,
        member_id: &str,
    ) -> BrokerResult<(&mut ConsumerProtocol, &mut Generation)> {
        let others = self.members();
        match &mut self.membership {
            Membership::ConsumerProtocol(kind) => Ok((kind, &mut self.generation)),
            _ if others > 0 => Err(not_a_consumer_group(name)),
            _ => Err(unknown_member(name, member_id)),
        }
    }

    pub(super) fn uses_consumer_protocol(&self) -> bool {
        matches!(self.membership, Membership::ConsumerProtocol(_))
    }

    /// The group as ConsumerGroupDescribe shows it; None unless it is a KIP-848 group.
    pub(super) fn consumer_view(&self, name: &str) -> Option<ConsumerGroupView> {
        match &self.membership {
            Membership::ConsumerProtocol(kind) => Some(kind.view(name, self.generation)),
            _ => None,
        }
    }

    pub(super) fn broker_assigned(&mut self) -> Option<(&mut BrokerAssigned, &mut Generation)> {
        match &mut self.membership {
            Membership::BrokerAssigned(kind) => Some((kind, &mut self.generation)),
            _ => None,
        }
    }

    pub(super) fn client_assigned(&mut self) -> Option<(&mut ClientAssigned, &mut Generation)> {
        match &mut self.membership {
            Membership::ClientAssigned(kind) => Some((kind, &mut self.generation)),
            _ => None,
        }
    }

    /// Removes the members whose sessions expired, which starts a new round for the rest.
    pub(super) fn expire_sessions(&mut self, name: &str, state: &ShardState) {
        match &mut self.membership {
            Membership::Empty => {}
            Membership::BrokerAssigned(kind) => {
                for member in kind.expire_sessions(state, &mut self.generation) {
                    tracing::info!(group = %name, %member, "session expired; rebalancing");
                }
            }
            Membership::ClientAssigned(kind) => {
                let expired = kind.expire_sessions();
                if !expired.is_empty() {
                    tracing::info!(group = %name, members = ?expired, "sessions expired; rebalancing");
                }
            }
            Membership::ConsumerProtocol(kind) => {
                let expired = kind.expire_sessions(state, &mut self.generation);
                if !expired.is_empty() {
                    tracing::info!(group = %name, members = ?expired, "consumers expired (session or revocation timeout)");
                }
            }
        }
    }

    /// Whether `member_id` may commit for `generation`; with no member id, only for a group
    /// without members (an administrator's reset).
    pub(super) fn check_commit(
        &self,
        name: &str,
        member_id: &str,
        generation: i64,
    ) -> BrokerResult<()> {
        let current = self.generation.get();
        if member_id.is_empty() {
            let members = self.members();
            if members > 0 {
                return Err(BrokerError::new(
                    ErrorKind::GroupNotEmpty,
                    format!(
                        "group {name:?} has {members} active member(s): commit as a member, or stop them first"
                    ),
                ));
            }
            return Ok(());
        }
        match &self.membership {
            Membership::ClientAssigned(kind) => {
                if !kind.has_member(member_id) {
                    return Err(unknown_member(name, member_id));
                }
                if generation != i64::from(current) {
                    return Err(BrokerError::new(
                        ErrorKind::IllegalGeneration,
                        format!("generation {generation} is over: group {name:?} is at {current}"),
                    ));
                }
                // As Kafka's coordinator: a member of the current generation may commit while
                // the group prepares a rebalance (clients commit in their revoke callback,
                // before they rejoin; refusing it would deliver everything since their last
                // commit again), but not while it completes one: the generation it would
                // commit for is already over.
                if kind.phase() == Phase::Syncing {
                    return Err(BrokerError::new(
                        ErrorKind::RebalanceInProgress,
                        "the group is completing a rebalance: sync, then commit",
                    ));
                }
                Ok(())
            }
            Membership::BrokerAssigned(kind) if kind.has_member(member_id) => {
                if generation != i64::from(current) {
                    return Err(BrokerError::new(
                        ErrorKind::IllegalGeneration,
                        format!(
                            "generation {generation} is over: group {name:?} is at {current}; heartbeat to learn the new assignment"
                        ),
                    ));
                }
                Ok(())
            }
            // KIP-848: the member epoch is the generation (Kafka's STALE_MEMBER_EPOCH).
            Membership::ConsumerProtocol(kind) => match kind.member_epoch(member_id) {
                None => Err(unknown_member(name, member_id)),
                Some(epoch) if i64::from(epoch) != generation => Err(BrokerError::new(
                    ErrorKind::StaleMemberEpoch,
                    format!(
                        "member epoch {generation} is stale: {member_id:?} of group {name:?} is at {epoch}; heartbeat first"
                    ),
                )),
                Some(_) => Ok(()),
            },
            Membership::BrokerAssigned(_) | Membership::Empty => {
                Err(unknown_member(name, member_id))
            }
        }
    }

    /// ringmq's state names.
    fn state(&self) -> &'static str {
        match &self.membership {
            Membership::ClientAssigned(kind) => match kind.phase() {
                Phase::Joining => "preparing-rebalance",
                Phase::Syncing => "completing-rebalance",
                Phase::Stable => "stable",
                Phase::Empty => "empty",
            },
            Membership::BrokerAssigned(kind) if kind.members() > 0 => "stable",
            Membership::ConsumerProtocol(kind) => match kind.state() {
                "Stable" => "stable",
                "Empty" => "empty",
                _ => "reconciling",
            },
            Membership::BrokerAssigned(_) | Membership::Empty => "empty",
        }
    }

    pub(super) fn summary(&self, name: &str) -> GroupSummary {
        GroupSummary {
            name: name.to_string(),
            state: self.state().into(),
            generation: self.generation.get(),
            members: self.members() as u32,
        }
    }

    /// The group as ringmq's describe shows it.
    pub(super) fn description(&self, name: &str) -> GroupDescription {
        let (strategy, members) = match &self.membership {
            Membership::Empty => ("none".to_string(), Vec::new()),
            Membership::BrokerAssigned(kind) => (kind.strategy().name().to_string(), kind.view()),
            Membership::ClientAssigned(kind) => {
                let strategy = if kind.members() > 0 {
                    format!(
                        "{} (client-assigned, {})",
                        kind.protocol_name(),
                        kind.protocol_type()
                    )
                } else {
                    "none".to_string()
                };
                // Their assignments are opaque to the broker: only the clients can read them.
                let members = kind
                    .kafka_members()
                    .into_iter()
                    .map(|member| MemberDescription {
                        member_id: member.member_id,
                        client_id: member.client_id,
                        partitions: Vec::new(),
                    })
                    .collect();
                (strategy, members)
            }
            Membership::ConsumerProtocol(kind) => {
                let view = kind.view(name, self.generation);
                let members = view
                    .members
                    .into_iter()
                    .map(|member| MemberDescription {
                        member_id: member.member_id,
                        client_id: member.client_id,
                        partitions: member.assigned,
                    })
                    .collect();
                (format!("{} (consumer protocol)", view.assignor), members)
            }
        };
        GroupDescription {
            summary: self.summary(name),
            strategy,
            members,
            offsets: self
                .committed
                .iter()
                .map(|((t, p), o)| (t.clone(), *p, *o))
                .collect(),
        }
    }

    /// The group as Kafka's ListGroups/DescribeGroups show it.
    pub(super) fn kafka_view(&self, name: &str) -> KafkaView {
        let (protocol_type, protocol_name, members) = match &self.membership {
            Membership::ClientAssigned(kind) => (
                kind.protocol_type().to_string(),
                kind.protocol_name().to_string(),
                kind.kafka_members(),
            ),
            // ringmq's own groups show their members without Kafka metadata.
            Membership::BrokerAssigned(kind) => (
                "ringmq".to_string(),
                kind.strategy().name().to_string(),
                kind.view()
                    .into_iter()
                    .map(|member| KafkaMember {
                        member_id: member.member_id,
                        client_id: String::new(),
                        metadata: Default::default(),
                        assignment: Default::default(),
                    })
                    .collect(),
            ),
            Membership::Empty => ("ringmq".to_string(), String::new(), Vec::new()),
            // KIP-848 groups show their own state names and no classic metadata.
            Membership::ConsumerProtocol(kind) => {
                let view = kind.view(name, self.generation);
                let members = view
                    .members
                    .into_iter()
                    .map(|member| KafkaMember {
                        member_id: member.member_id,
                        client_id: member.client_id,
                        metadata: Default::default(),
                        assignment: Default::default(),
                    })
                    .collect();
                return KafkaView {
                    name: name.to_string(),
                    state: view.state,
                    group_type: "consumer",
                    protocol_type: "consumer".to_string(),
                    protocol_name: view.assignor.to_string(),
                    members,
                };
            }
        };
        let state = match self.state() {
            "preparing-rebalance" => "PreparingRebalance",
            "completing-rebalance" => "CompletingRebalance",
            "stable" => "Stable",
            _ => "Empty",
        };
        KafkaView {
            name: name.to_string(),
            state,
            group_type: "classic",
            protocol_type,
            protocol_name,
            members,
        }
    }
}

fn consumer_protocol_in_use(name: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::InconsistentGroupProtocol,
        format!("group {name:?} has members of the consumer protocol (KIP-848)"),
    )
}

fn not_a_consumer_group(name: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownGroup,
        format!("group {name:?} is not a consumer group: it has members of another protocol"),
    )
}
