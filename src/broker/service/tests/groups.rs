//! The service's group operations, called directly: both membership kinds, commits, offset
//! deletion.

use bytes::Bytes;

use super::*;
fn join(group: &str, member_id: &str, topics: &[&str]) -> JoinGroup {
    JoinGroup {
        group: group.into(),
        member_id: member_id.into(),
        topics: topics.iter().map(|t| t.to_string()).collect(),
        session_timeout_ms: 10_000,
        strategy: "range".into(),
    }
}

#[test]
fn broker_assigned_members_split_the_partitions_commit_and_leave() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 4)).await.unwrap();
        let first = service
            .join_group(&ctx, join("g", "", &["t"]))
            .await
            .unwrap();
        assert_eq!(first.partitions.len(), 4);
        let second = service
            .join_group(&ctx, join("g", "", &["t"]))
            .await
            .unwrap();
        assert_ne!(first.member_id, second.member_id);
        assert!(second.generation > first.generation);
        let first = service
            .heartbeat(&ctx, "g".into(), first.member_id)
            .await
            .unwrap();
        assert_eq!(first.generation, second.generation);
        assert_eq!(first.partitions.len() + second.partitions.len(), 4);
        assert!(
            first
                .partitions
                .iter()
                .all(|p| !second.partitions.contains(p))
        );

        let offsets = vec![("t".to_string(), 0, 7), ("t".to_string(), 1, 9)];
        let generation = i64::from(first.generation);
        let member = first.member_id.clone();
        service
            .commit_offsets(
                &ctx,
                "g".into(),
                Committer::member(member.clone()),
                generation,
                offsets.clone(),
            )
            .await
            .unwrap();
        let stale = service
            .commit_offsets(
                &ctx,
                "g".into(),
                Committer::member(member.clone()),
                generation - 1,
                offsets.clone(),
            )
            .await
            .unwrap_err();
        assert_eq!(stale.kind, ErrorKind::IllegalGeneration);
        let committed = service
            .committed_offsets(&ctx, "g".into(), Vec::new())
            .await
            .unwrap();
        assert_eq!(committed, offsets);
        let one = service
            .committed_offsets(&ctx, "g".into(), vec![("t".into(), 1)])
            .await
            .unwrap();
        assert_eq!(one, [("t".to_string(), 1, 9)]);

        let described = service.describe_group(&ctx, "g".into()).await.unwrap();
        assert_eq!(described.summary.members, 2);
        assert_eq!(described.offsets, offsets);
        let not_empty = service.delete_group(&ctx, "g".into()).await.unwrap_err();
        assert_eq!(not_empty.kind, ErrorKind::GroupNotEmpty);
        service
            .leave_group(&ctx, "g".into(), first.member_id)
            .await
            .unwrap();
        let alone = service
            .heartbeat(&ctx, "g".into(), second.member_id.clone())
            .await
            .unwrap();
        assert_eq!(alone.partitions.len(), 4, "the leaver's partitions moved");
        service
            .leave_group(&ctx, "g".into(), second.member_id)
            .await
            .unwrap();
        let listed = service.list_groups(&ctx).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].name.as_str(), listed[0].members), ("g", 0));
        service.delete_group(&ctx, "g".into()).await.unwrap();
        let gone = service.describe_group(&ctx, "g".into()).await.unwrap_err();
        assert_eq!(gone.kind, ErrorKind::UnknownGroup);
        let left = service
            .committed_offsets(&ctx, "g".into(), Vec::new())
            .await
            .unwrap();
        assert!(left.is_empty(), "deleting a group deletes its offsets");
    });
}

#[test]
fn group_operations_refuse_bad_names_and_unknown_members() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let bad = service
            .join_group(&ctx, join("a b", "", &["t"]))
            .await
            .unwrap_err();
        assert_eq!(bad.kind, ErrorKind::InvalidGroupName);
        let ghost = service
            .heartbeat(&ctx, "g".into(), "ghost".into())
            .await
            .unwrap_err();
        assert_eq!(ghost.kind, ErrorKind::UnknownMember);
        let ghost = service
            .round_heartbeat(&ctx, "g".into(), ("ghost".into(), None), 1)
            .await
            .unwrap_err();
        assert_eq!(ghost.kind, ErrorKind::UnknownMember);
    });
}

#[test]
fn a_kafka_round_of_one_joins_syncs_heartbeats_and_leaves() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let round = JoinRound {
            group: "k".into(),
            member_id: String::new(),
            client_id: ctx.client_id.clone(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
        };
        let joined = service.join_round(&ctx, round).await.unwrap();
        assert_eq!(joined.leader, joined.member_id, "the only member leads");
        assert_eq!(joined.protocol_name, "range");
        assert_eq!(
            joined.members,
            [(joined.member_id.clone(), Bytes::from_static(b"meta"))]
        );
        let generation = i32::try_from(joined.generation).unwrap();
        let mine = Bytes::from_static(b"assignment");
        let synced = service
            .sync_round(
                &ctx,
                "k".into(),
                (joined.member_id.clone(), None),
                generation,
                vec![(joined.member_id.clone(), mine.clone())],
            )
            .await
            .unwrap();
        assert_eq!(synced.assignment, mine);
        service
            .round_heartbeat(
                &ctx,
                "k".into(),
                (joined.member_id.clone(), None),
                generation,
            )
            .await
            .unwrap();
        let stale = service
            .round_heartbeat(
                &ctx,
                "k".into(),
                (joined.member_id.clone(), None),
                generation + 1,
            )
            .await
            .unwrap_err();
        assert_eq!(stale.kind, ErrorKind::IllegalGeneration);

        let view = service
            .describe_group_for_kafka(&ctx, "k".into())
            .await
            .unwrap();
        assert_eq!(view.state, "Stable");
        assert_eq!(view.members.len(), 1);
        assert_eq!(view.members[0].client_id, "unit-test");
        assert_eq!(view.members[0].assignment, mine);
        let listed = service.list_groups_for_kafka(&ctx).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].protocol_type, "consumer");

        service
            .leave_round(&ctx, "k".into(), vec![(joined.member_id, None)])
            .await
            .unwrap();
        let view = service
            .describe_group_for_kafka(&ctx, "k".into())
            .await
            .unwrap();
        assert_eq!((view.state, view.members.len()), ("Empty", 0));
        let unknown = service
            .describe_group_for_kafka(&ctx, "nobody".into())
            .await
            .unwrap();
        assert_eq!(unknown.state, "Dead");
    });
}

#[test]
fn offsets_are_deleted_only_where_no_member_may_consume_them() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let offsets = vec![("a".to_string(), 0, 1), ("b".to_string(), 0, 2)];
        service
            .commit_offsets(&ctx, "k".into(), Committer::default(), -1, offsets)
            .await
            .unwrap();
        let round = JoinRound {
            group: "k".into(),
            member_id: String::new(),
            client_id: "c".into(),
            instance_id: None,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::new())],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
        };
        let joined = service.join_round(&ctx, round).await.unwrap();
        // A Kafka member's subscription is opaque: every topic counts as its own.
        let refused = service
            .delete_offsets(&ctx, "k".into(), vec![("b".into(), 0)])
            .await
            .unwrap();
        assert_eq!(
            refused[0].1.as_ref().unwrap().kind,
            ErrorKind::GroupSubscribed
        );
        service
            .leave_round(&ctx, "k".into(), vec![(joined.member_id, None)])
            .await
            .unwrap();
        let deleted = service
            .delete_offsets(&ctx, "k".into(), vec![("b".into(), 0), ("c".into(), 9)])
            .await
            .unwrap();
        assert!(deleted.iter().all(|(_, error)| error.is_none()));
        let left = service
            .committed_offsets(&ctx, "k".into(), Vec::new())
            .await
            .unwrap();
        assert_eq!(left, [("a".to_string(), 0, 1)]);
        let unknown = service
            .delete_offsets(&ctx, "none".into(), vec![("a".into(), 0)])
            .await
            .unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::UnknownGroup);
    });
}

/// A static member that rejoins under another instance id gives up the old one: a newcomer
/// naming the old instance id is a new member, and does not take the rejoined member's place.
#[test]
fn a_member_that_changes_its_instance_id_no_longer_answers_to_the_old_one() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        let client_id = ctx.client_id.clone();
        let round = move |member_id: &str, instance: &str| JoinRound {
            group: "s".into(),
            member_id: member_id.into(),
            client_id: client_id.clone(),
            instance_id: Some(instance.into()),
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"meta"))],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
        };
        let first = service.join_round(&ctx, round("", "one")).await.unwrap();
        let again = service
            .join_round(&ctx, round(&first.member_id, "two"))
            .await
            .unwrap();
        assert_eq!(again.member_id, first.member_id);
        // The newcomer waits for the round; meanwhile the group is looked at.
        let newcomer = runtime::spawn({
            let (service, ctx) = (service.clone(), ctx.clone());
            async move { service.join_round(&ctx, round("", "one")).await }
        });
        runtime::sleep(Duration::from_millis(100)).await;
        let view = service
            .describe_group_for_kafka(&ctx, "s".into())
            .await
            .unwrap();
        let members: Vec<&str> = view.members.iter().map(|m| m.member_id.as_str()).collect();
        assert_eq!(members.len(), 2, "{members:?}");
        assert!(members.contains(&first.member_id.as_str()), "{members:?}");
        drop(newcomer);
    });
}
