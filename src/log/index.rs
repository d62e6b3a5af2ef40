//! Sparse per-segment indexes in Kafka's file formats:
//! - `.index`: 8-byte entries `(relative offset: u32, position: u32)`, big-endian, where the
//!   offset is the *last* offset of the batch starting at `position` (as Kafka writes them);
//! - `.timeindex`: 12-byte entries `(timestamp: i64, relative offset: u32)`, the largest
//!   timestamp seen so far and the last offset of the batch that carried it.
//!
//! Entries live in memory and reach the file lazily, on [`SparseIndex::persist`] (called by a log
//! flush, a roll and a close): recovery rebuilds every entry above the recovery point anyway, so
//! writing them on each append would only cost a system call per batch.

use crate::runtime::DiskFile;
use std::io;
use std::sync::Arc;

/// One index entry type: how it is encoded and what orders it.
pub(crate) trait Entry: Copy + std::fmt::Debug {
    const SIZE: usize;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(bytes: &[u8]) -> Self;
    /// The relative offset this entry points at.
    fn relative_offset(&self) -> u32;
    /// Whether `next` may follow `self` in a well-formed index.
    fn may_precede(&self, next: &Self) -> bool;
    /// Whether this entry could have been written at all (rules out zero-filled holes).
    fn plausible(&self) -> bool {
        true
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
    fn may_precede(&self, next: &Self) -> bool {
        next.relative_offset > self.relative_offset && next.position > self.position
    }
    fn plausible(&self) -> bool {
        // The first batch of a segment never gets an entry, so position 0 is a zeroed hole.
        self.position > 0
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp_ms: i64,
    pub relative_offset: u32,
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp_ms.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        TimeEntry {
            timestamp_ms: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn relative_offset(&self) -> u32 {
        self.relative_offset
    }
    fn may_precede(&self, next: &Self) -> bool {
        next.timestamp_ms > self.timestamp_ms && next.relative_offset > self.relative_offset
    }
}

/// An index file and its entries.
#[derive(Debug)]
pub(crate) struct SparseIndex<E: Entry> {
    file: Arc<dyn DiskFile>,
    entries: Vec<E>,
    /// How many of `entries` the file holds (a prefix).
    persisted: usize,
    /// Whether the file has writes not yet synced.
    unsynced: bool,
}

impl<E: Entry> SparseIndex<E> {
    /// An index with no entries over `file`, whose old contents are dropped.
    pub fn empty(file: Arc<dyn DiskFile>) -> io::Result<Self> {
        file.truncate(0)?;
        Ok(SparseIndex {
            file,
            entries: Vec::new(),
            persisted: 0,
            unsynced: true,
        })
    }

    /// Loads the well-formed prefix of an index file: entries in strictly increasing order that
    /// `accept` allows. Returns the index and whether anything past that prefix was dropped.
    pub fn load(file: Arc<dyn DiskFile>, accept: impl Fn(&E) -> bool) -> io::Result<(Self, bool)> {
        let len = file.len()?;
        let whole = usize::try_from(len / E::SIZE as u64).unwrap_or(usize::MAX);
        let mut bytes = vec![0u8; whole.saturating_mul(E::SIZE)];
        file.read_exact_at(&mut bytes, 0)?;
        let mut entries: Vec<E> = Vec::with_capacity(whole);
        for chunk in bytes.chunks_exact(E::SIZE) {
            let e = E::decode(chunk);
            let ordered = entries.last().is_none_or(|last| last.may_precede(&e));
            if !ordered || !e.plausible() || !accept(&e) {
                break;
            }
            entries.push(e);
        }
        let dropped = entries.len() != whole || len % E::SIZE as u64 != 0;
        let mut index = SparseIndex {
            persisted: entries.len(),
            entries,
            file,
            unsynced: false,
        };
        if dropped {
            index
                .file
                .truncate((index.entries.len() * E::SIZE) as u64)?;
            index.unsynced = true;
        }
        Ok((index, dropped))
    }

    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    pub fn push(&mut self, entry: E) {
        if let Some(last) = self.entries.last() {
            assert!(
                last.may_precede(&entry),
                "index order: {last:?} then {entry:?}"
            );
        }
        self.entries.push(entry);
    }

    /// The last entry whose key is at most `key`, by `key_of`.
    pub fn floor_by<K: Ord>(&self, key: K, key_of: impl Fn(&E) -> K) -> Option<E> {
        let n = self.entries.partition_point(|e| key_of(e) <= key);
        n.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops every entry whose relative offset is at least `relative_offset`.
    pub fn truncate_from(&mut self, relative_offset: u32) -> io::Result<()> {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset() < relative_offset);
        self.entries.truncate(keep);
        if self.persisted > keep {
            self.persisted = keep;
            self.file.truncate((keep * E::SIZE) as u64)?;
            self.unsynced = true;
        }
        Ok(())
    }

    /// Writes entries not yet in the file; with `sync`, also makes the file durable.
    pub fn persist(&mut self, sync: bool) -> io::Result<()> {
        if self.persisted < self.entries.len() {
            let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * E::SIZE);
            for e in &self.entries[self.persisted..] {
                e.encode(&mut buf);
            }
            self.file
                .write_at(&buf, (self.persisted * E::SIZE) as u64)?;
            self.persisted = self.entries.len();
            self.unsynced = true;
        }
        if sync && self.unsynced {
            self.file.sync()?;
            self.unsynced = false;
        }
        Ok(())
    }
}
