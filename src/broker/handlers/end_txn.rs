//! EndTxn (26), versions 0-3: commits or aborts the producer's open transaction. The prepared
//! state is stored in `__transaction_state` before the answer; the markers are then written to
//! every partition of the transaction by the coordinator's marker task, and the producer's next
//! transactional request gets CONCURRENT_TRANSACTIONS until they are (as in Kafka).

use crate::broker::context::Broker;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

pub async fn handle(broker: &Broker, r: &EndTxnRequest) -> EndTxnResponse {
    let transactional_id = r.transactional_id.0.to_string();
    let txns = &broker.transactions;
    let mut c = match txns.coordinate(broker, &transactional_id).await {
        Ok(c) => c,
        Err(code) => return EndTxnResponse::default().with_error_code(code),
    };
    let outcome = c.inner.core.end_txn(
        &transactional_id,
        r.producer_id.0,
        r.producer_epoch,
        r.committed,
        broker.clock.wall_ms(),
    );
    let code = txns.carry_out(broker, &mut c, outcome).await;
    EndTxnResponse::default().with_error_code(code)
}
