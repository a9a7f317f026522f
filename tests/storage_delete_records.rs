//! Moving a partition log's start forward (Kafka's DeleteRecords) on real files: reads below
//! the new start are out of range, lookups by time answer from the start, the segments wholly
//! below it are deleted, and the start survives a reopen, even one after a torn tail.

mod common;

use std::fs;
use std::time::Duration;

use common::{batch, decode_all, small_config};
use ringmq::runtime;
use ringmq::storage::segment::{self, DATA_SUFFIX};
use ringmq::storage::{AckLevel, LogConfig, PartitionLog, StorageError};

/// Appends `batches` batches of 3 records (offsets 3n..3n+2, timestamps 1000 + 10n).
async fn fill(log: &PartitionLog, batches: u64) {
    for seed in 0..batches {
        log.append(batch(seed, 3, 1000 + 10 * seed as i64), AckLevel::Written)
            .await
            .unwrap();
    }
}

fn config() -> LogConfig {
    LogConfig {
        retention_check_interval_ms: 20,
        // The records are from 1970: only the new start may delete segments here.
        retention_ms: None,
        ..small_config()
    }
}

#[test]
fn a_new_start_refuses_reads_below_it_deletes_whole_segments_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config(), Vec::new())
            .await
            .unwrap();
        fill(&log, 200).await;
        assert_eq!(log.high_watermark(), 600);
        let bases = log.segment_base_offsets();
        assert!(bases.len() > 4, "8 KiB segments roll: {bases:?}");
        // A start inside the third segment: the first two lie wholly below it.
        let start = bases[2] + 1;
        assert_eq!(log.delete_records_before(start).await.unwrap(), start);
        assert_eq!(log.log_start_offset(), start);
        let below = log.read(start - 1, 100).await.unwrap_err();
        assert!(
            matches!(below, StorageError::OffsetOutOfRange { requested, start: s, end: 600 } if requested == start - 1 && s == start),
            "{below:?}"
        );
        let at = log.read(start, 1).await.unwrap();
        assert_eq!(at.log_start_offset, start);
        assert!(
            decode_all(&at)
                .iter()
                .any(|(offset, _)| *offset as u64 == start),
            "the record at the start is read"
        );
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap(),
            Some(start),
            "a lookup by time answers no record below the start"
        );
        assert_eq!(
            log.delete_records_before(3).await.unwrap(),
            start,
            "an offset below the start changes nothing"
        );
        let past = log.delete_records_before(601).await.unwrap_err();
        assert!(
            matches!(past, StorageError::OffsetOutOfRange { .. }),
            "{past:?}"
        );
        // Retention, woken by the new start, deletes the two segments below it.
        for _ in 0..200 {
            let gone = !segment::file_path(dir.path(), bases[1], DATA_SUFFIX).exists();
            if gone && log.segment_base_offsets()[0] == bases[2] {
                break;
            }
            runtime::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(log.segment_base_offsets()[0], bases[2]);
        for base in &bases[..2] {
            assert!(!segment::file_path(dir.path(), *base, DATA_SUFFIX).exists());
        }
        assert!(segment::file_path(dir.path(), bases[2], DATA_SUFFIX).exists());
        log.close().await.unwrap();
    });
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config(), Vec::new())
            .await
            .unwrap();
        let start = log.segment_base_offsets()[0] + 1;
        assert_eq!(log.log_start_offset(), start, "the start survives a reopen");
        assert!(log.read(start - 1, 100).await.is_err());
        assert_eq!(log.delete_records_before(600).await.unwrap(), 600);
        assert_eq!(log.log_start_offset(), 600, "the high watermark itself");
        assert!(log.read(600, 100).await.unwrap().is_empty());
        log.append(batch(200, 3, 5000), AckLevel::Written)
            .await
            .unwrap();
        assert_eq!(decode_all(&log.read(600, 100).await.unwrap())[0].0, 600);
        log.close().await.unwrap();
    });
}

#[test]
fn a_start_past_a_torn_tail_is_brought_back_to_the_end() {
    let dir = tempfile::tempdir().unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config(), Vec::new())
            .await
            .unwrap();
        fill(&log, 10).await;
        assert_eq!(log.delete_records_before(30).await.unwrap(), 30);
        log.close().await.unwrap();
    });
    // The last batch torn away (never fsynced): the log ends at 27, below the start kept.
    let active = *segment::list_base_offsets(dir.path())
        .unwrap()
        .last()
        .unwrap();
    let path = segment::file_path(dir.path(), active, DATA_SUFFIX);
    let size = fs::metadata(&path).unwrap().len();
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(size - 10).unwrap();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config(), Vec::new())
            .await
            .unwrap();
        assert_eq!(log.high_watermark(), 27);
        assert_eq!(log.log_start_offset(), 27, "never past the end");
        let ack = log
            .append(batch(9, 3, 5000), AckLevel::Written)
            .await
            .unwrap();
        assert_eq!(ack.base_offset, 27);
        log.close().await.unwrap();
    });
}
