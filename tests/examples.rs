//! The client examples in examples/, run against a real broker: what they print a user is what
//! these assert.

mod common;

#[allow(dead_code)]
#[path = "../examples/consumer.rs"]
mod consumer;
#[allow(dead_code)]
#[path = "../examples/group_consumer.rs"]
mod group_consumer;
#[allow(dead_code)]
#[path = "../examples/producer.rs"]
mod producer;
#[allow(dead_code)]
#[path = "../examples/tokio_client.rs"]
mod tokio_client;

use common::TestBroker;
use ringmq::runtime;

#[test]
fn the_producer_consumer_and_group_examples_agree() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    runtime::block_on(async {
        let stored = producer::run(&address, "orders", 40).await.unwrap();
        assert_eq!(stored.len(), 40);
        // One key, one partition: the four customers' records each stay together, in order.
        let consumed = consumer::run(&address, "orders").await.unwrap();
        assert_eq!(consumed.len(), 40, "the consumer reads every record");
        let mut by_customer = std::collections::BTreeMap::<Vec<u8>, Vec<(u32, u64)>>::new();
        for record in &consumed {
            by_customer
                .entry(record.record.key.clone().unwrap().to_vec())
                .or_default()
                .push((record.partition, record.offset));
        }
        assert_eq!(by_customer.len(), 4);
        for places in by_customer.values() {
            assert!(
                places.iter().all(|(p, _)| *p == places[0].0),
                "one partition per key"
            );
            assert!(places.windows(2).all(|w| w[0].1 < w[1].1), "in order");
        }

        let first = group_consumer::run(&address, "orders", "billing")
            .await
            .unwrap();
        assert_eq!(first.len(), 40, "the group member reads everything once");
        producer::run(&address, "orders", 5).await.unwrap();
        let second = group_consumer::run(&address, "orders", "billing")
            .await
            .unwrap();
        assert_eq!(
            second.len(),
            5,
            "a later member of the group reads only what came after the commits"
        );
    });
}

#[test]
fn the_tokio_example_produces_from_spawned_tasks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let offsets = rt.block_on(tokio_client::run(&address, "events")).unwrap();
    assert_eq!(
        offsets,
        vec![(0, 99), (100, 199), (200, 299), (300, 399)],
        "four batches of 100, each stored whole"
    );
}
