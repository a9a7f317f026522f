//! Kafka share groups (KIP-932) with a share consumer we did not write: confluent-kafka's
//! `ShareConsumer` (librdkafka's, from PyPI, run by tests/clients/confluent_share_client.py)
//! against a real broker. Several consumers of one partition each get distinct records and
//! together all of them; released records come back with delivery count 2; rejected ones are
//! archived (in the group's dead-letter topic) and never delivered again; a killed consumer's
//! records come back after the lock duration.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::*;

/// The lock duration of these tests' broker: what a killed consumer's records wait.
const LOCK_MS: u32 = 4_000;

fn broker(dir: &std::path::Path) -> (TestBroker, String) {
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        share_groups: ringmq::config::ShareGroupConfig {
            auto_offset_reset: "earliest".into(),
            record_lock_duration_ms: LOCK_MS,
            heartbeat_interval_ms: 500,
            // Longer than the lock: a killed consumer's records come back by lock expiry.
            session_timeout_ms: 10_000,
            ..Default::default()
        },
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

/// One line the client printed about a record.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    offset: i64,
    value: String,
    delivery_count: Option<i64>,
    action: String,
    /// When the client printed it (seconds since the epoch, the client's clock: this host's).
    time: f64,
}

/// A running share consumer and the lines it printed so far (read by a thread).
struct Consumer {
    child: Child,
    lines: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Consumer {
    /// None when confluent-kafka is not installed (a plain `cargo test`).
    fn start(
        address: &str,
        group: &str,
        topic: &str,
        mode: &str,
        seconds: u32,
    ) -> Option<Consumer> {
        let python = common::clients_dir().join(".venv/bin/python");
        let spawned = Command::new(&python)
            .arg(common::clients_dir().join("confluent_share_client.py"))
            .args([address, group, topic, mode, &seconds.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(error) => {
                common::tool_missing("confluent-kafka (tests/clients/.venv)", &error);
                return None;
            }
        };
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    let _ = sender.send(value);
                }
            }
        });
        Some(Consumer { child, lines })
    }

    /// Every line until the client exits (within `limit`), as records seen and whether it
    /// closed cleanly.
    fn finish(mut self, limit: Duration) -> (Vec<Seen>, bool) {
        let until = Instant::now() + limit;
        let mut seen = Vec::new();
        let mut closed = false;
        while let Ok(line) = self
            .lines
            .recv_timeout(until.saturating_duration_since(Instant::now()))
        {
            match line["event"].as_str() {
                Some("record") => seen.push(record(&line)),
                Some("closed") => closed = true,
                Some("error") => panic!("the share consumer reported {line}"),
                _ => {}
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        (seen, closed)
    }
}

fn record(line: &serde_json::Value) -> Seen {
    Seen {
        offset: line["offset"].as_i64().unwrap(),
        value: line["value"].as_str().unwrap().to_string(),
        delivery_count: line["delivery_count"].as_i64(),
        action: line["action"].as_str().unwrap().to_string(),
        time: line["time"].as_f64().unwrap(),
    }
}

fn produce(address: &str, topic_name: &'static str, count: usize) -> BTreeSet<String> {
    let mut values = BTreeSet::new();
    for index in 0..count {
        let value = format!("{topic_name}-{index}");
        match call(
            address,
            ApiKey::Produce,
            7,
            RequestKind::Produce(produce_request(topic_name, value.as_bytes())),
        ) {
            ResponseKind::Produce(response) => {
                let partition = &response.responses[0].partition_responses[0];
                assert_eq!(partition.error_code, 0, "{partition:?}");
            }
            other => panic!("Produce answered {other:?}"),
        }
        values.insert(value);
    }
    values
}

/// The members of `group` as ShareGroupDescribe shows them.
fn members(address: &str, group_name: &'static str) -> usize {
    let request = ShareGroupDescribeRequest::default().with_group_ids(vec![group(group_name)]);
    match call(
        address,
        ApiKey::ShareGroupDescribe,
        1,
        RequestKind::ShareGroupDescribe(request),
    ) {
        ResponseKind::ShareGroupDescribe(response) => response.groups[0].members.len(),
        other => panic!("ShareGroupDescribe answered {other:?}"),
    }
}

fn wait_for_members(address: &str, group_name: &'static str, count: usize) {
    let until = Instant::now() + Duration::from_secs(30);
    while members(address, group_name) < count {
        assert!(
            Instant::now() < until,
            "{count} members never joined {group_name}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn consumers_of_one_partition_share_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, "shared", 1);
    let consumers: Vec<Consumer> = (0..3)
        .filter_map(|_| Consumer::start(&address, "workers", "shared", "accept", 14))
        .collect();
    if consumers.len() < 3 {
        return;
    }
    wait_for_members(&address, "workers", 3);
    let produced = produce(&address, "shared", 60);
    let mut everyone = BTreeMap::new();
    for (index, consumer) in consumers.into_iter().enumerate() {
        let (seen, closed) = consumer.finish(Duration::from_secs(40));
        assert!(closed, "consumer {index} did not close cleanly");
        assert!(!seen.is_empty(), "consumer {index} got no record");
        for record in seen {
            assert_eq!(record.delivery_count, Some(1), "{record:?}");
            let earlier = everyone.insert(record.offset, (index, record.value.clone()));
            assert_eq!(
                earlier, None,
                "offset {} went to two consumers",
                record.offset
            );
        }
    }
    let values: BTreeSet<String> = everyone.values().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, produced, "together they got every record once");
    assert_eq!(
        everyone.keys().copied().collect::<Vec<_>>(),
        (0..60).collect::<Vec<i64>>()
    );
}

#[test]
fn released_records_come_back_and_rejected_ones_are_archived() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, "retried", 1);
    create_topic(&address, "refused", 1);
    let produced = produce(&address, "retried", 5);
    produce(&address, "refused", 4);
    let Some(releasing) = Consumer::start(&address, "retry", "retried", "release-once", 10) else {
        return;
    };
    let Some(rejecting) = Consumer::start(&address, "refuse", "refused", "reject", 6) else {
        return;
    };
    let (seen, closed) = releasing.finish(Duration::from_secs(40));
    assert!(closed);
    let mut by_offset: BTreeMap<i64, Vec<Seen>> = BTreeMap::new();
    for record in seen {
        by_offset.entry(record.offset).or_default().push(record);
    }
    assert_eq!(by_offset.len(), 5, "{by_offset:?}");
    for (offset, deliveries) in &by_offset {
        let counts: Vec<(Option<i64>, &str)> = deliveries
            .iter()
            .map(|d| (d.delivery_count, d.action.as_str()))
            .collect();
        assert_eq!(
            counts,
            vec![(Some(1), "release"), (Some(2), "accept")],
            "offset {offset}"
        );
    }
    let values: BTreeSet<String> = by_offset.values().map(|d| d[0].value.clone()).collect();
    assert_eq!(values, produced);

    let (seen, closed) = rejecting.finish(Duration::from_secs(40));
    assert!(closed);
    let offsets: Vec<i64> = seen.iter().map(|s| s.offset).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3], "each rejected once, never again");
    // Nobody in the group gets them again: they are archived.
    let Some(after) = Consumer::start(&address, "refuse", "refused", "accept", 5) else {
        return;
    };
    let (seen, closed) = after.finish(Duration::from_secs(40));
    assert!(closed);
    assert_eq!(seen, vec![], "rejected records came back");
    // The archive: the group's dead-letter topic holds the four.
    match call(
        &address,
        ApiKey::Fetch,
        4,
        RequestKind::Fetch(fetch_request("refused.refuse.dlq")),
    ) {
        ResponseKind::Fetch(response) => {
            let partition = &response.responses[0].partitions[0];
            assert_eq!(partition.error_code, 0);
            assert_eq!(partition.high_watermark, 4, "four dead letters");
        }
        other => panic!("Fetch answered {other:?}"),
    }
}

#[test]
fn a_killed_consumers_records_return_after_the_lock_duration() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    create_topic(&address, "orphaned", 1);
    let produced = produce(&address, "orphaned", 5);
    let Some(mut holder) = Consumer::start(&address, "survivors", "orphaned", "hold", 60) else {
        return;
    };
    // Wait until it holds every record, then kill it without a word to the broker.
    let mut held = BTreeSet::new();
    let mut held_at = 0f64;
    while held.len() < 5 {
        let line = holder
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the holder got its records");
        if line["event"] == "record" {
            let seen = record(&line);
            held_at = held_at.max(seen.time);
            held.insert(seen.value);
        }
    }
    assert_eq!(held, produced);
    holder.child.kill().unwrap();
    holder.child.wait().unwrap();
    let taker = Consumer::start(&address, "survivors", "orphaned", "accept", 14).unwrap();
    let (seen, closed) = taker.finish(Duration::from_secs(40));
    assert!(closed);
    let values: BTreeSet<String> = seen.iter().map(|s| s.value.clone()).collect();
    assert_eq!(values, produced, "the records came back");
    for record in &seen {
        assert_eq!(record.delivery_count, Some(2), "{record:?}");
    }
    // Not before their locks ran out: the holder got them (at most a second before it said
    // so) a lock duration before the taker did.
    let first = seen.iter().map(|s| s.time).fold(f64::MAX, f64::min);
    let lock = f64::from(LOCK_MS) / 1000.0;
    assert!(
        first >= held_at + lock - 1.0,
        "the records came back {:.1} s after the holder got them, under the {lock} s lock",
        first - held_at
    );
}
