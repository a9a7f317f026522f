//! Quotas through the service: the adapters report each request, and each produce's and
//! fetch's bytes, and hold the answer back for as long as this says (`broker::quotas`). A
//! principal's (or client id's) own rates in `quota_overrides` replace the defaults.

use std::time::{Duration, Instant};

use super::{Principal, RequestContext, Service};
use crate::broker::quotas::QuotaKind;

impl Service {
    /// Charges `bytes` of `kind` to the request's principal (or client id); how long to hold
    /// its answer back.
    pub fn charge_quota(&self, ctx: &RequestContext, kind: QuotaKind, bytes: u64) -> Duration {
        let config = &self.state.config;
        let default = match kind {
            QuotaKind::ProduceBytes => config.quota_produce_bytes_per_second,
            QuotaKind::FetchBytes => config.quota_fetch_bytes_per_second,
            QuotaKind::Requests => config.quota_requests_per_second,
        };
        // The common case, no quotas at all, costs no allocation per request.
        if default == 0 && config.quota_overrides.is_empty() {
            return Duration::ZERO;
        }
        let entity = match &ctx.principal {
            Principal::User(user) => format!("User:{user}"),
            Principal::Anonymous => format!("client-id:{}", ctx.client_id),
        };
        let rate = config
            .quota_overrides
            .get(&entity)
            .and_then(|own| match kind {
                QuotaKind::ProduceBytes => own.produce_bytes_per_second,
                QuotaKind::FetchBytes => own.fetch_bytes_per_second,
                QuotaKind::Requests => own.requests_per_second,
            })
            .unwrap_or(default);
        if rate == 0 {
            return Duration::ZERO;
        }
        let (throttle, tracked) = {
            let mut quotas = self.state.quotas.borrow_mut();
            let throttle = quotas.charge(&entity, kind, rate, bytes, Instant::now());
            (throttle, quotas.len())
        };
        metrics::gauge!("ringmq_quota_buckets", "shard" => self.state.id.to_string())
            .set(tracked as f64);
        if !throttle.is_zero() {
            metrics::counter!("ringmq_quota_throttle_milliseconds_total", "kind" => kind.name())
                .increment(u64::try_from(throttle.as_millis()).unwrap_or(u64::MAX));
            metrics::counter!("ringmq_quota_throttled_requests_total", "kind" => kind.name())
                .increment(1);
        }
        throttle
    }
}
