//! Finding one header's values in a batch's records, and rebuilding a batch without some of its
//! records: what deduplication on append needs (`storage::dedup`).
//!
//! The search runs on every append of a topic with deduplication on, so it first looks for the
//! header's name anywhere in the records' bytes (memchr's SIMD search) and parses records only
//! when it is there: a batch without the header costs one scan of its bytes. Compressed records
//! are searched while the append's check inflates them (`validate::check_compressed`), one record
//! at a time, so nothing is inflated twice.

use bytes::Bytes;
use memchr::memmem;
use zerocopy::FromBytes;

use super::records::{decode_at_most, fast_varint};
use super::{
    ATTRIBUTE_LOG_APPEND_TIME, ATTRIBUTE_TRANSACTIONAL, BatchBuilder, BatchError, BatchHeader,
    CRC_START, Compression, HEADER_BYTES,
};

/// A header to look for in an append's records, and the values found: (record index in its
/// batch, value). Records whose header is null or absent are not listed.
pub struct HeaderSearch<'k> {
    finder: memmem::Finder<'k>,
    key: &'k [u8],
    pub found: Vec<(i32, Bytes)>,
}

impl<'k> HeaderSearch<'k> {
    pub fn new(key: &'k [u8]) -> HeaderSearch<'k> {
        HeaderSearch {
            finder: memmem::Finder::new(key),
            key,
            found: Vec::new(),
        }
    }

    /// Looks in one record's body (already checked whole), the `index`th of its batch.
    pub(super) fn record(&mut self, index: i32, body: &[u8]) {
        if self.finder.find(body).is_none() {
            return;
        }
        if let Some(value) = header_value(body, self.key) {
            self.found.push((index, Bytes::copy_from_slice(value)));
        }
    }

    /// Looks in the records of an uncompressed batch (its framing already checked).
    pub(super) fn uncompressed(&mut self, records: &[u8]) {
        if self.finder.find(records).is_none() {
            return;
        }
        let mut position = 0;
        let mut index = 0;
        while position < records.len() {
            let Some(length) = fast_varint(records, &mut position) else {
                return;
            };
            let Some(body) = usize::try_from(length)
                .ok()
                .and_then(|length| records.get(position..position.checked_add(length)?))
            else {
                return;
            };
            self.record(index, body);
            position += body.len();
            index += 1;
        }
    }
}

/// The value of the first header named `key` in one record body; None if it has none, if the
/// value is null, or if the body is malformed.
pub fn header_value<'a>(body: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut position = 1; // attributes
    fast_varint(body, &mut position)?; // timestamp delta
    fast_varint(body, &mut position)?; // offset delta
    skip(body, &mut position)?; // key
    skip(body, &mut position)?; // value
    let headers = fast_varint(body, &mut position)?;
    for _ in 0..headers {
        let name = field(body, &mut position)?;
        let value = field(body, &mut position)?;
        if name == Some(key) {
            return value;
        }
    }
    None
}

/// A length-prefixed field at `position` (None inside: null), advancing past it.
fn field<'a>(body: &'a [u8], position: &mut usize) -> Option<Option<&'a [u8]>> {
    let length = fast_varint(body, position)?;
    if length == -1 {
        return Some(None);
    }
    let length = usize::try_from(length).ok()?;
    let bytes = body.get(*position..position.checked_add(length)?)?;
    *position += length;
    Some(Some(bytes))
}

fn skip(body: &[u8], position: &mut usize) -> Option<()> {
    field(body, position).map(|_| ())
}

/// Rebuilds the batch `batch` without the records at the indexes `dropped` (sorted), keeping
/// its codec, producer fields and transactional and timestamp-type attributes; None if every
/// record is dropped. The records are decoded within `decompressed_bytes_max`.
///
/// An idempotent producer's batch keeps its last sequence number: its base sequence moves up
/// by the records dropped, so that the producer's state read back from the log (at a restart)
/// expects the sequence the producer sends next.
pub fn without_records(
    batch: &[u8],
    dropped: &[i32],
    decompressed_bytes_max: usize,
) -> Result<Option<Bytes>, BatchError> {
    let head = super::header(batch)?;
    let attributes = head.attributes.get();
    let codec = Compression::from_attributes(attributes)?;
    let mut base_sequence = head.base_sequence.get();
    if head.producer_id.get() >= 0 && base_sequence >= 0 {
        let dropped_count = i32::try_from(dropped.len()).unwrap_or(i32::MAX);
        // Kafka's sequences wrap at i32::MAX to 0.
        base_sequence = ((i64::from(base_sequence) + i64::from(dropped_count))
            % (i64::from(i32::MAX) + 1)) as i32;
    }
    let mut builder = BatchBuilder::new(codec).idempotent(
        head.producer_id.get(),
        head.producer_epoch.get(),
        base_sequence,
    );
    let epoch = head.partition_leader_epoch.get();
    for (index, stored) in decode_at_most(batch, decompressed_bytes_max)?
        .into_iter()
        .enumerate()
    {
        if dropped.binary_search(&(index as i32)).is_err() {
            builder.push(stored.record);
        }
    }
    if builder.is_empty() {
        return Ok(None);
    }
    let mut out = bytes::BytesMut::from(&builder.build()[..]);
    let (head, _) = BatchHeader::mut_from_prefix(&mut out[..])
        .map_err(|_| BatchError::BadRecord("rebuilt batch shorter than its header"))?;
    let kept = attributes & (ATTRIBUTE_TRANSACTIONAL | ATTRIBUTE_LOG_APPEND_TIME);
    head.attributes.set(head.attributes.get() | kept);
    head.partition_leader_epoch.set(epoch);
    let crc = crc32c::crc32c(&out[CRC_START..]);
    let (head, _) = BatchHeader::mut_from_prefix(&mut out[..])
        .map_err(|_| BatchError::BadRecord("rebuilt batch shorter than its header"))?;
    head.crc.set(crc);
    debug_assert!(out.len() >= HEADER_BYTES);
    Ok(Some(out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{Header, Record, records::decode};

    fn record(n: u8, id: Option<&str>) -> Record {
        let mut record = Record::new(1_000 + i64::from(n), Some(&[n]), Some(&[n; 20]));
        record.headers.push(Header {
            key: "other".into(),
            value: Some(Bytes::from_static(b"x-dedup-id")),
        });
        if let Some(id) = id {
            record.headers.push(Header {
                key: "x-dedup-id".into(),
                value: Some(Bytes::copy_from_slice(id.as_bytes())),
            });
        }
        record
    }

    fn built(codec: Compression) -> Bytes {
        let mut builder = BatchBuilder::new(codec).idempotent(7, 1, 40);
        for (n, id) in [(0, Some("a")), (1, None), (2, Some("b")), (3, Some("c"))] {
            builder.push(record(n, id));
        }
        builder.build()
    }

    #[test]
    fn finds_the_values_by_record_index_compressed_or_not() {
        for codec in [Compression::None, Compression::Zstd, Compression::Gzip] {
            let batch = built(codec);
            let mut search = HeaderSearch::new(b"x-dedup-id");
            let mut budget = 1 << 20;
            let limits = super::super::AppendLimits {
                batch: super::super::Limits::UNLIMITED,
                decompressed_bytes_max: 1 << 20,
            };
            super::super::validate::validate_append_finding(
                &batch,
                &limits,
                &mut budget,
                Some(&mut search),
            )
            .unwrap();
            let found: Vec<(i32, &[u8])> = search
                .found
                .iter()
                .map(|(index, value)| (*index, &value[..]))
                .collect();
            assert_eq!(found, [(0, &b"a"[..]), (2, b"b"), (3, b"c")], "{codec:?}");
        }
    }

    #[test]
    fn rebuilds_without_the_dropped_records_keeping_the_rest_in_order() {
        for codec in [Compression::None, Compression::Lz4] {
            let batch = built(codec);
            let rebuilt = without_records(&batch, &[0, 2], 1 << 20).unwrap().unwrap();
            let info = crate::batch::validate(&rebuilt, crate::batch::Limits::UNLIMITED).unwrap();
            assert_eq!(info.records_count, 2);
            assert_eq!(info.compression, codec);
            // Sequences 40..=43 sent, 2 dropped: the stored batch still ends at 43.
            assert_eq!((info.producer_id, info.base_sequence), (7, 42));
            let records = decode(&rebuilt).unwrap();
            assert_eq!(records[0].record, record(1, None));
            assert_eq!(records[1].record, record(3, Some("c")));
            assert_eq!(records[1].offset, 1);
            assert!(
                without_records(&batch, &[0, 1, 2, 3], 1 << 20)
                    .unwrap()
                    .is_none()
            );
        }
    }

    #[test]
    fn malformed_bodies_find_nothing_and_never_panic() {
        let batch = built(Compression::None);
        let records = &batch[HEADER_BYTES..];
        for cut in 0..records.len() {
            let _ = header_value(&records[1..cut.max(1)], b"x-dedup-id");
            let mut search = HeaderSearch::new(b"x-dedup-id");
            search.uncompressed(&records[..cut]);
            assert!(search.found.len() <= 3);
        }
    }
}
