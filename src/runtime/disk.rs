//! The file-system interface every durable component goes through. Two implementations:
//! [`super::RealDisk`] (std::fs) and [`super::SimDisk`] (in memory, crash-aware).
//!
//! Durability contract, the same for both: bytes written with [`DiskFile::write_at`] are visible to
//! reads at once but survive a crash only after [`DiskFile::sync`]; a created, renamed or removed
//! name survives a crash only after [`Disk::sync_dir`] of its directory.

use std::fmt::Debug;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// An open file. Positional reads and writes only, so one handle can be shared by readers and
/// the single writer of a log segment without a seek position to fight over.
#[allow(clippy::len_without_is_empty)] // a file length, not a collection
pub trait DiskFile: Send + Sync + Debug {
    /// Current length in bytes (including unsynced writes).
    fn len(&self) -> io::Result<u64>;
    /// Reads up to `buf.len()` bytes at `offset`; fewer only at end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Writes `buf` at the end of the file and returns the offset it was written at.
    fn append(&self, buf: &[u8]) -> io::Result<u64> {
        let offset = self.len()?;
        self.write_at(buf, offset)?;
        Ok(offset)
    }
    /// Makes every earlier write and truncation of this file durable (fdatasync).
    fn sync(&self) -> io::Result<()>;
    /// Sets the length to `len`, dropping bytes past it (or zero-filling up to it).
    fn truncate(&self, len: u64) -> io::Result<()>;

    /// Reads exactly `buf.len()` bytes at `offset`, or fails with `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut done = 0;
        while done < buf.len() {
            let n = self.read_at(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "short read: wanted {} bytes at offset {offset}, file ends after {done}",
                        buf.len()
                    ),
                ));
            }
            done += n;
        }
        Ok(())
    }
}

/// A directory tree of files.
pub trait Disk: Send + Sync + Debug {
    /// Creates a new empty file; fails if it exists.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>>;
    /// Opens an existing file for reading and writing.
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>>;
    /// Renames a file, replacing `to` if it exists (atomic, as rename(2)).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents; no error if it exists.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// The names (not paths) of the entries of `dir`, files and directories, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Whether a file or directory exists at `path`.
    fn exists(&self, path: &Path) -> bool;
    /// Whether `path` is a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Makes creations, renames and removals of entries in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Opens `path`, creating it empty if it does not exist.
    fn open_or_create(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        if self.exists(path) {
            self.open(path)
        } else {
            self.create(path)
        }
    }

    /// Reads a whole (small) file.
    fn read_file(&self, path: &Path) -> io::Result<Vec<u8>> {
        let file = self.open(path)?;
        let len = usize::try_from(file.len()?)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "file too large"))?;
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, 0)?;
        Ok(buf)
    }

    /// Replaces `path` with `bytes` atomically and durably: write a temporary file, fsync it,
    /// rename it over `path`, fsync the directory. A crash leaves the old or the new contents.
    fn write_file_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        if self.exists(&tmp) {
            self.remove(&tmp)?;
        }
        let file = self.create(&tmp)?;
        file.write_at(bytes, 0)?;
        file.sync()?;
        drop(file);
        self.rename(&tmp, path)?;
        self.sync_dir(dir)
    }
}
