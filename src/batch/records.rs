//! The records inside a batch: zigzag varints, keys, values and headers.
//!
//! The broker reads records only to check an uncompressed batch's framing on append; clients and
//! the operator's tools decode them in full.

use bytes::{BufMut, Bytes};

use super::{BatchError, Compression, HEADER_BYTES};

/// One record as a producer hands it over or a consumer gets it back.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Record {
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

impl Record {
    pub fn new(timestamp_ms: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
        Record {
            timestamp_ms,
            key: key.map(Bytes::copy_from_slice),
            value: value.map(Bytes::copy_from_slice),
            headers: Vec::new(),
        }
    }
}

/// A record decoded from a stored batch, with its absolute offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRecord {
    pub offset: i64,
    pub record: Record,
}

pub(crate) fn put_varint(out: &mut impl BufMut, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.put_u8((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.put_u8(zigzag as u8);
}

pub(crate) fn varint_len(value: i64) -> usize {
    let zigzag = ((value << 1) ^ (value >> 63)) as u64;
    (64 - (zigzag | 1).leading_zeros() as usize).div_ceil(7)
}

/// A cursor over record bytes that fails, never panics, on malformed input.
struct Cursor<'a> {
    bytes: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn varint(&mut self) -> Result<i64, BatchError> {
        let mut result: u64 = 0;
        for (index, &byte) in self.bytes.iter().enumerate().take(10) {
            result |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                self.bytes = &self.bytes[index + 1..];
                return Ok(((result >> 1) as i64) ^ -((result & 1) as i64));
            }
        }
        Err(BatchError::BadRecord("varint truncated or too long"))
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], BatchError> {
        if self.bytes.len() < length {
            return Err(BatchError::BadRecord(
                "field runs past the end of the record",
            ));
        }
        let (head, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(head)
    }

    /// A length-prefixed field; a length of -1 means null.
    fn nullable(&mut self) -> Result<Option<&'a [u8]>, BatchError> {
        match self.varint()? {
            -1 => Ok(None),
            length if length < 0 => Err(BatchError::BadRecord("negative field length")),
            length => Ok(Some(self.take(length as usize)?)),
        }
    }
}

/// One record's fields, borrowed from the batch.
struct RawRecord<'a> {
    timestamp_delta: i64,
    offset_delta: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    headers: Vec<(&'a [u8], Option<&'a [u8]>)>,
}

/// Splits off the next record of `cursor`, checking that its fields fill its length exactly.
fn next_record<'a>(
    cursor: &mut Cursor<'a>,
    keep_headers: bool,
) -> Result<(usize, RawRecord<'a>), BatchError> {
    let length = cursor.varint()?;
    if length < 0 {
        return Err(BatchError::BadRecord("negative record length"));
    }
    let mut body = Cursor {
        bytes: cursor.take(length as usize)?,
    };
    body.take(1)?; // attributes: unused in v2
    let timestamp_delta = body.varint()?;
    let offset_delta = body.varint()?;
    let key = body.nullable()?;
    let value = body.nullable()?;
    let header_count = body.varint()?;
    if header_count < 0 {
        return Err(BatchError::BadRecord("negative header count"));
    }
    let mut headers = Vec::new();
    for _ in 0..header_count {
        let key = body
            .nullable()?
            .ok_or(BatchError::BadRecord("null header key"))?;
        let value = body.nullable()?;
        if keep_headers {
            headers.push((key, value));
        }
    }
    if !body.bytes.is_empty() {
        return Err(BatchError::BadRecord(
            "record length disagrees with its fields",
        ));
    }
    let record = RawRecord {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers,
    };
    Ok((length as usize, record))
}

/// A zigzag varint at `bytes[*position..]`, advancing `position`; None if malformed. The
/// one-byte case (most lengths and deltas) takes the first branch.
#[inline(always)]
pub(super) fn fast_varint(bytes: &[u8], position: &mut usize) -> Option<i64> {
    let first = *bytes.get(*position)?;
    if first < 0x80 {
        *position += 1;
        return Some(i64::from(first >> 1) ^ -i64::from(first & 1));
    }
    let mut result = u64::from(first & 0x7f);
    for index in 1..10 {
        let byte = *bytes.get(*position + index)?;
        result |= u64::from(byte & 0x7f) << (7 * index);
        if byte < 0x80 {
            *position += index + 1;
            return Some(((result >> 1) as i64) ^ -((result & 1) as i64));
        }
    }
    None
}

/// Skips a length-prefixed field (-1 is null) inside `body`.
#[inline(always)]
fn skip_field(body: &[u8], position: &mut usize) -> Option<()> {
    let length = fast_varint(body, position)?;
    if length < -1 {
        return None;
    }
    *position = position
        .checked_add(length.max(0) as usize)
        .filter(|end| *end <= body.len())?;
    Some(())
}

/// Walks one record body; None if its fields do not fill it exactly.
#[inline(always)]
pub(super) fn check_record_body(body: &[u8], expected_offset_delta: i64) -> Option<()> {
    let mut position = 1; // attributes
    fast_varint(body, &mut position)?; // timestamp delta
    if fast_varint(body, &mut position)? != expected_offset_delta {
        return None;
    }
    skip_field(body, &mut position)?; // key
    skip_field(body, &mut position)?; // value
    let headers = fast_varint(body, &mut position)?;
    if headers < 0 {
        return None;
    }
    for _ in 0..headers {
        let key_length = fast_varint(body, &mut position)?;
        if key_length < 0 {
            return None;
        }
        position = position
            .checked_add(key_length as usize)
            .filter(|end| *end <= body.len())?;
        skip_field(body, &mut position)?;
    }
    (position == body.len()).then_some(())
}

/// Checks that `records` holds exactly `count` well-formed records, none over `record_bytes_max`,
/// with offset deltas 0, 1, 2, ... as producers write them. This runs on every uncompressed
/// append, so it is a tight loop of its own rather than the decoder's.
pub fn check_framing(
    records: &[u8],
    count: i32,
    record_bytes_max: usize,
) -> Result<(), BatchError> {
    let mut position = 0;
    for expected_delta in 0..i64::from(count) {
        let length = fast_varint(records, &mut position)
            .ok_or(BatchError::BadRecord("record length malformed"))?;
        if length < 1 {
            return Err(BatchError::BadRecord("record length below one byte"));
        }
        let length = length as usize;
        if length > record_bytes_max {
            return Err(BatchError::RecordTooLarge {
                size: length,
                limit: record_bytes_max,
            });
        }
        let body = records
            .get(position..position + length)
            .ok_or(BatchError::BadRecord(
                "record runs past the end of the batch",
            ))?;
        check_record_body(body, expected_delta).ok_or(BatchError::BadRecord(
            "record fields malformed or offset deltas not 0, 1, 2, ...",
        ))?;
        position += length;
    }
    if position != records.len() {
        return Err(BatchError::BadRecord("bytes left after the last record"));
    }
    Ok(())
}

/// The first record of an uncompressed batch, without decoding the rest (None if compressed or
/// malformed). A cheap probe for tools that sample one record per batch.
pub fn first_record(batch: &[u8]) -> Option<StoredRecord> {
    let header = super::header(batch).ok()?;
    if Compression::from_attributes(header.attributes.get()).ok()? != Compression::None {
        return None;
    }
    let mut cursor = Cursor {
        bytes: batch.get(HEADER_BYTES..)?,
    };
    let (_, raw) = next_record(&mut cursor, false).ok()?;
    Some(StoredRecord {
        offset: header.base_offset.get().wrapping_add(raw.offset_delta),
        record: Record {
            timestamp_ms: header
                .base_timestamp
                .get()
                .wrapping_add(raw.timestamp_delta),
            key: raw.key.map(Bytes::copy_from_slice),
            value: raw.value.map(Bytes::copy_from_slice),
            headers: Vec::new(),
        },
    })
}

/// Decodes every record of one whole batch (decompressing if needed), with absolute offsets.
pub fn decode(batch: &[u8]) -> Result<Vec<StoredRecord>, BatchError> {
    decode_at_most(batch, super::compression::DECOMPRESSED_BYTES_MAX)
}

/// `decode`, refusing a batch whose records take more than `records_bytes_max` once
/// decompressed (what a caller that copies every record can afford).
pub fn decode_at_most(
    batch: &[u8],
    records_bytes_max: usize,
) -> Result<Vec<StoredRecord>, BatchError> {
    decode_offsets(batch, (i64::MIN, i64::MAX), records_bytes_max)
}

/// The records of one whole batch whose offsets are in `first..=last`, as `decode_at_most`
/// checks them, copying only those: a queue receive wants a few of a large batch's records,
/// and copies of the rest were most of its cost. A batch whose header puts it wholly outside
/// the range is neither checked nor decoded (its damage, if any, is for a read of its offsets).
pub fn decode_offsets(
    batch: &[u8],
    (first, last): (i64, i64),
    records_bytes_max: usize,
) -> Result<Vec<StoredRecord>, BatchError> {
    if let Ok(head) = super::header(batch) {
        let base = head.base_offset.get();
        let end = base.saturating_add(i64::from(head.last_offset_delta.get().max(0)));
        if end < first || base > last {
            return Ok(Vec::new());
        }
    }
    let info = super::validate(batch, super::Limits::UNLIMITED)?;
    let payload = &batch[HEADER_BYTES..info.size_bytes];
    let decompressed;
    let records = if info.compression == Compression::None {
        if payload.len() > records_bytes_max {
            return Err(BatchError::DecompressedTooLarge {
                limit: records_bytes_max,
            });
        }
        payload
    } else {
        decompressed = info
            .compression
            .decompress_at_most(payload, records_bytes_max)?;
        &decompressed[..]
    };
    let mut cursor = Cursor { bytes: records };
    // The count is the header's claim: reserve no more than the bytes could hold.
    let wanted = u64::try_from(last.saturating_sub(first)).map_or(0, |span| span.saturating_add(1));
    let capacity = (info.records_count as usize)
        .min(records.len() / 7)
        .min(usize::try_from(wanted).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(capacity);
    for _ in 0..info.records_count {
        let (_, raw) = next_record(&mut cursor, true)?;
        let offset = info.base_offset.wrapping_add(raw.offset_delta);
        if offset < first || offset > last {
            continue;
        }
        let headers = raw
            .headers
            .into_iter()
            .map(|(key, value)| Header {
                key: String::from_utf8_lossy(key).into_owned(),
                value: value.map(Bytes::copy_from_slice),
            })
            .collect();
        out.push(StoredRecord {
            offset,
            record: Record {
                timestamp_ms: info.first_timestamp.wrapping_add(raw.timestamp_delta),
                key: raw.key.map(Bytes::copy_from_slice),
                value: raw.value.map(Bytes::copy_from_slice),
                headers,
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::BatchBuilder;

    #[test]
    fn a_caller_bounds_what_a_batch_may_inflate_to() {
        let value = vec![b'z'; 2 << 20];
        for compression in [Compression::None, Compression::Zstd, Compression::Lz4] {
            let mut builder = BatchBuilder::new(compression);
            builder.push(Record::new(0, None, Some(&value)));
            let batch = builder.build();
            assert!(batch.len() < (3 << 20));
            let refused = decode_at_most(&batch, 1 << 20).unwrap_err();
            assert!(
                matches!(refused, BatchError::DecompressedTooLarge { limit } if limit == 1 << 20),
                "{compression:?}: {refused:?}"
            );
            let decoded = decode_at_most(&batch, 4 << 20).unwrap();
            assert_eq!(decoded[0].record.value.as_deref(), Some(&value[..]));
        }
    }

    #[test]
    fn decoding_a_range_copies_only_its_records_and_checks_what_it_reads() {
        let mut builder = BatchBuilder::new(Compression::None);
        for n in 0..10u8 {
            builder.push(Record::new(i64::from(n), None, Some(&[n])));
        }
        let mut batch = builder.build().to_vec();
        crate::batch::set_base_offset(&mut batch, 100);
        let offsets_and_values = |range| {
            decode_offsets(&batch, range, 1 << 20)
                .unwrap()
                .into_iter()
                .map(|stored| (stored.offset, stored.record.value.unwrap()[0]))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            offsets_and_values((103, 105)),
            [(103, 3), (104, 4), (105, 5)]
        );
        assert_eq!(offsets_and_values((90, 100)), [(100, 0)]);
        assert_eq!(offsets_and_values((109, 500)), [(109, 9)]);
        assert!(offsets_and_values((110, 500)).is_empty());
        assert_eq!(
            decode_offsets(&batch, (i64::MIN, i64::MAX), 1 << 20).unwrap(),
            decode(&batch).unwrap()
        );
        // A damaged record body fails a read of the batch's range (its CRC), and only such.
        let last = batch.len() - 1;
        batch[last] ^= 0xff;
        assert!(decode_offsets(&batch, (103, 103), 1 << 20).is_err());
        assert!(
            decode_offsets(&batch, (200, 300), 1 << 20)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn varint_round_trips_and_sizes() {
        for value in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            300,
            -300,
            i32::MAX as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(out.len(), varint_len(value), "{value}");
            assert_eq!(Cursor { bytes: &out }.varint().unwrap(), value);
        }
    }

    #[test]
    fn framing_check_accepts_built_batches_and_refuses_every_truncation() {
        let mut builder = BatchBuilder::new(Compression::None);
        let mut record = Record::new(5, Some(b"key"), Some(&[7u8; 300]));
        record.headers.push(Header {
            key: "h".into(),
            value: None,
        });
        builder.push(record);
        builder.push(Record::new(6, None, Some(b"v")));
        let batch = builder.build();
        let records = &batch[HEADER_BYTES..];
        check_framing(records, 2, 1 << 20).unwrap();
        assert!(
            check_framing(records, 3, 1 << 20).is_err(),
            "a missing record"
        );
        assert!(
            check_framing(records, 1, 1 << 20).is_err(),
            "bytes after the last record"
        );
        for cut in 0..records.len() {
            assert!(
                check_framing(&records[..cut], 2, 1 << 20).is_err(),
                "cut at {cut}"
            );
        }
        assert!(matches!(
            check_framing(records, 2, 100),
            Err(BatchError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn decode_returns_what_was_built_for_every_codec() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let mut builder = BatchBuilder::new(codec);
            let mut record = Record::new(5, Some(b"key"), Some(b"value"));
            record.headers.push(Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"v")),
            });
            builder.push(record.clone());
            builder.push(Record::new(9, None, None));
            let batch = builder.build();
            let records = decode(&batch).unwrap();
            assert_eq!(records.len(), 2);
            assert_eq!(records[0].record, record);
            assert_eq!(records[1].offset, 1);
            assert_eq!(records[1].record, Record::new(9, None, None));
        }
    }
}
