//! The metadata state machine, sans-IO: metadata records, the image they build, and the active
//! controller's decisions (broker registration and heartbeats, fencing, topic and partition
//! creation and deletion, placement, leader moves), and what a metadata snapshot holds.
//!
//! Owns: what a record means and which records a command turns into. The image is changed only
//! by applying records, on every node alike, so a replay of the committed metadata log rebuilds
//! it exactly; the active controller validates commands against its image and proposes records.
//!
//! Must not touch: IO, clocks (time comes in as `now_ms`), the Raft log (the shell proposes the
//! records and feeds committed ones back), Kafka's wire format (the broker maps requests).

mod image;
mod logic;
mod records;
mod snapshot;
pub mod topic_configs;

#[cfg(test)]
mod tests;

pub use image::{
    AclEntry, ApplyError, BrokerRegistration, MetadataImage, PartitionRegistration,
    ScramCredential, TopicImage,
};
pub use logic::{
    validate_topic_name, ApiError, Controller, ControllerConfig, CreateTopic, Election,
    HeartbeatReply, ScramChange,
};
pub use records::{Endpoint, MetadataRecord, OperationBuffer, RecordError, CONTINUED};
pub use snapshot::{image_from_records, image_records};
