//! The arguments and results of the service's operations: plain data, no wire format. The
//! protocol adapters build the arguments from their requests and render the results into their
//! responses.

use bytes::{Bytes, BytesMut};

/// How far an append must get before it is acknowledged. The storage engine's enum, shared by
/// every layer: it names a durability level, not anything of a wire.
pub use crate::storage::AckLevel;

/// Which partition a produce goes to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionChoice {
    /// This partition.
    Index(u32),
    /// The partition the key goes to by the broker's `key_partitioner` (murmur2 unless set).
    ByKey(Bytes),
}

/// One append of record batches to one partition.
#[derive(Debug)]
pub struct Produce {
    pub topic: String,
    pub partition: PartitionChoice,
    pub acks: AckLevel,
    /// Whole Kafka v2 record batches, validated by the owner before they are stored.
    pub records: BytesMut,
}

/// What an acknowledged produce was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Produced {
    pub partition: u32,
    pub base_offset: u64,
    pub last_offset: u64,
    pub log_start_offset: u64,
    /// The broker's timestamp, when the topic stamps LogAppendTime.
    pub log_append_time_ms: Option<i64>,
}

/// One read of one partition, waiting up to `max_wait_ms` for `min_bytes`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetch {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    /// At most this many bytes of batches (the first batch is whole even when larger).
    pub max_bytes: u32,
    pub min_bytes: u32,
    pub max_wait_ms: u32,
}

/// Whole record batches read from a partition, as stored.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    pub high_watermark: u64,
    pub log_start_offset: u64,
    pub records: Vec<Bytes>,
}

impl Fetched {
    pub fn size_bytes(&self) -> usize {
        self.records.iter().map(Bytes::len).sum()
    }
}

/// Where ListOffsets looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// The first record whose timestamp is at or after this (ms since the epoch).
    AtOrAfter(i64),
    /// The record with the largest timestamp, the first of them if several share it (Kafka's
    /// MAX_TIMESTAMP, KIP-734).
    MaxTimestamp,
}

/// A partition's offsets, as ListOffsets answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListedOffset {
    /// None when no record is at or after the timestamp asked for (or, for the largest
    /// timestamp, when the partition holds no record).
    pub offset: Option<u64>,
    /// The found record's timestamp, for a lookup by time; None for the start and the end, which
    /// name no record (Kafka answers -1 for them).
    pub timestamp_ms: Option<i64>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

/// A topic to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    /// Settings that differ from the broker's topic defaults, by their Kafka names.
    pub configs: Vec<(String, String)>,
}

/// A topic as the broker describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Kafka's topic id (a UUID's 16 bytes): stable across restarts, new for a re-created topic.
    pub id: [u8; 16],
    pub partitions: u32,
    /// Every setting, by its Kafka name.
    pub configs: Vec<(String, String)>,
}

/// Where DeleteRecords moves a partition's start to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordsBefore {
    /// The high watermark: every record there is now goes.
    HighWatermark,
    /// This offset (past the high watermark: `OffsetOutOfRange`; at or before the start:
    /// nothing changes).
    Offset(u64),
}
