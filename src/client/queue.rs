//! Queues from the client's side: admin calls on queue groups (on [`Client`]) and
//! [`QueueConsumer`], one consumer of a queue group: it receives messages locked to it and
//! settles each (ack, release, reject, extend). Its id is random unless given, so that two
//! consumers never share locks; reusing an id after a restart lets a consumer settle what it
//! received before (until the locks expire).

use crate::batch::Header;
use crate::protocol::queues::{
    QueueGroupInfo, QueueMessage, QueueRequest, QueueResponse, ReceiveRequest, SettleAction,
    SettleRequest,
};
use crate::protocol::{Request, Response};

use super::{Client, Result, unexpected};

impl Client {
    async fn queue(&self, request: QueueRequest) -> Result<Response> {
        self.connection.request(Request::Queue(request)).await
    }

    /// Creates queue group `group` on `topic` (its settings: `visibility_timeout_ms`,
    /// `max_deliveries`, `max_in_flight`, `max_unacked`, `window_messages_max`,
    /// `dead_letter_topic`, `start` = earliest|latest).
    pub async fn create_queue_group(
        &self,
        topic: &str,
        group: &str,
        configs: &[(&str, &str)],
    ) -> Result<()> {
        let configs = configs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.queue(QueueRequest::CreateQueueGroup {
            topic: topic.into(),
            group: group.into(),
            configs,
        })
        .await
        .map(drop)
    }

    /// A queue group's settings and per-partition counts.
    pub async fn describe_queue_group(&self, topic: &str, group: &str) -> Result<QueueGroupInfo> {
        let request = QueueRequest::DescribeQueueGroup {
            topic: topic.into(),
            group: group.into(),
        };
        match self.queue(request).await? {
            Response::Queue(QueueResponse::Description(info)) => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Every queue group, as (topic, group).
    pub async fn list_queue_groups(&self) -> Result<Vec<(String, String)>> {
        match self.queue(QueueRequest::ListQueueGroups).await? {
            Response::Queue(QueueResponse::Groups(groups)) => Ok(groups),
            other => Err(unexpected(other)),
        }
    }

    /// Purges a queue group: acknowledges every message available now (locked and delayed
    /// ones stay); returns how many.
    pub async fn purge_queue_group(&self, topic: &str, group: &str) -> Result<u64> {
        let request = QueueRequest::PurgeQueueGroup {
            topic: topic.into(),
            group: group.into(),
        };
        match self.queue(request).await? {
            Response::Queue(QueueResponse::Purged(count)) => Ok(count),
            other => Err(unexpected(other)),
        }
    }

    /// Deletes a queue group (its state; the topic's messages stay).
    pub async fn delete_queue_group(&self, topic: &str, group: &str) -> Result<()> {
        self.queue(QueueRequest::DeleteQueueGroup {
            topic: topic.into(),
            group: group.into(),
        })
        .await
        .map(drop)
    }
}

/// How a [`QueueConsumer`] receives.
#[derive(Clone, Debug)]
pub struct QueueConsumerConfig {
    /// Messages per receive at most.
    pub max_messages: u32,
    /// How long a receive waits for the first message.
    pub wait_ms: u32,
    /// The lock of each message received (0: the group's).
    pub visibility_timeout_ms: u32,
    /// Create the group with the broker's defaults if it does not exist.
    pub create: bool,
}

impl Default for QueueConsumerConfig {
    fn default() -> QueueConsumerConfig {
        QueueConsumerConfig {
            max_messages: 100,
            wait_ms: 1_000,
            visibility_timeout_ms: 0,
            create: true,
        }
    }
}

/// One consumer of a queue group: competing with the group's other consumers for the topic's
/// messages.
pub struct QueueConsumer {
    client: Client,
    topic: String,
    group: String,
    id: String,
    config: QueueConsumerConfig,
}

impl QueueConsumer {
    /// A consumer of `group` on `topic` with a fresh random id.
    pub fn new(
        client: Client,
        topic: &str,
        group: &str,
        config: QueueConsumerConfig,
    ) -> QueueConsumer {
        let id = format!("consumer-{:016x}", unique());
        QueueConsumer::with_id(client, topic, group, &id, config)
    }

    /// A consumer with the id `id` (1 to 255 bytes).
    pub fn with_id(
        client: Client,
        topic: &str,
        group: &str,
        id: &str,
        config: QueueConsumerConfig,
    ) -> QueueConsumer {
        QueueConsumer {
            client,
            topic: topic.into(),
            group: group.into(),
            id: id.into(),
            config,
        }
    }

    /// The id the broker knows this consumer by.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Up to `max_messages` messages, locked to this consumer; none if none came within
    /// `wait_ms`.
    pub async fn receive(&self) -> Result<Vec<QueueMessage>> {
        self.receive_up_to(self.config.max_messages).await
    }

    /// Up to `max_messages` messages (this call's bound instead of the config's).
    pub async fn receive_up_to(&self, max_messages: u32) -> Result<Vec<QueueMessage>> {
        let request = QueueRequest::Receive(ReceiveRequest {
            topic: self.topic.clone(),
            group: self.group.clone(),
            consumer: self.id.clone(),
            max_messages,
            max_bytes: 0,
            wait_ms: self.config.wait_ms,
            visibility_timeout_ms: self.config.visibility_timeout_ms,
            create: self.config.create,
        });
        match self.client.queue(request).await? {
            Response::Queue(QueueResponse::Messages(messages)) => Ok(messages),
            other => Err(unexpected(other)),
        }
    }

    /// Settles `ranges` (partition, first offset, last offset) with `action`.
    pub async fn settle(&self, action: SettleAction, ranges: Vec<(u32, u64, u64)>) -> Result<()> {
        let request = QueueRequest::Settle(SettleRequest {
            topic: self.topic.clone(),
            group: self.group.clone(),
            consumer: self.id.clone(),
            action,
            ranges,
        });
        self.client.queue(request).await.map(drop)
    }

    /// Acknowledges `message`: done, never delivered again.
    pub async fn ack(&self, message: &QueueMessage) -> Result<()> {
        self.settle(SettleAction::Ack, vec![single(message)]).await
    }

    /// Acknowledges every message of `messages` in as few ranges as they allow.
    pub async fn ack_all(&self, messages: &[QueueMessage]) -> Result<()> {
        self.settle(SettleAction::Ack, ranges_of(messages)).await
    }

    /// Gives `message` back: available again after `delay_ms` (0: now), or dead-lettered if it
    /// was delivered `max_deliveries` times.
    pub async fn release(&self, message: &QueueMessage, delay_ms: u32) -> Result<()> {
        self.settle(SettleAction::Release { delay_ms }, vec![single(message)])
            .await
    }

    /// Sends `message` to the dead-letter topic at once.
    pub async fn reject(&self, message: &QueueMessage) -> Result<()> {
        self.settle(SettleAction::Reject, vec![single(message)])
            .await
    }

    /// Keeps `message` locked for `visibility_ms` more from now (0: the group's timeout).
    pub async fn extend(&self, message: &QueueMessage, visibility_ms: u32) -> Result<()> {
        self.settle(
            SettleAction::Extend { visibility_ms },
            vec![single(message)],
        )
        .await
    }
}

impl QueueConsumer {
    /// Keeps every message of `messages` locked to this consumer for `visibility_ms` more from
    /// now (0: the group's timeout), in as few settles as their offsets allow.
    pub async fn extend_all(&self, messages: &[QueueMessage], visibility_ms: u32) -> Result<()> {
        self.settle(SettleAction::Extend { visibility_ms }, ranges_of(messages))
            .await
    }

    /// Runs `handler` while keeping `messages` locked: before a third of their lock is left
    /// (judged from the earliest `lock_deadline_ms` received), each lock is extended by this
    /// consumer's `visibility_timeout_ms` (0: the group's), again and again until the handler
    /// returns. So a handler may run longer than the visibility timeout without its messages
    /// going to another consumer, and one that hangs loses them only if the process dies.
    ///
    /// The extensions run beside the handler on this thread: a handler that blocks the thread
    /// (CPU work, blocking I/O) must yield now and then, or run elsewhere and be awaited here.
    /// If an extension fails (the broker says the lock is gone, or the connection broke),
    /// extending stops and the handler still finishes; settling afterwards reports the lost
    /// lock.
    pub async fn while_locked<F: std::future::Future>(
        &self,
        messages: &[QueueMessage],
        handler: F,
    ) -> F::Output {
        use futures_util::future::{Either, select};
        let Some(earliest) = messages.iter().map(|m| m.lock_deadline_ms).min() else {
            return handler.await;
        };
        let lease_ms = earliest.saturating_sub(now_ms());
        let extender = async {
            let mut left_ms = lease_ms;
            loop {
                // Extend with two thirds of the lock still to run: a round trip and a busy
                // broker fit in the last third.
                let wait = (left_ms / 3).max(EXTEND_EVERY_MIN_MS);
                crate::runtime::sleep(std::time::Duration::from_millis(wait)).await;
                let visibility_ms = self.config.visibility_timeout_ms;
                if self.extend_all(messages, visibility_ms).await.is_err() {
                    return;
                }
                left_ms = match visibility_ms {
                    0 => lease_ms,
                    ms => u64::from(ms),
                };
            }
        };
        let handler = std::pin::pin!(handler);
        let extender = std::pin::pin!(async {
            extender.await;
            // Extending stopped: wait for the handler alone.
            std::future::pending::<std::convert::Infallible>().await
        });
        match select(handler, extender).await {
            Either::Left((output, _)) => output,
            Either::Right((never, _)) => match never {},
        }
    }
}

/// Extensions are at least this far apart, however short the lock.
const EXTEND_EVERY_MIN_MS: u64 = 10;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A number no other consumer of this process, or likely of any, gets: the clock, the process
/// and a counter, hashed.
fn unique() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos() as u64);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut seed = [0u8; 20];
    seed[..8].copy_from_slice(&nanos.to_le_bytes());
    seed[8..12].copy_from_slice(&std::process::id().to_le_bytes());
    seed[12..].copy_from_slice(&count.to_le_bytes());
    xxhash_rust::xxh3::xxh3_64(&seed)
}

fn single(message: &QueueMessage) -> (u32, u64, u64) {
    (message.partition, message.offset, message.offset)
}

/// `messages` as (partition, first, last) runs of consecutive offsets.
pub fn ranges_of(messages: &[QueueMessage]) -> Vec<(u32, u64, u64)> {
    let mut offsets: Vec<(u32, u64)> = messages.iter().map(|m| (m.partition, m.offset)).collect();
    offsets.sort_unstable();
    offsets.dedup();
    let mut ranges: Vec<(u32, u64, u64)> = Vec::new();
    for (partition, offset) in offsets {
        match ranges.last_mut() {
            Some((p, _, last)) if *p == partition && last.checked_add(1) == Some(offset) => {
                *last = offset
            }
            _ => ranges.push((partition, offset, offset)),
        }
    }
    ranges
}

/// The header that delays a message's delivery to queue groups (decimal milliseconds after
/// its timestamp).
pub const DELAY_HEADER: &str = "x-delay-ms";
/// The header naming a message's FIFO message group (for queue groups with `fifo=header`).
pub const GROUP_KEY_HEADER: &str = "x-group-key";
/// The header carrying a message's deduplication id: the broker drops a record whose id was
/// appended to the same partition within the topic's `dedup_window_ms`.
pub const DEDUP_HEADER: &str = "x-dedup-id";

/// What a producer may say about a message for queue groups.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageOptions {
    /// Deliver no earlier than this many ms after the message's timestamp.
    pub delay_ms: Option<u64>,
    /// Its FIFO message group.
    pub group_key: Option<String>,
    /// Its deduplication id: a repeat within the topic's window is answered with the first
    /// copy's offset and not stored again.
    pub dedup_id: Option<String>,
}

/// The headers that carry `options` (add them to a record's).
pub fn message_headers(options: &MessageOptions) -> Vec<Header> {
    let header = |key: &str, value: String| Header {
        key: key.to_string(),
        value: Some(bytes::Bytes::from(value)),
    };
    let mut headers = Vec::new();
    if let Some(delay_ms) = options.delay_ms {
        headers.push(header(DELAY_HEADER, delay_ms.to_string()));
    }
    if let Some(key) = &options.group_key {
        headers.push(header(GROUP_KEY_HEADER, key.clone()));
    }
    if let Some(id) = &options.dedup_id {
        headers.push(header(DEDUP_HEADER, id.clone()));
    }
    headers
}
