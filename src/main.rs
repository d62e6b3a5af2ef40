//! The `ketch` command line: argument parsing and calls. Nodes are wired in `ketch::node`, the
//! client tools and benchmarks live in `ketch::cli`.

use clap::{Args, Parser, Subcommand};
use ketch::cli::args::{
    BenchCommand, ConfigsArgs, ConsoleConsumerArgs, ConsoleProducerArgs, ConsumerGroupsArgs,
    LeaderElectionArgs, QuorumCommand, TopicsArgs,
};
use ketch::model::config::ServerConfig;
use ketch::model::NodeId;
use ketch::node::{self, NodeEnv};
use ketch::runtime::{self, Disk, RealDisk};
use std::collections::BTreeMap;
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
    /// Client properties for the tools' connections, as Kafka's tools take them:
    /// `security.protocol=SSL` and the `ssl.*` keys (`ssl.truststore.location`, a PEM file of
    /// the CA certificates; `ssl.keystore.location`, a PEM file with this client's
    /// certificate and key, for listeners that ask for one).
    #[arg(
        long = "command-config",
        global = true,
        visible_aliases = ["producer.config", "consumer.config"]
    )]
    command_config: Option<PathBuf>,
}

/// Sets the tools' connections from `--command-config`.
fn set_tools_security(path: &Path) -> Result<(), String> {
    let bytes = RealDisk
        .read_file(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    let props = ketch::model::properties::Properties::parse(&text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let connector =
        ketch::wire::client_connector(&props).map_err(|e| format!("{}: {e}", path.display()))?;
    ketch::client::set_tools_connector(connector);
    Ok(())
}

#[derive(Subcommand)]
enum Command {
    /// Storage tools, as Kafka's kafka-storage.sh.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// One combined node with zero configuration, data in ./ketch-data.
    Dev(DevArgs),
    /// Runs a node (controller, broker or both) from its server.properties.
    Server {
        /// The node's server.properties.
        config: PathBuf,
    },
    /// Inspects the metadata quorum, as Kafka's kafka-metadata-quorum.sh.
    MetadataQuorum {
        /// A broker's host:port (its client listener); it forwards to the quorum leader.
        #[arg(long, required_unless_present = "bootstrap_controller")]
        bootstrap_server: Option<String>,
        /// Or a controller's host:port (its controller listener); a follower forwards to the
        /// leader.
        #[arg(long, conflicts_with = "bootstrap_server")]
        bootstrap_controller: Option<String>,
        #[command(subcommand)]
        command: QuorumCommand,
    },
    /// Lists, describes, creates, deletes and grows topics, as Kafka's kafka-topics.sh.
    Topics(TopicsArgs),
    /// Adds, removes and lists ACLs, as Kafka's kafka-acls.sh.
    Acls(ketch::cli::acls::AclsArgs),
    /// Writes lines from stdin to a topic, as Kafka's kafka-console-producer.sh.
    ConsoleProducer(ConsoleProducerArgs),
    /// Prints a topic's records, as Kafka's kafka-console-consumer.sh.
    ConsoleConsumer(ConsoleConsumerArgs),
    /// Offsets of partitions at a time, as Kafka's kafka-get-offsets.sh.
    GetOffsets {
        #[arg(long)]
        bootstrap_server: String,
        /// The topic (default: every topic but the internal ones).
        #[arg(long)]
        topic: Option<String>,
        /// Only these partitions, comma-separated.
        #[arg(long, value_delimiter = ',')]
        partitions: Option<Vec<i32>>,
        /// -1 or latest, -2 or earliest, -3 or max-timestamp, or a timestamp in ms.
        #[arg(long, default_value = "-1", allow_hyphen_values = true)]
        time: String,
        /// Leave out internal topics (__consumer_offsets).
        #[arg(long)]
        exclude_internal_topics: bool,
    },
    /// Each broker's log directories and the partitions in them, as Kafka's kafka-log-dirs.sh.
    LogDirs {
        #[arg(long)]
        bootstrap_server: String,
        /// The only action kafka-log-dirs.sh has.
        #[arg(long, required = true)]
        describe: bool,
        /// Only these brokers, comma-separated ids.
        #[arg(long, value_delimiter = ',')]
        broker_list: Option<Vec<i32>>,
        /// Only these topics, comma-separated.
        #[arg(long, value_delimiter = ',')]
        topic_list: Option<Vec<String>>,
    },
    /// Moves partitions' log starts (deletes the records below), as Kafka's
    /// kafka-delete-records.sh. Exits 1 if any partition failed.
    DeleteRecords {
        #[arg(long)]
        bootstrap_server: String,
        /// {"partitions": [{"topic": "t", "partition": 0, "offset": 5}], "version": 1};
        /// offset -1 is the high watermark.
        #[arg(long)]
        offset_json_file: String,
    },
    /// Prints the batches of segment files (offline), as Kafka's kafka-dump-log.sh.
    DumpLog {
        /// Segment files (.log, .index, .timeindex), comma-separated.
        #[arg(long, value_delimiter = ',', required = true)]
        files: Vec<String>,
        /// Also each record of uncompressed batches: offset, timestamp, key, payload.
        #[arg(long)]
        print_data_log: bool,
    },
    /// Describes and alters topic and broker configs, as Kafka's kafka-configs.sh.
    Configs(ConfigsArgs),
    /// Lists, describes and resets consumer groups, as Kafka's kafka-consumer-groups.sh.
    ConsumerGroups(ConsumerGroupsArgs),
    /// Elects preferred or unclean leaders, as Kafka's kafka-leader-election.sh.
    LeaderElection(LeaderElectionArgs),
    /// Lists, describes and aborts transactions, as Kafka's kafka-transactions.sh.
    Transactions {
        #[arg(long)]
        bootstrap_server: String,
        #[command(subcommand)]
        action: TransactionsCommand,
    },
    /// Benchmarks (measurements, not tests).
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum TransactionsCommand {
    /// Every transaction, from every broker's coordinator.
    List,
    /// One transactional id's state, producer, timeout and partitions.
    Describe {
        #[arg(long)]
        transactional_id: String,
    },
    /// A partition's active producers and their open transactions.
    DescribeProducers {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
    },
    /// Aborts a hanging transaction on one partition: give its --start-offset, or the
    /// producer's --producer-id, --producer-epoch and --coordinator-epoch.
    Abort {
        #[arg(long)]
        topic: String,
        #[arg(long)]
        partition: i32,
        #[arg(long)]
        start_offset: Option<i64>,
        #[arg(long, requires_all = ["producer_epoch", "coordinator_epoch"])]
        producer_id: Option<i64>,
        #[arg(long)]
        producer_epoch: Option<i16>,
        #[arg(long)]
        coordinator_epoch: Option<i32>,
    },
}

#[derive(Subcommand)]
enum StorageCommand {
    /// Prints a new random cluster id.
    RandomUuid,
    /// Formats the log directories of a node (writes meta.properties).
    Format {
        /// The cluster id (from `ketch storage random-uuid`).
        #[arg(short = 't', long = "cluster-id", allow_hyphen_values = true)]
        cluster_id: String,
        /// The node's server.properties.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
        /// Leave already formatted directories as they are instead of failing.
        #[arg(short = 'g', long = "ignore-formatted")]
        ignore_formatted: bool,
        /// This controller is the whole quorum (for a config with
        /// controller.quorum.bootstrap.servers and no controller.quorum.voters).
        #[arg(short = 's', long, conflicts_with = "initial_controllers")]
        standalone: bool,
        /// The quorum's voters, id@host:port:directory-id,... (for a config with
        /// controller.quorum.bootstrap.servers and no controller.quorum.voters); this node's
        /// entry gives its metadata directory's id.
        #[arg(short = 'I', long)]
        initial_controllers: Option<String>,
        /// A SCRAM credential the cluster starts with (repeatable), as Kafka's
        /// `--add-scram 'SCRAM-SHA-512=[name=admin,password=admin-secret]'`
        /// (`iterations=` too); for the controllers' storage.
        #[arg(short = 'S', long = "add-scram")]
        add_scram: Vec<String>,
    },
    /// Shows the state of a node's log directories (formatted or not, their meta.properties).
    Info {
        /// The node's server.properties.
        #[arg(short = 'c', long = "config")]
        config: PathBuf,
    },
}

#[derive(Args)]
struct DevArgs {
    /// Where the data lives.
    #[arg(long, default_value = "ketch-data")]
    data_dir: PathBuf,
}

/// How `storage format` fixes the voter set of a config without `controller.quorum.voters`.
enum BootstrapVoters {
    Static,
    Standalone,
    Initial(String),
}

/// Parses `--initial-controllers`: `id@host:port:directory-id,…`.
fn parse_initial_controllers(
    text: &str,
) -> Result<BTreeMap<NodeId, (String, u16, ketch::model::Uuid)>, String> {
    let mut out = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            format!(
                "--initial-controllers: '{item}' is not id@host:port:directory-id \
                 (e.g. 1@localhost:9093:{})",
                "pbvuBlaTTwKRxS5NLJwRFQ"
            )
        };
        let (id, rest) = item.split_once('@').ok_or_else(bad)?;
        let id: i32 = id.parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
        let (addr, dir) = rest.rsplit_once(':').ok_or_else(bad)?;
        let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let dir =
            ketch::model::Uuid::parse(dir).map_err(|e| format!("--initial-controllers: {e}"))?;
        if out
            .insert(NodeId(id), (host.to_string(), port, dir))
            .is_some()
        {
            return Err(format!("--initial-controllers: voter {id} is given twice"));
        }
    }
    if out.is_empty() {
        return Err("--initial-controllers is empty".into());
    }
    Ok(out)
}

/// `ketch storage format`: the config is checked as `ketch server` checks it (parse, roles,
/// voters, controller listener) before anything is written.
fn format_storage(
    cluster_id: &str,
    path: &Path,
    ignore_formatted: bool,
    bootstrap: BootstrapVoters,
    add_scram: &[String],
) -> Result<(), String> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let mut config = ServerConfig::load(disk.as_ref(), path).map_err(|e| e.to_string())?;
    let mut scram_records = Vec::new();
    for text in add_scram {
        let (mechanism, name, password, iterations) = ketch::security::scram::parse_add_scram(text)
            .map_err(|e| format!("--add-scram {e}"))?;
        let salt =
            runtime::random_bytes_16().map_err(|e| format!("no randomness for a salt: {e}"))?;
        let c = ketch::security::scram::Credential::from_password(
            mechanism,
            &password,
            salt.to_vec(),
            iterations,
        );
        scram_records.push(ketch::controller::MetadataRecord::UserScramCredential {
            name,
            mechanism: mechanism.id(),
            salt: c.salt,
            stored_key: c.stored_key,
            server_key: c.server_key,
            iterations: c.iterations,
        });
    }
    if !scram_records.is_empty() && !config.roles.controller {
        return Err(
            "--add-scram goes to the controllers' storage (the metadata log's); this \
                    node's process.roles has no controller"
                .into(),
        );
    }
    ketch::model::Uuid::parse(cluster_id)
        .map_err(|e| format!("cluster id: {e} (make one with 'ketch storage random-uuid')"))?;
    let mut metadata_dir_id = None;
    let voters_to_write = match bootstrap {
        BootstrapVoters::Static => None,
        _ if !config.voters.is_empty() => {
            return Err(
                "--standalone and --initial-controllers are for a config without \
                 controller.quorum.voters (it already fixes the voters); drop the flag"
                    .into(),
            )
        }
        _ if !config.roles.controller => {
            return Err(
                "--standalone and --initial-controllers format controllers; this \
                        node's process.roles has no controller"
                    .into(),
            )
        }
        BootstrapVoters::Standalone => {
            let listener = config.controller_listener().map_err(|e| e.to_string())?;
            let advertised = config
                .advertised_listeners
                .iter()
                .find(|l| l.name == listener.name)
                .unwrap_or(listener);
            let host = if advertised.host.is_empty() {
                "localhost".to_string()
            } else {
                advertised.host.clone()
            };
            Some(BTreeMap::from([(config.node_id, (host, advertised.port))]))
        }
        BootstrapVoters::Initial(text) => {
            let parsed = parse_initial_controllers(&text)?;
            let Some((_, _, dir)) = parsed.get(&config.node_id) else {
                return Err(format!(
                    "--initial-controllers does not name this node (node.id {})",
                    config.node_id
                ));
            };
            metadata_dir_id = Some(*dir);
            Some(
                parsed
                    .into_iter()
                    .map(|(id, (host, port, _))| (id, (host, port)))
                    .collect(),
            )
        }
    };
    if let Some(voters) = &voters_to_write {
        config.voters = voters.clone();
    }
    node::check_roles(&config).map_err(|e| e.to_string())?;
    let metadata_dir = config.metadata_log_dir.clone();
    let done = node::format_storage(&disk, &config, cluster_id, ignore_formatted, |dir| {
        match metadata_dir_id {
            Some(id) if dir == metadata_dir => Ok(id),
            _ => node::random_uuid(),
        }
    })
    .map_err(|e| e.to_string())?;
    for (dir, formatted) in &done {
        if *formatted {
            println!(
                "Formatting {} with cluster.id {cluster_id} and node.id {}",
                dir.display(),
                config.node_id
            );
        } else {
            println!("{} is already formatted; left as it is", dir.display());
        }
    }
    let metadata_formatted_now = done.iter().any(|(d, f)| *f && *d == metadata_dir);
    if let (Some(voters), true) = (&voters_to_write, metadata_formatted_now) {
        let written =
            node::write_bootstrap_voters(&disk, &config, voters).map_err(|e| e.to_string())?;
        println!(
            "Wrote the quorum's voters ({}) to {}",
            voters
                .iter()
                .map(|(id, (h, p))| format!("{}@{h}:{p}", id.0))
                .collect::<Vec<_>>()
                .join(","),
            written.display()
        );
    }
    if !scram_records.is_empty() && metadata_formatted_now {
        let written = node::write_bootstrap_records(&disk, &config, &scram_records)
            .map_err(|e| e.to_string())?;
        println!(
            "Wrote {} SCRAM credential(s) to {}",
            scram_records.len(),
            written.display()
        );
    }
    Ok(())
}

/// `ketch storage info`, as `kafka-storage.sh info`: each directory and its meta.properties,
/// then the problems found (unformatted directories, mismatched ids); problems exit 1.
fn storage_info(path: &Path) -> Result<(), String> {
    let disk = RealDisk;
    let config = ServerConfig::load(&disk, path).map_err(|e| e.to_string())?;
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut metas = BTreeMap::new();
    for dir in config.all_dirs() {
        let meta_path = dir.join(ketch::log::META_PROPERTIES);
        if !disk.exists(&dir) {
            problems.push(format!("{} does not exist", dir.display()));
            continue;
        }
        found.push(dir.display().to_string());
        if !disk.exists(&meta_path) {
            problems.push(format!("{} is not formatted", dir.display()));
            continue;
        }
        let parsed = disk
            .read_file(&meta_path)
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                ketch::log::MetaProperties::parse(
                    &String::from_utf8_lossy(&bytes),
                    meta_path.clone(),
                )
                .map_err(|e| e.to_string())
            });
        match parsed {
            Ok(meta) => {
                if meta.node_id != config.node_id {
                    problems.push(format!(
                        "{} is formatted for node.id {}, but the config says node.id {}",
                        dir.display(),
                        meta.node_id,
                        config.node_id
                    ));
                }
                metas.insert(dir.display().to_string(), meta);
            }
            Err(e) => problems.push(e),
        }
    }
    let cluster_ids: std::collections::BTreeSet<_> =
        metas.values().map(|m| m.cluster_id.clone()).collect();
    if cluster_ids.len() > 1 {
        problems.push(format!(
            "the directories are formatted for different clusters: {}",
            cluster_ids.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !found.is_empty() {
        println!(
            "Found log director{}:",
            if found.len() == 1 { "y" } else { "ies" }
        );
        for dir in &found {
            println!("  {dir}");
        }
        println!();
    }
    for (dir, meta) in &metas {
        println!(
            "Found metadata in {dir}: {{cluster.id={}, directory.id={}, node.id={}, version=1}}",
            meta.cluster_id, meta.directory_id, meta.node_id
        );
    }
    let voters_path = config.metadata_log_dir.join(node::BOOTSTRAP_VOTERS_FILE);
    if let Ok(bytes) = disk.read_file(&voters_path) {
        let text = String::from_utf8_lossy(&bytes);
        if let Some(line) = text.lines().find(|l| l.starts_with("voters=")) {
            println!(
                "Found bootstrap voters in {}: {}",
                voters_path.display(),
                &line[7..]
            );
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    println!();
    println!(
        "Found problem{}:",
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in &problems {
        println!("  {p}");
    }
    Err(format!("{} problem(s) found", problems.len()))
}

/// `ketch dev`: `ketch server` with a built-in single-node config, its data directory
/// formatted with a new cluster id on first start.
fn dev(args: DevArgs) -> Result<(), String> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let dir = args.data_dir;
    let config = ServerConfig::dev(&dir).map_err(|e| e.to_string())?;
    if !disk.exists(&dir.join(ketch::log::META_PROPERTIES)) {
        let cluster_id = node::random_uuid().map_err(|e| e.to_string())?.to_string();
        node::format_storage(&disk, &config, &cluster_id, false, |_| node::random_uuid())
            .map_err(|e| e.to_string())?;
        println!("formatted {} (cluster.id {cluster_id})", dir.display());
    }
    println!(
        "ketch dev: one combined node, data in {}. Kafka clients: 127.0.0.1:9092 \
         (try: kcat -b 127.0.0.1:9092 -L). Ctrl-C stops.",
        dir.display()
    );
    run_server(config)
}

/// Runs a node in the real world until SIGINT or SIGTERM.
fn run_server(config: ServerConfig) -> Result<(), String> {
    let env = NodeEnv::real().map_err(|e| e.to_string())?;
    runtime::block_on(node::run(config, env, runtime::shutdown_signal()))
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// Refuses a broker's client listener given as `--bootstrap-controller`.
fn controller_listeners(bootstrap: &str) -> Result<(), String> {
    runtime::block_on(ketch::client::check_controller_listeners(bootstrap))
        .map_err(|e| e.to_string())
        .and_then(|r| r)
}

/// A tool's failure, with a hint when `--bootstrap-server` named a controller listener (it
/// closes the connection on a broker API, which alone says nothing).
fn explained(bootstrap: Option<&str>, result: Result<(), String>) -> Result<(), String> {
    match (result, bootstrap) {
        (Err(e), Some(b)) if e.contains("closed the connection") => {
            let first = b.split(',').next().unwrap_or(b).trim().to_string();
            Err(runtime::block_on(ketch::client::explain_failure(&first, e.clone())).unwrap_or(e))
        }
        (result, _) => result,
    }
}

/// One hostile request must not abort the node through a huge allocation (see runtime/alloc.rs).
#[global_allocator]
static ALLOCATOR: runtime::GuardedAlloc = runtime::GuardedAlloc;

fn main() -> ExitCode {
    // Colours only for a person at a terminal: escape codes in a file or journald are noise.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    if let Some(path) = &cli.command_config {
        if let Err(e) = set_tools_security(path) {
            eprintln!("error: --command-config {e}");
            return ExitCode::FAILURE;
        }
    }
    let result = match cli.command {
        Command::Storage(StorageCommand::RandomUuid) => node::random_uuid()
            .map(|id| println!("{id}"))
            .map_err(|e| e.to_string()),
        Command::Storage(StorageCommand::Format {
            cluster_id,
            config,
            ignore_formatted,
            standalone,
            initial_controllers,
            add_scram,
        }) => {
            let bootstrap = match (standalone, initial_controllers) {
                (true, _) => BootstrapVoters::Standalone,
                (false, Some(text)) => BootstrapVoters::Initial(text),
                (false, None) => BootstrapVoters::Static,
            };
            format_storage(
                &cluster_id,
                &config,
                ignore_formatted,
                bootstrap,
                &add_scram,
            )
        }
        Command::Storage(StorageCommand::Info { config }) => storage_info(&config),
        Command::Dev(args) => dev(args),
        Command::Server { config } => ServerConfig::load(&RealDisk, &config)
            .map_err(|e| e.to_string())
            .and_then(run_server),
        Command::Topics(args) => {
            let server = args.bootstrap_server.clone();
            let checked = match &args.bootstrap_controller {
                Some(c) => controller_listeners(c),
                None => Ok(()),
            };
            explained(
                server.as_deref(),
                checked.and_then(|()| ketch::cli::args::topics(args)),
            )
        }
        Command::Acls(args) => {
            let server = args.bootstrap_server.clone();
            explained(Some(&server), ketch::cli::acls::run(args))
        }
        Command::ConsoleProducer(args) => {
            let server = args.bootstrap_server.clone();
            explained(Some(&server), ketch::cli::args::console_producer(args))
        }
        Command::ConsoleConsumer(args) => {
            let server = args.bootstrap_server.clone();
            explained(Some(&server), ketch::cli::args::console_consumer(args))
        }
        Command::GetOffsets {
            bootstrap_server,
            topic,
            partitions,
            time,
            exclude_internal_topics,
        } => ketch::cli::tools::parse_time(&time).and_then(|time| {
            explained(
                Some(&bootstrap_server),
                ketch::cli::tools::get_offsets(
                    &bootstrap_server,
                    topic.as_deref(),
                    partitions.as_deref(),
                    time,
                    exclude_internal_topics,
                ),
            )
        }),
        Command::LogDirs {
            bootstrap_server,
            describe: _,
            broker_list,
            topic_list,
        } => explained(
            Some(&bootstrap_server),
            ketch::cli::tools::log_dirs(
                &bootstrap_server,
                broker_list.as_deref(),
                topic_list.as_deref(),
            ),
        ),
        Command::DeleteRecords {
            bootstrap_server,
            offset_json_file,
        } => explained(
            Some(&bootstrap_server),
            ketch::cli::tools::delete_records(&bootstrap_server, &offset_json_file),
        ),
        Command::DumpLog {
            files,
            print_data_log,
        } => ketch::cli::tools::dump_log(&files, print_data_log),
        Command::Transactions {
            bootstrap_server,
            action,
        } => {
            use ketch::cli::transactions::Action;
            let action = match action {
                TransactionsCommand::List => Action::List,
                TransactionsCommand::Describe { transactional_id } => {
                    Action::Describe { transactional_id }
                }
                TransactionsCommand::DescribeProducers { topic, partition } => {
                    Action::DescribeProducers { topic, partition }
                }
                TransactionsCommand::Abort {
                    topic,
                    partition,
                    start_offset,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                } => Action::Abort {
                    topic,
                    partition,
                    producer: producer_id
                        .zip(producer_epoch)
                        .zip(coordinator_epoch)
                        .map(|((id, e), c)| (id, e, c)),
                    start_offset,
                },
            };
            explained(
                Some(&bootstrap_server),
                ketch::cli::transactions::run(&bootstrap_server, action),
            )
        }
        Command::Configs(args) => {
            let server = args.bootstrap_server.clone();
            explained(server.as_deref(), ketch::cli::args::configs(args))
        }
        Command::ConsumerGroups(args) => {
            let server = args.bootstrap_server.clone();
            explained(Some(&server), ketch::cli::args::consumer_groups(args))
        }
        Command::MetadataQuorum {
            bootstrap_server,
            bootstrap_controller,
            command:
                QuorumCommand::Describe {
                    status,
                    replication,
                    local,
                },
        } => {
            let checked = match &bootstrap_controller {
                Some(c) => controller_listeners(c),
                None if local => Err("--local is a controller's own view: it takes \
                                      --bootstrap-controller (a broker forwards to the leader)"
                    .to_string()),
                None => Ok(()),
            };
            let addrs = bootstrap_server
                .or(bootstrap_controller)
                .unwrap_or_default();
            // The first address of the list that answers, as Kafka's tool takes a list.
            checked.and_then(|()| {
                let mut last = Err(format!("no address in '{addrs}'"));
                for addr in addrs.split(',').map(str::trim).filter(|a| !a.is_empty()) {
                    last = ketch::cli::describe_quorum(
                        addr,
                        status || !replication,
                        replication,
                        local,
                    );
                    if last.is_ok() {
                        break;
                    }
                }
                last
            })
        }
        Command::LeaderElection(args) => ketch::cli::args::leader_election(args),
        Command::Bench(command) => command.run(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
