//! Retention: whole sealed segments go once they are older than `retention_ms` or the log is
//! over `retention_bytes_max`, checked by one task per log every
//! `retention_check_interval_ms`.
//!
//! Segments leave the in-memory state first (so no new read plans into them) and their files
//! are deleted after; a read that already holds a handle finishes on the unlinked file.

use std::rc::Rc;
use std::time::Duration;

use tracing::{info, warn};

use super::{PartitionLog, Shared, now_ms};
use crate::runtime;
use crate::storage::error::Result;
use crate::storage::segment;

impl PartitionLog {
    /// Deletes expired whole segments now, returning how many went.
    pub fn enforce_retention(&self) -> Result<usize> {
        self.shared.enforce_retention(now_ms())
    }
}

impl Shared {
    fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let doomed = {
            let mut state = self.state.borrow_mut();
            let mut total = state.size_bytes();
            let mut doomed = Vec::new();
            let sealed: Vec<u64> = state.segments.keys().rev().skip(1).rev().copied().collect();
            for base in sealed {
                let segment = &state.segments[&base];
                let by_age = self.config.retention_ms.is_some_and(|retention| {
                    segment.max_timestamp < now_ms.saturating_sub(retention as i64)
                });
                let by_size = self
                    .config
                    .retention_bytes_max
                    .is_some_and(|limit| total.saturating_sub(segment.size_bytes) >= limit);
                if !by_age && !by_size {
                    break;
                }
                total -= segment.size_bytes;
                state.segments.remove(&base);
                state.read_files.retain(|(file_base, _)| *file_base != base);
                state.damage.remove_segment(base);
                doomed.push(base);
            }
            let start = state.log_start_offset();
            state.tail.drop_before(start);
            doomed
        };
        for base in &doomed {
            segment::remove_files(&self.dir, *base)?;
            info!(dir = %self.dir.display(), segment = base, "retention deleted segment");
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

pub(super) async fn run_retention(shared: Rc<Shared>) {
    let period = Duration::from_millis(shared.config.retention_check_interval_ms);
    loop {
        let stop = shared.lifecycle.wait();
        if shared.state.borrow().closing {
            return;
        }
        if runtime::timeout(period, stop).await.is_some() {
            continue;
        }
        if let Err(error) = shared.enforce_retention(now_ms()) {
            warn!(dir = %shared.dir.display(), %error, "retention failed");
        }
    }
}
