//! The Kafka data plane's shell: async code that drives the data-plane cores (group,
//! replication) and the partition logs over the runtime. [`server`] runs the client listener
//! and background tasks; [`handlers`] answers each Kafka API, using only what [`context`]
//! holds; [`partitions`] holds this node's replicas and their logs, written only through
//! [`log_writer`]; [`groups`] is the group coordinator's shell; [`lifecycle`] registers the
//! broker with the active controller and heartbeats; [`controller_client`] forwards requests
//! to the active controller.
//!
//! The only place where the data plane meets IO, and where internal errors become Kafka error
//! codes. Must not touch the quorum (`quorum`): the committed metadata image, the leader hint
//! and the metadata offset reach it through what `node` hands over.

pub mod authz;
pub mod cleaner;
pub mod context;
pub mod controller_client;
pub mod groups;
pub mod handlers;
pub mod lifecycle;
pub mod log_writer;
pub mod partitions;
pub mod replica_fetcher;
pub mod server;
pub mod stats;
pub mod transactions;

use crate::log::LogError;

/// Why the broker stopped.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("closing partition logs: {0}")]
    Close(#[source] LogError),
    #[error("a partition log failed: {0}")]
    LogFailed(String),
}
