//! Queue groups over TCP against a real broker: competing consumers, lock expiry, dead
//! letters with their headers, restarts (clean and SIGKILL), and the exact errors of bad
//! requests.

mod common;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Header, Record};
use ringmq::client::queue::ranges_of;
use ringmq::client::{Client, ClientError, QueueConsumer, QueueConsumerConfig};
use ringmq::protocol::ErrorCode;
use ringmq::protocol::queues::{QueueMessage, SettleAction};
use ringmq::runtime::block_on;
use ringmq::storage::AckLevel;

fn config(wait_ms: u32, visibility_timeout_ms: u32) -> QueueConsumerConfig {
    QueueConsumerConfig {
        max_messages: 500,
        wait_ms,
        visibility_timeout_ms,
        create: true,
    }
}

/// Produces `count` records to each partition of `topic`, values "p<partition>-<i>"; returns
/// the values.
async fn produce(client: &Client, topic: &str, partitions: u32, count: usize) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for partition in 0..partitions {
        for chunk in (0..count).collect::<Vec<_>>().chunks(1000) {
            let mut builder = BatchBuilder::new(Compression::None);
            for i in chunk {
                let value = format!("p{partition}-{i}");
                builder.push(Record::new(0, Some(b"k"), Some(value.as_bytes())));
                values.insert(value);
            }
            let batch = BytesMut::from(&builder.build()[..]);
            client
                .produce(topic, Some(partition), b"", AckLevel::Written, batch)
                .await
                .unwrap();
        }
    }
    values
}

fn value(message: &QueueMessage) -> String {
    String::from_utf8(message.value.as_ref().unwrap().to_vec()).unwrap()
}

/// (partition, offset, value, deliveries) of an acknowledged message.
type Acked = (u32, u64, String, u32);

fn code(error: ClientError) -> ErrorCode {
    error
        .code()
        .unwrap_or_else(|| panic!("not a broker error: {error}"))
}

#[test]
fn competing_consumers_acknowledge_each_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let admin = Client::connect(&address).await.unwrap();
        admin.create_topic("jobs", 4, &[]).await.unwrap();
        let produced = produce(&admin, "jobs", 4, 25_000).await;
        let total = produced.len();
        let acked: Rc<RefCell<Vec<Acked>>> = Rc::default();
        let done = Rc::new(Cell::new(0usize));
        let consumers = (0..4).map(|_| {
            let (acked, done, address) = (acked.clone(), done.clone(), address.clone());
            async move {
                let client = Client::connect(&address).await.unwrap();
                let consumer = QueueConsumer::new(client, "jobs", "workers", config(200, 60_000));
                while done.get() < total {
                    let messages = consumer.receive().await.unwrap();
                    if messages.is_empty() {
                        continue;
                    }
                    consumer.ack_all(&messages).await.unwrap();
                    done.set(done.get() + messages.len());
                    acked.borrow_mut().extend(
                        messages
                            .iter()
                            .map(|m| (m.partition, m.offset, value(m), m.deliveries)),
                    );
                }
            }
        });
        futures_util::future::join_all(consumers).await;
        let acked = acked.borrow().clone();
        assert_eq!(
            acked.len(),
            total,
            "each message acknowledged once, none twice"
        );
        let distinct: BTreeSet<(u32, u64)> = acked.iter().map(|(p, o, _, _)| (*p, *o)).collect();
        assert_eq!(distinct.len(), total);
        let values: BTreeSet<String> = acked.iter().map(|(_, _, v, _)| v.clone()).collect();
        assert_eq!(values, produced, "none lost");
        assert!(acked.iter().all(|(_, _, _, deliveries)| *deliveries == 1));
        // Each message's value matches its offset: the broker read the right record.
        assert!(acked.iter().all(|(p, o, v, _)| *v == format!("p{p}-{o}")));
        let described = admin.describe_queue_group("jobs", "workers").await.unwrap();
        for partition in &described.partitions {
            // settled_below, cursor, available, in_flight, ..., acks at 9.
            assert_eq!(partition.numbers[0], 25_000, "{partition:?}");
            assert_eq!(&partition.numbers[2..4], &[0, 0]);
            assert_eq!(partition.numbers[9], 25_000);
        }
    });
}

#[test]
fn a_vanished_consumers_messages_return_after_its_visibility_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let admin = Client::connect(&address).await.unwrap();
        admin.create_topic("tasks", 2, &[]).await.unwrap();
        produce(&admin, "tasks", 2, 50).await;
        let held: BTreeSet<(u32, u64)> = {
            let client = Client::connect(&address).await.unwrap();
            let doomed = QueueConsumer::new(client, "tasks", "g", config(1_000, 300));
            let got = doomed.receive_up_to(30).await.unwrap();
            assert_eq!(got.len(), 30);
            got.iter().map(|m| (m.partition, m.offset)).collect()
            // The consumer and its connection go away without settling anything.
        };
        let client = Client::connect(&address).await.unwrap();
        let survivor = QueueConsumer::new(client, "tasks", "g", config(2_000, 60_000));
        let mut seen: BTreeMap<(u32, u64), u32> = BTreeMap::new();
        let started = Instant::now();
        while seen.len() < 100 {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "only {} of 100",
                seen.len()
            );
            let messages = survivor.receive().await.unwrap();
            for message in &messages {
                assert!(
                    seen.insert((message.partition, message.offset), message.deliveries)
                        .is_none()
                );
            }
            if !messages.is_empty() {
                survivor.ack_all(&messages).await.unwrap();
            }
        }
        let redelivered: BTreeSet<(u32, u64)> = seen
            .iter()
            .filter(|(_, deliveries)| **deliveries == 2)
            .map(|(at, _)| *at)
            .collect();
        assert_eq!(
            redelivered, held,
            "the duplicates are exactly what the vanished one held"
        );
        assert!(seen.values().all(|d| *d == 1 || *d == 2));
        let described = admin.describe_queue_group("tasks", "g").await.unwrap();
        let expiries: u64 = described.partitions.iter().map(|p| p.numbers[12]).sum();
        let redeliveries: u64 = described.partitions.iter().map(|p| p.numbers[8]).sum();
        assert_eq!((expiries, redeliveries), (30, 30));
    });
}

/// Every record of partition 0 of `topic`, from the start.
async fn read_all(client: &Client, topic: &str) -> Vec<Record> {
    common::fetch_records(client, topic).await.unwrap()
}

fn headers(record: &Record) -> HashMap<String, String> {
    record
        .headers
        .iter()
        .map(|h| {
            let value = h
                .value
                .as_ref()
                .map(|v| String::from_utf8(v.to_vec()).unwrap());
            (h.key.clone(), value.unwrap_or_default())
        })
        .collect()
}

/// Checks a dead letter of "mail" against (value, offset, delivery count, reason).
fn check_letter(letter: &Record, (value, offset, count, reason): (&str, &str, &str, &str)) {
    assert_eq!(letter.value.as_deref(), Some(value.as_bytes()));
    assert_eq!(letter.key.as_deref(), Some(&b"the-key"[..]));
    let headers = headers(letter);
    assert_eq!(headers["trace"], "t-1", "the original headers are kept");
    assert_eq!(headers["ringmq.dlq.topic"], "mail");
    assert_eq!(headers["ringmq.dlq.partition"], "0");
    assert_eq!(headers["ringmq.dlq.offset"], offset);
    assert_eq!(headers["ringmq.dlq.group"], "senders");
    assert_eq!(headers["ringmq.dlq.delivery_count"], count);
    assert_eq!(headers["ringmq.dlq.reason"], reason);
    let first: u64 = headers["ringmq.dlq.first_delivery_ms"].parse().unwrap();
    let last: u64 = headers["ringmq.dlq.last_delivery_ms"].parse().unwrap();
    assert!(first > 1_600_000_000_000 && first <= last, "{first} {last}");
    if count == "3" {
        assert!(last > first, "three deliveries at three times");
    }
}

#[test]
fn failing_handlers_dead_letter_with_every_header() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("mail", 1, &[]).await.unwrap();
        client
            .create_queue_group("mail", "senders", &[("max_deliveries", "3")])
            .await
            .unwrap();
        let mut builder = BatchBuilder::new(Compression::None);
        for value in ["always-fails", "rejected", "abandoned"] {
            let mut record = Record::new(1234, Some(b"the-key"), Some(value.as_bytes()));
            record.headers.push(Header {
                key: "trace".into(),
                value: Some(Bytes::from_static(b"t-1")),
            });
            builder.push(record);
        }
        let batch = BytesMut::from(&builder.build()[..]);
        client
            .produce("mail", Some(0), b"", AckLevel::Fsynced, batch)
            .await
            .unwrap();
        let consumer = QueueConsumer::new(
            client.clone(),
            "mail",
            "senders",
            QueueConsumerConfig {
                max_messages: 1,
                wait_ms: 2_000,
                visibility_timeout_ms: 200,
                create: false,
            },
        );
        // Offset 0: released at each of its 3 deliveries.
        for delivery in 1..=3 {
            let got = consumer.receive().await.unwrap();
            assert_eq!((got[0].offset, got[0].deliveries), (0, delivery));
            consumer.release(&got[0], 0).await.unwrap();
        }
        // Offset 1: rejected at its first delivery.
        let got = consumer.receive().await.unwrap();
        assert_eq!((got[0].offset, value(&got[0]).as_str()), (1, "rejected"));
        consumer.reject(&got[0]).await.unwrap();
        // Offset 2: its lock expires 3 times.
        for delivery in 1..=3 {
            let got = consumer.receive().await.unwrap();
            assert_eq!((got[0].offset, got[0].deliveries), (2, delivery));
        }
        let started = Instant::now();
        let letters = loop {
            let letters = read_all(&client, "mail.senders.dlq").await;
            if letters.len() == 3 || started.elapsed() > Duration::from_secs(10) {
                break letters;
            }
            ringmq::runtime::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(letters.len(), 3);
        let expected = [
            ("always-fails", "0", "3", "released 3 times"),
            ("rejected", "1", "1", "rejected"),
            ("abandoned", "2", "3", "lock expired 3 times"),
        ];
        for (letter, expected) in letters.iter().zip(expected) {
            check_letter(letter, expected);
        }
        assert!(
            consumer.receive().await.unwrap().is_empty(),
            "nothing left to deliver"
        );
        let described = client
            .describe_queue_group("mail", "senders")
            .await
            .unwrap();
        let numbers = described.partitions[0].numbers;
        // settled_below, then releases, rejects, lock expiries, dead-lettered.
        assert_eq!(
            (
                numbers[0],
                numbers[10],
                numbers[11],
                numbers[12],
                numbers[13]
            ),
            (3, 3, 1, 3, 3)
        );
    });
}

/// Receives until nothing comes within the wait; returns (partition, offset) -> deliveries and
/// acknowledges everything.
async fn drain(consumer: &QueueConsumer) -> BTreeMap<(u32, u64), u32> {
    let mut seen = BTreeMap::new();
    loop {
        let messages = consumer.receive().await.unwrap();
        if messages.is_empty() {
            return seen;
        }
        for message in &messages {
            assert!(
                seen.insert((message.partition, message.offset), message.deliveries)
                    .is_none()
            );
        }
        consumer.ack_all(&messages).await.unwrap();
    }
}

/// Receives 40 of the 100 messages of "orders" and acknowledges the first 25 of those: what
/// comes back after a restart is checked by `check_after_restart`.
async fn receive_and_ack_some(address: &str) -> (BTreeSet<(u32, u64)>, BTreeSet<(u32, u64)>) {
    let client = Client::connect(address).await.unwrap();
    client.create_topic("orders", 2, &[]).await.unwrap();
    produce(&client, "orders", 2, 50).await;
    let consumer = QueueConsumer::new(client, "orders", "billing", config(1_000, 600_000));
    let mut got = Vec::new();
    while got.len() < 40 {
        got.extend(consumer.receive_up_to(40 - got.len() as u32).await.unwrap());
    }
    consumer.ack_all(&got[..25]).await.unwrap();
    let acked = got[..25].iter().map(|m| (m.partition, m.offset)).collect();
    let locked = got[25..].iter().map(|m| (m.partition, m.offset)).collect();
    (acked, locked)
}

async fn check_after_restart(
    address: &str,
    acked: &BTreeSet<(u32, u64)>,
    locked: &BTreeSet<(u32, u64)>,
) {
    let client = Client::connect(address).await.unwrap();
    let consumer = QueueConsumer::new(client, "orders", "billing", config(300, 600_000));
    let seen = drain(&consumer).await;
    assert_eq!(seen.len(), 75, "every unacknowledged message, once");
    assert!(
        seen.keys().all(|at| !acked.contains(at)),
        "nothing acknowledged comes back"
    );
    let second: BTreeSet<(u32, u64)> = seen
        .iter()
        .filter(|(_, d)| **d == 2)
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(
        &second, locked,
        "what was locked comes back with its delivery count kept"
    );
    assert!(seen.values().all(|d| *d <= 2));
}

#[test]
fn a_restart_keeps_acks_and_returns_locked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let (acked, locked) = block_on(receive_and_ack_some(&broker.address()));
    broker.restart();
    block_on(check_after_restart(&broker.address(), &acked, &locked));
    // And again: the journal, compacted or not at this open, still says the same.
    broker.restart();
    let client_check = block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client
            .describe_queue_group("orders", "billing")
            .await
            .unwrap()
    });
    let settled: u64 = client_check.partitions.iter().map(|p| p.numbers[0]).sum();
    assert_eq!(settled, 100);
}

/// A broker process, SIGKILLed when dropped (a failed assertion included).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_sigkill_keeps_acks_and_returns_locked_messages() {
    let dir = tempfile::tempdir().unwrap();
    let (child, address) = common::serve(dir.path());
    let (acked, locked) = block_on(receive_and_ack_some(&address));
    drop(Killed(child));
    let (child, address) = common::serve(dir.path());
    let _broker = Killed(child);
    block_on(check_after_restart(&address, &acked, &locked));
}

/// A broker with small queue limits and topic "t" of 20 messages on 1 partition.
fn limited_broker(dir: &std::path::Path) -> TestBroker {
    let mut broker_config = ringmq::config::BrokerConfig {
        data_dir: dir.into(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        ..Default::default()
    };
    broker_config.queues.groups_per_topic_max = 2;
    broker_config.queues.receive_messages_max = 100;
    let broker = TestBroker::start_with(broker_config);
    block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("t", 1, &[]).await.unwrap();
        produce(&client, "t", 1, 20).await;
    });
    broker
}

/// The error code of a failed call.
fn failed<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    code(result.unwrap_err())
}

/// A consumer of group "g" on "t" that never waits nor creates the group.
fn quiet(client: &Client, id: &str, visibility_timeout_ms: u32) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages: 100,
        wait_ms: 0,
        visibility_timeout_ms,
        create: false,
    };
    QueueConsumer::with_id(client.clone(), "t", "g", id, config)
}

#[test]
fn queue_group_admin_errors_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let broker = limited_broker(dir.path());
    block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        let unknown = ErrorCode::UnknownQueueGroup;
        assert_eq!(failed(quiet(&client, "a", 0).receive().await), unknown);
        assert_eq!(failed(client.describe_queue_group("t", "g").await), unknown);
        assert_eq!(failed(client.delete_queue_group("t", "g").await), unknown);
        let bad = [("max_deliveries", "0")];
        let invalid = ErrorCode::InvalidConfig;
        assert_eq!(
            failed(client.create_queue_group("t", "g", &bad).await),
            invalid
        );
        let unknown_key = [("colour", "red")];
        assert_eq!(
            failed(client.create_queue_group("t", "g", &unknown_key).await),
            invalid
        );
        let missing = client.create_queue_group("nope", "g", &[]).await;
        assert_eq!(failed(missing), ErrorCode::UnknownTopic);
        client.create_queue_group("t", "g", &[]).await.unwrap();
        let again = client.create_queue_group("t", "g", &[]).await;
        assert_eq!(failed(again), ErrorCode::QueueGroupExists);
        client.create_queue_group("t", "g2", &[]).await.unwrap();
        // groups_per_topic_max: a resource limit, which the native protocol calls invalid_config.
        assert_eq!(
            failed(client.create_queue_group("t", "g3", &[]).await),
            invalid
        );
        let listed = client.list_queue_groups().await.unwrap();
        let expected = vec![
            ("t".to_string(), "g".to_string()),
            ("t".into(), "g2".into()),
        ];
        assert_eq!(listed, expected);
        // Deleting the group ends it; its first consumer creates it again (implicitly).
        client.delete_queue_group("t", "g").await.unwrap();
        assert_eq!(failed(quiet(&client, "a", 0).receive().await), unknown);
        let implicit = QueueConsumer::new(client.clone(), "t", "g", config(0, 0));
        let got = implicit.receive_up_to(100).await.unwrap();
        assert_eq!(got.len(), 20, "from the earliest offset");
    });
}

#[test]
fn receive_and_settle_errors_are_exact() {
    let dir = tempfile::tempdir().unwrap();
    let broker = limited_broker(dir.path());
    block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client
            .create_queue_group("t", "g", &[("max_unacked", "5")])
            .await
            .unwrap();
        let (a, b) = (quiet(&client, "a", 0), quiet(&client, "b", 100));
        let malformed = ErrorCode::MalformedRequest;
        // Limits: messages per receive, the consumer's max_unacked.
        assert_eq!(failed(a.receive_up_to(0).await), malformed);
        assert_eq!(failed(a.receive_up_to(101).await), malformed);
        let got = a.receive().await.unwrap();
        let offsets: Vec<u64> = got.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 3, 4], "max_unacked");
        assert!(
            a.receive().await.unwrap().is_empty(),
            "a holds its max_unacked"
        );
        // Not held: another consumer's message, a never-delivered one, one settled already.
        let not_held = ErrorCode::LockNotHeld;
        assert_eq!(failed(b.ack(&got[0]).await), not_held);
        let mut undelivered = got[0].clone();
        undelivered.offset = 15;
        assert_eq!(failed(a.ack(&undelivered).await), not_held);
        a.ack(&got[0]).await.unwrap();
        assert_eq!(failed(a.ack(&got[0]).await), not_held);
        // A settle is all or nothing on a partition: 1..=4 held, 5 not.
        assert_eq!(
            failed(a.settle(SettleAction::Ack, vec![(0, 1, 5)]).await),
            not_held
        );
        a.settle(SettleAction::Ack, ranges_of(&got[1..]))
            .await
            .unwrap();
        // An expired lock.
        let late = b.receive_up_to(1).await.unwrap();
        ringmq::runtime::sleep(Duration::from_millis(400)).await;
        assert_eq!(failed(b.ack(&late[0]).await), ErrorCode::LockExpired);
        assert_eq!(
            failed(b.extend(&late[0], 1_000).await),
            ErrorCode::LockExpired
        );
        // Bad arguments.
        let too_long = SettleAction::Release { delay_ms: u32::MAX };
        assert_eq!(failed(b.settle(too_long, vec![(0, 5, 5)]).await), malformed);
        let no_partition = b.settle(SettleAction::Ack, vec![(3, 5, 5)]).await;
        assert_eq!(failed(no_partition), ErrorCode::BadPartition);
        assert_eq!(
            failed(b.settle(SettleAction::Ack, vec![(0, 6, 5)]).await),
            malformed
        );
        let config = QueueConsumerConfig::default();
        let unnamed = QueueConsumer::with_id(client.clone(), "t", "g", "", config);
        assert_eq!(failed(unnamed.receive().await), malformed);
    });
}

/// Runs the `ringmq` binary with `args`; returns (exit code, stdout, stderr).
fn ringmq(args: &[String]) -> (i32, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_queue_commands_as_a_user_drives_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let with = |args: &[&str]| -> Vec<String> {
        let mut all: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        all.extend(["--broker".to_string(), address.clone()]);
        all
    };
    let (code, out, err) = ringmq(&with(&[
        "queue",
        "create",
        "jobs",
        "-c",
        "max_deliveries=2",
    ]));
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "created queue jobs\n", "")
    );
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let mut builder = BatchBuilder::new(Compression::None);
        for value in ["one", "two", "three"] {
            builder.push(Record::new(0, None, Some(value.as_bytes())));
        }
        let batch = BytesMut::from(&builder.build()[..]);
        client
            .produce("jobs", Some(0), b"", AckLevel::Fsynced, batch)
            .await
            .unwrap();
    });
    // Without --ack the message stays locked: the next receive gets the next one.
    let (code, out, _) = ringmq(&with(&[
        "queue",
        "receive",
        "jobs",
        "--visibility-ms",
        "60000",
    ]));
    assert_eq!((code, out.as_str()), (0, "0\t0\t1\tone\n"));
    let (code, out, _) = ringmq(&with(&["queue", "receive", "jobs", "--ack", "-n", "5"]));
    assert_eq!((code, out.as_str()), (0, "0\t1\t1\ttwo\n0\t2\t1\tthree\n"));
    let (code, out, _) = ringmq(&with(&["queue", "receive", "jobs", "--wait-ms", "0"]));
    assert_eq!((code, out.as_str()), (0, ""));
    let (code, out, _) = ringmq(&with(&["queue", "list"]));
    assert_eq!((code, out.as_str()), (0, "jobs\tjobs\n"));
    let (code, out, _) = ringmq(&with(&["queue", "describe", "jobs"]));
    assert_eq!(code, 0);
    assert!(out.starts_with("queue group jobs of topic jobs\n"), "{out}");
    assert!(out.contains("  max_deliveries = 2\n"), "{out}");
    assert!(
        out.contains("partition\tsettled_below\tcursor\tavailable\tin_flight"),
        "{out}"
    );
    assert!(
        out.contains("\n0\t0\t3\t0\t1\t"),
        "one locked, none available: {out}"
    );
    let (code, _, err) = ringmq(&with(&["queue", "describe", "jobs", "--group", "nope"]));
    assert_eq!(code, 1);
    assert!(err.contains("unknown_queue_group"), "{err}");
    let (code, out, _) = ringmq(&with(&["queue", "delete", "jobs", "--topic"]));
    assert_eq!(
        (code, out.as_str()),
        (0, "deleted queue group jobs of jobs\ndeleted topic jobs\n")
    );
    let (code, out, _) = ringmq(&with(&["queue", "list"]));
    assert_eq!((code, out.as_str()), (0, ""));
}

/// A small receive reads a little of the log, not its whole byte budget: before, a receive of
/// ten messages read 4 MiB per range from the page cache (the SQS shape's drain ran at ~3 k
/// msg/s). Counted by the log's read-bytes counter of this test's own topic.
#[test]
fn a_small_receive_reads_a_little_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let read_bytes = || -> f64 {
        common::scrape(&broker.http_address())
            .lines()
            .filter(|line| line.starts_with("ringmq_log_read_bytes_total{topic=\"deep\""))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("deep", 1, &[]).await.unwrap();
        client.create_queue_group("deep", "g", &[]).await.unwrap();
        // 4,000 batches of 10 small records: about 4 MB of log.
        for batch in 0..4_000u32 {
            let mut builder = BatchBuilder::new(Compression::None);
            for i in 0..10 {
                let value = format!("m{batch}-{i}-{}", "x".repeat(64));
                builder.push(Record::new(0, None, Some(value.as_bytes())));
            }
            let records = BytesMut::from(&builder.build()[..]);
            client
                .produce("deep", Some(0), b"", AckLevel::Written, records)
                .await
                .unwrap();
        }
        let consumer = QueueConsumer::new(
            client.clone(),
            "deep",
            "g",
            QueueConsumerConfig {
                max_messages: 10,
                wait_ms: 0,
                visibility_timeout_ms: 30_000,
                create: false,
            },
        );
        let before = read_bytes();
        let got = consumer.receive().await.unwrap();
        let values: Vec<String> = got
            .iter()
            .map(|m| String::from_utf8(m.value.clone().unwrap().to_vec()).unwrap())
            .collect();
        let expected: Vec<String> = (0..10)
            .map(|i| format!("m0-{i}-{}", "x".repeat(64)))
            .collect();
        assert_eq!(values, expected);
        let read = read_bytes() - before;
        assert!(
            read <= 128.0 * 1024.0,
            "a receive of 10 read {read} bytes of the log"
        );
    });
}
