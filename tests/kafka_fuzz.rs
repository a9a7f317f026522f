//! Hostile Kafka requests: every API and version the broker advertises, built with the
//! `kafka-protocol` encoders, then given hostile counts, lengths, versions and truncations. They
//! go to the decoder directly and to a real server over TCP; nothing may panic or allocate what
//! the wire merely claims (an abort ends this test process, so it fails the suite), and the
//! server must keep serving well-formed requests on other connections.
//!
//! The case counts are small so the suite stays fast; `PROPTEST_CASES=N` runs N of each (see the
//! README's testing section).

mod common;

use common::overwrite;

use common::kafka_wire::*;

use std::io::{Read, Write};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use ringmq::kafka::handlers::{SUPPORTED, prepare};

/// Cases per property: `PROPTEST_CASES` when set, else `default` (a few seconds in all).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A request of `api` with something in every array that matters, so counts sit at several
/// depths for the mutations to hit. Fields a version does not have are left at their defaults.
fn sample(api: ApiKey, version: i16) -> RequestKind {
    match api {
        ApiKey::Produce => RequestKind::Produce(produce_request("fuzz", b"fuzz-value")),
        ApiKey::Fetch => RequestKind::Fetch(fetch_request("fuzz")),
        ApiKey::ListOffsets => RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(topic("fuzz"))
                        .with_partitions(vec![
                            ListOffsetsPartition::default()
                                .with_partition_index(0)
                                .with_timestamp(-1),
                        ]),
                ]),
        ),
        ApiKey::Metadata => {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("fuzz"))),
            ])))
        }
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(1000)
                .with_validate_only(version >= 1)
                .with_topics(vec![
                    CreatableTopic::default()
                        .with_name(topic("fuzz-created"))
                        .with_num_partitions(1)
                        .with_replication_factor(1),
                ]),
        ),
        ApiKey::DeleteTopics if version >= 6 => {
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic("nothing"))),
            ]))
        }
        ApiKey::DeleteTopics => RequestKind::DeleteTopics(
            DeleteTopicsRequest::default().with_topic_names(vec![topic("nothing")]),
        ),
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
        ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
        other => group_sample(other, version),
    }
}

/// `sample` for the group APIs.
fn group_sample(api: ApiKey, version: i16) -> RequestKind {
    match api {
        ApiKey::JoinGroup => RequestKind::JoinGroup(
            JoinGroupRequest::default()
                .with_group_id(group("fuzz-group"))
                .with_session_timeout_ms(6000)
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(Bytes::from_static(b"\0\0\0\0\0\x01\0\x04fuzz\0\0\0\0")),
                ]),
        ),
        ApiKey::SyncGroup => RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group("fuzz-group"))
                .with_assignments(vec![
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_static_str("member"))
                        .with_assignment(Bytes::from_static(b"\0\0\0\0\0\0")),
                ]),
        ),
        ApiKey::OffsetCommit => RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group("fuzz-group"))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![
                    OffsetCommitRequestTopic::default()
                        .with_name(topic("fuzz"))
                        .with_partitions(vec![
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1),
                        ]),
                ]),
        ),
        ApiKey::OffsetFetch if version >= 8 => {
            let topics = vec![
                OffsetFetchRequestTopics::default()
                    .with_name(topic("fuzz"))
                    .with_partition_indexes(vec![0, 1]),
            ];
            let member = group_of_fetch(version);
            RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                member.clone().with_topics(Some(topics)),
                member.with_group_id(group("other")).with_topics(None),
            ]))
        }
        ApiKey::OffsetFetch => RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(group("fuzz-group"))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(topic("fuzz"))
                        .with_partition_indexes(vec![0, 1]),
                ])),
        ),
        ApiKey::DescribeGroups => RequestKind::DescribeGroups(
            DescribeGroupsRequest::default().with_groups(vec![group("fuzz-group"), group("other")]),
        ),
        ApiKey::FindCoordinator => RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("fuzz-group")),
        ),
        ApiKey::Heartbeat => {
            RequestKind::Heartbeat(HeartbeatRequest::default().with_group_id(group("fuzz-group")))
        }
        ApiKey::LeaveGroup => {
            RequestKind::LeaveGroup(LeaveGroupRequest::default().with_group_id(group("fuzz-group")))
        }
        ApiKey::ListGroups => {
            let states = (version >= 4).then(|| vec![StrBytes::from_static_str("Stable")]);
            let types = (version >= 5).then(|| vec![StrBytes::from_static_str("consumer")]);
            RequestKind::ListGroups(
                ListGroupsRequest::default()
                    .with_states_filter(states.unwrap_or_default())
                    .with_types_filter(types.unwrap_or_default()),
            )
        }
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(group("fuzz-group"))
                .with_member_id(StrBytes::from_static_str("fuzz-member"))
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic("fuzz"), topic("other")]))
                .with_server_assignor(Some(StrBytes::from_static_str("uniform")))
                .with_topic_partitions(Some(vec![
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(uuid::Uuid::from_u128(7))
                        .with_partitions(vec![0, 1]),
                ])),
        ),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![group("fuzz-group"), group("other")]),
        ),
        ApiKey::DeleteGroups => RequestKind::DeleteGroups(
            DeleteGroupsRequest::default().with_groups_names(vec![group("fuzz-group"), group("x")]),
        ),
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(group("fuzz-group"))
                .with_topics(vec![
                    OffsetDeleteRequestTopic::default()
                        .with_name(topic("fuzz"))
                        .with_partitions(vec![
                            OffsetDeleteRequestPartition::default().with_partition_index(0),
                        ]),
                ]),
        ),
        ApiKey::DescribeConfigs => {
            RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("fuzz")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("0"))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str("log.dirs")])),
            ]))
        }
        ApiKey::DescribeCluster => RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ApiKey::SaslHandshake => RequestKind::SaslHandshake(
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        ),
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default()
                .with_auth_bytes(bytes::Bytes::from_static(b"\0fuzz\0password")),
        ),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                kafka_protocol::messages::describe_user_scram_credentials_request::UserName::default()
                    .with_name(StrBytes::from_static_str("fuzz")),
            ])),
        ),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::default()
                .with_deletions(vec![
                    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_static_str("fuzz-gone"))
                        .with_mechanism(1),
                ])
                .with_upsertions(vec![
                    kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_static_str("fuzz"))
                        .with_mechanism(2)
                        .with_iterations(4096)
                        .with_salt(bytes::Bytes::from_static(b"salt"))
                        .with_salted_password(bytes::Bytes::from_static(&[7u8; 64])),
                ]),
        ),
        ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(
            DescribeTopicPartitionsRequest::default()
                .with_topics(vec![
                    kafka_protocol::messages::describe_topic_partitions_request::TopicRequest::default()
                        .with_name(topic("fuzz")),
                ])
                .with_response_partition_limit(10)
                .with_cursor(Some(
                    kafka_protocol::messages::describe_topic_partitions_request::Cursor::default()
                        .with_topic_name(topic("fuzz"))
                        .with_partition_index(1),
                )),
        ),
        ApiKey::AlterConfigs => RequestKind::AlterConfigs(
            AlterConfigsRequest::default()
                .with_validate_only(true)
                .with_resources(vec![
                    kafka_protocol::messages::alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("fuzz"))
                        .with_configs(vec![
                            kafka_protocol::messages::alter_configs_request::AlterableConfig::default()
                                .with_name(StrBytes::from_static_str("retention.ms"))
                                .with_value(Some(StrBytes::from_static_str("60000"))),
                        ]),
                ]),
        ),
        ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default()
                .with_validate_only(true)
                .with_resources(vec![
                    kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(StrBytes::from_static_str("fuzz"))
                        .with_configs(vec![
                            kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig::default()
                                .with_name(StrBytes::from_static_str("retention.ms"))
                                .with_config_operation(0)
                                .with_value(Some(StrBytes::from_static_str("60000"))),
                        ]),
                ]),
        ),
        ApiKey::DescribeProducers => RequestKind::DescribeProducers(
            DescribeProducersRequest::default().with_topics(vec![
                kafka_protocol::messages::describe_producers_request::TopicRequest::default()
                    .with_name(topic("fuzz"))
                    .with_partition_indexes(vec![0, 1, -1]),
            ]),
        ),
        ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
            kafka_protocol::messages::create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_pattern_type(3)
                .with_resource_name(StrBytes::from_static_str("fuzz"))
                .with_principal(StrBytes::from_static_str("User:fuzz"))
                .with_host(StrBytes::from_static_str("*"))
                .with_operation(3)
                .with_permission_type(3),
        ])),
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
        ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
            kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(2)
                .with_resource_name_filter(Some(StrBytes::from_static_str("fuzz")))
                .with_pattern_type_filter(3)
                .with_operation(1)
                .with_permission_type(1),
        ])),
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(1000)
                .with_topics(vec![
                    kafka_protocol::messages::delete_records_request::DeleteRecordsTopic::default()
                        .with_name(topic("fuzz"))
                        .with_partitions(vec![
                            kafka_protocol::messages::delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(0)
                                .with_offset(0),
                        ]),
                ]),
        ),
        ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(
            DescribeLogDirsRequest::default().with_topics(Some(vec![
                kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic("fuzz"))
                    .with_partitions(vec![0, 1]),
            ])),
        ),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_validate_only(true)
                .with_topics(vec![
                    CreatePartitionsTopic::default()
                        .with_name(topic("fuzz"))
                        .with_count(2)
                        .with_assignments(Some(vec![
                            CreatePartitionsAssignment::default()
                                .with_broker_ids(vec![BrokerId(0)]),
                        ])),
                ]),
        ),
        ApiKey::ShareGroupHeartbeat => RequestKind::ShareGroupHeartbeat(
            ShareGroupHeartbeatRequest::default()
                .with_group_id(group("fuzz-share"))
                .with_member_id(StrBytes::from_static_str("fuzz-member"))
                .with_subscribed_topic_names(Some(vec![topic("fuzz"), topic("other")])),
        ),
        ApiKey::ShareGroupDescribe => RequestKind::ShareGroupDescribe(
            ShareGroupDescribeRequest::default().with_group_ids(vec![group("fuzz-share")]),
        ),
        ApiKey::ShareFetch => RequestKind::ShareFetch(
            ShareFetchRequest::default()
                .with_group_id(Some(group("fuzz-share")))
                .with_member_id(Some(StrBytes::from_static_str("fuzz-member")))
                .with_share_session_epoch(1)
                .with_max_records(10)
                .with_max_bytes(1 << 20)
                .with_topics(vec![share_fetch_request::FetchTopic::default()
                    .with_topic_id(uuid::Uuid::from_u128(7))
                    .with_partitions(vec![share_fetch_request::FetchPartition::default()
                        .with_acknowledgement_batches(vec![
                            share_fetch_request::AcknowledgementBatch::default()
                                .with_first_offset(0)
                                .with_last_offset(2)
                                .with_acknowledge_types(vec![1, 0, 2]),
                        ])])])
                .with_forgotten_topics_data(vec![share_fetch_request::ForgottenTopic::default()
                    .with_topic_id(uuid::Uuid::from_u128(8))
                    .with_partitions(vec![0])]),
        ),
        ApiKey::ShareAcknowledge => RequestKind::ShareAcknowledge(
            ShareAcknowledgeRequest::default()
                .with_group_id(Some(group("fuzz-share")))
                .with_member_id(Some(StrBytes::from_static_str("fuzz-member")))
                .with_share_session_epoch(1)
                .with_topics(vec![share_acknowledge_request::AcknowledgeTopic::default()
                    .with_topic_id(uuid::Uuid::from_u128(7))
                    .with_partitions(vec![share_acknowledge_request::AcknowledgePartition::default()
                        .with_acknowledgement_batches(vec![
                            share_acknowledge_request::AcknowledgementBatch::default()
                                .with_first_offset(0)
                                .with_last_offset(0)
                                .with_acknowledge_types(vec![3]),
                        ])])]),
        ),
        ApiKey::DescribeShareGroupOffsets => RequestKind::DescribeShareGroupOffsets(
            DescribeShareGroupOffsetsRequest::default().with_groups(vec![
                describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup::default()
                    .with_group_id(group("fuzz-share"))
                    .with_topics(Some(vec![
                        describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic("fuzz"))
                            .with_partitions(vec![0, 1]),
                    ])),
            ]),
        ),
        ApiKey::DeleteShareGroupOffsets => RequestKind::DeleteShareGroupOffsets(
            DeleteShareGroupOffsetsRequest::default()
                .with_group_id(group("fuzz-share"))
                .with_topics(vec![
                    delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic("fuzz")),
                ]),
        ),
        ApiKey::AlterShareGroupOffsets => RequestKind::AlterShareGroupOffsets(
            AlterShareGroupOffsetsRequest::default()
                .with_group_id(group("fuzz-share"))
                .with_topics(vec![
                    alter_share_group_offsets_request::AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic("fuzz"))
                        .with_partitions(vec![
                            alter_share_group_offsets_request::AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(0)
                                .with_start_offset(1),
                        ]),
                ]),
        ),
        other => panic!("no sample for {other:?}: add one when the broker starts serving it"),
    }
}

/// One group of an OffsetFetch v8+, with the KIP-848 member and epoch from v9.
fn group_of_fetch(version: i16) -> OffsetFetchRequestGroup {
    let group = OffsetFetchRequestGroup::default().with_group_id(group("fuzz-group"));
    if version >= 9 {
        return group
            .with_member_id(Some(StrBytes::from_static_str("fuzz-member")))
            .with_member_epoch(3);
    }
    group
}

// ---- the requests of issue 10, each claiming 0x7fffffff elements ----------------------------

/// A request header v1 (api key, version, correlation id, client id "") and `body`, framed.
fn hostile(api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut request = Vec::new();
    request.extend_from_slice(&(api as i16).to_be_bytes());
    request.extend_from_slice(&version.to_be_bytes());
    request.extend_from_slice(&1234i32.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(body);
    framed(&request)
}

const HUGE: [u8; 4] = 0x7fff_ffffu32.to_be_bytes();

/// The frame is refused (closed, or answered with an error) at once, the process lives, and a
/// fresh connection then creates, produces and fetches.
fn assert_refused_and_still_serving(frame: &[u8], name: &'static str) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let decoded = prepare(Bytes::copy_from_slice(&frame[4..]));
    assert!(decoded.is_err(), "{name}: the decoder refuses it");
    let answer = send_raw(&address, frame, Duration::from_secs(10));
    // Closed without an answer: the request could not be decoded, so it has no response form.
    assert!(
        answer.is_empty(),
        "{name}: closed without answer, got {answer:?}"
    );
    assert_serving(&address);
    assert_produce_and_fetch(&address, name);
}

#[test]
fn describe_groups_v0_with_2_pow_31_groups_is_refused() {
    let frame = hostile(ApiKey::DescribeGroups, 0, &HUGE);
    assert!(frame.len() < 25, "a tiny request: {} bytes", frame.len());
    assert_refused_and_still_serving(&frame, "after-describe-groups");
}

#[test]
fn metadata_v1_with_2_pow_31_topics_is_refused() {
    let frame = hostile(ApiKey::Metadata, 1, &HUGE);
    assert_refused_and_still_serving(&frame, "after-metadata");
}

#[test]
fn delete_topics_v1_with_2_pow_31_names_is_refused() {
    let mut body = HUGE.to_vec();
    body.extend_from_slice(&1000i32.to_be_bytes());
    let frame = hostile(ApiKey::DeleteTopics, 1, &body);
    assert_refused_and_still_serving(&frame, "after-delete-topics");
}

#[test]
fn produce_v3_with_2_pow_31_topics_is_refused() {
    let mut body = (-1i16).to_be_bytes().to_vec(); // no transactional id
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&HUGE);
    let frame = hostile(ApiKey::Produce, 3, &body);
    assert_refused_and_still_serving(&frame, "after-produce");
}

#[test]
fn a_string_or_bytes_longer_than_the_frame_is_refused_before_allocating() {
    // CompactString of 2^32-2 bytes (DescribeGroups v5 is flexible: header v2, compact arrays).
    let mut body = vec![0x02]; // one group
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // its name's length + 1
    let mut request = Vec::new();
    request.extend_from_slice(&(ApiKey::DescribeGroups as i16).to_be_bytes());
    request.extend_from_slice(&5i16.to_be_bytes());
    request.extend_from_slice(&9i32.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes()); // client id ""
    request.push(0); // no tagged fields
    request.extend_from_slice(&body);
    assert!(prepare(Bytes::from(request)).is_err());
    // SyncGroup v0: group "g", generation 1, member "m", one assignment whose bytes claim 2 GiB.
    let mut body = Vec::new();
    body.extend_from_slice(&[0, 1, b'g']);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&[0, 1, b'm']);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&[0, 1, b'm']);
    body.extend_from_slice(&HUGE);
    let frame = hostile(ApiKey::SyncGroup, 0, &body);
    assert!(prepare(Bytes::copy_from_slice(&frame[4..])).is_err());
}

// ---- the structured fuzzer --------------------------------------------------------------------

/// One hostile change to an encoded request (header and body).
#[derive(Clone, Debug)]
enum Mutation {
    /// Overwrite 4 bytes: where a count or length sits, it now claims too much (or is negative).
    Int32 {
        at: usize,
        value: i32,
    },
    /// Overwrite 2 bytes: string lengths, versions, api keys.
    Int16 {
        at: usize,
        value: i16,
    },
    /// Overwrite with a long varint: compact counts and lengths.
    Varint {
        at: usize,
        value: u32,
    },
    Byte {
        at: usize,
        value: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Any api version in the header, supported or not.
    Version(i16),
    /// Any api key in the header, known or not.
    ApiKey(i16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let int32 = prop_oneof![
        Just(i32::MAX),
        Just(-1),
        Just(-2),
        Just(i32::MIN),
        Just(0x0100_0000),
        any::<i32>()
    ];
    let int16 = prop_oneof![
        Just(i16::MAX),
        Just(-1),
        Just(-2),
        Just(i16::MIN),
        any::<i16>()
    ];
    let varint = prop_oneof![
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(0x7fff_ffff),
        any::<u32>()
    ];
    let at = 0usize..4096;
    prop_oneof![
        3 => (at.clone(), int32).prop_map(|(at, value)| Mutation::Int32 { at, value }),
        2 => (at.clone(), int16).prop_map(|(at, value)| Mutation::Int16 { at, value }),
        2 => (at.clone(), varint).prop_map(|(at, value)| Mutation::Varint { at, value }),
        1 => (at.clone(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        1 => at.clone().prop_map(|at| Mutation::Truncate { at }),
        1 => (at, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => any::<i16>().prop_map(Mutation::Version),
        1 => any::<i16>().prop_map(Mutation::ApiKey),
    ]
}

fn apply(request: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Int32 { at, value } => overwrite(request, *at, &value.to_be_bytes()),
        Mutation::Int16 { at, value } => overwrite(request, *at, &value.to_be_bytes()),
        Mutation::Varint { at, value } => {
            let mut bytes = Vec::new();
            let mut rest = *value;
            while rest >= 0x80 {
                bytes.push((rest as u8) | 0x80);
                rest >>= 7;
            }
            bytes.push(rest as u8);
            overwrite(request, *at, &bytes);
        }
        Mutation::Byte { at, value } => overwrite(request, *at, &[*value]),
        Mutation::Truncate { at } => request.truncate(at % (request.len() + 1)),
        Mutation::Insert { at, bytes } => {
            let at = at % (request.len() + 1);
            request.splice(at..at, bytes.iter().copied());
        }
        Mutation::Version(version) => overwrite(request, 2, &version.to_be_bytes()),
        Mutation::ApiKey(key) => overwrite(request, 0, &key.to_be_bytes()),
    }
}

/// (api, version, mutations): a request of every advertised API and version, made hostile.
fn hostile_request() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SUPPORTED.len(),
        0i16..16,
        proptest::collection::vec(mutation(), 1..4),
    )
        .prop_map(|(index, version, mutations)| {
            let (api, min, max) = SUPPORTED[index];
            let version = min + version % (max - min + 1);
            let mut request = encode(api, version, 5, &sample(api, version));
            for mutation in &mutations {
                apply(&mut request, mutation);
            }
            request
        })
}

#[test]
fn every_advertised_api_and_version_encodes_and_decodes_unmutated() {
    // The fuzzer's starting points are valid, so its mutations explore near real requests.
    for &(api, min, max) in SUPPORTED {
        for version in min..=max {
            let request = encode(api, version, 5, &sample(api, version));
            assert!(
                prepare(Bytes::from(request)).is_ok(),
                "{api:?} v{version} decodes"
            );
        }
    }
}

#[test]
fn hostile_kafka_requests_never_panic_or_overallocate_the_decoder() {
    let mut runner = TestRunner::new(Config::with_cases(cases(3000)));
    runner
        .run(&hostile_request(), |request| {
            let _ = prepare(Bytes::from(request));
            Ok(())
        })
        .unwrap();
}

#[test]
fn hostile_kafka_requests_over_tcp_leave_the_broker_serving() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let mut runner = TestRunner::new(Config::with_cases(cases(150)));
    runner
        .run(&hostile_request(), |request| {
            // End of input after the request, so the broker closes once it has answered; the
            // wait is short because a mutated fetch may legitimately wait for data first.
            let mut stream = std::net::TcpStream::connect(&address).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let _ = stream.write_all(&framed(&request));
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let _ = stream.read_to_end(&mut Vec::new());
            assert_serving(&address);
            Ok(())
        })
        .unwrap();
    assert_produce_and_fetch(&address, "after-fuzz");
}
