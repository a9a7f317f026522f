//! Deleting a partition's oldest records by moving its start forward (Kafka's DeleteRecords),
//! on the partition's owner, within the request's deadline.

use super::{RecordsBefore, RequestContext, Service};
use crate::broker::acls::{Operation, ResourceType};
use crate::broker::{BrokerResult, partition};

impl Service {
    /// Deletes the records of a partition before `before` by moving its start there, durably
    /// (the start stays after a restart); returns the new start. An offset past the high
    /// watermark is `OffsetOutOfRange`; one at or before the start changes nothing.
    pub async fn delete_records(
        &self,
        ctx: &RequestContext,
        topic: &str,
        index: u32,
        before: RecordsBefore,
    ) -> BrokerResult<u64> {
        self.authorize(ctx, ResourceType::Topic, topic, Operation::Delete)?;
        self.check_exclusive(ctx, topic)?;
        self.state.check_partition(topic, index)?;
        let name = topic.to_string();
        self.state
            .on_owner(ctx.deadline, topic, index, move |owner| async move {
                partition::delete_records(&owner, &name, index, before).await
            })
            .await
    }
}
