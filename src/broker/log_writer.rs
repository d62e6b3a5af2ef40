//! The single writer task of a partition log, and group commit.
//!
//! Appends arrive on a channel. The task takes every append waiting at that moment, writes them
//! all, and — under [`FlushPolicy::EveryAppend`] — issues one fsync for the lot before it
//! answers any of them: nothing is acknowledged before it is durable, and N concurrent producers
//! pay for one fsync, not N. Under [`FlushPolicy::Interval`] it answers after the write and
//! flushes on the policy's schedule.
//!
//! A failed fsync is fatal: after one, Linux may have dropped the dirty pages while reads still
//! see them, so carrying on would acknowledge data that is not on disk. The task answers every
//! waiter with the error and ends with it; its owner must stop the node.

use crate::log::{AppendInfo, FlushPolicy, Log, LogError};
use crate::runtime::{self, Clock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most appends one group commit takes (bounds the work done while others wait).
const MAX_GROUP: usize = 256;
/// Bound on appends queued for the writer: producers wait beyond it.
const QUEUE_DEPTH: usize = 1024;

pub type AppendResult = Result<AppendInfo, Arc<LogError>>;

struct Request {
    data: Vec<u8>,
    leader_epoch: Option<i32>,
    reply: oneshot::Sender<AppendResult>,
}

/// Deliberate bugs for the simulator to catch; compiled only with the `planted-bugs` feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedBugs {
    /// Acknowledge appends before the fsync that makes them durable.
    pub ack_before_fsync: bool,
}

/// Sends appends to the writer task.
#[derive(Clone, Debug)]
pub struct LogWriter {
    tx: mpsc::Sender<Request>,
    stats: Arc<WriterStats>,
}

/// What the writer has done, for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Groups of appends taken together (one fsync each under `EveryAppend`).
    pub groups: AtomicU64,
    pub appends: AtomicU64,
}

impl LogWriter {
    /// Starts the writer task for `log`. The returned handle ends with the fatal error, if any.
    pub fn spawn(
        log: Arc<Mutex<Log>>,
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

    /// Appends `data` (one or more record batches) with offsets assigned by the log, and waits
    /// until the flush policy allows acknowledging it.
    pub async fn append(&self, data: Vec<u8>, leader_epoch: Option<i32>) -> AppendResult {
        let (reply, rx) = oneshot::channel();
        let stopped = || {
            Arc::new(LogError::io(
                std::path::Path::new("<log writer>"),
                std::io::Error::other("log writer stopped"),
            ))
        };
        self.tx
            .send(Request {
                data,
                leader_epoch,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

fn lock(log: &Mutex<Log>) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn run(
    log: Arc<Mutex<Log>>,
    clock: Clock,
    mut rx: mpsc::Receiver<Request>,
    bugs: PlantedBugs,
    stats: Arc<WriterStats>,
) -> Result<(), Arc<LogError>> {
    let policy = lock(&log).config().flush;
    let tick = match policy {
        FlushPolicy::Interval { interval_ms, .. } if interval_ms < u64::MAX => {
            Duration::from_millis(interval_ms.max(1))
        }
        _ => Duration::from_secs(3600),
    };
    let ack_before_fsync = cfg!(feature = "planted-bugs") && bugs.ack_before_fsync;
    loop {
        let first = tokio::select! {
            req = rx.recv() => match req {
                Some(r) => r,
                None => break,
            },
            _ = runtime::sleep(tick) => {
                let log = Arc::clone(&log);
                let now = clock.monotonic_ms();
                runtime::blocking(move || lock(&log).maybe_flush(now)).await.map_err(Arc::new)?;
                continue;
            }
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats
            .appends
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        let now_ms = clock.wall_ms();
        let now_mono_ms = clock.monotonic_ms();
        let mut work: Vec<(Vec<u8>, Option<i32>)> = group
            .iter_mut()
            .map(|r| (std::mem::take(&mut r.data), r.leader_epoch))
            .collect();
        let log2 = Arc::clone(&log);
        let results: Vec<Result<AppendInfo, LogError>> = runtime::blocking(move || {
            let mut log = lock(&log2);
            work.iter_mut()
                .map(|(data, epoch)| log.append(data, *epoch, now_ms))
                .collect()
        })
        .await;
        // The group's one fsync (if the policy wants it now) comes before any answer, unless
        // the planted bug answers first.
        let mut fatal = None;
        if ack_before_fsync {
            reply_all(group, results, None);
            let log = Arc::clone(&log);
            runtime::blocking(move || lock(&log).maybe_flush(now_mono_ms))
                .await
                .map_err(Arc::new)?;
            continue;
        }
        let log2 = Arc::clone(&log);
        if let Err(e) = runtime::blocking(move || lock(&log2).maybe_flush(now_mono_ms)).await {
            fatal = Some(Arc::new(e));
        }
        reply_all(group, results, fatal.clone());
        if let Some(e) = fatal {
            return Err(e);
        }
    }
    let log = Arc::clone(&log);
    runtime::blocking(move || lock(&log).flush())
        .await
        .map_err(Arc::new)?;
    Ok(())
}

fn reply_all(
    group: Vec<Request>,
    results: Vec<Result<AppendInfo, LogError>>,
    fatal: Option<Arc<LogError>>,
) {
    for (req, result) in group.into_iter().zip(results) {
        let answer = match (&fatal, result) {
            (Some(e), _) => Err(Arc::clone(e)),
            (None, r) => r.map_err(Arc::new),
        };
        // A producer that gave up waiting is not an error.
        let _ = req.reply.send(answer);
    }
}
