//! What a metadata snapshot holds (KIP-630): the records that rebuild an image from empty.
//! Replaying them gives the same image the log did, so a node may start from a snapshot and
//! the log below it can go.
//!
//! Owns: image → records and back. Must not touch: the file format (the broker frames these
//! records as record batches between Kafka's snapshot header and footer), IO.

use super::image::{ApplyError, MetadataImage};
use super::records::MetadataRecord;

/// Records that rebuild `image` when applied, in order, to an empty one.
pub fn image_records(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for b in image.brokers.values() {
        records.push(MetadataRecord::RegisterBroker {
            broker_id: b.broker_id,
            incarnation_id: b.incarnation_id.clone(),
            broker_epoch: b.broker_epoch,
            endpoints: b.endpoints.clone(),
            rack: b.rack.clone(),
        });
        // A registration starts fenced.
        if !b.fenced {
            records.push(MetadataRecord::UnfenceBroker {
                broker_id: b.broker_id,
                broker_epoch: b.broker_epoch,
            });
        }
    }
    for t in image.topics.values() {
        records.push(MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id: t.topic_id.clone(),
        });
        for (index, p) in &t.partitions {
            records.push(MetadataRecord::Partition {
                topic_id: t.topic_id.clone(),
                partition: *index,
                replicas: p.replicas.clone(),
                isr: p.isr.clone(),
                leader: p.leader,
                leader_epoch: p.leader_epoch,
                partition_epoch: p.partition_epoch,
            });
        }
    }
    for ((resource, name), entries) in &image.configs {
        for (key, value) in entries {
            records.push(MetadataRecord::Config {
                resource: resource.clone(),
                name: name.clone(),
                key: key.clone(),
                value: Some(value.clone()),
            });
        }
    }
    if image.next_producer_id > 0 {
        records.push(MetadataRecord::ProducerIds {
            broker_id: -1,
            next_producer_id: image.next_producer_id,
        });
    }
    for ((name, mechanism), c) in &image.scram {
        records.push(MetadataRecord::UserScramCredential {
            name: name.clone(),
            mechanism: *mechanism,
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        });
    }
    for (id, a) in &image.acls {
        records.push(MetadataRecord::AccessControlEntry {
            id: id.clone(),
            resource_type: a.resource_type,
            resource_name: a.resource_name.clone(),
            pattern_type: a.pattern_type,
            principal: a.principal.clone(),
            host: a.host.clone(),
            operation: a.operation,
            permission_type: a.permission_type,
        });
    }
    records
}

/// The image a snapshot's records rebuild; `offset` is the last log offset the snapshot covers.
/// A record that does not apply means the snapshot is corrupt.
pub fn image_from_records(
    records: &[MetadataRecord],
    offset: i64,
) -> Result<MetadataImage, ApplyError> {
    let mut image = MetadataImage::new();
    // Records in a snapshot have no log offsets of their own; any increasing ones will do.
    for (i, record) in records.iter().enumerate() {
        image.apply(i as i64, record)?;
    }
    image.offset = offset;
    Ok(image)
}
