//! Share groups (KIP-932) byte for byte: ShareGroupHeartbeat, ShareFetch and ShareAcknowledge
//! answer Kafka's exact error codes for an unknown member, a fenced epoch, a share session
//! epoch out of step, acknowledgements of records the member does not hold, and hostile
//! ranges and sizes; what a member acquires and acknowledges is what the next fetch shows.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use uuid::Uuid;

const NONE: i16 = 0;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const UNKNOWN_TOPIC_ID: i16 = 100;
const FENCED_MEMBER_EPOCH: i16 = 110;
const INVALID_RECORD_STATE: i16 = 121;
const SHARE_SESSION_NOT_FOUND: i16 = 122;
const INVALID_SHARE_SESSION_EPOCH: i16 = 123;

const TOPIC: &str = "wired";

fn broker(dir: &std::path::Path) -> (TestBroker, String) {
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        share_groups: ringmq::config::ShareGroupConfig {
            auto_offset_reset: "earliest".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// One request on `stream` (a share session lives on the connection's shard).
fn call_on(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    request: RequestKind,
) -> ResponseKind {
    stream
        .write_all(&framed(&encode(api, version, 9, &request)))
        .unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 9);
    ResponseKind::decode(api, &mut body, version).unwrap()
}

fn topic_id(address: &str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(TOPIC))),
    ]));
    match call(
        address,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(request),
    ) {
        ResponseKind::Metadata(response) => response.topics[0].topic_id,
        other => panic!("Metadata answered {other:?}"),
    }
}

fn heartbeat(address: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(group("wire-group"))
        .with_member_id(text(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names((epoch == 0).then(|| vec![topic(TOPIC)]));
    match call(
        address,
        ApiKey::ShareGroupHeartbeat,
        1,
        RequestKind::ShareGroupHeartbeat(request),
    ) {
        ResponseKind::ShareGroupHeartbeat(response) => response,
        other => panic!("ShareGroupHeartbeat answered {other:?}"),
    }
}

fn share_fetch(
    stream: &mut TcpStream,
    id: Uuid,
    epoch: i32,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    share_fetch_as(stream, "member-a", id, epoch, acks)
}

fn share_fetch_as(
    stream: &mut TcpStream,
    member: &str,
    id: Uuid,
    epoch: i32,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    let partition = FetchPartition::default()
        .with_partition_index(0)
        .with_acknowledgement_batches(acks);
    let request = ShareFetchRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(3)
        .with_batch_size(3)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![partition]),
        ]);
    match call_on(
        stream,
        ApiKey::ShareFetch,
        1,
        RequestKind::ShareFetch(request),
    ) {
        ResponseKind::ShareFetch(response) => response,
        other => panic!("ShareFetch answered {other:?}"),
    }
}

fn acknowledge(
    stream: &mut TcpStream,
    id: Uuid,
    epoch: i32,
    batches: Vec<AckBatch>,
) -> ShareAcknowledgeResponse {
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text("member-a")))
        .with_share_session_epoch(epoch)
        .with_topics(vec![
            AcknowledgeTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![
                    AcknowledgePartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(batches),
                ]),
        ]);
    match call_on(
        stream,
        ApiKey::ShareAcknowledge,
        1,
        RequestKind::ShareAcknowledge(request),
    ) {
        ResponseKind::ShareAcknowledge(response) => response,
        other => panic!("ShareAcknowledge answered {other:?}"),
    }
}

fn ack(first: i64, last: i64, types: Vec<i8>) -> AckBatch {
    AckBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(types)
}

fn fetch_ack(first: i64, last: i64, types: Vec<i8>) -> AcknowledgementBatch {
    AcknowledgementBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(types)
}

/// (first, last, delivery count) of each acquired range in a fetch's only partition.
fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    assert_eq!(response.error_code, NONE, "{response:?}");
    response.responses[0].partitions[0]
        .acquired_records
        .iter()
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

fn ack_code(response: &ShareAcknowledgeResponse) -> i16 {
    assert_eq!(response.error_code, NONE, "{response:?}");
    response.responses[0].partitions[0].error_code
}

#[test]
fn heartbeats_join_fence_and_refuse_unknown_members() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, TOPIC, 2);
    let id = topic_id(&address);
    let joined = heartbeat(&address, "member-a", 0);
    assert_eq!(joined.error_code, NONE, "{joined:?}");
    assert!(joined.member_epoch > 0);
    let assignment = joined.assignment.expect("an assignment");
    assert_eq!(assignment.topic_partitions[0].topic_id, id);
    assert_eq!(assignment.topic_partitions[0].partitions, vec![0, 1]);
    // A second member shares both partitions.
    let other = heartbeat(&address, "member-b", 0);
    assert_eq!(
        other.assignment.unwrap().topic_partitions[0].partitions,
        vec![0, 1]
    );
    let same = heartbeat(&address, "member-a", joined.member_epoch);
    assert_eq!(
        (same.error_code, same.member_epoch),
        (NONE, joined.member_epoch)
    );
    let fenced = heartbeat(&address, "member-a", joined.member_epoch + 10);
    assert_eq!(fenced.error_code, FENCED_MEMBER_EPOCH);
    let unknown = heartbeat(&address, "nobody", 3);
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);
    let too_long = heartbeat(&address, &"m".repeat(300), 0);
    assert_eq!(too_long.error_code, INVALID_REQUEST);
    let left = heartbeat(&address, "member-b", -1);
    assert_eq!((left.error_code, left.member_epoch), (NONE, -1));
    let request = ShareGroupDescribeRequest::default().with_group_ids(vec![group("wire-group")]);
    match call(
        &address,
        ApiKey::ShareGroupDescribe,
        1,
        RequestKind::ShareGroupDescribe(request),
    ) {
        ResponseKind::ShareGroupDescribe(response) => {
            let described = &response.groups[0];
            assert_eq!(described.error_code, NONE);
            assert_eq!(described.group_state.as_str(), "Stable");
            let ids: Vec<&str> = described
                .members
                .iter()
                .map(|m| m.member_id.as_str())
                .collect();
            assert_eq!(ids, vec!["member-a"]);
        }
        other => panic!("ShareGroupDescribe answered {other:?}"),
    }
}

#[test]
fn fetch_and_acknowledge_follow_session_epochs_and_locks() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, TOPIC, 1);
    for value in [b"a", b"b", b"c", b"d", b"e"] {
        match call(
            &address,
            ApiKey::Produce,
            7,
            RequestKind::Produce(produce_request(TOPIC, value)),
        ) {
            ResponseKind::Produce(response) => {
                assert_eq!(
                    response.responses[0].partition_responses[0].error_code,
                    NONE
                )
            }
            other => panic!("Produce answered {other:?}"),
        }
    }
    let id = topic_id(&address);
    let mut stream = connect(&address);
    // No session yet: a positive epoch is not found, and acknowledging cannot open one.
    let missing = share_fetch(&mut stream, id, 3, vec![]);
    assert_eq!(missing.error_code, SHARE_SESSION_NOT_FOUND);
    assert_eq!(
        acknowledge(&mut stream, id, 0, vec![]).error_code,
        INVALID_SHARE_SESSION_EPOCH
    );
    // Opening with acknowledgements is refused.
    let opening = share_fetch(&mut stream, id, 0, vec![fetch_ack(0, 0, vec![1])]);
    assert_eq!(opening.error_code, INVALID_REQUEST);
    let first = share_fetch(&mut stream, id, 0, vec![]);
    assert_eq!(acquired(&first), vec![(0, 2, 1)]);
    let records = first.responses[0].partitions[0].records.clone().unwrap();
    let offsets: Vec<i64> = ringmq::batch::iter_framed(&records)
        .flat_map(|(_, batch)| ringmq::batch::records::decode(batch).unwrap())
        .map(|record| record.offset)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2]);
    // Acks of records not acquired, a per-offset type list of the wrong length, and hostile
    // ranges each fail their partition and change nothing.
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 1, vec![ack(3, 4, vec![1])])),
        INVALID_RECORD_STATE
    );
    assert_eq!(
        ack_code(&acknowledge(
            &mut stream,
            id,
            2,
            vec![ack(0, 2, vec![1, 1])]
        )),
        INVALID_REQUEST
    );
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 3, vec![ack(2, 0, vec![1])])),
        INVALID_REQUEST
    );
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 4, vec![ack(-5, 0, vec![1])])),
        INVALID_REQUEST
    );
    assert_eq!(
        ack_code(&acknowledge(
            &mut stream,
            id,
            5,
            vec![ack(0, i64::MAX, vec![1])]
        )),
        INVALID_REQUEST
    );
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 6, vec![ack(0, 0, vec![9])])),
        INVALID_REQUEST
    );
    assert_eq!(
        ack_code(&acknowledge(
            &mut stream,
            id,
            7,
            vec![ack(0, 0, vec![1]), ack(0, 1, vec![1])]
        )),
        INVALID_REQUEST,
        "overlapping ranges"
    );
    // ACCEPT 0, a gap at 1, RELEASE 2: 2 comes back with its count up, 1 stays locked.
    assert_eq!(
        ack_code(&acknowledge(
            &mut stream,
            id,
            8,
            vec![ack(0, 2, vec![1, 0, 2])]
        )),
        NONE
    );
    let next = share_fetch(&mut stream, id, 9, vec![fetch_ack(1, 1, vec![1])]);
    assert_eq!(next.responses[0].partitions[0].acknowledge_error_code, NONE);
    assert_eq!(acquired(&next), vec![(2, 2, 2), (3, 4, 1)]);
    // Accepting 0 again: it is no longer held.
    let again = share_fetch(&mut stream, id, 10, vec![fetch_ack(0, 0, vec![1])]);
    assert_eq!(
        again.responses[0].partitions[0].acknowledge_error_code,
        INVALID_RECORD_STATE
    );
    // MaxRecords 0 (librdkafka's acknowledgement-only fetch) acquires nothing.
    let mut quiet = ShareFetchRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text("member-a")))
        .with_share_session_epoch(11)
        .with_max_records(0)
        .with_topics(vec![]);
    quiet.max_bytes = 1 << 20;
    match call_on(
        &mut stream,
        ApiKey::ShareFetch,
        1,
        RequestKind::ShareFetch(quiet),
    ) {
        ResponseKind::ShareFetch(response) => {
            assert_eq!(response.error_code, NONE);
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, NONE);
            assert!(partition.acquired_records.is_empty(), "{partition:?}");
        }
        other => panic!("ShareFetch answered {other:?}"),
    }
    // An epoch out of step ends the session.
    assert_eq!(
        share_fetch(&mut stream, id, 42, vec![]).error_code,
        INVALID_SHARE_SESSION_EPOCH
    );
    assert_eq!(
        share_fetch(&mut stream, id, 12, vec![]).error_code,
        SHARE_SESSION_NOT_FOUND
    );
    // A topic id the broker does not know fails its partition alone.
    let unknown = share_fetch(&mut stream, Uuid::from_u128(7), 0, vec![]);
    assert_eq!(unknown.error_code, NONE);
    assert_eq!(
        unknown.responses[0].partitions[0].error_code,
        UNKNOWN_TOPIC_ID
    );
    // Closing with epoch -1 settles the final acks; the session is gone after.
    let close = acknowledge(&mut stream, id, -1, vec![]);
    assert_eq!(close.error_code, NONE);
    assert_eq!(
        acknowledge(&mut stream, id, 1, vec![]).error_code,
        SHARE_SESSION_NOT_FOUND
    );
    assert_serving(&address);
}

fn alter_group_config(address: &str, group_name: &str, key: &str, value: Option<&str>) -> i16 {
    use incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
    let config = AlterableConfig::default()
        .with_name(text(key))
        .with_config_operation(if value.is_some() { 0 } else { 1 })
        .with_value(value.map(text));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(text(group_name))
            .with_configs(vec![config]),
    ]);
    match call(
        address,
        ApiKey::IncrementalAlterConfigs,
        1,
        RequestKind::IncrementalAlterConfigs(request),
    ) {
        ResponseKind::IncrementalAlterConfigs(response) => response.responses[0].error_code,
        other => panic!("IncrementalAlterConfigs answered {other:?}"),
    }
}

#[test]
fn share_group_admin_configs_listing_offsets_and_deletion() {
    let dir = tempfile::tempdir().unwrap();
    // The broker's default start is Kafka's: latest.
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    };
    let mut broker = TestBroker::start_with(config);
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    create_topic(&address, TOPIC, 1);
    for value in [b"x", b"y"] {
        call(
            &address,
            ApiKey::Produce,
            7,
            RequestKind::Produce(produce_request(TOPIC, value)),
        );
    }
    // Group configs: Kafka's names and bounds.
    assert_eq!(
        alter_group_config(
            &address,
            "wire-group",
            "share.delivery.count.limit",
            Some("11")
        ),
        40
    );
    assert_eq!(
        alter_group_config(
            &address,
            "wire-group",
            "share.auto.offset.reset",
            Some("soon")
        ),
        40
    );
    assert_eq!(
        alter_group_config(&address, "wire-group", "no.such.config", Some("1")),
        40
    );
    assert_eq!(
        alter_group_config(
            &address,
            "wire-group",
            "share.auto.offset.reset",
            Some("earliest")
        ),
        NONE
    );
    assert_eq!(
        alter_group_config(
            &address,
            "wire-group",
            "share.record.lock.duration.ms",
            Some("15000")
        ),
        NONE
    );
    let describe = DescribeConfigsRequest::default().with_resources(vec![
        describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(32)
            .with_resource_name(text("wire-group"))
            .with_configuration_keys(None),
    ]);
    match call(
        &address,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(describe),
    ) {
        ResponseKind::DescribeConfigs(response) => {
            let result = &response.results[0];
            assert_eq!(result.error_code, NONE);
            let configs: Vec<(&str, String, i8)> = result
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.as_str(),
                        c.value.as_ref().unwrap().to_string(),
                        c.config_source,
                    )
                })
                .collect();
            assert!(
                configs.contains(&("share.auto.offset.reset", "earliest".into(), 8)),
                "{configs:?}"
            );
            assert!(configs.contains(&("share.record.lock.duration.ms", "15000".into(), 8)));
            assert!(configs.contains(&("share.delivery.count.limit", "5".into(), 5)));
        }
        other => panic!("DescribeConfigs answered {other:?}"),
    }
    // The group's configs are durable: after a restart they are still in force.
    broker.restart();
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    // The group starts at the earliest record, as configured, and its lock is the group's.
    let joined = heartbeat(&address, "member-a", 0);
    assert_eq!(joined.error_code, NONE);
    let id = topic_id(&address);
    let mut stream = connect(&address);
    let fetched = share_fetch(&mut stream, id, 0, vec![]);
    assert_eq!(acquired(&fetched), vec![(0, 1, 1)]);
    assert_eq!(fetched.acquisition_lock_timeout_ms, 15000);
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 1, vec![ack(0, 0, vec![1])])),
        NONE
    );
    // Listed as a share group (type filter), not describable as a classic one.
    let list = ListGroupsRequest::default().with_types_filter(vec![text("share")]);
    match call(
        &address,
        ApiKey::ListGroups,
        5,
        RequestKind::ListGroups(list),
    ) {
        ResponseKind::ListGroups(response) => {
            let listed: Vec<(&str, &str, &str)> = response
                .groups
                .iter()
                .map(|g| {
                    (
                        g.group_id.0.as_str(),
                        g.group_type.as_str(),
                        g.group_state.as_str(),
                    )
                })
                .collect();
            assert_eq!(listed, vec![("wire-group", "share", "Stable")]);
        }
        other => panic!("ListGroups answered {other:?}"),
    }
    let classic = ListGroupsRequest::default().with_types_filter(vec![text("classic")]);
    match call(
        &address,
        ApiKey::ListGroups,
        5,
        RequestKind::ListGroups(classic),
    ) {
        ResponseKind::ListGroups(response) => assert!(response.groups.is_empty()),
        other => panic!("ListGroups answered {other:?}"),
    }
    let described = DescribeGroupsRequest::default().with_groups(vec![group("wire-group")]);
    match call(
        &address,
        ApiKey::DescribeGroups,
        5,
        RequestKind::DescribeGroups(described),
    ) {
        ResponseKind::DescribeGroups(response) => assert_eq!(response.groups[0].error_code, 69),
        other => panic!("DescribeGroups answered {other:?}"),
    }
    // The start offset: 0 acknowledged, 1 still locked.
    let offsets = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group("wire-group"))
            .with_topics(None),
    ]);
    match call(
        &address,
        ApiKey::DescribeShareGroupOffsets,
        0,
        RequestKind::DescribeShareGroupOffsets(offsets),
    ) {
        ResponseKind::DescribeShareGroupOffsets(response) => {
            let topics = &response.groups[0].topics;
            assert_eq!(topics[0].topic_name.0.as_str(), TOPIC);
            assert_eq!(topics[0].partitions[0].start_offset, 1);
        }
        other => panic!("DescribeShareGroupOffsets answered {other:?}"),
    }
    // Neither its offsets nor the group go while it has a member.
    let delete_offsets = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(group("wire-group"))
        .with_topics(vec![
            delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                .with_topic_name(topic(TOPIC)),
        ]);
    let delete_group = || {
        let request = DeleteGroupsRequest::default().with_groups_names(vec![group("wire-group")]);
        match call(
            &address,
            ApiKey::DeleteGroups,
            2,
            RequestKind::DeleteGroups(request),
        ) {
            ResponseKind::DeleteGroups(response) => response.results[0].error_code,
            other => panic!("DeleteGroups answered {other:?}"),
        }
    };
    let offsets_code = || match call(
        &address,
        ApiKey::DeleteShareGroupOffsets,
        0,
        RequestKind::DeleteShareGroupOffsets(delete_offsets.clone()),
    ) {
        ResponseKind::DeleteShareGroupOffsets(response) => response.responses[0].error_code,
        other => panic!("DeleteShareGroupOffsets answered {other:?}"),
    };
    const NON_EMPTY_GROUP: i16 = 68;
    assert_eq!(offsets_code(), NON_EMPTY_GROUP);
    assert_eq!(delete_group(), NON_EMPTY_GROUP);
    assert_eq!(heartbeat(&address, "member-a", -1).error_code, NONE);
    assert_eq!(offsets_code(), NONE);
    assert_eq!(delete_group(), NONE);
    let list = ListGroupsRequest::default();
    match call(
        &address,
        ApiKey::ListGroups,
        5,
        RequestKind::ListGroups(list),
    ) {
        ResponseKind::ListGroups(response) => assert!(response.groups.is_empty(), "{response:?}"),
        other => panic!("ListGroups answered {other:?}"),
    }
}

#[test]
fn a_member_that_leaves_or_closes_its_session_gives_its_records_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, TOPIC, 1);
    for value in [b"a", b"b", b"c", b"d", b"e", b"f"] {
        call(
            &address,
            ApiKey::Produce,
            7,
            RequestKind::Produce(produce_request(TOPIC, value)),
        );
    }
    let id = topic_id(&address);
    assert_eq!(heartbeat(&address, "member-a", 0).error_code, NONE);
    let mut first = connect(&address);
    assert_eq!(
        acquired(&share_fetch(&mut first, id, 0, vec![])),
        vec![(0, 2, 1)]
    );
    // Leaving hands 0..=2 back long before their 30 s locks end.
    assert_eq!(heartbeat(&address, "member-a", -1).error_code, NONE);
    let mut second = connect(&address);
    let fetched = share_fetch_as(&mut second, "member-b", id, 0, vec![]);
    assert_eq!(acquired(&fetched), vec![(0, 2, 2)]);
    // Closing a session (epoch -1) after acknowledging 0 hands back 1 and 2.
    let close = ShareFetchRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text("member-b")))
        .with_share_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(vec![fetch_ack(0, 0, vec![1])]),
                ]),
        ]);
    match call_on(
        &mut second,
        ApiKey::ShareFetch,
        1,
        RequestKind::ShareFetch(close),
    ) {
        ResponseKind::ShareFetch(response) => {
            assert_eq!(response.error_code, NONE);
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.acknowledge_error_code, NONE);
            assert!(
                partition.acquired_records.is_empty(),
                "a closing fetch acquires nothing"
            );
        }
        other => panic!("ShareFetch answered {other:?}"),
    }
    let mut third = connect(&address);
    let fetched = share_fetch_as(&mut third, "member-c", id, 0, vec![]);
    assert_eq!(acquired(&fetched), vec![(1, 2, 3), (3, 3, 1)]);
}

#[test]
fn hostile_sizes_are_refused_with_kafkas_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, TOPIC, 1);
    call(
        &address,
        ApiKey::Produce,
        7,
        RequestKind::Produce(produce_request(TOPIC, b"v")),
    );
    let id = topic_id(&address);
    // A subscription of more topics than a member may name.
    let names: Vec<TopicName> = (0..1001)
        .map(|i| TopicName(text(&format!("t{i}"))))
        .collect();
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(group("wire-group"))
        .with_member_id(text("member-a"))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(names));
    match call(
        &address,
        ApiKey::ShareGroupHeartbeat,
        1,
        RequestKind::ShareGroupHeartbeat(request),
    ) {
        ResponseKind::ShareGroupHeartbeat(response) => {
            assert_eq!(response.error_code, INVALID_REQUEST)
        }
        other => panic!("ShareGroupHeartbeat answered {other:?}"),
    }
    // A session of more partitions than `share_groups.session_partitions_max` (10,000).
    let mut stream = connect(&address);
    let partitions: Vec<FetchPartition> = (0..10_001)
        .map(|i| FetchPartition::default().with_partition_index(i))
        .collect();
    let request = ShareFetchRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text("member-a")))
        .with_share_session_epoch(0)
        .with_max_records(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(partitions),
        ]);
    match call_on(
        &mut stream,
        ApiKey::ShareFetch,
        1,
        RequestKind::ShareFetch(request),
    ) {
        ResponseKind::ShareFetch(response) => assert_eq!(response.error_code, INVALID_REQUEST),
        other => panic!("ShareFetch answered {other:?}"),
    }
    // Acknowledgements that split into more ranges than one settle may name (10,000): one
    // type per offset, alternating, over 30,000 offsets.
    assert_eq!(
        acquired(&share_fetch(&mut stream, id, 0, vec![])),
        vec![(0, 0, 1)]
    );
    let types: Vec<i8> = (0..30_000)
        .map(|i| if i % 2 == 0 { 1 } else { 2 })
        .collect();
    let response = acknowledge(&mut stream, id, 1, vec![ack(0, 29_999, types)]);
    assert_eq!(
        response.error_code, INVALID_REQUEST,
        "{:?}",
        response.error_message
    );
    // Nothing changed: offset 0 is still held and can be accepted.
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 2, vec![ack(0, 0, vec![1])])),
        NONE
    );
    assert_serving(&address);
}
