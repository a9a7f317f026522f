//! The native protocol's queue requests, served by the broker service: each becomes one typed
//! operation (`Service::create_queue_group`, `receive`, `settle`, ...), each result its
//! response; errors go through `errors.rs` like every other request's.

use crate::batch::Header;
use crate::broker::BrokerError;
use crate::broker::service::{
    NewQueueGroup, QueueGroupDescription, Receive, ReceivedMessage, RequestContext, Service,
    Settle, SettleAction,
};
use crate::protocol::Response;
use crate::protocol::queues::{
    PARTITION_FIELDS, QueueGroupInfo, QueueMessage, QueuePartitionInfo, QueueRequest,
    QueueResponse, SettleAction as WireAction,
};

/// Answers one queue request.
pub async fn serve(
    service: &Service,
    ctx: &RequestContext,
    request: QueueRequest,
) -> Result<Response, BrokerError> {
    let queue = match request {
        QueueRequest::CreateQueueGroup {
            topic,
            group,
            configs,
        } => {
            let new = NewQueueGroup {
                topic,
                group,
                configs,
            };
            service.create_queue_group(ctx, new).await?;
            return Ok(Response::Done);
        }
        QueueRequest::DescribeQueueGroup { topic, group } => QueueResponse::Description(
            description(service.describe_queue_group(ctx, &topic, &group).await?),
        ),
        QueueRequest::ListQueueGroups => {
            QueueResponse::Groups(service.list_queue_groups(ctx).await?)
        }
        QueueRequest::DeleteQueueGroup { topic, group } => {
            service.delete_queue_group(ctx, &topic, &group).await?;
            return Ok(Response::Done);
        }
        QueueRequest::PurgeQueueGroup { topic, group } => {
            QueueResponse::Purged(service.purge_queue_group(ctx, &topic, &group).await?)
        }
        QueueRequest::Receive(receive) => {
            let receive = Receive {
                topic: receive.topic,
                group: receive.group,
                consumer: receive.consumer,
                max_messages: receive.max_messages,
                max_bytes: receive.max_bytes,
                wait_ms: receive.wait_ms,
                visibility_timeout_ms: receive.visibility_timeout_ms,
                create: receive.create,
            };
            let messages = service.receive(ctx, receive).await?;
            QueueResponse::Messages(messages.into_iter().map(message).collect())
        }
        QueueRequest::Settle(settle) => {
            let action = match settle.action {
                WireAction::Ack => SettleAction::Ack,
                WireAction::Release { delay_ms } => SettleAction::Release { delay_ms },
                WireAction::Reject => SettleAction::Reject,
                WireAction::Extend { visibility_ms } => SettleAction::Extend { visibility_ms },
            };
            let settle = Settle {
                topic: settle.topic,
                group: settle.group,
                consumer: settle.consumer,
                action,
                ranges: settle.ranges,
            };
            service.settle(ctx, settle).await?;
            return Ok(Response::Done);
        }
    };
    Ok(Response::Queue(queue))
}

fn message(message: ReceivedMessage) -> QueueMessage {
    QueueMessage {
        partition: message.partition,
        offset: message.offset,
        deliveries: message.deliveries,
        lock_deadline_ms: message.lock_deadline_ms,
        timestamp_ms: message.timestamp_ms,
        key: message.key,
        value: message.value,
        headers: message
            .headers
            .into_iter()
            .map(|Header { key, value }| (key, value))
            .collect(),
    }
}

fn description(described: QueueGroupDescription) -> QueueGroupInfo {
    QueueGroupInfo {
        topic: described.topic,
        group: described.group,
        settings: described.settings,
        partitions: described
            .partitions
            .into_iter()
            .map(|p| {
                let (view, stats) = (p.view, p.stats);
                let numbers: [u64; PARTITION_FIELDS] = [
                    view.settled_below,
                    view.cursor,
                    view.available,
                    view.in_flight,
                    view.delayed,
                    view.spans,
                    view.consumers,
                    stats.deliveries,
                    stats.redeliveries,
                    stats.acks,
                    stats.releases,
                    stats.rejects,
                    stats.lock_expiries,
                    stats.dead_lettered,
                    stats.lost,
                ];
                QueuePartitionInfo {
                    partition: p.partition,
                    numbers,
                }
            })
            .collect(),
    }
}
