//! An in-memory [`RaftLog`] for tests and the simulation: entries in a `Vec`, plus how many of
//! them are durable, so a simulated crash can drop (some of) the rest.

use super::{Entry, Epoch, LogFailure, RaftLog};

#[derive(Clone, Debug, Default)]
pub struct MemLog {
    start_offset: u64,
    entries: Vec<Entry>,
    /// Entries below this offset survive a crash.
    durable_end: u64,
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
}

impl RaftLog for MemLog {
    fn start_offset(&self) -> u64 {
        self.start_offset
    }

    fn end_offset(&self) -> u64 {
        self.start_offset + self.entries.len() as u64
    }

    fn last_epoch(&self) -> Epoch {
        self.entries.last().map_or(0, |e| e.epoch)
    }

    fn end_offset_for_epoch(&self, epoch: Epoch) -> (Epoch, u64) {
        // The last entry whose epoch is at most `epoch`: its epoch, and one past it.
        match self.entries.iter().rposition(|e| e.epoch <= epoch) {
            Some(i) => (self.entries[i].epoch, self.entries[i].offset + 1),
            None => (0, self.start_offset),
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
                return Err(LogFailure(format!(
                    "append at offset {} does not continue the log end {}",
                    e.offset,
                    self.end_offset()
                )));
            }
            if e.epoch < self.last_epoch() {
                return Err(LogFailure(format!(
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
}
