//! The limits and policies of one partition log. Every bound the log enforces lives here, with its
//! unit in its name, so that config files, `--help` and metrics all speak the same words.

use serde::{Deserialize, Serialize};

use crate::batch::{AppendLimits, Limits};

/// How far an append must get before it is acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AckLevel {
    /// Acknowledged once offsets are assigned; lost if the write then fails (at-most-once).
    None,
    /// Acknowledged once the OS has the bytes: survives a process crash, not a power cut.
    Written,
    /// Acknowledged after an fdatasync covering it: survives a power cut.
    #[default]
    Fsynced,
}

impl AckLevel {
    pub fn parse(name: &str) -> Option<AckLevel> {
        match name {
            "none" => Some(AckLevel::None),
            "written" => Some(AckLevel::Written),
            "fsynced" => Some(AckLevel::Fsynced),
            _ => None,
        }
    }
}

/// What retention does with a segment holding messages a queue group has not settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum QueueRetentionPolicy {
    /// Keep it (and every later one) until the groups have settled it: the partition may grow
    /// past its retention while a queue falls behind.
    #[default]
    Keep,
    /// Delete it as any other: its unsettled messages are lost to the groups (counted in
    /// `ringmq_queue_lost_total`).
    Drop,
}

/// Which timestamp a batch is indexed by: the producer's, or the broker's at append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A segment rolls when the next append would take it past this size.
    pub segment_bytes_max: u64,
    /// A segment rolls on the next append once its first batch is this old.
    pub segment_age_ms_max: u64,
    /// One sparse index entry per this many bytes of batches.
    pub index_interval_bytes: u64,
    /// Whole segments are deleted while the partition holds more than this (None: no limit).
    pub retention_bytes_max: Option<u64>,
    /// Whole segments whose newest timestamp is older than this are deleted (None: keep forever).
    pub retention_ms: Option<u64>,
    /// How often the background task looks for expired segments.
    pub retention_check_interval_ms: u64,
    /// Written but unsynced data is fdatasynced at least this often (None, the default: only when
    /// an append asks for `fsynced`, at segment rolls and at shutdown). Each such sync stalls the
    /// partition's appends for as long as it takes to flush what piled up: see bench/RESULTS.md.
    pub flush_interval_ms: Option<u64>,
    /// Writeback of written data is started every this many bytes (sync_file_range), so dirty
    /// pages never pile up and the fdatasyncs stay short: the periodic one, an `fsynced`
    /// append's, and the sealing one at a segment roll, which every append queued behind it
    /// waits for (0: leave it to the kernel; a roll then waited ~0.5 s at 100 MB/s, see
    /// bench/RESULTS.md).
    pub writeback_bytes: u64,
    /// Write segments with O_DIRECT (aligned writes that bypass the page cache; reads still go
    /// through it). Measured in bench/RESULTS.md.
    pub direct_io: bool,
    /// How long the flusher lingers to gather more appends into one write (0: write at once;
    /// appends still coalesce while the previous write is in flight).
    pub group_commit_window_us: u64,
    /// Largest single record batch accepted (Kafka's message.max.bytes).
    pub batch_bytes_max: usize,
    /// Largest single record accepted (checked in compressed batches too, once inflated).
    pub record_bytes_max: usize,
    /// What one append's compressed batches may inflate to, all together, when the broker checks
    /// their records. It bounds the CPU time one request can cost (the check streams, so memory
    /// is one record plus the codec's window); a larger batch is refused as too large.
    pub batch_decompressed_bytes_max: usize,
    /// A segment rolls before a batch whose last offset would lie more than this past the
    /// segment's base offset (the sparse index holds relative offsets; Kafka's bound is 2^31-1).
    pub segment_offsets_max: u64,
    /// Appends wait (backpressure) while this many bytes are staged but not yet written.
    pub pending_bytes_max: usize,
    /// Recent batches kept in memory so that tail readers never touch the disk.
    pub tail_cache_bytes_max: usize,
    /// Open read handles on sealed segments, per partition (the active segment's are extra).
    pub open_segment_files_max: usize,
    pub timestamp_type: TimestampType,
    /// Check every batch's CRC in sealed segments when the log opens (not only the data after
    /// the last index entry), so damage at rest is found and isolated at start.
    pub verify_on_start: bool,
    /// A record whose `x-dedup-id` header names an id appended to the partition within this
    /// many ms is dropped, its produce answered with the first copy's offset (0: off).
    pub dedup_window_ms: u64,
    /// Deduplication ids remembered per partition; past it the oldest are forgotten first.
    pub dedup_ids_max: usize,
    /// How much of the log's tail is read at open to rebuild the deduplication ids.
    pub dedup_scan_bytes_max: u64,
    /// Whether retention may delete segments holding messages a queue group has not settled.
    pub queue_retention_policy: QueueRetentionPolicy,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_age_ms_max: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_bytes_max: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_check_interval_ms: 30_000,
            flush_interval_ms: None,
            writeback_bytes: 8 << 20,
            direct_io: false,
            group_commit_window_us: 0,
            batch_bytes_max: 1 << 20,
            record_bytes_max: 1 << 20,
            // 64x the largest batch: past the ratio real data compresses by, so only bombs
            // meet it, and small enough that one request cannot hold a shard for long.
            batch_decompressed_bytes_max: 64 << 20,
            segment_offsets_max: SEGMENT_OFFSETS_LIMIT,
            pending_bytes_max: 16 << 20,
            tail_cache_bytes_max: 4 << 20,
            open_segment_files_max: 8,
            timestamp_type: TimestampType::CreateTime,
            verify_on_start: false,
            // SQS's five minutes.
            dedup_window_ms: 300_000,
            // Five minutes at 330 ids/s, about 10 MiB when full; only partitions whose records
            // carry ids ever hold any.
            dedup_ids_max: 100_000,
            dedup_scan_bytes_max: 64 << 20,
            queue_retention_policy: QueueRetentionPolicy::Keep,
        }
    }
}

/// Positions in the sparse index are u32, so a segment must stay well below 4 GiB.
pub const SEGMENT_BYTES_LIMIT: u64 = 2 << 30;
/// Relative offsets in a segment stay within Kafka's bound (a non-negative i32), well inside the
/// index's u32, so one batch (at most 2^31-1 records) always fits an empty segment.
pub const SEGMENT_OFFSETS_LIMIT: u64 = i32::MAX as u64;

impl LogConfig {
    pub fn batch_limits(&self) -> Limits {
        Limits {
            batch_bytes_max: self.batch_bytes_max,
            record_bytes_max: self.record_bytes_max,
        }
    }

    pub fn append_limits(&self) -> AppendLimits {
        AppendLimits {
            batch: self.batch_limits(),
            decompressed_bytes_max: self.batch_decompressed_bytes_max,
        }
    }

    /// Rejects settings the log cannot honour, with the reason.
    pub fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                self.segment_bytes_max >= 1024,
                "segment_bytes_max must be at least 1024",
            ),
            (
                self.segment_bytes_max <= SEGMENT_BYTES_LIMIT,
                "segment_bytes_max must be at most 2 GiB",
            ),
            (
                self.index_interval_bytes >= 1,
                "index_interval_bytes must be at least 1",
            ),
            (
                self.batch_bytes_max >= 64,
                "batch_bytes_max must be at least 64",
            ),
            (
                (self.batch_bytes_max as u64) < SEGMENT_BYTES_LIMIT,
                "batch_bytes_max must be below 2 GiB",
            ),
            (
                self.record_bytes_max >= 1,
                "record_bytes_max must be at least 1",
            ),
            (
                self.batch_decompressed_bytes_max >= self.batch_bytes_max,
                "batch_decompressed_bytes_max must hold one batch",
            ),
            (
                (1..=SEGMENT_OFFSETS_LIMIT).contains(&self.segment_offsets_max),
                "segment_offsets_max must be in 1..=2147483647",
            ),
            (
                self.pending_bytes_max >= self.batch_bytes_max,
                "pending_bytes_max must hold one batch",
            ),
            (
                self.open_segment_files_max >= 1,
                "open_segment_files_max must be at least 1",
            ),
            (
                self.retention_check_interval_ms >= 1,
                "retention_check_interval_ms must be at least 1",
            ),
            (
                self.flush_interval_ms != Some(0),
                "flush_interval_ms must be at least 1 (or unset)",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, reason)) => Err((*reason).to_string()),
            None => Ok(()),
        }
    }
}
