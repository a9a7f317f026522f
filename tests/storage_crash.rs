//! A real crash test: a child process appends with fsynced acks and prints every acknowledged
//! offset; the test SIGKILLs it at pseudo-random moments over many rounds, reopens the log, and
//! checks that every acknowledged batch is there with its exact bytes, and nothing else broke.

#[path = "../tools/crash_batch.rs"]
mod crash_batch;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use ringmq::runtime;
use ringmq::storage::fsck::{self, Detail};
use ringmq::storage::{LogConfig, PartitionLog};

const ROUNDS: u64 = 12;

struct Acked {
    base: u64,
    last: u64,
    seed: u64,
}

/// One round: start the writer, let it run for `run_ms` after it is ready, SIGKILL it, and
/// return what it acknowledged and the high watermark it started from.
fn run_and_kill(
    dir: &std::path::Path,
    start_seed: u64,
    run_ms: u64,
    direct_io: bool,
) -> (u64, Vec<Acked>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(dir)
        .arg("65536")
        .arg(start_seed.to_string())
        .arg(if direct_io { "direct" } else { "buffered" })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the crash writer");
    let stdout = child.stdout.take().unwrap();
    let (lines_sender, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_sender.send(line).is_err() {
                break;
            }
        }
    });
    let ready = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the writer opens its log");
    let start: u64 = ready
        .strip_prefix("ready ")
        .expect("ready line")
        .parse()
        .unwrap();
    std::thread::sleep(Duration::from_millis(run_ms));
    child.kill().expect("SIGKILL the writer");
    child.wait().unwrap();
    reader.join().unwrap();
    let acked = lines
        .try_iter()
        .filter_map(|line| {
            let fields: Vec<u64> = line
                .strip_prefix("acked ")?
                .split(' ')
                .map(|f| f.parse().ok())
                .collect::<Option<_>>()?;
            (fields.len() == 3).then(|| Acked {
                base: fields[0],
                last: fields[1],
                seed: fields[2],
            })
        })
        .collect();
    (start, acked)
}

#[test]
fn every_fsynced_ack_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut all_acked: Vec<Acked> = Vec::new();
    let mut random = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..ROUNDS {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        let run_ms = 5 + random % 120;
        // Alternate page-cache and O_DIRECT writers on the same log: each recovers the other's.
        let (start, acked) = run_and_kill(dir.path(), round * 1_000_000, run_ms, round % 2 == 1);
        let acked_end = all_acked.iter().map(|a| a.last + 1).max().unwrap_or(0);
        assert!(
            start >= acked_end,
            "round {round}: reopened at {start}, but {acked_end} was acknowledged"
        );
        all_acked.extend(acked);
    }
    assert!(
        all_acked.len() > 100,
        "the writer made progress: {} acks",
        all_acked.len()
    );

    runtime::block_on(async {
        let config = LogConfig {
            segment_bytes_max: 65536,
            index_interval_bytes: 1024,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        for acked in &all_acked {
            let read = log.read(acked.base, 1).await.unwrap();
            let stored = read.concat();
            let expected = crash_batch::batch_for(acked.seed);
            let size = ringmq::batch::framed_size(&stored).unwrap();
            let header = ringmq::batch::header(&stored).unwrap();
            assert_eq!(
                header.base_offset.get() as u64,
                acked.base,
                "seed {}",
                acked.seed
            );
            assert_eq!(acked.last - acked.base + 1, 1 + acked.seed % 8);
            assert_eq!(
                &stored[8..size],
                &expected[8..],
                "bytes of seed {} at {}",
                acked.seed,
                acked.base
            );
        }
        log.close().await.unwrap();
    });
    let mut out = Vec::new();
    let report = fsck::inspect(dir.path(), Detail::Quiet, &mut out).unwrap();
    assert!(
        report.damage.is_empty(),
        "{}",
        String::from_utf8_lossy(&out)
    );
}
