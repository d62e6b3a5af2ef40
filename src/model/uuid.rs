//! Kafka's UUIDs (cluster id, directory id, topic id): 16 bytes, written as 22 characters of
//! URL-safe base64 without padding (`org.apache.kafka.common.Uuid#toString`).

use std::fmt;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Uuid(pub [u8; 16]);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UuidError {
    #[error("'{0}' is not a Kafka UUID: expected 22 characters of URL-safe base64")]
    Malformed(String),
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

impl Uuid {
    pub const ZERO: Uuid = Uuid([0; 16]);

    /// A version-4 UUID from 16 random bytes (Kafka's `Uuid.randomUuid`).
    pub fn from_random(mut bytes: [u8; 16]) -> Uuid {
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        Uuid(bytes)
    }

    pub fn parse(s: &str) -> Result<Uuid, UuidError> {
        let err = || UuidError::Malformed(s.to_string());
        let chars = s.as_bytes();
        if chars.len() != 22 {
            return Err(err());
        }
        let mut bits: u128 = 0;
        for (i, &c) in chars.iter().enumerate() {
            let v = ALPHABET.iter().position(|&a| a == c).ok_or_else(err)? as u128;
            if i == 21 {
                // The last character carries only 2 significant bits; the rest must be zero.
                if v & 0x0f != 0 {
                    return Err(err());
                }
                bits = (bits << 2) | (v >> 4);
            } else {
                bits = (bits << 6) | v;
            }
        }
        Ok(Uuid(bits.to_be_bytes()))
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = u128::from_be_bytes(self.0);
        let mut out = [0u8; 22];
        for (i, slot) in out.iter_mut().enumerate().take(21) {
            let shift = 128 - 6 * (i + 1);
            *slot = ALPHABET[((bits >> shift) & 0x3f) as usize];
        }
        out[21] = ALPHABET[((bits & 0x3) << 4) as usize];
        f.write_str(std::str::from_utf8(&out).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uuid({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_kafka_text_form() {
        // The cluster id from Kafka's own quickstart output and tests.
        let id = Uuid::parse("MkU3OEVBNTcwNTJENDM2Qg").unwrap();
        assert_eq!(id.to_string(), "MkU3OEVBNTcwNTJENDM2Qg");
        // base64url("2E78EA57052D436B") first 16 bytes: the id is the ASCII of those bytes.
        assert_eq!(&id.0, b"2E78EA57052D436B");
        assert_eq!(Uuid::ZERO.to_string(), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn rejects_bad_text() {
        assert!(Uuid::parse("short").is_err());
        assert!(Uuid::parse("MkU3OEVBNTcwNTJENDM2Q!").is_err());
        assert!(Uuid::parse("MkU3OEVBNTcwNTJENDM2Qh").is_err());
    }

    #[test]
    fn round_trips_random_ids() {
        for seed in 0u8..50 {
            let id = Uuid::from_random([seed.wrapping_mul(37); 16]);
            assert_eq!(Uuid::parse(&id.to_string()).unwrap(), id);
        }
    }
}
