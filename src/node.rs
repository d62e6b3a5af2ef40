//! One ketch node, wired for its `process.roles`: the quorum member (a voter with the controller
//! listener for the controller role, an observer for a broker-only node) and, for the broker
//! role, the Kafka data plane with its lifecycle. `ketch server`, `ketch dev` and the simulator
//! all start nodes through [`run`], so the simulator runs the wiring the binary runs.
//!
//! Owns: checking the config's roles and voters, opening the log directories, building each
//! part's config from `server.properties`, handing between `quorum` and `broker` what one
//! needs of the other (the committed metadata image, the quorum leader as a hint for the
//! controller client, the metadata offset replayed for heartbeats), and the order of a clean
//! stop: the broker flushes and leaves (controlled shutdown), then the quorum member stops.
//! `quorum` and `broker` never import each other; this module is where they meet.

use crate::broker::context::{Broker, BrokerConfig};
use crate::broker::controller_client::ControllerClient;
use crate::broker::groups::Groups;
use crate::broker::lifecycle::{self, LifecycleConfig};
use crate::broker::partitions::{flush_policy, LogDefaults, Partitions, ReplicaConfig};
use crate::broker::BrokerError;
use crate::controller::{ControllerConfig, Endpoint, MetadataImage};
use crate::group::GroupConfig;
use crate::log::{Log, LogConfig, LogDir, LogError};
use crate::model::bugs::ClusterBugs;
use crate::model::config::{ConfigError, ServerConfig};
use crate::model::{TopicPartition, METADATA_TOPIC};
use crate::quorum::storage::METADATA_LOG_DIR_NAME;
use crate::quorum::{
    self, Observer, Proposal, QuorumBugs, QuorumConfig, QuorumError, QuorumStatus,
};
use crate::runtime::{self, Clock, Disk};
use crate::wire::Connector;
use crate::wire::ListenerSecurity;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot read {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    ParseConfig { path: PathBuf, source: ConfigError },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    BadConfig(#[from] ConfigError),
    #[error("opening {path}: {source}")]
    Storage { path: PathBuf, source: LogError },
    #[error("no metadata log directory (metadata.log.dir or the first of log.dirs)")]
    NoMetadataLog,
    #[error("cannot draw entropy for the node's ids: {0}")]
    Entropy(std::io::Error),
    #[error("quorum member: {0}")]
    Quorum(#[from] QuorumError),
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("broker task: {0}")]
    BrokerTask(String),
}

impl ServerConfig {
    /// Reads and parses a `server.properties` file, logging each warning (unknown keys, …).
    pub fn load(disk: &dyn Disk, path: &Path) -> Result<ServerConfig, NodeError> {
        let text = disk
            .read_file(path)
            .map_err(|source| NodeError::ReadConfig {
                path: path.to_path_buf(),
                source,
            })?;
        let text = String::from_utf8_lossy(&text);
        let (config, warnings) =
            ServerConfig::parse(&text).map_err(|source| NodeError::ParseConfig {
                path: path.to_path_buf(),
                source,
            })?;
        for w in warnings {
            tracing::warn!("{}: {w}", path.display());
        }
        for n in &config.notes {
            tracing::info!("{}: {n}", path.display());
        }
        Ok(config)
    }
}

/// `ketch storage format`: writes `meta.properties` (the cluster id, the node id, a new
/// directory id each) into every directory of `config`. A formatted directory is refused unless
/// `ignore_formatted`, then left as it is. Returns each directory and whether it was formatted now.
pub fn format_storage(
    disk: &Arc<dyn Disk>,
    config: &ServerConfig,
    cluster_id: &str,
    ignore_formatted: bool,
    mut directory_id: impl FnMut(&Path) -> Result<crate::model::Uuid, NodeError>,
) -> Result<Vec<(PathBuf, bool)>, NodeError> {
    if cluster_id.trim().is_empty() {
        return Err(NodeError::Config(
            "the cluster id must not be empty (make one with 'ketch storage random-uuid')".into(),
        ));
    }
    let mut done = Vec::new();
    for dir in config.all_dirs() {
        let meta = crate::log::MetaProperties {
            cluster_id: cluster_id.to_string(),
            node_id: config.node_id,
            directory_id: directory_id(&dir)?,
        };
        let formatted =
            LogDir::format(Arc::clone(disk), &dir, &meta, ignore_formatted).map_err(|source| {
                NodeError::Storage {
                    path: dir.clone(),
                    source,
                }
            })?;
        done.push((dir, formatted));
    }
    Ok(done)
}

/// The voter set `ketch storage format --standalone|--initial-controllers` fixes, kept in the
/// metadata log directory for a config that names only `controller.quorum.bootstrap.servers`
/// (Kafka 4's form). Kafka writes it as a VotersRecord in `bootstrap.checkpoint`; ketch's
/// quorum has a static voter set (no KIP-853 reconfiguration), so a properties file is enough.
pub const BOOTSTRAP_VOTERS_FILE: &str = "bootstrap.voters";

/// Writes the bootstrap voter set into the metadata log directory (formatted just before).
pub fn write_bootstrap_voters(
    disk: &Arc<dyn Disk>,
    config: &ServerConfig,
    voters: &std::collections::BTreeMap<crate::model::NodeId, (String, u16)>,
) -> Result<PathBuf, NodeError> {
    let text = voters
        .iter()
        .map(|(id, (host, port))| format!("{}@{host}:{port}", id.0))
        .collect::<Vec<_>>()
        .join(",");
    let path = config.metadata_log_dir.join(BOOTSTRAP_VOTERS_FILE);
    let body = format!(
        "# The controller quorum's voters, fixed by ketch storage format.\nvoters={text}\n"
    );
    disk.write_file_atomic(&path, body.as_bytes())
        .map_err(|e| NodeError::Config(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

/// Metadata records `ketch storage format` adds (`--add-scram`), kept in the metadata log
/// directory until the first active controller writes them to an empty metadata log (Kafka
/// keeps them in `bootstrap.checkpoint`). One record a line, Kafka's bytes in base64.
pub const BOOTSTRAP_RECORDS_FILE: &str = "bootstrap.records";

/// Writes the bootstrap records into the metadata log directory (formatted just before).
pub fn write_bootstrap_records(
    disk: &Arc<dyn Disk>,
    config: &ServerConfig,
    records: &[crate::controller::MetadataRecord],
) -> Result<PathBuf, NodeError> {
    let mut body = String::from(
        "# Metadata records from ketch storage format (--add-scram), written to the metadata\n\
         # log by the first active controller while it holds no record. Kafka's bytes, base64.\n",
    );
    for r in records {
        let bytes = r
            .encode()
            .map_err(|e| NodeError::Config(format!("bootstrap record: {e}")))?;
        body.push_str(&crate::security::scram::base64_encode(&bytes));
        body.push('\n');
    }
    let path = config.metadata_log_dir.join(BOOTSTRAP_RECORDS_FILE);
    disk.write_file_atomic(&path, body.as_bytes())
        .map_err(|e| NodeError::Config(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

fn read_bootstrap_records(
    disk: &Arc<dyn Disk>,
    config: &ServerConfig,
) -> Result<Vec<crate::controller::MetadataRecord>, NodeError> {
    let path = config.metadata_log_dir.join(BOOTSTRAP_RECORDS_FILE);
    if !config.roles.controller || !disk.exists(&path) {
        return Ok(Vec::new());
    }
    let bad = |why: String| NodeError::Config(format!("{}: {why}", path.display()));
    let text = disk.read_file(&path).map_err(|e| bad(e.to_string()))?;
    String::from_utf8_lossy(&text)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let bytes = crate::security::scram::base64_decode(l)
                .ok_or_else(|| bad("a line that is not base64".into()))?;
            crate::controller::MetadataRecord::decode(&bytes).map_err(|e| bad(e.to_string()))
        })
        .collect()
}

/// The voters a node runs with: `controller.quorum.voters`, or else the set its storage was
/// formatted with.
fn with_bootstrap_voters(
    mut config: ServerConfig,
    disk: &Arc<dyn Disk>,
) -> Result<ServerConfig, NodeError> {
    if !config.voters.is_empty() {
        return Ok(config);
    }
    let path = config.metadata_log_dir.join(BOOTSTRAP_VOTERS_FILE);
    if !disk.exists(&path) {
        return Ok(config);
    }
    let text = disk
        .read_file(&path)
        .map_err(|e| NodeError::Config(format!("cannot read {}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&text);
    let props = crate::model::properties::Properties::parse(&text)
        .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
    config.voters = crate::model::config::parse_voters(props.get("voters").unwrap_or(""))
        .map_err(|e| NodeError::Config(format!("{}: {e}", path.display())))?;
    Ok(config)
}

/// A random id from the OS's entropy (cluster and directory ids of the real binary).
/// Never one whose text starts with '-' (a command line would read it as an option: Kafka's
/// `Uuid.randomUuid` skips those too) or the zero id.
pub fn random_uuid() -> Result<crate::model::Uuid, NodeError> {
    loop {
        let id = crate::model::Uuid::from_random(
            runtime::random_bytes_16().map_err(NodeError::Entropy)?,
        );
        if id != crate::model::Uuid::ZERO && !id.to_string().starts_with('-') {
            return Ok(id);
        }
    }
}

/// What a node takes from the world it runs in: the real one for `ketch server`, a simulated
/// one for `ketch-sim`.
pub struct NodeEnv {
    pub disk: Arc<dyn Disk>,
    pub clock: Clock,
    /// Seeds the cores' random choices (election timeouts, replica placement, member ids).
    pub seed: u64,
    /// Changes at every process start (BrokerRegistration's incarnation id).
    pub incarnation_id: uuid::Uuid,
    /// Sees the quorum member's status after every step, besides the node's own use of it.
    pub observer: Option<Observer>,
    /// Entries to propose to the metadata log directly (the simulator's workload); in the
    /// product only the controller proposes.
    pub proposals: Option<mpsc::Receiver<Proposal>>,
    pub quorum_bugs: QuorumBugs,
    /// Planted data-plane and controller bugs (the simulator's `--plant`); inert in releases.
    pub bugs: ClusterBugs,
}

impl NodeEnv {
    /// The real world: files through `std::fs`, the system clock, ids from the OS's entropy.
    pub fn real() -> Result<NodeEnv, NodeError> {
        let entropy = runtime::random_bytes_16().map_err(NodeError::Entropy)?;
        let seed = u64::from_le_bytes([
            entropy[0], entropy[1], entropy[2], entropy[3], entropy[4], entropy[5], entropy[6],
            entropy[7],
        ]);
        Ok(NodeEnv {
            disk: Arc::new(runtime::RealDisk),
            clock: Clock::system(),
            seed,
            incarnation_id: uuid::Uuid::from_bytes(
                runtime::random_bytes_16().map_err(NodeError::Entropy)?,
            ),
            observer: None,
            proposals: None,
            quorum_bugs: QuorumBugs::default(),
            bugs: ClusterBugs::default(),
        })
    }
}

/// The roles' rules: a controller is a voter with a controller listener; a broker-only node is
/// not a voter (it follows the metadata log as an observer). Returns the controller listener's
/// (host, port, name) for a controller.
pub fn check_roles(config: &ServerConfig) -> Result<Option<(String, u16, String)>, NodeError> {
    if config.voters.is_empty() {
        return Err(NodeError::Config(
            if config.quorum_bootstrap_servers.is_empty() {
                "controller.quorum.voters is not set: every node needs the voters, \
             id@host:port,... (e.g. controller.quorum.voters=1@localhost:9093)"
                    .into()
            } else if config.roles.controller {
                "controller.quorum.voters is not set and the storage was not formatted with \
             --standalone or --initial-controllers: format it so (ketch storage format \
             --standalone -t ID -c FILE), or set controller.quorum.voters"
                    .into()
            } else {
                "a broker-only node needs controller.quorum.voters (id@host:port,...): ketch's \
             quorum has a static voter set and does not discover it from \
             controller.quorum.bootstrap.servers"
                    .into()
            },
        ));
    }
    let voter = config.voters.contains_key(&config.node_id);
    if config.roles.controller {
        if !voter {
            return Err(NodeError::Config(format!(
                "node.id {} is not among controller.quorum.voters ({:?}): a controller must be a voter",
                config.node_id,
                config.voters.keys().map(|n| n.0).collect::<Vec<_>>()
            )));
        }
        let listener = config.controller_listener()?;
        Ok(Some((
            listener.host.clone(),
            listener.port,
            listener.name.clone(),
        )))
    } else if voter {
        Err(NodeError::Config(format!(
            "node.id {} is a voter in controller.quorum.voters but process.roles has no controller",
            config.node_id
        )))
    } else {
        Ok(None)
    }
}

/// The metadata log rolls at `metadata.log.segment.bytes`, so whole segments fall below each
/// snapshot and can go; other logs open with defaults and get their topic's config later.
fn log_config_at_open(tp: &TopicPartition, config: &ServerConfig) -> LogConfig {
    if tp.topic == METADATA_TOPIC {
        LogConfig {
            segment_bytes_max: config.metadata_log_segment_bytes,
            ..LogConfig::default()
        }
    } else {
        // Kafka partition logs may have offset gaps (compaction); the metadata log may not.
        LogConfig {
            offset_gaps_allowed: true,
            ..LogConfig::default()
        }
    }
}

/// What the log directories hold at start.
struct Storage {
    cluster_id: String,
    metadata_log: Log,
    data_dirs: Vec<LogDir>,
    data_logs: Vec<std::collections::BTreeMap<TopicPartition, Log>>,
}

/// Opens (recovering) every log directory; the metadata log is taken out of its directory.
fn open_storage(config: &ServerConfig, disk: &Arc<dyn Disk>) -> Result<Storage, NodeError> {
    let mut cluster_id: Option<String> = None;
    let mut metadata_log = None;
    let mut data_dirs = Vec::new();
    let mut data_logs = Vec::new();
    for dir in config.all_dirs() {
        let storage_error = |source| NodeError::Storage {
            path: dir.clone(),
            source,
        };
        let (log_dir, mut logs, notes) = LogDir::open(
            Arc::clone(disk),
            &dir,
            cluster_id.as_deref(),
            config.node_id,
            |tp| log_config_at_open(tp, config),
        )
        .map_err(storage_error)?;
        for n in notes {
            tracing::warn!("recovery: {n}");
        }
        cluster_id.get_or_insert_with(|| log_dir.meta().cluster_id.clone());
        if dir == config.metadata_log_dir {
            let tp = TopicPartition::new(METADATA_TOPIC, 0);
            metadata_log = Some(match logs.remove(&tp) {
                Some(log) => log,
                None => log_dir
                    .create_log(&tp, log_config_at_open(&tp, config))
                    .map_err(storage_error)?,
            });
        }
        if config.log_dirs.contains(&dir) {
            data_dirs.push(log_dir);
            data_logs.push(logs);
        }
    }
    match (cluster_id, metadata_log) {
        (Some(cluster_id), Some(metadata_log)) => Ok(Storage {
            cluster_id,
            metadata_log,
            data_dirs,
            data_logs,
        }),
        _ => Err(NodeError::NoMetadataLog),
    }
}

/// The broker's endpoints as the controller registers them: every advertised listener that is
/// not a controller listener.
fn broker_endpoints(config: &ServerConfig) -> Vec<Endpoint> {
    config
        .advertised_listeners
        .iter()
        .filter(|l| !config.controller_listener_names.contains(&l.name))
        .map(|l| Endpoint {
            name: l.name.clone(),
            host: if l.host.is_empty() {
                "localhost".into()
            } else {
                l.host.clone()
            },
            port: l.port,
        })
        .collect()
}

/// Each listener's security, by name: how it serves (TLS, SASL) and how this node connects to
/// it on other nodes. Every certificate file is read now: a listener whose certificates or
/// JAAS configuration do not load stops the start with what is wrong.
type Security = std::collections::BTreeMap<String, (ListenerSecurity, Connector)>;

fn load_security(config: &ServerConfig) -> Result<Security, NodeError> {
    let mut out = Security::new();
    for name in config.security_protocols.keys() {
        let secured = crate::wire::secure_listener(
            config.tls.get(name),
            config.sasl.get(name),
            config.connections_max_reauth_ms,
        )
        .map_err(NodeError::Config)?;
        out.insert(name.clone(), secured);
    }
    Ok(out)
}

/// How this node reaches listener `name` on other nodes.
fn connector_for(security: &Security, name: &str) -> Connector {
    security
        .get(name)
        .map(|(_, c)| c.clone())
        .unwrap_or_default()
}

/// How this node reaches the controllers (their listener: `controller.listener.names`' first).
fn controller_connector(config: &ServerConfig, security: &Security) -> Connector {
    config
        .controller_listener_names
        .first()
        .map_or_else(Connector::plain, |name| connector_for(security, name))
}

#[allow(clippy::too_many_arguments)]
fn build_broker(
    config: &ServerConfig,
    security: &Security,
    env: &NodeEnv,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    cluster_id: &str,
    storage: (
        Vec<LogDir>,
        Vec<std::collections::BTreeMap<TopicPartition, Log>>,
    ),
    image: watch::Receiver<Arc<MetadataImage>>,
    leader_hint: Arc<AtomicI32>,
) -> Broker {
    let base = LogConfig {
        segment_bytes_max: config.log_segment_bytes,
        retention_ms: config.log_retention_ms,
        retention_bytes: config.log_retention_bytes,
        max_batch_bytes: config.message_max_bytes,
        flush: flush_policy(
            config.log_flush_interval_messages,
            config.log_flush_interval_ms.unwrap_or(u64::MAX),
        ),
        offset_gaps_allowed: true,
        cleanup: crate::log::CleanupPolicy::parse(&config.cleaner.cleanup_policy)
            .unwrap_or(crate::log::CleanupPolicy::DELETE),
        min_cleanable_dirty_ratio_ppm: config.cleaner.min_cleanable_ratio_ppm,
        min_compaction_lag_ms: config.cleaner.min_compaction_lag_ms,
        max_compaction_lag_ms: config.cleaner.max_compaction_lag_ms,
        delete_retention_ms: config.cleaner.delete_retention_ms,
        ..LogConfig::default()
    };
    let replica = ReplicaConfig {
        min_insync_replicas: usize::try_from(config.min_insync_replicas).unwrap_or(1),
        replica_lag_time_max_ms: config.replica_lag_time_max_ms,
        unclean_leader_election: config.unclean_leader_election,
    };
    let partitions = Arc::new(Partitions::new(
        config.node_id.0,
        env.incarnation_id.to_string(),
        Arc::clone(&env.disk),
        storage.0,
        storage.1,
        LogDefaults {
            node_id: config.node_id.0,
            base,
            replica,
            bugs: env.bugs,
        },
        env.clock.clone(),
    ));
    let client_listeners = config
        .listeners
        .iter()
        .filter(|l| !config.controller_listener_names.contains(&l.name))
        .cloned()
        .collect();
    Broker::new(
        BrokerConfig {
            node_id: config.node_id.0,
            cluster_id: cluster_id.to_string(),
            listeners: client_listeners,
            auto_create_topics: config.auto_create_topics,
            socket_request_max_bytes: config.socket_request_max_bytes,
            max_connections: config.max_connections,
            log_retention_check_interval_ms: config.log_retention_check_interval_ms,
            log_flush_interval_ms: config.log_flush_interval_ms,
            offsets_topic_replication_factor: config.offsets_topic_replication_factor,
            transaction_state_replication_factor: config.transaction_state_replication_factor,
            transaction_state_min_isr: config.transaction_state_min_isr,
            transaction_abort_check_interval_ms: config.transaction_abort_check_interval_ms,
            transaction_verification: config.transaction_partition_verification_enable,
            inter_broker_listener_name: config.inter_broker_listener_name.clone(),
            listener_security: security
                .iter()
                .map(|(name, (l, _))| (name.clone(), l.clone()))
                .collect(),
            inter_broker: connector_for(security, &config.inter_broker_listener_name),
            authorizer: config
                .authorizer
                .then(|| crate::security::acl::AuthorizerConfig {
                    super_users: config.super_users.clone(),
                    allow_if_no_acl: config.allow_everyone_if_no_acl_found,
                }),
            log_dirs: config.log_dirs.clone(),
            described: config.described(),
            cleaner: config.cleaner.clone(),
            bugs: env.bugs,
        },
        image,
        partitions,
        ControllerClient::new(
            config.voters.clone(),
            leader_hint,
            config.node_id,
            controller_connector(config, security),
        ),
        env.clock.clone(),
        Groups::new(
            GroupConfig {
                min_session_timeout_ms: config.group_min_session_timeout_ms,
                max_session_timeout_ms: config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            },
            config.offsets_topic_num_partitions,
            env.seed ^ 0x6752_0055,
        ),
        crate::broker::transactions::Transactions::new(
            crate::group::transactions::TxnConfig {
                max_timeout_ms: config.transaction_max_timeout_ms,
            },
            config.transaction_state_num_partitions,
        ),
        metrics,
    )
}

/// The node's gauges for one scrape: the broker's (partitions, logs, groups) and the quorum
/// member's as its last status reported; the controller's only on the active controller, as
/// Kafka reports them.
fn node_samples(
    broker: Option<Arc<Broker>>,
    status: Arc<Mutex<Option<QuorumStatus>>>,
    image: watch::Receiver<Arc<MetadataImage>>,
    is_controller: bool,
) -> crate::metrics::Collect {
    use crate::metrics::{Sample, G};
    Arc::new(move || {
        let broker = broker.clone();
        let status = status.lock().ok().and_then(|s| s.clone());
        let image = Arc::clone(&image.borrow());
        Box::pin(async move {
            let mut out = match &broker {
                Some(b) => crate::broker::stats::samples(b).await,
                None => Vec::new(),
            };
            let active = status
                .as_ref()
                .is_some_and(|s| is_controller && s.role == crate::quorum::Role::Leader);
            if let Some(s) = &status {
                let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
                out.push(Sample::new(
                    G::RaftCurrentLeader,
                    &[],
                    s.leader.map_or(-1, |n| i64::from(n.0)),
                ));
                out.push(Sample::new(G::RaftCurrentEpoch, &[], i64::from(s.epoch)));
                out.push(Sample::new(
                    G::RaftHighWatermark,
                    &[],
                    as_i64(s.high_watermark),
                ));
                out.push(Sample::new(G::RaftLogEndOffset, &[], as_i64(s.log_end)));
                let state = match s.role {
                    crate::quorum::Role::Leader => "leader",
                    crate::quorum::Role::Follower if is_controller => "follower",
                    crate::quorum::Role::Follower => "observer",
                    crate::quorum::Role::Candidate => "candidate",
                    crate::quorum::Role::Prospective => "prospective",
                    crate::quorum::Role::Unattached => "unattached",
                };
                out.push(Sample::new(G::RaftCurrentState, &[("state", state)], 1));
            }
            if is_controller {
                out.push(Sample::new(
                    G::ActiveControllerCount,
                    &[],
                    i64::from(active),
                ));
            }
            if active {
                let partitions = image.topics.values().flat_map(|t| t.partitions.values());
                let offline = partitions.clone().filter(|p| p.leader < 0).count();
                out.push(Sample::new(G::OfflinePartitionsCount, &[], offline as i64));
                out.push(Sample::new(
                    G::GlobalTopicCount,
                    &[],
                    image.topics.len() as i64,
                ));
                out.push(Sample::new(
                    G::GlobalPartitionCount,
                    &[],
                    partitions.count() as i64,
                ));
                let fenced = image.brokers.values().filter(|b| b.fenced).count();
                out.push(Sample::new(G::FencedBrokerCount, &[], fenced as i64));
                out.push(Sample::new(
                    G::ActiveBrokerCount,
                    &[],
                    (image.brokers.len() - fenced) as i64,
                ));
            }
            out
        })
    })
}

/// Runs a node until `shutdown` completes (then stops cleanly) or a part of it fails.
pub async fn run(
    config: ServerConfig,
    mut env: NodeEnv,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), NodeError> {
    let config = with_bootstrap_voters(config, &env.disk)?;
    let controller_listener = check_roles(&config)?;
    let security = load_security(&config)?;
    let storage = open_storage(&config, &env.disk)?;
    let cluster_id = storage.cluster_id.clone();
    // What the quorum member tells the broker: how far it replayed the metadata log (for
    // heartbeats), who leads the quorum (a hint for the controller client), and the committed
    // image (published by the member, followed by the broker).
    let metadata_offset = Arc::new(AtomicI64::new(-1));
    let leader_hint = Arc::new(AtomicI32::new(-1));
    let (image_tx, image_rx) = watch::channel(Arc::new(MetadataImage::new()));
    let lifecycle = config.roles.broker.then(|| LifecycleConfig {
        node_id: config.node_id,
        cluster_id: cluster_id.clone(),
        voters: config.voters.clone(),
        endpoints: broker_endpoints(&config),
        heartbeat_interval_ms: config.broker_heartbeat_interval_ms,
        incarnation_id: env.incarnation_id,
        connector: controller_connector(&config, &security),
    });
    let metrics = config
        .metrics_listener
        .as_ref()
        .map(|_| crate::metrics::Metrics::new(env.clock.clone()));
    let broker = config.roles.broker.then(|| {
        Arc::new(build_broker(
            &config,
            &security,
            &env,
            metrics.clone(),
            &cluster_id,
            (storage.data_dirs, storage.data_logs),
            image_rx.clone(),
            Arc::clone(&leader_hint),
        ))
    });
    let outer_observer = env.observer.take();
    let last_status = Arc::new(Mutex::new(None::<QuorumStatus>));
    let observer: Observer = {
        let offset = Arc::clone(&metadata_offset);
        let leader = Arc::clone(&leader_hint);
        let last = metrics.as_ref().map(|_| Arc::clone(&last_status));
        let metrics = metrics.clone();
        Arc::new(move |s: &QuorumStatus| {
            offset.store(s.metadata_offset, Ordering::Relaxed);
            leader.store(s.leader.map_or(-1, |n| n.0), Ordering::Relaxed);
            if let Some(last) = &last {
                if let Ok(mut l) = last.lock() {
                    *l = Some(s.clone());
                }
            }
            if let Some(m) = &metrics {
                m.quorum_step(
                    s.role == crate::quorum::Role::Leader,
                    s.epoch,
                    s.log_end,
                    s.high_watermark,
                    s.step_started_ms,
                );
            }
            if let Some(o) = &outer_observer {
                o(s);
            }
        })
    };
    let (listen, listener_name) = match controller_listener {
        Some((host, port, name)) => (Some((host, port)), name),
        None => (None, String::new()),
    };
    let bootstrap_records = read_bootstrap_records(&env.disk, &config)?;
    let quorum_config = QuorumConfig {
        bootstrap_records,
        authorizer: config
            .authorizer
            .then(|| crate::security::acl::AuthorizerConfig {
                super_users: config.super_users.clone(),
                allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            }),
        node_id: config.node_id,
        cluster_id,
        voters: config.voters.clone(),
        listener_security: security
            .get(&listener_name)
            .map(|(l, _)| l.clone())
            .unwrap_or_default(),
        connector: controller_connector(&config, &security),
        listen,
        listener_name,
        max_connections: config.max_connections,
        metadata_dir: config.metadata_log_dir.join(METADATA_LOG_DIR_NAME),
        election_timeout_ms: config.election_timeout_ms,
        fetch_timeout_ms: config.fetch_timeout_ms,
        snapshot_interval_bytes: config.metadata_snapshot_interval_bytes,
        snapshot_interval_ms: config.metadata_snapshot_interval_ms,
        controller: ControllerConfig {
            session_timeout_ms: config.broker_session_timeout_ms,
            default_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
            unclean_leader_election: config.unclean_leader_election,
            auto_leader_rebalance: config.auto_leader_rebalance,
            leader_imbalance_check_interval_ms: config.leader_imbalance_check_interval_ms,
            leader_imbalance_per_broker_percentage: config.leader_imbalance_per_broker_percentage,
            colocated_broker: config
                .roles
                .broker
                .then(|| (config.node_id.0, env.incarnation_id.to_string())),
            bugs: env.bugs,
        },
        observer: Some(observer),
        image: Some(image_tx),
        bugs: env.quorum_bugs,
    };
    // Without a workload of its own, nothing but the controller proposes; the sender is kept
    // so the member's proposal channel stays open.
    let (_proposer, own_proposals) = quorum::proposal_channel();
    let proposals = env.proposals.take().unwrap_or(own_proposals);

    // The scrape endpoint lives as long as the node; it binds before anything serves, so a
    // port in use stops the start with a clear error.
    let metrics_task = match (&config.metrics_listener, &metrics) {
        (Some((host, port)), Some(m)) => {
            let (listener, addr) = crate::wire::bind(host, *port).await.map_err(|e| {
                NodeError::Config(format!("metrics.listener {host}:{port}: cannot bind: {e}"))
            })?;
            tracing::info!(%addr, "metrics listener ready: GET /metrics");
            let collect = node_samples(
                broker.clone(),
                Arc::clone(&last_status),
                image_rx.clone(),
                config.roles.controller,
            );
            Some(runtime::spawn(crate::metrics::serve(
                listener,
                Arc::clone(m),
                collect,
            )))
        }
        _ => None,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    runtime::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // A broker registers with the active controller and heartbeats for as long as it runs.
    let lifecycle_task = lifecycle
        .clone()
        .map(|l| runtime::spawn(lifecycle::run(l, Arc::clone(&metadata_offset))));
    let broker_task =
        broker.map(|b| runtime::spawn(crate::broker::server::run(b, stopped(stop_rx.clone()))));
    // The broker ending (a stop, or a failure such as a listener that cannot bind) ends the
    // quorum member too, after a controlled shutdown.
    let broker_failure = Arc::new(Mutex::new(None::<NodeError>));
    let quorum_stop = {
        let failure = Arc::clone(&broker_failure);
        let node_id = config.node_id.0;
        async move {
            let outcome = match broker_task {
                Some(task) => match task.await {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(NodeError::Broker(e)),
                    Err(e) => Some(NodeError::BrokerTask(e.to_string())),
                },
                None => {
                    stopped(stop_rx).await;
                    None
                }
            };
            if let Some(task) = lifecycle_task {
                task.abort();
            }
            // Then ask the controller (still running, if it is this node) to fence us and move
            // our leaderships now.
            let epoch = image_rx
                .borrow()
                .brokers
                .get(&node_id)
                .map(|b| b.broker_epoch);
            if let (Some(l), Some(epoch)) = (&lifecycle, epoch) {
                lifecycle::controlled_shutdown(l, epoch, Duration::from_secs(3)).await;
            }
            if let Ok(mut f) = failure.lock() {
                *f = outcome;
            }
        }
    };
    let result = quorum::run(
        quorum_config,
        Arc::clone(&env.disk),
        storage.metadata_log,
        env.clock.clone(),
        env.seed,
        proposals,
        quorum_stop,
    )
    .await;
    if let Some(task) = metrics_task {
        task.abort();
    }
    let failure = broker_failure.lock().ok().and_then(|mut f| f.take());
    match (result, failure) {
        (Err(e), _) => Err(e.into()),
        (Ok(()), Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
    }
}
