//! The native protocol on the connection layer (`net`): how a frame decodes into a
//! request, how large its response can be, and how it is served. Responses go out as they
//! complete, matched by correlation id. A frame that is too large or unreadable gets an error
//! response, then the connection closes; nothing it sent touches any other connection.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::{Buf, Bytes, BytesMut};
use zerocopy::FromBytes;

use crate::broker::ShardState;
use crate::broker::service::{HandshakeRefusal, SaslSession, Service};
use crate::net::{Decoded, Listener, Wire, fetch_bytes_bound};
use crate::protocol::codec::{REQUEST_HEADER_BYTES, Reader, RequestHeader};
use crate::protocol::messages::{ApiKey, SUPPORTED_APIS, encode_response};
use crate::protocol::{ErrorCode, ProtocolError, Request, Response};

/// A record's framing in a batch, over-estimated (its length, attributes, deltas, header count).
const RECORD_FRAMING_BYTES: usize = 128;

/// The native protocol's adapter: one per connection (`for_connection`), for its SASL state
/// and its identity (request/reply's destinations are the connection's own).
#[derive(Clone, Default)]
pub(crate) struct Native {
    sasl: Rc<RefCell<SaslSession>>,
    connection: Rc<super::replies::Connection>,
}

/// A decoded native request and the correlation id its response must carry.
pub(crate) struct NativeRequest {
    correlation_id: u32,
    request: Request,
}

impl Wire for Native {
    type Request = NativeRequest;
    const LISTENER: Listener = Listener::Native;
    const ORDERED: bool = false;

    fn for_connection(&self) -> Self {
        Native::default()
    }

    fn client_certificate(&self, state: &ShardState, certificate: &[u8]) {
        let config = &state.config;
        if let Some(session) =
            SaslSession::certified(certificate, config.tls.principal, &config.sasl_mechanisms)
        {
            *self.sasl.borrow_mut() = session;
        }
    }

    fn decode(&self, state: &ShardState, frame: BytesMut) -> Decoded<NativeRequest> {
        let decoded = decode(frame);
        let Decoded::Request(request) = &decoded else {
            return decoded;
        };
        let required = !state.config.sasl_mechanisms.is_empty();
        let sasl_request = matches!(
            request.request,
            Request::ApiVersions | Request::SaslHandshake { .. } | Request::SaslAuthenticate { .. }
        );
        if self.sasl.borrow().admits(required, sasl_request) {
            return decoded;
        }
        let message =
            "authentication required: SaslHandshake, then SaslAuthenticate; closing the connection";
        Decoded::Close(Some(error(
            request.correlation_id,
            ErrorCode::AuthenticationFailed,
            message.to_string(),
        )))
    }

    fn too_large(&self, size: usize, limit: usize) -> Option<Vec<Bytes>> {
        let error = ProtocolError::new(
            ErrorCode::FrameTooLarge,
            format!(
                "frame of {size} bytes exceeds frame_bytes_max of {limit}; closing the connection"
            ),
        );
        Some(encode_response(0, Err(error)))
    }

    fn response_bytes_bound(&self, state: &ShardState, request: &NativeRequest) -> usize {
        match &request.request {
            Request::Fetch(fetch) => {
                fetch_bytes_bound(state, &state.topics(), &fetch.topic, fetch.max_bytes)
            }
            // A receive takes at most what the connection's inbox holds: its bytes, and a
            // record's framing for each of its messages. Reserving it also bounds how many
            // receives one connection can park.
            Request::Replies(crate::protocol::messages::ReplyRequest::ReceiveReplies {
                ..
            }) => {
                let config = &state.config;
                config
                    .reply_queue_bytes_max
                    .saturating_add(config.reply_queue_max.saturating_mul(RECORD_FRAMING_BYTES))
            }
            _ => 0,
        }
    }

    async fn handle(self, state: Rc<ShardState>, request: NativeRequest) -> Vec<Bytes> {
        let result = match request.request {
            Request::SaslHandshake { mechanism } => self.handshake(&state, &mechanism),
            Request::SaslAuthenticate { message } => self.authenticate(&state, &message),
            other => {
                let principal = self.sasl.borrow().principal();
                if matches!(other, Request::Replies(_)) {
                    self.connection.uses_replies(&state);
                }
                let connection = self.connection.id;
                super::dispatch::serve(&state, other, (principal, connection)).await
            }
        };
        if let Err(error) = &result {
            crate::metrics::count_error("native", error.code.name());
        }
        encode_response(request.correlation_id, result)
    }
}

impl Native {
    fn handshake(&self, state: &ShardState, mechanism: &str) -> Result<Response, ProtocolError> {
        let enabled = &state.config.sasl_mechanisms;
        match self.sasl.borrow_mut().handshake(enabled, mechanism) {
            Ok(()) => Ok(Response::SaslMechanisms(enabled.clone())),
            Err(HandshakeRefusal::Unsupported) => Err(ProtocolError::new(
                ErrorCode::InvalidConfig,
                format!(
                    "mechanism {mechanism:?} is not enabled; this listener offers {}",
                    enabled.join(", ")
                ),
            )),
            Err(HandshakeRefusal::AlreadyChosen) => Err(ProtocolError::new(
                ErrorCode::MalformedRequest,
                "a mechanism was chosen already on this connection",
            )),
        }
    }

    fn authenticate(
        &self,
        state: &Rc<ShardState>,
        message: &[u8],
    ) -> Result<Response, ProtocolError> {
        let service = Service::new(state.clone());
        let stepped = self.sasl.borrow_mut().step(&service, message);
        stepped.map(Response::SaslMessage).map_err(|error| {
            if error.kind != crate::broker::ErrorKind::InvalidRequest {
                metrics::counter!("ringmq_authentication_failures_total", "listener" => "native")
                    .increment(1);
            }
            super::errors::to_native(error)
        })
    }
}

fn error(correlation_id: u32, code: ErrorCode, message: String) -> Vec<Bytes> {
    crate::metrics::count_error("native", code.name());
    encode_response(correlation_id, Err(ProtocolError::new(code, message)))
}

fn decode(mut frame: BytesMut) -> Decoded<NativeRequest> {
    frame.advance(4.min(frame.len()));
    let Ok((header, _)) = RequestHeader::read_from_prefix(&frame) else {
        let message = format!("a request header takes {REQUEST_HEADER_BYTES} bytes");
        return Decoded::Close(Some(error(0, ErrorCode::MalformedRequest, message)));
    };
    let correlation_id = header.correlation_id.get();
    let prefix = REQUEST_HEADER_BYTES + header.client_id_length.get() as usize;
    if frame.len() < prefix {
        let message = "client id runs past the end of the frame".to_string();
        return Decoded::Close(Some(error(
            correlation_id,
            ErrorCode::MalformedRequest,
            message,
        )));
    }
    frame.advance(prefix);
    let (key, version) = (header.api_key.get(), header.api_version.get());
    let supported = ApiKey::from_u16(key).and_then(|api| {
        SUPPORTED_APIS
            .iter()
            .find(|(supported, _, _)| *supported == api)
    });
    let Some((api, min, max)) = supported.copied() else {
        let message =
            format!("api key {key} is unknown; ApiVersions lists what this broker speaks");
        return Decoded::Answer(error(correlation_id, ErrorCode::UnknownApi, message));
    };
    if version < min || version > max {
        let message =
            format!("{api:?} version {version} is unsupported; this broker speaks {min} to {max}");
        return Decoded::Answer(error(
            correlation_id,
            ErrorCode::UnsupportedVersion,
            message,
        ));
    }
    match Request::decode(api, Reader::new(frame)) {
        Ok(request) => Decoded::Request(NativeRequest {
            correlation_id,
            request,
        }),
        Err(failure) => {
            let message = format!("{}; closing the connection", failure.message);
            Decoded::Close(Some(error(correlation_id, failure.code, message)))
        }
    }
}
