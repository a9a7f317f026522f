//! The client's request/reply: the calls (declare a reply destination, send a request, reply,
//! receive direct replies), a [`Requester`] that sends requests over the connection's direct
//! reply-to and waits for each reply by its correlation id, and a [`Responder`] that answers the
//! requests it consumes. A reply that comes after its request timed out (or twice) matches no
//! waiting request: it is dropped and counted ([`Requester::late_replies`]); correlation ids are
//! never reused, so a late reply can never answer a later request.
//!
//! The short way: [`Client::request`] sends through one requester per client, made on first use
//! and shared by the client's clones; [`Client::responder`] and [`Responder::serve`] answer a
//! topic's requests with a closure until the connection fails.
//!
//! ```
//! # let dir = tempfile::tempdir().unwrap();
//! # let broker = ringmq::server::start(ringmq::config::BrokerConfig {
//! #     data_dir: dir.path().into(), listen: "127.0.0.1:0".into(),
//! #     kafka_listen: String::new(), http_listen: String::new(), shards: 1,
//! #     ..Default::default() }).unwrap();
//! # let address = broker.address.to_string();
//! use std::time::Duration;
//! use ringmq::batch::Record;
//! use ringmq::client::Client;
//! use ringmq::client::replies::reply_value;
//!
//! ringmq::runtime::block_on(async {
//!     let server = Client::connect(&address).await.unwrap();
//!     server.create_topic("prices", 1, &[]).await.unwrap();
//!     let mut responder = server.responder("prices").await.unwrap();
//!     ringmq::runtime::spawn_detached(async move {
//!         let _ = responder
//!             .serve(|request| {
//!                 let asked = request.value.as_deref().unwrap_or_default();
//!                 Some(reply_value([b"price of ", asked].concat()))
//!             })
//!             .await;
//!     });
//!     let client = Client::connect(&address).await.unwrap();
//!     let reply = client
//!         .request("prices", Record::new(0, None, Some(b"tea")), Duration::from_secs(5))
//!         .await
//!         .unwrap();
//!     assert_eq!(reply.value.as_deref(), Some(&b"price of tea"[..]));
//! });
//! # broker.shutdown();
//! ```
//!
//! Requests go to a topic, not through an exchange: a direct reply-to request must register its
//! correlation id as pending on the requester's shard before it is stored (that is what makes a
//! late reply droppable), and the exchange publish path carries no reply state. To route a
//! request through an exchange, declare a temporary reply topic
//! ([`Client::declare_reply_to`] with `ReplyMode::Temporary`), publish with the `reply-to` and
//! `correlation-id` headers set, and consume the temporary topic; responders answer it the same
//! way ([`Client::respond`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_channel::oneshot;

use super::{Client, ClientError, Consumer, ConsumerConfig, Result, StartAt, unexpected};
use crate::batch::{BatchBuilder, Compression, Record};
use crate::protocol::replies::{ReplyMode, ReplyRequest, ReplyResponse, ReplyStatus};
use crate::protocol::{ErrorCode, ProtocolError, Request, Response};
use crate::storage::AckLevel;

/// The header naming where a request's reply goes (AMQP's `reply-to`).
pub const REPLY_TO_HEADER: &str = "reply-to";
/// The header a reply carries back unchanged (AMQP's `correlation-id`).
pub const CORRELATION_ID_HEADER: &str = "correlation-id";

/// Replies one receive asks for at most.
const RECEIVE_BATCH: u32 = 1024;
/// How long one receive waits for a reply before asking again.
const RECEIVE_WAIT_MS: u32 = 500;

fn one_batch(record: Record) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    builder.push(record);
    BytesMut::from(&builder.build()[..])
}

/// A header's value as text, if the record has it.
pub fn header_text<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record
        .headers
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value.as_deref())
        .and_then(|value| std::str::from_utf8(value).ok())
}

impl Client {
    async fn replies(&self, request: ReplyRequest) -> Result<ReplyResponse> {
        match self.connection.request(Request::Replies(request)).await? {
            Response::Replies(response) => Ok(response),
            other => Err(unexpected(other)),
        }
    }

    /// Declares this connection's direct reply-to (`Direct`: replies come to this connection,
    /// never stored) or a new temporary reply topic (`Temporary`: only this connection reads
    /// it; deleted when it closes). Returns the name to send as `reply-to`.
    pub async fn declare_reply_to(&self, mode: ReplyMode) -> Result<String> {
        match self.replies(ReplyRequest::DeclareReplyTo { mode }).await? {
            ReplyResponse::Declared { destination } => Ok(destination),
            other => Err(unexpected(Response::Replies(other))),
        }
    }

    /// Appends `message` to the topic `destination` with `reply-to` and `correlation-id`
    /// headers; with this connection's direct reply-to, the broker keeps a reply for
    /// `timeout`. Returns the request's partition and offset.
    pub async fn send_request(
        &self,
        destination: &str,
        (reply_to, correlation_id): (&str, &str),
        message: Record,
        timeout: Duration,
    ) -> Result<(u32, u64)> {
        let request = ReplyRequest::SendRequest {
            destination: destination.into(),
            reply_to: reply_to.into(),
            correlation_id: correlation_id.into(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            acks: AckLevel::Written,
            records: one_batch(message),
        };
        match self.replies(request).await? {
            ReplyResponse::Sent { partition, offset } => Ok((partition, offset)),
            other => Err(unexpected(Response::Replies(other))),
        }
    }

    /// Sends `reply` to `reply_to` with `correlation_id`: what became of it (a direct reply
    /// may be dropped: late, no requester, or its queue full).
    pub async fn reply(
        &self,
        reply_to: &str,
        correlation_id: &str,
        reply: Record,
    ) -> Result<ReplyStatus> {
        let request = ReplyRequest::Reply {
            reply_to: reply_to.into(),
            correlation_id: correlation_id.into(),
            acks: AckLevel::Written,
            records: one_batch(reply),
        };
        match self.replies(request).await? {
            ReplyResponse::Replied { status, .. } => Ok(status),
            other => Err(unexpected(Response::Replies(other))),
        }
    }

    /// Publishes `message` through `exchange` by `routing_key` with `reply-to` and
    /// `correlation-id` headers: one copy to each topic it reaches. Refused (`unroutable`)
    /// when no binding routes it or no copy was stored. Returns the copies stored and failed.
    pub async fn send_request_via_exchange(
        &self,
        (exchange, routing_key): (&str, &str),
        (reply_to, correlation_id): (&str, &str),
        message: Record,
        timeout: Duration,
    ) -> Result<(u32, u32)> {
        let request = ReplyRequest::SendRequestViaExchange {
            exchange: exchange.into(),
            routing_key: routing_key.into(),
            reply_to: reply_to.into(),
            correlation_id: correlation_id.into(),
            timeout_ms: u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX),
            acks: AckLevel::Written,
            records: one_batch(message),
        };
        match self.replies(request).await? {
            ReplyResponse::Routed { stored, failed } => Ok((stored, failed)),
            other => Err(unexpected(Response::Replies(other))),
        }
    }

    /// Replies to a request record by its `reply-to` and `correlation-id` headers.
    pub async fn respond(&self, request: &Record, reply: Record) -> Result<ReplyStatus> {
        let (Some(reply_to), Some(correlation_id)) = (
            header_text(request, REPLY_TO_HEADER),
            header_text(request, CORRELATION_ID_HEADER),
        ) else {
            return Err(ClientError::Server(ProtocolError::new(
                ErrorCode::MalformedRequest,
                "the request has no reply-to or correlation-id header",
            )));
        };
        self.reply(reply_to, correlation_id, reply).await
    }

    /// Up to `max` direct replies to this connection, waiting up to `wait` for the first.
    pub async fn receive_replies(&self, max: u32, wait: Duration) -> Result<Vec<Record>> {
        let request = ReplyRequest::ReceiveReplies {
            max_replies: max,
            max_wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        match self.replies(request).await? {
            ReplyResponse::Received { records } => crate::batch::iter_framed(&records)
                .map(|(_, batch)| crate::batch::records::decode(batch))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map(|batches| batches.into_iter().flatten().map(|s| s.record).collect())
                .map_err(|error| ClientError::Connection(format!("replies: {error}"))),
            other => Err(unexpected(Response::Replies(other))),
        }
    }

    /// A requester on this connection (it declares the connection's direct reply-to).
    pub async fn requester(&self) -> Result<Requester> {
        Requester::new(self.clone()).await
    }

    /// Sends `message` to the topic `destination` and waits up to `timeout` for its reply,
    /// through this client's own requester (made on first use, shared by its clones; see
    /// [`Requester::request`]). Requests may run concurrently.
    pub async fn request(
        &self,
        destination: &str,
        message: Record,
        timeout: Duration,
    ) -> Result<Record> {
        let requester = self.shared_requester().await?;
        requester.request(destination, message, timeout).await
    }

    /// Publishes `message` through an exchange (exchange, routing key) and waits up to
    /// `timeout` for the first reply, through this client's own requester (see
    /// [`Requester::request_via_exchange`]).
    pub async fn request_via_exchange(
        &self,
        route: (&str, &str),
        message: Record,
        timeout: Duration,
    ) -> Result<Record> {
        let requester = self.shared_requester().await?;
        requester
            .request_via_exchange(route, message, timeout)
            .await
    }

    /// Replies dropped by this client's own requester as late (see [`Requester::late_replies`]);
    /// 0 before its first request.
    pub fn late_replies(&self) -> u64 {
        self.requester
            .made
            .borrow()
            .as_ref()
            .map_or(0, |requester| requester.late_replies())
    }

    async fn shared_requester(&self) -> Result<Rc<Requester>> {
        if let Some(requester) = self.requester.made.borrow().as_ref() {
            return Ok(requester.clone());
        }
        // One maker at a time: two requesters on one connection would share its reply-to,
        // and each would drop as late the replies the other waits for.
        let _making = self.requester.making.lock().await;
        if let Some(requester) = self.requester.made.borrow().as_ref() {
            return Ok(requester.clone());
        }
        // The requester's client has no requester of its own: holding this one would make a
        // cycle that keeps the connection open after the last clone of `self` is dropped.
        let requester = Rc::new(Requester::new(Client::over(self.connection.clone())).await?);
        *self.requester.made.borrow_mut() = Some(requester.clone());
        Ok(requester)
    }

    /// A responder to the requests appended to `topic` from now on, on every partition.
    pub async fn responder(&self, topic: &str) -> Result<Responder> {
        Responder::new(self.clone(), topic, None, StartAt::Latest).await
    }
}

/// The requester [`Client::request`] makes on first use, shared by a client's clones.
#[derive(Clone, Default)]
pub(super) struct SharedRequester(Rc<SharedRequesterState>);

#[derive(Default)]
pub(super) struct SharedRequesterState {
    made: RefCell<Option<Rc<Requester>>>,
    making: futures_util::lock::Mutex<()>,
}

impl std::ops::Deref for SharedRequester {
    type Target = SharedRequesterState;

    fn deref(&self) -> &SharedRequesterState {
        &self.0
    }
}

/// One request's entry among the waiting, removed when its wait ends.
struct Pending<'a> {
    waiting: &'a Waiting,
    correlation_id: &'a str,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.waiting
            .replies
            .borrow_mut()
            .remove(self.correlation_id);
    }
}

/// The requests awaiting replies, by correlation id.
struct Waiting {
    replies: RefCell<HashMap<String, oneshot::Sender<Record>>>,
    late: Cell<u64>,
}

/// Sends requests and waits for their replies over one connection's direct reply-to. Cheap
/// requests may run concurrently (one connection carries them all); dropping the requester
/// stops its receiving task.
pub struct Requester {
    client: Client,
    reply_to: String,
    prefix: String,
    next: Cell<u64>,
    waiting: Rc<Waiting>,
    _receiver: compio::runtime::JoinHandle<()>,
}

impl Requester {
    /// Declares the connection's direct reply-to and starts receiving on it.
    pub async fn new(client: Client) -> Result<Requester> {
        let reply_to = client.declare_reply_to(ReplyMode::Direct).await?;
        let waiting = Rc::new(Waiting {
            replies: RefCell::default(),
            late: Cell::new(0),
        });
        let receiver = crate::runtime::spawn(receive(client.clone(), Rc::downgrade(&waiting)));
        let mut nonce = [0u8; 8];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce);
        Ok(Requester {
            client,
            reply_to,
            prefix: format!("{:016x}", u64::from_le_bytes(nonce)),
            next: Cell::new(0),
            waiting,
            _receiver: receiver,
        })
    }

    /// The direct reply-to this requester's requests carry.
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// Replies that came for no waiting request (after their timeout, or twice): dropped.
    pub fn late_replies(&self) -> u64 {
        self.waiting.late.get()
    }

    /// Requests awaiting their reply now.
    pub fn pending(&self) -> usize {
        self.waiting.replies.borrow().len()
    }

    /// Sends `message` to the topic `destination` and waits up to `timeout` for its reply;
    /// `timed_out` (ErrorCode::TimedOut) if none came by then.
    pub async fn request(
        &self,
        destination: &str,
        message: Record,
        timeout: Duration,
    ) -> Result<Record> {
        self.exchange_with(timeout, async |ids| {
            let client = &self.client;
            client
                .send_request(destination, ids, message, timeout)
                .await
                .map(drop)
        })
        .await
    }

    /// Publishes `message` through `exchange` by `routing_key` (one copy to each topic it
    /// reaches) and waits up to `timeout` for the first reply; `unroutable` at once if no
    /// binding routes it, `timed_out` if no reply came by then.
    pub async fn request_via_exchange(
        &self,
        (exchange, routing_key): (&str, &str),
        message: Record,
        timeout: Duration,
    ) -> Result<Record> {
        self.exchange_with(timeout, async |ids| {
            let route = (exchange, routing_key);
            let client = &self.client;
            client
                .send_request_via_exchange(route, ids, message, timeout)
                .await
                .map(drop)
        })
        .await
    }

    /// Makes a correlation id, has `send` send the request with it, and waits for its reply
    /// until `timeout` from now.
    async fn exchange_with(
        &self,
        timeout: Duration,
        send: impl AsyncFnOnce((&str, &str)) -> Result<()>,
    ) -> Result<Record> {
        let number = self.next.get();
        self.next.set(number + 1);
        let correlation_id = format!("{}-{number}", self.prefix);
        let (sender, reply) = oneshot::channel();
        self.waiting
            .replies
            .borrow_mut()
            .insert(correlation_id.clone(), sender);
        // However the wait ends (a reply, an error, the timeout, or the caller dropping this
        // future), the entry goes: the map holds only requests still being waited for.
        let _pending = Pending {
            waiting: &self.waiting,
            correlation_id: &correlation_id,
        };
        let deadline = std::time::Instant::now() + timeout;
        send((self.reply_to.as_str(), correlation_id.as_str())).await?;
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let sleep = std::pin::pin!(crate::runtime::sleep(left));
        match futures_util::future::select(reply, sleep).await {
            futures_util::future::Either::Left((Ok(record), _)) => Ok(record),
            futures_util::future::Either::Left((Err(_), _)) => Err(ClientError::Connection(
                "the connection closed before the reply came".into(),
            )),
            futures_util::future::Either::Right(_) => Err(ClientError::Server(ProtocolError::new(
                ErrorCode::TimedOut,
                format!("no reply to {correlation_id} within {timeout:?}"),
            ))),
        }
    }
}

/// Receives direct replies until the requester is dropped or the connection fails, handing
/// each to the request waiting for its correlation id.
async fn receive(client: Client, waiting: Weak<Waiting>) {
    let wait = Duration::from_millis(u64::from(RECEIVE_WAIT_MS));
    loop {
        let received = client.receive_replies(RECEIVE_BATCH, wait).await;
        let Some(waiting) = waiting.upgrade() else {
            return;
        };
        let Ok(replies) = received else {
            // The connection failed: every waiting request learns it now.
            waiting.replies.borrow_mut().clear();
            return;
        };
        for reply in replies {
            let sender = header_text(&reply, CORRELATION_ID_HEADER)
                .and_then(|id| waiting.replies.borrow_mut().remove(id));
            match sender {
                Some(sender) => drop(sender.send(reply)),
                None => waiting.late.set(waiting.late.get() + 1),
            }
        }
    }
}

/// Answers the requests of a topic: consumes them and replies to each by its headers.
pub struct Responder {
    client: Client,
    consumer: Consumer,
}

impl Responder {
    /// Consumes `topic` (the `partitions` given, or all) from `start`.
    pub async fn new(
        client: Client,
        topic: &str,
        partitions: Option<Vec<u32>>,
        start: StartAt,
    ) -> Result<Responder> {
        let consumer = Consumer::new(
            client.clone(),
            topic,
            partitions,
            start,
            ConsumerConfig::default(),
        )
        .await?;
        Ok(Responder { client, consumer })
    }

    /// Polls once and replies to each request `handler` answers (None: no reply); requests
    /// without reply headers are skipped. The poll's replies are sent together (at most one
    /// poll's worth, which the consumer's fetch bounds), not one round trip after another.
    /// Returns how many replies it sent.
    pub async fn serve_once(
        &mut self,
        mut handler: impl FnMut(&Record) -> Option<Record>,
    ) -> Result<usize> {
        let polled = self.consumer.poll().await?;
        let replies: Vec<_> = polled
            .iter()
            .map(|consumed| &consumed.record)
            .filter(|request| header_text(request, CORRELATION_ID_HEADER).is_some())
            .filter_map(|request| Some((request, handler(request)?)))
            .map(|(request, reply)| self.client.respond(request, reply))
            .collect();
        let sent = replies.len();
        for outcome in futures_util::future::join_all(replies).await {
            outcome?;
        }
        Ok(sent)
    }

    /// Answers requests with `handler` until the connection fails (the error it fails with).
    pub async fn serve(
        &mut self,
        mut handler: impl FnMut(&Record) -> Option<Record>,
    ) -> Result<std::convert::Infallible> {
        loop {
            self.serve_once(&mut handler).await?;
        }
    }
}

/// A reply record with `value` (a convenience for handlers).
pub fn reply_value(value: impl Into<Bytes>) -> Record {
    let mut record = Record::new(0, None, None);
    record.value = Some(value.into());
    record
}
