//! Kafka's DeleteRecords as Kafka tools call it: librdkafka's admin client (a client we did not
//! write) deletes records, and hand-encoded requests check every answer's codes and offsets,
//! across a restart.

mod common;

use std::time::Duration;

use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

fn kafka_address(broker: &TestBroker) -> String {
    broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string()
}

/// Produces `counts[p]` records to each partition `p` of `name` with an idempotent librdkafka
/// producer.
fn produce_idempotently(address: &str, name: &str, counts: &[u64]) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (partition, count) in counts.iter().enumerate() {
        for n in 0..*count {
            let value = format!("record-{n}");
            let record = BaseRecord::<(), _>::to(name)
                .partition(partition as i32)
                .payload(&value);
            producer.send(record).map_err(|(error, _)| error).unwrap();
            // One batch per record, so the sequence numbers are checked one by one.
            producer
                .flush(Timeout::After(Duration::from_secs(30)))
                .unwrap();
        }
    }
}

fn delete_records(
    address: &str,
    version: i16,
    name: &'static str,
    offsets: &[(i32, i64)],
) -> Vec<(i32, i64, i16)> {
    let partitions = offsets
        .iter()
        .map(|(index, offset)| {
            DeleteRecordsPartition::default()
                .with_partition_index(*index)
                .with_offset(*offset)
        })
        .collect();
    let request = DeleteRecordsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            DeleteRecordsTopic::default()
                .with_name(topic(name))
                .with_partitions(partitions),
        ]);
    match call(
        address,
        ApiKey::DeleteRecords,
        version,
        RequestKind::DeleteRecords(request),
    ) {
        ResponseKind::DeleteRecords(response) => response.topics[0]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.low_watermark, p.error_code))
            .collect(),
        other => panic!("DeleteRecords answered {other:?}"),
    }
}

fn earliest(address: &str, name: &'static str) -> i64 {
    let request = ListOffsetsRequest::default().with_topics(vec![
        ListOffsetsTopic::default()
            .with_name(topic(name))
            .with_partitions(vec![
                ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2),
            ]),
    ]);
    match call(
        address,
        ApiKey::ListOffsets,
        1,
        RequestKind::ListOffsets(request),
    ) {
        ResponseKind::ListOffsets(response) => {
            let partition = &response.topics[0].partitions[0];
            assert_eq!(partition.error_code, 0);
            partition.offset
        }
        other => panic!("ListOffsets answered {other:?}"),
    }
}

/// A fetch of partition 0 at `offset`: its error code, log start and the first offset read.
fn fetch_at(address: &str, name: &'static str, offset: i64) -> (i16, i64, Option<i64>) {
    let mut request = fetch_request(name);
    request.topics[0].partitions[0].fetch_offset = offset;
    match call(address, ApiKey::Fetch, 5, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(response) => {
            let partition = &response.responses[0].partitions[0];
            let first = partition
                .records
                .as_ref()
                .filter(|r| !r.is_empty())
                .map(|records| {
                    let decoded = ringmq::batch::records::decode(records).unwrap();
                    decoded
                        .iter()
                        .map(|r| r.offset)
                        .find(|o| *o >= offset)
                        .unwrap()
                });
            (partition.error_code, partition.log_start_offset, first)
        }
        other => panic!("Fetch answered {other:?}"),
    }
}

#[test]
fn librdkafka_deletes_records_and_the_new_start_holds_for_reads_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let address = kafka_address(&broker);
    create_topic(&address, "trimmed", 2);
    produce_idempotently(&address, "trimmed", &[10, 3]);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("trimmed", 0, Offset::Offset(4))
        .unwrap();
    offsets
        .add_partition_offset("trimmed", 1, Offset::End)
        .unwrap();
    let deleted =
        ringmq::runtime::block_on(admin.delete_records(&offsets, &AdminOptions::new())).unwrap();
    let low = |partition| {
        let entry = deleted.find_partition("trimmed", partition).unwrap();
        entry.error().unwrap();
        entry.offset()
    };
    assert_eq!(low(0), Offset::Offset(4));
    assert_eq!(
        low(1),
        Offset::Offset(3),
        "Offset::End (-1): the high watermark"
    );

    assert_eq!(
        delete_records(&address, 0, "trimmed", &[(0, 6)]),
        [(0, 6, 0)]
    );
    assert_eq!(
        delete_records(
            &address,
            2,
            "trimmed",
            &[(0, 2), (0, 11), (0, -2), (0, 10), (1, -1), (2, 0), (-1, 0)]
        ),
        [
            (0, 6, 0),
            (0, -1, OFFSET_OUT_OF_RANGE),
            (0, -1, OFFSET_OUT_OF_RANGE),
            (0, 10, 0),
            (1, 3, 0),
            (2, -1, UNKNOWN_TOPIC_OR_PARTITION),
            (-1, -1, UNKNOWN_TOPIC_OR_PARTITION),
        ],
        "below the start: no change; past the end and below -1: out of range; unknown partitions"
    );
    assert_eq!(
        delete_records(&address, 1, "nope", &[(0, 0)]),
        [(0, -1, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    // The answer for (0, 10) moved the start to the end; take the start back to a middle point
    // on a fresh topic to check reads below it.
    create_topic(&address, "middle", 1);
    produce_idempotently(&address, "middle", &[8]);
    assert_eq!(
        delete_records(&address, 2, "middle", &[(0, 5)]),
        [(0, 5, 0)]
    );
    let check = |address: &str| {
        assert_eq!(
            earliest(address, "middle"),
            5,
            "ListOffsets earliest is the new start"
        );
        assert_eq!(
            fetch_at(address, "middle", 4).0,
            OFFSET_OUT_OF_RANGE,
            "below the start"
        );
        assert_eq!(fetch_at(address, "middle", 5), (0, 5, Some(5)));
        assert_eq!(earliest(address, "trimmed"), 10);
        assert_eq!(fetch_at(address, "trimmed", 9).0, OFFSET_OUT_OF_RANGE);
    };
    check(&address);
    broker.restart();
    let address = kafka_address(&broker);
    check(&address);
}
