//! The five compression codecs of RecordBatch v2, as Kafka's clients frame them.
//!
//! The broker's write path decompresses only to check (`reader`, capped and streaming, see
//! `validate.rs`) and stores what the producer compressed. The rest serves our client (compress
//! on produce, decompress on consume) and the operator's `log dump`.

use std::io::{Read, Write};

use super::{ATTRIBUTE_COMPRESSION_MASK, BatchError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// xerial's snappy stream header, which the Java client writes; librdkafka writes raw snappy.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_HEADER_BYTES: usize = 16;
/// Decompressed records larger than this are refused rather than allocated (a zip bomb guard).
pub const DECOMPRESSED_BYTES_MAX: usize = 256 * 1024 * 1024;

impl Compression {
    pub fn from_attributes(attributes: i16) -> Result<Compression, BatchError> {
        match attributes & ATTRIBUTE_COMPRESSION_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            4 => Ok(Compression::Zstd),
            other => Err(BatchError::BadCompression(other)),
        }
    }

    pub fn attribute_bits(self) -> i16 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 1,
            Compression::Snappy => 2,
            Compression::Lz4 => 3,
            Compression::Zstd => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub fn parse(name: &str) -> Option<Compression> {
        [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd]
            .into_iter()
            .find(|codec| codec.name() == name)
    }

    pub fn compress(self, input: &[u8]) -> Vec<u8> {
        match self {
            Compression::None => input.to_vec(),
            Compression::Gzip => {
                let mut encoder =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                encoder
                    .write_all(input)
                    .expect("writing to a Vec cannot fail");
                encoder.finish().expect("writing to a Vec cannot fail")
            }
            Compression::Snappy => snap::raw::Encoder::new()
                .compress_vec(input)
                .expect("snappy accepts any input below 4 GiB"),
            Compression::Lz4 => {
                let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
                encoder
                    .write_all(input)
                    .expect("writing to a Vec cannot fail");
                encoder.finish().expect("writing to a Vec cannot fail")
            }
            Compression::Zstd => zstd::bulk::compress(input, 1).expect("zstd accepts any input"),
        }
    }

    pub fn decompress(self, input: &[u8]) -> Result<Vec<u8>, BatchError> {
        self.decompress_at_most(input, DECOMPRESSED_BYTES_MAX)
    }

    /// `decompress`, refusing output over `bytes_max` (at most `DECOMPRESSED_BYTES_MAX`) before
    /// it is all inflated.
    pub fn decompress_at_most(self, input: &[u8], bytes_max: usize) -> Result<Vec<u8>, BatchError> {
        let limit = bytes_max.min(DECOMPRESSED_BYTES_MAX);
        let mut output = Vec::new();
        self.reader(input, limit)?
            .take(limit as u64 + 1)
            .read_to_end(&mut output)
            .map_err(|_| BatchError::BadRecord("compressed records do not decompress"))?;
        if output.len() > limit {
            return Err(BatchError::DecompressedTooLarge { limit });
        }
        Ok(output)
    }

    /// A streaming reader of `input` decompressed. What it allocates up front is bounded by
    /// `bytes_max` (the caller still stops reading at `bytes_max`): zstd's window is capped, and
    /// snappy, which has no streaming form for raw blocks, is inflated whole only when its
    /// declared sizes fit `bytes_max`.
    pub fn reader<'a>(
        self,
        input: &'a [u8],
        bytes_max: usize,
    ) -> Result<Box<dyn Read + 'a>, BatchError> {
        let bad = |_| BatchError::BadRecord("compressed records do not decompress");
        Ok(match self {
            Compression::None => Box::new(input),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
            Compression::Snappy => {
                Box::new(std::io::Cursor::new(snappy_decompress(input, bytes_max)?))
            }
            Compression::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(input)),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(bad)?;
                decoder
                    .window_log_max(zstd_window_log_max(bytes_max))
                    .map_err(bad)?;
                Box::new(decoder)
            }
        })
    }
}

/// The largest zstd window (log2 bytes) a frame may ask for: no larger than the output may be,
/// so a frame cannot make the decoder allocate past the cap, within zstd's own range (a window
/// below 1 MiB is never forced on a producer).
pub(super) fn zstd_window_log_max(bytes_max: usize) -> u32 {
    let log = usize::BITS - bytes_max.saturating_sub(1).leading_zeros();
    log.clamp(20, 27)
}

fn snappy_decompress(input: &[u8], bytes_max: usize) -> Result<Vec<u8>, BatchError> {
    let bad = |_| BatchError::BadRecord("snappy records do not decompress");
    let too_large = BatchError::DecompressedTooLarge { limit: bytes_max };
    let raw = |block: &[u8], room: usize| -> Result<Vec<u8>, BatchError> {
        let length = snap::raw::decompress_len(block).map_err(bad)?;
        if length > room {
            return Err(too_large.clone());
        }
        snap::raw::Decoder::new().decompress_vec(block).map_err(bad)
    };
    if !input.starts_with(XERIAL_MAGIC) {
        return raw(input, bytes_max);
    }
    let mut output = Vec::new();
    let mut rest = input.get(XERIAL_HEADER_BYTES..).unwrap_or_default();
    while !rest.is_empty() {
        let Some((length, tail)) = rest.split_first_chunk::<4>() else {
            return Err(BatchError::BadRecord(
                "xerial snappy block length truncated",
            ));
        };
        let length = u32::from_be_bytes(*length) as usize;
        let (block, after) = tail
            .split_at_checked(length)
            .ok_or(BatchError::BadRecord("xerial block truncated"))?;
        output.extend_from_slice(&raw(block, bytes_max - output.len())?);
        rest = after;
    }
    Ok(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let input: Vec<u8> = (0..10_000u32)
            .flat_map(|n| (n % 251).to_le_bytes())
            .collect();
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let packed = codec.compress(&input);
            assert_eq!(
                codec.decompress(&packed).unwrap(),
                input,
                "{}",
                codec.name()
            );
            assert_eq!(
                Compression::from_attributes(codec.attribute_bits()).unwrap(),
                codec
            );
        }
    }

    #[test]
    fn xerial_framed_snappy_is_read() {
        let block = snap::raw::Encoder::new()
            .compress_vec(b"framed by java")
            .unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1]);
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        assert_eq!(
            Compression::Snappy.decompress(&framed).unwrap(),
            b"framed by java"
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            assert!(
                codec.decompress(b"\x00\x01garbage").is_err(),
                "{}",
                codec.name()
            );
        }
    }
}
