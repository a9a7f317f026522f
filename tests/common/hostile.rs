//! Record batches as an attacker or a broken client writes them: every header field is the
//! test's choice, and the length and CRC are sealed afterwards so the batch gets past the
//! checksum and reaches the broker's deeper checks. Also a zstd frame built block by block, to
//! make a bomb of well-formed records without compressing gigabytes in the test.

#![allow(dead_code)]

use bytes::BytesMut;
use ringmq::batch::{CRC_START, Compression, HEADER_BYTES};

/// Every field of a RecordBatch v2 header that a producer writes, and the payload after it.
#[derive(Clone, Debug)]
pub struct RawBatch {
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub records_count: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub payload: Vec<u8>,
}

impl RawBatch {
    /// An honest batch of `values`, compressed with `codec`.
    pub fn honest(codec: Compression, values: &[Vec<u8>]) -> RawBatch {
        let count = values.len() as i32;
        RawBatch::claiming(codec, &encode_records(values), count)
    }

    /// `records` (already encoded) compressed with `codec`, with a header that claims `count`.
    pub fn claiming(codec: Compression, records: &[u8], count: i32) -> RawBatch {
        RawBatch {
            attributes: codec.attribute_bits(),
            last_offset_delta: count.wrapping_sub(1),
            records_count: count,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            payload: codec.compress(records),
        }
    }

    /// The batch's bytes with a correct length and CRC.
    pub fn seal(&self) -> BytesMut {
        let mut bytes = Vec::with_capacity(HEADER_BYTES + self.payload.len());
        bytes.extend_from_slice(&0i64.to_be_bytes());
        let length = (HEADER_BYTES - 12 + self.payload.len()) as i32;
        bytes.extend_from_slice(&length.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
        bytes.push(2);
        bytes.extend_from_slice(&[0; 4]);
        bytes.extend_from_slice(&self.attributes.to_be_bytes());
        bytes.extend_from_slice(&self.last_offset_delta.to_be_bytes());
        bytes.extend_from_slice(&self.base_timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.max_timestamp.to_be_bytes());
        bytes.extend_from_slice(&self.producer_id.to_be_bytes());
        bytes.extend_from_slice(&self.producer_epoch.to_be_bytes());
        bytes.extend_from_slice(&self.base_sequence.to_be_bytes());
        bytes.extend_from_slice(&self.records_count.to_be_bytes());
        assert_eq!(bytes.len(), HEADER_BYTES);
        bytes.extend_from_slice(&self.payload);
        let crc = crc32c::crc32c(&bytes[CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        BytesMut::from(&bytes[..])
    }
}

pub fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// One record's body (everything after its length): no key, `value`, no headers.
pub fn record_body(offset_delta: i64, value_length: usize) -> (Vec<u8>, Vec<u8>) {
    let mut head = vec![0u8]; // attributes
    put_varint(&mut head, 0); // timestamp delta
    put_varint(&mut head, offset_delta);
    put_varint(&mut head, -1); // null key
    put_varint(&mut head, value_length as i64);
    let tail = vec![0u8]; // no headers
    (head, tail)
}

/// Records with offset deltas 0, 1, 2, ... and the given values, framed as in a batch.
pub fn encode_records(values: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for (delta, value) in values.iter().enumerate() {
        let (head, tail) = record_body(delta as i64, value.len());
        put_varint(&mut out, (head.len() + value.len() + tail.len()) as i64);
        out.extend_from_slice(&head);
        out.extend_from_slice(value);
        out.extend_from_slice(&tail);
    }
    out
}

/// A zstd frame made of raw and RLE blocks (RFC 8878): `records` well-formed records, each
/// with a value of `value_bytes` zeros. A few dozen bytes per record inflate to `value_bytes`.
pub fn zstd_bomb(records: usize, value_bytes: usize) -> Vec<u8> {
    const BLOCK_MAX: usize = 128 * 1024;
    let mut frame = vec![0x28, 0xB5, 0x2F, 0xFD];
    frame.push(0x00); // no content size, not single-segment, no checksum, no dictionary
    frame.push(0x38); // window log 17: 128 KiB, the largest block
    let block = |frame: &mut Vec<u8>, kind: u32, size: usize, last: bool| {
        let header = ((size as u32) << 3) | (kind << 1) | u32::from(last);
        frame.extend_from_slice(&header.to_le_bytes()[..3]);
    };
    for delta in 0..records {
        let (head, tail) = record_body(delta as i64, value_bytes);
        let mut framing = Vec::new();
        put_varint(&mut framing, (head.len() + value_bytes + tail.len()) as i64);
        framing.extend_from_slice(&head);
        block(&mut frame, 0, framing.len(), false);
        frame.extend_from_slice(&framing);
        let mut zeros = value_bytes;
        while zeros > 0 {
            let run = zeros.min(BLOCK_MAX);
            block(&mut frame, 1, run, false);
            frame.push(0);
            zeros -= run;
        }
        block(&mut frame, 0, tail.len(), false);
        frame.extend_from_slice(&tail);
    }
    block(&mut frame, 0, 0, true);
    frame
}

/// Bytes that look random, from a seed (xorshift), for "noise labelled as a codec".
pub fn noise(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

pub const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// A raw Kafka ProduceRequest v3 frame for one partition, with `records` as its record set.
pub fn kafka_produce_v3(
    correlation_id: i32,
    topic: &str,
    partition: i32,
    records: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // Produce
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(&correlation_id.to_be_bytes());
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"fuzz");
    body.extend_from_slice(&(-1i16).to_be_bytes()); // no transactional id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks: all
    body.extend_from_slice(&10_000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(records.len() as i32).to_be_bytes());
    body.extend_from_slice(records);
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// Sends one ProduceRequest v3 and returns the partition's (error code, base offset).
pub fn kafka_produce(stream: &mut std::net::TcpStream, topic: &str, records: &[u8]) -> (i16, i64) {
    use std::io::{Read, Write};
    stream
        .write_all(&kafka_produce_v3(7, topic, 0, records))
        .unwrap();
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(&body[..4], &7i32.to_be_bytes(), "correlation id");
    // responses: [count i32][name i16+bytes][partitions i32][index i32][error i16][offset i64]
    let name_length = i16::from_be_bytes([body[8], body[9]]) as usize;
    let at = 10 + name_length + 4 + 4;
    let error = i16::from_be_bytes([body[at], body[at + 1]]);
    let offset = i64::from_be_bytes(body[at + 2..at + 10].try_into().unwrap());
    (error, offset)
}
