//! The client's routing calls: exchanges, bindings, and publishing through an exchange.

use bytes::BytesMut;

use super::{Client, Result, unexpected};
use crate::batch::{BatchBuilder, Compression, Record};
use crate::protocol::routing::{
    BindingSpec, ExchangeDescription, ExchangeType, PublishRequest, PublishResponse,
    RoutingRequest, RoutingResponse,
};
use crate::protocol::{ErrorCode, ProtocolError, Request, Response};
use crate::storage::AckLevel;

impl Client {
    async fn routing(&self, request: RoutingRequest) -> Result<Response> {
        self.connection.request(Request::Routing(request)).await
    }

    /// Creates an exchange (declaring an identical one again is no error); `alternate` receives
    /// what it cannot route.
    pub async fn create_exchange(
        &self,
        name: &str,
        kind: ExchangeType,
        alternate: Option<&str>,
    ) -> Result<()> {
        self.routing(RoutingRequest::CreateExchange {
            name: name.into(),
            kind,
            alternate_exchange: alternate.unwrap_or_default().into(),
        })
        .await
        .map(drop)
    }

    /// Deletes an exchange and the bindings of other exchanges to it.
    pub async fn delete_exchange(&self, name: &str) -> Result<()> {
        self.routing(RoutingRequest::DeleteExchange { name: name.into() })
            .await
            .map(drop)
    }

    /// Binds `exchange` to a topic, or to an exchange with `binding.to_exchange`.
    pub async fn bind(&self, exchange: &str, binding: BindingSpec) -> Result<()> {
        self.routing(RoutingRequest::Bind {
            exchange: exchange.into(),
            binding,
        })
        .await
        .map(drop)
    }

    /// Removes a binding (one that is not there: nothing changes).
    pub async fn unbind(&self, exchange: &str, binding: BindingSpec) -> Result<()> {
        self.routing(RoutingRequest::Unbind {
            exchange: exchange.into(),
            binding,
        })
        .await
        .map(drop)
    }

    /// The named exchanges with their bindings, or every exchange when `names` is empty.
    pub async fn exchanges(&self, names: &[&str]) -> Result<Vec<ExchangeDescription>> {
        let names = names.iter().map(|name| name.to_string()).collect();
        match self
            .routing(RoutingRequest::ListExchanges { names })
            .await?
        {
            Response::Routing(RoutingResponse::Exchanges(exchanges)) => Ok(exchanges),
            other => Err(unexpected(other)),
        }
    }

    /// Publishes `records` through `exchange` with `routing_key`, in one batch. The answer has
    /// one entry per partition the copies went to, each with its own error code: check
    /// `PublishResponse::failed`. A `mandatory` publish that some record could not be routed
    /// fails whole with `unroutable`, storing nothing.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        records: Vec<Record>,
        acks: AckLevel,
        mandatory: bool,
    ) -> Result<PublishResponse> {
        if records.is_empty() {
            return Err(super::ClientError::Server(ProtocolError::new(
                ErrorCode::MalformedRequest,
                "a publish holds at least one record",
            )));
        }
        let mut builder = BatchBuilder::new(Compression::None);
        for record in records {
            builder.push(record);
        }
        let request = PublishRequest {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            mandatory,
            acks,
            records: BytesMut::from(&builder.build()[..]),
        };
        match self.routing(RoutingRequest::Publish(request)).await? {
            Response::Routing(RoutingResponse::Published(published)) => Ok(published),
            other => Err(unexpected(other)),
        }
    }
}
