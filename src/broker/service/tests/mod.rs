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
use crate::partitioner::Partitioner;
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
            Default::default(),
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
        assert_eq!(partition, Partitioner::Murmur2.partition(b"user-7", 8));
    });
}

#[test]
fn a_keyed_produce_follows_the_configured_key_partitioner() {
    // A key that the two rules place apart over 8 partitions.
    let key = (0..100)
        .map(|n| format!("user-{n}"))
        .find(|key| {
            Partitioner::Xxh3.partition(key.as_bytes(), 8)
                != Partitioner::Murmur2.partition(key.as_bytes(), 8)
        })
        .unwrap();
    let config = BrokerConfig {
        key_partitioner: Partitioner::Xxh3,
        ..BrokerConfig::default()
    };
    with_service(config, |service, ctx| async move {
        service.create_topic(&ctx, topic("keyed", 8)).await.unwrap();
        let keyed = Produce {
            partition: PartitionChoice::ByKey(Bytes::from(key.clone())),
            ..produce("keyed", 0, &["x"])
        };
        let done = service.produce(&ctx, keyed).await.unwrap();
        assert_eq!(
            done.partition,
            Partitioner::Xxh3.partition(key.as_bytes(), 8)
        );
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
        assert_eq!((earliest.offset, earliest.timestamp_ms), (Some(0), None));
        assert_eq!((latest.offset, latest.timestamp_ms), (Some(3), None));
        assert_eq!(
            (at.offset, at.timestamp_ms, at.high_watermark),
            (Some(0), Some(1_000), 3)
        );
        assert_eq!((after.offset, after.timestamp_ms), (None, None));
        let error = service
            .list_offset(&ctx, "t", 1, OffsetQuery::Latest)
            .await
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::UnknownPartition);
    });
}

/// One batch whose records carry these timestamps, in this order.
fn timed_batch(timestamps: &[i64]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    for (n, timestamp) in timestamps.iter().enumerate() {
        builder.push(Record {
            timestamp_ms: *timestamp,
            key: None,
            value: Some(Bytes::from(format!("v{n}"))),
            headers: Vec::new(),
        });
    }
    BytesMut::from(&builder.build()[..])
}

#[test]
fn list_offset_by_time_answers_the_record_and_its_time_and_the_largest_time() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 1)).await.unwrap();
        let list = |query| service.list_offset(&ctx, "t", 0, query);
        let empty = list(OffsetQuery::MaxTimestamp).await.unwrap();
        assert_eq!((empty.offset, empty.timestamp_ms), (None, None));
        let t0 = 1_700_000_000_000;
        // Offsets 0..=4 in one batch, t0 .. t0 + 4000; then 5..=8 out of order, with the
        // largest time twice (offsets 6 and 8): the first of them is the answer.
        let batches = [
            timed_batch(&[t0, t0 + 1000, t0 + 2000, t0 + 3000, t0 + 4000]),
            timed_batch(&[t0 + 500, t0 + 9000, t0 + 100, t0 + 9000]),
        ];
        for records in batches {
            let produce = Produce {
                topic: "t".into(),
                partition: PartitionChoice::Index(0),
                acks: AckLevel::Written,
                records,
            };
            service.produce(&ctx, produce).await.unwrap();
        }
        let found = |listed: ListedOffset| (listed.offset, listed.timestamp_ms);
        let inside = list(OffsetQuery::AtOrAfter(t0 + 2500)).await.unwrap();
        assert_eq!(found(inside), (Some(3), Some(t0 + 3000)));
        let exact = list(OffsetQuery::AtOrAfter(t0 + 4000)).await.unwrap();
        assert_eq!(found(exact), (Some(4), Some(t0 + 4000)));
        // Past the first batch: the second batch's first record at or after it.
        let later = list(OffsetQuery::AtOrAfter(t0 + 4001)).await.unwrap();
        assert_eq!(found(later), (Some(6), Some(t0 + 9000)));
        let max = list(OffsetQuery::MaxTimestamp).await.unwrap();
        assert_eq!(found(max), (Some(6), Some(t0 + 9000)));
        assert_eq!(max.high_watermark, 9);
        let past = list(OffsetQuery::AtOrAfter(t0 + 9001)).await.unwrap();
        assert_eq!(found(past), (None, None));
    });
}

#[test]
fn with_log_append_time_the_largest_time_is_the_first_batch_stamped_last() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let stamped = NewTopic {
            configs: vec![("message.timestamp.type".into(), "LogAppendTime".into())],
            ..topic("stamped", 1)
        };
        service.create_topic(&ctx, stamped).await.unwrap();
        let mut appended = Vec::new();
        for values in [&["a", "b"][..], &["c", "d", "e"][..]] {
            let done = service
                .produce(&ctx, produce("stamped", 0, values))
                .await
                .unwrap();
            appended.push((done.base_offset, done.log_append_time_ms.unwrap()));
        }
        // Every record has its batch's broker time; the answer is the first record of the
        // first batch stamped with the latest time.
        let latest = appended.iter().map(|(_, time)| *time).max().unwrap();
        let first = appended.iter().find(|(_, time)| *time == latest).unwrap();
        let max = service
            .list_offset(&ctx, "stamped", 0, OffsetQuery::MaxTimestamp)
            .await
            .unwrap();
        assert_eq!(
            (max.offset, max.timestamp_ms),
            (Some(first.0), Some(latest))
        );
        let at = service
            .list_offset(&ctx, "stamped", 0, OffsetQuery::AtOrAfter(appended[0].1))
            .await
            .unwrap();
        assert_eq!((at.offset, at.timestamp_ms), (Some(0), Some(appended[0].1)));
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

#[test]
fn ensure_topic_creates_with_the_defaults_once_however_many_ask_at_once() {
    let config = BrokerConfig {
        default_partitions: 3,
        ..BrokerConfig::default()
    };
    with_service(config, |service, ctx| async move {
        service.check_auto_create(&ctx, "fresh").unwrap();
        // Twenty connections auto-creating one topic at once: every one gets the topic.
        let racing = (0..20).map(|_| service.ensure_topic(&ctx, "fresh"));
        let answers = futures_util::future::join_all(racing).await;
        for answer in answers {
            let info = answer.unwrap();
            assert_eq!((info.name.as_str(), info.partitions), ("fresh", 3));
        }
        let names: Vec<String> = service.topics(&ctx).into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["fresh"]);
        let done = service
            .produce(&ctx, produce("fresh", 2, &["a"]))
            .await
            .unwrap();
        assert_eq!((done.partition, done.base_offset), (2, 0));
        // An existing topic is described as it is, whatever the defaults.
        service.create_topic(&ctx, topic("made", 5)).await.unwrap();
        assert_eq!(
            service.ensure_topic(&ctx, "made").await.unwrap().partitions,
            5
        );
        let error = service.ensure_topic(&ctx, "no/slash").await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidTopicName);
        assert_eq!(
            service.check_auto_create(&ctx, "").unwrap_err().kind,
            ErrorKind::InvalidTopicName
        );
        assert_eq!(
            service.topics(&ctx).len(),
            2,
            "an invalid name is never created"
        );
    });
}

#[test]
fn ensure_topic_creates_nothing_when_off_or_full() {
    let off = BrokerConfig {
        auto_create_topics: false,
        ..BrokerConfig::default()
    };
    with_service(off, |service, ctx| async move {
        let error = service.ensure_topic(&ctx, "missing").await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::UnknownTopic);
        assert_eq!(
            service.check_auto_create(&ctx, "missing").unwrap_err().kind,
            ErrorKind::UnknownTopic
        );
        // Creation off still tells an impossible name from an unknown one, as Kafka does.
        let error = service.ensure_topic(&ctx, "bad name").await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidTopicName);
        assert!(service.topics(&ctx).is_empty());
        service.create_topic(&ctx, topic("made", 2)).await.unwrap();
        assert_eq!(
            service.ensure_topic(&ctx, "made").await.unwrap().partitions,
            2
        );
    });
    let full = BrokerConfig {
        topics_max: 2,
        ..BrokerConfig::default()
    };
    with_service(full, |service, ctx| async move {
        for name in ["one", "two"] {
            assert_eq!(
                service.ensure_topic(&ctx, name).await.unwrap().partitions,
                1
            );
        }
        let error = service.ensure_topic(&ctx, "three").await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::ResourceLimit);
        assert_eq!(
            error.message,
            "the broker holds topics_max = 2 topics already"
        );
        assert_eq!(service.topics(&ctx).len(), 2);
        assert_eq!(
            service.ensure_topic(&ctx, "two").await.unwrap().partitions,
            1
        );
    });
}

#[test]
fn producer_ids_are_handed_out_and_transactions_refused() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let first = service.init_producer_id(&ctx, None).unwrap();
        let bumped = service.init_producer_id(&ctx, Some(first)).unwrap();
        assert_eq!(
            (bumped.producer_id, bumped.producer_epoch),
            (first.producer_id, 1)
        );
        let transactional = RequestContext {
            transactional_id: Some("tx-1".into()),
            ..ctx.clone()
        };
        let refused = service.init_producer_id(&transactional, None).unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidRequest);
    });
}

#[test]
fn a_topic_grows_but_never_shrinks() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 2)).await.unwrap();
        service
            .produce(&ctx, produce("t", 1, &["kept"]))
            .await
            .unwrap();
        service.validate_add_partitions(&ctx, "t", 4).unwrap();
        assert_eq!(service.topic(&ctx, "t").unwrap().partitions, 2);
        service.add_partitions(&ctx, "t".into(), 4).await.unwrap();
        assert_eq!(service.topic(&ctx, "t").unwrap().partitions, 4);
        let done = service
            .produce(&ctx, produce("t", 3, &["new"]))
            .await
            .unwrap();
        assert_eq!(done.base_offset, 0);
        let kept = service.fetch(&ctx, fetch("t", 1, 0)).await.unwrap();
        assert_eq!(values(&kept), ["kept"]);
        for (name, count) in [("t", 4), ("t", 3), ("t", 100_000)] {
            let refused = service.add_partitions(&ctx, name.into(), count).await;
            assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidPartitions);
        }
        let unknown = service.add_partitions(&ctx, "u".into(), 3).await;
        assert_eq!(unknown.unwrap_err().kind, ErrorKind::UnknownTopic);
    });
}

#[test]
fn delete_records_moves_the_start() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 2)).await.unwrap();
        for values in [&["a", "b"][..], &["c", "d", "e"][..]] {
            service
                .produce(&ctx, produce("t", 0, values))
                .await
                .unwrap();
        }
        let delete = |before| service.delete_records(&ctx, "t", 0, before);
        assert_eq!(delete(RecordsBefore::Offset(3)).await.unwrap(), 3);
        assert_eq!(
            delete(RecordsBefore::Offset(1)).await.unwrap(),
            3,
            "no step back"
        );
        let past = delete(RecordsBefore::Offset(6)).await.unwrap_err();
        assert_eq!(past.kind, ErrorKind::OffsetOutOfRange);
        let below = service.fetch(&ctx, fetch("t", 0, 2)).await.unwrap_err();
        assert_eq!(below.kind, ErrorKind::OffsetOutOfRange);
        let fetched = service.fetch(&ctx, fetch("t", 0, 3)).await.unwrap();
        assert_eq!(fetched.log_start_offset, 3);
        assert_eq!(
            values(&fetched),
            ["c", "d", "e"],
            "the batch holding the start"
        );
        let earliest = service.list_offset(&ctx, "t", 0, OffsetQuery::Earliest);
        assert_eq!(earliest.await.unwrap().offset, Some(3));
        assert_eq!(delete(RecordsBefore::HighWatermark).await.unwrap(), 5);
        let unknown = service.delete_records(&ctx, "t", 2, RecordsBefore::HighWatermark);
        assert_eq!(unknown.await.unwrap_err().kind, ErrorKind::UnknownPartition);
    });
}

mod consumer_groups;
mod groups;
mod queues;
mod share_groups;
