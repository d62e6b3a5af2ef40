//! The broker's gauges for a metrics scrape: partitions and leaderships from the image as this
//! broker sees it, each hosted replica's log, and the committed offsets and lag of the groups
//! this broker coordinates. Read-only: it takes the same locks the handlers take, briefly.

use crate::broker::context::Broker;
use crate::metrics::{Sample, G};
use crate::model::TopicPartition;
use std::collections::BTreeMap;

pub async fn samples(broker: &Broker) -> Vec<Sample> {
    let image = broker.image();
    let me = broker.config.node_id;
    if let Some(m) = &broker.metrics {
        m.retain_topics(|t| image.topics.values().any(|topic| topic.name == t));
    }
    let mut out = Vec::new();
    let (mut hosted, mut leading, mut under, mut under_min) = (0, 0, 0, 0);
    for topic in image.topics.values() {
        let replica_config = broker.partitions.replica_config(&image, &topic.name);
        for (&index, p) in &topic.partitions {
            if !p.replicas.contains(&me) {
                continue;
            }
            hosted += 1;
            if p.leader == me {
                leading += 1;
                if p.isr.len() < p.replicas.len() {
                    under += 1;
                }
                if p.isr.len() < replica_config.min_insync_replicas {
                    under_min += 1;
                }
            }
            let tp = TopicPartition::new(topic.name.clone(), index);
            if let Some((bytes, segments, start, end)) =
                broker.partitions.get(&tp).and_then(|p| p.log_stats())
            {
                let partition = index.to_string();
                let labels = [
                    ("topic", topic.name.as_str()),
                    ("partition", partition.as_str()),
                ];
                let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                out.push(Sample::new(G::LogSize, &labels, as_i64(bytes)));
                out.push(Sample::new(G::LogSegments, &labels, segments as i64));
                out.push(Sample::new(G::LogStartOffset, &labels, as_i64(start)));
                out.push(Sample::new(G::LogEndOffset, &labels, as_i64(end)));
            }
        }
    }
    out.push(Sample::new(G::PartitionCount, &[], hosted));
    out.push(Sample::new(G::LeaderCount, &[], leading));
    out.push(Sample::new(G::UnderReplicatedPartitions, &[], under));
    out.push(Sample::new(G::UnderMinIsrPartitions, &[], under_min));

    // Committed offsets as the coordinator holds them; lag against the high watermark of the
    // replicas this broker hosts (a partition hosted elsewhere has no lag sample here).
    let mut committed: BTreeMap<(String, String, i32), i64> = BTreeMap::new();
    let mut members = Vec::new();
    {
        let inner = broker.groups.lock().await;
        // Only groups this broker coordinates now: one whose offsets partition moved away may
        // linger in the coordinator until it is unloaded, and must not be reported twice.
        let coordinating = |group_id: &str| {
            image
                .topic_by_name(crate::model::CONSUMER_OFFSETS)
                .and_then(|t| t.partitions.get(&broker.groups.partition_of(group_id)))
                .is_some_and(|p| p.leader == me)
        };
        for group in inner.core.groups().filter(|g| coordinating(&g.group_id)) {
            members.push((group.group_id.clone(), group.members.len() as i64));
            for ((topic, partition), value) in &group.offsets {
                committed.insert(
                    (group.group_id.clone(), topic.clone(), *partition),
                    value.offset,
                );
            }
        }
    }
    for (group, count) in members {
        out.push(Sample::new(
            G::GroupMembers,
            &[("consumergroup", &group)],
            count,
        ));
    }
    for ((group, topic, partition), offset) in committed {
        let index = partition.to_string();
        let labels = [
            ("consumergroup", group.as_str()),
            ("topic", topic.as_str()),
            ("partition", index.as_str()),
        ];
        out.push(Sample::new(G::GroupCurrentOffset, &labels, offset));
        if let Some(p) = broker
            .partitions
            .get(&TopicPartition::new(topic.clone(), partition))
        {
            let hw = i64::try_from(p.high_watermark()).unwrap_or(i64::MAX);
            out.push(Sample::new(G::GroupLag, &labels, (hw - offset).max(0)));
        }
    }
    out
}
