//! The service's operations, called directly: no socket, no codec. One shard, so every call
//! runs locally; the cross-shard paths are covered by the integration tests.

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::*;
use crate::batch::{BatchBuilder, Compression, Record};
use crate::broker::ShardState;
use crate::broker::topics::Topics;
use crate::config::BrokerConfig;
use crate::runtime;
use crate::shard::Mailboxes;

/// Runs `test` against a fresh one-shard broker in a temporary directory.
fn with_service<F, Fut>(config: BrokerConfig, test: F)
where
    F: FnOnce(Service, RequestContext) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        shards: 1,
        ..config
    });
    runtime::block_on(async move {
        let mailboxes = Mailboxes::new(1, config.mailbox_jobs_max);
        let state = Rc::new(ShardState::new(
            0,
            config,
            mailboxes.clone(),
            Arc::new(Topics::default()),
        ));
        // Topic changes reach every shard, this one included, through its mailbox.
        let inbox = state.clone();
        runtime::spawn_detached(async move { mailboxes.serve(0, inbox).await });
        state.open_owned_partitions().await.unwrap();
        let ctx = RequestContext::new("unit-test", Duration::from_secs(30));
        test(Service::new(state.clone()), ctx).await;
        state.close_logs().await;
    });
}

fn batch(values: &[&str]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    for value in values {
        builder.push(Record {
            timestamp_ms: 1_000,
            key: None,
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            headers: Vec::new(),
        });
    }
    BytesMut::from(&builder.build()[..])
}

fn values(fetched: &Fetched) -> Vec<String> {
    fetched
        .records
        .iter()
        .flat_map(|chunk| crate::batch::iter_framed(chunk).map(|(_, batch)| batch.to_vec()))
        .flat_map(|batch| crate::batch::records::decode(&batch).unwrap())
        .map(|record| String::from_utf8(record.record.value.unwrap().to_vec()).unwrap())
        .collect()
}

fn topic(name: &str, partitions: u32) -> NewTopic {
    NewTopic {
        name: name.into(),
        partitions,
        configs: Vec::new(),
    }
}

fn produce(topic: &str, partition: u32, values: &[&str]) -> Produce {
    Produce {
        topic: topic.into(),
        partition: PartitionChoice::Index(partition),
        acks: AckLevel::Written,
        records: batch(values),
    }
}

fn fetch(topic: &str, partition: u32, offset: u64) -> Fetch {
    Fetch {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 1 << 20,
        min_bytes: 0,
        max_wait_ms: 0,
    }
}

#[test]
fn produce_then_fetch_returns_the_records_in_order_at_their_offsets() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service
            .create_topic(&ctx, topic("orders", 2))
            .await
            .unwrap();
        let first = service
            .produce(&ctx, produce("orders", 1, &["a", "b"]))
            .await
            .unwrap();
        let second = service
            .produce(&ctx, produce("orders", 1, &["c"]))
            .await
            .unwrap();
        assert_eq!(
            (first.partition, first.base_offset, first.last_offset),
            (1, 0, 1)
        );
        assert_eq!((second.base_offset, second.last_offset), (2, 2));
        assert_eq!(second.log_append_time_ms, None);
        let fetched = service.fetch(&ctx, fetch("orders", 1, 0)).await.unwrap();
        assert_eq!(fetched.high_watermark, 3);
        assert_eq!(values(&fetched), ["a", "b", "c"]);
        let rest = service.fetch(&ctx, fetch("orders", 1, 2)).await.unwrap();
        assert_eq!(values(&rest), ["c"]);
        let other = service.fetch(&ctx, fetch("orders", 0, 0)).await.unwrap();
        assert!(other.records.is_empty());
        assert_eq!(other.high_watermark, 0);
    });
}

#[test]
fn a_keyed_produce_always_lands_on_the_same_partition() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("keyed", 8)).await.unwrap();
        let mut partitions = std::collections::HashSet::new();
        for _ in 0..5 {
            let done = service
                .produce(
                    &ctx,
                    Produce {
                        partition: PartitionChoice::ByKey(Bytes::from_static(b"user-7")),
                        ..produce("keyed", 0, &["x"])
                    },
                )
                .await
                .unwrap();
            partitions.insert(done.partition);
        }
        assert_eq!(partitions.len(), 1);
        let partition = *partitions.iter().next().unwrap();
        assert_eq!(partition, crate::broker::partition::for_key(b"user-7", 8));
    });
}

#[test]
fn data_operations_refuse_what_does_not_exist_with_the_right_kind() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let kind = |result: BrokerResult<Produced>| result.unwrap_err().kind;
        assert_eq!(
            kind(service.produce(&ctx, produce("nope", 0, &["a"])).await),
            ErrorKind::UnknownTopic
        );
        service.create_topic(&ctx, topic("t", 2)).await.unwrap();
        assert_eq!(
            kind(service.produce(&ctx, produce("t", 2, &["a"])).await),
            ErrorKind::UnknownPartition
        );
        let error = service.fetch(&ctx, fetch("t", 5, 0)).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::UnknownPartition);
        let error = service.fetch(&ctx, fetch("t", 0, 10)).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::OffsetOutOfRange);
        let mut corrupt = produce("t", 0, &["a"]);
        let last = corrupt.records.len() - 1;
        corrupt.records[last] ^= 0xff;
        assert_eq!(
            kind(service.produce(&ctx, corrupt).await),
            ErrorKind::CorruptBatch
        );
        let empty = service.fetch(&ctx, fetch("t", 0, 0)).await.unwrap();
        assert!(empty.records.is_empty(), "the corrupt batch was not stored");
    });
}

#[test]
fn list_offset_finds_start_end_and_time() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 1)).await.unwrap();
        for values in [&["a"][..], &["b", "c"][..]] {
            service
                .produce(&ctx, produce("t", 0, values))
                .await
                .unwrap();
        }
        let earliest = service
            .list_offset(&ctx, "t", 0, OffsetQuery::Earliest)
            .await
            .unwrap();
        let latest = service
            .list_offset(&ctx, "t", 0, OffsetQuery::Latest)
            .await
            .unwrap();
        let at = service
            .list_offset(&ctx, "t", 0, OffsetQuery::AtOrAfter(1_000))
            .await
            .unwrap();
        let after = service
            .list_offset(&ctx, "t", 0, OffsetQuery::AtOrAfter(2_000))
            .await
            .unwrap();
        assert_eq!(earliest.offset, Some(0));
        assert_eq!(latest.offset, Some(3));
        assert_eq!((at.offset, at.high_watermark), (Some(0), 3));
        assert_eq!(after.offset, None);
        let error = service
            .list_offset(&ctx, "t", 1, OffsetQuery::Latest)
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::UnknownPartition);
    });
}

#[test]
fn topics_are_created_described_validated_and_deleted() {
    let config = BrokerConfig {
        topics_max: 2,
        ..BrokerConfig::default()
    };
    with_service(config, |service, ctx| async move {
        let configured = NewTopic {
            configs: vec![("retention.ms".into(), "60000".into())],
            ..topic("a", 3)
        };
        service.validate_new_topic(&ctx, &configured).unwrap();
        assert!(
            service.topics(&ctx).is_empty(),
            "validation creates nothing"
        );
        service.create_topic(&ctx, configured).await.unwrap();
        let info = service.topic(&ctx, "a").unwrap();
        assert_eq!(info.partitions, 3);
        assert!(
            info.configs
                .contains(&("retention_ms".to_string(), "60000".to_string())),
            "{:?}",
            info.configs
        );
        let kind = |result: BrokerResult<()>| result.unwrap_err().kind;
        assert_eq!(
            kind(service.create_topic(&ctx, topic("a", 1)).await),
            ErrorKind::TopicExists
        );
        assert_eq!(
            kind(service.create_topic(&ctx, topic("a/b", 1)).await),
            ErrorKind::InvalidTopicName
        );
        assert_eq!(
            kind(service.create_topic(&ctx, topic("b", 0)).await),
            ErrorKind::InvalidPartitions
        );
        let bad_setting = NewTopic {
            configs: vec![("retention.ms".into(), "soon".into())],
            ..topic("b", 1)
        };
        assert_eq!(
            kind(service.validate_new_topic(&ctx, &bad_setting)),
            ErrorKind::InvalidConfig
        );
        service.create_topic(&ctx, topic("b", 1)).await.unwrap();
        assert_eq!(
            kind(service.create_topic(&ctx, topic("c", 1)).await),
            ErrorKind::ResourceLimit
        );
        let names: Vec<String> = service.topics(&ctx).into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["a", "b"]);
        service.delete_topic(&ctx, "a".into()).await.unwrap();
        assert_eq!(
            service.topic(&ctx, "a").unwrap_err().kind,
            ErrorKind::UnknownTopic
        );
        assert_eq!(
            kind(service.delete_topic(&ctx, "a".into()).await),
            ErrorKind::UnknownTopic
        );
        service.create_topic(&ctx, topic("c", 1)).await.unwrap();
    });
}
