//! Delayed delivery, FIFO message groups and deduplication over TCP against a real broker:
//! each message is delivered no earlier than its timestamp plus its delay (its header's, or its
//! group's), across a restart and from the command line; per group key strictly in order and
//! never two in flight across consumers; repeats of a deduplication id dropped at produce time
//! within the window and accepted after it.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::queue::{MessageOptions, message_headers};
use ringmq::client::{Client, QueueConsumer, QueueConsumerConfig};
use ringmq::protocol::queues::QueueMessage;
use ringmq::runtime::block_on;
use ringmq::storage::AckLevel;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn consumer(client: &Client, topic: &str, group: &str, wait_ms: u32) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages: 100,
        wait_ms,
        visibility_timeout_ms: 60_000,
        create: false,
    };
    QueueConsumer::new(client.clone(), topic, group, config)
}

/// A record produced now with `options` as headers.
fn record(key: Option<&str>, value: &str, options: MessageOptions) -> Record {
    let mut record = Record::new(
        now_ms() as i64,
        key.map(str::as_bytes),
        Some(value.as_bytes()),
    );
    record.headers = message_headers(&options);
    record
}

async fn produce(client: &Client, topic: &str, partition: u32, records: Vec<Record>) -> u64 {
    let mut builder = BatchBuilder::new(Compression::None);
    for record in records {
        builder.push(record);
    }
    let batch = BytesMut::from(&builder.build()[..]);
    client
        .produce(topic, Some(partition), b"", AckLevel::Fsynced, batch)
        .await
        .unwrap()
        .base_offset
}

fn delayed(ms: u64) -> MessageOptions {
    MessageOptions {
        delay_ms: Some(ms),
        ..MessageOptions::default()
    }
}

fn value(message: &QueueMessage) -> String {
    String::from_utf8(message.value.as_ref().unwrap().to_vec()).unwrap()
}

/// Receives and acks until `count` messages came (or 20 s passed): value -> time received.
async fn receive_timed(consumer: &QueueConsumer, count: usize) -> Vec<(String, u64)> {
    let started = now_ms();
    let mut got = Vec::new();
    while got.len() < count && now_ms() - started < 20_000 {
        let messages = consumer.receive().await.unwrap();
        let at = now_ms();
        got.extend(messages.iter().map(|m| (value(m), at)));
        if !messages.is_empty() {
            consumer.ack_all(&messages).await.unwrap();
        }
    }
    got
}

#[test]
fn delayed_messages_are_delivered_no_earlier_than_due_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let produced_at = block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("later", 1, &[]).await.unwrap();
        client.create_queue_group("later", "g", &[]).await.unwrap();
        client
            .create_queue_group("later", "slow", &[("delay_ms", "800")])
            .await
            .unwrap();
        let produced_at = now_ms();
        let records = vec![
            record(None, "now-0", MessageOptions::default()),
            record(None, "late-1500", delayed(1500)),
            record(None, "late-600", delayed(600)),
            record(None, "now-3", MessageOptions::default()),
        ];
        produce(&client, "later", 0, records).await;
        // At once: only the undelayed two, in order; the other two are counted as delayed.
        let g = consumer(&client, "later", "g", 0);
        let first = g.receive().await.unwrap();
        assert_eq!(
            first.iter().map(value).collect::<Vec<_>>(),
            ["now-0", "now-3"]
        );
        g.ack_all(&first).await.unwrap();
        let nothing = consumer(&client, "later", "slow", 0)
            .receive()
            .await
            .unwrap();
        assert!(nothing.is_empty(), "the group's delay holds all four");
        let info = client.describe_queue_group("later", "g").await.unwrap();
        assert_eq!(info.partitions[0].numbers[4], 2, "two delayed");
        let rest = receive_timed(&consumer(&client, "later", "g", 500), 2).await;
        let names: Vec<&str> = rest.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(names, ["late-600", "late-1500"]);
        assert!(rest[0].1 >= produced_at + 600, "{rest:?} {produced_at}");
        assert!(rest[1].1 >= produced_at + 1500, "{rest:?} {produced_at}");
        // The group's own delay (800) for messages without a header; headers override it.
        let slow = receive_timed(&consumer(&client, "later", "slow", 500), 4).await;
        let due: BTreeMap<&str, u64> = [
            ("now-0", 800),
            ("late-1500", 1500),
            ("late-600", 600),
            ("now-3", 800),
        ]
        .into();
        assert_eq!(slow.len(), 4, "{slow:?}");
        for (name, at) in &slow {
            assert!(*at >= produced_at + due[name.as_str()], "{name} at {at}");
        }
        // One more, delayed 2.5 s, then a restart before it is due.
        let before = now_ms();
        produce(
            &client,
            "later",
            0,
            vec![record(None, "after-restart", delayed(2500))],
        )
        .await;
        assert!(g.receive().await.unwrap().is_empty());
        before
    });
    broker.restart();
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let g = consumer(&client, "later", "g", 0);
        assert!(
            g.receive().await.unwrap().is_empty(),
            "not due yet after the restart"
        );
        let got = receive_timed(&consumer(&client, "later", "g", 500), 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "after-restart");
        assert!(got[0].1 >= produced_at + 2500, "{got:?} {produced_at}");
    });
    // From the command line: produce --delay-ms.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args([
            "produce",
            "later",
            "--delay-ms",
            "1000",
            "--broker",
            &address,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sent_at = now_ms();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from-cli\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let got = receive_timed(&consumer(&client, "later", "g", 500), 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "from-cli");
        assert!(got[0].1 >= sent_at + 1000, "{got:?} {sent_at}");
    });
}
