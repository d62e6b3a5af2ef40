//! Client-side commands of the `ketch` binary that speak Kafka's protocol to a running node
//! (as Kafka's shell scripts do): `metadata-quorum describe`, `topics`, `console-producer`,
//! `console-consumer`, `consumer-groups`, `transactions`.

use kafka_protocol::error::ResponseError;
pub mod acls;
pub mod args;
pub mod configs;

pub mod console;
pub mod groups;
pub mod perf;
pub mod tools;
pub mod transactions;

use crate::model::METADATA_TOPIC;
use crate::protocol::frame::{decode_response, encode_request};
use crate::runtime::net::{read_frame, write_frame};
use crate::runtime::{self, Clock};
use kafka_protocol::messages::{
    describe_quorum_request, ApiKey, DescribeQuorumRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

const DESCRIBE_QUORUM_VERSION: i16 = 2;

/// `ketch metadata-quorum --bootstrap-server HOST:PORT describe [--status] [--replication]`,
/// printed as Kafka's `kafka-metadata-quorum.sh` prints it.
pub fn describe_quorum(
    bootstrap: &str,
    status: bool,
    replication: bool,
    local: bool,
) -> Result<(), String> {
    let response = runtime::block_on(async {
        let mut stream = tokio::time::timeout(
            Duration::from_secs(10),
            crate::client::tools_connector().connect(bootstrap),
        )
        .await
        .map_err(|_| format!("connecting to {bootstrap} timed out"))?
        .map_err(|e| format!("cannot connect to {bootstrap}: {e}"))?;
        let body = RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
                    .with_partitions(vec![
                        describe_quorum_request::PartitionData::default().with_partition_index(0)
                    ]),
            ]));
        let frame = encode_request(
            1,
            if local {
                crate::wire::NO_FORWARD_CLIENT_ID
            } else {
                "ketch-metadata-quorum"
            },
            ApiKey::DescribeQuorum,
            DESCRIBE_QUORUM_VERSION,
            &body,
        )
        .map_err(|e| e.to_string())?;
        write_frame(&mut stream, &frame)
            .await
            .map_err(|e| e.to_string())?;
        let answer =
            tokio::time::timeout(Duration::from_secs(5), read_frame(&mut stream, 16 << 20))
                .await
                .map_err(|_| "no answer in 5 s".to_string())?
                .map_err(|e| e.to_string())?
                .ok_or("the node closed the connection")?;
        decode_response(ApiKey::DescribeQuorum, DESCRIBE_QUORUM_VERSION, answer)
            .map_err(|e| e.to_string())
    })
    .map_err(|e| e.to_string())??;
    let ResponseKind::DescribeQuorum(r) = response.1 else {
        return Err("not a DescribeQuorum response".into());
    };
    if r.error_code != 0 {
        return Err(format!(
            "{} ({})",
            crate::client::error_name(r.error_code),
            r.error_message.as_deref().unwrap_or("")
        ));
    }
    let p = r
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == 0)
        .ok_or("the response names no metadata partition")?;
    let from_follower = p.error_code == 6;
    let leader_end = p
        .current_voters
        .iter()
        .find(|v| v.replica_id == p.leader_id)
        .map_or(-1, |v| v.log_end_offset);
    let now = Clock::system().wall_ms();
    if status {
        let lags: Vec<i64> = p
            .current_voters
            .iter()
            .filter(|v| v.replica_id != p.leader_id && v.log_end_offset >= 0)
            .map(|v| (leader_end - v.log_end_offset).max(0))
            .collect();
        let lag_ms: Vec<i64> = p
            .current_voters
            .iter()
            .filter(|v| v.replica_id != p.leader_id && v.last_caught_up_timestamp >= 0)
            .map(|v| (now - v.last_caught_up_timestamp).max(0))
            .collect();
        let ids = |v: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
            v.iter()
                .map(|r| r.replica_id.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        println!("LeaderId:               {}", p.leader_id.0);
        println!("LeaderEpoch:            {}", p.leader_epoch);
        println!("HighWatermark:          {}", p.high_watermark);
        if from_follower {
            println!("MaxFollowerLag:         unknown (answered by a follower; ask the leader)");
            println!("MaxFollowerLagTimeMs:   unknown");
        } else {
            println!(
                "MaxFollowerLag:         {}",
                lags.iter().max().copied().unwrap_or(0)
            );
            println!(
                "MaxFollowerLagTimeMs:   {}",
                lag_ms.iter().max().copied().unwrap_or(0)
            );
        }
        println!("CurrentVoters:          [{}]", ids(&p.current_voters));
        println!("CurrentObservers:       [{}]", ids(&p.observers));
    }
    if replication {
        println!("NodeId\tLogEndOffset\tLag\tLastFetchTimestamp\tLastCaughtUpTimestamp\tStatus");
        for (v, kind) in p
            .current_voters
            .iter()
            .map(|v| (v, "Follower"))
            .chain(p.observers.iter().map(|v| (v, "Observer")))
        {
            let status = if v.replica_id == p.leader_id {
                "Leader"
            } else {
                kind
            };
            let lag = if v.log_end_offset >= 0 && leader_end >= 0 {
                (leader_end - v.log_end_offset).max(0).to_string()
            } else {
                "unknown".into()
            };
            println!(
                "{}\t{}\t{}\t{}\t{}\t{}",
                v.replica_id.0,
                v.log_end_offset,
                lag,
                v.last_fetch_timestamp,
                v.last_caught_up_timestamp,
                status
            );
        }
    }
    Ok(())
}

/// What `ketch topics` does.
pub enum TopicsAction {
    Create {
        partitions: i32,
        replication_factor: i16,
        configs: Vec<(String, String)>,
    },
    Delete,
    /// Grow to this many partitions, and/or set and remove topic configs.
    Alter {
        partitions: Option<i32>,
        configs: Vec<(String, String)>,
        delete_configs: Vec<String>,
    },
}

/// `topics --describe` filters: only the partitions that need attention.
#[derive(Clone, Copy, Default)]
pub struct DescribeFilter {
    pub under_replicated: bool,
    pub unavailable: bool,
}

/// Sends one controller request to the active controller among `bootstrap` (comma-separated
/// host:port list): the others answer NOT_CONTROLLER (41).
pub(crate) fn to_active_controller(
    bootstrap: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> Result<ResponseKind, String> {
    let addrs: Vec<String> = bootstrap
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    runtime::block_on(async {
        for addr in &addrs {
            let exchange = async {
                let mut stream = crate::client::tools_connector().connect(addr.as_str()).await.map_err(|e| format!("{addr}: {e}"))?;
                let frame = encode_request(1, "ketch-topics", api_key, version, body).map_err(|e| e.to_string())?;
                write_frame(&mut stream, &frame).await.map_err(|e| e.to_string())?;
                let answer = read_frame(&mut stream, 16 << 20)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or("connection closed")?;
                decode_response(api_key, version, answer).map_err(|e| e.to_string())
            };
            let Ok(Ok((_, response))) = tokio::time::timeout(Duration::from_secs(10), exchange).await else {
                continue;
            };
            let not_controller = match &response {
                ResponseKind::CreateTopics(r) => r.topics.iter().any(|t| t.error_code == ResponseError::NotController.code()),
                ResponseKind::DeleteTopics(r) => r.responses.iter().any(|t| t.error_code == ResponseError::NotController.code()),
                ResponseKind::CreatePartitions(r) => r.results.iter().any(|t| t.error_code == ResponseError::NotController.code()),
                ResponseKind::ElectLeaders(r) => r.error_code == ResponseError::NotController.code(),
                ResponseKind::IncrementalAlterConfigs(r) => r.responses.iter().any(|t| t.error_code == ResponseError::NotController.code()),
                _ => false,
            };
            if !not_controller {
                return Ok(response);
            }
        }
        Err(format!(
            "no active controller among {bootstrap}: list every controller, e.g. --bootstrap-controller h1:9093,h2:9093,h3:9093"
        ))
    })
    .map_err(|e| e.to_string())?
}

/// `ketch topics --bootstrap-controller H:P,… --create|--delete|--alter --topic T …`, printed as
/// Kafka's `kafka-topics.sh` prints it. (`--list` and `--describe` need the broker's Metadata API.)
pub fn topics(bootstrap: &str, topic: &str, action: TopicsAction) -> Result<(), String> {
    use kafka_protocol::messages::{
        create_partitions_request, create_topics_request, CreatePartitionsRequest,
        CreateTopicsRequest, DeleteTopicsRequest,
    };
    let name = TopicName(StrBytes::from_string(topic.to_string()));
    let (code, message) = match action {
        TopicsAction::Create {
            partitions,
            replication_factor,
            configs,
        } => {
            let body = RequestKind::CreateTopics(
                CreateTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![create_topics_request::CreatableTopic::default()
                        .with_name(name)
                        .with_num_partitions(partitions)
                        .with_replication_factor(replication_factor)
                        .with_configs(
                            configs
                                .into_iter()
                                .map(|(k, v)| {
                                    create_topics_request::CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k))
                                        .with_value(Some(StrBytes::from_string(v)))
                                })
                                .collect(),
                        )]),
            );
            let ResponseKind::CreateTopics(r) =
                to_active_controller(bootstrap, ApiKey::CreateTopics, 7, &body)?
            else {
                return Err("unexpected response".into());
            };
            let t = r.topics.first().ok_or("empty response")?;
            if t.error_code == 0 {
                println!("Created topic {topic}.");
            }
            (
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )
        }
        TopicsAction::Delete => {
            let body = RequestKind::DeleteTopics(
                DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topic_names(vec![name]),
            );
            let ResponseKind::DeleteTopics(r) =
                to_active_controller(bootstrap, ApiKey::DeleteTopics, 5, &body)?
            else {
                return Err("unexpected response".into());
            };
            let t = r.responses.first().ok_or("empty response")?;
            (
                t.error_code,
                t.error_message.as_ref().map(|m| m.to_string()),
            )
        }
        TopicsAction::Alter {
            partitions,
            configs,
            delete_configs,
        } => {
            let mut outcome = (0, None);
            if let Some(count) = partitions {
                let body = RequestKind::CreatePartitions(
                    CreatePartitionsRequest::default()
                        .with_timeout_ms(30_000)
                        .with_topics(vec![
                            create_partitions_request::CreatePartitionsTopic::default()
                                .with_name(name)
                                .with_count(count),
                        ]),
                );
                let ResponseKind::CreatePartitions(r) =
                    to_active_controller(bootstrap, ApiKey::CreatePartitions, 3, &body)?
                else {
                    return Err("unexpected response".into());
                };
                let t = r.results.first().ok_or("empty response")?;
                outcome = (
                    t.error_code,
                    t.error_message.as_ref().map(|m| m.to_string()),
                );
            }
            if outcome.0 == 0 && !(configs.is_empty() && delete_configs.is_empty()) {
                let body = configs::alter_body(2, topic, &configs, &delete_configs);
                let ResponseKind::IncrementalAlterConfigs(r) =
                    to_active_controller(bootstrap, ApiKey::IncrementalAlterConfigs, 1, &body)?
                else {
                    return Err("unexpected response".into());
                };
                let t = r.responses.first().ok_or("empty response")?;
                if t.error_code == 0 {
                    println!("Updated config for topic {topic}.");
                }
                outcome = (
                    t.error_code,
                    t.error_message.as_ref().map(|m| m.to_string()),
                );
            }
            outcome
        }
    };
    if code != 0 {
        return Err(format!(
            "Error while executing topic command : {} (error code {code})",
            message.unwrap_or_else(|| "no message".into())
        ));
    }
    Ok(())
}

/// `ketch leader-election`, as Kafka's `kafka-leader-election.sh`: a PREFERRED or UNCLEAN
/// election for the partitions given, or every partition (`None`), through a broker (which
/// forwards it) or the controllers. Prints what happened to each partition.
pub fn leader_election(
    bootstrap: &str,
    unclean: bool,
    partitions: Option<Vec<(String, i32)>>,
) -> Result<(), String> {
    use kafka_protocol::messages::{elect_leaders_request::TopicPartitions, ElectLeadersRequest};
    let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
    for (t, p) in partitions.iter().flatten() {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    let body = RequestKind::ElectLeaders(
        ElectLeadersRequest::default()
            .with_election_type(i8::from(unclean))
            .with_timeout_ms(30_000)
            .with_topic_partitions(partitions.as_ref().map(|_| {
                by_topic
                    .iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(TopicName(StrBytes::from_string(t.clone())))
                            .with_partitions(ps.clone())
                    })
                    .collect()
            })),
    );
    let ResponseKind::ElectLeaders(r) =
        to_active_controller(bootstrap, ApiKey::ElectLeaders, 2, &body)?
    else {
        return Err("unexpected response".into());
    };
    if r.error_code != 0 {
        return Err(format!(
            "leader election failed: error code {}",
            r.error_code
        ));
    }
    let kind = if unclean { "UNCLEAN" } else { "PREFERRED" };
    let (mut done, mut not_needed, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for t in &r.replica_election_results {
        for p in &t.partition_result {
            let name = format!("{}-{}", t.topic.0, p.partition_id);
            match p.error_code {
                0 => done.push(name),
                c if c == ResponseError::ElectionNotNeeded.code() => not_needed.push(name),
                c => failed.push(format!(
                    "{name}: {}",
                    p.error_message
                        .as_ref()
                        .map_or(format!("error {c}"), |m| m.to_string())
                )),
            }
        }
    }
    if !done.is_empty() {
        println!(
            "Successfully completed leader election ({kind}) for partitions {}",
            done.join(", ")
        );
    }
    if !not_needed.is_empty() {
        println!(
            "Valid replica already elected for partitions {}",
            not_needed.join(", ")
        );
    }
    if done.is_empty() && not_needed.is_empty() && failed.is_empty() {
        println!("No partitions needed an election.");
    }
    if !failed.is_empty() {
        return Err(format!(
            "Error completing leader election ({kind}) for partitions: {}",
            failed.join("; ")
        ));
    }
    Ok(())
}

/// `ketch topics --bootstrap-server H:P --list`: every topic name, one per line.
pub fn list_topics(bootstrap: &str) -> Result<(), String> {
    let m = runtime::block_on(async {
        crate::client::Client::new(bootstrap, "ketch-topics")
            .metadata(None)
            .await
    })
    .map_err(|e| e.to_string())??;
    let mut names: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    names.sort();
    for n in names {
        println!("{n}");
    }
    Ok(())
}

/// A topic's configs that are not Kafka's defaults, `k=v,…`, as kafka-topics.sh prints them.
async fn topic_overrides(
    client: &mut crate::client::Client,
    topic: &str,
) -> Result<String, String> {
    use kafka_protocol::messages::{describe_configs_request, DescribeConfigsRequest};
    let body = RequestKind::DescribeConfigs(DescribeConfigsRequest::default().with_resources(
        vec![describe_configs_request::DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(None)],
    ));
    let ResponseKind::DescribeConfigs(r) =
        client.send_any(ApiKey::DescribeConfigs, 4, &body).await?
    else {
        return Err("not a DescribeConfigs response".into());
    };
    Ok(r.results
        .iter()
        .flat_map(|res| res.configs.iter())
        // As kafka-topics.sh: every value not Kafka's default (topic overrides, and what the
        // brokers set, dynamically or in server.properties).
        .filter(|c| c.config_source != 5)
        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
        .collect::<Vec<_>>()
        .join(","))
}

/// `ketch topics --bootstrap-server H:P --describe [--topic T]`, as kafka-topics.sh prints it:
/// a line per topic with its overrides in `Configs:`, then one per partition; with a filter,
/// only the matching partitions' lines (as Kafka).
pub fn describe_topics(
    bootstrap: &str,
    topic: Option<&str>,
    filter: DescribeFilter,
) -> Result<(), String> {
    let wanted: Option<Vec<String>> = topic.map(|t| vec![t.to_string()]);
    let (m, overrides) = runtime::block_on(async {
        let mut client = crate::client::Client::new(bootstrap, "ketch-topics");
        let m = client.metadata(wanted.as_deref()).await?;
        let mut overrides = BTreeMap::new();
        for t in &m.topics {
            if let (Some(name), 0) = (&t.name, t.error_code) {
                overrides.insert(
                    name.0.to_string(),
                    topic_overrides(&mut client, name).await?,
                );
            }
        }
        Ok::<_, String>((m, overrides))
    })
    .map_err(|e| e.to_string())??;
    let live: BTreeSet<i32> = m.brokers.iter().map(|b| b.node_id.0).collect();
    let filtering = filter.under_replicated || filter.unavailable;
    let mut topics: Vec<_> = m.topics.iter().collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    for t in topics {
        let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
        if t.error_code != 0 {
            return Err(format!(
                "Topic '{name}': {} ({})",
                crate::client::error_name(t.error_code),
                t.error_code
            ));
        }
        let rf = t.partitions.first().map_or(0, |p| p.replica_nodes.len());
        if !filtering {
            println!(
                "Topic: {name}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}\tConfigs: {}",
                crate::model::Uuid(*t.topic_id.as_bytes()),
                t.partitions.len(),
                overrides.get(&name).map_or("", String::as_str)
            );
        }
        let mut partitions: Vec<_> = t.partitions.iter().collect();
        partitions.sort_by_key(|p| p.partition_index);
        let ids = |v: &[kafka_protocol::messages::BrokerId]| {
            v.iter()
                .map(|b| b.0.to_string())
                .collect::<Vec<_>>()
                .join(",")
        };
        for p in partitions {
            let under = p.isr_nodes.len() < p.replica_nodes.len();
            let unavailable = p.leader_id.0 < 0 || !live.contains(&p.leader_id.0);
            if filtering
                && !((filter.under_replicated && under) || (filter.unavailable && unavailable))
            {
                continue;
            }
            println!(
                "\tTopic: {name}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                p.partition_index,
                if p.leader_id.0 >= 0 {
                    p.leader_id.0.to_string()
                } else {
                    "none".into()
                },
                ids(&p.replica_nodes),
                ids(&p.isr_nodes)
            );
        }
    }
    Ok(())
}
