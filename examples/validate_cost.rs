use std::time::Instant;
use ringmq::batch::{self, BatchBuilder, Compression, Record};
fn main() {
    for record in [100usize, 1024] {
        let mut b = BatchBuilder::new(Compression::None);
        let v = vec![b'v'; record];
        while b.size_bytes() + record + 8 <= 1 << 20 { b.push(Record::new(1, None, Some(&v))); }
        let bytes = b.build();
        let n = 200;
        let t = Instant::now();
        for _ in 0..n { batch::validate(&bytes, batch::Limits::UNLIMITED).unwrap(); }
        let full = t.elapsed().as_secs_f64() / n as f64;
        let t = Instant::now();
        for _ in 0..n { batch::verify_crc(&bytes).unwrap(); }
        let crc = t.elapsed().as_secs_f64() / n as f64;
        let t = Instant::now();
        for _ in 0..n { let c = bytes::BytesMut::from(&bytes[..]); std::hint::black_box(c); }
        let copy = t.elapsed().as_secs_f64() / n as f64;
        println!("record {record} B, 1 MiB batch: validate {:.0} us ({:.1} GB/s), crc only {:.0} us ({:.1} GB/s), copy {:.0} us", full*1e6, 1.048/full/1e3, crc*1e6, 1.048/crc/1e3, copy*1e6);
    }
}
