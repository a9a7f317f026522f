//! The checks a batch must pass before the broker appends it, as Kafka's own broker makes them
//! (its LogValidator): the header's fields in range and consistent, and the records the header
//! announces really there, compressed or not.
//!
//! Why decompress on append at all, when the batch is stored exactly as sent: a batch whose
//! header says 1 record but holds 5, or whose "zstd" payload is noise, would otherwise be stored
//! and then break every consumer (wrong offsets, an unreadable partition), and a bomb would make
//! every consumer inflate gigabytes. The check streams: it holds one record at a time (at most
//! `record_bytes_max`) and stops reading at `decompressed_bytes_max`, so a bomb costs at most
//! that much inflating and never more memory than one record plus the codec's window.
//!
//! Stored data is not checked this way again (recovery and tools use `batch::validate`, which
//! checks framing and CRC): what was refused here never reached the disk.

use std::io::{BufRead, BufReader, Read};

use super::headers::HeaderSearch;
use super::records::check_record_body;
use super::{
    ATTRIBUTE_COMPRESSION_MASK, ATTRIBUTE_CONTROL, ATTRIBUTE_LOG_APPEND_TIME,
    ATTRIBUTE_TRANSACTIONAL, BatchError, BatchInfo, Compression, HEADER_BYTES, Limits,
};

/// Kafka's "delete horizon" flag (KIP-534): known, though only its log cleaner sets it.
const ATTRIBUTE_DELETE_HORIZON: i16 = 0x40;
const ATTRIBUTES_KNOWN: i16 = ATTRIBUTE_COMPRESSION_MASK
    | ATTRIBUTE_LOG_APPEND_TIME
    | ATTRIBUTE_TRANSACTIONAL
    | ATTRIBUTE_CONTROL
    | ATTRIBUTE_DELETE_HORIZON;
/// How much decompressed data is read ahead from the codec at a time.
const READ_AHEAD_BYTES: usize = 64 * 1024;

/// The bounds of an append's check.
#[derive(Clone, Copy, Debug)]
pub struct AppendLimits {
    pub batch: Limits,
    /// Decompressed bytes an append may inflate to, over all of its batches together: it bounds
    /// the memory and the CPU time one request can cost the shard.
    pub decompressed_bytes_max: usize,
}

/// Validates the batch at the start of `bytes` for appending. `inflate_budget` is what is left
/// of the append's `decompressed_bytes_max`; it is reduced by what this batch inflated to.
pub fn validate_append(
    bytes: &[u8],
    limits: &AppendLimits,
    inflate_budget: &mut usize,
) -> Result<BatchInfo, BatchError> {
    validate_append_finding(bytes, limits, inflate_budget, None)
}

/// `validate_append`, also gathering the values of the header `search` looks for (from the
/// records as the check walks them: compressed ones are not inflated twice).
pub fn validate_append_finding(
    bytes: &[u8],
    limits: &AppendLimits,
    inflate_budget: &mut usize,
    search: Option<&mut HeaderSearch<'_>>,
) -> Result<BatchInfo, BatchError> {
    let info = super::validate(bytes, limits.batch)?;
    let head = super::header(bytes)?;
    let attributes = head.attributes.get();
    if attributes & !ATTRIBUTES_KNOWN != 0 {
        return Err(BatchError::BadAttributes(attributes));
    }
    if info.is_control {
        return Err(BatchError::ControlBatch);
    }
    if info.producer_id >= 0 && info.base_sequence < 0 {
        return Err(BatchError::BadProducer(
            "a producer id without a base sequence",
        ));
    }
    if info.is_transactional && info.producer_id < 0 {
        return Err(BatchError::BadProducer(
            "a transactional batch without a producer id",
        ));
    }
    if info.compression != Compression::None {
        let payload = bytes
            .get(HEADER_BYTES..info.size_bytes)
            .ok_or(BatchError::BadRecord("batch shorter than its header"))?;
        let inflated = check_compressed(
            info.compression,
            payload,
            info.records_count,
            limits.batch.record_bytes_max,
            *inflate_budget,
            limits.decompressed_bytes_max,
            search,
        )?;
        *inflate_budget = inflate_budget.saturating_sub(inflated);
    } else if let Some(search) = search {
        search.uncompressed(bytes.get(HEADER_BYTES..info.size_bytes).unwrap_or_default());
    }
    Ok(info)
}

/// Inflates `payload` up to `budget` bytes and checks that it holds exactly `count` well-framed
/// records with offset deltas 0, 1, 2, ... Returns the decompressed size.
fn check_compressed(
    codec: Compression,
    payload: &[u8],
    count: i32,
    record_bytes_max: usize,
    budget: usize,
    limit: usize,
    mut search: Option<&mut HeaderSearch<'_>>,
) -> Result<usize, BatchError> {
    let too_large = BatchError::DecompressedTooLarge { limit };
    let reader = codec.reader(payload, budget).map_err(|error| match error {
        BatchError::DecompressedTooLarge { .. } => too_large.clone(),
        other => other,
    })?;
    // One byte past the budget tells "exactly at the cap" from "over it".
    let reader = reader.take((budget as u64).saturating_add(1));
    let mut stream = RecordStream {
        input: BufReader::with_capacity(READ_AHEAD_BYTES.min(budget.max(1)), reader),
        consumed: 0,
        budget,
        limit,
    };
    let mut body = Vec::new();
    for expected_delta in 0..i64::from(count) {
        let length = stream.varint()?;
        if length < 1 {
            return Err(BatchError::BadRecord("record length below one byte"));
        }
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        if length > record_bytes_max {
            return Err(BatchError::RecordTooLarge {
                size: length,
                limit: record_bytes_max,
            });
        }
        if length > stream.budget.saturating_sub(stream.consumed) {
            return Err(too_large);
        }
        body.resize(length, 0);
        stream.read_exact(&mut body)?;
        check_record_body(&body, expected_delta).ok_or(BatchError::BadRecord(
            "record fields malformed or offset deltas not 0, 1, 2, ...",
        ))?;
        if let Some(search) = search.as_deref_mut() {
            search.record(expected_delta as i32, &body);
        }
    }
    if stream.has_more()? {
        return Err(if stream.consumed > stream.budget {
            too_large
        } else {
            BatchError::BadRecord("bytes left after the last record")
        });
    }
    Ok(stream.consumed)
}

/// Decompressed bytes read one record at a time, counting what was consumed against the budget.
struct RecordStream<R> {
    input: BufReader<R>,
    consumed: usize,
    budget: usize,
    /// The configured cap, for the error message.
    limit: usize,
}

impl<R: Read> RecordStream<R> {
    /// Refill the read-ahead; an error of the codec is the batch's fault.
    fn fill(&mut self) -> Result<&[u8], BatchError> {
        self.input
            .fill_buf()
            .map_err(|_| BatchError::BadRecord("compressed records do not decompress"))
    }

    fn end_of_data(&self) -> BatchError {
        if self.consumed > self.budget {
            BatchError::DecompressedTooLarge { limit: self.limit }
        } else {
            BatchError::BadRecord("compressed records end before the last record")
        }
    }

    fn varint(&mut self) -> Result<i64, BatchError> {
        let mut result: u64 = 0;
        for index in 0..10 {
            let Some(&byte) = self.fill()?.first() else {
                return Err(self.end_of_data());
            };
            self.input.consume(1);
            self.consumed += 1;
            result |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        Err(BatchError::BadRecord("varint too long"))
    }

    fn read_exact(&mut self, into: &mut [u8]) -> Result<(), BatchError> {
        let mut filled = 0;
        while filled < into.len() {
            let available = self.fill()?;
            if available.is_empty() {
                return Err(self.end_of_data());
            }
            let taken = available.len().min(into.len() - filled);
            into[filled..filled + taken].copy_from_slice(&available[..taken]);
            self.input.consume(taken);
            self.consumed += taken;
            filled += taken;
        }
        Ok(())
    }

    fn has_more(&mut self) -> Result<bool, BatchError> {
        let more = !self.fill()?.is_empty();
        if more {
            self.consumed += 1;
        }
        Ok(more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{BatchBuilder, Record};

    const LIMITS: AppendLimits = AppendLimits {
        batch: Limits::UNLIMITED,
        decompressed_bytes_max: 1 << 20,
    };

    fn built(codec: Compression, records: usize) -> Vec<u8> {
        let mut builder = BatchBuilder::new(codec);
        for n in 0..records {
            builder.push(Record::new(n as i64, None, Some(&[n as u8; 100])));
        }
        builder.build().to_vec()
    }

    #[test]
    fn every_codec_passes_when_whole_and_reports_what_it_inflated() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = built(codec, 10);
            let mut budget = LIMITS.decompressed_bytes_max;
            let info = validate_append(&bytes, &LIMITS, &mut budget).unwrap();
            assert_eq!(info.records_count, 10, "{}", codec.name());
            if codec != Compression::None {
                assert!(budget < LIMITS.decompressed_bytes_max - 1000);
            }
        }
    }

    #[test]
    fn a_small_budget_refuses_as_too_large() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let bytes = built(codec, 10);
            let mut budget = 500;
            assert!(
                matches!(
                    validate_append(&bytes, &LIMITS, &mut budget),
                    Err(BatchError::DecompressedTooLarge { .. })
                ),
                "{}",
                codec.name()
            );
        }
    }

    #[test]
    fn the_zstd_window_follows_the_cap() {
        assert_eq!(super::super::compression::zstd_window_log_max(64 << 20), 26);
        assert_eq!(super::super::compression::zstd_window_log_max(1), 20);
        assert_eq!(
            super::super::compression::zstd_window_log_max(usize::MAX),
            27
        );
    }
}
