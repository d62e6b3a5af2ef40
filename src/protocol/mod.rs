//! Kafka's wire formats, sans-IO. So far: the record batch (message format v2) view used by the
//! log, produce and fetch paths. Request framing and the API codecs arrive with the broker.
//!
//! Depends only on `model`; no IO, no clocks.

pub mod frame;
pub mod record_batch;

pub use record_batch::{BatchError, BatchHeader, RecordBatch};
