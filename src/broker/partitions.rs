//! The partitions this broker holds: one [`Partition`] (a log, its leadership and its high
//! watermark) per replica the committed metadata image assigns to this node. [`Partitions`]
//! follows the image: it opens or creates the logs of new replicas, moves leadership, and
//! deletes the logs of removed topics. It owns the partition logs; it never talks to the
//! network or the controller (the handlers do).
//!
//! Replication between brokers is the next step: until then a leader's high watermark is its
//! log end, as in Kafka once the ISR has shrunk to the leader alone (`min.insync.replicas=1`).

use crate::controller::MetadataImage;
use crate::log::{AppendInfo, Log, LogConfig, LogDir, LogError};
use crate::model::TopicPartition;
use crate::protocol::record_batch::{producer_fields_of_header, BatchError, BatchHeader};
use crate::replication::{
    producer_state::last_sequence, BatchRange, ProducerStates, SequenceError, Verdict,
};
use crate::runtime::Disk;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::watch;

/// Kafka's `partition.metadata`: which topic id a partition directory belongs to, so a topic
/// deleted and created again under the same name never inherits the old data.
pub const PARTITION_METADATA: &str = "partition.metadata";
/// The idempotent producers' state as of an offset, written at flushes and clean shutdown so
/// a restart rebuilds it from there instead of from the whole log.
pub const PRODUCER_STATE: &str = "producer-state.json";

/// Why a partition operation failed, as a client is told (Kafka's error codes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("this broker does not host the partition")]
    UnknownTopicOrPartition,
    #[error("this broker is not the partition's leader")]
    NotLeader,
    #[error("offset {offset} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: u64,
        log_end: u64,
    },
    #[error("record batch larger than max.message.bytes: {0}")]
    MessageTooLarge(String),
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    #[error("the leader epoch {theirs} is older than the current {ours}")]
    FencedLeaderEpoch { theirs: i32, ours: i32 },
    #[error("the leader epoch {theirs} is newer than the current {ours}")]
    UnknownLeaderEpoch { theirs: i32, ours: i32 },
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("a retried batch among several in one request")]
    DuplicateSequence,
    #[error("storage error: {0}")]
    Storage(String),
}

impl PartitionError {
    pub fn code(&self) -> i16 {
        match self {
            PartitionError::UnknownTopicOrPartition => 3,
            PartitionError::NotLeader => 6,
            PartitionError::OffsetOutOfRange { .. } => 1,
            PartitionError::MessageTooLarge(_) => 10,
            PartitionError::Corrupt(_) => 2,
            PartitionError::FencedLeaderEpoch { .. } => 74,
            PartitionError::UnknownLeaderEpoch { .. } => 75,
            PartitionError::Sequence(e) => e.code(),
            PartitionError::DuplicateSequence => 46,
            PartitionError::Storage(_) => 56, // KAFKA_STORAGE_ERROR
        }
    }
}

fn append_error(e: LogError) -> PartitionError {
    match e {
        LogError::InvalidBatch {
            reason: BatchError::TooLarge { size, limit },
            ..
        } => PartitionError::MessageTooLarge(format!("{size} bytes, limit {limit}")),
        LogError::InvalidBatch { reason, .. } => PartitionError::Corrupt(reason.to_string()),
        LogError::EmptyAppend => PartitionError::Corrupt("no record batch".into()),
        other => PartitionError::Storage(other.to_string()),
    }
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, possibly empty.
    pub bytes: Vec<u8>,
    pub high_watermark: u64,
    pub log_start_offset: u64,
}

struct Inner {
    /// `None` once the partition is deleted (an in-flight request may still hold it).
    log: Option<Log>,
    leader: i32,
    leader_epoch: i32,
    /// Everything below is readable by consumers.
    high_watermark: u64,
    producers: ProducerStates,
}

/// The idempotent batches in `data` (whole batches, offsets as they stand): (producer id,
/// epoch, range).
fn idempotent_batches(data: &[u8]) -> Vec<(i64, i16, BatchRange)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Ok(header) = BatchHeader::parse(rest, usize::MAX) {
        let size = header.size();
        if rest.len() < size {
            break;
        }
        if let Some((base, delta, pid, epoch, seq, _)) = producer_fields_of_header(rest) {
            if pid >= 0 {
                out.push((
                    pid,
                    epoch,
                    BatchRange {
                        first_seq: seq,
                        last_seq: last_sequence(seq, delta),
                        first_offset: base,
                        last_offset: base + i64::from(delta),
                    },
                ));
            }
        }
        rest = &rest[size..];
    }
    out
}

#[derive(Serialize, Deserialize)]
struct ProducerSnapshot {
    offset: u64,
    state: ProducerStates,
}

/// Rebuilds the producers' state of `log`: from its snapshot if it is still within the log,
/// else from the start of the active segment, then from every batch after that.
fn recover_producers(disk: &dyn Disk, log: &Log) -> ProducerStates {
    let end = log.log_end_offset();
    let snapshot = disk
        .read_file(&log.dir().join(PRODUCER_STATE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ProducerSnapshot>(&bytes).ok())
        .filter(|s| s.offset <= end && s.offset >= log.log_start_offset());
    let (mut state, mut offset) = match snapshot {
        Some(s) => (s.state, s.offset),
        None => (
            ProducerStates::new(),
            log.segment_base_offsets()
                .last()
                .copied()
                .unwrap_or(0)
                .max(log.log_start_offset()),
        ),
    };
    while offset < end {
        let Ok(bytes) = log.read(offset, 4 << 20, None) else {
            break;
        };
        if bytes.is_empty() {
            break;
        }
        let mut next = offset;
        let mut rest = bytes.as_slice();
        while let Ok(header) = BatchHeader::parse(rest, usize::MAX) {
            let size = header.size();
            if rest.len() < size {
                break;
            }
            next = header.last_offset() as u64 + 1;
            rest = &rest[size..];
        }
        for (pid, epoch, range) in idempotent_batches(&bytes) {
            if range.first_offset as u64 >= offset {
                state.record(pid, epoch, range);
            }
        }
        if next <= offset {
            break;
        }
        offset = next;
    }
    state
}

pub struct Partition {
    pub tp: TopicPartition,
    pub topic_id: String,
    /// Which of the broker's log dirs holds it.
    dir_index: usize,
    inner: RwLock<Inner>,
}

impl Partition {
    fn read_inner(&self) -> RwLockReadGuard<'_, Inner> {
        // A panic while holding the lock already stopped the broker's invariants; keep serving
        // what is there rather than poisoning every later request.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_inner(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The current leader id and epoch.
    pub fn leadership(&self) -> (i32, i32) {
        let inner = self.read_inner();
        (inner.leader, inner.leader_epoch)
    }

    /// Appends a leader's batches (offsets assigned here), `data` as the producer sent it.
    /// Idempotent batches are checked against the producers' state first; a retried batch is
    /// not appended again. Returns the first offset of the batches (the original one for a
    /// retry) and the log start offset.
    pub fn append_as_leader(
        &self,
        node_id: i32,
        data: &mut [u8],
        now_ms: i64,
    ) -> Result<(i64, u64), PartitionError> {
        let mut guard = self.write_inner();
        let inner = &mut *guard;
        if inner.leader != node_id {
            return Err(PartitionError::NotLeader);
        }
        let idempotent = idempotent_batches(data);
        if !idempotent.is_empty() {
            let mut trial = None::<ProducerStates>;
            for (i, (pid, epoch, range)) in idempotent.iter().enumerate() {
                let state = trial.as_ref().unwrap_or(&inner.producers);
                match state.check(*pid, *epoch, range.first_seq, range.last_seq)? {
                    Verdict::Duplicate { first_offset } if idempotent.len() == 1 => {
                        let start = inner.log.as_ref().map_or(0, |l| l.log_start_offset());
                        return Ok((first_offset, start));
                    }
                    Verdict::Duplicate { .. } => return Err(PartitionError::DuplicateSequence),
                    Verdict::Append => {}
                }
                if idempotent.len() > 1 && i + 1 < idempotent.len() {
                    // Later batches of this request are checked as if this one were appended.
                    let t = trial.get_or_insert_with(|| inner.producers.clone());
                    t.record(*pid, *epoch, *range);
                }
            }
        }
        let epoch = inner.leader_epoch;
        let log = inner
            .log
            .as_mut()
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        let info: AppendInfo = log
            .append(data, Some(epoch), now_ms)
            .map_err(append_error)?;
        let end = log.log_end_offset();
        let start = log.log_start_offset();
        // The offsets are in `data` now.
        for (pid, epoch, range) in idempotent_batches(data) {
            inner.producers.record(pid, epoch, range);
        }
        // One replica in the ISR: what the leader has is committed.
        assert!(end >= inner.high_watermark, "high watermark beyond log end");
        inner.high_watermark = end;
        Ok((info.first_offset as i64, start))
    }

    /// Checks a client's view of the leader epoch (KIP-320); -1 means "not given".
    pub fn check_epoch(&self, current_leader_epoch: i32) -> Result<(), PartitionError> {
        let ours = self.read_inner().leader_epoch;
        if current_leader_epoch < 0 || current_leader_epoch == ours {
            Ok(())
        } else if current_leader_epoch < ours {
            Err(PartitionError::FencedLeaderEpoch {
                theirs: current_leader_epoch,
                ours,
            })
        } else {
            Err(PartitionError::UnknownLeaderEpoch {
                theirs: current_leader_epoch,
                ours,
            })
        }
    }

    /// Reads whole batches from `offset` below the high watermark, as the leader.
    pub fn read_as_leader(
        &self,
        node_id: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, PartitionError> {
        self.as_leader(node_id, |inner, log| {
            let hw = inner.high_watermark;
            let start = log.log_start_offset();
            let out_of_range = || PartitionError::OffsetOutOfRange {
                offset,
                log_start: start,
                log_end: hw,
            };
            let offset = u64::try_from(offset).map_err(|_| out_of_range())?;
            // Kafka: reading at the high watermark is fine (empty); past it is out of range.
            if offset < start || offset > hw {
                return Err(out_of_range());
            }
            let bytes = if offset == hw {
                Vec::new()
            } else {
                log.read(offset, max_bytes, Some(hw))
                    .map_err(|e| PartitionError::Storage(e.to_string()))?
            };
            Ok(ReadResult {
                bytes,
                high_watermark: hw,
                log_start_offset: start,
            })
        })
    }

    /// Runs `f` on the state and log under the read lock, if this node leads the partition.
    fn as_leader<T>(
        &self,
        node_id: i32,
        f: impl FnOnce(&Inner, &Log) -> Result<T, PartitionError>,
    ) -> Result<T, PartitionError> {
        let inner = self.read_inner();
        if inner.leader != node_id {
            return Err(PartitionError::NotLeader);
        }
        let log = inner
            .log
            .as_ref()
            .ok_or(PartitionError::UnknownTopicOrPartition)?;
        f(&inner, log)
    }

    /// (log start, high watermark, leader epoch) as the leader.
    pub fn offsets(&self, node_id: i32) -> Result<(u64, u64, i32), PartitionError> {
        self.as_leader(node_id, |inner, log| {
            Ok((
                log.log_start_offset(),
                inner.high_watermark,
                inner.leader_epoch,
            ))
        })
    }

    /// Runs `f` on the log (read-only), as the leader: ListOffsets' timestamp lookups.
    pub fn with_log<T>(
        &self,
        node_id: i32,
        f: impl FnOnce(&Log, u64) -> Result<T, LogError>,
    ) -> Result<T, PartitionError> {
        self.as_leader(node_id, |inner, log| {
            f(log, inner.high_watermark).map_err(|e| PartitionError::Storage(e.to_string()))
        })
    }
}

/// Broker-wide log settings (`log.*` keys); topic configs override them per partition.
#[derive(Clone, Debug)]
pub struct LogDefaults {
    pub base: LogConfig,
}

impl LogDefaults {
    /// The config of a partition of `topic`: the defaults with the topic's overrides.
    pub fn for_topic(&self, image: &MetadataImage, topic: &str) -> LogConfig {
        let mut c = self.base.clone();
        if let Some(overrides) = image.configs.get(&("topic".to_string(), topic.to_string())) {
            for (k, v) in overrides {
                let v = v.trim();
                match k.as_str() {
                    "retention.ms" => c.retention_ms = v.parse().unwrap_or(c.retention_ms),
                    "retention.bytes" => c.retention_bytes = v.parse().unwrap_or(c.retention_bytes),
                    "segment.bytes" => {
                        c.segment_bytes_max = v.parse().unwrap_or(c.segment_bytes_max)
                    }
                    "segment.ms" => c.segment_ms = v.parse().unwrap_or(c.segment_ms),
                    "max.message.bytes" => {
                        c.max_batch_bytes = v.parse().unwrap_or(c.max_batch_bytes)
                    }
                    _ => {}
                }
            }
        }
        c
    }
}

/// A log found on disk at start: its dir index, the topic id it belongs to, and the log.
type Stray = (usize, Option<String>, Log);

/// Every partition replica on this broker.
pub struct Partitions {
    node_id: i32,
    disk: Arc<dyn Disk>,
    dirs: Vec<LogDir>,
    defaults: LogDefaults,
    map: RwLock<BTreeMap<TopicPartition, Arc<Partition>>>,
    /// Logs found on disk at start that the image has not claimed (yet), with their dir index
    /// and topic id.
    strays: Mutex<BTreeMap<TopicPartition, Stray>>,
    /// Bumped after every append; a fetch waiting for data watches it.
    appended: watch::Sender<u64>,
    /// One `apply_image` at a time: two would both create the same log.
    applying: Mutex<()>,
}

fn read_topic_id(disk: &dyn Disk, dir: &Path) -> Option<String> {
    let text = disk.read_file(&dir.join(PARTITION_METADATA)).ok()?;
    let text = String::from_utf8(text).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("topic_id:"))
        .map(|id| id.trim().to_string())
}

impl Partitions {
    /// Takes the logs recovered from `dirs` (`logs[i]` from `dirs[i]`).
    pub fn new(
        node_id: i32,
        disk: Arc<dyn Disk>,
        dirs: Vec<LogDir>,
        logs: Vec<BTreeMap<TopicPartition, Log>>,
        defaults: LogDefaults,
    ) -> Partitions {
        let mut strays = BTreeMap::new();
        for (i, logs) in logs.into_iter().enumerate() {
            for (tp, log) in logs {
                let id = read_topic_id(disk.as_ref(), log.dir());
                strays.insert(tp, (i, id, log));
            }
        }
        Partitions {
            node_id,
            disk,
            dirs,
            defaults,
            map: RwLock::new(BTreeMap::new()),
            strays: Mutex::new(strays),
            appended: watch::channel(0).0,
            applying: Mutex::new(()),
        }
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The partition, applying `image` first if it assigns the partition to this node and
    /// the background follower has not got to it yet (a request right after a topic is made).
    pub fn get_or_apply(
        &self,
        tp: &TopicPartition,
        image: &MetadataImage,
    ) -> Option<Arc<Partition>> {
        if let Some(p) = self.get(tp) {
            return Some(p);
        }
        let assigned = image
            .topic_by_name(&tp.topic)
            .and_then(|t| t.partitions.get(&tp.partition))
            .is_some_and(|p| p.replicas.contains(&self.node_id));
        if !assigned {
            return None;
        }
        self.apply_image(image);
        self.get(tp)
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tp)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Tells fetchers waiting for data that some arrived.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    fn create_log(
        &self,
        tp: &TopicPartition,
        topic_id: &str,
        config: LogConfig,
    ) -> Result<(usize, Log), LogError> {
        // The dir with the fewest partitions, as Kafka places new logs.
        let counts = {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            let mut counts = vec![0usize; self.dirs.len()];
            for p in map.values() {
                if let Some(c) = counts.get_mut(p.dir_index) {
                    *c += 1;
                }
            }
            counts
        };
        let index = (0..self.dirs.len()).min_by_key(|i| counts[*i]).unwrap_or(0);
        let dir = self.dirs.get(index).ok_or_else(|| LogError::BadDirectory {
            path: "log.dirs".into(),
            what: "no log directory".into(),
        })?;
        let log = dir.create_log(tp, config)?;
        let path = log.dir().join(PARTITION_METADATA);
        self.disk
            .write_file_atomic(
                &path,
                format!("version: 0\ntopic_id: {topic_id}\n").as_bytes(),
            )
            .map_err(|e| LogError::Io { path, source: e })?;
        Ok((index, log))
    }

    fn delete_log(&self, dir_index: usize, log: Log) {
        let path = log.dir().display().to_string();
        match self.dirs.get(dir_index).map(|d| d.delete_log(log)) {
            Some(Ok(())) => tracing::info!(%path, "partition log deleted"),
            Some(Err(e)) => tracing::error!(%path, "cannot delete partition log: {e}"),
            None => {}
        }
    }

    /// Makes the partitions match the committed image: this node's replicas exist with the
    /// image's leadership, and nothing else does.
    pub fn apply_image(&self, image: &MetadataImage) {
        let _one_at_a_time = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let mut wanted: BTreeMap<TopicPartition, (String, i32, i32)> = BTreeMap::new();
        for topic in image.topics.values() {
            for (index, p) in &topic.partitions {
                if p.replicas.contains(&self.node_id) {
                    wanted.insert(
                        TopicPartition::new(topic.name.clone(), *index),
                        (topic.topic_id.clone(), p.leader, p.leader_epoch),
                    );
                }
            }
        }
        // Gone: deleted topics, and replicas moved away.
        let gone: Vec<Arc<Partition>> = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            let keys: Vec<TopicPartition> = map
                .iter()
                .filter(|(tp, p)| wanted.get(*tp).is_none_or(|w| w.0 != p.topic_id))
                .map(|(tp, _)| tp.clone())
                .collect();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for p in gone {
            let log = p.write_inner().log.take();
            if let Some(log) = log {
                self.delete_log(p.dir_index, log);
            }
        }
        for (tp, (topic_id, leader, leader_epoch)) in wanted {
            let config = self.defaults.for_topic(image, &tp.topic);
            if let Some(p) = self.get(&tp) {
                let mut inner = p.write_inner();
                if inner.leader != leader || inner.leader_epoch != leader_epoch {
                    tracing::info!(partition = %tp, leader, leader_epoch, "leadership");
                }
                inner.leader = leader;
                inner.leader_epoch = leader_epoch;
                if let Some(log) = inner.log.as_mut() {
                    if log.config() != &config {
                        log.set_config(config);
                    }
                }
                continue;
            }
            let stray = self
                .strays
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&tp);
            let opened = match stray {
                Some((index, Some(id), log)) if id == topic_id => {
                    let mut log = log;
                    log.set_config(config);
                    Ok((index, log))
                }
                Some((index, _, log)) => {
                    // A log of an older topic with this name: its data is not this topic's.
                    self.delete_log(index, log);
                    self.create_log(&tp, &topic_id, config)
                }
                None => self.create_log(&tp, &topic_id, config),
            };
            match opened {
                Ok((dir_index, log)) => {
                    let end = log.log_end_offset();
                    let producers = recover_producers(self.disk.as_ref(), &log);
                    tracing::info!(partition = %tp, leader, leader_epoch, log_end = end, "partition ready");
                    let partition = Arc::new(Partition {
                        tp: tp.clone(),
                        topic_id,
                        dir_index,
                        inner: RwLock::new(Inner {
                            log: Some(log),
                            leader,
                            leader_epoch,
                            high_watermark: end,
                            producers,
                        }),
                    });
                    self.map
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(tp, partition);
                }
                Err(e) => tracing::error!(partition = %tp, "cannot open the partition log: {e}"),
            }
        }
        self.notify_appended();
    }

    /// Fsyncs every log and records the recovery points.
    pub fn flush_all(&self) -> Result<(), LogError> {
        let partitions = self.all();
        for p in &partitions {
            let mut guard = p.write_inner();
            let Inner { log, producers, .. } = &mut *guard;
            let Some(log) = log.as_mut() else {
                continue;
            };
            log.flush()?;
            let snapshot = ProducerSnapshot {
                offset: log.log_end_offset(),
                state: producers.clone(),
            };
            let path = log.dir().join(PRODUCER_STATE);
            let bytes = serde_json::to_vec(&snapshot).unwrap_or_default();
            self.disk
                .write_file_atomic(&path, &bytes)
                .map_err(|e| LogError::Io { path, source: e })?;
        }
        self.write_recovery_points(&partitions)
    }

    fn write_recovery_points(&self, partitions: &[Arc<Partition>]) -> Result<(), LogError> {
        for (i, dir) in self.dirs.iter().enumerate() {
            // Recovery points are taken from each log under its lock, then written together.
            let mut map: BTreeMap<TopicPartition, u64> = BTreeMap::new();
            for p in partitions.iter().filter(|p| p.dir_index == i) {
                if let Some(log) = p.read_inner().log.as_ref() {
                    map.insert(p.tp.clone(), log.flushed_offset());
                }
            }
            for (tp, (index, _, log)) in
                self.strays.lock().unwrap_or_else(|p| p.into_inner()).iter()
            {
                if *index == i {
                    map.insert(tp.clone(), log.flushed_offset());
                }
            }
            crate::log::write_offset_checkpoint(
                self.disk.as_ref(),
                &dir.path().join(crate::log::RECOVERY_POINT_CHECKPOINT),
                &map,
            )?;
        }
        Ok(())
    }

    /// Deletes expired segments of every log (never at or above the high watermark).
    pub fn apply_retention(&self, now_ms: i64) {
        for p in self.all() {
            let mut inner = p.write_inner();
            let hw = inner.high_watermark;
            if let Some(log) = inner.log.as_mut() {
                match log.apply_retention(now_ms, hw) {
                    Ok(r) if r.segments_deleted > 0 => tracing::info!(
                        partition = %p.tp,
                        segments = r.segments_deleted,
                        bytes = r.bytes_deleted,
                        log_start = r.log_start_offset,
                        "retention deleted segments"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(partition = %p.tp, "retention failed: {e}"),
                }
            }
        }
    }

    /// Flushes and closes every log (clean shutdown: the next start scans nothing).
    pub fn close_all(&self) -> Result<(), LogError> {
        self.flush_all()?;
        let partitions: Vec<Arc<Partition>> = {
            let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
            std::mem::take(&mut *map).into_values().collect()
        };
        for p in partitions {
            let log = p.write_inner().log.take();
            if let Some(log) = log {
                log.close()?;
            }
        }
        let strays = std::mem::take(&mut *self.strays.lock().unwrap_or_else(|p| p.into_inner()));
        for (_, (_, _, log)) in strays {
            log.close()?;
        }
        Ok(())
    }
}
