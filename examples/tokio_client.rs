//! The client from a tokio program: `ThreadedClient` is `Send`, so its calls can be spawned on
//! any tokio runtime; it runs the compio client on a thread of its own.
//!
//! `cargo run --example tokio_client -- [BROKER] [TOPIC]`

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{ClientError, ThreadedClient};
use ringmq::protocol::ErrorCode;
use ringmq::storage::AckLevel;

/// Produces 4 batches of 100 records from 4 spawned tokio tasks; returns each batch's offsets.
pub async fn run(broker: &str, topic: &str) -> Result<Vec<(u64, u64)>, ClientError> {
    let client = ThreadedClient::connect(broker).await?;
    match client.create_topic(topic, 1, &[]).await {
        Err(error) if error.code() == Some(ErrorCode::TopicExists) => {}
        other => other?,
    }
    let tasks: Vec<_> = (0..4)
        .map(|task| {
            let (client, topic) = (client.clone(), topic.to_string());
            tokio::spawn(async move {
                let mut builder = BatchBuilder::new(Compression::None);
                for n in 0..100 {
                    let value = format!("task {task} record {n}");
                    builder.push(Record::new(0, None, Some(value.as_bytes())));
                }
                let records = BytesMut::from(&builder.build()[..]);
                client
                    .produce(&topic, Some(0), b"", AckLevel::Fsynced, records)
                    .await
            })
        })
        .collect();
    let mut offsets = Vec::new();
    for task in tasks {
        let stored = task
            .await
            .map_err(|error| ClientError::Connection(error.to_string()))??;
        offsets.push((stored.base_offset, stored.last_offset));
    }
    offsets.sort_unstable();
    Ok(offsets)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let broker = args
        .get(1)
        .map_or("127.0.0.1:9400", String::as_str)
        .to_string();
    let topic = args
        .get(2)
        .map_or("example-tokio", String::as_str)
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(&broker, &topic)) {
        Ok(offsets) => {
            for (first, last) in offsets {
                println!("stored offsets {first}..={last}");
            }
        }
        Err(error) => {
            eprintln!("tokio client: {error}");
            std::process::exit(1);
        }
    }
}
