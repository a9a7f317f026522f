//! `ringmq group list|describe|reset-offsets|delete`: consumer groups as an operator sees them,
//! with each partition's committed offset, log end and lag.

use std::process::ExitCode;

use clap::Subcommand;

use super::topic::connect;
use super::{BrokerAddress, run_client};
use crate::client::{ResetTo, plan_reset_offsets, reset_offsets};
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
    /// Set an inactive group's committed offsets for a topic; prints topic, partition and the
    /// offset set.
    ResetOffsets {
        #[command(flatten)]
        address: BrokerAddress,
        group: String,
        #[arg(long)]
        topic: String,
        /// earliest, latest, N, -N (N before the end), +N (N after the log start),
        /// @TIMESTAMP_MS, or shift:N (the committed offset moved by N, which may be negative);
        /// old spellings timestamp:MS and offset:N still work. Kept inside the log.
        #[arg(long, value_parser = super::offsets::parse_reset, allow_hyphen_values = true)]
        to: ResetTo,
        /// Print what would be set (and the current committed offset) without committing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete an inactive group and its committed offsets.
    Delete {
        #[command(flatten)]
        address: BrokerAddress,
        group: String,
    },
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
                dry_run: true,
            } => dry_run(&address, &group, &topic, to).await?,
            GroupCommand::ResetOffsets {
                address,
                group,
                topic,
                to,
                dry_run: false,
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

/// Prints what `reset-offsets` would set beside what is committed now, committing nothing.
async fn dry_run(
    address: &BrokerAddress,
    group: &str,
    topic: &str,
    to: ResetTo,
) -> Result<(), String> {
    let error = |error: crate::client::ClientError| error.to_string();
    let client = connect(address).await?;
    let committed = client
        .fetch_offsets(group, Vec::new())
        .await
        .map_err(error)?;
    println!("topic\tpartition\tcommitted\twould_set");
    for (topic, partition, offset) in plan_reset_offsets(&client, group, topic, to)
        .await
        .map_err(error)?
    {
        let current = committed
            .iter()
            .find(|(t, p, _)| *t == topic && *p == partition)
            .map_or("-".to_string(), |(_, _, offset)| offset.to_string());
        println!("{topic}\t{partition}\t{current}\t{offset}");
    }
    eprintln!("dry run: nothing committed");
    Ok(())
}
