//! Users and authentication through the service: the protocol adapters run the SASL exchanges
//! (their messages are theirs), and ask here for credentials, to check a password, and to change
//! the users.

use super::{CLUSTER, Operation, Principal, RequestContext, ResourceType, Service};
use crate::auth::scram::{Credential, Mechanism};
use crate::broker::users::{self, UserChange};
use crate::broker::{BrokerError, BrokerResult, ErrorKind};

/// A user's mechanisms with their iteration counts.
pub type UserMechanisms = Vec<(Mechanism, u32)>;

impl Service {
    /// `user`'s credential for `mechanism`, from this shard's snapshot.
    pub fn scram_credential(&self, user: &str, mechanism: Mechanism) -> Option<Credential> {
        self.state.users().credential(user, mechanism)
    }

    /// Checks a password (SASL/PLAIN) against any SCRAM credential of `user`.
    pub fn authenticate_password(&self, user: &str, password: &[u8]) -> BrokerResult<Principal> {
        let users = self.state.users();
        let matched = Mechanism::ALL.into_iter().any(|mechanism| {
            users
                .credential(user, mechanism)
                .is_some_and(|credential| credential.matches(mechanism, password))
        });
        if matched {
            Ok(Principal::User(user.to_string()))
        } else {
            Err(authentication_failed())
        }
    }

    /// Whether clients must authenticate on the Kafka listener, and with what.
    pub fn kafka_sasl_mechanisms(&self) -> &[String] {
        &self.state.config.kafka_sasl_mechanisms
    }

    /// The users (or those named) with their mechanisms and iterations; a named user that does
    /// not exist is UnknownUser.
    pub fn describe_users(
        &self,
        ctx: &RequestContext,
        names: Option<Vec<String>>,
    ) -> BrokerResult<Vec<(String, BrokerResult<UserMechanisms>)>> {
        self.authorize(ctx, ResourceType::Cluster, CLUSTER, Operation::Describe)?;
        let all = self.state.users().describe();
        Ok(match names {
            None => all
                .into_iter()
                .map(|(name, found)| (name, Ok(found)))
                .collect(),
            Some(names) => names
                .into_iter()
                .map(|name| {
                    let found = all
                        .iter()
                        .find(|(known, _)| *known == name)
                        .map(|(_, mechanisms)| mechanisms.clone())
                        .ok_or_else(|| {
                            BrokerError::new(ErrorKind::UnknownUser, format!("no user {name:?}"))
                        });
                    (name, found)
                })
                .collect(),
        })
    }

    /// Sets and removes credentials, durably, on every shard before the answer; one outcome
    /// per change, in order.
    pub async fn alter_users(
        &self,
        ctx: &RequestContext,
        changes: Vec<UserChange>,
    ) -> BrokerResult<Vec<BrokerResult<()>>> {
        self.authorize(ctx, ResourceType::Cluster, CLUSTER, Operation::Alter)?;
        self.state
            .on_shard_until(ctx.deadline, 0, move |shard0| async move {
                BrokerResult::Ok(users::change(&shard0, changes).await)
            })
            .await
    }
}

/// What a failed authentication says: never which part was wrong.
pub fn authentication_failed() -> BrokerError {
    BrokerError::new(
        ErrorKind::AuthenticationFailed,
        "authentication failed: invalid user name or password",
    )
}
