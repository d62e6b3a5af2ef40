//! DescribeLogDirs (35): each of this broker's `log.dirs` with the partitions whose replica
//! lives there and their bytes on disk. No replica moves between directories (no
//! AlterReplicaLogDirs), so no future replicas and no offset lag; the volume's total and usable
//! bytes are -1, "unknown" in the protocol (v4), as ketch does not read file systems' sizes.

use crate::broker::context::Broker;
use kafka_protocol::messages::{
    describe_log_dirs_response::{
        DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
    },
    DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

pub fn handle(broker: &Broker, r: &DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    // dir → topic → [(partition, bytes)]
    let mut by_dir: BTreeMap<std::path::PathBuf, BTreeMap<String, Vec<(i32, u64)>>> = broker
        .config
        .log_dirs
        .iter()
        .map(|d| (d.clone(), BTreeMap::new()))
        .collect();
    for p in broker.partitions.all() {
        let wanted = r.topics.as_ref().is_none_or(|topics| {
            topics
                .iter()
                .any(|t| t.topic.0.as_str() == p.tp.topic && t.partitions.contains(&p.tp.partition))
        });
        if !wanted {
            continue;
        }
        if let Some((dir, bytes)) = p.log_dir_and_size() {
            by_dir
                .entry(dir)
                .or_default()
                .entry(p.tp.topic.clone())
                .or_default()
                .push((p.tp.partition, bytes));
        }
    }
    let results = by_dir
        .into_iter()
        .map(|(dir, topics)| {
            DescribeLogDirsResult::default()
                .with_log_dir(StrBytes::from_string(dir.display().to_string()))
                .with_total_bytes(-1)
                .with_usable_bytes(-1)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(name, mut partitions)| {
                            partitions.sort();
                            DescribeLogDirsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name)))
                                .with_partitions(
                                    partitions
                                        .into_iter()
                                        .map(|(index, bytes)| {
                                            DescribeLogDirsPartition::default()
                                                .with_partition_index(index)
                                                .with_partition_size(
                                                    i64::try_from(bytes).unwrap_or(i64::MAX),
                                                )
                                                .with_offset_lag(0)
                                                .with_is_future_key(false)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeLogDirsResponse::default().with_results(results)
}
