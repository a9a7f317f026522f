//! `ringmq consume TOPIC`: prints records from a start position to the end of the log (or on,
//! with --follow), as raw values, key/value pairs, templates or JSON lines (see `output`).
//!
//! With --group, progress is committed only up to what was printed: records fetched but not
//! printed (after -n, a signal or a closed pipe) are left for the next member. SIGINT, SIGTERM
//! and a closed stdout all leave the group before exiting (see `stop`). With --follow, a lost
//! connection (a broker restart) is retried with backoff and reading resumes at the next offset.

use std::collections::BTreeMap;
use std::io::{BufWriter, StdoutLock, Write};
use std::process::ExitCode;
use std::time::Duration;

use super::client_config::Endpoint;
use super::escape;
use super::output::{self, Format, Printed};
use super::stop::{Interrupts, Stop, is_closed_pipe};
use super::topic::connect_to;
use super::{BrokerAddress, run_client_code};
use crate::client::{
    Client, ClientError, Consumer, ConsumerConfig, GroupConfig, GroupConsumer, OffsetReset, StartAt,
};
use crate::protocol::ErrorCode;

#[derive(clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    address: BrokerAddress,
    topic: String,
    /// Where to start: earliest, latest, N, -N (N before the end), +N (N after the start) or
    /// @TIMESTAMP_MS (old spellings beginning, end, offset:N, timestamp:MS still work). With
    /// --group: earliest or latest, for partitions the group never committed.
    #[arg(long, short = 'o', visible_alias = "offset", default_value = "earliest",
          value_parser = super::offsets::parse_start, allow_hyphen_values = true)]
    from: StartAt,
    /// Read only this partition (default: all).
    #[arg(short, long)]
    partition: Option<u32>,
    /// Keep waiting for new records instead of stopping at the end of the log; reconnects
    /// (with backoff) when the connection is lost.
    #[arg(short, long)]
    follow: bool,
    /// value, kv (key, -K separator, value), json (non-UTF-8 keys and values as key_b64 /
    /// value_b64), or a template such as '%t/%p/%o %k=%v\n' (%t topic, %p partition, %o
    /// offset, %k key, %K key size, %v value, %s value size, %h headers, %T timestamp, %%)
    /// [default: the client config's, else value].
    #[arg(long)]
    format: Option<String>,
    /// What ends each record in the value and kv formats (escapes: \n \t \0 \xHH).
    #[arg(short = 'D', long, default_value = r"\n", value_parser = escape::delimiter)]
    delimiter: escape::Escaped,
    /// End each record with a NUL byte (same as -D '\0').
    #[arg(short = '0', conflicts_with = "delimiter")]
    nul: bool,
    /// Between key and value in the kv format (escapes allowed).
    #[arg(short = 'K', long, default_value = r"\t", value_parser = escape::escaped)]
    key_separator: escape::Escaped,
    /// Stop after this many records (0 prints nothing).
    #[arg(short = 'n', long)]
    max_messages: Option<u64>,
    /// Consume as a member of this group: the broker assigns partitions, what is printed is
    /// committed, and a partition the group never committed starts at --from.
    #[arg(short, long)]
    group: Option<String>,
    /// With --group: where to go when a committed offset is outside the log (the topic was
    /// re-created, or retention removed the records): earliest, latest or error
    /// [default: the client config's, else error].
    #[arg(long, value_parser = ["earliest", "latest", "error"])]
    reset: Option<String>,
}

/// Writes records to stdout, counting them against -n.
struct Printer {
    out: BufWriter<StdoutLock<'static>>,
    format: Format,
    printed: u64,
    max: Option<u64>,
}

impl Printer {
    fn full(&self) -> bool {
        self.max.is_some_and(|max| self.printed >= max)
    }

    /// Prints one record; Err(PipeClosed) when stdout's reader has gone.
    fn print(&mut self, printed: &Printed) -> Result<(), Result<Stop, String>> {
        output::write(&mut self.out, &self.format, printed).map_err(Self::stop)?;
        self.printed += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Result<Stop, String>> {
        self.out.flush().map_err(Self::stop)
    }

    fn stop(error: std::io::Error) -> Result<Stop, String> {
        if is_closed_pipe(&error) {
            Ok(Stop::PipeClosed)
        } else {
            Err(format!("writing stdout: {error}"))
        }
    }
}

/// Connects again after a lost connection: 100 ms, doubling up to 5 s, until it works or a
/// signal comes.
async fn reconnect(broker: &Endpoint, interrupts: &mut Interrupts) -> Result<Client, Stop> {
    let mut backoff = Duration::from_millis(100);
    loop {
        interrupts.run(crate::runtime::sleep(backoff)).await?;
        if let Ok(client) = interrupts.run(connect_to(broker)).await? {
            return Ok(client);
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

fn lost_connection(error: &ClientError) -> bool {
    matches!(error, ClientError::Connection(_))
}

fn printer(args: &ConsumeArgs, format: Option<&str>) -> Result<Printer, String> {
    let delimiter = if args.nul {
        vec![0]
    } else {
        args.delimiter.0.clone()
    };
    let format = Format::parse(
        args.format.as_deref().or(format).unwrap_or("value"),
        delimiter,
        args.key_separator.0.clone(),
    )?;
    Ok(Printer {
        out: BufWriter::new(std::io::stdout().lock()),
        format,
        printed: 0,
        max: args.max_messages,
    })
}

pub fn run(args: ConsumeArgs) -> ExitCode {
    run_client_code("consume", async move {
        let settings = args.address.settings()?;
        let mut printer = printer(&args, settings.format.as_deref())?;
        let broker = settings.endpoint()?;
        let mut interrupts = Interrupts::install();
        let client = connect_to(&broker).await?;
        let stop = if args.group.is_some() {
            let reset = args
                .reset
                .clone()
                .or(settings.reset)
                .unwrap_or("error".into());
            in_group(
                &args,
                &reset,
                client,
                &broker,
                &mut printer,
                &mut interrupts,
            )
            .await?
        } else {
            plain(&args, client, &broker, &mut printer, &mut interrupts).await?
        };
        Ok(stop.exit_code())
    })
}

/// Outside a group: from --from to the end (or on, with --follow).
async fn plain(
    args: &ConsumeArgs,
    client: Client,
    broker: &Endpoint,
    printer: &mut Printer,
    interrupts: &mut Interrupts,
) -> Result<Stop, String> {
    let config = ConsumerConfig {
        max_wait_ms: if args.follow { 1000 } else { 0 },
        ..ConsumerConfig::default()
    };
    let partitions = args.partition.map(|partition| vec![partition]);
    let mut consumer = Consumer::new(client, &args.topic, partitions, args.from, config)
        .await
        .map_err(|error| error.to_string())?;
    let stop = loop {
        if printer.full() {
            break Stop::Count;
        }
        if !args.follow && consumer.at_end() {
            break Stop::End;
        }
        let records = match interrupts.run(consumer.poll()).await {
            Err(stop) => break stop,
            Ok(Ok(records)) => records,
            Ok(Err(error)) if args.follow && lost_connection(&error) => {
                match reconnect(broker, interrupts).await {
                    Ok(client) => consumer.set_client(client),
                    Err(stop) => break stop,
                }
                continue;
            }
            Ok(Err(error)) => return Err(error.to_string()),
        };
        let printed = records.iter().try_for_each(|consumed| {
            if printer.full() {
                return Ok(());
            }
            printer.print(&Printed {
                topic: &args.topic,
                partition: consumed.partition,
                offset: consumed.offset,
                record: &consumed.record,
            })
        });
        if let Err(stop) = printed.and_then(|()| printer.flush()) {
            break stop?;
        }
    };
    match printer.flush() {
        Err(Err(error)) if stop != Stop::PipeClosed => Err(error),
        _ => Ok(stop),
    }
}

/// As a group member: prints what the group has not consumed yet, committing what it printed;
/// stops once every assigned partition is at its end, unless --follow.
async fn in_group(
    args: &ConsumeArgs,
    reset: &str,
    client: Client,
    broker: &Endpoint,
    printer: &mut Printer,
    interrupts: &mut Interrupts,
) -> Result<Stop, String> {
    let start = match args.from {
        StartAt::Earliest => OffsetReset::Earliest,
        StartAt::Latest => OffsetReset::Latest,
        _ => return Err("with --group, --from is earliest or latest (the start of never-committed partitions); use `ringmq group reset-offsets` to replay".into()),
    };
    let out_of_range = match reset {
        "earliest" => OffsetReset::Earliest,
        "latest" => OffsetReset::Latest,
        "error" => OffsetReset::Error,
        other => return Err(format!("reset {other:?} is not earliest, latest or error")),
    };
    let config = GroupConfig {
        reset: start,
        out_of_range,
        max_wait_ms: if args.follow { 1000 } else { 200 },
        ..GroupConfig::default()
    };
    let group = args.group.as_deref().unwrap_or_default();
    let mut consumer = GroupConsumer::join(client.clone(), group, &[&args.topic], config)
        .await
        .map_err(|error| error.to_string())?;
    let mut client = client;
    let result = group_loop(
        args,
        &mut consumer,
        &mut client,
        broker,
        printer,
        interrupts,
    )
    .await;
    // Whatever stopped us, what was printed is committed and the group is left at once.
    let flushed = printer.flush();
    let closed = consumer.close().await;
    let stop = result?;
    if let Err(Err(error)) = flushed
        && stop != Stop::PipeClosed
    {
        return Err(error);
    }
    closed.map_err(|error| format!("leaving group {group}: {error}"))?;
    Ok(stop)
}

async fn group_loop(
    args: &ConsumeArgs,
    consumer: &mut GroupConsumer,
    client: &mut Client,
    broker: &Endpoint,
    printer: &mut Printer,
    interrupts: &mut Interrupts,
) -> Result<Stop, String> {
    loop {
        if printer.full() {
            return Ok(Stop::Count);
        }
        let records = match interrupts.run(consumer.poll()).await {
            Err(stop) => return Ok(stop),
            Ok(Ok(records)) => records,
            Ok(Err(error)) if args.follow && lost_connection(&error) => {
                loop {
                    *client = match reconnect(broker, interrupts).await {
                        Ok(client) => client,
                        Err(stop) => return Ok(stop),
                    };
                    if consumer.reconnect(client.clone()).await.is_ok() {
                        break;
                    }
                }
                continue;
            }
            Ok(Err(error)) => return Err(explain(error)),
        };
        let empty = records.is_empty();
        // The first offset not printed, per partition: where the group resumes.
        let mut unprinted: BTreeMap<(String, u32), u64> = BTreeMap::new();
        let mut stopped = None;
        for record in &records {
            if stopped.is_none() && !printer.full() {
                let printed = Printed {
                    topic: &record.topic,
                    partition: record.partition,
                    offset: record.offset,
                    record: &record.record,
                };
                match printer.print(&printed) {
                    Ok(()) => continue,
                    Err(stop) => stopped = Some(stop?),
                }
            }
            unprinted
                .entry((record.topic.clone(), record.partition))
                .or_insert(record.offset);
        }
        for ((topic, partition), offset) in unprinted {
            consumer.seek(&topic, partition, offset);
        }
        if let Some(stop) = stopped {
            return Ok(stop);
        }
        if let Err(stop) = printer.flush() {
            return stop;
        }
        if empty && !args.follow && at_end(client, consumer).await? {
            return Ok(Stop::End);
        }
    }
}

/// The broker's error, with what to do about an out-of-range committed offset.
fn explain(error: ClientError) -> String {
    if error.code() == Some(ErrorCode::OffsetOutOfRange) {
        format!(
            "{error}: the group's committed offset is outside the log; rerun with --reset \
             earliest or --reset latest, or move it with `ringmq group reset-offsets`"
        )
    } else {
        error.to_string()
    }
}

/// Whether the member's every partition has been read to its end.
async fn at_end(client: &Client, consumer: &GroupConsumer) -> Result<bool, String> {
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
