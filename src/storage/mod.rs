//! The storage engine: each partition is an append-only log of RecordBatch v2 batches in segment
//! files on local disk, with sparse offset and time indexes, group-committed io_uring writes,
//! three acknowledgement levels, a tail cache, retention and crash recovery.
//!
//! It owns no sockets and knows no protocol: the shard that owns a partition calls it. The file
//! layout and its invariants are in ARCHITECTURE.md; `log::PartitionLog` is the entry point.

pub mod config;
pub mod damage;
pub mod dedup;
pub mod dirsync;
pub mod error;
pub mod fsck;
pub mod index;
pub mod log;
pub mod producer_state;
pub mod recovery;
pub mod segment;
mod segment_read;
pub mod segment_store;
pub mod tail_cache;

pub use config::{AckLevel, LogConfig, QueueRetentionPolicy, TimestampType};
pub use error::StorageError;
pub use log::{AppendAck, PartitionLog, ReadResult, TimedOffset};
