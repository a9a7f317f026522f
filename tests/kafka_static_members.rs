//! Static group membership (KIP-345) over the Kafka wire, byte for byte: a member that names a
//! `group.instance.id` and restarts within its session timeout takes its place back with its
//! assignment and without a rebalance; its old member id is fenced.

mod common;

use bytes::Bytes;
use common::kafka_wire::*;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const NONE: i16 = 0;
const UNKNOWN_MEMBER_ID: i16 = 25;
const REBALANCE_IN_PROGRESS: i16 = 27;
const FENCED_INSTANCE_ID: i16 = 82;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn join(address: &str, member_id: &str, instance: &str) -> JoinGroupResponse {
    let request = JoinGroupRequest::default()
        .with_group_id(group("static"))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_member_id(text(member_id))
        .with_group_instance_id(Some(text(instance)))
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Bytes::from_static(b"subscription")),
        ]);
    match call(
        address,
        ApiKey::JoinGroup,
        5,
        RequestKind::JoinGroup(request),
    ) {
        ResponseKind::JoinGroup(response) => response,
        other => panic!("JoinGroup answered {other:?}"),
    }
}

fn sync(
    address: &str,
    member_id: &str,
    instance: &str,
    generation: i32,
    assignments: &[(&str, &'static [u8])],
) -> SyncGroupResponse {
    let request = SyncGroupRequest::default()
        .with_group_id(group("static"))
        .with_member_id(text(member_id))
        .with_group_instance_id(Some(text(instance)))
        .with_generation_id(generation)
        .with_assignments(
            assignments
                .iter()
                .map(|(member, bytes)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(text(member))
                        .with_assignment(Bytes::from_static(bytes))
                })
                .collect(),
        );
    match call(
        address,
        ApiKey::SyncGroup,
        3,
        RequestKind::SyncGroup(request),
    ) {
        ResponseKind::SyncGroup(response) => response,
        other => panic!("SyncGroup answered {other:?}"),
    }
}

fn heartbeat(address: &str, member_id: &str, instance: Option<&str>, generation: i32) -> i16 {
    let request = HeartbeatRequest::default()
        .with_group_id(group("static"))
        .with_member_id(text(member_id))
        .with_group_instance_id(instance.map(text))
        .with_generation_id(generation);
    match call(
        address,
        ApiKey::Heartbeat,
        3,
        RequestKind::Heartbeat(request),
    ) {
        ResponseKind::Heartbeat(response) => response.error_code,
        other => panic!("Heartbeat answered {other:?}"),
    }
}

/// OffsetCommit v7 (the first with an instance id) of offset `offset` for static-0; its code.
fn commit(
    address: &str,
    member_id: &str,
    instance: Option<&str>,
    generation: i32,
    offset: i64,
) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let request = OffsetCommitRequest::default()
        .with_group_id(group("static"))
        .with_member_id(text(member_id))
        .with_group_instance_id(instance.map(text))
        .with_generation_id_or_member_epoch(generation)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic("static-topic"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    match call(
        address,
        ApiKey::OffsetCommit,
        7,
        RequestKind::OffsetCommit(request),
    ) {
        ResponseKind::OffsetCommit(response) => response.topics[0].partitions[0].error_code,
        other => panic!("OffsetCommit answered {other:?}"),
    }
}

/// The group's committed offset of static-topic 0 (OffsetFetch v7).
fn committed(address: &str) -> i64 {
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    let request = OffsetFetchRequest::default()
        .with_group_id(group("static"))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(topic("static-topic"))
                .with_partition_indexes(vec![0]),
        ]));
    match call(
        address,
        ApiKey::OffsetFetch,
        7,
        RequestKind::OffsetFetch(request),
    ) {
        ResponseKind::OffsetFetch(response) => response.topics[0].partitions[0].committed_offset,
        other => panic!("OffsetFetch answered {other:?}"),
    }
}

#[test]
fn a_restarted_static_member_gets_its_assignment_back_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());

    // Two static members form generation g: "a" leads and assigns.
    let a = join(&address, "", "instance-a");
    assert_eq!(a.error_code, NONE);
    let a_id = a.member_id.to_string();
    let b = std::thread::spawn({
        let address = address.clone();
        move || join(&address, "", "instance-b")
    });
    // a learns of the round from its heartbeat and joins again, which completes it.
    let mut rejoined = None;
    for _ in 0..200 {
        if heartbeat(&address, &a_id, Some("instance-a"), a.generation_id) == REBALANCE_IN_PROGRESS
        {
            rejoined = Some(join(&address, &a_id, "instance-a"));
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let a = rejoined.expect("the second member's join starts a round");
    let b = b.join().unwrap();
    assert_eq!((a.error_code, b.error_code), (NONE, NONE));
    assert_eq!(a.generation_id, b.generation_id);
    assert_eq!(a.leader, a.member_id, "the member already in keeps leading");
    let generation = a.generation_id;
    let b_id = b.member_id.to_string();
    let assignments: [(&str, &'static [u8]); 2] =
        [(&a_id, b"partitions-of-a"), (&b_id, b"partitions-of-b")];
    let leader_sync = sync(&address, &a_id, "instance-a", generation, &assignments);
    assert_eq!(leader_sync.assignment.as_ref(), b"partitions-of-a");
    let b_sync = sync(&address, &b_id, "instance-b", generation, &[]);
    assert_eq!(b_sync.assignment.as_ref(), b"partitions-of-b");

    // b's process restarts: it joins with an empty member id and its instance id.
    let again = join(&address, "", "instance-b");
    assert_eq!(again.error_code, NONE);
    assert_ne!(again.member_id.to_string(), b_id, "a new member id");
    assert_eq!(
        again.generation_id, generation,
        "no new generation: no rebalance"
    );
    assert_eq!(again.leader.to_string(), a_id);
    assert!(again.members.is_empty(), "only the leader gets the members");
    let new_b = again.member_id.to_string();
    let resynced = sync(&address, &new_b, "instance-b", generation, &[]);
    assert_eq!(resynced.error_code, NONE);
    assert_eq!(resynced.assignment.as_ref(), b"partitions-of-b");
    assert_eq!(
        heartbeat(&address, &a_id, Some("instance-a"), generation),
        NONE,
        "the other member sees no rebalance"
    );

    // The old process, a zombie, is fenced; without its instance id it is simply gone.
    assert_eq!(
        heartbeat(&address, &b_id, Some("instance-b"), generation),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        heartbeat(&address, &b_id, None, generation),
        UNKNOWN_MEMBER_ID
    );
    let fenced = join(&address, &b_id, "instance-b");
    assert_eq!(fenced.error_code, FENCED_INSTANCE_ID);
    // Its commits are fenced too (the offsets it would overwrite are the new process's), and
    // the new process commits.
    assert_eq!(
        commit(&address, &b_id, Some("instance-b"), generation, 7),
        FENCED_INSTANCE_ID
    );
    assert_eq!(
        commit(&address, &b_id, None, generation, 7),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        commit(&address, &new_b, Some("instance-b"), generation, 9),
        NONE
    );
    assert_eq!(
        committed(&address),
        9,
        "the zombie's commits changed nothing"
    );

    // Leaving by instance id (LeaveGroup v3+) removes the current member and starts a round.
    let request = LeaveGroupRequest::default()
        .with_group_id(group("static"))
        .with_members(vec![
            MemberIdentity::default()
                .with_member_id(text(""))
                .with_group_instance_id(Some(text("instance-b"))),
        ]);
    match call(
        &address,
        ApiKey::LeaveGroup,
        3,
        RequestKind::LeaveGroup(request),
    ) {
        ResponseKind::LeaveGroup(response) => assert_eq!(response.error_code, NONE),
        other => panic!("LeaveGroup answered {other:?}"),
    }
    assert_eq!(
        heartbeat(&address, &a_id, Some("instance-a"), generation),
        REBALANCE_IN_PROGRESS
    );
    assert_eq!(
        heartbeat(&address, &new_b, Some("instance-b"), generation),
        UNKNOWN_MEMBER_ID
    );
}
