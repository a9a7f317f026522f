//! Client-assigned groups: Kafka's JoinGroup/SyncGroup protocol, on the same coordinator and
//! committed offsets as broker-assigned groups (a group is one kind or the other).
//!
//! Members send opaque protocol metadata (e.g. a Kafka consumer's subscription per assignor).
//! A join starts a round: the coordinator waits until every known member has joined again, or
//! the longest rebalance timeout has passed (those that did not are removed), then starts a new
//! generation, picks a leader and a protocol every member supports, and answers every join; the
//! leader gets all members' metadata. The leader's SyncGroup carries everyone's assignment;
//! every member's SyncGroup is answered with its own. Heartbeats during a round are answered
//! `rebalance_in_progress`, so members join again.
//!
//! Static members (KIP-345) name a `group.instance.id`: one that restarts and joins again
//! with an empty member id within its session timeout takes over its old membership under a
//! new member id, with its assignment and without a round, unless it led the group or no longer
//! offers the group's protocol; the old member id is fenced (`FencedInstance`), so a zombie of the old
//! process cannot act for it.
//!
//! Each member's protocols are bounded (`MEMBER_METADATA_BYTES_MAX`) and so are the members of a
//! group (`MEMBERS_PER_GROUP_MAX`): a join holds them for as long as the member's session, so a
//! loop of joins with fresh member ids must meet a limit.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::views::KafkaMember;
use super::{
    Coordinator, Generation, MEMBERS_PER_GROUP_MAX, SESSION_TIMEOUT_MS_MAX, SESSION_TIMEOUT_MS_MIN,
    check_member_metadata, group_full, validate_name,
};
use crate::broker::ShardState;
use crate::broker::{BrokerError, BrokerResult, ErrorKind};
use crate::runtime;

/// The longest a join round may wait for members.
const ROUND_WAIT_MAX: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Empty,
    /// Waiting for members to join again.
    Joining,
    /// The round is over; waiting for the leader's assignment.
    Syncing,
    Stable,
}

struct Member {
    client_id: String,
    /// The static member's `group.instance.id`.
    instance_id: Option<String>,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    last_seen: Instant,
    joined_this_round: bool,
    assignment: Bytes,
}

impl Member {
    /// This member's metadata for `protocol` (empty if it does not offer it).
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }
}

pub struct ClientAssigned {
    protocol_type: String,
    protocol_name: String,
    members: BTreeMap<String, Member>,
    /// Static members: instance id -> current member id.
    instances: BTreeMap<String, String>,
    leader: String,
    phase: Phase,
    round_deadline: Instant,
    /// Member ids handed out so far: part of every new id, so no two are ever the same.
    ids_issued: u64,
    /// Wakes joins and syncs waiting for the round or the assignment.
    changed: Rc<runtime::Notify>,
}

impl ClientAssigned {
    pub(super) fn new(protocol_type: String) -> ClientAssigned {
        ClientAssigned {
            protocol_type,
            protocol_name: String::new(),
            members: BTreeMap::new(),
            instances: BTreeMap::new(),
            leader: String::new(),
            phase: Phase::Empty,
            round_deadline: Instant::now(),
            ids_issued: 0,
            changed: Rc::new(runtime::Notify::default()),
        }
    }

    pub(super) fn members(&self) -> usize {
        self.members.len()
    }

    pub(super) fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    pub(super) fn phase(&self) -> Phase {
        self.phase
    }

    pub(super) fn protocol_type(&self) -> &str {
        &self.protocol_type
    }

    pub(super) fn protocol_name(&self) -> &str {
        &self.protocol_name
    }

    /// Each member with its metadata for the chosen protocol and its assignment.
    pub(super) fn kafka_members(&self) -> Vec<KafkaMember> {
        self.members
            .iter()
            .map(|(id, m)| KafkaMember {
                member_id: id.clone(),
                client_id: m.client_id.clone(),
                metadata: m.metadata(&self.protocol_name),
                assignment: m.assignment.clone(),
            })
            .collect()
    }

    /// Starts a join round (if none is running): every member must join again.
    fn start_round(&mut self) {
        if self.members.is_empty() {
            // The last member left, mid-round or not: nothing is left to wait for (Kafka's
            // group goes Empty too).
            self.phase = Phase::Empty;
            self.changed.notify();
            return;
        }
        if self.phase == Phase::Joining {
            return;
        }
        let wait = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
            .min(ROUND_WAIT_MAX);
        self.phase = Phase::Joining;
        self.round_deadline = Instant::now() + wait;
        for member in self.members.values_mut() {
            member.joined_this_round = false;
        }
        self.changed.notify();
    }

    /// Ends the round if every member joined or its time is up; returns whether it ended.
    fn try_finish_round(&mut self, generation: &mut Generation) -> bool {
        if self.phase != Phase::Joining {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.joined_this_round);
        if !all_joined && Instant::now() < self.round_deadline {
            return false;
        }
        self.members.retain(|_, m| m.joined_this_round);
        self.forget_departed_instances();
        if self.members.is_empty() {
            self.phase = Phase::Empty;
            generation.advance();
            self.changed.notify();
            return true;
        }
        // A protocol every member supports, in the leader's order of preference.
        if !self.members.contains_key(&self.leader) {
            self.leader = self.members.keys().next().expect("not empty").clone();
        }
        let leader_protocols: Vec<String> = self.members[&self.leader]
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        self.protocol_name = leader_protocols
            .into_iter()
            .find(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .unwrap_or_default();
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
            member.last_seen = Instant::now();
        }
        generation.advance();
        self.phase = Phase::Syncing;
        self.changed.notify();
        true
    }

    /// Admits `member` as `member_id` (a new id, made from its client id, when empty) and
    /// starts a round for it, unless it is a static member taking its place back; returns its
    /// id.
    fn admit(&mut self, name: &str, member_id: String, member: Member) -> BrokerResult<String> {
        let known = member
            .instance_id
            .as_ref()
            .and_then(|instance| self.instances.get(instance).cloned());
        if let Some(current) = known {
            return self.readmit_static(name, member_id, current, member);
        }
        let member_id = if member_id.is_empty() {
            if self.members.len() >= MEMBERS_PER_GROUP_MAX {
                return Err(group_full(name));
            }
            self.fresh_id(&member.client_id)
        } else if self.members.contains_key(&member_id) {
            member_id
        } else {
            return Err(error(
                ErrorKind::UnknownMember,
                format!("{member_id:?} is not a member of group {name:?}; join with an empty id"),
            ));
        };
        // A member that rejoins under another instance id (or none) gives up its old one, so a
        // later join naming the old one cannot take this membership.
        self.instances.retain(|_, id| *id != member_id);
        if let Some(instance) = &member.instance_id {
            self.instances.insert(instance.clone(), member_id.clone());
        }
        self.start_round();
        self.phase = Phase::Joining;
        self.members.insert(member_id.clone(), member);
        tracing::debug!(group = %name, member = %member_id, members = self.members.len(), "member joins; round under way");
        Ok(member_id)
    }

    /// A join naming the instance id of a current member (`current`).
    fn readmit_static(
        &mut self,
        name: &str,
        member_id: String,
        current: String,
        mut member: Member,
    ) -> BrokerResult<String> {
        if !member_id.is_empty() && member_id != current {
            return Err(fenced(name, &member_id));
        }
        if member_id == current {
            // The same process joins again: an ordinary rejoin.
            self.start_round();
            self.phase = Phase::Joining;
            self.members.insert(current.clone(), member);
            return Ok(current);
        }
        // A restarted process: it takes the old membership under a new id.
        let Some(old) = self.members.remove(&current) else {
            return Err(error(
                ErrorKind::UnknownMember,
                "the static member went away",
            ));
        };
        let member_id = self.fresh_id(&member.client_id);
        // As Kafka: only a change of the group's protocol (assignor) takes a round; the
        // metadata of a restarted consumer differs anyway (it owns nothing yet).
        let keeps_protocol = member
            .protocols
            .iter()
            .any(|(protocol, _)| *protocol == self.protocol_name);
        member.assignment = old.assignment;
        if let Some(instance) = &member.instance_id {
            self.instances.insert(instance.clone(), member_id.clone());
        }
        let led = self.leader == current;
        if led {
            self.leader = member_id.clone();
        }
        self.members.insert(member_id.clone(), member);
        // The leader must see every member's metadata again (Kafka answers it without a round,
        // naming the old leader id, which clients then ignore; a round is what they expect),
        // and a protocol the member dropped needs a new choice. Otherwise the group carries on.
        if led || !keeps_protocol || self.phase != Phase::Stable {
            self.start_round();
            self.phase = Phase::Joining;
            if let Some(joined) = self.members.get_mut(&member_id) {
                joined.joined_this_round = true;
            }
        }
        Ok(member_id)
    }

    /// A member id never handed out by this group before: the client id (as Kafka's ids
    /// start), the time (ids from before a restart differ) and a serial number (ids within
    /// one millisecond differ).
    fn fresh_id(&mut self, client_id: &str) -> String {
        self.ids_issued += 1;
        let id = format!(
            "{}-{:x}-{}",
            client_id,
            crate::storage::log::now_ms(),
            self.ids_issued
        );
        debug_assert!(!self.members.contains_key(&id));
        id
    }

    /// Drops the instance ids of members no longer in the group.
    fn forget_departed_instances(&mut self) {
        let members = &self.members;
        self.instances.retain(|_, id| members.contains_key(id));
    }

    /// Fails when `instance_id` now belongs to another member than `member_id`.
    pub(super) fn check_instance(
        &self,
        name: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> BrokerResult<()> {
        match instance_id.and_then(|instance| self.instances.get(instance)) {
            Some(current) if current != member_id => Err(fenced(name, member_id)),
            _ => Ok(()),
        }
    }

    /// What `member_id` learns once the round is over.
    fn joined(&self, member_id: String, generation: Generation) -> Joined {
        let members = if self.leader == member_id {
            self.members
                .iter()
                .map(|(id, m)| (id.clone(), m.metadata(&self.protocol_name)))
                .collect()
        } else {
            Vec::new()
        };
        Joined {
            generation: generation.get(),
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader.clone(),
            member_id,
            members,
        }
    }

    /// Removes members (leaving, or whose session expired) and starts a round for the rest.
    fn remove(&mut self, members: &[String]) -> bool {
        let before = self.members.len();
        for member in members {
            self.members.remove(member);
        }
        let removed = self.members.len() != before;
        if removed {
            self.forget_departed_instances();
            self.start_round();
        }
        removed
    }

    /// Removes the members whose sessions expired (members waiting in a join round are alive);
    /// returns their ids.
    pub(super) fn expire_sessions(&mut self) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                !(self.phase == Phase::Joining && m.joined_this_round)
                    && m.last_seen.elapsed() > m.session_timeout
            })
            .map(|(id, _)| id.clone())
            .collect();
        self.remove(&expired);
        expired
    }
}

/// What a member learns from a join.
pub struct Joined {
    pub generation: u32,
    pub protocol_type: String,
    pub protocol_name: String,
    pub leader: String,
    pub member_id: String,
    /// Every member's metadata for the chosen protocol: for the leader only.
    pub members: Vec<(String, Bytes)>,
}

fn error(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
    BrokerError::new(kind, message)
}

fn fenced(name: &str, member_id: &str) -> BrokerError {
    error(
        ErrorKind::FencedInstance,
        format!("{member_id:?} of group {name:?}: its group.instance.id has a newer member"),
    )
}

/// A Kafka JoinGroup: who joins, with which protocols, and how long its session and round last.
#[derive(Clone, Debug)]
pub struct JoinRound {
    pub group: String,
    /// Empty for a new member.
    pub member_id: String,
    pub client_id: String,
    /// Kafka's `group.instance.id` (JoinGroup v5+): a static member.
    pub instance_id: Option<String>,
    pub protocol_type: String,
    /// (protocol name, the member's opaque metadata for it), in the member's preference order.
    pub protocols: Vec<(String, Bytes)>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
}

/// What SyncGroup gives a member: the group's protocol and the member's opaque assignment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Synced {
    pub protocol_type: String,
    pub protocol_name: String,
    pub assignment: Bytes,
}

pub async fn join(state: &ShardState, join: JoinRound) -> BrokerResult<Joined> {
    let JoinRound {
        group: name,
        member_id,
        client_id,
        instance_id,
        protocol_type,
        protocols,
        session_timeout_ms,
        rebalance_timeout_ms,
    } = join;
    validate_name(&name)?;
    if protocols.is_empty() {
        return Err(error(
            ErrorKind::InconsistentGroupProtocol,
            "a member offers at least one protocol",
        ));
    }
    check_member_metadata(
        protocols
            .iter()
            .map(|(n, metadata)| n.len() + metadata.len()),
    )?;
    let session_timeout = Duration::from_millis(u64::from(
        session_timeout_ms.clamp(SESSION_TIMEOUT_MS_MIN, SESSION_TIMEOUT_MS_MAX),
    ));
    let member = Member {
        client_id,
        instance_id,
        protocols,
        session_timeout,
        rebalance_timeout: Duration::from_millis(u64::from(
            rebalance_timeout_ms.max(session_timeout_ms),
        )),
        last_seen: Instant::now(),
        joined_this_round: true,
        assignment: Bytes::new(),
    };
    let (mut member_id, changed) =
        state
            .coordinator
            .borrow_mut()
            .join_client_assigned(&name, &protocol_type, |kind, _| {
                let member_id = kind.admit(&name, member_id, member)?;
                Ok((member_id, kind.changed.clone()))
            })?;
    loop {
        let notified = changed.wait();
        let deadline = match round(&mut state.coordinator.borrow_mut(), &name, member_id)? {
            Round::Over(joined) => return Ok(joined),
            Round::Running {
                member_id: waiting,
                deadline,
            } => {
                member_id = waiting;
                deadline
            }
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        runtime::timeout(left, state.lifecycle.unless_stopping(notified)).await;
        if state.lifecycle.stopping.get() {
            return Err(BrokerError::shutting_down());
        }
    }
}

/// Where a join stands in its round.
enum Round {
    Over(Joined),
    /// Still waiting for members, until `deadline` at the latest.
    Running {
        member_id: String,
        deadline: Instant,
    },
}

/// Ends the round of `name` if it may end, and says where `member_id`'s join stands.
fn round(coordinator: &mut Coordinator, name: &str, member_id: String) -> BrokerResult<Round> {
    let (kind, generation) = coordinator
        .client_assigned(name)
        .ok_or_else(|| error(ErrorKind::UnknownMember, "the group went away"))?;
    // Rounds that end by their deadline, not because all joined, are the slow ones.
    let by_deadline = !kind.members.values().all(|m| m.joined_this_round);
    if kind.try_finish_round(generation) {
        tracing::info!(
            group = %name,
            generation = generation.get(),
            members = kind.members.len(),
            leader = %kind.leader,
            by_deadline,
            "join round over"
        );
    }
    if !kind.members.contains_key(&member_id) {
        return Err(error(
            ErrorKind::UnknownMember,
            "removed from the group while joining",
        ));
    }
    if kind.phase == Phase::Joining {
        let deadline = kind.round_deadline;
        return Ok(Round::Running {
            member_id,
            deadline,
        });
    }
    Ok(Round::Over(kind.joined(member_id, *generation)))
}

/// Checks that `member_id` is in the group at `generation`; returns the group's kind.
fn member_of<'a>(
    coordinator: &'a mut Coordinator,
    name: &str,
    (member_id, instance_id): (&str, Option<&str>),
    generation: i32,
) -> BrokerResult<&'a mut ClientAssigned> {
    let not_a_member = || {
        error(
            ErrorKind::UnknownMember,
            format!("{member_id:?} is not a member of {name:?}"),
        )
    };
    let (kind, current) = coordinator.client_assigned(name).ok_or_else(not_a_member)?;
    kind.check_instance(name, member_id, instance_id)?;
    if !kind.members.contains_key(member_id) {
        return Err(not_a_member());
    }
    let current = current.get();
    if generation != current as i32 {
        return Err(error(
            ErrorKind::IllegalGeneration,
            format!("generation {generation} is over; the group is at {current}"),
        ));
    }
    Ok(kind)
}

pub async fn sync(
    state: &ShardState,
    name: String,
    (member_id, instance_id): (String, Option<String>),
    generation: i32,
    assignments: Vec<(String, Bytes)>,
) -> BrokerResult<Synced> {
    let me = (member_id.as_str(), instance_id.as_deref());
    let changed = {
        let mut coordinator = state.coordinator.borrow_mut();
        let kind = member_of(&mut coordinator, &name, me, generation)?;
        if kind.phase == Phase::Joining {
            return Err(error(
                ErrorKind::RebalanceInProgress,
                "the group is rebalancing: join again",
            ));
        }
        if kind.leader == member_id && kind.phase == Phase::Syncing {
            for (member, assignment) in assignments {
                if let Some(m) = kind.members.get_mut(&member) {
                    m.assignment = assignment;
                }
            }
            kind.phase = Phase::Stable;
            kind.changed.notify();
        }
        kind.changed.clone()
    };
    loop {
        let notified = changed.wait();
        let deadline = {
            let mut coordinator = state.coordinator.borrow_mut();
            let kind = member_of(&mut coordinator, &name, me, generation)?;
            match kind.phase {
                Phase::Stable => {
                    let member = &kind.members[&member_id];
                    return Ok(Synced {
                        protocol_type: kind.protocol_type.clone(),
                        protocol_name: kind.protocol_name.clone(),
                        assignment: member.assignment.clone(),
                    });
                }
                Phase::Joining | Phase::Empty => {
                    return Err(error(
                        ErrorKind::RebalanceInProgress,
                        "the group is rebalancing: join again",
                    ));
                }
                Phase::Syncing => {
                    kind.members[&member_id].last_seen + kind.members[&member_id].session_timeout
                }
            }
        };
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        if runtime::timeout(left, state.lifecycle.unless_stopping(notified))
            .await
            .is_none()
            || state.lifecycle.stopping.get()
        {
            return Err(error(
                ErrorKind::RebalanceInProgress,
                "the leader sent no assignment in time: join again",
            ));
        }
    }
}

pub fn heartbeat(
    state: &ShardState,
    name: &str,
    (member_id, instance_id): (&str, Option<&str>),
    generation: i32,
) -> BrokerResult<()> {
    let mut coordinator = state.coordinator.borrow_mut();
    let kind = member_of(&mut coordinator, name, (member_id, instance_id), generation)?;
    kind.members.get_mut(member_id).expect("checked").last_seen = Instant::now();
    if kind.phase == Phase::Joining {
        return Err(error(
            ErrorKind::RebalanceInProgress,
            "the group is rebalancing: join again",
        ));
    }
    Ok(())
}

/// Members leave: each by member id, or (a static member) by instance id, whose member id,
/// when given too, must be the instance's current one.
pub fn leave(
    state: &ShardState,
    name: &str,
    members: Vec<(String, Option<String>)>,
) -> BrokerResult<()> {
    let mut coordinator = state.coordinator.borrow_mut();
    let (kind, _) = coordinator
        .client_assigned(name)
        .ok_or_else(|| error(ErrorKind::UnknownMember, "not a member"))?;
    let mut leaving = Vec::with_capacity(members.len());
    for (member_id, instance_id) in members {
        let id = match instance_id.as_deref() {
            Some(instance) => {
                kind.check_instance(name, &member_id, Some(instance))
                    .or_else(|error| {
                        if member_id.is_empty() {
                            Ok(())
                        } else {
                            Err(error)
                        }
                    })?;
                kind.instances.get(instance).cloned().unwrap_or(member_id)
            }
            None => member_id,
        };
        if !kind.members.contains_key(&id) {
            return Err(error(ErrorKind::UnknownMember, "not a member"));
        }
        leaving.push(id);
    }
    kind.remove(&leaving);
    Ok(())
}
