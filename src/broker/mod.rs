//! Broker semantics: what each request means, independent of the protocol that carried it.
//!
//! Each shard has a `ShardState`: its snapshot of the topics and the partition logs it owns. A
//! request about a partition runs on the partition's owner shard, locally or through the
//! cross-shard mailbox; topic changes run on shard 0, which writes the metadata and then has
//! every shard install the new snapshot and open or close the partitions it owns.

pub mod acls;
pub mod admin;
pub mod compaction;
pub mod configs;
pub mod error;
pub mod fd_budget;
pub mod groups;
pub mod json_file;
pub mod partition;
pub mod producer_ids;
pub mod queues;
pub mod quotas;
pub mod rebatch;
pub mod replies;
pub mod routing;
pub mod service;
pub mod share_configs;
pub mod share_groups;
pub mod snapshot;
pub mod topics;
pub mod users;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::Counter;

use crate::config::BrokerConfig;
use crate::shard::{CallError, Mailboxes, ShardId, owner_of};
use crate::storage::PartitionLog;

pub use error::{BrokerError, BrokerResult, ErrorKind};
pub use service::{RequestContext, Service};
use topics::Topics;

/// One shard's view of the broker.
pub struct ShardState {
    pub id: ShardId,
    pub config: Arc<BrokerConfig>,
    pub mailboxes: Mailboxes<ShardState>,
    topics: RefCell<Arc<Topics>>,
    /// Every exchange and its bindings, compiled: replaced whole by shard 0 at each change.
    pub(in crate::broker) exchanges: snapshot::Snapshot<routing::store::Exchanges>,
    /// The partition logs this shard owns, by topic, then partition.
    logs: RefCell<HashMap<String, HashMap<u32, PartitionLog>>>,
    /// Serializes topic changes on shard 0 (they await between steps).
    admin_busy: std::cell::Cell<bool>,
    admin_done: crate::runtime::Notify,
    forwards: Counter,
    pub lifecycle: Lifecycle,
    /// The consumer groups this shard coordinates.
    coordinator: RefCell<groups::Coordinator>,
    /// The queue groups of the partitions this shard owns.
    queues: RefCell<queues::ShardQueues>,
    /// The share groups (KIP-932) this shard coordinates: their membership and configs.
    pub(in crate::broker) share_groups: RefCell<share_groups::ShareGroups>,
    /// Every share group's own configs (read from share_groups.json on first use).
    pub(in crate::broker) share_configs: snapshot::Snapshot<share_configs::ShareConfigs>,
    /// Whether this shard has read share_groups.json (or been handed a newer snapshot).
    pub(in crate::broker) share_configs_read: std::cell::Cell<bool>,
    /// This shard's snapshot of the users and their credentials.
    pub(in crate::broker) users: snapshot::Snapshot<users::Users>,
    /// This shard's snapshot of the access control lists.
    pub(in crate::broker) acls: snapshot::Snapshot<acls::Acls>,
    /// The quota buckets of the clients this shard serves.
    pub(in crate::broker) quotas: RefCell<quotas::QuotaBuckets>,
    /// The request/reply state of this shard's connections (direct inboxes, temporary topics).
    pub(in crate::broker) replies: replies::inbox::Replies,
}

/// Where a shard is in its shutdown. The server drives it; handlers consult it.
#[derive(Default)]
pub struct Lifecycle {
    /// Set once: stop accepting connections and reading requests.
    pub stopping: std::cell::Cell<bool>,
    /// Set once every connection of the shard has finished its requests (or the grace ran out).
    pub drained: std::cell::Cell<bool>,
    /// Notified at every change above.
    pub changed: crate::runtime::Notify,
}

impl Lifecycle {
    pub fn set_stopping(&self) {
        self.stopping.set(true);
        self.changed.notify();
    }

    pub fn set_drained(&self) {
        self.drained.set(true);
        self.changed.notify();
    }

    /// Resolves once the shard is stopping.
    pub async fn until_stopping(&self) {
        self.until(|lifecycle| lifecycle.stopping.get()).await
    }

    /// Resolves once every connection of the shard is done (or the grace ran out).
    pub async fn until_drained(&self) {
        self.until(|lifecycle| lifecycle.drained.get()).await
    }

    async fn until(&self, reached: impl Fn(&Lifecycle) -> bool) {
        loop {
            let changed = self.changed.wait();
            if reached(self) {
                return;
            }
            changed.await;
        }
    }

    /// Runs `work` unless the shard starts stopping first (then None, and `work` is dropped).
    pub async fn unless_stopping<F: Future>(&self, work: F) -> Option<F::Output> {
        let work = std::pin::pin!(work);
        let stop = std::pin::pin!(self.until_stopping());
        match futures_util::future::select(work, stop).await {
            futures_util::future::Either::Left((output, _)) => Some(output),
            futures_util::future::Either::Right(_) => None,
        }
    }
}

impl ShardState {
    pub fn new(
        id: ShardId,
        config: Arc<BrokerConfig>,
        mailboxes: Mailboxes<ShardState>,
        topics: Arc<Topics>,
        exchanges: Arc<routing::store::Exchanges>,
    ) -> ShardState {
        let quota_buckets = quotas::QuotaBuckets::new(config.quota_buckets_max);
        ShardState {
            id,
            config,
            mailboxes,
            topics: RefCell::new(topics),
            exchanges: snapshot::Snapshot::new(exchanges),
            logs: RefCell::new(HashMap::new()),
            admin_busy: std::cell::Cell::new(false),
            admin_done: crate::runtime::Notify::default(),
            forwards: metrics::counter!("ringmq_shard_forwards_total", "shard" => id.to_string()),
            lifecycle: Lifecycle::default(),
            coordinator: RefCell::new(groups::Coordinator::default()),
            queues: RefCell::new(queues::ShardQueues::default()),
            share_groups: RefCell::new(share_groups::ShareGroups::default()),
            share_configs: snapshot::Snapshot::new(Default::default()),
            share_configs_read: std::cell::Cell::new(false),
            users: snapshot::Snapshot::new(Arc::new(users::Users::default())),
            acls: snapshot::Snapshot::new(Arc::new(acls::Acls::default())),
            quotas: RefCell::new(quota_buckets),
            replies: replies::inbox::Replies::default(),
        }
    }

    /// This shard's snapshot of the ACLs.
    pub fn acls(&self) -> Arc<acls::Acls> {
        self.acls.get()
    }

    /// Puts the ACLs read from disk in force on this shard (start-up and reloads; changes
    /// reach the shards through `snapshot::distribute`).
    pub fn set_acls(&self, acls: Arc<acls::Acls>) {
        self.acls.replace(acls);
    }

    /// This shard's snapshot of the users.
    pub fn users(&self) -> Arc<users::Users> {
        self.users.get()
    }

    /// Puts the users read from disk in force on this shard (start-up and reloads).
    pub fn set_users(&self, users: Arc<users::Users>) {
        self.users.replace(users);
    }

    pub fn shards(&self) -> usize {
        self.mailboxes.shards()
    }

    pub fn topics(&self) -> Arc<Topics> {
        self.topics.borrow().clone()
    }

    pub(in crate::broker) fn exchanges(&self) -> Arc<routing::store::Exchanges> {
        self.exchanges.get()
    }

    /// The log of a partition this shard owns.
    pub(in crate::broker) fn log(&self, topic: &str, partition: u32) -> BrokerResult<PartitionLog> {
        self.logs
            .borrow()
            .get(topic)
            .and_then(|partitions| partitions.get(&partition))
            .cloned()
            .ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::UnknownTopic,
                    format!("topic {topic:?} partition {partition} is not open here"),
                )
            })
    }

    /// Opens every partition of every topic that this shard owns, and the offsets-log
    /// partitions of the groups it coordinates (at start).
    pub async fn open_owned_partitions(&self) -> Result<(), String> {
        let topics = self.topics();
        for topic in topics.by_name.values() {
            partition::open_owned(self, topic, false).await?;
        }
        groups::open(self).await
    }

    /// Starts the shard's background work: group session expiry and lag metrics, queue lock
    /// expiry and metrics.
    pub fn spawn_background(self: &Rc<Self>) {
        crate::runtime::spawn_detached(groups::run_background(self.clone()));
        crate::runtime::spawn_detached(queues::background::run(self.clone()));
    }

    /// Writes, fsyncs and closes every log this shard owns, all at once, each within
    /// `shutdown_grace_ms`: a log whose disk does not answer is left to recovery at the next
    /// start rather than hanging the shutdown.
    pub async fn close_logs(&self) {
        let grace = Duration::from_millis(self.config.shutdown_grace_ms);
        if crate::runtime::timeout(grace, groups::close(self))
            .await
            .is_none()
        {
            tracing::error!(shard = self.id, "closing the offsets logs timed out");
        }
        if crate::runtime::timeout(grace, queues::close(self))
            .await
            .is_none()
        {
            tracing::error!(shard = self.id, "closing the queue journals timed out");
        }
        let logs: Vec<PartitionLog> = self
            .logs
            .borrow_mut()
            .drain()
            .flat_map(|(_, partitions)| partitions.into_values())
            .collect();
        let closes = logs.iter().map(|log| async move {
            match crate::runtime::timeout(grace, log.close()).await {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    tracing::warn!(dir = %log.dir().display(), %error, "closing a partition log failed")
                }
                None => tracing::error!(
                    dir = %log.dir().display(),
                    grace_ms = self.config.shutdown_grace_ms,
                    "closing a partition log timed out; recovery will check it at the next start"
                ),
            }
        });
        futures_util::future::join_all(closes).await;
    }

    /// Runs `work` on the shard that owns `partition` of `topic`, giving up at `deadline`.
    pub(crate) async fn on_owner<R, E, F, Fut>(
        self: &Rc<Self>,
        deadline: Instant,
        topic: &str,
        partition: u32,
        work: F,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<CallError> + Send + 'static,
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + 'static,
    {
        let owner = owner_of(topic, partition, self.shards());
        self.on_shard_until(deadline, owner, work).await
    }

    /// Runs `work` on the shard that coordinates `group`, giving up at `deadline`.
    async fn on_coordinator<R, F, Fut>(
        self: &Rc<Self>,
        deadline: Instant,
        group: &str,
        work: F,
    ) -> BrokerResult<R>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: Future<Output = BrokerResult<R>> + 'static,
    {
        groups::validate_name(group)?;
        let coordinator = groups::coordinator_of(group, self.shards()).1;
        self.on_shard_until(deadline, coordinator, work).await
    }

    /// Runs `work` on shard `target`: here directly, elsewhere through its mailbox, waiting for
    /// the answer until `deadline` at most (and never past `shard_call_timeout_ms`). Work whose
    /// deadline has passed is not started, here or there: its caller has been answered, or will
    /// be, with TimedOut. Work here, once started, runs to its end, as work sent elsewhere does
    /// (cancelling it halfway could leave a group or a topic change half done); what it waits on
    /// is bounded by its own limits (the write queue's wait, the group's timeouts).
    pub(in crate::broker) async fn on_shard_until<R, E, F, Fut>(
        self: &Rc<Self>,
        deadline: Instant,
        target: ShardId,
        work: F,
    ) -> Result<R, E>
    where
        R: Send + 'static,
        E: From<CallError> + Send + 'static,
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<R, E>> + 'static,
    {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(E::from(CallError::TimedOut(Duration::ZERO)));
        }
        if target == self.id {
            return work(self.clone()).await;
        }
        self.forwards.increment(1);
        let wait = left.min(Duration::from_millis(self.config.shard_call_timeout_ms));
        self.mailboxes
            .call(target, wait, work)
            .await
            .unwrap_or_else(|error| Err(E::from(error)))
    }

    /// The end offset of a partition, from its owner wherever that is (the groups' lag).
    pub(in crate::broker) async fn high_watermark(
        self: &Rc<Self>,
        topic: &str,
        partition: u32,
    ) -> BrokerResult<u64> {
        self.check_partition(topic, partition)?;
        let deadline = Instant::now() + Duration::from_millis(self.config.shard_call_timeout_ms);
        let name = topic.to_string();
        self.on_owner(deadline, topic, partition, move |owner| async move {
            Ok(owner.log(&name, partition)?.high_watermark())
        })
        .await
    }

    /// Runs `read` over the partition logs this shard owns, by topic then partition.
    pub(in crate::broker) fn with_logs<R>(
        &self,
        read: impl FnOnce(&HashMap<String, HashMap<u32, PartitionLog>>) -> R,
    ) -> R {
        read(&self.logs.borrow())
    }

    /// The partition count of `topic`, from this shard's snapshot.
    fn partitions_of(&self, topic: &str) -> BrokerResult<u32> {
        let topics = self.topics.borrow();
        let meta = topics
            .get(topic)
            .ok_or_else(|| BrokerError::unknown_topic(topic))?;
        Ok(meta.partitions)
    }

    /// Checks that `topic` exists and has `partition`, from this shard's snapshot.
    fn check_partition(&self, topic: &str, partition: u32) -> BrokerResult<()> {
        let partitions = self.partitions_of(topic)?;
        if partition >= partitions {
            return Err(BrokerError::new(
                ErrorKind::UnknownPartition,
                format!("topic {topic:?} has partitions 0..{partitions}, not {partition}"),
            ));
        }
        Ok(())
    }
}

/// Registers the help text of every metric the broker layer emits.
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    queues::metrics::describe_metrics();
    share_groups::describe_metrics();
    describe_histogram!(
        "ringmq_produce_latency_seconds",
        Unit::Seconds,
        "Time from a produce reaching the owner shard to its acknowledgement."
    );
    describe_histogram!(
        "ringmq_fetch_latency_seconds",
        Unit::Seconds,
        "Time the owner shard spent reading for a fetch, long-poll waiting excluded."
    );
    describe_gauge!(
        "ringmq_quota_buckets",
        "Clients (principals or client ids) whose quota the shard tracks (at most 10,000 a shard)."
    );
    describe_counter!(
        "ringmq_quota_throttled_requests_total",
        "Answers held back because their client was over a quota, by kind (produce, fetch, requests)."
    );
    describe_counter!(
        "ringmq_quota_throttle_milliseconds_total",
        "Time answers were held back for quotas, by kind."
    );
    describe_gauge!(
        "ringmq_group_committed_offset",
        "A consumer group's committed offset for a partition."
    );
    describe_gauge!(
        "ringmq_group_lag",
        "Records a consumer group has not committed: the partition's end offset minus the group's committed offset."
    );
    describe_counter!(
        "ringmq_partition_fetched_bytes_total",
        Unit::Bytes,
        "Bytes of record batches sent to consumers (bytes out)."
    );
    describe_counter!(
        "ringmq_partition_fetched_records_total",
        "Records sent to consumers (messages out)."
    );
    describe_counter!(
        "ringmq_shard_forwards_total",
        "Requests forwarded to the shard that owns their partition."
    );
    describe_histogram!(
        "ringmq_shard_hop_seconds",
        Unit::Seconds,
        "Cross-shard call hops: from the caller to the work starting on the target shard (direction=to, its inbox wait included) and from the answer back to the caller resuming (direction=back)."
    );
}
