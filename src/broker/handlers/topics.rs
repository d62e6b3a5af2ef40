//! CreateTopics (19), DeleteTopics (20), CreatePartitions (37), IncrementalAlterConfigs (44),
//! ElectLeaders (43), AlterUserScramCredentials (51): decided by the active
//! controller, so the request is forwarded to it unchanged (same version: the controller
//! listener implements the same ranges). On success the answer waits, within the request's
//! timeout, until this broker's image shows the change, so a Metadata request right after
//! sees it.

use crate::broker::context::Broker;
use crate::protocol::frame::Request;
use crate::protocol::responses::refusal;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{RequestKind, ResponseKind};
use std::time::Duration;

const REQUEST_TIMED_OUT: i16 = ResponseError::RequestTimedOut.code();

pub async fn handle(broker: &Broker, request: &Request) -> ResponseKind {
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
