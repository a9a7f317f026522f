//! What the broker holds on disk: each partition's size, and the data directory's capacity,
//! for Kafka's DescribeLogDirs and any admin tool.

use std::collections::HashSet;
use std::rc::Rc;

use super::{RequestContext, Service};
use crate::broker::{BrokerError, BrokerResult, ErrorKind, ShardState};

/// The data directory and the partitions in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogDir {
    pub path: String,
    /// The file system's size and what is left for the broker, in bytes.
    pub total_bytes: u64,
    pub usable_bytes: u64,
    /// (topic, partition, bytes on disk), by topic and partition.
    pub partitions: Vec<(String, u32, u64)>,
}

impl Service {
    /// The data directory, with every partition (or those of `topics`: a set, since a request
    /// may name many thousands) and its size.
    pub async fn log_dir(
        &self,
        ctx: &RequestContext,
        topics: Option<HashSet<String>>,
    ) -> BrokerResult<LogDir> {
        self.authorize(
            ctx,
            super::ResourceType::Cluster,
            super::CLUSTER,
            super::Operation::Describe,
        )?;
        let mut partitions = self
            .on_every_shard(ctx, move |state| sizes(&state, topics.as_ref()))
            .await?;
        partitions.sort();
        let path = self.state.config.data_dir.clone();
        let (total_bytes, usable_bytes) = crate::runtime::blocking({
            let path = path.clone();
            move || crate::runtime::file_system_capacity(&path)
        })
        .await
        .map_err(|error| {
            BrokerError::new(
                ErrorKind::StorageFailed,
                format!("{}: {error}", path.display()),
            )
        })?;
        Ok(LogDir {
            path: path.display().to_string(),
            total_bytes,
            usable_bytes,
            partitions,
        })
    }
}

/// The sizes of the partitions this shard owns (of `topics` only, when named).
fn sizes(state: &Rc<ShardState>, topics: Option<&HashSet<String>>) -> Vec<(String, u32, u64)> {
    state.with_logs(|logs| {
        logs.iter()
            .filter(|(topic, _)| topics.is_none_or(|wanted| wanted.contains(*topic)))
            .flat_map(|(topic, partitions)| {
                partitions
                    .iter()
                    .map(move |(partition, log)| (topic.clone(), *partition, log.size_bytes()))
            })
            .collect()
    })
}
