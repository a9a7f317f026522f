//! The `ringmq` command line: the broker (`serve`), client commands that reach a running
//! broker (`topic`, `exchange`, `produce`, `consume`, `request`, `respond`, `group`, `queue`),
//! and the offline log inspector (`log`).
//! Errors go to stderr; exit codes: 0 success, 1 the operation failed, 2 bad usage.

pub mod acl;
pub mod client_config;
pub mod consume;
pub mod escape;
pub mod exchange;
pub mod group;
pub mod input;
pub mod offsets;
pub mod output;
pub mod produce;
pub mod queue;
pub mod replies;
pub mod serve;
pub mod stop;
pub mod topic;
pub mod user;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

pub use client_config::BrokerAddress;

use crate::storage::fsck::{self, Detail};

#[derive(Parser)]
#[command(
    name = "ringmq",
    version,
    about = "A single-node, thread-per-core message broker"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker (with no configuration: data in ./ringmq-data, native protocol on
    /// 127.0.0.1:9400, Prometheus metrics on 127.0.0.1:9401/metrics).
    Serve(serve::ServeArgs),
    /// Create, list, describe and delete topics.
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Create, bind, unbind, list, describe and delete exchanges (RabbitMQ-style routing).
    Exchange {
        #[command(subcommand)]
        command: exchange::ExchangeCommand,
    },
    /// Produce records from stdin (one per line, or per -D delimiter) or whole files; exits 0
    /// only once every record is acknowledged.
    Produce(produce::ProduceArgs),
    /// Print records of a topic; stops at the end of the log unless --follow.
    Consume(consume::ConsumeArgs),
    /// Send one request (the argument, or stdin) to a topic and print its reply.
    Request(replies::RequestArgs),
    /// Answer a topic's requests: echo each, or reply with a command's output (--exec).
    Respond(replies::RespondArgs),
    /// List, describe, reset and delete consumer groups.
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// Work queues: create, list, describe and delete queue groups; receive (and ack).
    Queue {
        #[command(subcommand)]
        command: queue::QueueCommand,
    },
    /// Access control lists in a data directory's acls.json (enforced once a listener asks
    /// clients to authenticate).
    Acl {
        #[command(subcommand)]
        command: acl::AclCommand,
    },
    /// Users who authenticate to the Kafka listener (SASL SCRAM and PLAIN), in a data
    /// directory's users.json.
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// Inspect partition logs on disk (works while the broker is stopped).
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Print a shell completion script: `source <(ringmq completion bash)`.
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print every batch of a segment file or partition directory, and verify it.
    Dump {
        path: PathBuf,
        /// Also print every record (decompressing where needed).
        #[arg(long)]
        records: bool,
    },
    /// Verify every checksum, offset and index entry; exit code 1 on any damage.
    Verify { path: PathBuf },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic { command } => topic::run(command),
        Command::Exchange { command } => exchange::run(command),
        Command::Produce(args) => produce::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Request(args) => replies::request(args),
        Command::Respond(args) => replies::respond(args),
        Command::Group { command } => group::run(command),
        Command::Queue { command } => queue::run(command),
        Command::User { command } => user::run(command),
        Command::Acl { command } => acl::run(command),
        Command::Completion { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "ringmq", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Log { command } => {
            let (path, detail) = match command {
                LogCommand::Dump { path, records } => (
                    path,
                    if records {
                        Detail::Records
                    } else {
                        Detail::Batches
                    },
                ),
                LogCommand::Verify { path } => (path, Detail::Quiet),
            };
            let mut stdout = std::io::stdout().lock();
            match fsck::inspect(&path, detail, &mut stdout) {
                Ok(report) if report.damage.is_empty() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(error) => {
                    eprintln!("ringmq log: {}: {error}", path.display());
                    ExitCode::from(2)
                }
            }
        }
    }
}

/// Runs a client command's future on a fresh runtime, printing its error.
pub(crate) fn run_client<F>(name: &str, future: F) -> ExitCode
where
    F: std::future::Future<Output = Result<(), String>>,
{
    run_client_code(name, async { future.await.map(|()| ExitCode::SUCCESS) })
}

/// `run_client` for a command that picks its own exit code on success (130 after SIGINT, say).
pub(crate) fn run_client_code<F>(name: &str, future: F) -> ExitCode
where
    F: std::future::Future<Output = Result<ExitCode, String>>,
{
    match crate::runtime::block_on(future) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("ringmq {name}: {message}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
