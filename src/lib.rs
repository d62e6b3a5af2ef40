//! ketch: a Kafka-compatible event-streaming broker whose metadata lives in a Raft quorum
//! (KRaft), with its storage, Raft and replication code run under a deterministic simulator.
//!
//! # Layout
//! - [`model`]: shared identifiers and the properties format; no IO.
//! - [`protocol`]: Kafka wire formats, sans-IO: framing, the record batch v2 view, shared
//!   responses.
//! - [`raft`]: the KRaft quorum core, sans-IO. [`controller`]: the metadata image and the
//!   active controller's decisions, sans-IO.
//! - [`replication`]: partition replica logic, sans-IO: ISR, high watermark, leader epochs,
//!   idempotent producer state. [`group`]: consumer groups' coordinator, sans-IO.
//! - [`security`]: who a connection is (principals from certificates), sans-IO.
//! - [`log`]: the segmented partition log over [`runtime::Disk`].
//! - [`runtime`]: the only module with sockets, files, clocks, tasks and entropy; tokio or madsim.
//! - [`metrics`]: Prometheus metrics and the `metrics.listener` endpoint; gauges come from
//!   the node per scrape.
//! - [`wire`]: Kafka over TCP, one mechanism for both listeners, and the one-request client.
//! - [`client`]: a minimal Kafka client (one request at a time) for the tools and the simulator.
//! - [`quorum`]: the KRaft shell: controller listener, Raft member driver, metadata log and
//!   snapshots, the controller driver.
//! - [`broker`]: the Kafka data plane shell: client listener, one handler per API, partitions,
//!   log writers, replica fetchers, groups, lifecycle.
//! - [`node`]: wires `quorum` and `broker` for one node's `process.roles`; used by
//!   `ketch server`, `ketch dev` and the simulator. The two never import each other.
//! - `cli`: the client-side tools and benchmarks of the binary.
//!
//! See `ARCHITECTURE.md` for the dependency rules between them.

pub mod bench;
pub mod broker;
#[cfg(not(madsim))] // talks to real sockets from a real runtime
pub mod cli;
pub mod client;
pub mod controller;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod log;
pub mod metrics;
pub mod model;
pub mod node;
pub mod protocol;
pub mod quorum;
pub mod raft;
pub mod replication;
pub mod runtime;
pub mod security;
pub mod wire;
