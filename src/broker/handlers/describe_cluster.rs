//! DescribeCluster (60): the cluster id, the live brokers on the client's listener, and a
//! broker id standing for the controller (clients cannot reach KRaft controllers, so Kafka
//! names a live broker here too).

use super::metadata::live_brokers;
use crate::broker::context::{Broker, Connection};
use kafka_protocol::messages::{
    describe_cluster_response, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use kafka_protocol::protocol::StrBytes;

pub fn handle(
    broker: &Broker,
    conn: &Connection,
    _r: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    let image = broker.image();
    let brokers = live_brokers(&image, &conn.listener);
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.config.cluster_id.clone()))
        .with_controller_id(BrokerId(brokers.first().map_or(-1, |b| b.0)))
        .with_brokers(
            brokers
                .into_iter()
                .map(|(id, host, port, rack)| {
                    describe_cluster_response::DescribeClusterBroker::default()
                        .with_broker_id(BrokerId(id))
                        .with_host(StrBytes::from_string(host))
                        .with_port(i32::from(port))
                        .with_rack(rack.map(StrBytes::from_string))
                })
                .collect(),
        )
}
