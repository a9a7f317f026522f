//! What checking a batch on append costs, per codec: `batch::validate` (framing, CRC, and the
//! records of uncompressed batches: what the write path did before issue 10) beside
//! `batch::validate_append` (the same, plus attributes, producer fields, the record count, and
//! compressed batches inflated under a cap to check every record).
//!
//! `cargo bench --bench validate [-- --runs N]`: batches of 1,000 records of 100 bytes with
//! varied keys; prints ns per record and CPU seconds per GB of record values for both, and the
//! added cost. Medians of N runs (default 5). Not a test: nothing here asserts speed.

use std::time::Instant;

use ringmq::batch::{self, BatchBuilder, Compression, Record};
use ringmq::storage::LogConfig;

const RECORDS_PER_BATCH: usize = 1_000;
const VALUE_BYTES: usize = 100;
const BATCHES: usize = 400;

fn batch_of(compression: Compression, seed: usize) -> bytes::Bytes {
    let mut builder = BatchBuilder::new(compression);
    for n in 0..RECORDS_PER_BATCH {
        let key = format!("key-{}", (seed * 31 + n) % 97);
        let mut value = format!("record {n} of batch {seed}: ").into_bytes();
        value.resize(VALUE_BYTES, b'a' + (n % 26) as u8);
        builder.push(Record::new(
            1_700_000_000_000 + n as i64,
            Some(key.as_bytes()),
            Some(&value),
        ));
    }
    builder.build()
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
        .unwrap_or(5);
    let config = LogConfig::default();
    let limits = config.batch_limits();
    let append_limits = config.append_limits();
    let records = (BATCHES * RECORDS_PER_BATCH) as f64;
    let value_gb = records * VALUE_BYTES as f64 / 1e9;
    println!(
        "| codec | before: ns/record | now: ns/record | added ns/record | now: CPU s per GB of values |"
    );
    println!("|---|---|---|---|---|");
    for compression in [
        Compression::None,
        Compression::Lz4,
        Compression::Zstd,
        Compression::Snappy,
        Compression::Gzip,
    ] {
        let batches: Vec<_> = (0..BATCHES)
            .map(|seed| batch_of(compression, seed))
            .collect();
        let (mut before, mut now) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let started = Instant::now();
            for bytes in &batches {
                batch::validate(bytes, limits).unwrap();
            }
            before.push(started.elapsed().as_secs_f64());
            let started = Instant::now();
            for bytes in &batches {
                let mut budget = append_limits.decompressed_bytes_max;
                batch::validate_append(bytes, &append_limits, &mut budget).unwrap();
            }
            now.push(started.elapsed().as_secs_f64());
        }
        let (before, now) = (median(before), median(now));
        println!(
            "| {compression:?} | {:.1} | {:.1} | {:.1} | {:.2} |",
            before / records * 1e9,
            now / records * 1e9,
            (now - before) / records * 1e9,
            now / value_gb,
        );
    }
}
