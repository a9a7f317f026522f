//! The SQS door's settings (`[sqs]`): its account id in queue URLs, the bounds of an HTTP request,
//! SQS's own limits where ringmq lets them be raised, and the SigV4 credentials it checks.

use serde::{Deserialize, Serialize};

/// One access key the SQS door accepts, and the principal its requests act as (ACLs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsCredential {
    pub access_key_id: String,
    pub secret_access_key: String,
    /// The user the requests act as (`User:<this>` in ACLs); empty: the access key id.
    pub principal: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqsConfig {
    /// The 12-digit account id of queue URLs (`http://host:port/<account>/<queue>`) and ARNs.
    pub account_id: String,
    /// The region ARNs name, and the one a SigV4 credential scope must name (clients set their
    /// region to this).
    pub region: String,
    /// Bytes of a request's head (request line and headers); more is refused with 431.
    pub head_bytes_max: usize,
    /// Bytes of a request's body (Content-Length); more is refused with 413.
    pub body_bytes_max: usize,
    /// The largest MaximumMessageSize a queue may have, and its default (SQS's long-standing
    /// 256 KiB; AWS now allows 1 MiB). A receive reserves about five times this in the
    /// connection layer for its answer, so raising it costs concurrent long polls.
    pub message_bytes_max: u32,
    /// The longest DelaySeconds, of a queue or a message (SQS: 900); ringmq allows more.
    pub delay_seconds_max: u32,
    /// Queues one ListQueues page names at most (SQS: 1000).
    pub list_queues_max: u32,
    /// Keys (queues' SQS records and move tasks) each shard's fold of `__sqs_queues` holds at
    /// most; past it CreateQueue, tags and attributes of new queues get OverLimit and records
    /// written there by other doors are ignored.
    pub store_keys_max: usize,
    /// Access keys whose SigV4 signatures are checked; empty: every request is accepted,
    /// signed or not, as the anonymous principal (or its connection's client certificate's).
    pub credentials: Vec<SqsCredential>,
}

impl Default for SqsConfig {
    fn default() -> SqsConfig {
        SqsConfig {
            account_id: "000000000000".into(),
            region: "us-east-1".into(),
            head_bytes_max: 16 * 1024,
            body_bytes_max: 4 << 20,
            message_bytes_max: 256 * 1024,
            delay_seconds_max: 900,
            list_queues_max: 1000,
            store_keys_max: 100_000,
            credentials: Vec::new(),
        }
    }
}

impl SqsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.account_id.len() != 12 || !self.account_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "sqs.account_id {:?} is not 12 digits",
                self.account_id
            ));
        }
        if !(1024..=1 << 20).contains(&self.head_bytes_max) {
            return Err("sqs.head_bytes_max must be 1024 to 1048576".into());
        }
        if !(1024..=64 << 20).contains(&self.body_bytes_max) {
            return Err("sqs.body_bytes_max must be 1024 to 67108864".into());
        }
        if !(1024..=16 << 20).contains(&self.message_bytes_max) {
            return Err("sqs.message_bytes_max must be 1024 to 16777216".into());
        }
        if self.delay_seconds_max > 366 * 24 * 3600 {
            return Err("sqs.delay_seconds_max must be at most a year".into());
        }
        if !(1..=1000).contains(&self.list_queues_max) {
            return Err("sqs.list_queues_max must be 1 to 1000".into());
        }
        if !(16..=10_000_000).contains(&self.store_keys_max) {
            return Err("sqs.store_keys_max must be 16 to 10000000".into());
        }
        for credential in &self.credentials {
            if credential.access_key_id.is_empty() || credential.secret_access_key.is_empty() {
                return Err("sqs.credentials need access_key_id and secret_access_key".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::BrokerConfig;

    #[test]
    fn a_file_opens_the_door_unless_it_says_otherwise_and_reads_credentials() {
        let empty: BrokerConfig = toml::from_str("").unwrap();
        assert_eq!(empty.sqs_listen, "127.0.0.1:9324", "ringmq serve's default");
        assert_eq!(BrokerConfig::default().sqs_listen, "", "embedded: off");
        let text = r#"
            sqs_listen = ""
            [sqs]
            account_id = "123456789012"
            [[sqs.credentials]]
            access_key_id = "AKID"
            secret_access_key = "secret"
            principal = "alice"
        "#;
        let config: BrokerConfig = toml::from_str(text).unwrap();
        assert_eq!(config.sqs_listen_address().unwrap(), None);
        assert_eq!(config.sqs.credentials[0].principal, "alice");
        assert!(config.validate().is_ok());
        assert!(
            config.authorization_enforced(),
            "credentials turn the ACLs on"
        );
        let mut bad = config.clone();
        bad.sqs.account_id = "12".into();
        assert_eq!(
            bad.validate().unwrap_err(),
            "sqs.account_id \"12\" is not 12 digits"
        );
        assert_eq!(
            config.sqs.region, "us-east-1",
            "what botocore's tests sign for"
        );
        assert_eq!(config.sqs.store_keys_max, 100_000);
        let mut bad = config.clone();
        bad.sqs.store_keys_max = 15;
        assert_eq!(
            bad.validate().unwrap_err(),
            "sqs.store_keys_max must be 16 to 10000000"
        );
        let mut bad = config;
        bad.sqs.credentials[0].secret_access_key.clear();
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<BrokerConfig>("[sqs]\nnope = 1").is_err());
    }
}
