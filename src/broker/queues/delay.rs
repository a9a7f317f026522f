//! Delayed delivery: when a message may first be delivered. A message is due at its record's
//! timestamp plus its delay: its `x-delay-ms` header (decimal milliseconds), else its queue
//! group's `delay_ms`. The due time derives from the log alone, so delays need no timers of
//! their own on disk and survive a restart as they are: a message read before it is due is
//! held as delayed in the window and made available by the lock-expiry tick once due.
//!
//! The header is the producer's, so it is hostile input: a value that is not a decimal number
//! of at most 20 digits is ignored (the group's delay applies), one over `DELAY_MS_MAX` is cut
//! to it, and a timestamp ahead of the broker's clock counts as now.

use crate::batch::Record;

use super::settings::DELAY_MS_MAX;

/// The header that delays one message.
pub const DELAY_HEADER: &str = "x-delay-ms";

/// A header's value as a decimal u64, if it is one.
pub fn decimal(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 20 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// The message's own delay, if its header gives one.
pub fn header_delay(record: &Record) -> Option<u64> {
    record
        .headers
        .iter()
        .rev()
        .find(|header| header.key == DELAY_HEADER)
        .and_then(|header| decimal(header.value.as_deref()?))
}

/// When `record` may first be delivered (0: at once), given its group's delay.
pub fn due_ms(record: &Record, group_delay_ms: u64, now_ms: u64) -> u64 {
    let delay = header_delay(record)
        .unwrap_or(group_delay_ms)
        .min(DELAY_MS_MAX);
    if delay == 0 {
        return 0;
    }
    let produced = u64::try_from(record.timestamp_ms).unwrap_or(0).min(now_ms);
    produced.saturating_add(delay)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Header;

    fn with_header(timestamp_ms: i64, value: &[u8]) -> Record {
        let mut record = Record::new(timestamp_ms, None, Some(b"v"));
        record.headers.push(Header {
            key: DELAY_HEADER.into(),
            value: Some(bytes::Bytes::copy_from_slice(value)),
        });
        record
    }

    #[test]
    fn due_times_from_headers_and_group_delays() {
        let now = 1_000_000;
        assert_eq!(due_ms(&Record::new(900_000, None, None), 0, now), 0);
        assert_eq!(due_ms(&Record::new(900_000, None, None), 500, now), 900_500);
        assert_eq!(due_ms(&with_header(900_000, b"2000"), 500, now), 902_000);
        assert_eq!(
            due_ms(&with_header(900_000, b"0"), 500, now),
            0,
            "0 overrides"
        );
        // Hostile values: ignored, cut, or a future timestamp taken as now.
        for bad in [&b"-5"[..], b"1e3", b"", b"99999999999999999999999", b" 5"] {
            assert_eq!(due_ms(&with_header(900_000, bad), 500, now), 900_500);
        }
        assert_eq!(
            due_ms(&with_header(900_000, b"18446744073709551615"), 0, now),
            900_000 + DELAY_MS_MAX
        );
        assert_eq!(due_ms(&with_header(i64::MAX, b"10"), 0, now), now + 10);
        assert_eq!(due_ms(&with_header(-7, b"10"), 0, now), 10);
    }
}
