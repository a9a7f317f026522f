//! Kafka's Metadata: this node as the only broker and the leader of every partition, and the
//! topics asked for, created first when the request allows it (`allow_auto_topic_creation`,
//! v4+; always for v0-3) and the broker's `auto_create_topics` is on, as Kafka's broker does
//! (`KafkaApis.getTopicMetadata` with `auto.create.topics.enable`):
//!
//! - each name is answered once, however often the request repeats it;
//! - an unknown topic with an invalid name is INVALID_TOPIC_EXCEPTION, never created;
//! - a topic created here is described at once, with its partitions (Kafka creates in the
//!   background and answers LEADER_NOT_AVAILABLE until the client asks again);
//! - at most `AUTO_CREATED_PER_REQUEST_MAX` creations are tried per request (each one is a
//!   durable metadata write on shard 0); further unknown topics get LEADER_NOT_AVAILABLE, which
//!   clients retry, as they do while Kafka creates a topic. `topics_max` bounds them all;
//! - every topic carries its id (v10+), and a topic asked for by id alone (as KIP-848
//!   consumers do for their assignment) is answered by that id: UNKNOWN_TOPIC_ID when no topic
//!   has it.

use std::collections::{HashMap, HashSet};

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

use super::errors::{LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION, code_of};
use uuid::Uuid;

use super::handlers::{NODE_ID, topic_name};
use crate::broker::service::{RequestContext, Service, TopicInfo};

/// Topic creations one Metadata or Produce request may cause.
pub const AUTO_CREATED_PER_REQUEST_MAX: usize = 32;

/// Kafka's code for a topic id no topic has.
const UNKNOWN_TOPIC_ID: i16 = 100;

/// A topic asked for: by name, or by id alone.
enum Asked {
    Name(String),
    Id(Uuid),
}

/// Each name or id once, in the request's order (a request repeating one name a million times
/// must not cost a million lookups and answers); None for every topic: a null list (v1+), or
/// an empty one in v0, which had no null.
fn distinct_names(version: i16, request: &MetadataRequest) -> Option<Vec<Asked>> {
    if version == 0 && request.topics.as_ref().is_some_and(Vec::is_empty) {
        return None;
    }
    request.topics.as_ref().map(|topics| {
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        topics
            .iter()
            .filter_map(|t| match &t.name {
                Some(name) => names
                    .insert(name.0.as_str())
                    .then(|| Asked::Name(name.0.as_str().to_string())),
                None if !t.topic_id.is_nil() => {
                    ids.insert(t.topic_id).then_some(Asked::Id(t.topic_id))
                }
                None => None,
            })
            .collect()
    })
}

fn described(name: &str, id: [u8; 16], partitions: u32) -> MetadataResponseTopic {
    let partition = |index: u32| {
        MetadataResponsePartition::default()
            .with_partition_index(index as i32)
            .with_leader_id(BrokerId(NODE_ID))
            .with_replica_nodes(vec![BrokerId(NODE_ID)])
            .with_isr_nodes(vec![BrokerId(NODE_ID)])
    };
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(name)))
        .with_topic_id(Uuid::from_bytes(id))
        .with_partitions((0..partitions).map(partition).collect())
}

fn refused(name: &str, error_code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(error_code)
        .with_name(Some(topic_name(name)))
}

/// The code for a name that auto-creation refused. A broker limit (`topics_max`) leaves the
/// topic simply unknown, the answer Kafka's clients handle best; the operator reads why in the
/// log. Other refusals (an invalid name, a failed creation) keep their own code.
fn not_created(name: &str, error: &crate::broker::BrokerError) -> i16 {
    if error.kind == crate::broker::ErrorKind::ResourceLimit {
        tracing::warn!(topic = name, "not auto-creating: {}", error.message);
        code_of(&crate::broker::BrokerError::unknown_topic(name))
    } else {
        code_of(error)
    }
}

pub async fn metadata(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: MetadataRequest,
    advertised: &super::Advertised,
) -> MetadataResponse {
    let names = distinct_names(version, &request);
    let known = service.topics(ctx);
    let topics = match names {
        None => known
            .iter()
            .map(|t| described(&t.name, t.id, t.partitions))
            .collect(),
        Some(asked) => {
            let by_name: HashMap<&str, &TopicInfo> =
                known.iter().map(|t| (t.name.as_str(), t)).collect();
            let by_id: HashMap<Uuid, &TopicInfo> =
                known.iter().map(|t| (Uuid::from_bytes(t.id), t)).collect();
            let mut creations = 0;
            let mut topics = Vec::with_capacity(asked.len());
            for asked in &asked {
                let name = match asked {
                    Asked::Name(name) => name,
                    Asked::Id(id) => {
                        topics.push(match by_id.get(id) {
                            Some(t) => described(&t.name, t.id, t.partitions),
                            None => MetadataResponseTopic::default()
                                .with_error_code(UNKNOWN_TOPIC_ID)
                                .with_topic_id(*id),
                        });
                        continue;
                    }
                };
                if let Some(t) = by_name.get(name.as_str()) {
                    topics.push(described(name, t.id, t.partitions));
                    continue;
                }
                let answer = if !request.allow_auto_topic_creation {
                    // Kafka still says which names could never exist.
                    match crate::broker::service::validate_topic_name(name) {
                        Ok(()) => refused(name, UNKNOWN_TOPIC_OR_PARTITION),
                        Err(error) => refused(name, code_of(&error)),
                    }
                } else if let Err(error) = service.check_auto_create(ctx, name) {
                    refused(name, not_created(name, &error))
                } else if creations >= AUTO_CREATED_PER_REQUEST_MAX {
                    refused(name, LEADER_NOT_AVAILABLE)
                } else {
                    creations += 1;
                    match service.ensure_topic(ctx, name).await {
                        Ok(info) => described(name, info.id, info.partitions),
                        Err(error) => refused(name, not_created(name, &error)),
                    }
                };
                topics.push(answer);
            }
            topics
        }
    };
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(advertised.host.to_string()))
        .with_port(i32::from(advertised.port));
    MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_cluster_id(Some(StrBytes::from_static_str("ringmq")))
        .with_controller_id(BrokerId(NODE_ID))
        .with_topics(topics)
}
