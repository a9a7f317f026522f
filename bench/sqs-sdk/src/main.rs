//! Load through aws-sdk-sqs against ringmq's SQS door: messages/s for SendMessageBatch (10 per
//! call) and for ReceiveMessage (10) + DeleteMessageBatch, each with `CONCURRENCY` tasks for
//! `SECONDS`, then the latency of a long-polled receive (a send while one receive waits: from
//! the send issued to the waiting receive's answer). Usage: ringmq-sqs-bench ENDPOINT [SECONDS] [CONCURRENCY].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, SendMessageBatchRequestEntry};

const BODY_BYTES: usize = 100;

fn client(endpoint: &str) -> Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("bench", "bench", None, None, "static"))
        .build();
    Client::from_conf(config)
}

async fn send_load(client: Client, url: String, until: Instant, sent: Arc<AtomicU64>) {
    let body = "x".repeat(BODY_BYTES);
    while Instant::now() < until {
        let entries = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&body)
                    .build()
                    .expect("id and body set")
            })
            .collect();
        let answer = client
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("send_message_batch");
        sent.fetch_add(answer.successful().len() as u64, Ordering::Relaxed);
    }
}

async fn receive_load(client: Client, url: String, until: Instant, done: Arc<AtomicU64>) {
    while Instant::now() < until {
        let answer = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive_message");
        let messages = answer.messages();
        if messages.is_empty() {
            continue;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, message)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(message.receipt_handle().unwrap_or_default())
                    .build()
                    .expect("id and handle set")
            })
            .collect();
        let deleted = client
            .delete_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("delete_message_batch");
        done.fetch_add(deleted.successful().len() as u64, Ordering::Relaxed);
    }
}

async fn phase<F, Fut>(name: &str, seconds: u64, concurrency: usize, task: F) -> u64
where
    F: Fn(Instant, Arc<AtomicU64>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| tokio::spawn(task(until, count.clone())))
        .collect();
    for handle in tasks {
        handle.await.expect("task");
    }
    let total = count.load(Ordering::Relaxed);
    let rate = total as f64 / started.elapsed().as_secs_f64();
    println!("{name}: {total} messages, {rate:.0} msg/s ({concurrency} tasks, batches of 10)");
    total
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = args
        .get(1)
        .cloned()
        .unwrap_or("http://127.0.0.1:9324".into());
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let concurrency: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let client = client(&endpoint);
    let url = client
        .create_queue()
        .queue_name("bench")
        .send()
        .await
        .expect("create_queue")
        .queue_url()
        .unwrap_or_default()
        .to_string();
    let (c, u) = (client.clone(), url.clone());
    phase(
        "SendMessageBatch",
        seconds,
        concurrency,
        move |until, count| send_load(c.clone(), u.clone(), until, count),
    )
    .await;
    let (c, u) = (client.clone(), url.clone());
    phase(
        "ReceiveMessage+DeleteMessageBatch",
        seconds,
        concurrency,
        move |until, count| receive_load(c.clone(), u.clone(), until, count),
    )
    .await;
    client
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .expect("purge");
    let mut histogram = hdrhistogram::Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..200 {
        let waiting = {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let answer = client
                    .receive_message()
                    .queue_url(&url)
                    .wait_time_seconds(20)
                    .send()
                    .await
                    .expect("long poll");
                let at = Instant::now();
                for message in answer.messages() {
                    client
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(message.receipt_handle().unwrap_or_default())
                        .send()
                        .await
                        .expect("delete");
                }
                at
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = Instant::now();
        client
            .send_message()
            .queue_url(&url)
            .message_body("wake")
            .send()
            .await
            .expect("send");
        let received = waiting.await.expect("receive task");
        histogram
            .record(received.saturating_duration_since(sent).as_micros() as u64)
            .expect("in range");
    }
    println!(
        "long-polled receive, send issued -> receive answered: p50 {} us, p99 {} us, max {} us (200 samples)",
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.99),
        histogram.max()
    );
}
