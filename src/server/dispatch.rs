//! The native protocol's requests, served by the broker service: each request becomes one
//! typed operation, each result its response, each `BrokerError` its native code
//! (`errors.rs`).

use std::rc::Rc;
use std::time::Duration;

use super::errors::to_native;
use crate::broker::service::{
    Committer, ConfigChange, Fetch, GroupDescription, GroupSummary, JoinGroup, MemberAssignment,
    NewTopic, OffsetQuery, PartitionChoice, Principal, Produce, QuotaKind, RecordsBefore,
    RequestContext, Service,
};

/// Holds an answer back for a client over its quota (the native protocol has no field that
/// says so; the connection stays).
pub(super) async fn hold_back(throttle: Duration) {
    if !throttle.is_zero() {
        crate::runtime::sleep(throttle).await;
    }
}
use crate::broker::{BrokerError, ErrorKind, ShardState};
use crate::protocol::messages::{self as wire, SUPPORTED_APIS};
use crate::protocol::{
    self, FetchResponse, OffsetSpec, ProduceResponse, ProtocolError, Request, Response,
    TopicMetadata,
};

/// Answers one native request.
pub async fn serve(
    state: &Rc<ShardState>,
    request: Request,
    (principal, connection): (Principal, u64),
) -> Result<Response, ProtocolError> {
    let service = Service::new(state.clone());
    let mut ctx = RequestContext::new(
        String::new(),
        Duration::from_millis(state.config.shard_call_timeout_ms),
    );
    ctx.principal = principal;
    ctx.connection = connection;
    // The request quota counts all but authentication and ApiVersions; Produce and Fetch fold
    // it into their byte throttle (the larger of the two), the rest are answered that late.
    let counted = !matches!(
        request,
        Request::ApiVersions | Request::SaslHandshake { .. } | Request::SaslAuthenticate { .. }
    );
    let mut pending = if counted {
        service.charge_quota(&ctx, QuotaKind::Requests, 1)
    } else {
        Duration::ZERO
    };
    let answer = serve_request(&service, &ctx, request, &mut pending).await;
    hold_back(pending).await;
    answer
}

/// `serve` once the context is built; `pending` is the request quota's hold-back, which
/// Produce and Fetch take over.
async fn serve_request(
    service: &Service,
    ctx: &RequestContext,
    request: Request,
    pending: &mut Duration,
) -> Result<Response, ProtocolError> {
    match request {
        Request::ApiVersions => Ok(Response::ApiVersions {
            apis: SUPPORTED_APIS
                .iter()
                .map(|(api, min, max)| (*api as u16, *min, *max))
                .collect(),
            broker_version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        Request::Metadata { topics } => metadata(service, ctx, topics),
        Request::CreateTopic {
            name,
            partitions,
            configs,
        } => {
            let topic = NewTopic {
                name,
                partitions,
                configs,
            };
            service.create_topic(ctx, topic).await.map_err(to_native)?;
            Ok(Response::Done)
        }
        Request::DeleteTopic { name } => {
            service.delete_topic(ctx, name).await.map_err(to_native)?;
            Ok(Response::Done)
        }
        Request::AlterTopicConfig { name, set, reset } => {
            let changes = set
                .into_iter()
                .map(|(key, value)| ConfigChange::Set(key, value))
                .chain(reset.into_iter().map(ConfigChange::Delete))
                .collect();
            service
                .alter_topic_config(ctx, name, changes, (false, false))
                .await
                .map_err(to_native)?;
            Ok(Response::Done)
        }
        Request::AddPartitions { name, partitions } => {
            service
                .add_partitions(ctx, name, partitions)
                .await
                .map_err(to_native)?;
            Ok(Response::Done)
        }
        Request::Produce(request) => {
            let bytes = request.records.len() as u64;
            let answer = produce(service, ctx, request).await;
            // Over its quota, the client's answer is late (the native protocol has no field
            // that says so); the connection stays.
            let throttle = service.charge_quota(ctx, QuotaKind::ProduceBytes, bytes);
            hold_back(throttle.max(std::mem::take(pending))).await;
            answer
        }
        Request::DeleteRecords {
            topic,
            partition,
            before,
        } => delete_records(service, ctx, &topic, partition, before).await,
        Request::Fetch(fetch) => {
            let fetch = Fetch {
                topic: fetch.topic,
                partition: fetch.partition,
                offset: fetch.offset,
                max_bytes: fetch.max_bytes,
                min_bytes: fetch.min_bytes,
                max_wait_ms: fetch.max_wait_ms,
            };
            let fetched = service.fetch(ctx, fetch).await.map_err(to_native)?;
            let bytes = fetched.size_bytes() as u64;
            let throttle = service.charge_quota(ctx, QuotaKind::FetchBytes, bytes);
            hold_back(throttle.max(std::mem::take(pending))).await;
            Ok(Response::Fetch(FetchResponse {
                high_watermark: fetched.high_watermark,
                log_start_offset: fetched.log_start_offset,
                records: fetched.records,
            }))
        }
        Request::ListOffsets {
            topic,
            partition,
            spec,
        } => {
            let query = match spec {
                OffsetSpec::Earliest => OffsetQuery::Earliest,
                OffsetSpec::Latest => OffsetQuery::Latest,
                OffsetSpec::Timestamp(timestamp) => OffsetQuery::AtOrAfter(timestamp),
            };
            let listed = service
                .list_offset(ctx, &topic, partition, query)
                .await
                .map_err(to_native)?;
            Ok(Response::ListOffsets {
                offset: listed.offset,
                high_watermark: listed.high_watermark,
                log_start_offset: listed.log_start_offset,
            })
        }
        Request::Routing(routing) => super::routing::serve(service, ctx, routing).await,
        Request::Replies(replies) => super::replies::serve(service, ctx, replies).await,
        Request::Queue(queue) => super::queues::serve(service, ctx, queue)
            .await
            .map_err(to_native),
        group_request => groups(service, ctx, group_request).await.map_err(to_native),
    }
}

/// Moves a partition's start to `before`; -1 is its high watermark, as in Kafka, and any other
/// negative offset is out of range.
async fn delete_records(
    service: &Service,
    ctx: &RequestContext,
    topic: &str,
    partition: u32,
    before: i64,
) -> Result<Response, ProtocolError> {
    let before = match before {
        -1 => RecordsBefore::HighWatermark,
        offset => RecordsBefore::Offset(u64::try_from(offset).map_err(|_| {
            to_native(BrokerError::new(
                ErrorKind::OffsetOutOfRange,
                format!("offset {offset}: only -1 (the high watermark) or 0 and up"),
            ))
        })?),
    };
    let log_start_offset = service
        .delete_records(ctx, topic, partition, before)
        .await
        .map_err(to_native)?;
    Ok(Response::DeleteRecords { log_start_offset })
}

async fn produce(
    service: &Service,
    ctx: &RequestContext,
    produce: protocol::ProduceRequest,
) -> Result<Response, ProtocolError> {
    let partition = match u32::try_from(produce.partition) {
        Ok(index) => PartitionChoice::Index(index),
        // The native protocol's -1: the broker picks the partition from the key.
        Err(_) => PartitionChoice::ByKey(produce.key),
    };
    let produce = Produce {
        topic: produce.topic,
        partition,
        acks: produce.acks,
        records: produce.records,
    };
    let done = service.produce(ctx, produce).await.map_err(to_native)?;
    Ok(Response::Produce(ProduceResponse {
        partition: done.partition,
        base_offset: done.base_offset,
        last_offset: done.last_offset,
        log_start_offset: done.log_start_offset,
        log_append_time_ms: done.log_append_time_ms.unwrap_or(-1),
    }))
}

fn metadata(
    service: &Service,
    ctx: &RequestContext,
    names: Vec<String>,
) -> Result<Response, ProtocolError> {
    let infos = if names.is_empty() {
        service.topics(ctx)
    } else {
        names
            .iter()
            .map(|name| service.topic(ctx, name))
            .collect::<Result<_, _>>()
            .map_err(to_native)?
    };
    Ok(Response::Metadata {
        shards: service.shards() as u32,
        topics: infos
            .into_iter()
            .map(|info| TopicMetadata {
                name: info.name,
                partitions: info.partitions,
                configs: info.configs,
            })
            .collect(),
    })
}

/// The group requests; `serve` passes on only these.
async fn groups(
    service: &Service,
    ctx: &RequestContext,
    request: Request,
) -> Result<Response, BrokerError> {
    match request {
        Request::JoinGroup {
            group,
            member_id,
            topics,
            session_timeout_ms,
            strategy,
        } => {
            let join = JoinGroup {
                group,
                member_id,
                topics,
                session_timeout_ms,
                strategy,
            };
            let assigned = service.join_group(ctx, join).await?;
            Ok(Response::Group(assignment(assigned)))
        }
        Request::Heartbeat {
            group, member_id, ..
        } => {
            let assigned = service.heartbeat(ctx, group, member_id).await?;
            Ok(Response::Group(assignment(assigned)))
        }
        Request::LeaveGroup { group, member_id } => {
            service.leave_group(ctx, group, member_id).await?;
            Ok(Response::Done)
        }
        Request::CommitOffsets {
            group,
            member_id,
            generation,
            offsets,
        } => {
            let generation = i64::from(generation);
            service
                .commit_offsets(
                    ctx,
                    group,
                    Committer::member(member_id),
                    generation,
                    offsets,
                )
                .await?;
            Ok(Response::Done)
        }
        Request::FetchOffsets { group, partitions } => Ok(Response::Offsets(
            service.committed_offsets(ctx, group, partitions).await?,
        )),
        Request::DescribeGroup { group } => {
            let described = service.describe_group(ctx, group).await?;
            Ok(Response::GroupDescription(description(described)))
        }
        Request::DeleteGroup { group } => {
            service.delete_group(ctx, group).await?;
            Ok(Response::Done)
        }
        Request::ListGroups => Ok(Response::Groups(
            service
                .list_groups(ctx)
                .await?
                .into_iter()
                .map(summary)
                .collect(),
        )),
        other => Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("{:?} is not a group request", other.api_key()),
        )),
    }
}

fn assignment(assigned: MemberAssignment) -> wire::GroupAssignment {
    wire::GroupAssignment {
        member_id: assigned.member_id,
        generation: assigned.generation,
        assignment: assigned.partitions,
    }
}

fn summary(summary: GroupSummary) -> wire::GroupSummary {
    wire::GroupSummary {
        name: summary.name,
        state: summary.state,
        generation: summary.generation,
        members: summary.members,
    }
}

fn description(described: GroupDescription) -> wire::GroupDescription {
    wire::GroupDescription {
        summary: summary(described.summary),
        strategy: described.strategy,
        members: described
            .members
            .into_iter()
            .map(|member| (member.member_id, member.client_id, member.partitions))
            .collect(),
        offsets: described.offsets,
    }
}
