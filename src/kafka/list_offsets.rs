//! Kafka's ListOffsets (v1+): a partition's start, its end, the first record at or after a time,
//! or the record with the largest time (MAX_TIMESTAMP, KIP-734), answered as Kafka's broker
//! answers them (`ReplicaManager.fetchOffset`, `UnifiedLog.fetchOffsetByTimestamp`):
//!
//! - earliest (-2) and latest (-1) name no record: timestamp -1 (`RecordBatch.NO_TIMESTAMP`);
//! - a time finds the first record whose timestamp is at or after it, with that record's
//!   timestamp; none: offset -1, timestamp -1;
//! - MAX_TIMESTAMP (-3, from v7) finds the first record holding the largest timestamp;
//! - EARLIEST_LOCAL (-4, from v8) is the log start: every segment here is local;
//! - any other negative time, or a special one below the version that brought it, is
//!   UNSUPPORTED_VERSION for that partition (`isListOffsetsTimestampUnsupported`, KAFKA-17331);
//! - a partition named twice in one request is INVALID_REQUEST for each of its entries, and is
//!   not looked up at all, so a request repeating one partition costs no lookups.

use std::collections::HashMap;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::errors::{INVALID_REQUEST, UNSUPPORTED_VERSION, code_of};
use super::handlers::bad_partition;
use crate::broker::service::{OffsetQuery, RequestContext, Service};

const LATEST_TIMESTAMP: i64 = -1;
const EARLIEST_TIMESTAMP: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;

/// What a ListOffsets `timestamp` asks for at request version `version`; None when Kafka
/// answers UNSUPPORTED_VERSION for it.
pub fn query_for(timestamp: i64, version: i16) -> Option<OffsetQuery> {
    match timestamp {
        LATEST_TIMESTAMP => Some(OffsetQuery::Latest),
        EARLIEST_TIMESTAMP => Some(OffsetQuery::Earliest),
        MAX_TIMESTAMP if version >= 7 => Some(OffsetQuery::MaxTimestamp),
        EARLIEST_LOCAL_TIMESTAMP if version >= 8 => Some(OffsetQuery::Earliest),
        time if time >= 0 => Some(OffsetQuery::AtOrAfter(time)),
        _ => None,
    }
}

pub async fn list_offsets(
    service: &Service,
    ctx: &RequestContext,
    version: i16,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // Each (topic, partition) counted once over the whole request: the request's own size bounds
    // this, and a repeated partition is refused as Kafka refuses it.
    let mut named: HashMap<(&str, i32), u32> = HashMap::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            *named
                .entry((topic.name.0.as_str(), partition.partition_index))
                .or_default() += 1;
        }
    }
    let mut topics = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let mut partitions = Vec::new();
        for partition in &topic.partitions {
            let index = partition.partition_index;
            let answer = ListOffsetsPartitionResponse::default()
                .with_partition_index(index)
                .with_timestamp(-1)
                .with_offset(-1);
            if named.get(&(name, index)).copied().unwrap_or(0) > 1 {
                partitions.push(answer.with_error_code(INVALID_REQUEST));
                continue;
            }
            let Some(query) = query_for(partition.timestamp, version) else {
                partitions.push(answer.with_error_code(UNSUPPORTED_VERSION));
                continue;
            };
            let result = match u32::try_from(index) {
                Ok(index) => service.list_offset(ctx, name, index, query).await,
                Err(_) => Err(bad_partition(index)),
            };
            partitions.push(match result {
                Ok(listed) => answer
                    .with_offset(listed.offset.map_or(-1, |offset| offset as i64))
                    .with_timestamp(listed.timestamp_ms.unwrap_or(-1)),
                Err(error) => answer.with_error_code(code_of(&error)),
            });
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_times_are_read_as_kafka_reads_them_by_version() {
        assert_eq!(query_for(-1, 1), Some(OffsetQuery::Latest));
        assert_eq!(query_for(-2, 1), Some(OffsetQuery::Earliest));
        assert_eq!(query_for(-3, 6), None);
        assert_eq!(query_for(-3, 7), Some(OffsetQuery::MaxTimestamp));
        assert_eq!(query_for(-4, 7), None);
        assert_eq!(query_for(-4, 8), Some(OffsetQuery::Earliest));
        for unknown in [-5, -6, -1000, i64::MIN] {
            assert_eq!(query_for(unknown, 8), None, "{unknown}");
        }
        assert_eq!(query_for(0, 1), Some(OffsetQuery::AtOrAfter(0)));
        assert_eq!(
            query_for(i64::MAX, 8),
            Some(OffsetQuery::AtOrAfter(i64::MAX))
        );
    }
}
