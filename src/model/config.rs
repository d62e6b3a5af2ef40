//! `server.properties`: the node configuration, with Kafka's key names and meanings.
//!
//! Parsing is strict about values and lenient about keys: an invalid value is an error naming
//! the key, the value and what is allowed; an unknown key is a warning (Kafka's own behaviour,
//! so an existing file keeps working). Only the keys ketch implements are read so far; the rest
//! arrive with the features that use them.

use super::properties::{Properties, PropertiesError};
use super::NodeId;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One entry of `listeners`: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    /// Empty means every interface.
    pub host: String,
    pub port: u16,
}

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
    /// `controller.quorum.voters`: `id@host:port,…`.
    pub voters: BTreeMap<NodeId, (String, u16)>,
    /// `listeners`.
    pub listeners: Vec<Listener>,
    /// `controller.listener.names`.
    pub controller_listener_names: Vec<String>,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`.
    pub fetch_timeout_ms: u64,
    /// `broker.session.timeout.ms`: a broker without a heartbeat for this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `broker.heartbeat.interval.ms`.
    pub broker_heartbeat_interval_ms: u64,
    /// `num.partitions`: partitions of a topic created without a count.
    pub num_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
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
    "controller.quorum.election.timeout.ms",
    "controller.quorum.fetch.timeout.ms",
    "broker.session.timeout.ms",
    "broker.heartbeat.interval.ms",
    "num.partitions",
    "default.replication.factor",
];

fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

fn parse_voters(text: &str) -> Result<BTreeMap<NodeId, (String, u16)>, ConfigError> {
    let allowed = "a comma-separated list of id@host:port, e.g. 1@localhost:9093,2@localhost:9094";
    let mut voters = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| invalid("controller.quorum.voters", text, allowed))?;
        let id: i32 = id
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| invalid("controller.quorum.voters", text, allowed))?;
        let addr = parse_host_port(addr)
            .ok_or_else(|| invalid("controller.quorum.voters", text, allowed))?;
        if voters.insert(NodeId(id), addr).is_some() {
            return Err(invalid(
                "controller.quorum.voters",
                text,
                "each voter id once",
            ));
        }
    }
    Ok(voters)
}

fn parse_listeners(text: &str) -> Result<Vec<Listener>, ConfigError> {
    let allowed =
        "a comma-separated list of NAME://host:port, e.g. PLAINTEXT://:9092,CONTROLLER://:9093";
    let mut out: Vec<Listener> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, addr) = item
            .split_once("://")
            .ok_or_else(|| invalid("listeners", text, allowed))?;
        let (host, port) =
            parse_host_port(addr).ok_or_else(|| invalid("listeners", text, allowed))?;
        if name.is_empty() || out.iter().any(|l| l.name == name) {
            return Err(invalid(
                "listeners",
                text,
                "distinct, non-empty listener names",
            ));
        }
        out.push(Listener {
            name: name.to_string(),
            host,
            port,
        });
    }
    Ok(out)
}

fn parse_positive(props: &Properties, key: &str, default: i32) -> Result<i32, ConfigError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<i32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(key, v, "a positive integer")),
    }
}

fn parse_ms(props: &Properties, key: &str, default: u64) -> Result<u64, ConfigError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(key, v, "a positive number of milliseconds")),
    }
}

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
        let voters = parse_voters(props.get("controller.quorum.voters").unwrap_or(""))?;
        let listeners = parse_listeners(props.get("listeners").unwrap_or(""))?;
        let controller_listener_names: Vec<String> = props
            .get("controller.listener.names")
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        Ok((
            ServerConfig {
                node_id,
                roles,
                log_dirs,
                metadata_log_dir,
                voters,
                listeners,
                controller_listener_names,
                election_timeout_ms: parse_ms(
                    &props,
                    "controller.quorum.election.timeout.ms",
                    1000,
                )?,
                fetch_timeout_ms: parse_ms(&props, "controller.quorum.fetch.timeout.ms", 2000)?,
                broker_session_timeout_ms: parse_ms(&props, "broker.session.timeout.ms", 9000)?,
                broker_heartbeat_interval_ms: parse_ms(
                    &props,
                    "broker.heartbeat.interval.ms",
                    2000,
                )?,
                num_partitions: parse_positive(&props, "num.partitions", 1)?,
                default_replication_factor: i16::try_from(parse_positive(
                    &props,
                    "default.replication.factor",
                    1,
                )?)
                .map_err(|_| invalid("default.replication.factor", "", "at most 32767"))?,
            },
            warnings,
        ))
    }

    /// The listener the quorum talks on: the first of `controller.listener.names` that is in
    /// `listeners`.
    pub fn controller_listener(&self) -> Result<&Listener, ConfigError> {
        self.controller_listener_names
            .iter()
            .find_map(|n| self.listeners.iter().find(|l| &l.name == n))
            .ok_or_else(|| ConfigError::Missing {
                key: "controller.listener.names".into(),
                hint: "a controller needs one of 'listeners' named in 'controller.listener.names', e.g. \
                       listeners=CONTROLLER://:9093 and controller.listener.names=CONTROLLER"
                    .into(),
            })
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
        assert_eq!(
            c.voters.get(&NodeId(1)),
            Some(&("localhost".to_string(), 9093))
        );
        assert_eq!(c.listeners.len(), 2);
        assert_eq!(
            c.listeners[1],
            Listener {
                name: "CONTROLLER".into(),
                host: String::new(),
                port: 9093
            }
        );
        assert!(
            c.controller_listener().is_err(),
            "no controller.listener.names given"
        );
    }

    #[test]
    fn bad_voters_and_listeners_are_refused_with_the_key() {
        for (text, key) in [
            (
                "node.id=1\ncontroller.quorum.voters=1@localhost\n",
                "controller.quorum.voters",
            ),
            (
                "node.id=1\ncontroller.quorum.voters=x@h:1\n",
                "controller.quorum.voters",
            ),
            (
                "node.id=1\ncontroller.quorum.voters=1@h:1,1@h:2\n",
                "controller.quorum.voters",
            ),
            ("node.id=1\nlisteners=localhost:9092\n", "listeners"),
            (
                "node.id=1\ncontroller.quorum.fetch.timeout.ms=0\n",
                "controller.quorum.fetch.timeout.ms",
            ),
        ] {
            let err = ServerConfig::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
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
