//! Kafka's DeleteRecords: each partition's start moves forward, durably, and the answer is its
//! new low watermark. Each partition is served by its owner through the service; the
//! partitions of one request are served concurrently and answered in request order.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::errors::code_of;
use super::handlers::bad_partition;
use crate::broker::service::{RecordsBefore, RequestContext, Service};
use crate::broker::{BrokerError, ErrorKind};

/// Kafka's DeleteRecords offset meaning "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

/// The request's own timeout, when it gives one shorter than the broker's.
fn within_timeout(ctx: &RequestContext, timeout_ms: i32) -> RequestContext {
    let mut ctx = ctx.clone();
    if let Ok(timeout_ms) = u64::try_from(timeout_ms) {
        let own = Instant::now() + Duration::from_millis(timeout_ms);
        ctx.deadline = ctx.deadline.min(own);
    }
    ctx
}

/// Kafka's DeleteRecords: each partition's start moves to the offset asked for (-1: its high
/// watermark); the answer is the partition's low watermark after it, or the error.
pub async fn delete_records(
    service: &Service,
    ctx: &RequestContext,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let ctx = &within_timeout(ctx, request.timeout_ms);
    let mut topics = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.0.as_str().to_string();
        let deletions = topic.partitions.iter().map(|partition| {
            let (name, index, offset) = (&name, partition.partition_index, partition.offset);
            async move {
                let answer = DeleteRecordsPartitionResult::default().with_partition_index(index);
                let before = match offset {
                    HIGH_WATERMARK => Ok(RecordsBefore::HighWatermark),
                    offset => u64::try_from(offset)
                        .map(RecordsBefore::Offset)
                        .map_err(|_| {
                            BrokerError::new(
                                ErrorKind::OffsetOutOfRange,
                                format!(
                                    "offset {offset}: only -1 (the high watermark) or 0 and up"
                                ),
                            )
                        }),
                };
                let index = u32::try_from(index).map_err(|_| bad_partition(index));
                let deleted = match (index, before) {
                    (Ok(index), Ok(before)) => {
                        service.delete_records(ctx, name, index, before).await
                    }
                    (Err(error), _) | (_, Err(error)) => Err(error),
                };
                match deleted {
                    Ok(start) => answer.with_low_watermark(i64::try_from(start).unwrap_or(-1)),
                    Err(error) => answer
                        .with_low_watermark(-1)
                        .with_error_code(code_of(&error)),
                }
            }
        });
        let partitions = join_all(deletions).await;
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
