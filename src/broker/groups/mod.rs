//! Consumer groups: every group receives every message of the topics it subscribes to; inside a
//! group the partitions are divided among the members, and each member's progress is a
//! committed offset per partition.
//!
//! A group lives on one coordinator shard: the group name picks one of `OFFSETS_PARTITIONS`
//! partitions of the internal offsets log, and that partition's owner shard coordinates the
//! group, like any partition's owner. The broker assigns partitions itself (the client joins and
//! learns its partitions); members keep their place with heartbeats, a member silent for its
//! session timeout is removed, and every membership change starts a new generation. Commits
//! from an older generation are refused (`illegal_generation`), so a member that lost a
//! partition cannot move that partition's committed offset.
//!
//! Committed offsets are records in the offsets log (key "group\0topic\0partition", value the
//! offset, or no value to delete), appended with `fsynced` acks before a commit is answered. On
//! start the log is read whole, last value wins, and rewritten compacted when mostly superseded.
//! Membership is not stored: after a restart, members rejoin.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;

pub mod assignment;
pub mod client_assigned;
mod offsets_log;

pub use offsets_log::CRASH_AT_ENV;

use crate::broker::{ShardState, shutting_down};
use assignment::{Assignment, Strategy};
use client_assigned::{ClientAssigned, Phase};
use crate::batch::{BatchBuilder, Compression, Record, records};
use crate::protocol::messages::{GroupAssignment, GroupDescription, GroupSummary};
use crate::protocol::{ErrorCode, OffsetSpec, ProtocolError, Response};
use crate::runtime;
use crate::shard::{ShardId, owner_of};
use crate::storage::{AckLevel, LogConfig, PartitionLog};

/// Partitions of the internal offsets log. Fixed: it decides which shard coordinates a group.
pub const OFFSETS_PARTITIONS: u32 = 8;
pub const OFFSETS_LOG: &str = "__consumer_offsets";
pub const SESSION_TIMEOUT_MS_MIN: u32 = 100;
pub const SESSION_TIMEOUT_MS_MAX: u32 = 300_000;
/// Members per group, and offsets per commit: bounds on what one client can make us hold.
pub const MEMBERS_MAX: usize = 1000;
pub const COMMIT_OFFSETS_MAX: usize = 10_000;
/// Groups one coordinator shard holds (members or committed offsets); a new one beyond is refused.
pub const GROUPS_PER_SHARD_MAX: usize = 100_000;

struct Member {
    client_id: String,
    topics: BTreeSet<String>,
    session_timeout: Duration,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Group {
    pub(super) generation: u32,
    strategy: Option<Strategy>,
    members: BTreeMap<String, Member>,
    assignment: Assignment,
    /// The partition counts the current assignment was made for.
    partitions_seen: BTreeMap<String, u32>,
    committed: BTreeMap<(String, u32), u64>,
    members_ever: u64,
    /// Members that assign partitions themselves (Kafka's protocol); a group has either these
    /// or broker-assigned `members`, never both.
    pub(super) client_assigned: Option<ClientAssigned>,
}

impl Group {
    fn client_members(&self) -> usize {
        self.client_assigned
            .as_ref()
            .map_or(0, |kind| kind.members.len())
    }

    fn state(&self) -> &'static str {
        match self.client_assigned.as_ref().map(|kind| kind.phase) {
            Some(Phase::Joining) => "preparing-rebalance",
            Some(Phase::Syncing) => "completing-rebalance",
            Some(Phase::Stable) => "stable",
            _ if !self.members.is_empty() => "stable",
            _ => "empty",
        }
    }

    fn summary(&self, name: &str) -> GroupSummary {
        let members = (self.members.len() + self.client_members()) as u32;
        GroupSummary {
            name: name.to_string(),
            state: self.state().into(),
            generation: self.generation,
            members,
        }
    }
}

/// This shard's coordinator: its groups and the offsets-log partitions it owns.
#[derive(Default)]
pub struct Coordinator {
    pub(super) groups: HashMap<String, Group>,
    logs: HashMap<u32, PartitionLog>,
}

/// The offsets-log partition of a group, and the shard that coordinates it.
pub fn coordinator_of(group: &str, shards: usize) -> (u32, ShardId) {
    let partition =
        (xxhash_rust::xxh3::xxh3_64(group.as_bytes()) % u64::from(OFFSETS_PARTITIONS)) as u32;
    (partition, owner_of(OFFSETS_LOG, partition, shards))
}

pub fn validate_name(group: &str) -> Result<(), ProtocolError> {
    crate::broker::topics::validate_name(group).map_err(|_| {
        ProtocolError::new(
            ErrorCode::InvalidConfig,
            format!("group name {group:?} must be 1 to 200 of [a-zA-Z0-9._-]"),
        )
    })
}

fn offsets_dir(data_dir: &Path, partition: u32) -> PathBuf {
    data_dir.join(OFFSETS_LOG).join(partition.to_string())
}

fn offsets_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 64 << 20,
        retention_ms: None,
        retention_bytes_max: None,
        ..LogConfig::default()
    }
}

fn record_key(group: &str, topic: &str, partition: u32) -> Vec<u8> {
    format!("{group}\0{topic}\0{partition}").into_bytes()
}

fn parse_key(key: &[u8]) -> Option<(String, String, u32)> {
    let text = std::str::from_utf8(key).ok()?;
    let mut parts = text.split('\0');
    let (group, topic, partition) = (parts.next()?, parts.next()?, parts.next()?.parse().ok()?);
    Some((group.to_string(), topic.to_string(), partition))
}

/// Every (group, topic, partition) -> offset still in force in one offsets-log partition, and
/// how many records the log holds in all.
async fn read_offsets_log(
    log: &PartitionLog,
) -> Result<(BTreeMap<(String, String, u32), u64>, u64), String> {
    let mut live = BTreeMap::new();
    let mut records_total = 0;
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log
            .read(offset, 1 << 20)
            .await
            .map_err(|error| error.to_string())?;
        for chunk in &read.chunks {
            for (_, batch) in crate::batch::iter_framed(chunk) {
                for stored in records::decode(batch).map_err(|error| error.to_string())? {
                    offset = stored.offset as u64 + 1;
                    records_total += 1;
                    let Some((group, topic, partition)) =
                        stored.record.key.as_deref().and_then(parse_key)
                    else {
                        continue;
                    };
                    match stored
                        .record
                        .value
                        .as_deref()
                        .and_then(|value| value.first_chunk::<8>().copied())
                    {
                        Some(value) => {
                            live.insert((group, topic, partition), u64::from_be_bytes(value))
                        }
                        None => live.remove(&(group, topic, partition)),
                    };
                }
            }
        }
    }
    Ok((live, records_total))
}

fn offsets_batch(entries: &[(Vec<u8>, Option<u64>)]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    let now = crate::storage::log::now_ms();
    for (key, offset) in entries {
        let value = offset.map(|offset| offset.to_be_bytes());
        builder.push(Record::new(now, Some(key), value.as_ref().map(|v| &v[..])));
    }
    BytesMut::from(&builder.build()[..])
}

/// Opens the offsets-log partitions this shard owns and loads their groups' committed offsets,
/// rewriting a partition compacted when most of its records are superseded.
pub async fn open(state: &ShardState) -> Result<(), String> {
    for partition in 0..OFFSETS_PARTITIONS {
        if owner_of(OFFSETS_LOG, partition, state.shards()) != state.id {
            continue;
        }
        let dir = offsets_dir(&state.config.data_dir, partition);
        let labels = vec![
            ("topic".into(), OFFSETS_LOG.into()),
            ("partition".into(), partition.to_string()),
        ];
        offsets_log::recover(&dir)
            .map_err(|error| format!("{}: {error}", dir.display()))?;
        let config = LogConfig {
            verify_on_start: state.config.verify_on_start,
            ..offsets_config()
        };
        let mut log = PartitionLog::open(&dir, config, labels.clone())
            .await
            .map_err(|error| format!("{}: {error}", dir.display()))?;
        let (live, records_total) = read_offsets_log(&log).await?;
        if records_total > 2 * live.len() as u64 + 64 {
            log = compact(&dir, log, &live, labels).await?;
            tracing::info!(
                partition,
                records_before = records_total,
                records_after = live.len(),
                "compacted the offsets log"
            );
        }
        let mut coordinator = state.coordinator.borrow_mut();
        for ((group, topic, topic_partition), offset) in live {
            coordinator
                .groups
                .entry(group)
                .or_default()
                .committed
                .insert((topic, topic_partition), offset);
        }
        coordinator.logs.insert(partition, log);
    }
    Ok(())
}

/// Writes the live entries to a fresh log beside `dir` and switches it in atomically (see
/// `offsets_compaction`: a crash at any step leaves every committed offset readable).
async fn compact(
    dir: &Path,
    old: PartitionLog,
    live: &BTreeMap<(String, String, u32), u64>,
    labels: Vec<(String, String)>,
) -> Result<PartitionLog, String> {
    let entries: Vec<(Vec<u8>, Option<u64>)> = live
        .iter()
        .map(|((g, t, p), offset)| (record_key(g, t, *p), Some(*offset)))
        .collect();
    let batches = entries.chunks(1000).map(offsets_batch).collect();
    offsets_log::compact(dir, old, batches, offsets_config(), labels).await
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

/// The group `name` ready for client-assigned members of `protocol_type` (made if new).
pub(super) fn group_for_client_assigned<'a>(
    coordinator: &'a mut Coordinator,
    name: &str,
    protocol_type: &str,
) -> Result<&'a mut Group, ProtocolError> {
    check_room_for(coordinator, name)?;
    let group = coordinator.groups.entry(name.to_string()).or_default();
    if !group.members.is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::InconsistentGroupProtocol,
            format!("group {name:?} has members of ringmq's own protocol"),
        ));
    }
    let replace = match &group.client_assigned {
        Some(kind) if kind.protocol_type != protocol_type && !kind.members.is_empty() => {
            return Err(ProtocolError::new(
                ErrorCode::InconsistentGroupProtocol,
                format!("group {name:?} uses protocol type {:?}", kind.protocol_type),
            ));
        }
        Some(kind) => kind.protocol_type != protocol_type,
        None => true,
    };
    if replace {
        group.client_assigned = Some(ClientAssigned::new(protocol_type.to_string()));
    }
    Ok(group)
}

/// Refuses a group that does not exist yet when the shard holds its maximum of groups.
fn check_room_for(coordinator: &Coordinator, group: &str) -> Result<(), ProtocolError> {
    if coordinator.groups.len() >= GROUPS_PER_SHARD_MAX && !coordinator.groups.contains_key(group) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidConfig,
            format!(
                "this coordinator holds {GROUPS_PER_SHARD_MAX} groups already; delete unused ones"
            ),
        ));
    }
    Ok(())
}

fn unknown_member(group: &str, member: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::UnknownMember,
        format!("{member:?} is not a member of group {group:?}; join again"),
    )
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

fn rebalance(state: &ShardState, group: &mut Group) {
    let subscriptions: BTreeMap<String, BTreeSet<String>> = group
        .members
        .iter()
        .map(|(id, member)| (id.clone(), member.topics.clone()))
        .collect();
    let partitions = partition_counts(
        state,
        subscriptions
            .values()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter(),
    );
    let strategy = group.strategy.unwrap_or(Strategy::Sticky);
    group.assignment = assignment::assign(strategy, &subscriptions, &partitions, &group.assignment);
    group.partitions_seen = partitions;
    group.generation += 1;
}

fn member_view(group: &Group, member_id: &str) -> Response {
    Response::Group(GroupAssignment {
        member_id: member_id.to_string(),
        generation: group.generation,
        assignment: group.assignment.get(member_id).cloned().unwrap_or_default(),
    })
}

pub fn join(
    state: &ShardState,
    name: String,
    member_id: String,
    topics: Vec<String>,
    session_timeout_ms: u32,
    strategy: String,
) -> Result<Response, ProtocolError> {
    validate_name(&name)?;
    if !(SESSION_TIMEOUT_MS_MIN..=SESSION_TIMEOUT_MS_MAX).contains(&session_timeout_ms) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidConfig,
            format!(
                "session_timeout_ms must be {SESSION_TIMEOUT_MS_MIN} to {SESSION_TIMEOUT_MS_MAX}"
            ),
        ));
    }
    let strategy = Strategy::parse(&strategy).ok_or_else(|| {
        ProtocolError::new(
            ErrorCode::InvalidConfig,
            format!("unknown assignment strategy {strategy:?}: range, round-robin or sticky"),
        )
    })?;
    if topics.is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::InvalidConfig,
            "a member subscribes to at least one topic",
        ));
    }
    let mut coordinator = state.coordinator.borrow_mut();
    check_room_for(&coordinator, &name)?;
    let group = coordinator.groups.entry(name.clone()).or_default();
    if group.client_members() > 0 {
        return Err(ProtocolError::new(
            ErrorCode::InconsistentGroupProtocol,
            format!("group {name:?} has members of the Kafka protocol"),
        ));
    }
    if !group.members.is_empty() && group.strategy.is_some_and(|used| used != strategy) {
        return Err(ProtocolError::new(
            ErrorCode::InvalidConfig,
            format!(
                "group {name:?} uses the {} strategy",
                group.strategy.map_or("", |s| s.name())
            ),
        ));
    }
    let member_id = if member_id.is_empty() {
        if group.members.len() >= MEMBERS_MAX {
            return Err(ProtocolError::new(
                ErrorCode::InvalidConfig,
                format!("group {name:?} has {MEMBERS_MAX} members already"),
            ));
        }
        group.members_ever += 1;
        format!(
            "{name}-{}-{:x}",
            group.members_ever,
            crate::storage::log::now_ms()
        )
    } else if group.members.contains_key(&member_id) {
        member_id
    } else {
        return Err(unknown_member(&name, &member_id));
    };
    group.strategy = Some(strategy);
    let member = Member {
        client_id: String::new(),
        topics: topics.into_iter().collect(),
        session_timeout: Duration::from_millis(u64::from(session_timeout_ms)),
        last_seen: Instant::now(),
    };
    group.members.insert(member_id.clone(), member);
    rebalance(state, group);
    tracing::debug!(group = %name, member = %member_id, generation = group.generation, "member joined");
    Ok(member_view(group, &member_id))
}

pub fn heartbeat(
    state: &ShardState,
    name: &str,
    member_id: &str,
) -> Result<Response, ProtocolError> {
    let mut coordinator = state.coordinator.borrow_mut();
    let group = coordinator
        .groups
        .get_mut(name)
        .ok_or_else(|| unknown_member(name, member_id))?;
    let member = group
        .members
        .get_mut(member_id)
        .ok_or_else(|| unknown_member(name, member_id))?;
    member.last_seen = Instant::now();
    // Topics created or deleted since the last assignment change what there is to divide.
    let now_seen = partition_counts(
        state,
        group.partitions_seen.keys().cloned().chain(
            group
                .members
                .values()
                .flat_map(|m| m.topics.iter().cloned()),
        ),
    );
    if now_seen != group.partitions_seen {
        rebalance(state, group);
    }
    Ok(member_view(group, member_id))
}

pub fn leave(state: &ShardState, name: &str, member_id: &str) -> Result<Response, ProtocolError> {
    let mut coordinator = state.coordinator.borrow_mut();
    let group = coordinator
        .groups
        .get_mut(name)
        .ok_or_else(|| unknown_member(name, member_id))?;
    group
        .members
        .remove(member_id)
        .ok_or_else(|| unknown_member(name, member_id))?;
    rebalance(state, group);
    Ok(Response::Done)
}

/// Removes members whose sessions expired and rebalances their groups. Runs periodically.
pub fn expire_sessions(state: &ShardState) {
    let mut coordinator = state.coordinator.borrow_mut();
    for (name, group) in coordinator.groups.iter_mut() {
        if let Some(kind) = group.client_assigned.as_mut() {
            let expired = client_assigned::expired(kind);
            if client_assigned::remove(kind, &expired) {
                tracing::info!(group = %name, members = ?expired, "sessions expired; rebalancing");
            }
        }
        let expired: Vec<String> = group
            .members
            .iter()
            .filter(|(_, m)| m.last_seen.elapsed() > m.session_timeout)
            .map(|(id, _)| id.clone())
            .collect();
        if expired.is_empty() {
            continue;
        }
        for member in &expired {
            group.members.remove(member);
            tracing::info!(group = %name, %member, "session expired; rebalancing");
        }
        rebalance(state, group);
    }
}

pub async fn commit(
    state: &ShardState,
    name: String,
    member_id: String,
    generation: u32,
    offsets: Vec<(String, u32, u64)>,
) -> Result<Response, ProtocolError> {
    commit_at(state, name, member_id, i64::from(generation), offsets).await
}

/// `commit` for either kind of group; with no member, for a group without members.
pub async fn commit_at(
    state: &ShardState,
    name: String,
    member_id: String,
    generation: i64,
    offsets: Vec<(String, u32, u64)>,
) -> Result<Response, ProtocolError> {
    validate_name(&name)?;
    if offsets.len() > COMMIT_OFFSETS_MAX {
        return Err(ProtocolError::new(
            ErrorCode::InvalidConfig,
            format!("at most {COMMIT_OFFSETS_MAX} offsets per commit"),
        ));
    }
    {
        let coordinator = state.coordinator.borrow();
        check_room_for(&coordinator, &name)?;
        let group = coordinator.groups.get(&name);
        let members = group.map_or(0, |group| group.members.len() + group.client_members());
        let client_assigned = group.and_then(|group| {
            group
                .client_assigned
                .as_ref()
                .map(|kind| (group.generation, kind))
        });
        if let (false, Some((current, kind))) = (member_id.is_empty(), client_assigned) {
            if !kind.members.contains_key(&member_id) {
                return Err(unknown_member(&name, &member_id));
            }
            if generation != i64::from(current) {
                return Err(ProtocolError::new(
                    ErrorCode::IllegalGeneration,
                    format!("generation {generation} is over: group {name:?} is at {current}"),
                ));
            }
            // As Kafka's coordinator: a member of the current generation may commit while the
            // group prepares a rebalance (clients commit in their revoke callback, before they
            // rejoin; refusing it would deliver everything since their last commit again), but
            // not while it completes one: the generation it would commit for is already over.
            if kind.phase == Phase::Syncing {
                return Err(ProtocolError::new(
                    ErrorCode::RebalanceInProgress,
                    "the group is completing a rebalance: sync, then commit",
                ));
            }
        } else if member_id.is_empty() {
            if members > 0 {
                return Err(ProtocolError::new(
                    ErrorCode::GroupNotEmpty,
                    format!(
                        "group {name:?} has {members} active member(s): commit as a member, or stop them first"
                    ),
                ));
            }
        } else {
            let group = group.ok_or_else(|| unknown_member(&name, &member_id))?;
            if !group.members.contains_key(&member_id) {
                return Err(unknown_member(&name, &member_id));
            }
            if generation != i64::from(group.generation) {
                return Err(ProtocolError::new(
                    ErrorCode::IllegalGeneration,
                    format!(
                        "generation {generation} is over: group {name:?} is at {}; heartbeat to learn the new assignment",
                        group.generation
                    ),
                ));
            }
        }
    }
    let entries: Vec<(Vec<u8>, Option<u64>)> = offsets
        .iter()
        .map(|(topic, partition, offset)| (record_key(&name, topic, *partition), Some(*offset)))
        .collect();
    append(state, &name, entries).await?;
    let mut coordinator = state.coordinator.borrow_mut();
    let group = coordinator.groups.entry(name).or_default();
    for (topic, partition, offset) in offsets {
        group.committed.insert((topic, partition), offset);
    }
    Ok(Response::Done)
}

/// Appends `entries` durably to the group's offsets-log partition.
async fn append(
    state: &ShardState,
    group: &str,
    entries: Vec<(Vec<u8>, Option<u64>)>,
) -> Result<(), ProtocolError> {
    if entries.is_empty() {
        return Ok(());
    }
    let (partition, _) = coordinator_of(group, state.shards());
    let log = state
        .coordinator
        .borrow()
        .logs
        .get(&partition)
        .cloned()
        .ok_or_else(shutting_down)?;
    log.append(offsets_batch(&entries), AckLevel::Fsynced)
        .await?;
    Ok(())
}

pub fn fetch_offsets(state: &ShardState, name: &str, partitions: Vec<(String, u32)>) -> Response {
    let coordinator = state.coordinator.borrow();
    let committed = coordinator.groups.get(name).map(|group| &group.committed);
    let offsets = match committed {
        None => Vec::new(),
        Some(committed) if partitions.is_empty() => committed
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect(),
        Some(committed) => partitions
            .into_iter()
            .filter_map(|(t, p)| committed.get(&(t.clone(), p)).map(|o| (t, p, *o)))
            .collect(),
    };
    Response::Offsets(offsets)
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

pub fn describe(state: &ShardState, name: &str) -> Result<Response, ProtocolError> {
    let coordinator = state.coordinator.borrow();
    let group = coordinator.groups.get(name).ok_or_else(|| {
        ProtocolError::new(ErrorCode::UnknownGroup, format!("unknown group {name:?}"))
    })?;
    Ok(Response::GroupDescription(GroupDescription {
        summary: group.summary(name),
        strategy: match &group.client_assigned {
            Some(kind) if !kind.members.is_empty() => format!(
                "{} (client-assigned, {})",
                kind.protocol_name, kind.protocol_type
            ),
            _ => group.strategy.map_or("none", |s| s.name()).to_string(),
        },
        members: group
            .members
            .iter()
            .map(|(id, member)| {
                (
                    id.clone(),
                    member.client_id.clone(),
                    group.assignment.get(id).cloned().unwrap_or_default(),
                )
            })
            .chain(group.client_assigned.iter().flat_map(|kind| {
                kind.members
                    .iter()
                    .map(|(id, m)| (id.clone(), m.client_id.clone(), Vec::new()))
            }))
            .collect(),
        offsets: group
            .committed
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect(),
    }))
}

pub async fn delete(state: &ShardState, name: String) -> Result<Response, ProtocolError> {
    let tombstones = {
        let coordinator = state.coordinator.borrow();
        let group = coordinator.groups.get(&name).ok_or_else(|| {
            ProtocolError::new(ErrorCode::UnknownGroup, format!("unknown group {name:?}"))
        })?;
        if group.members.len() + group.client_members() > 0 {
            return Err(ProtocolError::new(
                ErrorCode::GroupNotEmpty,
                format!(
                    "group {name:?} has {} active member(s)",
                    group.members.len() + group.client_members()
                ),
            ));
        }
        group
            .committed
            .keys()
            .map(|(topic, partition)| (record_key(&name, topic, *partition), None))
            .collect()
    };
    append(state, &name, tombstones).await?;
    state.coordinator.borrow_mut().groups.remove(&name);
    crate::metrics::retire("group", &name);
    Ok(Response::Done)
}

/// Periodically expires sessions (every 100 ms) and publishes each group's committed offsets and
/// lag (every `group_lag_interval_ms`), until the shard stops.
pub async fn run_background(state: Rc<ShardState>) {
    let lag_every = Duration::from_millis(state.config.group_lag_interval_ms);
    let mut last_lag = Instant::now();
    while state
        .lifecycle
        .unless_stopping(runtime::sleep(Duration::from_millis(100)))
        .await
        .is_some()
    {
        expire_sessions(&state);
        if last_lag.elapsed() >= lag_every {
            last_lag = Instant::now();
            publish_lag(&state).await;
        }
    }
}

async fn publish_lag(state: &Rc<ShardState>) {
    let committed: Vec<(String, String, u32, u64)> = {
        let coordinator = state.coordinator.borrow();
        coordinator
            .groups
            .iter()
            .flat_map(|(name, group)| {
                group
                    .committed
                    .iter()
                    .map(move |((t, p), o)| (name.clone(), t.clone(), *p, *o))
            })
            .collect()
    };
    let mut revived = std::collections::BTreeSet::new();
    for (group, topic, partition, offset) in committed {
        // A group of a deleted one's name commits again: its series are served again.
        if revived.insert(group.clone()) {
            crate::metrics::revive("group", &group);
        }
        let Ok(Response::ListOffsets { high_watermark, .. }) =
            crate::broker::list_offsets_anywhere(state, topic.clone(), partition, OffsetSpec::Latest).await
        else {
            continue;
        };
        let labels = [
            ("group", group),
            ("topic", topic),
            ("partition", partition.to_string()),
        ];
        metrics::gauge!("ringmq_group_committed_offset", &labels).set(offset as f64);
        metrics::gauge!("ringmq_group_lag", &labels)
            .set(high_watermark.saturating_sub(offset) as f64);
    }
}

/// A group as Kafka's ListGroups/DescribeGroups show it.
pub struct KafkaView {
    pub name: String,
    /// Kafka's state names: Empty, PreparingRebalance, CompletingRebalance, Stable.
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_name: String,
    /// (member id, client id, metadata, assignment)
    pub members: Vec<(String, String, bytes::Bytes, bytes::Bytes)>,
}

fn kafka_view(name: &str, group: &Group) -> KafkaView {
    let (protocol_type, protocol_name, members) = match &group.client_assigned {
        Some(kind) => (
            kind.protocol_type.clone(),
            kind.protocol_name.clone(),
            kind.members
                .iter()
                .map(|(id, m)| {
                    let metadata = m
                        .protocols
                        .iter()
                        .find(|(n, _)| *n == kind.protocol_name)
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default();
                    (
                        id.clone(),
                        m.client_id.clone(),
                        metadata,
                        m.assignment.clone(),
                    )
                })
                .collect(),
        ),
        // ringmq's own (broker-assigned) groups show their members without Kafka metadata.
        None => (
            "ringmq".to_string(),
            group.strategy.map_or("", |s| s.name()).to_string(),
            group
                .members
                .keys()
                .map(|id| {
                    (
                        id.clone(),
                        String::new(),
                        bytes::Bytes::new(),
                        bytes::Bytes::new(),
                    )
                })
                .collect(),
        ),
    };
    let state = match group.state() {
        "preparing-rebalance" => "PreparingRebalance",
        "completing-rebalance" => "CompletingRebalance",
        "stable" => "Stable",
        _ => "Empty",
    };
    KafkaView {
        name: name.to_string(),
        state,
        protocol_type,
        protocol_name,
        members,
    }
}

/// Every group this shard coordinates, as Kafka shows them.
pub fn kafka_list(state: &ShardState) -> Vec<KafkaView> {
    state
        .coordinator
        .borrow()
        .groups
        .iter()
        .map(|(name, group)| kafka_view(name, group))
        .collect()
}

/// One group as Kafka shows it (Dead, with no members, when unknown).
pub fn kafka_describe(state: &ShardState, name: &str) -> KafkaView {
    match state.coordinator.borrow().groups.get(name) {
        Some(group) => kafka_view(name, group),
        None => KafkaView {
            name: name.to_string(),
            state: "Dead",
            protocol_type: String::new(),
            protocol_name: String::new(),
            members: Vec::new(),
        },
    }
}
