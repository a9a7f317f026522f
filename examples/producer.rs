//! A producer: creates a topic if needed, sends keyed records through the batching `Producer`
//! and prints where each was stored.
//!
//! `cargo run --example producer -- [BROKER] [TOPIC] [COUNT]` against a running
//! `ringmq serve` (default 127.0.0.1:9400, topic `example-orders`, 10 records).

use ringmq::batch::Record;
use ringmq::client::{Client, ClientError, Producer, ProducerConfig, RecordAck};
use ringmq::protocol::ErrorCode;

/// Sends `count` records keyed `customer-N` to `topic`; returns where each was stored.
pub async fn run(broker: &str, topic: &str, count: usize) -> Result<Vec<RecordAck>, ClientError> {
    let client = Client::connect(broker).await?;
    match client.create_topic(topic, 3, &[]).await {
        Err(error) if error.code() == Some(ErrorCode::TopicExists) => {}
        other => other?,
    }
    let producer = Producer::new(client, ProducerConfig::default());
    let mut deliveries = Vec::with_capacity(count);
    for n in 0..count {
        let key = format!("customer-{}", n % 4);
        let value = format!("order {n}");
        let now_ms = ringmq::storage::log::now_ms();
        let record = Record::new(now_ms, Some(key.as_bytes()), Some(value.as_bytes()));
        deliveries.push(producer.send(topic, record).await?);
    }
    producer.flush().await;
    let mut stored = Vec::with_capacity(count);
    for delivery in deliveries {
        let ack = delivery
            .await
            .map_err(|_| ClientError::Connection("the producer stopped".into()))??;
        stored.push(ack);
    }
    Ok(stored)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let broker = args.get(1).map_or("127.0.0.1:9400", String::as_str);
    let topic = args.get(2).map_or("example-orders", String::as_str);
    let count = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(10);
    match ringmq::runtime::block_on(run(broker, topic, count)) {
        Ok(stored) => {
            for ack in stored {
                println!(
                    "stored at partition {} offset {}",
                    ack.partition, ack.offset
                );
            }
        }
        Err(error) => {
            eprintln!("producer: {error}");
            std::process::exit(1);
        }
    }
}
