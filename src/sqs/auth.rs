//! Who an SQS request acts as. With no `[[sqs.credentials]]` configured every request is the
//! anonymous principal, signed or not (SDKs always sign; local tools may not). With credentials,
//! a request must carry a SigV4 signature (`auth::sigv4`) by one of their access keys, and acts
//! as that key's principal, which the service's ACLs then check. Its credential scope must name
//! the service `sqs` and the region `sqs.region`, as AWS refuses a signature meant elsewhere.

use std::time::SystemTime;

use super::errors::SqsError;
use super::http::Request;
use crate::auth::sigv4::{self, SigV4Error};
use crate::broker::service::Principal;
use crate::config::SqsConfig;

/// The service name a credential scope must carry.
const SERVICE: &str = "sqs";

pub fn principal(config: &SqsConfig, request: &Request) -> Result<Principal, SqsError> {
    if config.credentials.is_empty() {
        return Ok(Principal::Anonymous);
    }
    let header = request.header("authorization").ok_or_else(|| {
        SqsError::missing_authentication_token("the request must be signed (AWS SigV4)")
    })?;
    let authorization = sigv4::parse_authorization(header).map_err(refusal)?;
    sigv4::check_scope(&authorization, &config.region, SERVICE).map_err(refusal)?;
    let Some(credential) = config
        .credentials
        .iter()
        .find(|credential| credential.access_key_id == authorization.access_key)
    else {
        return Err(SqsError::invalid_client_token_id(
            "the security token included in the request is invalid",
        ));
    };
    let headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let signed = sigv4::Request {
        method: &request.method,
        path: &request.path,
        query: &request.query,
        headers: &headers,
        body: &request.body,
    };
    sigv4::verify(
        &signed,
        &authorization,
        &credential.secret_access_key,
        SystemTime::now(),
    )
    .map_err(refusal)?;
    let name = if credential.principal.is_empty() {
        credential.access_key_id.clone()
    } else {
        credential.principal.clone()
    };
    Ok(Principal::User(name))
}

fn refusal(error: SigV4Error) -> SqsError {
    match error {
        SigV4Error::Mismatch | SigV4Error::Scope(_) => {
            SqsError::signature_does_not_match(error.to_string())
        }
        SigV4Error::Expired => SqsError::request_expired(error.to_string()),
        SigV4Error::Incomplete(_) => SqsError::incomplete_signature(error.to_string()),
    }
}
