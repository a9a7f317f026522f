//! `ringmq topic create|list|describe|add-partitions|delete`.

use std::process::ExitCode;

use clap::Subcommand;

use super::client_config::Endpoint;
use super::{BrokerAddress, run_client};
use crate::client::Client;
use crate::protocol::OffsetSpec;

#[derive(Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        #[arg(short, long, default_value_t = 1)]
        partitions: u32,
        /// A topic setting as key=value (retention_ms, retention_bytes, segment_bytes, ...);
        /// repeatable.
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List topics with their partition counts.
    List {
        #[command(flatten)]
        address: BrokerAddress,
    },
    /// Show a topic's settings and each partition's offsets.
    Describe {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
    },
    /// Grow a topic to more partitions (existing data stays where it is).
    AddPartitions {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        /// The topic's new partition count.
        #[arg(short, long)]
        partitions: u32,
    },
    /// Change a topic's settings while it runs.
    Alter {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        /// A setting to change, as key=value (the keys `topic create --config` takes);
        /// repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// A setting to put back to the broker's default; repeatable.
        #[arg(long = "reset", value_name = "KEY")]
        reset: Vec<String>,
    },
    /// Delete a topic and all its data.
    Delete {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
    },
}

pub fn run(command: TopicCommand) -> ExitCode {
    run_client("topic", async move {
        match command {
            TopicCommand::Create {
                address,
                name,
                partitions,
                configs,
            } => {
                let pairs: Vec<(&str, &str)> = configs
                    .iter()
                    .map(|pair| {
                        pair.split_once('=')
                            .ok_or_else(|| format!("--config {pair:?} is not KEY=VALUE"))
                    })
                    .collect::<Result<_, _>>()?;
                let client = connect(&address).await?;
                client
                    .create_topic(&name, partitions, &pairs)
                    .await
                    .map_err(|error| error.to_string())?;
                println!("created topic {name} with {partitions} partition(s)");
            }
            TopicCommand::List { address } => {
                let client = connect(&address).await?;
                for topic in client
                    .metadata(&[])
                    .await
                    .map_err(|error| error.to_string())?
                {
                    println!("{}\t{} partition(s)", topic.name, topic.partitions);
                }
            }
            TopicCommand::Describe { address, name } => {
                let client = connect(&address).await?;
                let topics = client
                    .metadata(&[&name])
                    .await
                    .map_err(|error| error.to_string())?;
                let topic = topics.first().ok_or("the broker returned no topic")?;
                println!("topic {} partitions {}", topic.name, topic.partitions);
                for (key, value) in &topic.configs {
                    println!("  {key} = {value}");
                }
                println!("partition\tstart\tend");
                for partition in 0..topic.partitions {
                    let (_, end, start) = client
                        .list_offsets(&name, partition, OffsetSpec::Latest)
                        .await
                        .map_err(|error| error.to_string())?;
                    println!("{partition}\t{start}\t{end}");
                }
            }
            TopicCommand::AddPartitions {
                address,
                name,
                partitions,
            } => {
                let client = connect(&address).await?;
                client
                    .add_partitions(&name, partitions)
                    .await
                    .map_err(|error| error.to_string())?;
                println!("topic {name} now has {partitions} partition(s)");
            }
            TopicCommand::Alter {
                address,
                name,
                set,
                reset,
            } => {
                let pairs: Vec<(&str, &str)> = set
                    .iter()
                    .map(|pair| {
                        pair.split_once('=')
                            .ok_or_else(|| format!("--set {pair:?} is not KEY=VALUE"))
                    })
                    .collect::<Result<_, _>>()?;
                if pairs.is_empty() && reset.is_empty() {
                    return Err("nothing to change: give --set KEY=VALUE or --reset KEY".into());
                }
                let reset: Vec<&str> = reset.iter().map(String::as_str).collect();
                let client = connect(&address).await?;
                client
                    .alter_topic(&name, &pairs, &reset)
                    .await
                    .map_err(|error| error.to_string())?;
                println!("changed topic {name}'s settings");
            }
            TopicCommand::Delete { address, name } => {
                let client = connect(&address).await?;
                client
                    .delete_topic(&name)
                    .await
                    .map_err(|error| error.to_string())?;
                println!("deleted topic {name}");
            }
        }
        Ok(())
    })
}

pub(crate) async fn connect(address: &BrokerAddress) -> Result<Client, String> {
    connect_to(&address.settings()?.endpoint()?).await
}

pub(crate) async fn connect_to(endpoint: &Endpoint) -> Result<Client, String> {
    Client::connect_with(
        &endpoint.broker,
        endpoint.tls.as_ref(),
        endpoint.sasl.as_ref(),
    )
    .await
    .map_err(|error| error.to_string())
}
