//! Authentication mechanisms, independent of any protocol or of where credentials are kept:
//! SCRAM (`scram.rs`) and PLAIN's message format. The protocol adapters run the exchanges; the
//! broker keeps the credentials (`broker::users`).

pub mod scram;

/// Equality that takes as long whatever bytes differ: a proof or token check must not tell an
/// attacker how much of a guess was right.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .fold(0u8, |difference, (x, y)| difference | (x ^ y))
            == 0
}

/// SASL/PLAIN's one message (RFC 4616): authorization id, user, password, separated by NUL.
/// An authorization id other than the user's own is refused (no impersonation).
pub fn parse_plain(message: &[u8]) -> Option<(String, Vec<u8>)> {
    if message.len() > 4096 {
        return None;
    }
    let mut parts = message.split(|byte| *byte == 0);
    let (authorization, user, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    let user = std::str::from_utf8(user).ok()?.to_string();
    if !authorization.is_empty() && authorization != user.as_bytes() {
        return None;
    }
    Some((user, password.to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_messages_parse_and_impersonation_is_refused() {
        assert_eq!(
            super::parse_plain(b"\0alice\0secret"),
            Some(("alice".into(), b"secret".to_vec()))
        );
        assert!(super::parse_plain(b"alice\0alice\0secret").is_some());
        assert_eq!(super::parse_plain(b"bob\0alice\0secret"), None);
        assert_eq!(super::parse_plain(b"\0\0secret"), None);
        assert_eq!(super::parse_plain(b"\0alice"), None);
        assert_eq!(super::parse_plain(b"\0a\0b\0c"), None);
    }
}
