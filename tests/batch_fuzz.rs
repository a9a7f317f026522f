//! A structured fuzzer of record batches: CRC-valid batches with hostile headers, record counts
//! and compressed payloads (bombs included, for every codec), appended to a real partition log
//! and sent to a real broker over TCP with the native client and as raw Kafka produce requests.
//!
//! Each append must be refused with the error its worst batch deserves, or be accepted and then
//! read back byte for byte (but the base offset the broker assigns), decode to the records its
//! header announces, and survive a reopen. Nothing may panic, and the log stays writable.
//!
//! The suite runs a bounded number of cases; for a longer run set `RINGMQ_BATCH_FUZZ_CASES`,
//! e.g. `RINGMQ_BATCH_FUZZ_CASES=5000 cargo test --release --test batch_fuzz`.

mod common;
#[path = "common/hostile.rs"]
mod hostile;

use bytes::{Bytes, BytesMut};
use common::TestBroker;
use hostile::{CODECS, RawBatch, encode_records, noise};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use ringmq::batch::{self, Compression, records};
use ringmq::broker::BrokerError;
use ringmq::client::Client;
use ringmq::protocol::{ErrorCode, FetchRequest};
use ringmq::runtime;
use ringmq::storage::{AckLevel, LogConfig, PartitionLog};

/// Decompressed bytes an append may inflate to in these tests; bombs are made to pass it.
const INFLATE_MAX: usize = 64 * 1024;
const BATCH_MAX: usize = 32 * 1024;
const BOMB_RECORD_BYTES: usize = 40_000;

fn cases(default: u32) -> u32 {
    std::env::var("RINGMQ_BATCH_FUZZ_CASES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// What a batch is made to be.
#[derive(Clone, Debug)]
enum Shape {
    Honest(Vec<u16>),
    /// The header claims a count other than the records held.
    Miscounted(Vec<u16>, i32),
    /// last_offset_delta disagrees with the count.
    BadDelta(Vec<u16>, i32),
    /// The records lose their last `cut` bytes before compression.
    Truncated(Vec<u16>, u16),
    /// Random bytes, claiming `count` records.
    Noise(u64, u16, i32),
    /// Records of 40 KB of zeros: past the inflate cap (or the batch size) together.
    Bomb(u8),
    /// Extra attribute bits and producer fields.
    Header(Vec<u16>, i16, (i64, i16, i32)),
}

#[derive(Clone, Debug)]
struct Case {
    codec: Compression,
    shape: Shape,
}

/// What the broker must answer to one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    Accept,
    Reject(ErrorCode),
    /// Noise that a codec without a magic number might take: any refusal, or a consistent accept.
    Any,
}

fn values(lengths: &[u16]) -> Vec<Vec<u8>> {
    lengths
        .iter()
        .enumerate()
        .map(|(n, length)| vec![b'a' + (n % 26) as u8; *length as usize])
        .collect()
}

impl Case {
    fn build(&self) -> BytesMut {
        let codec = self.codec;
        let raw = match &self.shape {
            Shape::Honest(lengths) => RawBatch::honest(codec, &values(lengths)),
            Shape::Miscounted(lengths, claimed) => {
                RawBatch::claiming(codec, &encode_records(&values(lengths)), *claimed)
            }
            Shape::BadDelta(lengths, delta) => {
                let mut raw = RawBatch::honest(codec, &values(lengths));
                raw.last_offset_delta = *delta;
                raw
            }
            Shape::Truncated(lengths, cut) => {
                let records = encode_records(&values(lengths));
                let kept = records.len().saturating_sub(usize::from(*cut).max(1));
                RawBatch::claiming(codec, &records[..kept], lengths.len() as i32)
            }
            Shape::Noise(seed, length, claimed) => {
                let mut raw = RawBatch::claiming(codec, &[], *claimed);
                raw.payload = noise(*seed, usize::from(*length));
                raw
            }
            Shape::Bomb(count) => RawBatch::honest(
                codec,
                &vec![vec![0u8; BOMB_RECORD_BYTES]; usize::from(*count)],
            ),
            Shape::Header(lengths, extra, (producer_id, epoch, sequence)) => {
                let mut raw = RawBatch::honest(codec, &values(lengths));
                raw.attributes |= extra;
                raw.producer_id = *producer_id;
                raw.producer_epoch = *epoch;
                raw.base_sequence = *sequence;
                raw
            }
        };
        raw.seal()
    }

    fn expect(&self) -> Expect {
        let invalid = Expect::Reject(ErrorCode::InvalidRecord);
        match &self.shape {
            Shape::Honest(_) => Expect::Accept,
            Shape::Miscounted(..) | Shape::BadDelta(..) | Shape::Truncated(..) => invalid,
            Shape::Noise(..) => match self.codec {
                Compression::None | Compression::Snappy => Expect::Any,
                _ => invalid,
            },
            Shape::Bomb(_) => Expect::Reject(ErrorCode::RecordTooLarge),
            Shape::Header(_, extra, (producer_id, _, sequence)) => {
                let unknown = extra & !0x7f != 0;
                let control = extra & 0x20 != 0;
                let transactional_alone = extra & 0x10 != 0 && *producer_id < 0;
                let no_sequence = *producer_id >= 0 && *sequence < 0;
                if unknown || control || transactional_alone || no_sequence {
                    invalid
                } else {
                    Expect::Accept
                }
            }
        }
    }
}

fn lengths() -> impl Strategy<Value = Vec<u16>> {
    proptest::collection::vec(0u16..300, 1..12)
}

fn shape() -> impl Strategy<Value = Shape> {
    let claimed = prop_oneof![Just(0), Just(-1), Just(i32::MAX), Just(i32::MIN), 1i32..20];
    prop_oneof![
        3 => lengths().prop_map(Shape::Honest),
        1 => (lengths(), claimed.clone())
            .prop_filter("a wrong count", |(l, c)| *c != l.len() as i32)
            .prop_map(|(l, c)| Shape::Miscounted(l, c)),
        1 => (lengths(), any::<i32>())
            .prop_filter("a wrong delta", |(l, d)| *d != l.len() as i32 - 1)
            .prop_map(|(l, d)| Shape::BadDelta(l, d)),
        1 => (lengths(), 1u16..50).prop_map(|(l, c)| Shape::Truncated(l, c)),
        1 => (any::<u64>(), 0u16..400, claimed).prop_map(|(s, l, c)| Shape::Noise(s, l, c)),
        1 => (2u8..6).prop_map(Shape::Bomb),
        1 => (
            lengths(),
            prop::sample::select(vec![0i16, 0x08, 0x40, 0x10, 0x20, 0x80, 0x4000]),
            prop::sample::select(vec![(-1i64, -1i16, -1i32), (-9, 3, 7), (5, 0, -1)]),
        )
            .prop_map(|(l, e, p)| Shape::Header(l, e, p)),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    (prop::sample::select(CODECS.to_vec()), shape())
        .prop_map(|(codec, shape)| Case { codec, shape })
}

fn appends() -> impl Strategy<Value = Vec<Vec<Case>>> {
    proptest::collection::vec(proptest::collection::vec(case(), 1..4), 1..10)
}

/// What an append may get: accepted (when every batch may be), or refused with one of `codes`.
#[derive(Debug)]
struct Verdict {
    may_accept: bool,
    codes: Vec<ErrorCode>,
}

fn expected(cases: &[Case]) -> Verdict {
    let mut verdict = Verdict {
        may_accept: true,
        codes: Vec::new(),
    };
    for case in cases {
        match case.expect() {
            Expect::Accept => {}
            Expect::Reject(code) => {
                verdict.may_accept = false;
                verdict.codes.push(code);
                break;
            }
            Expect::Any => verdict.codes.extend([
                ErrorCode::InvalidRecord,
                ErrorCode::RecordTooLarge,
                ErrorCode::CorruptBatch,
            ]),
        }
    }
    verdict
}

/// The model: every accepted batch as sent, in order.
#[derive(Default)]
struct Accepted {
    batches: Vec<Bytes>,
    next_offset: u64,
}

impl Accepted {
    fn push(&mut self, base_offset: u64, sent: &BytesMut) -> Result<(), TestCaseError> {
        prop_assert_eq!(base_offset, self.next_offset, "offsets are contiguous");
        for (_, framed) in batch::iter_framed(sent) {
            let info = batch::validate(framed, batch::Limits::UNLIMITED).unwrap();
            self.next_offset += info.records_count as u64;
            self.batches.push(Bytes::copy_from_slice(framed));
        }
        Ok(())
    }

    /// Stored batches equal the sent ones but for the assigned base offsets, which run on.
    fn check(&self, stored: &[Bytes]) -> Result<(), TestCaseError> {
        prop_assert_eq!(stored.len(), self.batches.len());
        let mut offset = 0i64;
        for (stored, sent) in stored.iter().zip(&self.batches) {
            prop_assert_eq!(&stored[8..], &sent[8..]);
            let decoded =
                records::decode(stored).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for record in decoded {
                prop_assert_eq!(record.offset, offset);
                offset += 1;
            }
        }
        prop_assert_eq!(offset as u64, self.next_offset);
        Ok(())
    }
}

async fn stored_batches(log: &PartitionLog) -> Vec<Bytes> {
    let mut batches = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log.read(offset, 1 << 20).await.unwrap();
        assert!(!read.is_empty());
        let bytes = read.concat();
        for (_, framed) in batch::iter_framed(&bytes) {
            let info = batch::validate(framed, batch::Limits::UNLIMITED).unwrap();
            if info.last_offset as u64 >= offset {
                offset = info.last_offset as u64 + 1;
                batches.push(Bytes::copy_from_slice(framed));
            }
        }
    }
    batches
}

fn log_config(segment_offsets_max: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max: 8 * 1024,
        index_interval_bytes: 256,
        batch_bytes_max: BATCH_MAX,
        batch_decompressed_bytes_max: INFLATE_MAX,
        segment_offsets_max,
        ..LogConfig::default()
    }
}

fn run_on_a_log(
    appends: &[Vec<Case>],
    segment_offsets_max: u64,
    fsynced: bool,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let config = log_config(segment_offsets_max);
    let level = if fsynced {
        AckLevel::Fsynced
    } else {
        AckLevel::Written
    };
    let mut model = Accepted::default();
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config.clone(), Vec::new())
            .await
            .unwrap();
        for cases in appends {
            let mut sent = BytesMut::new();
            for case in cases {
                sent.extend_from_slice(&case.build());
            }
            let verdict = expected(cases);
            match log.append(sent.clone(), level).await {
                Ok(ack) => {
                    prop_assert!(verdict.may_accept, "accepted {:?}", cases);
                    model.push(ack.base_offset, &sent)?;
                }
                Err(error) => {
                    let code =
                        ringmq::server::errors::to_native(BrokerError::from(error.clone())).code;
                    prop_assert!(verdict.codes.contains(&code), "{} for {:?}", error, cases);
                }
            }
        }
        model.check(&stored_batches(&log).await)?;
        log.close().await.unwrap();
        Ok::<(), TestCaseError>(())
    })?;
    runtime::block_on(async {
        let log = PartitionLog::open(dir.path(), config, Vec::new())
            .await
            .unwrap();
        prop_assert_eq!(
            log.high_watermark(),
            model.next_offset,
            "recovery keeps every ack"
        );
        model.check(&stored_batches(&log).await)?;
        let honest = Case {
            codec: Compression::Zstd,
            shape: Shape::Honest(vec![5, 6]),
        };
        let ack = log.append(honest.build(), AckLevel::Fsynced).await.unwrap();
        prop_assert_eq!(
            ack.base_offset,
            model.next_offset,
            "still writable after reopen"
        );
        log.close().await.unwrap();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(48), ..ProptestConfig::default() })]

    #[test]
    fn hostile_batches_on_a_log_are_refused_rightly_or_stored_whole(
        appends in appends(),
        segment_offsets_max in prop::sample::select(vec![3u64, 40, i32::MAX as u64]),
        fsynced in any::<bool>(),
    ) {
        run_on_a_log(&appends, segment_offsets_max, fsynced)?;
    }
}

/// Kafka's error code for each of ours that a produce can get.
fn kafka_code(code: ErrorCode) -> i16 {
    match code {
        ErrorCode::InvalidRecord => 87,
        ErrorCode::RecordTooLarge => 10,
        ErrorCode::CorruptBatch => 2,
        other => panic!("no produce refusal expected as {other:?}"),
    }
}

/// Every batch of partition 0 of `topic`, fetched batch by batch over the native protocol.
async fn fetched_batches(client: &Client, topic: &str) -> Vec<Bytes> {
    let mut batches = Vec::new();
    let mut offset = 0;
    loop {
        let request = FetchRequest {
            topic: topic.into(),
            partition: 0,
            offset,
            max_bytes: 1 << 20,
            min_bytes: 0,
            max_wait_ms: 0,
        };
        let response = client.fetch(request).await.unwrap();
        if offset >= response.high_watermark {
            return batches;
        }
        for chunk in response.records {
            for (_, framed) in batch::iter_framed(&chunk) {
                let info = batch::validate(framed, batch::Limits::UNLIMITED).unwrap();
                if info.last_offset as u64 >= offset {
                    offset = info.last_offset as u64 + 1;
                    batches.push(Bytes::copy_from_slice(framed));
                }
            }
        }
    }
}

/// Sends one append over both protocols and checks each answer against the verdict.
fn produce_both_ways(
    address: &str,
    kafka: &mut std::net::TcpStream,
    cases: &[Case],
    models: &mut [Accepted; 2],
) -> Result<(), TestCaseError> {
    let mut sent = BytesMut::new();
    for case in cases {
        sent.extend_from_slice(&case.build());
    }
    let verdict = expected(cases);
    // A client lives on the runtime that connected it: one per append, each on its own.
    let native = runtime::block_on(async {
        let client = Client::connect(address).await.unwrap();
        client
            .produce("fuzz-native", Some(0), b"", AckLevel::Fsynced, sent.clone())
            .await
    });
    match native {
        Ok(ack) => {
            prop_assert!(verdict.may_accept, "accepted {:?}", cases);
            models[0].push(ack.base_offset, &sent)?;
        }
        Err(error) => {
            let code = error.code();
            prop_assert!(
                code.is_some_and(|code| verdict.codes.contains(&code)),
                "{} for {:?}",
                error,
                cases
            );
        }
    }
    let (code, base_offset) = hostile::kafka_produce(kafka, "fuzz-kafka", &sent);
    if code == 0 {
        prop_assert!(verdict.may_accept, "kafka accepted {:?}", cases);
        models[1].push(base_offset as u64, &sent)?;
    } else {
        let wanted: Vec<i16> = verdict.codes.iter().map(|code| kafka_code(*code)).collect();
        prop_assert!(
            wanted.contains(&code),
            "kafka code {} for {:?}",
            code,
            cases
        );
    }
    Ok(())
}

#[test]
fn hostile_batches_over_tcp_get_the_right_error_in_both_protocols_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = TestBroker::start(dir.path(), 2);
    let kafka_address = broker.handle.as_ref().unwrap().kafka_address.unwrap();
    let address = broker.address();
    let configs = [
        ("batch_bytes_max", BATCH_MAX.to_string()),
        ("batch_decompressed_bytes_max", INFLATE_MAX.to_string()),
        ("segment_bytes_max", "8192".to_string()),
        ("segment_offsets_max", "40".to_string()),
    ];
    let configs: Vec<(&str, &str)> = configs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        for topic in ["fuzz-native", "fuzz-kafka"] {
            client.create_topic(topic, 1, &configs).await.unwrap();
        }
    });
    let kafka = std::net::TcpStream::connect(kafka_address).unwrap();
    kafka
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let state = std::cell::RefCell::new((kafka, [Accepted::default(), Accepted::default()]));
    // One broker serves every case, so a shrunk rerun would meet a changed broker: report the
    // failing case as it was found instead.
    let mut runner = TestRunner::new(Config {
        cases: cases(8),
        failure_persistence: None,
        max_shrink_iters: 0,
        ..Config::default()
    });
    runner
        .run(&appends(), |appends| {
            let (kafka, models) = &mut *state.borrow_mut();
            for cases in &appends {
                produce_both_ways(&address, kafka, cases, models)?;
            }
            Ok(())
        })
        .unwrap();
    let (_, models) = state.into_inner();
    broker.restart();
    runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        for (topic, model) in ["fuzz-native", "fuzz-kafka"].iter().zip(&models) {
            model.check(&fetched_batches(&client, topic).await).unwrap();
        }
    });
}
