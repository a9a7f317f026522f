//! Kafka's share sessions (KIP-932's ShareSessionEpoch): a share consumer's fetches to one
//! broker form a session keyed by (group, member), so an incremental ShareFetch names only
//! the partitions it adds and forgets. Epoch 0 opens a session (replacing the member's old
//! one), a positive epoch must be the one the session expects next, -1 closes it after its
//! acknowledgements. A session unknown here (evicted, or held by another shard after a
//! reconnect) gets SHARE_SESSION_NOT_FOUND, a wrong epoch INVALID_SHARE_SESSION_EPOCH; either
//! way the client opens a new one with epoch 0, as the protocol provides.
//!
//! Each shard's cache is bounded in sessions (`share_groups.sessions_max`, Kafka's
//! `group.share.max.share.sessions`: a new session beyond it gets SHARE_SESSION_LIMIT_REACHED
//! unless an idle one can go) and each session in partitions (`session_partitions_max`).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::errors::{
    INVALID_REQUEST, INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_LIMIT_REACHED,
    SHARE_SESSION_NOT_FOUND,
};

pub const INITIAL_EPOCH: i32 = 0;
pub const FINAL_EPOCH: i32 = -1;

/// A (topic id, partition) a session holds.
pub type SessionPartition = (Uuid, i32);

struct Session {
    next_epoch: i32,
    partitions: BTreeSet<SessionPartition>,
    last_used: Instant,
    /// The member incarnation (queue consumer) its last fetch acquired for: the only one
    /// whose records its end gives back, so an old incarnation's session never releases a
    /// new one's.
    consumer: Option<String>,
}

/// What an ended session gives back: the member incarnation's records on its partitions.
#[derive(Debug, PartialEq, Eq)]
pub struct Ended {
    pub consumer: Option<String>,
    pub partitions: Vec<SessionPartition>,
}

impl From<Session> for Ended {
    fn from(session: Session) -> Ended {
        Ended {
            consumer: session.consumer,
            partitions: session.partitions.into_iter().collect(),
        }
    }
}

/// What a request may do once its session fields are checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    /// Serve it with these partitions (the session's, after the request's changes).
    Serve(Vec<SessionPartition>),
    /// A new session replaced the member's old one (epoch 0): give back what the member holds
    /// on the old one's partitions (`released`), then serve the new one's (`serve`), as
    /// Kafka releases a member's records when its share session ends.
    Reopened {
        serve: Vec<SessionPartition>,
        released: Ended,
    },
    /// The session closed: settle its acknowledgements, fetch nothing, and give back what
    /// the member still holds on the session's partitions.
    Closed(Ended),
}

/// One shard's share sessions.
pub struct ShareSessions {
    sessions: HashMap<(String, String), Session>,
    sessions_max: usize,
    partitions_max: usize,
    /// A session idle this long may make room for a new one.
    evictable_idle: Duration,
}

impl ShareSessions {
    pub fn new(sessions_max: usize, partitions_max: usize, evictable_idle: Duration) -> Self {
        ShareSessions {
            sessions: HashMap::new(),
            sessions_max,
            partitions_max,
            evictable_idle,
        }
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// A ShareFetch's session fields: `added` the partitions it names, `forgotten` those it
    /// drops; `has_acks` whether it carries acknowledgements (not allowed when opening).
    /// Err is the whole request's error code.
    pub fn fetch(
        &mut self,
        key: (String, String),
        epoch: i32,
        added: Vec<SessionPartition>,
        forgotten: &[SessionPartition],
        has_acks: bool,
        now: Instant,
    ) -> Result<Checked, i16> {
        match epoch {
            INITIAL_EPOCH => {
                if has_acks {
                    return Err(INVALID_REQUEST);
                }
                let old = self.sessions.remove(&key);
                let partitions: BTreeSet<SessionPartition> = added
                    .into_iter()
                    .filter(|partition| !forgotten.contains(partition))
                    .collect();
                if partitions.len() > self.partitions_max {
                    return Err(INVALID_REQUEST);
                }
                self.make_room(now)?;
                let served = partitions.iter().copied().collect();
                self.sessions.insert(
                    key,
                    Session {
                        next_epoch: 1,
                        partitions,
                        last_used: now,
                        consumer: None,
                    },
                );
                Ok(match old {
                    Some(old) => Checked::Reopened {
                        serve: served,
                        released: old.into(),
                    },
                    None => Checked::Serve(served),
                })
            }
            FINAL_EPOCH => {
                if !forgotten.is_empty() {
                    return Err(INVALID_REQUEST);
                }
                self.sessions
                    .remove(&key)
                    .map(|session| Checked::Closed(session.into()))
                    .ok_or(SHARE_SESSION_NOT_FOUND)
            }
            epoch => {
                let partitions_max = self.partitions_max;
                let session = self.next(&key, epoch, now)?;
                for partition in forgotten {
                    session.partitions.remove(partition);
                }
                session.partitions.extend(added);
                if session.partitions.len() > partitions_max {
                    self.sessions.remove(&key);
                    return Err(INVALID_REQUEST);
                }
                Ok(Checked::Serve(session.partitions.iter().copied().collect()))
            }
        }
    }

    /// A ShareAcknowledge's session fields: it may not open a session; -1 closes it.
    pub fn acknowledge(
        &mut self,
        key: (String, String),
        epoch: i32,
        now: Instant,
    ) -> Result<Checked, i16> {
        match epoch {
            INITIAL_EPOCH => Err(INVALID_SHARE_SESSION_EPOCH),
            FINAL_EPOCH => self
                .sessions
                .remove(&key)
                .map(|session| Checked::Closed(session.into()))
                .ok_or(SHARE_SESSION_NOT_FOUND),
            epoch => self
                .next(&key, epoch, now)
                .map(|_| Checked::Serve(Vec::new())),
        }
    }

    /// Records the member incarnation the session's fetch acquired for.
    pub fn bind(&mut self, key: &(String, String), consumer: String) {
        if let Some(session) = self.sessions.get_mut(key) {
            session.consumer = Some(consumer);
        }
    }

    /// The session of `key` moved to its next epoch, if `epoch` is the one it expects (a
    /// wrong epoch ends the session: the client starts a new one).
    fn next(
        &mut self,
        key: &(String, String),
        epoch: i32,
        now: Instant,
    ) -> Result<&mut Session, i16> {
        let Some(session) = self.sessions.get(key) else {
            return Err(SHARE_SESSION_NOT_FOUND);
        };
        if session.next_epoch != epoch {
            self.sessions.remove(key);
            return Err(INVALID_SHARE_SESSION_EPOCH);
        }
        let session = self.sessions.get_mut(key).ok_or(SHARE_SESSION_NOT_FOUND)?;
        // Past i32::MAX the epoch starts again at 1 (0 and -1 mean open and close).
        session.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        session.last_used = now;
        Ok(session)
    }

    /// Room for one more session: evicts the longest idle one if it is idle long enough.
    fn make_room(&mut self, now: Instant) -> Result<(), i16> {
        if self.sessions.len() < self.sessions_max {
            return Ok(());
        }
        let oldest = self
            .sessions
            .iter()
            .min_by_key(|(_, session)| session.last_used)
            .map(|(key, session)| (key.clone(), session.last_used));
        match oldest {
            Some((key, used)) if now.saturating_duration_since(used) >= self.evictable_idle => {
                self.sessions.remove(&key);
                Ok(())
            }
            _ => Err(SHARE_SESSION_LIMIT_REACHED),
        }
    }
}

/// Registers the help text of the share-session gauge.
pub(crate) fn describe_metrics() {
    metrics::describe_gauge!(
        "ringmq_kafka_share_sessions",
        "Kafka share sessions (KIP-932) the shard holds (bounded by share_groups.sessions_max)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (String, String) {
        ("g".into(), "m".into())
    }

    #[test]
    fn epochs_open_advance_and_close() {
        let mut sessions = ShareSessions::new(1, 10, Duration::from_secs(60));
        let now = Instant::now();
        let p = (Uuid::from_u128(1), 0);
        let opened = sessions.fetch(key(), 0, vec![p], &[], false, now);
        assert_eq!(opened, Ok(Checked::Serve(vec![p])));
        assert_eq!(
            sessions.fetch(key(), 1, vec![], &[], true, now),
            Ok(Checked::Serve(vec![p]))
        );
        assert_eq!(
            sessions.acknowledge(key(), 2, now),
            Ok(Checked::Serve(vec![]))
        );
        // A stale epoch ends the session.
        assert_eq!(
            sessions.fetch(key(), 2, vec![], &[], false, now),
            Err(INVALID_SHARE_SESSION_EPOCH)
        );
        assert_eq!(
            sessions.fetch(key(), 4, vec![], &[], false, now),
            Err(SHARE_SESSION_NOT_FOUND)
        );
        assert_eq!(
            sessions.fetch(key(), 0, vec![p], &[], true, now),
            Err(INVALID_REQUEST)
        );
        // Opening again hands back the old session's partitions.
        sessions.fetch(key(), 0, vec![p], &[], false, now).unwrap();
        sessions.bind(&key(), "m#1".into());
        assert_eq!(
            sessions.fetch(key(), 0, vec![], &[], false, now),
            Ok(Checked::Reopened {
                serve: vec![],
                released: Ended {
                    consumer: Some("m#1".into()),
                    partitions: vec![p]
                }
            })
        );
        // The cache holds one session; another member waits until this one is idle.
        let other = ("g".to_string(), "n".to_string());
        assert_eq!(
            sessions.fetch(other.clone(), 0, vec![p], &[], false, now),
            Err(SHARE_SESSION_LIMIT_REACHED)
        );
        let later = now + Duration::from_secs(61);
        assert!(sessions.fetch(other, 0, vec![p], &[], false, later).is_ok());
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            sessions.acknowledge(key(), -1, later),
            Err(SHARE_SESSION_NOT_FOUND)
        );
    }
}
