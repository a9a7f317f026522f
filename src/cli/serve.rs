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
    /// SQS-compatible HTTP API listen address, empty to disable [default: 127.0.0.1:9324].
    #[arg(long, env = "RINGMQ_SQS_LISTEN")]
    sqs_listen: Option<String>,
    /// Create a Kafka client's topic on first use (Metadata that allows it, or a produce), as
    /// Kafka's auto.create.topics.enable [default: true].
    #[arg(long, env = "RINGMQ_AUTO_CREATE_TOPICS", value_name = "true|false")]
    auto_create_topics: Option<bool>,
    /// Partitions of a topic created on first use (Kafka's num.partitions) [default: 1].
    #[arg(long, env = "RINGMQ_DEFAULT_PARTITIONS")]
    default_partitions: Option<u32>,
    /// Shards (one thread per core, pinned); 0 for one per available core [default: 0].
    #[arg(long, env = "RINGMQ_SHARDS")]
    shards: Option<usize>,
}

impl ServeArgs {
    pub fn into_config(self) -> Result<BrokerConfig, String> {
        let mut config = match &self.config {
            Some(path) => BrokerConfig::from_toml_file(path)?,
            None => BrokerConfig {
                sqs_listen: crate::config::SQS_LISTEN_DEFAULT.into(),
                ..BrokerConfig::default()
            },
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
        if let Some(sqs_listen) = self.sqs_listen {
            config.sqs_listen = sqs_listen;
        }
        if let Some(auto_create_topics) = self.auto_create_topics {
            config.auto_create_topics = auto_create_topics;
        }
        if let Some(default_partitions) = self.default_partitions {
            config.default_partitions = default_partitions;
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
    // SIGHUP (reload the TLS certificates) is caught from here on too: its default would end
    // the process.
    let mut hangup = Box::pin(crate::runtime::signal(libc::SIGHUP));
    let early = crate::runtime::block_on(std::future::poll_fn(|context| {
        let _ = hangup.as_mut().poll(context);
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
    let waited = crate::runtime::block_on(async {
        loop {
            let either = futures_util::future::select(signal.as_mut(), hangup.as_mut()).await;
            match either {
                futures_util::future::Either::Left((result, _)) => return result,
                futures_util::future::Either::Right((result, _)) => {
                    result?;
                    // The next SIGHUP is caught before this one's handler goes away.
                    let mut next = Box::pin(crate::runtime::signal(libc::SIGHUP));
                    std::future::poll_fn(|context| {
                        let _ = next.as_mut().poll(context);
                        std::task::Poll::Ready(())
                    })
                    .await;
                    hangup = next;
                    match server.reload_tls() {
                        Ok(()) => tracing::info!("SIGHUP: TLS certificates and keys reloaded"),
                        Err(reason) => tracing::error!(
                            %reason,
                            "SIGHUP: TLS certificates not reloaded; the previous ones stay in force"
                        ),
                    }
                    match server.reload_users().await {
                        Ok(()) => tracing::info!("SIGHUP: users.json and acls.json reloaded"),
                        Err(reason) => tracing::error!(
                            %reason,
                            "SIGHUP: users.json and acls.json not reloaded; the previous ones stay in force"
                        ),
                    }
                }
            }
        }
    });
    if let Err(error) = waited {
        eprintln!("ringmq serve: cannot wait for signals: {error}");
    }
    tracing::info!("signal received: finishing requests in flight, then fsync and close");
    server.shutdown();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    fn config(flags: &[&str]) -> Result<BrokerConfig, String> {
        let parsed = <Serve as clap::Parser>::try_parse_from(
            std::iter::once("serve").chain(flags.iter().copied()),
        )
        .map_err(|error| error.to_string())?;
        parsed.args.into_config()
    }

    #[test]
    fn auto_creation_and_its_partitions_are_set_by_flags() {
        let defaults = config(&[]).unwrap();
        assert_eq!(
            (defaults.auto_create_topics, defaults.default_partitions),
            (true, 1)
        );
        let set = config(&["--auto-create-topics", "false", "--default-partitions", "8"]).unwrap();
        assert_eq!((set.auto_create_topics, set.default_partitions), (false, 8));
        let refused = config(&["--default-partitions", "0"]).unwrap_err();
        assert_eq!(
            refused,
            "default_partitions must be 1 to topic_partitions_max"
        );
        assert!(config(&["--auto-create-topics", "maybe"]).is_err());
    }
}
