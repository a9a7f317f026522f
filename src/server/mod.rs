//! The network front door: one native, one Kafka and one SQS listener per shard on one address each
//! (SO_REUSEPORT), connections served on the shard that accepted them through one connection
//! layer (`net`), the Prometheus endpoint, and an orderly start and shutdown of all shards.
//!
//! Shutdown runs in phases across every shard so that nothing in flight is cut: stop accepting
//! and reading, wait for every request in flight to be answered (including those forwarded to
//! other shards), then write, fsync and close every log, then stop the shards' threads.

pub mod connection;
mod dispatch;
pub mod errors;
pub mod http;
mod queues;
mod replies;
mod routing;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use crate::broker::routing::store::Exchanges;
use crate::broker::topics::Topics;
use crate::broker::{self, ShardState};
use crate::config::BrokerConfig;
use crate::runtime::{self, TcpListener};

use crate::net::{self as conn, Gate};
use crate::shard::{self, Mailboxes, ShardId};

/// A running broker.
pub struct ServerHandle {
    pub address: SocketAddr,
    pub http_address: Option<SocketAddr>,
    pub kafka_address: Option<SocketAddr>,
    pub sqs_address: Option<SocketAddr>,
    pub shards: usize,
    mailboxes: Mailboxes<ShardState>,
    threads: Vec<std::thread::JoinHandle<()>>,
    shutdown_grace: Duration,
    /// The listeners' TLS in force, and the settings it is read from again on a reload.
    tls: (conn::SharedTls, Arc<BrokerConfig>),
}

/// Slack over the grace period for a shutdown phase's cross-shard call itself.
const SHUTDOWN_PHASE_MARGIN: Duration = Duration::from_secs(5);
/// A shard closes its logs concurrently, each bounded by the grace period; this bounds the whole
/// phase should a shard not get to them at all.
const CLOSE_PHASE_DEADLINE: Duration = Duration::from_secs(300);

/// Starts the broker's shards and listeners; returns once every shard serves.
pub fn start(config: BrokerConfig) -> Result<ServerHandle, String> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|error| format!("{}: {error}", config.data_dir.display()))?;
    let mut topics = Topics::load(&config.data_dir)?;
    // Temporary reply topics outlive their connections only if the broker was killed.
    if broker::replies::drop_temporary_topics(&mut topics) > 0 {
        topics
            .save(&config.data_dir)
            .map_err(|error| format!("{}: {error}", config.data_dir.display()))?;
    }
    let topics = Arc::new(topics);
    let exchanges = Arc::new(Exchanges::load(&config.data_dir)?);
    let users = Arc::new(crate::broker::users::Users::load(&config.data_dir)?);
    let acls = Arc::new(crate::broker::acls::Acls::load(&config.data_dir)?);
    broker::admin::remove_orphan_partitions(&config.data_dir, &topics)
        .map_err(|error| error.to_string())?;
    let metrics_handle = crate::metrics::install();
    crate::storage::log::describe_metrics();
    broker::describe_metrics();
    broker::routing::describe_metrics();
    broker::routing::publish_limits(&config);
    broker::routing::publish_gauges(&exchanges);
    broker::replies::describe_metrics();
    broker::replies::publish_limits(&config);
    conn::describe_metrics();
    crate::kafka::describe_metrics();
    crate::sqs::describe_metrics();
    crate::metrics::describe();
    let shards = config.shard_count();

    let Bound {
        listeners,
        address,
        mut kafka_listeners,
        kafka_address,
        kafka_advertised,
        mut sqs_listeners,
        sqs_address,
        http,
        http_address,
    } = bind(&config, shards)?;

    let tls: conn::SharedTls = Arc::new(std::sync::RwLock::new(conn::ListenerTls::from_config(
        &config,
    )?));
    let mailboxes: Mailboxes<ShardState> = Mailboxes::new(shards, config.mailbox_jobs_max);
    let config = Arc::new(config);
    let (ready_sender, ready) = mpsc::channel();
    let listeners: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(shard, listener)| {
            std::sync::Mutex::new(Some((
                listener,
                kafka_listeners.get_mut(shard).and_then(Option::take),
                sqs_listeners.get_mut(shard).and_then(Option::take),
            )))
        })
        .collect();
    let listeners = Arc::new(listeners);
    let http = Arc::new(std::sync::Mutex::new(
        http.map(|listener| (listener, metrics_handle)),
    ));
    let threads = {
        let (config, mailboxes, tls) = (config.clone(), mailboxes.clone(), tls.clone());
        let metadata = (topics.clone(), exchanges.clone(), (users, acls));
        shard::spawn_threads(shards, move |id| {
            // Each shard takes its own listener (and shard 0 the HTTP one) exactly once.
            let (listener, kafka, sqs) = listeners[id]
                .lock()
                .expect("not poisoned")
                .take()
                .expect("one listener per shard");
            let http = if id == 0 {
                http.lock().expect("not poisoned").take()
            } else {
                None
            };
            let kafka = kafka.zip(kafka_advertised.clone());
            run_shard(
                id,
                config.clone(),
                metadata.clone(),
                mailboxes.clone(),
                (listener, kafka, tls.clone()),
                (sqs, http),
                ready_sender.clone(),
            );
        })
        .map_err(|error| format!("starting shard threads: {error}"))?
    };
    let handle = ServerHandle {
        address,
        http_address,
        kafka_address,
        sqs_address,
        shards,
        mailboxes,
        threads,
        shutdown_grace: Duration::from_millis(config.shutdown_grace_ms),
        tls: (tls, config.clone()),
    };
    if let Err(failure) = wait_until_ready(&ready, shards, &config) {
        if failure.stop_threads {
            handle.shutdown();
        }
        return Err(failure.reason);
    }
    tracing::info!(%address, ?kafka_address, ?sqs_address, ?http_address, shards, data_dir = %config.data_dir.display(), "ringmq is serving");
    Ok(handle)
}

/// Every socket the broker listens on, bound before any shard starts (so that a port in use
/// fails the start-up at once).
struct Bound {
    listeners: Vec<std::net::TcpListener>,
    address: SocketAddr,
    kafka_listeners: Vec<Option<std::net::TcpListener>>,
    kafka_address: Option<SocketAddr>,
    kafka_advertised: Option<(String, u16)>,
    sqs_listeners: Vec<Option<std::net::TcpListener>>,
    sqs_address: Option<SocketAddr>,
    http: Option<std::net::TcpListener>,
    http_address: Option<SocketAddr>,
}

fn bind(config: &BrokerConfig, shards: usize) -> Result<Bound, String> {
    let listeners = runtime::bind_listener_group(config.listen_address()?, shards)
        .map_err(|error| format!("listen on {}: {error}", config.listen))?;
    let address = listeners[0]
        .local_addr()
        .map_err(|error| error.to_string())?;
    // The Kafka listener, like the native one, is bound once per shard on one address.
    let (kafka_listeners, kafka_address) = match config.kafka_listen_address()? {
        Some(wanted) => {
            let group = runtime::bind_listener_group(wanted, shards)
                .map_err(|error| format!("listen on {wanted}: {error}"))?;
            let bound = group[0].local_addr().map_err(|error| error.to_string())?;
            (group.into_iter().map(Some).collect::<Vec<_>>(), Some(bound))
        }
        None => (Vec::new(), None),
    };
    let kafka_advertised = kafka_address
        .map(|bound| config.kafka_advertised_at(bound))
        .transpose()?;
    let (sqs_listeners, sqs_address) = match config.sqs_listen_address()? {
        Some(wanted) => {
            let group = runtime::bind_listener_group(wanted, shards)
                .map_err(|error| format!("listen on {wanted}: {error}"))?;
            let bound = group[0].local_addr().map_err(|error| error.to_string())?;
            (group.into_iter().map(Some).collect::<Vec<_>>(), Some(bound))
        }
        None => (Vec::new(), None),
    };
    let http = match config.http_listen_address()? {
        Some(http_address) => Some(
            std::net::TcpListener::bind(http_address)
                .map_err(|error| format!("listen on {http_address}: {error}"))?,
        ),
        None => None,
    };
    let http_address = http.as_ref().map(|listener| {
        listener
            .local_addr()
            .expect("a bound listener has an address")
    });

    Ok(Bound {
        listeners,
        address,
        kafka_listeners,
        kafka_address,
        kafka_advertised,
        sqs_listeners,
        sqs_address,
        http,
        http_address,
    })
}

/// Why the shards did not all start, and whether their threads can be stopped.
struct StartFailure {
    reason: String,
    /// False when a shard may still be recovering: it may not answer a shutdown either.
    stop_threads: bool,
}

/// Waits for every shard to report that it serves, within `startup_timeout_ms`.
fn wait_until_ready(
    ready: &mpsc::Receiver<Result<(), String>>,
    shards: usize,
    config: &BrokerConfig,
) -> Result<(), StartFailure> {
    let startup_deadline =
        std::time::Instant::now() + Duration::from_millis(config.startup_timeout_ms);
    for _ in 0..shards {
        let left = startup_deadline.saturating_duration_since(std::time::Instant::now());
        match ready.recv_timeout(left) {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => {
                return Err(StartFailure {
                    reason,
                    stop_threads: true,
                });
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A shard still recovering may not answer a shutdown either: leave the threads;
                // the caller exits the process.
                return Err(StartFailure {
                    reason: format!(
                        "start-up did not finish within startup_timeout_ms ({} ms)",
                        config.startup_timeout_ms
                    ),
                    stop_threads: false,
                });
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(StartFailure {
                    reason: "a shard thread died while starting".into(),
                    stop_threads: true,
                });
            }
        }
    }
    Ok(())
}

/// Who may connect and what they may do: the users and the ACLs every shard starts with.
type Access = (
    Arc<crate::broker::users::Users>,
    Arc<crate::broker::acls::Acls>,
);

/// The Kafka listener of a shard, with the address it advertises.
type KafkaListener = (std::net::TcpListener, (String, u16));

fn run_shard(
    id: ShardId,
    config: Arc<BrokerConfig>,
    (topics, exchanges, (users, acls)): (Arc<Topics>, Arc<Exchanges>, Access),
    mailboxes: Mailboxes<ShardState>,
    (listener, kafka, tls): (
        std::net::TcpListener,
        Option<KafkaListener>,
        conn::SharedTls,
    ),
    (sqs, http): (
        Option<std::net::TcpListener>,
        Option<(
            std::net::TcpListener,
            metrics_exporter_prometheus::PrometheusHandle,
        )>,
    ),
    ready: mpsc::Sender<Result<(), String>>,
) {
    let runtime = match runtime::shard_runtime() {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(format!("shard {id}: cannot start io_uring: {error}")));
            return;
        }
    };
    let mailboxes_for_exit = mailboxes.clone();
    runtime.block_on(async move {
        let state = Rc::new(ShardState::new(
            id,
            config.clone(),
            mailboxes.clone(),
            topics,
            exchanges,
        ));
        state.set_users(users);
        state.set_acls(acls);
        // The inbox serves from the start: opening partitions may take a while, and other
        // shards may already send work here.
        let inbox = runtime::spawn({
            let state = state.clone();
            async move { mailboxes.serve(id, state.clone()).await }
        });
        if let Err(reason) = state.open_owned_partitions().await {
            let _ = ready.send(Err(format!("shard {id}: {reason}")));
            return;
        }
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                let _ = ready.send(Err(format!("shard {id}: {error}")));
                return;
            }
        };
        let gate = Rc::new(Gate::new(id));
        runtime::spawn_detached(conn::accept_loop(
            state.clone(),
            gate.clone(),
            listener,
            connection::Native::default(),
            (tls.clone(), conn::Which::Native),
        ));
        if let Some((kafka_listener, advertised)) = kafka {
            match TcpListener::from_std(kafka_listener) {
                Ok(listener) => runtime::spawn_detached(conn::accept_loop(
                    state.clone(),
                    gate.clone(),
                    listener,
                    crate::kafka::Kafka::new(advertised, &state),
                    (tls.clone(), conn::Which::Kafka),
                )),
                Err(error) => tracing::warn!(%error, "kafka listener unavailable"),
            }
        }
        if let Some(sqs_listener) = sqs {
            match TcpListener::from_std(sqs_listener) {
                Ok(listener) => runtime::spawn_detached(conn::accept_loop(
                    state.clone(),
                    gate.clone(),
                    listener,
                    crate::sqs::Sqs::new(&state),
                    (tls.clone(), conn::Which::Sqs),
                )),
                Err(error) => tracing::warn!(%error, "sqs listener unavailable"),
            }
        }
        if let Some((http_listener, handle)) = http {
            match TcpListener::from_std(http_listener) {
                Ok(listener) => runtime::spawn_detached(http::serve(
                    state.clone(),
                    listener,
                    handle,
                    tls.clone(),
                )),
                Err(error) => tracing::warn!(%error, "metrics endpoint unavailable"),
            }
        }
        runtime::spawn_detached(drain_when_stopping(state.clone(), gate));
        state.spawn_background();
        let _ = ready.send(Ok(()));
        let _ = inbox.await;
    });
    // Whatever still arrives for this shard fails fast instead of waiting forever.
    mailboxes_for_exit.close(id);
}

/// Once the shard is stopping, waits for its connections to finish (bounded by the grace
/// period), then reports the shard drained.
async fn drain_when_stopping(state: Rc<ShardState>, gate: Rc<Gate>) {
    state.lifecycle.until_stopping().await;
    let grace = Duration::from_millis(state.config.shutdown_grace_ms);
    let drained = runtime::timeout(grace, async {
        loop {
            let released = gate.released.wait();
            if gate.connections() == 0 {
                return;
            }
            released.await;
        }
    })
    .await;
    if drained.is_none() {
        tracing::warn!(
            shard = state.id,
            connections = gate.connections(),
            "shutdown grace ran out with requests in flight"
        );
    }
    state.lifecycle.set_drained();
}

impl ServerHandle {
    /// Reads every listener's certificate and key files again (`ringmq serve` does it on
    /// SIGHUP): new connections get them, open connections keep what they started with. If any
    /// file is bad, nothing changes and the error says which.
    pub fn reload_tls(&self) -> Result<(), String> {
        conn::ListenerTls::reload(&self.tls.0, &self.tls.1)
    }

    /// Reads users.json and acls.json again (after `ringmq user add` or `ringmq acl add` wrote
    /// them, say) and puts them in force on every shard; a bad file changes nothing.
    pub async fn reload_users(&self) -> Result<(), String> {
        let data_dir = &self.tls.1.data_dir;
        let users = Arc::new(crate::broker::users::Users::load(data_dir)?);
        let acls = Arc::new(crate::broker::acls::Acls::load(data_dir)?);
        let deadline = Duration::from_millis(self.tls.1.shard_call_timeout_ms);
        for shard in 0..self.shards {
            let (users, acls) = (users.clone(), acls.clone());
            self.mailboxes
                .call(shard, deadline, move |state| async move {
                    state.set_users(users);
                    state.set_acls(acls);
                })
                .await
                .map_err(|error| format!("shard {shard}: {error}"))?;
        }
        Ok(())
    }

    /// Stops the broker: no new requests, every request in flight answered, every log written,
    /// fsynced and closed, every shard thread ended.
    pub fn shutdown(self) {
        let mailboxes = self.mailboxes.clone();
        let shards = mailboxes.shards();
        // Each phase is bounded, so that one wedged shard cannot hang the shutdown: draining
        // waits at most the grace period, and closing waits at most the grace period per log.
        let phase_deadline = self.shutdown_grace + SHUTDOWN_PHASE_MARGIN;
        runtime::block_on(async {
            for shard in 0..shards {
                let _ = mailboxes
                    .call(shard, phase_deadline, |state| async move {
                        state.lifecycle.set_stopping()
                    })
                    .await;
            }
            for shard in 0..shards {
                let _ = mailboxes
                    .call(shard, phase_deadline, |state| async move {
                        state.lifecycle.until_drained().await
                    })
                    .await;
            }
            // Shards close their logs at the same time; each log's close has its own deadline.
            let closes = (0..shards).map(|shard| {
                mailboxes.call(shard, CLOSE_PHASE_DEADLINE, |state| async move {
                    state.close_logs().await
                })
            });
            for outcome in futures_util::future::join_all(closes).await {
                if let Err(error) = outcome {
                    tracing::error!(%error, "a shard did not finish closing its logs");
                }
            }
        });
        for shard in 0..shards {
            mailboxes.close(shard);
        }
        for thread in self.threads {
            let _ = thread.join();
        }
        tracing::info!("ringmq stopped");
    }
}
