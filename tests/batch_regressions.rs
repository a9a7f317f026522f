//! Named regressions for hostile record batches (issue 10): each was once accepted, or panicked
//! or wedged a partition. Each now gets a clear error, and the log stays writable, closes cleanly
//! and recovers everything acknowledged.

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use std::path::Path;

use bytes::BytesMut;
use common::{TestBroker, batch, decode_all};
use hostile::{RawBatch, encode_records, noise, zstd_bomb};
use ringmq::batch::{BatchError, Compression};
use ringmq::client::Client;
use ringmq::protocol::{ErrorCode, FetchRequest};
use ringmq::runtime::{self, faults};
use ringmq::storage::{AckLevel, LogConfig, PartitionLog, StorageError};

fn code_of(error: &StorageError) -> ErrorCode {
    ringmq::server::errors::to_native(ringmq::broker::BrokerError::from(error.clone())).code
}

/// Eight gzip-flagged batches, each claiming 2^31-1 records while holding three.
fn eight_huge_claims() -> BytesMut {
    let records = encode_records(&[b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
    let mut all = BytesMut::new();
    for _ in 0..8 {
        all.extend_from_slice(&RawBatch::claiming(Compression::Gzip, &records, i32::MAX).seal());
    }
    all
}

/// Every record in the log, read segment by segment (a read stops at a segment's end).
async fn read_all(log: &PartitionLog) -> Vec<(i64, bytes::Bytes)> {
    let mut records = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let result = log.read(offset, usize::MAX).await.unwrap();
        assert!(
            !result.is_empty(),
            "a read below the high watermark returns data"
        );
        records.extend(decode_all(&result));
        offset = records.last().map_or(offset, |(last, _)| *last as u64 + 1);
    }
    records
}

#[test]
fn eight_gzip_batches_claiming_2_31_records_each_are_refused_and_the_log_stays_whole() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let error = log
            .append(eight_huge_claims(), AckLevel::Fsynced)
            .await
            .unwrap_err();
        assert_eq!(code_of(&error), ErrorCode::InvalidRecord, "{error}");
        assert_eq!(log.high_watermark(), 0, "nothing was stored");
        let ack = log
            .append(batch(1, 3, 1_000), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!((ack.base_offset, ack.last_offset), (0, 2));
        log.close().await.unwrap();
    });
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 3);
        assert_eq!(read_all(&log).await.len(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn eight_gzip_batches_claiming_2_31_records_over_tcp_get_invalid_record_and_a_restart_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("huge", 1, &[]).await.unwrap();
        let error = client
            .produce("huge", Some(0), b"", AckLevel::Fsynced, eight_huge_claims())
            .await
            .unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::InvalidRecord), "{error}");
        let ack = client
            .produce("huge", Some(0), b"", AckLevel::Fsynced, batch(2, 4, 1_000))
            .await
            .unwrap();
        assert_eq!((ack.base_offset, ack.last_offset), (0, 3));
    });
    broker.restart();
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let fetched = client
            .fetch(FetchRequest {
                topic: "huge".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
                min_bytes: 0,
                max_wait_ms: 0,
            })
            .await
            .unwrap();
        assert_eq!(fetched.high_watermark, 4, "the acknowledged batch survived");
    });
}

/// The process's peak resident memory (VmHWM).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_zstd_bomb_stops_at_the_cap_and_is_refused_as_too_large() {
    // The frame builder is right: a small one inflates to exactly the records it describes.
    let small = zstd_bomb(3, 1_000);
    let inflated = Compression::Zstd.decompress(&small).unwrap();
    assert_eq!(inflated, encode_records(&vec![vec![0u8; 1_000]; 3]));

    // 4096 records of ~1 MB of zeros: about 200 KB that inflate to 4 GB.
    let bomb = zstd_bomb(4096, 1_000_000);
    assert!(bomb.len() < 256 * 1024, "{} bytes", bomb.len());
    let mut raw = RawBatch::claiming(Compression::Zstd, &[], 4096);
    raw.payload = bomb;
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let mut small_batch = RawBatch::claiming(Compression::Zstd, &[], 3);
        small_batch.payload = small;
        log.append(small_batch.seal(), AckLevel::Written)
            .await
            .unwrap();
        let peak_before = peak_rss_bytes();
        let error = log.append(raw.seal(), AckLevel::Fsynced).await.unwrap_err();
        assert_eq!(
            error,
            StorageError::InvalidBatch(BatchError::DecompressedTooLarge { limit: 64 << 20 })
        );
        // The check streams: inflating to the 64 MiB cap holds about one record (1 MB) at once.
        let grown = peak_rss_bytes().saturating_sub(peak_before);
        assert!(grown < 32 << 20, "peak memory grew by {grown} bytes");
        assert_eq!(code_of(&error), ErrorCode::RecordTooLarge);
        assert_eq!(log.high_watermark(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn a_bomb_of_every_codec_is_refused_at_a_small_cap() {
    let config = LogConfig {
        batch_bytes_max: 64 * 1024,
        batch_decompressed_bytes_max: 256 * 1024,
        ..LogConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        for codec in hostile::CODECS.into_iter().skip(1) {
            let values = vec![vec![0u8; 200_000]; 4];
            let bomb = RawBatch::honest(codec, &values).seal();
            assert!(
                bomb.len() < 64 * 1024,
                "{}: {} bytes",
                codec.name(),
                bomb.len()
            );
            let error = log.append(bomb, AckLevel::Written).await.unwrap_err();
            assert!(
                matches!(
                    error,
                    StorageError::InvalidBatch(BatchError::DecompressedTooLarge { .. })
                ),
                "{}: {error}",
                codec.name()
            );
            // The same content in smaller batches is fine.
            let fine = RawBatch::honest(codec, &values[..1]).seal();
            log.append(fine, AckLevel::Written).await.unwrap();
        }
        assert_eq!(log.high_watermark(), 4);
        log.close().await.unwrap();
    });
}

#[test]
fn a_batch_whose_header_says_1_record_but_holds_5_is_refused_for_every_codec() {
    let values: Vec<Vec<u8>> = (0..5).map(|n| vec![b'v'; 10 + n]).collect();
    let records = encode_records(&values);
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        for codec in hostile::CODECS {
            for claimed in [1, 4, 6] {
                let lying = RawBatch::claiming(codec, &records, claimed).seal();
                let error = log.append(lying, AckLevel::Written).await.unwrap_err();
                assert_eq!(
                    code_of(&error),
                    ErrorCode::InvalidRecord,
                    "{} claiming {claimed}: {error}",
                    codec.name()
                );
            }
            let honest = RawBatch::claiming(codec, &records, 5).seal();
            log.append(honest, AckLevel::Written).await.unwrap();
        }
        assert_eq!(log.high_watermark(), 25);
        let stored = read_all(&log).await;
        assert_eq!(stored.len(), 25);
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(n, (offset, _))| *offset == n as i64)
        );
        log.close().await.unwrap();
    });
}

#[test]
fn random_bytes_labelled_compressed_are_refused_and_the_partition_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        for (seed, codec) in hostile::CODECS.into_iter().skip(1).enumerate() {
            for length in [0, 1, 17, 4_000] {
                let mut raw = RawBatch::claiming(codec, &[], 3);
                raw.payload = noise(seed as u64 + 1, length);
                let error = log.append(raw.seal(), AckLevel::Written).await.unwrap_err();
                // Raw snappy has no magic: noise may declare a huge size, refused as too large.
                let wanted: &[ErrorCode] = match codec {
                    Compression::Snappy => &[ErrorCode::InvalidRecord, ErrorCode::RecordTooLarge],
                    _ => &[ErrorCode::InvalidRecord],
                };
                assert!(
                    wanted.contains(&code_of(&error)),
                    "{} noise of {length}: {error}",
                    codec.name()
                );
            }
            log.append(batch(seed as u64, 2, 5), AckLevel::Written)
                .await
                .unwrap();
        }
        assert_eq!(read_all(&log).await.len(), 8);
        log.close().await.unwrap();
    });
}

#[test]
fn an_append_spanning_more_offsets_than_a_segment_holds_rolls_per_batch() {
    let config = LogConfig {
        segment_offsets_max: 10,
        ..LogConfig::default()
    };
    let four = || RawBatch::honest(Compression::None, &vec![b"x".to_vec(); 4]).seal();
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        // Five batches of four in one append: offsets 0-19, at most 10 past a segment's base.
        let mut append = BytesMut::new();
        for _ in 0..5 {
            append.extend_from_slice(&four());
        }
        let ack = log.append(append, AckLevel::Fsynced).await.unwrap();
        assert_eq!((ack.base_offset, ack.last_offset), (0, 19));
        assert_eq!(log.segment_base_offsets(), vec![0, 8, 16]);
        // An append that fits a segment whole is not split: it starts a new one.
        let mut two = four();
        two.extend_from_slice(&four());
        let ack = log.append(two, AckLevel::Fsynced).await.unwrap();
        assert_eq!((ack.base_offset, ack.last_offset), (20, 27));
        assert_eq!(log.segment_base_offsets(), vec![0, 8, 16, 20]);
        // One batch larger than the bound still goes in, alone in its segment.
        let big = RawBatch::honest(Compression::None, &vec![b"y".to_vec(); 30]).seal();
        log.append(big, AckLevel::Fsynced).await.unwrap();
        assert_eq!(log.segment_base_offsets(), vec![0, 8, 16, 20, 28]);
        log.close().await.unwrap();
    });
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 58);
        let stored = read_all(&log).await;
        assert_eq!(stored.len(), 58);
        assert!(
            stored
                .iter()
                .enumerate()
                .all(|(n, (offset, _))| *offset == n as i64)
        );
        log.close().await.unwrap();
    });
}

/// A segment file written by hand: batches whose offsets run past what a segment can index.
fn write_far_reaching_segment(dir: &Path) {
    let records = encode_records(&[b"a".to_vec()]);
    let mut data = Vec::new();
    let mut base: i64 = 0;
    for _ in 0..3 {
        let mut sealed = RawBatch::claiming(Compression::Gzip, &records, i32::MAX).seal();
        sealed[..8].copy_from_slice(&base.to_be_bytes());
        data.extend_from_slice(&sealed);
        base += i64::from(i32::MAX);
    }
    std::fs::write(dir.join("00000000000000000000.log"), data).unwrap();
}

#[test]
fn recovery_of_batches_beyond_a_segments_reach_cuts_them_instead_of_panicking() {
    let dir = tempfile::tempdir().unwrap();
    write_far_reaching_segment(dir.path());
    let config = LogConfig {
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        // Two batches end at 2^32 - 3, within u32 of the base; the third reaches past it.
        assert_eq!(log.high_watermark(), 2 * i32::MAX as u64);
        let ack = log
            .append(batch(1, 2, 1_000), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!(ack.base_offset, 2 * i32::MAX as u64);
        assert_eq!(
            log.segment_base_offsets().last(),
            Some(&ack.base_offset),
            "the append rolled to a segment of its own"
        );
        let read = log.read(ack.base_offset, 1 << 20).await.unwrap();
        assert_eq!(decode_all(&read).len(), 2);
        log.close().await.unwrap();
    });
}

#[test]
fn an_idempotent_retry_after_enospc_is_never_acknowledged_with_another_producers_data() {
    let dir = tempfile::tempdir().unwrap();
    let idempotent = |producer_id: i64, value: &[u8]| {
        let mut raw = RawBatch::honest(Compression::None, &[value.to_vec()]);
        raw.producer_id = producer_id;
        raw.producer_epoch = 0;
        raw.base_sequence = 0;
        raw.seal()
    };
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        faults::stall_writes(dir.path());
        let original = runtime::spawn({
            let log = log.clone();
            let bytes = idempotent(1, b"mine");
            async move { log.append(bytes, AckLevel::Written).await }
        });
        runtime::sleep(std::time::Duration::from_millis(50)).await;
        let retry = runtime::spawn({
            let log = log.clone();
            let bytes = idempotent(1, b"mine");
            async move { log.append(bytes, AckLevel::Written).await }
        });
        runtime::sleep(std::time::Duration::from_millis(50)).await;
        // The stalled write now fails: its offsets are rewound, and another producer's batch
        // is given them.
        faults::fail_writes_after(dir.path(), 0);
        assert_eq!(original.await.unwrap(), Err(StorageError::DiskFull));
        faults::clear(dir.path());
        let other = log
            .append(idempotent(2, b"theirs"), AckLevel::Written)
            .await
            .unwrap();
        assert_eq!(
            other.base_offset, 0,
            "the failed append's offsets were reused"
        );
        let retried = retry.await.unwrap();
        assert_eq!(
            retried,
            Err(StorageError::DiskFull),
            "the retry shares its original's fate"
        );
        // The producer retries once more and is stored on its own offsets.
        let again = log
            .append(idempotent(1, b"mine"), AckLevel::Written)
            .await
            .unwrap();
        assert_eq!(again.base_offset, 1);
        let stored = read_all(&log).await;
        assert_eq!(&stored[0].1[..], b"theirs");
        assert_eq!(&stored[1].1[..], b"mine");
        log.close().await.unwrap();
    });
}
