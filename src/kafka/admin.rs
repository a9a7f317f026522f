//! Kafka's admin APIs over the broker service: DescribeConfigs (topic and broker settings by
//! Kafka's names, types and sources), DescribeCluster (this one node), CreatePartitions and
//! DescribeLogDirs (the one data directory, with real sizes), and routes DeleteRecords to
//! `delete_records.rs`.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, DescribeClusterRequest,
    DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    DescribeLogDirsRequest, DescribeLogDirsResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{INVALID_REPLICA_ASSIGNMENT, INVALID_REQUEST, NONE, code_of};
use crate::broker::service::{ConfigEntry, ConfigType, RequestContext, Service};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's GROUP config resource (KIP-848, KIP-932): a share group's `share.*` configs.
const RESOURCE_GROUP: i8 = 32;
/// Kafka's ConfigSource values.
const SOURCE_DYNAMIC_TOPIC: i8 = 1;
const SOURCE_STATIC_BROKER: i8 = 4;
const SOURCE_DEFAULT: i8 = 5;
/// Kafka's GROUP_CONFIG source: set on the group itself.
const SOURCE_DYNAMIC_GROUP: i8 = 8;
/// Kafka's cluster id for this node, as Metadata names it.
pub const CLUSTER_ID: &str = "ringmq";
pub const NODE_ID: i32 = 0;

/// Answers an admin request; any other request is handed back.
pub async fn respond(
    service: &Service,
    ctx: &RequestContext,
    request: RequestKind,
    advertised: &super::Advertised,
) -> Result<ResponseKind, RequestKind> {
    Ok(match request {
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(describe_configs(service, ctx, request).await)
        }
        RequestKind::DescribeCluster(request) => {
            ResponseKind::DescribeCluster(describe_cluster(request, advertised))
        }
        RequestKind::CreatePartitions(request) => {
            ResponseKind::CreatePartitions(create_partitions(service, ctx, request).await)
        }
        RequestKind::DescribeLogDirs(request) => {
            ResponseKind::DescribeLogDirs(describe_log_dirs(service, ctx, request).await)
        }
        RequestKind::DeleteRecords(request) => ResponseKind::DeleteRecords(
            super::delete_records::delete_records(service, ctx, request).await,
        ),
        other => return Err(other),
    })
}

fn config_type(config_type: ConfigType) -> i8 {
    match config_type {
        ConfigType::Boolean => 1,
        ConfigType::String => 2,
        ConfigType::Int => 3,
        ConfigType::Long => 5,
    }
}

fn render(entry: ConfigEntry, source_when_set: i8) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_static_str(entry.name))
        .with_value(Some(StrBytes::from_string(entry.value)))
        .with_read_only(entry.read_only)
        .with_config_source(if entry.is_default {
            SOURCE_DEFAULT
        } else {
            source_when_set
        })
        .with_config_type(config_type(entry.config_type))
}

/// A share group's configs, each marked default unless the group sets it.
async fn share_group_configs(
    service: &Service,
    ctx: &RequestContext,
    group: &str,
) -> Result<Vec<ConfigEntry>, crate::broker::BrokerError> {
    let (settings, set) = service.share_group_configs(ctx, group.to_string()).await?;
    Ok(settings
        .entries()
        .into_iter()
        .map(|(name, value)| ConfigEntry {
            name,
            config_type: if name == crate::broker::service::SHARE_GROUP_CONFIGS[0] {
                ConfigType::String
            } else {
                ConfigType::Int
            },
            value,
            read_only: false,
            is_default: !set.contains_key(name),
        })
        .collect())
}

/// Kafka's DescribeConfigs: each resource once, the keys asked for (all when none are named).
pub async fn describe_configs(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    for resource in request.resources {
        if !seen.insert((resource.resource_type, resource.resource_name.clone())) {
            continue;
        }
        let name = resource.resource_name.as_str().to_string();
        let answer = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => service
                .topic_configs(ctx, &name)
                .map(|entries| (entries, SOURCE_DYNAMIC_TOPIC)),
            RESOURCE_BROKER if name.is_empty() || name == NODE_ID.to_string() => service
                .broker_configs(ctx)
                .map(|entries| (entries, SOURCE_STATIC_BROKER)),
            RESOURCE_GROUP => share_group_configs(service, ctx, &name)
                .await
                .map(|entries| (entries, SOURCE_DYNAMIC_GROUP)),
            other => {
                let message = match other {
                    RESOURCE_BROKER => format!("broker {name:?}: this node is {NODE_ID}"),
                    _ => format!("resource type {other} has no settings here"),
                };
                results.push(
                    answer
                        .with_error_code(INVALID_REQUEST)
                        .with_error_message(Some(StrBytes::from_string(message))),
                );
                continue;
            }
        };
        let wanted: Option<std::collections::HashSet<String>> = resource
            .configuration_keys
            .map(|keys| keys.iter().map(|key| key.as_str().to_string()).collect());
        results.push(match entries {
            Ok((entries, source)) => answer.with_error_code(NONE).with_configs(
                entries
                    .into_iter()
                    .filter(|e| wanted.as_ref().is_none_or(|keys| keys.contains(e.name)))
                    .map(|entry| render(entry, source))
                    .collect(),
            ),
            Err(error) => answer
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message))),
        });
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// Kafka's DescribeCluster: one node, which is also the controller.
pub fn describe_cluster(
    _request: DescribeClusterRequest,
    advertised: &super::Advertised,
) -> DescribeClusterResponse {
    let node = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(advertised.host.to_string()))
        .with_port(i32::from(advertised.port));
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_static_str(CLUSTER_ID))
        .with_controller_id(BrokerId(NODE_ID))
        .with_brokers(vec![node])
}

/// Kafka's CreatePartitions: each topic once; grows it to `count` partitions, all on this node
/// (an assignment naming another broker is refused, as a replication factor above 1 is).
pub async fn create_partitions(
    service: &Service,
    ctx: &RequestContext,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    for topic in request.topics {
        let answer = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        if !seen.insert(topic.name.clone()) {
            results.push(
                answer
                    .with_error_code(INVALID_REQUEST)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "the topic is named twice in one request",
                    ))),
            );
            continue;
        }
        let elsewhere = topic.assignments.iter().flatten().any(|assignment| {
            assignment
                .broker_ids
                .iter()
                .any(|broker| broker.0 != NODE_ID)
        });
        if elsewhere {
            results.push(
                answer
                    .with_error_code(INVALID_REPLICA_ASSIGNMENT)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "ringmq is a single node: every partition is on broker 0",
                    ))),
            );
            continue;
        }
        let name = topic.name.0.as_str().to_string();
        // A negative count cannot grow anything: the broker answers INVALID_PARTITIONS.
        let count = u32::try_from(topic.count).unwrap_or(0);
        let outcome = if request.validate_only {
            service.validate_add_partitions(ctx, &name, count)
        } else {
            service.add_partitions(ctx, name, count).await
        };
        results.push(match outcome {
            Ok(()) => answer.with_error_code(NONE),
            Err(error) => answer
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message))),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// Kafka's DescribeLogDirs: the one data directory with its capacity and every partition's size
/// (of the named partitions only, when the request names topics).
pub async fn describe_log_dirs(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let wanted: Option<std::collections::HashSet<(String, i32)>> =
        request.topics.as_ref().map(|topics| {
            topics
                .iter()
                .flat_map(|t| {
                    t.partitions
                        .iter()
                        .map(move |p| (t.topic.0.as_str().to_string(), *p))
                })
                .collect()
        });
    let names = wanted
        .as_ref()
        .map(|wanted| wanted.iter().map(|(topic, _)| topic.clone()).collect());
    let dir = match service.log_dir(ctx, names).await {
        Ok(dir) => dir,
        Err(error) => return DescribeLogDirsResponse::default().with_error_code(code_of(&error)),
    };
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for (topic, partition, size) in dir.partitions {
        let index = i32::try_from(partition).unwrap_or(i32::MAX);
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&(topic.clone(), index)))
        {
            continue;
        }
        let entry = DescribeLogDirsPartition::default()
            .with_partition_index(index)
            .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX));
        match topics.last_mut() {
            Some(last) if last.name.0.as_str() == topic => last.partitions.push(entry),
            _ => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let result = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_string(dir.path))
        .with_topics(topics)
        .with_total_bytes(i64::try_from(dir.total_bytes).unwrap_or(i64::MAX))
        .with_usable_bytes(i64::try_from(dir.usable_bytes).unwrap_or(i64::MAX));
    DescribeLogDirsResponse::default().with_results(vec![result])
}
