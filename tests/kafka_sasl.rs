//! SASL on the Kafka listener, with clients we did not write: kafka-python with PLAIN,
//! SCRAM-SHA-256 and SCRAM-SHA-512, kafkajs with SCRAM-SHA-512; wrong passwords and
//! unauthenticated clients refused; the exact codes of a bad handshake; re-authentication
//! (KIP-368) by hand and by librdkafka; users changed through
//! AlterUserScramCredentials, seen by DescribeUserScramCredentials, kept across a restart.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use common::TestBroker;
use common::kafka_wire::{connect, encode, framed};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::broker::users::Users;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;
const RESOURCE_NOT_FOUND: i16 = 91;
const DUPLICATE_RESOURCE: i16 = 92;

/// A broker whose Kafka listener asks for SASL, with `alice` (password `alice-secret`) for both
/// SCRAM mechanisms already in its users.json.
fn broker(dir: &Path) -> (TestBroker, String) {
    broker_with(dir, &["alice"], 0)
}

/// `broker` with `users` (each with the password `<name>-secret`) and a session lifetime.
fn broker_with(dir: &Path, names: &[&str], session_lifetime_ms: u64) -> (TestBroker, String) {
    let mut users = Users::default();
    for name in names {
        for mechanism in Mechanism::ALL {
            let password = format!("{name}-secret");
            let credential = Credential::new(mechanism, password.as_bytes(), ITERATIONS_MIN);
            users.upsert(name, mechanism, credential).unwrap();
        }
    }
    users.save(dir).unwrap();
    let broker = TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        kafka_sasl_mechanisms: vec![
            "PLAIN".into(),
            "SCRAM-SHA-256".into(),
            "SCRAM-SHA-512".into(),
        ],
        kafka_sasl_session_lifetime_ms: session_lifetime_ms,
        // Authentication is what these tests are about; ACLs are tests/acls.rs's.
        super_users: vec!["User:alice".into(), "User:bob".into()],
        ..Default::default()
    });
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    (broker, address.to_string())
}

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Runs kafka-python: produce 20 values to `topic` and read them back, authenticating with
/// `mechanism`, `user` and `password`. Ok(()) on success, Err(stderr) on failure, None when
/// kafka-python is not installed.
fn kafka_python(
    address: &str,
    mechanism: &str,
    user: &str,
    password: &str,
    topic: &str,
) -> Option<Result<(), String>> {
    let script = r#"
import sys
from kafka import KafkaProducer, KafkaConsumer
address, mechanism, user, password, topic = sys.argv[1:6]
sasl = dict(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism,
            sasl_plain_username=user, sasl_plain_password=password)
producer = KafkaProducer(bootstrap_servers=address, acks="all", request_timeout_ms=10000,
                         max_block_ms=10000, bootstrap_timeout_ms=3000, **sasl)
for n in range(20):
    producer.send(topic, value=b"v%d" % n).get(timeout=10)
producer.close()
consumer = KafkaConsumer(topic, bootstrap_servers=address, auto_offset_reset="earliest",
                         consumer_timeout_ms=10000, **sasl)
values = []
for message in consumer:
    values.append(message.value)
    if len(values) == 20:
        break
consumer.close()
assert values == [b"v%d" % n for n in range(20)], values
print("ok")
"#;
    let python = clients_dir().join(".venv/bin/python");
    let output = match Command::new(&python)
        .args(["-c", script, address, mechanism, user, password, topic])
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            common::tool_missing("kafka-python (tests/clients/.venv)", &error);
            return None;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    Some(if output.status.success() && stdout.contains("ok") {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).into_owned())
    })
}

#[test]
fn kafka_python_authenticates_with_plain_and_both_scram_mechanisms() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    for (mechanism, topic) in [
        ("PLAIN", "plain-topic"),
        ("SCRAM-SHA-256", "scram256-topic"),
        ("SCRAM-SHA-512", "scram512-topic"),
    ] {
        let Some(outcome) = kafka_python(&address, mechanism, "alice", "alice-secret", topic)
        else {
            return;
        };
        outcome.unwrap_or_else(|stderr| panic!("{mechanism}: {stderr}"));
        let wrong = kafka_python(&address, mechanism, "alice", "wrong", &format!("{topic}-x"));
        let stderr = wrong.unwrap().unwrap_err();
        // kafka-python retries a refused authentication until its bootstrap timeout.
        assert!(
            stderr.contains("uthentication") || stderr.contains("Unable to bootstrap"),
            "{mechanism} with a wrong password: {stderr}"
        );
    }
    let ghost = kafka_python(&address, "SCRAM-SHA-256", "ghost", "x", "ghost-topic");
    assert!(ghost.unwrap().is_err(), "an unknown user is refused");
}

#[test]
fn kafkajs_authenticates_with_scram_sha_512() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let script = r#"
const { Kafka, logLevel } = require('kafkajs');
const [address, password] = process.argv.slice(1);
const kafka = new Kafka({ brokers: [address], clientId: 'sasl-test', logLevel: logLevel.NOTHING,
  sasl: { mechanism: 'scram-sha-512', username: 'alice', password }, retry: { retries: 2 } });
(async () => {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic: 'js-topic', messages: [{ value: 'one' }, { value: 'two' }] });
  await producer.disconnect();
  console.log('ok');
})().catch((error) => { console.error(String(error)); process.exit(1); });
"#;
    let run = |password: &str| {
        Command::new("node")
            .current_dir(clients_dir())
            .args(["-e", script, &address, password])
            .output()
    };
    let output = match run("alice-secret") {
        Ok(output) => output,
        Err(error) => return common::tool_missing("node", &error),
    };
    if !clients_dir().join("node_modules/kafkajs").exists() {
        let missing = std::io::Error::new(std::io::ErrorKind::NotFound, "no kafkajs");
        return common::tool_missing("kafkajs (tests/clients/node_modules)", &missing);
    }
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let refused = run("wrong").unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("SASL") || stderr.contains("authentication"),
        "{stderr}"
    );
}

/// One connection, requests sent one at a time; None once the broker closed it.
struct Connection(std::net::TcpStream, i32);

impl Connection {
    fn call(&mut self, api: ApiKey, version: i16, request: RequestKind) -> Option<ResponseKind> {
        self.1 += 1;
        self.0
            .write_all(&framed(&encode(api, version, self.1, &request)))
            .ok()?;
        let mut length = [0u8; 4];
        self.0.read_exact(&mut length).ok()?;
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        self.0.read_exact(&mut body).ok()?;
        let mut body = Bytes::from(body);
        ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        Some(ResponseKind::decode(api, &mut body, version).unwrap())
    }

    fn handshake(&mut self, mechanism: &'static str) -> SaslHandshakeResponse {
        let request =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        match self.call(
            ApiKey::SaslHandshake,
            1,
            RequestKind::SaslHandshake(request),
        ) {
            Some(ResponseKind::SaslHandshake(response)) => response,
            other => panic!("SaslHandshake answered {other:?}"),
        }
    }

    fn authenticate(&mut self, bytes: &[u8]) -> SaslAuthenticateResponse {
        let request =
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(bytes));
        match self.call(
            ApiKey::SaslAuthenticate,
            2,
            RequestKind::SaslAuthenticate(request),
        ) {
            Some(ResponseKind::SaslAuthenticate(response)) => response,
            other => panic!("SaslAuthenticate answered {other:?}"),
        }
    }

    fn metadata(&mut self) -> Option<ResponseKind> {
        self.call(
            ApiKey::Metadata,
            9,
            RequestKind::Metadata(MetadataRequest::default()),
        )
    }
}

fn open(address: &str) -> Connection {
    Connection(connect(address), 0)
}

#[test]
fn the_handshake_and_its_refusals_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    // Anything but ApiVersions and SASL before authenticating: the connection is closed.
    let mut early = open(&address);
    assert!(early.metadata().is_none(), "served before authenticating");
    // An unknown mechanism: UNSUPPORTED_SASL_MECHANISM with the list of enabled ones.
    let mut connection = open(&address);
    let refused = connection.handshake("GSSAPI");
    assert_eq!(refused.error_code, UNSUPPORTED_SASL_MECHANISM);
    let offered: Vec<String> = refused.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(offered, ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]);
    // SaslAuthenticate with no mechanism chosen: ILLEGAL_SASL_STATE.
    assert_eq!(
        connection.authenticate(b"\0alice\0alice-secret").error_code,
        ILLEGAL_SASL_STATE
    );
    // PLAIN with the right password: then the connection is served.
    assert_eq!(connection.handshake("PLAIN").error_code, 0);
    assert_eq!(
        connection.authenticate(b"\0alice\0alice-secret").error_code,
        0
    );
    assert!(matches!(
        connection.metadata(),
        Some(ResponseKind::Metadata(_))
    ));
    // A wrong password: SASL_AUTHENTICATION_FAILED, and the next request closes the connection.
    let mut wrong = open(&address);
    assert_eq!(wrong.handshake("PLAIN").error_code, 0);
    let failed = wrong.authenticate(b"\0alice\0guess");
    assert_eq!(failed.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(wrong.metadata().is_none());
    // Impersonation through PLAIN's authorization id is refused too.
    let mut other = open(&address);
    other.handshake("PLAIN");
    assert_eq!(
        other.authenticate(b"bob\0alice\0alice-secret").error_code,
        SASL_AUTHENTICATION_FAILED
    );
}

/// SaltedPassword as a client computes it (RFC 5802's Hi).
fn salted(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let (algorithm, length) = match mechanism {
        Mechanism::ScramSha256 => (ring::pbkdf2::PBKDF2_HMAC_SHA256, 32),
        Mechanism::ScramSha512 => (ring::pbkdf2::PBKDF2_HMAC_SHA512, 64),
    };
    let mut out = vec![0u8; length];
    ring::pbkdf2::derive(
        algorithm,
        std::num::NonZeroU32::new(iterations).unwrap(),
        salt,
        password,
        &mut out,
    );
    out
}

fn alter(
    connection: &mut Connection,
    request: AlterUserScramCredentialsRequest,
) -> Vec<(String, i16)> {
    match connection.call(
        ApiKey::AlterUserScramCredentials,
        0,
        RequestKind::AlterUserScramCredentials(request),
    ) {
        Some(ResponseKind::AlterUserScramCredentials(response)) => response
            .results
            .iter()
            .map(|r| (r.user.to_string(), r.error_code))
            .collect(),
        other => panic!("AlterUserScramCredentials answered {other:?}"),
    }
}

/// (user, error code, (mechanism, iterations) of each credential).
type Described = (String, i16, Vec<(i8, i32)>);

fn describe(connection: &mut Connection, names: Option<&[&'static str]>) -> Vec<Described> {
    let users = names.map(|names| {
        names
            .iter()
            .map(|name| {
                describe_user_scram_credentials_request::UserName::default()
                    .with_name(StrBytes::from_static_str(name))
            })
            .collect()
    });
    let request = DescribeUserScramCredentialsRequest::default().with_users(users);
    match connection.call(
        ApiKey::DescribeUserScramCredentials,
        0,
        RequestKind::DescribeUserScramCredentials(request),
    ) {
        Some(ResponseKind::DescribeUserScramCredentials(response)) => response
            .results
            .iter()
            .map(|r| {
                let infos = r
                    .credential_infos
                    .iter()
                    .map(|i| (i.mechanism, i.iterations))
                    .collect();
                (r.user.to_string(), r.error_code, infos)
            })
            .collect(),
        other => panic!("DescribeUserScramCredentials answered {other:?}"),
    }
}

#[test]
fn users_change_through_the_kafka_admin_api_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut broker, address) = broker(dir.path());
    let mut admin = open(&address);
    admin.handshake("PLAIN");
    assert_eq!(admin.authenticate(b"\0alice\0alice-secret").error_code, 0);
    let salt = b"bob's salt".to_vec();
    let upsert = ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_static_str("bob"))
        .with_mechanism(1)
        .with_iterations(4096)
        .with_salt(Bytes::from(salt.clone()))
        .with_salted_password(Bytes::from(salted(
            Mechanism::ScramSha256,
            b"bob-pw",
            &salt,
            4096,
        )));
    let results = alter(
        &mut admin,
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsert.clone()]),
    );
    assert_eq!(results, vec![("bob".to_string(), 0)]);
    // Too few iterations, a user named twice, and deleting what is not there.
    let weak = upsert
        .clone()
        .with_name(StrBytes::from_static_str("carol"))
        .with_iterations(10);
    let twice = upsert.clone().with_mechanism(2);
    let missing = ScramCredentialDeletion::default()
        .with_name(StrBytes::from_static_str("dave"))
        .with_mechanism(1);
    let results = alter(
        &mut admin,
        AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![missing])
            .with_upsertions(vec![weak, twice.clone(), twice]),
    );
    assert_eq!(
        results,
        vec![
            ("dave".to_string(), RESOURCE_NOT_FOUND),
            ("carol".to_string(), 93),
            ("bob".to_string(), DUPLICATE_RESOURCE),
            ("bob".to_string(), DUPLICATE_RESOURCE),
        ]
    );
    assert_eq!(
        describe(&mut admin, Some(&["bob", "nobody"])),
        vec![
            ("bob".to_string(), 0, vec![(1, 4096)]),
            ("nobody".to_string(), RESOURCE_NOT_FOUND, vec![]),
        ]
    );
    // bob authenticates with SCRAM-SHA-256 through kafka-python, then again after a restart.
    if let Some(outcome) = kafka_python(&address, "SCRAM-SHA-256", "bob", "bob-pw", "bobs") {
        outcome.unwrap();
    }
    broker.restart();
    let address = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .to_string();
    let mut admin = open(&address);
    admin.handshake("PLAIN");
    assert_eq!(
        admin.authenticate(b"\0bob\0bob-pw").error_code,
        0,
        "PLAIN against bob's SCRAM credential"
    );
    let all = describe(&mut admin, None);
    let names: Vec<&str> = all.iter().map(|(name, _, _)| name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    let deletion = ScramCredentialDeletion::default()
        .with_name(StrBytes::from_static_str("bob"))
        .with_mechanism(1);
    let results = alter(
        &mut admin,
        AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]),
    );
    assert_eq!(results, vec![("bob".to_string(), 0)]);
    let mut bob = open(&address);
    bob.handshake("PLAIN");
    assert_eq!(
        bob.authenticate(b"\0bob\0bob-pw").error_code,
        SASL_AUTHENTICATION_FAILED
    );
}

/// `ringmq user` edits users.json beside a running `ringmq serve`, which takes the change at
/// SIGHUP: a user added then can authenticate, a user deleted then cannot.
#[test]
fn ringmq_user_with_sighup_adds_and_removes_users_of_a_running_broker() {
    use std::io::BufRead;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ringmq = || Command::new(env!("CARGO_BIN_EXE_ringmq"));
    let user = |args: &[&str], password: &str| {
        let mut child = ringmq()
            .args(["user"])
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    user(&["add", "alice"], "alice-pw");
    let config = dir.path().join("broker.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nkafka_listen = \"127.0.0.1:0\"\nhttp_listen = \"\"\nsqs_listen = \"\"\nshards = 2\nkafka_sasl_mechanisms = [\"PLAIN\", \"SCRAM-SHA-512\"]\n"
        ),
    )
    .unwrap();
    let mut child = ringmq()
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the broker logs its addresses")
            .unwrap();
        if let Some(rest) = line.split("kafka_address=Some(").nth(1) {
            break rest.split(')').next().unwrap().to_string();
        }
    };
    let (sender, log) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    let hangup_and_wait = || {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
        loop {
            let line = log
                .recv_timeout(std::time::Duration::from_secs(20))
                .expect("the reload is logged");
            if line.contains("acls.json reloaded") {
                return;
            }
        }
    };
    let plain = |name: &str, password: &str| {
        let mut connection = open(&address);
        assert_eq!(connection.handshake("PLAIN").error_code, 0);
        connection
            .authenticate(format!("\0{name}\0{password}").as_bytes())
            .error_code
    };
    assert_eq!(plain("alice", "alice-pw"), 0);
    assert_eq!(plain("bob", "bob-pw"), SASL_AUTHENTICATION_FAILED);
    user(&["add", "bob", "--mechanism", "SCRAM-SHA-512"], "bob-pw");
    hangup_and_wait();
    assert_eq!(plain("bob", "bob-pw"), 0);
    let listed = user(&["list"], "");
    assert_eq!(
        listed,
        "alice\tSCRAM-SHA-256:8192,SCRAM-SHA-512:8192\nbob\tSCRAM-SHA-512:8192\n"
    );
    user(&["delete", "bob"], "");
    hangup_and_wait();
    assert_eq!(plain("bob", "bob-pw"), SASL_AUTHENTICATION_FAILED);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// KIP-368: SaslAuthenticate says how long the authentication holds; the client renews it on
/// the same connection as the same principal; a request after it ran out, or a renewal as
/// someone else, ends the connection.
#[test]
fn authentication_expires_and_is_renewed_on_the_same_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker_with(dir.path(), &["alice", "bob"], 1_000);
    let mut connection = open(&address);
    assert_eq!(connection.handshake("PLAIN").error_code, 0);
    let first = connection.authenticate(b"\0alice\0alice-secret");
    assert_eq!((first.error_code, first.session_lifetime_ms), (0, 1_000));
    assert!(matches!(
        connection.metadata(),
        Some(ResponseKind::Metadata(_))
    ));
    // Renewed before it runs out, twice, across more than the lifetime: still served.
    for _ in 0..2 {
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert_eq!(connection.handshake("PLAIN").error_code, 0);
        let renewed = connection.authenticate(b"\0alice\0alice-secret");
        assert_eq!(
            (renewed.error_code, renewed.session_lifetime_ms),
            (0, 1_000)
        );
        assert!(matches!(
            connection.metadata(),
            Some(ResponseKind::Metadata(_))
        ));
    }
    // Renewing as someone else fails, and the connection is done.
    assert_eq!(connection.handshake("PLAIN").error_code, 0);
    let other = connection.authenticate(b"\0bob\0bob-secret");
    assert_eq!(other.error_code, SASL_AUTHENTICATION_FAILED);
    assert!(
        other
            .error_message
            .as_deref()
            .unwrap_or_default()
            .contains("principal"),
        "{other:?}"
    );
    assert!(connection.metadata().is_none());
    // Not renewed in time: the next request closes the connection, unanswered.
    let mut lapsed = open(&address);
    assert_eq!(lapsed.handshake("PLAIN").error_code, 0);
    assert_eq!(lapsed.authenticate(b"\0alice\0alice-secret").error_code, 0);
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    assert!(lapsed.metadata().is_none(), "served after the lifetime");
    // Without a lifetime (the default), none is announced and nothing expires.
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    let mut forever = open(&address);
    assert_eq!(forever.handshake("PLAIN").error_code, 0);
    let answer = forever.authenticate(b"\0alice\0alice-secret");
    assert_eq!((answer.error_code, answer.session_lifetime_ms), (0, 0));
    assert_eq!(forever.handshake("PLAIN").error_code, ILLEGAL_SASL_STATE);
}

/// librdkafka (a client we did not write) renews its authentication before the lifetime ends:
/// a producer that runs for several lifetimes keeps its connection and loses nothing.
#[test]
fn librdkafka_renews_its_authentication_and_keeps_producing() {
    use rdkafka::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::util::Timeout;
    let dir = tempfile::tempdir().unwrap();
    let (broker, address) = broker_with(dir.path(), &["alice"], 1_500);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &address)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "PLAIN")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("message.timeout.ms", "20000")
        .create()
        .unwrap();
    let started = std::time::Instant::now();
    let mut sent = 0;
    // Four lifetimes of steady traffic.
    while started.elapsed() < std::time::Duration::from_secs(6) {
        let value = format!("renewed-{sent}");
        producer
            .send(
                BaseRecord::<(), _>::to("renewals")
                    .partition(0)
                    .payload(&value),
            )
            .map_err(|(error, _)| error)
            .unwrap();
        sent += 1;
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        producer.flush(Timeout::After(std::time::Duration::from_secs(20))),
        Ok(())
    );
    assert_eq!(producer.in_flight_count(), 0, "every message acknowledged");
    let mut connection = open(&address);
    assert_eq!(connection.handshake("PLAIN").error_code, 0);
    assert_eq!(
        connection.authenticate(b"\0alice\0alice-secret").error_code,
        0
    );
    let request = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("renewals")))
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
    ]);
    let end = match connection.call(ApiKey::ListOffsets, 4, RequestKind::ListOffsets(request)) {
        Some(ResponseKind::ListOffsets(response)) => response.topics[0].partitions[0].offset,
        other => panic!("ListOffsets answered {other:?}"),
    };
    assert_eq!(end, sent, "every message stored once");
    // It renewed rather than reconnected: the other test of this file renews exactly twice,
    // so a third renewal is librdkafka's (the metrics are the whole test process's).
    let renewals = common::metric(
        &broker.http_address(),
        "ringmq_kafka_reauthentications_total",
    );
    assert!(renewals >= 3.0, "{renewals} renewals");
}

#[test]
fn confluent_kafka_authenticates_with_both_scram_mechanisms() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = broker(dir.path());
    for (mechanism, topic) in [("SCRAM-SHA-256", "ck-256"), ("SCRAM-SHA-512", "ck-512")] {
        let Some(outcome) = common::clients::confluent_kafka(
            &address,
            (mechanism, "alice", "alice-secret"),
            topic,
            None,
        ) else {
            return;
        };
        outcome.unwrap_or_else(|stderr| panic!("{mechanism}: {stderr}"));
        let wrong =
            common::clients::confluent_kafka(&address, (mechanism, "alice", "wrong"), "ck-x", None);
        let stderr = wrong.unwrap().unwrap_err();
        assert!(stderr.contains("uthentication"), "{mechanism}: {stderr}");
    }
}
