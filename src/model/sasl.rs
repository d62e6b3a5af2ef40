//! A SASL listener's settings as Kafka's keys give them: `sasl.enabled.mechanisms` (PLAIN,
//! SCRAM-SHA-256, SCRAM-SHA-512; Kafka's default, GSSAPI, and OAUTHBEARER are not
//! implemented and refused), each mechanism's JAAS configuration
//! (`listener.name.<l>.<mechanism>.sasl.jaas.config`, or `sasl.jaas.config`), and the
//! mechanism this node uses as a client of the listener (`sasl.mechanism.inter.broker.protocol`
//! for the inter-broker listener, `sasl.mechanism.controller.protocol` for the controller's).
//! Listener-specific keys (`listener.name.<l>.` + key) win over plain ones.
//!
//! Parsing only; the JAAS strings are kept as text (`security::jaas` reads them).

use super::properties::Properties;
use std::collections::BTreeMap;

/// The mechanisms ketch implements.
pub const IMPLEMENTED: [&str; 3] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaslSettings {
    pub listener: String,
    /// `sasl.enabled.mechanisms`, in order.
    pub mechanisms: Vec<String>,
    /// Each enabled mechanism's JAAS configuration text, where one is given.
    pub jaas: BTreeMap<String, String>,
    /// The mechanism this node authenticates with when it connects to this listener on other
    /// nodes (inter-broker or controller listener), if it does.
    pub client_mechanism: Option<String>,
}

/// The SASL keys ketch reads, bare (`listener.name.<l>.` and, for the JAAS one,
/// `listener.name.<l>.<mechanism>.` may precede them).
pub const SASL_KEYS: &[&str] = &[
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.mechanism.controller.protocol",
    "connections.max.reauth.ms",
];

pub fn is_sasl_key(key: &str) -> bool {
    if SASL_KEYS.contains(&key) {
        return true;
    }
    let Some(rest) = key.strip_prefix("listener.name.") else {
        return false;
    };
    rest.ends_with(".sasl.jaas.config") || rest.ends_with(".sasl.enabled.mechanisms")
}

/// The settings of SASL listener `listener`; `client_key` is the key naming the mechanism
/// this node uses as its client (`sasl.mechanism.inter.broker.protocol` or
/// `sasl.mechanism.controller.protocol`), if it is one.
pub fn parse_sasl(
    props: &Properties,
    listener: &str,
    client_key: Option<&str>,
) -> Result<SaslSettings, (String, String)> {
    let lower = listener.to_ascii_lowercase();
    let prefix = format!("listener.name.{lower}.");
    let get = |key: &str| -> Option<(String, String)> {
        let specific = format!("{prefix}{key}");
        props
            .get(&specific)
            .map(|v| (specific.clone(), v.trim().to_string()))
            .or_else(|| {
                props
                    .get(key)
                    .map(|v| (key.to_string(), v.trim().to_string()))
            })
            .filter(|(_, v)| !v.is_empty())
    };
    let Some((key, list)) = get("sasl.enabled.mechanisms") else {
        return Err((
            format!("{prefix}sasl.enabled.mechanisms"),
            format!(
                "SASL listener '{listener}' needs its mechanisms (Kafka's default, GSSAPI, is \
                 not implemented): some of {}",
                IMPLEMENTED.join(", ")
            ),
        ));
    };
    let mut mechanisms = Vec::new();
    for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let m = m.to_ascii_uppercase();
        if !IMPLEMENTED.contains(&m.as_str()) {
            return Err((
                key.clone(),
                format!(
                    "mechanism {m} is not implemented (only {})",
                    IMPLEMENTED.join(", ")
                ),
            ));
        }
        if !mechanisms.contains(&m) {
            mechanisms.push(m);
        }
    }
    if mechanisms.is_empty() {
        return Err((key, "no mechanism given".into()));
    }
    let mut jaas = BTreeMap::new();
    for m in &mechanisms {
        let specific = format!("{prefix}{}.sasl.jaas.config", m.to_ascii_lowercase());
        if let Some(text) = props
            .get(&specific)
            .or_else(|| props.get(&format!("{prefix}sasl.jaas.config")))
            .or_else(|| props.get("sasl.jaas.config"))
        {
            jaas.insert(m.clone(), text.trim().to_string());
        }
    }
    if mechanisms.iter().any(|m| m == "PLAIN") && !jaas.contains_key("PLAIN") {
        return Err((
            format!("{prefix}plain.sasl.jaas.config"),
            "PLAIN needs a JAAS configuration with its users: \
             org.apache.kafka.common.security.plain.PlainLoginModule required \
             user_<name>=\"<password>\" …;"
                .into(),
        ));
    }
    let client_mechanism = match client_key {
        None => None,
        Some(k) => {
            let m = props
                .get(k)
                .map(|v| v.trim().to_ascii_uppercase())
                .ok_or_else(|| {
                    (
                        k.to_string(),
                        format!(
                            "this node connects to SASL listener '{listener}' and must say with \
                             which mechanism (Kafka's default, GSSAPI, is not implemented)"
                        ),
                    )
                })?;
            if !mechanisms.contains(&m) {
                return Err((
                    k.to_string(),
                    format!("{m} is not enabled on listener '{listener}'"),
                ));
            }
            if !jaas.contains_key(&m) {
                return Err((
                    format!("{prefix}{}.sasl.jaas.config", m.to_ascii_lowercase()),
                    "the JAAS configuration must give this node's username and password".into(),
                ));
            }
            Some(m)
        }
    };
    Ok(SaslSettings {
        listener: listener.to_string(),
        mechanisms,
        jaas,
        client_mechanism,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_keys_and_what_is_refused() {
        let p = Properties::parse(
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN\n\
             listener.name.sasl_ssl.plain.sasl.jaas.config=PlainModule required user_a=\"b\";\n\
             sasl.jaas.config=ScramModule required username=\"admin\" password=\"pw\";\n\
             sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512\n",
        )
        .unwrap();
        let s = parse_sasl(&p, "SASL_SSL", Some("sasl.mechanism.inter.broker.protocol")).unwrap();
        assert_eq!(s.mechanisms, ["SCRAM-SHA-512", "PLAIN"]);
        assert!(s.jaas["PLAIN"].starts_with("PlainModule"));
        assert!(s.jaas["SCRAM-SHA-512"].starts_with("ScramModule"));
        assert_eq!(s.client_mechanism.as_deref(), Some("SCRAM-SHA-512"));
        let refused = |text: &str, client: Option<&str>| {
            parse_sasl(&Properties::parse(text).unwrap(), "SASL_PLAINTEXT", client)
                .unwrap_err()
                .0
        };
        assert_eq!(
            refused("", None),
            "listener.name.sasl_plaintext.sasl.enabled.mechanisms"
        );
        assert_eq!(
            refused("sasl.enabled.mechanisms=GSSAPI\n", None),
            "sasl.enabled.mechanisms"
        );
        assert_eq!(
            refused("sasl.enabled.mechanisms=PLAIN\n", None),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config"
        );
        assert_eq!(
            refused(
                "sasl.enabled.mechanisms=SCRAM-SHA-256\n",
                Some("sasl.mechanism.controller.protocol")
            ),
            "sasl.mechanism.controller.protocol"
        );
        assert!(is_sasl_key(
            "listener.name.x.scram-sha-256.sasl.jaas.config"
        ));
        assert!(is_sasl_key("connections.max.reauth.ms"));
    }
}
