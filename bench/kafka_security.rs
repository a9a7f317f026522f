//! What TLS and SCRAM cost on the Kafka listener, as bench/security.rs measures them on the
//! native one: the same in-process broker, plaintext, over TLS, and over TLS with
//! SCRAM-SHA-256 (Kafka's SASL_SSL), driven by rskafka (a pure-Rust Kafka client with rustls,
//! so the client side of TLS costs what the broker's does), the modes in turns within each run.
//!
//! `cargo bench --bench kafka_security [-- --runs N]` prints, per mode (medians of N runs,
//! default 3):
//! - max rate: 1,000-record produces of 100-byte records, 8 in flight, acks=1 (`written`);
//! - p50/p99 of one 10-record produce sent one at a time at 50% of the mode's own
//!   one-at-a-time maximum;
//! - connection set-up: a new client (bootstrap connection, TLS handshake, SASL) and its first
//!   metadata request, one after another.
//!
//! Not a test: nothing here asserts speed. bench/RESULTS.md records the figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::config::{BrokerConfig, TlsSettings};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use rskafka::record::Record;

const PRODUCES: usize = 1_000;
const IN_FLIGHT: usize = 8;
const LATENCY_SECONDS: f64 = 3.0;
const CONNECTIONS: usize = 50;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Plain,
    Tls,
    TlsScram,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Plain, Mode::Tls, Mode::TlsScram];

    fn name(self) -> &'static str {
        match self {
            Mode::Plain => "PLAINTEXT",
            Mode::Tls => "SSL",
            Mode::TlsScram => "SASL_SSL (SCRAM-256)",
        }
    }
}

struct Figures {
    max_rate: f64,
    p50_us: u64,
    p99_us: u64,
    connect_ms: f64,
}

/// A CA and a server certificate for 127.0.0.1 (what the listener advertises), as PEM files in
/// `dir`, and the CA's certificate for the client: (cert path, key path, CA in DER).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, Vec<u8>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let server = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (dir.join("server.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, server.pem()).unwrap();
    std::fs::write(&paths.1, key.serialize_pem()).unwrap();
    (paths.0, paths.1, ca.der().to_vec())
}

fn client_tls(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_der.to_vec().into()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

async fn connect(address: &str, mode: Mode, tls: &Arc<rustls::ClientConfig>) -> Client {
    let mut builder = ClientBuilder::new(vec![address.to_string()]);
    if mode != Mode::Plain {
        builder = builder.tls_config(tls.clone());
    }
    if mode == Mode::TlsScram {
        let credentials = Credentials::new("bench".into(), "bench-secret".into());
        builder = builder.sasl_config(SaslConfig::ScramSha256(credentials));
    }
    builder.build().await.unwrap()
}

fn records(count: usize) -> Vec<Record> {
    let record = Record {
        key: None,
        value: Some(vec![b'x'; 100]),
        headers: Default::default(),
        timestamp: chrono::Utc::now(),
    };
    vec![record; count]
}

async fn produce(partition: &PartitionClient, count: usize) {
    let produced = partition.produce(records(count), Compression::NoCompression);
    produced.await.unwrap();
}

async fn measure(
    address: &str,
    mode: Mode,
    tls: &Arc<rustls::ClientConfig>,
    topic: &str,
) -> Figures {
    let client = connect(address, mode, tls).await;
    let controller = client.controller_client().unwrap();
    controller.create_topic(topic, 1, 1, 5_000).await.unwrap();
    let partition = client
        .partition_client(topic, 0, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let partition = Arc::new(partition);
    // Max rate, pipelined: rskafka sends each lane's produce on the one shared connection.
    let started = Instant::now();
    let lanes = (0..IN_FLIGHT).map(|_| {
        let partition = partition.clone();
        async move {
            for _ in 0..PRODUCES / IN_FLIGHT {
                produce(&partition, 1_000).await;
            }
        }
    });
    futures_util::future::join_all(lanes).await;
    let max_rate = (PRODUCES * 1_000) as f64 / started.elapsed().as_secs_f64();
    // One at a time: its maximum, then latency at half of it.
    let started = Instant::now();
    let mut sent = 0u32;
    while started.elapsed() < Duration::from_secs(1) {
        produce(&partition, 10).await;
        sent += 1;
    }
    let interval = started.elapsed() / sent * 2;
    let mut latencies = Histogram::<u64>::new(3).unwrap();
    let started = Instant::now();
    let mut next = Instant::now();
    while started.elapsed() < Duration::from_secs_f64(LATENCY_SECONDS) {
        tokio::time::sleep_until(next.into()).await;
        next += interval;
        let sent_at = Instant::now();
        produce(&partition, 10).await;
        let took = sent_at.elapsed().as_micros() as u64;
        latencies.record(took).unwrap();
    }
    // Connection set-up, one after another, each with a metadata round trip.
    let started = Instant::now();
    for _ in 0..CONNECTIONS {
        let client = connect(address, mode, tls).await;
        client.list_topics().await.unwrap();
    }
    let connect_ms = started.elapsed().as_secs_f64() * 1_000.0 / CONNECTIONS as f64;
    Figures {
        max_rate,
        p50_us: latencies.value_at_quantile(0.5),
        p99_us: latencies.value_at_quantile(0.99),
        connect_ms,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn config(data: &Path, mode: Mode, (cert, key): (&Path, &Path)) -> BrokerConfig {
    let mut config = BrokerConfig {
        data_dir: data.to_path_buf(),
        listen: "127.0.0.1:0".into(),
        http_listen: String::new(),
        kafka_listen: "127.0.0.1:0".into(),
        shards: 2,
        ..Default::default()
    };
    if mode != Mode::Plain {
        config.kafka_tls = TlsSettings {
            cert_path: Some(cert.to_path_buf()),
            key_path: Some(key.to_path_buf()),
            ..TlsSettings::default()
        };
    }
    if mode == Mode::TlsScram {
        let mut users = ringmq::broker::users::Users::default();
        let credential = Credential::new(Mechanism::ScramSha256, b"bench-secret", ITERATIONS_MIN);
        users
            .upsert("bench", Mechanism::ScramSha256, credential)
            .unwrap();
        users.save(data).unwrap();
        config.kafka_sasl_mechanisms = vec!["SCRAM-SHA-256".into()];
        config.super_users = vec!["User:bench".into()];
    }
    config
}

fn main() {
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args.next().unwrap().parse().unwrap();
        }
    }
    let certs = tempfile::tempdir().unwrap();
    let (cert, key, ca) = certificates(certs.path());
    let tls = client_tls(&ca);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut figures: Vec<Vec<Figures>> = Mode::ALL.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (index, mode) in Mode::ALL.into_iter().enumerate() {
            let data = tempfile::tempdir().unwrap();
            let handle = ringmq::server::start(config(data.path(), mode, (&cert, &key))).unwrap();
            let address = handle.kafka_address.unwrap().to_string();
            let topic = format!("bench-{run}");
            let measured = runtime.block_on(measure(&address, mode, &tls, &topic));
            eprintln!(
                "run {run} {:<22} {:>12.0} msg/s  p50 {:>6} us  p99 {:>6} us  connect {:.2} ms",
                mode.name(),
                measured.max_rate,
                measured.p50_us,
                measured.p99_us,
                measured.connect_ms
            );
            figures[index].push(measured);
            handle.shutdown();
        }
    }
    let plain_rate = median(figures[0].iter().map(|f| f.max_rate).collect());
    println!(
        "mode                    max msg/s   vs plain   p50 us   p99 us   connect ms   (medians of {runs})"
    );
    for (index, mode) in Mode::ALL.into_iter().enumerate() {
        let of = |pick: fn(&Figures) -> f64| median(figures[index].iter().map(pick).collect());
        let rate = of(|f| f.max_rate);
        println!(
            "{:<22} {:>11.0} {:>9.2}x {:>8.0} {:>8.0} {:>12.2}",
            mode.name(),
            rate,
            rate / plain_rate,
            of(|f| f.p50_us as f64),
            of(|f| f.p99_us as f64),
            of(|f| f.connect_ms),
        );
    }
}
