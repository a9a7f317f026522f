//! The Rust client of the native protocol: admin calls, a batching producer, a consumer and a
//! consumer-group member. It runs on the caller's compio runtime (one thread), like the broker's
//! shards; the CLI, the tests and the benchmark all use it. Programs on another runtime (tokio)
//! or on plain threads use [`ThreadedClient`], a `Send` handle that runs the client on a thread
//! of its own.
//!
//! Examples that run against a broker are in `examples/` (producer, consumer, group consumer,
//! tokio); `tests/examples.rs` runs each of them.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let broker = ringmq::server::start(ringmq::config::BrokerConfig {
//! #     data_dir: dir.path().into(), listen: "127.0.0.1:0".into(),
//! #     kafka_listen: String::new(), http_listen: String::new(), shards: 1,
//! #     ..Default::default() }).unwrap();
//! # let address = broker.address.to_string();
//! use ringmq::batch::Record;
//! use ringmq::client::{Client, Consumer, ConsumerConfig, Producer, ProducerConfig, StartAt};
//!
//! ringmq::runtime::block_on(async {
//!     let client = Client::connect(&address).await.unwrap();
//!     client.create_topic("orders", 2, &[]).await.unwrap();
//!     let producer = Producer::new(client.clone(), ProducerConfig::default());
//!     let delivery = producer
//!         .send("orders", Record::new(0, Some(b"alice"), Some(b"1 book")))
//!         .await
//!         .unwrap();
//!     producer.flush().await;
//!     let stored = delivery.await.unwrap().unwrap();
//!     let mut consumer = Consumer::new(
//!         client,
//!         "orders",
//!         Some(vec![stored.partition]),
//!         StartAt::Earliest,
//!         ConsumerConfig::default(),
//!     )
//!     .await
//!     .unwrap();
//!     let records = consumer.poll().await.unwrap();
//!     assert_eq!(records[0].record.value.as_deref(), Some(&b"1 book"[..]));
//! });
//! # broker.shutdown();
//! ```

#![warn(missing_docs)]

pub mod connection;
pub mod consumer;
mod exchanges;
pub mod group;
mod long_polls;
pub mod producer;
pub mod queue;
pub mod redrive;
pub mod replies;
pub mod threaded;

use bytes::BytesMut;

use crate::protocol::messages::{GroupAssignment, GroupDescription, GroupSummary};

/// The key → partition rules a `ProducerConfig` chooses from.
pub use crate::partitioner::Partitioner;
pub use connection::{ClientTls, Connection, SaslCredentials};
pub use consumer::{ConsumedRecord, Consumer, ConsumerConfig, StartAt};
pub use group::{
    GroupConfig, GroupConsumer, GroupRecord, OffsetReset, ResetTo, plan_reset_offsets,
    reset_offsets,
};
pub use producer::{Producer, ProducerConfig, RecordAck, record_body_bytes_max};
pub use queue::{QueueConsumer, QueueConsumerConfig};
pub use redrive::Redrive;
pub use replies::{Requester, Responder};
pub use threaded::ThreadedClient;

use crate::protocol::{
    ErrorCode, FetchRequest, FetchResponse, OffsetSpec, ProduceRequest, ProduceResponse,
    ProtocolError, Request, Response, TopicMetadata,
};
use crate::storage::AckLevel;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
/// Why a client call failed.
pub enum ClientError {
    /// The broker answered with an error.
    #[error("{0}")]
    Server(ProtocolError),
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Connection(String),
}

impl ClientError {
    /// The broker's error code, when the broker answered with an error.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Server(error) => Some(error.code),
            ClientError::Connection(_) => None,
        }
    }
}

/// A client call's result.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;

fn unexpected(response: Response) -> ClientError {
    ClientError::Connection(format!("unexpected response {response:?}"))
}

/// Admin and data calls over one connection. Cheap to clone: clones share the connection and
/// the requester [`Client::request`] creates on first use.
#[derive(Clone)]
pub struct Client {
    connection: Connection,
    requester: replies::SharedRequester,
}

impl Client {
    /// Connects to the broker's native protocol at `address` (`host:port`).
    pub async fn connect(address: &str) -> Result<Client> {
        Ok(Client::over(
            Connection::connect(address, "ringmq-rust").await?,
        ))
    }

    /// Connects over TLS (see `ClientTls`).
    pub async fn connect_tls(address: &str, tls: &ClientTls) -> Result<Client> {
        Client::connect_with(address, Some(tls), None).await
    }

    /// Connects over TLS if `tls` is given, and authenticates with `credentials` if given,
    /// before returning.
    pub async fn connect_with(
        address: &str,
        tls: Option<&ClientTls>,
        credentials: Option<&SaslCredentials>,
    ) -> Result<Client> {
        let connection = Connection::connect_with(address, "ringmq-rust", tls).await?;
        if let Some(credentials) = credentials {
            connection.authenticate(credentials).await?;
        }
        Ok(Client::over(connection))
    }

    /// A client over `connection`, with no requester yet.
    fn over(connection: Connection) -> Client {
        Client {
            connection,
            requester: replies::SharedRequester::default(),
        }
    }

    /// The connection this client sends on, for raw requests.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// (api key, lowest, highest version) the broker speaks, and its version.
    pub async fn api_versions(&self) -> Result<(Vec<(u16, u16, u16)>, String)> {
        match self.connection.request(Request::ApiVersions).await? {
            Response::ApiVersions {
                apis,
                broker_version,
            } => Ok((apis, broker_version)),
            other => Err(unexpected(other)),
        }
    }

    /// Creates `name` with `partitions` partitions and topic settings (`configs`: key, value;
    /// README.md lists them); `topic_exists` if it exists.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let configs = configs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.connection
            .request(Request::CreateTopic {
                name: name.into(),
                partitions,
                configs,
            })
            .await
            .map(drop)
    }

    /// Grows `name` to `partitions` partitions (a topic only grows; its data stays where it
    /// is, and keys hash over the new count from then on).
    pub async fn add_partitions(&self, name: &str, partitions: u32) -> Result<()> {
        self.connection
            .request(Request::AddPartitions {
                name: name.into(),
                partitions,
            })
            .await
            .map(drop)
    }

    /// Changes topic `name`'s settings while it runs: `set` (key, value) pairs, and `reset`
    /// keys back to the broker's defaults. In force on every partition when this returns.
    pub async fn alter_topic(
        &self,
        name: &str,
        set: &[(&str, &str)],
        reset: &[&str],
    ) -> Result<()> {
        self.connection
            .request(Request::AlterTopicConfig {
                name: name.into(),
                set: set
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                reset: reset.iter().map(|k| k.to_string()).collect(),
            })
            .await
            .map(drop)
    }

    /// Deletes the records of `topic`'s `partition` before `before` (None: all of them, up to
    /// its high watermark) by moving the partition's start there, durably; returns the new
    /// start. `offset_out_of_range` past the high watermark; an offset at or before the start
    /// changes nothing.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        before: Option<u64>,
    ) -> Result<u64> {
        let before = match before {
            None => -1,
            Some(offset) => i64::try_from(offset).unwrap_or(i64::MAX),
        };
        let request = Request::DeleteRecords {
            topic: topic.into(),
            partition,
            before,
        };
        match self.connection.request(request).await? {
            Response::DeleteRecords { log_start_offset } => Ok(log_start_offset),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes `name` and its data; `unknown_topic` if there is none.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.connection
            .request(Request::DeleteTopic { name: name.into() })
            .await
            .map(drop)
    }

    /// Metadata of the named topics, or of every topic when `names` is empty.
    pub async fn metadata(&self, names: &[&str]) -> Result<Vec<TopicMetadata>> {
        let topics = names.iter().map(|name| name.to_string()).collect();
        match self
            .connection
            .request(Request::Metadata { topics })
            .await?
        {
            Response::Metadata { topics, .. } => Ok(topics),
            other => Err(unexpected(other)),
        }
    }

    /// Appends record batches (laid end to end in `records`) to a partition, or with
    /// `partition: None` to the partition the broker picks from `key`.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<u32>,
        key: &[u8],
        acks: AckLevel,
        records: BytesMut,
    ) -> Result<ProduceResponse> {
        let request = ProduceRequest {
            topic: topic.into(),
            partition: partition.map_or(-1, |partition| partition as i32),
            key: bytes::Bytes::copy_from_slice(key),
            acks,
            records,
        };
        match self.connection.request(Request::Produce(request)).await? {
            Response::Produce(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    /// Reads stored batches of one partition from an offset, waiting up to `max_wait_ms` for
    /// `min_bytes`. The records are whole RecordBatch v2 bytes (`batch::records::decode`).
    pub async fn fetch(&self, request: FetchRequest) -> Result<FetchResponse> {
        match self.connection.request(Request::Fetch(request)).await? {
            Response::Fetch(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    /// The offset `spec` names (None: no record at or after that timestamp), with the
    /// partition's high watermark and log start.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<(Option<u64>, u64, u64)> {
        match self
            .connection
            .request(Request::ListOffsets {
                topic: topic.into(),
                partition,
                spec,
            })
            .await?
        {
            Response::ListOffsets {
                offset,
                high_watermark,
                log_start_offset,
            } => Ok((offset, high_watermark, log_start_offset)),
            other => Err(unexpected(other)),
        }
    }

    /// Joins a consumer group (a low-level call: `GroupConsumer` does the membership for you).
    pub async fn join_group(
        &self,
        group: &str,
        member_id: &str,
        topics: &[String],
        session_timeout_ms: u32,
        strategy: &str,
    ) -> Result<GroupAssignment> {
        let request = Request::JoinGroup {
            group: group.into(),
            member_id: member_id.into(),
            topics: topics.to_vec(),
            session_timeout_ms,
            strategy: strategy.into(),
        };
        match self.connection.request(request).await? {
            Response::Group(assignment) => Ok(assignment),
            other => Err(unexpected(other)),
        }
    }

    /// Keeps a group membership alive and learns whether the assignment changed.
    pub async fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
    ) -> Result<GroupAssignment> {
        match self
            .connection
            .request(Request::Heartbeat {
                group: group.into(),
                member_id: member_id.into(),
                generation,
            })
            .await?
        {
            Response::Group(assignment) => Ok(assignment),
            other => Err(unexpected(other)),
        }
    }

    /// Leaves a group at once, so that its partitions move without waiting for the session
    /// timeout.
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        self.connection
            .request(Request::LeaveGroup {
                group: group.into(),
                member_id: member_id.into(),
            })
            .await
            .map(drop)
    }

    /// Commits (topic, partition, next offset to read) as `member_id` of `generation`; with an
    /// empty member id, for a group that has no members.
    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        offsets: Vec<(String, u32, u64)>,
    ) -> Result<()> {
        let request = Request::CommitOffsets {
            group: group.into(),
            member_id: member_id.into(),
            generation,
            offsets,
        };
        self.connection.request(request).await.map(drop)
    }

    /// Committed offsets of `group` (for `partitions`, or all when empty).
    pub async fn fetch_offsets(
        &self,
        group: &str,
        partitions: Vec<(String, u32)>,
    ) -> Result<Vec<(String, u32, u64)>> {
        match self
            .connection
            .request(Request::FetchOffsets {
                group: group.into(),
                partitions,
            })
            .await?
        {
            Response::Offsets(offsets) => Ok(offsets),
            other => Err(unexpected(other)),
        }
    }

    /// Every consumer group the broker knows, with its state and member count.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        match self.connection.request(Request::ListGroups).await? {
            Response::Groups(groups) => Ok(groups),
            other => Err(unexpected(other)),
        }
    }

    /// A group's members, assignments, committed offsets and lag.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        match self
            .connection
            .request(Request::DescribeGroup {
                group: group.into(),
            })
            .await?
        {
            Response::GroupDescription(description) => Ok(description),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a group without members and its committed offsets.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.connection
            .request(Request::DeleteGroup {
                group: group.into(),
            })
            .await
            .map(drop)
    }
}
