//! What every system's driver shares, so all of them are measured the same way: the run's
//! counters, the pacer that decides when each batch is due, the timestamp every message carries,
//! latency histograms, and the sampler of the broker process's CPU and memory.
//!
//! Latency is measured from a batch's *intended* send time: at a fixed rate the pacer's schedule,
//! at the maximum rate the moment the batch is taken. A broker that stalls therefore cannot hide
//! the stall by holding up the generator (coordinated omission is corrected).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The run's shape, as given on the command line.
#[derive(Clone, Debug)]
pub struct Workload {
    pub producers: usize,
    pub consumers: usize,
    pub message_bytes: usize,
    pub partitions: u32,
    /// Messages per second over all producers; 0 is "as fast as the system takes them".
    pub rate: u64,
    pub duration: Duration,
    /// Backlog mode: stop producing after this many payload bytes (or at `duration`).
    pub backlog_bytes: Option<u64>,
    /// The system-specific acknowledgement setting (`written`, `all`, ...).
    pub acks: String,
    /// Bytes of payload a producer hands over in one send (one request, one pipeline, ...).
    pub batch_bytes: usize,
    /// Batches a producer may have unacknowledged at once.
    pub inflight_batches: usize,
}

/// At a fixed rate a producer sends this many batches per second (fewer if they would exceed
/// `batch_bytes`), so the schedule is fine-grained and a batch is not a burst.
const PACED_BATCHES_PER_S: u64 = 1000;

impl Workload {
    /// The most messages one send may carry: `batch_bytes` of payload.
    fn batch_messages_max(&self) -> usize {
        (self.batch_bytes / self.message_bytes.max(1)).max(1)
    }

    pub fn messages_per_batch(&self) -> usize {
        let most = self.batch_messages_max();
        if self.rate == 0 {
            return most;
        }
        let per_producer = self.rate / self.producers.max(1) as u64;
        most.min((per_producer / PACED_BATCHES_PER_S).max(1) as usize)
    }

    /// Messages a producer may have unacknowledged at once: `inflight_batches` full batches,
    /// whatever size the pacer's batches are.
    pub fn inflight_messages(&self) -> usize {
        self.batch_messages_max() * self.inflight_batches
    }

    /// Batches (of `messages_per_batch`) a producer may have unacknowledged at once.
    pub fn inflight_batch_limit(&self) -> usize {
        self.inflight_messages().div_ceil(self.messages_per_batch())
    }

    /// The partition producer `index` sends its `sequence`-th batch to: producers interleave
    /// over all partitions.
    fn partition_of(&self, index: usize, sequence: u64) -> u32 {
        ((sequence as usize * self.producers + index) % self.partitions as usize) as u32
    }

    /// The partitions producer `index` writes to (drivers that open one producer per
    /// partition make them before the clock starts).
    #[cfg_attr(not(feature = "peers"), allow(dead_code))]
    pub fn partitions_of_producer(&self, index: usize) -> Vec<u32> {
        let mut partitions: Vec<u32> = (0..self.partitions as u64)
            .map(|sequence| self.partition_of(index, sequence))
            .collect();
        partitions.sort_unstable();
        partitions.dedup();
        partitions
    }

    /// The partitions consumer `index` reads: every `consumers`-th one.
    pub fn partitions_of_consumer(&self, index: usize) -> Vec<u32> {
        (0..self.partitions)
            .filter(|p| *p as usize % self.consumers == index)
            .collect()
    }
}

/// Counters of one run, shared by every producer and consumer thread.
#[derive(Default)]
pub struct Shared {
    pub sent_bytes: AtomicU64,
    pub published: AtomicU64,
    pub published_bytes: AtomicU64,
    pub consumed: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub errors: AtomicU64,
    /// Consumers that are connected and subscribed; producers start when all are.
    pub consumers_ready: AtomicU64,
    /// Set when consumers should stop.
    pub stop: AtomicBool,
}

impl Shared {
    pub fn published(&self, messages: u64, message_bytes: usize) {
        self.published.fetch_add(messages, Ordering::Relaxed);
        self.published_bytes
            .fetch_add(messages * message_bytes as u64, Ordering::Relaxed);
    }

    pub fn consumed(&self, messages: u64, message_bytes: usize) {
        self.consumed.fetch_add(messages, Ordering::Relaxed);
        self.consumed_bytes
            .fetch_add(messages * message_bytes as u64, Ordering::Relaxed);
    }

    pub fn error(&self, what: &str, error: impl std::fmt::Display) {
        // Print the first few; a broken run shows its cause without flooding the terminal.
        if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
            eprintln!("{what}: {error}");
        }
    }

    /// A consumer calls this once it is subscribed, so connection setup is not timed.
    pub fn consumer_ready(&self) {
        self.consumers_ready.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// One histogram of latencies in nanoseconds, shared by the tasks and callbacks of one thread.
pub type Recorder = Arc<Mutex<Histogram<u64>>>;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000_000, 3).expect("valid bounds")
}

pub fn recorder() -> Recorder {
    Arc::new(Mutex::new(histogram()))
}

pub fn record(recorder: &Recorder, stamp_ns: u64, messages: u64) {
    let latency_ns = now_ns().saturating_sub(stamp_ns).max(1);
    let _ = recorder
        .lock()
        .expect("no panics while recording")
        .record_n(latency_ns, messages);
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Nanoseconds since a process-wide epoch: producers and consumers share the clock.
pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

pub fn ns_at(instant: Instant) -> u64 {
    instant.saturating_duration_since(epoch()).as_nanos() as u64
}

/// A payload of `message_bytes` (at least 8) whose first 8 bytes carry a timestamp.
pub fn payload(message_bytes: usize) -> Vec<u8> {
    vec![b'x'; message_bytes.max(8)]
}

pub fn stamp(payload: &mut [u8], stamp_ns: u64) {
    payload[..8].copy_from_slice(&stamp_ns.to_be_bytes());
}

pub fn stamp_of(payload: &[u8]) -> Option<u64> {
    payload
        .first_chunk::<8>()
        .map(|bytes| u64::from_be_bytes(*bytes))
}

/// Decides when a producer's next batch is due and to which partition it goes, and when the
/// producer is done (its deadline, or the backlog's byte target).
pub struct Pacer {
    workload: Workload,
    index: usize,
    shared: Arc<Shared>,
    start: Instant,
    deadline: Instant,
    interval: Option<Duration>,
    sequence: u64,
}

/// One batch the pacer released: send it at (or after) `intended`, to `partition`.
pub struct Due {
    pub intended: Instant,
    pub stamp_ns: u64,
    pub partition: u32,
    pub messages: usize,
}

impl Pacer {
    pub fn new(workload: &Workload, index: usize, shared: Arc<Shared>) -> Pacer {
        let start = Instant::now();
        let interval = (workload.rate > 0).then(|| {
            let batches_per_s = workload.rate as f64
                / workload.producers as f64
                / workload.messages_per_batch() as f64;
            Duration::from_secs_f64(1.0 / batches_per_s)
        });
        Pacer {
            workload: workload.clone(),
            index,
            shared,
            start,
            deadline: start + workload.duration,
            interval,
            sequence: 0,
        }
    }

    /// The next batch, or None when this producer is done. The caller waits until `intended`.
    pub fn next(&mut self) -> Option<Due> {
        let now = Instant::now();
        let intended = match self.interval {
            Some(interval) => self.start + interval.mul_f64(self.sequence as f64),
            None => now,
        };
        if intended >= self.deadline || now >= self.deadline {
            return None;
        }
        let messages = self.workload.messages_per_batch();
        let batch_bytes = (messages * self.workload.message_bytes) as u64;
        if let Some(target) = self.workload.backlog_bytes {
            let sent = self
                .shared
                .sent_bytes
                .fetch_add(batch_bytes, Ordering::Relaxed);
            if sent >= target {
                return None;
            }
        }
        let partition = self.workload.partition_of(self.index, self.sequence);
        self.sequence += 1;
        Some(Due {
            intended,
            stamp_ns: ns_at(intended),
            partition,
            messages,
        })
    }
}

/// The mean and p50, p99, p99.9, p99.99 and max of a histogram of nanoseconds, in milliseconds.
pub fn percentiles_ms(histogram: &Histogram<u64>) -> [f64; 6] {
    let ms = |ns: u64| ns as f64 / 1e6;
    if histogram.is_empty() {
        return [0.0; 6];
    }
    [
        histogram.mean() / 1e6,
        ms(histogram.value_at_quantile(0.5)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.value_at_quantile(0.9999)),
        ms(histogram.max()),
    ]
}

/// Quantiles for latency curves: the tail in ever finer steps.
pub const CURVE_QUANTILES: [f64; 12] = [
    0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0,
];

/// [quantile, milliseconds] pairs of a histogram of nanoseconds at CURVE_QUANTILES.
pub fn curve_ms(histogram: &Histogram<u64>) -> Vec<[f64; 2]> {
    if histogram.is_empty() {
        return Vec::new();
    }
    CURVE_QUANTILES
        .iter()
        .map(|q| [*q, histogram.value_at_quantile(*q) as f64 / 1e6])
        .collect()
}

/// CPU seconds and peak resident memory of the broker's processes over a run, read from /proc.
pub struct ProcessSampler {
    pids: Vec<u32>,
    cpu_ticks_at_start: u64,
    rss_max_bytes: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// What the sampler saw: None for a process that could not be read.
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub rss_max_bytes: u64,
}

const SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

impl ProcessSampler {
    pub fn start(pids: Vec<u32>) -> ProcessSampler {
        let rss_max_bytes = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (pids, rss_max_bytes, done) = (pids.clone(), rss_max_bytes.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let rss: u64 = pids.iter().filter_map(|pid| rss_bytes(*pid)).sum();
                    rss_max_bytes.fetch_max(rss, Ordering::Relaxed);
                    std::thread::sleep(SAMPLE_INTERVAL);
                }
            })
        };
        ProcessSampler {
            cpu_ticks_at_start: pids.iter().filter_map(|pid| cpu_ticks(*pid)).sum(),
            pids,
            rss_max_bytes,
            done,
            thread: Some(thread),
        }
    }

    pub fn finish(mut self) -> ProcessUsage {
        let ticks: u64 = self.pids.iter().filter_map(|pid| cpu_ticks(*pid)).sum();
        self.done.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // SAFETY: sysconf has no preconditions.
        let ticks_per_s = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        ProcessUsage {
            cpu_seconds: ticks.saturating_sub(self.cpu_ticks_at_start) as f64 / ticks_per_s,
            rss_max_bytes: self.rss_max_bytes.load(Ordering::Relaxed),
        }
    }
}

/// utime + stime of a process and its reaped children, in clock ticks (/proc/PID/stat).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; the fields after it are space-separated.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some(field(14)? + field(15)? + field(16)? + field(17)?)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
