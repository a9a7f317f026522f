//! Reading batches out of one segment file: find the batch that holds an offset (or a
//! timestamp) by walking headers from an index entry, then read whole batches from there.
//!
//! Everything read from the file is hostile: a length field may be anything, so every position
//! and size is checked against the segment's end before it is used, and a batch that fails its
//! CRC is never handed out. Known damage (`damage::DamagedRange`) is stepped over; a read that
//! meets damage nobody knew of returns the good batches before it, or a `Corrupt` error when it
//! starts there.

use bytes::Bytes;

use crate::batch::{self, HEADER_BYTES};
use crate::runtime::File;

use super::damage;
use super::error::{Result, StorageError};

/// How much a scan for a batch reads at a time when it looks for an offset or a timestamp.
const SCAN_CHUNK_BYTES: u64 = 64 * 1024;

/// Where in one segment a read or a timestamp lookup starts scanning.
pub(super) struct SegmentRead {
    pub base_offset: u64,
    pub position: u64,
    /// The segment's written size when the read was planned; nothing past it is read.
    pub end: u64,
    /// Damaged byte ranges of this segment, skipped.
    pub skips: Vec<(u64, u64)>,
}

impl SegmentRead {
    pub fn corrupt(&self, position: u64, detail: impl ToString) -> StorageError {
        StorageError::Corrupt {
            segment_base_offset: self.base_offset,
            position,
            detail: detail.to_string(),
        }
    }

    /// The position and size of the first batch from `self.position` whose header satisfies
    /// `wanted`, reading headers only (bodies of skipped batches are never read).
    pub async fn find(
        &self,
        file: &File,
        wanted: impl Fn(&batch::BatchHeader) -> bool,
    ) -> Result<Option<(u64, usize)>> {
        let mut position = damage::skip_damage(&self.skips, self.position);
        while position < self.end {
            let length = (self.end - position).min(SCAN_CHUNK_BYTES) as usize;
            if length < HEADER_BYTES {
                return Err(self.corrupt(position, "segment ends inside a batch header"));
            }
            let chunk = file.read_exact_at(length, position).await?;
            let mut next = position;
            let mut cursor = 0usize;
            while let Some(rest) = chunk
                .get(cursor..)
                .filter(|rest| rest.len() >= HEADER_BYTES)
            {
                let here = position + cursor as u64;
                let skipped = damage::skip_damage(&self.skips, here);
                if skipped != here {
                    next = skipped;
                    break;
                }
                let size = batch::framed_size(rest).map_err(|e| self.corrupt(here, e))?;
                if size as u64 > self.end - here {
                    return Err(self.corrupt(
                        here,
                        format!(
                            "batch length {size} runs past the segment's end {}",
                            self.end
                        ),
                    ));
                }
                let header = batch::header(rest).map_err(|e| self.corrupt(here, e))?;
                if header.magic != batch::MAGIC_V2 {
                    return Err(self.corrupt(here, batch::BatchError::BadMagic(header.magic)));
                }
                if wanted(header) {
                    return Ok(Some((here, size)));
                }
                next = here + size as u64;
                cursor = cursor.saturating_add(size);
            }
            if next <= position {
                // Only a partial header was left in the chunk: read again from it.
                next = position + cursor as u64;
            }
            assert!(next > position, "a scan always moves forward");
            position = next;
        }
        Ok(None)
    }

    /// Whole batches from `position` up to `max_bytes` (at least the first, of `first_size`),
    /// each checked against its CRC: a reader gets an error, never wrong bytes. The read stops
    /// before known damage and before the first batch that fails its check; only when that is
    /// the first batch is it an error.
    pub async fn read_whole_batches(
        &self,
        file: &File,
        position: u64,
        first_size: usize,
        max_bytes: usize,
    ) -> Result<Bytes> {
        let end = damage::next_damage(&self.skips, position)
            .unwrap_or(self.end)
            .min(self.end);
        if position >= end || first_size as u64 > end - position {
            return Err(self.corrupt(position, "the batch runs into damage or past the end"));
        }
        let length = (end - position).min(max_bytes.max(first_size) as u64) as usize;
        let chunk = file.read_exact_at(length, position).await?;
        let mut taken = 0;
        let mut expected_offset = None;
        for (start, bytes) in batch::iter_framed(&chunk) {
            let here = position + start as u64;
            let checked = batch::verify_crc(bytes).and_then(|()| batch::header(bytes).cloned());
            let header = match checked {
                Ok(header) => header,
                Err(error) if taken == 0 => return Err(self.corrupt(here, error)),
                Err(_) => break,
            };
            let base = header.base_offset.get();
            if expected_offset.is_some_and(|expected| expected != base) {
                if taken == 0 {
                    return Err(self.corrupt(here, format!("offset {base} breaks the sequence")));
                }
                break;
            }
            expected_offset =
                Some(base.saturating_add(i64::from(header.last_offset_delta.get())) + 1);
            taken = start + bytes.len();
        }
        if taken == 0 {
            return Err(self.corrupt(position, "no whole batch where the index points"));
        }
        Ok(chunk.slice(..taken))
    }
}
