//! A formatted log directory (`log.dirs` entry): its `meta.properties`, its partition logs and its
//! recovery-point checkpoint. The logs it opens belong to the caller afterwards; this type only
//! knows how to find, create, delete and checkpoint them.

use super::checkpoint::{read_offset_checkpoint, write_offset_checkpoint};
use super::meta::{MetaProperties, MetaPropertiesError, META_PROPERTIES};
use super::{Log, LogConfig, LogError};
use crate::model::{NodeId, TopicPartition};
use crate::runtime::Disk;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Each log's start offset, where DeleteRecords (or a leader's) moved it inside a segment.
pub const LOG_START_CHECKPOINT: &str = "log-start-offset-checkpoint";

#[derive(Debug)]
pub struct LogDir {
    disk: Arc<dyn Disk>,
    path: PathBuf,
    meta: MetaProperties,
}

impl LogDir {
    /// Formats `path` (creating it if needed) by writing `meta.properties`. Refuses a directory
    /// that is already formatted unless `ignore_formatted`, in which case an existing identity
    /// for the same cluster is kept as it is.
    pub fn format(
        disk: Arc<dyn Disk>,
        path: &Path,
        meta: &MetaProperties,
        ignore_formatted: bool,
    ) -> Result<bool, LogError> {
        let meta_path = path.join(META_PROPERTIES);
        if disk.exists(&meta_path) {
            if ignore_formatted {
                return Ok(false);
            }
            return Err(LogError::BadDirectory {
                path: path.to_path_buf(),
                what: "is already formatted (pass --ignore-formatted to leave it as it is)".into(),
            });
        }
        disk.create_dir_all(path)
            .map_err(|e| LogError::io(path, e))?;
        disk.write_file_atomic(&meta_path, meta.to_text().as_bytes())
            .map_err(|e| LogError::io(&meta_path, e))?;
        Ok(true)
    }

    /// Opens a formatted directory, checking that it belongs to `cluster_id` (if given) and
    /// `node_id`, and recovers every partition log in it. `config_for` gives each log's config.
    /// Returns the directory, its logs, and one line per repair made during recovery.
    #[allow(clippy::type_complexity)]
    pub fn open(
        disk: Arc<dyn Disk>,
        path: &Path,
        cluster_id: Option<&str>,
        node_id: NodeId,
        config_for: impl Fn(&TopicPartition) -> LogConfig,
    ) -> Result<(LogDir, BTreeMap<TopicPartition, Log>, Vec<String>), LogError> {
        if !disk.is_dir(path) {
            return Err(LogError::BadDirectory {
                path: path.to_path_buf(),
                what: "does not exist or is not a directory; run 'ketch storage format' first"
                    .into(),
            });
        }
        let meta_path = path.join(META_PROPERTIES);
        if !disk.exists(&meta_path) {
            return Err(LogError::BadDirectory {
                path: path.to_path_buf(),
                what: format!("is not formatted (no {META_PROPERTIES}); run 'ketch storage format -t <cluster-id> -c <config>'"),
            });
        }
        let bytes = disk
            .read_file(&meta_path)
            .map_err(|e| LogError::io(&meta_path, e))?;
        let text = String::from_utf8_lossy(&bytes);
        let meta = MetaProperties::parse(&text, meta_path.clone())?;
        if let Some(expected) = cluster_id {
            if meta.cluster_id != expected {
                return Err(MetaPropertiesError::Invalid {
                    path: meta_path,
                    what: format!(
                        "belongs to cluster '{}', not '{expected}': this directory was formatted for another cluster",
                        meta.cluster_id
                    ),
                }
                .into());
            }
        }
        if meta.node_id != node_id {
            return Err(MetaPropertiesError::Invalid {
                path: meta_path,
                what: format!(
                    "belongs to node {}, but this is node.id {node_id}",
                    meta.node_id
                ),
            }
            .into());
        }
        let checkpoints =
            read_offset_checkpoint(disk.as_ref(), &path.join(RECOVERY_POINT_CHECKPOINT))?;
        let starts = read_offset_checkpoint(disk.as_ref(), &path.join(LOG_START_CHECKPOINT))?;
        let mut logs = BTreeMap::new();
        let mut notes = Vec::new();
        for name in disk.list(path).map_err(|e| LogError::io(path, e))? {
            let Some(tp) = TopicPartition::from_dir_name(&name) else {
                continue;
            };
            let log_path = path.join(&name);
            if !disk.is_dir(&log_path) {
                continue;
            }
            let recovery_point = checkpoints.get(&tp).copied().unwrap_or(0);
            let (mut log, log_notes) = Log::open(
                Arc::clone(&disk),
                &log_path,
                config_for(&tp),
                recovery_point,
            )?;
            notes.extend(log_notes);
            if let Some(&start) = starts.get(&tp) {
                if start > log.log_end_offset() {
                    // What lay below the checkpointed start was deleted; what followed it did
                    // not survive (writes not fsynced): start over empty there, as Kafka does.
                    notes.push(format!(
                        "{}: log end {} is below the checkpointed log start {start}: starting empty at it",
                        log_path.display(),
                        log.log_end_offset()
                    ));
                    log.reset_to(start)?;
                } else {
                    log.advance_start_to(start)?;
                }
            }
            logs.insert(tp, log);
        }
        let dir = LogDir {
            disk,
            path: path.to_path_buf(),
            meta,
        };
        Ok((dir, logs, notes))
    }

    pub fn meta(&self) -> &MetaProperties {
        &self.meta
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates (or opens) the log of `tp`.
    pub fn create_log(&self, tp: &TopicPartition, config: LogConfig) -> Result<Log, LogError> {
        let (log, _) = Log::open(
            Arc::clone(&self.disk),
            &self.path.join(tp.dir_name()),
            config,
            0,
        )?;
        Ok(log)
    }

    /// Deletes a log and its directory.
    pub fn delete_log(&self, log: Log) -> Result<(), LogError> {
        let dir = log.dir().to_path_buf();
        drop(log);
        self.disk
            .remove_dir_all(&dir)
            .map_err(|e| LogError::io(&dir, e))?;
        self.disk
            .sync_dir(&self.path)
            .map_err(|e| LogError::io(&self.path, e))
    }

    /// Records log start offsets (`log-start-offset-checkpoint`): the caller passes those
    /// that lie inside a segment ([`Log::start_inside_segment`]); for the others the segments
    /// on disk say it.
    pub fn write_log_starts(&self, starts: &BTreeMap<TopicPartition, u64>) -> Result<(), LogError> {
        write_offset_checkpoint(
            self.disk.as_ref(),
            &self.path.join(LOG_START_CHECKPOINT),
            starts,
        )?;
        Ok(())
    }

    /// Records how far each log is known durable, so the next start scans only what follows.
    pub fn write_recovery_points<'a>(
        &self,
        logs: impl IntoIterator<Item = (&'a TopicPartition, &'a Log)>,
    ) -> Result<(), LogError> {
        let points: BTreeMap<TopicPartition, u64> = logs
            .into_iter()
            .map(|(tp, log)| (tp.clone(), log.flushed_offset()))
            .collect();
        write_offset_checkpoint(
            self.disk.as_ref(),
            &self.path.join(RECOVERY_POINT_CHECKPOINT),
            &points,
        )?;
        Ok(())
    }
}
