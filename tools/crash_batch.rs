//! The batch a crash-test writer appends for a seed. Shared by `tools/crash_writer.rs` and the
//! crash test, which rebuilds the expected bytes of every acknowledged append from its seed.

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};

/// 1 to 8 records of varied lengths, all derived from `seed`.
pub fn batch_for(seed: u64) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    for index in 0..(1 + seed % 8) {
        let value = format!(
            "crash-{seed}-{index}-{}",
            "x".repeat(((seed * 13 + index * 7) % 300) as usize)
        );
        builder.push(Record::new(
            seed as i64,
            Some(&seed.to_be_bytes()),
            Some(value.as_bytes()),
        ));
    }
    BytesMut::from(&builder.build()[..])
}
