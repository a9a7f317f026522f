//! Topic creation and deletion must not stall the partitions beside them: the file-system work
//! of a topic change (directories, segment files, fsyncs of directories, deletions) runs on the
//! blocking pool, not on the shard thread that serves other partitions' produces.
//!
//! The loaded partition is one that shard 0 owns, because topic changes run on shard 0; its
//! produces are timed one at a time while another client creates and deletes 100 topics.

mod common;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::runtime;
use ringmq::shard::owner_of;
use ringmq::storage::AckLevel;

const SHARDS: usize = 2;
const TOPICS: usize = 100;
const PARTITIONS_PER_TOPIC: u32 = 4;
/// The bound on the loaded partition's worst produce while topics come and go.
const PRODUCE_LATENCY_MS_MAX: u128 = 50;

fn one_record(value: &[u8]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(1_000, None, Some(value)));
    BytesMut::from(&builder.build()[..])
}

/// The first of "load-0", "load-1", ... whose partition 0 shard 0 owns.
fn topic_on_shard_zero() -> String {
    (0..)
        .map(|n| format!("load-{n}"))
        .find(|name| owner_of(name, 0, SHARDS) == 0)
        .expect("some name hashes to shard 0")
}

/// Produces one record at a time until `stop`, returning every produce's latency.
async fn produce_until(client: &Client, topic: &str, stop: &Cell<bool>) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while !stop.get() {
        let started = Instant::now();
        client
            .produce(topic, Some(0), b"", AckLevel::Written, one_record(b"tick"))
            .await
            .unwrap();
        latencies.push(started.elapsed());
    }
    latencies
}

fn summary(latencies: &mut [Duration]) -> (Duration, Duration, usize) {
    latencies.sort_unstable();
    let max = latencies.last().copied().unwrap_or_default();
    let p99 = latencies
        .get(latencies.len().saturating_mul(99) / 100)
        .copied()
        .unwrap_or_default();
    (max, p99, latencies.len())
}

#[test]
fn creating_and_deleting_100_topics_does_not_stall_a_loaded_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), SHARDS);
    let address = broker.address();
    let topic = topic_on_shard_zero();
    runtime::block_on(async {
        let producer = Client::connect(&address).await.unwrap();
        let admin = Client::connect(&address).await.unwrap();
        admin.create_topic(&topic, 1, &[]).await.unwrap();

        // Quiet: the partition's latency with nothing else going on, for comparison.
        let stop = Rc::new(Cell::new(false));
        let quiet_stop = stop.clone();
        runtime::spawn_detached(async move {
            runtime::sleep(Duration::from_millis(500)).await;
            quiet_stop.set(true);
        });
        let mut quiet = produce_until(&producer, &topic, &stop).await;

        stop.set(false);
        let admin_time = Rc::new(RefCell::new(Duration::ZERO));
        let (admin_stop, admin_elapsed) = (stop.clone(), admin_time.clone());
        let churn = runtime::spawn(async move {
            let started = Instant::now();
            for n in 0..TOPICS {
                let name = format!("churn-{n}");
                admin
                    .create_topic(&name, PARTITIONS_PER_TOPIC, &[])
                    .await
                    .unwrap();
            }
            for n in 0..TOPICS {
                admin.delete_topic(&format!("churn-{n}")).await.unwrap();
            }
            *admin_elapsed.borrow_mut() = started.elapsed();
            admin_stop.set(true);
        });
        let mut loaded = produce_until(&producer, &topic, &stop).await;
        churn.await.unwrap();

        let (quiet_max, quiet_p99, quiet_count) = summary(&mut quiet);
        let (max, p99, count) = summary(&mut loaded);
        eprintln!(
            "quiet: {quiet_count} produces, p99 {quiet_p99:?}, max {quiet_max:?}; \
             while {TOPICS} topics of {PARTITIONS_PER_TOPIC} partitions were created and \
             deleted (in {:?}): {count} produces, p99 {p99:?}, max {max:?}",
            admin_time.borrow()
        );
        assert!(
            max.as_millis() < PRODUCE_LATENCY_MS_MAX,
            "the loaded partition's worst produce took {max:?} while topics came and went \
             (p99 {p99:?}, quiet max {quiet_max:?})"
        );
    });
}
