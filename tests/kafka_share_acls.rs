//! Share groups under ACLs, as Kafka authorizes them: a heartbeat needs Read on the group and
//! Describe on each subscribed topic, a fetch Read on the group and on each topic (refused per
//! partition), a group's configs AlterConfigs on it. The first fetch makes the group's durable
//! queue group on a topic with Read alone, as Kafka makes a share group's state on first use.

mod common;

use std::io::{Read, Write};
use std::path::Path;

use bytes::Bytes;
use common::TestBroker;
use common::kafka_wire::{connect, encode, framed, produce_request};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::share_fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::broker::users::Users;

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const READ: i8 = 3;
const DESCRIBE: i8 = 8;
const ALLOW: i8 = 3;
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const GROUP_AUTHORIZATION_FAILED: i16 = 30;
const UNKNOWN_TOPIC_ID: i16 = 100;

fn broker(dir: &Path) -> TestBroker {
    let mut users = Users::default();
    for (user, password) in [("admin", "admin-pw"), ("bob", "bob-pw")] {
        let credential =
            Credential::new(Mechanism::ScramSha256, password.as_bytes(), ITERATIONS_MIN);
        users
            .upsert(user, Mechanism::ScramSha256, credential)
            .unwrap();
    }
    users.save(dir).unwrap();
    TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        kafka_sasl_mechanisms: vec!["PLAIN".into()],
        super_users: vec!["User:admin".into()],
        share_groups: ringmq::config::ShareGroupConfig {
            auto_offset_reset: "earliest".into(),
            ..Default::default()
        },
        ..Default::default()
    })
}

/// A Kafka connection authenticated with PLAIN as `user`.
struct Kafka(std::net::TcpStream, i32);

impl Kafka {
    fn login(address: &str, user: &str, password: &str) -> Kafka {
        let mut kafka = Kafka(connect(address), 0);
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        kafka.call(
            ApiKey::SaslHandshake,
            1,
            RequestKind::SaslHandshake(handshake),
        );
        let message = format!("\0{user}\0{password}");
        let authenticate = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        match kafka.call(
            ApiKey::SaslAuthenticate,
            2,
            RequestKind::SaslAuthenticate(authenticate),
        ) {
            ResponseKind::SaslAuthenticate(response) => assert_eq!(response.error_code, 0),
            other => panic!("{other:?}"),
        }
        kafka
    }

    fn call(&mut self, api: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        self.1 += 1;
        self.0
            .write_all(&framed(&encode(api, version, self.1, &request)))
            .unwrap();
        let mut length = [0u8; 4];
        self.0.read_exact(&mut length).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        self.0.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        ResponseKind::decode(api, &mut body, version).unwrap()
    }

    fn allow(&mut self, resource_type: i8, name: &'static str, operation: i8) {
        let rule = AclCreation::default()
            .with_resource_type(resource_type)
            .with_resource_pattern_type(LITERAL)
            .with_resource_name(StrBytes::from_static_str(name))
            .with_principal(StrBytes::from_static_str("User:bob"))
            .with_host(StrBytes::from_static_str("*"))
            .with_operation(operation)
            .with_permission_type(ALLOW);
        let request = CreateAclsRequest::default().with_creations(vec![rule]);
        match self.call(ApiKey::CreateAcls, 3, RequestKind::CreateAcls(request)) {
            ResponseKind::CreateAcls(response) => assert_eq!(response.results[0].error_code, 0),
            other => panic!("{other:?}"),
        }
    }

    fn heartbeat(&mut self) -> i16 {
        let request = ShareGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("acl-share")))
            .with_member_id(StrBytes::from_static_str("bob-member"))
            .with_member_epoch(0)
            .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str(
                "guarded",
            ))]));
        match self.call(
            ApiKey::ShareGroupHeartbeat,
            1,
            RequestKind::ShareGroupHeartbeat(request),
        ) {
            ResponseKind::ShareGroupHeartbeat(response) => response.error_code,
            other => panic!("{other:?}"),
        }
    }

    /// (the request's error, the partition's error, records acquired).
    fn fetch(&mut self, id: uuid::Uuid) -> (i16, i16, usize) {
        let request = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_static_str("acl-share"))))
            .with_member_id(Some(StrBytes::from_static_str("bob-member")))
            .with_share_session_epoch(0)
            .with_max_records(10)
            .with_max_bytes(1 << 20)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic_id(id)
                    .with_partitions(vec![FetchPartition::default()]),
            ]);
        match self.call(ApiKey::ShareFetch, 1, RequestKind::ShareFetch(request)) {
            ResponseKind::ShareFetch(response) => {
                let partition = response
                    .responses
                    .first()
                    .and_then(|t| t.partitions.first());
                (
                    response.error_code,
                    partition.map_or(-1, |p| p.error_code),
                    partition.map_or(0, |p| {
                        p.acquired_records
                            .iter()
                            .map(|a| (a.last_offset - a.first_offset + 1) as usize)
                            .sum()
                    }),
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn share_groups_need_read_on_the_group_and_each_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    let mut admin = Kafka::login(&address, "admin", "admin-pw");
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("guarded")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    admin.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(create));
    admin.call(
        ApiKey::Produce,
        7,
        RequestKind::Produce(produce_request("guarded", b"secret")),
    );
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("guarded")))),
    ]));
    let id = match admin.call(ApiKey::Metadata, 12, RequestKind::Metadata(metadata)) {
        ResponseKind::Metadata(response) => response.topics[0].topic_id,
        other => panic!("{other:?}"),
    };
    let mut bob = Kafka::login(&address, "bob", "bob-pw");
    assert_eq!(bob.heartbeat(), GROUP_AUTHORIZATION_FAILED);
    assert_eq!(bob.fetch(id).0, GROUP_AUTHORIZATION_FAILED);
    admin.allow(GROUP, "acl-share", READ);
    // Read on the group, nothing on the subscribed topic: Kafka's TOPIC_AUTHORIZATION_FAILED
    // (and the topic's id names nothing bob may see).
    assert_eq!(bob.heartbeat(), TOPIC_AUTHORIZATION_FAILED);
    assert_eq!(bob.fetch(id), (0, UNKNOWN_TOPIC_ID, 0));
    admin.allow(TOPIC, "guarded", DESCRIBE);
    assert_eq!(bob.heartbeat(), 0);
    // Describe but not Read: the partition is refused, nothing is acquired.
    assert_eq!(bob.fetch(id), (0, TOPIC_AUTHORIZATION_FAILED, 0));
    // Read on both: the first fetch makes the group's queue group on the topic with no Create
    // on the group, as Kafka makes a share group's state on first use.
    admin.allow(TOPIC, "guarded", READ);
    assert_eq!(bob.fetch(id), (0, 0, 1));
}
