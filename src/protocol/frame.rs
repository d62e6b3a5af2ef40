//! Kafka request and response framing, sans-IO: a frame is a 4-byte big-endian length and then a
//! header and a body whose layout depends on the API key and version. The caller reads the
//! length, checks it against its limit before reading the body, and hands the body here.
//!
//! Bodies go through the `kafka-protocol` crate. Header versions follow the API's flexible
//! versions, except that an ApiVersions response header is always v0 (KIP-511: a client that
//! sent an unsupported version must still be able to read the answer).

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    #[error("{api_key:?} version {version} is not supported")]
    UnsupportedVersion {
        api_key: ApiKey,
        version: i16,
        correlation_id: i32,
    },
    #[error("malformed {what}: {reason}")]
    Malformed { what: String, reason: String },
    #[error("cannot encode {what}: {reason}")]
    Encode { what: String, reason: String },
}

/// A decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// The API key, version and correlation id at the start of a request frame, if it has them:
/// enough to answer even a request whose body cannot be decoded.
pub fn peek_request(frame: &[u8]) -> Option<(i16, i16, i32)> {
    if frame.len() < 8 {
        return None;
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Some((api_key, version, correlation_id))
}

/// Decodes a request frame (without its length prefix). `supported` says which versions this
/// node implements for an API key (None: not at all).
pub fn decode_request(
    mut frame: Bytes,
    supported: impl Fn(ApiKey) -> Option<(i16, i16)>,
) -> Result<Request, FrameError> {
    let (raw_key, version, correlation_id) =
        peek_request(&frame).ok_or(FrameError::TooShort(frame.len()))?;
    let api_key = ApiKey::try_from(raw_key).map_err(|_| FrameError::UnknownApiKey(raw_key))?;
    match supported(api_key) {
        Some((min, max)) if (min..=max).contains(&version) => {}
        _ => {
            return Err(FrameError::UnsupportedVersion {
                api_key,
                version,
                correlation_id,
            })
        }
    }
    let header_version = api_key.request_header_version(version);
    let header =
        RequestHeader::decode(&mut frame, header_version).map_err(|e| FrameError::Malformed {
            what: "request header".into(),
            reason: e.to_string(),
        })?;
    let body =
        RequestKind::decode(api_key, &mut frame, version).map_err(|e| FrameError::Malformed {
            what: format!("{api_key:?} v{version} request"),
            reason: e.to_string(),
        })?;
    Ok(Request {
        api_key,
        version,
        header,
        body,
    })
}

fn with_length_prefix(
    capacity: usize,
    build: impl FnOnce(&mut BytesMut) -> Result<(), FrameError>,
) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    build(&mut buf)?;
    let len = i32::try_from(buf.len() - 4).map_err(|_| FrameError::Encode {
        what: "frame".into(),
        reason: "longer than 2 GiB".into(),
    })?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// About how many bytes `body` encodes to: a Fetch response is its record bytes and a little;
/// sizing the buffer once keeps large responses from being copied as it grows.
fn size_hint(body: &ResponseKind) -> usize {
    match body {
        ResponseKind::Fetch(f) => {
            256 + f
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .map(|p| 96 + p.records.as_ref().map_or(0, |r| r.len()))
                .sum::<usize>()
        }
        _ => 256,
    }
}

/// Encodes a response frame, length prefix included.
pub fn encode_response(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<Bytes, FrameError> {
    with_length_prefix(size_hint(body), |buf| {
        let header_version = if api_key == ApiKey::ApiVersions {
            0
        } else {
            api_key.response_header_version(version)
        };
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(buf, header_version)
            .map_err(|e| encode_error("response header", e))?;
        body.encode(buf, version)
            .map_err(|e| encode_error(&format!("{api_key:?} v{version} response"), e))
    })
}

/// Encodes a request frame, length prefix included.
pub fn encode_request(
    correlation_id: i32,
    client_id: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> Result<Bytes, FrameError> {
    with_length_prefix(256, |buf| {
        let header = RequestHeader::default()
            .with_request_api_key(api_key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(client_id.to_string())));
        header
            .encode(buf, api_key.request_header_version(version))
            .map_err(|e| encode_error("request header", e))?;
        body.encode(buf, version)
            .map_err(|e| encode_error(&format!("{api_key:?} v{version} request"), e))
    })
}

/// Decodes a response frame (without its length prefix) to a request of `api_key`/`version`.
/// Returns the correlation id and the body.
pub fn decode_response(
    api_key: ApiKey,
    version: i16,
    mut frame: Bytes,
) -> Result<(i32, ResponseKind), FrameError> {
    let header_version = if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(version)
    };
    let header =
        ResponseHeader::decode(&mut frame, header_version).map_err(|e| FrameError::Malformed {
            what: "response header".into(),
            reason: e.to_string(),
        })?;
    let body =
        ResponseKind::decode(api_key, &mut frame, version).map_err(|e| FrameError::Malformed {
            what: format!("{api_key:?} v{version} response"),
            reason: e.to_string(),
        })?;
    Ok((header.correlation_id, body))
}

fn encode_error(what: &str, e: impl std::fmt::Display) -> FrameError {
    FrameError::Encode {
        what: what.to_string(),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_supported(_: ApiKey) -> Option<(i16, i16)> {
        Some((0, 20))
    }

    /// Found by the `request` fuzz target: an ApiVersions v3 request whose tagged fields carry
    /// a tag of 2^31 or more decoded, then encoded to a frame that no longer decoded. The
    /// vendored kafka-protocol refuses such tags (vendor/kafka-protocol/KETCH-PATCH.md).
    #[test]
    fn a_tagged_field_beyond_i32_max_is_a_decode_error() {
        // ApiVersions v3, client id "rdkafka", then client software name and version, then
        // three tagged fields of which one has the tag 0xffffffffffffff03 (over-long varint).
        let frame = include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/regressions/request/tagged-field-beyond-i32-max"
        ))
        .to_vec();
        assert_eq!(&frame[..4], &[0x00, 0x12, 0x00, 0x03]);
        assert!(decode_request(Bytes::from(frame), all_supported).is_err());
    }

    /// The other vendored fix: an array count beyond the bytes left is refused before any
    /// allocation (a Metadata v1 request claiming 2^31 - 1 topics in 4 bytes).
    #[test]
    fn an_array_longer_than_its_frame_is_a_decode_error() {
        let mut frame = vec![0x00, 0x03, 0x00, 0x01, 0, 0, 0, 1, 0xff, 0xff];
        frame.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(decode_request(Bytes::from(frame), all_supported).is_err());
    }
}
