//! DescribeTransactions (65) and ListTransactions (66), as `kafka-transactions.sh` uses them:
//! a transactional id's state, timeout, start time, producer and partitions, from its
//! coordinator (NOT_COORDINATOR elsewhere, TRANSACTIONAL_ID_NOT_FOUND if it has none); and the
//! transactions of every `__transaction_state` partition this broker leads, filtered by state,
//! producer id and (v1) how long they have been running.

use crate::broker::context::Broker;
use crate::group::transactions::TxnState;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    describe_transactions_response::{self, TopicData},
    list_transactions_response, DescribeTransactionsRequest, DescribeTransactionsResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

const STATES: [TxnState; 8] = [
    TxnState::Empty,
    TxnState::Ongoing,
    TxnState::PrepareCommit,
    TxnState::PrepareAbort,
    TxnState::CompleteCommit,
    TxnState::CompleteAbort,
    TxnState::Dead,
    TxnState::PrepareEpochFence,
];

pub async fn describe(
    broker: &Broker,
    r: &DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut states = Vec::with_capacity(r.transactional_ids.len());
    for id in &r.transactional_ids {
        let answer = describe_transactions_response::TransactionState::default()
            .with_transactional_id(id.clone())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        let c = match broker.transactions.coordinate(broker, &id.0).await {
            Ok(c) => c,
            Err(code) => {
                states.push(answer.with_error_code(code));
                continue;
            }
        };
        let Some(m) = c.inner.core.get(&id.0) else {
            states.push(answer.with_error_code(ResponseError::TransactionalIdNotFound.code()));
            continue;
        };
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &m.partitions {
            topics.entry(t).or_default().push(*p);
        }
        states.push(
            answer
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
                .with_transaction_timeout_ms(m.timeout_ms)
                .with_transaction_start_time_ms(m.start_ms)
                .with_producer_id(ProducerId(m.producer_id))
                .with_producer_epoch(m.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                                .with_partitions(ps)
                        })
                        .collect(),
                ),
        );
    }
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub async fn list(
    broker: &Broker,
    r: &ListTransactionsRequest,
    version: i16,
) -> ListTransactionsResponse {
    let wanted: Vec<TxnState> = STATES
        .into_iter()
        .filter(|s| r.state_filters.iter().any(|f| f.as_str() == s.name()))
        .collect();
    let unknown: Vec<StrBytes> = r
        .state_filters
        .iter()
        .filter(|f| !STATES.iter().any(|s| s.name() == f.as_str()))
        .cloned()
        .collect();
    let now_ms = broker.clock.wall_ms();
    let duration_ms = if version >= 1 { r.duration_filter } else { -1 };
    let listed = broker
        .transactions
        .led_transactions(broker)
        .await
        .into_iter()
        .filter(|(_, m)| r.state_filters.is_empty() || wanted.contains(&m.state))
        .filter(|(_, m)| {
            r.producer_id_filters.is_empty()
                || r.producer_id_filters.iter().any(|p| p.0 == m.producer_id)
        })
        // v1: only transactions running longer than the duration asked.
        .filter(|(_, m)| duration_ms < 0 || (m.start_ms >= 0 && now_ms - m.start_ms > duration_ms))
        .map(|(id, m)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(kafka_protocol::messages::TransactionalId(
                    StrBytes::from_string(id),
                ))
                .with_producer_id(ProducerId(m.producer_id))
                .with_transaction_state(StrBytes::from_static_str(m.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
