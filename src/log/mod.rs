//! The partition log: a directory of segments holding Kafka record batches (format v2) exactly as
//! received, with offsets assigned by rewriting each batch's base offset.
//!
//! Owns: segment files and their indexes (`<20-digit base offset>.log|.index|.timeindex`, and
//! `.txnindex` for a segment holding abort markers),
//! rolling, reads by offset and timestamp, truncation, retention, compaction (`cleaner`, with
//! its `.cleaned`/`.swap` files), flushing, recovery after a crash, and the per-directory files
//! Kafka keeps beside the logs (`meta.properties`, `recovery-point-offset-checkpoint`).
//!
//! Must not touch: the network, clocks (time is passed in), Raft or replication decisions.
//! Records are decoded only by the cleaner; every other path reads batch headers alone. All IO
//! goes through [`crate::runtime::Disk`], so the simulator can crash it.

mod checkpoint;
mod cleaner;
mod index;
mod log_dir;
mod meta;
mod partition_log;
mod segment;
mod txn_index;

pub use crate::model::config::CleanupPolicy;
pub use checkpoint::{read_offset_checkpoint, write_offset_checkpoint, CheckpointError};
pub use cleaner::{CleanReport, CleanedGroup, Cleaning, Dirtiness, Step};
pub use log_dir::{LogDir, LOG_START_CHECKPOINT, RECOVERY_POINT_CHECKPOINT};
pub use meta::{MetaProperties, MetaPropertiesError, META_PROPERTIES};
pub use partition_log::{AppendInfo, Log, RetentionReport};
pub use txn_index::AbortedTxn;

use crate::protocol::record_batch::BatchError;
use std::io;
use std::path::{Path, PathBuf};

/// When appended data is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every append is fsynced before it is acknowledged; concurrent appends share one fsync
    /// (group commit, done by the caller that batches appends before calling [`Log::flush`]).
    EveryAppend,
    /// Kafka's default: fsync when `messages` appends or `interval_ms` have gone by since the
    /// last flush, whichever is first; durability otherwise comes from replication.
    Interval { messages: u64, interval_ms: u64 },
}

/// Per-log settings, named after Kafka's topic configs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would grow past this.
    pub segment_bytes_max: u64,
    /// `segment.ms`: roll when the active segment's first batch is older than this.
    pub segment_ms: i64,
    /// `retention.ms`: delete segments whose newest timestamp is older than this; -1 = forever.
    pub retention_ms: i64,
    /// `retention.bytes`: delete oldest segments while the log is larger; -1 = no limit.
    pub retention_bytes: i64,
    /// `index.interval.bytes`: bytes between sparse index entries.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: largest batch accepted.
    pub max_batch_bytes: usize,
    pub flush: FlushPolicy,
    /// Whether batch offsets may jump (a Kafka partition log: compaction removes batches, and
    /// followers copy the gaps). A Raft log must run without gaps, so it checks for them.
    pub offset_gaps_allowed: bool,
    /// `cleanup.policy`: which of retention and compaction apply.
    pub cleanup: CleanupPolicy,
    /// `min.cleanable.dirty.ratio`, in parts per million (a config must compare equal).
    pub min_cleanable_dirty_ratio_ppm: u32,
    /// `min.compaction.lag.ms`: a record this young is never compacted.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms`: a record this old is compacted whatever the dirty ratio.
    pub max_compaction_lag_ms: i64,
    /// `delete.retention.ms`: how long a tombstone outlives the clean that first retains it.
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes_max: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            flush: FlushPolicy::Interval {
                messages: u64::MAX,
                interval_ms: u64::MAX,
            },
            offset_gaps_allowed: false,
            cleanup: CleanupPolicy::DELETE,
            min_cleanable_dirty_ratio_ppm: 500_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            delete_retention_ms: 24 * 60 * 60 * 1000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("invalid record batch at byte {position} of the appended data: {reason}")]
    InvalidBatch { position: usize, reason: BatchError },
    #[error("empty append: no record batch in the data")]
    EmptyAppend,
    #[error(
        "{path}: corrupt batch at byte {position} (offset {offset}) below the recovery point \
         {recovery_point}, so it was fsynced and is not a torn write: {reason}; refusing to \
         truncate acknowledged data"
    )]
    Corrupt {
        path: PathBuf,
        position: u64,
        offset: u64,
        recovery_point: u64,
        reason: String,
    },
    #[error("append at offset {got} does not continue the log end offset {expected}")]
    NonContiguous { expected: u64, got: u64 },
    #[error("offset {offset} is out of range: the log holds [{log_start}, {log_end})")]
    OffsetOutOfRange {
        offset: u64,
        log_start: u64,
        log_end: u64,
    },
    #[error("{path}: {what}")]
    BadDirectory { path: PathBuf, what: String },
    #[error(transparent)]
    Meta(#[from] MetaPropertiesError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
}

impl LogError {
    pub(crate) fn io(path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod compaction_tests;
#[cfg(test)]
mod tests;
