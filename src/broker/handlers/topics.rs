//! CreateTopics (19), DeleteTopics (20), CreatePartitions (37), IncrementalAlterConfigs (44),
//! ElectLeaders (43), AlterUserScramCredentials (51): decided by the active
//! controller, so the request is forwarded to it unchanged (same version: the controller
//! listener implements the same ranges). On success the answer waits, within the request's
//! timeout, until this broker's image shows the change, so a Metadata request right after
//! sees it. With an authorizer, requests naming several topics (or configs) are split: the
//! authorized part is forwarded and the rest answered beside it with its authorization error.

use crate::broker::context::{Broker, Connection};
use crate::protocol::frame::Request;
use crate::protocol::responses::refusal;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use std::time::Duration;

const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();

/// The refusal of a request decided whole that the client may not make (checked before it is
/// forwarded). Requests naming several topics or configs are split instead ([`split`]).
fn unauthorized(broker: &Broker, conn: &Connection, request: &Request) -> Option<(i16, String)> {
    use crate::security::acl::operation as op;
    const CLUSTER: i16 = ResponseError::ClusterAuthorizationFailed.code();
    let cluster = |o: i8| broker.may_on_cluster(conn, o);
    match &request.body {
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

/// The resources of a request that the client may not touch, with the refusal they get.
type Denied = Vec<(RequestKind, i16, String)>;

/// Kafka answers CreateTopics, DeleteTopics, CreatePartitions and IncrementalAlterConfigs per
/// resource: the authorized part of the request goes to the controller and each unauthorized
/// topic (or broker config) gets its own TOPIC_AUTHORIZATION_FAILED (CLUSTER_AUTHORIZATION_FAILED)
/// beside the others' results. Returns the part to forward (`None`: nothing is left to forward)
/// and the refused parts; other requests are forwarded unchanged.
fn split(broker: &Broker, conn: &Connection, body: &RequestKind) -> (Option<RequestKind>, Denied) {
    use crate::security::acl::{operation as op, resource};
    const TOPIC: i16 = ResponseError::TopicAuthorizationFailed.code();
    const CLUSTER: i16 = ResponseError::ClusterAuthorizationFailed.code();
    let topic = |name: &str, o: i8| broker.may(conn, resource::TOPIC, name, o);
    let why = |o: i8, on: &str| {
        format!(
            "{} on {on} is not authorized",
            crate::security::acl::operation_name(o)
        )
    };
    let whole = || (Some(body.clone()), Vec::new());
    if broker.authorizer().is_none() {
        return whole();
    }
    match body {
        RequestKind::CreateTopics(r) => {
            if broker.may_on_cluster(conn, op::CREATE) {
                return whole();
            }
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .iter()
                .cloned()
                .partition(|t| topic(&t.name, op::CREATE));
            let denied = (!no.is_empty()).then(|| {
                (
                    RequestKind::CreateTopics(r.clone().with_topics(no)),
                    TOPIC,
                    why(op::CREATE, "the topic"),
                )
            });
            let allowed =
                (!ok.is_empty()).then(|| RequestKind::CreateTopics(r.clone().with_topics(ok)));
            (allowed, denied.into_iter().collect())
        }
        // Topics named by id (v6) are checked under the name this broker's image gives them;
        // an id it does not know is the controller's to refuse (UNKNOWN_TOPIC_ID).
        RequestKind::DeleteTopics(r) => {
            let image = broker.image();
            let name_of =
                |t: &kafka_protocol::messages::delete_topics_request::DeleteTopicState| {
                    t.name.as_ref().map(|n| n.0.to_string()).or_else(|| {
                        image
                            .topics
                            .values()
                            .find(|x| {
                                crate::protocol::responses::wire_topic_id(&x.topic_id) == t.topic_id
                            })
                            .map(|x| x.name.clone())
                    })
                };
            let (names_ok, names_no): (Vec<_>, Vec<_>) = r
                .topic_names
                .iter()
                .cloned()
                .partition(|n| topic(n, op::DELETE));
            let (ids_ok, ids_no): (Vec<_>, Vec<_>) = r
                .topics
                .iter()
                .cloned()
                .partition(|t| name_of(t).is_none_or(|n| topic(&n, op::DELETE)));
            let denied = (!names_no.is_empty() || !ids_no.is_empty()).then(|| {
                (
                    RequestKind::DeleteTopics(
                        r.clone().with_topic_names(names_no).with_topics(ids_no),
                    ),
                    TOPIC,
                    why(op::DELETE, "the topic"),
                )
            });
            let allowed = (!names_ok.is_empty() || !ids_ok.is_empty()).then(|| {
                RequestKind::DeleteTopics(r.clone().with_topic_names(names_ok).with_topics(ids_ok))
            });
            (allowed, denied.into_iter().collect())
        }
        RequestKind::CreatePartitions(r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .iter()
                .cloned()
                .partition(|t| topic(&t.name, op::ALTER));
            let denied = (!no.is_empty()).then(|| {
                (
                    RequestKind::CreatePartitions(r.clone().with_topics(no)),
                    TOPIC,
                    why(op::ALTER, "the topic"),
                )
            });
            let allowed =
                (!ok.is_empty()).then(|| RequestKind::CreatePartitions(r.clone().with_topics(ok)));
            (allowed, denied.into_iter().collect())
        }
        // Topic configs need ALTER_CONFIGS on the topic, broker and broker-logger configs on
        // the cluster; other resource types are the controller's to answer.
        RequestKind::IncrementalAlterConfigs(r) => {
            let cluster_ok = broker.may_on_cluster(conn, op::ALTER_CONFIGS);
            let mut ok = Vec::new();
            let mut no_topic = Vec::new();
            let mut no_cluster = Vec::new();
            for res in &r.resources {
                match res.resource_type {
                    2 if !topic(&res.resource_name, op::ALTER_CONFIGS) => {
                        no_topic.push(res.clone())
                    }
                    4 | 8 if !cluster_ok => no_cluster.push(res.clone()),
                    _ => ok.push(res.clone()),
                }
            }
            let mut denied = Vec::new();
            if !no_topic.is_empty() {
                denied.push((
                    RequestKind::IncrementalAlterConfigs(r.clone().with_resources(no_topic)),
                    TOPIC,
                    why(op::ALTER_CONFIGS, "the topic"),
                ));
            }
            if !no_cluster.is_empty() {
                denied.push((
                    RequestKind::IncrementalAlterConfigs(r.clone().with_resources(no_cluster)),
                    CLUSTER,
                    why(op::ALTER_CONFIGS, "the cluster"),
                ));
            }
            let allowed = (!ok.is_empty())
                .then(|| RequestKind::IncrementalAlterConfigs(r.clone().with_resources(ok)));
            (allowed, denied)
        }
        _ => whole(),
    }
}

/// Adds the refused resources' results to the controller's answer (or to an empty answer of
/// the same kind when nothing was forwarded).
fn merge(answer: Option<ResponseKind>, denied: &Denied) -> Option<ResponseKind> {
    let mut answer = answer;
    for (req, code, why) in denied {
        let Some(refused) = refusal(req, *code, why) else {
            continue;
        };
        answer = Some(match (answer, refused) {
            (None, refused) => refused,
            (Some(ResponseKind::CreateTopics(mut a)), ResponseKind::CreateTopics(b)) => {
                a.topics.extend(b.topics);
                ResponseKind::CreateTopics(a)
            }
            (Some(ResponseKind::DeleteTopics(mut a)), ResponseKind::DeleteTopics(b)) => {
                a.responses.extend(b.responses);
                ResponseKind::DeleteTopics(a)
            }
            (Some(ResponseKind::CreatePartitions(mut a)), ResponseKind::CreatePartitions(b)) => {
                a.results.extend(b.results);
                ResponseKind::CreatePartitions(a)
            }
            (
                Some(ResponseKind::IncrementalAlterConfigs(mut a)),
                ResponseKind::IncrementalAlterConfigs(b),
            ) => {
                a.responses.extend(b.responses);
                ResponseKind::IncrementalAlterConfigs(a)
            }
            // Only the four kinds above are split.
            (Some(a), _) => a,
        });
    }
    answer
}

pub async fn handle(broker: &Broker, conn: &Connection, request: &Request) -> ResponseKind {
    if let Some((code, why)) = unauthorized(broker, conn, request) {
        return refusal(&request.body, code, &why)
            .unwrap_or(ResponseKind::ApiVersions(Default::default()));
    }
    let (allowed, denied) = split(broker, conn, &request.body);
    let answer = match allowed {
        Some(body) => Some(forward(broker, request.api_key, request.version, &body).await),
        None => None,
    };
    merge(answer, &denied).unwrap_or(ResponseKind::ApiVersions(Default::default()))
}

/// Forwards `body` to the active controller and, on success, waits (within the request's
/// timeout) until this broker's image shows the change.
async fn forward(
    broker: &Broker,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    body: &RequestKind,
) -> ResponseKind {
    let timeout_ms = match body {
        RequestKind::CreateTopics(r) => r.timeout_ms,
        RequestKind::DeleteTopics(r) => r.timeout_ms,
        RequestKind::CreatePartitions(r) => r.timeout_ms,
        RequestKind::ElectLeaders(r) => r.timeout_ms,
        _ => 30_000,
    };
    let timeout = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0).clamp(1000, 60_000));
    let answer = broker
        .controller
        .call(api_key, version, body, timeout)
        .await;
    let Some(answer) = answer else {
        return refusal(
            body,
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
            let RequestKind::IncrementalAlterConfigs(req) = body else {
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
            let RequestKind::AlterUserScramCredentials(req) = body else {
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
            let RequestKind::CreateAcls(req) = body else {
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
            let RequestKind::CreatePartitions(req) = body else {
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
