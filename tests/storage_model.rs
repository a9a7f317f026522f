//! A property test of the partition log against an in-memory model: random appends (varied
//! sizes and ack levels, so segments roll), reads from random offsets with random size limits,
//! timestamp lookups and reopens. Every read must return exactly what the model holds.

mod common;

use common::{batch, decode_all, value_for};
use proptest::prelude::*;
use ringmq::runtime;
use ringmq::storage::{AckLevel, LogConfig, PartitionLog};

#[derive(Clone, Debug)]
enum Op {
    Append {
        records: usize,
        level: u8,
    },
    Read {
        offset_permille: u16,
        max_bytes: usize,
    },
    ByTimestamp {
        batch_permille: u16,
    },
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..12, 0u8..3).prop_map(|(records, level)| Op::Append { records, level }),
        3 => (0u16..1001, 1usize..6000).prop_map(|(offset_permille, max_bytes)| Op::Read { offset_permille, max_bytes }),
        1 => (0u16..1001).prop_map(|batch_permille| Op::ByTimestamp { batch_permille }),
        1 => Just(Op::Reopen),
    ]
}

/// The model: for every offset, the seed and index its record came from; per batch, its first
/// offset and timestamp.
#[derive(Default)]
struct Model {
    records: Vec<(u64, usize)>,
    batches: Vec<(u64, i64)>,
}

fn config(direct_io: bool) -> LogConfig {
    LogConfig {
        direct_io,
        segment_bytes_max: 4096,
        index_interval_bytes: 300,
        tail_cache_bytes_max: 2048,
        flush_interval_ms: None,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_log_behaves_like_a_vector_of_records(ops in proptest::collection::vec(op(), 1..80), direct_io in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        runtime::block_on(async {
            let mut model = Model::default();
            let mut log = PartitionLog::open(dir.path(), config(direct_io), Vec::new()).await.unwrap();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Append { records, level } => {
                        let seed = step as u64;
                        let timestamp = 10_000 + 100 * model.batches.len() as i64;
                        let level = [AckLevel::None, AckLevel::Written, AckLevel::Fsynced][level as usize];
                        let ack = log.append(batch(seed, records, timestamp), level).await.unwrap();
                        assert_eq!(ack.base_offset, model.records.len() as u64);
                        model.batches.push((ack.base_offset, timestamp));
                        model.records.extend((0..records).map(|index| (seed, index)));
                    }
                    Op::Read { offset_permille, max_bytes } => {
                        if model.records.is_empty() { continue; }
                        // Let none-acked appends land before reading them.
                        log.wait_for_data(model.records.len() as u64 - 1).await;
                        let offset = (model.records.len() as u64 - 1) * u64::from(offset_permille) / 1000;
                        let result = log.read(offset, max_bytes).await.unwrap();
                        let got = decode_all(&result);
                        assert!(!got.is_empty(), "a read below the high watermark returns a batch");
                        assert!(got[0].0 as u64 <= offset && got.iter().any(|(o, _)| *o as u64 == offset));
                        for (record_offset, value) in got {
                            let (seed, index) = model.records[record_offset as usize];
                            assert_eq!(&value[..], &value_for(seed, index)[..], "offset {record_offset}");
                        }
                    }
                    Op::ByTimestamp { batch_permille } => {
                        if model.batches.is_empty() { continue; }
                        log.wait_for_data(model.records.len() as u64 - 1).await;
                        let index = (model.batches.len() - 1) * usize::from(batch_permille) / 1000;
                        let (offset, timestamp) = model.batches[index];
                        assert_eq!(log.offset_for_timestamp(timestamp).await.unwrap(), Some(offset));
                        assert_eq!(log.offset_for_timestamp(timestamp - 50).await.unwrap(), Some(offset));
                    }
                    Op::Reopen => {
                        log.close().await.unwrap();
                        log = PartitionLog::open(dir.path(), config(direct_io), Vec::new()).await.unwrap();
                        assert_eq!(log.high_watermark(), model.records.len() as u64);
                    }
                }
            }
            log.close().await.unwrap();
        });
    }
}
