//! The native protocol's code for each broker error. One exhaustive match: a new `ErrorKind`
//! does not compile until it has a native code. Codes never change meaning once released.

use crate::broker::{BrokerError, ErrorKind};
use crate::protocol::{ErrorCode, ProtocolError};

/// The native code for a broker error kind.
pub fn native_code(kind: ErrorKind) -> ErrorCode {
    match kind {
        ErrorKind::UnknownTopic => ErrorCode::UnknownTopic,
        ErrorKind::UnknownPartition => ErrorCode::BadPartition,
        ErrorKind::TopicExists => ErrorCode::TopicExists,
        ErrorKind::InvalidTopicName => ErrorCode::InvalidTopicName,
        // The native protocol names no partition-count or limit errors of their own: the
        // message says which setting or limit it was.
        ErrorKind::InvalidPartitions | ErrorKind::InvalidConfig | ErrorKind::ResourceLimit => {
            ErrorCode::InvalidConfig
        }
        ErrorKind::InvalidGroupName => ErrorCode::InvalidConfig,
        ErrorKind::UnknownUser => ErrorCode::UnknownUser,
        ErrorKind::InvalidCredential => ErrorCode::InvalidCredential,
        ErrorKind::AuthenticationFailed => ErrorCode::AuthenticationFailed,
        ErrorKind::TopicAuthorizationFailed
        | ErrorKind::GroupAuthorizationFailed
        | ErrorKind::ClusterAuthorizationFailed => ErrorCode::NotAuthorized,
        ErrorKind::InvalidRequest => ErrorCode::MalformedRequest,
        ErrorKind::RecordTooLarge => ErrorCode::RecordTooLarge,
        ErrorKind::CorruptBatch => ErrorCode::CorruptBatch,
        ErrorKind::InvalidRecord => ErrorCode::InvalidRecord,
        ErrorKind::OffsetOutOfRange => ErrorCode::OffsetOutOfRange,
        ErrorKind::DiskFull => ErrorCode::DiskFull,
        ErrorKind::StorageFailed => ErrorCode::StorageFailed,
        ErrorKind::Throttled => ErrorCode::Throttled,
        ErrorKind::OutOfOrderSequence => ErrorCode::OutOfOrderSequence,
        ErrorKind::ProducerFenced => ErrorCode::ProducerFenced,
        ErrorKind::ShuttingDown => ErrorCode::ShuttingDown,
        ErrorKind::TimedOut => ErrorCode::TimedOut,
        // The native protocol has no static members; a fenced one is no longer a member.
        ErrorKind::UnknownMember | ErrorKind::FencedInstance => ErrorCode::UnknownMember,
        // A KIP-848 member's epoch is its generation: an old one is an illegal generation.
        ErrorKind::IllegalGeneration
        | ErrorKind::FencedMemberEpoch
        | ErrorKind::StaleMemberEpoch => ErrorCode::IllegalGeneration,
        ErrorKind::UnsupportedAssignor => ErrorCode::InvalidConfig,
        ErrorKind::RebalanceInProgress => ErrorCode::RebalanceInProgress,
        ErrorKind::InconsistentGroupProtocol => ErrorCode::InconsistentGroupProtocol,
        // "The operation needs a group without members" is what the native protocol says.
        ErrorKind::GroupNotEmpty | ErrorKind::GroupSubscribed => ErrorCode::GroupNotEmpty,
        ErrorKind::UnknownGroup => ErrorCode::UnknownGroup,
        ErrorKind::GroupFull => ErrorCode::GroupFull,
        ErrorKind::UnknownExchange => ErrorCode::UnknownExchange,
        ErrorKind::ExchangeExists => ErrorCode::ExchangeExists,
        ErrorKind::Unroutable => ErrorCode::Unroutable,
        ErrorKind::UnknownReplyDestination => ErrorCode::UnknownReplyDestination,
        ErrorKind::ExclusiveDestination => ErrorCode::ExclusiveDestination,
        ErrorKind::TooManyPendingRequests => ErrorCode::TooManyPendingRequests,
        ErrorKind::UnknownQueueGroup => ErrorCode::UnknownQueueGroup,
        ErrorKind::QueueGroupExists => ErrorCode::QueueGroupExists,
        ErrorKind::LockNotHeld => ErrorCode::LockNotHeld,
        ErrorKind::LockExpired => ErrorCode::LockExpired,
    }
}

/// A broker error as the native protocol carries it.
pub fn to_native(error: BrokerError) -> ProtocolError {
    ProtocolError::new(native_code(error.kind), error.message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_code_of_its_own_meaning() {
        for kind in ErrorKind::ALL {
            let code = native_code(*kind);
            assert_ne!(code, ErrorCode::None, "{kind:?}");
            assert_ne!(code, ErrorCode::Internal, "{kind:?}");
            assert_eq!(
                code.is_retriable(),
                kind.is_retriable(),
                "{kind:?} and {code:?} disagree on retrying"
            );
        }
    }
}
