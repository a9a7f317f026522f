//! Consumer groups end to end against a real broker: fan-out to several groups, partitions
//! divided inside a group, a member that dies without leaving, offsets that survive a restart,
//! replay by timestamp, lag, and the errors that fence stale members.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::TestBroker;
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{
    Client, ClientError, GroupConfig, GroupConsumer, GroupRecord, ResetTo, reset_offsets,
};
use ringmq::protocol::{ErrorCode, OffsetSpec};
use ringmq::runtime;
use ringmq::storage::AckLevel;

/// Produces `count` records "m<n>" spread over every partition, with timestamps 1_000_000 + n.
async fn produce(client: &Client, topic: &str, partitions: u32, from: u64, count: u64) {
    for n in from..from + count {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.push(Record::new(
            1_000_000 + n as i64,
            None,
            Some(format!("m{n}").as_bytes()),
        ));
        let records = BytesMut::from(&builder.build()[..]);
        client
            .produce(
                topic,
                Some((n % u64::from(partitions)) as u32),
                b"",
                AckLevel::Written,
                records,
            )
            .await
            .unwrap();
    }
}

fn fast() -> GroupConfig {
    GroupConfig {
        heartbeat_interval_ms: 50,
        max_wait_ms: 50,
        auto_commit_interval_ms: 50,
        ..GroupConfig::default()
    }
}

fn value(record: &GroupRecord) -> String {
    String::from_utf8(record.record.value.clone().unwrap().to_vec()).unwrap()
}

/// Polls `consumer` until it has `count` records or `limit` passes.
async fn poll_until(
    consumer: &mut GroupConsumer,
    count: usize,
    limit: Duration,
) -> Vec<GroupRecord> {
    let started = Instant::now();
    let mut got = Vec::new();
    while got.len() < count && started.elapsed() < limit {
        got.extend(consumer.poll().await.unwrap());
    }
    got
}

#[test]
fn every_group_receives_every_message_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("fanout", 4, &[]).await.unwrap();
        produce(&client, "fanout", 4, 0, 1000).await;
        let mut tasks = Vec::new();
        for group in ["billing", "search", "audit"] {
            let address = address.clone();
            tasks.push(runtime::spawn(async move {
                let client = Client::connect(&address).await.unwrap();
                let mut consumer = GroupConsumer::join(client, group, &["fanout"], fast())
                    .await
                    .unwrap();
                let got = poll_until(&mut consumer, 1000, Duration::from_secs(30)).await;
                consumer.close().await.unwrap();
                got
            }));
        }
        for task in tasks {
            let got = task.await.unwrap();
            assert_eq!(got.len(), 1000, "exactly once: no loss, no duplicate");
            let values: BTreeSet<String> = got.iter().map(value).collect();
            assert_eq!(
                values,
                (0..1000).map(|n| format!("m{n}")).collect::<BTreeSet<_>>()
            );
        }
    });
}

#[test]
fn four_members_share_sixteen_partitions_each_message_going_to_one() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("shared", 16, &[]).await.unwrap();
        let mut members = Vec::new();
        for _ in 0..4 {
            let client = Client::connect(&address).await.unwrap();
            members.push(
                GroupConsumer::join(client, "workers", &["shared"], fast())
                    .await
                    .unwrap(),
            );
        }
        // Let every member learn the last generation's assignment.
        let deadline = Instant::now() + Duration::from_secs(10);
        while members.iter().any(|m| m.generation() != 4) && Instant::now() < deadline {
            for member in &mut members {
                assert!(member.poll().await.unwrap().is_empty());
            }
        }
        let assignments: Vec<Vec<(String, u32)>> =
            members.iter().map(GroupConsumer::assignment).collect();
        assert!(
            assignments.iter().all(|owned| owned.len() == 4),
            "balanced: {assignments:?}"
        );
        let all: BTreeSet<(String, u32)> = assignments.iter().flatten().cloned().collect();
        assert_eq!(all.len(), 16, "every partition owned exactly once");

        produce(&client, "shared", 16, 0, 4000).await;
        let mut got: Vec<Vec<GroupRecord>> = vec![Vec::new(); 4];
        let deadline = Instant::now() + Duration::from_secs(30);
        while got.iter().map(Vec::len).sum::<usize>() < 4000 && Instant::now() < deadline {
            for (index, member) in members.iter_mut().enumerate() {
                got[index].extend(member.poll().await.unwrap());
            }
        }
        let mut seen = BTreeSet::new();
        for (index, records) in got.iter().enumerate() {
            for record in records {
                assert!(
                    assignments[index].contains(&(record.topic.clone(), record.partition)),
                    "a member reads only its partitions"
                );
                assert!(
                    seen.insert(value(record)),
                    "{} went to two members",
                    value(record)
                );
            }
        }
        assert_eq!(seen.len(), 4000);
        for member in members {
            member.close().await.unwrap();
        }
    });
}

#[test]
fn a_dead_members_partitions_move_and_resume_from_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("jobs", 4, &[]).await.unwrap();
        let manual = GroupConfig {
            auto_commit: false,
            session_timeout_ms: 5000,
            ..fast()
        };
        let mut survivor = GroupConsumer::join(
            Client::connect(&address).await.unwrap(),
            "crew",
            &["jobs"],
            manual.clone(),
        )
        .await
        .unwrap();
        let mut doomed = GroupConsumer::join(
            Client::connect(&address).await.unwrap(),
            "crew",
            &["jobs"],
            manual.clone(),
        )
        .await
        .unwrap();
        let mut survivor_got = Vec::new();
        while survivor.generation() != doomed.generation() {
            survivor_got.extend(survivor.poll().await.unwrap());
        }
        assert_eq!(
            (survivor.assignment().len(), doomed.assignment().len()),
            (2, 2)
        );
        // Produced once both share a generation, so only the death below can cause rereads.
        produce(&client, "jobs", 4, 0, 400).await;
        // The doomed member reads its first 200 and commits them...
        let mut doomed_got = poll_until(&mut doomed, 200, Duration::from_secs(20)).await;
        assert_eq!(doomed_got.len(), 200);
        doomed.commit().await.unwrap();
        // ...reads 100 more without committing, and dies: its connection closes, it never leaves.
        produce(&client, "jobs", 4, 400, 200).await;
        let uncommitted = poll_until(&mut doomed, 100, Duration::from_secs(20)).await;
        assert_eq!(uncommitted.len(), 100);
        doomed_got.extend(uncommitted.iter().cloned());
        drop(doomed);

        // After the session timeout the survivor owns all four partitions.
        let deadline = Instant::now() + Duration::from_secs(20);
        while survivor.assignment().len() < 4 && Instant::now() < deadline {
            survivor_got.extend(survivor.poll().await.unwrap());
        }
        assert_eq!(
            survivor.assignment().len(),
            4,
            "the dead member's partitions moved"
        );
        produce(&client, "jobs", 4, 600, 200).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while survivor_got
            .iter()
            .chain(&doomed_got)
            .map(value)
            .collect::<BTreeSet<_>>()
            .len()
            < 800
            && Instant::now() < deadline
        {
            survivor_got.extend(survivor.poll().await.unwrap());
        }
        let values: BTreeSet<String> = survivor_got.iter().chain(&doomed_got).map(value).collect();
        assert_eq!(values.len(), 800, "nothing lost");
        // Duplicates are exactly what the dead member read after its last commit.
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for record in survivor_got.iter().chain(&doomed_got) {
            *counts.entry(value(record)).or_default() += 1;
        }
        let duplicates: BTreeSet<String> = counts
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(v, _)| v)
            .collect();
        assert_eq!(
            duplicates,
            uncommitted.iter().map(value).collect::<BTreeSet<_>>()
        );
    });
}

#[test]
fn committed_offsets_survive_a_restart_and_a_reset_to_a_timestamp_replays() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("history", 2, &[]).await.unwrap();
        produce(&client, "history", 2, 0, 100).await;
        let mut consumer = GroupConsumer::join(client.clone(), "readers", &["history"], fast())
            .await
            .unwrap();
        assert_eq!(
            poll_until(&mut consumer, 100, Duration::from_secs(20))
                .await
                .len(),
            100
        );
        consumer.close().await.unwrap();
        let committed = client.fetch_offsets("readers", Vec::new()).await.unwrap();
        assert_eq!(
            committed,
            vec![
                ("history".to_string(), 0, 50),
                ("history".to_string(), 1, 50)
            ]
        );
    });
    broker.restart();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        let committed = client.fetch_offsets("readers", Vec::new()).await.unwrap();
        assert_eq!(
            committed,
            vec![
                ("history".to_string(), 0, 50),
                ("history".to_string(), 1, 50)
            ],
            "kept across the restart"
        );
        // Message n has timestamp 1_000_000 + n and sits in partition n % 2 at offset n / 2.
        let reset = reset_offsets(&client, "readers", "history", ResetTo::Timestamp(1_000_060))
            .await
            .unwrap();
        assert_eq!(
            reset,
            vec![
                ("history".to_string(), 0, 30),
                ("history".to_string(), 1, 30)
            ]
        );
        let mut consumer = GroupConsumer::join(client.clone(), "readers", &["history"], fast())
            .await
            .unwrap();
        let replayed = poll_until(&mut consumer, 40, Duration::from_secs(20)).await;
        let values: BTreeSet<String> = replayed.iter().map(value).collect();
        assert_eq!(
            values,
            (60..100).map(|n| format!("m{n}")).collect::<BTreeSet<_>>()
        );
        // A member can also replay by itself: back to message 80 (offset 40) in partition 0.
        assert_eq!(
            consumer
                .seek_to_timestamp("history", 0, 1_000_080)
                .await
                .unwrap(),
            40
        );
        let again = poll_until(&mut consumer, 10, Duration::from_secs(20)).await;
        assert_eq!(
            again.iter().map(value).collect::<Vec<_>>(),
            (80..100)
                .step_by(2)
                .map(|n| format!("m{n}"))
                .collect::<Vec<_>>()
        );
        // Resetting a group with an active member is refused.
        let refused = reset_offsets(&client, "readers", "history", ResetTo::Earliest).await;
        assert!(
            matches!(refused, Err(ClientError::Server(ref e)) if e.code == ErrorCode::GroupNotEmpty),
            "{refused:?}"
        );
        consumer.close().await.unwrap();
        let shifted = reset_offsets(&client, "readers", "history", ResetTo::Shift(-10))
            .await
            .unwrap();
        assert_eq!(
            shifted,
            vec![
                ("history".to_string(), 0, 40),
                ("history".to_string(), 1, 40)
            ]
        );
    });
}

#[test]
fn stale_members_and_unsafe_changes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("fenced", 2, &[]).await.unwrap();
        let first = client
            .join_group("team", "", &["fenced".into()], 10_000, "range")
            .await
            .unwrap();
        let second = client
            .join_group("team", "", &["fenced".into()], 10_000, "range")
            .await
            .unwrap();
        assert_eq!(second.generation, first.generation + 1);
        let code = |result: Result<(), ClientError>| match result {
            Err(ClientError::Server(error)) => error.code,
            other => panic!("expected an error, got {other:?}"),
        };
        let stale = client
            .commit_offsets(
                "team",
                &first.member_id,
                first.generation,
                vec![("fenced".into(), 0, 1)],
            )
            .await;
        assert_eq!(code(stale), ErrorCode::IllegalGeneration);
        client
            .commit_offsets(
                "team",
                &second.member_id,
                second.generation,
                vec![("fenced".into(), 0, 1)],
            )
            .await
            .unwrap();
        assert_eq!(
            code(
                client
                    .commit_offsets("team", "", 0, vec![("fenced".into(), 0, 5)])
                    .await
            ),
            ErrorCode::GroupNotEmpty
        );
        assert_eq!(
            code(
                client
                    .commit_offsets("team", "ghost", second.generation, vec![])
                    .await
            ),
            ErrorCode::UnknownMember
        );
        assert_eq!(
            code(client.delete_group("team").await),
            ErrorCode::GroupNotEmpty
        );
        let other_strategy = client
            .join_group("team", "", &["fenced".into()], 10_000, "round-robin")
            .await
            .map(drop);
        assert_eq!(code(other_strategy), ErrorCode::InvalidConfig);
        assert_eq!(
            code(
                client
                    .join_group("team", "", &["fenced".into()], 10_000, "fastest")
                    .await
                    .map(drop)
            ),
            ErrorCode::InvalidConfig
        );
        assert_eq!(
            code(client.heartbeat("team", "ghost", 1).await.map(drop)),
            ErrorCode::UnknownMember
        );

        let description = client.describe_group("team").await.unwrap();
        assert_eq!(
            (description.summary.members, description.strategy.as_str()),
            (2, "range")
        );
        assert_eq!(description.offsets, vec![("fenced".to_string(), 0, 1)]);
        client.leave_group("team", &first.member_id).await.unwrap();
        client.leave_group("team", &second.member_id).await.unwrap();
        let groups = client.list_groups().await.unwrap();
        assert_eq!(
            (groups[0].name.as_str(), groups[0].state.as_str()),
            ("team", "empty")
        );
        client.delete_group("team").await.unwrap();
        assert!(
            client
                .fetch_offsets("team", Vec::new())
                .await
                .unwrap()
                .is_empty()
        );
        let unknown = client.describe_group("team").await.map(drop);
        assert_eq!(code(unknown), ErrorCode::UnknownGroup);
    });
}

#[test]
fn the_lag_gauge_is_log_end_minus_committed() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: String::new(),
        shards: 2,
        group_lag_interval_ms: 100,
        ..Default::default()
    };
    let broker = TestBroker::start_with(config);
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("lagging", 1, &[]).await.unwrap();
        produce(&client, "lagging", 1, 0, 50).await;
        client
            .commit_offsets("slowpokes", "", 0, vec![("lagging".into(), 0, 20)])
            .await
            .unwrap();
        produce(&client, "lagging", 1, 50, 10).await;
        let (_, end, _) = client
            .list_offsets("lagging", 0, OffsetSpec::Latest)
            .await
            .unwrap();
        assert_eq!(end, 60);
    });
    // The gauge is published every 100 ms; wait for it (generously, for a loaded machine).
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        let mut stream = std::net::TcpStream::connect(broker.http_address()).unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        match response
            .lines()
            .find(|line| line.starts_with("ringmq_group_lag{"))
        {
            Some(line) if line.ends_with(" 40") || Instant::now() > deadline => {
                break line.to_string();
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert!(
        line.contains("group=\"slowpokes\"") && line.contains("topic=\"lagging\""),
        "{line}"
    );
    assert!(line.ends_with(" 40"), "60 written, 20 committed: {line}");
}

#[test]
fn the_offsets_log_is_compacted_on_load_and_keeps_the_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let (partition, _) = ringmq::broker::groups::coordinator_of("busy", 2);
    let log_dir = dir
        .path()
        .join(ringmq::broker::groups::OFFSETS_LOG)
        .join(partition.to_string());
    let records_in = |dir: &std::path::Path| {
        let mut out = Vec::new();
        ringmq::storage::fsck::inspect(dir, ringmq::storage::fsck::Detail::Quiet, &mut out)
            .unwrap()
            .records
    };
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("ticks", 2, &[]).await.unwrap();
        for offset in 1..=300u64 {
            client
                .commit_offsets(
                    "busy",
                    "",
                    0,
                    vec![("ticks".into(), 0, offset), ("ticks".into(), 1, offset * 2)],
                )
                .await
                .unwrap();
        }
    });
    assert_eq!(
        records_in(&log_dir),
        600,
        "every commit is a record until compaction"
    );
    broker.restart();
    assert_eq!(
        records_in(&log_dir),
        2,
        "compacted on load to the live entries"
    );
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        let committed = client.fetch_offsets("busy", Vec::new()).await.unwrap();
        assert_eq!(
            committed,
            vec![("ticks".to_string(), 0, 300), ("ticks".to_string(), 1, 600)]
        );
        client.delete_group("busy").await.unwrap();
    });
    broker.restart();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        assert!(
            client
                .fetch_offsets("busy", Vec::new())
                .await
                .unwrap()
                .is_empty(),
            "a deleted group stays deleted"
        );
    });
}
