//! DescribeProducers (61): each partition's active producers as its leader's producer state
//! holds them (id, epoch, last sequence and timestamp, last coordinator epoch, and the first
//! offset of an open transaction), as `kafka-transactions.sh describe-producers` shows them.

use crate::broker::context::Broker;
use crate::model::TopicPartition;
use kafka_protocol::messages::{
    describe_producers_response::{PartitionResponse, ProducerState, TopicResponse},
    DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};
use kafka_protocol::protocol::StrBytes;

pub fn handle(broker: &Broker, r: &DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = r
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|p| {
                    let tp = TopicPartition::new(t.name.0.to_string(), *p);
                    let answer = PartitionResponse::default().with_partition_index(*p);
                    match broker.partition(&tp).and_then(|part| part.producers()) {
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_error_message(Some(StrBytes::from_string(e.to_string()))),
                        Ok(list) => answer.with_active_producers(
                            list.into_iter()
                                .map(|p| {
                                    ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp_ms)
                                        .with_coordinator_epoch(p.coordinator_epoch)
                                        .with_current_txn_start_offset(p.txn_start_offset)
                                })
                                .collect(),
                        ),
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
