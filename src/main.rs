//! The `ketch` command line: storage formatting, the zero-config dev node and benchmarks.

use clap::{Args, Parser, Subcommand};
use ketch::log::{LogConfig, LogDir, MetaProperties};
use ketch::model::config::ServerConfig;
use ketch::model::{NodeId, Uuid};
use ketch::runtime::{self, Disk, RealDisk};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "ketch",
    version,
    about = "A Kafka-compatible event-streaming broker with a Raft metadata quorum"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Storage tools, as Kafka's kafka-storage.sh.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// One combined node with zero configuration, data in ./ketch-data.
    Dev(DevArgs),
    /// Runs a node from its server.properties (today: a controller, i.e. a quorum member).
    Server {
        /// The node's server.properties.
        config: PathBuf,
    },
    /// Inspects the metadata quorum, as Kafka's kafka-metadata-quorum.sh.
    MetadataQuorum {
        /// A controller's host:port (the controller listener).
        #[arg(long, alias = "bootstrap-controller")]
        bootstrap_server: String,
        #[command(subcommand)]
        command: QuorumCommand,
    },
    /// Lists, describes, creates, deletes and grows topics, as Kafka's kafka-topics.sh.
    Topics(TopicsArgs),
    /// Writes lines from stdin to a topic, as Kafka's kafka-console-producer.sh.
    ConsoleProducer(ConsoleProducerArgs),
    /// Prints a topic's records, as Kafka's kafka-console-consumer.sh.
    ConsoleConsumer(ConsoleConsumerArgs),
    /// Lists, describes and resets consumer groups, as Kafka's kafka-consumer-groups.sh.
    ConsumerGroups(ConsumerGroupsArgs),
    /// Benchmarks (measurements, not tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Args)]
struct TopicsArgs {
    /// Brokers, host:port of their client listeners, comma-separated.
    #[arg(long, required_unless_present = "bootstrap_controller")]
    bootstrap_server: Option<String>,
    /// Or the controllers, host:port of their controller listeners (create, delete, alter).
    #[arg(long, conflicts_with = "bootstrap_server")]
    bootstrap_controller: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    #[arg(long, conflicts_with_all = ["delete", "alter", "list", "describe"])]
    create: bool,
    #[arg(long, conflicts_with_all = ["alter", "list", "describe"])]
    delete: bool,
    #[arg(long, conflicts_with_all = ["list", "describe"])]
    alter: bool,
    #[arg(long, conflicts_with = "describe")]
    list: bool,
    #[arg(long)]
    describe: bool,
    /// Partitions (create: default `num.partitions`; alter: the new total).
    #[arg(long)]
    partitions: Option<i32>,
    /// Replicas per partition (default `default.replication.factor`).
    #[arg(long)]
    replication_factor: Option<i16>,
    /// Topic configs, key=value (repeatable).
    #[arg(long = "config")]
    configs: Vec<String>,
}

#[derive(Args)]
struct ConsoleProducerArgs {
    #[arg(long)]
    bootstrap_server: String,
    #[arg(long)]
    topic: String,
    /// Split each line into key and value at the first occurrence of this separator.
    #[arg(long)]
    key_separator: Option<String>,
    /// Kafka-style properties: parse.key=true, key.separator=SEP, acks=N.
    #[arg(long = "property")]
    properties: Vec<String>,
    /// 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    acks: i16,
}

#[derive(Args)]
struct ConsoleConsumerArgs {
    #[arg(long)]
    bootstrap_server: String,
    #[arg(long)]
    topic: String,
    #[arg(long)]
    from_beginning: bool,
    /// Start at this group's committed offsets and commit as records are printed.
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    max_messages: Option<usize>,
    /// Stop after this long without a record.
    #[arg(long)]
    timeout_ms: Option<u64>,
    /// Kafka-style properties: print.key=true.
    #[arg(long = "property")]
    properties: Vec<String>,
}

#[derive(Args)]
struct ConsumerGroupsArgs {
    #[arg(long)]
    bootstrap_server: String,
    #[arg(long, conflicts_with_all = ["describe", "reset_offsets"])]
    list: bool,
    #[arg(long, requires = "group")]
    describe: bool,
    #[arg(long, requires_all = ["group", "topic"])]
    reset_offsets: bool,
    #[arg(long)]
    group: Option<String>,
    #[arg(long)]
    topic: Option<String>,
    #[arg(long)]
    to_earliest: bool,
    #[arg(long)]
    to_latest: bool,
    #[arg(long)]
    to_offset: Option<i64>,
    /// Without it, --reset-offsets only shows what it would do.
    #[arg(long)]
    execute: bool,
}

#[derive(Subcommand)]
enum QuorumCommand {
    /// Describes the quorum.
    Describe {
        /// Leader, epoch, high watermark, voters and observers.
        #[arg(long)]
        status: bool,
        /// Each replica's log end offset and lag.
        #[arg(long)]
        replication: bool,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Prints a new random cluster id.
    RandomUuid,
    /// Formats the log directories of a node (writes meta.properties).
    Format {
        /// The cluster id (from `ketch storage random-uuid`).
        #[arg(short = 't', long = "cluster-id")]
        cluster_id: String,
        /// The node's server.properties.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Leave already formatted directories as they are instead of failing.
        #[arg(short = 'g', long = "ignore-formatted")]
        ignore_formatted: bool,
    },
}

#[derive(Args)]
struct DevArgs {
    /// Where the data lives.
    #[arg(long, default_value = "ketch-data")]
    data_dir: PathBuf,
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Log append throughput, without fsync and with group-commit fsync, beside raw writes.
    LogAppend {
        #[arg(long, default_value = "ketch-bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1024)]
        total_mib: u64,
        #[arg(long, default_value_t = 64)]
        fsync_total_mib: u64,
        #[arg(long, default_value_t = 16)]
        records_per_batch: usize,
        #[arg(long, default_value_t = 1024)]
        record_bytes: usize,
        #[arg(long, default_value_t = 32)]
        producers: usize,
    },
    /// A 3-member quorum on loopback in one process: first leader, commit latency, failover.
    Quorum {
        #[arg(long, default_value = "ketch-bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 2000)]
        proposals: usize,
    },
    /// Producer throughput and latency against a running broker (kafka-producer-perf-test).
    Produce {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        #[arg(long, default_value = "perf")]
        topic: String,
        #[arg(long, default_value_t = 1_000_000)]
        num_records: u64,
        #[arg(long, default_value_t = 1024)]
        record_size: usize,
        /// Records per batch (one batch per request).
        #[arg(long, default_value_t = 64)]
        batch_records: usize,
        #[arg(long, default_value_t = 1, allow_hyphen_values = true)]
        acks: i16,
        /// Concurrent connections, one request in flight on each.
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// Consumer throughput against a running broker (kafka-consumer-perf-test).
    Consume {
        #[arg(long, default_value = "127.0.0.1:9092")]
        bootstrap_server: String,
        #[arg(long, default_value = "perf")]
        topic: String,
        #[arg(long, default_value_t = 1_000_000)]
        num_records: u64,
        #[arg(long, default_value_t = 16 << 20)]
        fetch_max_bytes: i32,
    },
    /// Metadata commit latency as a client sees it: topics created and deleted one at a time
    /// through the active controller of a running cluster.
    Topics {
        /// Every controller, comma-separated (host:port of each CONTROLLER listener).
        #[arg(long, default_value = "127.0.0.1:9093")]
        bootstrap_controller: String,
        #[arg(long, default_value_t = 1000)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
        #[arg(long, default_value_t = 1)]
        replication_factor: i16,
    },
    /// Log recovery time after a clean shutdown and after crashes with unflushed tails.
    LogRecovery {
        #[arg(long, default_value = "ketch-bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 1024)]
        size_mib: u64,
        #[arg(long, default_value_t = 1024)]
        segment_mib: u64,
    },
}

fn format_storage(
    cluster_id: &str,
    config_path: &Path,
    ignore_formatted: bool,
) -> Result<(), String> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let text = disk
        .read_file(config_path)
        .map_err(|e| format!("cannot read {}: {e}", config_path.display()))?;
    let text =
        String::from_utf8(text).map_err(|_| format!("{} is not UTF-8", config_path.display()))?;
    let (config, warnings) =
        ServerConfig::parse(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    for w in warnings {
        tracing::warn!("{}: {w}", config_path.display());
    }
    if cluster_id.trim().is_empty() {
        return Err(
            "the cluster id must not be empty (make one with 'ketch storage random-uuid')".into(),
        );
    }
    for dir in config.all_dirs() {
        let meta = MetaProperties {
            cluster_id: cluster_id.to_string(),
            node_id: config.node_id,
            directory_id: Uuid::from_random(runtime::random_bytes_16().map_err(|e| e.to_string())?),
        };
        match LogDir::format(Arc::clone(&disk), &dir, &meta, ignore_formatted) {
            Ok(true) => println!(
                "Formatting {} with cluster.id {cluster_id} and node.id {}",
                dir.display(),
                config.node_id
            ),
            Ok(false) => println!("{} is already formatted; left as it is", dir.display()),
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(())
}

/// `ketch dev`: one combined node with zero configuration: Kafka clients on 127.0.0.1:9092,
/// the quorum's controller listener on 127.0.0.1:9093, data in `--data-dir` (formatted on first
/// start).
fn dev(args: DevArgs) -> Result<(), String> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let dir = args.data_dir;
    let text = format!(
        "process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:9093\n\
         listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
         controller.listener.names=CONTROLLER\nlog.dirs={}\nbroker.heartbeat.interval.ms=500\n\
         group.initial.rebalance.delay.ms=0\noffsets.topic.replication.factor=1\n",
        dir.display()
    );
    let (config, _) = ServerConfig::parse(&text).map_err(|e| e.to_string())?;
    if !disk.exists(&dir.join(ketch::log::META_PROPERTIES)) {
        let meta = MetaProperties {
            cluster_id: Uuid::from_random(runtime::random_bytes_16().map_err(|e| e.to_string())?)
                .to_string(),
            node_id: NodeId(1),
            directory_id: Uuid::from_random(runtime::random_bytes_16().map_err(|e| e.to_string())?),
        };
        LogDir::format(Arc::clone(&disk), &dir, &meta, false).map_err(|e| e.to_string())?;
        println!(
            "formatted {} (cluster.id {})",
            dir.display(),
            meta.cluster_id
        );
    }
    println!(
        "ketch dev: one combined node, data in {}. Kafka clients: 127.0.0.1:9092 \
         (try: kcat -b 127.0.0.1:9092 -L). Ctrl-C stops.",
        dir.display()
    );
    run_server(config)
}

fn topics(args: TopicsArgs) -> Result<(), String> {
    use ketch::cli::TopicsAction;
    let bootstrap = args
        .bootstrap_server
        .clone()
        .or(args.bootstrap_controller.clone())
        .ok_or("--bootstrap-server is needed")?;
    if args.list || args.describe {
        let server = args
            .bootstrap_server
            .as_deref()
            .ok_or("--list and --describe need --bootstrap-server (a broker)")?;
        return if args.list {
            ketch::cli::list_topics(server)
        } else {
            ketch::cli::describe_topics(server, args.topic.as_deref())
        };
    }
    let topic = args.topic.clone().ok_or("--topic is needed")?;
    let action = if args.create {
        let mut configs = Vec::new();
        for c in &args.configs {
            let (k, v) = c
                .split_once('=')
                .ok_or_else(|| format!("--config takes key=value, not '{c}'"))?;
            configs.push((k.to_string(), v.to_string()));
        }
        TopicsAction::Create {
            partitions: args.partitions.unwrap_or(-1),
            replication_factor: args.replication_factor.unwrap_or(-1),
            configs,
        }
    } else if args.delete {
        TopicsAction::Delete
    } else if args.alter {
        TopicsAction::Alter {
            partitions: args.partitions.ok_or("--alter needs --partitions")?,
        }
    } else {
        return Err("one of --create, --delete, --alter, --list or --describe is needed".into());
    };
    ketch::cli::topics(&bootstrap, &topic, action)
}

fn property<'a>(properties: &'a [String], key: &str) -> Option<&'a str> {
    properties
        .iter()
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v)
}

fn console_producer(args: ConsoleProducerArgs) -> Result<(), String> {
    let parse_key = property(&args.properties, "parse.key") == Some("true");
    let key_separator = args.key_separator.clone().or_else(|| {
        parse_key.then(|| {
            property(&args.properties, "key.separator")
                .unwrap_or("\t")
                .to_string()
        })
    });
    let acks = match property(&args.properties, "acks") {
        Some("all") => -1,
        Some(v) => v
            .parse()
            .map_err(|_| format!("acks={v}: expected 0, 1, -1 or all"))?,
        None => args.acks,
    };
    ketch::cli::console::produce(ketch::cli::console::ProducerOptions {
        bootstrap: args.bootstrap_server,
        topic: args.topic,
        key_separator,
        acks,
    })
}

fn console_consumer(args: ConsoleConsumerArgs) -> Result<(), String> {
    ketch::cli::console::consume(ketch::cli::console::ConsumerOptions {
        print_key: property(&args.properties, "print.key") == Some("true"),
        bootstrap: args.bootstrap_server,
        topic: args.topic,
        from_beginning: args.from_beginning,
        group: args.group,
        max_messages: args.max_messages,
        timeout_ms: args.timeout_ms,
    })
}

fn consumer_groups(args: ConsumerGroupsArgs) -> Result<(), String> {
    use ketch::cli::groups::{GroupsAction, ResetTo};
    let action = if args.list {
        GroupsAction::List
    } else if args.describe {
        GroupsAction::Describe {
            group: args.group.ok_or("--describe needs --group")?,
        }
    } else if args.reset_offsets {
        let to = match (args.to_earliest, args.to_latest, args.to_offset) {
            (true, false, None) => ResetTo::Earliest,
            (false, true, None) => ResetTo::Latest,
            (false, false, Some(n)) => ResetTo::Offset(n),
            _ => {
                return Err(
                    "--reset-offsets needs one of --to-earliest, --to-latest, --to-offset N".into(),
                )
            }
        };
        GroupsAction::Reset {
            group: args.group.ok_or("--reset-offsets needs --group")?,
            topic: args.topic.ok_or("--reset-offsets needs --topic")?,
            to,
            execute: args.execute,
        }
    } else {
        return Err("one of --list, --describe or --reset-offsets is needed".into());
    };
    ketch::cli::groups::run(&args.bootstrap_server, action)
}

fn read_config(path: &Path) -> Result<ServerConfig, String> {
    let disk = RealDisk;
    let text = disk
        .read_file(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = String::from_utf8(text).map_err(|_| format!("{} is not UTF-8", path.display()))?;
    let (config, warnings) =
        ServerConfig::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for w in warnings {
        tracing::warn!("{}: {w}", path.display());
    }
    Ok(config)
}

fn server(config_path: &Path) -> Result<(), String> {
    run_server(read_config(config_path)?)
}

/// The metadata log rolls at `metadata.log.segment.bytes`, so whole segments fall below each
/// snapshot and can go; other logs open with defaults and get their topic's config later.
fn metadata_log_config(tp: &ketch::model::TopicPartition, config: &ServerConfig) -> LogConfig {
    if tp.topic == ketch::broker::raft_wire::METADATA_TOPIC {
        LogConfig {
            segment_bytes_max: config.metadata_log_segment_bytes,
            ..LogConfig::default()
        }
    } else {
        LogConfig::default()
    }
}

fn run_server(config: ServerConfig) -> Result<(), String> {
    if config.voters.is_empty() {
        return Err(
            "controller.quorum.voters is empty: every node needs the voters, id@host:port,..."
                .into(),
        );
    }
    let voter = config.voters.contains_key(&config.node_id);
    let listen = if config.roles.controller {
        if !voter {
            return Err(format!(
                "node.id {} is not among controller.quorum.voters ({:?}): a controller must be a voter",
                config.node_id,
                config.voters.keys().map(|n| n.0).collect::<Vec<_>>()
            ));
        }
        let listener = config.controller_listener().map_err(|e| e.to_string())?;
        Some((listener.host.clone(), listener.port))
    } else {
        if voter {
            return Err(format!(
                "node.id {} is a voter in controller.quorum.voters but process.roles has no controller",
                config.node_id
            ));
        }
        // A broker-only node follows the metadata log as an observer. (Serving clients is the
        // broker's next step.)
        None
    };
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let mut cluster_id: Option<String> = None;
    let mut metadata_log = None;
    let mut data_dirs = Vec::new();
    let mut data_logs = Vec::new();
    for dir in config.all_dirs() {
        let (log_dir, mut logs, notes) = LogDir::open(
            Arc::clone(&disk),
            &dir,
            cluster_id.as_deref(),
            config.node_id,
            |tp| metadata_log_config(tp, &config),
        )
        .map_err(|e| e.to_string())?;
        for n in notes {
            tracing::warn!("recovery: {n}");
        }
        cluster_id.get_or_insert_with(|| log_dir.meta().cluster_id.clone());
        if dir == config.metadata_log_dir {
            let tp = ketch::model::TopicPartition::new(ketch::broker::raft_wire::METADATA_TOPIC, 0);
            metadata_log = Some(match logs.remove(&tp) {
                Some(log) => log,
                None => log_dir
                    .create_log(&tp, metadata_log_config(&tp, &config))
                    .map_err(|e| e.to_string())?,
            });
        }
        if config.log_dirs.contains(&dir) {
            data_dirs.push(log_dir);
            data_logs.push(logs);
        }
    }
    let (Some(cluster_id), Some(log)) = (cluster_id, metadata_log) else {
        return Err("no metadata log directory".into());
    };
    let metadata_offset = Arc::new(std::sync::atomic::AtomicI64::new(-1));
    let lifecycle = if config.roles.broker {
        let endpoints: Vec<ketch::controller::Endpoint> = config
            .advertised_listeners
            .iter()
            .filter(|l| !config.controller_listener_names.contains(&l.name))
            .map(|l| ketch::controller::Endpoint {
                name: l.name.clone(),
                host: if l.host.is_empty() {
                    "localhost".into()
                } else {
                    l.host.clone()
                },
                port: l.port,
            })
            .collect();
        Some(ketch::broker::lifecycle::LifecycleConfig {
            node_id: config.node_id,
            cluster_id: cluster_id.clone(),
            voters: config.voters.clone(),
            endpoints,
            heartbeat_interval_ms: config.broker_heartbeat_interval_ms,
            incarnation_id: uuid::Uuid::from_bytes(
                runtime::random_bytes_16().map_err(|e| e.to_string())?,
            ),
        })
    } else {
        None
    };
    let leader_hint = Arc::new(std::sync::atomic::AtomicI32::new(-1));
    let (image_tx, image_rx) =
        tokio::sync::watch::channel(Arc::new(ketch::controller::MetadataImage::new()));
    let image_watch_rx = image_rx.clone();
    let broker = if config.roles.broker {
        let base = LogConfig {
            segment_bytes_max: config.log_segment_bytes,
            retention_ms: config.log_retention_ms,
            retention_bytes: config.log_retention_bytes,
            max_batch_bytes: config.message_max_bytes,
            ..LogConfig::default()
        };
        let partitions = Arc::new(ketch::broker::partitions::Partitions::new(
            config.node_id.0,
            Arc::clone(&disk),
            data_dirs,
            data_logs,
            ketch::broker::partitions::LogDefaults { base },
        ));
        let client_listeners = config
            .listeners
            .iter()
            .filter(|l| !config.controller_listener_names.contains(&l.name))
            .cloned()
            .collect();
        Some(Arc::new(ketch::broker::client_server::Broker::new(
            ketch::broker::client_server::BrokerConfig {
                node_id: config.node_id.0,
                cluster_id: cluster_id.clone(),
                listeners: client_listeners,
                auto_create_topics: config.auto_create_topics,
                socket_request_max_bytes: config.socket_request_max_bytes,
                max_connections: config.max_connections,
                log_retention_check_interval_ms: config.log_retention_check_interval_ms,
                log_flush_interval_ms: config.log_flush_interval_ms,
                offsets_topic_replication_factor: config.offsets_topic_replication_factor,
                described: config.described(),
            },
            image_rx,
            partitions,
            ketch::broker::controller_client::ControllerClient::new(
                config.voters.clone(),
                Arc::clone(&leader_hint),
                config.node_id,
            ),
            runtime::Clock::system(),
            ketch::broker::groups::Groups::new(
                ketch::group::GroupConfig {
                    min_session_timeout_ms: config.group_min_session_timeout_ms,
                    max_session_timeout_ms: config.group_max_session_timeout_ms,
                    initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
                },
                config.offsets_topic_num_partitions,
                u64::from_le_bytes(
                    runtime::random_bytes_16().map_err(|e| e.to_string())?[..8]
                        .try_into()
                        .unwrap_or([0; 8]),
                ),
            ),
        )))
    } else {
        None
    };
    let seed_bytes = runtime::random_bytes_16().map_err(|e| e.to_string())?;
    let seed = u64::from_le_bytes(seed_bytes[..8].try_into().unwrap_or([0; 8]));
    let quorum = ketch::broker::quorum_server::QuorumConfig {
        node_id: config.node_id,
        cluster_id,
        voters: config.voters.clone(),
        listen,
        metadata_dir: config
            .metadata_log_dir
            .join(ketch::broker::raft_storage::METADATA_LOG_DIR_NAME),
        election_timeout_ms: config.election_timeout_ms,
        fetch_timeout_ms: config.fetch_timeout_ms,
        snapshot_interval_bytes: config.metadata_snapshot_interval_bytes,
        snapshot_interval_ms: config.metadata_snapshot_interval_ms,
        controller: ketch::controller::ControllerConfig {
            session_timeout_ms: config.broker_session_timeout_ms,
            default_partitions: config.num_partitions,
            default_replication_factor: config.default_replication_factor,
        },
        observer: Some(Arc::new({
            let offset = Arc::clone(&metadata_offset);
            let leader = Arc::clone(&leader_hint);
            move |s: &ketch::broker::quorum_server::QuorumStatus| {
                offset.store(s.metadata_offset, std::sync::atomic::Ordering::Relaxed);
                leader.store(
                    s.leader.map_or(-1, |n| n.0),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
        })),
        image: Some(image_tx),
        bugs: Default::default(),
    };
    let image_watch = image_watch_rx;
    let node_id = config.node_id.0;
    // Entries are proposed by the controller inside the quorum member; nothing else proposes.
    let (_proposer, proposals) = ketch::broker::quorum_server::proposal_channel();
    runtime::block_on(async move {
        // SIGINT or SIGTERM: the broker stops first (its logs flushed and checkpointed), then
        // the quorum member.
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        runtime::spawn(async move {
            runtime::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        // A broker registers with the active controller and heartbeats for as long as it runs.
        let lifecycle_task = lifecycle.clone().map(|l| {
            runtime::spawn(ketch::broker::lifecycle::run(
                l,
                Arc::clone(&metadata_offset),
            ))
        });
        let broker_task = broker.map(|b| {
            runtime::spawn(ketch::broker::client_server::run(
                b,
                stopped(stop_rx.clone()),
            ))
        });
        // The broker ending (a stop, or a failure such as a listener that cannot bind) ends
        // the quorum member too.
        let broker_failure = Arc::new(std::sync::Mutex::new(None::<String>));
        let quorum_stop = {
            let rx = stop_rx.clone();
            let failure = Arc::clone(&broker_failure);
            async move {
                let outcome = match broker_task {
                    Some(task) => task.await,
                    None => {
                        stopped(rx).await;
                        Ok(Ok(()))
                    }
                };
                let error = match outcome {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e),
                    Err(e) => Some(format!("broker task: {e}")),
                };
                // Then tell the controller (still running, if it is this node) to fence us.
                if let Some(task) = lifecycle_task {
                    task.abort();
                }
                let epoch = image_watch
                    .borrow()
                    .brokers
                    .get(&node_id)
                    .map(|b| b.broker_epoch);
                if let (Some(l), Some(epoch)) = (&lifecycle, epoch) {
                    ketch::broker::lifecycle::controlled_shutdown(
                        l,
                        epoch,
                        std::time::Duration::from_secs(3),
                    )
                    .await;
                }
                if let Ok(mut f) = failure.lock() {
                    *f = error;
                }
            }
        };
        let result = ketch::broker::quorum_server::run(
            quorum,
            disk,
            log,
            runtime::Clock::system(),
            seed,
            proposals,
            quorum_stop,
        )
        .await
        .map_err(|e| e.to_string());
        let failure = broker_failure.lock().ok().and_then(|mut f| f.take());
        match (result, failure) {
            (Err(e), _) | (Ok(()), Some(e)) => Err(e),
            (Ok(()), None) => Ok(()),
        }
    })
    .map_err(|e| e.to_string())?
}

/// One hostile request must not abort the node through a huge allocation (see runtime/alloc.rs).
#[global_allocator]
static ALLOCATOR: runtime::GuardedAlloc = runtime::GuardedAlloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Storage(StorageCommand::RandomUuid) => runtime::random_bytes_16()
            .map(|b| println!("{}", Uuid::from_random(b)))
            .map_err(|e| e.to_string()),
        Command::Storage(StorageCommand::Format {
            cluster_id,
            config,
            ignore_formatted,
        }) => format_storage(&cluster_id, &config, ignore_formatted),
        Command::Dev(args) => dev(args),
        Command::Topics(args) => topics(args),
        Command::ConsoleProducer(args) => console_producer(args),
        Command::ConsoleConsumer(args) => console_consumer(args),
        Command::ConsumerGroups(args) => consumer_groups(args),
        Command::Server { config } => server(&config),
        Command::MetadataQuorum {
            bootstrap_server,
            command:
                QuorumCommand::Describe {
                    status,
                    replication,
                },
        } => ketch::cli::describe_quorum(&bootstrap_server, status || !replication, replication),
        Command::Bench(BenchCommand::LogAppend {
            dir,
            total_mib,
            fsync_total_mib,
            records_per_batch,
            record_bytes,
            producers,
        }) => run_async(ketch::bench::log_append(
            &dir,
            ketch::bench::AppendBenchOptions {
                total_bytes: total_mib << 20,
                records_per_batch,
                record_bytes,
                producers: producers.max(1),
                fsync_total_bytes: fsync_total_mib << 20,
            },
        )),
        Command::Bench(BenchCommand::Produce {
            bootstrap_server,
            topic,
            num_records,
            record_size,
            batch_records,
            acks,
            connections,
        }) => ketch::cli::perf::produce(ketch::cli::perf::ProduceBench {
            bootstrap: bootstrap_server,
            topic,
            num_records,
            record_size,
            batch_records,
            acks,
            connections,
        }),
        Command::Bench(BenchCommand::Consume {
            bootstrap_server,
            topic,
            num_records,
            fetch_max_bytes,
        }) => ketch::cli::perf::consume(ketch::cli::perf::ConsumeBench {
            bootstrap: bootstrap_server,
            topic,
            num_records,
            fetch_max_bytes,
        }),
        Command::Bench(BenchCommand::Topics {
            bootstrap_controller,
            count,
            partitions,
            replication_factor,
        }) => ketch::cli::perf::topics(ketch::cli::perf::TopicsBench {
            bootstrap_controllers: bootstrap_controller,
            count: count.max(2),
            partitions,
            replication_factor,
        }),
        Command::Bench(BenchCommand::Quorum { dir, proposals }) => {
            run_async(async move { ketch::bench::quorum(&dir, proposals.max(1)).await })
        }
        Command::Bench(BenchCommand::LogRecovery {
            dir,
            size_mib,
            segment_mib,
        }) => ketch::bench::log_recovery(&dir, size_mib << 20, segment_mib << 20)
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_async(
    fut: impl std::future::Future<Output = ketch::bench::BenchResult<()>>,
) -> Result<(), String> {
    runtime::block_on(fut)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
