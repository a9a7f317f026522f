//! Redrive: moves a queue group's dead letters back to the topic they came from (their
//! `ringmq.dlq.topic` and `.partition` headers) or to a named topic, at a rate limit. The dead
//! letters are read as a queue themselves, by the queue group `ringmq-redrive` on the
//! dead-letter topic, and each is acknowledged only once its copy is durable in the target:
//! progress survives a crash, and a crash in between moves a message twice, never loses it.
//! The copy keeps the key, the value and the headers, less the `ringmq.dlq.*` ones and the
//! deduplication id (a redrive is a deliberate second delivery, not a repeat to drop).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::batch::{BatchBuilder, Compression, Header, Record};
use crate::protocol::queues::QueueMessage;
use crate::storage::AckLevel;

use super::{Client, ClientError, QueueConsumer, QueueConsumerConfig, Result};

/// The queue group that reads a dead-letter topic for redrives.
pub const REDRIVE_GROUP: &str = "ringmq-redrive";
/// The prefix of the headers a dead letter gets (`broker::queues::dead_letter`).
pub const DEAD_LETTER_HEADER_PREFIX: &str = "ringmq.dlq.";
/// Messages moved per receive at most.
const BATCH_MAX: u32 = 500;

/// What a redrive moves, where, and how fast.
#[derive(Clone, Debug)]
pub struct Redrive {
    /// The topic to move dead letters from.
    pub dead_letter_topic: String,
    /// None: each message's source topic and partition.
    pub to: Option<String>,
    /// Messages per second at most (at least 1).
    pub rate_per_second: u32,
    /// Messages to move at most.
    pub max_messages: u64,
}

fn header<'a>(message: &'a QueueMessage, name: &str) -> Option<&'a [u8]> {
    message
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .and_then(|(_, value)| value.as_deref())
}

/// Where `message` goes: (topic, partition; None to partition by key).
fn target(message: &QueueMessage, to: Option<&str>) -> Result<(String, Option<u32>)> {
    if let Some(to) = to {
        return Ok((to.to_string(), None));
    }
    let text = |name: &str| {
        header(message, name)
            .and_then(|value| std::str::from_utf8(value).ok())
            .map(str::to_string)
    };
    let topic = text("ringmq.dlq.topic").ok_or_else(|| {
        ClientError::Connection(format!(
            "the dead letter at partition {} offset {} has no ringmq.dlq.topic header: name a target topic",
            message.partition, message.offset
        ))
    })?;
    let partition = text("ringmq.dlq.partition").and_then(|p| p.parse().ok());
    Ok((topic, partition))
}

fn copy(message: &QueueMessage) -> Record {
    let mut record = Record::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64),
        message.key.as_deref(),
        message.value.as_deref(),
    );
    record.headers = message
        .headers
        .iter()
        // A redrive is a deliberate second delivery: a deduplication id would have it dropped.
        .filter(|(key, _)| {
            !key.starts_with(DEAD_LETTER_HEADER_PREFIX) && key != super::queue::DEDUP_HEADER
        })
        .map(|(key, value)| Header {
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    record
}

impl Client {
    /// Moves up to `redrive.max_messages` dead letters (those there now; it does not wait for
    /// more) to their target, fsynced there before each is acknowledged; returns how many.
    pub async fn redrive(&self, redrive: &Redrive) -> Result<u64> {
        let rate = redrive.rate_per_second.max(1);
        let config = QueueConsumerConfig {
            max_messages: BATCH_MAX.min(rate),
            wait_ms: 0,
            visibility_timeout_ms: 60_000,
            create: true,
        };
        let consumer = QueueConsumer::new(
            self.clone(),
            &redrive.dead_letter_topic,
            REDRIVE_GROUP,
            config,
        );
        let started = Instant::now();
        let mut moved = 0u64;
        while moved < redrive.max_messages {
            let wanted = (redrive.max_messages - moved).min(u64::from(BATCH_MAX.min(rate)));
            let messages = consumer.receive_up_to(wanted as u32).await?;
            if messages.is_empty() {
                break;
            }
            // One batch per target, in the dead-letter topic's order within each.
            let mut batches: BTreeMap<(String, Option<u32>, Vec<u8>), BatchBuilder> =
                BTreeMap::new();
            for message in &messages {
                let (topic, partition) = target(message, redrive.to.as_deref())?;
                let key = match partition {
                    Some(_) => Vec::new(),
                    None => message.key.as_deref().unwrap_or_default().to_vec(),
                };
                batches
                    .entry((topic, partition, key))
                    .or_insert_with(|| BatchBuilder::new(Compression::None))
                    .push(copy(message));
            }
            for ((topic, partition, key), batch) in batches {
                let batch = BytesMut::from(&batch.build()[..]);
                self.produce(&topic, partition, &key, AckLevel::Fsynced, batch)
                    .await?;
            }
            consumer.ack_all(&messages).await?;
            moved += messages.len() as u64;
            // Paced: `moved` messages take at least moved / rate seconds.
            let due = Duration::from_secs_f64(moved as f64 / f64::from(rate));
            let elapsed = started.elapsed();
            if due > elapsed {
                crate::runtime::sleep(due - elapsed).await;
            }
        }
        Ok(moved)
    }
}
