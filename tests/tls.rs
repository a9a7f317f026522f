//! TLS on both listeners, with a certificate authority made in the test (rcgen): the Rust client
//! over TLS, kafka-python (a client we did not write, on Python's own ssl module) over the Kafka
//! listener, confluent-kafka (librdkafka on OpenSSL) over SASL_SSL, and the refusals: a
//! plaintext client, an untrusted broker certificate, and, with mutual TLS, a client without a
//! certificate or with one from another authority. A refused connection never harms the
//! broker's other connections.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestBroker;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ringmq::client::{Client, ClientTls};
use ringmq::config::{BrokerConfig, CertificatePrincipal, TlsSettings};
use ringmq::runtime;

/// An authority, and what it signed, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    client: (PathBuf, PathBuf),
}

fn write(dir: &Path, name: &str, pem: String) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

/// A CA named `name` that signs a server certificate for localhost and 127.0.0.1, and a client
/// certificate for `alice`.
fn pki(dir: &Path, name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let signed = |names: Vec<String>, common_name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let certificate = params.signed_by(&key, &issuer).unwrap();
        (certificate.pem(), key.serialize_pem())
    };
    let (server_pem, server_key) = signed(vec!["localhost".into(), "127.0.0.1".into()], "broker");
    let (client_pem, client_key) = signed(Vec::new(), "alice");
    Pki {
        ca: write(dir, &format!("{name}-ca.pem"), ca.pem()),
        server: (
            write(dir, &format!("{name}-server.pem"), server_pem),
            write(dir, &format!("{name}-server-key.pem"), server_key),
        ),
        client: (
            write(dir, &format!("{name}-client.pem"), client_pem),
            write(dir, &format!("{name}-client-key.pem"), client_key),
        ),
    }
}

fn broker(data: &Path, pki: &Pki, mutual: bool) -> TestBroker {
    // With mutual TLS the certificate's subject is the principal and the ACLs are enforced:
    // the client's certificate (CN=alice) is a super user here.
    broker_with(
        data,
        pki,
        mutual,
        CertificatePrincipal::Dn,
        &["User:CN=alice"],
    )
}

fn broker_with(
    data: &Path,
    pki: &Pki,
    mutual: bool,
    principal: CertificatePrincipal,
    super_users: &[&str],
) -> TestBroker {
    let settings = TlsSettings {
        cert_path: Some(pki.server.0.clone()),
        key_path: Some(pki.server.1.clone()),
        client_ca_path: mutual.then(|| pki.ca.clone()),
        principal,
    };
    TestBroker::start_with(BrokerConfig {
        super_users: super_users.iter().map(|user| user.to_string()).collect(),
        data_dir: data.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        tls: settings.clone(),
        kafka_tls: settings.clone(),
        http_tls: settings.clone(),
        sqs_listen: "127.0.0.1:0".into(),
        sqs_tls: settings,
        ..Default::default()
    })
}

/// Creates a topic, produces three records and reads them back, over `tls`.
async fn round_trip(address: &str, tls: &ClientTls, topic: &str) -> Result<(), String> {
    let client = Client::connect_tls(address, tls)
        .await
        .map_err(|error| error.to_string())?;
    client
        .create_topic(topic, 1, &[])
        .await
        .map_err(|error| error.to_string())?;
    client
        .produce(
            topic,
            Some(0),
            b"",
            ringmq::storage::AckLevel::Fsynced,
            common::batch(7, 3, 1_000),
        )
        .await
        .map_err(|error| error.to_string())?;
    let request = ringmq::protocol::FetchRequest {
        topic: topic.into(),
        partition: 0,
        offset: 0,
        max_bytes: 1 << 20,
        min_bytes: 1,
        max_wait_ms: 0,
    };
    let fetched = client
        .fetch(request)
        .await
        .map_err(|error| error.to_string())?;
    let mut values = Vec::new();
    for batch in &fetched.records {
        for stored in ringmq::batch::records::decode(batch).map_err(|error| error.to_string())? {
            values.push(stored.record.value.unwrap_or_default());
        }
    }
    let wanted: Vec<bytes::Bytes> = (0..3)
        .map(|index| bytes::Bytes::from(common::value_for(7, index)))
        .collect();
    if values != wanted {
        return Err(format!("read back {values:?}"));
    }
    Ok(())
}

#[test]
fn the_rust_client_talks_tls_and_wrong_peers_are_refused_without_harm() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let other = pki(dir.path(), "other");
    let data = tempfile::tempdir().unwrap();
    let broker = broker(data.path(), &good, false);
    let address = broker.address();
    runtime::block_on(async {
        let tls = ClientTls::new(&good.ca, "localhost", None).unwrap();
        round_trip(&address, &tls, "over-tls").await.unwrap();
        // A plaintext client: its request never gets an answer it can read; it fails.
        let plain = Client::connect(&address).await.unwrap();
        let refused = runtime::timeout(std::time::Duration::from_secs(10), plain.metadata(&[]));
        assert!(
            !matches!(refused.await, Some(Ok(_))),
            "plaintext was served"
        );
        // A broker certificate from an authority the client does not trust.
        let untrusted = ClientTls::new(&other.ca, "localhost", None).unwrap();
        let error = Client::connect_tls(&address, &untrusted)
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("TLS handshake"), "{error}");
        // A name the certificate does not carry.
        let misnamed = ClientTls::new(&good.ca, "elsewhere.example", None).unwrap();
        assert!(Client::connect_tls(&address, &misnamed).await.is_err());
        // The broker serves TLS clients as before.
        round_trip(&address, &tls, "still-serving").await.unwrap();
        // /metrics over TLS too, counting the handshakes it refused.
        let metrics = https_get(&broker.http_address(), &good.ca, "/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200 OK"), "{metrics}");
        let refused: f64 = metrics
            .lines()
            .filter(|line| {
                line.starts_with("ringmq_connection_closes_total")
                    && line.contains("reason=\"tls_handshake\"")
                    && line.contains("listener=\"native\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(
            refused >= 3.0,
            "plaintext, untrusted and misnamed: {refused}\n{metrics}"
        );
    });
}

/// GET `path` over TLS, the whole response as text.
async fn https_get(address: &str, ca: &Path, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    https_request(address, ca, &request).await
}

#[test]
fn mutual_tls_admits_only_clients_with_a_certificate_of_its_authority() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let other = pki(dir.path(), "other");
    let data = tempfile::tempdir().unwrap();
    let broker = broker(data.path(), &good, true);
    let address = broker.address();
    runtime::block_on(async {
        let identity = Some((good.client.0.as_path(), good.client.1.as_path()));
        let with_certificate = ClientTls::new(&good.ca, "localhost", identity).unwrap();
        round_trip(&address, &with_certificate, "mutual")
            .await
            .unwrap();
        // No certificate, or one from another authority: the connection never serves a request
        // (with TLS 1.3 the client learns it at its first read, not during its handshake).
        let without = ClientTls::new(&good.ca, "localhost", None).unwrap();
        let foreign_identity = Some((other.client.0.as_path(), other.client.1.as_path()));
        let foreign = ClientTls::new(&good.ca, "localhost", foreign_identity).unwrap();
        for (tls, topic) in [(&without, "anonymous"), (&foreign, "foreign")] {
            let outcome = runtime::timeout(
                std::time::Duration::from_secs(10),
                round_trip(&address, tls, topic),
            )
            .await;
            assert!(matches!(outcome, Some(Err(_))), "{topic}: {outcome:?}");
        }
        round_trip(&address, &with_certificate, "mutual-again")
            .await
            .unwrap();
    });
}

/// With mutual TLS and no SASL, the client certificate names the principal the ACLs judge:
/// its whole subject (Kafka's default) or its common name, as the listener says.
#[test]
fn a_client_certificate_names_the_principal_the_acls_judge() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let identity = Some((good.client.0.as_path(), good.client.1.as_path()));
    let tls = ClientTls::new(&good.ca, "localhost", identity).unwrap();
    let cases = [
        // Nobody is a super user and no rule allows alice: refused, by name.
        (
            CertificatePrincipal::Dn,
            "User:CN=bob",
            Some("not_authorized"),
        ),
        (CertificatePrincipal::Dn, "User:CN=alice", None),
        // By common name, alice is the same principal a SASL user alice would be.
        (CertificatePrincipal::Cn, "User:alice", None),
        (
            CertificatePrincipal::Cn,
            "User:CN=alice",
            Some("not_authorized"),
        ),
    ];
    for (index, (principal, super_user, refusal)) in cases.into_iter().enumerate() {
        let data = tempfile::tempdir().unwrap();
        let broker = broker_with(data.path(), &good, true, principal, &[super_user]);
        let address = broker.address();
        let outcome = runtime::block_on(round_trip(&address, &tls, &format!("certified-{index}")));
        match refusal {
            None => outcome.unwrap_or_else(|error| panic!("{principal:?} {super_user}: {error}")),
            Some(code) => {
                let error = outcome.unwrap_err();
                assert!(
                    error.contains(code) && error.contains("alice"),
                    "{principal:?} {super_user}: {error}"
                );
            }
        }
    }
}

/// kafka-python over the Kafka listener with TLS (`security_protocol="SSL"`), checking the
/// broker's certificate against the test's authority.
#[test]
fn kafka_python_produces_and_consumes_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let data = tempfile::tempdir().unwrap();
    let broker = broker(data.path(), &good, false);
    let kafka = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    let script = r#"
import sys
from kafka import KafkaProducer, KafkaConsumer
address, ca = sys.argv[1], sys.argv[2]
ssl = dict(security_protocol="SSL", ssl_cafile=ca, ssl_check_hostname=True)
producer = KafkaProducer(bootstrap_servers=address, acks="all", **ssl)
for n in range(100):
    producer.send("tls-topic", value=b"value-%d" % n).get(timeout=30)
producer.close()
consumer = KafkaConsumer("tls-topic", bootstrap_servers=address, auto_offset_reset="earliest",
                         consumer_timeout_ms=10000, **ssl)
values = []
for message in consumer:
    values.append(message.value)
    if len(values) == 100:
        break
consumer.close()
assert values == [b"value-%d" % n for n in range(100)], values
print("ok", len(values))
"#;
    // The advertised host must match the certificate: 127.0.0.1 is one of its names.
    let output = match Command::new(&python)
        .args(["-c", script, &kafka.to_string(), good.ca.to_str().unwrap()])
        .output()
    {
        Ok(output) => output,
        Err(error) => return common::tool_missing("kafka-python (tests/clients/.venv)", &error),
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("ok 100"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_listener_with_half_its_tls_settings_does_not_start() {
    let config = BrokerConfig {
        tls: TlsSettings {
            cert_path: Some("/nonexistent.pem".into()),
            ..TlsSettings::default()
        },
        ..Default::default()
    };
    let error = config.validate().unwrap_err();
    assert!(error.contains("both cert_path and key_path"), "{error}");
    let dir = tempfile::tempdir().unwrap();
    let missing = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        tls: TlsSettings {
            cert_path: Some(dir.path().join("absent.pem")),
            key_path: Some(dir.path().join("absent-key.pem")),
            ..TlsSettings::default()
        },
        ..Default::default()
    };
    let error = ringmq::server::start(missing).err().unwrap();
    assert!(error.contains("absent.pem"), "{error}");
}

/// The CLI over TLS: flags for the authority, or the same in a client config file; without
/// them the command fails and says so.
#[test]
fn the_cli_creates_produces_and_consumes_over_tls() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let data = tempfile::tempdir().unwrap();
    let broker = broker(data.path(), &good, false);
    let address = broker.address();
    let ca = good.ca.to_str().unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
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
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let created = run(
        &[
            "topic",
            "create",
            "-b",
            &address,
            "--tls-ca",
            ca,
            "cli-tls",
            "--partitions",
            "1",
        ],
        "",
    );
    assert_eq!(created.0, 0, "{created:?}");
    let produced = run(
        &[
            "produce", "-b", &address, "--tls-ca", ca, "cli-tls", "--acks", "fsynced",
        ],
        "one\ntwo\nthree\n",
    );
    assert_eq!(produced.0, 0, "{produced:?}");
    let config = dir.path().join("client.toml");
    std::fs::write(
        &config,
        format!("broker = \"{address}\"\ntls_ca = \"{ca}\"\n"),
    )
    .unwrap();
    let consumed = run(
        &[
            "consume",
            "--client-config",
            config.to_str().unwrap(),
            "cli-tls",
        ],
        "",
    );
    assert_eq!(
        (consumed.0, consumed.1.as_str()),
        (0, "one\ntwo\nthree\n"),
        "{consumed:?}"
    );
    // Without TLS the broker never answers the plaintext request; the command fails.
    let plain = run(&["topic", "list", "-b", &address], "");
    assert_ne!(plain.0, 0, "{plain:?}");
}

/// Megabytes each way through TLS: a produce far larger than one TLS record or the session's
/// plaintext buffer, and the fetch of it back, byte for byte.
#[test]
fn megabytes_cross_tls_intact_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let data = tempfile::tempdir().unwrap();
    let broker = broker(data.path(), &good, false);
    let address = broker.address();
    runtime::block_on(async {
        let tls = ClientTls::new(&good.ca, "localhost", None).unwrap();
        let client = Client::connect_tls(&address, &tls).await.unwrap();
        client.create_topic("big", 1, &[]).await.unwrap();
        // Five batches of about half a megabyte in one produce (a batch may not pass 1 MiB).
        let mut records = bytes::BytesMut::new();
        for seed in 0..5 {
            records.extend_from_slice(&common::batch(seed, 4_000, 1_000));
        }
        let sent = records.len();
        assert!(sent > 2 << 20, "{sent} bytes");
        client
            .produce(
                "big",
                Some(0),
                b"",
                ringmq::storage::AckLevel::Written,
                records,
            )
            .await
            .unwrap();
        let request = ringmq::protocol::FetchRequest {
            topic: "big".into(),
            partition: 0,
            offset: 0,
            max_bytes: 8 << 20,
            min_bytes: 1,
            max_wait_ms: 0,
        };
        let fetched = client.fetch(request).await.unwrap();
        let stored: Vec<u8> = fetched.records.concat();
        assert_eq!(stored.len(), sent);
        let mut values = Vec::new();
        let mut position = 0;
        while position < stored.len() {
            let size = ringmq::batch::framed_size(&stored[position..]).unwrap();
            for record in
                ringmq::batch::records::decode(&stored[position..position + size]).unwrap()
            {
                values.push(record.record.value.unwrap());
            }
            position += size;
        }
        assert_eq!(values.len(), 20_000);
        for (n, value) in values.iter().enumerate() {
            let wanted = common::value_for((n / 4_000) as u64, n % 4_000);
            assert_eq!(&value[..], &wanted[..], "record {n}");
        }
    });
}

/// `ringmq serve` rereads its certificate and key on SIGHUP: new connections get the new ones,
/// a connection opened before keeps working, and a bad file changes nothing.
#[test]
fn sighup_reloads_certificates_without_dropping_connections() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let first = pki(dir.path(), "first");
    let second = pki(dir.path(), "second");
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live-key.pem"));
    std::fs::copy(&first.server.0, &cert).unwrap();
    std::fs::copy(&first.server.1, &key).unwrap();
    let config = dir.path().join("broker.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\nlisten = \"127.0.0.1:0\"\nkafka_listen = \"\"\nhttp_listen = \"\"\nsqs_listen = \"\"\nshards = 2\n[tls]\ncert_path = {cert:?}\nkey_path = {key:?}\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("the broker logs its address").unwrap();
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    let (log_sender, log) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = log_sender.send(line);
        }
    });
    let wait_for_log = |wanted: &str| loop {
        let line = log
            .recv_timeout(std::time::Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no log line with {wanted:?}"));
        if line.contains(wanted) {
            return;
        }
    };
    let hangup = || {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGHUP) };
    };
    runtime::block_on(async {
        let trust_first = ClientTls::new(&first.ca, "localhost", None).unwrap();
        let trust_second = ClientTls::new(&second.ca, "localhost", None).unwrap();
        let before = Client::connect_tls(&address, &trust_first).await.unwrap();
        before.create_topic("kept", 1, &[]).await.unwrap();
        assert!(Client::connect_tls(&address, &trust_second).await.is_err());
        std::fs::copy(&second.server.0, &cert).unwrap();
        std::fs::copy(&second.server.1, &key).unwrap();
        hangup();
        wait_for_log("reloaded");
        round_trip(&address, &trust_second, "after-reload")
            .await
            .unwrap();
        assert!(Client::connect_tls(&address, &trust_first).await.is_err());
        // The connection made before the reload still serves.
        assert_eq!(before.metadata(&[]).await.unwrap().len(), 2);
        // A broken file: nothing changes, and the log says why.
        std::fs::write(&cert, "not a certificate").unwrap();
        hangup();
        wait_for_log("not reloaded");
        round_trip(&address, &trust_second, "still-second")
            .await
            .unwrap();
    });
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
}

/// /metrics behind a bearer token or basic credentials (here over TLS, as they should be):
/// without them 401, with either 200; /health stays open.
#[test]
fn metrics_ask_for_a_token_or_basic_credentials_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let data = tempfile::tempdir().unwrap();
    let settings = TlsSettings {
        cert_path: Some(good.server.0.clone()),
        key_path: Some(good.server.1.clone()),
        ..TlsSettings::default()
    };
    let broker = TestBroker::start_with(BrokerConfig {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: String::new(),
        shards: 1,
        http_tls: settings,
        http_bearer_token: "s3cret".into(),
        http_basic_auth: "prometheus:pw".into(),
        ..Default::default()
    });
    let http = broker.http_address();
    runtime::block_on(async {
        let get = |path: &'static str, header: &'static str| {
            let (http, ca) = (http.clone(), good.ca.clone());
            async move {
                https_request(
                    &http,
                    &ca,
                    &format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{header}\r\n"),
                )
                .await
            }
        };
        assert!(get("/metrics", "").await.starts_with("HTTP/1.1 401"));
        assert!(
            get("/metrics", "authorization: Bearer wrong\r\n")
                .await
                .starts_with("HTTP/1.1 401")
        );
        assert!(
            get("/metrics", "Authorization: Bearer s3cret\r\n")
                .await
                .starts_with("HTTP/1.1 200")
        );
        // base64("prometheus:pw")
        let basic = get("/metrics", "authorization: Basic cHJvbWV0aGV1czpwdw==\r\n").await;
        assert!(basic.starts_with("HTTP/1.1 200"), "{basic}");
        assert!(get("/health", "").await.starts_with("HTTP/1.1 200"));
    });
}

/// Sends `request` (its head) over TLS; the whole response as text.
async fn https_request(address: &str, ca: &Path, request: &str) -> String {
    let config = runtime::tls::client_config(ca, None).unwrap();
    let socket = runtime::TcpStream::connect(address).await.unwrap();
    let mut stream = runtime::tls::Stream::connect_tls(socket, config, "localhost")
        .await
        .unwrap();
    stream
        .send_all(vec![bytes::Bytes::from(request.to_string())])
        .await
        .unwrap();
    let mut response = bytes::BytesMut::new();
    loop {
        response.reserve(64 * 1024);
        let (read, returned) = stream.read_some(response).await;
        response = returned;
        if !matches!(read, Ok(count) if count > 0) {
            break;
        }
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// confluent-kafka (librdkafka with OpenSSL) over `SASL_SSL`: TLS checked against the test's
/// authority, then SCRAM-SHA-512 inside it, as Kafka deployments run it; a wrong password and a
/// client that does not trust the broker's authority are refused.
#[test]
fn confluent_kafka_authenticates_with_scram_over_tls() {
    use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
    let dir = tempfile::tempdir().unwrap();
    let good = pki(dir.path(), "good");
    let other = pki(dir.path(), "other");
    let data = tempfile::tempdir().unwrap();
    let mut users = ringmq::broker::users::Users::default();
    let credential = Credential::new(Mechanism::ScramSha512, b"alice-secret", ITERATIONS_MIN);
    users
        .upsert("alice", Mechanism::ScramSha512, credential)
        .unwrap();
    users.save(data.path()).unwrap();
    let broker = TestBroker::start_with(BrokerConfig {
        data_dir: data.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        kafka_tls: TlsSettings {
            cert_path: Some(good.server.0.clone()),
            key_path: Some(good.server.1.clone()),
            ..TlsSettings::default()
        },
        kafka_sasl_mechanisms: vec!["SCRAM-SHA-512".into()],
        super_users: vec!["User:alice".into()],
        ..Default::default()
    });
    // The certificate names localhost, so the client connects by that name.
    let port = broker
        .handle
        .as_ref()
        .unwrap()
        .kafka_address
        .unwrap()
        .port();
    let address = format!("localhost:{port}");
    let alice = ("SCRAM-SHA-512", "alice", "alice-secret");
    let Some(outcome) =
        common::clients::confluent_kafka(&address, alice, "sasl-ssl", Some(&good.ca))
    else {
        return;
    };
    outcome.unwrap();
    let wrong = ("SCRAM-SHA-512", "alice", "wrong");
    let refused = common::clients::confluent_kafka(&address, wrong, "sasl-ssl-x", Some(&good.ca));
    let stderr = refused.unwrap().unwrap_err();
    assert!(stderr.contains("uthentication"), "{stderr}");
    let untrusting =
        common::clients::confluent_kafka(&address, alice, "sasl-ssl-y", Some(&other.ca));
    assert!(untrusting.unwrap().is_err(), "a broker it cannot verify");
}

/// The SQS door over HTTPS: boto3, trusting the test's authority (AWS_CA_BUNDLE), makes a
/// queue (its URL says https), sends, receives and deletes; plaintext HTTP gets no answer.
#[test]
fn boto3_uses_the_sqs_door_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path(), "sqs");
    let broker = broker(dir.path(), &pki, false);
    let address = broker.handle.as_ref().unwrap().sqs_address.unwrap();
    let python = common::clients_dir().join(".venv/bin/python");
    let endpoint = format!("https://localhost:{}", address.port());
    let output = Command::new(&python)
        .arg(common::clients_dir().join("sqs_client.py"))
        .args([endpoint.as_str(), "tls"])
        .env("AWS_CA_BUNDLE", &pki.ca)
        .output();
    let output = match output {
        Ok(output) => output,
        Err(error) => return common::tool_missing("boto3 (tests/clients/.venv)", &error),
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let seen: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(seen["scheme"], "https");
    assert_eq!(seen["bodies"], serde_json::json!(["sealed"]));
    let plain = std::net::TcpStream::connect(address).and_then(|mut socket| {
        use std::io::{Read, Write};
        socket.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        socket.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")?;
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        Ok(answer)
    });
    let answer = plain.unwrap();
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}
