//! Entry points for the fuzz targets in `fuzz/`, kept in the library so that the committed corpus
//! also replays as an ordinary test on stable Rust (`tests/fuzz_corpus.rs`). Each checks a
//! property, not only the absence of a panic.

use crate::log::{Log, LogConfig};
use crate::model::config::ServerConfig;
use crate::model::properties::Properties;
use crate::protocol::record_batch::{set_base_offset, RecordBatch};
use crate::runtime::{Disk, DiskFaults, SimDisk};
use std::path::PathBuf;
use std::sync::Arc;

/// Record batch v2 view: a batch that parses keeps parsing after its base offset is rewritten
/// (the CRC does not cover it), and no strict prefix of it parses.
pub fn record_batch(data: &[u8]) {
    let Ok((batch, _)) = RecordBatch::parse(data, 1 << 20) else {
        return;
    };
    let bytes = batch.as_bytes().to_vec();
    assert!(batch.last_offset() >= batch.base_offset());
    let mut moved = bytes.clone();
    set_base_offset(&mut moved, 12345);
    let (again, rest) =
        RecordBatch::parse(&moved, 1 << 20).expect("offset rewrite broke the batch");
    assert!(rest.is_empty());
    assert_eq!(again.base_offset(), 12345);
    assert_eq!(again.crc(), batch.crc());
    for cut in [bytes.len() - 1, bytes.len() / 2, 12] {
        assert!(
            RecordBatch::parse(&bytes[..cut], 1 << 20).is_err(),
            "a prefix of {cut} bytes parsed"
        );
    }
}

/// The cleaner's full decoding: any records section (the header made valid and the CRC fixed,
/// so the fuzzer reaches the records and codecs) decodes or fails without panicking, and what
/// decodes re-encodes to a batch that decodes to the same thing.
pub fn decoded_batch(data: &[u8]) {
    use crate::protocol::record_batch::decoded::{decode, encode};
    use crate::protocol::record_batch::{HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
    if data.len() < HEADER_LEN || data.len() > 1 << 20 {
        return;
    }
    let mut bytes = data.to_vec();
    let length = (bytes.len() - LOG_OVERHEAD) as i32;
    bytes[8..12].copy_from_slice(&length.to_be_bytes());
    bytes[16] = MAGIC_V2 as u8;
    // Keep the offset fields sane so the header check passes; the records are the target.
    bytes[0] &= 0x3f;
    bytes[23] &= 0x3f;
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    let Ok((batch, _)) = RecordBatch::parse(&bytes, 1 << 20) else {
        return;
    };
    let Ok(decoded) = decode(&batch) else {
        return;
    };
    let again = encode(&decoded).expect("a decoded batch encodes");
    let (batch, _) = RecordBatch::parse(&again, usize::MAX).expect("an encoded batch parses");
    assert_eq!(decode(&batch).expect("an encoded batch decodes"), decoded);
}

/// Segment recovery: the input is `[u16 big-endian log length][log bytes][index bytes]`. Recovery
/// from scratch must not panic and must keep only CRC-valid, contiguous batches; recovery that
/// trusts everything must not panic either.
pub fn segment_recovery(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(u16::from_be_bytes([data[0], data[1]]))).min(data.len() - 2);
    let (log_bytes, index_bytes) = data[2..].split_at(split);
    for recovery_point in [0, u64::MAX] {
        let sim = SimDisk::new(0, DiskFaults::default());
        let disk: Arc<dyn Disk> = Arc::new(sim.clone());
        let dir = PathBuf::from("/fuzz/t-0");
        let setup = || -> std::io::Result<()> {
            disk.create_dir_all(&dir)?;
            disk.create(&dir.join("00000000000000000000.log"))?
                .write_at(log_bytes, 0)?;
            disk.create(&dir.join("00000000000000000000.index"))?
                .write_at(index_bytes, 0)?;
            Ok(())
        };
        if setup().is_err() {
            return;
        }
        let config = LogConfig {
            index_interval_bytes: 64,
            ..LogConfig::default()
        };
        let Ok((log, _)) = Log::open(Arc::clone(&disk), &dir, config, recovery_point) else {
            continue;
        };
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let Ok(bytes) = log.read(offset, 1 << 16, None) else {
                assert!(recovery_point > 0, "a fully scanned log failed a read");
                break;
            };
            assert!(!bytes.is_empty(), "no progress at offset {offset}");
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                match RecordBatch::parse(rest, usize::MAX) {
                    Ok((b, tail)) => {
                        offset = b.last_offset() as u64 + 1;
                        rest = tail;
                    }
                    Err(e) => {
                        assert!(
                            recovery_point > 0,
                            "recovery kept a batch that fails its check: {e}"
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// `server.properties` text: parsing never panics, and what is written back parses to the same.
pub fn properties(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ServerConfig::parse(text);
    if let Ok(props) = Properties::parse(text) {
        let again = Properties::parse(&props.to_text(None)).expect("our own output must parse");
        assert_eq!(again, props);
    }
}

/// Kafka request frames (the body after the 4-byte length), decoded as the client listener and
/// the controller listener decode them: a frame either fails to decode (and the connection would
/// be closed), or decodes to a request that, encoded again, decodes to the same API, version,
/// correlation id and body. A truncated frame never decodes. Decoding never allocates for
/// elements the frame cannot hold (the patched `kafka-protocol`, see `vendor/`).
pub fn request(data: &[u8]) {
    use crate::protocol::frame::{decode_request, encode_request};
    type Table = fn(kafka_protocol::messages::ApiKey) -> Option<(i16, i16)>;
    let tables: [Table; 2] = [
        crate::broker::handlers::supported,
        <crate::quorum::listener::ControllerListener as crate::wire::Service>::supported,
    ];
    for supported in tables {
        let Ok(request) = decode_request(bytes::Bytes::copy_from_slice(data), supported) else {
            continue;
        };
        let client_id = request.header.client_id.as_deref().unwrap_or("");
        let encoded = encode_request(
            request.header.correlation_id,
            client_id,
            request.api_key,
            request.version,
            &request.body,
        )
        .expect("a decoded request encodes");
        let again =
            decode_request(encoded.slice(4..), supported).expect("a re-encoded request decodes");
        assert_eq!(again.api_key, request.api_key);
        assert_eq!(again.version, request.version);
        assert_eq!(again.header.correlation_id, request.header.correlation_id);
        assert_eq!(
            again.body, request.body,
            "decode, encode, decode changed the body"
        );
        // A strict prefix of the re-encoded frame (cut inside the body) never decodes.
        let header_and_body = encoded.len() - 4;
        if header_and_body > 8 {
            let cut = encoded.slice(4..4 + header_and_body - 1);
            assert!(
                decode_request(cut, supported).is_err(),
                "a frame one byte short decoded"
            );
        }
    }
}

/// Metadata log entries (one JSON record each): decoding never panics, a decoded record encodes
/// and decodes to the same record, and applying a sequence of them to an image either applies
/// or is refused with an error, never a panic. The input is entries separated by newlines.
pub fn metadata_records(data: &[u8]) {
    use crate::controller::{MetadataImage, MetadataRecord};
    let mut image = MetadataImage::new();
    for (offset, line) in data.split(|b| *b == b'\n').enumerate() {
        let Ok(record) = MetadataRecord::decode(line) else {
            continue;
        };
        // A record that decodes encodes, unless it came as JSON with an id that is not a
        // UUID (Kafka's form cannot hold it); what encodes decodes to itself.
        if let Ok(bytes) = record.encode() {
            let again = MetadataRecord::decode(&bytes).expect("our own encoding decodes");
            assert_eq!(again, record);
        } else {
            assert_eq!(
                line.first(),
                Some(&b'{'),
                "a binary record that does not re-encode"
            );
        }
        let before = image.clone();
        if image.apply(offset as i64, &record).is_err() {
            assert_eq!(image, before, "a refused record changed the image");
        }
    }
}

/// Metadata snapshot files (KIP-630): decoding never panics, whatever the bytes; a snapshot
/// that decodes encodes to one that decodes to the same records; and its records either rebuild
/// an image, whose own snapshot records rebuild it again, or are refused with an error.
///
/// Every batch's CRC-32C is recomputed before decoding when the first byte is odd, so that
/// mutations reach the records instead of stopping at the checksum.
pub fn snapshot_file(data: &[u8]) {
    use crate::controller::{image_from_records, image_records};
    use crate::quorum::snapshot_file;
    use crate::raft::SnapshotId;
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let mut bytes = rest.to_vec();
    if mode % 2 == 1 {
        fix_batch_crcs(&mut bytes);
    }
    let Ok(records) = snapshot_file::decode(&bytes) else {
        return;
    };
    let id = SnapshotId {
        end_offset: 7,
        epoch: 3,
    };
    // Values may be JSON (older logs), which Kafka's form cannot hold when an id is not a UUID.
    if let Ok(bytes) = snapshot_file::encode(id, &records, 0) {
        let again = snapshot_file::decode(&bytes).expect("an encoded snapshot decodes");
        assert_eq!(again, records);
    }
    if let Ok(image) = image_from_records(&records, 6) {
        let rebuilt =
            image_from_records(&image_records(&image), 6).expect("an image's own records apply");
        assert_eq!(rebuilt, image);
    }
}

/// Rewrites the CRC of every whole v2 batch in `bytes` (base offset 8, length 4, leader epoch
/// 4, magic 1, CRC 4; the CRC covers the attributes onwards).
fn fix_batch_crcs(bytes: &mut [u8]) {
    let mut at = 0usize;
    while bytes.len() >= at + 21 {
        let length =
            i32::from_be_bytes([bytes[at + 8], bytes[at + 9], bytes[at + 10], bytes[at + 11]]);
        let Some(end) = usize::try_from(length)
            .ok()
            .and_then(|l| (at + 12).checked_add(l))
            .filter(|end| *end <= bytes.len() && *end >= at + 21)
        else {
            return;
        };
        let crc = crc32c::crc32c(&bytes[at + 21..end]);
        bytes[at + 17..at + 21].copy_from_slice(&crc.to_be_bytes());
        at = end;
    }
}

/// The SASL parsers that read what a client sends before it is authenticated, and the
/// certificate subject reader: PLAIN messages (what parses rebuilds to the same message), JAAS
/// configuration strings, and DER certificates. The first byte picks the parser.
pub fn sasl(data: &[u8]) {
    use crate::security::{jaas, plain, x509};
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok((authzid, user, password)) = plain::parse(rest) {
                let again = format!("{authzid}\0{user}\0{password}");
                assert_eq!(
                    plain::parse(again.as_bytes()),
                    Ok((authzid, user, password)),
                    "a PLAIN message does not rebuild"
                );
            }
        }
        1 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(entry) = jaas::parse(text) {
                    assert!(!entry.login_module.is_empty());
                }
            }
        }
        // Returning at all is the property: every length is checked before it is used.
        _ => {
            let _ = x509::subject_name(rest);
        }
    }
}

/// SCRAM's server and client on any messages: a server holding only user "user"'s
/// credential, given any client-first and client-final, never panics and accepts no one else
/// (nor anyone without the proof: a random one never passes); a client given any server-first
/// and server-final never panics and never believes a server that did not prove the key. The
/// first two bytes split the input into the two messages.
pub fn scram(data: &[u8]) {
    use crate::security::scram::{Credential, Mechanism, ScramClient, ScramServer};
    if data.len() < 2 {
        return;
    }
    let split = (usize::from(data[0]) << 8 | usize::from(data[1])).min(data.len() - 2);
    let (first, last) = data[2..].split_at(split);
    let mechanism = if data[0] & 1 == 0 {
        Mechanism::Sha256
    } else {
        Mechanism::Sha512
    };
    let credential = Credential::from_password(mechanism, "pencil", b"salt".to_vec(), 4096);
    let mut server = ScramServer::new(mechanism);
    if server
        .first(
            first,
            |u| (u == "user").then(|| credential.clone()),
            "snonce",
        )
        .is_ok()
    {
        if let Ok((user, _)) = server.last(last) {
            assert_eq!(
                user, "user",
                "the server accepted someone it has no credential for"
            );
        }
    }
    let mut client = ScramClient::new(mechanism, "user", "pencil", "cnonce");
    let _ = client.first();
    if client.last(first).is_ok() {
        assert!(
            client.verify(last).is_err() || last.starts_with(b"v="),
            "the client believed a server final message without a verifier"
        );
    }
}
