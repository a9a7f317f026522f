//! `ringmq consume TOPIC`: prints records from a start position to the end of the log (or on,
//! with --follow), as values, key/value lines or JSON lines.

use std::io::Write;
use std::process::ExitCode;

use super::topic::connect;
use super::{BrokerAddress, run_client};
use crate::client::{ConsumedRecord, Consumer, ConsumerConfig, StartAt};

#[derive(clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    address: BrokerAddress,
    topic: String,
    /// beginning, end, offset:N or timestamp:MILLISECONDS.
    #[arg(long, default_value = "beginning", value_parser = parse_start)]
    from: StartAt,
    /// Read only this partition (default: all).
    #[arg(short, long)]
    partition: Option<u32>,
    /// Keep waiting for new records instead of stopping at the end of the log.
    #[arg(short, long)]
    follow: bool,
    /// value, kv (key<TAB>value) or json.
    #[arg(long, default_value = "value", value_parser = ["value", "kv", "json"])]
    format: String,
    /// Stop after this many records.
    #[arg(short = 'n', long)]
    max_messages: Option<u64>,
}

fn parse_start(value: &str) -> Result<StartAt, String> {
    let number = |text: &str| {
        text.parse()
            .map_err(|_| format!("{text:?} is not a number"))
    };
    match value.split_once(':') {
        _ if value == "beginning" => Ok(StartAt::Earliest),
        _ if value == "end" => Ok(StartAt::Latest),
        Some(("offset", offset)) => Ok(StartAt::Offset(number(offset)?)),
        Some(("timestamp", timestamp)) => Ok(StartAt::Timestamp(number(timestamp)? as i64)),
        _ => Err(format!(
            "{value:?} is not beginning, end, offset:N or timestamp:MS"
        )),
    }
}

fn text(bytes: &Option<bytes::Bytes>) -> Option<String> {
    bytes
        .as_ref()
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
}

fn print(out: &mut impl Write, format: &str, consumed: &ConsumedRecord) -> std::io::Result<()> {
    let record = &consumed.record;
    match format {
        "kv" => writeln!(
            out,
            "{}\t{}",
            text(&record.key).unwrap_or_default(),
            text(&record.value).unwrap_or_default()
        ),
        "json" => {
            let headers: serde_json::Map<String, serde_json::Value> = record
                .headers
                .iter()
                .map(|header| (header.key.clone(), text(&header.value).into()))
                .collect();
            let line = serde_json::json!({
                "partition": consumed.partition,
                "offset": consumed.offset,
                "timestamp": record.timestamp_ms,
                "key": text(&record.key),
                "value": text(&record.value),
                "headers": headers,
            });
            writeln!(out, "{line}")
        }
        _ => writeln!(out, "{}", text(&record.value).unwrap_or_default()),
    }
}

pub fn run(args: ConsumeArgs) -> ExitCode {
    run_client("consume", async move {
        let client = connect(&args.address).await?;
        let wait_ms = if args.follow { 1000 } else { 0 };
        let config = ConsumerConfig {
            max_wait_ms: wait_ms,
            ..ConsumerConfig::default()
        };
        let partitions = args.partition.map(|partition| vec![partition]);
        let mut consumer = Consumer::new(client, &args.topic, partitions, args.from, config)
            .await
            .map_err(|error| error.to_string())?;
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut printed = 0u64;
        loop {
            if !args.follow && consumer.at_end() {
                break;
            }
            for consumed in consumer.poll().await.map_err(|error| error.to_string())? {
                print(&mut out, &args.format, &consumed)
                    .map_err(|error| format!("writing stdout: {error}"))?;
                printed += 1;
                if args.max_messages.is_some_and(|max| printed >= max) {
                    out.flush().map_err(|error| error.to_string())?;
                    return Ok(());
                }
            }
            out.flush()
                .map_err(|error| format!("writing stdout: {error}"))?;
        }
        Ok(())
    })
}
