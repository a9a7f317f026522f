//! The Kafka wire protocol, a second front door over the same engine: Kafka clients (librdkafka,
//! the Java client, ...) produce and consume without change. Each Kafka request is decoded with
//! the `kafka-protocol` crate and served by the broker service's typed operations
//! (`broker::service`), so routing to partition owners, storage and errors are exactly those of
//! the native protocol; `errors.rs` renders the service's errors as Kafka's codes.
//! Record batches are Kafka's RecordBatch v2 on both sides, so they pass through untouched.
//!
//! This file is the adapter onto the connection layer (`net`), which gives Kafka the
//! same accept path, connection cap, bounds, timeouts and shutdown drain as the native protocol.
//! Kafka answers requests of one connection in the order they came (clients rely on it), and
//! sends no answer at all to a produce with acks=0.

pub mod acls;
pub mod admin;
pub mod alter_configs;
pub mod consumer_groups;
pub mod delete_records;
pub mod describe_partitions;
pub mod errors;
pub mod fetch;
pub mod fetch_session;
pub mod groups;
pub mod handlers;
pub mod list_offsets;
pub mod metadata;
pub mod sasl;
pub mod share_fetch;
pub mod share_groups;
pub mod share_offsets;
pub mod share_session;

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::RequestKind;

use crate::broker::ShardState;
use crate::net::{Decoded, Listener, Wire, fetch_bytes_bound};
use fetch_session::FetchSessions;
use share_session::ShareSessions;

/// Registers the help text of the Kafka door's own metrics.
pub(crate) fn describe_metrics() {
    fetch_session::describe_metrics();
    share_session::describe_metrics();
    metrics::describe_counter!(
        "ringmq_kafka_reauthentications_total",
        "Kafka connections that renewed their SASL authentication (KIP-368)."
    );
}

/// The host and port Metadata and FindCoordinator name: where clients must connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Advertised {
    pub host: Rc<str>,
    pub port: u16,
}

/// The Kafka protocol's adapter of one shard; `advertised` is the address Metadata names.
/// Connections of the shard share its clones, and with them the shard's fetch sessions.
#[derive(Clone)]
pub(crate) struct Kafka {
    advertised: Advertised,
    sessions: Rc<RefCell<FetchSessions>>,
    /// The shard's share sessions (KIP-932), shared like the fetch sessions.
    share_sessions: Rc<RefCell<ShareSessions>>,
    /// This connection's SASL progress (each connection gets its own: `for_connection`).
    sasl: Rc<RefCell<sasl::KafkaSasl>>,
}

impl Kafka {
    pub(crate) fn new((host, port): (String, u16), state: &ShardState) -> Kafka {
        let sessions = FetchSessions::new(
            state.id,
            state.shards(),
            state.config.kafka_fetch_sessions_max,
            state.config.kafka_fetch_session_partitions_max,
        );
        let share = &state.config.share_groups;
        let share_sessions = ShareSessions::new(
            share.sessions_max,
            share.session_partitions_max,
            std::time::Duration::from_millis(u64::from(share.session_timeout_ms)),
        );
        Kafka {
            advertised: Advertised {
                host: host.into(),
                port,
            },
            sessions: Rc::new(RefCell::new(sessions)),
            share_sessions: Rc::new(RefCell::new(share_sessions)),
            sasl: Rc::default(),
        }
    }
}

/// A decoded Kafka request with the worst case of its response.
pub(crate) struct KafkaRequest {
    prepared: handlers::Prepared,
    response_bytes_bound: usize,
}

impl Wire for Kafka {
    type Request = KafkaRequest;
    const LISTENER: Listener = Listener::Kafka;
    const ORDERED: bool = true;

    fn for_connection(&self) -> Self {
        Kafka {
            advertised: self.advertised.clone(),
            sessions: self.sessions.clone(),
            share_sessions: self.share_sessions.clone(),
            sasl: Rc::default(),
        }
    }

    fn client_certificate(&self, state: &ShardState, certificate: &[u8]) {
        use crate::broker::service::SaslSession;
        let config = &state.config;
        let from = config.kafka_tls.principal;
        if let Some(session) =
            SaslSession::certified(certificate, from, &config.kafka_sasl_mechanisms)
        {
            self.sasl.borrow_mut().session = session;
        }
    }

    fn decode(&self, state: &ShardState, frame: BytesMut) -> Decoded<KafkaRequest> {
        let mut frame = frame.freeze();
        frame.advance(4.min(frame.len()));
        let prepared = match handlers::prepare(frame) {
            Ok(prepared) => prepared,
            // Undecodable: answer what can be answered, then close.
            Err(answer) => return Decoded::Close(answer),
        };
        let required = !state.config.kafka_sasl_mechanisms.is_empty();
        if !self
            .sasl
            .borrow()
            .admits(required, prepared.api(), std::time::Instant::now())
        {
            // As Kafka: a request before authenticating, after failing to, or after the
            // authentication's lifetime, ends the connection without an answer.
            tracing::debug!(api = ?prepared.api(), "kafka request before authentication; closing");
            return Decoded::Close(None);
        }
        let response_bytes_bound = response_bytes_bound(state, prepared.request());
        if response_bytes_bound > state.config.shard_inflight_bytes_max {
            // Its responses alone could exceed what the whole shard may hold.
            tracing::warn!(
                response_bytes_bound,
                shard_inflight_bytes_max = state.config.shard_inflight_bytes_max,
                "kafka fetch over the shard's in-flight bound; closing the connection"
            );
            return Decoded::Close(None);
        }
        Decoded::Request(KafkaRequest {
            prepared,
            response_bytes_bound,
        })
    }

    fn too_large(&self, _size: usize, _limit: usize) -> Option<Vec<Bytes>> {
        None
    }

    fn response_bytes_bound(&self, _state: &ShardState, request: &KafkaRequest) -> usize {
        request.response_bytes_bound
    }

    fn answers(&self, request: &KafkaRequest) -> bool {
        !request.prepared.no_response()
    }

    async fn handle(self, state: Rc<ShardState>, request: KafkaRequest) -> Vec<Bytes> {
        let door = handlers::Door {
            advertised: &self.advertised,
            sessions: &self.sessions,
            share_sessions: &self.share_sessions,
            sasl: &self.sasl,
        };
        handlers::handle(&state, request.prepared, door).await
    }
}

/// A fetch's worst case (`fetch.rs` reads it so): the response holds at most the request's
/// `max_bytes` (capped by `fetch_bytes_max`) plus one partition's overrun (the first partition
/// with data may go past, by one read), and while a wave of `READS_AT_ONCE` partitions is read,
/// their reads are held before they are trimmed to that budget. The bound follows the request's
/// budget, not its entry count, so a consumer of many partitions is served. Other responses are
/// small.
fn response_bytes_bound(state: &ShardState, request: &RequestKind) -> usize {
    let fetch = match request {
        RequestKind::Fetch(fetch) => fetch,
        RequestKind::ShareFetch(share) => {
            let config = &state.config;
            return share_fetch::response_bytes_bound(
                config.fetch_bytes_max,
                config.topic_defaults.batch_bytes_max,
                config.queues.receive_messages_max,
                share,
            );
        }
        _ => return 0,
    };
    let topics = state.topics();
    let mut reads: Vec<usize> = fetch
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic.topic.0.as_str();
            let topics = &topics;
            topic.partitions.iter().map(move |partition| {
                let max_bytes = u32::try_from(partition.partition_max_bytes.max(1)).unwrap_or(1);
                fetch_bytes_bound(state, topics, name, max_bytes)
            })
        })
        .collect();
    // The largest reads a wave could hold at once, found in linear time (a request may name a
    // partition a million times); the largest of them is also the first partition's overrun.
    if reads.len() > fetch::READS_AT_ONCE {
        reads.select_nth_unstable_by(fetch::READS_AT_ONCE - 1, |a, b| b.cmp(a));
        reads.truncate(fetch::READS_AT_ONCE);
    }
    let largest_read = reads.iter().copied().max().unwrap_or(0);
    let wave: usize = reads.iter().fold(0, |sum, read| sum.saturating_add(*read));
    fetch::budget(state, fetch)
        .saturating_add(largest_read)
        .saturating_add(wave)
}
