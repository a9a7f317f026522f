//! The stable error codes of the native protocol. A code never changes meaning once released;
//! every error response also carries a human-readable message.

macro_rules! error_codes {
    ($($name:ident = $code:literal, $text:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum ErrorCode {
            $($name = $code,)*
        }

        impl ErrorCode {
            pub fn from_u16(code: u16) -> Option<ErrorCode> {
                match code {
                    $($code => Some(ErrorCode::$name),)*
                    _ => None,
                }
            }

            /// The snake_case name clients and the CLI print.
            pub fn name(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => $text,)*
                }
            }
        }
    };
}

error_codes! {
    None = 0, "none";
    UnknownTopic = 1, "unknown_topic";
    BadPartition = 2, "bad_partition";
    RecordTooLarge = 3, "record_too_large";
    CorruptBatch = 4, "corrupt_batch";
    DiskFull = 5, "disk_full";
    Throttled = 6, "throttled";
    UnsupportedVersion = 7, "unsupported_version";
    MalformedRequest = 8, "malformed_request";
    OffsetOutOfRange = 9, "offset_out_of_range";
    TopicExists = 10, "topic_exists";
    InvalidConfig = 11, "invalid_config";
    FrameTooLarge = 12, "frame_too_large";
    StorageFailed = 13, "storage_failed";
    UnknownApi = 14, "unknown_api";
    ShuttingDown = 15, "shutting_down";
    InvalidTopicName = 16, "invalid_topic_name";
    Internal = 17, "internal";
    UnknownMember = 18, "unknown_member";
    IllegalGeneration = 19, "illegal_generation";
    GroupNotEmpty = 20, "group_not_empty";
    UnknownGroup = 21, "unknown_group";
    OutOfOrderSequence = 22, "out_of_order_sequence";
    ProducerFenced = 23, "producer_fenced";
    RebalanceInProgress = 24, "rebalance_in_progress";
    InconsistentGroupProtocol = 25, "inconsistent_group_protocol";
    TimedOut = 26, "timed_out";
    InvalidRecord = 27, "invalid_record";
    GroupFull = 28, "group_full";
    UnknownUser = 40, "unknown_user";
    InvalidCredential = 41, "invalid_credential";
    AuthenticationFailed = 42, "authentication_failed";
    NotAuthorized = 43, "not_authorized";
    // Routing's codes start at 60, as its API keys do, clear of codes being added meanwhile.
    UnknownExchange = 60, "unknown_exchange";
    ExchangeExists = 61, "exchange_exists";
    Unroutable = 62, "unroutable";
    // Request/reply's codes follow routing's.
    UnknownReplyDestination = 63, "unknown_reply_destination";
    ExclusiveDestination = 64, "exclusive_destination";
    TooManyPendingRequests = 65, "too_many_pending_requests";
    // Queues' codes are 50-59 (60-69 are routing's).
    UnknownQueueGroup = 50, "unknown_queue_group";
    QueueGroupExists = 51, "queue_group_exists";
    LockNotHeld = 52, "lock_not_held";
    LockExpired = 53, "lock_expired";
}

impl ErrorCode {
    /// Whether a client may retry the same request unchanged and expect it to succeed later.
    pub fn is_retriable(self) -> bool {
        matches!(
            self,
            ErrorCode::DiskFull
                | ErrorCode::Throttled
                | ErrorCode::ShuttingDown
                | ErrorCode::TimedOut
        )
    }
}

/// An error as the protocol carries it: a code and a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.name())]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}
