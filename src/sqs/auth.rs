//! Who an SQS request acts as. With no `[[sqs.credentials]]` configured every request is the
//! anonymous principal, signed or not (SDKs always sign; local tools may not). With credentials,
//! a request must carry a SigV4 signature (`auth::sigv4`) by one of their access keys, and acts
//! as that key's principal, which the service's ACLs then check. Its credential scope must name
//! the service `sqs` and the region `sqs.region`, as AWS refuses a signature meant elsewhere.
//!
//! A connection with a verified client certificate (`[sqs_tls]` with `client_ca_path`) has the
//! principal the certificate names, as on the native and Kafka listeners: an unsigned request on
//! it acts as that principal (so does a signed one when no credentials are configured, since a
//! signature then names nobody). A request that is both signed and certified must be signed by a
//! key of the same principal, else `AccessDenied`: each proof stays necessary, so a leaked
//! access key cannot act as another certificate's holder, nor a certificate as another key's
//! owner. AWS has no client certificates; with matching credentials an SDK works unchanged.

use std::time::SystemTime;

use super::errors::SqsError;
use super::http::Request;
use crate::auth::sigv4::{self, SigV4Error};
use crate::broker::service::Principal;
use crate::broker::service::principal_name;
use crate::config::SqsConfig;

/// The service name a credential scope must carry.
const SERVICE: &str = "sqs";

/// The principal `request` acts as; `certified` is the one its connection's client certificate
/// names, if any.
pub fn principal(
    config: &SqsConfig,
    request: &Request,
    certified: Option<&Principal>,
) -> Result<Principal, SqsError> {
    let header = request
        .header("authorization")
        .filter(|_| !config.credentials.is_empty());
    let Some(header) = header else {
        return match certified {
            Some(principal) => Ok(principal.clone()),
            None if config.credentials.is_empty() => Ok(Principal::Anonymous),
            None => Err(SqsError::missing_authentication_token(
                "the request must be signed (AWS SigV4) or come with a client certificate",
            )),
        };
    };
    let signed = signer(config, request, header)?;
    match certified {
        Some(principal) if *principal != signed => Err(SqsError::access_denied(format!(
            "the request is signed as {} but the connection's client certificate names {}",
            principal_name(&signed),
            principal_name(principal)
        ))),
        _ => Ok(signed),
    }
}

/// The principal of the key whose valid SigV4 signature `header` carries.
fn signer(config: &SqsConfig, request: &Request, header: &str) -> Result<Principal, SqsError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SqsCredential;

    fn request(authorization: Option<&str>) -> Request {
        let mut headers = vec![("host".to_string(), "localhost".to_string())];
        if let Some(value) = authorization {
            headers.push(("Authorization".to_string(), value.to_string()));
        }
        Request {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers,
            body: bytes::Bytes::new(),
        }
    }

    fn with_keys() -> SqsConfig {
        SqsConfig {
            credentials: vec![SqsCredential {
                access_key_id: "AKIDALICE".into(),
                secret_access_key: "secret".into(),
                principal: "alice".into(),
            }],
            ..SqsConfig::default()
        }
    }

    const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDALICE/20260101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=00";

    #[test]
    fn the_certificate_names_the_principal_where_no_signature_does() {
        let alice = Principal::User("CN=alice".into());
        let none = SqsConfig::default();
        // Without keys a signature names nobody: the certificate does.
        for authorization in [None, Some(SIGNED)] {
            let request = request(authorization);
            assert_eq!(principal(&none, &request, Some(&alice)), Ok(alice.clone()));
            assert_eq!(principal(&none, &request, None), Ok(Principal::Anonymous));
        }
        // With keys, an unsigned request is the certificate's, or refused without one.
        let keys = with_keys();
        assert_eq!(
            principal(&keys, &request(None), Some(&alice)),
            Ok(alice.clone())
        );
        let refused = principal(&keys, &request(None), None).unwrap_err();
        assert_eq!(refused.code, "MissingAuthenticationToken");
    }

    #[test]
    fn a_bad_signature_is_refused_even_on_a_certified_connection() {
        let alice = Principal::User("alice".into());
        let keys = with_keys();
        // A signature that does not verify is never replaced by the certificate.
        let refused = principal(&keys, &request(Some(SIGNED)), Some(&alice)).unwrap_err();
        assert_ne!(refused.code, "AccessDenied");
        assert!(refused.status >= 400);
        let garbled = principal(&keys, &request(Some("AWS4-HMAC-SHA256 x")), Some(&alice));
        assert_eq!(garbled.unwrap_err().code, "IncompleteSignature");
    }
}
