//! The files in deploy/ stay true: the alert rules and scrape config pass promtool, and every
//! ringmq metric the dashboard and the alerts name is one a running broker exports.

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
        Err(_)
            if std::env::var_os("CI").is_none()
                && std::env::var_os("RINGMQ_TEST_TOOLS").is_none() =>
        {
            eprintln!("promtool not installed: skipped (tools/test installs it)")
        }
        Err(error) => panic!("promtool is required (tools/test installs it): {error}"),
    }
}

#[test]
fn alert_rules_and_scrape_config_pass_promtool() {
    promtool(&["check", "rules", "deploy/prometheus/alerts.yml"]);
    promtool(&["check", "config", "deploy/prometheus/prometheus.yml"]);
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
    let alerts = std::fs::read_to_string(root.join("deploy/prometheus/alerts.yml")).unwrap();

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
    });
    // The group gauges are published every 50 ms; wait for them (generously, for a loaded machine).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let exported = loop {
        let mut stream = std::net::TcpStream::connect(broker.http_address()).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut exported = String::new();
        stream.read_to_string(&mut exported).unwrap();
        if exported.contains("ringmq_group_lag{") || std::time::Instant::now() > deadline {
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
