//! AddPartitionsToTxn (24), versions 0-3 (the client's form; 4+ batches transactions for
//! brokers verifying produce requests, KIP-890, which is not implemented): the partitions join
//! the producer's open transaction at its coordinator, stored in `__transaction_state` before
//! the answer. A partition of an unknown topic fails the whole request, as in Kafka: it gets
//! UNKNOWN_TOPIC_OR_PARTITION and the others OPERATION_NOT_ATTEMPTED.

use crate::broker::context::Broker;
use crate::model::TRANSACTION_STATE;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    add_partitions_to_txn_response::{
        AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
    },
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
};

fn answer(
    r: &AddPartitionsToTxnRequest,
    code_of: impl Fn(&str, i32) -> i16,
) -> AddPartitionsToTxnResponse {
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(
        r.v3_and_below_topics
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
            .collect(),
    )
}

pub async fn handle(broker: &Broker, r: &AddPartitionsToTxnRequest) -> AddPartitionsToTxnResponse {
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
