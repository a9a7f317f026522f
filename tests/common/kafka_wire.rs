//! Kafka requests as bytes for the integration tests: encoded with the `kafka-protocol` crate's
//! client side, sent over plain blocking sockets, so a test controls every byte it sends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::TestBroker;

pub fn kafka_broker(dir: &std::path::Path) -> (TestBroker, String) {
    let broker = TestBroker::start(dir, 2);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

pub fn topic(name: &'static str) -> TopicName {
    TopicName(StrBytes::from_static_str(name))
}

pub fn group(name: &'static str) -> GroupId {
    GroupId(StrBytes::from_static_str(name))
}

/// One record batch holding `value`, as a Kafka client would produce it.
pub fn batch(value: &[u8]) -> Bytes {
    let mut builder = ringmq::batch::BatchBuilder::new(ringmq::batch::Compression::None);
    builder.push(ringmq::batch::Record::new(1, Some(b"k"), Some(value)));
    builder.build()
}

pub fn produce_request(name: &'static str, value: &[u8]) -> ProduceRequest {
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(batch(value)));
    ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![partition]),
        ])
}

pub fn fetch_request(name: &'static str) -> FetchRequest {
    let partition = FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(0)
        .with_partition_max_bytes(1 << 20);
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![partition]),
        ])
}

/// Header and body of a request (no length prefix).
pub fn encode(api: ApiKey, version: i16, correlation_id: i32, request: &RequestKind) -> Vec<u8> {
    let mut buffer = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")))
        .encode(&mut buffer, api.request_header_version(version))
        .unwrap();
    request
        .encode(&mut buffer, version)
        .unwrap_or_else(|error| panic!("{api:?} v{version} encodes: {error}"));
    buffer.to_vec()
}

pub fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

pub fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends one request and returns its response body (after the header).
pub fn call(address: &str, api: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
    let mut stream = connect(address);
    stream
        .write_all(&framed(&encode(api, version, 77, &request)))
        .unwrap();
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    let mut body = Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 77, "{api:?} answered in order");
    ResponseKind::decode(api, &mut body, version).unwrap()
}

/// The broker still answers a well-formed ApiVersions on a fresh connection.
pub fn assert_serving(address: &str) {
    match call(
        address,
        ApiKey::ApiVersions,
        0,
        RequestKind::ApiVersions(ApiVersionsRequest::default()),
    ) {
        ResponseKind::ApiVersions(response) => {
            assert_eq!(response.error_code, 0);
            assert!(!response.api_keys.is_empty());
        }
        other => panic!("ApiVersions answered {other:?}"),
    }
}

/// Creates `name` through CreateTopics v2 and checks it was created.
pub fn create_topic(address: &str, name: &'static str, partitions: i32) {
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]);
    match call(
        address,
        ApiKey::CreateTopics,
        2,
        RequestKind::CreateTopics(create),
    ) {
        ResponseKind::CreateTopics(response) => assert_eq!(response.topics[0].error_code, 0),
        other => panic!("CreateTopics answered {other:?}"),
    }
}

/// A fresh connection creates a topic, produces to it and fetches the record back.
pub fn assert_produce_and_fetch(address: &str, name: &'static str) {
    create_topic(address, name, 1);
    let value = format!("after-{name}");
    let produce = RequestKind::Produce(produce_request(name, value.as_bytes()));
    match call(address, ApiKey::Produce, 3, produce) {
        ResponseKind::Produce(response) => {
            let partition = &response.responses[0].partition_responses[0];
            assert_eq!((partition.error_code, partition.base_offset), (0, 0));
        }
        other => panic!("Produce answered {other:?}"),
    }
    match call(
        address,
        ApiKey::Fetch,
        4,
        RequestKind::Fetch(fetch_request(name)),
    ) {
        ResponseKind::Fetch(response) => {
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, 0);
            let records = partition.records.clone().unwrap();
            let decoded = ringmq::batch::records::decode(&records).unwrap();
            assert_eq!(decoded.len(), 1);
            assert_eq!(decoded[0].offset, 0);
            assert_eq!(decoded[0].record.value.as_deref(), Some(value.as_bytes()));
        }
        other => panic!("Fetch answered {other:?}"),
    }
}

/// Writes `frame` (length prefix included), then reads until the broker closes the connection
/// or `wait` passes; returns what came back.
pub fn send_raw(address: &str, frame: &[u8], wait: Duration) -> Vec<u8> {
    let mut stream = connect(address);
    stream.set_read_timeout(Some(wait)).unwrap();
    // The broker may close before reading everything; that is an allowed answer.
    let _ = stream.write_all(frame);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}
