//! How `consume` writes records: bytes as they are stored, never re-encoded. `value` and `kv`
//! end each record with a delimiter (-D, -0); templates (`--format '%k=%v\n'`) place fields
//! like kcat's -f; JSON lines carry text fields as strings and anything that is not valid UTF-8
//! base64-encoded under a `_b64` name, so no byte is lost or replaced.

use std::io::{self, Write};

use base64::Engine;
use bytes::Bytes;

use super::escape::unescape;
use crate::batch::Record;

/// A record with where it was read from.
pub struct Printed<'a> {
    pub topic: &'a str,
    pub partition: u32,
    pub offset: u64,
    pub record: &'a Record,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// The value, then the delimiter.
    Value {
        delimiter: Vec<u8>,
    },
    /// The key, the key separator, the value, then the delimiter.
    KeyValue {
        separator: Vec<u8>,
        delimiter: Vec<u8>,
    },
    Json,
    Template(Vec<Piece>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece {
    Literal(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    KeySize,
    Value,
    Size,
    Headers,
    Timestamp,
}

pub const TEMPLATE_HELP: &str = "%t topic, %p partition, %o offset, %k key, %K key size, %v value, \
     %s value size, %h headers (k=v,...), %T timestamp (ms), %% a percent sign; \\n \\t \\0 \\xHH";

impl Format {
    /// `value`, `kv`, `json`, or a template (anything with a `%`).
    pub fn parse(name: &str, delimiter: Vec<u8>, separator: Vec<u8>) -> Result<Format, String> {
        match name {
            "value" => Ok(Format::Value { delimiter }),
            "kv" => Ok(Format::KeyValue {
                separator,
                delimiter,
            }),
            "json" => Ok(Format::Json),
            template if template.contains('%') => parse_template(template).map(Format::Template),
            other => Err(format!(
                "--format {other:?} is not value, kv, json or a template ({TEMPLATE_HELP})"
            )),
        }
    }
}

fn parse_template(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = template.chars();
    while let Some(char) = chars.next() {
        if char != '%' {
            literal.push(char);
            continue;
        }
        let piece = match chars.next() {
            Some('%') => {
                literal.push('%');
                continue;
            }
            Some('t') => Piece::Topic,
            Some('p') => Piece::Partition,
            Some('o') => Piece::Offset,
            Some('k') => Piece::Key,
            Some('K') => Piece::KeySize,
            Some('v') => Piece::Value,
            Some('s') => Piece::Size,
            Some('h') => Piece::Headers,
            Some('T') => Piece::Timestamp,
            other => {
                return Err(format!(
                    "--format: unknown field %{} ({TEMPLATE_HELP})",
                    other.map_or(String::new(), String::from)
                ));
            }
        };
        if !literal.is_empty() {
            pieces.push(Piece::Literal(unescape(&std::mem::take(&mut literal))?));
        }
        pieces.push(piece);
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(unescape(&literal)?));
    }
    Ok(pieces)
}

fn bytes_of(field: &Option<Bytes>) -> &[u8] {
    field.as_deref().unwrap_or_default()
}

pub fn write(out: &mut impl Write, format: &Format, printed: &Printed) -> io::Result<()> {
    let record = printed.record;
    match format {
        Format::Value { delimiter } => {
            out.write_all(bytes_of(&record.value))?;
            out.write_all(delimiter)
        }
        Format::KeyValue {
            separator,
            delimiter,
        } => {
            out.write_all(bytes_of(&record.key))?;
            out.write_all(separator)?;
            out.write_all(bytes_of(&record.value))?;
            out.write_all(delimiter)
        }
        Format::Json => {
            serde_json::to_writer(&mut *out, &json(printed))?;
            out.write_all(b"\n")
        }
        Format::Template(pieces) => {
            for piece in pieces {
                write_piece(out, piece, printed)?;
            }
            Ok(())
        }
    }
}

fn write_piece(out: &mut impl Write, piece: &Piece, printed: &Printed) -> io::Result<()> {
    let record = printed.record;
    let size = |field: &Option<Bytes>| field.as_ref().map_or(-1, |bytes| bytes.len() as i64);
    match piece {
        Piece::Literal(bytes) => out.write_all(bytes),
        Piece::Topic => out.write_all(printed.topic.as_bytes()),
        Piece::Partition => write!(out, "{}", printed.partition),
        Piece::Offset => write!(out, "{}", printed.offset),
        Piece::Key => out.write_all(bytes_of(&record.key)),
        Piece::KeySize => write!(out, "{}", size(&record.key)),
        Piece::Value => out.write_all(bytes_of(&record.value)),
        Piece::Size => write!(out, "{}", size(&record.value)),
        Piece::Timestamp => write!(out, "{}", record.timestamp_ms),
        Piece::Headers => {
            for (index, header) in record.headers.iter().enumerate() {
                if index > 0 {
                    out.write_all(b",")?;
                }
                out.write_all(header.key.as_bytes())?;
                if let Some(value) = &header.value {
                    out.write_all(b"=")?;
                    out.write_all(value)?;
                }
            }
            Ok(())
        }
    }
}

/// A JSON object for one record: `key`/`value` as strings when they are UTF-8, else
/// `key_b64`/`value_b64` in standard base64 (null when absent); headers likewise in
/// `headers` and `headers_b64`.
pub fn json(printed: &Printed) -> serde_json::Value {
    let record = printed.record;
    let mut object = serde_json::Map::new();
    object.insert("topic".into(), printed.topic.into());
    object.insert("partition".into(), printed.partition.into());
    object.insert("offset".into(), printed.offset.into());
    object.insert("timestamp".into(), record.timestamp_ms.into());
    put_field(&mut object, "key", &record.key);
    put_field(&mut object, "value", &record.value);
    let mut headers = serde_json::Map::new();
    let mut headers_b64 = serde_json::Map::new();
    for header in &record.headers {
        match header.value.as_deref().map(std::str::from_utf8) {
            None => {
                headers.insert(header.key.clone(), serde_json::Value::Null);
            }
            Some(Ok(text)) => {
                headers.insert(header.key.clone(), text.into());
            }
            Some(Err(_)) => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(header.value.as_deref().unwrap_or_default());
                headers_b64.insert(header.key.clone(), encoded.into());
            }
        }
    }
    object.insert("headers".into(), headers.into());
    if !headers_b64.is_empty() {
        object.insert("headers_b64".into(), headers_b64.into());
    }
    serde_json::Value::Object(object)
}

fn put_field(
    object: &mut serde_json::Map<String, serde_json::Value>,
    name: &str,
    field: &Option<Bytes>,
) {
    match field.as_deref().map(std::str::from_utf8) {
        None => {
            object.insert(name.into(), serde_json::Value::Null);
        }
        Some(Ok(text)) => {
            object.insert(name.into(), text.into());
        }
        Some(Err(_)) => {
            let encoded = base64::engine::general_purpose::STANDARD
                .encode(field.as_deref().unwrap_or_default());
            object.insert(format!("{name}_b64"), encoded.into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(format: &Format, record: &Record) -> Vec<u8> {
        let mut out = Vec::new();
        let printed = Printed {
            topic: "t",
            partition: 3,
            offset: 7,
            record,
        };
        write(&mut out, format, &printed).unwrap();
        out
    }

    #[test]
    fn templates_place_raw_bytes() {
        let record = Record::new(99, Some(b"k\0"), Some(b"v\n\xff"));
        let format = Format::parse(r"%t/%p@%o %k=%v (%s,%K) %T 100%%\0", vec![], vec![]).unwrap();
        assert_eq!(
            render(&format, &record),
            b"t/3@7 k\0=v\n\xff (3,2) 99 100%\0".to_vec()
        );
        assert!(Format::parse("%q", vec![], vec![]).is_err());
        assert!(Format::parse("plain", vec![], vec![]).is_err());
    }

    #[test]
    fn json_base64_encodes_only_what_is_not_utf8() {
        let record = Record::new(1, Some(b"key"), Some(b"\xff\x00"));
        let line = render(&Format::Json, &record);
        let json: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(json["key"], "key");
        assert_eq!(json["value_b64"], "/wA=");
        assert!(json.get("value").is_none());
    }
}
