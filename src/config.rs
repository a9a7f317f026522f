//! The broker's configuration: embedded defaults, overridden by a TOML file, then by environment
//! variables and flags (flags win). Every bound the broker enforces is here, with its unit in its
//! name; `ringmq serve --help` lists the flags, README.md the whole table.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::partitioner::Partitioner;
use crate::storage::LogConfig;

mod sqs;
pub use sqs::{SqsConfig, SqsCredential};

/// Where `ringmq serve` serves the SQS API unless told otherwise (ElasticMQ's port).
pub const SQS_LISTEN_DEFAULT: &str = "127.0.0.1:9324";

fn sqs_listen_default() -> String {
    SQS_LISTEN_DEFAULT.to_string()
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Where topics' partition logs and the topic metadata live.
    pub data_dir: PathBuf,
    /// The native protocol's listen address.
    pub listen: String,
    /// The Kafka protocol's listen address (also what Metadata advertises); empty to disable.
    pub kafka_listen: String,
    /// The `host:port` Kafka clients are told to connect to (Metadata, FindCoordinator); empty
    /// means the Kafka listener's own address. Required when that binds every interface.
    pub kafka_advertised: String,
    /// The Prometheus /metrics listen address; empty to disable.
    pub http_listen: String,
    /// The SQS-compatible HTTP API's listen address; empty to disable. `ringmq serve` (flags
    /// or a TOML file) defaults to `SQS_LISTEN_DEFAULT`; a broker embedded through
    /// `BrokerConfig::default()` (tests, the load generator) opens it only when asked.
    #[serde(default = "sqs_listen_default")]
    pub sqs_listen: String,
    /// The SQS door's account id, request bounds, limits and credentials (`[sqs]`).
    pub sqs: SqsConfig,
    /// TLS on the native listener (`[tls]`); off unless a certificate and key are given.
    pub tls: TlsSettings,
    /// TLS on the Kafka listener (`[kafka_tls]`), with its own certificate.
    pub kafka_tls: TlsSettings,
    /// TLS on the /metrics listener (`[http_tls]`).
    pub http_tls: TlsSettings,
    /// TLS on the SQS listener (`[sqs_tls]`): queue URLs then say `https`.
    pub sqs_tls: TlsSettings,
    /// SASL mechanisms Kafka clients must authenticate with (`PLAIN`, `SCRAM-SHA-256`,
    /// `SCRAM-SHA-512`); empty serves every client unauthenticated.
    pub kafka_sasl_mechanisms: Vec<String>,
    /// How long a Kafka client's SASL authentication holds before it must authenticate again
    /// on the same connection (KIP-368, Kafka's `connections.max.reauth.ms`); a request after
    /// that closes the connection. 0: forever.
    pub kafka_sasl_session_lifetime_ms: u64,
    /// The same for the native listener.
    pub sasl_mechanisms: Vec<String>,
    /// Principals (`User:name`) that ACLs never restrict.
    pub super_users: Vec<String>,
    /// Bytes per second each principal (or unauthenticated client id) may produce, per shard;
    /// 0: no limit. Over it, answers are held back (Kafka's `throttle_time_ms`).
    pub quota_produce_bytes_per_second: u64,
    /// The same for fetched bytes.
    pub quota_fetch_bytes_per_second: u64,
    /// Requests per second each principal (or client id) may make, per shard; 0: no limit.
    /// Authentication and ApiVersions are not counted.
    pub quota_requests_per_second: u64,
    /// Quotas of particular principals (`User:alice`) or client ids (`client-id:loader`),
    /// instead of the defaults above: `[quota_overrides."User:alice"]`.
    pub quota_overrides: BTreeMap<String, QuotaOverride>,
    /// Quota buckets (one per principal or client id and kind) each shard keeps; past it the
    /// idlest are dropped (a dropped bucket starts full again).
    pub quota_buckets_max: usize,
    /// /metrics answers only requests with `Authorization: Bearer <this>`; empty: no token.
    pub http_bearer_token: String,
    /// /metrics answers requests with basic credentials `user:password`; empty: none.
    pub http_basic_auth: String,
    /// Shards (threads, one per core); 0 means one per available core.
    pub shards: usize,
    /// Largest request frame accepted; a larger one gets an error and its connection is closed.
    pub frame_bytes_max: usize,
    /// A connection stops being read (and served) while its requests and unwritten responses in
    /// flight hold this many bytes; a fetch starts only while these plus the worst cases reserved
    /// by its running fetches are below it.
    pub connection_inflight_bytes_max: usize,
    /// Every connection of a shard stops being read while the shard's requests and unwritten
    /// responses in flight hold this many bytes.
    pub shard_inflight_bytes_max: usize,
    /// Connections a shard accepts at once, native and Kafka together; further ones are closed
    /// at accept.
    pub connections_per_shard_max: usize,
    /// A connection with no request in flight on which nothing is read or written for this long
    /// is closed (a client that reads none of its responses, too); 0 never closes idle ones.
    pub idle_timeout_ms: u64,
    /// A connection whose started frame does not complete within this long is closed;
    /// 0 waits forever.
    pub request_read_timeout_ms: u64,
    /// Jobs waiting in one shard's cross-shard inbox.
    pub mailbox_jobs_max: usize,
    /// A produce whose partition's write queue stays full this long is refused as throttled.
    pub produce_queue_wait_ms_max: u64,
    /// The longest long poll a fetch may ask for.
    pub fetch_wait_ms_max: u32,
    /// The largest fetch response (per partition).
    pub fetch_bytes_max: u32,
    /// Kafka fetch sessions (KIP-227) one shard keeps (Kafka's
    /// `max.incremental.fetch.session.cache.slots`); 0 serves every fetch in full.
    pub kafka_fetch_sessions_max: usize,
    /// Partitions all of one shard's fetch sessions hold together.
    pub kafka_fetch_session_partitions_max: usize,
    /// Topics the broker holds at most.
    pub topics_max: usize,
    /// Exchanges the broker holds at most.
    pub exchanges_max: usize,
    /// Bindings one exchange holds at most.
    pub exchange_bindings_max: usize,
    /// The longest routing key, and the longest binding key or pattern, in bytes.
    pub routing_key_bytes_max: usize,
    /// The longest header name or value a headers binding may name, in bytes.
    pub routing_header_bytes_max: usize,
    /// Headers one headers binding may name.
    pub binding_headers_max: usize,
    /// Records one publish through an exchange may carry (they are decoded to be routed).
    pub publish_records_max: usize,
    /// Copies one publish through an exchange may store in all (records times the topics
    /// each is routed to): what bounds a publish's memory and routing work.
    pub publish_copies_max: usize,
    /// Requests one connection may have awaiting a direct reply.
    pub reply_pending_max: usize,
    /// Direct replies one connection may have waiting to be received, and their bytes.
    pub reply_queue_max: usize,
    pub reply_queue_bytes_max: usize,
    /// Temporary reply destinations (topics) one connection may hold.
    pub reply_temporary_max: usize,
    /// The longest a request may wait for its reply.
    pub reply_timeout_ms_max: u64,
    /// Partitions of a topic a single create may ask for.
    pub topic_partitions_max: u32,
    /// Kafka clients' topics are created on first use (a Metadata request that allows it, or a
    /// produce), with `default_partitions` and `topic_defaults`, as Kafka's
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// Partitions of a topic created on first use (Kafka's `num.partitions`).
    pub default_partitions: u32,
    /// How often each consumer group's committed offsets and lag are published as metrics.
    pub group_lag_interval_ms: u64,
    /// How often KIP-848 consumers (`group.protocol=consumer`) are told to heartbeat (Kafka's
    /// `group.consumer.heartbeat.interval.ms`): how soon they learn of a new assignment.
    pub group_consumer_heartbeat_interval_ms: u32,
    /// A KIP-848 consumer silent this long is removed and its partitions go to the others
    /// (Kafka's `group.consumer.session.timeout.ms`; the broker's setting, not the client's).
    pub group_consumer_session_timeout_ms: u64,
    /// How long a shutdown waits for in-flight requests before closing the logs anyway; also how
    /// long closing one log (its last write and fdatasync) may take before shutdown goes on.
    pub shutdown_grace_ms: u64,
    /// How long a request waits for another shard to answer (queueing included) before it fails
    /// with `timed_out`. Longer than any wait a request may ask for (a long poll, a rebalance of
    /// up to 300 s): it only ends waits on a shard that has stopped making progress.
    pub shard_call_timeout_ms: u64,
    /// How long start-up (recovery of every log included) may take before the broker gives up
    /// and exits with an error.
    pub startup_timeout_ms: u64,
    /// The log settings a new topic starts with; CreateTopic's configs override them.
    pub topic_defaults: LogConfig,
    /// Check every CRC of every sealed segment of every partition at start (slower start;
    /// damage at rest is then found, isolated and exported before the first read).
    pub verify_on_start: bool,
    /// The key → partition rule of a native produce that lets the broker choose (partition -1):
    /// murmur2, as Kafka's Java client and ringmq's own client and CLI; xxh3 was the rule before.
    pub key_partitioner: Partitioner,
    /// Queue groups: the defaults a new one starts with and the broker's bounds on them.
    pub queues: QueueConfig,
    /// Kafka share groups (KIP-932): their defaults and the broker's bounds on them.
    pub share_groups: ShareGroupConfig,
}

/// Queue groups' defaults (a create may override the first five) and the broker's bounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// How long a received message stays locked to its consumer unless the receive says.
    pub visibility_timeout_ms: u32,
    /// Deliveries after which a message that is released or whose lock expires is
    /// dead-lettered.
    pub max_deliveries: u32,
    /// Locks a queue group holds at once on one partition.
    pub max_in_flight: u32,
    /// Locks one consumer holds at once on one partition (its prefetch).
    pub max_unacked: u32,
    /// Offsets a queue group holds state for above its settled prefix on one partition: a
    /// message unsettled this far behind the newest delivered one holds the rest back.
    pub window_messages_max: u32,
    /// Messages one receive may ask for.
    pub receive_messages_max: u32,
    /// Queue groups one topic may have.
    pub groups_per_topic_max: u32,
    /// How often each shard retries failed dead letters and publishes its queue metrics (locks
    /// and delays end at their own deadlines, which the shard's queue timer wakes for).
    pub lock_check_interval_ms: u64,
    /// The delay before a new message of a group becomes available (0: none); a message's
    /// `x-delay-ms` header overrides it.
    pub delay_ms: u64,
}

/// Kafka share groups' defaults (each group may override the first five with its `share.*`
/// group configs) and the broker's bounds on them (`[share_groups]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShareGroupConfig {
    /// Where a share group starts reading a topic it has not read before: `earliest` or
    /// `latest` (Kafka's `share.auto.offset.reset`, default latest).
    pub auto_offset_reset: String,
    /// How long acquired records stay locked to their member (Kafka's
    /// `group.share.record.lock.duration.ms`).
    pub record_lock_duration_ms: u32,
    /// Deliveries after which a record is archived (Kafka's `group.share.delivery.count.limit`).
    pub delivery_count_limit: u32,
    /// A member silent this long is removed (Kafka's `group.share.session.timeout.ms`).
    pub session_timeout_ms: u32,
    /// How often members are told to heartbeat (Kafka's `group.share.heartbeat.interval.ms`).
    pub heartbeat_interval_ms: u32,
    /// Members one share group holds (Kafka's `group.share.max.size`).
    pub members_max: usize,
    /// Share groups one coordinator shard holds.
    pub groups_per_shard_max: usize,
    /// Share sessions (ShareFetch's `ShareSessionEpoch`) one shard keeps (Kafka's
    /// `group.share.max.share.sessions`).
    pub sessions_max: usize,
    /// Partitions one share session may hold.
    pub session_partitions_max: usize,
    /// The longest rack id a share group member may give (Kafka sets none).
    pub rack_id_bytes_max: usize,
    /// A share group without members is forgotten from the coordinator's memory after this
    /// long (its configs and queue groups stay).
    pub empty_group_retention_ms: u64,
    /// Partitions of departed members a coordinator shard keeps waiting for their locks to be
    /// released; past it the oldest are dropped and their locks end at their deadlines.
    pub departed_partitions_max: usize,
}

impl Default for ShareGroupConfig {
    fn default() -> ShareGroupConfig {
        ShareGroupConfig {
            auto_offset_reset: "latest".into(),
            record_lock_duration_ms: 30_000,
            delivery_count_limit: 5,
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            members_max: 200,
            groups_per_shard_max: 10_000,
            sessions_max: 2_000,
            session_partitions_max: 10_000,
            rack_id_bytes_max: 255,
            empty_group_retention_ms: 600_000,
            departed_partitions_max: 100_000,
        }
    }
}

impl ShareGroupConfig {
    /// Kafka's bounds on each default (a group's own configs are held to the same).
    fn validate(&self) -> Result<(), String> {
        let checks = [
            (
                matches!(self.auto_offset_reset.as_str(), "earliest" | "latest"),
                "share_groups.auto_offset_reset must be earliest or latest",
            ),
            (
                (1_000..=3_600_000).contains(&self.record_lock_duration_ms),
                "share_groups.record_lock_duration_ms must be 1000 to 3600000",
            ),
            (
                (2..=10).contains(&self.delivery_count_limit),
                "share_groups.delivery_count_limit must be 2 to 10",
            ),
            (
                self.session_timeout_ms > self.heartbeat_interval_ms
                    && self.heartbeat_interval_ms >= 100,
                "share_groups.session_timeout_ms must be over heartbeat_interval_ms (at least 100)",
            ),
            (
                self.members_max >= 1 && self.groups_per_shard_max >= 1,
                "share_groups.members_max and groups_per_shard_max must be at least 1",
            ),
            (
                self.session_partitions_max >= 1,
                "share_groups.session_partitions_max must be at least 1",
            ),
            (
                self.rack_id_bytes_max >= 1
                    && self.empty_group_retention_ms >= 1
                    && self.departed_partitions_max >= 1,
                "share_groups.rack_id_bytes_max, empty_group_retention_ms and departed_partitions_max must be at least 1",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, reason)) => Err(reason.to_string()),
            None => Ok(()),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            visibility_timeout_ms: 30_000,
            max_deliveries: 5,
            max_in_flight: 2_000,
            max_unacked: 1_000,
            window_messages_max: 20_000,
            receive_messages_max: 1_000,
            groups_per_topic_max: 100,
            lock_check_interval_ms: 100,
            delay_ms: 0,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            data_dir: PathBuf::from("ringmq-data"),
            listen: "127.0.0.1:9400".into(),
            kafka_listen: "127.0.0.1:9092".into(),
            kafka_advertised: String::new(),
            http_listen: "127.0.0.1:9401".into(),
            sqs_listen: String::new(),
            sqs: SqsConfig::default(),
            tls: TlsSettings::default(),
            kafka_tls: TlsSettings::default(),
            http_tls: TlsSettings::default(),
            sqs_tls: TlsSettings::default(),
            kafka_sasl_mechanisms: Vec::new(),
            kafka_sasl_session_lifetime_ms: 0,
            sasl_mechanisms: Vec::new(),
            super_users: Vec::new(),
            http_bearer_token: String::new(),
            quota_produce_bytes_per_second: 0,
            quota_fetch_bytes_per_second: 0,
            quota_requests_per_second: 0,
            quota_overrides: BTreeMap::new(),
            quota_buckets_max: 10_000,
            http_basic_auth: String::new(),
            shards: 0,
            frame_bytes_max: 16 << 20,
            connection_inflight_bytes_max: 64 << 20,
            shard_inflight_bytes_max: 256 << 20,
            connections_per_shard_max: 10_000,
            idle_timeout_ms: 600_000,
            request_read_timeout_ms: 30_000,
            mailbox_jobs_max: 4096,
            produce_queue_wait_ms_max: 10_000,
            fetch_wait_ms_max: 30_000,
            fetch_bytes_max: 16 << 20,
            kafka_fetch_sessions_max: 1000,
            kafka_fetch_session_partitions_max: 200_000,
            topics_max: 10_000,
            exchanges_max: 1_000,
            exchange_bindings_max: 20_000,
            routing_key_bytes_max: 255,
            routing_header_bytes_max: 255,
            binding_headers_max: 32,
            publish_records_max: 10_000,
            publish_copies_max: 100_000,
            reply_pending_max: 10_000,
            reply_queue_max: 10_000,
            reply_queue_bytes_max: 16 << 20,
            reply_temporary_max: 16,
            reply_timeout_ms_max: 300_000,
            topic_partitions_max: 4096,
            auto_create_topics: true,
            default_partitions: 1,
            group_lag_interval_ms: 5_000,
            group_consumer_heartbeat_interval_ms: 5_000,
            group_consumer_session_timeout_ms: 45_000,
            shutdown_grace_ms: 10_000,
            shard_call_timeout_ms: 330_000,
            startup_timeout_ms: 600_000,
            topic_defaults: LogConfig::default(),
            verify_on_start: false,
            key_partitioner: Partitioner::Murmur2,
            queues: QueueConfig::default(),
            share_groups: ShareGroupConfig::default(),
        }
    }
}

/// One listener's TLS: its certificate chain and private key (PEM files), and for mutual TLS
/// the authority whose certificates clients must present.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    pub cert_path: Option<PathBuf>,
    pub key_path: Option<PathBuf>,
    pub client_ca_path: Option<PathBuf>,
    /// How a client certificate names the connection's principal, on a listener with mutual
    /// TLS and no SASL (with SASL, the SASL user is the principal, as in Kafka).
    pub principal: CertificatePrincipal,
}

/// One principal's or client id's own quotas; a rate left out is the broker's default, 0 is
/// no limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaOverride {
    pub produce_bytes_per_second: Option<u64>,
    pub fetch_bytes_per_second: Option<u64>,
    pub requests_per_second: Option<u64>,
}

/// The principal a client certificate stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CertificatePrincipal {
    /// `User:` and the whole subject as Kafka writes it (`User:CN=alice,O=example`), Kafka's
    /// default.
    #[default]
    Dn,
    /// `User:` and the subject's common name (`User:alice`): the name a SASL user has.
    Cn,
}

impl TlsSettings {
    fn validate(&self, table: &str) -> Result<(), String> {
        match (&self.cert_path, &self.key_path, &self.client_ca_path) {
            (Some(_), Some(_), _) | (None, None, None) => Ok(()),
            (None, None, Some(_)) => Err(format!(
                "[{table}] client_ca_path needs cert_path and key_path (mutual TLS is TLS)"
            )),
            _ => Err(format!("[{table}] needs both cert_path and key_path")),
        }
    }
}

impl BrokerConfig {
    pub fn from_toml_file(path: &Path) -> Result<BrokerConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("{}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
    }

    /// Whether ACLs are enforced: when any listener asks clients to authenticate, by SASL, by
    /// a client certificate or by SigV4 (`[[sqs.credentials]]`).
    pub fn authorization_enforced(&self) -> bool {
        !self.sqs.credentials.is_empty()
            || !self.kafka_sasl_mechanisms.is_empty()
            || !self.sasl_mechanisms.is_empty()
            || self.tls.client_ca_path.is_some()
            || self.kafka_tls.client_ca_path.is_some()
            || self.sqs_tls.client_ca_path.is_some()
    }

    /// The shard count in force: the setting, or the cores available.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            0 => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
            shards => shards,
        }
    }

    pub fn listen_address(&self) -> Result<SocketAddr, String> {
        self.listen
            .parse()
            .map_err(|error| format!("listen address {:?}: {error}", self.listen))
    }

    pub fn http_listen_address(&self) -> Result<Option<SocketAddr>, String> {
        if self.http_listen.is_empty() {
            return Ok(None);
        }
        self.http_listen
            .parse()
            .map(Some)
            .map_err(|error| format!("http listen address {:?}: {error}", self.http_listen))
    }

    pub fn sqs_listen_address(&self) -> Result<Option<SocketAddr>, String> {
        if self.sqs_listen.is_empty() {
            return Ok(None);
        }
        self.sqs_listen
            .parse()
            .map(Some)
            .map_err(|error| format!("sqs listen address {:?}: {error}", self.sqs_listen))
    }

    pub fn kafka_listen_address(&self) -> Result<Option<SocketAddr>, String> {
        if self.kafka_listen.is_empty() {
            return Ok(None);
        }
        self.kafka_listen
            .parse()
            .map(Some)
            .map_err(|error| format!("kafka listen address {:?}: {error}", self.kafka_listen))
    }

    /// The host and port the Kafka listener bound at `bound` is advertised as: the setting, or
    /// the bound address itself, which must then name one interface.
    pub fn kafka_advertised_at(&self, bound: SocketAddr) -> Result<(String, u16), String> {
        if self.kafka_advertised.is_empty() {
            if bound.ip().is_unspecified() {
                return Err(format!(
                    "kafka_listen {bound} binds every interface: set kafka_advertised to the host:port clients reach"
                ));
            }
            return Ok((bound.ip().to_string(), bound.port()));
        }
        let (host, port) = self.kafka_advertised.rsplit_once(':').ok_or_else(|| {
            format!(
                "kafka_advertised {:?} is not host:port",
                self.kafka_advertised
            )
        })?;
        let port: u16 = port.parse().map_err(|error| {
            format!(
                "kafka_advertised {:?}: port: {error}",
                self.kafka_advertised
            )
        })?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!(
                "kafka_advertised {:?} is not host:port",
                self.kafka_advertised
            ));
        }
        Ok((host.to_string(), port))
    }

    pub fn validate(&self) -> Result<(), String> {
        self.listen_address()?;
        if let Some(bound) = self.kafka_listen_address()?
            && bound.port() != 0
        {
            self.kafka_advertised_at(bound)?;
        }
        self.http_listen_address()?;
        self.sqs_listen_address()?;
        self.sqs.validate()?;
        self.tls.validate("tls")?;
        self.kafka_tls.validate("kafka_tls")?;
        self.http_tls.validate("http_tls")?;
        self.sqs_tls.validate("sqs_tls")?;
        let listeners = [
            ("kafka_sasl_mechanisms", &self.kafka_sasl_mechanisms),
            ("sasl_mechanisms", &self.sasl_mechanisms),
        ];
        for (setting, mechanisms) in listeners {
            for mechanism in mechanisms {
                if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
                    return Err(format!(
                        "{setting}: {mechanism:?} is not PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
                    ));
                }
            }
        }
        for entity in self.quota_overrides.keys() {
            if !(entity.starts_with("User:") || entity.starts_with("client-id:")) {
                return Err(format!(
                    "quota_overrides: {entity:?} is neither \"User:name\" nor \"client-id:name\""
                ));
            }
        }
        self.topic_defaults
            .validate()
            .map_err(|reason| format!("topic_defaults: {reason}"))?;
        self.share_groups.validate()?;
        let checks = [
            (self.shard_count() <= 1024, "shards must be at most 1024"),
            (
                self.frame_bytes_max >= 1024,
                "frame_bytes_max must be at least 1024",
            ),
            (
                self.frame_bytes_max >= self.topic_defaults.batch_bytes_max,
                "frame_bytes_max must hold the largest batch",
            ),
            (
                self.connection_inflight_bytes_max >= self.frame_bytes_max,
                "connection_inflight_bytes_max must hold one frame",
            ),
            (
                self.shard_inflight_bytes_max >= self.connection_inflight_bytes_max,
                "shard_inflight_bytes_max must hold one connection's",
            ),
            (
                self.connections_per_shard_max >= 1,
                "connections_per_shard_max must be at least 1",
            ),
            (
                self.mailbox_jobs_max >= 1,
                "mailbox_jobs_max must be at least 1",
            ),
            (
                self.quota_buckets_max >= 1,
                "quota_buckets_max must be at least 1",
            ),
            (
                self.fetch_bytes_max >= 1,
                "fetch_bytes_max must be at least 1",
            ),
            (
                self.exchanges_max >= 1 && self.exchange_bindings_max >= 1,
                "exchanges_max and exchange_bindings_max must be at least 1",
            ),
            (
                self.routing_key_bytes_max >= 1
                    && self.routing_header_bytes_max >= 1
                    && self.publish_records_max >= 1
                    && self.publish_copies_max >= 1,
                "routing_key_bytes_max, routing_header_bytes_max, publish_records_max and publish_copies_max must be at least 1",
            ),
            (
                self.reply_pending_max >= 1
                    && self.reply_queue_max >= 1
                    && self.reply_queue_bytes_max >= 1
                    && self.reply_timeout_ms_max >= 1,
                "reply_pending_max, reply_queue_max, reply_queue_bytes_max and reply_timeout_ms_max must be at least 1",
            ),
            (
                self.topic_partitions_max >= 1,
                "topic_partitions_max must be at least 1",
            ),
            (
                self.default_partitions >= 1
                    && self.default_partitions <= self.topic_partitions_max,
                "default_partitions must be 1 to topic_partitions_max",
            ),
            (
                self.shard_call_timeout_ms
                    > u64::from(self.fetch_wait_ms_max).max(self.produce_queue_wait_ms_max),
                "shard_call_timeout_ms must be longer than fetch_wait_ms_max and produce_queue_wait_ms_max",
            ),
            (
                self.startup_timeout_ms >= 1,
                "startup_timeout_ms must be at least 1",
            ),
            (
                (1..=300_000).contains(&self.group_consumer_heartbeat_interval_ms)
                    && u64::from(self.group_consumer_heartbeat_interval_ms)
                        < self.group_consumer_session_timeout_ms,
                "group_consumer_heartbeat_interval_ms must be 1 to 300000 and below group_consumer_session_timeout_ms",
            ),
            (
                (100..=3_600_000).contains(&self.group_consumer_session_timeout_ms),
                "group_consumer_session_timeout_ms must be 100 to 3600000",
            ),
        ];
        match checks.iter().find(|(ok, _)| !ok) {
            Some((_, reason)) => Err((*reason).to_string()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kafka_listener_is_advertised_as_set_or_as_bound() {
        let bound: SocketAddr = "127.0.0.1:9092".parse().unwrap();
        let every: SocketAddr = "0.0.0.0:9092".parse().unwrap();
        let mut config = BrokerConfig::default();
        assert_eq!(
            config.kafka_advertised_at(bound),
            Ok(("127.0.0.1".into(), 9092))
        );
        let refused = config.kafka_advertised_at(every).unwrap_err();
        assert!(refused.contains("set kafka_advertised"), "{refused}");
        config.kafka_advertised = "broker.example:19092".into();
        assert_eq!(
            config.kafka_advertised_at(every),
            Ok(("broker.example".into(), 19092))
        );
        config.kafka_advertised = "[::1]:9092".into();
        assert_eq!(config.kafka_advertised_at(every), Ok(("::1".into(), 9092)));
        for bad in ["no-port", "host:", ":9092", "host:0", "host:70000"] {
            config.kafka_advertised = bad.into();
            assert!(config.kafka_advertised_at(every).is_err(), "{bad}");
        }
        config.kafka_listen = "0.0.0.0:9092".into();
        config.kafka_advertised = String::new();
        assert!(
            config.validate().is_err(),
            "every interface and nothing advertised"
        );
    }

    #[test]
    fn topics_are_created_on_first_use_with_one_partition_unless_set() {
        let config = BrokerConfig::default();
        assert!(config.auto_create_topics);
        assert_eq!(config.default_partitions, 1);
        let file: BrokerConfig =
            toml::from_str("auto_create_topics = false\ndefault_partitions = 6\n").unwrap();
        assert!(!file.auto_create_topics);
        assert_eq!(file.default_partitions, 6);
        assert_eq!(file.validate(), Ok(()));
        for partitions in [0, 4097] {
            let bad = BrokerConfig {
                default_partitions: partitions,
                ..BrokerConfig::default()
            };
            assert_eq!(
                bad.validate(),
                Err("default_partitions must be 1 to topic_partitions_max".to_string()),
                "{partitions}"
            );
        }
    }
}
