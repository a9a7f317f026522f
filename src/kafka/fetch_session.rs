//! Kafka's incremental fetch sessions (KIP-227). A consumer of thousands of partitions would
//! otherwise send every partition in every fetch and get every partition back, data or not. In
//! a session the broker remembers the partitions and their fetch positions: the client sends
//! only what changed (new positions, partitions added or forgotten) and the broker answers only
//! the partitions with something new (records, a moved high watermark or log start, an error).
//!
//! A request says what it wants with (session id, epoch): (0, 0) a full fetch that opens a
//! session; (0, -1) a full fetch without one; (id, n > 0) the n-th incremental fetch of session
//! `id`; (id, 0) closes `id` and opens another; (id, -1) closes `id`. A client whose session is
//! gone (evicted, or held by another shard after a reconnect) gets FETCH_SESSION_ID_NOT_FOUND
//! and starts again with a full fetch, as the protocol provides.
//!
//! Sessions live on the shard that served their first fetch; each shard's cache is bounded in
//! sessions (`kafka_fetch_sessions_max`, Kafka's `max.incremental.fetch.session.cache.slots`)
//! and in the partitions all of them hold (`kafka_fetch_session_partitions_max`). A session is
//! only evicted for a new one once idle for `SESSION_EVICTABLE_IDLE`, so a client opening
//! sessions in a loop cannot push out the consumers that use theirs.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::errors::{FETCH_SESSION_ID_NOT_FOUND, INVALID_FETCH_SESSION_EPOCH};

/// The epoch of a full fetch that opens a session, and of a session's first answer.
const INITIAL_EPOCH: i32 = 0;
/// The epoch of a fetch that closes its session (or asks for none).
const FINAL_EPOCH: i32 = -1;
/// A session idle this long may be evicted to make room for a new one (Kafka's minimum too).
const SESSION_EVICTABLE_IDLE: Duration = Duration::from_secs(120);

/// What the client last sent and what the broker last answered for one partition.
#[derive(Clone, Debug)]
struct Cached {
    fetch_offset: i64,
    partition_max_bytes: i32,
    /// What the last answer said (`i64::MIN` before any): a partition whose figures did not
    /// move and that has no records is left out of the next answer.
    high_watermark_sent: i64,
    log_start_offset_sent: i64,
}

impl Cached {
    fn new(partition: &FetchPartition) -> Cached {
        Cached {
            fetch_offset: partition.fetch_offset,
            partition_max_bytes: partition.partition_max_bytes,
            high_watermark_sent: i64::MIN,
            log_start_offset_sent: i64::MIN,
        }
    }
}

struct Session {
    /// The epoch the next incremental fetch must carry.
    next_epoch: i32,
    partitions: BTreeMap<(String, i32), Cached>,
    last_used: Instant,
}

/// What `FetchSessions::open` makes of a request.
pub enum Opened {
    /// Serve the request as it is; answer with session id 0.
    Sessionless,
    /// Serve the request as it is, then `create` a session from it and its answer.
    New,
    /// Serve `expanded` (every partition of the session), then `trim` the answer.
    Incremental {
        id: i32,
        expanded: Box<FetchRequest>,
    },
    /// Answer with this top-level error and nothing else.
    Refused(i16),
}

/// One shard's fetch sessions.
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
    sessions_max: usize,
    /// Partitions all sessions hold together, and their limit.
    partitions_held: usize,
    partitions_max: usize,
    /// Ids are `serial * shards + shard`, so an id names the shard that holds it: a client that
    /// reconnected to another shard is told its session is not there, never handed another
    /// client's session that happens to share its number.
    shard: usize,
    shards: usize,
    serial: u32,
}

impl FetchSessions {
    pub fn new(shard: usize, shards: usize, sessions_max: usize, partitions_max: usize) -> Self {
        assert!(shard < shards);
        FetchSessions {
            sessions: HashMap::new(),
            sessions_max,
            partitions_held: 0,
            partitions_max,
            shard,
            shards,
            serial: 0,
        }
    }

    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    pub fn partitions_held(&self) -> usize {
        self.partitions_held
    }

    /// Reads the request's session fields, closing, checking or updating its session.
    pub fn open(&mut self, request: &FetchRequest) -> Opened {
        let (id, epoch) = (request.session_id, request.session_epoch);
        if epoch == INITIAL_EPOCH || epoch == FINAL_EPOCH {
            if id != 0 {
                self.close(id);
            }
            return if epoch == INITIAL_EPOCH && self.sessions_max > 0 {
                Opened::New
            } else {
                Opened::Sessionless
            };
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return Opened::Refused(FETCH_SESSION_ID_NOT_FOUND);
        };
        if epoch != session.next_epoch {
            return Opened::Refused(INVALID_FETCH_SESSION_EPOCH);
        }
        let before = session.partitions.len();
        for topic in &request.topics {
            for partition in &topic.partitions {
                let key = (topic.topic.0.to_string(), partition.partition);
                match session.partitions.get_mut(&key) {
                    Some(cached) => {
                        cached.fetch_offset = partition.fetch_offset;
                        cached.partition_max_bytes = partition.partition_max_bytes;
                    }
                    None => {
                        session.partitions.insert(key, Cached::new(partition));
                    }
                }
            }
        }
        for topic in &request.forgotten_topics_data {
            for partition in &topic.partitions {
                session
                    .partitions
                    .remove(&(topic.topic.0.to_string(), *partition));
            }
        }
        let after = session.partitions.len();
        self.partitions_held = self.partitions_held.saturating_sub(before) + after;
        if self.partitions_held > self.partitions_max {
            // Grown past what this shard holds for sessions: the client starts over with a
            // full fetch, which then goes without a session.
            self.close(id);
            return Opened::Refused(FETCH_SESSION_ID_NOT_FOUND);
        }
        let Some(session) = self.sessions.get_mut(&id) else {
            return Opened::Refused(FETCH_SESSION_ID_NOT_FOUND);
        };
        session.next_epoch = next_epoch(epoch);
        session.last_used = Instant::now();
        let expanded = Box::new(expand(request, &session.partitions));
        Opened::Incremental { id, expanded }
    }

    /// Opens a session holding the partitions of `request` (a full fetch) with what `response`
    /// said of them; returns its id, or 0 when there is no room.
    pub fn create(&mut self, request: &FetchRequest, response: &FetchResponse) -> i32 {
        let mut partitions = BTreeMap::new();
        for topic in &request.topics {
            for partition in &topic.partitions {
                partitions.insert(
                    (topic.topic.0.to_string(), partition.partition),
                    Cached::new(partition),
                );
            }
        }
        remember_answer(&mut partitions, response);
        let wanted = partitions.len();
        if wanted == 0 || !self.make_room(wanted) {
            return 0;
        }
        let id = self.fresh_id();
        self.partitions_held += wanted;
        self.sessions.insert(
            id,
            Session {
                next_epoch: next_epoch(INITIAL_EPOCH),
                partitions,
                last_used: Instant::now(),
            },
        );
        id
    }

    /// Leaves out of an incremental answer the partitions with nothing new, and remembers what
    /// the answer says of the others.
    pub fn trim(&mut self, id: i32, response: &mut FetchResponse) {
        let Some(session) = self.sessions.get_mut(&id) else {
            // Closed while the fetch ran (a newer request of its client): answer it whole.
            return;
        };
        for topic in &mut response.responses {
            let name = topic.topic.0.to_string();
            topic.partitions.retain(|data| {
                let Some(cached) = session
                    .partitions
                    .get_mut(&(name.clone(), data.partition_index))
                else {
                    return true;
                };
                let has_records = data.records.as_ref().is_some_and(|r| !r.is_empty());
                let moved = data.high_watermark != cached.high_watermark_sent
                    || data.log_start_offset != cached.log_start_offset_sent;
                cached.high_watermark_sent = data.high_watermark;
                cached.log_start_offset_sent = data.log_start_offset;
                has_records || moved || data.error_code != 0
            });
        }
        response
            .responses
            .retain(|topic| !topic.partitions.is_empty());
    }

    fn close(&mut self, id: i32) {
        if let Some(session) = self.sessions.remove(&id) {
            self.partitions_held = self
                .partitions_held
                .saturating_sub(session.partitions.len());
        }
    }

    /// Evicts idle sessions, least recently used first, until a session of `partitions` fits.
    fn make_room(&mut self, partitions: usize) -> bool {
        if partitions > self.partitions_max {
            return false;
        }
        loop {
            let fits = self.sessions.len() < self.sessions_max
                && self.partitions_held + partitions <= self.partitions_max;
            if fits {
                return true;
            }
            let idle = self
                .sessions
                .iter()
                .filter(|(_, s)| s.last_used.elapsed() >= SESSION_EVICTABLE_IDLE)
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            match idle {
                Some(id) => {
                    self.close(id);
                    metrics::counter!("ringmq_kafka_fetch_session_evictions_total").increment(1);
                }
                None => return false,
            }
        }
    }

    fn fresh_id(&mut self) -> i32 {
        let per_shard = (i32::MAX as usize - self.shard) / self.shards;
        loop {
            // A hash of a serial and the time: ids are not guessable from one's own.
            self.serial = self.serial.wrapping_add(1);
            let mixed = xxhash_rust::xxh3::xxh3_64_with_seed(
                &self.serial.to_le_bytes(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |since| since.as_nanos() as u64),
            );
            let slot = (mixed as usize % per_shard.max(1)).max(1);
            let Ok(id) = i32::try_from(slot * self.shards + self.shard) else {
                continue;
            };
            if id > 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

/// The request with every partition of the session in place of the changes it carried.
fn expand(request: &FetchRequest, partitions: &BTreeMap<(String, i32), Cached>) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for ((topic, partition), cached) in partitions {
        let entry = FetchPartition::default()
            .with_partition(*partition)
            .with_fetch_offset(cached.fetch_offset)
            .with_partition_max_bytes(cached.partition_max_bytes);
        match topics.last_mut() {
            Some(last) if last.topic.0.as_str() == topic => last.partitions.push(entry),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.clone())))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    FetchRequest::default()
        .with_max_wait_ms(request.max_wait_ms)
        .with_min_bytes(request.min_bytes)
        .with_max_bytes(request.max_bytes)
        .with_isolation_level(request.isolation_level)
        .with_topics(topics)
}

fn remember_answer(partitions: &mut BTreeMap<(String, i32), Cached>, response: &FetchResponse) {
    for topic in &response.responses {
        let name = topic.topic.0.to_string();
        for data in &topic.partitions {
            if let Some(cached) = partitions.get_mut(&(name.clone(), data.partition_index)) {
                cached.high_watermark_sent = data.high_watermark;
                cached.log_start_offset_sent = data.log_start_offset;
            }
        }
    }
}

/// Registers the help text of the fetch-session metrics.
pub(crate) fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "ringmq_kafka_fetch_sessions",
        "Kafka fetch sessions (KIP-227) the shard holds (bounded by kafka_fetch_sessions_max)."
    );
    describe_gauge!(
        "ringmq_kafka_fetch_session_partitions",
        "Partitions all fetch sessions of the shard hold (bounded by kafka_fetch_session_partitions_max)."
    );
    describe_counter!(
        "ringmq_kafka_fetch_session_evictions_total",
        "Idle fetch sessions evicted to make room for a new one."
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};

    fn full(partitions: i32) -> FetchRequest {
        let entries = (0..partitions)
            .map(|p| FetchPartition::default().with_partition(p))
            .collect();
        FetchRequest::default().with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(entries),
        ])
    }

    fn answer(partitions: i32) -> FetchResponse {
        let data = (0..partitions)
            .map(|p| PartitionData::default().with_partition_index(p))
            .collect();
        FetchResponse::default().with_responses(vec![
            FetchableTopicResponse::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(data),
        ])
    }

    #[test]
    fn ids_name_their_shard_and_the_partition_count_is_kept() {
        let mut sessions = FetchSessions::new(1, 3, 100, 1000);
        let mut ids = std::collections::HashSet::new();
        for _ in 0..50 {
            let id = sessions.create(&full(4), &answer(4));
            assert!(id > 0 && id % 3 == 1, "{id}");
            assert!(ids.insert(id), "{id} handed out twice");
        }
        assert_eq!((sessions.sessions(), sessions.partitions_held()), (50, 200));
        let id = *ids.iter().next().unwrap();
        // Forgetting two partitions of a session gives their room back.
        let mut forget = FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(1);
        forget.forgotten_topics_data = vec![
            kafka_protocol::messages::fetch_request::ForgottenTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![0, 1]),
        ];
        assert!(matches!(sessions.open(&forget), Opened::Incremental { .. }));
        assert_eq!(sessions.partitions_held(), 198);
        // Closing gives back the rest.
        let close = FetchRequest::default()
            .with_session_id(id)
            .with_session_epoch(-1);
        assert!(matches!(sessions.open(&close), Opened::Sessionless));
        assert_eq!((sessions.sessions(), sessions.partitions_held()), (49, 196));
    }
}
