//! Authentication on the native listener: with `sasl_mechanisms` set, the broker refuses
//! every operation before a connection authenticates (and closes it); the Rust client and the
//! CLI authenticate with SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; wrong passwords and unknown
//! users are refused alike.

mod common;

use std::process::Command;

use common::TestBroker;
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::broker::users::Users;
use ringmq::client::{Client, ClientError, SaslCredentials};
use ringmq::protocol::ErrorCode;
use ringmq::runtime;

fn broker(dir: &std::path::Path) -> TestBroker {
    let mut users = Users::default();
    for mechanism in Mechanism::ALL {
        let credential = Credential::new(mechanism, b"alice-secret", ITERATIONS_MIN);
        users.upsert("alice", mechanism, credential).unwrap();
    }
    users.save(dir).unwrap();
    TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 2,
        sasl_mechanisms: vec![
            "SCRAM-SHA-256".into(),
            "SCRAM-SHA-512".into(),
            "PLAIN".into(),
        ],
        // Authentication is what these tests are about; ACLs are tests/acls.rs's.
        super_users: vec!["User:alice".into(), "User:bob".into()],
        ..Default::default()
    })
}

fn credentials(mechanism: &str, user: &str, password: &str) -> SaslCredentials {
    SaslCredentials {
        mechanism: mechanism.into(),
        user: user.into(),
        password: password.into(),
    }
}

#[test]
fn every_operation_waits_for_authentication_and_each_mechanism_works() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = broker.address();
    runtime::block_on(async {
        // Before authenticating: refused with authentication_failed, then closed.
        let anonymous = Client::connect(&address).await.unwrap();
        let refused = anonymous.create_topic("sneaky", 1, &[]).await.unwrap_err();
        assert_eq!(
            refused.code(),
            Some(ErrorCode::AuthenticationFailed),
            "{refused}"
        );
        assert!(
            anonymous.metadata(&[]).await.is_err(),
            "the connection is closed"
        );
        for (mechanism, topic) in [
            ("SCRAM-SHA-256", "by-256"),
            ("SCRAM-SHA-512", "by-512"),
            ("PLAIN", "by-plain"),
        ] {
            let alice = credentials(mechanism, "alice", "alice-secret");
            let client = Client::connect_with(&address, None, Some(&alice))
                .await
                .unwrap();
            client.create_topic(topic, 1, &[]).await.unwrap();
            for (user, password) in [("alice", "wrong"), ("ghost", "alice-secret")] {
                let wrong = credentials(mechanism, user, password);
                let error = Client::connect_with(&address, None, Some(&wrong))
                    .await
                    .err()
                    .unwrap();
                assert!(
                    matches!(&error, ClientError::Server(e) if e.code == ErrorCode::AuthenticationFailed),
                    "{mechanism} {user}: {error}"
                );
            }
        }
        // A mechanism the listener does not enable is refused, saying what it offers.
        let unknown = credentials("GSSAPI", "alice", "alice-secret");
        let error = Client::connect_with(&address, None, Some(&unknown))
            .await
            .err()
            .unwrap();
        assert!(error.to_string().contains("SCRAM-SHA-256"), "{error}");
        let alice = credentials("SCRAM-SHA-256", "alice", "alice-secret");
        let client = Client::connect_with(&address, None, Some(&alice))
            .await
            .unwrap();
        let names: Vec<String> = client
            .metadata(&[])
            .await
            .unwrap()
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        assert_eq!(names, ["by-256", "by-512", "by-plain"]);
    });
}

#[test]
fn the_cli_authenticates_with_the_password_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = broker.address();
    let ringmq = |args: &[&str], password: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringmq"));
        command.args(args).env_remove("RINGMQ_PASSWORD");
        if let Some(password) = password {
            command.env("RINGMQ_PASSWORD", password);
        }
        let output = command.output().unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let create = [
        "topic", "create", "-b", &address, "--user", "alice", "cli-auth",
    ];
    let (code, stderr) = ringmq(&create, Some("alice-secret"));
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr) = ringmq(&create, None);
    assert_ne!(code, 0);
    assert!(stderr.contains("RINGMQ_PASSWORD"), "{stderr}");
    let (code, stderr) = ringmq(
        &["topic", "list", "-b", &address, "--user", "alice"],
        Some("nope"),
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("authentication"), "{stderr}");
    let (code, stderr) = ringmq(&["topic", "list", "-b", &address], None);
    assert_ne!(code, 0, "anonymous is refused: {stderr}");
}
