//! A partition-log writer for crash tests: appends batches with fsynced acks from several
//! concurrent tasks, printing `acked BASE LAST SEED` for every acknowledged append, until it is
//! killed. The test that SIGKILLs it rebuilds each batch from its seed and checks every
//! acknowledged offset survived with its exact bytes.
//!
//! Usage: crash_writer DIR SEGMENT_BYTES_MAX START_SEED [direct]

#[path = "crash_batch.rs"]
mod crash_batch;

use std::io::Write;
use std::path::PathBuf;

use ringmq::runtime;
use ringmq::storage::{AckLevel, LogConfig, PartitionLog};

use crash_batch::batch_for;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().expect("DIR"));
    let segment_bytes_max: u64 = args
        .next()
        .expect("SEGMENT_BYTES_MAX")
        .parse()
        .expect("a number");
    let start_seed: u64 = args.next().expect("START_SEED").parse().expect("a number");
    let config = LogConfig {
        segment_bytes_max,
        index_interval_bytes: 1024,
        ..LogConfig::default()
    };
    runtime::block_on(async move {
        let log = PartitionLog::open(&dir, config, Vec::new())
            .await
            .expect("open the log");
        println!("ready {}", log.high_watermark());
        let mut writers = Vec::new();
        for writer in 0..4u64 {
            let log = log.clone();
            writers.push(runtime::spawn(async move {
                for n in 0.. {
                    let seed = start_seed + n * 4 + writer;
                    let ack = log
                        .append(batch_for(seed), AckLevel::Fsynced)
                        .await
                        .expect("append");
                    let mut stdout = std::io::stdout().lock();
                    writeln!(
                        stdout,
                        "acked {} {} {seed}",
                        ack.base_offset, ack.last_offset
                    )
                    .unwrap();
                    stdout.flush().unwrap();
                }
            }));
        }
        for writer in writers {
            let _ = writer.await;
        }
    });
}
