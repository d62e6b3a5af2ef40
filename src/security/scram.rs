//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677) as Kafka speaks them (KIP-84): the
//! messages, the server's and the client's side of the exchange, and the stored credential
//! (salt, StoredKey, ServerKey, iterations: never the password) that
//! `UserScramCredentialRecord`s carry in the metadata log.
//!
//! Sans-IO: nonces come in from the caller. Every parser takes untrusted bytes and answers
//! `Err` for anything it does not expect; nothing here panics on input.

use ring::{digest, hmac, pbkdf2};
use std::num::NonZeroU32;

/// The two SCRAM mechanisms, with Kafka's ids (`ScramMechanism`: 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mechanism {
    Sha256,
    Sha512,
}

/// Kafka's bounds on a credential's iterations (`ScramMechanism.minIterations`, and the
/// upper bound AlterUserScramCredentials enforces).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

impl Mechanism {
    pub fn from_name(name: &str) -> Option<Mechanism> {
        match name {
            "SCRAM-SHA-256" => Some(Mechanism::Sha256),
            "SCRAM-SHA-512" => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Sha256 => "SCRAM-SHA-256",
            Mechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    pub fn id(self) -> i8 {
        match self {
            Mechanism::Sha256 => 1,
            Mechanism::Sha512 => 2,
        }
    }

    pub fn from_id(id: i8) -> Option<Mechanism> {
        match id {
            1 => Some(Mechanism::Sha256),
            2 => Some(Mechanism::Sha512),
            _ => None,
        }
    }

    fn hmac_algorithm(self) -> hmac::Algorithm {
        match self {
            Mechanism::Sha256 => hmac::HMAC_SHA256,
            Mechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn digest_algorithm(self) -> &'static digest::Algorithm {
        match self {
            Mechanism::Sha256 => &digest::SHA256,
            Mechanism::Sha512 => &digest::SHA512,
        }
    }

    fn pbkdf2_algorithm(self) -> pbkdf2::Algorithm {
        match self {
            Mechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Mechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac_algorithm(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest_algorithm(), data)
            .as_ref()
            .to_vec()
    }

    /// `Hi(password, salt, i)`: PBKDF2 with this mechanism's HMAC.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0u8; self.digest_algorithm().output_len()];
        let iterations = NonZeroU32::new(iterations).unwrap_or(NonZeroU32::MIN);
        pbkdf2::derive(
            self.pbkdf2_algorithm(),
            iterations,
            salt,
            password,
            &mut out,
        );
        out
    }
}

/// A stored credential: what the server keeps of a password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

impl Credential {
    /// The credential for a salted password (what AlterUserScramCredentials sends).
    pub fn from_salted_password(
        mechanism: Mechanism,
        salted_password: &[u8],
        salt: Vec<u8>,
        iterations: i32,
    ) -> Credential {
        let client_key = mechanism.hmac(salted_password, b"Client Key");
        Credential {
            salt,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }

    /// The credential for a password (`ketch storage format --add-scram`).
    pub fn from_password(
        mechanism: Mechanism,
        password: &str,
        salt: Vec<u8>,
        iterations: i32,
    ) -> Credential {
        let salted = mechanism.salted_password(
            password.as_bytes(),
            &salt,
            u32::try_from(iterations).unwrap_or(1),
        );
        Credential::from_salted_password(mechanism, &salted, salt, iterations)
    }
}

/// Why an exchange failed: what the server tells the client (Kafka's
/// SASL_AUTHENTICATION_FAILED message) and logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("malformed SCRAM message: {0}")]
    Malformed(String),
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("{0}")]
    Unsupported(String),
}

fn malformed(what: impl Into<String>) -> ScramError {
    ScramError::Malformed(what.into())
}

/// `saslname` decoding (RFC 5802 5.1): `=2C` is ',' and `=3D` is '='; any other '=' is an error.
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(malformed("a user name with a bad '=' escape")),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

fn encode_saslname(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// The client's first message: `gs2-header client-first-bare`, e.g. `n,,n=alice,r=abc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFirst {
    pub user: String,
    pub nonce: String,
    /// `n=…,r=…[,extensions]`, which the AuthMessage quotes.
    pub bare: String,
}

impl ClientFirst {
    pub fn parse(bytes: &[u8]) -> Result<ClientFirst, ScramError> {
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        // gs2-header: no channel binding ("n" or "y"), then an optional authzid.
        let (cbind, rest) = text
            .split_once(',')
            .ok_or_else(|| malformed("no gs2 header"))?;
        match cbind {
            "n" | "y" => {}
            p if p.starts_with("p=") => {
                return Err(ScramError::Unsupported(
                    "channel binding is not supported".into(),
                ))
            }
            _ => return Err(malformed("bad gs2 channel binding flag")),
        }
        let (authzid, bare) = rest
            .split_once(',')
            .ok_or_else(|| malformed("no gs2 header"))?;
        let mut user = None;
        let mut nonce = None;
        for (i, attribute) in bare.split(',').enumerate() {
            match (i, attribute.split_once('=')) {
                (0, Some(("n", v))) => user = Some(decode_saslname(v)?),
                (1, Some(("r", v))) if !v.is_empty() => nonce = Some(v.to_string()),
                (0 | 1, _) => return Err(malformed("expected n=…,r=…")),
                // Extensions (Kafka's tokenauth among them): only tokenauth is meaningful, and
                // delegation tokens are not implemented.
                (_, Some(("tokenauth", v))) if v.eq_ignore_ascii_case("true") => {
                    return Err(ScramError::Unsupported(
                        "delegation tokens are not supported".into(),
                    ))
                }
                (_, Some(_)) => {}
                (_, None) => return Err(malformed("an attribute without '='")),
            }
        }
        let (Some(user), Some(nonce)) = (user, nonce) else {
            return Err(malformed("expected n=…,r=…"));
        };
        if let Some(z) = authzid.strip_prefix("a=") {
            if decode_saslname(z)? != user {
                return Err(ScramError::Unsupported(
                    "an authorization id other than the user".into(),
                ));
            }
        } else if !authzid.is_empty() {
            return Err(malformed("bad authzid"));
        }
        Ok(ClientFirst {
            user,
            nonce,
            bare: bare.to_string(),
        })
    }
}

/// The client's final message: `c=<base64 gs2 header>,r=<nonce>,p=<base64 proof>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientFinal {
    pub channel_binding: String,
    pub nonce: String,
    pub proof: Vec<u8>,
    /// Everything before `,p=`, which the AuthMessage quotes.
    pub without_proof: String,
}

impl ClientFinal {
    pub fn parse(bytes: &[u8]) -> Result<ClientFinal, ScramError> {
        let text = std::str::from_utf8(bytes).map_err(|_| malformed("not UTF-8"))?;
        let cut = text.rfind(",p=").ok_or_else(|| malformed("no proof"))?;
        let (without_proof, proof) = (&text[..cut], &text[cut + 3..]);
        let mut parts = without_proof.splitn(3, ',');
        let c = parts
            .next()
            .and_then(|p| p.strip_prefix("c="))
            .ok_or_else(|| malformed("expected c=…"))?;
        let r = parts
            .next()
            .and_then(|p| p.strip_prefix("r="))
            .ok_or_else(|| malformed("expected r=…"))?;
        let proof = base64_decode(proof).ok_or_else(|| malformed("proof is not base64"))?;
        Ok(ClientFinal {
            channel_binding: c.to_string(),
            nonce: r.to_string(),
            proof,
            without_proof: without_proof.to_string(),
        })
    }
}

/// The server side of one exchange.
#[derive(Debug)]
pub enum ScramServer {
    /// Waiting for client-first.
    Start {
        mechanism: Mechanism,
    },
    /// Sent server-first; waiting for client-final.
    Challenged {
        mechanism: Mechanism,
        user: String,
        credential: Credential,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

impl ScramServer {
    pub fn new(mechanism: Mechanism) -> ScramServer {
        ScramServer::Start { mechanism }
    }

    /// Client-first in, server-first out. `credential_of` looks the user up;
    /// `server_nonce` is fresh randomness (printable, no ',').
    pub fn first(
        &mut self,
        message: &[u8],
        credential_of: impl FnOnce(&str) -> Option<Credential>,
        server_nonce: &str,
    ) -> Result<Vec<u8>, ScramError> {
        let ScramServer::Start { mechanism } = *self else {
            return Err(malformed("client-first out of turn"));
        };
        *self = ScramServer::Done;
        let first = ClientFirst::parse(message)?;
        let credential = credential_of(&first.user).ok_or(ScramError::BadCredentials)?;
        let nonce = format!("{}{server_nonce}", first.nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            base64_encode(&credential.salt),
            credential.iterations
        );
        *self = ScramServer::Challenged {
            mechanism,
            user: first.user,
            credential,
            nonce,
            client_first_bare: first.bare,
            server_first: server_first.clone(),
        };
        Ok(server_first.into_bytes())
    }

    /// Client-final in: the authenticated user and server-final out.
    pub fn last(&mut self, message: &[u8]) -> Result<(String, Vec<u8>), ScramError> {
        let ScramServer::Challenged {
            mechanism,
            user,
            credential,
            nonce,
            client_first_bare,
            server_first,
        } = std::mem::replace(self, ScramServer::Done)
        else {
            return Err(malformed("client-final out of turn"));
        };
        let last = ClientFinal::parse(message)?;
        // Kafka's server accepts a final nonce that ends with its own (`endsWith`): librdkafka
        // sends its client nonce again in front of the one it was given.
        if !last.nonce.ends_with(&nonce) {
            return Err(malformed("the final message's nonce is not the server's"));
        }
        // No channel binding: the gs2 header was "n,," or "y,," (base64 "biws" / "eSws").
        if last.channel_binding != "biws" && last.channel_binding != "eSws" {
            let decoded = base64_decode(&last.channel_binding).unwrap_or_default();
            if !decoded.starts_with(b"n,") && !decoded.starts_with(b"y,") {
                return Err(malformed("unexpected channel binding"));
            }
        }
        let auth_message = format!("{client_first_bare},{server_first},{}", last.without_proof);
        let signature = mechanism.hmac(&credential.stored_key, auth_message.as_bytes());
        if last.proof.len() != signature.len() {
            return Err(ScramError::BadCredentials);
        }
        let client_key: Vec<u8> = last
            .proof
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let stored = mechanism.hash(&client_key);
        if !super::same_secret(&stored, &credential.stored_key) {
            return Err(ScramError::BadCredentials);
        }
        let server_signature = mechanism.hmac(&credential.server_key, auth_message.as_bytes());
        Ok((
            user,
            format!("v={}", base64_encode(&server_signature)).into_bytes(),
        ))
    }
}

/// The client side of one exchange (ketch's own connections to other nodes, and the tools).
#[derive(Debug)]
pub struct ScramClient {
    mechanism: Mechanism,
    password: String,
    nonce: String,
    client_first_bare: String,
    auth_message: Option<String>,
    salted_password: Option<Vec<u8>>,
}

impl ScramClient {
    /// `nonce`: fresh randomness, printable, no ','.
    pub fn new(mechanism: Mechanism, user: &str, password: &str, nonce: &str) -> ScramClient {
        ScramClient {
            mechanism,
            password: password.to_string(),
            nonce: nonce.to_string(),
            client_first_bare: format!("n={},r={nonce}", encode_saslname(user)),
            auth_message: None,
            salted_password: None,
        }
    }

    pub fn first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    /// Server-first in, client-final out.
    pub fn last(&mut self, server_first: &[u8]) -> Result<Vec<u8>, ScramError> {
        let text = std::str::from_utf8(server_first).map_err(|_| malformed("not UTF-8"))?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in text.split(',') {
            match attribute.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = base64_decode(v),
                Some(("i", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(malformed("server-first lacks r, s or i"));
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err(malformed("the server's nonce does not extend ours"));
        }
        if !(MIN_ITERATIONS as u32..=MAX_ITERATIONS as u32 * 16).contains(&iterations) {
            return Err(malformed("iterations out of range"));
        }
        let salted = self
            .mechanism
            .salted_password(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let client_key = self.mechanism.hmac(&salted, b"Client Key");
        let stored_key = self.mechanism.hash(&client_key);
        let signature = self.mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        self.auth_message = Some(auth_message);
        self.salted_password = Some(salted);
        Ok(format!("{without_proof},p={}", base64_encode(&proof)).into_bytes())
    }

    /// Server-final in: whether the server proved it knows the credential.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let text = std::str::from_utf8(server_final).map_err(|_| malformed("not UTF-8"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(ScramError::Unsupported(format!("the server refused: {e}")));
        }
        let v = text
            .strip_prefix("v=")
            .and_then(base64_decode)
            .ok_or_else(|| malformed("server-final lacks v"))?;
        let (Some(auth), Some(salted)) = (&self.auth_message, &self.salted_password) else {
            return Err(malformed("server-final out of turn"));
        };
        let server_key = self.mechanism.hmac(salted, b"Server Key");
        let expected = self.mechanism.hmac(&server_key, auth.as_bytes());
        if super::same_secret(&v, &expected) {
            Ok(())
        } else {
            Err(ScramError::BadCredentials)
        }
    }
}

/// `ketch storage format --add-scram` (Kafka's syntax):
/// `SCRAM-SHA-256=[name=alice,password=alice-secret]`, optionally `iterations=8192` inside
/// the brackets. Returns (mechanism, user, password, iterations).
pub fn parse_add_scram(text: &str) -> Result<(Mechanism, String, String, i32), String> {
    let (mechanism, rest) = text
        .split_once('=')
        .ok_or("expected MECHANISM=[name=…,password=…]")?;
    let mechanism = Mechanism::from_name(mechanism.trim())
        .ok_or(format!("{mechanism}: SCRAM-SHA-256 or SCRAM-SHA-512"))?;
    let inner = rest
        .trim()
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or("the fields go in brackets: [name=…,password=…]")?;
    let (mut name, mut password, mut iterations) = (None, None, MIN_ITERATIONS);
    for field in inner.split(',') {
        let (k, v) = field
            .split_once('=')
            .ok_or(format!("'{field}' is not key=value"))?;
        let v = v.trim().trim_matches('"').to_string();
        match k.trim() {
            "name" => name = Some(v),
            "password" => password = Some(v),
            "iterations" => {
                iterations = v
                    .parse()
                    .ok()
                    .filter(|i| (MIN_ITERATIONS..=MAX_ITERATIONS).contains(i))
                    .ok_or(format!(
                        "iterations {v}: {MIN_ITERATIONS}..={MAX_ITERATIONS}"
                    ))?
            }
            other => {
                return Err(format!(
                    "unknown field '{other}' (name, password, iterations)"
                ))
            }
        }
    }
    match (name, password) {
        (Some(n), Some(p)) if !n.is_empty() && !p.is_empty() => Ok((mechanism, n, p, iterations)),
        _ => Err("name and password are both needed".into()),
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 with padding; `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let value = |c: u8| BASE64.iter().position(|b| *b == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|c| **c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for (j, c) in chunk.iter().enumerate() {
            let v = if j >= 4 - pad { 0 } else { value(*c)? };
            n = (n << 6) | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3's example exchange (SCRAM-SHA-256, user "user", password
    /// "pencil").
    #[test]
    fn the_rfc_7677_example_exchange() {
        let salt = base64_decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let credential = Credential::from_password(Mechanism::Sha256, "pencil", salt, 4096);
        let mut server = ScramServer::new(Mechanism::Sha256);
        let first = server
            .first(
                b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
                |u| (u == "user").then(|| credential.clone()),
                "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let (user, last) = server
            .last(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert_eq!(user, "user");
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn our_client_and_server_agree_and_a_wrong_password_fails() {
        for mechanism in [Mechanism::Sha256, Mechanism::Sha512] {
            let credential =
                Credential::from_password(mechanism, "s3cret", b"salty".to_vec(), 4096);
            let run = |password: &str| -> Result<(), ScramError> {
                let mut client = ScramClient::new(mechanism, "a=b,c", password, "cnonce");
                let mut server = ScramServer::new(mechanism);
                let first = server.first(
                    &client.first(),
                    |u| (u == "a=b,c").then(|| credential.clone()),
                    "snonce",
                )?;
                let last = client.last(&first)?;
                let (user, fin) = server.last(&last)?;
                assert_eq!(user, "a=b,c");
                client.verify(&fin)
            };
            assert_eq!(run("s3cret"), Ok(()));
            assert_eq!(run("guess"), Err(ScramError::BadCredentials));
        }
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut server = ScramServer::new(Mechanism::Sha512);
        assert!(server
            .first(b"p=tls-unique,,n=u,r=x", |_| None, "s")
            .is_err());
        for bad in [
            &b""[..],
            b"n,,",
            b"n,,n=u",
            b"x,,n=u,r=x",
            b"n,,n=u=ZZ,r=x",
            b"n,a=other,n=u,r=x",
            b"\xff,,n=u,r=x",
        ] {
            assert!(ClientFirst::parse(bad).is_err(), "{bad:?}");
        }
        assert!(ClientFinal::parse(b"c=biws,r=x").is_err());
        assert!(ClientFinal::parse(b"c=biws,r=x,p=!!").is_err());
        assert_eq!(
            ClientFirst::parse(b"n,,n=a=2Cb=3D,r=nonce,ext=1")
                .unwrap()
                .user,
            "a,b="
        );
    }

    #[test]
    fn add_scram_takes_kafkas_syntax() {
        assert_eq!(
            parse_add_scram("SCRAM-SHA-512=[name=admin,password=admin-secret]"),
            Ok((
                Mechanism::Sha512,
                "admin".into(),
                "admin-secret".into(),
                4096
            ))
        );
        assert_eq!(
            parse_add_scram("SCRAM-SHA-256=[name=\"a\",password=\"b\",iterations=8192]")
                .map(|r| r.3),
            Ok(8192)
        );
        assert!(parse_add_scram("SCRAM-SHA-1=[name=a,password=b]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[name=a]").is_err());
        assert!(parse_add_scram("SCRAM-SHA-256=[name=a,password=b,iterations=10]").is_err());
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..20 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            assert_eq!(base64_decode(&base64_encode(&bytes)), Some(bytes));
        }
        assert_eq!(base64_encode(b"n,,"), "biws");
        assert_eq!(base64_decode("a"), None);
        assert_eq!(base64_decode("a=bc"), None);
    }
}
