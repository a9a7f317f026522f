//! Kafka's group APIs, translated onto the broker service's group operations: the
//! client-assigned protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and committed offsets
//! (OffsetCommit, OffsetFetch), which broker-assigned groups share.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, ListGroupsRequest, ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    RequestKind, ResponseKind,
};
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{GROUP_ID_NOT_FOUND, NONE, code_of};
use super::handlers::bad_partition;
use crate::broker::service::{Committer, JoinRound, RequestContext, Service};

/// Answers a group request; any other request is handed back.
pub async fn respond(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    Ok(match request {
        RequestKind::JoinGroup(request) => {
            ResponseKind::JoinGroup(join(service, ctx, request).await)
        }
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(sync(service, ctx, request).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(heartbeat(service, ctx, request).await)
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(leave(service, ctx, request).await)
        }
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(commit(service, ctx, request).await)
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(fetch_offsets(service, ctx, version, request).await)
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(list(service, ctx, request).await)
        }
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(describe(service, ctx, request).await)
        }
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(delete_groups(service, ctx, request).await)
        }
        RequestKind::OffsetDelete(request) => {
            ResponseKind::OffsetDelete(delete_offsets(service, ctx, request).await)
        }
        other => return Err(other),
    })
}

fn text(bytes: &StrBytes) -> String {
    bytes.as_str().to_string()
}

pub async fn join(
    service: &Service,
    ctx: &RequestContext,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let join = JoinRound {
        group: text(&request.group_id.0),
        member_id: text(&request.member_id),
        client_id: ctx.client_id.clone(),
        instance_id: request.group_instance_id.as_ref().map(text),
        protocol_type: text(&request.protocol_type),
        protocols: request
            .protocols
            .iter()
            .map(|p| (text(&p.name), p.metadata.clone()))
            .collect(),
        session_timeout_ms: u32::try_from(request.session_timeout_ms).unwrap_or(0),
        rebalance_timeout_ms: u32::try_from(request.rebalance_timeout_ms).unwrap_or(0),
    };
    match service.join_round(ctx, join).await {
        Ok(joined) => JoinGroupResponse::default()
            .with_generation_id(i32::try_from(joined.generation).unwrap_or(i32::MAX))
            .with_protocol_type(Some(StrBytes::from_string(joined.protocol_type)))
            .with_protocol_name(Some(StrBytes::from_string(joined.protocol_name)))
            .with_leader(StrBytes::from_string(joined.leader))
            .with_member_id(StrBytes::from_string(joined.member_id))
            .with_members(
                joined
                    .members
                    .into_iter()
                    .map(|(id, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(StrBytes::from_string(id))
                            .with_metadata(metadata)
                    })
                    .collect(),
            ),
        Err(error) => JoinGroupResponse::default()
            .with_error_code(code_of(&error))
            .with_generation_id(-1),
    }
}

pub async fn sync(
    service: &Service,
    ctx: &RequestContext,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let assignments: Vec<(String, bytes::Bytes)> = request
        .assignments
        .iter()
        .map(|a| (text(&a.member_id), a.assignment.clone()))
        .collect();
    let synced = service
        .sync_round(
            ctx,
            text(&request.group_id.0),
            (
                text(&request.member_id),
                request.group_instance_id.as_ref().map(text),
            ),
            request.generation_id,
            assignments,
        )
        .await;
    match synced {
        Ok(synced) => SyncGroupResponse::default()
            .with_protocol_type(Some(StrBytes::from_string(synced.protocol_type)))
            .with_protocol_name(Some(StrBytes::from_string(synced.protocol_name)))
            .with_assignment(synced.assignment),
        Err(error) => SyncGroupResponse::default().with_error_code(code_of(&error)),
    }
}

pub async fn heartbeat(
    service: &Service,
    ctx: &RequestContext,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let result = service
        .round_heartbeat(
            ctx,
            text(&request.group_id.0),
            (
                text(&request.member_id),
                request.group_instance_id.as_ref().map(text),
            ),
            request.generation_id,
        )
        .await;
    HeartbeatResponse::default().with_error_code(result.err().map_or(NONE, |e| code_of(&e)))
}

pub async fn leave(
    service: &Service,
    ctx: &RequestContext,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let mut members: Vec<(String, Option<String>)> = request
        .members
        .iter()
        .map(|m| (text(&m.member_id), m.group_instance_id.as_ref().map(text)))
        .collect();
    if !request.member_id.is_empty() {
        members.push((text(&request.member_id), None));
    }
    let result = service
        .leave_round(ctx, text(&request.group_id.0), members)
        .await;
    LeaveGroupResponse::default().with_error_code(result.err().map_or(NONE, |e| code_of(&e)))
}

pub async fn commit(
    service: &Service,
    ctx: &RequestContext,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let offsets: Vec<(String, u32, u64)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            // A negative partition is answered UNKNOWN_TOPIC_OR_PARTITION below, never stored
            // (clamped, it would have overwritten partition 0's offset).
            topic.partitions.iter().filter_map(move |p| {
                let index = u32::try_from(p.partition_index).ok()?;
                let offset = u64::try_from(p.committed_offset).unwrap_or(0);
                Some((text(&topic.name.0), index, offset))
            })
        })
        .collect();
    let result = service
        .commit_offsets(
            ctx,
            text(&request.group_id.0),
            Committer {
                member_id: text(&request.member_id),
                instance_id: request.group_instance_id.as_ref().map(text),
            },
            i64::from(request.generation_id_or_member_epoch),
            offsets,
        )
        .await;
    let code = result.err().map_or(NONE, |error| code_of(&error));
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let code = if p.partition_index < 0 {
                                code_of(&bad_partition(p.partition_index))
                            } else {
                                code
                            };
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets as OffsetFetch answers them: of the asked partitions (-1 for
/// none), or of every partition with one when `topics` is None.
type FetchedTopics = Vec<(TopicName, Vec<(i32, i64)>)>;

/// Kafka's OffsetFetch: one group (v1-7) or several (v8+, each with the KIP-848 member and
/// epoch at v9, checked in KIP-848 groups).
pub async fn fetch_offsets(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if version < 8 {
        let asked = request.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let (code, topics) = group_offsets(service, ctx, &request.group_id, None, asked).await;
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, offset)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(StrBytes::from_static_str("")))
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default()
            .with_error_code(code)
            .with_topics(topics);
    }
    let mut groups = Vec::with_capacity(request.groups.len());
    for group in request.groups {
        let member = group
            .member_id
            .as_ref()
            .filter(|id| !id.is_empty())
            .map(|id| (text(id), group.member_epoch));
        let asked = group.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name, t.partition_indexes))
                .collect()
        });
        let (code, topics) = group_offsets(service, ctx, &group.group_id, member, asked).await;
        let topics = topics
            .into_iter()
            .map(|(name, partitions)| {
                OffsetFetchResponseTopics::default()
                    .with_name(name)
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(index, offset)| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(index)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(-1)
                                    .with_metadata(Some(StrBytes::from_static_str("")))
                            })
                            .collect(),
                    )
            })
            .collect();
        groups.push(
            OffsetFetchResponseGroup::default()
                .with_group_id(group.group_id)
                .with_error_code(code)
                .with_topics(topics),
        );
    }
    OffsetFetchResponse::default().with_groups(groups)
}

/// One group's part of an OffsetFetch: its error code and its topics.
async fn group_offsets(
    service: &Service,
    ctx: &RequestContext,
    group: &GroupId,
    member: Option<(String, i32)>,
    asked: Option<Vec<(TopicName, Vec<i32>)>>,
) -> (i16, FetchedTopics) {
    let name = text(&group.0);
    if let Some((member_id, epoch)) = member
        && let Err(error) = service
            .check_member_epoch(ctx, name.clone(), member_id, epoch)
            .await
    {
        return (code_of(&error), Vec::new());
    }
    let committed = match service.committed_offsets(ctx, name, Vec::new()).await {
        Ok(committed) => committed,
        Err(error) => return (code_of(&error), Vec::new()),
    };
    // A map, not a scan per asked partition: a request may ask for millions.
    let by_partition: std::collections::HashMap<(&str, u32), u64> = committed
        .iter()
        .map(|(t, p, offset)| ((t.as_str(), *p), *offset))
        .collect();
    let offset_of = |topic: &str, partition: i32| {
        u32::try_from(partition)
            .ok()
            .and_then(|p| by_partition.get(&(topic, p)))
            .map_or(-1, |offset| i64::try_from(*offset).unwrap_or(i64::MAX))
    };
    let topics = match asked {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let offsets = partitions
                    .iter()
                    .map(|p| (*p, offset_of(topic.0.as_str(), *p)))
                    .collect();
                (topic, offsets)
            })
            .collect(),
        None => {
            let mut names: Vec<&String> = committed.iter().map(|(t, _, _)| t).collect();
            names.dedup();
            names
                .into_iter()
                .map(|name| {
                    let offsets = committed
                        .iter()
                        .filter(|(t, _, _)| t == name)
                        .map(|(_, p, _)| {
                            let index = i32::try_from(*p).unwrap_or(i32::MAX);
                            (index, offset_of(name, index))
                        })
                        .collect();
                    (TopicName(StrBytes::from_string(name.clone())), offsets)
                })
                .collect()
        }
    };
    (NONE, topics)
}

/// Every group of every coordinator shard, of the asked states (v4+) and types (v5+; classic
/// or consumer), each matched without regard to case, as Kafka does.
pub async fn list(
    service: &Service,
    ctx: &RequestContext,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let listed = match service.list_groups_for_kafka(ctx).await {
        Ok(listed) => listed,
        Err(error) => return ListGroupsResponse::default().with_error_code(code_of(&error)),
    };
    let wanted = |filter: &[StrBytes], value: &str| {
        filter.is_empty() || filter.iter().any(|f| f.eq_ignore_ascii_case(value))
    };
    let shares = match service.list_share_groups(ctx).await {
        Ok(shares) => shares,
        Err(error) => return ListGroupsResponse::default().with_error_code(code_of(&error)),
    };
    // Share groups are of type and protocol type "share", as Kafka 4.x lists them.
    let shares = shares
        .into_iter()
        .map(|(name, state)| (name, "share".to_string(), state, "share"));
    let groups = listed
        .into_iter()
        .map(|g| (g.name, g.protocol_type, g.state, g.group_type))
        .chain(shares)
        .filter(|(_, _, state, _)| wanted(&request.states_filter, state))
        .filter(|(_, _, _, kind)| wanted(&request.types_filter, kind))
        .map(|(name, protocol_type, state, kind)| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(name)))
                .with_protocol_type(StrBytes::from_string(protocol_type))
                .with_group_state(StrBytes::from_static_str(state))
                .with_group_type(StrBytes::from_static_str(kind))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut described = Vec::new();
    // Each group once: its members' metadata must not be copied into the answer once per
    // repetition of its name in the request.
    let mut seen = std::collections::HashSet::new();
    for group_id in request.groups {
        if !seen.insert(group_id.clone()) {
            continue;
        }
        // A share group is not a classic group: Kafka 4.x answers GROUP_ID_NOT_FOUND (with
        // no message: v0-v5 have no field for one).
        if service
            .is_share_group(ctx, group_id.0.as_str())
            .await
            .unwrap_or(false)
        {
            described.push(
                DescribedGroup::default()
                    .with_group_id(group_id.clone())
                    .with_group_state(StrBytes::from_static_str("Dead"))
                    .with_error_code(GROUP_ID_NOT_FOUND),
            );
            continue;
        }
        let view = service
            .describe_group_for_kafka(ctx, text(&group_id.0))
            .await;
        described.push(match view {
            Ok(view) => DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(StrBytes::from_static_str(view.state))
                .with_protocol_type(StrBytes::from_string(view.protocol_type))
                .with_protocol_data(StrBytes::from_string(view.protocol_name))
                .with_members(
                    view.members
                        .into_iter()
                        .map(|member| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(member.member_id))
                                .with_client_id(StrBytes::from_string(member.client_id))
                                .with_client_host(StrBytes::from_static_str("/127.0.0.1"))
                                .with_member_metadata(member.metadata)
                                .with_member_assignment(member.assignment)
                        })
                        .collect(),
                ),
            Err(error) => DescribedGroup::default()
                .with_group_id(group_id)
                .with_error_code(code_of(&error)),
        });
    }
    DescribeGroupsResponse::default().with_groups(described)
}

/// Kafka's DeleteGroups: each named group once, deleted with its offsets when it has no
/// members.
pub async fn delete_groups(
    service: &Service,
    ctx: &RequestContext,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut seen = std::collections::HashSet::new();
    let mut results = Vec::new();
    for group_id in request.groups_names {
        if !seen.insert(group_id.clone()) {
            continue;
        }
        let deleted = match service.is_share_group(ctx, group_id.0.as_str()).await {
            Ok(true) => service.delete_share_group(ctx, text(&group_id.0)).await,
            _ => service.delete_group(ctx, text(&group_id.0)).await,
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(group_id)
                .with_error_code(deleted.err().map_or(NONE, |e| code_of(&e))),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Kafka's OffsetDelete: a group's committed offsets of some partitions, each refused while
/// the group's members consume its topic.
pub async fn delete_offsets(
    service: &Service,
    ctx: &RequestContext,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, u32)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().filter_map(move |p| {
                Some((text(&topic.name.0), u32::try_from(p.partition_index).ok()?))
            })
        })
        .collect();
    let outcomes = match service
        .delete_offsets(ctx, text(&request.group_id.0), partitions)
        .await
    {
        Ok(outcomes) => outcomes,
        Err(error) => return OffsetDeleteResponse::default().with_error_code(code_of(&error)),
    };
    let by_partition: std::collections::HashMap<(&str, u32), i16> = outcomes
        .iter()
        .map(|((topic, partition), error)| {
            let code = error.as_ref().map_or(NONE, code_of);
            ((topic.as_str(), *partition), code)
        })
        .collect();
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = text(&topic.name.0);
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = match u32::try_from(p.partition_index) {
                        Ok(index) => by_partition
                            .get(&(name.as_str(), index))
                            .copied()
                            .unwrap_or(NONE),
                        Err(_) => code_of(&bad_partition(p.partition_index)),
                    };
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
