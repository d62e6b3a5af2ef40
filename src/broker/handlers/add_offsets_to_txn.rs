//! AddOffsetsToTxn (25): the group's `__consumer_offsets` partition joins the producer's open
//! transaction (KIP-98's consume-transform-produce), so the transaction's markers reach the
//! group coordinator, which then makes the offsets TxnOffsetCommit stored visible or drops
//! them. `__consumer_offsets` is created here if it does not exist yet.

use crate::broker::context::Broker;
use crate::model::CONSUMER_OFFSETS;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

pub async fn handle(broker: &Broker, r: &AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let transactional_id = r.transactional_id.0.to_string();
    super::find_coordinator::ensure_offsets_topic(broker).await;
    let index = broker.groups.partition_of(&r.group_id.0);
    let txns = &broker.transactions;
    let mut c = match txns.coordinate(broker, &transactional_id).await {
        Ok(c) => c,
        Err(code) => return AddOffsetsToTxnResponse::default().with_error_code(code),
    };
    let outcome = c.inner.core.add_partitions(
        &transactional_id,
        r.producer_id.0,
        r.producer_epoch,
        &[(CONSUMER_OFFSETS.to_string(), index)],
        broker.clock.wall_ms(),
    );
    let code = txns.carry_out(broker, &mut c, outcome).await;
    AddOffsetsToTxnResponse::default().with_error_code(code)
}
