//! Who a connection is, sans-IO: the principal a TLS client certificate names
//! ([`x509::subject_name`], Kafka's `User:` + the subject in RFC 2253 form), and SASL:
//! [`plain`], [`scram`] (the mechanisms), [`jaas`] (their configuration) and [`sasl`] (one
//! connection's authentication, as the listener drives it).
//!
//! Depends only on `model`; no IO, clocks or randomness (what needs them is passed in).

pub mod acl;
pub mod jaas;
pub mod plain;
pub mod sasl;
pub mod scram;
pub mod x509;

/// Kafka's principal for a connection that proved nothing (plaintext, or TLS without a client
/// certificate).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// The principal a client certificate names (`ssl.principal.mapping.rules=DEFAULT`): `User:`
/// and the subject's distinguished name as Java's `X500Principal.getName()` writes it; a
/// certificate whose subject cannot be read is ANONYMOUS.
pub fn principal_of_certificate(der: &[u8]) -> String {
    match x509::subject_name(der) {
        Some(name) if !name.is_empty() => format!("User:{name}"),
        _ => ANONYMOUS.to_string(),
    }
}

/// Whether two secrets are equal, taking the same time wherever they differ (their lengths,
/// which are not secret here, aside).
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}
