//! Metadata records: what the metadata log holds. Kafka's record set (KIP-631) in our encoding:
//! one JSON object per entry, `{"type": …, …}`, readable with any tool; the binary form of
//! Kafka's own records can replace it behind this module without touching the image.

use crate::model::Uuid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// RegisterBrokerRecord: a broker (re)registers; it starts fenced.
    RegisterBroker {
        broker_id: i32,
        /// Changes at every process start; a heartbeat from an older one is refused.
        incarnation_id: String,
        /// The broker epoch: the metadata offset of this record.
        broker_epoch: i64,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    UnregisterBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    FenceBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    UnfenceBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    Topic {
        name: String,
        topic_id: String,
    },
    Partition {
        topic_id: String,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// PartitionChangeRecord: a new ISR and/or leader. A leader change bumps the leader epoch;
    /// any change bumps the partition epoch.
    PartitionChange {
        topic_id: String,
        partition: i32,
        isr: Option<Vec<i32>>,
        leader: Option<i32>,
    },
    RemoveTopic {
        topic_id: String,
    },
    /// ConfigRecord: a topic or broker config set (`value` Some) or removed (None).
    Config {
        resource: String,
        name: String,
        key: String,
        value: Option<String>,
    },
    /// ProducerIdsRecord: the next block of producer ids starts here.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
}

#[derive(Debug, thiserror::Error)]
#[error("not a metadata record: {0}")]
pub struct RecordError(String);

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain types cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordError> {
        serde_json::from_slice(bytes).map_err(|e| RecordError(e.to_string()))
    }
}

/// A fresh topic id from 16 random bytes (the caller's seeded RNG).
pub fn topic_id(random: [u8; 16]) -> String {
    Uuid::from_random(random).to_string()
}
