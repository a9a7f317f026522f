//! The native protocol's request/reply messages (API keys 66 to 70): declaring a reply
//! destination, sending a request, replying, and receiving direct replies. Beside
//! `messages.rs`, which carries them as `Request::Replies` and `Response::Replies`;
//! docs/PROTOCOL.md mirrors them byte by byte. Every length is bounded by the frame it came in
//! (the reader refuses to run past it), and enums are checked, so hostile bytes decode to an
//! error, never a panic.

use bytes::BytesMut;

use super::codec::{FrameWriter, Reader};
use super::error::{ErrorCode, ProtocolError};
use super::messages::{ApiKey, acks_from_wire, acks_to_wire};
use crate::storage::AckLevel;

fn malformed(what: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::MalformedRequest, what)
}

/// Which reply destination to declare.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// Replies delivered to this connection, in memory, never stored.
    Direct = 0,
    /// A temporary topic only this connection reads, deleted when it closes.
    Temporary = 1,
}

/// What became of a reply, on the wire: 0 delivered, 1 stored, 2 late, 3 no requester, 4 full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyStatus {
    Delivered = 0,
    Stored = 1,
    /// Dropped: the correlation id was not pending (timed out, answered already, never asked).
    Late = 2,
    /// Dropped: the requesting connection is gone.
    NoRequester = 3,
    /// Dropped: the requester's queue of replies is full.
    Full = 4,
}

impl ReplyStatus {
    const ALL: [ReplyStatus; 5] = [
        ReplyStatus::Delivered,
        ReplyStatus::Stored,
        ReplyStatus::Late,
        ReplyStatus::NoRequester,
        ReplyStatus::Full,
    ];
}

#[derive(Debug)]
pub enum ReplyRequest {
    DeclareReplyTo {
        mode: ReplyMode,
    },
    /// One record (one batch) to `destination`, its reply to go to `reply_to`.
    SendRequest {
        destination: String,
        reply_to: String,
        correlation_id: String,
        timeout_ms: u32,
        acks: AckLevel,
        records: BytesMut,
    },
    /// One record (one batch) published through `exchange` by `routing_key`, its replies to
    /// go to `reply_to`.
    SendRequestViaExchange {
        exchange: String,
        routing_key: String,
        reply_to: String,
        correlation_id: String,
        timeout_ms: u32,
        acks: AckLevel,
        records: BytesMut,
    },
    /// One record (one batch) for a request's `reply_to`.
    Reply {
        reply_to: String,
        correlation_id: String,
        acks: AckLevel,
        records: BytesMut,
    },
    /// Up to `max_replies` direct replies, waiting up to `max_wait_ms` for the first.
    ReceiveReplies {
        max_replies: u32,
        max_wait_ms: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyResponse {
    Declared {
        destination: String,
    },
    Sent {
        partition: u32,
        offset: u64,
    },
    /// A request through an exchange: copies stored, and copies that failed.
    Routed {
        stored: u32,
        failed: u32,
    },
    /// `partition` and `offset` are the stored copy's (0 unless `Stored`).
    Replied {
        status: ReplyStatus,
        partition: u32,
        offset: u64,
    },
    /// Record batches; each record carries its `correlation-id` header.
    Received {
        records: BytesMut,
    },
}

impl ReplyRequest {
    pub fn api_key(&self) -> ApiKey {
        match self {
            ReplyRequest::DeclareReplyTo { .. } => ApiKey::DeclareReplyTo,
            ReplyRequest::SendRequest { .. } => ApiKey::SendRequest,
            ReplyRequest::SendRequestViaExchange { .. } => ApiKey::SendRequestViaExchange,
            ReplyRequest::Reply { .. } => ApiKey::Reply,
            ReplyRequest::ReceiveReplies { .. } => ApiKey::ReceiveReplies,
        }
    }

    pub fn encode(self, writer: &mut FrameWriter) {
        match self {
            ReplyRequest::DeclareReplyTo { mode } => writer.u8(mode as u8),
            ReplyRequest::SendRequest {
                destination,
                reply_to,
                correlation_id,
                timeout_ms,
                acks,
                records,
            } => {
                writer.string(&destination);
                writer.string(&reply_to);
                writer.string(&correlation_id);
                writer.u32(timeout_ms);
                writer.u8(acks_to_wire(acks));
                writer.chunks(vec![records.freeze()]);
            }
            ReplyRequest::SendRequestViaExchange {
                exchange,
                routing_key,
                reply_to,
                correlation_id,
                timeout_ms,
                acks,
                records,
            } => {
                writer.string(&exchange);
                writer.string(&routing_key);
                writer.string(&reply_to);
                writer.string(&correlation_id);
                writer.u32(timeout_ms);
                writer.u8(acks_to_wire(acks));
                writer.chunks(vec![records.freeze()]);
            }
            ReplyRequest::Reply {
                reply_to,
                correlation_id,
                acks,
                records,
            } => {
                writer.string(&reply_to);
                writer.string(&correlation_id);
                writer.u8(acks_to_wire(acks));
                writer.chunks(vec![records.freeze()]);
            }
            ReplyRequest::ReceiveReplies {
                max_replies,
                max_wait_ms,
            } => {
                writer.u32(max_replies);
                writer.u32(max_wait_ms);
            }
        }
    }

    /// Decodes the body of a request/reply request of `api`.
    pub fn decode(api: ApiKey, reader: &mut Reader) -> Result<ReplyRequest, ProtocolError> {
        let request = match api {
            ApiKey::DeclareReplyTo => ReplyRequest::DeclareReplyTo {
                mode: match reader.u8()? {
                    0 => ReplyMode::Direct,
                    1 => ReplyMode::Temporary,
                    other => return Err(malformed(format!("reply mode {other} is not 0 or 1"))),
                },
            },
            ApiKey::SendRequest => ReplyRequest::SendRequest {
                destination: reader.string()?,
                reply_to: reader.string()?,
                correlation_id: reader.string()?,
                timeout_ms: reader.u32()?,
                acks: acks_from_wire(reader.u8()?)?,
                records: reader.bytes()?,
            },
            ApiKey::SendRequestViaExchange => ReplyRequest::SendRequestViaExchange {
                exchange: reader.string()?,
                routing_key: reader.string()?,
                reply_to: reader.string()?,
                correlation_id: reader.string()?,
                timeout_ms: reader.u32()?,
                acks: acks_from_wire(reader.u8()?)?,
                records: reader.bytes()?,
            },
            ApiKey::Reply => ReplyRequest::Reply {
                reply_to: reader.string()?,
                correlation_id: reader.string()?,
                acks: acks_from_wire(reader.u8()?)?,
                records: reader.bytes()?,
            },
            ApiKey::ReceiveReplies => ReplyRequest::ReceiveReplies {
                max_replies: reader.u32()?,
                max_wait_ms: reader.u32()?,
            },
            other => {
                return Err(malformed(format!(
                    "{other:?} is not a request/reply request"
                )));
            }
        };
        Ok(request)
    }
}

impl ReplyResponse {
    pub fn encode(self, writer: &mut FrameWriter) {
        match self {
            ReplyResponse::Declared { destination } => writer.string(&destination),
            ReplyResponse::Sent { partition, offset } => {
                writer.u32(partition);
                writer.u64(offset);
            }
            ReplyResponse::Routed { stored, failed } => {
                writer.u32(stored);
                writer.u32(failed);
            }
            ReplyResponse::Replied {
                status,
                partition,
                offset,
            } => {
                writer.u8(status as u8);
                writer.u32(partition);
                writer.u64(offset);
            }
            ReplyResponse::Received { records } => writer.chunks(vec![records.freeze()]),
        }
    }

    /// Decodes the response to a request/reply request of `api`.
    pub fn decode(api: ApiKey, reader: &mut Reader) -> Result<ReplyResponse, ProtocolError> {
        let response = match api {
            ApiKey::DeclareReplyTo => ReplyResponse::Declared {
                destination: reader.string()?,
            },
            ApiKey::SendRequest => ReplyResponse::Sent {
                partition: reader.u32()?,
                offset: reader.u64()?,
            },
            ApiKey::SendRequestViaExchange => ReplyResponse::Routed {
                stored: reader.u32()?,
                failed: reader.u32()?,
            },
            ApiKey::Reply => {
                let status = reader.u8()?;
                ReplyResponse::Replied {
                    status: *ReplyStatus::ALL
                        .get(usize::from(status))
                        .ok_or_else(|| malformed(format!("reply status {status}")))?,
                    partition: reader.u32()?,
                    offset: reader.u64()?,
                }
            }
            ApiKey::ReceiveReplies => ReplyResponse::Received {
                records: reader.bytes()?,
            },
            other => {
                return Err(malformed(format!(
                    "{other:?} is not a request/reply request"
                )));
            }
        };
        Ok(response)
    }
}
