//! The Kafka listener with clients of other projects that are not built on librdkafka:
//! kafka-python and aiokafka (Python, PyPI) and kafkajs (JavaScript, npm, run under node).
//!
//! Each client runs a small script of ours (`tests/clients/`) against a real broker on ephemeral
//! loopback ports; the script prints what it produced, consumed and committed as JSON lines, and
//! this file checks it, and checks what the group committed through the Kafka API (librdkafka's
//! OffsetFetch and ListOffsets). `tools/test` installs the clients at pinned versions
//! (`tests/clients/requirements.txt` into `tests/clients/.venv`; `tests/clients/package.json`
//! and its lock file into `tests/clients/node_modules` with `npm ci`); under it a missing client
//! fails the test, under a plain `cargo test` it is skipped with a word on stderr.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::Value;

#[derive(Clone, Copy, Debug)]
enum Client {
    KafkaPython,
    Aiokafka,
    Kafkajs,
}

const ROUNDTRIP_MESSAGES: usize = 1_000;
const REBALANCE_MESSAGES: usize = 20_000;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The command that runs `client`'s script, or None (after `common::tool_missing`) when the
/// client is not installed.
fn script(client: Client) -> Option<Command> {
    let dir = clients_dir();
    let (program, script, installed) = match client {
        Client::KafkaPython | Client::Aiokafka => {
            let python = dir.join(".venv/bin/python");
            let script = match client {
                Client::KafkaPython => "kafka_python_client.py",
                _ => "aiokafka_client.py",
            };
            (python.clone(), script, python)
        }
        Client::Kafkajs => (
            PathBuf::from("node"),
            "kafkajs_client.js",
            dir.join("node_modules/kafkajs/package.json"),
        ),
    };
    let name = match client {
        Client::KafkaPython => "kafka-python (in tests/clients/.venv)",
        Client::Aiokafka => "aiokafka (in tests/clients/.venv)",
        Client::Kafkajs => "kafkajs under node (in tests/clients/node_modules)",
    };
    if !installed.exists() {
        let error = std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is missing", installed.display()),
        );
        common::tool_missing(name, &error);
        return None;
    }
    if let Err(error) = Command::new(&program).arg("--version").output() {
        common::tool_missing(name, &error);
        return None;
    }
    let mut command = Command::new(program);
    command
        .current_dir(&dir)
        .arg(dir.join(script))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    Some(command)
}

/// Runs `client`'s `scenario` against `address` within `limit` and returns the JSON lines it
/// printed; a script that fails or overruns fails the test with its stderr.
fn run(client: Client, scenario: &str, address: &str, limit: Duration) -> Option<Vec<Value>> {
    let mut command = script(client)?;
    let started = Instant::now();
    let mut child = command
        .args([address, scenario])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let lines = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let lines = lines.join().unwrap();
    let errors = errors.join().unwrap();
    let tail: String = {
        let all: Vec<&str> = errors.lines().collect();
        all[all.len().saturating_sub(40)..].join("\n")
    };
    match status {
        None => panic!("{client:?} {scenario}: still running after {limit:?}; its stderr:\n{tail}"),
        Some(status) if !status.success() => {
            panic!("{client:?} {scenario}: {status}; its stderr:\n{tail}")
        }
        Some(_) => {}
    }
    eprintln!(
        "{client:?} {scenario}: {} lines in {:.1} s",
        lines.len(),
        started.elapsed().as_secs_f64()
    );
    Some(
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|error| panic!("{client:?}: not JSON ({error}): {line}"))
            })
            .collect(),
    )
}

fn events<'a>(lines: &'a [Value], event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    lines.iter().filter(move |line| line["event"] == event)
}

fn text(line: &Value, field: &str) -> String {
    line[field]
        .as_str()
        .unwrap_or_else(|| panic!("no {field} in {line}"))
        .to_string()
}

fn number(line: &Value, field: &str) -> i64 {
    line[field]
        .as_i64()
        .unwrap_or_else(|| panic!("no {field} in {line}"))
}

fn kafka_broker(dir: &std::path::Path) -> (common::TestBroker, String) {
    let broker = common::TestBroker::start(dir, 2);
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

/// Each partition's committed offset for `group` and its end offset (the high watermark), read
/// through the Kafka API by a client that is not the one under test.
fn committed_and_end(address: &str, group: &str, topic: &str, partitions: i32) -> Vec<(i64, i64)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    (0..partitions)
        .map(|partition| {
            let offset = committed
                .find_partition(topic, partition)
                .unwrap()
                .offset()
                .to_raw()
                .unwrap_or(-1);
            let (_, end) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap();
            (offset, end)
        })
        .collect()
}

/// Scenario a: 1,000 keyed messages to a 3-partition topic the client created through its admin
/// API, consumed back by a group: every value exactly once, at the offset its producer was told,
/// each key on one partition and in the order produced, and the group's committed offsets at the
/// end of every partition.
fn roundtrip(client: Client) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let Some(lines) = run(client, "roundtrip", &address, Duration::from_secs(90)) else {
        return;
    };
    let created: Vec<_> = events(&lines, "created").collect();
    assert_eq!(created.len(), 1, "{client:?}: the topic created");

    let mut produced: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for line in events(&lines, "produced") {
        let at = (number(line, "partition"), number(line, "offset"));
        assert!(
            produced.insert(text(line, "value"), at).is_none(),
            "{client:?}: produced twice: {line}"
        );
    }
    assert_eq!(
        produced.len(),
        ROUNDTRIP_MESSAGES,
        "{client:?}: every send acknowledged"
    );
    let mut per_partition: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
    for (partition, offset) in produced.values() {
        per_partition.entry(*partition).or_default().insert(*offset);
    }
    for (partition, offsets) in &per_partition {
        assert_eq!(
            offsets.iter().copied().collect::<Vec<_>>(),
            (0..offsets.len() as i64).collect::<Vec<_>>(),
            "{client:?}: partition {partition}'s offsets are contiguous from 0"
        );
    }

    let mut consumed: BTreeMap<String, usize> = BTreeMap::new();
    let mut key_partition: BTreeMap<String, i64> = BTreeMap::new();
    let mut key_last: BTreeMap<String, i64> = BTreeMap::new();
    for line in events(&lines, "consumed") {
        let (key, value) = (text(line, "key"), text(line, "value"));
        let at = (number(line, "partition"), number(line, "offset"));
        *consumed.entry(value.clone()).or_default() += 1;
        assert_eq!(
            produced.get(&value),
            Some(&at),
            "{client:?}: value {value} read where its producer was told it is"
        );
        let partition = *key_partition.entry(key.clone()).or_insert(at.0);
        assert_eq!(partition, at.0, "{client:?}: key {key} on one partition");
        let n: i64 = value.parse().unwrap();
        if let Some(previous) = key_last.insert(key.clone(), n) {
            assert!(
                n > previous,
                "{client:?}: key {key}: {n} read after {previous}"
            );
        }
    }
    let twice: Vec<_> = consumed.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        twice.is_empty(),
        "{client:?}: read more than once: {twice:?}"
    );
    assert_eq!(
        consumed.len(),
        ROUNDTRIP_MESSAGES,
        "{client:?}: every value read"
    );
    assert_eq!(
        events(&lines, "committed").count(),
        1,
        "{client:?}: committed"
    );

    let offsets = committed_and_end(&address, "keyed-group", "keyed", 3);
    assert!(
        offsets.iter().all(|(committed, end)| committed == end),
        "{client:?}: committed offsets at the end offsets: {offsets:?}"
    );
    let ends: i64 = offsets.iter().map(|(_, end)| end).sum();
    assert_eq!(ends, ROUNDTRIP_MESSAGES as i64);
}

/// Scenario b: a group of two consumes a 6-partition topic while 20,000 messages are produced;
/// a third member joins a third of the way in. Every member commits what it has read when its
/// partitions are revoked (kafka-python and aiokafka in their rebalance listener; kafkajs, which
/// has no such callback, through autoCommit, which commits what was processed before it
/// rejoins) and when it stops. Every message must be delivered, every commit accepted, and the
/// committed offsets end at the end offsets.
///
/// Duplicates: a partition handed over resumes at the offset its previous owner committed on
/// revoke, right after the last record that owner returned, so a correct broker gives none (0
/// with each client when this was written, in every run). What a client may legitimately
/// redeliver is what it had returned but not yet committed when a partition moved: at most one
/// poll per member per round while messages flow (max_poll_records = 100 in the Python scripts;
/// kafkajs commits after every batch and again before it rejoins), so 2-3 members x 1-2 rounds
/// x 100, a few hundred at worst. The bound, 5% (1,000 records), keeps a margin over that and is
/// far below what a refused revoke commit costs: with the coordinator made to refuse commits
/// while a rebalance is prepared (issue 16's bug), kafka-python redelivered 3,680-3,750 and
/// aiokafka 7,000-7,500 records in two runs each: every member's reads since its last commit.
/// kafkajs's commits after every batch hide most of that (6 and 225), so every refused commit is
/// also a failure by itself: the Python listeners report theirs, and kafkajs's script reports
/// each OffsetCommit error it logs.
fn rebalance(client: Client) {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let Some(lines) = run(client, "rebalance", &address, Duration::from_secs(150)) else {
        return;
    };
    let mut consumed: BTreeMap<i64, usize> = BTreeMap::new();
    let mut per_member: BTreeMap<String, usize> = BTreeMap::new();
    for line in events(&lines, "consumed") {
        let value: i64 = text(line, "value").parse().unwrap();
        *consumed.entry(value).or_default() += 1;
        *per_member.entry(text(line, "member")).or_default() += 1;
    }
    let deliveries: usize = consumed.values().sum();
    let duplicates = deliveries - consumed.len();
    eprintln!(
        "{client:?} rebalance: {deliveries} deliveries of {} distinct messages, {duplicates} duplicates; per member {per_member:?}",
        consumed.len()
    );
    // Every commit accepted: in the revoke callbacks, at the end, and (kafkajs) after batches.
    for event in ["revoked", "closed"] {
        let refused: Vec<_> = events(&lines, event)
            .filter(|line| line["commit"] != "ok" && line["commit"] != "auto")
            // kafka-python refuses a commit on its own, sending nothing, when its revoke
            // callback runs while it is itself mid-rebalance (a second round right behind the
            // first); that is the client's guard, not the broker's answer, and the delivery
            // and duplicate checks above still hold it to account.
            .filter(|line| {
                !line["commit"]
                    .as_str()
                    .is_some_and(|text| text.contains("undergoing a rebalance for auto partition"))
            })
            .collect();
        assert!(
            refused.is_empty(),
            "{client:?}: commits refused: {refused:?}"
        );
    }
    let refused: Vec<_> = events(&lines, "commit_refused").collect();
    assert!(
        refused.is_empty(),
        "{client:?}: commits refused: {refused:?}"
    );
    let crashed: Vec<_> = events(&lines, "crashed").collect();
    assert!(crashed.is_empty(), "{client:?}: {crashed:?}");

    let missing: Vec<i64> = (0..REBALANCE_MESSAGES as i64)
        .filter(|value| !consumed.contains_key(value))
        .collect();
    assert!(
        missing.is_empty() && consumed.len() == REBALANCE_MESSAGES,
        "{client:?}: {} messages never delivered, among them {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    assert!(
        duplicates < REBALANCE_MESSAGES / 20,
        "{client:?}: {duplicates} duplicates, more than a client redelivers of what it had not committed"
    );

    let ready: Vec<_> = events(&lines, "members_ready").collect();
    assert!(
        ready.len() == 1 && ready[0]["ready"] == true,
        "{client:?}: both first members held partitions before the messages came: {ready:?}"
    );
    // The third member joined mid-stream, was given partitions and read from them.
    let joined = events(&lines, "assigned").any(|line| {
        line["member"] == "m3" && line["partitions"].as_array().is_some_and(|p| !p.is_empty())
    });
    assert!(joined, "{client:?}: the third member was given partitions");
    assert!(
        per_member.get("m3").copied().unwrap_or(0) > 0,
        "{client:?}: the third member read messages: {per_member:?}"
    );

    let offsets = committed_and_end(&address, "churn-group", "churn", 6);
    assert!(
        offsets.iter().all(|(committed, end)| committed == end),
        "{client:?}: committed offsets at the end offsets: {offsets:?}"
    );
    let ends: i64 = offsets.iter().map(|(_, end)| end).sum();
    assert_eq!(ends, REBALANCE_MESSAGES as i64);
}

#[test]
fn kafka_python_round_trips_keyed_messages_through_a_group() {
    roundtrip(Client::KafkaPython);
}

#[test]
fn kafka_python_group_commits_on_revoke_while_a_third_member_joins() {
    rebalance(Client::KafkaPython);
}

#[test]
fn aiokafka_round_trips_keyed_messages_through_a_group() {
    roundtrip(Client::Aiokafka);
}

#[test]
fn aiokafka_group_commits_on_revoke_while_a_third_member_joins() {
    rebalance(Client::Aiokafka);
}

#[test]
fn kafkajs_round_trips_keyed_messages_through_a_group() {
    roundtrip(Client::Kafkajs);
}

#[test]
fn kafkajs_group_commits_on_rebalance_while_a_third_member_joins() {
    rebalance(Client::Kafkajs);
}
