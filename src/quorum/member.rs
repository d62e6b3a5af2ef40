//! The quorum member's driver: one task that owns the [`RaftNode`] over the metadata log on
//! disk and the `quorum-state` file, and the [`ControllerDriver`] on top of it.
//!
//! It takes inbound requests and responses from a channel (filled by the controller listener,
//! [`super::listener`], and the peer clients, [`super::peers`]), ticks every 10 ms, and carries
//! out each [`crate::raft::Ready`] in the order the core requires: persist the quorum state,
//! flush the log, then send. The core's response to a peer's request fills that request's
//! reply slot. After every step it publishes the committed metadata image and its status.
//! It never touches the Kafka data plane: what it hands out goes through `node`.

use super::controller_driver::ControllerDriver;
use super::listener::ControllerListener;
use super::peers::peer_client;
use super::storage::{read_quorum_state, write_quorum_state, DiskRaftLog, QUORUM_STATE_FILE};
use super::wire::{exchange_of, is_response, Exchange};
use super::QuorumError;
use crate::controller::{Controller, ControllerConfig, MetadataImage};
use crate::log::Log;
use crate::model::{NodeId, METADATA_TOPIC};
use crate::raft::{self, Message, RaftLog, RaftNode, Role};
use crate::runtime::{self, Clock, Disk};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    describe_quorum_response, BrokerId, DescribeQuorumResponse, RequestKind, ResponseKind,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

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
    /// When the step this status follows began (monotonic ms): entries it appended arrived
    /// then, which times their commit (the metrics' commit latency).
    pub step_started_ms: u64,
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
    /// Its name (`controller.listener.names`' first), for logs.
    pub listener_name: String,
    /// How it secures its connections (TLS, SASL).
    pub listener_security: crate::wire::ListenerSecurity,
    /// How this node reaches the other controllers' listener (the same protocol).
    pub connector: crate::wire::Connector,
    /// `max.connections` on the controller listener.
    pub max_connections: usize,
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
    /// Records the storage was formatted with (`--add-scram`), for an empty metadata log.
    pub bootstrap_records: Vec<crate::controller::MetadataRecord>,
    /// `authorizer.class.name` set: the controller listener authorizes (see
    /// `listener::ControllerListener::unauthorized`).
    pub authorizer: Option<crate::security::acl::AuthorizerConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuorumBugs {
    /// Report the metadata log flushed without flushing it.
    pub skip_log_flush: bool,
}

/// What the driver task takes in: from the listener, the peer clients and the tools.
pub enum Inbound {
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
    /// A broker is gone: its heartbeat connection closed (see `listener`), or its listeners
    /// refused a probe (see `ControllerDriver::brokers_to_probe`).
    BrokerGone {
        broker_id: i32,
        broker_epoch: i64,
        why: &'static str,
    },
    /// A request for the controller: BrokerRegistration, BrokerHeartbeat, CreateTopics.
    Controller {
        request: RequestKind,
        reply: oneshot::Sender<ResponseKind>,
    },
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
    let durable = read_quorum_state(disk.as_ref(), &state_path)?;
    let raft_log = DiskRaftLog::open(log, Arc::clone(&disk))?;
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
    let mut metadata = ControllerDriver::new(Controller::new(
        config.controller.clone(),
        seed ^ 0xC0_47_20_11,
    ))
    .with_bootstrap(config.bootstrap_records.clone());
    // Start from the latest snapshot; the log after it is replayed as it commits.
    if let Some(snapshot) = node.log().read_latest_snapshot() {
        let (id, bytes) = snapshot?;
        metadata.load_snapshot(id, &bytes)?;
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
        let (listener, addr) =
            crate::wire::bind(host, *port)
                .await
                .map_err(|source| QuorumError::Listen {
                    addr: format!("{host}:{port}"),
                    source,
                })?;
        tracing::info!(%addr, "controller listener ready");
        let service = Arc::new(ControllerListener {
            inbound: inbound_tx.clone(),
            cluster_id: config.cluster_id.clone(),
            heartbeats: Default::default(),
            voters: config.voters.clone(),
            connector: config.connector.clone(),
            authorizer: match (&config.authorizer, &config.image) {
                (None, _) => None,
                (Some(a), Some(tx)) => Some((a.clone(), tx.subscribe())),
                // Never serve open when authorization was asked for.
                (Some(_), None) => {
                    return Err(QuorumError::Listen {
                        addr: format!("{host}:{port}"),
                        source: std::io::Error::other(
                            "an authorizer needs the metadata image, which this member does not publish",
                        ),
                    })
                }
            },
        });
        tasks.0.push(runtime::spawn(crate::wire::accept_loop(
            service,
            listener,
            config.listener_name.clone(),
            crate::wire::Limits {
                max_frame_bytes: super::listener::MAX_FRAME_BYTES,
                max_connections: config.max_connections,
                metrics: None,
            },
            config.listener_security.clone(),
        )));
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
                config.connector.clone(),
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
                Some(Inbound::BrokerGone {
                    broker_id,
                    broker_epoch,
                    why,
                }) => {
                    metadata.broker_gone(&mut node, broker_id, broker_epoch, why, now)?;
                    Ok(())
                }
                Some(Inbound::Controller { request, reply }) => {
                    metadata.handle(&mut node, &request, reply, now)?;
                    Ok(())
                }
            },
            Some(proposal) = proposals.recv() => {
                let result = node.propose(proposal.data, now);
                let answer = match result {
                    Ok(offset) => Ok((offset, node.epoch())),
                    Err(raft::ProposeError::Log(e)) => return Err(e.into()),
                    Err(e) => Err(e.to_string()),
                };
                let _ = proposal.reply.send(answer);
                Ok(())
            }
        };
        step?;
        metadata.on_step(&mut node, clock.monotonic_ms())?;
        for (broker_id, broker_epoch, addrs) in metadata.brokers_to_probe(clock.monotonic_ms()) {
            let inbound = inbound_tx.clone();
            runtime::spawn(async move {
                if crate::wire::all_refuse(&addrs, Duration::from_secs(1)).await {
                    let _ = inbound
                        .send(Inbound::BrokerGone {
                            broker_id,
                            broker_epoch,
                            why: "broker's listeners refuse connections",
                        })
                        .await;
                }
            });
        }
        metadata.maybe_snapshot(
            &mut node,
            config.snapshot_interval_bytes,
            config.snapshot_interval_ms,
            clock.monotonic_ms(),
        )?;
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
                )?;
            }
            if ready.flush_log {
                let skip = cfg!(feature = "planted-bugs") && config.bugs.skip_log_flush;
                let flushed = if skip {
                    node.log().end_offset()
                } else {
                    node.log_mut().flush()?
                };
                node.on_log_flushed(flushed, clock.monotonic_ms());
            }
            if let Some(id) = ready.snapshot_installed {
                let (_, bytes) = node
                    .log()
                    .read_latest_snapshot()
                    .ok_or(QuorumError::SnapshotGone)??;
                metadata.load_snapshot(id, &bytes)?;
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
                step_started_ms: now,
            });
        }
        let view = (node.role(), node.epoch(), node.leader());
        if view != last_view {
            tracing::info!(role = ?view.0, epoch = view.1, leader = ?view.2.map(|n| n.0), "quorum role");
            last_view = view;
        }
    }
    node.log_mut().flush()?;
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
            partition = partition
                .with_error_code(ResponseError::NotLeaderOrFollower.code())
                .with_current_voters(
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
