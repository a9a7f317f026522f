//! Purge and redrive over TCP against a real broker: a purge settles exactly what is available
//! (not what is locked or delayed), durably across a restart; a redrive moves dead letters back
//! to their source partition, or to a named topic, in order, without their dead-letter headers,
//! at its rate limit, each once; both from the command line too.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Header, Record, records};
use ringmq::client::{Client, ClientError, QueueConsumer, QueueConsumerConfig, Redrive};
use ringmq::protocol::queues::QueueMessage;
use ringmq::protocol::{ErrorCode, FetchRequest};
use ringmq::runtime::block_on;
use ringmq::storage::AckLevel;

fn consumer(client: &Client, topic: &str, group: &str, max_messages: u32) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages,
        wait_ms: 200,
        visibility_timeout_ms: 60_000,
        create: false,
    };
    QueueConsumer::new(client.clone(), topic, group, config)
}

/// Produces `values` to `partition` of `topic`, each with key "the-key" and header trace=t-1.
async fn produce(client: &Client, topic: &str, partition: u32, values: &[String]) {
    let mut builder = BatchBuilder::new(Compression::None);
    for value in values {
        let mut record = Record::new(1, Some(b"the-key"), Some(value.as_bytes()));
        record.headers.push(Header {
            key: "trace".into(),
            value: Some(Bytes::from_static(b"t-1")),
        });
        builder.push(record);
    }
    let batch = BytesMut::from(&builder.build()[..]);
    client
        .produce(topic, Some(partition), b"", AckLevel::Fsynced, batch)
        .await
        .unwrap();
}

fn values(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i}")).collect()
}

fn value(message: &QueueMessage) -> String {
    String::from_utf8(message.value.as_ref().unwrap().to_vec()).unwrap()
}

/// Receives until a receive comes back empty; (partition, value) of each message, unsettled.
async fn receive_all(consumer: &QueueConsumer) -> Vec<QueueMessage> {
    let mut all = Vec::new();
    loop {
        let got = consumer.receive().await.unwrap();
        if got.is_empty() {
            return all;
        }
        all.extend(got);
    }
}

/// Every record of partition 0 of `topic`: (offset, value, header keys).
async fn read_all(client: &Client, topic: &str) -> Vec<(u64, String, Vec<String>)> {
    let fetched = client
        .fetch(FetchRequest {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            min_bytes: 0,
            max_wait_ms: 0,
        })
        .await
        .unwrap();
    let bytes: Vec<u8> = fetched.records.concat();
    ringmq::batch::iter_framed(&bytes)
        .flat_map(|(_, batch)| records::decode(batch).unwrap())
        .map(|stored| {
            let record = stored.record;
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            let keys = record.headers.into_iter().map(|h| h.key).collect();
            (stored.offset as u64, value, keys)
        })
        .collect()
}

fn code(error: ClientError) -> ErrorCode {
    error.code().expect("a broker error")
}

#[test]
fn a_purge_settles_what_is_available_and_keeps_locked_and_delayed_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let (locked, delayed) = block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("work", 2, &[]).await.unwrap();
        client.create_queue_group("work", "w", &[]).await.unwrap();
        for partition in 0..2 {
            produce(
                &client,
                "work",
                partition,
                &values(&format!("p{partition}-"), 0..10),
            )
            .await;
        }
        let holder = consumer(&client, "work", "w", 5);
        let locked = holder.receive().await.unwrap();
        assert_eq!(locked.len(), 5);
        let releaser = consumer(&client, "work", "w", 1);
        let delayed = releaser.receive().await.unwrap();
        releaser.release(&delayed[0], 600_000).await.unwrap();

        assert_eq!(client.purge_queue_group("work", "w").await.unwrap(), 14);
        let described = client.describe_queue_group("work", "w").await.unwrap();
        let sum =
            |field: usize| -> u64 { described.partitions.iter().map(|p| p.numbers[field]).sum() };
        // available, in_flight, delayed
        assert_eq!((sum(2), sum(3), sum(4)), (0, 5, 1));
        assert!(
            consumer(&client, "work", "w", 100)
                .receive()
                .await
                .unwrap()
                .is_empty()
        );
        // A purge settles nothing locked: the holder still acks its five.
        holder.ack_all(&locked).await.unwrap();
        assert_eq!(client.purge_queue_group("work", "w").await.unwrap(), 0);
        // What comes after the purge is delivered, in order.
        produce(&client, "work", 0, &values("new-", 0..3)).await;
        let fresh = receive_all(&consumer(&client, "work", "w", 100)).await;
        let got: Vec<String> = fresh.iter().map(value).collect();
        assert_eq!(got, values("new-", 0..3));
        assert_eq!(
            code(client.purge_queue_group("work", "nope").await.unwrap_err()),
            ErrorCode::UnknownQueueGroup
        );
        (locked, delayed[0].clone())
    });
    // After a restart the purge holds: only the delayed message (its release died with the
    // process) and the three fresh, unacknowledged ones come back.
    broker.restart();
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let back = receive_all(&consumer(&client, "work", "w", 100)).await;
        let got: BTreeSet<String> = back.iter().map(value).collect();
        let mut expected: BTreeSet<String> = values("new-", 0..3).into_iter().collect();
        expected.insert(value(&delayed));
        assert_eq!(got, expected);
        for message in &locked {
            assert!(!got.contains(&value(message)), "acked before the restart");
        }
    });
}

#[test]
fn redrive_moves_dead_letters_back_in_order_once_and_at_its_rate() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("mail", 1, &[]).await.unwrap();
        client.create_topic("elsewhere", 1, &[]).await.unwrap();
        client
            .create_queue_group("mail", "senders", &[])
            .await
            .unwrap();
        produce(&client, "mail", 0, &values("m", 0..5)).await;
        let senders = consumer(&client, "mail", "senders", 100);
        let reject_all = async |expected_offsets: std::ops::Range<u64>| {
            let got = receive_all(&senders).await;
            let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
            assert_eq!(offsets, expected_offsets.collect::<Vec<_>>());
            assert_eq!(got.iter().map(value).collect::<Vec<_>>(), values("m", 0..5));
            for message in &got {
                senders.reject(message).await.unwrap();
            }
        };
        reject_all(0..5).await;
        assert_eq!(read_all(&client, "mail.senders.dlq").await.len(), 5);

        let back_home = Redrive {
            dead_letter_topic: "mail.senders.dlq".into(),
            to: None,
            rate_per_second: 1000,
            max_messages: u64::MAX,
        };
        assert_eq!(client.redrive(&back_home).await.unwrap(), 5);
        // Back in the source partition after the originals, in order, with their own headers
        // and none of the dead letter's.
        let mail = read_all(&client, "mail").await;
        assert_eq!(mail.len(), 10);
        for (i, (offset, value, keys)) in mail[5..].iter().enumerate() {
            assert_eq!(
                (*offset, value.as_str()),
                (5 + i as u64, format!("m{i}").as_str())
            );
            assert_eq!(keys, &["trace".to_string()]);
        }
        assert_eq!(
            client.redrive(&back_home).await.unwrap(),
            0,
            "each moved once"
        );
        // The queue group gets them again as new messages.
        reject_all(5..10).await;

        // To a named topic, three at 10 a second: at least 0.3 s.
        let started = Instant::now();
        let elsewhere = Redrive {
            to: Some("elsewhere".into()),
            rate_per_second: 10,
            max_messages: 3,
            ..back_home.clone()
        };
        assert_eq!(client.redrive(&elsewhere).await.unwrap(), 3);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "{:?}",
            started.elapsed()
        );
        let moved: Vec<String> = read_all(&client, "elsewhere")
            .await
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(moved, values("m", 0..3));
    });
    // The rest from the command line, and a purge there too.
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend(["--broker".to_string(), address.clone()]);
        all
    };
    let (status, out) = ringmq(&with(&[
        "queue",
        "redrive",
        "mail",
        "--group",
        "senders",
        "--to",
        "elsewhere",
    ]));
    assert_eq!((status, out.as_str()), (0, "redrove 2 messages\n"));
    let (status, out) = ringmq(&with(&["queue", "purge", "mail", "--group", "senders"]));
    assert_eq!((status, out.as_str()), (0, "purged 0 messages\n"));
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let moved: Vec<String> = read_all(&client, "elsewhere")
            .await
            .into_iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(moved, values("m", 0..5));
        produce(&client, "mail", 0, &values("x", 0..4)).await;
    });
    let (status, out) = ringmq(&with(&["queue", "purge", "mail", "--group", "senders"]));
    assert_eq!((status, out.as_str()), (0, "purged 4 messages\n"));
}

/// Runs the `ringmq` binary; (exit code, stdout).
fn ringmq(args: &[String]) -> (i32, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
    )
}
