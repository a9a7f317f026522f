//! Kafka's incremental fetch sessions (KIP-227) over one connection, with requests encoded by
//! hand (librdkafka, kafka-python, aiokafka and kafkajs do not use sessions; Kafka's Java
//! client does): a full fetch opens a session; incremental fetches carry only changes and are
//! answered only with partitions that have something new; forgotten partitions drop out; wrong
//! epochs and unknown ids get Kafka's codes; the cache's bound holds.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use common::TestBroker;
use common::kafka_wire::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Decodable;

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const FETCH_VERSION: i16 = 12;

/// One connection, as a consumer keeps one per broker (sessions live on its shard).
struct Connection {
    stream: TcpStream,
    correlation_id: i32,
}

impl Connection {
    fn open(address: &str) -> Connection {
        let stream = connect(address);
        // A full fetch of 4,000 partitions took over connect()'s 10 s on a machine loaded by
        // parallel builds (a CI rehearsal): a slow answer is not what these tests check.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .unwrap();
        Connection {
            stream,
            correlation_id: 0,
        }
    }

    fn call(&mut self, api: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        self.correlation_id += 1;
        let frame = framed(&encode(api, version, self.correlation_id, &request));
        self.stream.write_all(&frame).unwrap();
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).unwrap();
        let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let header =
            ResponseHeader::decode(&mut body, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        ResponseKind::decode(api, &mut body, version).unwrap()
    }

    fn fetch(&mut self, request: FetchRequest) -> FetchResponse {
        match self.call(ApiKey::Fetch, FETCH_VERSION, RequestKind::Fetch(request)) {
            ResponseKind::Fetch(response) => response,
            other => panic!("Fetch answered {other:?}"),
        }
    }

    fn produce(&mut self, name: &'static str, partition: i32, value: &[u8]) {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(5000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic(name))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(batch(value))),
                    ]),
            ]);
        match self.call(ApiKey::Produce, 8, RequestKind::Produce(request)) {
            ResponseKind::Produce(response) => {
                assert_eq!(response.responses[0].partition_responses[0].error_code, 0)
            }
            other => panic!("Produce answered {other:?}"),
        }
    }
}

/// A fetch of `partitions` ((topic, partition, offset)) in session `id` at `epoch`.
fn request(id: i32, epoch: i32, partitions: &[(&'static str, i32, i64)]) -> FetchRequest {
    let mut topics: Vec<FetchTopic> = Vec::new();
    for &(name, partition, offset) in partitions {
        let entry = FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
            .with_partition_max_bytes(1 << 20);
        match topics.last_mut() {
            Some(last) if last.topic == topic(name) => last.partitions.push(entry),
            _ => topics.push(
                FetchTopic::default()
                    .with_topic(topic(name))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
}

/// The answer's partitions: (topic, partition, high watermark, has records).
fn answered(response: &FetchResponse) -> Vec<(String, i32, i64, bool)> {
    let mut all = Vec::new();
    for topic in &response.responses {
        for data in &topic.partitions {
            assert_eq!(data.error_code, 0, "{topic:?}");
            let records = data.records.as_ref().is_some_and(|r| !r.is_empty());
            all.push((
                topic.topic.to_string(),
                data.partition_index,
                data.high_watermark,
                records,
            ));
        }
    }
    all
}

#[test]
fn an_incremental_fetch_carries_and_returns_only_what_changed() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    create_topic(&address, "s", 8);
    create_topic(&address, "t", 2);
    let mut connection = Connection::open(&address);
    for partition in 0..8 {
        connection.produce("s", partition, b"first");
    }
    let everything: Vec<(&'static str, i32, i64)> = (0..8)
        .map(|p| ("s", p, 0))
        .chain((0..2).map(|p| ("t", p, 0)))
        .collect();

    // A full fetch with epoch 0 opens a session and answers every partition.
    let full = connection.fetch(request(0, 0, &everything));
    assert_eq!(full.error_code, 0);
    let id = full.session_id;
    assert!(id > 0, "a session was opened");
    let first = answered(&full);
    assert_eq!(first.len(), 10);
    assert_eq!(
        first.iter().filter(|(_, _, _, records)| *records).count(),
        8
    );

    // The consumer moved past its records: it sends only the new positions; nothing is new.
    let moved: Vec<(&'static str, i32, i64)> = (0..8).map(|p| ("s", p, 1)).collect();
    let quiet = connection.fetch(request(id, 1, &moved));
    assert_eq!((quiet.error_code, quiet.session_id), (0, id));
    assert_eq!(answered(&quiet), vec![]);

    // A record arrives on s/3: an incremental fetch naming nothing gets exactly that partition.
    connection.produce("s", 3, b"second");
    let one = connection.fetch(request(id, 2, &[]));
    assert_eq!(answered(&one), vec![("s".to_string(), 3, 2, true)]);

    // t/1 is forgotten in the same fetch that a record lands on it: it is not reported.
    connection.produce("t", 1, b"unwanted");
    let mut forget = request(id, 3, &[("s", 3, 2)]);
    forget.forgotten_topics_data = vec![
        ForgottenTopic::default()
            .with_topic(topic("t"))
            .with_partitions(vec![1]),
    ];
    assert_eq!(answered(&connection.fetch(forget)), vec![]);
    // ...but t/0, still in the session, is reported when it gets data.
    connection.produce("t", 0, b"wanted");
    assert_eq!(
        answered(&connection.fetch(request(id, 4, &[]))),
        vec![("t".to_string(), 0, 1, true)]
    );

    // A repeated epoch and an unknown id get Kafka's codes and nothing else.
    let stale = connection.fetch(request(id, 4, &[]));
    assert_eq!(
        (stale.error_code, stale.session_id, stale.responses.len()),
        (INVALID_FETCH_SESSION_EPOCH, 0, 0)
    );
    let unknown = connection.fetch(request(id.wrapping_add(1_000_000), 1, &[]));
    assert_eq!(unknown.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // The session survived both refusals, at the epoch it expects.
    assert_eq!(connection.fetch(request(id, 5, &[])).error_code, 0);

    // Epoch -1 closes it: a full answer without a session, and the id is gone.
    let closing = connection.fetch(request(id, -1, &everything));
    assert_eq!((closing.error_code, closing.session_id), (0, 0));
    assert_eq!(answered(&closing).len(), 10);
    let gone = connection.fetch(request(id, 6, &[]));
    assert_eq!(gone.error_code, FETCH_SESSION_ID_NOT_FOUND);
}

#[test]
fn a_full_cache_serves_new_consumers_in_full_without_evicting_active_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: "127.0.0.1:0".into(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 1,
        kafka_fetch_sessions_max: 1,
        kafka_fetch_session_partitions_max: 4,
        ..Default::default()
    });
    let address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    let address = address.to_string();
    create_topic(&address, "c", 8);
    let mut first = Connection::open(&address);
    let mut second = Connection::open(&address);
    let two: Vec<(&'static str, i32, i64)> = (0..2).map(|p| ("c", p, 0)).collect();
    let id = first.fetch(request(0, 0, &two)).session_id;
    assert!(id > 0);
    // The only slot is taken and in use: the second consumer fetches in full, without a session.
    let refused = second.fetch(request(0, 0, &two));
    assert_eq!((refused.error_code, refused.session_id), (0, 0));
    assert_eq!(answered(&refused).len(), 2);
    assert_eq!(first.fetch(request(id, 1, &[])).error_code, 0);
    // Growing the session past the shard's partition bound closes it: the client starts over.
    let grow: Vec<(&'static str, i32, i64)> = (2..5).map(|p| ("c", p, 0)).collect();
    let grown = first.fetch(request(id, 2, &grow));
    assert_eq!(grown.error_code, FETCH_SESSION_ID_NOT_FOUND);
    // A full fetch of more partitions than the bound is served, without a session.
    let all: Vec<(&'static str, i32, i64)> = (0..8).map(|p| ("c", p, 0)).collect();
    let whole = first.fetch(request(0, 0, &all));
    assert_eq!((whole.error_code, whole.session_id), (0, 0));
    assert_eq!(answered(&whole).len(), 8);
    // The slot is free again for a session that fits.
    assert!(second.fetch(request(0, 0, &two)).session_id > 0);
}

/// The case sessions are for: a consumer of 4,000 partitions, three of which get a record. The
/// incremental fetch names nothing and is answered with exactly those three; the full fetch
/// names and answers all 4,000.
#[test]
fn a_consumer_of_four_thousand_partitions_gets_only_the_three_that_changed() {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    const TOPICS: [&str; 4] = ["w0", "w1", "w2", "w3"];
    let dir = tempfile::tempdir().unwrap();
    let (_broker, address) = kafka_broker(dir.path());
    let mut connection = Connection::open(&address);
    let creations = TOPICS
        .iter()
        .map(|name| {
            CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(1000)
                .with_replication_factor(1)
        })
        .collect();
    let creation = CreateTopicsRequest::default()
        .with_timeout_ms(60_000)
        .with_topics(creations);
    match connection.call(ApiKey::CreateTopics, 5, RequestKind::CreateTopics(creation)) {
        ResponseKind::CreateTopics(response) => {
            assert!(
                response.topics.iter().all(|t| t.error_code == 0),
                "{response:?}"
            )
        }
        other => panic!("CreateTopics answered {other:?}"),
    }
    let everything: Vec<(&'static str, i32, i64)> = TOPICS
        .iter()
        .flat_map(|name| (0..1000).map(move |p| (*name, p, 0)))
        .collect();
    let full = connection.fetch(request(0, 0, &everything));
    assert_eq!(full.error_code, 0);
    assert_eq!(answered(&full).len(), 4000);
    let id = full.session_id;
    assert!(id > 0);
    for (name, partition) in [("w0", 17), ("w2", 999), ("w3", 0)] {
        connection.produce(name, partition, b"news");
    }
    let changed = answered(&connection.fetch(request(id, 1, &[])));
    assert_eq!(
        changed,
        vec![
            ("w0".to_string(), 17, 1, true),
            ("w2".to_string(), 999, 1, true),
            ("w3".to_string(), 0, 1, true),
        ]
    );
    // Nothing new since: an empty answer, not 4,000 partitions.
    let consumed = [("w0", 17, 1), ("w2", 999, 1), ("w3", 0, 1)];
    assert_eq!(
        answered(&connection.fetch(request(id, 2, &consumed))),
        vec![]
    );
}
