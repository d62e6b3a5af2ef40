//! The quorum's shell: drives a [`RaftNode`] over the metadata log on disk, the `quorum-state`
//! file, and TCP on the controller listener, with Kafka's own messages.
//!
//! - One driver task owns the node. It takes inbound requests and responses from a channel,
//!   ticks every 10 ms, and carries out each [`crate::raft::Ready`] in the order the core
//!   requires: persist the quorum state, flush the log, then send.
//! - The listener's connections decode requests and hand them to the driver with a reply slot;
//!   the core's response to that peer and exchange fills the oldest waiting slot.
//! - Each peer voter gets two client connections (fetches, which a leader may hold for
//!   500 ms, and everything else), each one request at a time; a request that finds no
//!   connection, or whose answer does not come in time, is dropped: the core retries.

use super::metadata::MetadataDriver;
use super::net::{read_frame, write_frame};
use super::raft_storage::{read_quorum_state, write_quorum_state, DiskRaftLog, QUORUM_STATE_FILE};
use super::raft_wire::{
    cluster_id_of, exchange_of, inconsistent_cluster_response, is_response, request_from_wire,
    request_to_wire, response_from_wire, response_to_wire, Exchange, METADATA_TOPIC,
};
use crate::controller::{Controller, ControllerConfig, MetadataImage};
use crate::log::Log;
use crate::model::NodeId;
use crate::protocol::frame::{
    decode_request, decode_response, encode_request, encode_response, FrameError,
};
use crate::raft::{self, Message, RaftLog, RaftNode, Role};
use crate::runtime::{self, net::TcpListener, net::TcpStream, Clock, Disk};
use kafka_protocol::messages::{
    api_versions_response, describe_quorum_response, ApiKey, ApiVersionsResponse, BrokerId,
    DescribeQuorumResponse, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Largest frame accepted on the controller listener.
const MAX_FRAME_BYTES: usize = 16 << 20;
/// How long a connection waits for the core to answer a request before giving up on it.
const REPLY_TIMEOUT: Duration = Duration::from_secs(3);
const TICK: Duration = Duration::from_millis(10);

/// What a quorum member looks like after each step, for observers (logs, the simulator's
/// checks, later the broker's view of the metadata leader).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumStatus {
    pub node_id: NodeId,
    pub role: Role,
    pub epoch: raft::Epoch,
    pub leader: Option<NodeId>,
    /// Whom this member voted for in `epoch` (as its quorum state holds it).
    pub voted_for: Option<NodeId>,
    pub high_watermark: u64,
    pub log_end: u64,
    /// The metadata log's first offset: above 0 once a snapshot let the entries before go.
    pub log_start: u64,
    /// Snapshots fetched from a leader and installed since this member started.
    pub snapshots_installed: u64,
    /// The last metadata offset replayed into this member's image (-1 before any).
    pub metadata_offset: i64,
}

/// Called with the member's status after every step; must be quick.
pub type Observer = Arc<dyn Fn(&QuorumStatus) + Send + Sync>;

/// A request to append an entry to the metadata log; answered with its offset and the leader's
/// epoch once appended (not yet committed), or why not.
pub struct Proposal {
    pub data: Vec<u8>,
    pub reply: oneshot::Sender<Result<(u64, raft::Epoch), String>>,
}

/// Proposes entries to a running quorum member.
#[derive(Clone)]
pub struct QuorumHandle {
    tx: mpsc::Sender<Proposal>,
}

impl QuorumHandle {
    /// Appends `data` if this member leads; the returned offset is committed once the high
    /// watermark passes it.
    pub async fn propose(&self, data: Vec<u8>) -> Result<(u64, raft::Epoch), String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Proposal { data, reply })
            .await
            .map_err(|_| "quorum member stopped".to_string())?;
        answer
            .await
            .map_err(|_| "quorum member stopped".to_string())?
    }
}

/// A handle and the receiving end to give to [`run`].
pub fn proposal_channel() -> (QuorumHandle, mpsc::Receiver<Proposal>) {
    let (tx, rx) = mpsc::channel(256);
    (QuorumHandle { tx }, rx)
}

pub struct QuorumConfig {
    pub node_id: NodeId,
    pub cluster_id: String,
    pub voters: BTreeMap<NodeId, (String, u16)>,
    /// The controller listener; `None` for an observer (a broker-only node), which only fetches.
    pub listen: Option<(String, u16)>,
    /// `<metadata.log.dir>/__cluster_metadata-0`.
    pub metadata_dir: PathBuf,
    pub election_timeout_ms: u64,
    pub fetch_timeout_ms: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`.
    pub snapshot_interval_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms`.
    pub snapshot_interval_ms: u64,
    /// The controller's settings (`broker.session.timeout.ms`, topic defaults).
    pub controller: ControllerConfig,
    pub observer: Option<Observer>,
    /// Where the committed metadata image is published whenever it changes (the broker).
    pub image: Option<watch::Sender<Arc<MetadataImage>>>,
    /// Deliberate bugs for the simulator; inert without the `planted-bugs` feature.
    pub bugs: QuorumBugs,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuorumBugs {
    /// Report the metadata log flushed without flushing it.
    pub skip_log_flush: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Storage(String),
    #[error("the metadata log failed: {0}")]
    Log(String),
}

enum Inbound {
    Request {
        from: NodeId,
        message: Message,
        reply: oneshot::Sender<Message>,
    },
    Response {
        from: NodeId,
        message: Message,
    },
    Describe {
        reply: oneshot::Sender<DescribeQuorumResponse>,
    },
    /// A request for the controller: BrokerRegistration, BrokerHeartbeat, CreateTopics.
    Controller {
        request: RequestKind,
        reply: oneshot::Sender<ResponseKind>,
    },
}

pub fn supported(api_key: ApiKey) -> Option<(i16, i16)> {
    match api_key {
        ApiKey::ApiVersions => Some((0, 4)),
        ApiKey::Vote => Some((0, 2)),
        ApiKey::BeginQuorumEpoch => Some((0, 1)),
        ApiKey::EndQuorumEpoch => Some((0, 1)),
        ApiKey::Fetch => Some((13, 17)),
        ApiKey::FetchSnapshot => Some((0, 1)),
        ApiKey::DescribeQuorum => Some((0, 2)),
        ApiKey::BrokerRegistration => Some((0, 4)),
        ApiKey::BrokerHeartbeat => Some((0, 1)),
        ApiKey::CreateTopics => Some((2, 7)),
        ApiKey::DeleteTopics => Some((1, 6)),
        ApiKey::CreatePartitions => Some((0, 3)),
        ApiKey::AllocateProducerIds => Some((0, 0)),
        ApiKey::IncrementalAlterConfigs => Some((0, 1)),
        _ => None,
    }
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let keys = [
        ApiKey::Fetch,
        ApiKey::FetchSnapshot,
        ApiKey::ApiVersions,
        ApiKey::Vote,
        ApiKey::BeginQuorumEpoch,
        ApiKey::EndQuorumEpoch,
        ApiKey::DescribeQuorum,
        ApiKey::BrokerRegistration,
        ApiKey::BrokerHeartbeat,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::CreatePartitions,
        ApiKey::AllocateProducerIds,
        ApiKey::IncrementalAlterConfigs,
    ];
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            keys.iter()
                .filter_map(|k| {
                    supported(*k).map(|(min, max)| {
                        api_versions_response::ApiVersion::default()
                            .with_api_key(*k as i16)
                            .with_min_version(min)
                            .with_max_version(max)
                    })
                })
                .collect(),
        )
}

/// Runs the quorum member until `shutdown` completes or the log fails.
pub async fn run(
    config: QuorumConfig,
    disk: Arc<dyn Disk>,
    log: Log,
    clock: Clock,
    seed: u64,
    mut proposals: mpsc::Receiver<Proposal>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), QuorumError> {
    let state_path = config.metadata_dir.join(QUORUM_STATE_FILE);
    let durable = read_quorum_state(disk.as_ref(), &state_path)
        .map_err(|e| QuorumError::Storage(e.to_string()))?;
    let raft_log = DiskRaftLog::open(log, Arc::clone(&disk))
        .map_err(|e| QuorumError::Storage(e.to_string()))?;
    let mut core_config =
        raft::Config::new(config.node_id, config.voters.keys().copied().collect());
    core_config.election_timeout_ms = config.election_timeout_ms;
    core_config.fetch_timeout_ms = config.fetch_timeout_ms;
    tracing::info!(
        node = %config.node_id,
        epoch = durable.epoch,
        log_end = raft_log.end_offset(),
        "quorum member starting"
    );
    let mut node = RaftNode::new(core_config, raft_log, durable, clock.monotonic_ms(), seed);
    let mut metadata = MetadataDriver::new(Controller::new(
        config.controller.clone(),
        seed ^ 0xC0_47_20_11,
    ));
    // Start from the latest snapshot; the log after it is replayed as it commits.
    if let Some(snapshot) = node.log().read_latest_snapshot() {
        let (id, bytes) = snapshot.map_err(QuorumError::Storage)?;
        metadata
            .load_snapshot(id, &bytes)
            .map_err(QuorumError::Storage)?;
        tracing::info!(
            end_offset = id.end_offset,
            epoch = id.epoch,
            "metadata image loaded from snapshot"
        );
    }

    let (inbound_tx, mut inbound_rx) = mpsc::channel::<Inbound>(1024);
    // The listener and the peer clients end with this member, however it ends.
    let mut tasks = TaskGuard(Vec::new());
    if let Some((host, port)) = &config.listen {
        let addr = format!("{}:{port}", if host.is_empty() { "0.0.0.0" } else { host });
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| QuorumError::Listen {
                addr: addr.clone(),
                source,
            })?;
        tracing::info!(%addr, "controller listener ready");
        let inbound = inbound_tx.clone();
        let cluster_id: Arc<str> = Arc::from(config.cluster_id.as_str());
        tasks.0.push(runtime::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) => {
                        let inbound = inbound.clone();
                        let cluster_id = Arc::clone(&cluster_id);
                        runtime::spawn(async move {
                            if let Err(e) = serve_connection(stream, inbound, &cluster_id).await {
                                tracing::debug!(%peer, "controller connection closed: {e}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        runtime::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }
    let mut outbound: BTreeMap<(NodeId, bool), mpsc::Sender<Message>> = BTreeMap::new();
    for (id, (host, port)) in &config.voters {
        if *id == config.node_id {
            continue;
        }
        for fetches in [true, false] {
            let (tx, rx) = mpsc::channel(64);
            outbound.insert((*id, fetches), tx);
            tasks.0.push(runtime::spawn(peer_client(
                *id,
                format!("{host}:{port}"),
                rx,
                inbound_tx.clone(),
                config.cluster_id.clone(),
                config.node_id,
            )));
        }
    }

    let mut pending: BTreeMap<(NodeId, Exchange), VecDeque<Slot>> = BTreeMap::new();
    let mut ticker = runtime::interval(TICK);
    let mut last_view = (Role::Unattached, -1, None);
    let mut snapshots_installed = 0u64;
    tokio::pin!(shutdown);
    loop {
        let now = clock.monotonic_ms();
        let step = tokio::select! {
            _ = &mut shutdown => break,
            _ = ticker.tick() => node.tick(now),
            event = inbound_rx.recv() => match event {
                None => break,
                Some(Inbound::Request { from, message, reply }) => {
                    let key = fetch_key(&message);
                    pending.entry((from, exchange_of(&message))).or_default().push_back((key, reply));
                    node.step(from, message, now)
                }
                Some(Inbound::Response { from, message }) => node.step(from, message, now),
                Some(Inbound::Describe { reply }) => {
                    let _ = reply.send(describe(&node, &clock, now));
                    Ok(())
                }
                Some(Inbound::Controller { request, reply }) => {
                    metadata.handle(&mut node, &request, reply, now);
                    Ok(())
                }
            },
            Some(proposal) = proposals.recv() => {
                let result = node.propose(proposal.data, now);
                let answer = match result {
                    Ok(offset) => Ok((offset, node.epoch())),
                    Err(raft::ProposeError::Log(e)) => return Err(QuorumError::Log(e.to_string())),
                    Err(e) => Err(e.to_string()),
                };
                let _ = proposal.reply.send(answer);
                Ok(())
            }
        };
        step.map_err(|e| QuorumError::Log(e.to_string()))?;
        metadata.on_step(&mut node, clock.monotonic_ms());
        metadata
            .maybe_snapshot(
                &mut node,
                config.snapshot_interval_bytes,
                config.snapshot_interval_ms,
                clock.monotonic_ms(),
            )
            .map_err(QuorumError::Log)?;
        loop {
            let ready = node.take_ready();
            if ready.is_empty() {
                break;
            }
            if let Some(state) = &ready.persist_state {
                write_quorum_state(
                    disk.as_ref(),
                    &state_path,
                    state,
                    config.voters.keys().copied(),
                )
                .map_err(|e| QuorumError::Storage(e.to_string()))?;
            }
            if ready.flush_log {
                let skip = cfg!(feature = "planted-bugs") && config.bugs.skip_log_flush;
                let flushed = if skip {
                    node.log().end_offset()
                } else {
                    node.log_mut()
                        .flush()
                        .map_err(|e| QuorumError::Log(e.to_string()))?
                };
                node.on_log_flushed(flushed, clock.monotonic_ms());
            }
            if let Some(id) = ready.snapshot_installed {
                let (_, bytes) = node
                    .log()
                    .read_latest_snapshot()
                    .ok_or_else(|| QuorumError::Log("an installed snapshot is gone".into()))?
                    .map_err(QuorumError::Log)?;
                metadata
                    .load_snapshot(id, &bytes)
                    .map_err(QuorumError::Log)?;
                snapshots_installed += 1;
                tracing::info!(
                    end_offset = id.end_offset,
                    epoch = id.epoch,
                    "metadata image replaced by the leader's snapshot"
                );
            }
            for (to, message) in ready.messages {
                if is_response(&message) {
                    if let Some(waiting) = pending.get_mut(&(to, exchange_of(&message))) {
                        if let Some(reply) = take_slot(waiting, fetch_key(&message)) {
                            let _ = reply.send(message);
                        }
                    }
                } else {
                    // Fetches and snapshot chunks share a connection: a follower has one or
                    // the other out, and a held fetch must not delay a vote.
                    let fetch = matches!(
                        message,
                        Message::FetchRequest { .. } | Message::FetchSnapshotRequest { .. }
                    );
                    if let Some(tx) = outbound.get(&(to, fetch)) {
                        // A full queue means the peer is unreachable: the core will retry.
                        let _ = tx.try_send(message);
                    }
                }
            }
        }
        // Drop reply slots whose connection has gone.
        pending.retain(|_, q| {
            q.retain(|(_, r)| !r.is_closed());
            !q.is_empty()
        });
        if let Some(image) = &config.image {
            let committed = metadata.committed_image();
            if image.borrow().offset != committed.offset {
                image.send_replace(Arc::new(committed.clone()));
            }
        }
        if let Some(observe) = &config.observer {
            observe(&QuorumStatus {
                node_id: config.node_id,
                role: node.role(),
                epoch: node.epoch(),
                leader: node.leader(),
                voted_for: node.quorum_state().voted_for,
                high_watermark: node.high_watermark(),
                log_end: node.log().end_offset(),
                log_start: node.log().start_offset(),
                snapshots_installed,
                metadata_offset: metadata.replayed_offset(),
            });
        }
        let view = (node.role(), node.epoch(), node.leader());
        if view != last_view {
            tracing::info!(role = ?view.0, epoch = view.1, leader = ?view.2.map(|n| n.0), "quorum role");
            last_view = view;
        }
    }
    node.log_mut()
        .flush()
        .map_err(|e| QuorumError::Log(e.to_string()))?;
    tracing::info!("quorum member stopped");
    Ok(())
}

/// A request waiting for the core's answer: for a fetch, the position it asked from.
type Slot = (Option<(u64, raft::Epoch)>, oneshot::Sender<Message>);

/// The position a fetch request asks from, or a fetch response answers.
fn fetch_key(message: &Message) -> Option<(u64, raft::Epoch)> {
    match message {
        Message::FetchRequest {
            fetch_offset,
            last_fetched_epoch,
            ..
        } => Some((*fetch_offset, *last_fetched_epoch)),
        Message::FetchResponse { answers, .. } => Some(*answers),
        _ => None,
    }
}

/// The slot a response from the core goes to. A peer has at most one request of a kind in
/// flight on its live connection, so older slots of the same kind belong to connections it
/// gave up on (their requests may never be answered, or answered late): the newest slot asking
/// what this response answers takes it, older slots asking the same are dropped (their
/// connections close). Pairing oldest-first instead let one unanswered request push every
/// later answer onto the previous, abandoned request — an observer that never caught up again
/// (found by the quorum simulation).
fn take_slot(
    waiting: &mut VecDeque<Slot>,
    answers: Option<(u64, raft::Epoch)>,
) -> Option<oneshot::Sender<Message>> {
    let index = waiting
        .iter()
        .rposition(|(key, _)| *key == answers)
        .or_else(|| waiting.len().checked_sub(1))?;
    let (key, reply) = waiting.remove(index)?;
    waiting.retain(|(k, _)| answers.is_some() && *k != key);
    Some(reply)
}

/// Aborts the tasks it holds when dropped.
struct TaskGuard(Vec<tokio::task::JoinHandle<()>>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

fn describe(node: &RaftNode<DiskRaftLog>, clock: &Clock, now_ms: u64) -> DescribeQuorumResponse {
    let wall = clock.wall_ms();
    let mut partition = describe_quorum_response::PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(node.leader().map_or(-1, |n| n.0)))
        .with_leader_epoch(node.epoch())
        .with_high_watermark(node.high_watermark() as i64);
    match node.replica_progress(now_ms) {
        Some(progress) => {
            let state = |(id, offset, ago): &(NodeId, u64, Option<u64>)| {
                describe_quorum_response::ReplicaState::default()
                    .with_replica_id(BrokerId(id.0))
                    .with_log_end_offset(*offset as i64)
                    .with_last_fetch_timestamp(ago.map_or(-1, |a| wall - a as i64))
                    .with_last_caught_up_timestamp(ago.map_or(-1, |a| wall - a as i64))
            };
            partition = partition
                .with_current_voters(
                    progress
                        .iter()
                        .filter(|p| node.voters().contains(&p.0))
                        .map(state)
                        .collect(),
                )
                .with_observers(
                    progress
                        .iter()
                        .filter(|p| !node.voters().contains(&p.0))
                        .map(state)
                        .collect(),
                );
        }
        None => {
            // Only the leader knows the others' progress (as in Kafka); say who that is.
            partition = partition.with_error_code(6).with_current_voters(
                node.voters()
                    .iter()
                    .map(|v| {
                        describe_quorum_response::ReplicaState::default()
                            .with_replica_id(BrokerId(v.0))
                            .with_log_end_offset(if *v == node.node_id() {
                                node.log().end_offset() as i64
                            } else {
                                -1
                            })
                    })
                    .collect(),
            );
        }
    }
    DescribeQuorumResponse::default().with_topics(vec![
        describe_quorum_response::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
            .with_partitions(vec![partition]),
    ])
}

/// Hands a request to the driver and waits for its answer, at most [`REPLY_TIMEOUT`].
async fn ask<T>(
    inbound: &mpsc::Sender<Inbound>,
    make: impl FnOnce(oneshot::Sender<T>) -> Inbound,
) -> Result<T, &'static str> {
    let (reply, answer) = oneshot::channel();
    inbound.send(make(reply)).await.map_err(|_| "stopping")?;
    tokio::time::timeout(REPLY_TIMEOUT, answer)
        .await
        .map_err(|_| "no answer in time")?
        .map_err(|_| "request dropped")
}

async fn serve_connection(
    mut stream: TcpStream,
    inbound: mpsc::Sender<Inbound>,
    cluster_id: &str,
) -> Result<(), String> {
    loop {
        let Some(frame) = read_frame(&mut stream, MAX_FRAME_BYTES)
            .await
            .map_err(|e| e.to_string())?
        else {
            return Ok(());
        };
        let request = match decode_request(frame, supported) {
            Ok(r) => r,
            Err(FrameError::UnsupportedVersion {
                api_key: ApiKey::ApiVersions,
                correlation_id,
                ..
            }) => {
                // KIP-511: answer with error 35 and the full list, in v0.
                let body = ResponseKind::ApiVersions(api_versions(35));
                let out = encode_response(correlation_id, ApiKey::ApiVersions, 0, &body)
                    .map_err(|e| e.to_string())?;
                write_frame(&mut stream, &out)
                    .await
                    .map_err(|e| e.to_string())?;
                continue;
            }
            Err(e) => {
                tracing::warn!("controller listener: closing a connection: {e}");
                return Err(e.to_string());
            }
        };
        let correlation_id = request.header.correlation_id;
        let body = match &request.body {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions(0)),
            RequestKind::DescribeQuorum(_) => ResponseKind::DescribeQuorum(
                ask(&inbound, |reply| Inbound::Describe { reply }).await?,
            ),
            RequestKind::BrokerRegistration(_)
            | RequestKind::BrokerHeartbeat(_)
            | RequestKind::CreateTopics(_)
            | RequestKind::DeleteTopics(_)
            | RequestKind::CreatePartitions(_)
            | RequestKind::AllocateProducerIds(_)
            | RequestKind::IncrementalAlterConfigs(_) => {
                let request = request.body.clone();
                ask(&inbound, |reply| Inbound::Controller { request, reply }).await?
            }
            other => {
                let (from, message) = request_from_wire(other).map_err(|e| {
                    tracing::warn!("controller listener: bad request: {e}");
                    e
                })?;
                let message = match cluster_id_of(other) {
                    Some(theirs) if theirs != cluster_id => {
                        tracing::warn!(
                            from = from.0,
                            theirs,
                            ours = cluster_id,
                            "quorum request from another cluster refused"
                        );
                        inconsistent_cluster_response(&message).ok_or("not a quorum request")?
                    }
                    _ => {
                        ask(&inbound, |reply| Inbound::Request {
                            from,
                            message,
                            reply,
                        })
                        .await?
                    }
                };
                response_to_wire(&message).ok_or("the core answered with a request")?
            }
        };
        let out = encode_response(correlation_id, request.api_key, request.version, &body)
            .map_err(|e| e.to_string())?;
        write_frame(&mut stream, &out)
            .await
            .map_err(|e| e.to_string())?;
    }
}

async fn peer_client(
    peer: NodeId,
    addr: String,
    mut requests: mpsc::Receiver<Message>,
    inbound: mpsc::Sender<Inbound>,
    cluster_id: String,
    me: NodeId,
) {
    let client_id = format!("ketch-quorum-{}", me.0);
    let mut stream: Option<TcpStream> = None;
    let mut correlation_id = 0i32;
    while let Some(message) = requests.recv().await {
        let Some((api_key, version, body)) = request_to_wire(peer, &message, &cluster_id) else {
            continue;
        };
        if stream.is_none() {
            match tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(&addr)).await
            {
                Ok(Ok(s)) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(s);
                }
                _ => continue, // unreachable: drop, the core retries
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        correlation_id = correlation_id.wrapping_add(1);
        let exchange = async {
            let frame = encode_request(correlation_id, &client_id, api_key, version, &body)
                .map_err(|e| e.to_string())?;
            write_frame(s, &frame).await.map_err(|e| e.to_string())?;
            let answer = read_frame(s, MAX_FRAME_BYTES)
                .await
                .map_err(|e| e.to_string())?
                .ok_or("connection closed")?;
            let (got, response) =
                decode_response(api_key, version, answer).map_err(|e| e.to_string())?;
            if got != correlation_id {
                return Err(format!("correlation id {got}, expected {correlation_id}"));
            }
            response_from_wire(&message, response)
        };
        match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
            Ok(Ok(response)) => {
                if inbound
                    .send(Inbound::Response {
                        from: peer,
                        message: response,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = peer.0, "quorum request failed: {e}");
                stream = None;
            }
            Err(_) => stream = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_goes_to_the_newest_request_it_answers_and_abandoned_ones_are_dropped() {
        let mut waiting: VecDeque<Slot> = VecDeque::new();
        let mut receivers = Vec::new();
        for key in [(10, 1), (20, 1), (10, 1)] {
            let (tx, rx) = oneshot::channel();
            waiting.push_back((Some(key), tx));
            receivers.push(rx);
        }
        let reply = take_slot(&mut waiting, Some((10, 1))).unwrap();
        let _ = reply.send(Message::EndQuorumEpochResponse {
            epoch: 1,
            error: None,
        });
        // The third (newest) request for (10, 1) got it; the first was dropped; (20, 1) waits.
        assert!(receivers[2].try_recv().is_ok());
        assert!(receivers[0].try_recv().is_err());
        assert_eq!(waiting.len(), 1);
        assert_eq!(waiting[0].0, Some((20, 1)));
    }
}
