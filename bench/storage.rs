//! Storage engine benchmark: append throughput per record size, batch size and ack level, read
//! throughput from the tail cache and from the files, each beside this machine's raw sequential
//! write (with and without fdatasync) measured in the same run.
//!
//! `cargo bench --bench storage [-- --quick] [--runs N] [--json PATH]`
//! Every figure is the median of N runs (default 3). Not a test: nothing here asserts speed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::runtime;
use ringmq::storage::{AckLevel, LogConfig, PartitionLog};

struct Options {
    quick: bool,
    runs: usize,
    json: Option<String>,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        quick: args.iter().any(|a| a == "--quick"),
        runs: value("--runs").and_then(|v| v.parse().ok()).unwrap_or(3),
        json: value("--json"),
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// One batch of `batch_bytes` (approximately) of `record_bytes` records.
fn make_batch(record_bytes: usize, batch_bytes: usize) -> (BytesMut, usize) {
    let mut builder = BatchBuilder::new(Compression::None);
    let value = vec![b'v'; record_bytes];
    while builder.size_bytes() + record_bytes + 8 <= batch_bytes {
        builder.push(Record::new(1_700_000_000_000, None, Some(&value)));
    }
    let records = builder.len();
    (BytesMut::from(&builder.build()[..]), records)
}

/// Raw sequential write of `total` bytes in `block` blocks with pwrite; with `sync_every`, one
/// fdatasync per that many blocks (group commit's best case). Returns MB/s.
fn raw_write(dir: &Path, total: usize, block: usize, sync_every: Option<usize>) -> f64 {
    let path = dir.join("raw");
    let file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let buffer = vec![7u8; block];
    let started = Instant::now();
    let mut position = 0;
    let mut blocks = 0;
    while position < total {
        file.write_all_at(&buffer, position as u64).unwrap();
        blocks += 1;
        if sync_every.is_some_and(|every| blocks % every == 0) {
            file.sync_data().unwrap();
        }
        position += block;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    fs::remove_file(path).unwrap();
    total as f64 / seconds / 1e6
}

struct AppendResult {
    mb_per_s: f64,
    batches_per_s: f64,
    records_per_s: f64,
}

/// `writers` tasks append `total` bytes between them to one log. Returns throughput.
fn append_run(
    dir: &Path,
    batch: &BytesMut,
    records: usize,
    total: usize,
    writers: usize,
    level: AckLevel,
) -> AppendResult {
    let log_dir = dir.join("log");
    let _ = fs::remove_dir_all(&log_dir);
    let batches_total = total / batch.len();
    let per_writer = batches_total / writers;
    let config = LogConfig {
        flush_interval_ms: None,
        ..LogConfig::default()
    };
    let seconds = runtime::block_on(async {
        let log = PartitionLog::open(&log_dir, config, Vec::new())
            .await
            .unwrap();
        // The buffers a network read would have filled, made before the clock starts.
        let inputs: Vec<Vec<BytesMut>> = (0..writers)
            .map(|_| vec![batch.clone(); per_writer])
            .collect();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for input in inputs {
            let log = log.clone();
            tasks.push(runtime::spawn(async move {
                for batch in input {
                    log.append(batch, level).await.unwrap();
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        // none-acked appends are only queued: count until they are written.
        let end = (per_writer * writers * records) as u64;
        while log.high_watermark() < end {
            log.wait_for_data(log.high_watermark()).await;
        }
        let seconds = started.elapsed().as_secs_f64();
        log.close().await.unwrap();
        seconds
    });
    let _ = fs::remove_dir_all(&log_dir);
    let batches = (per_writer * writers) as f64;
    AppendResult {
        mb_per_s: batches * batch.len() as f64 / seconds / 1e6,
        batches_per_s: batches / seconds,
        records_per_s: batches * records as f64 / seconds,
    }
}

/// Reads the whole log back in `max_bytes` reads; with a tail cache as large as the log, every
/// read is served from memory. Returns MB/s.
fn read_run(dir: &Path, batch: &BytesMut, total: usize, from_cache: bool) -> f64 {
    let log_dir = dir.join("read");
    let _ = fs::remove_dir_all(&log_dir);
    let cache = if from_cache { total + (1 << 20) } else { 0 };
    let config = LogConfig {
        tail_cache_bytes_max: cache,
        pending_bytes_max: total.max(16 << 20),
        ..LogConfig::default()
    };
    let mb_per_s = runtime::block_on(async {
        let log = PartitionLog::open(&log_dir, config, Vec::new())
            .await
            .unwrap();
        for _ in 0..total / batch.len() {
            log.append(batch.clone(), AckLevel::Written).await.unwrap();
        }
        let started = Instant::now();
        let mut offset = 0;
        let mut bytes = 0;
        while offset < log.high_watermark() {
            let result = log.read(offset, 1 << 20).await.unwrap();
            bytes += result.size_bytes();
            let last = result.chunks.last().unwrap();
            let mut position = 0;
            let mut next = offset;
            for (_, framed) in ringmq::batch::iter_framed(last) {
                let header = ringmq::batch::header(framed).unwrap();
                next = (header.base_offset.get() + i64::from(header.last_offset_delta.get()) + 1)
                    as u64;
                position += framed.len();
            }
            assert_eq!(position, last.len());
            offset = next;
        }
        let mb_per_s = bytes as f64 / started.elapsed().as_secs_f64() / 1e6;
        log.close().await.unwrap();
        mb_per_s
    });
    let _ = fs::remove_dir_all(&log_dir);
    mb_per_s
}

fn main() {
    let options = options();
    let dir = tempfile::Builder::new()
        .prefix("ringmq-bench")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let total = if options.quick { 128 << 20 } else { 512 << 20 };
    let mut json = Vec::new();
    println!(
        "# storage benchmark: up to {} MiB per run, median of {} paired runs",
        total >> 20,
        options.runs
    );
    println!("# 'raw' is pwrite of blocks of the batch size, for fsynced with one fdatasync per");
    println!(
        "# <writers> blocks, measured right before each of ours; 'ratio' is the median of ours/raw."
    );
    println!();
    println!(
        "| record B | batch KiB | ack | writers | MB/s | batches/s | records/s | raw MB/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let cases = [
        (AckLevel::None, 1),
        (AckLevel::Written, 1),
        (AckLevel::Written, 8),
        (AckLevel::Fsynced, 1),
        (AckLevel::Fsynced, 8),
    ];
    for record_bytes in [100usize, 1024] {
        for batch_bytes in [16usize << 10, 256 << 10, 1 << 20] {
            let (batch, records) = make_batch(record_bytes, batch_bytes);
            for (level, writers) in cases {
                // Small fsynced batches are slow: bound the run by count, not bytes.
                let run_total = match level {
                    AckLevel::Fsynced => (total / 2).min(batch_bytes * 4000),
                    _ => total,
                };
                let sync_every = (level == AckLevel::Fsynced).then_some(writers);
                let mut ours = Vec::new();
                let mut raw = Vec::new();
                for _ in 0..options.runs {
                    raw.push(raw_write(dir.path(), run_total, batch.len(), sync_every));
                    ours.push(append_run(
                        dir.path(),
                        &batch,
                        records,
                        run_total,
                        writers,
                        level,
                    ));
                }
                let ratio = median(ours.iter().zip(&raw).map(|(o, r)| o.mb_per_s / r).collect());
                let mb = median(ours.iter().map(|r| r.mb_per_s).collect());
                let batches = median(ours.iter().map(|r| r.batches_per_s).collect());
                let records_s = median(ours.iter().map(|r| r.records_per_s).collect());
                let raw_mb = median(raw);
                let level_name = format!("{level:?}").to_lowercase();
                println!(
                    "| {record_bytes} | {} | {level_name} | {writers} | {mb:.0} | {batches:.0} | {records_s:.0} | {raw_mb:.0} | {ratio:.2} |",
                    batch_bytes >> 10
                );
                json.push(format!(
                    "{{\"case\":\"append\",\"record_bytes\":{record_bytes},\"batch_bytes\":{batch_bytes},\"ack\":\"{level_name}\",\"writers\":{writers},\"mb_per_s\":{mb:.1},\"batches_per_s\":{batches:.0},\"records_per_s\":{records_s:.0},\"raw_mb_per_s\":{raw_mb:.1},\"ratio_to_raw\":{ratio:.3}}}"
                ));
            }
        }
    }
    println!();
    // The CPU cost every append pays before any I/O: CRC32C plus the record framing walk.
    for record_bytes in [100usize, 1024] {
        let (batch, _) = make_batch(record_bytes, 1 << 20);
        let rounds = 200;
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(
                ringmq::batch::validate(&batch, ringmq::batch::Limits::UNLIMITED).unwrap(),
            );
        }
        let gb_per_s = (batch.len() * rounds) as f64 / started.elapsed().as_secs_f64() / 1e9;
        println!("validate 1 MiB batches of {record_bytes} B records: {gb_per_s:.1} GB/s");
        json.push(format!(
            "{{\"case\":\"validate\",\"record_bytes\":{record_bytes},\"gb_per_s\":{gb_per_s:.2}}}"
        ));
    }
    let (batch, _) = make_batch(1024, 256 << 10);
    let read_total = total / 2;
    for from_cache in [true, false] {
        let mb = median(
            (0..options.runs)
                .map(|_| read_run(dir.path(), &batch, read_total, from_cache))
                .collect(),
        );
        let source = if from_cache {
            "tail cache"
        } else {
            "segment files (page cache)"
        };
        println!("read 1 MiB at a time from the {source}: {mb:.0} MB/s");
        json.push(format!(
            "{{\"case\":\"read\",\"source\":\"{}\",\"mb_per_s\":{mb:.1}}}",
            if from_cache { "cache" } else { "files" }
        ));
    }
    if let Some(path) = options.json {
        let mut file = fs::File::create(path).unwrap();
        writeln!(file, "[\n{}\n]", json.join(",\n")).unwrap();
    }
}
