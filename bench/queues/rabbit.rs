//! RabbitMQ's side of the queue benchmark, through `lapin` on tokio: a quorum queue (its
//! messages are confirmed after its WAL's fsync), persistent 100 B messages published by 4
//! connections with publisher confirms (a window of unconfirmed ones each), and 4 consumer
//! connections with a prefetch acknowledging each message on its own (`basic.ack`, not
//! `multiple`), all running together, as ringmq's side does.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};

use super::{CONSUMERS, MESSAGE_BYTES, PRODUCERS, RECEIVE_MAX, Rates};

const QUEUE: &str = "qbench";
/// Publishes awaiting their confirm per producer, at most.
const CONFIRM_WINDOW: usize = 5_000;

async fn connect(uri: &str) -> Connection {
    Connection::connect(uri, ConnectionProperties::default())
        .await
        .expect("RabbitMQ answers")
}

/// Deletes and declares the quorum queue, so each run starts empty.
async fn declare(uri: &str) {
    let connection = connect(uri).await;
    let channel = connection.create_channel().await.unwrap();
    let _ = channel
        .queue_delete(QUEUE.into(), QueueDeleteOptions::default())
        .await;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .queue_declare(QUEUE.into(), options, arguments)
        .await
        .expect("a quorum queue");
    let _ = connection.close(200, "declared".into()).await;
}

async fn produce(uri: String, stop: Arc<AtomicBool>) -> u64 {
    let connection = connect(&uri).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let body = [7u8; MESSAGE_BYTES];
    let (mut pending, mut confirmed) = (VecDeque::new(), 0u64);
    while !stop.load(Ordering::Relaxed) {
        let properties = BasicProperties::default().with_delivery_mode(2);
        let confirm = channel
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &body,
                properties,
            )
            .await
            .expect("a publish");
        pending.push_back(confirm);
        if pending.len() >= CONFIRM_WINDOW
            && let Some(confirm) = pending.pop_front()
            && matches!(confirm.await, Ok(c) if c.is_ack())
        {
            confirmed += 1;
        }
    }
    for confirm in pending {
        if matches!(confirm.await, Ok(c) if c.is_ack()) {
            confirmed += 1;
        }
    }
    let _ = connection.close(200, "done".into()).await;
    confirmed
}

async fn consume(uri: String, tag: String, stop: Arc<AtomicBool>, acked: Arc<AtomicU64>) {
    let connection = connect(&uri).await;
    let channel = connection.create_channel().await.unwrap();
    channel
        .basic_qos(RECEIVE_MAX as u16, BasicQosOptions::default())
        .await
        .unwrap();
    let mut deliveries = channel
        .basic_consume(
            QUEUE.into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("RabbitMQ lets us consume");
    while !stop.load(Ordering::Relaxed) {
        let next = tokio::time::timeout(Duration::from_millis(50), deliveries.next()).await;
        let delivery = match next {
            Ok(Some(Ok(delivery))) => delivery,
            Ok(_) => break,
            Err(_) => continue,
        };
        if delivery.ack(BasicAckOptions::default()).await.is_ok() {
            acked.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

/// Producers and consumers together for `seconds`; the consumers' acks counted.
pub fn receive_and_ack(uri: &str, seconds: f64) -> Rates {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async {
        declare(uri).await;
        let (stop_producers, stop_consumers) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let acked = Arc::new(AtomicU64::new(0));
        let consumers: Vec<_> = (0..CONSUMERS)
            .map(|n| {
                tokio::spawn(consume(
                    uri.to_string(),
                    format!("consumer-{n}"),
                    stop_consumers.clone(),
                    acked.clone(),
                ))
            })
            .collect();
        let started = Instant::now();
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|_| tokio::spawn(produce(uri.to_string(), stop_producers.clone())))
            .collect();
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop_producers.store(true, Ordering::Relaxed);
        let done = acked.load(Ordering::Relaxed);
        let elapsed = started.elapsed().as_secs_f64();
        let mut produced = 0;
        for producer in producers {
            produced += producer.await.unwrap_or(0);
        }
        let produced_elapsed = started.elapsed().as_secs_f64();
        stop_consumers.store(true, Ordering::Relaxed);
        for consumer in consumers {
            let _ = consumer.await;
        }
        Rates {
            produced: produced as f64 / produced_elapsed,
            acked: done as f64 / elapsed,
        }
    })
}
