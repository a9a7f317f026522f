//! The actions on queues: create, find, list, delete, purge, attributes, tags and dead-letter
//! sources. A queue is a topic and a queue group of the same name (what `ringmq queue create`
//! makes), plus its SQS record (`store`); each action is a few service calls.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::attributes;
use super::errors::{SqsError, from_broker};
use super::params::{self, Params};
use super::store::{self, QueueMeta};
use super::{Handler, now_ms};
use crate::broker::ErrorKind;
use crate::broker::service::{ConfigChange, NewQueueGroup, NewTopic, Operation, ResourceType};

/// Tags one queue may have, and their bounds (SQS's).
const TAGS_MAX: usize = 50;
const TAG_KEY_BYTES_MAX: usize = 128;
const TAG_VALUE_BYTES_MAX: usize = 256;

impl Handler {
    /// A queue's SQS record, or the defaults for a queue made without SQS.
    pub async fn meta(&self, queue: &str) -> Result<QueueMeta, SqsError> {
        match store::get(&self.store, &self.service, &self.ctx, queue).await? {
            Some(meta) => Ok(meta),
            None => Ok(QueueMeta {
                attributes: attributes::defaults(
                    attributes::is_fifo_name(queue),
                    &self.state.config.sqs,
                ),
                ..QueueMeta::default()
            }),
        }
    }

    /// Fails with QueueDoesNotExist unless `queue` is a topic with a queue group of its name.
    pub async fn check_exists(&self, queue: &str) -> Result<(), SqsError> {
        self.service
            .describe_queue_group(&self.ctx, queue, queue)
            .await
            .map(drop)
            .map_err(not_found(queue))
    }
}

fn not_found(queue: &str) -> impl Fn(crate::broker::BrokerError) -> SqsError + '_ {
    move |error| match error.kind {
        ErrorKind::UnknownTopic | ErrorKind::UnknownQueueGroup => {
            SqsError::queue_does_not_exist(format!("the specified queue {queue} does not exist"))
        }
        _ => from_broker(error),
    }
}

fn tags_checked(tags: Vec<(String, String)>) -> Result<Vec<(String, String)>, SqsError> {
    if tags.len() > TAGS_MAX {
        return Err(SqsError::invalid_parameter_value(format!(
            "at most {TAGS_MAX} tags"
        )));
    }
    for (key, value) in &tags {
        if key.is_empty() || key.len() > TAG_KEY_BYTES_MAX || value.len() > TAG_VALUE_BYTES_MAX {
            return Err(SqsError::invalid_parameter_value(format!(
                "a tag key is 1 to {TAG_KEY_BYTES_MAX} bytes and its value at most {TAG_VALUE_BYTES_MAX}"
            )));
        }
    }
    Ok(tags)
}

pub async fn create_queue(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::required(p, "QueueName")?.to_string();
    params::check_queue_name(&queue)?;
    let config = &h.state.config.sqs;
    let given = params::string_map(p, "Attributes")?;
    for (name, value) in &given {
        attributes::check(name, value, &queue, true, config)?;
    }
    let tags = tags_checked(params::string_map(p, "tags")?)?;
    let fifo = attributes::is_fifo_name(&queue);
    let mut wanted = attributes::defaults(fifo, config);
    wanted.extend(given.iter().cloned());
    if h.check_exists(&queue).await.is_ok() {
        // SQS: creating an existing queue answers its URL, unless the attributes differ.
        let meta = h.meta(&queue).await?;
        let differs = given
            .iter()
            .any(|(name, value)| meta.attributes.get(name) != Some(value));
        if differs {
            return Err(SqsError::queue_name_exists(format!(
                "a queue named {queue} exists with different attributes"
            )));
        }
        return Ok(json!({ "QueueUrl": h.queue_url(&queue) }));
    }
    if let Some((dead_letter_queue, _)) = wanted
        .get("RedrivePolicy")
        .map(|policy| attributes::redrive_policy(policy))
        .transpose()?
        .flatten()
    {
        h.check_exists(&dead_letter_queue).await.map_err(|_| {
            SqsError::invalid_attribute_value(format!(
                "RedrivePolicy: the dead-letter queue {dead_letter_queue} does not exist"
            ))
        })?;
    }
    let retention_s = attributes::seconds(
        &wanted,
        "MessageRetentionPeriod",
        345_600,
        attributes::RETENTION_SECONDS_MAX,
    );
    let retention_ms = retention_s * 1000;
    let topic = NewTopic {
        name: queue.clone(),
        partitions: if fifo {
            1
        } else {
            h.service.default_partitions()
        },
        configs: vec![("retention.ms".to_string(), retention_ms.to_string())],
    };
    store::refresh(&h.store, &h.service, &h.ctx).await?;
    store::check_room(&h.store, &h.service, &queue)?;
    match h.service.create_topic(&h.ctx, topic).await {
        Ok(()) => {}
        Err(error) if error.kind == ErrorKind::TopicExists => {}
        Err(error) => return Err(from_broker(error)),
    }
    let group = NewQueueGroup {
        topic: queue.clone(),
        group: queue.clone(),
        configs: attributes::group_configs(&queue, &wanted)?,
    };
    match h.service.create_queue_group(&h.ctx, group).await {
        Ok(()) => {}
        Err(error) if error.kind == ErrorKind::QueueGroupExists => {}
        Err(error) => return Err(from_broker(error)),
    }
    let now_s = now_ms() / 1000;
    let meta = QueueMeta {
        attributes: wanted,
        tags: tags.into_iter().collect(),
        created_s: now_s,
        modified_s: now_s,
    };
    store::put(&h.store, &h.service, &h.ctx, &queue, Some(&meta)).await?;
    Ok(json!({ "QueueUrl": h.queue_url(&queue) }))
}

pub async fn get_queue_url(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::required(p, "QueueName")?;
    params::check_queue_name(queue)
        .map_err(|_| SqsError::queue_does_not_exist(format!("no queue {queue:?}")))?;
    h.check_exists(queue).await?;
    Ok(json!({ "QueueUrl": h.queue_url(queue) }))
}

pub async fn list_queues(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let prefix = params::string(p, "QueueNamePrefix")?.unwrap_or_default();
    let limit = i64::from(h.state.config.sqs.list_queues_max);
    let page = params::bounded(p, "MaxResults", 1, limit)?;
    let after = params::string(p, "NextToken")?.unwrap_or_default();
    let mut names: Vec<String> = h
        .service
        .list_queue_groups(&h.ctx)
        .await
        .map_err(from_broker)?
        .into_iter()
        .filter(|(topic, group)| {
            topic == group
                && topic.starts_with(prefix)
                && topic.as_str() > after
                && params::check_queue_name(topic).is_ok()
        })
        .map(|(topic, _)| topic)
        .collect();
    names.sort();
    let size = page.unwrap_or(limit) as usize;
    let more = names.len() > size;
    names.truncate(size);
    let mut result = Map::new();
    if !names.is_empty() {
        let urls = names.iter().map(|name| Value::String(h.queue_url(name)));
        result.insert("QueueUrls".into(), Value::Array(urls.collect()));
    }
    // As SQS, a token only when the caller pages (MaxResults) and more remain.
    if more
        && page.is_some()
        && let Some(last) = names.last()
    {
        result.insert("NextToken".into(), Value::String(last.clone()));
    }
    Ok(Value::Object(result))
}

pub async fn delete_queue(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    h.service
        .delete_queue_group(&h.ctx, &queue, &queue)
        .await
        .map_err(not_found(&queue))?;
    match h.service.delete_topic(&h.ctx, queue.clone()).await {
        Ok(()) => {}
        Err(error) if error.kind == ErrorKind::UnknownTopic => {}
        Err(error) => return Err(from_broker(error)),
    }
    store::put(&h.store, &h.service, &h.ctx, &queue, None).await?;
    Ok(json!({}))
}

pub async fn purge_queue(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    h.service
        .purge_queue_group(&h.ctx, &queue, &queue)
        .await
        .map_err(not_found(&queue))?;
    Ok(json!({}))
}

pub async fn get_queue_attributes(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let names = params::string_list(p, "AttributeNames")?;
    let described = h
        .service
        .describe_queue_group(&h.ctx, &queue, &queue)
        .await
        .map_err(not_found(&queue))?;
    let meta = h.meta(&queue).await?;
    let (mut available, mut in_flight, mut delayed) = (0u64, 0u64, 0u64);
    for partition in &described.partitions {
        available = available.saturating_add(partition.view.available);
        in_flight = in_flight.saturating_add(partition.view.in_flight);
        delayed = delayed.saturating_add(partition.view.delayed);
    }
    let mut all: BTreeMap<String, String> = meta.attributes.clone();
    for (name, value) in [
        ("QueueArn", attributes::arn(&h.state.config.sqs, &queue)),
        ("ApproximateNumberOfMessages", available.to_string()),
        (
            "ApproximateNumberOfMessagesNotVisible",
            in_flight.to_string(),
        ),
        ("ApproximateNumberOfMessagesDelayed", delayed.to_string()),
        ("CreatedTimestamp", meta.created_s.to_string()),
        ("LastModifiedTimestamp", meta.modified_s.to_string()),
    ] {
        all.insert(name.to_string(), value);
    }
    let mut shown = Map::new();
    for (name, value) in all {
        if names
            .iter()
            .any(|wanted| wanted == "All" || *wanted == name)
        {
            shown.insert(name, Value::String(value));
        }
    }
    for wanted in &names {
        let known = wanted == "All" || attributes::is_known(wanted);
        if !known {
            return Err(SqsError::invalid_attribute_name(format!(
                "unknown attribute {wanted}"
            )));
        }
    }
    if shown.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Attributes": shown }))
}

/// A queue's attributes and tags are its topic's settings: changing them needs AlterConfigs
/// on the topic (as Kafka's IncrementalAlterConfigs does), not just the store's Write that
/// every SQS user has.
fn may_alter(h: &Handler, queue: &str) -> Result<(), SqsError> {
    let alter = Operation::AlterConfigs;
    h.service
        .authorize(&h.ctx, ResourceType::Topic, queue, alter)
        .map_err(from_broker)
}

pub async fn set_queue_attributes(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let given = params::string_map(p, "Attributes")?;
    for (name, value) in &given {
        attributes::check(name, value, &queue, false, &h.state.config.sqs)?;
    }
    h.check_exists(&queue).await?;
    may_alter(h, &queue)?;
    let mut meta = h.meta(&queue).await?;
    for (name, value) in &given {
        match name.as_str() {
            "MessageRetentionPeriod" => {
                let retention_ms = value.parse::<u64>().unwrap_or(345_600) * 1000;
                let change = ConfigChange::Set("retention.ms".into(), retention_ms.to_string());
                h.service
                    .alter_topic_config(&h.ctx, queue.clone(), vec![change], (false, false))
                    .await
                    .map_err(from_broker)?;
            }
            "RedrivePolicy" => {
                let wanted: BTreeMap<String, String> =
                    [(name.clone(), value.clone())].into_iter().collect();
                if let Some((dead_letter_queue, _)) = attributes::redrive_policy(value)? {
                    h.check_exists(&dead_letter_queue).await.map_err(|_| {
                        SqsError::invalid_attribute_value(format!(
                            "RedrivePolicy: the dead-letter queue {dead_letter_queue} does not exist"
                        ))
                    })?;
                }
                let configs = attributes::group_configs(&queue, &wanted)?;
                h.service
                    .alter_queue_group(&h.ctx, &queue, &queue, configs)
                    .await
                    .map_err(from_broker)?;
            }
            _ => {}
        }
        if value.is_empty() && name == "RedrivePolicy" {
            meta.attributes.remove(name);
        } else {
            meta.attributes.insert(name.clone(), value.clone());
        }
    }
    meta.modified_s = now_ms() / 1000;
    store::put(&h.store, &h.service, &h.ctx, &queue, Some(&meta)).await?;
    Ok(json!({}))
}

pub async fn tag_queue(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let tags = tags_checked(params::string_map(p, "Tags")?)?;
    h.check_exists(&queue).await?;
    may_alter(h, &queue)?;
    let mut meta = h.meta(&queue).await?;
    meta.tags.extend(tags);
    if meta.tags.len() > TAGS_MAX {
        return Err(SqsError::invalid_parameter_value(format!(
            "a queue has at most {TAGS_MAX} tags"
        )));
    }
    store::put(&h.store, &h.service, &h.ctx, &queue, Some(&meta)).await?;
    Ok(json!({}))
}

pub async fn untag_queue(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let keys = params::string_list(p, "TagKeys")?;
    h.check_exists(&queue).await?;
    may_alter(h, &queue)?;
    let mut meta = h.meta(&queue).await?;
    for key in keys {
        meta.tags.remove(&key);
    }
    store::put(&h.store, &h.service, &h.ctx, &queue, Some(&meta)).await?;
    Ok(json!({}))
}

pub async fn list_queue_tags(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    h.check_exists(&queue).await?;
    let meta = h.meta(&queue).await?;
    if meta.tags.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Tags": meta.tags }))
}

pub async fn list_dead_letter_source_queues(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    h.check_exists(&queue).await?;
    store::refresh(&h.store, &h.service, &h.ctx).await?;
    let mut sources: Vec<String> = store::all(&h.store)
        .into_iter()
        .filter(|(_, meta)| {
            meta.attributes
                .get("RedrivePolicy")
                .and_then(|policy| attributes::redrive_policy(policy).ok().flatten())
                .is_some_and(|(target, _)| target == queue)
        })
        .map(|(name, _)| name)
        .collect();
    sources.sort();
    let urls: Vec<Value> = sources
        .iter()
        .map(|name| Value::String(h.queue_url(name)))
        .collect();
    Ok(json!({ "queueUrls": urls }))
}
