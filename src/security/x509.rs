//! The subject of an X.509 certificate (DER), written as RFC 2253 says: the relative
//! distinguished names last first, joined by ',', attributes of one name by '+', the usual
//! attribute types by their short names (CN, O, OU, …) and others by their dotted object
//! identifier with the value's DER in hex (`1.2.840.113549.1.9.1=#16…`), special characters
//! escaped. This is Java's `X500Principal.getName()`, which Kafka's default principal builder
//! uses for TLS clients.
//!
//! Reads untrusted bytes (a certificate the TLS library has already checked, but the reader
//! assumes nothing): every length is checked, and anything unexpected gives `None`.

/// One DER element: its tag and contents, and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;

/// The subject of certificate `der`, RFC 2253 style; `None` if it cannot be read.
pub fn subject_name(der: &[u8]) -> Option<String> {
    let (tag, cert, _) = element(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = element(cert)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    // [0] EXPLICIT version, optional.
    let (tag, _, after) = element(rest)?;
    if tag == 0xA0 {
        rest = after;
    }
    // serialNumber, signature, issuer, validity: skipped.
    for _ in 0..4 {
        rest = element(rest)?.2;
    }
    let (tag, subject, _) = element(rest)?;
    if tag != SEQUENCE {
        return None;
    }
    name_of(subject)
}

/// A Name's contents (the SEQUENCE OF RelativeDistinguishedName).
fn name_of(mut rdns: &[u8]) -> Option<String> {
    let mut parts = Vec::new();
    while !rdns.is_empty() {
        let (tag, set, rest) = element(rdns)?;
        if tag != SET {
            return None;
        }
        let mut attributes = Vec::new();
        let mut inner = set;
        while !inner.is_empty() {
            let (tag, atv, after) = element(inner)?;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value_der) = element(atv)?;
            if tag != OID {
                return None;
            }
            let (value_tag, value, _) = element(value_der)?;
            let oid_text = oid_string(oid)?;
            let text = match short_name(&oid_text) {
                Some(short) => format!("{short}={}", escape(&string_value(value_tag, value)?)),
                None => {
                    let whole = &value_der[..value_der.len() - element(value_der)?.2.len()];
                    format!("{oid_text}=#{}", hex(whole))
                }
            };
            attributes.push(text);
            inner = after;
        }
        parts.push(attributes.join("+"));
        rdns = rest;
    }
    parts.reverse();
    Some(parts.join(","))
}

fn oid_string(bytes: &[u8]) -> Option<String> {
    let (&first, rest) = bytes.split_first()?;
    let mut out = vec![u64::from(first / 40).min(2), 0];
    out[1] = u64::from(first) - out[0] * 40;
    let mut value: u64 = 0;
    for &b in rest {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            out.push(value);
            value = 0;
        }
    }
    if rest.last().is_some_and(|b| b & 0x80 != 0) {
        return None;
    }
    Some(out.iter().map(u64::to_string).collect::<Vec<_>>().join("."))
}

/// The keywords RFC 2253 (and Java) use.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

/// A directory string's text: UTF8String, PrintableString, IA5String, TeletexString (read as
/// Latin-1), BMPString (UTF-16) or UniversalString (UTF-32).
fn string_value(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        0x0C | 0x13 | 0x16 => String::from_utf8(value.to_vec()).ok(),
        0x14 => Some(value.iter().map(|b| char::from(*b)).collect()),
        0x1E => {
            if value.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = value
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        0x1C => {
            if value.len() % 4 != 0 {
                return None;
            }
            value
                .chunks(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// RFC 2253 section 2.4: `,+"\<>;` escaped, and a leading '#' or space and a trailing space.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn der(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if content.len() < 0x80 {
            out.push(content.len() as u8);
        } else {
            out.push(0x82);
            out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        }
        out.extend_from_slice(content);
        out
    }

    fn atv(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
        let mut inner = der(OID, oid);
        inner.extend(der(tag, value));
        der(SEQUENCE, &inner)
    }

    /// A certificate skeleton with `subject` (a Name's contents).
    fn certificate(subject: &[u8]) -> Vec<u8> {
        let mut tbs = der(0xA0, &der(0x02, &[2]));
        tbs.extend(der(0x02, &[1])); // serial
        tbs.extend(der(SEQUENCE, &[])); // signature
        tbs.extend(der(SEQUENCE, &[])); // issuer
        tbs.extend(der(SEQUENCE, &[])); // validity
        tbs.extend(der(SEQUENCE, subject));
        der(SEQUENCE, &der(SEQUENCE, &tbs))
    }

    #[test]
    fn the_subject_reads_as_javas_x500_principal_writes_it() {
        let mut subject = der(SET, &atv(&[0x55, 4, 6], 0x13, b"US"));
        subject.extend(der(SET, &atv(&[0x55, 4, 10], 0x0C, b"Acme, Inc.")));
        let mut multi = atv(&[0x55, 4, 11], 0x0C, b"eng");
        multi.extend(atv(&[0x55, 4, 3], 0x0C, b" writer"));
        subject.extend(der(SET, &multi));
        // emailAddress, 1.2.840.113549.1.9.1: no keyword, so its DER in hex.
        subject.extend(der(
            SET,
            &atv(&[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 1, 9, 1], 0x16, b"a@b"),
        ));
        assert_eq!(
            subject_name(&certificate(&subject)).unwrap(),
            "1.2.840.113549.1.9.1=#1603614062,OU=eng+CN=\\ writer,O=Acme\\, Inc.,C=US"
        );
    }

    #[test]
    fn truncated_or_odd_input_is_none_never_a_panic() {
        let mut subject = der(SET, &atv(&[0x55, 4, 3], 0x0C, b"client"));
        let cert = certificate(&subject);
        assert_eq!(subject_name(&cert).as_deref(), Some("CN=client"));
        for cut in 0..cert.len() {
            let _ = subject_name(&cert[..cut]);
        }
        subject[0] = 0x30; // a SEQUENCE where a SET belongs
        assert_eq!(subject_name(&certificate(&subject)), None);
        assert_eq!(subject_name(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
