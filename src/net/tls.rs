//! The listeners' TLS settings, read once at start-up (a bad certificate or key fails the
//! start, not the first connection), and the handshake every connection of a TLS listener
//! completes before it is served.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{BrokerConfig, TlsSettings};
use crate::runtime::{self, TcpStream, tls::Stream};

/// The listeners' TLS as every shard reads it at each accept; replaced whole by a reload
/// (SIGHUP), after which new connections get the new certificates and open ones keep theirs.
/// A lock on the accept path only, never on a connection's data path.
pub(crate) type SharedTls = Arc<RwLock<ListenerTls>>;

/// Which listener a configuration is for.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Which {
    Native,
    Kafka,
    Http,
    /// The SQS door (HTTP, or HTTPS with `[sqs_tls]`).
    Sqs,
}

/// Each listener's TLS configuration; None serves plaintext.
#[derive(Clone, Default)]
pub(crate) struct ListenerTls {
    pub native: Option<Arc<rustls::ServerConfig>>,
    pub kafka: Option<Arc<rustls::ServerConfig>>,
    pub http: Option<Arc<rustls::ServerConfig>>,
    pub sqs: Option<Arc<rustls::ServerConfig>>,
}

impl ListenerTls {
    pub(crate) fn from_config(config: &BrokerConfig) -> Result<ListenerTls, String> {
        let native = server_config(&config.tls)
            .map_err(|error| format!("tls (native listener): {error}"))?;
        let kafka = server_config(&config.kafka_tls)
            .map_err(|error| format!("kafka_tls (Kafka listener): {error}"))?;
        let http = server_config(&config.http_tls)
            .map_err(|error| format!("http_tls (metrics listener): {error}"))?;
        let sqs = server_config(&config.sqs_tls)
            .map_err(|error| format!("sqs_tls (SQS listener): {error}"))?;
        let listeners = [
            ("listen", config.listen_address().ok(), native.is_some()),
            (
                "kafka_listen",
                config.kafka_listen_address().ok().flatten(),
                kafka.is_some(),
            ),
            (
                "http_listen",
                config.http_listen_address().ok().flatten(),
                http.is_some(),
            ),
            (
                "sqs_listen",
                config.sqs_listen_address().ok().flatten(),
                sqs.is_some(),
            ),
        ];
        for (setting, address, encrypted) in listeners {
            if let Some(address) = address
                && !address.ip().is_loopback()
                && !encrypted
            {
                tracing::warn!(
                    setting,
                    %address,
                    "a listener beyond this machine serves plaintext, without TLS or authentication: anyone who can reach it can read and write every topic"
                );
            }
        }
        Ok(ListenerTls {
            native,
            kafka,
            http,
            sqs,
        })
    }
}

impl ListenerTls {
    /// The configuration of `which` listener now.
    pub(crate) fn current(shared: &SharedTls, which: Which) -> Option<Arc<rustls::ServerConfig>> {
        // A writer that panicked left a whole value behind (it only assigns): still usable.
        let tls = shared
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match which {
            Which::Native => tls.native.clone(),
            Which::Kafka => tls.kafka.clone(),
            Which::Http => tls.http.clone(),
            Which::Sqs => tls.sqs.clone(),
        }
    }

    /// Reads the certificate files again and, if every one is good, puts them in force.
    pub(crate) fn reload(shared: &SharedTls, config: &BrokerConfig) -> Result<(), String> {
        let fresh = ListenerTls::from_config(config)?;
        *shared
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(())
    }
}

fn server_config(settings: &TlsSettings) -> std::io::Result<Option<Arc<rustls::ServerConfig>>> {
    match (&settings.cert_path, &settings.key_path) {
        (Some(cert), Some(key)) => {
            runtime::tls::server_config(cert, key, settings.client_ca_path.as_deref()).map(Some)
        }
        _ => Ok(None),
    }
}

/// The connection's stream: the socket itself, or TLS over it once its handshake is done
/// within `limit`. None when the handshake failed or took too long.
pub(super) async fn establish(
    socket: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    limit: Duration,
) -> Option<Stream> {
    let Some(config) = tls else {
        return Some(Stream::Plain(socket));
    };
    let handshake = Stream::accept_tls(socket, config);
    let outcome = if limit.is_zero() {
        Some(handshake.await)
    } else {
        runtime::timeout(limit, handshake).await
    };
    match outcome {
        Some(Ok(stream)) => Some(stream),
        Some(Err(error)) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
        None => None,
    }
}
