//! Kafka responses that more than one listener builds: the error answer to a controller
//! request (the active controller refusing it, or a broker that could not forward it), and
//! topic ids as the wire carries them. Sans-IO.

use kafka_protocol::messages::{
    create_partitions_response, create_topics_response, delete_topics_response,
    incremental_alter_configs_response, AllocateProducerIdsResponse, BrokerHeartbeatResponse,
    BrokerRegistrationResponse, CreatePartitionsResponse, CreateTopicsResponse,
    DeleteTopicsResponse, IncrementalAlterConfigsResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// A topic id as the wire carries it (our ids are Kafka's base64 form of the same 16 bytes).
pub fn wire_topic_id(id: &str) -> uuid::Uuid {
    crate::model::Uuid::parse(id).map_or(uuid::Uuid::nil(), |u| uuid::Uuid::from_bytes(u.0))
}

/// The error response to a controller request, or `None` for another request.
pub fn refusal(request: &RequestKind, code: i16, message: &str) -> Option<ResponseKind> {
    Some(match request {
        RequestKind::BrokerRegistration(_) => ResponseKind::BrokerRegistration(
            BrokerRegistrationResponse::default().with_error_code(code),
        ),
        RequestKind::BrokerHeartbeat(_) => {
            ResponseKind::BrokerHeartbeat(BrokerHeartbeatResponse::default().with_error_code(code))
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsResponse::default().with_responses(
                r.resources
                    .iter()
                    .map(|res| {
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(code)
                            .with_error_message(Some(StrBytes::from_string(message.to_string())))
                    })
                    .collect(),
            ),
        ),
        RequestKind::ElectLeaders(_) => ResponseKind::ElectLeaders(
            kafka_protocol::messages::ElectLeadersResponse::default().with_error_code(code),
        ),
        RequestKind::AlterPartition(_) => ResponseKind::AlterPartition(
            kafka_protocol::messages::AlterPartitionResponse::default().with_error_code(code),
        ),
        RequestKind::AllocateProducerIds(_) => ResponseKind::AllocateProducerIds(
            AllocateProducerIdsResponse::default().with_error_code(code),
        ),
        RequestKind::DeleteTopics(r) => {
            // v6 names topics by name or by id; the answer carries both as asked.
            let names: Vec<(Option<TopicName>, uuid::Uuid)> = if r.topics.is_empty() {
                r.topic_names
                    .iter()
                    .map(|n| (Some(n.clone()), uuid::Uuid::nil()))
                    .collect()
            } else {
                r.topics.iter().map(|t| (t.name.clone(), t.topic_id)).collect()
            };
            ResponseKind::DeleteTopics(
                DeleteTopicsResponse::default().with_responses(
                    names
                        .into_iter()
                        .map(|(n, id)| {
                            delete_topics_response::DeletableTopicResult::default()
                                .with_name(n)
                                .with_topic_id(id)
                                .with_error_code(code)
                                .with_error_message(Some(StrBytes::from_string(
                                    message.to_string(),
                                )))
                        })
                        .collect(),
                ),
            )
        }
        RequestKind::CreatePartitions(r) => ResponseKind::CreatePartitions(
            CreatePartitionsResponse::default().with_results(
                r.topics
                    .iter()
                    .map(|t| {
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code)
                            .with_error_message(Some(StrBytes::from_string(message.to_string())))
                    })
                    .collect(),
            ),
        ),
        RequestKind::CreateTopics(r) => ResponseKind::CreateTopics(
            CreateTopicsResponse::default().with_topics(
                r.topics
                    .iter()
                    .map(|t| {
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(TopicName(t.name.0.clone()))
                            .with_error_code(code)
                            .with_error_message(Some(StrBytes::from_string(message.to_string())))
                    })
                    .collect(),
            ),
        ),
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(
            kafka_protocol::messages::CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| {
                        kafka_protocol::messages::create_acls_response::AclCreationResult::default()
                            .with_error_code(code)
                            .with_error_message(Some(StrBytes::from_string(message.to_string())))
                    })
                    .collect(),
            ),
        ),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(
            kafka_protocol::messages::DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| {
                        kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(code)
                            .with_error_message(Some(StrBytes::from_string(message.to_string())))
                    })
                    .collect(),
            ),
        ),
        RequestKind::AlterUserScramCredentials(r) => {
            let mut users: Vec<StrBytes> = r
                .deletions
                .iter()
                .map(|d| d.name.clone())
                .chain(r.upsertions.iter().map(|u| u.name.clone()))
                .collect();
            users.sort();
            users.dedup();
            ResponseKind::AlterUserScramCredentials(
                kafka_protocol::messages::AlterUserScramCredentialsResponse::default()
                    .with_results(
                        users
                            .into_iter()
                            .map(|user| {
                                kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                                    .with_user(user)
                                    .with_error_code(code)
                                    .with_error_message(Some(StrBytes::from_string(message.to_string())))
                            })
                            .collect(),
                    ),
            )
        }
        _ => return None,
    })
}
