//! Where the quorum keeps its state on disk: the metadata log (`__cluster_metadata-0`, record
//! batches in our partition log, one entry per batch with the entry's epoch as the batch's
//! partition leader epoch), its snapshots (`<offset>-<epoch>.checkpoint`, see
//! [`super::snapshot_file`]) and the `quorum-state` file (Kafka's JSON format), all in
//! `metadata.log.dir`.

use super::snapshot_file;
use super::wire::{entries_from_batches, entry_batch};
use super::QuorumError;
use crate::log::{Log, LogError};
use crate::model::NodeId;
use crate::protocol::record_batch::RecordBatch;
use crate::raft::{Entry, Epoch, LogFailure, QuorumState, RaftLog, SnapshotId};
use crate::runtime::Disk;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The metadata log's directory name, as Kafka's.
pub const METADATA_LOG_DIR_NAME: &str = "__cluster_metadata-0";
pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// The metadata log: our partition log plus the epoch of each stretch of it (Kafka's
/// leader-epoch cache), rebuilt by reading the log at open, and the latest snapshot.
pub struct DiskRaftLog {
    log: Log,
    disk: Arc<dyn Disk>,
    /// (epoch, first offset of that epoch), ascending.
    epochs: Vec<(Epoch, u64)>,
    snapshot: Option<SnapshotId>,
}

impl std::fmt::Debug for DiskRaftLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskRaftLog")
            .field("log", &self.log)
            .field("epochs", &self.epochs)
            .field("snapshot", &self.snapshot)
            .finish()
    }
}

fn io_failure(path: &Path, e: std::io::Error) -> LogError {
    LogError::io(path, e)
}

impl DiskRaftLog {
    /// Opens the metadata log in `log`'s directory with its newest readable snapshot. A log that
    /// starts after every snapshot it has lost entries no snapshot covers: refused. A log that
    /// ends before its snapshot (a crash while a fetched snapshot was installed) is emptied to
    /// start at the snapshot, as the install would have.
    pub fn open(mut log: Log, disk: Arc<dyn Disk>) -> Result<DiskRaftLog, LogError> {
        let dir = log.dir().to_path_buf();
        let names = disk.list(&dir).map_err(|e| io_failure(&dir, e))?;
        let mut ids: Vec<SnapshotId> = names
            .iter()
            .filter_map(|n| snapshot_file::parse_file_name(n))
            .collect();
        ids.sort_unstable();
        let mut snapshot = None;
        while let Some(id) = ids.pop() {
            let path = dir.join(snapshot_file::file_name(id));
            let valid = disk
                .read_file(&path)
                .map_err(|e| e.to_string())
                .and_then(|bytes| {
                    snapshot_file::decode(&bytes)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                });
            match valid {
                Ok(()) => {
                    snapshot = Some(id);
                    break;
                }
                Err(e) => tracing::error!("{}: unreadable snapshot, skipped: {e}", path.display()),
            }
        }
        let start = log.log_start_offset();
        if start > snapshot.map_or(0, |s| s.end_offset) {
            return Err(LogError::BadDirectory {
                path: dir,
                what: format!(
                    "the metadata log starts at offset {start} but no snapshot covers the entries before it"
                ),
            });
        }
        if let Some(s) = snapshot {
            if log.log_end_offset() < s.end_offset {
                tracing::warn!(
                    snapshot = s.end_offset,
                    log_end = log.log_end_offset(),
                    "metadata log ends before its snapshot: starting it at the snapshot"
                );
                log.reset_to(s.end_offset)?;
            }
        }
        let mut epochs: Vec<(Epoch, u64)> = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20, None)?;
            let mut rest = &bytes[..];
            if rest.is_empty() {
                break;
            }
            while !rest.is_empty() {
                let (batch, tail) = RecordBatch::parse(rest, usize::MAX).map_err(|reason| {
                    LogError::InvalidBatch {
                        position: 0,
                        reason,
                    }
                })?;
                let epoch = batch.partition_leader_epoch();
                if epochs.last().is_none_or(|(e, _)| *e < epoch) {
                    epochs.push((epoch, batch.base_offset() as u64));
                }
                offset = batch.last_offset() as u64 + 1;
                rest = tail;
            }
        }
        Ok(DiskRaftLog {
            log,
            disk,
            epochs,
            snapshot,
        })
    }

    fn snapshot_path(&self, id: SnapshotId) -> PathBuf {
        self.log.dir().join(snapshot_file::file_name(id))
    }

    /// The latest snapshot's bytes, for the state machine to start from.
    pub fn read_latest_snapshot(&self) -> Option<Result<(SnapshotId, Vec<u8>), QuorumError>> {
        let id = self.snapshot?;
        let path = self.snapshot_path(id);
        Some(
            self.disk
                .read_file(&path)
                .map(|bytes| (id, bytes))
                .map_err(|source| QuorumError::SnapshotRead {
                    path: path.display().to_string(),
                    source,
                }),
        )
    }

    /// Writes a snapshot durably (temporary file, fsync, rename, fsync of the directory) and
    /// removes older ones.
    fn write_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure> {
        let path = self.snapshot_path(id);
        self.disk
            .write_file_atomic(&path, bytes)
            .map_err(|e| LogFailure::caused_by(path.display().to_string(), e))?;
        let old = self.snapshot.replace(id);
        if let Some(old) = old.filter(|o| *o != id) {
            let old_path = self.snapshot_path(old);
            if let Err(e) = self.disk.remove(&old_path) {
                tracing::warn!("{}: cannot remove an old snapshot: {e}", old_path.display());
            }
        }
        Ok(())
    }

    /// Makes every entry durable; returns the durable end.
    pub fn flush(&mut self) -> Result<u64, LogError> {
        self.log.flush()
    }

    pub fn log(&self) -> &Log {
        &self.log
    }
}

impl RaftLog for DiskRaftLog {
    fn start_offset(&self) -> u64 {
        self.log.log_start_offset()
    }

    fn end_offset(&self) -> u64 {
        self.log.log_end_offset()
    }

    fn last_epoch(&self) -> Epoch {
        match (self.epochs.last(), self.snapshot) {
            (Some((e, _)), _) => *e,
            (None, Some(s)) if s.end_offset == self.start_offset() => s.epoch,
            _ => 0,
        }
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, u64) {
        match self.epochs.iter().rposition(|(e, _)| *e <= epoch) {
            Some(i) => {
                let end = self
                    .epochs
                    .get(i + 1)
                    .map_or(self.end_offset(), |(_, start)| *start);
                (self.epochs[i].0, end)
            }
            None => match self.snapshot {
                Some(s) if s.epoch <= epoch && s.end_offset == self.start_offset() => {
                    (s.epoch, s.end_offset)
                }
                _ => (0, self.start_offset()),
            },
        }
    }

    fn read(&self, from: u64, max_entries: usize) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut offset = from;
        while out.len() < max_entries && offset < self.end_offset() {
            let bytes = match self.log.read(offset, 256 << 10, None) {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!("reading the metadata log at {offset}: {e}");
                    break;
                }
            };
            match entries_from_batches(&bytes) {
                Ok(entries) => {
                    for e in entries {
                        if e.offset >= offset && out.len() < max_entries {
                            offset = e.offset + 1;
                            out.push(e);
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("the metadata log holds an unreadable batch at {offset}: {e}");
                    break;
                }
            }
        }
        out
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), LogFailure> {
        let mut bytes = Vec::new();
        for e in entries {
            bytes.extend(entry_batch(e));
        }
        if bytes.is_empty() {
            return Ok(());
        }
        self.log
            .append_verbatim(&bytes, 0)
            .map_err(|e| LogFailure::caused_by("the metadata log", e))?;
        for e in entries {
            if self.epochs.last().is_none_or(|(last, _)| *last < e.epoch) {
                self.epochs.push((e.epoch, e.offset));
            }
        }
        Ok(())
    }

    fn truncate_to(&mut self, offset: u64) -> Result<(), LogFailure> {
        let end = self
            .log
            .truncate_to(offset)
            .map_err(|e| LogFailure::caused_by("the metadata log", e))?;
        self.epochs.retain(|(_, start)| *start < end);
        Ok(())
    }

    fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.snapshot
    }

    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Option<(Vec<u8>, u64)> {
        if self.snapshot != Some(id) {
            return None;
        }
        let path = self.snapshot_path(id);
        let read = || -> std::io::Result<(Vec<u8>, u64)> {
            let file = self.disk.open(&path)?;
            let size = file.len()?;
            let from = position.min(size);
            let len = (size - from).min(max_bytes as u64) as usize;
            let mut buf = vec![0u8; len];
            file.read_exact_at(&mut buf, from)?;
            Ok((buf, size))
        };
        match read() {
            Ok(chunk) => Some(chunk),
            Err(e) => {
                tracing::error!("{}: {e}", path.display());
                None
            }
        }
    }

    fn store_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure> {
        self.write_snapshot(id, bytes)?;
        let start = self
            .log
            .delete_segments_below(id.end_offset)
            .map_err(|e| LogFailure::caused_by("the metadata log", e))?;
        // Epochs that end at or before the new start are gone with their entries.
        while self.epochs.len() > 1 && self.epochs[1].1 <= start {
            self.epochs.remove(0);
        }
        Ok(())
    }

    fn install_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure> {
        self.write_snapshot(id, bytes)?;
        self.log
            .reset_to(id.end_offset)
            .map_err(|e| LogFailure::caused_by("the metadata log", e))?;
        self.epochs.clear();
        Ok(())
    }
}

/// Kafka's `quorum-state` file.
#[derive(Debug, Serialize, Deserialize)]
struct QuorumStateFile {
    #[serde(rename = "clusterId", default)]
    cluster_id: String,
    #[serde(rename = "leaderId")]
    leader_id: i32,
    #[serde(rename = "leaderEpoch")]
    leader_epoch: i32,
    #[serde(rename = "votedId")]
    voted_id: i32,
    #[serde(rename = "appliedOffset", default)]
    applied_offset: i64,
    #[serde(rename = "currentVoters", default)]
    current_voters: Vec<Voter>,
    #[serde(default)]
    data_version: i32,
}

#[derive(Debug, Serialize, Deserialize)]
struct Voter {
    #[serde(rename = "voterId")]
    voter_id: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumStateError {
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path}: not a quorum-state file: {reason}")]
    Malformed { path: String, reason: String },
}

/// Reads the quorum state; a missing file is the initial state.
pub fn read_quorum_state(disk: &dyn Disk, path: &Path) -> Result<QuorumState, QuorumStateError> {
    if !disk.exists(path) {
        return Ok(QuorumState::default());
    }
    let bytes = disk.read_file(path).map_err(|e| QuorumStateError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let file: QuorumStateFile =
        serde_json::from_slice(&bytes).map_err(|e| QuorumStateError::Malformed {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let id = |v: i32| (v >= 0).then_some(NodeId(v));
    Ok(QuorumState {
        epoch: file.leader_epoch.max(0),
        voted_for: id(file.voted_id),
        leader: id(file.leader_id),
    })
}

/// Replaces the quorum state durably (write, fsync, rename, fsync the directory).
pub fn write_quorum_state(
    disk: &dyn Disk,
    path: &Path,
    state: &QuorumState,
    voters: impl IntoIterator<Item = NodeId>,
) -> Result<(), QuorumStateError> {
    let file = QuorumStateFile {
        cluster_id: String::new(),
        leader_id: state.leader.map_or(-1, |n| n.0),
        leader_epoch: state.epoch,
        voted_id: state.voted_for.map_or(-1, |n| n.0),
        applied_offset: 0,
        current_voters: voters
            .into_iter()
            .map(|v| Voter { voter_id: v.0 })
            .collect(),
        data_version: 0,
    };
    let text = serde_json::to_vec(&file).map_err(|e| QuorumStateError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    disk.write_file_atomic(path, &text)
        .map_err(|e| QuorumStateError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;
    use crate::runtime::{DiskFaults, SimDisk};
    use std::path::PathBuf;
    use std::sync::Arc;

    fn entry(offset: u64, epoch: Epoch) -> Entry {
        Entry {
            offset,
            epoch,
            data: format!("e{offset}@{epoch}").into_bytes(),
        }
    }

    #[test]
    fn the_disk_log_keeps_entries_and_epochs_across_a_reopen() {
        let sim = SimDisk::new(1, DiskFaults::default());
        let disk: Arc<dyn Disk> = Arc::new(sim);
        let dir = PathBuf::from("/meta").join(METADATA_LOG_DIR_NAME);
        let (log, _) = Log::open(Arc::clone(&disk), &dir, LogConfig::default(), 0).unwrap();
        let mut raft_log = DiskRaftLog::open(log, Arc::clone(&disk)).unwrap();
        raft_log
            .append(&[entry(0, 1), entry(1, 1), entry(2, 3)])
            .unwrap();
        raft_log.append(&[entry(3, 3), entry(4, 4)]).unwrap();
        assert_eq!(raft_log.end_offset_for_epoch(1), (1, 2));
        assert_eq!(raft_log.end_offset_for_epoch(2), (1, 2));
        assert_eq!(raft_log.end_offset_for_epoch(3), (3, 4));
        assert_eq!(raft_log.end_offset_for_epoch(9), (4, 5));
        assert_eq!(raft_log.end_offset_for_epoch(0), (0, 0));
        raft_log.truncate_to(3).unwrap();
        assert_eq!(raft_log.last_epoch(), 3);
        raft_log.flush().unwrap();
        let flushed = raft_log.log.flushed_offset();
        drop(raft_log);
        let (log, _) = Log::open(Arc::clone(&disk), &dir, LogConfig::default(), flushed).unwrap();
        let reopened = DiskRaftLog::open(log, Arc::clone(&disk)).unwrap();
        assert_eq!(
            reopened.read(0, 10),
            vec![entry(0, 1), entry(1, 1), entry(2, 3)]
        );
        assert_eq!(reopened.end_offset_for_epoch(3), (3, 3));
    }

    fn snapshot(id: SnapshotId) -> Vec<u8> {
        let records = vec![crate::controller::MetadataRecord::Topic {
            name: "t".into(),
            topic_id: crate::model::Uuid::from_random([1; 16]).to_string(),
        }];
        snapshot_file::encode(id, &records, 0).unwrap()
    }

    /// Entries 0..40 in epochs 1 (0..20) and 2 (20..40), in segments of a few entries each.
    fn small_segment_log(disk: &Arc<dyn Disk>, dir: &Path) -> DiskRaftLog {
        let config = LogConfig {
            segment_bytes_max: 300,
            ..LogConfig::default()
        };
        let (log, _) = Log::open(Arc::clone(disk), dir, config, 0).unwrap();
        let mut raft_log = DiskRaftLog::open(log, Arc::clone(disk)).unwrap();
        for o in 0..40 {
            raft_log
                .append(&[entry(o, if o < 20 { 1 } else { 2 })])
                .unwrap();
        }
        raft_log.flush().unwrap();
        raft_log
    }

    fn reopen(raft_log: DiskRaftLog, disk: &Arc<dyn Disk>, dir: &Path) -> DiskRaftLog {
        let flushed = raft_log.log.flushed_offset();
        drop(raft_log);
        let config = LogConfig {
            segment_bytes_max: 300,
            ..LogConfig::default()
        };
        let (log, _) = Log::open(Arc::clone(disk), dir, config, flushed).unwrap();
        DiskRaftLog::open(log, Arc::clone(disk)).unwrap()
    }

    #[test]
    fn a_snapshot_lets_whole_segments_below_it_go_and_survives_a_reopen() {
        let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(3, DiskFaults::default()));
        let dir = PathBuf::from("/meta").join(METADATA_LOG_DIR_NAME);
        let mut raft_log = small_segment_log(&disk, &dir);
        assert!(raft_log.log.segment_base_offsets().len() > 4);
        let id = SnapshotId {
            end_offset: 25,
            epoch: 2,
        };
        raft_log.store_snapshot(id, &snapshot(id)).unwrap();
        let start = raft_log.start_offset();
        assert!(start > 0 && start <= 25, "start {start}");
        assert_eq!(raft_log.latest_snapshot(), Some(id));
        assert_eq!(
            raft_log.read(start, 1)[0],
            entry(start, if start < 20 { 1 } else { 2 })
        );
        assert_eq!(raft_log.end_offset_for_epoch(2), (2, 40));
        let (chunk, size) = raft_log.read_snapshot(id, 5, 7).unwrap();
        assert_eq!((chunk.len(), size), (7, snapshot(id).len() as u64));
        assert_eq!(chunk, snapshot(id)[5..12]);
        assert!(raft_log
            .read_snapshot(
                SnapshotId {
                    end_offset: 24,
                    epoch: 2
                },
                0,
                7
            )
            .is_none());
        // A newer snapshot replaces the older file.
        let newer = SnapshotId {
            end_offset: 38,
            epoch: 2,
        };
        raft_log.store_snapshot(newer, &snapshot(newer)).unwrap();
        let files: Vec<String> = disk
            .list(&dir)
            .unwrap()
            .into_iter()
            .filter(|n| n.ends_with(".checkpoint"))
            .collect();
        assert_eq!(files, vec![snapshot_file::file_name(newer)]);
        let start = raft_log.start_offset();
        let reopened = reopen(raft_log, &disk, &dir);
        assert_eq!(reopened.latest_snapshot(), Some(newer));
        assert_eq!(reopened.start_offset(), start);
        assert_eq!(reopened.end_offset(), 40);
        assert_eq!(
            reopened.read_latest_snapshot().unwrap().unwrap().1,
            snapshot(newer)
        );
    }

    #[test]
    fn an_installed_snapshot_empties_the_log_and_carries_its_epoch() {
        let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(4, DiskFaults::default()));
        let dir = PathBuf::from("/meta").join(METADATA_LOG_DIR_NAME);
        let mut raft_log = small_segment_log(&disk, &dir);
        let id = SnapshotId {
            end_offset: 100,
            epoch: 5,
        };
        raft_log.install_snapshot(id, &snapshot(id)).unwrap();
        assert_eq!((raft_log.start_offset(), raft_log.end_offset()), (100, 100));
        assert_eq!(raft_log.last_epoch(), 5);
        assert_eq!(raft_log.end_offset_for_epoch(7), (5, 100));
        assert_eq!(raft_log.end_offset_for_epoch(4), (0, 100));
        raft_log.append(&[entry(100, 6)]).unwrap();
        assert_eq!(raft_log.end_offset_for_epoch(5), (5, 100));
        raft_log.flush().unwrap();
        let reopened = reopen(raft_log, &disk, &dir);
        assert_eq!(reopened.latest_snapshot(), Some(id));
        assert_eq!((reopened.start_offset(), reopened.end_offset()), (100, 101));
        assert_eq!(reopened.last_epoch(), 6);
    }

    #[test]
    fn a_crash_between_writing_a_fetched_snapshot_and_emptying_the_log_is_finished_at_open() {
        let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(5, DiskFaults::default()));
        let dir = PathBuf::from("/meta").join(METADATA_LOG_DIR_NAME);
        let raft_log = small_segment_log(&disk, &dir);
        // The snapshot file landed; the log was not reset yet.
        let id = SnapshotId {
            end_offset: 70,
            epoch: 3,
        };
        disk.write_file_atomic(&dir.join(snapshot_file::file_name(id)), &snapshot(id))
            .unwrap();
        let reopened = reopen(raft_log, &disk, &dir);
        assert_eq!((reopened.start_offset(), reopened.end_offset()), (70, 70));
        assert_eq!(reopened.last_epoch(), 3);
    }

    #[test]
    fn a_damaged_snapshot_is_skipped_and_a_log_it_was_needed_for_is_refused() {
        let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(6, DiskFaults::default()));
        let dir = PathBuf::from("/meta").join(METADATA_LOG_DIR_NAME);
        let mut raft_log = small_segment_log(&disk, &dir);
        let id = SnapshotId {
            end_offset: 30,
            epoch: 2,
        };
        raft_log.store_snapshot(id, &snapshot(id)).unwrap();
        let flushed = raft_log.log.flushed_offset();
        drop(raft_log);
        let path = dir.join(snapshot_file::file_name(id));
        let mut bytes = disk.read_file(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        disk.write_file_atomic(&path, &bytes).unwrap();
        let config = LogConfig {
            segment_bytes_max: 300,
            ..LogConfig::default()
        };
        let (log, _) = Log::open(Arc::clone(&disk), &dir, config, flushed).unwrap();
        let err = DiskRaftLog::open(log, Arc::clone(&disk)).unwrap_err();
        assert!(err.to_string().contains("no snapshot covers"), "{err}");
    }

    #[test]
    fn quorum_state_round_trips_in_kafkas_format() {
        let disk = SimDisk::new(2, DiskFaults::default());
        disk.create_dir_all(Path::new("/m")).unwrap();
        let path = Path::new("/m/quorum-state");
        assert_eq!(
            read_quorum_state(&disk, path).unwrap(),
            QuorumState::default()
        );
        let state = QuorumState {
            epoch: 7,
            voted_for: Some(NodeId(2)),
            leader: Some(NodeId(2)),
        };
        write_quorum_state(&disk, path, &state, [NodeId(1), NodeId(2), NodeId(3)]).unwrap();
        assert_eq!(read_quorum_state(&disk, path).unwrap(), state);
        let text = String::from_utf8(disk.read_file(path).unwrap()).unwrap();
        assert!(
            text.contains(r#""leaderEpoch":7"#) && text.contains(r#""votedId":2"#),
            "{text}"
        );
        // A file Kafka wrote reads too.
        let kafka = br#"{"clusterId":"","leaderId":1,"leaderEpoch":4,"votedId":-1,"appliedOffset":0,"currentVoters":[{"voterId":1}],"data_version":0}"#;
        disk.write_file_atomic(path, kafka).unwrap();
        assert_eq!(
            read_quorum_state(&disk, path).unwrap(),
            QuorumState {
                epoch: 4,
                voted_for: None,
                leader: Some(NodeId(1))
            }
        );
        disk.write_file_atomic(path, b"{not json").unwrap();
        assert!(read_quorum_state(&disk, path)
            .unwrap_err()
            .to_string()
            .contains("quorum-state"));
    }
}
