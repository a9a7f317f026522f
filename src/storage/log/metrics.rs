//! The log's metrics: the handles registered once per partition (so that the hot path does no
//! label lookups) and the help text of every series, registered once per process.

use metrics::{Counter, Gauge, Histogram, Label};

use super::Shared;

impl Shared {
    pub(super) fn publish_gauges(&self) {
        let state = self.state.borrow();
        let metrics = &self.metrics;
        metrics
            .log_start_offset
            .set(state.log_start_offset() as f64);
        metrics.log_end_offset.set(state.high_watermark as f64);
        metrics.segments.set(state.segments.len() as f64);
        metrics.size_bytes.set(state.size_bytes() as f64);
        metrics.tail_cache_bytes.set(state.tail.bytes() as f64);
        metrics.pending_bytes.set(state.pending_bytes as f64);
        metrics.damaged_bytes.set(state.damage.total_bytes() as f64);
        metrics.damaged_ranges.set(state.damage.count() as f64);
        metrics.dedup_ids.set(state.dedup.len() as f64);
    }
}

/// Registers the help text of every metric the log emits (labels: topic, partition).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "ringmq_log_appended_bytes_total",
        Unit::Bytes,
        "Bytes of record batches written to the partition log."
    );
    describe_counter!(
        "ringmq_log_appended_records_total",
        "Records written to the partition log (messages in)."
    );
    describe_counter!(
        "ringmq_log_appended_batches_total",
        "Record batches written to the partition log."
    );
    describe_counter!(
        "ringmq_log_read_bytes_total",
        Unit::Bytes,
        "Bytes read from the partition log, by source: the tail cache or the segment files."
    );
    describe_counter!(
        "ringmq_log_write_failures_total",
        "Failed writes or fsyncs of the partition log."
    );
    describe_counter!(
        "ringmq_log_backpressure_waits_total",
        "Appends that waited because the partition's write queue was full."
    );
    describe_counter!(
        "ringmq_log_retention_deleted_segments_total",
        "Segments deleted by retention."
    );
    describe_histogram!(
        "ringmq_log_flush_bytes",
        Unit::Bytes,
        "Bytes per group-commit write."
    );
    describe_histogram!(
        "ringmq_log_write_seconds",
        Unit::Seconds,
        "Duration of one group-commit write."
    );
    describe_histogram!(
        "ringmq_log_queue_seconds",
        Unit::Seconds,
        "Time an append waited in its partition's write queue before its write started (behind earlier writes, fdatasyncs and segment rolls)."
    );
    describe_histogram!(
        "ringmq_log_roll_seconds",
        Unit::Seconds,
        "Duration of one segment roll (sealing fdatasync of the old segment, creating the new one); appends queued behind it wait for it."
    );
    describe_histogram!(
        "ringmq_log_fsync_seconds",
        Unit::Seconds,
        "Duration of one fdatasync of a partition log."
    );
    describe_gauge!(
        "ringmq_log_start_offset",
        "First offset still in the partition log."
    );
    describe_gauge!(
        "ringmq_log_end_offset",
        "One past the last readable offset of the partition log (high watermark)."
    );
    describe_gauge!("ringmq_log_segments", "Segments of the partition log.");
    describe_gauge!(
        "ringmq_log_size_bytes",
        Unit::Bytes,
        "Bytes of the partition log on disk."
    );
    describe_gauge!(
        "ringmq_log_pending_bytes",
        Unit::Bytes,
        "Bytes queued for the partition's next write (bounded by pending_bytes_max)."
    );
    describe_gauge!(
        "ringmq_log_tail_cache_bytes",
        Unit::Bytes,
        "Bytes in the partition's tail cache (bounded by tail_cache_bytes_max)."
    );
    describe_gauge!(
        "ringmq_log_damaged_bytes",
        Unit::Bytes,
        "Bytes of damage isolated in the partition's sealed segments (reads skip them)."
    );
    describe_gauge!(
        "ringmq_log_dedup_ids",
        "Deduplication ids the partition remembers (bounded by dedup_ids_max)."
    );
    describe_counter!(
        "ringmq_log_dedup_dropped_total",
        "Records dropped on append as duplicates of an x-dedup-id seen within dedup_window_ms."
    );
    describe_gauge!(
        "ringmq_log_damaged_ranges",
        "Damaged ranges isolated in the partition's sealed segments (see the log for each)."
    );
}

/// The log's metric handles, registered once per partition with its labels.
pub(super) struct LogMetrics {
    pub(super) appended_bytes: Counter,
    pub(super) appended_records: Counter,
    pub(super) appended_batches: Counter,
    pub(super) read_bytes_cache: Counter,
    pub(super) read_bytes_disk: Counter,
    pub(super) write_failures: Counter,
    pub(super) backpressure_waits: Counter,
    pub(super) retention_deleted_segments: Counter,
    pub(super) flush_bytes: Histogram,
    pub(super) write_seconds: Histogram,
    pub(super) fsync_seconds: Histogram,
    pub(super) queue_seconds: Histogram,
    pub(super) roll_seconds: Histogram,
    pub(super) log_start_offset: Gauge,
    pub(super) log_end_offset: Gauge,
    pub(super) segments: Gauge,
    pub(super) size_bytes: Gauge,
    pub(super) pending_bytes: Gauge,
    pub(super) tail_cache_bytes: Gauge,
    pub(super) damaged_bytes: Gauge,
    pub(super) damaged_ranges: Gauge,
    pub(super) dedup_ids: Gauge,
    pub(super) dedup_dropped: Counter,
}

impl LogMetrics {
    pub(super) fn new(labels: &[(String, String)]) -> LogMetrics {
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(k.clone(), v.clone()))
            .collect();
        let with_source = |source: &'static str| {
            let mut labels = labels.clone();
            labels.push(Label::new("source", source));
            labels
        };
        LogMetrics {
            appended_bytes: metrics::counter!("ringmq_log_appended_bytes_total", labels.clone()),
            appended_records: metrics::counter!(
                "ringmq_log_appended_records_total",
                labels.clone()
            ),
            appended_batches: metrics::counter!(
                "ringmq_log_appended_batches_total",
                labels.clone()
            ),
            read_bytes_cache: metrics::counter!(
                "ringmq_log_read_bytes_total",
                with_source("cache")
            ),
            read_bytes_disk: metrics::counter!("ringmq_log_read_bytes_total", with_source("disk")),
            write_failures: metrics::counter!("ringmq_log_write_failures_total", labels.clone()),
            backpressure_waits: metrics::counter!(
                "ringmq_log_backpressure_waits_total",
                labels.clone()
            ),
            retention_deleted_segments: metrics::counter!(
                "ringmq_log_retention_deleted_segments_total",
                labels.clone()
            ),
            flush_bytes: metrics::histogram!("ringmq_log_flush_bytes", labels.clone()),
            write_seconds: metrics::histogram!("ringmq_log_write_seconds", labels.clone()),
            fsync_seconds: metrics::histogram!("ringmq_log_fsync_seconds", labels.clone()),
            queue_seconds: metrics::histogram!("ringmq_log_queue_seconds", labels.clone()),
            roll_seconds: metrics::histogram!("ringmq_log_roll_seconds", labels.clone()),
            log_start_offset: metrics::gauge!("ringmq_log_start_offset", labels.clone()),
            log_end_offset: metrics::gauge!("ringmq_log_end_offset", labels.clone()),
            segments: metrics::gauge!("ringmq_log_segments", labels.clone()),
            size_bytes: metrics::gauge!("ringmq_log_size_bytes", labels.clone()),
            pending_bytes: metrics::gauge!("ringmq_log_pending_bytes", labels.clone()),
            tail_cache_bytes: metrics::gauge!("ringmq_log_tail_cache_bytes", labels.clone()),
            damaged_bytes: metrics::gauge!("ringmq_log_damaged_bytes", labels.clone()),
            damaged_ranges: metrics::gauge!("ringmq_log_damaged_ranges", labels.clone()),
            dedup_ids: metrics::gauge!("ringmq_log_dedup_ids", labels.clone()),
            dedup_dropped: metrics::counter!("ringmq_log_dedup_dropped_total", labels),
        }
    }
}
