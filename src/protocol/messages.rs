//! Every request and response of the native protocol, version 0, with its encoding. One file:
//! the messages are small, and seeing them side by side is the point (docs/PROTOCOL.md mirrors
//! this file byte by byte).

use bytes::{Bytes, BytesMut};

use super::codec::{FrameWriter, Reader, RequestHeader, ResponseHeader};
use super::error::{ErrorCode, ProtocolError};
use crate::storage::AckLevel;

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
    /// Empty `topics` asks for every topic.
    Metadata {
        topics: Vec<String>,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDescription {
    pub summary: GroupSummary,
    pub strategy: String,
    /// (member id, client id, assigned partitions)
    pub members: Vec<(String, String, Vec<(String, u32)>)>,
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
}

fn acks_to_wire(acks: AckLevel) -> u8 {
    match acks {
        AckLevel::None => 0,
        AckLevel::Written => 1,
        AckLevel::Fsynced => 2,
    }
}

fn acks_from_wire(value: u8) -> Result<AckLevel, ProtocolError> {
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

fn put_configs(writer: &mut FrameWriter, configs: &[(String, String)]) {
    writer.u32(configs.len() as u32);
    for (key, value) in configs {
        writer.string(key);
        writer.string(value);
    }
}

fn put_partitions(writer: &mut FrameWriter, partitions: &[(String, u32)]) {
    writer.u32(partitions.len() as u32);
    for (topic, partition) in partitions {
        writer.string(topic);
        writer.u32(*partition);
    }
}

fn read_partitions(reader: &mut Reader) -> Result<Vec<(String, u32)>, ProtocolError> {
    let count = reader.count(6)?;
    (0..count)
        .map(|_| Ok((reader.string()?, reader.u32()?)))
        .collect()
}

fn put_offsets(writer: &mut FrameWriter, offsets: &[(String, u32, u64)]) {
    writer.u32(offsets.len() as u32);
    for (topic, partition, offset) in offsets {
        writer.string(topic);
        writer.u32(*partition);
        writer.u64(*offset);
    }
}

fn read_offsets(reader: &mut Reader) -> Result<Vec<(String, u32, u64)>, ProtocolError> {
    let count = reader.count(14)?;
    (0..count)
        .map(|_| Ok((reader.string()?, reader.u32()?, reader.u64()?)))
        .collect()
}

fn put_summary(writer: &mut FrameWriter, summary: &GroupSummary) {
    writer.string(&summary.name);
    writer.string(&summary.state);
    writer.u32(summary.generation);
    writer.u32(summary.members);
}

fn read_summary(reader: &mut Reader) -> Result<GroupSummary, ProtocolError> {
    Ok(GroupSummary {
        name: reader.string()?,
        state: reader.string()?,
        generation: reader.u32()?,
        members: reader.u32()?,
    })
}

fn read_configs(reader: &mut Reader) -> Result<Vec<(String, String)>, ProtocolError> {
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
        }
    }

    /// The whole request frame, header included.
    pub fn encode(self, correlation_id: u32, client_id: &str) -> Vec<Bytes> {
        let mut writer = FrameWriter::new();
        let client_id = &client_id[..client_id.len().min(255)];
        writer.put_header(&RequestHeader {
            api_key: (self.api_key() as u16).into(),
            api_version: 0.into(),
            correlation_id: correlation_id.into(),
            client_id_length: (client_id.len() as u16).into(),
        });
        for byte in client_id.bytes() {
            writer.u8(byte);
        }
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
            Request::Metadata { topics } => {
                writer.u32(topics.len() as u32);
                for topic in &topics {
                    writer.string(topic);
                }
            }
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
                writer.u32(topics.len() as u32);
                for topic in &topics {
                    writer.string(topic);
                }
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
        };
        reader.finish()?;
        Ok(request)
    }
}

/// A whole response frame for `correlation_id`: the result's body, or its error.
pub fn encode_response(correlation_id: u32, result: Result<Response, ProtocolError>) -> Vec<Bytes> {
    let mut writer = FrameWriter::new();
    let (code, message) = match &result {
        Ok(_) => (ErrorCode::None, ""),
        Err(error) => (error.code, error.message.as_str()),
    };
    let mut end = message.len().min(u16::MAX as usize);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    writer.put_header(&ResponseHeader {
        correlation_id: correlation_id.into(),
        error_code: (code as u16).into(),
        message_length: (end as u16).into(),
    });
    for byte in &message.as_bytes()[..end] {
        writer.u8(*byte);
    }
    let Ok(response) = result else {
        return writer.finish();
    };
    match response {
        Response::ApiVersions {
            apis,
            broker_version,
        } => {
            writer.u32(apis.len() as u32);
            for (key, min, max) in apis {
                writer.u16(key);
                writer.u16(min);
                writer.u16(max);
            }
            writer.string(&broker_version);
        }
        Response::Done => {}
        Response::Metadata { shards, topics } => {
            writer.u32(shards);
            writer.u32(topics.len() as u32);
            for topic in topics {
                writer.string(&topic.name);
                writer.u32(topic.partitions);
                put_configs(&mut writer, &topic.configs);
            }
        }
        Response::Produce(produce) => {
            writer.u32(produce.partition);
            writer.u64(produce.base_offset);
            writer.u64(produce.last_offset);
            writer.u64(produce.log_start_offset);
            writer.i64(produce.log_append_time_ms);
        }
        Response::Fetch(fetch) => {
            writer.u64(fetch.high_watermark);
            writer.u64(fetch.log_start_offset);
            writer.chunks(fetch.records);
        }
        Response::ListOffsets {
            offset,
            high_watermark,
            log_start_offset,
        } => {
            writer.i64(offset.map_or(-1, |offset| offset as i64));
            writer.u64(high_watermark);
            writer.u64(log_start_offset);
        }
        Response::Group(group) => {
            writer.string(&group.member_id);
            writer.u32(group.generation);
            put_partitions(&mut writer, &group.assignment);
        }
        Response::Offsets(offsets) => put_offsets(&mut writer, &offsets),
        Response::Groups(groups) => {
            writer.u32(groups.len() as u32);
            for group in &groups {
                put_summary(&mut writer, group);
            }
        }
        Response::GroupDescription(description) => {
            put_summary(&mut writer, &description.summary);
            writer.string(&description.strategy);
            writer.u32(description.members.len() as u32);
            for (member_id, client_id, assignment) in &description.members {
                writer.string(member_id);
                writer.string(client_id);
                put_partitions(&mut writer, assignment);
            }
            put_offsets(&mut writer, &description.offsets);
        }
    }
    writer.finish()
}

/// Decodes a response body to a request of `api` (the client knows which from the correlation).
pub fn decode_response(api: ApiKey, mut reader: Reader) -> Result<Response, ProtocolError> {
    let response = match api {
        ApiKey::ApiVersions => {
            let count = reader.count(6)?;
            let apis = (0..count)
                .map(|_| Ok((reader.u16()?, reader.u16()?, reader.u16()?)))
                .collect::<Result<_, ProtocolError>>()?;
            Response::ApiVersions {
                apis,
                broker_version: reader.string()?,
            }
        }
        ApiKey::CreateTopic
        | ApiKey::DeleteTopic
        | ApiKey::LeaveGroup
        | ApiKey::CommitOffsets
        | ApiKey::DeleteGroup => Response::Done,
        ApiKey::JoinGroup | ApiKey::Heartbeat => Response::Group(GroupAssignment {
            member_id: reader.string()?,
            generation: reader.u32()?,
            assignment: read_partitions(&mut reader)?,
        }),
        ApiKey::FetchOffsets => Response::Offsets(read_offsets(&mut reader)?),
        ApiKey::ListGroups => {
            let count = reader.count(12)?;
            Response::Groups(
                (0..count)
                    .map(|_| read_summary(&mut reader))
                    .collect::<Result<_, _>>()?,
            )
        }
        ApiKey::DescribeGroup => {
            let summary = read_summary(&mut reader)?;
            let strategy = reader.string()?;
            let count = reader.count(8)?;
            let members = (0..count)
                .map(|_| {
                    Ok((
                        reader.string()?,
                        reader.string()?,
                        read_partitions(&mut reader)?,
                    ))
                })
                .collect::<Result<_, ProtocolError>>()?;
            Response::GroupDescription(GroupDescription {
                summary,
                strategy,
                members,
                offsets: read_offsets(&mut reader)?,
            })
        }
        ApiKey::Metadata => {
            let shards = reader.u32()?;
            let count = reader.count(10)?;
            let topics = (0..count)
                .map(|_| {
                    Ok(TopicMetadata {
                        name: reader.string()?,
                        partitions: reader.u32()?,
                        configs: read_configs(&mut reader)?,
                    })
                })
                .collect::<Result<_, ProtocolError>>()?;
            Response::Metadata { shards, topics }
        }
        ApiKey::Produce => Response::Produce(ProduceResponse {
            partition: reader.u32()?,
            base_offset: reader.u64()?,
            last_offset: reader.u64()?,
            log_start_offset: reader.u64()?,
            log_append_time_ms: reader.i64()?,
        }),
        ApiKey::Fetch => Response::Fetch(FetchResponse {
            high_watermark: reader.u64()?,
            log_start_offset: reader.u64()?,
            records: vec![reader.bytes()?.freeze()],
        }),
        ApiKey::ListOffsets => {
            let offset = reader.i64()?;
            Response::ListOffsets {
                offset: (offset >= 0).then_some(offset as u64),
                high_watermark: reader.u64()?,
                log_start_offset: reader.u64()?,
            }
        }
    };
    reader.finish()?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::{FrameStatus, REQUEST_HEADER_BYTES, frame_status};
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
