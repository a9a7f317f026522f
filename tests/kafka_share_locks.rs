//! Share groups' locks and membership over the wire, where records can be left locked or
//! settled by mistake: a partition's acknowledgement is all or nothing; a share session that
//! ends (closed with refused acknowledgements, or replaced by a new epoch 0) gives its records
//! back at once; a member that joins again with its id is a new incarnation (the old one's
//! records go back, and are not the new one's to acknowledge); a member expired by a describe
//! gives its records back; heartbeat strings are bounded; a refused join makes no group and an
//! empty group is forgotten after `share_groups.empty_group_retention_ms`.

mod common;
mod share_wire;

use std::net::TcpStream;
use std::time::Duration;

use common::kafka_wire::*;
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use share_wire::*;
use uuid::Uuid;

const GROUP_ID_NOT_FOUND: i16 = 69;

fn produce_six(address: &str) {
    create_topic(address, TOPIC, 1);
    for value in [b"a", b"b", b"c", b"d", b"e", b"f"] {
        match call(
            address,
            ApiKey::Produce,
            7,
            RequestKind::Produce(produce_request(TOPIC, value)),
        ) {
            ResponseKind::Produce(response) => assert_eq!(
                response.responses[0].partition_responses[0].error_code,
                NONE
            ),
            other => panic!("Produce answered {other:?}"),
        }
    }
}

/// A ShareFetch opening a session (epoch 0) that acquires nothing (MaxRecords 0).
/// Six records produced, member-a joined, and a share session of its holding the first three
/// (offsets 0-2, delivery 1): where most of these tests start.
fn member_a_holding_three(address: &str) -> (Uuid, TcpStream) {
    produce_six(address);
    let id = topic_id(address);
    assert_eq!(heartbeat(address, "member-a", 0).error_code, NONE);
    let mut stream = connect(address);
    assert_eq!(
        acquired(&share_fetch(&mut stream, id, 0, vec![])),
        vec![(0, 2, 1)]
    );
    (id, stream)
}

fn reopen_acquiring_nothing(stream: &mut TcpStream, member: &str, id: Uuid) -> ShareFetchResponse {
    let request = ShareFetchRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text(member)))
        .with_share_session_epoch(0)
        .with_max_records(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![FetchPartition::default()]),
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

fn describe_group(address: &str) -> (i16, Vec<String>) {
    let request = ShareGroupDescribeRequest::default().with_group_ids(vec![group("wire-group")]);
    match call(
        address,
        ApiKey::ShareGroupDescribe,
        1,
        RequestKind::ShareGroupDescribe(request),
    ) {
        ResponseKind::ShareGroupDescribe(response) => {
            let described = &response.groups[0];
            let members = described
                .members
                .iter()
                .map(|m| m.member_id.as_str().to_string())
                .collect();
            (described.error_code, members)
        }
        other => panic!("ShareGroupDescribe answered {other:?}"),
    }
}

/// What a just-joined `member` acquires on a connection of its own.
fn fetched_by(address: &str, member: &str, id: Uuid) -> Vec<(i64, i64, i16)> {
    assert_eq!(heartbeat(address, member, 0).error_code, NONE);
    let mut stream = connect(address);
    acquired(&share_fetch_as(&mut stream, member, id, 0, vec![]))
}

#[test]
fn a_partitions_acknowledgement_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let (id, mut stream) = member_a_holding_three(&address);
    // ACCEPT of a held record with a RELEASE of one never acquired: the partition is refused
    // and the ACCEPT is not settled either.
    let mixed = acknowledge(
        &mut stream,
        id,
        1,
        vec![ack(0, 0, vec![1]), ack(4, 4, vec![2])],
    );
    assert_eq!(ack_code(&mixed), INVALID_RECORD_STATE);
    // Offset 0 is still held, so accepting it alone succeeds.
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 2, vec![ack(0, 0, vec![1])])),
        NONE
    );
    // The same on ShareFetch's piggybacked acknowledgements: 1 accepted, 5 rejected (not held).
    let piggybacked = share_fetch(
        &mut stream,
        id,
        3,
        vec![fetch_ack(1, 1, vec![1]), fetch_ack(5, 5, vec![3])],
    );
    assert_eq!(
        piggybacked.responses[0].partitions[0].acknowledge_error_code,
        INVALID_RECORD_STATE
    );
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 4, vec![ack(1, 1, vec![1])])),
        NONE
    );
}

#[test]
fn a_session_closed_with_refused_acknowledgements_gives_its_records_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let (id, mut stream) = member_a_holding_three(&address);
    // Closing (epoch -1) with acknowledgements past the request's budget of ranges: the
    // request is refused, the session ends, and its records are available at once.
    let types: Vec<i8> = (0..30_000)
        .map(|i| if i % 2 == 0 { 1 } else { 2 })
        .collect();
    let closed = acknowledge(&mut stream, id, -1, vec![ack(0, 29_999, types)]);
    assert_eq!(closed.error_code, INVALID_REQUEST);
    assert_eq!(
        acknowledge(&mut stream, id, 1, vec![]).error_code,
        SHARE_SESSION_NOT_FOUND
    );
    assert_eq!(fetched_by(&address, "member-b", id), vec![(0, 2, 2)]);
}

#[test]
fn a_session_opened_again_gives_the_old_ones_records_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let (id, mut stream) = member_a_holding_three(&address);
    let reopened = reopen_acquiring_nothing(&mut stream, "member-a", id);
    assert_eq!(reopened.error_code, NONE);
    assert!(
        reopened.responses[0].partitions[0]
            .acquired_records
            .is_empty()
    );
    assert_eq!(fetched_by(&address, "member-b", id), vec![(0, 2, 2)]);
}

#[test]
fn a_member_joining_again_is_a_new_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let (id, mut stream) = member_a_holding_three(&address);
    // Joining again with the same id (epoch 0): the old incarnation's records are not the
    // new one's to acknowledge, and they are available again at once.
    let rejoined = heartbeat(&address, "member-a", 0);
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 1, vec![ack(0, 0, vec![1])])),
        INVALID_RECORD_STATE
    );
    assert_eq!(fetched_by(&address, "member-b", id), vec![(0, 2, 2)]);
    // The new incarnation's own records are its to acknowledge.
    assert_eq!(
        acquired(&share_fetch(&mut stream, id, 2, vec![])),
        vec![(3, 5, 1)]
    );
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 3, vec![ack(3, 5, vec![1])])),
        NONE
    );
}

#[test]
fn a_member_expired_by_a_describe_gives_its_records_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker_with(
        dir.path(),
        ringmq::config::ShareGroupConfig {
            auto_offset_reset: "earliest".into(),
            session_timeout_ms: 1_000,
            heartbeat_interval_ms: 200,
            ..Default::default()
        },
    );
    produce_six(&address);
    let id = topic_id(&address);
    assert_eq!(heartbeat(&address, "member-a", 0).error_code, NONE);
    let mut stream = connect(&address);
    assert_eq!(
        acquired(&share_fetch(&mut stream, id, 0, vec![])),
        vec![(0, 2, 1)]
    );
    std::thread::sleep(Duration::from_millis(1_300));
    // The describe is what notices member-a is gone; its 30 s locks go with it.
    assert_eq!(describe_group(&address), (NONE, vec![]));
    assert_eq!(fetched_by(&address, "member-b", id), vec![(0, 2, 2)]);
}

#[test]
fn heartbeat_strings_are_bounded_each() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    produce_six(&address);
    let beat = |member: &str, rack: Option<String>, topics: Vec<TopicName>| {
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(group("wire-group"))
            .with_member_id(text(member))
            .with_member_epoch(0)
            .with_rack_id(rack.map(|r| text(&r)))
            .with_subscribed_topic_names(Some(topics));
        match call(
            &address,
            ApiKey::ShareGroupHeartbeat,
            1,
            RequestKind::ShareGroupHeartbeat(request),
        ) {
            ResponseKind::ShareGroupHeartbeat(response) => response.error_code,
            other => panic!("ShareGroupHeartbeat answered {other:?}"),
        }
    };
    let uuid = Uuid::from_u128(7).to_string();
    assert_eq!(uuid.len(), 36);
    assert_eq!(beat(&uuid, None, vec![topic(TOPIC)]), NONE);
    assert_eq!(
        beat(&format!("{uuid}x"), None, vec![topic(TOPIC)]),
        INVALID_REQUEST
    );
    // share_groups.rack_id_bytes_max is 255 by default.
    assert_eq!(
        beat("rack-member", Some("r".repeat(255)), vec![topic(TOPIC)]),
        NONE
    );
    assert_eq!(
        beat("rack-member", Some("r".repeat(256)), vec![topic(TOPIC)]),
        INVALID_REQUEST
    );
    // A topic name longer than any topic may have.
    let long = TopicName(text(&"t".repeat(201)));
    assert_eq!(beat("long-topic", None, vec![long]), INVALID_REQUEST);
    let (code, members) = describe_group(&address);
    assert_eq!(code, NONE);
    assert_eq!(
        members.len(),
        2,
        "only the members within bounds: {members:?}"
    );
}

#[test]
fn a_refused_join_makes_no_group_and_empty_groups_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, address) = broker_with(
        dir.path(),
        ringmq::config::ShareGroupConfig {
            auto_offset_reset: "earliest".into(),
            empty_group_retention_ms: 300,
            ..Default::default()
        },
    );
    produce_six(&address);
    // A join naming no subscription is refused, and leaves no group behind.
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(group("wire-group"))
        .with_member_id(text("member-a"))
        .with_member_epoch(0);
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
    assert_eq!(describe_group(&address).0, GROUP_ID_NOT_FOUND);
    // A group whose last member left is Empty, then forgotten past the retention.
    assert_eq!(heartbeat(&address, "member-a", 0).error_code, NONE);
    assert_eq!(heartbeat(&address, "member-a", -1).error_code, NONE);
    assert_eq!(describe_group(&address), (NONE, vec![]));
    std::thread::sleep(Duration::from_millis(1_200));
    assert_eq!(describe_group(&address).0, GROUP_ID_NOT_FOUND);
    let reaped: f64 = common::scrape(&broker.http_address())
        .lines()
        .filter(|line| line.starts_with("ringmq_share_groups_reaped_total"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(reaped, 1.0);
}

/// A ShareAcknowledge's top-level error for `member` at session `epoch`, acknowledging nothing.
fn session_probe(stream: &mut TcpStream, member: &str, id: Uuid, epoch: i32) -> i16 {
    use kafka_protocol::messages::share_acknowledge_request::{
        AcknowledgePartition, AcknowledgeTopic,
    };
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text(member)))
        .with_share_session_epoch(epoch)
        .with_topics(vec![
            AcknowledgeTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![AcknowledgePartition::default()]),
        ]);
    match call_on(
        stream,
        ApiKey::ShareAcknowledge,
        1,
        RequestKind::ShareAcknowledge(request),
    ) {
        ResponseKind::ShareAcknowledge(response) => response.error_code,
        other => panic!("ShareAcknowledge answered {other:?}"),
    }
}

/// A connection served by another shard than `stream`'s (share sessions are per shard): a
/// probe session opened on `stream` is not found from it.
fn connect_elsewhere(address: &str, stream: &mut TcpStream, id: Uuid) -> TcpStream {
    for _ in 0..64 {
        // Not a member, so the fetch is refused, but its session is open on `stream`'s shard.
        let probe = share_fetch_as(stream, "probe", id, 0, vec![]);
        assert_eq!(probe.error_code, UNKNOWN_MEMBER_ID);
        let mut candidate = connect(address);
        match session_probe(&mut candidate, "probe", id, 5) {
            SHARE_SESSION_NOT_FOUND => return candidate,
            code => assert_eq!(code, INVALID_SHARE_SESSION_EPOCH),
        }
    }
    panic!("64 connections all on one shard");
}

#[test]
fn an_old_incarnations_session_end_releases_only_its_own_records() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let (id, mut old) = member_a_holding_three(&address);
    // member-a joins again: the old incarnation's records go back, and the new one takes them
    // through a session on another shard, while the old session is still open.
    assert_eq!(heartbeat(&address, "member-a", 0).error_code, NONE);
    let mut new = connect_elsewhere(&address, &mut old, id);
    assert_eq!(
        acquired(&share_fetch(&mut new, id, 0, vec![])),
        vec![(0, 2, 2)]
    );
    // The old session closes late: it gives back the old incarnation's records (none now),
    // not the new one's.
    assert_eq!(acknowledge(&mut old, id, -1, vec![]).error_code, NONE);
    assert_eq!(fetched_by(&address, "member-b", id), vec![(3, 5, 1)]);
    assert_eq!(
        ack_code(&acknowledge(&mut new, id, 1, vec![ack(0, 2, vec![1])])),
        NONE
    );
}
