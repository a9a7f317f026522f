//! The load generator: producers and consumers against ringmq or a peer broker, each through
//! its own standard client, at the maximum rate, a fixed rate, or as a backlog (produce with no
//! consumer, then drain). It reports publish and consume rates, publish and end-to-end latency
//! (HdrHistogram, corrected for coordinated omission), and the broker's CPU seconds and peak RSS,
//! as JSON under OpenMessaging Benchmark field names and as one line of text.
//!
//! `cargo run --release --bin ringmq-loadgen -- --help`; the peers' drivers need
//! `--features peers`. bench/compare.sh runs the whole comparison; bench/broker.sh the native
//! matrix.
//!
//! Without --broker (ringmq only) it starts a broker in this process, so generator and broker
//! share the machine's cores, as they would with any peer run the same way.

mod limits;
mod measure;
mod systems;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Parser;

use measure::{ProcessSampler, Shared, Workload};

#[derive(Parser, Debug)]
#[command(about = "Load generator for ringmq and its peers")]
struct Options {
    /// ringmq, kafka, nats, redis, rabbitmq-stream or rabbitmq-quorum.
    #[arg(long, default_value = "ringmq")]
    system: String,
    /// The broker's address; without it (ringmq only) a broker is started in this process.
    #[arg(long)]
    broker: Option<String>,
    /// The broker's process ids, for its CPU seconds and peak RSS (repeatable).
    #[arg(long = "broker-pid")]
    broker_pids: Vec<u32>,
    /// How the system was configured to persist, recorded in the JSON (e.g. "fsync per ack").
    #[arg(long, default_value = "")]
    durability: String,
    /// A name for this system setup in reports (e.g. "nats-always").
    #[arg(long)]
    label: Option<String>,
    #[arg(long, default_value_t = 1)]
    producers: usize,
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    #[arg(long, default_value_t = 100)]
    message_bytes: usize,
    #[arg(long, default_value_t = 16)]
    partitions: u32,
    /// Messages per second over all producers; 0 is the maximum rate.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
    duration_s: u64,
    /// Backlog mode: produce this many payload bytes with no consumer (or until --duration-s),
    /// then start the consumers and time the drain.
    #[arg(long)]
    backlog_bytes: Option<u64>,
    /// How long consumers may take to catch up after the producers stop.
    #[arg(long, default_value_t = 10)]
    drain_timeout_s: u64,
    /// The system's acknowledgement setting: ringmq none|written|fsynced, kafka 0|1|all.
    #[arg(long, default_value = "written")]
    acks: String,
    /// Payload bytes per send (one request, pipeline or batch).
    #[arg(long, default_value_t = 64 * 1024)]
    batch_bytes: usize,
    /// Batches a producer may have unacknowledged.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
    /// Shards of the in-process broker (0: one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// A ringmq topic setting, KEY=VALUE (repeatable).
    #[arg(long = "topic-config", value_parser = key_value)]
    topic_configs: Vec<(String, String)>,
    #[arg(long)]
    json: Option<String>,
    /// Measure the machine's limits on this directory's file system instead of a broker.
    #[arg(long)]
    limits_dir: Option<std::path::PathBuf>,
    /// Bytes per sequential-write test of --limits-dir.
    #[arg(long, default_value_t = 1 << 30)]
    limits_bytes: u64,
}

fn key_value(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((key.to_string(), value.to_string()))
}

fn main() {
    let options = Options::parse();
    let result = match &options.limits_dir {
        Some(dir) => limits::measure(dir, options.limits_bytes, Duration::from_secs(2))
            .map_err(|error| error.to_string()),
        None => run(&options).map_err(|error| error.to_string()),
    };
    let json = match result {
        Ok(json) => json,
        Err(error) => {
            eprintln!("ringmq-loadgen: {error}");
            std::process::exit(1);
        }
    };
    if options.limits_dir.is_some() {
        println!("{json}");
    }
    if let Some(path) = &options.json {
        std::fs::write(
            path,
            serde_json::to_string_pretty(&json).expect("valid JSON"),
        )
        .expect("write the JSON");
    }
}

fn run(options: &Options) -> systems::Result<serde_json::Value> {
    systems::ensure_known(&options.system)?;
    let data_dir = std::env::temp_dir().join(format!("ringmq-loadgen-{}", std::process::id()));
    let server = match (&options.broker, options.system.as_str()) {
        (Some(_), _) => None,
        (None, "ringmq") => {
            let config = ringmq::config::BrokerConfig {
                data_dir: data_dir.clone(),
                listen: "127.0.0.1:0".into(),
                http_listen: String::new(),
                kafka_listen: String::new(),
                shards: options.shards,
                ..Default::default()
            };
            Some(ringmq::server::start(config)?)
        }
        (None, other) => return Err(format!("--system {other} needs --broker").into()),
    };
    let address = match &server {
        Some(server) => server.address.to_string(),
        None => options.broker.clone().expect("checked above"),
    };
    let workload = Workload {
        producers: options.producers.max(1),
        consumers: options.consumers,
        message_bytes: options.message_bytes.max(8),
        partitions: options.partitions.max(1),
        rate: options.rate,
        duration: Duration::from_secs(options.duration_s),
        backlog_bytes: options.backlog_bytes,
        acks: options.acks.clone(),
        batch_bytes: options.batch_bytes,
        inflight_batches: options.inflight.max(1),
    };
    let system: Arc<dyn systems::System> =
        systems::by_name(&options.system, &address, &options.topic_configs)?.into();
    let topic = format!(
        "bench-{}-{}",
        std::process::id(),
        measure::now_ns() % 1_000_000_000
    );
    system.create(&topic, &workload)?;
    let measured = measure_run(&system, &topic, &workload, options);
    let deleted = system.delete(&topic, &workload);
    if let Some(server) = server {
        server.shutdown();
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    let json = measured?;
    deleted?;
    Ok(json)
}

/// Runs the producers and consumers and reports what they saw.
fn measure_run(
    system: &Arc<dyn systems::System>,
    topic: &str,
    workload: &Workload,
    options: &Options,
) -> systems::Result<serde_json::Value> {
    let shared = Arc::new(Shared::default());
    let publish_latency = measure::recorder();
    let end_to_end = measure::recorder();
    let task = |index: usize, latency: &measure::Recorder| systems::Task {
        index,
        workload: workload.clone(),
        topic: topic.to_string(),
        shared: shared.clone(),
        latency: latency.clone(),
    };
    let spawn_consumers = || {
        (0..workload.consumers)
            .map(|index| {
                let (system, task) = (system.clone(), task(index, &end_to_end));
                std::thread::spawn(move || system.consume(task))
            })
            .collect::<Vec<_>>()
    };
    let sampler = ProcessSampler::start(options.broker_pids.clone());
    let backlog = workload.backlog_bytes.is_some();
    let mut consumers = if backlog {
        Vec::new()
    } else {
        let consumers = spawn_consumers();
        wait_until_subscribed(&shared, workload.consumers);
        consumers
    };
    let started = Instant::now();
    let producers: Vec<_> = (0..workload.producers)
        .map(|index| {
            let (system, task) = (system.clone(), task(index, &publish_latency));
            std::thread::spawn(move || system.produce(task))
        })
        .collect();
    let mut failures = Vec::new();
    for producer in producers {
        if let Err(error) = producer.join().expect("a producer thread does not panic") {
            failures.push(format!("producer: {error}"));
        }
    }
    let publish_seconds = started.elapsed().as_secs_f64();
    if backlog {
        consumers = spawn_consumers();
        wait_until_subscribed(&shared, workload.consumers);
    }
    let consume_started = Instant::now();
    let published = shared.published.load(Ordering::Relaxed);
    let drain_deadline = Instant::now() + Duration::from_secs(options.drain_timeout_s);
    while workload.consumers > 0
        && shared.consumed.load(Ordering::Relaxed) < published
        && Instant::now() < drain_deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    let consume_seconds = if backlog {
        consume_started.elapsed().as_secs_f64()
    } else {
        started.elapsed().as_secs_f64()
    };
    shared.stop.store(true, Ordering::Relaxed);
    for consumer in consumers {
        if let Err(error) = consumer.join().expect("a consumer thread does not panic") {
            failures.push(format!("consumer: {error}"));
        }
    }
    let usage = sampler.finish();
    if !failures.is_empty() {
        return Err(failures.join("; ").into());
    }
    Ok(report(
        options,
        workload,
        &shared,
        &publish_latency,
        &end_to_end,
        publish_seconds,
        consume_seconds,
        usage,
    ))
}

/// Waits (boundedly: a consumer that fails to subscribe reports its error when joined) until
/// every consumer is subscribed.
fn wait_until_subscribed(shared: &Shared, consumers: usize) {
    let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
    while shared.consumers_ready.load(Ordering::Relaxed) < consumers as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
    }
}

const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);

#[allow(clippy::too_many_arguments)]
fn report(
    options: &Options,
    workload: &Workload,
    shared: &Shared,
    publish_latency: &measure::Recorder,
    end_to_end: &measure::Recorder,
    publish_seconds: f64,
    consume_seconds: f64,
    usage: measure::ProcessUsage,
) -> serde_json::Value {
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let publish_histogram = publish_latency.lock().expect("not poisoned").clone();
    let end_to_end_histogram = end_to_end.lock().expect("not poisoned").clone();
    let publish = measure::percentiles_ms(&publish_histogram);
    let e2e = measure::percentiles_ms(&end_to_end_histogram);
    let moved_bytes = load(&shared.published_bytes) + load(&shared.consumed_bytes);
    let label = options
        .label
        .clone()
        .unwrap_or_else(|| options.system.clone());
    let json = serde_json::json!({
        "system": options.system,
        "label": label,
        "durability": options.durability,
        "workload": {
            "producers": workload.producers, "consumers": workload.consumers,
            "messageSize": workload.message_bytes, "partitions": workload.partitions,
            "targetRate": workload.rate, "durationSeconds": workload.duration.as_secs(),
            "backlogBytes": workload.backlog_bytes, "acks": workload.acks,
            "batchBytes": workload.batch_bytes, "inflightBatches": workload.inflight_batches,
        },
        "publishRate": load(&shared.published) as f64 / publish_seconds,
        "publishThroughputMBps": load(&shared.published_bytes) as f64 / publish_seconds / 1e6,
        "consumeRate": load(&shared.consumed) as f64 / consume_seconds,
        "consumeThroughputMBps": load(&shared.consumed_bytes) as f64 / consume_seconds / 1e6,
        "publishSeconds": publish_seconds,
        "consumeSeconds": consume_seconds,
        "messagesPublished": load(&shared.published),
        "messagesConsumed": load(&shared.consumed),
        "errors": load(&shared.errors),
        "aggregatedPublishLatencyAvg": publish[0], "aggregatedPublishLatency50pct": publish[1],
        "aggregatedPublishLatency99pct": publish[2], "aggregatedPublishLatency999pct": publish[3],
        "aggregatedPublishLatency9999pct": publish[4], "aggregatedPublishLatencyMax": publish[5],
        "aggregatedEndToEndLatencyAvg": e2e[0], "aggregatedEndToEndLatency50pct": e2e[1],
        "aggregatedEndToEndLatency99pct": e2e[2], "aggregatedEndToEndLatency999pct": e2e[3],
        "aggregatedEndToEndLatency9999pct": e2e[4], "aggregatedEndToEndLatencyMax": e2e[5],
        "publishLatencyCurve": measure::curve_ms(&publish_histogram),
        "endToEndLatencyCurve": measure::curve_ms(&end_to_end_histogram),
        "brokerCpuSeconds": usage.cpu_seconds,
        "brokerCpuSecondsPerGB": if moved_bytes > 0 { usage.cpu_seconds / (moved_bytes as f64 / 1e9) } else { 0.0 },
        "brokerRssMaxMB": usage.rss_max_bytes as f64 / 1e6,
    });
    println!(
        "{label} {}p/{}c x {} B, {}: publish {:.0} msg/s ({:.1} MB/s), consume {:.0} msg/s; publish ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; end-to-end ms p50 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}; broker {:.2} CPU s, {:.0} MB RSS; errors {}",
        workload.producers,
        workload.consumers,
        workload.message_bytes,
        match (workload.backlog_bytes, workload.rate) {
            (Some(bytes), _) => format!("backlog {} MB", bytes / 1_000_000),
            (None, 0) => "max rate".to_string(),
            (None, rate) => format!("{rate} msg/s"),
        },
        json["publishRate"].as_f64().unwrap_or(0.0),
        json["publishThroughputMBps"].as_f64().unwrap_or(0.0),
        json["consumeRate"].as_f64().unwrap_or(0.0),
        publish[1],
        publish[2],
        publish[3],
        publish[5],
        e2e[1],
        e2e[2],
        e2e[3],
        e2e[5],
        usage.cpu_seconds,
        usage.rss_max_bytes as f64 / 1e6,
        load(&shared.errors),
    );
    json
}
