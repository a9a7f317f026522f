//! The actions on messages: send (one or a batch), receive, delete and visibility changes (one
//! or a batch). A message is a record of the queue's topic: its body the value, its attributes
//! and SQS's system values headers (`message_attributes`), its per-message delay `x-delay-ms`,
//! its FIFO message group `x-group-key` and its deduplication id `x-dedup-id`. A receive is a
//! queue-group receive by a consumer of its own (`receipt`); deletes and visibility changes
//! settle what that consumer holds.

use std::collections::{BTreeMap, HashSet};

use bytes::{Bytes, BytesMut};
use serde_json::{Map, Value, json};

use super::attributes::{self, VISIBILITY_SECONDS_MAX, WAIT_SECONDS_MAX};
use super::errors::{SqsError, from_broker};
use super::message_attributes::{self as message, Attribute, SYSTEM_PREFIX, USER_PREFIX};
use super::params::{self, Params};
use super::receipt::{self, Receipt};
use super::{Handler, now_ms};
use crate::batch::{BatchBuilder, Compression, Header, Record};
use crate::broker::service::{
    AckLevel, PartitionChoice, Produce, Receive, ReceivedMessage, Settle, SettleAction,
};

/// Entries one batch call may have.
const BATCH_ENTRIES_MAX: usize = 10;
/// Messages one receive may return (SQS's bound).
const RECEIVE_MAX: i64 = 10;
/// Bytes of message bodies one receive returns at most (at least one message is returned
/// whole); with XML's escaping at most 5 bytes per byte, this bounds what a receive's answer
/// reserves in the connection layer.
pub const RECEIVE_BYTES: u32 = 256 * 1024;
const DEDUP_HEADER: &str = "x-dedup-id";
const GROUP_HEADER: &str = "x-group-key";
const DELAY_HEADER: &str = "x-delay-ms";
/// Who sent a message (SenderId): the sender's principal, or the account id when anonymous.
const SENDER_HEADER: &str = "sqs.sender";
/// SQS's shortest visibility is 0 (visible again at once); a queue group's lock is at least this.
const VISIBILITY_MS_MIN: u64 = 10;
/// Bytes of a batch entry id, a group id or a deduplication id.
const ID_BYTES_MAX: usize = 128;

/// A message to send, checked.
struct Outgoing {
    body: String,
    attributes: Vec<Attribute>,
    system: Vec<Attribute>,
    delay_s: u64,
    group: Option<String>,
    dedup: Option<String>,
    /// The SenderId the message is stored with.
    sender: String,
}

/// The SenderId of what `h`'s principal sends.
fn sender_id(h: &Handler) -> String {
    match &h.ctx.principal {
        crate::broker::service::Principal::User(user) => user.clone(),
        crate::broker::service::Principal::Anonymous => h.state.config.sqs.account_id.clone(),
    }
}

fn check_id(what: &str, id: &str, max: usize) -> Result<(), SqsError> {
    let allowed = |byte: u8| byte.is_ascii_graphic();
    if id.is_empty() || id.len() > max || !id.bytes().all(allowed) {
        return Err(SqsError::invalid_parameter_value(format!(
            "{what} must be 1 to {max} printable ASCII characters"
        )));
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Reads and checks one message (a SendMessage, or one batch entry) for `queue`.
fn outgoing(
    h: &Handler,
    p: &Params,
    queue: &str,
    queue_attributes: &BTreeMap<String, String>,
) -> Result<Outgoing, SqsError> {
    let body = params::required(p, "MessageBody")?.to_string();
    if body.is_empty() {
        return Err(SqsError::missing_parameter(
            "the message body must not be empty",
        ));
    }
    if !message::valid_body(&body) {
        return Err(SqsError::invalid_message_contents(
            "the message contains characters outside the allowed set",
        ));
    }
    let attributes = message::parse(p.get("MessageAttributes"))?;
    let system = message::parse(p.get("MessageSystemAttributes"))?;
    if system
        .iter()
        .any(|attribute| attribute.name != "AWSTraceHeader")
    {
        return Err(SqsError::invalid_parameter_value(
            "AWSTraceHeader is the only message system attribute a sender may set",
        ));
    }
    let size = attributes
        .iter()
        .map(Attribute::size_bytes)
        .sum::<usize>()
        .saturating_add(body.len());
    let largest = u64::from(h.state.config.sqs.message_bytes_max);
    let max = attributes::seconds(queue_attributes, "MaximumMessageSize", largest, largest);
    if size as u64 > max {
        return Err(SqsError::invalid_parameter_value(format!(
            "the message is {size} bytes; this queue's MaximumMessageSize is {max}"
        )));
    }
    let fifo = attributes::is_fifo_name(queue);
    let delay_max = i64::from(h.state.config.sqs.delay_seconds_max);
    let delay = params::bounded(p, "DelaySeconds", 0, delay_max)?;
    if fifo && delay.is_some() {
        return Err(SqsError::invalid_parameter_value(
            "a FIFO queue's messages take the queue's DelaySeconds; per message it is not allowed",
        ));
    }
    let delay_s = delay.map_or_else(
        || attributes::seconds(queue_attributes, "DelaySeconds", 0, delay_max as u64),
        |delay| delay as u64,
    );
    let group = params::string(p, "MessageGroupId")?.map(str::to_string);
    let mut dedup = params::string(p, "MessageDeduplicationId")?.map(str::to_string);
    if let Some(group) = &group {
        check_id("MessageGroupId", group, ID_BYTES_MAX)?;
    }
    if let Some(dedup) = &dedup {
        check_id("MessageDeduplicationId", dedup, ID_BYTES_MAX)?;
    }
    if fifo {
        let Some(group) = &group else {
            return Err(SqsError::missing_parameter(
                "the request must contain the parameter MessageGroupId",
            ));
        };
        if dedup.is_none() {
            if queue_attributes
                .get("ContentBasedDeduplication")
                .map(String::as_str)
                != Some("true")
            {
                return Err(SqsError::invalid_parameter_value(
                    "the queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly",
                ));
            }
            dedup = Some(sha256_hex(body.as_bytes()));
        }
        if queue_attributes
            .get("DeduplicationScope")
            .map(String::as_str)
            == Some("messageGroup")
            && let Some(id) = dedup.take()
        {
            dedup = Some(format!("{group}\n{id}"));
        }
    } else if dedup.is_some() {
        return Err(SqsError::invalid_parameter_value(
            "MessageDeduplicationId is for FIFO queues only",
        ));
    }
    Ok(Outgoing {
        body,
        attributes,
        system,
        delay_s,
        group,
        dedup,
        sender: sender_id(h),
    })
}

fn record(message: &Outgoing, sent_ms: i64) -> Record {
    let mut record = Record::new(sent_ms, None, Some(message.body.as_bytes()));
    for attribute in &message.attributes {
        record.headers.push(attribute.to_header(USER_PREFIX));
    }
    for attribute in &message.system {
        record.headers.push(attribute.to_header(SYSTEM_PREFIX));
    }
    let mut header = |key: &str, value: String| {
        record.headers.push(Header {
            key: key.to_string(),
            value: Some(Bytes::from(value)),
        })
    };
    header(SENDER_HEADER, message.sender.clone());
    if message.delay_s > 0 {
        header(DELAY_HEADER, (message.delay_s * 1000).to_string());
    }
    if let Some(group) = &message.group {
        header(GROUP_HEADER, group.clone());
    }
    if let Some(dedup) = &message.dedup {
        header(DEDUP_HEADER, dedup.clone());
    }
    record
}

/// A message's id: derived from where it is stored, so every receive names it the same.
fn message_id(queue: &str, partition: u32, offset: u64) -> String {
    let mut key = Vec::with_capacity(queue.len() + 12);
    key.extend_from_slice(queue.as_bytes());
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&offset.to_be_bytes());
    let hash = xxhash_rust::xxh3::xxh3_128(&key);
    uuid::Builder::from_random_bytes(hash.to_be_bytes())
        .into_uuid()
        .to_string()
}

fn sequence_number(partition: u32, offset: u64) -> String {
    // SQS's are 128-bit decimals that grow within a group; ours grow with the offset.
    format!("{:020}", (u128::from(partition) << 64) | u128::from(offset))
}

fn sent(queue: &str, message: &Outgoing, partition: u32, offset: u64) -> Map<String, Value> {
    let mut result = Map::new();
    result.insert(
        "MessageId".into(),
        Value::String(message_id(queue, partition, offset)),
    );
    result.insert(
        "MD5OfMessageBody".into(),
        Value::String(message::md5_of_body(message.body.as_bytes())),
    );
    if let Some(md5) = message::md5_of_attributes(&message.attributes) {
        result.insert("MD5OfMessageAttributes".into(), Value::String(md5));
    }
    if let Some(md5) = message::md5_of_attributes(&message.system) {
        result.insert("MD5OfMessageSystemAttributes".into(), Value::String(md5));
    }
    if attributes::is_fifo_name(queue) {
        result.insert(
            "SequenceNumber".into(),
            Value::String(sequence_number(partition, offset)),
        );
    }
    result
}

impl Handler {
    /// Appends `messages` to `queue` in one batch: (partition, offset of the first).
    async fn append(&self, queue: &str, messages: &[&Outgoing]) -> Result<(u32, u64), SqsError> {
        let sent_ms = now_ms() as i64;
        let mut builder = BatchBuilder::new(Compression::None);
        for message in messages {
            builder.push(record(message, sent_ms));
        }
        let partitions = self
            .service
            .topic(&self.ctx, queue)
            .map_err(from_broker)?
            .partitions
            .max(1);
        let partition = (receipt::new_nonce() % u64::from(partitions)) as u32;
        let produce = Produce {
            topic: queue.to_string(),
            partition: PartitionChoice::Index(partition),
            acks: AckLevel::Fsynced,
            records: BytesMut::from(&builder.build()[..]),
        };
        let produced = self
            .service
            .produce(&self.ctx, produce)
            .await
            .map_err(from_broker)?;
        Ok((produced.partition, produced.base_offset))
    }
}

pub async fn send_message(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let meta = h.meta(&queue).await?;
    let message = outgoing(h, p, &queue, &meta.attributes)?;
    let (partition, offset) = h.append(&queue, &[&message]).await?;
    Ok(Value::Object(sent(&queue, &message, partition, offset)))
}

/// A batch's entries, checked as SQS checks them before any entry is tried.
fn entries(p: &Params) -> Result<Vec<&Params>, SqsError> {
    let entries = match p.get("Entries") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(entries)) => entries
            .iter()
            .map(|entry| {
                entry.as_object().ok_or_else(|| {
                    SqsError::invalid_parameter_value("a batch entry is not a structure")
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(SqsError::invalid_parameter_value("Entries is not a list")),
    };
    if entries.is_empty() {
        return Err(SqsError::empty_batch_request(
            "there should be at least one entry in the request",
        ));
    }
    if entries.len() > BATCH_ENTRIES_MAX {
        return Err(SqsError::too_many_entries(format!(
            "maximum number of entries per request is {BATCH_ENTRIES_MAX}; you have sent {}",
            entries.len()
        )));
    }
    let mut seen = HashSet::new();
    for entry in &entries {
        let id = params::required(entry, "Id")?;
        let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_');
        if id.is_empty() || id.len() > 80 || !id.bytes().all(allowed) {
            return Err(SqsError::invalid_batch_entry_id(
                "a batch entry id is 1 to 80 of [A-Za-z0-9_-]",
            ));
        }
        if !seen.insert(id) {
            return Err(SqsError::batch_entry_ids_not_distinct(format!(
                "id {id} repeated"
            )));
        }
    }
    Ok(entries)
}

fn failed(id: &str, error: &SqsError) -> Value {
    json!({
        "Id": id,
        "SenderFault": error.sender,
        "Code": error.code,
        "Message": error.message,
    })
}

fn batch_result(successful: Vec<Value>, failures: Vec<Value>) -> Value {
    json!({ "Successful": successful, "Failed": failures })
}

pub async fn send_message_batch(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let entries = entries(p)?;
    let meta = h.meta(&queue).await?;
    let total: usize = entries
        .iter()
        .filter_map(|entry| params::string(entry, "MessageBody").ok().flatten())
        .map(str::len)
        .sum();
    let largest = u64::from(h.state.config.sqs.message_bytes_max);
    let max = attributes::seconds(&meta.attributes, "MaximumMessageSize", largest, largest);
    if total as u64 > max {
        return Err(SqsError::batch_request_too_long(format!(
            "the batch's bodies are {total} bytes; at most {max}"
        )));
    }
    let (mut good, mut failures) = (Vec::new(), Vec::new());
    for entry in &entries {
        let id = params::required(entry, "Id")?;
        match outgoing(h, entry, &queue, &meta.attributes) {
            Ok(message) => good.push((id, message)),
            Err(error) => failures.push(failed(id, &error)),
        }
    }
    let mut successful = Vec::new();
    if attributes::is_fifo_name(&queue) {
        // One append each: a duplicate is answered with the offset of its original.
        for (id, message) in &good {
            match h.append(&queue, &[message]).await {
                Ok((partition, offset)) => {
                    let mut result = sent(&queue, message, partition, offset);
                    result.insert("Id".into(), Value::String(id.to_string()));
                    successful.push(Value::Object(result));
                }
                Err(error) => failures.push(failed(id, &error)),
            }
        }
    } else if !good.is_empty() {
        let messages: Vec<&Outgoing> = good.iter().map(|(_, message)| message).collect();
        match h.append(&queue, &messages).await {
            Ok((partition, first)) => {
                for (index, (id, message)) in good.iter().enumerate() {
                    let offset = first.saturating_add(index as u64);
                    let mut result = sent(&queue, message, partition, offset);
                    result.insert("Id".into(), Value::String(id.to_string()));
                    successful.push(Value::Object(result));
                }
            }
            Err(error) => {
                for (id, _) in &good {
                    failures.push(failed(id, &error));
                }
            }
        }
    }
    Ok(batch_result(successful, failures))
}

/// The system attributes SQS shows of a received message.
fn system_attributes(
    h: &Handler,
    message: &ReceivedMessage,
    queue: &str,
) -> BTreeMap<String, String> {
    let mut shown = BTreeMap::new();
    shown.insert(
        "SentTimestamp".to_string(),
        message.timestamp_ms.to_string(),
    );
    shown.insert(
        "ApproximateReceiveCount".to_string(),
        message.deliveries.to_string(),
    );
    if message.deliveries == 1 {
        shown.insert(
            "ApproximateFirstReceiveTimestamp".to_string(),
            now_ms().to_string(),
        );
    }
    // A message another door produced has no sender header: it shows the account's id.
    shown.insert(
        "SenderId".to_string(),
        h.state.config.sqs.account_id.clone(),
    );
    for header in &message.headers {
        let text =
            || String::from_utf8_lossy(header.value.as_deref().unwrap_or_default()).into_owned();
        match header.key.as_str() {
            GROUP_HEADER => {
                shown.insert("MessageGroupId".to_string(), text());
            }
            SENDER_HEADER => {
                shown.insert("SenderId".to_string(), text());
            }
            DEDUP_HEADER => {
                let id = text();
                let id = id.rsplit('\n').next().unwrap_or_default().to_string();
                shown.insert("MessageDeduplicationId".to_string(), id);
            }
            _ => {
                if let Some(attribute) = Attribute::from_header(header, SYSTEM_PREFIX) {
                    shown.insert(
                        attribute.name.clone(),
                        String::from_utf8_lossy(&attribute.value).into_owned(),
                    );
                }
            }
        }
    }
    if attributes::is_fifo_name(queue) {
        shown.insert(
            "SequenceNumber".to_string(),
            sequence_number(message.partition, message.offset),
        );
    }
    shown
}

fn received(
    h: &Handler,
    message: &ReceivedMessage,
    queue: &str,
    nonce: u64,
    (system_wanted, user_wanted): (&[String], &[String]),
) -> Value {
    let body = message.value.as_deref().unwrap_or_default();
    let handle = Receipt {
        partition: message.partition,
        offset: message.offset,
        nonce,
    }
    .encode(queue);
    let mut result = Map::new();
    result.insert(
        "MessageId".into(),
        Value::String(message_id(queue, message.partition, message.offset)),
    );
    result.insert("ReceiptHandle".into(), Value::String(handle));
    result.insert(
        "MD5OfBody".into(),
        Value::String(message::md5_of_body(body)),
    );
    result.insert(
        "Body".into(),
        Value::String(String::from_utf8_lossy(body).into_owned()),
    );
    let system: Map<String, Value> = system_attributes(h, message, queue)
        .into_iter()
        .filter(|(name, _)| message::wanted(system_wanted, name))
        .map(|(name, value)| (name, Value::String(value)))
        .collect();
    if !system.is_empty() {
        result.insert("Attributes".into(), Value::Object(system));
    }
    let attributes: Vec<Attribute> = message
        .headers
        .iter()
        .filter_map(|header| Attribute::from_header(header, USER_PREFIX))
        .filter(|attribute| message::wanted(user_wanted, &attribute.name))
        .collect();
    if let Some(md5) = message::md5_of_attributes(&attributes) {
        result.insert("MD5OfMessageAttributes".into(), Value::String(md5));
        let shown: Map<String, Value> = attributes
            .iter()
            .map(|attribute| (attribute.name.clone(), attribute.to_json()))
            .collect();
        result.insert("MessageAttributes".into(), Value::Object(shown));
    }
    Value::Object(result)
}

pub async fn receive_message(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let max_messages = params::bounded(p, "MaxNumberOfMessages", 1, RECEIVE_MAX)?.unwrap_or(1);
    let wait = params::bounded(p, "WaitTimeSeconds", 0, WAIT_SECONDS_MAX as i64)?;
    let visibility = params::bounded(p, "VisibilityTimeout", 0, VISIBILITY_SECONDS_MAX as i64)?;
    let mut system_wanted = params::string_list(p, "AttributeNames")?;
    system_wanted.extend(params::string_list(p, "MessageSystemAttributeNames")?);
    let user_wanted = params::string_list(p, "MessageAttributeNames")?;
    let meta = h.meta(&queue).await?;
    let wait_s = wait.map_or_else(
        || {
            attributes::seconds(
                &meta.attributes,
                "ReceiveMessageWaitTimeSeconds",
                0,
                WAIT_SECONDS_MAX,
            )
        },
        |wait| wait as u64,
    );
    let visibility_s = visibility.map_or_else(
        || {
            attributes::seconds(
                &meta.attributes,
                "VisibilityTimeout",
                30,
                VISIBILITY_SECONDS_MAX,
            )
        },
        |visibility| visibility as u64,
    );
    let nonce = receipt::new_nonce();
    let receive = Receive {
        topic: queue.clone(),
        group: queue.clone(),
        consumer: receipt::consumer(nonce),
        max_messages: max_messages as u32,
        max_bytes: RECEIVE_BYTES,
        wait_ms: (wait_s * 1000) as u32,
        visibility_timeout_ms: (visibility_s * 1000).max(VISIBILITY_MS_MIN) as u32,
        create: false,
    };
    let messages = h
        .service
        .receive(&h.ctx, receive)
        .await
        .map_err(from_broker)?;
    let shown: Vec<Value> = messages
        .iter()
        .map(|message| received(h, message, &queue, nonce, (&system_wanted, &user_wanted)))
        .collect();
    if shown.is_empty() {
        return Ok(json!({}));
    }
    Ok(json!({ "Messages": shown }))
}

impl Handler {
    /// Settles the delivery `handle` names with `action`.
    async fn settle_handle(
        &self,
        queue: &str,
        handle: &str,
        action: SettleAction,
    ) -> Result<(), SqsError> {
        let receipt = Receipt::decode(handle, queue)?;
        let settle = Settle {
            topic: queue.to_string(),
            group: queue.to_string(),
            consumer: receipt::consumer(receipt.nonce),
            action,
            ranges: vec![(receipt.partition, receipt.offset, receipt.offset)],
        };
        self.service
            .settle(&self.ctx, settle)
            .await
            .map_err(|error| match error.kind {
                crate::broker::ErrorKind::UnknownPartition => SqsError::receipt_handle_is_invalid(
                    "the receipt handle names no partition of this queue",
                ),
                _ => from_broker(error),
            })
    }
}

fn visibility_action(seconds: i64) -> SettleAction {
    if seconds == 0 {
        SettleAction::Release { delay_ms: 0 }
    } else {
        SettleAction::Extend {
            visibility_ms: (seconds as u64 * 1000) as u32,
        }
    }
}

pub async fn delete_message(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let handle = params::required(p, "ReceiptHandle")?;
    h.settle_handle(&queue, handle, SettleAction::Ack).await?;
    Ok(json!({}))
}

pub async fn change_message_visibility(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let handle = params::required(p, "ReceiptHandle")?;
    let seconds = params::bounded(p, "VisibilityTimeout", 0, VISIBILITY_SECONDS_MAX as i64)?
        .ok_or_else(|| SqsError::missing_parameter("the request must contain VisibilityTimeout"))?;
    h.settle_handle(&queue, handle, visibility_action(seconds))
        .await?;
    Ok(json!({}))
}

/// A batch entry's id, its receipt handle, and the handle read.
type Named<'a> = (&'a str, &'a str, Receipt);

pub async fn delete_message_batch(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let (mut successful, mut failures) = (Vec::new(), Vec::new());
    // The handles of one receive share its consumer: each such group, per partition, is settled
    // in one call (one journal write; the service checks a partition's ranges before changing
    // any, so a refused group changed nothing); only a refused group is retried entry by entry,
    // to say which entries failed.
    let mut groups: BTreeMap<(u64, u32), Vec<Named<'_>>> = BTreeMap::new();
    for entry in entries(p)? {
        let id = params::required(entry, "Id")?;
        let decoded = params::required(entry, "ReceiptHandle")
            .and_then(|handle| Ok((handle, Receipt::decode(handle, &queue)?)));
        match decoded {
            Ok((handle, receipt)) => groups
                .entry((receipt.nonce, receipt.partition))
                .or_default()
                .push((id, handle, receipt)),
            Err(error) => failures.push(failed(id, &error)),
        }
    }
    for ((nonce, _), group) in groups {
        let settle = Settle {
            topic: queue.clone(),
            group: queue.clone(),
            consumer: receipt::consumer(nonce),
            action: SettleAction::Ack,
            ranges: group
                .iter()
                .map(|(_, _, receipt)| (receipt.partition, receipt.offset, receipt.offset))
                .collect(),
        };
        if group.len() > 1 && h.service.settle(&h.ctx, settle).await.is_ok() {
            successful.extend(group.iter().map(|(id, _, _)| json!({ "Id": id })));
            continue;
        }
        for (id, handle, _) in group {
            match h.settle_handle(&queue, handle, SettleAction::Ack).await {
                Ok(()) => successful.push(json!({ "Id": id })),
                Err(error) => failures.push(failed(id, &error)),
            }
        }
    }
    Ok(batch_result(successful, failures))
}

pub async fn change_message_visibility_batch(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let queue = params::queue_of(p, &h.path)?;
    let (mut successful, mut failures) = (Vec::new(), Vec::new());
    for entry in entries(p)? {
        let id = params::required(entry, "Id")?;
        let outcome = async {
            let handle = params::required(entry, "ReceiptHandle")?;
            let seconds =
                params::bounded(entry, "VisibilityTimeout", 0, VISIBILITY_SECONDS_MAX as i64)?
                    .unwrap_or(0);
            h.settle_handle(&queue, handle, visibility_action(seconds))
                .await
        }
        .await;
        match outcome {
            Ok(()) => successful.push(json!({ "Id": id })),
            Err(error) => failures.push(failed(id, &error)),
        }
    }
    Ok(batch_result(successful, failures))
}
