//! One vocabulary for positions in a partition, shared by `consume --from` and `group
//! reset-offsets --to`:
//!
//! | spelling | meaning |
//! |---|---|
//! | `earliest` (alias `beginning`) | the log start |
//! | `latest` (alias `end`) | the end: only records produced from now on |
//! | `N` (alias `offset:N`) | offset N (a reset keeps it inside the log) |
//! | `-N` | N records before the end |
//! | `+N` | N records after the log start |
//! | `@MS` (alias `timestamp:MS`) | the first record at or after MS milliseconds since the epoch |
//! | `shift:N` (resets only) | the committed offset moved by N (negative: back) |
//!
//! `+N` counts from the start everywhere (never from the committed offset), so a spelling means
//! the same in both commands; moving committed offsets relative to themselves is `shift:N`.

use crate::client::{ResetTo, StartAt};

const VOCABULARY: &str = "earliest, latest, N, -N, +N or @TIMESTAMP_MS";

/// Any spelling of the vocabulary, as the widest target (a reset); `parse_start` narrows it.
pub fn parse(value: &str) -> Result<ResetTo, String> {
    let count = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| format!("{value:?} is not {VOCABULARY}"))
    };
    let signed = |text: &str| {
        text.parse::<i64>()
            .map_err(|_| format!("{value:?}: {text:?} is not a whole number"))
    };
    Ok(match value {
        "earliest" | "beginning" => ResetTo::Earliest,
        "latest" | "end" => ResetTo::Latest,
        _ => {
            if let Some(n) = value.strip_prefix('-') {
                ResetTo::FromEnd(count(n)?)
            } else if let Some(n) = value.strip_prefix('+') {
                ResetTo::FromStart(count(n)?)
            } else if let Some(ms) = value.strip_prefix('@') {
                ResetTo::Timestamp(signed(ms)?)
            } else if let Some(n) = value.strip_prefix("offset:") {
                ResetTo::Offset(count(n)?)
            } else if let Some(ms) = value.strip_prefix("timestamp:") {
                ResetTo::Timestamp(signed(ms)?)
            } else if let Some(by) = value.strip_prefix("shift:") {
                ResetTo::Shift(signed(by)?)
            } else {
                ResetTo::Offset(count(value)?)
            }
        }
    })
}

/// A position as a consumer start (`shift:N` needs a committed offset, which a plain consumer
/// has not).
pub fn parse_start(value: &str) -> Result<StartAt, String> {
    Ok(match parse(value)? {
        ResetTo::Earliest => StartAt::Earliest,
        ResetTo::Latest => StartAt::Latest,
        ResetTo::Offset(offset) => StartAt::Offset(offset),
        ResetTo::FromStart(n) => StartAt::FromStart(n),
        ResetTo::FromEnd(n) => StartAt::FromEnd(n),
        ResetTo::Timestamp(ms) => StartAt::Timestamp(ms),
        ResetTo::Shift(_) => {
            return Err("shift:N moves committed offsets; it is for `group reset-offsets`".into());
        }
    })
}

pub fn parse_reset(value: &str) -> Result<ResetTo, String> {
    parse(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_spellings_and_old_aliases_agree() {
        for (new, old) in [
            ("earliest", "beginning"),
            ("latest", "end"),
            ("42", "offset:42"),
            ("@1700000000000", "timestamp:1700000000000"),
        ] {
            assert_eq!(parse(new).unwrap(), parse(old).unwrap(), "{new} = {old}");
        }
        assert_eq!(parse("-5").unwrap(), ResetTo::FromEnd(5));
        assert_eq!(parse("+5").unwrap(), ResetTo::FromStart(5));
        assert_eq!(parse("shift:-3").unwrap(), ResetTo::Shift(-3));
        assert_eq!(parse_reset("shift:-3").unwrap(), ResetTo::Shift(-3));
        assert!(parse_start("shift:1").is_err());
        for bad in ["", "-", "+x", "@", "offset:-1", "latest:1", "1.5"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
