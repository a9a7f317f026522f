//! Users and their SCRAM credentials, kept in `users.json` in the data directory: salts,
//! iterations and the two derived keys, never a password. Changes are made on shard 0, saved
//! crash-safely (write, fsync, rename, fsync of the directory) and then handed to every shard as
//! a new immutable snapshot, so authenticating a connection reads only its own shard's copy.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use std::rc::Rc;
use std::sync::Arc;

use super::error::{BrokerError, BrokerResult, ErrorKind};
use super::{ShardState, admin};
use crate::auth::scram::{self, Credential, Mechanism};

const USERS_FILE: &str = "users.json";
/// Users the broker holds at most, and the longest name.
pub const USERS_MAX: usize = 10_000;
pub const USER_NAME_BYTES_MAX: usize = 256;

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Users {
    users: BTreeMap<String, BTreeMap<Mechanism, Credential>>,
}

impl Users {
    /// The saved users, or none when no file was ever saved.
    pub fn load(data_dir: &Path) -> Result<Users, String> {
        super::json_file::load(data_dir, USERS_FILE)
    }

    pub fn save(&self, data_dir: &Path) -> io::Result<()> {
        super::json_file::save(data_dir, USERS_FILE, self)
    }

    pub fn credential(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.users.get(user)?.get(&mechanism).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Each user with the mechanisms it has a credential for, and their iterations.
    pub fn describe(&self) -> Vec<(String, Vec<(Mechanism, u32)>)> {
        self.users
            .iter()
            .map(|(name, credentials)| {
                let mechanisms = credentials
                    .iter()
                    .map(|(mechanism, credential)| (*mechanism, credential.iterations))
                    .collect();
                (name.clone(), mechanisms)
            })
            .collect()
    }

    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// Sets `user`'s credential for `mechanism`. Err says why it may not be.
    pub fn upsert(
        &mut self,
        user: &str,
        mechanism: Mechanism,
        credential: Credential,
    ) -> Result<(), String> {
        if user.is_empty() || user.len() > USER_NAME_BYTES_MAX {
            return Err(format!("a user name is 1 to {USER_NAME_BYTES_MAX} bytes"));
        }
        if !self.users.contains_key(user) && self.users.len() >= USERS_MAX {
            return Err(format!("the broker holds {USERS_MAX} users already"));
        }
        self.users
            .entry(user.to_string())
            .or_default()
            .insert(mechanism, credential);
        Ok(())
    }

    /// Removes `user`'s credential for `mechanism` (and the user with its last one); false if
    /// there was none.
    pub fn remove(&mut self, user: &str, mechanism: Mechanism) -> bool {
        let Some(credentials) = self.users.get_mut(user) else {
            return false;
        };
        let removed = credentials.remove(&mechanism).is_some();
        if credentials.is_empty() {
            self.users.remove(user);
        }
        removed
    }
}

/// One change to the users: a credential set or removed.
#[derive(Clone, Debug)]
pub enum UserChange {
    Upsert {
        user: String,
        mechanism: Mechanism,
        credential: Credential,
    },
    Delete {
        user: String,
        mechanism: Mechanism,
    },
}

impl UserChange {
    pub fn user(&self) -> &str {
        match self {
            UserChange::Upsert { user, .. } | UserChange::Delete { user, .. } => user,
        }
    }
}

/// Applies `changes` on shard 0, one admin change at a time: each is checked and applied to a
/// copy, the copy saved, then handed to every shard. Answers per change, in order; if the save
/// fails, every change fails and nothing changed.
pub(super) async fn change(
    state: &Rc<ShardState>,
    changes: Vec<UserChange>,
) -> Vec<BrokerResult<()>> {
    let _turn = admin::admin_turn(state).await;
    let mut users = Users::clone(&state.users());
    let outcomes: Vec<BrokerResult<()>> = changes
        .into_iter()
        .map(|change| apply(&mut users, change))
        .collect();
    if outcomes.iter().all(Result::is_err) {
        return outcomes;
    }
    let dir = state.config.data_dir.clone();
    let to_save = users.clone();
    let saved = crate::runtime::blocking(move || to_save.save(&dir)).await;
    if let Err(error) = saved {
        let failure = BrokerError::new(
            ErrorKind::StorageFailed,
            format!("saving users.json: {error}"),
        );
        return outcomes.into_iter().map(|_| Err(failure.clone())).collect();
    }
    // Saved: the changes stand even if a shard takes them late; the answer says so.
    let Err(late) = super::snapshot::distribute(state, |shard| &shard.users, Arc::new(users)).await
    else {
        return outcomes;
    };
    let late = |outcome: BrokerResult<()>| outcome.and_then(|()| Err(late.clone()));
    outcomes.into_iter().map(late).collect()
}

fn apply(users: &mut Users, change: UserChange) -> BrokerResult<()> {
    match change {
        UserChange::Upsert {
            user,
            mechanism,
            credential,
        } => {
            if !(scram::ITERATIONS_MIN..=scram::ITERATIONS_MAX).contains(&credential.iterations) {
                return Err(BrokerError::new(
                    ErrorKind::InvalidCredential,
                    format!(
                        "iterations must be {} to {}",
                        scram::ITERATIONS_MIN,
                        scram::ITERATIONS_MAX
                    ),
                ));
            }
            if credential.salt.is_empty() {
                return Err(BrokerError::new(
                    ErrorKind::InvalidCredential,
                    "an empty salt",
                ));
            }
            users
                .upsert(&user, mechanism, credential)
                .map_err(|reason| BrokerError::new(ErrorKind::InvalidCredential, reason))
        }
        UserChange::Delete { user, mechanism } => {
            if users.remove(&user, mechanism) {
                Ok(())
            } else {
                Err(BrokerError::new(
                    ErrorKind::UnknownUser,
                    format!("user {user:?} has no {} credential", mechanism.name()),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scram::ITERATIONS_MIN;

    #[test]
    fn users_survive_a_save_and_load_and_keep_no_password() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Users::load(dir.path()).unwrap().is_empty());
        let mut users = Users::default();
        let credential = Credential::new(Mechanism::ScramSha512, b"hunter2", ITERATIONS_MIN);
        users
            .upsert("alice", Mechanism::ScramSha512, credential.clone())
            .unwrap();
        users.save(dir.path()).unwrap();
        let loaded = Users::load(dir.path()).unwrap();
        assert_eq!(loaded, users);
        assert_eq!(
            loaded.credential("alice", Mechanism::ScramSha512),
            Some(credential)
        );
        assert_eq!(loaded.credential("alice", Mechanism::ScramSha256), None);
        let text = std::fs::read_to_string(dir.path().join(USERS_FILE)).unwrap();
        assert!(!text.contains("hunter2"));
        assert!(
            users
                .upsert(
                    "",
                    Mechanism::ScramSha256,
                    Credential::new(Mechanism::ScramSha256, b"x", ITERATIONS_MIN)
                )
                .is_err()
        );
        assert!(users.remove("alice", Mechanism::ScramSha512));
        assert!(!users.contains("alice"));
        std::fs::write(dir.path().join(USERS_FILE), b"{not json").unwrap();
        assert!(Users::load(dir.path()).is_err());
    }
}
