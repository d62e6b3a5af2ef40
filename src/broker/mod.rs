//! The broker shell: async code that drives the sans-IO cores and the logs over the runtime:
//! the quorum member and controller driver, the broker's lifecycle with the controller, the
//! Kafka client listener with one handler per API, and the partitions this node hosts.
//!
//! The only place where the cores meet IO, and where internal errors become Kafka error codes.

pub mod client_server;
pub mod controller_client;
pub mod groups;
pub mod handlers;
pub mod lifecycle;
pub mod log_writer;
pub mod metadata;
pub mod net;
pub mod partitions;
pub mod quorum_server;
pub mod raft_storage;
pub mod raft_wire;
pub mod snapshot_file;
