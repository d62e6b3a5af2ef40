//! AddPartitionsToTxn (24). Versions 0-3, the client's form: the partitions join the
//! producer's open transaction at its coordinator, stored in `__transaction_state` before the
//! answer. A partition of an unknown topic fails the whole request, as in Kafka: it gets
//! UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED.
//!
//! Version 4, the brokers' form (KIP-890): a partition leader asks, with `verify_only`,
//! whether partitions are in a producer's open transaction before it appends that producer's
//! first transactional batch there; several transactions per request. Adding partitions
//! through it (`verify_only` false, transaction version 2) is not implemented: refused with
//! INVALID_REQUEST.

use crate::broker::context::Broker;
use crate::model::TRANSACTION_STATE;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    add_partitions_to_txn_request::AddPartitionsToTxnTopic,
    add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
    },
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
};

fn answer(
    r: &AddPartitionsToTxnRequest,
    code_of: impl Fn(&str, i32) -> i16,
) -> AddPartitionsToTxnResponse {
    AddPartitionsToTxnResponse::default()
        .with_results_by_topic_v3_and_below(topic_results(&r.v3_and_below_topics, code_of))
}

fn topic_results(
    topics: &[AddPartitionsToTxnTopic],
    code_of: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_of(&t.name.0, *p))
                        })
                        .collect(),
                )
        })
        .collect()
}

pub async fn handle(
    broker: &Broker,
    r: &AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version >= 4 {
        return verify(broker, r).await;
    }
    let transactional_id = r.v3_and_below_transactional_id.0.to_string();
    let image = broker.image();
    let unknown = |t: &str, p: i32| {
        t == TRANSACTION_STATE
            || image
                .topic_by_name(t)
                .is_none_or(|topic| !topic.partitions.contains_key(&p))
    };
    let partitions: Vec<(String, i32)> = r
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.name.0.to_string(), *p)))
        .collect();
    if partitions.iter().any(|(t, p)| unknown(t, *p)) {
        let not_attempted = ResponseError::OperationNotAttempted.code();
        let unknown_code = ResponseError::UnknownTopicOrPartition.code();
        return answer(r, |t, p| {
            if unknown(t, p) {
                unknown_code
            } else {
                not_attempted
            }
        });
    }
    let txns = &broker.transactions;
    let mut c = match txns.coordinate(broker, &transactional_id).await {
        Ok(c) => c,
        Err(code) => return answer(r, |_, _| code),
    };
    let outcome = c.inner.core.add_partitions(
        &transactional_id,
        r.v3_and_below_producer_id.0,
        r.v3_and_below_producer_epoch,
        &partitions,
        broker.clock.wall_ms(),
    );
    let code = txns.carry_out(broker, &mut c, outcome).await;
    answer(r, |_, _| code)
}

/// Version 4: each transaction's partitions verified at this coordinator.
async fn verify(broker: &Broker, r: &AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
    let mut results = Vec::with_capacity(r.transactions.len());
    for t in &r.transactions {
        let transactional_id = t.transactional_id.0.to_string();
        let partitions: Vec<(String, i32)> = t
            .topics
            .iter()
            .flat_map(|topic| {
                topic
                    .partitions
                    .iter()
                    .map(|p| (topic.name.0.to_string(), *p))
            })
            .collect();
        let codes: Vec<i16> = if !t.verify_only {
            vec![ResponseError::InvalidRequest.code(); partitions.len()]
        } else {
            broker
                .transactions
                .verify(
                    broker,
                    &transactional_id,
                    t.producer_id.0,
                    t.producer_epoch,
                    &partitions,
                )
                .await
                .unwrap_or_else(|code| vec![code; partitions.len()])
        };
        let by_partition: std::collections::BTreeMap<(&str, i32), i16> = partitions
            .iter()
            .map(|(topic, p)| (topic.as_str(), *p))
            .zip(codes)
            .collect();
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(topic_results(&t.topics, |topic, p| {
                    by_partition
                        .get(&(topic, p))
                        .copied()
                        .unwrap_or(ResponseError::InvalidRequest.code())
                })),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}
