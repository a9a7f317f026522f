//! Message move tasks (SQS's DLQ redrive): StartMessageMoveTask moves the messages available in
//! a dead-letter queue back to the queues they were dead-lettered from (their
//! `ringmq.dlq.topic` header, as the native `ringmq queue redrive` does) or to a named queue,
//! at a rate; ListMessageMoveTasks shows the tasks. The task runs on the shard that was asked,
//! receiving from the dead-letter queue's own queue group (so in-flight messages stay, as in
//! SQS), writing each copy durably before acknowledging the original: a crash moves a message
//! twice, never loses it. It stops after the messages that were available when it started, so
//! a queue that keeps receiving dead letters does not keep it running.
//!
//! Its record in the store is written when it starts, at most every `PROGRESS_INTERVAL` while it
//! runs (ApproximateNumberOfMessagesMoved) and when it ends. CancelMessageMoveTask writes it
//! CANCELLING, which the task sees at its next progress write and ends CANCELLED. The record
//! names the run of the shard that runs it (`_runner`): when that shard starts again, a task
//! its previous run left RUNNING (a crash, a restart) is marked FAILED with a FailureReason, as
//! SQS does with a task it cannot finish.

use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use serde_json::{Value, json};

use super::errors::{SqsError, from_broker};
use super::params::{self, Params};
use super::receipt;
use super::store::{self, SharedStore, TASK_PREFIX};
use super::{Handler, now_ms};
use crate::batch::{BatchBuilder, Compression, Record};
use crate::broker::ShardState;
use crate::broker::service::{
    AckLevel, PartitionChoice, Principal, Produce, Receive, ReceivedMessage, RequestContext,
    Service, Settle, SettleAction,
};

/// The headers a dead letter gets (`broker::queues::dead_letter`), dropped from its copy.
const DEAD_LETTER_HEADER_PREFIX: &str = "ringmq.dlq.";
/// SQS's fastest move task, and its default.
const RATE_MAX: i64 = 500;
/// Messages moved per receive.
const BATCH: u32 = 10;
/// How long the task holds a message it is moving.
const LOCK_MS: u32 = 60_000;
/// How often a running task records its progress and looks for a cancel.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);
/// The FailureReason of a task whose broker stopped while it ran.
const INTERRUPTED: &str = "the broker stopped while the task ran (a restart or a crash); start a new task to move the rest";
/// Fields of a task's record for the broker only, never shown: its runner and principal.
const RUNNER: &str = "_runner";
const PRINCIPAL: &str = "_principal";

fn queue_of_arn(arn: &str) -> Result<String, SqsError> {
    let queue = arn
        .strip_prefix("arn:")
        .and_then(|rest| rest.rsplit(':').next())
        .unwrap_or_default();
    params::check_queue_name(queue)
        .map_err(|_| SqsError::invalid_parameter_value(format!("{arn:?} is not a queue ARN")))?;
    Ok(queue.to_string())
}

/// What a task needs beyond the shard: who asked, and where its record lives.
struct Task {
    key: String,
    record: Value,
    source: String,
    destination: Option<String>,
    rate: u32,
    to_move: u64,
    ctx: RequestContext,
}

pub async fn start_message_move_task(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let source_arn = params::required(p, "SourceArn")?;
    let source = queue_of_arn(source_arn)?;
    h.check_exists(&source).await.map_err(|_| {
        SqsError::resource_not_found(format!("the source queue {source} does not exist"))
    })?;
    let destination_arn = params::string(p, "DestinationArn")?;
    let destination = destination_arn.map(queue_of_arn).transpose()?;
    if let Some(destination) = &destination {
        h.check_exists(destination).await.map_err(|_| {
            SqsError::resource_not_found(format!(
                "the destination queue {destination} does not exist"
            ))
        })?;
    }
    let rate = params::bounded(p, "MaxNumberOfMessagesPerSecond", 1, RATE_MAX)?.unwrap_or(RATE_MAX);
    store::refresh(&h.store, &h.service, &h.ctx).await?;
    fail_interrupted(&h.state, &h.store, &h.ctx).await;
    if store::tasks_of(&h.store, &source)
        .iter()
        .any(|(_, task)| task["Status"] == "RUNNING" || task["Status"] == "CANCELLING")
    {
        return Err(SqsError::unsupported_operation(format!(
            "a message move task is already running on {source}"
        )));
    }
    let described = h
        .service
        .describe_queue_group(&h.ctx, &source, &source)
        .await
        .map_err(from_broker)?;
    let to_move: u64 = described
        .partitions
        .iter()
        .map(|partition| partition.view.available)
        .sum();
    let started = now_ms();
    let id = format!("{:016x}", receipt::new_nonce());
    let key = format!("{TASK_PREFIX}{source}:{started:020}:{id}");
    let handle = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        json!({ "taskId": id, "sourceArn": source_arn }).to_string(),
    );
    let mut record = json!({
        "TaskHandle": handle,
        "Status": "RUNNING",
        "SourceArn": source_arn,
        "MaxNumberOfMessagesPerSecond": rate,
        "ApproximateNumberOfMessagesMoved": 0,
        "ApproximateNumberOfMessagesToMove": to_move,
        "StartedTimestamp": started,
    });
    if let Some(arn) = destination_arn {
        record["DestinationArn"] = Value::String(arn.to_string());
    }
    record[RUNNER] = Value::String(h.store.borrow().runner());
    if let Principal::User(user) = &h.ctx.principal {
        record[PRINCIPAL] = Value::String(user.clone());
    }
    store::put_task(&h.store, &h.service, &h.ctx, &key, &record).await?;
    let task = Task {
        key,
        record,
        source,
        destination,
        rate: rate as u32,
        to_move,
        ctx: h.ctx.clone(),
    };
    crate::runtime::spawn_detached(run(h.state.clone(), h.store.clone(), task));
    Ok(json!({ "TaskHandle": handle }))
}

pub async fn list_message_move_tasks(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let source = queue_of_arn(params::required(p, "SourceArn")?)?;
    let max = params::bounded(p, "MaxResults", 1, 10)?.unwrap_or(1) as usize;
    store::refresh(&h.store, &h.service, &h.ctx).await?;
    fail_interrupted(&h.state, &h.store, &h.ctx).await;
    let results: Vec<Value> = store::tasks_of(&h.store, &source)
        .into_iter()
        .take(max)
        .map(|(_, mut task)| {
            let running = task["Status"] == "RUNNING";
            if let Some(fields) = task.as_object_mut() {
                fields.retain(|name, _| !name.starts_with('_'));
                if !running {
                    fields.remove("TaskHandle");
                }
            }
            task
        })
        .collect();
    Ok(json!({ "Results": results }))
}

/// CancelMessageMoveTask: only a RUNNING task, which becomes CANCELLING (and CANCELLED once it
/// stops); answers how many it had moved.
pub async fn cancel_message_move_task(h: &Handler, p: &Params) -> Result<Value, SqsError> {
    let handle = params::required(p, "TaskHandle")?;
    let unknown =
        || SqsError::resource_not_found("no running message move task has this TaskHandle");
    let decoded = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, handle)
        .map_err(|_| unknown())?;
    let named: Value = serde_json::from_slice(&decoded).map_err(|_| unknown())?;
    let source = queue_of_arn(named["sourceArn"].as_str().ok_or_else(unknown)?)?;
    store::refresh(&h.store, &h.service, &h.ctx).await?;
    fail_interrupted(&h.state, &h.store, &h.ctx).await;
    let (key, mut record) = store::tasks_of(&h.store, &source)
        .into_iter()
        .find(|(_, task)| task["TaskHandle"] == handle)
        .ok_or_else(unknown)?;
    if record["Status"] != "RUNNING" {
        return Err(SqsError::resource_not_found(format!(
            "only a RUNNING message move task can be cancelled; this one is {}",
            record["Status"].as_str().unwrap_or_default()
        )));
    }
    record["Status"] = Value::String("CANCELLING".into());
    store::put_task(&h.store, &h.service, &h.ctx, &key, &record).await?;
    Ok(json!({ "ApproximateNumberOfMessagesMoved": record["ApproximateNumberOfMessagesMoved"] }))
}

/// Marks FAILED (or CANCELLED, when it was being cancelled) each task an earlier run of this
/// shard left RUNNING: nothing runs it any more. Tasks of a shard the broker no longer has are
/// shard 0's to mark. Best effort: a task left unmarked is marked at the next look.
pub async fn fail_interrupted(state: &Rc<ShardState>, store: &SharedStore, ctx: &RequestContext) {
    let (me, shard) = {
        let store = store.borrow();
        (store.runner(), store.shard())
    };
    let shards = state.config.shards.max(1);
    for (key, mut task) in store::active_tasks(store) {
        let runner = task[RUNNER].as_str().unwrap_or_default();
        let owner = runner
            .split(':')
            .next()
            .and_then(|id| id.parse::<usize>().ok())
            .map_or(0, |id| if id < shards { id } else { 0 });
        if owner != shard || runner == me {
            continue;
        }
        let cancelled = task["Status"] == "CANCELLING";
        task["Status"] = Value::String(if cancelled { "CANCELLED" } else { "FAILED" }.into());
        if !cancelled {
            task["FailureReason"] = Value::String(INTERRUPTED.into());
        }
        let mut ctx = ctx.clone();
        if let Some(user) = task[PRINCIPAL].as_str() {
            ctx.principal = Principal::User(user.to_string());
        }
        let service = Service::new(state.clone());
        if let Err(error) = store::put_task(store, &service, &ctx, &key, &task).await {
            tracing::warn!(code = error.code, message = %error.message, "an interrupted message move task was not marked");
        }
    }
}

/// At a shard's start: marks what its previous run left RUNNING, as the broker itself (its
/// first super user, when ACLs are on), retrying while the shards still start.
pub async fn fail_interrupted_at_start(state: Rc<ShardState>, store: SharedStore) {
    let mut ctx = RequestContext::new(
        "ringmq-sqs",
        Duration::from_millis(state.config.shard_call_timeout_ms),
    );
    if let Some(user) = state
        .config
        .super_users
        .iter()
        .find_map(|name| name.strip_prefix("User:"))
    {
        ctx.principal = Principal::User(user.to_string());
    }
    let service = Service::new(state.clone());
    for attempt in 0..5u32 {
        crate::runtime::sleep(Duration::from_millis(200) * (attempt + 1)).await;
        if state.lifecycle.stopping.get() {
            return;
        }
        ctx.deadline = Instant::now() + Duration::from_millis(state.config.shard_call_timeout_ms);
        if store::refresh(&store, &service, &ctx).await.is_ok() {
            fail_interrupted(&state, &store, &ctx).await;
            return;
        }
    }
}

/// A context for one step of a task: the asker's principal, a fresh deadline.
fn step_context(state: &ShardState, task: &Task) -> RequestContext {
    let mut ctx = RequestContext::new(
        task.ctx.client_id.clone(),
        Duration::from_millis(state.config.shard_call_timeout_ms),
    );
    ctx.principal = task.ctx.principal.clone();
    ctx
}

async fn run(state: Rc<ShardState>, shared: SharedStore, mut task: Task) {
    let service = Service::new(state.clone());
    let outcome = move_all(&state, &service, &shared, &mut task).await;
    let (status, moved) = match &outcome {
        Ok((moved, false)) => ("COMPLETED", *moved),
        Ok((moved, true)) => ("CANCELLED", *moved),
        Err((moved, _)) => ("FAILED", *moved),
    };
    task.record["Status"] = Value::String(status.into());
    task.record["ApproximateNumberOfMessagesMoved"] = json!(moved);
    if let Err((_, error)) = &outcome {
        task.record["FailureReason"] = Value::String(error.message.clone());
    }
    let ctx = step_context(&state, &task);
    if let Err(error) = store::put_task(&shared, &service, &ctx, &task.key, &task.record).await {
        tracing::warn!(code = error.code, message = %error.message, "a message move task's end was not recorded");
    }
}

/// Records the task's progress if it moved any since the last record; true if it was
/// cancelled meanwhile. A failed look or write is retried at the next one.
async fn checkpoint(
    state: &ShardState,
    service: &Service,
    shared: &SharedStore,
    task: &mut Task,
    moved: u64,
) -> bool {
    let ctx = step_context(state, task);
    if let Err(error) = store::refresh(shared, service, &ctx).await {
        tracing::debug!(
            code = error.code,
            "a message move task's record was not read"
        );
        return false;
    }
    if store::task(shared, &task.key).is_some_and(|record| record["Status"] == "CANCELLING") {
        return true;
    }
    if task.record["ApproximateNumberOfMessagesMoved"] == json!(moved) {
        return false;
    }
    task.record["ApproximateNumberOfMessagesMoved"] = json!(moved);
    if let Err(error) = store::put_task(shared, service, &ctx, &task.key, &task.record).await {
        tracing::debug!(
            code = error.code,
            "a message move task's progress was not recorded"
        );
    }
    false
}

/// Moves up to the task's count: how many it moved and whether it was cancelled, or how many
/// and why it stopped early.
async fn move_all(
    state: &ShardState,
    service: &Service,
    shared: &SharedStore,
    task: &mut Task,
) -> Result<(u64, bool), (u64, SqsError)> {
    let consumer = receipt::consumer(receipt::new_nonce());
    let started = Instant::now();
    let mut checked = Instant::now();
    let mut moved = 0u64;
    while moved < task.to_move {
        let ctx = step_context(state, task);
        let wanted = (task.to_move - moved).min(u64::from(BATCH)) as u32;
        let receive = Receive {
            topic: task.source.clone(),
            group: task.source.clone(),
            consumer: consumer.clone(),
            max_messages: wanted,
            max_bytes: 0,
            wait_ms: 0,
            visibility_timeout_ms: LOCK_MS,
            create: false,
        };
        let messages = service
            .receive(&ctx, receive)
            .await
            .map_err(|error| (moved, from_broker(error)))?;
        if messages.is_empty() {
            break;
        }
        let mut held = messages.iter();
        while let Some(message) = held.next() {
            // A fresh deadline per message: pacing may stretch a batch past the call timeout.
            let ctx = step_context(state, task);
            let stopping = state.lifecycle.stopping.get();
            if stopping || checked.elapsed() >= PROGRESS_INTERVAL {
                checked = Instant::now();
                if stopping || checkpoint(state, service, shared, task, moved).await {
                    // What it holds and will not move is available again at once.
                    let rest: Vec<_> = std::iter::once(message).chain(held).collect();
                    release(service, &ctx, task, &consumer, &rest).await;
                    if stopping {
                        return Err((moved, SqsError::service_unavailable(INTERRUPTED)));
                    }
                    return Ok((moved, true));
                }
            }
            move_one(service, &ctx, task, &consumer, message)
                .await
                .map_err(|error| (moved, error))?;
            moved += 1;
            // Paced: the n-th message no sooner than n / rate seconds after the start.
            let due = Duration::from_secs_f64(moved as f64 / f64::from(task.rate.max(1)));
            crate::runtime::sleep(due.saturating_sub(started.elapsed())).await;
        }
    }
    Ok((moved, false))
}

async fn release(
    service: &Service,
    ctx: &RequestContext,
    task: &Task,
    consumer: &str,
    messages: &[&ReceivedMessage],
) {
    let settle = Settle {
        topic: task.source.clone(),
        group: task.source.clone(),
        consumer: consumer.to_string(),
        action: SettleAction::Release { delay_ms: 0 },
        ranges: messages
            .iter()
            .map(|message| (message.partition, message.offset, message.offset))
            .collect(),
    };
    if let Err(error) = service.settle(ctx, settle).await {
        tracing::debug!(%error, "a cancelled move task's messages stay locked until their timeout");
    }
}

async fn move_one(
    service: &Service,
    ctx: &RequestContext,
    task: &Task,
    consumer: &str,
    message: &ReceivedMessage,
) -> Result<(), SqsError> {
    let target = match &task.destination {
        Some(destination) => destination.clone(),
        None => message
            .headers
            .iter()
            .find(|header| header.key == "ringmq.dlq.topic")
            .and_then(|header| std::str::from_utf8(header.value.as_deref()?).ok())
            .map(str::to_string)
            .ok_or_else(|| {
                SqsError::invalid_parameter_value(
                    "a message has no source queue (ringmq.dlq.topic): name a DestinationArn",
                )
            })?,
    };
    let mut record = Record::new(
        message.timestamp_ms,
        message.key.as_deref(),
        message.value.as_deref(),
    );
    record.headers = message
        .headers
        .iter()
        .filter(|header| !header.key.starts_with(DEAD_LETTER_HEADER_PREFIX))
        .cloned()
        .collect();
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(record);
    let partitions = service
        .topic(ctx, &target)
        .map_err(from_broker)?
        .partitions
        .max(1);
    let produce = Produce {
        topic: target,
        partition: PartitionChoice::Index(message.partition % partitions),
        acks: AckLevel::Fsynced,
        records: BytesMut::from(&builder.build()[..]),
    };
    service.produce(ctx, produce).await.map_err(from_broker)?;
    let settle = Settle {
        topic: task.source.clone(),
        group: task.source.clone(),
        consumer: consumer.to_string(),
        action: SettleAction::Ack,
        ranges: vec![(message.partition, message.offset, message.offset)],
    };
    service.settle(ctx, settle).await.map_err(from_broker)
}
