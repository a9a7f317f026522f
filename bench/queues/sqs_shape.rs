//! The native protocol in the SQS benchmark's shape (bench/sqs-sdk), so bench/RESULTS.md can
//! state what HTTP and the SQS door cost over the native protocol on the same workload: one
//! queue of one partition, 100 B messages, `CONCURRENCY` tasks (one connection each), a send
//! phase of 10-message produces (one call, one fsync, as SendMessageBatch), then a drain of
//! receives of up to 10 each settled by one ack of all (as ReceiveMessage + DeleteMessageBatch,
//! one fsynced journal entry), each phase for `seconds`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::client::queue::{QueueConsumer, QueueConsumerConfig};
use ringmq::storage::AckLevel;

/// Tasks per phase, as `bench/sqs-sdk/run.sh 8 8`.
pub const CONCURRENCY: usize = 8;
const BODY_BYTES: usize = 100;

/// (sends msg/s, receive + ack msg/s) of one run on a fresh queue `topic`.
pub fn run(address: &str, topic: &str, seconds: f64) -> (f64, f64) {
    ringmq::runtime::block_on(async {
        let admin = Client::connect(address).await.unwrap();
        admin.create_topic(topic, 1, &[]).await.unwrap();
        admin.create_queue_group(topic, "g", &[]).await.unwrap();
        let mut clients = Vec::new();
        for _ in 0..CONCURRENCY {
            clients.push(Client::connect(address).await.unwrap());
        }
        let phase = Duration::from_secs_f64(seconds);

        let sent = Rc::new(Cell::new(0u64));
        let started = Instant::now();
        let senders = clients.iter().map(|client| {
            let sent = sent.clone();
            async move {
                while started.elapsed() < phase {
                    let mut builder = BatchBuilder::new(Compression::None);
                    for _ in 0..10 {
                        builder.push(Record::new(0, None, Some(&[b'x'; BODY_BYTES][..])));
                    }
                    let batch = BytesMut::from(&builder.build()[..]);
                    client
                        .produce(topic, Some(0), b"", AckLevel::Fsynced, batch)
                        .await
                        .unwrap();
                    sent.set(sent.get() + 10);
                }
            }
        });
        futures_util::future::join_all(senders).await;
        let send_rate = sent.get() as f64 / started.elapsed().as_secs_f64();

        let done = Rc::new(Cell::new(0u64));
        let started = Instant::now();
        let receivers = clients.iter().map(|client| {
            let done = done.clone();
            let config = QueueConsumerConfig {
                max_messages: 10,
                wait_ms: 0,
                visibility_timeout_ms: 30_000,
                create: false,
            };
            let consumer = QueueConsumer::new(client.clone(), topic, "g", config);
            async move {
                while started.elapsed() < phase {
                    let messages = consumer.receive().await.unwrap();
                    if messages.is_empty() {
                        continue;
                    }
                    consumer.ack_all(&messages).await.unwrap();
                    done.set(done.get() + messages.len() as u64);
                }
            }
        });
        futures_util::future::join_all(receivers).await;
        (
            send_rate,
            done.get() as f64 / started.elapsed().as_secs_f64(),
        )
    })
}
