//! The age of a queue group's oldest available message (`ringmq_queue_oldest_available_age_seconds`),
//! over TCP against a real broker: the age of the oldest message it could deliver now, by its
//! timestamp; 0 while every message is locked; back when a release makes one available again.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{TestBroker, scrape};
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{Client, QueueConsumer, QueueConsumerConfig};
use ringmq::runtime::{block_on, sleep};
use ringmq::storage::AckLevel;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// The gauge of group `g` on topic `aged`, partition 0, after the shard's next queue tick.
async fn age_seconds(http: &str) -> f64 {
    sleep(Duration::from_millis(300)).await;
    let name = "ringmq_queue_oldest_available_age_seconds{";
    scrape(http)
        .lines()
        .filter(|line| line.starts_with(name) && line.contains("topic=\"aged\""))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .expect("the gauge is exported")
}

#[test]
fn the_oldest_available_message_age_follows_what_could_be_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let (address, http) = (broker.address(), broker.http_address());
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("aged", 1, &[]).await.unwrap();
        client.create_queue_group("aged", "g", &[]).await.unwrap();
        assert_eq!(age_seconds(&http).await, 0.0, "nothing to deliver");
        // Two messages stamped 20 s and 10 s ago.
        for age_ms in [20_000, 10_000] {
            let mut builder = BatchBuilder::new(Compression::None);
            builder.push(Record::new(now_ms() - age_ms, None, Some(b"job")));
            let batch = BytesMut::from(&builder.build()[..]);
            client
                .produce("aged", Some(0), b"", AckLevel::Fsynced, batch)
                .await
                .unwrap();
        }
        let age = age_seconds(&http).await;
        assert!((20.0..30.0).contains(&age), "oldest of two: {age}");
        let config = QueueConsumerConfig {
            max_messages: 1,
            wait_ms: 1_000,
            visibility_timeout_ms: 60_000,
            create: false,
        };
        let consumer = QueueConsumer::new(client.clone(), "aged", "g", config);
        let first = consumer.receive().await.unwrap();
        assert_eq!(first.len(), 1);
        let age = age_seconds(&http).await;
        assert!(
            (10.0..19.0).contains(&age),
            "the older one is locked: {age}"
        );
        let second = consumer.receive().await.unwrap();
        assert_eq!(second.len(), 1);
        assert_eq!(age_seconds(&http).await, 0.0, "both locked");
        consumer.release(&first[0], 0).await.unwrap();
        let age = age_seconds(&http).await;
        assert!(
            (20.0..30.0).contains(&age),
            "released, available again: {age}"
        );
    });
}
