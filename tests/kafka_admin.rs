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

/// DescribeTopicPartitions (KIP-966): topics in name order, pages of at most the asked number
/// of partitions, a cursor to the next page, and unknown names answered as such.
#[test]
fn describe_topic_partitions_pages_through_topics_with_a_cursor() {
    use kafka_protocol::messages::describe_topic_partitions_request::{Cursor, TopicRequest};
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    for (name, partitions) in [("b-topic", 3), ("a-topic", 2), ("c-topic", 1)] {
        let request = CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
        call(
            &address,
            ApiKey::CreateTopics,
            5,
            RequestKind::CreateTopics(request),
        );
    }
    // (topic, partitions) of each page, and the cursor after it.
    let page = |cursor: Option<(&'static str, i32)>, names: &[&'static str]| {
        let request = DescribeTopicPartitionsRequest::default()
            .with_topics(
                names
                    .iter()
                    .map(|n| TopicRequest::default().with_name(topic(n)))
                    .collect(),
            )
            .with_response_partition_limit(2)
            .with_cursor(cursor.map(|(name, index)| {
                Cursor::default()
                    .with_topic_name(topic(name))
                    .with_partition_index(index)
            }));
        match call(
            &address,
            ApiKey::DescribeTopicPartitions,
            0,
            RequestKind::DescribeTopicPartitions(request),
        ) {
            ResponseKind::DescribeTopicPartitions(response) => {
                let topics: Vec<(String, i16, Vec<i32>)> = response
                    .topics
                    .iter()
                    .map(|t| {
                        let name = t.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
                        (
                            name,
                            t.error_code,
                            t.partitions.iter().map(|p| p.partition_index).collect(),
                        )
                    })
                    .collect();
                let next = response
                    .next_cursor
                    .map(|c| (c.topic_name.to_string(), c.partition_index));
                (topics, next)
            }
            other => panic!("DescribeTopicPartitions answered {other:?}"),
        }
    };
    let s = |text: &str| text.to_string();
    assert_eq!(
        page(None, &[]),
        (vec![(s("a-topic"), 0, vec![0, 1])], Some((s("b-topic"), 0)))
    );
    assert_eq!(
        page(Some(("b-topic", 0)), &[]),
        (vec![(s("b-topic"), 0, vec![0, 1])], Some((s("b-topic"), 2)))
    );
    assert_eq!(
        page(Some(("b-topic", 2)), &[]),
        (
            vec![(s("b-topic"), 0, vec![2]), (s("c-topic"), 0, vec![0])],
            None
        )
    );
    assert_eq!(
        page(None, &["c-topic", "nope"]),
        (
            vec![
                (s("c-topic"), 0, vec![0]),
                (s("nope"), UNKNOWN_TOPIC_OR_PARTITION, vec![])
            ],
            None
        )
    );
}

/// DescribeProducers after an idempotent librdkafka producer wrote 10 records to partition 0:
/// one producer, its epoch and last sequence; an unknown partition answered as such.
#[test]
fn describe_producers_shows_an_idempotent_librdkafka_producer() {
    use kafka_protocol::messages::describe_producers_request::TopicRequest;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_configured_topic(&address);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for n in 0..10 {
        let value = format!("v{n}");
        producer
            .send(
                BaseRecord::<(), _>::to("configured")
                    .partition(0)
                    .payload(&value),
            )
            .unwrap();
    }
    producer.flush(std::time::Duration::from_secs(30)).unwrap();
    let request = DescribeProducersRequest::default().with_topics(vec![
        TopicRequest::default()
            .with_name(topic("configured"))
            .with_partition_indexes(vec![0, 1, 7]),
    ]);
    match call(
        &address,
        ApiKey::DescribeProducers,
        0,
        RequestKind::DescribeProducers(request),
    ) {
        ResponseKind::DescribeProducers(response) => {
            let partitions = &response.topics[0].partitions;
            assert_eq!(partitions.len(), 3);
            let first = &partitions[0];
            assert_eq!(first.error_code, 0);
            assert_eq!(first.active_producers.len(), 1, "{first:?}");
            let state = &first.active_producers[0];
            assert!(state.producer_id.0 >= 0);
            assert_eq!((state.producer_epoch, state.last_sequence), (0, 9));
            assert!(state.last_timestamp > 0);
            assert_eq!(
                (state.coordinator_epoch, state.current_txn_start_offset),
                (-1, -1)
            );
            assert_eq!(
                (
                    partitions[1].error_code,
                    partitions[1].active_producers.len()
                ),
                (0, 0)
            );
            assert_eq!(partitions[2].error_code, UNKNOWN_TOPIC_OR_PARTITION);
        }
        other => panic!("DescribeProducers answered {other:?}"),
    }
}

/// IncrementalAlterConfigs and AlterConfigs change a topic's settings live, durably, and as
/// Kafka refuses what it refuses; librdkafka's AdminClient (AlterConfigs) replaces the set.
#[test]
fn topic_settings_change_live_survive_a_restart_and_revert() {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use rdkafka::admin::{AlterConfig, ResourceSpecifier};
    const INVALID_CONFIG: i16 = 40;
    const MESSAGE_TOO_LARGE: i16 = 10;
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, address) = kafka_broker(dir.path());
    create_configured_topic(&address);
    // (resource type, name, [(setting, operation, value)]) per resource.
    type Changes = Vec<(
        i8,
        &'static str,
        Vec<(&'static str, i8, Option<&'static str>)>,
    )>;
    let change = |address: &str, resources: Changes, validate_only: bool| {
        let resources = resources
            .into_iter()
            .map(|(kind, name, configs)| {
                AlterConfigsResource::default()
                    .with_resource_type(kind)
                    .with_resource_name(StrBytes::from_static_str(name))
                    .with_configs(
                        configs
                            .into_iter()
                            .map(|(key, operation, value)| {
                                AlterableConfig::default()
                                    .with_name(StrBytes::from_static_str(key))
                                    .with_config_operation(operation)
                                    .with_value(value.map(StrBytes::from_static_str))
                            })
                            .collect(),
                    )
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default()
            .with_resources(resources)
            .with_validate_only(validate_only);
        match call(
            address,
            ApiKey::IncrementalAlterConfigs,
            1,
            RequestKind::IncrementalAlterConfigs(request),
        ) {
            ResponseKind::IncrementalAlterConfigs(response) => response
                .responses
                .iter()
                .map(|r| r.error_code)
                .collect::<Vec<_>>(),
            other => panic!("IncrementalAlterConfigs answered {other:?}"),
        }
    };
    let setting = |address: &str, key: &'static str| {
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("configured"))
                .with_configuration_keys(Some(vec![StrBytes::from_static_str(key)])),
        ]);
        match call(
            address,
            ApiKey::DescribeConfigs,
            4,
            RequestKind::DescribeConfigs(request),
        ) {
            ResponseKind::DescribeConfigs(response) => {
                let entry = &response.results[0].configs[0];
                (
                    entry
                        .value
                        .as_ref()
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                    entry.config_source,
                )
            }
            other => panic!("DescribeConfigs answered {other:?}"),
        }
    };
    let produce_bytes = |address: &str, bytes: usize| {
        let partition = kafka_protocol::messages::produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(batch(&vec![b'x'; bytes])));
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                kafka_protocol::messages::produce_request::TopicProduceData::default()
                    .with_name(topic("configured"))
                    .with_partition_data(vec![partition]),
            ]);
        match call(address, ApiKey::Produce, 8, RequestKind::Produce(request)) {
            ResponseKind::Produce(response) => {
                response.responses[0].partition_responses[0].error_code
            }
            other => panic!("Produce answered {other:?}"),
        }
    };
    assert_eq!(produce_bytes(&address, 3000), 0);
    // validate_only changes nothing; a real SET is live at once.
    assert_eq!(
        change(
            &address,
            vec![(
                2,
                "configured",
                vec![("max.message.bytes", 0, Some("2000"))]
            )],
            true
        ),
        [0]
    );
    assert_eq!(produce_bytes(&address, 3000), 0);
    assert_eq!(
        change(
            &address,
            vec![(
                2,
                "configured",
                vec![("max.message.bytes", 0, Some("2000"))]
            )],
            false
        ),
        [0]
    );
    assert_eq!(produce_bytes(&address, 3000), MESSAGE_TOO_LARGE);
    assert_eq!(
        setting(&address, "max.message.bytes"),
        ("2000".to_string(), SOURCE_DYNAMIC_TOPIC)
    );
    // Refusals, each for its own resource.
    let refused = change(
        &address,
        vec![
            (
                2,
                "configured",
                vec![("cleanup.policy", 0, Some("compact"))],
            ),
            (2, "missing-topic", vec![("retention.ms", 0, Some("1000"))]),
            (2, "twice", vec![]),
            (2, "twice", vec![]),
            (4, "0", vec![("log.retention.ms", 0, Some("1000"))]),
        ],
        false,
    );
    assert_eq!(
        refused,
        [
            INVALID_CONFIG,
            UNKNOWN_TOPIC_OR_PARTITION,
            INVALID_REQUEST,
            INVALID_REQUEST,
            INVALID_REQUEST
        ]
    );
    assert_eq!(
        change(
            &address,
            vec![(2, "configured", vec![("no.such.setting", 0, Some("1"))])],
            false
        ),
        [INVALID_CONFIG]
    );
    assert_eq!(
        change(
            &address,
            vec![(2, "configured", vec![("retention.ms", 2, Some("1"))])],
            false
        ),
        [INVALID_CONFIG]
    );
    // The change survives a restart; DELETE reverts to the default.
    broker.restart();
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    assert_eq!(
        setting(&address, "max.message.bytes"),
        ("2000".to_string(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(produce_bytes(&address, 3000), MESSAGE_TOO_LARGE);
    assert_eq!(
        change(
            &address,
            vec![(2, "configured", vec![("max.message.bytes", 1, None)])],
            false
        ),
        [0]
    );
    assert_eq!(setting(&address, "max.message.bytes").1, SOURCE_DEFAULT);
    assert_eq!(produce_bytes(&address, 3000), 0);
    // librdkafka's alter_configs (AlterConfigs) replaces the whole set: retention.ms as given,
    // and the retention.ms of 3600000 set at creation is gone with everything not named.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let alter = AlterConfig::new(ResourceSpecifier::Topic("configured")).set("segment.ms", "60000");
    let results =
        ringmq::runtime::block_on(admin.alter_configs(&[alter], &AdminOptions::new())).unwrap();
    assert!(results[0].is_ok(), "{results:?}");
    assert_eq!(
        setting(&address, "segment.ms"),
        ("60000".to_string(), SOURCE_DYNAMIC_TOPIC)
    );
    assert_eq!(setting(&address, "retention.ms").1, SOURCE_DEFAULT);
}
