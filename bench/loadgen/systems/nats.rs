//! NATS JetStream through `async-nats`: one file-backed stream per topic with a subject per
//! partition (`<topic>.<partition>`, the nearest thing to partitions), asynchronous publishes
//! with up to `inflight_messages` acknowledgements outstanding, and one shared pull consumer
//! without acks (like reading a log by offset). How often the server fsyncs is its
//! `sync_interval`, set by bench/compare.sh.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use super::{Result, System, Task, in_order_acks, tokio_runtime};
use crate::measure::{self, Pacer, Workload};

pub struct Nats {
    address: String,
}

impl Nats {
    pub fn new(address: &str) -> Nats {
        Nats {
            address: address.to_string(),
        }
    }

    async fn context(&self) -> Result<jetstream::Context> {
        Ok(jetstream::new(async_nats::connect(&self.address).await?))
    }
}

const CONSUMER: &str = "bench";

impl System for Nats {
    fn create(&self, topic: &str, _: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            let context = self.context().await?;
            let stream = context
                .create_stream(stream::Config {
                    name: topic.to_string(),
                    subjects: vec![format!("{topic}.*")],
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await?;
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(CONSUMER.to_string()),
                    ack_policy: consumer::AckPolicy::None,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                })
                .await?;
            Ok(())
        })
    }

    fn produce(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let context = self.context().await?;
            let workload = &task.workload;
            let (acks, collector) =
                in_order_acks::<jetstream::context::PublishAckFuture, _, _>(&task, |_| true);
            let template = measure::payload(workload.message_bytes);
            let mut pacer = Pacer::new(workload, task.index, task.shared.clone());
            while let Some(due) = pacer.next() {
                tokio::time::sleep_until(due.intended.into()).await;
                let subject = format!("{}.{}", task.topic, due.partition);
                for _ in 0..due.messages {
                    let mut payload = BytesMut::from(&template[..]);
                    measure::stamp(&mut payload, due.stamp_ns);
                    match context.publish(subject.clone(), Bytes::from(payload)).await {
                        Ok(ack) => {
                            if acks.send((due.stamp_ns, ack)).await.is_err() {
                                break;
                            }
                        }
                        Err(error) => task.shared.error("publish", error),
                    }
                }
            }
            drop(acks);
            collector.await?;
            Ok(())
        })
    }

    fn consume(&self, task: Task) -> Result<()> {
        tokio_runtime().block_on(async move {
            let context = self.context().await?;
            let consumer: consumer::PullConsumer = context
                .get_stream(&task.topic)
                .await?
                .get_consumer(CONSUMER)
                .await?;
            let mut messages = consumer
                .stream()
                .max_messages_per_batch(1000)
                .messages()
                .await?;
            task.shared.consumer_ready();
            while !task.shared.stopping() {
                let Ok(next) =
                    tokio::time::timeout(Duration::from_millis(100), messages.next()).await
                else {
                    continue;
                };
                match next {
                    Some(Ok(message)) => task.delivered(Some(&message.payload), 1),
                    Some(Err(error)) => task.shared.error("consume", error),
                    None => break,
                }
            }
            Ok(())
        })
    }

    fn delete(&self, topic: &str, _: &Workload) -> Result<()> {
        tokio_runtime().block_on(async {
            self.context().await?.delete_stream(topic).await?;
            Ok(())
        })
    }
}
