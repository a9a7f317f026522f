//! `ringmq user`: SCRAM users in a data directory's users.json, offline (as Kafka's
//! `kafka-storage format --add-scram` bootstraps its first users). A running broker takes the
//! change at its next SIGHUP or restart; while it runs, Kafka's AlterUserScramCredentials
//! changes users online.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::scram::{
    Credential, ITERATIONS_DEFAULT, ITERATIONS_MAX, ITERATIONS_MIN, Mechanism,
};
use crate::broker::users::Users;

#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a user (or set its password), reading the password from the first line of stdin.
    Add {
        name: String,
        #[arg(long, env = "RINGMQ_DATA_DIR", default_value = "ringmq-data")]
        data_dir: PathBuf,
        /// SCRAM-SHA-256, SCRAM-SHA-512, or both (the default).
        #[arg(long, default_value = "both")]
        mechanism: String,
        #[arg(long, default_value_t = ITERATIONS_DEFAULT)]
        iterations: u32,
    },
    /// Remove a user and all its credentials.
    Delete {
        name: String,
        #[arg(long, env = "RINGMQ_DATA_DIR", default_value = "ringmq-data")]
        data_dir: PathBuf,
    },
    /// List users with their mechanisms and iterations.
    List {
        #[arg(long, env = "RINGMQ_DATA_DIR", default_value = "ringmq-data")]
        data_dir: PathBuf,
    },
}

pub fn run(command: UserCommand) -> ExitCode {
    match execute(command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("ringmq user: {reason}");
            ExitCode::from(1)
        }
    }
}

fn execute(command: UserCommand) -> Result<(), String> {
    match command {
        UserCommand::Add {
            name,
            data_dir,
            mechanism,
            iterations,
        } => {
            let mechanisms = match mechanism.as_str() {
                "both" => Mechanism::ALL.to_vec(),
                one => vec![Mechanism::from_name(one).ok_or_else(|| {
                    format!("--mechanism {one:?} is not SCRAM-SHA-256, SCRAM-SHA-512 or both")
                })?],
            };
            if !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations) {
                return Err(format!(
                    "--iterations must be {ITERATIONS_MIN} to {ITERATIONS_MAX}"
                ));
            }
            let mut password = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut password)
                .map_err(|error| format!("reading the password from stdin: {error}"))?;
            let password = password.trim_end_matches(['\n', '\r']);
            if password.is_empty() {
                return Err("an empty password (give it on stdin)".into());
            }
            let mut users = Users::load(&data_dir)?;
            for mechanism in mechanisms {
                let credential = Credential::new(mechanism, password.as_bytes(), iterations);
                users.upsert(&name, mechanism, credential)?;
            }
            save(&users, &data_dir)
        }
        UserCommand::Delete { name, data_dir } => {
            let mut users = Users::load(&data_dir)?;
            let removed: Vec<bool> = Mechanism::ALL
                .into_iter()
                .map(|mechanism| users.remove(&name, mechanism))
                .collect();
            if !removed.contains(&true) {
                return Err(format!("no user {name:?} in {}", data_dir.display()));
            }
            save(&users, &data_dir)
        }
        UserCommand::List { data_dir } => {
            for (name, mechanisms) in Users::load(&data_dir)?.describe() {
                let listed: Vec<String> = mechanisms
                    .iter()
                    .map(|(mechanism, iterations)| format!("{}:{iterations}", mechanism.name()))
                    .collect();
                println!("{name}\t{}", listed.join(","));
            }
            Ok(())
        }
    }
}

fn save(users: &Users, data_dir: &std::path::Path) -> Result<(), String> {
    crate::storage::dirsync::create_dir_all_durable(data_dir)
        .and_then(|()| users.save(data_dir))
        .map_err(|error| format!("{}: {error}", data_dir.display()))?;
    eprintln!("saved; a running broker takes it at its next SIGHUP (systemctl reload ringmq)");
    Ok(())
}
