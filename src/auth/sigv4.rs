//! AWS Signature Version 4, the broker's side: checks that an HTTP request (the SQS API's) was
//! signed with the secret of the access key it names. The client's signature is recomputed from
//! the request as received (canonical request, string to sign, the key derived from the secret
//! and the credential scope) and compared in constant time; a request dated more than
//! `CLOCK_SKEW_MAX` from now is refused, so a captured request cannot be replayed later.
//!
//! Everything here reads a hostile request: lengths are bounded by the HTTP layer that parsed
//! it, and nothing here indexes or allocates from values the client chose beyond them.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ring::{digest, hmac};

/// The only algorithm SigV4 names.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's `X-Amz-Date` may be from the broker's clock (AWS allows 15 minutes).
pub const CLOCK_SKEW_MAX: Duration = Duration::from_secs(15 * 60);
/// Headers one signature may cover.
const SIGNED_HEADERS_MAX: usize = 64;

/// Why a request's signature is refused (each is AWS's `SignatureDoesNotMatch`,
/// `IncompleteSignature`, `InvalidClientTokenId` or `RequestExpired` to the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SigV4Error {
    /// The Authorization header or X-Amz-Date is missing or malformed.
    Incomplete(String),
    /// The signature does not match the request.
    Mismatch,
    /// The request is dated too far from now.
    Expired,
    /// The credential scope names another date, region or service than this request's and
    /// this endpoint's (AWS's `SignatureDoesNotMatch`, with its message).
    Scope(String),
}

impl fmt::Display for SigV4Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigV4Error::Incomplete(what) => write!(f, "incomplete signature: {what}"),
            SigV4Error::Mismatch => write!(
                f,
                "the request signature we calculated does not match the signature you provided"
            ),
            SigV4Error::Expired => write!(f, "the request's X-Amz-Date is too far from now"),
            SigV4Error::Scope(what) => f.write_str(what),
        }
    }
}

/// A parsed `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub access_key: String,
    /// `yyyymmdd`, the scope's date.
    pub date: String,
    pub region: String,
    pub service: String,
    /// Lowercase header names, as signed (sorted, `;`-separated in the header).
    pub signed_headers: Vec<String>,
    /// 64 lowercase hex digits.
    pub signature: String,
}

/// An HTTP request as it arrived: what a signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path, as sent (still percent-encoded).
    pub path: &'a str,
    /// The query string without `?`, as sent.
    pub query: &'a str,
    /// Every header, names in any case.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl Request<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    }
}

/// Parses the Authorization header's value.
pub fn parse_authorization(value: &str) -> Result<Authorization, SigV4Error> {
    let incomplete = |what: &str| SigV4Error::Incomplete(what.to_string());
    let rest = value.strip_prefix(ALGORITHM).ok_or_else(|| {
        incomplete("the Authorization header does not start with AWS4-HMAC-SHA256")
    })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(incomplete("an Authorization part without '='"));
        };
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => return Err(incomplete("an unknown Authorization part")),
        }
    }
    let credential = credential.ok_or_else(|| incomplete("no Credential"))?;
    let signed = signed.ok_or_else(|| incomplete("no SignedHeaders"))?;
    let signature = signature.ok_or_else(|| incomplete("no Signature"))?;
    let scope: Vec<&str> = credential.splitn(6, '/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(incomplete(
            "Credential is not key/date/region/service/aws4_request",
        ));
    };
    if terminator != "aws4_request" || date.len() != 8 || access_key.is_empty() {
        return Err(incomplete("a malformed credential scope"));
    }
    let signed_headers: Vec<String> = signed.split(';').map(str::to_string).collect();
    if signed_headers.len() > SIGNED_HEADERS_MAX
        || signed_headers.iter().any(|name| name.is_empty())
        || !signed_headers.iter().any(|name| name == "host")
    {
        return Err(incomplete(
            "SignedHeaders must name host and at most 64 headers",
        ));
    }
    if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(incomplete("Signature is not 64 hex digits"));
    }
    Ok(Authorization {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
    })
}

/// Checks that `authorization`'s credential scope is this endpoint's: a signature for another
/// region or service (valid there) must not be accepted here, as AWS refuses it.
pub fn check_scope(
    authorization: &Authorization,
    region: &str,
    service: &str,
) -> Result<(), SigV4Error> {
    if authorization.service != service {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if authorization.region != region {
        return Err(SigV4Error::Scope(format!(
            "Credential should be scoped to a valid region, not '{}'.",
            authorization.region.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Checks `request`'s signature by `authorization` against `secret` at `now`.
pub fn verify(
    request: &Request<'_>,
    authorization: &Authorization,
    secret: &str,
    now: SystemTime,
) -> Result<(), SigV4Error> {
    let timestamp = request
        .header("x-amz-date")
        .ok_or_else(|| SigV4Error::Incomplete("no X-Amz-Date header".into()))?;
    let signed_at = parse_amz_date(timestamp)
        .ok_or_else(|| SigV4Error::Incomplete("X-Amz-Date is not yyyymmddThhmmssZ".into()))?;
    let day = timestamp.get(..8).unwrap_or_default();
    if day != authorization.date {
        return Err(SigV4Error::Scope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date \
             from HTTP: '{}' != '{day}', from 'x-amz-date'.",
            authorization.date
        )));
    }
    let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    if now_s.abs_diff(signed_at) > CLOCK_SKEW_MAX.as_secs() {
        return Err(SigV4Error::Expired);
    }
    let expected = signature(request, authorization, secret, timestamp)?;
    if crate::auth::same_bytes(expected.as_bytes(), authorization.signature.as_bytes()) {
        Ok(())
    } else {
        Err(SigV4Error::Mismatch)
    }
}

/// The signature `request` should carry (hex).
fn signature(
    request: &Request<'_>,
    authorization: &Authorization,
    secret: &str,
    timestamp: &str,
) -> Result<String, SigV4Error> {
    let canonical = canonical_request(request, &authorization.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        authorization.date, authorization.region, authorization.service
    );
    let to_sign = format!(
        "{ALGORITHM}\n{timestamp}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(
        format!("AWS4{secret}").as_bytes(),
        authorization.date.as_bytes(),
    );
    for part in [
        authorization.region.as_str(),
        authorization.service.as_str(),
        "aws4_request",
    ] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    Ok(hex(&hmac_sha256(&key, to_sign.as_bytes())))
}

fn canonical_request(request: &Request<'_>, signed: &[String]) -> Result<String, SigV4Error> {
    let mut headers = String::new();
    for name in signed {
        let values: Vec<String> = request
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        if values.is_empty() {
            return Err(SigV4Error::Incomplete(format!(
                "signed header {name:?} is not in the request"
            )));
        }
        headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    // The hash of the body received, never the one the client claims: a claimed hash (an
    // unsigned header) naming the signed body would let the body be swapped. A claim that is
    // not this body's hash (UNSIGNED-PAYLOAD included) is refused.
    let payload = hex(digest::digest(&digest::SHA256, request.body).as_ref());
    if let Some(claimed) = request.header("x-amz-content-sha256")
        && !claimed.eq_ignore_ascii_case(&payload)
    {
        return Err(SigV4Error::Mismatch);
    }
    let path = if request.path.is_empty() {
        "/".to_string()
    } else {
        encode(request.path, false)
    };
    Ok(format!(
        "{}\n{path}\n{}\n{headers}\n{}\n{payload}",
        request.method,
        canonical_query(request.query),
        signed.join(";"),
    ))
}

/// The query's parameters decoded, encoded again as SigV4 says, sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(name), true), encode(&decode(value), true))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes all but RFC 3986's unreserved characters (and `/` in a path). The path is
/// encoded as sent, so an encoded path is encoded twice, as SigV4 does for every service but S3.
fn encode(text: &str, slash_too: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte);
        if unreserved || (byte == b'/' && !slash_too) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Percent-decoding (`+` stays `+`, as SigV4's query encoding takes it); a bad escape is kept
/// as it is.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = bytes.get(index + 1..index + 3).and_then(|hex| {
            std::str::from_utf8(hex)
                .ok()
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        });
        match (bytes[index], escaped) {
            (b'%', Some(byte)) => {
                out.push(byte);
                index += 3;
            }
            (byte, _) => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Seconds since the epoch of `yyyymmddThhmmssZ`.
fn parse_amz_date(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    if bytes.len() != 16 || bytes[8] != b'T' || bytes[15] != b'Z' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u64> {
        std::str::from_utf8(bytes.get(range)?).ok()?.parse().ok()
    };
    let (year, month, day) = (number(0..4)?, number(4..6)?, number(6..8)?);
    let (hour, minute, second) = (number(9..11)?, number(11..13)?, number(13..15)?);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days from 1970-01-01 to the date (Howard Hinnant's algorithm), for years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    hmac::sign(&key, data).as_ref().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests;
