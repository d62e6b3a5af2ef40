//! The KRaft-style metadata quorum core, sans-IO (KIP-595 Raft for KRaft, KIP-996 pre-vote).
//!
//! Owns: roles and epochs, votes, leader election with pre-vote, pull-based replication (followers
//! and observers fetch; divergence is answered with the diverging epoch and its end offset), the
//! high watermark, check-quorum, the ordering of durability against messages, and snapshots
//! (KIP-630): a leader sends a fetcher whose offset it no longer holds the id of its latest
//! snapshot, and the fetcher downloads it with FetchSnapshot and starts its log after it.
//!
//! Must not touch: sockets, files, clocks, tasks or global randomness. Time comes in as `now_ms`
//! arguments, randomness as a seeded RNG handed to [`RaftNode::new`], the log through the
//! [`RaftLog`] trait (the broker implements it over `crate::log`; tests use [`MemLog`]), and
//! everything to do comes out of [`RaftNode::take_ready`].
//!
//! The wire form of [`Message`] is Kafka's own Vote (52), BeginQuorumEpoch (53),
//! EndQuorumEpoch (54), Fetch (1) and FetchSnapshot (59); the mapping lives in the broker, not
//! here. What a snapshot holds is the state machine's business: the core moves opaque bytes.

use kafka_protocol::error::ResponseError;
mod memlog;
mod node;

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;

pub use memlog::MemLog;
pub use node::{
    Config, ProposeError, QuorumState, RaftBugs, RaftNode, Ready, Role, SnapshotError,
    LEADER_CHANGE,
};

use crate::model::NodeId;

/// A leader epoch. Epoch 0 is "before any election".
pub type Epoch = i32;

/// One entry of the replicated log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub epoch: Epoch,
    pub data: Vec<u8>,
}

/// A snapshot of the state machine holding every entry below `end_offset`; `epoch` is the epoch
/// of the entry at `end_offset - 1`. Kafka's `OffsetAndEpoch`, and the
/// `<end_offset>-<epoch>.checkpoint` file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SnapshotId {
    pub end_offset: u64,
    pub epoch: Epoch,
}

/// The log failed underneath the core (an IO error in the broker's implementation). Fatal:
/// the node must stop rather than go on with a log it cannot trust.
/// The implementation's own error is kept as the source.
#[derive(Debug, Clone, thiserror::Error)]
#[error("raft log failure: {what}")]
pub struct LogFailure {
    pub what: String,
    #[source]
    pub source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl LogFailure {
    /// A failure the log itself found (no underlying error).
    pub fn new(what: impl Into<String>) -> LogFailure {
        LogFailure {
            what: what.into(),
            source: None,
        }
    }

    /// A failure caused by `source`, described by `what`.
    pub fn caused_by(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> LogFailure {
        LogFailure {
            what: what.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }
}

impl PartialEq for LogFailure {
    fn eq(&self, other: &LogFailure) -> bool {
        self.what == other.what
    }
}

impl Eq for LogFailure {}

/// The replicated log as the core sees it. Appends and truncations take effect at once for
/// reads; appends become durable only when the shell flushes and reports it with
/// [`RaftNode::on_log_flushed`]; truncations and snapshots are durable before they return.
///
/// With snapshots the log holds a suffix: entries from `start_offset()`, which is never above
/// the latest snapshot's end offset, and that snapshot stands for everything before it.
pub trait RaftLog {
    /// First offset in the log.
    fn start_offset(&self) -> u64;
    /// One past the last entry (the latest snapshot's end offset if no entry follows it).
    fn end_offset(&self) -> u64;
    /// Epoch of the last entry; the latest snapshot's epoch if it ends the log; 0 if both are
    /// empty.
    fn last_epoch(&self) -> Epoch;
    /// The largest epoch in the log that is at most `epoch`, and the end offset of that epoch
    /// (one past its last entry): Kafka's leader-epoch cache lookup (OffsetsForLeaderEpoch).
    /// The latest snapshot counts as an entry of its epoch at its end offset − 1.
    /// `(0, start_offset())` if the log has no such epoch.
    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, u64);
    /// Up to `max_entries` entries from `from`.
    fn read(&self, from: u64, max_entries: usize) -> Vec<Entry>;
    /// Appends entries that continue the log.
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogFailure>;
    /// Removes every entry at or above `offset`, durably.
    fn truncate_to(&mut self, offset: u64) -> Result<(), LogFailure>;
    /// The newest snapshot, if any.
    fn latest_snapshot(&self) -> Option<SnapshotId>;
    /// Up to `max_bytes` of snapshot `id` from `position`, and the snapshot's whole size;
    /// `None` if this log does not hold that snapshot.
    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Option<(Vec<u8>, u64)>;
    /// Stores a snapshot of this node's own committed state durably, then may drop entries
    /// below `id.end_offset` (whole segments, so the start may stay below it).
    fn store_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure>;
    /// Stores a snapshot fetched from the leader durably and empties the log to start at
    /// `id.end_offset` (Kafka's `truncateFullyAndStartAt`).
    fn install_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure>;
}

/// Kafka error codes the quorum answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftError {
    /// 74: the request's epoch is older than the receiver's.
    FencedLeaderEpoch,
    /// 6: the receiver is not the leader.
    NotLeaderOrFollower,
    /// 75 (UNKNOWN_LEADER_EPOCH): the request's epoch is newer than the receiver knows.
    UnknownLeaderEpoch,
    /// 94 (INCONSISTENT_VOTER_SET): the sender is not a voter of this quorum (voter-only requests).
    InconsistentVoterSet,
    /// 104: the request names another cluster (checked by the shell, which knows the id).
    InconsistentClusterId,
    /// 98: the requested snapshot is not (or no longer) held.
    SnapshotNotFound,
    /// 99: the requested position is past the snapshot's end.
    PositionOutOfRange,
}

impl RaftError {
    pub fn code(self) -> i16 {
        match self {
            RaftError::FencedLeaderEpoch => ResponseError::FencedLeaderEpoch.code(),
            RaftError::NotLeaderOrFollower => ResponseError::NotLeaderOrFollower.code(),
            // 75 in Kafka's protocol (an earlier version here said 76,
            // UNSUPPORTED_COMPRESSION_TYPE).
            RaftError::UnknownLeaderEpoch => ResponseError::UnknownLeaderEpoch.code(),
            // 94 in Kafka's protocol (an earlier version here said 68, NON_EMPTY_GROUP).
            RaftError::InconsistentVoterSet => ResponseError::InconsistentVoterSet.code(),
            RaftError::InconsistentClusterId => ResponseError::InconsistentClusterId.code(),
            RaftError::SnapshotNotFound => ResponseError::SnapshotNotFound.code(),
            RaftError::PositionOutOfRange => ResponseError::PositionOutOfRange.code(),
        }
    }
}

/// Messages between quorum members. Every message carries the sender's epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// Vote (52). `pre_vote` (KIP-996) asks "would you vote for me in `epoch`?" without anyone
    /// changing epoch or recording a vote.
    VoteRequest {
        epoch: Epoch,
        candidate: NodeId,
        last_epoch: Epoch,
        end_offset: u64,
        pre_vote: bool,
    },
    VoteResponse {
        epoch: Epoch,
        granted: bool,
        pre_vote: bool,
        leader: Option<NodeId>,
        error: Option<RaftError>,
    },
    /// BeginQuorumEpoch (53): a new leader announces itself.
    BeginQuorumEpoch { epoch: Epoch, leader: NodeId },
    BeginQuorumEpochResponse {
        epoch: Epoch,
        error: Option<RaftError>,
    },
    /// EndQuorumEpoch (54): a leader resigns; the successors should elect at once.
    EndQuorumEpoch {
        epoch: Epoch,
        leader: NodeId,
        preferred_successors: Vec<NodeId>,
    },
    EndQuorumEpochResponse {
        epoch: Epoch,
        error: Option<RaftError>,
    },
    /// Fetch (1) from a follower or observer. `fetch_offset` is durable on the fetcher.
    FetchRequest {
        epoch: Epoch,
        replica: NodeId,
        fetch_offset: u64,
        last_fetched_epoch: Epoch,
    },
    FetchResponse {
        epoch: Epoch,
        /// The `(fetch_offset, last_fetched_epoch)` of the request this answers. Kafka's wire
        /// response does not carry it; the shell fills it in from the request it paired the
        /// response with (by correlation id), so a late answer to an older fetch is recognised.
        answers: (u64, Epoch),
        leader: Option<NodeId>,
        high_watermark: u64,
        entries: Vec<Entry>,
        /// The fetcher's log diverges: truncate to this epoch's end offset and fetch again.
        diverging: Option<(Epoch, u64)>,
        /// The leader no longer holds the fetched offset: download this snapshot.
        snapshot: Option<SnapshotId>,
        error: Option<RaftError>,
    },
    /// FetchSnapshot (59): the next chunk of a snapshot, from `position`.
    FetchSnapshotRequest {
        epoch: Epoch,
        replica: NodeId,
        snapshot: SnapshotId,
        position: u64,
    },
    FetchSnapshotResponse {
        epoch: Epoch,
        leader: Option<NodeId>,
        snapshot: SnapshotId,
        /// The snapshot's whole size in bytes.
        size: u64,
        position: u64,
        bytes: Vec<u8>,
        error: Option<RaftError>,
    },
}

impl Message {
    pub fn epoch(&self) -> Epoch {
        match self {
            Message::VoteRequest { epoch, .. }
            | Message::VoteResponse { epoch, .. }
            | Message::BeginQuorumEpoch { epoch, .. }
            | Message::BeginQuorumEpochResponse { epoch, .. }
            | Message::EndQuorumEpoch { epoch, .. }
            | Message::EndQuorumEpochResponse { epoch, .. }
            | Message::FetchRequest { epoch, .. }
            | Message::FetchResponse { epoch, .. }
            | Message::FetchSnapshotRequest { epoch, .. }
            | Message::FetchSnapshotResponse { epoch, .. } => *epoch,
        }
    }
}
