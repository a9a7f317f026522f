//! The native protocol's queue messages (api keys 40 to 46): queue groups on a topic, receive
//! and settle. Kept beside `messages.rs` rather than in it, one concept per file; its request
//! and response enums are carried by `Request::Queue` and `Response::Queue`. Mirrored byte by
//! byte in docs/PROTOCOL.md ("Queues").

use bytes::Bytes;

use super::codec::{FrameWriter, Reader};
use super::error::{ErrorCode, ProtocolError};
use super::messages::{ApiKey, put_configs, read_configs};

/// What a settle does with the messages it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettleAction {
    Ack,
    /// Available again after `delay_ms` (0: now).
    Release {
        delay_ms: u32,
    },
    Reject,
    /// Lock for this long more, from now (0: the group's visibility timeout).
    Extend {
        visibility_ms: u32,
    },
}

impl SettleAction {
    fn to_wire(self) -> (u8, u32) {
        match self {
            SettleAction::Ack => (0, 0),
            SettleAction::Release { delay_ms } => (1, delay_ms),
            SettleAction::Reject => (2, 0),
            SettleAction::Extend { visibility_ms } => (3, visibility_ms),
        }
    }

    fn from_wire(kind: u8, param_ms: u32) -> Result<SettleAction, ProtocolError> {
        Ok(match kind {
            0 => SettleAction::Ack,
            1 => SettleAction::Release { delay_ms: param_ms },
            2 => SettleAction::Reject,
            3 => SettleAction::Extend {
                visibility_ms: param_ms,
            },
            other => {
                return Err(ProtocolError::new(
                    ErrorCode::MalformedRequest,
                    format!(
                        "settle action {other} is not 0 (ack), 1 (release), 2 (reject) or 3 (extend)"
                    ),
                ));
            }
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveRequest {
    pub topic: String,
    pub group: String,
    pub consumer: String,
    pub max_messages: u32,
    /// 0: the broker's fetch_bytes_max.
    pub max_bytes: u32,
    pub wait_ms: u32,
    /// 0: the group's.
    pub visibility_timeout_ms: u32,
    /// Create the group with the defaults if it does not exist.
    pub create: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleRequest {
    pub topic: String,
    pub group: String,
    pub consumer: String,
    pub action: SettleAction,
    /// (partition, first offset, last offset)
    pub ranges: Vec<(u32, u64, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueRequest {
    CreateQueueGroup {
        topic: String,
        group: String,
        configs: Vec<(String, String)>,
    },
    DescribeQueueGroup {
        topic: String,
        group: String,
    },
    ListQueueGroups,
    DeleteQueueGroup {
        topic: String,
        group: String,
    },
    Receive(ReceiveRequest),
    Settle(SettleRequest),
    PurgeQueueGroup {
        topic: String,
        group: String,
    },
}

/// A received message, locked to its consumer until `lock_deadline_ms`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueMessage {
    pub partition: u32,
    pub offset: u64,
    pub deliveries: u32,
    pub lock_deadline_ms: u64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// One partition of a queue group: its window and its totals (`PARTITION_FIELDS` numbers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueuePartitionInfo {
    pub partition: u32,
    /// settled_below, cursor, available, in_flight, delayed, spans, consumers, deliveries,
    /// redeliveries, acks, releases, rejects, lock_expiries, dead_lettered, lost.
    pub numbers: [u64; PARTITION_FIELDS],
}

pub const PARTITION_FIELDS: usize = 15;
/// The names of `QueuePartitionInfo::numbers`, in order.
pub const PARTITION_FIELD_NAMES: [&str; PARTITION_FIELDS] = [
    "settled_below",
    "cursor",
    "available",
    "in_flight",
    "delayed",
    "spans",
    "consumers",
    "deliveries",
    "redeliveries",
    "acks",
    "releases",
    "rejects",
    "lock_expiries",
    "dead_lettered",
    "lost",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueGroupInfo {
    pub topic: String,
    pub group: String,
    pub settings: Vec<(String, String)>,
    pub partitions: Vec<QueuePartitionInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueResponse {
    Description(QueueGroupInfo),
    /// (topic, group)
    Groups(Vec<(String, String)>),
    Messages(Vec<QueueMessage>),
    /// How many messages a purge settled.
    Purged(u64),
}

fn put_optional(writer: &mut FrameWriter, value: &Option<Bytes>) {
    match value {
        None => writer.u8(0),
        Some(bytes) => {
            writer.u8(1);
            writer.bytes(bytes);
        }
    }
}

fn read_optional(reader: &mut Reader) -> Result<Option<Bytes>, ProtocolError> {
    match reader.u8()? {
        0 => Ok(None),
        1 => Ok(Some(reader.bytes()?.freeze())),
        other => Err(ProtocolError::new(
            ErrorCode::MalformedRequest,
            format!("presence flag {other} is not 0 or 1"),
        )),
    }
}

impl QueueRequest {
    pub fn api_key(&self) -> ApiKey {
        match self {
            QueueRequest::CreateQueueGroup { .. } => ApiKey::CreateQueueGroup,
            QueueRequest::DescribeQueueGroup { .. } => ApiKey::DescribeQueueGroup,
            QueueRequest::ListQueueGroups => ApiKey::ListQueueGroups,
            QueueRequest::DeleteQueueGroup { .. } => ApiKey::DeleteQueueGroup,
            QueueRequest::Receive(_) => ApiKey::Receive,
            QueueRequest::Settle(_) => ApiKey::Settle,
            QueueRequest::PurgeQueueGroup { .. } => ApiKey::PurgeQueueGroup,
        }
    }

    pub fn encode(&self, writer: &mut FrameWriter) {
        match self {
            QueueRequest::CreateQueueGroup {
                topic,
                group,
                configs,
            } => {
                writer.string(topic);
                writer.string(group);
                put_configs(writer, configs);
            }
            QueueRequest::DescribeQueueGroup { topic, group }
            | QueueRequest::DeleteQueueGroup { topic, group }
            | QueueRequest::PurgeQueueGroup { topic, group } => {
                writer.string(topic);
                writer.string(group);
            }
            QueueRequest::ListQueueGroups => {}
            QueueRequest::Receive(receive) => {
                writer.string(&receive.topic);
                writer.string(&receive.group);
                writer.string(&receive.consumer);
                writer.u32(receive.max_messages);
                writer.u32(receive.max_bytes);
                writer.u32(receive.wait_ms);
                writer.u32(receive.visibility_timeout_ms);
                writer.u8(u8::from(receive.create));
            }
            QueueRequest::Settle(settle) => {
                writer.string(&settle.topic);
                writer.string(&settle.group);
                writer.string(&settle.consumer);
                let (kind, param_ms) = settle.action.to_wire();
                writer.u8(kind);
                writer.u32(param_ms);
                writer.u32(settle.ranges.len() as u32);
                for (partition, first, last) in &settle.ranges {
                    writer.u32(*partition);
                    writer.u64(*first);
                    writer.u64(*last);
                }
            }
        }
    }

    /// Decodes the body of a queue request (`api` is one of the queue keys).
    pub fn decode(api: ApiKey, reader: &mut Reader) -> Result<QueueRequest, ProtocolError> {
        Ok(match api {
            ApiKey::CreateQueueGroup => QueueRequest::CreateQueueGroup {
                topic: reader.string()?,
                group: reader.string()?,
                configs: read_configs(reader)?,
            },
            ApiKey::DescribeQueueGroup => QueueRequest::DescribeQueueGroup {
                topic: reader.string()?,
                group: reader.string()?,
            },
            ApiKey::DeleteQueueGroup => QueueRequest::DeleteQueueGroup {
                topic: reader.string()?,
                group: reader.string()?,
            },
            ApiKey::PurgeQueueGroup => QueueRequest::PurgeQueueGroup {
                topic: reader.string()?,
                group: reader.string()?,
            },
            ApiKey::Receive => QueueRequest::Receive(ReceiveRequest {
                topic: reader.string()?,
                group: reader.string()?,
                consumer: reader.string()?,
                max_messages: reader.u32()?,
                max_bytes: reader.u32()?,
                wait_ms: reader.u32()?,
                visibility_timeout_ms: reader.u32()?,
                create: reader.u8()? != 0,
            }),
            ApiKey::Settle => {
                let (topic, group, consumer) =
                    (reader.string()?, reader.string()?, reader.string()?);
                let action = SettleAction::from_wire(reader.u8()?, reader.u32()?)?;
                let count = reader.count(20)?;
                let ranges = (0..count)
                    .map(|_| Ok((reader.u32()?, reader.u64()?, reader.u64()?)))
                    .collect::<Result<_, ProtocolError>>()?;
                QueueRequest::Settle(SettleRequest {
                    topic,
                    group,
                    consumer,
                    action,
                    ranges,
                })
            }
            ApiKey::ListQueueGroups => QueueRequest::ListQueueGroups,
            other => {
                return Err(ProtocolError::new(
                    ErrorCode::UnknownApi,
                    format!("{other:?} is not a queue request"),
                ));
            }
        })
    }
}

impl QueueResponse {
    pub fn encode(&self, writer: &mut FrameWriter) {
        match self {
            QueueResponse::Description(info) => {
                writer.string(&info.topic);
                writer.string(&info.group);
                put_configs(writer, &info.settings);
                writer.u32(info.partitions.len() as u32);
                for partition in &info.partitions {
                    writer.u32(partition.partition);
                    for number in partition.numbers {
                        writer.u64(number);
                    }
                }
            }
            QueueResponse::Purged(count) => writer.u64(*count),
            QueueResponse::Groups(groups) => {
                writer.u32(groups.len() as u32);
                for (topic, group) in groups {
                    writer.string(topic);
                    writer.string(group);
                }
            }
            QueueResponse::Messages(messages) => {
                writer.u32(messages.len() as u32);
                for message in messages {
                    writer.u32(message.partition);
                    writer.u64(message.offset);
                    writer.u32(message.deliveries);
                    writer.u64(message.lock_deadline_ms);
                    writer.i64(message.timestamp_ms);
                    put_optional(writer, &message.key);
                    put_optional(writer, &message.value);
                    writer.u32(message.headers.len() as u32);
                    for (key, value) in &message.headers {
                        writer.string(key);
                        put_optional(writer, value);
                    }
                }
            }
        }
    }

    /// Decodes a response to a queue request of `api`; None for the ones answered `Done`.
    pub fn decode(
        api: ApiKey,
        reader: &mut Reader,
    ) -> Result<Option<QueueResponse>, ProtocolError> {
        Ok(Some(match api {
            ApiKey::DescribeQueueGroup => {
                let (topic, group, settings) =
                    (reader.string()?, reader.string()?, read_configs(reader)?);
                let count = reader.count(4 + 8 * PARTITION_FIELDS)?;
                let mut partitions = Vec::with_capacity(count);
                for _ in 0..count {
                    let mut info = QueuePartitionInfo {
                        partition: reader.u32()?,
                        ..QueuePartitionInfo::default()
                    };
                    for number in &mut info.numbers {
                        *number = reader.u64()?;
                    }
                    partitions.push(info);
                }
                QueueResponse::Description(QueueGroupInfo {
                    topic,
                    group,
                    settings,
                    partitions,
                })
            }
            ApiKey::ListQueueGroups => {
                let count = reader.count(4)?;
                let groups = (0..count)
                    .map(|_| Ok((reader.string()?, reader.string()?)))
                    .collect::<Result<_, ProtocolError>>()?;
                QueueResponse::Groups(groups)
            }
            ApiKey::Receive => {
                let count = reader.count(35)?;
                let mut messages = Vec::with_capacity(count);
                for _ in 0..count {
                    messages.push(read_message(reader)?);
                }
                QueueResponse::Messages(messages)
            }
            ApiKey::PurgeQueueGroup => QueueResponse::Purged(reader.u64()?),
            _ => return Ok(None),
        }))
    }
}

fn read_message(reader: &mut Reader) -> Result<QueueMessage, ProtocolError> {
    let (partition, offset, deliveries) = (reader.u32()?, reader.u64()?, reader.u32()?);
    let (lock_deadline_ms, timestamp_ms) = (reader.u64()?, reader.i64()?);
    let (key, value) = (read_optional(reader)?, read_optional(reader)?);
    let count = reader.count(3)?;
    let headers = (0..count)
        .map(|_| Ok((reader.string()?, read_optional(reader)?)))
        .collect::<Result<_, ProtocolError>>()?;
    Ok(QueueMessage {
        partition,
        offset,
        deliveries,
        lock_deadline_ms,
        timestamp_ms,
        key,
        value,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;

    fn round_trip(request: QueueRequest) -> QueueRequest {
        let mut writer = FrameWriter::new();
        request.encode(&mut writer);
        let frame: Vec<u8> = writer.finish().concat();
        // The writer's frame starts with its 4-byte length.
        let mut reader = Reader::new(BytesMut::from(&frame[4..]));
        let decoded = QueueRequest::decode(request.api_key(), &mut reader).unwrap();
        reader.finish().unwrap();
        decoded
    }

    #[test]
    fn queue_requests_and_responses_round_trip() {
        let requests = [
            QueueRequest::CreateQueueGroup {
                topic: "t".into(),
                group: "g".into(),
                configs: vec![("max_deliveries".into(), "3".into())],
            },
            QueueRequest::Receive(ReceiveRequest {
                topic: "t".into(),
                group: "g".into(),
                consumer: "c".into(),
                max_messages: 10,
                max_bytes: 0,
                wait_ms: 5,
                visibility_timeout_ms: 100,
                create: true,
            }),
            QueueRequest::PurgeQueueGroup {
                topic: "t".into(),
                group: "g".into(),
            },
            QueueRequest::Settle(SettleRequest {
                topic: "t".into(),
                group: "g".into(),
                consumer: "c".into(),
                action: SettleAction::Release { delay_ms: 7 },
                ranges: vec![(1, 2, 3)],
            }),
        ];
        for request in requests {
            assert_eq!(round_trip(request.clone()), request);
        }
        let response = QueueResponse::Messages(vec![QueueMessage {
            partition: 1,
            offset: 2,
            deliveries: 3,
            lock_deadline_ms: 4,
            timestamp_ms: -1,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: vec![("h".into(), None)],
        }]);
        let mut writer = FrameWriter::new();
        response.encode(&mut writer);
        let frame: Vec<u8> = writer.finish().concat();
        let mut reader = Reader::new(BytesMut::from(&frame[4..]));
        assert_eq!(
            QueueResponse::decode(ApiKey::Receive, &mut reader).unwrap(),
            Some(response)
        );
    }
}
