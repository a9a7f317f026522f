//! The broker's one error type: what went wrong, in the broker's terms, with a message for
//! people. Every operation of the service returns it; each protocol adapter renders it with its
//! own exhaustive table (`server::errors` for the native protocol, `kafka::errors` for Kafka's),
//! so a new kind does not compile until both protocols say what it means to their clients.

use crate::shard::CallError;
use crate::storage::StorageError;

macro_rules! error_kinds {
    ($($(#[doc = $doc:literal])* $name:ident => $text:literal,)*) => {
        /// What went wrong. Stable in meaning; the adapters map each to a wire code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ErrorKind {
            $($(#[doc = $doc])* $name,)*
        }

        impl ErrorKind {
            /// Every kind, for tests that check each protocol maps them all.
            pub const ALL: &'static [ErrorKind] = &[$(ErrorKind::$name,)*];

            /// A snake_case name for logs and metric labels.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorKind::$name => $text,)*
                }
            }
        }
    };
}

error_kinds! {
    /// No topic of that name.
    UnknownTopic => "unknown_topic",
    /// The topic exists but has no such partition.
    UnknownPartition => "unknown_partition",
    /// A topic of that name exists already.
    TopicExists => "topic_exists",
    /// The name breaks the naming rule (1 to 200 of `[a-zA-Z0-9._-]`, not `.` or `..`).
    InvalidTopicName => "invalid_topic_name",
    /// A partition count outside 1 to `topic_partitions_max`.
    InvalidPartitions => "invalid_partitions",
    /// A setting that does not parse or is out of range.
    InvalidConfig => "invalid_config",
    /// A limit of the broker is reached (topics, open files); a new resource is refused.
    ResourceLimit => "resource_limit",
    /// The request breaks a rule of the operation (an ack level it does not know, ...).
    InvalidRequest => "invalid_request",
    /// A batch larger than the topic's `batch_bytes_max` (or inflating past the cap).
    RecordTooLarge => "record_too_large",
    /// A batch whose framing or CRC is wrong.
    CorruptBatch => "corrupt_batch",
    /// A well-framed batch that breaks a rule (attributes, counts, offset deltas).
    InvalidRecord => "invalid_record",
    /// An offset before the log's start or past its end.
    OffsetOutOfRange => "offset_out_of_range",
    /// The disk is full; nothing of the request was written.
    DiskFull => "disk_full",
    /// The partition's storage failed; it takes no more appends until restart.
    StorageFailed => "storage_failed",
    /// The partition's write queue stayed full; retry later.
    Throttled => "throttled",
    /// An idempotent producer's sequence skipped or went back.
    OutOfOrderSequence => "out_of_order_sequence",
    /// An idempotent producer's epoch is older than the partition's.
    ProducerFenced => "producer_fenced",
    /// The broker is shutting down.
    ShuttingDown => "shutting_down",
    /// A shard did not answer within the request's deadline.
    TimedOut => "timed_out",
    /// A group name that breaks the naming rule.
    InvalidGroupName => "invalid_group_name",
    /// No such member in the group (it left, expired, or never joined).
    UnknownMember => "unknown_member",
    /// The member's generation is not the group's.
    IllegalGeneration => "illegal_generation",
    /// The group is rebalancing; rejoin.
    RebalanceInProgress => "rebalance_in_progress",
    /// The member's protocol does not match the group's.
    InconsistentGroupProtocol => "inconsistent_group_protocol",
    /// The group has members, so it cannot be deleted.
    GroupNotEmpty => "group_not_empty",
    /// No such group.
    UnknownGroup => "unknown_group",
    /// The group holds as many members as it may.
    GroupFull => "group_full",
    /// A static member's `group.instance.id` now belongs to a newer member id.
    FencedInstance => "fenced_instance",
    /// The group's members consume the topic, so its offsets cannot be deleted.
    GroupSubscribed => "group_subscribed",
    /// No queue group of that name on the topic.
    UnknownQueueGroup => "unknown_queue_group",
    /// A queue group of that name exists on the topic already.
    QueueGroupExists => "queue_group_exists",
    /// The consumer settles a message it does not hold (never received, settled already, or
    /// now locked by another consumer).
    LockNotHeld => "lock_not_held",
    /// The consumer's lock on the message expired before its settle.
    LockExpired => "lock_expired",
    /// No such user (or no credential of that mechanism for it).
    UnknownUser => "unknown_user",
    /// A credential the broker does not accept (iterations out of range, an unknown
    /// mechanism, an empty salt or password).
    InvalidCredential => "invalid_credential",
    /// Wrong user name or password, or a malformed authentication exchange.
    AuthenticationFailed => "authentication_failed",
    /// The principal may not do that to the topic (ACLs).
    TopicAuthorizationFailed => "topic_authorization_failed",
    /// The principal may not do that to the group (ACLs).
    GroupAuthorizationFailed => "group_authorization_failed",
    /// The principal may not do that to the cluster (ACLs).
    ClusterAuthorizationFailed => "cluster_authorization_failed",
    /// A KIP-848 member's epoch is not its current one (it missed a change): it must rejoin.
    FencedMemberEpoch => "fenced_member_epoch",
    /// A commit or offset fetch of a KIP-848 member carries an epoch that is not its current one.
    StaleMemberEpoch => "stale_member_epoch",
    /// A KIP-848 member named a server-side assignor the broker does not have.
    UnsupportedAssignor => "unsupported_assignor",
    /// No exchange of that name.
    UnknownExchange => "unknown_exchange",
    /// An exchange of that name exists with another type or alternate exchange.
    ExchangeExists => "exchange_exists",
    /// A mandatory publish matched no binding (nor alternate exchange); nothing was stored.
    Unroutable => "unroutable",
    /// A reply-to that names no live reply destination this request may use (malformed, or
    /// another connection's), or a receive on a connection with no direct reply-to.
    UnknownReplyDestination => "unknown_reply_destination",
    /// A temporary reply destination read by a connection other than the one it belongs to.
    ExclusiveDestination => "exclusive_destination",
    /// The connection has `reply_pending_max` requests awaiting replies already.
    TooManyPendingRequests => "too_many_pending_requests",
}

impl ErrorKind {
    /// Whether the same request may succeed later unchanged.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorKind::DiskFull
                | ErrorKind::Throttled
                | ErrorKind::ShuttingDown
                | ErrorKind::TimedOut
        )
    }
}

/// An error of a broker operation: its kind, and what happened in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", kind.name())]
pub struct BrokerError {
    pub kind: ErrorKind,
    pub message: String,
}

impl BrokerError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> BrokerError {
        BrokerError {
            kind,
            message: message.into(),
        }
    }

    pub fn shutting_down() -> BrokerError {
        BrokerError::new(ErrorKind::ShuttingDown, "the broker is shutting down")
    }

    pub fn unknown_topic(topic: &str) -> BrokerError {
        BrokerError::new(ErrorKind::UnknownTopic, format!("unknown topic {topic:?}"))
    }
}

/// The result of a broker operation.
pub type BrokerResult<T> = Result<T, BrokerError>;

impl From<StorageError> for BrokerError {
    fn from(error: StorageError) -> BrokerError {
        let kind = match &error {
            StorageError::InvalidBatch(error) if error.is_too_large() => ErrorKind::RecordTooLarge,
            StorageError::InvalidBatch(error) if error.is_corruption() => ErrorKind::CorruptBatch,
            StorageError::InvalidBatch(_) => ErrorKind::InvalidRecord,
            StorageError::OffsetOutOfRange { .. } => ErrorKind::OffsetOutOfRange,
            StorageError::DiskFull => ErrorKind::DiskFull,
            StorageError::Io { .. } | StorageError::Corrupt { .. } | StorageError::Failed(_) => {
                ErrorKind::StorageFailed
            }
            StorageError::Throttled { .. } => ErrorKind::Throttled,
            StorageError::OutOfOrderSequence { .. } => ErrorKind::OutOfOrderSequence,
            StorageError::ProducerFenced { .. } => ErrorKind::ProducerFenced,
            StorageError::Closed => ErrorKind::ShuttingDown,
            StorageError::InvalidConfig(_) => ErrorKind::InvalidConfig,
        };
        BrokerError::new(kind, error.to_string())
    }
}

/// The error a request gets when the shard it needed did not answer.
impl From<CallError> for BrokerError {
    fn from(error: CallError) -> BrokerError {
        match error {
            CallError::Gone => BrokerError::shutting_down(),
            CallError::TimedOut(_) => BrokerError::new(ErrorKind::TimedOut, error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_snake_case() {
        let names: std::collections::HashSet<&str> =
            ErrorKind::ALL.iter().map(|kind| kind.name()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        assert!(
            names
                .iter()
                .all(|name| { name.chars().all(|c| c.is_ascii_lowercase() || c == '_') })
        );
    }
}
