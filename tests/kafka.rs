//! The Kafka listener with a real Kafka client: librdkafka (the `rdkafka` crate, built from its
//! vendored source), plus raw bytes no client would send.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;

const PER_CODEC: usize = 20_000;

fn kafka_broker(dir: &std::path::Path) -> (TestBroker, String) {
    let broker = TestBroker::start(dir, 2);
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .expect("a kafka listener")
        .to_string();
    (broker, address)
}

#[test]
fn librdkafka_produces_with_every_codec_and_consumes_it_all_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());

    // Topics through the Kafka admin API.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let topics: Vec<NewTopic> = ["none", "gzip", "snappy", "lz4", "zstd"]
        .iter()
        .map(|codec| NewTopic::new(codec, 3, TopicReplication::Fixed(1)))
        .collect();
    let created =
        futures_executor_block_on(admin.create_topics(&topics, &AdminOptions::new())).unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");

    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .set("acks", "all")
            .set("compression.codec", codec)
            .set("linger.ms", "5")
            .create()
            .unwrap();
        for n in 0..PER_CODEC {
            let key = format!("key-{}", n % 100);
            let value = format!("{codec}-value-{n}-{}", "x".repeat(n % 50));
            loop {
                match producer.send(BaseRecord::to(codec).key(&key).payload(&value)) {
                    Ok(()) => break,
                    // The client's own queue is full: let it drain.
                    Err((_, _)) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        }
        producer
            .flush(Timeout::After(Duration::from_secs(60)))
            .unwrap();
        assert_eq!(
            producer.in_flight_count(),
            0,
            "{codec}: every message acknowledged"
        );

        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .set("group.id", "assign-only")
            .set("enable.auto.commit", "false")
            .create()
            .unwrap();
        let mut assignment = TopicPartitionList::new();
        for partition in 0..3 {
            assignment
                .add_partition_offset(codec, partition, rdkafka::Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        let mut got: BTreeMap<(i32, i64), (String, String)> = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while got.len() < PER_CODEC && Instant::now() < deadline {
            if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                let message = message.unwrap();
                let key = String::from_utf8(message.key().unwrap().to_vec()).unwrap();
                let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                got.insert((message.partition(), message.offset()), (key, value));
            }
        }
        assert_eq!(got.len(), PER_CODEC, "{codec}: every message back");
        let mut values: Vec<String> = got.values().map(|(_, value)| value.clone()).collect();
        values.sort();
        let mut expected: Vec<String> = (0..PER_CODEC)
            .map(|n| format!("{codec}-value-{n}-{}", "x".repeat(n % 50)))
            .collect();
        expected.sort();
        assert_eq!(values, expected, "{codec}: contents byte for byte");
        // Per key, the order of production is kept (keys map to one partition each).
        let mut last: BTreeMap<String, usize> = BTreeMap::new();
        for (key, value) in got.values() {
            let n: usize = value.split('-').nth(2).unwrap().parse().unwrap();
            if let Some(previous) = last.insert(key.clone(), n) {
                assert!(n > previous, "{codec} {key}: {n} after {previous}");
            }
        }
    }
}

#[test]
fn an_idempotent_librdkafka_producer_gets_each_message_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let topic = [NewTopic::new("exactly", 2, TopicReplication::Fixed(1))];
    futures_executor_block_on(admin.create_topics(&topic, &AdminOptions::new())).unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    for n in 0..10_000 {
        let value = format!("once-{n}");
        while producer
            .send(
                BaseRecord::<(), _>::to("exactly")
                    .partition(n % 2)
                    .payload(&value),
            )
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer
        .flush(Timeout::After(Duration::from_secs(60)))
        .unwrap();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("group.id", "assign-only")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..2 {
        assignment
            .add_partition_offset("exactly", partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut values = std::collections::BTreeSet::new();
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < 10_000 && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let message = message.unwrap();
            values.insert(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
            total += 1;
        }
    }
    assert_eq!(
        (total, values.len()),
        (10_000, 10_000),
        "every message once"
    );
}

/// Creates `name` through librdkafka's admin client.
fn create_topic(address: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .unwrap();
    let topic = [NewTopic::new(name, partitions, TopicReplication::Fixed(1))];
    let created =
        futures_executor_block_on(admin.create_topics(&topic, &AdminOptions::new())).unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
}

/// A consumer context for librdkafka's eager assignors that assigns and unassigns without
/// asking librdkafka for its rebalance protocol: rdkafka's default rebalance asks with a
/// blocking request, which a consumer being dropped may never answer (a test hung so in CI,
/// in BaseConsumer's drop, behind a revoke).
fn eager_rebalance<C: rdkafka::consumer::ConsumerContext>(
    context: &C,
    consumer: &BaseConsumer<C>,
    error: rdkafka::types::RDKafkaRespErr,
    partitions: &mut TopicPartitionList,
) {
    use rdkafka::consumer::Rebalance;
    use rdkafka::types::RDKafkaRespErr;
    let assign = error == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if assign {
        context.pre_rebalance(consumer, &Rebalance::Assign(partitions));
        let _ = consumer.assign(partitions);
    } else {
        context.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
        let _ = consumer.unassign();
    }
}

struct Eager;

impl rdkafka::client::ClientContext for Eager {}

impl rdkafka::consumer::ConsumerContext for Eager {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        error: rdkafka::types::RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        eager_rebalance(self, consumer, error, partitions);
    }
}

fn group_consumer(address: &str, group: &str) -> BaseConsumer<Eager> {
    let consumer: BaseConsumer<Eager> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "100")
        .create_with_context(Eager)
        .unwrap();
    consumer.subscribe(&["grouped"]).unwrap();
    consumer
}

fn produce_values(address: &str, from: usize, to: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("acks", "all")
        .create()
        .unwrap();
    for n in from..to {
        let value = format!("g-{n}");
        // Spread over all six partitions (librdkafka's sticky partitioner would not).
        while producer
            .send(
                BaseRecord::<(), _>::to("grouped")
                    .partition((n % 6) as i32)
                    .payload(&value),
            )
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    producer
        .flush(Timeout::After(Duration::from_secs(60)))
        .unwrap();
}

#[test]
fn a_librdkafka_group_of_three_shares_the_partitions_commits_and_resumes_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, address) = kafka_broker(dir.path());
    create_topic(&address, "grouped", 6);

    // Three members join; once all three hold partitions, 3000 messages are produced; they
    // consume and commit what they read until everything was read.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let assigned = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let members: Vec<_> = (0..3)
        .map(|_| {
            let (address, seen, assigned) = (address.clone(), seen.clone(), assigned.clone());
            std::thread::spawn(move || {
                let consumer = group_consumer(&address, "trio");
                let mut partitions = std::collections::BTreeSet::new();
                let mut counted = false;
                let deadline = Instant::now() + Duration::from_secs(180);
                while seen.lock().unwrap().len() < 3000 && Instant::now() < deadline {
                    let message = consumer.poll(Duration::from_millis(50));
                    if !counted && consumer.assignment().is_ok_and(|a| a.count() > 0) {
                        counted = true;
                        assigned.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    if let Some(Ok(message)) = message {
                        partitions.insert(message.partition());
                        let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                        *seen.lock().unwrap().entry(value).or_default() += 1;
                        let _ =
                            consumer.commit_message(&message, rdkafka::consumer::CommitMode::Sync);
                    }
                }
                // Keep polling a moment so every member's last commits are in.
                let settle = Instant::now() + Duration::from_millis(500);
                while Instant::now() < settle {
                    let _ = consumer.poll(Duration::from_millis(50));
                }
                partitions
            })
        })
        .collect();
    // Generous: under a loaded machine this group has been seen to need over 30 s to settle
    // (cause not yet found; see the issue notes), which is a stall to find, not a reason for
    // this test to fail on the rest of what it checks.
    let deadline = Instant::now() + Duration::from_secs(120);
    while assigned.load(std::sync::atomic::Ordering::SeqCst) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        assigned.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "all three members hold partitions"
    );
    produce_values(&address, 0, 3000);
    let partitions: Vec<_> = members
        .into_iter()
        .map(|member| member.join().unwrap())
        .collect();
    let seen_values = seen.lock().unwrap().clone();
    assert_eq!(seen_values.len(), 3000, "every message read by the group");
    let all: std::collections::BTreeSet<i32> = partitions.iter().flatten().copied().collect();
    assert_eq!(all.len(), 6, "all six partitions were read");
    assert_eq!(
        partitions.iter().filter(|p| !p.is_empty()).count(),
        3,
        "every member read its share: {partitions:?}"
    );
    let owners: usize = partitions.iter().map(|p| p.len()).sum();
    assert_eq!(
        owners, 6,
        "each partition read by exactly one member: {partitions:?}"
    );

    // The group's offsets survive a restart: a new member reads only what came after.
    broker.restart();
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    produce_values(&address, 3000, 3100);
    let consumer = group_consumer(&address, "trio");
    let mut after = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while after.len() < 100 && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            after.push(String::from_utf8(message.payload().unwrap().to_vec()).unwrap());
        }
    }
    after.sort();
    let mut expected: Vec<String> = (3000..3100).map(|n| format!("g-{n}")).collect();
    expected.sort();
    assert_eq!(
        after, expected,
        "resumed from the committed offsets: nothing old, nothing lost"
    );
}

#[test]
fn kafka_group_listing_shows_members_and_state() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "grouped", 2);
    let consumer = group_consumer(&address, "listed");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !consumer.assignment().is_ok_and(|a| a.count() == 2) && Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(50));
    }
    let groups = consumer
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap();
    let listed = groups
        .groups()
        .iter()
        .find(|g| g.name() == "listed")
        .expect("the group is listed");
    assert_eq!(
        (listed.state(), listed.protocol_type()),
        ("Stable", "consumer")
    );
    assert_eq!(listed.members().len(), 1);
    assert!(
        listed.members()[0].client_id().starts_with("rdkafka"),
        "{}",
        listed.members()[0].client_id()
    );
    assert!(
        !listed.members()[0]
            .assignment()
            .unwrap_or_default()
            .is_empty(),
        "its assignment is shown"
    );
}

/// A tiny executor for the admin client's futures (rdkafka's admin API is async).
fn futures_executor_block_on<F: std::future::Future>(future: F) -> F::Output {
    ringmq::runtime::block_on(future)
}

fn raw(address: &str) -> std::net::TcpStream {
    let stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

#[test]
fn bad_kafka_input_gets_an_error_or_a_clean_close_and_others_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    // An unknown API key: an UNSUPPORTED_VERSION answer (ApiVersions v0 form), then a close.
    let mut unknown = raw(&address);
    unknown
        .write_all(&[0, 0, 0, 10, 0x7f, 0x7f, 0, 0, 0, 0, 0, 9, 0, 0])
        .unwrap();
    let mut answer = Vec::new();
    unknown.read_to_end(&mut answer).unwrap();
    assert!(answer.len() >= 10, "an answer before the close");
    assert_eq!(&answer[4..8], &[0, 0, 0, 9], "its correlation id");
    assert_eq!(&answer[8..10], &35i16.to_be_bytes(), "UNSUPPORTED_VERSION");
    // ApiVersions from a newer client: UNSUPPORTED_VERSION with our versions; the connection stays.
    let mut newer = raw(&address);
    newer
        .write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 5, 0, 0])
        .unwrap();
    let mut prefix = [0u8; 4];
    newer.read_exact(&mut prefix).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(prefix) as usize];
    newer.read_exact(&mut body).unwrap();
    assert_eq!(&body[4..6], &35i16.to_be_bytes());
    // A truncated request (a Metadata header cut short), and a huge length prefix: closed.
    for bytes in [
        &[0u8, 0, 0, 6, 0, 3, 0, 1, 0, 0][..],
        &[0xff, 0xff, 0xff, 0xf0, 0, 0][..],
    ] {
        let mut stream = raw(&address);
        stream.write_all(bytes).unwrap();
        let mut rest = Vec::new();
        assert!(
            stream.read_to_end(&mut rest).is_ok(),
            "a clean close, not a hang"
        );
    }
    // A real client still works.
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    let topic = [NewTopic::new("still-fine", 1, TopicReplication::Fixed(1))];
    let created =
        futures_executor_block_on(admin.create_topics(&topic, &AdminOptions::new())).unwrap();
    assert!(created[0].is_ok(), "{created:?}");
}

#[test]
fn rskafka_a_pure_rust_client_creates_produces_and_fetches() {
    use rskafka::client::ClientBuilder;
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;

    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = ClientBuilder::new(vec![address]).build().await.unwrap();
        client
            .controller_client()
            .unwrap()
            .create_topic("rusty", 1, 1, 5_000)
            .await
            .unwrap();
        let partition = client
            .partition_client("rusty", 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let record = |n: usize| Record {
            key: Some(format!("k{n}").into_bytes()),
            value: Some(format!("value {n}").into_bytes()),
            headers: std::collections::BTreeMap::from([(
                "origin".to_string(),
                b"rskafka".to_vec(),
            )]),
            timestamp: chrono::Utc::now(),
        };
        let first = partition
            .produce((0..50).map(record).collect(), Compression::NoCompression)
            .await
            .unwrap();
        assert_eq!(first, (0..50).collect::<Vec<i64>>());
        let second = partition
            .produce((50..100).map(record).collect(), Compression::Zstd)
            .await
            .unwrap();
        assert_eq!(second, (50..100).collect::<Vec<i64>>());
        let mut fetched = Vec::new();
        let mut offset = 0;
        while fetched.len() < 100 {
            let (records, high_watermark) = partition
                .fetch_records(offset, 1..1_000_000, 1_000)
                .await
                .unwrap();
            assert_eq!(high_watermark, 100);
            for record in records {
                offset = record.offset + 1;
                fetched.push(record);
            }
        }
        for (n, record) in fetched.iter().enumerate() {
            assert_eq!(record.offset, n as i64);
            assert_eq!(
                record.record.value.as_deref(),
                Some(format!("value {n}").as_bytes())
            );
            assert_eq!(
                record.record.headers.get("origin").map(Vec::as_slice),
                Some(&b"rskafka"[..])
            );
        }
    });
}

/// Commits in the revoke callback, as kcat -G, kafkajs and most applications do before they
/// rejoin, and counts whether they were accepted.
struct CommitOnRevoke {
    refused: std::sync::atomic::AtomicUsize,
}

impl rdkafka::client::ClientContext for CommitOnRevoke {}

impl rdkafka::consumer::ConsumerContext for CommitOnRevoke {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        error: rdkafka::types::RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        eager_rebalance(self, consumer, error, partitions);
    }

    fn pre_rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(partitions) = rebalance
            && partitions.count() > 0
            && let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
            && error.rdkafka_error_code() != Some(rdkafka::types::RDKafkaErrorCode::NoOffset)
        {
            eprintln!("commit on revoke refused: {error}");
            self.refused
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn commits_in_the_revoke_callback_are_accepted_so_a_joining_member_reads_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "grouped", 6);
    produce_values(&address, 0, 3000);

    let seen = std::sync::Arc::new(std::sync::Mutex::new(BTreeMap::<String, usize>::new()));
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let member = |address: String, until_seen: usize| {
        let (seen, refused) = (seen.clone(), refused.clone());
        std::thread::spawn(move || {
            let context = CommitOnRevoke {
                refused: std::sync::atomic::AtomicUsize::new(0),
            };
            let consumer: BaseConsumer<CommitOnRevoke> = ClientConfig::new()
                .set("bootstrap.servers", &address)
                .set("group.id", "handover")
                .set("auto.offset.reset", "earliest")
                .set("enable.auto.commit", "false")
                .set("session.timeout.ms", "6000")
                .set("heartbeat.interval.ms", "100")
                .create_with_context(context)
                .unwrap();
            consumer.subscribe(&["grouped"]).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.lock().unwrap().len() < until_seen && Instant::now() < deadline {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                    let value = String::from_utf8(message.payload().unwrap().to_vec()).unwrap();
                    *seen.lock().unwrap().entry(value).or_default() += 1;
                    // Paced, so that the second member joins mid-stream.
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
            refused.fetch_add(
                consumer
                    .context()
                    .refused
                    .load(std::sync::atomic::Ordering::SeqCst),
                std::sync::atomic::Ordering::SeqCst,
            );
            consumer.unsubscribe();
        })
    };
    // The first member reads half alone, committing nothing; then a second joins, which revokes
    // the first's partitions: its commit in the revoke callback carries everything it read.
    let first = member(address.clone(), 3000);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.lock().unwrap().len() < 1500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = member(address.clone(), 3000);
    first.join().unwrap();
    second.join().unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3000, "every message delivered");
    let twice: usize = seen.values().map(|count| count - 1).sum();
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no commit in a revoke callback was refused"
    );
    assert_eq!(
        twice, 0,
        "nothing read twice: every read was committed on revoke"
    );
}

#[test]
fn a_group_whose_members_all_left_mid_rebalance_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "grouped", 2);
    // Two members share the partitions; one leaves, which starts a round that waits for the
    // other to join again, and the other leaves before it does.
    let members = [
        group_consumer(&address, "leaving"),
        group_consumer(&address, "leaving"),
    ];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !members
        .iter()
        .all(|member| member.assignment().is_ok_and(|a| a.count() == 1))
        && Instant::now() < deadline
    {
        for member in &members {
            let _ = member.poll(Duration::from_millis(20));
        }
    }
    drop(members);
    let observer = group_consumer(&address, "observer");
    let deadline = Instant::now() + Duration::from_secs(10);
    let state = loop {
        let groups = observer
            .fetch_group_list(Some("leaving"), Duration::from_secs(10))
            .unwrap();
        let group = &groups.groups()[0];
        let state = (group.state().to_string(), group.members().len());
        if state.0 == "Empty" || Instant::now() > deadline {
            break state;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(state, ("Empty".to_string(), 0));
}

#[test]
fn metadata_names_the_advertised_address_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        kafka_advertised: "broker.example:19092".into(),
        shards: 1,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    // On the wire, not through librdkafka: a client would go on to dial the advertised name.
    let response = common::kafka_wire::call(
        &address,
        kafka_protocol::messages::ApiKey::Metadata,
        1,
        kafka_protocol::messages::RequestKind::Metadata(
            kafka_protocol::messages::MetadataRequest::default(),
        ),
    );
    let kafka_protocol::messages::ResponseKind::Metadata(metadata) = response else {
        panic!("not a metadata response: {response:?}");
    };
    let brokers: Vec<(String, i32)> = metadata
        .brokers
        .iter()
        .map(|broker| (broker.host.to_string(), broker.port))
        .collect();
    assert_eq!(brokers, vec![("broker.example".to_string(), 19092)]);
}

/// Counts the rebalances in which a consumer gave partitions up.
struct CountRevokes {
    revokes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl rdkafka::client::ClientContext for CountRevokes {}

impl rdkafka::consumer::ConsumerContext for CountRevokes {
    fn pre_rebalance(
        &self,
        _consumer: &BaseConsumer<Self>,
        rebalance: &rdkafka::consumer::Rebalance<'_>,
    ) {
        if let rdkafka::consumer::Rebalance::Revoke(partitions) = rebalance
            && partitions.count() > 0
        {
            self.revokes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

fn static_member(
    address: &str,
    instance: &str,
    revokes: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> BaseConsumer<CountRevokes> {
    let context = CountRevokes {
        revokes: revokes.clone(),
    };
    let consumer: BaseConsumer<CountRevokes> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", "statics")
        .set("group.instance.id", instance)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "30000")
        .set("heartbeat.interval.ms", "100")
        .create_with_context(context)
        .unwrap();
    consumer.subscribe(&["static"]).unwrap();
    consumer
}

fn assigned<C: rdkafka::consumer::ConsumerContext>(consumer: &BaseConsumer<C>) -> Vec<i32> {
    let mut partitions: Vec<i32> = consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default();
    partitions.sort();
    partitions
}

#[test]
fn a_librdkafka_static_member_restarts_into_its_partitions_without_a_rebalance() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "static", 4);
    let a_revokes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b_revokes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    // "a" first, so that it leads: a restarting leader takes a round by design.
    let a = static_member(&address, "member-a", &a_revokes);
    let deadline = Instant::now() + Duration::from_secs(30);
    while assigned(&a).is_empty() && Instant::now() < deadline {
        a.poll(Duration::from_millis(50));
    }
    let b = static_member(&address, "member-b", &b_revokes);
    let settled = |a: &BaseConsumer<CountRevokes>, b: &BaseConsumer<CountRevokes>| {
        let (mine, theirs) = (assigned(a), assigned(b));
        !mine.is_empty() && !theirs.is_empty() && mine.len() + theirs.len() == 4
    };
    while !settled(&a, &b) && Instant::now() < deadline {
        a.poll(Duration::from_millis(20));
        b.poll(Duration::from_millis(20));
    }
    assert!(
        settled(&a, &b),
        "a {:?}, b {:?}",
        assigned(&a),
        assigned(&b)
    );
    let (a_partitions, b_partitions) = (assigned(&a), assigned(&b));
    let a_revokes_before = a_revokes.load(std::sync::atomic::Ordering::SeqCst);

    // b's process goes away (a static member sends no LeaveGroup) and comes back.
    drop(b);
    let b = static_member(&address, "member-b", &b_revokes);
    let deadline = Instant::now() + Duration::from_secs(20);
    while assigned(&b).is_empty() && Instant::now() < deadline {
        a.poll(Duration::from_millis(20));
        b.poll(Duration::from_millis(20));
    }
    // A moment more, so that a rebalance, had one started, would reach "a".
    let settle = Instant::now() + Duration::from_secs(1);
    while Instant::now() < settle {
        a.poll(Duration::from_millis(20));
        b.poll(Duration::from_millis(20));
    }
    assert_eq!(
        assigned(&b),
        b_partitions,
        "b is back in its own partitions"
    );
    assert_eq!(assigned(&a), a_partitions);
    assert_eq!(
        a_revokes.load(std::sync::atomic::Ordering::SeqCst),
        a_revokes_before,
        "the other member went through no rebalance"
    );
}
