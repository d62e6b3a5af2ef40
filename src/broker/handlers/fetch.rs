//! Fetch (1) from consumers: whole batches from each partition's log below its high watermark,
//! within `partition_max_bytes` and the request's `max_bytes` (the first batch found is returned
//! whole even if larger, KIP-74). Waits up to `max_wait_ms` until `min_bytes` are there. No
//! fetch sessions (KIP-227): every answer has session id 0, so clients send full requests. No
//! transactions yet: the last stable offset is the high watermark and no batch is aborted.

use super::super::partitions::PartitionError;
use crate::broker::context::Broker;
use crate::model::TopicPartition;
use bytes::Bytes;
use kafka_protocol::messages::{fetch_response, FetchRequest, FetchResponse};
use std::time::Duration;

/// Reads every requested partition once; returns the response and the bytes it carries, and
/// whether any partition answered with an error (which ends a long poll at once, as in Kafka).
fn read_all(broker: &Broker, r: &FetchRequest, version: i16) -> (FetchResponse, usize, bool) {
    // log_start_offset exists from v5: the encoder refuses a value before.
    let log_start = |offset: i64| if version >= 5 { offset } else { -1 };
    let node = broker.partitions.node_id();
    let mut remaining = usize::try_from(r.max_bytes).unwrap_or(0).max(1);
    let mut total = 0usize;
    let mut any_error = false;
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition::new(t.topic.0.to_string(), p.partition);
            let mut data = fetch_response::PartitionData::default()
                .with_partition_index(p.partition)
                .with_aborted_transactions(Some(Vec::new()));
            let result = match broker.partitions.get_or_apply(&tp, &broker.image()) {
                None => {
                    let exists = broker
                        .image()
                        .topic_by_name(&tp.topic)
                        .is_some_and(|t| t.partitions.contains_key(&tp.partition));
                    Err(if exists {
                        PartitionError::NotLeader
                    } else {
                        PartitionError::UnknownTopicOrPartition
                    })
                }
                Some(partition) => partition.check_epoch(p.current_leader_epoch).and_then(|_| {
                    let limit = usize::try_from(p.partition_max_bytes)
                        .unwrap_or(0)
                        .min(remaining);
                    if limit == 0 && total > 0 {
                        // The request's max_bytes is used up: offsets only.
                        partition.offsets(node).map(|(start, hw, _)| {
                            super::super::partitions::ReadResult {
                                bytes: Vec::new(),
                                high_watermark: hw,
                                log_start_offset: start,
                            }
                        })
                    } else {
                        partition.read_as_leader(node, p.fetch_offset, limit.max(1))
                    }
                }),
            };
            match result {
                Ok(mut read) => {
                    if total > 0 && read.bytes.len() > remaining {
                        // Only the first batch of a response may exceed the limits (KIP-74).
                        read.bytes.clear();
                    }
                    total += read.bytes.len();
                    remaining = remaining.saturating_sub(read.bytes.len());
                    data = data
                        .with_high_watermark(read.high_watermark as i64)
                        .with_last_stable_offset(read.high_watermark as i64)
                        .with_log_start_offset(log_start(read.log_start_offset as i64))
                        .with_records(Some(Bytes::from(read.bytes)));
                }
                Err(e) => {
                    any_error = true;
                    tracing::debug!(partition = %tp, "fetch refused: {e}");
                    data = data
                        .with_error_code(e.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new()));
                }
            }
            partitions.push(data);
        }
        topics.push(
            fetch_response::FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    (
        FetchResponse::default()
            .with_session_id(0)
            .with_responses(topics),
        total,
        any_error,
    )
}

pub async fn handle(broker: &Broker, r: &FetchRequest, version: i16) -> FetchResponse {
    let start_ms = broker.clock.monotonic_ms();
    let max_wait_ms = u64::try_from(r.max_wait_ms).unwrap_or(0);
    let min_bytes = usize::try_from(r.min_bytes).unwrap_or(0);
    let mut appended = broker.partitions.subscribe_appends();
    loop {
        appended.borrow_and_update();
        let (response, bytes, any_error) = read_all(broker, r, version);
        let waited_ms = broker.clock.monotonic_ms().saturating_sub(start_ms);
        if bytes >= min_bytes || any_error || waited_ms >= max_wait_ms {
            return response;
        }
        let left = Duration::from_millis(max_wait_ms - waited_ms);
        // Woken by any append on this broker (or the deadline), then read again.
        if tokio::time::timeout(left, appended.changed())
            .await
            .is_err()
        {
            return read_all(broker, r, version).0;
        }
    }
}
