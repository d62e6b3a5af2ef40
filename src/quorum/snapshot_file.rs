//! Metadata snapshot files (KIP-630), in Kafka's layout: `<end offset, 20 digits>-<epoch, 10
//! digits>.checkpoint` in the metadata log directory, holding v2 record batches: a control batch
//! with a SnapshotHeader record (control type 3), data batches with one metadata record per
//! record, and a control batch with a SnapshotFooter record (type 4). Every batch carries its
//! CRC-32C, and a file without its footer is incomplete, so a damaged snapshot is refused, never
//! half-loaded.
//!
//! Owns: file names and the bytes of a snapshot. Must not touch: the disk (`storage` reads
//! and writes the files), what the records mean (`controller::image_records`).

use crate::controller::{MetadataRecord, RecordError};
use crate::protocol::record_batch::{
    self, encode_batch, set_control, set_partition_leader_epoch, RecordBatch,
};
use crate::raft::SnapshotId;

pub const SNAPSHOT_SUFFIX: &str = ".checkpoint";
/// Kafka's ControlRecordType ids.
const CONTROL_SNAPSHOT_HEADER: i16 = 3;
const CONTROL_SNAPSHOT_FOOTER: i16 = 4;
/// Records per data batch: batches stay well under the 1 MiB a batch may hold.
const RECORDS_PER_BATCH: usize = 256;
/// The largest batch accepted when reading a snapshot.
const MAX_BATCH_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotFileError {
    #[error("snapshot batch {index}: {reason}")]
    Batch { index: usize, reason: String },
    #[error("snapshot does not start with a SnapshotHeader control record")]
    NoHeader,
    #[error("snapshot does not end with a SnapshotFooter control record (incomplete)")]
    NoFooter,
    #[error("snapshot record {index}: {reason}")]
    Record { index: usize, reason: String },
}

/// `00000000000000000123-0000000004.checkpoint`.
pub fn file_name(id: SnapshotId) -> String {
    format!("{:020}-{:010}{SNAPSHOT_SUFFIX}", id.end_offset, id.epoch)
}

/// The id a snapshot file's name gives, if it is one.
pub fn parse_file_name(name: &str) -> Option<SnapshotId> {
    let stem = name.strip_suffix(SNAPSHOT_SUFFIX)?;
    let (offset, epoch) = stem.split_once('-')?;
    if offset.len() != 20 || epoch.len() != 10 {
        return None;
    }
    Some(SnapshotId {
        end_offset: offset.parse().ok()?,
        epoch: epoch.parse().ok().filter(|e: &i32| *e >= 0)?,
    })
}

/// A control record's key: version 0, then the type.
fn control_key(control_type: i16) -> [u8; 4] {
    let mut key = [0u8; 4];
    key[2..].copy_from_slice(&control_type.to_be_bytes());
    key
}

fn control_batch(base_offset: i64, epoch: i32, control_type: i16, value: &[u8]) -> Vec<u8> {
    let key = control_key(control_type);
    let mut batch = encode_batch(base_offset, 0, &[(Some(&key), Some(value))]);
    set_control(&mut batch);
    set_partition_leader_epoch(&mut batch, epoch);
    batch
}

/// The snapshot `id` holding `records`; fails if a record does not encode.
pub fn encode(
    id: SnapshotId,
    records: &[MetadataRecord],
    last_contained_timestamp_ms: i64,
) -> Result<Vec<u8>, RecordError> {
    // SnapshotHeaderRecord v0: version, lastContainedLogTimestamp, no tagged fields.
    let mut header = Vec::with_capacity(11);
    header.extend_from_slice(&0i16.to_be_bytes());
    header.extend_from_slice(&last_contained_timestamp_ms.to_be_bytes());
    header.push(0);
    let mut out = control_batch(0, id.epoch, CONTROL_SNAPSHOT_HEADER, &header);
    let mut offset = 1i64;
    for chunk in records.chunks(RECORDS_PER_BATCH) {
        let values: Vec<Vec<u8>> = chunk
            .iter()
            .map(MetadataRecord::encode)
            .collect::<Result<_, _>>()?;
        let refs: Vec<record_batch::RecordRef<'_>> =
            values.iter().map(|v| (None, Some(&v[..]))).collect();
        let mut batch = encode_batch(offset, 0, &refs);
        set_partition_leader_epoch(&mut batch, id.epoch);
        out.extend(batch);
        offset += chunk.len() as i64;
    }
    // SnapshotFooterRecord v0: version, no tagged fields.
    let footer = [0u8, 0, 0];
    out.extend(control_batch(
        offset,
        id.epoch,
        CONTROL_SNAPSHOT_FOOTER,
        &footer,
    ));
    Ok(out)
}

/// The records of a whole, undamaged snapshot.
pub fn decode(bytes: &[u8]) -> Result<Vec<MetadataRecord>, SnapshotFileError> {
    let mut rest = bytes;
    let mut index = 0usize;
    let mut seen_header = false;
    let mut seen_footer = false;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let fail = |reason: String| SnapshotFileError::Batch { index, reason };
        if seen_footer {
            return Err(fail("data after the SnapshotFooter".into()));
        }
        let (batch, tail) =
            RecordBatch::parse(rest, MAX_BATCH_BYTES).map_err(|e| fail(e.to_string()))?;
        let records = record_batch::records(&batch).map_err(|e| fail(e.to_string()))?;
        if batch.is_control() {
            let control_type = match records.as_slice() {
                [r] => r
                    .key
                    .filter(|k| k.len() == 4)
                    .map(|k| i16::from_be_bytes([k[2], k[3]])),
                _ => None,
            };
            match (control_type, seen_header) {
                (Some(CONTROL_SNAPSHOT_HEADER), false) => seen_header = true,
                (Some(CONTROL_SNAPSHOT_FOOTER), true) => seen_footer = true,
                _ => return Err(fail("unexpected control batch".into())),
            }
        } else {
            if !seen_header {
                return Err(SnapshotFileError::NoHeader);
            }
            for r in records {
                let value = r.value.unwrap_or_default();
                let record =
                    MetadataRecord::decode(value).map_err(|e| SnapshotFileError::Record {
                        index: out.len(),
                        reason: e.to_string(),
                    })?;
                out.push(record);
            }
        }
        rest = tail;
        index += 1;
    }
    if !seen_header {
        return Err(SnapshotFileError::NoHeader);
    }
    if !seen_footer {
        return Err(SnapshotFileError::NoFooter);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: usize) -> Vec<MetadataRecord> {
        (0..n)
            .map(|i| MetadataRecord::Topic {
                name: format!("t{i}"),
                topic_id: crate::model::Uuid::from_random([i as u8; 16]).to_string(),
            })
            .collect()
    }

    #[test]
    fn names_are_kafkas() {
        let id = SnapshotId {
            end_offset: 123,
            epoch: 4,
        };
        assert_eq!(file_name(id), "00000000000000000123-0000000004.checkpoint");
        assert_eq!(parse_file_name(&file_name(id)), Some(id));
        for bad in [
            "00000000000000000123-0000000004.checkpoint.part",
            "123-4.checkpoint",
            "00000000000000000123.log",
            "0000000000000000012x-0000000004.checkpoint",
            "00000000000000000123--000000004.checkpoint",
        ] {
            assert_eq!(parse_file_name(bad), None, "{bad}");
        }
    }

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let id = SnapshotId {
            end_offset: 900,
            epoch: 3,
        };
        for n in [0, 1, RECORDS_PER_BATCH, RECORDS_PER_BATCH * 2 + 5] {
            let bytes = encode(id, &records(n), 77).unwrap();
            assert_eq!(decode(&bytes).unwrap(), records(n));
            // Cut anywhere: refused (the footer is missing or a batch is torn).
            for cut in [1, 20, bytes.len() / 2, bytes.len() - 1] {
                assert!(decode(&bytes[..cut]).is_err(), "n={n} cut={cut}");
            }
            // A flipped bit anywhere the CRC covers: refused.
            let mut flipped = bytes.clone();
            let at = bytes.len() - 5;
            flipped[at] ^= 0x10;
            assert!(decode(&flipped).is_err());
        }
        assert_eq!(decode(&[]), Err(SnapshotFileError::NoHeader));
    }

    #[test]
    fn the_header_and_footer_are_kafka_control_batches() {
        let id = SnapshotId {
            end_offset: 10,
            epoch: 2,
        };
        let bytes = encode(id, &records(1), 5).unwrap();
        let (header, rest) = RecordBatch::parse(&bytes, usize::MAX).unwrap();
        assert!(header.is_control());
        assert_eq!(header.partition_leader_epoch(), 2);
        let r = record_batch::records(&header).unwrap();
        assert_eq!(r[0].key, Some(&[0u8, 0, 0, 3][..]));
        let (data, rest) = RecordBatch::parse(rest, usize::MAX).unwrap();
        assert!(!data.is_control());
        let (footer, rest) = RecordBatch::parse(rest, usize::MAX).unwrap();
        assert!(footer.is_control() && rest.is_empty());
        let r = record_batch::records(&footer).unwrap();
        assert_eq!(r[0].key, Some(&[0u8, 0, 0, 4][..]));
    }
}
