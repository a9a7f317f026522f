//! Kafka's DescribeTopicPartitions (KIP-966) and DescribeProducers: what is known of a topic's
//! partitions. DescribeTopicPartitions: topics and their partitions, paged. Topics go
//! in name order (all of them, or those named); an answer holds at most
//! `response_partition_limit` partitions (and never more than `PARTITIONS_PER_ANSWER_MAX`), and
//! a cursor (topic, partition) says where the next page starts. One node leads every partition,
//! so every replica list is [0] and no leader is ever ineligible.

use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
};
use uuid::Uuid;

use super::errors::{UNKNOWN_TOPIC_OR_PARTITION, code_of};
use super::handlers::{NODE_ID, topic_name};
use crate::broker::service::{RequestContext, Service};

/// The most partitions one answer holds, whatever the request asks (Kafka's
/// `max.request.partition.size.limit`).
pub const PARTITIONS_PER_ANSWER_MAX: usize = 2000;
/// Kafka's "authorized operations were not asked for".
const OPERATIONS_NOT_ASKED: i32 = i32::MIN;

pub fn describe(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let known = service.topics(ctx);
    let mut wanted: Vec<String> = if request.topics.is_empty() {
        known.iter().map(|topic| topic.name.clone()).collect()
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    wanted.sort();
    wanted.dedup();
    let (start_topic, start_partition) = match &request.cursor {
        Some(cursor) => (
            cursor.topic_name.0.to_string(),
            u32::try_from(cursor.partition_index).unwrap_or(0),
        ),
        None => (String::new(), 0),
    };
    let limit = usize::try_from(request.response_partition_limit)
        .unwrap_or(0)
        .clamp(1, PARTITIONS_PER_ANSWER_MAX);
    let mut left = limit;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in wanted.iter().filter(|name| **name >= start_topic) {
        let first = if *name == start_topic {
            start_partition
        } else {
            0
        };
        let Some(topic) = known.iter().find(|topic| topic.name == *name) else {
            let error = match service.topic(ctx, name) {
                Err(error) => code_of(&error),
                Ok(_) => UNKNOWN_TOPIC_OR_PARTITION,
            };
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(error)
                    .with_name(Some(topic_name(name)))
                    .with_topic_authorized_operations(OPERATIONS_NOT_ASKED),
            );
            continue;
        };
        if left == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(first as i32),
            );
            break;
        }
        let last = topic.partitions.min(first.saturating_add(left as u32));
        let partitions: Vec<_> = (first..last).map(partition).collect();
        left -= partitions.len();
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(name)))
                .with_topic_id(Uuid::from_bytes(topic.id))
                .with_partitions(partitions)
                .with_topic_authorized_operations(OPERATIONS_NOT_ASKED),
        );
        if last < topic.partitions {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(last as i32),
            );
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}

fn partition(index: u32) -> DescribeTopicPartitionsResponsePartition {
    DescribeTopicPartitionsResponsePartition::default()
        .with_partition_index(index as i32)
        .with_leader_id(BrokerId(NODE_ID))
        .with_leader_epoch(0)
        .with_replica_nodes(vec![BrokerId(NODE_ID)])
        .with_isr_nodes(vec![BrokerId(NODE_ID)])
        .with_eligible_leader_replicas(Some(Vec::new()))
        .with_last_known_elr(Some(Vec::new()))
}

/// Kafka's DescribeProducers: for each partition asked, the idempotent producers its log
/// remembers (no transactions here: coordinator epoch -1, no open transaction). Bounded by the
/// request: one answer per distinct partition it names.
pub async fn producers(
    service: &Service,
    ctx: &RequestContext,
    request: kafka_protocol::messages::DescribeProducersRequest,
) -> kafka_protocol::messages::DescribeProducersResponse {
    use kafka_protocol::messages::ProducerId;
    use kafka_protocol::messages::describe_producers_response::{
        PartitionResponse, ProducerState, TopicResponse,
    };
    use kafka_protocol::protocol::StrBytes;
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let mut seen = std::collections::HashSet::new();
        let mut partitions = Vec::new();
        for index in topic
            .partition_indexes
            .into_iter()
            .filter(|i| seen.insert(*i))
        {
            let answer = PartitionResponse::default().with_partition_index(index);
            let found = match u32::try_from(index) {
                Ok(partition) => {
                    service
                        .partition_producers(ctx, &topic.name.0, partition)
                        .await
                }
                Err(_) => Err(super::handlers::bad_partition(index)),
            };
            partitions.push(match found {
                Ok(producers) => answer.with_active_producers(
                    producers
                        .into_iter()
                        .map(|producer| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(producer.producer_id))
                                .with_producer_epoch(i32::from(producer.epoch))
                                .with_last_sequence(producer.last_sequence)
                                .with_last_timestamp(producer.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(-1)
                        })
                        .collect(),
                ),
                Err(error) => answer
                    .with_error_code(code_of(&error))
                    .with_error_message(Some(StrBytes::from_string(error.message))),
            });
        }
        topics.push(
            TopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    kafka_protocol::messages::DescribeProducersResponse::default().with_topics(topics)
}
