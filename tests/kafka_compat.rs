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
use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};

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

#[allow(dead_code)]
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
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    (broker, address)
}
