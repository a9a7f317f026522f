//! Acquisition: a receive read messages from the log; here those still available are locked
//! to the consumer, within its budget. A message whose delivery is still delayed (its record's
//! timestamp + delay lies ahead, `queues::delay`) is not delivered but held as delayed until
//! then, unless it was delivered before: a delay counts from the message's production once.

use super::{Delivered, QueueState, Span, Status, change};

/// A message a receive read, as the state needs it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    pub offset: u64,
    /// Not to be delivered before this (epoch ms; 0: at once).
    pub due_ms: u64,
    /// Its FIFO message group's key, hashed (None: unordered).
    pub fifo_key: Option<u64>,
}

impl QueueState {
    /// Locks for `consumer` those of `offsets` (ascending, as read from the log) still
    /// available and within its budget, until `now_ms + visibility_ms`.
    pub fn acquire(
        &mut self,
        consumer: u64,
        offsets: &[u64],
        visibility_ms: u32,
        now_ms: u64,
    ) -> Vec<Delivered> {
        let incoming: Vec<Incoming> = offsets
            .iter()
            .map(|&offset| Incoming {
                offset,
                ..Incoming::default()
            })
            .collect();
        self.acquire_incoming(consumer, &incoming, visibility_ms, now_ms)
    }

    /// Locks for `consumer` those of `incoming` (ascending, as read from the log) still
    /// available, due and within its budget, until `now_ms + visibility_ms`; holds the ones
    /// not yet due as delayed. Offsets the read skipped between the cursor and a read one
    /// (damage) are archived as lost.
    pub fn acquire_incoming(
        &mut self,
        consumer: u64,
        incoming: &[Incoming],
        visibility_ms: u32,
        now_ms: u64,
    ) -> Vec<Delivered> {
        let mut budget = self.budget(consumer, u64::MAX);
        let deadline_ms = now_ms.saturating_add(u64::from(visibility_ms));
        let window_end = self.end(u64::MAX);
        let locked = Status::Locked {
            holder: Some(consumer),
            deadline_ms,
        };
        let mut delivered = Vec::new();
        for &Incoming {
            offset,
            due_ms,
            fifo_key,
        } in incoming
        {
            if budget == 0 || offset >= window_end {
                break;
            }
            if offset < self.settled_below {
                continue;
            }
            let delayed = Status::Locked {
                holder: None,
                deadline_ms: due_ms,
            };
            if offset >= self.cursor {
                if offset > self.cursor {
                    self.stats.lost += offset - self.cursor;
                    self.append(Span::fresh(offset - 1, Status::Archived));
                }
                if due_ms > now_ms {
                    self.append(Span::fresh(offset, delayed));
                    self.next_deadline_ms = self.next_deadline_ms.min(due_ms);
                    continue;
                }
                if let Some(key) = fifo_key
                    && !self.fifo_admit(key, offset)
                {
                    continue;
                }
                self.append(Span::fresh(offset, locked));
            } else {
                match self.spans.get(offset) {
                    Some((
                        _,
                        Span {
                            status: Status::Available { .. },
                            deliveries,
                            ..
                        },
                    )) => {
                        if deliveries == 0 && due_ms > now_ms {
                            change(
                                &mut self.spans,
                                &mut self.ledger,
                                offset,
                                offset,
                                |_, span| span.status = delayed,
                            );
                            self.next_deadline_ms = self.next_deadline_ms.min(due_ms);
                            continue;
                        }
                        if let Some(key) = fifo_key
                            && !self.fifo_admit(key, offset)
                        {
                            continue;
                        }
                    }
                    _ => continue,
                }
            }
            let mut this = None;
            change(
                &mut self.spans,
                &mut self.ledger,
                offset,
                offset,
                |_, span| {
                    span.status = locked;
                    if span.deliveries == 0 {
                        span.first_delivery_ms = now_ms;
                    }
                    span.deliveries = span.deliveries.saturating_add(1);
                    span.last_delivery_ms = now_ms;
                    this = Some(Delivered {
                        offset,
                        deliveries: span.deliveries,
                        first_delivery_ms: span.first_delivery_ms,
                        deadline_ms,
                    });
                },
            );
            let Some(this) = this else { continue };
            self.stats.deliveries += 1;
            if this.deliveries > 1 {
                self.stats.redeliveries += 1;
            }
            delivered.push(this);
            budget -= 1;
        }
        if !delivered.is_empty() {
            self.next_deadline_ms = self.next_deadline_ms.min(deadline_ms);
        }
        self.collapse();
        delivered
    }
}
