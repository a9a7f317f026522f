//! The benchmark harness's smoke test: `ringmq-loadgen` against a real `ringmq serve` process
//! runs a tiny workload and writes well-formed JSON whose counts add up, samples the broker's
//! CPU and memory, runs a backlog, measures the machine's limits, and refuses what it cannot
//! do with a clear message. No timing is asserted: speed lives in bench/.

mod common;

use std::process::Command;

use serde_json::Value;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringmq-loadgen"))
}

/// Runs the load generator with `args` and returns the JSON it wrote.
fn run(dir: &std::path::Path, args: &[&str]) -> Value {
    let json = dir.join("run.json");
    let output = loadgen()
        .args(args)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "loadgen failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

fn number(json: &Value, key: &str) -> f64 {
    json[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} is a number in {json}"))
}

fn assert_latencies_ordered(json: &Value, kind: &str) {
    let at = |p: &str| number(json, &format!("aggregated{kind}Latency{p}"));
    let ladder = [
        at("50pct"),
        at("99pct"),
        at("999pct"),
        at("9999pct"),
        at("Max"),
    ];
    assert!(ladder[0] > 0.0, "{kind} p50 is measured");
    assert!(
        ladder.windows(2).all(|pair| pair[0] <= pair[1]),
        "{kind} percentiles rise: {ladder:?}"
    );
    let curve_key = if kind == "Publish" {
        "publishLatencyCurve"
    } else {
        "endToEndLatencyCurve"
    };
    let curve = json[curve_key].as_array().expect("a latency curve");
    assert_eq!(curve.len(), 12, "one point per curve quantile");
    assert_eq!(curve.last().unwrap()[1].as_f64().unwrap(), at("Max"));
}

#[test]
fn a_tiny_workload_against_a_broker_process_reports_well_formed_json() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, address) = common::serve(&dir.path().join("data"));
    let pid = server.id().to_string();
    let json = run(
        dir.path(),
        &[
            "--broker",
            &address,
            "--broker-pid",
            &pid,
            "--duration-s",
            "1",
            "--message-bytes",
            "200",
            "--partitions",
            "4",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--acks",
            "fsynced",
            "--label",
            "smoke",
            "--durability",
            "fsync per ack",
        ],
    );
    server.kill().unwrap();
    server.wait().unwrap();

    assert_eq!(json["system"], "ringmq");
    assert_eq!(json["label"], "smoke");
    assert_eq!(json["durability"], "fsync per ack");
    assert_eq!(json["workload"]["producers"], 2);
    assert_eq!(json["workload"]["messageSize"], 200);
    assert_eq!(json["workload"]["acks"], "fsynced");
    assert_eq!(json["errors"], 0);
    let published = json["messagesPublished"].as_u64().unwrap();
    assert!(published > 0, "something was published");
    assert_eq!(
        json["messagesConsumed"].as_u64().unwrap(),
        published,
        "two consumers over four partitions read every message once"
    );
    assert!(number(&json, "publishRate") > 0.0);
    let mbps = number(&json, "publishThroughputMBps");
    let expected_mbps = number(&json, "publishRate") * 200.0 / 1e6;
    assert!(
        (mbps - expected_mbps).abs() < 1e-6 * expected_mbps.max(1.0),
        "throughput counts payload bytes: {mbps} vs {expected_mbps}"
    );
    assert_latencies_ordered(&json, "Publish");
    assert_latencies_ordered(&json, "EndToEnd");
    assert!(
        number(&json, "brokerCpuSeconds") > 0.0,
        "the broker process worked"
    );
    assert!(number(&json, "brokerCpuSecondsPerGB") > 0.0);
    assert!(
        number(&json, "brokerRssMaxMB") > 1.0,
        "the broker's memory was sampled"
    );
}

#[test]
fn a_backlog_is_produced_without_consumers_then_drained() {
    let dir = tempfile::tempdir().unwrap();
    let json = run(
        dir.path(),
        &[
            "--backlog-bytes",
            "2000000",
            "--duration-s",
            "20",
            "--message-bytes",
            "1000",
            "--batch-bytes",
            "100000",
            "--shards",
            "2",
        ],
    );
    let published = json["messagesPublished"].as_u64().unwrap();
    // The pacer stops handing out batches at the target: at most one batch per in-flight slot
    // past it, from one producer.
    assert!(
        (2000..=2000 + 100).contains(&published),
        "the backlog is 2 MB of 1000 B messages: {published}"
    );
    assert_eq!(json["messagesConsumed"].as_u64().unwrap(), published);
    assert_eq!(json["workload"]["backlogBytes"], 2_000_000);
    assert!(number(&json, "consumeRate") > 0.0);
}

#[test]
fn the_machine_limits_are_measured() {
    let dir = tempfile::tempdir().unwrap();
    let json = run(
        dir.path(),
        &[
            "--limits-dir",
            dir.path().to_str().unwrap(),
            "--limits-bytes",
            "8388608",
        ],
    );
    for key in [
        "sequentialWriteMBps",
        "sequentialWriteFdatasyncMBps",
        "append4KiBFdatasyncPerSecond",
        "append4KiBFdatasyncLatency50pct",
        "loopbackTcpMBps",
    ] {
        assert!(number(&json, key) > 0.0, "{key} measured: {json}");
    }
    assert!(
        !dir.path().join("ringmq-limits.dat").exists(),
        "the scratch file is removed"
    );
}

#[test]
fn an_unknown_system_or_a_missing_broker_is_refused_by_name() {
    let unknown = loadgen().args(["--system", "kafkaesque"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown system kafkaesque"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let no_broker = loadgen().args(["--system", "redis"]).output().unwrap();
    assert_eq!(no_broker.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&no_broker.stderr).contains("--system redis needs --broker"),
        "{}",
        String::from_utf8_lossy(&no_broker.stderr)
    );
}
