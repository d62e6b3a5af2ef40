//! [`Log`]: one partition's ordered segments, and the operations that span them.

use super::segment::{file_name, parse_log_file_name, Segment};
use super::txn_index::AbortedTxn;
use super::{FlushPolicy, LogConfig, LogError};
use crate::protocol::record_batch::{self, RecordBatch};
use crate::runtime::Disk;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kafka's `segment.index.bytes` default (10 MiB) in 8-byte entries: roll before the index of the
/// active segment would outgrow it.
const MAX_INDEX_ENTRIES: usize = 10 * 1024 * 1024 / 8;

fn header_of(batch: &RecordBatch<'_>) -> record_batch::BatchHeader {
    record_batch::BatchHeader {
        base_offset: batch.base_offset(),
        batch_length: (batch.size() - record_batch::LOG_OVERHEAD) as i32,
        last_offset_delta: batch.last_offset_delta(),
    }
}

/// Whether any batch in `bytes` (whole batches) holds a record, and the offset after the last.
fn records_and_end(bytes: &[u8]) -> (bool, Option<u64>) {
    let mut rest = bytes;
    let mut has_records = false;
    let mut next = None;
    while let Ok(h) = record_batch::BatchHeader::parse(rest, usize::MAX) {
        if rest.len() < h.size() || rest.len() < record_batch::HEADER_LEN {
            break;
        }
        // recordsCount: the last field of the header.
        let count = &rest[record_batch::HEADER_LEN - 4..record_batch::HEADER_LEN];
        has_records |= i32::from_be_bytes([count[0], count[1], count[2], count[3]]) > 0;
        next = Some(h.last_offset() as u64 + 1);
        rest = &rest[h.size()..];
    }
    (has_records, next)
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: u64,
    pub last_offset: u64,
    /// Largest max-timestamp among the appended batches.
    pub max_timestamp_ms: i64,
    pub batches: usize,
    pub bytes: usize,
}

/// What retention deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub segments_deleted: usize,
    pub bytes_deleted: u64,
    pub log_start_offset: u64,
}

/// A partition log. Single writer: callers serialise access (the broker wraps it in a lock or
/// gives it to one task).
///
/// Offsets: `log_start_offset <= flushed_offset <= log_end_offset` always, where everything below
/// `flushed_offset` has been fsynced (with its directory entry) and survives any crash.
#[derive(Debug)]
pub struct Log {
    pub(super) disk: Arc<dyn Disk>,
    pub(super) dir: PathBuf,
    pub(super) config: LogConfig,
    /// Keyed by base offset; never empty. The last one is the active segment.
    pub(super) segments: BTreeMap<u64, Segment>,
    flushed_offset: u64,
    appends_since_flush: u64,
    last_flush_mono_ms: u64,
    /// Segments were created or removed since the directory was last synced.
    dir_unsynced: bool,
    /// A log start offset moved inside the first segment (DeleteRecords, or a follower taking
    /// its leader's): offsets below it are gone to readers though their segment is not.
    /// The log start is the larger of this and the first segment's base.
    start_floor: u64,
    /// The recovery point this log was opened with: what lies above it was re-read then.
    opened_recovery_point: u64,
    /// Below this the cleaner has compacted the log (in memory only: after a restart the whole
    /// log counts as dirty once, which costs a clean, never a key).
    pub(super) first_dirty_offset: u64,
    /// A flush failed: every later one fails too (see [`Log::flush`]).
    sync_failed: Option<String>,
    /// Segments below the active one that got aborted-transaction entries since the last
    /// flush (by base offset).
    aborted_dirty_below: BTreeSet<u64>,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering it. Data below `recovery_point` was
    /// fsynced by an earlier run and is trusted (see [`Segment::open`]). Returns the log and a
    /// line for each repair made, for the caller to log.
    pub fn open(
        disk: Arc<dyn Disk>,
        dir: &Path,
        config: LogConfig,
        recovery_point: u64,
    ) -> Result<(Log, Vec<String>), LogError> {
        let mut notes = Vec::new();
        if !disk.is_dir(dir) {
            if disk.exists(dir) {
                return Err(LogError::BadDirectory {
                    path: dir.to_path_buf(),
                    what: "exists but is not a directory".into(),
                });
            }
            disk.create_dir_all(dir).map_err(|e| LogError::io(dir, e))?;
            if let Some(parent) = dir.parent() {
                disk.sync_dir(parent).map_err(|e| LogError::io(parent, e))?;
            }
        }
        let mut names = disk.list(dir).map_err(|e| LogError::io(dir, e))?;
        // A cleaner's swap that was committed (its `.log.swap` is durable) is finished first.
        if super::cleaner::finish_swaps(disk.as_ref(), dir, &names, &mut notes)? {
            names = disk.list(dir).map_err(|e| LogError::io(dir, e))?;
        }
        let mut bases: Vec<u64> = Vec::new();
        for name in &names {
            if let Some(base) = parse_log_file_name(name) {
                bases.push(base);
            }
        }
        // Leftovers of interrupted work, and indexes whose segment is gone.
        let mut removed_any = false;
        for name in &names {
            // Swaps were finished above; what `.swap` is left is an index of one never committed.
            let stale = [".tmp", ".deleted", ".cleaned", ".swap"]
                .iter()
                .any(|s| name.ends_with(s));
            let orphan = ["index", "timeindex", "txnindex"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .and_then(|stem| stem.strip_suffix('.'))
                    .and_then(|stem| parse_log_file_name(&format!("{stem}.log")))
                    .is_some_and(|base| !bases.contains(&base))
            });
            if stale || orphan {
                let path = dir.join(name);
                disk.remove(&path).map_err(|e| LogError::io(&path, e))?;
                notes.push(format!("{}: removed leftover file", path.display()));
                removed_any = true;
            }
        }
        let mut segments = BTreeMap::new();
        let mut truncated = false;
        let mut expected_base: Option<u64> = None;
        for base in bases {
            // Compaction leaves gaps between segments too, never overlaps.
            let contiguous =
                expected_base.is_none_or(|e| e == base || (config.offset_gaps_allowed && e < base));
            if truncated || !contiguous {
                let seg_path = dir.join(file_name(base, "log"));
                for suffix in ["log", "index", "timeindex", "txnindex"] {
                    let p = dir.join(file_name(base, suffix));
                    if disk.exists(&p) {
                        disk.remove(&p).map_err(|e| LogError::io(&p, e))?;
                    }
                }
                notes.push(format!(
                    "{}: deleted: it follows a truncated or missing stretch of the log",
                    seg_path.display()
                ));
                removed_any = true;
                continue;
            }
            let (segment, note) = Segment::open(
                disk.as_ref(),
                dir,
                base,
                recovery_point,
                config.index_interval_bytes,
                config.max_batch_bytes,
                config.offset_gaps_allowed,
            )?;
            if let Some(note) = note {
                notes.push(note);
                truncated = true;
            }
            expected_base = Some(segment.next_offset());
            segments.insert(base, segment);
        }
        let mut dir_unsynced = removed_any;
        if segments.is_empty() {
            let segment = Segment::create(
                disk.as_ref(),
                dir,
                0,
                config.index_interval_bytes,
                config.max_batch_bytes,
                config.offset_gaps_allowed,
            )?;
            segments.insert(0, segment);
            dir_unsynced = true;
        }
        let mut log = Log {
            disk,
            dir: dir.to_path_buf(),
            config,
            segments,
            flushed_offset: 0,
            appends_since_flush: 0,
            last_flush_mono_ms: 0,
            dir_unsynced,
            start_floor: 0,
            opened_recovery_point: recovery_point,
            first_dirty_offset: 0,
            sync_failed: None,
            aborted_dirty_below: BTreeSet::new(),
        };
        // Everything recovered is valid; make it the durable baseline before accepting appends.
        log.flush()?;
        Ok((log, notes))
    }

    fn active(&self) -> &Segment {
        match self.segments.values().next_back() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    fn active_mut(&mut self) -> &mut Segment {
        match self.segments.values_mut().next_back() {
            Some(s) => s,
            None => unreachable!("a log always has an active segment"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> &LogConfig {
        &self.config
    }
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }
    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        let first_base = self.segments.keys().next().copied().unwrap_or(0);
        first_base.max(self.start_floor.min(self.log_end_offset()))
    }

    /// The recovery point the log was opened with: batches above it were re-read at open, and
    /// the files kept beside the log (epoch checkpoint, producer snapshot) may not know them.
    pub fn opened_recovery_point(&self) -> u64 {
        self.opened_recovery_point
    }

    /// Whether the log start lies inside the first segment, not at its base: only then must it
    /// be checkpointed, as reopening the segments alone would not give it back.
    pub fn start_inside_segment(&self) -> bool {
        self.log_start_offset() > self.segments.keys().next().copied().unwrap_or(0)
    }

    /// Moves the log start up to `offset` (at most the log end): everything below it is gone to
    /// readers, and the segments wholly below it are deleted, never the active one (Kafka's
    /// `maybeIncrementLogStartOffset` and the deletion that follows). The caller checkpoints the
    /// new start (`log-start-offset-checkpoint`) when [`Self::start_inside_segment`]. Returns
    /// the log start.
    pub fn advance_start_to(&mut self, offset: u64) -> Result<u64, LogError> {
        let offset = offset.min(self.log_end_offset());
        if offset <= self.log_start_offset() {
            return Ok(self.log_start_offset());
        }
        // What stays readable from the new start on is durable first: recovery trusts the log
        // below its flushed offset, which never lies under the log start.
        if offset > self.flushed_offset {
            self.flush()?;
        }
        self.start_floor = offset;
        self.delete_segments_below(offset)
    }
    /// One past the last offset in the log (Kafka's log end offset).
    pub fn log_end_offset(&self) -> u64 {
        self.active().next_offset()
    }
    /// Everything below this offset is durable.
    pub fn flushed_offset(&self) -> u64 {
        self.flushed_offset
    }
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size_bytes).sum()
    }
    pub fn segment_base_offsets(&self) -> Vec<u64> {
        self.segments.keys().copied().collect()
    }

    /// The base offset of the segment appends go to (0 for an empty log).
    pub fn active_segment_base(&self) -> u64 {
        self.segments.keys().next_back().copied().unwrap_or(0)
    }

    /// Appends the batches in `data` as a leader: validates each (header and CRC-32C), assigns
    /// offsets from the log end by rewriting base offsets, stamps `leader_epoch` if given and
    /// LogAppendTime batches with `now_ms`. All or nothing: on error nothing is appended.
    pub fn append(
        &mut self,
        data: &mut [u8],
        leader_epoch: Option<i32>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let mut batches = Vec::new();
        let mut next = self.log_end_offset();
        let mut at = 0;
        while at < data.len() {
            let (header, log_append_time, max_timestamp_ms) = {
                let (batch, _) = RecordBatch::parse(&data[at..], self.config.max_batch_bytes)
                    .map_err(|reason| LogError::InvalidBatch {
                        position: at,
                        reason,
                    })?;
                (
                    header_of(&batch),
                    batch.is_log_append_time(),
                    batch.max_timestamp(),
                )
            };
            let size = header.size();
            let bytes = &mut data[at..at + size];
            record_batch::set_base_offset(bytes, next as i64);
            if let Some(epoch) = leader_epoch {
                record_batch::set_partition_leader_epoch(bytes, epoch);
            }
            let max_timestamp_ms = if log_append_time {
                record_batch::set_max_timestamp(bytes, now_ms);
                now_ms
            } else {
                max_timestamp_ms
            };
            let header = record_batch::BatchHeader {
                base_offset: next as i64,
                ..header
            };
            batches.push((at, header, max_timestamp_ms));
            next = header.last_offset() as u64 + 1;
            at += size;
        }
        self.write_batches(data, &batches, now_ms)
    }

    /// Appends batches whose offsets were assigned elsewhere (a follower copying its leader, or
    /// a Raft log): each is validated and they must continue the log end without a gap.
    pub fn append_verbatim(&mut self, data: &[u8], now_ms: i64) -> Result<AppendInfo, LogError> {
        let mut batches = Vec::new();
        let mut expected = self.log_end_offset();
        let mut rest = data;
        while !rest.is_empty() {
            let position = data.len() - rest.len();
            let (batch, tail) = RecordBatch::parse(rest, self.config.max_batch_bytes)
                .map_err(|reason| LogError::InvalidBatch { position, reason })?;
            let base = batch.base_offset() as u64;
            // A compacted leader's log has gaps, and its followers copy them.
            let continues =
                base == expected || (self.config.offset_gaps_allowed && base > expected);
            if !continues {
                return Err(LogError::NonContiguous {
                    expected,
                    got: batch.base_offset() as u64,
                });
            }
            batches.push((position, header_of(&batch), batch.max_timestamp()));
            expected = batch.last_offset() as u64 + 1;
            rest = tail;
        }
        self.write_batches(data, &batches, now_ms)
    }

    /// Writes validated batches (`(position in data, header, max timestamp)`) at the log end.
    fn write_batches(
        &mut self,
        data: &[u8],
        batches: &[(usize, record_batch::BatchHeader, i64)],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else {
            return Err(LogError::EmptyAppend);
        };
        let info = AppendInfo {
            first_offset: first.1.base_offset as u64,
            last_offset: last.1.last_offset() as u64,
            max_timestamp_ms: batches.iter().map(|b| b.2).max().unwrap_or(-1),
            batches: batches.len(),
            bytes: data.len(),
        };
        assert!(
            info.first_offset == self.log_end_offset()
                || (self.config.offset_gaps_allowed && info.first_offset > self.log_end_offset()),
            "appends continue the log end"
        );
        if self.should_roll(data.len() as u64, info.last_offset, now_ms) {
            self.roll()?;
        }
        self.active_mut().append(data, batches)?;
        self.appends_since_flush += 1;
        debug_assert!(self.flushed_offset <= self.log_end_offset());
        Ok(info)
    }

    fn should_roll(&self, incoming_bytes: u64, last_offset: u64, now_ms: i64) -> bool {
        let active = self.active();
        if active.is_empty() {
            return false;
        }
        let too_big = active.size_bytes() + incoming_bytes > self.config.segment_bytes_max;
        // A compacted log also rolls by `max.compaction.lag.ms`, so the cleaner can reach
        // records that old (the active segment is never cleaned).
        let roll_ms = if self.config.cleanup.compact {
            self.config
                .segment_ms
                .min(self.config.max_compaction_lag_ms)
        } else {
            self.config.segment_ms
        };
        let too_old = active
            .first_batch_timestamp_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) > roll_ms);
        let offsets_overflow = last_offset - active.base_offset > u64::from(u32::MAX);
        let index_full = active.index_entry_count() >= MAX_INDEX_ENTRIES;
        too_big || too_old || offsets_overflow || index_full
    }

    /// Starts a new active segment at the log end (no-op if the active one is empty).
    pub fn roll(&mut self) -> Result<(), LogError> {
        if self.active().is_empty() {
            return Ok(());
        }
        let base = self.log_end_offset();
        // The finished segment is durable before the next one exists: a crash can then lose
        // only the tail of the active segment, never a stretch between two segments, which a
        // log with gaps could not tell from a compacted one.
        self.flush()?;
        self.active_mut().persist_indexes(false)?;
        let segment = Segment::create(
            self.disk.as_ref(),
            &self.dir,
            base,
            self.config.index_interval_bytes,
            self.config.max_batch_bytes,
            self.config.offset_gaps_allowed,
        )?;
        self.segments.insert(base, segment);
        self.dir_unsynced = true;
        Ok(())
    }

    /// Fsyncs everything written (data, indexes, directory entries) and returns the new
    /// flushed offset. One call covers every append before it: group commit.
    pub fn flush(&mut self) -> Result<u64, LogError> {
        // After a failed fsync the kernel may have dropped the dirty pages while reads still
        // see them: a later fsync that succeeds proves nothing about them, so no flush ever
        // succeeds again (a roll's flush that failed, followed by the writer's group flush,
        // acknowledged lost appends: storage simulation, seeds 8, 36, 53).
        if let Some(what) = &self.sync_failed {
            return Err(LogError::io(
                &self.dir,
                std::io::Error::other(format!("an earlier fsync of this log failed: {what}")),
            ));
        }
        let result = self.flush_unpoisoned();
        if let Err(e) = &result {
            self.sync_failed = Some(e.to_string());
        }
        result
    }

    fn flush_unpoisoned(&mut self) -> Result<u64, LogError> {
        let end = self.log_end_offset();
        // Only the segment holding the flushed offset and those after it can have unsynced data.
        let first_unsynced = self
            .segments
            .range(..=self.flushed_offset)
            .next_back()
            .map_or(0, |(base, _)| *base);
        let disk = self.disk.as_ref();
        for segment in self.segments.range_mut(first_unsynced..).map(|(_, s)| s) {
            self.dir_unsynced |= segment.sync(disk)?;
        }
        // Older segments change only by getting aborted-transaction entries back (the broker
        // rebuilding its producer state after a crash).
        for base in std::mem::take(&mut self.aborted_dirty_below) {
            if base < first_unsynced {
                if let Some(segment) = self.segments.get_mut(&base) {
                    self.dir_unsynced |= segment.sync(disk)?;
                }
            }
        }
        if self.dir_unsynced {
            self.disk
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io(&self.dir, e))?;
            self.dir_unsynced = false;
        }
        assert!(
            end >= self.flushed_offset,
            "flushed offset must not go back"
        );
        self.flushed_offset = end;
        self.appends_since_flush = 0;
        Ok(end)
    }

    /// Flushes if the [`FlushPolicy`] says it is time. Returns whether it flushed.
    pub fn maybe_flush(&mut self, now_mono_ms: u64) -> Result<bool, LogError> {
        let due = match self.config.flush {
            FlushPolicy::EveryAppend => self.appends_since_flush > 0,
            FlushPolicy::Interval {
                messages,
                interval_ms,
            } => {
                self.appends_since_flush >= messages
                    || (self.appends_since_flush > 0
                        && now_mono_ms.saturating_sub(self.last_flush_mono_ms) >= interval_ms)
            }
        };
        if due {
            self.flush()?;
            self.last_flush_mono_ms = now_mono_ms;
        }
        Ok(due)
    }

    /// Reads whole batches from `offset`: up to `max_bytes` (the first batch whole regardless),
    /// from one segment, none at or past `max_offset` (e.g. the high watermark).
    pub fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        max_offset: Option<u64>,
    ) -> Result<Vec<u8>, LogError> {
        let end = self.log_end_offset();
        let start = self.log_start_offset();
        if offset < start || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: start,
                log_end: end,
            });
        }
        let max_offset = max_offset.unwrap_or(end).min(end);
        let mut out: Vec<u8> = Vec::new();
        let mut from = offset;
        for (_, segment) in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset + 1..))
        {
            let room = max_bytes.saturating_sub(out.len());
            if from >= max_offset || (!out.is_empty() && room == 0) {
                break;
            }
            let bytes = segment.read(from, room, max_offset)?;
            if bytes.is_empty() {
                // Nothing here at or past `from` below `max_offset` (a truncation into a gap
                // can leave a segment's end past its last batch): the next segment may have it.
                continue;
            }
            if !out.is_empty() && bytes.len() > room {
                break; // only the first batch of a read may exceed max_bytes
            }
            let (has_records, next) = records_and_end(&bytes);
            out.extend_from_slice(&bytes);
            // A compacted log can hold segments of nothing but empty batches (a producer's
            // last, kept for its sequence numbers); a read that returned only those goes on to
            // the next segment, as a client that got no record would take the answer for a
            // record too large to fetch (librdkafka gives up after ten such answers).
            // Only a segment read to its end lets the read go on: a batch it could not fit
            // must not be skipped.
            if has_records || next.is_none_or(|n| n <= from || n < segment.next_offset()) {
                break;
            }
            from = next.unwrap_or(from);
        }
        Ok(out)
    }

    /// The first batch at or after `from_offset` whose max timestamp is at least `timestamp_ms`
    /// (ListOffsets by timestamp; the caller finds the record inside it).
    pub fn find_by_timestamp(
        &self,
        timestamp_ms: i64,
        from_offset: u64,
    ) -> Result<Option<Vec<u8>>, LogError> {
        for segment in self.segments.values() {
            if segment.next_offset() <= from_offset {
                continue;
            }
            if let Some(bytes) = segment.find_by_timestamp(timestamp_ms, from_offset)? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the last offset of the batch carrying it
    /// (ListOffsets MAX_TIMESTAMP), or `None` if the log has no batches.
    pub fn max_timestamp(&self) -> Option<(i64, u64)> {
        self.segments
            .values()
            .filter(|s| !s.is_empty())
            .map(|s| (s.max_timestamp_ms(), s.offset_of_max_timestamp()))
            .fold(None, |best: Option<(i64, u64)>, cur| match best {
                Some(b) if b.0 >= cur.0 => Some(b),
                _ => Some(cur),
            })
    }

    /// Removes every batch whose last offset is at least `offset` (so the new end may be below
    /// `offset` when it falls inside a batch). Durable before it returns. Returns the new log end.
    pub fn truncate_to(&mut self, offset: u64) -> Result<u64, LogError> {
        let result = self.truncate_steps(offset);
        // What is appended from here on is dirty, whatever the cleaner had done above it.
        self.first_dirty_offset = self.first_dirty_offset.min(self.log_end_offset());
        // A step that failed (an fsync error) may come after the log end moved down: what is
        // flushed never lies past the end, or the next flush would find it going back (the
        // cluster simulation, seed 32261: a follower's truncation failed, then the writer's
        // flush asserted).
        self.flushed_offset = self.flushed_offset.min(self.log_end_offset());
        result
    }

    fn truncate_steps(&mut self, offset: u64) -> Result<u64, LogError> {
        if offset >= self.log_end_offset() {
            return Ok(self.log_end_offset());
        }
        if offset <= self.log_start_offset() {
            let start = self.log_start_offset();
            self.reset_to(start)?;
            return Ok(start);
        }
        // Whole segments above the cut go; the one holding it is cut.
        // Newest first: a crash keeps a prefix of the removals, which then cut the log's end,
        // never leave a hole with discarded data after it (a log with gaps could not tell).
        let doomed: Vec<u64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in doomed.into_iter().rev() {
            if let Some(segment) = self.segments.remove(&base) {
                segment.remove_files(self.disk.as_ref(), &self.dir)?;
                self.dir_unsynced = true;
            }
        }
        let new_end = self.active_mut().truncate_to(offset)?;
        if new_end < self.start_floor {
            // The cut fell inside the batch holding the log start: nothing readable is left.
            let start = self.start_floor;
            self.reset_to(start)?;
            return Ok(start);
        }
        if self.active().is_empty() && self.segments.len() > 1 {
            if let Some((base, segment)) = self.segments.pop_last() {
                segment.remove_files(self.disk.as_ref(), &self.dir)?;
                debug_assert_eq!(base, self.log_end_offset());
            }
        }
        if self.dir_unsynced {
            self.disk
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io(&self.dir, e))?;
            self.dir_unsynced = false;
        }
        self.flushed_offset = self.flushed_offset.min(new_end);
        Ok(new_end)
    }

    /// Records a transaction aborted by the marker at `entry.last_offset`, which must be in the
    /// log, in the `.txnindex` of the segment holding it. Markers come in offset order (the
    /// broker's producer state makes the entries as it applies the batches). Reaches the disk
    /// at the next flush.
    pub fn append_aborted(&mut self, entry: AbortedTxn) {
        let active = self.active_segment_base();
        let Some((base, segment)) = self
            .segments
            .range_mut(..=entry.last_offset.max(0) as u64)
            .next_back()
        else {
            // Below the first segment: gone to retention already, no reader can need it.
            return;
        };
        segment.push_aborted(entry);
        if *base != active {
            self.aborted_dirty_below.insert(*base);
        }
    }

    /// The aborted transactions a read of `from..to` must name to a `read_committed`
    /// consumer: those whose marker is at or after `from` and whose records begin before
    /// `to`. A marker lies in a segment at or after the one holding `from`; a transaction's
    /// first offset can be anywhere before its marker, so every later segment is looked at.
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTxn> {
        let first = self
            .segments
            .range(..=from.max(0) as u64)
            .next_back()
            .map_or(0, |(base, _)| *base);
        let mut out = Vec::new();
        for segment in self.segments.range(first..).map(|(_, s)| s) {
            segment.collect_aborted(from, to, &mut out);
        }
        out
    }

    /// Drops, durably, every aborted-transaction entry whose marker is at or after `offset`:
    /// the broker rebuilds them from its producer snapshot at `offset` on.
    pub fn truncate_aborted_from(&mut self, offset: u64) -> Result<(), LogError> {
        let first = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(0, |(base, _)| *base);
        let mut result = Ok(());
        for segment in self.segments.range_mut(first..).map(|(_, s)| s) {
            if let Err(e) = segment.truncate_aborted_from(offset) {
                result = Err(e);
            }
        }
        // Stale entries may be left in a file: a later flush, and so a producer snapshot that
        // would trust them, must not succeed.
        if let Err(e) = &result {
            self.sync_failed = Some(e.to_string());
        }
        result
    }

    /// Every aborted-transaction entry, oldest first (tests and recovery checks).
    pub fn all_aborted(&self) -> Vec<AbortedTxn> {
        self.segments
            .values()
            .flat_map(|s| s.aborted().iter().copied())
            .collect()
    }

    /// Deletes the segments that lie wholly below `offset`, oldest first, never the active one
    /// (the metadata log below a snapshot). Durable before it returns. Returns the new start.
    pub fn delete_segments_below(&mut self, offset: u64) -> Result<u64, LogError> {
        let mut deleted = false;
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.values().next() else {
                break;
            };
            if oldest.next_offset() > offset {
                break;
            }
            let Some((_, segment)) = self.segments.pop_first() else {
                break;
            };
            segment.remove_files(self.disk.as_ref(), &self.dir)?;
            deleted = true;
        }
        if deleted {
            self.disk
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io(&self.dir, e))?;
        }
        self.flushed_offset = self.flushed_offset.max(self.log_start_offset());
        Ok(self.log_start_offset())
    }

    /// Deletes everything and starts empty at `offset` (Kafka's `truncateFullyAndStartAt`).
    pub fn reset_to(&mut self, offset: u64) -> Result<(), LogError> {
        // On disk the old files go first, newest first, and the new segment comes last: a crash
        // keeps a prefix of these, which is the old log cut short or the reset done, never the
        // new segment with old data after a gap. In memory nothing changes until then, so a
        // failed removal leaves a log whose end and flushed offset agree.
        for s in self.segments.values().rev() {
            s.remove_files(self.disk.as_ref(), &self.dir)?;
        }
        let segment = Segment::create(
            self.disk.as_ref(),
            &self.dir,
            offset,
            self.config.index_interval_bytes,
            self.config.max_batch_bytes,
            self.config.offset_gaps_allowed,
        )?;
        self.segments = BTreeMap::from([(offset, segment)]);
        self.start_floor = offset;
        self.first_dirty_offset = self.first_dirty_offset.min(offset);
        self.dir_unsynced = true;
        self.flushed_offset = 0;
        self.flush()?;
        Ok(())
    }

    /// Deletes whole segments, oldest first, that `retention.ms` or `retention.bytes` say are
    /// expired. Never the active segment, never one holding offsets at or above `delete_below`
    /// (the high watermark: data not yet replicated must not go).
    pub fn apply_retention(
        &mut self,
        now_ms: i64,
        delete_below: u64,
    ) -> Result<RetentionReport, LogError> {
        let mut report = RetentionReport::default();
        if !self.config.cleanup.delete {
            report.log_start_offset = self.log_start_offset();
            return Ok(report);
        }
        let mut size = self.size_bytes();
        while self.segments.len() > 1 {
            let Some(oldest) = self.segments.values().next() else {
                break;
            };
            let expired_by_time = self.config.retention_ms >= 0
                && oldest.max_timestamp_ms() >= 0
                && now_ms.saturating_sub(oldest.max_timestamp_ms()) > self.config.retention_ms;
            let expired_by_size = self.config.retention_bytes >= 0
                && size.saturating_sub(oldest.size_bytes()) >= self.config.retention_bytes as u64;
            if !(expired_by_time || expired_by_size) || oldest.next_offset() > delete_below {
                break;
            }
            let Some((_, segment)) = self.segments.pop_first() else {
                break;
            };
            segment.remove_files(self.disk.as_ref(), &self.dir)?;
            size -= segment.size_bytes();
            report.segments_deleted += 1;
            report.bytes_deleted += segment.size_bytes();
            self.dir_unsynced = true;
        }
        if report.segments_deleted > 0 {
            self.disk
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io(&self.dir, e))?;
            self.dir_unsynced = false;
        }
        self.flushed_offset = self.flushed_offset.max(self.log_start_offset());
        report.log_start_offset = self.log_start_offset();
        Ok(report)
    }

    /// Flushes data and indexes: after this, reopening needs no recovery scan.
    pub fn close(mut self) -> Result<u64, LogError> {
        let end = self.flush()?;
        let disk = self.disk.as_ref();
        for segment in self.segments.values_mut() {
            // Every aborted-transaction entry was synced by the flush: nothing is created here.
            segment.sync_all(disk)?;
        }
        Ok(end)
    }
}
