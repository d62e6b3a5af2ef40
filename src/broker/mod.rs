//! The broker shell: async code that drives the sans-IO cores and the log over the runtime.
//! So far it holds the partition log's single writer task (group commit); the Kafka listener,
//! request handlers and the drivers of Raft and replication arrive with their issues.
//!
//! The only place where the cores meet IO, and where internal errors become Kafka error codes.

pub mod lifecycle;
pub mod log_writer;
pub mod metadata;
pub mod net;
pub mod quorum_server;
pub mod raft_storage;
pub mod raft_wire;
