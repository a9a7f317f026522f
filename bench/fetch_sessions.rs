//! A consumer of 4,000 partitions, with and without Kafka fetch sessions (KIP-227): the bytes
//! each fetch sends and receives, and fetches per second, while one partition gets one record
//! before each fetch (a mostly idle consumer, the case sessions are for).
//!
//! `cargo bench --bench fetch_sessions [-- --fetches N --runs R]`
//!
//! An in-process broker with 2 shards; one connection; requests encoded with the
//! `kafka-protocol` crate, as Kafka's Java client (which uses sessions) would send them. Full:
//! every fetch names every partition (session id 0, epoch -1, what librdkafka sends). Sessions:
//! one full fetch opens the session, then each fetch names only the partition it consumed.
//! Runs alternate; medians are printed. Not a test: nothing here asserts speed.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

const TOPICS: usize = 4;
const PARTITIONS_PER_TOPIC: i32 = 1000;

struct Connection {
    stream: TcpStream,
    correlation_id: i32,
    sent_bytes: u64,
    received_bytes: u64,
}

impl Connection {
    fn call(&mut self, api: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        self.correlation_id += 1;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("bench")))
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = (body.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        self.sent_bytes += frame.len() as u64;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).unwrap();
        let mut answer = vec![0u8; u32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut answer).unwrap();
        self.received_bytes += 4 + answer.len() as u64;
        let mut answer = Bytes::from(answer);
        ResponseHeader::decode(&mut answer, api.response_header_version(version)).unwrap();
        ResponseKind::decode(api, &mut answer, version).unwrap()
    }
}

fn name(topic: usize) -> TopicName {
    TopicName(StrBytes::from_string(format!("wide-{topic}")))
}

fn produce(connection: &mut Connection, topic: usize, partition: i32) {
    let mut builder = ringmq::batch::BatchBuilder::new(ringmq::batch::Compression::None);
    builder.push(ringmq::batch::Record::new(1, None, Some(&[7u8; 100])));
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(topic))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(builder.build())),
                ]),
        ]);
    connection.call(ApiKey::Produce, 8, RequestKind::Produce(request));
}

fn fetch(
    connection: &mut Connection,
    session: (i32, i32),
    partitions: &[(usize, i32, i64)],
) -> FetchResponse {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &(topic, partition, offset) in partitions {
        let entry = FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20);
        match topics.last_mut() {
            Some(last) if last.topic == name(topic) => last.partitions.push(entry),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(name(topic))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_session_id(session.0)
        .with_session_epoch(session.1)
        .with_topics(topics);
    match connection.call(ApiKey::Fetch, 12, RequestKind::Fetch(request)) {
        ResponseKind::Fetch(response) => response,
        other => panic!("Fetch answered {other:?}"),
    }
}

/// One run: `fetches` fetches, each after a record lands on the next partition in turn.
/// Returns (fetches/s, request bytes per fetch, response bytes per fetch).
fn run(address: &str, sessions: bool, fetches: usize) -> (f64, f64, f64) {
    let mut connection = Connection {
        stream: TcpStream::connect(address).unwrap(),
        correlation_id: 0,
        sent_bytes: 0,
        received_bytes: 0,
    };
    let mut offsets: Vec<(usize, i32, i64)> = Vec::new();
    for topic in 0..TOPICS {
        for partition in 0..PARTITIONS_PER_TOPIC {
            offsets.push((topic, partition, 0));
        }
    }
    // Start where the partitions end now: earlier runs left records behind.
    let start = fetch(&mut connection, (0, -1), &offsets);
    for (slot, data) in start
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .enumerate()
    {
        offsets[slot].2 = data.high_watermark;
    }
    let mut session = (0, -1);
    if sessions {
        let opened = fetch(&mut connection, (0, 0), &offsets);
        assert!(opened.session_id > 0, "a session was opened");
        session = (opened.session_id, 1);
    }
    let (mut producer, started) = (
        Connection {
            stream: TcpStream::connect(address).unwrap(),
            correlation_id: 0,
            sent_bytes: 0,
            received_bytes: 0,
        },
        Instant::now(),
    );
    let (sent_before, received_before) = (connection.sent_bytes, connection.received_bytes);
    let mut changed: Option<usize> = None;
    for n in 0..fetches {
        let slot = n * 7919 % offsets.len();
        produce(&mut producer, offsets[slot].0, offsets[slot].1);
        let response = if sessions {
            // Only the partition consumed last time has a new position to send.
            let delta: Vec<(usize, i32, i64)> = changed.map(|c| offsets[c]).into_iter().collect();
            let response = fetch(&mut connection, session, &delta);
            session.1 += 1;
            response
        } else {
            fetch(&mut connection, session, &offsets)
        };
        assert_eq!(response.error_code, 0);
        let with_records = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
            .filter(|(_, p)| p.records.as_ref().is_some_and(|r| !r.is_empty()))
            .count();
        assert_eq!(with_records, 1, "exactly the partition that got a record");
        offsets[slot].2 += 1;
        changed = Some(slot);
    }
    let seconds = started.elapsed().as_secs_f64();
    let per_fetch = |bytes: u64| bytes as f64 / fetches as f64;
    (
        fetches as f64 / seconds,
        per_fetch(connection.sent_bytes - sent_before),
        per_fetch(connection.received_bytes - received_before),
    )
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut fetches, mut runs) = (300usize, 5usize);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--fetches" => fetches = args.next().unwrap().parse().unwrap(),
            "--runs" => runs = args.next().unwrap().parse().unwrap(),
            _ => {}
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    };
    let handle = ringmq::server::start(config).expect("the broker starts");
    let address = handle.kafka_address.unwrap().to_string();
    let mut admin = Connection {
        stream: TcpStream::connect(&address).unwrap(),
        correlation_id: 0,
        sent_bytes: 0,
        received_bytes: 0,
    };
    for topic in 0..TOPICS {
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(60_000)
            .with_topics(vec![
                CreatableTopic::default()
                    .with_name(name(topic))
                    .with_num_partitions(PARTITIONS_PER_TOPIC)
                    .with_replication_factor(1),
            ]);
        match admin.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(request)) {
            ResponseKind::CreateTopics(response) => {
                assert_eq!(response.topics[0].error_code, 0, "{response:?}")
            }
            other => panic!("CreateTopics answered {other:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut results: [Vec<(f64, f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..runs {
        for (side, sessions) in [false, true].into_iter().enumerate() {
            results[side].push(run(&address, sessions, fetches));
        }
    }
    println!(
        "{} partitions, {fetches} fetches per run, {runs} runs, medians:",
        TOPICS * PARTITIONS_PER_TOPIC as usize
    );
    println!("| fetches | fetches/s | request bytes/fetch | response bytes/fetch |");
    println!("|---|---|---|---|");
    for (side, label) in ["full (no session)", "incremental (session)"]
        .iter()
        .enumerate()
    {
        let column = |index: usize| {
            let mut values: Vec<f64> = results[side]
                .iter()
                .map(|r| [r.0, r.1, r.2][index])
                .collect();
            median(&mut values)
        };
        println!(
            "| {label} | {:.0} | {:.0} | {:.0} |",
            column(0),
            column(1),
            column(2)
        );
    }
    handle.shutdown();
}
