//! SQS's two wire protocols over one set of actions: AWS JSON 1.0 (`X-Amz-Target:
//! AmazonSQS.<Action>`, a JSON body; what current SDKs send) and the older query protocol
//! (form-encoded `Action=...&Attribute.1.Name=...`, XML answers). A query request is turned into
//! the JSON protocol's shape (its flattened `Name.N.Member` lists and maps become arrays and
//! objects), so each action reads one shape; its JSON answer is written back as SQS's XML.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value};

use super::errors::SqsError;
use super::http::{self, Request};

/// Dots in one query parameter name (`SendMessageBatchRequestEntry.1.MessageAttribute.2.Value.
/// StringValue` has 6); deeper is refused, which bounds the recursion below.
const QUERY_NAME_DEPTH_MAX: usize = 8;
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
const XML_NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Query,
}

/// A request's action and its parameters in the JSON protocol's shape.
pub struct Call {
    pub protocol: Protocol,
    pub action: String,
    pub params: Map<String, Value>,
}

/// The protocol a request speaks, known before its body is parsed (errors answer in it).
pub fn protocol_of(request: &Request) -> Protocol {
    if request.header("x-amz-target").is_some() {
        Protocol::Json
    } else {
        Protocol::Query
    }
}

/// Reads the action and parameters of `request`.
pub fn parse(request: &Request) -> Result<Call, SqsError> {
    if let Some(target) = request.header("x-amz-target") {
        let action = target.strip_prefix("AmazonSQS.").ok_or_else(|| {
            SqsError::invalid_action(format!("X-Amz-Target {target:?} is not AmazonSQS.<Action>"))
        })?;
        let params = if request.body.iter().all(u8::is_ascii_whitespace) {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&request.body) {
                Ok(Value::Object(params)) => params,
                Ok(_) => return Err(SqsError::malformed("the body is not a JSON object")),
                Err(error) => {
                    return Err(SqsError::malformed(format!(
                        "the body is not JSON: {error}"
                    )));
                }
            }
        };
        return Ok(Call {
            protocol: Protocol::Json,
            action: action.to_string(),
            params,
        });
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(request.query.as_bytes())
        .into_owned()
        .collect();
    if request.method == "POST" {
        pairs.extend(form_urlencoded::parse(&request.body).into_owned());
    }
    let action = pairs
        .iter()
        .find(|(key, _)| key == "Action")
        .map(|(_, value)| value.clone())
        .ok_or_else(|| {
            SqsError::missing_parameter("no Action (form parameter) and no X-Amz-Target header")
        })?;
    let params = query_params(&action, pairs)?;
    Ok(Call {
        protocol: Protocol::Query,
        action,
        params,
    })
}

enum Node {
    Leaf(String),
    Branch(BTreeMap<String, Node>),
}

fn query_params(
    action: &str,
    pairs: Vec<(String, String)>,
) -> Result<Map<String, Value>, SqsError> {
    let mut root = BTreeMap::new();
    for (key, value) in pairs {
        if key == "Action" || key == "Version" {
            continue;
        }
        let path: Vec<&str> = key.split('.').collect();
        if path.len() > QUERY_NAME_DEPTH_MAX || path.iter().any(|part| part.is_empty()) {
            return Err(SqsError::malformed(format!("parameter name {key:?}")));
        }
        insert(&mut root, &path, value).map_err(|()| {
            SqsError::malformed(format!("parameter {key:?} conflicts with another"))
        })?;
    }
    Ok(branch_to_json(action, root))
}

fn insert(branch: &mut BTreeMap<String, Node>, path: &[&str], value: String) -> Result<(), ()> {
    let Some((first, rest)) = path.split_first() else {
        return Err(());
    };
    if rest.is_empty() {
        return match branch.insert((*first).to_string(), Node::Leaf(value)) {
            None => Ok(()),
            Some(_) => Err(()),
        };
    }
    let node = branch
        .entry((*first).to_string())
        .or_insert_with(|| Node::Branch(BTreeMap::new()));
    match node {
        Node::Branch(children) => insert(children, rest, value),
        Node::Leaf(_) => Err(()),
    }
}

/// How a flattened query member becomes JSON: a list, or a map keyed by one member.
enum Flattened {
    List(&'static str),
    Map(&'static str, &'static str),
}

fn flattened(action: &str, name: &str) -> Option<Flattened> {
    Some(match name {
        "Attribute" => Flattened::Map("Attributes", "Name"),
        "MessageAttribute" => Flattened::Map("MessageAttributes", "Name"),
        "MessageSystemAttribute" => Flattened::Map("MessageSystemAttributes", "Name"),
        "Tag" if action == "CreateQueue" => Flattened::Map("tags", "Key"),
        "Tag" => Flattened::Map("Tags", "Key"),
        "AttributeName" => Flattened::List("AttributeNames"),
        "MessageAttributeName" => Flattened::List("MessageAttributeNames"),
        "MessageSystemAttributeName" => Flattened::List("MessageSystemAttributeNames"),
        "TagKey" => Flattened::List("TagKeys"),
        "StringListValue" => Flattened::List("StringListValues"),
        "BinaryListValue" => Flattened::List("BinaryListValues"),
        entry if entry.ends_with("RequestEntry") => Flattened::List("Entries"),
        _ => return None,
    })
}

fn numbered(children: BTreeMap<String, Node>) -> Vec<Node> {
    let mut items: Vec<(u64, Node)> = children
        .into_iter()
        .filter_map(|(index, node)| Some((index.parse().ok()?, node)))
        .collect();
    items.sort_by_key(|(index, _)| *index);
    items.into_iter().map(|(_, node)| node).collect()
}

fn node_to_json(action: &str, node: Node) -> Value {
    match node {
        Node::Leaf(text) => Value::String(text),
        Node::Branch(children) => Value::Object(branch_to_json(action, children)),
    }
}

fn branch_to_json(action: &str, branch: BTreeMap<String, Node>) -> Map<String, Value> {
    let mut object = Map::new();
    for (name, node) in branch {
        match (flattened(action, &name), node) {
            (Some(Flattened::List(json)), Node::Branch(children)) => {
                let items = numbered(children)
                    .into_iter()
                    .map(|item| node_to_json(action, item))
                    .collect();
                object.insert(json.to_string(), Value::Array(items));
            }
            (Some(Flattened::Map(json, key)), Node::Branch(children)) => {
                let mut map = Map::new();
                for item in numbered(children) {
                    let Node::Branch(mut fields) = item else {
                        continue;
                    };
                    let Some(Node::Leaf(name)) = fields.remove(key) else {
                        continue;
                    };
                    let value = fields
                        .remove("Value")
                        .map_or(Value::Null, |value| node_to_json(action, value));
                    map.insert(name, value);
                }
                object.insert(json.to_string(), Value::Object(map));
            }
            (_, node) => {
                object.insert(name, node_to_json(action, node));
            }
        }
    }
    object
}

/// A request id, as SQS answers with one.
pub fn request_id() -> String {
    let mut bytes = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A successful answer of `action` with `result` (the JSON protocol's shape).
pub fn success(protocol: Protocol, action: &str, result: Value) -> Vec<Bytes> {
    let id = request_id();
    match protocol {
        Protocol::Json => http::response(
            200,
            &[
                ("content-type", JSON_CONTENT_TYPE),
                ("x-amzn-requestid", &id),
            ],
            result.to_string().as_bytes(),
        ),
        Protocol::Query => {
            let mut xml = String::with_capacity(256);
            xml.push_str(&format!(
                "<?xml version=\"1.0\"?><{action}Response xmlns=\"{XML_NAMESPACE}\"><{action}Result>"
            ));
            if let Value::Object(fields) = &result {
                write_fields(&mut xml, action, fields);
            }
            xml.push_str(&format!(
                "</{action}Result><ResponseMetadata><RequestId>{id}</RequestId></ResponseMetadata></{action}Response>"
            ));
            http::response(
                200,
                &[("content-type", "text/xml"), ("x-amzn-requestid", &id)],
                xml.as_bytes(),
            )
        }
    }
}

/// An error answer in the protocol's shape.
pub fn failure(protocol: Protocol, error: &SqsError) -> Vec<Bytes> {
    let id = request_id();
    let fault = if error.sender { "Sender" } else { "Receiver" };
    match protocol {
        Protocol::Json => {
            let body = serde_json::json!({
                "__type": format!("com.amazonaws.sqs#{}", error.code),
                "message": error.message,
            });
            let query_error = format!("{};{fault}", error.query_code);
            http::response(
                error.status,
                &[
                    ("content-type", JSON_CONTENT_TYPE),
                    ("x-amzn-requestid", &id),
                    ("x-amzn-query-error", &query_error),
                ],
                body.to_string().as_bytes(),
            )
        }
        Protocol::Query => {
            let mut xml = String::from("<?xml version=\"1.0\"?><ErrorResponse><Error><Type>");
            xml.push_str(fault);
            xml.push_str("</Type><Code>");
            escape_into(&mut xml, error.query_code);
            xml.push_str("</Code><Message>");
            escape_into(&mut xml, &error.message);
            xml.push_str(&format!(
                "</Message><Detail/></Error><RequestId>{id}</RequestId></ErrorResponse>"
            ));
            http::response(
                error.status,
                &[("content-type", "text/xml"), ("x-amzn-requestid", &id)],
                xml.as_bytes(),
            )
        }
    }
}

/// The element of each item of a JSON list in SQS's XML.
fn list_member(action: &str, name: &str) -> String {
    match name {
        "Messages" => "Message".into(),
        "QueueUrls" | "queueUrls" => "QueueUrl".into(),
        "Successful" => format!("{action}ResultEntry"),
        "Failed" => "BatchResultErrorEntry".into(),
        "Results" => format!("{action}ResultEntry"),
        other => other.trim_end_matches('s').to_string(),
    }
}

/// The element and key name of each entry of a JSON map in SQS's XML.
fn map_member(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "Attributes" => ("Attribute", "Name"),
        "MessageAttributes" => ("MessageAttribute", "Name"),
        "MessageSystemAttributes" => ("MessageSystemAttribute", "Name"),
        "Tags" => ("Tag", "Key"),
        _ => return None,
    })
}

fn write_fields(xml: &mut String, action: &str, fields: &Map<String, Value>) {
    for (name, value) in fields {
        match value {
            Value::Array(items) => {
                let member = list_member(action, name);
                for item in items {
                    write_element(xml, action, &member, item);
                }
            }
            Value::Object(entries) if map_member(name).is_some() => {
                let Some((member, key)) = map_member(name) else {
                    continue;
                };
                for (entry, entry_value) in entries {
                    xml.push_str(&format!("<{member}><{key}>"));
                    escape_into(xml, entry);
                    xml.push_str(&format!("</{key}>"));
                    write_element(xml, action, "Value", entry_value);
                    xml.push_str(&format!("</{member}>"));
                }
            }
            other => write_element(xml, action, name, other),
        }
    }
}

fn write_element(xml: &mut String, action: &str, name: &str, value: &Value) {
    xml.push_str(&format!("<{name}>"));
    match value {
        Value::Object(fields) => write_fields(xml, action, fields),
        Value::String(text) => escape_into(xml, text),
        Value::Null => {}
        other => escape_into(xml, &other.to_string()),
    }
    xml.push_str(&format!("</{name}>"));
}

/// XML text: markup characters, and carriage returns (which a parser would otherwise fold).
fn escape_into(xml: &mut String, text: &str) {
    for character in text.chars() {
        match character {
            '<' => xml.push_str("&lt;"),
            '>' => xml.push_str("&gt;"),
            '&' => xml.push_str("&amp;"),
            '"' => xml.push_str("&quot;"),
            '\r' => xml.push_str("&#xD;"),
            other => xml.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(action: &str, body: &str) -> Map<String, Value> {
        let pairs = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        query_params(action, pairs).unwrap()
    }

    #[test]
    fn flattened_query_members_become_the_json_shape() {
        let params = query(
            "SendMessageBatch",
            "QueueUrl=u&SendMessageBatchRequestEntry.2.Id=b&SendMessageBatchRequestEntry.1.Id=a\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Name=color\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue=red\
             &SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType=String",
        );
        assert_eq!(
            Value::Object(params),
            serde_json::json!({
                "QueueUrl": "u",
                "Entries": [
                    {"Id": "a", "MessageAttributes": {"color": {"StringValue": "red", "DataType": "String"}}},
                    {"Id": "b"}
                ]
            })
        );
        let params = query(
            "CreateQueue",
            "QueueName=q&Attribute.1.Name=DelaySeconds&Attribute.1.Value=5&Tag.1.Key=k&Tag.1.Value=v",
        );
        assert_eq!(
            Value::Object(params),
            serde_json::json!({"QueueName": "q", "Attributes": {"DelaySeconds": "5"}, "tags": {"k": "v"}})
        );
        let deep = "a.b.c.d.e.f.g.h.i=1".to_string();
        let pairs = vec![(deep, String::new())];
        assert!(query_params("X", pairs).is_err());
        let clash = vec![("A".into(), "1".into()), ("A.1".into(), "2".into())];
        assert!(query_params("X", clash).is_err());
    }

    #[test]
    fn results_become_sqs_xml() {
        let mut xml = String::new();
        let result = serde_json::json!({
            "Messages": [{"Body": "a<b", "Attributes": {"SentTimestamp": "1"}}]
        });
        let Value::Object(fields) = result else {
            unreachable!()
        };
        write_fields(&mut xml, "ReceiveMessage", &fields);
        assert_eq!(
            xml,
            "<Message><Attribute><Name>SentTimestamp</Name><Value>1</Value></Attribute>\
             <Body>a&lt;b</Body></Message>"
        );
    }
}
