//! The service's routing operations: exchanges and their bindings (changed on shard 0, like
//! topics), and publishing through an exchange (routed on the shard that received it). Each
//! asks `authorize` first: changing exchanges and bindings is Alter on the cluster (or Create,
//! Delete for creating, deleting), listing them Describe on the cluster, and a publish needs
//! Write on every topic one of its records is routed to, checked before anything is stored.

use std::future::Future;
use std::rc::Rc;

use super::acls::CLUSTER;
use super::{RequestContext, Service};
use crate::broker::ShardState;
use crate::broker::acls::{Operation, ResourceType};
use crate::broker::error::BrokerResult;
use crate::broker::routing::admin::{self, NewExchange};
use crate::broker::routing::model::{Binding, ExchangeMeta};
use crate::broker::routing::publish::{self, Publish, Published};
use crate::broker::{BrokerError, ErrorKind};

impl Service {
    /// Creates an exchange; answered once every shard has it.
    pub async fn create_exchange(
        &self,
        ctx: &RequestContext,
        new: NewExchange,
    ) -> BrokerResult<()> {
        self.change_exchanges(ctx, Operation::Create, move |zero| async move {
            admin::create(&zero, new).await
        })
        .await
    }

    /// Deletes an exchange, and the bindings of other exchanges to it.
    pub async fn delete_exchange(&self, ctx: &RequestContext, name: String) -> BrokerResult<()> {
        self.change_exchanges(ctx, Operation::Delete, move |zero| async move {
            admin::delete(&zero, name).await
        })
        .await
    }

    /// Binds `exchange` to a topic or another exchange.
    pub async fn bind(
        &self,
        ctx: &RequestContext,
        exchange: String,
        binding: Binding,
    ) -> BrokerResult<()> {
        self.change_exchanges(ctx, Operation::Alter, move |zero| async move {
            admin::bind(&zero, exchange, binding).await
        })
        .await
    }

    /// Removes a binding of `exchange` (none there: nothing changes).
    pub async fn unbind(
        &self,
        ctx: &RequestContext,
        exchange: String,
        binding: Binding,
    ) -> BrokerResult<()> {
        self.change_exchanges(ctx, Operation::Alter, move |zero| async move {
            admin::unbind(&zero, exchange, binding).await
        })
        .await
    }

    /// One change to the exchanges, authorized (Alter on the cluster, or `operation` on it),
    /// then made on shard 0, which every change goes through.
    async fn change_exchanges<F, Fut>(
        &self,
        ctx: &RequestContext,
        operation: Operation,
        change: F,
    ) -> BrokerResult<()>
    where
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: Future<Output = BrokerResult<()>> + 'static,
    {
        if !self.is_authorized(ctx, ResourceType::Cluster, CLUSTER, Operation::Alter) {
            self.authorize(ctx, ResourceType::Cluster, CLUSTER, operation)?;
        }
        self.state.on_shard_until(ctx.deadline, 0, change).await
    }

    /// The exchanges named (every exchange when `names` is empty), with their bindings.
    pub fn exchanges(
        &self,
        ctx: &RequestContext,
        names: &[String],
    ) -> BrokerResult<Vec<ExchangeMeta>> {
        self.authorize(ctx, ResourceType::Cluster, CLUSTER, Operation::Describe)?;
        let exchanges = self.state.exchanges();
        if names.is_empty() {
            return Ok(exchanges.by_name.values().map(|x| x.meta.clone()).collect());
        }
        // A name asked for twice is answered once, and no request asks for more exchanges
        // than there may be: one small request cannot make a response of many copies.
        let mut unique: Vec<&String> = names.iter().collect();
        unique.sort_unstable();
        unique.dedup();
        let limit = self.state.config.exchanges_max;
        if unique.len() > limit {
            return Err(BrokerError::new(
                ErrorKind::InvalidRequest,
                format!("at most exchanges_max ({limit}) names a request"),
            ));
        }
        unique
            .into_iter()
            .map(|name| {
                exchanges
                    .get(name)
                    .map(|exchange| exchange.meta.clone())
                    .ok_or_else(|| admin::unknown_exchange(name))
            })
            .collect()
    }

    /// Publishes records through an exchange: one copy to each matched topic, answered when
    /// every copy reached `acks` or failed (the answer says which).
    /// A record routed to a topic the principal may not Write refuses the whole publish with
    /// `topic_authorization_failed`, storing nothing.
    pub async fn publish(&self, ctx: &RequestContext, request: Publish) -> BrokerResult<Published> {
        let may_write =
            |topic: &str| self.authorize(ctx, ResourceType::Topic, topic, Operation::Write);
        publish::publish(&self.state, ctx.deadline, request, may_write).await
    }
}
