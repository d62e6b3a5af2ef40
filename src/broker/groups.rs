//! The group coordinator's shell: one [`Coordinator`] core for every group this broker
//! coordinates. A group's coordinator is the leader of `__consumer_offsets` partition
//! `hash(group) % offsets.topic.num.partitions`; a request for a group whose partition this
//! broker does not lead gets NOT_COORDINATOR. When the broker finds it leads a partition at a
//! new leader epoch, it (re)loads that partition's groups from the log before answering.
//! Records the core asks for are appended to the group's partition before the replies that
//! depend on them go out. Parked JoinGroup/SyncGroup requests wait on one-shot channels named
//! by tokens.

use super::context::Broker;
use super::partitions::Partition;
use crate::group::coordinator::{Effects, Reply, Token};
use crate::group::records::{partition_for, GroupKey};
use crate::group::{Coordinator, GroupConfig};
use crate::model::TopicPartition;
use crate::protocol::record_batch::{encode_batch, records, RecordBatch, RecordRef};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{oneshot, Mutex, MutexGuard};

pub const CONSUMER_OFFSETS: &str = "__consumer_offsets";
pub const NOT_COORDINATOR: i16 = 16;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;

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
        let node = broker.partitions.node_id();
        let Some(partition) = self.offsets_partition(broker, index) else {
            // Led here by the image but not opened yet: the client retries without looking
            // for the coordinator again.
            let led_here = broker
                .image()
                .topic_by_name(CONSUMER_OFFSETS)
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
        let mut inner = self.inner.lock().await;
        if inner.loaded.get(&index) != Some(&epoch) {
            let offsets_partitions = self.offsets_partitions;
            let dropped = inner
                .core
                .unload(|g| partition_for(g, offsets_partitions) == index);
            for t in dropped {
                inner.waiting.remove(&t);
            }
            load_partition(&mut inner.core, &partition, node)?;
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

    /// Carries out the core's effects: append its records (per partition, one batch), then
    /// send the replies.
    pub fn apply(&self, broker: &Broker, inner: &mut GroupsInner, fx: Effects) {
        if let Err(e) = self.append(broker, &fx.writes) {
            tracing::warn!("group records not stored: {e}");
        }
        for (token, reply) in fx.replies {
            if let Some(tx) = inner.waiting.remove(&token) {
                let _ = tx.send(reply);
            }
        }
    }

    /// Appends group records to their partitions; the first error is returned.
    pub fn append(
        &self,
        broker: &Broker,
        writes: &[crate::group::coordinator::Write],
    ) -> Result<(), String> {
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
            let Some(partition) = self.offsets_partition(broker, index) else {
                result = result.and(Err(format!("{CONSUMER_OFFSETS}-{index} is not here")));
                continue;
            };
            let mut batch = encode_batch(0, now, &records);
            if let Err(e) = partition.append_as_leader(broker.partitions.node_id(), &mut batch, now)
            {
                result = result.and(Err(format!("{CONSUMER_OFFSETS}-{index}: {e}")));
            }
        }
        broker.partitions.notify_appended();
        result
    }

    /// Expires sessions and completes rebalances; called every 100 ms.
    pub async fn tick(&self, broker: &Broker) {
        let mut inner = self.inner.lock().await;
        let fx = inner.core.tick(broker.clock.monotonic_ms());
        self.apply(broker, &mut inner, fx);
    }

    /// Every group on this broker (ListGroups), without loading anything.
    pub async fn lock(&self) -> MutexGuard<'_, GroupsInner> {
        self.inner.lock().await
    }
}

/// Replays the whole partition into the core.
fn load_partition(core: &mut Coordinator, partition: &Partition, node: i32) -> Result<(), i16> {
    let (start, hw, _) = partition.offsets(node).map_err(|_| NOT_COORDINATOR)?;
    let mut offset = start;
    let mut loaded = 0usize;
    while offset < hw {
        let read = partition
            .read_as_leader(node, offset as i64, 1 << 20)
            .map_err(|e| {
                tracing::error!(partition = %partition.tp, "loading groups: {e}");
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
            match records(&batch) {
                Ok(list) => {
                    for r in list {
                        let Some(key) = r.key.and_then(|k| GroupKey::decode(k).ok()) else {
                            continue;
                        };
                        core.load(&key, r.value);
                        loaded += 1;
                    }
                }
                Err(e) => tracing::warn!(partition = %partition.tp, "skipping a batch: {e}"),
            }
            rest = tail;
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    tracing::info!(partition = %partition.tp, records = loaded, "groups loaded");
    Ok(())
}
