//! RabbitMQ two ways, each partition its own stream or queue (`<topic>-<partition>`, which is
//! what a super stream is made of):
//! - `Stream`: streams through `rabbitmq-stream-client` (the stream protocol, port 5552),
//!   batch publishes with confirms, consumers from the first offset.
//! - `Quorum`: durable quorum queues through `lapin` (AMQP 0-9-1), persistent publishes with
//!   publisher confirms, consumers with a prefetch window acking in batches.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use rabbitmq_stream_client::types::{Message, OffsetSpecification};
use rabbitmq_stream_client::{Environment, NoDedup, Producer};

use super::{Result, System, Task, in_order_acks, tokio_runtime};
use crate::measure::{self, Pacer, Workload};

fn partition_name(topic: &str, partition: u32) -> String {
    format!("{topic}-{partition}")
}

/// How long a consumer waits for a delivery before it looks at the stop flag again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub struct Stream {
    host: String,
    port: u16,
}

impl Stream {
    pub fn new(address: &str) -> Stream {
        let (host, port) = address.rsplit_once(':').unwrap_or((address, "5552"));
        Stream {
            host: host.to_string(),
            port: port.parse().unwrap_or(5552),
        }
    }

    async fn environment(&self) -> Result<Environment> {
        Ok(Environment::builder()
            .host(&self.host)
            .port(self.port)
            .build()
            .await?)
    }
}

impl System for Stream {
    fn create(&self, topic: &str, workload: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            let environment = self.environment().await?;
            for partition in 0..workload.partitions {
                environment
                    .stream_creator()
                    .create(&partition_name(topic, partition))
                    .await?;
            }
            Ok(())
        })
    }

    fn produce(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let environment = self.environment().await?;
            let workload = &task.workload;
            // A producer per partition this producer writes to, made before the clock starts
            // (each is a connection of its own).
            let mut producers: Vec<Option<Producer<NoDedup>>> =
                (0..workload.partitions).map(|_| None).collect();
            for partition in workload.partitions_of_producer(task.index) {
                producers[partition as usize] = Some(
                    environment
                        .producer()
                        .batch_size(workload.messages_per_batch())
                        .build(&partition_name(&task.topic, partition))
                        .await?,
                );
            }
            let window = Arc::new(tokio::sync::Semaphore::new(workload.inflight_messages()));
            let mut payload = measure::payload(workload.message_bytes);
            let mut pacer = Pacer::new(workload, task.index, task.shared.clone());
            while let Some(due) = pacer.next() {
                tokio::time::sleep_until(due.intended.into()).await;
                let producer = producers[due.partition as usize]
                    .as_ref()
                    .expect("made for every partition the pacer picks");
                window.acquire_many(due.messages as u32).await?.forget();
                measure::stamp(&mut payload, due.stamp_ns);
                let messages: Vec<Message> = (0..due.messages)
                    .map(|_| Message::builder().body(payload.clone()).build())
                    .collect();
                let (confirmed_task, window_of_batch) = (task.clone(), window.clone());
                let sent = producer
                    .batch_send(messages, move |confirmation| {
                        let (task, window) = (confirmed_task.clone(), window_of_batch.clone());
                        async move {
                            match confirmation {
                                Ok(status) if status.confirmed() => {
                                    task.acknowledged(due.stamp_ns, 1)
                                }
                                Ok(_) => task.shared.error("publish", "not confirmed"),
                                Err(error) => task.shared.error("publish", error),
                            }
                            window.add_permits(1);
                        }
                    })
                    .await;
                if let Err(error) = sent {
                    task.shared.error("batch send", error);
                    window.add_permits(due.messages);
                }
            }
            let _ = window
                .acquire_many(workload.inflight_messages() as u32)
                .await?;
            for producer in producers.into_iter().flatten() {
                let _ = producer.close().await;
            }
            Ok(())
        })
    }

    fn consume(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let environment = self.environment().await?;
            let mut consumers = Vec::new();
            for partition in task.workload.partitions_of_consumer(task.index) {
                consumers.push(
                    environment
                        .consumer()
                        .offset(OffsetSpecification::First)
                        .build(&partition_name(&task.topic, partition))
                        .await?,
                );
            }
            let mut deliveries = futures_util::stream::select_all(consumers);
            task.shared.consumer_ready();
            while !task.shared.stopping() {
                let Ok(next) = tokio::time::timeout(POLL_INTERVAL, deliveries.next()).await else {
                    continue;
                };
                match next {
                    Some(Ok(delivery)) => task.delivered(delivery.message().data(), 1),
                    Some(Err(error)) => task.shared.error("consume", error),
                    None => break,
                }
            }
            Ok(())
        })
    }

    fn delete(&self, topic: &str, workload: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            let environment = self.environment().await?;
            for partition in 0..workload.partitions {
                environment
                    .delete_stream(&partition_name(topic, partition))
                    .await?;
            }
            Ok(())
        })
    }
}

pub struct Quorum {
    uri: String,
}

/// Deliveries a consumer may hold unacknowledged, and how many it acks at once.
const PREFETCH: u16 = 2000;
const ACK_EVERY: u64 = 500;

impl Quorum {
    pub fn new(address: &str) -> Quorum {
        let uri = if address.contains("://") {
            address.to_string()
        } else {
            format!("amqp://guest:guest@{address}/%2f")
        };
        Quorum { uri }
    }

    async fn channel(&self) -> Result<(Connection, lapin::Channel)> {
        let connection = Connection::connect(&self.uri, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        Ok((connection, channel))
    }
}

impl System for Quorum {
    fn create(&self, topic: &str, workload: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            let (_connection, channel) = self.channel().await?;
            let mut arguments = FieldTable::default();
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
            for partition in 0..workload.partitions {
                channel
                    .queue_declare(
                        partition_name(topic, partition).into(),
                        QueueDeclareOptions {
                            durable: true,
                            ..Default::default()
                        },
                        arguments.clone(),
                    )
                    .await?;
            }
            Ok(())
        })
    }

    fn produce(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let (_connection, channel) = self.channel().await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await?;
            let workload = &task.workload;
            let (confirms, collector) =
                in_order_acks::<lapin::PublisherConfirm, _, _>(&task, lapin::Confirmation::is_ack);
            let persistent = BasicProperties::default().with_delivery_mode(2);
            let mut payload = measure::payload(workload.message_bytes);
            let mut pacer = Pacer::new(workload, task.index, task.shared.clone());
            while let Some(due) = pacer.next() {
                tokio::time::sleep_until(due.intended.into()).await;
                measure::stamp(&mut payload, due.stamp_ns);
                let queue = partition_name(&task.topic, due.partition);
                for _ in 0..due.messages {
                    let published = channel
                        .basic_publish(
                            "".into(),
                            queue.as_str().into(),
                            BasicPublishOptions::default(),
                            &payload,
                            persistent.clone(),
                        )
                        .await;
                    match published {
                        Ok(confirm) => {
                            if confirms.send((due.stamp_ns, confirm)).await.is_err() {
                                break;
                            }
                        }
                        Err(error) => task.shared.error("publish", error),
                    }
                }
            }
            drop(confirms);
            collector.await?;
            Ok(())
        })
    }

    /// A channel per queue: delivery tags rise per channel, and a multiple-ack of the latest
    /// tag is only correct when nothing from another queue is interleaved on that channel.
    fn consume(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let connection =
                Connection::connect(&self.uri, ConnectionProperties::default()).await?;
            let mut channels = Vec::new();
            let mut consumers = Vec::new();
            for (slot, partition) in task
                .workload
                .partitions_of_consumer(task.index)
                .into_iter()
                .enumerate()
            {
                let channel = connection.create_channel().await?;
                channel
                    .basic_qos(PREFETCH, BasicQosOptions::default())
                    .await?;
                let consumer = channel
                    .basic_consume(
                        partition_name(&task.topic, partition).into(),
                        format!("bench-{}-{partition}", task.index).into(),
                        BasicConsumeOptions::default(),
                        FieldTable::default(),
                    )
                    .await?;
                consumers.push(consumer.map(move |delivery| (slot, delivery)));
                channels.push((channel, 0u64));
            }
            let mut deliveries = futures_util::stream::select_all(consumers);
            task.shared.consumer_ready();
            while !task.shared.stopping() {
                let Ok(next) = tokio::time::timeout(POLL_INTERVAL, deliveries.next()).await else {
                    continue;
                };
                match next {
                    Some((slot, Ok(delivery))) => {
                        task.delivered(Some(&delivery.data), 1);
                        let (channel, unacked) = &mut channels[slot];
                        *unacked += 1;
                        // One ack with `multiple` covers every earlier delivery on the channel.
                        if *unacked >= ACK_EVERY {
                            channel
                                .basic_ack(
                                    delivery.delivery_tag,
                                    BasicAckOptions { multiple: true },
                                )
                                .await?;
                            *unacked = 0;
                        }
                    }
                    Some((_, Err(error))) => task.shared.error("consume", error),
                    None => break,
                }
            }
            Ok(())
        })
    }

    fn delete(&self, topic: &str, workload: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            let (_connection, channel) = self.channel().await?;
            for partition in 0..workload.partitions {
                channel
                    .queue_delete(
                        partition_name(topic, partition).into(),
                        QueueDeleteOptions::default(),
                    )
                    .await?;
            }
            Ok(())
        })
    }
}
