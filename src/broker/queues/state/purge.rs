//! Purge: settle (acknowledge) everything a queue group has available now, in one step: the
//! window's available messages and every never-delivered one up to the log's end. Messages
//! locked to a consumer, delayed or being dead-lettered are left as they are.

use super::{QueueState, Span, Status, change, len};

impl QueueState {
    /// Acknowledges every message available now; returns how many and the offset ranges
    /// settled (ascending), for the journal.
    pub fn purge(&mut self, log_start: u64, high_watermark: u64) -> (u64, Vec<(u64, u64)>) {
        self.skip_below(log_start);
        let mut ranges: Vec<(u64, u64)> = self
            .spans
            .iter()
            .filter(|(_, span)| matches!(span.status, Status::Available { .. }))
            .map(|(first, span)| (first, span.last))
            .collect();
        let mut count = 0;
        for &(first, last) in &ranges {
            change(
                &mut self.spans,
                &mut self.ledger,
                first,
                last,
                |start, span| {
                    count += len(start, span);
                    span.status = Status::Acked;
                },
            );
        }
        if self.cursor < high_watermark {
            ranges.push((self.cursor, high_watermark - 1));
            count += high_watermark - self.cursor;
            self.append(Span::fresh(high_watermark - 1, Status::Acked));
        }
        self.stats.purged += count;
        self.collapse();
        (count, ranges)
    }
}
