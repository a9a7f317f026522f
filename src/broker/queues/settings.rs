//! A queue group's settings: the broker's defaults (`config.queues`) overridden by the
//! `key=value` pairs of its creation, each checked against a bound, and the broker-wide limits
//! that are not per group. Stored in the group's journal record, so a restart keeps them.

use crate::broker::{BrokerError, BrokerResult, ErrorKind};
use crate::config::QueueConfig;

pub const VISIBILITY_TIMEOUT_MS_MIN: u32 = 10;
/// SQS's bound: twelve hours.
pub const VISIBILITY_TIMEOUT_MS_MAX: u32 = 12 * 3600 * 1000;
pub const MAX_DELIVERIES_MAX: u32 = 1000;
/// The bound on `max_in_flight`, `max_unacked` and `window_messages_max` (and so on one
/// group's memory per partition: a span per message at worst).
pub const LOCKS_MAX: u32 = 1_000_000;
/// A release may delay redelivery by at most this long.
pub const RELEASE_DELAY_MS_MAX: u32 = VISIBILITY_TIMEOUT_MS_MAX;
/// Bytes of a consumer id.
pub const CONSUMER_ID_BYTES_MAX: usize = 255;
/// Ranges one settle may name.
pub const SETTLE_RANGES_MAX: usize = 10_000;
/// The longest delay, of a group or of a message (`x-delay-ms`): a year.
pub const DELAY_MS_MAX: u64 = 366 * 24 * 3600 * 1000;
/// Longest dead-letter topic name (a topic name's bound).
const TOPIC_NAME_BYTES_MAX: usize = 200;

/// One queue group's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub visibility_timeout_ms: u32,
    pub max_deliveries: u32,
    pub max_in_flight: u32,
    pub max_unacked: u32,
    pub window_messages_max: u32,
    pub dead_letter_topic: String,
    /// The delay before a new message becomes available (0: none), unless it says.
    pub delay_ms: u64,
    /// What orders messages into FIFO message groups.
    pub fifo: FifoKey,
}

/// Where a FIFO message group's key comes from: messages with the same key are delivered in
/// order and one at a time; messages without one are not ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FifoKey {
    /// No FIFO message groups.
    #[default]
    Off,
    /// The `x-group-key` header.
    Header,
    /// The record's key.
    Key,
}

impl FifoKey {
    pub fn name(self) -> &'static str {
        match self {
            FifoKey::Off => "off",
            FifoKey::Header => "header",
            FifoKey::Key => "key",
        }
    }

    pub fn to_byte(self) -> u8 {
        self as u8
    }

    pub fn from_byte(byte: u8) -> Option<FifoKey> {
        [FifoKey::Off, FifoKey::Header, FifoKey::Key]
            .into_iter()
            .find(|key| *key as u8 == byte)
    }
}

/// Where a new queue group starts reading each partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    /// This offset, held within the log's start and end (a Kafka share group's altered
    /// start offset).
    Offset(u64),
}

fn invalid(message: String) -> BrokerError {
    BrokerError::new(ErrorKind::InvalidConfig, message)
}

fn bounded(key: &str, value: &str, min: u32, max: u32) -> BrokerResult<u32> {
    let parsed: u32 = value
        .parse()
        .map_err(|_| invalid(format!("{key}={value:?} is not a number")))?;
    if !(min..=max).contains(&parsed) {
        return Err(invalid(format!("{key}={parsed} is outside {min}..={max}")));
    }
    Ok(parsed)
}

/// The dead-letter topic a group gets unless it names one.
pub fn default_dead_letter_topic(topic: &str, group: &str) -> String {
    format!("{topic}.{group}.dlq")
}

impl QueueSettings {
    /// The defaults of `config` with `overrides` applied, and where the group starts.
    pub fn parse(
        config: &QueueConfig,
        topic: &str,
        group: &str,
        overrides: &[(String, String)],
    ) -> BrokerResult<(QueueSettings, StartAt)> {
        let mut settings = QueueSettings {
            visibility_timeout_ms: config.visibility_timeout_ms,
            max_deliveries: config.max_deliveries,
            max_in_flight: config.max_in_flight,
            max_unacked: config.max_unacked,
            window_messages_max: config.window_messages_max,
            dead_letter_topic: default_dead_letter_topic(topic, group),
            delay_ms: config.delay_ms,
            fifo: FifoKey::Off,
        };
        let mut start = StartAt::Earliest;
        settings.apply(overrides, &mut start)?;
        settings.validate(topic)?;
        Ok((settings, start))
    }

    /// `overrides` applied to these settings (`start` is a creation's only); not validated.
    pub fn apply(
        &mut self,
        overrides: &[(String, String)],
        start: &mut StartAt,
    ) -> BrokerResult<()> {
        let settings = self;
        for (key, value) in overrides {
            match key.as_str() {
                "visibility_timeout_ms" => {
                    settings.visibility_timeout_ms = bounded(
                        key,
                        value,
                        VISIBILITY_TIMEOUT_MS_MIN,
                        VISIBILITY_TIMEOUT_MS_MAX,
                    )?
                }
                "max_deliveries" => {
                    settings.max_deliveries = bounded(key, value, 1, MAX_DELIVERIES_MAX)?
                }
                "max_in_flight" => settings.max_in_flight = bounded(key, value, 1, LOCKS_MAX)?,
                "max_unacked" => settings.max_unacked = bounded(key, value, 1, LOCKS_MAX)?,
                "window_messages_max" => {
                    settings.window_messages_max = bounded(key, value, 1, LOCKS_MAX)?
                }
                "dead_letter_topic" => settings.dead_letter_topic = value.clone(),
                "delay_ms" => {
                    settings.delay_ms = value
                        .parse()
                        .map_err(|_| invalid(format!("{key}={value:?} is not a number")))?
                }
                "fifo" => {
                    settings.fifo = [FifoKey::Off, FifoKey::Header, FifoKey::Key]
                        .into_iter()
                        .find(|fifo| fifo.name() == value)
                        .ok_or_else(|| {
                            invalid(format!("fifo={value:?} is not off, header or key"))
                        })?
                }
                "start" => {
                    *start = match value.as_str() {
                        "earliest" => StartAt::Earliest,
                        "latest" => StartAt::Latest,
                        other => {
                            return Err(invalid(format!(
                                "start={other:?} is not earliest or latest"
                            )));
                        }
                    }
                }
                other => return Err(invalid(format!("unknown queue group setting {other:?}"))),
            }
        }
        Ok(())
    }

    /// Checks what `parse` checks, also for settings read back from a journal.
    pub fn validate(&self, topic: &str) -> BrokerResult<()> {
        let name = &self.dead_letter_topic;
        if name.len() > TOPIC_NAME_BYTES_MAX {
            return Err(invalid(format!(
                "the dead-letter topic name would be {} bytes, over {TOPIC_NAME_BYTES_MAX}; name one with dead_letter_topic",
                name.len()
            )));
        }
        crate::broker::topics::validate_name(name)?;
        if name == topic {
            return Err(invalid(
                "a queue group cannot dead-letter into the topic it reads".into(),
            ));
        }
        let checks = [
            (
                "visibility_timeout_ms",
                self.visibility_timeout_ms,
                VISIBILITY_TIMEOUT_MS_MIN,
                VISIBILITY_TIMEOUT_MS_MAX,
            ),
            ("max_deliveries", self.max_deliveries, 1, MAX_DELIVERIES_MAX),
            ("max_in_flight", self.max_in_flight, 1, LOCKS_MAX),
            ("max_unacked", self.max_unacked, 1, LOCKS_MAX),
            (
                "window_messages_max",
                self.window_messages_max,
                1,
                LOCKS_MAX,
            ),
        ];
        if self.delay_ms > DELAY_MS_MAX {
            return Err(invalid(format!(
                "delay_ms={} is over {DELAY_MS_MAX} (a year)",
                self.delay_ms
            )));
        }
        for (key, value, min, max) in checks {
            if !(min..=max).contains(&value) {
                return Err(invalid(format!("{key}={value} is outside {min}..={max}")));
            }
        }
        Ok(())
    }

    /// The settings as `key=value` pairs, for describe.
    pub fn describe(&self) -> Vec<(String, String)> {
        vec![
            (
                "visibility_timeout_ms".into(),
                self.visibility_timeout_ms.to_string(),
            ),
            ("max_deliveries".into(), self.max_deliveries.to_string()),
            ("max_in_flight".into(), self.max_in_flight.to_string()),
            ("max_unacked".into(), self.max_unacked.to_string()),
            (
                "window_messages_max".into(),
                self.window_messages_max.to_string(),
            ),
            ("dead_letter_topic".into(), self.dead_letter_topic.clone()),
            ("delay_ms".into(), self.delay_ms.to_string()),
            ("fifo".into(), self.fifo.name().to_string()),
        ]
    }
}

/// A visibility timeout a receive asks for (0: the group's), checked.
pub fn visibility_for(settings: &QueueSettings, asked_ms: u32) -> BrokerResult<u32> {
    if asked_ms == 0 {
        return Ok(settings.visibility_timeout_ms);
    }
    if !(VISIBILITY_TIMEOUT_MS_MIN..=VISIBILITY_TIMEOUT_MS_MAX).contains(&asked_ms) {
        return Err(BrokerError::new(
            ErrorKind::InvalidRequest,
            format!(
                "visibility timeout {asked_ms} ms is outside {VISIBILITY_TIMEOUT_MS_MIN}..={VISIBILITY_TIMEOUT_MS_MAX}"
            ),
        ));
    }
    Ok(asked_ms)
}
