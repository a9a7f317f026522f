//! Broker-wide state that shard 0 changes and every shard reads (the users, the ACLs, the
//! exchanges): each shard holds a whole snapshot, replaced, never edited, and numbered by a
//! generation. Shard 0 hands a new snapshot to every shard through the mailboxes; a shard that
//! does not take it within the call deadline (its inbox full, or its thread busy past
//! `shard_call_timeout_ms`) would otherwise keep the old one until the next change, so a
//! retry on shard 0 keeps offering it the newest snapshot until it has it. The generation makes
//! the order of deliveries irrelevant: an older snapshot never replaces a newer one.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{BrokerError, BrokerResult, ErrorKind, ShardState};

/// How long the first retry waits; each later one waits twice as long, up to `RETRY_MAX`.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// One shard's copy of a snapshot and its generation (0: the one it started with). On shard 0
/// also the shards known not to have the newest one, and whether a retry is under way for
/// them (at most one per snapshot, however many changes come while a shard is stuck).
pub struct Snapshot<T> {
    current: RefCell<(u64, Arc<T>)>,
    lagging: RefCell<BTreeSet<usize>>,
    retrying: Cell<bool>,
}

impl<T> Snapshot<T> {
    pub fn new(value: Arc<T>) -> Snapshot<T> {
        Snapshot {
            current: RefCell::new((0, value)),
            lagging: RefCell::default(),
            retrying: Cell::new(false),
        }
    }

    pub fn get(&self) -> Arc<T> {
        self.current.borrow().1.clone()
    }

    pub fn generation(&self) -> u64 {
        self.current.borrow().0
    }

    /// Takes `value` unless this shard has `generation` or a newer one already.
    pub fn offer(&self, generation: u64, value: Arc<T>) {
        let mut current = self.current.borrow_mut();
        if generation > current.0 {
            *current = (generation, value);
        }
    }

    /// Takes `value` as is, whatever this shard had (start-up and reloads, before any change).
    pub fn replace(&self, value: Arc<T>) {
        let mut current = self.current.borrow_mut();
        *current = (current.0, value);
    }
}

/// Which snapshot of a shard's state (a plain function, so it can travel between shards).
pub type Pick<T> = fn(&ShardState) -> &Snapshot<T>;

/// Makes `value` shard 0's newest snapshot and offers it to every shard, each within
/// `shard_call_timeout_ms`. Shards that did not take it in time are named in the error, and a
/// retry on this shard goes on offering them the newest snapshot until each has it (or the
/// broker stops). Runs on shard 0, within the admin turn that changed the value.
pub async fn distribute<T>(state: &Rc<ShardState>, pick: Pick<T>, value: Arc<T>) -> BrokerResult<()>
where
    T: Send + Sync + 'static,
{
    assert_eq!(state.id, 0, "shard 0 numbers the snapshots");
    let snapshot = pick(state);
    let generation = snapshot.generation() + 1;
    snapshot.offer(generation, value);
    let lagging = offer_everywhere(state, pick, (1..state.shards()).collect()).await;
    if lagging.is_empty() {
        return Ok(());
    }
    tracing::warn!(
        ?lagging,
        generation,
        "shards did not take a new snapshot in time; retrying"
    );
    metrics::counter!("ringmq_snapshot_retries_total").increment(1);
    snapshot
        .lagging
        .borrow_mut()
        .extend(lagging.iter().copied());
    if !snapshot.retrying.replace(true) {
        let retrying = state.clone();
        crate::runtime::spawn_detached(async move { retry(retrying, pick).await });
    }
    Err(BrokerError::new(
        ErrorKind::TimedOut,
        format!(
            "the change is saved, but shards {lagging:?} did not take it within \
             shard_call_timeout_ms; they will be given it as soon as they answer"
        ),
    ))
}

/// Offers shard 0's newest snapshot to `shards`; returns those that did not take it in time.
async fn offer_everywhere<T>(
    state: &Rc<ShardState>,
    pick: Pick<T>,
    shards: Vec<usize>,
) -> Vec<usize>
where
    T: Send + Sync + 'static,
{
    let mut lagging = Vec::new();
    for shard in shards {
        let (generation, value) = (pick(state).generation(), pick(state).get());
        let deadline = Instant::now() + Duration::from_millis(state.config.shard_call_timeout_ms);
        let offered = state
            .on_shard_until(deadline, shard, move |there| async move {
                pick(&there).offer(generation, value);
                BrokerResult::Ok(())
            })
            .await;
        if offered.is_err() {
            lagging.push(shard);
        }
    }
    lagging
}

/// Offers the newest snapshot to the lagging shards with a growing pause between rounds, until
/// every one has taken it or the broker stops.
async fn retry<T>(state: Rc<ShardState>, pick: Pick<T>)
where
    T: Send + Sync + 'static,
{
    let mut pause = RETRY_FIRST;
    loop {
        let slept = state
            .lifecycle
            .unless_stopping(crate::runtime::sleep(pause))
            .await;
        if slept.is_none() {
            return;
        }
        let lagging: Vec<usize> = std::mem::take(&mut *pick(&state).lagging.borrow_mut())
            .into_iter()
            .collect();
        let still = offer_everywhere(&state, pick, lagging).await;
        let snapshot = pick(&state);
        snapshot.lagging.borrow_mut().extend(still);
        if snapshot.lagging.borrow().is_empty() {
            snapshot.retrying.set(false);
            let generation = snapshot.generation();
            tracing::info!(generation, "every shard has the newest snapshot");
            return;
        }
        pause = (pause * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::topics::Topics;
    use crate::broker::users::Users;
    use crate::config::BrokerConfig;
    use crate::shard::Mailboxes;

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let snapshot = Snapshot::new(Arc::new("start"));
        snapshot.offer(2, Arc::new("second"));
        snapshot.offer(1, Arc::new("first, late"));
        snapshot.offer(2, Arc::new("second again"));
        assert_eq!((snapshot.generation(), *snapshot.get()), (2, "second"));
        snapshot.replace(Arc::new("reloaded"));
        assert_eq!((snapshot.generation(), *snapshot.get()), (2, "reloaded"));
    }

    /// Shard 1's thread is stuck past the call deadline when the users change: the change is
    /// answered with an error naming it, the offer queued for it is skipped (its caller gave
    /// up), and the retry hands it the snapshot once it answers again.
    #[test]
    fn a_shard_that_missed_a_snapshot_gets_it_when_it_answers_again() {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            shards: 2,
            shard_call_timeout_ms: 200,
            ..BrokerConfig::default()
        });
        let mailboxes: Mailboxes<ShardState> = Mailboxes::new(2, 16);
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shard_one = {
            let (config, mailboxes) = (config.clone(), mailboxes.clone());
            std::thread::spawn(move || {
                crate::runtime::block_on(async move {
                    let topics = Arc::new(Topics::default());
                    let state =
                        ShardState::new(1, config, mailboxes.clone(), topics, Default::default());
                    let state = Rc::new(state);
                    crate::runtime::spawn_detached(async move { mailboxes.serve(1, state).await });
                    while stopped.try_recv().is_err() {
                        crate::runtime::sleep(Duration::from_millis(10)).await;
                    }
                });
            })
        };
        crate::runtime::block_on(async move {
            let topics = Arc::new(Topics::default());
            let state = ShardState::new(0, config, mailboxes.clone(), topics, Default::default());
            let state = Rc::new(state);
            let serving = (mailboxes.clone(), state.clone());
            crate::runtime::spawn_detached(async move { serving.0.serve(0, serving.1).await });
            let generation_of_one = async || {
                let long = Duration::from_secs(10);
                let asked =
                    mailboxes.call(1, long, |there| async move { there.users.generation() });
                asked.await.unwrap()
            };
            assert_eq!(generation_of_one().await, 0);
            let stuck = mailboxes.clone();
            crate::runtime::spawn_detached(async move {
                let long = Duration::from_secs(10);
                let stall = |_| async { std::thread::sleep(Duration::from_millis(1500)) };
                let _ = stuck.call(1, long, stall).await;
            });
            crate::runtime::sleep(Duration::from_millis(100)).await;
            let users = Arc::new(Users::default());
            let error = distribute(&state, |shard| &shard.users, users)
                .await
                .unwrap_err();
            assert_eq!(error.kind, ErrorKind::TimedOut, "{error}");
            assert!(error.message.contains("shards [1]"), "{error}");
            assert_eq!(state.users.generation(), 1, "shard 0 has it at once");
            let waited = Instant::now();
            while generation_of_one().await != 1 {
                assert!(waited.elapsed() < Duration::from_secs(10), "never retried");
                crate::runtime::sleep(Duration::from_millis(50)).await;
            }
            assert!(!state.users.retrying.get(), "the retry ended");
        });
        stop.send(()).unwrap();
        shard_one.join().unwrap();
    }
}
