//! The machine's own limits, measured in the same run as the brokers so every throughput can be
//! read as a fraction of what the hardware gave at that moment: sequential writes into the page
//! cache, sequential writes with an fdatasync per block, small appends each fdatasync'd, and one
//! loopback TCP stream.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::measure::{histogram, percentiles_ms};

const BLOCK_BYTES: usize = 1 << 20;
const SMALL_APPEND_BYTES: usize = 4096;
const TCP_WRITE_BYTES: usize = 128 * 1024;

/// Measures each limit on `dir`'s file system, writing `bytes` per sequential test.
pub fn measure(dir: &Path, bytes: u64, seconds: Duration) -> std::io::Result<serde_json::Value> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("ringmq-limits.dat");
    let page_cache = sequential_write(&path, bytes, false)?;
    let fdatasync = sequential_write(&path, bytes / 2, true)?;
    let (fsyncs_per_s, append_latency) = small_appends(&path, seconds)?;
    let _ = std::fs::remove_file(&path);
    let loopback = loopback_tcp(seconds)?;
    let latency = percentiles_ms(&append_latency);
    Ok(serde_json::json!({
        "sequentialWriteMBps": page_cache,
        "sequentialWriteFdatasyncMBps": fdatasync,
        "append4KiBFdatasyncPerSecond": fsyncs_per_s,
        "append4KiBFdatasyncLatency50pct": latency[1],
        "append4KiBFdatasyncLatency99pct": latency[2],
        "loopbackTcpMBps": loopback,
        "blockBytes": BLOCK_BYTES,
        "bytesWritten": bytes,
    }))
}

/// MB/s of `bytes` written in 1 MiB blocks into a fresh file, timed until the last write (or
/// the last fdatasync) returns.
fn sequential_write(path: &Path, bytes: u64, fdatasync_each: bool) -> std::io::Result<f64> {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    let block = vec![0x5au8; BLOCK_BYTES];
    let started = Instant::now();
    let mut written = 0u64;
    while written < bytes {
        file.write_all_at(&block, written)?;
        if fdatasync_each {
            file.sync_data()?;
        }
        written += BLOCK_BYTES as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(path)?;
    Ok(written as f64 / seconds / 1e6)
}

/// fdatasyncs per second of 4 KiB appends, one fdatasync each, and their latency.
fn small_appends(
    path: &Path,
    seconds: Duration,
) -> std::io::Result<(f64, hdrhistogram::Histogram<u64>)> {
    let _ = std::fs::remove_file(path);
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    let block = vec![0xa5u8; SMALL_APPEND_BYTES];
    let mut latency = histogram();
    let started = Instant::now();
    let mut position = 0u64;
    while started.elapsed() < seconds {
        let append_started = Instant::now();
        file.write_all_at(&block, position)?;
        file.sync_data()?;
        let _ = latency.record(append_started.elapsed().as_nanos() as u64);
        position += SMALL_APPEND_BYTES as u64;
    }
    Ok((
        latency.len() as f64 / started.elapsed().as_secs_f64(),
        latency,
    ))
}

/// MB/s through one loopback TCP connection in 128 KiB writes.
fn loopback_tcp(seconds: Duration) -> std::io::Result<f64> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let reader = std::thread::spawn(move || -> std::io::Result<u64> {
        let (mut stream, _) = listener.accept()?;
        let mut buffer = vec![0u8; TCP_WRITE_BYTES];
        let mut total = 0u64;
        loop {
            match stream.read(&mut buffer)? {
                0 => return Ok(total),
                n => total += n as u64,
            }
        }
    });
    let mut stream = std::net::TcpStream::connect(address)?;
    let block = vec![0u8; TCP_WRITE_BYTES];
    let started = Instant::now();
    while started.elapsed() < seconds {
        stream.write_all(&block)?;
    }
    drop(stream);
    let received = reader.join().expect("the reader does not panic")?;
    Ok(received as f64 / started.elapsed().as_secs_f64() / 1e6)
}
