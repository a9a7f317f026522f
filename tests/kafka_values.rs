//! Kafka requests that decode but carry hostile values: negative partition indexes and offsets,
//! invalid acks, names and partitions repeated until the frame is full. Each gets Kafka's own
//! error code or a bounded answer, and harms nothing else.

mod common;

use common::kafka_wire::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const INVALID_REQUIRED_ACKS: i16 = 21;

fn produce(address: &str, request: ProduceRequest) -> (i16, i64) {
    match call(address, ApiKey::Produce, 3, RequestKind::Produce(request)) {
        ResponseKind::Produce(response) => {
            let partition = &response.responses[0].partition_responses[0];
            (partition.error_code, partition.base_offset)
        }
        other => panic!("Produce answered {other:?}"),
    }
}

fn fetch(address: &str, request: FetchRequest) -> FetchResponse {
    match call(address, ApiKey::Fetch, 4, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(response) => response,
        other => panic!("Fetch answered {other:?}"),
    }
}

/// (error code, high watermark) of partition `index` of topic `name`.
fn partition_state(address: &str, name: &'static str, index: i32) -> (i16, i64) {
    let mut request = fetch_request(name);
    request.topics[0].partitions[0].partition = index;
    let response = fetch(address, request);
    let partition = &response.responses[0].partitions[0];
    (partition.error_code, partition.high_watermark)
}

#[test]
fn produce_to_a_negative_partition_is_unknown_topic_or_partition_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "negative", 2);
    let mut request = produce_request("negative", b"nowhere");
    request.topic_data[0].partition_data[0].index = -1;
    assert_eq!(produce(&address, request), (UNKNOWN_TOPIC_OR_PARTITION, -1));
    // The native protocol's "choose by key" must not have put it anywhere.
    assert_eq!(partition_state(&address, "negative", 0), (0, 0));
    assert_eq!(partition_state(&address, "negative", 1), (0, 0));
}

#[test]
fn produce_with_acks_2_is_invalid_required_acks_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "acks", 1);
    let request = produce_request("acks", b"value").with_acks(2);
    assert_eq!(produce(&address, request), (INVALID_REQUIRED_ACKS, -1));
    assert_eq!(partition_state(&address, "acks", 0), (0, 0));
    let request = produce_request("acks", b"value").with_acks(-1);
    assert_eq!(produce(&address, request), (0, 0));
}

#[test]
fn fetch_of_a_negative_partition_or_offset_gets_kafkas_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "fetched", 1);
    assert_eq!(produce(&address, produce_request("fetched", b"v")), (0, 0));
    assert_eq!(
        partition_state(&address, "fetched", -1),
        (UNKNOWN_TOPIC_OR_PARTITION, -1)
    );
    let mut request = fetch_request("fetched");
    request.topics[0].partitions[0].fetch_offset = -1;
    let response = fetch(&address, request);
    let partition = &response.responses[0].partitions[0];
    assert_eq!(partition.error_code, OFFSET_OUT_OF_RANGE);
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
}

#[test]
fn list_offsets_of_a_negative_partition_is_unknown_topic_or_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "listed", 1);
    let partitions = [-1, 0].map(|index| {
        ListOffsetsPartition::default()
            .with_partition_index(index)
            .with_timestamp(-1)
    });
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(topic("listed"))
                .with_partitions(partitions.to_vec()),
        ]);
    match call(
        &address,
        ApiKey::ListOffsets,
        1,
        RequestKind::ListOffsets(request),
    ) {
        ResponseKind::ListOffsets(response) => {
            let codes: Vec<(i32, i16)> = response.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            assert_eq!(codes, vec![(-1, UNKNOWN_TOPIC_OR_PARTITION), (0, 0)]);
        }
        other => panic!("ListOffsets answered {other:?}"),
    }
}

fn commit(address: &str, partition: i32, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(group("committer"))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic("committed"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ]);
    match call(
        address,
        ApiKey::OffsetCommit,
        2,
        RequestKind::OffsetCommit(request),
    ) {
        ResponseKind::OffsetCommit(response) => response.topics[0].partitions[0].error_code,
        other => panic!("OffsetCommit answered {other:?}"),
    }
}

#[test]
fn offset_commit_to_a_negative_partition_is_refused_and_leaves_partition_0_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "committed", 1);
    assert_eq!(commit(&address, 0, 5), 0);
    assert_eq!(commit(&address, -1, 9), UNKNOWN_TOPIC_OR_PARTITION);
    let request = OffsetFetchRequest::default()
        .with_group_id(group("committer"))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic("committed"))
                .with_partition_indexes(vec![0, -1]),
        ]));
    match call(
        &address,
        ApiKey::OffsetFetch,
        1,
        RequestKind::OffsetFetch(request),
    ) {
        ResponseKind::OffsetFetch(response) => {
            let offsets: Vec<(i32, i64)> = response.topics[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.committed_offset))
                .collect();
            assert_eq!(offsets, vec![(0, 5), (-1, -1)]);
        }
        other => panic!("OffsetFetch answered {other:?}"),
    }
}

#[test]
fn a_fetch_repeating_one_partition_is_bounded_by_its_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "repeated", 1);
    let value = vec![b'x'; 1000];
    for n in 0..20 {
        assert_eq!(
            produce(&address, produce_request("repeated", &value)),
            (0, n)
        );
    }
    let one_batch = batch(&value).len();
    let entry = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(0)
        .with_partition_max_bytes(1 << 20);
    let max_bytes = 4 * one_batch as i32;
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic("repeated"))
                .with_partitions(vec![entry; 10_000]),
        ]);
    let response = fetch(&address, request);
    let partitions = &response.responses[0].partitions;
    assert_eq!(partitions.len(), 10_000, "every entry is answered");
    assert!(
        partitions
            .iter()
            .all(|p| p.error_code == 0 && p.high_watermark == 20)
    );
    let sizes: Vec<usize> = partitions
        .iter()
        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
        .collect();
    let total: usize = sizes.iter().sum();
    // Without the budget this was 10,000 copies of the partition's 20 batches (~210 MB).
    assert!(sizes[0] >= one_batch, "the first entry gets data");
    assert!(
        total <= max_bytes as usize,
        "{total} bytes within max_bytes"
    );
}

#[test]
fn metadata_and_describe_groups_repeating_a_name_answer_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "named", 3);
    let topics = vec![MetadataRequestTopic::default().with_name(Some(topic("named"))); 50_000];
    let request = MetadataRequest::default().with_topics(Some(topics));
    match call(
        &address,
        ApiKey::Metadata,
        1,
        RequestKind::Metadata(request),
    ) {
        ResponseKind::Metadata(response) => {
            assert_eq!(response.topics.len(), 1);
            assert_eq!(response.topics[0].partitions.len(), 3);
        }
        other => panic!("Metadata answered {other:?}"),
    }
    let request = DescribeGroupsRequest::default().with_groups(vec![group("described"); 50_000]);
    match call(
        &address,
        ApiKey::DescribeGroups,
        0,
        RequestKind::DescribeGroups(request),
    ) {
        ResponseKind::DescribeGroups(response) => assert_eq!(response.groups.len(), 1),
        other => panic!("DescribeGroups answered {other:?}"),
    }
}

#[test]
fn a_long_poll_over_many_partition_entries_returns_when_any_one_gets_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "polled", 2);
    // Partition 1 named 1,000 times (one wait for it, not a thousand), and partition 0 once:
    // the record produced to partition 0 answers the fetch long before its 20 s wait.
    let entry = |partition: i32| {
        FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(0)
            .with_partition_max_bytes(1 << 16)
    };
    let mut partitions: Vec<FetchPartition> = (0..1000).map(|_| entry(1)).collect();
    partitions.push(entry(0));
    let fetch = fetch_request("polled")
        .with_max_wait_ms(20_000)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic("polled"))
                .with_partitions(partitions),
        ]);
    let started = std::time::Instant::now();
    let waiting = std::thread::spawn({
        let address = address.clone();
        move || call(&address, ApiKey::Fetch, 4, RequestKind::Fetch(fetch))
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let produce = RequestKind::Produce(produce_request("polled", b"wake up"));
    let ResponseKind::Produce(produced) = call(&address, ApiKey::Produce, 3, produce) else {
        panic!("not a produce response");
    };
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
    let ResponseKind::Fetch(response) = waiting.join().unwrap() else {
        panic!("not a fetch response");
    };
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "woke on the data, not at the 20 s deadline: {:?}",
        started.elapsed()
    );
    let with_data: Vec<i32> = response.responses[0]
        .partitions
        .iter()
        .filter(|partition| partition.records.as_ref().is_some_and(|r| !r.is_empty()))
        .map(|partition| partition.partition_index)
        .collect();
    assert_eq!(with_data, vec![0], "partition 0's record, once");
}
