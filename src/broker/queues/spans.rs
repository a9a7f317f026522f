//! A queue group's window over one partition, as spans: runs of consecutive offsets that share
//! one state. Receives lock runs of messages and consumers settle runs, so a window of thousands
//! of messages is usually a handful of spans; a message that differs from its neighbours costs
//! one span, never more. The spans cover the window exactly, with no gap and no overlap.

use std::collections::BTreeMap;

/// A consumer, by the hash of the id it sends (ids are client-chosen strings; a 64-bit hash
/// keeps spans small and comparable, and two ids colliding is a 2^-64 event).
pub type ConsumerId = u64;

/// Where one message is in its life in a queue group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Ready for delivery. `expired_from` remembers whose lock expired last, so that consumer's
    /// late settle is told its lock expired rather than that it never held the message.
    Available { expired_from: Option<ConsumerId> },
    /// Locked until `deadline_ms`: by a consumer, or by nobody (a release with a delay).
    Locked {
        holder: Option<ConsumerId>,
        deadline_ms: u64,
    },
    /// Being written to the dead-letter topic; archived once that is durable.
    DeadLettering,
    /// Acknowledged: settled.
    Acked,
    /// Dead-lettered (or lost to damage or retention): settled.
    Archived,
}

impl Status {
    pub fn is_settled(self) -> bool {
        matches!(self, Status::Acked | Status::Archived)
    }
}

/// One run of offsets `first..=last` (its first offset is its key in `Spans`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub last: u64,
    pub status: Status,
    /// Times these messages were acquired.
    pub deliveries: u32,
    /// Wall-clock times of the first and the latest acquisition (0: never delivered).
    pub first_delivery_ms: u64,
    pub last_delivery_ms: u64,
}

impl Span {
    /// A run never delivered, in `status`.
    pub fn fresh(last: u64, status: Status) -> Span {
        Span {
            last,
            status,
            deliveries: 0,
            first_delivery_ms: 0,
            last_delivery_ms: 0,
        }
    }

    /// Whether `next`, which starts right after this span, can join it.
    fn joins(&self, next: &Span) -> bool {
        Span { last: 0, ..*self } == Span { last: 0, ..*next }
    }
}

/// The spans of a window, by first offset.
#[derive(Clone, Debug, Default)]
pub struct Spans {
    map: BTreeMap<u64, Span>,
}

impl Spans {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &Span)> {
        self.map.iter().map(|(first, span)| (*first, span))
    }

    pub fn first(&self) -> Option<(u64, Span)> {
        self.map
            .first_key_value()
            .map(|(first, span)| (*first, *span))
    }

    /// The span holding `offset`, with its first offset.
    pub fn get(&self, offset: u64) -> Option<(u64, Span)> {
        let (first, span) = self.map.range(..=offset).next_back()?;
        (span.last >= offset).then_some((*first, *span))
    }

    /// Spans overlapping `first..=last`, each with its first offset, clipped to the range.
    pub fn overlapping(&self, first: u64, last: u64) -> Vec<(u64, Span)> {
        let start = self.get(first).map_or(first, |(start, _)| start);
        self.map
            .range(start..=last)
            .map(|(start, span)| {
                let clipped = Span {
                    last: span.last.min(last),
                    ..*span
                };
                ((*start).max(first), clipped)
            })
            .collect()
    }

    /// Adds `span` starting at `first`, right after the last span (the window grows upward).
    pub fn push(&mut self, first: u64, span: Span) {
        debug_assert!(first <= span.last);
        debug_assert!(
            self.map
                .last_key_value()
                .is_none_or(|(_, last)| last.last.checked_add(1) == Some(first))
        );
        self.map.insert(first, span);
        self.coalesce(first, first);
    }

    /// Removes and returns the first span.
    pub fn pop_first(&mut self) -> Option<(u64, Span)> {
        self.map.pop_first()
    }

    /// Runs `change` on each span inside `first..=last` (split at both ends so that `change`
    /// sees only offsets of the range), then joins runs that became alike.
    pub fn update(&mut self, first: u64, last: u64, mut change: impl FnMut(u64, &mut Span)) {
        self.split_before(first);
        if let Some(after) = last.checked_add(1) {
            self.split_before(after);
        }
        for (start, span) in self.map.range_mut(first..=last) {
            change(*start, span);
        }
        let from = self
            .map
            .range(..first)
            .next_back()
            .map_or(first, |(start, _)| *start);
        self.coalesce(from, last.saturating_add(1));
    }

    /// Splits the span holding `offset` so that a span starts at `offset`.
    fn split_before(&mut self, offset: u64) {
        let Some((first, span)) = self.get(offset) else {
            return;
        };
        if first == offset {
            return;
        }
        self.map.insert(
            first,
            Span {
                last: offset - 1,
                ..span
            },
        );
        self.map.insert(offset, span);
    }

    /// Joins alike neighbours among the spans starting in `from..=to`.
    fn coalesce(&mut self, from: u64, to: u64) {
        let starts: Vec<u64> = self.map.range(from..=to).map(|(start, _)| *start).collect();
        let mut current: Option<u64> = self.map.range(..from).next_back().map(|(s, _)| *s);
        for start in starts {
            let joined = current.is_some_and(|previous| {
                let (Some(before), Some(next)) = (self.map.get(&previous), self.map.get(&start))
                else {
                    return false;
                };
                before.last.checked_add(1) == Some(start) && before.joins(next)
            });
            match (joined, current) {
                (true, Some(previous)) => {
                    if let Some(next) = self.map.remove(&start)
                        && let Some(before) = self.map.get_mut(&previous)
                    {
                        before.last = next.last;
                    }
                }
                _ => current = Some(start),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVAILABLE: Status = Status::Available { expired_from: None };

    fn shape(spans: &Spans) -> Vec<(u64, u64, Status)> {
        spans
            .iter()
            .map(|(first, span)| (first, span.last, span.status))
            .collect()
    }

    #[test]
    fn updates_split_at_both_ends_and_alike_neighbours_join_again() {
        let mut spans = Spans::default();
        spans.push(10, Span::fresh(19, AVAILABLE));
        spans.update(12, 14, |_, span| span.status = Status::Acked);
        assert_eq!(
            shape(&spans),
            vec![
                (10, 11, AVAILABLE),
                (12, 14, Status::Acked),
                (15, 19, AVAILABLE)
            ]
        );
        spans.update(12, 14, |_, span| span.status = AVAILABLE);
        assert_eq!(shape(&spans), vec![(10, 19, AVAILABLE)]);
        spans.push(20, Span::fresh(25, AVAILABLE));
        assert_eq!(shape(&spans), vec![(10, 25, AVAILABLE)]);
        spans.update(25, 25, |_, span| span.status = Status::Archived);
        spans.update(10, 10, |_, span| span.status = Status::Archived);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans.get(24).map(|(first, _)| first), Some(11));
        assert_eq!(spans.get(26), None);
        let clipped: Vec<(u64, u64)> = spans
            .overlapping(20, 25)
            .iter()
            .map(|(first, span)| (*first, span.last))
            .collect();
        assert_eq!(clipped, vec![(20, 24), (25, 25)]);
    }
}
