//! What an exchange is: its name, its type, where its unroutable messages go, and its bindings.
//! Plain data, saved as JSON in `exchanges.json` and compared by value: two bindings with the
//! same destination, key and headers are the same binding (binding twice changes nothing, as in
//! RabbitMQ).

use serde::{Deserialize, Serialize};

use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};

/// Exchange names follow the topic alphabet, so a name is safe in a metric label and a path.
pub const EXCHANGE_NAME_BYTES_MAX: usize = 200;

/// How an exchange matches a message to its bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExchangeKind {
    /// The routing key equals the binding key.
    Direct,
    /// Dot-separated words; `*` is exactly one word, `#` zero or more (RabbitMQ's rules).
    Topic,
    /// Every binding, whatever the key.
    Fanout,
    /// The record's headers against the binding's, all or any of them.
    Headers,
}

impl ExchangeKind {
    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Headers => "headers",
        }
    }

    pub fn parse(name: &str) -> Option<ExchangeKind> {
        [
            ExchangeKind::Direct,
            ExchangeKind::Topic,
            ExchangeKind::Fanout,
            ExchangeKind::Headers,
        ]
        .into_iter()
        .find(|kind| kind.name() == name)
    }
}

/// How a headers binding combines its headers (RabbitMQ's `x-match`). The plain forms ignore
/// headers whose names start with `x-` on both sides; the `-with-x` forms compare them too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderMatch {
    #[default]
    All,
    Any,
    AllWithX,
    AnyWithX,
}

impl HeaderMatch {
    pub fn name(self) -> &'static str {
        match self {
            HeaderMatch::All => "all",
            HeaderMatch::Any => "any",
            HeaderMatch::AllWithX => "all-with-x",
            HeaderMatch::AnyWithX => "any-with-x",
        }
    }

    pub fn parse(name: &str) -> Option<HeaderMatch> {
        [
            HeaderMatch::All,
            HeaderMatch::Any,
            HeaderMatch::AllWithX,
            HeaderMatch::AnyWithX,
        ]
        .into_iter()
        .find(|mode| mode.name() == name)
    }
}

/// Where a binding delivers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Destination {
    Topic(String),
    Exchange(String),
}

impl Destination {
    pub fn name(&self) -> &str {
        match self {
            Destination::Topic(name) | Destination::Exchange(name) => name,
        }
    }
}

/// One binding of an exchange.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Binding {
    pub destination: Destination,
    /// The binding key or pattern (unused by fanout and headers exchanges).
    pub key: String,
    /// For a headers exchange: header name and the value it must have (None: only present).
    pub headers: Vec<(String, Option<String>)>,
    pub header_match: HeaderMatch,
}

/// One exchange as it is saved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeMeta {
    pub name: String,
    pub kind: ExchangeKind,
    /// Receives what this exchange cannot route (RabbitMQ's `alternate-exchange`); it need not
    /// exist, and while it does not, such messages are unroutable.
    pub alternate_exchange: Option<String>,
    pub bindings: Vec<Binding>,
    pub created_ms: i64,
}

/// The limits a change is checked against: the broker's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub exchanges_max: usize,
    pub bindings_per_exchange_max: usize,
    /// Routing keys and binding keys (patterns), in bytes.
    pub routing_key_bytes_max: usize,
    /// Header names and values of a headers binding, in bytes each.
    pub header_bytes_max: usize,
    /// Headers one binding may name.
    pub binding_headers_max: usize,
}

/// Exchange names: 1 to 200 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_name(name: &str) -> BrokerResult<()> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    if name.is_empty()
        || name.len() > EXCHANGE_NAME_BYTES_MAX
        || !name.bytes().all(allowed)
        || name == "."
        || name == ".."
    {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!(
                "exchange name {name:?} must be 1 to {EXCHANGE_NAME_BYTES_MAX} of [a-zA-Z0-9._-]"
            ),
        ));
    }
    Ok(())
}

/// Checks a routing key's length.
pub fn validate_routing_key(key: &str, limits: &Limits) -> BrokerResult<()> {
    if key.len() > limits.routing_key_bytes_max {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!(
                "a routing key of {} bytes is over routing_key_bytes_max = {}",
                key.len(),
                limits.routing_key_bytes_max
            ),
        ));
    }
    Ok(())
}

/// Checks a binding's own fields (not whether its destination exists).
pub fn validate_binding(
    kind: ExchangeKind,
    binding: &Binding,
    limits: &Limits,
) -> BrokerResult<()> {
    validate_routing_key(&binding.key, limits)?;
    let invalid = |why: String| BrokerError::new(ErrorKind::InvalidRequest, why);
    if binding.headers.len() > limits.binding_headers_max {
        return Err(invalid(format!(
            "a binding names at most binding_headers_max = {} headers, not {}",
            limits.binding_headers_max,
            binding.headers.len()
        )));
    }
    let too_long = binding.headers.iter().any(|(name, value)| {
        name.len() > limits.header_bytes_max
            || value
                .as_ref()
                .is_some_and(|value| value.len() > limits.header_bytes_max)
    });
    if too_long {
        return Err(invalid(format!(
            "binding header names and values are at most routing_header_bytes_max = {} bytes",
            limits.header_bytes_max
        )));
    }
    if kind != ExchangeKind::Headers && !binding.headers.is_empty() {
        return Err(invalid(format!(
            "a {} exchange binds by key; headers are for headers exchanges",
            kind.name()
        )));
    }
    Ok(())
}
