//! A zero-copy view of a Kafka record batch, message format v2 (magic 2), as specified in Kafka's
//! documentation ("Record Batch", section 5.3.1 of the design docs):
//!
//! ```text
//! offset  field                 type
//!  0      baseOffset            int64
//!  8      batchLength           int32   bytes after this field
//! 12      partitionLeaderEpoch  int32
//! 16      magic                 int8    = 2
//! 17      crc                   uint32  CRC-32C of bytes 21..end
//! 21      attributes            int16
//! 23      lastOffsetDelta       int32
//! 27      baseTimestamp         int64
//! 35      maxTimestamp          int64
//! 43      producerId            int64
//! 51      producerEpoch         int16
//! 53      baseSequence          int32
//! 57      recordsCount          int32
//! 61      records...
//! ```
//!
//! Only the header is read: records are never decoded on the produce, fetch or recovery paths.
//! The CRC does not cover baseOffset or partitionLeaderEpoch, so the broker can rewrite both
//! without recomputing it.

/// Bytes before `batchLength` counts: baseOffset and batchLength themselves.
pub const LOG_OVERHEAD: usize = 12;
/// Size of the v2 batch header, up to and including `recordsCount`.
pub const HEADER_LEN: usize = 61;
/// Smallest legal `batchLength`: a header with no records.
pub const MIN_BATCH_LENGTH: i32 = (HEADER_LEN - LOG_OVERHEAD) as i32;
pub const MAGIC_V2: i8 = 2;

const OFF_BASE_OFFSET: usize = 0;
const OFF_BATCH_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORDS_COUNT: usize = 57;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: {available} bytes available, {needed} needed")]
    Truncated { needed: usize, available: usize },
    #[error("batch length {0} is below the minimum of {MIN_BATCH_LENGTH}")]
    LengthTooSmall(i32),
    #[error("batch of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("unsupported magic byte {0} (only v2 record batches are supported)")]
    BadMagic(i8),
    #[error("CRC-32C mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("negative lastOffsetDelta {0}")]
    NegativeOffsetDelta(i32),
    #[error("negative base offset {0}")]
    NegativeBaseOffset(i64),
    #[error("malformed records: {0}")]
    Malformed(String),
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_u32(b: &[u8], at: usize) -> u32 {
    be_i32(b, at) as u32
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

/// The fields of a batch header that the log needs to place a batch, read from as few as the
/// first [`BatchHeader::PREFIX_LEN`] bytes. Used when scanning a segment without reading whole
/// batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub last_offset_delta: i32,
}

impl BatchHeader {
    /// Bytes needed to read a [`BatchHeader`]: up to and including `lastOffsetDelta`.
    pub const PREFIX_LEN: usize = OFF_LAST_OFFSET_DELTA + 4;

    /// Reads the prefix of a batch. Checks the structural bounds that need no CRC: magic, a
    /// batch length of at least a header and at most `max_batch_bytes`, a non-negative offset
    /// delta. The CRC is checked by [`RecordBatch::parse`].
    pub fn parse(prefix: &[u8], max_batch_bytes: usize) -> Result<BatchHeader, BatchError> {
        if prefix.len() < Self::PREFIX_LEN {
            return Err(BatchError::Truncated {
                needed: Self::PREFIX_LEN,
                available: prefix.len(),
            });
        }
        let batch_length = be_i32(prefix, OFF_BATCH_LENGTH);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::LengthTooSmall(batch_length));
        }
        let size = LOG_OVERHEAD + batch_length as usize;
        if size > max_batch_bytes {
            return Err(BatchError::TooLarge {
                size,
                limit: max_batch_bytes,
            });
        }
        let magic = prefix[OFF_MAGIC] as i8;
        if magic != MAGIC_V2 {
            return Err(BatchError::BadMagic(magic));
        }
        let base_offset = be_i64(prefix, OFF_BASE_OFFSET);
        if base_offset < 0 {
            return Err(BatchError::NegativeBaseOffset(base_offset));
        }
        let last_offset_delta = be_i32(prefix, OFF_LAST_OFFSET_DELTA);
        if last_offset_delta < 0 {
            return Err(BatchError::NegativeOffsetDelta(last_offset_delta));
        }
        Ok(BatchHeader {
            base_offset,
            batch_length,
            last_offset_delta,
        })
    }

    /// Total size of the batch in bytes, `batchLength` plus the 12 bytes before it.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

/// A validated v2 record batch borrowed from a buffer.
#[derive(Debug, Clone, Copy)]
pub struct RecordBatch<'a> {
    bytes: &'a [u8],
}

impl<'a> RecordBatch<'a> {
    /// Validates the batch at the start of `buf` (header bounds and CRC-32C) and returns it and
    /// the bytes after it. Never reads past `buf` and never allocates.
    pub fn parse(
        buf: &'a [u8],
        max_batch_bytes: usize,
    ) -> Result<(RecordBatch<'a>, &'a [u8]), BatchError> {
        let header = BatchHeader::parse(buf, max_batch_bytes)?;
        let size = header.size();
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let (bytes, rest) = buf.split_at(size);
        let stored = be_u32(bytes, OFF_CRC);
        let computed = crc32c::crc32c(&bytes[OFF_ATTRIBUTES..]);
        if stored != computed {
            return Err(BatchError::BadCrc { stored, computed });
        }
        Ok((RecordBatch { bytes }, rest))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, OFF_BASE_OFFSET)
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, OFF_LAST_OFFSET_DELTA)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + i64::from(self.last_offset_delta())
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, OFF_LEADER_EPOCH)
    }
    pub fn crc(&self) -> u32 {
        be_u32(self.bytes, OFF_CRC)
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, OFF_ATTRIBUTES)
    }
    /// Compression codec: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn compression(&self) -> u8 {
        (self.attributes() & 0x07) as u8
    }
    /// Whether timestamps are LogAppendTime (attribute bit 3) rather than CreateTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & 0x08 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFF_BASE_TIMESTAMP)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, OFF_MAX_TIMESTAMP)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, OFF_PRODUCER_ID)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, OFF_PRODUCER_EPOCH)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, OFF_BASE_SEQUENCE)
    }
    pub fn records_count(&self) -> i32 {
        be_i32(self.bytes, OFF_RECORDS_COUNT)
    }
}

/// What idempotence needs of a batch header, read without validation from at least its first
/// 61 bytes (for batches validated when written): (base offset, last offset delta, producer id,
/// producer epoch, base sequence, is transactional or control).
pub fn producer_fields_of_header(header: &[u8]) -> Option<(i64, i32, i64, i16, i32, bool)> {
    (header.len() >= HEADER_LEN).then(|| {
        let attributes = be_i16(header, OFF_ATTRIBUTES);
        (
            be_i64(header, OFF_BASE_OFFSET),
            be_i32(header, OFF_LAST_OFFSET_DELTA),
            be_i64(header, OFF_PRODUCER_ID),
            be_i16(header, OFF_PRODUCER_EPOCH),
            be_i32(header, OFF_BASE_SEQUENCE),
            attributes & 0x30 != 0,
        )
    })
}

/// The maxTimestamp field of a batch header, from at least its first 43 bytes. No validation:
/// for reading back headers of batches that were validated when written.
pub fn max_timestamp_of_header(header: &[u8]) -> Option<i64> {
    (header.len() >= OFF_MAX_TIMESTAMP + 8).then(|| be_i64(header, OFF_MAX_TIMESTAMP))
}

/// Rewrites the base offset of the batch at the start of `batch`: how the log assigns offsets.
/// The CRC does not cover this field, so it stays valid. `batch` must hold at least 8 bytes
/// (callers pass a batch that [`RecordBatch::parse`] accepted).
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets maxTimestamp (the broker does this for LogAppendTime batches) and recomputes the CRC,
/// which covers it. `batch` must be a whole batch that [`RecordBatch::parse`] accepted.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_ms: i64) {
    batch[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the partition leader epoch, which the CRC does not cover either.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks a batch as a control batch (attributes bit 5) and recomputes the CRC, which covers
/// the attributes. `batch` must be a whole batch, such as [`encode_batch`] makes.
pub fn set_control(batch: &mut [u8]) {
    let attributes = i16::from_be_bytes([batch[OFF_ATTRIBUTES], batch[OFF_ATTRIBUTES + 1]]) | 0x20;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Makes a batch an idempotent producer's (id, epoch, base sequence) and fixes its CRC: what
/// the simulator's producers send. The caller passes a whole batch header.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    batch[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2]
        .copy_from_slice(&producer_epoch.to_be_bytes());
    batch[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&batch[OFF_ATTRIBUTES..]);
    batch[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Makes a batch transactional (attributes bit 4) for `producer_id` at `producer_epoch`, base
/// sequence -1 (no sequence: how Kafka's group coordinator writes transactional offset
/// commits), and fixes its CRC. `batch` must be a whole batch, such as [`encode_batch`] makes.
pub fn set_transactional_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16) {
    let attributes = i16::from_be_bytes([batch[OFF_ATTRIBUTES], batch[OFF_ATTRIBUTES + 1]]) | 0x10;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    set_producer(batch, producer_id, producer_epoch, -1);
}

/// A transaction marker (KIP-98 control batch, transactional and control attributes): one
/// record whose key is (version 0, type: 0 abort, 1 commit) and whose value is (version 0,
/// coordinator epoch), for `producer_id` at `producer_epoch`, base sequence -1.
pub fn marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    timestamp_ms: i64,
) -> Vec<u8> {
    let key = [0u8, 0, 0, u8::from(commit)];
    let mut value = vec![0u8, 0];
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut batch = encode_batch(0, timestamp_ms, &[(Some(&key), Some(&value))]);
    let attributes: i16 = 0x30;
    batch[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    set_producer(&mut batch, producer_id, producer_epoch, -1);
    batch
}

/// A transaction marker's (commit, coordinator epoch), or `None` if `batch` is no marker (not
/// a control batch, or another control type, or malformed).
pub fn marker_of(batch: &RecordBatch<'_>) -> Option<(bool, i32)> {
    if !batch.is_control() {
        return None;
    }
    let list = records(batch).ok()?;
    let record = list.first()?;
    let key = record.key?;
    let commit = match key.get(..4)? {
        [0, 0, 0, 0] => false,
        [0, 0, 0, 1] => true,
        _ => return None,
    };
    let epoch = record
        .value
        .and_then(|v| v.get(2..6))
        .map_or(-1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    Some((commit, epoch))
}

/// Builds a v2 batch byte by byte from the specification: the fields given, uncompressed
/// records each with the given key and value and no headers. Used by tests, the simulator and
/// benchmarks.
pub fn build_batch(
    base_offset: i64,
    base_timestamp_ms: i64,
    records: &[(Option<&[u8]>, &[u8])],
) -> Vec<u8> {
    let records: Vec<RecordRef<'_>> = records.iter().map(|(k, v)| (*k, Some(*v))).collect();
    encode_batch(base_offset, base_timestamp_ms, &records)
}

/// A record to encode: its key and value (`None`: null).
pub type RecordRef<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Encodes an uncompressed v2 batch of `(key, value)` records (a `None` value is a tombstone),
/// all with timestamp `timestamp_ms`, no producer and no headers: what the broker writes to its
/// own internal topics (`__consumer_offsets`).
pub fn encode_batch(base_offset: i64, timestamp_ms: i64, records: &[RecordRef<'_>]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = Vec::new();
        rec.push(0u8); // attributes
        put_varlong(&mut rec, 0); // timestampDelta
        put_varlong(&mut rec, i as i64); // offsetDelta
        for field in [key, value] {
            match field {
                Some(bytes) => {
                    put_varlong(&mut rec, bytes.len() as i64);
                    rec.extend_from_slice(bytes);
                }
                None => put_varlong(&mut rec, -1),
            }
        }
        put_varlong(&mut rec, 0); // headers count
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let count = records.len() as i32;
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partitionLeaderEpoch
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&(count - 1).max(0).to_be_bytes()); // lastOffsetDelta
    b.extend_from_slice(&timestamp_ms.to_be_bytes());
    b.extend_from_slice(&timestamp_ms.to_be_bytes()); // maxTimestamp
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producerId
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producerEpoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // baseSequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(&body);
    let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// One record of an uncompressed batch, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    pub offset_delta: i64,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
}

/// The records of an uncompressed batch. Only for the few places that must look inside a batch
/// (the metadata log's entries, ListOffsets by timestamp); never on the produce or fetch path.
/// Every length is checked against what is left, so a lying batch gives an error, not a panic or
/// a large allocation.
pub fn records<'a>(batch: &RecordBatch<'a>) -> Result<Vec<Record<'a>>, BatchError> {
    let bad = |what: &str| BatchError::Malformed(what.to_string());
    if batch.compression() != 0 {
        return Err(bad("compressed batch"));
    }
    let mut rest = &batch.as_bytes()[HEADER_LEN..];
    let count = usize::try_from(batch.records_count()).map_err(|_| bad("negative record count"))?;
    // Each record takes at least 7 bytes, which bounds the count before anything is allocated.
    if count > rest.len() / 7 + 1 {
        return Err(bad("record count larger than the batch"));
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len =
            usize::try_from(get_varlong(&mut rest)?).map_err(|_| bad("negative record length"))?;
        if len > rest.len() {
            return Err(bad("record longer than the batch"));
        }
        let (mut rec, tail) = rest.split_at(len);
        rest = tail;
        let _attributes = get_bytes(&mut rec, 1)?;
        let timestamp_delta = get_varlong(&mut rec)?;
        let offset_delta = get_varlong(&mut rec)?;
        let key = get_nullable(&mut rec)?;
        let value = get_nullable(&mut rec)?;
        out.push(Record {
            offset_delta,
            timestamp_delta,
            key,
            value,
        });
    }
    Ok(out)
}

fn get_bytes<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], BatchError> {
    if buf.len() < n {
        return Err(BatchError::Malformed("record truncated".into()));
    }
    let (head, tail) = buf.split_at(n);
    *buf = tail;
    Ok(head)
}

fn get_nullable<'a>(buf: &mut &'a [u8]) -> Result<Option<&'a [u8]>, BatchError> {
    let len = get_varlong(buf)?;
    if len < 0 {
        return Ok(None);
    }
    let n = usize::try_from(len).map_err(|_| BatchError::Malformed("length too large".into()))?;
    get_bytes(buf, n).map(Some)
}

fn get_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let mut z: u64 = 0;
    for i in 0..10 {
        let [b, rest @ ..] = *buf else {
            return Err(BatchError::Malformed("varint truncated".into()));
        };
        *buf = rest;
        z |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
    }
    Err(BatchError::Malformed("varint longer than 10 bytes".into()))
}

fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub mod decoded;

#[cfg(test)]
mod tests;
