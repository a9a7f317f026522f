//! The broker load generator: producers and consumers over the native protocol, at the maximum
//! rate or a fixed rate, reporting publish and consume rates, publish latency and end-to-end
//! latency (HdrHistogram, p50..max) under OpenMessaging Benchmark field names, as JSON and text.
//!
//! `cargo run --release --bin ringmq-loadgen -- [--broker ADDR] [--producers N] [--consumers N]
//!   [--message-bytes B] [--partitions P] [--rate MSG_PER_S] [--duration-s S] [--acks LEVEL]
//!   [--batch-bytes B] [--inflight N] [--shards N] [--topic-config KEY=VALUE]... [--json PATH]`
//!
//! Without --broker it starts a broker in this process (temporary data directory), so generator
//! and broker share the machine's cores, as they would with any peer run the same way.
//! At a fixed rate, latency is measured from each batch's intended send time, so a stalled
//! broker cannot hide its stall (coordinated omission is corrected).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use ringmq::batch::{self, BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::protocol::FetchRequest;
use ringmq::runtime;
use ringmq::storage::AckLevel;

#[derive(Clone, Debug)]
struct Options {
    broker: Option<String>,
    producers: usize,
    consumers: usize,
    message_bytes: usize,
    partitions: u32,
    rate: u64,
    duration_s: u64,
    acks: AckLevel,
    batch_bytes: usize,
    inflight: usize,
    shards: usize,
    json: Option<String>,
    topic_configs: Vec<(String, String)>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let number = |flag: &str, default: u64| {
        value(flag).map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{flag} takes a number"))
        })
    };
    Options {
        broker: value("--broker"),
        producers: number("--producers", 1) as usize,
        consumers: number("--consumers", 1) as usize,
        message_bytes: number("--message-bytes", 100) as usize,
        partitions: number("--partitions", 16) as u32,
        rate: number("--rate", 0),
        duration_s: number("--duration-s", 10),
        acks: value("--acks").map_or(AckLevel::Written, |v| {
            AckLevel::parse(&v).expect("--acks none|written|fsynced")
        }),
        batch_bytes: number("--batch-bytes", 64 * 1024) as usize,
        inflight: number("--inflight", 8) as usize,
        shards: number("--shards", 0) as usize,
        json: value("--json"),
        topic_configs: args
            .windows(2)
            .filter(|pair| pair[0] == "--topic-config")
            .map(|pair| {
                let (key, value) = pair[1].split_once('=').expect("--topic-config KEY=VALUE");
                (key.to_string(), value.to_string())
            })
            .collect(),
    }
}

/// Nanoseconds since a process-wide epoch: producer and consumer share the clock.
fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// A producer's batch of `count` messages, built once; each send stamps the intended send time
/// into the first value and re-seals the CRC, so the generator spends its core on sending, not
/// on rebuilding identical records.
struct BatchTemplate {
    bytes: Vec<u8>,
    stamp_at: usize,
}

const STAMP_MARKER: [u8; 8] = *b"\xfeSTAMP\xfe\xef";

impl BatchTemplate {
    fn new(count: usize, message_bytes: usize) -> BatchTemplate {
        let mut builder = BatchBuilder::new(Compression::None);
        let mut value = vec![b'x'; message_bytes.max(8)];
        value[..8].copy_from_slice(&STAMP_MARKER);
        builder.push(Record::new(0, None, Some(&value)));
        value[..8].copy_from_slice(&[0; 8]);
        for _ in 1..count {
            builder.push(Record::new(0, None, Some(&value)));
        }
        let bytes = builder.build().to_vec();
        let stamp_at = bytes
            .windows(8)
            .position(|window| window == STAMP_MARKER)
            .expect("the marker is in the first value");
        BatchTemplate { bytes, stamp_at }
    }

    fn stamped(&self, sent_ns: u64) -> BytesMut {
        let mut bytes = BytesMut::from(&self.bytes[..]);
        bytes[self.stamp_at..self.stamp_at + 8].copy_from_slice(&sent_ns.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[batch::CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes
    }
}

#[derive(Default)]
struct Totals {
    published: Cell<u64>,
    published_bytes: Cell<u64>,
    consumed: Cell<u64>,
    consumed_bytes: Cell<u64>,
    errors: Cell<u64>,
}

async fn producer(
    options: Options,
    address: String,
    topic: String,
    index: usize,
    deadline: Instant,
    totals: Rc<Totals>,
    latency: Rc<RefCell<Histogram<u64>>>,
) {
    let client = Client::connect(&address).await.expect("producer connects");
    let per_batch = (options.batch_bytes / (options.message_bytes + 8)).max(1);
    // Fixed rate: this producer's share, in batches per second.
    let interval = (options.rate > 0).then(|| {
        let batches_per_s = options.rate as f64 / options.producers as f64 / per_batch as f64;
        Duration::from_secs_f64(1.0 / batches_per_s)
    });
    let template = BatchTemplate::new(per_batch, options.message_bytes);
    let in_flight = Rc::new(Cell::new(0usize));
    let released = Rc::new(ringmq::runtime::Notify::default());
    let start = Instant::now();
    let mut sequence: u64 = 0;
    while Instant::now() < deadline {
        let intended = match interval {
            Some(interval) => {
                let intended = start + interval.mul_f64(sequence as f64);
                if let Some(wait) = intended.checked_duration_since(Instant::now()) {
                    runtime::sleep(wait).await;
                }
                intended
            }
            None => Instant::now(),
        };
        loop {
            let notified = released.wait();
            if in_flight.get() < options.inflight {
                break;
            }
            notified.await;
        }
        let intended_ns = now_ns() - intended.elapsed().as_nanos() as u64;
        let records = template.stamped(intended_ns);
        let partition =
            ((sequence as usize * options.producers + index) % options.partitions as usize) as u32;
        sequence += 1;
        in_flight.set(in_flight.get() + 1);
        let (client, totals, latency, in_flight, released) = (
            client.clone(),
            totals.clone(),
            latency.clone(),
            in_flight.clone(),
            released.clone(),
        );
        let bytes = records.len() as u64;
        let acks = options.acks;
        let topic = topic.clone();
        runtime::spawn_detached(async move {
            match client
                .produce(&topic, Some(partition), b"", acks, records)
                .await
            {
                Ok(_) => {
                    let elapsed = now_ns().saturating_sub(intended_ns).max(1);
                    latency
                        .borrow_mut()
                        .record_n(elapsed, per_batch as u64)
                        .expect("in range");
                    totals
                        .published
                        .set(totals.published.get() + per_batch as u64);
                    totals
                        .published_bytes
                        .set(totals.published_bytes.get() + bytes);
                }
                Err(error) => {
                    totals.errors.set(totals.errors.get() + 1);
                    eprintln!("produce failed: {error}");
                }
            }
            in_flight.set(in_flight.get() - 1);
            released.notify();
        });
    }
    loop {
        let notified = released.wait();
        if in_flight.get() == 0 {
            break;
        }
        notified.await;
    }
}

/// Reads this consumer's share of the partitions, each partition in its own long-poll loop (a
/// partition with nothing new must not hold up the others).
async fn consumer(
    options: Options,
    address: String,
    topic: String,
    index: usize,
    stop: Rc<Cell<bool>>,
    totals: Rc<Totals>,
    latency: Rc<RefCell<Histogram<u64>>>,
) {
    let client = Client::connect(&address).await.expect("consumer connects");
    let partitions: Vec<u32> = (0..options.partitions)
        .filter(|p| *p as usize % options.consumers == index)
        .collect();
    let loops = partitions.into_iter().map(|partition| {
        let (client, topic, stop, totals, latency) = (
            client.clone(),
            topic.clone(),
            stop.clone(),
            totals.clone(),
            latency.clone(),
        );
        async move {
            let mut offset = 0u64;
            while !stop.get() {
                let request = FetchRequest {
                    topic: topic.clone(),
                    partition,
                    offset,
                    max_bytes: 1 << 20,
                    min_bytes: 1,
                    max_wait_ms: 100,
                };
                let Ok(response) = client.fetch(request).await else {
                    totals.errors.set(totals.errors.get() + 1);
                    continue;
                };
                for chunk in &response.records {
                    for (_, framed) in batch::iter_framed(chunk) {
                        let header = batch::header(framed).expect("whole batch");
                        let count = header.records_count.get() as u64;
                        let last = (header.base_offset.get()
                            + i64::from(header.last_offset_delta.get()))
                            as u64;
                        if last < offset {
                            continue;
                        }
                        offset = last + 1;
                        totals.consumed.set(totals.consumed.get() + count);
                        totals
                            .consumed_bytes
                            .set(totals.consumed_bytes.get() + framed.len() as u64);
                        if let Some(first) = batch::records::first_record(framed)
                            && let Some(value) = first.record.value.filter(|v| v.len() >= 8)
                        {
                            let sent = u64::from_be_bytes(value[..8].try_into().expect("8 bytes"));
                            let _ = latency
                                .borrow_mut()
                                .record_n(now_ns().saturating_sub(sent).max(1), count);
                        }
                    }
                }
            }
        }
    });
    futures_util::future::join_all(loops).await;
}

fn percentiles_ms(histogram: &Histogram<u64>) -> [f64; 7] {
    let ms = |ns: u64| ns as f64 / 1e6;
    [
        histogram.mean() / 1e6,
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.value_at_quantile(0.9999)),
        ms(histogram.max()),
        histogram.len() as f64,
    ]
}

fn main() {
    let options = options();
    let data_dir = std::env::temp_dir().join(format!("ringmq-loadgen-{}", std::process::id()));
    let server = match &options.broker {
        Some(_) => None,
        None => {
            let config = ringmq::config::BrokerConfig {
                data_dir: data_dir.clone(),
                listen: "127.0.0.1:0".into(),
                http_listen: String::new(),
                kafka_listen: String::new(),
                shards: options.shards,
                ..Default::default()
            };
            Some(ringmq::server::start(config).expect("start the broker"))
        }
    };
    let address = options
        .broker
        .clone()
        .unwrap_or_else(|| server.as_ref().unwrap().address.to_string());
    let topic = format!("loadgen-{}", std::process::id());
    let result = runtime::block_on(async {
        let admin = Client::connect(&address).await.expect("connect");
        let configs: Vec<(&str, &str)> = options
            .topic_configs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        admin
            .create_topic(&topic, options.partitions, &configs)
            .await
            .expect("create the topic");
        let totals = Rc::new(Totals::default());
        let publish_latency = Rc::new(RefCell::new(histogram()));
        let end_to_end = Rc::new(RefCell::new(histogram()));
        let stop = Rc::new(Cell::new(false));
        let mut consumers = Vec::new();
        for index in 0..options.consumers {
            consumers.push(runtime::spawn(consumer(
                options.clone(),
                address.clone(),
                topic.clone(),
                index,
                stop.clone(),
                totals.clone(),
                end_to_end.clone(),
            )));
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(options.duration_s);
        let mut producers = Vec::new();
        for index in 0..options.producers {
            producers.push(runtime::spawn(producer(
                options.clone(),
                address.clone(),
                topic.clone(),
                index,
                deadline,
                totals.clone(),
                publish_latency.clone(),
            )));
        }
        for producer in producers {
            producer.await.unwrap();
        }
        let publish_seconds = started.elapsed().as_secs_f64();
        // Let consumers drain what was published, for a bounded time.
        let drain_deadline = Instant::now() + Duration::from_secs(10);
        while options.consumers > 0
            && totals.consumed.get() < totals.published.get()
            && Instant::now() < drain_deadline
        {
            runtime::sleep(Duration::from_millis(10)).await;
        }
        let consume_seconds = started.elapsed().as_secs_f64();
        stop.set(true);
        for consumer in consumers {
            let _ = consumer.await;
        }
        let publish = percentiles_ms(&publish_latency.borrow());
        let e2e = percentiles_ms(&end_to_end.borrow());
        let published = totals.published.get() as f64;
        let json = serde_json::json!({
            "workload": {
                "producers": options.producers, "consumers": options.consumers, "messageSize": options.message_bytes,
                "partitions": options.partitions, "targetRate": options.rate, "durationSeconds": options.duration_s,
                "acks": format!("{:?}", options.acks).to_lowercase(), "batchBytes": options.batch_bytes, "inflightBatches": options.inflight,
            },
            "publishRate": published / publish_seconds,
            "publishThroughputMBps": totals.published_bytes.get() as f64 / publish_seconds / 1e6,
            "consumeRate": totals.consumed.get() as f64 / consume_seconds,
            "consumeThroughputMBps": totals.consumed_bytes.get() as f64 / consume_seconds / 1e6,
            "messagesPublished": totals.published.get(),
            "messagesConsumed": totals.consumed.get(),
            "errors": totals.errors.get(),
            "aggregatedPublishLatencyAvg": publish[0], "aggregatedPublishLatency50pct": publish[1],
            "aggregatedPublishLatency99pct": publish[2], "aggregatedPublishLatency999pct": publish[3],
            "aggregatedPublishLatency9999pct": publish[4], "aggregatedPublishLatencyMax": publish[5],
            "aggregatedEndToEndLatencyAvg": e2e[0], "aggregatedEndToEndLatency50pct": e2e[1],
            "aggregatedEndToEndLatency99pct": e2e[2], "aggregatedEndToEndLatency999pct": e2e[3],
            "aggregatedEndToEndLatency9999pct": e2e[4], "aggregatedEndToEndLatencyMax": e2e[5],
        });
        println!(
            "{} producer(s) x {} B, {} partitions, acks {:?}, rate {}: publish {:.0} msg/s ({:.0} MB/s), consume {:.0} msg/s; publish latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} p99.99 {:.3} max {:.3}; end-to-end ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}; errors {}",
            options.producers,
            options.message_bytes,
            options.partitions,
            options.acks,
            if options.rate == 0 {
                "max".to_string()
            } else {
                options.rate.to_string()
            },
            json["publishRate"].as_f64().unwrap(),
            json["publishThroughputMBps"].as_f64().unwrap(),
            json["consumeRate"].as_f64().unwrap(),
            publish[1],
            publish[2],
            publish[3],
            publish[4],
            publish[5],
            e2e[1],
            e2e[2],
            e2e[3],
            e2e[5],
            totals.errors.get(),
        );
        json
    });
    if let Some(path) = &options.json {
        std::fs::write(path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    }
    if let Some(server) = server {
        server.shutdown();
        let _ = std::fs::remove_dir_all(&data_dir);
    }
}
