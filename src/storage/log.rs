//! One partition's log: append with group commit, read by offset or timestamp, retention,
//! recovery on open, and a clean close.
//!
//! A log belongs to one shard thread and is driven by that thread's runtime: the state sits in a
//! `RefCell` that no code holds across an `.await`, so there is no lock anywhere. Appends only
//! validate, assign offsets and queue; one flusher task per log takes everything queued, writes
//! it with one vectored io_uring write (group commit), and when any append asked for it, covers
//! the whole group with one fdatasync. While a write or sync is in flight, new appends gather for
//! the next group, so the group grows with the load and no timer is needed.
//!
//! Visibility: a batch is readable once it is written (in the page cache), not when it is
//! assigned an offset, so a reader never sees an offset that a failed write could take back.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;
use metrics::{Counter, Gauge, Histogram, Label};
use tracing::{info, warn};

use crate::batch::{self, BatchInfo};
use crate::runtime::{self, AlignedBuffer, DIRECT_IO_ALIGNMENT, File, Notify};

use super::config::{AckLevel, LogConfig, TimestampType};
use super::damage::DamageMap;
use super::dirsync;
use super::error::{Result, StorageError};
use super::index::{OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use super::producer_state::{self, Outcome, ProducerStates};
use super::recovery::recover_segments;
use super::segment::{self, DATA_SUFFIX, OFFSET_INDEX_SUFFIX, Segment, TIME_INDEX_SUFFIX};
use super::tail_cache::TailCache;

mod read;

/// At most this many buffers go into one vectored write (Linux's IOV_MAX).
const WRITE_BUFFERS_MAX: usize = 1024;
/// Index entries are written to their files in blocks of this many (a block of the offset index
/// is 4 KiB), not one write per append: the index is a cache that recovery completes from the
/// data, so the entries not yet written only cost recovery a slightly longer scan.
const INDEX_ENTRIES_PER_WRITE: usize = 512;

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
    dir: PathBuf,
    config: LogConfig,
    state: RefCell<State>,
    /// Wakes the flusher: appends are queued, or a close was asked for.
    work: Notify,
    /// Wakes appenders waiting for queue space.
    space: Notify,
    /// Wakes readers waiting for new data (long polls).
    data: Notify,
    /// Wakes whoever waits for the background tasks to stop.
    lifecycle: Notify,
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
    /// Damage isolated in sealed segments: reads step over it.
    damage: DamageMap,
    /// Set when the log can no longer guarantee what it wrote (an fdatasync failed).
    failure: Option<StorageError>,
    closing: bool,
    flusher_stopped: bool,
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

struct PendingAppend {
    bytes: Bytes,
    batches: Vec<BatchInfo>,
    ack: AppendAck,
    level: AckLevel,
    reply: Option<oneshot::Sender<Result<AppendAck>>>,
    /// What retries of its idempotent batches wait on (None for the leading part of an append
    /// split across segments: the part carrying the reply settles it).
    outcome: Option<Outcome>,
}

impl PendingAppend {
    /// Settles the append's outcome (the first settlement stands): written, or failed.
    fn settle(&self, result: Result<(), StorageError>) {
        if let Some(outcome) = &self.outcome {
            outcome.borrow_mut().get_or_insert(result);
        }
    }

    fn answer(self, result: Result<AppendAck>) {
        if let Err(error) = &result {
            self.settle(Err(error.clone()));
        }
        if let Some(reply) = self.reply {
            let _ = reply.send(result);
        }
    }

    /// Splits off the batches from the first one (never the first of all) that would end more
    /// than `offsets_max` past `segment_base`: they go to the next segment, with the reply.
    fn split_beyond(&mut self, segment_base: u64, offsets_max: u64) -> Option<PendingAppend> {
        let keep = self.batches.iter().enumerate().position(|(index, info)| {
            index > 0 && (info.last_offset as u64).saturating_sub(segment_base) > offsets_max
        })?;
        let bytes_kept: usize = self.batches[..keep]
            .iter()
            .map(|info| info.size_bytes)
            .sum();
        let rest = PendingAppend {
            bytes: self.bytes.slice(bytes_kept..),
            batches: self.batches.split_off(keep),
            ack: self.ack,
            level: self.level,
            reply: self.reply.take(),
            outcome: self.outcome.take(),
        };
        self.bytes = self.bytes.slice(..bytes_kept);
        Some(rest)
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
        dirsync::create_dir_all_durable(dir)?;
        let (segments, damage) = recover_segments(dir, &config)?;
        let segments_for_producers = segments
            .values()
            .next_back()
            .cloned()
            .expect("recovery leaves a segment");
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
            producers: rebuild_producer_states(dir, &segments_for_producers)?,
            damage,
            failure: None,
            closing: false,
            flusher_stopped: false,
        };
        let shared = Rc::new(Shared {
            dir: dir.to_path_buf(),
            config,
            state: RefCell::new(state),
            work: Notify::default(),
            space: Notify::default(),
            data: Notify::default(),
            lifecycle: Notify::default(),
            metrics,
        });
        shared.publish_gauges();
        runtime::spawn_detached(run_flusher(shared.clone()));
        runtime::spawn_detached(run_retention(shared.clone()));
        Ok(PartitionLog { shared })
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.shared.config
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.shared.state.borrow().log_start_offset()
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

    /// Appends one or more record batches laid end to end in `records`. Offsets are assigned in
    /// the order appends are called; the acknowledgement waits as long as `level` asks.
    pub async fn append(&self, records: BytesMut, level: AckLevel) -> Result<AppendAck> {
        self.append_within(records, level, None).await
    }

    /// `append`, but refused with `Throttled` if the append cannot even be queued within
    /// `queue_wait_max` (the deadline covers only the wait for queue space, so a refused append
    /// was never written).
    pub async fn append_within(
        &self,
        mut records: BytesMut,
        level: AckLevel,
        queue_wait_max: Option<Duration>,
    ) -> Result<AppendAck> {
        let batches = validate_batches(&records, &self.shared.config)?;
        let place_in_line = self
            .wait_for_queue_space(records.len(), queue_wait_max)
            .await?;

        let shared = &self.shared;
        let mut state = shared.state.borrow_mut();
        state.check_open()?;
        // Idempotent producers: a retried batch gets its original offsets, nothing is stored.
        if let Some((ack, outcome)) = state.retried(&batches)? {
            drop(state);
            drop(place_in_line);
            if let Some(outcome) = outcome {
                self.wait_for_outcome(&outcome).await?;
            }
            self.wait_until_acknowledged(ack.last_offset, level).await?;
            return Ok(ack);
        }
        let log_append_time_ms =
            (shared.config.timestamp_type == TimestampType::LogAppendTime).then(now_ms);
        let base_offset = state.next_offset;
        let offsets: u64 = batches.iter().map(|info| info.records_count as u64).sum();
        if base_offset.saturating_add(offsets) > i64::MAX as u64 {
            return Err(
                batch::BatchError::BadRecord("the partition's offsets would pass 2^63").into(),
            );
        }
        let outcome = Outcome::default();
        let mut batches = batches;
        let mut position = 0;
        for info in &mut batches {
            // Validated: 1 <= records_count and last_offset_delta = records_count - 1.
            let offset_count = (info.records_count - 1) as u64;
            let assigned = state.next_offset;
            let bytes = &mut records[position..position + info.size_bytes];
            batch::set_base_offset(bytes, assigned as i64);
            if let Some(now) = log_append_time_ms {
                batch::set_log_append_time(bytes, now);
                info.max_timestamp = now;
            }
            info.base_offset = assigned as i64;
            info.last_offset = (assigned + offset_count) as i64;
            state.next_offset = assigned + offset_count + 1;
            state.producers.record(info, Some(&outcome));
            position += info.size_bytes;
        }
        let ack = AppendAck {
            base_offset,
            last_offset: state.next_offset - 1,
            log_append_time_ms,
            log_start_offset: state.log_start_offset(),
        };
        let (reply, answer) = match level {
            AckLevel::None => (None, None),
            _ => {
                let (sender, receiver) = oneshot::channel();
                (Some(sender), Some(receiver))
            }
        };
        state.pending_bytes += records.len();
        shared.metrics.pending_bytes.set(state.pending_bytes as f64);
        state.pending.push_back(PendingAppend {
            bytes: records.freeze(),
            batches,
            ack,
            level,
            reply,
            outcome: Some(outcome),
        });
        drop(state);
        drop(place_in_line);
        shared.work.notify();
        match answer {
            None => Ok(ack),
            Some(answer) => answer.await.unwrap_or(Err(StorageError::Closed)),
        }
    }

    /// Waits until the original append of a retried batch is written or has failed: only then
    /// are its offsets known to hold its data (a failed write rewinds them for reuse).
    async fn wait_for_outcome(&self, outcome: &Outcome) -> Result<()> {
        loop {
            let progress = self.shared.data.wait();
            if let Some(result) = outcome.borrow().clone() {
                return result;
            }
            self.shared.state.borrow().check_open()?;
            progress.await;
        }
    }

    /// Waits until the append that ends at `last_offset`, known written, is as durable as
    /// `level` asks (for a retried batch answered with its original offsets).
    async fn wait_until_acknowledged(&self, last_offset: u64, level: AckLevel) -> Result<()> {
        loop {
            let progress = self.shared.data.wait();
            {
                let state = self.shared.state.borrow();
                let done = match level {
                    AckLevel::None => true,
                    AckLevel::Written => state.high_watermark > last_offset,
                    AckLevel::Fsynced => state.synced_offset > last_offset,
                };
                if done {
                    return Ok(());
                }
                state.check_open()?;
                if state.synced_offset <= last_offset
                    && level == AckLevel::Fsynced
                    && state.pending.is_empty()
                {
                    drop(state);
                    // Nothing queued will sync it: ask the flusher for a sync of what is written.
                    self.shared.state.borrow_mut().sync_requested = true;
                    self.shared.work.notify();
                }
            }
            progress.await;
        }
    }

    /// Backpressure: waits while the queue of unwritten appends is full, first come first
    /// served. An append larger than the whole queue goes in alone, when the queue is empty.
    /// Returns the caller's place in line, which it holds until it has queued its append.
    async fn wait_for_queue_space(
        &self,
        bytes: usize,
        wait_max: Option<Duration>,
    ) -> Result<Option<SpaceTicket<'_>>> {
        let shared = &*self.shared;
        let fits = |state: &State| {
            state.pending_bytes == 0
                || state.pending_bytes + bytes <= shared.config.pending_bytes_max
        };
        let ticket = {
            let mut state = shared.state.borrow_mut();
            state.check_open()?;
            if state.space_queue.is_empty() && fits(&state) {
                return Ok(None);
            }
            let ticket = state.next_ticket;
            state.next_ticket += 1;
            state.space_queue.push_back(ticket);
            SpaceTicket { shared, ticket }
        };
        shared.metrics.backpressure_waits.increment(1);
        let started = Instant::now();
        loop {
            let space = shared.space.wait();
            {
                let state = shared.state.borrow();
                state.check_open()?;
                if state.space_queue.front() == Some(&ticket.ticket) && fits(&state) {
                    return Ok(Some(ticket));
                }
            }
            match wait_max {
                None => space.await,
                Some(wait_max) => {
                    let left = wait_max.saturating_sub(started.elapsed());
                    if left.is_zero() || runtime::timeout(left, space).await.is_none() {
                        return Err(StorageError::Throttled {
                            waited_ms: started.elapsed().as_millis() as u64,
                        });
                    }
                }
            }
        }
    }

    /// Resolves once the log holds data at `offset` (the high watermark passed it) or the log
    /// is closing. Long polls race this against their deadline.
    pub async fn wait_for_data(&self, offset: u64) {
        loop {
            let arrived = self.shared.data.wait();
            {
                let state = self.shared.state.borrow();
                if state.high_watermark > offset || state.closing {
                    return;
                }
            }
            arrived.await;
        }
    }

    /// Deletes expired whole segments now, returning how many went.
    pub fn enforce_retention(&self) -> Result<usize> {
        self.shared.enforce_retention(now_ms())
    }

    /// Writes and fsyncs everything queued, stops the background tasks, and refuses further
    /// appends. Reads keep working on what is there.
    pub async fn close(&self) -> Result<()> {
        self.shared.state.borrow_mut().closing = true;
        self.shared.work.notify();
        self.shared.data.notify();
        self.shared.lifecycle.notify();
        loop {
            let stopped = self.shared.lifecycle.wait();
            {
                let state = self.shared.state.borrow();
                if state.flusher_stopped {
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

/// A place in the line for queue space; leaving (or being dropped while waiting) lets the next in.
struct SpaceTicket<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl Drop for SpaceTicket<'_> {
    fn drop(&mut self) {
        self.shared
            .state
            .borrow_mut()
            .space_queue
            .retain(|ticket| *ticket != self.ticket);
        self.shared.space.notify();
    }
}

impl State {
    fn log_start_offset(&self) -> u64 {
        *self
            .segments
            .keys()
            .next()
            .expect("a log has at least one segment")
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

    /// Whether `batches` is an idempotent producer's retry of one batch already appended: then
    /// its original acknowledgement, and the outcome of its append if that is still pending.
    /// A retry mixed with new batches is out of sequence.
    fn retried(&self, batches: &[BatchInfo]) -> Result<Option<(AppendAck, Option<Outcome>)>> {
        let mut verdicts = Vec::with_capacity(batches.len());
        for info in batches {
            verdicts.push(self.producers.check(info)?);
        }
        if let [
            producer_state::Verdict::Duplicate {
                base_offset,
                last_offset,
                ref outcome,
            },
        ] = verdicts[..]
        {
            let ack = AppendAck {
                base_offset,
                last_offset,
                log_append_time_ms: None,
                log_start_offset: self.log_start_offset(),
            };
            return Ok(Some((ack, outcome.clone())));
        }
        if verdicts
            .iter()
            .any(|verdict| !matches!(verdict, producer_state::Verdict::Append))
        {
            let info = &batches[0];
            return Err(StorageError::OutOfOrderSequence {
                producer_id: info.producer_id,
                expected: -1,
                got: info.base_sequence,
            });
        }
        Ok(None)
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

impl Shared {
    fn publish_gauges(&self) {
        let state = self.state.borrow();
        let metrics = &self.metrics;
        metrics
            .log_start_offset
            .set(state.log_start_offset() as f64);
        metrics.log_end_offset.set(state.high_watermark as f64);
        metrics.segments.set(state.segments.len() as f64);
        metrics.size_bytes.set(state.size_bytes() as f64);
        metrics.tail_cache_bytes.set(state.tail.bytes() as f64);
        metrics.pending_bytes.set(state.pending_bytes as f64);
        metrics.damaged_bytes.set(state.damage.total_bytes() as f64);
        metrics.damaged_ranges.set(state.damage.count() as f64);
    }

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

    /// Fails every queued append (their offsets are void) and rewinds offset assignment to the
    /// high watermark, so the next append continues right after the last written batch.
    fn abandon_queued(&self, mut failed: Vec<PendingAppend>, error: &StorageError) {
        let mut state = self.state.borrow_mut();
        failed.extend(state.pending.drain(..));
        state.pending_bytes = 0;
        state.next_offset = state.high_watermark;
        for info in failed.iter().flat_map(|append| &append.batches) {
            state.producers.forget(info.producer_id);
        }
        drop(state);
        self.space.notify();
        for append in failed {
            append.answer(Err(error.clone()));
        }
        // Retries waiting on these appends' outcomes wake up to the failure.
        self.data.notify();
    }
}

/// What the flusher does next.
enum Step {
    Write(Vec<PendingAppend>),
    Sync,
    BackgroundSync,
    Wait(Option<Duration>),
    Stop,
}

async fn run_flusher(shared: Rc<Shared>) {
    loop {
        let work = shared.work.wait();
        let step = next_step(&shared);
        match step {
            Step::Write(group) => write_group(&shared, group).await,
            Step::Sync => {
                let _ = sync(&shared).await;
            }
            Step::BackgroundSync => start_background_sync(&shared),
            Step::Wait(None) => work.await,
            Step::Wait(Some(deadline)) => {
                runtime::timeout(deadline, work).await;
            }
            Step::Stop => {
                persist_index(&shared, 0).await;
                trim_direct_io_padding(&shared).await;
                break;
            }
        }
    }
    let mut state = shared.state.borrow_mut();
    state.flusher_stopped = true;
    let failure = state.failure.clone().unwrap_or(StorageError::Closed);
    let orphans: Vec<PendingAppend> = state.pending.drain(..).collect();
    drop(state);
    for append in orphans {
        append.answer(Err(failure.clone()));
    }
    shared.data.notify();
    shared.lifecycle.notify();
    shared.space.notify();
}

fn next_step(shared: &Shared) -> Step {
    let mut state = shared.state.borrow_mut();
    if state.failure.is_some() {
        return if state.closing {
            Step::Stop
        } else {
            Step::Wait(None)
        };
    }
    if !state.pending.is_empty() {
        let group: Vec<PendingAppend> = state.pending.drain(..).collect();
        state.pending_bytes = 0;
        shared.metrics.pending_bytes.set(0.0);
        drop(state);
        shared.space.notify();
        return Step::Write(group);
    }
    let unsynced = state.synced_offset < state.high_watermark;
    if std::mem::take(&mut state.sync_requested) && unsynced {
        return Step::Sync;
    }
    if state.closing {
        if state.background_sync_running {
            return Step::Wait(None);
        }
        return if unsynced { Step::Sync } else { Step::Stop };
    }
    match shared.config.flush_interval_ms {
        Some(interval) if unsynced && !state.background_sync_running => {
            let deadline = state.last_sync + Duration::from_millis(interval);
            match deadline.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Step::Wait(Some(left)),
                _ => Step::BackgroundSync,
            }
        }
        _ => Step::Wait(None),
    }
}

/// Starts the interval fdatasync beside the write path: writes go on while it runs (Linux
/// allows both on one file), so the periodic flush never stalls producers. Appends that asked
/// for `fsynced` do not rely on it: they get their own sync after their write.
fn start_background_sync(shared: &Rc<Shared>) {
    {
        let mut state = shared.state.borrow_mut();
        if state.background_sync_running {
            return;
        }
        state.background_sync_running = true;
    }
    let shared = shared.clone();
    runtime::spawn_detached(async move {
        let _ = sync(&shared).await;
        shared.state.borrow_mut().background_sync_running = false;
        shared.work.notify();
        shared.lifecycle.notify();
    });
}

/// Writes one group of appends: in runs that each fit the active segment and one vectored
/// write, rolling segments between runs; then one fdatasync if any append asked for it.
async fn write_group(shared: &Rc<Shared>, group: Vec<PendingAppend>) {
    if shared.config.group_commit_window_us > 0 {
        runtime::sleep(Duration::from_micros(shared.config.group_commit_window_us)).await;
    }
    let mut group = VecDeque::from(group);
    let mut awaiting_sync = Vec::new();
    let mut run: Vec<PendingAppend> = Vec::new();
    let mut run_bytes = 0u64;
    let offsets_max = shared.config.segment_offsets_max;
    while let Some(mut append) = group.pop_front() {
        let roll = {
            let mut state = shared.state.borrow_mut();
            let segment = state.active_segment();
            let projected = segment.size_bytes + run_bytes;
            let too_big = projected + append.bytes.len() as u64 > shared.config.segment_bytes_max;
            let too_old = segment.opened_at.elapsed()
                >= Duration::from_millis(shared.config.segment_age_ms_max);
            // An append that fits a segment whole is kept whole: roll before it.
            let too_many_offsets = !segment.fits_offsets(append.ack.last_offset, offsets_max);
            projected > 0 && (too_big || too_old || too_many_offsets)
        };
        if roll || run.len() == WRITE_BUFFERS_MAX {
            let written = std::mem::take(&mut run);
            run_bytes = 0;
            if let Err((error, failed)) = write_run(shared, written, &mut awaiting_sync).await {
                group.push_front(append);
                return fail_group(shared, error, failed, group, awaiting_sync).await;
            }
        }
        if roll && let Err(error) = roll_segment(shared).await {
            group.push_front(append);
            return fail_group(shared, error, Vec::new(), group, awaiting_sync).await;
        }
        // An append spanning more offsets than a segment may hold is split per batch: the
        // batches past the segment's reach start the next one.
        let segment_base = shared.state.borrow_mut().active_segment().base_offset;
        if let Some(rest) = append.split_beyond(segment_base, offsets_max) {
            group.push_front(rest);
        }
        run_bytes += append.bytes.len() as u64;
        run.push(append);
    }
    if let Err((error, failed)) = write_run(shared, run, &mut awaiting_sync).await {
        return fail_group(shared, error, failed, group, awaiting_sync).await;
    }
    if !awaiting_sync.is_empty() {
        let result = sync(shared).await;
        for append in awaiting_sync {
            let ack = append.ack;
            append.answer(result.clone().map(|()| ack));
        }
    }
}

/// Writes one run of appends at the end of the active segment, then makes them visible. Written
/// and none acks are answered here; fsynced ones wait in `awaiting_sync`.
async fn write_run(
    shared: &Rc<Shared>,
    run: Vec<PendingAppend>,
    awaiting_sync: &mut Vec<PendingAppend>,
) -> Result<(), (StorageError, Vec<PendingAppend>)> {
    if run.is_empty() {
        return Ok(());
    }
    let (file, position, base_offset) = {
        let mut state = shared.state.borrow_mut();
        let file = state.active.data.clone();
        let segment = state.active_segment();
        (file, segment.size_bytes, segment.base_offset)
    };
    let bytes: u64 = run.iter().map(|append| append.bytes.len() as u64).sum();
    let (buffers, write_position, next_tail_block) = if shared.config.direct_io {
        direct_io_write(&shared.state.borrow().active.tail_block, &run, position)
    } else {
        (
            run.iter().map(|append| append.bytes.clone()).collect(),
            position,
            Vec::new(),
        )
    };
    let started = Instant::now();
    if let Err(error) = file.write_all_at(buffers, write_position).await {
        shared.metrics.write_failures.increment(1);
        warn!(dir = %shared.dir.display(), segment = base_offset, %error, "write failed; cutting back");
        // Whatever part of the run reached the file is cut, so the file ends on a whole batch.
        let error = match file.set_len(position).await {
            Ok(()) => StorageError::from(error),
            Err(cut) => shared.fail(format!(
                "write failed ({error}) and the file could not be cut back ({cut})"
            )),
        };
        return Err((error, run));
    }
    shared.state.borrow_mut().active.tail_block = next_tail_block;
    shared
        .metrics
        .write_seconds
        .record(started.elapsed().as_secs_f64());
    shared.metrics.flush_bytes.record(bytes as f64);

    let mut misfit = None;
    {
        let mut state = shared.state.borrow_mut();
        let interval = shared.config.index_interval_bytes;
        for append in &run {
            let mut start = 0;
            for info in &append.batches {
                if let Err(reason) = state.active_segment().push_batch(info, interval) {
                    misfit.get_or_insert(reason);
                    break;
                }
                let end = start + info.size_bytes;
                let next = info.last_offset as u64 + 1;
                state.tail.push(
                    info.base_offset as u64,
                    next,
                    append.bytes.slice(start..end),
                );
                start = end;
                shared
                    .metrics
                    .appended_records
                    .increment(u64::from(info.records_count as u32));
            }
        }
        state.high_watermark = state.active_segment().next_offset;
        shared.metrics.appended_bytes.increment(bytes);
        shared
            .metrics
            .appended_batches
            .increment(run.iter().map(|a| a.batches.len() as u64).sum());
    }
    if let Some(reason) = misfit {
        // The roll decision keeps every batch within its segment's reach: this is a bug, and
        // the log can no longer say where its batches are, so it stops taking appends.
        let error = shared.fail(format!(
            "a written batch does not fit its segment: {reason}"
        ));
        return Err((error, run));
    }
    for append in &run {
        append.settle(Ok(()));
    }
    shared.publish_gauges();
    shared.data.notify();
    for append in run {
        if append.level == AckLevel::Fsynced {
            awaiting_sync.push(append);
        } else {
            let ack = append.ack;
            append.answer(Ok(ack));
        }
    }
    persist_index(shared, INDEX_ENTRIES_PER_WRITE).await;
    start_writeback_if_due(shared);
    Ok(())
}

/// The one aligned buffer an O_DIRECT write of `run` needs: the segment's partial last block
/// again, then the run's bytes, zero-padded to a whole block. Returns it, where to write it, and
/// the new partial last block. The copy is the price of bypassing the page cache, whose copy
/// costs far more on this kind of machine (bench/RESULTS.md).
fn direct_io_write(
    tail_block: &[u8],
    run: &[PendingAppend],
    position: u64,
) -> (Vec<Bytes>, u64, Vec<u8>) {
    let block_start = position - tail_block.len() as u64;
    assert_eq!(
        block_start % DIRECT_IO_ALIGNMENT as u64,
        0,
        "the tail block starts on a block boundary"
    );
    let length = tail_block.len() + run.iter().map(|append| append.bytes.len()).sum::<usize>();
    let mut buffer = AlignedBuffer::zeroed(length);
    let slice = buffer.as_mut_slice();
    slice[..tail_block.len()].copy_from_slice(tail_block);
    let mut at = tail_block.len();
    for append in run {
        slice[at..at + append.bytes.len()].copy_from_slice(&append.bytes);
        at += append.bytes.len();
    }
    let next_tail = slice[length - length % DIRECT_IO_ALIGNMENT..length].to_vec();
    (vec![buffer.into_bytes()], block_start, next_tail)
}

/// With `direct_io`, the last block is written whole, so the file ends in zero padding past the
/// last batch; cut it, so that a sealed or cleanly closed segment ends on its last batch.
/// (After a crash, recovery recognizes and cuts the padding.)
async fn trim_direct_io_padding(shared: &Rc<Shared>) {
    if !shared.config.direct_io {
        return;
    }
    let (file, size) = {
        let mut state = shared.state.borrow_mut();
        (state.active.read.clone(), state.active_segment().size_bytes)
    };
    if let Err(error) = file.set_len(size).await {
        warn!(dir = %shared.dir.display(), %error, "could not cut the direct-I/O padding; recovery will");
    }
}

/// Starts kernel writeback of the active segment's newest `writeback_bytes` or more, one at a
/// time, without waiting for it.
fn start_writeback_if_due(shared: &Rc<Shared>) {
    let every = shared.config.writeback_bytes;
    let (file, from, length) = {
        let mut state = shared.state.borrow_mut();
        let end = state.active_segment().size_bytes;
        if every == 0 || state.writeback_running || end < state.writeback_from + every {
            return;
        }
        let from = state.writeback_from;
        state.writeback_from = end;
        state.writeback_running = true;
        (state.active.data.clone(), from, end - from)
    };
    let shared = shared.clone();
    runtime::spawn_detached(async move {
        if let Err(error) = file.start_writeback(from, length).await {
            tracing::debug!(%error, "starting writeback failed; the next fdatasync does it");
        }
        shared.state.borrow_mut().writeback_running = false;
    });
}

/// Writes the active segment's index entries that are not in its files yet, once there are at
/// least `entries_min` of them. A failed index write is logged, not fatal: recovery rebuilds.
async fn persist_index(shared: &Rc<Shared>, entries_min: usize) {
    let (offsets, times, offset_file, time_file, from) = {
        let mut state = shared.state.borrow_mut();
        let from = state.active.index_entries_persisted;
        let segment = state.active_segment();
        if segment.index.len() < from + entries_min.max(1) {
            return;
        }
        let (offsets, times) = segment.index.encode_from(from);
        let entries = segment.index.len();
        state.active.index_entries_persisted = entries;
        (
            offsets,
            times,
            state.active.offset_index.clone(),
            state.active.time_index.clone(),
            from,
        )
    };
    let written = futures_util::future::join(
        offset_file.write_all_at(
            vec![Bytes::from(offsets)],
            (from * OFFSET_ENTRY_BYTES) as u64,
        ),
        time_file.write_all_at(vec![Bytes::from(times)], (from * TIME_ENTRY_BYTES) as u64),
    )
    .await;
    if let (Err(error), _) | (_, Err(error)) = written {
        warn!(dir = %shared.dir.display(), %error, "index write failed; recovery will rebuild the index");
    }
}

async fn fail_group(
    shared: &Rc<Shared>,
    error: StorageError,
    mut failed: Vec<PendingAppend>,
    rest: VecDeque<PendingAppend>,
    awaiting_sync: Vec<PendingAppend>,
) {
    failed.extend(rest);
    shared.abandon_queued(failed, &error);
    // What was written before the failure still gets the fsync it asked for.
    if !awaiting_sync.is_empty() {
        let result = sync(shared).await;
        for append in awaiting_sync {
            let ack = append.ack;
            append.answer(result.clone().map(|()| ack));
        }
    }
}

impl Shared {
    /// Marks the log failed: after a failed fdatasync the kernel may have dropped the dirty
    /// pages, so nothing written since the last good sync can be promised any more.
    fn fail(&self, reason: String) -> StorageError {
        let error = StorageError::Failed(reason);
        warn!(dir = %self.dir.display(), %error, "partition log failed");
        self.state.borrow_mut().failure = Some(error.clone());
        self.metrics.write_failures.increment(1);
        self.abandon_queued(Vec::new(), &error);
        error
    }
}

async fn sync(shared: &Rc<Shared>) -> Result<()> {
    let (file, target) = {
        let state = shared.state.borrow();
        (state.active.data.clone(), state.high_watermark)
    };
    let started = Instant::now();
    if let Err(error) = file.sync_data().await {
        return Err(shared.fail(format!("fdatasync failed: {error}")));
    }
    shared
        .metrics
        .fsync_seconds
        .record(started.elapsed().as_secs_f64());
    let mut state = shared.state.borrow_mut();
    state.synced_offset = state.synced_offset.max(target);
    state.last_sync = Instant::now();
    drop(state);
    shared.data.notify();
    Ok(())
}

/// Seals the active segment (fdatasync of its data and indexes) and starts a new one at the
/// high watermark. Sealing first means a crash never leaves a torn segment behind a newer one.
async fn roll_segment(shared: &Rc<Shared>) -> Result<()> {
    persist_index(shared, 0).await;
    let (old, new_base, old_base) = {
        let mut state = shared.state.borrow_mut();
        let files = (
            state.active.data.clone(),
            state.active.offset_index.clone(),
            state.active.time_index.clone(),
            state.active.read.clone(),
        );
        let old_base = state.active_segment().base_offset;
        (files, state.high_watermark, old_base)
    };
    trim_direct_io_padding(shared).await;
    for file in [&old.0, &old.1, &old.2] {
        if let Err(error) = file.sync_data().await {
            return Err(shared.fail(format!(
                "fdatasync while sealing segment {old_base} failed: {error}"
            )));
        }
    }
    segment::create_files(&shared.dir, new_base)?;
    let files = ActiveFiles::open(
        &shared.dir,
        &Segment::empty(new_base),
        shared.config.direct_io,
    )
    .await?;
    let mut state = shared.state.borrow_mut();
    state.synced_offset = state.synced_offset.max(new_base);
    state.segments.insert(new_base, Segment::empty(new_base));
    state.active = files;
    state.writeback_from = 0;
    state.read_files.push((old_base, old.3));
    if state.read_files.len() > shared.config.open_segment_files_max {
        state.read_files.remove(0);
    }
    drop(state);
    info!(dir = %shared.dir.display(), segment = new_base, "rolled to a new segment");
    shared.publish_gauges();
    Ok(())
}

async fn run_retention(shared: Rc<Shared>) {
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

/// How much of the log's tail is read at open to rebuild idempotent producers' state: retries
/// come within seconds, far inside this.
const PRODUCER_STATE_SCAN_BYTES: u64 = 8 << 20;

/// Rebuilds idempotent producers' recent batches from the last `PRODUCER_STATE_SCAN_BYTES` of
/// the active segment (starting at an index entry, so on a batch boundary).
fn rebuild_producer_states(dir: &Path, active: &Segment) -> Result<ProducerStates> {
    let mut states = ProducerStates::default();
    let from_at_least = active.size_bytes.saturating_sub(PRODUCER_STATE_SCAN_BYTES);
    let start = active
        .index
        .entries()
        .map(|(_, position, _)| u64::from(position))
        .take_while(|position| *position <= from_at_least)
        .last()
        .unwrap_or(0);
    let mut file = fs::File::open(segment::file_path(dir, active.base_offset, DATA_SUFFIX))?;
    std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, active.size_bytes - start),
        &mut bytes,
    )?;
    for (_, framed) in batch::iter_framed(&bytes) {
        if let Ok(info) = batch::validate(framed, batch::Limits::UNLIMITED) {
            states.record(&info, None);
        }
    }
    Ok(states)
}

/// Checks every batch of an append (see `batch::validate`), sharing one decompression budget.
fn validate_batches(records: &[u8], config: &LogConfig) -> Result<Vec<BatchInfo>> {
    let limits = config.append_limits();
    let mut inflate_budget = limits.decompressed_bytes_max;
    let mut batches = Vec::new();
    let mut position = 0;
    while let Some(rest) = records.get(position..).filter(|rest| !rest.is_empty()) {
        let info = batch::validate_append(rest, &limits, &mut inflate_budget)?;
        position += info.size_bytes;
        batches.push(info);
    }
    if batches.is_empty() {
        return Err(batch::BatchError::Empty.into());
    }
    Ok(batches)
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Registers the help text of every metric the log emits (labels: topic, partition).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ringmq_log_appended_bytes_total",
        Unit::Bytes,
        "Bytes of record batches written to the partition log."
    );
    describe_counter!(
        "ringmq_log_appended_records_total",
        "Records written to the partition log (messages in)."
    );
    describe_counter!(
        "ringmq_log_appended_batches_total",
        "Record batches written to the partition log."
    );
    describe_counter!(
        "ringmq_log_read_bytes_total",
        Unit::Bytes,
        "Bytes read from the partition log, by source: the tail cache or the segment files."
    );
    describe_counter!(
        "ringmq_log_write_failures_total",
        "Failed writes or fsyncs of the partition log."
    );
    describe_counter!(
        "ringmq_log_backpressure_waits_total",
        "Appends that waited because the partition's write queue was full."
    );
    describe_counter!(
        "ringmq_log_retention_deleted_segments_total",
        "Segments deleted by retention."
    );
    describe_histogram!(
        "ringmq_log_flush_bytes",
        Unit::Bytes,
        "Bytes per group-commit write."
    );
    describe_histogram!(
        "ringmq_log_write_seconds",
        Unit::Seconds,
        "Duration of one group-commit write."
    );
    describe_histogram!(
        "ringmq_log_fsync_seconds",
        Unit::Seconds,
        "Duration of one fdatasync of a partition log."
    );
    describe_gauge!(
        "ringmq_log_start_offset",
        "First offset still in the partition log."
    );
    describe_gauge!(
        "ringmq_log_end_offset",
        "One past the last readable offset of the partition log (high watermark)."
    );
    describe_gauge!("ringmq_log_segments", "Segments of the partition log.");
    describe_gauge!(
        "ringmq_log_size_bytes",
        Unit::Bytes,
        "Bytes of the partition log on disk."
    );
    describe_gauge!(
        "ringmq_log_pending_bytes",
        Unit::Bytes,
        "Bytes queued for the partition's next write (bounded by pending_bytes_max)."
    );
    describe_gauge!(
        "ringmq_log_tail_cache_bytes",
        Unit::Bytes,
        "Bytes in the partition's tail cache (bounded by tail_cache_bytes_max)."
    );
    describe_gauge!(
        "ringmq_log_damaged_bytes",
        Unit::Bytes,
        "Bytes of damage isolated in the partition's sealed segments (reads skip them)."
    );
    describe_gauge!(
        "ringmq_log_damaged_ranges",
        "Damaged ranges isolated in the partition's sealed segments (see the log for each)."
    );
}

/// The log's metric handles, registered once per partition with its labels.
struct LogMetrics {
    appended_bytes: Counter,
    appended_records: Counter,
    appended_batches: Counter,
    read_bytes_cache: Counter,
    read_bytes_disk: Counter,
    write_failures: Counter,
    backpressure_waits: Counter,
    retention_deleted_segments: Counter,
    flush_bytes: Histogram,
    write_seconds: Histogram,
    fsync_seconds: Histogram,
    log_start_offset: Gauge,
    log_end_offset: Gauge,
    segments: Gauge,
    size_bytes: Gauge,
    pending_bytes: Gauge,
    tail_cache_bytes: Gauge,
    damaged_bytes: Gauge,
    damaged_ranges: Gauge,
}

impl LogMetrics {
    fn new(labels: &[(String, String)]) -> LogMetrics {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(k.clone(), v.clone()))
            .collect();
        let with_source = |source: &'static str| {
            let mut labels = labels.clone();
            labels.push(Label::new("source", source));
            labels
        };
        LogMetrics {
            appended_bytes: metrics::counter!("ringmq_log_appended_bytes_total", labels.clone()),
            appended_records: metrics::counter!(
                "ringmq_log_appended_records_total",
                labels.clone()
            ),
            appended_batches: metrics::counter!(
                "ringmq_log_appended_batches_total",
                labels.clone()
            ),
            read_bytes_cache: metrics::counter!(
                "ringmq_log_read_bytes_total",
                with_source("cache")
            ),
            read_bytes_disk: metrics::counter!("ringmq_log_read_bytes_total", with_source("disk")),
            write_failures: metrics::counter!("ringmq_log_write_failures_total", labels.clone()),
            backpressure_waits: metrics::counter!(
                "ringmq_log_backpressure_waits_total",
                labels.clone()
            ),
            retention_deleted_segments: metrics::counter!(
                "ringmq_log_retention_deleted_segments_total",
                labels.clone()
            ),
            flush_bytes: metrics::histogram!("ringmq_log_flush_bytes", labels.clone()),
            write_seconds: metrics::histogram!("ringmq_log_write_seconds", labels.clone()),
            fsync_seconds: metrics::histogram!("ringmq_log_fsync_seconds", labels.clone()),
            log_start_offset: metrics::gauge!("ringmq_log_start_offset", labels.clone()),
            log_end_offset: metrics::gauge!("ringmq_log_end_offset", labels.clone()),
            segments: metrics::gauge!("ringmq_log_segments", labels.clone()),
            size_bytes: metrics::gauge!("ringmq_log_size_bytes", labels.clone()),
            pending_bytes: metrics::gauge!("ringmq_log_pending_bytes", labels.clone()),
            tail_cache_bytes: metrics::gauge!("ringmq_log_tail_cache_bytes", labels.clone()),
            damaged_bytes: metrics::gauge!("ringmq_log_damaged_bytes", labels.clone()),
            damaged_ranges: metrics::gauge!("ringmq_log_damaged_ranges", labels),
        }
    }
}
