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

/// A parsed position, before it is turned into a consumer start or a reset target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    Earliest,
    Latest,
    Offset(u64),
    FromStart(u64),
    FromEnd(u64),
    Timestamp(i64),
    Shift(i64),
}

const VOCABULARY: &str = "earliest, latest, N, -N, +N or @TIMESTAMP_MS";

pub fn parse(value: &str) -> Result<Position, String> {
    let count = |text: &str| {
        text.parse::<u64>()
            .map_err(|_| format!("{value:?} is not {VOCABULARY}"))
    };
    let signed = |text: &str| {
        text.parse::<i64>()
            .map_err(|_| format!("{value:?}: {text:?} is not a whole number"))
    };
    Ok(match value {
        "earliest" | "beginning" => Position::Earliest,
        "latest" | "end" => Position::Latest,
        _ => {
            if let Some(n) = value.strip_prefix('-') {
                Position::FromEnd(count(n)?)
            } else if let Some(n) = value.strip_prefix('+') {
                Position::FromStart(count(n)?)
            } else if let Some(ms) = value.strip_prefix('@') {
                Position::Timestamp(signed(ms)?)
            } else if let Some(n) = value.strip_prefix("offset:") {
                Position::Offset(count(n)?)
            } else if let Some(ms) = value.strip_prefix("timestamp:") {
                Position::Timestamp(signed(ms)?)
            } else if let Some(by) = value.strip_prefix("shift:") {
                Position::Shift(signed(by)?)
            } else {
                Position::Offset(count(value)?)
            }
        }
    })
}

/// A position as a consumer start (`shift:N` needs a committed offset, which a plain consumer
/// has not).
pub fn parse_start(value: &str) -> Result<StartAt, String> {
    Ok(match parse(value)? {
        Position::Earliest => StartAt::Earliest,
        Position::Latest => StartAt::Latest,
        Position::Offset(offset) => StartAt::Offset(offset),
        Position::FromStart(n) => StartAt::FromStart(n),
        Position::FromEnd(n) => StartAt::FromEnd(n),
        Position::Timestamp(ms) => StartAt::Timestamp(ms),
        Position::Shift(_) => {
            return Err("shift:N moves committed offsets; it is for `group reset-offsets`".into());
        }
    })
}

pub fn parse_reset(value: &str) -> Result<ResetTo, String> {
    Ok(match parse(value)? {
        Position::Earliest => ResetTo::Earliest,
        Position::Latest => ResetTo::Latest,
        Position::Offset(offset) => ResetTo::Offset(offset),
        Position::FromStart(n) => ResetTo::FromStart(n),
        Position::FromEnd(n) => ResetTo::FromEnd(n),
        Position::Timestamp(ms) => ResetTo::Timestamp(ms),
        Position::Shift(by) => ResetTo::Shift(by),
    })
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
        assert_eq!(parse("-5").unwrap(), Position::FromEnd(5));
        assert_eq!(parse("+5").unwrap(), Position::FromStart(5));
        assert_eq!(parse("shift:-3").unwrap(), Position::Shift(-3));
        assert_eq!(parse_reset("shift:-3").unwrap(), ResetTo::Shift(-3));
        assert!(parse_start("shift:1").is_err());
        for bad in ["", "-", "+x", "@", "offset:-1", "latest:1", "1.5"] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
