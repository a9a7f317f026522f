//! Reading an action's parameters from the JSON shape both protocols arrive in: numbers may be
//! JSON numbers (JSON protocol) or decimal strings (query protocol); every read is checked, and
//! a parameter of the wrong type is SQS's InvalidParameterValue. Also queue names and URLs.

use serde_json::{Map, Value};

use super::errors::SqsError;

pub type Params = Map<String, Value>;

/// Bytes of a queue name, as SQS bounds it (`.fifo` included).
const QUEUE_NAME_BYTES_MAX: usize = 80;

pub fn string<'a>(params: &'a Params, name: &str) -> Result<Option<&'a str>, SqsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(_) => Err(SqsError::invalid_parameter_value(format!(
            "{name} is not a string"
        ))),
    }
}

pub fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, SqsError> {
    string(params, name)?.ok_or_else(|| {
        SqsError::missing_parameter(format!("the request must contain the parameter {name}"))
    })
}

pub fn integer(params: &Params, name: &str) -> Result<Option<i64>, SqsError> {
    let bad = || SqsError::invalid_parameter_value(format!("{name} is not an integer"));
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(number)) => number.as_i64().map(Some).ok_or_else(bad),
        Some(Value::String(text)) => text.trim().parse().map(Some).map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

/// An integer parameter within `min..=max`.
pub fn bounded(params: &Params, name: &str, min: i64, max: i64) -> Result<Option<i64>, SqsError> {
    match integer(params, name)? {
        Some(value) if !(min..=max).contains(&value) => Err(SqsError::invalid_parameter_value(
            format!("value {value} for parameter {name} is invalid: must be {min} to {max}"),
        )),
        other => Ok(other),
    }
}

pub fn string_list(params: &Params, name: &str) -> Result<Vec<String>, SqsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    SqsError::invalid_parameter_value(format!("{name} holds a non-string"))
                })
            })
            .collect(),
        Some(_) => Err(SqsError::invalid_parameter_value(format!(
            "{name} is not a list"
        ))),
    }
}

/// A map of strings (queue attributes, tags), in name order.
pub fn string_map(params: &Params, name: &str) -> Result<Vec<(String, String)>, SqsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                Value::Number(number) => Ok((key.clone(), number.to_string())),
                Value::Bool(flag) => Ok((key.clone(), flag.to_string())),
                _ => Err(SqsError::invalid_parameter_value(format!(
                    "{name}.{key} is not a string"
                ))),
            })
            .collect(),
        Some(_) => Err(SqsError::invalid_parameter_value(format!(
            "{name} is not a map"
        ))),
    }
}

pub fn check_queue_name(name: &str) -> Result<(), SqsError> {
    let stem = name.strip_suffix(".fifo").unwrap_or(name);
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_');
    if stem.is_empty() || name.len() > QUEUE_NAME_BYTES_MAX || !stem.bytes().all(allowed) {
        return Err(SqsError::invalid_parameter_value(format!(
            "queue name {:?} must be 1 to 80 of [A-Za-z0-9_-], with .fifo at the end of a FIFO queue's",
            name.get(..100).unwrap_or(name)
        )));
    }
    Ok(())
}

/// The queue a request names: its QueueUrl's last part, or the request path's (the query
/// protocol may post to the queue's URL instead of naming it).
pub fn queue_of(params: &Params, path: &str) -> Result<String, SqsError> {
    let url = match string(params, "QueueUrl")? {
        Some(url) => url,
        None if path.trim_matches('/').contains('/') => path,
        None => {
            return Err(SqsError::missing_parameter(
                "the request must contain the parameter QueueUrl",
            ));
        }
    };
    let name = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    check_queue_name(name).map_err(|_| {
        SqsError::queue_does_not_exist(format!(
            "the queue URL {:?} names no queue",
            url.get(..200).unwrap_or(url)
        ))
    })?;
    Ok(name.to_string())
}

/// The parameters each action reads (botocore's sqs service-2.json shapes); `Entries` holds
/// objects of the fields after it.
fn known(action: &str) -> (&'static [&'static str], &'static [&'static str]) {
    const SEND_MESSAGE: &[&str] = &[
        "QueueUrl",
        "MessageBody",
        "DelaySeconds",
        "MessageAttributes",
        "MessageSystemAttributes",
        "MessageDeduplicationId",
        "MessageGroupId",
    ];
    const SEND: &[&str] = &[
        "MessageBody",
        "DelaySeconds",
        "MessageAttributes",
        "MessageSystemAttributes",
        "MessageDeduplicationId",
        "MessageGroupId",
    ];
    match action {
        "CreateQueue" => (&["QueueName", "Attributes", "tags"], &[]),
        "GetQueueUrl" => (&["QueueName", "QueueOwnerAWSAccountId"], &[]),
        "ListQueues" => (&["QueueNamePrefix", "NextToken", "MaxResults"], &[]),
        "DeleteQueue" | "PurgeQueue" | "ListQueueTags" => (&["QueueUrl"], &[]),
        "GetQueueAttributes" => (&["QueueUrl", "AttributeNames"], &[]),
        "SetQueueAttributes" => (&["QueueUrl", "Attributes"], &[]),
        "SendMessage" => (SEND_MESSAGE, &[]),
        "SendMessageBatch" => (&["QueueUrl", "Entries"], SEND),
        "ReceiveMessage" => (
            &[
                "QueueUrl",
                "AttributeNames",
                "MessageSystemAttributeNames",
                "MessageAttributeNames",
                "MaxNumberOfMessages",
                "VisibilityTimeout",
                "WaitTimeSeconds",
                "ReceiveRequestAttemptId",
            ],
            &[],
        ),
        "DeleteMessage" => (&["QueueUrl", "ReceiptHandle"], &[]),
        "ChangeMessageVisibility" => (&["QueueUrl", "ReceiptHandle", "VisibilityTimeout"], &[]),
        "DeleteMessageBatch" => (&["QueueUrl", "Entries"], &["ReceiptHandle"]),
        "ChangeMessageVisibilityBatch" => (
            &["QueueUrl", "Entries"],
            &["ReceiptHandle", "VisibilityTimeout"],
        ),
        "ListDeadLetterSourceQueues" => (&["QueueUrl", "NextToken", "MaxResults"], &[]),
        "TagQueue" => (&["QueueUrl", "Tags"], &[]),
        "UntagQueue" => (&["QueueUrl", "TagKeys"], &[]),
        "StartMessageMoveTask" => (
            &[
                "SourceArn",
                "DestinationArn",
                "MaxNumberOfMessagesPerSecond",
            ],
            &[],
        ),
        "ListMessageMoveTasks" => (&["SourceArn", "MaxResults"], &[]),
        "CancelMessageMoveTask" => (&["TaskHandle"], &[]),
        _ => (&[], &[]),
    }
}

/// Drops what `action` does not read, so a request holds only what it uses while it is
/// served (a long poll holds its parameters for up to 20 seconds).
pub fn retain_known(action: &str, params: &mut Params) {
    let (top, entry) = known(action);
    params.retain(|name, _| top.contains(&name.as_str()));
    if let Some(Value::Array(entries)) = params.get_mut("Entries") {
        for entry_params in entries.iter_mut() {
            if let Value::Object(fields) = entry_params {
                fields.retain(|name, _| name == "Id" || entry.contains(&name.as_str()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_action_does_not_read_is_dropped() {
        let mut params: Params = serde_json::from_value(serde_json::json!({
            "QueueUrl": "u",
            "WaitTimeSeconds": 20,
            "Padding": "x".repeat(1000),
            "Entries": [{"Id": "1"}],
        }))
        .unwrap();
        retain_known("ReceiveMessage", &mut params);
        let mut names: Vec<&String> = params.keys().collect();
        names.sort();
        assert_eq!(names, ["QueueUrl", "WaitTimeSeconds"]);
        let mut batch: Params = serde_json::from_value(serde_json::json!({
            "QueueUrl": "u",
            "Entries": [{"Id": "1", "ReceiptHandle": "r", "Junk": [1, 2, 3]}, 7],
        }))
        .unwrap();
        retain_known("DeleteMessageBatch", &mut batch);
        assert_eq!(
            Value::Object(batch),
            serde_json::json!({"QueueUrl": "u", "Entries": [{"Id": "1", "ReceiptHandle": "r"}, 7]})
        );
        let mut unknown: Params = serde_json::from_value(serde_json::json!({"A": 1})).unwrap();
        retain_known("NoSuchAction", &mut unknown);
        assert!(unknown.is_empty());
    }
}
