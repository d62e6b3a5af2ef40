//! `server.properties`: the node configuration, with Kafka's key names and meanings.
//!
//! Parsing is strict about values and lenient about keys: an invalid value is an error naming
//! the key, the value and what is allowed; an unknown key is a warning (Kafka's own behaviour,
//! so an existing file keeps working). Only the keys ketch implements are read so far; the rest
//! arrive with the features that use them.

use super::properties::{Properties, PropertiesError};
use super::NodeId;
use std::path::PathBuf;

/// What a node does (`process.roles`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub broker: bool,
    pub controller: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub node_id: NodeId,
    pub roles: Roles,
    /// `log.dirs` (or `log.dir`): where partition logs live.
    pub log_dirs: Vec<PathBuf>,
    /// `metadata.log.dir`: where the metadata log lives; defaults to the first of `log_dirs`.
    pub metadata_log_dir: PathBuf,
    /// `controller.quorum.voters`, unparsed until the quorum exists.
    pub controller_quorum_voters: Option<String>,
    /// `listeners`, unparsed until the broker exists.
    pub listeners: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Syntax(#[from] PropertiesError),
    #[error("invalid value '{value}' for '{key}': {allowed}")]
    Invalid {
        key: String,
        value: String,
        allowed: String,
    },
    #[error("missing required key '{key}': {hint}")]
    Missing { key: String, hint: String },
}

/// Keys ketch knows. Anything else gets a warning (it may be meant for a later version).
const KNOWN_KEYS: &[&str] = &[
    "node.id",
    "process.roles",
    "log.dirs",
    "log.dir",
    "metadata.log.dir",
    "controller.quorum.voters",
    "controller.listener.names",
    "listeners",
    "advertised.listeners",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
];

fn invalid(key: &str, value: &str, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        value: value.to_string(),
        allowed: allowed.to_string(),
    }
}

impl ServerConfig {
    /// Parses the text of a `server.properties`. Returns the config and one warning per
    /// unknown key.
    pub fn parse(text: &str) -> Result<(ServerConfig, Vec<String>), ConfigError> {
        let props = Properties::parse(text)?;
        let warnings = props
            .iter()
            .filter(|(k, _)| !KNOWN_KEYS.contains(k))
            .map(|(k, _)| format!("unknown configuration key '{k}' is ignored"))
            .collect();
        let node_id = match props.get("node.id") {
            None => {
                return Err(ConfigError::Missing {
                    key: "node.id".into(),
                    hint: "every KRaft node needs a non-negative integer id".into(),
                })
            }
            Some(v) => v
                .trim()
                .parse::<i32>()
                .ok()
                .filter(|n| *n >= 0)
                .map(NodeId)
                .ok_or_else(|| invalid("node.id", v, "a non-negative 32-bit integer"))?,
        };
        let roles_text = props.get("process.roles").unwrap_or("broker,controller");
        let mut roles = Roles {
            broker: false,
            controller: false,
        };
        for role in roles_text.split(',').map(str::trim) {
            match role {
                "broker" => roles.broker = true,
                "controller" => roles.controller = true,
                _ => {
                    return Err(invalid(
                        "process.roles",
                        roles_text,
                        "'broker', 'controller' or 'broker,controller'",
                    ))
                }
            }
        }
        let dirs_text = props
            .get("log.dirs")
            .or_else(|| props.get("log.dir"))
            .unwrap_or("/tmp/kraft-combined-logs");
        let log_dirs: Vec<PathBuf> = dirs_text
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .collect();
        let Some(first_dir) = log_dirs.first().cloned() else {
            return Err(invalid(
                "log.dirs",
                dirs_text,
                "a comma-separated list of directories",
            ));
        };
        let metadata_log_dir = props
            .get("metadata.log.dir")
            .map(|d| PathBuf::from(d.trim()))
            .unwrap_or(first_dir);
        Ok((
            ServerConfig {
                node_id,
                roles,
                log_dirs,
                metadata_log_dir,
                controller_quorum_voters: props.get("controller.quorum.voters").map(str::to_string),
                listeners: props.get("listeners").map(str::to_string),
            },
            warnings,
        ))
    }

    /// Every directory `ketch storage format` must format: the log dirs and the metadata dir.
    pub fn all_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = self.log_dirs.clone();
        if !dirs.contains(&self.metadata_log_dir) {
            dirs.push(self.metadata_log_dir.clone());
        }
        dirs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kafkas_quickstart_keys() {
        let text = "process.roles=broker,controller\nnode.id=1\n\
                    controller.quorum.voters=1@localhost:9093\n\
                    listeners=PLAINTEXT://:9092,CONTROLLER://:9093\nlog.dirs=/a, /b\nfrobnicate=1\n";
        let (c, warnings) = ServerConfig::parse(text).unwrap();
        assert_eq!(c.node_id, NodeId(1));
        assert_eq!(
            c.roles,
            Roles {
                broker: true,
                controller: true
            }
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.metadata_log_dir, PathBuf::from("/a"));
        assert_eq!(
            warnings,
            vec!["unknown configuration key 'frobnicate' is ignored"]
        );
    }

    #[test]
    fn invalid_values_name_the_key_the_value_and_what_is_allowed() {
        let err = ServerConfig::parse("node.id=-3\n").unwrap_err().to_string();
        assert!(
            err.contains("node.id") && err.contains("-3") && err.contains("non-negative"),
            "{err}"
        );
        let err = ServerConfig::parse("node.id=1\nprocess.roles=leader\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("process.roles") && err.contains("leader"),
            "{err}"
        );
        let err = ServerConfig::parse("process.roles=broker\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("node.id"), "{err}");
        let err = ServerConfig::parse("node.id=1\nlog.dirs= , \n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.dirs"), "{err}");
    }
}
