//! Retention: whole sealed segments go once they are older than `retention_ms`, the log is
//! over `retention_bytes_max`, or they lie wholly below the log start DeleteRecords set (but
//! the first two never take a segment holding messages a queue group has not settled, unless
//! the topic's `queue_retention_policy` is `drop`),
//! checked by one task per log every `retention_check_interval_ms` (and at once after a new
//! log start).
//!
//! Segments leave the in-memory state first (so no new read plans into them) and their files
//! are deleted after; a read that already holds a handle finishes on the unlinked file.

use std::rc::Rc;
use std::time::Duration;

use tracing::{info, warn};

use super::{PartitionLog, Shared, now_ms};
use crate::runtime;
use crate::storage::config::QueueRetentionPolicy;
use crate::storage::error::Result;

impl PartitionLog {
    /// Deletes expired whole segments now, on the calling thread, returning how many went. The
    /// log's own retention task does the same with the deletions on the blocking pool; this is
    /// for tests and tools that want retention at a moment of their choosing.
    pub fn enforce_retention(&self) -> Result<usize> {
        let doomed = self.shared.take_expired(now_ms());
        let deleted = self.shared.store.delete_blocking(&doomed);
        self.shared.retention_done(&doomed, deleted)
    }
}

impl Shared {
    /// Takes the sealed segments that retention deletes at `now_ms` out of the state, oldest
    /// first, so that no read plans into them from here on; their files go after.
    fn take_expired(&self, now_ms: i64) -> Vec<u64> {
        let mut state = self.state.borrow_mut();
        let mut total = state.size_bytes();
        let mut doomed = Vec::new();
        let floor = state.start_floor;
        let sealed: Vec<(u64, u64, u64, i64)> = state
            .segments
            .values()
            .rev()
            .skip(1)
            .rev()
            .map(|segment| {
                (
                    segment.base_offset,
                    segment.next_offset,
                    segment.size_bytes,
                    segment.max_timestamp,
                )
            })
            .collect();
        for (base, next_offset, size_bytes, max_timestamp) in sealed {
            let below_start = next_offset <= floor;
            let by_age = self
                .config()
                .retention_ms
                .is_some_and(|retention| max_timestamp < now_ms.saturating_sub(retention as i64));
            let by_size = self
                .config()
                .retention_bytes_max
                .is_some_and(|limit| total.saturating_sub(size_bytes) >= limit);
            if !by_age && !by_size && !below_start {
                break;
            }
            // Unsettled queue messages stop retention (not DeleteRecords or a purge: those
            // are asked for), unless the topic lets it drop them.
            let holds_unsettled = state.retention_hold.is_some_and(|hold| next_offset > hold);
            if holds_unsettled
                && !below_start
                && self.config().queue_retention_policy == QueueRetentionPolicy::Keep
            {
                break;
            }
            total = total.saturating_sub(size_bytes);
            state.segments.remove(&base);
            state.read_files.retain(|(file_base, _)| *file_base != base);
            state.damage.remove_segment(base);
            doomed.push(base);
        }
        let start = state.log_start_offset();
        state.tail.drop_before(start);
        doomed
    }

    /// Accounts for the deletion of `doomed` (taken by `take_expired`), returning how many went.
    fn retention_done(&self, doomed: &[u64], deleted: std::io::Result<()>) -> Result<usize> {
        deleted?;
        for base in doomed {
            info!(dir = %self.store.dir().display(), segment = base, "retention deleted segment");
        }
        if !doomed.is_empty() {
            self.metrics
                .retention_deleted_segments
                .increment(doomed.len() as u64);
            self.publish_gauges();
        }
        Ok(doomed.len())
    }
}

/// The log's retention task: every `retention_check_interval_ms` until the log closes. `close`
/// waits for it to stop, so that no deletion of this log's files is still running when a topic
/// of the same name re-creates the directory.
pub(super) async fn run_retention(shared: Rc<Shared>) {
    check_periodically(&shared).await;
    shared.state.borrow_mut().retention_stopped = true;
    shared.lifecycle.notify();
}

async fn check_periodically(shared: &Shared) {
    let period = Duration::from_millis(shared.config().retention_check_interval_ms);
    loop {
        let stop = shared.lifecycle.wait();
        if shared.state.borrow().closing {
            return;
        }
        // Woken early: a close (checked here) or a new log start (whose segments go now).
        runtime::timeout(period, stop).await;
        if shared.state.borrow().closing {
            return;
        }
        let doomed = shared.take_expired(now_ms());
        let deleted = if doomed.is_empty() {
            Ok(())
        } else {
            shared.store.delete(doomed.clone()).await
        };
        if let Err(error) = shared.retention_done(&doomed, deleted) {
            warn!(dir = %shared.store.dir().display(), %error, "retention failed");
        }
    }
}
