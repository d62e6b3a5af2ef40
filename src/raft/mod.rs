//! The KRaft-style metadata quorum core, sans-IO (KIP-595 Raft for KRaft, KIP-996 pre-vote).
//!
//! Owns: roles and epochs, votes, leader election with pre-vote, pull-based replication (followers
//! and observers fetch; divergence is answered with the diverging epoch and its end offset), the
//! high watermark, check-quorum, and the ordering of durability against messages.
//!
//! Must not touch: sockets, files, clocks, tasks or global randomness. Time comes in as `now_ms`
//! arguments, randomness as a seeded RNG handed to [`RaftNode::new`], the log through the
//! [`RaftLog`] trait (the broker implements it over `crate::log`; tests use [`MemLog`]), and
//! everything to do comes out of [`RaftNode::take_ready`].
//!
//! The wire form of [`Message`] is Kafka's own Vote (52), BeginQuorumEpoch (53),
//! EndQuorumEpoch (54) and Fetch (1); the mapping lives in the broker, not here.

mod memlog;
mod node;

#[cfg(test)]
mod simulation;
#[cfg(test)]
mod tests;

pub use memlog::MemLog;
pub use node::{Config, ProposeError, QuorumState, RaftBugs, RaftNode, Ready, Role, LEADER_CHANGE};

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

/// The log failed underneath the core (an IO error in the broker's implementation). Fatal:
/// the node must stop rather than go on with a log it cannot trust.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("raft log failure: {0}")]
pub struct LogFailure(pub String);

/// The replicated log as the core sees it. Appends and truncations take effect at once for
/// reads; appends become durable only when the shell flushes and reports it with
/// [`RaftNode::on_log_flushed`]; truncations are durable before they return.
pub trait RaftLog {
    /// First offset in the log.
    fn start_offset(&self) -> u64;
    /// One past the last entry.
    fn end_offset(&self) -> u64;
    /// Epoch of the last entry, 0 if the log is empty.
    fn last_epoch(&self) -> Epoch;
    /// The largest epoch in the log that is at most `epoch`, and the end offset of that epoch
    /// (one past its last entry): Kafka's leader-epoch cache lookup (OffsetsForLeaderEpoch).
    /// `(0, 0)` if the log has no such epoch.
    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, u64);
    /// Up to `max_entries` entries from `from`.
    fn read(&self, from: u64, max_entries: usize) -> Vec<Entry>;
    /// Appends entries that continue the log.
    fn append(&mut self, entries: &[Entry]) -> Result<(), LogFailure>;
    /// Removes every entry at or above `offset`, durably.
    fn truncate_to(&mut self, offset: u64) -> Result<(), LogFailure>;
}

/// Kafka error codes the quorum answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RaftError {
    /// 74: the request's epoch is older than the receiver's.
    FencedLeaderEpoch,
    /// 6: the receiver is not the leader.
    NotLeaderOrFollower,
    /// 76: the request's epoch is newer than the receiver knows.
    UnknownLeaderEpoch,
    /// 68: the sender is not a voter of this quorum (voter-only requests).
    InconsistentVoterSet,
    /// 104: the request names another cluster (checked by the shell, which knows the id).
    InconsistentClusterId,
}

impl RaftError {
    pub fn code(self) -> i16 {
        match self {
            RaftError::FencedLeaderEpoch => 74,
            RaftError::NotLeaderOrFollower => 6,
            RaftError::UnknownLeaderEpoch => 76,
            RaftError::InconsistentVoterSet => 68,
            RaftError::InconsistentClusterId => 104,
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
            | Message::FetchResponse { epoch, .. } => *epoch,
        }
    }
}
