//! The SQS door as the AWS CLI drives it (awscli from PyPI, run through tests/clients/.venv's
//! `aws` entry point with dummy credentials and the region from the environment, as a user
//! would): a queue's whole life, create-queue to delete-queue, checked by what the CLI prints
//! (its JSON output): the queue URL, the MD5 of each body (computed here, and verified by the
//! CLI's own botocore as it receives), the bodies and attributes received, and the counts
//! get-queue-attributes reports at each step.

mod common;

use std::process::{Command, Output};

use md5::{Digest, Md5};
use ringmq::config::BrokerConfig;
use serde_json::Value;

/// The CLI's entry point in the test clients' virtual environment.
fn aws_path() -> std::path::PathBuf {
    common::clients_dir().join(".venv/bin/aws")
}

/// Runs `aws --endpoint-url ENDPOINT sqs ARGS` with dummy credentials, isolated from any
/// configuration of the machine's user.
fn aws(endpoint: &str, args: &[&str]) -> std::io::Result<Output> {
    Command::new(aws_path())
        .args(["--endpoint-url", endpoint, "--output", "json", "sqs"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", "AKIDDUMMY")
        .env("AWS_SECRET_ACCESS_KEY", "dummy-secret")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/aws-credentials",
        )
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .output()
}

/// The JSON a successful command printed (Null for commands that print nothing).
fn ok(endpoint: &str, args: &[&str]) -> Value {
    let output = aws(endpoint, args).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "aws sqs {args:?}: {stderr}");
    if output.stdout.iter().all(u8::is_ascii_whitespace) {
        return Value::Null;
    }
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("aws sqs {args:?}: {error}: {stderr}"))
}

fn md5_hex(bytes: &str) -> String {
    Md5::digest(bytes.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// The queue's visible and in-flight counts, as get-queue-attributes prints them.
fn counts(endpoint: &str, url: &str) -> (String, String) {
    let names = "ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible";
    let mut args = vec![
        "get-queue-attributes",
        "--queue-url",
        url,
        "--attribute-names",
    ];
    args.extend(names.split(' '));
    let answer = ok(endpoint, &args);
    let attributes = &answer["Attributes"];
    let count = |name: &str| attributes[name].as_str().unwrap_or("missing").to_string();
    (
        count("ApproximateNumberOfMessages"),
        count("ApproximateNumberOfMessagesNotVisible"),
    )
}

#[test]
fn the_aws_cli_creates_sends_receives_deletes_and_removes_a_queue() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::TestBroker::start_with(BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        sqs_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    });
    let address = broker.handle.as_ref().unwrap().sqs_address.unwrap();
    let endpoint = format!("http://{address}");
    if let Err(error) = aws(&endpoint, &["list-queues"]) {
        return common::tool_missing("awscli (tests/clients/.venv)", &error);
    }

    let created = ok(
        &endpoint,
        &[
            "create-queue",
            "--queue-name",
            "cli-orders",
            "--attributes",
            "VisibilityTimeout=60",
        ],
    );
    let url = created["QueueUrl"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://{address}/000000000000/cli-orders"));
    assert_eq!(counts(&endpoint, &url), ("0".into(), "0".into()));

    let bodies = [
        "first order from the aws cli",
        "second order: ünïcode & <xml>",
    ];
    let mut sent_ids = Vec::new();
    for body in bodies {
        let sent = ok(
            &endpoint,
            &[
                "send-message",
                "--queue-url",
                &url,
                "--message-body",
                body,
                "--message-attributes",
                r#"{"origin":{"DataType":"String","StringValue":"aws-cli"}}"#,
            ],
        );
        assert_eq!(sent["MD5OfMessageBody"], md5_hex(body), "{sent}");
        assert!(sent["MD5OfMessageAttributes"].is_string(), "{sent}");
        sent_ids.push(sent["MessageId"].as_str().unwrap().to_string());
    }
    assert_ne!(sent_ids[0], sent_ids[1]);
    assert_eq!(counts(&endpoint, &url), ("2".into(), "0".into()));

    let received = ok(
        &endpoint,
        &[
            "receive-message",
            "--queue-url",
            &url,
            "--max-number-of-messages",
            "10",
            "--wait-time-seconds",
            "1",
            "--message-attribute-names",
            "All",
        ],
    );
    let messages = received["Messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{received}");
    for (message, (body, id)) in messages.iter().zip(bodies.iter().zip(&sent_ids)) {
        assert_eq!(message["Body"], *body);
        assert_eq!(message["MessageId"], id.as_str());
        assert_eq!(message["MD5OfBody"], md5_hex(body));
        assert_eq!(
            message["MessageAttributes"]["origin"]["StringValue"],
            "aws-cli"
        );
    }
    assert_eq!(counts(&endpoint, &url), ("0".into(), "2".into()));

    for message in messages {
        let handle = message["ReceiptHandle"].as_str().unwrap();
        let deleted = ok(
            &endpoint,
            &[
                "delete-message",
                "--queue-url",
                &url,
                "--receipt-handle",
                handle,
            ],
        );
        assert_eq!(deleted, Value::Null);
    }
    assert_eq!(counts(&endpoint, &url), ("0".into(), "0".into()));
    let empty = ok(
        &endpoint,
        &[
            "receive-message",
            "--queue-url",
            &url,
            "--wait-time-seconds",
            "0",
        ],
    );
    assert!(empty.get("Messages").is_none(), "{empty}");

    assert_eq!(
        ok(&endpoint, &["delete-queue", "--queue-url", &url]),
        Value::Null
    );
    let gone = aws(&endpoint, &["get-queue-url", "--queue-name", "cli-orders"]).unwrap();
    let stderr = String::from_utf8_lossy(&gone.stderr);
    assert!(!gone.status.success(), "{stderr}");
    // The JSON protocol's query-compatible code, as the CLI prints it for AWS itself.
    assert!(
        stderr.contains("(AWS.SimpleQueueService.NonExistentQueue)"),
        "{stderr}"
    );
}
