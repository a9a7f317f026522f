//! Hostile HTTP at the SQS door, over TCP to a real broker: a head or a body over its bound,
//! lengths that cannot be followed, garbage JSON, a slow sender. Each gets a clear 4xx (or, for
//! a slow sender, a close) and ends at most its own connection: a second connection opened
//! first is served before and after. Keep-alive and pipelining: answers come in request order.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ringmq::config::BrokerConfig;

fn broker(dir: &std::path::Path) -> common::TestBroker {
    let mut config = BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        sqs_listen: "127.0.0.1:0".into(),
        shards: 2,
        request_read_timeout_ms: 500,
        ..Default::default()
    };
    config.sqs.head_bytes_max = 4096;
    config.sqs.body_bytes_max = 64 * 1024;
    common::TestBroker::start_with(config)
}

fn address(broker: &common::TestBroker) -> String {
    broker
        .handle
        .as_ref()
        .unwrap()
        .sqs_address
        .unwrap()
        .to_string()
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// One response: (status, headers lowercased, body).
type Response = (u16, Vec<(String, String)>, Vec<u8>);

/// Reads one HTTP response (head and Content-Length body) from `stream`, keeping what follows.
fn read_response(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Response> {
    loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buffer[..end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
            let headers: Vec<(String, String)> = lines
                .filter_map(|line| line.split_once(':'))
                .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
                .collect();
            let length: usize = headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .map(|(_, value)| value.parse().unwrap())
                .unwrap();
            while buffer.len() < end + 4 + length {
                let mut chunk = [0u8; 65536];
                let read = stream.read(&mut chunk).ok()?;
                if read == 0 {
                    return None;
                }
                buffer.extend_from_slice(&chunk[..read]);
            }
            let body = buffer[end + 4..end + 4 + length].to_vec();
            buffer.drain(..end + 4 + length);
            return Some((status, headers, body));
        }
        let mut chunk = [0u8; 65536];
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

fn json_request(action: &str, body: &str) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: sqs\r\nX-Amz-Target: AmazonSQS.{action}\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// True once the peer has closed (EOF, or a reset for bytes it never read) within the read
/// timeout; false if it is still open then.
fn closed(stream: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match stream.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn served(stream: &mut TcpStream) -> bool {
    stream.write_all(&json_request("ListQueues", "{}")).unwrap();
    let mut buffer = Vec::new();
    matches!(read_response(stream, &mut buffer), Some((200, _, _)))
}

#[test]
fn oversized_and_unfollowable_requests_get_a_4xx_and_end_only_their_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = address(&broker);
    let mut bystander = connect(&address);
    assert!(served(&mut bystander));
    let head_too_large = format!(
        "POST / HTTP/1.1\r\nHost: sqs\r\nX-Junk: {}\r\n\r\n",
        "a".repeat(8192)
    );
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (head_too_large.into_bytes(), 431),
        (
            b"POST / HTTP/1.1\r\nHost: sqs\r\nContent-Length: 99999999\r\n\r\n".to_vec(),
            413,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: sqs\r\nContent-Length: 12abc\r\n\r\n".to_vec(),
            411,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: sqs\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
                .to_vec(),
            411,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: sqs\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                .to_vec(),
            411,
        ),
        (b"POST / HTTP/1.1\r\nHost: sqs\r\n\r\n".to_vec(), 411),
        (b"\x00\x01\x02 garbage\r\n\r\n".to_vec(), 400),
    ];
    for (request, status) in cases {
        let mut stream = connect(&address);
        stream.write_all(&request).unwrap();
        let mut buffer = Vec::new();
        let response = read_response(&mut stream, &mut buffer).unwrap_or_else(|| {
            panic!(
                "no answer to {:?}",
                String::from_utf8_lossy(&request[..40.min(request.len())])
            )
        });
        assert_eq!(
            response.0,
            status,
            "{:?}",
            String::from_utf8_lossy(&response.2)
        );
        assert!(
            closed(&mut stream),
            "the connection closes after a {status}"
        );
        assert!(
            served(&mut bystander),
            "the other connection is still served"
        );
    }
}

#[test]
fn garbage_json_is_an_sqs_error_and_the_connection_stays() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let mut stream = connect(&address(&broker));
    let mut buffer = Vec::new();
    for (action, body, code) in [
        ("CreateQueue", "{not json", "SerializationException"),
        ("CreateQueue", "[1, 2]", "SerializationException"),
        (
            "CreateQueue",
            r#"{"QueueName": 5}"#,
            "InvalidParameterValue",
        ),
        (
            "CreateQueue",
            r#"{"QueueName": "bad name!"}"#,
            "InvalidParameterValue",
        ),
        ("CreateQueue", "{}", "MissingParameter"),
        ("NoSuchThing", "{}", "InvalidAction"),
        (
            "ReceiveMessage",
            r#"{"QueueUrl": "http://x/000000000000/missing"}"#,
            "QueueDoesNotExist",
        ),
    ] {
        stream.write_all(&json_request(action, body)).unwrap();
        let (status, headers, body) = read_response(&mut stream, &mut buffer).unwrap();
        assert_eq!(status, 400);
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            parsed["__type"],
            format!("com.amazonaws.sqs#{code}"),
            "{parsed}"
        );
        assert!(
            headers
                .iter()
                .any(|(name, value)| name == "x-amzn-query-error" && value.ends_with(";Sender"))
        );
    }
    assert!(
        served(&mut stream),
        "keep-alive: the same connection goes on"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    use md5::Digest;
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let mut stream = connect(&address(&broker));
    let mut buffer = Vec::new();
    stream
        .write_all(&json_request("CreateQueue", r#"{"QueueName": "pipe"}"#))
        .unwrap();
    assert_eq!(read_response(&mut stream, &mut buffer).unwrap().0, 200);
    // Requests of one connection run concurrently; their answers go out in request order.
    let mut all = Vec::new();
    for i in 0..20 {
        let body =
            format!(r#"{{"QueueUrl": "http://sqs/000000000000/pipe", "MessageBody": "m{i}"}}"#);
        all.extend(json_request("SendMessage", &body));
    }
    stream.write_all(&all).unwrap();
    for i in 0..20 {
        let (status, _, body) = read_response(&mut stream, &mut buffer).unwrap();
        assert_eq!(status, 200, "send {i}");
        let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let wanted: String = md5::Md5::digest(format!("m{i}").as_bytes())
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            parsed["MD5OfMessageBody"], wanted,
            "answer {i} out of order"
        );
    }
    stream
        .write_all(&json_request(
            "GetQueueAttributes",
            r#"{"QueueUrl": "http://sqs/000000000000/pipe", "AttributeNames": ["ApproximateNumberOfMessages"]}"#,
        ))
        .unwrap();
    let (_, _, body) = read_response(&mut stream, &mut buffer).unwrap();
    let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(parsed["Attributes"]["ApproximateNumberOfMessages"], "20");
}

#[test]
fn a_request_sent_too_slowly_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = address(&broker);
    let mut bystander = connect(&address);
    let mut slow = connect(&address);
    slow.write_all(b"POST / HTTP/1.1\r\nHost: sqs\r\nContent-Le")
        .unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let outcome = slow.read(&mut byte);
    assert!(matches!(outcome, Ok(0) | Err(_)), "closed, not answered");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(served(&mut bystander));
}

#[test]
fn expect_100_continue_is_answered_before_the_body_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = address(&broker);
    let mut stream = connect(&address);
    let body = r#"{"QueueName": "continued"}"#;
    let head = format!(
        "POST / HTTP/1.1\r\nHost: sqs\r\nX-Amz-Target: AmazonSQS.CreateQueue\r\nContent-Type: application/x-amz-json-1.0\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // The body is held back until the server asks for it, as an SDK does.
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; interim.len()];
    stream
        .read_exact(&mut got)
        .expect("100 Continue before the body");
    assert_eq!(&got[..], interim);
    stream.write_all(body.as_bytes()).unwrap();
    let mut buffer = Vec::new();
    let (status, _, answer) = read_response(&mut stream, &mut buffer).unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    assert!(String::from_utf8_lossy(&answer).contains("/continued"));
    assert!(served(&mut stream), "the connection stays");

    // A body over sqs.body_bytes_max gets its final answer at once, before it is sent.
    let mut stream = connect(&address);
    let head =
        "POST / HTTP/1.1\r\nHost: sqs\r\nExpect: 100-continue\r\nContent-Length: 1000000\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let mut buffer = Vec::new();
    let (status, _, _) = read_response(&mut stream, &mut buffer).unwrap();
    assert_eq!(status, 413);
    assert!(closed(&mut stream));

    // An expectation this server does not meet: 417, without waiting for a body.
    let mut stream = connect(&address);
    let head = "POST / HTTP/1.1\r\nHost: sqs\r\nExpect: teapot\r\nContent-Length: 10\r\n\r\n";
    stream.write_all(head.as_bytes()).unwrap();
    let mut buffer = Vec::new();
    let (status, _, _) = read_response(&mut stream, &mut buffer).unwrap();
    assert_eq!(status, 417);
    assert!(closed(&mut stream));
}
