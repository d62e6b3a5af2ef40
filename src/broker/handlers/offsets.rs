//! OffsetCommit (8), OffsetFetch (9), OffsetDelete (47): committed offsets, kept by the group's
//! coordinator and stored in `__consumer_offsets` before a commit is acknowledged.

use crate::broker::context::Broker;
use crate::group::coordinator::{
    CommitOffset, NONE, OFFSET_METADATA_MAX_BYTES, OFFSET_METADATA_TOO_LARGE,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
    offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic},
    offset_fetch_response::{
        OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
        OffsetFetchResponseTopic, OffsetFetchResponseTopics,
    },
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

/// The offsets a commit may store, and the partitions whose metadata is over
/// `OFFSET_METADATA_MAX_BYTES` (OFFSET_METADATA_TOO_LARGE), from each partition's (topic,
/// partition, offset, leader epoch, metadata): shared by OffsetCommit and TxnOffsetCommit.
pub(super) fn split_commits<'a>(
    partitions: impl Iterator<Item = (&'a str, i32, i64, i32, Option<&'a str>)>,
) -> (Vec<CommitOffset>, Vec<(String, i32)>) {
    let mut offsets = Vec::new();
    let mut too_large = Vec::new();
    for (topic, partition, offset, leader_epoch, metadata) in partitions {
        let metadata = metadata.unwrap_or("").to_string();
        if metadata.len() > OFFSET_METADATA_MAX_BYTES {
            too_large.push((topic.to_string(), partition));
            continue;
        }
        offsets.push(CommitOffset {
            topic: topic.to_string(),
            partition,
            offset,
            leader_epoch,
            metadata,
        });
    }
    (offsets, too_large)
}

pub async fn commit(
    broker: &Broker,
    conn: &crate::broker::context::Connection,
    r: &OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    use crate::security::acl::{operation, resource};
    // READ on each topic committed for (the group's READ was checked before): the others'
    // offsets are committed, these answered TOPIC_AUTHORIZATION_FAILED, as in Kafka.
    let (allowed, denied): (Vec<_>, Vec<_>) = r
        .topics
        .iter()
        .cloned()
        .partition(|t| broker.may(conn, resource::TOPIC, &t.name.0, operation::READ));
    if denied.is_empty() {
        return commit_authorized(broker, r, version).await;
    }
    let mut answer = if allowed.is_empty() {
        OffsetCommitResponse::default()
    } else {
        commit_authorized(broker, &r.clone().with_topics(allowed), version).await
    };
    answer.topics.extend(denied.iter().map(|t| {
        OffsetCommitResponseTopic::default()
            .with_name(t.name.clone())
            .with_partitions(
                t.partitions
                    .iter()
                    .map(|p| {
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    })
                    .collect(),
            )
    }));
    answer
}

async fn commit_authorized(
    broker: &Broker,
    r: &OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let group_id = r.group_id.0.to_string();
    let answer = |code_of: &dyn Fn(&str, i32) -> i16| {
        OffsetCommitResponse::default().with_topics(
            r.topics
                .iter()
                .map(|t| {
                    OffsetCommitResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(code_of(&t.name.0, p.partition_index))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
    };
    let mut c = match broker.groups.coordinate(broker, &group_id).await {
        Ok(c) => c,
        Err(code) => return answer(&|_, _| code),
    };
    let code = c.inner.core.check_commit(
        &group_id,
        r.generation_id_or_member_epoch,
        &r.member_id,
        r.group_instance_id.as_deref(),
    );
    if code != NONE {
        return answer(&|_, _| code);
    }
    let (offsets, too_large) = split_commits(r.topics.iter().flat_map(|t| {
        t.partitions.iter().map(move |p| {
            (
                t.name.0.as_str(),
                p.partition_index,
                p.committed_offset,
                if version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                p.committed_metadata.as_deref(),
            )
        })
    }));
    let now = broker.clock.wall_ms() as u64;
    let writes = c.inner.core.commit_writes(&group_id, &offsets, now);
    let mut stored = broker.groups.append(broker, &mut c.inner, &writes).await;
    if crate::model::bugs::ClusterBugs::live(broker.config.bugs.commit_before_append) {
        // The planted bug: the commit is answered as stored whatever became of its record.
        stored = Ok(());
    }
    if stored.is_ok() {
        c.inner.core.apply_commit(&group_id, &offsets, now);
    }
    drop(c);
    answer(&|topic, partition| {
        if too_large.iter().any(|(t, p)| t == topic && *p == partition) {
            OFFSET_METADATA_TOO_LARGE
        } else if let Err(e) = &stored {
            e.code()
        } else {
            NONE
        }
    })
}

/// One group's offsets: `topics` None asks for all of them.
/// One partition's answer: (partition, offset, leader epoch, metadata, error).
type FetchedPartition = (i32, i64, i32, String, i16);

/// Per partition: (partition, offset, leader epoch, metadata, error). With `require_stable`
/// (KIP-447), a partition an open transaction committed an offset for answers
/// UNSTABLE_OFFSET_COMMIT: the consumer retries until the transaction ends.
async fn fetch_group(
    broker: &Broker,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<(String, Vec<FetchedPartition>)>, i16> {
    let c = broker.groups.coordinate(broker, group_id).await?;
    let wanted: Option<Vec<(String, i32)>> = topics.as_ref().map(|list| {
        list.iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
            .collect()
    });
    let found = c.inner.core.fetch_offsets(group_id, wanted.as_deref());
    let mut by_topic: BTreeMap<String, Vec<FetchedPartition>> = BTreeMap::new();
    // Keep the request's topic order when it gave one.
    let order: Vec<String> = match &topics {
        Some(list) => list.iter().map(|(t, _)| t.clone()).collect(),
        None => Vec::new(),
    };
    for f in found {
        let unstable = require_stable
            && c.inner
                .core
                .has_pending_offset(group_id, &f.topic, f.partition);
        let code = if unstable {
            kafka_protocol::error::ResponseError::UnstableOffsetCommit.code()
        } else {
            0
        };
        by_topic.entry(f.topic.clone()).or_default().push((
            f.partition,
            if unstable { -1 } else { f.offset },
            f.leader_epoch,
            f.metadata,
            code,
        ));
    }
    let mut out = Vec::new();
    for t in &order {
        if let Some(ps) = by_topic.remove(t) {
            out.push((t.clone(), ps));
        }
    }
    out.extend(by_topic);
    Ok(out)
}

pub async fn fetch(broker: &Broker, r: &OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version >= 8 {
        let mut groups = Vec::new();
        for g in &r.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            groups.push(
                match fetch_group(broker, &g.group_id.0, topics, r.require_stable).await {
                    Err(code) => group.with_error_code(code),
                    Ok(list) => group.with_topics(
                        list.into_iter()
                            .map(|(t, ps)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(TopicName(StrBytes::from_string(t)))
                                    .with_partitions(
                                        ps.into_iter()
                                            .map(|(p, o, e, m, code)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(o)
                                                    .with_committed_leader_epoch(e)
                                                    .with_metadata(Some(StrBytes::from_string(m)))
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    ),
                },
            );
        }
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let require_stable = version >= 7 && r.require_stable;
    match fetch_group(broker, &r.group_id.0, topics, require_stable).await {
        Err(code) => {
            // v1 has no top-level error: each requested partition carries it.
            let mut response = OffsetFetchResponse::default();
            if version >= 2 {
                response = response.with_error_code(code);
            }
            let partitions = r.topics.iter().flatten().map(|t| {
                OffsetFetchResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partition_indexes
                            .iter()
                            .map(|p| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(-1)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            });
            response.with_topics(partitions.collect())
        }
        Ok(list) => OffsetFetchResponse::default().with_topics(
            list.into_iter()
                .map(|(t, ps)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t)))
                        .with_partitions(
                            ps.into_iter()
                                .map(|(p, o, e, m, code)| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(epoch(e))
                                        .with_metadata(Some(StrBytes::from_string(m)))
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    }
}

pub async fn delete(broker: &Broker, r: &OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = r.group_id.0.to_string();
    let mut c = match broker.groups.coordinate(broker, &group_id).await {
        Ok(c) => c,
        Err(code) => return OffsetDeleteResponse::default().with_error_code(code),
    };
    let wanted: Vec<(String, i32)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let (top, codes, writes) = c.inner.core.delete_offsets(&group_id, &wanted);
    let (top, codes) = match broker.groups.append(broker, &mut c.inner, &writes).await {
        Ok(()) => (top, codes),
        Err(e) => (e.code(), vec![e.code(); codes.len()]),
    };
    drop(c);
    let mut codes = codes.into_iter();
    OffsetDeleteResponse::default()
        .with_error_code(top)
        .with_topics(
            r.topics
                .iter()
                .map(|t| {
                    OffsetDeleteResponseTopic::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    OffsetDeleteResponsePartition::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(codes.next().unwrap_or(NONE))
                                })
                                .collect(),
                        )
                })
                .collect(),
        )
}
