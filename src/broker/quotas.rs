//! Quotas: how many bytes a principal (or, unauthenticated, a client id) may produce and fetch
//! per second, and how many requests it may make. Each is a token bucket holding at most one second of its rate: traffic takes
//! from it, time refills it, and a client that drives it below zero is throttled for as long as
//! the refill takes (capped at `THROTTLE_MAX`). Throttling delays the answer (and Kafka's
//! `throttle_time_ms` says by how much); it never disconnects.
//!
//! Each shard keeps its own buckets for the connections it serves, as each Kafka broker does
//! for its own: a client whose connections land on N shards may reach N times its quota. The
//! buckets are bounded (`quota_buckets_max` per shard; idle ones are dropped first).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The longest one request is held back, whatever the debt.
pub const THROTTLE_MAX: Duration = Duration::from_secs(10);

/// What a quota limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuotaKind {
    ProduceBytes,
    FetchBytes,
    /// Requests (each costs 1).
    Requests,
}

impl QuotaKind {
    pub fn name(self) -> &'static str {
        match self {
            QuotaKind::ProduceBytes => "produce",
            QuotaKind::FetchBytes => "fetch",
            QuotaKind::Requests => "requests",
        }
    }
}

struct Bucket {
    /// Bytes that may still pass now; negative is debt.
    tokens: f64,
    refilled: Instant,
}

pub struct QuotaBuckets {
    buckets: HashMap<(String, QuotaKind), Bucket>,
    /// Buckets kept at most (`quota_buckets_max`).
    buckets_max: usize,
}

impl QuotaBuckets {
    pub fn new(buckets_max: usize) -> QuotaBuckets {
        assert!(buckets_max > 0);
        QuotaBuckets {
            buckets: HashMap::new(),
            buckets_max,
        }
    }

    /// Takes `bytes` from `entity`'s bucket of `kind` (refilled at `rate_per_second`) and
    /// returns how long to hold the answer back.
    pub fn charge(
        &mut self,
        entity: &str,
        kind: QuotaKind,
        rate_per_second: u64,
        bytes: u64,
        now: Instant,
    ) -> Duration {
        if rate_per_second == 0 {
            return Duration::ZERO;
        }
        let rate = rate_per_second as f64;
        if !self.buckets.contains_key(&(entity.to_string(), kind))
            && self.buckets.len() >= self.buckets_max
        {
            self.evict(now);
        }
        let bucket = self
            .buckets
            .entry((entity.to_string(), kind))
            .or_insert(Bucket {
                tokens: rate,
                refilled: now,
            });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(rate) - bytes as f64;
        bucket.refilled = now;
        if bucket.tokens >= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(-bucket.tokens / rate).min(THROTTLE_MAX)
    }

    /// Drops the buckets untouched longest (a full one holds no debt worth keeping).
    fn evict(&mut self, now: Instant) {
        let idle = Duration::from_secs(60);
        self.buckets
            .retain(|_, bucket| now.saturating_duration_since(bucket.refilled) < idle);
        if self.buckets.len() >= self.buckets_max {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, bucket)| bucket.refilled)
                .map(|(key, _)| key.clone());
            if let Some(key) = oldest {
                self.buckets.remove(&key);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_passes_its_rate_and_throttles_the_excess() {
        let mut quotas = QuotaBuckets::new(10_000);
        let start = Instant::now();
        let kind = QuotaKind::ProduceBytes;
        // A full second's worth passes at once.
        assert_eq!(
            quotas.charge("alice", kind, 1000, 1000, start),
            Duration::ZERO
        );
        // Half a second more, in debt by 500 bytes: half a second's throttle.
        assert_eq!(
            quotas.charge("alice", kind, 1000, 500, start),
            Duration::from_millis(500)
        );
        // After a second of refill the debt is paid and 500 bytes are free again.
        let later = start + Duration::from_secs(1);
        assert_eq!(
            quotas.charge("alice", kind, 1000, 500, later),
            Duration::ZERO
        );
        // Others have their own bucket; no rate, no limit; the throttle is capped.
        assert_eq!(
            quotas.charge("bob", kind, 1000, 1000, start),
            Duration::ZERO
        );
        assert_eq!(
            quotas.charge("carol", kind, 0, u64::MAX, start),
            Duration::ZERO
        );
        assert_eq!(
            quotas.charge("dave", kind, 1, 1_000_000, start),
            THROTTLE_MAX
        );
        assert_eq!(quotas.len(), 3);
    }

    #[test]
    fn the_buckets_are_bounded_and_the_idlest_go_first() {
        let mut quotas = QuotaBuckets::new(3);
        let start = Instant::now();
        let kind = QuotaKind::Requests;
        let second = |n: u64| start + Duration::from_secs(n);
        for (n, entity) in ["a", "b", "c"].into_iter().enumerate() {
            let debt = quotas.charge(entity, kind, 1, 3, second(n as u64));
            assert_eq!(debt, Duration::from_secs(2));
        }
        // "d" takes the place of "a", the idlest.
        quotas.charge("d", kind, 1, 1, second(2));
        assert_eq!(quotas.len(), 3);
        // "b" kept its debt (2 s at t1, 1 s refilled since) ...
        assert_eq!(
            quotas.charge("b", kind, 1, 0, second(2)),
            Duration::from_secs(1)
        );
        // ... "a" lost its own: a new, full bucket (kept, it would owe 1 s).
        assert_eq!(quotas.charge("a", kind, 1, 1, second(2)), Duration::ZERO);
        assert_eq!(quotas.len(), 3);
    }
}
