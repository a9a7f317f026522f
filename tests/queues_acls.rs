//! Queue operations under ACLs, over TCP against a broker that asks clients to authenticate:
//! receive and settle need Read on the topic and on the queue group, create needs Create on the
//! group (and the right to create a dead-letter topic that does not exist yet), delete needs
//! Delete, describe needs Describe, and a list leaves out what the user may not describe.

mod common;

use std::path::Path;

use bytes::BytesMut;
use common::TestBroker;
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::broker::acls::{Acl, Acls, Operation, PatternType, Permission, ResourceType};
use ringmq::broker::users::Users;
use ringmq::client::{Client, ClientError, QueueConsumer, QueueConsumerConfig, SaslCredentials};
use ringmq::protocol::ErrorCode;
use ringmq::protocol::queues::SettleAction;
use ringmq::runtime::block_on;
use ringmq::storage::AckLevel;

fn rule(user: &str, resource_type: ResourceType, name: &str, operation: Operation) -> Acl {
    Acl {
        principal: format!("User:{user}"),
        host: "*".into(),
        resource_type,
        pattern_type: PatternType::Literal,
        name: name.into(),
        operation,
        permission: Permission::Allow,
    }
}

/// A broker whose native listener asks for SCRAM; admin is a super user; bob may consume
/// queue group "workers" of "jobs", create it (and its default dead-letter topic) and delete
/// queue group "temp"; carol may read "jobs" but no group.
fn broker(dir: &Path) -> TestBroker {
    let mut users = Users::default();
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
    for acl in [
        rule("bob", ResourceType::Topic, "jobs", Operation::Read),
        rule("bob", ResourceType::Group, "workers", Operation::Read),
        rule("bob", ResourceType::Group, "workers", Operation::Create),
        rule(
            "bob",
            ResourceType::Topic,
            "jobs.workers.dlq",
            Operation::Create,
        ),
        rule("bob", ResourceType::Group, "temp", Operation::Delete),
        rule("carol", ResourceType::Topic, "jobs", Operation::Read),
    ] {
        acls.add(acl).unwrap();
    }
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
    let credentials = SaslCredentials {
        mechanism: "SCRAM-SHA-256".into(),
        user: user.into(),
        password: format!("{user}-pw"),
    };
    Client::connect_with(address, None, Some(&credentials))
        .await
        .unwrap()
}

fn code<T: std::fmt::Debug>(result: Result<T, ClientError>) -> ErrorCode {
    result.unwrap_err().code().expect("a broker error")
}

fn consumer(client: &Client, topic: &str, group: &str) -> QueueConsumer {
    let config = QueueConsumerConfig {
        max_messages: 100,
        wait_ms: 0,
        visibility_timeout_ms: 0,
        create: false,
    };
    QueueConsumer::new(client.clone(), topic, group, config)
}

#[test]
fn queue_operations_are_authorized_by_the_acls() {
    let dir = tempfile::tempdir().unwrap();
    let broker = broker(dir.path());
    let address = broker.address();
    block_on(async {
        let admin = login(&address, "admin").await;
        admin.create_topic("jobs", 1, &[]).await.unwrap();
        admin.create_topic("secret", 1, &[]).await.unwrap();
        admin
            .create_queue_group("jobs", "workers2", &[])
            .await
            .unwrap();
        admin.create_queue_group("jobs", "temp", &[]).await.unwrap();
        admin
            .create_queue_group("secret", "hidden", &[])
            .await
            .unwrap();
        let mut builder = BatchBuilder::new(Compression::None);
        for i in 0..3 {
            builder.push(Record::new(0, None, Some(format!("job-{i}").as_bytes())));
        }
        let batch = BytesMut::from(&builder.build()[..]);
        admin
            .produce("jobs", Some(0), b"", AckLevel::Written, batch)
            .await
            .unwrap();

        let bob = login(&address, "bob").await;
        // A dead-letter topic bob may not create: refused, and nothing is created.
        assert_eq!(
            code(
                bob.create_queue_group("jobs", "workers", &[("dead_letter_topic", "elsewhere")])
                    .await
            ),
            ErrorCode::NotAuthorized
        );
        assert_eq!(
            code(bob.describe_queue_group("jobs", "workers").await),
            ErrorCode::UnknownQueueGroup
        );
        bob.create_queue_group("jobs", "workers", &[])
            .await
            .unwrap();
        // Creating a group bob has no Create on.
        assert_eq!(
            code(bob.create_queue_group("jobs", "other", &[]).await),
            ErrorCode::NotAuthorized
        );

        // Bob consumes "workers": every message, in order, then acknowledges them.
        let bobs = consumer(&bob, "jobs", "workers");
        let messages = bobs.receive().await.unwrap();
        let values: Vec<_> = messages
            .iter()
            .map(|m| String::from_utf8(m.value.as_ref().unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(values, ["job-0", "job-1", "job-2"]);
        bobs.ack_all(&messages).await.unwrap();
        let description = bob.describe_queue_group("jobs", "workers").await.unwrap();
        assert_eq!(description.partitions.len(), 1);

        // Bob may not read the other topic, nor consume another group of his topic.
        assert_eq!(
            code(consumer(&bob, "secret", "hidden").receive().await),
            ErrorCode::NotAuthorized
        );
        assert_eq!(
            code(consumer(&bob, "jobs", "workers2").receive().await),
            ErrorCode::NotAuthorized
        );
        assert_eq!(
            code(bob.describe_queue_group("secret", "hidden").await),
            ErrorCode::NotAuthorized
        );

        // Carol reads the topic but has no right on any group: receive and settle refused,
        // and her list is empty.
        let carol = login(&address, "carol").await;
        let carols = consumer(&carol, "jobs", "workers");
        assert_eq!(code(carols.receive().await), ErrorCode::NotAuthorized);
        assert_eq!(
            code(carols.settle(SettleAction::Ack, vec![(0, 0, 2)]).await),
            ErrorCode::NotAuthorized
        );
        assert_eq!(carol.list_queue_groups().await.unwrap(), Vec::new());

        // Lists leave out what the user may not describe.
        let pair = |t: &str, g: &str| (t.to_string(), g.to_string());
        assert_eq!(
            bob.list_queue_groups().await.unwrap(),
            vec![pair("jobs", "temp"), pair("jobs", "workers")]
        );
        assert_eq!(
            admin.list_queue_groups().await.unwrap(),
            vec![
                pair("jobs", "temp"),
                pair("jobs", "workers"),
                pair("jobs", "workers2"),
                pair("secret", "hidden")
            ]
        );

        // Delete: only where bob has Delete.
        assert_eq!(
            code(bob.delete_queue_group("jobs", "workers").await),
            ErrorCode::NotAuthorized
        );
        bob.delete_queue_group("jobs", "temp").await.unwrap();
        assert_eq!(
            admin.list_queue_groups().await.unwrap(),
            vec![
                pair("jobs", "workers"),
                pair("jobs", "workers2"),
                pair("secret", "hidden")
            ]
        );
    });
}

/// The queues' native error codes are 50-53 (40-43 are authentication's).
#[test]
fn queue_error_codes_are_fifty_and_up() {
    assert_eq!(ErrorCode::UnknownQueueGroup as u16, 50);
    assert_eq!(ErrorCode::QueueGroupExists as u16, 51);
    assert_eq!(ErrorCode::LockNotHeld as u16, 52);
    assert_eq!(ErrorCode::LockExpired as u16, 53);
    assert_eq!(ErrorCode::NotAuthorized as u16, 43);
}
