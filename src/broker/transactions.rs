//! The transaction coordinator's shell: one [`TxnCoordinator`] core for every transactional id
//! this broker coordinates. A transactional id's coordinator is the leader of
//! `__transaction_state` partition `hash(id) % transaction.state.log.num.partitions`; others
//! answer NOT_COORDINATOR. When the broker finds it leads a partition at a new leader epoch, it
//! (re)loads that partition's transactions from the log before answering, and resumes the
//! markers of every transaction the log shows prepared.
//!
//! Every transition's record is appended to the id's partition and replicated to the in-sync
//! replicas before the core applies it and before the reply leaves. A prepared transaction's
//! markers are written by a task per transaction: to partitions led here directly, to others
//! through WriteTxnMarkers to their leaders; once every partition has its marker, the
//! completion record is written. Markers carry the coordinator epoch (the state partition's
//! leader epoch), so a deposed coordinator's late markers are fenced by the partitions.
//!
//! Owns the coordinator core and the marker tasks; partitions are written only through
//! [`Partition::write_marker`] and the state partitions' leader appends.

use super::context::Broker;
use super::partitions::{Partition, PartitionError, TxnCheck};
use crate::group::records::partition_for;
use crate::group::transactions::{
    decode_key, encode_key, Transition, TxnConfig, TxnCoordinator, TxnMeta, TxnState,
};
use crate::model::{TopicPartition, CONSUMER_OFFSETS, TRANSACTION_STATE};
use crate::protocol::record_batch::{encode_batch, records};
use crate::runtime;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    add_partitions_to_txn_request::{AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction},
    write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic},
    AddPartitionsToTxnRequest, ApiKey, ProducerId, RequestKind, ResponseKind, TopicName,
    TransactionalId, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex, MutexGuard};

pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
/// How long a state record waits to be replicated (Kafka's `transaction.state.log` writes use
/// the request timeout).
const STATE_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a marker waits to be replicated, and the pause before a failed one is retried.
const MARKER_TIMEOUT: Duration = Duration::from_secs(5);
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// A prepared transaction whose markers must be written.
#[derive(Clone, Debug)]
pub struct MarkerJob {
    pub transactional_id: String,
    pub meta: TxnMeta,
    /// The `__transaction_state` partition and its leader epoch when the job was made.
    pub index: i32,
    pub coordinator_epoch: i32,
}

/// A marker job's transaction: (transactional id, producer id, epoch, start ms).
type JobKey = (String, i64, i16, i64);

pub struct TxnInner {
    pub core: TxnCoordinator,
    /// `__transaction_state` partitions loaded, with the leader epoch they were loaded at.
    loaded: BTreeMap<i32, i32>,
}

pub struct Transactions {
    inner: Mutex<TxnInner>,
    pub state_partitions: i32,
    /// The marker jobs running, by (transactional id, producer id, epoch, transaction start):
    /// a reload queues
    /// the prepared transactions again, and a second job for the same transaction could
    /// otherwise write its old outcome onto the producer's next transaction. A job queued
    /// while another runs is kept here and queued again when that one ends: the running one
    /// may be on its way out (it saw its coordinator epoch end, or its completion record
    /// failed), and dropping the new one left the transaction prepared for good, every
    /// InitProducerId answered CONCURRENT_TRANSACTIONS (simulator seed 236).
    running: std::sync::Mutex<BTreeMap<JobKey, Option<MarkerJob>>>,
    jobs: mpsc::UnboundedSender<MarkerJob>,
    jobs_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<MarkerJob>>>,
}

/// The coordinator, locked, for one transactional id: its state partition and epoch.
pub struct Coordinating<'a> {
    pub inner: MutexGuard<'a, TxnInner>,
    pub index: i32,
    pub coordinator_epoch: i32,
}

impl Transactions {
    pub fn new(config: TxnConfig, state_partitions: i32) -> Transactions {
        let (jobs, rx) = mpsc::unbounded_channel();
        Transactions {
            inner: Mutex::new(TxnInner {
                core: TxnCoordinator::new(config),
                loaded: BTreeMap::new(),
            }),
            state_partitions,
            running: std::sync::Mutex::new(BTreeMap::new()),
            jobs,
            jobs_rx: std::sync::Mutex::new(Some(rx)),
        }
    }

    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.state_partitions)
    }

    fn state_partition(&self, broker: &Broker, index: i32) -> Option<Arc<Partition>> {
        broker.partitions.get_or_apply(
            &TopicPartition::new(TRANSACTION_STATE, index),
            &broker.image(),
        )
    }

    /// Locks the coordinator for `transactional_id`, loading its partition first if this
    /// broker just became its leader; or the error code to answer with.
    pub async fn coordinate(
        &self,
        broker: &Broker,
        transactional_id: &str,
    ) -> Result<Coordinating<'_>, i16> {
        self.coordinate_partition(broker, self.partition_of(transactional_id))
            .await
    }

    /// Locks the coordinator for state partition `index` (which this broker must lead),
    /// loading it first if this broker just became its leader.
    pub async fn coordinate_partition(
        &self,
        broker: &Broker,
        index: i32,
    ) -> Result<Coordinating<'_>, i16> {
        let (partition, epoch) = super::groups::led_partition(broker, TRANSACTION_STATE, index)?;
        let mut inner = self.inner.lock().await;
        if inner.loaded.get(&index) != Some(&epoch) {
            let n = self.state_partitions;
            inner.core.unload(|id| partition_for(id, n) == index);
            load_partition(&mut inner.core, &partition, |id| {
                partition_for(id, n) == index
            })?;
            inner.loaded.insert(index, epoch);
            // Markers of transactions the log shows prepared may not all have been written:
            // the new coordinator writes them (again; a marker twice is harmless).
            for t in inner.core.prepared() {
                if partition_for(&t.transactional_id, n) == index {
                    self.enqueue(t, index, epoch);
                }
            }
        }
        Ok(Coordinating {
            inner,
            index,
            coordinator_epoch: epoch,
        })
    }

    /// Every transaction of the state partitions this broker leads (ListTransactions), each
    /// partition loaded first if need be.
    pub async fn led_transactions(&self, broker: &Broker) -> Vec<(String, TxnMeta)> {
        let mut out = Vec::new();
        for index in 0..self.state_partitions {
            let n = self.state_partitions;
            if let Ok(c) = self.coordinate_partition(broker, index).await {
                out.extend(
                    c.inner
                        .core
                        .all()
                        .filter(|(id, _)| partition_for(id, n) == index)
                        .map(|(id, m)| (id.clone(), m.clone())),
                );
            }
        }
        out
    }

    fn enqueue(&self, t: Transition, index: i32, coordinator_epoch: i32) {
        let _ = self.jobs.send(MarkerJob {
            transactional_id: t.transactional_id,
            meta: t.meta,
            index,
            coordinator_epoch,
        });
    }

    /// Stores a transition's record (replicated to the in-sync replicas), then applies it; a
    /// prepared state gets its markers written. On failure the partition is marked unloaded,
    /// so the next request reloads what the log holds.
    pub async fn store(
        &self,
        broker: &Broker,
        c: &mut Coordinating<'_>,
        t: Transition,
    ) -> Result<(), i16> {
        let index = c.index;
        let stored = match self.state_partition(broker, index) {
            None => Err(NOT_COORDINATOR),
            Some(partition) => {
                let key = encode_key(&t.transactional_id);
                let value = t.meta.encode();
                let batch = encode_batch(
                    0,
                    broker.clock.wall_ms(),
                    &[(Some(key.as_slice()), Some(value.as_slice()))],
                );
                match partition.append_as_leader(batch, true, TxnCheck::Off).await {
                    Ok(appended) if appended.leader_epoch == c.coordinator_epoch => {
                        broker.partitions.notify_appended();
                        partition
                            .wait_replicated(&appended, STATE_WRITE_TIMEOUT)
                            .await
                            .map_err(|e| state_write_error(&e))
                    }
                    Ok(_) => Err(NOT_COORDINATOR),
                    Err(e) => Err(state_write_error(&e)),
                }
            }
        };
        if let Err(code) = stored {
            tracing::warn!(
                transactional_id = %t.transactional_id,
                code,
                "transaction state not stored"
            );
            c.inner.loaded.remove(&index);
            return Err(code);
        }
        if t.meta.state.is_prepared() {
            self.enqueue(t.clone(), index, c.coordinator_epoch);
        }
        c.inner.core.commit(t);
        Ok(())
    }

    /// Waits until the in-sync replicas hold all of state partition `index` as this leader
    /// holds it (its high watermark reaches its log end), at coordinator epoch
    /// `coordinator_epoch`. The coordinator's memory is its log to the end: after a failed
    /// write it reloads the log, unreplicated record included, and a new leader loads what it
    /// holds, not all of it replicated. Any answer or marker resting on that memory without a
    /// write of its own waits for this first; otherwise a retried AddPartitionsToTxn was
    /// answered from a record the next leader never had, which then forgot the transaction
    /// and let the producer's next commit carry its aborted records (simulator seed 254).
    pub async fn settled(
        &self,
        broker: &Broker,
        index: i32,
        coordinator_epoch: i32,
    ) -> Result<(), i16> {
        let Some(partition) = self.state_partition(broker, index) else {
            return Err(NOT_COORDINATOR);
        };
        let log_end = partition
            .leader_log_end()
            .map_err(|e| state_write_error(&e))?;
        if log_end == 0 {
            return Ok(());
        }
        let until = crate::broker::partitions::Appended {
            first_offset: log_end as i64 - 1,
            last_offset: log_end as i64 - 1,
            log_start: 0,
            leader_epoch: coordinator_epoch,
        };
        partition
            .wait_replicated(&until, STATE_WRITE_TIMEOUT)
            .await
            .map_err(|e| state_write_error(&e))
    }

    /// Carries out what AddPartitionsToTxn, AddOffsetsToTxn or EndTxn decided, as the error
    /// code to answer with.
    pub async fn carry_out(
        &self,
        broker: &Broker,
        c: &mut Coordinating<'_>,
        outcome: crate::group::transactions::Outcome,
    ) -> i16 {
        use crate::group::transactions::Outcome;
        match outcome {
            // Nothing to write, yet the state the answer rests on may not be replicated yet
            // (a retry after a failed write, or a coordinator that just loaded its log).
            Outcome::Done => match self.settled(broker, c.index, c.coordinator_epoch).await {
                Ok(()) => 0,
                Err(code) => code,
            },
            // An error can rest on unreplicated memory too (PRODUCER_FENCED from a reloaded
            // record the next coordinator may never have): answered once it is replicated.
            Outcome::Error(code) => {
                match self.settled(broker, c.index, c.coordinator_epoch).await {
                    Ok(()) => code,
                    Err(not_settled) => not_settled,
                }
            }
            Outcome::Write(t) => match self.store(broker, c, t).await {
                Ok(()) => 0,
                Err(code) => code,
            },
        }
    }

    /// KIP-890's verification at this coordinator (AddPartitionsToTxn v4 `verify_only`, or a
    /// partition led here): whether each of `partitions` is in the producer's open
    /// transaction, one code each; or one code for all. The answer rests on the coordinator's
    /// memory, so it waits until that is replicated, as every answer that writes nothing.
    pub async fn verify(
        &self,
        broker: &Broker,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let c = self.coordinate(broker, transactional_id).await?;
        let answer =
            c.inner
                .core
                .verify_partitions(transactional_id, producer_id, epoch, partitions);
        self.settled(broker, c.index, c.coordinator_epoch).await?;
        answer
    }

    /// Loads every state partition this broker leads at a new epoch (resuming the markers of
    /// its prepared transactions), so a coordinator that took over resumes them whether or
    /// not a client asks it anything.
    pub async fn load_led(&self, broker: &Broker) {
        for index in 0..self.state_partitions {
            let _ = self.coordinate_partition(broker, index).await;
        }
    }

    /// Aborts open transactions past their timeout, on every state partition loaded here.
    pub async fn tick(&self, broker: &Broker) {
        self.load_led(broker).await;
        let now_ms = broker.clock.wall_ms();
        let expired: Vec<Transition> = self.inner.lock().await.core.expired(now_ms);
        for t in expired {
            let Ok(mut c) = self.coordinate(broker, &t.transactional_id).await else {
                continue;
            };
            // The state may have moved while the lock was free: decide again.
            let still = c
                .inner
                .core
                .expired(now_ms)
                .into_iter()
                .find(|e| e.transactional_id == t.transactional_id);
            if let Some(t) = still {
                tracing::info!(transactional_id = %t.transactional_id,
                    producer_id = t.meta.producer_id,
                    "transaction timed out: aborting it and fencing its producer");
                let _ = self.store(broker, &mut c, t).await;
            }
        }
    }

    /// Every transaction loaded here (ListTransactions), without loading anything.
    pub async fn lock(&self) -> MutexGuard<'_, TxnInner> {
        self.inner.lock().await
    }

    fn take_jobs(&self) -> Option<mpsc::UnboundedReceiver<MarkerJob>> {
        self.jobs_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

fn state_write_error(e: &PartitionError) -> i16 {
    match e {
        PartitionError::NotLeader
        | PartitionError::NotReplica(_)
        | PartitionError::UnknownTopicOrPartition
        | PartitionError::Storage(_) => NOT_COORDINATOR,
        _ => COORDINATOR_NOT_AVAILABLE,
    }
}

/// Replays a state partition's records for the ids `belongs` accepts.
fn load_partition(
    core: &mut TxnCoordinator,
    partition: &Partition,
    belongs: impl Fn(&str) -> bool,
) -> Result<(), i16> {
    super::groups::replay_partition(partition, "transactions", |batch| {
        let mut loaded = 0;
        match records(batch) {
            Ok(list) => {
                for r in list {
                    let Some(id) = r.key.and_then(|k| decode_key(k).ok()) else {
                        continue;
                    };
                    if !belongs(&id) {
                        continue;
                    }
                    match r.value.map(TxnMeta::decode) {
                        None => core.load(id, None),
                        Some(Ok(meta)) => core.load(id, Some(meta)),
                        Some(Err(e)) => {
                            tracing::warn!(partition = %partition.tp, "skipping a record: {e}")
                        }
                    }
                    loaded += 1;
                }
            }
            Err(e) => tracing::warn!(partition = %partition.tp, "skipping a batch: {e}"),
        }
        loaded
    })
}

/// Writes one marker on a partition this broker leads (WriteTxnMarkers, or the coordinator's
/// own partitions); a `__consumer_offsets` partition's group coordinator then makes the
/// transaction's offsets visible or drops them.
pub async fn write_marker_here(
    broker: &Broker,
    tp: &TopicPartition,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
) -> Result<(), PartitionError> {
    let partition = broker.partition(tp)?;
    partition
        .write_marker(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            broker.clock.wall_ms(),
            MARKER_TIMEOUT,
        )
        .await?;
    broker.partitions.notify_appended();
    if tp.topic == CONSUMER_OFFSETS {
        broker
            .groups
            .complete_transaction(broker, tp.partition, producer_id, commit)
            .await;
    }
    Ok(())
}

/// Runs the marker jobs: one task per prepared transaction.
pub async fn run_markers(broker: Arc<Broker>) {
    let Some(mut jobs) = broker.transactions.take_jobs() else {
        return;
    };
    while let Some(job) = jobs.recv().await {
        let key = (
            job.transactional_id.clone(),
            job.meta.producer_id,
            job.meta.producer_epoch,
            job.meta.start_ms,
        );
        {
            let mut running = broker
                .transactions
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(queued) = running.get_mut(&key) {
                // Being written: this one runs after it, if it is still needed then.
                *queued = Some(job);
                continue;
            }
            running.insert(key.clone(), None);
        }
        let broker = Arc::clone(&broker);
        runtime::spawn(async move {
            complete(Arc::clone(&broker), job).await;
            let queued = broker
                .transactions
                .running
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key)
                .flatten();
            if let Some(next) = queued {
                // Its first round checks the transaction is still prepared here.
                let _ = broker.transactions.jobs.send(next);
            }
        });
    }
}

/// Whether `job`'s transaction is still prepared at the job's producer id and epoch: a
/// marker written after it completed would end the producer's next transaction.
async fn still_prepared(broker: &Broker, job: &MarkerJob) -> bool {
    let inner = broker.transactions.inner.lock().await;
    // The whole state, not just the producer id and epoch: the producer's next transaction
    // has the same ones (no epoch bump per transaction before KIP-890), and a stale job passing
    // this check completed it with only the old transaction's partitions marked.
    inner
        .core
        .get(&job.transactional_id)
        .is_some_and(|m| *m == job.meta)
}

/// Whether this broker still coordinates `job`'s partition at the job's epoch.
fn still_coordinating(broker: &Broker, job: &MarkerJob) -> bool {
    broker
        .transactions
        .state_partition(broker, job.index)
        .is_some_and(|p| p.leadership() == (broker.partitions.node_id(), job.coordinator_epoch))
}

/// Writes every marker of a prepared transaction, retrying until each partition has it (or is
/// gone), then stores the transaction's completion. Stops if this broker stops coordinating
/// it: the next coordinator resumes from the log.
async fn complete(broker: Arc<Broker>, job: MarkerJob) {
    let commit = job.meta.state == TxnState::PrepareCommit;
    let mut remaining: Vec<TopicPartition> = job
        .meta
        .partitions
        .iter()
        .map(|(t, p)| TopicPartition::new(t.clone(), *p))
        .collect();
    let me = broker.partitions.node_id();
    // Markers go out only once the prepared state is replicated: a marker written from a
    // record the next coordinator never has would end the transaction one way on some
    // partitions while that coordinator ends it the other way.
    loop {
        if !still_coordinating(&broker, &job) {
            return;
        }
        let settled = broker
            .transactions
            .settled(&broker, job.index, job.coordinator_epoch)
            .await;
        match settled {
            Ok(()) => break,
            Err(code) => {
                tracing::debug!(transactional_id = %job.transactional_id, code, "state not replicated yet: markers wait")
            }
        }
        runtime::sleep(MARKER_RETRY_BACKOFF).await;
    }
    while !remaining.is_empty() {
        if !still_prepared(&broker, &job).await {
            tracing::debug!(transactional_id = %job.transactional_id, "no longer prepared: its markers are someone else's");
            return;
        }
        if !still_coordinating(&broker, &job) {
            tracing::info!(transactional_id = %job.transactional_id, "no longer its coordinator: leaving its markers to the next");
            return;
        }
        let image = broker.image();
        let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
        let mut failed = Vec::new();
        for tp in remaining {
            match image
                .topic_by_name(&tp.topic)
                .map(|t| t.partitions.get(&tp.partition).map(|p| p.leader))
            {
                // The topic or partition is gone: nothing to mark.
                None | Some(None) => {}
                Some(Some(leader)) if leader < 0 => failed.push(tp),
                Some(Some(leader)) => by_leader.entry(leader).or_default().push(tp),
            }
        }
        for (leader, tps) in by_leader {
            if leader == me {
                for tp in tps {
                    let written = write_marker_here(
                        &broker,
                        &tp,
                        job.meta.producer_id,
                        job.meta.producer_epoch,
                        job.coordinator_epoch,
                        commit,
                    )
                    .await;
                    if let Err(e) = written {
                        if marker_settled(&e) {
                            tracing::info!(partition = %tp, "marker refused for good: {e}");
                        } else {
                            tracing::debug!(partition = %tp, "marker not written: {e}");
                            failed.push(tp);
                        }
                    }
                }
            } else {
                failed.extend(send_markers(&broker, leader, &job, commit, tps).await);
            }
        }
        remaining = failed;
        if !remaining.is_empty() {
            runtime::sleep(MARKER_RETRY_BACKOFF).await;
        }
    }
    let transactions = &broker.transactions;
    let Ok(mut c) = transactions
        .coordinate(&broker, &job.transactional_id)
        .await
    else {
        tracing::debug!(transactional_id = %job.transactional_id, "markers written, but no longer its coordinator");
        return;
    };
    if c.coordinator_epoch != job.coordinator_epoch {
        tracing::debug!(transactional_id = %job.transactional_id, "markers written, but at an older coordinator epoch");
        return;
    }
    let now_ms = broker.clock.wall_ms();
    if let Some(t) = c
        .inner
        .core
        .complete(&job.transactional_id, &job.meta, now_ms)
    {
        tracing::debug!(transactional_id = %job.transactional_id, commit, "transaction complete");
        let _ = transactions.store(&broker, &mut c, t).await;
    }
}

/// A marker refused for good: a newer producer epoch or coordinator already wrote past it (its
/// transaction was ended by that one). A partition this broker does not host is no such
/// answer: a leader that has just restarted (or not yet opened it) says so too, and counting
/// it as settled completed transactions with a partition unmarked, whose records the
/// producer's next commit then carried (simulator seed 12). Each round drops the partitions
/// the metadata no longer has, as Kafka's marker channel does.
fn marker_settled(e: &PartitionError) -> bool {
    matches!(e, PartitionError::Sequence(_))
}

/// KIP-890: a partition leader asks the coordinator of `transactional_id` whether each of
/// `partitions` is in the producer's open transaction (at this broker when it is the
/// coordinator, else AddPartitionsToTxn v4 with `verify_only` to the leader of the id's
/// `__transaction_state` partition). One code per partition; a coordinator that cannot be
/// reached is COORDINATOR_NOT_AVAILABLE for all.
pub async fn verify_in_transaction(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    partitions: &[(String, i32)],
) -> Vec<i16> {
    let txns = &broker.transactions;
    let state = TopicPartition::new(TRANSACTION_STATE, txns.partition_of(transactional_id));
    let leader = broker
        .image()
        .topic_by_name(TRANSACTION_STATE)
        .and_then(|t| t.partitions.get(&state.partition).map(|p| p.leader));
    let all = |code: i16| vec![code; partitions.len()];
    let Some(leader) = leader.filter(|l| *l >= 0) else {
        return all(COORDINATOR_NOT_AVAILABLE);
    };
    if leader == broker.partitions.node_id() {
        return txns
            .verify(broker, transactional_id, producer_id, epoch, partitions)
            .await
            .unwrap_or_else(all);
    }
    let Some(addr) = super::replica_fetcher::leader_addr(broker, leader) else {
        return all(COORDINATOR_NOT_AVAILABLE);
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        topics.entry(t).or_default().push(*p);
    }
    let request = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch)
            .with_verify_only(true)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect(),
            ),
    ]);
    let client_id = format!("ketch-txn-verify-{}", broker.partitions.node_id());
    let answer = super::replica_fetcher::call_once(
        broker,
        &addr,
        &client_id,
        ApiKey::AddPartitionsToTxn,
        4,
        &RequestKind::AddPartitionsToTxn(request),
        STATE_WRITE_TIMEOUT + Duration::from_secs(1),
    )
    .await;
    let r = match answer {
        Ok(ResponseKind::AddPartitionsToTxn(r)) => r,
        other => {
            tracing::debug!(leader, error = ?other.err(), "transaction verification got no answer");
            return all(COORDINATOR_NOT_AVAILABLE);
        }
    };
    if r.error_code != 0 {
        return all(r.error_code);
    }
    let mut codes: BTreeMap<(String, i32), i16> = BTreeMap::new();
    for t in r.results_by_transaction {
        for topic in t.topic_results {
            for p in topic.results_by_partition {
                codes.insert(
                    (topic.name.0.to_string(), p.partition_index),
                    p.partition_error_code,
                );
            }
        }
    }
    // A partition the answer does not mention is not verified.
    partitions
        .iter()
        .map(|p| *codes.get(p).unwrap_or(&COORDINATOR_NOT_AVAILABLE))
        .collect()
}

/// WriteTxnMarkers to `leader` for `tps`; returns those to retry.
async fn send_markers(
    broker: &Broker,
    leader: i32,
    job: &MarkerJob,
    commit: bool,
    tps: Vec<TopicPartition>,
) -> Vec<TopicPartition> {
    let Some(addr) = super::replica_fetcher::leader_addr(broker, leader) else {
        return tps;
    };
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &tps {
        topics.entry(&tp.topic).or_default().push(tp.partition);
    }
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(job.meta.producer_id))
            .with_producer_epoch(job.meta.producer_epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(job.coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            )]);
    let client_id = format!("ketch-txn-markers-{}", broker.partitions.node_id());
    let answer = super::replica_fetcher::call_once(
        broker,
        &addr,
        &client_id,
        ApiKey::WriteTxnMarkers,
        1,
        &RequestKind::WriteTxnMarkers(request),
        MARKER_TIMEOUT + Duration::from_secs(1),
    )
    .await;
    let Ok(ResponseKind::WriteTxnMarkers(r)) = answer else {
        tracing::debug!(leader, "WriteTxnMarkers got no answer");
        return tps;
    };
    let mut settled = std::collections::BTreeSet::new();
    for m in r.markers {
        for t in m.topics {
            for p in t.partitions {
                let code = p.error_code;
                if code == 0
                    || code == ResponseError::InvalidProducerEpoch.code()
                    || code == ResponseError::TransactionCoordinatorFenced.code()
                {
                    settled.insert(TopicPartition::new(t.name.0.to_string(), p.partition_index));
                } else {
                    tracing::debug!(leader, topic = %t.name.0, partition = p.partition_index, code, "marker refused");
                }
            }
        }
    }
    // A partition the answer did not settle (or did not mention) is retried.
    tps.into_iter().filter(|tp| !settled.contains(tp)).collect()
}
