//! `ringmq produce TOPIC`: one record per line of stdin, optionally "key<SEP>value", with fixed
//! headers. Exits 0 only once every line is acknowledged at the chosen ack level.

use std::io::{BufRead, BufReader, Stdin};
use std::process::ExitCode;

use bytes::Bytes;

use super::topic::connect;
use super::{BrokerAddress, run_client};
use crate::batch::{Compression, Header, Record};
use crate::client::{Producer, ProducerConfig};
use crate::runtime;
use crate::storage::AckLevel;
use crate::storage::log::now_ms;

#[derive(clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    address: BrokerAddress,
    topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP have no key).
    #[arg(short = 'K', long, value_name = "SEP")]
    key_separator: Option<String>,
    /// A header added to every record, as key=value; repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// none, written or fsynced.
    #[arg(long, default_value = "fsynced", value_parser = parse_acks)]
    acks: AckLevel,
    /// Send every line to this partition instead of partitioning by key.
    #[arg(short, long)]
    partition: Option<u32>,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: Compression,
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
}

fn parse_acks(value: &str) -> Result<AckLevel, String> {
    AckLevel::parse(value).ok_or_else(|| format!("{value:?} is not none, written or fsynced"))
}

fn parse_compression(value: &str) -> Result<Compression, String> {
    Compression::parse(value)
        .ok_or_else(|| format!("{value:?} is not none, gzip, snappy, lz4 or zstd"))
}

/// Lines read per trip to the blocking reader thread, at most.
const LINES_PER_READ: usize = 4096;

/// Reads whole lines that are available now (at least one unless at end of input).
fn read_lines(mut reader: BufReader<Stdin>) -> (BufReader<Stdin>, std::io::Result<Vec<String>>) {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => break,
            Ok(_) => {
                if line.ends_with('\n') {
                    line.pop();
                    if line.ends_with('\r') {
                        line.pop();
                    }
                }
                lines.push(line);
            }
            Err(error) => return (reader, Err(error)),
        }
        if lines.len() >= LINES_PER_READ || reader.buffer().is_empty() {
            break;
        }
    }
    (reader, Ok(lines))
}

pub fn run(args: ProduceArgs) -> ExitCode {
    run_client("produce", async move {
        let headers: Vec<Header> = args
            .headers
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
            .collect::<Result<_, String>>()?;
        let client = connect(&args.address).await?;
        let config = ProducerConfig {
            acks: args.acks,
            compression: args.compression,
            linger_ms: args.linger_ms,
            ..ProducerConfig::default()
        };
        let producer = Producer::new(client, config);
        let mut deliveries = Vec::new();
        let mut reader = BufReader::new(std::io::stdin());
        loop {
            let (returned, lines) = runtime::spawn_blocking(move || read_lines(reader)).await;
            reader = returned;
            let lines = lines.map_err(|error| format!("reading stdin: {error}"))?;
            if lines.is_empty() {
                break;
            }
            for line in lines {
                let (key, value) = match args
                    .key_separator
                    .as_deref()
                    .and_then(|separator| line.split_once(separator))
                {
                    Some((key, value)) => (
                        Some(Bytes::copy_from_slice(key.as_bytes())),
                        value.to_string(),
                    ),
                    None => (None, line),
                };
                let record = Record {
                    timestamp_ms: now_ms(),
                    key,
                    value: Some(Bytes::from(value)),
                    headers: headers.clone(),
                };
                let delivery = match args.partition {
                    Some(partition) => producer.send_to(&args.topic, partition, record).await,
                    None => producer.send(&args.topic, record).await,
                };
                deliveries.push(delivery.map_err(|error| error.to_string())?);
            }
        }
        producer.flush().await;
        let total = deliveries.len();
        let mut failed = 0;
        let mut first_error = None;
        for delivery in deliveries {
            match delivery.await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    failed += 1;
                    first_error.get_or_insert(error.to_string());
                }
                Err(_) => {
                    failed += 1;
                    first_error.get_or_insert("the producer stopped".into());
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(error) => Err(format!(
                "{failed} of {total} record(s) not acknowledged: {error}"
            )),
        }
    })
}
