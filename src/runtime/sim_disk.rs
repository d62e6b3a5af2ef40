//! An in-memory [`Disk`] that models what a power loss does to a real one.
//!
//! Every write is visible to reads at once (the page cache) but only [`DiskFile::sync`] makes it
//! durable. On [`SimDisk::crash`] each write made since the file's last sync is, by the disk's
//! seeded RNG, kept, torn (a prefix of it lands) or lost, independently, in order; a lost write
//! followed by a kept one leaves a hole of zeros, as a real disk can. Names (create, rename,
//! remove) are journalled: on a crash a random prefix of those not yet made durable by
//! [`Disk::sync_dir`] survives. A file whose name did not survive is gone with its data, synced
//! or not (the classic "fsync the file but not the directory" loss).
//!
//! Fault knobs ([`DiskFaults`]): fsync fails (EIO; as on Linux the unsynced writes are then
//! dropped from the durable future while reads still see them, so a node that goes on after a
//! failed fsync loses data — it must stop), a write fails with ENOSPC, a read returns one bit
//! flipped.
//!
//! Directories are durable as soon as they are made (a simplification: the log fsyncs the
//! directories it creates anyway). Handles opened before a crash fail afterwards.
//!
//! Deterministic: the same seed and the same sequence of calls give the same contents and the
//! same [`SimDisk::trace_hash`]. Usable without madsim (proptests use it directly).

use super::{Disk, DiskFile};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Fault rates, each in parts per million of operations of that kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskFaults {
    /// `sync` fails with EIO.
    pub fsync_error_ppm: u32,
    /// `write_at` fails with ENOSPC and writes nothing.
    pub enospc_ppm: u32,
    /// `read_at` returns its bytes with one bit flipped.
    pub read_bitflip_ppm: u32,
}

/// Counts of what the disk did, for reports and for checking that faults were really injected.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    pub writes: u64,
    pub syncs: u64,
    pub crashes: u64,
    pub fsync_errors: u64,
    pub enospc_errors: u64,
    pub read_bitflips: u64,
    pub writes_lost_on_crash: u64,
    pub writes_torn_on_crash: u64,
}

/// A crash-aware in-memory disk. Cloning gives another handle to the same disk, which is how a
/// node's disk outlives the node across simulated crashes and restarts.
#[derive(Clone, Debug)]
pub struct SimDisk {
    fs: Arc<Mutex<SimFs>>,
}

#[derive(Debug)]
struct SimFs {
    rng: ChaCha8Rng,
    faults: DiskFaults,
    /// Bumped by every crash; handles from an older generation refuse to work.
    generation: u64,
    next_inode: u64,
    inodes: BTreeMap<u64, Inode>,
    /// The namespace as the running node sees it.
    names: BTreeMap<PathBuf, u64>,
    /// The namespace a crash falls back to, plus `pending_names` replayed in part.
    durable_names: BTreeMap<PathBuf, u64>,
    pending_names: Vec<NameOp>,
    dirs: BTreeSet<PathBuf>,
    /// FNV-1a over every operation, for the simulator's determinism check.
    trace: u64,
    stats: SimDiskStats,
}

#[derive(Debug, Default)]
struct Inode {
    /// What reads see.
    data: Vec<u8>,
    /// What survived the last sync.
    durable: Vec<u8>,
    /// Writes and truncations since the last sync, in order.
    pending: Vec<DataOp>,
}

#[derive(Debug, Clone)]
enum DataOp {
    Write { offset: u64, bytes: Vec<u8> },
    SetLen(u64),
}

#[derive(Debug, Clone)]
enum NameOp {
    Link(PathBuf, u64),
    Unlink(PathBuf),
}

impl NameOp {
    fn dir(&self) -> Option<&Path> {
        match self {
            NameOp::Link(p, _) | NameOp::Unlink(p) => p.parent(),
        }
    }
    fn apply(&self, names: &mut BTreeMap<PathBuf, u64>) {
        match self {
            NameOp::Link(p, ino) => {
                names.insert(p.clone(), *ino);
            }
            NameOp::Unlink(p) => {
                names.remove(p);
            }
        }
    }
}

fn apply_data_op(data: &mut Vec<u8>, op: &DataOp) {
    match op {
        DataOp::Write { offset, bytes } => {
            let start = *offset as usize;
            let end = start + bytes.len();
            if data.len() < end {
                data.resize(end, 0);
            }
            data[start..end].copy_from_slice(bytes);
        }
        DataOp::SetLen(len) => data.resize(*len as usize, 0),
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl SimFs {
    fn mix(&mut self, words: &[u64]) {
        for w in words {
            for b in w.to_le_bytes() {
                self.trace ^= u64::from(b);
                self.trace = self.trace.wrapping_mul(0x100_0000_01b3);
            }
        }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        ppm > 0 && self.rng.gen_range(0..1_000_000u32) < ppm
    }

    fn link(&mut self, path: &Path, ino: u64) {
        self.names.insert(path.to_path_buf(), ino);
        self.pending_names
            .push(NameOp::Link(path.to_path_buf(), ino));
    }

    fn unlink(&mut self, path: &Path) {
        self.names.remove(path);
        self.pending_names.push(NameOp::Unlink(path.to_path_buf()));
    }

    fn crash(&mut self) {
        self.stats.crashes += 1;
        self.generation += 1;
        // Names: a prefix of the journal since the last directory sync survives.
        let keep = self.rng.gen_range(0..=self.pending_names.len());
        let pending = std::mem::take(&mut self.pending_names);
        for op in &pending[..keep] {
            op.apply(&mut self.durable_names);
        }
        self.names = self.durable_names.clone();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        // Data: each unsynced write is kept, torn or lost.
        let mut lost = 0;
        let mut torn = 0;
        let inos: Vec<u64> = self.inodes.keys().copied().collect();
        for ino in inos {
            let Some(inode) = self.inodes.get_mut(&ino) else {
                continue;
            };
            let pending = std::mem::take(&mut inode.pending);
            let mut data = std::mem::take(&mut inode.durable);
            for op in pending {
                match (self.rng.gen_range(0..3u8), op) {
                    (0, _) => lost += 1,
                    (1, op) => apply_data_op(&mut data, &op),
                    (_, DataOp::Write { offset, bytes }) => {
                        torn += 1;
                        let cut = self.rng.gen_range(0..=bytes.len());
                        apply_data_op(
                            &mut data,
                            &DataOp::Write {
                                offset,
                                bytes: bytes[..cut].to_vec(),
                            },
                        );
                    }
                    (_, op @ DataOp::SetLen(_)) => apply_data_op(&mut data, &op),
                }
            }
            inode.data = data.clone();
            inode.durable = data;
        }
        self.stats.writes_lost_on_crash += lost;
        self.stats.writes_torn_on_crash += torn;
        self.mix(&[0xC4A5, self.generation, lost, torn]);
    }
}

impl SimDisk {
    /// An empty disk whose crash outcomes and faults are drawn from `seed`.
    pub fn new(seed: u64, faults: DiskFaults) -> SimDisk {
        let mut dirs = BTreeSet::new();
        dirs.insert(PathBuf::from("/"));
        SimDisk {
            fs: Arc::new(Mutex::new(SimFs {
                rng: ChaCha8Rng::seed_from_u64(seed),
                faults,
                generation: 0,
                next_inode: 1,
                inodes: BTreeMap::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                pending_names: Vec::new(),
                dirs,
                trace: 0xcbf2_9ce4_8422_2325,
                stats: SimDiskStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SimFs> {
        self.fs.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Power loss: unsynced writes and unsynced names are kept, torn or lost; open handles die.
    pub fn crash(&self) {
        self.lock().crash();
    }

    /// Changes the fault rates (e.g. to none for a final verification phase).
    pub fn set_faults(&self, faults: DiskFaults) {
        self.lock().faults = faults;
    }

    /// A hash of every operation so far: equal for equal seeds and call sequences.
    pub fn trace_hash(&self) -> u64 {
        self.lock().trace
    }

    pub fn stats(&self) -> SimDiskStats {
        self.lock().stats
    }

    /// Replaces the bytes of an existing file wholesale, durably, bypassing the model: tests use
    /// it to plant corruption.
    pub fn overwrite_for_test(&self, path: &Path, bytes: Vec<u8>) -> io::Result<()> {
        let mut fs = self.lock();
        let ino = *fs.names.get(path).ok_or_else(|| not_found(path))?;
        let inode = fs.inodes.entry(ino).or_default();
        inode.data = bytes.clone();
        inode.durable = bytes;
        inode.pending.clear();
        Ok(())
    }
}

#[derive(Debug)]
struct SimFile {
    fs: Arc<Mutex<SimFs>>,
    ino: u64,
    generation: u64,
    path: PathBuf,
}

impl SimFile {
    fn with<R>(&self, f: impl FnOnce(&mut SimFs) -> io::Result<R>) -> io::Result<R> {
        let mut fs = self.fs.lock().unwrap_or_else(PoisonError::into_inner);
        if fs.generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: handle opened before a crash",
                self.path.display()
            )));
        }
        f(&mut fs)
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|fs| Ok(fs.inodes.get(&self.ino).map_or(0, |i| i.data.len() as u64)))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.with(|fs| {
            let ino = self.ino;
            let n = {
                let data = fs.inodes.get(&ino).map_or(&[][..], |i| &i.data[..]);
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let n = buf.len().min(data.len() - start);
                buf[..n].copy_from_slice(&data[start..start + n]);
                n
            };
            let flip_ppm = fs.faults.read_bitflip_ppm;
            if n > 0 && fs.chance(flip_ppm) {
                let bit = fs.rng.gen_range(0..n * 8);
                buf[bit / 8] ^= 1 << (bit % 8);
                fs.stats.read_bitflips += 1;
                fs.mix(&[0xB17F, ino, offset, bit as u64]);
            }
            Ok(n)
        })
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|fs| {
            let enospc_ppm = fs.faults.enospc_ppm;
            if fs.chance(enospc_ppm) {
                fs.stats.enospc_errors += 1;
                fs.mix(&[0xE05C, self.ino, offset]);
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!(
                        "{}: no space left on device (simulated)",
                        self.path.display()
                    ),
                ));
            }
            fs.stats.writes += 1;
            fs.mix(&[0x3717E, self.ino, offset, buf.len() as u64]);
            let op = DataOp::Write {
                offset,
                bytes: buf.to_vec(),
            };
            let inode = fs.inodes.entry(self.ino).or_default();
            apply_data_op(&mut inode.data, &op);
            inode.pending.push(op);
            Ok(())
        })
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|fs| {
            let fsync_error_ppm = fs.faults.fsync_error_ppm;
            let failed = fs.chance(fsync_error_ppm);
            fs.mix(&[0x5C, self.ino, u64::from(failed)]);
            let inode = fs.inodes.entry(self.ino).or_default();
            let pending = std::mem::take(&mut inode.pending);
            if failed {
                // Linux after a failed fsync: the dirty pages are marked clean and may never
                // reach the disk, yet reads still see them. Model it by forgetting them.
                fs.stats.fsync_errors += 1;
                return Err(io::Error::other(format!(
                    "{}: fsync failed: input/output error (simulated)",
                    self.path.display()
                )));
            }
            for op in &pending {
                apply_data_op(&mut inode.durable, op);
            }
            fs.stats.syncs += 1;
            Ok(())
        })
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|fs| {
            fs.mix(&[0x7E, self.ino, len]);
            let op = DataOp::SetLen(len);
            let inode = fs.inodes.entry(self.ino).or_default();
            apply_data_op(&mut inode.data, &op);
            inode.pending.push(op);
            Ok(())
        })
    }
}

impl Disk for SimDisk {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let mut fs = self.lock();
        if fs.names.contains_key(path) || fs.dirs.contains(path) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: already exists", path.display()),
            ));
        }
        let parent = path.parent().unwrap_or(Path::new("/"));
        if !fs.dirs.contains(parent) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory", parent.display()),
            ));
        }
        let ino = fs.next_inode;
        fs.next_inode += 1;
        fs.inodes.insert(ino, Inode::default());
        fs.link(path, ino);
        fs.mix(&[0xC7, ino]);
        Ok(Arc::new(SimFile {
            fs: Arc::clone(&self.fs),
            ino,
            generation: fs.generation,
            path: path.to_path_buf(),
        }))
    }

    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let fs = self.lock();
        let ino = *fs.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(Arc::new(SimFile {
            fs: Arc::clone(&self.fs),
            ino,
            generation: fs.generation,
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut fs = self.lock();
        let ino = *fs.names.get(from).ok_or_else(|| not_found(from))?;
        fs.mix(&[0x2E, ino]);
        // One journal record in spirit: replace the target, then drop the old name. A crash
        // keeps a prefix, so it can leave both names pointing at the file but never neither.
        fs.link(to, ino);
        fs.unlink(from);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.lock();
        if !fs.names.contains_key(path) {
            return Err(not_found(path));
        }
        fs.mix(&[0x2D]);
        fs.unlink(path);
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.lock();
        for ancestor in path.ancestors() {
            if fs.names.contains_key(ancestor) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: is a file", ancestor.display()),
                ));
            }
            fs.dirs.insert(ancestor.to_path_buf());
        }
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut fs = self.lock();
        if !fs.dirs.contains(path) {
            return Err(not_found(path));
        }
        let files: Vec<PathBuf> = fs
            .names
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        for f in files {
            fs.unlink(&f);
        }
        fs.dirs.retain(|d| !d.starts_with(path));
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let fs = self.lock();
        if !fs.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let files = fs.names.keys().filter(|p| p.parent() == Some(dir));
        let dirs = fs.dirs.iter().filter(|p| p.parent() == Some(dir));
        let mut names: Vec<String> = files
            .chain(dirs)
            .filter_map(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, path: &Path) -> bool {
        let fs = self.lock();
        fs.names.contains_key(path) || fs.dirs.contains(path)
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.lock().dirs.contains(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut fs = self.lock();
        if !fs.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let pending = std::mem::take(&mut fs.pending_names);
        let (now, later): (Vec<NameOp>, Vec<NameOp>) =
            pending.into_iter().partition(|op| op.dir() == Some(dir));
        for op in &now {
            op.apply(&mut fs.durable_names);
        }
        fs.pending_names = later;
        fs.mix(&[0x5D, now.len() as u64]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn synced_data_in_a_synced_directory_survives_a_crash() {
        let disk = SimDisk::new(1, DiskFaults::default());
        disk.create_dir_all(&p("/d")).unwrap();
        let f = disk.create(&p("/d/a")).unwrap();
        f.write_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        disk.sync_dir(&p("/d")).unwrap();
        f.write_at(b" world", 5).unwrap();
        disk.crash();
        let data = disk.read_file(&p("/d/a")).unwrap();
        assert!(data.starts_with(b"hello"), "{data:?}");
        assert!(f.len().is_err(), "handles from before the crash must die");
    }

    #[test]
    fn unsynced_writes_are_sometimes_lost_or_torn() {
        let mut outcomes = BTreeSet::new();
        for seed in 0..64 {
            let disk = SimDisk::new(seed, DiskFaults::default());
            disk.create_dir_all(&p("/d")).unwrap();
            let f = disk.create(&p("/d/a")).unwrap();
            f.sync().unwrap();
            disk.sync_dir(&p("/d")).unwrap();
            f.write_at(&[7u8; 100], 0).unwrap();
            disk.crash();
            outcomes.insert(disk.read_file(&p("/d/a")).unwrap().len());
        }
        assert!(outcomes.contains(&0), "lost: {outcomes:?}");
        assert!(outcomes.contains(&100), "kept: {outcomes:?}");
        assert!(
            outcomes.iter().any(|&n| n > 0 && n < 100),
            "torn: {outcomes:?}"
        );
    }

    #[test]
    fn a_file_whose_directory_was_never_synced_can_vanish() {
        let vanished = (0..64).any(|seed| {
            let disk = SimDisk::new(seed, DiskFaults::default());
            disk.create_dir_all(&p("/d")).unwrap();
            let f = disk.create(&p("/d/a")).unwrap();
            f.write_at(b"x", 0).unwrap();
            f.sync().unwrap();
            disk.crash();
            !disk.exists(&p("/d/a"))
        });
        assert!(vanished);
    }

    #[test]
    fn a_failed_fsync_loses_the_writes_it_covered_even_if_a_later_fsync_succeeds() {
        let disk = SimDisk::new(
            3,
            DiskFaults {
                fsync_error_ppm: 1_000_000,
                ..DiskFaults::default()
            },
        );
        disk.create_dir_all(&p("/d")).unwrap();
        let f = disk.create(&p("/d/a")).unwrap();
        disk.sync_dir(&p("/d")).unwrap();
        f.write_at(b"abc", 0).unwrap();
        assert!(f.sync().is_err());
        disk.set_faults(DiskFaults::default());
        f.sync().unwrap();
        assert_eq!(disk.read_file(&p("/d/a")).unwrap(), b"abc");
        disk.crash();
        assert_eq!(disk.read_file(&p("/d/a")).unwrap(), b"");
    }

    #[test]
    fn same_seed_same_trace() {
        let run = |seed| {
            let disk = SimDisk::new(
                seed,
                DiskFaults {
                    read_bitflip_ppm: 100_000,
                    ..DiskFaults::default()
                },
            );
            disk.create_dir_all(&p("/d")).unwrap();
            let f = disk.create(&p("/d/a")).unwrap();
            for i in 0..50u64 {
                f.write_at(&i.to_le_bytes(), i * 8).unwrap();
                let mut buf = [0u8; 8];
                f.read_at(&mut buf, i * 4).unwrap();
            }
            disk.crash();
            disk.trace_hash()
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
