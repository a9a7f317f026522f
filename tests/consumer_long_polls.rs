//! The Rust client's consumers over several partitions keep at most one long poll out per
//! partition. Before, each poll that returned records from one partition abandoned the long
//! polls on the others; the broker held each until its deadline with a response reservation
//! against the connection's in-flight budget, so a busy consumer piled them up until that
//! budget stalled it (request/reply over a 2-partition topic fell to 130 round trips/s).
//! These tests count the reservations on the broker after a run of polls, and check that a
//! seek is served at once rather than after the poll it replaced.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{Client, Consumer, ConsumerConfig, GroupConfig, GroupConsumer, StartAt};
use ringmq::runtime;
use ringmq::storage::AckLevel;

/// Polls in each test: each would have abandoned one long poll before the fix.
const ROUNDS: u64 = 24;
/// Bytes a fetch asks for (and the broker reserves for its answer).
const FETCH_BYTES: u32 = 1 << 20;

async fn produce_one(client: &Client, topic: &str, partition: u32, n: u64) {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(0, None, Some(format!("m{n}").as_bytes())));
    let records = BytesMut::from(&builder.build()[..]);
    client
        .produce(topic, Some(partition), b"", AckLevel::Written, records)
        .await
        .unwrap();
}

/// Produces once the poll beside it has had time to find nothing and long-poll every
/// partition (the case that left polls behind).
async fn produce_while_polling(client: &Client, topic: &str, partition: u32, n: u64) {
    runtime::sleep(Duration::from_millis(20)).await;
    produce_one(client, topic, partition, n).await;
}

/// Response bytes the broker has reserved for requests in flight, over both shards.
fn reserved_bytes(broker: &TestBroker) -> f64 {
    let page = common::scrape(&broker.http_address());
    page.lines()
        .filter(|line| line.starts_with("ringmq_shard_inflight_reserved_bytes{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn value(record: &Record) -> String {
    String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap()
}

/// The gauge of reserved bytes is the process's, shared by every broker in it, so one broker
/// runs both cases in turn rather than two tests in parallel.
#[test]
fn consumers_keep_one_long_poll_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        a_consumer(&broker, &client).await;
        // The plain consumer's polls are still out on the broker, waiting out their 30 s.
        a_group_member(&broker, &client).await;
    });
}

async fn a_consumer(broker: &TestBroker, client: &Client) {
    {
        client.create_topic("two", 2, &[]).await.unwrap();
        let config = ConsumerConfig {
            max_bytes: FETCH_BYTES,
            max_wait_ms: 30_000,
            ..ConsumerConfig::default()
        };
        let mut consumer = Consumer::new(client.clone(), "two", None, StartAt::Earliest, config)
            .await
            .unwrap();
        for n in 0..ROUNDS {
            // Always partition 0: partition 1's poll, abandoned each round before the fix,
            // then waits out its deadline.
            let partition = 0;
            let (polled, ()) = futures_util::future::join(
                consumer.poll(),
                produce_while_polling(client, "two", partition, n),
            )
            .await;
            let polled = polled.unwrap();
            let got: Vec<(u32, String)> = polled
                .iter()
                .map(|consumed| (consumed.partition, value(&consumed.record)))
                .collect();
            assert_eq!(got, vec![(partition, format!("m{n}"))], "round {n}");
        }
        // Partition 1's poll is out now, and nothing else: the fix's whole point.
        let reserved = reserved_bytes(broker);
        assert!(
            reserved <= f64::from(FETCH_BYTES) + 65_536.0,
            "{reserved} bytes reserved after {ROUNDS} polls over 2 partitions"
        );

        // A seek while its partition's poll is out is served by the next poll, not after the
        // 30 s the old poll may still wait.
        consumer.seek(0, 0);
        let replayed: Vec<String> = consumer
            .poll()
            .await
            .unwrap()
            .iter()
            .filter(|consumed| consumed.partition == 0)
            .map(|consumed| value(&consumed.record))
            .collect();
        let expected: Vec<String> = (0..ROUNDS).map(|n| format!("m{n}")).collect();
        assert_eq!(replayed, expected);
    }
}

async fn a_group_member(broker: &TestBroker, client: &Client) {
    let reserved_before = reserved_bytes(broker);
    {
        client.create_topic("pair", 2, &[]).await.unwrap();
        let config = GroupConfig {
            max_bytes: FETCH_BYTES,
            max_wait_ms: 30_000,
            heartbeat_interval_ms: 3_000,
            auto_commit: false,
            ..GroupConfig::default()
        };
        let mut member = GroupConsumer::join(client.clone(), "g", &["pair"], config)
            .await
            .unwrap();
        assert_eq!(member.assignment().len(), 2);
        for n in 0..ROUNDS {
            // Always partition 0: partition 1's poll, abandoned each round before the fix,
            // then waits out its deadline.
            let partition = 0;
            let (polled, ()) = futures_util::future::join(
                member.poll(),
                produce_while_polling(client, "pair", partition, n),
            )
            .await;
            let got: Vec<(u32, String)> = polled
                .unwrap()
                .iter()
                .map(|record| (record.partition, value(&record.record)))
                .collect();
            assert_eq!(got, vec![(partition, format!("m{n}"))], "round {n}");
        }
        let reserved = reserved_bytes(broker);
        assert!(
            reserved <= reserved_before + f64::from(FETCH_BYTES) + 65_536.0,
            "{reserved} bytes reserved after {ROUNDS} polls over 2 partitions"
        );
    }
}
