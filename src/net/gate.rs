//! One shard's connection accounting, shared by every listener: the connection cap and the bytes
//! in flight (requests and responses), with their metrics. A connection keeps the same counts for
//! itself (`InFlight`); the gate holds the shard's sums, so both bounds read the same way.

use std::cell::Cell;

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use crate::runtime::Notify;
use crate::shard::ShardId;

/// Which front door a connection came through (a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listener {
    Native,
    Kafka,
    Sqs,
}

impl Listener {
    fn label(self) -> &'static str {
        match self {
            Listener::Native => "native",
            Listener::Kafka => "kafka",
            Listener::Sqs => "sqs",
        }
    }
}

/// Where a request's time goes on its connection: waiting for room in the bytes-in-flight
/// bounds, being handled (the broker's work: cross-shard hops, the write queue, writes and
/// fdatasyncs), and its response's socket write. `ringmq_request_stage_seconds{stage}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Admit,
    Handle,
    Send,
}

const STAGES: [Stage; 3] = [Stage::Admit, Stage::Handle, Stage::Send];

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Stage::Admit => "admit",
            Stage::Handle => "handle",
            Stage::Send => "send",
        }
    }
}

/// Why the broker closed a connection (a metrics label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// Nothing in flight and nothing read for `idle_timeout_ms`.
    Idle,
    /// A started frame did not complete within `request_read_timeout_ms`.
    ReadTimeout,
    /// A frame over `frame_bytes_max`.
    TooLarge,
    /// Closed at accept: the shard was at `connections_per_shard_max`.
    Refused,
    /// A frame that could not be decoded: the byte stream is out of step.
    Malformed,
    /// The TLS handshake failed (an untrusted or missing client certificate, a plaintext
    /// client, a protocol error) or did not finish within `request_read_timeout_ms`.
    TlsHandshake,
}

const REASONS: [CloseReason; 6] = [
    CloseReason::Idle,
    CloseReason::ReadTimeout,
    CloseReason::TooLarge,
    CloseReason::Refused,
    CloseReason::Malformed,
    CloseReason::TlsHandshake,
];

impl CloseReason {
    fn label(self) -> &'static str {
        match self {
            CloseReason::Idle => "idle",
            CloseReason::ReadTimeout => "read_timeout",
            CloseReason::TooLarge => "too_large",
            CloseReason::Refused => "refused",
            CloseReason::Malformed => "malformed",
            CloseReason::TlsHandshake => "tls_handshake",
        }
    }
}

/// Bytes in flight: a request's frame and the worst case reserved for its response, from
/// dispatch until its handler returns; then the response's real bytes until written.
#[derive(Default)]
pub(crate) struct InFlight {
    request_bytes: Cell<usize>,
    reserved_bytes: Cell<usize>,
    response_bytes: Cell<usize>,
}

impl InFlight {
    /// Everything counted: real bytes and reservations.
    pub fn total(&self) -> usize {
        self.real().saturating_add(self.reserved_bytes.get())
    }

    /// Bytes that exist: frames being handled and responses not yet written.
    pub fn real(&self) -> usize {
        self.request_bytes
            .get()
            .saturating_add(self.response_bytes.get())
    }

    pub fn add_request(&self, frame_bytes: usize, reserved_bytes: usize) {
        add(&self.request_bytes, frame_bytes);
        add(&self.reserved_bytes, reserved_bytes);
    }

    pub fn remove_request(&self, frame_bytes: usize, reserved_bytes: usize) {
        remove(&self.request_bytes, frame_bytes);
        remove(&self.reserved_bytes, reserved_bytes);
    }

    pub fn add_response(&self, bytes: usize) {
        add(&self.response_bytes, bytes);
    }

    pub fn remove_response(&self, bytes: usize) {
        remove(&self.response_bytes, bytes);
    }
}

fn add(count: &Cell<usize>, bytes: usize) {
    count.set(count.get().saturating_add(bytes));
}

fn remove(count: &Cell<usize>, bytes: usize) {
    debug_assert!(count.get() >= bytes, "released more than held");
    count.set(count.get().saturating_sub(bytes));
}

struct ListenerMetrics {
    connections: Cell<usize>,
    connections_gauge: Gauge,
    closes: [Counter; REASONS.len()],
    stages: [Histogram; STAGES.len()],
}

impl ListenerMetrics {
    fn new(shard: &str, listener: Listener) -> ListenerMetrics {
        let labels = |reason: CloseReason| {
            [
                ("shard", shard.to_string()),
                ("listener", listener.label().to_string()),
                ("reason", reason.label().to_string()),
            ]
        };
        ListenerMetrics {
            connections: Cell::new(0),
            connections_gauge: metrics::gauge!(
                "ringmq_listener_connections",
                "shard" => shard.to_string(),
                "listener" => listener.label()
            ),
            closes: REASONS
                .map(|reason| metrics::counter!("ringmq_connection_closes_total", &labels(reason))),
            stages: STAGES.map(|stage| {
                metrics::histogram!(
                    "ringmq_request_stage_seconds",
                    "shard" => shard.to_string(),
                    "listener" => listener.label(),
                    "stage" => stage.label()
                )
            }),
        }
    }
}

/// One shard's gate: the connections of both listeners and their bytes in flight.
pub(crate) struct Gate {
    connections: Cell<usize>,
    pub inflight: InFlight,
    /// Notified whenever bytes in flight drop or a connection ends.
    pub released: Notify,
    listeners: [ListenerMetrics; 3],
    connections_gauge: Gauge,
    inflight_gauge: Gauge,
    request_bytes_gauge: Gauge,
    reserved_bytes_gauge: Gauge,
    response_bytes_gauge: Gauge,
    pub pauses: Counter,
    refused: Counter,
}

impl Gate {
    pub fn new(shard: ShardId) -> Gate {
        let label = shard.to_string();
        Gate {
            connections: Cell::new(0),
            inflight: InFlight::default(),
            released: Notify::default(),
            listeners: [
                ListenerMetrics::new(&label, Listener::Native),
                ListenerMetrics::new(&label, Listener::Kafka),
                ListenerMetrics::new(&label, Listener::Sqs),
            ],
            connections_gauge: metrics::gauge!("ringmq_shard_connections", "shard" => label.clone()),
            inflight_gauge: metrics::gauge!("ringmq_shard_inflight_bytes", "shard" => label.clone()),
            request_bytes_gauge: metrics::gauge!("ringmq_shard_inflight_request_bytes", "shard" => label.clone()),
            reserved_bytes_gauge: metrics::gauge!("ringmq_shard_inflight_reserved_bytes", "shard" => label.clone()),
            response_bytes_gauge: metrics::gauge!("ringmq_shard_inflight_response_bytes", "shard" => label.clone()),
            pauses: metrics::counter!("ringmq_shard_backpressure_pauses_total", "shard" => label.clone()),
            refused: metrics::counter!("ringmq_shard_refused_connections_total", "shard" => label),
        }
    }

    fn listener(&self, listener: Listener) -> &ListenerMetrics {
        match listener {
            Listener::Native => &self.listeners[0],
            Listener::Kafka => &self.listeners[1],
            Listener::Sqs => &self.listeners[2],
        }
    }

    /// Open connections of both listeners.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    pub fn opened(&self, listener: Listener) {
        self.connections.set(self.connections.get() + 1);
        let metrics = self.listener(listener);
        metrics.connections.set(metrics.connections.get() + 1);
        self.publish_connections(metrics);
    }

    pub fn ended(&self, listener: Listener) {
        debug_assert!(self.connections.get() > 0, "a connection ended twice");
        self.connections
            .set(self.connections.get().saturating_sub(1));
        let metrics = self.listener(listener);
        metrics
            .connections
            .set(metrics.connections.get().saturating_sub(1));
        self.publish_connections(metrics);
        self.released.notify();
    }

    fn publish_connections(&self, metrics: &ListenerMetrics) {
        self.connections_gauge.set(self.connections.get() as f64);
        metrics
            .connections_gauge
            .set(metrics.connections.get() as f64);
    }

    pub fn closed(&self, listener: Listener, reason: CloseReason) {
        if reason == CloseReason::Refused {
            self.refused.increment(1);
        }
        let index = REASONS
            .iter()
            .position(|known| *known == reason)
            .unwrap_or(0);
        if let Some(counter) = self.listener(listener).closes.get(index) {
            counter.increment(1);
        }
    }

    /// Records how long a request of `listener` spent in `stage`.
    pub fn stage(&self, listener: Listener, stage: Stage, took: Duration) {
        let index = STAGES.iter().position(|known| *known == stage).unwrap_or(0);
        if let Some(histogram) = self.listener(listener).stages.get(index) {
            histogram.record(took.as_secs_f64());
        }
    }

    /// Publishes the in-flight gauges; call after every change of `inflight`.
    pub fn publish_inflight(&self) {
        self.inflight_gauge.set(self.inflight.total() as f64);
        self.request_bytes_gauge
            .set(self.inflight.request_bytes.get() as f64);
        self.reserved_bytes_gauge
            .set(self.inflight.reserved_bytes.get() as f64);
        self.response_bytes_gauge
            .set(self.inflight.response_bytes.get() as f64);
    }
}

/// Registers the help text of every metric of the connection layer.
pub(crate) fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "ringmq_request_stage_seconds",
        Unit::Seconds,
        "Time a request spent per stage on its connection: admit (waiting for room in the bytes-in-flight bounds), handle (the broker's work, hops, write queue, writes and fdatasyncs included), send (its response's socket write)."
    );
    describe_gauge!(
        "ringmq_shard_connections",
        "Open client connections on the shard, every listener (bounded by connections_per_shard_max)."
    );
    describe_gauge!(
        "ringmq_listener_connections",
        "Open client connections on the shard, per listener (native, kafka, sqs)."
    );
    describe_gauge!(
        "ringmq_shard_inflight_bytes",
        Unit::Bytes,
        "Bytes of requests, reservations and unwritten responses on the shard (see shard_inflight_bytes_max)."
    );
    describe_gauge!(
        "ringmq_shard_inflight_request_bytes",
        Unit::Bytes,
        "Bytes of request frames being handled on the shard."
    );
    describe_gauge!(
        "ringmq_shard_inflight_reserved_bytes",
        Unit::Bytes,
        "Worst-case response bytes reserved by requests being handled on the shard (fetches)."
    );
    describe_gauge!(
        "ringmq_shard_inflight_response_bytes",
        Unit::Bytes,
        "Bytes of responses produced on the shard and not yet written to their sockets."
    );
    describe_counter!(
        "ringmq_shard_backpressure_pauses_total",
        "Times a connection stopped being read because in-flight bytes were at their bound."
    );
    describe_counter!(
        "ringmq_shard_refused_connections_total",
        "Connections closed at accept because the shard was at connections_per_shard_max."
    );
    describe_counter!(
        "ringmq_connection_closes_total",
        "Connections the broker closed, by listener and reason (idle, read_timeout, too_large, refused, malformed)."
    );
}
