//! The `java.util.Properties` text format, as Kafka reads `server.properties` and writes
//! `meta.properties`: `key=value`, `key: value` or `key value`; `#` and `!` comments; a trailing
//! backslash continues a line; `\t \n \r \f \\ \uXXXX` escapes.
//!
//! Keys keep their file order (a `Vec`), so messages about them read in the order a person wrote
//! them; a repeated key: the last one wins, as in Java.

/// What `java.util.Properties` skips before a key and around a separator: not all of Unicode's
/// whitespace (a vertical tab, say, belongs to the key).
const JAVA_WHITESPACE: [char; 3] = [' ', '\t', '\x0c'];

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    entries: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PropertiesError {
    #[error("line {line}: malformed \\u escape")]
    BadUnicodeEscape { line: usize },
}

impl Properties {
    pub fn new() -> Properties {
        Properties::default()
    }

    pub fn parse(text: &str) -> Result<Properties, PropertiesError> {
        let mut props = Properties::new();
        let mut logical = String::new();
        let mut start_line = 0;
        for (i, raw) in text.lines().enumerate() {
            let line = if logical.is_empty() {
                start_line = i + 1;
                let trimmed = raw.trim_start_matches(JAVA_WHITESPACE);
                if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
                    continue;
                }
                trimmed
            } else {
                raw.trim_start_matches(JAVA_WHITESPACE)
            };
            // An odd number of trailing backslashes continues the line.
            let trailing = line.len() - line.trim_end_matches('\\').len();
            if trailing % 2 == 1 {
                logical.push_str(&line[..line.len() - 1]);
                continue;
            }
            logical.push_str(line);
            let (key, value) = split_key_value(&logical);
            let key = unescape(key, start_line)?;
            let value = unescape(value, start_line)?;
            props.set(key, value);
            logical.clear();
        }
        if !logical.is_empty() {
            let (key, value) = split_key_value(&logical);
            props.set(unescape(key, start_line)?, unescape(value, start_line)?);
        }
        Ok(props)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Writes the entries, escaped so that [`Properties::parse`] reads them back unchanged.
    pub fn to_text(&self, header_comment: Option<&str>) -> String {
        let mut out = String::new();
        if let Some(comment) = header_comment {
            for line in comment.lines() {
                out.push('#');
                out.push_str(line);
                out.push('\n');
            }
        }
        for (k, v) in &self.entries {
            out.push_str(&escape(k, true));
            out.push('=');
            out.push_str(&escape(v, false));
            out.push('\n');
        }
        out
    }
}

fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let mut rest = line[i..].trim_start_matches(JAVA_WHITESPACE);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches(JAVA_WHITESPACE);
    }
    (key, rest)
}

fn unescape(s: &str, line: usize) -> Result<String, PropertiesError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .ok()
                    .filter(|_| hex.len() == 4)
                    .and_then(char::from_u32)
                    .ok_or(PropertiesError::BadUnicodeEscape { line })?;
                out.push(code);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

fn escape(s: &str, is_key: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x0c' => out.push_str("\\f"),
            '=' | ':' | '#' | '!' => {
                out.push('\\');
                out.push(c);
            }
            ' ' if is_key || i == 0 => out.push_str("\\ "),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn reads_kafka_style_files() {
        let text = "# comment\n! also\n\nnode.id=1\nprocess.roles = broker,controller\n\
                    listeners: PLAINTEXT://:9092\nlog.dirs /tmp/a\\\n   ,/tmp/b\nempty=\n";
        let p = Properties::parse(text).unwrap();
        assert_eq!(p.get("node.id"), Some("1"));
        assert_eq!(p.get("process.roles"), Some("broker,controller"));
        assert_eq!(p.get("listeners"), Some("PLAINTEXT://:9092"));
        assert_eq!(p.get("log.dirs"), Some("/tmp/a,/tmp/b"));
        assert_eq!(p.get("empty"), Some(""));
        assert_eq!(p.get("missing"), None);
    }

    /// Fuzz regression: Java skips only space, tab and form feed before a key; a vertical tab is
    /// part of the key, and must survive a write and a re-read.
    #[test]
    fn a_vertical_tab_belongs_to_the_key() {
        let p = Properties::parse("\x0b#`t:/\n").unwrap();
        assert_eq!(p.get("\x0b#`t"), Some("/"));
        assert_eq!(Properties::parse(&p.to_text(None)).unwrap(), p);
    }

    #[test]
    fn later_keys_win() {
        let p = Properties::parse("a=1\na=2\n").unwrap();
        assert_eq!(p.get("a"), Some("2"));
        assert_eq!(p.iter().count(), 1);
    }

    #[test]
    fn bad_unicode_escape_is_an_error() {
        assert_eq!(
            Properties::parse("a=\\u12\n"),
            Err(PropertiesError::BadUnicodeEscape { line: 1 })
        );
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(
            entries in proptest::collection::vec(("[a-z.:= #!\\\\]{1,12}", "[ -~\t\n]{0,20}"), 0..8)
        ) {
            let mut p = Properties::new();
            for (k, v) in &entries {
                p.set(k.clone(), v.clone());
            }
            let parsed = Properties::parse(&p.to_text(Some("header"))).unwrap();
            prop_assert_eq!(parsed, p);
        }
    }
}
