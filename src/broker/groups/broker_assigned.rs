//! Broker-assigned groups: ringmq's own protocol, where the client joins with its topics and the
//! broker divides the partitions (with `assignment`'s strategies) and tells each member its own.
//!
//! There is no join round to wait for: every join, leave or expired session reassigns at once
//! and starts a new generation, and a member learns its new partitions (and generation) from its
//! next heartbeat. A heartbeat also notices topics created or deleted since the last assignment,
//! since they change what there is to divide.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignment::{self, Assignment, Strategy};
use super::views::{MemberAssignment, MemberDescription};
use super::{
    Generation, MEMBERS_PER_GROUP_MAX, SESSION_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MIN,
    check_member_metadata, group_full, partition_counts, unknown_member, validate_name,
};
use crate::broker::ShardState;
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

struct Member {
    client_id: String,
    topics: BTreeSet<String>,
    session_timeout: Duration,
    last_seen: Instant,
}

pub struct BrokerAssigned {
    strategy: Strategy,
    members: BTreeMap<String, Member>,
    assignment: Assignment,
    /// The partition counts the current assignment was made for.
    partitions_seen: BTreeMap<String, u32>,
    /// Members ever admitted: part of each new member id, so that no id is given twice.
    members_ever: u64,
}

impl BrokerAssigned {
    pub(super) fn new(strategy: Strategy) -> BrokerAssigned {
        BrokerAssigned {
            strategy,
            members: BTreeMap::new(),
            assignment: Assignment::new(),
            partitions_seen: BTreeMap::new(),
            members_ever: 0,
        }
    }

    pub(super) fn members(&self) -> usize {
        self.members.len()
    }

    /// Whether any member subscribes to `topic`.
    pub(super) fn subscribes_to(&self, topic: &str) -> bool {
        self.members
            .values()
            .any(|member| member.topics.contains(topic))
    }

    pub(super) fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub(super) fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Each member with its partitions.
    pub(super) fn view(&self) -> Vec<MemberDescription> {
        self.members
            .iter()
            .map(|(id, member)| MemberDescription {
                member_id: id.clone(),
                client_id: member.client_id.clone(),
                partitions: self.assignment.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Admits `member` as `member_id` (a new id when empty) for `strategy`; returns its id. The
    /// strategy may change only while the group has no members: members of one group must
    /// agree on how they are divided.
    fn admit(
        &mut self,
        name: &str,
        member_id: String,
        strategy: Strategy,
        member: Member,
    ) -> BrokerResult<String> {
        if !self.members.is_empty() && self.strategy != strategy {
            return Err(BrokerError::new(
                ErrorKind::InvalidConfig,
                format!("group {name:?} uses the {} strategy", self.strategy.name()),
            ));
        }
        let member_id = if member_id.is_empty() {
            if self.members.len() >= MEMBERS_PER_GROUP_MAX {
                return Err(group_full(name));
            }
            self.members_ever += 1;
            format!(
                "{name}-{}-{:x}",
                self.members_ever,
                crate::storage::log::now_ms()
            )
        } else if self.members.contains_key(&member_id) {
            member_id
        } else {
            return Err(unknown_member(name, &member_id));
        };
        self.strategy = strategy;
        self.members.insert(member_id.clone(), member);
        Ok(member_id)
    }

    /// Divides the partitions anew among the current members: a new generation.
    fn rebalance(&mut self, state: &ShardState, generation: &mut Generation) {
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, member)| (id.clone(), member.topics.clone()))
            .collect();
        let topics: BTreeSet<String> = subscriptions.values().flatten().cloned().collect();
        let partitions = partition_counts(state, topics.into_iter());
        self.assignment =
            assignment::assign(self.strategy, &subscriptions, &partitions, &self.assignment);
        self.partitions_seen = partitions;
        generation.advance();
    }

    /// Removes the members whose sessions expired and, if any, rebalances; returns their ids.
    pub(super) fn expire_sessions(
        &mut self,
        state: &ShardState,
        generation: &mut Generation,
    ) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| m.last_seen.elapsed() > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for member in &expired {
                self.members.remove(member);
            }
            self.rebalance(state, generation);
        }
        expired
    }

    /// What `member_id` learns: its partitions in the current generation.
    fn member_view(&self, member_id: &str, generation: Generation) -> MemberAssignment {
        MemberAssignment {
            member_id: member_id.to_string(),
            generation: generation.get(),
            partitions: self.assignment.get(member_id).cloned().unwrap_or_default(),
        }
    }
}

pub fn join(
    state: &ShardState,
    name: String,
    member_id: String,
    topics: Vec<String>,
    session_timeout_ms: u32,
    strategy: String,
) -> BrokerResult<MemberAssignment> {
    validate_name(&name)?;
    if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&session_timeout_ms) {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            format!(
                "session_timeout_ms must be {SESSION_TIMEOUT_MS_MIN} to {SESSION_TIMEOUT_MS_MAX}"
            ),
        ));
    }
    let strategy = Strategy::parse(&strategy).ok_or_else(|| {
        BrokerError::new(
            ErrorKind::InvalidConfig,
            format!("unknown assignment strategy {strategy:?}: range, round-robin or sticky"),
        )
    })?;
    if topics.is_empty() {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            "a member subscribes to at least one topic",
        ));
    }
    check_member_metadata(topics.iter().map(String::len))?;
    let member = Member {
        client_id: String::new(),
        topics: topics.into_iter().collect(),
        session_timeout: Duration::from_millis(u64::from(session_timeout_ms)),
        last_seen: Instant::now(),
    };
    let mut coordinator = state.coordinator.borrow_mut();
    coordinator.join_broker_assigned(&name, strategy, |kind, generation| {
        let member_id = kind.admit(&name, member_id, strategy, member)?;
        kind.rebalance(state, generation);
        tracing::debug!(group = %name, member = %member_id, generation = generation.get(), "member joined");
        Ok(kind.member_view(&member_id, *generation))
    })
}

pub fn heartbeat(
    state: &ShardState,
    name: &str,
    member_id: &str,
) -> BrokerResult<MemberAssignment> {
    let mut coordinator = state.coordinator.borrow_mut();
    let (kind, generation) = coordinator
        .broker_assigned(name)
        .ok_or_else(|| unknown_member(name, member_id))?;
    let member = kind
        .members
        .get_mut(member_id)
        .ok_or_else(|| unknown_member(name, member_id))?;
    member.last_seen = Instant::now();
    let topics = kind
        .partitions_seen
        .keys()
        .cloned()
        .chain(kind.members.values().flat_map(|m| m.topics.iter().cloned()));
    if partition_counts(state, topics) != kind.partitions_seen {
        kind.rebalance(state, generation);
    }
    Ok(kind.member_view(member_id, *generation))
}

pub fn leave(state: &ShardState, name: &str, member_id: &str) -> BrokerResult<()> {
    let mut coordinator = state.coordinator.borrow_mut();
    let (kind, generation) = coordinator
        .broker_assigned(name)
        .ok_or_else(|| unknown_member(name, member_id))?;
    kind.members
        .remove(member_id)
        .ok_or_else(|| unknown_member(name, member_id))?;
    kind.rebalance(state, generation);
    Ok(())
}
