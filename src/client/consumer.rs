//! A consumer of one topic: it keeps a position per partition, long-polls every partition it
//! reads at once, and returns records in offset order per partition.

use std::collections::BTreeMap;

use super::long_polls::{Answer, LongPolls};
use super::{Client, ClientError, Result};
use crate::batch::records::{self, StoredRecord};
use crate::batch::{self as record_batch, Record};
use crate::protocol::{FetchRequest, OffsetSpec};

/// Where a consumer starts in each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The first record still stored.
    Earliest,
    /// Only records produced from now on.
    Latest,
    /// This offset (clamped into the log when it is not there).
    Offset(u64),
    /// N records after the log start (clamped to the end).
    FromStart(u64),
    /// N records before the end (clamped to the log start).
    FromEnd(u64),
    /// The first record at or after this time (milliseconds since the epoch).
    Timestamp(i64),
}

#[derive(Clone, Debug)]
/// How a `Consumer` fetches.
pub struct ConsumerConfig {
    /// Bytes asked for per partition per fetch.
    pub max_bytes: u32,
    /// A fetch waits for at least this much data...
    pub min_bytes: u32,
    /// ...or this long.
    pub max_wait_ms: u32,
}

impl Default for ConsumerConfig {
    fn default() -> ConsumerConfig {
        ConsumerConfig {
            max_bytes: 1 << 20,
            min_bytes: 1,
            max_wait_ms: 500,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
/// One record as a `Consumer` returns it.
pub struct ConsumedRecord {
    /// The partition it was read from.
    pub partition: u32,
    /// Its offset there.
    pub offset: u64,
    /// Its key, value, timestamp and headers.
    pub record: Record,
}

struct Position {
    next_offset: u64,
    high_watermark: u64,
}

/// Reads one topic's partitions in offset order, with long polling; not a group member (see
/// `GroupConsumer` for that).
pub struct Consumer {
    client: Client,
    topic: String,
    config: ConsumerConfig,
    positions: BTreeMap<u32, Position>,
    polls: LongPolls<u32>,
}

impl Consumer {
    /// Reads `partitions` of `topic` (every partition when None), starting at `start`.
    pub async fn new(
        client: Client,
        topic: &str,
        partitions: Option<Vec<u32>>,
        start: StartAt,
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        let partitions = match partitions {
            Some(partitions) => partitions,
            None => {
                let metadata = client.metadata(&[topic]).await?;
                (0..metadata.first().map_or(0, |topic| topic.partitions)).collect()
            }
        };
        let mut positions = BTreeMap::new();
        for partition in partitions {
            let spec = match start {
                StartAt::Earliest => OffsetSpec::Earliest,
                StartAt::Timestamp(timestamp) => OffsetSpec::Timestamp(timestamp),
                _ => OffsetSpec::Latest,
            };
            let (offset, high_watermark, log_start) =
                client.list_offsets(topic, partition, spec).await?;
            let next_offset = match start {
                StartAt::Offset(offset) => offset,
                StartAt::FromStart(n) => log_start.saturating_add(n).min(high_watermark),
                StartAt::FromEnd(n) => high_watermark.saturating_sub(n).max(log_start),
                // No record at or after the timestamp: start at the end.
                _ => offset.unwrap_or(high_watermark),
            };
            positions.insert(
                partition,
                Position {
                    next_offset,
                    high_watermark,
                },
            );
        }
        Ok(Consumer {
            client,
            topic: topic.to_string(),
            config,
            positions,
            polls: LongPolls::new(),
        })
    }

    /// The next offset this consumer reads in `partition`.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.positions
            .get(&partition)
            .map(|position| position.next_offset)
    }

    /// Continues `partition` from `offset` at the next poll (a partition it does not read is
    /// ignored).
    pub fn seek(&mut self, partition: u32, offset: u64) {
        if let Some(position) = self.positions.get_mut(&partition) {
            if position.next_offset != offset {
                self.polls.forget(&partition);
            }
            position.next_offset = offset;
        }
    }

    /// Carries on over a new connection (after the broker restarted, say) from the same
    /// positions, so nothing is read twice or skipped.
    pub fn set_client(&mut self, client: Client) {
        self.polls.clear();
        self.client = client;
    }

    /// The partitions read, with their next offsets.
    pub fn positions(&self) -> Vec<(u32, u64)> {
        self.positions
            .iter()
            .map(|(partition, position)| (*partition, position.next_offset))
            .collect()
    }

    /// Whether every partition was read up to its high watermark as of the last poll.
    pub fn at_end(&self) -> bool {
        self.positions
            .values()
            .all(|position| position.next_offset >= position.high_watermark)
    }

    /// Returns records as soon as any partition has some: every partition has a long poll out
    /// (up to `max_wait_ms`; kept from one call to the next, see `long_polls`), and the first
    /// answer is returned with whatever others are in by then. Empty when the first answer
    /// came back empty at its deadline. With `max_wait_ms` 0, waits for every partition's.
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>> {
        let idle: Vec<u32> = self
            .positions
            .keys()
            .copied()
            .filter(|partition| !self.polls.is_out(partition))
            .collect();
        for partition in idle {
            let request = self.request(partition);
            self.polls.start(partition, &self.client, request);
        }
        let Some(first) = self.polls.next().await else {
            return Ok(Vec::new());
        };
        let mut answers = vec![first];
        if self.config.max_wait_ms == 0 {
            while let Some(answer) = self.polls.next().await {
                answers.push(answer);
            }
        } else {
            answers.extend(self.polls.ready());
        }
        // Records taken have moved their positions, so they are returned even when another
        // partition's fetch failed; that partition is fetched again at the next poll, where
        // its error comes back if it persists.
        let mut consumed = Vec::new();
        let mut failed = None;
        for answer in answers {
            match self.take(answer) {
                Ok(records) => consumed.extend(records),
                Err(error) => failed = failed.or(Some(error)),
            }
        }
        match failed {
            Some(error) if consumed.is_empty() => Err(error),
            _ => Ok(consumed),
        }
    }

    fn request(&self, partition: u32) -> FetchRequest {
        FetchRequest {
            topic: self.topic.clone(),
            partition,
            offset: self.positions[&partition].next_offset,
            max_bytes: self.config.max_bytes,
            min_bytes: self.config.min_bytes,
            max_wait_ms: self.config.max_wait_ms,
        }
    }

    /// Decodes a fetch's answer and moves the partition's position past what it returns; an
    /// answer for an offset the partition has moved away from (a seek) is dropped unread.
    fn take(&mut self, answer: Answer<u32>) -> Result<Vec<ConsumedRecord>> {
        let partition = answer.key;
        let response = answer.response?;
        let Some(position) = self.positions.get_mut(&partition) else {
            return Ok(Vec::new());
        };
        if position.next_offset != answer.offset {
            return Ok(Vec::new());
        }
        position.high_watermark = response.high_watermark;
        let consumed = take_records(&response, &mut position.next_offset)?
            .into_iter()
            .map(|(offset, record)| ConsumedRecord {
                partition,
                offset,
                record,
            })
            .collect();
        Ok(consumed)
    }
}

/// The records of a fetch response at or after `*next_offset`, moving it past them: a batch can
/// start before the position asked for, and those records were read already.
pub(crate) fn take_records(
    response: &crate::protocol::FetchResponse,
    next_offset: &mut u64,
) -> Result<Vec<(u64, Record)>> {
    let mut taken = Vec::new();
    for chunk in &response.records {
        for (_, batch) in record_batch::iter_framed(chunk) {
            let decoded = records::decode(batch)
                .map_err(|error| ClientError::Connection(format!("undecodable batch: {error}")))?;
            for StoredRecord { offset, record } in decoded {
                let offset = offset as u64;
                if offset >= *next_offset {
                    *next_offset = offset + 1;
                    taken.push((offset, record));
                }
            }
        }
    }
    Ok(taken)
}
