//! The `ketch` binary's client-side commands as clap arguments, and what each runs: the tools
//! that speak Kafka's protocol to running nodes (`topics`, `console-producer`,
//! `console-consumer`, `consumer-groups`, `metadata-quorum`) and the benchmarks (`bench …`).
//! `main.rs` only parses and dispatches.

use clap::{Args, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct TopicsArgs {
    /// Brokers, host:port of their client listeners, comma-separated.
    #[arg(long, required_unless_present = "bootstrap_controller")]
    pub bootstrap_server: Option<String>,
    /// Or the controllers, host:port of their controller listeners (create, delete, alter).
    #[arg(long, conflicts_with = "bootstrap_server")]
    pub bootstrap_controller: Option<String>,
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long, conflicts_with_all = ["delete", "alter", "list", "describe"])]
    pub create: bool,
    #[arg(long, conflicts_with_all = ["alter", "list", "describe"])]
    pub delete: bool,
    #[arg(long, conflicts_with_all = ["list", "describe"])]
    pub alter: bool,
    #[arg(long, conflicts_with = "describe")]
    pub list: bool,
    #[arg(long)]
    pub describe: bool,
    /// Partitions (create: default `num.partitions`; alter: the new total).
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Replicas per partition (default `default.replication.factor`).
    #[arg(long)]
    pub replication_factor: Option<i16>,
    /// Topic configs, key=value (repeatable): set at --create, or changed by --alter.
    #[arg(long = "config")]
    pub configs: Vec<String>,
    /// With --alter: topic configs to remove (back to the broker's default).
    #[arg(long = "delete-config")]
    pub delete_configs: Vec<String>,
    /// With --create: a topic that exists already is not an error.
    #[arg(long)]
    pub if_not_exists: bool,
    /// With --alter or --delete: a topic that does not exist is not an error.
    #[arg(long)]
    pub if_exists: bool,
    /// With --describe: only partitions whose ISR is smaller than their replica set.
    #[arg(long)]
    pub under_replicated_partitions: bool,
    /// With --describe: only partitions without a live leader.
    #[arg(long)]
    pub unavailable_partitions: bool,
}

#[derive(Args)]
pub struct ConfigsArgs {
    /// A broker, host:port of its client listener.
    #[arg(long, required_unless_present = "bootstrap_controller")]
    pub bootstrap_server: Option<String>,
    /// Or the controllers (for --alter).
    #[arg(long, conflicts_with = "bootstrap_server")]
    pub bootstrap_controller: Option<String>,
    /// topics, brokers or users (users: SCRAM credentials, `--add-config
    /// 'SCRAM-SHA-512=[iterations=8192,password=…]'`, `--delete-config SCRAM-SHA-512`).
    #[arg(long)]
    pub entity_type: String,
    /// The topic name or broker id (describe: every one when left out).
    #[arg(long)]
    pub entity_name: Option<String>,
    /// Brokers: the cluster-wide dynamic default.
    #[arg(long)]
    pub entity_default: bool,
    #[arg(long, conflicts_with = "alter")]
    pub describe: bool,
    /// With --describe: every config with its source, not only the dynamic ones.
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub alter: bool,
    /// k=v,k2=v2 (a list value as [a,b]).
    #[arg(long)]
    pub add_config: Vec<String>,
    /// k,k2.
    #[arg(long, value_delimiter = ',')]
    pub delete_config: Vec<String>,
}

pub fn configs(args: ConfigsArgs) -> Result<(), String> {
    use crate::cli::configs::{parse_add_config, ConfigsCommand, EntityType};
    let entity_type = match args.entity_type.as_str() {
        "topics" | "topic" => EntityType::Topics,
        "brokers" | "broker" => EntityType::Brokers,
        "users" | "user" => EntityType::Users,
        other => {
            return Err(format!(
                "--entity-type takes topics, brokers or users, not '{other}' (clients, ips \
                 and client-metrics are not implemented)"
            ))
        }
    };
    if args.describe == args.alter {
        return Err("configs needs exactly one of --describe or --alter".into());
    }
    let mut add = Vec::new();
    for a in &args.add_config {
        add.extend(parse_add_config(a)?);
    }
    crate::cli::configs::run(ConfigsCommand {
        bootstrap_server: args.bootstrap_server,
        bootstrap_controller: args.bootstrap_controller,
        entity_type,
        entity_name: args.entity_name,
        entity_default: args.entity_default,
        describe: args.describe,
        all: args.all,
        add,
        delete: args.delete_config,
    })
}

#[derive(Args)]
pub struct ConsoleProducerArgs {
    #[arg(long)]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    /// Split each line into key and value at the first occurrence of this separator.
    #[arg(long)]
    pub key_separator: Option<String>,
    /// Line reader properties: parse.key=true, key.separator=SEP, null.marker=M.
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// Producer properties: acks, client.id, batch.size, compression.type=none.
    #[arg(long = "producer-property")]
    pub producer_properties: Vec<String>,
    /// 0, 1 or -1 (all).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    pub acks: i16,
}

#[derive(Args)]
pub struct ConsoleConsumerArgs {
    #[arg(long)]
    pub bootstrap_server: String,
    #[arg(long)]
    pub topic: String,
    #[arg(long)]
    pub from_beginning: bool,
    /// Start at this group's committed offsets and commit as records are printed.
    #[arg(long, conflicts_with = "partition")]
    pub group: Option<String>,
    /// Only this partition.
    #[arg(long)]
    pub partition: Option<i32>,
    /// With --partition: earliest, latest or an offset (beyond the log: auto.offset.reset).
    #[arg(long, requires = "partition", allow_hyphen_values = true)]
    pub offset: Option<String>,
    #[arg(long)]
    pub max_messages: Option<usize>,
    /// Stop after this long without a record.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Formatter properties: print.key, print.value, print.partition, print.offset,
    /// print.timestamp (true/false), key.separator, line.separator, null.literal.
    #[arg(long = "property")]
    pub properties: Vec<String>,
    /// Consumer properties: group.id, client.id, auto.offset.reset (earliest|latest|none).
    #[arg(long = "consumer-property")]
    pub consumer_properties: Vec<String>,
}

#[derive(Args)]
pub struct ConsumerGroupsArgs {
    #[arg(long)]
    pub bootstrap_server: String,
    /// Lists the groups (with --state, their states).
    #[arg(long, conflicts_with_all = ["describe", "reset_offsets", "delete", "delete_offsets"])]
    pub list: bool,
    /// Describes groups: offsets and lag (default), --members or --state.
    #[arg(long, conflicts_with_all = ["reset_offsets", "delete", "delete_offsets"])]
    pub describe: bool,
    /// Deletes groups (only empty ones, as Kafka).
    #[arg(long, conflicts_with_all = ["reset_offsets", "delete_offsets"])]
    pub delete: bool,
    /// Deletes a group's committed offsets of --topic (a group not subscribed to it).
    #[arg(long, conflicts_with = "reset_offsets")]
    pub delete_offsets: bool,
    /// Resets committed offsets (a dry run unless --execute).
    #[arg(long)]
    pub reset_offsets: bool,
    /// The group (repeatable).
    #[arg(long)]
    pub group: Vec<String>,
    /// Every group the cluster has.
    #[arg(long, conflicts_with = "group")]
    pub all_groups: bool,
    /// The topic, or topic:0,1 for some partitions (repeatable).
    #[arg(long)]
    pub topic: Vec<String>,
    /// With --reset-offsets: every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topic")]
    pub all_topics: bool,
    /// With --describe: members and their assignments.
    #[arg(long, conflicts_with = "state")]
    pub members: bool,
    /// With --describe --members: each member's partitions.
    #[arg(long)]
    pub verbose: bool,
    /// With --describe: the coordinator, assignment strategy, state and member count; with
    /// --list: each group's state.
    #[arg(long)]
    pub state: bool,
    /// With --describe: offsets and lag per partition (the default view).
    #[arg(long)]
    pub offsets: bool,
    #[arg(long)]
    pub to_earliest: bool,
    #[arg(long)]
    pub to_latest: bool,
    #[arg(long)]
    pub to_current: bool,
    #[arg(long, allow_hyphen_values = true)]
    pub to_offset: Option<i64>,
    /// Moves each committed offset by N (negative: back).
    #[arg(long, allow_hyphen_values = true)]
    pub shift_by: Option<i64>,
    /// The first offset at or after YYYY-MM-DDTHH:mm:SS.sss (UTC, or with Z / +HH:mm).
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// The first offset at or after this long ago: PnDTnHnMnS.
    #[arg(long)]
    pub by_duration: Option<String>,
    /// Without it, --reset-offsets only shows what it would do.
    #[arg(long, conflicts_with = "dry_run")]
    pub execute: bool,
    /// Shows what --reset-offsets would do (the default).
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Subcommand)]
pub enum QuorumCommand {
    /// Describes the quorum.
    Describe {
        /// Leader, epoch, high watermark, voters and observers.
        #[arg(long)]
        status: bool,
        /// Each replica's log end offset and lag.
        #[arg(long)]
        replication: bool,
        /// With --bootstrap-controller: that controller's own view, not forwarded to the
        /// leader (what does this member think?).
        #[arg(long)]
        local: bool,
    },
}

#[derive(Subcommand)]
pub enum BenchCommand {
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
    /// Log cleaner throughput per codec, and append latency while it cleans (unthrottled and
    /// under `log.cleaner.io.max.bytes.per.second`).
    Cleaner {
        #[arg(long, default_value = "ketch-bench")]
        dir: PathBuf,
        #[arg(long, default_value_t = 256)]
        size_mib: u64,
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        #[arg(long, default_value_t = 1024)]
        record_bytes: usize,
        #[arg(long, default_value_t = 64)]
        segment_mib: u64,
        /// The throttled run's rate, MiB/s.
        #[arg(long, default_value_t = 16)]
        throttle_mib_per_s: u64,
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

/// `ketch leader-election`, as Kafka's kafka-leader-election.sh.
#[derive(Args)]
pub struct LeaderElectionArgs {
    /// A broker's client listener, or (with --bootstrap-controller) the controllers.
    #[arg(long, required_unless_present = "bootstrap_controller")]
    pub bootstrap_server: Option<String>,
    #[arg(long, conflicts_with = "bootstrap_server")]
    pub bootstrap_controller: Option<String>,
    /// PREFERRED or UNCLEAN.
    #[arg(long)]
    pub election_type: String,
    #[arg(long, requires = "partition")]
    pub topic: Option<String>,
    #[arg(long, requires = "topic")]
    pub partition: Option<i32>,
    /// Every partition of every topic.
    #[arg(long, conflicts_with = "topic")]
    pub all_topic_partitions: bool,
}

pub fn leader_election(args: LeaderElectionArgs) -> Result<(), String> {
    let unclean = match args.election_type.to_ascii_uppercase().as_str() {
        "PREFERRED" => false,
        "UNCLEAN" => true,
        other => {
            return Err(format!(
                "--election-type takes PREFERRED or UNCLEAN, not {other}"
            ))
        }
    };
    let bootstrap = args
        .bootstrap_server
        .or(args.bootstrap_controller)
        .ok_or("--bootstrap-server is needed")?;
    let partitions = match (args.topic, args.partition, args.all_topic_partitions) {
        (Some(t), Some(p), false) => Some(vec![(t, p)]),
        (None, None, true) => None,
        _ => return Err("give --topic and --partition, or --all-topic-partitions".into()),
    };
    crate::cli::leader_election(&bootstrap, unclean, partitions)
}

pub fn topics(args: TopicsArgs) -> Result<(), String> {
    use crate::cli::TopicsAction;
    if !(args.create || args.delete || args.alter || args.list || args.describe) {
        return Err(
            "topics needs an action: --list, --describe, --create, --delete or --alter".into(),
        );
    }
    let bootstrap = args
        .bootstrap_server
        .clone()
        .or(args.bootstrap_controller.clone())
        .ok_or("--bootstrap-server is needed")?;
    let key_values = |list: &[String]| {
        list.iter()
            .map(|c| {
                c.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                    .ok_or_else(|| format!("--config takes key=value, not '{c}'"))
            })
            .collect::<Result<Vec<_>, String>>()
    };
    if args.list || args.describe {
        let server = args
            .bootstrap_server
            .as_deref()
            .ok_or("--list and --describe need --bootstrap-server (a broker)")?;
        return if args.list {
            crate::cli::list_topics(server)
        } else {
            crate::cli::describe_topics(
                server,
                args.topic.as_deref(),
                crate::cli::DescribeFilter {
                    under_replicated: args.under_replicated_partitions,
                    unavailable: args.unavailable_partitions,
                },
            )
        };
    }
    let topic = args
        .topic
        .clone()
        .ok_or("--create, --delete and --alter need --topic")?;
    if args.delete && crate::model::is_internal_topic(&topic) {
        return Err(format!(
            "Topic {topic} is a kafka internal topic and is not allowed to be marked for deletion."
        ));
    }
    let action = if args.create {
        TopicsAction::Create {
            partitions: args.partitions.unwrap_or(-1),
            replication_factor: args.replication_factor.unwrap_or(-1),
            configs: key_values(&args.configs)?,
        }
    } else if args.delete {
        TopicsAction::Delete
    } else {
        let configs = key_values(&args.configs)?;
        if args.partitions.is_none() && configs.is_empty() && args.delete_configs.is_empty() {
            return Err(
                "--alter needs --partitions N and/or --config k=v / --delete-config k".into(),
            );
        }
        TopicsAction::Alter {
            partitions: args.partitions,
            configs,
            delete_configs: args.delete_configs.clone(),
        }
    };
    match crate::cli::topics(&bootstrap, &topic, action) {
        Err(e) if args.if_not_exists && args.create && e.contains("error code 36") => Ok(()),
        Err(e) if args.if_exists && (args.delete || args.alter) && e.contains("error code 3)") => {
            Ok(())
        }
        other => other,
    }
}

/// `k=v` properties, each key one of `known` (an unknown key is an error, as Kafka's tools
/// refuse what they would ignore).
fn properties<'a>(
    list: &'a [String],
    flag: &str,
    known: &[&str],
) -> Result<BTreeMap<&'a str, &'a str>, String> {
    let mut out = BTreeMap::new();
    for p in list {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("{flag} takes key=value, not '{p}'"))?;
        let k = k.trim();
        if !known.contains(&k) {
            return Err(format!(
                "{flag} {k}: unknown property (known: {})",
                known.join(", ")
            ));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn flag(props: &BTreeMap<&str, &str>, key: &str, default: bool) -> Result<bool, String> {
    match props.get(key).map(|v| v.trim()) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(format!("{key}={v}: expected true or false")),
    }
}

pub fn console_producer(args: ConsoleProducerArgs) -> Result<(), String> {
    let reader = properties(
        &args.properties,
        "--property",
        &["parse.key", "key.separator", "null.marker"],
    )?;
    let producer = properties(
        &args.producer_properties,
        "--producer-property",
        &["acks", "client.id", "batch.size", "compression.type"],
    )?;
    let parse_key = flag(&reader, "parse.key", false)?;
    let key_separator = args
        .key_separator
        .clone()
        .or_else(|| parse_key.then(|| reader.get("key.separator").unwrap_or(&"\t").to_string()));
    let acks = match producer.get("acks").copied() {
        Some("all") => -1,
        Some(v) => v
            .parse()
            .ok()
            .filter(|a| matches!(a, -1..=1))
            .ok_or_else(|| format!("acks={v}: expected 0, 1, -1 or all"))?,
        None => args.acks,
    };
    if let Some(c) = producer.get("compression.type").filter(|c| **c != "none") {
        return Err(format!(
            "compression.type={c}: the console producer sends uncompressed batches (none)"
        ));
    }
    let batch_bytes = match producer.get("batch.size") {
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("batch.size={v}: expected a positive number of bytes"))?,
        None => 16_384,
    };
    crate::cli::console::produce(crate::cli::console::ProducerOptions {
        bootstrap: args.bootstrap_server,
        topic: args.topic,
        key_separator,
        null_marker: reader.get("null.marker").map(|s| s.to_string()),
        acks,
        client_id: producer
            .get("client.id")
            .map_or("console-producer".to_string(), |s| s.to_string()),
        batch_bytes,
    })
}

pub fn console_consumer(args: ConsoleConsumerArgs) -> Result<(), String> {
    use crate::cli::console::{Reset, StartAt};
    let format = properties(
        &args.properties,
        "--property",
        &[
            "print.key",
            "print.value",
            "print.partition",
            "print.offset",
            "print.timestamp",
            "key.separator",
            "line.separator",
            "null.literal",
        ],
    )?;
    let consumer = properties(
        &args.consumer_properties,
        "--consumer-property",
        &["group.id", "client.id", "auto.offset.reset"],
    )?;
    let reset = match consumer.get("auto.offset.reset").copied() {
        None if args.from_beginning => Reset::Earliest,
        None | Some("latest") => Reset::Latest,
        Some("earliest") => Reset::Earliest,
        Some("none") => Reset::None,
        Some(v) => {
            return Err(format!(
                "auto.offset.reset={v}: expected earliest, latest or none"
            ))
        }
    };
    let start = match args.offset.as_deref() {
        None if args.from_beginning => StartAt::Earliest,
        None => match reset {
            Reset::Earliest => StartAt::Earliest,
            _ => StartAt::Latest,
        },
        Some("earliest") => StartAt::Earliest,
        Some("latest") => StartAt::Latest,
        Some(n) => StartAt::Offset(
            n.parse()
                .map_err(|_| format!("--offset takes earliest, latest or an offset, not '{n}'"))?,
        ),
    };
    let group = args
        .group
        .clone()
        .or_else(|| consumer.get("group.id").map(|g| g.to_string()));
    if group.is_some() && args.partition.is_some() {
        return Err("a group (--group or group.id) cannot be used with --partition".into());
    }
    let unescape = |s: &str| s.replace("\\t", "\t").replace("\\n", "\n");
    crate::cli::console::consume(crate::cli::console::ConsumerOptions {
        bootstrap: args.bootstrap_server,
        topic: args.topic,
        start,
        reset,
        partition: args.partition,
        group,
        max_messages: args.max_messages,
        timeout_ms: args.timeout_ms,
        client_id: consumer
            .get("client.id")
            .map_or("console-consumer".to_string(), |s| s.to_string()),
        format: crate::cli::console::Format {
            key: flag(&format, "print.key", false)?,
            value: flag(&format, "print.value", true)?,
            partition: flag(&format, "print.partition", false)?,
            offset: flag(&format, "print.offset", false)?,
            timestamp: flag(&format, "print.timestamp", false)?,
            key_separator: unescape(format.get("key.separator").unwrap_or(&"\t")),
            line_separator: unescape(format.get("line.separator").unwrap_or(&"\n")),
            null_literal: format.get("null.literal").unwrap_or(&"null").to_string(),
        },
    })
}

pub fn consumer_groups(args: ConsumerGroupsArgs) -> Result<(), String> {
    use crate::cli::groups::{
        parse_datetime, parse_duration, Groups, GroupsAction, ResetTo, TopicSpec, Topics, View,
    };
    let groups = |what: &str| {
        if args.all_groups {
            Ok(Groups::All)
        } else if args.group.is_empty() {
            Err(format!("{what} needs --group G or --all-groups"))
        } else {
            Ok(Groups::Named(args.group.clone()))
        }
    };
    let specs = || {
        args.topic
            .iter()
            .map(|t| TopicSpec::parse(t))
            .collect::<Result<Vec<_>, _>>()
    };
    let action = if args.list {
        GroupsAction::List { state: args.state }
    } else if args.describe {
        GroupsAction::Describe {
            groups: groups("--describe")?,
            view: if args.members {
                View::Members {
                    verbose: args.verbose,
                }
            } else if args.state {
                View::State
            } else {
                View::Offsets
            },
        }
    } else if args.delete {
        GroupsAction::Delete {
            groups: groups("--delete")?,
        }
    } else if args.delete_offsets {
        let [group] = args.group.as_slice() else {
            return Err("--delete-offsets needs exactly one --group".into());
        };
        if args.topic.is_empty() {
            return Err("--delete-offsets needs --topic T (or T:0,1)".into());
        }
        GroupsAction::DeleteOffsets {
            group: group.clone(),
            topics: specs()?,
        }
    } else if args.reset_offsets {
        let mut chosen = Vec::new();
        if args.to_earliest {
            chosen.push(ResetTo::Earliest);
        }
        if args.to_latest {
            chosen.push(ResetTo::Latest);
        }
        if args.to_current {
            chosen.push(ResetTo::Current);
        }
        if let Some(n) = args.to_offset {
            chosen.push(ResetTo::Offset(n));
        }
        if let Some(n) = args.shift_by {
            chosen.push(ResetTo::ShiftBy(n));
        }
        if let Some(t) = &args.to_datetime {
            chosen.push(ResetTo::Datetime(parse_datetime(t)?));
        }
        if let Some(d) = &args.by_duration {
            chosen.push(ResetTo::Ago(parse_duration(d)?));
        }
        if chosen.len() != 1 {
            return Err(
                "--reset-offsets needs exactly one of --to-earliest, --to-latest, \
                        --to-current, --to-offset N, --shift-by N, --to-datetime T, \
                        --by-duration D"
                    .into(),
            );
        }
        let topics = if args.all_topics {
            Topics::All
        } else if args.topic.is_empty() {
            return Err("--reset-offsets needs --topic T (or T:0,1) or --all-topics".into());
        } else {
            Topics::Named(specs()?)
        };
        GroupsAction::Reset {
            groups: groups("--reset-offsets")?,
            topics,
            to: chosen.remove(0),
            execute: args.execute,
        }
    } else {
        return Err(
            "consumer-groups needs an action: --list, --describe, --delete, --delete-offsets \
             or --reset-offsets"
                .into(),
        );
    };
    crate::cli::groups::run(&args.bootstrap_server, action)
}

impl BenchCommand {
    /// Runs the benchmark and prints its report.
    pub fn run(self) -> Result<(), String> {
        match self {
            BenchCommand::LogAppend {
                dir,
                total_mib,
                fsync_total_mib,
                records_per_batch,
                record_bytes,
                producers,
            } => run_async(crate::bench::log_append(
                &dir,
                crate::bench::AppendBenchOptions {
                    total_bytes: total_mib << 20,
                    records_per_batch,
                    record_bytes,
                    producers: producers.max(1),
                    fsync_total_bytes: fsync_total_mib << 20,
                },
            )),
            BenchCommand::Produce {
                bootstrap_server,
                topic,
                num_records,
                record_size,
                batch_records,
                acks,
                connections,
            } => crate::cli::perf::produce(crate::cli::perf::ProduceBench {
                bootstrap: bootstrap_server,
                topic,
                num_records,
                record_size,
                batch_records,
                acks,
                connections,
            }),
            BenchCommand::Consume {
                bootstrap_server,
                topic,
                num_records,
                fetch_max_bytes,
            } => crate::cli::perf::consume(crate::cli::perf::ConsumeBench {
                bootstrap: bootstrap_server,
                topic,
                num_records,
                fetch_max_bytes,
            }),
            BenchCommand::Topics {
                bootstrap_controller,
                count,
                partitions,
                replication_factor,
            } => crate::cli::perf::topics(crate::cli::perf::TopicsBench {
                bootstrap_controllers: bootstrap_controller,
                count: count.max(2),
                partitions,
                replication_factor,
            }),
            BenchCommand::Quorum { dir, proposals } => {
                run_async(async move { crate::bench::quorum(&dir, proposals.max(1)).await })
            }
            BenchCommand::Cleaner {
                dir,
                size_mib,
                keys,
                record_bytes,
                segment_mib,
                throttle_mib_per_s,
            } => run_async(crate::bench::cleaner(
                &dir,
                crate::bench::CleanerBenchOptions {
                    size_bytes: size_mib << 20,
                    keys: keys.max(1),
                    record_bytes: record_bytes.max(8),
                    segment_bytes: segment_mib.max(1) << 20,
                    throttle_bytes_per_second: throttle_mib_per_s.max(1) << 20,
                },
            )),
            BenchCommand::LogRecovery {
                dir,
                size_mib,
                segment_mib,
            } => crate::bench::log_recovery(&dir, size_mib << 20, segment_mib << 20)
                .map_err(|e| e.to_string()),
        }
    }
}

fn run_async(
    fut: impl std::future::Future<Output = crate::bench::BenchResult<()>>,
) -> Result<(), String> {
    crate::runtime::block_on(fut)
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}
