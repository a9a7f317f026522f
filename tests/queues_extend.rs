//! `QueueConsumer::while_locked` against a real broker: a handler running five times the
//! visibility timeout keeps its message, which no other consumer receives meanwhile and which
//! is never redelivered once acknowledged; the same handler without it loses the message to
//! the other consumer when the lock expires (so the check can fail).

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::TestBroker;
use futures_util::future::join;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{Client, QueueConsumer, QueueConsumerConfig};
use ringmq::protocol::queues::QueueMessage;
use ringmq::runtime::{block_on, sleep};
use ringmq::storage::AckLevel;

const VISIBILITY_MS: u32 = 500;
const HANDLER_MS: u64 = 2_500;

fn consumer(client: &Client) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages: 1,
        wait_ms: 100,
        visibility_timeout_ms: VISIBILITY_MS,
        create: false,
    };
    QueueConsumer::new(client.clone(), "slow", "g", config)
}

/// What `other` receives (and acks) while the handler runs, and a bit after.
async fn compete(other: &QueueConsumer) -> Vec<u64> {
    let started = Instant::now();
    let mut got = Vec::new();
    while started.elapsed() < Duration::from_millis(HANDLER_MS + 200) {
        let messages = other.receive().await.unwrap();
        got.extend(messages.iter().map(|m| m.offset));
        if !messages.is_empty() {
            other.ack_all(&messages).await.unwrap();
        }
    }
    got
}

async fn produce_one(client: &Client) {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(0, None, Some(b"job")));
    let batch = BytesMut::from(&builder.build()[..]);
    client
        .produce("slow", Some(0), b"", AckLevel::Fsynced, batch)
        .await
        .unwrap();
}

async fn one(consumer: &QueueConsumer) -> Vec<QueueMessage> {
    let messages = consumer.receive().await.unwrap();
    assert_eq!(messages.len(), 1);
    messages
}

#[test]
fn a_handler_longer_than_the_lock_keeps_its_message_while_locked() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("slow", 1, &[]).await.unwrap();
        client.create_queue_group("slow", "g", &[]).await.unwrap();
        produce_one(&client).await;
        let (worker, other) = (consumer(&client), consumer(&client));

        // Offset 0, handled under while_locked: the other consumer never gets it.
        let held = one(&worker).await;
        assert_eq!(held[0].offset, 0);
        let handler = worker.while_locked(&held, async {
            sleep(Duration::from_millis(HANDLER_MS)).await;
            worker.ack_all(&held).await
        });
        let (acked, stolen) = join(handler, compete(&other)).await;
        acked.expect("the lock was still held at the end of the handler");
        assert_eq!(stolen, Vec::<u64>::new(), "the lock was kept");

        // Offset 1, the same handler without it: the lock expires and the other takes it.
        produce_one(&client).await;
        let lost = one(&worker).await;
        assert_eq!(lost[0].offset, 1);
        let handler = sleep(Duration::from_millis(HANDLER_MS));
        let ((), stolen) = join(handler, compete(&other)).await;
        assert_eq!(stolen, vec![1], "without extensions the lock expired");
        assert!(worker.ack_all(&lost).await.is_err(), "its lock is gone");
        assert!(other.receive().await.unwrap().is_empty(), "each acked once");
    });
}
