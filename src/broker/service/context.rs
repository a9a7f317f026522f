//! Who asks and until when: what every operation of the service is given besides its arguments.
//! Authentication, ACLs, quotas and transactions will read it; until authentication exists every
//! principal is anonymous.

use std::time::{Duration, Instant};

/// The authenticated identity behind a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No authentication took place (a listener that does not ask for it).
    #[default]
    Anonymous,
    /// A user who authenticated (SASL PLAIN or SCRAM).
    User(String),
}

/// One request's context, built by the protocol adapter that decoded it.
#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The client's own name for itself (Kafka's `client.id`), empty when it gave none.
    pub client_id: String,
    pub principal: Principal,
    /// When the request stops being worth answering: a shard that has not answered by then is
    /// given up on with `TimedOut`.
    pub deadline: Instant,
    /// The producer's transactional id; None until transactions are served.
    pub transactional_id: Option<String>,
}

impl RequestContext {
    /// An anonymous request that may take `timeout` from now.
    pub fn new(client_id: impl Into<String>, timeout: Duration) -> RequestContext {
        RequestContext {
            client_id: client_id.into(),
            principal: Principal::Anonymous,
            deadline: Instant::now() + timeout,
            transactional_id: None,
        }
    }

    /// The time left until the deadline (zero once it has passed).
    pub fn time_left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}
