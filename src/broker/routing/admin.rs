//! Exchange changes: create, delete, bind, unbind. They run on shard 0 in the same one-at-a-time
//! turn as topic changes: check against the current snapshot and the limits, write
//! `exchanges.json` durably, then hand every shard the new snapshot (`broker::snapshot`). The
//! request is answered once every shard has it, so a publish through any connection sees the
//! change at once; a shard that does not take it in time gets it from a retry, and the answer
//! says the change is saved but late there.

use std::rc::Rc;
use std::sync::Arc;

use super::model::{self, Binding, Destination, ExchangeKind, ExchangeMeta, Limits};
use super::store::{Exchange, Exchanges};
use crate::broker::ShardState;
use crate::broker::admin::{admin_turn, metadata_write_failed};
use crate::broker::error::{BrokerError, BrokerResult, ErrorKind};
use crate::config::BrokerConfig;
use crate::storage::log::now_ms;

/// An exchange to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewExchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub alternate_exchange: Option<String>,
}

/// The routing limits of the broker's configuration.
pub fn limits(config: &BrokerConfig) -> Limits {
    Limits {
        exchanges_max: config.exchanges_max,
        bindings_per_exchange_max: config.exchange_bindings_max,
        routing_key_bytes_max: config.routing_key_bytes_max,
        header_bytes_max: config.routing_header_bytes_max,
        binding_headers_max: config.binding_headers_max,
    }
}

pub fn unknown_exchange(name: &str) -> BrokerError {
    BrokerError::new(
        ErrorKind::UnknownExchange,
        format!("unknown exchange {name:?}"),
    )
}

/// Creates an exchange; declaring one that exists with the same type and alternate changes
/// nothing (RabbitMQ's declare), with another is `ExchangeExists`.
pub async fn create(state: &Rc<ShardState>, new: NewExchange) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    model::validate_name(&new.name)?;
    if let Some(alternate) = &new.alternate_exchange {
        model::validate_name(alternate)?;
    }
    let current = state.exchanges();
    if let Some(existing) = current.get(&new.name) {
        let same = existing.meta.kind == new.kind
            && existing.meta.alternate_exchange == new.alternate_exchange;
        return if same {
            Ok(())
        } else {
            Err(BrokerError::new(
                ErrorKind::ExchangeExists,
                format!(
                    "exchange {:?} exists as a {} exchange with alternate {:?}",
                    new.name,
                    existing.meta.kind.name(),
                    existing.meta.alternate_exchange
                ),
            ))
        };
    }
    let limits = limits(&state.config);
    if current.by_name.len() >= limits.exchanges_max {
        return Err(BrokerError::new(
            ErrorKind::ResourceLimit,
            format!(
                "the broker holds exchanges_max = {} exchanges already",
                limits.exchanges_max
            ),
        ));
    }
    let meta = ExchangeMeta {
        name: new.name.clone(),
        kind: new.kind,
        alternate_exchange: new.alternate_exchange,
        bindings: Vec::new(),
        created_ms: now_ms(),
    };
    let mut next = clone_map(&current);
    next.insert(new.name.clone(), Arc::new(Exchange::new(meta)));
    install(state, next).await?;
    tracing::info!(exchange = %new.name, kind = new.kind.name(), "created exchange");
    crate::metrics::revive("exchange", &new.name);
    Ok(())
}

/// Deletes an exchange and every binding of another exchange to it (as RabbitMQ does); an
/// exchange naming it as its alternate keeps the name, and finds nothing there.
pub async fn delete(state: &Rc<ShardState>, name: String) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let current = state.exchanges();
    if current.get(&name).is_none() {
        return Err(unknown_exchange(&name));
    }
    let mut next = clone_map(&current);
    next.remove(&name);
    let gone = Destination::Exchange(name.clone());
    for exchange in next.values_mut() {
        if exchange.meta.bindings.iter().any(|b| b.destination == gone) {
            let mut meta = exchange.meta.clone();
            meta.bindings.retain(|binding| binding.destination != gone);
            *exchange = Arc::new(Exchange::new(meta));
        }
    }
    install(state, next).await?;
    tracing::info!(exchange = %name, "deleted exchange");
    crate::metrics::retire("exchange", &name);
    Ok(())
}

/// Adds a binding (an identical one is not added twice). Its destination must exist now.
pub async fn bind(state: &Rc<ShardState>, exchange: String, binding: Binding) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let current = state.exchanges();
    let source = current
        .get(&exchange)
        .ok_or_else(|| unknown_exchange(&exchange))?;
    let limits = limits(&state.config);
    model::validate_binding(source.meta.kind, &binding, &limits)?;
    match &binding.destination {
        Destination::Topic(topic) if state.topics().get(topic).is_none() => {
            return Err(BrokerError::unknown_topic(topic));
        }
        Destination::Exchange(target) if current.get(target).is_none() => {
            return Err(unknown_exchange(target));
        }
        _ => {}
    }
    if source.meta.bindings.contains(&binding) {
        return Ok(());
    }
    if source.meta.bindings.len() >= limits.bindings_per_exchange_max {
        return Err(BrokerError::new(
            ErrorKind::ResourceLimit,
            format!(
                "exchange {exchange:?} holds exchange_bindings_max = {} bindings already",
                limits.bindings_per_exchange_max
            ),
        ));
    }
    let mut meta = source.meta.clone();
    meta.bindings.push(binding);
    replace(state, &current, meta).await
}

/// Removes a binding; removing one that is not there changes nothing (as in RabbitMQ).
pub async fn unbind(
    state: &Rc<ShardState>,
    exchange: String,
    binding: Binding,
) -> BrokerResult<()> {
    let _turn = admin_turn(state).await;
    let current = state.exchanges();
    let source = current
        .get(&exchange)
        .ok_or_else(|| unknown_exchange(&exchange))?;
    if !source.meta.bindings.contains(&binding) {
        return Ok(());
    }
    let mut meta = source.meta.clone();
    meta.bindings.retain(|existing| *existing != binding);
    replace(state, &current, meta).await
}

fn clone_map(current: &Exchanges) -> std::collections::BTreeMap<String, Arc<Exchange>> {
    current.by_name.clone()
}

async fn replace(
    state: &Rc<ShardState>,
    current: &Exchanges,
    meta: ExchangeMeta,
) -> BrokerResult<()> {
    let mut next = clone_map(current);
    next.insert(meta.name.clone(), Arc::new(Exchange::new(meta)));
    install(state, next).await
}

/// Saves the new snapshot, then has every shard take it.
async fn install(
    state: &Rc<ShardState>,
    by_name: std::collections::BTreeMap<String, Arc<Exchange>>,
) -> BrokerResult<()> {
    let next = Arc::new(Exchanges { by_name });
    let data_dir = state.config.data_dir.clone();
    let saving = next.clone();
    crate::runtime::blocking(move || saving.save(&data_dir))
        .await
        .map_err(|error| metadata_write_failed("exchange metadata", &error))?;
    super::publish_gauges(&next);
    crate::broker::snapshot::distribute(state, |shard| &shard.exchanges, next).await
}
