//! KIP-848 consumer groups (Kafka's `group.protocol=consumer`): members send their subscription
//! in heartbeats, the coordinator computes the target assignment with a server-side assignor and
//! moves each member towards it, one heartbeat at a time, with member epochs.
//!
//! Why member epochs and revocation first: a partition may be owned by one member at a time.
//! A member losing a partition is first asked to revoke it (it keeps its epoch meanwhile); only
//! when a heartbeat reports it no longer owns it is the partition free, and only a free
//! partition is given to its next owner. `owners` records, for every partition some member owns
//! or is revoking, who that is; that map is the one rule "no partition has two owners".
//!
//! The group epoch is the group's `Generation`: it steps at every change of membership,
//! subscription, assignor or partition counts, and the target assignment is recomputed for it
//! at once (`assignment_epoch` says for which epoch the target was made). A member's epoch
//! reaches the target's when it has revoked what it must: commits are checked against it.
//!
//! Not here: regular-expression subscriptions (refused), static membership (an instance id is
//! recorded and shown, but epoch -2 leaves like -1: partitions are not held for its return),
//! racks (recorded, not used by the assignors).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignment::{self, Strategy, TopicPartition};
use super::views::{ConsumerGroupView, ConsumerHeartbeatReply, ConsumerMemberView};
use super::{Generation, MEMBERS_PER_GROUP_MAX, group_full, partition_counts, unknown_member};
use crate::broker::ShardState;
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

/// The member epoch of a member leaving the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member leaving (for now, as any member leaving).
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// The server-side assignors, by Kafka's names (`group.consumer.assignors`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assignor {
    /// Balanced and sticky: partitions stay where they are while that is balanced.
    Uniform,
    /// Per topic, consecutive partitions to members in member order.
    Range,
}

impl Assignor {
    pub fn parse(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    fn strategy(self) -> Strategy {
        match self {
            Assignor::Uniform => Strategy::Sticky,
            Assignor::Range => Strategy::Range,
        }
    }
}

/// One heartbeat as the coordinator sees it: topics and owned partitions by name (the adapter
/// resolves Kafka's topic ids). `None` fields are "unchanged since my last heartbeat".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Beat {
    pub member_id: String,
    pub member_epoch: i32,
    pub client_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1: unchanged.
    pub rebalance_timeout_ms: i32,
    pub topics: Option<BTreeSet<String>>,
    pub assignor: Option<Assignor>,
    pub owned: Option<BTreeSet<TopicPartition>>,
}

impl Beat {
    /// Kafka's "full request" (a join, or a member resending everything after an error): it is
    /// answered with the whole assignment even when nothing changed.
    fn is_full(&self) -> bool {
        self.member_epoch == 0
            || (self.rebalance_timeout_ms != -1 && self.topics.is_some() && self.owned.is_some())
    }
}

struct Member {
    epoch: i32,
    previous_epoch: i32,
    client_id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    topics: BTreeSet<String>,
    assignor: Option<Assignor>,
    /// What the member may own now.
    assigned: BTreeSet<TopicPartition>,
    /// What it must give up before its epoch moves on; still its own until it says so.
    revoking: BTreeSet<TopicPartition>,
    /// When a member still revoking is removed (its rebalance timeout from when it was asked).
    revoke_by: Option<Instant>,
    rebalance_timeout: Duration,
    session_timeout: Duration,
    last_seen: Instant,
}

#[derive(Default)]
pub struct ConsumerProtocol {
    /// The group epoch the target assignment was computed for.
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    target: assignment::Assignment,
    /// Every partition owned or being revoked, with its member: at most one each.
    owners: BTreeMap<TopicPartition, String>,
    /// The partition counts the target was computed from.
    partitions_seen: BTreeMap<String, u32>,
    /// Members ever admitted without an id of their own: part of each id the coordinator makes.
    members_ever: u64,
}

/// The group epoch as Kafka carries it.
fn epoch_of(generation: Generation) -> i32 {
    i32::try_from(generation.get()).unwrap_or(i32::MAX)
}

impl ConsumerProtocol {
    pub(super) fn members(&self) -> usize {
        self.members.len()
    }

    pub(super) fn subscribes_to(&self, topic: &str) -> bool {
        self.members.values().any(|m| m.topics.contains(topic))
    }

    /// The member's epoch, if it is a member.
    pub(super) fn member_epoch(&self, member_id: &str) -> Option<i32> {
        self.members.get(member_id).map(|m| m.epoch)
    }

    /// The group's assignor: the one most members name (the first by name on a tie), else
    /// uniform, Kafka's default.
    fn assignor(&self) -> Assignor {
        let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
        for assignor in self.members.values().filter_map(|m| m.assignor) {
            *votes.entry(assignor).or_default() += 1;
        }
        let most = votes.values().copied().max().unwrap_or(0);
        votes
            .into_iter()
            .find(|(_, count)| *count == most)
            .map_or(Assignor::Uniform, |(assignor, _)| assignor)
    }

    /// Admits a member joining with epoch 0 (a known id rejoins from scratch: its partitions
    /// are free again, it revoked them all before rejoining) and answers as any heartbeat.
    pub(super) fn join(
        &mut self,
        state: &ShardState,
        name: &str,
        generation: &mut Generation,
        mut beat: Beat,
    ) -> BrokerResult<ConsumerHeartbeatReply> {
        let topics = beat.topics.clone().ok_or_else(|| {
            BrokerError::new(
                ErrorKind::InvalidRequest,
                "a joining member names its topics",
            )
        })?;
        if beat.member_id.is_empty() {
            self.members_ever = self.members_ever.saturating_add(1);
            beat.member_id = format!(
                "{name}-{}-{:x}",
                self.members_ever,
                crate::storage::log::now_ms()
            );
        }
        if self.members.contains_key(&beat.member_id) {
            self.remove(&beat.member_id);
        } else if self.members.len() >= MEMBERS_PER_GROUP_MAX {
            return Err(group_full(name));
        }
        let timeout_ms = state.config.group_consumer_session_timeout_ms;
        let member = Member {
            epoch: 0,
            previous_epoch: -1,
            client_id: beat.client_id.clone(),
            instance_id: beat.instance_id.clone(),
            rack_id: beat.rack_id.clone(),
            topics,
            assignor: beat.assignor,
            assigned: BTreeSet::new(),
            revoking: BTreeSet::new(),
            revoke_by: None,
            rebalance_timeout: rebalance_timeout(beat.rebalance_timeout_ms),
            session_timeout: Duration::from_millis(timeout_ms),
            last_seen: Instant::now(),
        };
        self.members.insert(beat.member_id.clone(), member);
        generation.advance();
        tracing::debug!(group = %name, member = %beat.member_id, epoch = generation.get(), "consumer joined");
        beat.owned = Some(BTreeSet::new());
        self.heartbeat(state, name, generation, beat)
    }

    /// A heartbeat of a member (epoch > 0 in the request, or a join's first): checks its epoch,
    /// takes in what changed, recomputes the target if the group moved, and reconciles it.
    pub(super) fn heartbeat(
        &mut self,
        state: &ShardState,
        name: &str,
        generation: &mut Generation,
        beat: Beat,
    ) -> BrokerResult<ConsumerHeartbeatReply> {
        let member = self
            .members
            .get_mut(&beat.member_id)
            .ok_or_else(|| unknown_member(name, &beat.member_id))?;
        check_epoch(name, member, &beat)?;
        member.last_seen = Instant::now();
        let mut changed = false;
        if let Some(topics) = &beat.topics {
            changed |= *topics != member.topics;
            member.topics = topics.clone();
        }
        if beat.assignor.is_some() && beat.assignor != member.assignor {
            changed = true;
            member.assignor = beat.assignor;
        }
        if beat.rebalance_timeout_ms != -1 {
            member.rebalance_timeout = rebalance_timeout(beat.rebalance_timeout_ms);
        }
        if let Some(rack) = &beat.rack_id {
            member.rack_id = Some(rack.clone());
        }
        if changed {
            generation.advance();
        }
        self.refresh_target(state, generation);
        let before = self
            .members
            .get(&beat.member_id)
            .map(|m| m.assigned.clone());
        self.reconcile(&beat.member_id, beat.owned.as_ref());
        let member = self
            .members
            .get(&beat.member_id)
            .ok_or_else(|| unknown_member(name, &beat.member_id))?;
        let assignment = (beat.is_full() || before.as_ref() != Some(&member.assigned))
            .then(|| member.assigned.iter().cloned().collect());
        Ok(ConsumerHeartbeatReply {
            member_id: beat.member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: state.config.group_consumer_heartbeat_interval_ms,
            assignment,
        })
    }

    /// A member leaves (epoch -1 or -2): its partitions are free at once.
    pub(super) fn leave(
        &mut self,
        state: &ShardState,
        name: &str,
        generation: &mut Generation,
        member_id: &str,
    ) -> BrokerResult<()> {
        if !self.members.contains_key(member_id) {
            return Err(unknown_member(name, member_id));
        }
        self.remove(member_id);
        generation.advance();
        self.refresh_target(state, generation);
        tracing::debug!(group = %name, member = %member_id, "consumer left");
        Ok(())
    }

    /// Removes members whose session expired or who did not revoke within their rebalance
    /// timeout; returns their ids.
    pub(super) fn expire_sessions(
        &mut self,
        state: &ShardState,
        generation: &mut Generation,
    ) -> Vec<String> {
        let now = Instant::now();
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now.duration_since(m.last_seen) > m.session_timeout
                    || m.revoke_by.is_some_and(|by| now > by)
            })
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for member in &expired {
                self.remove(member);
            }
            generation.advance();
            self.refresh_target(state, generation);
        }
        expired
    }

    /// Forgets a member and frees what it owned.
    fn remove(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id) {
            for partition in member.assigned.iter().chain(&member.revoking) {
                if self.owners.get(partition).map(String::as_str) == Some(member_id) {
                    self.owners.remove(partition);
                }
            }
        }
        self.target.remove(member_id);
    }

    /// Recomputes the target when the group epoch moved or a subscribed topic's partition count
    /// changed (which moves the group epoch).
    fn refresh_target(&mut self, state: &ShardState, generation: &mut Generation) {
        let topics: BTreeSet<String> = self
            .members
            .values()
            .flat_map(|m| m.topics.iter().cloned())
            .collect();
        let partitions = partition_counts(state, topics.into_iter());
        if partitions != self.partitions_seen {
            generation.advance();
        }
        let epoch = epoch_of(*generation);
        if epoch == self.assignment_epoch && !self.target.is_empty() {
            return;
        }
        let subscriptions: BTreeMap<String, BTreeSet<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = assignment::assign(
            self.assignor().strategy(),
            &subscriptions,
            &partitions,
            &self.target,
        );
        self.partitions_seen = partitions;
        self.assignment_epoch = epoch;
    }

    /// Moves `member_id` one step towards its target: first it revokes what it must give up
    /// (its epoch stays), then it gets what is free of its target and the target's epoch.
    /// `owned`: what its heartbeat says it owns (None: not said).
    fn reconcile(&mut self, member_id: &str, owned: Option<&BTreeSet<TopicPartition>>) {
        let Some(member) = self.members.get_mut(member_id) else {
            return;
        };
        if !member.revoking.is_empty() {
            let still_owns = owned.is_none_or(|owned| !owned.is_disjoint(&member.revoking));
            if still_owns {
                return;
            }
            for partition in std::mem::take(&mut member.revoking) {
                if self.owners.get(&partition).map(String::as_str) == Some(member_id) {
                    self.owners.remove(&partition);
                }
            }
            member.revoke_by = None;
        }
        let target: BTreeSet<TopicPartition> = self
            .target
            .get(member_id)
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default();
        let revoke: BTreeSet<TopicPartition> =
            member.assigned.difference(&target).cloned().collect();
        if !revoke.is_empty() {
            member.assigned.retain(|p| target.contains(p));
            member.revoking = revoke;
            member.revoke_by = Some(Instant::now() + member.rebalance_timeout);
            return;
        }
        for partition in target.difference(&member.assigned.clone()) {
            let free = self
                .owners
                .get(partition)
                .is_none_or(|owner| owner == member_id);
            if free {
                self.owners.insert(partition.clone(), member_id.to_string());
                member.assigned.insert(partition.clone());
            }
        }
        if member.epoch != self.assignment_epoch {
            member.previous_epoch = member.epoch;
            member.epoch = self.assignment_epoch;
        }
    }

    /// Kafka's consumer-group state: Empty, Assigning (the target is behind the group epoch;
    /// never seen here, the target is computed at once), Reconciling (a member is not yet at the
    /// target) or Stable.
    pub(super) fn state(&self) -> &'static str {
        if self.members.is_empty() {
            return "Empty";
        }
        let settled = self.members.iter().all(|(id, m)| {
            m.epoch == self.assignment_epoch
                && m.revoking.is_empty()
                && self
                    .target
                    .get(id)
                    .is_none_or(|t| t.len() == m.assigned.len())
        });
        if settled { "Stable" } else { "Reconciling" }
    }

    pub(super) fn view(&self, name: &str, generation: Generation) -> ConsumerGroupView {
        let members = self
            .members
            .iter()
            .map(|(id, m)| ConsumerMemberView {
                member_id: id.clone(),
                member_epoch: m.epoch,
                client_id: m.client_id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                topics: m.topics.iter().cloned().collect(),
                assigned: m.assigned.iter().cloned().collect(),
                target: {
                    let mut target = self.target.get(id).cloned().unwrap_or_default();
                    target.sort();
                    target
                },
            })
            .collect();
        ConsumerGroupView {
            name: name.to_string(),
            state: self.state(),
            group_epoch: epoch_of(generation),
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor().name(),
            members,
        }
    }
}

/// Kafka's fencing rule: a member may send its current epoch, or the one before when its last
/// answer was lost and it owns only what it still may; anything else means it missed a change.
fn check_epoch(name: &str, member: &Member, beat: &Beat) -> BrokerResult<()> {
    let sent = beat.member_epoch;
    let resent_after_loss = sent == member.previous_epoch
        && beat
            .owned
            .as_ref()
            .is_some_and(|owned| owned.is_subset(&member.assigned));
    if sent == member.epoch || sent == 0 || (sent < member.epoch && resent_after_loss) {
        return Ok(());
    }
    Err(BrokerError::new(
        ErrorKind::FencedMemberEpoch,
        format!(
            "member {:?} of group {name:?} sent epoch {sent}, its epoch is {}; rejoin with epoch 0",
            beat.member_id, member.epoch
        ),
    ))
}

fn rebalance_timeout(ms: i32) -> Duration {
    // Kafka's default rebalance timeout (max.poll.interval.ms) when none is sent; bounded so a
    // member cannot hold partitions it will not revoke for longer than a session may last.
    let ms = u64::try_from(ms).unwrap_or(300_000);
    Duration::from_millis(ms.min(u64::from(super::SESSION_TIMEOUT_MS_MAX)))
}

/// Kafka's ConsumerGroupHeartbeat: a join (epoch 0), a heartbeat, or a leave (epoch -1, -2).
pub fn heartbeat(
    state: &ShardState,
    name: &str,
    beat: Beat,
) -> BrokerResult<ConsumerHeartbeatReply> {
    super::validate_name(name)?;
    if beat.member_epoch < STATIC_LEAVE_EPOCH {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("member epoch {} is below -2", beat.member_epoch),
        ));
    }
    if beat.member_id.is_empty() && beat.member_epoch != 0 {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            "only a joining member (epoch 0) may come without a member id",
        ));
    }
    if let Some(topics) = &beat.topics {
        super::check_member_metadata(topics.iter().map(String::len))?;
    }
    let mut coordinator = state.coordinator.borrow_mut();
    if beat.member_epoch == 0 {
        return coordinator.join_consumer_protocol(name, |kind, generation| {
            kind.join(state, name, generation, beat)
        });
    }
    let (kind, generation) = coordinator.consumer_protocol(name, &beat.member_id)?;
    if beat.member_epoch < 0 {
        kind.leave(state, name, generation, &beat.member_id)?;
        return Ok(ConsumerHeartbeatReply {
            member_id: beat.member_id,
            member_epoch: beat.member_epoch,
            heartbeat_interval_ms: 0,
            assignment: None,
        });
    }
    kind.heartbeat(state, name, generation, beat)
}
