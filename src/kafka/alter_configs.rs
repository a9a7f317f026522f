//! Kafka's IncrementalAlterConfigs and AlterConfigs over a topic's settings, by Kafka's names
//! (`retention.ms`, `max.message.bytes`, ...; ringmq's own names work too). SET and DELETE
//! (back to the broker's default) apply; APPEND and SUBTRACT are for list settings, which no
//! alterable ringmq setting is. AlterConfigs replaces a topic's whole set: what it does not
//! name reverts to the default. The broker's own settings are read at start only, so changing
//! them is refused as Kafka refuses a change to a static broker setting.

use std::collections::HashMap;

use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::errors::{INVALID_CONFIG, INVALID_REQUEST, code_of};
use crate::broker::service::{ConfigChange, RequestContext, Service};

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// Kafka's GROUP config resource: a share group's `share.*` configs.
const RESOURCE_GROUP: i8 = 32;
const SET: i8 = 0;
const DELETE: i8 = 1;

/// One resource's outcome: Kafka's code and message (0 and None when done).
type Outcome = (i16, Option<String>);

/// The changes asked of one resource, or Kafka's refusal of them.
type Asked = Result<Vec<ConfigChange>, Outcome>;

async fn apply(
    service: &Service,
    ctx: &RequestContext,
    (resource_type, name): (i8, &str),
    changes: Asked,
    (replace_all, validate_only): (bool, bool),
) -> Outcome {
    let changes = match changes {
        Ok(changes) => changes,
        Err(refusal) => return refusal,
    };
    match resource_type {
        RESOURCE_TOPIC => {
            let outcome = service
                .alter_topic_config(ctx, name.to_string(), changes, (replace_all, validate_only))
                .await;
            match outcome {
                Ok(()) => (0, None),
                Err(error) => (code_of(&error), Some(error.message)),
            }
        }
        // Kafka's AlterConfigs (replacing all) does not take groups; IncrementalAlterConfigs does.
        RESOURCE_GROUP if !replace_all => {
            let changes = changes
                .into_iter()
                .map(|change| match change {
                    ConfigChange::Set(name, value) => (name, Some(value)),
                    ConfigChange::Delete(name) => (name, None),
                })
                .collect();
            let outcome = service
                .alter_share_group_configs(ctx, name.to_string(), changes, validate_only)
                .await;
            match outcome {
                Ok(()) => (0, None),
                Err(error) => (code_of(&error), Some(error.message)),
            }
        }
        RESOURCE_BROKER => (
            INVALID_REQUEST,
            Some("the broker's settings are read at start (ringmq serve's file and flags); they cannot be changed while it runs".into()),
        ),
        other => (INVALID_REQUEST, Some(format!("resource type {other} has no settings here"))),
    }
}

/// Each resource's outcome, in order: a resource named twice in one request is answered
/// INVALID_REQUEST every time (as Kafka does), the others are applied one after another.
async fn alter_all(
    service: &Service,
    ctx: &RequestContext,
    resources: Vec<(i8, &str, Asked)>,
    modes: (bool, bool),
) -> Vec<Outcome> {
    let mut seen: HashMap<(i8, &str), usize> = HashMap::new();
    for (resource_type, name, _) in &resources {
        *seen.entry((*resource_type, *name)).or_insert(0) += 1;
    }
    let mut outcomes = Vec::with_capacity(resources.len());
    for (resource_type, name, asked) in resources {
        let outcome = if seen.get(&(resource_type, name)).copied().unwrap_or(0) > 1 {
            (
                INVALID_REQUEST,
                Some("the request names this resource more than once".into()),
            )
        } else {
            apply(service, ctx, (resource_type, name), asked, modes).await
        };
        outcomes.push(outcome);
    }
    outcomes
}

pub async fn incremental(
    service: &Service,
    ctx: &RequestContext,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
    let asked = request.resources.iter().map(|resource| {
        let changes: Asked = resource
            .configs
            .iter()
            .map(|config| {
                let name = config.name.to_string();
                match (config.config_operation, &config.value) {
                    (SET, Some(value)) => Ok(ConfigChange::Set(name, value.to_string())),
                    (SET, None) => Err((
                        INVALID_REQUEST,
                        Some(format!("{name}: SET without a value")),
                    )),
                    (DELETE, _) => Ok(ConfigChange::Delete(name)),
                    _ => Err((
                        INVALID_CONFIG,
                        Some(format!(
                            "{name}: APPEND and SUBTRACT apply to list settings, which {name} is not"
                        )),
                    )),
                }
            })
            .collect();
        (resource.resource_type, resource.resource_name.as_str(), changes)
    });
    let outcomes = alter_all(
        service,
        ctx,
        asked.collect(),
        (false, request.validate_only),
    )
    .await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, (code, message))| {
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
        })
        .collect();
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub async fn replace(
    service: &Service,
    ctx: &RequestContext,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
    let asked = request.resources.iter().map(|resource| {
        // A null value leaves the setting out, so it reverts with the others.
        let changes: Asked = Ok(resource
            .configs
            .iter()
            .filter_map(|config| {
                let value = config.value.as_ref()?;
                Some(ConfigChange::Set(
                    config.name.to_string(),
                    value.to_string(),
                ))
            })
            .collect());
        (
            resource.resource_type,
            resource.resource_name.as_str(),
            changes,
        )
    });
    let outcomes = alter_all(service, ctx, asked.collect(), (true, request.validate_only)).await;
    let responses = request
        .resources
        .iter()
        .zip(outcomes)
        .map(|(resource, (code, message))| {
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message.map(StrBytes::from_string))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone())
        })
        .collect();
    AlterConfigsResponse::default().with_responses(responses)
}
