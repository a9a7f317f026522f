//! Request/reply round trips: ringmq's direct reply-to (`Client::request`, replies never
//! stored) beside RabbitMQ's direct reply-to (`amq.rabbitmq.reply-to`, through `lapin`),
//! measured in the same run. For each system: the most round trips per second with N requests
//! in flight (closed loop, N in `--concurrency`), then p50/p99/p999 latency with requests
//! offered at 50% of that maximum (open loop: latency counts from each request's intended send
//! time, so a stall counts for every request behind it).
//!
//! `cargo bench --bench request_reply [-- --seconds S --runs R --concurrency 1,16,64]`
//! `cargo bench --features peers --bench request_reply -- --amqp amqp://guest:guest@127.0.0.1:5672/%2f`
//!
//! ringmq: an in-process broker with 2 shards; requests (100 B) go to a topic of 2 partitions
//! (stored at ack level `written`), answered by one `Responder` on a thread of its own;
//! requesters are 4 connections on another thread. RabbitMQ: a non-durable queue, transient
//! messages, one responder consuming without acks on a thread of its own, 4 requester
//! connections on another. Runs alternate between the systems; medians are printed. Not a
//! test: nothing here asserts speed.

#[cfg(feature = "peers")]
#[path = "request_reply/rabbit.rs"]
mod rabbit;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringmq::batch::Record;
use ringmq::client::Client;
use ringmq::client::replies::reply_value;

/// Requester connections per system.
const CONNECTIONS: usize = 4;
/// The request's size.
const MESSAGE_BYTES: usize = 100;
/// How long one request may wait (a timeout counts as an error).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Requests in flight in the open loop, at most (more: the system is past its capacity).
const OPEN_LOOP_INFLIGHT_MAX: usize = 20_000;

/// What one measurement found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub errors: u64,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn latency_of(histogram: &Histogram<u64>, errors: u64) -> Latency {
    Latency {
        p50_us: histogram.value_at_quantile(0.50) as f64,
        p99_us: histogram.value_at_quantile(0.99) as f64,
        p999_us: histogram.value_at_quantile(0.999) as f64,
        errors,
    }
}

/// When the `index`th request of an open loop at `rate` per second is due.
pub fn due(started: Instant, index: u64, rate: f64) -> Instant {
    started + Duration::from_secs_f64(index as f64 / rate)
}

fn message() -> Record {
    Record::new(0, None, Some(&[7u8; MESSAGE_BYTES][..]))
}

/// ringmq: the broker, its responder thread, and the requesters' clients.
struct Ringmq {
    address: String,
    _broker: ringmq::server::ServerHandle,
    _dir: tempfile::TempDir,
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
        let address = broker.address.to_string();
        ringmq::runtime::block_on(async {
            let client = Client::connect(&address).await.unwrap();
            client.create_topic("rpc", 2, &[]).await.unwrap();
        });
        let (ready, started) = std::sync::mpsc::channel();
        let at = address.clone();
        std::thread::spawn(move || {
            ringmq::runtime::block_on(async move {
                let client = Client::connect(&at).await.unwrap();
                let mut responder = client.responder("rpc").await.unwrap();
                ready.send(()).unwrap();
                let _ = responder
                    .serve(|request| Some(reply_value(request.value.clone().unwrap_or_default())))
                    .await;
            });
        });
        started.recv().unwrap();
        Ringmq {
            address,
            _broker: broker,
            _dir: dir,
        }
    }

    async fn clients(&self) -> Vec<Client> {
        let mut clients = Vec::new();
        for _ in 0..CONNECTIONS {
            let client = Client::connect(&self.address).await.unwrap();
            // The requester is made (and its reply-to declared) before the clock starts.
            client.request("rpc", message(), TIMEOUT).await.unwrap();
            clients.push(client);
        }
        clients
    }

    /// Round trips per second with `concurrency` requests in flight for `seconds`.
    fn closed_loop(&self, concurrency: usize, seconds: f64) -> f64 {
        ringmq::runtime::block_on(async {
            let clients = self.clients().await;
            let budget = Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let loops = (0..concurrency).map(|n| {
                let client = clients[n % clients.len()].clone();
                async move {
                    let mut done = 0u64;
                    while started.elapsed() < budget {
                        if client.request("rpc", message(), TIMEOUT).await.is_ok() {
                            done += 1;
                        }
                    }
                    done
                }
            });
            let done: u64 = futures_util::future::join_all(loops).await.iter().sum();
            done as f64 / started.elapsed().as_secs_f64()
        })
    }

    /// Latency with requests offered at `rate` per second for `seconds`.
    fn open_loop(&self, rate: f64, seconds: f64) -> Latency {
        ringmq::runtime::block_on(async {
            let clients = self.clients().await;
            let histogram = Rc::new(RefCell::new(new_histogram()));
            let (errors, inflight) = (Rc::new(RefCell::new(0u64)), Rc::new(RefCell::new(0usize)));
            let total = (rate * seconds) as u64;
            let started = Instant::now();
            let mut sent = 0u64;
            let mut tasks = Vec::new();
            while sent < total {
                let now = Instant::now();
                while sent < total && due(started, sent, rate) <= now {
                    let intended = due(started, sent, rate);
                    let client = clients[sent as usize % clients.len()].clone();
                    let (histogram, errors, inflight) =
                        (histogram.clone(), errors.clone(), inflight.clone());
                    if *inflight.borrow() >= OPEN_LOOP_INFLIGHT_MAX {
                        *errors.borrow_mut() += 1;
                        sent += 1;
                        continue;
                    }
                    *inflight.borrow_mut() += 1;
                    tasks.push(ringmq::runtime::spawn(async move {
                        match client.request("rpc", message(), TIMEOUT).await {
                            Ok(_) => {
                                let micros = intended.elapsed().as_micros() as u64;
                                histogram.borrow_mut().saturating_record(micros.max(1));
                            }
                            Err(_) => *errors.borrow_mut() += 1,
                        }
                        *inflight.borrow_mut() -= 1;
                    }));
                    sent += 1;
                }
                ringmq::runtime::sleep(Duration::from_micros(200)).await;
            }
            for task in tasks {
                let _ = task.await;
            }
            let errors = *errors.borrow();
            latency_of(&histogram.borrow(), errors)
        })
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// One system's figures over the runs.
#[derive(Default)]
struct Figures {
    /// Per concurrency, the rate of each run.
    rates: Vec<Vec<f64>>,
    latencies: Vec<Latency>,
    offered: Vec<f64>,
}

impl Figures {
    fn print(&self, system: &str, concurrency: &[usize]) {
        for (n, rates) in concurrency.iter().zip(&self.rates) {
            let mut rates = rates.clone();
            println!(
                "{system}\tclosed loop, {n} in flight\t{:.0} round trips/s (runs: {rates:.0?})",
                median(&mut rates)
            );
        }
        let mut offered = self.offered.clone();
        let pick = |f: fn(&Latency) -> f64| {
            let mut values: Vec<f64> = self.latencies.iter().map(f).collect();
            median(&mut values)
        };
        println!(
            "{system}\topen loop at 50% of max ({:.0}/s)\tp50 {:.0} us, p99 {:.0} us, p999 {:.0} us, errors {:.0}",
            median(&mut offered),
            pick(|l| l.p50_us),
            pick(|l| l.p99_us),
            pick(|l| l.p999_us),
            pick(|l| l.errors as f64),
        );
    }
}

/// One run of one system: the closed loops, then the open loop at half the best of them.
fn measure(
    figures: &mut Figures,
    concurrency: &[usize],
    seconds: f64,
    closed_loop: impl Fn(usize, f64) -> f64,
    open_loop: impl Fn(f64, f64) -> Latency,
) {
    figures.rates.resize(concurrency.len(), Vec::new());
    let mut best: f64 = 0.0;
    for (slot, &n) in concurrency.iter().enumerate() {
        let rate = closed_loop(n, seconds);
        best = best.max(rate);
        figures.rates[slot].push(rate);
    }
    let offered = best / 2.0;
    figures.offered.push(offered);
    figures.latencies.push(open_loop(offered, seconds));
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
    let concurrency: Vec<usize> = value("--concurrency")
        .unwrap_or_else(|| "1,16,64".into())
        .split(',')
        .filter_map(|n| n.parse().ok())
        .collect();
    let amqp = value("--amqp");
    #[cfg(not(feature = "peers"))]
    if amqp.is_some() {
        eprintln!("--amqp needs `--features peers`; measuring ringmq only");
    }
    let ringmq = Ringmq::start();
    let (mut ours, mut theirs) = (Figures::default(), Figures::default());
    for run in 0..runs {
        eprintln!("run {} of {runs}", run + 1);
        measure(
            &mut ours,
            &concurrency,
            seconds,
            |n, s| ringmq.closed_loop(n, s),
            |rate, s| ringmq.open_loop(rate, s),
        );
        #[cfg(feature = "peers")]
        if let Some(uri) = &amqp {
            let peer = rabbit::Rabbit::start(uri);
            measure(
                &mut theirs,
                &concurrency,
                seconds,
                |n, s| peer.closed_loop(n, s),
                |rate, s| peer.open_loop(rate, s),
            );
        }
    }
    ours.print("ringmq", &concurrency);
    if !theirs.latencies.is_empty() {
        theirs.print("rabbitmq", &concurrency);
    }
    let _ = (&mut theirs, &amqp);
}
