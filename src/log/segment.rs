//! One segment of a partition log: `<base offset>.log` holding record batches back to back, plus
//! its `.index` and `.timeindex`. Knows how to append, find, read, truncate and recover itself;
//! knows nothing of other segments, flush policy or retention.

use super::index::{OffsetEntry, SparseIndex, TimeEntry};
use super::txn_index::{AbortedTxn, TxnIndex};
use super::LogError;
use crate::protocol::record_batch::{
    max_timestamp_of_header, BatchHeader, RecordBatch, HEADER_LEN, LOG_OVERHEAD,
};
use crate::runtime::{Disk, DiskFile};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Identities for segments: a segment gets a new one whenever its bytes change other than by
/// an append (created, opened, truncated), so the cleaner can tell that a segment it read is
/// still the one in the log before it swaps in the cleaned copy.
static SEGMENT_IDS: AtomicU64 = AtomicU64::new(1);

fn next_segment_id() -> u64 {
    SEGMENT_IDS.fetch_add(1, Ordering::Relaxed)
}

/// How many more times recovery reads a batch that fails its checks before believing it.
const REREADS_ON_FAILURE: usize = 2;

/// How many bytes recovery reads at a time.
const SCAN_CHUNK_BYTES: usize = 1 << 20;

pub(crate) fn file_name(base_offset: u64, suffix: &str) -> String {
    format!("{base_offset:020}.{suffix}")
}

/// Parses `<20 digits>.log` into its base offset.
pub(crate) fn parse_log_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: u64,
    path: PathBuf,
    log: Arc<dyn DiskFile>,
    index: SparseIndex<OffsetEntry>,
    time_index: SparseIndex<TimeEntry>,
    /// The transactions aborted by markers in this segment (`.txnindex`).
    txn_index: TxnIndex,
    /// Bytes of valid batches; the file is never longer once recovery or an append completes.
    size_bytes: u64,
    /// One past the last offset in the segment (`base_offset` when empty).
    next_offset: u64,
    bytes_since_index_entry: u64,
    /// Largest batch max-timestamp in the segment, -1 when none.
    max_timestamp_ms: i64,
    /// Last offset of the batch that carried `max_timestamp_ms`.
    offset_of_max_timestamp: u64,
    /// Max timestamp of the first batch: what `segment.ms` counts from (Kafka's
    /// `rollingBasedTimestamp`). `None` while the segment is empty.
    first_batch_timestamp_ms: Option<i64>,
    /// Whether the log file has writes not yet synced.
    unsynced: bool,
    index_interval_bytes: u64,
    max_batch_bytes: usize,
    /// Whether a batch may start past the offset the one before it ended at (see
    /// [`super::LogConfig::offset_gaps_allowed`]).
    gaps_allowed: bool,
    id: u64,
}

/// What a scan of a segment's bytes found.
struct Scan {
    /// Position just past the last valid batch.
    valid_end: u64,
    next_offset: u64,
    /// Why scanning stopped before the end of the file, if it did.
    stop: Option<String>,
}

impl Segment {
    fn paths(dir: &Path, base_offset: u64) -> [PathBuf; 4] {
        Self::paths_with(dir, base_offset, "")
    }

    /// The segment's four files with `suffix` after each name (the cleaner's `.cleaned` and
    /// `.swap`): log, offset index, time index, aborted-transaction index (which exists only
    /// once the segment has an entry).
    pub fn paths_with(dir: &Path, base_offset: u64, suffix: &str) -> [PathBuf; 4] {
        [
            dir.join(format!("{}{suffix}", file_name(base_offset, "log"))),
            dir.join(format!("{}{suffix}", file_name(base_offset, "index"))),
            dir.join(format!("{}{suffix}", file_name(base_offset, "timeindex"))),
            dir.join(format!("{}{suffix}", file_name(base_offset, "txnindex"))),
        ]
    }

    /// Creates an empty segment starting at `base_offset`, replacing any stale files.
    pub fn create(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: u64,
        index_interval_bytes: u64,
        max_batch_bytes: usize,
        gaps_allowed: bool,
    ) -> Result<Segment, LogError> {
        Self::create_with(
            disk,
            dir,
            base_offset,
            "",
            index_interval_bytes,
            max_batch_bytes,
            gaps_allowed,
        )
    }

    /// [`Segment::create`] under names with `suffix` (the cleaner writes `.cleaned` files).
    pub fn create_with(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: u64,
        suffix: &str,
        index_interval_bytes: u64,
        max_batch_bytes: usize,
        gaps_allowed: bool,
    ) -> Result<Segment, LogError> {
        let [log_path, index_path, time_path, txn_path] =
            Self::paths_with(dir, base_offset, suffix);
        // A stale aborted-transaction index of an earlier segment at this base must not
        // reappear under the new one.
        if disk.exists(&txn_path) {
            disk.remove(&txn_path)
                .map_err(|e| LogError::io(&txn_path, e))?;
        }
        let open_fresh = |p: &Path| -> Result<Arc<dyn DiskFile>, LogError> {
            let f = disk.open_or_create(p).map_err(|e| LogError::io(p, e))?;
            f.truncate(0).map_err(|e| LogError::io(p, e))?;
            Ok(f)
        };
        let log = open_fresh(&log_path)?;
        let index = SparseIndex::empty(open_fresh(&index_path)?)
            .map_err(|e| LogError::io(&index_path, e))?;
        let time_index =
            SparseIndex::empty(open_fresh(&time_path)?).map_err(|e| LogError::io(&time_path, e))?;
        Ok(Segment {
            base_offset,
            path: log_path,
            log,
            index,
            time_index,
            txn_index: TxnIndex::empty(txn_path),
            size_bytes: 0,
            next_offset: base_offset,
            bytes_since_index_entry: 0,
            max_timestamp_ms: -1,
            offset_of_max_timestamp: base_offset,
            first_batch_timestamp_ms: None,
            unsynced: true,
            index_interval_bytes,
            max_batch_bytes,
            gaps_allowed,
            id: next_segment_id(),
        })
    }

    /// The segment's files were renamed to their final names (the cleaner's swap).
    pub fn set_final_path(&mut self, dir: &Path) {
        self.path = dir.join(file_name(self.base_offset, "log"));
        self.txn_index
            .set_path(dir.join(file_name(self.base_offset, "txnindex")));
    }

    /// The transactions aborted by markers in this segment.
    pub fn aborted(&self) -> &[AbortedTxn] {
        self.txn_index.entries()
    }

    /// Adds to `out` the entries whose marker is at or after `from` and whose records begin
    /// before `to`.
    pub fn collect_aborted(&self, from: i64, to: i64, out: &mut Vec<AbortedTxn>) {
        self.txn_index.collect(from, to, out);
    }

    /// Records a transaction aborted by a marker in this segment; it reaches the file at the
    /// next [`Segment::sync`].
    pub fn push_aborted(&mut self, entry: AbortedTxn) {
        assert!(
            entry.last_offset >= self.base_offset as i64
                && entry.last_offset < self.next_offset as i64,
            "abort marker {entry:?} outside segment {}..{}",
            self.base_offset,
            self.next_offset
        );
        self.txn_index.push(entry);
    }

    /// Drops, durably, the aborted transactions whose marker is at or after `offset`.
    pub fn truncate_aborted_from(&mut self, offset: u64) -> Result<(), LogError> {
        self.txn_index
            .truncate_from(offset as i64)
            .map_err(|e| LogError::io(self.txn_index.path(), e))
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The log file, for the cleaner's reads outside the log's lock: a segment below the
    /// active one changes only by truncation, which gives it a new [`Segment::id`].
    pub fn log_file(&self) -> Arc<dyn DiskFile> {
        Arc::clone(&self.log)
    }

    /// Whether a batch starting at `base` may follow one that ended just below `expected`.
    fn follows(&self, base: u64, expected: u64) -> bool {
        if self.gaps_allowed {
            base >= expected
        } else {
            base == expected
        }
    }

    /// Opens an existing segment. Data below `recovery_point` was fsynced and is trusted; from
    /// the last index entry below it onwards the segment is scanned, every batch's CRC checked,
    /// indexes rebuilt, and the file cut at the first invalid or torn batch. An invalid batch in
    /// the fsynced region is not a torn write but corruption: re-read once (a flipped bit on the
    /// way in), and if it persists, refuse to open rather than silently drop acknowledged data.
    ///
    /// `expected_base` is the first offset this segment must start at, if known (the end of the
    /// previous segment). Returns the segment and a description of any truncation.
    pub fn open(
        disk: &dyn Disk,
        dir: &Path,
        base_offset: u64,
        recovery_point: u64,
        index_interval_bytes: u64,
        max_batch_bytes: usize,
        gaps_allowed: bool,
    ) -> Result<(Segment, Option<String>), LogError> {
        let [log_path, index_path, time_path, txn_path] = Self::paths(dir, base_offset);
        let log = disk
            .open(&log_path)
            .map_err(|e| LogError::io(&log_path, e))?;
        let file_len = log.len().map_err(|e| LogError::io(&log_path, e))?;
        let trusted_end = recovery_point.saturating_sub(base_offset);
        let open_index = |p: &Path| disk.open_or_create(p).map_err(|e| LogError::io(p, e));
        // Keep index entries that are below the recovery point and inside the file.
        let (index, _) = SparseIndex::<OffsetEntry>::load(open_index(&index_path)?, |e| {
            u64::from(e.relative_offset) < trusted_end && u64::from(e.position) < file_len
        })
        .map_err(|e| LogError::io(&index_path, e))?;
        let (mut time_index, _) = SparseIndex::<TimeEntry>::load(open_index(&time_path)?, |e| {
            u64::from(e.relative_offset) < trusted_end
        })
        .map_err(|e| LogError::io(&time_path, e))?;
        // The time index must not point past what the offset index vouches for.
        let offset_limit = index.last().map_or(0, |e| e.relative_offset);
        time_index
            .truncate_from(offset_limit.saturating_add(1))
            .map_err(|e| LogError::io(&time_path, e))?;
        if index.last().is_none() {
            time_index
                .truncate_from(0)
                .map_err(|e| LogError::io(&time_path, e))?;
        }
        let (max_timestamp_ms, offset_of_max_timestamp) = match time_index.last() {
            Some(t) => (t.timestamp_ms, base_offset + u64::from(t.relative_offset)),
            None => (-1, base_offset),
        };
        let mut segment = Segment {
            base_offset,
            path: log_path.clone(),
            log,
            index,
            time_index,
            txn_index: TxnIndex::empty(txn_path.clone()),
            size_bytes: 0,
            next_offset: base_offset,
            bytes_since_index_entry: 0,
            max_timestamp_ms,
            offset_of_max_timestamp,
            first_batch_timestamp_ms: None,
            unsynced: false,
            index_interval_bytes,
            max_batch_bytes,
            gaps_allowed,
            id: next_segment_id(),
        };
        // Resume the scan at the batch the last trusted index entry points at.
        let (start_position, start_offset) = match segment.index.last() {
            Some(e) => {
                let header = segment.read_header(u64::from(e.position))?;
                let expected_last = base_offset + u64::from(e.relative_offset);
                if header.as_ref().map(|h| h.last_offset() as u64) != Some(expected_last) {
                    // The index disagrees with the data: distrust it and scan the whole segment.
                    segment.index = SparseIndex::empty(open_index(&index_path)?)
                        .map_err(|e| LogError::io(&index_path, e))?;
                    segment.time_index = SparseIndex::empty(open_index(&time_path)?)
                        .map_err(|e| LogError::io(&time_path, e))?;
                    segment.max_timestamp_ms = -1;
                    (0, base_offset)
                } else {
                    // The scan starts at this very batch, so the entry stays and the bytes until
                    // the next entry count from here.
                    let first = header.map_or(base_offset, |h| h.base_offset as u64);
                    (u64::from(e.position), first)
                }
            }
            None => (0, base_offset),
        };
        let scan = segment.scan_from(start_position, start_offset, recovery_point, file_len)?;
        segment.size_bytes = scan.valid_end;
        segment.next_offset = scan.next_offset;
        let mut truncated = None;
        if scan.valid_end < file_len {
            let reason = scan.stop.unwrap_or_else(|| "trailing bytes".to_string());
            truncated = Some(format!(
                "{}: truncated {} bytes at position {} (offset {}): {}",
                log_path.display(),
                file_len - scan.valid_end,
                scan.valid_end,
                scan.next_offset,
                reason
            ));
            segment
                .log
                .truncate(scan.valid_end)
                .map_err(|e| LogError::io(&log_path, e))?;
            segment.log.sync().map_err(|e| LogError::io(&log_path, e))?;
        }
        segment.first_batch_timestamp_ms = segment.read_first_timestamp()?;
        let (txn_index, txn_note) =
            TxnIndex::load(disk, txn_path.clone(), base_offset, segment.next_offset)
                .map_err(|e| LogError::io(&txn_path, e))?;
        segment.txn_index = txn_index;
        // A cut aborted-transaction index is not a cut log: the broker rebuilds the entries
        // it needs from its producer snapshot on.
        if let Some(n) = txn_note {
            tracing::warn!("{n}");
        }
        Ok((segment, truncated))
    }

    /// Max timestamp of the segment's first batch, read from its header.
    fn read_first_timestamp(&self) -> Result<Option<i64>, LogError> {
        if self.size_bytes == 0 {
            return Ok(None);
        }
        let header = self.read_chunk(0, HEADER_LEN)?;
        Ok(max_timestamp_of_header(&header))
    }

    /// Reads the batch header at `position`, or `None` if there is no well-formed one.
    fn read_header(&self, position: u64) -> Result<Option<BatchHeader>, LogError> {
        let mut buf = [0u8; BatchHeader::PREFIX_LEN];
        let n = self
            .log
            .read_at(&mut buf, position)
            .map_err(|e| LogError::io(&self.path, e))?;
        if n < buf.len() {
            return Ok(None);
        }
        Ok(BatchHeader::parse(&buf, self.max_batch_bytes).ok())
    }

    /// Scans batches from `position` (where a batch starting at `offset` or later is expected)
    /// to `file_len`, validating each and rebuilding index entries. See [`Segment::open`].
    fn scan_from(
        &mut self,
        mut position: u64,
        mut next_offset: u64,
        recovery_point: u64,
        file_len: u64,
    ) -> Result<Scan, LogError> {
        let mut chunk: Vec<u8> = Vec::new();
        let mut chunk_start = position;
        // A scan from the segment's start must find its base offset first; one that resumes at an
        // index entry starts at a batch whose base is not recorded anywhere.
        let mut first = position > 0;
        while position < file_len {
            // Make sure the chunk holds the next batch's header, then the whole batch.
            let mut in_chunk = (position - chunk_start) as usize;
            if chunk.len() < in_chunk + BatchHeader::PREFIX_LEN {
                chunk = self.read_chunk(
                    position,
                    (file_len - position).min(SCAN_CHUNK_BYTES as u64) as usize,
                )?;
                chunk_start = position;
                in_chunk = 0;
            }
            if let Ok(h) = BatchHeader::parse(&chunk[in_chunk..], self.max_batch_bytes) {
                if chunk.len() < in_chunk + h.size() && position + (h.size() as u64) <= file_len {
                    let want = (file_len - position).min(SCAN_CHUNK_BYTES.max(h.size()) as u64);
                    chunk = self.read_chunk(position, want as usize)?;
                    chunk_start = position;
                    in_chunk = 0;
                }
            }
            let mut verdict = self.check_batch(&chunk[in_chunk..], next_offset, first);
            // A failed check may be a bit flipped on the way in rather than on the disk: read the
            // batch again before believing it. Torn writes fail every time. A gap in the offsets
            // is legal where batches were compacted away, but the base offset lies outside the
            // CRC, where a flipped bit reads as a gap: a gap is believed once a re-read agrees.
            let is_gap = |v: &Result<(BatchHeader, i64), String>| {
                !first
                    && v.as_ref()
                        .is_ok_and(|(h, _)| h.base_offset as u64 != next_offset)
            };
            for _ in 0..REREADS_ON_FAILURE {
                if verdict.is_ok() && !is_gap(&verdict) {
                    break;
                }
                let fresh = self.read_chunk(position, chunk.len() - in_chunk)?;
                let again = self.check_batch(&fresh, next_offset, first);
                let same_gap = is_gap(&verdict)
                    && again.as_ref().ok().map(|(h, _)| h.base_offset)
                        == verdict.as_ref().ok().map(|(h, _)| h.base_offset);
                if same_gap {
                    break;
                }
                verdict = again;
                if verdict.is_ok() {
                    chunk = fresh;
                    chunk_start = position;
                    in_chunk = 0;
                }
            }
            if let Err(reason) = &verdict {
                if next_offset < recovery_point {
                    // Below the recovery point the bytes were fsynced: this is not a torn write
                    // but corruption, and cutting here would drop acknowledged data.
                    return Err(LogError::Corrupt {
                        path: self.path.clone(),
                        position,
                        offset: next_offset,
                        recovery_point,
                        reason: reason.clone(),
                    });
                }
            }
            match verdict {
                Ok((header, max_ts)) => {
                    self.index_batch(position, &header, max_ts);
                    position += header.size() as u64;
                    next_offset = header.last_offset() as u64 + 1;
                    first = false;
                }
                Err(reason) => return Ok(self.stop(position, next_offset, &reason)),
            }
        }
        Ok(Scan {
            valid_end: position,
            next_offset,
            stop: None,
        })
    }

    fn stop(&self, position: u64, next_offset: u64, reason: &str) -> Scan {
        Scan {
            valid_end: position,
            next_offset,
            stop: Some(reason.to_string()),
        }
    }

    fn read_chunk(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        let mut done = 0;
        while done < len {
            let n = self
                .log
                .read_at(&mut buf[done..], position + done as u64)
                .map_err(|e| LogError::io(&self.path, e))?;
            if n == 0 {
                break;
            }
            done += n;
        }
        buf.truncate(done);
        Ok(buf)
    }

    /// Validates the batch at the start of `bytes`: CRC, and that it continues the offsets.
    /// The first batch of a scan may start anywhere at or after the expected offset (the scan
    /// may begin mid-segment at an index entry), later ones exactly at it.
    fn check_batch(
        &self,
        bytes: &[u8],
        next_offset: u64,
        first: bool,
    ) -> Result<(BatchHeader, i64), String> {
        let (batch, _) =
            RecordBatch::parse(bytes, self.max_batch_bytes).map_err(|e| e.to_string())?;
        let base = batch.base_offset() as u64;
        let contiguous = if first {
            base >= next_offset
        } else {
            self.follows(base, next_offset)
        };
        if !contiguous {
            return Err(format!(
                "batch base offset {base} does not follow offset {next_offset}"
            ));
        }
        let header = BatchHeader {
            base_offset: batch.base_offset(),
            batch_length: (batch.size() - LOG_OVERHEAD) as i32,
            last_offset_delta: batch.last_offset_delta(),
        };
        if header.last_offset() as u64 - self.base_offset > u64::from(u32::MAX) {
            return Err("offset does not fit the segment's 32-bit relative offsets".into());
        }
        Ok((header, batch.max_timestamp()))
    }

    /// Records a batch just placed at `position` in the indexes and running maxima.
    fn index_batch(&mut self, position: u64, header: &BatchHeader, max_timestamp_ms: i64) {
        let last_offset = header.last_offset() as u64;
        let relative = (last_offset - self.base_offset) as u32;
        if max_timestamp_ms > self.max_timestamp_ms {
            self.max_timestamp_ms = max_timestamp_ms;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.first_batch_timestamp_ms.is_none() {
            self.first_batch_timestamp_ms = Some(max_timestamp_ms);
        }
        if self.bytes_since_index_entry > self.index_interval_bytes {
            let position = u32::try_from(position).unwrap_or(u32::MAX);
            if self
                .index
                .last()
                .is_none_or(|e| e.relative_offset < relative && e.position < position)
            {
                self.index.push(OffsetEntry {
                    relative_offset: relative,
                    position,
                });
            }
            let ts_relative = (self.offset_of_max_timestamp - self.base_offset) as u32;
            if self.time_index.last().is_none_or(|t| {
                self.max_timestamp_ms > t.timestamp_ms && ts_relative > t.relative_offset
            }) {
                self.time_index.push(TimeEntry {
                    timestamp_ms: self.max_timestamp_ms,
                    relative_offset: ts_relative,
                });
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += u64::from(header.batch_length as u32) + 12;
    }

    /// Appends already-validated batches (offsets assigned) at the end of the segment.
    /// `batches` holds `(position within bytes, header, max timestamp)` for each batch.
    pub fn append(
        &mut self,
        bytes: &[u8],
        batches: &[(usize, BatchHeader, i64)],
    ) -> Result<(), LogError> {
        let Some((_, last, _)) = batches.last() else {
            return Ok(());
        };
        assert!(
            self.follows(batches[0].1.base_offset as u64, self.next_offset),
            "append must continue the segment's offsets"
        );
        if let Err(e) = self.log.write_at(bytes, self.size_bytes) {
            // Best effort: drop whatever part of the write landed, so that the bytes past
            // `size_bytes` never hold a batch that was not acknowledged.
            let _ = self.log.truncate(self.size_bytes);
            return Err(LogError::io(&self.path, e));
        }
        for (at, header, max_ts) in batches {
            self.index_batch(self.size_bytes + *at as u64, header, *max_ts);
        }
        self.size_bytes += bytes.len() as u64;
        self.next_offset = last.last_offset() as u64 + 1;
        self.unsynced = true;
        Ok(())
    }

    /// Position of the first batch whose last offset is at least `offset`, or `None` if the
    /// segment has no such batch.
    pub fn position_of(&self, offset: u64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let relative = offset
            .saturating_sub(self.base_offset)
            .min(u64::from(u32::MAX)) as u32;
        // Where the scan starts, and the first offset expected there when it is known.
        let (mut position, mut expected) = match self
            .index
            .floor_by(relative, |e| e.relative_offset)
        {
            None => (0, Some(self.base_offset)),
            Some(entry) => {
                // Recovery vouches only for the last entry; check this one before using it.
                let position = u64::from(entry.position);
                let expected_last = self.base_offset + u64::from(entry.relative_offset);
                match self.read_header(position)? {
                    Some(h) if h.last_offset() as u64 == expected_last => (position, None),
                    _ => {
                        tracing::warn!(
                            file = %self.path.display(),
                            ?entry,
                            "offset index entry does not match the data; scanning the segment from its start"
                        );
                        (0, Some(self.base_offset))
                    }
                }
            }
        };
        while position < self.size_bytes {
            let header = self
                .read_header(position)?
                .ok_or_else(|| LogError::Corrupt {
                    path: self.path.clone(),
                    position,
                    offset,
                    recovery_point: 0,
                    reason: "unreadable batch header inside the valid region".into(),
                })?;
            let base = header.base_offset as u64;
            if expected.is_some_and(|e| !self.follows(base, e))
                || header.last_offset() as u64 >= self.next_offset
            {
                return Err(LogError::Corrupt {
                    path: self.path.clone(),
                    position,
                    offset,
                    recovery_point: 0,
                    reason: format!(
                        "batch at offsets {base}..={} is out of place",
                        header.last_offset()
                    ),
                });
            }
            if header.last_offset() as u64 >= offset {
                return Ok(Some((position, header)));
            }
            expected = Some(header.last_offset() as u64 + 1);
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// Reads whole batches starting with the one holding `offset`: at most `max_bytes`, except
    /// that the first batch is returned whole even if larger (KIP-74), and nothing at or above
    /// `max_offset`.
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: u64,
    ) -> Result<Vec<u8>, LogError> {
        let Some((start, first)) = self.position_of(offset)? else {
            return Ok(Vec::new());
        };
        if first.base_offset as u64 >= max_offset {
            return Ok(Vec::new());
        }
        let available = (self.size_bytes - start) as usize;
        let want = max_bytes.max(first.size()).min(available);
        let mut buf = self.read_chunk(start, want)?;
        // Cut at the last whole batch below `max_offset`. The offsets must run on without a gap:
        // data below the recovery point is not re-checked at open, so check what is served.
        let mut end = 0;
        let mut expected: Option<u64> = None;
        while end < buf.len() {
            let header = match BatchHeader::parse(&buf[end..], usize::MAX) {
                Ok(h) => h,
                Err(_) => break,
            };
            if end + header.size() > buf.len() || header.base_offset as u64 >= max_offset {
                break;
            }
            let base = header.base_offset as u64;
            let fits = match expected {
                None if self.gaps_allowed => base >= self.base_offset,
                None => base <= offset.max(self.base_offset) && base >= self.base_offset,
                Some(e) => self.follows(base, e),
            };
            if !fits || header.last_offset() as u64 >= self.next_offset {
                return Err(LogError::Corrupt {
                    path: self.path.clone(),
                    position: start + end as u64,
                    offset: expected.unwrap_or(offset),
                    recovery_point: 0,
                    reason: format!(
                        "batch at offsets {base}..={} is out of place",
                        header.last_offset()
                    ),
                });
            }
            expected = Some(header.last_offset() as u64 + 1);
            end += header.size();
        }
        if end == 0 {
            // The first batch starts below `max_offset` yet does not fit in the segment: only
            // corrupt bytes in the trusted region can say so.
            return Err(LogError::Corrupt {
                path: self.path.clone(),
                position: start,
                offset,
                recovery_point: 0,
                reason: format!(
                    "the batch here claims {} bytes, past the segment's end",
                    first.size()
                ),
            });
        }
        buf.truncate(end);
        Ok(buf)
    }

    /// First batch (whole) whose max timestamp is at least `timestamp_ms`, if any.
    pub fn find_by_timestamp(
        &self,
        timestamp_ms: i64,
        from_offset: u64,
    ) -> Result<Option<Vec<u8>>, LogError> {
        if self.max_timestamp_ms < timestamp_ms {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .floor_by(timestamp_ms - 1, |t| t.timestamp_ms)
            .map_or(self.base_offset, |t| {
                self.base_offset + u64::from(t.relative_offset)
            })
            .max(from_offset);
        let Some((mut position, _)) = self.position_of(start_offset)? else {
            return Ok(None);
        };
        while position < self.size_bytes {
            let header = self
                .read_header(position)?
                .ok_or_else(|| LogError::Corrupt {
                    path: self.path.clone(),
                    position,
                    offset: start_offset,
                    recovery_point: 0,
                    reason: "unreadable batch header inside the valid region".into(),
                })?;
            let bytes = self.read_chunk(position, header.size())?;
            let (batch, _) =
                RecordBatch::parse(&bytes, usize::MAX).map_err(|e| LogError::Corrupt {
                    path: self.path.clone(),
                    position,
                    offset: header.base_offset as u64,
                    recovery_point: 0,
                    reason: e.to_string(),
                })?;
            if batch.max_timestamp() >= timestamp_ms {
                return Ok(Some(bytes));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// Drops every batch whose last offset is at least `offset`. Returns the new end offset
    /// (the base offset of the first dropped batch; truncation is at batch boundaries).
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64, LogError> {
        let Some((position, header)) = self.position_of(offset)? else {
            return Ok(self.next_offset);
        };
        // In a log with gaps the batch holding the cut may start past it.
        let new_end = (header.base_offset as u64).min(offset.max(self.base_offset));
        self.id = next_segment_id();
        self.log
            .truncate(position)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.log.sync().map_err(|e| LogError::io(&self.path, e))?;
        let relative = (new_end - self.base_offset) as u32;
        self.index
            .truncate_from(relative)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.time_index
            .truncate_from(relative)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.truncate_aborted_from(new_end)?;
        self.size_bytes = position;
        self.next_offset = new_end;
        // Recompute the maxima over what is left, and where the next index entry falls.
        self.max_timestamp_ms = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_index_entry = 0;
        self.first_batch_timestamp_ms = None;
        let mut pos = 0;
        while pos < self.size_bytes {
            let Some(h) = self.read_header(pos)? else {
                break;
            };
            let bytes = self.read_chunk(pos, HEADER_LEN)?;
            let max_ts = max_timestamp_of_header(&bytes).unwrap_or(-1);
            if max_ts > self.max_timestamp_ms {
                self.max_timestamp_ms = max_ts;
                self.offset_of_max_timestamp = h.last_offset() as u64;
            }
            if self.first_batch_timestamp_ms.is_none() {
                self.first_batch_timestamp_ms = Some(max_ts);
            }
            let entry_here = self
                .index
                .entries()
                .iter()
                .any(|e| u64::from(e.position) == pos);
            if entry_here {
                self.bytes_since_index_entry = 0;
            }
            self.bytes_since_index_entry += h.size() as u64;
            pos += h.size() as u64;
        }
        self.persist_indexes(true)?;
        Ok(new_end)
    }

    pub fn persist_indexes(&mut self, sync: bool) -> Result<(), LogError> {
        self.index
            .persist(sync)
            .map_err(|e| LogError::io(&self.path, e))?;
        self.time_index
            .persist(sync)
            .map_err(|e| LogError::io(&self.path, e))
    }

    /// Makes the segment's data and its aborted-transaction entries durable and writes its
    /// index entries out, without syncing them: an index is a hint that recovery and reads
    /// check before use, and syncing two more files would triple the cost of every group
    /// commit. [`Segment::sync_all`] syncs them too. The aborted-transaction index is synced
    /// (only when it has new entries, which only abort markers bring): a producer snapshot at
    /// this flush will trust it. Returns whether the index file was created (its directory
    /// then needs a sync).
    pub fn sync(&mut self, disk: &dyn Disk) -> Result<bool, LogError> {
        if self.unsynced {
            self.log.sync().map_err(|e| LogError::io(&self.path, e))?;
            self.unsynced = false;
        }
        self.persist_indexes(false)?;
        self.txn_index
            .persist(disk, true)
            .map_err(|e| LogError::io(self.txn_index.path(), e))
    }

    /// Data and indexes durable: for a clean shutdown, after which no recovery scan is needed.
    pub fn sync_all(&mut self, disk: &dyn Disk) -> Result<bool, LogError> {
        let created = self.sync(disk)?;
        self.persist_indexes(true)?;
        Ok(created)
    }

    pub fn remove_files(&self, disk: &dyn Disk, dir: &Path) -> Result<(), LogError> {
        for p in Self::paths(dir, self.base_offset) {
            match disk.remove(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io(&p, e)),
            }
        }
        Ok(())
    }

    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }
    pub fn is_empty(&self) -> bool {
        self.size_bytes == 0
    }
    pub fn max_timestamp_ms(&self) -> i64 {
        self.max_timestamp_ms
    }
    pub fn offset_of_max_timestamp(&self) -> u64 {
        self.offset_of_max_timestamp
    }
    pub fn first_batch_timestamp_ms(&self) -> Option<i64> {
        self.first_batch_timestamp_ms
    }
    pub fn index_entry_count(&self) -> usize {
        self.index.entries().len()
    }
}
