//! Followers fetch from leaders (Kafka's `ReplicaFetcherThread`): one fetcher task per source
//! broker, fetching every partition this broker follows from it in one long-polled Fetch v12
//! (replica id = this node) on the leader's `inter.broker.listener.name` endpoint. Batches are
//! appended through the partition's log writer exactly as the leader wrote them (offsets,
//! epochs, CRCs unchanged); a DivergingEpoch answer truncates the log first (KIP-320); a fetch
//! position the leader no longer holds (retention moved its log start past it) resets the log
//! to the leader's start. The fetch offset a follower reports is its log end after the
//! writer's answer, which — when the log fsyncs before acknowledging — is durable.
//!
//! The manager starts a fetcher for each leader this broker follows a partition of and lets a
//! fetcher end once it has nothing left to fetch from its leader; leadership changes are seen
//! at the next round, so a fetcher whose leader changed restarts cleanly.
//!
//! Also here: the ISR sender, which carries the leaders' ISR proposals to the active controller
//! (AlterPartition) and their answers back. Owns connections, never partition state.

use super::context::Broker;
use super::partitions::{IsrProposal, Partition};
use crate::model::TopicPartition;
use crate::protocol::frame::{decode_response, encode_request};
use crate::protocol::responses::wire_topic_id;
use crate::replication::IsrAnswer;
use crate::runtime::net::{read_frame, write_frame, Stream};
use crate::runtime::{self};
use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    alter_partition_request, fetch_request, list_offsets_request, AlterPartitionRequest, ApiKey,
    BrokerId, FetchRequest, ListOffsetsRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Fetch v12: DivergingEpoch and last fetched epochs (KIP-320), topics by name.
const FETCH_VERSION: i16 = 12;
const LIST_OFFSETS_VERSION: i16 = 7;
/// How long a leader may hold a follower's fetch.
const FETCH_MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: usize = 64 << 20;
/// An answer later than this is given up on (the leader holds a fetch for 500 ms).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a round in which nothing could be fetched (no connection, every partition
/// refused), so a fetcher does not spin.
const BACKOFF: Duration = Duration::from_millis(100);

/// The fetcher tasks, aborted when the manager ends (the broker stopping aborts it): a fetcher
/// left running after its broker failed kept fetching, and its fetch positions told leaders
/// it held what its failed fsync had not made durable (cluster simulation, seed 9088).
struct Fetchers(BTreeMap<i32, tokio::task::JoinHandle<()>>);

impl Drop for Fetchers {
    fn drop(&mut self) {
        for task in self.0.values() {
            task.abort();
        }
    }
}

/// Runs the fetchers for as long as the broker runs.
pub async fn run_manager(broker: Arc<Broker>) {
    let mut leadership = broker.partitions.subscribe_leadership();
    let mut fetchers = Fetchers(BTreeMap::new());
    let running = &mut fetchers.0;
    loop {
        leadership.borrow_and_update();
        running.retain(|_, task| !task.is_finished());
        for leader in broker.partitions.followed_by_leader().into_keys() {
            if let std::collections::btree_map::Entry::Vacant(slot) = running.entry(leader) {
                tracing::info!(leader, "replica fetcher starting");
                slot.insert(runtime::spawn(fetcher(Arc::clone(&broker), leader)));
            }
        }
        // Woken by a leadership change, or once a second to restart fetchers that ended.
        let _ = tokio::time::timeout(Duration::from_secs(1), leadership.changed()).await;
    }
}

/// The leader's endpoint on the inter-broker listener, as the image registers it.
pub(super) fn leader_addr(broker: &Broker, leader: i32) -> Option<String> {
    let image = broker.image();
    let b = image.brokers.get(&leader)?;
    let e = b
        .endpoints
        .iter()
        .find(|e| e.name == broker.config.inter_broker_listener_name)?;
    Some(format!("{}:{}", e.host, e.port))
}

/// One request to the broker at `addr` on a connection of its own (the transaction
/// coordinator's WriteTxnMarkers), within `timeout`.
pub(super) async fn call_once(
    broker: &Broker,
    addr: &str,
    client_id: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
    timeout: Duration,
) -> Result<ResponseKind, String> {
    tokio::time::timeout(timeout, async {
        let mut stream = broker
            .config
            .inter_broker
            .connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        exchange(&mut stream, 1, client_id, api_key, version, body).await
    })
    .await
    .map_err(|_| format!("no answer from {addr} in {timeout:?}"))?
}

/// One round trip on `stream`.
async fn exchange(
    stream: &mut Stream,
    correlation_id: i32,
    client_id: &str,
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> Result<ResponseKind, String> {
    let frame = encode_request(correlation_id, client_id, api_key, version, body)
        .map_err(|e| e.to_string())?;
    write_frame(stream, &frame)
        .await
        .map_err(|e| e.to_string())?;
    let answer = read_frame(stream, RESPONSE_MAX_BYTES)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the leader closed the connection")?;
    let (got, response) = decode_response(api_key, version, answer).map_err(|e| e.to_string())?;
    if got != correlation_id {
        return Err(format!("correlation id {got}, expected {correlation_id}"));
    }
    Ok(response)
}

/// What one partition fetches from, as of the request.
struct Position {
    partition: Arc<Partition>,
    leader_epoch: i32,
    fetch_offset: u64,
    /// The log start when the fetch was sent (reported to the leader in it).
    log_start: u64,
}

async fn fetcher(broker: Arc<Broker>, leader: i32) {
    let me = broker.config.node_id;
    let client_id = format!("ketch-replica-fetcher-{me}-from-{leader}");
    let mut stream: Option<Stream> = None;
    let mut correlation_id = 0i32;
    loop {
        let mut positions: BTreeMap<TopicPartition, Position> = BTreeMap::new();
        for p in broker
            .partitions
            .followed_by_leader()
            .remove(&leader)
            .unwrap_or_default()
        {
            if let Some((l, epoch, offset, _)) = p.fetch_position() {
                if l == leader {
                    positions.insert(
                        p.tp.clone(),
                        Position {
                            partition: Arc::clone(&p),
                            leader_epoch: epoch,
                            fetch_offset: offset,
                            log_start: p.log_start(),
                        },
                    );
                }
            }
        }
        if positions.is_empty() {
            tracing::info!(
                leader,
                "replica fetcher stopping: nothing to fetch from this leader"
            );
            return;
        }
        let Some(addr) = leader_addr(&broker, leader) else {
            runtime::sleep(BACKOFF).await;
            continue;
        };
        if stream.is_none() {
            let connect = broker.config.inter_broker.connect(&addr);
            match tokio::time::timeout(broker.config.inter_broker.connect_timeout(), connect).await
            {
                Ok(Ok(s)) => {
                    stream = Some(s);
                }
                _ => {
                    runtime::sleep(BACKOFF).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let request = fetch_request(me, &positions);
        correlation_id = correlation_id.wrapping_add(1);
        let answer = tokio::time::timeout(
            EXCHANGE_TIMEOUT,
            exchange(
                s,
                correlation_id,
                &client_id,
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
            ),
        )
        .await;
        let response = match answer {
            Ok(Ok(ResponseKind::Fetch(r))) => r,
            Ok(Ok(_)) => {
                stream = None;
                continue;
            }
            Ok(Err(e)) => {
                tracing::debug!(leader, "replica fetch failed: {e}");
                stream = None;
                runtime::sleep(BACKOFF).await;
                continue;
            }
            Err(_) => {
                stream = None;
                continue;
            }
        };
        let mut progressed = false;
        for t in &response.responses {
            for pd in &t.partitions {
                let tp = TopicPartition::new(t.topic.0.to_string(), pd.partition_index);
                let Some(pos) = positions.get(&tp) else {
                    continue;
                };
                match handle_partition(&broker, leader, &addr, pos, pd).await {
                    Ok(moved) => progressed |= moved || pd.error_code == 0,
                    Err(e) => tracing::warn!(partition = %tp, leader, "replica fetch: {e}"),
                }
            }
        }
        // A truncation, reset or the leader's start may have moved log starts either way:
        // their checkpoint follows, once per answer.
        if positions
            .values()
            .any(|pos| pos.partition.log_start() != pos.log_start)
        {
            if let Err(e) = broker.partitions.write_log_starts() {
                tracing::warn!(leader, "replica fetch: checkpointing log starts: {e}");
            }
        }
        if !progressed {
            runtime::sleep(BACKOFF).await;
        }
    }
}

fn fetch_request(me: i32, positions: &BTreeMap<TopicPartition, Position>) -> RequestKind {
    let mut topics: BTreeMap<&str, Vec<fetch_request::FetchPartition>> = BTreeMap::new();
    for (tp, pos) in positions {
        let last_fetched_epoch = pos
            .partition
            .fetch_position()
            .map_or(-1, |(_, _, _, epoch)| epoch);
        topics.entry(tp.topic.as_str()).or_default().push(
            fetch_request::FetchPartition::default()
                .with_partition(tp.partition)
                .with_current_leader_epoch(pos.leader_epoch)
                .with_fetch_offset(pos.fetch_offset as i64)
                .with_last_fetched_epoch(last_fetched_epoch)
                // The leader's DeleteRecords waits until each replica reports the new start.
                .with_log_start_offset(pos.log_start as i64)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
    }
    RequestKind::Fetch(
        FetchRequest::default()
            .with_replica_id(BrokerId(me))
            .with_max_wait_ms(FETCH_MAX_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(RESPONSE_MAX_BYTES as i32 / 2)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        fetch_request::FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(name.to_string())))
                            .with_partitions(partitions)
                    })
                    .collect(),
            ),
    )
}

/// Carries out one partition's part of a fetch answer; returns whether the log moved.
async fn handle_partition(
    broker: &Broker,
    leader: i32,
    addr: &str,
    pos: &Position,
    pd: &kafka_protocol::messages::fetch_response::PartitionData,
) -> Result<bool, String> {
    let partition = &pos.partition;
    let code = pd.error_code;
    if code == 0 {
        if pd.diverging_epoch.epoch >= 0 || pd.diverging_epoch.end_offset >= 0 {
            let target = partition
                .truncation_offset(pd.diverging_epoch.epoch, pd.diverging_epoch.end_offset);
            partition
                .truncate_as_follower(target, pos.leader_epoch)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(true);
        }
        let mut moved = false;
        if let Some(records) = pd.records.as_ref().filter(|r| !r.is_empty()) {
            let data = whole_batches(records);
            if !data.is_empty() {
                // The leader may lose office, or this replica become leader, meanwhile.
                runtime::buggify_delay("follower append").await;
                partition
                    .append_as_follower(data, pos.leader_epoch, pd.log_start_offset)
                    .await
                    .map_err(|e| e.to_string())?;
                moved = true;
            }
        }
        partition.follower_high_watermark(pd.high_watermark);
        // The leader's log start moved (DeleteRecords, retention): this replica's follows.
        partition
            .follower_log_start(pd.log_start_offset)
            .map_err(|e| e.to_string())?;
        return Ok(moved);
    }
    if code == ResponseError::OffsetOutOfRange.code() {
        // Either the leader's log start moved past this position (retention): start over at
        // it; or this log runs past the leader's end (which divergence checks should have
        // caught): cut it to the leader's end.
        let earliest = list_offset(broker, addr, &partition.tp, -2).await?;
        if (pos.fetch_offset as i64) < earliest {
            partition
                .reset_as_follower(earliest as u64, pos.leader_epoch)
                .await
                .map_err(|e| e.to_string())?;
        } else {
            let latest = list_offset(broker, addr, &partition.tp, -1).await?;
            tracing::warn!(partition = %partition.tp, leader, fetch_offset = pos.fetch_offset, latest,
                "follower log runs past the leader's: truncating to it");
            partition
                .truncate_as_follower(latest.max(0) as u64, pos.leader_epoch)
                .await
                .map_err(|e| e.to_string())?;
        }
        return Ok(true);
    }
    // NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH, UNKNOWN_TOPIC: the
    // leadership moved or the leader has not seen it yet; the metadata image will tell.
    tracing::debug!(partition = %partition.tp, leader, code, "replica fetch refused");
    Ok(false)
}

/// The whole batches at the start of `records` (a leader may cut the last one short at the
/// size limit).
fn whole_batches(records: &Bytes) -> Vec<u8> {
    let mut end = 0usize;
    let mut rest = &records[..];
    while let Ok(header) = crate::protocol::record_batch::BatchHeader::parse(rest, usize::MAX) {
        let size = header.size();
        if rest.len() < size {
            break;
        }
        end += size;
        rest = &rest[size..];
    }
    records[..end].to_vec()
}

/// ListOffsets EARLIEST (-2) or LATEST (-1) of `tp` from the leader at `addr`.
async fn list_offset(
    broker: &Broker,
    addr: &str,
    tp: &TopicPartition,
    timestamp: i64,
) -> Result<i64, String> {
    let body = RequestKind::ListOffsets(
        ListOffsetsRequest::default()
            .with_replica_id(BrokerId(broker.config.node_id))
            .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(tp.topic.clone())))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(tp.partition)
                        .with_timestamp(timestamp),
                ])]),
    );
    let answer = crate::wire::call_once(
        &broker.config.inter_broker,
        addr,
        "ketch-replica-fetcher",
        ApiKey::ListOffsets,
        LIST_OFFSETS_VERSION,
        &body,
        1 << 20,
        Duration::from_secs(5),
    )
    .await;
    let Some(ResponseKind::ListOffsets(r)) = answer else {
        return Err(format!("ListOffsets to {addr}: no answer"));
    };
    let p = r
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .ok_or("ListOffsets: an empty answer")?;
    if p.error_code != 0 {
        return Err(format!("ListOffsets: error {}", p.error_code));
    }
    Ok(p.offset)
}

/// Carries the leaders' ISR proposals to the active controller and their answers back.
pub async fn run_isr_sender(broker: Arc<Broker>) {
    let Some(mut proposals) = broker.partitions.take_isr_proposals() else {
        return;
    };
    while let Some(first) = proposals.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = proposals.try_recv() {
            batch.push(more);
        }
        send_isr_changes(&broker, batch).await;
    }
}

async fn send_isr_changes(broker: &Broker, batch: Vec<IsrProposal>) {
    // The proposal may reach the controller after the leader's epoch or the ISR moved on.
    runtime::buggify_delay("alter partition").await;
    let me = broker.config.node_id;
    let broker_epoch = broker
        .image()
        .brokers
        .get(&me)
        .map_or(-1, |b| b.broker_epoch);
    let mut topics: BTreeMap<String, Vec<&IsrProposal>> = BTreeMap::new();
    for p in &batch {
        topics.entry(p.topic_id.clone()).or_default().push(p);
    }
    let request = AlterPartitionRequest::default()
        .with_broker_id(BrokerId(me))
        .with_broker_epoch(broker_epoch)
        .with_topics(
            topics
                .iter()
                .map(|(id, ps)| {
                    alter_partition_request::TopicData::default()
                        .with_topic_id(wire_topic_id(id))
                        .with_partitions(
                            ps.iter()
                                .map(|p| {
                                    alter_partition_request::PartitionData::default()
                                        .with_partition_index(p.tp.partition)
                                        .with_leader_epoch(p.leader_epoch)
                                        .with_new_isr(
                                            p.change.isr.iter().map(|b| BrokerId(*b)).collect(),
                                        )
                                        .with_partition_epoch(p.change.partition_epoch)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let answer = broker
        .controller
        .call(
            ApiKey::AlterPartition,
            2,
            &RequestKind::AlterPartition(request),
            Duration::from_secs(5),
        )
        .await;
    // (topic id, partition) → what the controller made of the change. A partition it does not
    // mention, no answer, or a request-level error (NOT_CONTROLLER: a controller that lost its
    // leadership after proposing answers so, and the next leader can still commit what it
    // proposed) may have been committed, and KIP-497's leaders resend rather than forget it.
    let mut decided: BTreeMap<(String, i32), IsrAnswer> = BTreeMap::new();
    match answer {
        Some(ResponseKind::AlterPartition(r)) if r.error_code == 0 => {
            for t in &r.topics {
                let id = crate::model::Uuid(*t.topic_id.as_bytes()).to_string();
                for p in &t.partitions {
                    if p.error_code != 0 {
                        tracing::info!(topic_id = %id, partition = p.partition_index, code = p.error_code, "ISR change refused by the controller");
                    }
                    decided.insert((id.clone(), p.partition_index), isr_answer(p));
                }
            }
        }
        Some(ResponseKind::AlterPartition(r)) => {
            tracing::warn!(code = r.error_code, "AlterPartition refused");
        }
        _ => tracing::warn!("AlterPartition: no active controller answered"),
    }
    let failed = batch.iter().any(|p| {
        !matches!(
            decided.get(&(p.topic_id.clone(), p.tp.partition)),
            Some(IsrAnswer::Committed { .. })
        )
    });
    if failed {
        // Let the image catch up before the leader proposes again.
        runtime::sleep(BACKOFF).await;
    }
    for p in &batch {
        let outcome = decided
            .remove(&(p.topic_id.clone(), p.tp.partition))
            .unwrap_or(IsrAnswer::Lost);
        if let Some(partition) = broker.partitions.get(&p.tp) {
            partition.on_isr_result(p.leader_epoch, outcome);
        }
    }
}

/// One partition's part of an AlterPartition answer, as Kafka's leaders read it
/// (`Partition.handleAlterPartitionError`): only INELIGIBLE_REPLICA and OPERATION_NOT_ATTEMPTED
/// say the change was not applied at the leader's partition epoch; a refusal because the
/// partition moved on says nothing of an earlier copy whose answer was lost; anything else may
/// pass and is sent again.
fn isr_answer(p: &kafka_protocol::messages::alter_partition_response::PartitionData) -> IsrAnswer {
    let code = p.error_code;
    if code == 0 {
        IsrAnswer::Committed {
            isr: p.isr.iter().map(|b| b.0).collect(),
            partition_epoch: p.partition_epoch,
        }
    } else if code == ResponseError::IneligibleReplica.code()
        || code == ResponseError::OperationNotAttempted.code()
    {
        IsrAnswer::NotApplied
    } else if code == ResponseError::FencedLeaderEpoch.code()
        || code == ResponseError::InvalidUpdateVersion.code()
        || code == ResponseError::NotLeaderOrFollower.code()
        || code == ResponseError::UnknownTopicOrPartition.code()
        || code == ResponseError::UnknownTopicId.code()
        || code == ResponseError::InvalidRequest.code()
    {
        IsrAnswer::Stale
    } else {
        IsrAnswer::Lost
    }
}
