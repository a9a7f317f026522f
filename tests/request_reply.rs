//! Request/reply over TCP: a real broker on an ephemeral loopback port, the Rust client's
//! `Requester` and `Responder` and the raw calls. Checks that every reply reaches the request
//! with its correlation id, that a late reply is dropped and counted and never answers the next
//! request, that a temporary reply destination is its connection's alone and goes with it, and
//! that direct replies are never stored; and the load (10,000 concurrent requests, 4
//! responders, one responder dying mid-request).

mod common;

use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{TestBroker, metric};
use ringmq::batch::Record;
use ringmq::client::replies::{CORRELATION_ID_HEADER, REPLY_TO_HEADER, header_text, reply_value};
use ringmq::client::{Client, Consumer, ConsumerConfig, Responder, StartAt};
use ringmq::protocol::ErrorCode;
use ringmq::protocol::replies::{ReplyMode, ReplyStatus};

fn request(value: &str) -> Record {
    Record::new(0, Some(value.as_bytes()), Some(value.as_bytes()))
}

fn text(record: &Record) -> String {
    String::from_utf8(record.value.clone().unwrap_or_default().to_vec()).unwrap()
}

const LATE: &str = "ringmq_replies_total{outcome=\"late\"} ";
const DELIVERED: &str = "ringmq_replies_total{outcome=\"delivered\"} ";
const NO_REQUESTER: &str = "ringmq_replies_total{outcome=\"no_requester\"} ";

/// Answers "a:<value>" to every request of `topic`'s `partition` until `stop` is set.
async fn respond_until(
    address: String,
    topic: &'static str,
    partition: u32,
    stop: Rc<std::cell::Cell<bool>>,
) {
    let client = Client::connect(&address).await.unwrap();
    let mut responder = Responder::new(client, topic, Some(vec![partition]), StartAt::Earliest)
        .await
        .unwrap();
    while !stop.get() {
        responder
            .serve_once(|request| Some(reply_value(format!("a:{}", text(request)))))
            .await
            .unwrap();
    }
}

/// The load: 10,000 concurrent requests from two requesters (connections), 4
/// responders (one per partition), every reply its own request's; one more responder takes a
/// request and dies without answering: that request times out, no other gets a wrong reply.
#[test]
fn ten_thousand_concurrent_requests_with_four_responders_and_one_that_dies() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    ringmq::runtime::block_on(async {
        let admin = Client::connect(&address).await.unwrap();
        admin.create_topic("rpc4", 4, &[]).await.unwrap();
        admin.create_topic("doomed", 1, &[]).await.unwrap();
        let stop = Rc::new(std::cell::Cell::new(false));
        let responders: Vec<_> = (0..4)
            .map(|partition| {
                let serve = respond_until(address.clone(), "rpc4", partition, stop.clone());
                ringmq::runtime::spawn(serve)
            })
            .collect();
        let requesters = [
            Client::connect(&address)
                .await
                .unwrap()
                .requester()
                .await
                .unwrap(),
            Client::connect(&address)
                .await
                .unwrap()
                .requester()
                .await
                .unwrap(),
        ];
        assert_ne!(requesters[0].reply_to(), requesters[1].reply_to());
        assert!(requesters[0].reply_to().starts_with("ringmq.reply-to."));
        // The doomed responder reads its request, then its connection closes unanswered.
        let dying = async {
            let client = Client::connect(&address).await.unwrap();
            let mut requests = Consumer::new(
                client,
                "doomed",
                None,
                StartAt::Earliest,
                ConsumerConfig::default(),
            )
            .await
            .unwrap();
            let mut taken = Vec::new();
            while taken.is_empty() {
                taken = requests.poll().await.unwrap();
            }
            drop(requests);
        };
        // On its own connection: the 10,000 others fill this one's reply_pending_max.
        let other = Client::connect(&address)
            .await
            .unwrap()
            .requester()
            .await
            .unwrap();
        let unanswered = other.request("doomed", request("lost"), Duration::from_secs(2));
        let calls = (0..10_000).map(|index| {
            let requester = &requesters[index % 2];
            async move {
                let question = format!("q-{index}");
                let reply = requester
                    .request("rpc4", request(&question), Duration::from_secs(120))
                    .await
                    .unwrap();
                assert_eq!(text(&reply), format!("a:{question}"));
                assert!(header_text(&reply, CORRELATION_ID_HEADER).is_some());
            }
        });
        let (lost, (), _) =
            futures_util::join!(unanswered, dying, futures_util::future::join_all(calls));
        refused(lost, ErrorCode::TimedOut);
        for requester in requesters.iter().chain([&other]) {
            assert_eq!(requester.late_replies(), 0);
            assert_eq!(requester.pending(), 0);
        }
        stop.set(true);
        for responder in responders {
            responder.await.unwrap();
        }
    });
}

/// A broker killed while a connection held a temporary reply topic drops it at start.
#[test]
fn temporary_reply_topics_do_not_survive_a_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, address) = common::serve(dir.path());
    let temporary = ringmq::runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        client.create_topic("kept", 1, &[]).await.unwrap();
        let temporary = client.declare_reply_to(ReplyMode::Temporary).await.unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        temporary
    });
    assert!(partition_dirs(dir.path()).contains(&format!("{temporary}-0")));
    let (mut child, address) = common::serve(dir.path());
    ringmq::runtime::block_on(async {
        let client = Client::connect(&address).await.unwrap();
        refused(
            client.metadata(&[&temporary]).await,
            ErrorCode::UnknownTopic,
        );
        assert_eq!(client.metadata(&["kept"]).await.unwrap().len(), 1);
    });
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(partition_dirs(dir.path()), ["kept-0"]);
}

#[test]
fn a_late_reply_is_dropped_counted_and_never_answers_the_next_request() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let (address, http) = (broker.address(), broker.http_address());
    ringmq::runtime::block_on(async {
        let responder = Client::connect(&address).await.unwrap();
        responder.create_topic("slow", 1, &[]).await.unwrap();
        let mut requests = Consumer::new(
            responder.clone(),
            "slow",
            None,
            StartAt::Earliest,
            ConsumerConfig::default(),
        )
        .await
        .unwrap();
        let requester = Client::connect(&address)
            .await
            .unwrap()
            .requester()
            .await
            .unwrap();
        let late_before = metric(&http, LATE);

        // The first request times out: its responder is slow.
        let first = requester
            .request("slow", request("first"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(first.code(), Some(ErrorCode::TimedOut), "{first}");
        // The broker's deadline counts from when it got the request, a little after the
        // client's: wait past it, so the reply below is late for the broker too.
        ringmq::runtime::sleep(Duration::from_millis(200)).await;
        let first_request = requests.poll().await.unwrap().remove(0).record;
        assert_eq!(text(&first_request), "first");

        // The second is waiting when the first's reply finally comes.
        let second = requester.request("slow", request("second"), Duration::from_secs(30));
        let answer = async {
            let mut seen = Vec::new();
            while seen.is_empty() {
                seen = requests.poll().await.unwrap();
            }
            let second_request = seen.remove(0).record;
            assert_eq!(text(&second_request), "second");
            let late = responder
                .respond(&first_request, reply_value("answer to first"))
                .await
                .unwrap();
            assert_eq!(late, ReplyStatus::Late);
            let on_time = responder
                .respond(&second_request, reply_value("answer to second"))
                .await
                .unwrap();
            assert_eq!(on_time, ReplyStatus::Delivered);
            // Answering twice: the second answer is late too.
            let again = responder
                .respond(&second_request, reply_value("answer to second, again"))
                .await
                .unwrap();
            assert_eq!(again, ReplyStatus::Late);
        };
        let (second, ()) = futures_util::join!(second, answer);
        assert_eq!(text(&second.unwrap()), "answer to second");
        assert_eq!(requester.late_replies(), 0, "the broker dropped them");
        assert!(metric(&http, LATE) >= late_before + 2.0);
        // The gauge is the process's (every in-process broker of this file's tests sets it
        // for its shard 0 and 1): wait for the other tests' pending requests to go too.
        let pending = || {
            metric(&http, "ringmq_reply_pending{shard=\"0\"} ")
                + metric(&http, "ringmq_reply_pending{shard=\"1\"} ")
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while pending() != 0.0 && Instant::now() < deadline {
            ringmq::runtime::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(pending(), 0.0);
    });
}

#[test]
fn a_temporary_reply_destination_is_its_connections_alone_and_goes_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    ringmq::runtime::block_on(async {
        let other = Client::connect(&address).await.unwrap();
        other.create_topic("jobs", 1, &[]).await.unwrap();
        let owner = Client::connect(&address).await.unwrap();
        let temporary = owner.declare_reply_to(ReplyMode::Temporary).await.unwrap();
        assert!(temporary.starts_with("tmp.reply."), "{temporary}");
        assert_eq!(other.metadata(&[&temporary]).await.unwrap().len(), 1);

        owner
            .send_request(
                "jobs",
                (&temporary, "job-1"),
                request("job"),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let job = read(&other, "jobs").await.remove(0);
        assert_eq!(header_text(&job, REPLY_TO_HEADER), Some(temporary.as_str()));
        let stored = other.respond(&job, reply_value("done")).await.unwrap();
        assert_eq!(stored, ReplyStatus::Stored);
        let replies = read(&owner, &temporary).await;
        assert_eq!(replies.len(), 1);
        assert_eq!(text(&replies[0]), "done");
        assert_eq!(
            header_text(&replies[0], CORRELATION_ID_HEADER),
            Some("job-1")
        );

        // Only its connection reads it, or names it as a reply-to; nobody else creates such names.
        refused(
            fetch(&other, &temporary).await,
            ErrorCode::ExclusiveDestination,
        );
        refused(
            other
                .send_request(
                    "jobs",
                    (&temporary, "x"),
                    request("x"),
                    Duration::from_secs(1),
                )
                .await,
            ErrorCode::ExclusiveDestination,
        );
        refused(
            other.delete_topic(&temporary).await,
            ErrorCode::ExclusiveDestination,
        );
        refused(
            other.create_topic("tmp.reply.mine", 1, &[]).await,
            ErrorCode::InvalidTopicName,
        );

        // The connection closes: the topic and its data go.
        drop(owner);
        let deadline = Instant::now() + Duration::from_secs(20);
        while other.metadata(&[&temporary]).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{temporary} outlived its connection"
            );
            ringmq::runtime::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(partition_dirs(dir.path()), ["jobs-0"]);
    });
}

#[test]
fn direct_replies_are_never_stored_and_reach_only_a_live_requester() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let (address, http) = (broker.address(), broker.http_address());
    ringmq::runtime::block_on(async {
        let responder = Client::connect(&address).await.unwrap();
        responder.create_topic("asks", 1, &[]).await.unwrap();
        let delivered_before = metric(&http, DELIVERED);
        let requester_client = Client::connect(&address).await.unwrap();
        let requester = requester_client.requester().await.unwrap();
        let reply_to = requester.reply_to().to_string();
        let ask = requester.request("asks", request("ping"), Duration::from_secs(30));
        let answer = async {
            let mut asked = Vec::new();
            while asked.is_empty() {
                asked = read(&responder, "asks").await;
            }
            assert_eq!(asked.len(), 1);
            let status = responder
                .respond(&asked[0], reply_value("pong"))
                .await
                .unwrap();
            assert_eq!(status, ReplyStatus::Delivered);
            asked.remove(0)
        };
        let (reply, asked) = futures_util::join!(ask, answer);
        assert_eq!(text(&reply.unwrap()), "pong");
        assert!(metric(&http, DELIVERED) > delivered_before);

        // Nothing was stored but the request: no other topic, no other directory, one record.
        let topics: Vec<String> = responder
            .metadata(&[])
            .await
            .unwrap()
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        assert_eq!(topics, ["asks"]);
        assert_eq!(partition_dirs(dir.path()), ["asks-0"]);
        assert_eq!(read(&responder, "asks").await.len(), 1);

        // Hostile or foreign reply-to names are refused; a gone requester's replies are dropped.
        refused(
            responder
                .reply("ringmq.reply-to.not-a-name", "c", reply_value("x"))
                .await,
            ErrorCode::UnknownReplyDestination,
        );
        refused(
            responder
                .send_request(
                    "asks",
                    (&reply_to, "mine"),
                    request("x"),
                    Duration::from_secs(1),
                )
                .await,
            ErrorCode::UnknownReplyDestination,
        );
        let gone_before = metric(&http, NO_REQUESTER);
        drop(requester);
        drop(requester_client);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = responder
                .respond(&asked, reply_value("pong"))
                .await
                .unwrap();
            if status == ReplyStatus::NoRequester {
                break;
            }
            assert_eq!(status, ReplyStatus::Late);
            assert!(
                Instant::now() < deadline,
                "the requester's inbox outlived it"
            );
            ringmq::runtime::sleep(Duration::from_millis(50)).await;
        }
        assert!(metric(&http, NO_REQUESTER) > gone_before);
    });
}

#[test]
fn requests_awaiting_replies_are_bounded_per_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start_with(ringmq::config::BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: String::new(),
        shards: 1,
        reply_pending_max: 2,
        ..Default::default()
    });
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("nobody", 1, &[]).await.unwrap();
        let requester = client.requester().await.unwrap();
        let wait = Duration::from_millis(1500);
        let (first, second, third) = futures_util::join!(
            requester.request("nobody", request("1"), wait),
            requester.request("nobody", request("2"), wait),
            async {
                ringmq::runtime::sleep(Duration::from_millis(200)).await;
                requester.request("nobody", request("3"), wait).await
            },
        );
        assert_eq!(first.unwrap_err().code(), Some(ErrorCode::TimedOut));
        assert_eq!(second.unwrap_err().code(), Some(ErrorCode::TimedOut));
        let third = third.unwrap_err();
        assert_eq!(
            third.code(),
            Some(ErrorCode::TooManyPendingRequests),
            "{third}"
        );
        // Their timeouts passed: room again.
        let fourth = requester
            .request("nobody", request("4"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(fourth.code(), Some(ErrorCode::TimedOut));
        // A caller that gives up on a request (drops its future) leaves nothing waiting.
        let abandoned = ringmq::runtime::timeout(
            Duration::from_millis(50),
            requester.request("nobody", request("5"), Duration::from_secs(10)),
        )
        .await;
        assert!(abandoned.is_none(), "the caller gave up first");
        assert_eq!(requester.pending(), 0);
    });
}

/// `Client::request`: concurrent requests from clones of one client share its one requester
/// (one reply-to, so every request's headers name the same one), each gets its own reply from a
/// `Client::responder` serving with a closure; a request nobody answers times out.
#[test]
fn client_request_shares_one_requester_among_its_clones() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    ringmq::runtime::block_on(async {
        let server = Client::connect(&address).await.unwrap();
        server.create_topic("echo", 3, &[]).await.unwrap();
        server.create_topic("nobody", 1, &[]).await.unwrap();
        let mut responder = server.responder("echo").await.unwrap();
        let reply_tos = Rc::new(std::cell::RefCell::new(std::collections::BTreeSet::new()));
        let seen = reply_tos.clone();
        let serving = ringmq::runtime::spawn(async move {
            let error = responder
                .serve(|request| {
                    let reply_to = header_text(request, REPLY_TO_HEADER).unwrap();
                    seen.borrow_mut().insert(reply_to.to_string());
                    Some(reply_value(format!("echo:{}", text(request))))
                })
                .await;
            drop(error);
        });
        let client = Client::connect(&address).await.unwrap();
        let asks = (0..200).map(|n| {
            let clone = client.clone();
            async move {
                let value = format!("q{n}");
                let reply = clone
                    .request("echo", request(&value), Duration::from_secs(30))
                    .await
                    .unwrap();
                (value, text(&reply))
            }
        });
        for (value, reply) in futures_util::future::join_all(asks).await {
            assert_eq!(reply, format!("echo:{value}"));
        }
        assert_eq!(reply_tos.borrow().len(), 1, "{:?}", reply_tos.borrow());
        assert_eq!(client.late_replies(), 0);
        let silence = client
            .request("nobody", request("hello?"), Duration::from_millis(200))
            .await
            .unwrap_err();
        assert_eq!(silence.code(), Some(ErrorCode::TimedOut), "{silence}");
        drop(serving);
    });
}

/// A request through a topic exchange: `rpc.eu.*` reaches one responder's topic and `rpc.#`
/// an audit topic that nobody answers; the requester gets the responder's reply, the audit
/// topic holds the request with its reply headers, a second reply (from the audit copy) is
/// dropped as late, and a request no binding routes is refused at once, its correlation id
/// not left pending.
#[test]
fn a_request_through_an_exchange_gets_the_reply_of_the_topic_it_was_routed_to() {
    use ringmq::protocol::routing::{BindingSpec, ExchangeType};
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    ringmq::runtime::block_on(async {
        let admin = Client::connect(&address).await.unwrap();
        admin.create_topic("rpc-eu", 2, &[]).await.unwrap();
        admin.create_topic("rpc-audit", 1, &[]).await.unwrap();
        admin
            .create_exchange("rpc", ExchangeType::Topic, None)
            .await
            .unwrap();
        for (destination, key) in [("rpc-eu", "rpc.eu.*"), ("rpc-audit", "rpc.#")] {
            let binding = BindingSpec {
                destination: destination.into(),
                key: key.into(),
                ..BindingSpec::default()
            };
            admin.bind("rpc", binding).await.unwrap();
        }
        let mut responder = admin.responder("rpc-eu").await.unwrap();
        let serving = ringmq::runtime::spawn(async move {
            let error = responder
                .serve(|request| Some(reply_value(format!("eu:{}", text(request)))))
                .await;
            drop(error);
        });
        let client = Client::connect(&address).await.unwrap();
        let route = ("rpc", "rpc.eu.orders");
        let timeout = Duration::from_secs(30);
        for n in 0..20 {
            let value = format!("q{n}");
            let reply = client
                .request_via_exchange(route, request(&value), timeout)
                .await;
            assert_eq!(text(&reply.unwrap()), format!("eu:{value}"));
        }
        // The audit copy carries the same reply headers: answering it is a second reply.
        let audited = read(&admin, "rpc-audit").await;
        assert_eq!(audited.len(), 20);
        let last = audited.last().unwrap();
        assert_eq!(text(last), "q19");
        assert!(header_text(last, CORRELATION_ID_HEADER).is_some());
        let status = admin.respond(last, reply_value("again")).await.unwrap();
        assert_eq!(status, ReplyStatus::Late);
        // Routed only to the audit topic: stored, so accepted; nobody answers, so it times out.
        let only_audit = ("rpc", "rpc.us.orders");
        let quiet = Duration::from_millis(300);
        let silence = client
            .request_via_exchange(only_audit, request("x"), quiet)
            .await;
        refused(silence, ErrorCode::TimedOut);
        // No route at all: refused now, not at the timeout, and nothing left pending.
        admin
            .unbind(
                "rpc",
                BindingSpec {
                    destination: "rpc-audit".into(),
                    key: "rpc.#".into(),
                    ..BindingSpec::default()
                },
            )
            .await
            .unwrap();
        let started = Instant::now();
        let lost = client
            .request_via_exchange(only_audit, request("y"), timeout)
            .await;
        refused(lost, ErrorCode::Unroutable);
        assert!(started.elapsed() < Duration::from_secs(10));
        let unknown = client
            .request_via_exchange(("nope", "k"), request("z"), timeout)
            .await;
        refused(unknown, ErrorCode::UnknownExchange);
        // The refused request's correlation id is not pending: a reply to it is late.
        let raw = Client::connect(&address).await.unwrap();
        let reply_to = raw.declare_reply_to(ReplyMode::Direct).await.unwrap();
        let ids = (reply_to.as_str(), "c-lost");
        let lost = raw
            .send_request_via_exchange(only_audit, ids, request("w"), timeout)
            .await;
        refused(lost, ErrorCode::Unroutable);
        let status = admin
            .reply(&reply_to, "c-lost", reply_value("w?"))
            .await
            .unwrap();
        assert_eq!(status, ReplyStatus::Late);
        let ids = (reply_to.as_str(), "c-kept");
        let sent = raw
            .send_request_via_exchange(route, ids, request("v"), timeout)
            .await;
        assert_eq!(sent.unwrap(), (1, 0));
        let replies = raw.receive_replies(10, timeout).await.unwrap();
        assert_eq!(replies.iter().map(text).collect::<Vec<_>>(), ["eu:v"]);
        assert_eq!(client.late_replies(), 0);
        drop(serving);
    });
}

/// The thread-safe handle asks and answers from a tokio runtime: a responder task (reading
/// requests with a plain fetch, answering with `respond`) and 50 concurrent requests, each
/// answered with its own value.
#[test]
fn the_threaded_client_requests_and_responds_from_tokio() {
    use ringmq::client::ThreadedClient;
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    let address = broker.address();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let responder = ThreadedClient::connect(&address).await.unwrap();
        responder.create_topic("threaded", 1, &[]).await.unwrap();
        let answering = tokio::spawn(async move {
            let mut next = 0;
            let mut answered = 0;
            while answered < 50 {
                let records = responder
                    .run(move |client| async move {
                        common::fetch_records_at(&client, "threaded", next, 500).await
                    })
                    .await
                    .unwrap()
                    .unwrap();
                next += records.len() as u64;
                for request in records {
                    let reply = reply_value(format!("t:{}", text(&request)));
                    let status = responder.respond(request, reply).await.unwrap();
                    assert_eq!(status, ReplyStatus::Delivered);
                    answered += 1;
                }
            }
        });
        let client = ThreadedClient::connect(&address).await.unwrap();
        let asks = (0..50).map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                let reply = client
                    .request(
                        "threaded",
                        request(&format!("r{n}")),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
                assert_eq!(text(&reply), format!("t:r{n}"));
            })
        });
        for ask in asks.collect::<Vec<_>>() {
            ask.await.unwrap();
        }
        answering.await.unwrap();
    });
}

/// Asserts the call failed with `code`.
fn refused<T: std::fmt::Debug>(result: ringmq::client::Result<T>, code: ErrorCode) {
    let error = result.unwrap_err();
    assert_eq!(error.code(), Some(code), "{error}");
}

/// The partition directories in the broker's data.
fn partition_dirs(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir.join("topics"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect()
}

async fn fetch(client: &Client, topic: &str) -> ringmq::client::Result<Vec<Record>> {
    common::fetch_records(client, topic).await
}

async fn read(client: &Client, topic: &str) -> Vec<Record> {
    fetch(client, topic).await.unwrap()
}

/// tests/deploy.rs checks every dashboard metric against a broker's export; this checks the
/// routing and request/reply panels' names the same way, with the workload that makes them.
#[test]
fn the_dashboards_routing_and_reply_panels_name_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let broker = TestBroker::start(dir.path(), 2);
    ringmq::runtime::block_on(async {
        let client = Client::connect(&broker.address()).await.unwrap();
        client.create_topic("t", 1, &[]).await.unwrap();
        common::routing_and_reply_workload(&client, "t").await;
    });
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dashboard =
        std::fs::read_to_string(root.join("deploy/grafana/ringmq-dashboard.json")).unwrap();
    let exported = common::scrape(&broker.http_address());
    let names: Vec<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("ringmq_exchange_") || word.starts_with("ringmq_repl"))
        .collect();
    assert!(names.len() >= 9, "{names:?}");
    for name in names {
        let sampled = |after: &str| exported.contains(&format!("\n{name}{after}"));
        assert!(sampled("{") || sampled(" "), "{name} is not exported");
    }
}
