//! The SQS door's request parsers under random and structured hostile input: random bytes to
//! every parser (`ringmq::sqs::parse_untrusted`) never panic; then every action, in both
//! protocols, with parameters of random types, sizes and nesting, sent to a real broker over
//! TCP: each gets an HTTP answer that is SQS's (200 or a 4xx naming an error, never a 500), and
//! the broker goes on serving. `PROPTEST_CASES=N` runs N cases of each.

mod common;

use ringmq::sqs::ACTIONS;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};

fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(default)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_a_parser(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = ringmq::sqs::parse_untrusted(&bytes);
        let mut request = b"POST / HTTP/1.1\r\nContent-Length: ".to_vec();
        request.extend_from_slice(bytes.len().to_string().as_bytes());
        request.extend_from_slice(b"\r\nX-Amz-Target: AmazonSQS.SendMessage\r\n\r\n");
        request.extend_from_slice(&bytes);
        let _ = ringmq::sqs::parse_untrusted(&request);
    }
}

const PARAMETERS: [&str; 18] = [
    "QueueName",
    "QueueUrl",
    "Attributes",
    "MessageBody",
    "MessageAttributes",
    "Entries",
    "ReceiptHandle",
    "VisibilityTimeout",
    "WaitTimeSeconds",
    "MaxNumberOfMessages",
    "DelaySeconds",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AttributeNames",
    "MessageAttributeNames",
    "Tags",
    "SourceArn",
    "MaxResults",
];

/// A JSON value of any type, nested a few levels.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        "[a-z0-9 ./:_-]{0,40}".prop_map(Value::String),
        Just(json!("http://sqs/000000000000/fuzz")),
        Just(json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")),
        Just(Value::String("x".repeat(70_000))),
        Just(json!({"DataType": "Binary", "BinaryValue": "!!notbase64"})),
        Just(json!({"DataType": "Number", "StringValue": "NaN?"})),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..12).prop_map(Value::Array),
            proptest::collection::btree_map("[A-Za-z.]{1,12}", inner, 0..12)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// One request: an action, random parameters, and which protocol carries them.
fn request() -> impl Strategy<Value = Vec<u8>> {
    (
        0..ACTIONS.len(),
        proptest::collection::vec((0..PARAMETERS.len(), value()), 0..6),
        any::<bool>(),
        proptest::collection::vec(("[A-Za-z]{1,10}(\\.[0-9]{1,3}){0,9}", "[ -~]{0,20}"), 0..8),
    )
        .prop_map(|(action, params, json, form)| {
            let action = ACTIONS[action];
            if json {
                let body: serde_json::Map<String, Value> = params
                    .into_iter()
                    .map(|(name, value)| (PARAMETERS[name].to_string(), value))
                    .collect();
                let body = Value::Object(body).to_string();
                format!(
                    "POST / HTTP/1.1\r\nHost: sqs\r\nX-Amz-Target: AmazonSQS.{action}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            } else {
                let mut pairs = form_urlencoded::Serializer::new(String::new());
                pairs.append_pair("Action", action);
                for (name, value) in params {
                    let text = match value {
                        Value::String(text) => text,
                        other => other.to_string(),
                    };
                    pairs.append_pair(PARAMETERS[name], &text);
                }
                for (name, value) in form {
                    pairs.append_pair(&name, &value);
                }
                let body = pairs.finish();
                format!(
                    "POST /000000000000/fuzz HTTP/1.1\r\nHost: sqs\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
        })
}

/// Sends `request` and reads its answer's status; None if the connection closed instead.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> Option<u16> {
    stream.write_all(request).ok()?;
    let mut buffer = Vec::new();
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))?
                .parse()
                .ok()?;
            while buffer.len() < end + 4 + length {
                let mut chunk = [0u8; 65536];
                let read = stream.read(&mut chunk).ok()?;
                if read == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            return Some(status);
        }
        let mut chunk = [0u8; 65536];
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

#[test]
fn hostile_parameters_of_every_action_get_sqs_answers_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let config = ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        sqs_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    };
    let broker = common::TestBroker::start_with(config);
    let address = broker.handle.as_ref().unwrap().sqs_address.unwrap();
    let connect = || {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        stream
    };
    let stream = std::cell::RefCell::new(connect());
    let create = "{\"QueueName\": \"fuzz\"}";
    let setup = format!(
        "POST / HTTP/1.1\r\nHost: sqs\r\nX-Amz-Target: AmazonSQS.CreateQueue\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{create}",
        create.len()
    );
    assert_eq!(
        exchange(&mut stream.borrow_mut(), setup.as_bytes()),
        Some(200)
    );
    let mut runner = TestRunner::new(Config::with_cases(cases(300)));
    runner
        .run(&request(), |request| {
            let mut stream = stream.borrow_mut();
            let status = match exchange(&mut stream, &request) {
                Some(status) => status,
                None => {
                    *stream = connect();
                    exchange(&mut stream, &request).expect("a fresh connection is answered")
                }
            };
            prop_assert!(
                status == 200 || (400..500).contains(&status),
                "status {} for {}",
                status,
                String::from_utf8_lossy(&request[..request.len().min(300)])
            );
            Ok(())
        })
        .unwrap();
    let mut fresh = connect();
    let list = "{}";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: sqs\r\nX-Amz-Target: AmazonSQS.ListQueues\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{list}",
        list.len()
    );
    assert_eq!(exchange(&mut fresh, request.as_bytes()), Some(200));
}
