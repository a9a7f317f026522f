//! `ringmq exchange create|bind|unbind|list|describe|delete`, and publishing stdin through an
//! exchange for `ringmq produce --exchange`.

use std::process::ExitCode;

use clap::Subcommand;

use super::client_config::Endpoint;
use super::input::{Item, Splitter};
use super::produce::find;
use super::topic::{connect, connect_to};
use super::{BrokerAddress, run_client};
use crate::batch::{Header, Record};
use crate::protocol::routing::{BindingSpec, ExchangeDescription, ExchangeType, MatchMode};
use crate::runtime;
use crate::storage::AckLevel;
use crate::storage::log::now_ms;

/// Records one publish carries at most (the broker's `publish_records_max` is 10,000 unless set).
const RECORDS_PER_PUBLISH: usize = 1000;

#[derive(Subcommand)]
pub enum ExchangeCommand {
    /// Create an exchange.
    Create {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        /// direct, topic, fanout or headers.
        #[arg(long = "type", value_parser = parse_type)]
        kind: ExchangeType,
        /// The exchange that receives what this one cannot route.
        #[arg(long)]
        alternate_exchange: Option<String>,
    },
    /// Bind an exchange to a topic (or, with --to-exchange, to another exchange).
    Bind(BindArgs),
    /// Remove a binding (the same arguments as bind).
    Unbind(BindArgs),
    /// List exchanges with their types and binding counts.
    List {
        #[command(flatten)]
        address: BrokerAddress,
    },
    /// Show an exchange and its bindings.
    Describe {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
    },
    /// Delete an exchange (and other exchanges' bindings to it).
    Delete {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
    },
}

#[derive(clap::Args)]
pub struct BindArgs {
    #[command(flatten)]
    address: BrokerAddress,
    exchange: String,
    /// The topic (or exchange, with --to-exchange) that receives the matched messages.
    destination: String,
    /// The binding key: a key (direct) or pattern (topic: `*` one word, `#` zero or more).
    #[arg(short, long, default_value = "")]
    key: String,
    /// A header a headers binding matches, as key=value (or key: present with any value);
    /// repeatable.
    #[arg(short = 'H', long = "header", value_name = "KEY=VALUE")]
    headers: Vec<String>,
    /// all, any, all-with-x or any-with-x (headers exchanges).
    #[arg(long = "match", default_value = "all", value_parser = parse_match)]
    header_match: MatchMode,
    /// The destination is an exchange.
    #[arg(long)]
    to_exchange: bool,
}

fn parse_type(value: &str) -> Result<ExchangeType, String> {
    let names = ["direct", "topic", "fanout", "headers"];
    names
        .iter()
        .position(|name| *name == value)
        .and_then(|index| ExchangeType::ALL.get(index).copied())
        .ok_or_else(|| format!("{value:?} is not direct, topic, fanout or headers"))
}

fn type_name(kind: ExchangeType) -> &'static str {
    ["direct", "topic", "fanout", "headers"][kind as usize]
}

fn parse_match(value: &str) -> Result<MatchMode, String> {
    let names = ["all", "any", "all-with-x", "any-with-x"];
    names
        .iter()
        .position(|name| *name == value)
        .and_then(|index| MatchMode::ALL.get(index).copied())
        .ok_or_else(|| format!("{value:?} is not all, any, all-with-x or any-with-x"))
}

fn binding(args: &BindArgs) -> BindingSpec {
    let headers = args
        .headers
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => (name.to_string(), Some(value.to_string())),
            None => (pair.clone(), None),
        })
        .collect();
    BindingSpec {
        to_exchange: args.to_exchange,
        destination: args.destination.clone(),
        key: args.key.clone(),
        header_match: args.header_match,
        headers,
    }
}

fn print_exchange(exchange: &ExchangeDescription) {
    let alternate = match exchange.alternate_exchange.as_str() {
        "" => String::new(),
        name => format!(" alternate-exchange {name}"),
    };
    println!(
        "exchange {} type {}{alternate}",
        exchange.name,
        type_name(exchange.kind)
    );
    println!("destination\tkind\tkey\theaders");
    for binding in &exchange.bindings {
        let kind = if binding.to_exchange {
            "exchange"
        } else {
            "topic"
        };
        let headers: Vec<String> = binding
            .headers
            .iter()
            .map(|(name, value)| match value {
                Some(value) => format!("{name}={value}"),
                None => name.clone(),
            })
            .collect();
        let matching = if headers.is_empty() {
            String::new()
        } else {
            format!(
                "{} (x-match {})",
                headers.join(","),
                ["all", "any", "all-with-x", "any-with-x"][binding.header_match as usize]
            )
        };
        println!(
            "{}\t{kind}\t{}\t{matching}",
            binding.destination, binding.key
        );
    }
}

pub fn run(command: ExchangeCommand) -> ExitCode {
    run_client("exchange", async move {
        let failed = |error: crate::client::ClientError| error.to_string();
        match command {
            ExchangeCommand::Create {
                address,
                name,
                kind,
                alternate_exchange,
            } => {
                let client = connect(&address).await?;
                let alternate = alternate_exchange.as_deref();
                client
                    .create_exchange(&name, kind, alternate)
                    .await
                    .map_err(failed)?;
                println!("created {} exchange {name}", type_name(kind));
            }
            ExchangeCommand::Bind(args) => {
                let client = connect(&args.address).await?;
                client
                    .bind(&args.exchange, binding(&args))
                    .await
                    .map_err(failed)?;
                println!("bound {} to {}", args.exchange, args.destination);
            }
            ExchangeCommand::Unbind(args) => {
                let client = connect(&args.address).await?;
                client
                    .unbind(&args.exchange, binding(&args))
                    .await
                    .map_err(failed)?;
                println!("unbound {} from {}", args.exchange, args.destination);
            }
            ExchangeCommand::List { address } => {
                let client = connect(&address).await?;
                for exchange in client.exchanges(&[]).await.map_err(failed)? {
                    let (name, kind) = (&exchange.name, type_name(exchange.kind));
                    println!("{name}\t{kind}\t{} binding(s)", exchange.bindings.len());
                }
            }
            ExchangeCommand::Describe { address, name } => {
                let client = connect(&address).await?;
                let exchanges = client.exchanges(&[&name]).await.map_err(failed)?;
                exchanges.iter().for_each(print_exchange);
            }
            ExchangeCommand::Delete { address, name } => {
                let client = connect(&address).await?;
                client.delete_exchange(&name).await.map_err(failed)?;
                println!("deleted exchange {name}");
            }
        }
        Ok(())
    })
}

/// What `ringmq produce --exchange` publishes with.
pub struct PublishInput {
    pub endpoint: Endpoint,
    pub exchange: String,
    pub routing_key: String,
    pub mandatory: bool,
    pub acks: AckLevel,
    pub key_separator: Option<Vec<u8>>,
    pub headers: Vec<Header>,
    pub delimiter: Vec<u8>,
    pub record_bytes_max: usize,
}

/// Publishes stdin's records through an exchange, up to `RECORDS_PER_PUBLISH` a publish, each
/// publish acknowledged before the next is read: order is kept and memory bounded. Fails at
/// the first publish any of whose copies failed, naming them.
pub async fn publish_stdin(input: PublishInput) -> Result<(), String> {
    let client = connect_to(&input.endpoint).await?;
    let mut splitter = Some(Splitter::new(
        std::io::stdin(),
        input.delimiter.clone(),
        input.record_bytes_max,
    ));
    let (mut published, mut copies) = (0u64, 0u64);
    loop {
        let Some(mut reader) = splitter.take() else {
            return Err("the stdin reader was lost".into());
        };
        let (reader, items) = runtime::spawn_blocking(move || {
            let items = reader.next_items(RECORDS_PER_PUBLISH);
            (reader, items)
        })
        .await;
        splitter = Some(reader);
        let items = items.map_err(|error| format!("reading stdin: {error}"))?;
        if items.is_empty() {
            eprintln!(
                "published {published} record(s) through {}: {copies} copies stored",
                input.exchange
            );
            return Ok(());
        }
        let records: Vec<Record> = items
            .into_iter()
            .map(|item| match item {
                Item::Record(bytes) => Ok(record(&input, &bytes)),
                Item::Oversized { bytes } => Err(format!(
                    "a record of {bytes} bytes is over the limit of {}",
                    input.record_bytes_max
                )),
            })
            .collect::<Result<_, _>>()?;
        let count = records.len() as u64;
        let answer = client
            .publish(
                &input.exchange,
                &input.routing_key,
                records,
                input.acks,
                input.mandatory,
            )
            .await
            .map_err(|error| error.to_string())?;
        let failures: Vec<String> = answer
            .failed()
            .map(|copy| {
                format!(
                    "{} partition {}: {}: {}",
                    copy.topic,
                    copy.partition,
                    copy.error_code.name(),
                    copy.message
                )
            })
            .collect();
        if !failures.is_empty() {
            return Err(format!("copies not stored: {}", failures.join("; ")));
        }
        published += count;
        copies += answer
            .copies
            .iter()
            .map(|copy| u64::from(copy.records))
            .sum::<u64>();
    }
}

fn record(input: &PublishInput, bytes: &[u8]) -> Record {
    let (key, value) = match &input.key_separator {
        Some(separator) => match find(bytes, separator) {
            Some(at) => (Some(&bytes[..at]), &bytes[at + separator.len()..]),
            None => (None, bytes),
        },
        None => (None, bytes),
    };
    let mut record = Record::new(now_ms(), key, Some(value));
    record.headers = input.headers.clone();
    record
}
