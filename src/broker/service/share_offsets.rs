//! The service's share-group offset admin (KIP-932): a share group's start offset per
//! partition is its queue group's settled prefix there. Describe reads it; delete forgets the
//! group's queue group on a topic (the next fetch starts it again by
//! `share.auto.offset.reset`); alter starts each named partition's queue group again at an
//! offset (held within the log), its locks, delivery counts and archive state there forgotten.
//! Delete and alter are refused while the group has members, as Kafka refuses them.

use super::share_groups::{share_settings, share_work};
use super::{Operation, RequestContext, ResourceType, Service};
use crate::broker::queues::owner;
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

impl Service {
    /// A share group's start offset on each partition of `topic` (the first offset not yet
    /// acknowledged or archived), for DescribeShareGroupOffsets; None where it never read.
    pub async fn share_group_offsets(
        &self,
        ctx: &RequestContext,
        group: &str,
        topic: &str,
    ) -> BrokerResult<Vec<(u32, Option<u64>)>> {
        self.authorize(ctx, ResourceType::Group, group, Operation::Describe)?;
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Describe)?;
        let partitions = self.state.partitions_of(topic)?;
        let mut out = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            let (name, group) = (topic.to_string(), group.to_string());
            let described = self
                .state
                .on_owner(ctx.deadline, topic, partition, move |owner| async move {
                    owner::describe(&owner, &name, partition, &group)
                })
                .await;
            match described {
                Ok((_, view, _)) => out.push((partition, Some(view.settled_below))),
                Err(error) if error.kind == ErrorKind::UnknownQueueGroup => {
                    out.push((partition, None))
                }
                Err(error) => return Err(error),
            }
        }
        Ok(out)
    }

    /// Forgets a share group's state on `topic` (DeleteShareGroupOffsets): its queue group
    /// there goes, and the next fetch starts it again by `share.auto.offset.reset`. Kafka
    /// refuses this while the group has members; so does this.
    pub async fn delete_share_group_offsets(
        &self,
        ctx: &RequestContext,
        group: &str,
        topic: &str,
    ) -> BrokerResult<()> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Read)?;
        self.check_share_group_empty(ctx, group, Operation::Delete)
            .await?;
        self.delete_queue_group(ctx, topic, group).await
    }

    /// Refuses with `GroupNotEmpty` while the share group has members.
    async fn check_share_group_empty(
        &self,
        ctx: &RequestContext,
        group: &str,
        operation: Operation,
    ) -> BrokerResult<()> {
        let name = group.to_string();
        let (view, departed) = self
            .on_coordinator(ctx, group, operation, move |c| async move {
                Ok(share_work(&c, |groups, now| groups.describe(&name, now)))
            })
            .await?;
        self.release_departed(ctx, departed).await;
        let view = match view {
            Ok(view) => Some(view),
            Err(error) if error.kind == ErrorKind::UnknownGroup => None,
            Err(error) => return Err(error),
        };
        if view.is_some_and(|view| !view.members.is_empty()) {
            return Err(BrokerError::new(
                ErrorKind::GroupNotEmpty,
                format!("share group {group:?} has members"),
            ));
        }
        Ok(())
    }

    /// AlterShareGroupOffsets on `topic`: each (partition, offset) starts the group's queue
    /// group there again at the offset (held within the log); answered per partition with
    /// where it starts. The queue group is made first if the group never read the topic.
    /// Kafka's rights: Read on the group and the topic.
    pub async fn alter_share_group_offsets(
        &self,
        ctx: &RequestContext,
        group: &str,
        topic: &str,
        offsets: Vec<(u32, u64)>,
    ) -> BrokerResult<Vec<(u32, BrokerResult<u64>)>> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Read)?;
        self.check_exclusive(ctx, topic)?;
        self.check_share_group_empty(ctx, group, Operation::Read)
            .await?;
        let (settings, _) = share_settings(&self.state, group).await?;
        self.define_share_queue_group(ctx, group, &settings, topic)
            .await?;
        let mut out = Vec::with_capacity(offsets.len());
        for (partition, offset) in offsets {
            let restarted = match self.state.check_partition(topic, partition) {
                Err(error) => Err(error),
                Ok(()) => {
                    let (name, group) = (topic.to_string(), group.to_string());
                    self.state
                        .on_owner(ctx.deadline, topic, partition, move |owner| async move {
                            owner::restart_at(&owner, &name, partition, &group, offset).await
                        })
                        .await
                }
            };
            out.push((partition, restarted));
        }
        Ok(out)
    }
}
