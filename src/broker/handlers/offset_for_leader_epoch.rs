//! OffsetForLeaderEpoch (23, v2-4): where a leader epoch ends in this leader's log (KIP-101,
//! KIP-320), from its leader epoch cache: the largest epoch at most the one asked for and the
//! start of the epoch after it (the log end for the current epoch). Consumers use it to find
//! out, after a leader change, whether their position was truncated away; older fetchers use
//! it to truncate. An epoch older than every epoch the log still holds answers that epoch and
//! the earliest one's start; a negative epoch, or one newer than the latest, answers epoch -1,
//! offset -1 (Kafka's UNDEFINED). The client's current leader epoch is checked first (FENCED_LEADER_EPOCH,
//! UNKNOWN_LEADER_EPOCH), and only the leader answers (NOT_LEADER_OR_FOLLOWER).

use super::super::partitions::PartitionError;
use crate::broker::context::Broker;
use crate::model::TopicPartition;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

fn lookup(
    broker: &Broker,
    tp: &TopicPartition,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<(i32, i64), PartitionError> {
    let partition = broker.partition(tp)?;
    partition.check_epoch(current_leader_epoch)?;
    partition.end_offset_for(leader_epoch)
}

pub fn handle(broker: &Broker, r: &OffsetForLeaderEpochRequest) -> OffsetForLeaderEpochResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(t.topic.0.to_string(), p.partition);
                    let answer = EpochEndOffset::default().with_partition(p.partition);
                    match lookup(broker, &tp, p.current_leader_epoch, p.leader_epoch) {
                        Ok((epoch, end_offset)) => {
                            answer.with_leader_epoch(epoch).with_end_offset(end_offset)
                        }
                        Err(e) => {
                            tracing::debug!(partition = %tp, "OffsetForLeaderEpoch refused: {e}");
                            answer
                                .with_error_code(e.code())
                                .with_leader_epoch(-1)
                                .with_end_offset(-1)
                        }
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
