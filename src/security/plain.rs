//! SASL PLAIN (RFC 4616) as Kafka's `PlainLoginModule` serves it: one message,
//! `authzid NUL authcid NUL password`, checked against the users of the listener's JAAS
//! configuration (`user_<name>="<password>"`). The authorization id must be empty or the
//! user itself, as in Kafka.
//!
//! Sans-IO; untrusted bytes in, never a panic.

use std::collections::BTreeMap;

/// Why a PLAIN message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlainError {
    #[error("malformed SASL/PLAIN message: {0}")]
    Malformed(&'static str),
    #[error("unknown user or wrong password")]
    BadCredentials,
    #[error("an authorization id other than the user is not supported")]
    Authzid,
}

/// The (authorization id, user, password) of a PLAIN message.
pub fn parse(message: &[u8]) -> Result<(String, String, String), PlainError> {
    let text = std::str::from_utf8(message).map_err(|_| PlainError::Malformed("not UTF-8"))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(PlainError::Malformed(
            "expected three fields separated by NUL",
        ));
    };
    if user.is_empty() || password.is_empty() {
        return Err(PlainError::Malformed("an empty user or password"));
    }
    Ok((authzid.to_string(), user.to_string(), password.to_string()))
}

/// The user a PLAIN message authenticates, against `users` (name → password).
pub fn authenticate(
    message: &[u8],
    users: &BTreeMap<String, String>,
) -> Result<String, PlainError> {
    let (authzid, user, password) = parse(message)?;
    if !authzid.is_empty() && authzid != user {
        return Err(PlainError::Authzid);
    }
    let expected = users.get(&user).ok_or(PlainError::BadCredentials)?;
    if !super::same_secret(expected.as_bytes(), password.as_bytes()) {
        return Err(PlainError::BadCredentials);
    }
    Ok(user)
}

/// The message a client sends.
pub fn message(user: &str, password: &str) -> Vec<u8> {
    format!("\0{user}\0{password}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_passwords_and_authzids() {
        let users = BTreeMap::from([("alice".to_string(), "alice-secret".to_string())]);
        assert_eq!(
            authenticate(&message("alice", "alice-secret"), &users),
            Ok("alice".into())
        );
        assert_eq!(
            authenticate(b"alice\0alice\0alice-secret", &users),
            Ok("alice".into())
        );
        assert_eq!(
            authenticate(&message("alice", "wrong"), &users),
            Err(PlainError::BadCredentials)
        );
        assert_eq!(
            authenticate(&message("bob", "x"), &users),
            Err(PlainError::BadCredentials)
        );
        assert_eq!(
            authenticate(b"admin\0alice\0alice-secret", &users),
            Err(PlainError::Authzid)
        );
        for bad in [&b""[..], b"\0\0", b"a\0b", b"\0a\0b\0c", b"\xff\0a\0b"] {
            assert!(authenticate(bad, &users).is_err(), "{bad:?}");
        }
    }
}
