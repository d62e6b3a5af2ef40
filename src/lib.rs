//! ketch: a Kafka-compatible event-streaming broker whose metadata lives in a Raft quorum
//! (KRaft), with its storage, Raft and replication code run under a deterministic simulator.
//!
//! # Layout
//! - [`model`]: shared identifiers and the properties format; no IO.
//! - [`protocol`]: Kafka wire formats, sans-IO (the record batch v2 view so far).
//! - [`group`]: consumer groups' coordinator and `__consumer_offsets` records, sans-IO.
//! - [`log`]: the segmented partition log over [`runtime::Disk`].
//! - [`replication`]: partition replica logic, sans-IO (idempotent producer state so far).
//! - [`runtime`]: the only module with sockets, files, clocks, tasks and entropy; tokio or madsim.
//! - [`broker`]: the async shell that drives the cores over the runtime.
//!
//! See `ARCHITECTURE.md` for the dependency rules between them.

pub mod bench;
pub mod broker;
#[cfg(not(madsim))] // talks to real sockets from a real runtime
pub mod cli;
pub mod controller;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod log;
pub mod model;
pub mod node;
pub mod protocol;
pub mod quorum;
pub mod raft;
pub mod replication;
pub mod runtime;
pub mod wire;
