//! The SQS-compatible HTTP API, a third front door: boto3, the AWS CLI and the AWS SDKs send
//! their SQS calls here unchanged (their endpoint set to `sqs_listen`). A queue is a topic with a
//! queue group of the same name, so a queue made here is one `ringmq queue` sees, and the
//! other way round. Like the Kafka door it calls only the broker service.
//!
//! Files, one concept each: `http` (HTTP/1.1 framing with keep-alive, bounded), `protocol`
//! (the JSON and query protocols, one JSON shape inside), `errors` (SQS's codes and the
//! `ErrorKind` table), `auth` (SigV4 and principals), `params` (reading parameters), the actions
//! (`queue_actions`, `message_actions`), `attributes` (queue attributes), `message_attributes`
//! (message attributes, headers and SQS's MD5s), `receipt` (receipt handles), `move_tasks`
//! (dead-letter redrive) and `store` (the SQS-only part of a queue, durable in an internal
//! topic).
//!
//! This file is the adapter onto the connection layer (`net`): the same accept path,
//! connection cap, in-flight bounds, timeouts and shutdown drain as the other doors, with HTTP's
//! own framing; answers go out in request order, as HTTP/1.1 requires of pipelined requests.

mod attributes;
mod auth;
mod errors;
mod http;
mod message_actions;
mod message_attributes;
mod move_tasks;
mod params;
mod protocol;
mod queue_actions;
mod receipt;
mod store;

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::broker::ShardState;
use crate::broker::service::{Principal, QuotaKind, RequestContext, SaslSession, Service};
use crate::net::{Decoded, Listener, Wire};
use crate::protocol::codec::FrameStatus;
use errors::SqsError;
use protocol::Protocol;

/// The actions served, each a label of `ringmq_sqs_requests_total`.
pub const ACTIONS: [&str; 21] = [
    "CreateQueue",
    "GetQueueUrl",
    "ListQueues",
    "DeleteQueue",
    "GetQueueAttributes",
    "SetQueueAttributes",
    "PurgeQueue",
    "SendMessage",
    "SendMessageBatch",
    "ReceiveMessage",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
    "ListDeadLetterSourceQueues",
    "TagQueue",
    "UntagQueue",
    "ListQueueTags",
    "StartMessageMoveTask",
    "ListMessageMoveTasks",
    "CancelMessageMoveTask",
];

/// Registers the help text of the SQS door's metrics.
pub(crate) fn describe_metrics() {
    metrics::describe_counter!(
        "ringmq_sqs_requests_total",
        "SQS API requests by action and outcome (ok, client_error, server_error)."
    );
    metrics::describe_gauge!(
        "ringmq_sqs_store_records",
        "Queues' SQS records and message move tasks the shard holds from __sqs_queues."
    );
    metrics::describe_gauge!(
        "ringmq_sqs_store_records_max",
        "The most keys a shard's fold of __sqs_queues holds (sqs.store_keys_max)."
    );
    metrics::describe_counter!(
        "ringmq_sqs_store_ignored_total",
        "Records of __sqs_queues a shard ignored because its fold was full."
    );
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// Every parser of the door run on hostile bytes, as a request would reach them: framing, the
/// head, the protocol's parameters, and the receipt handle and message attributes they name.
/// The fuzz tests' entry point (`tests/sqs_fuzz.rs`); it must never panic. Returns the action
/// when the bytes parse that far.
#[doc(hidden)]
pub fn parse_untrusted(bytes: &[u8]) -> Option<String> {
    let _ = http::interim(bytes, 4096);
    let frame = match http::frame(bytes, 4096, 1 << 20) {
        FrameStatus::Ready(size) => bytes.get(..size)?,
        FrameStatus::Incomplete | FrameStatus::TooLarge(_) => return None,
    };
    let request = http::parse(BytesMut::from(frame), 4096).ok()?;
    let _ = auth::principal(&crate::config::SqsConfig::default(), &request, None);
    let call = protocol::parse(&request).ok()?;
    if let Some(handle) = params::string(&call.params, "ReceiptHandle").ok().flatten() {
        let _ = receipt::Receipt::decode(handle, "q");
    }
    let _ = message_attributes::parse(call.params.get("MessageAttributes"));
    let _ = params::queue_of(&call.params, &request.path);
    let _ = protocol::success(
        call.protocol,
        &call.action,
        serde_json::Value::Object(call.params.clone()),
    );
    params::retain_known(&call.action, &mut call.params.clone());
    Some(call.action)
}

/// The SQS door of one shard; its clones (one per connection) share the shard's fold of the
/// queues' SQS records.
#[derive(Clone)]
pub(crate) struct Sqs {
    store: store::SharedStore,
    /// The principal this connection's client certificate names (mutual TLS), each connection
    /// its own (`for_connection`); None without one.
    certified: Rc<std::cell::RefCell<Option<Principal>>>,
    head_bytes_max: usize,
    body_bytes_max: usize,
    /// What a ReceiveMessage answer reserves in the connection layer.
    receive_bytes_bound: usize,
}

impl Sqs {
    pub(crate) fn new(state: &Rc<ShardState>) -> Sqs {
        let config = &state.config.sqs;
        // XML escapes a byte into at most 6 (`&quot;`); a receive returns its budget plus at
        // most one message past it.
        let bodies = (message_actions::RECEIVE_BYTES as usize)
            .saturating_add(config.message_bytes_max as usize);
        let store = Rc::new(std::cell::RefCell::new(store::Store::new(
            state.id,
            config.store_keys_max,
        )));
        crate::runtime::spawn_detached(move_tasks::fail_interrupted_at_start(
            state.clone(),
            store.clone(),
        ));
        Sqs {
            store,
            certified: Rc::default(),
            head_bytes_max: config.head_bytes_max,
            body_bytes_max: config.body_bytes_max,
            receive_bytes_bound: bodies.saturating_mul(6).saturating_add(64 * 1024),
        }
    }
}

/// One request being served: the service, who asks, and where the queue URLs point.
pub(crate) struct Handler {
    pub service: Service,
    pub ctx: RequestContext,
    pub store: store::SharedStore,
    pub state: Rc<ShardState>,
    /// The Host the client reached us at, for queue URLs.
    pub host: String,
    /// The request's path (the query protocol may name the queue by it).
    pub path: String,
}

impl Handler {
    pub fn queue_url(&self, queue: &str) -> String {
        let config = &self.state.config;
        let scheme = match config.sqs_tls.cert_path {
            Some(_) => "https",
            None => "http",
        };
        format!("{scheme}://{}/{}/{queue}", self.host, config.sqs.account_id)
    }
}

/// Whether `request` may be a ReceiveMessage, whose answer needs the large reservation. Errs
/// on the side of yes: the action named in any form it can take (the JSON target, the query
/// string or a form body, percent-encoded or not), or the name anywhere in the body.
fn is_receive(request: &http::Request) -> bool {
    let marker: &[u8] = b"ReceiveMessage";
    let names_receive = |form: &[u8]| {
        form_urlencoded::parse(form)
            .any(|(key, value)| key == "Action" && value == "ReceiveMessage")
    };
    request
        .header("x-amz-target")
        .is_some_and(|target| target.ends_with("ReceiveMessage"))
        || request.query.contains("ReceiveMessage")
        || names_receive(request.query.as_bytes())
        || names_receive(&request.body)
        || request
            .body
            .windows(marker.len())
            .any(|window| window == marker)
}

impl Wire for Sqs {
    type Request = http::Request;
    const LISTENER: Listener = Listener::Sqs;
    const ORDERED: bool = true;

    fn for_connection(&self) -> Self {
        Sqs {
            certified: Rc::default(),
            ..self.clone()
        }
    }

    fn client_certificate(&self, state: &ShardState, certificate: &[u8]) {
        // The door has no SASL: a certificate with a usable subject always names the principal.
        let from = state.config.sqs_tls.principal;
        if let Some(session) = SaslSession::certified(certificate, from, &[]) {
            *self.certified.borrow_mut() = Some(session.principal());
        }
    }

    fn frame(&self, buffer: &[u8], _frame_bytes_max: usize) -> FrameStatus {
        http::frame(buffer, self.head_bytes_max, self.body_bytes_max)
    }

    fn read_room(&self, buffer: &[u8], chunk_bytes: usize) -> usize {
        http::read_room(buffer, chunk_bytes, self.head_bytes_max)
    }

    fn interim(&self, buffer: &[u8]) -> Option<Vec<Bytes>> {
        http::interim(buffer, self.head_bytes_max)
    }

    fn decode(&self, _state: &ShardState, frame: BytesMut) -> Decoded<http::Request> {
        match http::parse(frame, self.head_bytes_max) {
            Ok(request) => Decoded::Request(request),
            Err(refusal) => Decoded::Close(Some(http::refusal_response(&refusal))),
        }
    }

    fn too_large(&self, size: usize, _limit: usize) -> Option<Vec<Bytes>> {
        Some(http::refusal_response(&http::Refusal {
            status: 413,
            message: format!(
                "a body of {size} bytes is over sqs.body_bytes_max ({})",
                self.body_bytes_max
            ),
        }))
    }

    fn response_bytes_bound(&self, _state: &ShardState, request: &http::Request) -> usize {
        if is_receive(request) {
            self.receive_bytes_bound
        } else {
            0
        }
    }

    async fn handle(self, state: Rc<ShardState>, request: http::Request) -> Vec<Bytes> {
        let protocol = protocol::protocol_of(&request);
        let (action, outcome) = serve(&self, state, &request).await;
        let label = ACTIONS
            .iter()
            .find(|known| **known == action)
            .copied()
            .unwrap_or("unknown");
        let (result, response) = match outcome {
            Ok(value) => ("ok", protocol::success(protocol, &action, value)),
            Err(error) => {
                let result = if error.sender {
                    "client_error"
                } else {
                    "server_error"
                };
                if !error.sender {
                    tracing::warn!(action = label, code = error.code, message = %error.message, "sqs request failed");
                }
                (result, protocol::failure(protocol, &error))
            }
        };
        metrics::counter!("ringmq_sqs_requests_total", "action" => label, "outcome" => result)
            .increment(1);
        response
    }
}

/// Authenticates, parses and runs one request: its action and its result.
async fn serve(
    sqs: &Sqs,
    state: Rc<ShardState>,
    request: &http::Request,
) -> (String, Result<serde_json::Value, SqsError>) {
    if request.method != "POST" && request.method != "GET" {
        let refused = SqsError::invalid_action(format!("method {} is not served", request.method));
        return (String::new(), Err(refused));
    }
    let mut call = match protocol::parse(request) {
        Ok(call) => call,
        Err(error) => return (String::new(), Err(error)),
    };
    params::retain_known(&call.action, &mut call.params);
    if call.protocol == Protocol::Json
        && request
            .header("content-type")
            .is_some_and(|kind| !kind.starts_with("application/x-amz-json"))
    {
        let refused =
            SqsError::malformed("the JSON protocol's Content-Type is application/x-amz-json-1.0");
        return (call.action, Err(refused));
    }
    let certified = sqs.certified.borrow().clone();
    let principal = match auth::principal(&state.config.sqs, request, certified.as_ref()) {
        Ok(principal) => principal,
        Err(error) => return (call.action, Err(error)),
    };
    let mut ctx = RequestContext::new(
        request
            .header("user-agent")
            .unwrap_or_default()
            .chars()
            .take(64)
            .collect::<String>(),
        Duration::from_millis(state.config.shard_call_timeout_ms),
    );
    ctx.principal = principal;
    let handler = Handler {
        service: Service::new(state.clone()),
        ctx,
        store: sqs.store.clone(),
        host: request
            .header("host")
            .unwrap_or("localhost")
            .chars()
            .take(255)
            .collect(),
        path: request.path.clone(),
        state,
    };
    // Quotas as on the other doors: each request, a send's bytes in, a receive's bytes out; the
    // answer is held back for what they say.
    let mut hold = handler
        .service
        .charge_quota(&handler.ctx, QuotaKind::Requests, 1);
    if call.action.starts_with("SendMessage") {
        let bytes = request.body.len() as u64;
        hold = hold.max(
            handler
                .service
                .charge_quota(&handler.ctx, QuotaKind::ProduceBytes, bytes),
        );
    }
    let outcome = run(&handler, &call.action, &call.params).await;
    if call.action == "ReceiveMessage"
        && let Ok(answer) = &outcome
    {
        let bytes = answer.to_string().len() as u64;
        hold = hold.max(
            handler
                .service
                .charge_quota(&handler.ctx, QuotaKind::FetchBytes, bytes),
        );
    }
    if !hold.is_zero() {
        crate::runtime::sleep(hold).await;
    }
    (call.action, outcome)
}

async fn run(h: &Handler, action: &str, p: &params::Params) -> Result<serde_json::Value, SqsError> {
    use message_actions as m;
    use queue_actions as q;
    match action {
        "CreateQueue" => q::create_queue(h, p).await,
        "GetQueueUrl" => q::get_queue_url(h, p).await,
        "ListQueues" => q::list_queues(h, p).await,
        "DeleteQueue" => q::delete_queue(h, p).await,
        "GetQueueAttributes" => q::get_queue_attributes(h, p).await,
        "SetQueueAttributes" => q::set_queue_attributes(h, p).await,
        "PurgeQueue" => q::purge_queue(h, p).await,
        "TagQueue" => q::tag_queue(h, p).await,
        "UntagQueue" => q::untag_queue(h, p).await,
        "ListQueueTags" => q::list_queue_tags(h, p).await,
        "ListDeadLetterSourceQueues" => q::list_dead_letter_source_queues(h, p).await,
        "SendMessage" => m::send_message(h, p).await,
        "SendMessageBatch" => m::send_message_batch(h, p).await,
        "ReceiveMessage" => m::receive_message(h, p).await,
        "DeleteMessage" => m::delete_message(h, p).await,
        "DeleteMessageBatch" => m::delete_message_batch(h, p).await,
        "ChangeMessageVisibility" => m::change_message_visibility(h, p).await,
        "ChangeMessageVisibilityBatch" => m::change_message_visibility_batch(h, p).await,
        "StartMessageMoveTask" => move_tasks::start_message_move_task(h, p).await,
        "ListMessageMoveTasks" => move_tasks::list_message_move_tasks(h, p).await,
        "CancelMessageMoveTask" => move_tasks::cancel_message_move_task(h, p).await,
        other => Err(SqsError::invalid_action(format!(
            "the action {} is not valid for this endpoint",
            other.chars().take(64).collect::<String>()
        ))),
    }
}
