//! Framing and the body primitives of the native protocol (see docs/PROTOCOL.md).
//!
//! A frame is a big-endian u32 length and that many bytes. The fixed request and response
//! headers are zerocopy structs; bodies are sequences of big-endian integers, u16-prefixed
//! strings, u32-prefixed byte strings and u32-counted arrays, read by `Reader` (which fails,
//! never panics, on short or bad input) and written by `FrameWriter`.
//!
//! Record bytes travel without copies: a produce request's records are split off the frame
//! buffer, and a fetch response's stored chunks are appended to the frame as separate buffers
//! for one vectored send.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::error::{ErrorCode, ProtocolError};

pub const LENGTH_PREFIX_BYTES: usize = 4;

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct RequestHeader {
    pub api_key: U16,
    pub api_version: U16,
    pub correlation_id: U32,
    pub client_id_length: U16,
}

#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned, Clone, Copy, Debug)]
#[repr(C)]
pub struct ResponseHeader {
    pub correlation_id: U32,
    pub error_code: U16,
    pub message_length: U16,
}

pub const REQUEST_HEADER_BYTES: usize = size_of::<RequestHeader>();
pub const RESPONSE_HEADER_BYTES: usize = size_of::<ResponseHeader>();

/// What the first bytes of a buffer say about the next frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameStatus {
    /// A whole frame of this many bytes (prefix included) is in the buffer.
    Ready(usize),
    /// More bytes are needed.
    Incomplete,
    /// The frame declares a length over the limit.
    TooLarge(usize),
}

pub fn frame_status(buffer: &[u8], frame_bytes_max: usize) -> FrameStatus {
    let Some(prefix) = buffer.first_chunk::<LENGTH_PREFIX_BYTES>() else {
        return FrameStatus::Incomplete;
    };
    let length = u32::from_be_bytes(*prefix) as usize;
    if length > frame_bytes_max {
        return FrameStatus::TooLarge(length);
    }
    if buffer.len() < LENGTH_PREFIX_BYTES + length {
        return FrameStatus::Incomplete;
    }
    FrameStatus::Ready(LENGTH_PREFIX_BYTES + length)
}

/// How many bytes to make room for before the next socket read: the rest of a frame whose
/// length is known (so a large frame arrives in one buffer), and at least `chunk_bytes`.
pub fn read_room(buffer: &[u8], chunk_bytes: usize) -> usize {
    match buffer.first_chunk::<LENGTH_PREFIX_BYTES>() {
        Some(prefix) => (LENGTH_PREFIX_BYTES + u32::from_be_bytes(*prefix) as usize)
            .saturating_sub(buffer.len())
            .max(chunk_bytes),
        None => chunk_bytes,
    }
}

fn malformed(what: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::MalformedRequest,
        format!("malformed body: {what}"),
    )
}

/// Reads body fields from an owned frame buffer; byte strings are split off without copying.
pub struct Reader {
    buffer: BytesMut,
}

impl Reader {
    pub fn new(buffer: BytesMut) -> Reader {
        Reader { buffer }
    }

    fn need(&self, bytes: usize, what: &str) -> Result<(), ProtocolError> {
        if self.buffer.len() < bytes {
            return Err(malformed(&format!(
                "{what} needs {bytes} bytes, {} left",
                self.buffer.len()
            )));
        }
        Ok(())
    }

    pub fn u8(&mut self) -> Result<u8, ProtocolError> {
        self.need(1, "u8")?;
        Ok(self.buffer.get_u8())
    }

    pub fn u16(&mut self) -> Result<u16, ProtocolError> {
        self.need(2, "u16")?;
        Ok(self.buffer.get_u16())
    }

    pub fn u32(&mut self) -> Result<u32, ProtocolError> {
        self.need(4, "u32")?;
        Ok(self.buffer.get_u32())
    }

    pub fn i32(&mut self) -> Result<i32, ProtocolError> {
        self.need(4, "i32")?;
        Ok(self.buffer.get_i32())
    }

    pub fn u64(&mut self) -> Result<u64, ProtocolError> {
        self.need(8, "u64")?;
        Ok(self.buffer.get_u64())
    }

    pub fn i64(&mut self) -> Result<i64, ProtocolError> {
        self.need(8, "i64")?;
        Ok(self.buffer.get_i64())
    }

    pub fn string(&mut self) -> Result<String, ProtocolError> {
        let length = self.u16()? as usize;
        self.need(length, "string")?;
        let bytes = self.buffer.split_to(length);
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed("string is not UTF-8"))
    }

    pub fn bytes(&mut self) -> Result<BytesMut, ProtocolError> {
        let length = self.u32()? as usize;
        self.need(length, "byte string")?;
        Ok(self.buffer.split_to(length))
    }

    /// An array's element count, refused when it cannot possibly fit in what is left (each
    /// element takes at least `element_bytes_min`), so a hostile count allocates nothing.
    pub fn count(&mut self, element_bytes_min: usize) -> Result<usize, ProtocolError> {
        let count = self.u32()? as usize;
        if count.saturating_mul(element_bytes_min.max(1)) > self.buffer.len() {
            return Err(malformed(&format!(
                "array of {count} elements cannot fit in {} bytes",
                self.buffer.len()
            )));
        }
        Ok(count)
    }

    /// Every body must be consumed exactly: trailing bytes mean client and broker disagree.
    pub fn finish(self) -> Result<(), ProtocolError> {
        if !self.buffer.is_empty() {
            return Err(malformed(&format!(
                "{} unexpected trailing bytes",
                self.buffer.len()
            )));
        }
        Ok(())
    }
}

/// Builds one outgoing frame: a head of fields, then optionally record chunks sent as they are.
pub struct FrameWriter {
    head: BytesMut,
    chunks: Vec<Bytes>,
    chunks_bytes: usize,
}

impl Default for FrameWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameWriter {
    pub fn new() -> FrameWriter {
        let mut head = BytesMut::with_capacity(128);
        head.put_u32(0); // the length, filled in by `finish`
        FrameWriter {
            head,
            chunks: Vec::new(),
            chunks_bytes: 0,
        }
    }

    fn assert_no_chunks(&self) {
        assert!(
            self.chunks.is_empty(),
            "record chunks end a frame: nothing may follow them"
        );
    }

    pub fn put_header<T: IntoBytes + Immutable>(&mut self, header: &T) {
        self.assert_no_chunks();
        self.head.put_slice(header.as_bytes());
    }

    pub fn u8(&mut self, value: u8) {
        self.assert_no_chunks();
        self.head.put_u8(value);
    }

    pub fn u16(&mut self, value: u16) {
        self.assert_no_chunks();
        self.head.put_u16(value);
    }

    pub fn u32(&mut self, value: u32) {
        self.assert_no_chunks();
        self.head.put_u32(value);
    }

    pub fn i32(&mut self, value: i32) {
        self.assert_no_chunks();
        self.head.put_i32(value);
    }

    pub fn u64(&mut self, value: u64) {
        self.assert_no_chunks();
        self.head.put_u64(value);
    }

    pub fn i64(&mut self, value: i64) {
        self.assert_no_chunks();
        self.head.put_i64(value);
    }

    /// A string of at most u16::MAX bytes (longer ones are cut at a character boundary).
    pub fn string(&mut self, value: &str) {
        let mut end = value.len().min(u16::MAX as usize);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        self.u16(end as u16);
        self.head.put_slice(&value.as_bytes()[..end]);
    }

    pub fn bytes(&mut self, value: &[u8]) {
        self.u32(value.len() as u32);
        self.head.put_slice(value);
    }

    /// A byte string made of `chunks` laid end to end, sent without copying; it ends the frame.
    pub fn chunks(&mut self, chunks: Vec<Bytes>) {
        let total: usize = chunks.iter().map(Bytes::len).sum();
        self.u32(total as u32);
        self.chunks = chunks;
        self.chunks_bytes = total;
    }

    /// The frame as buffers to send in order, its length prefix filled in.
    pub fn finish(mut self) -> Vec<Bytes> {
        let length = self.head.len() - LENGTH_PREFIX_BYTES + self.chunks_bytes;
        self.head[..LENGTH_PREFIX_BYTES].copy_from_slice(&(length as u32).to_be_bytes());
        let mut buffers = Vec::with_capacity(1 + self.chunks.len());
        buffers.push(self.head.freeze());
        buffers.extend(self.chunks);
        buffers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_found_by_their_prefix() {
        assert_eq!(frame_status(&[0, 0], 100), FrameStatus::Incomplete);
        assert_eq!(
            frame_status(&[0, 0, 0, 3, 1, 2], 100),
            FrameStatus::Incomplete
        );
        assert_eq!(
            frame_status(&[0, 0, 0, 2, 1, 2, 9], 100),
            FrameStatus::Ready(6)
        );
        assert_eq!(frame_status(&[0, 0, 1, 0], 100), FrameStatus::TooLarge(256));
    }

    #[test]
    fn writer_and_reader_agree() {
        let mut writer = FrameWriter::new();
        writer.u16(7);
        writer.string("héllo");
        writer.i64(-5);
        writer.chunks(vec![Bytes::from_static(b"ab"), Bytes::from_static(b"cd")]);
        let frame: Vec<u8> = writer.finish().concat();
        assert_eq!(frame_status(&frame, 1000), FrameStatus::Ready(frame.len()));
        let mut reader = Reader::new(BytesMut::from(&frame[4..]));
        assert_eq!(reader.u16().unwrap(), 7);
        assert_eq!(reader.string().unwrap(), "héllo");
        assert_eq!(reader.i64().unwrap(), -5);
        assert_eq!(&reader.bytes().unwrap()[..], b"abcd");
        reader.finish().unwrap();
    }

    #[test]
    fn short_input_and_hostile_counts_are_errors() {
        let mut reader = Reader::new(BytesMut::from(&[0u8, 5, b'a'][..]));
        assert_eq!(
            reader.string().unwrap_err().code,
            ErrorCode::MalformedRequest
        );
        let mut reader = Reader::new(BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0][..]));
        assert!(reader.count(1).is_err());
    }
}
