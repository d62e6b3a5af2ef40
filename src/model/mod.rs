//! Types shared by every other module: identifiers, offsets and the Java-properties format Kafka
//! uses for `server.properties` and `meta.properties`.
//!
//! Depends on nothing else in the crate and does no IO.

pub mod bugs;
pub mod config;
pub mod properties;
pub mod sasl;
pub mod tls;
mod uuid;

pub use uuid::{Uuid, UuidError};

use std::fmt;

/// The metadata log's topic (KRaft's `__cluster_metadata`, partition 0).
pub const METADATA_TOPIC: &str = "__cluster_metadata";
/// The internal topic holding consumer groups and their committed offsets.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
/// The internal topic holding the transaction coordinators' state (KIP-98).
pub const TRANSACTION_STATE: &str = "__transaction_state";

/// Whether `topic` is one of the broker's internal topics (never auto-created, never produced
/// to or deleted by clients, reported internal in Metadata, always compacted).
pub fn is_internal_topic(topic: &str) -> bool {
    topic == CONSUMER_OFFSETS || topic == TRANSACTION_STATE
}

/// A node's `node.id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub i32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A topic name and partition index.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }

    /// The directory name Kafka uses for this partition's log: `<topic>-<partition>`.
    pub fn dir_name(&self) -> String {
        format!("{}-{}", self.topic, self.partition)
    }

    /// Parses a `<topic>-<partition>` directory name (the topic may itself contain `-`).
    pub fn from_dir_name(name: &str) -> Option<TopicPartition> {
        let (topic, partition) = name.rsplit_once('-')?;
        if topic.is_empty() {
            return None;
        }
        let partition: i32 = partition.parse().ok()?;
        (partition >= 0).then(|| TopicPartition::new(topic, partition))
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_dir_names_round_trip() {
        let tp = TopicPartition::new("my-topic", 12);
        assert_eq!(tp.dir_name(), "my-topic-12");
        assert_eq!(TopicPartition::from_dir_name("my-topic-12"), Some(tp));
        assert_eq!(TopicPartition::from_dir_name("-3"), None);
        assert_eq!(TopicPartition::from_dir_name("topic"), None);
        assert_eq!(TopicPartition::from_dir_name("t-x"), None);
        // Topic names may end in '-': "t--1" is partition 1 of topic "t-".
        assert_eq!(
            TopicPartition::from_dir_name("t--1"),
            Some(TopicPartition::new("t-", 1))
        );
    }
}
