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
    /// `controller.quorum.voters`: `id@host:port,…`. Empty when the file names only
    /// `controller.quorum.bootstrap.servers` (Kafka 4's form): the node then reads the voters
    /// `ketch storage format --standalone|--initial-controllers` wrote.
    pub voters: BTreeMap<NodeId, (String, u16)>,
    /// `controller.quorum.bootstrap.servers`: `host:port,…`.
    pub quorum_bootstrap_servers: Vec<(String, u16)>,
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
    /// `advertised.listeners`: what brokers tell clients to connect to (defaults to `listeners`).
    pub advertised_listeners: Vec<Listener>,
    /// `auto.create.topics.enable`.
    pub auto_create_topics: bool,
    /// `log.retention.ms` (or `.minutes`, `.hours`); -1 keeps data forever.
    pub log_retention_ms: i64,
    /// `log.retention.bytes`; -1 is no limit.
    pub log_retention_bytes: i64,
    /// `log.segment.bytes`.
    pub log_segment_bytes: u64,
    /// `metadata.log.segment.bytes`: segment size of the metadata log, whose whole segments
    /// below the latest snapshot are deleted.
    pub metadata_log_segment_bytes: u64,
    /// `metadata.log.max.record.bytes.between.snapshots`: a member snapshots its metadata image
    /// once this many bytes of records committed since its last snapshot.
    pub metadata_snapshot_interval_bytes: u64,
    /// `metadata.log.max.snapshot.interval.ms`: or once this long has passed since the last
    /// snapshot with any record committed since.
    pub metadata_snapshot_interval_ms: u64,
    /// `log.retention.check.interval.ms`.
    pub log_retention_check_interval_ms: u64,
    /// `log.flush.interval.ms`: fsync partition logs this often; `None` (Kafka's default)
    /// leaves it to the OS, segment rolls and shutdown.
    pub log_flush_interval_ms: Option<u64>,
    /// `message.max.bytes`: the largest record batch accepted (topic `max.message.bytes`).
    pub message_max_bytes: usize,
    /// `socket.request.max.bytes`: the largest request frame read.
    pub socket_request_max_bytes: usize,
    /// `max.connections`: client connections accepted at once on the client listeners.
    pub max_connections: usize,
    /// `offsets.topic.num.partitions`.
    pub offsets_topic_num_partitions: i32,
    /// `offsets.topic.replication.factor`.
    pub offsets_topic_replication_factor: i16,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub group_min_session_timeout_ms: u64,
    pub group_max_session_timeout_ms: u64,
    /// `group.initial.rebalance.delay.ms`.
    pub group_initial_rebalance_delay_ms: u64,
    /// `transaction.state.log.num.partitions`.
    pub transaction_state_num_partitions: i32,
    /// `transaction.state.log.replication.factor` (at most the live brokers when made).
    pub transaction_state_replication_factor: i16,
    /// `transaction.state.log.min.isr`: the state topic's `min.insync.replicas`.
    pub transaction_state_min_isr: i32,
    /// `transaction.max.timeout.ms`: the longest `transaction.timeout.ms` a producer may ask.
    pub transaction_max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub transaction_abort_check_interval_ms: u64,
    /// `transaction.partition.verification.enable` (KIP-890): a partition leader asks the
    /// coordinator before a transactional batch opens a transaction on its partition.
    pub transaction_partition_verification_enable: bool,
    /// `min.insync.replicas`: acks=all needs this many in-sync replicas (topics may override).
    pub min_insync_replicas: i32,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR.
    pub replica_lag_time_max_ms: u64,
    /// `unclean.leader.election.enable`: a partition whose ISR has no live member may be led
    /// by any live replica (losing what it lacks).
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`, `leader.imbalance.check.interval.seconds` (in ms here),
    /// `leader.imbalance.per.broker.percentage`.
    pub auto_leader_rebalance: bool,
    pub leader_imbalance_check_interval_ms: u64,
    pub leader_imbalance_per_broker_percentage: u64,
    /// `log.flush.interval.messages`: 1 fsyncs before acknowledging (group commit); Kafka's
    /// default leaves flushing to the OS and durability to replication.
    pub log_flush_interval_messages: u64,
    /// `inter.broker.listener.name`: the listener followers fetch from leaders on (default:
    /// the first listener that is not a controller listener).
    pub inter_broker_listener_name: String,
    /// Each listener's security protocol (`listener.security.protocol.map`), the controller
    /// listeners' included on a node without one.
    pub security_protocols: BTreeMap<String, String>,
    /// The TLS settings of every listener whose protocol is SSL or SASL_SSL, by name.
    pub tls: BTreeMap<String, super::tls::TlsSettings>,
    /// The SASL settings of every listener whose protocol is SASL_PLAINTEXT or SASL_SSL.
    pub sasl: BTreeMap<String, super::sasl::SaslSettings>,
    /// `connections.max.reauth.ms` (KIP-368): a SASL session's lifetime; 0 for no limit.
    pub connections_max_reauth_ms: u64,
    /// `authorizer.class.name` names Kafka's `StandardAuthorizer`: ACLs are enforced.
    pub authorizer: bool,
    /// `super.users`: principals allowed everything (`User:admin;User:broker`).
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_everyone_if_no_acl_found: bool,
    /// The keys the file set (the rest are defaults), for DescribeConfigs' sources.
    pub set_keys: std::collections::BTreeSet<String>,
    /// Defaults the parse chose that an operator should see in the log (not warnings).
    pub notes: Vec<String>,
    /// `metrics.listener`: `http://host:port` serving Prometheus metrics at `/metrics`; off
    /// when unset (ketch's own key: Kafka exports JMX).
    pub metrics_listener: Option<(String, u16)>,
    /// The log cleaner's settings (`log.cleanup.policy`, `log.cleaner.*`).
    pub cleaner: CleanerSettings,
}

/// Kafka's `cleanup.policy`: `delete`, `compact` or both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CleanupPolicy {
    pub delete: bool,
    pub compact: bool,
}

impl CleanupPolicy {
    pub const DELETE: CleanupPolicy = CleanupPolicy {
        delete: true,
        compact: false,
    };
    pub const COMPACT: CleanupPolicy = CleanupPolicy {
        delete: false,
        compact: true,
    };

    /// Parses Kafka's list value (`delete`, `compact`, `compact,delete`, `[compact, delete]`).
    pub fn parse(value: &str) -> Option<CleanupPolicy> {
        let mut policy = CleanupPolicy {
            delete: false,
            compact: false,
        };
        for item in value.trim_matches(|c| c == '[' || c == ']').split(',') {
            match item.trim() {
                "delete" => policy.delete = true,
                "compact" => policy.compact = true,
                _ => return None,
            }
        }
        (policy.delete || policy.compact).then_some(policy)
    }
}

/// `log.cleanup.policy` and the `log.cleaner.*` keys, as Kafka names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanerSettings {
    /// `log.cleanup.policy`, as written (`delete`, `compact` or `compact,delete`).
    pub cleanup_policy: String,
    /// `log.cleaner.enable`.
    pub enable: bool,
    /// `log.cleaner.threads`: logs cleaned at the same time.
    pub threads: usize,
    /// `log.cleaner.io.max.bytes.per.second`: read and write throttle over all cleaner
    /// threads; `None` is unthrottled (Kafka's default, Double.MaxValue).
    pub io_max_bytes_per_second: Option<u64>,
    /// `log.cleaner.min.cleanable.ratio`, in parts per million.
    pub min_cleanable_ratio_ppm: u32,
    /// `log.cleaner.delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `log.cleaner.min.compaction.lag.ms`.
    pub min_compaction_lag_ms: i64,
    /// `log.cleaner.max.compaction.lag.ms`.
    pub max_compaction_lag_ms: i64,
    /// `log.cleaner.backoff.ms`: how long a cleaner thread sleeps when no log needs cleaning.
    pub backoff_ms: u64,
}

/// Parses the cleaner's keys; see [`CleanerSettings`].
fn parse_cleaner(props: &Properties) -> Result<CleanerSettings, ConfigError> {
    let policy = props.get("log.cleanup.policy").unwrap_or("delete").trim();
    let known = policy
        .trim_matches(|c| c == '[' || c == ']')
        .split(',')
        .all(|p| matches!(p.trim(), "delete" | "compact"));
    if !known || policy.is_empty() {
        return Err(invalid(
            "log.cleanup.policy",
            policy,
            "delete, compact or compact,delete",
        ));
    }
    let long = |key: &str, default: i64, min: i64| -> Result<i64, ConfigError> {
        match props.get(key) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= min)
                .ok_or_else(|| invalid(key, v, &format!("an integer of at least {min}"))),
        }
    };
    let ratio = match props.get("log.cleaner.min.cleanable.ratio") {
        None => 0.5,
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| invalid("log.cleaner.min.cleanable.ratio", v, "a number from 0 to 1"))?,
    };
    let io_max = match props.get("log.cleaner.io.max.bytes.per.second") {
        None => None,
        Some(v) => {
            let rate = v
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| *r > 0.0)
                .ok_or_else(|| {
                    invalid(
                        "log.cleaner.io.max.bytes.per.second",
                        v,
                        "a positive number of bytes per second",
                    )
                })?;
            (rate < 1e18).then_some(rate as u64)
        }
    };
    Ok(CleanerSettings {
        cleanup_policy: policy.to_string(),
        enable: parse_bool(props, "log.cleaner.enable", true)?,
        threads: usize::try_from(long("log.cleaner.threads", 1, 1)?).unwrap_or(1),
        io_max_bytes_per_second: io_max,
        min_cleanable_ratio_ppm: (ratio * 1e6).round() as u32,
        delete_retention_ms: long("log.cleaner.delete.retention.ms", 86_400_000, 0)?,
        min_compaction_lag_ms: long("log.cleaner.min.compaction.lag.ms", 0, 0)?,
        max_compaction_lag_ms: long("log.cleaner.max.compaction.lag.ms", i64::MAX, 1)?,
        backoff_ms: u64::try_from(long("log.cleaner.backoff.ms", 15_000, 1)?).unwrap_or(15_000),
    })
}

/// `http://host:port` (the scheme may be left out; only plain HTTP is served).
fn parse_metrics_listener(text: &str) -> Option<(String, u16)> {
    let text = text.trim();
    let addr = text.strip_prefix("http://").unwrap_or(text);
    if addr.contains("://") || addr.contains('/') {
        return None;
    }
    parse_host_port(addr)
}

/// The listener name Kafka's example configs give the controller listener.
pub const DEFAULT_CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The security protocols Kafka defines, all implemented.
const SECURITY_PROTOCOLS: &[&str] = &["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"];

/// `listener.security.protocol.map` as Kafka reads it: `NAME:PROTOCOL,…`; without the key, a
/// listener named after a protocol uses it and a controller listener is PLAINTEXT (Kafka's
/// KRaft default).
fn parse_security_protocols(
    map_text: Option<&str>,
    listeners: &[Listener],
    controller_listener_names: &[String],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let key = "listener.security.protocol.map";
    let mut map = BTreeMap::new();
    if let Some(text) = map_text {
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, protocol) = item.split_once(':').ok_or_else(|| {
                invalid(key, text, "a comma-separated list of NAME:PROTOCOL, e.g. CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
            })?;
            let protocol = protocol.trim().to_ascii_uppercase();
            if !SECURITY_PROTOCOLS.contains(&protocol.as_str()) {
                return Err(invalid(
                    key,
                    text,
                    "protocols PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
                ));
            }
            map.insert(name.trim().to_string(), protocol);
        }
    }
    let mut out = BTreeMap::new();
    for l in listeners {
        let protocol = match map.get(&l.name) {
            Some(p) => p.clone(),
            None if map_text.is_none() && SECURITY_PROTOCOLS.contains(&l.name.as_str()) => {
                l.name.clone()
            }
            None if map_text.is_none() && controller_listener_names.contains(&l.name) => {
                "PLAINTEXT".to_string()
            }
            None => {
                return Err(ConfigError::Missing {
                    key: key.into(),
                    hint: format!(
                        "listener '{}' is not named after a security protocol, so \
                         listener.security.protocol.map must give its protocol, e.g. {}:PLAINTEXT",
                        l.name, l.name
                    ),
                })
            }
        };
        out.insert(l.name.clone(), protocol);
    }
    // A broker-only node has no controller listener of its own, but connects to the
    // controllers' with that listener's protocol.
    for name in controller_listener_names {
        if out.contains_key(name) {
            continue;
        }
        let protocol = match map.get(name) {
            Some(p) => p.clone(),
            None if SECURITY_PROTOCOLS.contains(&name.as_str()) => name.clone(),
            None => "PLAINTEXT".to_string(),
        };
        out.insert(name.clone(), protocol);
    }
    Ok(out)
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
    #[error("{0}")]
    Unsupported(String),
}

/// Keys ketch knows. Anything else gets a warning (it may be meant for a later version).
const KNOWN_KEYS: &[&str] = &[
    "node.id",
    "process.roles",
    "log.dirs",
    "log.dir",
    "metadata.log.dir",
    "controller.quorum.voters",
    "controller.quorum.bootstrap.servers",
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
    "auto.create.topics.enable",
    "log.retention.ms",
    "log.retention.minutes",
    "log.retention.hours",
    "log.retention.bytes",
    "log.segment.bytes",
    "metadata.log.segment.bytes",
    "metadata.log.max.record.bytes.between.snapshots",
    "metadata.log.max.snapshot.interval.ms",
    "log.retention.check.interval.ms",
    "log.flush.interval.ms",
    "log.flush.interval.messages",
    "min.insync.replicas",
    "replica.lag.time.max.ms",
    "unclean.leader.election.enable",
    "auto.leader.rebalance.enable",
    "leader.imbalance.check.interval.seconds",
    "leader.imbalance.per.broker.percentage",
    "message.max.bytes",
    "socket.request.max.bytes",
    "max.connections",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "group.initial.rebalance.delay.ms",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "transaction.max.timeout.ms",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.partition.verification.enable",
    "authorizer.class.name",
    "super.users",
    "allow.everyone.if.no.acl.found",
    "metrics.listener",
    "log.cleanup.policy",
    "log.cleaner.enable",
    "log.cleaner.threads",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.backoff.ms",
    // Kafka quickstart keys that ketch accepts and has no use for (yet).
    "num.network.threads",
    "num.io.threads",
    "socket.send.buffer.bytes",
    "socket.receive.buffer.bytes",
    "num.recovery.threads.per.data.dir",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "share.coordinator.state.topic.replication.factor",
    "share.coordinator.state.topic.min.isr",
];

fn parse_host_port(text: &str) -> Option<(String, u16)> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// `id@host:port,…` (`controller.quorum.voters`, and the voters file `storage format
/// --standalone` writes).
pub fn parse_voters(text: &str) -> Result<BTreeMap<NodeId, (String, u16)>, ConfigError> {
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
        let (host, port) = parse_host_port(addr).ok_or_else(|| {
            invalid(
                "listeners",
                text,
                &format!("'{item}' needs a port from 0 to 65535: {allowed}"),
            )
        })?;
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

fn parse_bytes(props: &Properties, key: &str, default: u64) -> Result<u64, ConfigError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| invalid(key, v, "a positive number of bytes")),
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

fn parse_ms_or_zero(props: &Properties, key: &str, default: u64) -> Result<u64, ConfigError> {
    match props.get(key) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|_| invalid(key, v, "a non-negative number of milliseconds")),
    }
}

/// A retention setting in `unit_ms` units: -1 (forever / no limit) or a non-negative count.
fn parse_retention(props: &Properties, key: &str, unit_ms: i64) -> Result<i64, ConfigError> {
    match props.get(key) {
        None => Ok(-1),
        Some(v) => {
            let n = v
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| *n >= -1)
                .ok_or_else(|| invalid(key, v, "-1 or a non-negative integer"))?;
            Ok(if n < 0 { -1 } else { n.saturating_mul(unit_ms) })
        }
    }
}

/// `authorizer.class.name`: empty (no authorization) or Kafka's KRaft `StandardAuthorizer`,
/// whose behaviour ketch implements; ZooKeeper's `AclAuthorizer` and any other class are
/// refused rather than silently not enforced.
fn parse_authorizer(props: &Properties) -> Result<bool, ConfigError> {
    const STANDARD: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";
    match props.get("authorizer.class.name").map(str::trim) {
        None | Some("") => Ok(false),
        Some(STANDARD) => Ok(true),
        Some(other) => Err(invalid("authorizer.class.name", other, STANDARD)),
    }
}

fn parse_bool(props: &Properties, key: &str, default: bool) -> Result<bool, ConfigError> {
    match props.get(key).map(str::trim) {
        None => Ok(default),
        Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
        Some(v) => Err(invalid(key, v, "true or false")),
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
            .filter(|(k, _)| {
                !KNOWN_KEYS.contains(k)
                    && !super::tls::is_ssl_key(k)
                    && !super::sasl::is_sasl_key(k)
            })
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
        // Kafka 4 has no ZooKeeper mode to fall back to, and neither does ketch: a node that
        // does not say what it is would otherwise silently become a combined node.
        let roles_text = props
            .get("process.roles")
            .ok_or_else(|| ConfigError::Missing {
                key: "process.roles".into(),
                hint:
                    "say what this node is: process.roles=broker, controller or broker,controller"
                        .into(),
            })?;
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
        // No default directory: data silently landing in /tmp is worse than an error.
        let dirs_text = props
            .get("log.dirs")
            .or_else(|| props.get("log.dir"))
            .ok_or_else(|| ConfigError::Missing {
                key: "log.dirs".into(),
                hint: "the directories that hold this node's logs, e.g. log.dirs=/var/lib/ketch"
                    .into(),
            })?;
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
        let quorum_bootstrap_servers = match props.get("controller.quorum.bootstrap.servers") {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|item| {
                    parse_host_port(item).ok_or_else(|| {
                        invalid(
                            "controller.quorum.bootstrap.servers",
                            text,
                            "a comma-separated list of host:port (the controllers' listeners)",
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        let listeners = parse_listeners(props.get("listeners").unwrap_or(""))?;
        let advertised_listeners = match props.get("advertised.listeners") {
            Some(text) => parse_listeners(text)?,
            None => listeners.clone(),
        };
        let log_retention_ms = match (
            props.get("log.retention.ms"),
            props.get("log.retention.minutes"),
            props.get("log.retention.hours"),
        ) {
            (Some(_), _, _) => parse_retention(&props, "log.retention.ms", 1)?,
            (None, Some(_), _) => parse_retention(&props, "log.retention.minutes", 60_000)?,
            (None, None, Some(_)) => parse_retention(&props, "log.retention.hours", 3_600_000)?,
            (None, None, None) => 168 * 3_600_000,
        };
        let mut notes = Vec::new();
        let controller_listener_names: Vec<String> = match props.get("controller.listener.names") {
            Some(text) => text
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            // Kafka's shipped config/kraft/server.properties sets it to CONTROLLER; a file
            // written from the quickstart without that line means the same.
            None if listeners
                .iter()
                .any(|l| l.name == DEFAULT_CONTROLLER_LISTENER) =>
            {
                notes.push(format!(
                    "controller.listener.names is not set: using the listener named \
                     {DEFAULT_CONTROLLER_LISTENER}"
                ));
                vec![DEFAULT_CONTROLLER_LISTENER.to_string()]
            }
            None => Vec::new(),
        };
        let security_protocols = parse_security_protocols(
            props.get("listener.security.protocol.map"),
            &listeners,
            &controller_listener_names,
        )?;
        let inter_broker_listener_name = match props.get("inter.broker.listener.name") {
            Some(name) => {
                let name = name.trim().to_string();
                if !listeners.iter().any(|l| l.name == name) && !listeners.is_empty() {
                    return Err(invalid(
                        "inter.broker.listener.name",
                        &name,
                        "the name of one of 'listeners'",
                    ));
                }
                name
            }
            None => listeners
                .iter()
                .find(|l| !controller_listener_names.contains(&l.name))
                .map_or_else(|| "PLAINTEXT".to_string(), |l| l.name.clone()),
        };
        let mut tls = BTreeMap::new();
        for (name, protocol) in &security_protocols {
            if protocol == "SSL" || protocol == "SASL_SSL" {
                let settings =
                    super::tls::parse_tls(&props, name).map_err(|e| ConfigError::Invalid {
                        key: e.key.clone(),
                        value: props.get(&e.key).unwrap_or("").to_string(),
                        allowed: e.reason.clone(),
                    })?;
                if settings.keystore.is_none() && listeners.iter().any(|l| &l.name == name) {
                    return Err(ConfigError::Missing {
                        key: "ssl.keystore.location".into(),
                        hint: format!(
                            "{protocol} listener '{name}' needs this node's certificate and key \
                             (ssl.keystore.location, or listener.name.{}.ssl.keystore.location)",
                            name.to_ascii_lowercase()
                        ),
                    });
                }
                tls.insert(name.clone(), settings);
            }
        }
        let mut sasl = BTreeMap::new();
        for (name, protocol) in &security_protocols {
            if !protocol.starts_with("SASL_") {
                continue;
            }
            let controller = controller_listener_names.contains(name);
            let client_key = if controller {
                Some("sasl.mechanism.controller.protocol")
            } else if *name == inter_broker_listener_name && roles.broker {
                Some("sasl.mechanism.inter.broker.protocol")
            } else {
                None
            };
            let settings =
                super::sasl::parse_sasl(&props, name, client_key).map_err(|(key, allowed)| {
                    ConfigError::Invalid {
                        value: props.get(&key).unwrap_or("").to_string(),
                        key,
                        allowed,
                    }
                })?;
            // SCRAM credentials live in the metadata log, which controllers replicate among
            // themselves over this very listener: as in Kafka, not supported there.
            if controller && settings.mechanisms.iter().any(|m| m.starts_with("SCRAM")) {
                return Err(ConfigError::Unsupported(format!(
                    "SCRAM on the controller listener '{name}' is not supported (its credentials \
                     are in the metadata the controllers replicate over it); use PLAIN there"
                )));
            }
            sasl.insert(name.clone(), settings);
        }
        Ok((
            ServerConfig {
                node_id,
                roles,
                log_dirs,
                metadata_log_dir,
                voters,
                quorum_bootstrap_servers,
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
                advertised_listeners,
                auto_create_topics: parse_bool(&props, "auto.create.topics.enable", true)?,
                log_retention_ms,
                log_retention_bytes: parse_retention(&props, "log.retention.bytes", 1)?,
                log_segment_bytes: u64::try_from(parse_positive(
                    &props,
                    "log.segment.bytes",
                    1 << 30,
                )?)
                .unwrap_or(1 << 30)
                .max(14),
                metadata_log_segment_bytes: parse_bytes(
                    &props,
                    "metadata.log.segment.bytes",
                    1 << 30,
                )?,
                metadata_snapshot_interval_bytes: parse_bytes(
                    &props,
                    "metadata.log.max.record.bytes.between.snapshots",
                    20 << 20,
                )?,
                metadata_snapshot_interval_ms: parse_ms(
                    &props,
                    "metadata.log.max.snapshot.interval.ms",
                    3_600_000,
                )?,
                log_retention_check_interval_ms: parse_ms(
                    &props,
                    "log.retention.check.interval.ms",
                    300_000,
                )?,
                log_flush_interval_ms: match props.get("log.flush.interval.ms") {
                    None => None,
                    Some(_) => Some(parse_ms(&props, "log.flush.interval.ms", 1)?),
                },
                message_max_bytes: usize::try_from(parse_positive(
                    &props,
                    "message.max.bytes",
                    1_048_588,
                )?)
                .unwrap_or(1_048_588),
                socket_request_max_bytes: usize::try_from(parse_positive(
                    &props,
                    "socket.request.max.bytes",
                    104_857_600,
                )?)
                .unwrap_or(104_857_600),
                max_connections: usize::try_from(parse_positive(
                    &props,
                    "max.connections",
                    10_000,
                )?)
                .unwrap_or(10_000),
                offsets_topic_num_partitions: parse_positive(
                    &props,
                    "offsets.topic.num.partitions",
                    50,
                )?,
                offsets_topic_replication_factor: i16::try_from(parse_positive(
                    &props,
                    "offsets.topic.replication.factor",
                    3,
                )?)
                .unwrap_or(3),
                group_min_session_timeout_ms: parse_ms(
                    &props,
                    "group.min.session.timeout.ms",
                    6_000,
                )?,
                group_max_session_timeout_ms: parse_ms(
                    &props,
                    "group.max.session.timeout.ms",
                    1_800_000,
                )?,
                group_initial_rebalance_delay_ms: parse_ms_or_zero(
                    &props,
                    "group.initial.rebalance.delay.ms",
                    3_000,
                )?,
                transaction_state_num_partitions: parse_positive(
                    &props,
                    "transaction.state.log.num.partitions",
                    50,
                )?,
                transaction_state_replication_factor: i16::try_from(parse_positive(
                    &props,
                    "transaction.state.log.replication.factor",
                    3,
                )?)
                .unwrap_or(3),
                transaction_state_min_isr: parse_positive(
                    &props,
                    "transaction.state.log.min.isr",
                    2,
                )?,
                transaction_max_timeout_ms: parse_positive(
                    &props,
                    "transaction.max.timeout.ms",
                    900_000,
                )?,
                transaction_abort_check_interval_ms: parse_ms(
                    &props,
                    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                    10_000,
                )?,
                transaction_partition_verification_enable: parse_bool(
                    &props,
                    "transaction.partition.verification.enable",
                    true,
                )?,
                min_insync_replicas: parse_positive(&props, "min.insync.replicas", 1)?,
                replica_lag_time_max_ms: parse_ms(&props, "replica.lag.time.max.ms", 30_000)?,
                unclean_leader_election: parse_bool(
                    &props,
                    "unclean.leader.election.enable",
                    false,
                )?,
                auto_leader_rebalance: parse_bool(&props, "auto.leader.rebalance.enable", true)?,
                leader_imbalance_check_interval_ms: parse_bytes(
                    &props,
                    "leader.imbalance.check.interval.seconds",
                    300,
                )?
                .saturating_mul(1000),
                leader_imbalance_per_broker_percentage: parse_bytes(
                    &props,
                    "leader.imbalance.per.broker.percentage",
                    10,
                )?,
                log_flush_interval_messages: match props.get("log.flush.interval.messages") {
                    None => u64::MAX,
                    Some(_) => parse_bytes(&props, "log.flush.interval.messages", u64::MAX)?,
                },
                inter_broker_listener_name,
                security_protocols,
                tls,
                sasl,
                connections_max_reauth_ms: parse_ms(&props, "connections.max.reauth.ms", 0)?,
                authorizer: parse_authorizer(&props)?,
                super_users: props
                    .get("super.users")
                    .map(|v| {
                        v.split(';')
                            .map(str::trim)
                            .filter(|p| !p.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
                allow_everyone_if_no_acl_found: parse_bool(
                    &props,
                    "allow.everyone.if.no.acl.found",
                    false,
                )?,
                metrics_listener: match props.get("metrics.listener") {
                    None => None,
                    Some(text) => Some(parse_metrics_listener(text).ok_or_else(|| {
                        invalid(
                            "metrics.listener",
                            text,
                            "http://host:port, e.g. http://127.0.0.1:9308",
                        )
                    })?),
                },
                cleaner: parse_cleaner(&props)?,
                set_keys: props.iter().map(|(k, _)| k.to_string()).collect(),
                notes,
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

    /// The broker settings as (key, value, is it the default), for DescribeConfigs.
    pub fn described(&self) -> Vec<(String, String, bool)> {
        let listeners = |ls: &[Listener]| {
            ls.iter()
                .map(|l| format!("{}://{}:{}", l.name, l.host, l.port))
                .collect::<Vec<_>>()
                .join(",")
        };
        let entries: Vec<(&str, String)> = vec![
            ("node.id", self.node_id.0.to_string()),
            ("broker.id", self.node_id.0.to_string()),
            (
                "process.roles",
                match (self.roles.broker, self.roles.controller) {
                    (true, true) => "broker,controller",
                    (true, false) => "broker",
                    _ => "controller",
                }
                .to_string(),
            ),
            ("listeners", listeners(&self.listeners)),
            (
                "advertised.listeners",
                listeners(&self.advertised_listeners),
            ),
            (
                "log.dirs",
                self.log_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("num.partitions", self.num_partitions.to_string()),
            (
                "default.replication.factor",
                self.default_replication_factor.to_string(),
            ),
            (
                "auto.create.topics.enable",
                self.auto_create_topics.to_string(),
            ),
            ("log.retention.ms", self.log_retention_ms.to_string()),
            ("log.retention.bytes", self.log_retention_bytes.to_string()),
            ("log.segment.bytes", self.log_segment_bytes.to_string()),
            (
                "metadata.log.segment.bytes",
                self.metadata_log_segment_bytes.to_string(),
            ),
            (
                "metadata.log.max.record.bytes.between.snapshots",
                self.metadata_snapshot_interval_bytes.to_string(),
            ),
            (
                "metadata.log.max.snapshot.interval.ms",
                self.metadata_snapshot_interval_ms.to_string(),
            ),
            (
                "log.retention.check.interval.ms",
                self.log_retention_check_interval_ms.to_string(),
            ),
            ("message.max.bytes", self.message_max_bytes.to_string()),
            (
                "socket.request.max.bytes",
                self.socket_request_max_bytes.to_string(),
            ),
            ("max.connections", self.max_connections.to_string()),
            (
                "offsets.topic.num.partitions",
                self.offsets_topic_num_partitions.to_string(),
            ),
            (
                "group.min.session.timeout.ms",
                self.group_min_session_timeout_ms.to_string(),
            ),
            (
                "group.max.session.timeout.ms",
                self.group_max_session_timeout_ms.to_string(),
            ),
            (
                "group.initial.rebalance.delay.ms",
                self.group_initial_rebalance_delay_ms.to_string(),
            ),
            (
                "transaction.state.log.num.partitions",
                self.transaction_state_num_partitions.to_string(),
            ),
            (
                "transaction.state.log.replication.factor",
                self.transaction_state_replication_factor.to_string(),
            ),
            (
                "transaction.state.log.min.isr",
                self.transaction_state_min_isr.to_string(),
            ),
            (
                "transaction.max.timeout.ms",
                self.transaction_max_timeout_ms.to_string(),
            ),
            (
                "transaction.abort.timed.out.transaction.cleanup.interval.ms",
                self.transaction_abort_check_interval_ms.to_string(),
            ),
            (
                "transaction.partition.verification.enable",
                self.transaction_partition_verification_enable.to_string(),
            ),
            (
                "broker.session.timeout.ms",
                self.broker_session_timeout_ms.to_string(),
            ),
            (
                "broker.heartbeat.interval.ms",
                self.broker_heartbeat_interval_ms.to_string(),
            ),
            ("min.insync.replicas", self.min_insync_replicas.to_string()),
            (
                "replica.lag.time.max.ms",
                self.replica_lag_time_max_ms.to_string(),
            ),
            (
                "unclean.leader.election.enable",
                self.unclean_leader_election.to_string(),
            ),
            (
                "auto.leader.rebalance.enable",
                self.auto_leader_rebalance.to_string(),
            ),
            (
                "leader.imbalance.check.interval.seconds",
                (self.leader_imbalance_check_interval_ms / 1000).to_string(),
            ),
            (
                "leader.imbalance.per.broker.percentage",
                self.leader_imbalance_per_broker_percentage.to_string(),
            ),
            (
                "log.flush.interval.messages",
                self.log_flush_interval_messages.to_string(),
            ),
            (
                "inter.broker.listener.name",
                self.inter_broker_listener_name.clone(),
            ),
            ("log.cleanup.policy", self.cleaner.cleanup_policy.clone()),
            ("log.cleaner.enable", self.cleaner.enable.to_string()),
            ("log.cleaner.threads", self.cleaner.threads.to_string()),
            (
                "log.cleaner.io.max.bytes.per.second",
                self.cleaner
                    .io_max_bytes_per_second
                    .map_or("1.7976931348623157E308".to_string(), |r| r.to_string()),
            ),
            (
                "log.cleaner.min.cleanable.ratio",
                (f64::from(self.cleaner.min_cleanable_ratio_ppm) / 1e6).to_string(),
            ),
            (
                "log.cleaner.delete.retention.ms",
                self.cleaner.delete_retention_ms.to_string(),
            ),
            (
                "log.cleaner.min.compaction.lag.ms",
                self.cleaner.min_compaction_lag_ms.to_string(),
            ),
            (
                "log.cleaner.max.compaction.lag.ms",
                self.cleaner.max_compaction_lag_ms.to_string(),
            ),
            (
                "log.cleaner.backoff.ms",
                self.cleaner.backoff_ms.to_string(),
            ),
        ];
        entries
            .into_iter()
            .map(|(k, v)| {
                // log.retention.ms may come from .minutes or .hours.
                let set = self.set_keys.contains(k)
                    || (k == "log.retention.ms"
                        && (self.set_keys.contains("log.retention.minutes")
                            || self.set_keys.contains("log.retention.hours")))
                    || (k == "broker.id" && self.set_keys.contains("node.id"));
                (k.to_string(), v, !set)
            })
            .collect()
    }

    /// `ketch dev`'s node: one combined node with clients on 127.0.0.1:9092 and the controller
    /// listener on 127.0.0.1:9093, data in `data_dir`, groups that start at once, and
    /// `__consumer_offsets` with one replica (there is one broker).
    pub fn dev(data_dir: &std::path::Path) -> Result<ServerConfig, ConfigError> {
        let text = format!(
            "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:9093\n\
             listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
             controller.listener.names=CONTROLLER\nlog.dirs={}\nbroker.heartbeat.interval.ms=500\n\
             group.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n\
             metrics.listener=http://127.0.0.1:9308\n",
            data_dir.display()
        );
        ServerConfig::parse(&text).map(|(config, _)| config)
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
        assert_eq!(
            c.controller_listener().map(|l| l.port).ok(),
            Some(9093),
            "without controller.listener.names, the listener named CONTROLLER"
        );
        assert_eq!(
            c.notes,
            vec!["controller.listener.names is not set: using the listener named CONTROLLER"]
        );
        let (c, _) = ServerConfig::parse(
            "process.roles=controller\nnode.id=1\nlog.dirs=/a\nlisteners=QUORUM://:9093\n\
             listener.security.protocol.map=QUORUM:PLAINTEXT\n",
        )
        .unwrap();
        assert!(
            c.controller_listener().is_err(),
            "no default for another name"
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
            let text = format!("process.roles=broker\nlog.dirs=/a\n{text}");
            let err = ServerConfig::parse(&text).unwrap_err().to_string();
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
        let err = ServerConfig::parse("node.id=1\nprocess.roles=broker\nlog.dirs= , \n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.dirs"), "{err}");
    }
}
