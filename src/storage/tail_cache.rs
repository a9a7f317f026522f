//! The newest batches of a partition, kept in memory and bounded in bytes, so that consumers
//! reading at the tail are served without touching the disk. Entries are slices of the very
//! buffers that were written, so caching costs no copy.

use std::collections::VecDeque;

use bytes::Bytes;

struct CachedBatch {
    base_offset: u64,
    next_offset: u64,
    bytes: Bytes,
}

pub struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
    bytes_max: usize,
}

impl TailCache {
    pub fn new(bytes_max: usize) -> TailCache {
        TailCache {
            batches: VecDeque::new(),
            bytes: 0,
            bytes_max,
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Adds the batch that follows the newest cached one, evicting the oldest to stay in bounds.
    pub fn push(&mut self, base_offset: u64, next_offset: u64, bytes: Bytes) {
        if let Some(last) = self.batches.back() {
            assert_eq!(
                last.next_offset, base_offset,
                "cached batches are contiguous"
            );
        }
        self.bytes += bytes.len();
        self.batches.push_back(CachedBatch {
            base_offset,
            next_offset,
            bytes,
        });
        while self.bytes > self.bytes_max {
            let evicted = self
                .batches
                .pop_front()
                .expect("over budget means not empty");
            self.bytes -= evicted.bytes.len();
        }
    }

    /// Whole batches from the one holding `offset`, up to `max_bytes` (always at least one), or
    /// None when `offset` is older than the cache.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Option<Vec<Bytes>> {
        let first = self.batches.front()?;
        if offset < first.base_offset {
            return None;
        }
        let start = self
            .batches
            .partition_point(|batch| batch.next_offset <= offset);
        let mut chunks = Vec::new();
        let mut total = 0;
        for batch in self.batches.range(start..) {
            if !chunks.is_empty() && total + batch.bytes.len() > max_bytes {
                break;
            }
            total += batch.bytes.len();
            chunks.push(batch.bytes.clone());
        }
        Some(chunks)
    }

    /// Forgets batches that end at or before `offset` (retention moved the log start).
    pub fn drop_before(&mut self, offset: u64) {
        while self
            .batches
            .front()
            .is_some_and(|batch| batch.next_offset <= offset)
        {
            let dropped = self.batches.pop_front().expect("checked above");
            self.bytes -= dropped.bytes.len();
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_whole_batches_and_stays_in_bounds() {
        let mut cache = TailCache::new(10);
        cache.push(0, 2, Bytes::from_static(b"aaaa"));
        cache.push(2, 5, Bytes::from_static(b"bbbb"));
        assert_eq!(
            cache.read(3, 100).unwrap(),
            vec![Bytes::from_static(b"bbbb")]
        );
        assert_eq!(
            cache.read(0, 5).unwrap().len(),
            1,
            "max_bytes stops before the second batch"
        );
        assert_eq!(
            cache.read(0, 1).unwrap().len(),
            1,
            "one batch even over max_bytes"
        );
        cache.push(5, 6, Bytes::from_static(b"cccc"));
        assert_eq!(cache.bytes(), 8);
        assert!(cache.read(1, 100).is_none(), "offset 1 was evicted");
        assert_eq!(
            cache.read(6, 100).unwrap().len(),
            0,
            "nothing past the end yet"
        );
        cache.drop_before(5);
        assert_eq!(cache.bytes(), 4);
    }
}
