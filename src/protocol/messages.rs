//! Every request and response of the native protocol, version 0, and the requests' encoding;
//! the responses' encoding is in `responses.rs`, beside it. The messages are small, and seeing
//! them side by side is the point (docs/PROTOCOL.md mirrors these files byte by byte).

use bytes::{Bytes, BytesMut};

use super::codec::{FrameWriter, Reader, RequestHeader};
use super::error::{ErrorCode, ProtocolError};
use crate::storage::AckLevel;

pub use super::queues::{QueueRequest, QueueResponse};
pub use super::replies::{ReplyRequest, ReplyResponse};
pub use super::responses::{decode_response, encode_response};
pub use super::routing::{RoutingRequest, RoutingResponse};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u16)]
pub enum ApiKey {
    ApiVersions = 0,
    CreateTopic = 1,
    DeleteTopic = 2,
    Metadata = 3,
    Produce = 4,
    Fetch = 5,
    ListOffsets = 6,
    JoinGroup = 7,
    Heartbeat = 8,
    LeaveGroup = 9,
    CommitOffsets = 10,
    FetchOffsets = 11,
    ListGroups = 12,
    DescribeGroup = 13,
    DeleteGroup = 14,
    AddPartitions = 15,
    // Queues take keys from 40 up (`queues.rs`).
    CreateQueueGroup = 40,
    DescribeQueueGroup = 41,
    ListQueueGroups = 42,
    DeleteQueueGroup = 43,
    Receive = 44,
    Settle = 45,
    PurgeQueueGroup = 46,
    /// Changes a topic's settings (set some, revert some to the broker's default).
    AlterTopicConfig = 30,
    /// Chooses a SASL mechanism (when the listener asks for authentication).
    SaslHandshake = 90,
    /// One message of the chosen mechanism, answered by the broker's next.
    SaslAuthenticate = 91,
    DeleteRecords = 16,
    // Routing (`routing.rs`) starts at 60: other ranges are taken by work under way.
    CreateExchange = 60,
    DeleteExchange = 61,
    Bind = 62,
    Unbind = 63,
    ListExchanges = 64,
    Publish = 65,
    // Request/reply (`replies.rs`) follows routing.
    DeclareReplyTo = 66,
    SendRequest = 67,
    Reply = 68,
    ReceiveReplies = 69,
    SendRequestViaExchange = 70,
}

/// (api, lowest version, highest version) this broker speaks.
pub const SUPPORTED_APIS: &[(ApiKey, u16, u16)] = &[
    (ApiKey::ApiVersions, 0, 0),
    (ApiKey::CreateTopic, 0, 0),
    (ApiKey::DeleteTopic, 0, 0),
    (ApiKey::Metadata, 0, 0),
    (ApiKey::Produce, 0, 0),
    (ApiKey::Fetch, 0, 0),
    (ApiKey::ListOffsets, 0, 0),
    (ApiKey::JoinGroup, 0, 0),
    (ApiKey::Heartbeat, 0, 0),
    (ApiKey::LeaveGroup, 0, 0),
    (ApiKey::CommitOffsets, 0, 0),
    (ApiKey::FetchOffsets, 0, 0),
    (ApiKey::ListGroups, 0, 0),
    (ApiKey::DescribeGroup, 0, 0),
    (ApiKey::DeleteGroup, 0, 0),
    (ApiKey::AddPartitions, 0, 0),
    (ApiKey::CreateQueueGroup, 0, 0),
    (ApiKey::DescribeQueueGroup, 0, 0),
    (ApiKey::ListQueueGroups, 0, 0),
    (ApiKey::DeleteQueueGroup, 0, 0),
    (ApiKey::Receive, 0, 0),
    (ApiKey::Settle, 0, 0),
    (ApiKey::PurgeQueueGroup, 0, 0),
    (ApiKey::AlterTopicConfig, 0, 0),
    (ApiKey::SaslHandshake, 0, 0),
    (ApiKey::SaslAuthenticate, 0, 0),
    (ApiKey::DeleteRecords, 0, 0),
    (ApiKey::CreateExchange, 0, 0),
    (ApiKey::DeleteExchange, 0, 0),
    (ApiKey::Bind, 0, 0),
    (ApiKey::Unbind, 0, 0),
    (ApiKey::ListExchanges, 0, 0),
    (ApiKey::Publish, 0, 0),
    (ApiKey::DeclareReplyTo, 0, 0),
    (ApiKey::SendRequest, 0, 0),
    (ApiKey::Reply, 0, 0),
    (ApiKey::ReceiveReplies, 0, 0),
    (ApiKey::SendRequestViaExchange, 0, 0),
];

impl ApiKey {
    pub fn from_u16(key: u16) -> Option<ApiKey> {
        SUPPORTED_APIS
            .iter()
            .map(|(api, _, _)| *api)
            .find(|api| *api as u16 == key)
    }
}

/// Where ListOffsets looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    Timestamp(i64),
}

impl OffsetSpec {
    fn to_wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(timestamp) => timestamp,
        }
    }

    fn from_wire(value: i64) -> Result<OffsetSpec, ProtocolError> {
        match value {
            -2 => Ok(OffsetSpec::Earliest),
            -1 => Ok(OffsetSpec::Latest),
            timestamp if timestamp >= 0 => Ok(OffsetSpec::Timestamp(timestamp)),
            other => Err(ProtocolError::new(
                ErrorCode::MalformedRequest,
                format!("offset spec {other} is not -2, -1 or a timestamp"),
            )),
        }
    }
}

#[derive(Debug)]
pub struct ProduceRequest {
    pub topic: String,
    /// A partition, or -1 to let the broker pick one from `key`.
    pub partition: i32,
    pub key: Bytes,
    pub acks: AckLevel,
    pub records: BytesMut,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchRequest {
    pub topic: String,
    pub partition: u32,
    pub offset: u64,
    pub max_bytes: u32,
    pub min_bytes: u32,
    pub max_wait_ms: u32,
}

#[derive(Debug)]
pub enum Request {
    ApiVersions,
    CreateTopic {
        name: String,
        partitions: u32,
        configs: Vec<(String, String)>,
    },
    DeleteTopic {
        name: String,
    },
    /// Grows topic `name` to `partitions` partitions.
    AddPartitions {
        name: String,
        partitions: u32,
    },
    /// Moves the partition's start to `before` (-1: its high watermark), deleting the records
    /// before it.
    DeleteRecords {
        topic: String,
        partition: u32,
        before: i64,
    },
    /// Empty `topics` asks for every topic.
    Metadata {
        topics: Vec<String>,
    },
    /// Sets `set` and reverts `reset` to the broker's defaults, on topic `name`.
    AlterTopicConfig {
        name: String,
        set: Vec<(String, String)>,
        reset: Vec<String>,
    },
    SaslHandshake {
        mechanism: String,
    },
    SaslAuthenticate {
        message: Bytes,
    },
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets {
        topic: String,
        partition: u32,
        spec: OffsetSpec,
    },
    /// Join (empty `member_id`) or rejoin a group; the broker assigns the partitions.
    JoinGroup {
        group: String,
        member_id: String,
        topics: Vec<String>,
        session_timeout_ms: u32,
        strategy: String,
    },
    Heartbeat {
        group: String,
        member_id: String,
        generation: u32,
    },
    LeaveGroup {
        group: String,
        member_id: String,
    },
    /// Commits as a member of `generation`, or, with an empty `member_id`, for a group with no
    /// members (tools resetting offsets).
    CommitOffsets {
        group: String,
        member_id: String,
        generation: u32,
        offsets: Vec<(String, u32, u64)>,
    },
    /// The committed offsets of the group (all of them when `partitions` is empty).
    FetchOffsets {
        group: String,
        partitions: Vec<(String, u32)>,
    },
    ListGroups,
    DescribeGroup {
        group: String,
    },
    DeleteGroup {
        group: String,
    },
    /// Exchanges, bindings and publishing through an exchange (`routing.rs`).
    Routing(RoutingRequest),
    /// Request/reply: reply destinations, requests, replies (`replies.rs`).
    Replies(ReplyRequest),
    /// A queue request (api keys 40 to 45).
    Queue(QueueRequest),
}

/// A member's view of its group after a join or heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupAssignment {
    pub member_id: String,
    pub generation: u32,
    pub assignment: Vec<(String, u32)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSummary {
    pub name: String,
    pub state: String,
    pub generation: u32,
    pub members: u32,
}

/// (member id, client id, assigned partitions as (topic, partition)).
pub type GroupMember = (String, String, Vec<(String, u32)>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub summary: GroupSummary,
    pub strategy: String,
    pub members: Vec<GroupMember>,
    /// (topic, partition, committed offset)
    pub offsets: Vec<(String, u32, u64)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub partitions: u32,
    pub configs: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceResponse {
    pub partition: u32,
    pub base_offset: u64,
    pub last_offset: u64,
    pub log_start_offset: u64,
    /// -1 unless the topic stamps LogAppendTime.
    pub log_append_time_ms: i64,
}

#[derive(Clone, Debug, Default)]
pub struct FetchResponse {
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// Whole record batches, as stored.
    pub records: Vec<Bytes>,
}

#[derive(Clone, Debug)]
pub enum Response {
    ApiVersions {
        apis: Vec<(u16, u16, u16)>,
        broker_version: String,
    },
    Done,
    Metadata {
        shards: u32,
        topics: Vec<TopicMetadata>,
    },
    Produce(ProduceResponse),
    Fetch(FetchResponse),
    ListOffsets {
        offset: Option<u64>,
        high_watermark: u64,
        log_start_offset: u64,
    },
    Group(GroupAssignment),
    Offsets(Vec<(String, u32, u64)>),
    Groups(Vec<GroupSummary>),
    GroupDescription(GroupDescription),
    Queue(QueueResponse),
    /// The mechanisms the listener enables (also sent with a refused handshake's error).
    SaslMechanisms(Vec<String>),
    /// The broker's next message of the mechanism (empty when there is none).
    SaslMessage(Bytes),
    /// The partition's start after a DeleteRecords.
    DeleteRecords {
        log_start_offset: u64,
    },
    Routing(RoutingResponse),
    Replies(ReplyResponse),
}

pub(super) fn acks_to_wire(acks: AckLevel) -> u8 {
    match acks {
        AckLevel::None => 0,
        AckLevel::Written => 1,
        AckLevel::Fsynced => 2,
    }
}

pub(super) fn acks_from_wire(value: u8) -> Result<AckLevel, ProtocolError> {
    match value {
        0 => Ok(AckLevel::None),
        1 => Ok(AckLevel::Written),
        2 => Ok(AckLevel::Fsynced),
        other => Err(ProtocolError::new(
            ErrorCode::MalformedRequest,
            format!("ack level {other} is not 0, 1 or 2"),
        )),
    }
}

/// A writer holding a request's header and client id (at most 255 bytes of it).
fn request_writer(api: ApiKey, correlation_id: u32, client_id: &str) -> FrameWriter {
    let mut writer = FrameWriter::new();
    let client_id = &client_id.as_bytes()[..client_id.len().min(255)];
    writer.put_header(&RequestHeader {
        api_key: (api as u16).into(),
        api_version: 0.into(),
        correlation_id: correlation_id.into(),
        client_id_length: (client_id.len() as u16).into(),
    });
    for byte in client_id {
        writer.u8(*byte);
    }
    writer
}

pub(super) fn put_strings(writer: &mut FrameWriter, strings: &[String]) {
    writer.u32(strings.len() as u32);
    for string in strings {
        writer.string(string);
    }
}

pub(super) fn put_configs(writer: &mut FrameWriter, configs: &[(String, String)]) {
    writer.u32(configs.len() as u32);
    for (key, value) in configs {
        writer.string(key);
        writer.string(value);
    }
}

pub(super) fn put_partitions(writer: &mut FrameWriter, partitions: &[(String, u32)]) {
    writer.u32(partitions.len() as u32);
    for (topic, partition) in partitions {
        writer.string(topic);
        writer.u32(*partition);
    }
}

pub(super) fn read_partitions(reader: &mut Reader) -> Result<Vec<(String, u32)>, ProtocolError> {
    let count = reader.count(6)?;
    (0..count)
        .map(|_| Ok((reader.string()?, reader.u32()?)))
        .collect()
}

pub(super) fn put_offsets(writer: &mut FrameWriter, offsets: &[(String, u32, u64)]) {
    writer.u32(offsets.len() as u32);
    for (topic, partition, offset) in offsets {
        writer.string(topic);
        writer.u32(*partition);
        writer.u64(*offset);
    }
}

pub(super) fn read_offsets(reader: &mut Reader) -> Result<Vec<(String, u32, u64)>, ProtocolError> {
    let count = reader.count(14)?;
    (0..count)
        .map(|_| Ok((reader.string()?, reader.u32()?, reader.u64()?)))
        .collect()
}

pub(super) fn put_summary(writer: &mut FrameWriter, summary: &GroupSummary) {
    writer.string(&summary.name);
    writer.string(&summary.state);
    writer.u32(summary.generation);
    writer.u32(summary.members);
}

pub(super) fn read_summary(reader: &mut Reader) -> Result<GroupSummary, ProtocolError> {
    Ok(GroupSummary {
        name: reader.string()?,
        state: reader.string()?,
        generation: reader.u32()?,
        members: reader.u32()?,
    })
}

pub(super) fn read_configs(reader: &mut Reader) -> Result<Vec<(String, String)>, ProtocolError> {
    let count = reader.count(4)?;
    (0..count)
        .map(|_| Ok((reader.string()?, reader.string()?)))
        .collect()
}

impl Request {
    pub fn api_key(&self) -> ApiKey {
        match self {
            Request::ApiVersions => ApiKey::ApiVersions,
            Request::CreateTopic { .. } => ApiKey::CreateTopic,
            Request::DeleteTopic { .. } => ApiKey::DeleteTopic,
            Request::AddPartitions { .. } => ApiKey::AddPartitions,
            Request::AlterTopicConfig { .. } => ApiKey::AlterTopicConfig,
            Request::SaslHandshake { .. } => ApiKey::SaslHandshake,
            Request::SaslAuthenticate { .. } => ApiKey::SaslAuthenticate,
            Request::DeleteRecords { .. } => ApiKey::DeleteRecords,
            Request::Metadata { .. } => ApiKey::Metadata,
            Request::Produce(_) => ApiKey::Produce,
            Request::Fetch(_) => ApiKey::Fetch,
            Request::ListOffsets { .. } => ApiKey::ListOffsets,
            Request::JoinGroup { .. } => ApiKey::JoinGroup,
            Request::Heartbeat { .. } => ApiKey::Heartbeat,
            Request::LeaveGroup { .. } => ApiKey::LeaveGroup,
            Request::CommitOffsets { .. } => ApiKey::CommitOffsets,
            Request::FetchOffsets { .. } => ApiKey::FetchOffsets,
            Request::ListGroups => ApiKey::ListGroups,
            Request::DescribeGroup { .. } => ApiKey::DescribeGroup,
            Request::DeleteGroup { .. } => ApiKey::DeleteGroup,
            Request::Routing(routing) => routing.api_key(),
            Request::Replies(replies) => replies.api_key(),
            Request::Queue(queue) => queue.api_key(),
        }
    }

    /// The whole request frame, header included.
    pub fn encode(self, correlation_id: u32, client_id: &str) -> Vec<Bytes> {
        let mut writer = request_writer(self.api_key(), correlation_id, client_id);
        match self {
            Request::ApiVersions => {}
            Request::CreateTopic {
                name,
                partitions,
                configs,
            } => {
                writer.string(&name);
                writer.u32(partitions);
                put_configs(&mut writer, &configs);
            }
            Request::DeleteTopic { name } => writer.string(&name),
            Request::AddPartitions { name, partitions } => {
                writer.string(&name);
                writer.u32(partitions);
            }
            Request::AlterTopicConfig { name, set, reset } => {
                writer.string(&name);
                put_configs(&mut writer, &set);
                put_strings(&mut writer, &reset);
            }
            Request::SaslHandshake { mechanism } => writer.string(&mechanism),
            Request::SaslAuthenticate { message } => writer.bytes(&message),
            Request::DeleteRecords {
                topic,
                partition,
                before,
            } => {
                writer.string(&topic);
                writer.u32(partition);
                writer.i64(before);
            }
            Request::Metadata { topics } => put_strings(&mut writer, &topics),
            Request::Produce(produce) => {
                writer.string(&produce.topic);
                writer.i32(produce.partition);
                writer.bytes(&produce.key);
                writer.u8(acks_to_wire(produce.acks));
                writer.chunks(vec![produce.records.freeze()]);
            }
            Request::Fetch(fetch) => {
                writer.string(&fetch.topic);
                writer.u32(fetch.partition);
                writer.u64(fetch.offset);
                writer.u32(fetch.max_bytes);
                writer.u32(fetch.min_bytes);
                writer.u32(fetch.max_wait_ms);
            }
            Request::ListOffsets {
                topic,
                partition,
                spec,
            } => {
                writer.string(&topic);
                writer.u32(partition);
                writer.i64(spec.to_wire());
            }
            Request::JoinGroup {
                group,
                member_id,
                topics,
                session_timeout_ms,
                strategy,
            } => {
                writer.string(&group);
                writer.string(&member_id);
                put_strings(&mut writer, &topics);
                writer.u32(session_timeout_ms);
                writer.string(&strategy);
            }
            Request::Heartbeat {
                group,
                member_id,
                generation,
            } => {
                writer.string(&group);
                writer.string(&member_id);
                writer.u32(generation);
            }
            Request::LeaveGroup { group, member_id } => {
                writer.string(&group);
                writer.string(&member_id);
            }
            Request::CommitOffsets {
                group,
                member_id,
                generation,
                offsets,
            } => {
                writer.string(&group);
                writer.string(&member_id);
                writer.u32(generation);
                put_offsets(&mut writer, &offsets);
            }
            Request::FetchOffsets { group, partitions } => {
                writer.string(&group);
                put_partitions(&mut writer, &partitions);
            }
            Request::ListGroups => {}
            Request::DescribeGroup { group } | Request::DeleteGroup { group } => {
                writer.string(&group)
            }
            Request::Routing(routing) => routing.encode(&mut writer),
            Request::Replies(replies) => replies.encode(&mut writer),
            Request::Queue(queue) => queue.encode(&mut writer),
        }
        writer.finish()
    }

    /// Decodes the body of a request whose header named `api` (version already checked).
    pub fn decode(api: ApiKey, mut reader: Reader) -> Result<Request, ProtocolError> {
        let request = match api {
            ApiKey::ApiVersions => Request::ApiVersions,
            ApiKey::CreateTopic => Request::CreateTopic {
                name: reader.string()?,
                partitions: reader.u32()?,
                configs: read_configs(&mut reader)?,
            },
            ApiKey::AddPartitions => Request::AddPartitions {
                name: reader.string()?,
                partitions: reader.u32()?,
            },
            ApiKey::AlterTopicConfig => Request::AlterTopicConfig {
                name: reader.string()?,
                set: read_configs(&mut reader)?,
                reset: {
                    let count = reader.count(2)?;
                    (0..count)
                        .map(|_| reader.string())
                        .collect::<Result<_, _>>()?
                },
            },
            ApiKey::SaslHandshake => Request::SaslHandshake {
                mechanism: reader.string()?,
            },
            ApiKey::SaslAuthenticate => Request::SaslAuthenticate {
                message: reader.bytes()?.freeze(),
            },
            ApiKey::DeleteRecords => Request::DeleteRecords {
                topic: reader.string()?,
                partition: reader.u32()?,
                before: reader.i64()?,
            },
            ApiKey::DeleteTopic => Request::DeleteTopic {
                name: reader.string()?,
            },
            ApiKey::Metadata => {
                let count = reader.count(2)?;
                Request::Metadata {
                    topics: (0..count)
                        .map(|_| reader.string())
                        .collect::<Result<_, _>>()?,
                }
            }
            ApiKey::Produce => Request::Produce(ProduceRequest {
                topic: reader.string()?,
                partition: reader.i32()?,
                key: reader.bytes()?.freeze(),
                acks: acks_from_wire(reader.u8()?)?,
                records: reader.bytes()?,
            }),
            ApiKey::Fetch => Request::Fetch(FetchRequest {
                topic: reader.string()?,
                partition: reader.u32()?,
                offset: reader.u64()?,
                max_bytes: reader.u32()?,
                min_bytes: reader.u32()?,
                max_wait_ms: reader.u32()?,
            }),
            ApiKey::ListOffsets => Request::ListOffsets {
                topic: reader.string()?,
                partition: reader.u32()?,
                spec: OffsetSpec::from_wire(reader.i64()?)?,
            },
            ApiKey::JoinGroup => {
                let group = reader.string()?;
                let member_id = reader.string()?;
                let count = reader.count(2)?;
                let topics = (0..count)
                    .map(|_| reader.string())
                    .collect::<Result<_, _>>()?;
                Request::JoinGroup {
                    group,
                    member_id,
                    topics,
                    session_timeout_ms: reader.u32()?,
                    strategy: reader.string()?,
                }
            }
            ApiKey::Heartbeat => Request::Heartbeat {
                group: reader.string()?,
                member_id: reader.string()?,
                generation: reader.u32()?,
            },
            ApiKey::LeaveGroup => Request::LeaveGroup {
                group: reader.string()?,
                member_id: reader.string()?,
            },
            ApiKey::CommitOffsets => Request::CommitOffsets {
                group: reader.string()?,
                member_id: reader.string()?,
                generation: reader.u32()?,
                offsets: read_offsets(&mut reader)?,
            },
            ApiKey::FetchOffsets => Request::FetchOffsets {
                group: reader.string()?,
                partitions: read_partitions(&mut reader)?,
            },
            ApiKey::ListGroups => Request::ListGroups,
            ApiKey::DescribeGroup => Request::DescribeGroup {
                group: reader.string()?,
            },
            ApiKey::DeleteGroup => Request::DeleteGroup {
                group: reader.string()?,
            },
            ApiKey::CreateExchange
            | ApiKey::DeleteExchange
            | ApiKey::Bind
            | ApiKey::Unbind
            | ApiKey::ListExchanges
            | ApiKey::Publish => Request::Routing(RoutingRequest::decode(api, &mut reader)?),
            ApiKey::DeclareReplyTo
            | ApiKey::SendRequest
            | ApiKey::Reply
            | ApiKey::ReceiveReplies
            | ApiKey::SendRequestViaExchange => {
                Request::Replies(ReplyRequest::decode(api, &mut reader)?)
            }
            ApiKey::CreateQueueGroup
            | ApiKey::DescribeQueueGroup
            | ApiKey::ListQueueGroups
            | ApiKey::DeleteQueueGroup
            | ApiKey::Receive
            | ApiKey::Settle
            | ApiKey::PurgeQueueGroup => Request::Queue(QueueRequest::decode(api, &mut reader)?),
        };
        reader.finish()?;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::{FrameStatus, REQUEST_HEADER_BYTES, ResponseHeader, frame_status};
    use zerocopy::FromBytes;

    fn round_trip(request: Request) -> Request {
        let frame = BytesMut::from(&request.encode(9, "test")[..].concat()[..]);
        assert_eq!(
            frame_status(&frame, 1 << 20),
            FrameStatus::Ready(frame.len())
        );
        let mut body = frame;
        let _ = body.split_to(4);
        let header = RequestHeader::read_from_prefix(&body).unwrap().0;
        assert_eq!(header.correlation_id.get(), 9);
        let _ = body.split_to(REQUEST_HEADER_BYTES + header.client_id_length.get() as usize);
        Request::decode(
            ApiKey::from_u16(header.api_key.get()).unwrap(),
            Reader::new(body),
        )
        .unwrap()
    }

    #[test]
    fn requests_round_trip() {
        let produce = round_trip(Request::Produce(ProduceRequest {
            topic: "t".into(),
            partition: -1,
            key: Bytes::from_static(b"k"),
            acks: AckLevel::Written,
            records: BytesMut::from(&b"records"[..]),
        }));
        let Request::Produce(produce) = produce else {
            panic!("not a produce")
        };
        assert_eq!(
            (
                produce.topic.as_str(),
                produce.partition,
                &produce.records[..]
            ),
            ("t", -1, &b"records"[..])
        );
        let fetch = FetchRequest {
            topic: "t".into(),
            partition: 3,
            offset: 99,
            max_bytes: 10,
            min_bytes: 1,
            max_wait_ms: 5,
        };
        let Request::Fetch(decoded) = round_trip(Request::Fetch(fetch.clone())) else {
            panic!("not a fetch")
        };
        assert_eq!(decoded, fetch);
        let Request::CreateTopic { configs, .. } = round_trip(Request::CreateTopic {
            name: "x".into(),
            partitions: 4,
            configs: vec![("a".into(), "b".into())],
        }) else {
            panic!("not a create")
        };
        assert_eq!(configs, vec![("a".to_string(), "b".to_string())]);
    }

    #[test]
    fn an_error_response_carries_code_and_message() {
        let frame = encode_response(
            5,
            Err(ProtocolError::new(ErrorCode::UnknownTopic, "no topic x")),
        )
        .concat();
        let header = ResponseHeader::read_from_prefix(&frame[4..]).unwrap().0;
        assert_eq!(header.error_code.get(), ErrorCode::UnknownTopic as u16);
        assert_eq!(&frame[4 + 8..], b"no topic x");
    }
}
