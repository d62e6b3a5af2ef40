//! FindCoordinator (10): a group's coordinator (key type 0) is the leader of its
//! `__consumer_offsets` partition, a transactional id's (key type 1) the leader of its
//! `__transaction_state` partition. Each topic is created on first use, as Kafka does:
//! `offsets.topic.*` and `transaction.state.log.*` give partitions, replication factor (at most
//! the live brokers) and, for the state log, `min.insync.replicas`; both are compacted.

use super::super::groups::{CONSUMER_OFFSETS, COORDINATOR_NOT_AVAILABLE};
use crate::broker::context::{Broker, Connection};
use crate::model::TRANSACTION_STATE;
use kafka_protocol::messages::{
    create_topics_request::{CreatableTopic, CreatableTopicConfig},
    find_coordinator_response::Coordinator,
    ApiKey, BrokerId, CreateTopicsRequest, FindCoordinatorRequest, FindCoordinatorResponse,
    RequestKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// Creates `__consumer_offsets` unless it exists, and waits for its leaders.
pub async fn ensure_offsets_topic(broker: &Broker) {
    ensure_internal_topic(
        broker,
        CONSUMER_OFFSETS,
        broker.groups.offsets_partitions,
        broker.config.offsets_topic_replication_factor,
        None,
    )
    .await
}

/// Creates `__transaction_state` unless it exists, and waits for its leaders.
pub async fn ensure_transaction_topic(broker: &Broker) {
    ensure_internal_topic(
        broker,
        TRANSACTION_STATE,
        broker.transactions.state_partitions,
        broker.config.transaction_state_replication_factor,
        Some(broker.config.transaction_state_min_isr),
    )
    .await
}

async fn ensure_internal_topic(
    broker: &Broker,
    name: &'static str,
    partitions: i32,
    wanted: i16,
    min_isr: Option<i32>,
) {
    let has_leaders = |img: &crate::controller::MetadataImage| {
        img.topic_by_name(name)
            .is_some_and(|t| t.partitions.values().all(|p| p.leader >= 0))
    };
    if has_leaders(&broker.image()) {
        return;
    }
    // A restarted broker replays old metadata from its disk first: a topic missing there may
    // well exist (it asked the controller for a second `__consumer_offsets` of one replica,
    // which the controller refused). Until it has caught up, the answer is
    // COORDINATOR_NOT_AVAILABLE and the client asks again.
    if !broker.partitions.caught_up() {
        return;
    }
    if broker.image().topic_by_name(name).is_none() {
        let live = broker.image().unfenced_brokers().len().max(1);
        let rf = wanted.min(live as i16);
        if rf < wanted {
            // As Kafka does for a cluster smaller than the replication factor asked for.
            tracing::warn!(
                wanted,
                brokers = live,
                "{name} gets {rf} replicas: fewer brokers than its replication factor"
            );
        }
        // As Kafka creates them: compacted, so a group's last commit or a transactional id's
        // state is kept however long it is idle (retention alone would delete it).
        let mut configs = vec![CreatableTopicConfig::default()
            .with_name(StrBytes::from_static_str("cleanup.policy"))
            .with_value(Some(StrBytes::from_static_str("compact")))];
        if let Some(min_isr) = min_isr {
            // Never more than the replicas it gets, or no write could ever be stored.
            let min_isr = min_isr.min(i32::from(rf)).max(1);
            configs.push(
                CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                    .with_value(Some(StrBytes::from_string(min_isr.to_string()))),
            );
        }
        let request = CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(name)))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(configs)]);
        let answer = broker
            .controller
            .call(
                ApiKey::CreateTopics,
                7,
                &RequestKind::CreateTopics(request),
                Duration::from_secs(5),
            )
            .await;
        tracing::info!(created = answer.is_some(), "{name} requested");
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
    match r.key_type {
        GROUP => ensure_offsets_topic(broker).await,
        TRANSACTION => ensure_transaction_topic(broker).await,
        _ => {}
    }
    let image = broker.image();
    let coordinators: Vec<Coordinator> = keys
        .iter()
        .map(|key| {
            let answer = Coordinator::default()
                .with_key(StrBytes::from_string(key.clone()))
                .with_node_id(BrokerId(-1))
                .with_port(-1);
            // DESCRIBE on the group or transactional id, as Kafka checks it.
            let (kind, denied_code) = match r.key_type {
                GROUP => (
                    crate::security::acl::resource::GROUP,
                    kafka_protocol::error::ResponseError::GroupAuthorizationFailed.code(),
                ),
                _ => (
                    crate::security::acl::resource::TRANSACTIONAL_ID,
                    kafka_protocol::error::ResponseError::TransactionalIdAuthorizationFailed.code(),
                ),
            };
            if (r.key_type == GROUP || r.key_type == TRANSACTION)
                && !broker.may(conn, kind, key, crate::security::acl::operation::DESCRIBE)
            {
                return answer.with_error_code(denied_code);
            }
            let (topic, index) = match r.key_type {
                GROUP => (CONSUMER_OFFSETS, broker.groups.partition_of(key)),
                TRANSACTION => (TRANSACTION_STATE, broker.transactions.partition_of(key)),
                _ => {
                    return answer
                        .with_error_code(
                            kafka_protocol::error::ResponseError::InvalidRequest.code(),
                        )
                        .with_error_message(Some(StrBytes::from_static_str(
                            "unknown coordinator key type",
                        )))
                }
            };
            let leader = image
                .topic_by_name(topic)
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
                        "the coordinator is not available",
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
