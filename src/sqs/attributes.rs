//! Queue attributes by SQS's names: which exist, their defaults and bounds (SQS's, except where
//! `[sqs]` raises them), and the queue group settings a new queue gets from them. The values are
//! kept as SQS shows them (`store`); VisibilityTimeout and DelaySeconds are applied per request
//! (each receive and send says them), so changing them takes effect at once; a RedrivePolicy is
//! the group's dead-letter topic and delivery limit.

use std::collections::BTreeMap;

use serde_json::Value;

use super::errors::SqsError;
use crate::config::SqsConfig;

/// Attributes a create or SetQueueAttributes may give.
const SETTABLE: [&str; 15] = [
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "RedriveAllowPolicy",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
];

/// Attributes only GetQueueAttributes shows.
pub const COMPUTED: [&str; 6] = [
    "QueueArn",
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
];

/// Bytes of one attribute's value (a Policy document is the large one).
const VALUE_BYTES_MAX: usize = 20 * 1024;
/// SQS's longest retention: 14 days.
pub const RETENTION_SECONDS_MAX: u64 = 1_209_600;
/// SQS's longest long poll.
pub const WAIT_SECONDS_MAX: u64 = 20;
/// SQS's longest visibility timeout: 12 hours.
pub const VISIBILITY_SECONDS_MAX: u64 = 43_200;
/// SQS's delivery limit of a redrive policy.
const MAX_RECEIVE_COUNT_MAX: u64 = 1000;

/// Whether GetQueueAttributes knows `name`.
pub fn is_known(name: &str) -> bool {
    SETTABLE.contains(&name) || COMPUTED.contains(&name)
}

pub fn is_fifo_name(queue: &str) -> bool {
    queue.ends_with(".fifo")
}

/// The attributes a queue has when created without them.
pub fn defaults(fifo: bool, config: &SqsConfig) -> BTreeMap<String, String> {
    let mut attributes: BTreeMap<String, String> = [
        ("DelaySeconds", "0".to_string()),
        ("MaximumMessageSize", config.message_bytes_max.to_string()),
        ("MessageRetentionPeriod", "345600".to_string()),
        ("ReceiveMessageWaitTimeSeconds", "0".to_string()),
        ("VisibilityTimeout", "30".to_string()),
        ("SqsManagedSseEnabled", "false".to_string()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_string(), value))
    .collect();
    if fifo {
        for (name, value) in [
            ("FifoQueue", "true"),
            ("ContentBasedDeduplication", "false"),
            ("DeduplicationScope", "queue"),
            ("FifoThroughputLimit", "perQueue"),
        ] {
            attributes.insert(name.to_string(), value.to_string());
        }
    }
    attributes
}

fn number(name: &str, value: &str, min: u64, max: u64) -> Result<u64, SqsError> {
    let parsed: u64 = value.parse().map_err(|_| {
        SqsError::invalid_attribute_value(format!(
            "invalid value for the parameter {name}: {value:?}"
        ))
    })?;
    if !(min..=max).contains(&parsed) {
        return Err(SqsError::invalid_attribute_value(format!(
            "invalid value for the parameter {name}: {parsed} is outside {min} to {max}"
        )));
    }
    Ok(parsed)
}

fn boolean(name: &str, value: &str) -> Result<bool, SqsError> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(SqsError::invalid_attribute_value(format!(
            "invalid value for the parameter {name}: {value:?} is not true or false"
        ))),
    }
}

/// Checks one attribute a create (`creating`) or SetQueueAttributes gives queue `queue`.
pub fn check(
    name: &str,
    value: &str,
    queue: &str,
    creating: bool,
    config: &SqsConfig,
) -> Result<(), SqsError> {
    let fifo = is_fifo_name(queue);
    if !SETTABLE.contains(&name) {
        return Err(SqsError::invalid_attribute_name(format!(
            "unknown attribute {name}"
        )));
    }
    if value.len() > VALUE_BYTES_MAX {
        return Err(SqsError::invalid_attribute_value(format!(
            "the value of {name} is over {VALUE_BYTES_MAX} bytes"
        )));
    }
    let fifo_only = [
        "ContentBasedDeduplication",
        "DeduplicationScope",
        "FifoThroughputLimit",
    ];
    if fifo_only.contains(&name) && !fifo {
        return Err(SqsError::invalid_attribute_name(format!(
            "{name} is for FIFO queues only"
        )));
    }
    match name {
        "DelaySeconds" => number(name, value, 0, u64::from(config.delay_seconds_max)).map(drop),
        "MaximumMessageSize" => {
            number(name, value, 1024, u64::from(config.message_bytes_max)).map(drop)
        }
        "MessageRetentionPeriod" => number(name, value, 60, RETENTION_SECONDS_MAX).map(drop),
        "ReceiveMessageWaitTimeSeconds" => number(name, value, 0, WAIT_SECONDS_MAX).map(drop),
        "VisibilityTimeout" => number(name, value, 0, VISIBILITY_SECONDS_MAX).map(drop),
        "KmsDataKeyReusePeriodSeconds" => number(name, value, 60, 86_400).map(drop),
        "SqsManagedSseEnabled" | "ContentBasedDeduplication" => boolean(name, value).map(drop),
        "FifoQueue" => {
            let wanted = boolean(name, value)?;
            if !creating {
                return Err(SqsError::invalid_attribute_name(
                    "FifoQueue is set only when a queue is created",
                ));
            }
            if wanted != fifo {
                return Err(SqsError::invalid_parameter_value(
                    "a FIFO queue's name ends with .fifo, and only a FIFO queue's does",
                ));
            }
            Ok(())
        }
        "DeduplicationScope" => one_of(name, value, &["messageGroup", "queue"]),
        "FifoThroughputLimit" => one_of(name, value, &["perQueue", "perMessageGroupId"]),
        "RedrivePolicy" => redrive_policy(value).map(drop),
        "RedriveAllowPolicy" | "Policy" if !value.is_empty() => {
            serde_json::from_str::<Value>(value)
                .map(drop)
                .map_err(|_| SqsError::invalid_attribute_value(format!("{name} is not JSON")))
        }
        _ => Ok(()),
    }
}

fn one_of(name: &str, value: &str, allowed: &[&str]) -> Result<(), SqsError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(SqsError::invalid_attribute_value(format!(
            "invalid value for the parameter {name}: {value:?} is not one of {allowed:?}"
        )))
    }
}

/// A RedrivePolicy's dead-letter queue (the ARN's last part) and delivery limit; None for an
/// empty policy (which removes it).
pub fn redrive_policy(value: &str) -> Result<Option<(String, u32)>, SqsError> {
    if value.is_empty() {
        return Ok(None);
    }
    let invalid = |why: &str| SqsError::invalid_attribute_value(format!("RedrivePolicy: {why}"));
    let policy: Value = serde_json::from_str(value).map_err(|_| invalid("not JSON"))?;
    let arn = policy
        .get("deadLetterTargetArn")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("no deadLetterTargetArn"))?;
    let queue = arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.rsplit(':').next())
        .filter(|queue| !queue.is_empty())
        .ok_or_else(|| invalid("deadLetterTargetArn is not an SQS queue ARN"))?;
    let count = match policy.get("maxReceiveCount") {
        Some(Value::Number(count)) => count.as_u64(),
        Some(Value::String(count)) => count.parse().ok(),
        _ => None,
    }
    .filter(|count| (1..=MAX_RECEIVE_COUNT_MAX).contains(count))
    .ok_or_else(|| invalid("maxReceiveCount is not 1 to 1000"))?;
    Ok(Some((queue.to_string(), count as u32)))
}

/// A queue's ARN.
pub fn arn(config: &SqsConfig, queue: &str) -> String {
    format!(
        "arn:aws:sqs:{}:{}:{queue}",
        config.region, config.account_id
    )
}

/// The queue group settings a queue with `attributes` is created with. Without a redrive
/// policy SQS redelivers forever; a queue group dead-letters after at most 1000 deliveries, so
/// such a queue gets that, into its own `<queue>.dlq` topic.
pub fn group_configs(
    queue: &str,
    attributes: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, SqsError> {
    let mut configs = Vec::new();
    let policy = attributes
        .get("RedrivePolicy")
        .map(|value| redrive_policy(value))
        .transpose()?
        .flatten();
    match policy {
        Some((dead_letter_queue, count)) => {
            configs.push(("dead_letter_topic".to_string(), dead_letter_queue));
            configs.push(("max_deliveries".to_string(), count.to_string()));
        }
        None => {
            configs.push(("dead_letter_topic".to_string(), format!("{queue}.dlq")));
            configs.push((
                "max_deliveries".to_string(),
                MAX_RECEIVE_COUNT_MAX.to_string(),
            ));
        }
    }
    if is_fifo_name(queue) {
        configs.push(("fifo".to_string(), "header".to_string()));
    }
    Ok(configs)
}

/// An attribute as a number, its default if absent or unreadable, and at most `max` (the
/// record was checked when written, but it is read back from a topic).
pub fn seconds(attributes: &BTreeMap<String, String>, name: &str, default: u64, max: u64) -> u64 {
    attributes
        .get(name)
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
        .min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_checked_by_sqs_bounds() {
        let config = SqsConfig::default();
        assert!(check("VisibilityTimeout", "43200", "q", true, &config).is_ok());
        let refused = check("VisibilityTimeout", "43201", "q", true, &config).unwrap_err();
        assert_eq!(refused.code, "InvalidAttributeValue");
        assert_eq!(
            check("Colour", "red", "q", true, &config).unwrap_err().code,
            "InvalidAttributeName"
        );
        assert!(check("DelaySeconds", "901", "q", true, &config).is_err());
        assert!(check("FifoQueue", "true", "q.fifo", true, &config).is_ok());
        assert!(check("FifoQueue", "true", "q", true, &config).is_err());
        assert!(check("ContentBasedDeduplication", "true", "q", true, &config).is_err());
        let policy = r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#;
        assert_eq!(redrive_policy(policy).unwrap(), Some(("dlq".into(), 3)));
        assert!(redrive_policy(r#"{"deadLetterTargetArn":"x","maxReceiveCount":3}"#).is_err());
        assert!(
            redrive_policy(r#"{"deadLetterTargetArn":"arn:aws:sqs:r:a:d","maxReceiveCount":0}"#)
                .is_err()
        );
    }
}
