//! TxnOffsetCommit (28), versions 0-3: a transactional producer commits a consumer group's
//! offsets inside its transaction (consume-transform-produce). The group's coordinator stores
//! them as a transactional batch of the producer in `__consumer_offsets`, replicated before the
//! answer; they stay pending — invisible to OffsetFetch, and UNSTABLE_OFFSET_COMMIT to a
//! `require_stable` one — until the transaction's marker reaches the partition. A request that
//! names a member or generation (KIP-447) is checked against the group as Kafka checks it
//! (unknown member, illegal generation; never "rebalance in progress").
//!
//! KIP-890: before the group's partition gets the producer's first transactional batch of a
//! transaction, the transaction coordinator must confirm the partition is in it (added by
//! AddOffsetsToTxn), as for Produce; asked before the group lock is taken.

use crate::broker::context::Broker;
use crate::broker::partitions::TxnCheck;
use crate::group::coordinator::{NONE, OFFSET_METADATA_TOO_LARGE};
use crate::model::{TopicPartition, CONSUMER_OFFSETS};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    txn_offset_commit_response::{TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic},
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

fn answer(
    r: &TxnOffsetCommitRequest,
    code_of: impl Fn(&str, i32) -> i16,
) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default().with_topics(
        r.topics
            .iter()
            .map(|t| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code_of(&t.name.0, p.partition_index))
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub async fn handle(
    broker: &Broker,
    r: &TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    let group_id = r.group_id.0.to_string();
    if r.producer_id.0 < 0 {
        // Without a producer no marker could ever settle these offsets.
        return answer(r, |_, _| {
            kafka_protocol::error::ResponseError::InvalidProducerIdMapping.code()
        });
    }
    let check = match verify(broker, r, &group_id).await {
        Ok(check) => check,
        Err(code) => return answer(r, |_, _| code),
    };
    let mut c = match broker.groups.coordinate(broker, &group_id).await {
        Ok(c) => c,
        Err(code) => return answer(r, |_, _| code),
    };
    if version >= 3 {
        let code = c.inner.core.check_txn_commit(
            &group_id,
            r.generation_id,
            &r.member_id,
            r.group_instance_id.as_deref(),
        );
        if code != NONE {
            return answer(r, |_, _| code);
        }
    }
    let (offsets, too_large) = super::offsets::split_commits(r.topics.iter().flat_map(|t| {
        t.partitions.iter().map(move |p| {
            (
                t.name.0.as_str(),
                p.partition_index,
                p.committed_offset,
                if version >= 2 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                p.committed_metadata.as_deref(),
            )
        })
    }));
    let now_ms = broker.clock.wall_ms().max(0) as u64;
    let writes = c.inner.core.commit_writes(&group_id, &offsets, now_ms);
    let stored = if writes.is_empty() {
        Ok(())
    } else {
        broker
            .groups
            .append_txn(
                broker,
                &mut c.inner,
                &group_id,
                (r.producer_id.0, r.producer_epoch),
                &writes,
                check,
            )
            .await
    };
    match stored {
        Ok(()) => {
            c.inner
                .core
                .apply_txn_commit(r.producer_id.0, &group_id, &offsets, now_ms);
            answer(r, |t, p| {
                if too_large.iter().any(|(tt, pp)| tt == t && *pp == p) {
                    OFFSET_METADATA_TOO_LARGE
                } else {
                    0
                }
            })
        }
        Err(e) => {
            let code = match &e {
                crate::broker::groups::GroupStoreError::Partition(
                    _,
                    crate::broker::partitions::PartitionError::Sequence(s),
                ) if s.code()
                    == kafka_protocol::error::ResponseError::InvalidProducerEpoch.code() =>
                {
                    kafka_protocol::error::ResponseError::ProducerFenced.code()
                }
                _ => e.code(),
            };
            answer(r, |_, _| code)
        }
    }
}

/// KIP-890 for the group's `__consumer_offsets` partition: what its append may claim, or the
/// code to answer with. A coordinator that is busy or out of reach is
/// COORDINATOR_NOT_AVAILABLE (retried), a partition not in the transaction INVALID_TXN_STATE.
async fn verify(
    broker: &Broker,
    r: &TxnOffsetCommitRequest,
    group_id: &str,
) -> Result<TxnCheck, i16> {
    if !broker.config.transaction_verification {
        return Ok(TxnCheck::Off);
    }
    let tp = TopicPartition::new(CONSUMER_OFFSETS, broker.groups.partition_of(group_id));
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    // Not led here: the coordinator answers NOT_COORDINATOR itself, next.
    let Ok(Ok(Some(guard))) = broker
        .partition(&tp)
        .map(|p| p.start_verification(pid, epoch))
    else {
        return Ok(TxnCheck::Unverified);
    };
    let partitions = [(tp.topic.clone(), tp.partition)];
    let codes = crate::broker::transactions::verify_in_transaction(
        broker,
        &r.transactional_id.0,
        pid,
        epoch,
        &partitions,
    )
    .await;
    match codes
        .first()
        .copied()
        .unwrap_or(ResponseError::CoordinatorNotAvailable.code())
    {
        0 => Ok(TxnCheck::Verified(guard)),
        code if code == ResponseError::ConcurrentTransactions.code()
            || code == ResponseError::CoordinatorLoadInProgress.code()
            || code == ResponseError::NotCoordinator.code() =>
        {
            Err(ResponseError::CoordinatorNotAvailable.code())
        }
        code => Err(code),
    }
}
