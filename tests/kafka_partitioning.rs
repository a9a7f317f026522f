//! Keys land where Kafka clients put them: the same key produced through `ringmq produce -K`
//! and through librdkafka (the `rdkafka` crate) goes to the same partition, murmur2 against
//! librdkafka's `murmur2_random` (Kafka's Java client's rule) and `--partitioner crc32` against
//! librdkafka's default `consistent_random`. The broker's own choice (a native produce to
//! partition -1) agrees with the default too.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::BytesMut;
use common::TestBroker;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::runtime;
use ringmq::storage::AckLevel;

const PARTITIONS: u32 = 7;

/// (key, murmur2 partition, crc32 partition) over 7 partitions, each worked out by hand from a
/// published hash, not from our code: the murmur2 hashes are Kafka's `UtilsTest.testMurmur2`
/// ("21", "foobar", "abc", "a-little-bit-long-string": all but "abc" negative before
/// `toPositive`) and librdkafka's (`rdmurmur2.c`'s unit test for "kafka"; tests/0048-partitioner.c
/// for "23456", "hejsan" and the long one, which also gives their crc32); the other crc32s are
/// zlib's (Python's `zlib.crc32`). Partition = (hash & 0x7fffffff) % 7, crc32 % 7.
const EXPECTED: [(&str, u32, u32); 8] = [
    ("21", 3, 6),
    ("foobar", 0, 6),
    ("abc", 4, 5),
    ("a-little-bit-long-string", 1, 3),
    ("kafka", 3, 6),
    ("23456", 5, 5),
    ("hejsan", 6, 3),
    (
        "this is another string with more length to it perhaps",
        1,
        6,
    ),
];

fn ringmq(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ringmq {args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

/// Produces every key through librdkafka with `partitioner` (None: librdkafka's default).
fn produce_with_librdkafka(address: &str, topic: &str, partitioner: Option<&str>, value: &str) {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", address).set("acks", "all");
    if let Some(partitioner) = partitioner {
        config.set("partitioner", partitioner);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config.create().unwrap();
    for (key, _, _) in EXPECTED {
        producer
            .send(BaseRecord::to(topic).key(key).payload(value))
            .unwrap();
    }
    producer
        .flush(Timeout::After(Duration::from_secs(30)))
        .unwrap();
    assert_eq!(producer.in_flight_count(), 0, "every record acknowledged");
}

/// Every record of `topic`: (key, value) → the partitions it was found in.
fn partitions_by_key_and_value(broker: &str, topic: &str) -> BTreeMap<(String, String), Vec<u32>> {
    let out = ringmq(&["consume", "-b", broker, topic, "--format", "json"], "");
    let mut found: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for line in out.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = record["key"].as_str().unwrap().to_string();
        let value = record["value"].as_str().unwrap().to_string();
        let partition = record["partition"].as_u64().unwrap() as u32;
        found.entry((key, value)).or_default().push(partition);
    }
    found
}

/// The partition each key was found in for `value`, checked to be exactly one.
fn placed(found: &BTreeMap<(String, String), Vec<u32>>, value: &str) -> BTreeMap<String, u32> {
    EXPECTED
        .iter()
        .map(|(key, _, _)| {
            let partitions = &found[&(key.to_string(), value.to_string())];
            assert_eq!(partitions.len(), 1, "{key} by {value}: {partitions:?}");
            (key.to_string(), partitions[0])
        })
        .collect()
}

fn expected(column: impl Fn(&(&str, u32, u32)) -> u32) -> BTreeMap<String, u32> {
    EXPECTED
        .iter()
        .map(|row| (row.0.to_string(), column(row)))
        .collect()
}

#[test]
fn the_cli_places_keys_as_librdkafka_does_murmur2_by_default_and_crc32_on_request() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let native = broker.address();
    let kafka = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    let kafka = kafka.to_string();
    let partitions = PARTITIONS.to_string();
    for topic in ["murmur2", "crc32"] {
        ringmq(
            &[
                "topic",
                "create",
                "-b",
                &native,
                topic,
                "--partitions",
                &partitions,
            ],
            "",
        );
    }
    let input = |value: &str| -> String {
        EXPECTED
            .iter()
            .map(|(key, _, _)| format!("{key}:{value}\n"))
            .collect()
    };

    // murmur2: the CLI's default, librdkafka's murmur2_random, and the broker choosing.
    ringmq(
        &["produce", "-b", &native, "murmur2", "-K", ":"],
        &input("cli"),
    );
    produce_with_librdkafka(&kafka, "murmur2", Some("murmur2_random"), "librdkafka");
    runtime::block_on(async {
        let client = Client::connect(&native).await.unwrap();
        for (key, _, _) in EXPECTED {
            let mut builder = BatchBuilder::new(Compression::None);
            builder.push(Record::new(1_000, Some(key.as_bytes()), Some(b"broker")));
            let records = BytesMut::from(&builder.build()[..]);
            client
                .produce("murmur2", None, key.as_bytes(), AckLevel::Written, records)
                .await
                .unwrap();
        }
    });
    let found = partitions_by_key_and_value(&native, "murmur2");
    let murmur2 = expected(|row| row.1);
    assert_eq!(
        placed(&found, "cli"),
        murmur2,
        "ringmq produce -K (default)"
    );
    assert_eq!(placed(&found, "librdkafka"), murmur2, "murmur2_random");
    assert_eq!(placed(&found, "broker"), murmur2, "native partition -1");

    // crc32: --partitioner crc32 and librdkafka's default partitioner.
    ringmq(
        &[
            "produce",
            "-b",
            &native,
            "crc32",
            "-K",
            ":",
            "--partitioner",
            "crc32",
        ],
        &input("cli"),
    );
    produce_with_librdkafka(&kafka, "crc32", None, "librdkafka");
    let found = partitions_by_key_and_value(&native, "crc32");
    let crc32 = expected(|row| row.2);
    assert_eq!(
        placed(&found, "cli"),
        crc32,
        "ringmq produce --partitioner crc32"
    );
    assert_eq!(placed(&found, "librdkafka"), crc32, "consistent_random");
}

#[test]
fn the_cli_refuses_an_unknown_partitioner() {
    let output = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["produce", "topic", "-K", ":", "--partitioner", "murmur3"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("murmur2, crc32 or xxh3"),
        "names the choices: {stderr}"
    );
}
