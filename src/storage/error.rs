//! The errors of the storage engine. Each one is cloneable, because one failed group commit
//! fails every append that was in it.

use std::io;

use thiserror::Error;

use crate::batch::BatchError;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StorageError {
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    #[error("offset {requested} is out of range: the log holds [{start}, {end})")]
    OffsetOutOfRange {
        requested: u64,
        start: u64,
        end: u64,
    },
    #[error("disk full: the append was not written")]
    DiskFull,
    #[error("i/o error: {message}")]
    Io {
        kind: io::ErrorKind,
        message: String,
    },
    #[error("corrupt data in segment {segment_base_offset} at byte {position}: {detail}")]
    Corrupt {
        segment_base_offset: u64,
        position: u64,
        detail: String,
    },
    #[error("the log failed and takes no more appends: {0}")]
    Failed(String),
    #[error("the partition's write queue stayed full for {waited_ms} ms; retry later")]
    Throttled { waited_ms: u64 },
    #[error(
        "producer {producer_id}: sequence {got} where {expected} was due (a batch was lost, or sent out of order)"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        producer_id: i64,
        epoch: i16,
        current_epoch: i16,
    },
    #[error("the log is closed")]
    Closed,
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
}

impl From<io::Error> for StorageError {
    fn from(error: io::Error) -> StorageError {
        if error.raw_os_error() == Some(libc::ENOSPC) || error.kind() == io::ErrorKind::StorageFull
        {
            return StorageError::DiskFull;
        }
        StorageError::Io {
            kind: error.kind(),
            message: error.to_string(),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;
