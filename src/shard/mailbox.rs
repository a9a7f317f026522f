//! Cross-shard calls: each shard has one bounded inbox (a lock-free array queue) of jobs that
//! other shards put there, and one task draining it. A job is a closure that runs on the target
//! shard with that shard's context and sends its result back through a oneshot channel.
//!
//! Bounded: when a target's inbox is full, the caller waits (polling with a short sleep) and the
//! wait is counted, so a slow shard pushes back on the shards that feed it.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use futures_util::task::AtomicWaker;

use super::ShardId;
use crate::runtime;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
type Job<C> = Box<dyn FnOnce(Rc<C>) -> LocalFuture + Send>;

/// The target shard stopped before it could answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shard stopped before answering")]
pub struct ShardGone;

struct Inbox<C> {
    queue: ArrayQueue<Job<C>>,
    waker: AtomicWaker,
    closed: AtomicBool,
    /// Times a caller found this inbox full and had to wait.
    full_waits: AtomicUsize,
}

/// Every shard's inbox; cloned into each shard.
pub struct Mailboxes<C> {
    inboxes: Arc<[Inbox<C>]>,
}

impl<C> Clone for Mailboxes<C> {
    fn clone(&self) -> Self {
        Mailboxes {
            inboxes: self.inboxes.clone(),
        }
    }
}

const FULL_INBOX_RETRY: Duration = Duration::from_micros(50);
/// Jobs taken from the inbox before the drain task yields to the rest of the shard.
const JOBS_PER_TURN: usize = 256;

impl<C: 'static> Mailboxes<C> {
    pub fn new(shards: usize, capacity: usize) -> Mailboxes<C> {
        assert!(shards > 0 && capacity > 0);
        let inboxes = (0..shards)
            .map(|_| Inbox {
                queue: ArrayQueue::new(capacity),
                waker: AtomicWaker::new(),
                closed: AtomicBool::new(false),
                full_waits: AtomicUsize::new(0),
            })
            .collect();
        Mailboxes { inboxes }
    }

    pub fn shards(&self) -> usize {
        self.inboxes.len()
    }

    /// Jobs waiting in `shard`'s inbox, for metrics.
    pub fn queued(&self, shard: ShardId) -> usize {
        self.inboxes[shard].queue.len()
    }

    pub fn full_waits(&self, shard: ShardId) -> usize {
        self.inboxes[shard].full_waits.load(Ordering::Relaxed)
    }

    /// Runs `work` on shard `target` with its context and returns its result here.
    pub async fn call<R, F, Fut>(&self, target: ShardId, work: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (sender, receiver) = futures_channel::oneshot::channel();
        let job: Job<C> = Box::new(move |context| {
            Box::pin(async move {
                let _ = sender.send(work(context).await);
            })
        });
        self.push(target, job).await?;
        receiver.await.map_err(|_| ShardGone)
    }

    async fn push(&self, target: ShardId, mut job: Job<C>) -> Result<(), ShardGone> {
        let inbox = &self.inboxes[target];
        loop {
            if inbox.closed.load(Ordering::Acquire) {
                return Err(ShardGone);
            }
            match inbox.queue.push(job) {
                Ok(()) => {
                    if inbox.closed.load(Ordering::Acquire) {
                        // Closed while we pushed: drop what is queued so no caller waits forever.
                        while inbox.queue.pop().is_some() {}
                        return Err(ShardGone);
                    }
                    inbox.waker.wake();
                    return Ok(());
                }
                Err(returned) => {
                    job = returned;
                    inbox.full_waits.fetch_add(1, Ordering::Relaxed);
                    runtime::sleep(FULL_INBOX_RETRY).await;
                }
            }
        }
    }

    /// Drains `shard`'s inbox forever, spawning each job as a local task, until `close`.
    pub async fn serve(&self, shard: ShardId, context: Rc<C>) {
        let inbox = &self.inboxes[shard];
        std::future::poll_fn(|task| {
            if inbox.closed.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            let mut ran = 0;
            while ran < JOBS_PER_TURN
                && let Some(job) = inbox.queue.pop()
            {
                runtime::spawn_detached(job(context.clone()));
                ran += 1;
            }
            if ran > 0 {
                // Yield so the jobs just spawned (and everything else here) get to run.
                task.waker().wake_by_ref();
                return Poll::Pending;
            }
            inbox.waker.register(task.waker());
            // A job pushed between the last pop and the register must not be missed.
            if !inbox.queue.is_empty() || inbox.closed.load(Ordering::Acquire) {
                task.waker().wake_by_ref();
            }
            Poll::Pending
        })
        .await
    }

    /// Stops `shard`'s inbox: queued jobs are dropped (their callers get `ShardGone`).
    pub fn close(&self, shard: ShardId) {
        let inbox = &self.inboxes[shard];
        inbox.closed.store(true, Ordering::Release);
        inbox.waker.wake();
        while inbox.queue.pop().is_some() {}
    }
}
