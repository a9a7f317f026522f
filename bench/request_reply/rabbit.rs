//! RabbitMQ's side of the request/reply benchmark, through `lapin` on tokio: direct reply-to
//! (`amq.rabbitmq.reply-to`: replies go straight to the requester's channel, never queued),
//! a non-durable request queue, transient messages, and a responder that consumes without
//! acknowledgements and publishes each reply to the request's `reply_to` with its correlation
//! id. The same shapes as ringmq's: closed loops with N requests in flight over 4 connections,
//! and an open loop at a given rate.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
    QueuePurgeOptions,
};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tokio::sync::oneshot;

use super::{CONNECTIONS, Latency, MESSAGE_BYTES, OPEN_LOOP_INFLIGHT_MAX, TIMEOUT, due};

const QUEUE: &str = "rpc";
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// A consumer of `queue` whose deliveries need no acknowledgement (as direct reply-to requires).
async fn consume_without_acks(channel: &Channel, queue: &str, tag: &str) -> lapin::Consumer {
    let options = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    channel
        .basic_consume(queue.into(), tag.into(), options, FieldTable::default())
        .await
        .expect("RabbitMQ lets us consume")
}

/// The broker's address and its responder, which runs on a thread of its own.
pub struct Rabbit {
    uri: String,
}

impl Rabbit {
    /// Declares (and empties) the request queue and starts the responder.
    pub fn start(uri: &str) -> Rabbit {
        let (ready, started) = std::sync::mpsc::channel();
        let at = uri.to_string();
        std::thread::spawn(move || {
            runtime().block_on(async move {
                let connection = Connection::connect(&at, ConnectionProperties::default())
                    .await
                    .expect("RabbitMQ answers");
                let channel = connection.create_channel().await.unwrap();
                channel
                    .queue_declare(
                        QUEUE.into(),
                        QueueDeclareOptions::default(),
                        FieldTable::default(),
                    )
                    .await
                    .unwrap();
                channel
                    .queue_purge(QUEUE.into(), QueuePurgeOptions::default())
                    .await
                    .unwrap();
                channel
                    .basic_qos(1000, BasicQosOptions::default())
                    .await
                    .unwrap();
                let mut requests = consume_without_acks(&channel, QUEUE, "responder").await;
                ready.send(()).unwrap();
                while let Some(Ok(request)) = requests.next().await {
                    let properties = &request.properties;
                    let (Some(reply_to), Some(correlation_id)) =
                        (properties.reply_to(), properties.correlation_id())
                    else {
                        continue;
                    };
                    let reply =
                        BasicProperties::default().with_correlation_id(correlation_id.clone());
                    let sent = channel
                        .basic_publish(
                            "".into(),
                            reply_to.clone(),
                            BasicPublishOptions::default(),
                            &request.data,
                            reply,
                        )
                        .await;
                    if sent.is_err() {
                        return;
                    }
                }
            });
        });
        // A responder that cannot start leaves this waiting: better a clear panic.
        started
            .recv_timeout(Duration::from_secs(30))
            .expect("the RabbitMQ responder started");
        Rabbit {
            uri: uri.to_string(),
        }
    }

    async fn requesters(&self) -> Vec<Arc<Requester>> {
        let mut requesters = Vec::new();
        for _ in 0..CONNECTIONS {
            let requester = Requester::connect(&self.uri).await;
            requester.request().await.expect("a first round trip");
            requesters.push(requester);
        }
        requesters
    }

    /// Round trips per second with `concurrency` requests in flight for `seconds`.
    pub fn closed_loop(&self, concurrency: usize, seconds: f64) -> f64 {
        runtime().block_on(async {
            let requesters = self.requesters().await;
            let budget = Duration::from_secs_f64(seconds);
            let started = Instant::now();
            let loops: Vec<_> = (0..concurrency)
                .map(|n| {
                    let requester = requesters[n % requesters.len()].clone();
                    tokio::spawn(async move {
                        let mut done = 0u64;
                        while started.elapsed() < budget {
                            if requester.request().await.is_ok() {
                                done += 1;
                            }
                        }
                        done
                    })
                })
                .collect();
            let mut done = 0;
            for one in loops {
                done += one.await.unwrap_or(0);
            }
            done as f64 / started.elapsed().as_secs_f64()
        })
    }

    /// Latency with requests offered at `rate` per second for `seconds`.
    pub fn open_loop(&self, rate: f64, seconds: f64) -> Latency {
        runtime().block_on(async {
            let requesters = self.requesters().await;
            let histogram = Arc::new(Mutex::new(super::new_histogram()));
            let errors = Arc::new(Mutex::new(0u64));
            let inflight = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let total = (rate * seconds) as u64;
            let started = Instant::now();
            let (mut sent, mut tasks) = (0u64, Vec::new());
            while sent < total {
                let now = Instant::now();
                while sent < total && due(started, sent, rate) <= now {
                    let intended = due(started, sent, rate);
                    let requester = requesters[sent as usize % requesters.len()].clone();
                    sent += 1;
                    let ordering = std::sync::atomic::Ordering::Relaxed;
                    if inflight.load(ordering) >= OPEN_LOOP_INFLIGHT_MAX {
                        *errors.lock().unwrap() += 1;
                        continue;
                    }
                    inflight.fetch_add(1, ordering);
                    let (histogram, errors, inflight) =
                        (histogram.clone(), errors.clone(), inflight.clone());
                    tasks.push(tokio::spawn(async move {
                        match requester.request().await {
                            Ok(()) => {
                                let micros = intended.elapsed().as_micros() as u64;
                                histogram.lock().unwrap().saturating_record(micros.max(1));
                            }
                            Err(()) => *errors.lock().unwrap() += 1,
                        }
                        inflight.fetch_sub(1, ordering);
                    }));
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
            for task in tasks {
                let _ = task.await;
            }
            let errors = *errors.lock().unwrap();
            super::latency_of(&histogram.lock().unwrap(), errors)
        })
    }
}

/// One connection's channel consuming its direct reply-to, and the requests awaiting replies.
struct Requester {
    _connection: Connection,
    channel: Channel,
    waiting: Mutex<HashMap<String, oneshot::Sender<()>>>,
    next: std::sync::atomic::AtomicU64,
}

impl Requester {
    async fn connect(uri: &str) -> Arc<Requester> {
        let connection = Connection::connect(uri, ConnectionProperties::default())
            .await
            .expect("RabbitMQ answers");
        let channel = connection.create_channel().await.unwrap();
        // Direct reply-to: consume the pseudo-queue without acks before publishing with it.
        let mut replies = consume_without_acks(&channel, DIRECT_REPLY_TO, "requester").await;
        let requester = Arc::new(Requester {
            _connection: connection,
            channel,
            waiting: Mutex::default(),
            next: Default::default(),
        });
        let weak = Arc::downgrade(&requester);
        tokio::spawn(async move {
            while let Some(Ok(reply)) = replies.next().await {
                let Some(requester) = weak.upgrade() else {
                    return;
                };
                let id = reply
                    .properties
                    .correlation_id()
                    .as_ref()
                    .map(|id| id.as_str());
                let sender = id.and_then(|id| requester.waiting.lock().unwrap().remove(id));
                if let Some(sender) = sender {
                    let _ = sender.send(());
                }
            }
        });
        requester
    }

    /// One round trip: publish a request with the direct reply-to, wait for its reply.
    async fn request(&self) -> Result<(), ()> {
        let number = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = number.to_string();
        let (sender, reply) = oneshot::channel();
        self.waiting.lock().unwrap().insert(id.clone(), sender);
        let properties = BasicProperties::default()
            .with_reply_to(DIRECT_REPLY_TO.into())
            .with_correlation_id(ShortString::from(id.clone()));
        let published = self
            .channel
            .basic_publish(
                "".into(),
                QUEUE.into(),
                BasicPublishOptions::default(),
                &[7u8; MESSAGE_BYTES],
                properties,
            )
            .await;
        if published.is_err() {
            self.waiting.lock().unwrap().remove(&id);
            return Err(());
        }
        let answered = tokio::time::timeout(TIMEOUT, reply).await;
        self.waiting.lock().unwrap().remove(&id);
        match answered {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }
}
