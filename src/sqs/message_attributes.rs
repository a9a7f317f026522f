//! A message's attributes (SQS's `MessageAttributes` and `MessageSystemAttributes`): checked
//! by SQS's rules, kept as record headers (`sqs.ma.<name>` / `sqs.msa.<name>`, the value
//! `<DataType>\n<bytes>`), and digested exactly as SQS does, since the SDKs recompute
//! MD5OfMessageBody and MD5OfMessageAttributes and refuse an answer that differs.

use base64::Engine;
use bytes::Bytes;
use md5::{Digest, Md5};
use serde_json::{Map, Value};

use super::errors::SqsError;
use crate::batch::Header;

pub const USER_PREFIX: &str = "sqs.ma.";
pub const SYSTEM_PREFIX: &str = "sqs.msa.";
/// Attributes one message may have.
const ATTRIBUTES_MAX: usize = 10;
const NAME_BYTES_MAX: usize = 256;
const DATA_TYPE_BYTES_MAX: usize = 256;

/// One attribute: its data type (`String`, `Number`, `Binary`, each with an optional
/// `.custom` suffix) and its value's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    pub data_type: String,
    pub value: Bytes,
}

impl Attribute {
    fn binary(&self) -> bool {
        self.data_type.starts_with("Binary")
    }

    /// Bytes it counts toward the message size, as SQS counts them.
    pub fn size_bytes(&self) -> usize {
        self.name.len() + self.data_type.len() + self.value.len()
    }

    pub fn to_header(&self, prefix: &str) -> Header {
        let mut value = Vec::with_capacity(self.data_type.len() + 1 + self.value.len());
        value.extend_from_slice(self.data_type.as_bytes());
        value.push(b'\n');
        value.extend_from_slice(&self.value);
        Header {
            key: format!("{prefix}{}", self.name),
            value: Some(Bytes::from(value)),
        }
    }

    pub fn from_header(header: &Header, prefix: &str) -> Option<Attribute> {
        let name = header.key.strip_prefix(prefix)?;
        let value = header.value.as_ref()?;
        let newline = value.iter().position(|byte| *byte == b'\n')?;
        let data_type = std::str::from_utf8(value.get(..newline)?).ok()?;
        Some(Attribute {
            name: name.to_string(),
            data_type: data_type.to_string(),
            value: value.slice(newline + 1..),
        })
    }

    /// The JSON protocol's shape: `{"DataType": ..., "StringValue"|"BinaryValue": ...}`.
    pub fn to_json(&self) -> Value {
        let mut fields = Map::new();
        fields.insert("DataType".into(), Value::String(self.data_type.clone()));
        if self.binary() {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&self.value);
            fields.insert("BinaryValue".into(), Value::String(encoded));
        } else {
            let text = String::from_utf8_lossy(&self.value).into_owned();
            fields.insert("StringValue".into(), Value::String(text));
        }
        Value::Object(fields)
    }
}

fn invalid(message: String) -> SqsError {
    SqsError::invalid_parameter_value(message)
}

fn check_name(name: &str) -> Result<(), SqsError> {
    let allowed = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'-' | b'.');
    let lower = name.to_ascii_lowercase();
    if name.is_empty()
        || name.len() > NAME_BYTES_MAX
        || !name.bytes().all(allowed)
        || name.starts_with('.')
        || name.ends_with('.')
        || name.contains("..")
        || lower.starts_with("aws.")
        || lower.starts_with("amazon.")
    {
        return Err(invalid(format!(
            "message attribute name {name:?} is not 1 to 256 of [A-Za-z0-9_.-] (no AWS. or Amazon. prefix, no leading, trailing or doubled period)"
        )));
    }
    Ok(())
}

/// Reads and checks a request's attribute map (`MessageAttributes` or
/// `MessageSystemAttributes`), sorted by name.
pub fn parse(params: Option<&Value>) -> Result<Vec<Attribute>, SqsError> {
    let Some(value) = params else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = value else {
        return Err(invalid("message attributes are not a map".into()));
    };
    if map.len() > ATTRIBUTES_MAX {
        return Err(invalid(format!(
            "{} message attributes; at most {ATTRIBUTES_MAX}",
            map.len()
        )));
    }
    let mut attributes = Vec::with_capacity(map.len());
    for (name, value) in map {
        check_name(name)?;
        let field = |key: &str| value.get(key).and_then(Value::as_str);
        let data_type = field("DataType")
            .ok_or_else(|| invalid(format!("message attribute {name:?} has no DataType")))?;
        let base = data_type.split('.').next().unwrap_or_default();
        // XML could not carry a control character back in a query-protocol answer.
        if data_type.len() > DATA_TYPE_BYTES_MAX
            || !["String", "Number", "Binary"].contains(&base)
            || !valid_body(data_type)
        {
            return Err(invalid(format!(
                "message attribute {name:?}: DataType {data_type:?} is not String, Number or Binary"
            )));
        }
        let bytes = if base == "Binary" {
            let encoded = field("BinaryValue")
                .ok_or_else(|| invalid(format!("message attribute {name:?} has no BinaryValue")))?;
            base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| {
                    invalid(format!(
                        "message attribute {name:?}: BinaryValue is not base64"
                    ))
                })?
        } else {
            let text = field("StringValue")
                .ok_or_else(|| invalid(format!("message attribute {name:?} has no StringValue")))?;
            if !valid_body(text) {
                return Err(invalid(format!(
                    "message attribute {name:?}: StringValue holds characters SQS does not allow"
                )));
            }
            if base == "Number" && text.trim().parse::<f64>().is_err() {
                return Err(invalid(format!(
                    "message attribute {name:?}: {text:?} is not a number"
                )));
            }
            text.as_bytes().to_vec()
        };
        if bytes.is_empty() {
            return Err(invalid(format!(
                "message attribute {name:?} has an empty value"
            )));
        }
        attributes.push(Attribute {
            name: name.clone(),
            data_type: data_type.to_string(),
            value: Bytes::from(bytes),
        });
    }
    attributes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(attributes)
}

/// SQS's MD5 of a message body: of its UTF-8 bytes, in hex.
pub fn md5_of_body(body: &[u8]) -> String {
    hex(&Md5::digest(body))
}

/// SQS's MD5 of message attributes, sorted by name: for each, the name, the data type (each
/// as a 4-byte big-endian length and bytes), one byte (1: string, 2: binary), the value (length
/// and bytes). None when there are none (SQS then sends no digest).
pub fn md5_of_attributes(attributes: &[Attribute]) -> Option<String> {
    if attributes.is_empty() {
        return None;
    }
    let mut sorted: Vec<&Attribute> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut digest = Md5::new();
    let put = |digest: &mut Md5, bytes: &[u8]| {
        digest.update((bytes.len() as u32).to_be_bytes());
        digest.update(bytes);
    };
    for attribute in sorted {
        put(&mut digest, attribute.name.as_bytes());
        put(&mut digest, attribute.data_type.as_bytes());
        // The transport kind is one byte of its own, with no length before it.
        digest.update([if attribute.binary() { 2u8 } else { 1u8 }]);
        put(&mut digest, &attribute.value);
    }
    Some(hex(&digest.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `body` holds only the characters SQS allows in a message: tab, newline, carriage
/// return, and Unicode from U+0020 except surrogates, U+FFFE and U+FFFF.
pub fn valid_body(body: &str) -> bool {
    body.chars().all(|character| {
        matches!(character, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&character)
            || ('\u{E000}'..='\u{FFFD}').contains(&character)
            || character >= '\u{10000}'
    })
}

/// Whether an attribute `name` is asked for by `wanted` (`All`, `.*`, a name, or `prefix.*`).
pub fn wanted(wanted: &[String], name: &str) -> bool {
    wanted.iter().any(|pattern| {
        pattern == "All"
            || pattern == ".*"
            || pattern == name
            || pattern.strip_suffix(".*").is_some_and(|prefix| {
                name.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with('.'))
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_xml_cannot_carry_are_refused() {
        let attributes = |value: &str| {
            let given = serde_json::json!({ "k": { "DataType": "String", "StringValue": value } });
            parse(Some(&given))
        };
        assert_eq!(attributes("fine\ttext").unwrap().len(), 1);
        let error = attributes("bell\u{0007}").unwrap_err();
        assert_eq!(error.code, "InvalidParameterValue", "{error:?}");
        let given =
            serde_json::json!({ "k": { "DataType": "String.\u{0001}", "StringValue": "x" } });
        assert!(parse(Some(&given)).is_err());
    }
}
