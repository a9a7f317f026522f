//! ringmq through its native protocol and Rust client: one produce request per batch, up to
//! `inflight_batches` in flight per connection; consumers long-poll each of their partitions.

use std::cell::Cell;
use std::rc::Rc;

use bytes::BytesMut;
use ringmq::batch::{self, BatchBuilder, Compression, Record};
use ringmq::client::Client;
use ringmq::protocol::FetchRequest;
use ringmq::runtime::{self, Notify};
use ringmq::storage::AckLevel;

use super::{Result, System, Task};
use crate::measure::{self, Pacer, Workload};

pub struct Ringmq {
    address: String,
    topic_configs: Vec<(String, String)>,
}

impl Ringmq {
    pub fn new(address: &str, topic_configs: &[(String, String)]) -> Ringmq {
        Ringmq {
            address: address.to_string(),
            topic_configs: topic_configs.to_vec(),
        }
    }
}

/// A producer's batch, built once; each send stamps the intended send time into the first
/// value and re-seals the CRC, so the generator spends its core on sending, not on rebuilding
/// identical records.
struct BatchTemplate {
    bytes: Vec<u8>,
    stamp_at: usize,
}

const STAMP_MARKER: [u8; 8] = *b"\xfeSTAMP\xfe\xef";

impl BatchTemplate {
    fn new(count: usize, message_bytes: usize) -> BatchTemplate {
        let mut builder = BatchBuilder::new(Compression::None);
        let mut value = measure::payload(message_bytes);
        value[..8].copy_from_slice(&STAMP_MARKER);
        builder.push(Record::new(0, None, Some(&value)));
        value[..8].copy_from_slice(&[0; 8]);
        for _ in 1..count {
            builder.push(Record::new(0, None, Some(&value)));
        }
        let bytes = builder.build().to_vec();
        let stamp_at = bytes
            .windows(8)
            .position(|window| window == STAMP_MARKER)
            .expect("the marker is in the first value");
        BatchTemplate { bytes, stamp_at }
    }

    fn stamped(&self, stamp_ns: u64) -> BytesMut {
        let mut bytes = BytesMut::from(&self.bytes[..]);
        measure::stamp(&mut bytes[self.stamp_at..], stamp_ns);
        let crc = crc32c::crc32c(&bytes[batch::CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes
    }
}

impl System for Ringmq {
    fn create(&self, topic: &str, workload: &Workload) -> Result<()> {
        let configs: Vec<(&str, &str)> = self
            .topic_configs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        runtime::block_on(async {
            let client = Client::connect(&self.address).await?;
            client
                .create_topic(topic, workload.partitions, &configs)
                .await?;
            Ok(())
        })
    }

    fn produce(&self, task: Task) -> Result<()> {
        let acks = AckLevel::parse(&task.workload.acks)
            .ok_or("ringmq --acks is one of none, written, fsynced")?;
        runtime::block_on(async move {
            let client = Client::connect(&self.address).await?;
            let workload = &task.workload;
            let template =
                BatchTemplate::new(workload.messages_per_batch(), workload.message_bytes);
            let in_flight = Rc::new(Cell::new(0usize));
            let released = Rc::new(Notify::default());
            let mut pacer = Pacer::new(workload, task.index, task.shared.clone());
            while let Some(due) = pacer.next() {
                if let Some(wait) = due
                    .intended
                    .checked_duration_since(std::time::Instant::now())
                {
                    runtime::sleep(wait).await;
                }
                wait_until(&released, || {
                    in_flight.get() < workload.inflight_batch_limit()
                })
                .await;
                in_flight.set(in_flight.get() + 1);
                let records = template.stamped(due.stamp_ns);
                let (client, task, in_flight, released) = (
                    client.clone(),
                    task.clone(),
                    in_flight.clone(),
                    released.clone(),
                );
                runtime::spawn_detached(async move {
                    match client
                        .produce(&task.topic, Some(due.partition), b"", acks, records)
                        .await
                    {
                        Ok(_) => task.acknowledged(due.stamp_ns, due.messages as u64),
                        Err(error) => task.shared.error("produce", error),
                    }
                    in_flight.set(in_flight.get() - 1);
                    released.notify();
                });
            }
            wait_until(&released, || in_flight.get() == 0).await;
            Ok(())
        })
    }

    /// Each partition in its own long-poll loop: a partition with nothing new must not hold up
    /// the others.
    fn consume(&self, task: Task) -> Result<()> {
        runtime::block_on(async move {
            let client = Client::connect(&self.address).await?;
            task.shared.consumer_ready();
            let loops = task
                .workload
                .partitions_of_consumer(task.index)
                .into_iter()
                .map(|partition| {
                    let (client, task) = (client.clone(), task.clone());
                    async move { consume_partition(&client, &task, partition).await }
                });
            futures_util::future::join_all(loops).await;
            Ok(())
        })
    }

    fn delete(&self, topic: &str, _: &Workload) -> Result<()> {
        runtime::block_on(async {
            Client::connect(&self.address)
                .await?
                .delete_topic(topic)
                .await?;
            Ok(())
        })
    }
}

async fn wait_until(released: &Notify, ready: impl Fn() -> bool) {
    loop {
        let notified = released.wait();
        if ready() {
            return;
        }
        notified.await;
    }
}

async fn consume_partition(client: &Client, task: &Task, partition: u32) {
    let mut offset = 0u64;
    while !task.shared.stopping() {
        let request = FetchRequest {
            topic: task.topic.clone(),
            partition,
            offset,
            max_bytes: 1 << 20,
            min_bytes: 1,
            max_wait_ms: 100,
        };
        let response = match client.fetch(request).await {
            Ok(response) => response,
            Err(error) => {
                task.shared.error("fetch", error);
                runtime::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        for chunk in &response.records {
            for (_, framed) in batch::iter_framed(chunk) {
                let Ok(header) = batch::header(framed) else {
                    task.shared.error("fetch", "a partial batch");
                    continue;
                };
                let count = header.records_count.get() as u64;
                let last =
                    (header.base_offset.get() + i64::from(header.last_offset_delta.get())) as u64;
                if last < offset {
                    continue;
                }
                offset = last + 1;
                // Every record of a batch was due at the same time: one stamp stands for all.
                let first_value =
                    batch::records::first_record(framed).and_then(|first| first.record.value);
                task.delivered(first_value.as_deref(), count);
            }
        }
    }
}
