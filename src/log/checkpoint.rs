//! Kafka's offset checkpoint files (`recovery-point-offset-checkpoint`,
//! `replication-offset-checkpoint`, `log-start-offset-checkpoint`): a version line `0`, a count
//! line, then one `<topic> <partition> <offset>` line per partition. Written atomically.

use crate::model::TopicPartition;
use crate::runtime::Disk;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: line {line}: {what}")]
    Malformed {
        path: PathBuf,
        line: usize,
        what: String,
    },
}

/// Reads a checkpoint file; a missing file is an empty map.
pub fn read_offset_checkpoint(
    disk: &dyn Disk,
    path: &Path,
) -> Result<BTreeMap<TopicPartition, u64>, CheckpointError> {
    if !disk.exists(path) {
        return Ok(BTreeMap::new());
    }
    let bytes = disk.read_file(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |line: usize, what: &str| CheckpointError::Malformed {
        path: path.to_path_buf(),
        line,
        what: what.to_string(),
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| bad(1, "not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("0") {
        return Err(bad(1, "unsupported version (expected 0)"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(|| bad(2, "expected an entry count"))?;
    let mut map = BTreeMap::new();
    for (i, line) in lines.enumerate() {
        let line_no = i + 3;
        let mut parts = line.split(' ');
        let (Some(topic), Some(partition), Some(offset), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad(line_no, "expected '<topic> <partition> <offset>'"));
        };
        let partition: i32 = partition
            .parse()
            .map_err(|_| bad(line_no, "bad partition"))?;
        let offset: u64 = offset.parse().map_err(|_| bad(line_no, "bad offset"))?;
        map.insert(TopicPartition::new(topic, partition), offset);
    }
    if map.len() != count {
        return Err(bad(
            2,
            &format!("says {count} entries, file has {}", map.len()),
        ));
    }
    Ok(map)
}

/// Replaces a checkpoint file atomically and durably.
pub fn write_offset_checkpoint(
    disk: &dyn Disk,
    path: &Path,
    offsets: &BTreeMap<TopicPartition, u64>,
) -> Result<(), CheckpointError> {
    let mut text = format!("0\n{}\n", offsets.len());
    for (tp, offset) in offsets {
        text.push_str(&format!("{} {} {}\n", tp.topic, tp.partition, offset));
    }
    disk.write_file_atomic(path, text.as_bytes())
        .map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })
}
