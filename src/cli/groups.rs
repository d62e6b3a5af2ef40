//! `ketch consumer-groups`, as Kafka's `kafka-consumer-groups.sh`: `--list`, `--describe`
//! (committed offset, log end offset and lag per partition), `--reset-offsets` (a dry run
//! unless `--execute`; only for an inactive group, as in Kafka).

use super::console::{commit_offsets, committed_offsets, list_offsets};
use crate::client::{error_name, Client};
use crate::runtime;
use kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, ListGroupsRequest,
    OffsetFetchRequest, RequestKind, ResponseKind,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

pub enum GroupsAction {
    List,
    Describe {
        group: String,
    },
    Reset {
        group: String,
        topic: String,
        to: ResetTo,
        execute: bool,
    },
}

pub enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
}

async fn coordinator_of(client: &mut Client, group: &str) -> Result<String, String> {
    let body = RequestKind::FindCoordinator(
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
    );
    match client.send_any(ApiKey::FindCoordinator, 3, &body).await? {
        ResponseKind::FindCoordinator(r) if r.error_code == 0 => {
            Ok(format!("{}:{}", r.host, r.port))
        }
        ResponseKind::FindCoordinator(r) => Err(format!(
            "no coordinator for group '{group}': {}",
            error_name(r.error_code)
        )),
        _ => Err("not a FindCoordinator response".into()),
    }
}

async fn leaders_of(client: &mut Client, topic: &str) -> Result<BTreeMap<i32, String>, String> {
    let m = client.metadata(Some(&[topic.to_string()])).await?;
    let t = m.topics.first().ok_or("empty Metadata response")?;
    if t.error_code != 0 {
        return Err(format!("topic '{topic}': {}", error_name(t.error_code)));
    }
    Ok(t.partitions
        .iter()
        .filter_map(|p| {
            Some((
                p.partition_index,
                crate::client::broker_addr(&m, p.leader_id.0)?,
            ))
        })
        .collect())
}

pub fn run(bootstrap: &str, action: GroupsAction) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(bootstrap, "ketch-consumer-groups");
        match action {
            GroupsAction::List => {
                let m = client.metadata(Some(&[])).await?;
                let mut names = Vec::new();
                for b in &m.brokers {
                    let addr = format!("{}:{}", b.host, b.port);
                    let body = RequestKind::ListGroups(ListGroupsRequest::default());
                    if let ResponseKind::ListGroups(r) =
                        client.send(&addr, ApiKey::ListGroups, 4, &body).await?
                    {
                        names.extend(r.groups.iter().map(|g| g.group_id.0.to_string()));
                    }
                }
                names.sort();
                for n in names {
                    println!("{n}");
                }
            }
            GroupsAction::Describe { group } => {
                let coordinator = coordinator_of(&mut client, &group).await?;
                let body = RequestKind::DescribeGroups(
                    DescribeGroupsRequest::default()
                        .with_groups(vec![GroupId(StrBytes::from_string(group.clone()))]),
                );
                let state = match client.send(&coordinator, ApiKey::DescribeGroups, 5, &body).await?
                {
                    ResponseKind::DescribeGroups(r) => r
                        .groups
                        .first()
                        .map(|g| (g.group_state.to_string(), g.members.len()))
                        .unwrap_or_default(),
                    _ => return Err("not a DescribeGroups response".into()),
                };
                let body = RequestKind::OffsetFetch(
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(StrBytes::from_string(group.clone())))
                        .with_topics(None),
                );
                let ResponseKind::OffsetFetch(r) =
                    client.send(&coordinator, ApiKey::OffsetFetch, 7, &body).await?
                else {
                    return Err("not an OffsetFetch response".into());
                };
                println!(
                    "\nConsumer group '{group}' is {} with {} members.\n",
                    state.0, state.1
                );
                println!(
                    "{:<20} {:<20} {:<10} {:<15} {:<15} {:<8}",
                    "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
                );
                for t in &r.topics {
                    let topic = t.name.0.to_string();
                    let ends = match leaders_of(&mut client, &topic).await {
                        Ok(leaders) => list_offsets(&mut client, &leaders, &topic, -1)
                            .await
                            .unwrap_or_default(),
                        Err(_) => BTreeMap::new(),
                    };
                    for p in &t.partitions {
                        let end = ends.get(&p.partition_index).copied();
                        let lag = match (end, p.committed_offset) {
                            (Some(e), c) if c >= 0 => (e - c).to_string(),
                            _ => "-".into(),
                        };
                        println!(
                            "{:<20} {:<20} {:<10} {:<15} {:<15} {:<8}",
                            group,
                            topic,
                            p.partition_index,
                            if p.committed_offset >= 0 {
                                p.committed_offset.to_string()
                            } else {
                                "-".into()
                            },
                            end.map_or("-".into(), |e| e.to_string()),
                            lag
                        );
                    }
                }
            }
            GroupsAction::Reset {
                group,
                topic,
                to,
                execute,
            } => {
                let coordinator = coordinator_of(&mut client, &group).await?;
                let leaders = leaders_of(&mut client, &topic).await?;
                let targets = match to {
                    ResetTo::Earliest => list_offsets(&mut client, &leaders, &topic, -2).await?,
                    ResetTo::Latest => list_offsets(&mut client, &leaders, &topic, -1).await?,
                    ResetTo::Offset(n) => leaders.keys().map(|p| (*p, n)).collect(),
                };
                let partitions: Vec<i32> = leaders.keys().copied().collect();
                let _ = committed_offsets(&mut client, &coordinator, &group, &topic, &partitions)
                    .await?;
                println!("\n{:<20} {:<20} {:<10} {:<15}", "GROUP", "TOPIC", "PARTITION", "NEW-OFFSET");
                for (p, o) in &targets {
                    println!("{group:<20} {topic:<20} {p:<10} {o:<15}");
                }
                if execute {
                    commit_offsets(&mut client, &coordinator, &group, &topic, &targets)
                        .await
                        .map_err(|e| {
                            format!("{e}: offsets can only be reset while the group '{group}' is inactive")
                        })?;
                } else {
                    println!("\n(dry run: add --execute to reset the offsets)");
                }
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?
}
