//! The native protocol's responses on the wire: a header with the correlation id, an error code
//! and message, then the body of the response to the request's API. Beside `messages.rs`, whose
//! types it encodes, and mirrored byte by byte in docs/PROTOCOL.md.

use bytes::Bytes;

use super::codec::{FrameWriter, Reader, ResponseHeader};
use super::error::{ErrorCode, ProtocolError};
use super::messages::*;

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
        Response::Queue(queue) => queue.encode(&mut writer),
        Response::SaslMechanisms(mechanisms) => {
            writer.u32(mechanisms.len() as u32);
            for mechanism in &mechanisms {
                writer.string(mechanism);
            }
        }
        Response::SaslMessage(message) => writer.bytes(&message),
        Response::DeleteRecords { log_start_offset } => writer.u64(log_start_offset),
        Response::Routing(routing) => routing.encode(&mut writer),
        Response::Replies(replies) => replies.encode(&mut writer),
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
        | ApiKey::AddPartitions
        | ApiKey::AlterTopicConfig
        | ApiKey::LeaveGroup
        | ApiKey::CommitOffsets
        | ApiKey::DeleteGroup
        | ApiKey::CreateExchange
        | ApiKey::DeleteExchange
        | ApiKey::Bind
        | ApiKey::Unbind => Response::Done,
        ApiKey::ListExchanges | ApiKey::Publish => {
            Response::Routing(RoutingResponse::decode(api, &mut reader)?)
        }
        ApiKey::DeclareReplyTo
        | ApiKey::SendRequest
        | ApiKey::Reply
        | ApiKey::ReceiveReplies
        | ApiKey::SendRequestViaExchange => {
            Response::Replies(ReplyResponse::decode(api, &mut reader)?)
        }
        ApiKey::CreateQueueGroup
        | ApiKey::DescribeQueueGroup
        | ApiKey::ListQueueGroups
        | ApiKey::DeleteQueueGroup
        | ApiKey::Receive
        | ApiKey::Settle
        | ApiKey::PurgeQueueGroup => {
            match super::queues::QueueResponse::decode(api, &mut reader)? {
                Some(queue) => Response::Queue(queue),
                None => Response::Done,
            }
        }
        ApiKey::JoinGroup | ApiKey::Heartbeat => Response::Group(GroupAssignment {
            member_id: reader.string()?,
            generation: reader.u32()?,
            assignment: read_partitions(&mut reader)?,
        }),
        ApiKey::FetchOffsets => Response::Offsets(read_offsets(&mut reader)?),
        ApiKey::SaslHandshake => {
            let count = reader.count(2)?;
            Response::SaslMechanisms(
                (0..count)
                    .map(|_| reader.string())
                    .collect::<Result<_, _>>()?,
            )
        }
        ApiKey::SaslAuthenticate => Response::SaslMessage(reader.bytes()?.freeze()),
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
        ApiKey::DeleteRecords => Response::DeleteRecords {
            log_start_offset: reader.u64()?,
        },
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
