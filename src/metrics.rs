//! The process's Prometheus recorder, installed once. Metric names follow Prometheus
//! conventions (`ringmq_..._total` counters, `_bytes`, `_seconds`); histograms get explicit
//! buckets so they render as Prometheus histograms, not summaries.
//!
//! Series of deleted topics and groups are retired: the exporter has no way to forget a series,
//! so `render` leaves out every sample whose labels include a retired `label="value"` pair
//! until that name is created again.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

const SECONDS_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const BYTES_BUCKETS: &[f64] = &[
    512.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
];

/// Installs the recorder if no one has, and returns the handle that renders /metrics.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full("ringmq_log_flush_bytes".into()),
                        BYTES_BUCKETS,
                    )
                })
                .expect("bucket lists are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder (a test harness's) may be installed already: then ours only renders.
            let _ = metrics::set_global_recorder(recorder);
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("ringmq-metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .expect("spawning the metrics upkeep thread");
            handle
        })
        .clone()
}

/// Counts a request answered with an error, by protocol and the error's name (`throttled` among
/// them); `describe` gives it its help text.
pub fn count_error(protocol: &'static str, code: &'static str) {
    metrics::counter!("ringmq_request_errors_total", "protocol" => protocol, "code" => code)
        .increment(1);
}

/// Registers the help text of the metrics this module emits.
pub fn describe() {
    metrics::describe_counter!(
        "ringmq_request_errors_total",
        "Requests (or, in Kafka's responses, partitions of a request) answered with an error, by protocol and error code; code=\"throttled\" counts produces refused because a write queue stayed full."
    );
}

/// (label, value) pairs whose series are left out of /metrics: deleted topics and groups.
static RETIRED: Mutex<BTreeSet<(&'static str, String)>> = Mutex::new(BTreeSet::new());

/// Leaves every series labelled `label="value"` out of /metrics (a deleted topic or group).
pub fn retire(label: &'static str, value: &str) {
    lock_retired().insert((label, value.to_string()));
}

/// Serves `label="value"` series again (a topic or group of that name exists again).
pub fn revive(label: &'static str, value: &str) {
    let mut retired = lock_retired();
    if !retired.is_empty() {
        retired.remove(&(label, value.to_string()));
    }
}

fn lock_retired() -> std::sync::MutexGuard<'static, BTreeSet<(&'static str, String)>> {
    // The set stays consistent whatever a panicking holder did: it is only inserted into and
    // removed from.
    RETIRED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The text exposition of every metric, retired series left out.
pub fn render(handle: &PrometheusHandle) -> String {
    let text = handle.render();
    let needles: Vec<String> = lock_retired()
        .iter()
        .map(|(label, value)| format!("{label}=\"{}\"", escape_label_value(value)))
        .collect();
    if needles.is_empty() {
        return text;
    }
    let mut kept = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if !line.starts_with('#') && needles.iter().any(|needle| has_label(line, needle)) {
            continue;
        }
        kept.push_str(line);
    }
    kept
}

/// Whether a sample line's label set holds `needle` (`label="value"`) as a whole pair.
fn has_label(line: &str, needle: &str) -> bool {
    let Some(labels) = line.split_once('{').map(|(_, rest)| rest) else {
        return false;
    };
    labels.match_indices(needle).any(|(at, _)| {
        let before = if at == 0 {
            Some('{')
        } else {
            labels[..at].chars().next_back()
        };
        let after = labels[at + needle.len()..].chars().next();
        (at == 0 || before == Some(',')) && matches!(after, Some(',') | Some('}'))
    })
}

/// Prometheus's escaping of a label value.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Configuration limits as gauges labelled by setting, so fill-level gauges can be read
/// against what bounds them.
pub fn limit_gauges(name: &'static str, limits: &[(&'static str, usize)]) {
    for (setting, value) in limits {
        metrics::gauge!(name, "setting" => *setting).set(*value as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retired_pair_matches_whole_label_pairs_only() {
        let line = "ringmq_group_lag{group=\"billing\",topic=\"orders\",partition=\"0\"} 3\n";
        assert!(has_label(line, "topic=\"orders\""));
        assert!(has_label(line, "group=\"billing\""));
        assert!(has_label(line, "partition=\"0\""));
        assert!(!has_label(line, "topic=\"order\""));
        assert!(!has_label(line, "group=\"bill\""));
        assert!(!has_label("ringmq_x 1\n", "topic=\"orders\""));
        assert!(!has_label(
            "ringmq_y{subtopic=\"orders\"} 1\n",
            "topic=\"orders\""
        ));
        assert_eq!(escape_label_value("a\"b\\c"), "a\\\"b\\\\c");
    }
}
