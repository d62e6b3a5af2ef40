//! Per-node time. Real mode reads the system clocks; in the simulator the same calls read madsim's
//! global virtual clock, and this type adds the node's own offset, drift and jumps on top.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A node's view of time: monotonic (never goes back) and wall (can be skewed and can jump).
#[derive(Clone, Debug)]
pub struct Clock {
    inner: Arc<Mutex<Skew>>,
}

#[derive(Debug)]
struct Skew {
    /// The instant this clock was made; monotonic time is measured from it.
    origin: Instant,
    /// Added to the wall clock (ms). Changed by [`Clock::jump_wall_ms`].
    wall_offset_ms: i64,
    /// Rate error in parts per million: +100 means this node's clocks run 0.01% fast.
    drift_ppm: i64,
}

impl Clock {
    /// The machine's own clocks, with no skew.
    pub fn system() -> Clock {
        Clock::skewed(0, 0)
    }

    /// A clock whose wall time is off by `wall_offset_ms` and whose rate is off by `drift_ppm`.
    /// Used by the simulator to give every node its own idea of time.
    pub fn skewed(wall_offset_ms: i64, drift_ppm: i64) -> Clock {
        #[allow(clippy::disallowed_methods)] // the seam is where clocks are read
        let origin = Instant::now();
        Clock {
            inner: Arc::new(Mutex::new(Skew {
                origin,
                wall_offset_ms,
                drift_ppm,
            })),
        }
    }

    fn skew<R>(&self, f: impl FnOnce(&mut Skew) -> R) -> R {
        f(&mut self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Time since this clock was made, never decreasing. Drift applies; jumps do not.
    pub fn monotonic(&self) -> Duration {
        self.skew(|s| {
            #[allow(clippy::disallowed_methods)]
            let real = s.origin.elapsed();
            apply_drift(real, s.drift_ppm)
        })
    }

    /// Monotonic time in whole milliseconds.
    pub fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.monotonic().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wall-clock time in milliseconds since the Unix epoch, as Kafka timestamps are.
    pub fn wall_ms(&self) -> i64 {
        self.skew(|s| {
            #[allow(clippy::disallowed_methods)]
            let now = SystemTime::now();
            let real_ms = match now.duration_since(UNIX_EPOCH) {
                Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
                Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
            };
            #[allow(clippy::disallowed_methods)]
            let since_origin = s.origin.elapsed();
            let drift_ms = i64::try_from(apply_drift(since_origin, s.drift_ppm).as_millis())
                .unwrap_or(i64::MAX)
                - i64::try_from(since_origin.as_millis()).unwrap_or(i64::MAX);
            real_ms
                .saturating_add(s.wall_offset_ms)
                .saturating_add(drift_ms)
        })
    }

    /// Moves the wall clock by `delta_ms` (forward or back), as NTP stepping a clock does.
    pub fn jump_wall_ms(&self, delta_ms: i64) {
        self.skew(|s| s.wall_offset_ms = s.wall_offset_ms.saturating_add(delta_ms));
    }
}

fn apply_drift(real: Duration, drift_ppm: i64) -> Duration {
    let nanos = real.as_nanos() as i128;
    let skewed = nanos + nanos * i128::from(drift_ppm) / 1_000_000;
    Duration::from_nanos(u64::try_from(skewed.max(0)).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_scales_elapsed_time() {
        assert_eq!(
            apply_drift(Duration::from_secs(1), 1000),
            Duration::from_millis(1001)
        );
        assert_eq!(
            apply_drift(Duration::from_secs(1), -1000),
            Duration::from_millis(999)
        );
    }

    #[test]
    fn wall_jumps_move_wall_time_but_not_monotonic_time() {
        let clock = Clock::skewed(0, 0);
        let before = clock.wall_ms();
        let mono_before = clock.monotonic();
        clock.jump_wall_ms(-60_000);
        assert!(clock.wall_ms() <= before - 59_000);
        assert!(clock.monotonic() >= mono_before);
    }
}
