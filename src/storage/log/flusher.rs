//! The flusher: one task per log that turns queued appends into group writes, fdatasyncs,
//! segment rolls and index writes, and the failure handling of each.
//!
//! It is the only writer of the active segment, so writes, rolls and the direct-I/O tail block
//! need no coordination beyond the shard's `RefCell`. A group is written in runs that each fit
//! the active segment and one vectored write; an fdatasync follows only when an append asked
//! for it, plus one in the background every `flush_interval_ms`. A failed write cuts the file
//! back and fails the group and everything queued behind it; a failed fdatasync fails the log.

use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tracing::{info, warn};

use super::{ActiveFiles, PendingAppend, Shared};
use crate::runtime::{self, AlignedBuffer, DIRECT_IO_ALIGNMENT};
use crate::storage::config::AckLevel;
use crate::storage::error::{Result, StorageError};
use crate::storage::index::{OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::storage::segment::{self, Segment};

/// At most this many buffers go into one vectored write (Linux's IOV_MAX).
const WRITE_BUFFERS_MAX: usize = 1024;
/// Index entries are written to their files in blocks of this many (a block of the offset index
/// is 4 KiB), not one write per append: the index is a cache that recovery completes from the
/// data, so the entries not yet written only cost recovery a slightly longer scan.
const INDEX_ENTRIES_PER_WRITE: usize = 512;

impl Shared {
    /// Fails every queued append (their offsets are void) and rewinds offset assignment to the
    /// high watermark, so the next append continues right after the last written batch.
    fn abandon_queued(&self, mut failed: Vec<PendingAppend>, error: &StorageError) {
        let mut state = self.state.borrow_mut();
        failed.extend(state.pending.drain(..));
        state.pending_bytes = 0;
        state.next_offset = state.high_watermark;
        let rewound_to = state.next_offset;
        state.dedup.forget_from(rewound_to);
        for info in failed.iter().flat_map(|append| &append.batches) {
            state.producers.forget(info.producer_id);
        }
        drop(state);
        self.space.notify();
        for append in failed {
            append.answer(Err(error.clone()));
        }
        // Retries waiting on these appends' outcomes wake up to the failure.
        self.settled.notify();
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

pub(super) async fn run_flusher(shared: Rc<Shared>) {
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
    shared.wake_all_waiters();
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
    match shared.config().flush_interval_ms {
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
    // Read before the await: the settings are never borrowed across one (`set_config`).
    let window_us = shared.config().group_commit_window_us;
    if window_us > 0 {
        runtime::sleep(Duration::from_micros(window_us)).await;
    }
    let mut group = VecDeque::from(group);
    let mut awaiting_sync = Vec::new();
    let mut run: Vec<PendingAppend> = Vec::new();
    let mut run_bytes = 0u64;
    let offsets_max = shared.config().segment_offsets_max;
    while let Some(mut append) = group.pop_front() {
        let roll = {
            let mut state = shared.state.borrow_mut();
            let segment = state.active_segment();
            let projected = segment.size_bytes + run_bytes;
            let too_big = projected + append.bytes.len() as u64 > shared.config().segment_bytes_max;
            let too_old = segment.opened_at.elapsed()
                >= Duration::from_millis(shared.config().segment_age_ms_max);
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
        if roll {
            let started = Instant::now();
            let rolled = roll_segment(shared).await;
            shared
                .metrics
                .roll_seconds
                .record(started.elapsed().as_secs_f64());
            if let Err(error) = rolled {
                group.push_front(append);
                return fail_group(shared, error, Vec::new(), group, awaiting_sync).await;
            }
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
    let (buffers, write_position, next_tail_block) = if shared.config().direct_io {
        direct_io_write(&shared.state.borrow().active.tail_block, &run, position)
    } else {
        (
            run.iter().map(|append| append.bytes.clone()).collect(),
            position,
            Vec::new(),
        )
    };
    let started = Instant::now();
    for append in &run {
        shared.metrics.queue_seconds.record(
            started
                .saturating_duration_since(append.queued_at)
                .as_secs_f64(),
        );
    }
    if let Err(error) = file.write_all_at(buffers, write_position).await {
        shared.metrics.write_failures.increment(1);
        warn!(dir = %shared.store.dir().display(), segment = base_offset, %error, "write failed; cutting back");
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

    if let Err(reason) = index_written(shared, &run, bytes) {
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
    shared.settled.notify();
    let high_watermark = shared.state.borrow().high_watermark;
    shared.written.passed(high_watermark);
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

/// Records a written run in the active segment's index and the tail cache and moves the high
/// watermark past it. Returns the first batch that does not fit its segment, if any.
fn index_written(shared: &Shared, run: &[PendingAppend], bytes: u64) -> Result<(), String> {
    let mut misfit = None;
    let mut state = shared.state.borrow_mut();
    let interval = shared.config().index_interval_bytes;
    for append in run {
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
    misfit.map_or(Ok(()), Err)
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
    if !shared.config().direct_io {
        return;
    }
    let (file, size) = {
        let mut state = shared.state.borrow_mut();
        (state.active.read.clone(), state.active_segment().size_bytes)
    };
    if let Err(error) = file.set_len(size).await {
        warn!(dir = %shared.store.dir().display(), %error, "could not cut the direct-I/O padding; recovery will");
    }
}

/// Starts kernel writeback of the active segment's newest `writeback_bytes` or more, one at a
/// time, without waiting for it.
fn start_writeback_if_due(shared: &Rc<Shared>) {
    let every = shared.config().writeback_bytes;
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
        warn!(dir = %shared.store.dir().display(), %error, "index write failed; recovery will rebuild the index");
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
        warn!(dir = %self.store.dir().display(), %error, "partition log failed");
        self.state.borrow_mut().failure = Some(error.clone());
        self.metrics.write_failures.increment(1);
        self.abandon_queued(Vec::new(), &error);
        // Retries waiting for their acknowledgement learn of the failure.
        self.wake_all_waiters();
        error
    }
}

pub(super) async fn sync(shared: &Rc<Shared>) -> Result<()> {
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
    let synced_offset = state.synced_offset;
    drop(state);
    shared.synced.passed(synced_offset);
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
    // The three files sync at once: the roll holds up every append queued behind it.
    let synced =
        futures_util::future::join3(old.0.sync_data(), old.1.sync_data(), old.2.sync_data()).await;
    if let (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) = synced {
        return Err(shared.fail(format!(
            "fdatasync while sealing segment {old_base} failed: {error}"
        )));
    }
    let dir = shared.store.dir().to_path_buf();
    runtime::blocking(move || segment::create_files(&dir, new_base)).await?;
    let direct_io = shared.config().direct_io;
    let files = ActiveFiles::open(shared.store.dir(), &Segment::empty(new_base), direct_io).await?;
    let mut state = shared.state.borrow_mut();
    state.synced_offset = state.synced_offset.max(new_base);
    state.segments.insert(new_base, Segment::empty(new_base));
    state.active = files;
    state.writeback_from = 0;
    state.read_files.push((old_base, old.3));
    if state.read_files.len() > shared.config().open_segment_files_max {
        state.read_files.remove(0);
    }
    let synced_offset = state.synced_offset;
    drop(state);
    // Sealing synced everything below the new base: waiters for those offsets are done.
    shared.synced.passed(synced_offset);
    info!(dir = %shared.store.dir().display(), segment = new_base, "rolled to a new segment");
    shared.publish_gauges();
    Ok(())
}
