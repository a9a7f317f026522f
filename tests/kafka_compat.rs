//! Kafka semantics a Kafka user relies on, over TCP: offsets by time to the record (with the
//! record's timestamp, MAX_TIMESTAMP), and topics created on first use (Metadata that allows
//! it, and produce). Checked with librdkafka (the `rdkafka` crate), a client we did not write,
//! and with exact requests encoded by the `kafka-protocol` crate (`common::kafka_wire`).

mod common;

use std::time::Duration;

use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use std::sync::Mutex;

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const LEADER_NOT_AVAILABLE: i16 = 5;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUEST: i16 = 42;
const UNSUPPORTED_VERSION: i16 = 35;

/// A Kafka record batch holding one record per timestamp, as one produce.
fn produce_timed(address: &str, name: &'static str, timestamps: &[i64]) -> i64 {
    let mut builder = ringmq::batch::BatchBuilder::new(ringmq::batch::Compression::None);
    for (n, timestamp) in timestamps.iter().enumerate() {
        let value = format!("record-{n}");
        builder.push(ringmq::batch::Record::new(
            *timestamp,
            None,
            Some(value.as_bytes()),
        ));
    }
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(builder.build()));
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![partition]),
        ]);
    match call(address, ApiKey::Produce, 8, RequestKind::Produce(request)) {
        ResponseKind::Produce(response) => {
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!(partition.error_code, 0, "{partition:?}");
            partition.base_offset
        }
        other => panic!("Produce answered {other:?}"),
    }
}

/// ListOffsets at `version` for partition 0 of `name`, one entry per timestamp: each answer's
/// (error code, offset, timestamp).
fn list_offsets(
    address: &str,
    version: i16,
    name: &'static str,
    timestamps: &[i64],
) -> Vec<(i16, i64, i64)> {
    let partitions = timestamps
        .iter()
        .map(|timestamp| {
            ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(*timestamp)
        })
        .collect();
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(partitions),
        ]);
    match call(
        address,
        ApiKey::ListOffsets,
        version,
        RequestKind::ListOffsets(request),
    ) {
        ResponseKind::ListOffsets(response) => response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.offset, p.timestamp))
            .collect(),
        other => panic!("ListOffsets answered {other:?}"),
    }
}

/// One lookup per request (a partition named twice in one request is refused, as by Kafka).
fn list_offset(address: &str, version: i16, name: &'static str, timestamp: i64) -> (i16, i64, i64) {
    list_offsets(address, version, name, &[timestamp])[0]
}

#[test]
fn offsets_for_times_go_to_the_record_inside_a_batch_with_its_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "timed", 1);
    let t0: i64 = 1_700_000_000_000;
    let base = produce_timed(
        &address,
        "timed",
        &[t0, t0 + 1000, t0 + 2000, t0 + 3000, t0 + 4000],
    );
    assert_eq!(base, 0, "five records in one batch, offsets 0..=4");

    // librdkafka's offsets_for_times, as a Kafka user asks.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("group.id", "times")
        .create()
        .unwrap();
    let mut wanted = TopicPartitionList::new();
    wanted
        .add_partition_offset("timed", 0, rdkafka::Offset::Offset(t0 + 2500))
        .unwrap();
    let found = consumer
        .offsets_for_times(wanted, Duration::from_secs(10))
        .unwrap();
    let element = found.find_partition("timed", 0).unwrap();
    assert_eq!(element.error(), Ok(()));
    assert_eq!(element.offset(), rdkafka::Offset::Offset(3));

    // The exact answers, timestamps included, at v1 (the first with a timestamp) and v8.
    for version in [1, 8] {
        assert_eq!(
            list_offset(&address, version, "timed", t0 + 2500),
            (0, 3, t0 + 3000),
            "v{version}"
        );
        assert_eq!(list_offset(&address, version, "timed", t0), (0, 0, t0));
        assert_eq!(list_offset(&address, version, "timed", 0), (0, 0, t0));
        assert_eq!(
            list_offset(&address, version, "timed", t0 + 4001),
            (0, -1, -1),
            "past the last record: no offset, no timestamp"
        );
        // Earliest and latest name no record: Kafka answers timestamp -1.
        assert_eq!(list_offset(&address, version, "timed", -2), (0, 0, -1));
        assert_eq!(list_offset(&address, version, "timed", -1), (0, 5, -1));
    }
}

#[test]
fn max_timestamp_finds_the_first_record_with_the_largest_time() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "clocks", 1);
    assert_eq!(
        list_offset(&address, 7, "clocks", -3),
        (0, -1, -1),
        "an empty partition has no record"
    );
    let t0: i64 = 1_700_000_000_000;
    // Out of order across and inside batches; the largest time twice (offsets 4 and 6).
    produce_timed(&address, "clocks", &[t0 + 5000, t0, t0 + 7000]);
    produce_timed(
        &address,
        "clocks",
        &[t0 + 100, t0 + 9000, t0 + 200, t0 + 9000],
    );
    produce_timed(&address, "clocks", &[t0 + 8000]);
    for version in [7, 8] {
        assert_eq!(
            list_offset(&address, version, "clocks", -3),
            (0, 4, t0 + 9000),
            "v{version}"
        );
    }
    // The first record at or after a time, not the first with a larger offset.
    assert_eq!(
        list_offset(&address, 8, "clocks", t0 + 6000),
        (0, 2, t0 + 7000)
    );
    assert_eq!(
        list_offset(&address, 8, "clocks", t0 + 8500),
        (0, 4, t0 + 9000)
    );
}

#[test]
fn list_offsets_refuses_what_kafka_refuses_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "strict", 1);
    produce_timed(&address, "strict", &[1_000, 2_000]);
    // MAX_TIMESTAMP came with v7 and EARLIEST_LOCAL with v8; no other negative time is one.
    assert_eq!(
        list_offset(&address, 6, "strict", -3),
        (UNSUPPORTED_VERSION, -1, -1)
    );
    assert_eq!(
        list_offset(&address, 7, "strict", -4),
        (UNSUPPORTED_VERSION, -1, -1)
    );
    assert_eq!(list_offset(&address, 8, "strict", -4), (0, 0, -1));
    for time in [-5, -7, i64::MIN] {
        assert_eq!(
            list_offset(&address, 8, "strict", time),
            (UNSUPPORTED_VERSION, -1, -1),
            "{time}"
        );
    }
    // One partition named twice: both entries refused, neither looked up.
    assert_eq!(
        list_offsets(&address, 8, "strict", &[-1, 1_500]),
        vec![(INVALID_REQUEST, -1, -1), (INVALID_REQUEST, -1, -1)]
    );
    assert_serving(&address);
}

/// A broker on ephemeral ports (two shards) with `change` made to its settings.
fn broker_with(
    dir: &std::path::Path,
    change: impl FnOnce(&mut ringmq::config::BrokerConfig),
) -> (TestBroker, String) {
    let mut config = ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    };
    change(&mut config);
    let broker = TestBroker::start_with(config);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

/// Each delivery report librdkafka gives: (partition, offset) or its error code.
#[derive(Default)]
struct Deliveries(Mutex<Vec<Report>>);

/// Where librdkafka stored a message, or the error code of its failure.
type Report = Result<(i32, i64), Option<RDKafkaErrorCode>>;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, _)) => Err(error.rdkafka_error_code()),
        };
        self.0.lock().unwrap().push(outcome);
    }
}

/// Sends one message to `topic` (partition chosen by librdkafka) and waits for its report.
fn produce_with_librdkafka(address: &str, topic: &str) -> Vec<Report> {
    let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("acks", "all")
        .set("message.timeout.ms", "5000")
        .set("topic.metadata.propagation.max.ms", "1000")
        .create_with_context(Deliveries::default())
        .unwrap();
    producer
        .send(BaseRecord::<(), _>::to(topic).payload("first"))
        .unwrap();
    let _ = producer.flush(Timeout::After(Duration::from_secs(20)));
    producer.context().0.lock().unwrap().clone()
}

fn names(names: &[String]) -> Vec<MetadataRequestTopic> {
    names
        .iter()
        .map(|name| {
            MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
        })
        .collect()
}

/// Metadata for `topics` at `version`: each answered topic's (name, error code, partitions).
fn metadata(
    address: &str,
    version: i16,
    topics: &[String],
    allow_auto_topic_creation: bool,
) -> Vec<(String, i16, usize)> {
    let request = MetadataRequest::default()
        .with_topics(Some(names(topics)))
        .with_allow_auto_topic_creation(allow_auto_topic_creation);
    match call(
        address,
        ApiKey::Metadata,
        version,
        RequestKind::Metadata(request),
    ) {
        ResponseKind::Metadata(response) => response
            .topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
                (name, t.error_code, t.partitions.len())
            })
            .collect(),
        other => panic!("Metadata answered {other:?}"),
    }
}

fn one(name: &str) -> Vec<String> {
    vec![name.to_string()]
}

#[test]
fn librdkafka_producing_to_a_new_topic_creates_it_with_default_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker_with(dir.path(), |config| config.default_partitions = 3);
    let reports = produce_with_librdkafka(&address, "born-on-produce");
    assert_eq!(reports.len(), 1, "{reports:?}");
    let (partition, offset) = reports[0].unwrap();
    assert!((0..3).contains(&partition), "{partition}");
    assert_eq!(offset, 0);
    // It exists, with default_partitions partitions; asked without creating anything.
    assert_eq!(
        metadata(&address, 4, &one("born-on-produce"), false),
        vec![("born-on-produce".to_string(), 0, 3)]
    );
    let ends: Vec<(i16, i64, i64)> = (0..3)
        .map(|index| {
            let mut answers = list_offsets_of(&address, "born-on-produce", index);
            answers.remove(0)
        })
        .collect();
    let stored: i64 = ends.iter().map(|(_, end, _)| end).sum();
    assert_eq!(
        stored, 1,
        "the one message, on the partition reported: {ends:?}"
    );
    assert_eq!(ends[partition as usize], (0, 1, -1));

    // A Kafka Produce naming a topic nobody asked Metadata for creates it too.
    let request = produce_request("born-on-raw-produce", b"value");
    match call(&address, ApiKey::Produce, 3, RequestKind::Produce(request)) {
        ResponseKind::Produce(response) => {
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!((partition.error_code, partition.base_offset), (0, 0));
        }
        other => panic!("Produce answered {other:?}"),
    }
    assert_eq!(
        metadata(&address, 12, &one("born-on-raw-produce"), false),
        vec![("born-on-raw-produce".to_string(), 0, 3)]
    );
}

/// Latest offset of one partition (`list_offsets` names partition 0 only).
fn list_offsets_of(address: &str, name: &'static str, index: i32) -> Vec<(i16, i64, i64)> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic(name))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(index)
                        .with_timestamp(-1),
                ]),
        ]);
    match call(
        address,
        ApiKey::ListOffsets,
        8,
        RequestKind::ListOffsets(request),
    ) {
        ResponseKind::ListOffsets(response) => response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.error_code, p.offset, p.timestamp))
            .collect(),
        other => panic!("ListOffsets answered {other:?}"),
    }
}

#[test]
fn with_auto_creation_off_a_new_topic_stays_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker_with(dir.path(), |config| config.auto_create_topics = false);
    let reports = produce_with_librdkafka(&address, "never-made");
    assert_eq!(
        reports,
        vec![Err(Some(RDKafkaErrorCode::UnknownTopicOrPartition))]
    );
    let request = produce_request("never-made", b"value");
    match call(&address, ApiKey::Produce, 3, RequestKind::Produce(request)) {
        ResponseKind::Produce(response) => {
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!(
                (partition.error_code, partition.base_offset),
                (UNKNOWN_TOPIC_OR_PARTITION, -1)
            );
        }
        other => panic!("Produce answered {other:?}"),
    }
    // Metadata v1 (which always allows creation) and v12 allowing it: the broker says no.
    for version in [1, 12] {
        assert_eq!(
            metadata(&address, version, &one("never-made"), true),
            vec![("never-made".to_string(), UNKNOWN_TOPIC_OR_PARTITION, 0)]
        );
    }
}

#[test]
fn metadata_creates_only_when_allowed_valid_and_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker_with(dir.path(), |config| {
        config.default_partitions = 2;
        config.topics_max = 40;
    });
    // allow_auto_topic_creation=false (v4+): nothing is created, however often asked.
    for version in [4, 9, 12] {
        assert_eq!(
            metadata(&address, version, &one("not-yet"), false),
            vec![("not-yet".to_string(), UNKNOWN_TOPIC_OR_PARTITION, 0)],
            "v{version}"
        );
    }
    // Allowed: created, then described at once; an invalid name never is.
    let asked = vec![
        "now-yes".to_string(),
        "bad/name".to_string(),
        "now-yes".to_string(),
    ];
    assert_eq!(
        metadata(&address, 4, &asked, true),
        vec![
            ("now-yes".to_string(), 0, 2),
            ("bad/name".to_string(), INVALID_TOPIC_EXCEPTION, 0),
        ]
    );
    assert_eq!(
        metadata(&address, 4, &one("bad/name"), false),
        vec![("bad/name".to_string(), INVALID_TOPIC_EXCEPTION, 0)]
    );
    // CreateTopics with -1 partitions means the broker's default (KIP-464).
    create_topic(&address, "by-default", -1);
    assert_eq!(
        metadata(&address, 4, &one("by-default"), false),
        vec![("by-default".to_string(), 0, 2)]
    );
    // 100,000 unknown names in one request: each answered once, 32 created, the others told
    // to retry; the next request creates up to topics_max (40 topics); past it
    // the names stay unknown.
    let many: Vec<String> = (0..100_000).map(|n| format!("t{n}")).collect();
    let first = metadata(&address, 12, &many, true);
    assert_eq!(first.len(), 100_000);
    let created = |answers: &[(String, i16, usize)]| {
        answers
            .iter()
            .filter(|(_, code, parts)| (*code, *parts) == (0, 2))
            .count()
    };
    assert_eq!(created(&first), 32);
    assert!(
        first[32..]
            .iter()
            .all(|(_, code, _)| *code == LEADER_NOT_AVAILABLE)
    );
    let second = metadata(&address, 12, &many, true);
    assert_eq!(
        created(&second),
        38,
        "now-yes, by-default, 32 and 6 more make 40"
    );
    let made: Vec<(String, i16, usize)> = (0..38).map(|n| (format!("t{n}"), 0, 2)).collect();
    assert_eq!(second[..38], made[..]);
    assert_eq!(first[..32], made[..32]);
    assert!(
        second[38..]
            .iter()
            .all(|(_, code, _)| *code == UNKNOWN_TOPIC_OR_PARTITION),
        "past topics_max a name stays unknown"
    );
    let all = MetadataRequest::default().with_topics(None);
    match call(&address, ApiKey::Metadata, 1, RequestKind::Metadata(all)) {
        ResponseKind::Metadata(response) => assert_eq!(response.topics.len(), 40),
        other => panic!("Metadata answered {other:?}"),
    }
    // An empty list means every topic in v0 (which has no null list), and none from v1 on.
    assert_eq!(metadata(&address, 0, &[], true).len(), 40, "v0: all");
    assert_eq!(metadata(&address, 1, &[], true).len(), 0, "v1: none");
    assert_serving(&address);
}

#[test]
fn connections_auto_creating_one_topic_at_once_all_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker_with(dir.path(), |config| config.default_partitions = 4);
    // Sixteen connections (spread over both shards) ask for the same new topic at once.
    let start = std::sync::Arc::new(std::sync::Barrier::new(16));
    let askers: Vec<_> = (0..16)
        .map(|_| {
            let (address, start) = (address.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                metadata(&address, 9, &one("contended"), true)
            })
        })
        .collect();
    for asker in askers {
        assert_eq!(asker.join().unwrap(), vec![("contended".to_string(), 0, 4)]);
    }
    let all = MetadataRequest::default().with_topics(None);
    match call(&address, ApiKey::Metadata, 1, RequestKind::Metadata(all)) {
        ResponseKind::Metadata(response) => assert_eq!(response.topics.len(), 1),
        other => panic!("Metadata answered {other:?}"),
    }
}
