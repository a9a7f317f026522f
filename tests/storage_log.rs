//! The partition log against real files: round trips across segment rolls, reads by offset and
//! timestamp, recovery from damaged tails, retention, disk-full and fsync failures.

mod common;

use std::fs;
use std::path::Path;

use common::{batch, batch_with, decode_all, small_config, value_for};
use ringmq::batch::{BatchError, Compression};
use ringmq::runtime::{self, faults};
use ringmq::storage::segment::{self, DATA_SUFFIX};
use ringmq::storage::{AckLevel, LogConfig, PartitionLog, StorageError};

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    runtime::block_on(PartitionLog::open(dir, config, Vec::new())).unwrap()
}

/// Appends `batches` batches of 3 records each (seed = batch number), timestamps 1000 + 10 * n.
async fn fill(log: &PartitionLog, batches: u64, level: AckLevel) {
    for seed in 0..batches {
        let ack = log
            .append(batch(seed, 3, 1000 + 10 * seed as i64), level)
            .await
            .unwrap();
        assert_eq!(ack.base_offset, seed * 3);
        assert_eq!(ack.last_offset, seed * 3 + 2);
    }
}

fn expected_value(offset: u64) -> Vec<u8> {
    value_for(offset / 3, (offset % 3) as usize)
}

#[test]
fn round_trip_across_segment_rolls_from_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), small_config(), Vec::new())
            .await
            .unwrap();
        fill(&log, 200, AckLevel::Written).await;
        assert_eq!(log.high_watermark(), 600);
        assert!(
            log.segment_count() > 5,
            "8 KiB segments roll: {} segments",
            log.segment_count()
        );
        for offset in 0..600u64 {
            let result = log.read(offset, 1).await.unwrap();
            let records = decode_all(&result);
            let wanted = records
                .iter()
                .find(|(o, _)| *o as u64 == offset)
                .expect("the batch holding the offset");
            assert_eq!(
                &wanted.1[..],
                &expected_value(offset)[..],
                "offset {offset}"
            );
            assert_eq!(
                records[0].0 as u64,
                offset / 3 * 3,
                "reads start at the batch holding the offset"
            );
        }
        // One read returns whole batches up to max_bytes, from one segment.
        let result = log.read(0, 4096).await.unwrap();
        assert!(result.size_bytes() <= 4096);
        let records = decode_all(&result);
        assert!(records.len() > 3);
        assert!(
            records.windows(2).all(|pair| pair[1].0 == pair[0].0 + 1),
            "contiguous offsets"
        );
        // At the end: nothing; past the end or before the start: out of range.
        assert!(log.read(600, 1 << 20).await.unwrap().is_empty());
        let error = log.read(601, 1 << 20).await.unwrap_err();
        assert_eq!(
            error,
            StorageError::OffsetOutOfRange {
                requested: 601,
                start: 0,
                end: 600
            }
        );
        log.close().await.unwrap();
    });
    // A verify of the whole directory finds every batch and no damage.
    let mut out = Vec::new();
    let report =
        ringmq::storage::fsck::inspect(dir.path(), ringmq::storage::fsck::Detail::Quiet, &mut out)
            .unwrap();
    assert_eq!((report.batches, report.records), (200, 600));
    assert!(report.damage.is_empty(), "{:?}", report.damage);
}

#[test]
fn read_by_timestamp_at_and_between_index_entries() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), small_config(), Vec::new())
            .await
            .unwrap();
        fill(&log, 200, AckLevel::Written).await;
        // Batch n holds timestamps 1000+10n ..= 1000+10n+2.
        for seed in [0u64, 1, 17, 63, 64, 150, 199] {
            let exact = 1000 + 10 * seed as i64;
            assert_eq!(
                log.offset_for_timestamp(exact).await.unwrap(),
                Some(seed * 3),
                "at {exact}"
            );
            // Inside a batch: the record, as Kafka answers, not the batch's first offset.
            for inside in 1..=2 {
                assert_eq!(
                    log.offset_for_timestamp(exact + inside).await.unwrap(),
                    Some(seed * 3 + inside as u64),
                    "inside, {}",
                    exact + inside
                );
            }
            // Between batches: the next batch is the first at or after the timestamp.
            let between = exact - 5;
            assert_eq!(
                log.offset_for_timestamp(between).await.unwrap(),
                Some(seed * 3),
                "between, {between}"
            );
        }
        assert_eq!(log.offset_for_timestamp(0).await.unwrap(), Some(0));
        assert_eq!(log.offset_for_timestamp(1_000_000).await.unwrap(), None);
        log.close().await.unwrap();
    });
}

#[test]
fn reopen_continues_offsets_and_serves_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let before = runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), small_config(), Vec::new())
            .await
            .unwrap();
        fill(&log, 100, AckLevel::Fsynced).await;
        let everything = read_everything(&log).await;
        log.close().await.unwrap();
        everything
    });
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), small_config(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 300);
        assert_eq!(read_everything(&log).await, before);
        let ack = log
            .append(batch(100, 3, 5000), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!(ack.base_offset, 300);
        log.close().await.unwrap();
    });
}

async fn read_everything(log: &PartitionLog) -> Vec<(i64, bytes::Bytes)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let records = decode_all(&log.read(offset, 64 * 1024).await.unwrap());
        offset = records.last().unwrap().0 as u64 + 1;
        out.extend(records);
    }
    out
}

#[test]
fn compressed_batches_are_stored_as_sent() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        let mut sent = Vec::new();
        for (seed, codec) in codecs.into_iter().enumerate() {
            let bytes = batch_with(seed as u64, 50, 7, codec);
            sent.push(bytes.clone());
            log.append(bytes, AckLevel::Written).await.unwrap();
        }
        let stored = log.read(0, 1 << 20).await.unwrap().concat();
        let mut position = 0;
        for (index, original) in sent.iter().enumerate() {
            let size = ringmq::batch::framed_size(&stored[position..]).unwrap();
            // Byte-identical but for the base offset the broker assigned.
            assert_eq!(
                &stored[position + 8..position + size],
                &original[8..],
                "batch {index}"
            );
            position += size;
        }
        let records = decode_all(&log.read(0, 1 << 20).await.unwrap());
        assert_eq!(records.len(), 250);
        assert_eq!(&records[249].1[..], &value_for(4, 49)[..]);
        log.close().await.unwrap();
    });
}

#[test]
fn invalid_batches_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let config = LogConfig {
            batch_bytes_max: 2048,
            record_bytes_max: 150,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        log.append(batch(0, 1, 1), AckLevel::Written).await.unwrap();

        let mut corrupt = batch(1, 2, 1);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let error = log.append(corrupt, AckLevel::Written).await.unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::InvalidBatch(BatchError::CrcMismatch { .. })
            ),
            "{error:?}"
        );

        let truncated = batch(1, 2, 1).split_to(40);
        let error = log.append(truncated, AckLevel::Written).await.unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::InvalidBatch(BatchError::Truncated { .. })
            ),
            "{error:?}"
        );

        let error = log
            .append(batch(2, 40, 1), AckLevel::Written)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::InvalidBatch(BatchError::BatchTooLarge { limit: 2048, .. })
            ),
            "{error:?}"
        );

        let big_seed = (0..100)
            .find(|seed| value_for(*seed, 0).len() > 160)
            .unwrap();
        let error = log
            .append(batch(big_seed, 1, 1), AckLevel::Written)
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                StorageError::InvalidBatch(BatchError::RecordTooLarge { limit: 150, .. })
            ),
            "{error:?}"
        );

        let error = log
            .append(bytes::BytesMut::new(), AckLevel::Written)
            .await
            .unwrap_err();
        assert_eq!(error, StorageError::InvalidBatch(BatchError::Empty));

        // A good batch followed by garbage in one append: refused whole.
        let mut mixed = batch(3, 1, 1);
        mixed.extend_from_slice(b"garbage that is not a batch at all......");
        assert!(log.append(mixed, AckLevel::Written).await.is_err());

        let ack = log.append(batch(0, 1, 1), AckLevel::Written).await.unwrap();
        assert_eq!(ack.base_offset, 1, "refused appends used no offsets");
        log.close().await.unwrap();
    });
}

fn data_file(dir: &Path) -> std::path::PathBuf {
    let last = *segment::list_base_offsets(dir).unwrap().last().unwrap();
    segment::file_path(dir, last, DATA_SUFFIX)
}

/// Writes 50 batches of 3 records, damages the active segment with `damage`, reopens, and
/// checks that exactly `expected_batches` survive and the next append follows them.
fn recover_after(damage: impl FnOnce(&Path), expected_batches: u64) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 512,
        ..LogConfig::default()
    };
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        fill(&log, 50, AckLevel::Written).await;
        log.close().await.unwrap();
    });
    damage(&data_file(dir.path()));
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), expected_batches * 3);
        let records = read_everything(&log).await;
        assert_eq!(records.len() as u64, expected_batches * 3);
        for (offset, value) in &records {
            assert_eq!(&value[..], &expected_value(*offset as u64)[..]);
        }
        let ack = log
            .append(batch(999, 2, 1), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!(ack.base_offset, expected_batches * 3);
        log.close().await.unwrap();
    });
    let mut out = Vec::new();
    let report =
        ringmq::storage::fsck::inspect(dir.path(), ringmq::storage::fsck::Detail::Quiet, &mut out)
            .unwrap();
    assert!(
        report.damage.is_empty(),
        "recovery left damage: {:?}",
        report.damage
    );
}

fn last_batch_start(path: &Path) -> u64 {
    let bytes = fs::read(path).unwrap();
    ringmq::batch::iter_framed(&bytes).last().unwrap().0 as u64
}

#[test]
fn recovery_cuts_a_batch_torn_in_the_middle() {
    recover_after(
        |path| {
            let cut = last_batch_start(path) + 30;
            fs::OpenOptions::new()
                .write(true)
                .open(path)
                .unwrap()
                .set_len(cut)
                .unwrap();
        },
        49,
    );
}

#[test]
fn recovery_cuts_garbage_appended_after_the_last_batch() {
    recover_after(
        |path| {
            use std::io::Write;
            let mut file = fs::OpenOptions::new().append(true).open(path).unwrap();
            file.write_all(&[0xAB; 333]).unwrap();
        },
        50,
    );
}

#[test]
fn recovery_cuts_a_last_batch_with_a_flipped_byte() {
    recover_after(
        |path| {
            let mut bytes = fs::read(path).unwrap();
            let position = last_batch_start(path) as usize + 70;
            bytes[position] ^= 0x10;
            fs::write(path, bytes).unwrap();
        },
        49,
    );
}

#[test]
fn recovery_rebuilds_missing_or_damaged_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        fill(&log, 60, AckLevel::Written).await;
        log.close().await.unwrap();
    });
    let index = segment::file_path(dir.path(), 0, segment::OFFSET_INDEX_SUFFIX);
    let time_index = segment::file_path(dir.path(), 0, segment::TIME_INDEX_SUFFIX);
    let original = (fs::read(&index).unwrap(), fs::read(&time_index).unwrap());
    assert!(
        original.0.len() >= 8 * 10,
        "the test needs a populated index"
    );
    fs::remove_file(&index).unwrap();
    let mut scrambled = original.1.clone();
    scrambled[20] ^= 0xff;
    fs::write(&time_index, &scrambled).unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 180);
        assert_eq!(
            log.offset_for_timestamp(1000 + 10 * 33).await.unwrap(),
            Some(99)
        );
        assert_eq!(decode_all(&log.read(100, 1).await.unwrap())[0].0, 99);
        log.close().await.unwrap();
    });
    assert_eq!(
        (fs::read(&index).unwrap(), fs::read(&time_index).unwrap()),
        original,
        "rebuilt exactly"
    );
}

#[test]
fn retention_by_size_deletes_only_whole_old_segments() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let config = LogConfig {
            retention_bytes_max: Some(20 * 1024),
            retention_ms: None,
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        fill(&log, 300, AckLevel::Written).await;
        let bases_before = log.segment_base_offsets();
        let size_before = log.size_bytes();
        let deleted = log.enforce_retention().unwrap();
        assert!(deleted > 0);
        let bases_after = log.segment_base_offsets();
        assert_eq!(
            &bases_before[deleted..],
            &bases_after[..],
            "the oldest segments went, in order"
        );
        assert!(
            log.size_bytes() >= 20 * 1024,
            "at least the retention size is kept"
        );
        assert!(
            log.size_bytes() < 20 * 1024 + 8 * 1024,
            "no more than one segment over it"
        );
        assert!(log.size_bytes() < size_before);
        let start = log.log_start_offset();
        assert_eq!(start, bases_after[0]);
        let error = log.read(start - 1, 100).await.unwrap_err();
        assert!(matches!(error, StorageError::OffsetOutOfRange { .. }));
        let records = decode_all(&log.read(start, 1).await.unwrap());
        assert_eq!(&records[0].1[..], &expected_value(start)[..]);
        for base in &bases_before[..deleted] {
            assert!(!segment::file_path(dir.path(), *base, DATA_SUFFIX).exists());
        }
        log.close().await.unwrap();
    });
}

#[test]
fn retention_by_age_deletes_segments_whose_newest_record_expired() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let config = LogConfig {
            retention_ms: Some(60_000),
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        let now = ringmq::storage::log::now_ms();
        // 100 old batches (an hour ago), then 100 fresh ones.
        for seed in 0..200u64 {
            let timestamp = if seed < 100 { now - 3_600_000 } else { now };
            log.append(batch(seed, 3, timestamp), AckLevel::Written)
                .await
                .unwrap();
        }
        log.enforce_retention().unwrap();
        let start = log.log_start_offset();
        // Every deleted segment was old; the segment holding the first fresh batch survives.
        assert!(start <= 300, "fresh data kept, start {start}");
        assert!(start > 0, "old segments went");
        let first = log.read(start, 1).await.unwrap();
        assert!(!first.is_empty());
        log.close().await.unwrap();
    });
}

#[test]
fn a_full_disk_fails_the_append_loses_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        fill(&log, 10, AckLevel::Fsynced).await;
        faults::fail_writes_after(dir.path(), 0);
        let error = log
            .append(batch(10, 3, 1), AckLevel::Written)
            .await
            .unwrap_err();
        assert_eq!(error, StorageError::DiskFull);
        assert_eq!(log.high_watermark(), 30, "nothing became visible");
        faults::clear(dir.path());
        let ack = log
            .append(batch(10, 3, 1100), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!(
            ack.base_offset, 30,
            "the failed append's offsets were reused"
        );
        log.close().await.unwrap();
    });
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let records = read_everything(&log).await;
        assert_eq!(records.len(), 33);
        for (offset, value) in records {
            assert_eq!(&value[..], &expected_value(offset as u64)[..]);
        }
        log.close().await.unwrap();
    });
}

#[test]
fn a_failed_fsync_fails_the_log_rather_than_lie() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        fill(&log, 2, AckLevel::Fsynced).await;
        faults::fail_next_syncs(dir.path(), 1);
        let error = log
            .append(batch(2, 3, 1), AckLevel::Fsynced)
            .await
            .unwrap_err();
        assert!(matches!(error, StorageError::Failed(_)), "{error:?}");
        let error = log
            .append(batch(3, 3, 1), AckLevel::Written)
            .await
            .unwrap_err();
        assert!(
            matches!(error, StorageError::Failed(_)),
            "no appends after a failed fsync"
        );
        faults::clear(dir.path());
        assert!(log.close().await.is_err());
    });
    // Reopening (the operator's restart) recovers what is on disk.
    let log = open(dir.path(), LogConfig::default());
    assert!(log.high_watermark() >= 6);
}

#[test]
fn the_tail_cache_serves_the_same_bytes_as_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let cached = LogConfig {
            tail_cache_bytes_max: 1 << 20,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(dir.path(), cached, Vec::new())
            .await
            .unwrap();
        fill(&log, 40, AckLevel::Written).await;
        let from_cache = log.read(30, 2000).await.unwrap();
        log.close().await.unwrap();
        let log = PartitionLog::open(
            dir.path(),
            LogConfig {
                tail_cache_bytes_max: 0,
                ..LogConfig::default()
            },
            Vec::new(),
        )
        .await
        .unwrap();
        let from_disk = log.read(30, 2000).await.unwrap();
        assert_eq!(from_cache.concat(), from_disk.concat());
        log.close().await.unwrap();
    });
}

#[test]
fn a_long_poll_wakes_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let waiting = log.clone();
        let waiter = runtime::spawn(async move {
            waiting.wait_for_data(0).await;
            waiting.high_watermark()
        });
        runtime::sleep(std::time::Duration::from_millis(20)).await;
        log.append(batch(0, 3, 1), AckLevel::Written).await.unwrap();
        assert_eq!(waiter.await.unwrap(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn concurrent_appenders_get_distinct_contiguous_offsets_at_every_ack_level() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let config = LogConfig {
            pending_bytes_max: 4096,
            batch_bytes_max: 2048,
            ..small_config()
        };
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for writer in 0..8u64 {
            let log = log.clone();
            tasks.push(runtime::spawn(async move {
                let level =
                    [AckLevel::None, AckLevel::Written, AckLevel::Fsynced][writer as usize % 3];
                let mut acks = Vec::new();
                for n in 0..50u64 {
                    acks.push(
                        log.append(batch(writer * 1000 + n, 2, 1), level)
                            .await
                            .unwrap(),
                    );
                }
                acks
            }));
        }
        let mut offsets = Vec::new();
        for task in tasks {
            for ack in task.await.unwrap() {
                offsets.push(ack.base_offset);
            }
        }
        offsets.sort_unstable();
        assert_eq!(offsets, (0..400).map(|n| n * 2).collect::<Vec<_>>());
        log.close().await.unwrap();
        assert_eq!(log.synced_offset(), 800, "close fsyncs everything");
    });
}

fn idempotent_batch(
    seed: u64,
    count: usize,
    producer_id: i64,
    epoch: i16,
    sequence: i32,
) -> bytes::BytesMut {
    let mut builder = ringmq::batch::BatchBuilder::new(Compression::None).idempotent(
        producer_id,
        epoch,
        sequence,
    );
    for index in 0..count {
        builder.push(ringmq::batch::Record::new(
            1,
            None,
            Some(&value_for(seed, index)),
        ));
    }
    bytes::BytesMut::from(&builder.build()[..])
}

#[test]
fn an_idempotent_producers_retry_is_stored_once_and_gaps_and_fenced_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let first = log
            .append(idempotent_batch(1, 3, 42, 0, 0), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!((first.base_offset, first.last_offset), (0, 2));
        // The same batch again (its acknowledgement was lost): the original offsets, stored once.
        let retry = log
            .append(idempotent_batch(1, 3, 42, 0, 0), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), (0, 2));
        assert_eq!(log.high_watermark(), 3);
        let next = log
            .append(idempotent_batch(2, 2, 42, 0, 3), AckLevel::Written)
            .await
            .unwrap();
        assert_eq!(next.base_offset, 3);
        let gap = log
            .append(idempotent_batch(3, 1, 42, 0, 9), AckLevel::Written)
            .await
            .unwrap_err();
        assert!(
            matches!(
                gap,
                StorageError::OutOfOrderSequence {
                    producer_id: 42,
                    expected: 5,
                    got: 9
                }
            ),
            "{gap:?}"
        );
        log.append(idempotent_batch(4, 1, 42, 1, 0), AckLevel::Written)
            .await
            .unwrap();
        let fenced = log
            .append(idempotent_batch(5, 1, 42, 0, 5), AckLevel::Written)
            .await
            .unwrap_err();
        assert!(
            matches!(
                fenced,
                StorageError::ProducerFenced {
                    epoch: 0,
                    current_epoch: 1,
                    ..
                }
            ),
            "{fenced:?}"
        );
        // Ordinary batches are untouched by all this.
        log.append(batch(6, 2, 1), AckLevel::Written).await.unwrap();
        log.close().await.unwrap();
    });
    runtime::block_on(async {
        // After a restart the producer's recent batches are known again from the log.
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        let end = log.high_watermark();
        let retry = log
            .append(idempotent_batch(4, 1, 42, 1, 0), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!(retry.base_offset, 5, "recognised after the restart");
        assert_eq!(log.high_watermark(), end);
        log.close().await.unwrap();
    });
}

/// A retried batch asking for `fsynced`, whose original was only written, while the flusher's
/// queue holds nothing but `written` appends: the flusher must still sync for it. (A waiter that
/// asked for a sync only when the queue was empty slept until an unrelated fsync.)
#[test]
fn a_retry_asking_for_fsynced_behind_written_appends_is_synced_without_waiting_for_another() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), LogConfig::default(), Vec::new())
            .await
            .unwrap();
        log.append(idempotent_batch(1, 3, 42, 0, 0), AckLevel::Written)
            .await
            .unwrap();
        // `join` polls the plain append first, so it is queued when the retry looks.
        let both = futures_util::future::join(
            log.append(batch(2, 2, 1), AckLevel::Written),
            log.append(idempotent_batch(1, 3, 42, 0, 0), AckLevel::Fsynced),
        );
        let (other, retry) = runtime::timeout(std::time::Duration::from_secs(20), both)
            .await
            .expect("the retry is synced without any other fsync");
        assert_eq!(other.unwrap().base_offset, 3);
        let retry = retry.unwrap();
        assert_eq!((retry.base_offset, retry.last_offset), (0, 2));
        assert!(log.synced_offset() >= 3, "synced past the retried batch");
        log.close().await.unwrap();
    });
}

#[test]
fn read_by_timestamp_finds_the_record_inside_a_compressed_batch() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), small_config(), Vec::new())
            .await
            .unwrap();
        // Five records at 5000, 5001, ... 5004 in one zstd batch, after five at 1000..=1004.
        log.append(batch(0, 5, 1000), AckLevel::Written)
            .await
            .unwrap();
        log.append(batch_with(1, 5, 5000, Compression::Zstd), AckLevel::Written)
            .await
            .unwrap();
        for (timestamp, offset) in [(1003, 3), (4000, 5), (5000, 5), (5003, 8), (5004, 9)] {
            assert_eq!(
                log.offset_for_timestamp(timestamp).await.unwrap(),
                Some(offset),
                "at {timestamp}"
            );
        }
        assert_eq!(log.offset_for_timestamp(5005).await.unwrap(), None);
        log.close().await.unwrap();
    });
}
