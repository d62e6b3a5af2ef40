//! `meta.properties`, the identity of a formatted log directory (KIP-631, version 1):
//! `version`, `cluster.id`, `node.id`, `directory.id`. A node refuses a directory formatted for
//! another cluster or node.

use crate::model::properties::{Properties, PropertiesError};
use crate::model::{NodeId, Uuid};
use std::path::PathBuf;

pub const META_PROPERTIES: &str = "meta.properties";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaProperties {
    pub cluster_id: String,
    pub node_id: NodeId,
    pub directory_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum MetaPropertiesError {
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
    #[error("{path}: {source}")]
    Syntax {
        path: PathBuf,
        source: PropertiesError,
    },
}

impl MetaProperties {
    pub fn to_text(&self) -> String {
        let mut p = Properties::new();
        p.set("cluster.id", self.cluster_id.clone());
        p.set("directory.id", self.directory_id.to_string());
        p.set("node.id", self.node_id.0.to_string());
        p.set("version", "1");
        p.to_text(Some("\nWritten by ketch storage format"))
    }

    pub fn parse(text: &str, path: PathBuf) -> Result<MetaProperties, MetaPropertiesError> {
        let props = Properties::parse(text).map_err(|source| MetaPropertiesError::Syntax {
            path: path.clone(),
            source,
        })?;
        let invalid = |what: String| MetaPropertiesError::Invalid {
            path: path.clone(),
            what,
        };
        match props.get("version") {
            Some("1") => {}
            Some(v) => {
                return Err(invalid(format!(
                    "version {v} is not supported (expected 1, KRaft)"
                )))
            }
            None => return Err(invalid("no 'version' key".into())),
        }
        let cluster_id = props
            .get("cluster.id")
            .filter(|c| !c.is_empty())
            .ok_or_else(|| invalid("no 'cluster.id' key".into()))?
            .to_string();
        let node_id = props
            .get("node.id")
            .ok_or_else(|| invalid("no 'node.id' key".into()))?;
        let node_id = node_id
            .parse::<i32>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid(format!("node.id '{node_id}' is not a non-negative integer")))?;
        let directory_id = match props.get("directory.id") {
            Some(d) => Uuid::parse(d).map_err(|e| invalid(e.to_string()))?,
            None => Uuid::ZERO,
        };
        Ok(MetaProperties {
            cluster_id,
            node_id: NodeId(node_id),
            directory_id,
        })
    }
}
