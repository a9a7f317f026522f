//! The Prometheus series of one queue group on one partition, labelled by topic, group and
//! partition (sum over `partition` for the group): gauges of what it holds now and counters of
//! what happened, published from the state's own totals by each shard's background tick.

use metrics::{Counter, Gauge, Label};

use super::state::{Stats, View};

pub struct QueueMetrics {
    available: Gauge,
    in_flight: Gauge,
    delayed: Gauge,
    spans: Gauge,
    fifo_keys: Gauge,
    oldest_age: Gauge,
    deliveries: Counter,
    redeliveries: Counter,
    acks: Counter,
    releases: Counter,
    rejects: Counter,
    lock_expiries: Counter,
    dead_lettered: Counter,
    lost: Counter,
    purged: Counter,
}

impl QueueMetrics {
    pub fn new(topic: &str, group: &str, partition: u32) -> QueueMetrics {
        let labels = [
            Label::new("topic", topic.to_string()),
            Label::new("group", group.to_string()),
            Label::new("partition", partition.to_string()),
        ];
        let gauge = |name: &'static str| metrics::gauge!(name, labels.iter());
        let counter = |name: &'static str| metrics::counter!(name, labels.iter());
        QueueMetrics {
            available: gauge("ringmq_queue_available_messages"),
            in_flight: gauge("ringmq_queue_in_flight_messages"),
            delayed: gauge("ringmq_queue_delayed_messages"),
            spans: gauge("ringmq_queue_window_spans"),
            fifo_keys: gauge("ringmq_queue_fifo_keys"),
            oldest_age: gauge("ringmq_queue_oldest_available_age_seconds"),
            deliveries: counter("ringmq_queue_deliveries_total"),
            redeliveries: counter("ringmq_queue_redeliveries_total"),
            acks: counter("ringmq_queue_acks_total"),
            releases: counter("ringmq_queue_releases_total"),
            rejects: counter("ringmq_queue_rejects_total"),
            lock_expiries: counter("ringmq_queue_lock_expiries_total"),
            dead_lettered: counter("ringmq_queue_dead_lettered_total"),
            lost: counter("ringmq_queue_lost_total"),
            purged: counter("ringmq_queue_purged_total"),
        }
    }

    /// Publishes the group's totals and window; `oldest_age_ms` is the age of its oldest
    /// available message (0 when none is).
    pub fn publish(&self, stats: &Stats, view: &View, oldest_age_ms: u64) {
        self.oldest_age.set(oldest_age_ms as f64 / 1000.0);
        self.available.set(view.available as f64);
        self.in_flight.set(view.in_flight as f64);
        self.delayed.set(view.delayed as f64);
        self.spans.set(view.spans as f64);
        self.fifo_keys.set(view.fifo_keys as f64);
        self.deliveries.absolute(stats.deliveries);
        self.redeliveries.absolute(stats.redeliveries);
        self.acks.absolute(stats.acks);
        self.releases.absolute(stats.releases);
        self.rejects.absolute(stats.rejects);
        self.lock_expiries.absolute(stats.lock_expiries);
        self.dead_lettered.absolute(stats.dead_lettered);
        self.lost.absolute(stats.lost);
        self.purged.absolute(stats.purged);
    }
}

/// Registers the help text of every queue metric.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        "ringmq_queue_available_messages",
        "Messages a queue group could deliver now or once its window moves (never delivered, released, lock expired)."
    );
    describe_gauge!(
        "ringmq_queue_in_flight_messages",
        "Messages locked to a consumer of a queue group (acquired, not yet settled)."
    );
    describe_gauge!(
        "ringmq_queue_delayed_messages",
        "Messages held back: released with a delay, not yet due (x-delay-ms, delay_ms), or parked behind their FIFO group's head."
    );
    describe_gauge!(
        "ringmq_queue_oldest_available_age_seconds",
        "Age of the oldest message a queue group could deliver now (by its batch's first timestamp; 0 when none)."
    );
    describe_gauge!(
        "ringmq_queue_fifo_keys",
        "FIFO message group keys in play (a message in flight or parked); bounded by window_messages_max."
    );
    describe_gauge!(
        "ringmq_queue_window_spans",
        "Spans a queue group holds above its settled prefix (its state's size)."
    );
    describe_counter!(
        "ringmq_queue_deliveries_total",
        "Messages delivered by receives, redeliveries included."
    );
    describe_counter!(
        "ringmq_queue_redeliveries_total",
        "Deliveries of a message delivered before."
    );
    describe_counter!("ringmq_queue_acks_total", "Messages acknowledged.");
    describe_counter!(
        "ringmq_queue_releases_total",
        "Messages released by their consumer."
    );
    describe_counter!(
        "ringmq_queue_rejects_total",
        "Messages rejected by their consumer (dead-lettered at once)."
    );
    describe_counter!(
        "ringmq_queue_lock_expiries_total",
        "Locks whose visibility timeout passed before a settle."
    );
    describe_counter!(
        "ringmq_queue_dead_lettered_total",
        "Messages written to the dead-letter topic and archived."
    );
    describe_counter!(
        "ringmq_queue_lost_total",
        "Messages gone from the log (retention, damage) before they were settled."
    );
    describe_counter!(
        "ringmq_queue_purged_total",
        "Messages settled by a purge of the queue group."
    );
}
