//! The metadata image: brokers, topics, partitions, configs, as the committed records left them.
//! `apply` is the only way to change it, and it checks each record against what it already holds:
//! a record that does not fit is an error (the log is corrupt or a controller bug), never a panic.

use super::records::{Endpoint, MetadataRecord};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerRegistration {
    pub broker_id: i32,
    pub incarnation_id: String,
    pub broker_epoch: i64,
    pub endpoints: Vec<Endpoint>,
    pub rack: Option<String>,
    pub fenced: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionRegistration {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// -1 when no replica can lead.
    pub leader: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: String,
    pub partitions: BTreeMap<i32, PartitionRegistration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// By topic id.
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_ids: BTreeMap<String, String>,
    /// (resource, name) → key → value.
    pub configs: BTreeMap<(String, String), BTreeMap<String, String>>,
    pub next_producer_id: i64,
    /// SCRAM credentials: (user, mechanism id) → credential.
    pub scram: BTreeMap<(String, i8), ScramCredential>,
    /// ACLs by id.
    pub acls: BTreeMap<String, AclEntry>,
    /// Offset of the last record applied, -1 before any.
    pub offset: i64,
}

/// A stored SCRAM credential (UserScramCredentialRecord).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramCredential {
    pub salt: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
    pub iterations: i32,
}

/// One ACL (AccessControlEntryRecord), in Kafka's enum ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AclEntry {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata record at offset {offset} does not apply: {reason}")]
pub struct ApplyError {
    pub offset: i64,
    pub reason: String,
}

impl MetadataImage {
    pub fn new() -> MetadataImage {
        MetadataImage {
            offset: -1,
            ..MetadataImage::default()
        }
    }

    pub fn topic_by_name(&self, name: &str) -> Option<&TopicImage> {
        self.topic_ids.get(name).and_then(|id| self.topics.get(id))
    }

    pub fn unfenced_brokers(&self) -> Vec<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.broker_id)
            .collect()
    }

    /// Applies the record committed at `offset`.
    pub fn apply(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ApplyError> {
        let fail = |reason: String| ApplyError { offset, reason };
        if offset <= self.offset {
            return Err(fail(format!(
                "offset not after the last applied, {}",
                self.offset
            )));
        }
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
            } => {
                self.brokers.insert(
                    *broker_id,
                    BrokerRegistration {
                        broker_id: *broker_id,
                        incarnation_id: incarnation_id.clone(),
                        broker_epoch: *broker_epoch,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: true,
                    },
                );
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_at_epoch(*broker_id, *broker_epoch)
                    .map_err(fail)?;
                self.brokers.remove(broker_id);
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_at_epoch(*broker_id, *broker_epoch)
                    .map_err(fail)?;
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                self.broker_at_epoch(*broker_id, *broker_epoch)
                    .map_err(fail)?;
                if let Some(b) = self.brokers.get_mut(broker_id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::Topic { name, topic_id } => {
                if self.topic_ids.contains_key(name) || self.topics.contains_key(topic_id) {
                    return Err(fail(format!("topic {name} ({topic_id}) exists")));
                }
                self.topic_ids.insert(name.clone(), topic_id.clone());
                self.topics.insert(
                    topic_id.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: topic_id.clone(),
                        partitions: BTreeMap::new(),
                    },
                );
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                let topic = self
                    .topics
                    .get_mut(topic_id)
                    .ok_or_else(|| fail(format!("no topic {topic_id}")))?;
                check_partition(replicas, isr, *leader).map_err(fail)?;
                if topic.partitions.contains_key(partition) {
                    return Err(fail(format!(
                        "partition {partition} of {} exists",
                        topic.name
                    )));
                }
                topic.partitions.insert(
                    *partition,
                    PartitionRegistration {
                        replicas: replicas.clone(),
                        isr: isr.clone(),
                        leader: *leader,
                        leader_epoch: *leader_epoch,
                        partition_epoch: *partition_epoch,
                    },
                );
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                isr,
                leader,
            } => {
                let topic = self
                    .topics
                    .get_mut(topic_id)
                    .ok_or_else(|| fail(format!("no topic {topic_id}")))?;
                let p = topic
                    .partitions
                    .get_mut(partition)
                    .ok_or_else(|| fail(format!("no partition {partition}")))?;
                let new_isr = isr.clone().unwrap_or_else(|| p.isr.clone());
                let new_leader = leader.unwrap_or(p.leader);
                check_partition(&p.replicas, &new_isr, new_leader).map_err(fail)?;
                if new_leader != p.leader {
                    p.leader_epoch += 1;
                }
                p.isr = new_isr;
                p.leader = new_leader;
                p.partition_epoch += 1;
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                let topic = self
                    .topics
                    .remove(topic_id)
                    .ok_or_else(|| fail(format!("no topic {topic_id}")))?;
                self.topic_ids.remove(&topic.name);
                self.configs.remove(&("topic".to_string(), topic.name));
            }
            MetadataRecord::Config {
                resource,
                name,
                key,
                value,
            } => {
                let entry = self
                    .configs
                    .entry((resource.clone(), name.clone()))
                    .or_default();
                match value {
                    Some(v) => {
                        entry.insert(key.clone(), v.clone());
                    }
                    None => {
                        entry.remove(key);
                        if entry.is_empty() {
                            // No trace of a resource without configs: a snapshot holds none.
                            self.configs.remove(&(resource.clone(), name.clone()));
                        }
                    }
                }
            }
            MetadataRecord::ProducerIds {
                next_producer_id, ..
            } => {
                if *next_producer_id <= self.next_producer_id {
                    return Err(fail("producer id blocks must move forward".into()));
                }
                self.next_producer_id = *next_producer_id;
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                self.scram.insert(
                    (name.clone(), *mechanism),
                    ScramCredential {
                        salt: salt.clone(),
                        stored_key: stored_key.clone(),
                        server_key: server_key.clone(),
                        iterations: *iterations,
                    },
                );
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                if self.scram.remove(&(name.clone(), *mechanism)).is_none() {
                    return Err(fail(format!("no SCRAM credential of {name} ({mechanism})")));
                }
            }
            MetadataRecord::AccessControlEntry {
                id,
                resource_type,
                resource_name,
                pattern_type,
                principal,
                host,
                operation,
                permission_type,
            } => {
                self.acls.insert(
                    id.clone(),
                    AclEntry {
                        resource_type: *resource_type,
                        resource_name: resource_name.clone(),
                        pattern_type: *pattern_type,
                        principal: principal.clone(),
                        host: host.clone(),
                        operation: *operation,
                        permission_type: *permission_type,
                    },
                );
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                if self.acls.remove(id).is_none() {
                    return Err(fail(format!("no ACL {id}")));
                }
            }
        }
        self.offset = offset;
        Ok(())
    }

    fn broker_at_epoch(&self, broker_id: i32, broker_epoch: i64) -> Result<(), String> {
        match self.brokers.get(&broker_id) {
            Some(b) if b.broker_epoch == broker_epoch => Ok(()),
            Some(b) => Err(format!(
                "broker {broker_id} is at epoch {}, not {broker_epoch}",
                b.broker_epoch
            )),
            None => Err(format!("broker {broker_id} is not registered")),
        }
    }
}

/// Replicas distinct and non-empty, ISR within them, leader in the ISR (or -1).
fn check_partition(replicas: &[i32], isr: &[i32], leader: i32) -> Result<(), String> {
    let mut seen = replicas.to_vec();
    seen.sort_unstable();
    seen.dedup();
    if replicas.is_empty() || seen.len() != replicas.len() {
        return Err(format!(
            "replicas {replicas:?} must be distinct and non-empty"
        ));
    }
    if isr.iter().any(|r| !replicas.contains(r)) {
        return Err(format!("ISR {isr:?} is not within replicas {replicas:?}"));
    }
    if leader != -1 && !isr.contains(&leader) {
        return Err(format!("leader {leader} is not in the ISR {isr:?}"));
    }
    Ok(())
}
