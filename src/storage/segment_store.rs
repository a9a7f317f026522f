//! Where a partition's sealed segments are kept: the seam through which the log lists its
//! segments, opens one's data for reading and deletes segments.
//!
//! Reads of sealed segments and retention go through here, and nothing else in the log knows
//! that sealed segments are files in the partition's directory, so tiered storage (sealed
//! segments moved to an object store) can later be a second implementation without touching
//! the read path or retention. The active segment is not behind the seam: it is always local,
//! written by the flusher. Today there is one implementation, the local disk, and no trait: a
//! trait comes with the second store, when its shape is known.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::runtime::{self, File};

use super::segment::{self, DATA_SUFFIX};

/// A partition's segments on local disk. Cheap to clone; `Send`, so it can go to the blocking
/// pool with the work.
#[derive(Clone, Debug)]
pub struct SegmentStore {
    dir: Arc<Path>,
}

impl SegmentStore {
    pub fn local(dir: &Path) -> SegmentStore {
        SegmentStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of segment `base_offset`'s data, for a blocking scan of it (damage checks).
    pub fn data_path(&self, base_offset: u64) -> PathBuf {
        segment::file_path(&self.dir, base_offset, DATA_SUFFIX)
    }

    /// Base offsets of the segments, oldest first. Blocking: recovery calls it on the blocking
    /// pool.
    pub fn list(&self) -> io::Result<Vec<u64>> {
        segment::list_base_offsets(&self.dir)
    }

    /// A read handle on segment `base_offset`'s data, or None if it is gone (retention deleted
    /// it under a read).
    pub async fn open_read(&self, base_offset: u64) -> io::Result<Option<File>> {
        match File::open_read(&self.data_path(base_offset)).await {
            Ok(file) => Ok(Some(file)),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Deletes the segments' files, durably (one fsync of the directory), off the shard thread.
    pub async fn delete(&self, base_offsets: Vec<u64>) -> io::Result<()> {
        let store = self.clone();
        runtime::blocking(move || store.delete_blocking(&base_offsets)).await
    }

    /// `delete`, on the calling thread.
    pub fn delete_blocking(&self, base_offsets: &[u64]) -> io::Result<()> {
        if base_offsets.is_empty() {
            return Ok(());
        }
        for &base_offset in base_offsets {
            segment::remove_file_set(&self.dir, base_offset)?;
        }
        super::dirsync::sync_dir(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_opens_and_deletes_segments() {
        runtime::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = SegmentStore::local(dir.path());
            for base in [0, 100, 250] {
                segment::create_files(dir.path(), base).unwrap();
            }
            assert_eq!(store.list().unwrap(), vec![0, 100, 250]);
            assert!(store.open_read(100).await.unwrap().is_some());
            store.delete(vec![0, 100]).await.unwrap();
            assert_eq!(store.list().unwrap(), vec![250]);
            assert!(store.open_read(100).await.unwrap().is_none());
            store.delete(vec![100]).await.unwrap();
        });
    }
}
