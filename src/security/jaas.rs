//! The JAAS configuration strings Kafka takes in `sasl.jaas.config` (and
//! `listener.name.<l>.<mechanism>.sasl.jaas.config`):
//! `org.apache.kafka.common.security.plain.PlainLoginModule required username="admin"
//! password="admin-secret" user_alice="alice-secret";`. Only what ketch reads is kept: the
//! login module, its flag and its options.

use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JaasEntry {
    pub login_module: String,
    pub options: BTreeMap<String, String>,
}

pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
pub const SCRAM_LOGIN_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// Parses one JAAS entry: `Module flag (key=value)* ;`, values quoted or bare.
pub fn parse(text: &str) -> Result<JaasEntry, String> {
    let text = text.trim();
    let body = text
        .strip_suffix(';')
        .ok_or("a JAAS configuration ends with ';'")?
        .trim();
    let mut chars = body.char_indices().peekable();
    let mut tokens: Vec<String> = Vec::new();
    // Tokens: words, '=', and quoted strings (with \" and \\ escapes).
    while let Some((_, c)) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '=' {
            tokens.push("=".into());
        } else if c == '"' {
            let mut s = String::new();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some((_, e)) => s.push(e),
                        None => return Err("a '\\' at the end".into()),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => s.push(c),
                }
            }
            if !closed {
                return Err("an unclosed quote".into());
            }
            tokens.push(format!("\"{s}"));
        } else {
            let mut s = String::from(c);
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() || c == '=' || c == '"' {
                    break;
                }
                s.push(c);
                chars.next();
            }
            tokens.push(s);
        }
    }
    let mut it = tokens.into_iter();
    let login_module = it.next().ok_or("no login module")?;
    let flag = it.next().ok_or("no control flag (required)")?;
    if !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str()) {
        return Err(format!("'{flag}' is not a control flag"));
    }
    let mut options = BTreeMap::new();
    while let Some(key) = it.next() {
        if it.next().as_deref() != Some("=") {
            return Err(format!("option '{key}' has no '='"));
        }
        let value = it.next().ok_or(format!("option '{key}' has no value"))?;
        let value = value
            .strip_prefix('"')
            .map_or(value.clone(), str::to_string);
        options.insert(key, value);
    }
    Ok(JaasEntry {
        login_module,
        options,
    })
}

impl JaasEntry {
    /// `user_<name>="<password>"` options: the users a PLAIN listener accepts.
    pub fn plain_users(&self) -> BTreeMap<String, String> {
        self.options
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v.clone())))
            .collect()
    }

    /// `username` and `password`: what this side presents as a client.
    pub fn credentials(&self) -> Option<(String, String)> {
        Some((
            self.options.get("username")?.clone(),
            self.options.get("password")?.clone(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafkas_examples_parse() {
        let e = parse(
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
             user_alice=\"a \\\"quoted\\\" secret\";",
        )
        .unwrap();
        assert_eq!(e.login_module, PLAIN_LOGIN_MODULE);
        assert_eq!(
            e.credentials(),
            Some(("admin".into(), "admin-secret".into()))
        );
        assert_eq!(e.plain_users()["alice"], "a \"quoted\" secret");
        let e = parse("org.apache.kafka.common.security.scram.ScramLoginModule required;").unwrap();
        assert_eq!(e.credentials(), None);
        for bad in [
            "",
            "Module required",
            "Module;",
            "Module maybe;",
            "Module required user;",
            "Module required user=\"x;",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
