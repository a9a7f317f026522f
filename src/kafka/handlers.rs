//! Each supported Kafka API, translated into the broker's requests. Only what is implemented is
//! advertised in ApiVersions; versions that name topics by UUID (Fetch 13+, Produce 12+) are
//! left out, so clients keep using names.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::FindCoordinatorResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, CreateTopicsResponse, DeleteTopicsResponse,
    InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse, ProducerId,
    RequestHeader, RequestKind, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::errors::{
    INVALID_REPLICATION_FACTOR, INVALID_REQUEST, INVALID_REQUIRED_ACKS, UNSUPPORTED_VERSION,
    code_of,
};
use super::groups;

use crate::broker::service::{
    AckLevel, NewTopic, PartitionChoice, Produce, ProducerIdentity, QuotaKind, RequestContext,
    Service,
};
use crate::broker::{BrokerError, ErrorKind, ShardState};

/// (api, lowest version, highest version) served on the Kafka listener.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 8),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::DeleteRecords, 0, 2),
    // v0 sends the mechanism's messages without Kafka framing; clients use v1 when offered.
    (ApiKey::SaslHandshake, 1, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::ShareFetch, 1, 1),
    (ApiKey::ShareAcknowledge, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
];

pub(crate) const NODE_ID: i32 = 0;

pub struct Prepared {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: String,
    request: RequestKind,
}

impl Prepared {
    /// A produce with acks=0: Kafka clients expect no response.
    pub fn no_response(&self) -> bool {
        matches!(&self.request, RequestKind::Produce(produce) if produce.acks == 0)
    }

    pub fn api(&self) -> ApiKey {
        self.api
    }

    /// The decoded request, for the connection layer's bound on its response.
    pub fn request(&self) -> &RequestKind {
        &self.request
    }
}

fn api_versions_error(correlation_id: i32) -> Vec<Bytes> {
    let response = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(advertised());
    encode(
        ApiKey::ApiVersions,
        0,
        correlation_id,
        ResponseKind::ApiVersions(response),
    )
}

fn advertised() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(api, min, max)| {
            ApiVersion::default()
                .with_api_key(*api as i16)
                .with_min_version(*min)
                .with_max_version(*max)
        })
        .collect()
}

/// Decodes a request frame (length prefix removed). Err: the connection closes, after the
/// given response if any (an unsupported version is told so, in ApiVersions' v0 form, which
/// every client can read).
pub fn prepare(frame: Bytes) -> Result<Prepared, Option<Vec<Bytes>>> {
    if frame.len() < 8 {
        return Err(None);
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let supported = ApiKey::try_from(key)
        .ok()
        .and_then(|api| SUPPORTED.iter().find(|(a, _, _)| *a == api).copied());
    let Some((api, min, max)) = supported else {
        tracing::debug!(key, version, "unsupported kafka api");
        return Err(Some(api_versions_error(correlation_id)));
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            // KIP-511: a client newer than us asks again with a version we name.
            return Ok(Prepared {
                api,
                version,
                correlation_id,
                client_id: String::new(),
                request: RequestKind::ApiVersions(Default::default()),
            });
        }
        return Err(Some(api_versions_error(correlation_id)));
    }
    let mut body = frame;
    let header_version = api.request_header_version(version);
    let decoded = RequestHeader::decode(&mut body, header_version)
        .and_then(|header| Ok((header, RequestKind::decode(api, &mut body, version)?)));
    match decoded {
        Ok((header, request)) => {
            let client_id = header
                .client_id
                .map(|id| id.as_str().to_string())
                .unwrap_or_default();
            Ok(Prepared {
                api,
                version,
                correlation_id,
                client_id,
                request,
            })
        }
        Err(error) => {
            tracing::debug!(?api, version, %error, "undecodable kafka request; closing the connection");
            Err(None)
        }
    }
}

fn encode(api: ApiKey, version: i16, correlation_id: i32, response: ResponseKind) -> Vec<Bytes> {
    let mut buffer = BytesMut::with_capacity(256);
    buffer.extend_from_slice(&[0; 4]);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let encoded = header
        .encode(&mut buffer, api.response_header_version(version))
        .and_then(|_| response.encode(&mut buffer, version));
    if let Err(error) = encoded {
        tracing::error!(?api, version, %error, "could not encode a kafka response");
    }
    let length = (buffer.len() - 4) as u32;
    buffer[..4].copy_from_slice(&length.to_be_bytes());
    vec![buffer.freeze()]
}

fn name(topic: &TopicName) -> String {
    topic.0.as_str().to_string()
}

pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// What a connection's requests share: the advertised address, the shard's fetch sessions
/// and the connection's SASL progress.
pub struct Door<'a> {
    pub advertised: &'a super::Advertised,
    pub sessions: &'a std::cell::RefCell<super::FetchSessions>,
    pub share_sessions: &'a std::cell::RefCell<super::ShareSessions>,
    pub sasl: &'a std::cell::RefCell<super::sasl::KafkaSasl>,
}

pub async fn handle(state: &Rc<ShardState>, prepared: Prepared, door: Door<'_>) -> Vec<Bytes> {
    let Door {
        advertised: advertised_address,
        sessions,
        share_sessions,
        sasl,
    } = door;
    let Prepared {
        api,
        version,
        correlation_id,
        client_id,
        request,
    } = prepared;
    let service = Service::new(state.clone());
    let mut ctx = RequestContext::new(
        client_id.clone(),
        std::time::Duration::from_millis(state.config.shard_call_timeout_ms),
    );
    ctx.principal = sasl.borrow().principal();
    // The request quota counts every request but the ones that authenticate or ask for
    // versions; its hold-back is folded into Produce's and Fetch's byte throttle (the larger
    // of the two, as Kafka does) and, for the rest, delays the answer.
    let mut pending = if matches!(api, ApiKey::ApiVersions) || super::sasl::is_sasl(api) {
        std::time::Duration::ZERO
    } else {
        service.charge_quota(&ctx, QuotaKind::Requests, 1)
    };
    let response = match request {
        RequestKind::ApiVersions(_) => {
            let error_code = if version > 3 { UNSUPPORTED_VERSION } else { 0 };
            let version = if error_code != 0 { 0 } else { version };
            return encode(
                api,
                version,
                correlation_id,
                ResponseKind::ApiVersions(
                    ApiVersionsResponse::default()
                        .with_error_code(error_code)
                        .with_api_keys(advertised()),
                ),
            );
        }
        RequestKind::Metadata(request) => {
            let response =
                super::metadata::metadata(&service, &ctx, version, request, advertised_address);
            ResponseKind::Metadata(response.await)
        }
        RequestKind::Produce(request) => {
            let bytes: usize = request
                .topic_data
                .iter()
                .flat_map(|topic| &topic.partition_data)
                .map(|partition| partition.records.as_ref().map_or(0, Bytes::len))
                .sum();
            let response = produce(&service, &ctx, request).await;
            let throttle = service.charge_quota(&ctx, QuotaKind::ProduceBytes, bytes as u64);
            let throttle = throttle.max(std::mem::take(&mut pending));
            ResponseKind::Produce(response.with_throttle_time_ms(throttled(throttle).await))
        }
        RequestKind::Fetch(request) => {
            let response = super::fetch::fetch(&service, &ctx, state, sessions, request).await;
            let bytes: usize = response
                .responses
                .iter()
                .flat_map(|topic| &topic.partitions)
                .map(|partition| partition.records.as_ref().map_or(0, Bytes::len))
                .sum();
            let throttle = service.charge_quota(&ctx, QuotaKind::FetchBytes, bytes as u64);
            let throttle = throttle.max(std::mem::take(&mut pending));
            ResponseKind::Fetch(response.with_throttle_time_ms(throttled(throttle).await))
        }
        RequestKind::ShareFetch(request) => {
            let response =
                super::share_fetch::share_fetch(&service, &ctx, share_sessions, request).await;
            let metric =
                metrics::gauge!("ringmq_kafka_share_sessions", "shard" => state.id.to_string());
            metric.set(share_sessions.borrow().len() as f64);
            let bytes: usize = response
                .responses
                .iter()
                .flat_map(|topic| &topic.partitions)
                .map(|partition| partition.records.as_ref().map_or(0, Bytes::len))
                .sum();
            let throttle = service.charge_quota(&ctx, QuotaKind::FetchBytes, bytes as u64);
            let throttle = throttle.max(std::mem::take(&mut pending));
            ResponseKind::ShareFetch(response.with_throttle_time_ms(throttled(throttle).await))
        }
        RequestKind::ShareAcknowledge(request) => {
            let response =
                super::share_fetch::share_acknowledge(&service, &ctx, share_sessions, request)
                    .await;
            let metric =
                metrics::gauge!("ringmq_kafka_share_sessions", "shard" => state.id.to_string());
            metric.set(share_sessions.borrow().len() as f64);
            ResponseKind::ShareAcknowledge(response)
        }
        RequestKind::ListOffsets(request) => {
            let response = super::list_offsets::list_offsets(&service, &ctx, version, request);
            ResponseKind::ListOffsets(response.await)
        }
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(create_topics(&service, &ctx, request).await)
        }
        RequestKind::DeleteTopics(request) => {
            ResponseKind::DeleteTopics(delete_topics(&service, &ctx, request).await)
        }
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(init_producer_id(&service, &ctx, request))
        }
        RequestKind::SaslHandshake(request) => ResponseKind::SaslHandshake(super::sasl::handshake(
            &service,
            &mut sasl.borrow_mut(),
            request,
        )),
        RequestKind::SaslAuthenticate(request) => ResponseKind::SaslAuthenticate(
            super::sasl::authenticate(&service, &mut sasl.borrow_mut(), version, request),
        ),
        RequestKind::DescribeUserScramCredentials(request) => {
            ResponseKind::DescribeUserScramCredentials(super::sasl::describe_users(
                &service, &ctx, request,
            ))
        }
        RequestKind::AlterUserScramCredentials(request) => ResponseKind::AlterUserScramCredentials(
            super::sasl::alter_users(&service, &ctx, request).await,
        ),
        RequestKind::DescribeTopicPartitions(request) => ResponseKind::DescribeTopicPartitions(
            super::describe_partitions::describe(&service, &ctx, request),
        ),
        RequestKind::AlterConfigs(request) => {
            ResponseKind::AlterConfigs(super::alter_configs::replace(&service, &ctx, request).await)
        }
        RequestKind::IncrementalAlterConfigs(request) => ResponseKind::IncrementalAlterConfigs(
            super::alter_configs::incremental(&service, &ctx, request).await,
        ),
        RequestKind::DescribeProducers(request) => ResponseKind::DescribeProducers(
            super::describe_partitions::producers(&service, &ctx, request).await,
        ),
        RequestKind::CreateAcls(request) => {
            ResponseKind::CreateAcls(super::acls::create(&service, &ctx, request).await)
        }
        RequestKind::DescribeAcls(request) => {
            ResponseKind::DescribeAcls(super::acls::describe(&service, &ctx, request))
        }
        RequestKind::DeleteAcls(request) => {
            ResponseKind::DeleteAcls(super::acls::delete(&service, &ctx, request).await)
        }
        RequestKind::FindCoordinator(_) => {
            let response = FindCoordinatorResponse::default()
                .with_node_id(BrokerId(NODE_ID))
                .with_host(StrBytes::from_string(advertised_address.host.to_string()))
                .with_port(i32::from(advertised_address.port));
            ResponseKind::FindCoordinator(response)
        }
        other => match respond_other(&service, &ctx, version, other, advertised_address).await {
            Some(response) => response,
            // prepare() admits only the APIs in SUPPORTED; anything else is refused, never a
            // panic.
            None => return api_versions_error(correlation_id),
        },
    };
    throttled(pending).await;
    encode(api, version, correlation_id, response)
}

/// The group and admin APIs, each module trying its own.
async fn respond_other(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: RequestKind,
    advertised_address: &super::Advertised,
) -> Option<ResponseKind> {
    let request = match groups::respond(service, ctx, version, request).await {
        Ok(response) => return Some(response),
        Err(request) => request,
    };
    let request = match super::consumer_groups::respond(service, ctx, version, request).await {
        Ok(response) => return Some(response),
        Err(request) => request,
    };
    let request = match super::share_groups::respond(service, ctx, request).await {
        Ok(response) => return Some(response),
        Err(request) => request,
    };
    super::admin::respond(service, ctx, request, advertised_address)
        .await
        .ok()
}

/// Holds the answer back for `throttle` (a client over its quota), and says so in Kafka's
/// `throttle_time_ms`: the answer is late, the connection stays.
async fn throttled(throttle: std::time::Duration) -> i32 {
    if throttle.is_zero() {
        return 0;
    }
    crate::runtime::sleep(throttle).await;
    i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX)
}

/// A negative partition index from a Kafka client: Kafka's UNKNOWN_TOPIC_OR_PARTITION.
pub(crate) fn bad_partition(index: i32) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownPartition,
        format!("partition {index} does not exist"),
    )
}

/// A produce's topic, created on first use as the issue asks of produce too (ringmq's choice:
/// Kafka creates only on Metadata, and answers a produce to an unknown topic
/// UNKNOWN_TOPIC_OR_PARTITION, upon which its clients ask Metadata, which creates). Only a
/// creation that was tried and failed is returned; a topic that may not be created (creation
/// off, an invalid name, `topics_max` reached, this request's creations used up) is left to the
/// produce, which answers UNKNOWN_TOPIC_OR_PARTITION as Kafka would.
async fn create_on_produce(
    service: &Service,
    ctx: &RequestContext,
    topic: &str,
    creations: &mut usize,
) -> Option<BrokerError> {
    let allowed = service.topic(ctx, topic).is_err()
        && service.check_auto_create(ctx, topic).is_ok()
        && *creations < super::metadata::AUTO_CREATED_PER_REQUEST_MAX;
    if !allowed {
        return None;
    }
    *creations += 1;
    service.ensure_topic(ctx, topic).await.err()
}

async fn produce(
    service: &Service,
    ctx: &RequestContext,
    request: ProduceRequest,
) -> ProduceResponse {
    let acks = match request.acks {
        0 => AckLevel::None,
        1 => AckLevel::Written,
        _ => AckLevel::Fsynced,
    };
    // Kafka refuses any other acks with INVALID_REQUIRED_ACKS, storing nothing.
    let acks_valid = matches!(request.acks, -1..=1);
    let mut responses = Vec::new();
    let mut creations = 0;
    for topic in request.topic_data {
        let topic_text = name(&topic.name);
        let refused = match acks_valid {
            true => create_on_produce(service, ctx, &topic_text, &mut creations).await,
            false => None,
        };
        let refused = &refused;
        let appends = topic.partition_data.into_iter().map(|partition| {
            // Our native protocol reads a negative partition as "choose by key"; Kafka has no
            // such thing, and Kafka's broker answers UNKNOWN_TOPIC_OR_PARTITION.
            let index = u32::try_from(partition.index).map_err(|_| bad_partition(partition.index));
            let produce = index.map(|index| Produce {
                topic: topic_text.clone(),
                partition: PartitionChoice::Index(index),
                acks,
                records: BytesMut::from(&partition.records.unwrap_or_default()[..]),
            });
            async move {
                let answer = PartitionProduceResponse::default().with_index(partition.index);
                if !acks_valid {
                    return answer
                        .with_error_code(INVALID_REQUIRED_ACKS)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                }
                let result = match (refused, produce) {
                    (Some(error), _) => Err(error.clone()),
                    (None, Ok(produce)) => service.produce(ctx, produce).await,
                    (None, Err(error)) => Err(error),
                };
                match result {
                    Ok(done) => answer
                        .with_base_offset(done.base_offset as i64)
                        .with_log_append_time_ms(done.log_append_time_ms.unwrap_or(-1))
                        .with_log_start_offset(done.log_start_offset as i64),
                    Err(error) => answer
                        .with_error_code(code_of(&error))
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1)
                        .with_error_message(Some(StrBytes::from_string(error.message))),
                }
            }
        });
        let partition_responses = futures_util::future::join_all(appends).await;
        responses.push(
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_partition_responses(partition_responses),
        );
    }
    ProduceResponse::default().with_responses(responses)
}

async fn create_topics(
    service: &Service,
    ctx: &RequestContext,
    request: kafka_protocol::messages::CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut topics = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let repeated: std::collections::HashSet<TopicName> = request
        .topics
        .iter()
        .filter(|topic| !seen.insert(topic.name.clone()))
        .map(|topic| topic.name.clone())
        .collect();
    for topic in request.topics {
        // -1 asks for the broker's default (KIP-464): `default_partitions`, Kafka's num.partitions.
        let partitions = match topic.num_partitions {
            -1 => service.default_partitions(),
            count => u32::try_from(count).unwrap_or(0),
        };
        let configs: Vec<(String, String)> = topic
            .configs
            .iter()
            .filter_map(|config| {
                config
                    .value
                    .as_ref()
                    .map(|value| (config.name.as_str().to_string(), value.as_str().to_string()))
            })
            .collect();
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(partitions as i32)
            .with_replication_factor(1);
        // Kafka answers every entry of a name given twice with INVALID_REQUEST, creating none.
        if repeated.contains(&topic.name) {
            result = result
                .with_error_code(INVALID_REQUEST)
                .with_error_message(Some(StrBytes::from_static_str(
                    "the request names this topic more than once",
                )));
            topics.push(result);
            continue;
        }
        // -1 asks for the default, which is 1 here; 0 and below -1 are invalid, as in Kafka.
        if !matches!(topic.replication_factor, -1 | 1) {
            result = result
                .with_error_code(INVALID_REPLICATION_FACTOR)
                .with_error_message(Some(StrBytes::from_static_str(
                    "ringmq is a single node: replication factor 1 (or -1 for the default)",
                )));
            topics.push(result);
            continue;
        }
        let new_topic = NewTopic {
            name: name(&topic.name),
            partitions,
            configs,
        };
        let outcome = if request.validate_only {
            service.validate_new_topic(ctx, &new_topic)
        } else {
            service.create_topic(ctx, new_topic).await
        };
        if let Err(error) = outcome {
            result = result
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)));
        }
        topics.push(result);
    }
    CreateTopicsResponse::default().with_topics(topics)
}

async fn delete_topics(
    service: &Service,
    ctx: &RequestContext,
    request: kafka_protocol::messages::DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let names: Vec<TopicName> = request
        .topic_names
        .into_iter()
        .chain(request.topics.into_iter().filter_map(|topic| topic.name))
        .collect();
    let mut responses = Vec::new();
    for topic in names {
        let mut result = DeletableTopicResult::default().with_name(Some(topic.clone()));
        if let Err(error) = service.delete_topic(ctx, name(&topic)).await {
            result = result
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)));
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// Kafka's InitProducerId: the transactional id travels in the request's context.
fn init_producer_id(
    service: &Service,
    ctx: &RequestContext,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let ctx = RequestContext {
        transactional_id: request.transactional_id.map(|id| id.as_str().to_string()),
        ..ctx.clone()
    };
    let current = ProducerIdentity {
        producer_id: request.producer_id.0,
        producer_epoch: request.producer_epoch,
    };
    match service.init_producer_id(&ctx, Some(current)) {
        Ok(identity) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(identity.producer_id))
            .with_producer_epoch(identity.producer_epoch),
        Err(error) => InitProducerIdResponse::default()
            .with_error_code(code_of(&error))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
