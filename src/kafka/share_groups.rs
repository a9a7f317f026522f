//! Kafka's share-group APIs (KIP-932) other than fetching: ShareGroupHeartbeat and
//! ShareGroupDescribe, translated onto the service's share-group operations. Topics travel by
//! id here, resolved through the topic snapshot as in the KIP-848 APIs (`consumer_groups.rs`).

use kafka_protocol::messages::share_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::share_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    RequestKind, ResponseKind, ShareGroupDescribeRequest, ShareGroupDescribeResponse,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::consumer_groups::{DESCRIBED_GROUPS_MAX, TopicIds};
use super::errors::code_of;
use super::handlers::topic_name;
use crate::broker::service::{RequestContext, Service, ShareBeat, ShareGroupView, invalid_request};

/// Answers a share-group request; any other request is handed back.
pub async fn respond(
    service: &Service,
    ctx: &RequestContext,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    Ok(match request {
        RequestKind::ShareGroupHeartbeat(request) => {
            ResponseKind::ShareGroupHeartbeat(heartbeat(service, ctx, request).await)
        }
        RequestKind::ShareGroupDescribe(request) => {
            ResponseKind::ShareGroupDescribe(describe(service, ctx, request).await)
        }
        other => return super::share_offsets::respond(service, ctx, other).await,
    })
}

fn text(bytes: &StrBytes) -> String {
    bytes.as_str().to_string()
}

pub async fn heartbeat(
    service: &Service,
    ctx: &RequestContext,
    request: ShareGroupHeartbeatRequest,
) -> ShareGroupHeartbeatResponse {
    let beat = ShareBeat {
        member_id: text(&request.member_id),
        member_epoch: request.member_epoch,
        client_id: ctx.client_id.clone(),
        rack_id: request.rack_id.as_ref().map(text),
        topics: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| text(&n.0)).collect()),
    };
    let result = service
        .share_heartbeat(ctx, text(&request.group_id.0), beat)
        .await;
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => {
            return ShareGroupHeartbeatResponse::default()
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)))
                .with_member_epoch(request.member_epoch);
        }
    };
    let ids = TopicIds::new(service, ctx);
    let assignment = reply.assignment.map(|partitions| {
        let topics = TopicIds::by_topic(&partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                TopicPartitions::default()
                    .with_topic_id(ids.id(topic))
                    .with_partitions(partitions)
            })
            .collect();
        Assignment::default().with_topic_partitions(topics)
    });
    ShareGroupHeartbeatResponse::default()
        .with_member_id(Some(StrBytes::from_string(reply.member_id)))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(i32::try_from(reply.heartbeat_interval_ms).unwrap_or(i32::MAX))
        .with_assignment(assignment)
}

pub async fn describe(
    service: &Service,
    ctx: &RequestContext,
    request: ShareGroupDescribeRequest,
) -> ShareGroupDescribeResponse {
    let ids = TopicIds::new(service, ctx);
    let mut seen = std::collections::HashSet::new();
    let mut described = Vec::new();
    for group_id in request.group_ids {
        if !seen.insert(group_id.clone()) {
            continue;
        }
        let group = if seen.len() > DESCRIBED_GROUPS_MAX {
            Err(invalid_request(format!(
                "at most {DESCRIBED_GROUPS_MAX} groups per request"
            )))
        } else {
            service.describe_share_group(ctx, text(&group_id.0)).await
        };
        described.push(match group {
            Ok(view) => described_group(view, &ids).with_group_id(group_id),
            Err(error) => DescribedGroup::default()
                .with_group_id(group_id)
                .with_group_state(StrBytes::from_static_str("Dead"))
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message))),
        });
    }
    ShareGroupDescribeResponse::default().with_groups(described)
}

fn described_group(view: ShareGroupView, ids: &TopicIds) -> DescribedGroup {
    let members = view
        .members
        .iter()
        .map(|member| {
            let topics = TopicIds::by_topic(&member.assigned)
                .into_iter()
                .map(|(topic, partitions)| {
                    DescribedTopic::default()
                        .with_topic_id(ids.id(topic))
                        .with_topic_name(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect();
            Member::default()
                .with_member_id(StrBytes::from_string(member.member_id.clone()))
                .with_rack_id(member.rack_id.clone().map(StrBytes::from_string))
                .with_member_epoch(member.member_epoch)
                .with_client_id(StrBytes::from_string(member.client_id.clone()))
                .with_client_host(StrBytes::from_static_str("/127.0.0.1"))
                .with_subscribed_topic_names(member.topics.iter().map(|t| topic_name(t)).collect())
                .with_assignment(DescribedAssignment::default().with_topic_partitions(topics))
        })
        .collect();
    DescribedGroup::default()
        .with_group_state(StrBytes::from_static_str(view.state))
        .with_group_epoch(view.group_epoch)
        .with_assignment_epoch(view.group_epoch)
        .with_assignor_name(StrBytes::from_static_str("simple"))
        .with_members(members)
        // Kafka's "not asked": no ACLs here.
        .with_authorized_operations(i32::MIN)
}
