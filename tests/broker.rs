//! The broker end to end: a real server on ephemeral loopback ports, two shards, spoken to over
//! TCP by the Rust client (and by raw sockets where the test needs bytes a client never sends).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{
    Client, ClientError, ConsumedRecord, Consumer, ConsumerConfig, Partitioner, Producer,
    ProducerConfig, StartAt,
};
use ringmq::protocol::{ErrorCode, FetchRequest, OffsetSpec};
use ringmq::runtime::{self, faults};
use ringmq::storage::AckLevel;

fn one_record(value: &[u8]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(1_000, None, Some(value)));
    BytesMut::from(&builder.build()[..])
}

fn code(result: Result<impl std::fmt::Debug, ClientError>) -> ErrorCode {
    match result {
        Err(ClientError::Server(error)) => error.code,
        other => panic!("expected a server error, got {other:?}"),
    }
}

/// Every record of `topic`, from the start to the end of every partition.
async fn consume_all(client: &Client, topic: &str) -> Vec<ConsumedRecord> {
    let config = ConsumerConfig {
        max_wait_ms: 0,
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::new(client.clone(), topic, None, StartAt::Earliest, config)
        .await
        .unwrap();
    let mut all = Vec::new();
    while !consumer.at_end() {
        all.extend(consumer.poll().await.unwrap());
    }
    all
}

/// The values of every record of `topic`, in consumption order.
async fn values_of(client: &Client, topic: &str) -> Vec<Bytes> {
    consume_all(client, topic)
        .await
        .into_iter()
        .map(|r| r.record.value.unwrap())
        .collect()
}

#[test]
fn concurrent_keyed_producers_round_trip_and_survive_a_restart() {
    const PRODUCERS: usize = 4;
    const PER_PRODUCER: usize = 25_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let before = runtime::block_on(async {
        let admin = Client::connect(&address).await.unwrap();
        admin.create_topic("events", 8, &[]).await.unwrap();
        let mut tasks = Vec::new();
        for producer_id in 0..PRODUCERS {
            let address = address.clone();
            tasks.push(runtime::spawn(async move {
                let client = Client::connect(&address).await.unwrap();
                let config = ProducerConfig {
                    acks: AckLevel::Written,
                    batch_bytes: 16 * 1024,
                    ..ProducerConfig::default()
                };
                let producer = Producer::new(client, config);
                let mut deliveries = Vec::new();
                for sequence in 0..PER_PRODUCER {
                    let key = format!("p{producer_id}-k{}", sequence % 25);
                    let value = format!("{key}-s{sequence:06}");
                    let record = Record::new(
                        1_000 + sequence as i64,
                        Some(key.as_bytes()),
                        Some(value.as_bytes()),
                    );
                    deliveries.push(producer.send("events", record).await.unwrap());
                }
                producer.flush().await;
                for delivery in deliveries {
                    delivery.await.unwrap().unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        consume_all(&admin, "events").await
    });
    assert_eq!(
        before.len(),
        PRODUCERS * PER_PRODUCER,
        "every message exactly once"
    );
    let mut last_sequence: HashMap<String, usize> = HashMap::new();
    let mut values = std::collections::HashSet::new();
    for consumed in &before {
        let key = String::from_utf8(consumed.record.key.clone().unwrap().to_vec()).unwrap();
        let value = String::from_utf8(consumed.record.value.clone().unwrap().to_vec()).unwrap();
        assert!(
            value.starts_with(&key),
            "value {value} belongs to key {key}"
        );
        assert_eq!(
            consumed.partition,
            Partitioner::Murmur2.partition(key.as_bytes(), 8),
            "keyed partitioning: murmur2 by default"
        );
        let sequence: usize = value.rsplit_once("-s").unwrap().1.parse().unwrap();
        if let Some(previous) = last_sequence.insert(key.clone(), sequence) {
            assert!(
                sequence > previous,
                "key {key}: {sequence} after {previous}"
            );
        }
        assert!(values.insert(value), "no duplicates");
    }
    broker.restart();
    let address = broker.address();
    let after = runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        consume_all(&client, "events").await
    });
    let ordered = |records: &[ConsumedRecord]| {
        let mut map = BTreeMap::new();
        for record in records {
            map.insert(
                (record.partition, record.offset),
                record.record.value.clone(),
            );
        }
        map
    };
    assert_eq!(
        ordered(&after),
        ordered(&before),
        "the same records at the same offsets after a restart"
    );
}

#[test]
fn a_long_poll_returns_as_soon_as_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("poll", 2, &[]).await.unwrap();
        for partition in 0..2 {
            let fetcher = client.clone();
            let started = Instant::now();
            let poll = runtime::spawn(async move {
                let request = FetchRequest {
                    topic: "poll".into(),
                    partition,
                    offset: 0,
                    max_bytes: 1 << 20,
                    min_bytes: 1,
                    max_wait_ms: 20_000,
                };
                fetcher.fetch(request).await
            });
            runtime::sleep(Duration::from_millis(100)).await;
            client
                .produce(
                    "poll",
                    Some(partition),
                    b"",
                    AckLevel::Written,
                    one_record(b"wake up"),
                )
                .await
                .unwrap();
            let response = poll.await.unwrap().unwrap();
            assert_eq!(response.high_watermark, 1);
            assert!(
                !response.records.is_empty(),
                "the waiting fetch got the record"
            );
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "woke on arrival, not at the 20 s deadline"
            );
        }
        // With nothing arriving, the long poll ends empty at its deadline.
        let request = FetchRequest {
            topic: "poll".into(),
            partition: 0,
            offset: 1,
            max_bytes: 1024,
            min_bytes: 1,
            max_wait_ms: 50,
        };
        assert!(
            client
                .fetch(request)
                .await
                .unwrap()
                .records
                .iter()
                .all(|chunk| chunk.is_empty())
        );
    });
}

#[test]
fn pipelined_requests_on_one_connection_get_their_own_replies() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("pipe", 4, &[]).await.unwrap();
        let requests = (0..300u32).map(|n| {
            let client = client.clone();
            async move {
                let partition = n % 4;
                let value = format!("request-{n}");
                let response = client
                    .produce(
                        "pipe",
                        Some(partition),
                        b"",
                        AckLevel::Written,
                        one_record(value.as_bytes()),
                    )
                    .await
                    .unwrap();
                (n, partition, response)
            }
        });
        let answers = futures_util::future::join_all(requests).await;
        assert!(client.connection().in_flight() == 0);
        let records = consume_all(&client, "pipe").await;
        let stored: HashMap<(u32, u64), Bytes> = records
            .into_iter()
            .map(|r| ((r.partition, r.offset), r.record.value.unwrap()))
            .collect();
        for (n, partition, response) in answers {
            assert_eq!(
                response.partition, partition,
                "request {n} got its own reply"
            );
            let value = &stored[&(partition, response.base_offset)];
            assert_eq!(
                &value[..],
                format!("request-{n}").as_bytes(),
                "request {n}'s offset holds its record"
            );
        }
        assert_eq!(stored.len(), 300);
    });
}

#[test]
fn unknown_topic_bad_partition_and_out_of_range_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("two", 2, &[]).await.unwrap();
        assert_eq!(
            code(
                client
                    .produce("missing", Some(0), b"", AckLevel::Written, one_record(b"x"))
                    .await
            ),
            ErrorCode::UnknownTopic
        );
        assert_eq!(
            code(
                client
                    .produce("missing", None, b"key", AckLevel::Written, one_record(b"x"))
                    .await
            ),
            ErrorCode::UnknownTopic
        );
        assert_eq!(
            code(client.list_offsets("missing", 0, OffsetSpec::Latest).await),
            ErrorCode::UnknownTopic
        );
        assert_eq!(
            code(
                client
                    .produce("two", Some(2), b"", AckLevel::Written, one_record(b"x"))
                    .await
            ),
            ErrorCode::BadPartition
        );
        let request = FetchRequest {
            topic: "two".into(),
            partition: 7,
            offset: 0,
            max_bytes: 10,
            min_bytes: 0,
            max_wait_ms: 0,
        };
        assert_eq!(code(client.fetch(request).await), ErrorCode::BadPartition);
        let request = FetchRequest {
            topic: "two".into(),
            partition: 0,
            offset: 5,
            max_bytes: 10,
            min_bytes: 0,
            max_wait_ms: 0,
        };
        assert_eq!(
            code(client.fetch(request).await),
            ErrorCode::OffsetOutOfRange
        );
        assert_eq!(
            code(client.create_topic("two", 1, &[]).await),
            ErrorCode::TopicExists
        );
        assert_eq!(
            code(client.create_topic("no/slashes", 1, &[]).await),
            ErrorCode::InvalidTopicName
        );
        assert_eq!(
            code(client.create_topic("zero", 0, &[]).await),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(
                client
                    .create_topic("bad", 1, &[("retention_ms", "soon")])
                    .await
            ),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(client.delete_topic("missing").await),
            ErrorCode::UnknownTopic
        );
    });
}

#[test]
fn oversized_and_corrupt_batches_are_refused_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client
            .create_topic("small", 1, &[("batch_bytes_max", "1024")])
            .await
            .unwrap();
        let large = one_record(&[7u8; 2000]);
        assert_eq!(
            code(
                client
                    .produce("small", Some(0), b"", AckLevel::Written, large)
                    .await
            ),
            ErrorCode::RecordTooLarge
        );
        let mut corrupt = one_record(b"hello");
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0x55;
        assert_eq!(
            code(
                client
                    .produce("small", Some(0), b"", AckLevel::Written, corrupt)
                    .await
            ),
            ErrorCode::CorruptBatch
        );
        let garbage = BytesMut::from(
            &b"not a record batch at all, just some bytes......................."[..],
        );
        assert_eq!(
            code(
                client
                    .produce("small", Some(0), b"", AckLevel::Written, garbage)
                    .await
            ),
            ErrorCode::CorruptBatch
        );
        let (_, end, _) = client
            .list_offsets("small", 0, OffsetSpec::Latest)
            .await
            .unwrap();
        assert_eq!(end, 0, "nothing was stored");
        let ack = client
            .produce(
                "small",
                Some(0),
                b"",
                AckLevel::Fsynced,
                one_record(b"fine"),
            )
            .await
            .unwrap();
        assert_eq!(ack.base_offset, 0);
    });
}

#[test]
fn a_full_disk_is_reported_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let partition_dir = dir.path().join("topics").join("full-0");
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("full", 1, &[]).await.unwrap();
        client
            .produce(
                "full",
                Some(0),
                b"",
                AckLevel::Fsynced,
                one_record(b"before"),
            )
            .await
            .unwrap();
        faults::fail_writes_after(&partition_dir, 0);
        let refused = client
            .produce(
                "full",
                Some(0),
                b"",
                AckLevel::Fsynced,
                one_record(b"refused"),
            )
            .await;
        faults::clear(&partition_dir);
        assert_eq!(code(refused), ErrorCode::DiskFull);
        let ack = client
            .produce(
                "full",
                Some(0),
                b"",
                AckLevel::Fsynced,
                one_record(b"after"),
            )
            .await
            .unwrap();
        assert_eq!(ack.base_offset, 1, "the refused record took no offset");
        let values = values_of(&client, "full").await;
        assert_eq!(
            values,
            vec![Bytes::from_static(b"before"), Bytes::from_static(b"after")]
        );
    });
}

#[test]
fn a_partition_whose_queue_stays_full_answers_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 1,
        produce_queue_wait_ms_max: 200,
        ..Default::default()
    };
    config.topic_defaults.pending_bytes_max = 64 * 1024;
    config.topic_defaults.batch_bytes_max = 64 * 1024;
    let broker = TestBroker::start_with(config);
    let partition_dir = dir.path().join("topics").join("slow-0");
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("slow", 1, &[]).await.unwrap();
        faults::stall_writes(&partition_dir);
        // The first append is taken by the (stalled) writer, the second fills the queue.
        client
            .produce(
                "slow",
                Some(0),
                b"",
                AckLevel::None,
                one_record(&[1u8; 40_000]),
            )
            .await
            .unwrap();
        runtime::sleep(Duration::from_millis(50)).await;
        client
            .produce(
                "slow",
                Some(0),
                b"",
                AckLevel::None,
                one_record(&[2u8; 40_000]),
            )
            .await
            .unwrap();
        let throttled = client
            .produce(
                "slow",
                Some(0),
                b"",
                AckLevel::Written,
                one_record(&[3u8; 40_000]),
            )
            .await;
        faults::clear(&partition_dir);
        let error = match throttled {
            Err(ClientError::Server(error)) => error,
            other => panic!("expected throttled, got {other:?}"),
        };
        assert_eq!(error.code, ErrorCode::Throttled);
        assert!(error.code.is_retriable());
        let ack = client
            .produce(
                "slow",
                Some(0),
                b"",
                AckLevel::Written,
                one_record(&[4u8; 100]),
            )
            .await
            .unwrap();
        assert_eq!(ack.base_offset, 2, "the throttled append took no offset");
    });
}

/// A raw frame: length prefix, then the request header, then `body`.
fn raw_frame(api_key: u16, version: u16, correlation_id: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    let length = 10 + body.len();
    frame.extend_from_slice(&(length as u32).to_be_bytes());
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&0u16.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// Reads one response frame: (correlation id, error code, message).
fn read_response(stream: &mut std::net::TcpStream) -> (u32, u16, String) {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut frame).unwrap();
    let correlation = u32::from_be_bytes(frame[0..4].try_into().unwrap());
    let error = u16::from_be_bytes(frame[4..6].try_into().unwrap());
    let length = u16::from_be_bytes(frame[6..8].try_into().unwrap()) as usize;
    (
        correlation,
        error,
        String::from_utf8_lossy(&frame[8..8 + length]).into_owned(),
    )
}

fn assert_closed(stream: &mut std::net::TcpStream) {
    let mut rest = Vec::new();
    stream
        .read_to_end(&mut rest)
        .expect("the broker closes, it does not reset or hang");
    assert!(rest.is_empty(), "nothing after the error frame");
}

fn raw_connect(address: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn an_unsupported_version_or_unknown_api_is_an_error_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let mut stream = raw_connect(&broker.address());
    stream.write_all(&raw_frame(0, 9, 41, &[])).unwrap();
    let (correlation, error, message) = read_response(&mut stream);
    assert_eq!(
        (correlation, error),
        (41, ErrorCode::UnsupportedVersion as u16)
    );
    assert!(message.contains("version 9"), "{message}");
    stream.write_all(&raw_frame(999, 0, 42, &[])).unwrap();
    assert_eq!(read_response(&mut stream).1, ErrorCode::UnknownApi as u16);
    stream.write_all(&raw_frame(0, 0, 43, &[])).unwrap();
    let (correlation, error, _) = read_response(&mut stream);
    assert_eq!(
        (correlation, error),
        (43, 0),
        "the same connection still works"
    );
}

#[test]
fn garbage_frames_close_only_their_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let good = Client::connect(&address).await.unwrap();
        good.create_topic("safe", 2, &[]).await.unwrap();
        good.produce("safe", Some(0), b"", AckLevel::Written, one_record(b"one"))
            .await
            .unwrap();

        // A frame too short for a header.
        let mut short = raw_connect(&address);
        short.write_all(&[0, 0, 0, 3, 1, 2, 3]).unwrap();
        assert_eq!(
            read_response(&mut short).1,
            ErrorCode::MalformedRequest as u16
        );
        assert_closed(&mut short);
        // A produce whose body is cut short.
        let mut truncated = raw_connect(&address);
        truncated
            .write_all(&raw_frame(4, 0, 7, &[0, 4, b's', b'a']))
            .unwrap();
        let (correlation, error, _) = read_response(&mut truncated);
        assert_eq!(
            (correlation, error),
            (7, ErrorCode::MalformedRequest as u16)
        );
        assert_closed(&mut truncated);
        // A length prefix far over the limit.
        let mut huge = raw_connect(&address);
        huge.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0]).unwrap();
        let (_, error, message) = read_response(&mut huge);
        assert_eq!(error, ErrorCode::FrameTooLarge as u16, "{message}");
        assert_closed(&mut huge);
        // Pure noise.
        let mut noise = raw_connect(&address);
        noise
            .write_all(&[0, 0, 0, 12, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1, 0, 0, 9, 9])
            .unwrap();
        let _ = read_response(&mut noise);

        good.produce("safe", Some(0), b"", AckLevel::Written, one_record(b"two"))
            .await
            .unwrap();
        let values = values_of(&good, "safe").await;
        assert_eq!(
            values,
            vec![Bytes::from_static(b"one"), Bytes::from_static(b"two")]
        );
    });
}

#[test]
fn consumers_start_at_earliest_latest_offset_or_timestamp_and_deleted_topics_go() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("replay", 1, &[]).await.unwrap();
        for n in 0..10i64 {
            let mut builder = BatchBuilder::new(Compression::Lz4);
            builder.push(Record::new(
                10_000 + n * 100,
                None,
                Some(format!("v{n}").as_bytes()),
            ));
            let records = BytesMut::from(&builder.build()[..]);
            client
                .produce("replay", Some(0), b"", AckLevel::Written, records)
                .await
                .unwrap();
        }
        let values = |records: Vec<ConsumedRecord>| -> Vec<String> {
            records
                .into_iter()
                .map(|r| String::from_utf8(r.record.value.unwrap().to_vec()).unwrap())
                .collect()
        };
        let config = ConsumerConfig {
            max_wait_ms: 0,
            ..ConsumerConfig::default()
        };
        for (start, first) in [
            (StartAt::Earliest, "v0"),
            (StartAt::Offset(7), "v7"),
            (StartAt::Timestamp(10_450), "v5"),
        ] {
            let mut consumer = Consumer::new(client.clone(), "replay", None, start, config.clone())
                .await
                .unwrap();
            let got = values(consumer.poll().await.unwrap());
            assert_eq!(got.first().map(String::as_str), Some(first), "{start:?}");
            assert_eq!(got.last().map(String::as_str), Some("v9"));
        }
        let mut latest = Consumer::new(
            client.clone(),
            "replay",
            None,
            StartAt::Latest,
            config.clone(),
        )
        .await
        .unwrap();
        assert!(latest.poll().await.unwrap().is_empty());
        assert_eq!(
            client
                .list_offsets("replay", 0, OffsetSpec::Timestamp(99_999))
                .await
                .unwrap()
                .0,
            None
        );

        client.delete_topic("replay").await.unwrap();
        assert!(
            !dir.path().join("topics").join("replay-0").exists(),
            "its data is gone"
        );
        assert!(client.metadata(&[]).await.unwrap().is_empty());
        client.create_topic("replay", 1, &[]).await.unwrap();
        let (_, end, _) = client
            .list_offsets("replay", 0, OffsetSpec::Latest)
            .await
            .unwrap();
        assert_eq!(end, 0, "a re-created topic starts empty");
    });
}

/// The /metrics text, once `ready` holds for it (or after 10 s).
fn scrape_until(http: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut stream = raw_connect(http);
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response.split_once("\r\n\r\n").unwrap().1.to_string();
        if ready(&body) || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn deleted_topics_and_groups_drop_their_series_and_metrics_stay_valid() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: String::new(),
        shards: 2,
        group_lag_interval_ms: 50,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    let http = broker.http_address();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        for topic in ["kept", "gone"] {
            client.create_topic(topic, 1, &[]).await.unwrap();
            client
                .produce(topic, Some(0), b"", AckLevel::Fsynced, one_record(b"m"))
                .await
                .unwrap();
        }
        for group in ["staying", "dropped"] {
            client
                .commit_offsets(group, "", 0, vec![("kept".into(), 0, 1)])
                .await
                .unwrap();
        }
    });
    let before = scrape_until(&http, |body| body.contains("group=\"dropped\""));
    assert!(
        before.contains("topic=\"gone\""),
        "the topic's series exist first"
    );
    assert!(before.contains("group=\"dropped\""), "and the group's");
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.delete_topic("gone").await.unwrap();
        client.delete_group("dropped").await.unwrap();
        let refused = client
            .produce("gone", Some(0), b"", AckLevel::Fsynced, one_record(b"late"))
            .await;
        assert_eq!(code(refused), ErrorCode::UnknownTopic);
    });
    let after = scrape_until(&http, |_| true);
    assert!(!after.contains("topic=\"gone\""), "{after}");
    assert!(!after.contains("group=\"dropped\""), "{after}");
    assert!(after.contains("ringmq_log_end_offset{topic=\"kept\",partition=\"0\"} 1"));
    assert!(after.contains("ringmq_group_lag{group=\"staying\""));
    // The recorder is global to the test process, and other tests here refuse unknown topics
    // too: the refusal above must have moved the counter, by however much the others did.
    let unknown_topic_errors = |body: &str| -> u64 {
        body.lines()
            .find_map(|line| {
                line.strip_prefix(
                    "ringmq_request_errors_total{protocol=\"native\",code=\"unknown_topic\"} ",
                )
            })
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        unknown_topic_errors(&after) > unknown_topic_errors(&before),
        "errors are counted by code: {after}"
    );
    promtool_check_metrics(&after);

    // A topic created again under the deleted name is served again.
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("gone", 1, &[]).await.unwrap();
    });
    let again = scrape_until(&http, |_| true);
    assert!(again.contains("ringmq_log_end_offset{topic=\"gone\",partition=\"0\"} 0"));
}

#[test]
fn metrics_are_served_in_prometheus_text_format() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("watched", 1, &[]).await.unwrap();
        client
            .produce("watched", Some(0), b"", AckLevel::Fsynced, one_record(b"m"))
            .await
            .unwrap();
        // Segments of 1 KiB, so the second and third 600-byte records roll one each; 8 partitions, so some
        // are owned by the shard this connection is not on and their produces hop.
        client
            .create_topic("staged", 8, &[("segment_bytes", "1024")])
            .await
            .unwrap();
        for partition in 0..8 {
            client
                .produce(
                    "staged",
                    Some(partition),
                    b"",
                    AckLevel::Written,
                    one_record(b"s"),
                )
                .await
                .unwrap();
        }
        for _ in 0..3 {
            client
                .produce(
                    "staged",
                    Some(0),
                    b"",
                    AckLevel::Written,
                    one_record(&[7; 600]),
                )
                .await
                .unwrap();
        }
    });
    let mut stream = raw_connect(&broker.http_address());
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    for name in [
        "ringmq_log_appended_bytes_total{topic=\"watched\",partition=\"0\"}",
        "ringmq_log_end_offset{topic=\"watched\",partition=\"0\"} 1",
        "ringmq_log_fsync_seconds_bucket",
        "ringmq_produce_latency_seconds_bucket",
        "ringmq_shard_connections",
        "ringmq_shard_inflight_bytes",
        // The latency breakdown of issue 17's stalls: connection stages, hops, queue, roll.
        "listener=\"native\",stage=\"admit\"",
        "listener=\"native\",stage=\"handle\"",
        "listener=\"native\",stage=\"send\"",
        "ringmq_shard_hop_seconds_bucket{direction=\"to\"",
        "ringmq_shard_hop_seconds_bucket{direction=\"back\"",
        "ringmq_log_queue_seconds_bucket{topic=\"staged\"",
        "ringmq_log_roll_seconds_count{topic=\"staged\",partition=\"0\"} 2",
    ] {
        assert!(response.contains(name), "missing {name}");
    }
    let body = response.split_once("\r\n\r\n").unwrap().1;
    promtool_check_metrics(body);
}

#[test]
fn an_idle_partition_does_not_hold_up_a_consumer_of_a_busy_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("mixed", 2, &[]).await.unwrap();
        let config = ConsumerConfig {
            max_wait_ms: 20_000,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client.clone(), "mixed", None, StartAt::Earliest, config)
            .await
            .unwrap();
        let producer = client.clone();
        runtime::spawn_detached(async move {
            runtime::sleep(Duration::from_millis(100)).await;
            producer
                .produce(
                    "mixed",
                    Some(1),
                    b"",
                    AckLevel::Written,
                    one_record(b"busy"),
                )
                .await
                .unwrap();
        });
        let started = Instant::now();
        let records = consumer.poll().await.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "returned on arrival, not after partition 0's 20 s wait"
        );
        assert_eq!(records.len(), 1);
        assert_eq!(
            (
                records[0].partition,
                &records[0].record.value.clone().unwrap()[..]
            ),
            (1, &b"busy"[..])
        );
        assert_eq!(
            (consumer.position(0), consumer.position(1)),
            (Some(0), Some(1))
        );
    });
}

#[test]
fn the_number_of_topics_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        topics_max: 2,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("one", 1, &[]).await.unwrap();
        client.create_topic("two", 1, &[]).await.unwrap();
        assert_eq!(
            code(client.create_topic("three", 1, &[]).await),
            ErrorCode::InvalidConfig
        );
        client.delete_topic("one").await.unwrap();
        client.create_topic("three", 1, &[]).await.unwrap();
    });
}

#[test]
fn a_second_broker_on_a_port_in_use_fails_instead_of_sharing_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let other = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: other.path().to_path_buf(),
        listen: broker.address(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        ..Default::default()
    };
    let error = ringmq::server::start(config)
        .err()
        .expect("the port is taken");
    assert!(
        error.contains("listen on") && error.contains("in use"),
        "{error}"
    );
}

/// `promtool check metrics` on an exposition; a missing promtool fails under tools/test.
fn promtool_check_metrics(body: &str) {
    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    match promtool {
        Ok(mut child) => {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(body.as_bytes())
                .unwrap();
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Err(error) => common::tool_missing("promtool", &error),
    }
}

#[test]
fn a_topic_grows_its_partitions_keeps_its_data_and_the_growth_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("growing", 2, &[]).await.unwrap();
        for partition in 0..2 {
            client
                .produce(
                    "growing",
                    Some(partition),
                    b"",
                    AckLevel::Written,
                    one_record(b"old"),
                )
                .await
                .unwrap();
        }
        client.add_partitions("growing", 5).await.unwrap();
        assert_eq!(
            client.metadata(&["growing"]).await.unwrap()[0].partitions,
            5
        );
        for partition in 2..5 {
            let done = client
                .produce(
                    "growing",
                    Some(partition),
                    b"",
                    AckLevel::Written,
                    one_record(b"new"),
                )
                .await
                .unwrap();
            assert_eq!(done.base_offset, 0, "partition {partition} starts empty");
        }
        assert_eq!(
            code(client.add_partitions("growing", 5).await),
            ErrorCode::InvalidConfig,
            "a topic only grows"
        );
        assert_eq!(
            code(client.add_partitions("growing", 3).await),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(client.add_partitions("absent", 3).await),
            ErrorCode::UnknownTopic
        );
    });
    broker.restart();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        assert_eq!(
            client.metadata(&["growing"]).await.unwrap()[0].partitions,
            5
        );
        let mut values: Vec<Bytes> = values_of(&client, "growing").await;
        values.sort();
        assert_eq!(values, ["new", "new", "new", "old", "old"]);
    });
}
