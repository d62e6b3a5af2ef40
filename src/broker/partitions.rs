//! The partitions this broker holds: one [`Partition`] per replica the committed metadata image
//! assigns to this node, leader or follower. [`Partitions`] follows the image: it opens or
//! creates the logs of new replicas, moves leadership (a new leader takes over at its log end
//! in its epoch cache; a follower's fetcher picks it up), and deletes the logs of removed
//! topics.
//!
//! A partition's log changes only through its [`LogWriter`] (leader appends, follower appends,
//! truncations, resets): the path the storage simulation proves. Its replication state is the
//! sans-IO [`LeaderState`] on the leader; on a follower, the high watermark the leader sent,
//! capped at the local log end. The leader epoch cache lives in `leader-epoch-checkpoint`, the
//! high watermarks in each log dir's `replication-offset-checkpoint` (Kafka's files).
//!
//! Owns the partition logs and their replication state; it never talks to the network or the
//! controller (the handlers, the replica fetcher and the ISR sender in `server` do).
//!
//! Locks: a partition's `state` is never held while its log lock is taken (the writer's
//! operations take the log, then the state).

use super::log_writer::{read_log, write_log, LogWriter, PlantedBugs, SharedLog, Written};
use crate::controller::MetadataImage;
use crate::log::{FlushPolicy, Log, LogConfig, LogDir, LogError};
use crate::model::bugs::ClusterBugs;
use crate::model::TopicPartition;
use crate::protocol::record_batch::{
    marker_batch, marker_of, max_timestamp_of_header, producer_fields_of_header, BatchError,
    BatchHeader, RecordBatch,
};
use crate::replication::producer_state::{
    last_sequence, AbortedRange, BatchKind, ProducerBatch, ProducerInfo, Verifications,
};
use crate::replication::{
    BatchRange, EpochCache, IsrAnswer, LeaderState, PendingIsr, ProducerStates, SequenceError,
    Verdict,
};
use crate::runtime::{self, Clock, Disk};
use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Kafka's `partition.metadata`: which topic id a partition directory belongs to, so a topic
/// deleted and created again under the same name never inherits the old data.
pub const PARTITION_METADATA: &str = "partition.metadata";
/// The idempotent producers' state as of an offset, written at flushes and clean shutdown so
/// a restart rebuilds it from there instead of from the whole log.
pub const PRODUCER_STATE: &str = "producer-state.json";
/// Kafka's per-partition leader epoch cache file.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";
/// Kafka's per-directory high watermark file.
pub const HIGH_WATERMARK_CHECKPOINT: &str = "replication-offset-checkpoint";

/// Why a partition operation failed, as a client is told (Kafka's error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("this broker does not host the partition")]
    UnknownTopicOrPartition,
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("broker {0} is not a replica of the partition")]
    NotReplica(i32),
    #[error("offset {offset} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: u64,
        log_end: u64,
    },
    #[error("record batch larger than max.message.bytes: {0}")]
    MessageTooLarge(String),
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("the leader epoch {theirs} is older than the current {ours}")]
    FencedLeaderEpoch { theirs: i32, ours: i32 },
    #[error("the leader epoch {theirs} is newer than the current {ours}")]
    UnknownLeaderEpoch { theirs: i32, ours: i32 },
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("a retried batch among several in one request")]
    DuplicateSequence,
    #[error("{isr} in-sync replicas, fewer than min.insync.replicas={min}")]
    NotEnoughReplicas { isr: usize, min: usize },
    #[error("written, but the in-sync replicas fell to {isr}, below min.insync.replicas={min}")]
    NotEnoughReplicasAfterAppend { isr: usize, min: usize },
    #[error("not replicated to the in-sync replicas within the request's timeout")]
    Timeout,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("{0}")]
    PolicyViolation(String),
    #[error("{0}")]
    InvalidRecord(String),
    /// The principal may not do this (on the topic, or the cluster for a replica's request).
    #[error("not authorized")]
    NotAuthorized { cluster: bool },
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        match self {
            PartitionError::UnknownTopicOrPartition => {
                ResponseError::UnknownTopicOrPartition.code()
            }
            PartitionError::NotLeader | PartitionError::NotReplica(_) => {
                ResponseError::NotLeaderOrFollower.code()
            }
            PartitionError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange.code(),
            PartitionError::MessageTooLarge(_) => ResponseError::MessageTooLarge.code(),
            PartitionError::Corrupt(_) => ResponseError::CorruptMessage.code(),
            PartitionError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch.code(),
            PartitionError::UnknownLeaderEpoch { .. } => ResponseError::UnknownLeaderEpoch.code(),
            PartitionError::Sequence(e) => e.code(),
            PartitionError::DuplicateSequence => ResponseError::DuplicateSequenceNumber.code(),
            PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
            PartitionError::NotEnoughReplicasAfterAppend { .. } => {
                ResponseError::NotEnoughReplicasAfterAppend.code()
            }
            PartitionError::Timeout => ResponseError::RequestTimedOut.code(),
            PartitionError::Storage(_) => ResponseError::KafkaStorageError.code(),
            PartitionError::PolicyViolation(_) => ResponseError::PolicyViolation.code(),
            PartitionError::InvalidRecord(_) => ResponseError::InvalidRecord.code(),
            PartitionError::NotAuthorized { cluster: true } => {
                ResponseError::ClusterAuthorizationFailed.code()
            }
            PartitionError::NotAuthorized { cluster: false } => {
                ResponseError::TopicAuthorizationFailed.code()
            }
        }
    }
}

fn append_error(e: LogError) -> PartitionError {
    match e {
        LogError::InvalidBatch {
            reason: BatchError::TooLarge { size, limit },
            ..
        } => PartitionError::MessageTooLarge(format!("{size} bytes, limit {limit}")),
        LogError::InvalidBatch { reason, .. } => PartitionError::Corrupt(reason.to_string()),
        LogError::EmptyAppend => PartitionError::Corrupt("no record batch".into()),
        other => PartitionError::Storage(other.to_string()),
    }
}

/// Logs a fatal storage error and signals it (the first one is kept).
fn raise_fatal(fatal: &watch::Sender<Option<String>>, what: String) {
    tracing::error!("partition storage failed, the broker must stop: {what}");
    fatal.send_if_modified(|f| {
        if f.is_none() {
            *f = Some(what);
            true
        } else {
            false
        }
    });
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, possibly empty.
    pub bytes: Vec<u8>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
    /// Below it no transaction is open (the high watermark, or the first offset of the
    /// oldest open transaction if lower).
    pub last_stable_offset: u64,
    /// For a `read_committed` read: the aborted transactions among the batches read.
    pub aborted: Vec<crate::log::AbortedTxn>,
}

/// What a follower's fetch found on the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowerRead {
    pub read: ReadResult,
    /// Where the follower's log diverges from the leader's (epoch, end offset): it must
    /// truncate there before fetching again (KIP-320, Fetch's DivergingEpoch).
    pub diverging: Option<(i32, i64)>,
}

/// KIP-890: what a leader append knows of whether a transactional batch that would open a
/// transaction on this partition belongs to a transaction its coordinator has open with
/// this partition in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxnCheck {
    /// No check: the broker's own writes (markers and coordinator state, which are not
    /// transactional data), and every append when `transaction.partition.verification.enable`
    /// is off.
    Off,
    /// The coordinator said yes to a question asked under this guard
    /// ([`Partition::start_verification`]).
    Verified(VerificationGuard),
    /// Not asked: such a batch is refused (INVALID_TXN_STATE).
    Unverified,
}

/// KIP-890: what a leader verifies a producer's transaction under. The leader epoch is
/// kept so that an append after leadership moved (and came back) answers
/// NOT_LEADER_OR_FOLLOWER, which the producer retries, rather than INVALID_TXN_STATE, which
/// aborts its transaction: the guard was dropped with the old leadership, not by a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerificationGuard {
    pub guard: u64,
    pub leader_epoch: i32,
}

/// Replica settings of one partition: `min.insync.replicas`, `replica.lag.time.max.ms`,
/// `unclean.leader.election.enable` (broker values, topic overrides).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaConfig {
    pub min_insync_replicas: usize,
    pub replica_lag_time_max_ms: u64,
    pub unclean_leader_election: bool,
}

impl Default for ReplicaConfig {
    fn default() -> ReplicaConfig {
        ReplicaConfig {
            min_insync_replicas: 1,
            replica_lag_time_max_ms: 30_000,
            unclean_leader_election: false,
        }
    }
}

enum Role {
    Leader(Box<LeaderState>),
    Follower,
}

struct State {
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    /// Everything below is readable by consumers.
    high_watermark: u64,
    role: Role,
    producers: ProducerStates,
    /// KIP-890's verification guards (leaders only; cleared when leadership moves).
    verifications: Verifications,
    epochs: EpochCache,
    replica_config: ReplicaConfig,
    /// The log's end as of the last change the writer made (for fetch positions and reads
    /// without the log lock).
    log_end: u64,
    log_start: u64,
    deleted: bool,
}

/// A partition's high watermark moves to `hw`, never backwards: consumers have been told
/// everything below it is committed. Only a truncation may lower it (`truncate_as_follower`).
fn raise_high_watermark(high_watermark: &mut u64, hw: u64, tp: &TopicPartition) {
    assert!(
        hw >= *high_watermark,
        "{tp}: the high watermark would move back from {high_watermark} to {hw}"
    );
    *high_watermark = hw;
}

/// The producer batches in `data` (whole batches, offsets as they stand): idempotent,
/// transactional, and transaction markers (whose control record is read for its type).
fn producer_batches(data: &[u8]) -> Vec<ProducerBatch> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest, usize::MAX) {
        let size = header.size();
        if rest.len() < size {
            break;
        }
        if let Some((base, delta, pid, epoch, seq, txn_or_control)) =
            producer_fields_of_header(rest)
        {
            if pid >= 0 {
                let range = BatchRange {
                    first_seq: seq,
                    last_seq: last_sequence(seq, delta),
                    first_offset: base,
                    // A client's base offset is not assigned yet: anything may be there.
                    last_offset: base.saturating_add(i64::from(delta)),
                };
                let kind = if !txn_or_control {
                    Some(BatchKind::Idempotent)
                } else {
                    match RecordBatch::parse(&rest[..size], usize::MAX) {
                        Ok((batch, _)) if batch.is_control() => {
                            marker_of(&batch).map(|(commit, coordinator_epoch)| BatchKind::Marker {
                                commit,
                                coordinator_epoch,
                            })
                        }
                        Ok((batch, _)) if batch.is_transactional() => {
                            Some(BatchKind::Transactional)
                        }
                        _ => None,
                    }
                };
                if let Some(kind) = kind {
                    out.push(ProducerBatch {
                        producer_id: pid,
                        epoch,
                        range,
                        kind,
                        max_timestamp_ms: max_timestamp_of_header(rest).unwrap_or(-1),
                    });
                }
            }
        }
        rest = &rest[size..];
    }
    out
}

/// (partition leader epoch, base offset, last offset) of each whole batch in `data`.
fn batch_epochs(data: &[u8]) -> Vec<(i32, u64, u64)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest, usize::MAX) {
        let size = header.size();
        if rest.len() < size {
            break;
        }
        // The partition leader epoch: bytes 12..16 of the batch header.
        let epoch = rest
            .get(12..16)
            .map_or(-1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        out.push((
            epoch,
            header.base_offset as u64,
            header.last_offset() as u64,
        ));
        rest = &rest[size..];
    }
    out
}

#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    offset: u64,
    state: ProducerStates,
}

/// Writes the producers' state as of `log`'s end (`producer-state.json`, atomically): at every
/// segment roll, as Kafka snapshots at each roll, so recovery after a crash starts from it and
/// never from a segment that lacks a producer's last batch; and at flushes and clean shutdown.
fn write_producer_snapshot(
    disk: &dyn Disk,
    log: &Log,
    producers: &ProducerStates,
) -> Result<(), PartitionError> {
    let snapshot = ProducerSnapshot {
        offset: log.log_end_offset(),
        state: producers.clone(),
    };
    let path = log.dir().join(PRODUCER_STATE);
    let bytes = serde_json::to_vec(&snapshot).unwrap_or_default();
    disk.write_file_atomic(&path, &bytes)
        .map_err(|e| PartitionError::Storage(format!("{}: {e}", path.display())))
}

/// Rebuilds the producers' state of `log`: from its snapshot if it is still within the log,
/// else from the log start (a producer's last batch can be in any segment: rebuilding from the
/// active segment alone forgot producers and let a retried batch in twice — cluster
/// simulation, seed 106), then from every batch after that.
///
/// The log's aborted-transaction index is rebuilt with it: entries from the replay's start on
/// are dropped and made again from the markers replayed (below it they were synced before the
/// snapshot was taken, which is only ever at a flushed log end). A snapshot of an earlier ketch
/// carries the aborted transactions itself; they move to the index.
fn recover_producers(disk: &dyn Disk, log: &mut Log) -> ProducerStates {
    let end = log.log_end_offset();
    let snapshot = disk
        .read_file(&log.dir().join(PRODUCER_STATE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ProducerSnapshot>(&bytes).ok())
        .filter(|s| s.offset <= end && s.offset >= log.log_start_offset());
    let (mut state, mut offset) = match snapshot {
        Some(s) => (s.state, s.offset),
        None => (ProducerStates::new(), log.log_start_offset()),
    };
    let legacy = state.take_legacy_aborted();
    let rebuild_from = if legacy.is_empty() {
        offset
    } else {
        log.log_start_offset()
    };
    if let Err(e) = log.truncate_aborted_from(rebuild_from) {
        // The log is poisoned by it: no later flush, so no snapshot, can trust the index.
        tracing::error!(dir = %log.dir().display(), error = %e,
            "could not cut the aborted-transaction index before rebuilding it");
    }
    for a in legacy {
        if a.last_offset >= rebuild_from as i64 && (a.last_offset as u64) < offset {
            log.append_aborted(index_entry(a, a.last_offset + 1));
        }
    }
    while offset < end {
        let Ok(bytes) = log.read(offset, 4 << 20, None) else {
            break;
        };
        if bytes.is_empty() {
            break;
        }
        let next = batch_epochs(&bytes)
            .last()
            .map_or(offset, |(_, _, last)| last + 1);
        for b in producer_batches(&bytes) {
            if b.range.first_offset as u64 >= offset {
                if let Some(a) = state.apply(&b) {
                    log.append_aborted(index_entry(a, stable_after(&state, &a)));
                }
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    state
}

/// The log's index entry for an aborted transaction.
fn index_entry(a: AbortedRange, last_stable_offset: i64) -> crate::log::AbortedTxn {
    crate::log::AbortedTxn {
        producer_id: a.producer_id,
        first_offset: a.first_offset,
        last_offset: a.last_offset,
        last_stable_offset,
    }
}

/// The last stable offset once `a`'s marker is in, as Kafka's index entry records it: the
/// oldest transaction still open, or the offset after the marker.
fn stable_after(state: &ProducerStates, a: &AbortedRange) -> i64 {
    state
        .first_unstable_offset(i64::MAX)
        .unwrap_or(a.last_offset + 1)
}

/// Applies the producer batches in `data` (just appended to `log`) to `state`, and writes
/// the transactions their abort markers end to the log's aborted-transaction index.
fn apply_appended(state: &mut ProducerStates, log: &mut Log, data: &[u8]) {
    for b in producer_batches(data) {
        if let Some(a) = state.apply(&b) {
            log.append_aborted(index_entry(a, stable_after(state, &a)));
        }
    }
}

/// The epoch cache of `log`: from its checkpoint, cut to the log, and extended with the
/// epochs of the batches above the recovery point the log was opened with (as Kafka's log
/// recovery assigns them: the checkpoint may lag the log after a storage error); or —
/// without one (a log an earlier ketch wrote) — rebuilt from every batch's partition leader
/// epoch.
fn recover_epochs(disk: &dyn Disk, log: &Log) -> EpochCache {
    let from_file = disk
        .read_file(&log.dir().join(LEADER_EPOCH_CHECKPOINT))
        .ok()
        .and_then(|bytes| EpochCache::from_checkpoint(&String::from_utf8_lossy(&bytes)).ok());
    let (mut cache, from) = match from_file {
        Some(mut cache) => {
            cache.truncate_from_end(log.log_end_offset());
            cache.truncate_from_start(log.log_start_offset());
            (
                cache,
                log.opened_recovery_point().max(log.log_start_offset()),
            )
        }
        None => (EpochCache::new(), log.log_start_offset()),
    };
    assign_epochs_from(&mut cache, log, from);
    cache
}

/// Assigns the partition leader epoch of every batch from `from` to the log end.
fn assign_epochs_from(cache: &mut EpochCache, log: &Log, from: u64) {
    let mut offset = from;
    while offset < log.log_end_offset() {
        let Ok(bytes) = log.read(offset, 4 << 20, None) else {
            break;
        };
        let batches = batch_epochs(&bytes);
        let Some((_, _, last)) = batches.last() else {
            break;
        };
        let next = last + 1;
        for (epoch, base, _) in batches {
            cache.assign(epoch, base);
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
}

fn write_epochs(disk: &dyn Disk, log: &Log, epochs: &EpochCache) -> Result<(), PartitionError> {
    disk.write_file_atomic(
        &log.dir().join(LEADER_EPOCH_CHECKPOINT),
        epochs.to_checkpoint().as_bytes(),
    )
    .map_err(|e| PartitionError::Storage(format!("{}: {e}", log.dir().display())))
}

/// An ISR change a leader wants the controller to make (AlterPartition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    pub tp: TopicPartition,
    pub topic_id: String,
    pub leader_epoch: i32,
    pub change: PendingIsr,
}

/// The outcome of a leader's append: the offsets written (or, for a retried idempotent batch,
/// those of the original), the log start, and the leader epoch it was written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub first_offset: i64,
    pub last_offset: i64,
    pub log_start: u64,
    pub leader_epoch: i32,
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: String,
    /// Which of the broker's log dirs holds it.
    dir_index: usize,
    node_id: i32,
    log: SharedLog,
    writer: LogWriter,
    state: Mutex<State>,
    /// Bumped whenever the high watermark, the ISR or the leadership changes: acks=all
    /// waiters and the ISR sender watch it.
    changed: watch::Sender<u64>,
    /// The broker-wide "data to read" signal long-polling fetches wait on.
    appended: Arc<watch::Sender<u64>>,
    disk: Arc<dyn Disk>,
    /// Whether acknowledged writes are fsynced first (`log.flush.interval.messages=1`): then
    /// truncating below the high watermark can only be a bug, and is asserted against.
    fsync_before_ack: bool,
    /// Planted bugs (simulator only).
    bugs: ClusterBugs,
    /// The broker's fatal-error signal (see [`Partition::fail`]).
    fatal: watch::Sender<Option<String>>,
}

impl Partition {
    /// A write to this partition's storage failed (a log append, a roll's producer snapshot,
    /// the leader-epoch checkpoint, a truncation): the broker must stop, as Kafka takes a log
    /// directory offline on any IO error and a broker whose log directories all failed shuts
    /// down. Going on served a follower whose log had taken a fetch's batches while its state
    /// had not (an ENOSPC writing the roll's producer snapshot): it fetched from the old end
    /// forever and never rejoined the ISR (cluster simulation, seed 1102).
    fn fail(&self, what: &str) {
        raise_fatal(&self.fatal, format!("{}: {what}", self.tp));
    }

    /// The log writer failed (a failed fsync ends it, and every later operation): the broker
    /// is stopped now, before the caller can act on a log end that is not durable (the
    /// writer's own report comes a moment later, from the task that watches it).
    fn writer_failed(&self, e: &LogError) -> PartitionError {
        let what = e.to_string();
        self.fail(&what);
        PartitionError::Storage(what)
    }

    /// Once a storage error stopped the broker, its partitions take no more writes and serve
    /// no followers, as Kafka takes the log directory offline: a leader whose epoch checkpoint
    /// failed went on appending in that epoch until the process ended, its followers took
    /// the high watermark from it, and after the restart its epoch cache lacked the epoch
    /// they had fetched in — they truncated below it (cluster simulation, seed 5215).
    fn check_not_stopping(&self) -> Result<(), PartitionError> {
        match self.fatal.borrow().as_ref() {
            Some(what) => Err(PartitionError::Storage(format!(
                "the broker is stopping after a storage error: {what}"
            ))),
            None => Ok(()),
        }
    }

    /// Passes `result` on, stopping the broker first if it is a storage error.
    fn check_storage<T>(&self, result: Result<T, PartitionError>) -> Result<T, PartitionError> {
        if let Err(PartitionError::Storage(what)) = &result {
            self.fail(what);
        }
        result
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock already stopped the broker's invariants; keep serving
        // what is there rather than poisoning every later request.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Something acks=all waiters or fetches wait for changed (high watermark, ISR,
    /// leadership): both are woken.
    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Watches for changes of the high watermark, ISR or leadership.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The current leader id and epoch.
    pub fn leadership(&self) -> (i32, i32) {
        let s = self.lock();
        (s.leader, s.leader_epoch)
    }

    /// (replicas, ISR) as this broker knows them.
    pub fn replica_sets(&self) -> (Vec<i32>, Vec<i32>) {
        let s = self.lock();
        (s.replicas.clone(), s.isr.clone())
    }

    pub fn high_watermark(&self) -> u64 {
        self.lock().high_watermark
    }

    /// The directory the log lives in (a `log.dirs` entry) and its bytes on disk.
    pub fn log_dir_and_size(&self) -> Option<(std::path::PathBuf, u64)> {
        let guard = read_log(&self.log);
        let log = guard.as_ref()?;
        Some((log.dir().parent()?.to_path_buf(), log.size_bytes()))
    }

    /// The log's (bytes on disk, segments, start offset, end offset), leader or follower;
    /// `None` while no log is open (a replica being reset).
    pub fn log_stats(&self) -> Option<(u64, usize, u64, u64)> {
        let guard = read_log(&self.log);
        let log = guard.as_ref()?;
        Some((
            log.size_bytes(),
            log.segment_base_offsets().len(),
            log.log_start_offset(),
            log.log_end_offset(),
        ))
    }

    /// Checks a client's view of the leader epoch (KIP-320); -1 means "not given".
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        let ours = self.lock().leader_epoch;
        check_epoch(current_leader_epoch, ours)
    }

    /// Appends a leader's batches (offsets assigned by the log), `data` as the producer sent
    /// it, and waits until the leader's own write may be acknowledged (after its fsync when
    /// the log fsyncs first). Idempotent batches are checked against the producers' state
    /// first; a retried batch is not appended again and answers with the original offsets.
    /// `acks_all` refuses the append while the ISR is below `min.insync.replicas`.
    ///
    /// `check` is KIP-890's: see [`TxnCheck`].
    pub async fn append_as_leader(
        self: &Arc<Self>,
        data: Vec<u8>,
        acks_all: bool,
        check: TxnCheck,
    ) -> Result<Appended, PartitionError> {
        let epoch = {
            let s = self.lock();
            let Role::Leader(leader) = &s.role else {
                return Err(PartitionError::NotLeader);
            };
            if acks_all && !leader.enough_in_sync() {
                return Err(PartitionError::NotEnoughReplicas {
                    isr: leader.isr().len(),
                    min: leader.min_isr(),
                });
            }
            s.leader_epoch
        };
        // Leadership may move between the check above and the append.
        runtime::buggify_delay("leader append").await;
        let me = Arc::clone(self);
        let mut data = data;
        let written = self
            .writer
            .run(move |log, now_ms| me.leader_write(log, &mut data, epoch, check, now_ms))
            .await
            .map_err(|e| self.writer_failed(&e))?;
        let Written { value, ackable_end } = written;
        let appended = self.check_storage(value)?;
        let mut s = self.lock();
        if let Role::Leader(leader) = &mut s.role {
            if leader.leader_epoch() == epoch && leader.on_local_append(ackable_end) {
                let hw = leader.high_watermark();
                raise_high_watermark(&mut s.high_watermark, hw, &self.tp);
                drop(s);
                self.bump();
            }
        }
        Ok(appended)
    }

    /// KIP-890: the guard to ask the coordinator under before appending a transactional
    /// batch of `producer_id` at `epoch`, or `None` when none is needed (its transaction is
    /// open here already, so the batch joins it). As the leader only.
    pub fn start_verification(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<Option<VerificationGuard>, PartitionError> {
        let mut s = self.lock();
        if !matches!(s.role, Role::Leader(_)) || s.deleted {
            return Err(PartitionError::NotLeader);
        }
        if s.producers.in_transaction(producer_id, epoch) {
            return Ok(None);
        }
        Ok(Some(VerificationGuard {
            guard: s.verifications.start(producer_id, epoch),
            leader_epoch: s.leader_epoch,
        }))
    }

    /// acks=all: waits until the high watermark passes `appended` (every in-sync replica has
    /// it), at most `timeout` (REQUEST_TIMED_OUT). Leadership lost meanwhile is
    /// NOT_LEADER_OR_FOLLOWER; the ISR falling below `min.insync.replicas` is
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND (the high watermark will not move until it recovers).
    pub async fn wait_replicated(
        &self,
        appended: &Appended,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        if ClusterBugs::live(self.bugs.ack_before_isr) {
            return Ok(()); // the planted bug: acknowledged with the leader's copy alone
        }
        let mut changed = self.subscribe();
        let wait = async {
            loop {
                changed.borrow_and_update();
                {
                    let s = self.lock();
                    let Role::Leader(leader) = &s.role else {
                        return Err(PartitionError::NotLeader);
                    };
                    if s.leader_epoch != appended.leader_epoch || s.deleted {
                        return Err(PartitionError::NotLeader);
                    }
                    if s.high_watermark as i64 > appended.last_offset {
                        return Ok(());
                    }
                    if !leader.enough_in_sync() {
                        return Err(PartitionError::NotEnoughReplicasAfterAppend {
                            isr: leader.isr().len(),
                            min: leader.min_isr(),
                        });
                    }
                }
                if changed.changed().await.is_err() {
                    return Err(PartitionError::NotLeader);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(PartitionError::Timeout))
    }

    /// In the writer: the idempotence check, the append and the producers' and epochs' update,
    /// as one step no other append can come between.
    fn leader_write(
        &self,
        log: &mut Log,
        data: &mut [u8],
        epoch: i32,
        check: TxnCheck,
        now_ms: i64,
    ) -> Result<Appended, PartitionError> {
        self.check_not_stopping()?;
        let mut guard = self.lock();
        let s = &mut *guard;
        if s.leader_epoch != epoch || !matches!(s.role, Role::Leader(_)) || s.deleted {
            return Err(PartitionError::NotLeader);
        }
        if let TxnCheck::Verified(v) = check {
            if v.leader_epoch != s.leader_epoch {
                return Err(PartitionError::NotLeader);
            }
        }
        let batches = producer_batches(data);
        if !batches.is_empty() {
            let mut trial = None::<ProducerStates>;
            for (i, b) in batches.iter().enumerate() {
                let state = trial.as_ref().unwrap_or(&s.producers);
                match b.kind {
                    BatchKind::Marker {
                        coordinator_epoch, ..
                    } => state.check_marker(b.producer_id, b.epoch, coordinator_epoch)?,
                    BatchKind::Idempotent | BatchKind::Transactional => {
                        if b.kind == BatchKind::Idempotent {
                            state.check_not_in_transaction(b.producer_id, b.epoch)?;
                        } else if !state.in_transaction(b.producer_id, b.epoch) {
                            // It would open a transaction here: only if its coordinator
                            // verified this partition is in it, and no marker came since.
                            let verified = match check {
                                TxnCheck::Off => true,
                                TxnCheck::Verified(v) => {
                                    s.verifications.holds(b.producer_id, b.epoch, v.guard)
                                }
                                TxnCheck::Unverified => false,
                            };
                            if !verified && !ClusterBugs::live(self.bugs.skip_txn_verification) {
                                return Err(SequenceError::NotVerified {
                                    producer_id: b.producer_id,
                                }
                                .into());
                            }
                        }
                        match state.check(
                            b.producer_id,
                            b.epoch,
                            b.range.first_seq,
                            b.range.last_seq,
                        )? {
                            Verdict::Duplicate { first_offset } if batches.len() == 1 => {
                                return Ok(Appended {
                                    first_offset,
                                    last_offset: first_offset,
                                    log_start: log.log_start_offset(),
                                    leader_epoch: epoch,
                                });
                            }
                            Verdict::Duplicate { .. } => {
                                return Err(PartitionError::DuplicateSequence)
                            }
                            Verdict::Append => {}
                        }
                    }
                }
                if batches.len() > 1 && i + 1 < batches.len() {
                    // Later batches of this request are checked as if this one were appended.
                    let t = trial.get_or_insert_with(|| s.producers.clone());
                    let _trial_only = t.apply(b);
                }
            }
        }
        let segment_before = log.active_segment_base();
        let info = log
            .append(data, Some(epoch), now_ms)
            .map_err(append_error)?;
        // The offsets are in `data` now.
        apply_appended(&mut s.producers, log, data);
        for b in &batches {
            if matches!(b.kind, BatchKind::Marker { .. }) {
                s.verifications.forget(b.producer_id);
            }
        }
        // The state follows the log before anything else can fail.
        s.log_end = log.log_end_offset();
        s.log_start = log.log_start_offset();
        if log.active_segment_base() != segment_before {
            write_producer_snapshot(self.disk.as_ref(), log, &s.producers)?;
        }
        if s.epochs.assign(epoch, info.first_offset) {
            write_epochs(self.disk.as_ref(), log, &s.epochs)?;
        }
        Ok(Appended {
            first_offset: info.first_offset as i64,
            last_offset: info.last_offset as i64,
            log_start: log.log_start_offset(),
            leader_epoch: epoch,
        })
    }

    /// Reads whole batches from `offset` below the high watermark, as the leader.
    pub fn read_as_leader(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, PartitionError> {
        let hw = self.leader_high_watermark()?;
        if ClusterBugs::live(self.bugs.fetch_above_hw) {
            // The planted bug: consumers read to the log end, above what is committed.
            let end = self.lock().log_end;
            return self.read_below(offset, max_bytes, end, hw);
        }
        self.read_below(offset, max_bytes, hw, hw)
    }

    /// Reads whole batches from `offset` below the last stable offset, as the leader, for a
    /// `read_committed` consumer: with the aborted transactions among them, which it skips.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, PartitionError> {
        // Both under one lock: taken apart, the high watermark could move between them and
        // the answer report a last stable offset above its high watermark.
        let (hw, mut lso) = {
            let mut s = self.lock();
            match s.role {
                Role::Leader(_) if !s.deleted => (s.high_watermark, s.last_stable_offset()),
                Role::Leader(_) => return Err(PartitionError::UnknownTopicOrPartition),
                Role::Follower => return Err(PartitionError::NotLeader),
            }
        };
        if ClusterBugs::live(self.bugs.lso_is_hw) {
            lso = hw;
        }
        let mut read = self.read_below(offset, max_bytes, lso, hw)?;
        if !read.bytes.is_empty() && !ClusterBugs::live(self.bugs.aborted_index_lost) {
            let end = batch_epochs(&read.bytes)
                .last()
                .map_or(offset, |(_, _, last)| *last as i64 + 1);
            read.aborted = read_log(&self.log)
                .as_ref()
                .map(|log| log.aborted_between(offset, end))
                .unwrap_or_default();
        }
        read.last_stable_offset = lso;
        Ok(read)
    }

    /// Reads whole batches from `offset` to the log end, as the leader (the group coordinator
    /// loading `__consumer_offsets`: what its leader holds is what will commit).
    pub fn read_all_as_leader(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, PartitionError> {
        let hw = self.leader_high_watermark()?;
        let end = self.lock().log_end;
        self.read_below(offset, max_bytes, end, hw)
    }

    fn leader_high_watermark(&self) -> Result<u64, PartitionError> {
        let s = self.lock();
        match s.role {
            Role::Leader(_) if !s.deleted => Ok(s.high_watermark),
            Role::Leader(_) => Err(PartitionError::UnknownTopicOrPartition),
            Role::Follower => Err(PartitionError::NotLeader),
        }
    }

    /// Whole batches from `offset`, none at or past `limit`; `hw` is reported.
    fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: u64,
        hw: u64,
    ) -> Result<ReadResult, PartitionError> {
        let guard = read_log(&self.log);
        let log = guard
            .as_ref()
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        let start = log.log_start_offset();
        let end = log.log_end_offset();
        let out_of_range = || PartitionError::OffsetOutOfRange {
            offset,
            log_start: start,
            log_end: end,
        };
        let offset = u64::try_from(offset).map_err(|_| out_of_range())?;
        // Kafka: out of range is before the log start or past the log end. Between the limit
        // (the high watermark for consumers) and the log end the answer is empty: a new leader's
        // high watermark can be below what its predecessor had let a consumer read, and a
        // consumer told "out of range" there would reset its position (found by the cluster
        // simulation, seed 22).
        if offset < start || offset > end.max(limit) {
            return Err(out_of_range());
        }
        let bytes = if offset >= limit {
            Vec::new()
        } else {
            log.read(offset, max_bytes, Some(limit))
                .map_err(|e| PartitionError::Storage(e.to_string()))?
        };
        let last_stable_offset = self.lock().last_stable_offset().min(hw);
        Ok(ReadResult {
            bytes,
            high_watermark: hw,
            log_start_offset: start,
            last_stable_offset,
            aborted: Vec::new(),
        })
    }

    /// A follower's fetch, on the leader: checks its epochs and position (KIP-320), records
    /// its progress (which may move the high watermark and propose an ISR change), and reads
    /// from its position to the log end.
    #[allow(clippy::too_many_arguments)]
    pub fn read_for_follower(
        &self,
        replica_id: i32,
        fetch_offset: i64,
        last_fetched_epoch: i32,
        current_leader_epoch: i32,
        follower_log_start: i64,
        max_bytes: usize,
        now_ms: u64,
    ) -> Result<(FollowerRead, Option<IsrProposal>), PartitionError> {
        self.check_not_stopping()?;
        let (diverging, proposal, hw, end, moved) = {
            let mut guard = self.lock();
            let s = &mut *guard;
            if s.deleted {
                return Err(PartitionError::UnknownTopicOrPartition);
            }
            check_epoch(current_leader_epoch, s.leader_epoch)?;
            if !s.replicas.contains(&replica_id) || replica_id == self.node_id {
                return Err(PartitionError::NotReplica(replica_id));
            }
            let log_end = s.log_end;
            let log_start = s.log_start;
            let Role::Leader(leader) = &mut s.role else {
                return Err(PartitionError::NotLeader);
            };
            let mut moved = false;
            // KIP-320: the follower's last fetched epoch must end, in this log, at or after its
            // fetch offset. An undefined answer (no epoch here to compare with) cannot be sent
            // as a DivergingEpoch, which reads (-1, -1) as absent: the follower would fetch
            // nothing forever. Such a fetch is checked by its offset alone.
            let diverging = if last_fetched_epoch >= 0 {
                let (epoch, end) = s.epochs.end_offset_for(last_fetched_epoch, log_end);
                (epoch >= 0 && (epoch < last_fetched_epoch || end < fetch_offset))
                    .then_some((epoch, end))
            } else {
                None
            };
            if diverging.is_none() {
                if fetch_offset < log_start as i64 || fetch_offset > log_end as i64 {
                    return Err(PartitionError::OffsetOutOfRange {
                        offset: fetch_offset,
                        log_start,
                        log_end,
                    });
                }
                if leader.on_follower_fetch(replica_id, fetch_offset as u64, log_end, now_ms) {
                    let hw = leader.high_watermark();
                    raise_high_watermark(&mut s.high_watermark, hw, &self.tp);
                    moved = true;
                }
                // A DeleteRecords waits for it.
                if follower_log_start >= 0 {
                    moved |= leader.on_follower_log_start(replica_id, follower_log_start as u64);
                }
            }
            let proposal = leader.propose_isr_change(now_ms).map(|change| IsrProposal {
                tp: self.tp.clone(),
                topic_id: self.topic_id.clone(),
                leader_epoch: leader.leader_epoch(),
                change,
            });
            (diverging, proposal, s.high_watermark, log_end, moved)
        };
        if moved {
            self.bump();
        }
        if let Some((epoch, end_offset)) = diverging {
            let start = read_log(&self.log)
                .as_ref()
                .map_or(0, |l| l.log_start_offset());
            return Ok((
                FollowerRead {
                    read: ReadResult {
                        bytes: Vec::new(),
                        high_watermark: hw,
                        log_start_offset: start,
                        last_stable_offset: hw,
                        aborted: Vec::new(),
                    },
                    diverging: Some((epoch, end_offset)),
                },
                proposal,
            ));
        }
        let read = self.read_below(fetch_offset, max_bytes, end, hw)?;
        Ok((
            FollowerRead {
                read,
                diverging: None,
            },
            proposal,
        ))
    }

    /// Where a follower fetches from: (leader, leader epoch, fetch offset = log end, last
    /// fetched epoch), or `None` when this replica leads or is gone.
    pub fn fetch_position(&self) -> Option<(i32, i32, u64, i32)> {
        // A broker that must stop fetches nothing more: after a failed flush its log end runs
        // past what is durable, and a fetch from there would tell the leader otherwise.
        if self.fatal.borrow().is_some() {
            return None;
        }
        let s = self.lock();
        match s.role {
            Role::Follower if !s.deleted && s.leader >= 0 => Some((
                s.leader,
                s.leader_epoch,
                s.log_end,
                s.epochs.latest_epoch().unwrap_or(-1),
            )),
            _ => None,
        }
    }

    /// Appends the leader's batches as they are (offsets, epochs and CRCs unchanged), if this
    /// replica still follows at `leader_epoch`. Returns the new log end.
    pub async fn append_as_follower(
        self: &Arc<Self>,
        data: Vec<u8>,
        leader_epoch: i32,
        leader_log_start: i64,
    ) -> Result<u64, PartitionError> {
        let me = Arc::clone(self);
        let written = self
            .writer
            .run(move |log, now_ms| -> Result<u64, PartitionError> {
                let mut guard = me.lock();
                let s = &mut *guard;
                if s.leader_epoch != leader_epoch || !matches!(s.role, Role::Follower) || s.deleted
                {
                    return Err(PartitionError::NotLeader);
                }
                // The leader serves the whole batch holding the offset asked, so a follower at
                // or below the leader's log start (it was reset to a start DeleteRecords moved
                // into a batch, or truncated to the start of the leader's earliest cached
                // epoch, which lies there too) can be sent a batch that begins below its end.
                // All it holds below the leader's start is deleted: it starts its log over at
                // the batch's base and keeps the leader's start, as Kafka's followers do for an
                // empty log (`UnexpectedAppendOffsetException`). Refusing it stopped the broker
                // on every restart (cluster simulation, seeds 1 and 3515).
                // So can an empty log whose start lies inside a leader's batch: its own
                // checkpointed start, from a DeleteRecords its leader of now never saw, with
                // every record lost to a power cut (Kafka's follower starts over at the batch
                // whenever its log is empty; refusing it stopped the broker for good: cluster
                // simulation, seed 6137).
                let end = log.log_end_offset() as i64;
                let own_start = log.log_start_offset();
                let empty = own_start as i64 == end;
                let straddling_base =
                    crate::protocol::record_batch::BatchHeader::parse(&data, usize::MAX)
                        .ok()
                        .filter(|h| {
                            h.base_offset < end
                                && h.last_offset() >= end
                                && (end <= leader_log_start || empty)
                        })
                        .map(|h| h.base_offset.max(0) as u64);
                if let Some(base) = straddling_base {
                    tracing::info!(partition = %me.tp, base, log_end = end, leader_log_start,
                        "the leader's first batch begins below this log's end, at or below the leader's log start: the log starts over at its base");
                    log.reset_to(base)
                        .map_err(|e| PartitionError::Storage(e.to_string()))?;
                    s.producers = ProducerStates::new();
                    s.epochs.clear();
                }
                let segment_before = log.active_segment_base();
                log.append_verbatim(&data, now_ms).map_err(append_error)?;
                if straddling_base.is_some() {
                    let start = (leader_log_start.max(0) as u64).max(own_start);
                    log.advance_start_to(start)
                        .map_err(|e| PartitionError::Storage(e.to_string()))?;
                }
                apply_appended(&mut s.producers, log, &data);
                // The state follows the log before anything else can fail.
                s.log_end = log.log_end_offset();
                s.log_start = log.log_start_offset();
                if straddling_base.is_some() || log.active_segment_base() != segment_before {
                    write_producer_snapshot(me.disk.as_ref(), log, &s.producers)?;
                }
                let mut epochs_changed = straddling_base.is_some();
                for (epoch, base, _) in batch_epochs(&data) {
                    epochs_changed |= s.epochs.assign(epoch, base);
                }
                if epochs_changed {
                    write_epochs(me.disk.as_ref(), log, &s.epochs)?;
                }
                Ok(s.log_end)
            })
            .await
            .map_err(|e| self.writer_failed(&e))?;
        self.check_storage(written.value)
    }

    /// The leader's high watermark, as its fetch answer gave it: a follower's is that, capped
    /// at its own log end, and never backwards.
    pub fn follower_high_watermark(&self, leader_hw: i64) {
        let mut s = self.lock();
        if matches!(s.role, Role::Follower) && leader_hw >= 0 {
            let hw = (leader_hw as u64).min(s.log_end);
            if hw > s.high_watermark {
                s.high_watermark = hw;
            }
        }
    }

    /// This replica's log start offset.
    pub fn log_start(&self) -> u64 {
        self.lock().log_start
    }

    /// A follower takes its leader's log start (moved by DeleteRecords or retention), up to its
    /// own high watermark, as Kafka's fetcher does; the fetcher rewrites the checkpoint
    /// whenever the start moved.
    pub fn follower_log_start(&self, leader_log_start: i64) -> Result<(), PartitionError> {
        let target = {
            let s = self.lock();
            if !matches!(s.role, Role::Follower) || s.deleted || leader_log_start < 0 {
                return Ok(());
            }
            let target = (leader_log_start as u64).min(s.high_watermark);
            if target <= s.log_start {
                return Ok(());
            }
            target
        };
        self.advance_log_start(target).map(|_| ())
    }

    /// DeleteRecords on the leader: moves the log start to `offset` (-1: the high watermark),
    /// which must not pass the high watermark (OFFSET_OUT_OF_RANGE). Returns the log start and
    /// whether it lies inside a segment (to checkpoint).
    pub fn delete_records(&self, offset: i64) -> Result<(u64, bool), PartitionError> {
        self.check_not_stopping()?;
        let target = {
            let s = self.lock();
            if s.deleted {
                return Err(PartitionError::UnknownTopicOrPartition);
            }
            if !matches!(s.role, Role::Leader(_)) {
                return Err(PartitionError::NotLeader);
            }
            let hw = s.high_watermark;
            match offset {
                -1 => hw,
                o if o >= 0 && o as u64 <= hw => o as u64,
                o => {
                    return Err(PartitionError::OffsetOutOfRange {
                        offset: o,
                        log_start: s.log_start,
                        log_end: hw,
                    })
                }
            }
        };
        let inside = self.advance_log_start(target)?;
        Ok((self.log_start(), inside))
    }

    /// Moves the log start up to `target` in the log and the state, cutting the epoch cache
    /// below it as retention does.
    fn advance_log_start(&self, target: u64) -> Result<bool, PartitionError> {
        // The log's lock first, then the state (the writer's order).
        let mut guard = write_log(&self.log);
        let Some(log) = guard.as_mut() else {
            return Err(PartitionError::UnknownTopicOrPartition);
        };
        let start = match log.advance_start_to(target) {
            Ok(start) => start,
            Err(e) => {
                let what = e.to_string();
                self.fail(&what);
                return Err(PartitionError::Storage(what));
            }
        };
        let inside = log.start_inside_segment();
        let mut s = self.lock();
        if start > s.log_start {
            s.log_start = start;
            tracing::info!(partition = %self.tp, log_start = start, "log start moved");
        }
        if s.epochs.truncate_from_start(start) {
            let epochs = s.epochs.clone();
            drop(s);
            if let Err(PartitionError::Storage(e)) = write_epochs(self.disk.as_ref(), log, &epochs)
            {
                self.fail(&e);
                return Err(PartitionError::Storage(e));
            }
        } else {
            drop(s);
        }
        drop(guard);
        self.bump();
        Ok(inside)
    }

    /// DeleteRecords' low watermark on the leader: the smallest log start over the replicas
    /// `live` says are alive (see [`LeaderState::low_watermark`]).
    pub fn low_watermark(&self, live: impl Fn(i32) -> bool) -> Result<u64, PartitionError> {
        let s = self.lock();
        match &s.role {
            Role::Leader(l) if !s.deleted => Ok(l.low_watermark(s.log_start, live)),
            _ => Err(PartitionError::NotLeader),
        }
    }

    /// Where a follower whose last fetched epoch diverged must cut its log: the leader's end of
    /// that epoch, or this replica's own end of the epoch the leader named, whichever is lower
    /// (KIP-320's truncation).
    pub fn truncation_offset(&self, diverging_epoch: i32, diverging_end: i64) -> u64 {
        let s = self.lock();
        let (epoch, local_end) = s.epochs.end_offset_for(diverging_epoch, s.log_end);
        let mut target = if diverging_end < 0 {
            0
        } else {
            diverging_end as u64
        };
        if epoch == diverging_epoch && local_end >= 0 {
            target = target.min(local_end as u64);
        } else if epoch < diverging_epoch && local_end >= 0 {
            // This replica never had the leader's epoch: its own end of an earlier epoch.
            target = target.min(local_end as u64);
        }
        target.min(s.log_end)
    }

    /// Cuts a follower's log at `offset` (a diverging epoch); durable before it returns.
    /// Never below the high watermark when writes are fsynced before they are acknowledged:
    /// what is below it was acknowledged and is on every in-sync replica.
    pub async fn truncate_as_follower(
        self: &Arc<Self>,
        offset: u64,
        leader_epoch: i32,
    ) -> Result<u64, PartitionError> {
        let me = Arc::clone(self);
        let written = self
            .writer
            .run(move |log, _| -> Result<u64, PartitionError> {
                let mut guard = me.lock();
                let s = &mut *guard;
                if s.leader_epoch != leader_epoch || !matches!(s.role, Role::Follower) || s.deleted
                {
                    return Err(PartitionError::NotLeader);
                }
                // The planted bug: cut one offset below the high watermark (the whole batch
                // holding it goes).
                let offset = if ClusterBugs::live(me.bugs.truncate_below_hw) && s.high_watermark > 0 {
                    offset.min(s.high_watermark - 1)
                } else {
                    offset
                };
                if offset < s.high_watermark {
                    if me.fsync_before_ack && !s.replica_config.unclean_leader_election {
                        panic!(
                            "{}: truncation to {offset} below the high watermark {}",
                            me.tp, s.high_watermark
                        );
                    }
                    tracing::warn!(partition = %me.tp, offset, high_watermark = s.high_watermark,
                        "truncating below the high watermark (acknowledged data not fsynced, or an unclean election)");
                    s.high_watermark = offset;
                }
                // Below this log's start (the leader lost what lay there, or never had it): the
                // leader's log is the truth, so this one starts over empty at the offset, as
                // Kafka's `truncateFullyAndStartAt`. Cutting at the start instead left a
                // follower whose DeleteRecords start lay past a new leader's end truncating to
                // it forever (cluster simulation, seed 35).
                let end = if offset < log.log_start_offset() {
                    log.reset_to(offset)
                        .map_err(|e| PartitionError::Storage(e.to_string()))?;
                    s.epochs.clear();
                    write_epochs(me.disk.as_ref(), log, &s.epochs)?;
                    offset
                } else {
                    log.truncate_to(offset)
                        .map_err(|e| PartitionError::Storage(e.to_string()))?
                };
                s.log_start = log.log_start_offset();
                // Rebuilt from the log as it now stands (from a snapshot at or below the new
                // end, else from the log start), as Kafka reloads producer state from a
                // snapshot below the truncation point: a cut transaction marker must leave
                // its transaction open again, which forgetting batches alone cannot do.
                s.producers = recover_producers(me.disk.as_ref(), log);
                // The producer snapshot on disk may hold the cut history's batches: replaced,
                // or recovery would start from it and let a retried batch of the new history in
                // twice (cluster simulation, seed 27193), as Kafka drops snapshots above the
                // truncation point.
                write_producer_snapshot(me.disk.as_ref(), log, &s.producers)?;
                if s.epochs.truncate_from_end(end) {
                    write_epochs(me.disk.as_ref(), log, &s.epochs)?;
                }
                s.log_end = end;
                s.high_watermark = s.high_watermark.min(end);
                tracing::info!(partition = %me.tp, offset = end, "follower log truncated (diverging epoch)");
                Ok(end)
            })
            .await
            .map_err(|e| self.writer_failed(&e))?;
        self.check_storage(written.value)
    }

    /// Starts a follower's log over at `offset` (the leader's log start moved past this
    /// replica's end: what it would fetch no longer exists).
    pub async fn reset_as_follower(
        self: &Arc<Self>,
        offset: u64,
        leader_epoch: i32,
    ) -> Result<(), PartitionError> {
        let me = Arc::clone(self);
        let written = self
            .writer
            .run(move |log, _| -> Result<(), PartitionError> {
                let mut guard = me.lock();
                let s = &mut *guard;
                if s.leader_epoch != leader_epoch || !matches!(s.role, Role::Follower) || s.deleted
                {
                    return Err(PartitionError::NotLeader);
                }
                log.reset_to(offset)
                    .map_err(|e| PartitionError::Storage(e.to_string()))?;
                s.producers = ProducerStates::new();
                write_producer_snapshot(me.disk.as_ref(), log, &s.producers)?;
                s.epochs.clear();
                write_epochs(me.disk.as_ref(), log, &s.epochs)?;
                s.log_end = offset;
                s.log_start = offset;
                s.high_watermark = s.high_watermark.max(offset);
                tracing::info!(partition = %me.tp, offset, "follower log reset to the leader's log start");
                Ok(())
            })
            .await
            .map_err(|e| self.writer_failed(&e))?;
        self.check_storage(written.value)
    }

    /// The last stable offset (KIP-98), as this replica knows it.
    pub fn last_stable_offset(&self) -> u64 {
        self.lock().last_stable_offset()
    }

    /// This leader's producers (DescribeProducers).
    pub fn producers(&self) -> Result<Vec<ProducerInfo>, PartitionError> {
        self.leader_high_watermark()?;
        Ok(self.lock().producers.describe())
    }

    /// Writes a transaction marker for `producer_id` at `producer_epoch` (WriteTxnMarkers, or
    /// the coordinator for a partition it leads itself) and waits until every in-sync replica
    /// has it, as Kafka appends markers with acks=all.
    pub async fn write_marker(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        timestamp_ms: i64,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let batch = marker_batch(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            timestamp_ms,
        );
        let appended = self.append_as_leader(batch, true, TxnCheck::Off).await?;
        // Followers long-poll on this signal: without it the marker waited out their
        // fetch wait (500 ms) before it could be replicated.
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        self.wait_replicated(&appended, timeout).await
    }

    /// (log start, high watermark, leader epoch) as the leader.
    pub fn offsets(&self) -> Result<(u64, u64, i32), PartitionError> {
        let hw = self.leader_high_watermark()?;
        let s = self.lock();
        Ok((s.log_start, hw, s.leader_epoch))
    }

    /// The log end offset, as the leader (ListOffsets latest for a follower: Kafka answers a
    /// replica with its log end, a consumer with the high watermark).
    pub fn leader_log_end(&self) -> Result<u64, PartitionError> {
        self.leader_high_watermark()?;
        Ok(self.lock().log_end)
    }

    /// Where epoch `epoch` ends in this leader's log (OffsetForLeaderEpoch).
    pub fn end_offset_for(&self, epoch: i32) -> Result<(i32, i64), PartitionError> {
        self.leader_high_watermark()?;
        let s = self.lock();
        Ok(s.epochs.end_offset_for(epoch, s.log_end))
    }

    /// The log's `cleanup.policy`.
    pub fn cleanup_policy(&self) -> Option<crate::log::CleanupPolicy> {
        read_log(&self.log).as_ref().map(|l| l.config().cleanup)
    }

    /// How dirty this replica's log is, if its topic is compacted (leaders and followers
    /// compact independently, as in Kafka: each below its own high watermark).
    pub fn dirtiness(&self, now_ms: i64) -> Option<crate::log::Dirtiness> {
        let hw = self.high_watermark();
        read_log(&self.log).as_ref()?.dirtiness(now_ms, hw)
    }

    /// Snapshots the segments the cleaner should clean now, if any (see [`crate::log::Cleaning`]).
    pub fn start_cleaning(&self, now_ms: i64) -> Option<crate::log::Cleaning> {
        if self.fatal.borrow().is_some() {
            return None;
        }
        let hw = self.high_watermark();
        read_log(&self.log)
            .as_ref()?
            .start_cleaning(now_ms, hw, false)
    }

    /// Swaps a cleaned group in (under the log's write lock, briefly). A storage error stops
    /// the broker, as any other; a group whose segments changed meanwhile is dropped.
    pub fn install_cleaned(
        &self,
        group: Box<crate::log::CleanedGroup>,
    ) -> Result<bool, PartitionError> {
        self.check_not_stopping()?;
        let mut guard = write_log(&self.log);
        let Some(log) = guard.as_mut() else {
            return Ok(false);
        };
        let result = log
            .install_cleaned(group)
            .map_err(|e| PartitionError::Storage(e.to_string()));
        drop(guard);
        self.check_storage(result)
    }

    /// Runs `f` on the log (read-only) with the high watermark, as the leader: ListOffsets'
    /// timestamp lookups.
    pub fn with_log<T>(
        &self,
        f: impl FnOnce(&Log, u64) -> Result<T, LogError>,
    ) -> Result<T, PartitionError> {
        let hw = self.leader_high_watermark()?;
        let guard = read_log(&self.log);
        let log = guard
            .as_ref()
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        f(log, hw).map_err(|e| PartitionError::Storage(e.to_string()))
    }

    /// What the controller made of this leader's AlterPartition (see [`IsrAnswer`]): only a
    /// refusal that says nothing was applied forgets the proposal; one that got no answer, or
    /// was refused because the partition moved on, may have been committed and stays pending.
    pub fn on_isr_result(&self, leader_epoch: i32, answer: IsrAnswer) {
        let mut s = self.lock();
        if s.leader_epoch != leader_epoch {
            return;
        }
        let Role::Leader(leader) = &mut s.role else {
            return;
        };
        match answer {
            IsrAnswer::Committed {
                isr,
                partition_epoch,
            } => {
                if leader.on_isr_committed(isr.clone(), partition_epoch) {
                    let hw = leader.high_watermark();
                    raise_high_watermark(&mut s.high_watermark, hw, &self.tp);
                }
                if partition_epoch >= s.partition_epoch {
                    tracing::info!(partition = %self.tp, ?isr, partition_epoch, "ISR changed");
                    s.isr = isr;
                    s.partition_epoch = partition_epoch;
                }
            }
            IsrAnswer::NotApplied => leader.on_isr_change_failed(),
            IsrAnswer::Stale => leader.on_isr_change_stale(),
            IsrAnswer::Lost => leader.on_isr_change_lost(),
        }
        drop(s);
        self.bump();
    }

    /// A leader's periodic check: an ISR change to propose (lagging followers out).
    pub fn isr_tick(&self, now_ms: u64) -> Option<IsrProposal> {
        let mut s = self.lock();
        if s.deleted {
            return None;
        }
        let Role::Leader(leader) = &mut s.role else {
            return None;
        };
        leader.propose_isr_change(now_ms).map(|change| IsrProposal {
            tp: self.tp.clone(),
            topic_id: self.topic_id.clone(),
            leader_epoch: leader.leader_epoch(),
            change,
        })
    }

    /// The image's view of this partition: leadership, replicas, ISR and configs.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: &[i32],
        isr: &[i32],
        replica_config: &ReplicaConfig,
        now_ms: u64,
    ) {
        let mut guard = self.lock();
        let s = &mut *guard;
        let leadership_changed = leader != s.leader || leader_epoch != s.leader_epoch;
        if leadership_changed && leader_epoch < s.leader_epoch {
            return; // an older image than what this broker already applied
        }
        s.replicas = replicas.to_vec();
        s.replica_config = replica_config.clone();
        if leadership_changed {
            tracing::info!(partition = %self.tp, leader, leader_epoch, "leadership");
            // What was verified under another leadership proves nothing here.
            s.verifications.clear();
            s.leader = leader;
            s.leader_epoch = leader_epoch;
            s.partition_epoch = partition_epoch;
            s.isr = isr.to_vec();
            if leader == self.node_id {
                s.role = Role::Leader(Box::new(LeaderState::new(
                    self.node_id,
                    leader_epoch,
                    partition_epoch,
                    replicas.to_vec(),
                    isr.to_vec(),
                    s.log_end,
                    s.high_watermark,
                    replica_config.min_insync_replicas,
                    replica_config.replica_lag_time_max_ms,
                    now_ms,
                )));
                if let Role::Leader(l) = &mut s.role {
                    l.plant_hw_from_non_isr(ClusterBugs::live(self.bugs.hw_from_non_isr));
                }
                if let Role::Leader(l) = &s.role {
                    let hw = l.high_watermark();
                    raise_high_watermark(&mut s.high_watermark, hw, &self.tp);
                }
                // The new epoch starts at this leader's log end (KIP-101).
                if s.epochs.assign(leader_epoch, s.log_end) {
                    let epochs = s.epochs.clone();
                    drop(guard);
                    if let Some(log) = read_log(&self.log).as_ref() {
                        if let Err(PartitionError::Storage(e)) =
                            write_epochs(self.disk.as_ref(), log, &epochs)
                        {
                            self.fail(&e);
                        }
                    }
                    self.bump();
                    return;
                }
            } else {
                s.role = Role::Follower;
            }
        } else if partition_epoch >= s.partition_epoch {
            s.partition_epoch = partition_epoch;
            s.isr = isr.to_vec();
            if let Role::Leader(l) = &mut s.role {
                l.set_limits(
                    replica_config.min_insync_replicas,
                    replica_config.replica_lag_time_max_ms,
                );
                l.on_isr_committed(isr.to_vec(), partition_epoch);
                // Either call may have moved the leader's high watermark (set_limits recomputes
                // it with the ISR in flight): take it whichever did. Copying only on the second
                // one's "moved" left the partition's high watermark behind its leader state's
                // for good, and acks=all timed out forever (cluster simulation, seed 36).
                let hw = l.high_watermark();
                raise_high_watermark(&mut s.high_watermark, hw, &self.tp);
            }
        }
        drop(guard);
        self.bump();
    }
}

impl State {
    /// The last stable offset: the high watermark, or the first offset of the oldest
    /// transaction that is open or whose marker is not replicated yet, if that is lower
    /// (KIP-98).
    fn last_stable_offset(&mut self) -> u64 {
        let hw = self.high_watermark as i64;
        self.producers.settle(hw);
        let unstable = self
            .producers
            .first_unstable_offset(hw)
            .map_or(u64::MAX, |o| o.max(0) as u64);
        self.high_watermark.min(unstable)
    }
}

fn check_epoch(current_leader_epoch: i32, ours: i32) -> Result<(), PartitionError> {
    if current_leader_epoch < 0 || current_leader_epoch == ours {
        Ok(())
    } else if current_leader_epoch < ours {
        Err(PartitionError::FencedLeaderEpoch {
            theirs: current_leader_epoch,
            ours,
        })
    } else {
        Err(PartitionError::UnknownLeaderEpoch {
            theirs: current_leader_epoch,
            ours,
        })
    }
}

/// Broker-wide log and replica settings (`log.*`, `min.insync.replicas`,
/// `replica.lag.time.max.ms`, `unclean.leader.election.enable`); topic configs override them
/// per partition.
#[derive(Clone, Debug)]
pub struct LogDefaults {
    /// This broker: its own dynamic configs (resource BROKER named by its id) apply.
    pub node_id: i32,
    pub base: LogConfig,
    pub replica: ReplicaConfig,
    /// Planted bugs (simulator only), handed to every partition.
    pub bugs: ClusterBugs,
}

impl LogDefaults {
    /// The config of a partition of `topic`: `server.properties`, then the cluster-wide and
    /// this broker's dynamic broker configs, then the topic's overrides (Kafka's order).
    pub fn for_topic(&self, image: &MetadataImage, topic: &str) -> (LogConfig, ReplicaConfig) {
        let mut c = self.base.clone();
        let mut r = self.replica.clone();
        let (mut flush_messages, mut flush_ms) = match c.flush {
            FlushPolicy::EveryAppend => (1, u64::MAX),
            FlushPolicy::Interval {
                messages,
                interval_ms,
            } => (messages, interval_ms),
        };
        // A dynamic broker key is its topic key's default: applied first, under the topic's.
        let broker_layers = [String::new(), self.node_id.to_string()]
            .into_iter()
            .filter_map(|name| image.configs.get(&("broker".to_string(), name)))
            .flat_map(|layer| {
                layer.iter().filter_map(|(k, v)| {
                    crate::controller::topic_configs::DYNAMIC_BROKER_CONFIGS
                        .iter()
                        .find(|(broker_key, _)| broker_key == k)
                        .map(|(_, topic_key)| (topic_key.to_string(), v.clone()))
                })
            });
        let topic_layer = image
            .configs
            .get(&("topic".to_string(), topic.to_string()))
            .into_iter()
            .flat_map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())));
        let mut layers: Vec<(String, String)> = broker_layers.chain(topic_layer).collect();
        // The group coordinator's log is compacted whatever it was created with (a cluster an
        // earlier ketch made has it without the config), unless an operator chose otherwise.
        if crate::model::is_internal_topic(topic)
            && !layers.iter().any(|(k, _)| k == "cleanup.policy")
        {
            layers.push(("cleanup.policy".into(), "compact".into()));
        }
        {
            for (k, v) in &layers {
                let v = v.trim();
                match k.as_str() {
                    "retention.ms" => c.retention_ms = v.parse().unwrap_or(c.retention_ms),
                    "retention.bytes" => c.retention_bytes = v.parse().unwrap_or(c.retention_bytes),
                    "segment.bytes" => {
                        c.segment_bytes_max = v.parse().unwrap_or(c.segment_bytes_max)
                    }
                    "segment.ms" => c.segment_ms = v.parse().unwrap_or(c.segment_ms),
                    "max.message.bytes" => {
                        c.max_batch_bytes = v.parse().unwrap_or(c.max_batch_bytes)
                    }
                    "flush.messages" => flush_messages = v.parse().unwrap_or(flush_messages),
                    "flush.ms" => flush_ms = v.parse().unwrap_or(flush_ms),
                    "min.insync.replicas" => {
                        r.min_insync_replicas = v.parse().unwrap_or(r.min_insync_replicas)
                    }
                    "unclean.leader.election.enable" => {
                        r.unclean_leader_election = v == "true";
                    }
                    "cleanup.policy" => {
                        c.cleanup = crate::log::CleanupPolicy::parse(v).unwrap_or(c.cleanup)
                    }
                    "min.cleanable.dirty.ratio" => {
                        if let Ok(r) = v.parse::<f64>() {
                            c.min_cleanable_dirty_ratio_ppm = (r.clamp(0.0, 1.0) * 1e6) as u32;
                        }
                    }
                    "min.compaction.lag.ms" => {
                        c.min_compaction_lag_ms = v.parse().unwrap_or(c.min_compaction_lag_ms)
                    }
                    "max.compaction.lag.ms" => {
                        c.max_compaction_lag_ms = v.parse().unwrap_or(c.max_compaction_lag_ms)
                    }
                    "delete.retention.ms" => {
                        c.delete_retention_ms = v.parse().unwrap_or(c.delete_retention_ms)
                    }
                    _ => {}
                }
            }
        }
        c.flush = flush_policy(flush_messages, flush_ms);
        (c, r)
    }
}

/// Kafka's `flush.messages`/`flush.ms` as a policy: one message means fsync before
/// acknowledging (group commit); otherwise flush when either limit is reached.
pub fn flush_policy(messages: u64, interval_ms: u64) -> FlushPolicy {
    if messages <= 1 {
        FlushPolicy::EveryAppend
    } else {
        FlushPolicy::Interval {
            messages,
            interval_ms,
        }
    }
}

/// A log found on disk at start: its dir index, the topic id it belongs to, and the log.
type Stray = (usize, Option<String>, Log);

/// Every partition replica on this broker.
pub struct Partitions {
    node_id: i32,
    /// This process's BrokerRegistration incarnation id: an image holding it is at least as
    /// new as this run's registration.
    incarnation_id: String,
    /// Set once an image held this run's registration; until then images are not applied.
    caught_up: std::sync::atomic::AtomicBool,
    disk: Arc<dyn Disk>,
    dirs: Vec<LogDir>,
    defaults: LogDefaults,
    clock: Clock,
    map: std::sync::RwLock<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// Logs found on disk at start that the image has not claimed (yet), with their dir index
    /// and topic id.
    strays: Mutex<BTreeMap<TopicPartition, Stray>>,
    /// High watermarks checkpointed by an earlier run, per dir.
    checkpointed_hw: Vec<BTreeMap<TopicPartition, u64>>,
    /// Bumped after every append and high watermark move; a fetch waiting for data watches it.
    appended: Arc<watch::Sender<u64>>,
    /// Bumped whenever a partition's leadership changes: the replica fetchers watch it.
    leadership: watch::Sender<u64>,
    /// One `apply_image` at a time: two would both create the same log.
    applying: Mutex<()>,
    /// One writer of the `log-start-offset-checkpoint` files at a time.
    log_starts_written: Mutex<()>,
    /// A log writer's fatal error (a failed fsync): the broker must stop.
    fatal: watch::Sender<Option<String>>,
    /// ISR changes leaders propose, for the task that sends them to the controller.
    isr_tx: mpsc::UnboundedSender<IsrProposal>,
    isr_rx: Mutex<Option<mpsc::UnboundedReceiver<IsrProposal>>>,
}

fn read_topic_id(disk: &dyn Disk, dir: &Path) -> Option<String> {
    let text = disk.read_file(&dir.join(PARTITION_METADATA)).ok()?;
    let text = String::from_utf8(text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|id| id.trim().to_string())
}

impl Partitions {
    /// Takes the logs recovered from `dirs` (`logs[i]` from `dirs[i]`). `incarnation_id` is
    /// the one this process registers with.
    pub fn new(
        node_id: i32,
        incarnation_id: String,
        disk: Arc<dyn Disk>,
        dirs: Vec<LogDir>,
        logs: Vec<BTreeMap<TopicPartition, Log>>,
        defaults: LogDefaults,
        clock: Clock,
    ) -> Partitions {
        let mut strays = BTreeMap::new();
        for (i, logs) in logs.into_iter().enumerate() {
            for (tp, log) in logs {
                let id = read_topic_id(disk.as_ref(), log.dir());
                strays.insert(tp, (i, id, log));
            }
        }
        let checkpointed_hw = dirs
            .iter()
            .map(|d| {
                crate::log::read_offset_checkpoint(
                    disk.as_ref(),
                    &d.path().join(HIGH_WATERMARK_CHECKPOINT),
                )
                .unwrap_or_else(|e| {
                    tracing::warn!("{}: high watermarks unreadable: {e}", d.path().display());
                    BTreeMap::new()
                })
            })
            .collect();
        let (isr_tx, isr_rx) = mpsc::unbounded_channel();
        Partitions {
            node_id,
            incarnation_id,
            caught_up: std::sync::atomic::AtomicBool::new(false),
            disk,
            dirs,
            defaults,
            clock,
            map: std::sync::RwLock::new(BTreeMap::new()),
            strays: Mutex::new(strays),
            checkpointed_hw,
            appended: Arc::new(watch::channel(0).0),
            leadership: watch::channel(0).0,
            applying: Mutex::new(()),
            log_starts_written: Mutex::new(()),
            fatal: watch::channel(None).0,
            isr_tx,
            isr_rx: Mutex::new(Some(isr_rx)),
        }
    }

    /// A topic's replica settings: its overrides over the broker's defaults.
    pub fn replica_config(&self, image: &MetadataImage, topic: &str) -> ReplicaConfig {
        self.defaults.for_topic(image, topic).1
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The partition, applying `image` first if it assigns the partition to this node and
    /// the background follower has not got to it yet (a request right after a topic is made).
    pub fn get_or_apply(
        &self,
        tp: &TopicPartition,
        image: &MetadataImage,
    ) -> Option<Arc<Partition>> {
        if let Some(p) = self.get(tp) {
            return Some(p);
        }
        let assigned = image
            .topic_by_name(&tp.topic)
            .and_then(|t| t.partitions.get(&tp.partition))
            .is_some_and(|p| p.replicas.contains(&self.node_id));
        if !assigned {
            return None;
        }
        self.apply_image(image);
        self.get(tp)
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tp)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Tells fetchers waiting for data that some arrived.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Watches leadership changes (the replica fetcher manager).
    pub fn subscribe_leadership(&self) -> watch::Receiver<u64> {
        self.leadership.subscribe()
    }

    /// Watches for a fatal storage error (a log writer's failed fsync, a failed write).
    pub fn subscribe_fatal(&self) -> watch::Receiver<Option<String>> {
        self.fatal.subscribe()
    }

    /// A storage failure outside one partition's writes (the periodic flush of every log):
    /// the broker must stop, as for a log writer's failed fsync.
    pub fn fail(&self, what: String) {
        raise_fatal(&self.fatal, what);
    }

    /// Sends a leader's ISR proposal to the task that asks the controller.
    pub fn propose_isr(&self, proposal: IsrProposal) {
        let _ = self.isr_tx.send(proposal);
    }

    /// The receiving end of ISR proposals (taken once, by the broker's ISR sender).
    pub fn take_isr_proposals(&self) -> Option<mpsc::UnboundedReceiver<IsrProposal>> {
        self.isr_rx.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Partitions this broker follows, by leader: what each replica fetcher fetches.
    pub fn followed_by_leader(&self) -> BTreeMap<i32, Vec<Arc<Partition>>> {
        let mut out: BTreeMap<i32, Vec<Arc<Partition>>> = BTreeMap::new();
        for p in self.all() {
            if let Some((leader, ..)) = p.fetch_position() {
                if leader != self.node_id {
                    out.entry(leader).or_default().push(p);
                }
            }
        }
        out
    }

    /// Every leader's periodic ISR check (followers that stopped catching up leave it).
    pub fn isr_tick(&self) {
        let now = self.clock.monotonic_ms();
        for p in self.all() {
            if let Some(proposal) = p.isr_tick(now) {
                self.propose_isr(proposal);
            }
        }
    }

    fn create_log(
        &self,
        tp: &TopicPartition,
        topic_id: &str,
        config: LogConfig,
    ) -> Result<(usize, Log), LogError> {
        // The dir with the fewest partitions, as Kafka places new logs.
        let counts = {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            let mut counts = vec![0usize; self.dirs.len()];
            for p in map.values() {
                if let Some(c) = counts.get_mut(p.dir_index) {
                    *c += 1;
                }
            }
            counts
        };
        let index = (0..self.dirs.len()).min_by_key(|i| counts[*i]).unwrap_or(0);
        let dir = self.dirs.get(index).ok_or_else(|| LogError::BadDirectory {
            path: "log.dirs".into(),
            what: "no log directory".into(),
        })?;
        let log = dir.create_log(tp, config)?;
        let path = log.dir().join(PARTITION_METADATA);
        self.disk
            .write_file_atomic(
                &path,
                format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
            )
            .map_err(|e| LogError::Io { path, source: e })?;
        Ok((index, log))
    }

    fn delete_log(&self, dir_index: usize, log: Log) {
        let path = log.dir().display().to_string();
        match self.dirs.get(dir_index).map(|d| d.delete_log(log)) {
            Some(Ok(())) => tracing::info!(%path, "partition log deleted"),
            Some(Err(e)) => tracing::error!(%path, "cannot delete partition log: {e}"),
            None => {}
        }
    }

    /// Opens a partition around `log` with its writer task.
    fn open_partition(
        &self,
        tp: TopicPartition,
        topic_id: String,
        dir_index: usize,
        mut log: Log,
    ) -> Arc<Partition> {
        let end = log.log_end_offset();
        let producers = recover_producers(self.disk.as_ref(), &mut log);
        let epochs = recover_epochs(self.disk.as_ref(), &log);
        let hw = self
            .checkpointed_hw
            .get(dir_index)
            .and_then(|m| m.get(&tp))
            .copied()
            .unwrap_or(0)
            .min(end);
        let fsync_before_ack = log.config().flush == FlushPolicy::EveryAppend;
        let log_start = log.log_start_offset();
        let shared: SharedLog = Arc::new(std::sync::RwLock::new(Some(log)));
        let (writer, task) = LogWriter::spawn(
            Arc::clone(&shared),
            self.clock.clone(),
            PlantedBugs::default(),
        );
        let fatal = self.fatal.clone();
        let name = tp.to_string();
        crate::runtime::spawn(async move {
            let outcome = match task.await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(format!("{name}: {e}")),
                Err(e) => Some(format!("{name}: log writer task: {e}")),
            };
            if let Some(e) = outcome {
                tracing::error!("partition log failed, the broker must stop: {e}");
                fatal.send_replace(Some(e));
            }
        });
        tracing::info!(partition = %tp, log_end = end, high_watermark = hw, "partition ready");
        Arc::new(Partition {
            tp,
            topic_id,
            dir_index,
            node_id: self.node_id,
            log: shared,
            writer,
            state: Mutex::new(State {
                leader: -1,
                leader_epoch: -1,
                partition_epoch: -1,
                replicas: Vec::new(),
                isr: Vec::new(),
                high_watermark: hw,
                role: Role::Follower,
                producers,
                verifications: Verifications::default(),
                epochs,
                replica_config: ReplicaConfig::default(),
                log_end: end,
                log_start,
                deleted: false,
            }),
            changed: watch::channel(0).0,
            appended: Arc::clone(&self.appended),
            disk: Arc::clone(&self.disk),
            fsync_before_ack,
            bugs: self.defaults.bugs,
            fatal: self.fatal.clone(),
        })
    }

    /// Makes the partitions match the committed image: this node's replicas exist with the
    /// image's leadership, and nothing else does.
    ///
    /// Not before the image holds this process's own registration: the metadata replayed from
    /// local disk at start can be far behind the quorum, and acting on it would make this node
    /// lead partitions at epochs the cluster left long ago (and acknowledge `acks=1` writes
    /// there). Kafka's broker likewise waits until it caught up with its registration.
    /// Whether the image has caught up with this process's own registration (see
    /// [`Self::apply_image`]): before it, what the image says about topics may be long stale.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(std::sync::atomic::Ordering::Acquire)
    }

    pub fn apply_image(&self, image: &MetadataImage) {
        use std::sync::atomic::Ordering;
        if !self.caught_up.load(Ordering::Acquire) {
            let ours = image
                .brokers
                .get(&self.node_id)
                .is_some_and(|b| b.incarnation_id == self.incarnation_id);
            if !ours {
                return;
            }
            tracing::info!(
                "metadata caught up with this broker's registration: partitions follow it"
            );
            self.caught_up.store(true, Ordering::Release);
        }
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let now = self.clock.monotonic_ms();
        let mut wanted: BTreeMap<
            TopicPartition,
            (String, &crate::controller::PartitionRegistration),
        > = BTreeMap::new();
        for topic in image.topics.values() {
            for (index, p) in &topic.partitions {
                if p.replicas.contains(&self.node_id) {
                    wanted.insert(
                        TopicPartition::new(topic.name.clone(), *index),
                        (topic.topic_id.clone(), p),
                    );
                }
            }
        }
        // Gone: deleted topics, and replicas moved away.
        let gone: Vec<Arc<Partition>> = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<TopicPartition> = map
                .iter()
                .filter(|(tp, p)| wanted.get(*tp).is_none_or(|w| w.0 != p.topic_id))
                .map(|(tp, _)| tp.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        let mut leadership_moved = !gone.is_empty();
        for p in gone {
            p.lock().deleted = true;
            p.bump();
            let log = write_log(&p.log).take();
            if let Some(log) = log {
                self.delete_log(p.dir_index, log);
            }
        }
        for (tp, (topic_id, reg)) in wanted {
            let (config, replica_config) = self.defaults.for_topic(image, &tp.topic);
            let partition = match self.get(&tp) {
                Some(p) => {
                    if let Some(log) = write_log(&p.log).as_mut() {
                        if log.config() != &config {
                            log.set_config(config);
                        }
                    }
                    p
                }
                None => {
                    let stray = self
                        .strays
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&tp);
                    let opened = match stray {
                        Some((index, Some(id), log)) if id == topic_id => {
                            let mut log = log;
                            log.set_config(config);
                            Ok((index, log))
                        }
                        Some((index, _, log)) => {
                            // A log of an older topic with this name: its data is not this
                            // topic's.
                            self.delete_log(index, log);
                            self.create_log(&tp, &topic_id, config)
                        }
                        None => self.create_log(&tp, &topic_id, config),
                    };
                    match opened {
                        Ok((dir_index, log)) => {
                            let p = self.open_partition(tp.clone(), topic_id, dir_index, log);
                            self.map
                                .write()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(tp.clone(), Arc::clone(&p));
                            p
                        }
                        Err(e) => {
                            tracing::error!(partition = %tp, "cannot open the partition log: {e}");
                            continue;
                        }
                    }
                }
            };
            let before = partition.leadership();
            partition.apply(
                reg.leader,
                reg.leader_epoch,
                reg.partition_epoch,
                &reg.replicas,
                &reg.isr,
                &replica_config,
                now,
            );
            leadership_moved |= partition.leadership() != before;
        }
        if leadership_moved {
            self.leadership.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.notify_appended();
    }

    /// Fsyncs every log and records the recovery points and high watermarks.
    pub fn flush_all(&self) -> Result<(), LogError> {
        let partitions = self.all();
        for p in &partitions {
            // The log's lock first, then the state (the writer's order): the producers' state
            // cloned under it matches the log end the snapshot names. Cloned before the lock, a
            // batch appended in between was in the log but not in the snapshot, and after a
            // restart its retry would have gone in twice.
            let mut guard = write_log(&p.log);
            let Some(log) = guard.as_mut() else {
                continue;
            };
            let producers = p.lock().producers.clone();
            log.flush()?;
            let snapshot = ProducerSnapshot {
                offset: log.log_end_offset(),
                state: producers,
            };
            let path = log.dir().join(PRODUCER_STATE);
            let bytes = serde_json::to_vec(&snapshot).unwrap_or_default();
            self.disk
                .write_file_atomic(&path, &bytes)
                .map_err(|e| LogError::Io { path, source: e })?;
        }
        self.write_recovery_points(&partitions)?;
        self.write_log_starts()?;
        self.write_high_watermarks()
    }

    fn write_recovery_points(&self, partitions: &[Arc<Partition>]) -> Result<(), LogError> {
        // After a storage error the files beside the logs (epoch checkpoints, producer
        // snapshots) may lag them: the next start re-reads what follows the last recovery
        // points and rebuilds what it finds there.
        if self.fatal.borrow().is_some() {
            return Ok(());
        }
        for (i, dir) in self.dirs.iter().enumerate() {
            // Recovery points are taken from each log under its lock, then written together.
            let mut map: BTreeMap<TopicPartition, u64> = BTreeMap::new();
            for p in partitions.iter().filter(|p| p.dir_index == i) {
                if let Some(log) = read_log(&p.log).as_ref() {
                    map.insert(p.tp.clone(), log.flushed_offset());
                }
            }
            for (tp, (index, _, log)) in
                self.strays.lock().unwrap_or_else(|p| p.into_inner()).iter()
            {
                if *index == i {
                    map.insert(tp.clone(), log.flushed_offset());
                }
            }
            crate::log::write_offset_checkpoint(
                self.disk.as_ref(),
                &dir.path().join(crate::log::RECOVERY_POINT_CHECKPOINT),
                &map,
            )?;
        }
        Ok(())
    }

    /// Writes each dir's `log-start-offset-checkpoint`: the log starts that lie inside a
    /// segment (DeleteRecords, or a follower taking its leader's). One writer at a time, as
    /// the file is rewritten whole.
    pub fn write_log_starts(&self) -> Result<(), LogError> {
        let _one = self
            .log_starts_written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let partitions = self.all();
        for (i, dir) in self.dirs.iter().enumerate() {
            let mut starts: BTreeMap<TopicPartition, u64> = BTreeMap::new();
            for p in partitions.iter().filter(|p| p.dir_index == i) {
                if let Some(log) = read_log(&p.log).as_ref() {
                    if log.start_inside_segment() {
                        starts.insert(p.tp.clone(), log.log_start_offset());
                    }
                }
            }
            for (tp, (index, _, log)) in
                self.strays.lock().unwrap_or_else(|p| p.into_inner()).iter()
            {
                if *index == i && log.start_inside_segment() {
                    starts.insert(tp.clone(), log.log_start_offset());
                }
            }
            dir.write_log_starts(&starts)?;
        }
        Ok(())
    }

    /// Writes every partition's high watermark to its dir's `replication-offset-checkpoint`.
    pub fn write_high_watermarks(&self) -> Result<(), LogError> {
        let partitions = self.all();
        for (i, dir) in self.dirs.iter().enumerate() {
            let map: BTreeMap<TopicPartition, u64> = partitions
                .iter()
                .filter(|p| p.dir_index == i)
                .map(|p| (p.tp.clone(), p.high_watermark()))
                .collect();
            crate::log::write_offset_checkpoint(
                self.disk.as_ref(),
                &dir.path().join(HIGH_WATERMARK_CHECKPOINT),
                &map,
            )?;
        }
        Ok(())
    }

    /// Deletes expired segments of every log (never at or above the high watermark).
    pub fn apply_retention(&self, now_ms: i64) {
        for p in self.all() {
            let hw = p.high_watermark();
            let mut guard = write_log(&p.log);
            if let Some(log) = guard.as_mut() {
                match log.apply_retention(now_ms, hw) {
                    Ok(r) if r.segments_deleted > 0 => {
                        let start = log.log_start_offset();
                        drop(guard);
                        let mut s = p.lock();
                        s.log_start = start;
                        if s.epochs.truncate_from_start(start) {
                            let epochs = s.epochs.clone();
                            drop(s);
                            if let Some(log) = read_log(&p.log).as_ref() {
                                if let Err(PartitionError::Storage(e)) =
                                    write_epochs(self.disk.as_ref(), log, &epochs)
                                {
                                    p.fail(&e);
                                }
                            }
                        }
                        tracing::info!(
                            partition = %p.tp,
                            segments = r.segments_deleted,
                            bytes = r.bytes_deleted,
                            log_start = r.log_start_offset,
                            "retention deleted segments"
                        )
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(partition = %p.tp, "retention failed: {e}"),
                }
            }
        }
    }

    /// Flushes and closes every log (clean shutdown: the next start scans nothing).
    pub fn close_all(&self) -> Result<(), LogError> {
        self.flush_all()?;
        let partitions: Vec<Arc<Partition>> = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *map).into_values().collect()
        };
        for p in partitions {
            p.lock().deleted = true;
            let log = write_log(&p.log).take();
            if let Some(log) = log {
                log.close()?;
            }
        }
        let strays = std::mem::take(&mut *self.strays.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, (_, _, log)) in strays {
            log.close()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::LogConfig;
    use crate::protocol::record_batch::build_batch;
    use crate::runtime::{DiskFaults, SimDisk};

    #[test]
    fn recovery_takes_epochs_the_checkpoint_lacks_from_the_batches_above_the_recovery_point() {
        let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(1, DiskFaults::default()));
        let dir = Path::new("/data/t-0");
        let (mut log, _) = Log::open(Arc::clone(&disk), dir, LogConfig::default(), 0).unwrap();
        for epoch in [0, 0, 3, 3] {
            let mut b = build_batch(0, 1, &[(None, b"v".as_slice())]);
            log.append(&mut b, Some(epoch), 0).unwrap();
        }
        log.flush().unwrap();
        // The checkpoint was written before epoch 3 began (its write then failed).
        let mut stale = EpochCache::new();
        stale.assign(0, 0);
        write_epochs(disk.as_ref(), &log, &stale).unwrap();
        drop(log);
        // Reopened from recovery point 1: the batches at 1.. are read again, epoch 3 among them.
        let (log, _) = Log::open(Arc::clone(&disk), dir, LogConfig::default(), 1).unwrap();
        let cache = recover_epochs(disk.as_ref(), &log);
        assert_eq!(cache.entries(), &[(0, 0), (3, 2)]);
    }
}
