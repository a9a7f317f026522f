//! `ringmq produce TOPIC`: records from stdin, split at a delimiter (newline by default, -D,
//! -0), optionally "key<SEP>value" (-K), or whole files (--file), with fixed headers.
//!
//! It streams: stdin is read a chunk at a time, at most `WINDOW_BATCHES` batches are
//! unacknowledged and at most `PENDING_RECORDS_MAX` records await their acknowledgement, so
//! memory stays bounded whatever the input's size. Each record that fails is reported on stderr
//! by its number as soon as its acknowledgement fails; a record over the size limit is refused
//! alone, before sending. Bytes are bytes: invalid UTF-8 is sent as it is. Exits 0 only once
//! every record is acknowledged at the chosen ack level, 1 if any failed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use futures_channel::mpsc;
use futures_util::StreamExt;

use super::escape;
use super::input::{Item, Splitter};
use super::topic::connect_to;
use super::{BrokerAddress, run_client};
use crate::batch::{Compression, Header, Record};
use crate::client::producer::Delivery;
use crate::client::queue::MessageOptions;
use crate::client::{ClientError, Partitioner, Producer, ProducerConfig, record_body_bytes_max};
use crate::protocol::ErrorCode;
use crate::runtime;
use crate::storage::AckLevel;
use crate::storage::log::now_ms;

/// Batches sent and not yet acknowledged, at most.
const WINDOW_BATCHES: usize = 8;
/// Records sent whose acknowledgement has not been checked yet, at most.
const PENDING_RECORDS_MAX: usize = 16 * 1024;
/// Records taken per trip to the blocking stdin reader, at most.
const RECORDS_PER_READ: usize = 4096;
/// The limit when neither the flag nor the topic names one.
const RECORD_BYTES_MAX_DEFAULT: usize = 1 << 20;

#[derive(clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    address: BrokerAddress,
    /// The topic (omitted with --exchange).
    #[arg(required_unless_present = "exchange")]
    topic: Option<String>,
    /// Publish through this exchange instead of to a topic: up to 1000 records a publish, each
    /// acknowledged (every copy of it) before the next.
    #[arg(long, conflicts_with_all = ["topic", "partition", "files"])]
    exchange: Option<String>,
    /// The routing key of every record published through --exchange.
    #[arg(long, default_value = "", requires = "exchange")]
    routing_key: String,
    /// Fail (storing nothing of that publish) if a record matches no binding.
    #[arg(long, requires = "exchange")]
    mandatory: bool,
    /// Split each record at the first SEP into key and value (records without SEP have no
    /// key); escapes allowed (\t, \x00, ...).
    #[arg(short = 'K', long, value_name = "SEP", value_parser = escape::delimiter)]
    key_separator: Option<escape::Escaped>,
    /// A header added to every record, as key=value; repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// Queue groups deliver each record no earlier than this many milliseconds after it was
    /// produced (the x-delay-ms header).
    #[arg(long, value_name = "MS")]
    delay_ms: Option<u64>,
    /// The FIFO message group of each record (the x-group-key header): queue groups with
    /// fifo=header deliver one key's records in order, one at a time.
    #[arg(long, value_name = "KEY")]
    group_key: Option<String>,
    /// The deduplication id of each record (the x-dedup-id header): the broker drops a record
    /// whose id was appended to its partition within the topic's dedup_window_ms, so of several
    /// records produced with one id only the first is stored.
    #[arg(long, value_name = "ID")]
    dedup_id: Option<String>,
    /// none, written or fsynced [default: the client config's, else fsynced].
    #[arg(long, value_parser = parse_acks)]
    acks: Option<AckLevel>,
    /// Send every record to this partition instead of partitioning by key.
    #[arg(short, long)]
    partition: Option<u32>,
    /// How a key picks its partition: murmur2 (Kafka's Java client, kafkajs, kafka-python,
    /// aiokafka, librdkafka's murmur2_random), crc32 (librdkafka's default consistent_random)
    /// or xxh3 (ringmq before murmur2) [default: the client config's, else murmur2].
    #[arg(long, value_name = "RULE", conflicts_with = "partition")]
    partitioner: Option<Partitioner>,
    /// none, gzip, snappy, lz4 or zstd [default: the client config's, else none].
    #[arg(long, value_parser = parse_compression)]
    compression: Option<Compression>,
    /// How long a batch waits for more records [default: the client config's, else 5].
    #[arg(long)]
    linger_ms: Option<u64>,
    /// What ends each record on stdin (escapes: \n \r \t \0 \\ \xHH; several bytes allowed,
    /// e.g. '\r\n'). The bytes between delimiters are sent exactly, empty records included.
    #[arg(short = 'D', long, default_value = r"\n", value_parser = escape::delimiter)]
    delimiter: escape::Escaped,
    /// Records on stdin are NUL-separated (same as -D '\0').
    #[arg(short = '0', conflicts_with = "delimiter")]
    nul: bool,
    /// Send this whole file as one record instead of reading stdin; repeatable.
    #[arg(short = 'f', long = "file", value_name = "PATH")]
    files: Vec<PathBuf>,
    /// Refuse records whose encoded size is over this, before sending [default: the client
    /// config's, else the topic's record_bytes_max, else 1048576].
    #[arg(long, value_name = "BYTES")]
    record_bytes_max: Option<usize>,
    /// Print a summary on stderr: records, and per partition the count and first and last
    /// offsets.
    #[arg(short, long)]
    verbose: bool,
}

fn parse_acks(value: &str) -> Result<AckLevel, String> {
    AckLevel::parse(value).ok_or_else(|| format!("{value:?} is not none, written or fsynced"))
}

fn parse_compression(value: &str) -> Result<Compression, String> {
    Compression::parse(value)
        .ok_or_else(|| format!("{value:?} is not none, gzip, snappy, lz4 or zstd"))
}

/// How failures name a record: "line N" with the newline delimiter, else "record N", or the
/// file's path.
#[derive(Clone)]
enum Label {
    Number(u64),
    File(usize),
}

struct Naming {
    unit: &'static str,
    files: Vec<PathBuf>,
}

impl Naming {
    fn name(&self, label: &Label) -> String {
        match label {
            Label::Number(number) => format!("{} {number}", self.unit),
            Label::File(index) => format!("file {}", self.files[*index].display()),
        }
    }

    fn report(&self, label: &Label, reason: &str) {
        eprintln!("ringmq produce: {}: {reason}", self.name(label));
    }
}

/// What the acknowledgements said.
#[derive(Default)]
struct Summary {
    stored: u64,
    failed: u64,
    /// partition → (records, first offset, last offset)
    partitions: BTreeMap<u32, (u64, u64, u64)>,
}

/// Awaits each delivery in the order sent and reports a failure the moment it is known.
async fn collect(mut pending: mpsc::Receiver<(Label, Delivery)>, naming: &Naming) -> Summary {
    let mut summary = Summary::default();
    while let Some((label, delivery)) = pending.next().await {
        match delivery.await {
            Ok(Ok(ack)) => {
                summary.stored += 1;
                let entry = summary
                    .partitions
                    .entry(ack.partition)
                    .or_insert((0, ack.offset, ack.offset));
                entry.0 += 1;
                entry.1 = entry.1.min(ack.offset);
                entry.2 = entry.2.max(ack.offset);
            }
            Ok(Err(error)) => {
                summary.failed += 1;
                naming.report(&label, &error.to_string());
            }
            Err(_) => {
                summary.failed += 1;
                naming.report(&label, "the producer stopped before an acknowledgement");
            }
        }
    }
    summary
}

/// Everything the send loop needs besides the input.
struct Sender {
    producer: Producer,
    topic: String,
    partition: Option<u32>,
    key_separator: Option<Vec<u8>>,
    headers: Vec<Header>,
    record_bytes_max: usize,
    pending: mpsc::Sender<(Label, Delivery)>,
    refused: u64,
}

impl Sender {
    /// Sends one record, or reports why it cannot be; Err only for what ends the whole run.
    async fn send(&mut self, label: Label, bytes: Bytes, naming: &Naming) -> Result<(), String> {
        let (key, value) = match self
            .key_separator
            .as_deref()
            .and_then(|separator| find(&bytes, separator).map(|at| (at, separator.len())))
        {
            Some((at, length)) => (Some(bytes.slice(..at)), bytes.slice(at + length..)),
            None => (None, bytes),
        };
        let record = Record {
            timestamp_ms: now_ms(),
            key,
            value: Some(value),
            headers: self.headers.clone(),
        };
        let size = record_body_bytes_max(&record);
        if size > self.record_bytes_max {
            self.refuse(&label, size as u64, naming);
            return Ok(());
        }
        let delivery = match self.partition {
            Some(partition) => self.producer.send_to(&self.topic, partition, record).await,
            None => self.producer.send(&self.topic, record).await,
        };
        match delivery {
            Ok(delivery) => {
                // Waits while PENDING_RECORDS_MAX acknowledgements are unchecked.
                futures_util::future::poll_fn(|context| self.pending.poll_ready(context))
                    .await
                    .and_then(|()| self.pending.start_send((label, delivery)))
                    .map_err(|_| "the acknowledgement reader stopped".to_string())
            }
            Err(error) if error.code() == Some(ErrorCode::RecordTooLarge) => {
                self.refused += 1;
                naming.report(&label, &error.to_string());
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    fn refuse(&mut self, label: &Label, size: u64, naming: &Naming) {
        self.refused += 1;
        naming.report(
            label,
            &format!(
                "record_too_large: {size} bytes is over the limit of {} bytes (--record-bytes-max); not sent",
                self.record_bytes_max
            ),
        );
    }
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn headers(pairs: &[String]) -> Result<Vec<Header>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("--header {pair:?} is not KEY=VALUE"))?;
            Ok(Header {
                key: key.into(),
                value: Some(Bytes::copy_from_slice(value.as_bytes())),
            })
        })
        .collect()
}

/// The topic's (record_bytes_max, batch_bytes_max), from its metadata.
async fn topic_limits(
    client: &crate::client::Client,
    topic: &str,
) -> Result<(usize, usize), String> {
    let metadata = client
        .metadata(&[topic])
        .await
        .map_err(|error: ClientError| error.to_string())?;
    let configs = metadata.first().map(|topic| &topic.configs);
    let setting = |name: &str| {
        configs
            .and_then(|configs| configs.iter().find(|(key, _)| key == name))
            .and_then(|(_, value)| value.parse::<usize>().ok())
    };
    let record = setting("record_bytes_max").unwrap_or(RECORD_BYTES_MAX_DEFAULT);
    let batch = setting("batch_bytes_max").unwrap_or(RECORD_BYTES_MAX_DEFAULT);
    Ok((record, batch))
}

pub fn run(args: ProduceArgs) -> ExitCode {
    run_client("produce", produce(args))
}

async fn produce(args: ProduceArgs) -> Result<(), String> {
    let settings = args.address.settings()?;
    let mut headers = headers(&args.headers)?;
    headers.extend(crate::client::queue::message_headers(&MessageOptions {
        delay_ms: args.delay_ms,
        group_key: args.group_key.clone(),
        dedup_id: args.dedup_id.clone(),
    }));
    let acks = match (args.acks, settings.acks.as_deref()) {
        (Some(acks), _) => acks,
        (None, Some(name)) => parse_acks(name)?,
        (None, None) => AckLevel::Fsynced,
    };
    let delimiter = if args.nul {
        vec![0]
    } else {
        args.delimiter.0.clone()
    };
    let endpoint = settings.endpoint()?;
    let topic = match (args.topic.clone(), args.exchange.clone()) {
        (Some(topic), _) => topic,
        (None, Some(exchange)) => {
            return super::exchange::publish_stdin(super::exchange::PublishInput {
                endpoint,
                exchange,
                routing_key: args.routing_key.clone(),
                mandatory: args.mandatory,
                acks,
                key_separator: args.key_separator.clone().map(|separator| separator.0),
                headers,
                delimiter,
                record_bytes_max: args
                    .record_bytes_max
                    .or(settings.record_bytes_max)
                    .unwrap_or(RECORD_BYTES_MAX_DEFAULT),
            })
            .await;
        }
        (None, None) => return Err("name a topic or --exchange".into()),
    };
    let client = connect_to(&endpoint).await?;
    let (topic_record_max, batch_bytes_max) = topic_limits(&client, &topic).await?;
    let record_bytes_max = args
        .record_bytes_max
        .or(settings.record_bytes_max)
        .unwrap_or(topic_record_max);
    let compression = match (args.compression, settings.compression.as_deref()) {
        (Some(compression), _) => compression,
        (None, Some(name)) => parse_compression(name)?,
        (None, None) => Compression::None,
    };
    let partitioner = match (args.partitioner, settings.partitioner.as_deref()) {
        (Some(partitioner), _) => partitioner,
        (None, Some(name)) => name.parse()?,
        (None, None) => Partitioner::Murmur2,
    };
    let config = ProducerConfig {
        acks,
        compression,
        partitioner,
        linger_ms: args.linger_ms.or(settings.linger_ms).unwrap_or(5),
        inflight_batches_max: WINDOW_BATCHES,
        record_bytes_max,
        batch_bytes_max,
        ..ProducerConfig::default()
    };
    let naming = std::rc::Rc::new(Naming {
        unit: if delimiter == b"\n" { "line" } else { "record" },
        files: args.files.clone(),
    });
    let (pending, acknowledged) = mpsc::channel(PENDING_RECORDS_MAX);
    let collector = runtime::spawn({
        let naming = naming.clone();
        async move { collect(acknowledged, &naming).await }
    });
    let producer = Producer::new(client, config);
    let mut sender = Sender {
        producer: producer.clone(),
        topic: topic.clone(),
        partition: args.partition,
        key_separator: args.key_separator.clone().map(|separator| separator.0),
        headers,
        record_bytes_max,
        pending,
        refused: 0,
    };
    let sent = if args.files.is_empty() {
        send_stdin(&mut sender, delimiter, &naming).await
    } else {
        send_files(&mut sender, &args.files, &naming).await
    };
    producer.flush().await;
    let refused = sender.refused;
    drop(sender);
    let summary = collector
        .await
        .map_err(|_| "the acknowledgement reader failed".to_string())?;
    sent?;
    if args.verbose {
        print_summary(&topic, &summary, refused);
    }
    let failed = summary.failed + refused;
    if failed > 0 {
        return Err(format!(
            "{failed} of {} record(s) not stored (each reported above)",
            failed + summary.stored
        ));
    }
    Ok(())
}

async fn send_stdin(
    sender: &mut Sender,
    delimiter: Vec<u8>,
    naming: &Naming,
) -> Result<(), String> {
    // The splitter holds at most one record over the limit's worth of bytes plus one chunk.
    let mut splitter = Some(Splitter::new(
        std::io::stdin(),
        delimiter,
        sender.record_bytes_max,
    ));
    let mut number = 0u64;
    loop {
        let mut reader = splitter.take().expect("returned by every trip");
        let (reader, items) = runtime::spawn_blocking(move || {
            let items = reader.next_items(RECORDS_PER_READ);
            (reader, items)
        })
        .await;
        splitter = Some(reader);
        let items = items.map_err(|error| format!("reading stdin: {error}"))?;
        if items.is_empty() {
            return Ok(());
        }
        for item in items {
            number += 1;
            match item {
                Item::Record(bytes) => sender.send(Label::Number(number), bytes, naming).await?,
                Item::Oversized { bytes } => sender.refuse(&Label::Number(number), bytes, naming),
            }
        }
    }
}

async fn send_files(sender: &mut Sender, files: &[PathBuf], naming: &Naming) -> Result<(), String> {
    for (index, path) in files.iter().enumerate() {
        let label = Label::File(index);
        let size = std::fs::metadata(path)
            .map_err(|error| format!("{}: {error}", path.display()))?
            .len();
        if size > sender.record_bytes_max as u64 {
            sender.refuse(&label, size, naming);
            continue;
        }
        let mut bytes = Vec::with_capacity(size as usize);
        std::fs::File::open(path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(|error| format!("{}: {error}", path.display()))?;
        sender.send(label, Bytes::from(bytes), naming).await?;
    }
    Ok(())
}

fn print_summary(topic: &str, summary: &Summary, refused: u64) {
    eprintln!(
        "produced {} record(s) to {topic} in {} partition(s); {} failed, {refused} refused",
        summary.stored,
        summary.partitions.len(),
        summary.failed
    );
    for (partition, (count, first, last)) in &summary.partitions {
        eprintln!("  partition {partition}: {count} record(s), offsets {first}..={last}");
    }
}
