//! Clients that abuse a connection: pipelining fetches without reading the responses, staying
//! idle, sending half a frame, opening too many connections; and a Kafka request in flight at
//! SIGTERM. Each runs against a real broker (a spawned `ringmq serve` where memory or signals are
//! measured) on ephemeral loopback ports.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::protocol::FetchRequest;
use ringmq::runtime;
use ringmq::storage::AckLevel;

const MIB: u64 = 1 << 20;

/// A spawned `ringmq serve` with the given TOML settings; killed when dropped.
struct Served {
    child: Child,
    native: String,
    kafka: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve_with(dir: &Path, settings: &str) -> Served {
    let config = dir.join("ringmq.toml");
    std::fs::write(&config, settings).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", ""])
        .args(["--sqs-listen", ""])
        .args(["--kafka-listen", "127.0.0.1:0", "--shards", "2"])
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
    let line = loop {
        let line = lines.next().expect("serve logs before it exits").unwrap();
        if line.contains("ringmq is serving") {
            break line;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let after = |marker: &str| {
        let rest = line
            .split(marker)
            .nth(1)
            .expect("the serving line names it");
        rest.split([' ', ')']).next().unwrap().to_string()
    };
    Served {
        native: after(" address="),
        kafka: after("kafka_address=Some("),
        child,
    }
}

/// The resident set of a process, from /proc.
fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// A native request frame: length, header (api key, version 0, correlation id, no client id),
/// then `body`.
fn native_frame(api_key: u16, correlation_id: u32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&((10 + body.len()) as u32).to_be_bytes());
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&0u16.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&0u16.to_be_bytes());
    frame.extend_from_slice(body);
    frame
}

/// A native fetch frame, encoded by the library's own request encoder.
fn native_fetch(correlation_id: u32, topic: &str, offset: u64, max_bytes: u32) -> Vec<u8> {
    let request = ringmq::protocol::Request::Fetch(FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset,
        max_bytes,
        min_bytes: 1,
        max_wait_ms: 0,
    });
    request.encode(correlation_id, "abuser").concat()
}

/// A Kafka request frame with a v1 request header (client id "abuser").
fn kafka_frame(api_key: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&api_key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&6i16.to_be_bytes());
    frame.extend_from_slice(b"abuser");
    frame.extend_from_slice(body);
    let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
    framed.extend_from_slice(&frame);
    framed
}

fn kafka_string(out: &mut Vec<u8>, value: &str) {
    out.extend_from_slice(&(value.len() as i16).to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

/// A Kafka Fetch v4 of partition 0 of `topic`.
fn kafka_fetch(correlation_id: i32, topic: &str, offset: i64, max_wait_ms: i32) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    body.extend_from_slice(&max_wait_ms.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&(MIB as i32).to_be_bytes()); // max bytes
    body.push(0); // isolation level
    body.extend_from_slice(&1i32.to_be_bytes());
    kafka_string(&mut body, topic);
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes()); // partition
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&(MIB as i32).to_be_bytes()); // partition max bytes
    kafka_frame(1, 4, correlation_id, &body)
}

/// Reads one length-prefixed frame.
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).unwrap();
    let mut frame = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut frame).unwrap();
    frame
}

/// True once the broker has closed `stream` (end of stream or reset), within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut byte = [0u8; 1];
    while Instant::now() < deadline {
        match stream.read(&mut byte) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => {}
        }
    }
    false
}

/// The value of one sample on the broker's /metrics (0 when absent). The recorder is global to
/// the test process, so a count may include other tests' brokers: assert at least, not exactly.
fn metric(http_address: &str, sample: &str) -> f64 {
    let mut stream = connect(http_address);
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn closes(http_address: &str, listener: &str, reason: &str) -> f64 {
    let sample = format!(
        "ringmq_connection_closes_total{{shard=\"0\",listener=\"{listener}\",reason=\"{reason}\"}}"
    );
    metric(http_address, &sample)
}

/// `count` records of `value_bytes` each, in one uncompressed batch.
fn big_batch(seed: usize, count: usize, value_bytes: usize) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    for index in 0..count {
        let mut value = format!("{seed}-{index}-").into_bytes();
        value.resize(value_bytes, b'v');
        builder.push(Record::new(1_000, None, Some(&value)));
    }
    BytesMut::from(&builder.build()[..])
}

/// Produces one record and fetches it back on a fresh connection: the latency a well-behaved
/// client sees.
fn produce_and_fetch(address: &str, topic: &str) -> Duration {
    let started = Instant::now();
    runtime::block_on(async {
        let client = Client::connect(address).await.unwrap();
        let ack = client
            .produce(topic, Some(0), b"", AckLevel::Written, big_batch(7, 1, 100))
            .await
            .unwrap();
        let fetched = client
            .fetch(FetchRequest {
                topic: topic.into(),
                partition: 0,
                offset: ack.base_offset,
                max_bytes: 64 * 1024,
                min_bytes: 1,
                max_wait_ms: 0,
            })
            .await
            .unwrap();
        assert!(!fetched.records.is_empty(), "the record just produced");
    });
    started.elapsed()
}

#[test]
fn clients_that_pipeline_fetches_and_never_read_hold_bounded_memory() {
    const CONNECTION_BYTES_MAX: u64 = 2 * MIB;
    const SHARD_BYTES_MAX: u64 = 16 * MIB;
    const ABUSERS_PER_PROTOCOL: usize = 2;
    const FETCHES_PER_ABUSER: usize = 300;
    const RECORDS: usize = 20_000;
    const IDLE_TIMEOUT_MS: u64 = 3_000;
    let dir = tempfile::tempdir().unwrap();
    let settings = format!(
        "frame_bytes_max = {MIB}\nfetch_bytes_max = {MIB}\n\
         connection_inflight_bytes_max = {CONNECTION_BYTES_MAX}\n\
         shard_inflight_bytes_max = {SHARD_BYTES_MAX}\n\
         idle_timeout_ms = {IDLE_TIMEOUT_MS}\n\
         [topic_defaults]\ntail_cache_bytes_max = 0\n"
    );
    let served = serve_with(dir.path(), &settings);
    // About 20 MB in 40 batches of 500 records of 1 KB, so that fetches read from disk.
    runtime::block_on(async {
        let client = Client::connect(&served.native).await.unwrap();
        client.create_topic("big", 1, &[]).await.unwrap();
        for seed in 0..RECORDS / 500 {
            let batch = big_batch(seed, 500, 1000);
            client
                .produce("big", Some(0), b"", AckLevel::Written, batch)
                .await
                .unwrap();
        }
    });
    assert!(produce_and_fetch(&served.native, "big") < Duration::from_secs(5));
    let pid = served.child.id();
    let baseline = rss_bytes(pid);

    // Fetches of 1 MiB each at offsets spread over the log, pipelined, never read.
    let mut abusers = Vec::new();
    for abuser in 0..ABUSERS_PER_PROTOCOL * 2 {
        let kafka = abuser % 2 == 1;
        let mut stream = connect(if kafka { &served.kafka } else { &served.native });
        let mut frames = Vec::new();
        for n in 0..FETCHES_PER_ABUSER {
            let offset = (n * 997 + abuser * 131) % (RECORDS - 500);
            frames.extend(if kafka {
                kafka_fetch(n as i32, "big", offset as i64, 0)
            } else {
                native_fetch(n as u32, "big", offset as u64, MIB as u32)
            });
        }
        // The frames fit the socket buffers: the write completes though nothing is read.
        stream.write_all(&frames).unwrap();
        abusers.push(stream);
    }

    // The broker settles at its bound; meanwhile a well-behaved client is served promptly.
    let mut peak = 0;
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(400));
        peak = peak.max(rss_bytes(pid));
        let latency = produce_and_fetch(&served.native, "big");
        assert!(
            latency < Duration::from_secs(5),
            "well-behaved: {latency:?}"
        );
        peak = peak.max(rss_bytes(pid));
    }
    // Each abuser holds at most twice its bound and a few frames; the rest is slack for the
    // allocator and the runtime
    // (real bytes to C plus a frame, reservations to C plus one fetch, a read buffer of a frame).
    let abuser_bound = (ABUSERS_PER_PROTOCOL as u64 * 2) * (2 * CONNECTION_BYTES_MAX + 3 * MIB);
    let bound = baseline + abuser_bound + 64 * MIB;
    let unbounded = (ABUSERS_PER_PROTOCOL as u64 * 2) * FETCHES_PER_ABUSER as u64 * MIB;
    eprintln!(
        "baseline {} MiB, peak {} MiB, bound {} MiB",
        baseline / MIB,
        peak / MIB,
        bound / MIB
    );
    assert!(
        peak < bound,
        "RSS {} MiB over the bound {} MiB (baseline {} MiB; unbounded it would grow by {} MiB)",
        peak / MIB,
        bound / MIB,
        baseline / MIB,
        unbounded / MIB
    );
    // Reading nothing, they make no progress: closed once idle (reading, then writing, for
    // the idle timeout each), their answers abandoned: far less arrives than they asked for.
    std::thread::sleep(Duration::from_millis(2 * IDLE_TIMEOUT_MS + 2_000));
    for (index, mut abuser) in abusers.into_iter().enumerate() {
        let received = bytes_until_end(&mut abuser, Duration::from_secs(30));
        let asked = FETCHES_PER_ABUSER as u64 * MIB / 2;
        assert!(
            received.is_some_and(|received| received < asked),
            "abuser {index}: {received:?} bytes before the close, of about {asked} asked for"
        );
    }
    assert!(rss_bytes(pid) < bound);
}

/// The bytes `stream` still delivers before it ends, if it ends within `limit`.
fn bytes_until_end(stream: &mut TcpStream, limit: Duration) -> Option<u64> {
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + limit;
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = 0;
    while Instant::now() < deadline {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(received),
            Ok(read) => received += read as u64,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return Some(received);
            }
            Err(_) => {}
        }
    }
    None
}

#[test]
fn idle_connections_are_closed_on_both_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        shards: 1,
        idle_timeout_ms: 300,
        ..Default::default()
    };
    let broker = common::TestBroker::start_with(config);
    let handle = broker.handle.as_ref().unwrap();
    let kafka = handle.kafka_address.unwrap().to_string();
    for address in [handle.address.to_string(), kafka.clone()] {
        let opened = Instant::now();
        let mut idle = connect(&address);
        assert!(
            closed_within(&mut idle, Duration::from_secs(10)),
            "{address}"
        );
        assert!(
            opened.elapsed() >= Duration::from_millis(250),
            "not before the timeout"
        );
    }
    let http = broker.http_address();
    for listener in ["native", "kafka"] {
        assert!(
            closes(&http, listener, "idle") >= 1.0,
            "{listener}: counted"
        );
    }
    // A connection that keeps asking is not idle: ApiVersions every 100 ms for 1 s.
    let mut busy = connect(&kafka);
    for n in 0..10 {
        busy.write_all(&kafka_frame(18, 0, n, &[])).unwrap();
        let answer = read_frame(&mut busy);
        assert_eq!(&answer[0..4], &n.to_be_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_frame_sent_too_slowly_closes_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        shards: 1,
        request_read_timeout_ms: 300,
        ..Default::default()
    };
    let broker = common::TestBroker::start_with(config);
    let handle = broker.handle.as_ref().unwrap();
    let kafka = handle.kafka_address.unwrap().to_string();
    for address in [handle.address.to_string(), kafka] {
        // Slowloris: a frame of 100 bytes announced, then one byte every 50 ms (5 s in all).
        let mut slow = connect(&address);
        slow.write_all(&100u32.to_be_bytes()).unwrap();
        let started = Instant::now();
        let mut closed = false;
        for _ in 0..100 {
            if slow.write_all(&[0]).is_err() || closed_within(&mut slow, Duration::from_millis(50))
            {
                closed = true;
                break;
            }
        }
        assert!(closed, "{address}: a half-sent frame is not kept open");
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "not before the timeout"
        );
    }
    let http = broker.http_address();
    for listener in ["native", "kafka"] {
        assert!(
            closes(&http, listener, "read_timeout") >= 1.0,
            "{listener}: counted"
        );
    }
    // A client streaming whole frames in pieces, one frame always begun, each finished within
    // the timeout, is served however long it goes on (2 s here).
    let mut steady = connect(&handle.address.to_string());
    let frames: Vec<u8> = (0..30).flat_map(|n| native_frame(0, n, &[])).collect();
    for piece in frames.chunks(10) {
        steady.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    for n in 0..30u32 {
        let answer = read_frame(&mut steady);
        assert_eq!(&answer[0..4], &n.to_be_bytes());
    }
}

/// A Kafka Fetch (v4) of partition 0 of `topic` named `entries` times at `partition_max_bytes`.
fn kafka_fetch_repeated(
    correlation_id: i32,
    topic: &str,
    entries: i32,
    partition_max_bytes: i32,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes());
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes());
    body.extend_from_slice(&i32::MAX.to_be_bytes());
    body.push(0);
    body.extend_from_slice(&1i32.to_be_bytes());
    kafka_string(&mut body, topic);
    body.extend_from_slice(&entries.to_be_bytes());
    for _ in 0..entries {
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&0i64.to_be_bytes());
        body.extend_from_slice(&partition_max_bytes.to_be_bytes());
    }
    kafka_frame(1, 4, correlation_id, &body)
}

#[test]
fn a_kafka_fetch_whose_reads_could_exceed_the_shard_bound_is_refused_and_a_wide_one_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::TestBroker::start(dir.path(), 1);
    let handle = broker.handle.as_ref().unwrap();
    runtime::block_on(async {
        let client = Client::connect(&handle.address.to_string()).await.unwrap();
        client.create_topic("wide", 1, &[]).await.unwrap();
    });
    let kafka = handle.kafka_address.unwrap().to_string();
    // 20 entries at 16 MiB: a wave of 16 reads of 16 MiB, plus the response's own 16 MiB
    // budget and overrun, is over the default shard bound of 256 MiB.
    let mut greedy = connect(&kafka);
    greedy
        .write_all(&kafka_fetch_repeated(9, "wide", 20, 16 * MIB as i32))
        .unwrap();
    assert_eq!(
        bytes_until_end(&mut greedy, Duration::from_secs(10)),
        Some(0),
        "closed without an answer"
    );
    // 300 entries at 1 MiB: bounded by the request's budget, not its entry count, so served.
    let mut wide = connect(&kafka);
    wide.write_all(&kafka_fetch_repeated(10, "wide", 300, MIB as i32))
        .unwrap();
    assert_eq!(&read_frame(&mut wide)[0..4], &10i32.to_be_bytes());
    let mut narrow = connect(&kafka);
    narrow.write_all(&kafka_fetch(11, "wide", 0, 0)).unwrap();
    assert_eq!(&read_frame(&mut narrow)[0..4], &11i32.to_be_bytes());
}

#[test]
fn the_connection_cap_counts_kafka_connections_too() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        shards: 1,
        connections_per_shard_max: 2,
        ..Default::default()
    };
    let broker = common::TestBroker::start_with(config);
    let handle = broker.handle.as_ref().unwrap();
    let (native, kafka) = (
        handle.address.to_string(),
        handle.kafka_address.unwrap().to_string(),
    );
    // One Kafka connection and one native one, both served: the shard is at its cap.
    let mut first = connect(&kafka);
    first.write_all(&kafka_frame(18, 0, 1, &[])).unwrap();
    assert_eq!(&read_frame(&mut first)[0..4], &1i32.to_be_bytes());
    let mut second = connect(&native);
    second.write_all(&native_frame(0, 2, &[])).unwrap();
    assert_eq!(&read_frame(&mut second)[0..4], &2u32.to_be_bytes());
    // A third, on either listener, is closed at once.
    for address in [&kafka, &native] {
        let mut refused = connect(address);
        assert!(
            closed_within(&mut refused, Duration::from_secs(5)),
            "{address}: over the cap"
        );
    }
    let http = broker.http_address();
    for listener in ["native", "kafka"] {
        assert!(
            closes(&http, listener, "refused") >= 1.0,
            "{listener}: counted"
        );
    }
    // Once one leaves, a new Kafka connection is served again.
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect(&kafka);
        if again.write_all(&kafka_frame(18, 0, 3, &[])).is_ok() {
            let mut prefix = [0u8; 4];
            if again.read_exact(&mut prefix).is_ok() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "a freed place is taken again");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn kafka_requests_in_flight_at_sigterm_are_answered() {
    const FETCHES: i32 = 20;
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_with(dir.path(), "");
    runtime::block_on(async {
        let client = Client::connect(&served.native).await.unwrap();
        client.create_topic("drain", 1, &[]).await.unwrap();
        for seed in 0..FETCHES as usize {
            let batch = big_batch(seed, 500, 1000);
            client
                .produce("drain", Some(0), b"", AckLevel::Written, batch)
                .await
                .unwrap();
        }
    });
    // 20 fetches of about 1 MB each: more than the sockets buffer, so most of the answers are
    // still in the broker when SIGTERM comes, and the client reads them only a second later.
    let mut kafka = connect(&served.kafka);
    let mut frames = Vec::new();
    for n in 0..FETCHES {
        frames.extend(kafka_fetch(n, "drain", i64::from(n) * 500, 0));
    }
    kafka.write_all(&frames).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_secs(1));
    for n in 0..FETCHES {
        let answer = try_read_frame(&mut kafka).unwrap_or_else(|| panic!("answer {n} is cut"));
        assert_eq!(&answer[0..4], &n.to_be_bytes(), "in order");
        assert!(answer.len() > 500_000, "answer {n} carries its records");
    }
    let exit = served.child.wait().unwrap();
    assert!(exit.success(), "a clean shutdown: {exit:?}");
}

/// Reads one frame; None at the end of the stream.
fn try_read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut prefix = [0u8; 4];
    stream.read_exact(&mut prefix).ok()?;
    let mut frame = vec![0u8; u32::from_be_bytes(prefix) as usize];
    stream.read_exact(&mut frame).ok()?;
    Some(frame)
}

#[test]
fn long_polls_filling_the_shard_bound_do_not_hold_back_the_produce_they_wait_for() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        kafka_listen: String::new(),
        http_listen: String::new(),
        shards: 1,
        frame_bytes_max: MIB as usize,
        fetch_bytes_max: MIB as u32,
        connection_inflight_bytes_max: 2 * MIB as usize,
        shard_inflight_bytes_max: 4 * MIB as usize,
        ..Default::default()
    };
    let broker = common::TestBroker::start_with(config);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("awaited", 1, &[]).await.unwrap();
    });
    // Three connections with two long polls each (20 s, 1 MiB): their reservations fill the shard.
    let mut pollers: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut poller = connect(&address);
            let mut frames = Vec::new();
            for n in 0..2 {
                let request = ringmq::protocol::Request::Fetch(FetchRequest {
                    topic: "awaited".into(),
                    partition: 0,
                    offset: 0,
                    max_bytes: MIB as u32,
                    min_bytes: 1,
                    max_wait_ms: 20_000,
                });
                frames.extend(request.encode(n, "poller").concat());
            }
            poller.write_all(&frames).unwrap();
            poller
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client
            .produce(
                "awaited",
                Some(0),
                b"",
                AckLevel::Written,
                big_batch(1, 1, 100),
            )
            .await
            .unwrap();
    });
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the produce waited {:?}",
        started.elapsed()
    );
    // The long polls end with the record, all of them well before their 20 s.
    for poller in &mut pollers {
        for n in 0..2u32 {
            let answer = read_frame(poller);
            assert_eq!(&answer[0..4], &n.to_be_bytes());
            assert_eq!(&answer[4..6], &[0, 0], "no error");
        }
    }
    assert!(started.elapsed() < Duration::from_secs(10));
}
