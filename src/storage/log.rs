//! One partition's log: the handle (`PartitionLog`), the state its parts share, open and close.
//!
//! A log belongs to one shard thread and is driven by that thread's runtime: the state sits in a
//! `RefCell` that no code holds across an `.await`, so there is no lock anywhere. Appends only
//! validate, assign offsets and queue (`append`); one flusher task per log takes everything
//! queued, writes it with one vectored io_uring write (group commit), and when any append asked
//! for it, covers the whole group with one fdatasync (`flusher`). While a write or sync is in
//! flight, new appends gather for the next group, so the group grows with the load and no timer
//! is needed. Reads (`read`), retention (`retention`) and metrics (`metrics`) are beside them;
//! recovery is `storage::recovery`, and the segment files are reached through `SegmentStore`.
//!
//! Visibility: a batch is readable once it is written (in the page cache), not when it is
//! assigned an offset, so a reader never sees an offset that a failed write could take back.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::rc::Rc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use crate::batch::BatchInfo;
use crate::runtime::{self, DIRECT_IO_ALIGNMENT, File, Notify, ThresholdNotify};

use super::config::LogConfig;
use super::damage::DamageMap;
use super::dedup::{self, DedupIds};
use super::dirsync;
use super::error::{Result, StorageError};
use super::producer_state::ProducerStates;
use super::recovery::recover_segments;
use super::segment::{self, DATA_SUFFIX, OFFSET_INDEX_SUFFIX, Segment, TIME_INDEX_SUFFIX};
use super::segment_store::SegmentStore;
use super::tail_cache::TailCache;

use append::{PendingAppend, recent_batches};
use metrics::LogMetrics;

mod append;
mod deduplicate;
mod flusher;
mod metrics;
mod read;
mod retention;
mod start;

pub use metrics::describe_metrics;
pub use read::TimedOffset;
pub use start::START_CHECKPOINT_FILE;

/// What an acknowledged append was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendAck {
    pub base_offset: u64,
    pub last_offset: u64,
    /// The broker's timestamp, when the log stamps LogAppendTime.
    pub log_append_time_ms: Option<i64>,
    pub log_start_offset: u64,
}

/// Whole batches read from the log, ready to send as they are.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    pub chunks: Vec<Bytes>,
    /// One past the last readable offset when the read was served.
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

impl ReadResult {
    pub fn size_bytes(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn concat(&self) -> Bytes {
        match &self.chunks[..] {
            [one] => one.clone(),
            chunks => Bytes::from(chunks.concat()),
        }
    }
}

/// A cheap handle on one partition's log; clones share it.
#[derive(Clone)]
pub struct PartitionLog {
    shared: Rc<Shared>,
}

struct Shared {
    /// The partition's directory and its sealed segments.
    store: SegmentStore,
    /// The partition's settings; replaced whole by `set_config` (a topic's settings changed
    /// while it runs). Borrowed only within a statement, never across an await.
    config: RefCell<LogConfig>,
    state: RefCell<State>,
    /// Wakes the flusher: appends are queued, or a close was asked for.
    work: Notify,
    /// Wakes appenders waiting for queue space.
    space: Notify,
    /// Wakes the waits for the high watermark to pass an offset (long polls, retries acked
    /// `written`): only those it passed, so a hot partition does not wake every idle long poll
    /// on each write.
    written: ThresholdNotify,
    /// Wakes the waits for the synced offset to pass an offset (retries acked `fsynced`).
    synced: ThresholdNotify,
    /// Wakes retries waiting for a queued append's outcome (written or failed).
    settled: Notify,
    /// Wakes whoever waits for the background tasks to stop (and retention, when a new log
    /// start leaves segments to delete).
    lifecycle: Notify,
    /// Wakes a move of the log start waiting for another's checkpoint write to finish.
    checkpoint_turn: Notify,
    metrics: LogMetrics,
}

struct State {
    /// Every segment, by base offset; the last one is the active segment.
    segments: BTreeMap<u64, Segment>,
    active: ActiveFiles,
    /// Read handles on sealed segments, least recently used first.
    read_files: Vec<(u64, File)>,
    /// The offset the next append is given.
    next_offset: u64,
    /// One past the last written offset: what readers may see.
    high_watermark: u64,
    /// One past the last offset covered by an fdatasync.
    synced_offset: u64,
    last_sync: Instant,
    /// A background (interval) fdatasync is running beside the write path.
    background_sync_running: bool,
    /// Someone waits for an fdatasync of data already written (a retried fsynced append).
    sync_requested: bool,
    /// Where in the active segment writeback was last started, and whether a start is running.
    writeback_from: u64,
    writeback_running: bool,
    pending: VecDeque<PendingAppend>,
    pending_bytes: usize,
    /// Appends waiting for queue space, in arrival order: only the first may go in, so that
    /// waiting never reorders a producer's appends.
    space_queue: VecDeque<u64>,
    next_ticket: u64,
    tail: TailCache,
    /// Idempotent producers' last batches, for recognising retries.
    producers: ProducerStates,
    /// The deduplication ids appended within the window.
    dedup: DedupIds,
    /// The partition's directory holds the marker that it ever held an id (or its write is
    /// under way).
    dedup_marked: bool,
    /// The lowest offset some queue group of the partition has not settled (None: no group):
    /// retention keeps the segments holding it unless the topic's policy is `drop`.
    retention_hold: Option<u64>,
    /// Damage isolated in sealed segments: reads step over it.
    damage: DamageMap,
    /// The start DeleteRecords set (durable in the start checkpoint); the log starts at the
    /// larger of this and the oldest segment's base.
    start_floor: u64,
    /// A write of the start checkpoint is under way (they take turns; close waits for it).
    checkpoint_writing: bool,
    /// Set when the log can no longer guarantee what it wrote (an fdatasync failed).
    failure: Option<StorageError>,
    closing: bool,
    flusher_stopped: bool,
    retention_stopped: bool,
}

struct ActiveFiles {
    /// Where appends are written (opened with O_DIRECT when `direct_io`).
    data: File,
    /// Where the active segment is read from (the same handle unless `direct_io`).
    read: File,
    offset_index: File,
    time_index: File,
    /// How many of the active segment's index entries are in its index files.
    index_entries_persisted: usize,
    /// With `direct_io`: the bytes of the segment's last, partly filled block, which the next
    /// aligned write must carry again.
    tail_block: Vec<u8>,
}

impl ActiveFiles {
    /// Opens the files that appends to `segment` go to; its index entries are all on disk.
    async fn open(dir: &Path, segment: &Segment, direct_io: bool) -> Result<ActiveFiles> {
        let path = |suffix| segment::file_path(dir, segment.base_offset, suffix);
        let read = File::open_rw(&path(DATA_SUFFIX)).await?;
        let (data, tail_block) = if direct_io {
            let block_start = segment.size_bytes - segment.size_bytes % DIRECT_IO_ALIGNMENT as u64;
            let tail = read
                .read_exact_at((segment.size_bytes - block_start) as usize, block_start)
                .await?;
            (
                File::open_direct_write(&path(DATA_SUFFIX)).await?,
                tail.to_vec(),
            )
        } else {
            (read.clone(), Vec::new())
        };
        Ok(ActiveFiles {
            data,
            read,
            offset_index: File::open_rw(&path(OFFSET_INDEX_SUFFIX)).await?,
            time_index: File::open_rw(&path(TIME_INDEX_SUFFIX)).await?,
            index_entries_persisted: segment.index.len(),
            tail_block,
        })
    }
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`, and starts its flusher and retention
    /// tasks on the current thread's runtime. `labels` name the partition in metrics.
    pub async fn open(
        dir: &Path,
        config: LogConfig,
        labels: Vec<(String, String)>,
    ) -> Result<PartitionLog> {
        config.validate().map_err(StorageError::InvalidConfig)?;
        let store = SegmentStore::local(dir);
        let opened = {
            let (store, config) = (store.clone(), config.clone());
            runtime::blocking(move || recover_at_open(&store, &config)).await?
        };
        let Opened {
            segments,
            damage,
            producer_batches,
            dedup_found,
            dedup_marked,
            start_floor,
        } = opened;
        let active = segments
            .values()
            .next_back()
            .expect("recovery leaves at least one segment");
        let active_files = ActiveFiles::open(dir, active, config.direct_io).await?;
        // What a crashed process left in the page cache is made durable before anyone builds on it.
        active_files.data.sync_data().await?;
        let end = active.next_offset;
        let active_size = active.size_bytes;
        let metrics = LogMetrics::new(&labels);
        let state = State {
            segments,
            active: active_files,
            read_files: Vec::new(),
            next_offset: end,
            high_watermark: end,
            synced_offset: end,
            last_sync: Instant::now(),
            background_sync_running: false,
            sync_requested: false,
            writeback_from: active_size,
            writeback_running: false,
            pending: VecDeque::new(),
            pending_bytes: 0,
            space_queue: VecDeque::new(),
            next_ticket: 0,
            tail: TailCache::new(config.tail_cache_bytes_max),
            producers: ProducerStates::rebuilt(&producer_batches),
            dedup: DedupIds::rebuilt(dedup_found, &config, now_ms()),
            dedup_marked,
            retention_hold: None,
            damage,
            // Recovery may have cut a torn tail below the checkpointed start.
            start_floor: start_floor.unwrap_or(0).min(end),
            checkpoint_writing: false,
            failure: None,
            closing: false,
            flusher_stopped: false,
            retention_stopped: false,
        };
        let shared = Rc::new(Shared {
            store,
            config: RefCell::new(config),
            state: RefCell::new(state),
            work: Notify::default(),
            space: Notify::default(),
            written: ThresholdNotify::default(),
            synced: ThresholdNotify::default(),
            settled: Notify::default(),
            lifecycle: Notify::default(),
            checkpoint_turn: Notify::default(),
            metrics,
        });
        shared.publish_gauges();
        runtime::spawn_detached(flusher::run_flusher(shared.clone()));
        runtime::spawn_detached(retention::run_retention(shared.clone()));
        Ok(PartitionLog { shared })
    }

    pub fn dir(&self) -> &Path {
        self.shared.store.dir()
    }

    /// The settings in force now.
    pub fn config(&self) -> LogConfig {
        self.shared.config().clone()
    }

    /// Puts new settings in force without a restart: the next append checks the new limits,
    /// the next roll the new segment size, the next retention pass the new retention, the
    /// flusher the new flush interval. `direct_io` stays as the log was opened (its files are).
    pub fn set_config(&self, mut config: LogConfig) -> Result<()> {
        config.validate().map_err(StorageError::InvalidConfig)?;
        config.direct_io = self.shared.config().direct_io;
        *self.shared.config.borrow_mut() = config;
        self.shared.work.notify();
        Ok(())
    }

    /// Tells retention the lowest offset the partition's queue groups have not all settled
    /// (None: it has no queue group). Segments at or above it are kept unless the topic's
    /// `queue_retention_policy` is `drop`.
    pub fn set_retention_hold(&self, hold: Option<u64>) {
        self.shared.state.borrow_mut().retention_hold = hold;
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.shared.state.borrow().log_start_offset()
    }

    /// The idempotent producers this partition remembers (Kafka's DescribeProducers).
    pub fn producers(&self) -> Vec<super::producer_state::ProducerView> {
        self.shared.state.borrow().producers.views()
    }

    /// One past the last readable offset (Kafka's high watermark and log end offset).
    pub fn high_watermark(&self) -> u64 {
        self.shared.state.borrow().high_watermark
    }

    /// One past the last offset an fdatasync covers.
    pub fn synced_offset(&self) -> u64 {
        self.shared.state.borrow().synced_offset
    }

    pub fn segment_count(&self) -> usize {
        self.shared.state.borrow().segments.len()
    }

    pub fn size_bytes(&self) -> u64 {
        self.shared.state.borrow().size_bytes()
    }

    /// The damage isolated in sealed segments (at open, or found by reads since).
    pub fn damaged_ranges(&self) -> Vec<super::damage::DamagedRange> {
        self.shared
            .state
            .borrow()
            .damage
            .ranges()
            .cloned()
            .collect()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.shared
            .state
            .borrow()
            .segments
            .keys()
            .copied()
            .collect()
    }

    /// Resolves once the log holds data at `offset` (the high watermark passed it) or the log
    /// is closing. Long polls race this against their deadline.
    pub async fn wait_for_data(&self, offset: u64) {
        loop {
            let arrived = self.shared.written.wait_past(offset);
            {
                let state = self.shared.state.borrow();
                if state.high_watermark > offset || state.closing {
                    return;
                }
            }
            arrived.await;
        }
    }

    /// Writes and fsyncs everything queued, stops the background tasks (waiting for a
    /// retention deletion or a start checkpoint write under way), and refuses further appends. Reads keep working on what is
    /// there.
    pub async fn close(&self) -> Result<()> {
        self.shared.state.borrow_mut().closing = true;
        self.shared.work.notify();
        self.shared.wake_all_waiters();
        self.shared.lifecycle.notify();
        loop {
            let stopped = self.shared.lifecycle.wait();
            {
                let state = self.shared.state.borrow();
                if state.flusher_stopped && state.retention_stopped && !state.checkpoint_writing {
                    return match &state.failure {
                        Some(failure) => Err(failure.clone()),
                        None => Ok(()),
                    };
                }
            }
            stopped.await;
        }
    }
}

impl Shared {
    /// The settings in force (a short borrow: never held across an await).
    fn config(&self) -> std::cell::Ref<'_, LogConfig> {
        self.config.borrow()
    }

    /// Wakes every waiter of the log, for what is beside the offsets: a close, a failure.
    fn wake_all_waiters(&self) {
        self.written.wake_all();
        self.synced.wake_all();
        self.settled.notify();
        self.checkpoint_turn.notify();
    }
}

/// What recovery found at open, gathered on the blocking pool.
struct Opened {
    segments: BTreeMap<u64, Segment>,
    damage: DamageMap,
    /// The active segment's recent batches, for idempotent producers' state.
    producer_batches: Vec<BatchInfo>,
    /// The deduplication ids in the log's tail (see `storage::dedup`).
    dedup_found: Vec<(dedup::DedupId, u64, i64)>,
    dedup_marked: bool,
    /// The start DeleteRecords set, from the start checkpoint.
    start_floor: Option<u64>,
}

/// The blocking part of opening a log: the directory made durable, every segment recovered,
/// and the tail read for producers' state. Runs on the blocking pool, so it holds only `Send`
/// data.
fn recover_at_open(store: &SegmentStore, config: &LogConfig) -> Result<Opened> {
    dirsync::create_dir_all_durable(store.dir())?;
    let (segments, damage) = recover_segments(store, config)?;
    let active = segments
        .values()
        .next_back()
        .ok_or_else(|| StorageError::Failed("recovery left no segment".into()))?;
    let producer_batches = recent_batches(store.dir(), active)?;
    let all: Vec<&Segment> = segments.values().collect();
    let dedup_found = dedup::scan(store.dir(), &all, config, now_ms())?;
    Ok(Opened {
        segments,
        damage,
        producer_batches,
        dedup_found,
        dedup_marked: dedup::marked(store.dir()),
        start_floor: start::read_checkpoint(store.dir())?,
    })
}

impl State {
    fn log_start_offset(&self) -> u64 {
        let oldest = *self
            .segments
            .keys()
            .next()
            .expect("a log has at least one segment");
        oldest.max(self.start_floor)
    }

    fn size_bytes(&self) -> u64 {
        self.segments
            .values()
            .map(|segment| segment.size_bytes)
            .sum()
    }

    fn active_segment(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log has an active segment")
    }

    fn check_open(&self) -> Result<()> {
        if let Some(failure) = &self.failure {
            return Err(failure.clone());
        }
        if self.closing {
            return Err(StorageError::Closed);
        }
        Ok(())
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::BytesMut;

    use super::*;
    use crate::batch::{BatchBuilder, Compression, Record};
    use crate::storage::config::AckLevel;

    fn records(count: usize) -> BytesMut {
        let mut builder = BatchBuilder::new(Compression::None);
        for _ in 0..count {
            builder.push(Record::new(1_000, None, Some(&b"tick"[..])));
        }
        BytesMut::from(&builder.build()[..])
    }

    #[test]
    fn appends_and_syncs_wake_no_long_poll_until_its_offset_is_there() {
        runtime::block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let config = LogConfig {
                flush_interval_ms: None,
                ..LogConfig::default()
            };
            let log = PartitionLog::open(dir.path(), config, Vec::new())
                .await
                .unwrap();
            let target = log.high_watermark() + 250;
            let waiters: Vec<_> = (0..100)
                .map(|_| {
                    let log = log.clone();
                    runtime::spawn(async move { log.wait_for_data(target).await })
                })
                .collect();
            runtime::sleep(Duration::from_millis(10)).await;
            assert_eq!(log.shared.written.waiter_count(), 100);
            for n in 0..240 {
                let level = if n % 10 == 0 {
                    AckLevel::Fsynced
                } else {
                    AckLevel::Written
                };
                log.append(records(1), level).await.unwrap();
            }
            assert_eq!(
                log.shared.written.wake_count(),
                0,
                "240 appends (24 fsynced) short of the offset woke no long poll"
            );
            log.append(records(20), AckLevel::Written).await.unwrap();
            for waiter in waiters {
                waiter.await.unwrap();
            }
            assert_eq!(log.shared.written.wake_count(), 100, "each woke once");
            let abandoned = runtime::timeout(
                Duration::from_millis(5),
                log.wait_for_data(log.high_watermark()),
            )
            .await;
            assert!(abandoned.is_none());
            assert_eq!(
                log.shared.written.waiter_count(),
                0,
                "a long poll that timed out leaves nothing behind"
            );
            log.close().await.unwrap();
        });
    }
}
