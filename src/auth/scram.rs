//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the password mechanisms Kafka's
//! clients speak, with ring's PBKDF2 and HMAC. The broker keeps only what RFC 5802 says a
//! server keeps (salt, iterations, StoredKey, ServerKey): a stolen credential file does not
//! give the password, nor let its thief log in.
//!
//! `ServerExchange` is the server's side of one authentication: client-first in, server-first
//! out; client-final in, server-final out. Every message is hostile input: parsed with bounds,
//! and any fault ends the exchange with a refusal that does not say which part was wrong.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::{digest, hmac, pbkdf2};

use super::same_bytes;
use std::num::NonZeroU32;

/// Iterations for new credentials: Kafka's minimum for SCRAM-SHA-256 and -512 is 4096.
pub const ITERATIONS_DEFAULT: u32 = 8192;
pub const ITERATIONS_MIN: u32 = 4096;
pub const ITERATIONS_MAX: u32 = 16384;
/// The longest SCRAM message accepted (a name, a nonce, a proof: a few hundred bytes).
const MESSAGE_BYTES_MAX: usize = 4096;
const SALT_BYTES: usize = 32;

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Mechanism {
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::ScramSha256, Mechanism::ScramSha512];

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::ScramSha256 => &digest::SHA256,
            Mechanism::ScramSha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            Mechanism::ScramSha256 => hmac::HMAC_SHA256,
            Mechanism::ScramSha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::ScramSha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::ScramSha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

/// What the broker keeps of a password, for one mechanism.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Credential {
    #[serde(with = "base64_bytes")]
    pub salt: Vec<u8>,
    pub iterations: u32,
    #[serde(with = "base64_bytes")]
    pub stored_key: Vec<u8>,
    #[serde(with = "base64_bytes")]
    pub server_key: Vec<u8>,
}

impl Credential {
    /// A credential for `password` with a fresh random salt.
    pub fn new(mechanism: Mechanism, password: &[u8], iterations: u32) -> Credential {
        let mut salt = vec![0u8; SALT_BYTES];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
            .unwrap_or_else(|_| salt.iter_mut().for_each(|byte| *byte = rand_byte()));
        Credential::with_salt(mechanism, password, salt, iterations)
    }

    /// A credential from a salted password the client already computed (Kafka's
    /// AlterUserScramCredentials sends salt and SaltedPassword, never the password).
    pub fn from_salted(
        mechanism: Mechanism,
        salted: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        let client_key = sign(mechanism, salted, b"Client Key");
        Credential {
            salt,
            iterations,
            stored_key: digest::digest(mechanism.digest(), &client_key)
                .as_ref()
                .to_vec(),
            server_key: sign(mechanism, salted, b"Server Key"),
        }
    }

    fn with_salt(
        mechanism: Mechanism,
        password: &[u8],
        salt: Vec<u8>,
        iterations: u32,
    ) -> Credential {
        let salted = salted_password(mechanism, password, &salt, iterations);
        Credential::from_salted(mechanism, &salted, salt, iterations)
    }

    /// Whether `password` is the one this credential was made from (for SASL/PLAIN).
    pub fn matches(&self, mechanism: Mechanism, password: &[u8]) -> bool {
        let candidate =
            Credential::with_salt(mechanism, password, self.salt.clone(), self.iterations);
        same_bytes(&candidate.stored_key, &self.stored_key)
    }
}

/// Only if the system's random source fails, which ring reports and we must survive: a weaker
/// salt is still a salt.
fn rand_byte() -> u8 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    (nanos ^ (nanos >> 8)) as u8
}

fn salted_password(mechanism: Mechanism, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
    let mut out = vec![0u8; mechanism.digest().output_len()];
    let rounds = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(mechanism.pbkdf2(), rounds, salt, password, &mut out);
    out
}

fn sign(mechanism: Mechanism, key: &[u8], message: &[u8]) -> Vec<u8> {
    let key = hmac::Key::new(mechanism.hmac(), key);
    hmac::sign(&key, message).as_ref().to_vec()
}

/// Why an exchange failed; never sent to the client in detail.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused;

/// The server's side of one SCRAM authentication.
pub struct ServerExchange {
    mechanism: Mechanism,
    state: State,
}

enum State {
    Start,
    /// Sent server-first; waiting for client-final.
    Challenged {
        user: String,
        credential: Option<Credential>,
        client_first_bare: String,
        server_first: String,
        nonce: String,
    },
    Done,
}

impl ServerExchange {
    pub fn new(mechanism: Mechanism) -> ServerExchange {
        ServerExchange {
            mechanism,
            state: State::Start,
        }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The user named in client-first (once it came).
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Challenged { user, .. } => Some(user),
            _ => None,
        }
    }

    /// Reads client-first and answers server-first. `lookup` finds the user's credential; an
    /// unknown user gets a challenge all the same (with a salt derived from its name), so the
    /// answer does not tell who exists.
    pub fn client_first(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<Credential>,
    ) -> Result<Vec<u8>, Refused> {
        if !matches!(self.state, State::Start) || message.len() > MESSAGE_BYTES_MAX {
            return Err(Refused);
        }
        let text = std::str::from_utf8(message).map_err(|_| Refused)?;
        // gs2 header: no channel binding ("n"), no authorization identity beyond the user's.
        let bare = text.strip_prefix("n,,").ok_or(Refused)?;
        let mut user = None;
        let mut client_nonce = None;
        for attribute in bare.split(',') {
            match attribute.split_once('=') {
                Some(("n", value)) => user = Some(unescape_name(value)?),
                Some(("r", value)) if !value.is_empty() => client_nonce = Some(value.to_string()),
                Some(("m", _)) => return Err(Refused),
                _ => {}
            }
        }
        let (user, client_nonce) = (user.ok_or(Refused)?, client_nonce.ok_or(Refused)?);
        let credential = lookup(&user);
        let (salt, iterations) = match &credential {
            Some(credential) => (credential.salt.clone(), credential.iterations),
            None => (
                digest::digest(&digest::SHA256, user.as_bytes())
                    .as_ref()
                    .to_vec(),
                ITERATIONS_DEFAULT,
            ),
        };
        let mut random = [0u8; 18];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let nonce = format!("{client_nonce}{}", STANDARD.encode(random));
        let server_first = format!("r={nonce},s={},i={iterations}", STANDARD.encode(&salt));
        self.state = State::Challenged {
            user,
            credential,
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            nonce,
        };
        Ok(server_first.into_bytes())
    }

    /// Reads client-final, checks the proof, and answers server-final (the server's own
    /// proof). On success the exchange is done and `user` says who authenticated.
    pub fn client_final(&mut self, message: &[u8]) -> Result<(String, Vec<u8>), Refused> {
        let State::Challenged {
            user,
            credential,
            client_first_bare,
            server_first,
            nonce,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(Refused);
        };
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(Refused);
        }
        let text = std::str::from_utf8(message).map_err(|_| Refused)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(Refused)?;
        let mut binding_ok = false;
        let mut nonce_ok = false;
        for attribute in without_proof.split(',') {
            match attribute.split_once('=') {
                // base64("n,,"): no channel binding.
                Some(("c", "biws")) => binding_ok = true,
                Some(("r", value)) => nonce_ok = value == nonce,
                _ => {}
            }
        }
        let proof = STANDARD.decode(proof).map_err(|_| Refused)?;
        let credential = credential.ok_or(Refused)?;
        if !(binding_ok && nonce_ok) {
            return Err(Refused);
        }
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = sign(
            self.mechanism,
            &credential.stored_key,
            auth_message.as_bytes(),
        );
        if proof.len() != client_signature.len() {
            return Err(Refused);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let stored = digest::digest(self.mechanism.digest(), &client_key);
        if !same_bytes(stored.as_ref(), &credential.stored_key) {
            return Err(Refused);
        }
        let server_signature = sign(
            self.mechanism,
            &credential.server_key,
            auth_message.as_bytes(),
        );
        Ok((
            user,
            format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
        ))
    }
}

/// The client's side of one SCRAM authentication (the Rust client's, and the tests').
pub struct ClientExchange {
    mechanism: Mechanism,
    password: Vec<u8>,
    client_first_bare: String,
    nonce: String,
    server_signature: Option<Vec<u8>>,
}

impl ClientExchange {
    /// Starts an exchange for `user`; returns it and client-first.
    pub fn start(mechanism: Mechanism, user: &str, password: &[u8]) -> (ClientExchange, Vec<u8>) {
        let mut random = [0u8; 18];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut random);
        let nonce = STANDARD.encode(random);
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={name},r={nonce}");
        let first = format!("n,,{client_first_bare}").into_bytes();
        let exchange = ClientExchange {
            mechanism,
            password: password.to_vec(),
            client_first_bare,
            nonce,
            server_signature: None,
        };
        (exchange, first)
    }

    /// Reads server-first; returns client-final with the proof.
    pub fn server_first(&mut self, message: &[u8]) -> Result<Vec<u8>, Refused> {
        if message.len() > MESSAGE_BYTES_MAX {
            return Err(Refused);
        }
        let text = std::str::from_utf8(message).map_err(|_| Refused)?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for attribute in text.split(',') {
            match attribute.split_once('=') {
                Some(("r", value)) => nonce = Some(value),
                Some(("s", value)) => salt = STANDARD.decode(value).ok(),
                Some(("i", value)) => iterations = value.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (nonce, salt, iterations) = (
            nonce.ok_or(Refused)?,
            salt.ok_or(Refused)?,
            iterations.ok_or(Refused)?,
        );
        // The server's nonce extends ours; more iterations than a broker asks is an attack on
        // the client's CPU.
        if !nonce.starts_with(&self.nonce)
            || !(ITERATIONS_MIN..=ITERATIONS_MAX).contains(&iterations)
        {
            return Err(Refused);
        }
        let salted = salted_password(self.mechanism, &self.password, &salt, iterations);
        let client_key = sign(self.mechanism, &salted, b"Client Key");
        let stored_key = digest::digest(self.mechanism.digest(), &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = sign(self.mechanism, stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = sign(self.mechanism, &salted, b"Server Key");
        self.server_signature = Some(sign(self.mechanism, &server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", STANDARD.encode(proof)).into_bytes())
    }

    /// Checks server-final: the broker proves it knew the credential too.
    pub fn server_final(&self, message: &[u8]) -> Result<(), Refused> {
        let text = std::str::from_utf8(message).map_err(|_| Refused)?;
        let signature = text.strip_prefix("v=").ok_or(Refused)?;
        let signature = STANDARD.decode(signature).map_err(|_| Refused)?;
        match &self.server_signature {
            Some(expected) if same_bytes(expected, &signature) => Ok(()),
            _ => Err(Refused),
        }
    }
}

/// SCRAM escapes ',' and '=' in names as =2C and =3D; any other '=' is malformed.
fn unescape_name(value: &str) -> Result<String, Refused> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        let code = rest.get(at + 1..at + 3).ok_or(Refused)?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return Err(Refused),
        });
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    if out.is_empty() {
        return Err(Refused);
    }
    Ok(out)
}

mod base64_bytes {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's side, written from RFC 5802, to drive the server in tests.
    fn client_proof(
        mechanism: Mechanism,
        password: &[u8],
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, Vec<u8>) {
        let mut nonce = "";
        let mut salt = Vec::new();
        let mut iterations = 0;
        for attribute in server_first.split(',') {
            match attribute.split_once('=').unwrap() {
                ("r", value) => nonce = value,
                ("s", value) => salt = STANDARD.decode(value).unwrap(),
                ("i", value) => iterations = value.parse().unwrap(),
                _ => {}
            }
        }
        let salted = salted_password(mechanism, password, &salt, iterations);
        let client_key = sign(mechanism, &salted, b"Client Key");
        let stored_key = digest::digest(mechanism.digest(), &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = sign(mechanism, stored_key.as_ref(), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = sign(mechanism, &salted, b"Server Key");
        let expected = sign(mechanism, &server_key, auth_message.as_bytes());
        (
            format!("{without_proof},p={}", STANDARD.encode(proof)),
            expected,
        )
    }

    #[test]
    fn the_right_password_authenticates_and_the_server_proves_itself() {
        for mechanism in Mechanism::ALL {
            let credential = Credential::new(mechanism, b"pencil", ITERATIONS_MIN);
            for (password, accepted) in [(&b"pencil"[..], true), (&b"pen"[..], false)] {
                let mut exchange = ServerExchange::new(mechanism);
                let bare = "n=us=2Cer,r=fyko+d2lbbFgONRv9qkxdawL";
                let first = exchange
                    .client_first(format!("n,,{bare}").as_bytes(), |name| {
                        (name == "us,er").then(|| credential.clone())
                    })
                    .unwrap();
                let first = String::from_utf8(first).unwrap();
                let (last, expected) = client_proof(mechanism, password, bare, &first);
                let outcome = exchange.client_final(last.as_bytes());
                if accepted {
                    let (user, server_final) = outcome.unwrap();
                    assert_eq!(user, "us,er");
                    assert_eq!(
                        server_final,
                        format!("v={}", STANDARD.encode(expected)).into_bytes()
                    );
                } else {
                    assert_eq!(outcome, Err(Refused));
                }
            }
            assert!(credential.matches(mechanism, b"pencil"));
            assert!(!credential.matches(mechanism, b"pencil "));
        }
    }

    #[test]
    fn our_client_and_our_server_agree_and_the_client_checks_the_server() {
        for mechanism in Mechanism::ALL {
            let credential = Credential::new(mechanism, b"pw", ITERATIONS_MIN);
            let (mut client, first) = ClientExchange::start(mechanism, "a,b", b"pw");
            let mut server = ServerExchange::new(mechanism);
            let challenge = server
                .client_first(&first, |name| (name == "a,b").then(|| credential.clone()))
                .unwrap();
            let last = client.server_first(&challenge).unwrap();
            let (user, server_final) = server.client_final(&last).unwrap();
            assert_eq!(user, "a,b");
            client.server_final(&server_final).unwrap();
            assert_eq!(
                client.server_final(b"v=AAAA"),
                Err(Refused),
                "a forged server proof"
            );
        }
    }

    #[test]
    fn an_unknown_user_is_challenged_like_a_known_one_then_refused() {
        let mut exchange = ServerExchange::new(Mechanism::ScramSha256);
        let first = exchange
            .client_first(b"n,,n=ghost,r=abc", |_| None)
            .unwrap();
        let first = String::from_utf8(first).unwrap();
        assert!(first.starts_with("r=abc") && first.contains(",s=") && first.contains(",i="));
        let (last, _) = client_proof(Mechanism::ScramSha256, b"x", "n=ghost,r=abc", &first);
        assert_eq!(exchange.client_final(last.as_bytes()), Err(Refused));
    }

    #[test]
    fn malformed_messages_are_refused_without_panicking() {
        let credential = Credential::new(Mechanism::ScramSha256, b"p", ITERATIONS_MIN);
        let hostile: [&[u8]; 8] = [
            b"",
            b"n,,",
            b"y,,n=a,r=b",
            b"n,,n=a",
            b"n,,n=a=ZZ,r=b",
            b"n,,n=,r=b",
            &[0xff, 0xfe],
            &[b'a'; MESSAGE_BYTES_MAX + 1],
        ];
        for message in hostile {
            let mut exchange = ServerExchange::new(Mechanism::ScramSha256);
            assert_eq!(
                exchange.client_first(message, |_| Some(credential.clone())),
                Err(Refused),
                "{message:?}"
            );
        }
        let mut exchange = ServerExchange::new(Mechanism::ScramSha256);
        exchange
            .client_first(b"n,,n=a,r=b", |_| Some(credential.clone()))
            .unwrap();
        for message in [&b"c=biws"[..], b"c=biws,r=b,p=!!!", b"p=", &[0xc3]] {
            let mut copy = ServerExchange::new(Mechanism::ScramSha256);
            copy.client_first(b"n,,n=a,r=b", |_| Some(credential.clone()))
                .unwrap();
            assert_eq!(copy.client_final(message), Err(Refused));
        }
        // A second client-final after the first is refused too.
        let _ = exchange.client_final(b"c=biws,r=b,p=AAAA");
        assert_eq!(exchange.client_final(b"c=biws,r=b,p=AAAA"), Err(Refused));
    }
}
