//! Produce (0): appends each partition's record batches to its log as the leader, through the
//! partition's log writer. Batches are validated (header, CRC-32C, size) and get their offsets
//! by rewriting the base offset; records are never decoded. acks=0 gets no answer; acks=1 is
//! answered once the leader's own write may be acknowledged (after its fsync when the log
//! fsyncs first); acks=-1 once the high watermark passes the batches, i.e. every in-sync
//! replica has them, within the request's timeout (REQUEST_TIMED_OUT). With fewer in-sync
//! replicas than `min.insync.replicas`, acks=-1 is refused before appending
//! (NOT_ENOUGH_REPLICAS) or, if the ISR shrank while it waited, answered
//! NOT_ENOUGH_REPLICAS_AFTER_APPEND.
//!
//! KIP-890 (`transaction.partition.verification.enable`, on by default): a transactional batch
//! that would open a transaction on a partition is appended only once the producer's
//! transaction coordinator confirms the partition is in its open transaction (see
//! [`verify`]), so a late or stray batch cannot open a transaction no coordinator will end.

use super::super::partitions::{Appended, Partition, PartitionError, TxnCheck, VerificationGuard};
use crate::broker::context::Broker;
use crate::model::TopicPartition;
use crate::protocol::record_batch::{BatchHeader, RecordBatch};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{produce_response, ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const INVALID_REQUIRED_ACKS: i16 = ResponseError::InvalidRequiredAcks.code();
const INVALID_RECORD: i16 = ResponseError::InvalidRecord.code();

struct Outcome {
    error_code: i16,
    message: Option<String>,
    base_offset: i64,
    log_start_offset: i64,
}

fn failure(code: i16, message: impl Into<String>) -> Outcome {
    Outcome {
        error_code: code,
        message: Some(message.into()),
        base_offset: -1,
        log_start_offset: -1,
    }
}

/// Refuses control batches: only the transaction coordinator writes markers (Kafka's
/// "client cannot produce control batches"). Transactional batches must name a producer.
fn check_batches(data: &[u8]) -> Result<(), Outcome> {
    let mut rest = data;
    while !rest.is_empty() {
        let Ok(header) = BatchHeader::parse(rest, usize::MAX) else {
            return Ok(()); // the log's own validation reports it precisely
        };
        let size = header.size();
        if rest.len() < size {
            return Ok(());
        }
        if let Ok((batch, _)) = RecordBatch::parse(&rest[..size], usize::MAX) {
            if batch.is_control() {
                return Err(failure(
                    INVALID_RECORD,
                    "clients cannot produce control batches",
                ));
            }
            if batch.is_transactional() && batch.producer_id() < 0 {
                return Err(failure(
                    INVALID_RECORD,
                    "a transactional batch without a producer id",
                ));
            }
        }
        rest = &rest[size..];
    }
    Ok(())
}

/// A compacted topic keeps the latest record per key, so every record needs one: Kafka's
/// leader decodes each batch (decompressing it) to check, and refuses with INVALID_RECORD.
fn check_keys(tp: &TopicPartition, data: &[u8]) -> Result<(), Outcome> {
    use crate::protocol::record_batch::decoded::decode;
    let mut rest = data;
    while let Ok((batch, tail)) = RecordBatch::parse(rest, usize::MAX) {
        match decode(&batch) {
            Ok(d) if d.records.iter().any(|r| r.key.is_none()) => {
                return Err(failure(
                    INVALID_RECORD,
                    format!(
                    "Compacted topic cannot accept message without key in topic partition {tp}."
                ),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(failure(INVALID_RECORD, format!("undecodable records: {e}"))),
        }
        rest = tail;
    }
    Ok(())
}

/// Phase one for a partition: checks and the leader's append (acknowledgeable by itself).
async fn append_one(
    broker: &Broker,
    tp: &TopicPartition,
    records: Option<&[u8]>,
    acks: i16,
    check: TxnCheck,
) -> Result<(Arc<Partition>, Appended), Outcome> {
    let partition = broker.partition(tp).map_err(|e| refused(tp, &e))?;
    if crate::model::is_internal_topic(&tp.topic) {
        return Err(failure(
            ResponseError::InvalidTopicException.code(),
            "producing to an internal topic is not allowed",
        ));
    }
    let Some(records) = records.filter(|r| !r.is_empty()) else {
        return Err(failure(INVALID_RECORD, "no records"));
    };
    check_batches(records)?;
    if partition.cleanup_policy().is_some_and(|c| c.compact) {
        check_keys(tp, records)?;
    }
    match partition
        .append_as_leader(records.to_vec(), acks == -1, check)
        .await
    {
        Ok(appended) => {
            if let Some(m) = &broker.metrics {
                let count = appended.last_offset - appended.first_offset + 1;
                m.produced(
                    &tp.topic,
                    u64::try_from(count).unwrap_or(0),
                    records.len() as u64,
                );
            }
            Ok((partition, appended))
        }
        Err(e) => Err(refused(tp, &e)),
    }
}

/// The producer whose transactional batch `data` begins a run of (the first transactional
/// data batch's producer id and epoch): what KIP-890 verifies.
fn transactional_producer(data: &[u8]) -> Option<(i64, i16)> {
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest, usize::MAX) {
        let size = header.size();
        if rest.len() < size {
            return None;
        }
        if let Ok((batch, _)) = RecordBatch::parse(&rest[..size], usize::MAX) {
            if batch.is_transactional() && !batch.is_control() && batch.producer_id() >= 0 {
                return Some((batch.producer_id(), batch.producer_epoch()));
            }
        }
        rest = &rest[size..];
    }
    None
}

/// What the coordinator's answer to a verification means to a producer, as Kafka's
/// `ReplicaManager` translates it: a partition not in the transaction is INVALID_TXN_STATE;
/// a coordinator that is busy, moving or out of reach is NOT_ENOUGH_REPLICAS, which every
/// producer retries (the coordinator's own codes would mean nothing to it in a Produce).
fn verification_failure(code: i16) -> Outcome {
    const RETRIABLE: [ResponseError; 4] = [
        ResponseError::ConcurrentTransactions,
        ResponseError::CoordinatorLoadInProgress,
        ResponseError::CoordinatorNotAvailable,
        ResponseError::NotCoordinator,
    ];
    if RETRIABLE.iter().any(|e| e.code() == code) {
        return failure(
            ResponseError::NotEnoughReplicas.code(),
            format!(
                "unable to verify the partition has been added to the transaction (error {code})"
            ),
        );
    }
    if code == ResponseError::InvalidTxnState.code() {
        return failure(code, "the partition was not added to the transaction");
    }
    failure(
        code,
        format!("transaction verification failed with error {code}"),
    )
}

/// KIP-890: for each partition whose batches would open a transaction of their producer,
/// asks the coordinator (one question per producer) whether the partition is in the
/// producer's open transaction, under a guard the partition made first. What each append may
/// then claim ([`TxnCheck`]), or the answer for a partition that failed.
async fn verify(
    broker: &Broker,
    conn: &crate::broker::context::Connection,
    r: &ProduceRequest,
) -> BTreeMap<(String, i32), Result<TxnCheck, Outcome>> {
    use crate::security::acl::{operation, resource};
    let mut checks = BTreeMap::new();
    if !broker.config.transaction_verification {
        return checks; // every append: TxnCheck::Off
    }
    // Nothing is asked (nor a guard made) for a request its sender may not make: it is
    // refused after (authorization is checked before any append).
    if r.transactional_id
        .as_ref()
        .is_some_and(|t| !broker.may(conn, resource::TRANSACTIONAL_ID, &t.0, operation::WRITE))
    {
        return checks;
    }
    // (producer id, epoch) → the partitions to ask about, with their guards.
    type Guarded = Vec<((String, i32), VerificationGuard)>;
    let mut asks: BTreeMap<(i64, i16), Guarded> = BTreeMap::new();
    for t in &r.topic_data {
        for p in &t.partition_data {
            let key = (t.name.0.to_string(), p.index);
            let Some((pid, epoch)) = p.records.as_deref().and_then(transactional_producer) else {
                continue;
            };
            let tp = TopicPartition::new(key.0.clone(), key.1);
            if !broker.may(conn, resource::TOPIC, &tp.topic, operation::WRITE) {
                continue; // refused before its append
            }
            // A partition that is not here, or not led here, fails in its append.
            match broker
                .partition(&tp)
                .map(|p| p.start_verification(pid, epoch))
            {
                Ok(Ok(Some(guard))) => asks.entry((pid, epoch)).or_default().push((key, guard)),
                _ => {
                    checks.insert(key, Ok(TxnCheck::Unverified));
                }
            }
        }
    }
    for ((pid, epoch), partitions) in asks {
        let Some(transactional_id) = r.transactional_id.as_ref().map(|t| t.0.to_string()) else {
            for (key, _) in partitions {
                checks.insert(
                    key,
                    Err(failure(
                        ResponseError::InvalidTxnState.code(),
                        "a transactional batch without a transactional id cannot be verified",
                    )),
                );
            }
            continue;
        };
        let names: Vec<(String, i32)> = partitions.iter().map(|(k, _)| k.clone()).collect();
        let codes = crate::broker::transactions::verify_in_transaction(
            broker,
            &transactional_id,
            pid,
            epoch,
            &names,
        )
        .await;
        for ((key, guard), code) in partitions.into_iter().zip(codes) {
            let check = if code == 0 {
                Ok(TxnCheck::Verified(guard))
            } else {
                tracing::debug!(transactional_id, topic = %key.0, partition = key.1, code,
                    "transactional produce not verified");
                Err(verification_failure(code))
            };
            checks.insert(key, check);
        }
    }
    checks
}

fn refused(tp: &TopicPartition, e: &PartitionError) -> Outcome {
    if matches!(e, PartitionError::Storage(_)) {
        tracing::error!(partition = %tp, "append failed: {e}");
    } else {
        tracing::debug!(partition = %tp, "produce refused: {e}");
    }
    failure(e.code(), e.to_string())
}

/// `Ok(None)`: acks=0, nothing to answer. `Err`: close the connection — an acks=0 request
/// that failed on some partition, as Kafka does, since a producer that gets no answers learns
/// of NOT_LEADER_OR_FOLLOWER only so and refreshes its metadata; answering nothing kept it
/// writing into a broker that refused every batch.
pub async fn handle(
    broker: &Broker,
    conn: &crate::broker::context::Connection,
    r: &ProduceRequest,
    version: i16,
) -> Result<Option<ProduceResponse>, String> {
    use crate::security::acl::{operation, resource};
    // Authorization (KIP-679): WRITE on each topic; a transactional producer's request also
    // WRITE on its transactional id, or none of it is appended.
    let txn_denied = r
        .transactional_id
        .as_ref()
        .is_some_and(|t| !broker.may(conn, resource::TRANSACTIONAL_ID, &t.0, operation::WRITE));
    let acks_valid = matches!(r.acks, -1..=1);
    let timeout = Duration::from_millis(u64::try_from(r.timeout_ms).unwrap_or(0));
    let mut checks: BTreeMap<(String, i32), Result<TxnCheck, Outcome>> = if acks_valid {
        verify(broker, conn, r).await
    } else {
        BTreeMap::new()
    };
    // Phase one: every partition's append, in request order.
    let mut appends = Vec::with_capacity(r.topic_data.len());
    let mut appended_any = false;
    for t in &r.topic_data {
        let mut partitions = Vec::with_capacity(t.partition_data.len());
        for p in &t.partition_data {
            let tp = TopicPartition::new(t.name.0.to_string(), p.index);
            // Only topics that exist get a series: random names from a client must not grow
            // the metric families.
            if let Some(m) = broker
                .metrics
                .as_ref()
                .filter(|_| broker.image().topic_by_name(&tp.topic).is_some())
            {
                m.produce_request(&tp.topic);
            }
            // A partition listed twice finds its check taken by the first entry: with
            // verification on, the second may not open a transaction unverified.
            let check = checks
                .remove(&(tp.topic.clone(), tp.partition))
                .unwrap_or(Ok(if broker.config.transaction_verification {
                    TxnCheck::Unverified
                } else {
                    TxnCheck::Off
                }));
            let outcome = if txn_denied {
                Err(failure(
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    "WRITE on the transactional id is not authorized",
                ))
            } else if !broker.may(conn, resource::TOPIC, &tp.topic, operation::WRITE) {
                Err(failure(
                    ResponseError::TopicAuthorizationFailed.code(),
                    format!("WRITE on topic {} is not authorized", tp.topic),
                ))
            } else if !acks_valid {
                Err(failure(
                    INVALID_REQUIRED_ACKS,
                    format!("acks must be 0, 1 or -1, not {}", r.acks),
                ))
            } else {
                match check {
                    Ok(check) => append_one(broker, &tp, p.records.as_deref(), r.acks, check).await,
                    Err(o) => Err(o),
                }
            };
            appended_any |= outcome.is_ok();
            partitions.push((tp, outcome));
        }
        appends.push(partitions);
    }
    if appended_any {
        broker.partitions.notify_appended();
    }
    if r.acks == 0 {
        let refused = appends
            .iter()
            .flatten()
            .find_map(|(tp, outcome)| outcome.as_ref().err().map(|o| (tp, o.error_code)));
        return match refused {
            Some((tp, code)) => Err(format!(
                "acks=0 produce to {tp} refused with error {code}: closing the connection"
            )),
            None => Ok(None),
        };
    }
    // Phase two, acks=all: wait for each partition's high watermark to pass its batches (the
    // waits overlap: replication of all of them is under way).
    let mut responses = Vec::with_capacity(r.topic_data.len());
    for (t, partitions) in r.topic_data.iter().zip(appends) {
        let mut answers = Vec::with_capacity(partitions.len());
        for (tp, outcome) in partitions {
            let outcome = match outcome {
                Ok((partition, appended)) => {
                    let waited = if r.acks == -1 {
                        partition.wait_replicated(&appended, timeout).await
                    } else {
                        Ok(())
                    };
                    match waited {
                        Ok(()) => Outcome {
                            error_code: 0,
                            message: None,
                            base_offset: appended.first_offset,
                            log_start_offset: appended.log_start as i64,
                        },
                        Err(e) => refused(&tp, &e),
                    }
                }
                Err(o) => o,
            };
            answers.push(
                produce_response::PartitionProduceResponse::default()
                    .with_index(tp.partition)
                    .with_error_code(outcome.error_code)
                    .with_base_offset(outcome.base_offset)
                    .with_log_append_time_ms(-1)
                    // These fields exist from v5 and v8: the encoder refuses values before.
                    .with_log_start_offset(if version >= 5 {
                        outcome.log_start_offset
                    } else {
                        -1
                    })
                    .with_error_message(if version >= 8 {
                        outcome.message.map(StrBytes::from_string)
                    } else {
                        None
                    }),
            );
        }
        responses.push(
            produce_response::TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_partition_responses(answers),
        );
    }
    Ok(Some(ProduceResponse::default().with_responses(responses)))
}
