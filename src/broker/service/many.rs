//! Operations over many partitions at once, with one hop per owner shard instead of one per
//! partition. A Kafka consumer of thousands of partitions names them all in every fetch; most
//! have nothing new. Asking each owner once for the ends of all its partitions, and reading only
//! those with data, turns thousands of cross-shard round trips into one per shard; a long poll
//! over them is likewise one wait per shard.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use super::{RequestContext, Service};
use crate::broker::{BrokerResult, ShardState};
use crate::runtime;
use crate::shard::{ShardId, owner_of};

/// Where a partition's log starts and ends now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionEnds {
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

impl Service {
    /// The idempotent producers `topic`'s `partition` remembers, from its owner; needs Read on
    /// the topic.
    pub async fn partition_producers(
        &self,
        ctx: &RequestContext,
        topic: &str,
        partition: u32,
    ) -> BrokerResult<Vec<crate::storage::producer_state::ProducerView>> {
        self.authorize(
            ctx,
            super::ResourceType::Topic,
            topic,
            super::Operation::Read,
        )?;
        self.state.check_partition(topic, partition)?;
        let name = topic.to_string();
        self.state
            .on_owner(ctx.deadline, topic, partition, move |owner| async move {
                Ok(owner.log(&name, partition)?.producers())
            })
            .await
    }

    /// The ends of each of `partitions` (answers in the same order), each partition's owner
    /// asked once for all of its own.
    pub async fn partition_ends(
        &self,
        ctx: &RequestContext,
        partitions: &[(&str, u32)],
    ) -> Vec<BrokerResult<PartitionEnds>> {
        let mut answers: Vec<Option<BrokerResult<PartitionEnds>>> = Vec::new();
        answers.resize_with(partitions.len(), || None);
        let mut by_owner: HashMap<ShardId, Vec<(usize, String, u32)>> = HashMap::new();
        for (slot, &(topic, partition)) in partitions.iter().enumerate() {
            let checked = self
                .authorize(
                    ctx,
                    super::ResourceType::Topic,
                    topic,
                    super::Operation::Read,
                )
                .and_then(|()| self.state.check_partition(topic, partition));
            match checked {
                Err(error) => answers[slot] = Some(Err(error)),
                Ok(()) => by_owner
                    .entry(owner_of(topic, partition, self.state.shards()))
                    .or_default()
                    .push((slot, topic.to_string(), partition)),
            }
        }
        let asks = by_owner.into_iter().map(|(owner, wanted)| {
            let slots: Vec<usize> = wanted.iter().map(|(slot, _, _)| *slot).collect();
            let ask = self
                .state
                .on_shard_until(ctx.deadline, owner, move |state| async move {
                    BrokerResult::Ok(ends_here(&state, &wanted))
                });
            async move { (slots, ask.await) }
        });
        for (slots, answered) in futures_util::future::join_all(asks).await {
            match answered {
                Ok(ends) => {
                    for (slot, end) in slots.into_iter().zip(ends) {
                        answers[slot] = Some(end);
                    }
                }
                Err(error) => {
                    for slot in slots {
                        answers[slot] = Some(Err(error.clone()));
                    }
                }
            }
        }
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| Err(crate::broker::BrokerError::shutting_down()))
            })
            .collect()
    }

    /// Waits until any of `partitions` ((topic, partition, offset)) has data past its offset,
    /// for `wait_ms` at most (capped by `fetch_wait_ms_max`), or the broker stops: one wait per
    /// owner shard, the first to see data ending them all.
    pub async fn wait_for_any(
        &self,
        ctx: &RequestContext,
        partitions: &[(&str, u32, u64)],
        wait_ms: u32,
    ) {
        let wait =
            Duration::from_millis(u64::from(wait_ms.min(self.state.config.fetch_wait_ms_max)));
        let mut by_owner: HashMap<ShardId, Vec<(String, u32, u64)>> = HashMap::new();
        for &(topic, partition, offset) in partitions {
            let readable = self.is_authorized(
                ctx,
                super::ResourceType::Topic,
                topic,
                super::Operation::Read,
            );
            if readable && self.state.check_partition(topic, partition).is_ok() {
                by_owner
                    .entry(owner_of(topic, partition, self.state.shards()))
                    .or_default()
                    .push((topic.to_string(), partition, offset));
            }
        }
        let waits: Vec<_> = by_owner
            .into_iter()
            .map(|(owner, waits)| {
                Box::pin(
                    self.state
                        .on_shard_until(ctx.deadline, owner, move |state| async move {
                            wait_here(&state, waits, wait).await;
                            BrokerResult::Ok(())
                        }),
                )
            })
            .collect();
        if waits.is_empty() {
            return;
        }
        let _ = runtime::timeout(wait, futures_util::future::select_all(waits)).await;
    }
}

fn ends_here(
    state: &ShardState,
    wanted: &[(usize, String, u32)],
) -> Vec<BrokerResult<PartitionEnds>> {
    wanted
        .iter()
        .map(|(_, topic, partition)| {
            let log = state.log(topic, *partition)?;
            Ok(PartitionEnds {
                high_watermark: log.high_watermark(),
                log_start_offset: log.log_start_offset(),
            })
        })
        .collect()
}

/// One shard's part of `wait_for_any`: a wait per distinct partition it owns.
async fn wait_here(state: &Rc<ShardState>, waits: Vec<(String, u32, u64)>, wait: Duration) {
    let mut distinct = std::collections::HashSet::new();
    let logs: Vec<_> = waits
        .into_iter()
        .filter(|(topic, partition, _)| distinct.insert((topic.clone(), *partition)))
        .filter_map(|(topic, partition, offset)| Some((state.log(&topic, partition).ok()?, offset)))
        .collect();
    let pending: Vec<_> = logs
        .iter()
        .map(|(log, offset)| Box::pin(log.wait_for_data(*offset)))
        .collect();
    if pending.is_empty() {
        return;
    }
    let any = futures_util::future::select_all(pending);
    let _ = runtime::timeout(wait, state.lifecycle.unless_stopping(any)).await;
}
