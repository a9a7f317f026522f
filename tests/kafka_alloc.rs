//! What decoding a hostile Kafka request allocates, measured: a counting allocator records the
//! largest single allocation made on this thread while `prepare` decodes. An array whose count
//! is as large as the bytes left (so the count check lets it through) must not reserve a decoded
//! element (~100 bytes) per wire byte: no allocation may exceed a small multiple of the frame.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use ringmq::kafka::handlers::prepare;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    // try_with: the allocator also runs while thread locals are torn down.
    let _ = MEASURING.try_with(|measuring| {
        if measuring.get() {
            let _ = LARGEST.try_with(|largest| largest.set(largest.get().max(size)));
        }
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The largest single allocation while decoding `frame` (which must be refused).
fn largest_allocation_decoding(frame: Vec<u8>) -> usize {
    let frame = Bytes::from(frame);
    LARGEST.with(|largest| largest.set(0));
    MEASURING.with(|measuring| measuring.set(true));
    let decoded = prepare(frame);
    MEASURING.with(|measuring| measuring.set(false));
    assert!(decoded.is_err(), "the junk after the count is refused");
    LARGEST.with(Cell::get)
}

/// Header v1 (client id ""), then `fields`, then an array count of `count` followed by `count`
/// bytes of 0xfe: exactly as many bytes as elements, and the first (a string of length -258)
/// does not decode.
fn frame(api: ApiKey, version: i16, fields: &[u8], count: usize) -> Vec<u8> {
    let mut frame = Vec::with_capacity(count + 64);
    frame.extend_from_slice(&(api as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&1i32.to_be_bytes());
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(fields);
    frame.extend_from_slice(&(count as i32).to_be_bytes());
    frame.resize(frame.len() + count, 0xfe);
    frame
}

#[test]
fn an_array_as_long_as_the_frame_reserves_no_more_than_the_frame() {
    let count = 1 << 20;
    let mut produce_fields = (-1i16).to_be_bytes().to_vec();
    produce_fields.extend_from_slice(&1i16.to_be_bytes());
    produce_fields.extend_from_slice(&1000i32.to_be_bytes());
    let fetch_fields = [&(-1i32).to_be_bytes()[..], &[0; 13]].concat();
    let cases = [
        (ApiKey::Metadata, 1, Vec::new()),
        (ApiKey::DescribeGroups, 0, Vec::new()),
        (ApiKey::Produce, 3, produce_fields),
        (ApiKey::Fetch, 4, fetch_fields),
    ];
    for (api, version, fields) in cases {
        let frame = frame(api, version, &fields, count);
        let frame_bytes = frame.len();
        let largest = largest_allocation_decoding(frame);
        // The frame is copied at most once more; an element per byte would be ~40-100 times it.
        assert!(
            largest <= 2 * frame_bytes,
            "{api:?} v{version}: an allocation of {largest} bytes for a {frame_bytes}-byte frame"
        );
    }
}
