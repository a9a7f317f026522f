//! librdkafka consumers with `group.protocol=consumer` (KIP-848) against ringmq: a group of two
//! shares a topic of several partitions, a third joins mid-stream and one leaves, while every
//! message is delivered once (each is committed before the next is taken) and no partition is
//! ever owned by two members at once, as the members' own rebalance callbacks tell it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TestBroker;
use common::kafka_wire::create_topic;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

const TOPIC: &str = "shared";
const PARTITIONS: i32 = 6;
const MESSAGES: usize = 1_500;

/// What the members did, in the order it happened: (member, what).
#[derive(Clone, Debug)]
enum Event {
    /// Took partitions (before it reads them).
    Assigned(usize, Vec<i32>),
    /// Gave partitions up (after it stopped reading them).
    Revoked(usize, Vec<i32>),
    /// Read (partition, offset).
    Read(usize, i32, i64),
}

struct Recorder {
    member: usize,
    events: Arc<Mutex<Vec<Event>>>,
}

fn partitions(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

impl ClientContext for Recorder {}

impl ConsumerContext for Recorder {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let event = Event::Assigned(self.member, partitions(list));
            self.events.lock().unwrap().push(event);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let event = Event::Revoked(self.member, partitions(list));
            self.events.lock().unwrap().push(event);
        }
    }
}

fn produce(address: &str, from: usize, to: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("linger.ms", "2")
        .create()
        .unwrap();
    for n in from..to {
        let key = format!("key-{n}");
        let value = format!("value-{n}");
        let partition = (n % PARTITIONS as usize) as i32;
        let record = BaseRecord::to(TOPIC)
            .key(&key)
            .payload(&value)
            .partition(partition);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Commits the message's next offset, again while the member's epoch is being renewed
/// (STALE_MEMBER_EPOCH: librdkafka does not retry a manual commit itself).
fn commit(consumer: &BaseConsumer<Recorder>, partition: i32, offset: i64) {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(TOPIC, partition, Offset::Offset(offset + 1))
        .unwrap();
    for _ in 0..100 {
        match consumer.commit(&list, CommitMode::Sync) {
            Ok(()) => return,
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::StaleMemberEpoch)) => {
                let _ = consumer.poll(Duration::from_millis(50));
            }
            Err(error) => panic!("commit of {partition}@{offset} refused: {error}"),
        }
    }
    panic!("commit of {partition}@{offset} kept failing");
}

/// Runs member `member` until `stop`: reads, records, commits each message before the next.
fn member(
    address: String,
    member: usize,
    events: Arc<Mutex<Vec<Event>>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let context = Recorder {
            member,
            events: events.clone(),
        };
        let consumer: BaseConsumer<Recorder> = ClientConfig::new()
            .set("bootstrap.servers", &address)
            .set("group.id", "kip848-clients")
            .set("group.protocol", "consumer")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create_with_context(context)
            .unwrap();
        consumer.subscribe(&[TOPIC]).unwrap();
        while !stop.load(Ordering::SeqCst) {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let (partition, offset) = (message.partition(), message.offset());
                    events
                        .lock()
                        .unwrap()
                        .push(Event::Read(member, partition, offset));
                    commit(&consumer, partition, offset);
                }
                Some(Err(error)) => panic!("member {member}: {error}"),
                None => {}
            }
        }
        // Leaves the group (epoch -1), revoking what it owns first.
        consumer.unsubscribe();
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let _ = consumer.poll(Duration::from_millis(50));
        }
    })
}

/// Waits until `condition` holds of the events, or fails with `what`.
fn wait_for(events: &Mutex<Vec<Event>>, what: &str, condition: impl Fn(&[Event]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition(&events.lock().unwrap()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn reads(events: &[Event]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Read(..)))
        .count()
}

fn reads_by(events: &[Event], member: usize) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, Event::Read(m, ..) if *m == member))
        .count()
}

/// Replays the events: a partition is taken only when nobody holds it, every read is by its
/// holder, and each (partition, offset) is read once.
fn check_ownership_and_reads(events: &[Event]) {
    let mut owner: BTreeMap<i32, usize> = BTreeMap::new();
    let mut read: BTreeSet<(i32, i64)> = BTreeSet::new();
    for event in events {
        match event {
            Event::Assigned(member, partitions) => {
                for p in partitions {
                    if let Some(other) = owner.insert(*p, *member) {
                        panic!("partition {p} given to {member} while {other} owns it");
                    }
                }
            }
            Event::Revoked(member, partitions) => {
                for p in partitions {
                    assert_eq!(owner.remove(p), Some(*member), "{member} revoked {p}");
                }
            }
            Event::Read(member, p, offset) => {
                assert_eq!(owner.get(p), Some(member), "{member} read {p}@{offset}");
                assert!(read.insert((*p, *offset)), "{p}@{offset} read twice");
            }
        }
    }
    let expected: BTreeSet<(i32, i64)> = (0..PARTITIONS)
        .flat_map(|p| (0..(MESSAGES as i64 / i64::from(PARTITIONS))).map(move |o| (p, o)))
        .collect();
    assert_eq!(read, expected, "every message read once");
}

#[test]
fn librdkafka_consumers_of_the_consumer_protocol_share_join_and_leave_without_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        group_consumer_heartbeat_interval_ms: 200,
        ..Default::default()
    };
    let _broker = TestBroker::start_with(config.clone());
    let address = _broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    create_topic(&address, "shared", PARTITIONS);
    produce(&address, 0, MESSAGES / 3);

    let events = Arc::new(Mutex::new(Vec::new()));
    let stops: Vec<Arc<AtomicBool>> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut members = vec![
        member(address.clone(), 0, events.clone(), stops[0].clone()),
        member(address.clone(), 1, events.clone(), stops[1].clone()),
    ];
    wait_for(&events, "both members reading", |e| {
        reads_by(e, 0) > 0 && reads_by(e, 1) > 0
    });

    // A third member joins mid-stream, while more arrives.
    members.push(member(address.clone(), 2, events.clone(), stops[2].clone()));
    produce(&address, MESSAGES / 3, 2 * MESSAGES / 3);
    wait_for(&events, "the third member reading", |e| reads_by(e, 2) > 0);

    // The first leaves; the others take its partitions and read the rest.
    stops[0].store(true, Ordering::SeqCst);
    members.remove(0).join().unwrap();
    produce(&address, 2 * MESSAGES / 3, MESSAGES);
    wait_for(&events, "every message read", |e| reads(e) >= MESSAGES);
    for stop in &stops {
        stop.store(true, Ordering::SeqCst);
    }
    for handle in members {
        handle.join().unwrap();
    }

    let events = events.lock().unwrap().clone();
    check_ownership_and_reads(&events);
    let revoked_by_leaver: Vec<i32> = events
        .iter()
        .filter_map(|e| match e {
            Event::Revoked(0, p) => Some(p.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        !revoked_by_leaver.is_empty(),
        "the leaving member gave partitions back"
    );
    let last_revocation = events
        .iter()
        .rposition(|e| matches!(e, Event::Revoked(0, _)))
        .unwrap_or(0);
    let taken_after: BTreeSet<i32> = events[last_revocation..]
        .iter()
        .filter_map(|e| match e {
            Event::Assigned(1 | 2, p) => Some(p.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        revoked_by_leaver.iter().any(|p| taken_after.contains(p)),
        "its partitions went to the others: {revoked_by_leaver:?} vs {taken_after:?}"
    );
}
