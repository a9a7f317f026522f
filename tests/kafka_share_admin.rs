//! Share-group admin byte for byte: group configs by IncrementalAlterConfigs and
//! DescribeConfigs on the GROUP resource (Kafka's names and bounds, durable across a restart,
//! in force on the next fetch), ListGroups' type filter, DescribeGroups and DeleteGroups of a
//! share group, and Describe/Delete/AlterShareGroupOffsets.

mod common;
mod share_wire;

use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::*;
use share_wire::*;

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

/// AlterShareGroupOffsets of partitions of `name`: (top-level code, each partition's code).
fn alter_offsets(address: &str, name: &'static str, offsets: &[(i32, i64)]) -> (i16, Vec<i16>) {
    use alter_share_group_offsets_request::{
        AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
    };
    let partitions = offsets
        .iter()
        .map(|&(index, offset)| {
            AlterShareGroupOffsetsRequestPartition::default()
                .with_partition_index(index)
                .with_start_offset(offset)
        })
        .collect();
    let request = AlterShareGroupOffsetsRequest::default()
        .with_group_id(group("wire-group"))
        .with_topics(vec![
            AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(topic(name))
                .with_partitions(partitions),
        ]);
    match call(
        address,
        ApiKey::AlterShareGroupOffsets,
        0,
        RequestKind::AlterShareGroupOffsets(request),
    ) {
        ResponseKind::AlterShareGroupOffsets(response) => (
            response.error_code,
            response
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect(),
        ),
        other => panic!("AlterShareGroupOffsets answered {other:?}"),
    }
}

/// The group's start offset on partition 0 of TOPIC.
fn start_offset(address: &str) -> i64 {
    use describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    let request = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group("wire-group"))
            .with_topics(Some(vec![
                DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(topic(TOPIC))
                    .with_partitions(vec![0]),
            ])),
    ]);
    match call(
        address,
        ApiKey::DescribeShareGroupOffsets,
        0,
        RequestKind::DescribeShareGroupOffsets(request),
    ) {
        ResponseKind::DescribeShareGroupOffsets(response) => {
            response.groups[0].topics[0].partitions[0].start_offset
        }
        other => panic!("DescribeShareGroupOffsets answered {other:?}"),
    }
}

#[test]
fn alter_share_group_offsets_starts_partitions_again_at_an_offset() {
    const NON_EMPTY_GROUP: i16 = 68;
    const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
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
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    assert_eq!(
        acquired(&share_fetch(&mut stream, id, 0, vec![])),
        vec![(0, 2, 1)]
    );
    assert_eq!(
        ack_code(&acknowledge(&mut stream, id, 1, vec![ack(0, 2, vec![1])])),
        NONE
    );
    assert_eq!(start_offset(&address), 3);
    // Refused while the group has a member, as Kafka.
    assert_eq!(alter_offsets(&address, TOPIC, &[(0, 1)]).0, NON_EMPTY_GROUP);
    assert_eq!(heartbeat(&address, "member-a", -1).error_code, NONE);
    // Back to 1 (already accepted records delivered again, as fresh), a partition that does
    // not exist and a negative offset each answered alone.
    assert_eq!(
        alter_offsets(&address, TOPIC, &[(0, 1), (4, 0), (-1, 0)]),
        (
            NONE,
            vec![INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION]
        )
    );
    assert_eq!(start_offset(&address), 1);
    assert_eq!(heartbeat(&address, "member-b", 0).error_code, NONE);
    let mut other = std::net::TcpStream::connect(&address).unwrap();
    assert_eq!(
        acquired(&share_fetch_as(&mut other, "member-b", id, 0, vec![])),
        vec![(1, 3, 1)]
    );
    assert_eq!(heartbeat(&address, "member-b", -1).error_code, NONE);
    // Past the log's end: held at its end.
    assert_eq!(
        alter_offsets(&address, TOPIC, &[(0, 100)]),
        (NONE, vec![NONE])
    );
    assert_eq!(start_offset(&address), 6);
    assert_eq!(
        alter_offsets(&address, "no-such-topic", &[(0, 0)]),
        (NONE, vec![UNKNOWN_TOPIC_OR_PARTITION])
    );
}
