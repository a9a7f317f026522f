//! Cross-shard calls: each shard has one bounded inbox (a lock-free array queue) of jobs that
//! other shards put there, and one task draining it. A job is a closure that runs on the target
//! shard with that shard's context and sends its result back through a oneshot channel.
//!
//! Bounded: when a target's inbox is full, the caller waits (polling with a short sleep) and the
//! wait is counted, so a slow shard pushes back on the shards that feed it. Every call has a
//! deadline: a shard that is wedged (a disk that never answers) makes its callers fail with
//! `CallError::TimedOut` instead of holding their connections and memory forever.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use futures_util::task::AtomicWaker;

use super::ShardId;
use crate::runtime;

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
type Job<C> = Box<dyn FnOnce(Rc<C>) -> LocalFuture + Send>;

/// Why a cross-shard call got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("the shard stopped before answering")]
    Gone,
    #[error("the shard did not answer within {0:?}")]
    TimedOut(Duration),
}

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
    /// `ringmq_shard_hop_seconds{direction}`, registered once (the recorder is installed
    /// before the mailboxes are made).
    hop_to: metrics::Histogram,
    hop_back: metrics::Histogram,
}

impl<C> Clone for Mailboxes<C> {
    fn clone(&self) -> Self {
        Mailboxes {
            inboxes: self.inboxes.clone(),
            hop_to: self.hop_to.clone(),
            hop_back: self.hop_back.clone(),
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
        Mailboxes {
            inboxes,
            hop_to: metrics::histogram!("ringmq_shard_hop_seconds", "direction" => "to"),
            hop_back: metrics::histogram!("ringmq_shard_hop_seconds", "direction" => "back"),
        }
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

    /// Runs `work` on shard `target` with its context and returns its result here, or fails once
    /// `deadline` has passed (queueing included). Work still queued at the timeout is skipped;
    /// work already started runs to its end, and its result is dropped.
    pub async fn call<R, F, Fut>(
        &self,
        target: ShardId,
        deadline: Duration,
        work: F,
    ) -> Result<R, CallError>
    where
        R: Send + 'static,
        F: FnOnce(Rc<C>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (sender, receiver) = futures_channel::oneshot::channel();
        let sent_at = Instant::now();
        let hop_to = self.hop_to.clone();
        let job: Job<C> = Box::new(move |context| {
            Box::pin(async move {
                hop_to.record(sent_at.elapsed().as_secs_f64());
                // Its caller gave up while it was queued: the answer would be dropped, and work
                // nobody waits for only delays the work somebody does.
                if sender.is_canceled() {
                    return;
                }
                let answer = work(context).await;
                let _ = sender.send((answer, Instant::now()));
            })
        });
        let answered = runtime::timeout(deadline, async {
            self.push(target, job).await?;
            let (answer, answered_at) = receiver.await.map_err(|_| CallError::Gone)?;
            self.hop_back.record(answered_at.elapsed().as_secs_f64());
            Ok(answer)
        });
        answered.await.unwrap_or(Err(CallError::TimedOut(deadline)))
    }

    async fn push(&self, target: ShardId, mut job: Job<C>) -> Result<(), CallError> {
        let inbox = &self.inboxes[target];
        loop {
            if inbox.closed.load(Ordering::Acquire) {
                return Err(CallError::Gone);
            }
            match inbox.queue.push(job) {
                Ok(()) => {
                    if inbox.closed.load(Ordering::Acquire) {
                        // Closed while we pushed: drop what is queued so no caller waits forever.
                        while inbox.queue.pop().is_some() {}
                        return Err(CallError::Gone);
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

    /// Stops `shard`'s inbox: queued jobs are dropped (their callers get `CallError::Gone`).
    pub fn close(&self, shard: ShardId) {
        let inbox = &self.inboxes[shard];
        inbox.closed.store(true, Ordering::Release);
        inbox.waker.wake();
        while inbox.queue.pop().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_to_a_shard_that_never_serves_fails_at_its_deadline() {
        runtime::block_on(async {
            let mailboxes: Mailboxes<()> = Mailboxes::new(1, 4);
            let deadline = Duration::from_millis(50);
            let outcome = mailboxes.call(0, deadline, |_| async { 7 }).await;
            assert_eq!(outcome, Err(CallError::TimedOut(deadline)));
        });
    }

    #[test]
    fn work_whose_caller_timed_out_while_it_was_queued_never_runs() {
        runtime::block_on(async {
            let mailboxes: Mailboxes<()> = Mailboxes::new(1, 4);
            let ran = Arc::new(AtomicBool::new(false));
            let flag = ran.clone();
            let deadline = Duration::from_millis(20);
            let outcome = mailboxes
                .call(0, deadline, move |_| async move {
                    flag.store(true, Ordering::SeqCst);
                })
                .await;
            assert_eq!(outcome, Err(CallError::TimedOut(deadline)));
            runtime::spawn_detached({
                let mailboxes = mailboxes.clone();
                async move { mailboxes.serve(0, Rc::new(())).await }
            });
            // A later call is answered, so the inbox was served past the stale job.
            let answered = mailboxes.call(0, Duration::from_secs(5), |_| async { 7 });
            assert_eq!(answered.await, Ok(7));
            assert!(!ran.load(Ordering::SeqCst), "the stale job ran");
            mailboxes.close(0);
        });
    }

    #[test]
    fn a_full_inbox_counts_against_the_deadline_too() {
        runtime::block_on(async {
            let mailboxes: Mailboxes<()> = Mailboxes::new(1, 1);
            let deadline = Duration::from_millis(50);
            // The first job takes the only place and is never served; the second waits for room.
            let first = runtime::spawn({
                let mailboxes = mailboxes.clone();
                async move { mailboxes.call(0, deadline, |_| async { 1 }).await }
            });
            let second = mailboxes.call(0, deadline, |_| async { 2 }).await;
            assert_eq!(second, Err(CallError::TimedOut(deadline)));
            assert!(mailboxes.full_waits(0) > 0, "the second call found no room");
            assert_eq!(first.await.unwrap(), Err(CallError::TimedOut(deadline)));
        });
    }

    #[test]
    fn a_served_call_answers_and_a_closed_inbox_fails_fast() {
        runtime::block_on(async {
            let mailboxes: Mailboxes<u32> = Mailboxes::new(1, 4);
            let server = runtime::spawn({
                let mailboxes = mailboxes.clone();
                async move { mailboxes.serve(0, Rc::new(40)).await }
            });
            let deadline = Duration::from_secs(10);
            let answer = mailboxes
                .call(0, deadline, |base| async move { *base + 2 })
                .await;
            assert_eq!(answer, Ok(42));
            mailboxes.close(0);
            let _ = server.await;
            let refused = mailboxes
                .call(0, deadline, |base| async move { *base })
                .await;
            assert_eq!(refused, Err(CallError::Gone));
        });
    }
}
