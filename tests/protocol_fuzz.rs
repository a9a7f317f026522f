//! Random bytes fed to every decoder of the native protocol never panic: they decode or they are
//! refused with an error. Then a structured fuzzer: every native request, encoded, given hostile
//! counts, lengths, versions and truncations, to the decoder and to a real server over TCP, which
//! must go on serving. `PROPTEST_CASES=N` runs N cases of each (README, testing).

mod common;

use common::overwrite;

use bytes::BytesMut;
use proptest::prelude::*;
use ringmq::batch;
use ringmq::protocol::Request;
use ringmq::protocol::codec::{Reader, RequestHeader, frame_status};
use ringmq::protocol::messages::{ApiKey, SUPPORTED_APIS, decode_response};
use zerocopy::FromBytes;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(2000), ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = frame_status(&bytes, 1 << 20);
        let _ = RequestHeader::read_from_prefix(&bytes);
        for (api, _, _) in SUPPORTED_APIS {
            let _ = Request::decode(*api, Reader::new(BytesMut::from(&bytes[..])));
            let _ = decode_response(*api, Reader::new(BytesMut::from(&bytes[..])));
        }
        let _ = ApiKey::from_u16(u16::from_be_bytes([bytes.first().copied().unwrap_or(0), bytes.get(1).copied().unwrap_or(0)]));
        let _ = batch::validate(&bytes, batch::Limits::UNLIMITED);
        let _ = batch::records::decode(&bytes);
    }

    #[test]
    fn a_valid_batch_with_any_byte_changed_is_refused_or_unchanged_in_meaning(position in 0usize..200, flip in 1u8..=255) {
        let mut builder = batch::BatchBuilder::new(batch::Compression::None);
        builder.push(batch::Record::new(5, Some(b"key"), Some(&[9u8; 150])));
        let mut bytes = builder.build().to_vec();
        let position = position % bytes.len();
        bytes[position] ^= flip;
        // Bytes 0..8 (base offset) and 12..16 (leader epoch) are outside the CRC by design.
        let outside_crc = position < 8 || (12..16).contains(&position);
        prop_assert_eq!(batch::validate(&bytes, batch::Limits::UNLIMITED).is_ok(), outside_crc);
    }
}

// ---- structured native requests: hostile counts, lengths, versions, truncations --------------

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use proptest::test_runner::{Config, TestRunner};
use ringmq::protocol::codec::{REQUEST_HEADER_BYTES, ResponseHeader};
use ringmq::protocol::queues::{QueueRequest, ReceiveRequest, SettleAction, SettleRequest};
use ringmq::protocol::replies::{ReplyMode, ReplyRequest};
use ringmq::protocol::routing::{
    BindingSpec, ExchangeType, MatchMode, PublishRequest, RoutingRequest,
};
use ringmq::protocol::{ErrorCode, FetchRequest, OffsetSpec, ProduceRequest};
use ringmq::storage::AckLevel;

/// Cases per property: `PROPTEST_CASES` when set, else `default` (a few seconds in all).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// A request of `api` with something in every array, so counts are there to be made hostile.
fn sample(api: ApiKey) -> Request {
    let text = |s: &str| s.to_string();
    match api {
        ApiKey::ApiVersions => Request::ApiVersions,
        ApiKey::CreateTopic => Request::CreateTopic {
            name: text("fuzz-created"),
            partitions: 1,
            configs: vec![(text("retention.ms"), text("60000"))],
        },
        ApiKey::DeleteTopic => Request::DeleteTopic {
            name: text("nothing"),
        },
        ApiKey::AddPartitions => Request::AddPartitions {
            name: text("fuzz"),
            partitions: 3,
        },
        ApiKey::AlterTopicConfig => Request::AlterTopicConfig {
            name: text("fuzz"),
            set: vec![(text("retention_ms"), text("60000"))],
            reset: vec![text("segment_bytes")],
        },
        ApiKey::SaslHandshake => Request::SaslHandshake {
            mechanism: text("SCRAM-SHA-256"),
        },
        ApiKey::SaslAuthenticate => Request::SaslAuthenticate {
            message: bytes::Bytes::from_static(b"n,,n=fuzz,r=nonce"),
        },
        ApiKey::DeleteRecords => Request::DeleteRecords {
            topic: text("fuzz"),
            partition: 0,
            before: -1,
        },
        ApiKey::Metadata => Request::Metadata {
            topics: vec![text("fuzz"), text("other")],
        },
        ApiKey::Produce => Request::Produce(ProduceRequest {
            topic: text("fuzz"),
            partition: 0,
            key: Bytes::from_static(b"key"),
            acks: AckLevel::Written,
            records: BytesMut::from(&batch_bytes(b"fuzz-value")[..]),
        }),
        ApiKey::Fetch => Request::Fetch(FetchRequest {
            topic: text("fuzz"),
            partition: 0,
            offset: 0,
            max_bytes: 1 << 20,
            min_bytes: 1,
            max_wait_ms: 0,
        }),
        ApiKey::ListOffsets => Request::ListOffsets {
            topic: text("fuzz"),
            partition: 0,
            spec: OffsetSpec::Latest,
        },
        ApiKey::JoinGroup => Request::JoinGroup {
            group: text("g"),
            member_id: String::new(),
            topics: vec![text("fuzz")],
            session_timeout_ms: 6000,
            strategy: text("range"),
        },
        ApiKey::Heartbeat => Request::Heartbeat {
            group: text("g"),
            member_id: text("m"),
            generation: 1,
        },
        ApiKey::LeaveGroup => Request::LeaveGroup {
            group: text("g"),
            member_id: text("m"),
        },
        ApiKey::CommitOffsets => Request::CommitOffsets {
            group: text("g"),
            member_id: String::new(),
            generation: 0,
            offsets: vec![(text("fuzz"), 0, 1)],
        },
        ApiKey::FetchOffsets => Request::FetchOffsets {
            group: text("g"),
            partitions: vec![(text("fuzz"), 0)],
        },
        ApiKey::ListGroups => Request::ListGroups,
        ApiKey::DescribeGroup => Request::DescribeGroup { group: text("g") },
        ApiKey::DeleteGroup => Request::DeleteGroup { group: text("g") },
        ApiKey::CreateQueueGroup => Request::Queue(QueueRequest::CreateQueueGroup {
            topic: text("fuzz"),
            group: text("q"),
            configs: vec![(text("max_deliveries"), text("3"))],
        }),
        ApiKey::DescribeQueueGroup => Request::Queue(QueueRequest::DescribeQueueGroup {
            topic: text("fuzz"),
            group: text("q"),
        }),
        ApiKey::ListQueueGroups => Request::Queue(QueueRequest::ListQueueGroups),
        ApiKey::DeleteQueueGroup => Request::Queue(QueueRequest::DeleteQueueGroup {
            topic: text("fuzz"),
            group: text("nothing"),
        }),
        ApiKey::PurgeQueueGroup => Request::Queue(QueueRequest::PurgeQueueGroup {
            topic: text("fuzz"),
            group: text("q"),
        }),
        ApiKey::Receive => Request::Queue(QueueRequest::Receive(ReceiveRequest {
            topic: text("fuzz"),
            group: text("q"),
            consumer: text("c"),
            max_messages: 2,
            max_bytes: 0,
            wait_ms: 0,
            visibility_timeout_ms: 0,
            create: true,
        })),
        ApiKey::Settle => Request::Queue(QueueRequest::Settle(SettleRequest {
            topic: text("fuzz"),
            group: text("q"),
            consumer: text("c"),
            action: SettleAction::Release { delay_ms: 0 },
            ranges: vec![(0, 0, 0)],
        })),
        ApiKey::CreateExchange
        | ApiKey::DeleteExchange
        | ApiKey::Bind
        | ApiKey::Unbind
        | ApiKey::ListExchanges
        | ApiKey::Publish => Request::Routing(routing_sample(api)),
        ApiKey::DeclareReplyTo => Request::Replies(ReplyRequest::DeclareReplyTo {
            mode: ReplyMode::Temporary,
        }),
        ApiKey::SendRequest => Request::Replies(ReplyRequest::SendRequest {
            destination: text("fuzz"),
            reply_to: text("ringmq.reply-to.0.1.0123456789abcdef"),
            correlation_id: text("c-1"),
            timeout_ms: 1000,
            acks: AckLevel::Written,
            records: BytesMut::from(&batch_bytes(b"question")[..]),
        }),
        ApiKey::Reply => Request::Replies(ReplyRequest::Reply {
            reply_to: text("ringmq.reply-to.0.1.0123456789abcdef"),
            correlation_id: text("c-1"),
            acks: AckLevel::Written,
            records: BytesMut::from(&batch_bytes(b"answer")[..]),
        }),
        ApiKey::SendRequestViaExchange => Request::Replies(ReplyRequest::SendRequestViaExchange {
            exchange: text("fuzz-exchange"),
            routing_key: text("a.b.c"),
            reply_to: text("ringmq.reply-to.0.1.0123456789abcdef"),
            correlation_id: text("c-2"),
            timeout_ms: 1000,
            acks: AckLevel::Written,
            records: BytesMut::from(&batch_bytes(b"question")[..]),
        }),
        ApiKey::ReceiveReplies => Request::Replies(ReplyRequest::ReceiveReplies {
            max_replies: 16,
            max_wait_ms: 0,
        }),
    }
}

/// A routing request of `api` with something in every array.
fn routing_sample(api: ApiKey) -> RoutingRequest {
    let text = |s: &str| s.to_string();
    let binding = BindingSpec {
        to_exchange: false,
        destination: text("fuzz"),
        key: text("order.#"),
        header_match: MatchMode::Any,
        headers: vec![(text("region"), Some(text("eu"))), (text("kind"), None)],
    };
    match api {
        ApiKey::CreateExchange => RoutingRequest::CreateExchange {
            name: text("fuzz-x"),
            kind: ExchangeType::Topic,
            alternate_exchange: text("fuzz-alt"),
        },
        ApiKey::DeleteExchange => RoutingRequest::DeleteExchange {
            name: text("nothing"),
        },
        ApiKey::Bind => RoutingRequest::Bind {
            exchange: text("fuzz-x"),
            binding,
        },
        ApiKey::Unbind => RoutingRequest::Unbind {
            exchange: text("fuzz-x"),
            binding,
        },
        ApiKey::ListExchanges => RoutingRequest::ListExchanges {
            names: vec![text("fuzz-x"), text("other")],
        },
        _ => RoutingRequest::Publish(PublishRequest {
            exchange: text("fuzz-x"),
            routing_key: text("order.eu.new"),
            mandatory: true,
            acks: AckLevel::Written,
            records: BytesMut::from(&batch_bytes(b"fuzz-value")[..]),
        }),
    }
}

fn batch_bytes(value: &[u8]) -> Bytes {
    let mut builder = batch::BatchBuilder::new(batch::Compression::None);
    builder.push(batch::Record::new(1, Some(b"k"), Some(value)));
    builder.build()
}

/// The frame without its length prefix: header, client id, body.
fn unframed(request: Request) -> Vec<u8> {
    request.encode(5, "fuzz").concat()[4..].to_vec()
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// What the connection does with a frame, up to decoding: header, client id, api, version, body.
fn decode_like_the_server(frame: &[u8]) -> Result<Request, ErrorCode> {
    let (header, _) =
        RequestHeader::read_from_prefix(frame).map_err(|_| ErrorCode::MalformedRequest)?;
    let start = REQUEST_HEADER_BYTES + header.client_id_length.get() as usize;
    let body = frame.get(start..).ok_or(ErrorCode::MalformedRequest)?;
    let api = ApiKey::from_u16(header.api_key.get()).ok_or(ErrorCode::UnknownApi)?;
    Request::decode(api, Reader::new(BytesMut::from(body))).map_err(|error| error.code)
}

#[derive(Clone, Debug)]
enum Mutation {
    U32 {
        at: usize,
        value: u32,
    },
    U16 {
        at: usize,
        value: u16,
    },
    Byte {
        at: usize,
        value: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Any api version in the header, supported or not.
    Version(u16),
    /// Any api key in the header, known or not.
    ApiKey(u16),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let u32s = prop_oneof![
        Just(u32::MAX),
        Just(0x7fff_ffff),
        Just(0x8000_0000),
        Just(0x0100_0000),
        any::<u32>()
    ];
    let u16s = prop_oneof![Just(u16::MAX), Just(0x8000), Just(1), any::<u16>()];
    let at = 0usize..1024;
    prop_oneof![
        3 => (at.clone(), u32s).prop_map(|(at, value)| Mutation::U32 { at, value }),
        2 => (at.clone(), u16s).prop_map(|(at, value)| Mutation::U16 { at, value }),
        1 => (at.clone(), any::<u8>()).prop_map(|(at, value)| Mutation::Byte { at, value }),
        1 => at.clone().prop_map(|at| Mutation::Truncate { at }),
        1 => (at, proptest::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        1 => any::<u16>().prop_map(Mutation::Version),
        1 => any::<u16>().prop_map(Mutation::ApiKey),
    ]
}

fn apply(request: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::U32 { at, value } => overwrite(request, *at, &value.to_be_bytes()),
        Mutation::U16 { at, value } => overwrite(request, *at, &value.to_be_bytes()),
        Mutation::Byte { at, value } => overwrite(request, *at, &[*value]),
        Mutation::Truncate { at } => request.truncate(at % (request.len() + 1)),
        Mutation::Insert { at, bytes } => {
            let at = at % (request.len() + 1);
            request.splice(at..at, bytes.iter().copied());
        }
        Mutation::Version(version) => overwrite(request, 2, &version.to_be_bytes()),
        Mutation::ApiKey(key) => overwrite(request, 0, &key.to_be_bytes()),
    }
}

fn hostile_request() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SUPPORTED_APIS.len(),
        proptest::collection::vec(mutation(), 1..4),
    )
        .prop_map(|(index, mutations)| {
            let mut request = unframed(sample(SUPPORTED_APIS[index].0));
            for mutation in &mutations {
                apply(&mut request, mutation);
            }
            request
        })
}

fn connect(address: &str) -> TcpStream {
    let stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads one response frame: (correlation id, error code).
fn read_response(stream: &mut TcpStream) -> (u32, u16) {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
    stream.read_exact(&mut body).unwrap();
    let (header, _) = ResponseHeader::read_from_prefix(&body).unwrap();
    (header.correlation_id.get(), header.error_code.get())
}

/// A fresh connection gets a well-formed ApiVersions answered without error.
fn assert_serving(address: &str) {
    let mut stream = connect(address);
    stream
        .write_all(&Request::ApiVersions.encode(5, "check").concat())
        .unwrap();
    assert_eq!(read_response(&mut stream), (5, 0));
}

#[test]
fn every_native_sample_decodes_unmutated() {
    for (api, _, _) in SUPPORTED_APIS {
        let decoded = decode_like_the_server(&unframed(sample(*api)));
        assert_eq!(decoded.map(|request| request.api_key()), Ok(*api));
    }
}

#[test]
fn hostile_native_requests_never_panic_the_decoder() {
    let mut runner = TestRunner::new(Config::with_cases(cases(3000)));
    runner
        .run(&hostile_request(), |request| {
            let _ = decode_like_the_server(&request);
            Ok(())
        })
        .unwrap();
}

#[test]
fn hostile_native_requests_over_tcp_leave_the_broker_serving() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let mut runner = TestRunner::new(Config::with_cases(cases(150)));
    runner
        .run(&hostile_request(), |request| {
            let mut stream = connect(&address);
            stream
                .set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let _ = stream.write_all(&framed(&request));
            // End of input: the broker answers what it accepted, then closes.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            assert_serving(&address);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_native_metadata_with_2_pow_31_topics_is_malformed_and_closes_only_its_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let mut request = unframed(Request::Metadata { topics: vec![] });
    let count_at = request.len() - 4;
    request[count_at..].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let mut stream = connect(&address);
    stream.write_all(&framed(&request)).unwrap();
    assert_eq!(
        read_response(&mut stream),
        (5, ErrorCode::MalformedRequest as u16)
    );
    let mut rest = Vec::new();
    assert_eq!(stream.read_to_end(&mut rest).unwrap(), 0, "then closed");
    // A version the broker does not speak is refused, and that connection stays usable.
    let mut other = connect(&address);
    let mut request = unframed(Request::ApiVersions);
    request[2..4].copy_from_slice(&7u16.to_be_bytes());
    other.write_all(&framed(&request)).unwrap();
    assert_eq!(
        read_response(&mut other),
        (5, ErrorCode::UnsupportedVersion as u16)
    );
    other
        .write_all(&Request::ApiVersions.encode(6, "again").concat())
        .unwrap();
    assert_eq!(read_response(&mut other), (6, 0));
    assert_serving(&address);
}
