//! Kafka's DeleteGroups and OffsetDelete over TCP, byte for byte: what is deleted is gone after
//! a restart, what a group still consumes is refused with Kafka's own codes, and repeated or
//! unknown names get their answers without harming anything else.

mod common;

use common::kafka_wire::*;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::*;
use ringmq::runtime;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_GROUP_ID: i16 = 24;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

/// Commits `offsets` of topic `name` for `group_name` with no member (as tools do).
fn commit(address: &str, group_name: &'static str, name: &'static str, offsets: &[(i32, i64)]) {
    let partitions = offsets
        .iter()
        .map(|(index, offset)| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(*index)
                .with_committed_offset(*offset)
        })
        .collect();
    let request = OffsetCommitRequest::default()
        .with_group_id(group(group_name))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic(name))
                .with_partitions(partitions),
        ]);
    match call(
        address,
        ApiKey::OffsetCommit,
        2,
        RequestKind::OffsetCommit(request),
    ) {
        ResponseKind::OffsetCommit(response) => {
            for partition in &response.topics[0].partitions {
                assert_eq!(partition.error_code, NONE, "{response:?}");
            }
        }
        other => panic!("OffsetCommit answered {other:?}"),
    }
}

/// (partition, committed offset) of every committed partition of `group_name`.
fn committed(address: &str, group_name: &'static str) -> Vec<(String, i32, i64)> {
    let request = OffsetFetchRequest::default()
        .with_group_id(group(group_name))
        .with_topics(None);
    match call(
        address,
        ApiKey::OffsetFetch,
        1,
        RequestKind::OffsetFetch(request),
    ) {
        ResponseKind::OffsetFetch(response) => response
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.committed_offset))
            })
            .collect(),
        other => panic!("OffsetFetch answered {other:?}"),
    }
}

/// (top-level code, [(partition, code)]) of an OffsetDelete of `indexes` of topic `name`.
fn delete_offsets(
    address: &str,
    group_name: &'static str,
    name: &'static str,
    indexes: &[i32],
) -> (i16, Vec<(i32, i16)>) {
    let partitions = indexes
        .iter()
        .map(|index| OffsetDeleteRequestPartition::default().with_partition_index(*index))
        .collect();
    let request = OffsetDeleteRequest::default()
        .with_group_id(group(group_name))
        .with_topics(vec![
            OffsetDeleteRequestTopic::default()
                .with_name(topic(name))
                .with_partitions(partitions),
        ]);
    match call(
        address,
        ApiKey::OffsetDelete,
        0,
        RequestKind::OffsetDelete(request),
    ) {
        ResponseKind::OffsetDelete(response) => {
            let partitions = response
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(|p| (p.partition_index, p.error_code))
                })
                .collect();
            (response.error_code, partitions)
        }
        other => panic!("OffsetDelete answered {other:?}"),
    }
}

/// Each named group's code, in the answer's order.
fn delete_groups(address: &str, names: &[&'static str]) -> Vec<(String, i16)> {
    let request =
        DeleteGroupsRequest::default().with_groups_names(names.iter().map(|n| group(n)).collect());
    match call(
        address,
        ApiKey::DeleteGroups,
        2,
        RequestKind::DeleteGroups(request),
    ) {
        ResponseKind::DeleteGroups(response) => response
            .results
            .iter()
            .map(|r| (r.group_id.0.to_string(), r.error_code))
            .collect(),
        other => panic!("DeleteGroups answered {other:?}"),
    }
}

#[test]
fn offset_delete_removes_only_the_named_partitions_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, address) = kafka_broker(dir.path());
    create_topic(&address, "orders", 3);
    commit(&address, "audit", "orders", &[(0, 10), (1, 11), (2, 12)]);
    let (code, partitions) = delete_offsets(&address, "audit", "orders", &[0, 2, -1]);
    assert_eq!(code, NONE);
    assert_eq!(
        partitions,
        [(0, NONE), (2, NONE), (-1, UNKNOWN_TOPIC_OR_PARTITION)]
    );
    assert_eq!(
        committed(&address, "audit"),
        [("orders".to_string(), 1, 11)]
    );

    broker.restart();
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    assert_eq!(
        committed(&address, "audit"),
        [("orders".to_string(), 1, 11)],
        "the deletion is durable"
    );
    let (code, _) = delete_offsets(&address, "nobody", "orders", &[0]);
    assert_eq!(code, GROUP_ID_NOT_FOUND);
    let (code, _) = delete_offsets(&address, "bad name", "orders", &[0]);
    assert_eq!(code, INVALID_GROUP_ID);
}

#[test]
fn delete_groups_answers_each_name_once_and_deletes_the_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "orders", 1);
    commit(&address, "old", "orders", &[(0, 5)]);
    commit(&address, "kept", "orders", &[(0, 6)]);
    let results = delete_groups(&address, &["old", "old", "missing", "old"]);
    assert_eq!(
        results,
        [
            ("old".to_string(), NONE),
            ("missing".to_string(), GROUP_ID_NOT_FOUND)
        ]
    );
    assert!(committed(&address, "old").is_empty());
    assert_eq!(committed(&address, "kept"), [("orders".to_string(), 0, 6)]);
}

#[test]
fn a_group_with_a_live_member_keeps_its_offsets_and_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "orders", 2);
    // A member of ringmq's own protocol, subscribed to "orders": the broker knows its topics.
    commit(&address, "live", "orders", &[(0, 3)]);
    commit(&address, "live", "other", &[(0, 4)]);
    let native = _broker.address();
    runtime::block_on(async {
        let client = ringmq::client::Client::connect(&native).await.unwrap();
        client
            .join_group("live", "", &["orders".into()], 30_000, "range")
            .await
            .unwrap();
        let (code, partitions) = delete_offsets(&address, "live", "orders", &[0]);
        assert_eq!(
            (code, partitions),
            (NONE, vec![(0, GROUP_SUBSCRIBED_TO_TOPIC)])
        );
        let (code, partitions) = delete_offsets(&address, "live", "other", &[0]);
        assert_eq!((code, partitions), (NONE, vec![(0, NONE)]));
        assert_eq!(
            delete_groups(&address, &["live"]),
            [("live".to_string(), NON_EMPTY_GROUP)]
        );
        assert_eq!(committed(&address, "live"), [("orders".to_string(), 0, 3)]);
    });
}
