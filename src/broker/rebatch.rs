//! Record batches the broker itself takes apart and rebuilds: a publish through an exchange
//! (each copy gains routing headers) and request/reply (a request gains `reply-to` and
//! `correlation-id`, a reply its correlation id). Decoding is bounded before it allocates: the
//! batches are validated against the topic defaults' limits, and the record count against
//! `records_max`, before any record is decoded.

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchBuilder, Compression, Header, Record};
use crate::broker::ShardState;
use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};
use crate::storage::StorageError;

/// Decodes whole batches, refusing more than `records_max` records (`what` names the limit).
pub fn decode(
    records: &[u8],
    state: &ShardState,
    (records_max, what): (usize, &str),
) -> BrokerResult<Vec<Record>> {
    let defaults = &state.config.topic_defaults;
    let limits = batch::Limits {
        batch_bytes_max: defaults.batch_bytes_max,
        record_bytes_max: defaults.record_bytes_max,
    };
    let invalid = |error| BrokerError::from(StorageError::InvalidBatch(error));
    let mut decoded = Vec::new();
    // Every record is copied (and copied again per destination): what the batches inflate to
    // is bounded by one frame's bytes in all, not by the codec's own limit.
    let mut budget_bytes = state.config.frame_bytes_max;
    let mut rest = records;
    while !rest.is_empty() {
        let info = batch::validate(rest, limits).map_err(invalid)?;
        let count = usize::try_from(info.records_count).unwrap_or(usize::MAX);
        if decoded.len().saturating_add(count) > records_max {
            return Err(BrokerError::new(
                ErrorKind::RecordTooLarge,
                format!("{what} carries at most {records_max} records"),
            ));
        }
        let (whole, after) = rest.split_at(info.size_bytes.min(rest.len()));
        for stored in batch::records::decode_at_most(whole, budget_bytes).map_err(invalid)? {
            let size = record_size(&stored.record);
            budget_bytes = budget_bytes.saturating_sub(size);
            decoded.push(stored.record);
        }
        rest = after;
    }
    Ok(decoded)
}

/// Sets header `key` to `value`, replacing any header of that name.
pub fn set_header(record: &mut Record, key: &str, value: Bytes) {
    record.headers.retain(|header| header.key != key);
    record.headers.push(Header {
        key: key.into(),
        value: Some(value),
    });
}

/// `records` as batches of at most `batch_bytes_max` (each batch holds at least one record).
pub fn encode(records: impl IntoIterator<Item = Record>, batch_bytes_max: usize) -> BytesMut {
    let mut out = BytesMut::new();
    let mut builder = BatchBuilder::new(Compression::None);
    for record in records {
        let size = record_size(&record);
        if !builder.is_empty() && builder.size_bytes().saturating_add(size) > batch_bytes_max {
            let full = std::mem::replace(&mut builder, BatchBuilder::new(Compression::None));
            out.extend_from_slice(&full.build());
        }
        builder.push(record);
    }
    if !builder.is_empty() {
        out.extend_from_slice(&builder.build());
    }
    out
}

/// A record's size in a batch, over-estimated by the varints' worst case.
fn record_size(record: &Record) -> usize {
    let field = |bytes: Option<&Bytes>| bytes.map_or(0, Bytes::len).saturating_add(10);
    record.headers.iter().fold(
        field(record.key.as_ref()).saturating_add(field(record.value.as_ref())) + 40,
        |size, header| {
            size.saturating_add(header.key.len() + 10)
                .saturating_add(field(header.value.as_ref()))
        },
    )
}
