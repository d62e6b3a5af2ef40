//! Fetch (1), from consumers and from follower replicas.
//!
//! - Consumers (replica id -1): whole batches from each partition's leader log below its high
//!   watermark, within `partition_max_bytes` and the request's `max_bytes` (the first batch
//!   found is returned whole even if larger, KIP-74). A follower of the partition answers
//!   NOT_LEADER_OR_FOLLOWER: fetching from followers (KIP-392) is not implemented.
//! - Followers (replica id ≥ 0, Fetch v12 as Kafka's replica fetcher sends it): the leader
//!   checks the follower's last fetched epoch against its epoch cache and answers a divergence
//!   with DivergingEpoch instead of records (KIP-320); otherwise it records the follower's
//!   position (which moves the high watermark and may grow or shrink the ISR) and sends
//!   batches up to its log end.
//!
//! Either waits up to `max_wait_ms` until `min_bytes` are there. No fetch sessions (KIP-227):
//! every answer has session id 0, so clients send full requests. Every answer carries the last
//! stable offset; a `read_committed` consumer reads only below it and is told the aborted
//! transactions among the batches it gets (KIP-98), whose records it drops.

use super::super::partitions::{FollowerRead, PartitionError, ReadResult};
use crate::broker::context::Broker;
use crate::model::TopicPartition;
use bytes::Bytes;
use kafka_protocol::messages::{fetch_response, FetchRequest, FetchResponse};
use std::time::Duration;

/// The replica a request comes from, or `None` for a consumer.
fn replica_of(r: &FetchRequest) -> Option<i32> {
    let id = if r.replica_state.replica_id.0 >= 0 {
        r.replica_state.replica_id.0
    } else {
        r.replica_id.0
    };
    (id >= 0).then_some(id)
}

/// Reads every requested partition once; returns the response and the bytes it carries, and
/// whether any partition answered with an error or a divergence (which ends a long poll at
/// once, as in Kafka).
fn read_all(
    broker: &Broker,
    r: &FetchRequest,
    version: i16,
    denied: &std::collections::BTreeMap<String, i16>,
) -> (FetchResponse, usize, bool) {
    // log_start_offset exists from v5: the encoder refuses a value before.
    let log_start = |offset: i64| if version >= 5 { offset } else { -1 };
    let replica = replica_of(r);
    // isolation_level 1 (READ_COMMITTED, Fetch v4+): bounded by the last stable offset, with
    // the aborted transactions the consumer must skip.
    let read_committed = replica.is_none() && r.isolation_level == 1;
    let now_ms = broker.clock.monotonic_ms();
    let mut remaining = usize::try_from(r.max_bytes).unwrap_or(0).max(1);
    let mut total = 0usize;
    let mut end_poll = false;
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let tp = TopicPartition::new(t.topic.0.to_string(), p.partition);
            let mut data = fetch_response::PartitionData::default()
                .with_partition_index(p.partition)
                .with_aborted_transactions(Some(Vec::new()));
            let limit = usize::try_from(p.partition_max_bytes)
                .unwrap_or(0)
                .min(remaining);
            if let Some(code) = denied.get(&tp.topic) {
                partitions.push(
                    data.with_error_code(*code)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_records(Some(Bytes::new())),
                );
                end_poll = true;
                continue;
            }
            let result: Result<FollowerRead, PartitionError> = match broker.partition(&tp) {
                Err(e) => Err(e),
                Ok(partition) => match replica {
                    Some(replica_id) => partition
                        .read_for_follower(
                            replica_id,
                            p.fetch_offset,
                            p.last_fetched_epoch,
                            p.current_leader_epoch,
                            p.log_start_offset,
                            limit.max(1),
                            now_ms,
                        )
                        .map(|(read, proposal)| {
                            if let Some(proposal) = proposal {
                                broker.partitions.propose_isr(proposal);
                            }
                            read
                        }),
                    None => partition
                        .check_epoch(p.current_leader_epoch)
                        .and_then(|_| {
                            if limit == 0 && total > 0 {
                                // The request's max_bytes is used up: offsets only.
                                partition.offsets().map(|(start, hw, _)| ReadResult {
                                    bytes: Vec::new(),
                                    high_watermark: hw,
                                    log_start_offset: start,
                                    last_stable_offset: partition.last_stable_offset(),
                                    aborted: Vec::new(),
                                })
                            } else if read_committed {
                                partition.read_committed(p.fetch_offset, limit.max(1))
                            } else {
                                partition.read_as_leader(p.fetch_offset, limit.max(1))
                            }
                        })
                        .map(|read| FollowerRead {
                            read,
                            diverging: None,
                        }),
                },
            };
            match result {
                Ok(FollowerRead {
                    mut read,
                    diverging,
                }) => {
                    if total > 0 && read.bytes.len() > remaining {
                        // Only the first batch of a response may exceed the limits (KIP-74).
                        read.bytes.clear();
                    }
                    total += read.bytes.len();
                    remaining = remaining.saturating_sub(read.bytes.len());
                    let aborted = read
                        .aborted
                        .iter()
                        .map(|a| {
                            fetch_response::AbortedTransaction::default()
                                .with_producer_id(kafka_protocol::messages::ProducerId(
                                    a.producer_id,
                                ))
                                .with_first_offset(a.first_offset)
                        })
                        .collect();
                    data = data
                        .with_high_watermark(read.high_watermark as i64)
                        .with_last_stable_offset(read.last_stable_offset as i64)
                        .with_aborted_transactions(Some(aborted))
                        .with_log_start_offset(log_start(read.log_start_offset as i64))
                        .with_records(Some(Bytes::from(read.bytes)));
                    if let Some((epoch, end_offset)) = diverging {
                        end_poll = true;
                        data = data.with_diverging_epoch(
                            fetch_response::EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(end_offset),
                        );
                    }
                }
                Err(e) => {
                    end_poll = true;
                    tracing::debug!(partition = %tp, replica, "fetch refused: {e}");
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
        end_poll,
    )
}

/// What the answer carries, per topic, into the byte counters.
fn count_out(broker: &Broker, r: &FetchRequest, response: FetchResponse) -> FetchResponse {
    if let Some(m) = &broker.metrics {
        let replica = replica_of(r).is_some();
        let image = broker.image();
        for (t, answered) in r.topics.iter().zip(&response.responses) {
            // Only topics that exist get a series (a client may name any).
            if image.topic_by_name(&t.topic.0).is_none() {
                continue;
            }
            let bytes: usize = answered
                .partitions
                .iter()
                .map(|p| p.records.as_ref().map_or(0, Bytes::len))
                .sum();
            m.fetched(&t.topic.0, bytes as u64, replica);
        }
    }
    response
}

pub async fn handle(
    broker: &Broker,
    conn: &crate::broker::context::Connection,
    r: &FetchRequest,
    version: i16,
) -> FetchResponse {
    use crate::security::acl::{operation, resource};
    // A follower's fetch needs CLUSTER_ACTION on the cluster, a consumer's READ on each topic.
    let follower_denied =
        replica_of(r).is_some() && !broker.may_on_cluster(conn, operation::CLUSTER_ACTION);
    let denied: std::collections::BTreeMap<String, i16> = r
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.topic.0.to_string();
            if follower_denied {
                Some((
                    name,
                    kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code(),
                ))
            } else if replica_of(r).is_none()
                && !broker.may(conn, resource::TOPIC, &name, operation::READ)
            {
                Some((
                    name,
                    kafka_protocol::error::ResponseError::TopicAuthorizationFailed.code(),
                ))
            } else {
                None
            }
        })
        .collect();
    let start_ms = broker.clock.monotonic_ms();
    let max_wait_ms = u64::try_from(r.max_wait_ms).unwrap_or(0);
    let min_bytes = usize::try_from(r.min_bytes).unwrap_or(0);
    let mut appended = broker.partitions.subscribe_appends();
    loop {
        appended.borrow_and_update();
        let (response, bytes, end_poll) = read_all(broker, r, version, &denied);
        let waited_ms = broker.clock.monotonic_ms().saturating_sub(start_ms);
        if bytes >= min_bytes || end_poll || waited_ms >= max_wait_ms {
            return count_out(broker, r, response);
        }
        let left = Duration::from_millis(max_wait_ms - waited_ms);
        // Woken by any append or high watermark move on this broker (or the deadline), then
        // read again.
        if tokio::time::timeout(left, appended.changed())
            .await
            .is_err()
        {
            return count_out(broker, r, read_all(broker, r, version, &denied).0);
        }
    }
}
