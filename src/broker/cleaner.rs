//! The log cleaner's threads (`log.cleaner.threads` tasks): each picks the dirtiest compacted
//! log no other thread is cleaning, snapshots it, steps the clean on a blocking thread a
//! bounded amount at a time (the IO throttle, `log.cleaner.io.max.bytes.per.second` shared by
//! all threads, sleeps between steps) and swaps each finished group in under the log's lock.
//! Produce and fetch wait only for the swap.
//!
//! Owns: the choice of log, the throttle, the cleaner's metrics. Must not touch: what is
//! cleaned or how (that is `log::cleaner`).

use super::context::Broker;
use super::partitions::Partition;
use crate::log::{Cleaning, Step};
use crate::model::TopicPartition;
use crate::runtime;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Bytes a step reads at most, so a throttled cleaner sleeps often and a swap is never far.
const STEP_BYTES_MAX: u64 = 1 << 20;

/// Kafka's `Throttler`: all cleaner threads together do at most `rate` bytes a second, measured
/// over windows of about a second.
#[derive(Debug)]
pub struct Throttle {
    bytes_per_second: Option<u64>,
    /// (window start, monotonic ms; bytes in the window).
    window: Mutex<(u64, u64)>,
}

impl Throttle {
    pub fn new(bytes_per_second: Option<u64>) -> Throttle {
        Throttle {
            bytes_per_second,
            window: Mutex::new((0, 0)),
        }
    }

    /// How long to wait after `bytes` more at `now_mono_ms` to keep to the rate.
    pub fn delay_after(&self, bytes: u64, now_mono_ms: u64) -> Duration {
        let Some(rate) = self.bytes_per_second.filter(|r| *r > 0) else {
            return Duration::ZERO;
        };
        let mut w = self.window.lock().unwrap_or_else(|p| p.into_inner());
        if w.0 == 0 || now_mono_ms.saturating_sub(w.0) > 1_000 {
            *w = (now_mono_ms, 0);
        }
        w.1 += bytes;
        let due_ms = w.1.saturating_mul(1000) / rate;
        let elapsed_ms = now_mono_ms.saturating_sub(w.0);
        Duration::from_millis(due_ms.saturating_sub(elapsed_ms))
    }

    /// The step size that keeps sleeps short under the rate.
    pub fn step_bytes(&self) -> u64 {
        self.bytes_per_second
            .map_or(STEP_BYTES_MAX, |r| (r / 10).clamp(4096, STEP_BYTES_MAX))
    }
}

/// What the cleaner threads share: the logs being cleaned and the throttle.
pub struct CleanerShared {
    busy: Mutex<BTreeSet<TopicPartition>>,
    /// Logs whose clean failed, and the wall time before which they are not tried again.
    failed_until_ms: Mutex<BTreeMap<TopicPartition, i64>>,
    pub throttle: Throttle,
}

impl CleanerShared {
    pub fn new(bytes_per_second: Option<u64>) -> Arc<CleanerShared> {
        Arc::new(CleanerShared {
            busy: Mutex::new(BTreeSet::new()),
            failed_until_ms: Mutex::new(BTreeMap::new()),
            throttle: Throttle::new(bytes_per_second),
        })
    }
}

/// The dirtiest compacted log that is due and not taken, marked taken.
fn pick(broker: &Broker, shared: &CleanerShared, now_ms: i64) -> Option<Arc<Partition>> {
    let mut busy = shared.busy.lock().unwrap_or_else(|p| p.into_inner());
    let mut failed = shared
        .failed_until_ms
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    failed.retain(|_, until| *until > now_ms);
    let best = broker
        .partitions
        .all()
        .into_iter()
        .filter(|p| !busy.contains(&p.tp) && !failed.contains_key(&p.tp))
        .filter_map(|p| {
            let d = p.dirtiness(now_ms)?;
            d.due.then_some((d.ratio(), p))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, p)| p)?;
    busy.insert(best.tp.clone());
    Some(best)
}

/// One cleaner thread, forever.
pub async fn run(broker: Arc<Broker>, shared: Arc<CleanerShared>) {
    let backoff = Duration::from_millis(broker.config.cleaner.backoff_ms);
    loop {
        let now_ms = broker.clock.wall_ms();
        let Some(partition) = pick(&broker, &shared, now_ms) else {
            runtime::sleep(backoff).await;
            continue;
        };
        let cleaning = partition.start_cleaning(now_ms);
        if let Some(cleaning) = cleaning {
            if !clean(&broker, &shared, &partition, cleaning).await {
                // Not again for a while: a log that cannot be cleaned would otherwise be
                // picked again at once, forever.
                let retry_ms = (10 * broker.config.cleaner.backoff_ms).min(i64::MAX as u64) as i64;
                shared
                    .failed_until_ms
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(partition.tp.clone(), now_ms.saturating_add(retry_ms));
            }
        }
        shared
            .busy
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&partition.tp);
        // Give the other tasks a turn between logs.
        runtime::sleep(Duration::from_millis(1)).await;
    }
}

/// Cleans one log to the end; false if it failed.
async fn clean(
    broker: &Broker,
    shared: &CleanerShared,
    partition: &Arc<Partition>,
    cleaning: Cleaning,
) -> bool {
    let started_ms = broker.clock.monotonic_ms();
    let mut cleaning = Some(cleaning);
    loop {
        let Some(mut c) = cleaning.take() else {
            return false;
        };
        let budget = shared.throttle.step_bytes();
        let (c, step) = runtime::blocking(move || {
            let step = c.step(budget);
            (c, step)
        })
        .await;
        match step {
            Ok(Step::Progress(bytes)) => {
                let delay = shared
                    .throttle
                    .delay_after(bytes, broker.clock.monotonic_ms());
                if !delay.is_zero() {
                    runtime::sleep(delay).await;
                }
                cleaning = Some(c);
            }
            Ok(Step::Group(group)) => {
                let p = Arc::clone(partition);
                let installed = runtime::blocking(move || p.install_cleaned(group)).await;
                match installed {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::info!(partition = %partition.tp, "log changed while it was cleaned; the cleaned copy is dropped")
                    }
                    Err(e) => {
                        tracing::error!(partition = %partition.tp, "installing cleaned segments failed: {e}");
                        c.abandon();
                        return false;
                    }
                }
                cleaning = Some(c);
            }
            Ok(Step::Done) => {
                let r = c.report;
                let elapsed_ms = broker.clock.monotonic_ms().saturating_sub(started_ms);
                tracing::info!(
                    partition = %partition.tp,
                    segments = r.segments_cleaned,
                    bytes_read = r.bytes_read,
                    bytes_before = r.bytes_before,
                    bytes_after = r.bytes_after,
                    records_removed = r.records_removed,
                    tombstones_removed = r.tombstones_removed,
                    elapsed_ms,
                    "log cleaned"
                );
                if let Some(m) = &broker.metrics {
                    m.log_cleaned(r.bytes_read, r.bytes_after, r.records_removed, elapsed_ms);
                }
                return true;
            }
            Err(e) => {
                // Kafka marks such a log uncleanable; here the next pass tries it again after
                // the backoff, and the error is logged each time.
                tracing::error!(partition = %partition.tp, "cleaning failed: {e}");
                c.abandon();
                return false;
            }
        }
    }
}
