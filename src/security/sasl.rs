//! One connection's SASL authentication on a SASL listener (KIP-43 SaslHandshake, KIP-152
//! SaslAuthenticate, KIP-368 re-authentication), as a state machine the listener drives:
//! [`Authenticator::handshake`] picks a mechanism, [`Authenticator::step`] takes each
//! SaslAuthenticate's bytes and answers with the bytes to send back, until the exchange ends
//! in a user or an error. The listener decides what the connection may do meanwhile.
//!
//! Sans-IO: the SCRAM credentials and the server's nonce come in from the caller.

use super::plain;
use super::scram::{Credential, Mechanism, ScramServer};
use std::collections::BTreeMap;

/// The mechanisms ketch implements.
pub const MECHANISMS: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// A SASL listener's server side.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SaslServerConfig {
    /// `sasl.enabled.mechanisms`, in order.
    pub mechanisms: Vec<String>,
    /// PLAIN's users (`user_<name>` in the listener's JAAS configuration for PLAIN).
    pub plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms`: a session lasts this long (0: for ever); the client must
    /// authenticate again on the same connection before it ends.
    pub reauth_ms: u64,
}

/// What a step of the exchange gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes; more are expected.
    Continue(Vec<u8>),
    /// The client is `user`; send these bytes (the last of the exchange).
    Done { user: String, bytes: Vec<u8> },
}

#[derive(Debug, Default)]
pub enum Authenticator {
    /// No mechanism chosen (SaslHandshake comes first).
    #[default]
    Idle,
    Plain,
    Scram(ScramServer),
}

impl Authenticator {
    /// SaslHandshake: `Err` with the enabled mechanisms if `mechanism` is not one of them.
    pub fn handshake(
        &mut self,
        mechanism: &str,
        config: &SaslServerConfig,
    ) -> Result<(), Vec<String>> {
        if !config.mechanisms.iter().any(|m| m == mechanism) {
            *self = Authenticator::Idle;
            return Err(config.mechanisms.clone());
        }
        *self = match mechanism {
            "PLAIN" => Authenticator::Plain,
            other => match Mechanism::from_name(other) {
                Some(m) => Authenticator::Scram(ScramServer::new(m)),
                None => return Err(config.mechanisms.clone()),
            },
        };
        Ok(())
    }

    /// Whether a mechanism was chosen and its exchange has not ended.
    pub fn in_exchange(&self) -> bool {
        !matches!(
            self,
            Authenticator::Idle | Authenticator::Scram(ScramServer::Done)
        )
    }

    /// One SaslAuthenticate's bytes. `Err` ends the exchange (the connection closes).
    pub fn step(
        &mut self,
        bytes: &[u8],
        config: &SaslServerConfig,
        credential_of: impl FnOnce(&str, Mechanism) -> Option<Credential>,
        server_nonce: &str,
    ) -> Result<Step, String> {
        match std::mem::take(self) {
            Authenticator::Idle => Err("SaslAuthenticate before SaslHandshake".into()),
            Authenticator::Plain => plain::authenticate(bytes, &config.plain_users)
                .map(|user| Step::Done {
                    user,
                    bytes: Vec::new(),
                })
                .map_err(|e| e.to_string()),
            Authenticator::Scram(mut server) => match &server {
                ScramServer::Start { mechanism } => {
                    let mechanism = *mechanism;
                    let out = server
                        .first(bytes, |user| credential_of(user, mechanism), server_nonce)
                        .map_err(|e| e.to_string())?;
                    *self = Authenticator::Scram(server);
                    Ok(Step::Continue(out))
                }
                ScramServer::Challenged { .. } => {
                    let (user, out) = server.last(bytes).map_err(|e| e.to_string())?;
                    Ok(Step::Done { user, bytes: out })
                }
                ScramServer::Done => Err("the SCRAM exchange is over".into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::ScramClient;

    fn config() -> SaslServerConfig {
        SaslServerConfig {
            mechanisms: vec!["PLAIN".into(), "SCRAM-SHA-512".into()],
            plain_users: BTreeMap::from([("alice".into(), "pw".into())]),
            reauth_ms: 0,
        }
    }

    #[test]
    fn plain_and_scram_through_the_state_machine() {
        let c = config();
        let mut a = Authenticator::default();
        assert_eq!(
            a.handshake("SCRAM-SHA-256", &c),
            Err(vec!["PLAIN".to_string(), "SCRAM-SHA-512".to_string()])
        );
        assert!(a.step(b"\0alice\0pw", &c, |_, _| None, "n").is_err());
        a.handshake("PLAIN", &c).unwrap();
        assert_eq!(
            a.step(b"\0alice\0pw", &c, |_, _| None, "n"),
            Ok(Step::Done {
                user: "alice".into(),
                bytes: vec![]
            })
        );
        assert!(!a.in_exchange());

        let credential =
            Credential::from_password(Mechanism::Sha512, "secret", b"salt".to_vec(), 4096);
        let lookup = |u: &str, m: Mechanism| {
            (u == "bob" && m == Mechanism::Sha512).then(|| credential.clone())
        };
        a.handshake("SCRAM-SHA-512", &c).unwrap();
        let mut client = ScramClient::new(Mechanism::Sha512, "bob", "secret", "cn");
        let Ok(Step::Continue(first)) = a.step(&client.first(), &c, lookup, "sn") else {
            panic!("no server-first");
        };
        assert!(a.in_exchange());
        let last = client.last(&first).unwrap();
        let Ok(Step::Done { user, bytes }) = a.step(&last, &c, lookup, "sn") else {
            panic!("no server-final");
        };
        assert_eq!(user, "bob");
        client.verify(&bytes).unwrap();
        // A wrong password fails at the last step.
        a.handshake("SCRAM-SHA-512", &c).unwrap();
        let mut client = ScramClient::new(Mechanism::Sha512, "bob", "guess", "cn");
        let Ok(Step::Continue(first)) = a.step(&client.first(), &c, lookup, "sn") else {
            panic!("no server-first");
        };
        let last = client.last(&first).unwrap();
        assert!(a.step(&last, &c, lookup, "sn").is_err());
    }
}
