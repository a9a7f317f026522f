//! Quotas of bytes and of requests: a client over its quota is slowed to it (its answers held back), never
//! disconnected; Kafka's answer says by how much in `throttle_time_ms`; the throttling is
//! counted.

mod common;

use std::time::{Duration, Instant};

use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use ringmq::client::Client;
use ringmq::runtime;

fn broker(dir: &std::path::Path, produce_rate: u64) -> TestBroker {
    TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 1,
        quota_produce_bytes_per_second: produce_rate,
        ..Default::default()
    })
}

/// A batch of about `bytes` (records of 1 KiB).
fn batch_of(bytes: usize) -> bytes::BytesMut {
    let mut builder = ringmq::batch::BatchBuilder::new(ringmq::batch::Compression::None);
    let value = vec![b'q'; 1024];
    for _ in 0..bytes / 1024 {
        builder.push(ringmq::batch::Record::new(0, None, Some(&value)));
    }
    bytes::BytesMut::from(&builder.build()[..])
}

#[test]
fn a_native_producer_is_slowed_to_its_quota_within_ten_percent() {
    const RATE: u64 = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), RATE);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("limited", 1, &[]).await.unwrap();
        let started = Instant::now();
        let mut sent = 0u64;
        for _ in 0..20 {
            let batch = batch_of(50_000);
            sent += batch.len() as u64;
            client
                .produce(
                    "limited",
                    Some(0),
                    b"",
                    ringmq::storage::AckLevel::Written,
                    batch,
                )
                .await
                .unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        // The bucket starts full (one second of the rate); the rest goes at the rate.
        let rate = (sent - RATE) as f64 / elapsed;
        assert!(
            (0.9 * RATE as f64..=1.1 * RATE as f64).contains(&rate),
            "{sent} bytes in {elapsed:.2} s: {rate:.0} B/s against a quota of {RATE}"
        );
    });
    let metrics = http_get(&broker.http_address(), "/metrics");
    assert!(
        metrics.contains("ringmq_quota_throttled_requests_total{kind=\"produce\"}"),
        "{metrics}"
    );
}

fn http_get(address: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes())
        .unwrap();
    let mut body = String::new();
    stream.read_to_string(&mut body).unwrap();
    body
}

/// Produces a batch of about `bytes` to "limited" 0 over Kafka (v9); the answer's
/// `throttle_time_ms`, once it is known to be a success.
fn kafka_produce(address: &str, bytes: usize) -> i32 {
    let partition = PartitionProduceData::default()
        .with_index(0)
        .with_records(Some(batch_of(bytes).freeze()));
    let request = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(topic("limited"))
                .with_partition_data(vec![partition]),
        ]);
    match call(address, ApiKey::Produce, 9, RequestKind::Produce(request)) {
        ResponseKind::Produce(response) => {
            assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
            response.throttle_time_ms
        }
        other => panic!("Produce answered {other:?}"),
    }
}

#[test]
fn kafka_answers_say_how_long_they_were_held_back() {
    const RATE: u64 = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path(), RATE);
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    create_topic(&address, "limited", 1);
    // 150 KB at once: 100 KB pass, 50 KB are debt, half a second of it.
    let started = Instant::now();
    let throttle = kafka_produce(&address, 150_000);
    assert!(
        (450..=560).contains(&throttle),
        "throttle_time_ms {throttle}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "the answer was held back"
    );
    // The connection was not closed: the broker serves the next request.
    assert_serving(&address);
}

fn broker_with(dir: &std::path::Path, config: ringmq::config::BrokerConfig) -> TestBroker {
    TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 1,
        ..config
    })
}

#[test]
fn a_native_client_is_slowed_to_its_request_rate_within_ten_percent() {
    const RATE: u64 = 50;
    const REQUESTS: u64 = 150;
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        quota_requests_per_second: RATE,
        ..Default::default()
    };
    let broker = broker_with(dir.path(), config);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let started = Instant::now();
        for _ in 0..REQUESTS {
            client.metadata(&[]).await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        // A full bucket (one second of the rate) passes at once; the rest goes at the rate.
        let rate = (REQUESTS - RATE) as f64 / elapsed;
        assert!(
            (0.9 * RATE as f64..=1.1 * RATE as f64).contains(&rate),
            "{REQUESTS} requests in {elapsed:.2} s: {rate:.1}/s against a quota of {RATE}/s"
        );
    });
}

#[test]
fn a_client_ids_own_quota_replaces_the_default_and_kafka_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ringmq::config::BrokerConfig::default();
    // No default quota; the Kafka test client ("fuzz") may make one request a second.
    config.quota_overrides.insert(
        "client-id:fuzz".into(),
        ringmq::config::QuotaOverride {
            requests_per_second: Some(1),
            ..Default::default()
        },
    );
    let broker = broker_with(dir.path(), config);
    let kafka = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    create_topic(&kafka, "limited", 1);
    // The creation took the second's one request: this produce waits about a second, and
    // its answer says so.
    let throttle = kafka_produce(&kafka, 1024);
    assert!(
        (700..=1000).contains(&throttle),
        "throttle_time_ms {throttle}"
    );
    // Another client (the native one, no override) has no quota at all: at fuzz's rate these
    // would take 200 s.
    let started = Instant::now();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        for _ in 0..200 {
            client.metadata(&["limited"]).await.unwrap();
        }
    });
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let metrics = http_get(&broker.http_address(), "/metrics");
    assert!(
        metrics.contains("ringmq_quota_throttled_requests_total{kind=\"requests\"}"),
        "{metrics}"
    );
    assert_serving(&kafka);
}
