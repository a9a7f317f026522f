//! One driver per system under test, each through that system's standard client. A driver
//! creates the run's topic (or the system's nearest equivalent), runs one producer or one
//! consumer on the calling thread (it brings its own runtime), and removes the topic afterwards
//! so runs do not pile up data. Everything it measures goes through `measure`.

use std::sync::Arc;

use crate::measure::{Recorder, Shared, Workload};

#[cfg(feature = "peers")]
mod kafka;
#[cfg(feature = "peers")]
mod nats;
#[cfg(feature = "peers")]
mod rabbitmq;
#[cfg(feature = "peers")]
mod redis;
mod ringmq;

pub type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// What a producer or consumer thread gets: the run, where to report, and its number.
#[derive(Clone)]
pub struct Task {
    pub index: usize,
    pub workload: Workload,
    pub topic: String,
    pub shared: Arc<Shared>,
    /// Publish latency for producers, end-to-end latency for consumers.
    pub latency: Recorder,
}

impl Task {
    /// A producer's `messages` sent together were acknowledged: count them, and time them from
    /// their stamp.
    pub fn acknowledged(&self, stamp_ns: u64, messages: u64) {
        crate::measure::record(&self.latency, stamp_ns, messages);
        self.shared.published(messages, self.workload.message_bytes);
    }

    /// A consumer received `messages` that were due together, carrying `payload`'s stamp (one
    /// stamp stands for a batch whose records were all due at the same time).
    pub fn delivered(&self, payload: Option<&[u8]>, messages: u64) {
        self.shared.consumed(messages, self.workload.message_bytes);
        if let Some(stamp_ns) = payload.and_then(crate::measure::stamp_of) {
            crate::measure::record(&self.latency, stamp_ns, messages);
        }
    }
}

pub trait System: Send + Sync {
    /// Creates the topic with `workload.partitions` partitions (or the nearest equivalent).
    fn create(&self, topic: &str, workload: &Workload) -> Result<()>;
    /// Produces until the pacer says stop, and returns when every send is acknowledged.
    fn produce(&self, task: Task) -> Result<()>;
    /// Consumes this consumer's share until `task.shared.stop` is set.
    fn consume(&self, task: Task) -> Result<()>;
    /// Deletes the topic.
    fn delete(&self, topic: &str, workload: &Workload) -> Result<()>;
}

/// The systems this build can drive: ringmq always, the peers with `--features peers`.
pub const NAMES: &[&str] = &[
    "ringmq",
    "kafka",
    "nats",
    "redis",
    "rabbitmq-stream",
    "rabbitmq-quorum",
];

/// `topic_configs` are ringmq topic settings (`--topic-config`); peers are configured on their
/// servers by bench/compare.sh instead.
pub fn by_name(
    name: &str,
    address: &str,
    topic_configs: &[(String, String)],
) -> Result<Box<dyn System>> {
    match name {
        "ringmq" => Ok(Box::new(ringmq::Ringmq::new(address, topic_configs))),
        #[cfg(feature = "peers")]
        "kafka" => Ok(Box::new(kafka::Kafka::new(address))),
        #[cfg(feature = "peers")]
        "nats" => Ok(Box::new(nats::Nats::new(address))),
        #[cfg(feature = "peers")]
        "redis" => Ok(Box::new(redis::Redis::new(address))),
        #[cfg(feature = "peers")]
        "rabbitmq-stream" => Ok(Box::new(rabbitmq::Stream::new(address))),
        #[cfg(feature = "peers")]
        "rabbitmq-quorum" => Ok(Box::new(rabbitmq::Quorum::new(address))),
        other if NAMES.contains(&other) => {
            Err(format!("{other} needs a build with `--features peers`").into())
        }
        other => Err(unknown(other)),
    }
}

/// Refuses a system this load generator has no driver for, before anything is started.
pub fn ensure_known(name: &str) -> Result<()> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(unknown(name))
    }
}

fn unknown(name: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("unknown system {name}; one of {}", NAMES.join(", ")).into()
}

/// For clients whose publish returns a future of its acknowledgement, and whose
/// acknowledgements arrive in publish order: one task awaits them in turn, and the channel's
/// capacity (`inflight_messages`) bounds how many are outstanding. `accepted` tells a positive
/// acknowledgement from a refusal. Send each future with its stamp; drop the sender and await
/// the task to wait for the last acknowledgement.
#[cfg(feature = "peers")]
fn in_order_acks<F, T, E>(
    task: &Task,
    accepted: fn(&T) -> bool,
) -> (
    tokio::sync::mpsc::Sender<(u64, F)>,
    tokio::task::JoinHandle<()>,
)
where
    F: std::future::IntoFuture<Output = std::result::Result<T, E>> + Send + 'static,
    F::IntoFuture: Send,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let (sender, mut pending) =
        tokio::sync::mpsc::channel::<(u64, F)>(task.workload.inflight_messages());
    let task = task.clone();
    let collector = tokio::spawn(async move {
        while let Some((stamp_ns, ack)) = pending.recv().await {
            match ack.await {
                Ok(answer) if accepted(&answer) => task.acknowledged(stamp_ns, 1),
                Ok(_) => task.shared.error("publish", "refused by the broker"),
                Err(error) => task.shared.error("publish", error),
            }
        }
    });
    (sender, collector)
}

/// A tokio runtime for one peer client's thread.
#[cfg(feature = "peers")]
fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}
