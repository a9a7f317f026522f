//! Any Kafka-protocol broker (ringmq's Kafka listener, Tansu) through librdkafka (`rdkafka`):
//! a producer that lingers 5 ms into batches of up to `batch_bytes`, and consumers assigned
//! their partitions from the beginning, without group management or commits.
//!
//! librdkafka keeps its own queue of unsent messages; it is bounded to `inflight_messages`,
//! like every other driver's window, and at the maximum rate the publish latency includes the
//! time a message waits in it.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::TopicPartitionList;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;

use super::{Result, System, Task, tokio_runtime};
use crate::measure::{self, Pacer, Workload};

pub struct Kafka {
    address: String,
}

impl Kafka {
    pub fn new(address: &str) -> Kafka {
        Kafka {
            address: address.to_string(),
        }
    }

    fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        Ok(ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .create()?)
    }
}

/// Where librdkafka reports each delivery: its latency and the count.
struct Deliveries(Task);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, stamp_ns: Self::DeliveryOpaque) {
        match result {
            Ok(_) => self.0.acknowledged(*stamp_ns, 1),
            Err((error, _)) => self.0.shared.error("delivery", error),
        }
    }
}

/// Kafka's own acks, or ringmq's names for the levels they map to.
fn kafka_acks(acks: &str) -> &str {
    match acks {
        "none" => "0",
        "written" => "1",
        "fsynced" => "all",
        other => other,
    }
}

const QUEUE_FULL_BACKOFF: Duration = Duration::from_micros(200);
const FLUSH_TIMEOUT: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

impl System for Kafka {
    fn create(&self, topic: &str, workload: &Workload) -> Result<()> {
        let admin = self.admin()?;
        let results = tokio_runtime().block_on(admin.create_topics(
            &[NewTopic::new(
                topic,
                workload.partitions as i32,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        ))?;
        for result in results {
            result.map_err(|(topic, code)| format!("create {topic}: {code}"))?;
        }
        Ok(())
    }

    fn produce(&self, task: Task) -> Result<()> {
        let workload = task.workload.clone();
        let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("acks", kafka_acks(&workload.acks))
            .set("linger.ms", "5")
            .set("batch.size", workload.batch_bytes.to_string())
            // The same bound on unacknowledged messages as every other driver has.
            .set(
                "queue.buffering.max.messages",
                workload.inflight_messages().to_string(),
            )
            .create_with_context(Deliveries(task.clone()))?;
        let mut payload = measure::payload(workload.message_bytes);
        let mut pacer = Pacer::new(&workload, task.index, task.shared.clone());
        while let Some(due) = pacer.next() {
            if let Some(wait) = due.intended.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            measure::stamp(&mut payload, due.stamp_ns);
            for _ in 0..due.messages {
                let mut record = BaseRecord::<(), [u8], Box<u64>>::with_opaque_to(
                    &task.topic,
                    Box::new(due.stamp_ns),
                )
                .partition(due.partition as i32)
                .payload(&payload[..]);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((
                            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                            returned,
                        )) => {
                            record = returned;
                            std::thread::sleep(QUEUE_FULL_BACKOFF);
                        }
                        Err((error, _)) => {
                            task.shared.error("produce", error);
                            break;
                        }
                    }
                }
            }
        }
        producer.flush(Timeout::After(FLUSH_TIMEOUT))?;
        Ok(())
    }

    /// Ready (for the clock) once fetching has begun: every partition reported its end, or a
    /// message arrived (a backlog). librdkafka connects and looks up offsets lazily, and that
    /// start-up must not be timed as delivery latency.
    fn consume(&self, task: Task) -> Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.address)
            .set("group.id", format!("{}-reader", task.topic))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "100")
            .create()?;
        let partitions = task.workload.partitions_of_consumer(task.index);
        let mut assignment = TopicPartitionList::new();
        for partition in &partitions {
            assignment.add_partition_offset(
                &task.topic,
                *partition as i32,
                rdkafka::Offset::Beginning,
            )?;
        }
        consumer.assign(&assignment)?;
        let mut at_end = std::collections::HashSet::new();
        let mut ready = false;
        let ready_deadline = Instant::now() + READY_TIMEOUT;
        let become_ready = |ready: &mut bool| {
            if !*ready {
                *ready = true;
                task.shared.consumer_ready();
            }
        };
        if partitions.is_empty() {
            become_ready(&mut ready);
        }
        while !task.shared.stopping() {
            match consumer.poll(Duration::from_millis(50)) {
                Some(Ok(message)) => {
                    task.delivered(message.payload(), 1);
                    become_ready(&mut ready);
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    at_end.insert(partition);
                    if at_end.len() == partitions.len() {
                        become_ready(&mut ready);
                    }
                }
                Some(Err(error)) => task.shared.error("consume", error),
                None if Instant::now() > ready_deadline => become_ready(&mut ready),
                None => {}
            }
        }
        Ok(())
    }

    fn delete(&self, topic: &str, _: &Workload) -> Result<()> {
        let admin = self.admin()?;
        let results =
            tokio_runtime().block_on(admin.delete_topics(&[topic], &AdminOptions::new()))?;
        for result in results {
            result.map_err(|(topic, code)| format!("delete {topic}: {code}"))?;
        }
        Ok(())
    }
}
