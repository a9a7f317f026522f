//! Producer ids for idempotent producers. An id is unique to this broker: the clock in
//! milliseconds when the process first handed one out, shifted left 16 bits, plus a counter, so
//! ids never repeat across restarts (unless the clock goes back). Transactions are not served.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, Ordering};

use super::error::{BrokerError, BrokerResult, ErrorKind};

/// A producer's identity in its batches: the id and the epoch that fences older instances.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerIdentity {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// A new identity, or, for a producer that names its current one (after a fatal sequence
/// error), the same id with the next epoch.
pub fn init(
    transactional_id: Option<&str>,
    current: Option<ProducerIdentity>,
) -> BrokerResult<ProducerIdentity> {
    if let Some(id) = transactional_id {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!("transactional id {id:?}: transactions are not served"),
        ));
    }
    if let Some(current) = current.filter(|c| c.producer_id >= 0 && c.producer_epoch >= 0) {
        return Ok(ProducerIdentity {
            producer_id: current.producer_id,
            producer_epoch: current.producer_epoch.checked_add(1).unwrap_or(0),
        });
    }
    static NEXT: OnceLock<AtomicI64> = OnceLock::new();
    let next = NEXT.get_or_init(|| AtomicI64::new(crate::storage::log::now_ms() << 16));
    Ok(ProducerIdentity {
        producer_id: next.fetch_add(1, Ordering::Relaxed),
        producer_epoch: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_epochs_advance_and_transactions_are_refused() {
        let first = init(None, None).unwrap();
        let second = init(None, None).unwrap();
        assert_ne!(first.producer_id, second.producer_id);
        assert_eq!(first.producer_epoch, 0);
        let bumped = init(None, Some(first)).unwrap();
        assert_eq!(bumped.producer_id, first.producer_id);
        assert_eq!(bumped.producer_epoch, 1);
        let wrapped = ProducerIdentity {
            producer_epoch: i16::MAX,
            ..first
        };
        assert_eq!(init(None, Some(wrapped)).unwrap().producer_epoch, 0);
        let refused = init(Some("tx"), None).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidRequest);
    }
}
