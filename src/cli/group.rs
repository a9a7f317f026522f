//! `ringmq group list|describe|reset-offsets|delete`: consumer groups as an operator sees them,
//! with each partition's committed offset, log end and lag.

use std::process::ExitCode;

use clap::Subcommand;

use super::topic::connect;
use super::{BrokerAddress, run_client};
use crate::client::{ResetTo, reset_offsets};
use crate::protocol::OffsetSpec;

#[derive(Subcommand)]
pub enum GroupCommand {
    /// List groups with their state and member count.
    List {
        #[command(flatten)]
        address: BrokerAddress,
    },
    /// Show a group's members, their partitions, committed offsets and lag.
    Describe {
        #[command(flatten)]
        address: BrokerAddress,
        group: String,
    },
    /// Set an inactive group's committed offsets for a topic.
    ResetOffsets {
        #[command(flatten)]
        address: BrokerAddress,
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, timestamp:MILLISECONDS or shift:N (N may be negative).
        #[arg(long, value_parser = parse_reset)]
        to: ResetTo,
    },
    /// Delete an inactive group and its committed offsets.
    Delete {
        #[command(flatten)]
        address: BrokerAddress,
        group: String,
    },
}

fn parse_reset(value: &str) -> Result<ResetTo, String> {
    let number = |text: &str| {
        text.parse::<i64>()
            .map_err(|_| format!("{text:?} is not a whole number"))
    };
    match value.split_once(':') {
        _ if value == "earliest" => Ok(ResetTo::Earliest),
        _ if value == "latest" => Ok(ResetTo::Latest),
        Some(("timestamp", timestamp)) => Ok(ResetTo::Timestamp(number(timestamp)?)),
        Some(("shift", by)) => Ok(ResetTo::Shift(number(by)?)),
        _ => Err(format!(
            "{value:?} is not earliest, latest, timestamp:MS or shift:N"
        )),
    }
}

pub fn run(command: GroupCommand) -> ExitCode {
    run_client("group", async move {
        let error = |error: crate::client::ClientError| error.to_string();
        match command {
            GroupCommand::List { address } => {
                let client = connect(&address).await?;
                println!("group\tstate\tmembers\tgeneration");
                for group in client.list_groups().await.map_err(error)? {
                    println!(
                        "{}\t{}\t{}\t{}",
                        group.name, group.state, group.members, group.generation
                    );
                }
            }
            GroupCommand::Describe { address, group } => {
                let client = connect(&address).await?;
                let description = client.describe_group(&group).await.map_err(error)?;
                let summary = &description.summary;
                println!(
                    "group {} state {} generation {} strategy {} members {}",
                    summary.name,
                    summary.state,
                    summary.generation,
                    description.strategy,
                    summary.members
                );
                for (member, _, assignment) in &description.members {
                    let partitions: Vec<String> =
                        assignment.iter().map(|(t, p)| format!("{t}/{p}")).collect();
                    println!("member {member}: {}", partitions.join(" "));
                }
                println!("topic\tpartition\tcommitted\tend\tlag");
                for (topic, partition, committed) in &description.offsets {
                    let end = match client
                        .list_offsets(topic, *partition, OffsetSpec::Latest)
                        .await
                    {
                        Ok((_, end, _)) => end.to_string(),
                        Err(_) => "?".into(),
                    };
                    let lag = end
                        .parse::<u64>()
                        .map_or("?".into(), |end| end.saturating_sub(*committed).to_string());
                    println!("{topic}\t{partition}\t{committed}\t{end}\t{lag}");
                }
            }
            GroupCommand::ResetOffsets {
                address,
                group,
                topic,
                to,
            } => {
                let client = connect(&address).await?;
                for (topic, partition, offset) in reset_offsets(&client, &group, &topic, to)
                    .await
                    .map_err(error)?
                {
                    println!("{topic}\t{partition}\t{offset}");
                }
            }
            GroupCommand::Delete { address, group } => {
                let client = connect(&address).await?;
                client.delete_group(&group).await.map_err(error)?;
                println!("deleted group {group}");
            }
        }
        Ok(())
    })
}
