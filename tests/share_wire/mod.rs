//! Share-group requests as bytes for tests/kafka_share_wire.rs and tests/kafka_share_admin.rs:
//! a broker whose share groups start at the earliest record, requests on one connection (a
//! share session lives on its connection's shard), and the answers' fields the tests check.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;

use super::common::TestBroker;
use super::common::kafka_wire::*;
use bytes::Bytes;
use kafka_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use kafka_protocol::messages::share_fetch_request::{
    AcknowledgementBatch, FetchPartition, FetchTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use uuid::Uuid;

pub const NONE: i16 = 0;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_REQUEST: i16 = 42;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const INVALID_RECORD_STATE: i16 = 121;
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;

pub const TOPIC: &str = "wired";

pub fn broker(dir: &std::path::Path) -> (TestBroker, String) {
    broker_with(
        dir,
        ringmq::config::ShareGroupConfig {
            auto_offset_reset: "earliest".into(),
            ..Default::default()
        },
    )
}

/// A broker with these share-group settings.
pub fn broker_with(
    dir: &std::path::Path,
    share_groups: ringmq::config::ShareGroupConfig,
) -> (TestBroker, String) {
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        share_groups,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

pub fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// One request on `stream` (a share session lives on the connection's shard).
pub fn call_on(
    stream: &mut TcpStream,
    api: ApiKey,
    version: i16,
    request: RequestKind,
) -> ResponseKind {
    stream
        .write_all(&framed(&encode(api, version, 9, &request)))
        .unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 9);
    ResponseKind::decode(api, &mut body, version).unwrap()
}

pub fn topic_id(address: &str) -> Uuid {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic(TOPIC))),
    ]));
    match call(
        address,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(request),
    ) {
        ResponseKind::Metadata(response) => response.topics[0].topic_id,
        other => panic!("Metadata answered {other:?}"),
    }
}

pub fn heartbeat(address: &str, member: &str, epoch: i32) -> ShareGroupHeartbeatResponse {
    let request = ShareGroupHeartbeatRequest::default()
        .with_group_id(group("wire-group"))
        .with_member_id(text(member))
        .with_member_epoch(epoch)
        .with_subscribed_topic_names((epoch == 0).then(|| vec![topic(TOPIC)]));
    match call(
        address,
        ApiKey::ShareGroupHeartbeat,
        1,
        RequestKind::ShareGroupHeartbeat(request),
    ) {
        ResponseKind::ShareGroupHeartbeat(response) => response,
        other => panic!("ShareGroupHeartbeat answered {other:?}"),
    }
}

pub fn share_fetch(
    stream: &mut TcpStream,
    id: Uuid,
    epoch: i32,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    share_fetch_as(stream, "member-a", id, epoch, acks)
}

pub fn share_fetch_as(
    stream: &mut TcpStream,
    member: &str,
    id: Uuid,
    epoch: i32,
    acks: Vec<AcknowledgementBatch>,
) -> ShareFetchResponse {
    let partition = FetchPartition::default()
        .with_partition_index(0)
        .with_acknowledgement_batches(acks);
    let request = ShareFetchRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text(member)))
        .with_share_session_epoch(epoch)
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_max_records(3)
        .with_batch_size(3)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![partition]),
        ]);
    match call_on(
        stream,
        ApiKey::ShareFetch,
        1,
        RequestKind::ShareFetch(request),
    ) {
        ResponseKind::ShareFetch(response) => response,
        other => panic!("ShareFetch answered {other:?}"),
    }
}

pub fn acknowledge(
    stream: &mut TcpStream,
    id: Uuid,
    epoch: i32,
    batches: Vec<AckBatch>,
) -> ShareAcknowledgeResponse {
    let request = ShareAcknowledgeRequest::default()
        .with_group_id(Some(group("wire-group")))
        .with_member_id(Some(text("member-a")))
        .with_share_session_epoch(epoch)
        .with_topics(vec![
            AcknowledgeTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![
                    AcknowledgePartition::default()
                        .with_partition_index(0)
                        .with_acknowledgement_batches(batches),
                ]),
        ]);
    match call_on(
        stream,
        ApiKey::ShareAcknowledge,
        1,
        RequestKind::ShareAcknowledge(request),
    ) {
        ResponseKind::ShareAcknowledge(response) => response,
        other => panic!("ShareAcknowledge answered {other:?}"),
    }
}

pub fn ack(first: i64, last: i64, types: Vec<i8>) -> AckBatch {
    AckBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(types)
}

pub fn fetch_ack(first: i64, last: i64, types: Vec<i8>) -> AcknowledgementBatch {
    AcknowledgementBatch::default()
        .with_first_offset(first)
        .with_last_offset(last)
        .with_acknowledge_types(types)
}

/// (first, last, delivery count) of each acquired range in a fetch's only partition.
pub fn acquired(response: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
    assert_eq!(response.error_code, NONE, "{response:?}");
    response.responses[0].partitions[0]
        .acquired_records
        .iter()
        .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
        .collect()
}

pub fn ack_code(response: &ShareAcknowledgeResponse) -> i16 {
    assert_eq!(response.error_code, NONE, "{response:?}");
    response.responses[0].partitions[0].error_code
}
