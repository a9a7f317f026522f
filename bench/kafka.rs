//! The broker under load through its Kafka listener, driven by librdkafka (the `rdkafka` crate):
//! the same workload shape as `ringmq-loadgen` (one producer, one consumer, 16 partitions, the
//! broker in this process), reported with the same field names, so the two protocols can be
//! compared side by side (bench/RESULTS.md).
//!
//! `cargo bench --bench kafka -- [--message-bytes B] [--duration-s S] [--acks 1|all]
//!   [--partitions P] [--json PATH]`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;

fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Records each message's publish latency (send to delivery report) and counts deliveries.
struct Deliveries {
    latency: Mutex<Histogram<u64>>,
    delivered: AtomicU64,
    failed: AtomicU64,
}

/// The producer's context: where librdkafka reports each delivery.
struct Context(Arc<Deliveries>);

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: Self::DeliveryOpaque) {
        match result {
            Ok(_) => {
                self.0.delivered.fetch_add(1, Ordering::Relaxed);
                let _ = self
                    .0
                    .latency
                    .lock()
                    .unwrap()
                    .record(now_ns().saturating_sub(*sent_ns).max(1));
            }
            Err(_) => {
                self.0.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn value(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> f64 {
    histogram.value_at_quantile(quantile) as f64 / 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let message_bytes: usize = value(&args, "--message-bytes").map_or(100, |v| v.parse().unwrap());
    let duration =
        Duration::from_secs(value(&args, "--duration-s").map_or(8, |v| v.parse().unwrap()));
    let acks = value(&args, "--acks").unwrap_or_else(|| "1".into());
    let partitions: i32 = value(&args, "--partitions").map_or(16, |v| v.parse().unwrap());

    let data_dir = std::env::temp_dir().join(format!("ringmq-kafka-bench-{}", std::process::id()));
    let config = ringmq::config::BrokerConfig {
        data_dir: data_dir.clone(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        ..Default::default()
    };
    let server = ringmq::server::start(config).expect("start the broker");
    let address = server.kafka_address.expect("a kafka listener").to_string();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .create()
        .unwrap();
    ringmq::runtime::block_on(admin.create_topics(
        &[NewTopic::new(
            "bench",
            partitions,
            TopicReplication::Fixed(1),
        )],
        &AdminOptions::new(),
    ))
    .unwrap();

    // The consumer reads every partition from the start, for end-to-end latency.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumed = Arc::new(AtomicU64::new(0));
    let end_to_end = Arc::new(Mutex::new(histogram()));
    let consumer_thread = {
        let (address, stop, consumed, end_to_end) = (
            address.clone(),
            stop.clone(),
            consumed.clone(),
            end_to_end.clone(),
        );
        std::thread::spawn(move || {
            let consumer: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &address)
                .set("group.id", "bench")
                .set("fetch.wait.max.ms", "100")
                .create()
                .unwrap();
            let mut assignment = TopicPartitionList::new();
            for partition in 0..partitions {
                assignment
                    .add_partition_offset("bench", partition, rdkafka::Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&assignment).unwrap();
            while !stop.load(Ordering::Relaxed) {
                if let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) {
                    let count = consumed.fetch_add(1, Ordering::Relaxed);
                    // Sample one message in 16 for latency (the histogram lock is not free).
                    if count % 16 == 0
                        && let Some(sent) = message.payload().and_then(|p| p.first_chunk::<8>())
                    {
                        let _ = end_to_end
                            .lock()
                            .unwrap()
                            .record(now_ns().saturating_sub(u64::from_be_bytes(*sent)).max(1));
                    }
                }
            }
        })
    };

    let deliveries = Arc::new(Deliveries {
        latency: Mutex::new(histogram()),
        delivered: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let producer: ThreadedProducer<Context> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("acks", &acks)
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "1000000")
        .create_with_context(Context(deliveries.clone()))
        .unwrap();
    let mut payload = vec![b'x'; message_bytes.max(8)];
    let started = Instant::now();
    let mut sent: u64 = 0;
    while started.elapsed() < duration {
        let now = now_ns();
        payload[..8].copy_from_slice(&now.to_be_bytes());
        let record = BaseRecord::<(), [u8], Box<u64>>::with_opaque_to("bench", Box::new(now))
            .partition((sent % partitions as u64) as i32)
            .payload(&payload[..]);
        match producer.send(record) {
            Ok(()) => sent += 1,
            Err(_) => std::thread::sleep(Duration::from_micros(200)),
        }
    }
    producer
        .flush(Timeout::After(Duration::from_secs(60)))
        .unwrap();
    let publish_seconds = started.elapsed().as_secs_f64();
    let delivered = deliveries.delivered.load(Ordering::Relaxed);
    let drain = Instant::now() + Duration::from_secs(10);
    while consumed.load(Ordering::Relaxed) < delivered && Instant::now() < drain {
        std::thread::sleep(Duration::from_millis(10));
    }
    let consume_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    consumer_thread.join().unwrap();

    let publish = deliveries.latency.lock().unwrap().clone();
    let e2e = end_to_end.lock().unwrap().clone();
    let result = serde_json::json!({
        "protocol": "kafka (librdkafka 2.12)",
        "workload": { "producers": 1, "consumers": 1, "messageSize": message_bytes, "partitions": partitions, "acks": acks, "durationSeconds": duration.as_secs() },
        "publishRate": delivered as f64 / publish_seconds,
        "publishThroughputMBps": (delivered as usize * message_bytes) as f64 / publish_seconds / 1e6,
        "consumeRate": consumed.load(Ordering::Relaxed) as f64 / consume_seconds,
        "messagesPublished": delivered,
        "errors": deliveries.failed.load(Ordering::Relaxed),
        "aggregatedPublishLatency50pct": ms(&publish, 0.5), "aggregatedPublishLatency99pct": ms(&publish, 0.99),
        "aggregatedPublishLatency999pct": ms(&publish, 0.999), "aggregatedPublishLatencyMax": publish.max() as f64 / 1e6,
        "aggregatedEndToEndLatency50pct": ms(&e2e, 0.5), "aggregatedEndToEndLatency99pct": ms(&e2e, 0.99),
        "aggregatedEndToEndLatency999pct": ms(&e2e, 0.999), "aggregatedEndToEndLatencyMax": e2e.max() as f64 / 1e6,
    });
    println!(
        "kafka protocol, librdkafka, {message_bytes} B, {partitions} partitions, acks {acks}: publish {:.0} msg/s ({:.0} MB/s), consume {:.0} msg/s; publish latency ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; end-to-end ms p50 {:.2} p99 {:.2} max {:.2}; errors {}",
        result["publishRate"].as_f64().unwrap(),
        result["publishThroughputMBps"].as_f64().unwrap(),
        result["consumeRate"].as_f64().unwrap(),
        ms(&publish, 0.5),
        ms(&publish, 0.99),
        ms(&publish, 0.999),
        publish.max() as f64 / 1e6,
        ms(&e2e, 0.5),
        ms(&e2e, 0.99),
        e2e.max() as f64 / 1e6,
        deliveries.failed.load(Ordering::Relaxed),
    );
    if let Some(path) = value(&args, "--json") {
        std::fs::write(path, serde_json::to_string_pretty(&result).unwrap()).unwrap();
    }
    drop(producer);
    drop(admin);
    server.shutdown();
    let _ = std::fs::remove_dir_all(&data_dir);
}
