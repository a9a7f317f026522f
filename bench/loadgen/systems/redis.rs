//! Redis Streams through the `redis` crate: a stream key per partition (`<topic>:<partition>`),
//! each batch one pipeline of XADDs on a multiplexed connection with up to `inflight_batches`
//! pipelines outstanding, and consumers that XREAD (blocking) from their keys. When Redis
//! fsyncs is its `appendfsync`, set by bench/compare.sh.

use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};

use super::{Result, System, Task, tokio_runtime};
use crate::measure::{self, Pacer, Workload};

pub struct Redis {
    client: redis::Client,
}

/// Long enough for a pipeline behind an fsync of a large append-only file.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
const READ_COUNT: usize = 1000;
const READ_BLOCK_MS: usize = 100;

impl Redis {
    /// With TCP_NODELAY, as every other client here: the crate leaves Nagle's algorithm on by
    /// default, which holds back a pipeline smaller than a segment.
    pub fn new(address: &str) -> Redis {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("redis://{address}/")
        };
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .expect("a valid redis address")
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        Redis {
            client: redis::Client::open(info).expect("a valid redis address"),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection> {
        let config =
            redis::AsyncConnectionConfig::new().set_response_timeout(Some(RESPONSE_TIMEOUT));
        Ok(self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?)
    }
}

fn key(topic: &str, partition: u32) -> String {
    format!("{topic}:{partition}")
}

impl System for Redis {
    /// Streams come into being with their first XADD.
    fn create(&self, _: &str, _: &Workload) -> Result<()> {
        Ok(())
    }

    fn produce(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let connection = self.connection().await?;
            let workload = &task.workload;
            let window = Arc::new(tokio::sync::Semaphore::new(workload.inflight_batch_limit()));
            let mut payload = measure::payload(workload.message_bytes);
            let mut pacer = Pacer::new(workload, task.index, task.shared.clone());
            while let Some(due) = pacer.next() {
                tokio::time::sleep_until(due.intended.into()).await;
                let permit = window.clone().acquire_owned().await?;
                measure::stamp(&mut payload, due.stamp_ns);
                let key = key(&task.topic, due.partition);
                let mut pipeline = redis::pipe();
                for _ in 0..due.messages {
                    pipeline
                        .cmd("XADD")
                        .arg(&key)
                        .arg("*")
                        .arg("v")
                        .arg(&payload[..])
                        .ignore();
                }
                let (mut connection, task) = (connection.clone(), task.clone());
                tokio::spawn(async move {
                    match pipeline.query_async::<()>(&mut connection).await {
                        Ok(()) => task.acknowledged(due.stamp_ns, due.messages as u64),
                        Err(error) => task.shared.error("XADD", error),
                    }
                    drop(permit);
                });
            }
            let _ = window
                .acquire_many(workload.inflight_batch_limit() as u32)
                .await?;
            Ok(())
        })
    }

    fn consume(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let mut connection = self.connection().await?;
            let partitions = task.workload.partitions_of_consumer(task.index);
            let keys: Vec<String> = partitions.iter().map(|p| key(&task.topic, *p)).collect();
            let mut last_ids: Vec<String> = vec!["0".to_string(); keys.len()];
            let options = StreamReadOptions::default()
                .count(READ_COUNT)
                .block(READ_BLOCK_MS);
            task.shared.consumer_ready();
            while !task.shared.stopping() {
                let reply: Option<StreamReadReply> =
                    match connection.xread_options(&keys, &last_ids, &options).await {
                        Ok(reply) => reply,
                        Err(error) => {
                            task.shared.error("XREAD", error);
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    };
                for stream in reply.map(|reply| reply.keys).unwrap_or_default() {
                    let Some(slot) = keys.iter().position(|k| *k == stream.key) else {
                        continue;
                    };
                    for entry in &stream.ids {
                        let value = match entry.map.get("v") {
                            Some(redis::Value::BulkString(value)) => Some(&value[..]),
                            _ => None,
                        };
                        task.delivered(value, 1);
                    }
                    if let Some(last) = stream.ids.last() {
                        last_ids[slot] = last.id.clone();
                    }
                }
            }
            Ok(())
        })
    }

    fn delete(&self, topic: &str, workload: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            let mut connection = self.connection().await?;
            let keys: Vec<String> = (0..workload.partitions).map(|p| key(topic, p)).collect();
            let _: () = connection.del(keys).await?;
            Ok(())
        })
    }
}
