//! WriteTxnMarkers (27), inter-broker: a transaction coordinator asks this broker, the leader of
//! some of a transaction's partitions, to write the commit or abort marker on each. Each marker
//! is replicated to the in-sync replicas before its partition answers success; a marker from an
//! older producer epoch (INVALID_PRODUCER_EPOCH) or an older coordinator
//! (TRANSACTION_COORDINATOR_FENCED) is refused by the partition's producer state.

use crate::broker::context::Broker;
use crate::broker::transactions::write_marker_here;
use crate::model::TopicPartition;
use kafka_protocol::messages::{
    write_txn_markers_response::{
        WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
    },
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};

pub async fn handle(broker: &Broker, r: &WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let mut markers = Vec::with_capacity(r.markers.len());
    for m in &r.markers {
        let mut topics = Vec::with_capacity(m.topics.len());
        for t in &m.topics {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for p in &t.partition_indexes {
                let tp = TopicPartition::new(t.name.0.to_string(), *p);
                let written = write_marker_here(
                    broker,
                    &tp,
                    m.producer_id.0,
                    m.producer_epoch,
                    m.coordinator_epoch,
                    m.transaction_result,
                )
                .await;
                let code = match written {
                    Ok(()) => 0,
                    Err(e) => {
                        tracing::debug!(partition = %tp, "marker refused: {e}");
                        e.code()
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*p)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(t.name.clone())
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(markers)
}
