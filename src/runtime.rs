//! The thin seam between ringmq and its async runtime (compio, io_uring).
//!
//! Everything above this module speaks in our own small vocabulary: spawn a task, sleep, time out,
//! write these buffers at this position, sync this file. Swapping the runtime means rewriting this
//! file, not the broker. All of it is single-threaded by design: one runtime per pinned core, and
//! nothing here is `Send`, except the closures handed to the blocking pool (`blocking`), where
//! file-system calls that would stall the shard run.
//!
//! It also holds the one deterministic fault hook of the storage write path (`faults`), so that a
//! test can make the next write fail with ENOSPC without filling a real disk.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use compio::buf::{BufResult, IntoInner, IoBufMut};
use compio::io::{AsyncReadAt, AsyncReadExt, AsyncWriteAt, AsyncWriteExt};

pub use compio::net::{TcpListener, TcpStream};

pub use compio::runtime::Runtime;

/// Runs `future` to completion on a fresh runtime on the current thread.
pub fn block_on<F: Future>(future: F) -> F::Output {
    let runtime = Runtime::new().expect("cannot create an io_uring runtime on this thread");
    runtime.block_on(future)
}

/// Spawns a task on the current thread's runtime that lives until it finishes by itself.
pub fn spawn_detached<F: Future + 'static>(future: F) {
    compio::runtime::spawn(future).detach();
}

/// Spawns a task whose result can be awaited; dropping the handle cancels the task.
pub fn spawn<F: Future + 'static>(future: F) -> compio::runtime::JoinHandle<F::Output> {
    compio::runtime::spawn(future)
}

/// Runs blocking work (a terminal read, say) on a helper thread, without stalling this runtime.
pub async fn spawn_blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match compio::runtime::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => std::panic::resume_unwind(Box::new(error.to_string())),
    }
}

/// How many blocking file-system jobs (`blocking`) one thread runs at once; more wait their turn.
///
/// File-system calls that io_uring does not cover here (directory listing and fsync, mkdir,
/// unlink, recovery's scan) would stall every connection of a shard; they run on compio's
/// per-runtime thread pool instead. The bound keeps a burst (a topic of many partitions created
/// or deleted at once) from starting hundreds of threads that would only queue in the disk, and
/// keeps compio's own pool (256 threads, which spins the shard when all are busy) from ever
/// filling. A constant, not a broker setting, until a deployment shows it needs tuning.
pub const BLOCKING_JOBS_PER_THREAD_MAX: usize = 4;

thread_local! {
    static BLOCKING_GATE: std::rc::Rc<BlockingGate> = std::rc::Rc::default();
}

/// The count of this thread's blocking jobs running, and a signal when one ends.
#[derive(Default)]
struct BlockingGate {
    running: Cell<usize>,
    freed: Notify,
}

/// Frees a job's place at the gate when the job ends (or its task is dropped).
struct BlockingPlace(std::rc::Rc<BlockingGate>);

impl Drop for BlockingPlace {
    fn drop(&mut self) {
        self.0.running.set(self.0.running.get() - 1);
        self.0.freed.notify();
    }
}

/// Runs blocking file-system work on the runtime's thread pool, at most
/// `BLOCKING_JOBS_PER_THREAD_MAX` of this thread's jobs at once, and resolves to its result.
///
/// Only `Send` data crosses into `work` (paths, owned buffers): a log's state stays on its
/// shard. Once started, the work runs to its end even if this future is dropped (a half-done
/// directory change is worse than a late one), and it keeps its place at the gate until then,
/// so the bound holds. A panic in `work` is resumed here.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let gate = BLOCKING_GATE.with(std::rc::Rc::clone);
    loop {
        let freed = gate.freed.wait();
        if gate.running.get() < BLOCKING_JOBS_PER_THREAD_MAX {
            break;
        }
        freed.await;
    }
    gate.running.set(gate.running.get() + 1);
    let place = BlockingPlace(gate);
    let (sender, receiver) = futures_channel::oneshot::channel();
    spawn_detached(async move {
        let _place = place;
        let outcome = compio::runtime::spawn_blocking(work).await;
        let _ = sender.send(outcome);
    });
    match receiver.await {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => std::panic::resume_unwind(Box::new(error.to_string())),
        // The detached task was dropped unfinished: only a runtime being torn down does that,
        // and then nothing polls this future again.
        Err(_) => std::future::pending().await,
    }
}

/// Resolves at the first SIGINT or SIGTERM.
pub async fn termination_signal() -> io::Result<()> {
    let interrupt = std::pin::pin!(compio::signal::unix::signal(libc::SIGINT));
    let terminate = std::pin::pin!(compio::signal::unix::signal(libc::SIGTERM));
    match futures_util::future::select(interrupt, terminate).await {
        futures_util::future::Either::Left((result, _))
        | futures_util::future::Either::Right((result, _)) => result,
    }
}

/// Resolves when `signal` arrives; the signal is caught (not fatal) from this future's first
/// poll until it is dropped.
pub async fn signal(signal: i32) -> io::Result<()> {
    compio::signal::unix::signal(signal).await
}

pub async fn sleep(duration: Duration) {
    compio::time::sleep(duration).await
}

/// `Some(output)` if `future` finished within `duration`, else `None`.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Option<F::Output> {
    compio::time::timeout(duration, future).await.ok()
}

/// A file written and read at explicit positions through io_uring. Cloning shares the descriptor.
#[derive(Clone, Debug)]
pub struct File {
    inner: compio::fs::File,
    /// Kept for fault injection's directory scoping and for error messages.
    path: std::sync::Arc<Path>,
}

impl File {
    /// Opens for reading and writing, creating the file if it does not exist.
    pub async fn open_rw(path: &Path) -> io::Result<File> {
        let inner = compio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .open(path)
            .await?;
        Ok(File {
            inner,
            path: path.into(),
        })
    }

    /// Opens for writing with O_DIRECT: writes bypass the page cache and must be aligned to
    /// `DIRECT_IO_ALIGNMENT` in position, length and memory (see `AlignedBuffer`).
    pub async fn open_direct_write(path: &Path) -> io::Result<File> {
        let inner = compio::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .custom_flags(libc::O_DIRECT)
            .open(path)
            .await?;
        Ok(File {
            inner,
            path: path.into(),
        })
    }

    pub async fn open_read(path: &Path) -> io::Result<File> {
        let inner = compio::fs::OpenOptions::new().read(true).open(path).await?;
        Ok(File {
            inner,
            path: path.into(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes every byte of `buffers`, in order, starting at `position`, as few vectored writes as
    /// the kernel allows (a short write is continued, never silently dropped).
    pub async fn write_all_at(&self, mut buffers: Vec<Bytes>, mut position: u64) -> io::Result<()> {
        buffers.retain(|buffer| !buffer.is_empty());
        while !buffers.is_empty() {
            let requested: usize = buffers.iter().map(Bytes::len).sum();
            faults::before_write(&self.path, requested).await?;
            let mut writer = &self.inner;
            let BufResult(result, returned) = writer.write_vectored_at(buffers, position).await;
            let written = result?;
            if written == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "write returned 0 bytes",
                ));
            }
            buffers = returned;
            position += written as u64;
            advance(&mut buffers, written);
        }
        Ok(())
    }

    /// Reads exactly `length` bytes at `position`; fewer bytes in the file is `UnexpectedEof`.
    pub async fn read_exact_at(&self, length: usize, position: u64) -> io::Result<Bytes> {
        let mut buffer: Vec<u8> = Vec::with_capacity(length);
        while buffer.len() < length {
            let offset = buffer.len() as u64;
            // compio reads to the start of a buffer; `uninit()` makes the start the unread tail.
            let BufResult(result, returned) =
                self.inner.read_at(buffer.uninit(), position + offset).await;
            buffer = returned.into_inner();
            if result? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file ends early",
                ));
            }
        }
        buffer.truncate(length);
        Ok(Bytes::from(buffer))
    }

    /// fdatasync: the data and the size needed to read it back are durable once this returns.
    pub async fn sync_data(&self) -> io::Result<()> {
        faults::before_sync(&self.path)?;
        self.inner.sync_data().await
    }

    /// Starts writeback of `length` bytes at `position` without waiting for it
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)` on the blocking pool, on a duplicate of the
    /// descriptor). It promises nothing durable: it only keeps dirty pages from piling up, so
    /// that a later fdatasync has little left to do and does not stall the writers.
    /// Resolves when the kernel has queued the writeback.
    pub async fn start_writeback(&self, position: u64, length: u64) -> io::Result<()> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let duplicate = unsafe { libc::dup(self.inner.as_raw_fd()) };
        if duplicate < 0 {
            return Err(io::Error::last_os_error());
        }
        let owned = unsafe { OwnedFd::from_raw_fd(duplicate) };
        // Not through `blocking`'s bound: one per log at a time already, and on the write path,
        // where waiting behind a topic's deletion would only let dirty pages pile up.
        spawn_blocking(move || {
            let flags = libc::SYNC_FILE_RANGE_WRITE;
            let result = unsafe {
                libc::sync_file_range(owned.as_raw_fd(), position as i64, length as i64, flags)
            };
            if result == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
        .await
    }

    pub async fn set_len(&self, length: u64) -> io::Result<()> {
        self.inner.set_len(length).await
    }
}

/// Builds the runtime of one shard: cross-thread wake-ups (replies from other shards) go through
/// a queue sized for many in flight, so a busy shard never spins on a full one.
pub fn shard_runtime() -> io::Result<Runtime> {
    let mut builder = Runtime::builder();
    builder.sync_queue_size(16 * 1024);
    builder.build()
}

/// Reads what the socket has into the free capacity of `buffer` (after its length).
/// Returns the byte count, 0 at end of stream.
pub async fn read_some(stream: &mut TcpStream, buffer: BytesMut) -> (io::Result<usize>, BytesMut) {
    let BufResult(result, buffer) = stream.append(buffer).await;
    (result, buffer)
}

/// Sends every byte of `buffers`, in order, with vectored sends of at most IOV_MAX buffers.
pub async fn send_all(stream: &mut TcpStream, mut buffers: Vec<Bytes>) -> io::Result<()> {
    const IOV_MAX: usize = 1024;
    while !buffers.is_empty() {
        let rest = buffers.split_off(buffers.len().min(IOV_MAX));
        let BufResult(result, _) = stream.write_vectored_all(buffers).await;
        result?;
        buffers = rest;
    }
    Ok(())
}

/// `count` listeners on one address with SO_REUSEPORT, one per shard, so the kernel spreads
/// connections over them. The address is first probed with a plain bind, which fails while any
/// other socket holds it: without that, a second broker on the same port would silently share
/// it instead of failing. (Port 0 picks a free port once, for the whole group.)
pub fn bind_listener_group(
    address: std::net::SocketAddr,
    count: usize,
) -> io::Result<Vec<std::net::TcpListener>> {
    let probe = std::net::TcpListener::bind(address)?;
    let concrete = probe.local_addr()?;
    drop(probe);
    (0..count.max(1))
        .map(|_| bind_reuseport(concrete))
        .collect()
}

fn bind_reuseport(address: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
    let domain = socket2::Domain::for_address(address);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// The alignment O_DIRECT needs of positions, lengths and memory (the common logical block).
pub const DIRECT_IO_ALIGNMENT: usize = 4096;

/// A zeroed buffer whose start and length are multiples of `DIRECT_IO_ALIGNMENT`, for O_DIRECT
/// writes. Turned into `Bytes` without a copy.
pub struct AlignedBuffer {
    pointer: std::ptr::NonNull<u8>,
    length: usize,
}

// The buffer is plain owned memory.
unsafe impl Send for AlignedBuffer {}
unsafe impl Sync for AlignedBuffer {}

impl AlignedBuffer {
    /// A zeroed buffer of at least `length` bytes, rounded up to the alignment.
    pub fn zeroed(length: usize) -> AlignedBuffer {
        let length = length.max(1).next_multiple_of(DIRECT_IO_ALIGNMENT);
        let layout =
            std::alloc::Layout::from_size_align(length, DIRECT_IO_ALIGNMENT).expect("valid layout");
        let pointer = unsafe { std::alloc::alloc_zeroed(layout) };
        let pointer = std::ptr::NonNull::new(pointer)
            .unwrap_or_else(|| std::alloc::handle_alloc_error(layout));
        AlignedBuffer { pointer, length }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.pointer.as_ptr(), self.length) }
    }

    pub fn into_bytes(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for AlignedBuffer {
    fn as_ref(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.pointer.as_ptr(), self.length) }
    }
}

impl Drop for AlignedBuffer {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.length, DIRECT_IO_ALIGNMENT)
            .expect("valid layout");
        unsafe { std::alloc::dealloc(self.pointer.as_ptr(), layout) }
    }
}

/// Drops the first `count` bytes of a list of buffers.
fn advance(buffers: &mut Vec<Bytes>, mut count: usize) {
    let mut fully_written = 0;
    for buffer in buffers.iter_mut() {
        if count >= buffer.len() {
            count -= buffer.len();
            fully_written += 1;
        } else {
            *buffer = buffer.slice(count..);
            break;
        }
    }
    buffers.drain(..fully_written);
}

/// A wake-up signal between tasks of one thread.
///
/// `wait()` remembers the notify generation when it is created and resolves once a `notify()`
/// happens after that, so the pattern "create the wait, check the condition, await the wait"
/// never misses a wake-up. Every waiter is woken (a broadcast), and a dropped waiter takes its
/// waker with it, so an idle signal with many timed-out long polls holds no garbage.
#[derive(Default)]
pub struct Notify {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for waker in self.waiters.borrow_mut().drain(..) {
            waker.wake();
        }
    }

    pub fn wait(&self) -> NotifyWait<'_> {
        NotifyWait {
            notify: self,
            seen: self.generation.get(),
            registered: None,
        }
    }

    pub fn waiter_count(&self) -> usize {
        self.waiters.borrow().len()
    }
}

pub struct NotifyWait<'a> {
    notify: &'a Notify,
    seen: u64,
    registered: Option<Waker>,
}

impl Future for NotifyWait<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        if self.notify.generation.get() != self.seen {
            self.registered = None;
            return Poll::Ready(());
        }
        let already = self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(context.waker()));
        if !already {
            self.unregister();
            self.notify
                .waiters
                .borrow_mut()
                .push(context.waker().clone());
            self.registered = Some(context.waker().clone());
        }
        Poll::Pending
    }
}

impl NotifyWait<'_> {
    fn unregister(&mut self) {
        if let Some(mine) = self.registered.take() {
            let mut waiters = self.notify.waiters.borrow_mut();
            if let Some(index) = waiters.iter().position(|waker| waker.will_wake(&mine)) {
                waiters.swap_remove(index);
            }
        }
    }
}

impl Drop for NotifyWait<'_> {
    fn drop(&mut self) {
        self.unregister();
    }
}

/// A wake-up signal keyed by a threshold: each wait names the value it waits to see passed, and
/// `passed(value)` wakes exactly the waits below `value`, so a rising value (a log's high
/// watermark) wakes only those whose condition now holds, not every waiter on each step.
///
/// Waits register when created, so "create the wait, check the condition, await the wait"
/// never misses a wake-up, as with `Notify`. A dropped wait removes itself; an idle signal with
/// many timed-out long polls holds nothing. `wake_all` is for conditions beside the value
/// (closing, failure).
#[derive(Default)]
pub struct ThresholdNotify {
    inner: RefCell<ThresholdWaiters>,
}

#[derive(Default)]
struct ThresholdWaiters {
    next_id: u64,
    /// Waits not yet woken, by (threshold, id), with the waker of their last poll.
    waiting: std::collections::BTreeMap<(u64, u64), Option<Waker>>,
    /// Wakers called so far: what a test or benchmark counts to see no wake-up is wasted.
    wakes: u64,
}

impl ThresholdNotify {
    /// A wait that resolves once `passed` reaches a value above `threshold`, or at `wake_all`.
    pub fn wait_past(&self, threshold: u64) -> ThresholdWait<'_> {
        let mut inner = self.inner.borrow_mut();
        let id = inner.next_id;
        inner.next_id += 1;
        inner.waiting.insert((threshold, id), None);
        ThresholdWait {
            notify: self,
            key: (threshold, id),
        }
    }

    /// Wakes the waits whose threshold is below `value`.
    pub fn passed(&self, value: u64) {
        let woken = {
            let mut inner = self.inner.borrow_mut();
            // The common case on a hot partition: every wait is further ahead, nothing to do.
            let lowest = inner
                .waiting
                .first_key_value()
                .map(|((threshold, _), _)| *threshold);
            if lowest.is_none_or(|lowest| lowest >= value) {
                return;
            }
            let above = inner.waiting.split_off(&(value, 0));
            std::mem::replace(&mut inner.waiting, above)
        };
        self.wake(woken);
    }

    pub fn wake_all(&self) {
        let woken = std::mem::take(&mut self.inner.borrow_mut().waiting);
        self.wake(woken);
    }

    fn wake(&self, woken: std::collections::BTreeMap<(u64, u64), Option<Waker>>) {
        let wakers: Vec<Waker> = woken.into_values().flatten().collect();
        self.inner.borrow_mut().wakes += wakers.len() as u64;
        // Woken outside the borrow: a waker may poll (and so touch this signal) at once.
        for waker in wakers {
            waker.wake();
        }
    }

    pub fn waiter_count(&self) -> usize {
        self.inner.borrow().waiting.len()
    }

    /// How many wakers this signal has called since it was made.
    pub fn wake_count(&self) -> u64 {
        self.inner.borrow().wakes
    }
}

pub struct ThresholdWait<'a> {
    notify: &'a ThresholdNotify,
    key: (u64, u64),
}

impl Future for ThresholdWait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.notify.inner.borrow_mut();
        // Gone from the map means woken: `passed` and `wake_all` take the entries they wake.
        let Some(registered) = inner.waiting.get_mut(&self.key) else {
            return Poll::Ready(());
        };
        if !registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(context.waker()))
        {
            *registered = Some(context.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for ThresholdWait<'_> {
    fn drop(&mut self) {
        self.notify.inner.borrow_mut().waiting.remove(&self.key);
    }
}

pub mod faults;
pub mod tls;

/// (size, bytes available to an unprivileged writer) of the file system holding `path`. It
/// blocks on the file system: call it on the blocking pool.
pub fn file_system_capacity(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `path` is NUL-terminated; `stats` is read only after the call filled it.
    let stats = unsafe {
        if libc::statvfs(path.as_ptr(), stats.as_mut_ptr()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stats.assume_init()
    };
    let block = stats.f_frsize;
    Ok((
        stats.f_blocks.saturating_mul(block),
        stats.f_bavail.saturating_mul(block),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_drops_whole_buffers_and_slices_the_partial_one() {
        let mut buffers = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        advance(&mut buffers, 5);
        assert_eq!(buffers, vec![Bytes::from_static(b"fg")]);
        advance(&mut buffers, 2);
        assert!(buffers.is_empty());
    }

    #[test]
    fn blocking_work_runs_off_the_thread_at_most_the_bound_at_once() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        block_on(async {
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let caller = std::thread::current().id();
            let jobs = (0..3 * BLOCKING_JOBS_PER_THREAD_MAX).map(|n| {
                let (running, most) = (running.clone(), most.clone());
                blocking(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    running.fetch_sub(1, Ordering::SeqCst);
                    (n, std::thread::current().id())
                })
            });
            let results = futures_util::future::join_all(jobs).await;
            for (index, (n, thread)) in results.into_iter().enumerate() {
                assert_eq!(n, index);
                assert_ne!(thread, caller, "the work ran on the pool");
            }
            let most = most.load(Ordering::SeqCst);
            assert!(
                (1..=BLOCKING_JOBS_PER_THREAD_MAX).contains(&most),
                "{most} jobs ran at once"
            );
        });
    }

    #[test]
    fn threshold_notify_wakes_only_the_waits_it_passed_and_forgets_dropped_ones() {
        block_on(async {
            let notify = std::rc::Rc::new(ThresholdNotify::default());
            let waiting = |threshold| {
                let notify = notify.clone();
                spawn(async move { notify.wait_past(threshold).await })
            };
            let (near, far) = (waiting(10), waiting(1_000));
            let abandoned = timeout(Duration::from_millis(5), notify.wait_past(5)).await;
            assert!(abandoned.is_none());
            assert_eq!(notify.waiter_count(), 2, "the timed-out wait left");
            sleep(Duration::from_millis(1)).await;
            notify.passed(10);
            assert_eq!(notify.wake_count(), 0, "10 is not past 10");
            notify.passed(11);
            near.await.unwrap();
            assert_eq!(notify.wake_count(), 1, "only the wait below 11 woke");
            assert_eq!(notify.waiter_count(), 1);
            let early = notify.wait_past(0);
            notify.passed(1);
            early.await;
            notify.wake_all();
            far.await.unwrap();
            assert_eq!(notify.waiter_count(), 0);
        });
    }

    #[test]
    fn notify_wakes_only_waits_created_before_it_and_forgets_dropped_ones() {
        block_on(async {
            let notify = Notify::default();
            let early = notify.wait();
            notify.notify();
            early.await;
            let dropped = timeout(Duration::from_millis(5), notify.wait()).await;
            assert!(dropped.is_none(), "no notify after the wait was made");
            assert_eq!(
                notify.waiter_count(),
                0,
                "a timed-out wait leaves no waker behind"
            );
        });
    }

    #[test]
    fn direct_writes_of_aligned_buffers_read_back_through_the_page_cache() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("direct");
            let writer = File::open_direct_write(&path).await.unwrap();
            let reader = File::open_rw(&path).await.unwrap();
            let mut buffer = AlignedBuffer::zeroed(100);
            assert_eq!(buffer.as_ref().len(), DIRECT_IO_ALIGNMENT);
            buffer.as_mut_slice()[..5].copy_from_slice(b"first");
            writer
                .write_all_at(vec![buffer.into_bytes()], 0)
                .await
                .unwrap();
            assert_eq!(&reader.read_exact_at(5, 0).await.unwrap()[..], b"first");
            let mut buffer = AlignedBuffer::zeroed(10);
            buffer.as_mut_slice()[..6].copy_from_slice(b"second");
            writer
                .write_all_at(vec![buffer.into_bytes()], 0)
                .await
                .unwrap();
            assert_eq!(
                &reader.read_exact_at(6, 0).await.unwrap()[..],
                b"second",
                "no stale cached page"
            );
        });
    }

    #[test]
    fn write_all_then_read_back() {
        block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let file = File::open_rw(&path).await.unwrap();
            let parts = vec![Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
            file.write_all_at(parts, 3).await.unwrap();
            file.sync_data().await.unwrap();
            assert_eq!(
                &file.read_exact_at(11, 3).await.unwrap()[..],
                b"hello world"
            );
            let error = file.read_exact_at(20, 3).await.unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        });
    }
}
