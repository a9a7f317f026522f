//! A consumer-group member: joins a group, reads the partitions the broker assigns it, commits
//! what it processed, and leaves the group cleanly so its partitions move at once.
//!
//! `cargo run --example group_consumer -- [BROKER] [TOPIC] [GROUP]`; run two at once and they
//! share the partitions.

use ringmq::client::{Client, ClientError, GroupConfig, GroupConsumer, GroupRecord};

/// Reads as a member of `group` until a poll returns nothing new; commits and leaves.
pub async fn run(broker: &str, topic: &str, group: &str) -> Result<Vec<GroupRecord>, ClientError> {
    let client = Client::connect(broker).await?;
    let config = GroupConfig {
        // Commit explicitly below, after the records are processed.
        auto_commit: false,
        max_wait_ms: 200,
        ..GroupConfig::default()
    };
    let mut member = GroupConsumer::join(client, group, &[topic], config).await?;
    let mut processed = Vec::new();
    loop {
        let records = member.poll().await?;
        if records.is_empty() {
            break;
        }
        processed.extend(records);
        member.commit().await?;
    }
    member.close().await?;
    Ok(processed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let broker = args.get(1).map_or("127.0.0.1:9400", String::as_str);
    let topic = args.get(2).map_or("example-orders", String::as_str);
    let group = args.get(3).map_or("example-billing", String::as_str);
    match ringmq::runtime::block_on(run(broker, topic, group)) {
        Ok(records) => {
            for record in &records {
                println!("{}/{}/{}", record.topic, record.partition, record.offset);
            }
            println!("processed and committed {} records", records.len());
        }
        Err(error) => {
            eprintln!("group consumer: {error}");
            std::process::exit(1);
        }
    }
}
