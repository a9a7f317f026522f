//! Queue receive + ack (issue 13's benchmark): ringmq's queue groups beside a RabbitMQ quorum
//! queue, measured in the same process run, runs alternating between the systems, medians
//! printed. Three phases for ringmq, one for RabbitMQ:
//!
//! - receive + ack: 100 B messages, 4 producers and 4 consumers running together for
//!   `--seconds`, acks fsynced on both sides. ringmq: `Producer` at `AckLevel::Fsynced` into a
//!   4-partition topic, consumers `QueueConsumer::receive` (up to 1000) then `ack_all` (ranges;
//!   the queue journal's append waits for its fsync). RabbitMQ: a quorum queue, persistent
//!   messages, publisher confirms, consumers with a prefetch and one manual ack per message.
//! - delay lateness: 10,000 messages/s, each with `x-delay-ms`, lateness = received minus due
//!   (timestamp + delay), p50/p99 (ms; the broker checks due messages every
//!   `lock_check_interval_ms`, 100 by default).
//! - FIFO groups: receive + ack again with the group at `fifo=header` and 1,000 group keys.
//!
//! `cargo bench --bench queues [-- --seconds S --runs R --produce-rate MSG_PER_S --serial-acks]`
//! `cargo bench --bench queues -- --sqs-shape --seconds 8`: the native protocol in
//! bench/sqs-sdk's shape (see `queues/sqs_shape.rs`), for the SQS door's HTTP overhead.
//! `cargo bench --features peers --bench queues -- --amqp amqp://guest:guest@127.0.0.1:5672/%2f`
//!
//! The rate counts messages acknowledged by consumers while the producers run (the producers'
//! rate is printed beside it: consumers cannot outrun them). Not a test: nothing here asserts
//! speed.

#[cfg(feature = "peers")]
#[path = "queues/rabbit.rs"]
mod rabbit;
#[path = "queues/sqs_shape.rs"]
mod sqs_shape;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringmq::batch::{Header, Record};
use ringmq::client::Client;
use ringmq::client::producer::{Producer, ProducerConfig};
use ringmq::client::queue::{DELAY_HEADER, GROUP_KEY_HEADER, QueueConsumer, QueueConsumerConfig};
use ringmq::storage::AckLevel;

/// Producers and consumers per system.
const PRODUCERS: usize = 4;
const CONSUMERS: usize = 4;
/// Each message's value.
const MESSAGE_BYTES: usize = 100;
/// Partitions of ringmq's queue topic.
const PARTITIONS: u32 = 4;
/// Messages per receive (and RabbitMQ's prefetch per consumer).
const RECEIVE_MAX: u32 = 1000;
/// Sends awaiting their acknowledgement per producer, at most (backpressure).
const PRODUCER_WINDOW: usize = 20_000;
/// The delay phase's rate and delay.
const DELAYED_PER_SECOND: u64 = 10_000;
const DELAY_MS: u64 = 200;
/// FIFO group keys in the FIFO phase.
const FIFO_KEYS: u64 = 1_000;

/// What one receive + ack measurement found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rates {
    /// Messages acknowledged by the producers' broker per second.
    pub produced: f64,
    /// Messages received and acknowledged by consumers per second.
    pub acked: f64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

fn header(key: &str, value: String) -> Header {
    Header {
        key: key.into(),
        value: Some(Bytes::from(value)),
    }
}

/// ringmq: an in-process broker of 2 shards.
struct Ringmq {
    address: String,
    _broker: ringmq::server::ServerHandle,
    _dir: tempfile::TempDir,
}

/// The shape of one ringmq phase.
#[derive(Clone, Copy)]
enum Phase {
    Plain,
    Fifo,
    Delayed,
}

impl Ringmq {
    fn start() -> Ringmq {
        let dir = tempfile::tempdir().unwrap();
        let broker = ringmq::server::start(ringmq::config::BrokerConfig {
            data_dir: dir.path().into(),
            listen: "127.0.0.1:0".into(),
            kafka_listen: String::new(),
            http_listen: String::new(),
            shards: 2,
            ..Default::default()
        })
        .unwrap();
        Ringmq {
            address: broker.address.to_string(),
            _broker: broker,
            _dir: dir,
        }
    }

    /// A fresh topic and its queue group for one measurement.
    fn prepare(&self, topic: &str, phase: Phase) {
        ringmq::runtime::block_on(async {
            let client = Client::connect(&self.address).await.unwrap();
            client.create_topic(topic, PARTITIONS, &[]).await.unwrap();
            let fifo = match phase {
                Phase::Fifo => "header",
                _ => "off",
            };
            let configs = [
                ("fifo", fifo),
                ("max_in_flight", "8000"),
                ("max_unacked", "2000"),
                ("window_messages_max", "100000"),
            ];
            client
                .create_queue_group(topic, "g", &configs)
                .await
                .unwrap();
        });
    }

    /// One producer: sends as fast as its window allows, or at `rate` per second.
    fn produce(
        address: &str,
        topic: String,
        phase: Phase,
        stop: Arc<AtomicBool>,
        rate: Option<u64>,
    ) -> u64 {
        ringmq::runtime::block_on(async move {
            let client = Client::connect(address).await.unwrap();
            let config = ProducerConfig {
                acks: AckLevel::Fsynced,
                ..Default::default()
            };
            let producer = Producer::new(client, config);
            let value = [7u8; MESSAGE_BYTES];
            let (mut pending, mut acked, mut sent) = (VecDeque::new(), 0u64, 0u64);
            let started = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(rate) = rate {
                    let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        ringmq::runtime::sleep(wait).await;
                    }
                }
                let mut record = Record::new(now_ms(), None, Some(&value[..]));
                match phase {
                    Phase::Plain => {}
                    Phase::Fifo => record
                        .headers
                        .push(header(GROUP_KEY_HEADER, format!("k{}", sent % FIFO_KEYS))),
                    Phase::Delayed => record
                        .headers
                        .push(header(DELAY_HEADER, DELAY_MS.to_string())),
                }
                match producer.send(&topic, record).await {
                    Ok(delivery) => pending.push_back(delivery),
                    Err(error) => panic!("send failed: {error}"),
                }
                sent += 1;
                if pending.len() >= PRODUCER_WINDOW
                    && let Some(delivery) = pending.pop_front()
                    && matches!(delivery.await, Ok(Ok(_)))
                {
                    acked += 1;
                }
            }
            producer.flush().await;
            for delivery in pending {
                if matches!(delivery.await, Ok(Ok(_))) {
                    acked += 1;
                }
            }
            acked
        })
    }

    /// One consumer: receives and acknowledges until `stop`; records lateness of delayed
    /// messages in `lateness`.
    fn consume(
        address: &str,
        topic: String,
        stop: Arc<AtomicBool>,
        acked: Arc<AtomicU64>,
        lateness: Option<Arc<std::sync::Mutex<Histogram<u64>>>>,
    ) {
        ringmq::runtime::block_on(async move {
            let client = Client::connect(address).await.unwrap();
            let config = QueueConsumerConfig {
                max_messages: RECEIVE_MAX,
                wait_ms: 50,
                visibility_timeout_ms: 0,
                create: false,
            };
            let consumer = QueueConsumer::new(client, &topic, "g", config);
            // Acks are pipelined with the next receive, as RabbitMQ's consumer acks without
            // waiting: one batch is being acknowledged (its journal fsync) while the next is
            // received. `--serial-acks` waits for each ack before receiving again.
            let serial = std::env::args().any(|arg| arg == "--serial-acks");
            let mut held: Vec<ringmq::protocol::queues::QueueMessage> = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (settled, received) = if held.is_empty() {
                    (Ok(()), consumer.receive().await)
                } else if serial {
                    let settled = consumer.ack_all(&held).await;
                    (settled, consumer.receive().await)
                } else {
                    futures_util::future::join(consumer.ack_all(&held), consumer.receive()).await
                };
                if settled.is_ok() {
                    acked.fetch_add(held.len() as u64, Ordering::Relaxed);
                }
                held = match received {
                    Ok(messages) => messages,
                    Err(error) => panic!("receive failed: {error}"),
                };
                if let Some(lateness) = &lateness {
                    let now = now_ms();
                    let mut histogram = lateness.lock().unwrap();
                    for message in &held {
                        let due = message.timestamp_ms.saturating_add(DELAY_MS as i64);
                        let late = now.saturating_sub(due).max(0) as u64;
                        histogram.saturating_record(late);
                    }
                }
            }
            if consumer.ack_all(&held).await.is_ok() {
                acked.fetch_add(held.len() as u64, Ordering::Relaxed);
            }
        })
    }

    /// Producers and consumers together for `seconds`; the consumers' acks counted.
    fn run(
        &self,
        topic: &str,
        phase: Phase,
        seconds: f64,
        lateness: Option<Arc<std::sync::Mutex<Histogram<u64>>>>,
    ) -> Rates {
        self.prepare(topic, phase);
        let (stop_producers, stop_consumers) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let acked = Arc::new(AtomicU64::new(0));
        let (producers, rate) = match phase {
            Phase::Delayed => (1, Some(DELAYED_PER_SECOND)),
            // `--produce-rate R`: the producers together offer R msg/s (each R / PRODUCERS),
            // so that the consumers' rate is not also a measure of how much CPU unbounded
            // producers take from them on the shared cores.
            _ => (
                PRODUCERS,
                produce_rate().map(|rate| rate / PRODUCERS as u64),
            ),
        };
        let address = self.address.as_str();
        std::thread::scope(|scope| {
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|_| {
                    let (topic, stop, acked) =
                        (topic.to_string(), stop_consumers.clone(), acked.clone());
                    let lateness = lateness.clone();
                    scope.spawn(move || Ringmq::consume(address, topic, stop, acked, lateness))
                })
                .collect();
            let started = Instant::now();
            let sending: Vec<_> = (0..producers)
                .map(|_| {
                    let (topic, stop) = (topic.to_string(), stop_producers.clone());
                    scope.spawn(move || Ringmq::produce(address, topic, phase, stop, rate))
                })
                .collect();
            std::thread::sleep(Duration::from_secs_f64(seconds));
            stop_producers.store(true, Ordering::Relaxed);
            let done = acked.load(Ordering::Relaxed);
            let elapsed = started.elapsed().as_secs_f64();
            let produced: u64 = sending.into_iter().map(|p| p.join().unwrap()).sum();
            // The delayed phase lets the last messages come due before it stops measuring them.
            if matches!(phase, Phase::Delayed) {
                std::thread::sleep(Duration::from_millis(DELAY_MS + 300));
            }
            stop_consumers.store(true, Ordering::Relaxed);
            for consumer in consumers {
                consumer.join().unwrap();
            }
            Rates {
                produced: produced as f64 / started.elapsed().as_secs_f64().max(elapsed),
                acked: done as f64 / elapsed,
            }
        })
    }
}

/// The producers' total rate from `--produce-rate` (None: as fast as their windows allow).
fn produce_rate() -> Option<u64> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|arg| arg == "--produce-rate")?;
    args.get(at + 1)?.parse().ok()
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn report(name: &str, runs: &[Rates]) {
    let acked: Vec<f64> = runs.iter().map(|r| r.acked).collect();
    let produced: Vec<f64> = runs.iter().map(|r| r.produced).collect();
    println!(
        "{name}\treceive+ack {:.0} msg/s (runs: {acked:.0?})\tproduced {:.0} msg/s (runs: {produced:.0?})",
        median(&acked),
        median(&produced)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1).cloned())
    };
    let seconds: f64 = value("--seconds")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    let runs: usize = value("--runs").and_then(|s| s.parse().ok()).unwrap_or(3);
    let amqp = value("--amqp");
    #[cfg(not(feature = "peers"))]
    if amqp.is_some() {
        eprintln!("--amqp needs `--features peers`; measuring ringmq only");
    }
    let ringmq = Ringmq::start();
    if args.iter().any(|arg| arg == "--sqs-shape") {
        let (mut sends, mut drains) = (Vec::new(), Vec::new());
        for run in 0..runs {
            let (send, drain) = sqs_shape::run(&ringmq.address, &format!("sqsshape{run}"), seconds);
            eprintln!(
                "run {}: send {send:.0} msg/s, receive+ack {drain:.0} msg/s",
                run + 1
            );
            sends.push(send);
            drains.push(drain);
        }
        println!(
            "ringmq native, SQS shape ({} tasks, batches of 10, 1 partition)\tsend {:.0} msg/s (runs: {sends:.0?})\treceive+ack {:.0} msg/s (runs: {drains:.0?})",
            sqs_shape::CONCURRENCY,
            median(&sends),
            median(&drains)
        );
        return;
    }
    let (mut ours, mut fifo, mut theirs) = (Vec::new(), Vec::new(), Vec::<Rates>::new());
    let mut late = (Vec::new(), Vec::new());
    for run in 0..runs {
        eprintln!("run {} of {runs}", run + 1);
        ours.push(ringmq.run(&format!("plain{run}"), Phase::Plain, seconds, None));
        #[cfg(feature = "peers")]
        if let Some(uri) = &amqp {
            theirs.push(rabbit::receive_and_ack(uri, seconds));
        }
        fifo.push(ringmq.run(&format!("fifo{run}"), Phase::Fifo, seconds, None));
        let histogram = Histogram::new_with_bounds(1, 3_600_000, 3).expect("valid bounds");
        let histogram = Arc::new(std::sync::Mutex::new(histogram));
        let rates = ringmq.run(
            &format!("delayed{run}"),
            Phase::Delayed,
            seconds,
            Some(histogram.clone()),
        );
        let histogram = histogram.lock().unwrap();
        eprintln!(
            "delayed run {}: {} messages, {:.0} msg/s received",
            run + 1,
            histogram.len(),
            rates.acked
        );
        late.0.push(histogram.value_at_quantile(0.50) as f64);
        late.1.push(histogram.value_at_quantile(0.99) as f64);
    }
    report("ringmq", &ours);
    report("ringmq fifo=header, 1000 keys", &fifo);
    println!(
        "ringmq delay lateness at {DELAYED_PER_SECOND} msg/s\tp50 {:.0} ms, p99 {:.0} ms (runs: p50 {:?}, p99 {:?})",
        median(&late.0),
        median(&late.1),
        late.0,
        late.1
    );
    if !theirs.is_empty() {
        report("rabbitmq quorum", &theirs);
        let ratios: Vec<f64> = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| a.acked / b.acked.max(1.0))
            .collect();
        println!(
            "ratio ringmq/rabbitmq\t{:.1}x (runs: {ratios:.1?}; of medians {:.1}x)",
            median(&ratios),
            median(&ours.iter().map(|r| r.acked).collect::<Vec<_>>())
                / median(&theirs.iter().map(|r| r.acked).collect::<Vec<_>>()).max(1.0)
        );
    }
    let _ = (&mut theirs, &amqp);
}
