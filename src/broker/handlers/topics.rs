//! CreateTopics (19), DeleteTopics (20), CreatePartitions (37), IncrementalAlterConfigs (44),
//! ElectLeaders (43), AlterUserScramCredentials (51): decided by the active
//! controller, so the request is forwarded to it unchanged (same version: the controller
//! listener implements the same ranges). On success the answer waits, within the request's
//! timeout, until this broker's image shows the change, so a Metadata request right after
//! sees it.

use crate::broker::context::{Broker, Connection};
use crate::protocol::frame::Request;
use crate::protocol::responses::refusal;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use std::time::Duration;

const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();

/// The refusal of a request the client may not make (checked before it is forwarded): a
/// request naming several resources is refused whole if any one is not authorized.
fn unauthorized(broker: &Broker, conn: &Connection, request: &Request) -> Option<(i16, String)> {
    use crate::security::acl::{operation as op, resource};
    const TOPIC: i16 = ResponseError::TopicAuthorizationFailed.code();
    const CLUSTER: i16 = ResponseError::ClusterAuthorizationFailed.code();
    let topic = |name: &str, o: i8| broker.may(conn, resource::TOPIC, name, o);
    let cluster = |o: i8| broker.may_on_cluster(conn, o);
    let first_denied = |names: Vec<String>, o: i8| {
        names.into_iter().find(|n| !topic(n, o)).map(|n| {
            (
                TOPIC,
                format!(
                    "{} on topic {n} is not authorized",
                    crate::security::acl::operation_name(o)
                ),
            )
        })
    };
    match &request.body {
        RequestKind::CreateTopics(r) if !cluster(op::CREATE) => first_denied(
            r.topics.iter().map(|t| t.name.0.to_string()).collect(),
            op::CREATE,
        ),
        // Topics named by id (v6) are checked under the name this broker's image gives them;
        // an id it does not know is the controller's to refuse (UNKNOWN_TOPIC_ID).
        RequestKind::DeleteTopics(r) => {
            let image = broker.image();
            let by_id = |id: &uuid::Uuid| {
                image
                    .topics
                    .values()
                    .find(|t| crate::protocol::responses::wire_topic_id(&t.topic_id) == *id)
                    .map(|t| t.name.clone())
            };
            first_denied(
                r.topic_names
                    .iter()
                    .map(|n| n.0.to_string())
                    .chain(r.topics.iter().filter_map(|t| match &t.name {
                        Some(n) => Some(n.0.to_string()),
                        None => by_id(&t.topic_id),
                    }))
                    .collect(),
                op::DELETE,
            )
        }
        RequestKind::CreatePartitions(r) => first_denied(
            r.topics.iter().map(|t| t.name.0.to_string()).collect(),
            op::ALTER,
        ),
        RequestKind::IncrementalAlterConfigs(r) => {
            let topics: Vec<String> = r
                .resources
                .iter()
                .filter(|res| res.resource_type == 2)
                .map(|res| res.resource_name.to_string())
                .collect();
            let brokers = r.resources.iter().any(|res| res.resource_type == 4);
            if brokers && !cluster(op::ALTER_CONFIGS) {
                Some((
                    CLUSTER,
                    "ALTER_CONFIGS on the cluster is not authorized".into(),
                ))
            } else {
                first_denied(topics, op::ALTER_CONFIGS)
            }
        }
        RequestKind::ElectLeaders(_) | RequestKind::AlterUserScramCredentials(_)
            if !cluster(op::ALTER) =>
        {
            Some((CLUSTER, "ALTER on the cluster is not authorized".into()))
        }
        RequestKind::CreateAcls(_) | RequestKind::DeleteAcls(_)
            if broker.authorizer().is_none() =>
        {
            Some((
                ResponseError::SecurityDisabled.code(),
                "no authorizer is configured".into(),
            ))
        }
        RequestKind::CreateAcls(_) | RequestKind::DeleteAcls(_) if !cluster(op::ALTER) => {
            Some((CLUSTER, "ALTER on the cluster is not authorized".into()))
        }
        _ => None,
    }
}

pub async fn handle(broker: &Broker, conn: &Connection, request: &Request) -> ResponseKind {
    if let Some((code, why)) = unauthorized(broker, conn, request) {
        return refusal(&request.body, code, &why)
            .unwrap_or(ResponseKind::ApiVersions(Default::default()));
    }
    let timeout_ms = match &request.body {
        RequestKind::CreateTopics(r) => r.timeout_ms,
        RequestKind::DeleteTopics(r) => r.timeout_ms,
        RequestKind::CreatePartitions(r) => r.timeout_ms,
        RequestKind::ElectLeaders(r) => r.timeout_ms,
        _ => 30_000,
    };
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).clamp(1000, 60_000));
    let answer = broker
        .controller
        .call(request.api_key, request.version, &request.body, timeout)
        .await;
    let Some(answer) = answer else {
        return refusal(
            &request.body,
            REQUEST_TIMED_OUT,
            "no active controller answered in time",
        )
        .unwrap_or(ResponseKind::ApiVersions(Default::default()));
    };
    // Wait for the committed change to reach this broker's image.
    match &answer {
        ResponseKind::CreateTopics(r) => {
            let made: Vec<String> = r
                .topics
                .iter()
                .filter(|t| t.error_code == 0)
                .map(|t| t.name.0.to_string())
                .collect();
            broker
                .wait_for_image(timeout, |img| {
                    made.iter().all(|n| img.topic_by_name(n).is_some())
                })
                .await;
        }
        ResponseKind::DeleteTopics(r) => {
            let gone: Vec<String> = r
                .responses
                .iter()
                .filter(|t| t.error_code == 0)
                .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                .collect();
            broker
                .wait_for_image(timeout, |img| {
                    gone.iter().all(|n| img.topic_by_name(n).is_none())
                })
                .await;
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            let RequestKind::IncrementalAlterConfigs(req) = &request.body else {
                return answer;
            };
            // Each altered resource's configs, as the image must show them.
            let wanted: Vec<(String, String, String, Option<String>)> = req
                .resources
                .iter()
                .filter(|res| {
                    r.responses
                        .iter()
                        .any(|x| x.resource_name == res.resource_name && x.error_code == 0)
                })
                .flat_map(|res| {
                    let resource = if res.resource_type == 4 {
                        "broker"
                    } else {
                        "topic"
                    };
                    res.configs.iter().map(move |c| {
                        (
                            resource.to_string(),
                            res.resource_name.to_string(),
                            c.name.to_string(),
                            (c.config_operation == 0)
                                .then(|| c.value.as_ref().map(|v| v.to_string()))
                                .flatten(),
                        )
                    })
                })
                .collect();
            if !req.validate_only {
                broker
                    .wait_for_image(timeout, |img| {
                        wanted.iter().all(|(resource, name, key, value)| {
                            img.configs
                                .get(&(resource.clone(), name.clone()))
                                .and_then(|c| c.get(key))
                                == value.as_ref()
                        })
                    })
                    .await;
            }
        }
        ResponseKind::AlterUserScramCredentials(r) => {
            let RequestKind::AlterUserScramCredentials(req) = &request.body else {
                return answer;
            };
            let done = |user: &str| {
                r.results
                    .iter()
                    .any(|x| x.user.as_str() == user && x.error_code == 0)
            };
            // (user, mechanism) → whether the image must hold a credential.
            let wanted: Vec<(String, i8, bool)> = req
                .deletions
                .iter()
                .filter(|d| done(&d.name))
                .map(|d| (d.name.to_string(), d.mechanism, false))
                .chain(
                    req.upsertions
                        .iter()
                        .filter(|u| done(&u.name))
                        .map(|u| (u.name.to_string(), u.mechanism, true)),
                )
                .collect();
            broker
                .wait_for_image(timeout, |img| {
                    wanted
                        .iter()
                        .all(|(u, m, present)| img.scram.contains_key(&(u.clone(), *m)) == *present)
                })
                .await;
        }
        ResponseKind::CreateAcls(r) => {
            let RequestKind::CreateAcls(req) = &request.body else {
                return answer;
            };
            let made: Vec<(i8, String, i8, String, String, i8, i8)> = req
                .creations
                .iter()
                .zip(&r.results)
                .filter(|(_, res)| res.error_code == 0)
                .map(|(c, _)| {
                    (
                        c.resource_type,
                        c.resource_name.to_string(),
                        c.resource_pattern_type,
                        c.principal.to_string(),
                        c.host.to_string(),
                        c.operation,
                        c.permission_type,
                    )
                })
                .collect();
            broker
                .wait_for_image(timeout, |img| {
                    made.iter().all(|m| {
                        img.acls.values().any(|a| {
                            (
                                a.resource_type,
                                a.resource_name.clone(),
                                a.pattern_type,
                                a.principal.clone(),
                                a.host.clone(),
                                a.operation,
                                a.permission_type,
                            ) == *m
                        })
                    })
                })
                .await;
        }
        ResponseKind::DeleteAcls(r) => {
            let gone: Vec<(i8, String, i8, String, String, i8, i8)> = r
                .filter_results
                .iter()
                .flat_map(|f| f.matching_acls.iter())
                .map(|m| {
                    (
                        m.resource_type,
                        m.resource_name.to_string(),
                        m.pattern_type,
                        m.principal.to_string(),
                        m.host.to_string(),
                        m.operation,
                        m.permission_type,
                    )
                })
                .collect();
            broker
                .wait_for_image(timeout, |img| {
                    !img.acls.values().any(|a| {
                        gone.contains(&(
                            a.resource_type,
                            a.resource_name.clone(),
                            a.pattern_type,
                            a.principal.clone(),
                            a.host.clone(),
                            a.operation,
                            a.permission_type,
                        ))
                    })
                })
                .await;
        }
        ResponseKind::CreatePartitions(r) => {
            let RequestKind::CreatePartitions(req) = &request.body else {
                return answer;
            };
            let grown: Vec<(String, i32)> = req
                .topics
                .iter()
                .filter(|t| {
                    r.results
                        .iter()
                        .any(|x| x.name == t.name && x.error_code == 0)
                })
                .map(|t| (t.name.0.to_string(), t.count))
                .collect();
            broker
                .wait_for_image(timeout, |img| {
                    grown.iter().all(|(n, count)| {
                        img.topic_by_name(n)
                            .is_some_and(|t| t.partitions.len() as i32 >= *count)
                    })
                })
                .await;
        }
        _ => {}
    }
    answer
}
