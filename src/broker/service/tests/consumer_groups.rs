//! The service's KIP-848 operations, called directly: a join, a reconciliation that revokes
//! before it reassigns, commits checked against the member epoch, describe, and a leave.

use std::collections::BTreeSet;

use super::*;

fn beat(member: &str, epoch: i32, owned: Option<&[u32]>) -> Beat {
    Beat {
        member_id: member.into(),
        member_epoch: epoch,
        client_id: "unit".into(),
        rebalance_timeout_ms: -1,
        topics: (epoch == 0).then(|| BTreeSet::from(["t".to_string()])),
        owned: owned.map(|o| o.iter().map(|p| ("t".to_string(), *p)).collect()),
        ..Beat::default()
    }
}

fn partitions(reply: &ConsumerHeartbeatReply) -> Option<Vec<u32>> {
    reply
        .assignment
        .as_ref()
        .map(|a| a.iter().map(|(_, p)| *p).collect())
}

#[test]
fn consumer_protocol_members_reconcile_commit_by_epoch_and_leave() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 2)).await.unwrap();
        let hb = |b: Beat| service.consumer_heartbeat(&ctx, "g".into(), b);
        let a = hb(beat("a", 0, None)).await.unwrap();
        assert_eq!(partitions(&a), Some(vec![0, 1]));
        let b = hb(beat("b", 0, None)).await.unwrap();
        assert_eq!(partitions(&b), Some(vec![]), "nothing is free yet");

        // a must revoke one; b gets it only once a no longer reports it.
        let revoking = hb(beat("a", a.member_epoch, Some(&[0, 1]))).await.unwrap();
        assert_eq!(revoking.member_epoch, a.member_epoch);
        let kept = partitions(&revoking).unwrap();
        assert_eq!(kept.len(), 1);
        let still = hb(beat("b", b.member_epoch, Some(&[]))).await.unwrap();
        assert_eq!(partitions(&still), None, "unchanged: still nothing");
        let commit = |member: &str, epoch: i32| {
            service.commit_offsets(
                &ctx,
                "g".into(),
                member.into(),
                i64::from(epoch),
                vec![("t".to_string(), 0, 5)],
            )
        };
        commit("a", a.member_epoch).await.unwrap();
        let stale = commit("a", a.member_epoch + 1).await.unwrap_err();
        assert_eq!(stale.kind, ErrorKind::StaleMemberEpoch);
        let acked = hb(beat("a", a.member_epoch, Some(&kept))).await.unwrap();
        assert_eq!(acked.member_epoch, b.member_epoch);
        let granted = hb(beat("b", b.member_epoch, Some(&[]))).await.unwrap();
        let mut all = kept.clone();
        all.extend(partitions(&granted).unwrap());
        all.sort();
        assert_eq!(all, vec![0, 1]);

        let described = service
            .describe_consumer_group(&ctx, "g".into())
            .await
            .unwrap();
        assert_eq!(described.state, "Stable");
        assert_eq!(described.members.len(), 2);
        let fenced = hb(beat("a", acked.member_epoch + 1, None))
            .await
            .unwrap_err();
        assert_eq!(fenced.kind, ErrorKind::FencedMemberEpoch);

        let left = hb(beat("a", -1, None)).await.unwrap();
        assert_eq!(left.member_epoch, -1);
        let unknown = hb(beat("a", acked.member_epoch, None)).await.unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::UnknownMember);
        let listed = service.list_groups_for_kafka(&ctx).await.unwrap();
        assert_eq!(listed[0].group_type, "consumer");
    });
}
