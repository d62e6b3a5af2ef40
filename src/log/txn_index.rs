//! A segment's aborted-transaction index in Kafka's `.txnindex` format: 34-byte big-endian
//! entries `(version: i16 = 0, producer id: i64, first offset: i64, last offset: i64, last
//! stable offset: i64)`, one per transaction aborted by a marker in this segment, in marker
//! order. The last offset is the abort marker's; the first is the transaction's first batch,
//! which may lie in an earlier segment.
//!
//! Owns the file and its in-memory copy. The file is created only when the segment gets its
//! first entry (as Kafka's is), and entries reach it lazily, on [`TxnIndex::persist`] (a log
//! flush, roll or close): the broker rebuilds every entry at or above its producer snapshot
//! after a crash, and a snapshot is only ever taken at a flushed log end, so what is below it
//! was synced. Must not decide what an entry holds: the broker's producer state does that.

use crate::runtime::{Disk, DiskFile};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes of one entry.
pub const ENTRY_BYTES: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction: its records lie in `first_offset..last_offset` (the producer's
/// batches among them), and `last_offset` is its abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written (Kafka keeps it; no
    /// reader needs it yet).
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.first_offset.to_be_bytes());
        out.extend_from_slice(&self.last_offset.to_be_bytes());
        out.extend_from_slice(&self.last_stable_offset.to_be_bytes());
    }

    /// `None` for a version this code does not know.
    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut v = [0u8; 8];
            v.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(v)
        };
        (i16::from_be_bytes([b[0], b[1]]) == VERSION).then(|| AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    /// `None` until the file exists.
    file: Option<Arc<dyn DiskFile>>,
    entries: Vec<AbortedTxn>,
    /// How many of `entries` are in the file.
    persisted: usize,
    unsynced: bool,
}

impl TxnIndex {
    /// An index with no entries and no file yet.
    pub fn empty(path: PathBuf) -> TxnIndex {
        TxnIndex {
            path,
            file: None,
            entries: Vec::new(),
            persisted: 0,
            unsynced: false,
        }
    }

    /// Loads the index of a segment holding offsets `base_offset..end_offset`. Entries are
    /// kept up to the first that could not have been written for this segment (a torn tail, a
    /// zeroed hole, an unknown version, a marker past the segment's data, offsets out of
    /// order); the file is cut there, durably. Returns a note when it cut.
    pub fn load(
        disk: &dyn Disk,
        path: PathBuf,
        base_offset: u64,
        end_offset: u64,
    ) -> io::Result<(TxnIndex, Option<String>)> {
        if !disk.exists(&path) {
            return Ok((TxnIndex::empty(path), None));
        }
        let file = disk.open(&path)?;
        let len = file.len()?;
        let mut bytes = vec![0u8; len as usize];
        file.read_exact_at(&mut bytes, 0)?;
        let mut entries: Vec<AbortedTxn> = Vec::new();
        for chunk in bytes.chunks_exact(ENTRY_BYTES) {
            let Some(e) = AbortedTxn::decode(chunk) else {
                break;
            };
            // A transaction's first batch precedes its marker, so first < last; a zeroed hole
            // fails this too.
            let plausible = e.first_offset >= 0
                && e.first_offset < e.last_offset
                && e.last_offset >= base_offset as i64
                && e.last_offset < end_offset as i64
                && entries.last().is_none_or(|p| p.last_offset < e.last_offset);
            if !plausible {
                break;
            }
            entries.push(e);
        }
        let kept_bytes = (entries.len() * ENTRY_BYTES) as u64;
        let mut note = None;
        if kept_bytes < len {
            file.truncate(kept_bytes)?;
            file.sync()?;
            note = Some(format!(
                "{}: kept {} aborted transactions, cut {} bytes after them",
                path.display(),
                entries.len(),
                len - kept_bytes
            ));
        }
        let persisted = entries.len();
        Ok((
            TxnIndex {
                path,
                file: Some(file),
                entries,
                persisted,
                unsynced: false,
            },
            note,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed (the cleaner's swap): the open handle stays valid.
    pub fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Adds an entry; markers come in offset order.
    pub fn push(&mut self, entry: AbortedTxn) {
        assert!(
            entry.first_offset < entry.last_offset
                && self
                    .entries
                    .last()
                    .is_none_or(|p| p.last_offset < entry.last_offset),
            "aborted transaction index order: {entry:?} after {:?}",
            self.entries.last()
        );
        self.entries.push(entry);
    }

    /// The entries whose marker is at or after `from` and whose records begin before `to`.
    pub fn collect(&self, from: i64, to: i64, out: &mut Vec<AbortedTxn>) {
        let first = self.entries.partition_point(|e| e.last_offset < from);
        out.extend(
            self.entries[first..]
                .iter()
                .filter(|e| e.first_offset < to)
                .copied(),
        );
    }

    /// Drops every entry whose marker is at or after `offset`, durably: an entry left in the
    /// file would name a marker that new data then replaces.
    pub fn truncate_from(&mut self, offset: i64) -> io::Result<()> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        if self.persisted > keep {
            self.persisted = keep;
            if let Some(file) = &self.file {
                file.truncate((keep * ENTRY_BYTES) as u64)?;
                file.sync()?;
            }
        }
        Ok(())
    }

    /// Writes entries not yet in the file (creating it at the first) and, with `sync`, makes
    /// it durable. Returns whether it created the file (its directory then needs a sync).
    pub fn persist(&mut self, disk: &dyn Disk, sync: bool) -> io::Result<bool> {
        let mut created = false;
        if self.persisted < self.entries.len() {
            let file = match &self.file {
                Some(f) => Arc::clone(f),
                None => {
                    let f = disk.open_or_create(&self.path)?;
                    f.truncate(0)?;
                    created = true;
                    self.file = Some(Arc::clone(&f));
                    f
                }
            };
            let mut buf = Vec::with_capacity((self.entries.len() - self.persisted) * ENTRY_BYTES);
            for e in &self.entries[self.persisted..] {
                e.encode(&mut buf);
            }
            file.write_at(&buf, (self.persisted * ENTRY_BYTES) as u64)?;
            self.persisted = self.entries.len();
            self.unsynced = true;
        }
        if sync && self.unsynced {
            if let Some(f) = &self.file {
                f.sync()?;
            }
            self.unsynced = false;
        }
        Ok(created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{DiskFaults, SimDisk};

    fn entry(pid: i64, first: i64, last: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: last + 1,
        }
    }

    #[test]
    fn entries_round_trip_in_kafkas_layout() {
        let mut buf = Vec::new();
        entry(7, 100, 140).encode(&mut buf);
        assert_eq!(buf.len(), ENTRY_BYTES);
        assert_eq!(&buf[0..2], &[0, 0]);
        assert_eq!(&buf[2..10], &7i64.to_be_bytes());
        assert_eq!(&buf[18..26], &140i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&buf), Some(entry(7, 100, 140)));
    }

    #[test]
    fn the_file_appears_with_the_first_entry_and_a_torn_tail_is_cut() {
        let disk = SimDisk::new(1, DiskFaults::default());
        let dir = Path::new("/d");
        disk.create_dir_all(dir).unwrap();
        let path = dir.join("00000000000000000100.txnindex");
        let mut index = TxnIndex::empty(path.clone());
        assert!(!index.persist(&disk, true).unwrap());
        assert!(!disk.exists(&path));
        index.push(entry(1, 90, 120));
        index.push(entry(2, 100, 130));
        assert!(index.persist(&disk, true).unwrap());
        // Half an entry more, as a crash mid-write leaves it.
        let f = disk.open(&path).unwrap();
        f.write_at(&[0u8; 17], (2 * ENTRY_BYTES) as u64).unwrap();
        let (loaded, note) = TxnIndex::load(&disk, path.clone(), 100, 200).unwrap();
        assert_eq!(loaded.entries(), &[entry(1, 90, 120), entry(2, 100, 130)]);
        assert!(note.is_some());
        assert_eq!(f.len().unwrap(), (2 * ENTRY_BYTES) as u64);
        // An entry whose marker is past the segment's data (lost in the crash) goes too.
        let (loaded, _) = TxnIndex::load(&disk, path, 100, 125).unwrap();
        assert_eq!(loaded.entries(), &[entry(1, 90, 120)]);
    }

    #[test]
    fn collect_finds_what_overlaps_a_read_and_truncation_is_durable() {
        let disk = SimDisk::new(2, DiskFaults::default());
        let dir = Path::new("/d");
        disk.create_dir_all(dir).unwrap();
        let path = dir.join("00000000000000000000.txnindex");
        let mut index = TxnIndex::empty(path.clone());
        index.push(entry(1, 0, 10));
        index.push(entry(2, 5, 20));
        index.push(entry(1, 30, 40));
        index.persist(&disk, true).unwrap();
        let mut out = Vec::new();
        index.collect(11, 31, &mut out);
        assert_eq!(out, vec![entry(2, 5, 20), entry(1, 30, 40)]);
        out.clear();
        index.collect(21, 30, &mut out);
        assert!(out.is_empty());
        index.truncate_from(20).unwrap();
        assert_eq!(index.entries(), &[entry(1, 0, 10)]);
        let (loaded, _) = TxnIndex::load(&disk, path, 0, 100).unwrap();
        assert_eq!(loaded.entries(), &[entry(1, 0, 10)]);
    }
}
