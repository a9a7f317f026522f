//! Kafka's admin APIs as Kafka tools call them: librdkafka's admin client (a client we did not
//! write) describes a topic's and the broker's settings, and the exact bytes of DescribeConfigs
//! and DescribeCluster answers are checked with requests encoded by hand.

mod common;

use common::kafka_wire::*;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const INVALID_REQUEST: i16 = 42;
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn create_configured_topic(address: &str) {
    let request = CreateTopicsRequest::default().with_topics(vec![
        kafka_protocol::messages::create_topics_request::CreatableTopic::default()
            .with_name(topic("configured"))
            .with_num_partitions(2)
            .with_replication_factor(1)
            .with_configs(vec![
                kafka_protocol::messages::create_topics_request::CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("3600000"))),
            ]),
    ]);
    match call(
        address,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(request),
    ) {
        ResponseKind::CreateTopics(response) => assert_eq!(response.topics[0].error_code, 0),
        other => panic!("CreateTopics answered {other:?}"),
    }
}

#[test]
fn librdkafka_describes_a_topics_and_the_brokers_settings() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_configured_topic(&address);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let described = ringmq::runtime::block_on(admin.describe_configs(
        &[
            ResourceSpecifier::Topic("configured"),
            ResourceSpecifier::Broker(0),
        ],
        &AdminOptions::new(),
    ))
    .unwrap();
    let topic = described[0].as_ref().unwrap();
    let retention = topic.get("retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("3600000"));
    assert!(!retention.is_default && !retention.is_read_only);
    let segment = topic.get("segment.bytes").unwrap();
    assert_eq!(segment.value.as_deref(), Some("1073741824"));
    assert!(segment.is_default);
    let cleanup = topic.get("cleanup.policy").unwrap();
    assert_eq!(cleanup.value.as_deref(), Some("delete"));
    assert!(cleanup.is_read_only);
    let broker = described[1].as_ref().unwrap();
    let dirs = broker.get("log.dirs").unwrap();
    assert_eq!(dirs.value.as_deref(), Some(dir.path().to_str().unwrap()));
    assert!(dirs.is_read_only);
}

#[test]
fn describe_configs_filters_keys_and_answers_unknown_resources_with_kafkas_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_configured_topic(&address);
    let resource = |kind: i8, name: &'static str, keys: Option<Vec<&'static str>>| {
        DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(StrBytes::from_static_str(name))
            .with_configuration_keys(
                keys.map(|keys| keys.into_iter().map(StrBytes::from_static_str).collect()),
            )
    };
    let request = DescribeConfigsRequest::default().with_resources(vec![
        resource(
            2,
            "configured",
            Some(vec!["retention.ms", "segment.ms", "no.such.key"]),
        ),
        resource(2, "configured", None),
        resource(2, "missing", None),
        resource(4, "7", None),
    ]);
    let response = match call(
        &address,
        ApiKey::DescribeConfigs,
        4,
        RequestKind::DescribeConfigs(request),
    ) {
        ResponseKind::DescribeConfigs(response) => response,
        other => panic!("DescribeConfigs answered {other:?}"),
    };
    assert_eq!(
        response.results.len(),
        3,
        "a repeated resource is answered once"
    );
    let configured = &response.results[0];
    assert_eq!(configured.error_code, 0);
    let named: Vec<(String, Option<String>, i8, i8)> = configured
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                c.value.as_ref().map(|v| v.to_string()),
                c.config_source,
                c.config_type,
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (
                "retention.ms".into(),
                Some("3600000".into()),
                SOURCE_DYNAMIC_TOPIC,
                5
            ),
            (
                "segment.ms".into(),
                Some("604800000".into()),
                SOURCE_DEFAULT,
                5
            ),
        ]
    );
    assert_eq!(response.results[1].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(response.results[2].error_code, INVALID_REQUEST);

    let cluster = match call(
        &address,
        ApiKey::DescribeCluster,
        1,
        RequestKind::DescribeCluster(DescribeClusterRequest::default()),
    ) {
        ResponseKind::DescribeCluster(response) => response,
        other => panic!("DescribeCluster answered {other:?}"),
    };
    assert_eq!(cluster.cluster_id.as_str(), "ringmq");
    assert_eq!(cluster.brokers.len(), 1);
    assert_eq!(
        format!(
            "{}:{}",
            cluster.brokers[0].host.as_str(),
            cluster.brokers[0].port
        ),
        address
    );
}

fn create_partitions(
    address: &str,
    topics: Vec<kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic>,
    validate_only: bool,
) -> Vec<(String, i16)> {
    let request = CreatePartitionsRequest::default()
        .with_topics(topics)
        .with_validate_only(validate_only);
    match call(
        address,
        ApiKey::CreatePartitions,
        3,
        RequestKind::CreatePartitions(request),
    ) {
        ResponseKind::CreatePartitions(response) => response
            .results
            .iter()
            .map(|r| (r.name.0.to_string(), r.error_code))
            .collect(),
        other => panic!("CreatePartitions answered {other:?}"),
    }
}

fn partition_count(address: &str, name: &'static str) -> usize {
    let request = MetadataRequest::default().with_topics(Some(vec![
        kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
            .with_name(Some(topic(name))),
    ]));
    match call(address, ApiKey::Metadata, 4, RequestKind::Metadata(request)) {
        ResponseKind::Metadata(response) => response.topics[0].partitions.len(),
        other => panic!("Metadata answered {other:?}"),
    }
}

#[test]
fn create_partitions_grows_topics_as_kafka_and_refuses_what_kafka_refuses() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_configured_topic(&address);
    let grow = |name: &'static str, count: i32| {
        CreatePartitionsTopic::default()
            .with_name(topic(name))
            .with_count(count)
    };
    assert_eq!(
        create_partitions(&address, vec![grow("configured", 4)], true),
        [("configured".to_string(), 0)]
    );
    assert_eq!(
        partition_count(&address, "configured"),
        2,
        "validate_only changes nothing"
    );
    let elsewhere = grow("configured", 6).with_assignments(Some(vec![
        CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)]),
    ]));
    assert_eq!(
        create_partitions(
            &address,
            vec![grow("configured", 2), grow("missing", 3), elsewhere],
            false
        ),
        [
            ("configured".to_string(), 37),
            ("missing".to_string(), UNKNOWN_TOPIC_OR_PARTITION),
            ("configured".to_string(), INVALID_REQUEST),
        ]
    );
    assert_eq!(
        create_partitions(&address, vec![grow("configured", 4)], false),
        [("configured".to_string(), 0)]
    );
    assert_eq!(partition_count(&address, "configured"), 4);

    // librdkafka produces to a new partition at once.
    let producer: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    producer
        .send(
            rdkafka::producer::BaseRecord::<(), _>::to("configured")
                .partition(3)
                .payload("in a new partition"),
        )
        .unwrap();
    use rdkafka::producer::Producer;
    producer.flush(std::time::Duration::from_secs(10)).unwrap();
}

#[test]
fn describe_log_dirs_reports_the_real_sizes_of_the_partitions_asked_for() {
    use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_configured_topic(&address);
    match call(
        &address,
        ApiKey::Produce,
        3,
        RequestKind::Produce(produce_request("configured", b"some bytes on disk")),
    ) {
        ResponseKind::Produce(response) => {
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0)
        }
        other => panic!("Produce answered {other:?}"),
    }
    let describe = |topics: Option<Vec<DescribableLogDirTopic>>| match call(
        &address,
        ApiKey::DescribeLogDirs,
        4,
        RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(topics)),
    ) {
        ResponseKind::DescribeLogDirs(response) => response,
        other => panic!("DescribeLogDirs answered {other:?}"),
    };
    let all = describe(None);
    assert_eq!(all.results.len(), 1);
    let result = &all.results[0];
    assert_eq!(result.log_dir.as_str(), dir.path().to_str().unwrap());
    assert!(result.total_bytes >= result.usable_bytes && result.usable_bytes > 0);
    let sizes: Vec<(String, i32, i64)> = result
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index, p.partition_size))
        })
        .collect();
    let on_disk = |partition: i32| -> i64 {
        std::fs::read_dir(dir.path().join(format!("topics/configured-{partition}")))
            .unwrap()
            .map(|entry| entry.unwrap())
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
            .map(|entry| entry.metadata().unwrap().len() as i64)
            .sum()
    };
    assert_eq!(
        sizes,
        [
            ("configured".to_string(), 0, on_disk(0)),
            ("configured".to_string(), 1, on_disk(1)),
        ]
    );
    assert!(sizes[0].2 > 0, "the produced batch is counted");
    let one = describe(Some(vec![
        DescribableLogDirTopic::default()
            .with_topic(topic("configured"))
            .with_partitions(vec![1, 7]),
    ]));
    let named: Vec<i32> = one.results[0].topics[0]
        .partitions
        .iter()
        .map(|p| p.partition_index)
        .collect();
    assert_eq!(named, [1]);
}

/// CreateTopics refuses what Kafka refuses, entry by entry, and creates the valid entries: a
/// count of 0 or below -1, a replication factor of 0 or below -1, and a name given twice.
#[test]
fn create_topics_refuses_bad_counts_and_repeated_names_entry_by_entry() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    const INVALID_PARTITIONS: i16 = 37;
    const INVALID_REPLICATION_FACTOR: i16 = 38;
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let entry = |name: &'static str, partitions: i32, replication: i16| {
        CreatableTopic::default()
            .with_name(topic(name))
            .with_num_partitions(partitions)
            .with_replication_factor(replication)
    };
    let request = CreateTopicsRequest::default().with_topics(vec![
        entry("minus-two", -2, 1),
        entry("zero", 0, 1),
        entry("zero-copies", 1, 0),
        entry("minus-two-copies", 1, -2),
        entry("twice", 1, 1),
        entry("twice", 2, 1),
        entry("fine", 3, -1),
    ]);
    let codes: Vec<(String, i16)> = match call(
        &address,
        ApiKey::CreateTopics,
        5,
        RequestKind::CreateTopics(request),
    ) {
        ResponseKind::CreateTopics(response) => response
            .topics
            .iter()
            .map(|t| (t.name.to_string(), t.error_code))
            .collect(),
        other => panic!("CreateTopics answered {other:?}"),
    };
    let expected: Vec<(String, i16)> = [
        ("minus-two", INVALID_PARTITIONS),
        ("zero", INVALID_PARTITIONS),
        ("zero-copies", INVALID_REPLICATION_FACTOR),
        ("minus-two-copies", INVALID_REPLICATION_FACTOR),
        ("twice", INVALID_REQUEST),
        ("twice", INVALID_REQUEST),
        ("fine", 0),
    ]
    .iter()
    .map(|(name, code)| (name.to_string(), *code))
    .collect();
    assert_eq!(codes, expected);
    let request = MetadataRequest::default().with_topics(None);
    match call(
        &address,
        ApiKey::Metadata,
        4,
        RequestKind::Metadata(request),
    ) {
        ResponseKind::Metadata(response) => {
            let names: Vec<String> = response
                .topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                .collect();
            assert_eq!(names, vec!["fine".to_string()]);
            assert_eq!(response.topics[0].partitions.len(), 3);
        }
        other => panic!("Metadata answered {other:?}"),
    }
}
