//! InitProducerId (22) for idempotent producers: a producer id from this broker's current
//! block (blocks of 1000 come from the active controller through AllocateProducerIds, so ids
//! are unique across brokers and restarts), epoch 0; a producer that names its id and epoch
//! (KIP-360) gets the epoch bumped. With a transactional id, the id's transaction coordinator
//! answers (KIP-98): the same producer id at a bumped epoch, which fences every older
//! instance; an open transaction of the old instance is aborted first (the client is told
//! CONCURRENT_TRANSACTIONS and retries).

use crate::broker::context::Broker;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    AllocateProducerIdsRequest, ApiKey, BrokerId, InitProducerIdRequest, InitProducerIdResponse,
    ProducerId, RequestKind, ResponseKind,
};
use std::time::Duration;

const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();

async fn next_id(broker: &Broker) -> Option<i64> {
    {
        let mut block = broker.producer_ids.lock().await;
        if block.next < block.end {
            block.next += 1;
            return Some(block.next - 1);
        }
        // Ask for a new block while holding the lock: one request at a time.
        let node = broker.config.node_id;
        let Some(epoch) = broker.image().brokers.get(&node).map(|b| b.broker_epoch) else {
            tracing::warn!("producer id block: this broker is not registered yet");
            return None;
        };
        let request = AllocateProducerIdsRequest::default()
            .with_broker_id(BrokerId(node))
            .with_broker_epoch(epoch);
        let answer = broker
            .controller
            .call(
                ApiKey::AllocateProducerIds,
                0,
                &RequestKind::AllocateProducerIds(request),
                Duration::from_secs(5),
            )
            .await;
        match answer {
            Some(ResponseKind::AllocateProducerIds(r)) if r.error_code == 0 => {
                let start = r.producer_id_start.0;
                let len = i64::from(r.producer_id_len);
                if start < 0 || len <= 0 {
                    tracing::warn!(start, len, "controller handed an empty producer id block");
                    return None;
                }
                block.next = start + 1;
                block.end = start + len;
                tracing::info!(start, len, "producer id block");
                Some(start)
            }
            Some(ResponseKind::AllocateProducerIds(r)) => {
                tracing::warn!(code = r.error_code, "producer id block refused");
                None
            }
            _ => {
                tracing::warn!("producer id block: no active controller answered");
                None
            }
        }
    }
}

fn refused(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

async fn transactional(
    broker: &Broker,
    transactional_id: &str,
    r: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    use crate::group::transactions::{InitOutcome, CONCURRENT_TRANSACTIONS};
    if transactional_id.is_empty() {
        return refused(ResponseError::InvalidRequest.code());
    }
    let txns = &broker.transactions;
    let needs_id = match txns.coordinate(broker, transactional_id).await {
        Ok(c) => c.inner.core.needs_producer_id(transactional_id),
        Err(code) => return refused(code),
    };
    // A fresh producer id comes from the controller, without holding the coordinator.
    let fresh = if needs_id {
        next_id(broker).await
    } else {
        None
    };
    let mut c = match txns.coordinate(broker, transactional_id).await {
        Ok(c) => c,
        Err(code) => return refused(code),
    };
    let outcome = c.inner.core.init_producer_id(
        transactional_id,
        r.transaction_timeout_ms,
        (r.producer_id.0, r.producer_epoch),
        fresh,
        broker.clock.wall_ms(),
    );
    match outcome {
        // As for every answer resting on the coordinator's memory: once it is replicated.
        InitOutcome::Error(code) => {
            match txns.settled(broker, c.index, c.coordinator_epoch).await {
                Ok(()) => refused(code),
                Err(not_settled) => refused(not_settled),
            }
        }
        // A retried bump: answered once the record that made it is replicated.
        InitOutcome::Unchanged(pid, epoch) => {
            match txns.settled(broker, c.index, c.coordinator_epoch).await {
                Ok(()) => InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch),
                Err(code) => refused(code),
            }
        }
        InitOutcome::Write(t) => {
            let (pid, epoch) = (t.meta.producer_id, t.meta.producer_epoch);
            match txns.store(broker, &mut c, t).await {
                Ok(()) => {
                    tracing::info!(
                        transactional_id,
                        producer_id = pid,
                        epoch,
                        "transactional producer"
                    );
                    InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                }
                Err(code) => refused(code),
            }
        }
        InitOutcome::Fence(t) => {
            tracing::info!(
                transactional_id,
                producer_id = t.meta.producer_id,
                epoch = t.meta.producer_epoch,
                "fencing the previous producer: aborting its open transaction"
            );
            match txns.store(broker, &mut c, t).await {
                Ok(()) => refused(CONCURRENT_TRANSACTIONS),
                Err(code) => refused(code),
            }
        }
    }
}

pub async fn handle(broker: &Broker, r: &InitProducerIdRequest) -> InitProducerIdResponse {
    if let Some(id) = &r.transactional_id {
        return transactional(broker, id, r).await;
    }
    // KIP-360: an idempotent producer that lost track of its sequences asks for a new epoch.
    if r.producer_id.0 >= 0 && r.producer_epoch >= 0 && r.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(r.producer_id)
            .with_producer_epoch(r.producer_epoch + 1);
    }
    match next_id(broker).await {
        Some(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        None => InitProducerIdResponse::default()
            .with_error_code(COORDINATOR_NOT_AVAILABLE)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    }
}
