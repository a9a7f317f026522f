//! The native protocol's routing requests, served by the broker service: exchanges, bindings,
//! and publishing through an exchange (part of the native adapter, beside `dispatch.rs`).

use super::errors::{native_code, to_native};
use crate::broker::service::{
    Binding, CopyOutcome, Destination, ExchangeKind, ExchangeMeta, HeaderMatch, NewExchange,
    Publish, Published, RequestContext, Service,
};
use crate::protocol::routing::{
    BindingSpec, CopyResult, ExchangeDescription, ExchangeType, MatchMode, PublishResponse,
    RoutingRequest, RoutingResponse,
};
use crate::protocol::{ErrorCode, ProtocolError, Response};

/// Answers one routing request.
pub async fn serve(
    service: &Service,
    ctx: &RequestContext,
    request: RoutingRequest,
) -> Result<Response, ProtocolError> {
    let done = match request {
        RoutingRequest::CreateExchange {
            name,
            kind,
            alternate_exchange,
        } => {
            let new = NewExchange {
                name,
                kind: kind_from_wire(kind),
                alternate_exchange: Some(alternate_exchange).filter(|name| !name.is_empty()),
            };
            service.create_exchange(ctx, new).await
        }
        RoutingRequest::DeleteExchange { name } => service.delete_exchange(ctx, name).await,
        RoutingRequest::Bind { exchange, binding } => {
            service
                .bind(ctx, exchange, binding_from_wire(binding))
                .await
        }
        RoutingRequest::Unbind { exchange, binding } => {
            service
                .unbind(ctx, exchange, binding_from_wire(binding))
                .await
        }
        RoutingRequest::ListExchanges { names } => {
            let exchanges = service.exchanges(ctx, &names).map_err(to_native)?;
            let described = exchanges.into_iter().map(describe).collect();
            return Ok(Response::Routing(RoutingResponse::Exchanges(described)));
        }
        RoutingRequest::Publish(request) => {
            let publish = Publish {
                exchange: request.exchange,
                routing_key: request.routing_key,
                mandatory: request.mandatory,
                acks: request.acks,
                records: request.records,
            };
            let published = service.publish(ctx, publish).await.map_err(to_native)?;
            return Ok(Response::Routing(RoutingResponse::Published(
                published_to_wire(published),
            )));
        }
    };
    done.map(|()| Response::Done).map_err(to_native)
}

fn kind_from_wire(kind: ExchangeType) -> ExchangeKind {
    match kind {
        ExchangeType::Direct => ExchangeKind::Direct,
        ExchangeType::Topic => ExchangeKind::Topic,
        ExchangeType::Fanout => ExchangeKind::Fanout,
        ExchangeType::Headers => ExchangeKind::Headers,
    }
}

fn kind_to_wire(kind: ExchangeKind) -> ExchangeType {
    match kind {
        ExchangeKind::Direct => ExchangeType::Direct,
        ExchangeKind::Topic => ExchangeType::Topic,
        ExchangeKind::Fanout => ExchangeType::Fanout,
        ExchangeKind::Headers => ExchangeType::Headers,
    }
}

fn binding_from_wire(binding: BindingSpec) -> Binding {
    let destination = if binding.to_exchange {
        Destination::Exchange(binding.destination)
    } else {
        Destination::Topic(binding.destination)
    };
    Binding {
        destination,
        key: binding.key,
        headers: binding.headers,
        header_match: match binding.header_match {
            MatchMode::All => HeaderMatch::All,
            MatchMode::Any => HeaderMatch::Any,
            MatchMode::AllWithX => HeaderMatch::AllWithX,
            MatchMode::AnyWithX => HeaderMatch::AnyWithX,
        },
    }
}

fn binding_to_wire(binding: Binding) -> BindingSpec {
    let to_exchange = matches!(binding.destination, Destination::Exchange(_));
    BindingSpec {
        to_exchange,
        destination: binding.destination.name().to_string(),
        key: binding.key,
        header_match: match binding.header_match {
            HeaderMatch::All => MatchMode::All,
            HeaderMatch::Any => MatchMode::Any,
            HeaderMatch::AllWithX => MatchMode::AllWithX,
            HeaderMatch::AnyWithX => MatchMode::AnyWithX,
        },
        headers: binding.headers,
    }
}

fn describe(meta: ExchangeMeta) -> ExchangeDescription {
    ExchangeDescription {
        name: meta.name,
        kind: kind_to_wire(meta.kind),
        alternate_exchange: meta.alternate_exchange.unwrap_or_default(),
        bindings: meta.bindings.into_iter().map(binding_to_wire).collect(),
    }
}

fn published_to_wire(published: Published) -> PublishResponse {
    let copy = |copy: CopyOutcome| {
        let (error_code, message, (base_offset, last_offset)) = match copy.result {
            Ok(offsets) => (ErrorCode::None, String::new(), offsets),
            Err(error) => (native_code(error.kind), error.message, (0, 0)),
        };
        CopyResult {
            topic: copy.topic,
            partition: copy.partition.map_or(-1, i64::from),
            records: copy.records,
            error_code,
            message,
            base_offset,
            last_offset,
        }
    };
    PublishResponse {
        unroutable: published.unroutable,
        copies: published.copies.into_iter().map(copy).collect(),
    }
}
