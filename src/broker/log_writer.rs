//! The single writer task of a partition log, and group commit.
//!
//! Every change to a log goes through its writer: a leader's appends (offsets assigned here),
//! a follower's appends of its leader's batches, truncations and resets. Each is a closure run
//! on the log in order; the task takes every one waiting at that moment, runs them all, and —
//! under [`FlushPolicy::EveryAppend`] — issues one fsync for the lot before it answers any:
//! nothing is acknowledged before it is durable, and N concurrent producers pay for one fsync,
//! not N. Under [`FlushPolicy::Interval`] it answers after the write and flushes on the policy's
//! schedule. Each answer carries the offset below which the log may be acknowledged (its
//! durable end under `EveryAppend`, its end otherwise).
//!
//! A failed fsync is fatal: after one, Linux may have dropped the dirty pages while reads still
//! see them, so carrying on would acknowledge data that is not on disk. The task answers every
//! waiter with the error and ends with it; its owner must stop the node.
//!
//! Readers take the log's read lock; the writer holds the write lock only while it writes.

use crate::log::{AppendInfo, FlushPolicy, Log, LogError};
use crate::runtime::{self, Clock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most operations one group commit takes (bounds the work done while others wait).
const MAX_GROUP: usize = 256;
/// Bound on operations queued for the writer: producers wait beyond it.
const QUEUE_DEPTH: usize = 1024;

/// A log shared by its writer task and its readers; `None` once the partition is deleted.
pub type SharedLog = Arc<RwLock<Option<Log>>>;

pub fn read_log(log: &SharedLog) -> RwLockReadGuard<'_, Option<Log>> {
    log.read().unwrap_or_else(PoisonError::into_inner)
}

pub fn write_log(log: &SharedLog) -> RwLockWriteGuard<'_, Option<Log>> {
    log.write().unwrap_or_else(PoisonError::into_inner)
}

pub type AppendResult = Result<AppendInfo, Arc<LogError>>;

/// What an operation returned, and the offset below which the log may now be acknowledged.
#[derive(Debug)]
pub struct Written<T> {
    pub value: T,
    pub ackable_end: u64,
}

/// Called after the group's flush with its outcome: the ackable end, or the fatal error.
type Reply = Box<dyn FnOnce(Result<u64, Arc<LogError>>) + Send>;
type Op = Box<dyn FnOnce(&mut Log, i64) -> Reply + Send>;

/// Deliberate bugs for the simulator to catch; compiled only with the `planted-bugs` feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Acknowledge appends before the fsync that makes them durable.
    pub ack_before_fsync: bool,
}

/// Sends operations to the writer task.
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: mpsc::Sender<Op>,
    stats: Arc<WriterStats>,
}

/// What the writer has done, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Groups of operations taken together (one fsync each under `EveryAppend`).
    pub groups: AtomicU64,
    pub appends: AtomicU64,
}

fn stopped() -> Arc<LogError> {
    Arc::new(LogError::io(
        std::path::Path::new("<log writer>"),
        std::io::Error::other("log writer stopped"),
    ))
}

impl LogWriter {
    /// Starts the writer task for `log`. The returned handle ends with the fatal error, if any.
    pub fn spawn(
        log: SharedLog,
        clock: Clock,
        bugs: PlantedBugs,
    ) -> (
        LogWriter,
        tokio::task::JoinHandle<Result<(), Arc<LogError>>>,
    ) {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let stats = Arc::new(WriterStats::default());
        let task = runtime::spawn(run(log, clock, rx, bugs, Arc::clone(&stats)));
        (LogWriter { tx, stats }, task)
    }

    pub fn stats(&self) -> &WriterStats {
        &self.stats
    }

    /// Runs `op` on the log (with the wall clock's now, ms) after every operation queued
    /// before it, and waits until the flush policy allows acknowledging what it wrote.
    pub async fn run<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut Log, i64) -> T + Send + 'static,
    ) -> Result<Written<T>, Arc<LogError>> {
        let (reply, rx) = oneshot::channel();
        let op: Op = Box::new(move |log: &mut Log, now_ms: i64| {
            let value = op(log, now_ms);
            Box::new(move |outcome: Result<u64, Arc<LogError>>| {
                // A caller that gave up waiting is not an error.
                let _ = reply.send(outcome.map(|ackable_end| Written { value, ackable_end }));
            }) as Reply
        });
        self.tx.send(op).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Appends `data` (one or more record batches) with offsets assigned by the log, and waits
    /// until the flush policy allows acknowledging it.
    pub async fn append(&self, mut data: Vec<u8>, leader_epoch: Option<i32>) -> AppendResult {
        let written = self
            .run(move |log, now_ms| log.append(&mut data, leader_epoch, now_ms))
            .await?;
        written.value.map_err(Arc::new)
    }
}

/// The offset below which `log` may be acknowledged under its flush policy.
fn ackable_end(log: &Log) -> u64 {
    match log.config().flush {
        FlushPolicy::EveryAppend => log.flushed_offset(),
        FlushPolicy::Interval { .. } => log.log_end_offset(),
    }
}

async fn run(
    log: SharedLog,
    clock: Clock,
    mut rx: mpsc::Receiver<Op>,
    bugs: PlantedBugs,
    stats: Arc<WriterStats>,
) -> Result<(), Arc<LogError>> {
    let policy = read_log(&log).as_ref().map(|l| l.config().flush);
    let tick = match policy {
        Some(FlushPolicy::Interval { interval_ms, .. }) if interval_ms < u64::MAX => {
            Duration::from_millis(interval_ms.max(1))
        }
        _ => Duration::from_secs(1),
    };
    let ack_before_fsync = cfg!(feature = "planted-bugs") && bugs.ack_before_fsync;
    loop {
        let first = tokio::select! {
            op = rx.recv() => match op {
                Some(op) => op,
                None => break,
            },
            _ = runtime::sleep(tick) => {
                let log = Arc::clone(&log);
                let now = clock.monotonic_ms();
                runtime::blocking(move || match write_log(&log).as_mut() {
                    Some(l) => l.maybe_flush(now).map(|_| ()),
                    None => Ok(()),
                })
                .await
                .map_err(Arc::new)?;
                continue;
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats
            .appends
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let now_ms = clock.wall_ms();
        let now_mono_ms = clock.monotonic_ms();
        let log2 = Arc::clone(&log);
        // The operations, then — unless the planted bug answers first — the group's one fsync
        // (if the policy wants it now), all before any answer.
        let work = move || {
            let mut guard = write_log(&log2);
            let Some(l) = guard.as_mut() else {
                // Deleted: the operations are dropped and their callers told the writer stopped.
                return (Vec::new(), Ok(0));
            };
            let replies: Vec<Reply> = group.into_iter().map(|op| op(l, now_ms)).collect();
            if ack_before_fsync {
                return (replies, Ok(l.log_end_offset()));
            }
            let flushed = l.maybe_flush(now_mono_ms).map(|_| ackable_end(l));
            (replies, flushed)
        };
        // Writes into the page cache take microseconds: a hop to the blocking pool for each
        // group would cost more than the write (produce throughput halved when it did). A
        // group that will fsync goes to the blocking pool; so does every group in the
        // simulator, where `blocking` stands for the disk's latency.
        let fsyncs = policy == Some(FlushPolicy::EveryAppend) || cfg!(madsim);
        let (replies, flushed) = if fsyncs {
            runtime::blocking(work).await
        } else {
            work()
        };
        let outcome = flushed.map_err(Arc::new);
        let fatal = outcome.as_ref().err().cloned();
        for reply in replies {
            reply(outcome.clone());
        }
        if ack_before_fsync {
            let log = Arc::clone(&log);
            runtime::blocking(move || match write_log(&log).as_mut() {
                Some(l) => l.maybe_flush(now_mono_ms).map(|_| ()),
                None => Ok(()),
            })
            .await
            .map_err(Arc::new)?;
        }
        if let Some(e) = fatal {
            return Err(e);
        }
    }
    let log = Arc::clone(&log);
    runtime::blocking(move || match write_log(&log).as_mut() {
        Some(l) => l.flush().map(|_| ()),
        None => Ok(()),
    })
    .await
    .map_err(Arc::new)?;
    Ok(())
}
