//! The quorum's messages on the wire: [`crate::raft::Message`] to and from Kafka's own Vote (52,
//! v2 with KIP-996's PreVote), BeginQuorumEpoch (53, v1), EndQuorumEpoch (54, v1) and Fetch (1,
//! v17, by topic id) and FetchSnapshot (59, v1) for the `__cluster_metadata` partition 0. Entries
//! travel as record batches, one entry each, in the Fetch response's records; snapshot chunks as
//! FetchSnapshot's unaligned records.
//!
//! A response on the wire does not say which request it answers beyond the correlation id, so the
//! request the caller sent is passed back in to fill what the core wants to know (a Fetch's
//! position, whether a Vote was a pre-vote).

use crate::model::{NodeId, METADATA_TOPIC};
use crate::protocol::record_batch::{
    self, build_batch, set_partition_leader_epoch, BatchError, RecordBatch,
};
use crate::raft::{Entry, Epoch, Message, RaftError, SnapshotId};
use bytes::Bytes;
use kafka_protocol::messages::{
    begin_quorum_epoch_request, begin_quorum_epoch_response, end_quorum_epoch_request,
    end_quorum_epoch_response, fetch_request, fetch_response, fetch_snapshot_request,
    fetch_snapshot_response, vote_request, vote_response, ApiKey, BeginQuorumEpochRequest,
    BeginQuorumEpochResponse, BrokerId, EndQuorumEpochRequest, EndQuorumEpochResponse,
    FetchRequest, FetchResponse, FetchSnapshotRequest, FetchSnapshotResponse, RequestKind,
    ResponseKind, TopicName, VoteRequest, VoteResponse,
};
use kafka_protocol::protocol::StrBytes;

/// Kafka's `Uuid.METADATA_TOPIC_ID`: (0, 1).
pub const METADATA_TOPIC_ID: uuid::Uuid = uuid::Uuid::from_u64_pair(0, 1);

pub const VOTE_VERSION: i16 = 2;
pub const BEGIN_QUORUM_EPOCH_VERSION: i16 = 1;
pub const END_QUORUM_EPOCH_VERSION: i16 = 1;
pub const FETCH_VERSION: i16 = 17;
pub const FETCH_SNAPSHOT_VERSION: i16 = 1;
/// How long a leader may hold a follower's fetch (the core's long poll).
pub const FETCH_MAX_WAIT_MS: i32 = 500;

/// One batch holding one entry.
pub fn entry_batch(entry: &Entry) -> Vec<u8> {
    let mut batch = build_batch(entry.offset as i64, 0, &[(None, &entry.data)]);
    set_partition_leader_epoch(&mut batch, entry.epoch);
    batch
}

/// The entries in a run of batches (as read from the log or received in a fetch).
pub fn entries_from_batches(mut bytes: &[u8]) -> Result<Vec<Entry>, BatchError> {
    let mut entries = Vec::new();
    while !bytes.is_empty() {
        let (batch, rest) = RecordBatch::parse(bytes, usize::MAX)?;
        for record in record_batch::records(&batch)? {
            entries.push(Entry {
                offset: (batch.base_offset() + record.offset_delta) as u64,
                epoch: batch.partition_leader_epoch(),
                data: record.value.unwrap_or_default().to_vec(),
            });
        }
        bytes = rest;
    }
    Ok(entries)
}

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(METADATA_TOPIC))
}

fn node(id: BrokerId) -> Option<NodeId> {
    (id.0 >= 0).then_some(NodeId(id.0))
}

fn broker(id: Option<NodeId>) -> BrokerId {
    BrokerId(id.map_or(-1, |n| n.0))
}

fn error_code(e: Option<RaftError>) -> i16 {
    e.map_or(0, RaftError::code)
}

fn error_from(code: i16) -> Option<RaftError> {
    if code == 0 {
        return None;
    }
    let known = [
        RaftError::FencedLeaderEpoch,
        RaftError::UnknownLeaderEpoch,
        RaftError::InconsistentVoterSet,
        RaftError::InconsistentClusterId,
        RaftError::SnapshotNotFound,
        RaftError::PositionOutOfRange,
    ];
    Some(
        known
            .into_iter()
            .find(|e| e.code() == code)
            .unwrap_or(RaftError::NotLeaderOrFollower),
    )
}

/// A snapshot id from the wire: Kafka sends (-1, -1) for none.
fn snapshot_id(end_offset: i64, epoch: i32) -> Option<SnapshotId> {
    Some(SnapshotId {
        end_offset: u64::try_from(end_offset).ok()?,
        epoch: (epoch >= 0).then_some(epoch)?,
    })
}

fn malformed(what: &str) -> String {
    format!("malformed {what}: no {METADATA_TOPIC} partition 0 in it")
}

/// A core request as a Kafka request to `to`.
pub fn request_to_wire(
    to: NodeId,
    message: &Message,
    cluster_id: &str,
) -> Option<(ApiKey, i16, RequestKind)> {
    let cluster = Some(StrBytes::from_string(cluster_id.to_string()));
    match message {
        Message::VoteRequest {
            epoch,
            candidate,
            last_epoch,
            end_offset,
            pre_vote,
        } => {
            let partition = vote_request::PartitionData::default()
                .with_partition_index(0)
                .with_replica_epoch(*epoch)
                .with_replica_id(BrokerId(candidate.0))
                .with_last_offset_epoch(*last_epoch)
                .with_last_offset(*end_offset as i64)
                .with_pre_vote(*pre_vote);
            let body = VoteRequest::default()
                .with_cluster_id(cluster)
                .with_voter_id(BrokerId(to.0))
                .with_topics(vec![vote_request::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![partition])]);
            Some((ApiKey::Vote, VOTE_VERSION, RequestKind::Vote(body)))
        }
        Message::BeginQuorumEpoch { epoch, leader } => {
            let partition = begin_quorum_epoch_request::PartitionData::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(leader.0))
                .with_leader_epoch(*epoch);
            let body = BeginQuorumEpochRequest::default()
                .with_cluster_id(cluster)
                .with_voter_id(BrokerId(to.0))
                .with_topics(vec![begin_quorum_epoch_request::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![partition])]);
            Some((
                ApiKey::BeginQuorumEpoch,
                BEGIN_QUORUM_EPOCH_VERSION,
                RequestKind::BeginQuorumEpoch(body),
            ))
        }
        Message::EndQuorumEpoch {
            epoch,
            leader,
            preferred_successors,
        } => {
            let partition = end_quorum_epoch_request::PartitionData::default()
                .with_partition_index(0)
                .with_leader_id(BrokerId(leader.0))
                .with_leader_epoch(*epoch)
                // v0 names successors by id, v1 as candidates (KIP-853); fill both.
                .with_preferred_successors(preferred_successors.iter().map(|n| n.0).collect())
                .with_preferred_candidates(
                    preferred_successors
                        .iter()
                        .map(|n| {
                            end_quorum_epoch_request::ReplicaInfo::default()
                                .with_candidate_id(BrokerId(n.0))
                        })
                        .collect(),
                );
            let body = EndQuorumEpochRequest::default()
                .with_cluster_id(cluster)
                .with_topics(vec![end_quorum_epoch_request::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![partition])]);
            Some((
                ApiKey::EndQuorumEpoch,
                END_QUORUM_EPOCH_VERSION,
                RequestKind::EndQuorumEpoch(body),
            ))
        }
        Message::FetchRequest {
            epoch,
            replica,
            fetch_offset,
            last_fetched_epoch,
        } => {
            let partition = fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(*fetch_offset as i64)
                .with_last_fetched_epoch(*last_fetched_epoch)
                .with_partition_max_bytes(1 << 20);
            let body = FetchRequest::default()
                .with_cluster_id(cluster)
                .with_replica_state(
                    fetch_request::ReplicaState::default().with_replica_id(BrokerId(replica.0)),
                )
                .with_max_wait_ms(FETCH_MAX_WAIT_MS)
                .with_min_bytes(0)
                .with_max_bytes(8 << 20)
                .with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic_id(METADATA_TOPIC_ID)
                    .with_partitions(vec![partition])]);
            Some((ApiKey::Fetch, FETCH_VERSION, RequestKind::Fetch(body)))
        }
        Message::FetchSnapshotRequest {
            epoch,
            replica,
            snapshot,
            position,
        } => {
            let partition = fetch_snapshot_request::PartitionSnapshot::default()
                .with_partition(0)
                .with_current_leader_epoch(*epoch)
                .with_snapshot_id(
                    fetch_snapshot_request::SnapshotId::default()
                        .with_end_offset(snapshot.end_offset as i64)
                        .with_epoch(snapshot.epoch),
                )
                .with_position(*position as i64);
            let body = FetchSnapshotRequest::default()
                .with_cluster_id(cluster)
                .with_replica_id(BrokerId(replica.0))
                .with_max_bytes(i32::MAX)
                .with_topics(vec![fetch_snapshot_request::TopicSnapshot::default()
                    .with_name(topic_name())
                    .with_partitions(vec![partition])]);
            Some((
                ApiKey::FetchSnapshot,
                FETCH_SNAPSHOT_VERSION,
                RequestKind::FetchSnapshot(body),
            ))
        }
        _ => None,
    }
}

/// A Kafka request received on the controller listener as a core message and its sender.
pub fn request_from_wire(request: &RequestKind) -> Result<(NodeId, Message), String> {
    match request {
        RequestKind::Vote(r) => {
            let p = r
                .topics
                .iter()
                .find(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
                .ok_or_else(|| malformed("Vote"))?;
            let candidate = node(p.replica_id).ok_or("Vote from a negative replica id")?;
            Ok((
                candidate,
                Message::VoteRequest {
                    epoch: p.replica_epoch,
                    candidate,
                    last_epoch: p.last_offset_epoch,
                    end_offset: u64::try_from(p.last_offset)
                        .map_err(|_| "negative offset in Vote")?,
                    pre_vote: p.pre_vote,
                },
            ))
        }
        RequestKind::BeginQuorumEpoch(r) => {
            let p = r
                .topics
                .iter()
                .find(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
                .ok_or_else(|| malformed("BeginQuorumEpoch"))?;
            let leader = node(p.leader_id).ok_or("BeginQuorumEpoch with no leader")?;
            Ok((
                leader,
                Message::BeginQuorumEpoch {
                    epoch: p.leader_epoch,
                    leader,
                },
            ))
        }
        RequestKind::EndQuorumEpoch(r) => {
            let p = r
                .topics
                .iter()
                .find(|t| t.topic_name.0.as_str() == METADATA_TOPIC)
                .and_then(|t| t.partitions.iter().find(|p| p.partition_index == 0))
                .ok_or_else(|| malformed("EndQuorumEpoch"))?;
            let leader = node(p.leader_id).ok_or("EndQuorumEpoch with no leader")?;
            Ok((
                leader,
                Message::EndQuorumEpoch {
                    epoch: p.leader_epoch,
                    leader,
                    preferred_successors: if p.preferred_candidates.is_empty() {
                        p.preferred_successors
                            .iter()
                            .filter(|n| **n >= 0)
                            .map(|n| NodeId(*n))
                            .collect()
                    } else {
                        p.preferred_candidates
                            .iter()
                            .filter_map(|c| node(c.candidate_id))
                            .collect()
                    },
                },
            ))
        }
        RequestKind::Fetch(r) => {
            let p = r
                .topics
                .iter()
                .find(|t| t.topic_id == METADATA_TOPIC_ID || t.topic.0.as_str() == METADATA_TOPIC)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == 0))
                .ok_or_else(|| malformed("Fetch"))?;
            let replica_id = if r.replica_state.replica_id.0 >= 0 {
                r.replica_state.replica_id
            } else {
                r.replica_id
            };
            let replica =
                node(replica_id).ok_or("Fetch from a consumer on the controller listener")?;
            Ok((
                replica,
                Message::FetchRequest {
                    epoch: p.current_leader_epoch,
                    replica,
                    fetch_offset: u64::try_from(p.fetch_offset)
                        .map_err(|_| "negative fetch offset")?,
                    last_fetched_epoch: p.last_fetched_epoch,
                },
            ))
        }
        RequestKind::FetchSnapshot(r) => {
            let p = r
                .topics
                .iter()
                .find(|t| t.name.0.as_str() == METADATA_TOPIC)
                .and_then(|t| t.partitions.iter().find(|p| p.partition == 0))
                .ok_or_else(|| malformed("FetchSnapshot"))?;
            let replica = node(r.replica_id).ok_or("FetchSnapshot from a negative replica id")?;
            let snapshot = snapshot_id(p.snapshot_id.end_offset, p.snapshot_id.epoch)
                .ok_or("FetchSnapshot of a negative snapshot id")?;
            Ok((
                replica,
                Message::FetchSnapshotRequest {
                    epoch: p.current_leader_epoch,
                    replica,
                    snapshot,
                    position: u64::try_from(p.position)
                        .map_err(|_| "negative FetchSnapshot position")?,
                },
            ))
        }
        _ => Err("not a quorum request".to_string()),
    }
}

/// The cluster id a quorum request names, if it names one.
pub fn cluster_id_of(request: &RequestKind) -> Option<&str> {
    let id = match request {
        RequestKind::Vote(r) => r.cluster_id.as_ref(),
        RequestKind::BeginQuorumEpoch(r) => r.cluster_id.as_ref(),
        RequestKind::EndQuorumEpoch(r) => r.cluster_id.as_ref(),
        RequestKind::Fetch(r) => r.cluster_id.as_ref(),
        RequestKind::FetchSnapshot(r) => r.cluster_id.as_ref(),
        _ => None,
    };
    id.map(|s| s.as_str())
}

/// The answer to a quorum request from another cluster: error 104, epoch 0 (which the sender's
/// core ignores as stale).
pub fn inconsistent_cluster_response(request: &Message) -> Option<Message> {
    let error = Some(RaftError::InconsistentClusterId);
    Some(match request {
        Message::VoteRequest { pre_vote, .. } => Message::VoteResponse {
            epoch: 0,
            granted: false,
            pre_vote: *pre_vote,
            leader: None,
            error,
        },
        Message::BeginQuorumEpoch { .. } => Message::BeginQuorumEpochResponse { epoch: 0, error },
        Message::EndQuorumEpoch { .. } => Message::EndQuorumEpochResponse { epoch: 0, error },
        Message::FetchRequest {
            fetch_offset,
            last_fetched_epoch,
            ..
        } => Message::FetchResponse {
            epoch: 0,
            answers: (*fetch_offset, *last_fetched_epoch),
            leader: None,
            high_watermark: 0,
            entries: Vec::new(),
            diverging: None,
            snapshot: None,
            error,
        },
        Message::FetchSnapshotRequest {
            snapshot, position, ..
        } => Message::FetchSnapshotResponse {
            epoch: 0,
            leader: None,
            snapshot: *snapshot,
            size: 0,
            position: *position,
            bytes: Vec::new(),
            error,
        },
        _ => return None,
    })
}

/// Which request a response answers, so responses can be paired with waiting requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exchange {
    Vote,
    BeginQuorumEpoch,
    EndQuorumEpoch,
    Fetch,
    FetchSnapshot,
}

pub fn exchange_of(message: &Message) -> Exchange {
    match message {
        Message::VoteRequest { .. } | Message::VoteResponse { .. } => Exchange::Vote,
        Message::BeginQuorumEpoch { .. } | Message::BeginQuorumEpochResponse { .. } => {
            Exchange::BeginQuorumEpoch
        }
        Message::EndQuorumEpoch { .. } | Message::EndQuorumEpochResponse { .. } => {
            Exchange::EndQuorumEpoch
        }
        Message::FetchRequest { .. } | Message::FetchResponse { .. } => Exchange::Fetch,
        Message::FetchSnapshotRequest { .. } | Message::FetchSnapshotResponse { .. } => {
            Exchange::FetchSnapshot
        }
    }
}

pub fn is_response(message: &Message) -> bool {
    matches!(
        message,
        Message::VoteResponse { .. }
            | Message::BeginQuorumEpochResponse { .. }
            | Message::EndQuorumEpochResponse { .. }
            | Message::FetchResponse { .. }
            | Message::FetchSnapshotResponse { .. }
    )
}

/// A core response as the Kafka response body.
pub fn response_to_wire(message: &Message) -> Option<ResponseKind> {
    match message {
        Message::VoteResponse {
            epoch,
            granted,
            leader,
            error,
            ..
        } => {
            let partition = vote_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(error_code(*error))
                .with_leader_id(broker(*leader))
                .with_leader_epoch(*epoch)
                .with_vote_granted(*granted);
            Some(ResponseKind::Vote(VoteResponse::default().with_topics(
                vec![
                vote_response::TopicData::default()
                    .with_topic_name(topic_name())
                    .with_partitions(vec![partition]),
            ],
            )))
        }
        Message::BeginQuorumEpochResponse { epoch, error } => {
            let partition = begin_quorum_epoch_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(error_code(*error))
                .with_leader_epoch(*epoch);
            Some(ResponseKind::BeginQuorumEpoch(
                BeginQuorumEpochResponse::default().with_topics(vec![
                    begin_quorum_epoch_response::TopicData::default()
                        .with_topic_name(topic_name())
                        .with_partitions(vec![partition]),
                ]),
            ))
        }
        Message::EndQuorumEpochResponse { epoch, error } => {
            let partition = end_quorum_epoch_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(error_code(*error))
                .with_leader_epoch(*epoch);
            Some(ResponseKind::EndQuorumEpoch(
                EndQuorumEpochResponse::default().with_topics(vec![
                    end_quorum_epoch_response::TopicData::default()
                        .with_topic_name(topic_name())
                        .with_partitions(vec![partition]),
                ]),
            ))
        }
        Message::FetchResponse {
            epoch,
            leader,
            high_watermark,
            entries,
            diverging,
            snapshot,
            error,
            ..
        } => {
            let mut records = Vec::new();
            for e in entries {
                records.extend(entry_batch(e));
            }
            let mut partition = fetch_response::PartitionData::default()
                .with_partition_index(0)
                .with_error_code(error_code(*error))
                .with_high_watermark(*high_watermark as i64)
                .with_current_leader(
                    fetch_response::LeaderIdAndEpoch::default()
                        .with_leader_id(broker(*leader))
                        .with_leader_epoch(*epoch),
                )
                .with_records(Some(Bytes::from(records)));
            if let Some((e, end)) = diverging {
                partition = partition.with_diverging_epoch(
                    fetch_response::EpochEndOffset::default()
                        .with_epoch(*e)
                        .with_end_offset(*end as i64),
                );
            }
            if let Some(s) = snapshot {
                partition = partition.with_snapshot_id(
                    fetch_response::SnapshotId::default()
                        .with_end_offset(s.end_offset as i64)
                        .with_epoch(s.epoch),
                );
            }
            Some(ResponseKind::Fetch(
                FetchResponse::default().with_responses(vec![
                    fetch_response::FetchableTopicResponse::default()
                        .with_topic_id(METADATA_TOPIC_ID)
                        .with_partitions(vec![partition]),
                ]),
            ))
        }
        Message::FetchSnapshotResponse {
            epoch,
            leader,
            snapshot,
            size,
            position,
            bytes,
            error,
        } => {
            let partition = fetch_snapshot_response::PartitionSnapshot::default()
                .with_index(0)
                .with_error_code(error_code(*error))
                .with_snapshot_id(
                    fetch_snapshot_response::SnapshotId::default()
                        .with_end_offset(snapshot.end_offset as i64)
                        .with_epoch(snapshot.epoch),
                )
                .with_current_leader(
                    fetch_snapshot_response::LeaderIdAndEpoch::default()
                        .with_leader_id(broker(*leader))
                        .with_leader_epoch(*epoch),
                )
                .with_size(*size as i64)
                .with_position(*position as i64)
                .with_unaligned_records(Bytes::copy_from_slice(bytes));
            Some(ResponseKind::FetchSnapshot(
                FetchSnapshotResponse::default().with_topics(vec![
                    fetch_snapshot_response::TopicSnapshot::default()
                        .with_name(topic_name())
                        .with_partitions(vec![partition]),
                ]),
            ))
        }
        _ => None,
    }
}

/// A Kafka response, to the request `sent`, as a core message.
pub fn response_from_wire(sent: &Message, response: ResponseKind) -> Result<Message, String> {
    let leader_epoch = |id: BrokerId, e: Epoch| (node(id), e);
    match (sent, response) {
        (Message::VoteRequest { pre_vote, .. }, ResponseKind::Vote(r)) => {
            let p = r
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == 0)
                .ok_or_else(|| malformed("Vote response"))?;
            let (leader, epoch) = leader_epoch(p.leader_id, p.leader_epoch);
            Ok(Message::VoteResponse {
                epoch,
                granted: p.vote_granted,
                pre_vote: *pre_vote,
                leader,
                error: error_from(p.error_code).or(error_from(r.error_code)),
            })
        }
        (Message::BeginQuorumEpoch { .. }, ResponseKind::BeginQuorumEpoch(r)) => {
            let p = r
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == 0)
                .ok_or_else(|| malformed("BeginQuorumEpoch response"))?;
            Ok(Message::BeginQuorumEpochResponse {
                epoch: p.leader_epoch,
                error: error_from(p.error_code),
            })
        }
        (Message::EndQuorumEpoch { .. }, ResponseKind::EndQuorumEpoch(r)) => {
            let p = r
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == 0)
                .ok_or_else(|| malformed("EndQuorumEpoch response"))?;
            Ok(Message::EndQuorumEpochResponse {
                epoch: p.leader_epoch,
                error: error_from(p.error_code),
            })
        }
        (
            Message::FetchRequest {
                fetch_offset,
                last_fetched_epoch,
                ..
            },
            ResponseKind::Fetch(r),
        ) => {
            let p = r
                .responses
                .into_iter()
                .filter(|t| t.topic_id == METADATA_TOPIC_ID)
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == 0)
                .ok_or_else(|| malformed("Fetch response"))?;
            let entries = match &p.records {
                Some(bytes) => entries_from_batches(bytes)
                    .map_err(|e| format!("Fetch response records: {e}"))?,
                None => Vec::new(),
            };
            let diverging = (p.diverging_epoch.epoch >= 0 && p.diverging_epoch.end_offset >= 0)
                .then_some((p.diverging_epoch.epoch, p.diverging_epoch.end_offset as u64));
            Ok(Message::FetchResponse {
                epoch: p.current_leader.leader_epoch,
                answers: (*fetch_offset, *last_fetched_epoch),
                leader: node(p.current_leader.leader_id),
                high_watermark: u64::try_from(p.high_watermark).unwrap_or(0),
                entries,
                diverging,
                snapshot: snapshot_id(p.snapshot_id.end_offset, p.snapshot_id.epoch),
                error: error_from(p.error_code),
            })
        }
        (
            Message::FetchSnapshotRequest {
                snapshot, position, ..
            },
            ResponseKind::FetchSnapshot(r),
        ) => {
            let p = r
                .topics
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.index == 0)
                .ok_or_else(|| malformed("FetchSnapshot response"))?;
            let error = error_from(p.error_code).or(error_from(r.error_code));
            let answered = snapshot_id(p.snapshot_id.end_offset, p.snapshot_id.epoch);
            if error.is_none() && (answered != Some(*snapshot) || p.position != *position as i64) {
                return Err("FetchSnapshot response for another snapshot or position".into());
            }
            Ok(Message::FetchSnapshotResponse {
                epoch: p.current_leader.leader_epoch,
                leader: node(p.current_leader.leader_id),
                snapshot: *snapshot,
                size: u64::try_from(p.size).map_err(|_| "negative snapshot size")?,
                position: *position,
                bytes: p.unaligned_records.to_vec(),
                error,
            })
        }
        (sent, other) => Err(format!(
            "response {:?} does not answer {:?}",
            other.header_version_hint(),
            exchange_of(sent)
        )),
    }
}

trait HeaderHint {
    fn header_version_hint(&self) -> &'static str;
}

impl HeaderHint for ResponseKind {
    fn header_version_hint(&self) -> &'static str {
        match self {
            ResponseKind::Vote(_) => "Vote",
            ResponseKind::Fetch(_) => "Fetch",
            ResponseKind::BeginQuorumEpoch(_) => "BeginQuorumEpoch",
            ResponseKind::EndQuorumEpoch(_) => "EndQuorumEpoch",
            ResponseKind::FetchSnapshot(_) => "FetchSnapshot",
            _ => "another API",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::frame::{
        decode_request, decode_response, encode_request, encode_response,
    };
    use crate::raft::Entry;

    fn all_versions(k: ApiKey) -> Option<(i16, i16)> {
        let r = k.valid_versions();
        Some((r.min, r.max))
    }

    /// Every quorum message survives core → Kafka request bytes → core, and its answer survives
    /// core → Kafka response bytes → core.
    #[test]
    fn quorum_messages_round_trip_through_kafka_bytes() {
        let requests = [
            Message::VoteRequest {
                epoch: 5,
                candidate: NodeId(2),
                last_epoch: 4,
                end_offset: 99,
                pre_vote: true,
            },
            Message::BeginQuorumEpoch {
                epoch: 5,
                leader: NodeId(2),
            },
            Message::EndQuorumEpoch {
                epoch: 5,
                leader: NodeId(2),
                preferred_successors: vec![NodeId(3)],
            },
            Message::FetchRequest {
                epoch: 5,
                replica: NodeId(3),
                fetch_offset: 10,
                last_fetched_epoch: 4,
            },
            Message::FetchSnapshotRequest {
                epoch: 5,
                replica: NodeId(3),
                snapshot: SnapshotId {
                    end_offset: 40,
                    epoch: 3,
                },
                position: 1024,
            },
        ];
        let responses = vec![
            Message::VoteResponse {
                epoch: 5,
                granted: true,
                pre_vote: true,
                leader: None,
                error: None,
            },
            Message::BeginQuorumEpochResponse {
                epoch: 5,
                error: Some(RaftError::FencedLeaderEpoch),
            },
            Message::EndQuorumEpochResponse {
                epoch: 5,
                error: None,
            },
            Message::FetchResponse {
                epoch: 5,
                answers: (10, 4),
                leader: Some(NodeId(2)),
                high_watermark: 11,
                entries: vec![
                    Entry {
                        offset: 10,
                        epoch: 5,
                        data: b"x".to_vec(),
                    },
                    Entry {
                        offset: 11,
                        epoch: 5,
                        data: b"".to_vec(),
                    },
                ],
                diverging: Some((4, 9)),
                snapshot: None,
                error: None,
            },
            Message::FetchSnapshotResponse {
                epoch: 5,
                leader: Some(NodeId(2)),
                snapshot: SnapshotId {
                    end_offset: 40,
                    epoch: 3,
                },
                size: 2000,
                position: 1024,
                bytes: vec![7; 976],
                error: None,
            },
        ];
        for (request, response) in requests.iter().zip(responses) {
            let (api_key, version, body) = request_to_wire(NodeId(1), request, "cluster").unwrap();
            let frame = encode_request(7, "ketch", api_key, version, &body).unwrap();
            let decoded = decode_request(frame.slice(4..), all_versions).unwrap();
            assert_eq!(decoded.header.correlation_id, 7);
            let (from, back) = request_from_wire(&decoded.body).unwrap();
            assert_eq!(&back, request);
            assert!(from.0 >= 2);
            let wire = response_to_wire(&response).unwrap();
            let frame = encode_response(7, api_key, version, &wire).unwrap();
            let (correlation_id, body) =
                decode_response(api_key, version, frame.slice(4..)).unwrap();
            assert_eq!(correlation_id, 7);
            assert_eq!(response_from_wire(request, body).unwrap(), response);
        }
    }
}
