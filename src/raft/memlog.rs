//! An in-memory [`RaftLog`] for tests and the simulation: entries in a `Vec`, plus how many of
//! them are durable, so a simulated crash can drop (some of) the rest. A stored snapshot drops
//! every entry below it at once, the most a log may drop, so fetchers fall behind it often.

use super::{Entry, Epoch, LogFailure, RaftLog, SnapshotId};

#[derive(Clone, Debug, Default)]
pub struct MemLog {
    start_offset: u64,
    entries: Vec<Entry>,
    /// Entries below this offset survive a crash.
    durable_end: u64,
    /// The latest snapshot and its bytes (durable as soon as stored).
    snapshot: Option<(SnapshotId, Vec<u8>)>,
}

impl MemLog {
    pub fn new() -> MemLog {
        MemLog::default()
    }

    /// Marks everything durable (what the shell's flush does).
    pub fn flush(&mut self) -> u64 {
        self.durable_end = self.end_offset();
        self.durable_end
    }

    /// A crash: entries past the durable end are lost, except a prefix of `keep` of them (a
    /// write the disk had finished without being asked to).
    pub fn crash(&mut self, keep: usize) {
        let durable = (self.durable_end - self.start_offset) as usize;
        let kept = (durable + keep).min(self.entries.len());
        self.entries.truncate(kept);
        self.durable_end = self.end_offset();
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn durable_end(&self) -> u64 {
        self.durable_end
    }

    pub fn snapshot(&self) -> Option<&(SnapshotId, Vec<u8>)> {
        self.snapshot.as_ref()
    }
}

impl RaftLog for MemLog {
    fn start_offset(&self) -> u64 {
        self.start_offset
    }

    fn end_offset(&self) -> u64 {
        self.start_offset + self.entries.len() as u64
    }

    fn last_epoch(&self) -> Epoch {
        match (self.entries.last(), &self.snapshot) {
            (Some(e), _) => e.epoch,
            (None, Some((id, _))) if id.end_offset == self.start_offset => id.epoch,
            _ => 0,
        }
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, u64) {
        // The last entry whose epoch is at most `epoch`: its epoch, and one past it.
        match self.entries.iter().rposition(|e| e.epoch <= epoch) {
            Some(i) => (self.entries[i].epoch, self.entries[i].offset + 1),
            None => match &self.snapshot {
                Some((id, _)) if id.epoch <= epoch && id.end_offset == self.start_offset => {
                    (id.epoch, id.end_offset)
                }
                _ => (0, self.start_offset),
            },
        }
    }

    fn read(&self, from: u64, max_entries: usize) -> Vec<Entry> {
        let start = from.saturating_sub(self.start_offset) as usize;
        self.entries
            .iter()
            .skip(start)
            .take(max_entries)
            .cloned()
            .collect()
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), LogFailure> {
        for e in entries {
            if e.offset != self.end_offset() {
                return Err(LogFailure::new(format!(
                    "append at offset {} does not continue the log end {}",
                    e.offset,
                    self.end_offset()
                )));
            }
            if e.epoch < self.last_epoch() {
                return Err(LogFailure::new(format!(
                    "append of epoch {} after epoch {}",
                    e.epoch,
                    self.last_epoch()
                )));
            }
            self.entries.push(e.clone());
        }
        Ok(())
    }

    fn truncate_to(&mut self, offset: u64) -> Result<(), LogFailure> {
        let keep = offset.saturating_sub(self.start_offset) as usize;
        self.entries.truncate(keep);
        self.durable_end = self.durable_end.min(self.end_offset());
        Ok(())
    }

    fn latest_snapshot(&self) -> Option<SnapshotId> {
        self.snapshot.as_ref().map(|(id, _)| *id)
    }

    fn read_snapshot(
        &self,
        id: SnapshotId,
        position: u64,
        max_bytes: usize,
    ) -> Option<(Vec<u8>, u64)> {
        let (held, bytes) = self.snapshot.as_ref()?;
        if *held != id {
            return None;
        }
        let from = (position as usize).min(bytes.len());
        let to = from.saturating_add(max_bytes).min(bytes.len());
        Some((bytes[from..to].to_vec(), bytes.len() as u64))
    }

    fn store_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure> {
        if id.end_offset < self.start_offset || id.end_offset > self.durable_end {
            return Err(LogFailure::new(format!(
                "snapshot at {} outside the durable log [{}, {})",
                id.end_offset, self.start_offset, self.durable_end
            )));
        }
        let drop = (id.end_offset - self.start_offset) as usize;
        self.entries.drain(..drop);
        self.start_offset = id.end_offset;
        self.snapshot = Some((id, bytes.to_vec()));
        Ok(())
    }

    fn install_snapshot(&mut self, id: SnapshotId, bytes: &[u8]) -> Result<(), LogFailure> {
        self.entries.clear();
        self.start_offset = id.end_offset;
        self.durable_end = id.end_offset;
        self.snapshot = Some((id, bytes.to_vec()));
        Ok(())
    }
}
