//! The controller on top of the quorum: every member replays committed metadata records into a
//! [`Controller`]; the leader, once everything in its log is committed (its own LeaderChange
//! included, so it has seen all that came before), becomes the active controller: it answers
//! BrokerRegistration, BrokerHeartbeat, CreateTopics, DeleteTopics and CreatePartitions, fences
//! brokers whose session expired,
//! and proposes the records these produce. Answers wait until their records are committed.

use super::snapshot_file;
use super::storage::DiskRaftLog;
use super::QuorumError;
use crate::controller::{
    image_from_records, image_records, ApiError, Controller, CreateTopic, Election, Endpoint,
    MetadataImage, MetadataRecord, OperationBuffer,
};
use crate::protocol::responses::{refusal, wire_topic_id};
use crate::raft::{
    Epoch, ProposeError, RaftLog, RaftNode, Role, SnapshotError, SnapshotId, LEADER_CHANGE,
};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    create_partitions_response, create_topics_response, delete_topics_response,
    incremental_alter_configs_response, AllocateProducerIdsRequest, AllocateProducerIdsResponse,
    AlterPartitionRequest, AlterPartitionResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse,
    BrokerId, BrokerRegistrationRequest, BrokerRegistrationResponse, CreatePartitionsRequest,
    CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest,
    DeleteTopicsResponse, ElectLeadersRequest, ElectLeadersResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ProducerId, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

/// NOT_CONTROLLER: this node is not the active controller.
const NOT_CONTROLLER: i16 = ResponseError::NotController.code();

struct Pending {
    /// Answer once the high watermark passes this offset.
    last_offset: u64,
    answer: ResponseKind,
    not_controller: ResponseKind,
    reply: oneshot::Sender<ResponseKind>,
}

pub struct ControllerDriver {
    controller: Controller,
    /// Next log offset to replay.
    replayed: u64,
    /// The epoch this node leads, if it does.
    leading: Option<Epoch>,
    active: bool,
    pending: Vec<Pending>,
    /// Committed records only, for the broker: the active controller's own image runs ahead
    /// of the high watermark.
    committed: MetadataImage,
    /// Next log offset to apply to `committed`.
    committed_next: u64,
    /// An operation's records below `committed_next` not yet applied to `committed` (its last
    /// entry has not committed), and likewise below `replayed` for the controller's image.
    committed_ops: OperationBuffer,
    replayed_ops: OperationBuffer,
    /// Record bytes applied to `committed` since the last snapshot.
    bytes_since_snapshot: u64,
    /// When the last snapshot was taken (or this member started), monotonic ms.
    last_snapshot_ms: Option<u64>,
    /// When this node last became the active controller, and the brokers (id, epoch) whose
    /// listeners were probed since (see [`ControllerDriver::brokers_to_probe`]).
    activated_ms: u64,
    probed: std::collections::BTreeSet<(i32, i64)>,
    /// Records `ketch storage format` asked for (SCRAM credentials, `--add-scram`): the first
    /// active controller of a metadata log that holds no record yet writes them first.
    bootstrap: Vec<MetadataRecord>,
}

/// How long after becoming active the controller waits for a broker's first heartbeat before
/// it checks whether the broker's listeners are there at all.
pub const PROBE_AFTER_ACTIVATION_MS: u64 = 300;

impl ControllerDriver {
    pub fn new(controller: Controller) -> ControllerDriver {
        ControllerDriver {
            controller,
            replayed: 0,
            leading: None,
            active: false,
            pending: Vec::new(),
            committed: MetadataImage::new(),
            committed_next: 0,
            committed_ops: OperationBuffer::default(),
            replayed_ops: OperationBuffer::default(),
            bytes_since_snapshot: 0,
            last_snapshot_ms: None,
            activated_ms: 0,
            probed: Default::default(),
            bootstrap: Vec::new(),
        }
    }

    /// See [`ControllerDriver::bootstrap`]'s field.
    pub fn with_bootstrap(mut self, records: Vec<MetadataRecord>) -> ControllerDriver {
        self.bootstrap = records;
        self
    }

    /// Starts over from a snapshot (at start, or when the leader's replaced the log): both
    /// images become the snapshot's, and replay goes on from its end.
    pub fn load_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), QuorumError> {
        let records = snapshot_file::decode(bytes).map_err(|source| QuorumError::Snapshot {
            end_offset: id.end_offset,
            source,
        })?;
        let image = image_from_records(&records, id.end_offset as i64 - 1).map_err(|source| {
            QuorumError::SnapshotImage {
                end_offset: id.end_offset,
                source,
            }
        })?;
        for p in self.pending.drain(..) {
            let _ = p.reply.send(p.not_controller);
        }
        self.active = false;
        self.controller.reset_to(image.clone());
        self.committed = image;
        self.committed_next = id.end_offset;
        self.replayed = id.end_offset;
        self.committed_ops = OperationBuffer::default();
        self.replayed_ops = OperationBuffer::default();
        self.bytes_since_snapshot = 0;
        Ok(())
    }

    /// Snapshots the committed image once `interval_bytes` of records have committed since the
    /// last snapshot, or `interval_ms` has passed since it and anything committed; the metadata
    /// log then drops the whole segments below it. Errors are the log's and fatal.
    pub fn maybe_snapshot(
        &mut self,
        node: &mut RaftNode<DiskRaftLog>,
        interval_bytes: u64,
        interval_ms: u64,
        now_ms: u64,
    ) -> Result<(), QuorumError> {
        let end_offset = self.committed_next;
        let since = *self.last_snapshot_ms.get_or_insert(now_ms);
        let due = self.bytes_since_snapshot >= interval_bytes
            || (self.bytes_since_snapshot > 0 && now_ms.saturating_sub(since) >= interval_ms);
        // Never in the middle of an operation: the snapshot's end would cover records its image
        // does not hold.
        if !due
            || !self.committed_ops.is_empty()
            || node
                .log()
                .latest_snapshot()
                .is_some_and(|s| s.end_offset >= end_offset)
        {
            return Ok(());
        }
        let epoch = match node.log().read(end_offset.saturating_sub(1), 1).first() {
            Some(e) if e.offset + 1 == end_offset => e.epoch,
            _ => return Ok(()),
        };
        let id = SnapshotId { end_offset, epoch };
        let bytes = match snapshot_file::encode(id, &image_records(&self.committed), 0) {
            Ok(bytes) => bytes,
            // Only a record replayed from an old JSON log with a non-UUID id gets here.
            Err(e) => {
                tracing::error!("metadata snapshot at {end_offset} not taken: {e}");
                self.bytes_since_snapshot = 0;
                return Ok(());
            }
        };
        match node.create_snapshot(end_offset, &bytes) {
            Ok(made) => {
                debug_assert_eq!(made, id);
                self.bytes_since_snapshot = 0;
                self.last_snapshot_ms = Some(now_ms);
                tracing::info!(
                    end_offset,
                    epoch,
                    bytes = bytes.len(),
                    log_start = node.log().start_offset(),
                    "metadata snapshot taken"
                );
                Ok(())
            }
            // Committed but not yet durable here: try again after the next flush.
            Err(SnapshotError::OutOfRange { .. }) => Ok(()),
            Err(SnapshotError::Log(e)) => Err(e.into()),
        }
    }

    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// The image of what is committed: what brokers serve.
    pub fn committed_image(&self) -> &MetadataImage {
        &self.committed
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The last log offset replayed (-1 before any): how far this node's view of the metadata
    /// goes, which brokers report in their heartbeats.
    pub fn replayed_offset(&self) -> i64 {
        self.replayed as i64 - 1
    }

    /// After every step of the quorum: follow leadership, replay what committed, answer what
    /// committed, and as the active controller fence silent brokers.
    /// Errors are the log's, and fatal.
    pub fn on_step(
        &mut self,
        node: &mut RaftNode<DiskRaftLog>,
        now_ms: u64,
    ) -> Result<(), QuorumError> {
        let leader_now = (node.role() == Role::Leader).then(|| node.epoch());
        if leader_now != self.leading {
            if self.leading.is_some() {
                // Leadership lost (or a new term): drop speculative state, go on from what
                // committed.
                self.controller.reset_to(self.committed.clone());
                self.replayed = self.committed_next;
                self.replayed_ops = self.committed_ops.clone();
                for p in self.pending.drain(..) {
                    let _ = p.reply.send(p.not_controller);
                }
            }
            self.active = false;
            self.leading = leader_now;
        }
        self.replay_committed(node);
        if self.leading.is_some()
            && !self.active
            && node.high_watermark() >= node.log().end_offset()
        {
            self.active = true;
            self.controller.activate(now_ms);
            self.activated_ms = now_ms;
            self.probed.clear();
            tracing::info!(
                epoch = node.epoch(),
                offset = node.high_watermark(),
                "active controller"
            );
            // A metadata log with no record yet (everything committed is replayed now): the
            // bootstrap records go first. Lost with a failover before they commit, the next
            // active controller finds the log still empty and writes them again.
            if self.controller.image().offset < 0 && !self.bootstrap.is_empty() {
                self.controller.align(node.log().end_offset() as i64);
                let records = self.controller.bootstrap(self.bootstrap.clone());
                tracing::info!(
                    records = records.len(),
                    "bootstrap metadata records written"
                );
                propose(node, &records, now_ms)?;
            }
        }
        let hw = node.high_watermark();
        let (done, waiting): (Vec<Pending>, Vec<Pending>) =
            self.pending.drain(..).partition(|p| p.last_offset < hw);
        self.pending = waiting;
        for p in done {
            let _ = p.reply.send(p.answer);
        }
        if self.active {
            self.controller.align(node.log().end_offset() as i64);
            let records = self.controller.tick(now_ms);
            for (topic, partition, leader) in self.controller.take_unclean_elections() {
                tracing::warn!(
                    topic,
                    partition,
                    leader,
                    "unclean leader election: records the new leader lacks are lost"
                );
            }
            for r in &records {
                if let MetadataRecord::FenceBroker { broker_id, .. } = r {
                    tracing::info!(broker = broker_id, "broker session expired: fenced");
                }
            }
            propose(node, &records, now_ms)?;
        }
        Ok(())
    }

    fn replay_committed(&mut self, node: &RaftNode<DiskRaftLog>) {
        let hw = node.high_watermark();
        while self.committed_next < hw {
            let entries = node.log().read(self.committed_next, 512);
            if entries.is_empty() {
                break;
            }
            for e in entries {
                if e.offset >= hw {
                    break;
                }
                self.committed_next = e.offset + 1;
                self.bytes_since_snapshot += e.data.len() as u64;
                for (offset, record) in take_ready(&mut self.committed_ops, e.offset, &e.data) {
                    if let Err(err) = self.committed.apply(offset, &record) {
                        tracing::error!("metadata log: {err}");
                    }
                }
            }
        }
        while self.replayed < hw {
            let entries = node.log().read(self.replayed, 512);
            if entries.is_empty() {
                break;
            }
            for e in entries {
                if e.offset >= hw {
                    break;
                }
                self.replayed = e.offset + 1;
                // The active controller applied its own records when it made them.
                if (e.offset as i64) < self.controller.next_offset() {
                    continue;
                }
                for (offset, record) in take_ready(&mut self.replayed_ops, e.offset, &e.data) {
                    if let Err(err) = self.controller.replay(offset, &record) {
                        tracing::error!("metadata log: {err}");
                    }
                }
            }
        }
    }

    /// Brokers to look for, once each: a new active controller gives every registered broker
    /// a fresh session, so one that died with the previous controller (a combined node) would
    /// keep its leaderships for a whole `broker.session.timeout.ms`. Those still silent
    /// [`PROBE_AFTER_ACTIVATION_MS`] after activation are returned with their listeners'
    /// addresses; if every listener refuses connections the process is gone and the shell
    /// reports it ([`ControllerDriver::broker_gone`]).
    pub fn brokers_to_probe(&mut self, now_ms: u64) -> Vec<(i32, i64, Vec<String>)> {
        if !self.active || now_ms < self.activated_ms + PROBE_AFTER_ACTIVATION_MS {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, epoch, endpoints) in self.controller.silent_brokers(self.activated_ms) {
            if self.probed.insert((id, epoch)) {
                let addrs = endpoints
                    .iter()
                    .map(|e| format!("{}:{}", e.host, e.port))
                    .collect();
                out.push((id, epoch, addrs));
            }
        }
        out
    }

    /// A broker is gone (`why`: its heartbeat connection to this controller closed, or its
    /// listeners refuse connections): fence it now (its leaderships move) if it is still
    /// registered at that epoch and unfenced.
    pub fn broker_gone(
        &mut self,
        node: &mut RaftNode<DiskRaftLog>,
        broker_id: i32,
        broker_epoch: i64,
        why: &str,
        now_ms: u64,
    ) -> Result<(), QuorumError> {
        if !self.active {
            return Ok(());
        }
        self.controller.align(node.log().end_offset() as i64);
        let records = self.controller.connection_lost(broker_id, broker_epoch);
        if !records.is_empty() {
            tracing::info!(broker = broker_id, "{why}: fenced");
            propose(node, &records, now_ms)?;
        }
        Ok(())
    }

    /// A controller request: answered now (refused, or nothing to write) or once its records
    /// are committed. Errors are the log's, and fatal.
    pub fn handle(
        &mut self,
        node: &mut RaftNode<DiskRaftLog>,
        request: &RequestKind,
        reply: oneshot::Sender<ResponseKind>,
        now_ms: u64,
    ) -> Result<(), QuorumError> {
        let Some(not_controller) = refusal(request, NOT_CONTROLLER, "not the active controller")
        else {
            return Ok(());
        };
        if !self.active {
            let _ = reply.send(not_controller);
            return Ok(());
        }
        self.controller.align(node.log().end_offset() as i64);
        let (answer, records) = match request {
            RequestKind::BrokerRegistration(r) => self.register_broker(request, r, now_ms),
            RequestKind::AlterPartition(r) => self.alter_partition(r),
            RequestKind::ElectLeaders(r) => self.elect_leaders(r),
            RequestKind::AllocateProducerIds(r) => self.allocate_producer_ids(request, r),
            RequestKind::IncrementalAlterConfigs(r) => self.alter_configs(r),
            RequestKind::AlterUserScramCredentials(r) => self.alter_scram(r),
            RequestKind::CreateAcls(r) => self.create_acls(r),
            RequestKind::DeleteAcls(r) => self.delete_acls(r),
            RequestKind::BrokerHeartbeat(r) => self.heartbeat(request, r, now_ms),
            RequestKind::CreateTopics(r) => self.create_topics(r),
            RequestKind::DeleteTopics(r) => self.delete_topics(r),
            RequestKind::CreatePartitions(r) => self.create_partitions(r),
            _ => return Ok(()),
        };
        let end_offset = node.log().end_offset();
        match propose(node, &records, now_ms)? {
            // Nothing to write, but the answer was read from an image that runs ahead of what
            // committed: it waits until that commits too, as Kafka's controller does. Answered
            // at once, a CreateTopics repeated after a timeout got TOPIC_ALREADY_EXISTS from a
            // deposed controller whose first attempt never committed, and the topic never came
            // (cluster simulation, seed 2492).
            None if records.is_empty() && end_offset > node.high_watermark() => {
                self.pending.push(Pending {
                    last_offset: end_offset - 1,
                    answer,
                    not_controller,
                    reply,
                });
            }
            None if records.is_empty() => {
                let _ = reply.send(answer);
            }
            // Not all of them went in: the request did not happen as answered.
            None => {
                let _ = reply.send(not_controller);
            }
            Some(last_offset) => self.pending.push(Pending {
                last_offset,
                answer,
                not_controller,
                reply,
            }),
        }
        Ok(())
    }

    /// A partition leader's ISR change (AlterPartition, 56, v2: topics by id). Each partition
    /// is decided on its own; a stale broker epoch refuses the whole request.
    fn alter_partition(
        &mut self,
        r: &AlterPartitionRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        use kafka_protocol::messages::alter_partition_response::{PartitionData, TopicData};
        let mut records = Vec::new();
        let mut topics = Vec::new();
        for t in &r.topics {
            let topic_id = crate::model::Uuid(*t.topic_id.as_bytes()).to_string();
            let mut partitions = Vec::new();
            for p in &t.partitions {
                let isr: Vec<i32> = p.new_isr.iter().map(|b| b.0).collect();
                let answer = PartitionData::default().with_partition_index(p.partition_index);
                let answer = match self.controller.alter_partition(
                    r.broker_id.0,
                    r.broker_epoch,
                    &topic_id,
                    p.partition_index,
                    p.leader_epoch,
                    p.partition_epoch,
                    &isr,
                ) {
                    Err(ApiError::StaleBrokerEpoch(_)) => {
                        return (
                            ResponseKind::AlterPartition(
                                AlterPartitionResponse::default().with_error_code(
                                    ApiError::StaleBrokerEpoch(String::new()).code(),
                                ),
                            ),
                            Vec::new(),
                        )
                    }
                    Err(e) => {
                        tracing::info!(
                            broker = r.broker_id.0,
                            topic_id,
                            partition = p.partition_index,
                            "AlterPartition refused: {e}"
                        );
                        answer.with_error_code(e.code())
                    }
                    Ok((made, now)) => {
                        records.extend(made);
                        answer
                            .with_leader_id(BrokerId(now.leader))
                            .with_leader_epoch(now.leader_epoch)
                            .with_isr(now.isr.iter().map(|b| BrokerId(*b)).collect())
                            .with_partition_epoch(now.partition_epoch)
                    }
                };
                partitions.push(answer);
            }
            topics.push(
                TopicData::default()
                    .with_topic_id(t.topic_id)
                    .with_partitions(partitions),
            );
        }
        (
            ResponseKind::AlterPartition(AlterPartitionResponse::default().with_topics(topics)),
            records,
        )
    }

    /// ElectLeaders (43, KIP-460): a preferred (0) or unclean (1) election for each partition
    /// named, or for every partition when none is.
    fn elect_leaders(&mut self, r: &ElectLeadersRequest) -> (ResponseKind, Vec<MetadataRecord>) {
        use kafka_protocol::messages::elect_leaders_response::{
            PartitionResult, ReplicaElectionResult,
        };
        let election = match r.election_type {
            0 => Election::Preferred,
            1 => Election::Unclean,
            other => {
                return (
                    refused(
                        &RequestKind::ElectLeaders(r.clone()),
                        &ApiError::InvalidRequest(format!("election type {other}")),
                    ),
                    Vec::new(),
                )
            }
        };
        let wanted: Vec<(String, Vec<i32>)> = match &r.topic_partitions {
            Some(list) => list
                .iter()
                .map(|t| (t.topic.0.to_string(), t.partitions.clone()))
                .collect(),
            None => self
                .controller
                .image()
                .topics
                .values()
                .map(|t| (t.name.clone(), t.partitions.keys().copied().collect()))
                .collect(),
        };
        let mut records = Vec::new();
        let mut results = Vec::new();
        for (topic, partitions) in wanted {
            let mut answers = Vec::new();
            for partition in partitions {
                let answer = PartitionResult::default().with_partition_id(partition);
                answers.push(
                    match self.controller.elect_leader(&topic, partition, election) {
                        Ok(made) => {
                            records.extend(made);
                            answer
                        }
                        // Kafka leaves partitions that need no election out of an "all" answer.
                        Err(ApiError::ElectionNotNeeded(_)) if r.topic_partitions.is_none() => {
                            continue;
                        }
                        Err(e) => answer
                            .with_error_code(e.code())
                            .with_error_message(message_of(&e)),
                    },
                );
            }
            if !answers.is_empty() {
                results.push(
                    ReplicaElectionResult::default()
                        .with_topic(TopicName(StrBytes::from_string(topic)))
                        .with_partition_result(answers),
                );
            }
        }
        for (topic, partition, leader) in self.controller.take_unclean_elections() {
            tracing::warn!(
                topic,
                partition,
                leader,
                "unclean leader election (ElectLeaders): records the new leader lacks are lost"
            );
        }
        (
            ResponseKind::ElectLeaders(
                ElectLeadersResponse::default().with_replica_election_results(results),
            ),
            records,
        )
    }

    /// Registers a broker (BrokerRegistration, 62): a new broker epoch; the broker starts fenced.
    fn register_broker(
        &mut self,
        request: &RequestKind,
        r: &BrokerRegistrationRequest,
        now_ms: u64,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        let endpoints = r
            .listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
            })
            .collect();
        let rack = r.rack.as_ref().map(|s| s.to_string());
        match self.controller.register_broker(
            r.broker_id.0,
            &r.incarnation_id.to_string(),
            endpoints,
            rack,
            now_ms,
        ) {
            Ok((records, epoch)) => (
                ResponseKind::BrokerRegistration(
                    BrokerRegistrationResponse::default().with_broker_epoch(epoch),
                ),
                records,
            ),
            Err(e) => (refused(request, &e), Vec::new()),
        }
    }

    /// Hands a broker a block of producer ids (AllocateProducerIds, 67).
    fn allocate_producer_ids(
        &mut self,
        request: &RequestKind,
        r: &AllocateProducerIdsRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        match self
            .controller
            .allocate_producer_ids(r.broker_id.0, r.broker_epoch)
        {
            Ok((records, start, len)) => (
                ResponseKind::AllocateProducerIds(
                    AllocateProducerIdsResponse::default()
                        .with_producer_id_start(ProducerId(start))
                        .with_producer_id_len(len),
                ),
                records,
            ),
            Err(e) => (refused(request, &e), Vec::new()),
        }
    }

    /// Topic and dynamic broker config changes (IncrementalAlterConfigs, 44): SET and DELETE,
    /// validated.
    fn alter_configs(
        &mut self,
        r: &IncrementalAlterConfigsRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        let mut results = Vec::new();
        let mut records = Vec::new();
        for res in &r.resources {
            let outcome = if res.resource_type != 2 && res.resource_type != 4 {
                Err(ApiError::InvalidConfig(format!(
                    "resource type {} cannot be altered (topics and brokers only)",
                    res.resource_type
                )))
            } else {
                let mut changes = Vec::new();
                let mut bad = None;
                for c in &res.configs {
                    match (c.config_operation, &c.value) {
                        (0, Some(v)) => changes.push((c.name.to_string(), Some(v.to_string()))),
                        (1, _) => changes.push((c.name.to_string(), None)),
                        (op, _) => {
                            bad = Some(ApiError::InvalidConfig(format!(
                                "operation {op} on {} is not supported (SET and DELETE are)",
                                c.name
                            )))
                        }
                    }
                }
                match bad {
                    Some(e) => Err(e),
                    // Checked as a real change would be, nothing recorded.
                    None if r.validate_only => changes
                        .iter()
                        .try_for_each(|(k, v)| {
                            let v = v.as_deref().unwrap_or("");
                            match (res.resource_type, v.is_empty()) {
                                (4, true) => Ok(()),
                                (4, false) => {
                                    crate::controller::topic_configs::validate_broker_config(k, v)
                                }
                                (_, true) => Ok(()),
                                _ => crate::controller::topic_configs::validate_topic_config(k, v),
                            }
                        })
                        .map(|()| Vec::new())
                        .map_err(ApiError::InvalidConfig),
                    None if res.resource_type == 4 => self
                        .controller
                        .alter_broker_configs(&res.resource_name, &changes),
                    None => self
                        .controller
                        .alter_topic_configs(&res.resource_name, &changes),
                }
            };
            let mut result =
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_resource_type(res.resource_type)
                    .with_resource_name(res.resource_name.clone());
            match outcome {
                Ok(made) => records.extend(made),
                Err(e) => {
                    result = result
                        .with_error_code(e.code())
                        .with_error_message(message_of(&e))
                }
            }
            results.push(result);
        }
        (
            ResponseKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsResponse::default().with_responses(results),
            ),
            records,
        )
    }

    /// SCRAM credentials (AlterUserScramCredentials, 51, KIP-554): each upsertion's salted
    /// password becomes the stored credential here (StoredKey and ServerKey; the password
    /// itself is never known, and the salted one never stored).
    fn alter_scram(
        &mut self,
        r: &kafka_protocol::messages::AlterUserScramCredentialsRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        use crate::controller::{ScramChange, ScramCredential};
        use crate::security::scram::{Credential, Mechanism};
        use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
        let mut changes: Vec<ScramChange> = r
            .deletions
            .iter()
            .map(|d| ScramChange {
                user: d.name.to_string(),
                mechanism: d.mechanism,
                credential: None,
            })
            .collect();
        for u in &r.upsertions {
            let credential = match Mechanism::from_id(u.mechanism) {
                Some(m) => {
                    let c = Credential::from_salted_password(
                        m,
                        &u.salted_password,
                        u.salt.to_vec(),
                        u.iterations,
                    );
                    ScramCredential {
                        salt: c.salt,
                        stored_key: c.stored_key,
                        server_key: c.server_key,
                        iterations: c.iterations,
                    }
                }
                // Refused by the controller for its mechanism.
                None => ScramCredential {
                    salt: u.salt.to_vec(),
                    stored_key: Vec::new(),
                    server_key: Vec::new(),
                    iterations: u.iterations,
                },
            };
            changes.push(ScramChange {
                user: u.name.to_string(),
                mechanism: u.mechanism,
                credential: Some(credential),
            });
        }
        let (results, records) = self.controller.alter_scram(&changes);
        let results = results
            .into_iter()
            .map(|(user, outcome)| {
                let result = AlterUserScramCredentialsResult::default()
                    .with_user(kafka_protocol::protocol::StrBytes::from_string(user));
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(e.code())
                        .with_error_message(message_of(&e)),
                }
            })
            .collect();
        (
            ResponseKind::AlterUserScramCredentials(
                kafka_protocol::messages::AlterUserScramCredentialsResponse::default()
                    .with_results(results),
            ),
            records,
        )
    }

    /// CreateAcls (30): each creation validated as Kafka's `StandardAuthorizer` does, then
    /// recorded; one answer per creation.
    fn create_acls(
        &mut self,
        r: &kafka_protocol::messages::CreateAclsRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        use crate::security::acl::{validate, Acl};
        use kafka_protocol::messages::create_acls_response::AclCreationResult;
        let mut valid = Vec::new();
        let results = r
            .creations
            .iter()
            .map(|c| {
                let acl = Acl {
                    resource_type: c.resource_type,
                    resource_name: c.resource_name.to_string(),
                    pattern_type: c.resource_pattern_type,
                    principal: c.principal.to_string(),
                    host: c.host.to_string(),
                    operation: c.operation,
                    permission: c.permission_type,
                };
                match validate(&acl) {
                    Ok(()) => {
                        valid.push(crate::controller::AclEntry {
                            resource_type: acl.resource_type,
                            resource_name: acl.resource_name,
                            pattern_type: acl.pattern_type,
                            principal: acl.principal,
                            host: acl.host,
                            operation: acl.operation,
                            permission_type: acl.permission,
                        });
                        AclCreationResult::default()
                    }
                    Err(why) => AclCreationResult::default()
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(kafka_protocol::protocol::StrBytes::from_string(
                            why,
                        ))),
                }
            })
            .collect();
        let records = self.controller.create_acls(&valid);
        (
            ResponseKind::CreateAcls(
                kafka_protocol::messages::CreateAclsResponse::default().with_results(results),
            ),
            records,
        )
    }

    /// DeleteAcls (31): every ACL each filter matches goes; each filter's answer lists them.
    fn delete_acls(
        &mut self,
        r: &kafka_protocol::messages::DeleteAclsRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        use crate::security::acl::{Acl, AclFilter};
        use kafka_protocol::messages::delete_acls_response::{
            DeleteAclsFilterResult, DeleteAclsMatchingAcl,
        };
        use kafka_protocol::protocol::StrBytes;
        let mut ids = Vec::new();
        let results = r
            .filters
            .iter()
            .map(|f| {
                let filter = AclFilter {
                    resource_type: f.resource_type_filter,
                    resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
                    pattern_type: f.pattern_type_filter,
                    principal: f.principal_filter.as_ref().map(|s| s.to_string()),
                    host: f.host_filter.as_ref().map(|s| s.to_string()),
                    operation: f.operation,
                    permission: f.permission_type,
                };
                let matching: Vec<DeleteAclsMatchingAcl> = self
                    .controller
                    .image()
                    .acls
                    .iter()
                    .filter(|(_, e)| {
                        filter.matches(&Acl {
                            resource_type: e.resource_type,
                            resource_name: e.resource_name.clone(),
                            pattern_type: e.pattern_type,
                            principal: e.principal.clone(),
                            host: e.host.clone(),
                            operation: e.operation,
                            permission: e.permission_type,
                        })
                    })
                    .map(|(id, e)| {
                        ids.push(id.clone());
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(e.resource_type)
                            .with_resource_name(StrBytes::from_string(e.resource_name.clone()))
                            .with_pattern_type(e.pattern_type)
                            .with_principal(StrBytes::from_string(e.principal.clone()))
                            .with_host(StrBytes::from_string(e.host.clone()))
                            .with_operation(e.operation)
                            .with_permission_type(e.permission_type)
                    })
                    .collect();
                DeleteAclsFilterResult::default().with_matching_acls(matching)
            })
            .collect();
        let records = self.controller.delete_acls(&ids);
        (
            ResponseKind::DeleteAcls(
                kafka_protocol::messages::DeleteAclsResponse::default()
                    .with_filter_results(results),
            ),
            records,
        )
    }

    /// A broker's heartbeat (BrokerHeartbeat, 63): unfences it once caught up, fences it on request.
    fn heartbeat(
        &mut self,
        request: &RequestKind,
        r: &BrokerHeartbeatRequest,
        now_ms: u64,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        match self.controller.heartbeat(
            r.broker_id.0,
            r.broker_epoch,
            r.current_metadata_offset,
            r.want_fence,
            r.want_shut_down,
            now_ms,
        ) {
            Ok((h, records)) => (
                ResponseKind::BrokerHeartbeat(
                    BrokerHeartbeatResponse::default()
                        .with_is_caught_up(h.is_caught_up)
                        .with_is_fenced(h.is_fenced)
                        .with_should_shut_down(h.should_shutdown),
                ),
                records,
            ),
            Err(e) => (refused(request, &e), Vec::new()),
        }
    }

    /// CreateTopics (19), one topic at a time.
    fn create_topics(&mut self, r: &CreateTopicsRequest) -> (ResponseKind, Vec<MetadataRecord>) {
        let mut results = Vec::new();
        let mut records = Vec::new();
        for t in &r.topics {
            let command = CreateTopic {
                name: t.name.0.to_string(),
                partitions: t.num_partitions,
                replication_factor: t.replication_factor,
                configs: t
                    .configs
                    .iter()
                    .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
                    .collect(),
            };
            let outcome = if r.validate_only {
                // Validation only: decide, then forget.
                Err(ApiError::InvalidTopic(
                    "validate_only is not supported yet".into(),
                ))
            } else {
                self.controller
                    .create_topics(std::slice::from_ref(&command))
                    .pop()
                    .unwrap_or(Err(ApiError::InvalidTopic("no result".into())))
            };
            let mut result =
                create_topics_response::CreatableTopicResult::default().with_name(t.name.clone());
            match outcome {
                Ok(made) => {
                    let topic = self.controller.image().topic_by_name(&command.name);
                    result = result
                        .with_num_partitions(topic.map_or(0, |t| t.partitions.len() as i32))
                        .with_replication_factor(
                            topic
                                .and_then(|t| t.partitions.values().next())
                                .map_or(0, |p| p.replicas.len() as i16),
                        )
                        .with_topic_id(
                            topic.map_or(uuid::Uuid::nil(), |t| wire_topic_id(&t.topic_id)),
                        );
                    records.extend(made);
                }
                Err(e) => {
                    result = result
                        .with_error_code(e.code())
                        .with_error_message(message_of(&e));
                }
            }
            results.push(result);
        }
        (
            ResponseKind::CreateTopics(CreateTopicsResponse::default().with_topics(results)),
            records,
        )
    }

    /// DeleteTopics (20), by name or (v6+) by id.
    fn delete_topics(&mut self, r: &DeleteTopicsRequest) -> (ResponseKind, Vec<MetadataRecord>) {
        // v6+ names topics in `topics` (by name or id); earlier versions in `topic_names`.
        let names: Vec<Option<String>> = if r.topics.is_empty() {
            r.topic_names
                .iter()
                .map(|n| Some(n.0.to_string()))
                .collect()
        } else {
            r.topics
                .iter()
                .map(|t| match &t.name {
                    Some(n) => Some(n.0.to_string()),
                    None => self
                        .controller
                        .image()
                        .topics
                        .values()
                        .find(|x| wire_topic_id(&x.topic_id) == t.topic_id)
                        .map(|x| x.name.clone()),
                })
                .collect()
        };
        let mut results = Vec::new();
        let mut records = Vec::new();
        for name in names {
            let mut result = delete_topics_response::DeletableTopicResult::default()
                .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))));
            let outcome = match &name {
                Some(n) => self
                    .controller
                    .delete_topics(std::slice::from_ref(n))
                    .pop()
                    .unwrap_or(Err(ApiError::UnknownTopic("no result".into()))),
                None => Err(ApiError::UnknownTopic("no topic with that id".into())),
            };
            match outcome {
                Ok(made) => records.extend(made),
                Err(e) => {
                    result = result
                        .with_error_code(e.code())
                        .with_error_message(message_of(&e));
                }
            }
            results.push(result);
        }
        (
            ResponseKind::DeleteTopics(DeleteTopicsResponse::default().with_responses(results)),
            records,
        )
    }

    /// CreatePartitions (37).
    fn create_partitions(
        &mut self,
        r: &CreatePartitionsRequest,
    ) -> (ResponseKind, Vec<MetadataRecord>) {
        let mut results = Vec::new();
        let mut records = Vec::new();
        for t in &r.topics {
            let mut result = create_partitions_response::CreatePartitionsTopicResult::default()
                .with_name(t.name.clone());
            let outcome = if r.validate_only {
                Err(ApiError::InvalidPartitions(
                    "validate_only is not supported yet".into(),
                ))
            } else {
                self.controller.create_partitions(&t.name.0, t.count)
            };
            match outcome {
                Ok(made) => records.extend(made),
                Err(e) => {
                    result = result
                        .with_error_code(e.code())
                        .with_error_message(message_of(&e));
                }
            }
            results.push(result);
        }
        (
            ResponseKind::CreatePartitions(
                CreatePartitionsResponse::default().with_results(results),
            ),
            records,
        )
    }
}

/// The error answer to `request` for a refusal by the controller core.
fn refused(request: &RequestKind, e: &ApiError) -> ResponseKind {
    refusal(request, e.code(), &e.to_string()).unwrap_or_else(|| {
        // Every controller request has an error form; a request that reached here has one.
        ResponseKind::ApiVersions(Default::default())
    })
}

fn message_of(e: &ApiError) -> Option<StrBytes> {
    Some(StrBytes::from_string(e.to_string()))
}

/// Appends records as entries; returns the last offset, if any. A refusal from the core here
/// means leadership was lost this very step; the next step resets.
/// One committed entry through `ops`: the records ready to apply (an operation's, once its last
/// entry is in; none for a LeaderChange, which drops an operation it cut short).
fn take_ready(ops: &mut OperationBuffer, offset: u64, data: &[u8]) -> Vec<(i64, MetadataRecord)> {
    if data == LEADER_CHANGE {
        let dropped = ops.leader_change();
        if dropped > 0 {
            tracing::warn!(
                offset,
                records = dropped,
                "metadata operation cut short by a leader change: its records are dropped"
            );
        }
        return Vec::new();
    }
    ops.push(offset as i64, data).unwrap_or_else(|err| {
        tracing::error!(offset, "metadata log: {err}");
        Vec::new()
    })
}

/// Appends the records the controller made (and already applied to its image), as one
/// operation: every entry but the last is marked continued, so followers apply them together
/// or not at all ([`OperationBuffer`]). A log failure
/// is fatal for the member, as it is for the proposals the broker makes: the image is ahead of
/// a log that could not take its records, so the node must stop, not go on (seed 1345 of the
/// cluster simulation: an ENOSPC here, then the controller's next record asserted it was
/// applied past the log's end). Losing leadership mid-way cannot happen (a proposal does not
/// change the role), but if it did the records are dropped with the speculative image.
/// `Some(last offset)` only when every record went in.
fn propose(
    node: &mut RaftNode<DiskRaftLog>,
    records: &[MetadataRecord],
    now_ms: u64,
) -> Result<Option<u64>, QuorumError> {
    // Encoded first: nothing is proposed unless all of it can be, so no operation is left
    // open in the log by this leader.
    let mut entries = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        // The controller asserted that its records encode when it made them.
        match r.encode_entry(i + 1 < records.len()) {
            Ok(bytes) => entries.push(bytes),
            Err(e) => {
                tracing::error!("metadata records not proposed: {e}");
                return Ok(None);
            }
        }
    }
    let mut last = None;
    for bytes in entries {
        match node.propose(bytes, now_ms) {
            Ok(offset) => last = Some(offset),
            Err(ProposeError::Log(e)) => return Err(e.into()),
            Err(e @ ProposeError::NotLeader { .. }) => {
                tracing::warn!("metadata record not proposed: {e}");
                return Ok(None);
            }
        }
    }
    Ok(last)
}
