//! The native protocol's routing messages (API keys 60 to 65): exchanges, bindings, and
//! publishing through an exchange. Beside `messages.rs`, which carries them as
//! `Request::Routing` and `Response::Routing`; docs/PROTOCOL.md mirrors them byte by byte.

use bytes::BytesMut;

use super::codec::{FrameWriter, Reader};
use super::error::{ErrorCode, ProtocolError};
use super::messages::{ApiKey, acks_from_wire, acks_to_wire};
use crate::storage::AckLevel;

fn malformed(what: String) -> ProtocolError {
    ProtocolError::new(ErrorCode::MalformedRequest, what)
}

/// A small enum on the wire as one byte: its names in wire order.
fn from_byte<T: Copy>(value: u8, all: &[T], what: &str) -> Result<T, ProtocolError> {
    all.get(usize::from(value))
        .copied()
        .ok_or_else(|| malformed(format!("{what} {value} is not 0 to {}", all.len() - 1)))
}

/// An exchange's type: 0 direct, 1 topic, 2 fanout, 3 headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeType {
    Direct = 0,
    Topic = 1,
    Fanout = 2,
    Headers = 3,
}

impl ExchangeType {
    pub const ALL: [ExchangeType; 4] = [
        ExchangeType::Direct,
        ExchangeType::Topic,
        ExchangeType::Fanout,
        ExchangeType::Headers,
    ];
}

/// A headers binding's x-match: 0 all, 1 any, 2 all-with-x, 3 any-with-x.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MatchMode {
    #[default]
    All = 0,
    Any = 1,
    AllWithX = 2,
    AnyWithX = 3,
}

impl MatchMode {
    pub const ALL: [MatchMode; 4] = [
        MatchMode::All,
        MatchMode::Any,
        MatchMode::AllWithX,
        MatchMode::AnyWithX,
    ];
}

/// One binding: to a topic, or (`to_exchange`) to another exchange.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BindingSpec {
    pub to_exchange: bool,
    pub destination: String,
    pub key: String,
    pub header_match: MatchMode,
    /// Header name and value (None: the header need only be present).
    pub headers: Vec<(String, Option<String>)>,
}

/// An exchange with its bindings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeDescription {
    pub name: String,
    pub kind: ExchangeType,
    /// Empty: none.
    pub alternate_exchange: String,
    pub bindings: Vec<BindingSpec>,
}

#[derive(Debug)]
pub struct PublishRequest {
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    pub acks: AckLevel,
    /// Whole record batches, end to end.
    pub records: BytesMut,
}

/// The copies bound for one partition of one topic, and what became of them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyResult {
    pub topic: String,
    /// -1: the topic was not found.
    pub partition: i64,
    pub records: u32,
    pub error_code: ErrorCode,
    pub message: String,
    pub base_offset: u64,
    pub last_offset: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PublishResponse {
    pub unroutable: u32,
    pub copies: Vec<CopyResult>,
}

impl PublishResponse {
    /// The copies that were not stored: the publish is acknowledged only when this is empty.
    pub fn failed(&self) -> impl Iterator<Item = &CopyResult> {
        self.copies
            .iter()
            .filter(|copy| copy.error_code != ErrorCode::None)
    }
}

#[derive(Debug)]
pub enum RoutingRequest {
    CreateExchange {
        name: String,
        kind: ExchangeType,
        alternate_exchange: String,
    },
    DeleteExchange {
        name: String,
    },
    Bind {
        exchange: String,
        binding: BindingSpec,
    },
    Unbind {
        exchange: String,
        binding: BindingSpec,
    },
    /// Empty `names` asks for every exchange.
    ListExchanges {
        names: Vec<String>,
    },
    Publish(PublishRequest),
}

#[derive(Clone, Debug)]
pub enum RoutingResponse {
    Exchanges(Vec<ExchangeDescription>),
    Published(PublishResponse),
}

fn put_binding(writer: &mut FrameWriter, binding: &BindingSpec) {
    writer.u8(u8::from(binding.to_exchange));
    writer.string(&binding.destination);
    writer.string(&binding.key);
    writer.u8(binding.header_match as u8);
    writer.u32(binding.headers.len() as u32);
    for (name, value) in &binding.headers {
        writer.string(name);
        writer.u8(u8::from(value.is_some()));
        writer.string(value.as_deref().unwrap_or_default());
    }
}

fn read_binding(reader: &mut Reader) -> Result<BindingSpec, ProtocolError> {
    let to_exchange = from_byte(reader.u8()?, &[false, true], "destination kind")?;
    let destination = reader.string()?;
    let key = reader.string()?;
    let header_match = from_byte(reader.u8()?, &MatchMode::ALL, "x-match")?;
    let count = reader.count(5)?;
    let headers = (0..count)
        .map(|_| {
            let name = reader.string()?;
            let present = from_byte(reader.u8()?, &[false, true], "header value flag")?;
            let value = reader.string()?;
            Ok((name, present.then_some(value)))
        })
        .collect::<Result<_, ProtocolError>>()?;
    Ok(BindingSpec {
        to_exchange,
        destination,
        key,
        header_match,
        headers,
    })
}

impl RoutingRequest {
    pub fn api_key(&self) -> ApiKey {
        match self {
            RoutingRequest::CreateExchange { .. } => ApiKey::CreateExchange,
            RoutingRequest::DeleteExchange { .. } => ApiKey::DeleteExchange,
            RoutingRequest::Bind { .. } => ApiKey::Bind,
            RoutingRequest::Unbind { .. } => ApiKey::Unbind,
            RoutingRequest::ListExchanges { .. } => ApiKey::ListExchanges,
            RoutingRequest::Publish(_) => ApiKey::Publish,
        }
    }

    pub fn encode(self, writer: &mut FrameWriter) {
        match self {
            RoutingRequest::CreateExchange {
                name,
                kind,
                alternate_exchange,
            } => {
                writer.string(&name);
                writer.u8(kind as u8);
                writer.string(&alternate_exchange);
            }
            RoutingRequest::DeleteExchange { name } => writer.string(&name),
            RoutingRequest::Bind { exchange, binding }
            | RoutingRequest::Unbind { exchange, binding } => {
                writer.string(&exchange);
                put_binding(writer, &binding);
            }
            RoutingRequest::ListExchanges { names } => super::messages::put_strings(writer, &names),
            RoutingRequest::Publish(publish) => {
                writer.string(&publish.exchange);
                writer.string(&publish.routing_key);
                writer.u8(u8::from(publish.mandatory));
                writer.u8(acks_to_wire(publish.acks));
                writer.chunks(vec![publish.records.freeze()]);
            }
        }
    }

    /// Decodes the body of a routing request of `api`.
    pub fn decode(api: ApiKey, reader: &mut Reader) -> Result<RoutingRequest, ProtocolError> {
        let request = match api {
            ApiKey::CreateExchange => RoutingRequest::CreateExchange {
                name: reader.string()?,
                kind: from_byte(reader.u8()?, &ExchangeType::ALL, "exchange type")?,
                alternate_exchange: reader.string()?,
            },
            ApiKey::DeleteExchange => RoutingRequest::DeleteExchange {
                name: reader.string()?,
            },
            ApiKey::Bind => RoutingRequest::Bind {
                exchange: reader.string()?,
                binding: read_binding(reader)?,
            },
            ApiKey::Unbind => RoutingRequest::Unbind {
                exchange: reader.string()?,
                binding: read_binding(reader)?,
            },
            ApiKey::ListExchanges => {
                let count = reader.count(2)?;
                RoutingRequest::ListExchanges {
                    names: (0..count)
                        .map(|_| reader.string())
                        .collect::<Result<_, _>>()?,
                }
            }
            ApiKey::Publish => RoutingRequest::Publish(PublishRequest {
                exchange: reader.string()?,
                routing_key: reader.string()?,
                mandatory: from_byte(reader.u8()?, &[false, true], "mandatory")?,
                acks: acks_from_wire(reader.u8()?)?,
                records: reader.bytes()?,
            }),
            other => return Err(malformed(format!("{other:?} is not a routing request"))),
        };
        Ok(request)
    }
}

impl RoutingResponse {
    pub fn encode(self, writer: &mut FrameWriter) {
        match self {
            RoutingResponse::Exchanges(exchanges) => {
                writer.u32(exchanges.len() as u32);
                for exchange in &exchanges {
                    writer.string(&exchange.name);
                    writer.u8(exchange.kind as u8);
                    writer.string(&exchange.alternate_exchange);
                    writer.u32(exchange.bindings.len() as u32);
                    for binding in &exchange.bindings {
                        put_binding(writer, binding);
                    }
                }
            }
            RoutingResponse::Published(published) => {
                writer.u32(published.unroutable);
                writer.u32(published.copies.len() as u32);
                for copy in &published.copies {
                    writer.string(&copy.topic);
                    writer.i64(copy.partition);
                    writer.u32(copy.records);
                    writer.u16(copy.error_code as u16);
                    writer.string(&copy.message);
                    writer.u64(copy.base_offset);
                    writer.u64(copy.last_offset);
                }
            }
        }
    }

    /// Decodes the response to a routing request of `api` that answers with a body.
    pub fn decode(api: ApiKey, reader: &mut Reader) -> Result<RoutingResponse, ProtocolError> {
        let response = match api {
            ApiKey::ListExchanges => {
                let count = reader.count(12)?;
                let exchanges = (0..count)
                    .map(|_| {
                        let name = reader.string()?;
                        let kind = from_byte(reader.u8()?, &ExchangeType::ALL, "exchange type")?;
                        let alternate_exchange = reader.string()?;
                        let bindings = reader.count(14)?;
                        let bindings = (0..bindings)
                            .map(|_| read_binding(reader))
                            .collect::<Result<_, _>>()?;
                        Ok(ExchangeDescription {
                            name,
                            kind,
                            alternate_exchange,
                            bindings,
                        })
                    })
                    .collect::<Result<_, ProtocolError>>()?;
                RoutingResponse::Exchanges(exchanges)
            }
            ApiKey::Publish => {
                let unroutable = reader.u32()?;
                let count = reader.count(34)?;
                let copies = (0..count)
                    .map(|_| {
                        Ok(CopyResult {
                            topic: reader.string()?,
                            partition: reader.i64()?,
                            records: reader.u32()?,
                            error_code: {
                                let code = reader.u16()?;
                                ErrorCode::from_u16(code)
                                    .ok_or_else(|| malformed(format!("error code {code}")))?
                            },
                            message: reader.string()?,
                            base_offset: reader.u64()?,
                            last_offset: reader.u64()?,
                        })
                    })
                    .collect::<Result<_, ProtocolError>>()?;
                RoutingResponse::Published(PublishResponse { unroutable, copies })
            }
            other => return Err(malformed(format!("{other:?} answers with no body"))),
        };
        Ok(response)
    }
}
