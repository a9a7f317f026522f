//! A `Send + Sync` handle to the client, for programs on another runtime (tokio, async-std) or
//! on plain threads.
//!
//! Why a thread of its own: the client is built like the broker, for one compio (io_uring)
//! runtime per thread, with `Rc` state and no locks; it cannot move between a work-stealing
//! runtime's threads. `ThreadedClient` runs one `Client` on a dedicated thread with its own
//! compio runtime and carries each call there through a bounded channel; the answer comes back
//! through a oneshot channel, which any executor can await. Calls pipeline: each runs as its own
//! task on the client thread, all on one connection.
//!
//! The thread ends when the last handle is dropped; calls still running then get
//! `ClientError::Connection`.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use futures_channel::{mpsc, oneshot};
use futures_util::StreamExt;

use super::{Client, ClientError, Result};
use crate::batch::Record;
use crate::protocol::replies::ReplyStatus;
use crate::protocol::{FetchRequest, FetchResponse, OffsetSpec, ProduceResponse, TopicMetadata};
use crate::runtime;
use crate::storage::AckLevel;

/// Calls that may wait for the client thread to take them (plus one per caller waiting: the
/// channel keeps a place for each sender, and a call holds its sender while it waits). A caller
/// past it waits, so a producer faster than the connection is pushed back.
pub const CALLS_QUEUED_MAX: usize = 1024;

type Job = Box<dyn FnOnce(Client) -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// A client usable from any thread and any async runtime. Cheap to clone; every clone shares
/// the one connection and client thread.
///
/// ```
/// # let dir = tempfile::tempdir().unwrap();
/// # let broker = ringmq::server::start(ringmq::config::BrokerConfig {
/// #     data_dir: dir.path().into(), listen: "127.0.0.1:0".into(),
/// #     kafka_listen: String::new(), http_listen: String::new(), shards: 1,
/// #     ..Default::default() }).unwrap();
/// # let address = broker.address.to_string();
/// use ringmq::client::ThreadedClient;
/// use ringmq::storage::AckLevel;
///
/// let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// rt.block_on(async {
///     let client = ThreadedClient::connect(&address).await.unwrap();
///     client.create_topic("events", 1, &[]).await.unwrap();
///     // A `Send` future: it may be spawned on a tokio runtime.
///     let spawned = tokio::spawn({
///         let client = client.clone();
///         async move { client.metadata(&["events"]).await }
///     });
///     assert_eq!(spawned.await.unwrap().unwrap()[0].partitions, 1);
/// });
/// # broker.shutdown();
/// ```
#[derive(Clone)]
pub struct ThreadedClient {
    /// The client thread's only input: it ends when the last sender (handle) is dropped.
    jobs: mpsc::Sender<Job>,
}

impl ThreadedClient {
    /// Starts the client thread and connects it to the broker at `address`.
    pub async fn connect(address: &str) -> Result<ThreadedClient> {
        let (jobs, mut queued) = mpsc::channel::<Job>(CALLS_QUEUED_MAX);
        let (connected, connecting) = oneshot::channel();
        let address = address.to_string();
        std::thread::Builder::new()
            .name("ringmq-client".into())
            .spawn(move || {
                runtime::block_on(async move {
                    let client = match Client::connect(&address).await {
                        Ok(client) => {
                            let _ = connected.send(Ok(()));
                            client
                        }
                        Err(error) => {
                            let _ = connected.send(Err(error));
                            return;
                        }
                    };
                    while let Some(job) = queued.next().await {
                        runtime::spawn_detached(job(client.clone()));
                    }
                })
            })
            .map_err(|error| ClientError::Connection(format!("client thread: {error}")))?;
        connecting
            .await
            .map_err(|_| ClientError::Connection("the client thread ended".into()))??;
        Ok(ThreadedClient { jobs })
    }

    /// Runs `work` with the client on the client thread and returns its result here. Every
    /// other method is this with one call; use it for sequences (a `Producer`, a `Consumer`)
    /// that must live on the client's thread.
    pub async fn run<R, F, Fut>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = answer.send(work(client).await);
            })
        });
        let gone = || ClientError::Connection("the client thread ended".into());
        let mut jobs = self.jobs.clone();
        std::future::poll_fn(|context| jobs.poll_ready(context))
            .await
            .map_err(|_| gone())?;
        jobs.start_send(job).map_err(|_| gone())?;
        answered.await.map_err(|_| gone())
    }

    /// See [`Client::create_topic`].
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let name = name.to_string();
        let configs: Vec<(String, String)> = configs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.run(move |client| async move {
            let configs: Vec<(&str, &str)> = configs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str()))
                .collect();
            client.create_topic(&name, partitions, &configs).await
        })
        .await?
    }

    /// See [`Client::delete_topic`].
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.run(move |client| async move { client.delete_topic(&name).await })
            .await?
    }

    /// See [`Client::metadata`].
    pub async fn metadata(&self, names: &[&str]) -> Result<Vec<TopicMetadata>> {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        self.run(move |client| async move {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            client.metadata(&names).await
        })
        .await?
    }

    /// See [`Client::produce`].
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<u32>,
        key: &[u8],
        acks: AckLevel,
        records: BytesMut,
    ) -> Result<ProduceResponse> {
        let (topic, key) = (topic.to_string(), key.to_vec());
        self.run(move |client| async move {
            client.produce(&topic, partition, &key, acks, records).await
        })
        .await?
    }

    /// See [`Client::fetch`].
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse> {
        self.run(move |client| async move { client.fetch(request).await })
            .await?
    }

    /// See [`Client::list_offsets`].
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<(Option<u64>, u64, u64)> {
        let topic = topic.to_string();
        self.run(move |client| async move { client.list_offsets(&topic, partition, spec).await })
            .await?
    }

    /// See [`Client::request`]: the client thread's own requester sends it and waits.
    pub async fn request(
        &self,
        destination: &str,
        message: Record,
        timeout: Duration,
    ) -> Result<Record> {
        let destination = destination.to_string();
        self.run(move |client| async move { client.request(&destination, message, timeout).await })
            .await?
    }

    /// See [`Client::request_via_exchange`].
    pub async fn request_via_exchange(
        &self,
        (exchange, routing_key): (&str, &str),
        message: Record,
        timeout: Duration,
    ) -> Result<Record> {
        let (exchange, routing_key) = (exchange.to_string(), routing_key.to_string());
        self.run(move |client| async move {
            let route = (exchange.as_str(), routing_key.as_str());
            client.request_via_exchange(route, message, timeout).await
        })
        .await?
    }

    /// See [`Client::respond`]: replies to `request` by its headers.
    pub async fn respond(&self, request: Record, reply: Record) -> Result<ReplyStatus> {
        self.run(move |client| async move { client.respond(&request, reply).await })
            .await?
    }
}
