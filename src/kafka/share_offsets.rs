//! Kafka's share-group offset admin (KIP-932): DescribeShareGroupOffsets (each partition's
//! share-partition start offset: the first offset not yet acknowledged or archived, the queue
//! group's settled prefix), DeleteShareGroupOffsets (the group forgets a topic: its queue
//! group there goes, and the next fetch starts again by `share.auto.offset.reset`) and
//! AlterShareGroupOffsets (each named partition's queue group starts again at the offset).
//! Group-wide refusals (the group's rights, members present) answer at the top; a topic's at
//! each of its partitions.

use kafka_protocol::messages::alter_share_group_offsets_response::{
    AlterShareGroupOffsetsResponsePartition, AlterShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic;
use kafka_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup, DescribeShareGroupOffsetsResponsePartition,
    DescribeShareGroupOffsetsResponseTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, AlterShareGroupOffsetsResponse, DeleteShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsResponse, DescribeShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;

use super::consumer_groups::{DESCRIBED_GROUPS_MAX, TopicIds};
use super::errors::{INVALID_REQUEST, code_of};
use super::handlers::topic_name;
use crate::broker::ErrorKind;
use crate::broker::service::{RequestContext, Service};

/// Topics one request may name for one group: each is a trip to every partition's owner.
pub const TOPICS_PER_GROUP_MAX: usize = 1000;
/// Partitions one AlterShareGroupOffsets may name in all: each is a trip to its owner.
pub const ALTERED_PARTITIONS_MAX: usize = 10_000;

/// A topic to describe, and the partitions asked for (None: all).
type Wanted = (String, Option<Vec<i32>>);

pub async fn respond(
    service: &Service,
    ctx: &RequestContext,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    Ok(match request {
        RequestKind::DescribeShareGroupOffsets(request) => {
            ResponseKind::DescribeShareGroupOffsets(describe(service, ctx, request).await)
        }
        RequestKind::DeleteShareGroupOffsets(request) => {
            ResponseKind::DeleteShareGroupOffsets(delete(service, ctx, request).await)
        }
        RequestKind::AlterShareGroupOffsets(request) => {
            ResponseKind::AlterShareGroupOffsets(alter(service, ctx, request).await)
        }
        other => return Err(other),
    })
}

async fn describe(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeShareGroupOffsetsRequest,
) -> DescribeShareGroupOffsetsResponse {
    let ids = TopicIds::new(service, ctx);
    let mut groups = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for asked in request.groups {
        if !seen.insert(asked.group_id.clone()) {
            continue;
        }
        let mut answer =
            DescribeShareGroupOffsetsResponseGroup::default().with_group_id(asked.group_id.clone());
        let group = asked.group_id.0.as_str().to_string();
        // Null topics: every topic the group reads.
        let wanted: Result<Vec<Wanted>, (i16, String)> = match asked.topics {
            _ if seen.len() > DESCRIBED_GROUPS_MAX => Err((
                INVALID_REQUEST,
                format!("at most {DESCRIBED_GROUPS_MAX} groups per request"),
            )),
            Some(topics) if topics.len() > TOPICS_PER_GROUP_MAX => Err((
                INVALID_REQUEST,
                format!("at most {TOPICS_PER_GROUP_MAX} topics per group"),
            )),
            Some(topics) => Ok(topics
                .into_iter()
                .map(|t| (t.topic_name.0.as_str().to_string(), Some(t.partitions)))
                .collect()),
            None => match service.list_queue_groups(ctx).await {
                Ok(all) => Ok(all
                    .into_iter()
                    .filter(|(_, g)| *g == group)
                    .map(|(topic, _)| (topic, None))
                    .collect()),
                Err(error) => Err((code_of(&error), error.message)),
            },
        };
        let wanted = match wanted {
            Ok(wanted) => wanted,
            Err((code, message)) => {
                groups.push(
                    answer
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message))),
                );
                continue;
            }
        };
        for (topic, partitions) in wanted {
            let offsets = service.share_group_offsets(ctx, &group, &topic).await;
            let mut entries = Vec::new();
            match offsets {
                Ok(offsets) => {
                    for (partition, start) in offsets {
                        let index = i32::try_from(partition).unwrap_or(i32::MAX);
                        if partitions.as_ref().is_some_and(|p| !p.contains(&index)) {
                            continue;
                        }
                        let start = start.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1);
                        entries.push(
                            DescribeShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(index)
                                .with_start_offset(start)
                                .with_leader_epoch(0),
                        );
                    }
                }
                Err(error) => {
                    for index in partitions.unwrap_or_default() {
                        entries.push(
                            DescribeShareGroupOffsetsResponsePartition::default()
                                .with_partition_index(index)
                                .with_start_offset(-1)
                                .with_error_code(code_of(&error))
                                .with_error_message(Some(StrBytes::from_string(
                                    error.message.clone(),
                                ))),
                        );
                    }
                }
            }
            answer.topics.push(
                DescribeShareGroupOffsetsResponseTopic::default()
                    .with_topic_id(ids.id(&topic))
                    .with_topic_name(topic_name(&topic))
                    .with_partitions(entries),
            );
        }
        groups.push(answer);
    }
    DescribeShareGroupOffsetsResponse::default().with_groups(groups)
}

async fn delete(
    service: &Service,
    ctx: &RequestContext,
    request: DeleteShareGroupOffsetsRequest,
) -> DeleteShareGroupOffsetsResponse {
    if request.topics.len() > TOPICS_PER_GROUP_MAX {
        return DeleteShareGroupOffsetsResponse::default()
            .with_error_code(INVALID_REQUEST)
            .with_error_message(Some(StrBytes::from_string(format!(
                "at most {TOPICS_PER_GROUP_MAX} topics per request"
            ))));
    }
    let ids = TopicIds::new(service, ctx);
    let group = request.group_id.0.as_str().to_string();
    let mut responses = Vec::new();
    for topic in request.topics {
        let name = topic.topic_name.0.as_str().to_string();
        let mut answer = DeleteShareGroupOffsetsResponseTopic::default()
            .with_topic_id(ids.id(&name))
            .with_topic_name(topic.topic_name);
        if let Err(error) = service.delete_share_group_offsets(ctx, &group, &name).await {
            answer = answer
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)));
        }
        responses.push(answer);
    }
    DeleteShareGroupOffsetsResponse::default().with_responses(responses)
}

async fn alter(
    service: &Service,
    ctx: &RequestContext,
    request: AlterShareGroupOffsetsRequest,
) -> AlterShareGroupOffsetsResponse {
    let refused = |code: i16, message: String| {
        AlterShareGroupOffsetsResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message)))
    };
    let named: usize = request.topics.iter().map(|t| t.partitions.len()).sum();
    if request.topics.len() > TOPICS_PER_GROUP_MAX || named > ALTERED_PARTITIONS_MAX {
        return refused(
            INVALID_REQUEST,
            format!(
                "at most {TOPICS_PER_GROUP_MAX} topics and {ALTERED_PARTITIONS_MAX} partitions per request"
            ),
        );
    }
    let ids = TopicIds::new(service, ctx);
    let group = request.group_id.0.as_str().to_string();
    let mut responses = Vec::new();
    for topic in request.topics {
        let name = topic.topic_name.0.as_str().to_string();
        let mut codes: Vec<(i32, Option<(i16, String)>)> = Vec::new();
        let mut wanted = Vec::new();
        for partition in &topic.partitions {
            let index = partition.partition_index;
            match (u32::try_from(index), u64::try_from(partition.start_offset)) {
                (Ok(p), Ok(offset)) => wanted.push((p, offset)),
                _ => codes.push((
                    index,
                    Some((INVALID_REQUEST, "a negative partition or offset".into())),
                )),
            }
        }
        match service
            .alter_share_group_offsets(ctx, &group, &name, wanted.clone())
            .await
        {
            Ok(results) => {
                for (partition, result) in results {
                    let index = i32::try_from(partition).unwrap_or(i32::MAX);
                    let code = result.err().map(|error| (code_of(&error), error.message));
                    codes.push((index, code));
                }
            }
            Err(error)
                if matches!(
                    error.kind,
                    ErrorKind::GroupAuthorizationFailed
                        | ErrorKind::GroupNotEmpty
                        | ErrorKind::InvalidConfig
                ) =>
            {
                return refused(code_of(&error), error.message);
            }
            Err(error) => {
                for (partition, _) in wanted {
                    let index = i32::try_from(partition).unwrap_or(i32::MAX);
                    codes.push((index, Some((code_of(&error), error.message.clone()))));
                }
            }
        }
        codes.sort_by_key(|(index, _)| *index);
        let partitions = codes
            .into_iter()
            .map(|(index, code)| {
                let answer =
                    AlterShareGroupOffsetsResponsePartition::default().with_partition_index(index);
                match code {
                    Some((code, message)) => answer
                        .with_error_code(code)
                        .with_error_message(Some(StrBytes::from_string(message))),
                    None => answer,
                }
            })
            .collect();
        responses.push(
            AlterShareGroupOffsetsResponseTopic::default()
                .with_topic_id(ids.id(&name))
                .with_topic_name(topic.topic_name)
                .with_partitions(partitions),
        );
    }
    AlterShareGroupOffsetsResponse::default().with_responses(responses)
}
