//! A record batch decoded in full: header fields and every record, decompressed with any of
//! Kafka's four codecs, and encoded back. Only the log cleaner needs this (it rewrites batches
//! whose records it drops); produce, fetch and replication never decode records.
//!
//! Decoding never trusts a length: every count and size is checked against what is left, and
//! decompression stops at [`MAX_DECOMPRESSED_BYTES`], so a batch that lies gives an error, not a
//! panic or an unbounded allocation.

use super::{
    be_i16, be_i32, be_i64, get_nullable, get_varlong, put_varlong, BatchError, RecordBatch,
    HEADER_LEN, LOG_OVERHEAD, MAGIC_V2, OFF_ATTRIBUTES, OFF_CRC,
};
use std::io::{Read, Write};

/// The most a batch may decompress to. Kafka bounds batches by `max.message.bytes` compressed
/// (1 MiB by default); a ratio far beyond any real codec's marks a decompression bomb.
pub const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// zstd's largest window accepted (2^25 = 32 MiB): clients' levels use far less (level 3,
/// their default, 2 MiB), and a frame claiming more would make the decoder allocate it.
const ZSTD_WINDOW_LOG_MAX: u32 = 25;

/// `attributes` bits (Kafka's `DefaultRecordBatch`).
pub const COMPRESSION_MASK: i16 = 0x07;
pub const TRANSACTIONAL_FLAG: i16 = 0x10;
pub const CONTROL_FLAG: i16 = 0x20;
/// KIP-534: the batch's `baseTimestamp` is its delete horizon, the time after which the
/// cleaner may remove its tombstones.
pub const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Kafka's codec ids.
pub const NONE: u8 = 0;
pub const GZIP: u8 = 1;
pub const SNAPPY: u8 = 2;
pub const LZ4: u8 = 3;
pub const ZSTD: u8 = 4;

/// xerial snappy-java's stream header: what Kafka's Java clients write and read.
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

/// One record, owned, with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// The record's headers exactly as encoded (count, then each key and value).
    pub headers_raw: Vec<u8>,
}

/// A batch's header fields and records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: Vec<OwnedRecord>,
}

impl DecodedBatch {
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }
    /// The delete horizon (KIP-534), if the cleaner has set one.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_FLAG != 0).then_some(self.base_timestamp_ms)
    }
}

fn bad(what: impl Into<String>) -> BatchError {
    BatchError::Malformed(what.into())
}

/// Decodes a validated batch (CRC checked by [`RecordBatch::parse`]).
pub fn decode(batch: &RecordBatch<'_>) -> Result<DecodedBatch, BatchError> {
    let bytes = batch.as_bytes();
    let attributes = batch.attributes();
    let base_offset = batch.base_offset();
    let base_timestamp_ms = batch.base_timestamp();
    let body = &bytes[HEADER_LEN..];
    let plain = decompress((attributes & COMPRESSION_MASK) as u8, body)?;
    let mut rest: &[u8] = plain.as_deref().unwrap_or(body);
    let count = usize::try_from(batch.records_count()).map_err(|_| bad("negative record count"))?;
    // Each record takes at least 7 bytes, which bounds the count before anything is allocated.
    if count > rest.len() / 7 + 1 {
        return Err(bad("record count larger than the batch"));
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let len =
            usize::try_from(get_varlong(&mut rest)?).map_err(|_| bad("negative record length"))?;
        if len > rest.len() {
            return Err(bad("record longer than the batch"));
        }
        let (mut rec, tail) = rest.split_at(len);
        rest = tail;
        if rec.is_empty() {
            return Err(bad("empty record"));
        }
        rec = &rec[1..]; // attributes: unused in v2
        let timestamp_delta = get_varlong(&mut rec)?;
        let offset_delta = get_varlong(&mut rec)?;
        let key = get_nullable(&mut rec)?.map(<[u8]>::to_vec);
        let value = get_nullable(&mut rec)?.map(<[u8]>::to_vec);
        check_headers(rec)?;
        records.push(OwnedRecord {
            offset: base_offset
                .checked_add(offset_delta)
                .ok_or_else(|| bad("offset overflows"))?,
            timestamp_ms: base_timestamp_ms.wrapping_add(timestamp_delta),
            key,
            value,
            headers_raw: rec.to_vec(),
        });
    }
    if !rest.is_empty() {
        return Err(bad("bytes after the last record"));
    }
    Ok(DecodedBatch {
        base_offset,
        partition_leader_epoch: batch.partition_leader_epoch(),
        attributes,
        last_offset_delta: batch.last_offset_delta(),
        base_timestamp_ms,
        max_timestamp_ms: batch.max_timestamp(),
        producer_id: batch.producer_id(),
        producer_epoch: batch.producer_epoch(),
        base_sequence: batch.base_sequence(),
        records,
    })
}

/// The headers must be exactly what is left of the record: a count, then each header's key
/// (non-null) and value (nullable).
fn check_headers(mut rec: &[u8]) -> Result<(), BatchError> {
    let count = get_varlong(&mut rec)?;
    if count < 0 || count as usize > rec.len() {
        return Err(bad("bad header count"));
    }
    for _ in 0..count {
        if get_nullable(&mut rec)?.is_none() {
            return Err(bad("null header key"));
        }
        get_nullable(&mut rec)?;
    }
    if !rec.is_empty() {
        return Err(bad("bytes after the record's headers"));
    }
    Ok(())
}

/// Encodes `b` as a v2 batch: the records' offsets and timestamps are written as deltas from
/// `base_offset` and `base_timestamp_ms`, the body compressed with the codec its attributes
/// name, and the CRC computed. `records_count` is the number of records, which may be zero (an
/// empty batch keeps a producer's last sequence, as Kafka's cleaner keeps it).
pub fn encode(b: &DecodedBatch) -> Result<Vec<u8>, BatchError> {
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for r in &b.records {
        rec.clear();
        rec.push(0u8);
        put_varlong(&mut rec, r.timestamp_ms.wrapping_sub(b.base_timestamp_ms));
        put_varlong(&mut rec, r.offset - b.base_offset);
        for field in [&r.key, &r.value] {
            match field {
                Some(bytes) => {
                    put_varlong(&mut rec, bytes.len() as i64);
                    rec.extend_from_slice(bytes);
                }
                None => put_varlong(&mut rec, -1),
            }
        }
        rec.extend_from_slice(&r.headers_raw);
        put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let body = compress(b.compression(), &body)?;
    let count = i32::try_from(b.records.len()).map_err(|_| bad("too many records"))?;
    let length = i32::try_from(HEADER_LEN - LOG_OVERHEAD + body.len())
        .map_err(|_| bad("batch too large"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&b.base_offset.to_be_bytes());
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&b.partition_leader_epoch.to_be_bytes());
    out.push(MAGIC_V2 as u8);
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&b.attributes.to_be_bytes());
    out.extend_from_slice(&b.last_offset_delta.to_be_bytes());
    out.extend_from_slice(&b.base_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&b.max_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&b.producer_id.to_be_bytes());
    out.extend_from_slice(&b.producer_epoch.to_be_bytes());
    out.extend_from_slice(&b.base_sequence.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&body);
    let crc = crc32c::crc32c(&out[OFF_ATTRIBUTES..]);
    out[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    debug_assert_eq!(be_i32(&out, 8) as usize + LOG_OVERHEAD, out.len());
    debug_assert_eq!(be_i16(&out, OFF_ATTRIBUTES), b.attributes);
    debug_assert_eq!(be_i64(&out, 0), b.base_offset);
    Ok(out)
}

/// Reads at most [`MAX_DECOMPRESSED_BYTES`] from `r`, failing if there is more.
fn read_bounded(r: impl Read, codec: &str) -> Result<Vec<u8>, BatchError> {
    let mut out = Vec::new();
    r.take(MAX_DECOMPRESSED_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| bad(format!("{codec}: {e}")))?;
    if out.len() > MAX_DECOMPRESSED_BYTES {
        return Err(bad(format!("{codec}: decompresses past the limit")));
    }
    Ok(out)
}

/// The records section decompressed, or `None` when it is not compressed.
fn decompress(codec: u8, body: &[u8]) -> Result<Option<Vec<u8>>, BatchError> {
    Ok(Some(match codec {
        NONE => return Ok(None),
        GZIP => read_bounded(flate2::read::GzDecoder::new(body), "gzip")?,
        SNAPPY => snappy_decompress(body)?,
        LZ4 => read_bounded(lz4_flex::frame::FrameDecoder::new(body), "lz4")?,
        ZSTD => {
            let mut d =
                zstd::stream::read::Decoder::new(body).map_err(|e| bad(format!("zstd: {e}")))?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|e| bad(format!("zstd: {e}")))?;
            read_bounded(d, "zstd")?
        }
        other => return Err(bad(format!("unknown compression codec {other}"))),
    }))
}

fn snappy_raw(block: &[u8]) -> Result<Vec<u8>, BatchError> {
    let len = snap::raw::decompress_len(block).map_err(|e| bad(format!("snappy: {e}")))?;
    if len > MAX_DECOMPRESSED_BYTES {
        return Err(bad("snappy: decompresses past the limit"));
    }
    snap::raw::Decoder::new()
        .decompress_vec(block)
        .map_err(|e| bad(format!("snappy: {e}")))
}

/// Snappy as Kafka clients write it: xerial's framing (Java, kafka-python) or one raw block
/// (librdkafka may write either).
fn snappy_decompress(body: &[u8]) -> Result<Vec<u8>, BatchError> {
    let Some(mut rest) = body.strip_prefix(XERIAL_MAGIC) else {
        return snappy_raw(body);
    };
    // Version and compatible version, then (length, block) pairs.
    if rest.len() < 8 {
        return Err(bad("snappy: truncated xerial header"));
    }
    rest = &rest[8..];
    let mut out = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(bad("snappy: truncated block length"));
        }
        let n = be_i32(rest, 0);
        let n = usize::try_from(n).map_err(|_| bad("snappy: negative block length"))?;
        rest = &rest[4..];
        if n > rest.len() {
            return Err(bad("snappy: block longer than the batch"));
        }
        out.extend_from_slice(&snappy_raw(&rest[..n])?);
        if out.len() > MAX_DECOMPRESSED_BYTES {
            return Err(bad("snappy: decompresses past the limit"));
        }
        rest = &rest[n..];
    }
    Ok(out)
}

fn compress(codec: u8, plain: &[u8]) -> Result<Vec<u8>, BatchError> {
    let io = |codec: &str, e: std::io::Error| bad(format!("{codec}: {e}"));
    Ok(match codec {
        NONE => plain.to_vec(),
        GZIP => {
            let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            w.write_all(plain).map_err(|e| io("gzip", e))?;
            w.finish().map_err(|e| io("gzip", e))?
        }
        SNAPPY => {
            // xerial framing, as Kafka's Java producer writes it: every client reads it.
            let mut out = XERIAL_MAGIC.to_vec();
            out.extend_from_slice(&1i32.to_be_bytes());
            out.extend_from_slice(&1i32.to_be_bytes());
            let mut enc = snap::raw::Encoder::new();
            for chunk in plain.chunks(XERIAL_BLOCK_BYTES) {
                let block = enc
                    .compress_vec(chunk)
                    .map_err(|e| bad(format!("snappy: {e}")))?;
                out.extend_from_slice(&(block.len() as i32).to_be_bytes());
                out.extend_from_slice(&block);
            }
            out
        }
        LZ4 => {
            // Kafka's reader takes only independent blocks without a content size.
            let mut info = lz4_flex::frame::FrameInfo::new();
            info.block_mode = lz4_flex::frame::BlockMode::Independent;
            info.block_size = lz4_flex::frame::BlockSize::Max64KB;
            let mut w = lz4_flex::frame::FrameEncoder::with_frame_info(info, Vec::new());
            w.write_all(plain).map_err(|e| io("lz4", e))?;
            w.finish().map_err(|e| bad(format!("lz4: {e}")))?
        }
        ZSTD => zstd::stream::encode_all(plain, 3).map_err(|e| io("zstd", e))?,
        other => return Err(bad(format!("unknown compression codec {other}"))),
    })
}
