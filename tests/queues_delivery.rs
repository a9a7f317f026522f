//! Delayed delivery and FIFO message groups over TCP against a real broker: each message is
//! delivered no earlier than its timestamp plus its delay (its header's, or its group's),
//! across a restart and from the command line; per group key strictly in order and never two
//! in flight across consumers, a released head before its successors.

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

/// Runs `ringmq produce ARGS --broker ADDRESS` with `stdin` as its input; it must succeed.
fn cli_produce(address: &str, args: &[&str], stdin: &[u8]) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .arg("produce")
        .args(args)
        .args(["--broker", address])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    assert!(child.wait().unwrap().success());
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
    let sent_at = now_ms();
    cli_produce(&address, &["later", "--delay-ms", "1000"], b"from-cli\n");
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let got = receive_timed(&consumer(&client, "later", "g", 500), 1).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "from-cli");
        assert!(got[0].1 >= sent_at + 1000, "{got:?} {sent_at}");
    });
}

fn keyed(key: &str, value: &str) -> Record {
    record(
        None,
        value,
        MessageOptions {
            group_key: Some(key.into()),
            ..MessageOptions::default()
        },
    )
}

/// The group key of a value "k<key>-<seq>": (key, seq).
fn key_and_seq(value: &str) -> (String, u32) {
    let (key, seq) = value.split_once('-').unwrap();
    (key.to_string(), seq.parse().unwrap())
}

#[test]
fn fifo_groups_deliver_each_key_in_order_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("orders", 1, &[]).await.unwrap();
        client
            .create_queue_group("orders", "g", &[("fifo", "header")])
            .await
            .unwrap();
        let records = (0..30)
            .map(|i| keyed(&format!("k{}", i % 5), &format!("k{}-{}", i % 5, i / 5)))
            .collect();
        produce(&client, "orders", 0, records).await;
        let consumers: Vec<QueueConsumer> = (0..3)
            .map(|_| consumer(&client, "orders", "g", 0))
            .collect();
        // The first receive gets each key's head only; the next consumer gets nothing.
        let heads = consumers[0].receive().await.unwrap();
        let values: Vec<String> = heads.iter().map(value).collect();
        assert_eq!(values, ["k0-0", "k1-0", "k2-0", "k3-0", "k4-0"]);
        assert!(consumers[1].receive().await.unwrap().is_empty());
        let info = client.describe_queue_group("orders", "g").await.unwrap();
        assert_eq!(info.partitions[0].numbers[4], 25, "the rest parked");
        // Settling one head frees exactly that key's next message, for any consumer.
        consumers[0].ack(&heads[0]).await.unwrap();
        let next = consumers[1].receive().await.unwrap();
        assert_eq!(next.iter().map(value).collect::<Vec<_>>(), ["k0-1"]);
        // A released head comes back before its successors.
        consumers[0].release(&heads[1], 0).await.unwrap();
        let again = consumers[2].receive().await.unwrap();
        assert_eq!(again.iter().map(value).collect::<Vec<_>>(), ["k1-0"]);
        assert_eq!(again[0].deliveries, 2);

        // Round-robin the rest, releasing every third delivery once: per key, never two in
        // flight and acks in order.
        let mut held: Vec<Vec<QueueMessage>> = vec![heads[2..].to_vec(), next, again];
        let mut acked: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        acked.entry("k0".into()).or_default().push(0);
        let mut released = std::collections::BTreeSet::new();
        let mut turn = 0;
        while acked.values().map(Vec::len).sum::<usize>() < 30 && turn < 500 {
            let c = turn % 3;
            turn += 1;
            let in_flight: Vec<String> = held
                .iter()
                .flatten()
                .map(|m| key_and_seq(&value(m)).0)
                .collect();
            for message in consumers[c].receive().await.unwrap() {
                let (key, _) = key_and_seq(&value(&message));
                assert!(!in_flight.contains(&key), "two of {key} in flight");
                held[c].push(message);
            }
            for message in std::mem::take(&mut held[c]) {
                let name = value(&message);
                if released.insert(name.clone()) && name.ends_with('2') {
                    consumers[c].release(&message, 0).await.unwrap();
                    continue;
                }
                consumers[c].ack(&message).await.unwrap();
                let (key, seq) = key_and_seq(&name);
                acked.entry(key).or_default().push(seq);
            }
        }
        for (key, seqs) in &acked {
            assert_eq!(seqs, &(0..6).collect::<Vec<u32>>(), "{key}");
        }
        assert_eq!(acked.len(), 5);

        // Messages without a key are not ordered: all at once.
        let plain = (0..3).map(|i| record(None, &format!("plain-{i}"), MessageOptions::default()));
        produce(&client, "orders", 0, plain.collect()).await;
        assert_eq!(consumers[0].receive().await.unwrap().len(), 3);
    });
    // From the command line: two lines of one group key, one at a time.
    cli_produce(
        &address,
        &["orders", "--group-key", "cli"],
        b"cli-0\ncli-1\n",
    );
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let c = consumer(&client, "orders", "g", 1000);
        let first = c.receive().await.unwrap();
        assert_eq!(first.iter().map(value).collect::<Vec<_>>(), ["cli-0"]);
        c.ack_all(&first).await.unwrap();
        let second = c.receive().await.unwrap();
        assert_eq!(second.iter().map(value).collect::<Vec<_>>(), ["cli-1"]);
    });
}

/// The client's header names are the broker's (the client may not name the broker's code).
#[test]
fn the_client_and_the_broker_name_the_same_headers() {
    use ringmq::broker::queues;
    assert_eq!(
        ringmq::client::queue::DELAY_HEADER,
        queues::delay::DELAY_HEADER
    );
    assert_eq!(
        ringmq::client::queue::GROUP_KEY_HEADER,
        queues::state::fifo::GROUP_KEY_HEADER
    );
}

/// The shard's queue timer wakes at the earliest deadline, not only every
/// `lock_check_interval_ms`: with that tick ten minutes apart, a delay of 300 ms and a lock of
/// 300 ms still end while a receive waits (before, both waited for the tick).
#[test]
fn delays_and_locks_end_at_their_deadline_not_at_the_next_tick() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().into(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        queues: ringmq::config::QueueConfig {
            lock_check_interval_ms: 600_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("soon", 1, &[]).await.unwrap();
        client.create_queue_group("soon", "g", &[]).await.unwrap();
        let waiting = consumer(&client, "soon", "g", 10_000);
        produce(&client, "soon", 0, vec![record(None, "d", delayed(300))]).await;
        let due = now_ms() + 300;
        let got = waiting.receive().await.unwrap();
        assert_eq!(got.iter().map(value).collect::<Vec<_>>(), ["d"]);
        // The record's timestamp was taken before `due`: it cannot be early by this clock.
        assert!(now_ms() + 50 >= due, "delivered before its delay ended");
        waiting.ack_all(&got).await.unwrap();

        let short_lock = QueueConsumer::new(
            client.clone(),
            "soon",
            "g",
            QueueConsumerConfig {
                max_messages: 10,
                wait_ms: 10_000,
                visibility_timeout_ms: 300,
                create: false,
            },
        );
        produce(
            &client,
            "soon",
            0,
            vec![record(None, "v", MessageOptions::default())],
        )
        .await;
        let first = short_lock.receive().await.unwrap();
        assert_eq!(
            first
                .iter()
                .map(|m| (value(m), m.deliveries))
                .collect::<Vec<_>>(),
            [("v".to_string(), 1)]
        );
        // Not acknowledged: its lock ends in 300 ms and the waiting receive gets it again.
        let again = short_lock.receive().await.unwrap();
        assert_eq!(
            again
                .iter()
                .map(|m| (value(m), m.deliveries))
                .collect::<Vec<_>>(),
            [("v".to_string(), 2)]
        );
    });
}
