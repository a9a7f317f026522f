//! Damage at rest in sealed segments, on real files: recovery keeps every intact segment and
//! never reuses an offset, reads step over the damage (and return what is good before it), a
//! hostile length field reaches no panic, `verify_on_start` finds a flipped bit at open, and
//! `log verify` reports one line per damaged range.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{batch, decode_all, small_config, value_for};
use ringmq::runtime;
use ringmq::storage::fsck::{self, Detail};
use ringmq::storage::segment::{self, DATA_SUFFIX};
use ringmq::storage::{AckLevel, LogConfig, PartitionLog, StorageError};

const BATCHES: u64 = 200;

fn expected_value(offset: u64) -> Vec<u8> {
    value_for(offset / 3, (offset % 3) as usize)
}

/// Fills a log in `dir` with `BATCHES` batches of 3 records (many small segments), and closes it.
fn fill(dir: &Path, config: &LogConfig) {
    runtime::block_on(async {
        let log = PartitionLog::open(dir, config.clone(), Vec::new())
            .await
            .unwrap();
        for seed in 0..BATCHES {
            let ack = log
                .append(batch(seed, 3, 1000 + seed as i64), AckLevel::Written)
                .await
                .unwrap();
            assert_eq!(ack.base_offset, seed * 3);
        }
        assert!(log.segment_count() >= 5, "{} segments", log.segment_count());
        log.close().await.unwrap();
    });
}

/// The segment data file with base `base` and the positions of its batches.
fn batches_of(dir: &Path, index: usize) -> (PathBuf, u64, Vec<usize>) {
    let base = segment::list_base_offsets(dir).unwrap()[index];
    let path = segment::file_path(dir, base, DATA_SUFFIX);
    let bytes = fs::read(&path).unwrap();
    let starts = ringmq::batch::iter_framed(&bytes)
        .map(|(at, _)| at)
        .collect();
    (path, base, starts)
}

fn flip(path: &Path, position: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[position] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

/// Reads the whole log as a consumer does: from 0, each read continuing after the last record
/// it got. Returns every (offset, value).
async fn consume_all(log: &PartitionLog) -> Vec<(i64, bytes::Bytes)> {
    let mut records = Vec::new();
    let mut offset = 0;
    while offset < log.high_watermark() {
        let result = log.read(offset, 4096).await.unwrap();
        let got = decode_all(&result);
        assert!(
            !got.is_empty(),
            "a read at {offset} below the end returned nothing"
        );
        offset = got.last().unwrap().0 as u64 + 1;
        records.extend(got);
    }
    records
}

/// Every record is there with its value, except the offsets in `lost`.
fn assert_all_but(records: &[(i64, bytes::Bytes)], lost: std::ops::Range<u64>) {
    let expected: Vec<u64> = (0..BATCHES * 3).filter(|o| !lost.contains(o)).collect();
    let offsets: Vec<u64> = records.iter().map(|(o, _)| *o as u64).collect();
    assert_eq!(offsets, expected);
    for (offset, value) in records {
        assert_eq!(&value[..], &expected_value(*offset as u64)[..]);
    }
}

#[test]
fn damage_in_a_middle_segment_keeps_every_later_segment_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    fill(dir.path(), &config);
    let segments_before = segment::list_base_offsets(dir.path()).unwrap();
    // The last batch of the second segment lies after its last index entry: recovery checks it.
    let (path, _, starts) = batches_of(dir.path(), 1);
    let last = *starts.last().unwrap();
    let first_offset_of_last = {
        let bytes = fs::read(&path).unwrap();
        i64::from_be_bytes(bytes[last..last + 8].try_into().unwrap()) as u64
    };
    flip(&path, last + 70);
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.segment_base_offsets(), segments_before);
        assert_eq!(log.high_watermark(), BATCHES * 3);
        let damaged = log.damaged_ranges();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].first_offset, first_offset_of_last);
        assert_eq!(damaged[0].end_offset, Some(first_offset_of_last + 3));
        assert_eq!(damaged[0].start_byte, last as u64);
        // A read from before the damage returns the good batches before it.
        let before = log.read(first_offset_of_last - 3, 1 << 20).await.unwrap();
        let got = decode_all(&before);
        assert_eq!(got.first().unwrap().0 as u64, first_offset_of_last - 3);
        assert_eq!(got.last().unwrap().0 as u64, first_offset_of_last - 1);
        // A read inside the damage gets the next good batch, at a higher offset.
        let inside = log.read(first_offset_of_last + 1, 1 << 20).await.unwrap();
        assert_eq!(
            decode_all(&inside).first().unwrap().0 as u64,
            first_offset_of_last + 3
        );
        let records = consume_all(&log).await;
        assert_all_but(&records, first_offset_of_last..first_offset_of_last + 3);
        // Offsets are never reused: the next append follows the old end.
        let ack = log
            .append(batch(999, 2, 5), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!(ack.base_offset, BATCHES * 3);
        log.close().await.unwrap();
    });
    // And again after a second restart.
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), BATCHES * 3 + 2);
        assert_eq!(log.segment_base_offsets()[..], segments_before[..]);
        log.close().await.unwrap();
    });
}

#[test]
fn a_huge_length_in_a_sealed_segment_is_stepped_over_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    fill(dir.path(), &config);
    // The second batch of the first segment: before its index entries, so the open does not see it.
    let (path, _, starts) = batches_of(dir.path(), 0);
    let mut bytes = fs::read(&path).unwrap();
    bytes[starts[1] + 8..starts[1] + 12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    fs::write(&path, bytes).unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        assert!(log.damaged_ranges().is_empty(), "not checked at open");
        // Before the damage: the good batch.
        let first = decode_all(&log.read(0, 1 << 20).await.unwrap());
        assert_eq!(first.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        // At the damage: the next good batch, and the damage is now known.
        let next = decode_all(&log.read(3, 1 << 20).await.unwrap());
        assert_eq!(next.first().unwrap().0, 6);
        let damaged = log.damaged_ranges();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(
            (damaged[0].first_offset, damaged[0].end_offset),
            (3, Some(6))
        );
        assert_all_but(&consume_all(&log).await, 3..6);
        log.close().await.unwrap();
    });
}

#[test]
fn verify_on_start_finds_a_flipped_bit_that_the_index_hides() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    fill(dir.path(), &config);
    let (path, _, starts) = batches_of(dir.path(), 2);
    let victim = starts[2];
    flip(&path, victim + 100);
    let open = |verify_on_start| {
        let config = LogConfig {
            verify_on_start,
            ..config.clone()
        };
        PartitionLog::open(dir.path(), config, Vec::new())
    };
    runtime::block_on(async {
        let log = open(false).await.unwrap();
        assert!(log.damaged_ranges().is_empty());
        log.close().await.unwrap();
    });
    runtime::block_on(async {
        let log = open(true).await.unwrap();
        let damaged = log.damaged_ranges();
        assert_eq!(damaged.len(), 1, "{damaged:?}");
        assert_eq!(damaged[0].start_byte, victim as u64);
        assert_eq!(damaged[0].end_byte, starts[3] as u64);
        let lost = damaged[0].first_offset..damaged[0].end_offset.unwrap();
        assert_eq!(lost.end - lost.start, 3);
        assert_all_but(&consume_all(&log).await, lost.clone());
        log.close().await.unwrap();
    });
}

#[test]
fn a_read_that_starts_at_unknown_damage_in_the_active_segment_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 1 << 20,
        ..small_config()
    };
    fill(dir.path(), &config);
    let bases = segment::list_base_offsets(dir.path()).unwrap();
    let (path, base, starts) = batches_of(dir.path(), bases.len() - 1);
    assert!(starts.len() >= 3);
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        flip(&path, starts[1] + 100);
        let error = log.read(base + 3, 1 << 20).await.unwrap_err();
        assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
        // A read before it still gets the good batch.
        let good = decode_all(&log.read(base, 1 << 20).await.unwrap());
        assert_eq!(good.len(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn log_verify_prints_one_line_per_damaged_range() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    fill(dir.path(), &config);
    let (path, base, starts) = batches_of(dir.path(), 1);
    flip(&path, starts[1] + 90);
    let mut out = Vec::new();
    let report = fsck::inspect(dir.path(), Detail::Quiet, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(report.damage.len(), 1, "{text}");
    let damage_lines: Vec<&str> = text.lines().filter(|l| l.contains("DAMAGE")).collect();
    assert_eq!(damage_lines.len(), 1, "{text}");
    assert!(
        damage_lines[0].contains(&format!(
            "segment {base} bytes {}..{}",
            starts[1], starts[2]
        )),
        "{text}"
    );
    assert!(text.trim_end().ends_with("1 problem(s)"), "{text}");
}

#[test]
fn a_segment_file_whose_name_does_not_parse_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    fill(dir.path(), &config);
    let before = segment::list_base_offsets(dir.path()).unwrap();
    // 20 digits that overflow u64, and a name that is not a number at all.
    fs::write(dir.path().join("99999999999999999999.log"), b"junk").unwrap();
    fs::write(dir.path().join("not-a-segment.log"), b"junk").unwrap();
    assert_eq!(segment::list_base_offsets(dir.path()).unwrap(), before);
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), BATCHES * 3);
        log.close().await.unwrap();
    });
}

/// The broker end to end: damage at rest in a sealed segment (a batch length of 0x7fffffff) is
/// found by `verify_on_start`, exported as a metric, and fetches over TCP step over it while the
/// broker keeps serving every other record.
#[test]
fn a_broker_with_verify_on_start_exports_damage_and_serves_around_it() {
    use ringmq::client::Client;
    use ringmq::protocol::FetchRequest;
    use std::io::{Read, Write};

    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let settings = [("segment_bytes", "4096"), ("index_interval_bytes", "256")];
        client.create_topic("hurt", 1, &settings).await.unwrap();
        for seed in 0..BATCHES {
            let records = batch(seed, 3, 1000 + seed as i64);
            let ack = client
                .produce("hurt", Some(0), b"", AckLevel::Fsynced, records)
                .await
                .unwrap();
            assert_eq!(ack.base_offset, seed * 3);
        }
    });
    broker.handle.take().unwrap().shutdown();
    let partition = dir.path().join("topics/hurt-0");
    let (path, _, starts) = batches_of(&partition, 1);
    let damaged_offset = {
        let mut bytes = fs::read(&path).unwrap();
        let at = starts[1];
        bytes[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
        fs::write(&path, &bytes).unwrap();
        i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap()) as u64
    };
    let mut config = broker.config.clone();
    config.verify_on_start = true;
    drop(broker);
    let broker = common::TestBroker::start_with(config);
    let address = broker.address();
    let records = runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let mut records = Vec::new();
        let mut offset = 0;
        while offset < BATCHES * 3 {
            let request = FetchRequest {
                topic: "hurt".into(),
                partition: 0,
                offset,
                max_bytes: 4096,
                min_bytes: 0,
                max_wait_ms: 0,
            };
            let response = client.fetch(request).await.unwrap();
            assert_eq!(response.high_watermark, BATCHES * 3);
            let result = ringmq::storage::ReadResult {
                chunks: response.records,
                ..Default::default()
            };
            let got = decode_all(&result);
            assert!(!got.is_empty(), "a fetch at {offset} returned nothing");
            offset = got.last().unwrap().0 as u64 + 1;
            records.extend(got);
        }
        records
    });
    assert_all_but(&records, damaged_offset..damaged_offset + 3);
    let mut stream = std::net::TcpStream::connect(broker.http_address()).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.contains("ringmq_log_damaged_ranges{topic=\"hurt\",partition=\"0\"} 1"),
        "{response}"
    );
}
