//! Deduplication at produce time, over TCP against a real broker: a record whose `x-dedup-id`
//! was appended to the same partition within the topic's `dedup_window_ms` is dropped and its
//! produce answered with the first copy's offset; the other records of its batch are appended
//! in order; a repeat after the window is stored; the ids survive a clean restart and a SIGKILL;
//! native producers (the Rust client, the CLI) and Kafka producers (librdkafka, plain and
//! idempotent) carrying the header all get the same treatment. Each check consumes the
//! partition and compares every value in order.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::{TestBroker, fetch_records, metric};
use rdkafka::ClientConfig;
use rdkafka::message::{Header as KafkaHeader, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::util::Timeout;
use ringmq::batch::{BatchBuilder, Compression, Header, Record};
use ringmq::client::Client;
use ringmq::client::queue::{MessageOptions, message_headers};
use ringmq::protocol::ProduceResponse;
use ringmq::runtime::block_on;
use ringmq::storage::AckLevel;

/// A record with `value` and, when given, the deduplication id `id`.
fn record(value: &str, id: Option<&str>) -> Record {
    let mut record = Record::new(now_ms(), None, Some(value.as_bytes()));
    record.headers = message_headers(&MessageOptions {
        dedup_id: id.map(str::to_string),
        ..MessageOptions::default()
    });
    // A header whose value names the dedup header must not be taken for it.
    record.headers.push(Header {
        key: "note".into(),
        value: Some(Bytes::from_static(b"x-dedup-id")),
    });
    record
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn batch(codec: Compression, records: Vec<Record>) -> BytesMut {
    let mut builder = BatchBuilder::new(codec);
    for record in records {
        builder.push(record);
    }
    BytesMut::from(&builder.build()[..])
}

async fn produce(client: &Client, topic: &str, records: BytesMut) -> ProduceResponse {
    client
        .produce(topic, Some(0), b"", AckLevel::Fsynced, records)
        .await
        .unwrap()
}

async fn values(client: &Client, topic: &str) -> Vec<String> {
    fetch_records(client, topic)
        .await
        .unwrap()
        .iter()
        .map(|record| String::from_utf8(record.value.as_ref().unwrap().to_vec()).unwrap())
        .collect()
}

fn kafka_address(broker: &TestBroker) -> String {
    let handle = broker.handle.as_ref().unwrap();
    handle.kafka_address.unwrap().to_string()
}

#[test]
fn repeats_within_the_window_are_dropped_and_answered_with_the_first_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("orders", 1, &[]).await.unwrap();
        let none = Compression::None;
        let first = produce(
            &client,
            "orders",
            batch(none, vec![record("a1", Some("a"))]),
        )
        .await;
        assert_eq!((first.base_offset, first.last_offset), (0, 0));
        produce(
            &client,
            "orders",
            batch(none, vec![record("b1", Some("b"))]),
        )
        .await;
        let repeat = produce(
            &client,
            "orders",
            batch(none, vec![record("a2", Some("a"))]),
        )
        .await;
        assert_eq!(
            (repeat.base_offset, repeat.last_offset),
            (0, 0),
            "a repeat is answered with its first copy's offset"
        );
        // One batch: repeats of earlier appends, new ids, a repeat of an id earlier in the
        // batch, and a record without an id. Only the new ones and the plain one are stored.
        let mixed = vec![
            record("a3", Some("a")),
            record("c1", Some("c")),
            record("b2", Some("b")),
            record("d1", Some("d")),
            record("c2", Some("c")),
            record("plain", None),
        ];
        let appended = produce(&client, "orders", batch(none, mixed)).await;
        assert_eq!((appended.base_offset, appended.last_offset), (2, 4));
        // The same in a compressed batch: the kept records are recompressed with its codec.
        let zstd = vec![
            record("e1", Some("e")),
            record("d2", Some("d")),
            record("f1", Some("f")),
        ];
        let appended = produce(&client, "orders", batch(Compression::Zstd, zstd)).await;
        assert_eq!((appended.base_offset, appended.last_offset), (5, 6));
        let whole = vec![record("e2", Some("e")), record("f2", Some("f"))];
        let repeat = produce(&client, "orders", batch(Compression::Lz4, whole)).await;
        assert_eq!((repeat.base_offset, repeat.last_offset), (5, 6));
        assert_eq!(
            values(&client, "orders").await,
            ["a1", "b1", "c1", "d1", "plain", "e1", "f1"]
        );
    });
    let http = broker.http_address();
    let labels = "{topic=\"orders\",partition=\"0\"}";
    assert_eq!(
        metric(&http, &format!("ringmq_log_dedup_dropped_total{labels}")),
        7.0
    );
    assert_eq!(metric(&http, &format!("ringmq_log_dedup_ids{labels}")), 6.0);
}

#[test]
fn a_repeat_after_the_window_is_stored_and_a_window_of_zero_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 1);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client
            .create_topic("short", 1, &[("dedup_window_ms", "1000")])
            .await
            .unwrap();
        client
            .create_topic("off", 1, &[("dedup_window_ms", "0")])
            .await
            .unwrap();
        let one = |value| batch(Compression::None, vec![record(value, Some("same"))]);
        for topic in ["short", "off"] {
            produce(&client, topic, one("first")).await;
            produce(&client, topic, one("within")).await;
        }
        ringmq::runtime::sleep(Duration::from_millis(1_300)).await;
        let after = produce(&client, "short", one("after")).await;
        assert_eq!(after.base_offset, 1, "past the window: a new record");
        let again = produce(&client, "short", one("again")).await;
        assert_eq!(again.base_offset, 1, "and a new window from it");
        assert_eq!(values(&client, "short").await, ["first", "after"]);
        assert_eq!(values(&client, "off").await, ["first", "within"]);
    });
}

#[test]
fn ids_survive_a_clean_restart_and_the_oldest_are_forgotten_past_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client
            .create_topic("bounded", 1, &[("dedup_ids_max", "3")])
            .await
            .unwrap();
        client.create_topic("kept", 1, &[]).await.unwrap();
        for n in 0..5 {
            let id = format!("id{n}");
            let one = || batch(Compression::None, vec![record(&id, Some(&id))]);
            produce(&client, "bounded", one()).await;
            produce(&client, "kept", one()).await;
        }
        client.create_topic("plain", 1, &[]).await.unwrap();
        let plain = batch(Compression::None, vec![record("no id", None)]);
        produce(&client, "plain", plain).await;
    });
    // Only partitions that held an id are read back at open: they carry the marker.
    let marker = |topic: &str| dir.path().join(format!("topics/{topic}-0/dedup-ids"));
    assert!(marker("kept").exists() && marker("bounded").exists());
    assert!(!marker("plain").exists());
    broker.restart();
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        // Newest first: id4, id3 and id2 are remembered and dropped; id1 and id0 are not, and
        // storing them evicts the oldest remembered (id2, id3), which were already repeated.
        for n in (0..5).rev() {
            let id = format!("id{n}");
            let one = || batch(Compression::None, vec![record("again", Some(&id))]);
            let kept = produce(&client, "kept", one()).await;
            assert_eq!(kept.base_offset, n, "{id} rebuilt from the log at open");
            produce(&client, "bounded", one()).await;
        }
        assert_eq!(
            values(&client, "kept").await,
            ["id0", "id1", "id2", "id3", "id4"]
        );
        assert_eq!(
            values(&client, "bounded").await,
            ["id0", "id1", "id2", "id3", "id4", "again", "again"],
            "only the newest three ids were remembered, and rebuilt within the bound"
        );
    });
}

/// A `ringmq serve` process, SIGKILLed when dropped (also when an assertion fails first).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(dir: &std::path::Path) -> (Server, String) {
    let (child, address) = common::serve(dir);
    (Server(child), address)
}

#[test]
fn ids_survive_a_sigkill_of_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let (server, address) = serve(dir.path());
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("crash", 1, &[]).await.unwrap();
        let records = (0..50)
            .map(|n| record(&format!("v{n}"), Some(&format!("id{n}"))))
            .collect();
        produce(&client, "crash", batch(Compression::Gzip, records)).await;
    });
    drop(server);
    let (server, address) = serve(dir.path());
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let records = (40..60)
            .map(|n| record(&format!("w{n}"), Some(&format!("id{n}"))))
            .collect();
        let appended = produce(&client, "crash", batch(Compression::None, records)).await;
        assert_eq!((appended.base_offset, appended.last_offset), (50, 59));
        let got = values(&client, "crash").await;
        let mut expected: Vec<String> = (0..50).map(|n| format!("v{n}")).collect();
        expected.extend((50..60).map(|n| format!("w{n}")));
        assert_eq!(got, expected);
    });
    drop(server);
}

#[test]
fn the_cli_sets_the_id_and_a_repeat_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 1);
    let address = broker.address();
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("cli", 1, &[]).await.unwrap();
    });
    for value in ["first\n", "second\n"] {
        let (code, _, stderr) = common::run_with_stdin(
            common::ringmq_command().args([
                "produce",
                "cli",
                "--dedup-id",
                "order-17",
                "--broker",
                &address,
            ]),
            value,
        );
        assert_eq!(code, 0, "{stderr}");
    }
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let records = fetch_records(&client, "cli").await.unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].value.as_deref(), Some(&b"first"[..]));
        let header = records[0].headers.iter().find(|h| h.key == "x-dedup-id");
        assert_eq!(header.unwrap().value.as_deref(), Some(&b"order-17"[..]));
    });
}

/// Sends `(value, id)` records to partition 0 of `topic` with librdkafka, all in one flush (so
/// they share batches), and waits for every delivery.
fn kafka_send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    records: &[(String, String)],
) {
    for (value, id) in records {
        let headers = OwnedHeaders::new().insert(KafkaHeader {
            key: "x-dedup-id",
            value: Some(id.as_bytes()),
        });
        let record = BaseRecord::<(), _>::to(topic)
            .partition(0)
            .payload(value.as_bytes())
            .headers(headers);
        producer.send(record).map_err(|(error, _)| error).unwrap();
    }
    producer
        .flush(Timeout::After(Duration::from_secs(30)))
        .unwrap();
}

#[test]
fn kafka_producers_carrying_the_header_are_deduplicated_plain_and_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let (address, kafka) = (broker.address(), kafka_address(&broker));
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("plain", 1, &[]).await.unwrap();
        client.create_topic("idem", 1, &[]).await.unwrap();
    });
    let pairs = |values: std::ops::Range<u32>, ids: std::ops::Range<u32>, tag: &str| {
        values
            .zip(ids)
            .map(|(v, id)| (format!("{tag}{v}"), format!("id{id}")))
            .collect::<Vec<_>>()
    };
    for (topic, idempotence) in [("plain", "false"), ("idem", "true")] {
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", &kafka)
            .set("enable.idempotence", idempotence)
            .set("linger.ms", "50")
            .set("compression.type", "lz4")
            .create()
            .unwrap();
        kafka_send(&producer, topic, &pairs(0..10, 0..10, "a"));
        // Half repeats, half new, interleaved in one batch; the repeats end the batch, so an
        // idempotent producer's next batch tests that its sequence counted them.
        let mut mixed = pairs(10..15, 10..15, "b");
        mixed.extend(pairs(0..5, 5..10, "repeat"));
        kafka_send(&producer, topic, &mixed);
        kafka_send(&producer, topic, &pairs(15..20, 15..20, "c"));
        kafka_send(&producer, topic, &pairs(0..3, 0..3, "repeat"));
    }
    block_on(async {
        let client = Client::connect(&address).await.unwrap();
        let mut expected: Vec<String> = (0..10).map(|n| format!("a{n}")).collect();
        expected.extend((10..15).map(|n| format!("b{n}")));
        expected.extend((15..20).map(|n| format!("c{n}")));
        for topic in ["plain", "idem"] {
            assert_eq!(values(&client, topic).await, expected, "{topic}");
        }
    });
}

/// An idempotent producer's batch of `ids` with sequences from `base_sequence`.
fn idempotent(base_sequence: i32, ids: &[&str]) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None).idempotent(7, 0, base_sequence);
    for id in ids {
        builder.push(record(id, Some(id)));
    }
    BytesMut::from(&builder.build()[..])
}

#[test]
fn an_idempotent_producer_continues_after_a_batch_ending_in_repeats_even_across_a_reopen() {
    use ringmq::storage::{LogConfig, PartitionLog};
    let dir = tempfile::tempdir().unwrap();
    block_on(async {
        let open = || PartitionLog::open(dir.path(), LogConfig::default(), Vec::new());
        let log = open().await.unwrap();
        log.append(idempotent(0, &["a", "b"]), AckLevel::Fsynced)
            .await
            .unwrap();
        // Sequences 2..=4: "c" is new, the last two repeat.
        let ack = log
            .append(idempotent(2, &["c", "a", "b"]), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!((ack.base_offset, ack.last_offset), (2, 2));
        log.close().await.unwrap();
        // The producer state read back from the log expects sequence 5 next.
        let log = open().await.unwrap();
        log.append(idempotent(5, &["d"]), AckLevel::Fsynced)
            .await
            .unwrap();
        let ack = log
            .append(idempotent(6, &["e", "d"]), AckLevel::Fsynced)
            .await
            .unwrap();
        assert_eq!((ack.base_offset, ack.last_offset), (4, 4));
        log.append(idempotent(8, &["f"]), AckLevel::Fsynced)
            .await
            .unwrap();
        let read = log.read(0, 1 << 20).await.unwrap();
        let values: Vec<String> = ringmq::batch::iter_framed(&read.concat())
            .flat_map(|(_, batch)| ringmq::batch::records::decode(batch).unwrap())
            .map(|stored| String::from_utf8(stored.record.value.unwrap().to_vec()).unwrap())
            .collect();
        assert_eq!(values, ["a", "b", "c", "d", "e", "f"]);
        log.close().await.unwrap();
    });
}
