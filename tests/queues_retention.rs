//! Retention beside queue groups, over TCP against a real broker: with the topic's
//! `queue_retention_policy = keep` (the default) retention never deletes a segment holding a
//! message a queue group has not settled, and deletes it once the group has; with `drop` it
//! deletes as if there were no group, and the group counts what it lost
//! (`ringmq_queue_lost_total`) and delivers exactly the rest.
//!
//! Segments of 1 KiB, retention of 1 ms checked every 50 ms: every sealed segment is expired
//! as soon as it is sealed, so only the policy can keep it.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{TestBroker, scrape};
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{Client, QueueConsumer, QueueConsumerConfig};
use ringmq::protocol::queues::QueueMessage;
use ringmq::runtime::{block_on, sleep};
use ringmq::storage::AckLevel;

const MESSAGES: u64 = 100;

/// The value of the sample of `name` whose labels include every one of `labels`.
fn sample(http: &str, name: &str, labels: &[&str]) -> f64 {
    scrape(http)
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .find(|line| labels.iter().all(|label| line.contains(label)))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

fn log_start(http: &str, topic: &str) -> u64 {
    let label = format!("topic=\"{topic}\"");
    sample(http, "ringmq_log_start_offset", &[&label]) as u64
}

/// Waits up to 10 s for the log start of `topic` to pass 0.
async fn wait_for_deletion(http: &str, topic: &str) -> u64 {
    let started = Instant::now();
    while log_start(http, topic) == 0 && started.elapsed() < Duration::from_secs(10) {
        sleep(Duration::from_millis(50)).await;
    }
    log_start(http, topic)
}

/// A topic of small, quickly expiring segments with queue group `g`, holding `MESSAGES`
/// messages of about 100 bytes (`v0`, `v1`, ...), one produce each.
async fn filled(client: &Client, topic: &str, policy: &str) {
    let configs = [
        ("segment_bytes", "1024"),
        ("retention_ms", "1"),
        ("queue_retention_policy", policy),
    ];
    client.create_topic(topic, 1, &configs).await.unwrap();
    client.create_queue_group(topic, "g", &[]).await.unwrap();
    for n in 0..MESSAGES {
        let mut builder = BatchBuilder::new(Compression::None);
        let value = format!("v{n}-{}", "x".repeat(80));
        builder.push(Record::new(0, None, Some(value.as_bytes())));
        let batch = BytesMut::from(&builder.build()[..]);
        client
            .produce(topic, Some(0), b"", AckLevel::Written, batch)
            .await
            .unwrap();
    }
}

/// A broker whose retention runs every 50 ms (a broker-wide topic default).
fn broker(dir: &std::path::Path) -> TestBroker {
    let mut config = ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    };
    config.topic_defaults.retention_check_interval_ms = 50;
    TestBroker::start_with(config)
}

fn consumer(client: &Client, topic: &str) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages: 1000,
        wait_ms: 300,
        visibility_timeout_ms: 60_000,
        create: false,
    };
    QueueConsumer::new(client.clone(), topic, "g", config)
}

/// Receives until nothing comes within a receive's wait: the messages, in order.
async fn receive_all(consumer: &QueueConsumer) -> Vec<QueueMessage> {
    let mut all = Vec::new();
    loop {
        let messages = consumer.receive().await.unwrap();
        if messages.is_empty() {
            return all;
        }
        all.extend(messages);
    }
}

fn offsets(messages: &[QueueMessage]) -> Vec<u64> {
    messages.iter().map(|message| message.offset).collect()
}

#[test]
fn keep_holds_unsettled_segments_until_the_group_settles_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let (address, http) = (broker.address(), broker.http_address());
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        filled(&client, "kept", "keep").await;
        let segments = sample(&http, "ringmq_log_segments", &["topic=\"kept\""]);
        assert!(segments >= 8.0, "{segments} segments");
        // Twenty retention passes with every sealed segment expired.
        sleep(Duration::from_millis(1_000)).await;
        assert_eq!(
            log_start(&http, "kept"),
            0,
            "nothing deleted while unsettled"
        );
        let consumer = consumer(&client, "kept");
        let received = receive_all(&consumer).await;
        assert_eq!(offsets(&received), (0..MESSAGES).collect::<Vec<_>>());
        sleep(Duration::from_millis(500)).await;
        assert_eq!(log_start(&http, "kept"), 0, "delivered is not settled");
        // Acknowledged: the group's settled prefix passes every sealed segment.
        consumer.ack_all(&received).await.unwrap();
        let start = wait_for_deletion(&http, "kept").await;
        assert!(start > 0 && start < MESSAGES, "log start {start}");
        assert_eq!(lost(&http, "kept"), 0.0);
    });
}

#[test]
fn drop_deletes_unsettled_segments_and_the_group_counts_them_lost() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let (address, http) = (broker.address(), broker.http_address());
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        filled(&client, "dropped", "drop").await;
        // Every sealed segment is expired at once: a few passes delete them all.
        wait_for_deletion(&http, "dropped").await;
        sleep(Duration::from_millis(300)).await;
        let start = log_start(&http, "dropped");
        assert!(start > 0 && start < MESSAGES, "log start {start}");
        let consumer = consumer(&client, "dropped");
        let received = receive_all(&consumer).await;
        assert_eq!(offsets(&received), (start..MESSAGES).collect::<Vec<_>>());
        consumer.ack_all(&received).await.unwrap();
        // The queue's metrics are published on its shard's next 100 ms tick.
        sleep(Duration::from_millis(300)).await;
        assert_eq!(lost(&http, "dropped"), start as f64);
    });
}

fn lost(http: &str, topic: &str) -> f64 {
    let label = format!("topic=\"{topic}\"");
    sample(http, "ringmq_queue_lost_total", &[&label, "group=\"g\""])
}
