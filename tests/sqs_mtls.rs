//! The SQS door with mutual TLS: the client certificate names the principal, as on the native
//! and Kafka listeners. boto3 (AWS's SDK, over Python's ssl with botocore's `client_cert`) sends
//! unsigned requests whose principal is the certificate's, and signed ones whose key must belong
//! to that same principal; a client without a certificate is refused at the handshake. The
//! authority and certificates are made in the test (rcgen).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::TestBroker;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ringmq::config::{BrokerConfig, CertificatePrincipal, SqsConfig, SqsCredential, TlsSettings};
use serde_json::{Value, json};

/// An authority's certificate, the broker's certificate and key, and client certificates and
/// keys for alice and bob, as PEM files.
struct Pki {
    ca: PathBuf,
    server: (PathBuf, PathBuf),
    alice: (PathBuf, PathBuf),
    bob: (PathBuf, PathBuf),
}

fn pki(dir: &Path) -> Pki {
    let write = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sqs mtls test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let signed = |names: Vec<String>, common_name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        let certificate = params.signed_by(&key, &issuer).unwrap();
        (
            write(&format!("{common_name}.pem"), certificate.pem()),
            write(&format!("{common_name}-key.pem"), key.serialize_pem()),
        )
    };
    let server = signed(vec!["localhost".into(), "127.0.0.1".into()], "broker");
    let alice = signed(Vec::new(), "alice");
    let bob = signed(Vec::new(), "bob");
    Pki {
        ca: write("ca.pem", ca.pem()),
        server,
        alice,
        bob,
    }
}

/// A broker whose SQS door asks for a client certificate of the test's authority; only
/// `super_user` has any rights.
fn broker(
    data: &Path,
    pki: &Pki,
    principal: CertificatePrincipal,
    super_user: &str,
    credentials: Vec<SqsCredential>,
) -> TestBroker {
    TestBroker::start_with(BrokerConfig {
        super_users: vec![super_user.to_string()],
        data_dir: data.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "".into(),
        shards: 2,
        sqs_listen: "127.0.0.1:0".into(),
        sqs_tls: TlsSettings {
            cert_path: Some(pki.server.0.clone()),
            key_path: Some(pki.server.1.clone()),
            client_ca_path: Some(pki.ca.clone()),
            principal,
        },
        sqs: SqsConfig {
            credentials,
            ..Default::default()
        },
        ..Default::default()
    })
}

fn credential(key: &str, principal: &str) -> SqsCredential {
    SqsCredential {
        access_key_id: key.into(),
        secret_access_key: format!("{key}-secret"),
        principal: principal.into(),
    }
}

/// Runs tests/clients/sqs_mtls_client.py: what boto3 saw, or None when boto3 is missing.
fn boto3(
    broker: &TestBroker,
    ca: &Path,
    certificate: Option<&(PathBuf, PathBuf)>,
    queue: &str,
    key: Option<&str>,
) -> Option<Value> {
    let address = broker.handle.as_ref().unwrap().sqs_address.unwrap();
    let endpoint = format!("https://localhost:{}", address.port());
    let (cert, cert_key) = match certificate {
        Some((cert, key)) => (cert.as_os_str(), key.as_os_str()),
        None => ("-".as_ref(), "-".as_ref()),
    };
    let mut command = Command::new(common::clients_dir().join(".venv/bin/python"));
    command
        .arg(common::clients_dir().join("sqs_mtls_client.py"))
        .arg(&endpoint)
        .arg(ca)
        .arg(cert)
        .arg(cert_key)
        .arg(queue);
    if let Some(key) = key {
        command.args([key.to_string(), format!("{key}-secret")]);
    }
    let output = match command.output() {
        Ok(output) => output,
        Err(error) => {
            common::tool_missing("boto3 (tests/clients/.venv)", &error);
            return None;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    Some(serde_json::from_slice(&output.stdout).unwrap_or_else(|error| panic!("{error}: {stderr}")))
}

/// Without SigV4 credentials configured, the certificate alone is the principal: alice (a super
/// user by her common name) makes a queue, sends and receives, and the message's SenderId is
/// hers; bob, whom no rule allows, gets SQS's AccessDenied (403); a client with no certificate
/// never gets past the handshake.
#[test]
fn the_client_certificate_names_the_principal_of_unsigned_requests() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = tempfile::tempdir().unwrap();
    let broker = broker(
        data.path(),
        &pki,
        CertificatePrincipal::Cn,
        "User:alice",
        Vec::new(),
    );
    let Some(alice) = boto3(&broker, &pki.ca, Some(&pki.alice), "alices", None) else {
        return;
    };
    assert_eq!(alice["outcome"], "ok", "{alice}");
    assert_eq!(alice["bodies"], json!(["certified alices"]));
    assert_eq!(alice["senders"], json!(["alice"]));

    let bob = boto3(&broker, &pki.ca, Some(&pki.bob), "bobs", None).unwrap();
    assert_eq!(bob["outcome"], "refused", "{bob}");
    assert_eq!(bob["code"], "AccessDenied", "{bob}");
    assert_eq!(bob["status"], 403);
    assert!(
        bob["message"].as_str().unwrap().contains("User:bob"),
        "{bob}"
    );

    let nobody = boto3(&broker, &pki.ca, None, "nobodys", None).unwrap();
    assert_eq!(nobody["outcome"], "no_connection", "{nobody}");
    // alice's queue is still served after the refusals.
    let again = boto3(&broker, &pki.ca, Some(&pki.alice), "alices", None).unwrap();
    assert_eq!(again["bodies"], json!(["certified alices"]), "{again}");
}

/// With SigV4 credentials configured and a certificate too, the signing key must belong to the
/// certificate's principal (here by its whole subject, `CN=alice`): alice's key on alice's
/// connection is served, bob's key on it is AccessDenied, alice's key on bob's connection too
/// (a leaked key does not let another certificate's holder act as its owner). An unsigned
/// request on alice's connection still acts as alice.
#[test]
fn a_signed_request_on_a_certified_connection_must_name_the_same_principal() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let data = tempfile::tempdir().unwrap();
    let keys = vec![
        credential("AKIDALICE", "CN=alice"),
        credential("AKIDBOB", "CN=bob"),
    ];
    let broker = broker(
        data.path(),
        &pki,
        CertificatePrincipal::Dn,
        "User:CN=alice",
        keys,
    );
    let both = |certificate, queue, key| boto3(&broker, &pki.ca, Some(certificate), queue, key);
    let Some(signed) = both(&pki.alice, "signed", Some("AKIDALICE")) else {
        return;
    };
    assert_eq!(signed["outcome"], "ok", "{signed}");
    assert_eq!(signed["bodies"], json!(["certified signed"]));
    assert_eq!(signed["senders"], json!(["CN=alice"]));

    let crossed = both(&pki.alice, "crossed", Some("AKIDBOB")).unwrap();
    assert_eq!(crossed["code"], "AccessDenied", "{crossed}");
    assert_eq!(crossed["status"], 403);
    let message = crossed["message"].as_str().unwrap();
    assert!(
        message.contains("User:CN=bob") && message.contains("User:CN=alice"),
        "{message}"
    );

    let leaked = both(&pki.bob, "leaked", Some("AKIDALICE")).unwrap();
    assert_eq!(leaked["code"], "AccessDenied", "{leaked}");

    let unsigned = both(&pki.alice, "unsigned", None).unwrap();
    assert_eq!(unsigned["outcome"], "ok", "{unsigned}");
    assert_eq!(unsigned["senders"], json!(["CN=alice"]));
    let unsigned_bob = both(&pki.bob, "unsigned-bob", None).unwrap();
    assert_eq!(unsigned_bob["code"], "AccessDenied", "{unsigned_bob}");
}
