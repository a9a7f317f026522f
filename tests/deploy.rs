//! The files in deploy/ stay true: the alert rules and scrape configs pass promtool, every
//! ringmq metric the dashboard and the alerts name is one a running broker exports, the systemd
//! unit verifies and is sandboxed, the container's health check works against a real broker, and
//! the compose file mounts files that exist.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};

use common::TestBroker;
use ringmq::client::Client;
use ringmq::runtime;
use ringmq::storage::AckLevel;

fn promtool(args: &[&str]) {
    match std::process::Command::new("promtool")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
    {
        Ok(output) => assert!(
            output.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        Err(error) => common::tool_missing("promtool", &error),
    }
}

#[test]
fn alert_rules_and_scrape_config_pass_promtool() {
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
}

fn deploy_file(path: &str) -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join("deploy").join(path)).unwrap()
}

/// Runs `systemd-analyze` with `args`; a missing tool fails the test under tools/test.
fn systemd_analyze(args: &[&str]) -> Option<std::process::Output> {
    match std::process::Command::new("systemd-analyze")
        .args(args)
        .output()
    {
        Ok(output) => Some(output),
        Err(error) => {
            common::tool_missing("systemd-analyze", &error);
            None
        }
    }
}

#[test]
fn the_systemd_unit_verifies_runs_without_a_config_file_and_is_sandboxed() {
    let unit = deploy_file("systemd/ringmq.service");
    assert!(
        !unit.contains("--config"),
        "starts with the defaults; a config file is optional (RINGMQ_CONFIG)"
    );
    assert!(
        unit.contains("DynamicUser=yes"),
        "no user to create by hand"
    );
    assert!(
        unit.contains("EnvironmentFile=-"),
        "the environment file is optional"
    );
    // `verify` checks that ExecStart's binary exists: point it at the one cargo built.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringmq.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/ringmq", env!("CARGO_BIN_EXE_ringmq")),
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let Some(verify) = systemd_analyze(&["verify", path]) else {
        return;
    };
    let said = String::from_utf8_lossy(&verify.stderr).to_string();
    assert!(verify.status.success() && said.trim().is_empty(), "{said}");
    // The threshold is on the 0-100 scale: 30 is an overall exposure of 3.0.
    let security =
        systemd_analyze(&["security", "--offline=true", "--threshold=30", path]).unwrap();
    let report = String::from_utf8_lossy(&security.stdout);
    assert!(
        security.status.success(),
        "exposure above 3:\n{report}{}",
        String::from_utf8_lossy(&security.stderr)
    );
}

/// The `CMD` of the Containerfile's HEALTHCHECK, as the shell command it runs.
fn health_check_command(containerfile: &str) -> String {
    let joined = containerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|line| line.starts_with("HEALTHCHECK"))
        .expect("the Containerfile has a HEALTHCHECK");
    let json = &line[line.find("CMD [").expect("exec form") + 4..];
    let argv: Vec<String> = serde_json::from_str(json).expect("CMD is a JSON array");
    assert_eq!(&argv[..2], ["bash", "-c"]);
    argv[2].clone()
}

#[test]
fn the_container_exposes_every_listener_and_its_health_check_works() {
    let containerfile = deploy_file("Containerfile");
    for (setting, port) in [
        ("RINGMQ_LISTEN", 9400),
        ("RINGMQ_KAFKA_LISTEN", 9092),
        ("RINGMQ_HTTP_LISTEN", 9401),
    ] {
        assert!(
            containerfile.contains(&format!("{setting}=0.0.0.0:{port}")),
            "{setting} listens on every interface"
        );
        let exposed = containerfile
            .lines()
            .find(|line| line.starts_with("EXPOSE"))
            .unwrap();
        assert!(exposed.contains(&port.to_string()), "port {port} exposed");
    }
    assert!(containerfile.contains("VOLUME /var/lib/ringmq"));
    assert!(
        containerfile.contains("RINGMQ_KAFKA_ADVERTISED="),
        "Kafka clients are told an address they can reach, not 0.0.0.0"
    );
    assert!(containerfile.contains("RINGMQ_DATA_DIR=/var/lib/ringmq"));

    // The health check, run as the container would, against a real broker's /health.
    let command = health_check_command(&containerfile);
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 1);
    let port = broker
        .http_address()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let check = || {
        std::process::Command::new("bash")
            .args(["-c", &command.replace("9401", &port)])
            .output()
            .unwrap()
    };
    let healthy = check();
    assert!(
        healthy.status.success(),
        "the health check passes on a serving broker: {healthy:?}"
    );
    drop(broker);
    let unhealthy = check();
    assert!(
        !unhealthy.status.success(),
        "and fails once it is gone: {unhealthy:?}"
    );
}

#[test]
fn the_compose_file_mounts_files_that_exist_and_its_prometheus_config_passes_promtool() {
    let compose = deploy_file("compose/compose.yaml");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/compose");
    let mut mounted = 0;
    for line in compose.lines() {
        let Some(volume) = line.trim().strip_prefix("- .") else {
            continue;
        };
        let source = format!(".{}", volume.split(':').next().unwrap());
        assert!(
            root.join(&source).exists(),
            "compose mounts {source}, which is missing"
        );
        mounted += 1;
    }
    assert!(
        mounted >= 4,
        "prometheus config, alerts, grafana provisioning and dashboard"
    );
    // Prometheus's rule_files are relative to its config: lay them out as the compose mounts do.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        deploy_file("compose/prometheus.yml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("alerts.yml"),
        deploy_file("prometheus/alerts.yml"),
    )
    .unwrap();
    promtool(&[
        "check",
        "config",
        dir.path().join("prometheus.yml").to_str().unwrap(),
    ]);
    let provider = deploy_file("grafana/provisioning/dashboards/ringmq.yml");
    assert!(
        provider.contains("path: /var/lib/grafana/dashboards")
            && compose.contains(":/var/lib/grafana/dashboards/ringmq-dashboard.json"),
        "Grafana loads the dashboard from where compose mounts it"
    );
}

/// Every `ringmq_...` metric name in `text`, with histogram suffixes folded to the family.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("ringmq_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(&name);
        names.insert(family.to_string());
    }
    names
}

#[test]
fn the_dashboard_and_alerts_name_only_exported_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard =
        std::fs::read_to_string(root.join("deploy/grafana/ringmq-dashboard.json")).unwrap();
    let parsed: serde_json::Value =
        serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(
        parsed["panels"]
            .as_array()
            .is_some_and(|panels| panels.len() >= 8)
    );
    let variables: Vec<&str> = parsed["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|variable| variable["name"].as_str())
        .collect();
    assert!(variables.contains(&"instance") && variables.contains(&"topic"));
    for panel in parsed["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert!(expr.contains("instance=~\"$instance\""), "{expr}");
        }
    }
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();
    assert!(
        alerts.contains("ringmq_log_backpressure_waits_total"),
        "the backpressure alert reads the counter that moves when write queues are full"
    );

    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: String::new(),
        shards: 2,
        group_lag_interval_ms: 50,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("t", 1, &[]).await.unwrap();
        let mut builder = ringmq::batch::BatchBuilder::new(ringmq::batch::Compression::None);
        builder.push(ringmq::batch::Record::new(1, None, Some(b"x")));
        let records = bytes::BytesMut::from(&builder.build()[..]);
        client
            .produce("t", Some(0), b"", AckLevel::Fsynced, records)
            .await
            .unwrap();
        let request = ringmq::protocol::FetchRequest {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            max_bytes: 1024,
            min_bytes: 0,
            max_wait_ms: 0,
        };
        client.fetch(request).await.unwrap();
        client
            .commit_offsets("g", "", 0, vec![("t".into(), 0, 1)])
            .await
            .unwrap();
        // Segments of 1 KiB over 8 partitions, for the latency breakdown's segment rolls and
        // cross-shard hops.
        client
            .create_topic("rolled", 8, &[("segment_bytes", "1024")])
            .await
            .unwrap();
        for partition in (0..8).chain([0, 0]) {
            let mut builder = ringmq::batch::BatchBuilder::new(ringmq::batch::Compression::None);
            builder.push(ringmq::batch::Record::new(1, None, Some(&[7u8; 600][..])));
            let records = bytes::BytesMut::from(&builder.build()[..]);
            client
                .produce("rolled", Some(partition), b"", AckLevel::Written, records)
                .await
                .unwrap();
        }
        // Routing and request/reply, for their panels' counters and gauges.
        common::routing_and_reply_workload(&client, "t").await;
        // A queue group that delivers and acknowledges, for the queue panels and alerts.
        client.create_queue_group("t", "q", &[]).await.unwrap();
        let consumer = ringmq::client::QueueConsumer::new(
            client.clone(),
            "t",
            "q",
            ringmq::client::QueueConsumerConfig::default(),
        );
        let received = consumer.receive().await.unwrap();
        assert!(!received.is_empty(), "the queue group delivers the record");
        consumer.ack_all(&received).await.unwrap();
    });
    // The group gauges are published every 50 ms and the queue groups' on their shard's tick;
    // wait for both (generously, for a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exported = loop {
        let mut stream = std::net::TcpStream::connect(broker.http_address()).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut exported = String::new();
        stream.read_to_string(&mut exported).unwrap();
        // The group gauges and the queue group's series are both published by background
        // ticks on their owner shards.
        let published = exported.contains("ringmq_group_lag{")
            && exported.contains("ringmq_queue_available_messages{");
        if published || std::time::Instant::now() > deadline {
            break exported;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let exported = metric_names(&exported);
    for (file, text) in [("dashboard", &dashboard), ("alerts", &alerts)] {
        let missing: Vec<String> = metric_names(text).difference(&exported).cloned().collect();
        assert!(
            missing.is_empty(),
            "the {file} names metrics the broker does not export: {missing:?}"
        );
    }
}
