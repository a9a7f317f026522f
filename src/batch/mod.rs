//! Kafka's RecordBatch v2 ("magic 2"): the one batch format ringmq stores on disk and sends on
//! both wire protocols.
//!
//! One format everywhere means a fetch is served from stored bytes without re-encoding, and a
//! Kafka client's produce request is stored as it arrived. The broker only rewrites fields outside
//! the CRC (base offset, partition leader epoch) when it assigns offsets, so the producer's
//! checksum stays valid end to end. Layout (big-endian), see also ARCHITECTURE.md:
//!
//! ```text
//! 0  base_offset i64      | 8  batch_length i32 (bytes after this field)
//! 12 leader_epoch i32     | 16 magic i8 (= 2)  | 17 crc u32 (CRC32C of bytes 21..)
//! 21 attributes i16       | 23 last_offset_delta i32 | 27 base_timestamp i64
//! 35 max_timestamp i64    | 43 producer_id i64 | 51 producer_epoch i16
//! 53 base_sequence i32    | 57 records_count i32 | 61 records...
//! ```

pub mod builder;
pub mod compression;
pub mod headers;
pub mod records;
pub mod validate;

use thiserror::Error;
use zerocopy::byteorder::big_endian::{I16, I32, I64, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

pub use builder::BatchBuilder;
pub use compression::Compression;
pub use headers::{HeaderSearch, without_records};
pub use records::{Header, Record};
pub use validate::{AppendLimits, validate_append, validate_append_finding};

/// The fixed part of a RecordBatch v2, byte for byte as it is on disk and on the wire.
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct BatchHeader {
    pub base_offset: I64,
    pub batch_length: I32,
    pub partition_leader_epoch: I32,
    pub magic: i8,
    pub crc: U32,
    pub attributes: I16,
    pub last_offset_delta: I32,
    pub base_timestamp: I64,
    pub max_timestamp: I64,
    pub producer_id: I64,
    pub producer_epoch: I16,
    pub base_sequence: I32,
    pub records_count: I32,
}

pub const HEADER_BYTES: usize = size_of::<BatchHeader>();
/// Bytes before `batch_length` counts: base_offset and batch_length themselves.
pub const LOG_OVERHEAD_BYTES: usize = 12;
/// The CRC covers everything from `attributes` to the end of the batch.
pub const CRC_START: usize = 21;
pub const MAGIC_V2: i8 = 2;

const _: () = assert!(HEADER_BYTES == 61);

pub const ATTRIBUTE_COMPRESSION_MASK: i16 = 0x07;
pub const ATTRIBUTE_LOG_APPEND_TIME: i16 = 0x08;
pub const ATTRIBUTE_TRANSACTIONAL: i16 = 0x10;
pub const ATTRIBUTE_CONTROL: i16 = 0x20;

/// Why a batch was refused. Each is a stable, client-visible reason.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("batch truncated: {available} bytes present, {needed} needed")]
    Truncated { available: usize, needed: usize },
    #[error("batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported batch magic {0}, only RecordBatch v2 (magic 2) is accepted")]
    BadMagic(i8),
    #[error("batch CRC mismatch: header says {expected:#010x}, content is {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("unknown compression codec {0}")]
    BadCompression(i16),
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    BatchTooLarge { size: usize, limit: usize },
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    RecordTooLarge { size: usize, limit: usize },
    #[error("batch holds {count} records but last_offset_delta is {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("malformed record: {0}")]
    BadRecord(&'static str),
    #[error("empty append: no record batch given")]
    Empty,
    #[error("compressed records inflate past the limit of {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("batch attributes {0:#06x} set bits this broker does not know")]
    BadAttributes(i16),
    #[error("clients may not write control batches")]
    ControlBatch,
    #[error("bad producer fields: {0}")]
    BadProducer(&'static str),
}

impl BatchError {
    /// Whether the batch is damaged bytes (Kafka's CORRUPT_MESSAGE) rather than well-framed
    /// content the broker refuses (INVALID_RECORD) or one over a size limit.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            BatchError::Truncated { .. }
                | BatchError::BadLength(_)
                | BatchError::BadMagic(_)
                | BatchError::CrcMismatch { .. }
                | BatchError::BadCompression(_)
                | BatchError::Empty
        )
    }

    /// Whether the batch is refused for its size (Kafka's MESSAGE_TOO_LARGE).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            BatchError::BatchTooLarge { .. }
                | BatchError::RecordTooLarge { .. }
                | BatchError::DecompressedTooLarge { .. }
        )
    }
}

/// What the storage engine needs to know of one validated batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchInfo {
    pub size_bytes: usize,
    pub base_offset: i64,
    pub last_offset: i64,
    pub records_count: i32,
    pub max_timestamp: i64,
    pub first_timestamp: i64,
    pub compression: Compression,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub is_transactional: bool,
    pub is_control: bool,
}

/// Reads the fixed header at the start of `bytes`.
pub fn header(bytes: &[u8]) -> Result<&BatchHeader, BatchError> {
    BatchHeader::ref_from_prefix(bytes)
        .map(|(header, _)| header)
        .map_err(|_| BatchError::Truncated {
            available: bytes.len(),
            needed: HEADER_BYTES,
        })
}

/// The total size of the batch starting at `bytes`, from its length field alone (no CRC check).
pub fn framed_size(bytes: &[u8]) -> Result<usize, BatchError> {
    if bytes.len() < LOG_OVERHEAD_BYTES {
        return Err(BatchError::Truncated {
            available: bytes.len(),
            needed: LOG_OVERHEAD_BYTES,
        });
    }
    let length = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if length < (HEADER_BYTES - LOG_OVERHEAD_BYTES) as i32 {
        return Err(BatchError::BadLength(length));
    }
    Ok(LOG_OVERHEAD_BYTES + length as usize)
}

/// Limits applied while validating a batch.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub batch_bytes_max: usize,
    pub record_bytes_max: usize,
}

impl Limits {
    pub const UNLIMITED: Limits = Limits {
        batch_bytes_max: usize::MAX,
        record_bytes_max: usize::MAX,
    };
}

/// Checks the batch at the start of `bytes` whole: framing, magic, CRC, limits, and for an
/// uncompressed batch every record's framing. Compressed records are not decompressed: the write
/// path stores what the producer compressed, and a consumer's client decompresses.
pub fn validate(bytes: &[u8], limits: Limits) -> Result<BatchInfo, BatchError> {
    let size_bytes = framed_size(bytes)?;
    // Noise is corrupt, whatever size it claims: look at the magic byte before the size.
    if let Some(&magic) = bytes.get(16)
        && magic as i8 != MAGIC_V2
    {
        return Err(BatchError::BadMagic(magic as i8));
    }
    if size_bytes > limits.batch_bytes_max {
        return Err(BatchError::BatchTooLarge {
            size: size_bytes,
            limit: limits.batch_bytes_max,
        });
    }
    if bytes.len() < size_bytes {
        return Err(BatchError::Truncated {
            available: bytes.len(),
            needed: size_bytes,
        });
    }
    let batch = &bytes[..size_bytes];
    let head = header(batch)?;
    if head.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(head.magic));
    }
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != head.crc.get() {
        return Err(BatchError::CrcMismatch {
            expected: head.crc.get(),
            actual,
        });
    }
    let attributes = head.attributes.get();
    let compression = Compression::from_attributes(attributes)?;
    let records_count = head.records_count.get();
    let last_offset_delta = head.last_offset_delta.get();
    if records_count <= 0 || last_offset_delta != records_count - 1 {
        return Err(BatchError::BadRecordCount {
            count: records_count,
            last_offset_delta,
        });
    }
    if compression == Compression::None {
        records::check_framing(
            &batch[HEADER_BYTES..],
            records_count,
            limits.record_bytes_max,
        )?;
    }
    let base_offset = head.base_offset.get();
    Ok(BatchInfo {
        size_bytes,
        base_offset,
        // The producer's base offset is arbitrary until the broker assigns its own: no overflow.
        last_offset: base_offset.wrapping_add(i64::from(last_offset_delta)),
        records_count,
        max_timestamp: head.max_timestamp.get(),
        first_timestamp: head.base_timestamp.get(),
        compression,
        producer_id: head.producer_id.get(),
        producer_epoch: head.producer_epoch.get(),
        base_sequence: head.base_sequence.get(),
        is_transactional: attributes & ATTRIBUTE_TRANSACTIONAL != 0,
        is_control: attributes & ATTRIBUTE_CONTROL != 0,
    })
}

/// Checks only the framing and CRC of the whole batch at the start of `bytes`: what a reader of
/// stored data needs to be sure it hands out exactly what was written.
pub fn verify_crc(bytes: &[u8]) -> Result<(), BatchError> {
    let size = framed_size(bytes)?;
    let batch = bytes.get(..size).ok_or(BatchError::Truncated {
        available: bytes.len(),
        needed: size,
    })?;
    let head = header(batch)?;
    let actual = crc32c::crc32c(&batch[CRC_START..]);
    if actual != head.crc.get() {
        return Err(BatchError::CrcMismatch {
            expected: head.crc.get(),
            actual,
        });
    }
    Ok(())
}

/// Assigns `base_offset` to the batch at the start of `bytes`. The field lies outside the CRC,
/// so the producer's checksum stays valid.
pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) {
    let (head, _) = BatchHeader::mut_from_prefix(bytes).expect("validated batch has a header");
    head.base_offset.set(base_offset);
}

/// Stamps the broker's time as the batch's timestamps (LogAppendTime) and re-seals the CRC.
pub fn set_log_append_time(bytes: &mut [u8], now_ms: i64) {
    let size = framed_size(bytes).expect("validated batch");
    let (head, _) = BatchHeader::mut_from_prefix(bytes).expect("validated batch has a header");
    head.attributes
        .set(head.attributes.get() | ATTRIBUTE_LOG_APPEND_TIME);
    head.max_timestamp.set(now_ms);
    let crc = crc32c::crc32c(&bytes[CRC_START..size]);
    let (head, _) = BatchHeader::mut_from_prefix(bytes).expect("validated batch has a header");
    head.crc.set(crc);
}

/// Walks the batches laid end to end in `bytes`, stopping at the first incomplete one.
pub fn iter_framed(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let mut position = 0;
    std::iter::from_fn(move || {
        let rest = &bytes[position..];
        let size = framed_size(rest).ok()?;
        if rest.len() < size {
            return None;
        }
        let start = position;
        position += size;
        Some((start, &rest[..size]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(Record::new(1_000, Some(b"k"), Some(b"hello")));
        builder.push(Record::new(1_005, None, Some(b"world")));
        builder.build().to_vec()
    }

    #[test]
    fn validate_reads_the_header_fields() {
        let bytes = sample();
        let info = validate(&bytes, Limits::UNLIMITED).unwrap();
        assert_eq!(info.size_bytes, bytes.len());
        assert_eq!(info.records_count, 2);
        assert_eq!(info.last_offset, 1);
        assert_eq!(info.first_timestamp, 1_000);
        assert_eq!(info.max_timestamp, 1_005);
    }

    #[test]
    fn offset_rewrite_keeps_the_crc_valid() {
        let mut bytes = sample();
        set_base_offset(&mut bytes, 42);
        let info = validate(&bytes, Limits::UNLIMITED).unwrap();
        assert_eq!((info.base_offset, info.last_offset), (42, 43));
    }

    #[test]
    fn a_flipped_byte_is_a_crc_mismatch() {
        let mut bytes = sample();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(matches!(
            validate(&bytes, Limits::UNLIMITED),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    #[test]
    fn truncation_and_limits_are_reported() {
        let bytes = sample();
        assert!(matches!(
            validate(&bytes[..bytes.len() - 1], Limits::UNLIMITED),
            Err(BatchError::Truncated { .. })
        ));
        let limits = Limits {
            batch_bytes_max: 10,
            record_bytes_max: usize::MAX,
        };
        assert!(matches!(
            validate(&bytes, limits),
            Err(BatchError::BatchTooLarge { .. })
        ));
        let limits = Limits {
            batch_bytes_max: usize::MAX,
            record_bytes_max: 4,
        };
        assert!(matches!(
            validate(&bytes, limits),
            Err(BatchError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn log_append_time_reseals_the_crc() {
        let mut bytes = sample();
        set_log_append_time(&mut bytes, 99_999);
        let info = validate(&bytes, Limits::UNLIMITED).unwrap();
        assert_eq!(info.max_timestamp, 99_999);
    }
}
