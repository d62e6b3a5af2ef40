//! Log compaction (Kafka's log cleaner): keeps at least the latest record of every key in the
//! segments below the active one and the high watermark, and swaps the cleaned copies in so that
//! a crash at any point leaves either the old segments or the new ones.
//!
//! Owns: the choice of what to clean (dirty ratio, compaction lags), the key map, the decision
//! record by record, the `.cleaned` / `.swap` files and their recovery at open. Offsets never
//! change: a cleaned batch keeps its base offset, last offset delta, producer fields and
//! timestamps, so a compacted log has gaps where whole batches went.
//!
//! Work is split so the broker can clean without holding the log's lock: [`Log::start_cleaning`]
//! takes a snapshot of the segments to clean (under the lock), [`Cleaning::step`] reads and
//! writes files outside it, a bounded amount at a time (the IO throttle sleeps between steps),
//! and [`Log::install_cleaned`] swaps one finished group in (under the lock), refusing if any of
//! its segments changed meanwhile (truncated, deleted, cleaned by someone else).
//!
//! Must not touch: the active segment, anything at or above the high watermark, the network or
//! clocks (time is passed in).

use super::segment::{parse_log_file_name, Segment};
use super::txn_index::AbortedTxn;
use super::{Log, LogError};
use crate::protocol::record_batch::decoded::{self, DELETE_HORIZON_FLAG};
use crate::protocol::record_batch::{BatchHeader, RecordBatch, LOG_OVERHEAD};
use crate::runtime::{Disk, DiskFile};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const CLEANED: &str = ".cleaned";
const SWAP: &str = ".swap";

/// How dirty a compacted log is: what [`Log::dirtiness`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dirtiness {
    /// Bytes of cleanable segments already cleaned.
    pub clean_bytes: u64,
    /// Bytes of cleanable segments written since the last clean.
    pub dirty_bytes: u64,
    /// Cleaning may go up to here: the active segment's base, the high watermark or the first
    /// segment younger than `min.compaction.lag.ms`, whichever is lowest.
    pub cleanable_end: u64,
    /// `min.cleanable.dirty.ratio` is reached, or a dirty record is older than
    /// `max.compaction.lag.ms`.
    pub due: bool,
}

impl Dirtiness {
    pub fn ratio(&self) -> f64 {
        let total = self.clean_bytes + self.dirty_bytes;
        if total == 0 {
            0.0
        } else {
            self.dirty_bytes as f64 / total as f64
        }
    }
}

/// What one clean did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanReport {
    pub segments_cleaned: usize,
    pub bytes_read: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    /// Groups not installed because the log changed under the cleaner.
    pub groups_abandoned: usize,
}

#[derive(Debug, Clone)]
struct Planned {
    base: u64,
    id: u64,
    file: Arc<dyn DiskFile>,
    size_bytes: u64,
    next_offset: u64,
    /// Its aborted-transaction entries: the cleaned segment takes them over (markers and
    /// transactional batches are kept whole).
    aborted: Vec<AbortedTxn>,
}

/// A cleaned copy of consecutive segments, ready for [`Log::install_cleaned`].
#[derive(Debug)]
pub struct CleanedGroup {
    /// (base offset, identity) of each segment it replaces.
    replaces: Vec<(u64, u64)>,
    /// (base offset, identity) of the planned segments after the group: the key map that
    /// decided what the group keeps was built over them too, so they must be unchanged.
    later: Vec<(u64, u64)>,
    segment: Segment,
    end_offset: u64,
}

/// What a step did.
#[derive(Debug)]
pub enum Step {
    /// Read this many bytes; more to do.
    Progress(u64),
    /// A group is cleaned: install it, then step again.
    Group(Box<CleanedGroup>),
    Done,
}

/// A clean in progress: see the module docs.
#[derive(Debug)]
pub struct Cleaning {
    disk: Arc<dyn Disk>,
    dir: PathBuf,
    now_ms: i64,
    delete_retention_ms: i64,
    index_interval_bytes: u64,
    max_batch_bytes: usize,
    segments: Vec<Planned>,
    /// Ranges of `segments`, each cleaned into one new segment.
    groups: Vec<std::ops::Range<usize>>,
    /// The latest offset of each key in the cleanable range.
    latest: BTreeMap<Vec<u8>, u64>,
    /// Each producer's last batch (base offset) in the cleanable range: kept, maybe empty, so
    /// its sequence numbers survive (as Kafka's cleaner keeps it).
    last_batch_of_producer: BTreeMap<i64, u64>,
    mapping_done: bool,
    /// A batch could not be decoded: its keys are unknown, so no tombstone may go this time
    /// (an old value of its key could be in that batch and come back).
    opaque_seen: bool,
    /// Every batch's base offset as the map pass read it, for the write pass to check.
    bases: Vec<u64>,
    batch_index: usize,
    /// Where reading is: segment index, position in it, and the offset the next batch may
    /// start at.
    at_segment: usize,
    at_position: u64,
    at_offset: u64,
    group: usize,
    out: Option<Segment>,
    pub report: CleanReport,
}

impl Log {
    /// How dirty the log is, if it is compacted (`cleanup.policy` has `compact`).
    pub fn dirtiness(&self, now_ms: i64, high_watermark: u64) -> Option<Dirtiness> {
        if !self.config.cleanup.compact {
            return None;
        }
        let mut end = self.active_segment_base().min(high_watermark);
        let min_lag = self.config.min_compaction_lag_ms;
        for s in self.segments.values() {
            if s.base_offset >= end {
                break;
            }
            if min_lag > 0 && s.max_timestamp_ms() > now_ms.saturating_sub(min_lag) {
                end = s.base_offset;
                break;
            }
        }
        let (mut clean_bytes, mut dirty_bytes, mut forced) = (0, 0, false);
        for s in self.segments.values().filter(|s| s.next_offset() <= end) {
            if s.base_offset >= self.first_dirty_offset {
                dirty_bytes += s.size_bytes();
                let first = s.first_batch_timestamp_ms().unwrap_or(i64::MAX);
                forced |= self.config.max_compaction_lag_ms < i64::MAX
                    && now_ms.saturating_sub(first) > self.config.max_compaction_lag_ms;
            } else {
                clean_bytes += s.size_bytes();
            }
        }
        let mut d = Dirtiness {
            clean_bytes,
            dirty_bytes,
            cleanable_end: end,
            due: false,
        };
        let min_ratio = f64::from(self.config.min_cleanable_dirty_ratio_ppm) / 1e6;
        d.due = dirty_bytes > 0 && (d.ratio() >= min_ratio || forced);
        Some(d)
    }

    /// Snapshots the segments to clean, if cleaning is due (or `force`d). The caller then
    /// steps the [`Cleaning`] outside the log's lock.
    pub fn start_cleaning(
        &self,
        now_ms: i64,
        high_watermark: u64,
        force: bool,
    ) -> Option<Cleaning> {
        let d = self.dirtiness(now_ms, high_watermark)?;
        if !(d.due || (force && d.dirty_bytes > 0)) {
            return None;
        }
        let segments: Vec<Planned> = self
            .segments
            .values()
            .filter(|s| s.next_offset() <= d.cleanable_end && !s.is_empty())
            .map(|s| Planned {
                base: s.base_offset,
                id: s.id(),
                file: s.log_file(),
                size_bytes: s.size_bytes(),
                next_offset: s.next_offset(),
                aborted: s.aborted().to_vec(),
            })
            .collect();
        // Consecutive segments whose sizes sum to at most one segment go into one (Kafka's
        // grouping); the offsets of a group must fit a segment's 32-bit relative offsets.
        let mut groups = Vec::new();
        let mut start = 0;
        let mut bytes = 0u64;
        for (i, s) in segments.iter().enumerate() {
            let span = s.next_offset - segments[start].base;
            if i > start
                && (bytes + s.size_bytes > self.config.segment_bytes_max
                    || span > u64::from(u32::MAX))
            {
                groups.push(start..i);
                start = i;
                bytes = 0;
            }
            bytes += s.size_bytes;
        }
        if start < segments.len() {
            groups.push(start..segments.len());
        }
        if groups.is_empty() {
            return None;
        }
        Some(Cleaning {
            disk: Arc::clone(&self.disk),
            dir: self.dir.clone(),
            now_ms,
            delete_retention_ms: self.config.delete_retention_ms,
            index_interval_bytes: self.config.index_interval_bytes,
            max_batch_bytes: self.config.max_batch_bytes,
            segments,
            groups,
            latest: BTreeMap::new(),
            last_batch_of_producer: BTreeMap::new(),
            mapping_done: false,
            opaque_seen: false,
            bases: Vec::new(),
            batch_index: 0,
            at_segment: 0,
            at_position: 0,
            at_offset: 0,
            group: 0,
            out: None,
            report: CleanReport::default(),
        })
    }

    /// Swaps a cleaned group in for the segments it replaces, if they are all still there
    /// unchanged and none is the active segment; otherwise drops the cleaned files. Returns
    /// whether it was installed. Durable before it returns.
    ///
    /// The order is what makes a crash safe: the cleaned files are synced, renamed to `.swap`
    /// (the log file last: its durable `.log.swap` name is the commit point), the directory
    /// synced; then the old segments' files go and the `.swap` names become the final ones.
    /// [`finish_swaps`] completes a committed swap at open.
    pub fn install_cleaned(&mut self, group: Box<CleanedGroup>) -> Result<bool, LogError> {
        let CleanedGroup {
            replaces,
            later,
            mut segment,
            end_offset,
        } = *group;
        let active = self.active_segment_base();
        let unchanged = replaces.iter().chain(&later).all(|(base, id)| {
            *base != active && self.segments.get(base).is_some_and(|s| s.id() == *id)
        });
        let base = segment.base_offset;
        // A cleaned segment keeps the last batch of its group, so it ends where they did; one
        // that does not is refused, not swapped in (only misread data could make it).
        let whole = !segment.is_empty() && segment.next_offset() == end_offset;
        if !unchanged || !whole {
            drop(segment);
            remove_if_present(
                self.disk.as_ref(),
                &Segment::paths_with(&self.dir, base, CLEANED),
            )?;
            if !whole {
                return Err(LogError::Corrupt {
                    path: self.dir.clone(),
                    position: 0,
                    offset: base,
                    recovery_point: 0,
                    reason: format!(
                        "a cleaned segment does not end at its group's end {end_offset}"
                    ),
                });
            }
            return Ok(false);
        }
        let disk = self.disk.as_ref();
        let cleaned = Segment::paths_with(&self.dir, base, CLEANED);
        let swap = Segment::paths_with(&self.dir, base, SWAP);
        let finals = Segment::paths_with(&self.dir, base, "");
        // Indexes first, the log file last: `.log.swap` commits the swap. The aborted-
        // transaction index exists only if the group had abort markers; [`finish_swaps`]
        // relies on it being renamed before the log both times.
        let order: &[usize] = if segment.aborted().is_empty() {
            &[1, 2, 0]
        } else {
            &[1, 2, 3, 0]
        };
        for &i in order {
            disk.rename(&cleaned[i], &swap[i])
                .map_err(|e| LogError::io(&cleaned[i], e))?;
        }
        self.sync_dir()?;
        for (old_base, _) in &replaces {
            if let Some(old) = self.segments.remove(old_base) {
                old.remove_files(disk, &self.dir)?;
            }
        }
        for &i in order {
            disk.rename(&swap[i], &finals[i])
                .map_err(|e| LogError::io(&swap[i], e))?;
        }
        self.sync_dir()?;
        segment.set_final_path(&self.dir);
        self.segments.insert(base, segment);
        self.first_dirty_offset = self.first_dirty_offset.max(end_offset);
        Ok(true)
    }

    fn sync_dir(&self) -> Result<(), LogError> {
        self.disk
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))
    }

    /// Cleans the log to completion in one go, installing each group as it is done (tests,
    /// `ketch bench`, and callers that already hold the log exclusively).
    pub fn clean_now(&mut self, now_ms: i64, high_watermark: u64) -> Result<CleanReport, LogError> {
        let Some(mut cleaning) = self.start_cleaning(now_ms, high_watermark, true) else {
            return Ok(CleanReport::default());
        };
        loop {
            match cleaning.step(u64::MAX)? {
                Step::Progress(_) => {}
                Step::Group(g) => {
                    if !self.install_cleaned(g)? {
                        cleaning.report.groups_abandoned += 1;
                    }
                }
                Step::Done => return Ok(cleaning.report),
            }
        }
    }
}

fn remove_if_present(disk: &dyn Disk, paths: &[PathBuf]) -> Result<(), LogError> {
    for p in paths {
        if disk.exists(p) {
            disk.remove(p).map_err(|e| LogError::io(p, e))?;
        }
    }
    Ok(())
}

/// Reads the whole batches of `seg` from `position` (where a batch starting at `from_offset`
/// or later begins): about `want` bytes, at least one batch. Each is CRC-checked and must lie
/// inside the segment, in order: these segments were fsynced, so a bad one is corruption (or a
/// bit flipped on the way in, which the two passes' cross-check catches for the base offset the
/// CRC does not cover).
fn read_batches(
    seg: &Planned,
    path: &Path,
    position: u64,
    from_offset: u64,
    want: u64,
) -> Result<Vec<Vec<u8>>, LogError> {
    let corrupt = |at: usize, reason: String| LogError::Corrupt {
        path: path.to_path_buf(),
        position: position + at as u64,
        offset: from_offset,
        recovery_point: 0,
        reason,
    };
    let left = seg.size_bytes.saturating_sub(position);
    let len = want.clamp(1 << 16, 8 << 20).min(left) as usize;
    let mut buf = vec![0u8; len];
    seg.file
        .read_exact_at(&mut buf, position)
        .map_err(|e| LogError::io(path, e))?;
    let mut out = Vec::new();
    let mut at = 0;
    let mut expected = from_offset;
    loop {
        let rest = &buf[at..];
        if rest.len() < BatchHeader::PREFIX_LEN {
            break;
        }
        // The segment's own size bounds a batch: the log accepted it under whatever
        // `max.message.bytes` was then.
        let header =
            BatchHeader::parse(rest, usize::MAX).map_err(|e| corrupt(at, e.to_string()))?;
        let size = header.size();
        if size as u64 > left - at as u64 {
            return Err(corrupt(
                at,
                format!("a batch of {size} bytes runs past the segment"),
            ));
        }
        let whole;
        let bytes = if rest.len() >= size {
            &rest[..size]
        } else if out.is_empty() {
            // One batch larger than the chunk: read it alone.
            let mut b = vec![0u8; size];
            seg.file
                .read_exact_at(&mut b, position)
                .map_err(|e| LogError::io(path, e))?;
            whole = b;
            &whole[..]
        } else {
            break;
        };
        let (batch, _) =
            RecordBatch::parse(bytes, usize::MAX).map_err(|e| corrupt(at, e.to_string()))?;
        let (base, last) = (batch.base_offset() as u64, batch.last_offset() as u64);
        if base < expected || last >= seg.next_offset {
            return Err(corrupt(
                at,
                format!(
                    "batch at offsets {base}..={last} is out of place (expected from {expected}, segment ends at {})",
                    seg.next_offset
                ),
            ));
        }
        expected = last + 1;
        out.push(bytes.to_vec());
        at += size;
    }
    if out.is_empty() {
        return Err(corrupt(at, "no whole batch where one must start".into()));
    }
    Ok(out)
}

impl Cleaning {
    /// Reads (and in the second pass writes) about `budget_bytes`; see [`Step`].
    pub fn step(&mut self, budget_bytes: u64) -> Result<Step, LogError> {
        if !self.mapping_done {
            return self.map_step(budget_bytes);
        }
        self.write_step(budget_bytes)
    }

    /// The whole batches of `seg` from where the cleaner is, about `budget_bytes`.
    fn read_at_cursor(&self, seg: &Planned, budget_bytes: u64) -> Result<Vec<Vec<u8>>, LogError> {
        read_batches(
            seg,
            &Segment::paths_with(&self.dir, seg.base, "")[0],
            self.at_position,
            self.at_offset.max(seg.base),
            budget_bytes,
        )
    }

    /// The write pass reads every batch again: its base offset (outside the CRC) must be what
    /// the map pass read, or a flipped bit in one of the reads would misplace a key's latest
    /// record.
    fn cross_check(&mut self, base: u64) -> Result<(), LogError> {
        let seen = self.bases.get(self.batch_index).copied();
        self.batch_index += 1;
        if seen == Some(base) {
            return Ok(());
        }
        Err(LogError::Corrupt {
            path: self.dir.clone(),
            position: 0,
            offset: base,
            recovery_point: 0,
            reason: format!(
                "the cleaner read a batch at offset {base} where its first pass read {seen:?}"
            ),
        })
    }

    /// First pass: the latest offset of each key, and each producer's last batch.
    fn map_step(&mut self, budget_bytes: u64) -> Result<Step, LogError> {
        let Some(seg) = self.segments.get(self.at_segment).cloned() else {
            self.mapping_done = true;
            self.at_segment = 0;
            self.at_position = 0;
            self.at_offset = 0;
            return Ok(Step::Progress(0));
        };
        let batches = self.read_at_cursor(&seg, budget_bytes)?;
        let mut read = 0;
        for bytes in &batches {
            read += bytes.len() as u64;
            let Ok((batch, _)) = RecordBatch::parse(bytes, usize::MAX) else {
                continue;
            };
            self.bases.push(batch.base_offset() as u64);
            self.at_offset = batch.last_offset() as u64 + 1;
            if batch.producer_id() >= 0 {
                self.last_batch_of_producer
                    .insert(batch.producer_id(), batch.base_offset() as u64);
            }
            if batch.is_control() {
                continue;
            }
            // Transactional batches are kept whole and stay out of the key map: whether their
            // records count depends on the transaction's outcome, which transaction-aware
            // compaction (not implemented) would have to read from the markers. Like an
            // undecodable batch, they stop tombstones from being dropped, which could bring
            // a transaction's older value of the key back.
            if batch.is_transactional() {
                self.opaque_seen = true;
                continue;
            }
            // A batch the cleaner cannot decode is kept whole, and its keys are not known: a
            // later value of such a key still wins, an earlier one is kept.
            match decoded::decode(&batch) {
                Ok(d) => {
                    for r in d.records {
                        if let Some(key) = r.key {
                            self.latest.insert(key, r.offset as u64);
                        }
                    }
                }
                Err(_) => self.opaque_seen = true,
            }
        }
        self.advance(seg.size_bytes, read);
        Ok(Step::Progress(read))
    }

    fn advance(&mut self, segment_size: u64, read: u64) {
        self.report.bytes_read += read;
        self.at_position += read;
        if self.at_position >= segment_size {
            self.at_segment += 1;
            self.at_position = 0;
            self.at_offset = 0;
        }
    }

    /// Second pass: each group's batches, filtered, into a `.cleaned` segment.
    fn write_step(&mut self, budget_bytes: u64) -> Result<Step, LogError> {
        let Some(range) = self.groups.get(self.group).cloned() else {
            return Ok(Step::Done);
        };
        if self.at_segment < range.start {
            self.at_segment = range.start;
            self.at_position = 0;
        }
        if self.at_segment >= range.end {
            // The group is written.
            let Some(segment) = self.out.take() else {
                self.group += 1;
                return Ok(Step::Progress(0));
            };
            let replaces = self.segments[range.clone()]
                .iter()
                .map(|s| (s.base, s.id))
                .collect();
            let end_offset = self.segments[range.end - 1].next_offset;
            let later = self.segments[range.end..]
                .iter()
                .map(|s| (s.base, s.id))
                .collect();
            let mut segment = segment;
            for entry in self.segments[range.clone()].iter().flat_map(|s| &s.aborted) {
                let (first, end) = (segment.base_offset as i64, segment.next_offset() as i64);
                if !(first..end).contains(&entry.last_offset) {
                    return Err(LogError::Corrupt {
                        path: self.dir.clone(),
                        position: 0,
                        offset: entry.last_offset.max(0) as u64,
                        recovery_point: 0,
                        reason: format!(
                            "an abort marker is missing from the cleaned {first}..{end}"
                        ),
                    });
                }
                segment.push_aborted(*entry);
            }
            // Synced here, outside the log's lock: the swap under it only renames.
            segment.sync_all(self.disk.as_ref())?;
            self.report.segments_cleaned += range.len();
            self.report.bytes_before += self.segments[range.clone()]
                .iter()
                .map(|s| s.size_bytes)
                .sum::<u64>();
            self.report.bytes_after += segment.size_bytes();
            self.group += 1;
            return Ok(Step::Group(Box::new(CleanedGroup {
                replaces,
                later,
                segment,
                end_offset,
            })));
        }
        if self.out.is_none() {
            let base = self.segments[range.start].base;
            self.out = Some(Segment::create_with(
                self.disk.as_ref(),
                &self.dir,
                base,
                CLEANED,
                self.index_interval_bytes,
                self.max_batch_bytes,
                true,
            )?);
        }
        let seg = self.segments[self.at_segment].clone();
        let batches = self.read_at_cursor(&seg, budget_bytes)?;
        let read: u64 = batches.iter().map(|b| b.len() as u64).sum();
        let ends_segment = self.at_position + read >= seg.size_bytes;
        let last_of_group = self.at_segment + 1 == range.end && ends_segment;
        let count = batches.len();
        for (i, bytes) in batches.iter().enumerate() {
            let keep_even_if_empty = last_of_group && i + 1 == count;
            // read_batches parsed it already.
            let Ok(h) = BatchHeader::parse(bytes, usize::MAX) else {
                continue;
            };
            self.cross_check(h.base_offset as u64)?;
            self.at_offset = h.last_offset() as u64 + 1;
            if let Some(out_bytes) = self.clean_batch(bytes, keep_even_if_empty) {
                let (batch, _) = RecordBatch::parse(&out_bytes, usize::MAX).map_err(|e| {
                    LogError::InvalidBatch {
                        position: 0,
                        reason: e,
                    }
                })?;
                let header = BatchHeader {
                    base_offset: batch.base_offset(),
                    batch_length: (batch.size() - LOG_OVERHEAD) as i32,
                    last_offset_delta: batch.last_offset_delta(),
                };
                let max_ts = batch.max_timestamp();
                if let Some(out) = self.out.as_mut() {
                    if (header.base_offset as u64) < out.next_offset() {
                        return Err(LogError::Corrupt {
                            path: self.dir.clone(),
                            position: 0,
                            offset: header.base_offset as u64,
                            recovery_point: 0,
                            reason: "a cleaned batch does not follow the one before it".into(),
                        });
                    }
                    out.append(&out_bytes, &[(0, header, max_ts)])?;
                }
            }
        }
        self.advance(seg.size_bytes, read);
        Ok(Step::Progress(read))
    }

    /// What of `bytes` (one batch) the cleaned log keeps: the batch as it is, a rewritten one
    /// with fewer records (or an empty one, for a producer's last batch or the group's last),
    /// or nothing.
    fn clean_batch(&mut self, bytes: &[u8], keep_even_if_empty: bool) -> Option<Vec<u8>> {
        let Ok((batch, _)) = RecordBatch::parse(bytes, usize::MAX) else {
            return Some(bytes.to_vec());
        };
        if batch.is_control() || batch.is_transactional() {
            return Some(bytes.to_vec());
        }
        let Ok(mut d) = decoded::decode(&batch) else {
            return Some(bytes.to_vec());
        };
        let producers_last = d.producer_id >= 0
            && self.last_batch_of_producer.get(&d.producer_id) == Some(&(d.base_offset as u64));
        let horizon = d.delete_horizon_ms();
        let tombstones_expired = !self.opaque_seen && horizon.is_some_and(|h| self.now_ms >= h);
        let before = d.records.len();
        let mut tombstones_removed = 0;
        d.records.retain(|r| {
            let Some(key) = &r.key else {
                // Kafka's cleaner drops records without a key: they cannot be compacted.
                return false;
            };
            if self.latest.get(key) != Some(&(r.offset as u64)) {
                return false;
            }
            if r.value.is_none() && tombstones_expired {
                tombstones_removed += 1;
                return false;
            }
            true
        });
        let removed = (before - d.records.len()) as u64;
        self.report.records_removed += removed;
        self.report.tombstones_removed += tombstones_removed;
        let has_tombstone = d.records.iter().any(|r| r.value.is_none());
        let needs_horizon = has_tombstone && horizon.is_none();
        if d.records.is_empty() {
            if !(keep_even_if_empty || producers_last) {
                return None;
            }
            // An empty batch: the header alone, uncompressed (some clients choke on a
            // compressed empty body).
            d.attributes &= !(decoded::COMPRESSION_MASK | DELETE_HORIZON_FLAG);
            return decoded::encode(&d).ok().or_else(|| Some(bytes.to_vec()));
        }
        if removed == 0 && !needs_horizon {
            return Some(bytes.to_vec());
        }
        if needs_horizon {
            // KIP-534: the first clean that keeps a tombstone stamps its batch with the time
            // after which tombstones may go; record timestamps stay (their deltas move).
            d.attributes |= DELETE_HORIZON_FLAG;
            d.base_timestamp_ms = self.now_ms.saturating_add(self.delete_retention_ms);
        }
        Some(decoded::encode(&d).unwrap_or_else(|_| bytes.to_vec()))
    }

    /// Drops what was written (the clean is abandoned).
    pub fn abandon(mut self) {
        if let Some(out) = self.out.take() {
            let base = out.base_offset;
            drop(out);
            let _ = remove_if_present(
                self.disk.as_ref(),
                &Segment::paths_with(&self.dir, base, CLEANED),
            );
        }
    }
}

/// At open: completes every swap whose `.log.swap` file survived (the commit point), removing
/// the segments it replaces and giving it its final name. Indexes are dropped, to be rebuilt
/// from the data (an old segment's index could otherwise sit beside the new data). Returns
/// whether anything changed.
pub(super) fn finish_swaps(
    disk: &dyn Disk,
    dir: &Path,
    names: &[String],
    notes: &mut Vec<String>,
) -> Result<bool, LogError> {
    let mut changed = false;
    // The newest segment is the active one, which the cleaner never replaces.
    let newest = names.iter().filter_map(|n| parse_log_file_name(n)).max();
    for name in names {
        let Some(base) = name.strip_suffix(SWAP).and_then(parse_log_file_name) else {
            continue;
        };
        let swap_path = dir.join(name);
        // The range decides which segments go, and base offsets lie outside the CRC: it is
        // read twice and believed only if both reads agree.
        let mut reads: Vec<u64> = Vec::new();
        let mut end = None;
        let mut last_error = None;
        for _ in 0..3 {
            match end_of_batches(disk, &swap_path, base) {
                Ok(e) if reads.contains(&e) => {
                    end = Some(e);
                    break;
                }
                Ok(e) => reads.push(e),
                Err(e) => last_error = Some(e),
            }
        }
        let Some(end) = end else {
            return Err(last_error.unwrap_or(LogError::Corrupt {
                path: swap_path,
                position: 0,
                offset: base,
                recovery_point: 0,
                reason: "three reads of the swap file disagree".into(),
            }));
        };
        let swap = Segment::paths_with(dir, base, SWAP);
        if end == base {
            // The cleaner never swaps in an empty segment, so this one was not committed.
            remove_if_present(disk, &swap)?;
            continue;
        }
        if newest.is_some_and(|n| (base..end).contains(&n) && n != base) {
            return Err(LogError::Corrupt {
                path: swap_path,
                position: 0,
                offset: base,
                recovery_point: 0,
                reason: format!(
                    "its offsets {base}..{end} would replace the active segment at {}",
                    newest.unwrap_or(0)
                ),
            });
        }
        // The aborted-transaction index went to `.swap` before the log did, and to its final
        // name before the log did, and the old segments' files went before either final
        // rename: so a `.txnindex.swap` is the new one, and without one a `.txnindex` at the
        // swap's base is the new one (or the group had no abort markers, and then neither
        // had the segment at its base).
        let finals = Segment::paths_with(dir, base, "");
        let txn_swapped = disk.exists(&swap[3]);
        for other in names {
            if let Some(b) = parse_log_file_name(other) {
                if (base..end).contains(&b) {
                    let paths = Segment::paths_with(dir, b, "");
                    let keep = if b == base && !txn_swapped { 3 } else { 4 };
                    remove_if_present(disk, &paths[..keep])?;
                }
            }
        }
        // The swap's own base: an old index may be left where its log already went.
        remove_if_present(disk, &finals[1..3])?;
        remove_if_present(disk, &swap[1..3])?;
        if txn_swapped {
            remove_if_present(disk, &finals[3..])?;
            disk.rename(&swap[3], &finals[3])
                .map_err(|e| LogError::io(&swap[3], e))?;
        }
        disk.rename(&swap[0], &finals[0])
            .map_err(|e| LogError::io(&swap[0], e))?;
        disk.sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
        notes.push(format!(
            "{}: completed an interrupted compaction swap (offsets {base}..{end})",
            finals[0].display()
        ));
        changed = true;
    }
    Ok(changed)
}

/// One past the last offset of the batches in the swap file at `path` (fsynced before it was
/// committed, so every batch must check: CRC, offsets in order; else it is corrupt).
fn end_of_batches(disk: &dyn Disk, path: &Path, base: u64) -> Result<u64, LogError> {
    let bytes = disk.read_file(path).map_err(|e| LogError::io(path, e))?;
    let mut rest = &bytes[..];
    let mut end = base;
    while !rest.is_empty() {
        let position = (bytes.len() - rest.len()) as u64;
        let corrupt = |reason: String| LogError::Corrupt {
            path: path.to_path_buf(),
            position,
            offset: end,
            recovery_point: 0,
            reason,
        };
        let (batch, tail) =
            RecordBatch::parse(rest, usize::MAX).map_err(|e| corrupt(e.to_string()))?;
        if (batch.base_offset() as u64) < end {
            return Err(corrupt("batch offsets out of order".into()));
        }
        end = batch.last_offset() as u64 + 1;
        rest = tail;
    }
    Ok(end)
}

/// A cleaned batch in full, for tests that look inside.
#[cfg(test)]
pub(super) fn decode_all(bytes: &[u8]) -> Vec<decoded::DecodedBatch> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while let Ok((b, tail)) = RecordBatch::parse(rest, usize::MAX) {
        if let Ok(d) = decoded::decode(&b) {
            out.push(d);
        }
        rest = tail;
    }
    out
}
