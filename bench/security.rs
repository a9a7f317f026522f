//! What TLS and SCRAM cost on the native protocol: the same in-process broker and client,
//! plaintext, over TLS, and over TLS with SCRAM-SHA-256 authentication, measured in turns
//! within each run so that every mode sees the same machine.
//!
//! `cargo bench --bench security [-- --runs N]` prints, per mode (medians of N runs, default
//! 3):
//! - max rate: 1,000-record batches of 100-byte records, 8 requests in flight, at `written`;
//! - p50/p99 of one produce (10 records) sent one at a time at 50% of the mode's own
//!   one-at-a-time maximum;
//! - connection set-up: connect, TLS handshake and SCRAM exchange, one after another.
//!
//! Not a test: nothing here asserts speed. bench/RESULTS.md records the figures.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ringmq::auth::scram::{Credential, ITERATIONS_MIN, Mechanism};
use ringmq::batch::{BatchBuilder, Compression, Record};
use ringmq::client::{Client, ClientTls, SaslCredentials};
use ringmq::config::{BrokerConfig, TlsSettings};
use ringmq::runtime;
use ringmq::storage::AckLevel;

const BATCHES: usize = 1_000;
const IN_FLIGHT: usize = 8;
const LATENCY_SECONDS: f64 = 3.0;
const CONNECTIONS: usize = 100;

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
            Mode::Plain => "plaintext",
            Mode::Tls => "TLS",
            Mode::TlsScram => "TLS + SCRAM-SHA-256",
        }
    }
}

struct Figures {
    max_rate: f64,
    p50_us: u64,
    p99_us: u64,
    connect_ms: f64,
}

/// A CA and a server certificate for localhost, as PEM files in `dir`: (ca, cert, key).
fn certificates(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "bench CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    let server = params.signed_by(&key, &issuer).unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, server.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn batch(records: usize) -> BytesMut {
    let mut builder = BatchBuilder::new(Compression::None);
    let value = [b'x'; 100];
    for _ in 0..records {
        builder.push(Record::new(0, None, Some(&value)));
    }
    BytesMut::from(&builder.build()[..])
}

async fn connect(address: &str, mode: Mode, tls: &ClientTls) -> Client {
    let credentials = SaslCredentials {
        mechanism: "SCRAM-SHA-256".into(),
        user: "bench".into(),
        password: "bench-secret".into(),
    };
    match mode {
        Mode::Plain => Client::connect(address).await.unwrap(),
        Mode::Tls => Client::connect_tls(address, tls).await.unwrap(),
        Mode::TlsScram => Client::connect_with(address, Some(tls), Some(&credentials))
            .await
            .unwrap(),
    }
}

fn measure(address: &str, mode: Mode, tls: &ClientTls, topic: &str) -> Figures {
    runtime::block_on(async {
        let client = connect(address, mode, tls).await;
        client.create_topic(topic, 1, &[]).await.unwrap();
        // Max rate, pipelined.
        let started = Instant::now();
        let lanes: Vec<_> = (0..IN_FLIGHT)
            .map(|_| {
                let (client, topic) = (client.clone(), topic.to_string());
                runtime::spawn(async move {
                    for _ in 0..BATCHES / IN_FLIGHT {
                        client
                            .produce(&topic, Some(0), b"", AckLevel::Written, batch(1_000))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for lane in lanes {
            lane.await.unwrap();
        }
        let max_rate = (BATCHES * 1_000) as f64 / started.elapsed().as_secs_f64();
        // One at a time: its maximum, then latency at half of it.
        let started = Instant::now();
        let mut sent = 0u32;
        while started.elapsed() < Duration::from_secs(1) {
            client
                .produce(topic, Some(0), b"", AckLevel::Written, batch(10))
                .await
                .unwrap();
            sent += 1;
        }
        let interval = started.elapsed() / sent * 2;
        let mut latencies = Histogram::<u64>::new(3).unwrap();
        let started = Instant::now();
        let mut next = Instant::now();
        while started.elapsed() < Duration::from_secs_f64(LATENCY_SECONDS) {
            let wait = next.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                runtime::sleep(wait).await;
            }
            next += interval;
            let sent_at = Instant::now();
            client
                .produce(topic, Some(0), b"", AckLevel::Written, batch(10))
                .await
                .unwrap();
            latencies
                .record(sent_at.elapsed().as_micros() as u64)
                .unwrap();
        }
        // Connection set-up, one after another.
        let started = Instant::now();
        for _ in 0..CONNECTIONS {
            drop(connect(address, mode, tls).await);
        }
        let connect_ms = started.elapsed().as_secs_f64() * 1_000.0 / CONNECTIONS as f64;
        Figures {
            max_rate,
            p50_us: latencies.value_at_quantile(0.5),
            p99_us: latencies.value_at_quantile(0.99),
            connect_ms,
        }
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
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
    let (ca, cert, key) = certificates(certs.path());
    let tls = ClientTls::new(&ca, "localhost", None).unwrap();
    let mut figures: Vec<Vec<Figures>> = Mode::ALL.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (index, mode) in Mode::ALL.into_iter().enumerate() {
            let data = tempfile::tempdir().unwrap();
            let mut config = BrokerConfig {
                data_dir: data.path().to_path_buf(),
                listen: "127.0.0.1:0".into(),
                http_listen: String::new(),
                kafka_listen: String::new(),
                shards: 2,
                ..Default::default()
            };
            if mode != Mode::Plain {
                config.tls = TlsSettings {
                    cert_path: Some(cert.clone()),
                    key_path: Some(key.clone()),
                    ..TlsSettings::default()
                };
            }
            if mode == Mode::TlsScram {
                let mut users = ringmq::broker::users::Users::default();
                let credential =
                    Credential::new(Mechanism::ScramSha256, b"bench-secret", ITERATIONS_MIN);
                users
                    .upsert("bench", Mechanism::ScramSha256, credential)
                    .unwrap();
                users.save(data.path()).unwrap();
                config.sasl_mechanisms = vec!["SCRAM-SHA-256".into()];
                config.super_users = vec!["User:bench".into()];
            }
            let handle = ringmq::server::start(config).unwrap();
            let address = format!("localhost:{}", handle.address.port());
            let measured = measure(&address, mode, &tls, &format!("bench-{run}"));
            eprintln!(
                "run {run} {:<20} {:>12.0} msg/s  p50 {:>6} us  p99 {:>6} us  connect {:.2} ms",
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
        "mode                  max msg/s   vs plain   p50 us   p99 us   connect ms   (medians of {runs})"
    );
    for (index, mode) in Mode::ALL.into_iter().enumerate() {
        let of = |pick: fn(&Figures) -> f64| median(figures[index].iter().map(pick).collect());
        let rate = of(|f| f.max_rate);
        println!(
            "{:<20} {:>11.0} {:>9.2}x {:>8.0} {:>8.0} {:>12.2}",
            mode.name(),
            rate,
            rate / plain_rate,
            of(|f| f.p50_us as f64),
            of(|f| f.p99_us as f64),
            of(|f| f.connect_ms),
        );
    }
}
