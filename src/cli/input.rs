//! Splits a byte stream (stdin) into records at a delimiter, holding at most one record plus
//! one read chunk: bytes are bytes (no UTF-8 check, no `\r` stripping), and a record longer than
//! the limit is skipped as it streams past, reported by its number, without buffering it.

use std::io::{self, Read};

use bytes::{Buf, Bytes, BytesMut};

const READ_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Item {
    Record(Bytes),
    /// A record longer than the limit, skipped; `bytes` is its length.
    Oversized {
        bytes: u64,
    },
}

pub struct Splitter<R> {
    reader: R,
    delimiter: Vec<u8>,
    /// Unconsumed input: the start of the next record.
    pending: BytesMut,
    /// `pending[..scanned]` holds no whole delimiter.
    scanned: usize,
    record_bytes_max: usize,
    /// Bytes of an oversized record dropped so far (Some while skipping one).
    skipping: Option<u64>,
    eof: bool,
}

impl<R: Read> Splitter<R> {
    pub fn new(reader: R, delimiter: Vec<u8>, record_bytes_max: usize) -> Splitter<R> {
        assert!(
            !delimiter.is_empty(),
            "the delimiter is checked when parsed"
        );
        Splitter {
            reader,
            delimiter,
            pending: BytesMut::new(),
            scanned: 0,
            record_bytes_max,
            skipping: None,
            eof: false,
        }
    }

    fn find(&self) -> Option<usize> {
        let from = self.scanned.saturating_sub(self.delimiter.len() - 1);
        let window = self.pending.get(from..)?;
        let found = match self.delimiter.as_slice() {
            [byte] => window.iter().position(|b| b == byte),
            delimiter => window
                .windows(delimiter.len())
                .position(|candidate| candidate == delimiter),
        };
        found.map(|position| from + position)
    }

    /// The next item that is whole in what was read already, without reading.
    pub fn next_buffered(&mut self) -> Option<Item> {
        if let Some(position) = self.find() {
            let record = self.pending.split_to(position).freeze();
            self.pending.advance(self.delimiter.len());
            self.scanned = 0;
            return Some(match self.skipping.take() {
                Some(skipped) => Item::Oversized {
                    bytes: skipped + position as u64,
                },
                None => Item::Record(record),
            });
        }
        self.scanned = self.pending.len();
        // Keep what could be the start of a delimiter split across reads.
        let keep = self.delimiter.len() - 1;
        if self.pending.len() > self.record_bytes_max + keep {
            let drop = self.pending.len() - keep;
            *self.skipping.get_or_insert(0) += drop as u64;
            self.pending.advance(drop);
            self.scanned = self.pending.len();
        }
        if !self.eof {
            return None;
        }
        match (self.skipping.take(), self.pending.is_empty()) {
            (Some(skipped), _) => Some(Item::Oversized {
                bytes: skipped + self.pending.split().len() as u64,
            }),
            (None, true) => None,
            (None, false) => Some(Item::Record(self.pending.split().freeze())),
        }
    }

    /// Reads one chunk (blocking); false at the end of the input.
    pub fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        let length = self.pending.len();
        self.pending.resize(length + READ_CHUNK_BYTES, 0);
        let read = loop {
            match self.reader.read(&mut self.pending[length..]) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let read = match read {
            Ok(read) => read,
            Err(error) => {
                self.pending.truncate(length);
                return Err(error);
            }
        };
        self.pending.truncate(length + read);
        if read == 0 {
            self.eof = true;
        }
        Ok(true)
    }

    /// The items available now, at least one unless the input is over (then none), at most
    /// `count_max`: blocks only while it has nothing to return, so a slow stream (`tail -F`)
    /// is sent as it comes.
    pub fn next_items(&mut self, count_max: usize) -> io::Result<Vec<Item>> {
        let mut items = Vec::new();
        while items.len() < count_max {
            match self.next_buffered() {
                Some(item) => items.push(item),
                None if !items.is_empty() => break,
                None => {
                    if !self.fill()? {
                        break;
                    }
                }
            }
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8], delimiter: &[u8], max: usize) -> Vec<Item> {
        let mut splitter = Splitter::new(input, delimiter.to_vec(), max);
        let mut all = Vec::new();
        loop {
            let items = splitter.next_items(3).unwrap();
            if items.is_empty() {
                return all;
            }
            all.extend(items);
        }
    }

    fn record(bytes: &[u8]) -> Item {
        Item::Record(Bytes::copy_from_slice(bytes))
    }

    #[test]
    fn splits_at_delimiters_keeping_every_byte() {
        assert_eq!(
            split(b"a\r\n\n\xffb\nlast", b"\n", 100),
            [
                record(b"a\r"),
                record(b""),
                record(b"\xffb"),
                record(b"last")
            ]
        );
        assert_eq!(split(b"x||y||", b"||", 100), [record(b"x"), record(b"y")]);
        assert_eq!(split(b"", b"\n", 100), []);
    }

    #[test]
    fn an_oversized_record_is_skipped_alone() {
        let mut input = b"ok\n".to_vec();
        input.extend(vec![b'x'; 200_000]);
        input.extend(b"\nfine\n");
        input.extend(vec![b'y'; 150_000]);
        assert_eq!(
            split(&input, b"\n", 1000),
            [
                record(b"ok"),
                Item::Oversized { bytes: 200_000 },
                record(b"fine"),
                Item::Oversized { bytes: 150_000 }
            ]
        );
        // Whole in one read: returned as it is (the caller checks sizes exactly).
        assert_eq!(
            split(b"abc||de||", b"||", 2),
            [record(b"abc"), record(b"de")]
        );
    }
}
