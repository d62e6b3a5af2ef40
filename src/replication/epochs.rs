//! The leader epoch cache of one partition replica (Kafka's `LeaderEpochFileCache`, KIP-101):
//! for each leader epoch that wrote to the log, the first offset it wrote. It answers "where
//! does epoch E end in this log?" — OffsetForLeaderEpoch, and the check a leader makes of a
//! follower's fetch (`last_fetched_epoch`) to tell it where their logs diverge (KIP-320,
//! Fetch's DivergingEpoch). Sans-IO: the shell keeps it in the `leader-epoch-checkpoint` file,
//! whose text [`EpochCache::to_checkpoint`] and [`EpochCache::from_checkpoint`] read and write.

/// (epoch, start offset), epochs and offsets strictly ascending.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(i32, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EpochCheckpointError {
    #[error("leader-epoch-checkpoint: {0}")]
    Malformed(String),
}

impl EpochCache {
    pub fn new() -> EpochCache {
        EpochCache::default()
    }

    pub fn entries(&self) -> &[(i32, u64)] {
        &self.entries
    }

    /// The latest epoch that wrote (or was assigned), if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Records that `epoch` starts at `start_offset` (a leader taking over at its log end, or
    /// a batch of a newer epoch appended). An epoch at or below the latest is ignored, as is a
    /// start offset below the latest's (which only a stale caller would give). Returns whether
    /// the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: u64) -> bool {
        if epoch < 0 {
            return false;
        }
        match self.entries.last() {
            Some((e, _)) if *e >= epoch => false,
            Some((_, s)) if *s > start_offset => false,
            Some((_, s)) if *s == start_offset => {
                // The previous epoch wrote nothing: the newer one takes its place.
                self.entries.pop();
                self.entries.push((epoch, start_offset));
                true
            }
            _ => {
                self.entries.push((epoch, start_offset));
                true
            }
        }
    }

    /// Where `epoch` ends in a log ending at `log_end`, as Kafka's `LeaderEpochFileCache`
    /// answers it: for the latest epoch, the log end; for an older one, the largest epoch at
    /// most it and the start of the epoch after that; for an epoch older than every epoch the
    /// cache still holds (retention removed them), that epoch itself and the start of the
    /// earliest one, so a follower that had it truncates there and replicates from the
    /// leader's start. `(-1, -1)` (Kafka's UNDEFINED_EPOCH / UNDEFINED_EPOCH_OFFSET) for a
    /// negative epoch, an empty cache, or an epoch newer than the latest.
    pub fn end_offset_for(&self, epoch: i32, log_end: u64) -> (i32, i64) {
        let Some(&(latest, _)) = self.entries.last() else {
            return (-1, -1);
        };
        if epoch < 0 || epoch > latest {
            return (-1, -1);
        }
        if epoch == latest {
            return (latest, log_end as i64);
        }
        // There is an epoch after `epoch` (it is below the latest).
        let next = self.entries.partition_point(|(e, _)| *e <= epoch);
        let end = self.entries[next].1.min(log_end) as i64;
        match next.checked_sub(1) {
            Some(floor) => (self.entries[floor].0, end),
            None => (epoch, end),
        }
    }

    /// Forgets every epoch that starts at or after `offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, offset: u64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(_, start)| *start < offset);
        before != self.entries.len()
    }

    /// The log now starts at `offset`: the epoch holding it starts there, earlier ones go.
    pub fn truncate_from_start(&mut self, offset: u64) -> bool {
        let Some(i) = self.entries.iter().rposition(|(_, start)| *start <= offset) else {
            return false;
        };
        let changed = i > 0 || self.entries[i].1 != offset;
        self.entries.drain(..i);
        if let Some(first) = self.entries.first_mut() {
            first.1 = offset;
        }
        changed
    }

    /// Empties the cache (the log was reset).
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Kafka's checkpoint text: version `0`, the entry count, then `epoch start` per line.
    pub fn to_checkpoint(&self) -> String {
        let mut out = format!("0\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            out.push_str(&format!("{epoch} {start}\n"));
        }
        out
    }

    pub fn from_checkpoint(text: &str) -> Result<EpochCache, EpochCheckpointError> {
        let bad = |what: &str| EpochCheckpointError::Malformed(what.to_string());
        let mut lines = text.lines();
        if lines.next().map(str::trim) != Some("0") {
            return Err(bad("not version 0"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| bad("no entry count"))?;
        let mut cache = EpochCache::new();
        for _ in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| bad("fewer entries than counted"))?;
            let mut parts = line.split_whitespace();
            let epoch: i32 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("an epoch is not a number"))?;
            let start: u64 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("a start offset is not a number"))?;
            if !cache.assign(epoch, start) {
                return Err(bad("entries are not ascending"));
            }
        }
        Ok(cache)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kip_101() {
        let mut c = EpochCache::new();
        assert_eq!(c.end_offset_for(3, 10), (-1, -1));
        c.assign(1, 0);
        c.assign(3, 5);
        c.assign(6, 9);
        // The end of an epoch is the start of the next one; the latest ends at the log end.
        assert_eq!(c.end_offset_for(1, 12), (1, 5));
        assert_eq!(c.end_offset_for(2, 12), (1, 5));
        assert_eq!(c.end_offset_for(3, 12), (3, 9));
        assert_eq!(c.end_offset_for(6, 12), (6, 12));
        // Newer than the latest: undefined; older than the earliest: the earliest's start.
        assert_eq!(c.end_offset_for(7, 12), (-1, -1));
        assert_eq!(c.end_offset_for(0, 12), (0, 0));
        assert_eq!(c.end_offset_for(-1, 12), (-1, -1));
        // Stale or lower epochs are ignored.
        assert!(!c.assign(5, 10));
        assert!(!c.assign(8, 3));
        c.truncate_from_end(9);
        assert_eq!(c.entries(), &[(1, 0), (3, 5)]);
        c.truncate_from_start(6);
        assert_eq!(c.entries(), &[(3, 6)]);
        let text = c.to_checkpoint();
        assert_eq!(EpochCache::from_checkpoint(&text).unwrap(), c);
        assert!(EpochCache::from_checkpoint("0\n2\n1 5\n").is_err());
        assert!(EpochCache::from_checkpoint("0\n2\n4 5\n3 7\n").is_err());
    }

    #[test]
    fn an_epoch_that_wrote_nothing_is_replaced() {
        let mut c = EpochCache::new();
        c.assign(1, 0);
        c.assign(2, 4);
        c.assign(3, 4);
        assert_eq!(c.entries(), &[(1, 0), (3, 4)]);
        assert_eq!(c.end_offset_for(2, 9), (1, 4));
    }

    #[test]
    fn an_epoch_before_the_leaders_first_is_not_a_divergence_of_an_empty_log() {
        // A leader elected at epoch 4 over an empty log; a follower that was leader of the
        // empty log at epoch 0 fetches at offset 0 with last fetched epoch 0. Epoch 0 ends at
        // 0 here, so the follower is caught up (chaos seed 1 once left it outside the ISR
        // forever, answered "diverging at (-1, -1)", which reads as no answer at all).
        let mut leader = EpochCache::new();
        leader.assign(4, 0);
        assert_eq!(leader.end_offset_for(0, 0), (0, 0));
        assert_eq!(leader.end_offset_for(4, 0), (4, 0));
    }
}
