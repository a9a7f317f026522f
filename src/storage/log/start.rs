//! Moving a log's start forward (Kafka's DeleteRecords), and keeping it there across restarts.
//!
//! Without this, the start of a log is the base offset of its oldest segment. DeleteRecords may
//! put the start in the middle of a segment, so the start is the larger of that base offset and
//! a floor, kept in a small checkpoint file in the partition's directory (`log-start-offset`).
//! The floor is durable before it takes effect: written to a temporary file, fsynced, renamed
//! over the checkpoint and the directory fsynced, on the blocking pool. Only then do reads below
//! it become out of range; retention then deletes the sealed segments that lie wholly below it
//! (woken at once, so the space comes back without waiting for its period), and its bytes in a
//! segment that is still needed stay until that segment goes.
//!
//! Writes of the checkpoint take turns (one at a time per log), so a later, larger floor is
//! never overwritten by an earlier write finishing last; `close` waits for a write under way, so
//! a re-created topic's directory is never touched by its predecessor's checkpoint.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use tracing::{info, warn};

use super::PartitionLog;
use crate::runtime;
use crate::storage::dirsync;
use crate::storage::error::{Result, StorageError};

/// The checkpoint's name in the partition's directory.
pub const START_CHECKPOINT_FILE: &str = "log-start-offset";
/// What the checkpoint's one line starts with: its format's version.
const CHECKPOINT_VERSION: &str = "1";
/// A checkpoint is one short line; anything longer is not ours.
const CHECKPOINT_BYTES_MAX: u64 = 64;

impl PartitionLog {
    /// Moves the log's start to `offset` (Kafka's DeleteRecords), durably, and returns the new
    /// start. An offset past the high watermark is out of range; one at or before the current
    /// start changes nothing.
    pub async fn delete_records_before(&self, offset: u64) -> Result<u64> {
        loop {
            let turn = self.shared.checkpoint_turn.wait();
            {
                let mut state = self.shared.state.borrow_mut();
                state.check_open()?;
                if offset > state.high_watermark {
                    return Err(StorageError::OffsetOutOfRange {
                        requested: offset,
                        start: state.log_start_offset(),
                        end: state.high_watermark,
                    });
                }
                if offset <= state.log_start_offset() {
                    return Ok(state.log_start_offset());
                }
                if !state.checkpoint_writing {
                    state.checkpoint_writing = true;
                    break;
                }
            }
            turn.await;
        }
        let dir = self.dir().to_path_buf();
        let written = runtime::blocking(move || write_checkpoint(&dir, offset)).await;
        let start = {
            let mut state = self.shared.state.borrow_mut();
            state.checkpoint_writing = false;
            if written.is_ok() {
                state.start_floor = state.start_floor.max(offset);
                let start = state.log_start_offset();
                state.tail.drop_before(start);
            }
            state.log_start_offset()
        };
        self.shared.checkpoint_turn.notify();
        // Wakes close (waiting for the write) and retention (to delete what lies below).
        self.shared.lifecycle.notify();
        written?;
        self.shared.publish_gauges();
        info!(dir = %self.dir().display(), log_start_offset = start, "records deleted before the new log start");
        Ok(start)
    }
}

/// Writes `offset` as the checkpoint in `dir`, durably: a temporary file, fsynced, renamed over
/// the checkpoint, the directory fsynced.
fn write_checkpoint(dir: &Path, offset: u64) -> io::Result<()> {
    let path = dir.join(START_CHECKPOINT_FILE);
    let temporary = dir.join(format!("{START_CHECKPOINT_FILE}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(format!("{CHECKPOINT_VERSION} {offset}\n").as_bytes())?;
    file.sync_all()?;
    drop(file);
    dirsync::rename_durable(&temporary, &path)
}

/// The floor kept in `dir`'s checkpoint, if there is one. A checkpoint that cannot be read as
/// ours is ignored with a warning (the start is then the oldest segment's base): refusing to
/// open the partition would lose more than records coming back.
pub(super) fn read_checkpoint(dir: &Path) -> io::Result<Option<u64>> {
    let path = dir.join(START_CHECKPOINT_FILE);
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut text = String::new();
    let read = io::Read::read_to_string(&mut io::Read::take(file, CHECKPOINT_BYTES_MAX), &mut text);
    let parsed = read.ok().and_then(|_| parse_checkpoint(&text));
    if parsed.is_none() {
        warn!(path = %path.display(), "ignoring a log start checkpoint that does not parse");
    }
    Ok(parsed)
}

fn parse_checkpoint(text: &str) -> Option<u64> {
    let line = text.strip_suffix('\n')?;
    let (version, offset) = line.split_once(' ')?;
    if version != CHECKPOINT_VERSION || !offset.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    offset.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_garbage_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), None);
        write_checkpoint(dir.path(), 12_345).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(12_345));
        write_checkpoint(dir.path(), 12_346).unwrap();
        assert_eq!(read_checkpoint(dir.path()).unwrap(), Some(12_346));
        assert!(!dir.path().join("log-start-offset.tmp").exists());
        for garbage in [
            "",
            "1 12\n2",
            "2 12\n",
            "1 -4\n",
            "1 +4\n",
            "1 12",
            "1 99999999999999999999999\n",
        ] {
            fs::write(dir.path().join(START_CHECKPOINT_FILE), garbage).unwrap();
            assert_eq!(read_checkpoint(dir.path()).unwrap(), None, "{garbage:?}");
        }
    }
}
