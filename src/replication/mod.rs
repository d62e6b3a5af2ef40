//! Partition replica state that is pure logic, sans-IO: the idempotent producers' state a
//! leader checks batches against ([`producer_state`]), the leader epoch cache that finds where
//! two replicas' logs diverge ([`epochs`]), and the leader's view of its followers — ISR, high
//! watermark, min.insync.replicas ([`leader`]). The broker shell (`broker/partitions.rs`,
//! `broker/replica_fetcher.rs`) feeds them offsets and times and carries out what they decide.

pub mod epochs;
pub mod leader;
pub mod producer_state;

pub use epochs::EpochCache;
pub use leader::{IsrAnswer, LeaderState, PendingIsr};
pub use producer_state::{BatchRange, ProducerStates, SequenceError, Verdict};
