//! Queue groups at scale, over TCP against a real broker: many messages through 8 competing
//! consumers, each acknowledged exactly once and none lost; delayed messages across a restart,
//! none lost and none early; FIFO message groups with many keys and 8 consumers of random
//! processing times, strictly in order per key and never two in flight; and SIGKILL of the
//! server in a loop during receive/ack traffic, with nothing acknowledged delivered again and
//! nothing lost across the restarts.
//!
//! Sizes: the figures (1,000,000 messages, 100,000 delays up to 60 s, 1,000 keys) are
//! for the benchmark; here they are cut so that each test takes seconds in a debug build on
//! two cores shared with other test binaries (CI's budget): 20,000 messages over 4 partitions
//! (2,500 per consumer, 200 receives of 100 at most per consumer), 2,000 delays of up to 3 s
//! (long enough to straddle the restart, short enough not to idle), 200 keys of 10 messages
//! (8 consumers, so most receives compete for few free heads), and 6 kills 100 to 500 ms apart
//! amid 3,000 messages acked one by one (paced, so that most kills land amid the traffic).
//! The properties do not depend on the size: every message is checked individually.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use common::TestBroker;
use futures_util::future::join_all;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::queue::{MessageOptions, message_headers};
use ringmq::client::{Client, QueueConsumer, QueueConsumerConfig};
use ringmq::protocol::queues::QueueMessage;
use ringmq::runtime::{block_on, sleep};
use ringmq::storage::AckLevel;

const CONSUMERS: usize = 8;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A small deterministic generator (xorshift64*), so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % bound.max(1)
    }
}

fn consumer(client: &Client, topic: &str, max_messages: u32, wait_ms: u32) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages,
        wait_ms,
        visibility_timeout_ms: 60_000,
        create: false,
    };
    QueueConsumer::new(client.clone(), topic, "g", config)
}

/// Produces `records` to `partition` in batches of at most 500.
async fn produce(client: &Client, topic: &str, partition: u32, records: Vec<Record>) {
    for chunk in records.chunks(500) {
        let mut builder = BatchBuilder::new(Compression::None);
        for record in chunk {
            builder.push(record.clone());
        }
        let batch = BytesMut::from(&builder.build()[..]);
        client
            .produce(topic, Some(partition), b"", AckLevel::Fsynced, batch)
            .await
            .unwrap();
    }
}

fn value(message: &QueueMessage) -> String {
    String::from_utf8(message.value.as_ref().unwrap().to_vec()).unwrap()
}

#[test]
fn many_messages_through_8_competing_consumers_are_each_acked_exactly_once() {
    const PARTITIONS: u32 = 4;
    const MESSAGES: u64 = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("work", PARTITIONS, &[]).await.unwrap();
        client.create_queue_group("work", "g", &[]).await.unwrap();
        for partition in 0..PARTITIONS {
            let records = (0..MESSAGES / u64::from(PARTITIONS))
                .map(|n| Record::new(0, None, Some(format!("{partition}-{n:<94}").as_bytes())))
                .collect();
            produce(&client, "work", partition, records).await;
        }
        let delivered: RefCell<BTreeMap<(u32, u64), u32>> = RefCell::default();
        let per_consumer: Vec<usize> = join_all((0..CONSUMERS).map(|_| async {
            // Each consumer on its own connection, as separate processes would be.
            let client = Client::connect(&address).await.unwrap();
            let consumer = consumer(&client, "work", 100, 200);
            let mut count = 0;
            loop {
                let messages = consumer.receive().await.unwrap();
                if messages.is_empty() {
                    return count;
                }
                for message in &messages {
                    let key = (message.partition, message.offset);
                    *delivered.borrow_mut().entry(key).or_default() += 1;
                    assert_eq!(message.deliveries, 1, "{key:?} delivered before");
                }
                count += messages.len();
                consumer.ack_all(&messages).await.unwrap();
            }
        }))
        .await;
        let delivered = delivered.into_inner();
        assert_eq!(delivered.len() as u64, MESSAGES, "none lost");
        assert!(delivered.values().all(|count| *count == 1), "none twice");
        assert_eq!(per_consumer.iter().sum::<usize>() as u64, MESSAGES);
        assert!(
            per_consumer.iter().filter(|count| **count > 0).count() > 1,
            "the consumers competed: {per_consumer:?}"
        );
        let info = client.describe_queue_group("work", "g").await.unwrap();
        for partition in &info.partitions {
            // numbers[0] is the settled prefix: all of the partition.
            assert_eq!(partition.numbers[0], MESSAGES / u64::from(PARTITIONS));
        }
    });
}

#[test]
fn delays_across_a_restart_lose_none_and_deliver_none_early() {
    const MESSAGES: usize = 2_000;
    const DELAY_MAX_MS: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let mut rng = Rng(0x5eed_d1a7);
    let produced_at = now_ms();
    // value -> when it is due (its timestamp, the production time, plus its delay).
    let mut due: HashMap<String, u64> = HashMap::new();
    let records: Vec<Record> = (0..MESSAGES)
        .map(|n| {
            let delay_ms = rng.below(DELAY_MAX_MS);
            let value = format!("m{n}");
            due.insert(value.clone(), produced_at + delay_ms);
            let mut record = Record::new(produced_at as i64, None, Some(value.as_bytes()));
            record.headers = message_headers(&MessageOptions {
                delay_ms: Some(delay_ms),
                ..MessageOptions::default()
            });
            record
        })
        .collect();
    let received: RefCell<BTreeMap<String, u64>> = RefCell::default();
    let run = |address: String, until_ms: u64| {
        let received = &received;
        async move {
            let client = Client::connect(&address).await.unwrap();
            join_all((0..CONSUMERS).map(|_| async {
                let consumer = consumer(&client, "later", 100, 100);
                while now_ms() < until_ms && received.borrow().len() < MESSAGES {
                    let messages = consumer.receive().await.unwrap();
                    let at = now_ms();
                    for message in &messages {
                        received.borrow_mut().entry(value(message)).or_insert(at);
                    }
                    if !messages.is_empty() {
                        consumer.ack_all(&messages).await.unwrap();
                    }
                }
            }))
            .await;
        }
    };
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("later", 1, &[]).await.unwrap();
        client.create_queue_group("later", "g", &[]).await.unwrap();
        produce(&client, "later", 0, records).await;
    });
    block_on(run(address, produced_at + DELAY_MAX_MS / 2));
    let before_restart = received.borrow().len();
    assert!(
        before_restart > 0 && before_restart < MESSAGES,
        "the restart falls in the middle: {before_restart}"
    );
    broker.restart();
    block_on(run(broker.address(), produced_at + DELAY_MAX_MS + 20_000));
    let received = received.into_inner();
    assert_eq!(received.len(), MESSAGES, "none lost");
    let early: Vec<_> = received
        .iter()
        .filter(|(value, at)| **at < due[*value])
        .collect();
    assert!(early.is_empty(), "delivered before due: {early:?}");
}

#[test]
fn fifo_with_many_keys_and_8_consumers_keeps_each_key_in_order_one_at_a_time() {
    const KEYS: usize = 200;
    const PER_KEY: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("fifo", 2, &[]).await.unwrap();
        client
            .create_queue_group("fifo", "g", &[("fifo", "header")])
            .await
            .unwrap();
        // Keys interleaved, each key's messages in one partition.
        for partition in 0..2 {
            let records = (0..PER_KEY)
                .flat_map(|seq| {
                    (partition..KEYS).step_by(2).map(move |key| {
                        let mut record =
                            Record::new(0, None, Some(format!("k{key}-{seq}").as_bytes()));
                        record.headers = message_headers(&MessageOptions {
                            group_key: Some(format!("k{key}")),
                            ..MessageOptions::default()
                        });
                        record
                    })
                })
                .collect();
            produce(&client, "fifo", partition as u32, records).await;
        }
        let in_flight: RefCell<BTreeSet<String>> = RefCell::default();
        let next_seq: RefCell<HashMap<String, usize>> = RefCell::default();
        let done = RefCell::new(0usize);
        join_all((0..CONSUMERS as u64).map(|n| {
            let (in_flight, next_seq, done) = (&in_flight, &next_seq, &done);
            let address = address.clone();
            async move {
                let client = Client::connect(&address).await.unwrap();
                let consumer = consumer(&client, "fifo", 4, 50);
                let mut rng = Rng(0x1234_5678 + n);
                let started = Instant::now();
                while *done.borrow() < KEYS * PER_KEY
                    && started.elapsed() < Duration::from_secs(120)
                {
                    let messages = consumer.receive().await.unwrap();
                    for message in &messages {
                        let (key, seq) = value(message)
                            .split_once('-')
                            .map(|(k, s)| (k.to_string(), s.parse::<usize>().unwrap()))
                            .unwrap();
                        assert!(
                            in_flight.borrow_mut().insert(key.clone()),
                            "{key} delivered while one of its messages is in flight"
                        );
                        let expected = next_seq.borrow().get(&key).copied().unwrap_or(0);
                        assert_eq!(seq, expected, "{key} out of order");
                    }
                    // Random processing, then each acked: out of the in-flight set first, so
                    // the check above cannot blame the broker for an ack it has not had yet.
                    for message in &messages {
                        sleep(Duration::from_millis(rng.below(4))).await;
                        let key = value(message).split_once('-').unwrap().0.to_string();
                        in_flight.borrow_mut().remove(&key);
                        *next_seq.borrow_mut().entry(key).or_default() += 1;
                        *done.borrow_mut() += 1;
                        consumer.ack(message).await.unwrap();
                    }
                }
            }
        }))
        .await;
        assert_eq!(*done.borrow(), KEYS * PER_KEY, "none lost");
        assert!(next_seq.borrow().values().all(|seq| *seq == PER_KEY));
    });
}

/// A `ringmq serve` process, SIGKILLed when dropped (also when an assertion fails first).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn sigkill_in_a_loop_during_receive_and_ack_loses_nothing_and_redelivers_nothing_acked() {
    const MESSAGES: u64 = 3_000;
    const KILLS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let (child, address) = common::serve(dir.path());
    let mut server = Server(child);
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("crashy", 1, &[]).await.unwrap();
        client.create_queue_group("crashy", "g", &[]).await.unwrap();
        let records = (0..MESSAGES)
            .map(|n| Record::new(0, None, Some(format!("{n}").as_bytes())))
            .collect();
        produce(&client, "crashy", 0, records).await;
    });
    // Acks answered, and acks cut off by a kill (journaled or not: the message may come again).
    let acked: RefCell<BTreeSet<u64>> = RefCell::default();
    let doubtful: RefCell<BTreeSet<u64>> = RefCell::default();
    let covered = || acked.borrow().union(&doubtful.borrow()).count() as u64;
    let mut rng = Rng(0xdead_beef);
    let mut address = address;
    let mut killed_amid_traffic = 0;
    for round in 0..=KILLS {
        let last = round == KILLS;
        let kill_after = Duration::from_millis(100 + rng.below(400));
        block_on(async {
            let client = Client::connect(&address).await.unwrap();
            let stop = RefCell::new(false);
            let started = Instant::now();
            let consumers = join_all((0..4).map(|_| async {
                let consumer = consumer(&client, "crashy", 10, 100);
                while !*stop.borrow() && started.elapsed() < Duration::from_secs(120) {
                    let Ok(messages) = consumer.receive().await else {
                        return;
                    };
                    if messages.is_empty() && covered() == MESSAGES {
                        return;
                    }
                    for message in &messages {
                        assert!(
                            !acked.borrow().contains(&message.offset),
                            "offset {} delivered again after its ack was answered",
                            message.offset
                        );
                    }
                    if messages.is_empty() {
                        continue;
                    }
                    // One ack each, paced, so the kills land amid traffic.
                    for message in &messages {
                        sleep(Duration::from_millis(1)).await;
                        if consumer.ack(message).await.is_err() {
                            doubtful.borrow_mut().insert(message.offset);
                            return;
                        }
                        acked.borrow_mut().insert(message.offset);
                    }
                }
            }));
            let killer = async {
                if last {
                    return;
                }
                sleep(kill_after).await;
                let _ = server.0.kill();
            };
            futures_util::future::join(consumers, async {
                killer.await;
                if !last {
                    *stop.borrow_mut() = true;
                }
            })
            .await;
        });
        if !last && covered() < MESSAGES {
            killed_amid_traffic += 1;
        }
        if !last {
            let _ = server.0.wait();
            let (child, fresh) = common::serve(dir.path());
            server = Server(child);
            address = fresh;
        }
    }
    assert_eq!(covered(), MESSAGES, "every message acked");
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let info = client.describe_queue_group("crashy", "g").await.unwrap();
        let numbers = &info.partitions[0].numbers;
        // settled_below, cursor, available, in_flight: all settled, nothing left.
        assert_eq!(numbers[..4], [MESSAGES, MESSAGES, 0, 0], "{info:?}");
    });
    assert!(
        killed_amid_traffic >= KILLS / 2,
        "only {killed_amid_traffic} kills came before the last ack"
    );
    drop(server);
}
