//! Exchanges over TCP: a real broker on an ephemeral port, its native protocol, the Rust client
//! and the CLI. Each test checks what reached each topic (counts, contents, order, headers), not
//! only what the publish answered.

mod common;

use std::io::Write;
use std::process::Command;

use bytes::Bytes;
use common::{TestBroker, metric};
use ringmq::batch::{Header, Record};
use ringmq::client::Client;
use ringmq::protocol::ErrorCode;
use ringmq::protocol::routing::{BindingSpec, ExchangeType, MatchMode, PublishResponse};
use ringmq::storage::AckLevel;

fn to_topic(topic: &str, key: &str) -> BindingSpec {
    BindingSpec {
        destination: topic.into(),
        key: key.into(),
        ..BindingSpec::default()
    }
}

fn to_exchange(exchange: &str, key: &str) -> BindingSpec {
    BindingSpec {
        to_exchange: true,
        ..to_topic(exchange, key)
    }
}

fn record(value: &str, headers: &[(&str, &str)]) -> Record {
    let mut record = Record::new(1, None, Some(value.as_bytes()));
    record.headers = headers
        .iter()
        .map(|(key, value)| Header {
            key: key.to_string(),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
        })
        .collect();
    record
}

/// Every record of partition 0 of `topic`, in offset order.
async fn read_all(client: &Client, topic: &str) -> Vec<Record> {
    common::fetch_records(client, topic).await.unwrap()
}

fn values(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|record| String::from_utf8(record.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

fn header<'a>(record: &'a Record, key: &str) -> Option<&'a [u8]> {
    record
        .headers
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value.as_deref())
}

async fn publish(client: &Client, exchange: &str, key: &str, value: &str) -> PublishResponse {
    let answer = client
        .publish(
            exchange,
            key,
            vec![record(value, &[])],
            AckLevel::Written,
            false,
        )
        .await
        .unwrap();
    assert_eq!(answer.failed().count(), 0, "{answer:?}");
    answer
}

async fn topics(client: &Client, names: &[&str]) {
    for name in names {
        client.create_topic(name, 1, &[]).await.unwrap();
    }
}

/// RabbitMQ's topic rule, for the expected routes.
fn matches(pattern: &str, key: &str) -> bool {
    fn walk(pattern: &[&str], key: &[&str]) -> bool {
        match pattern.split_first() {
            None => key.is_empty(),
            Some((&"#", rest)) => (0..=key.len()).any(|skip| walk(rest, &key[skip..])),
            Some((&"*", rest)) => !key.is_empty() && walk(rest, &key[1..]),
            Some((word, rest)) => key.first() == Some(word) && walk(rest, &key[1..]),
        }
    }
    let words = |text: &str| -> Vec<String> {
        if text.is_empty() {
            vec![]
        } else {
            text.split('.').map(String::from).collect()
        }
    };
    let (pattern, key) = (words(pattern), words(key));
    let pattern: Vec<&str> = pattern.iter().map(String::as_str).collect();
    let key: Vec<&str> = key.iter().map(String::as_str).collect();
    walk(&pattern, &key)
}

#[test]
fn orders_reach_exactly_the_bindings_that_match_each_in_publish_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["billing", "shipping", "audit"]).await;
        client
            .create_exchange("orders", ExchangeType::Topic, None)
            .await
            .unwrap();
        let bindings = [
            ("billing", "order.eu.*"),
            ("shipping", "order.eu.*"),
            ("shipping", "order.*.shipped"),
            ("audit", "order.#"),
        ];
        for (topic, pattern) in bindings {
            client
                .bind("orders", to_topic(topic, pattern))
                .await
                .unwrap();
        }
        let regions = ["eu", "us", "asia"];
        let kinds = ["created", "paid", "shipped"];
        let mut expected: std::collections::BTreeMap<&str, Vec<(String, String)>> =
            Default::default();
        for round in 0..40 {
            let key = match round % 11 {
                9 => "order".to_string(),
                10 => "invoice.eu.paid".to_string(),
                _ => format!("order.{}.{}", regions[round % 3], kinds[(round / 3) % 3]),
            };
            let value = format!("m{round}");
            let answer = publish(&client, "orders", &key, &value).await;
            let mut reached: Vec<&str> = bindings
                .iter()
                .filter(|(_, pattern)| matches(pattern, &key))
                .map(|(topic, _)| *topic)
                .collect();
            reached.sort();
            reached.dedup();
            let answered: Vec<&str> = answer.copies.iter().map(|c| c.topic.as_str()).collect();
            assert_eq!(answered, reached, "{key}");
            assert_eq!(answer.unroutable, u32::from(reached.is_empty()), "{key}");
            for topic in reached {
                expected
                    .entry(topic)
                    .or_default()
                    .push((value.clone(), key.clone()));
            }
        }
        assert!(expected.values().all(|records| records.len() >= 5));
        for topic in ["billing", "shipping", "audit"] {
            let stored = read_all(&client, topic).await;
            let want = expected.remove(topic).unwrap_or_default();
            let got: Vec<(String, String)> = stored
                .iter()
                .zip(values(&stored))
                .map(|(record, value)| {
                    assert_eq!(header(record, "x-exchange"), Some(&b"orders"[..]));
                    let key = header(record, "x-routing-key").unwrap();
                    (value, String::from_utf8(key.to_vec()).unwrap())
                })
                .collect();
            assert_eq!(got, want, "{topic}: every match, once, in publish order");
        }
    });
}

#[test]
fn a_headers_exchange_matches_all_or_any_and_fanout_reaches_every_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["pdf-reports", "pdf-or-log", "f1", "f2", "f3"]).await;
        client
            .create_exchange("docs", ExchangeType::Headers, None)
            .await
            .unwrap();
        let both = vec![
            ("format".to_string(), Some("pdf".to_string())),
            ("type".to_string(), Some("report".to_string())),
        ];
        let all = BindingSpec {
            headers: both.clone(),
            ..to_topic("pdf-reports", "")
        };
        let any = BindingSpec {
            header_match: MatchMode::Any,
            headers: vec![both[0].clone(), ("type".into(), Some("log".into()))],
            ..to_topic("pdf-or-log", "")
        };
        client.bind("docs", all).await.unwrap();
        client.bind("docs", any).await.unwrap();
        let messages = [
            ("a", vec![("format", "pdf"), ("type", "report")]),
            ("b", vec![("format", "pdf")]),
            ("c", vec![("type", "log")]),
            ("d", vec![("format", "zip"), ("type", "report")]),
        ];
        let records = messages
            .iter()
            .map(|(value, headers)| record(value, headers))
            .collect();
        let answer = client
            .publish("docs", "ignored", records, AckLevel::Fsynced, false)
            .await
            .unwrap();
        assert_eq!(answer.unroutable, 1);
        assert_eq!(values(&read_all(&client, "pdf-reports").await), ["a"]);
        assert_eq!(
            values(&read_all(&client, "pdf-or-log").await),
            ["a", "b", "c"]
        );

        client
            .create_exchange("all-three", ExchangeType::Fanout, None)
            .await
            .unwrap();
        for topic in ["f1", "f2", "f3"] {
            client.bind("all-three", to_topic(topic, "")).await.unwrap();
        }
        for value in ["x", "y", "z"] {
            publish(&client, "all-three", "any.key", value).await;
        }
        for topic in ["f1", "f2", "f3"] {
            assert_eq!(
                values(&read_all(&client, topic).await),
                ["x", "y", "z"],
                "{topic}"
            );
        }
    });
}

#[test]
fn exchange_to_exchange_bindings_with_a_cycle_deliver_one_copy_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["t1", "t2"]).await;
        client
            .create_exchange("a", ExchangeType::Topic, None)
            .await
            .unwrap();
        client
            .create_exchange("b", ExchangeType::Fanout, None)
            .await
            .unwrap();
        client.bind("a", to_exchange("b", "#")).await.unwrap();
        client.bind("b", to_exchange("a", "")).await.unwrap();
        client.bind("a", to_topic("t1", "k.*")).await.unwrap();
        client.bind("b", to_topic("t1", "")).await.unwrap();
        client.bind("b", to_topic("t2", "")).await.unwrap();
        let answer = publish(&client, "a", "k.1", "once").await;
        assert_eq!(answer.copies.len(), 2);
        publish(&client, "b", "whatever", "twice").await;
        assert_eq!(values(&read_all(&client, "t1").await), ["once", "twice"]);
        assert_eq!(values(&read_all(&client, "t2").await), ["once", "twice"]);
        // Deleting an exchange takes the bindings to it with it.
        client.delete_exchange("b").await.unwrap();
        let a = client.exchanges(&["a"]).await.unwrap();
        assert_eq!(a[0].bindings, vec![to_topic("t1", "k.*")]);
    });
}

#[test]
fn the_alternate_exchange_takes_the_unroutable_and_mandatory_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["paid", "lost"]).await;
        client
            .create_exchange("lost-found", ExchangeType::Fanout, None)
            .await
            .unwrap();
        client
            .bind("lost-found", to_topic("lost", ""))
            .await
            .unwrap();
        client
            .create_exchange("main", ExchangeType::Direct, Some("lost-found"))
            .await
            .unwrap();
        client.bind("main", to_topic("paid", "paid")).await.unwrap();
        publish(&client, "main", "paid", "p1").await;
        publish(&client, "main", "refund", "r1").await;
        assert_eq!(values(&read_all(&client, "paid").await), ["p1"]);
        let lost = read_all(&client, "lost").await;
        assert_eq!(values(&lost), ["r1"]);
        assert_eq!(header(&lost[0], "x-exchange"), Some(&b"main"[..]));

        client
            .create_exchange("strict", ExchangeType::Direct, None)
            .await
            .unwrap();
        client
            .bind("strict", to_topic("paid", "paid"))
            .await
            .unwrap();
        let refused = client
            .publish(
                "strict",
                "nowhere",
                vec![record("n", &[])],
                AckLevel::Written,
                true,
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::Unroutable));
        assert_eq!(ErrorCode::Unroutable as u16, 62);
        assert_eq!(
            refused.to_string(),
            "unroutable: exchange \"strict\" has no route for routing key \"nowhere\""
        );
        // The refused publish stored nothing; a routable mandatory one stores every record.
        let mixed = vec![record("yes", &[]), record("no", &[])];
        let answer = client
            .publish("strict", "paid", mixed, AckLevel::Written, true)
            .await
            .unwrap();
        assert_eq!(answer.copies[0].records, 2);
        let answer = client
            .publish(
                "strict",
                "nowhere",
                vec![record("n", &[])],
                AckLevel::Written,
                false,
            )
            .await
            .unwrap();
        assert_eq!((answer.unroutable, answer.copies.len()), (1, 0));
        assert_eq!(
            values(&read_all(&client, "paid").await),
            ["p1", "yes", "no"]
        );
        let http = broker.http_address();
        let sample = |name: &str, exchange: &str| {
            metric(&http, &format!("{name}{{exchange=\"{exchange}\"}}"))
        };
        assert_eq!(sample("ringmq_exchange_returned_total", "strict"), 1.0);
        assert_eq!(sample("ringmq_exchange_unroutable_total", "strict"), 2.0);
        assert_eq!(sample("ringmq_exchange_published_total", "strict"), 4.0);
        assert_eq!(sample("ringmq_exchange_routed_copies_total", "strict"), 2.0);
        assert_eq!(sample("ringmq_exchange_routed_copies_total", "main"), 2.0);
        let unknown = client
            .publish(
                "nope",
                "k",
                vec![record("n", &[])],
                AckLevel::Written,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), Some(ErrorCode::UnknownExchange));
    });
}

#[test]
fn a_copy_that_fails_is_named_while_the_others_are_stored() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["kept", "doomed"]).await;
        client
            .create_exchange("split", ExchangeType::Fanout, None)
            .await
            .unwrap();
        client.bind("split", to_topic("kept", "")).await.unwrap();
        client.bind("split", to_topic("doomed", "")).await.unwrap();
        client.delete_topic("doomed").await.unwrap();
        let answer = client
            .publish(
                "split",
                "",
                vec![record("v", &[])],
                AckLevel::Fsynced,
                false,
            )
            .await
            .unwrap();
        let failed: Vec<_> = answer
            .failed()
            .map(|copy| (copy.topic.as_str(), copy.error_code))
            .collect();
        assert_eq!(failed, [("doomed", ErrorCode::UnknownTopic)]);
        assert_eq!(values(&read_all(&client, "kept").await), ["v"]);
        let missing = client
            .bind("split", to_topic("never", ""))
            .await
            .unwrap_err();
        assert_eq!(missing.code(), Some(ErrorCode::UnknownTopic));
    });
}

#[test]
fn exchanges_and_bindings_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let setup = ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["eu"]).await;
        client
            .create_exchange("durable", ExchangeType::Topic, Some("elsewhere"))
            .await
            .unwrap();
        client
            .bind("durable", to_topic("eu", "*.eu"))
            .await
            .unwrap();
        client.exchanges(&[]).await.unwrap()
    });
    broker.restart();
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        assert_eq!(client.exchanges(&[]).await.unwrap(), setup);
        publish(&client, "durable", "x.eu", "after").await;
        assert_eq!(values(&read_all(&client, "eu").await), ["after"]);
    });
}

#[test]
fn exchanges_and_bindings_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = common::serve(dir.path());
    ringmq::runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        topics(&client, &["k1", "k2"]).await;
        client
            .create_exchange("killed", ExchangeType::Direct, None)
            .await
            .unwrap();
        client.bind("killed", to_topic("k1", "one")).await.unwrap();
        client.bind("killed", to_topic("k2", "two")).await.unwrap();
        client
            .unbind("killed", to_topic("k2", "two"))
            .await
            .unwrap();
        client.bind("killed", to_topic("k2", "one")).await.unwrap();
    });
    child.kill().unwrap();
    child.wait().unwrap();
    let (mut child, address) = common::serve(dir.path());
    ringmq::runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let exchanges = client.exchanges(&["killed"]).await.unwrap();
        assert_eq!(
            exchanges[0].bindings,
            vec![to_topic("k1", "one"), to_topic("k2", "one")]
        );
        publish(&client, "killed", "one", "v").await;
        assert_eq!(values(&read_all(&client, "k2").await), ["v"]);
    });
    child.kill().unwrap();
    child.wait().unwrap();
}

fn ringmq(address: &str, args: &[&str]) -> (bool, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ringmq"));
    command
        .args(args)
        .env("RINGMQ_BROKER", address)
        .env_remove("RINGMQ_CLIENT_CONFIG");
    let output = command.output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).unwrap();
    (
        output.status.success(),
        text(output.stdout),
        text(output.stderr),
    )
}

fn ringmq_stdin(address: &str, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(args)
        .env("RINGMQ_BROKER", address)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

#[test]
fn the_cli_creates_binds_publishes_describes_unbinds_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    for topic in ["cli-eu", "cli-all"] {
        assert!(ringmq(&address, &["topic", "create", topic]).0);
    }
    let (ok, out, err) = ringmq(&address, &["exchange", "create", "cli", "--type", "topic"]);
    assert!(ok, "{err}");
    assert_eq!(out, "created topic exchange cli\n");
    assert!(
        ringmq(
            &address,
            &["exchange", "bind", "cli", "cli-eu", "--key", "order.eu.*"]
        )
        .0
    );
    assert!(
        ringmq(
            &address,
            &["exchange", "bind", "cli", "cli-all", "--key", "#"]
        )
        .0
    );
    let (_, out, _) = ringmq(&address, &["exchange", "list"]);
    assert_eq!(out, "cli\ttopic\t2 binding(s)\n");
    let (_, out, _) = ringmq(&address, &["exchange", "describe", "cli"]);
    assert!(out.contains("cli-eu\ttopic\torder.eu.*"), "{out}");
    let publish = [
        "produce",
        "--exchange",
        "cli",
        "--routing-key",
        "order.eu.paid",
    ];
    let (ok, err) = ringmq_stdin(&address, &publish, "one\ntwo\n");
    assert!(ok, "{err}");
    let publish = [
        "produce",
        "--exchange",
        "cli",
        "--routing-key",
        "order.us.paid",
        "--mandatory",
    ];
    assert!(ringmq_stdin(&address, &publish, "three\n").0);
    assert!(
        ringmq(
            &address,
            &["exchange", "unbind", "cli", "cli-all", "--key", "#"]
        )
        .0
    );
    let (ok, err) = ringmq_stdin(&address, &publish, "four\n");
    assert!(!ok);
    assert!(
        err.contains("unroutable: exchange \"cli\" has no route for routing key \"order.us.paid\""),
        "{err}"
    );
    ringmq::runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        assert_eq!(values(&read_all(&client, "cli-eu").await), ["one", "two"]);
        assert_eq!(
            values(&read_all(&client, "cli-all").await),
            ["one", "two", "three"]
        );
    });
    assert!(ringmq(&address, &["exchange", "delete", "cli"]).0);
    let (ok, _, err) = ringmq(&address, &["exchange", "describe", "cli"]);
    assert!(!ok && err.contains("unknown_exchange"), "{err}");
}

/// A broker that asks for SCRAM and enforces ACLs: `admin` is a super user, `bob` may only
/// write `allowed`, `carol` may alter the cluster (so change exchanges) and nothing else.
fn broker_with_acls(dir: &std::path::Path) -> TestBroker {
    use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
    use ringmq::broker::acls::{Acl, Acls, Operation, PatternType, Permission, ResourceType};
    let mut users = ringmq::broker::users::Users::default();
    for user in ["admin", "bob", "carol"] {
        let password = format!("{user}-pw");
        let credential =
            Credential::new(Mechanism::ScramSha256, password.as_bytes(), ITERATIONS_MIN);
        users
            .upsert(user, Mechanism::ScramSha256, credential)
            .unwrap();
    }
    users.save(dir).unwrap();
    let mut acls = Acls::default();
    let allow = |principal: &str, resource_type, name: &str, operation| Acl {
        principal: principal.into(),
        host: "*".into(),
        resource_type,
        pattern_type: PatternType::Literal,
        name: name.into(),
        operation,
        permission: Permission::Allow,
    };
    acls.add(allow(
        "User:bob",
        ResourceType::Topic,
        "allowed",
        Operation::Write,
    ))
    .unwrap();
    acls.add(allow(
        "User:carol",
        ResourceType::Cluster,
        "kafka-cluster",
        Operation::Alter,
    ))
    .unwrap();
    acls.save(dir).unwrap();
    TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        shards: 2,
        sasl_mechanisms: vec!["SCRAM-SHA-256".into()],
        super_users: vec!["User:admin".into()],
        ..Default::default()
    })
}

async fn login(address: &str, user: &str) -> Client {
    let credentials = ringmq::client::SaslCredentials {
        mechanism: "SCRAM-SHA-256".into(),
        user: user.into(),
        password: format!("{user}-pw"),
    };
    Client::connect_with(address, None, Some(&credentials))
        .await
        .unwrap()
}

#[test]
fn exchanges_are_authorized_on_the_cluster_and_publishes_on_every_destination_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker_with_acls(dir.path());
    let address = broker.address();
    ringmq::runtime::block_on(async {
        let (admin, bob, carol) = (
            login(&address, "admin").await,
            login(&address, "bob").await,
            login(&address, "carol").await,
        );
        topics(&admin, &["allowed", "secret"]).await;

        // Changing and listing exchanges is the cluster's: bob may do neither.
        let refused = bob
            .create_exchange("mine", ExchangeType::Direct, None)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized), "{refused}");
        let refused = bob.exchanges(&[]).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized), "{refused}");

        // Alter on the cluster is enough to create, bind, list and delete (Alter implies Describe).
        carol
            .create_exchange("fan", ExchangeType::Fanout, None)
            .await
            .unwrap();
        carol
            .create_exchange("direct", ExchangeType::Direct, None)
            .await
            .unwrap();
        for (exchange, topic) in [("fan", "allowed"), ("fan", "secret"), ("direct", "allowed")] {
            carol.bind(exchange, to_topic(topic, "k")).await.unwrap();
        }
        assert_eq!(carol.exchanges(&[]).await.unwrap().len(), 2);
        let refused = bob
            .unbind("fan", to_topic("secret", "k"))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized), "{refused}");
        let refused = bob.delete_exchange("fan").await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized), "{refused}");

        // bob may write `allowed`: a publish routed only there is stored.
        publish(&bob, "direct", "k", "only-allowed").await;
        // Routed to `secret` as well: refused by name, and no copy stored anywhere.
        let refused = bob
            .publish(
                "fan",
                "k",
                vec![record("both", &[])],
                AckLevel::Written,
                false,
            )
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized), "{refused}");
        assert!(refused.to_string().contains("secret"), "{refused}");
        assert_eq!(values(&read_all(&admin, "allowed").await), ["only-allowed"]);
        assert!(read_all(&admin, "secret").await.is_empty());

        // The super user passes everywhere.
        publish(&admin, "fan", "k", "from-admin").await;
        assert_eq!(values(&read_all(&admin, "secret").await), ["from-admin"]);
        carol.delete_exchange("fan").await.unwrap();
    });
}

/// One publish may store at most `publish_copies_max` copies (records times destinations): a
/// fanout of 3 with a limit of 6 takes 2 records and refuses 3, storing nothing of them.
#[test]
fn a_publish_over_its_copies_bound_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        publish_copies_max: 6,
        ..Default::default()
    });
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        topics(&client, &["c1", "c2", "c3"]).await;
        client
            .create_exchange("wide", ExchangeType::Fanout, None)
            .await
            .unwrap();
        for topic in ["c1", "c2", "c3"] {
            client.bind("wide", to_topic(topic, "")).await.unwrap();
        }
        let two = vec![record("a", &[]), record("b", &[])];
        let answer = client
            .publish("wide", "k", two, AckLevel::Written, false)
            .await
            .unwrap();
        assert_eq!(answer.failed().count(), 0, "{answer:?}");
        let three = vec![record("x", &[]), record("y", &[]), record("z", &[])];
        let refused = client
            .publish("wide", "k", three, AckLevel::Written, false)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("publish_copies_max"),
            "{refused}"
        );
        for topic in ["c1", "c2", "c3"] {
            assert_eq!(
                values(&read_all(&client, topic).await),
                ["a", "b"],
                "{topic}"
            );
        }
    });
}
