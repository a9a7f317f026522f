//! Kafka's group APIs, translated onto the broker's group coordinator: the client-assigned
//! protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) and committed offsets (OffsetCommit,
//! OffsetFetch), which broker-assigned groups share.

use std::rc::Rc;

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::{
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, ListGroupsResponse,
};
use kafka_protocol::messages::{
    HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    LeaveGroupResponse, OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest,
    OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::handlers::kafka_error;
use crate::broker::{ShardState, client_assigned, group};
use crate::protocol::{ErrorCode, ProtocolError, Response};

fn text(bytes: &StrBytes) -> String {
    bytes.as_str().to_string()
}

pub async fn join(
    state: &Rc<ShardState>,
    request: JoinGroupRequest,
    client_id: String,
) -> JoinGroupResponse {
    let name = text(&request.group_id.0);
    let protocols: Vec<(String, bytes::Bytes)> = request
        .protocols
        .iter()
        .map(|p| (text(&p.name), p.metadata.clone()))
        .collect();
    let (member_id, protocol_type) = (text(&request.member_id), text(&request.protocol_type));
    let (session, rebalance) = (
        request.session_timeout_ms.max(0) as u32,
        request.rebalance_timeout_ms.max(0) as u32,
    );
    let group_name = name.clone();
    let joined = state
        .on_coordinator(&name, move |c| async move {
            client_assigned::join(
                &c,
                group_name,
                member_id,
                client_id,
                protocol_type,
                protocols,
                session,
                rebalance,
            )
            .await
        })
        .await;
    match joined {
        Ok(joined) => JoinGroupResponse::default()
            .with_generation_id(joined.generation as i32)
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
            .with_error_code(kafka_error(error.code))
            .with_generation_id(-1),
    }
}

pub async fn sync(state: &Rc<ShardState>, request: SyncGroupRequest) -> SyncGroupResponse {
    let name = text(&request.group_id.0);
    let member_id = text(&request.member_id);
    let assignments: Vec<(String, bytes::Bytes)> = request
        .assignments
        .iter()
        .map(|a| (text(&a.member_id), a.assignment.clone()))
        .collect();
    let generation = request.generation_id;
    let group_name = name.clone();
    let synced = state
        .on_coordinator(&name, move |c| async move {
            client_assigned::sync(&c, group_name, member_id, generation, assignments).await
        })
        .await;
    match synced {
        Ok((protocol_type, protocol_name, assignment)) => SyncGroupResponse::default()
            .with_protocol_type(Some(StrBytes::from_string(protocol_type)))
            .with_protocol_name(Some(StrBytes::from_string(protocol_name)))
            .with_assignment(assignment),
        Err(error) => SyncGroupResponse::default().with_error_code(kafka_error(error.code)),
    }
}

pub async fn heartbeat(state: &Rc<ShardState>, request: HeartbeatRequest) -> HeartbeatResponse {
    let name = text(&request.group_id.0);
    let member_id = text(&request.member_id);
    let generation = request.generation_id;
    let group_name = name.clone();
    let result = state
        .on_coordinator(&name, move |c| async move {
            client_assigned::heartbeat(&c, &group_name, &member_id, generation)
        })
        .await;
    HeartbeatResponse::default()
        .with_error_code(result.err().map_or(0, |error| kafka_error(error.code)))
}

pub async fn leave(state: &Rc<ShardState>, request: LeaveGroupRequest) -> LeaveGroupResponse {
    let name = text(&request.group_id.0);
    let mut members: Vec<String> = request.members.iter().map(|m| text(&m.member_id)).collect();
    if !request.member_id.is_empty() {
        members.push(text(&request.member_id));
    }
    let group_name = name.clone();
    let result = state
        .on_coordinator(&name, move |c| async move {
            client_assigned::leave(&c, &group_name, members)
        })
        .await;
    LeaveGroupResponse::default()
        .with_error_code(result.err().map_or(0, |error| kafka_error(error.code)))
}

pub async fn commit(state: &Rc<ShardState>, request: OffsetCommitRequest) -> OffsetCommitResponse {
    let name = text(&request.group_id.0);
    let offsets: Vec<(String, u32, u64)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            // A negative partition is answered UNKNOWN_TOPIC_OR_PARTITION below, never stored
            // (clamped, it would have overwritten partition 0's offset).
            topic
                .partitions
                .iter()
                .filter(|p| p.partition_index >= 0)
                .map(move |p| {
                    (
                        text(&topic.name.0),
                        p.partition_index as u32,
                        p.committed_offset.max(0) as u64,
                    )
                })
        })
        .collect();
    let (member_id, generation) = (
        text(&request.member_id),
        i64::from(request.generation_id_or_member_epoch),
    );
    let group_name = name.clone();
    let result = state
        .on_coordinator(&name, move |c| async move {
            group::commit_at(&c, group_name, member_id, generation, offsets).await
        })
        .await;
    let code = result.err().map_or(0, |error| kafka_error(error.code));
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
                                kafka_error(ErrorCode::BadPartition)
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

pub async fn fetch_offsets(
    state: &Rc<ShardState>,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let name = text(&request.group_id.0);
    let group_name = name.clone();
    let committed = state
        .on_coordinator(&name, move |c| async move {
            match group::fetch_offsets(&c, &group_name, Vec::new()) {
                Response::Offsets(offsets) => Ok(offsets),
                _ => Err(ProtocolError::new(
                    ErrorCode::Internal,
                    "unexpected response",
                )),
            }
        })
        .await;
    let committed = match committed {
        Ok(committed) => committed,
        Err(error) => {
            return OffsetFetchResponse::default().with_error_code(kafka_error(error.code));
        }
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
    let partition = |topic: &str, index: i32| {
        OffsetFetchResponsePartition::default()
            .with_partition_index(index)
            .with_committed_offset(offset_of(topic, index))
            .with_committed_leader_epoch(-1)
            .with_metadata(Some(StrBytes::from_static_str("")))
    };
    let topics = match request.topics {
        Some(topics) => topics
            .iter()
            .map(|topic| {
                let name = text(&topic.name.0);
                OffsetFetchResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partition_indexes
                            .iter()
                            .map(|p| partition(&name, *p))
                            .collect(),
                    )
            })
            .collect(),
        None => {
            let mut names: Vec<&String> = committed.iter().map(|(t, _, _)| t).collect();
            names.dedup();
            names
                .into_iter()
                .map(|name| {
                    let partitions = committed
                        .iter()
                        .filter(|(t, _, _)| t == name)
                        .map(|(_, p, _)| partition(name, *p as i32))
                        .collect();
                    OffsetFetchResponseTopic::default()
                        .with_name(kafka_protocol::messages::TopicName(StrBytes::from_string(
                            name.clone(),
                        )))
                        .with_partitions(partitions)
                })
                .collect()
        }
    };
    OffsetFetchResponse::default().with_topics(topics)
}

/// Every group of every coordinator shard.
pub async fn list(state: &Rc<ShardState>) -> ListGroupsResponse {
    let mut groups = Vec::new();
    for shard in 0..state.shards() {
        let listed = state
            .on_shard(shard, |s| async move {
                Ok::<_, ProtocolError>(group::kafka_list(&s))
            })
            .await
            .unwrap_or_default();
        groups.extend(listed);
    }
    let groups = groups
        .into_iter()
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(StrBytes::from_string(g.name)))
                .with_protocol_type(StrBytes::from_string(g.protocol_type))
                .with_group_state(StrBytes::from_static_str(g.state))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe(
    state: &Rc<ShardState>,
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
        let name = text(&group_id.0);
        let group_name = name.clone();
        let view = state
            .on_coordinator(&name, move |c| async move {
                Ok(group::kafka_describe(&c, &group_name))
            })
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
                        .map(|(id, client_id, metadata, assignment)| {
                            DescribedGroupMember::default()
                                .with_member_id(StrBytes::from_string(id))
                                .with_client_id(StrBytes::from_string(client_id))
                                .with_client_host(StrBytes::from_static_str("/127.0.0.1"))
                                .with_member_metadata(metadata)
                                .with_member_assignment(assignment)
                        })
                        .collect(),
                ),
            Err(error) => DescribedGroup::default()
                .with_group_id(group_id)
                .with_error_code(kafka_error(error.code)),
        });
    }
    DescribeGroupsResponse::default().with_groups(described)
}
