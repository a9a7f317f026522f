//! The native protocol's requests, served by the broker service: each request becomes one
//! typed operation, each result its response, each `BrokerError` its native code
//! (`errors.rs`).

use std::rc::Rc;
use std::time::Duration;

use super::errors::to_native;
use crate::broker::service::{
    Fetch, NewTopic, OffsetQuery, PartitionChoice, Produce, RequestContext, Service,
};
use crate::broker::{ShardState, group};
use crate::protocol::messages::SUPPORTED_APIS;
use crate::protocol::{
    FetchResponse, OffsetSpec, ProduceResponse, ProtocolError, Request, Response, TopicMetadata,
};

/// Answers one native request.
pub async fn serve(state: &Rc<ShardState>, request: Request) -> Result<Response, ProtocolError> {
    let service = Service::new(state.clone());
    let ctx = RequestContext::new(
        String::new(),
        Duration::from_millis(state.config.shard_call_timeout_ms),
    );
    match request {
        Request::ApiVersions => Ok(Response::ApiVersions {
            apis: SUPPORTED_APIS
                .iter()
                .map(|(api, min, max)| (*api as u16, *min, *max))
                .collect(),
            broker_version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        Request::Metadata { topics } => metadata(&service, &ctx, topics),
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
            service.create_topic(&ctx, topic).await.map_err(to_native)?;
            Ok(Response::Done)
        }
        Request::DeleteTopic { name } => {
            service.delete_topic(&ctx, name).await.map_err(to_native)?;
            Ok(Response::Done)
        }
        Request::Produce(produce) => {
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
            let done = service.produce(&ctx, produce).await.map_err(to_native)?;
            Ok(Response::Produce(ProduceResponse {
                partition: done.partition,
                base_offset: done.base_offset,
                last_offset: done.last_offset,
                log_start_offset: done.log_start_offset,
                log_append_time_ms: done.log_append_time_ms.unwrap_or(-1),
            }))
        }
        Request::Fetch(fetch) => {
            let fetch = Fetch {
                topic: fetch.topic,
                partition: fetch.partition,
                offset: fetch.offset,
                max_bytes: fetch.max_bytes,
                min_bytes: fetch.min_bytes,
                max_wait_ms: fetch.max_wait_ms,
            };
            let fetched = service.fetch(&ctx, fetch).await.map_err(to_native)?;
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
                .list_offset(&ctx, &topic, partition, query)
                .await
                .map_err(to_native)?;
            Ok(Response::ListOffsets {
                offset: listed.offset,
                high_watermark: listed.high_watermark,
                log_start_offset: listed.log_start_offset,
            })
        }
        group_request => groups(state, group_request).await,
    }
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

async fn groups(state: &Rc<ShardState>, request: Request) -> Result<Response, ProtocolError> {
    match request {
        Request::JoinGroup {
            group,
            member_id,
            topics,
            session_timeout_ms,
            strategy,
        } => {
            let name = group.clone();
            state
                .on_coordinator(&name, move |c| async move {
                    group::join(&c, group, member_id, topics, session_timeout_ms, strategy)
                })
                .await
        }
        Request::Heartbeat {
            group, member_id, ..
        } => {
            let name = group.clone();
            state
                .on_coordinator(&name, move |c| async move {
                    group::heartbeat(&c, &group, &member_id)
                })
                .await
        }
        Request::LeaveGroup { group, member_id } => {
            let name = group.clone();
            state
                .on_coordinator(&name, move |c| async move {
                    group::leave(&c, &group, &member_id)
                })
                .await
        }
        Request::CommitOffsets {
            group,
            member_id,
            generation,
            offsets,
        } => {
            let name = group.clone();
            state
                .on_coordinator(&name, move |c| async move {
                    group::commit(&c, group, member_id, generation, offsets).await
                })
                .await
        }
        Request::FetchOffsets { group, partitions } => {
            let name = group.clone();
            state
                .on_coordinator(&name, move |c| async move {
                    Ok(group::fetch_offsets(&c, &group, partitions))
                })
                .await
        }
        Request::DescribeGroup { group } => {
            let name = group.clone();
            state
                .on_coordinator(&name, move |c| async move { group::describe(&c, &group) })
                .await
        }
        Request::DeleteGroup { group } => {
            let name = group.clone();
            state
                .on_coordinator(
                    &name,
                    move |c| async move { group::delete(&c, group).await },
                )
                .await
        }
        Request::ListGroups => {
            let mut groups = Vec::new();
            for shard in 0..state.shards() {
                groups.extend(
                    state
                        .on_shard(
                            shard,
                            |s| async move { Ok::<_, ProtocolError>(group::list(&s)) },
                        )
                        .await?,
                );
            }
            groups.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(Response::Groups(groups))
        }
        _ => unreachable!("the data and topic requests are served above"),
    }
}
