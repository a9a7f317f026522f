//! Share groups (KIP-932) byte for byte: ShareGroupHeartbeat, ShareFetch and ShareAcknowledge
//! answer Kafka's exact error codes for an unknown member, a fenced epoch, a share session
//! epoch out of step, acknowledgements of records the member does not hold, and hostile
//! ranges and sizes; what a member acquires and acknowledges is what the next fetch shows.

mod common;
mod share_wire;

use common::kafka_wire::*;
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use share_wire::*;
use uuid::Uuid;
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
    // Only members fetch: one that never joined gets UNKNOWN_MEMBER_ID.
    let mut stranger = connect(&address);
    let refused = share_fetch_as(&mut stranger, "stranger", id, 0, vec![]);
    assert_eq!(refused.error_code, UNKNOWN_MEMBER_ID);
    assert_eq!(heartbeat(&address, "member-a", 0).error_code, NONE);
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
    assert_eq!(heartbeat(&address, "member-b", 0).error_code, NONE);
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
    assert_eq!(heartbeat(&address, "member-c", 0).error_code, NONE);
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
    assert_eq!(heartbeat(&address, "member-a", 0).error_code, NONE);
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

/// One name is one group: a share group's name is refused to a consumer group (a commit, a
/// join) and a consumer group's (even an empty one kept for its offsets) to a share group, with
/// Kafka's GROUP_ID_NOT_FOUND, so DescribeGroups and DeleteGroups never confuse the two.
#[test]
fn a_share_group_and_a_consumer_group_never_share_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, address) = broker(dir.path());
    let joined = heartbeat(&address, "member-a", 0);
    assert_eq!(joined.error_code, NONE);
    ringmq::runtime::block_on(async {
        let client = ringmq::client::Client::connect(&broker.address())
            .await
            .unwrap();
        let refused = client
            .commit_offsets("wire-group", "", 0, vec![(TOPIC.into(), 0, 1)])
            .await
            .unwrap_err();
        assert_eq!(
            refused.code(),
            Some(ringmq::protocol::ErrorCode::UnknownGroup),
            "{refused}"
        );
        client
            .commit_offsets("classic", "", 0, vec![(TOPIC.into(), 0, 1)])
            .await
            .unwrap();
    });
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(group("classic"))
        .with_member_id(text("member-b"))
        .with_member_epoch(0)
        .with_subscribed_topic_names(Some(vec![topic(TOPIC)]));
    let answer = match call(
        &address,
        ApiKey::ShareGroupHeartbeat,
        1,
        RequestKind::ShareGroupHeartbeat(request),
    ) {
        ResponseKind::ShareGroupHeartbeat(response) => response,
        other => panic!("{other:?}"),
    };
    const GROUP_ID_NOT_FOUND: i16 = 69;
    assert_eq!(answer.error_code, GROUP_ID_NOT_FOUND);
}
