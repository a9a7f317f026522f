//! The Rust client's two faces side by side: `Client` on the caller's compio runtime, and
//! `ThreadedClient` (the `Send` handle for tokio) driven from a tokio runtime, against one
//! in-process broker, in one run.
//!
//! `cargo bench --bench client [-- --runs N]`: produces 1,000-record batches of 100-byte records
//! with 8 requests in flight at `written`, and prints msg/s (median of N runs, default 3) and the
//! ratio. Not a test: nothing here asserts speed.

use std::time::Instant;

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{Client, ThreadedClient};
use ringmq::runtime;
use ringmq::storage::AckLevel;

const BATCHES: usize = 2_000;
const RECORDS_PER_BATCH: usize = 1_000;
const IN_FLIGHT: usize = 8;

fn batch() -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    let value = [b'x'; 100];
    for _ in 0..RECORDS_PER_BATCH {
        builder.push(Record::new(0, None, Some(&value)));
    }
    BytesMut::from(&builder.build()[..])
}

fn native(address: &str, topic: &str) -> f64 {
    runtime::block_on(async {
        let client = Client::connect(address).await.unwrap();
        let started = Instant::now();
        let lanes: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (client, topic) = (client.clone(), topic.to_string());
                runtime::spawn(async move {
                    for _ in 0..BATCHES / IN_FLIGHT {
                        client
                            .produce(&topic, Some(0), b"", AckLevel::Written, batch())
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for lane in lanes {
            lane.await.unwrap();
        }
        (BATCHES * RECORDS_PER_BATCH) as f64 / started.elapsed().as_secs_f64()
    })
}

fn threaded(address: &str, topic: &str) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = ThreadedClient::connect(address).await.unwrap();
        let started = Instant::now();
        let lanes: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (client, topic) = (client.clone(), topic.to_string());
                tokio::spawn(async move {
                    for _ in 0..BATCHES / IN_FLIGHT {
                        client
                            .produce(&topic, Some(0), b"", AckLevel::Written, batch())
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for lane in lanes {
            lane.await.unwrap();
        }
        (BATCHES * RECORDS_PER_BATCH) as f64 / started.elapsed().as_secs_f64()
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let broker = ringmq::server::start(ringmq::config::BrokerConfig {
        data_dir: dir.path().into(),
        listen: "127.0.0.1:0".into(),
        kafka_listen: String::new(),
        http_listen: String::new(),
        shards: 1,
        ..Default::default()
    })
    .unwrap();
    let address = broker.address.to_string();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("bench", 1, &[]).await.unwrap();
    });
    // Interleaved, so that both see the same machine and the same log size over the run.
    let (mut natives, mut threadeds) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        natives.push(native(&address, "bench"));
        threadeds.push(threaded(&address, "bench"));
    }
    let (native, threaded) = (median(natives), median(threadeds));
    println!("| client | msg/s (median of {runs}) |");
    println!("|---|---|");
    println!("| Client (compio) | {native:.0} |");
    println!("| ThreadedClient (from tokio) | {threaded:.0} |");
    println!("ratio threaded / native: {:.2}", threaded / native);
    broker.shutdown();
}
