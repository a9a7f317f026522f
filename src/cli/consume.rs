//! `ringmq consume TOPIC`: prints records from a start position to the end of the log (or on,
//! with --follow), as values, key/value lines or JSON lines.

use std::io::Write;
use std::process::ExitCode;

use super::topic::connect;
use super::{BrokerAddress, run_client};
use crate::client::{
    ConsumedRecord, Consumer, ConsumerConfig, GroupConfig, GroupConsumer, OffsetReset, StartAt,
};

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
    /// Consume as a member of this group: the broker assigns partitions, progress is committed,
    /// and a partition the group never committed starts at --from (beginning or end).
    #[arg(short, long)]
    group: Option<String>,
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

/// As a group member: prints what the group has not consumed yet, committing as it goes; stops
/// once every assigned partition is at its end, unless --follow.
async fn consume_in_group(args: ConsumeArgs) -> Result<(), String> {
    let client = connect(&args.address).await?;
    let reset = match args.from {
        StartAt::Earliest => OffsetReset::Earliest,
        StartAt::Latest => OffsetReset::Latest,
        _ => return Err("with --group, --from is beginning or end (the start of never-committed partitions); use `ringmq group reset-offsets` to replay".into()),
    };
    let config = GroupConfig {
        reset,
        max_wait_ms: if args.follow { 1000 } else { 200 },
        ..GroupConfig::default()
    };
    let group = args.group.clone().expect("checked by the caller");
    let mut consumer = GroupConsumer::join(client.clone(), &group, &[&args.topic], config)
        .await
        .map_err(|error| error.to_string())?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut printed = 0u64;
    let result: Result<(), String> = async {
        loop {
            let records = consumer.poll().await.map_err(|error| error.to_string())?;
            let empty = records.is_empty();
            for record in records {
                let consumed = ConsumedRecord {
                    partition: record.partition,
                    offset: record.offset,
                    record: record.record,
                };
                print(&mut out, &args.format, &consumed)
                    .map_err(|error| format!("writing stdout: {error}"))?;
                printed += 1;
                if args.max_messages.is_some_and(|max| printed >= max) {
                    return Ok(());
                }
            }
            out.flush()
                .map_err(|error| format!("writing stdout: {error}"))?;
            if empty && !args.follow && at_end(&client, &consumer).await? {
                return Ok(());
            }
        }
    }
    .await;
    out.flush().map_err(|error| error.to_string())?;
    consumer.close().await.map_err(|error| error.to_string())?;
    result
}

/// Whether the member's every partition has been read to its end.
async fn at_end(client: &crate::client::Client, consumer: &GroupConsumer) -> Result<bool, String> {
    for (topic, partition) in consumer.assignment() {
        let (_, end, _) = client
            .list_offsets(&topic, partition, crate::protocol::OffsetSpec::Latest)
            .await
            .map_err(|error| error.to_string())?;
        if consumer
            .position(&topic, partition)
            .is_some_and(|position| position < end)
        {
            return Ok(false);
        }
    }
    Ok(true)
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
    if args.group.is_some() {
        return run_client("consume", consume_in_group(args));
    }
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
