//! Long polls on a hot partition: how many times idle long-polling consumers are woken while
//! another client appends, and what the appends cost beside them.
//!
//! `cargo bench --bench longpoll [-- --appends N]`
//!
//! 100 waiters on one partition's log, each in `wait_for_data` as a long poll is; every wake-up
//! is counted (a poll of a waiter after its first). Scenarios:
//! - `far`: each waits for an offset 1,000,000 past the end, which no append reaches, so every
//!   wake-up is wasted; appends are one record each, acks `written` and then `fsynced` (whose
//!   fdatasync is another event a broadcast signal would wake them for).
//! - `caught-up`: each waits at the end and waits again at the new end once woken, as consumers
//!   that have read everything do; every append is data for all of them, so 100 wake-ups per
//!   append is the floor, and more is waste.
//!
//! Not a test: nothing here asserts speed.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::runtime;
use ringmq::storage::{AckLevel, LogConfig, PartitionLog};

const WAITERS: usize = 100;
const FAR_OFFSETS: u64 = 1_000_000;

/// Counts the wake-ups of the future it wraps: its polls after the first.
struct Counted<F> {
    inner: Pin<Box<F>>,
    polled: bool,
    wakeups: Rc<Cell<u64>>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        if std::mem::replace(&mut self.polled, true) {
            self.wakeups.set(self.wakeups.get() + 1);
        }
        self.inner.as_mut().poll(context)
    }
}

fn one_record() -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(1_000, None, Some(&b"tick"[..])));
    BytesMut::from(&builder.build()[..])
}

struct Outcome {
    wakeups: u64,
    appends: usize,
    elapsed: Duration,
}

/// Runs `appends` one-record appends with `WAITERS` long polls parked on the log.
async fn run(log: &PartitionLog, appends: usize, level: AckLevel, caught_up: bool) -> Outcome {
    let woken = Rc::new(Cell::new(0u64));
    let stop = Rc::new(Cell::new(false));
    let mut waiters = Vec::new();
    for _ in 0..WAITERS {
        let (log, woken, stop) = (log.clone(), woken.clone(), stop.clone());
        waiters.push(runtime::spawn(async move {
            let mut waits = 0u64;
            while !stop.get() {
                let end = log.high_watermark();
                let offset = if caught_up { end } else { end + FAR_OFFSETS };
                Counted {
                    inner: Box::pin(log.wait_for_data(offset)),
                    polled: false,
                    wakeups: woken.clone(),
                }
                .await;
                waits += 1;
            }
            waits
        }));
    }
    // Let every waiter park before the clock starts.
    runtime::sleep(Duration::from_millis(20)).await;
    let before = woken.get();
    let started = Instant::now();
    for _ in 0..appends {
        log.append(one_record(), level).await.unwrap();
    }
    let elapsed = started.elapsed();
    let wakeups = woken.get() - before;
    stop.set(true);
    Outcome {
        wakeups,
        appends,
        elapsed,
    }
    // The waiters are dropped with their handles: a long poll that times out.
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let appends = args
        .iter()
        .position(|a| a == "--appends")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    runtime::block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush_interval_ms: None,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        println!("{WAITERS} long polls on one partition, {appends} appends of one record each");
        for (name, level, caught_up) in [
            ("far", AckLevel::Written, false),
            ("far", AckLevel::Fsynced, false),
            ("caught-up", AckLevel::Written, true),
        ] {
            let outcome = run(&log, appends, level, caught_up).await;
            let per_append = outcome.wakeups as f64 / outcome.appends as f64;
            let appends_per_second = outcome.appends as f64 / outcome.elapsed.as_secs_f64();
            println!(
                "{name:<10} acks={level:<8} wake-ups {:>8} ({per_append:>6.1} per append), \
                 {appends_per_second:>8.0} appends/s",
                outcome.wakeups,
                level = format!("{level:?}").to_lowercase(),
            );
        }
        log.close().await.unwrap();
    });
}
