//! ACLs, enforced once the listeners ask for authentication: an admin (a super user) writes
//! rules with Kafka's CreateAcls; a user is then allowed exactly what they say, on both
//! protocols: prefixed and literal rules, deny over allow, Describe implied by Write, lists that
//! leave out what the user may not see; DescribeAcls and DeleteAcls; rules kept across a
//! restart; kafka-python (a client we did not write) refused with TOPIC_AUTHORIZATION_FAILED.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use common::TestBroker;
use common::kafka_wire::{connect, encode, framed};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::broker::users::Users;
use ringmq::client::{Client, SaslCredentials};
use ringmq::protocol::ErrorCode;
use ringmq::runtime;

const TOPIC: i8 = 2;
const GROUP: i8 = 3;
const LITERAL: i8 = 3;
const PREFIXED: i8 = 4;
const READ: i8 = 3;
const WRITE: i8 = 4;
const ALL: i8 = 2;
const DENY: i8 = 2;
const ALLOW: i8 = 3;
const ANY: i8 = 1;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

fn broker(dir: &Path) -> TestBroker {
    let mut users = Users::default();
    for (user, password) in [("admin", "admin-pw"), ("bob", "bob-pw")] {
        let credential =
            Credential::new(Mechanism::ScramSha256, password.as_bytes(), ITERATIONS_MIN);
        users
            .upsert(user, Mechanism::ScramSha256, credential)
            .unwrap();
    }
    users.save(dir).unwrap();
    TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        kafka_sasl_mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-256".into()],
        sasl_mechanisms: vec!["SCRAM-SHA-256".into()],
        super_users: vec!["User:admin".into()],
        ..Default::default()
    })
}

/// A Kafka connection authenticated with PLAIN as `user`.
struct Kafka(std::net::TcpStream, i32);

impl Kafka {
    fn login(address: &str, user: &str, password: &str) -> Kafka {
        let mut kafka = Kafka(connect(address), 0);
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
        kafka.call(
            ApiKey::SaslHandshake,
            1,
            RequestKind::SaslHandshake(handshake),
        );
        let message = format!("\0{user}\0{password}");
        let authenticate = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(message));
        match kafka.call(
            ApiKey::SaslAuthenticate,
            2,
            RequestKind::SaslAuthenticate(authenticate),
        ) {
            ResponseKind::SaslAuthenticate(response) => assert_eq!(response.error_code, 0),
            other => panic!("{other:?}"),
        }
        kafka
    }

    fn call(&mut self, api: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        self.1 += 1;
        self.0
            .write_all(&framed(&encode(api, version, self.1, &request)))
            .unwrap();
        let mut length = [0u8; 4];
        self.0.read_exact(&mut length).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        self.0.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        ResponseKind::decode(api, &mut body, version).unwrap()
    }

    fn create_acls(&mut self, rules: Vec<AclCreation>) -> Vec<i16> {
        let request = CreateAclsRequest::default().with_creations(rules);
        match self.call(ApiKey::CreateAcls, 3, RequestKind::CreateAcls(request)) {
            ResponseKind::CreateAcls(response) => {
                response.results.iter().map(|r| r.error_code).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    /// (resource name, pattern type, operation, permission) of every rule, and the error code.
    fn describe_acls(&mut self) -> (i16, Vec<(String, i8, i8, i8)>) {
        let request = DescribeAclsRequest::default()
            .with_resource_name_filter(None)
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_resource_type_filter(ANY)
            .with_pattern_type_filter(ANY)
            .with_operation(ANY)
            .with_permission_type(ANY);
        match self.call(ApiKey::DescribeAcls, 3, RequestKind::DescribeAcls(request)) {
            ResponseKind::DescribeAcls(response) => {
                let mut rules: Vec<(String, i8, i8, i8)> = response
                    .resources
                    .iter()
                    .flat_map(|resource| {
                        resource.acls.iter().map(move |acl| {
                            (
                                resource.resource_name.to_string(),
                                resource.pattern_type,
                                acl.operation,
                                acl.permission_type,
                            )
                        })
                    })
                    .collect();
                rules.sort();
                (response.error_code, rules)
            }
            other => panic!("{other:?}"),
        }
    }
}

fn rule(
    resource_type: i8,
    pattern: i8,
    name: &'static str,
    operation: i8,
    permission: i8,
) -> AclCreation {
    AclCreation::default()
        .with_resource_type(resource_type)
        .with_resource_pattern_type(pattern)
        .with_resource_name(StrBytes::from_static_str(name))
        .with_principal(StrBytes::from_static_str("User:bob"))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(operation)
        .with_permission_type(permission)
}

fn bob() -> SaslCredentials {
    SaslCredentials {
        mechanism: "SCRAM-SHA-256".into(),
        user: "bob".into(),
        password: "bob-pw".into(),
    }
}

fn admin() -> SaslCredentials {
    SaslCredentials {
        mechanism: "SCRAM-SHA-256".into(),
        user: "admin".into(),
        password: "admin-pw".into(),
    }
}

/// Produces one record as `client`; the error code if refused.
async fn produce(client: &Client, topic: &str) -> Option<ErrorCode> {
    client
        .produce(
            topic,
            Some(0),
            b"",
            ringmq::storage::AckLevel::Written,
            common::batch(1, 1, 1),
        )
        .await
        .err()
        .map(|error| error.code().unwrap())
}

#[test]
fn users_get_exactly_what_the_rules_say_on_both_protocols_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = broker(dir.path());
    let kafka_address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    let mut admin_kafka = Kafka::login(&kafka_address, "admin", "admin-pw");
    // bob, not yet allowed anything, may not write ACLs either.
    let mut bob_kafka = Kafka::login(&kafka_address, "bob", "bob-pw");
    assert_eq!(
        bob_kafka.create_acls(vec![rule(TOPIC, LITERAL, "x", ALL, ALLOW)]),
        [CLUSTER_AUTHORIZATION_FAILED]
    );
    assert_eq!(bob_kafka.describe_acls().0, CLUSTER_AUTHORIZATION_FAILED);
    let created = admin_kafka.create_acls(vec![
        rule(TOPIC, PREFIXED, "orders.", WRITE, ALLOW),
        rule(TOPIC, LITERAL, "orders.eu", READ, ALLOW),
        rule(TOPIC, LITERAL, "orders.secret", ALL, DENY),
        rule(GROUP, LITERAL, "billing", READ, ALLOW),
        // A value Kafka does not know: refused, the others created.
        rule(TOPIC, LITERAL, "x", 99, ALLOW),
    ]);
    assert_eq!(created, [0, 0, 0, 0, 42]);
    runtime::block_on(async {
        let address = broker.address();
        let admin = Client::connect_with(&address, None, Some(&admin()))
            .await
            .unwrap();
        for topic in ["orders.eu", "orders.us", "orders.secret", "billing"] {
            admin.create_topic(topic, 1, &[]).await.unwrap();
        }
        let bob = Client::connect_with(&address, None, Some(&bob()))
            .await
            .unwrap();
        assert_eq!(produce(&bob, "orders.eu").await, None, "prefixed Write");
        assert_eq!(produce(&bob, "orders.us").await, None, "prefixed Write");
        assert_eq!(
            produce(&bob, "orders.secret").await,
            Some(ErrorCode::NotAuthorized),
            "deny wins"
        );
        assert_eq!(
            produce(&bob, "billing").await,
            Some(ErrorCode::NotAuthorized),
            "no rule"
        );
        let refused = bob.create_topic("mine", 1, &[]).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized));
        // Metadata lists what bob may describe: Write and Read imply Describe; the denied and
        // the unruled topics are left out.
        let mut visible: Vec<String> = bob
            .metadata(&[])
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        visible.sort();
        assert_eq!(visible, ["orders.eu", "orders.us"]);
        // Reading: orders.eu is readable, orders.us (Write only) is not.
        let fetch = |topic: &str| ringmq::protocol::FetchRequest {
            topic: topic.into(),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            min_bytes: 1,
            max_wait_ms: 0,
        };
        assert!(bob.fetch(fetch("orders.eu")).await.is_ok());
        let refused = bob.fetch(fetch("orders.us")).await.unwrap_err();
        assert_eq!(refused.code(), Some(ErrorCode::NotAuthorized));
    });
    let (code, rules) = admin_kafka.describe_acls();
    assert_eq!(code, 0);
    assert_eq!(
        rules,
        vec![
            ("billing".to_string(), LITERAL, READ, ALLOW),
            ("orders.".to_string(), PREFIXED, WRITE, ALLOW),
            ("orders.eu".to_string(), LITERAL, READ, ALLOW),
            ("orders.secret".to_string(), LITERAL, ALL, DENY),
        ]
    );
    // The rules survive a restart.
    broker.restart();
    let kafka_address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    let mut admin_kafka = Kafka::login(&kafka_address, "admin", "admin-pw");
    assert_eq!(admin_kafka.describe_acls().1.len(), 4);
    // Deleting the prefixed Write takes bob's writes away.
    let filter = DeleteAclsFilter::default()
        .with_resource_type_filter(TOPIC)
        .with_resource_name_filter(Some(StrBytes::from_static_str("orders.")))
        .with_pattern_type_filter(PREFIXED)
        .with_principal_filter(None)
        .with_host_filter(None)
        .with_operation(ANY)
        .with_permission_type(ANY);
    let request = DeleteAclsRequest::default().with_filters(vec![filter]);
    match admin_kafka.call(ApiKey::DeleteAcls, 3, RequestKind::DeleteAcls(request)) {
        ResponseKind::DeleteAcls(response) => {
            assert_eq!(response.filter_results.len(), 1);
            assert_eq!(response.filter_results[0].matching_acls.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    runtime::block_on(async {
        let bob = Client::connect_with(&broker.address(), None, Some(&bob()))
            .await
            .unwrap();
        assert_eq!(
            produce(&bob, "orders.us").await,
            Some(ErrorCode::NotAuthorized)
        );
    });
    // kafka-python as bob: refused with TOPIC_AUTHORIZATION_FAILED, reading it does not hang.
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    let script = r#"
import sys
from kafka import KafkaProducer
from kafka.errors import TopicAuthorizationFailedError
producer = KafkaProducer(bootstrap_servers=sys.argv[1], security_protocol="SASL_PLAINTEXT",
                         sasl_mechanism="SCRAM-SHA-256", sasl_plain_username="bob",
                         sasl_plain_password="bob-pw", max_block_ms=10000, request_timeout_ms=10000)
try:
    producer.send("billing", value=b"no").get(timeout=10)
    print("sent")
except TopicAuthorizationFailedError:
    print("refused")
"#;
    match Command::new(&python)
        .args(["-c", script, &kafka_address])
        .output()
    {
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains("refused"),
                "{stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Err(error) => common::tool_missing("kafka-python (tests/clients/.venv)", &error),
    }
}

/// `ringmq acl` edits acls.json offline: add, list, remove, and refusals of bad arguments.
#[test]
fn ringmq_acl_adds_lists_and_removes_rules() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .arg("acl")
            .args(args)
            .args(["--data-dir", data])
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let add = [
        "add",
        "--principal",
        "User:bob",
        "--resource",
        "topic:orders.",
        "--prefixed",
        "--operation",
        "write",
    ];
    assert!(run(&add).0);
    assert!(
        run(&[
            "add",
            "--principal",
            "User:bob",
            "--resource",
            "cluster",
            "--operation",
            "describe",
            "--deny"
        ])
        .0
    );
    let (ok, listed, _) = run(&["list"]);
    assert!(ok);
    assert_eq!(
        listed,
        "User:bob\tAllow\tTopic:orders.\tPrefixed\tWrite\nUser:bob\tDeny\tCluster:kafka-cluster\tLiteral\tDescribe\n"
    );
    let mut remove = add;
    remove[0] = "remove";
    assert!(run(&remove).0);
    assert!(!run(&remove).0, "removing it again: no such rule");
    let (ok, _, stderr) = run(&[
        "add",
        "--principal",
        "bob",
        "--resource",
        "topic:x",
        "--operation",
        "read",
    ]);
    assert!(!ok && stderr.contains("User:name"), "{stderr}");
    let (ok, _, stderr) = run(&[
        "add",
        "--principal",
        "User:bob",
        "--resource",
        "queue:x",
        "--operation",
        "read",
    ]);
    assert!(!ok && stderr.contains("--resource"), "{stderr}");
    assert_eq!(run(&["list"]).1.lines().count(), 1);
}
