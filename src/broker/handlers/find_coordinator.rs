//! FindCoordinator (10): a group's coordinator is the leader of its `__consumer_offsets`
//! partition. The topic is created on first use (`offsets.topic.num.partitions` partitions),
//! as Kafka does. Transaction coordinators do not exist yet: COORDINATOR_NOT_AVAILABLE.

use super::super::groups::{CONSUMER_OFFSETS, COORDINATOR_NOT_AVAILABLE};
use crate::broker::context::{Broker, Connection};
use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    find_coordinator_response::Coordinator,
    ApiKey, BrokerId, CreateTopicsRequest, FindCoordinatorRequest, FindCoordinatorResponse,
    RequestKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

const GROUP: i8 = 0;

async fn ensure_offsets_topic(broker: &Broker) {
    let has_leaders = |img: &crate::controller::MetadataImage| {
        img.topic_by_name(CONSUMER_OFFSETS)
            .is_some_and(|t| t.partitions.values().all(|p| p.leader >= 0))
    };
    if has_leaders(&broker.image()) {
        return;
    }
    if broker.image().topic_by_name(CONSUMER_OFFSETS).is_none() {
        let live = broker.image().unfenced_brokers().len().max(1);
        let wanted = broker.config.offsets_topic_replication_factor;
        let rf = wanted.min(live as i16);
        if rf < wanted {
            // As Kafka does for a cluster smaller than offsets.topic.replication.factor.
            tracing::warn!(
                wanted,
                brokers = live,
                "{CONSUMER_OFFSETS} gets {rf} replicas: fewer brokers than offsets.topic.replication.factor"
            );
        }
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(CONSUMER_OFFSETS)))
                .with_num_partitions(broker.groups.offsets_partitions)
                .with_replication_factor(rf)
                // As Kafka creates it: compacted, so a group's last commit is kept however
                // long the group is idle (retention alone would delete it).
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("cleanup.policy"))
                    .with_value(Some(StrBytes::from_static_str("compact")))])]);
        let answer = broker
            .controller
            .call(
                ApiKey::CreateTopics,
                7,
                &RequestKind::CreateTopics(request),
                Duration::from_secs(5),
            )
            .await;
        tracing::info!(created = answer.is_some(), "{CONSUMER_OFFSETS} requested");
    }
    broker
        .wait_for_image(Duration::from_secs(3), has_leaders)
        .await;
}

pub async fn handle(
    broker: &Broker,
    conn: &Connection,
    r: &FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if version >= 4 {
        r.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![r.key.to_string()]
    };
    if r.key_type == GROUP {
        ensure_offsets_topic(broker).await;
    }
    let image = broker.image();
    let coordinators: Vec<Coordinator> = keys
        .iter()
        .map(|key| {
            let answer = Coordinator::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            if r.key_type != GROUP {
                return answer
                    .with_error_code(COORDINATOR_NOT_AVAILABLE)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "transactions are not supported yet",
                    )));
            }
            let index = broker.groups.partition_of(key);
            let leader = image
                .topic_by_name(CONSUMER_OFFSETS)
                .and_then(|t| t.partitions.get(&index))
                .map_or(-1, |p| p.leader);
            let endpoint = image
                .brokers
                .get(&leader)
                .filter(|b| !b.fenced)
                .and_then(|b| {
                    b.endpoints
                        .iter()
                        .find(|e| e.name == conn.listener)
                        .cloned()
                });
            match endpoint {
                Some(e) => answer
                    .with_node_id(BrokerId(leader))
                    .with_host(StrBytes::from_string(e.host))
                    .with_port(i32::from(e.port)),
                None => answer
                    .with_error_code(COORDINATOR_NOT_AVAILABLE)
                    .with_error_message(Some(StrBytes::from_static_str(
                        "the group's coordinator is not available",
                    ))),
            }
        })
        .collect();
    if version >= 4 {
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    let Some(c) = coordinators.into_iter().next() else {
        return FindCoordinatorResponse::default();
    };
    FindCoordinatorResponse::default()
        .with_error_code(c.error_code)
        .with_error_message(if version >= 1 { c.error_message } else { None })
        .with_node_id(c.node_id)
        .with_host(c.host)
        .with_port(c.port)
}
