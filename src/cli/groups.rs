//! `ketch consumer-groups`, as Kafka's `kafka-consumer-groups.sh`: `--list [--state]`;
//! `--describe` (offsets with Kafka's columns, `--members [--verbose]`, `--state`) of
//! `--group G` or `--all-groups`; `--delete`; `--delete-offsets`; `--reset-offsets` (a dry
//! run unless `--execute`; only for an inactive group, as in Kafka) to earliest, latest,
//! current, an offset, a shift, a datetime or a duration ago, clamped to each partition's
//! range with a note, as Kafka does. A group that does not exist is an error.

use super::console::{commit_offsets, committed_offsets, list_offsets};
use crate::client::{error_name, Client};
use crate::runtime::{self, Clock};
use kafka_protocol::messages::{
    delete_groups_response, describe_groups_response, offset_delete_request, ApiKey,
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest,
    GroupId, ListGroupsRequest, OffsetDeleteRequest, OffsetFetchRequest, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use std::collections::{BTreeMap, BTreeSet};

pub enum GroupsAction {
    List {
        state: bool,
    },
    Describe {
        groups: Groups,
        view: View,
    },
    Delete {
        groups: Groups,
    },
    DeleteOffsets {
        group: String,
        topics: Vec<TopicSpec>,
    },
    Reset {
        groups: Groups,
        topics: Topics,
        to: ResetTo,
        execute: bool,
    },
}

/// `--group G …` or `--all-groups`.
pub enum Groups {
    Named(Vec<String>),
    All,
}

/// `--topic T[:p,p]` (repeatable) or `--all-topics` (every topic the group has offsets for).
pub enum Topics {
    Named(Vec<TopicSpec>),
    All,
}

/// A topic and, optionally, some of its partitions (`orders:0,2`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSpec {
    pub topic: String,
    pub partitions: Option<Vec<i32>>,
}

impl TopicSpec {
    pub fn parse(text: &str) -> Result<TopicSpec, String> {
        match text.split_once(':') {
            None => Ok(TopicSpec {
                topic: text.to_string(),
                partitions: None,
            }),
            Some((topic, list)) => Ok(TopicSpec {
                topic: topic.to_string(),
                partitions: Some(
                    list.split(',')
                        .map(|p| {
                            p.trim().parse::<i32>().map_err(|_| {
                                format!("'{text}': partitions are numbers, as topic:0,1,2")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                ),
            }),
        }
    }
}

pub enum View {
    Offsets,
    Members { verbose: bool },
    State,
}

pub enum ResetTo {
    Earliest,
    Latest,
    Current,
    Offset(i64),
    ShiftBy(i64),
    /// The first offset whose timestamp is at or after this (ms since the epoch).
    Datetime(i64),
    /// `--by-duration`: the datetime this long before now.
    Ago(i64),
}

async fn coordinator_of(client: &mut Client, group: &str) -> Result<String, String> {
    coordinator_and_id(client, group)
        .await
        .map(|(addr, _)| addr)
}

/// The group's coordinator: its host:port and broker id.
async fn coordinator_and_id(client: &mut Client, group: &str) -> Result<(String, i32), String> {
    let body = RequestKind::FindCoordinator(
        FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
    );
    match client.send_any(ApiKey::FindCoordinator, 3, &body).await? {
        ResponseKind::FindCoordinator(r) if r.error_code == 0 => {
            Ok((format!("{}:{}", r.host, r.port), r.node_id.0))
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

/// Every group of every broker, with its state: (group, state).
async fn list_groups(client: &mut Client) -> Result<Vec<(String, String)>, String> {
    let m = client.metadata(Some(&[])).await?;
    let mut out = Vec::new();
    for b in &m.brokers {
        let addr = format!("{}:{}", b.host, b.port);
        let body = RequestKind::ListGroups(ListGroupsRequest::default());
        if let ResponseKind::ListGroups(r) =
            client.send(&addr, ApiKey::ListGroups, 4, &body).await?
        {
            if r.error_code != 0 {
                return Err(format!(
                    "ListGroups on {addr}: {}",
                    error_name(r.error_code)
                ));
            }
            out.extend(
                r.groups
                    .iter()
                    .map(|g| (g.group_id.0.to_string(), g.group_state.to_string())),
            );
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

async fn resolve(client: &mut Client, groups: Groups) -> Result<Vec<String>, String> {
    match groups {
        Groups::Named(names) => Ok(names),
        Groups::All => Ok(list_groups(client)
            .await?
            .into_iter()
            .map(|g| g.0)
            .collect()),
    }
}

/// What the coordinator knows of a group: DescribeGroups and every committed offset.
struct Described {
    coordinator: String,
    coordinator_id: i32,
    group: describe_groups_response::DescribedGroup,
    /// (topic, partition) → committed offset.
    committed: BTreeMap<(String, i32), i64>,
}

impl Described {
    fn exists(&self) -> bool {
        !(self.group.group_state.as_str() == "Dead" && self.committed.is_empty())
    }

    /// The partitions each member is assigned: member id → [(topic, partition)].
    fn assignments(&self) -> BTreeMap<String, Vec<(String, i32)>> {
        self.group
            .members
            .iter()
            .map(|m| {
                let mut bytes = m.member_assignment.clone();
                let assigned = decode_assignment(&mut bytes).unwrap_or_default();
                (m.member_id.to_string(), assigned)
            })
            .collect()
    }
}

/// A consumer-protocol assignment: an i16 version, then the versioned body.
fn decode_assignment(bytes: &mut bytes::Bytes) -> Option<Vec<(String, i32)>> {
    use bytes::Buf;
    if bytes.remaining() < 2 {
        return None;
    }
    let version = bytes.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(bytes, version).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
    )
}

async fn describe(client: &mut Client, group: &str) -> Result<Described, String> {
    let (coordinator, coordinator_id) = coordinator_and_id(client, group).await?;
    let body = RequestKind::DescribeGroups(
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]),
    );
    let described = match client
        .send(&coordinator, ApiKey::DescribeGroups, 5, &body)
        .await?
    {
        ResponseKind::DescribeGroups(r) => r
            .groups
            .into_iter()
            .next()
            .ok_or("an empty DescribeGroups response")?,
        _ => return Err("not a DescribeGroups response".into()),
    };
    if described.error_code != 0 {
        return Err(format!(
            "describing group '{group}': {}",
            error_name(described.error_code)
        ));
    }
    let body = RequestKind::OffsetFetch(
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(None),
    );
    let ResponseKind::OffsetFetch(r) = client
        .send(&coordinator, ApiKey::OffsetFetch, 7, &body)
        .await?
    else {
        return Err("not an OffsetFetch response".into());
    };
    if r.error_code != 0 {
        return Err(format!(
            "offsets of group '{group}': {}",
            error_name(r.error_code)
        ));
    }
    let committed = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.committed_offset >= 0)
                .map(|p| {
                    (
                        (t.name.0.to_string(), p.partition_index),
                        p.committed_offset,
                    )
                })
        })
        .collect();
    Ok(Described {
        coordinator,
        coordinator_id,
        group: described,
        committed,
    })
}

/// Prints rows as aligned columns (each as wide as its widest cell), as Kafka's tool does.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join(" ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

async fn log_end_offsets(
    client: &mut Client,
    topics: &BTreeSet<String>,
) -> BTreeMap<(String, i32), i64> {
    let mut out = BTreeMap::new();
    for topic in topics {
        let Ok(leaders) = leaders_of(client, topic).await else {
            continue;
        };
        if let Ok(ends) = list_offsets(client, &leaders, topic, -1).await {
            out.extend(ends.into_iter().map(|(p, o)| ((topic.clone(), p), o)));
        }
    }
    out
}

async fn describe_one(client: &mut Client, group: &str, view: &View) -> Result<(), String> {
    let d = describe(client, group).await?;
    if !d.exists() {
        return Err(format!("Consumer group '{group}' does not exist."));
    }
    let state = d.group.group_state.to_string();
    let members = &d.group.members;
    match view {
        View::State => {
            println!();
            print_table(
                &[
                    "GROUP",
                    "COORDINATOR (ID)",
                    "ASSIGNMENT-STRATEGY",
                    "STATE",
                    "#MEMBERS",
                ],
                &[vec![
                    group.to_string(),
                    format!("{} ({})", d.coordinator, d.coordinator_id),
                    d.group.protocol_data.to_string(),
                    state,
                    members.len().to_string(),
                ]],
            );
        }
        View::Members { verbose } => {
            if members.is_empty() {
                println!("\nConsumer group '{group}' has no active members.");
                return Ok(());
            }
            let assignments = d.assignments();
            let rows: Vec<Vec<String>> = members
                .iter()
                .map(|m| {
                    let assigned = assignments
                        .get(m.member_id.as_str())
                        .cloned()
                        .unwrap_or_default();
                    let mut row = vec![
                        group.to_string(),
                        m.member_id.to_string(),
                        // Static membership (KIP-345): the member's group.instance.id.
                        m.group_instance_id
                            .as_ref()
                            .map_or("-".to_string(), |id| id.to_string()),
                        m.client_host.to_string(),
                        m.client_id.to_string(),
                        assigned.len().to_string(),
                    ];
                    if *verbose {
                        let mut by_topic: BTreeMap<&str, Vec<String>> = BTreeMap::new();
                        for (t, p) in &assigned {
                            by_topic.entry(t).or_default().push(p.to_string());
                        }
                        let text: Vec<String> = by_topic
                            .iter()
                            .map(|(t, ps)| format!("{t}({})", ps.join(",")))
                            .collect();
                        row.push(if text.is_empty() {
                            "-".into()
                        } else {
                            text.join(", ")
                        });
                    }
                    row
                })
                .collect();
            let mut header = vec![
                "GROUP",
                "CONSUMER-ID",
                "GROUP-INSTANCE-ID",
                "HOST",
                "CLIENT-ID",
                "#PARTITIONS",
            ];
            if *verbose {
                header.push("ASSIGNMENT");
            }
            println!();
            print_table(&header, &rows);
        }
        View::Offsets => {
            if members.is_empty() {
                println!("\nConsumer group '{group}' has no active members.");
            }
            // Every partition with a committed offset or an owner.
            let mut owner: BTreeMap<(String, i32), (String, String, String)> = BTreeMap::new();
            let assignments = d.assignments();
            for m in members {
                for tp in assignments.get(m.member_id.as_str()).into_iter().flatten() {
                    owner.insert(
                        tp.clone(),
                        (
                            m.member_id.to_string(),
                            m.client_host.to_string(),
                            m.client_id.to_string(),
                        ),
                    );
                }
            }
            let partitions: BTreeSet<(String, i32)> =
                d.committed.keys().chain(owner.keys()).cloned().collect();
            let topics: BTreeSet<String> = partitions.iter().map(|(t, _)| t.clone()).collect();
            let ends = log_end_offsets(client, &topics).await;
            let dash = || "-".to_string();
            let rows: Vec<Vec<String>> = partitions
                .iter()
                .map(|tp| {
                    let current = d.committed.get(tp).copied();
                    let end = ends.get(tp).copied();
                    let (member, host, client_id) = owner
                        .get(tp)
                        .cloned()
                        .unwrap_or_else(|| (dash(), dash(), dash()));
                    vec![
                        group.to_string(),
                        tp.0.clone(),
                        tp.1.to_string(),
                        current.map_or_else(dash, |c| c.to_string()),
                        end.map_or_else(dash, |e| e.to_string()),
                        match (current, end) {
                            (Some(c), Some(e)) => (e - c).max(0).to_string(),
                            _ => dash(),
                        },
                        member,
                        host,
                        client_id,
                    ]
                })
                .collect();
            println!();
            print_table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
                &rows,
            );
        }
    }
    Ok(())
}

async fn delete_groups(client: &mut Client, groups: &[String]) -> Result<(), String> {
    let mut failed = Vec::new();
    let mut deleted = Vec::new();
    for group in groups {
        let coordinator = coordinator_of(client, group).await?;
        let body = RequestKind::DeleteGroups(
            DeleteGroupsRequest::default()
                .with_groups_names(vec![GroupId(StrBytes::from_string(group.clone()))]),
        );
        let ResponseKind::DeleteGroups(r) = client
            .send(&coordinator, ApiKey::DeleteGroups, 2, &body)
            .await?
        else {
            return Err("not a DeleteGroups response".into());
        };
        let result: Option<&delete_groups_response::DeletableGroupResult> = r.results.first();
        match result.map(|x| x.error_code) {
            Some(0) => deleted.push(group.clone()),
            Some(code) => failed.push(format!(
                "* Group '{group}' could not be deleted due to: {}",
                error_name(code)
            )),
            None => failed.push(format!("* Group '{group}': no answer")),
        }
    }
    if !deleted.is_empty() {
        let names: Vec<String> = deleted.iter().map(|g| format!("'{g}'")).collect();
        println!(
            "Deletion of requested consumer groups ({}) was successful.",
            names.join(", ")
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "Deletion of some consumer groups failed:\n{}",
            failed.join("\n")
        ))
    }
}

async fn delete_offsets(
    client: &mut Client,
    group: &str,
    topics: &[TopicSpec],
) -> Result<(), String> {
    let coordinator = coordinator_of(client, group).await?;
    let mut request_topics = Vec::new();
    for spec in topics {
        let partitions = match &spec.partitions {
            Some(p) => p.clone(),
            None => leaders_of(client, &spec.topic)
                .await?
                .keys()
                .copied()
                .collect(),
        };
        request_topics.push(
            offset_delete_request::OffsetDeleteRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(spec.topic.clone())))
                .with_partitions(
                    partitions
                        .into_iter()
                        .map(|p| {
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(p)
                        })
                        .collect(),
                ),
        );
    }
    let body = RequestKind::OffsetDelete(
        OffsetDeleteRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(request_topics),
    );
    let ResponseKind::OffsetDelete(r) = client
        .send(&coordinator, ApiKey::OffsetDelete, 0, &body)
        .await?
    else {
        return Err("not an OffsetDelete response".into());
    };
    if r.error_code != 0 {
        return Err(format!(
            "Encounter some unknown error: {} (deleting offsets of group '{group}')",
            error_name(r.error_code)
        ));
    }
    let mut rows = Vec::new();
    let mut failures = 0;
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                failures += 1;
            }
            rows.push(vec![
                t.name.0.to_string(),
                p.partition_index.to_string(),
                if p.error_code == 0 {
                    "Successful".to_string()
                } else {
                    format!("Error: {}", error_name(p.error_code))
                },
            ]);
        }
    }
    let names: Vec<&str> = topics.iter().map(|t| t.topic.as_str()).collect();
    if failures == 0 {
        println!(
            "Request succeed for deleting offsets with topic {} group {group}",
            names.join(",")
        );
    } else {
        println!(
            "Request failed for deleting offsets with topic {} group {group}",
            names.join(",")
        );
    }
    println!();
    print_table(&["TOPIC", "PARTITION", "STATUS"], &rows);
    if failures == 0 {
        Ok(())
    } else {
        Err(format!("{failures} partition(s) kept their offsets"))
    }
}

async fn reset_one(
    client: &mut Client,
    group: &str,
    topics: &Topics,
    to: &ResetTo,
    execute: bool,
    now_ms: i64,
) -> Result<Vec<Vec<String>>, String> {
    let d = describe(client, group).await?;
    let specs: Vec<TopicSpec> = match topics {
        Topics::Named(specs) => specs.clone(),
        Topics::All => {
            let names: BTreeSet<&String> = d.committed.keys().map(|(t, _)| t).collect();
            names
                .into_iter()
                .map(|t| TopicSpec {
                    topic: t.clone(),
                    partitions: None,
                })
                .collect()
        }
    };
    if specs.is_empty() {
        return Err(format!(
            "group '{group}' has no committed offsets: name the topics with --topic"
        ));
    }
    let mut rows = Vec::new();
    for spec in specs {
        let topic = &spec.topic;
        let mut leaders = leaders_of(client, topic).await?;
        if let Some(wanted) = &spec.partitions {
            if let Some(p) = wanted.iter().find(|p| !leaders.contains_key(p)) {
                return Err(format!("topic '{topic}' has no partition {p}"));
            }
            leaders.retain(|p, _| wanted.contains(p));
        }
        let partitions: Vec<i32> = leaders.keys().copied().collect();
        let earliest = list_offsets(client, &leaders, topic, -2).await?;
        let latest = list_offsets(client, &leaders, topic, -1).await?;
        let current = committed_offsets(client, &d.coordinator, group, topic, &partitions).await?;
        let by_time = match to {
            ResetTo::Datetime(ms) => Some(*ms),
            ResetTo::Ago(ms) => Some(now_ms - ms),
            _ => None,
        };
        let at_time = match by_time {
            Some(ts) => list_offsets(client, &leaders, topic, ts).await?,
            None => BTreeMap::new(),
        };
        let mut targets = BTreeMap::new();
        for &p in &partitions {
            let (lo, hi) = (
                earliest.get(&p).copied().unwrap_or(0),
                latest.get(&p).copied().unwrap_or(0),
            );
            let committed = current.get(&p).copied().filter(|c| *c >= 0);
            let wanted = match to {
                ResetTo::Earliest => lo,
                ResetTo::Latest => hi,
                ResetTo::Current => committed.unwrap_or(hi),
                ResetTo::Offset(n) => *n,
                ResetTo::ShiftBy(n) => committed.unwrap_or(hi).saturating_add(*n),
                // No record at or after the time: the log end, as Kafka does.
                ResetTo::Datetime(_) | ResetTo::Ago(_) => {
                    at_time.get(&p).copied().filter(|o| *o >= 0).unwrap_or(hi)
                }
            };
            let target = if wanted > hi {
                eprintln!(
                    "New offset ({wanted}) is higher than latest offset for topic partition \
                     {topic}-{p}. Value will be set to {hi}"
                );
                hi
            } else if wanted < lo {
                eprintln!(
                    "New offset ({wanted}) is lower than earliest offset for topic partition \
                     {topic}-{p}. Value will be set to {lo}"
                );
                lo
            } else {
                wanted
            };
            targets.insert(p, target);
            rows.push(vec![
                group.to_string(),
                topic.clone(),
                p.to_string(),
                target.to_string(),
            ]);
        }
        if execute {
            commit_offsets(client, &d.coordinator, group, topic, &targets)
                .await
                .map_err(|e| {
                    format!(
                        "{e}: offsets can only be reset while the group '{group}' is inactive \
                         (it is {})",
                        d.group.group_state
                    )
                })?;
        }
    }
    Ok(rows)
}

pub fn run(bootstrap: &str, action: GroupsAction) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(bootstrap, "ketch-consumer-groups");
        match action {
            GroupsAction::List { state } => {
                let groups = list_groups(&mut client).await?;
                if state {
                    let rows: Vec<Vec<String>> =
                        groups.into_iter().map(|(g, s)| vec![g, s]).collect();
                    print_table(&["GROUP", "STATE"], &rows);
                } else {
                    for (g, _) in groups {
                        println!("{g}");
                    }
                }
            }
            GroupsAction::Describe { groups, view } => {
                let names = resolve(&mut client, groups).await?;
                let mut missing = Vec::new();
                for g in &names {
                    if let Err(e) = describe_one(&mut client, g, &view).await {
                        missing.push(e);
                    }
                }
                if !missing.is_empty() {
                    return Err(missing.join("\n"));
                }
            }
            GroupsAction::Delete { groups } => {
                let names = resolve(&mut client, groups).await?;
                delete_groups(&mut client, &names).await?;
            }
            GroupsAction::DeleteOffsets { group, topics } => {
                delete_offsets(&mut client, &group, &topics).await?;
            }
            GroupsAction::Reset {
                groups,
                topics,
                to,
                execute,
            } => {
                let names = resolve(&mut client, groups).await?;
                let now_ms = Clock::system().wall_ms();
                let mut rows = Vec::new();
                for g in &names {
                    rows.extend(reset_one(&mut client, g, &topics, &to, execute, now_ms).await?);
                }
                println!();
                print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &rows);
                if !execute {
                    println!("\n(dry run: add --execute to reset the offsets)");
                }
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

/// `--to-datetime`: `YYYY-MM-DDTHH:mm:SS[.sss]` with an optional `Z` or `±HH:mm` (UTC without
/// one: ketch does not read the machine's time zone), in ms since the epoch.
pub fn parse_datetime(text: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "--to-datetime '{text}': expected YYYY-MM-DDTHH:mm:SS.sss, optionally with Z or \
             +HH:mm, e.g. 2026-12-03T10:15:00.000"
        )
    };
    let (date, rest) = text.split_once('T').ok_or_else(bad)?;
    let (time, offset_ms) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, zone) = rest.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone[1..].split_once(':').unwrap_or((&zone[1..], "0"));
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        (t, sign * (h * 3_600_000 + m * 60_000))
    } else {
        (rest, 0)
    };
    let mut d = date.split('-');
    let (y, mo, da): (i64, i64, i64) = (
        d.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        d.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        d.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
    );
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':');
    let (h, mi, s): (i64, i64, i64) = (
        t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        t.next().and_then(|x| x.parse().ok()).ok_or_else(bad)?,
        t.next().and_then(|x| x.parse().ok()).unwrap_or(0),
    );
    if !millis.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ms: i64 = format!("{millis:0<3}")
        .get(..3)
        .and_then(|m| m.parse().ok())
        .ok_or_else(bad)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || s > 60 {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400_000 + h * 3_600_000 + mi * 60_000 + s * 1000 + ms - offset_ms)
}

/// `--by-duration`: an ISO-8601 duration `PnDTnHnMnS` (as Kafka's tool takes), in ms.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let bad = || format!("--by-duration '{text}': expected PnDTnHnMnS, e.g. PT30M or P1DT2H");
    let body = text.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = body.split_once('T').unwrap_or((body, ""));
    let mut total: f64 = 0.0;
    if !days.is_empty() {
        total += days
            .strip_suffix('D')
            .ok_or_else(bad)?
            .parse::<f64>()
            .map_err(|_| bad())?
            * 86_400_000.0;
    }
    let mut number = String::new();
    for c in time.chars() {
        let unit = match c {
            'H' => 3_600_000.0,
            'M' => 60_000.0,
            'S' => 1000.0,
            _ => {
                number.push(c);
                continue;
            }
        };
        total += number.parse::<f64>().map_err(|_| bad())? * unit;
        number.clear();
    }
    if !number.is_empty() || (days.is_empty() && time.is_empty()) {
        return Err(bad());
    }
    Ok(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_and_durations_read_as_kafkas_tool_reads_them() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00.000"), Ok(0));
        assert_eq!(parse_datetime("1970-01-02T00:00:01.5Z"), Ok(86_401_500));
        assert_eq!(
            parse_datetime("2026-12-03T10:15:00.000+01:00"),
            Ok(1_796_289_300_000)
        );
        assert_eq!(parse_datetime("2000-02-29T12:00:00"), Ok(951_825_600_000));
        assert!(parse_datetime("2026-13-01T00:00:00").is_err());
        assert!(parse_datetime("yesterday").is_err());
        assert_eq!(parse_duration("PT30M"), Ok(1_800_000));
        assert_eq!(parse_duration("P1DT2H0.5S"), Ok(93_600_500));
        assert!(parse_duration("30M").is_err());
        assert!(parse_duration("P").is_err());
        assert_eq!(
            TopicSpec::parse("orders:0,2"),
            Ok(TopicSpec {
                topic: "orders".into(),
                partitions: Some(vec![0, 2])
            })
        );
        assert!(TopicSpec::parse("orders:x").is_err());
    }
}
