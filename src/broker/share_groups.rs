//! Share groups' membership (Kafka's KIP-932), kept by the group's coordinator shard: who is
//! in the group, each member's epoch, subscription and assignment (the group's `share.*`
//! settings are `share_configs`'). The records themselves are shared through queue groups: share
//! group G reading topic T is queue group G on T (`broker::queues`), whose locks, delivery
//! counts and archive are the share-partition's state, so this module holds no offsets.
//!
//! A share group lets several members read one partition, so the assignment is simple: every
//! member gets every partition of the topics it subscribes to. A member's epoch moves on when
//! its assignment changes; a heartbeat with an epoch that is neither the current nor the one
//! before is fenced (the answer carrying the new epoch may have been lost once, not twice).
//! Members silent for the session timeout are removed when the group is next touched.
//!
//! A member's locks are held under its *incarnation* (`Member::consumer`: its id and a number
//! this coordinator gives each join), so a member that joins again with the same id never has
//! its new locks released on behalf of the old one. Every removal (leave, rejoin, expiry seen
//! by a heartbeat, describe, list or fetch) goes through one function, `depart`, which queues
//! the incarnation for the service to release (`take_departed`, a bounded number per call).
//! A group left without members is forgotten after `empty_group_retention_ms`.
//!
//! Bounded: groups per coordinator shard, members per group, topics per subscription, each
//! string of a heartbeat in length; departures waiting for release are at most the members
//! that were removed (each removal takes one member out).
//! Membership lives in memory, as consumer groups' membership does; a group's own configs are
//! durable (`share_configs`).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::broker::{BrokerError, BrokerResult, ErrorKind};
use crate::config::ShareGroupConfig;

/// Topics one member may subscribe to.
pub const SUBSCRIBED_TOPICS_MAX: usize = 1000;
/// The longest member id: clients make a UUID (22 characters as Kafka's base64, 36 as text).
pub const MEMBER_ID_BYTES_MAX: usize = 36;
/// Partitions of departed members whose locks one call releases (a member without any counts
/// as one); the rest wait for the next call, or their locks' own deadlines.
pub const RELEASES_PER_CALL: usize = 64;
/// How often the coordinator looks for empty groups to forget.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

pub use super::share_configs::{
    AUTO_OFFSET_RESET, CONFIG_NAMES, DELIVERY_COUNT_LIMIT, HEARTBEAT_INTERVAL_MS,
    RECORD_LOCK_DURATION_MS, SESSION_TIMEOUT_MS, ShareSettings,
};

/// One heartbeat as the coordinator takes it.
#[derive(Clone, Debug)]
pub struct ShareBeat {
    pub member_id: String,
    /// 0 joins, -1 leaves, otherwise the epoch the member last got.
    pub member_epoch: i32,
    pub client_id: String,
    pub rack_id: Option<String>,
    /// None: unchanged since the last heartbeat.
    pub topics: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareBeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: u32,
    /// The member's partitions as (topic, partition); None after a leave.
    pub assignment: Option<Vec<(String, u32)>>,
}

/// A member removed from its group, whose locks are still to be released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Departed {
    pub group: String,
    /// The queue consumer its locks are held under (`consumer_of`).
    pub consumer: String,
    pub partitions: Vec<(String, u32)>,
}

/// The queue consumer a member incarnation's locks are held under.
pub fn consumer_of(member_id: &str, incarnation: u64) -> String {
    format!("{member_id}#{incarnation}")
}

/// One member, as ShareGroupDescribe shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareMemberView {
    pub member_id: String,
    pub client_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub topics: Vec<String>,
    pub assigned: Vec<(String, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShareGroupView {
    pub group: String,
    /// Kafka's share group states: "Empty" or "Stable".
    pub state: &'static str,
    pub group_epoch: i32,
    pub members: Vec<ShareMemberView>,
    /// Every topic a member has subscribed to since the group was made here.
    pub topics: Vec<String>,
}

struct Member {
    epoch: i32,
    previous_epoch: i32,
    client_id: String,
    rack_id: Option<String>,
    topics: BTreeSet<String>,
    assigned: Vec<(String, u32)>,
    expires: Instant,
    /// Given at each join, unique on this coordinator: what its locks are held under.
    incarnation: u64,
}

#[derive(Default)]
struct ShareGroup {
    epoch: i32,
    members: BTreeMap<String, Member>,
    topics: BTreeSet<String>,
    /// When it last lost its last member (None while it has members).
    empty_since: Option<Instant>,
}

impl ShareGroup {
    fn view(&self, name: &str) -> ShareGroupView {
        ShareGroupView {
            group: name.to_string(),
            state: if self.members.is_empty() {
                "Empty"
            } else {
                "Stable"
            },
            group_epoch: self.epoch,
            members: self
                .members
                .iter()
                .map(|(id, member)| ShareMemberView {
                    member_id: id.clone(),
                    client_id: member.client_id.clone(),
                    rack_id: member.rack_id.clone(),
                    member_epoch: member.epoch,
                    topics: member.topics.iter().cloned().collect(),
                    assigned: member.assigned.clone(),
                })
                .collect(),
            topics: self.topics.iter().cloned().collect(),
        }
    }

    /// Takes the member's subscription (if it sent one) and gives it every partition of its
    /// topics; its epoch moves past the group's when that changes what it has.
    fn assign(
        &mut self,
        name: &str,
        beat: ShareBeat,
        partitions_of: PartitionsOf<'_>,
    ) -> BrokerResult<ShareBeatReply> {
        let mut epoch = self.epoch;
        let member = self
            .members
            .get_mut(&beat.member_id)
            .ok_or_else(|| unknown_member(name, &beat))?;
        if let Some(topics) = beat.topics {
            member.topics = topics.into_iter().collect();
        }
        let assigned: Vec<(String, u32)> = member
            .topics
            .iter()
            .flat_map(|topic| {
                let count = partitions_of(topic).unwrap_or(0);
                (0..count).map(move |partition| (topic.clone(), partition))
            })
            .collect();
        if assigned != member.assigned {
            if member.epoch >= epoch {
                epoch = epoch.saturating_add(1);
            }
            member.previous_epoch = member.epoch;
            member.epoch = epoch;
            member.assigned = assigned;
        }
        let reply = ShareBeatReply {
            member_id: beat.member_id,
            member_epoch: member.epoch,
            heartbeat_interval_ms: 0,
            assignment: Some(member.assigned.clone()),
        };
        // Only topics that exist are remembered (what a delete must clean up), so a member
        // naming made-up topics grows nothing past its own subscription.
        let topics: Vec<String> = member
            .topics
            .iter()
            .filter(|topic| partitions_of(topic).is_some())
            .cloned()
            .collect();
        self.epoch = epoch;
        self.topics.extend(topics);
        Ok(reply)
    }

    /// Removes members silent past their session; the group's epoch moves on if any went.
    fn expire(&mut self, name: &str, now: Instant, departed: &mut Departures) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(_, member)| member.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.depart(name, &id, now, departed);
        }
    }

    /// The one way a member leaves (left, joined again, expired): its incarnation is queued
    /// for its locks to be released, and the group's epoch moves on. False if it was not here.
    fn depart(
        &mut self,
        name: &str,
        member_id: &str,
        now: Instant,
        departed: &mut Departures,
    ) -> bool {
        let Some(member) = self.members.remove(member_id) else {
            return false;
        };
        self.epoch = self.epoch.saturating_add(1);
        if self.members.is_empty() {
            self.empty_since = Some(now);
        }
        departed.push(Departed {
            group: name.to_string(),
            consumer: consumer_of(member_id, member.incarnation),
            partitions: member.assigned,
        });
        true
    }
}

/// Departed members waiting for release, with the partitions they name (a member without
/// any counts as one).
#[derive(Default)]
struct Departures {
    queue: VecDeque<Departed>,
    partitions: usize,
}

impl Departures {
    fn push(&mut self, gone: Departed) {
        self.partitions = self.partitions.saturating_add(gone.partitions.len().max(1));
        self.queue.push_back(gone);
    }

    fn pop_front(&mut self) -> Option<Departed> {
        let gone = self.queue.pop_front()?;
        self.partitions = self.partitions.saturating_sub(gone.partitions.len().max(1));
        Some(gone)
    }
}

/// The share groups one coordinator shard holds.
#[derive(Default)]
pub struct ShareGroups {
    groups: HashMap<String, ShareGroup>,
    /// Members removed whose locks the service has yet to release, oldest first.
    departed: Departures,
    /// The incarnation the next join gets.
    next_incarnation: u64,
    last_sweep: Option<Instant>,
}

/// The partitions of a topic, or None if it does not exist: what assignments are made of.
pub type PartitionsOf<'a> = &'a dyn Fn(&str) -> Option<u32>;

impl ShareGroups {
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Members of every group here.
    pub fn members(&self) -> usize {
        self.groups.values().map(|group| group.members.len()).sum()
    }

    /// Partitions of departed members waiting for their locks to be released.
    pub fn departed_pending(&self) -> usize {
        self.departed.partitions
    }

    /// Departed members' partitions, up to `RELEASES_PER_CALL` of them (a member's may be
    /// split over calls), for the service to release their locks. Beyond `pending_max`
    /// partitions waiting, the oldest departures are dropped (their locks end at their own
    /// deadlines); returns how many were.
    pub fn take_departed(&mut self, pending_max: usize) -> (Vec<Departed>, usize) {
        let mut dropped = 0;
        while self.departed.partitions > pending_max && self.departed.pop_front().is_some() {
            dropped += 1;
        }
        let mut budget = RELEASES_PER_CALL;
        let mut out = Vec::new();
        while budget > 0 {
            let Some(front) = self.departed.queue.front_mut() else {
                break;
            };
            if front.partitions.len() > budget {
                let rest = front.partitions.split_off(budget);
                let part = std::mem::replace(&mut front.partitions, rest);
                self.departed.partitions = self.departed.partitions.saturating_sub(part.len());
                out.push(Departed {
                    group: front.group.clone(),
                    consumer: front.consumer.clone(),
                    partitions: part,
                });
                break;
            }
            budget -= front.partitions.len().max(1);
            out.extend(self.departed.pop_front());
        }
        (out, dropped)
    }

    /// Forgets groups empty for longer than `retention` (at most once per `SWEEP_INTERVAL`);
    /// returns how many went.
    pub fn sweep(&mut self, retention: Duration, now: Instant) -> usize {
        if self
            .last_sweep
            .is_some_and(|last| now.saturating_duration_since(last) < SWEEP_INTERVAL)
        {
            return 0;
        }
        self.last_sweep = Some(now);
        let departed = &mut self.departed;
        let before = self.groups.len();
        self.groups.retain(|name, group| {
            group.expire(name, now, departed);
            let empty_since = match group.empty_since {
                Some(since) => since,
                None if group.members.is_empty() => *group.empty_since.insert(now),
                None => return true,
            };
            now.saturating_duration_since(empty_since) < retention
        });
        before - self.groups.len()
    }

    /// The member's incarnation's queue consumer, if `member` is a live member of `name`
    /// (the expired go first).
    pub fn consumer(&mut self, name: &str, member: &str, now: Instant) -> Option<String> {
        let group = self.groups.get_mut(name)?;
        group.expire(name, now, &mut self.departed);
        let incarnation = group.members.get(member)?.incarnation;
        Some(consumer_of(member, incarnation))
    }

    /// One heartbeat: join (epoch 0), leave (-1) or keep alive, answered with the member's
    /// epoch and assignment.
    pub fn heartbeat(
        &mut self,
        (config, settings): (&ShareGroupConfig, &ShareSettings),
        name: &str,
        beat: ShareBeat,
        partitions_of: PartitionsOf<'_>,
        now: Instant,
    ) -> BrokerResult<ShareBeatReply> {
        check_beat(config, &beat)?;
        if let Some(group) = self.groups.get_mut(name) {
            group.expire(name, now, &mut self.departed);
        }
        let expires = now + Duration::from_millis(u64::from(settings.session_timeout_ms));
        let interval = settings.heartbeat_interval_ms;
        if beat.member_epoch == -1 {
            let group = self
                .groups
                .get_mut(name)
                .ok_or_else(|| unknown_member(name, &beat))?;
            if !group.depart(name, &beat.member_id, now, &mut self.departed) {
                return Err(unknown_member(name, &beat));
            }
            return Ok(ShareBeatReply {
                member_id: beat.member_id,
                member_epoch: -1,
                heartbeat_interval_ms: interval,
                assignment: None,
            });
        }
        let group = match beat.member_epoch {
            0 => self.join(config, name, &beat, (expires, now))?,
            asked => {
                let group = self
                    .groups
                    .get_mut(name)
                    .ok_or_else(|| unknown_member(name, &beat))?;
                let member = group
                    .members
                    .get_mut(&beat.member_id)
                    .ok_or_else(|| unknown_member(name, &beat))?;
                if asked != member.epoch && asked != member.previous_epoch {
                    return Err(BrokerError::new(
                        ErrorKind::FencedMemberEpoch,
                        format!(
                            "member {:?} sent epoch {asked}; its epoch is {}",
                            beat.member_id, member.epoch
                        ),
                    ));
                }
                member.expires = expires;
                group
            }
        };
        let mut reply = group.assign(name, beat, partitions_of)?;
        reply.heartbeat_interval_ms = interval;
        Ok(reply)
    }

    /// A member joining `name` (or joining again, as a new incarnation whose predecessor's
    /// locks go): the group made if new, within its bounds. Every check comes before the
    /// group is made, so a refused join leaves nothing behind.
    fn join(
        &mut self,
        config: &ShareGroupConfig,
        name: &str,
        beat: &ShareBeat,
        (expires, now): (Instant, Instant),
    ) -> BrokerResult<&mut ShareGroup> {
        if beat.topics.is_none() {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                "a joining member names its subscribed topics",
            ));
        }
        let limit = config.groups_per_shard_max;
        match self.groups.get(name) {
            None if self.groups.len() >= limit => {
                return Err(BrokerError::new(
                    ErrorKind::ResourceLimit,
                    format!(
                        "this coordinator holds {limit} share groups (share_groups.groups_per_shard_max)"
                    ),
                ));
            }
            Some(group)
                if !group.members.contains_key(&beat.member_id)
                    && group.members.len() >= config.members_max =>
            {
                return Err(BrokerError::new(
                    ErrorKind::GroupFull,
                    format!(
                        "share group {name:?} has {} members (share_groups.members_max)",
                        config.members_max
                    ),
                ));
            }
            _ => {}
        }
        let incarnation = self.next_incarnation;
        self.next_incarnation = incarnation.saturating_add(1);
        let group = self.groups.entry(name.to_string()).or_default();
        group.depart(name, &beat.member_id, now, &mut self.departed);
        group.empty_since = None;
        group.epoch = group.epoch.saturating_add(1);
        let epoch = group.epoch;
        group.members.insert(
            beat.member_id.clone(),
            Member {
                epoch,
                previous_epoch: 0,
                client_id: beat.client_id.clone(),
                rack_id: beat.rack_id.clone(),
                topics: BTreeSet::new(),
                assigned: Vec::new(),
                expires,
                incarnation,
            },
        );
        Ok(group)
    }

    /// The group as describe shows it, or `UnknownGroup`.
    pub fn describe(&mut self, name: &str, now: Instant) -> BrokerResult<ShareGroupView> {
        let group = self
            .groups
            .get_mut(name)
            .ok_or_else(|| unknown_group(name))?;
        group.expire(name, now, &mut self.departed);
        Ok(group.view(name))
    }

    /// Whether `name` is a share group here.
    pub fn contains(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// Every group's name and state.
    pub fn list(&mut self, now: Instant) -> Vec<(String, &'static str)> {
        let mut all: Vec<(String, &'static str)> = self
            .groups
            .iter_mut()
            .map(|(name, group)| {
                group.expire(name, now, &mut self.departed);
                (name.clone(), group.view(name).state)
            })
            .collect();
        all.sort();
        all
    }

    /// Forgets `name` if it has no members (`GroupNotEmpty` otherwise); returns the topics its
    /// members subscribed to.
    pub fn delete(&mut self, name: &str, now: Instant) -> BrokerResult<Vec<String>> {
        let group = self
            .groups
            .get_mut(name)
            .ok_or_else(|| unknown_group(name))?;
        group.expire(name, now, &mut self.departed);
        if !group.members.is_empty() {
            return Err(BrokerError::new(
                ErrorKind::GroupNotEmpty,
                format!("share group {name:?} has members"),
            ));
        }
        let topics = group.topics.iter().cloned().collect();
        self.groups.remove(name);
        Ok(topics)
    }
}

/// Registers the help text of the share-group gauges (set by the coordinator at each
/// heartbeat).
pub fn describe_metrics() {
    metrics::describe_gauge!(
        "ringmq_share_groups",
        "Kafka share groups the coordinator shard holds (bounded by share_groups.groups_per_shard_max)."
    );
    metrics::describe_gauge!(
        "ringmq_share_group_members",
        "Members of the coordinator shard's share groups (each group bounded by share_groups.members_max)."
    );
    metrics::describe_counter!(
        "ringmq_share_groups_reaped_total",
        "Empty share groups forgotten after share_groups.empty_group_retention_ms."
    );
    metrics::describe_gauge!(
        "ringmq_share_departed_pending",
        "Partitions of departed share members whose locks wait to be released (64 per call; bounded by share_groups.departed_partitions_max)."
    );
    metrics::describe_counter!(
        "ringmq_share_departed_dropped_total",
        "Departed share members dropped unreleased past share_groups.departed_partitions_max (their locks end at their deadlines)."
    );
}

/// A heartbeat's sizes, checked before anything is held: counts, and each string's length.
pub fn check_beat(config: &ShareGroupConfig, beat: &ShareBeat) -> BrokerResult<()> {
    let refuse = |message: String| Err(BrokerError::new(ErrorKind::InvalidRequest, message));
    if beat.member_id.is_empty() || beat.member_id.len() > MEMBER_ID_BYTES_MAX {
        return refuse(format!(
            "a share group member id is 1 to {MEMBER_ID_BYTES_MAX} bytes, not {}",
            beat.member_id.len()
        ));
    }
    let rack_max = config.rack_id_bytes_max;
    if let Some(rack) = &beat.rack_id
        && rack.len() > rack_max
    {
        return refuse(format!(
            "a rack id is at most {rack_max} bytes (share_groups.rack_id_bytes_max), not {}",
            rack.len()
        ));
    }
    let topics = beat.topics.as_deref().unwrap_or_default();
    if topics.len() > SUBSCRIBED_TOPICS_MAX {
        return refuse(format!(
            "a member subscribes to at most {SUBSCRIBED_TOPICS_MAX} topics"
        ));
    }
    let name_max = crate::broker::topics::TOPIC_NAME_BYTES_MAX;
    if let Some(long) = topics.iter().find(|topic| topic.len() > name_max) {
        return refuse(format!(
            "a subscribed topic name is at most {name_max} bytes, not {}",
            long.len()
        ));
    }
    Ok(())
}

fn unknown_member(name: &str, beat: &ShareBeat) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownMember,
        format!("no member {:?} in share group {name:?}", beat.member_id),
    )
}

pub fn unknown_group(name: &str) -> BrokerError {
    BrokerError::new(ErrorKind::UnknownGroup, format!("no share group {name:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(member: &str, epoch: i32, topics: Option<&[&str]>) -> ShareBeat {
        ShareBeat {
            member_id: member.into(),
            member_epoch: epoch,
            client_id: "c".into(),
            rack_id: None,
            topics: topics.map(|t| t.iter().map(|s| s.to_string()).collect()),
        }
    }

    #[test]
    fn members_share_every_partition_and_epochs_fence() {
        let config = ShareGroupConfig::default();
        let settings = ShareSettings::defaults(&config);
        let config = (&config, &settings);
        let mut groups = ShareGroups::default();
        let partitions = |topic: &str| (topic == "t").then_some(2);
        let now = Instant::now();
        let a = groups
            .heartbeat(config, "g", beat("a", 0, Some(&["t"])), &partitions, now)
            .unwrap();
        let b = groups
            .heartbeat(config, "g", beat("b", 0, Some(&["t"])), &partitions, now)
            .unwrap();
        let both = Some(vec![("t".to_string(), 0), ("t".to_string(), 1)]);
        assert_eq!(a.assignment, both);
        assert_eq!(b.assignment, both);
        assert!(b.member_epoch > a.member_epoch);
        let again = groups
            .heartbeat(
                config,
                "g",
                beat("a", a.member_epoch, None),
                &partitions,
                now,
            )
            .unwrap();
        assert_eq!(again.member_epoch, a.member_epoch);
        let fenced = groups
            .heartbeat(
                config,
                "g",
                beat("a", a.member_epoch + 7, None),
                &partitions,
                now,
            )
            .unwrap_err();
        assert_eq!(fenced.kind, ErrorKind::FencedMemberEpoch);
        let unknown = groups
            .heartbeat(config, "g", beat("z", 3, None), &partitions, now)
            .unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::UnknownMember);
        assert_eq!(
            groups.delete("g", now).unwrap_err().kind,
            ErrorKind::GroupNotEmpty
        );
        // Past the session timeout both are gone and the group may be deleted.
        let later = now + Duration::from_millis(u64::from(settings.session_timeout_ms) + 1);
        assert_eq!(groups.describe("g", later).unwrap().state, "Empty");
        assert_eq!(groups.delete("g", later).unwrap(), vec!["t".to_string()]);
    }

    #[test]
    fn departures_are_released_a_bounded_batch_at_a_time() {
        let config = ShareGroupConfig::default();
        let settings = ShareSettings::defaults(&config);
        let config = (&config, &settings);
        let mut groups = ShareGroups::default();
        // 3 members of 50 partitions each: 150 partitions to release, 64 per call.
        let partitions = |topic: &str| (topic == "t").then_some(50);
        let now = Instant::now();
        for member in ["a", "b", "c"] {
            groups
                .heartbeat(config, "g", beat(member, 0, Some(&["t"])), &partitions, now)
                .unwrap();
        }
        // "a" joins again: its first incarnation departs, the new one stays.
        groups
            .heartbeat(config, "g", beat("a", 0, Some(&["t"])), &partitions, now)
            .unwrap();
        let later = now + Duration::from_millis(u64::from(settings.session_timeout_ms) + 1);
        assert_eq!(groups.describe("g", later).unwrap().state, "Empty");
        assert_eq!(groups.departed_pending(), 200);
        let mut batches = Vec::new();
        while groups.departed_pending() > 0 {
            let (batch, dropped) = groups.take_departed(1_000);
            assert_eq!(dropped, 0);
            let count: usize = batch.iter().map(|gone| gone.partitions.len()).sum();
            assert!(count <= RELEASES_PER_CALL, "{count}");
            batches.push(batch);
        }
        assert_eq!(batches.len(), 4, "200 partitions in calls of at most 64");
        let all: Vec<Departed> = batches.into_iter().flatten().collect();
        let released = |consumer: &str| -> usize {
            all.iter()
                .filter(|gone| gone.consumer == consumer)
                .map(|gone| gone.partitions.len())
                .sum()
        };
        // Each incarnation is released under its own name, every partition once.
        for consumer in ["a#0", "a#3", "b#1", "c#2"] {
            assert_eq!(released(consumer), 50, "{consumer}");
        }
        // Past the bound of pending partitions the oldest departures go unreleased.
        groups
            .heartbeat(config, "g", beat("d", 0, Some(&["t"])), &partitions, later)
            .unwrap();
        groups
            .heartbeat(config, "g", beat("d", 0, Some(&["t"])), &partitions, later)
            .unwrap();
        groups
            .heartbeat(config, "g", beat("d", 0, Some(&["t"])), &partitions, later)
            .unwrap();
        assert_eq!(groups.departed_pending(), 100);
        let (batch, dropped) = groups.take_departed(60);
        assert_eq!(dropped, 1);
        assert_eq!(batch.len(), 1);
        assert_eq!(groups.departed_pending(), 0);
        groups
            .heartbeat(config, "g", beat("d", -1, None), &partitions, later)
            .unwrap();
        groups.take_departed(1_000);
        // Empty past the retention, the group is forgotten.
        let retention = Duration::from_secs(1);
        assert_eq!(groups.sweep(retention, later), 0);
        assert_eq!(groups.sweep(retention, later + Duration::from_secs(2)), 1);
        assert!(groups.is_empty());
    }
}
