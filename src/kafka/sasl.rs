//! SASL on the Kafka listener: SaslHandshake (v1) chooses a mechanism, SaslAuthenticate carries
//! its messages (PLAIN: one; SCRAM-SHA-256/512: two), as Kafka's brokers do. With
//! `kafka_sasl_mechanisms` set, a connection may send nothing but ApiVersions and these two
//! until it has authenticated; anything else, or anything after a failed authentication, closes
//! it. Each connection has its own `SaslSession` (the service's; `Kafka::for_connection`).
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

use super::errors::{
    DUPLICATE_RESOURCE, ILLEGAL_SASL_STATE, UNACCEPTABLE_CREDENTIAL, UNSUPPORTED_SASL_MECHANISM,
    code_of,
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

pub fn handshake(
    service: &Service,
    sasl: &mut SaslSession,
    request: SaslHandshakeRequest,
) -> SaslHandshakeResponse {
    let enabled = service.kafka_sasl_mechanisms();
    let offered: Vec<StrBytes> = enabled
        .iter()
        .map(|name| StrBytes::from_string(name.clone()))
        .collect();
    let response = SaslHandshakeResponse::default().with_mechanisms(offered);
    match sasl.handshake(enabled, request.mechanism.as_str()) {
        Ok(()) => response,
        Err(HandshakeRefusal::Unsupported) => response.with_error_code(UNSUPPORTED_SASL_MECHANISM),
        Err(HandshakeRefusal::AlreadyChosen) => response.with_error_code(ILLEGAL_SASL_STATE),
    }
}

pub fn authenticate(
    service: &Service,
    sasl: &mut SaslSession,
    request: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    match sasl.step(service, &request.auth_bytes) {
        Ok(auth_bytes) => {
            if let Principal::User(user) = sasl.principal() {
                tracing::debug!(user, "a Kafka client authenticated");
            }
            SaslAuthenticateResponse::default().with_auth_bytes(auth_bytes)
        }
        // Kafka's ILLEGAL_SASL_STATE: no handshake first, or authenticated already.
        Err(error) if error.kind == ErrorKind::InvalidRequest => {
            SaslAuthenticateResponse::default()
                .with_error_code(ILLEGAL_SASL_STATE)
                .with_error_message(Some(StrBytes::from_string(error.message)))
        }
        Err(error) => {
            metrics::counter!("ringmq_authentication_failures_total", "listener" => "kafka")
                .increment(1);
            SaslAuthenticateResponse::default()
                .with_error_code(code_of(&error))
                .with_error_message(Some(StrBytes::from_string(error.message)))
        }
    }
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
