//! The service's share-group operations, called directly: a member joins, fetches (the queue
//! group made by `share.auto.offset.reset`), acknowledges, releases and rejects; a member that
//! leaves gives its records back; an empty group is deleted with its queue group.

use super::*;

fn beat(member: &str, epoch: i32) -> ShareBeat {
    ShareBeat {
        member_id: member.into(),
        member_epoch: epoch,
        client_id: "unit".into(),
        rack_id: None,
        topics: (epoch == 0).then(|| vec!["t".to_string()]),
    }
}

fn share_fetch(member: &str) -> ShareFetch {
    ShareFetch {
        group: "g".into(),
        member: member.into(),
        partitions: vec![("t".into(), 0)],
        max_records: 10,
        max_bytes: 1 << 20,
        wait_ms: 0,
    }
}

/// (offset, delivery count) of what a fetch acquired.
async fn fetched(service: &Service, ctx: &RequestContext, member: &str) -> Vec<(u64, u32)> {
    let (_, _, mut results) = service.share_fetch(ctx, share_fetch(member)).await.unwrap();
    let (_, messages) = results.remove(0);
    messages
        .unwrap()
        .iter()
        .map(|m| (m.offset, m.deliveries))
        .collect()
}

fn ack(first: u64, last: u64, action: SettleAction) -> ShareAck {
    ShareAck {
        topic: "t".into(),
        partition: 0,
        first,
        last,
        action,
    }
}

#[test]
fn share_members_fetch_acknowledge_and_give_back() {
    with_service(BrokerConfig::default(), |service, ctx| async move {
        service.create_topic(&ctx, topic("t", 1)).await.unwrap();
        service
            .produce(&ctx, produce("t", 0, &["a", "b", "c", "d"]))
            .await
            .unwrap();
        let joined = service
            .share_heartbeat(&ctx, "g".into(), beat("m1", 0))
            .await;
        assert_eq!(joined.unwrap().assignment, Some(vec![("t".to_string(), 0)]));
        // Kafka's default start is latest: nothing before the group's first fetch.
        assert_eq!(fetched(&service, &ctx, "m1").await, vec![]);
        service
            .produce(&ctx, produce("t", 0, &["e", "f", "g"]))
            .await
            .unwrap();
        assert_eq!(
            fetched(&service, &ctx, "m1").await,
            vec![(4, 1), (5, 1), (6, 1)]
        );
        let acks = vec![
            ack(4, 4, SettleAction::Ack),
            ack(5, 5, SettleAction::Release { delay_ms: 0 }),
        ];
        let settled = service
            .share_acknowledge(&ctx, "g", "m1", acks)
            .await
            .unwrap();
        assert!(
            settled.iter().all(|(_, result)| result.is_ok()),
            "{settled:?}"
        );
        // Only members fetch and acknowledge: m2 joins first.
        let stranger = service
            .share_fetch(&ctx, share_fetch("m2"))
            .await
            .unwrap_err();
        assert_eq!(stranger.kind, ErrorKind::UnknownMember);
        let stranger = service
            .share_acknowledge(&ctx, "g", "m2", vec![ack(6, 6, SettleAction::Ack)])
            .await
            .unwrap_err();
        assert_eq!(stranger.kind, ErrorKind::UnknownMember);
        service
            .share_heartbeat(&ctx, "g".into(), beat("m2", 0))
            .await
            .unwrap();
        // Another member's acknowledgement of m1's record is refused, per partition.
        let other = service
            .share_acknowledge(&ctx, "g", "m2", vec![ack(6, 6, SettleAction::Ack)])
            .await
            .unwrap();
        assert_eq!(
            other[0].1.as_ref().unwrap_err().kind,
            ErrorKind::LockNotHeld
        );
        assert_eq!(fetched(&service, &ctx, "m2").await, vec![(5, 2)]);
        // m1 leaves: 6 is available again at once.
        let left = service
            .share_heartbeat(&ctx, "g".into(), beat("m1", -1))
            .await;
        assert_eq!(left.unwrap().member_epoch, -1);
        assert_eq!(fetched(&service, &ctx, "m2").await, vec![(6, 2)]);
        let rejected = service
            .share_acknowledge(&ctx, "g", "m2", vec![ack(5, 6, SettleAction::Reject)])
            .await
            .unwrap();
        assert!(rejected[0].1.is_ok());
        assert_eq!(
            fetched(&service, &ctx, "m2").await,
            vec![],
            "rejected: archived"
        );
        let offsets = service.share_group_offsets(&ctx, "g", "t").await.unwrap();
        assert_eq!(offsets, vec![(0, Some(7))]);
        // An empty share group is deleted with its queue group.
        service
            .share_heartbeat(&ctx, "g".into(), beat("m2", -1))
            .await
            .unwrap();
        service.delete_share_group(&ctx, "g".into()).await.unwrap();
        let gone = service
            .describe_queue_group(&ctx, "t", "g")
            .await
            .unwrap_err();
        assert_eq!(gone.kind, ErrorKind::UnknownQueueGroup);
        let unknown = service
            .describe_share_group(&ctx, "g".into())
            .await
            .unwrap_err();
        assert_eq!(unknown.kind, ErrorKind::UnknownGroup);
    });
}
