//! A listener's TLS settings as Kafka's `ssl.*` keys give them, PEM only
//! (`ssl.keystore.type=PEM`, KIP-651): the keystore (this node's certificate chain and private
//! key, from `ssl.keystore.location` or inline `ssl.keystore.certificate.chain` +
//! `ssl.keystore.key`), the truststore (CA certificates, `ssl.truststore.location` or inline
//! `ssl.truststore.certificates`), `ssl.client.auth`, `ssl.endpoint.identification.algorithm`
//! and `ssl.enabled.protocols`. Each key may be given for one listener as
//! `listener.name.<listener, lower case>.<key>`, which wins over the plain key.
//!
//! The same settings serve both ends: a listener's server side, and this node's connections
//! to that listener on other nodes (inter-broker and controller traffic), as in Kafka.
//!
//! Parsing only: reading the files and building TLS configurations is `runtime::tls`'s. What
//! ketch does not implement (JKS and PKCS12 stores, encrypted keys, principal mapping rules,
//! other protocols) is refused with the key's name, never ignored.

use super::properties::Properties;

/// Where PEM text comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PemSource {
    /// A file, read at start and again whenever it changes (certificate rotation).
    File(std::path::PathBuf),
    /// The PEM text itself, given in the configuration.
    Inline(String),
}

/// `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// A client may present a certificate; if it does, it must be trusted.
    Requested,
    Required,
}

/// One listener's TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The listener they are for.
    pub listener: String,
    /// This node's certificate chain and key: one PEM source holding both (a keystore file),
    /// or the chain and the key apart (inline keys).
    pub keystore: Option<(PemSource, PemSource)>,
    /// The certificates peers' chains must lead to; without one, no client certificate can be
    /// checked and this node trusts no server it connects to.
    pub truststore: Option<PemSource>,
    pub client_auth: ClientAuth,
    /// `ssl.endpoint.identification.algorithm=https` (the default): a server's certificate must
    /// name the host connected to. Empty turns the check off.
    pub verify_hostname: bool,
    /// TLS 1.2 allowed (TLS 1.3 always is).
    pub tls12: bool,
}

/// The `ssl.*` keys ketch reads (bare; `listener.name.<l>.` may precede each).
pub const SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.certificates",
    "ssl.truststore.password",
    "ssl.client.auth",
    "ssl.endpoint.identification.algorithm",
    "ssl.enabled.protocols",
    "ssl.protocol",
    "ssl.principal.mapping.rules",
];

/// Whether `key` is one of [`SSL_KEYS`], bare or for one listener.
pub fn is_ssl_key(key: &str) -> bool {
    let bare = key
        .strip_prefix("listener.name.")
        .and_then(|rest| rest.split_once('.').map(|(_, k)| k))
        .unwrap_or(key);
    SSL_KEYS.contains(&bare)
}

/// Why a listener's TLS settings cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsConfigError {
    pub key: String,
    pub reason: String,
}

fn err(key: String, reason: impl Into<String>) -> TlsConfigError {
    TlsConfigError {
        key,
        reason: reason.into(),
    }
}

/// The TLS settings of `listener` (a listener whose protocol is SSL).
pub fn parse_tls(props: &Properties, listener: &str) -> Result<TlsSettings, TlsConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    // The key as given (listener-specific first) and its trimmed value.
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
    for store in ["ssl.keystore.type", "ssl.truststore.type"] {
        if let Some((k, v)) = get(store) {
            if !v.eq_ignore_ascii_case("PEM") {
                return Err(err(
                    k,
                    format!("store type {v} is not implemented: only PEM (convert with openssl or keytool)"),
                ));
            }
        }
    }
    for secret in ["ssl.key.password", "ssl.keystore.password"] {
        if let Some((k, _)) = get(secret) {
            return Err(err(
                k,
                "encrypted private keys are not implemented: give an unencrypted PKCS#8 key \
                 (readable by this node's user only)",
            ));
        }
    }
    if let Some((k, v)) = get("ssl.principal.mapping.rules") {
        if v != "DEFAULT" {
            return Err(err(
                k,
                "only DEFAULT is implemented (the principal is the certificate's subject)",
            ));
        }
    }
    let keystore = match (
        get("ssl.keystore.location"),
        get("ssl.keystore.certificate.chain"),
        get("ssl.keystore.key"),
    ) {
        (Some(_), Some((k, _)), _) | (Some(_), _, Some((k, _))) => {
            return Err(err(
                k,
                "give either ssl.keystore.location or the inline chain and key, not both",
            ))
        }
        (Some((_, path)), None, None) => Some((
            PemSource::File(path.clone().into()),
            PemSource::File(path.into()),
        )),
        (None, Some((_, chain)), Some((_, key))) => {
            Some((PemSource::Inline(chain), PemSource::Inline(key)))
        }
        (None, Some((k, _)), None) | (None, None, Some((k, _))) => {
            return Err(err(
                k,
                "ssl.keystore.certificate.chain and ssl.keystore.key go together",
            ))
        }
        (None, None, None) => None,
    };
    let truststore = match (
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (Some(_), Some((k, _))) => {
            return Err(err(
                k,
                "give either ssl.truststore.location or ssl.truststore.certificates, not both",
            ))
        }
        (Some((_, path)), None) => Some(PemSource::File(path.into())),
        (None, Some((_, pem))) => Some(PemSource::Inline(pem)),
        (None, None) => None,
    };
    let client_auth = match get("ssl.client.auth") {
        None => ClientAuth::None,
        Some((k, v)) => match v.to_ascii_lowercase().as_str() {
            "none" => ClientAuth::None,
            "requested" => ClientAuth::Requested,
            "required" => ClientAuth::Required,
            _ => return Err(err(k, "one of required, requested, none")),
        },
    };
    if client_auth != ClientAuth::None && truststore.is_none() {
        return Err(err(
            format!("{prefix}ssl.truststore.location"),
            "ssl.client.auth needs a truststore to check client certificates against",
        ));
    }
    // The key given empty turns the check off, as in Kafka: look for it unfiltered.
    let identification = props
        .get(&format!("{prefix}ssl.endpoint.identification.algorithm"))
        .or_else(|| props.get("ssl.endpoint.identification.algorithm"))
        .map(str::trim);
    let verify_hostname = match identification {
        None => true,
        Some(v) if v.eq_ignore_ascii_case("https") => true,
        Some("") => false,
        Some(v) => {
            return Err(err(
                "ssl.endpoint.identification.algorithm".to_string(),
                format!("{v}: only https or empty"),
            ))
        }
    };
    let mut tls12 = true;
    if let Some((k, v)) = get("ssl.enabled.protocols") {
        let list: Vec<String> = v
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        if list.is_empty() || list.iter().any(|p| p != "TLSv1.2" && p != "TLSv1.3") {
            return Err(err(
                k,
                "a list of TLSv1.2 and TLSv1.3 (older ones are not offered)",
            ));
        }
        if !list.iter().any(|p| p == "TLSv1.3") {
            return Err(err(k, "TLSv1.3 cannot be turned off"));
        }
        tls12 = list.iter().any(|p| p == "TLSv1.2");
    }
    Ok(TlsSettings {
        listener: listener.to_string(),
        keystore,
        truststore,
        client_auth,
        verify_hostname,
        tls12,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(text: &str) -> Properties {
        Properties::parse(text).unwrap()
    }

    #[test]
    fn listener_keys_win_and_pem_files_or_inline_text_are_read() {
        let p = props(
            "ssl.keystore.location=/etc/k.pem\n\
             listener.name.internal.ssl.keystore.location=/etc/internal.pem\n\
             ssl.truststore.location=/etc/ca.pem\n\
             ssl.client.auth=required\n",
        );
        let t = parse_tls(&p, "INTERNAL").unwrap();
        assert_eq!(
            t.keystore,
            Some((
                PemSource::File("/etc/internal.pem".into()),
                PemSource::File("/etc/internal.pem".into())
            ))
        );
        assert_eq!(t.client_auth, ClientAuth::Required);
        assert!(t.verify_hostname && t.tls12);
        let t = parse_tls(&p, "SSL").unwrap();
        assert_eq!(
            t.keystore.map(|k| k.0),
            Some(PemSource::File("/etc/k.pem".into()))
        );
        let inline = props(
            "ssl.keystore.certificate.chain=-----BEGIN CERTIFICATE-----\n\
             ssl.keystore.key=-----BEGIN PRIVATE KEY-----\n\
             ssl.endpoint.identification.algorithm=\n\
             ssl.enabled.protocols=TLSv1.3\n",
        );
        let t = parse_tls(&inline, "SSL").unwrap();
        assert!(matches!(
            t.keystore,
            Some((PemSource::Inline(_), PemSource::Inline(_)))
        ));
        assert!(!t.verify_hostname && !t.tls12);
    }

    #[test]
    fn what_is_not_implemented_is_refused_by_key() {
        let refused = |text: &str| parse_tls(&props(text), "SSL").unwrap_err().key;
        assert_eq!(refused("ssl.keystore.type=JKS\n"), "ssl.keystore.type");
        assert_eq!(
            refused("listener.name.ssl.ssl.key.password=x\n"),
            "listener.name.ssl.ssl.key.password"
        );
        assert_eq!(
            refused("ssl.principal.mapping.rules=RULE:^CN=(.*)$/$1/\n"),
            "ssl.principal.mapping.rules"
        );
        assert_eq!(
            refused("ssl.enabled.protocols=TLSv1.1\n"),
            "ssl.enabled.protocols"
        );
        assert_eq!(refused("ssl.client.auth=maybe\n"), "ssl.client.auth");
        assert_eq!(
            refused("ssl.client.auth=required\n"),
            "listener.name.ssl.ssl.truststore.location"
        );
        assert_eq!(
            refused("ssl.keystore.key=x\n"),
            "ssl.keystore.key",
            "a key without its chain"
        );
        assert!(is_ssl_key("listener.name.internal.ssl.keystore.location"));
        assert!(is_ssl_key("ssl.client.auth"));
        assert!(!is_ssl_key(
            "listener.name.internal.sasl.enabled.mechanisms"
        ));
    }
}
