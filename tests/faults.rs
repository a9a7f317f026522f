//! Faults are contained and visible: a shard panic ends the whole process (crash-only) and a
//! restart recovers every acknowledged record; a log whose disk never answers cannot hang the
//! shutdown; start-up that cannot complete exits non-zero with the reason.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::protocol::FetchRequest;
use ringmq::runtime;
use ringmq::storage::AckLevel;

use common::{TestBroker, serve, serve_capturing};

fn record(value: &[u8]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(Record::new(1_000, None, Some(value)));
    BytesMut::from(&builder.build()[..])
}

/// Every value in `topic`'s partitions 0..partitions, read from offset 0.
async fn read_values(client: &Client, topic: &str, partitions: u32) -> Vec<Vec<u8>> {
    let mut values = Vec::new();
    for partition in 0..partitions {
        let mut offset = 0;
        loop {
            let request = FetchRequest {
                topic: topic.into(),
                partition,
                offset,
                max_bytes: 1 << 20,
                min_bytes: 0,
                max_wait_ms: 0,
            };
            let response = client.fetch(request).await.unwrap();
            let bytes: Vec<u8> = response.records.iter().flat_map(|c| c.to_vec()).collect();
            if bytes.is_empty() {
                break;
            }
            let mut position = 0;
            while position < bytes.len() {
                let size = ringmq::batch::framed_size(&bytes[position..]).unwrap();
                for stored in
                    ringmq::batch::records::decode(&bytes[position..position + size]).unwrap()
                {
                    offset = stored.offset as u64 + 1;
                    values.push(stored.record.value.unwrap().to_vec());
                }
                position += size;
            }
        }
    }
    values.sort();
    values
}

fn wait_for_exit(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(started.elapsed() < limit, "the broker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_shard_panic_ends_the_process_and_a_restart_recovers_every_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address, log) =
        serve_capturing(dir.path(), &[("RINGMQ_TEST_PANIC_ON_PRODUCE", "boom")]);
    let expected: Vec<Vec<u8>> = runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("kept", 4, &[]).await.unwrap();
        client.create_topic("boom", 2, &[]).await.unwrap();
        let mut expected = Vec::new();
        for n in 0..200u32 {
            let value = format!("acknowledged-{n:04}").into_bytes();
            client
                .produce("kept", Some(n % 4), b"", AckLevel::Fsynced, record(&value))
                .await
                .unwrap();
            expected.push(value);
        }
        // Both partitions, so that the owner is each shard in turn: whichever it is, it dies.
        let outcome = client
            .produce("boom", Some(0), b"", AckLevel::Fsynced, record(b"x"))
            .await;
        assert!(outcome.is_err(), "the panicking shard answers nothing");
        expected.sort();
        expected
    });
    let status = wait_for_exit(&mut server, Duration::from_secs(20));
    assert_eq!(
        status.signal(),
        Some(libc::SIGABRT),
        "a shard panic aborts the process: {status:?}"
    );
    let logged = log.lock().unwrap().clone();
    assert!(
        logged.contains("test fault: RINGMQ_TEST_PANIC_ON_PRODUCE=boom"),
        "the panic is in the log:\n{logged}"
    );
    assert!(logged.contains("a shard panicked"), "{logged}");

    let (mut restarted, address) = serve(dir.path());
    let recovered = runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        read_values(&client, "kept", 4).await
    });
    assert_eq!(
        recovered, expected,
        "every acknowledged record after restart"
    );
    unsafe { libc::kill(restarted.id() as i32, libc::SIGTERM) };
    assert!(wait_for_exit(&mut restarted, Duration::from_secs(30)).success());
}

#[test]
fn shutdown_finishes_when_a_log_never_answers() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        shutdown_grace_ms: 300,
        ..Default::default()
    };
    let mut broker = TestBroker::start_with(config);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("stuck", 1, &[]).await.unwrap();
    });
    let partition_dir = dir.path().join("topics").join("stuck-0");
    assert!(partition_dir.is_dir());
    runtime::faults::stall_writes(&partition_dir);
    // A produce that waits on the stalled write, in flight while the broker stops.
    let producer = std::thread::spawn(move || {
        runtime::block_on(async {
            let client = Client::connect(&address).await.unwrap();
            client
                .produce("stuck", Some(0), b"", AckLevel::Written, record(b"never"))
                .await
        })
    });
    std::thread::sleep(Duration::from_millis(200));
    let handle = broker.handle.take().unwrap();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        handle.shutdown();
        let _ = done.send(());
    });
    let outcome = finished.recv_timeout(Duration::from_secs(30));
    runtime::faults::clear(&partition_dir);
    assert!(
        outcome.is_ok(),
        "shutdown returned although the log's writes never completed"
    );
    assert!(
        producer.join().unwrap().is_err(),
        "the stalled produce was never acknowledged"
    );
}

#[test]
fn startup_that_cannot_complete_exits_non_zero_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("topics.json"), b"xxh3:0\nnot json").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["serve", "--listen", "127.0.0.1:0", "--http-listen", ""])
        .args(["--sqs-listen", ""])
        .args(["--kafka-listen", ""])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("topics.json"),
        "names what failed: {stderr}"
    );
}

#[test]
fn a_sigterm_as_soon_as_serving_is_logged_stops_the_broker_cleanly() {
    for _ in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        // serve_capturing returns as soon as the "serving" line is read.
        let (mut server, _address, log) = serve_capturing(dir.path(), &[]);
        unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
        let status = wait_for_exit(&mut server, Duration::from_secs(30));
        assert!(
            status.success(),
            "a clean stop, not death by signal: {status:?}\n{}",
            log.lock().unwrap()
        );
    }
}
