//! One queue group's state on one partition: the state machine of its messages. Pure (no I/O,
//! time passed in), so it is tested deterministically; `partition.rs` drives it and journals
//! what it decides.
//!
//! Offsets below `settled_below` are all settled (acknowledged or archived): that prefix is one
//! number. Offsets from `cursor` up were never delivered: they are available and need no state.
//! Between the two is the window, held as spans (`spans.rs`). The window is bounded by
//! `window_messages_max`, the locks by `max_in_flight` and each consumer's by `max_unacked`.

use std::collections::HashMap;

use super::journal::Entry;
use super::settings::QueueSettings;
use super::spans::{ConsumerId, Span, Spans, Status};
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

/// What a consumer does with messages it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Ack,
    /// Available again now, or after `delay_ms` (dead-lettered instead once delivered
    /// `max_deliveries` times).
    Release {
        delay_ms: u32,
    },
    /// Archive to the dead-letter topic at once.
    Reject,
    /// Lock for `visibility_ms` more, from now.
    Extend {
        visibility_ms: u32,
    },
}

/// Why a message goes to the dead-letter topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    LockExpired,
    Released,
}

/// Messages `first..=last` to write to the dead-letter topic, then archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub first: u64,
    pub last: u64,
    pub reason: Reason,
}

/// One message a receive acquired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub offset: u64,
    pub deliveries: u32,
    pub first_delivery_ms: u64,
    pub deadline_ms: u64,
}

/// What a settle changed, for the caller to journal and carry out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Acknowledged, to journal.
    pub acked: Option<(u64, u64)>,
    pub dead_letters: Vec<DeadLetter>,
}

/// Running totals, published as counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub deliveries: u64,
    pub redeliveries: u64,
    pub acks: u64,
    pub releases: u64,
    pub rejects: u64,
    pub lock_expiries: u64,
    pub dead_lettered: u64,
    /// Messages gone before they were settled (retention, damage).
    pub lost: u64,
    /// Messages settled by a purge.
    pub purged: u64,
}

/// Counts of the window, for describe and the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct View {
    pub settled_below: u64,
    pub cursor: u64,
    /// Available now: redeliveries in the window and never-delivered messages up to `end`.
    pub available: u64,
    pub in_flight: u64,
    pub delayed: u64,
    pub spans: u64,
    pub consumers: u64,
    /// FIFO group keys in play (each with a message in flight or parked).
    pub fifo_keys: u64,
    /// The lowest offset available now (released, lock expired, or not yet delivered), if any.
    pub oldest_available: Option<u64>,
}

/// Locks held, in all and per consumer; kept in step with every status change.
#[derive(Debug, Default)]
struct Ledger {
    held: HashMap<ConsumerId, u64>,
    in_flight: u64,
}

impl Ledger {
    fn count(&mut self, span: &Span, first: u64, adding: bool) {
        let Status::Locked {
            holder: Some(consumer),
            ..
        } = span.status
        else {
            return;
        };
        let len = span.last - first + 1;
        let held = self.held.entry(consumer).or_default();
        if adding {
            *held += len;
            self.in_flight += len;
        } else {
            debug_assert!(*held >= len && self.in_flight >= len);
            *held = held.saturating_sub(len);
            self.in_flight = self.in_flight.saturating_sub(len);
            if *held == 0 {
                self.held.remove(&consumer);
            }
        }
    }
}

/// Changes the spans in `first..=last` with `change`, keeping the ledger in step.
fn change(
    spans: &mut Spans,
    ledger: &mut Ledger,
    first: u64,
    last: u64,
    mut change: impl FnMut(u64, &mut Span),
) {
    spans.update(first, last, |start, span| {
        ledger.count(span, start, false);
        change(start, span);
        ledger.count(span, start, true);
    });
}

#[derive(Debug)]
pub struct QueueState {
    settings: QueueSettings,
    settled_below: u64,
    cursor: u64,
    spans: Spans,
    ledger: Ledger,
    /// No lock expires before this (it may be early, never late).
    next_deadline_ms: u64,
    pub stats: Stats,
    fifo: fifo::Fifo,
}

fn len(first: u64, span: &Span) -> u64 {
    span.last - first + 1
}

impl QueueState {
    pub fn new(settings: QueueSettings, start: u64) -> QueueState {
        QueueState {
            settings,
            settled_below: start,
            cursor: start,
            spans: Spans::default(),
            ledger: Ledger::default(),
            next_deadline_ms: u64::MAX,
            stats: Stats::default(),
            fifo: fifo::Fifo::default(),
        }
    }

    pub fn settings(&self) -> &QueueSettings {
        &self.settings
    }

    /// New settings for the group as it is: locks held keep their deadlines, and the
    /// bounds apply from the next receive.
    pub fn configure(&mut self, settings: QueueSettings) {
        self.settings = settings;
    }

    pub fn settled_below(&self) -> u64 {
        self.settled_below
    }

    /// Locks `consumer` may still take, up to `wanted`.
    fn budget(&self, consumer: ConsumerId, wanted: u64) -> u64 {
        let held = self.ledger.held.get(&consumer).copied().unwrap_or(0);
        let group_room =
            u64::from(self.settings.max_in_flight).saturating_sub(self.ledger.in_flight);
        let consumer_room = u64::from(self.settings.max_unacked).saturating_sub(held);
        wanted.min(group_room).min(consumer_room)
    }

    /// The end of what may be delivered: the log's end, or the window's.
    fn end(&self, high_watermark: u64) -> u64 {
        let window_end = self
            .settled_below
            .saturating_add(u64::from(self.settings.window_messages_max));
        high_watermark.min(window_end)
    }

    /// The offset ranges a receive for up to `wanted` messages should read, lowest first:
    /// messages available again, then never-delivered ones. Offsets below `log_start` (gone to
    /// retention) are archived first.
    pub fn plan(
        &mut self,
        consumer: ConsumerId,
        wanted: u64,
        log_start: u64,
        high_watermark: u64,
    ) -> Vec<(u64, u64)> {
        self.skip_below(log_start);
        let mut budget = self.budget(consumer, wanted);
        let mut ranges = Vec::new();
        for (first, span) in self.spans.iter() {
            if budget == 0 {
                break;
            }
            if let Status::Available { .. } = span.status {
                let taken = len(first, span).min(budget);
                ranges.push((first, first + taken - 1));
                budget -= taken;
            }
        }
        let end = self.end(high_watermark);
        if budget > 0 && self.cursor < end {
            ranges.push((self.cursor, end.min(self.cursor.saturating_add(budget)) - 1));
        }
        ranges
    }

    /// Whether a receive by `consumer` would find anything now.
    pub fn has_acquirable(&self, consumer: ConsumerId, high_watermark: u64) -> bool {
        self.budget(consumer, 1) > 0
            && (self.cursor < self.end(high_watermark)
                || self
                    .spans
                    .iter()
                    .any(|(_, span)| matches!(span.status, Status::Available { .. })))
    }

    /// Adds a span at the cursor.
    fn append(&mut self, span: Span) {
        let first = self.cursor;
        self.ledger.count(&span, first, true);
        self.spans.push(first, span);
        self.cursor = span.last + 1;
    }

    /// Checks that `consumer` holds `first..=last` under live locks.
    pub fn check(
        &self,
        consumer: ConsumerId,
        first: u64,
        last: u64,
        now_ms: u64,
    ) -> BrokerResult<()> {
        if first > last {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!("offset range {first}..={last} is empty"),
            ));
        }
        let not_held = |offset: u64| {
            BrokerError::new(
                ErrorKind::LockNotHeld,
                format!("offset {offset} is not locked by this consumer"),
            )
        };
        if first < self.settled_below {
            return Err(not_held(first));
        }
        if last >= self.cursor {
            return Err(not_held(first.max(self.cursor)));
        }
        for (start, span) in self.spans.overlapping(first, last) {
            let expired = || {
                BrokerError::new(
                    ErrorKind::LockExpired,
                    format!("the lock on offset {start} expired"),
                )
            };
            match span.status {
                Status::Locked {
                    holder: Some(holder),
                    deadline_ms,
                } if holder == consumer => {
                    if deadline_ms <= now_ms {
                        return Err(expired());
                    }
                }
                Status::Available {
                    expired_from: Some(holder),
                } if holder == consumer => return Err(expired()),
                _ => return Err(not_held(start)),
            }
        }
        Ok(())
    }

    /// Settles `first..=last`, all of which `consumer` must hold; nothing changes on an error.
    pub fn settle(
        &mut self,
        consumer: ConsumerId,
        first: u64,
        last: u64,
        action: Action,
        now_ms: u64,
    ) -> BrokerResult<Settled> {
        self.check(consumer, first, last, now_ms)?;
        let max_deliveries = self.settings.max_deliveries;
        let stats = &mut self.stats;
        let mut settled = Settled::default();
        let mut next_deadline_ms = self.next_deadline_ms;
        change(
            &mut self.spans,
            &mut self.ledger,
            first,
            last,
            |start, span| {
                let count = len(start, span);
                match action {
                    Action::Ack => {
                        stats.acks += count;
                        span.status = Status::Acked;
                    }
                    Action::Reject => {
                        stats.rejects += count;
                        span.status = Status::DeadLettering;
                        settled.dead_letters.push(DeadLetter {
                            first: start,
                            last: span.last,
                            reason: Reason::Rejected,
                        });
                    }
                    Action::Release { delay_ms } => {
                        stats.releases += count;
                        span.status = if span.deliveries >= max_deliveries {
                            settled.dead_letters.push(DeadLetter {
                                first: start,
                                last: span.last,
                                reason: Reason::Released,
                            });
                            Status::DeadLettering
                        } else if delay_ms == 0 {
                            Status::Available { expired_from: None }
                        } else {
                            let deadline_ms = now_ms.saturating_add(u64::from(delay_ms));
                            next_deadline_ms = next_deadline_ms.min(deadline_ms);
                            Status::Locked {
                                holder: None,
                                deadline_ms,
                            }
                        };
                    }
                    Action::Extend { visibility_ms } => {
                        span.status = Status::Locked {
                            holder: Some(consumer),
                            deadline_ms: now_ms.saturating_add(u64::from(visibility_ms)),
                        };
                    }
                }
            },
        );
        self.next_deadline_ms = next_deadline_ms;
        if action == Action::Ack {
            settled.acked = Some((first, last));
        }
        self.collapse();
        Ok(settled)
    }

    /// No lock or delay ends before this (u64::MAX: none is pending).
    pub fn next_deadline_ms(&self) -> u64 {
        self.next_deadline_ms
    }

    /// Ends the locks whose deadline has passed: their messages are available again, or
    /// dead-lettered once delivered `max_deliveries` times. Returns the dead letters to write.
    pub fn expire(&mut self, now_ms: u64) -> Vec<DeadLetter> {
        if now_ms < self.next_deadline_ms {
            return Vec::new();
        }
        let mut expired = Vec::new();
        let mut next_deadline_ms = u64::MAX;
        for (first, span) in self.spans.iter() {
            if let Status::Locked { deadline_ms, .. } = span.status {
                if deadline_ms <= now_ms {
                    expired.push((first, span.last));
                } else {
                    next_deadline_ms = next_deadline_ms.min(deadline_ms);
                }
            }
        }
        self.next_deadline_ms = next_deadline_ms;
        let max_deliveries = self.settings.max_deliveries;
        let stats = &mut self.stats;
        let mut dead_letters = Vec::new();
        for (first, last) in expired {
            change(
                &mut self.spans,
                &mut self.ledger,
                first,
                last,
                |start, span| {
                    let Status::Locked { holder, .. } = span.status else {
                        return;
                    };
                    let Some(holder) = holder else {
                        span.status = Status::Available { expired_from: None };
                        return;
                    };
                    stats.lock_expiries += len(start, span);
                    span.status = if span.deliveries >= max_deliveries {
                        dead_letters.push(DeadLetter {
                            first: start,
                            last: span.last,
                            reason: Reason::LockExpired,
                        });
                        Status::DeadLettering
                    } else {
                        Status::Available {
                            expired_from: Some(holder),
                        }
                    };
                },
            );
        }
        dead_letters
    }

    /// The spans of `first..=last` (for dead letters' headers).
    pub fn spans_in(&self, first: u64, last: u64) -> Vec<(u64, Span)> {
        self.spans.overlapping(first, last)
    }

    /// Archives the dead-lettering messages of `first..=last` once their dead letters are
    /// durable; returns how many.
    pub fn finish_dead_letter(&mut self, first: u64, last: u64) -> u64 {
        let (first, last) = (
            first.max(self.settled_below),
            last.min(self.cursor.saturating_sub(1)),
        );
        if first > last || self.cursor == 0 {
            return 0;
        }
        let mut archived = 0;
        change(
            &mut self.spans,
            &mut self.ledger,
            first,
            last,
            |start, span| {
                if span.status == Status::DeadLettering {
                    archived += len(start, span);
                    span.status = Status::Archived;
                }
            },
        );
        self.stats.dead_lettered += archived;
        self.collapse();
        archived
    }

    /// Archives what lies below `log_start` (deleted by retention) as lost.
    fn skip_below(&mut self, log_start: u64) {
        if log_start <= self.settled_below {
            return;
        }
        let upto = log_start.min(self.cursor);
        if upto > self.settled_below {
            let lost = &mut self.stats.lost;
            change(
                &mut self.spans,
                &mut self.ledger,
                self.settled_below,
                upto - 1,
                |start, span| {
                    if !span.status.is_settled() {
                        *lost += len(start, span);
                        span.status = Status::Archived;
                    }
                },
            );
        }
        if self.cursor < log_start {
            // Never delivered, and gone before they were: lost as much as those in the window.
            self.stats.lost += log_start - self.cursor;
            self.cursor = log_start;
        }
        self.collapse();
    }

    /// Folds the settled spans at the front of the window into `settled_below`.
    fn collapse(&mut self) {
        self.fifo_advance();
        while let Some((_, span)) = self.spans.first() {
            if !span.status.is_settled() {
                break;
            }
            self.spans.pop_first();
            self.settled_below = span.last + 1;
        }
        if self.spans.is_empty() {
            self.settled_below = self.cursor;
        }
        debug_assert!(self.settled_below <= self.cursor);
    }

    /// Replays one journal entry at start: every message it names as acquired is available
    /// again with its delivery count (its lock died with the process).
    pub fn restore(&mut self, entry: &Entry) {
        let (first, last, span) = match *entry {
            Entry::Acquired {
                first,
                last,
                deliveries,
                first_delivery_ms,
                last_delivery_ms,
            } => (
                first,
                last,
                Span {
                    last,
                    status: Status::Available { expired_from: None },
                    deliveries,
                    first_delivery_ms,
                    last_delivery_ms,
                },
            ),
            Entry::Settled {
                first,
                last,
                archived,
            } => {
                let status = if archived {
                    Status::Archived
                } else {
                    Status::Acked
                };
                (first, last, Span::fresh(last, status))
            }
            Entry::Define { .. } | Entry::Configure { .. } | Entry::Drop => return,
        };
        if last < self.settled_below || first > last {
            return;
        }
        let first = first.max(self.settled_below);
        let below_cursor = self.cursor;
        if last >= self.cursor {
            let from = first.max(self.cursor);
            if from > self.cursor {
                self.append(Span::fresh(
                    from - 1,
                    Status::Available { expired_from: None },
                ));
            }
            self.append(span);
        }
        if first < below_cursor {
            let upto = last.min(below_cursor - 1);
            change(&mut self.spans, &mut self.ledger, first, upto, |_, old| {
                let newer = span.status.is_settled() || old.deliveries <= span.deliveries;
                if !old.status.is_settled() && newer {
                    *old = Span {
                        last: old.last,
                        ..span
                    };
                }
            });
        }
        self.collapse();
    }

    /// The entries that rebuild this state (for the journal's compaction).
    pub fn snapshot(&self) -> Vec<Entry> {
        let mut entries = vec![Entry::Define {
            start: self.settled_below,
            settings: self.settings.clone(),
        }];
        for (first, span) in self.spans.iter() {
            let entry = match span.status {
                Status::Acked | Status::Archived => Entry::Settled {
                    first,
                    last: span.last,
                    archived: span.status == Status::Archived,
                },
                _ if span.deliveries > 0 => Entry::Acquired {
                    first,
                    last: span.last,
                    deliveries: span.deliveries,
                    first_delivery_ms: span.first_delivery_ms,
                    last_delivery_ms: span.last_delivery_ms,
                },
                _ => continue,
            };
            entries.push(entry);
        }
        entries
    }

    /// Messages delivered `max_deliveries` times and unsettled (after a restart: their last
    /// lock died with the process), to dead-letter now.
    pub fn exhausted(&mut self) -> Vec<DeadLetter> {
        let max_deliveries = self.settings.max_deliveries;
        let exhausted: Vec<(u64, u64)> = self
            .spans
            .iter()
            .filter(|(_, span)| {
                matches!(span.status, Status::Available { .. }) && span.deliveries >= max_deliveries
            })
            .map(|(first, span)| (first, span.last))
            .collect();
        for (first, last) in &exhausted {
            change(
                &mut self.spans,
                &mut self.ledger,
                *first,
                *last,
                |_, span| {
                    span.status = Status::DeadLettering;
                },
            );
        }
        exhausted
            .into_iter()
            .map(|(first, last)| DeadLetter {
                first,
                last,
                reason: Reason::LockExpired,
            })
            .collect()
    }

    pub fn view(&self, high_watermark: u64) -> View {
        let mut view = View {
            settled_below: self.settled_below,
            cursor: self.cursor,
            available: self.end(high_watermark).saturating_sub(self.cursor),
            in_flight: self.ledger.in_flight,
            spans: self.spans.len() as u64,
            consumers: self.ledger.held.len() as u64,
            fifo_keys: self.fifo.keys() as u64,
            ..View::default()
        };
        // Beyond the window's end the messages are waiting too, just not deliverable yet.
        view.available += high_watermark.saturating_sub(self.end(high_watermark).max(self.cursor));
        if high_watermark > self.cursor {
            view.oldest_available = Some(self.cursor);
        }
        for (first, span) in self.spans.iter() {
            match span.status {
                Status::Available { .. } => {
                    view.available += len(first, span);
                    view.oldest_available = Some(
                        view.oldest_available
                            .map_or(first, |oldest| oldest.min(first)),
                    );
                }
                Status::Locked { holder: None, .. } => view.delayed += len(first, span),
                _ => {}
            }
        }
        view
    }
}

mod acquire;
pub mod fifo;
mod purge;

pub use acquire::Incoming;
#[cfg(test)]
mod tests;
