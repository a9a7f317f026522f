//! KIP-848's consumer group protocol over TCP, byte for byte: ConsumerGroupHeartbeat joins,
//! reconciles and leaves with Kafka's exact error codes, a partition reaches its next owner only
//! after its previous owner revoked it, commits and offset fetches check the member epoch, and
//! the classic protocol is refused on a consumer group (and the reverse) as Kafka refuses it.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

const NONE: i16 = 0;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_REQUEST: i16 = 42;
const GROUP_ID_NOT_FOUND: i16 = 69;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;

const TOPIC: &str = "kip848";

/// A broker with a short KIP-848 session, so that expiry is seen in a test.
fn broker(dir: &std::path::Path) -> (TestBroker, String) {
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        group_consumer_heartbeat_interval_ms: 250,
        group_consumer_session_timeout_ms: 1500,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// The topic's id, from Metadata v12.
fn topic_id(address: &str, name: &'static str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(name))),
    ]));
    let ResponseKind::Metadata(response) = call(
        address,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(request),
    ) else {
        panic!("not a Metadata response")
    };
    let id = response.topics[0].topic_id;
    assert!(!id.is_nil(), "Metadata v12 names the topic's id");
    id
}

/// One heartbeat: `topics` None and `owned` None are "unchanged".
struct Beat<'a> {
    group: &'a str,
    member: &'a str,
    epoch: i32,
    topics: Option<&'a [&'a str]>,
    owned: Option<&'a [i32]>,
    assignor: Option<&'a str>,
}

impl Beat<'_> {
    fn send(&self, address: &str, id: Uuid, version: i16) -> ConsumerGroupHeartbeatResponse {
        let rebalance_timeout_ms = if self.topics.is_some() { 30_000 } else { -1 };
        self.send_with(address, id, version, rebalance_timeout_ms)
    }

    fn send_with(
        &self,
        address: &str,
        id: Uuid,
        version: i16,
        rebalance_timeout_ms: i32,
    ) -> ConsumerGroupHeartbeatResponse {
        let request = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(text(self.group)))
            .with_member_id(text(self.member))
            .with_member_epoch(self.epoch)
            .with_rebalance_timeout_ms(rebalance_timeout_ms)
            .with_subscribed_topic_names(
                self.topics
                    .map(|names| names.iter().map(|n| TopicName(text(n))).collect()),
            )
            .with_server_assignor(self.assignor.map(text))
            .with_topic_partitions(self.owned.map(|owned| {
                vec![
                    TopicPartitions::default()
                        .with_topic_id(id)
                        .with_partitions(owned.to_vec()),
                ]
            }));
        let ResponseKind::ConsumerGroupHeartbeat(response) = call(
            address,
            ApiKey::ConsumerGroupHeartbeat,
            version,
            RequestKind::ConsumerGroupHeartbeat(request),
        ) else {
            panic!("not a ConsumerGroupHeartbeat response")
        };
        response
    }
}

/// The partitions of `TOPIC` a response assigns; None when it carries no assignment.
fn assigned(response: &ConsumerGroupHeartbeatResponse, id: Uuid) -> Option<BTreeSet<i32>> {
    response.assignment.as_ref().map(|assignment| {
        assignment
            .topic_partitions
            .iter()
            .inspect(|t| assert_eq!(t.topic_id, id))
            .flat_map(|t| t.partitions.iter().copied())
            .collect()
    })
}

fn commit(address: &str, group_name: &str, member: &str, epoch: i32, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group_name)))
        .with_member_id(text(member))
        .with_generation_id_or_member_epoch(epoch)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(topic(TOPIC))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(offset),
                ]),
        ]);
    let ResponseKind::OffsetCommit(response) = call(
        address,
        ApiKey::OffsetCommit,
        9,
        RequestKind::OffsetCommit(request),
    ) else {
        panic!("not an OffsetCommit response")
    };
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v9 of partition 0 as `member` at `epoch`: (group error, offset).
fn fetch_committed(address: &str, group_name: &str, member: &str, epoch: i32) -> (i16, i64) {
    let request = OffsetFetchRequest::default().with_groups(vec![
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(text(group_name)))
            .with_member_id(Some(text(member)))
            .with_member_epoch(epoch)
            .with_topics(Some(vec![
                OffsetFetchRequestTopics::default()
                    .with_name(topic(TOPIC))
                    .with_partition_indexes(vec![0]),
            ])),
    ]);
    let ResponseKind::OffsetFetch(response) = call(
        address,
        ApiKey::OffsetFetch,
        9,
        RequestKind::OffsetFetch(request),
    ) else {
        panic!("not an OffsetFetch response")
    };
    let group = &response.groups[0];
    let offset = group
        .topics
        .first()
        .map_or(-1, |t| t.partitions[0].committed_offset);
    (group.error_code, offset)
}

#[test]
fn heartbeats_join_revoke_before_reassigning_and_leave_with_kafkas_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, "kip848", 4);
    let id = topic_id(&address, "kip848");
    let all: BTreeSet<i32> = (0..4).collect();
    let joining = |member: &'static str, assignor| Beat {
        group: "g",
        member,
        epoch: 0,
        topics: Some(&[TOPIC]),
        owned: Some(&[]),
        assignor,
    };

    // An assignor the broker does not have.
    let refused = joining("m1", Some("nope")).send(&address, id, 1);
    assert_eq!(refused.error_code, UNSUPPORTED_ASSIGNOR);
    // v1: the client makes its member id; joining without one is a bad request.
    assert_eq!(
        joining("", None).send(&address, id, 1).error_code,
        INVALID_REQUEST
    );

    // The first member gets every partition at once.
    let first = joining("m1", Some("range")).send(&address, id, 1);
    assert_eq!(first.error_code, NONE, "{first:?}");
    assert_eq!(first.member_id.as_deref(), Some("m1"));
    assert_eq!(first.heartbeat_interval_ms, 250);
    assert_eq!(assigned(&first, id), Some(all.clone()));
    let e1 = first.member_epoch;
    assert!(e1 > 0);

    // Unknown members and epochs from the future are refused with Kafka's codes.
    let beat = |member, epoch, owned| Beat {
        group: "g",
        member,
        epoch,
        topics: None,
        owned,
        assignor: None,
    };
    assert_eq!(
        beat("stranger", 3, None).send(&address, id, 1).error_code,
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(
        beat("m1", e1 + 5, None).send(&address, id, 1).error_code,
        FENCED_MEMBER_EPOCH
    );

    // A second member joins: nothing is free yet, so it gets nothing.
    let second = joining("m2", Some("range")).send(&address, id, 1);
    assert_eq!(second.error_code, NONE);
    assert_eq!(assigned(&second, id), Some(BTreeSet::new()));
    let e2 = second.member_epoch;
    assert!(e2 > e1);

    // m1 is asked to revoke half, keeping its epoch until it has.
    let revoke = beat("m1", e1, Some(&[0, 1, 2, 3])).send(&address, id, 1);
    assert_eq!(revoke.error_code, NONE);
    assert_eq!(
        revoke.member_epoch, e1,
        "the epoch waits for the revocation"
    );
    let kept = assigned(&revoke, id).expect("the revocation is an assignment");
    assert_eq!(kept.len(), 2);
    let released: Vec<i32> = all.difference(&kept).copied().collect();

    // Until m1 says it no longer owns them, m2 gets none of them.
    let waiting = beat("m2", e2, Some(&[])).send(&address, id, 1);
    assert_eq!(waiting.error_code, NONE);
    assert_eq!(waiting.member_epoch, e2);
    assert!(
        assigned(&waiting, id).is_none_or(|p| p.is_empty()),
        "{waiting:?}"
    );
    // m1 still reporting them keeps them revoking.
    let still = beat("m1", e1, Some(&[0, 1, 2, 3])).send(&address, id, 1);
    assert_eq!(still.member_epoch, e1);

    // Commits and fetches check the member epoch.
    assert_eq!(commit(&address, "g", "m1", e1, 42), NONE);
    assert_eq!(commit(&address, "g", "m1", e1 - 1, 43), STALE_MEMBER_EPOCH);
    assert_eq!(commit(&address, "g", "ghost", e1, 43), UNKNOWN_MEMBER_ID);
    assert_eq!(fetch_committed(&address, "g", "m1", e1), (NONE, 42));
    assert_eq!(
        fetch_committed(&address, "g", "m1", e1 + 1).0,
        STALE_MEMBER_EPOCH
    );

    // m1 acknowledges: its epoch moves on, and only now may m2 take the released ones.
    let kept_list: Vec<i32> = kept.iter().copied().collect();
    let acked = beat("m1", e1, Some(&kept_list)).send(&address, id, 1);
    assert_eq!(acked.error_code, NONE);
    assert_eq!(acked.member_epoch, e2);
    let granted = beat("m2", e2, Some(&[])).send(&address, id, 1);
    assert_eq!(
        assigned(&granted, id),
        Some(released.iter().copied().collect())
    );

    // The classic protocol is refused while consumer-protocol members are in.
    let classic = JoinGroupRequest::default()
        .with_group_id(group("g"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Default::default()),
        ]);
    let ResponseKind::JoinGroup(joined) = call(
        &address,
        ApiKey::JoinGroup,
        5,
        RequestKind::JoinGroup(classic),
    ) else {
        panic!("not a JoinGroup response")
    };
    assert_eq!(joined.error_code, INCONSISTENT_GROUP_PROTOCOL);

    // m1 leaves: its partitions go to m2 at once.
    let left = beat("m1", -1, None).send(&address, id, 1);
    assert_eq!((left.error_code, left.member_epoch), (NONE, -1));
    let all_list: Vec<i32> = released.clone();
    let everything = beat("m2", e2, Some(&all_list)).send(&address, id, 1);
    assert_eq!(everything.error_code, NONE);
    assert_eq!(assigned(&everything, id), Some(all.clone()));
    assert!(everything.member_epoch > e2);

    // m2 falls silent: its session expires and it is no longer a member.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let late = beat("m2", everything.member_epoch, None).send(&address, id, 1);
        if late.error_code == UNKNOWN_MEMBER_ID {
            break;
        }
        assert_eq!(late.error_code, NONE);
        assert!(Instant::now() < deadline, "the session never expired");
        std::thread::sleep(Duration::from_millis(2_000));
    }
}

#[test]
fn v0_joins_get_their_member_id_from_the_coordinator_and_classic_groups_are_not_consumer_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, "kip848", 2);
    let id = topic_id(&address, "kip848");
    let joined = Beat {
        group: "v0",
        member: "",
        epoch: 0,
        topics: Some(&[TOPIC]),
        owned: Some(&[]),
        assignor: None,
    }
    .send(&address, id, 0);
    assert_eq!(joined.error_code, NONE);
    let member = joined.member_id.clone().unwrap();
    assert!(!member.is_empty(), "the coordinator names the member");
    assert_eq!(assigned(&joined, id), Some((0..2).collect()));

    // A classic group with a member is not a consumer group.
    let classic = JoinGroupRequest::default()
        .with_group_id(group("classic"))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(text("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(text("range"))
                .with_metadata(Default::default()),
        ]);
    let ResponseKind::JoinGroup(first) = call(
        &address,
        ApiKey::JoinGroup,
        3,
        RequestKind::JoinGroup(classic),
    ) else {
        panic!("not a JoinGroup response")
    };
    assert_eq!(first.error_code, NONE, "{first:?}");
    let refused = Beat {
        group: "classic",
        member: "m",
        epoch: 0,
        topics: Some(&[TOPIC]),
        owned: Some(&[]),
        assignor: None,
    }
    .send(&address, id, 1);
    assert_eq!(refused.error_code, GROUP_ID_NOT_FOUND);

    // ListGroups v5 tells the two kinds apart, and filters by kind.
    let request = ListGroupsRequest::default().with_types_filter(vec![text("Consumer")]);
    let ResponseKind::ListGroups(listed) = call(
        &address,
        ApiKey::ListGroups,
        5,
        RequestKind::ListGroups(request),
    ) else {
        panic!("not a ListGroups response")
    };
    let names: Vec<(&str, &str)> = listed
        .groups
        .iter()
        .map(|g| (g.group_id.0.as_str(), g.group_type.as_str()))
        .collect();
    assert_eq!(names, vec![("v0", "consumer")]);

    // ConsumerGroupDescribe: the member with its partitions; a classic group is not found.
    let request = ConsumerGroupDescribeRequest::default().with_group_ids(vec![
        group("v0"),
        group("classic"),
        group("absent"),
    ]);
    let ResponseKind::ConsumerGroupDescribe(described) = call(
        &address,
        ApiKey::ConsumerGroupDescribe,
        1,
        RequestKind::ConsumerGroupDescribe(request),
    ) else {
        panic!("not a ConsumerGroupDescribe response")
    };
    let v0 = &described.groups[0];
    assert_eq!(v0.error_code, NONE);
    assert_eq!(v0.group_state.as_str(), "Stable");
    assert_eq!(v0.assignor_name.as_str(), "uniform");
    assert_eq!(v0.members.len(), 1);
    assert_eq!(v0.members[0].member_id.as_str(), member.as_str());
    let partitions = &v0.members[0].assignment.topic_partitions;
    assert_eq!(partitions[0].topic_name.0.as_str(), TOPIC);
    assert_eq!(partitions[0].partitions, vec![0, 1]);
    assert_eq!(described.groups[1].error_code, GROUP_ID_NOT_FOUND);
    assert_eq!(described.groups[2].error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn a_member_that_never_revokes_is_removed_after_its_rebalance_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, "kip848", 2);
    let id = topic_id(&address, "kip848");
    let joining = |member| Beat {
        group: "stuck",
        member,
        epoch: 0,
        topics: Some(&[TOPIC]),
        owned: Some(&[]),
        assignor: None,
    };
    // m1 joins with a rebalance timeout of 300 ms, then m2 joins and m1 is asked to revoke.
    let m1 = joining("m1").send_with(&address, id, 1, 300);
    assert_eq!(assigned(&m1, id), Some((0..2).collect()));
    let m2 = joining("m2").send(&address, id, 1);
    let beat = |member, epoch, owned| Beat {
        group: "stuck",
        member,
        epoch,
        topics: None,
        owned,
        assignor: None,
    };
    let asked = beat("m1", m1.member_epoch, Some(&[0, 1])).send(&address, id, 1);
    assert_eq!(assigned(&asked, id).map(|p| p.len()), Some(1));
    // It keeps heartbeating (its session lives) but keeps both partitions: after its rebalance
    // timeout it is removed, and m2 gets everything.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let held = beat("m1", m1.member_epoch, Some(&[0, 1])).send(&address, id, 1);
        if held.error_code == UNKNOWN_MEMBER_ID {
            break;
        }
        assert_eq!(held.error_code, NONE);
        assert!(Instant::now() < deadline, "never removed");
        std::thread::sleep(Duration::from_millis(100));
    }
    let all = beat("m2", m2.member_epoch, Some(&[])).send(&address, id, 1);
    assert_eq!(all.error_code, NONE);
    assert_eq!(assigned(&all, id), Some((0..2).collect()));
}
