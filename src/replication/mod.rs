//! Partition replica state that is pure logic, sans-IO: so far the idempotent producers' state
//! a leader checks batches against. Leader/follower replication (ISR, high watermark across
//! replicas, leader-epoch truncation) arrives with the replication issue.

pub mod producer_state;

pub use producer_state::{BatchRange, ProducerStates, SequenceError, Verdict};
