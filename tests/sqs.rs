//! The SQS door as AWS's own SDK drives it: boto3 (tests/clients/sqs_client.py, one scenario per
//! run against a real broker on an ephemeral loopback port) through the JSON protocol, and
//! signed query-protocol requests (botocore's SigV4 signer, XML answers). botocore checks every
//! MD5 it is sent, so each scenario that finishes has had them verified; this file checks what
//! each scenario saw: counts, bodies, order and SQS's exact error codes.

mod common;

use std::process::Command;

use ringmq::config::{BrokerConfig, SqsCredential};
use serde_json::{Value, json};

fn config(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        sqs_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    }
}

/// Runs `scenario` of sqs_client.py against a broker with `config`; None when boto3 is not
/// installed (and the test is not under tools/test).
fn scenario(config: BrokerConfig, scenario: &str, extra: &[&str]) -> Option<Value> {
    let broker = common::TestBroker::start_with(config);
    run(&broker, scenario, extra)
}

/// Runs `scenario` against `broker`.
fn run(broker: &common::TestBroker, scenario: &str, extra: &[&str]) -> Option<Value> {
    let endpoint = format!(
        "http://{}",
        broker.handle.as_ref().unwrap().sqs_address.unwrap()
    );
    let python = common::clients_dir().join(".venv/bin/python");
    let output = match Command::new(&python)
        .arg(common::clients_dir().join("sqs_client.py"))
        .args([endpoint.as_str(), scenario])
        .args(extra)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            common::tool_missing("boto3 (tests/clients/.venv)", &error);
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named 'boto3'") {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, stderr.to_string());
        common::tool_missing("boto3 (tests/clients/.venv)", &missing);
        return None;
    }
    assert!(output.status.success(), "{scenario} failed:\n{stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap();
    Some(seen)
}

#[test]
fn a_standard_queue_lives_and_dies_through_boto3() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "lifecycle", &[]) else {
        return;
    };
    let url = seen["url"].as_str().unwrap();
    assert!(url.ends_with("/000000000000/life-0"), "{url}");
    assert_eq!(seen["again"], url);
    assert_eq!(seen["conflict"], "QueueAlreadyExists");
    assert!(seen["get_url"].as_str().unwrap().ends_with("/life-1"));
    let pages = seen["pages"].as_array().unwrap();
    assert_eq!(pages[0].as_array().unwrap().len(), 2);
    assert_eq!(pages[1].as_array().unwrap().len(), 1);
    assert!(pages[1][0].as_str().unwrap().ends_with("/life-2"));
    assert_eq!(pages[2], false, "the last page has no token");
    assert_eq!(seen["available_before"], "5");
    let bodies: Vec<String> = (0..5)
        .map(|i| format!("message {i} <&> \"quoted\" ✓"))
        .collect();
    assert_eq!(seen["received"], json!(bodies));
    assert_eq!(seen["ids_match"], true);
    assert_eq!(seen["attributes"], json!(["42", "00ff6279746573"]));
    assert_eq!(seen["nothing_left_visible"], 0);
    assert_eq!(seen["not_visible"], "5");
    assert_eq!(seen["arn"], "arn:aws:sqs:us-east-1:000000000000:life-0");
    assert_eq!(seen["deleted"], 5);
    assert_eq!(seen["after_delete"], json!(["0", "0"]));
    assert_eq!(seen["after_purge"], 0);
    assert_eq!(seen["tags"], json!({"team": "a"}));
    assert_eq!(
        seen["set"],
        json!({"VisibilityTimeout": "7", "ReceiveMessageWaitTimeSeconds": "2"})
    );
    assert_eq!(seen["bad_attribute"], "InvalidAttributeValue");
    assert_eq!(seen["gone"], "AWS.SimpleQueueService.NonExistentQueue");
    assert_eq!(
        seen["send_to_gone"],
        "AWS.SimpleQueueService.NonExistentQueue"
    );
}

#[test]
fn a_long_poll_waits_and_wakes_on_a_send() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "long_poll", &[]) else {
        return;
    };
    assert_eq!(seen["empty"], 0);
    assert!(seen["empty_waited"].as_f64().unwrap() >= 0.9, "{seen}");
    assert_eq!(seen["body"], json!(["late"]));
    let woken = seen["woken_after"].as_f64().unwrap();
    assert!(
        (0.9..9.0).contains(&woken),
        "woken after {woken} s, not at the send"
    );
}

#[test]
fn visibility_expires_counts_receives_and_stale_handles_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "visibility", &[]) else {
        return;
    };
    assert_eq!(seen["hidden"], 0);
    assert_eq!(seen["counts"], json!(["1", "2"]));
    assert_eq!(seen["same_id"], true);
    assert_eq!(seen["stale_delete"], "ReceiptHandleIsInvalid");
    assert_eq!(seen["garbage_delete"], "ReceiptHandleIsInvalid");
    assert_eq!(seen["extended_hidden"], 0);
    assert_eq!(seen["released_count"], "3");
    assert_eq!(
        seen["batch_visibility"],
        json!([["good"], [["stale", "ReceiptHandleIsInvalid"]]])
    );
}

#[test]
fn per_message_and_queue_delays_hold_messages_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "delays", &[]) else {
        return;
    };
    assert_eq!(seen["first"], json!(["now"]));
    assert_eq!(seen["delayed"], "1");
    assert_eq!(seen["second"], json!(["later"]));
    assert_eq!(seen["queue_delay_hidden"], 0);
    assert_eq!(seen["queue_delay_later"], json!(["queue delay"]));
    assert_eq!(seen["too_long"], "InvalidParameterValue");
}

#[test]
fn batches_report_each_entry_and_refuse_bad_batches_whole() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "batches", &[]) else {
        return;
    };
    assert_eq!(
        seen["not_distinct"],
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    );
    assert_eq!(
        seen["too_many"],
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    );
    assert_eq!(seen["empty"], "AWS.SimpleQueueService.EmptyBatchRequest");
    assert_eq!(seen["bad_id"], "AWS.SimpleQueueService.InvalidBatchEntryId");
    assert_eq!(seen["sent"], json!(["ok1", "ok2"]));
    assert_eq!(
        seen["failed"],
        json!([
            ["badchar", "InvalidMessageContents", true],
            ["baddelay", "InvalidParameterValue", true]
        ])
    );
    assert_eq!(seen["bodies"], json!(["first", "second"]));
    assert_eq!(seen["deleted"], json!(["m0", "m1"]));
    assert_eq!(
        seen["delete_failed"],
        json!([["bogus", "ReceiptHandleIsInvalid"]])
    );
    // A handle named twice: the batch is settled entry by entry, and only the repeat fails.
    assert_eq!(
        seen["twice"],
        json!([["a", "b"], [["again", "ReceiptHandleIsInvalid"]]])
    );
    assert_eq!(seen["left"], 0);
}

#[test]
fn a_fifo_queue_keeps_each_message_groups_order() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "fifo", &[]) else {
        return;
    };
    assert_eq!(seen["not_fifo_name"], "InvalidParameterValue");
    assert_eq!(seen["sequence_increases"], true);
    assert_eq!(seen["no_group"], "MissingParameter");
    assert_eq!(
        seen["order"],
        json!({"g1": ["g1-0", "g1-1", "g1-2", "g1-3"], "g2": ["g2-0", "g2-1", "g2-2", "g2-3"]})
    );
}

#[test]
fn the_query_protocol_answers_in_sqs_xml() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "query", &[]) else {
        return;
    };
    assert_eq!(seen["create"][0], 200);
    assert!(
        seen["create"][1]
            .as_str()
            .unwrap()
            .ends_with("/000000000000/xmlq")
    );
    assert_eq!(seen["send_md5"], true);
    assert_eq!(
        seen["receive"],
        json!([200, ["query <body> & more"], ["blue"]])
    );
    assert_eq!(seen["receive_md5"], true);
    assert_eq!(seen["attributes_md5"], true);
    assert_eq!(seen["system_attributes"], true);
    assert_eq!(seen["by_path"], json!([200, ["5"]]));
    assert_eq!(
        seen["error"],
        json!([400, ["AWS.SimpleQueueService.NonExistentQueue"], ["Sender"]])
    );
    assert_eq!(seen["list"].as_array().unwrap().len(), 1);
    assert_eq!(seen["unknown_action"], json!([400, ["InvalidAction"]]));
}

#[test]
fn configured_credentials_are_checked_by_signature_and_their_principals_by_acls() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    // Credentials turn the ACLs on: alice may do anything, bob nothing.
    config.sqs.credentials = vec![
        SqsCredential {
            access_key_id: "AKIDRINGMQ".into(),
            secret_access_key: "the-right-secret".into(),
            principal: "alice".into(),
        },
        SqsCredential {
            access_key_id: "AKIDBOB".into(),
            secret_access_key: "bob-secret".into(),
            principal: "bob".into(),
        },
    ];
    config.super_users = vec!["User:alice".into()];
    let Some(seen) = scenario(config, "signatures", &["AKIDRINGMQ", "the-right-secret"]) else {
        return;
    };
    assert_eq!(seen["right"], true);
    assert_eq!(seen["wrong_secret"], "SignatureDoesNotMatch");
    assert_eq!(seen["unknown_key"], "InvalidClientTokenId");
    assert_eq!(seen["bob_create"], "AccessDenied");
    assert_eq!(seen["bob_send"], "AccessDenied");
    assert_eq!(seen["bob_lists"], json!([]), "bob may describe no queue");
    assert_eq!(seen["query_wrong"], json!([403, ["SignatureDoesNotMatch"]]));
    assert_eq!(seen["query_right"], 200);
    assert_eq!(
        seen["other_service"],
        json!([
            403,
            ["SignatureDoesNotMatch"],
            ["Credential should be scoped to correct service: 'sqs'."]
        ])
    );
    assert_eq!(
        seen["other_region"],
        json!([
            403,
            ["SignatureDoesNotMatch"],
            ["Credential should be scoped to a valid region, not 'eu-west-1'."]
        ])
    );
    assert_eq!(seen["other_region_boto3"], "SignatureDoesNotMatch");
    assert_eq!(
        seen["unsigned"],
        json!([403, ["MissingAuthenticationToken"]])
    );
}

#[test]
fn dead_letters_go_to_the_redrive_policys_queue_and_move_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "dead_letters", &[]) else {
        return;
    };
    assert_eq!(seen["counts"], json!(["1", "1", "2", "2"]));
    assert_eq!(
        seen["dead"],
        json!(["poison from later", "poison from src"])
    );
    assert_eq!(seen["dead_attribute"], json!(["kept", "kept"]));
    assert_eq!(seen["source_empty"], 0);
    let mut urls: Vec<Value> = seen["urls"].as_array().unwrap().clone();
    urls.sort_by_key(|url| url.as_str().unwrap().to_string());
    assert_eq!(seen["sources"], Value::Array(urls));
    assert_eq!(seen["task"], true);
    assert_eq!(
        seen["back"],
        json!(["poison from later", "poison from src"])
    );
    assert_eq!(seen["tasks"], json!([["COMPLETED", 2]]));
}

#[test]
fn queues_their_attributes_tags_and_messages_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::TestBroker::start_with(config(dir.path()));
    let Some(before) = run(&broker, "durable_before", &[]) else {
        return;
    };
    assert!(before["url"].as_str().unwrap().ends_with("/kept"));
    broker.restart();
    let after = run(&broker, "durable_after", &[]).unwrap();
    assert_eq!(after["attributes"], json!(["17", "3", 4]));
    assert_eq!(after["tags"], json!({"owner": "me"}));
    assert_eq!(after["message"], json!([["survives", "v"]]));
    assert_eq!(after["sources"], json!(["kept"]));
}

#[test]
fn a_fifo_queue_drops_duplicates_by_content_or_deduplication_id() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "fifo", &["AKIDTEST", "secret", "dedup"]) else {
        return;
    };
    assert_eq!(
        seen["dedup_ids"],
        json!([true, true]),
        "a duplicate is answered with its first copy's id"
    );
    assert_eq!(seen["dedup_bodies"], json!(["same", "other"]));
}

#[test]
fn the_md5s_of_a_send_and_a_receive_are_sqs_documented_ones() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "md5s", &[]) else {
        return;
    };
    // Computed by Python's hashlib from AWS's documented encoding (sqs_client.py), and pinned
    // here so a change of the scenario's encoding cannot pass unnoticed.
    let expected = json!([
        "c8c1064aacaf2be0b9ad5c19746332f0",
        "94e45a2801c3a9f4cd121f5cd49a22a0"
    ]);
    assert_eq!(seen["expected"], expected);
    assert_eq!(seen["sent"], expected, "SendMessage's answer");
    assert_eq!(
        seen["received"],
        json!([expected]),
        "ReceiveMessage's answer"
    );
}

#[test]
fn sender_id_names_who_sent_not_who_receives() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    config.sqs.credentials = ["alice", "carol"]
        .iter()
        .map(|user| SqsCredential {
            access_key_id: format!("AKID{}", user.to_uppercase()),
            secret_access_key: format!("{user}-secret"),
            principal: user.to_string(),
        })
        .collect();
    config.super_users = vec!["User:alice".into(), "User:carol".into()];
    let Some(seen) = scenario(config, "senders", &["AKIDALICE", "alice-secret"]) else {
        return;
    };
    assert_eq!(seen["senders"], json!(["alice"]));
}

#[test]
fn a_move_task_records_its_progress_and_is_cancelled_midway() {
    let dir = tempfile::tempdir().unwrap();
    let Some(seen) = scenario(config(dir.path()), "move_cancel", &[]) else {
        return;
    };
    assert_eq!(seen["running"][0], "RUNNING");
    let progress = seen["running"][1].as_u64().unwrap();
    assert!(
        (1..30).contains(&progress),
        "progress is recorded while the task runs: {progress}"
    );
    let at_cancel = seen["cancel_moved"].as_u64().unwrap();
    assert!(at_cancel >= progress, "{at_cancel} < {progress}");
    assert_eq!(seen["final"][0], "CANCELLED");
    assert_eq!(seen["final"][2], false, "a finished task shows no handle");
    let moved = seen["final"][1].as_u64().unwrap();
    assert!((at_cancel..30).contains(&moved), "stopped midway: {moved}");
    assert_eq!(seen["cancel_again"], "ResourceNotFoundException");
    assert_eq!(seen["bogus"], "ResourceNotFoundException");
    assert_eq!(
        seen["counts"],
        json!([moved, 30 - moved]),
        "what it moved is in the destination, the rest available in the source"
    );
    assert_eq!(seen["after_delete"], json!([]), "tasks go with their queue");
}

/// A broker whose Kafka door is open too (the scenarios write `__sqs_queues` through it, as
/// anyone with Write on it could).
fn config_with_kafka(dir: &std::path::Path) -> BrokerConfig {
    BrokerConfig {
        kafka_listen: "127.0.0.1:0".into(),
        ..config(dir)
    }
}

fn kafka_address(broker: &common::TestBroker) -> String {
    let handle = broker.handle.as_ref().unwrap();
    handle.kafka_address.unwrap().to_string()
}

#[test]
fn a_task_a_crash_left_running_is_failed_when_the_broker_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::TestBroker::start_with(config_with_kafka(dir.path()));
    let kafka = kafka_address(&broker);
    let Some(before) = run(
        &broker,
        "move_stale_before",
        &["AKIDTEST", "secret", &kafka],
    ) else {
        return;
    };
    assert_eq!(before["written"], true);
    broker.restart();
    let after = run(&broker, "move_stale_after", &[]).unwrap();
    assert_eq!(after["after"][0], "FAILED");
    assert_eq!(after["after"][1], 7, "its last recorded progress");
    assert!(
        after["after"][2]
            .as_str()
            .unwrap()
            .contains("the broker stopped while the task ran"),
        "{}",
        after["after"][2]
    );
    assert_eq!(
        after["after"][3],
        json!([]),
        "the broker's own fields are not shown"
    );
}

#[test]
fn the_store_holds_only_existing_queues_and_at_most_its_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_with_kafka(dir.path());
    config.sqs.store_keys_max = 20;
    let broker = common::TestBroker::start_with(config);
    let kafka = kafka_address(&broker);
    let Some(seen) = run(&broker, "store_bounds", &["AKIDTEST", "secret", &kafka]) else {
        return;
    };
    assert_eq!(
        seen["created"], 15,
        "5 + 15 queues fill 20 keys; the 60 records of queues that do not exist take none"
    );
    assert_eq!(seen["refused"], "OverLimit");
    assert_eq!(
        seen["again"],
        Value::Null,
        "an existing queue's record still fits"
    );
    assert_eq!(seen["listed"], 0);
}
