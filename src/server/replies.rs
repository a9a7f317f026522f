//! The native protocol's request/reply requests, served by the broker service (part of the
//! native adapter, beside `dispatch.rs`), and each connection's identity for them: a
//! `Connection` numbers the connection and, once it has used request/reply, tells the service
//! when it closes, so its direct inbox is forgotten and its temporary topics deleted.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::dispatch::hold_back;
use super::errors::to_native;
use crate::batch::{BatchBuilder, Compression};
use crate::broker::ShardState;
use crate::broker::service::{
    Delivery, ExchangeRequest, QuotaKind, ReplyOutcome, RequestContext, SendReply, SendRequest,
    Service,
};
use crate::protocol::replies::{ReplyMode, ReplyRequest, ReplyResponse, ReplyStatus};
use crate::protocol::{ProtocolError, Response};

/// Connection numbers, unique in the broker's run (0 is "no connection").
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// One native connection's identity; shared by its requests' handlers, dropped with the last.
pub(crate) struct Connection {
    pub id: u64,
    /// Set once the connection used request/reply: its shard, to clean up on.
    used: RefCell<Option<Rc<ShardState>>>,
}

impl Default for Connection {
    fn default() -> Self {
        Connection {
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            used: RefCell::new(None),
        }
    }
}

impl Connection {
    /// Marks the connection as holding request/reply state on `state`'s shard.
    pub fn uses_replies(&self, state: &Rc<ShardState>) {
        self.used.borrow_mut().get_or_insert_with(|| state.clone());
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // While the shard stops (its runtime may be going away) nothing is spawned: the inbox
        // goes with the shard, and temporary topics are dropped at the next start.
        if let Some(state) = self.used.borrow_mut().take()
            && !state.lifecycle.stopping.get()
        {
            let id = self.id;
            crate::runtime::spawn_detached(async move {
                Service::new(state).close_connection(id).await;
            });
        }
    }
}

/// Answers one request/reply request.
pub async fn serve(
    service: &Service,
    ctx: &RequestContext,
    request: ReplyRequest,
) -> Result<Response, ProtocolError> {
    let response = match request {
        ReplyRequest::DeclareReplyTo { mode } => {
            let destination = match mode {
                ReplyMode::Direct => service.declare_direct_reply_to(ctx),
                ReplyMode::Temporary => service.declare_temporary_reply_to(ctx).await,
            };
            ReplyResponse::Declared {
                destination: destination.map_err(to_native)?,
            }
        }
        ReplyRequest::SendRequest {
            destination,
            reply_to,
            correlation_id,
            timeout_ms,
            acks,
            records,
        } => {
            let bytes = records.len() as u64;
            let request = SendRequest {
                destination,
                reply_to,
                correlation_id,
                timeout: Duration::from_millis(u64::from(timeout_ms)),
                acks,
                records,
            };
            let sent = service.send_request(ctx, request).await;
            hold_back(service.charge_quota(ctx, QuotaKind::ProduceBytes, bytes)).await;
            let sent = sent.map_err(to_native)?;
            ReplyResponse::Sent {
                partition: sent.partition,
                offset: sent.base_offset,
            }
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
            let bytes = records.len() as u64;
            let request = ExchangeRequest {
                exchange,
                routing_key,
                reply_to,
                correlation_id,
                timeout: Duration::from_millis(u64::from(timeout_ms)),
                acks,
                records,
            };
            let routed = service.send_request_via_exchange(ctx, request).await;
            hold_back(service.charge_quota(ctx, QuotaKind::ProduceBytes, bytes)).await;
            let routed = routed.map_err(to_native)?;
            let stored = routed
                .copies
                .iter()
                .filter(|copy| copy.result.is_ok())
                .count();
            let failed = routed.copies.len() - stored;
            ReplyResponse::Routed {
                stored: u32::try_from(stored).unwrap_or(u32::MAX),
                failed: u32::try_from(failed).unwrap_or(u32::MAX),
            }
        }
        ReplyRequest::Reply {
            reply_to,
            correlation_id,
            acks,
            records,
        } => {
            let bytes = records.len() as u64;
            let reply = SendReply {
                reply_to,
                correlation_id,
                acks,
                records,
            };
            let outcome = service.reply(ctx, reply).await;
            hold_back(service.charge_quota(ctx, QuotaKind::ProduceBytes, bytes)).await;
            let outcome = outcome.map_err(to_native)?;
            let (status, partition, offset) = match outcome {
                ReplyOutcome::Stored(stored) => {
                    (ReplyStatus::Stored, stored.partition, stored.base_offset)
                }
                ReplyOutcome::Direct(delivery) => (status(delivery), 0, 0),
            };
            ReplyResponse::Replied {
                status,
                partition,
                offset,
            }
        }
        ReplyRequest::ReceiveReplies {
            max_replies,
            max_wait_ms,
        } => {
            let wait = Duration::from_millis(u64::from(max_wait_ms));
            let max = usize::try_from(max_replies).unwrap_or(usize::MAX);
            let replies = service
                .receive_replies(ctx, max, wait)
                .await
                .map_err(to_native)?;
            let mut records = bytes::BytesMut::new();
            if !replies.is_empty() {
                let mut builder = BatchBuilder::new(Compression::None);
                replies.into_iter().for_each(|reply| builder.push(reply));
                records.extend_from_slice(&builder.build());
            }
            let bytes = records.len() as u64;
            hold_back(service.charge_quota(ctx, QuotaKind::FetchBytes, bytes)).await;
            ReplyResponse::Received { records }
        }
    };
    Ok(Response::Replies(response))
}

fn status(delivery: Delivery) -> ReplyStatus {
    match delivery {
        Delivery::Delivered => ReplyStatus::Delivered,
        Delivery::Late => ReplyStatus::Late,
        Delivery::NoRequester => ReplyStatus::NoRequester,
        Delivery::Full => ReplyStatus::Full,
    }
}
