//! Helpers shared by the integration tests: record batches with content derived from a seed, so
//! that a test can rebuild the exact bytes it expects to read back.

#![allow(dead_code)]

pub mod clients;
pub mod kafka_wire;

/// Where tools/test installs the Kafka clients of other projects.
pub fn clients_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

use bytes::{Bytes, BytesMut};
use ringmq::batch::{BatchBuilder, Compression, Record, records};
use ringmq::storage::{LogConfig, ReadResult};

/// The value of record `index` of batch `seed`: varied lengths, content that names its origin.
pub fn value_for(seed: u64, index: usize) -> Vec<u8> {
    let length = 20 + (seed as usize * 31 + index * 17) % 180;
    let mut value = format!("batch-{seed}-record-{index}-").into_bytes();
    value.resize(length.max(value.len()), b'a' + (seed % 26) as u8);
    value
}

/// A batch of `count` records for `seed`, with timestamps `timestamp_ms`, +1, +2, ...
pub fn batch(seed: u64, count: usize, timestamp_ms: i64) -> BytesMut {
    batch_with(seed, count, timestamp_ms, Compression::None)
}

pub fn batch_with(
    seed: u64,
    count: usize,
    timestamp_ms: i64,
    compression: Compression,
) -> BytesMut {
    let mut builder = BatchBuilder::new(compression);
    for index in 0..count {
        let key = format!("key-{}", index % 7);
        builder.push(Record::new(
            timestamp_ms + index as i64,
            Some(key.as_bytes()),
            Some(&value_for(seed, index)),
        ));
    }
    BytesMut::from(&builder.build()[..])
}

/// Every record in a read, as (offset, value).
pub fn decode_all(result: &ReadResult) -> Vec<(i64, Bytes)> {
    let bytes = result.concat();
    let mut out = Vec::new();
    let mut position = 0;
    while position < bytes.len() {
        let size = ringmq::batch::framed_size(&bytes[position..]).unwrap();
        for stored in records::decode(&bytes[position..position + size]).unwrap() {
            out.push((stored.offset, stored.record.value.unwrap()));
        }
        position += size;
    }
    out
}

/// Small segments and a dense index, so that a few kilobytes exercise rolls and lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 * 1024,
        index_interval_bytes: 512,
        tail_cache_bytes_max: 0,
        flush_interval_ms: None,
        ..LogConfig::default()
    }
}

/// A broker on ephemeral loopback ports with its data in a temporary directory.
pub struct TestBroker {
    pub handle: Option<ringmq::server::ServerHandle>,
    pub config: ringmq::config::BrokerConfig,
}

impl TestBroker {
    pub fn start(dir: &std::path::Path, shards: usize) -> TestBroker {
        let config = ringmq::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            http_listen: "127.0.0.1:0".into(),
            kafka_listen: "127.0.0.1:0".into(),
            shards,
            ..Default::default()
        };
        Self::start_with(config)
    }

    pub fn start_with(config: ringmq::config::BrokerConfig) -> TestBroker {
        let handle = ringmq::server::start(config.clone()).expect("the broker starts");
        TestBroker {
            handle: Some(handle),
            config,
        }
    }

    pub fn address(&self) -> String {
        self.handle.as_ref().unwrap().address.to_string()
    }

    pub fn http_address(&self) -> String {
        self.handle
            .as_ref()
            .unwrap()
            .http_address
            .unwrap()
            .to_string()
    }

    /// Stops the broker (every log fsynced and closed) and starts it again on the same data.
    pub fn restart(&mut self) {
        self.handle.take().unwrap().shutdown();
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".into();
        config.kafka_listen = "127.0.0.1:0".into();
        self.handle = Some(ringmq::server::start(config).expect("the broker restarts"));
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // While a failed assertion unwinds, leave the broker's threads be: the test has failed
        // and the process ends; a shutdown here would only hide the assertion's message.
        if std::thread::panicking() {
            return;
        }
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

/// Starts `ringmq serve` on ephemeral ports and returns it with its native protocol address,
/// read from its "serving" log line.
pub fn serve(dir: &std::path::Path) -> (std::process::Child, String) {
    serve_with_env(dir, &[])
}

/// `serve` with extra environment variables (test-only fault hooks, settings).
pub fn serve_with_env(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let (child, address, _log) = serve_capturing(dir, env);
    (child, address)
}

/// `serve` on a given native address (to restart a broker where its clients expect it).
pub fn serve_listening(dir: &std::path::Path, listen: &str) -> (std::process::Child, String) {
    let (child, address, _log) = serve_process(dir, &[], listen);
    (child, address)
}

/// `serve_with_env` that also keeps every line the server logs (its stderr), for assertions.
pub fn serve_capturing(
    dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    serve_process(dir, env, "127.0.0.1:0")
}

fn serve_process(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    listen: &str,
) -> (
    std::process::Child,
    String,
    std::sync::Arc<std::sync::Mutex<String>>,
) {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .envs(env.iter().copied())
        .args([
            "serve",
            "--listen",
            listen,
            "--http-listen",
            "",
            "--kafka-listen",
            "",
            "--sqs-listen",
            "",
            "--shards",
            "2",
        ])
        .arg("--data-dir")
        .arg(dir)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let address = loop {
        let line = lines.next().expect("serve logs before it exits").unwrap();
        log.lock().unwrap().push_str(&line);
        log.lock().unwrap().push('\n');
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let mut kept = kept.lock().unwrap();
            kept.push_str(&line);
            kept.push('\n');
        }
    });
    (child, address, log)
}

/// A tool a test needs beyond cargo (promtool, systemd-analyze) could not be run: under
/// tools/test (or CI) that fails the test; by hand, the check is skipped with a word on stderr.
pub fn tool_missing(tool: &str, error: &std::io::Error) {
    if std::env::var_os("RINGMQ_TEST_TOOLS").is_some() || std::env::var_os("CI").is_some() {
        panic!("{tool} is required (tools/test installs it): {error}");
    }
    eprintln!("{tool} not installed: skipped its check (tools/test installs it)");
}

/// Writes `bytes` over `request` at `at` (wrapped into its length), cut at its end: the one
/// in-place mutation the request fuzzers share.
pub fn overwrite(request: &mut [u8], at: usize, bytes: &[u8]) {
    if request.is_empty() {
        return;
    }
    let at = at % request.len();
    let end = (at + bytes.len()).min(request.len());
    request[at..end].copy_from_slice(&bytes[..end - at]);
}

/// The broker's /metrics page.
pub fn scrape(http_address: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(http_address).unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The `ringmq` binary this package built, as a command to add arguments to.
pub fn ringmq_command() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
}

/// Runs `command` with `stdin` written to it (from a thread, so a command that writes before
/// it has read everything cannot block on a full pipe); returns (exit code, stdout bytes,
/// stderr text).
pub fn run_with_bytes(command: &mut std::process::Command, stdin: &[u8]) -> (i32, Vec<u8>, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || input.write_all(&stdin));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    (
        output.status.code().unwrap_or(-1),
        output.stdout,
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// `run_with_bytes` with text in and out.
pub fn run_with_stdin(command: &mut std::process::Command, stdin: &str) -> (i32, String, String) {
    let (code, stdout, stderr) = run_with_bytes(command, stdin.as_bytes());
    (code, String::from_utf8(stdout).unwrap(), stderr)
}

/// The value of one sample on /metrics (0 when absent); `sample` ends where the value starts.
pub fn metric(http_address: &str, sample: &str) -> f64 {
    scrape(http_address)
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// One publish through a fanout exchange `x` to `topic` and one direct request/reply on
/// `client`'s connection: what makes the routing and request/reply metrics appear.
pub async fn routing_and_reply_workload(client: &ringmq::client::Client, topic: &str) {
    use ringmq::protocol::replies::ReplyMode;
    use ringmq::protocol::routing::{BindingSpec, ExchangeType};
    client
        .create_exchange("x", ExchangeType::Fanout, None)
        .await
        .unwrap();
    let binding = BindingSpec {
        destination: topic.into(),
        ..Default::default()
    };
    client.bind("x", binding).await.unwrap();
    let record = || Record::new(1, None, Some(b"y"));
    let acks = ringmq::storage::AckLevel::Written;
    client
        .publish("x", "", vec![record()], acks, false)
        .await
        .unwrap();
    let reply_to = client.declare_reply_to(ReplyMode::Direct).await.unwrap();
    let wait = std::time::Duration::from_secs(10);
    client
        .send_request(topic, (&reply_to, "c"), record(), wait)
        .await
        .unwrap();
    client.reply(&reply_to, "c", record()).await.unwrap();
}

/// Every record of partition 0 of `topic`, in offset order, over the native protocol.
pub async fn fetch_records(
    client: &ringmq::client::Client,
    topic: &str,
) -> ringmq::client::Result<Vec<Record>> {
    fetch_records_at(client, topic, 0, 0).await
}

/// The records of `topic`'s partition 0 from `offset`, waiting up to `max_wait_ms` for some.
pub async fn fetch_records_at(
    client: &ringmq::client::Client,
    topic: &str,
    offset: u64,
    max_wait_ms: u32,
) -> ringmq::client::Result<Vec<Record>> {
    let fetched = client
        .fetch(ringmq::protocol::FetchRequest {
            topic: topic.into(),
            partition: 0,
            offset,
            max_bytes: 1 << 20,
            min_bytes: 0,
            max_wait_ms,
        })
        .await?;
    let bytes: Vec<u8> = fetched.records.concat();
    Ok(ringmq::batch::iter_framed(&bytes)
        .flat_map(|(_, batch)| records::decode(batch).unwrap())
        .filter(|stored| u64::try_from(stored.offset).is_ok_and(|at| at >= offset))
        .map(|stored| stored.record)
        .collect())
}
