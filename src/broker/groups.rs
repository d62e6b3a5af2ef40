//! The group coordinator's shell: one [`Coordinator`] core for every group this broker
//! coordinates. A group's coordinator is the leader of `__consumer_offsets` partition
//! `hash(group) % offsets.topic.num.partitions`; a request for a group whose partition this
//! broker does not lead gets NOT_COORDINATOR. When the broker finds it leads a partition at a
//! new leader epoch, it (re)loads that partition's groups from the log before answering.
//! Records the core asks for are appended to the group's partition before the replies that
//! depend on them go out. Parked JoinGroup/SyncGroup requests wait on one-shot channels named
//! by tokens.

use super::context::Broker;
use super::partitions::{Partition, PartitionError, TxnCheck};
use crate::group::coordinator::{Effects, Reply, Token};
use crate::group::records::{partition_for, GroupKey};
use crate::group::{Coordinator, GroupConfig};
use crate::model::TopicPartition;
use crate::protocol::record_batch::{
    encode_batch, marker_of, records, set_transactional_producer, RecordBatch, RecordRef,
};
use crate::runtime;
use kafka_protocol::error::ResponseError;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, Mutex, MutexGuard};

pub use crate::model::CONSUMER_OFFSETS;
pub const NOT_COORDINATOR: i16 = ResponseError::NotCoordinator.code();
pub const COORDINATOR_NOT_AVAILABLE: i16 = ResponseError::CoordinatorNotAvailable.code();
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = ResponseError::CoordinatorLoadInProgress.code();
/// `offsets.commit.timeout.ms`: how long a group write waits to be replicated.
const OFFSETS_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why group records were not stored, and the error code their requests get (as Kafka maps a
/// failed `__consumer_offsets` append).
#[derive(Debug, thiserror::Error)]
pub enum GroupStoreError {
    #[error("{CONSUMER_OFFSETS}-{0} is not led here")]
    NotHere(i32),
    #[error("{CONSUMER_OFFSETS}-{0}: {1}")]
    Partition(i32, #[source] PartitionError),
}

impl GroupStoreError {
    pub fn code(&self) -> i16 {
        match self {
            GroupStoreError::NotHere(_) => NOT_COORDINATOR,
            GroupStoreError::Partition(_, e) => match e {
                PartitionError::NotLeader
                | PartitionError::NotReplica(_)
                | PartitionError::Storage(_)
                | PartitionError::UnknownTopicOrPartition => NOT_COORDINATOR,
                PartitionError::MessageTooLarge(_) => ResponseError::InvalidCommitOffsetSize.code(),
                _ => COORDINATOR_NOT_AVAILABLE,
            },
        }
    }
}

pub struct GroupsInner {
    pub core: Coordinator,
    waiting: BTreeMap<Token, oneshot::Sender<Reply>>,
    /// `__consumer_offsets` partitions loaded, with the leader epoch they were loaded at.
    loaded: BTreeMap<i32, i32>,
}

pub struct Groups {
    inner: Mutex<GroupsInner>,
    pub offsets_partitions: i32,
    next_token: AtomicU64,
}

/// The coordinator, locked, for a group this broker coordinates.
pub struct Coordinating<'a> {
    pub inner: MutexGuard<'a, GroupsInner>,
}

impl Groups {
    pub fn new(config: GroupConfig, offsets_partitions: i32, seed: u64) -> Groups {
        use rand::SeedableRng;
        Groups {
            inner: Mutex::new(GroupsInner {
                core: Coordinator::new(config, rand_chacha::ChaCha8Rng::seed_from_u64(seed)),
                waiting: BTreeMap::new(),
                loaded: BTreeMap::new(),
            }),
            offsets_partitions,
            next_token: AtomicU64::new(1),
        }
    }

    pub fn partition_of(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.offsets_partitions)
    }

    fn offsets_partition(&self, broker: &Broker, index: i32) -> Option<Arc<Partition>> {
        broker.partitions.get_or_apply(
            &TopicPartition::new(CONSUMER_OFFSETS, index),
            &broker.image(),
        )
    }

    /// Locks the coordinator for `group_id`, loading its partition first if this broker just
    /// became its leader; or the error code to answer with.
    pub async fn coordinate(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<Coordinating<'_>, i16> {
        let index = self.partition_of(group_id);
        let (partition, epoch) = led_partition(broker, CONSUMER_OFFSETS, index)?;
        let mut inner = self.inner.lock().await;
        if inner.loaded.get(&index) != Some(&epoch) {
            let offsets_partitions = self.offsets_partitions;
            let dropped = inner
                .core
                .unload(|g| partition_for(g, offsets_partitions) == index);
            for t in dropped {
                inner.waiting.remove(&t);
            }
            load_partition(&mut inner.core, &partition, index, offsets_partitions)?;
            inner.loaded.insert(index, epoch);
        }
        Ok(Coordinating { inner })
    }

    pub fn token(&self) -> Token {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Parks a reply slot for `token`; the answer comes through the receiver.
    pub fn park(inner: &mut GroupsInner, token: Token) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        inner.waiting.insert(token, tx);
        rx
    }

    /// Carries out the core's effects: append its records (per partition, one batch, each
    /// replicated as `offsets.commit.required.acks=-1` asks), then send the replies — as
    /// errors if the records could not be stored (the group then reloads from the log).
    pub async fn apply(&self, broker: &Broker, inner: &mut GroupsInner, fx: Effects) {
        let failed = self.append(broker, inner, &fx.writes).await.err();
        // The answer may leave well after its records were stored.
        runtime::buggify_delay("group reply").await;
        for (token, reply) in fx.replies {
            let reply = match (&failed, reply) {
                (None, r) => r,
                (Some(e), Reply::Join(j)) => Reply::Join(crate::group::coordinator::JoinResponse {
                    error: e.code(),
                    ..j
                }),
                (Some(e), Reply::Sync(s)) => Reply::Sync(crate::group::coordinator::SyncResponse {
                    error: e.code(),
                    assignment: Vec::new(),
                    ..s
                }),
            };
            if let Some(tx) = inner.waiting.remove(&token) {
                let _ = tx.send(reply);
            }
        }
    }

    /// Appends group records to their partitions and waits until they are replicated to the
    /// in-sync replicas (at most `offsets.commit.timeout.ms`, 5 s). On failure the partitions
    /// written to are marked unloaded, so the next request reloads their groups from what the
    /// log holds: the core's state was changed before the write.
    pub async fn append(
        &self,
        broker: &Broker,
        inner: &mut GroupsInner,
        writes: &[crate::group::coordinator::Write],
    ) -> Result<(), GroupStoreError> {
        let mut by_partition: BTreeMap<i32, Vec<RecordRef<'_>>> = BTreeMap::new();
        for w in writes {
            by_partition
                .entry(self.partition_of(&w.group_id))
                .or_default()
                .push((Some(w.key.as_slice()), w.value.as_deref()));
        }
        let now = broker.clock.wall_ms();
        let mut result = Ok(());
        for (index, records) in by_partition {
            let stored = self
                .store_batch(broker, index, encode_batch(0, now, &records), TxnCheck::Off)
                .await;
            if let Err(e) = stored {
                tracing::warn!("group records not stored: {e}");
                inner.loaded.remove(&index);
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        result
    }

    /// Appends one batch to `__consumer_offsets` partition `index` as its leader and waits
    /// until the in-sync replicas have it (`offsets.commit.required.acks=-1`, at most
    /// `offsets.commit.timeout.ms`).
    async fn store_batch(
        &self,
        broker: &Broker,
        index: i32,
        batch: Vec<u8>,
        check: TxnCheck,
    ) -> Result<(), GroupStoreError> {
        let partition = self
            .offsets_partition(broker, index)
            .ok_or(GroupStoreError::NotHere(index))?;
        let appended = partition
            .append_as_leader(batch, true, check)
            .await
            .map_err(|e| GroupStoreError::Partition(index, e))?;
        broker.partitions.notify_appended();
        partition
            .wait_replicated(&appended, OFFSETS_COMMIT_TIMEOUT)
            .await
            .map_err(|e| GroupStoreError::Partition(index, e))
    }

    /// Stores offsets committed in a transaction of `producer_id` (TxnOffsetCommit): one
    /// transactional batch with the producer's id and epoch (no sequence, as Kafka writes
    /// them), replicated to the in-sync replicas; they stay pending until its marker.
    pub async fn append_txn(
        &self,
        broker: &Broker,
        inner: &mut GroupsInner,
        group_id: &str,
        (producer_id, producer_epoch): (i64, i16),
        writes: &[crate::group::coordinator::Write],
        check: TxnCheck,
    ) -> Result<(), GroupStoreError> {
        let index = self.partition_of(group_id);
        let records: Vec<RecordRef<'_>> = writes
            .iter()
            .map(|w| (Some(w.key.as_slice()), w.value.as_deref()))
            .collect();
        let mut batch = encode_batch(0, broker.clock.wall_ms(), &records);
        set_transactional_producer(&mut batch, producer_id, producer_epoch);
        let stored = self.store_batch(broker, index, batch, check).await;
        if let Err(e) = &stored {
            tracing::warn!("transactional offsets not stored: {e}");
            inner.loaded.remove(&index);
        }
        stored
    }

    /// A transaction marker of `producer_id` is on `__consumer_offsets` partition `index`:
    /// the transaction's offsets for that partition's groups commit or go. A partition not
    /// loaded here replays the marker when it loads.
    pub async fn complete_transaction(
        &self,
        _broker: &Broker,
        index: i32,
        producer_id: i64,
        commit: bool,
    ) {
        let n = self.offsets_partitions;
        let mut inner = self.inner.lock().await;
        inner
            .core
            .complete_txn(producer_id, commit, |g| partition_for(g, n) == index);
    }

    /// Expires sessions and completes rebalances; called every 100 ms.
    pub async fn tick(&self, broker: &Broker) {
        let mut inner = self.inner.lock().await;
        let fx = inner.core.tick(broker.clock.monotonic_ms());
        self.apply(broker, &mut inner, fx).await;
    }

    /// Every group on this broker (ListGroups), without loading anything.
    pub async fn lock(&self) -> MutexGuard<'_, GroupsInner> {
        self.inner.lock().await
    }
}

/// A coordinator's partition (`topic`-`index`) and its leader epoch, if this broker leads it;
/// else NOT_COORDINATOR, or COORDINATOR_LOAD_IN_PROGRESS when the image says it is led here
/// but it is not open yet (the client retries without looking for the coordinator again).
pub(super) fn led_partition(
    broker: &Broker,
    topic: &str,
    index: i32,
) -> Result<(Arc<Partition>, i32), i16> {
    let node = broker.partitions.node_id();
    let Some(partition) = broker
        .partitions
        .get_or_apply(&TopicPartition::new(topic, index), &broker.image())
    else {
        let led_here = broker
            .image()
            .topic_by_name(topic)
            .and_then(|t| t.partitions.get(&index))
            .is_some_and(|p| p.leader == node);
        return Err(if led_here {
            COORDINATOR_LOAD_IN_PROGRESS
        } else {
            NOT_COORDINATOR
        });
    };
    let (leader, epoch) = partition.leadership();
    if leader != node {
        return Err(NOT_COORDINATOR);
    }
    Ok((partition, epoch))
}

/// Replays every batch of a coordinator's partition, to its log end: a new leader's log is
/// what will commit (records above its high watermark are its to replicate, never
/// truncated). `each` takes one batch and says how many records it loaded; `what` names them
/// in the log lines.
pub(super) fn replay_partition(
    partition: &Partition,
    what: &str,
    mut each: impl FnMut(&RecordBatch<'_>) -> usize,
) -> Result<(), i16> {
    let (start, _, _) = partition.offsets().map_err(|_| NOT_COORDINATOR)?;
    let mut offset = start;
    let mut loaded = 0usize;
    loop {
        let read = partition
            .read_all_as_leader(offset as i64, 1 << 20)
            .map_err(|e| {
                tracing::error!(partition = %partition.tp, "loading {what}: {e}");
                COORDINATOR_LOAD_IN_PROGRESS
            })?;
        if read.bytes.is_empty() {
            break;
        }
        let mut rest = read.bytes.as_slice();
        let mut next = offset;
        while !rest.is_empty() {
            let Ok((batch, tail)) = RecordBatch::parse(rest, usize::MAX) else {
                break;
            };
            next = batch.last_offset() as u64 + 1;
            loaded += each(&batch);
            rest = tail;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    tracing::info!(partition = %partition.tp, records = loaded, "{what} loaded");
    Ok(())
}

/// Replays partition `index` of `__consumer_offsets` into the core.
fn load_partition(
    core: &mut Coordinator,
    partition: &Partition,
    index: i32,
    offsets_partitions: i32,
) -> Result<(), i16> {
    replay_partition(partition, "groups", |batch| {
        let producer_id = batch.producer_id();
        if batch.is_control() {
            // A transaction marker: the producer's pending offsets in this partition's
            // groups commit or go.
            if let Some((commit, _)) = marker_of(batch) {
                core.complete_txn(producer_id, commit, |g| {
                    partition_for(g, offsets_partitions) == index
                });
            }
            return 0;
        }
        let mut loaded = 0;
        match records(batch) {
            Ok(list) => {
                for r in list {
                    let Some(key) = r.key.and_then(|k| GroupKey::decode(k).ok()) else {
                        continue;
                    };
                    if batch.is_transactional() {
                        core.load_txn(producer_id, &key, r.value);
                    } else {
                        core.load(&key, r.value);
                    }
                    loaded += 1;
                }
            }
            Err(e) => tracing::warn!(partition = %partition.tp, "skipping a batch: {e}"),
        }
        loaded
    })
}
