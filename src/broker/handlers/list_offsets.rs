//! ListOffsets (2): earliest (-2), latest (-1: the high watermark for consumers, the log end
//! for a replica; also the last stable offset since there are no transactions), max timestamp
//! (-3, KIP-734) and by timestamp. Timestamps are the records' own: the batch found through the
//! time index is opened and its records walked to the first one at or after the target. A
//! compressed batch is not decompressed (no codec in the broker yet): its base offset and max
//! timestamp answer instead, which makes a consumer start at most one batch early.

use super::super::partitions::PartitionError;
use crate::broker::context::Broker;
use crate::model::TopicPartition;
use crate::protocol::record_batch::{records, RecordBatch};
use kafka_protocol::messages::{list_offsets_response, ListOffsetsRequest, ListOffsetsResponse};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// The (offset, timestamp, leader epoch) of the first record in `batch` whose timestamp is at
/// least `target`, or of the one with the largest timestamp when `target` is `None`.
fn pick_record(batch: &[u8], target: Option<i64>) -> Option<(i64, i64, i32)> {
    let (batch, _) = RecordBatch::parse(batch, usize::MAX).ok()?;
    let epoch = batch.partition_leader_epoch();
    if batch.is_log_append_time() || batch.compression() != 0 {
        return Some(match target {
            Some(_) => (batch.base_offset(), batch.max_timestamp(), epoch),
            None => (batch.last_offset(), batch.max_timestamp(), epoch),
        });
    }
    let base_ts = batch.base_timestamp();
    let all = records(&batch).ok()?;
    let with_ts = all.iter().map(|r| {
        (
            batch.base_offset() + r.offset_delta,
            base_ts + r.timestamp_delta,
        )
    });
    match target {
        Some(t) => with_ts
            .filter(|(_, ts)| *ts >= t)
            .map(|(o, ts)| (o, ts, epoch))
            .next(),
        None => with_ts
            .fold(None, |best: Option<(i64, i64)>, cur| match best {
                Some(b) if b.1 >= cur.1 => Some(b),
                _ => Some(cur),
            })
            .map(|(o, ts)| (o, ts, epoch)),
    }
}

/// `from_replica`: the request names a replica id (a follower, or `-2` for a debugging
/// consumer), which reads to the log end as Kafka's followers do; consumers (`-1`) stop at the
/// high watermark. A follower whose log ran past a new leader's end truncated to the leader's
/// high watermark instead, which can be below its own (fsync per write: a product assertion,
/// cluster simulation seed 3022).
fn lookup(
    broker: &Broker,
    tp: &TopicPartition,
    timestamp: i64,
    current_leader_epoch: i32,
    from_replica: bool,
    read_committed: bool,
) -> Result<(i64, i64, i32), PartitionError> {
    let partition = broker.partition(tp)?;
    partition.check_epoch(current_leader_epoch)?;
    let (start, hw, epoch) = partition.offsets()?;
    // A read_committed consumer's end is the last stable offset (KIP-98).
    let limit = if read_committed {
        partition.last_stable_offset().min(hw)
    } else {
        hw
    };
    match timestamp {
        LATEST if from_replica => Ok((partition.leader_log_end()? as i64, -1, epoch)),
        LATEST => Ok((limit as i64, -1, epoch)),
        EARLIEST => Ok((start as i64, -1, epoch)),
        MAX_TIMESTAMP => partition.with_log(|log, _| {
            let hw = limit;
            let Some((_, last_offset)) = log.max_timestamp() else {
                return Ok((-1, -1, -1));
            };
            if last_offset >= hw {
                return Ok((-1, -1, -1));
            }
            let batch = log.read(last_offset, 1, Some(hw))?;
            Ok(pick_record(&batch, None).unwrap_or((-1, -1, -1)))
        }),
        t if t >= 0 => partition.with_log(|log, _| {
            let hw = limit;
            let from = log.log_start_offset();
            let Some(batch) = log.find_by_timestamp(t, from)? else {
                return Ok((-1, -1, -1));
            };
            match pick_record(&batch, Some(t)) {
                Some((offset, ts, epoch)) if (offset as u64) < hw => Ok((offset, ts, epoch)),
                _ => Ok((-1, -1, -1)),
            }
        }),
        _ => Ok((-1, -1, -1)),
    }
}

pub fn handle(
    broker: &Broker,
    conn: &crate::broker::context::Connection,
    r: &ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    use crate::security::acl::{operation, resource};
    let from_replica = r.replica_id.0 != -1;
    // isolation_level exists from v2.
    let read_committed = !from_replica && version >= 2 && r.isolation_level == 1;
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                    let answer = list_offsets_response::ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    // A consumer needs DESCRIBE on the topic, a replica CLUSTER_ACTION.
                    let allowed = if from_replica {
                        broker.may_on_cluster(conn, operation::CLUSTER_ACTION)
                    } else {
                        broker.may(conn, resource::TOPIC, &tp.topic, operation::DESCRIBE)
                    };
                    let looked_up = if allowed {
                        lookup(
                            broker,
                            &tp,
                            p.timestamp,
                            p.current_leader_epoch,
                            from_replica,
                            read_committed,
                        )
                    } else {
                        Err(PartitionError::NotAuthorized {
                            cluster: from_replica,
                        })
                    };
                    match looked_up {
                        Ok((offset, timestamp, epoch)) => answer
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            // The field exists from v4; an encoder refuses a value before.
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_offset(-1)
                            .with_timestamp(-1),
                    }
                })
                .collect();
            list_offsets_response::ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::record_batch::build_batch;

    #[test]
    fn finds_the_first_record_at_or_after_a_timestamp() {
        // build_batch gives every record the base timestamp.
        let batch = build_batch(
            10,
            1000,
            &[(None, b"a".as_slice()), (None, b"b"), (None, b"c")],
        );
        assert_eq!(pick_record(&batch, Some(999)), Some((10, 1000, 0)));
        assert_eq!(pick_record(&batch, Some(1000)), Some((10, 1000, 0)));
        assert_eq!(pick_record(&batch, Some(1001)), None);
        // Ties for the largest timestamp: the first record carrying it.
        assert_eq!(pick_record(&batch, None), Some((10, 1000, 0)));
    }
}
