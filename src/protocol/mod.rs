//! Kafka's wire formats, sans-IO: request and response framing ([`frame`]), the record batch
//! (message format v2) view used by the log, produce and fetch paths ([`record_batch`]), and
//! responses built by more than one listener ([`responses`]).
//!
//! Depends only on `model`; no IO, no clocks.

pub mod frame;
pub mod record_batch;
pub mod responses;

pub use record_batch::{BatchError, BatchHeader, RecordBatch};
