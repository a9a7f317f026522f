//! Quotas through the service: the adapters report each produce's and fetch's bytes, and hold
//! the answer back for as long as this says (`broker::quotas`).

use std::time::{Duration, Instant};

use super::{Principal, RequestContext, Service};
use crate::broker::quotas::QuotaKind;

impl Service {
    /// Charges `bytes` of `kind` to the request's principal (or client id); how long to hold
    /// its answer back.
    pub fn charge_quota(&self, ctx: &RequestContext, kind: QuotaKind, bytes: u64) -> Duration {
        let config = &self.state.config;
        let rate = match kind {
            QuotaKind::ProduceBytes => config.quota_produce_bytes_per_second,
            QuotaKind::FetchBytes => config.quota_fetch_bytes_per_second,
        };
        if rate == 0 {
            return Duration::ZERO;
        }
        let entity = match &ctx.principal {
            Principal::User(user) => format!("User:{user}"),
            Principal::Anonymous => format!("client-id:{}", ctx.client_id),
        };
        let throttle =
            self.state
                .quotas
                .borrow_mut()
                .charge(&entity, kind, rate, bytes, Instant::now());
        if !throttle.is_zero() {
            metrics::counter!("ringmq_quota_throttle_milliseconds_total", "kind" => kind.name())
                .increment(u64::try_from(throttle.as_millis()).unwrap_or(u64::MAX));
            metrics::counter!("ringmq_quota_throttled_requests_total", "kind" => kind.name())
                .increment(1);
        }
        throttle
    }
}
