//! `ringmq queue create|list|describe|delete|purge|redrive|receive`: a queue is a topic read by a queue group;
//! `queue create NAME` makes both under one name, and the other commands take the topic's name
//! with the group's (`--group`, default: the same name).

use std::process::ExitCode;

use clap::Subcommand;

use super::topic::connect;
use super::{BrokerAddress, run_client};
use crate::client::{Client, ClientError, QueueConsumer, QueueConsumerConfig, Redrive};
use crate::protocol::ErrorCode;
use crate::protocol::queues::{PARTITION_FIELD_NAMES, QueueMessage};

#[derive(Subcommand)]
pub enum QueueCommand {
    /// Create a queue: a topic NAME (unless it exists) with a queue group NAME.
    Create {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        /// The topic's partitions, if it is created.
        #[arg(short, long, default_value_t = 1)]
        partitions: u32,
        /// A queue group setting as key=value (visibility_timeout_ms, max_deliveries,
        /// max_in_flight, max_unacked, window_messages_max, dead_letter_topic, start);
        /// repeatable.
        #[arg(short, long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// List every queue group as TOPIC<tab>GROUP.
    List {
        #[command(flatten)]
        address: BrokerAddress,
    },
    /// Show a queue group's settings and each partition's counts.
    Describe {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        /// The queue group [default: NAME].
        #[arg(short, long)]
        group: Option<String>,
    },
    /// Delete a queue group (its state; the topic's messages stay unless --topic).
    Delete {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        #[arg(short, long)]
        group: Option<String>,
        /// Delete the topic NAME too, with all its data.
        #[arg(long)]
        topic: bool,
    },
    /// Acknowledge every message available now (locked and delayed ones stay); prints how
    /// many.
    Purge {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        #[arg(short, long)]
        group: Option<String>,
    },
    /// Move the queue group's dead letters back to the topic and partition they came from
    /// (or to --to), at most --rate a second; prints how many.
    Redrive {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        #[arg(short, long)]
        group: Option<String>,
        /// The target topic [default: each message's source].
        #[arg(long)]
        to: Option<String>,
        /// Messages a second at most.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Messages to move at most.
        #[arg(short = 'n', long, default_value_t = u64::MAX)]
        count: u64,
    },
    /// Receive messages and print them as PARTITION<tab>OFFSET<tab>DELIVERIES<tab>VALUE; without
    /// --ack they stay locked until their visibility timeout, then return to the queue.
    Receive {
        #[command(flatten)]
        address: BrokerAddress,
        name: String,
        #[arg(short, long)]
        group: Option<String>,
        /// Acknowledge what is printed (done: never delivered again).
        #[arg(long)]
        ack: bool,
        /// Messages to receive at most.
        #[arg(short = 'n', long, default_value_t = 1)]
        count: u32,
        /// The lock on each message [default: the group's visibility_timeout_ms].
        #[arg(long)]
        visibility_ms: Option<u32>,
        /// How long to wait for the first message.
        #[arg(long, default_value_t = 1000)]
        wait_ms: u32,
    },
}

fn failed(error: ClientError) -> String {
    error.to_string()
}

pub fn run(command: QueueCommand) -> ExitCode {
    run_client("queue", async move {
        match command {
            QueueCommand::Create {
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
                match client.create_topic(&name, partitions, &[]).await {
                    Err(error) if error.code() == Some(ErrorCode::TopicExists) => {}
                    other => other.map_err(failed)?,
                }
                client
                    .create_queue_group(&name, &name, &pairs)
                    .await
                    .map_err(failed)?;
                println!("created queue {name}");
            }
            QueueCommand::List { address } => {
                let client = connect(&address).await?;
                for (topic, group) in client.list_queue_groups().await.map_err(failed)? {
                    println!("{topic}\t{group}");
                }
            }
            QueueCommand::Describe {
                address,
                name,
                group,
            } => {
                let client = connect(&address).await?;
                describe(&client, &name, group.as_deref().unwrap_or(&name)).await?;
            }
            QueueCommand::Delete {
                address,
                name,
                group,
                topic,
            } => {
                let client = connect(&address).await?;
                let group = group.unwrap_or_else(|| name.clone());
                client
                    .delete_queue_group(&name, &group)
                    .await
                    .map_err(failed)?;
                println!("deleted queue group {group} of {name}");
                if topic {
                    client.delete_topic(&name).await.map_err(failed)?;
                    println!("deleted topic {name}");
                }
            }
            QueueCommand::Purge {
                address,
                name,
                group,
            } => {
                let client = connect(&address).await?;
                let group = group.unwrap_or_else(|| name.clone());
                let purged = client
                    .purge_queue_group(&name, &group)
                    .await
                    .map_err(failed)?;
                println!("purged {purged} messages");
            }
            QueueCommand::Redrive {
                address,
                name,
                group,
                to,
                rate,
                count,
            } => {
                let client = connect(&address).await?;
                let group = group.unwrap_or_else(|| name.clone());
                let info = client
                    .describe_queue_group(&name, &group)
                    .await
                    .map_err(failed)?;
                let dead_letter_topic = info
                    .settings
                    .iter()
                    .find(|(key, _)| key == "dead_letter_topic")
                    .map(|(_, value)| value.clone())
                    .ok_or("the queue group names no dead_letter_topic")?;
                let redrive = Redrive {
                    dead_letter_topic,
                    to,
                    rate_per_second: rate,
                    max_messages: count,
                };
                let moved = client.redrive(&redrive).await.map_err(failed)?;
                println!("redrove {moved} messages");
            }
            QueueCommand::Receive {
                address,
                name,
                group,
                ack,
                count,
                visibility_ms,
                wait_ms,
            } => {
                let client = connect(&address).await?;
                let config = QueueConsumerConfig {
                    max_messages: count,
                    wait_ms,
                    visibility_timeout_ms: visibility_ms.unwrap_or(0),
                    create: false,
                };
                let group = group.unwrap_or_else(|| name.clone());
                let consumer = QueueConsumer::new(client, &name, &group, config);
                let messages = consumer.receive().await.map_err(failed)?;
                for message in &messages {
                    println!("{}", line(message));
                }
                if ack && !messages.is_empty() {
                    consumer.ack_all(&messages).await.map_err(failed)?;
                }
            }
        }
        Ok(())
    })
}

fn line(message: &QueueMessage) -> String {
    let value = message.value.as_deref().unwrap_or_default();
    format!(
        "{}\t{}\t{}\t{}",
        message.partition,
        message.offset,
        message.deliveries,
        String::from_utf8_lossy(value)
    )
}

async fn describe(client: &Client, topic: &str, group: &str) -> Result<(), String> {
    let info = client
        .describe_queue_group(topic, group)
        .await
        .map_err(failed)?;
    println!("queue group {} of topic {}", info.group, info.topic);
    for (key, value) in &info.settings {
        println!("  {key} = {value}");
    }
    println!("partition\t{}", PARTITION_FIELD_NAMES.join("\t"));
    for partition in &info.partitions {
        let numbers: Vec<String> = partition.numbers.iter().map(u64::to_string).collect();
        println!("{}\t{}", partition.partition, numbers.join("\t"));
    }
    Ok(())
}
