//! The `ringmq` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ringmq::storage::fsck::{self, Detail};

#[derive(Parser)]
#[command(name = "ringmq", version, about = "A single-node, thread-per-core message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Inspect partition logs on disk (works while the broker is stopped).
    Log {
        #[command(subcommand)]
        command: LogCommand,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Log { command } => {
            let (path, detail) = match command {
                LogCommand::Dump { path, records } => (path, if records { Detail::Records } else { Detail::Batches }),
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
