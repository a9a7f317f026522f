//! `ringmq serve`: configuration from defaults, a TOML file, the environment and flags (flags
//! win), then the broker until SIGINT or SIGTERM, then an orderly shutdown.

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::BrokerConfig;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings in README.md's configuration table.
    #[arg(long, env = "RINGMQ_CONFIG")]
    config: Option<PathBuf>,
    /// Where partition logs and topic metadata live [default: ./ringmq-data].
    #[arg(long, env = "RINGMQ_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Native protocol listen address [default: 127.0.0.1:9400].
    #[arg(long, env = "RINGMQ_LISTEN")]
    listen: Option<String>,
    /// Kafka protocol listen address, empty to disable [default: 127.0.0.1:9092].
    #[arg(long, env = "RINGMQ_KAFKA_LISTEN")]
    kafka_listen: Option<String>,
    /// The host:port Kafka clients are told to connect to [default: the Kafka listen address].
    #[arg(long, env = "RINGMQ_KAFKA_ADVERTISED")]
    kafka_advertised: Option<String>,
    /// Prometheus /metrics listen address, empty to disable [default: 127.0.0.1:9401].
    #[arg(long, env = "RINGMQ_HTTP_LISTEN")]
    http_listen: Option<String>,
    /// Shards (one thread per core, pinned); 0 for one per available core [default: 0].
    #[arg(long, env = "RINGMQ_SHARDS")]
    shards: Option<usize>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<BrokerConfig, String> {
        let mut config = match &self.config {
            Some(path) => BrokerConfig::from_toml_file(path)?,
            None => BrokerConfig::default(),
        };
        if let Some(data_dir) = self.data_dir {
            config.data_dir = data_dir;
        }
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(kafka_listen) = self.kafka_listen {
            config.kafka_listen = kafka_listen;
        }
        if let Some(kafka_advertised) = self.kafka_advertised {
            config.kafka_advertised = kafka_advertised;
        }
        if let Some(http_listen) = self.http_listen {
            config.http_listen = http_listen;
        }
        if let Some(shards) = self.shards {
            config.shards = shards;
        }
        config.validate()?;
        Ok(config)
    }
}

pub fn run(args: ServeArgs) -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let config = match args.into_config() {
        Ok(config) => config,
        Err(reason) => {
            eprintln!("ringmq serve: {reason}");
            return ExitCode::from(2);
        }
    };
    if let Err(reason) = crate::broker::fd_budget::check_at_start(&config) {
        eprintln!("ringmq serve: {reason}");
        return ExitCode::from(1);
    }
    // SIGINT and SIGTERM are caught from before the broker starts: one that arrives right as it
    // logs "serving" must stop it cleanly, not kill it. The signal future is runtime-agnostic (a
    // process-wide handler sets a flag), so polling it once here registers it, and the wait
    // below may run on another runtime.
    let mut signal = Box::pin(crate::runtime::termination_signal());
    let early = crate::runtime::block_on(std::future::poll_fn(|context| {
        std::task::Poll::Ready(signal.as_mut().poll(context))
    }));
    if early.is_ready() {
        tracing::info!("signal received before start-up: not starting");
        return ExitCode::SUCCESS;
    }
    let server = match crate::server::start(config) {
        Ok(server) => server,
        Err(reason) => {
            eprintln!("ringmq serve: {reason}");
            return ExitCode::from(1);
        }
    };
    if let Err(error) = crate::runtime::block_on(signal) {
        eprintln!("ringmq serve: cannot wait for signals: {error}");
    }
    tracing::info!("signal received: finishing requests in flight, then fsync and close");
    server.shutdown();
    ExitCode::SUCCESS
}
