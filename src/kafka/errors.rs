//! Kafka's error code for each broker error. One exhaustive match: a new `ErrorKind` does not
//! compile until it has a Kafka code. The codes are Kafka's own (its `Errors.java`), chosen so
//! that a Kafka client reacts as it would to a Kafka broker: retries what Kafka retries.

use crate::broker::{BrokerError, ErrorKind};

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const INVALID_REQUEST: i16 = 42;
pub const POLICY_VIOLATION: i16 = 44;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const INVALID_RECORD: i16 = 87;
/// KIP-932's code for acknowledging a record the share consumer does not hold.
pub const INVALID_RECORD_STATE: i16 = 121;
pub const SHARE_SESSION_NOT_FOUND: i16 = 122;
pub const INVALID_SHARE_SESSION_EPOCH: i16 = 123;
pub const SHARE_SESSION_LIMIT_REACHED: i16 = 133;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;

/// Kafka's code for a broker error kind.
pub fn kafka_code(kind: ErrorKind) -> i16 {
    match kind {
        ErrorKind::UnknownTopic | ErrorKind::UnknownPartition => UNKNOWN_TOPIC_OR_PARTITION,
        ErrorKind::TopicExists => TOPIC_ALREADY_EXISTS,
        ErrorKind::InvalidTopicName => INVALID_TOPIC_EXCEPTION,
        ErrorKind::InvalidPartitions => INVALID_PARTITIONS,
        ErrorKind::InvalidConfig => INVALID_CONFIG,
        ErrorKind::ResourceLimit => POLICY_VIOLATION,
        ErrorKind::InvalidRequest => INVALID_REQUEST,
        ErrorKind::RecordTooLarge => MESSAGE_TOO_LARGE,
        ErrorKind::CorruptBatch => CORRUPT_MESSAGE,
        ErrorKind::InvalidRecord => INVALID_RECORD,
        ErrorKind::OffsetOutOfRange => OFFSET_OUT_OF_RANGE,
        ErrorKind::DiskFull | ErrorKind::StorageFailed => KAFKA_STORAGE_ERROR,
        // Retriable for Kafka clients, as they are for ours.
        ErrorKind::Throttled | ErrorKind::ShuttingDown | ErrorKind::TimedOut => REQUEST_TIMED_OUT,
        ErrorKind::OutOfOrderSequence => OUT_OF_ORDER_SEQUENCE_NUMBER,
        ErrorKind::ProducerFenced => INVALID_PRODUCER_EPOCH,
        ErrorKind::InvalidGroupName => INVALID_GROUP_ID,
        ErrorKind::UnknownMember => UNKNOWN_MEMBER_ID,
        ErrorKind::IllegalGeneration => ILLEGAL_GENERATION,
        ErrorKind::RebalanceInProgress => REBALANCE_IN_PROGRESS,
        ErrorKind::InconsistentGroupProtocol => INCONSISTENT_GROUP_PROTOCOL,
        ErrorKind::GroupNotEmpty => NON_EMPTY_GROUP,
        ErrorKind::UnknownGroup => GROUP_ID_NOT_FOUND,
        ErrorKind::GroupFull => GROUP_MAX_SIZE_REACHED,
        ErrorKind::FencedInstance => FENCED_INSTANCE_ID,
        ErrorKind::GroupSubscribed => GROUP_SUBSCRIBED_TO_TOPIC,
        // Queue groups are Kafka's share groups: what KIP-932 answers for each.
        ErrorKind::UnknownQueueGroup => GROUP_ID_NOT_FOUND,
        // Kafka creates groups implicitly and has no "exists" code for them.
        ErrorKind::QueueGroupExists => INVALID_REQUEST,
        ErrorKind::LockNotHeld | ErrorKind::LockExpired => INVALID_RECORD_STATE,
        ErrorKind::UnknownUser => RESOURCE_NOT_FOUND,
        ErrorKind::InvalidCredential => UNACCEPTABLE_CREDENTIAL,
        ErrorKind::AuthenticationFailed => SASL_AUTHENTICATION_FAILED,
        ErrorKind::TopicAuthorizationFailed => TOPIC_AUTHORIZATION_FAILED,
        ErrorKind::GroupAuthorizationFailed => GROUP_AUTHORIZATION_FAILED,
        ErrorKind::ClusterAuthorizationFailed => CLUSTER_AUTHORIZATION_FAILED,
        ErrorKind::FencedMemberEpoch => FENCED_MEMBER_EPOCH,
        ErrorKind::StaleMemberEpoch => STALE_MEMBER_EPOCH,
        ErrorKind::UnsupportedAssignor => UNSUPPORTED_ASSIGNOR,
        // Kafka has no exchanges and its adapter never routes; should one of these reach a
        // Kafka client, "the request is not valid here" is what it means.
        ErrorKind::UnknownExchange
        | ErrorKind::ExchangeExists
        | ErrorKind::Unroutable
        | ErrorKind::UnknownReplyDestination
        | ErrorKind::TooManyPendingRequests => INVALID_REQUEST,
        // A temporary reply topic is its native connection's alone: to a Kafka client, reading
        // it is not allowed.
        ErrorKind::ExclusiveDestination => TOPIC_AUTHORIZATION_FAILED,
    }
}

/// Kafka's code for a broker error, counted in `ringmq_request_errors_total`.
pub fn code_of(error: &BrokerError) -> i16 {
    crate::metrics::count_error("kafka", error.kind.name());
    kafka_code(error.kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Codes Kafka's clients retry (`RetriableException` subclasses in Kafka's `Errors.java`).
    const KAFKA_RETRIABLE: &[i16] = &[
        CORRUPT_MESSAGE,
        UNKNOWN_TOPIC_OR_PARTITION,
        REQUEST_TIMED_OUT,
        KAFKA_STORAGE_ERROR,
    ];

    #[test]
    fn every_kind_has_a_kafka_code_and_retriable_ones_stay_retriable() {
        for kind in ErrorKind::ALL {
            let code = kafka_code(*kind);
            assert!(code > 0, "{kind:?} maps to {code}");
            if kind.is_retriable() {
                assert!(KAFKA_RETRIABLE.contains(&code), "{kind:?} maps to {code}");
            }
        }
    }
}
