//! A consumer: reads every partition of a topic from the start to the end of the log and
//! prints each record (not a group member: it commits nothing).
//!
//! `cargo run --example consumer -- [BROKER] [TOPIC]`

use ringmq::client::{Client, ClientError, ConsumedRecord, Consumer, ConsumerConfig, StartAt};

/// Every record of `topic` stored now, in offset order per partition.
pub async fn run(broker: &str, topic: &str) -> Result<Vec<ConsumedRecord>, ClientError> {
    let client = Client::connect(broker).await?;
    let config = ConsumerConfig {
        max_wait_ms: 100,
        ..ConsumerConfig::default()
    };
    // `None`: every partition of the topic.
    let mut consumer = Consumer::new(client, topic, None, StartAt::Earliest, config).await?;
    let mut records = Vec::new();
    loop {
        records.extend(consumer.poll().await?);
        if consumer.at_end() {
            return Ok(records);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let broker = args.get(1).map_or("127.0.0.1:9400", String::as_str);
    let topic = args.get(2).map_or("example-orders", String::as_str);
    match ringmq::runtime::block_on(run(broker, topic)) {
        Ok(records) => {
            for consumed in records {
                let value = consumed.record.value.unwrap_or_default();
                println!(
                    "{}/{}: {}",
                    consumed.partition,
                    consumed.offset,
                    String::from_utf8_lossy(&value)
                );
            }
        }
        Err(error) => {
            eprintln!("consumer: {error}");
            std::process::exit(1);
        }
    }
}
