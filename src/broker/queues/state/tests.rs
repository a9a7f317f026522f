//! The state machine with time passed in: every transition, the bounds, and restoring.

use super::*;
use crate::broker::queues::spans::Status;

const A: ConsumerId = 1;
const B: ConsumerId = 2;

fn settings() -> QueueSettings {
    QueueSettings {
        visibility_timeout_ms: 1_000,
        max_deliveries: 3,
        max_in_flight: 100,
        max_unacked: 50,
        window_messages_max: 1_000,
        dead_letter_topic: "t.g.dlq".into(),
        delay_ms: 0,
        fifo: crate::broker::queues::settings::FifoKey::Off,
    }
}

/// Plans and acquires like a receive whose read found every planned offset.
fn receive(
    state: &mut QueueState,
    consumer: ConsumerId,
    wanted: u64,
    hw: u64,
    now: u64,
) -> Vec<u64> {
    let offsets: Vec<u64> = state
        .plan(consumer, wanted, 0, hw)
        .into_iter()
        .flat_map(|(first, last)| first..=last)
        .collect();
    state
        .acquire(consumer, &offsets, 1_000, now)
        .into_iter()
        .map(|delivered| delivered.offset)
        .collect()
}

#[test]
fn competing_consumers_get_disjoint_messages_and_acks_collapse_the_prefix() {
    let mut state = QueueState::new(settings(), 0);
    assert_eq!(
        receive(&mut state, A, 10, 100, 0),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        receive(&mut state, B, 10, 100, 0),
        (10..20).collect::<Vec<_>>()
    );
    assert_eq!(state.view(100).in_flight, 20);
    state.settle(B, 10, 19, Action::Ack, 1).unwrap();
    assert_eq!(state.settled_below(), 0, "0..10 still locked");
    state.settle(A, 0, 9, Action::Ack, 1).unwrap();
    assert_eq!(state.settled_below(), 20);
    assert_eq!(state.spans.len(), 0);
    assert_eq!(state.stats.acks, 20);
    assert_eq!(state.view(100).available, 80);
}

#[test]
fn settling_what_another_holds_or_an_expired_lock_is_refused_and_changes_nothing() {
    let mut state = QueueState::new(settings(), 0);
    receive(&mut state, A, 5, 100, 0);
    let kind = |result: BrokerResult<Settled>| result.unwrap_err().kind;
    assert_eq!(
        kind(state.settle(B, 0, 0, Action::Ack, 1)),
        ErrorKind::LockNotHeld
    );
    assert_eq!(
        kind(state.settle(A, 3, 7, Action::Ack, 1)),
        ErrorKind::LockNotHeld
    );
    assert_eq!(
        kind(state.settle(A, 3, 2, Action::Ack, 1)),
        ErrorKind::InvalidRequest
    );
    // Past the deadline but before the timer: expired.
    assert_eq!(
        kind(state.settle(A, 0, 0, Action::Ack, 1_000)),
        ErrorKind::LockExpired
    );
    // After the timer: still told it expired, and the messages are available again.
    assert!(state.expire(1_000).is_empty());
    assert_eq!(
        kind(state.settle(A, 0, 4, Action::Ack, 1_001)),
        ErrorKind::LockExpired
    );
    assert_eq!(state.stats.lock_expiries, 5);
    assert_eq!(state.view(100).in_flight, 0);
    // B gets them again as second deliveries; A's late ack is now not held.
    let again = state.plan(B, 5, 0, 100);
    assert_eq!(again, vec![(0, 4)]);
    let delivered = state.acquire(B, &[0, 1, 2, 3, 4], 1_000, 2_000);
    assert!(
        delivered
            .iter()
            .all(|d| d.deliveries == 2 && d.first_delivery_ms == 0)
    );
    assert_eq!(
        kind(state.settle(A, 0, 0, Action::Ack, 2_001)),
        ErrorKind::LockNotHeld
    );
    assert_eq!(state.stats.redeliveries, 5);
}

#[test]
fn releases_redeliver_until_max_deliveries_then_dead_letter() {
    let mut state = QueueState::new(settings(), 0);
    for delivery in 1..=3u64 {
        assert_eq!(receive(&mut state, A, 1, 1, delivery * 10), vec![0]);
        let settled = state
            .settle(A, 0, 0, Action::Release { delay_ms: 0 }, delivery * 10 + 1)
            .unwrap();
        if delivery < 3 {
            assert!(settled.dead_letters.is_empty());
        } else {
            assert_eq!(
                settled.dead_letters,
                vec![DeadLetter {
                    first: 0,
                    last: 0,
                    reason: Reason::Released
                }]
            );
        }
    }
    assert!(
        receive(&mut state, A, 1, 1, 100).is_empty(),
        "dead-lettering is not deliverable"
    );
    let span = state.spans_in(0, 0)[0].1;
    assert_eq!(
        (
            span.deliveries,
            span.first_delivery_ms,
            span.last_delivery_ms
        ),
        (3, 10, 30)
    );
    assert_eq!(state.finish_dead_letter(0, 0), 1);
    assert_eq!(state.settled_below(), 1);
    assert_eq!(state.stats.dead_lettered, 1);
}

#[test]
fn a_delayed_release_and_a_rejection() {
    let mut state = QueueState::new(settings(), 0);
    receive(&mut state, A, 2, 2, 0);
    state
        .settle(A, 0, 0, Action::Release { delay_ms: 500 }, 10)
        .unwrap();
    assert!(receive(&mut state, B, 1, 2, 20).is_empty(), "delayed");
    assert!(state.expire(509).is_empty());
    assert!(receive(&mut state, B, 1, 2, 509).is_empty());
    state.expire(510);
    assert_eq!(
        state.stats.lock_expiries, 0,
        "a delay ending is no lock expiry"
    );
    assert_eq!(receive(&mut state, B, 1, 2, 511), vec![0]);
    let rejected = state.settle(A, 1, 1, Action::Reject, 512).unwrap();
    assert_eq!(rejected.dead_letters[0].reason, Reason::Rejected);
    // Extending moves the deadline.
    state
        .settle(
            B,
            0,
            0,
            Action::Extend {
                visibility_ms: 5_000,
            },
            1_000,
        )
        .unwrap();
    state.expire(2_000);
    assert_eq!(state.view(2).in_flight, 1);
    state.settle(B, 0, 0, Action::Ack, 5_999).unwrap();
}

#[test]
fn lock_expiry_on_the_last_delivery_dead_letters() {
    let mut state = QueueState::new(settings(), 0);
    for round in 0..3u64 {
        assert_eq!(receive(&mut state, A, 4, 4, round * 2_000).len(), 4);
        let dead = state.expire(round * 2_000 + 1_000);
        assert_eq!(dead.is_empty(), round < 2, "round {round}");
    }
    assert_eq!(state.stats.lock_expiries, 12);
    assert_eq!(state.finish_dead_letter(0, 3), 4);
    assert_eq!(state.settled_below(), 4);
}

#[test]
fn limits_bound_locks_per_group_per_consumer_and_the_window() {
    let mut state = QueueState::new(
        QueueSettings {
            max_in_flight: 8,
            max_unacked: 5,
            window_messages_max: 12,
            ..settings()
        },
        0,
    );
    assert_eq!(receive(&mut state, A, 100, 1_000, 0).len(), 5);
    assert_eq!(
        receive(&mut state, B, 100, 1_000, 0).len(),
        3,
        "group limit"
    );
    assert!(!state.has_acquirable(B, 1_000));
    state.settle(B, 5, 7, Action::Ack, 1).unwrap();
    assert_eq!(receive(&mut state, B, 100, 1_000, 2), vec![8, 9, 10]);
    state.settle(B, 8, 10, Action::Ack, 3).unwrap();
    // 0..5 still locked: the window ends at 12 whatever the log holds.
    assert_eq!(receive(&mut state, B, 100, 1_000, 4), vec![11]);
    assert!(receive(&mut state, B, 100, 1_000, 4).is_empty());
    state.settle(A, 0, 4, Action::Ack, 5).unwrap();
    assert_eq!(state.settled_below(), 11);
    assert_eq!(receive(&mut state, A, 100, 1_000, 6).len(), 5);
}

#[test]
fn retention_and_damage_archive_what_is_gone() {
    let mut state = QueueState::new(settings(), 0);
    receive(&mut state, A, 3, 10, 0);
    // Retention deleted 0..5: the locked ones are gone too, and the two never delivered.
    assert_eq!(state.plan(A, 2, 5, 10), vec![(5, 6)]);
    assert_eq!(state.settled_below(), 5);
    assert_eq!(state.stats.lost, 5);
    assert_eq!(state.view(10).in_flight, 0);
    // A read that skipped 5..7 (damage) archives them.
    state.acquire(A, &[7], 1_000, 1);
    assert_eq!(state.stats.lost, 7);
    assert_eq!(state.settled_below(), 7);
}

#[test]
fn restoring_a_snapshot_rebuilds_the_window_with_locks_released() {
    let mut state = QueueState::new(settings(), 3);
    receive(&mut state, A, 10, 100, 5);
    state.settle(A, 4, 5, Action::Ack, 6).unwrap();
    state.settle(A, 7, 7, Action::Reject, 6).unwrap();
    state.finish_dead_letter(7, 7);
    state
        .settle(A, 8, 8, Action::Release { delay_ms: 0 }, 6)
        .unwrap();
    receive(&mut state, B, 1, 100, 7);
    let mut restored: Option<QueueState> = None;
    for entry in state.snapshot() {
        match entry {
            Entry::Define { start, settings } => restored = Some(QueueState::new(settings, start)),
            entry => restored.as_mut().unwrap().restore(&entry),
        }
    }
    let restored = restored.unwrap();
    assert_eq!(restored.settled_below(), 3);
    let shape: Vec<(u64, u64, u32, bool)> = restored
        .spans
        .iter()
        .map(|(first, span)| (first, span.last, span.deliveries, span.status.is_settled()))
        .collect();
    assert_eq!(
        shape,
        vec![
            (3, 3, 1, false),
            (4, 5, 0, true),
            (6, 6, 1, false),
            (7, 7, 0, true),
            (8, 8, 2, false),
            (9, 12, 1, false),
        ]
    );
    assert_eq!(restored.view(100).in_flight, 0);
    assert!(
        restored
            .spans
            .iter()
            .all(|(_, s)| !matches!(s.status, Status::Locked { .. }))
    );
}
