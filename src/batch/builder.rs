//! Builds a RecordBatch v2 from records: what a producer (our client, the CLI, the benchmark,
//! tests) sends. Offsets start at 0; the broker assigns the real ones on append.

use bytes::{BufMut, Bytes, BytesMut};
use zerocopy::IntoBytes;

use super::records::{put_varint, varint_len};
use super::{
    BatchHeader, CRC_START, Compression, HEADER_BYTES, LOG_OVERHEAD_BYTES, MAGIC_V2, Record,
};

pub struct BatchBuilder {
    compression: Compression,
    records: BytesMut,
    count: i32,
    first_timestamp: i64,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
}

impl BatchBuilder {
    pub fn new(compression: Compression) -> BatchBuilder {
        BatchBuilder {
            compression,
            records: BytesMut::new(),
            count: 0,
            first_timestamp: 0,
            max_timestamp: -1,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
        }
    }

    /// Marks the batch as an idempotent producer's: its id, epoch and first sequence number.
    pub fn idempotent(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed size so far, header included: what the batch is at most on the wire.
    pub fn size_bytes(&self) -> usize {
        HEADER_BYTES + self.records.len()
    }

    pub fn push(&mut self, record: Record) {
        if self.count == 0 {
            self.first_timestamp = record.timestamp_ms;
        }
        self.max_timestamp = self.max_timestamp.max(record.timestamp_ms);
        let timestamp_delta = record.timestamp_ms - self.first_timestamp;
        let offset_delta = i64::from(self.count);
        let field = |value: &Option<Bytes>| value.as_ref().map_or(-1, |bytes| bytes.len() as i64);
        let field_size = |value: &Option<Bytes>| {
            let length = field(value);
            varint_len(length) + length.max(0) as usize
        };
        let mut body_size = 1
            + varint_len(timestamp_delta)
            + varint_len(offset_delta)
            + field_size(&record.key)
            + field_size(&record.value)
            + varint_len(record.headers.len() as i64);
        for header in &record.headers {
            body_size += varint_len(header.key.len() as i64) + header.key.len();
            body_size += field_size(&header.value);
        }
        let out = &mut self.records;
        out.reserve(body_size + 5);
        put_varint(out, body_size as i64);
        out.put_u8(0);
        put_varint(out, timestamp_delta);
        put_varint(out, offset_delta);
        for value in [&record.key, &record.value] {
            put_varint(out, field(value));
            if let Some(bytes) = value {
                out.put_slice(bytes);
            }
        }
        put_varint(out, record.headers.len() as i64);
        for header in &record.headers {
            put_varint(out, header.key.len() as i64);
            out.put_slice(header.key.as_bytes());
            put_varint(out, field(&header.value));
            if let Some(bytes) = &header.value {
                out.put_slice(bytes);
            }
        }
        self.count += 1;
    }

    /// Seals the batch: compresses the records, fills the header, computes the CRC.
    pub fn build(self) -> Bytes {
        assert!(self.count > 0, "a record batch holds at least one record");
        let payload = match self.compression {
            Compression::None => self.records.freeze(),
            codec => Bytes::from(codec.compress(&self.records)),
        };
        let total = HEADER_BYTES + payload.len();
        let mut header = BatchHeader {
            base_offset: 0.into(),
            batch_length: ((total - LOG_OVERHEAD_BYTES) as i32).into(),
            partition_leader_epoch: 0.into(),
            magic: MAGIC_V2,
            crc: 0.into(),
            attributes: self.compression.attribute_bits().into(),
            last_offset_delta: (self.count - 1).into(),
            base_timestamp: self.first_timestamp.into(),
            max_timestamp: self.max_timestamp.into(),
            producer_id: self.producer_id.into(),
            producer_epoch: self.producer_epoch.into(),
            base_sequence: self.base_sequence.into(),
            records_count: self.count.into(),
        };
        let mut out = BytesMut::with_capacity(total);
        out.put_slice(header.as_bytes());
        out.put_slice(&payload);
        let crc = crc32c::crc32c(&out[CRC_START..]);
        header.crc = crc.into();
        out[..HEADER_BYTES].copy_from_slice(header.as_bytes());
        out.freeze()
    }
}
