//! The `ketch` command line: argument parsing and calls. Nodes are wired in `ketch::node`, the
//! client tools and benchmarks live in `ketch::cli`.

use clap::{Args, Parser, Subcommand};
use ketch::cli::args::{
    BenchCommand, ConsoleConsumerArgs, ConsoleProducerArgs, ConsumerGroupsArgs, LeaderElectionArgs,
    QuorumCommand, TopicsArgs,
};
use ketch::model::config::ServerConfig;
use ketch::node::{self, NodeEnv};
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
    /// Runs a node (controller, broker or both) from its server.properties.
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
    /// Elects preferred or unclean leaders, as Kafka's kafka-leader-election.sh.
    LeaderElection(LeaderElectionArgs),
    /// Benchmarks (measurements, not tests).
    #[command(subcommand)]
    Bench(BenchCommand),
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
    },
}

#[derive(Args)]
struct DevArgs {
    /// Where the data lives.
    #[arg(long, default_value = "ketch-data")]
    data_dir: PathBuf,
}

fn format_storage(cluster_id: &str, path: &Path, ignore_formatted: bool) -> Result<(), String> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let config = ServerConfig::load(disk.as_ref(), path).map_err(|e| e.to_string())?;
    let done = node::format_storage(
        &disk,
        &config,
        cluster_id,
        ignore_formatted,
        node::random_uuid,
    )
    .map_err(|e| e.to_string())?;
    for (dir, formatted) in done {
        if formatted {
            println!(
                "Formatting {} with cluster.id {cluster_id} and node.id {}",
                dir.display(),
                config.node_id
            );
        } else {
            println!("{} is already formatted; left as it is", dir.display());
        }
    }
    Ok(())
}

/// `ketch dev`: `ketch server` with a built-in single-node config, its data directory
/// formatted with a new cluster id on first start.
fn dev(args: DevArgs) -> Result<(), String> {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let dir = args.data_dir;
    let config = ServerConfig::dev(&dir).map_err(|e| e.to_string())?;
    if !disk.exists(&dir.join(ketch::log::META_PROPERTIES)) {
        let cluster_id = node::random_uuid().map_err(|e| e.to_string())?.to_string();
        node::format_storage(&disk, &config, &cluster_id, false, node::random_uuid)
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
    let result = match Cli::parse().command {
        Command::Storage(StorageCommand::RandomUuid) => node::random_uuid()
            .map(|id| println!("{id}"))
            .map_err(|e| e.to_string()),
        Command::Storage(StorageCommand::Format {
            cluster_id,
            config,
            ignore_formatted,
        }) => format_storage(&cluster_id, &config, ignore_formatted),
        Command::Dev(args) => dev(args),
        Command::Server { config } => ServerConfig::load(&RealDisk, &config)
            .map_err(|e| e.to_string())
            .and_then(run_server),
        Command::Topics(args) => ketch::cli::args::topics(args),
        Command::ConsoleProducer(args) => ketch::cli::args::console_producer(args),
        Command::ConsoleConsumer(args) => ketch::cli::args::console_consumer(args),
        Command::ConsumerGroups(args) => ketch::cli::args::consumer_groups(args),
        Command::MetadataQuorum {
            bootstrap_server,
            command:
                QuorumCommand::Describe {
                    status,
                    replication,
                },
        } => ketch::cli::describe_quorum(&bootstrap_server, status || !replication, replication),
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
