//! Request/reply's broker side. A request is a record carrying the headers `reply-to` and
//! `correlation-id` (AMQP's names); its reply is one record sent to the `reply-to` destination
//! with the same correlation id. Three kinds of reply destination:
//!
//! - *direct* (`ringmq.reply-to.<shard>.<connection>.<nonce>`, RabbitMQ's
//!   `amq.rabbitmq.reply-to`): a reply goes to the requesting connection's inbox on its shard,
//!   in memory, never stored; only a reply whose correlation id is still pending (its request
//!   sent through this connection and not timed out) is kept, any other is dropped and counted.
//!   The random nonce makes the name unguessable, so only those given it can reply.
//! - *temporary* (`tmp.reply.<shard>.<connection>.<nonce>`): a one-partition topic the broker
//!   creates for one connection, readable only by it, deleted when it closes (and at start,
//!   should the broker have been killed while it was open).
//! - any other topic: the reply is appended to it, as a produce.
//!
//! Why the shard and connection are in the names: a reply may arrive on any shard, and goes to
//! the inbox's shard directly; a fetch of a temporary topic is checked against the asking
//! connection without a shared table. Everything kept is bounded by configuration (pending
//! requests, queued replies and their bytes per connection, temporary destinations per
//! connection) and shown by gauges; `inbox` holds the per-shard state.

pub mod inbox;

use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};
use crate::shard::ShardId;

/// The header naming where the reply goes.
pub const REPLY_TO_HEADER: &str = "reply-to";
/// The header a reply carries back unchanged.
pub const CORRELATION_ID_HEADER: &str = "correlation-id";
/// The longest correlation id and the longest reply-to, in bytes.
pub const CORRELATION_ID_BYTES_MAX: usize = 255;
pub const REPLY_TO_BYTES_MAX: usize = 255;

const DIRECT_PREFIX: &str = "ringmq.reply-to.";
/// Topics whose names start with this are temporary reply destinations: the broker's alone.
pub const TEMPORARY_PREFIX: &str = "tmp.reply.";

/// Where a reply goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplyTo {
    /// A connection's in-memory inbox.
    Direct {
        shard: ShardId,
        connection: u64,
        nonce: u64,
    },
    /// A connection's temporary topic (the name is the topic's).
    Temporary { connection: u64, topic: String },
    /// Any other topic.
    Topic(String),
}

/// The direct reply-to name of a connection's inbox.
pub fn direct_name(shard: ShardId, connection: u64, nonce: u64) -> String {
    format!("{DIRECT_PREFIX}{shard}.{connection}.{nonce:016x}")
}

/// The name of a connection's temporary reply topic.
pub fn temporary_name(shard: ShardId, connection: u64, nonce: u64) -> String {
    format!("{TEMPORARY_PREFIX}{shard}.{connection}.{nonce:016x}")
}

/// The shard, connection and nonce of `<shard>.<connection>.<16 hex digits>`.
fn parse_parts(rest: &str) -> Option<(ShardId, u64, u64)> {
    let mut parts = rest.split('.');
    let shard = parts.next()?.parse().ok()?;
    let connection = parts.next()?.parse().ok()?;
    let nonce = parts.next().filter(|nonce| nonce.len() == 16)?;
    let nonce = u64::from_str_radix(nonce, 16).ok()?;
    parts.next().is_none().then_some((shard, connection, nonce))
}

fn unknown_destination(reply_to: &str, why: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownReplyDestination,
        format!("reply-to {reply_to:?} {why}"),
    )
}

/// Reads a `reply-to` value: bounded, and, under the broker's own prefixes, well formed.
pub fn parse(reply_to: &str) -> BrokerResult<ReplyTo> {
    if reply_to.is_empty() || reply_to.len() > REPLY_TO_BYTES_MAX {
        return Err(unknown_destination(
            reply_to,
            &format!("must be 1 to {REPLY_TO_BYTES_MAX} bytes"),
        ));
    }
    if let Some(rest) = reply_to.strip_prefix(DIRECT_PREFIX) {
        let (shard, connection, nonce) = parse_parts(rest)
            .ok_or_else(|| unknown_destination(reply_to, "is not a direct reply-to name"))?;
        return Ok(ReplyTo::Direct {
            shard,
            connection,
            nonce,
        });
    }
    if let Some(rest) = reply_to.strip_prefix(TEMPORARY_PREFIX) {
        let (_, connection, _) = parse_parts(rest)
            .ok_or_else(|| unknown_destination(reply_to, "is not a temporary reply topic"))?;
        return Ok(ReplyTo::Temporary {
            connection,
            topic: reply_to.to_string(),
        });
    }
    Ok(ReplyTo::Topic(reply_to.to_string()))
}

/// A correlation id: 1 to `CORRELATION_ID_BYTES_MAX` bytes.
pub fn validate_correlation_id(correlation_id: &str) -> BrokerResult<()> {
    if correlation_id.is_empty() || correlation_id.len() > CORRELATION_ID_BYTES_MAX {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("a correlation id is 1 to {CORRELATION_ID_BYTES_MAX} bytes"),
        ));
    }
    Ok(())
}

/// The connection a temporary reply topic belongs to, if `topic` is one.
pub fn temporary_owner(topic: &str) -> Option<u64> {
    let rest = topic.strip_prefix(TEMPORARY_PREFIX)?;
    parse_parts(rest).map(|(_, connection, _)| connection)
}

/// A name only the broker may create: users' topics may not start with `tmp.reply.` (the
/// temporary reply topics) nor `ringmq.reply-to.` (direct reply-to names, never stored: a
/// responder that produced a reply to one through Kafka must not auto-create it).
pub fn check_user_topic_name(name: &str) -> BrokerResult<()> {
    for (prefix, what) in [
        (TEMPORARY_PREFIX, "temporary reply destinations"),
        (DIRECT_PREFIX, "direct reply-to names, never stored"),
    ] {
        if name.starts_with(prefix) {
            return Err(BrokerError::new(
                ErrorKind::InvalidTopicName,
                format!("topic names starting with {prefix:?} are the broker's {what}"),
            ));
        }
    }
    Ok(())
}

/// 64 random bits (the names' nonces).
pub(crate) fn nonce() -> u64 {
    let mut bytes = [0u8; 8];
    // SystemRandom fails only when the OS has no randomness at all; a zero nonce is then still
    // a valid, if guessable, name.
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes)
}

/// Temporary reply topics left by a broker that was killed while their connections were open
/// (the connections are gone): removed from the topic list at start, before the orphaned
/// partition directories are deleted. Returns how many.
pub fn drop_temporary_topics(topics: &mut crate::broker::topics::Topics) -> usize {
    let before = topics.by_name.len();
    topics
        .by_name
        .retain(|name, _| !name.starts_with(TEMPORARY_PREFIX));
    before - topics.by_name.len()
}

/// Registers the help text of the request/reply metrics.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "ringmq_reply_requests_total",
        "Requests sent with a reply-to and correlation id."
    );
    describe_counter!(
        "ringmq_replies_total",
        "Replies by outcome: delivered (to a direct inbox), stored (in a topic), late (the correlation id was not pending: timed out, answered already or never asked), no_requester (the connection is gone), full (its inbox was full)."
    );
    describe_gauge!(
        "ringmq_reply_pending",
        "Requests awaiting a direct reply, on the shard (each connection bounded by reply_pending_max)."
    );
    describe_gauge!(
        "ringmq_reply_queued",
        "Direct replies waiting to be received, on the shard (each connection bounded by reply_queue_max)."
    );
    describe_gauge!(
        "ringmq_reply_queued_bytes",
        "Bytes of direct replies waiting to be received, on the shard (each connection bounded by reply_queue_bytes_max)."
    );
    describe_gauge!(
        "ringmq_reply_temporary_destinations",
        "Temporary reply topics of the shard's connections (each bounded by reply_temporary_max)."
    );
    describe_gauge!(
        "ringmq_reply_limit",
        "The request/reply limits of the configuration, by setting."
    );
}

/// The request/reply limits, as gauges: what the fill gauges above are bounded by.
pub fn publish_limits(config: &crate::config::BrokerConfig) {
    let limits = [
        ("reply_pending_max", config.reply_pending_max),
        ("reply_queue_max", config.reply_queue_max),
        ("reply_queue_bytes_max", config.reply_queue_bytes_max),
        ("reply_temporary_max", config.reply_temporary_max),
    ];
    crate::metrics::limit_gauges("ringmq_reply_limit", &limits);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_hostile_ones_are_refused() {
        let direct = direct_name(1, 42, 0xdead_beef);
        assert_eq!(
            parse(&direct).unwrap(),
            ReplyTo::Direct {
                shard: 1,
                connection: 42,
                nonce: 0xdead_beef
            }
        );
        let temporary = temporary_name(0, 7, 3);
        assert_eq!(temporary_owner(&temporary), Some(7));
        assert!(matches!(
            parse(&temporary).unwrap(),
            ReplyTo::Temporary { connection: 7, .. }
        ));
        assert_eq!(parse("replies").unwrap(), ReplyTo::Topic("replies".into()));
        for hostile in [
            "",
            "ringmq.reply-to.",
            "ringmq.reply-to.1.2",
            "ringmq.reply-to.1.2.3",
            "ringmq.reply-to.99999999999999999999999.2.0000000000000000",
            "ringmq.reply-to.1.2.000000000000000g",
            "ringmq.reply-to.1.2.0000000000000000.4",
            "tmp.reply.x",
        ] {
            assert!(parse(hostile).is_err(), "{hostile:?}");
        }
        assert!(parse(&"x".repeat(REPLY_TO_BYTES_MAX + 1)).is_err());
        assert!(validate_correlation_id("").is_err());
        assert!(validate_correlation_id(&"c".repeat(CORRELATION_ID_BYTES_MAX + 1)).is_err());
        assert!(check_user_topic_name("tmp.reply.0.1.0000000000000000").is_err());
        assert!(check_user_topic_name("ringmq.reply-to.0.1.0000000000000000").is_err());
        assert!(check_user_topic_name("orders").is_ok());
    }
}
