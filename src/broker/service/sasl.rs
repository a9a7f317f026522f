//! One connection's SASL authentication, for any protocol: a mechanism is chosen among those
//! its listener enables, then the mechanism's messages go back and forth (PLAIN: one; SCRAM:
//! two) until the connection has a principal or has failed. The protocols carry the messages
//! in their own frames and render the errors with their own codes.

use bytes::Bytes;

use super::{Principal, Service, authentication_failed};
use crate::auth::scram::{Mechanism, ServerExchange};
use crate::broker::{BrokerError, ErrorKind};
use crate::config::CertificatePrincipal;

/// Where one connection is in authenticating.
#[derive(Default)]
pub enum SaslSession {
    /// No mechanism chosen yet.
    #[default]
    Start,
    /// PLAIN was chosen.
    Plain,
    /// A SCRAM mechanism was chosen; the exchange is under way.
    Scram(ServerExchange),
    Authenticated(Principal),
    /// Authentication failed: the connection is served no more.
    Failed,
}

/// Why a handshake was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeRefusal {
    /// The listener does not enable that mechanism.
    Unsupported,
    /// A mechanism was chosen already (or the connection authenticated).
    AlreadyChosen,
}

impl SaslSession {
    /// Whether a request may be served now: `required` says the listener asks for
    /// authentication; `sasl_request` that the request is part of it (or asks for versions).
    pub fn admits(&self, required: bool, sasl_request: bool) -> bool {
        match self {
            SaslSession::Authenticated(_) => true,
            SaslSession::Failed => false,
            _ => !required || sasl_request,
        }
    }

    /// The session of a connection whose client certificate (DER, already verified by TLS)
    /// names its principal; None when the certificate names nobody, or when the listener asks
    /// for SASL (`sasl_mechanisms`), whose user is then the principal, as in Kafka.
    pub fn certified(
        certificate: &[u8],
        from: CertificatePrincipal,
        sasl_mechanisms: &[String],
    ) -> Option<SaslSession> {
        if !sasl_mechanisms.is_empty() {
            return None;
        }
        let name = match from {
            CertificatePrincipal::Dn => crate::auth::certificate::subject_dn(certificate),
            CertificatePrincipal::Cn => crate::auth::certificate::common_name(certificate),
        };
        match name {
            Some(name) => Some(SaslSession::Authenticated(Principal::User(name))),
            None => {
                tracing::info!("a client certificate without a usable subject: anonymous");
                None
            }
        }
    }

    pub fn principal(&self) -> Principal {
        match self {
            SaslSession::Authenticated(principal) => principal.clone(),
            _ => Principal::Anonymous,
        }
    }

    /// Chooses `mechanism` among `enabled`.
    pub fn handshake(
        &mut self,
        enabled: &[String],
        mechanism: &str,
    ) -> Result<(), HandshakeRefusal> {
        if !matches!(self, SaslSession::Start) {
            return Err(HandshakeRefusal::AlreadyChosen);
        }
        if !enabled.iter().any(|name| name == mechanism) {
            return Err(HandshakeRefusal::Unsupported);
        }
        *self = match Mechanism::from_name(mechanism) {
            Some(mechanism) => SaslSession::Scram(ServerExchange::new(mechanism)),
            None => SaslSession::Plain,
        };
        Ok(())
    }

    /// Takes the client's next message; returns the server's answer (empty after PLAIN). On
    /// an error the session has failed, except for InvalidRequest (no mechanism chosen yet, or
    /// authenticated already), which leaves it as it was.
    pub fn step(&mut self, service: &Service, message: &[u8]) -> Result<Bytes, BrokerError> {
        let state = std::mem::replace(self, SaslSession::Failed);
        let stepped = match state {
            SaslSession::Plain => plain(service, message)
                .map(|principal| (SaslSession::Authenticated(principal), Bytes::new())),
            SaslSession::Scram(mut exchange) if exchange.user().is_none() => {
                let mechanism = exchange.mechanism();
                exchange
                    .client_first(message, |user| service.scram_credential(user, mechanism))
                    .map(|first| (SaslSession::Scram(exchange), Bytes::from(first)))
                    .map_err(|_| authentication_failed())
            }
            SaslSession::Scram(mut exchange) => exchange
                .client_final(message)
                .map(|(user, last)| {
                    (
                        SaslSession::Authenticated(Principal::User(user)),
                        Bytes::from(last),
                    )
                })
                .map_err(|_| authentication_failed()),
            other => {
                *self = other;
                return Err(BrokerError::new(
                    ErrorKind::InvalidRequest,
                    "an authentication message without a mechanism chosen first, or after authenticating",
                ));
            }
        };
        match stepped {
            Ok((next, answer)) => {
                *self = next;
                Ok(answer)
            }
            Err(error) => Err(error),
        }
    }
}

fn plain(service: &Service, message: &[u8]) -> Result<Principal, BrokerError> {
    let (user, password) = crate::auth::parse_plain(message).ok_or_else(authentication_failed)?;
    service.authenticate_password(&user, &password)
}
