//! DeleteRecords (21): moves partition log starts up (`kafka-delete-records.sh`). On the leader
//! each partition's start moves to the asked offset (-1: the high watermark; past it is
//! OFFSET_OUT_OF_RANGE), whole segments below go and the start is checkpointed before the
//! answer; then, as Kafka's `DelayedDeleteRecords`, the answer waits until the low watermark
//! (the smallest log start over the live replicas, which followers report in their fetches)
//! reaches it, at most `timeout_ms` (REQUEST_TIMED_OUT, with the low watermark as it stands).
//! Touches no log itself: [`crate::broker::partitions`] does.

use crate::broker::context::{Broker, Connection};
use crate::broker::partitions::PartitionError;
use crate::model::TopicPartition;
use crate::security::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    delete_records_response, DeleteRecordsRequest, DeleteRecordsResponse,
};
use std::time::Duration;

/// One partition's outcome: (low watermark, error code).
type Outcome = (i64, i16);

pub async fn handle(
    broker: &Broker,
    conn: &Connection,
    r: &DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let timeout = Duration::from_millis(r.timeout_ms.max(0) as u64);
    // First every start moves, then the answer waits for the replicas of all of them.
    let mut moved: Vec<(TopicPartition, Result<u64, PartitionError>)> = Vec::new();
    let mut checkpoint = false;
    for t in &r.topics {
        for p in &t.partitions {
            let tp = TopicPartition::new(t.name.as_str(), p.partition_index);
            // As Kafka: DELETE on the topic, answered per topic (the others go ahead).
            // Checked before the partition is looked up, so a refusal says nothing of whether
            // the topic exists.
            let result = if broker.may(conn, resource::TOPIC, &tp.topic, operation::DELETE) {
                broker.partition(&tp)
            } else {
                Err(PartitionError::NotAuthorized { cluster: false })
            };
            let result = result.and_then(|partition| {
                // As Kafka: a compacted topic keeps its keys; only `delete` lets records go.
                if partition.cleanup_policy().is_some_and(|c| !c.delete) {
                    return Err(PartitionError::PolicyViolation(format!(
                        "Records of partition {tp} can not be deleted due to the configured policy"
                    )));
                }
                partition.delete_records(p.offset)
            });
            match &result {
                Ok((start, inside)) => {
                    tracing::info!(partition = %tp, offset = p.offset, log_start = start, "DeleteRecords");
                    checkpoint |= inside;
                }
                Err(e) => {
                    tracing::debug!(partition = %tp, offset = p.offset, "DeleteRecords refused: {e}")
                }
            }
            moved.push((tp, result.map(|(start, _)| start)));
        }
    }
    // The new starts are durable before anyone is told (Kafka checkpoints them later; a crash
    // there brings deleted records back).
    let stored = !checkpoint || {
        match broker.partitions.write_log_starts() {
            Ok(()) => true,
            Err(e) => {
                tracing::error!("DeleteRecords: cannot checkpoint the log starts: {e}");
                false
            }
        }
    };
    // Then the replicas, all within the one timeout; what is still waiting when it ends is
    // REQUEST_TIMED_OUT with its low watermark as it stands.
    let mut outcomes: Vec<(TopicPartition, Option<Outcome>)> = Vec::new();
    let mut waiting: Vec<(usize, u64)> = Vec::new();
    for (tp, result) in moved {
        let outcome = match result {
            Err(e) => Some((-1, e.code())),
            Ok(_) if !stored => Some((-1, ResponseError::KafkaStorageError.code())),
            Ok(start) => {
                waiting.push((outcomes.len(), start));
                None
            }
        };
        outcomes.push((tp, outcome));
    }
    let _ = tokio::time::timeout(timeout, async {
        for (i, start) in &waiting {
            let outcome = wait_for_replicas(broker, &outcomes[*i].0, *start).await;
            outcomes[*i].1 = Some(outcome);
        }
    })
    .await;
    let outcomes: Vec<(TopicPartition, Outcome)> = outcomes
        .into_iter()
        .map(|(tp, outcome)| {
            let outcome = outcome.unwrap_or_else(|| {
                let low = broker
                    .partition(&tp)
                    .and_then(|p| p.low_watermark(|id| live(broker, id)));
                (
                    low.map_or(-1, |l| l as i64),
                    ResponseError::RequestTimedOut.code(),
                )
            });
            (tp, outcome)
        })
        .collect();
    let mut response = DeleteRecordsResponse::default();
    for t in &r.topics {
        let partitions = t
            .partitions
            .iter()
            .map(|p| {
                let (low_watermark, error_code) = outcomes
                    .iter()
                    .find(|(tp, _)| {
                        tp.topic == t.name.as_str() && tp.partition == p.partition_index
                    })
                    .map_or((-1, ResponseError::UnknownServerError.code()), |(_, o)| *o);
                delete_records_response::DeleteRecordsPartitionResult::default()
                    .with_partition_index(p.partition_index)
                    .with_low_watermark(low_watermark)
                    .with_error_code(error_code)
            })
            .collect();
        response.topics.push(
            delete_records_response::DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions),
        );
    }
    response
}

/// Whether broker `id` is alive (registered and not fenced) in this broker's image.
fn live(broker: &Broker, id: i32) -> bool {
    broker.image().brokers.get(&id).is_some_and(|b| !b.fenced)
}

/// Waits until every live replica of `tp` has its log start at `start` or beyond.
async fn wait_for_replicas(broker: &Broker, tp: &TopicPartition, start: u64) -> Outcome {
    let partition = match broker.partition(tp) {
        Ok(p) => p,
        Err(e) => return (-1, e.code()),
    };
    let mut changed = partition.subscribe();
    loop {
        changed.borrow_and_update();
        let low = match partition.low_watermark(|id| live(broker, id)) {
            Ok(low) => low,
            Err(e) => return (-1, e.code()),
        };
        if low >= start {
            return (low as i64, 0);
        }
        if changed.changed().await.is_err() {
            return (-1, ResponseError::NotLeaderOrFollower.code());
        }
    }
}
