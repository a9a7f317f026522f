//! SQS's errors: the code each protocol names (the JSON protocol's `__type` shape, and the
//! query protocol's older code, also sent to JSON clients in `x-amzn-query-error`), the HTTP
//! status, and whose fault it is. `from_broker` is the SQS door's one table from the service's
//! `ErrorKind`, an exhaustive match like the other adapters' tables.

use crate::broker::{BrokerError, ErrorKind};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsError {
    /// The JSON protocol's error shape (`com.amazonaws.sqs#<this>`).
    pub code: &'static str,
    /// The query protocol's code.
    pub query_code: &'static str,
    pub status: u16,
    /// Sender (the client's fault) or Receiver.
    pub sender: bool,
    pub message: String,
}

macro_rules! errors {
    ($($name:ident => ($code:literal, $query:literal, $status:literal, $sender:literal),)*) => {
        impl SqsError {
            $(pub fn $name(message: impl Into<String>) -> SqsError {
                SqsError {
                    code: $code,
                    query_code: $query,
                    status: $status,
                    sender: $sender,
                    message: message.into(),
                }
            })*
        }
    };
}

errors! {
    queue_does_not_exist => ("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", 400, true),
    queue_name_exists => ("QueueNameExists", "QueueAlreadyExists", 400, true),
    receipt_handle_is_invalid => ("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid", 400, true),
    invalid_parameter_value => ("InvalidParameterValue", "InvalidParameterValue", 400, true),
    missing_parameter => ("MissingParameter", "MissingParameter", 400, true),
    invalid_attribute_name => ("InvalidAttributeName", "InvalidAttributeName", 400, true),
    invalid_attribute_value => ("InvalidAttributeValue", "InvalidAttributeValue", 400, true),
    invalid_message_contents => ("InvalidMessageContents", "InvalidMessageContents", 400, true),
    batch_entry_ids_not_distinct => ("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", 400, true),
    empty_batch_request => ("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", 400, true),
    too_many_entries => ("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest", 400, true),
    invalid_batch_entry_id => ("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId", 400, true),
    batch_request_too_long => ("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong", 400, true),
    over_limit => ("OverLimit", "OverLimit", 403, true),
    unsupported_operation => ("UnsupportedOperation", "AWS.SimpleQueueService.UnsupportedOperation", 400, true),
    invalid_action => ("InvalidAction", "InvalidAction", 400, true),
    malformed => ("SerializationException", "MalformedQueryString", 400, true),
    resource_not_found => ("ResourceNotFoundException", "ResourceNotFoundException", 404, true),
    access_denied => ("AccessDenied", "AccessDenied", 403, true),
    signature_does_not_match => ("SignatureDoesNotMatch", "SignatureDoesNotMatch", 403, true),
    incomplete_signature => ("IncompleteSignature", "IncompleteSignature", 400, true),
    invalid_client_token_id => ("InvalidClientTokenId", "InvalidClientTokenId", 403, true),
    missing_authentication_token => ("MissingAuthenticationToken", "MissingAuthenticationToken", 403, true),
    request_expired => ("RequestExpired", "RequestExpired", 400, true),
    throttled => ("RequestThrottled", "RequestThrottled", 400, true),
    service_unavailable => ("ServiceUnavailable", "ServiceUnavailable", 503, false),
    internal_error => ("InternalError", "InternalError", 500, false),
}

/// The service's error as SQS names it.
pub fn from_broker(error: BrokerError) -> SqsError {
    let message = error.message;
    match error.kind {
        ErrorKind::UnknownTopic | ErrorKind::UnknownQueueGroup => {
            SqsError::queue_does_not_exist(message)
        }
        ErrorKind::TopicExists | ErrorKind::QueueGroupExists => {
            SqsError::queue_name_exists(message)
        }
        ErrorKind::LockNotHeld | ErrorKind::LockExpired => {
            SqsError::receipt_handle_is_invalid(message)
        }
        ErrorKind::InvalidTopicName
        | ErrorKind::InvalidGroupName
        | ErrorKind::InvalidPartitions
        | ErrorKind::UnknownPartition
        | ErrorKind::InvalidRequest
        | ErrorKind::InvalidRecord
        | ErrorKind::CorruptBatch
        | ErrorKind::OffsetOutOfRange
        | ErrorKind::UnknownExchange
        | ErrorKind::ExchangeExists
        | ErrorKind::Unroutable
        | ErrorKind::UnknownReplyDestination
        | ErrorKind::ExclusiveDestination => SqsError::invalid_parameter_value(message),
        ErrorKind::InvalidConfig => SqsError::invalid_attribute_value(message),
        ErrorKind::RecordTooLarge => SqsError::invalid_parameter_value(message),
        ErrorKind::ResourceLimit | ErrorKind::TooManyPendingRequests | ErrorKind::GroupFull => {
            SqsError::over_limit(message)
        }
        ErrorKind::Throttled => SqsError::throttled(message),
        ErrorKind::TopicAuthorizationFailed
        | ErrorKind::GroupAuthorizationFailed
        | ErrorKind::ClusterAuthorizationFailed
        | ErrorKind::AuthenticationFailed
        | ErrorKind::UnknownUser
        | ErrorKind::InvalidCredential => SqsError::access_denied(message),
        ErrorKind::DiskFull
        | ErrorKind::ShuttingDown
        | ErrorKind::TimedOut
        | ErrorKind::RebalanceInProgress => SqsError::service_unavailable(message),
        ErrorKind::StorageFailed
        | ErrorKind::OutOfOrderSequence
        | ErrorKind::ProducerFenced
        | ErrorKind::UnknownMember
        | ErrorKind::IllegalGeneration
        | ErrorKind::InconsistentGroupProtocol
        | ErrorKind::GroupNotEmpty
        | ErrorKind::UnknownGroup
        | ErrorKind::FencedInstance
        | ErrorKind::GroupSubscribed
        | ErrorKind::FencedMemberEpoch
        | ErrorKind::StaleMemberEpoch
        | ErrorKind::UnsupportedAssignor => SqsError::internal_error(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_an_sqs_error_and_retriable_ones_are_the_servers() {
        for kind in ErrorKind::ALL {
            let error = from_broker(BrokerError::new(*kind, "x"));
            assert!(!error.code.is_empty() && !error.query_code.is_empty());
            assert!((400..600).contains(&error.status));
            if matches!(
                kind,
                ErrorKind::ShuttingDown | ErrorKind::TimedOut | ErrorKind::DiskFull
            ) {
                assert_eq!(error.status, 503, "{kind:?}");
            }
        }
        assert_eq!(
            from_broker(BrokerError::new(ErrorKind::UnknownTopic, "x")).code,
            "QueueDoesNotExist"
        );
    }
}
