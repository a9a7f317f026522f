//! RabbitMQ-style routing: exchanges that route one publish to the topics whose bindings match
//! it. One concept per module: `model` (exchanges and bindings as saved, and their checks),
//! `matcher` (which bindings of one exchange a message matches: a trie for topic exchanges),
//! `store` (the durable `exchanges.json` and the snapshot every shard reads), `admin` (changes,
//! on shard 0) and `publish` (routing a publish and appending its copies).

pub mod admin;
pub mod matcher;
pub mod model;
pub mod publish;
pub mod store;

use metrics::Counter;

use store::Exchanges;

/// One exchange's counters, labelled by its name.
pub(crate) struct ExchangeMetrics {
    pub published: Counter,
    pub routed: Counter,
    pub unroutable: Counter,
    pub returned: Counter,
}

impl ExchangeMetrics {
    pub fn of(exchange: &str) -> ExchangeMetrics {
        let counter =
            |name: &'static str| metrics::counter!(name, "exchange" => exchange.to_string());
        ExchangeMetrics {
            published: counter("ringmq_exchange_published_total"),
            routed: counter("ringmq_exchange_routed_copies_total"),
            unroutable: counter("ringmq_exchange_unroutable_total"),
            returned: counter("ringmq_exchange_returned_total"),
        }
    }
}

/// The exchanges and bindings held, against their limits.
pub(crate) fn publish_gauges(exchanges: &Exchanges) {
    metrics::gauge!("ringmq_exchanges").set(exchanges.by_name.len() as f64);
    for (name, exchange) in &exchanges.by_name {
        metrics::gauge!("ringmq_exchange_bindings", "exchange" => name.clone())
            .set(exchange.meta.bindings.len() as f64);
    }
}

/// The routing limits, as gauges: what the fill gauges above are bounded by.
pub(crate) fn publish_limits(config: &crate::config::BrokerConfig) {
    let limits = [
        ("exchanges_max", config.exchanges_max),
        ("exchange_bindings_max", config.exchange_bindings_max),
        ("routing_key_bytes_max", config.routing_key_bytes_max),
        ("routing_header_bytes_max", config.routing_header_bytes_max),
        ("binding_headers_max", config.binding_headers_max),
        ("publish_records_max", config.publish_records_max),
    ];
    crate::metrics::limit_gauges("ringmq_routing_limit", &limits);
}

/// Registers the help text of the routing metrics.
pub fn describe_metrics() {
    use metrics::{describe_counter, describe_gauge};
    describe_counter!(
        "ringmq_exchange_published_total",
        "Records published through the exchange."
    );
    describe_counter!(
        "ringmq_exchange_routed_copies_total",
        "Copies of records the exchange's publishes stored in topics (one per matched topic)."
    );
    describe_counter!(
        "ringmq_exchange_unroutable_total",
        "Records published through the exchange that no binding (nor alternate exchange) routed."
    );
    describe_counter!(
        "ringmq_exchange_returned_total",
        "Unroutable records of mandatory publishes, refused with the unroutable error."
    );
    describe_gauge!(
        "ringmq_exchanges",
        "Exchanges the broker holds (bounded by exchanges_max)."
    );
    describe_gauge!(
        "ringmq_exchange_bindings",
        "Bindings of the exchange (bounded by exchange_bindings_max)."
    );
    describe_gauge!(
        "ringmq_routing_limit",
        "The routing limits of the configuration, by setting."
    );
}
