//! SASL on the Kafka listener: SaslHandshake (v1) chooses a mechanism, SaslAuthenticate carries
//! its messages (PLAIN: one; SCRAM-SHA-256/512: two), as Kafka's brokers do. With
//! `kafka_sasl_mechanisms` set, a connection may send nothing but ApiVersions and these two
//! until it has authenticated; anything else, or anything after a failed authentication, closes
//! it. Each connection has its own `KafkaSasl` (the service's `SaslSession` plus KIP-368's
//! state; `Kafka::for_connection`).
//!
//! Re-authentication (KIP-368): with `kafka_sasl_session_lifetime_ms`, SaslAuthenticate (v1+)
//! tells the client how long its authentication holds; before then the client runs
//! SaslHandshake and SaslAuthenticate again on the same connection, as the same principal (a
//! different one fails and closes the connection, as in Kafka). A request other than those two
//! after the lifetime ends closes the connection.
//!
//! The users' credentials (and their changes: DescribeUserScramCredentials,
//! AlterUserScramCredentials) are the broker service's.

use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use std::time::{Duration, Instant};

use super::errors::{
    DUPLICATE_RESOURCE, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED, UNACCEPTABLE_CREDENTIAL,
    UNSUPPORTED_SASL_MECHANISM, code_of,
};
use crate::broker::ErrorKind;
use crate::broker::service::{
    Credential, HandshakeRefusal, Mechanism, Principal, RequestContext, SaslSession, Service,
    UserChange,
};

/// Whether `api` is part of authenticating (or asks for versions, which comes first).
pub fn is_sasl(api: ApiKey) -> bool {
    matches!(
        api,
        ApiKey::ApiVersions | ApiKey::SaslHandshake | ApiKey::SaslAuthenticate
    )
}

/// One Kafka connection's authentication.
#[derive(Default)]
pub struct KafkaSasl {
    pub session: SaslSession,
    /// When the authentication stops holding (KIP-368); None: never.
    expires_at: Option<Instant>,
    /// During a re-authentication: the principal it must end as.
    renewing: Option<Principal>,
}

impl KafkaSasl {
    /// Whether `api` may be served now: `required` says the listener asks for SASL.
    pub fn admits(&self, required: bool, api: ApiKey, now: Instant) -> bool {
        let renewal = matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate);
        if let Some(expires_at) = self.expires_at
            && now >= expires_at
            && !renewal
        {
            return false;
        }
        self.session.admits(required, is_sasl(api))
    }

    pub fn principal(&self) -> Principal {
        self.session.principal()
    }
}

pub fn handshake(
    service: &Service,
    sasl: &mut KafkaSasl,
    request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let enabled = service.kafka_sasl_mechanisms();
    let offered: Vec<StrBytes> = enabled
        .iter()
        .map(|name| StrBytes::from_string(name.clone()))
        .collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(offered);
    // An authenticated connection starts over only where sessions expire (KIP-368).
    if service.kafka_sasl_session_lifetime() > Duration::ZERO
        && let SaslSession::Authenticated(principal) = &sasl.session
        && enabled
            .iter()
            .any(|name| name == request.mechanism.as_str())
    {
        sasl.renewing = Some(principal.clone());
        sasl.session = SaslSession::Start;
    }
    match sasl.session.handshake(enabled, request.mechanism.as_str()) {
        Ok(()) => response,
        Err(HandshakeRefusal::Unsupported) => response.with_error_code(UNSUPPORTED_SASL_MECHANISM),
        Err(HandshakeRefusal::AlreadyChosen) => response.with_error_code(ILLEGAL_SASL_STATE),
    }
}

pub fn authenticate(
    service: &Service,
    sasl: &mut KafkaSasl,
    version: i16,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    match sasl.session.step(service, &request.auth_bytes) {
        Ok(auth_bytes) => {
            let response = SaslAuthenticateResponse::default().with_auth_bytes(auth_bytes);
            let SaslSession::Authenticated(principal) = &sasl.session else {
                // A SCRAM exchange under way: its next message comes.
                return response;
            };
            if let Some(before) = sasl.renewing.take() {
                if before != *principal {
                    let message = format!(
                        "re-authentication may not change the principal ({before:?} to {principal:?}); closing the connection"
                    );
                    sasl.session = SaslSession::Failed;
                    return failed(SASL_AUTHENTICATION_FAILED, message);
                }
                metrics::counter!("ringmq_kafka_reauthentications_total").increment(1);
            }
            if let Principal::User(user) = principal {
                tracing::debug!(user, "a Kafka client authenticated");
            }
            let lifetime = service.kafka_sasl_session_lifetime();
            if lifetime.is_zero() || version < 1 {
                return response;
            }
            sasl.expires_at = Some(Instant::now() + lifetime);
            response
                .with_session_lifetime_ms(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX))
        }
        // Kafka's ILLEGAL_SASL_STATE: no handshake first, or authenticated already.
        Err(error) if error.kind == ErrorKind::InvalidRequest => {
            failed(ILLEGAL_SASL_STATE, error.message)
        }
        Err(error) => {
            metrics::counter!("ringmq_authentication_failures_total", "listener" => "kafka")
                .increment(1);
            failed(code_of(&error), error.message)
        }
    }
}

fn failed(code: i16, message: String) -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(code)
        .with_error_message(Some(StrBytes::from_string(message)))
}

/// Kafka's code for a SCRAM mechanism (`ScramMechanism`: 1 and 2).
fn mechanism_code(mechanism: Mechanism) -> i8 {
    match mechanism {
        Mechanism::ScramSha256 => 1,
        Mechanism::ScramSha512 => 2,
    }
}

fn mechanism_of(code: i8) -> Option<Mechanism> {
    match code {
        1 => Some(Mechanism::ScramSha256),
        2 => Some(Mechanism::ScramSha512),
        _ => None,
    }
}

pub fn describe_users(
    service: &Service,
    ctx: &RequestContext,
    request: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let names = request.users.map(|users| {
        users
            .into_iter()
            .map(|user| user.name.to_string())
            .collect()
    });
    let described = match service.describe_users(ctx, names) {
        Ok(described) => described,
        // Not allowed to see the users at all: Kafka's top-level error.
        Err(error) => {
            return DescribeUserScramCredentialsResponse::default()
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)));
        }
    };
    let results = described
        .into_iter()
        .map(|(name, found)| {
            let result = DescribeUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(name));
            match found {
                Ok(mechanisms) => result.with_credential_infos(
                    mechanisms
                        .into_iter()
                        .map(|(mechanism, iterations)| {
                            CredentialInfo::default()
                                .with_mechanism(mechanism_code(mechanism))
                                .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        })
                        .collect(),
                ),
                Err(error) => result
                    .with_error_code(code_of(&error))
                    .with_error_message(Some(StrBytes::from_string(error.message))),
            }
        })
        .collect();
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// A requested change as checked here: the change, or Kafka's code and message refusing it.
type Checked = Result<UserChange, (i16, String)>;

pub async fn alter_users(
    service: &Service,
    ctx: &RequestContext,
    request: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    // Kafka refuses a user named in more than one change of a request, every one of them.
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let names = request
        .deletions
        .iter()
        .map(|d| d.name.to_string())
        .chain(request.upsertions.iter().map(|u| u.name.to_string()));
    for name in names {
        *seen.entry(name).or_default() += 1;
    }
    let mut answers: Vec<(String, Checked)> = Vec::new();
    for deletion in request.deletions {
        let user = deletion.name.to_string();
        let change = mechanism_of(deletion.mechanism)
            .map(|mechanism| UserChange::Delete {
                user: user.clone(),
                mechanism,
            })
            .ok_or((
                UNSUPPORTED_SASL_MECHANISM,
                "unknown SCRAM mechanism".to_string(),
            ));
        answers.push((user, change));
    }
    for upsertion in request.upsertions {
        let user = upsertion.name.to_string();
        let change = match (
            mechanism_of(upsertion.mechanism),
            u32::try_from(upsertion.iterations),
        ) {
            (None, _) => Err((
                UNSUPPORTED_SASL_MECHANISM,
                "unknown SCRAM mechanism".to_string(),
            )),
            (Some(_), Err(_)) => Err((UNACCEPTABLE_CREDENTIAL, "negative iterations".to_string())),
            (Some(mechanism), Ok(iterations)) if !upsertion.salted_password.is_empty() => {
                Ok(UserChange::Upsert {
                    user: user.clone(),
                    mechanism,
                    credential: Credential::from_salted(
                        mechanism,
                        &upsertion.salted_password,
                        upsertion.salt.to_vec(),
                        iterations,
                    ),
                })
            }
            _ => Err((
                UNACCEPTABLE_CREDENTIAL,
                "an empty salted password".to_string(),
            )),
        };
        answers.push((user, change));
    }
    for (user, change) in &mut answers {
        if seen.get(user.as_str()).copied().unwrap_or(0) > 1 {
            *change = Err((
                DUPLICATE_RESOURCE,
                "a user named twice in one request".to_string(),
            ));
        }
    }
    let valid: Vec<UserChange> = answers
        .iter()
        .filter_map(|(_, change)| change.as_ref().ok().cloned())
        .collect();
    let mut outcomes = match service.alter_users(ctx, valid).await {
        Ok(outcomes) => outcomes.into_iter(),
        Err(error) => {
            let failed = answers
                .iter()
                .map(|_| Err(error.clone()))
                .collect::<Vec<_>>();
            failed.into_iter()
        }
    };
    let results = answers
        .into_iter()
        .map(|(user, change)| {
            let result =
                AlterUserScramCredentialsResult::default().with_user(StrBytes::from_string(user));
            let outcome = match change {
                Err((code, message)) => Err((code, message)),
                Ok(_) => match outcomes.next() {
                    Some(Ok(())) => Ok(()),
                    Some(Err(error)) => Err((code_of(&error), error.message)),
                    None => Err((ILLEGAL_SASL_STATE, "no outcome".to_string())),
                },
            };
            match outcome {
                Ok(()) => result,
                Err((code, message)) => result
                    .with_error_code(code)
                    .with_error_message(Some(StrBytes::from_string(message))),
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
