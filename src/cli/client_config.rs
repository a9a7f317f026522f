//! Client defaults from a TOML file (`--client-config FILE` or `RINGMQ_CLIENT_CONFIG`), so a
//! broker address or ack level need not be repeated on every command. Precedence: flag, then
//! environment variable, then this file, then the built-in default.
//!
//! ```toml
//! broker = "10.0.0.5:9400"
//! acks = "written"          # produce: none, written or fsynced
//! compression = "zstd"      # produce: none, gzip, snappy, lz4 or zstd
//! linger_ms = 5             # produce
//! record_bytes_max = 1048576  # produce: refuse larger records before sending
//! partitioner = "murmur2"   # produce -K: murmur2, crc32 or xxh3
//! format = "json"           # consume: value, kv, json or a template
//! reset = "earliest"        # consume --group: earliest, latest or error
//! tls_ca = "ca.pem"         # connect over TLS, trusting this authority
//! tls_cert = "me.pem"       # mutual TLS: this client's certificate and key
//! tls_key = "me-key.pem"
//! tls_server_name = "broker.example"  # default: the broker address's host
//! user = "alice"            # authenticate (when the broker's listener asks for it)
//! password = "..."          # or RINGMQ_PASSWORD; never a flag, which `ps` would show
//! sasl_mechanism = "SCRAM-SHA-256"  # or SCRAM-SHA-512, PLAIN (over TLS only)
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::client::{ClientTls, SaslCredentials};

pub const DEFAULT_BROKER: &str = "127.0.0.1:9400";

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub broker: Option<String>,
    pub acks: Option<String>,
    pub compression: Option<String>,
    pub linger_ms: Option<u64>,
    pub record_bytes_max: Option<usize>,
    pub partitioner: Option<String>,
    pub format: Option<String>,
    pub reset: Option<String>,
    pub tls_ca: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_server_name: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub sasl_mechanism: Option<String>,
}

/// Where and how a client command connects: the broker's address, and TLS if configured.
#[derive(Clone)]
pub struct Endpoint {
    pub broker: String,
    pub tls: Option<ClientTls>,
    pub sasl: Option<SaslCredentials>,
}

impl ClientConfig {
    pub fn load(path: Option<&Path>) -> Result<ClientConfig, String> {
        let Some(path) = path else {
            return Ok(ClientConfig::default());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|error| format!("client config {}: {error}", path.display()))?;
        toml::from_str(&text).map_err(|error| format!("client config {}: {error}", path.display()))
    }
}

/// Where a client command finds the broker: shared by every client command.
#[derive(clap::Args, Clone, Default)]
pub struct BrokerAddress {
    /// The broker's native protocol address [default: the client config's, else 127.0.0.1:9400].
    #[arg(short = 'b', long = "broker", env = "RINGMQ_BROKER")]
    pub broker: Option<String>,
    /// A TOML file of client defaults (broker, acks, compression, linger_ms, record_bytes_max,
    /// partitioner, format, reset, tls_*); see README.md.
    #[arg(long, env = "RINGMQ_CLIENT_CONFIG", value_name = "FILE")]
    pub client_config: Option<PathBuf>,
    /// Connect over TLS, trusting the authority in this PEM file.
    #[arg(long, env = "RINGMQ_TLS_CA", value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// Mutual TLS: this client's certificate (PEM), with --tls-key.
    #[arg(long, env = "RINGMQ_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// Mutual TLS: this client's private key (PEM), with --tls-cert.
    #[arg(long, env = "RINGMQ_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// The name the broker's certificate must carry [default: the broker address's host].
    #[arg(long, env = "RINGMQ_TLS_SERVER_NAME")]
    pub tls_server_name: Option<String>,
    /// Authenticate as this user; the password comes from RINGMQ_PASSWORD or the client
    /// config's `password`.
    #[arg(long, env = "RINGMQ_USER")]
    pub user: Option<String>,
    /// SCRAM-SHA-256 (the default), SCRAM-SHA-512, or PLAIN (over TLS only).
    #[arg(long, env = "RINGMQ_SASL_MECHANISM")]
    pub sasl_mechanism: Option<String>,
}

impl BrokerAddress {
    /// The client config file's settings, with the broker address resolved into it.
    pub fn settings(&self) -> Result<ClientConfig, String> {
        let mut config = ClientConfig::load(self.client_config.as_deref())?;
        config.broker = Some(
            self.broker
                .clone()
                .or(config.broker)
                .unwrap_or_else(|| DEFAULT_BROKER.to_string()),
        );
        config.tls_ca = self.tls_ca.clone().or(config.tls_ca);
        config.tls_cert = self.tls_cert.clone().or(config.tls_cert);
        config.tls_key = self.tls_key.clone().or(config.tls_key);
        config.tls_server_name = self.tls_server_name.clone().or(config.tls_server_name);
        config.user = self.user.clone().or(config.user);
        config.sasl_mechanism = self.sasl_mechanism.clone().or(config.sasl_mechanism);
        config.password = std::env::var("RINGMQ_PASSWORD").ok().or(config.password);
        Ok(config)
    }
}

impl ClientConfig {
    /// The broker address, with TLS when `tls_ca` is set (and a client certificate when
    /// `tls_cert` and `tls_key` are).
    pub fn endpoint(&self) -> Result<Endpoint, String> {
        let broker = self
            .broker
            .clone()
            .unwrap_or_else(|| DEFAULT_BROKER.to_string());
        let sasl = match (&self.user, &self.password) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    "--user needs a password: RINGMQ_PASSWORD or the client config's".into(),
                );
            }
            (Some(user), Some(password)) => Some(SaslCredentials {
                mechanism: self
                    .sasl_mechanism
                    .clone()
                    .unwrap_or_else(|| "SCRAM-SHA-256".to_string()),
                user: user.clone(),
                password: password.clone(),
            }),
        };
        let Some(ca) = &self.tls_ca else {
            if self.tls_cert.is_some() || self.tls_key.is_some() {
                return Err("--tls-cert and --tls-key need --tls-ca".into());
            }
            return Ok(Endpoint {
                broker,
                tls: None,
                sasl,
            });
        };
        let identity = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err("--tls-cert and --tls-key go together".into()),
        };
        // The host part of host:port (an IPv6 address in brackets loses them).
        let host = broker
            .rsplit_once(':')
            .map_or(broker.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = self.tls_server_name.as_deref().unwrap_or(host);
        let tls = ClientTls::new(ca, name, identity).map_err(|error| error.to_string())?;
        Ok(Endpoint {
            broker,
            tls: Some(tls),
            sasl,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.toml");
        std::fs::write(
            &path,
            "broker = \"10.0.0.5:9400\"\nacks = \"written\"\npartitioner = \"crc32\"\n",
        )
        .unwrap();
        let from_file = BrokerAddress {
            client_config: Some(path.clone()),
            ..BrokerAddress::default()
        };
        let settings = from_file.settings().unwrap();
        assert_eq!(settings.broker.as_deref(), Some("10.0.0.5:9400"));
        assert_eq!(settings.acks.as_deref(), Some("written"));
        assert_eq!(settings.partitioner.as_deref(), Some("crc32"));
        let flag = BrokerAddress {
            broker: Some("h:1".into()),
            client_config: Some(path.clone()),
            ..BrokerAddress::default()
        };
        assert_eq!(flag.settings().unwrap().broker.as_deref(), Some("h:1"));
        let none = BrokerAddress::default();
        assert_eq!(
            none.settings().unwrap().broker.as_deref(),
            Some(DEFAULT_BROKER)
        );
        std::fs::write(&path, "brokr = \"typo\"\n").unwrap();
        assert!(from_file.settings().is_err(), "unknown keys are refused");
    }

    #[test]
    fn tls_needs_an_authority_and_names_the_brokers_host_by_default() {
        let plain = ClientConfig::default().endpoint().unwrap();
        assert!(plain.tls.is_none());
        let half = ClientConfig {
            tls_cert: Some("me.pem".into()),
            ..ClientConfig::default()
        };
        assert!(
            half.endpoint().is_err(),
            "a certificate without an authority"
        );
        let missing = ClientConfig {
            broker: Some("broker.example:9400".into()),
            tls_ca: Some("/nonexistent/ca.pem".into()),
            ..ClientConfig::default()
        };
        let error = missing.endpoint().err().unwrap();
        assert!(error.contains("/nonexistent/ca.pem"), "{error}");
    }
}
