//! Thread-per-core: one shard per core, each a compio runtime on a pinned thread, and the
//! bounded, lock-free mailboxes that carry work from one shard to another.
//!
//! This layer knows nothing of topics or protocols. It answers two questions: which shard owns a
//! partition (`owner_of`), and how to run a piece of work on a given shard and get its result
//! back (`Mailboxes::call`). Broker semantics above decide what that work is.

pub mod crash;
pub mod mailbox;

pub use mailbox::{CallError, Mailboxes};

use xxhash_rust::xxh3::Xxh3;

pub type ShardId = usize;

/// The shard that owns `partition` of `topic`: xxh3 of (topic, partition), modulo shards.
pub fn owner_of(topic: &str, partition: u32, shards: usize) -> ShardId {
    assert!(shards > 0, "a broker has at least one shard");
    let mut hasher = Xxh3::new();
    hasher.update(topic.as_bytes());
    hasher.update(&[0]);
    hasher.update(&partition.to_be_bytes());
    (hasher.digest() % shards as u64) as ShardId
}

/// Starts `count` threads named `ringmq-shard-N`, pinning thread N to the Nth core when there
/// are enough cores (pinning is skipped, not failed, where the OS refuses it). A panic on any of
/// them ends the process (see `crash`).
pub fn spawn_threads<F>(count: usize, body: F) -> std::io::Result<Vec<std::thread::JoinHandle<()>>>
where
    F: Fn(ShardId) + Send + Sync + Clone + 'static,
{
    crash::install_hook();
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    (0..count)
        .map(|shard| {
            let body = body.clone();
            let core = (cores.len() >= count).then(|| cores[shard]);
            std::thread::Builder::new()
                .name(format!("{}{shard}", crash::SHARD_THREAD_PREFIX))
                .spawn(move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    body(shard)
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_is_stable_and_spread() {
        assert_eq!(owner_of("orders", 3, 4), owner_of("orders", 3, 4));
        let owners: std::collections::HashSet<_> =
            (0..64).map(|p| owner_of("orders", p, 4)).collect();
        assert_eq!(
            owners.len(),
            4,
            "64 partitions land on every one of 4 shards"
        );
        assert!((0..100).all(|p| owner_of("t", p, 1) == 0));
    }
}
