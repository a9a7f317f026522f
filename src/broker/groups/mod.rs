//! Consumer groups: every group receives every message of the topics it subscribes to; inside a
//! group the partitions are divided among the members, and each member's progress is a
//! committed offset per partition.
//!
//! A group lives on one coordinator shard: the group name picks one of `OFFSETS_PARTITIONS`
//! partitions of the internal offsets log, and that partition's owner shard coordinates the
//! group, like any partition's owner. This module is that coordinator: the map of its groups and
//! the operations that do not depend on how a group's partitions are assigned (commits, offset
//! fetches, describe, list, delete). Each kind of membership runs its own rounds, with its own
//! operations: `broker_assigned` (ringmq's protocol: the broker divides the partitions) and
//! `client_assigned` (Kafka's JoinGroup/SyncGroup: the leader divides them). `group` holds one
//! group's state behind its methods; `offsets_log` stores commits; `background` expires
//! sessions and publishes lag.
//!
//! The children depend on this module and on `assignment`, never on each other both ways:
//! `group` knows both membership kinds, so the kinds reach their group only through the
//! `Coordinator`'s methods here.
//!
//! Every membership change starts a new generation. Commits from an older generation are
//! refused (`illegal_generation`), so a member that lost a partition cannot move that
//! partition's committed offset. Membership is not stored: after a restart, members rejoin.

pub mod assignment;
mod background;
mod broker_assigned;
pub mod client_assigned;
pub mod consumer_protocol;
mod group;
mod offsets_log;
mod views;

use std::collections::{BTreeMap, HashMap};

pub use background::{expire_sessions, run_background};
pub use broker_assigned::{heartbeat, join, leave};
pub use offsets_log::{CRASH_AT_ENV, OFFSETS_LOG, OFFSETS_PARTITIONS};

pub use views::{
    CommittedOffset, Committer, ConsumerGroupView, ConsumerHeartbeatReply, ConsumerMemberView,
    GroupDescription, GroupSummary, KafkaMember, KafkaView, MemberAssignment, MemberDescription,
};

use crate::broker::{BrokerError, BrokerResult, ErrorKind, ShardState};
use crate::shard::{ShardId, owner_of};
use crate::storage::PartitionLog;
use assignment::Strategy;
use broker_assigned::BrokerAssigned;
use client_assigned::ClientAssigned;
use consumer_protocol::ConsumerProtocol;
use group::Group;
use offsets_log::Records;

pub const SESSION_TIMEOUT_MS_MIN: u32 = 100;
pub const SESSION_TIMEOUT_MS_MAX: u32 = 300_000;
/// Members of one group, of either kind. A join with a fresh member id beyond it is refused, so
/// a loop of joins cannot grow the coordinator without bound (Kafka's `group.max.size`).
pub const MEMBERS_PER_GROUP_MAX: usize = 1000;
/// Bytes one member's join may make the coordinator hold: its protocols (names and opaque
/// metadata) in Kafka's protocol, its subscribed topic names in ringmq's; each entry also counts
/// the size of its handle, so that many empty entries are not free.
pub const MEMBER_METADATA_BYTES_MAX: usize = 64 * 1024;
/// Offsets per commit: a bound on what one request can make us write and hold.
pub const COMMIT_OFFSETS_MAX: usize = 10_000;
/// Groups one coordinator shard holds (members or committed offsets); a new one beyond is refused.
pub const GROUPS_PER_SHARD_MAX: usize = 100_000;

/// A group's generation: one step per membership change, never back, so that a commit stamped
/// with an older one is recognised and refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generation(u32);

impl Generation {
    pub fn get(self) -> u32 {
        self.0
    }

    /// Only a membership round calls this, when it changes who owns what.
    fn advance(&mut self) {
        self.0 += 1;
    }
}

/// This shard's coordinator: its groups and the offsets-log partitions it owns.
#[derive(Default)]
pub struct Coordinator {
    groups: HashMap<String, Group>,
    logs: HashMap<u32, PartitionLog>,
}

impl Coordinator {
    /// The group `name`, made if new. A group made for a join that is then refused stays, empty
    /// and listed, as one made by commits does.
    fn group_for_join(&mut self, name: &str) -> BrokerResult<&mut Group> {
        check_room_for(self, name)?;
        Ok(self.groups.entry(name.to_string()).or_default())
    }

    /// Runs `admit` on the broker-assigned membership of `name` (a new one if the group has none
    /// yet, or only an empty one of the other kind, installed only if `admit` succeeds).
    fn join_broker_assigned<R>(
        &mut self,
        name: &str,
        strategy: Strategy,
        admit: impl FnOnce(&mut BrokerAssigned, &mut Generation) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        self.group_for_join(name)?
            .join_broker_assigned(name, strategy, admit)
    }

    /// Runs `admit` on the client-assigned membership of `name` for `protocol_type`, as
    /// `join_broker_assigned` does for the other kind.
    fn join_client_assigned<R>(
        &mut self,
        name: &str,
        protocol_type: &str,
        admit: impl FnOnce(&mut ClientAssigned, &mut Generation) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        self.group_for_join(name)?
            .join_client_assigned(name, protocol_type, admit)
    }

    /// Runs `admit` on the KIP-848 membership of `name`, as `join_broker_assigned` does.
    fn join_consumer_protocol<R>(
        &mut self,
        name: &str,
        admit: impl FnOnce(&mut ConsumerProtocol, &mut Generation) -> BrokerResult<R>,
    ) -> BrokerResult<R> {
        self.group_for_join(name)?
            .join_consumer_protocol(name, admit)
    }

    /// The KIP-848 membership of `name` that `member_id` heartbeats to.
    fn consumer_protocol(
        &mut self,
        name: &str,
        member_id: &str,
    ) -> BrokerResult<(&mut ConsumerProtocol, &mut Generation)> {
        self.groups
            .get_mut(name)
            .ok_or_else(|| unknown_member(name, member_id))?
            .consumer_protocol(name, member_id)
    }

    /// The broker-assigned membership of `name`, if it has one.
    fn broker_assigned(&mut self, name: &str) -> Option<(&mut BrokerAssigned, &mut Generation)> {
        self.groups.get_mut(name)?.broker_assigned()
    }

    /// The client-assigned membership of `name`, if it has one.
    fn client_assigned(&mut self, name: &str) -> Option<(&mut ClientAssigned, &mut Generation)> {
        self.groups.get_mut(name)?.client_assigned()
    }
}

/// The offsets-log partition of a group, and the shard that coordinates it.
pub fn coordinator_of(group: &str, shards: usize) -> (u32, ShardId) {
    let partition =
        (xxhash_rust::xxh3::xxh3_64(group.as_bytes()) % u64::from(OFFSETS_PARTITIONS)) as u32;
    (partition, owner_of(OFFSETS_LOG, partition, shards))
}

pub fn validate_name(group: &str) -> BrokerResult<()> {
    crate::broker::topics::validate_name(group).map_err(|_| {
        BrokerError::new(
            ErrorKind::InvalidGroupName,
            format!("group name {group:?} must be 1 to 200 of [a-zA-Z0-9._-]"),
        )
    })
}

/// Opens the offsets-log partitions this shard owns and loads their groups' committed offsets.
pub async fn open(state: &ShardState) -> Result<(), String> {
    for partition in 0..OFFSETS_PARTITIONS {
        if owner_of(OFFSETS_LOG, partition, state.shards()) != state.id {
            continue;
        }
        let (log, live) = offsets_log::open(
            &state.config.data_dir,
            partition,
            state.config.verify_on_start,
        )
        .await?;
        let mut coordinator = state.coordinator.borrow_mut();
        for ((group, topic, topic_partition), offset) in live {
            coordinator.groups.entry(group).or_default().set_committed(
                topic,
                topic_partition,
                offset,
            );
        }
        coordinator.logs.insert(partition, log);
    }
    Ok(())
}

pub async fn close(state: &ShardState) {
    let logs: Vec<PartitionLog> = state
        .coordinator
        .borrow_mut()
        .logs
        .drain()
        .map(|(_, log)| log)
        .collect();
    for log in logs {
        let _ = log.close().await;
    }
}

/// The partition counts of `topics` in this shard's snapshot (absent topics have none).
fn partition_counts(
    state: &ShardState,
    topics: impl Iterator<Item = String>,
) -> BTreeMap<String, u32> {
    let snapshot = state.topics();
    topics
        .filter_map(|topic| snapshot.get(&topic).map(|meta| (topic, meta.partitions)))
        .collect()
}

/// Refuses a group that does not exist yet when the shard holds its maximum of groups.
fn check_room_for(coordinator: &Coordinator, group: &str) -> BrokerResult<()> {
    if coordinator.groups.len() >= GROUPS_PER_SHARD_MAX && !coordinator.groups.contains_key(group) {
        return Err(BrokerError::new(
            ErrorKind::ResourceLimit,
            format!(
                "this coordinator holds {GROUPS_PER_SHARD_MAX} groups already; delete unused ones"
            ),
        ));
    }
    Ok(())
}

fn unknown_member(group: &str, member: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownMember,
        format!("{member:?} is not a member of group {group:?}; join again"),
    )
}

/// The refusal of a join that would take a group past `MEMBERS_PER_GROUP_MAX`.
fn group_full(group: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::GroupFull,
        format!("group {group:?} has {MEMBERS_PER_GROUP_MAX} members already"),
    )
}

/// Refuses a member whose join would make us hold more than `MEMBER_METADATA_BYTES_MAX`:
/// `entries` are the lengths of what it sends (protocol names and metadata, or topic names).
fn check_member_metadata(entries: impl Iterator<Item = usize>) -> BrokerResult<()> {
    // Each entry is held as a string or buffer handle besides its bytes.
    let handle = std::mem::size_of::<(String, bytes::Bytes)>();
    let held = entries.fold(0usize, |held, len| held.saturating_add(handle + len));
    if held > MEMBER_METADATA_BYTES_MAX {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            format!(
                "a member's metadata takes {held} bytes; at most {MEMBER_METADATA_BYTES_MAX} per member"
            ),
        ));
    }
    Ok(())
}

pub async fn commit(
    state: &ShardState,
    name: String,
    member_id: String,
    generation: u32,
    offsets: Vec<(String, u32, u64)>,
) -> BrokerResult<()> {
    let member = Committer::member(member_id);
    commit_at(state, name, member, i64::from(generation), offsets).await
}

/// `commit` for either kind of group; with no member, for a group without members.
pub async fn commit_at(
    state: &ShardState,
    name: String,
    member: Committer,
    generation: i64,
    offsets: Vec<(String, u32, u64)>,
) -> BrokerResult<()> {
    validate_name(&name)?;
    if offsets.len() > COMMIT_OFFSETS_MAX {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            format!("at most {COMMIT_OFFSETS_MAX} offsets per commit"),
        ));
    }
    {
        let coordinator = state.coordinator.borrow();
        check_room_for(&coordinator, &name)?;
        match coordinator.groups.get(&name) {
            Some(group) => group.check_commit(&name, &member, generation)?,
            None if !member.member_id.is_empty() => {
                return Err(unknown_member(&name, &member.member_id));
            }
            None => {}
        }
    }
    append(state, &name, Records::commits(&name, &offsets)).await?;
    let mut coordinator = state.coordinator.borrow_mut();
    let group = coordinator.groups.entry(name).or_default();
    for (topic, partition, offset) in offsets {
        group.set_committed(topic, partition, offset);
    }
    Ok(())
}

/// Whether `member_id` may fetch offsets at `member_epoch` (OffsetFetch v9): in a KIP-848
/// group, the commit rule without writing anything (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH).
/// Groups of the other kinds answer offset fetches to anyone, as before.
pub fn check_member_epoch(
    state: &ShardState,
    name: &str,
    member_id: &str,
    member_epoch: i32,
) -> BrokerResult<()> {
    let coordinator = state.coordinator.borrow();
    match coordinator.groups.get(name) {
        Some(group) if group.uses_consumer_protocol() => {
            group.check_commit(name, &Committer::member(member_id), i64::from(member_epoch))
        }
        _ => Ok(()),
    }
}

/// Appends `records` durably to the group's offsets-log partition.
async fn append(state: &ShardState, group: &str, records: Records) -> BrokerResult<()> {
    if records.is_empty() {
        return Ok(());
    }
    let (partition, _) = coordinator_of(group, state.shards());
    let log = state
        .coordinator
        .borrow()
        .logs
        .get(&partition)
        .cloned()
        .ok_or_else(BrokerError::shutting_down)?;
    offsets_log::append(&log, records).await
}

/// One partition's outcome in `delete_offsets`.
pub type OffsetDeletion = ((String, u32), Option<BrokerError>);

/// Deletes the group's committed offsets of `partitions` (Kafka's OffsetDelete): refused for a
/// topic the group's members consume, and for a partition with no committed offset nothing is
/// written. The deletions are durable (tombstones in the offsets log) before the answer.
pub async fn delete_offsets(
    state: &ShardState,
    name: String,
    partitions: Vec<(String, u32)>,
) -> BrokerResult<Vec<OffsetDeletion>> {
    validate_name(&name)?;
    if partitions.len() > COMMIT_OFFSETS_MAX {
        return Err(BrokerError::new(
            ErrorKind::InvalidConfig,
            format!("at most {COMMIT_OFFSETS_MAX} offsets per deletion"),
        ));
    }
    let (outcomes, doomed) = {
        let coordinator = state.coordinator.borrow();
        let group = coordinator
            .groups
            .get(&name)
            .ok_or_else(|| unknown_group(&name))?;
        let mut doomed = Vec::new();
        let outcomes: Vec<OffsetDeletion> = partitions
            .into_iter()
            .map(|(topic, partition)| {
                if group.consumes(&topic) {
                    let refusal = BrokerError::new(
                        ErrorKind::GroupSubscribed,
                        format!("group {name:?} has members consuming {topic:?}"),
                    );
                    return ((topic, partition), Some(refusal));
                }
                let key = (topic, partition);
                if let Some(offset) = group.committed().get(&key) {
                    doomed.push((key.clone(), *offset));
                }
                (key, None)
            })
            .collect();
        (outcomes, doomed)
    };
    append(
        state,
        &name,
        Records::tombstones(&name, doomed.iter().map(|(key, _)| key)),
    )
    .await?;
    if let Some(group) = state.coordinator.borrow_mut().groups.get_mut(&name) {
        for ((topic, partition), offset) in &doomed {
            // A commit made while the tombstones were written lies after them in the log, and
            // wins there: it must win here too.
            if group.committed().get(&(topic.clone(), *partition)) == Some(offset) {
                group.forget_committed(topic, *partition);
            }
        }
    }
    Ok(outcomes)
}

pub fn fetch_offsets(
    state: &ShardState,
    name: &str,
    partitions: Vec<(String, u32)>,
) -> Vec<CommittedOffset> {
    let coordinator = state.coordinator.borrow();
    let committed = coordinator.groups.get(name).map(Group::committed);
    match committed {
        None => Vec::new(),
        Some(committed) if partitions.is_empty() => committed
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect(),
        Some(committed) => partitions
            .into_iter()
            .filter_map(|(t, p)| committed.get(&(t.clone(), p)).map(|o| (t, p, *o)))
            .collect(),
    }
}

/// Refuses `name` for a consumer group (classic or KIP-848) when a share group has it, and for
/// a share group when a consumer group has it (an empty one kept for its offsets included):
/// one name is one group, as Kafka's coordinator answers GROUP_ID_NOT_FOUND ("not a consumer
/// group" / "not a share group") rather than letting DescribeGroups and DeleteGroups confuse
/// the two. A queue group of the same name is another matter: that is the shared queue itself.
pub fn check_kind(state: &ShardState, name: &str, share: bool) -> BrokerResult<()> {
    let (taken, kind) = if share {
        (
            state.coordinator.borrow().groups.contains_key(name),
            "share",
        )
    } else {
        (state.share_groups.borrow().contains(name), "consumer")
    };
    if taken {
        return Err(BrokerError::new(
            ErrorKind::UnknownGroup,
            format!("group {name:?} is not a {kind} group"),
        ));
    }
    Ok(())
}

pub fn list(state: &ShardState) -> Vec<GroupSummary> {
    state
        .coordinator
        .borrow()
        .groups
        .iter()
        .map(|(name, group)| group.summary(name))
        .collect()
}

pub fn describe(state: &ShardState, name: &str) -> BrokerResult<GroupDescription> {
    let coordinator = state.coordinator.borrow();
    let group = coordinator
        .groups
        .get(name)
        .ok_or_else(|| unknown_group(name))?;
    Ok(group.description(name))
}

fn unknown_group(name: &str) -> BrokerError {
    BrokerError::new(ErrorKind::UnknownGroup, format!("unknown group {name:?}"))
}

pub async fn delete(state: &ShardState, name: String) -> BrokerResult<()> {
    let tombstones = {
        let coordinator = state.coordinator.borrow();
        let group = coordinator
            .groups
            .get(&name)
            .ok_or_else(|| unknown_group(&name))?;
        let members = group.members();
        if members > 0 {
            return Err(BrokerError::new(
                ErrorKind::GroupNotEmpty,
                format!("group {name:?} has {members} active member(s)"),
            ));
        }
        Records::tombstones(&name, group.committed().keys())
    };
    append(state, &name, tombstones).await?;
    state.coordinator.borrow_mut().groups.remove(&name);
    crate::metrics::retire("group", &name);
    Ok(())
}

/// Every group this shard coordinates, as Kafka shows them.
pub fn kafka_list(state: &ShardState) -> Vec<KafkaView> {
    state
        .coordinator
        .borrow()
        .groups
        .iter()
        .map(|(name, group)| group.kafka_view(name))
        .collect()
}

/// A KIP-848 group as ConsumerGroupDescribe shows it: GROUP_ID_NOT_FOUND when there is no such
/// group or it is of another kind, as Kafka answers.
pub fn consumer_describe(state: &ShardState, name: &str) -> BrokerResult<ConsumerGroupView> {
    let coordinator = state.coordinator.borrow();
    let group = coordinator
        .groups
        .get(name)
        .ok_or_else(|| unknown_group(name))?;
    group.consumer_view(name).ok_or_else(|| {
        BrokerError::new(
            ErrorKind::UnknownGroup,
            format!("group {name:?} is not a consumer group"),
        )
    })
}

/// One group as Kafka shows it (Dead, with no members, when unknown).
pub fn kafka_describe(state: &ShardState, name: &str) -> KafkaView {
    match state.coordinator.borrow().groups.get(name) {
        Some(group) => group.kafka_view(name),
        None => KafkaView {
            name: name.to_string(),
            state: "Dead",
            group_type: "classic",
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::broker::topics::Topics;
    use crate::config::BrokerConfig;
    use crate::runtime;
    use crate::shard::Mailboxes;

    fn shard() -> Rc<ShardState> {
        Rc::new(ShardState::new(
            0,
            Arc::new(BrokerConfig::default()),
            Mailboxes::new(1, 4),
            Arc::new(Topics::default()),
            Default::default(),
        ))
    }

    /// A Kafka join with a fresh member id and a long rebalance timeout: it waits in its round
    /// (the members that joined before it never join again), so the member stays.
    async fn kafka_join(
        state: Rc<ShardState>,
        metadata: Bytes,
    ) -> BrokerResult<client_assigned::Joined> {
        let round = client_assigned::JoinRound {
            group: "crowd".into(),
            member_id: String::new(),
            client_id: "client".into(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), metadata)],
            session_timeout_ms: 30_000,
            rebalance_timeout_ms: 300_000,
        };
        client_assigned::join(&state, round).await
    }

    fn members(state: &ShardState, group: &str) -> usize {
        kafka_describe(state, group).members.len()
    }

    #[test]
    fn joins_with_fresh_member_ids_stop_at_the_cap_of_members_per_group() {
        runtime::block_on(async {
            let state = shard();
            let _waiting: Vec<_> = (0..MEMBERS_PER_GROUP_MAX)
                .map(|_| runtime::spawn(kafka_join(state.clone(), Bytes::from_static(b"m"))))
                .collect();
            for _ in 0..10_000 {
                if members(&state, "crowd") == MEMBERS_PER_GROUP_MAX {
                    break;
                }
                runtime::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(members(&state, "crowd"), MEMBERS_PER_GROUP_MAX);
            // Refused at once: admitted, it would wait in the round instead.
            let refused = runtime::timeout(
                Duration::from_secs(5),
                kafka_join(state.clone(), Bytes::from_static(b"m")),
            )
            .await
            .expect("the join over the cap is answered at once");
            assert_eq!(refused.err().map(|e| e.kind), Some(ErrorKind::GroupFull));
            assert_eq!(members(&state, "crowd"), MEMBERS_PER_GROUP_MAX);

            // ringmq's own protocol has the same cap (its joins do not wait for a round).
            let join = |state: &ShardState| {
                join(
                    state,
                    "own".into(),
                    String::new(),
                    vec!["t".into()],
                    30_000,
                    "range".into(),
                )
            };
            for _ in 0..MEMBERS_PER_GROUP_MAX {
                join(&state).unwrap();
            }
            let refused = join(&state).unwrap_err();
            assert_eq!(refused.kind, ErrorKind::GroupFull);
            assert_eq!(
                list(&state)
                    .iter()
                    .find(|g| g.name == "own")
                    .unwrap()
                    .members,
                1000
            );
        });
    }

    #[test]
    fn a_member_whose_metadata_is_over_the_cap_is_refused_and_nothing_is_kept() {
        runtime::block_on(async {
            let state = shard();
            let big = Bytes::from(vec![0u8; MEMBER_METADATA_BYTES_MAX]);
            let refused = kafka_join(state.clone(), big).await;
            assert_eq!(
                refused.err().map(|e| e.kind),
                Some(ErrorKind::InvalidConfig)
            );
            let many_topics: Vec<String> = (0..MEMBER_METADATA_BYTES_MAX / 16)
                .map(|n| format!("topic-{n}"))
                .collect();
            let refused = join(
                &state,
                "own".into(),
                String::new(),
                many_topics,
                30_000,
                "range".into(),
            );
            assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidConfig);
            assert!(list(&state).is_empty(), "a refused member makes no group");
            // Under the cap, the same join is admitted.
            let small = Bytes::from(vec![0u8; MEMBER_METADATA_BYTES_MAX / 2]);
            let joined = kafka_join(state.clone(), small).await.unwrap();
            assert_eq!(members(&state, "crowd"), 1, "{}", joined.member_id);
        });
    }
}
