//! One shard's request/reply state, by connection: its direct inbox (the correlation ids it
//! awaits, with their deadlines, and the replies that arrived, waiting to be received) and its
//! temporary reply topics. Everything is bounded by configuration, and the shard's totals are
//! gauges. Only this shard's tasks touch it (a reply from elsewhere hops here first).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::batch::Record;
use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};
use crate::config::BrokerConfig;
use crate::runtime::Notify;

/// What became of a direct reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Queued for the requester, which had the correlation id pending.
    Delivered,
    /// The correlation id was not pending: timed out, answered already, or never asked.
    Late,
    /// The requesting connection is gone (or the name's nonce is not its inbox's).
    NoRequester,
    /// The requester's queue of unreceived replies is full.
    Full,
}

impl Delivery {
    pub fn label(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Late => "late",
            Delivery::NoRequester => "no_requester",
            Delivery::Full => "full",
        }
    }
}

/// A connection's direct inbox.
pub struct Inbox {
    pub nonce: u64,
    inner: RefCell<InboxInner>,
    arrived: Notify,
}

#[derive(Default)]
struct InboxInner {
    /// Correlation id -> when the requester stops waiting for it.
    pending: HashMap<String, Instant>,
    queue: VecDeque<Record>,
    queued_bytes: usize,
}

/// A reply's size as counted against `reply_queue_bytes_max`.
fn record_bytes(record: &Record) -> usize {
    let len = |bytes: &Option<bytes::Bytes>| bytes.as_ref().map_or(0, |bytes| bytes.len());
    record.headers.iter().fold(
        len(&record.key).saturating_add(len(&record.value)),
        |size, header| size.saturating_add(header.key.len() + len(&header.value)),
    )
}

#[derive(Default)]
struct ConnectionReplies {
    inbox: Option<Rc<Inbox>>,
    temporary: Vec<String>,
}

/// One shard's request/reply state.
#[derive(Default)]
pub struct Replies {
    connections: RefCell<HashMap<u64, ConnectionReplies>>,
    pending: Cell<usize>,
    queued: Cell<usize>,
    queued_bytes: Cell<usize>,
    temporary: Cell<usize>,
    /// The shard's gauges (pending, queued, queued bytes, temporary), made on first use.
    gauges: std::cell::OnceCell<[metrics::Gauge; 4]>,
}

impl Replies {
    /// The connection's inbox, made on first use with `nonce`.
    pub fn inbox(&self, shard: usize, connection: u64, nonce: u64) -> Rc<Inbox> {
        let mut connections = self.connections.borrow_mut();
        let entry = connections.entry(connection).or_default();
        let inbox = entry.inbox.get_or_insert_with(|| {
            Rc::new(Inbox {
                nonce,
                inner: RefCell::default(),
                arrived: Notify::default(),
            })
        });
        let inbox = inbox.clone();
        drop(connections);
        self.gauges(shard);
        inbox
    }

    /// The nonce of the connection's inbox, if it declared one.
    pub fn inbox_nonce(&self, connection: u64) -> Option<u64> {
        self.existing_inbox(connection).map(|inbox| inbox.nonce)
    }

    fn existing_inbox(&self, connection: u64) -> Option<Rc<Inbox>> {
        self.connections
            .borrow()
            .get(&connection)
            .and_then(|entry| entry.inbox.clone())
    }

    /// Records that `connection` awaits a reply for `correlation_id` until `timeout` from now.
    /// Expired entries are swept first, so only live ones count against `reply_pending_max`.
    pub fn expect(
        &self,
        config: &BrokerConfig,
        shard: usize,
        connection: u64,
        correlation_id: &str,
        timeout: Duration,
    ) -> BrokerResult<()> {
        let inbox = self.existing_inbox(connection).ok_or_else(|| {
            BrokerError::new(
                ErrorKind::UnknownReplyDestination,
                "this connection has no direct reply-to: declare one first",
            )
        })?;
        let now = Instant::now();
        let mut inner = inbox.inner.borrow_mut();
        let before = inner.pending.len();
        inner.pending.retain(|_, deadline| *deadline > now);
        self.pending
            .set(self.pending.get() - (before - inner.pending.len()));
        if inner.pending.contains_key(correlation_id) {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!("correlation id {correlation_id:?} is awaiting a reply already"),
            ));
        }
        if inner.pending.len() >= config.reply_pending_max {
            return Err(BrokerError::new(
                ErrorKind::TooManyPendingRequests,
                format!(
                    "this connection awaits reply_pending_max = {} replies already",
                    config.reply_pending_max
                ),
            ));
        }
        inner
            .pending
            .insert(correlation_id.to_string(), now + timeout);
        self.pending.set(self.pending.get() + 1);
        drop(inner);
        self.gauges(shard);
        Ok(())
    }

    /// Forgets a pending correlation id (its request was not stored).
    pub fn forget(&self, shard: usize, connection: u64, correlation_id: &str) {
        if let Some(inbox) = self.existing_inbox(connection)
            && inbox
                .inner
                .borrow_mut()
                .pending
                .remove(correlation_id)
                .is_some()
        {
            self.pending.set(self.pending.get() - 1);
            self.gauges(shard);
        }
    }

    /// Hands a reply to the connection's inbox if it awaits `correlation_id` there.
    pub fn deliver(
        &self,
        config: &BrokerConfig,
        shard: usize,
        (connection, nonce): (u64, u64),
        correlation_id: &str,
        reply: Record,
    ) -> Delivery {
        let delivery = match self.existing_inbox(connection) {
            Some(inbox) if inbox.nonce == nonce => {
                let mut inner = inbox.inner.borrow_mut();
                let size = record_bytes(&reply);
                let full = inner.queue.len() >= config.reply_queue_max
                    || inner.queued_bytes.saturating_add(size) > config.reply_queue_bytes_max;
                match inner.pending.remove(correlation_id) {
                    None => Delivery::Late,
                    Some(deadline) => {
                        self.pending.set(self.pending.get() - 1);
                        if deadline <= Instant::now() {
                            Delivery::Late
                        } else if full {
                            Delivery::Full
                        } else {
                            inner.queue.push_back(reply);
                            inner.queued_bytes += size;
                            self.queued.set(self.queued.get() + 1);
                            self.queued_bytes.set(self.queued_bytes.get() + size);
                            inbox.arrived.notify();
                            Delivery::Delivered
                        }
                    }
                }
            }
            _ => Delivery::NoRequester,
        };
        self.gauges(shard);
        delivery
    }

    /// Up to `max` replies queued for the connection, waiting until `wait` has passed for the
    /// first one.
    pub async fn receive(
        &self,
        shard: usize,
        connection: u64,
        max: usize,
        wait: Duration,
    ) -> BrokerResult<Vec<Record>> {
        let inbox = self.existing_inbox(connection).ok_or_else(|| {
            BrokerError::new(
                ErrorKind::UnknownReplyDestination,
                "this connection has no direct reply-to: declare one first",
            )
        })?;
        let until = Instant::now() + wait;
        loop {
            let arrived = inbox.arrived.wait();
            let taken = self.take(&inbox, max);
            if !taken.is_empty() {
                self.gauges(shard);
                return Ok(taken);
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(taken);
            }
            let sleep = std::pin::pin!(crate::runtime::sleep(left));
            futures_util::future::select(std::pin::pin!(arrived), sleep).await;
        }
    }

    fn take(&self, inbox: &Inbox, max: usize) -> Vec<Record> {
        let mut inner = inbox.inner.borrow_mut();
        let count = inner.queue.len().min(max.max(1));
        let taken: Vec<Record> = inner.queue.drain(..count).collect();
        let bytes: usize = taken.iter().map(record_bytes).sum();
        inner.queued_bytes -= bytes;
        self.queued.set(self.queued.get() - taken.len());
        self.queued_bytes.set(self.queued_bytes.get() - bytes);
        taken
    }

    /// Counts a temporary topic of the connection, refusing beyond `reply_temporary_max`.
    pub fn add_temporary(
        &self,
        config: &BrokerConfig,
        shard: usize,
        connection: u64,
        topic: &str,
    ) -> BrokerResult<()> {
        let mut connections = self.connections.borrow_mut();
        let entry = connections.entry(connection).or_default();
        if entry.temporary.len() >= config.reply_temporary_max {
            return Err(BrokerError::new(
                ErrorKind::ResourceLimit,
                format!(
                    "this connection has reply_temporary_max = {} temporary reply destinations",
                    config.reply_temporary_max
                ),
            ));
        }
        entry.temporary.push(topic.to_string());
        drop(connections);
        self.temporary.set(self.temporary.get() + 1);
        self.gauges(shard);
        Ok(())
    }

    /// Forgets a temporary topic that could not be created.
    pub fn remove_temporary(&self, shard: usize, connection: u64, topic: &str) {
        if let Some(entry) = self.connections.borrow_mut().get_mut(&connection) {
            let before = entry.temporary.len();
            entry.temporary.retain(|name| name != topic);
            self.temporary
                .set(self.temporary.get() - (before - entry.temporary.len()));
        }
        self.gauges(shard);
    }

    /// Forgets everything of a closed connection; returns its temporary topics, to delete.
    pub fn close(&self, shard: usize, connection: u64) -> Vec<String> {
        let Some(entry) = self.connections.borrow_mut().remove(&connection) else {
            return Vec::new();
        };
        if let Some(inbox) = &entry.inbox {
            let inner = inbox.inner.borrow();
            self.pending.set(self.pending.get() - inner.pending.len());
            self.queued.set(self.queued.get() - inner.queue.len());
            self.queued_bytes
                .set(self.queued_bytes.get() - inner.queued_bytes);
        }
        self.temporary
            .set(self.temporary.get() - entry.temporary.len());
        self.gauges(shard);
        entry.temporary
    }

    fn gauges(&self, shard: usize) {
        let gauges = self.gauges.get_or_init(|| {
            let gauge = |name: &'static str| metrics::gauge!(name, "shard" => shard.to_string());
            [
                gauge("ringmq_reply_pending"),
                gauge("ringmq_reply_queued"),
                gauge("ringmq_reply_queued_bytes"),
                gauge("ringmq_reply_temporary_destinations"),
            ]
        });
        let values = [
            self.pending.get(),
            self.queued.get(),
            self.queued_bytes.get(),
            self.temporary.get(),
        ];
        for (gauge, value) in gauges.iter().zip(values) {
            gauge.set(value as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(value: &str) -> Record {
        Record::new(0, None, Some(value.as_bytes()))
    }

    #[test]
    fn only_pending_correlation_ids_are_delivered_once_and_bounds_hold() {
        let config = BrokerConfig {
            reply_pending_max: 2,
            reply_queue_max: 1,
            ..Default::default()
        };
        let replies = Replies::default();
        let inbox = replies.inbox(0, 9, 77);
        let second = Duration::from_secs(1);
        replies.expect(&config, 0, 9, "a", second).unwrap();
        assert!(replies.expect(&config, 0, 9, "a", second).is_err());
        replies.expect(&config, 0, 9, "b", second).unwrap();
        let full = replies.expect(&config, 0, 9, "c", second).unwrap_err();
        assert_eq!(full.kind, ErrorKind::TooManyPendingRequests);
        let deliver = |id, nonce| replies.deliver(&config, 0, (9, nonce), id, reply(id));
        assert_eq!(deliver("a", 1), Delivery::NoRequester);
        assert_eq!(deliver("a", 77), Delivery::Delivered);
        assert_eq!(deliver("a", 77), Delivery::Late);
        assert_eq!(deliver("b", 77), Delivery::Full);
        assert_eq!(replies.pending.get(), 0);
        assert_eq!(replies.take(&inbox, 10).len(), 1);
        replies
            .expect(&config, 0, 9, "gone", Duration::ZERO)
            .unwrap();
        assert_eq!(deliver("gone", 77), Delivery::Late);
        assert!(replies.close(0, 9).is_empty());
        assert_eq!(replies.pending.get() + replies.queued.get(), 0);
        assert_eq!(deliver("a", 77), Delivery::NoRequester);
    }
}
