//! Metadata (3): brokers, topics and partitions from the committed metadata image, with each
//! broker's endpoint on the listener the client came in on. Unknown topics are created when
//! `auto.create.topics.enable` and the request allow it (through the active controller); the
//! answer then waits briefly for them to appear, so the client need not ask again.

use crate::broker::context::{Broker, Connection};
use crate::controller::{validate_topic_name, MetadataImage};
use crate::protocol::responses::wire_topic_id;
use crate::security::acl::{operation, resource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, metadata_response, ApiKey, BrokerId,
    CreateTopicsRequest, MetadataRequest, MetadataResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

const UNKNOWN_TOPIC_OR_PARTITION: i16 = ResponseError::UnknownTopicOrPartition.code();
const LEADER_NOT_AVAILABLE: i16 = ResponseError::LeaderNotAvailable.code();
const INVALID_TOPIC: i16 = ResponseError::InvalidTopicException.code();

/// The internal topic holding consumer offsets.
pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";

/// Live brokers' endpoints on `listener`, as (id, host, port, rack).
pub fn live_brokers(
    image: &MetadataImage,
    listener: &str,
) -> Vec<(i32, String, u16, Option<String>)> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .filter_map(|b| {
            let e = b.endpoints.iter().find(|e| e.name == listener)?;
            Some((b.broker_id, e.host.clone(), e.port, b.rack.clone()))
        })
        .collect()
}

pub async fn handle(
    broker: &Broker,
    conn: &Connection,
    r: &MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let mut image = broker.image();
    if let Some(topics) = &r.topics {
        let missing: Vec<String> = topics
            .iter()
            .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
            .filter(|n| image.topic_by_name(n).is_none() && validate_topic_name(n).is_ok())
            .filter(|n| !crate::model::is_internal_topic(n))
            // Auto-creation needs CREATE on the cluster or the topic, as in Kafka.
            .filter(|n| {
                broker.may_on_cluster(conn, operation::CREATE)
                    || broker.may(conn, resource::TOPIC, n, operation::CREATE)
            })
            .collect();
        if !missing.is_empty() && r.allow_auto_topic_creation && broker.config.auto_create_topics {
            create_topics(broker, &missing).await;
            broker
                .wait_for_image(Duration::from_secs(3), |img| {
                    missing.iter().all(|n| {
                        img.topic_by_name(n)
                            .is_some_and(|t| t.partitions.values().all(|p| p.leader >= 0))
                    })
                })
                .await;
            image = broker.image();
        }
    }
    let brokers = live_brokers(&image, &conn.listener);
    let response = MetadataResponse::default()
        .with_cluster_id(
            (version >= 2).then(|| StrBytes::from_string(broker.config.cluster_id.clone())),
        )
        .with_controller_id(BrokerId(brokers.first().map_or(-1, |b| b.0)))
        .with_brokers(
            brokers
                .iter()
                .map(|(id, host, port, rack)| {
                    metadata_response::MetadataResponseBroker::default()
                        .with_node_id(BrokerId(*id))
                        .with_host(StrBytes::from_string(host.clone()))
                        .with_port(i32::from(*port))
                        .with_rack(rack.clone().map(StrBytes::from_string))
                })
                .collect(),
        );
    // Topics the principal may not DESCRIBE: left out of a list of all topics, answered
    // TOPIC_AUTHORIZATION_FAILED when named (as Kafka's broker does).
    let names: Vec<(Option<String>, uuid::Uuid)> = match &r.topics {
        None => image
            .topics
            .values()
            .filter(|t| broker.may(conn, resource::TOPIC, &t.name, operation::DESCRIBE))
            .map(|t| (Some(t.name.clone()), uuid::Uuid::nil()))
            .collect(),
        Some(list) => list
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect(),
    };
    let mut topics = Vec::with_capacity(names.len());
    for (name, id) in names {
        let found = match &name {
            Some(n) => image.topic_by_name(n),
            None => image
                .topics
                .values()
                .find(|t| wire_topic_id(&t.topic_id) == id),
        };
        // Fields newer than the request's version must keep their defaults: the encoder
        // refuses anything else (topic ids from v10, leader epochs from v7, offline replicas
        // from v5).
        let mut topic = metadata_response::MetadataResponseTopic::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(if version >= 10 { id } else { uuid::Uuid::nil() });
        let denied =
            found.is_some_and(|t| !broker.may(conn, resource::TOPIC, &t.name, operation::DESCRIBE));
        match found {
            Some(_) if denied => {
                topic = topic
                    .with_topic_id(uuid::Uuid::nil())
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code());
            }
            None => {
                let invalid = name
                    .as_deref()
                    .is_some_and(|n| validate_topic_name(n).is_err());
                topic = topic.with_error_code(if invalid {
                    INVALID_TOPIC
                } else {
                    UNKNOWN_TOPIC_OR_PARTITION
                });
            }
            Some(t) => {
                let alive = |b: &i32| image.brokers.get(b).is_some_and(|b| !b.fenced);
                topic = topic
                    .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
                    .with_topic_id(if version >= 10 {
                        wire_topic_id(&t.topic_id)
                    } else {
                        uuid::Uuid::nil()
                    })
                    .with_is_internal(crate::model::is_internal_topic(&t.name))
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|(index, p)| {
                                metadata_response::MetadataResponsePartition::default()
                                    .with_error_code(if p.leader < 0 {
                                        LEADER_NOT_AVAILABLE
                                    } else {
                                        0
                                    })
                                    .with_partition_index(*index)
                                    .with_leader_id(BrokerId(p.leader))
                                    .with_leader_epoch(if version >= 7 {
                                        p.leader_epoch
                                    } else {
                                        -1
                                    })
                                    .with_replica_nodes(
                                        p.replicas.iter().map(|b| BrokerId(*b)).collect(),
                                    )
                                    .with_isr_nodes(p.isr.iter().map(|b| BrokerId(*b)).collect())
                                    .with_offline_replicas(
                                        p.replicas
                                            .iter()
                                            .filter(|b| version >= 5 && !alive(b))
                                            .map(|b| BrokerId(*b))
                                            .collect(),
                                    )
                            })
                            .collect(),
                    );
            }
        }
        topics.push(topic);
    }
    response.with_topics(topics)
}

/// Asks the active controller to create `names` with the cluster's defaults.
pub async fn create_topics(broker: &Broker, names: &[String]) {
    let request = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(
            names
                .iter()
                .map(|n| {
                    CreatableTopic::default()
                        .with_name(TopicName(StrBytes::from_string(n.clone())))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1)
                })
                .collect(),
        );
    match broker
        .controller
        .call(
            ApiKey::CreateTopics,
            7,
            &RequestKind::CreateTopics(request),
            Duration::from_secs(5),
        )
        .await
    {
        Some(ResponseKind::CreateTopics(r)) => {
            for t in r.topics {
                if t.error_code == 0 {
                    tracing::info!(topic = %t.name.0, "topic auto-created");
                } else if t.error_code != 36 {
                    tracing::warn!(topic = %t.name.0, code = t.error_code, "auto-creation refused");
                }
            }
        }
        _ => tracing::warn!("auto topic creation: no active controller answered"),
    }
}
