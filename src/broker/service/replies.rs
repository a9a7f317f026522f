//! The service's request/reply operations (see `broker::replies` for the model): declaring a
//! connection's direct or temporary reply destination, sending a request (which, with a direct
//! reply-to, makes its correlation id pending until its timeout), replying, receiving direct
//! replies, and forgetting a closed connection. Requests and replies to topics are produces and
//! are authorized as such (Write on the topic); a direct reply needs no ACL: its unguessable
//! name, given by the requester, is the permission.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{PartitionChoice, Produce, Produced, Publish, Published, RequestContext, Service};
use crate::batch::Record;
use crate::broker::admin;
use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};
use crate::broker::rebatch;
use crate::broker::replies::inbox::Delivery;
use crate::broker::replies::{self, CORRELATION_ID_HEADER, REPLY_TO_HEADER, ReplyTo};
use crate::broker::service::NewTopic;
use crate::storage::AckLevel;

/// A request: one record for `destination`, whose reply goes to `reply_to`.
#[derive(Debug)]
pub struct SendRequest {
    pub destination: String,
    pub reply_to: String,
    pub correlation_id: String,
    /// How long the requester waits (a direct reply after it is dropped as late).
    pub timeout: Duration,
    pub acks: AckLevel,
    /// One batch of exactly one record.
    pub records: BytesMut,
}

/// A request published through an exchange: one record, routed by `routing_key` (and its
/// headers), whose replies go to `reply_to`.
#[derive(Debug)]
pub struct ExchangeRequest {
    pub exchange: String,
    pub routing_key: String,
    pub reply_to: String,
    pub correlation_id: String,
    pub timeout: Duration,
    pub acks: AckLevel,
    /// One batch of exactly one record.
    pub records: BytesMut,
}

/// A reply: one record for the `reply_to` of a request, with its correlation id.
#[derive(Debug)]
pub struct SendReply {
    pub reply_to: String,
    pub correlation_id: String,
    /// For replies stored in a topic.
    pub acks: AckLevel,
    /// One batch of exactly one record.
    pub records: BytesMut,
}

/// What became of a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// To a direct reply-to: delivered, or dropped and why.
    Direct(Delivery),
    /// Appended to a topic (temporary or not).
    Stored(Produced),
}

fn need_connection(ctx: &RequestContext) -> BrokerResult<u64> {
    match ctx.connection {
        0 => Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            "reply destinations belong to native connections",
        )),
        connection => Ok(connection),
    }
}

impl Service {
    /// This connection's direct reply-to name (the same for the connection's life).
    pub fn declare_direct_reply_to(&self, ctx: &RequestContext) -> BrokerResult<String> {
        let connection = need_connection(ctx)?;
        let shard = self.state.id;
        let inbox = self
            .state
            .replies
            .inbox(shard, connection, replies::nonce());
        Ok(replies::direct_name(shard, connection, inbox.nonce))
    }

    /// A new temporary reply topic of this connection (one partition), deleted when it closes.
    pub async fn declare_temporary_reply_to(&self, ctx: &RequestContext) -> BrokerResult<String> {
        let connection = need_connection(ctx)?;
        let (shard, config) = (self.state.id, &self.state.config);
        let name = replies::temporary_name(shard, connection, replies::nonce());
        let state = &self.state.replies;
        state.add_temporary(config, shard, connection, &name)?;
        let topic = NewTopic {
            name: name.clone(),
            partitions: 1,
            configs: Vec::new(),
        };
        let created = self
            .state
            .on_shard_until(ctx.deadline, 0, move |zero| async move {
                admin::create_topic(&zero, topic).await
            })
            .await;
        match created {
            Ok(()) => Ok(name),
            // The creation may still finish on shard 0 after the wait ended: the name stays
            // the connection's, so its close deletes the topic (or finds none).
            Err(error) if error.kind == ErrorKind::TimedOut => Err(error),
            Err(error) => {
                state.remove_temporary(shard, connection, &name);
                Err(error)
            }
        }
    }

    /// Appends a request to `destination` with its `reply-to` and `correlation-id` headers;
    /// with this connection's direct reply-to, its correlation id is pending until `timeout`.
    pub async fn send_request(
        &self,
        ctx: &RequestContext,
        request: SendRequest,
    ) -> BrokerResult<Produced> {
        let record = self.one_record(&request.records, "a request")?;
        let ids = (request.reply_to.as_str(), request.correlation_id.as_str());
        let (record, pending) = self.prepare_request(ctx, ids, request.timeout, record)?;
        let stored = self
            .append_one(ctx, request.destination, request.acks, record)
            .await;
        metrics::counter!("ringmq_reply_requests_total").increment(1);
        if let (Err(_), Some(connection)) = (&stored, pending) {
            let replies = &self.state.replies;
            replies.forget(self.state.id, connection, &request.correlation_id);
        }
        stored
    }

    /// Publishes a request through an exchange: one copy to each topic its routing key (and
    /// headers) reach, each with the `reply-to` and `correlation-id` headers, as
    /// [`Service::publish`] does (Write on every such topic). A request no binding routes is
    /// refused (`Unroutable`), as is one no copy of which was stored: nobody could answer
    /// either, and the requester learns it now rather than at its timeout. Several copies may
    /// be answered several times; the first reply is the one a direct reply-to delivers.
    pub async fn send_request_via_exchange(
        &self,
        ctx: &RequestContext,
        request: ExchangeRequest,
    ) -> BrokerResult<Published> {
        let record = self.one_record(&request.records, "a request")?;
        let ids = (request.reply_to.as_str(), request.correlation_id.as_str());
        let (record, pending) = self.prepare_request(ctx, ids, request.timeout, record)?;
        let batch_bytes_max = self.state.config.topic_defaults.batch_bytes_max;
        let publish = Publish {
            exchange: request.exchange,
            routing_key: request.routing_key,
            mandatory: true,
            acks: request.acks,
            records: rebatch::encode([record], batch_bytes_max),
        };
        let published = self.publish(ctx, publish).await.and_then(|published| {
            let stored = published.copies.iter().filter(|copy| copy.result.is_ok());
            if stored.count() > 0 {
                return Ok(published);
            }
            Err(published
                .copies
                .into_iter()
                .find_map(|copy| copy.result.err())
                .unwrap_or_else(|| BrokerError::new(ErrorKind::Unroutable, "no copy was stored")))
        });
        metrics::counter!("ringmq_reply_requests_total").increment(1);
        if let (Err(_), Some(connection)) = (&published, pending) {
            let replies = &self.state.replies;
            replies.forget(self.state.id, connection, &request.correlation_id);
        }
        published
    }

    /// Checks a request's reply-to and correlation id, makes the correlation id pending when
    /// the reply-to is this connection's direct one (returning the connection), and adds the
    /// `reply-to` and `correlation-id` headers to `record`.
    fn prepare_request(
        &self,
        ctx: &RequestContext,
        (reply_to_name, correlation_id): (&str, &str),
        timeout: Duration,
        mut record: Record,
    ) -> BrokerResult<(Record, Option<u64>)> {
        replies::validate_correlation_id(correlation_id)?;
        let reply_to = replies::parse(reply_to_name)?;
        let (shard, config) = (self.state.id, &self.state.config);
        let pending = match reply_to {
            ReplyTo::Direct {
                shard: at,
                connection,
                nonce,
            } => {
                let ours = at == shard
                    && connection == ctx.connection
                    && ctx.connection != 0
                    && self.state.replies.inbox_nonce(connection) == Some(nonce);
                if !ours {
                    return Err(BrokerError::new(
                        ErrorKind::UnknownReplyDestination,
                        format!(
                            "reply-to {reply_to_name:?} is not this connection's direct reply-to"
                        ),
                    ));
                }
                let timeout = timeout.min(Duration::from_millis(config.reply_timeout_ms_max));
                let replies = &self.state.replies;
                replies.expect(config, shard, connection, correlation_id, timeout)?;
                Some(connection)
            }
            ReplyTo::Temporary { connection, .. } if connection != ctx.connection => {
                return Err(exclusive(reply_to_name));
            }
            ReplyTo::Temporary { .. } | ReplyTo::Topic(_) => None,
        };
        let headers = [
            (REPLY_TO_HEADER, reply_to_name),
            (CORRELATION_ID_HEADER, correlation_id),
        ];
        for (key, value) in headers {
            rebatch::set_header(&mut record, key, Bytes::copy_from_slice(value.as_bytes()));
        }
        Ok((record, pending))
    }

    /// Sends a reply: to a direct reply-to's inbox (wherever its shard), else into the topic.
    pub async fn reply(
        &self,
        ctx: &RequestContext,
        reply: SendReply,
    ) -> BrokerResult<ReplyOutcome> {
        replies::validate_correlation_id(&reply.correlation_id)?;
        let reply_to = replies::parse(&reply.reply_to)?;
        let mut record = self.one_record(&reply.records, "a reply")?;
        let correlation = Bytes::copy_from_slice(reply.correlation_id.as_bytes());
        rebatch::set_header(&mut record, CORRELATION_ID_HEADER, correlation);
        let outcome = match reply_to {
            ReplyTo::Direct {
                shard,
                connection,
                nonce,
            } => {
                if shard >= self.state.shards() {
                    return Err(BrokerError::new(
                        ErrorKind::UnknownReplyDestination,
                        format!(
                            "reply-to {:?} names no shard of this broker",
                            reply.reply_to
                        ),
                    ));
                }
                let correlation_id = reply.correlation_id;
                let delivery = self
                    .state
                    .on_shard_until(ctx.deadline, shard, move |owner| async move {
                        let (config, id) = (&owner.config, owner.id);
                        let replies = &owner.replies;
                        let key = (connection, nonce);
                        Ok::<_, BrokerError>(replies.deliver(
                            config,
                            id,
                            key,
                            &correlation_id,
                            record,
                        ))
                    })
                    .await?;
                ReplyOutcome::Direct(delivery)
            }
            ReplyTo::Temporary { topic, .. } | ReplyTo::Topic(topic) => {
                ReplyOutcome::Stored(self.append_one(ctx, topic, reply.acks, record).await?)
            }
        };
        let label = match outcome {
            ReplyOutcome::Direct(delivery) => delivery.label(),
            ReplyOutcome::Stored(_) => "stored",
        };
        metrics::counter!("ringmq_replies_total", "outcome" => label).increment(1);
        Ok(outcome)
    }

    /// Up to `max` direct replies for this connection, waiting up to `wait` for the first.
    pub async fn receive_replies(
        &self,
        ctx: &RequestContext,
        max: usize,
        wait: Duration,
    ) -> BrokerResult<Vec<Record>> {
        let connection = need_connection(ctx)?;
        let config = &self.state.config;
        let wait = wait.min(Duration::from_millis(u64::from(config.fetch_wait_ms_max)));
        let max = max.clamp(1, config.reply_queue_max);
        let replies = &self.state.replies;
        replies.receive(self.state.id, connection, max, wait).await
    }

    /// Forgets a closed connection's reply state and deletes its temporary topics.
    pub async fn close_connection(&self, connection: u64) {
        let topics = self.state.replies.close(self.state.id, connection);
        let timeout = Duration::from_millis(self.state.config.shard_call_timeout_ms);
        for topic in topics {
            let name = topic.clone();
            let deleted = self
                .state
                .on_shard_until(Instant::now() + timeout, 0, move |zero| async move {
                    admin::delete_topic(&zero, name).await
                })
                .await;
            match deleted {
                Ok(()) => {}
                // A creation that timed out and never happened.
                Err(error) if error.kind == ErrorKind::UnknownTopic => {}
                Err(error) => {
                    tracing::warn!(topic, %error, "a closed connection's temporary reply topic stays until restart");
                }
            }
        }
    }

    /// A temporary reply topic may be read only by its connection.
    pub(super) fn check_exclusive(&self, ctx: &RequestContext, topic: &str) -> BrokerResult<()> {
        match replies::temporary_owner(topic) {
            Some(owner) if owner != ctx.connection || owner == 0 => Err(exclusive(topic)),
            _ => Ok(()),
        }
    }

    fn one_record(&self, records: &[u8], what: &str) -> BrokerResult<Record> {
        let mut decoded = rebatch::decode(records, &self.state, (1, what))?;
        decoded.pop().ok_or_else(|| {
            BrokerError::new(ErrorKind::InvalidRequest, format!("{what} is one record"))
        })
    }

    /// Produces one record to `topic`, partitioned by its key.
    async fn append_one(
        &self,
        ctx: &RequestContext,
        topic: String,
        acks: AckLevel,
        record: Record,
    ) -> BrokerResult<Produced> {
        let key = record.key.clone().unwrap_or_default();
        let batch_bytes_max = self
            .state
            .topics()
            .get(&topic)
            .map_or(self.state.config.topic_defaults.batch_bytes_max, |meta| {
                meta.config.batch_bytes_max
            });
        let produce = Produce {
            topic,
            partition: PartitionChoice::ByKey(key),
            acks,
            records: rebatch::encode([record], batch_bytes_max),
        };
        self.produce(ctx, produce).await
    }
}

fn exclusive(topic: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::ExclusiveDestination,
        format!("{topic:?} is another connection's temporary reply destination"),
    )
}
