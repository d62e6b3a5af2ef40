//! The KRaft shell: everything that serves the controller listener and runs the Raft member and
//! the active controller. [`member`] is the driver task that owns the Raft core and the
//! [`controller_driver::ControllerDriver`]; [`listener`] serves the controller listener;
//! [`peers`] are the member's clients of the other voters; [`wire`] maps the core's messages to
//! Kafka's; [`storage`] and [`snapshot_file`] are the metadata log, its snapshots and the
//! `quorum-state` file on disk.
//!
//! Must not touch the Kafka data plane (`broker`): what brokers need of the quorum — the
//! committed metadata image, the leader hint, the metadata offset replayed — leaves through the
//! channels and callbacks in [`member::QuorumConfig`], which `node` wires.

pub mod controller_driver;
pub mod listener;
pub mod member;
pub mod peers;
pub mod snapshot_file;
pub mod storage;
pub mod wire;

/// A member's role in `QuorumStatus`, for those that read the status (the node's metrics).
pub use crate::raft::Role;
pub use member::{
    proposal_channel, run, Observer, Proposal, QuorumBugs, QuorumConfig, QuorumHandle, QuorumStatus,
};

use crate::log::LogError;
use crate::raft::LogFailure;
use snapshot_file::SnapshotFileError;
use storage::QuorumStateError;

/// Why a quorum member stopped. Every variant is fatal for the member: it cannot go on with a
/// log or state file it cannot trust.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("the quorum-state file: {0}")]
    QuorumState(#[from] QuorumStateError),
    #[error("the metadata log: {0}")]
    Log(#[from] LogError),
    #[error(transparent)]
    Raft(#[from] LogFailure),
    #[error("metadata snapshot {path}: {source}")]
    SnapshotRead {
        path: String,
        source: std::io::Error,
    },
    #[error("metadata snapshot at offset {end_offset}: {source}")]
    Snapshot {
        end_offset: u64,
        source: SnapshotFileError,
    },
    #[error("metadata snapshot at offset {end_offset} does not rebuild an image: {source}")]
    SnapshotImage {
        end_offset: u64,
        source: crate::controller::ApplyError,
    },
    #[error("an installed metadata snapshot is gone from the log directory")]
    SnapshotGone,
}
