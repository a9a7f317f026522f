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
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

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
#[derive(clap::Args, Clone)]
pub struct BrokerAddress {
    /// The broker's native protocol address [default: the client config's, else 127.0.0.1:9400].
    #[arg(short = 'b', long = "broker", env = "RINGMQ_BROKER")]
    pub broker: Option<String>,
    /// A TOML file of client defaults (broker, acks, compression, linger_ms, record_bytes_max,
    /// partitioner, format, reset); see README.md.
    #[arg(long, env = "RINGMQ_CLIENT_CONFIG", value_name = "FILE")]
    pub client_config: Option<PathBuf>,
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
        Ok(config)
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
            broker: None,
            client_config: Some(path.clone()),
        };
        let settings = from_file.settings().unwrap();
        assert_eq!(settings.broker.as_deref(), Some("10.0.0.5:9400"));
        assert_eq!(settings.acks.as_deref(), Some("written"));
        assert_eq!(settings.partitioner.as_deref(), Some("crc32"));
        let flag = BrokerAddress {
            broker: Some("h:1".into()),
            client_config: Some(path.clone()),
        };
        assert_eq!(flag.settings().unwrap().broker.as_deref(), Some("h:1"));
        let none = BrokerAddress {
            broker: None,
            client_config: None,
        };
        assert_eq!(
            none.settings().unwrap().broker.as_deref(),
            Some(DEFAULT_BROKER)
        );
        std::fs::write(&path, "brokr = \"typo\"\n").unwrap();
        assert!(from_file.settings().is_err(), "unknown keys are refused");
    }
}
