//! Receipt handles: what a delete or a visibility change needs to settle one delivery. Each
//! ReceiveMessage is its own queue-group consumer, named by a random 64-bit nonce, so a handle
//! holds the queue (a hash of its name), the partition, the offset and that nonce. A handle
//! whose lock was lost (it expired and the message went to another receive, or was settled)
//! names a consumer that no longer holds the offset, and the service refuses it. The consumer
//! ids cost nothing between receives: a queue group keeps a consumer only while it holds locks,
//! so their number is bounded by the group's `max_in_flight`.

use base64::Engine;

use super::errors::SqsError;

const VERSION: u8 = 1;
const BYTES: usize = 1 + 8 + 4 + 8 + 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Receipt {
    pub partition: u32,
    pub offset: u64,
    pub nonce: u64,
}

fn queue_hash(queue: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(queue.as_bytes())
}

/// A fresh consumer nonce for one receive.
pub fn new_nonce() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes)
}

/// The queue-group consumer id of a receive's nonce.
pub fn consumer(nonce: u64) -> String {
    format!("sqs-{nonce:016x}")
}

impl Receipt {
    pub fn encode(&self, queue: &str) -> String {
        let mut bytes = Vec::with_capacity(BYTES);
        bytes.push(VERSION);
        bytes.extend_from_slice(&queue_hash(queue).to_be_bytes());
        bytes.extend_from_slice(&self.partition.to_be_bytes());
        bytes.extend_from_slice(&self.offset.to_be_bytes());
        bytes.extend_from_slice(&self.nonce.to_be_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Reads a handle given for `queue`; ReceiptHandleIsInvalid if it is not one of ours or
    /// was given for another queue.
    pub fn decode(handle: &str, queue: &str) -> Result<Receipt, SqsError> {
        let invalid = || {
            SqsError::receipt_handle_is_invalid(format!(
                "the receipt handle {:?} is not valid for this queue",
                handle.get(..64).unwrap_or(handle)
            ))
        };
        if handle.len() > 64 {
            return Err(invalid());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(handle)
            .map_err(|_| invalid())?;
        let Ok(bytes) = <[u8; BYTES]>::try_from(bytes.as_slice()) else {
            return Err(invalid());
        };
        let (version, rest) = bytes.split_at(1);
        let (hash, rest) = rest.split_at(8);
        let (partition, rest) = rest.split_at(4);
        let (offset, nonce) = rest.split_at(8);
        let number = |part: &[u8]| {
            let mut eight = [0u8; 8];
            eight[8 - part.len()..].copy_from_slice(part);
            u64::from_be_bytes(eight)
        };
        if version != [VERSION] || number(hash) != queue_hash(queue) {
            return Err(invalid());
        }
        Ok(Receipt {
            partition: u32::try_from(number(partition)).map_err(|_| invalid())?,
            offset: number(offset),
            nonce: number(nonce),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_for_their_queue_only() {
        let receipt = Receipt {
            partition: 3,
            offset: 1 << 40,
            nonce: 7,
        };
        let handle = receipt.encode("orders");
        assert_eq!(Receipt::decode(&handle, "orders").unwrap(), receipt);
        assert!(Receipt::decode(&handle, "other").is_err());
        assert!(Receipt::decode("garbage!", "orders").is_err());
        assert!(Receipt::decode(&"A".repeat(10_000), "orders").is_err());
        assert!(Receipt::decode(&handle[..handle.len() - 2], "orders").is_err());
    }
}
