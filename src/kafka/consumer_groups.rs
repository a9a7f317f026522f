//! Kafka's KIP-848 consumer-group APIs (`group.protocol=consumer`), translated onto the broker
//! service: ConsumerGroupHeartbeat (join, heartbeat, leave) and ConsumerGroupDescribe.
//!
//! Kafka names topics by id in these APIs; the broker works with names, so this adapter
//! resolves ids through the topic snapshot both ways. An owned partition of a topic id the
//! broker does not know (a deleted topic) is dropped: nobody else can be given it.

use std::collections::{BTreeSet, HashMap};

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member, TopicPartitions as DescribedTopic,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::errors::code_of;
use super::handlers::topic_name;
use crate::broker::service::{
    Assignor, Beat, ConsumerGroupView, RequestContext, Service, invalid_request,
};
use crate::broker::{BrokerError, ErrorKind};

/// Groups one ConsumerGroupDescribe may name: each is a trip to its coordinator.
pub const DESCRIBED_GROUPS_MAX: usize = 1000;

/// Answers a KIP-848 request; any other request is handed back.
pub async fn respond(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: RequestKind,
) -> Result<ResponseKind, RequestKind> {
    Ok(match request {
        RequestKind::ConsumerGroupHeartbeat(request) => {
            ResponseKind::ConsumerGroupHeartbeat(heartbeat(service, ctx, version, request).await)
        }
        RequestKind::ConsumerGroupDescribe(request) => {
            ResponseKind::ConsumerGroupDescribe(describe(service, ctx, request).await)
        }
        other => return Err(other),
    })
}

/// Topic ids and names of the topics the broker has, both ways.
pub(super) struct TopicIds {
    pub(super) names: HashMap<Uuid, String>,
    ids: HashMap<String, Uuid>,
}

impl TopicIds {
    pub(super) fn new(service: &Service, ctx: &RequestContext) -> TopicIds {
        let topics = service.topics(ctx);
        TopicIds {
            names: topics
                .iter()
                .map(|t| (Uuid::from_bytes(t.id), t.name.clone()))
                .collect(),
            ids: topics
                .into_iter()
                .map(|t| (t.name, Uuid::from_bytes(t.id)))
                .collect(),
        }
    }

    pub(super) fn id(&self, name: &str) -> Uuid {
        self.ids.get(name).copied().unwrap_or(Uuid::nil())
    }

    /// (topic, partitions) pairs grouped by topic, in name order.
    pub(super) fn by_topic(partitions: &[(String, u32)]) -> Vec<(&str, Vec<i32>)> {
        let mut grouped: Vec<(&str, Vec<i32>)> = Vec::new();
        for (topic, partition) in partitions {
            let index = i32::try_from(*partition).unwrap_or(i32::MAX);
            match grouped.last_mut() {
                Some((last, list)) if *last == topic.as_str() => list.push(index),
                _ => grouped.push((topic.as_str(), vec![index])),
            }
        }
        grouped
    }
}

fn text(bytes: &StrBytes) -> String {
    bytes.as_str().to_string()
}

/// The request as the coordinator takes it, or why it is refused before it gets there.
fn beat_of(
    version: i16,
    ctx: &RequestContext,
    request: &ConsumerGroupHeartbeatRequest,
    ids: &TopicIds,
) -> Result<Beat, BrokerError> {
    // v1: the client makes its member id (a UUID) before it joins; v0 joins without one.
    if version >= 1 && request.member_id.is_empty() {
        return Err(invalid_request("the member id is required (v1+)"));
    }
    if request
        .subscribed_topic_regex
        .as_ref()
        .is_some_and(|regex| !regex.is_empty())
    {
        return Err(invalid_request(
            "subscriptions by regular expression are not supported; name the topics",
        ));
    }
    let assignor = match &request.server_assignor {
        None => None,
        Some(name) => Some(Assignor::parse(name.as_str()).ok_or_else(|| {
            BrokerError::new(
                ErrorKind::UnsupportedAssignor,
                format!("no server assignor {:?}: uniform or range", name.as_str()),
            )
        })?),
    };
    let owned: Option<BTreeSet<(String, u32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .filter_map(|t| ids.names.get(&t.topic_id).map(|name| (name, &t.partitions)))
            .flat_map(|(name, partitions)| {
                partitions
                    .iter()
                    .filter_map(|p| Some((name.clone(), u32::try_from(*p).ok()?)))
            })
            .collect()
    });
    Ok(Beat {
        member_id: text(&request.member_id),
        member_epoch: request.member_epoch,
        client_id: ctx.client_id.clone(),
        instance_id: request.instance_id.as_ref().map(text),
        rack_id: request.rack_id.as_ref().map(text),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        topics: request
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| text(&n.0)).collect()),
        assignor,
        owned,
    })
}

pub async fn heartbeat(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let ids = TopicIds::new(service, ctx);
    let result = match beat_of(version, ctx, &request, &ids) {
        Ok(beat) => {
            service
                .consumer_heartbeat(ctx, text(&request.group_id.0), beat)
                .await
        }
        Err(error) => Err(error),
    };
    let reply = match result {
        Ok(reply) => reply,
        Err(error) => {
            return ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)));
        }
    };
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
    ConsumerGroupHeartbeatResponse::default()
        .with_member_id(Some(StrBytes::from_string(reply.member_id)))
        .with_member_epoch(reply.member_epoch)
        .with_heartbeat_interval_ms(i32::try_from(reply.heartbeat_interval_ms).unwrap_or(i32::MAX))
        .with_assignment(assignment)
}

pub async fn describe(
    service: &Service,
    ctx: &RequestContext,
    request: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
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
            service
                .describe_consumer_group(ctx, text(&group_id.0))
                .await
        };
        described.push(match group {
            Ok(view) => described_group(view, &ids).with_group_id(group_id),
            Err(error) => DescribedGroup::default()
                .with_group_id(group_id)
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message))),
        });
    }
    ConsumerGroupDescribeResponse::default().with_groups(described)
}

fn described_group(view: ConsumerGroupView, ids: &TopicIds) -> DescribedGroup {
    let assignment = |partitions: &[(String, u32)]| {
        let topics = TopicIds::by_topic(partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                DescribedTopic::default()
                    .with_topic_id(ids.id(topic))
                    .with_topic_name(topic_name(topic))
                    .with_partitions(partitions)
            })
            .collect();
        DescribedAssignment::default().with_topic_partitions(topics)
    };
    let members = view
        .members
        .iter()
        .map(|member| {
            Member::default()
                .with_member_id(StrBytes::from_string(member.member_id.clone()))
                .with_instance_id(member.instance_id.clone().map(StrBytes::from_string))
                .with_rack_id(member.rack_id.clone().map(StrBytes::from_string))
                .with_member_epoch(member.member_epoch)
                .with_client_id(StrBytes::from_string(member.client_id.clone()))
                .with_client_host(StrBytes::from_static_str("/127.0.0.1"))
                .with_subscribed_topic_names(member.topics.iter().map(|t| topic_name(t)).collect())
                .with_assignment(assignment(&member.assigned))
                .with_target_assignment(assignment(&member.target))
                // 1: a member of the consumer protocol (not a classic one in a mixed group).
                .with_member_type(1)
        })
        .collect();
    DescribedGroup::default()
        .with_group_state(StrBytes::from_static_str(view.state))
        .with_group_epoch(view.group_epoch)
        .with_assignment_epoch(view.assignment_epoch)
        .with_assignor_name(StrBytes::from_static_str(view.assignor))
        .with_members(members)
        // Kafka's "not asked": no ACLs here.
        .with_authorized_operations(i32::MIN)
}
