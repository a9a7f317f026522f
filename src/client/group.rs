//! A consumer in a group: the broker assigns it partitions, it keeps them with heartbeats (sent
//! from `poll`, so a consumer that stops polling for its session timeout loses them), resumes
//! each partition from the group's committed offset, and commits its progress, automatically
//! every `auto_commit_interval_ms` if asked.
//!
//! Delivery is at-least-once: records after the last commit of a partition that moves to
//! another member (or of a member that dies) are read again by the next owner.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::long_polls::LongPolls;
use super::{Client, ClientError, Result};
use crate::batch::Record;
use crate::protocol::{ErrorCode, FetchRequest, FetchResponse, OffsetSpec, ProtocolError};

/// Where to start in a partition the group has never committed (`reset`), or whose committed
/// offset is outside the log (`out_of_range`: the topic was deleted and re-created, or retention
/// removed the records).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetReset {
    /// The first record still stored.
    Earliest,
    /// Only records produced from now on.
    Latest,
    /// Refuse: the caller must commit or seek first.
    Error,
}

#[derive(Clone, Debug)]
/// How a `GroupConsumer` takes part in its group.
pub struct GroupConfig {
    /// The broker removes a member it has not heard from for this long.
    pub session_timeout_ms: u32,
    /// How often `poll` heartbeats (keep it well under the session timeout).
    pub heartbeat_interval_ms: u64,
    /// range, round-robin or sticky.
    pub strategy: String,
    /// Commit positions every `auto_commit_interval_ms` from `poll`, and at `close`.
    pub auto_commit: bool,
    /// How often automatic commits happen.
    pub auto_commit_interval_ms: u64,
    /// Where to start in partitions the group never committed.
    pub reset: OffsetReset,
    /// What to do when a position is outside the log; `Error` returns the broker's
    /// offset_out_of_range from `poll`.
    pub out_of_range: OffsetReset,
    /// Bytes asked for per partition per fetch.
    pub max_bytes: u32,
    /// The longest a poll waits for data (kept under the heartbeat interval).
    pub max_wait_ms: u32,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            session_timeout_ms: 10_000,
            heartbeat_interval_ms: 1_000,
            strategy: "sticky".into(),
            auto_commit: true,
            auto_commit_interval_ms: 1_000,
            reset: OffsetReset::Earliest,
            out_of_range: OffsetReset::Error,
            max_bytes: 1 << 20,
            max_wait_ms: 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One record as a `GroupConsumer` returns it.
pub struct GroupRecord {
    /// The topic it was read from.
    pub topic: String,
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// Its key, value, timestamp and headers.
    pub record: Record,
}

struct Position {
    next_offset: u64,
    committed: Option<u64>,
}

/// A member of a consumer group: reads the partitions the broker assigns it and commits its
/// progress (at-least-once).
pub struct GroupConsumer {
    client: Client,
    group: String,
    topics: Vec<String>,
    config: GroupConfig,
    member_id: String,
    generation: u32,
    positions: BTreeMap<(String, u32), Position>,
    polls: LongPolls<(String, u32)>,
    last_heartbeat: Instant,
    last_commit: Instant,
}

impl GroupConsumer {
    /// Joins `group` subscribed to `topics` and takes the partitions the broker assigns.
    pub async fn join(
        client: Client,
        group: &str,
        topics: &[&str],
        config: GroupConfig,
    ) -> Result<GroupConsumer> {
        let mut consumer = GroupConsumer {
            client,
            group: group.to_string(),
            topics: topics.iter().map(|topic| topic.to_string()).collect(),
            config,
            member_id: String::new(),
            generation: 0,
            positions: BTreeMap::new(),
            polls: LongPolls::new(),
            last_heartbeat: Instant::now(),
            last_commit: Instant::now(),
        };
        consumer.rejoin().await?;
        Ok(consumer)
    }

    async fn rejoin(&mut self) -> Result<()> {
        let joined = self
            .client
            .join_group(
                &self.group,
                "",
                &self.topics,
                self.config.session_timeout_ms,
                &self.config.strategy,
            )
            .await?;
        self.member_id = joined.member_id;
        self.adopt(joined.generation, joined.assignment).await
    }

    /// Carries on over a new connection (after the broker restarted, say): joins again and
    /// keeps the positions of the partitions it is given back, so it resumes where it was
    /// rather than at the last commit.
    pub async fn reconnect(&mut self, client: Client) -> Result<()> {
        self.client = client;
        self.rejoin().await?;
        self.commit().await
    }

    /// The id the broker gave this member.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// The group generation this member's assignment belongs to.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The partitions this member owns now.
    pub fn assignment(&self) -> Vec<(String, u32)> {
        self.positions.keys().cloned().collect()
    }

    /// The next offset this member reads in an assigned partition.
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        self.positions
            .get(&(topic.to_string(), partition))
            .map(|position| position.next_offset)
    }

    /// Moves the position in an assigned partition (replay or skip).
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) {
        let key = (topic.to_string(), partition);
        if let Some(position) = self.positions.get_mut(&key) {
            if position.next_offset != offset {
                self.polls.forget(&key);
            }
            position.next_offset = offset;
        }
    }

    /// Moves the position in an assigned partition to the first record at or after
    /// `timestamp_ms` (to the end where there is none). Returns the new position.
    pub async fn seek_to_timestamp(
        &mut self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<u64> {
        let (offset, end, _) = self
            .client
            .list_offsets(topic, partition, OffsetSpec::Timestamp(timestamp_ms))
            .await?;
        let target = offset.unwrap_or(end);
        self.seek(topic, partition, target);
        Ok(target)
    }

    /// Takes a new assignment: keeps positions of partitions still owned, starts new ones from
    /// the group's committed offset (or the reset policy).
    async fn adopt(&mut self, generation: u32, assignment: Vec<(String, u32)>) -> Result<()> {
        self.generation = generation;
        let mut kept = BTreeMap::new();
        let mut fresh = Vec::new();
        for partition in assignment {
            match self.positions.remove(&partition) {
                Some(position) => {
                    kept.insert(partition, position);
                }
                None => {
                    // Given back after a while: its position may have moved at another member.
                    self.polls.forget(&partition);
                    fresh.push(partition)
                }
            }
        }
        if !fresh.is_empty() {
            let committed: BTreeMap<(String, u32), u64> = self
                .client
                .fetch_offsets(&self.group, fresh.clone())
                .await?
                .into_iter()
                .map(|(topic, partition, offset)| ((topic, partition), offset))
                .collect();
            for (topic, partition) in fresh {
                let next_offset = match committed.get(&(topic.clone(), partition)) {
                    Some(offset) => *offset,
                    None => self.reset_offset(&topic, partition).await?,
                };
                let committed = committed.get(&(topic.clone(), partition)).copied();
                kept.insert(
                    (topic, partition),
                    Position {
                        next_offset,
                        committed,
                    },
                );
            }
        }
        // What is left in `positions` was revoked: its fetches are not wanted.
        for key in self.positions.keys() {
            self.polls.forget(key);
        }
        self.positions = kept;
        Ok(())
    }

    /// Moves a position that fell outside the log by the `out_of_range` policy; returns the
    /// fetch's error unchanged under `Error` or for any other error.
    async fn recover(&mut self, key: (String, u32), error: ClientError) -> Result<()> {
        if error.code() != Some(ErrorCode::OffsetOutOfRange) {
            return Err(error);
        }
        let spec = match self.config.out_of_range {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::Error => return Err(error),
        };
        let (offset, end, _) = self.client.list_offsets(&key.0, key.1, spec).await?;
        let target = offset.unwrap_or(end);
        tracing::warn!(
            topic = %key.0, partition = key.1, to = target,
            "position out of range; reset by policy"
        );
        self.seek(&key.0, key.1, target);
        Ok(())
    }

    async fn reset_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        let spec = match self.config.reset {
            OffsetReset::Earliest => OffsetSpec::Earliest,
            OffsetReset::Latest => OffsetSpec::Latest,
            OffsetReset::Error => {
                return Err(ClientError::Server(ProtocolError::new(
                    ErrorCode::OffsetOutOfRange,
                    format!(
                        "group {:?} has no committed offset for {topic}/{partition} and the reset policy is error",
                        self.group
                    ),
                )));
            }
        };
        let (offset, high_watermark, _) = self.client.list_offsets(topic, partition, spec).await?;
        Ok(offset.unwrap_or(high_watermark))
    }

    /// Heartbeats; on a new generation, takes the new assignment; after an expired session,
    /// joins again as a new member.
    async fn heartbeat(&mut self) -> Result<()> {
        self.last_heartbeat = Instant::now();
        match self
            .client
            .heartbeat(&self.group, &self.member_id, self.generation)
            .await
        {
            Ok(view) if view.generation != self.generation => {
                self.adopt(view.generation, view.assignment).await
            }
            Ok(_) => Ok(()),
            Err(ClientError::Server(error)) if error.code == ErrorCode::UnknownMember => {
                self.positions.clear();
                self.polls.clear();
                self.rejoin().await
            }
            Err(error) => Err(error),
        }
    }

    /// Commits the position of every owned partition that moved since its last commit.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: Vec<(String, u32, u64)> = self
            .positions
            .iter()
            .filter(|(_, position)| position.committed != Some(position.next_offset))
            .map(|((topic, partition), position)| (topic.clone(), *partition, position.next_offset))
            .collect();
        self.last_commit = Instant::now();
        if offsets.is_empty() {
            return Ok(());
        }
        self.client
            .commit_offsets(
                &self.group,
                &self.member_id,
                self.generation,
                offsets.clone(),
            )
            .await?;
        for (topic, partition, offset) in offsets {
            if let Some(position) = self.positions.get_mut(&(topic, partition)) {
                position.committed = Some(offset);
            }
        }
        Ok(())
    }

    /// Heartbeats and auto-commits when due, then returns the records available in the owned
    /// partitions (waiting up to `max_wait_ms` when there are none).
    pub async fn poll(&mut self) -> Result<Vec<GroupRecord>> {
        if self.config.auto_commit
            && self.last_commit.elapsed()
                >= Duration::from_millis(self.config.auto_commit_interval_ms)
        {
            match self.commit().await {
                Err(ClientError::Server(error))
                    if matches!(
                        error.code,
                        ErrorCode::IllegalGeneration | ErrorCode::UnknownMember
                    ) =>
                {
                    self.heartbeat().await?
                }
                other => other?,
            }
        }
        if self.last_heartbeat.elapsed() >= Duration::from_millis(self.config.heartbeat_interval_ms)
        {
            self.heartbeat().await?;
        }
        let partitions: Vec<(String, u32)> = self.positions.keys().cloned().collect();
        let wait_ms = u64::from(self.config.max_wait_ms).min(self.config.heartbeat_interval_ms);
        if partitions.is_empty() {
            crate::runtime::sleep(Duration::from_millis(wait_ms)).await;
            return Ok(Vec::new());
        }
        // Long polls stay out from one poll to the next (see `long_polls`).
        for key in partitions {
            if !self.polls.is_out(&key) {
                let request = self.request(&key, wait_ms as u32);
                self.polls.start(key, &self.client, request);
            }
        }
        let Some(first) = self.polls.next().await else {
            return Ok(Vec::new());
        };
        let mut answers = vec![first];
        answers.extend(self.polls.ready());
        let mut records = Vec::new();
        let mut failed = None;
        for answer in answers {
            match answer.response {
                Ok(response) => records.extend(self.take(answer.key, answer.offset, response)?),
                Err(error) => failed = failed.or(Some((answer.key, error))),
            }
        }
        // Records taken have moved their positions and must reach the caller before anything
        // commits them; a failed partition is fetched again at the next poll.
        if let Some((key, error)) = failed
            && records.is_empty()
        {
            self.recover(key, error).await?;
        }
        Ok(records)
    }

    fn request(&self, (topic, partition): &(String, u32), max_wait_ms: u32) -> FetchRequest {
        FetchRequest {
            topic: topic.clone(),
            partition: *partition,
            offset: self.positions[&(topic.clone(), *partition)].next_offset,
            max_bytes: self.config.max_bytes,
            min_bytes: 1,
            max_wait_ms,
        }
    }

    fn take(
        &mut self,
        key: (String, u32),
        offset: u64,
        response: FetchResponse,
    ) -> Result<Vec<GroupRecord>> {
        // The assignment or the position may have changed while the fetch was out.
        let Some(position) = self.positions.get_mut(&key) else {
            return Ok(Vec::new());
        };
        if position.next_offset != offset {
            return Ok(Vec::new());
        }
        let out = super::consumer::take_records(&response, &mut position.next_offset)?
            .into_iter()
            .map(|(offset, record)| GroupRecord {
                topic: key.0.clone(),
                partition: key.1,
                offset,
                record,
            })
            .collect();
        Ok(out)
    }

    /// Commits (with auto-commit) and leaves the group, so the others take over at once.
    pub async fn close(mut self) -> Result<()> {
        if self.config.auto_commit {
            let _ = self.commit().await;
        }
        self.client.leave_group(&self.group, &self.member_id).await
    }
}

/// Where `reset_offsets` moves a group's committed offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetTo {
    /// The first record still stored.
    Earliest,
    /// The end of the log: nothing stored now is read again.
    Latest,
    /// This offset (kept inside the log).
    Offset(u64),
    /// N records after the log start (kept inside the log).
    FromStart(u64),
    /// N records before the end (kept inside the log).
    FromEnd(u64),
    /// The first record at or after this time (ms); the end where there is none.
    Timestamp(i64),
    /// The committed offset (or the start, where none) moved by N, kept inside the log.
    Shift(i64),
}

/// Sets the committed offsets of every partition of `topic` for `group`, which must have no
/// active members. Returns what was committed.
pub async fn reset_offsets(
    client: &Client,
    group: &str,
    topic: &str,
    to: ResetTo,
) -> Result<Vec<(String, u32, u64)>> {
    let offsets = plan_reset_offsets(client, group, topic, to).await?;
    client.commit_offsets(group, "", 0, offsets.clone()).await?;
    Ok(offsets)
}

/// What `reset_offsets` would commit, committing nothing (a dry run).
pub async fn plan_reset_offsets(
    client: &Client,
    group: &str,
    topic: &str,
    to: ResetTo,
) -> Result<Vec<(String, u32, u64)>> {
    let metadata = client.metadata(&[topic]).await?;
    let partitions = metadata.first().map_or(0, |topic| topic.partitions);
    let committed: BTreeMap<u32, u64> = client
        .fetch_offsets(group, Vec::new())
        .await?
        .into_iter()
        .filter(|(t, _, _)| t == topic)
        .map(|(_, partition, offset)| (partition, offset))
        .collect();
    let mut offsets = Vec::new();
    for partition in 0..partitions {
        let (_, end, start) = client
            .list_offsets(topic, partition, OffsetSpec::Latest)
            .await?;
        let target = match to {
            ResetTo::Earliest => start,
            ResetTo::Latest => end,
            ResetTo::Offset(offset) => offset.clamp(start, end),
            ResetTo::FromStart(n) => start.saturating_add(n).min(end),
            ResetTo::FromEnd(n) => end.saturating_sub(n).max(start),
            ResetTo::Timestamp(timestamp) => client
                .list_offsets(topic, partition, OffsetSpec::Timestamp(timestamp))
                .await?
                .0
                .unwrap_or(end),
            ResetTo::Shift(by) => {
                let from = committed.get(&partition).copied().unwrap_or(start) as i64;
                (from + by).clamp(start as i64, end as i64) as u64
            }
        };
        offsets.push((topic.to_string(), partition, target));
    }
    Ok(offsets)
}
