//! The runtime seam: the only module that opens sockets and files, reads clocks, spawns tasks or
//! threads, or draws entropy.
//!
//! Everything else reaches the outside world through what is exported here, so that the same code
//! runs on real tokio and, under `RUSTFLAGS="--cfg madsim"`, inside madsim's deterministic world:
//! - [`Clock`]: wall and monotonic time, with per-node offset, drift and jumps in the simulator
//!   (madsim has one global clock, so skew has to live here);
//! - [`spawn`], [`sleep`], [`blocking`]: tasks and time, tokio or madsim under the same name;
//! - [`net`]: TCP listen/connect (madsim simulates them) and length-prefixed frames on a stream;
//! - [`tls`]: TLS on those connections (rustls), from PEM files it re-reads when they change;
//! - [`Disk`] / [`DiskFile`]: file operations, with [`RealDisk`] over `std::fs` and [`SimDisk`],
//!   an in-memory disk that loses, tears or keeps unsynced writes on a simulated crash (madsim's own
//!   file system keeps unsynced data across a kill, so it cannot test durability).
//!
//! This module must not know about Kafka, logs or Raft.

#[cfg(not(madsim))]
mod alloc;
mod clock;
mod disk;
mod real_disk;
mod sim_disk;

#[cfg(not(madsim))]
pub use alloc::GuardedAlloc;
pub use clock::Clock;
pub use disk::{Disk, DiskFile};
pub use real_disk::RealDisk;
pub use sim_disk::{DiskFaults, SimDisk, SimDiskStats};

use std::future::Future;
use std::time::Duration;

pub mod net;
pub mod tls;

/// Spawns a task on the current runtime (a madsim node's runtime in the simulator).
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(future)
}

/// Runs `future` to completion on a new multi-threaded runtime: the entry point of the real
/// binary. (The simulator builds its own madsim runtime instead.)
#[cfg(not(madsim))]
pub fn block_on<F: Future>(future: F) -> std::io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(rt.block_on(future))
}

/// Completes on SIGINT or SIGTERM: the signal to stop gracefully.
pub async fn shutdown_signal() {
    #[cfg(not(madsim))]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(madsim)]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Sleeps for `duration` of (possibly simulated) time.
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

/// A ticker firing every `period` of (possibly simulated) time; a missed tick is delayed, not
/// bunched up.
pub fn interval(period: Duration) -> tokio::time::Interval {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticker
}

/// Runs blocking work (file IO, fsync) off the async workers. In the simulator madsim refuses OS
/// threads, so the closure runs in place after a seeded delay of up to 2 ms standing for the
/// disk's latency: without it a write and its fsync would happen at the same virtual instant and
/// no crash could ever fall between them.
pub async fn blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    #[cfg(not(madsim))]
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    #[cfg(madsim)]
    {
        use madsim::rand::Rng;
        let latency_us = madsim::rand::thread_rng().gen_range(20..2_000);
        madsim::time::sleep(Duration::from_micros(latency_us)).await;
        f()
    }
}

/// Whether [`buggify_delay`] fires: set by the simulator for each run (see [`set_buggify`]).
#[cfg(madsim)]
static BUGGIFY: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns [`buggify_delay`] on or off for the simulated run about to start. (madsim's own
/// `buggify::enable` is not used: it also delays one in ten of every network send and accept by
/// 1 to 5 s, which starves every session and lease of a whole cluster rather than reordering a
/// chosen point.)
#[cfg(madsim)]
pub fn set_buggify(on: bool) {
    BUGGIFY.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// BUGGIFY (FoundationDB's name for it): under the simulator, when the run has turned it on
/// ([`set_buggify`]), a seeded pause of 1 to 200 ms at a point in the node where the order of
/// events matters, one time in twenty; so that a seed explores interleavings a fast simulated
/// network and disk would not show (a fetch answer applied after its leader lost office, an
/// answer sent long after its record was appended). Outside the simulator it is nothing.
/// `site` names the point in the node's debug log.
#[inline]
pub async fn buggify_delay(site: &'static str) {
    #[cfg(madsim)]
    {
        use madsim::rand::Rng;
        if BUGGIFY.load(std::sync::atomic::Ordering::Relaxed) {
            let mut rng = madsim::rand::thread_rng();
            if rng.gen_bool(0.05) {
                let delay_ms = rng.gen_range(1..=200);
                tracing::debug!(site, delay_ms, "buggify: delayed");
                madsim::time::sleep(Duration::from_millis(delay_ms)).await;
            }
        }
    }
    #[cfg(not(madsim))]
    {
        let _ = site;
    }
}

/// 16 bytes of operating-system entropy, for identifiers such as a cluster id or directory id.
/// Never used by the cores: the simulator derives its ids from the run's seed instead.
/// Now, on the runtime's monotonic clock (madsim's in the simulator): for deadlines that
/// need no per-node skew (a SASL session's end).
pub fn monotonic_now() -> tokio::time::Instant {
    #[allow(clippy::disallowed_methods)] // the seam is where clocks are read
    tokio::time::Instant::now()
}

pub fn random_bytes_16() -> std::io::Result<[u8; 16]> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A budget for log lines of one kind that an outsider can cause at will (failed TLS
/// handshakes, failed authentications): at most `per_window` lines in each window, and the
/// count of the ones held back when the next window opens.
pub struct LogBudget {
    per_window: u32,
    window: Duration,
    state: std::sync::Mutex<(Option<std::time::Instant>, u32, u64)>,
}

impl LogBudget {
    pub const fn new(per_window: u32, window: Duration) -> LogBudget {
        LogBudget {
            per_window,
            window,
            state: std::sync::Mutex::new((None, 0, 0)),
        }
    }

    /// `Some(n)`: log this one, after saying that `n` were held back since the last window;
    /// `None`: hold it back.
    pub fn take(&self) -> Option<u64> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        #[allow(clippy::disallowed_methods)] // the seam is where clocks are read
        let now = std::time::Instant::now();
        if s.0
            .is_none_or(|start| now.duration_since(start) >= self.window)
        {
            let held = s.2;
            *s = (Some(now), 1, 0);
            return Some(held);
        }
        if s.1 < self.per_window {
            s.1 += 1;
            Some(0)
        } else {
            s.2 += 1;
            None
        }
    }
}
