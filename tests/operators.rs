//! What an operator does first, against the real binary: the quickstart's `server.properties`
//! verbatim and the shipped example configs, `ketch storage format|info` with Kafka 4's
//! `--standalone` / `--initial-controllers`, and the start-up errors that must say what to do.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{free_port, run, KETCH};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ketch-ops-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running `ketch server`, killed on drop.
struct Server {
    child: Child,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn start(config: &Path) -> Server {
    let log = config.with_extension("log");
    let child = Command::new(KETCH)
        .arg("server")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    Server { child, log }
}

/// Waits until kcat's metadata from `bootstrap` lists `brokers` brokers.
fn wait_for_brokers(bootstrap: &str, brokers: usize, server: &Server) -> String {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let (ok, out, _) = run("kcat", &["-b", bootstrap, "-L", "-m", "2"], None);
        if ok && out.contains(&format!(" {brokers} brokers:")) {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no {brokers} brokers at {bootstrap}; log:\n{}",
        server.log_text()
    );
}

fn ketch(args: &[&str]) -> (bool, String, String) {
    run(KETCH, args, None)
}

fn format(config: &Path, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["storage", "format", "-t", CLUSTER_ID, "-c"];
    let config = config.to_str().unwrap();
    args.push(config);
    args.extend_from_slice(extra);
    ketch(&args)
}

#[test]
fn the_seeds_quickstart_config_verbatim_formats_and_serves() {
    let dir = scratch("verbatim");
    let (port, controller) = (free_port(), free_port());
    // The issue's file, exactly, but for ports and the directory (tests run side by side).
    let text = format!(
        "process.roles=controller,broker\nnode.id=1\n\
         controller.quorum.voters=1@localhost:{controller}\n\
         listeners=PLAINTEXT://:{port},CONTROLLER://:{controller}\nlog.dirs={}\n",
        dir.join("kafka-logs").display()
    );
    let config = dir.join("server.properties");
    std::fs::write(&config, text).unwrap();

    let (ok, out, err) = ketch(&["storage", "info", "-c", config.to_str().unwrap()]);
    assert!(!ok, "an unformatted node is a problem: {out}");
    assert!(
        out.contains("Found problem") && out.contains("does not exist"),
        "{out}{err}"
    );

    let (ok, out, err) = format(&config, &[]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("with cluster.id {CLUSTER_ID} and node.id 1")),
        "{out}"
    );
    assert!(
        err.contains("controller.listener.names is not set: using the listener named CONTROLLER"),
        "the default is logged: {err}"
    );
    let (ok, out, err) = ketch(&["storage", "info", "-c", config.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Found log directory:"), "{out}");
    assert!(
        out.contains(&format!("{{cluster.id={CLUSTER_ID}, directory.id="))
            && out.contains("node.id=1, version=1}"),
        "{out}"
    );
    let (ok, out, _) = format(&config, &[]);
    assert!(!ok, "a formatted directory is refused without -g: {out}");

    let server = start(&config);
    wait_for_brokers(&format!("127.0.0.1:{port}"), 1, &server);
    assert!(server
        .log_text()
        .contains("controller.listener.names is not set: using the listener named CONTROLLER"));
}

/// The shipped examples, with only their ports and directories replaced.
fn shipped(name: &str, dir: &Path, ports: &[(u16, u16)], dirs: &[(&str, &Path)]) -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in ports {
        text = text.replace(&format!(":{from}"), &format!(":{to}"));
    }
    for (from, to) in dirs {
        assert!(text.contains(from), "{name} names {from}");
        text = text.replace(from, to.to_str().unwrap());
    }
    let out = dir.join(name);
    std::fs::write(&out, text).unwrap();
    out
}

#[test]
fn the_shipped_example_configs_run_a_combined_node_and_a_split_cluster() {
    let dir = scratch("shipped");
    let (port, controller) = (free_port(), free_port());
    let combined = shipped(
        "server.properties",
        &dir,
        &[(9092, port), (9093, controller)],
        &[("/tmp/kraft-combined-logs", &dir.join("combined"))],
    );
    let (ok, out, err) = format(&combined, &[]);
    assert!(ok, "{out}{err}");
    let server = start(&combined);
    let metadata = wait_for_brokers(&format!("127.0.0.1:{port}"), 1, &server);
    assert!(
        metadata.contains(&format!("broker 1 at localhost:{port}")),
        "{metadata}"
    );
    drop(server);

    let (port, controller) = (free_port(), free_port());
    let ports = [(9092, port), (9093, controller)];
    let controller_config = shipped(
        "controller.properties",
        &dir,
        &ports,
        &[("/tmp/kraft-controller-logs", &dir.join("controller"))],
    );
    let broker_config = shipped(
        "broker.properties",
        &dir,
        &ports,
        &[("/tmp/kraft-broker-logs", &dir.join("broker"))],
    );
    for c in [&controller_config, &broker_config] {
        let (ok, out, err) = format(c, &[]);
        assert!(ok, "{}: {out}{err}", c.display());
    }
    let _controller = start(&controller_config);
    let broker = start(&broker_config);
    let metadata = wait_for_brokers(&format!("127.0.0.1:{port}"), 1, &broker);
    assert!(
        metadata.contains(&format!("broker 2 at localhost:{port}")),
        "{metadata}"
    );
    let (ok, out, err) = run(
        KETCH,
        &[
            "topics",
            "--bootstrap-server",
            &format!("127.0.0.1:{port}"),
            "--create",
            "--topic",
            "split",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
}

#[test]
fn kafka_4s_bootstrap_servers_form_needs_standalone_or_initial_controllers() {
    let dir = scratch("k4");
    let (port, controller) = (free_port(), free_port());
    // Kafka 4's shipped config/server.properties, in the keys that matter here.
    let text = format!(
        "process.roles=broker,controller\nnode.id=1\n\
         controller.quorum.bootstrap.servers=localhost:{controller}\n\
         listeners=PLAINTEXT://:{port},CONTROLLER://:{controller}\n\
         inter.broker.listener.name=PLAINTEXT\n\
         advertised.listeners=PLAINTEXT://localhost:{port},CONTROLLER://localhost:{controller}\n\
         controller.listener.names=CONTROLLER\n\
         listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
         num.network.threads=3\nlog.dirs={}\noffsets.topic.replication.factor=1\n",
        dir.join("logs").display()
    );
    let config = dir.join("server.properties");
    std::fs::write(&config, text).unwrap();
    let (ok, _, err) = format(&config, &[]);
    assert!(!ok && err.contains("--standalone"), "{err}");
    assert!(
        !dir.join("logs/meta.properties").exists(),
        "a refused format writes nothing"
    );
    let (ok, _, err) = format(
        &config,
        &[
            "--initial-controllers",
            "2@localhost:1:pbvuBlaTTwKRxS5NLJwRFQ",
        ],
    );
    assert!(!ok && err.contains("does not name this node"), "{err}");
    let (ok, _, err) = format(&config, &["--initial-controllers", "1@localhost:1"]);
    assert!(!ok && err.contains("id@host:port:directory-id"), "{err}");

    let (ok, out, err) = format(&config, &["--standalone"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("voters (1@localhost:{controller})")),
        "{out}"
    );
    let (ok, out, _) = ketch(&["storage", "info", "-c", config.to_str().unwrap()]);
    assert!(ok && out.contains("bootstrap voters in"), "{out}");
    let server = start(&config);
    wait_for_brokers(&format!("127.0.0.1:{port}"), 1, &server);
    drop(server);

    // --initial-controllers: this node's directory id is the metadata directory's.
    let dir2 = dir.join("two");
    std::fs::create_dir_all(&dir2).unwrap();
    let config2 = dir2.join("server.properties");
    std::fs::write(
        &config2,
        std::fs::read_to_string(&config).unwrap().replace(
            dir.join("logs").to_str().unwrap(),
            dir2.join("logs").to_str().unwrap(),
        ),
    )
    .unwrap();
    let voters = format!("1@localhost:{controller}:pbvuBlaTTwKRxS5NLJwRFQ");
    let (ok, out, err) = format(&config2, &["--initial-controllers", &voters]);
    assert!(ok, "{out}{err}");
    let meta = std::fs::read_to_string(dir2.join("logs/meta.properties")).unwrap();
    assert!(
        meta.contains("directory.id=pbvuBlaTTwKRxS5NLJwRFQ"),
        "{meta}"
    );
    let server = start(&config2);
    wait_for_brokers(&format!("127.0.0.1:{port}"), 1, &server);
}

#[test]
fn configs_a_node_cannot_honour_are_refused_with_what_to_do() {
    let dir = scratch("refused");
    let logs = dir.join("logs");
    let base = format!(
        "node.id=1\ncontroller.quorum.voters=1@localhost:19093\nlog.dirs={}\n",
        logs.display()
    );
    for (extra, expect) in [
        (
            "listeners=PLAINTEXT://:19092,CONTROLLER://:19093\n",
            "missing required key 'process.roles'",
        ),
        (
            "process.roles=broker,controller\nlisteners=SSL://:19092,CONTROLLER://:19093\n",
            "SSL listener 'SSL' needs this node's certificate and key",
        ),
        (
            "process.roles=broker,controller\nlisteners=CLIENT://:19092,CONTROLLER://:19093\n\
             listener.security.protocol.map=CLIENT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT\n\
             sasl.enabled.mechanisms=GSSAPI\n",
            "mechanism GSSAPI is not implemented",
        ),
        (
            "process.roles=broker,controller\nlisteners=INTERNAL://:19092,CONTROLLER://:19093\n",
            "listener.security.protocol.map must give its protocol",
        ),
        (
            "process.roles=broker,controller\nlisteners=PLAINTEXT://localhost,CONTROLLER://:19093\n",
            "'PLAINTEXT://localhost' needs a port",
        ),
        (
            "process.roles=broker\nlisteners=PLAINTEXT://:19092\n",
            "is a voter in controller.quorum.voters but process.roles has no controller",
        ),
        (
            "process.roles=controller\nlisteners=PLAINTEXT://:19092\n",
            "controller.listener.names",
        ),
    ] {
        let config = dir.join("server.properties");
        std::fs::write(&config, format!("{base}{extra}")).unwrap();
        for args in [
            vec!["server", config.to_str().unwrap()],
            vec!["storage", "format", "-t", CLUSTER_ID, "-c", config.to_str().unwrap()],
        ] {
            let (ok, _, err) = ketch(&args);
            assert!(!ok && err.contains(expect), "{args:?} with {extra}: {err}");
            assert!(!logs.exists(), "{args:?} with {extra} wrote {}", logs.display());
        }
    }
    let config = dir.join("nodirs.properties");
    std::fs::write(
        &config,
        "node.id=1\nprocess.roles=broker,controller\ncontroller.quorum.voters=1@localhost:19093\n\
         listeners=PLAINTEXT://:19092,CONTROLLER://:19093\n",
    )
    .unwrap();
    let (ok, _, err) = ketch(&["server", config.to_str().unwrap()]);
    assert!(
        !ok && err.contains("missing required key 'log.dirs'"),
        "{err}"
    );

    let config = dir.join("good.properties");
    std::fs::write(
        &config,
        format!("{base}process.roles=broker,controller\nlisteners=PLAINTEXT://:19092,CONTROLLER://:19093\n"),
    )
    .unwrap();
    for bad in ["x", "MkU3OEVBNTcwNTJENDM2Q", "MkU3OEVBNTcwNTJENDM2Q!"] {
        let (ok, _, err) = ketch(&[
            "storage",
            "format",
            "-t",
            bad,
            "-c",
            config.to_str().unwrap(),
        ]);
        assert!(!ok && err.contains("is not a Kafka UUID"), "{bad}: {err}");
    }
    assert!(!logs.exists());
    // Not a terminal: no colour codes in the log.
    let (_, _, err) = ketch(&["storage", "info", "-c", config.to_str().unwrap()]);
    assert!(!err.contains('\u{1b}'), "ANSI escapes in {err:?}");
}

/// Runs `ketch consumer-groups --bootstrap-server B args…`: (success, stdout, stderr).
fn groups(bootstrap: &str, args: &[&str]) -> (bool, String, String) {
    let mut all = vec!["consumer-groups", "--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    ketch(&all)
}

/// A combined node with `topic` of `partitions` partitions, and its bootstrap address.
fn node_with_topic(name: &str, topic: &str, partitions: u32) -> (common::Node, String) {
    let node = common::Node::new(name, "");
    let b = node.bootstrap();
    let partitions = partitions.to_string();
    let (ok, out, err) = ketch(&[
        "topics",
        "--bootstrap-server",
        &b,
        "--create",
        "--topic",
        topic,
        "--partitions",
        &partitions,
    ]);
    assert!(ok, "{out}{err}");
    (node, b)
}

/// `groups` with the arguments as one line split on spaces.
fn g(bootstrap: &str, line: &str) -> (bool, String, String) {
    groups(bootstrap, &line.split(' ').collect::<Vec<_>>())
}

/// The NEW-OFFSET or CURRENT-OFFSET column (the fourth) of the table under GROUP.
fn offsets_column(out: &str) -> Vec<String> {
    table(out, "GROUP").iter().map(|r| r[3].clone()).collect()
}

/// The data rows of the table printed under `header_start`, split on whitespace.
fn table(out: &str, header_start: &str) -> Vec<Vec<String>> {
    out.lines()
        .skip_while(|l| !l.starts_with(header_start))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

#[test]
fn consumer_groups_describe_members_state_reset_delete_as_kafkas_tool() {
    let (_node, b) = node_with_topic("groups-tool", "cg", 2);
    let hundred: String = (0..100).map(|i| format!("{i}\n")).collect();
    for (p, n) in [("0", 100), ("1", 50)] {
        let lines: String = hundred.lines().take(n).map(|l| format!("{l}\n")).collect();
        let (ok, _, err) = run("kcat", &["-b", &b, "-P", "-t", "cg", "-p", p], Some(&lines));
        assert!(ok, "{err}");
    }

    // An inactive group: offsets with Kafka's columns, lag against the log end.
    let (ok, out, err) = g(
        &b,
        "--reset-offsets --group idle --topic cg --to-offset 10 --execute",
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = g(&b, "--describe --group idle");
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Consumer group 'idle' has no active members."),
        "{out}"
    );
    assert!(
        out.contains(
            "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID"
        ),
        "{out}"
    );
    assert_eq!(
        table(&out, "GROUP"),
        vec![
            ["idle", "cg", "0", "10", "100", "90", "-", "-", "-"]
                .map(String::from)
                .to_vec(),
            ["idle", "cg", "1", "10", "50", "40", "-", "-", "-"]
                .map(String::from)
                .to_vec(),
        ],
        "{out}"
    );

    // Resets: clamped with a note, shifted, by time; dry runs change nothing.
    let (ok, out, err) = g(
        &b,
        "--reset-offsets --group idle --topic cg --to-offset 1000",
    );
    assert!(ok && out.contains("dry run"), "{out}{err}");
    assert!(err.contains("New offset (1000) is higher than latest offset for topic partition cg-0. Value will be set to 100"), "{err}");
    assert_eq!(offsets_column(&out), ["100", "50"]);
    let (ok, out, err) = g(
        &b,
        "--reset-offsets --group idle --topic cg:1 --shift-by -25 --execute",
    );
    assert!(ok, "{out}{err}");
    assert!(
        err.contains(
            "New offset (-15) is lower than earliest offset for topic partition cg-1. Value will be set to 0"
        ),
        "{out}{err}"
    );
    let (_, out, _) = g(&b, "--describe --group idle");
    assert_eq!(
        offsets_column(&out),
        ["10", "0"],
        "the dry run left partition 0 at 10; cg:1 shifted from 10 by -25, clamped to 0: {out}"
    );
    let (ok, out, err) = g(
        &b,
        "--reset-offsets --group idle --all-topics --by-duration PT1H --execute",
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        offsets_column(&out),
        ["0", "0"],
        "everything was written within the hour: {out}"
    );
    let (ok, out, err) = g(
        &b,
        "--reset-offsets --group idle --topic cg --to-datetime 2999-01-01T00:00:00.000 --execute",
    );
    assert!(ok, "{out}{err}");
    assert_eq!(
        offsets_column(&out),
        ["100", "50"],
        "nothing at or after 2999: the log end: {out}"
    );
    let (ok, _, err) = g(
        &b,
        "--reset-offsets --group idle --topic cg --to-datetime tomorrow",
    );
    assert!(!ok && err.contains("YYYY-MM-DDTHH:mm:SS"), "{err}");

    // A live member (kcat's balanced consumer): its id, host and client id, --members, --state.
    let mut member = Command::new("kcat")
        .args(["-b", &b, "-G", "live", "cg", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let state = loop {
        let (_, out, _) = g(&b, "--describe --group live --state");
        let rows = table(&out, "GROUP");
        if rows
            .first()
            .is_some_and(|r| r.contains(&"Stable".to_string()))
            || start.elapsed() > Duration::from_secs(20)
        {
            break rows;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(state[0][0], "live");
    assert!(
        state[0].ends_with(&["range".to_string(), "Stable".to_string(), "1".to_string()]),
        "{state:?}"
    );
    let (ok, out, _) = g(&b, "--describe --group live --members --verbose");
    assert!(
        ok && out.contains("GROUP CONSUMER-ID") && out.contains("#PARTITIONS ASSIGNMENT"),
        "{out}"
    );
    let rows = table(&out, "GROUP");
    // kcat's member is dynamic: no group.instance.id.
    assert!(
        rows.len() == 1
            && rows[0][2] == "-"
            && rows[0][3] == "/127.0.0.1"
            && rows[0][4] == "rdkafka"
            && rows[0][5] == "2"
            && rows[0][6] == "cg(0,1)",
        "{out}"
    );
    let (_, out, _) = g(&b, "--describe --group live");
    let rows = table(&out, "GROUP");
    assert!(
        rows.len() == 2
            && rows
                .iter()
                .all(|r| r[6].starts_with("rdkafka-") && r[8] == "rdkafka"),
        "{out}"
    );
    let (ok, _, err) = g(&b, "--delete --group live");
    assert!(
        !ok && err.contains("Group 'live' could not be deleted due to: NON_EMPTY_GROUP"),
        "{err}"
    );
    let (ok, _, err) = g(
        &b,
        "--reset-offsets --group live --topic cg --to-earliest --execute",
    );
    assert!(!ok && err.contains("inactive"), "{err}");
    let (ok, out, _) = g(&b, "--list --state");
    assert!(ok && table(&out, "GROUP").len() == 2, "{out}");
    let _ = member.kill();
    let _ = member.wait();

    // Offsets of one partition, then the whole group, deleted; a missing group is an error.
    let (ok, out, err) = g(&b, "--delete-offsets --group idle --topic cg:1");
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("Request succeed for deleting offsets with topic cg group idle"),
        "{out}"
    );
    assert_eq!(
        table(&out, "TOPIC"),
        vec![["cg", "1", "Successful"].map(String::from).to_vec()]
    );
    let (_, out, _) = g(&b, "--describe --group idle");
    assert_eq!(table(&out, "GROUP").len(), 1, "{out}");
    let (ok, out, err) = g(&b, "--delete --group idle");
    assert!(
        ok && out.contains("Deletion of requested consumer groups ('idle') was successful."),
        "{out}{err}"
    );
    let (ok, _, err) = g(&b, "--describe --group idle");
    assert!(
        !ok && err.contains("Consumer group 'idle' does not exist."),
        "{err}"
    );
    let (ok, _, err) = g(&b, "--describe");
    assert!(!ok && err.contains("--group G or --all-groups"), "{err}");
}

#[test]
fn configs_and_topics_alter_describe_and_apply_without_a_restart() {
    let node = common::Node::new("configs-tool", "");
    let b = node.bootstrap();
    let k = |line: &str| {
        let mut args = line.split(' ').collect::<Vec<_>>();
        args.insert(1, "--bootstrap-server");
        args.insert(2, &b);
        ketch(&args)
    };
    let (ok, out, err) = k("topics --create --topic ct --config retention.ms=1000");
    assert!(ok, "{out}{err}");
    let (ok, _, err) = k("topics --create --topic ct");
    assert!(!ok && err.contains("already exists"), "{err}");
    assert!(k("topics --create --topic ct --if-not-exists").0);
    let (ok, out, err) = k(
        "topics --alter --topic ct --config segment.bytes=1048576 --delete-config retention.ms --partitions 2",
    );
    assert!(
        ok && out.contains("Updated config for topic ct."),
        "{out}{err}"
    );
    let (ok, out, _) = k("topics --describe --topic ct");
    assert!(ok, "{out}");
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.starts_with("Topic: ct\t")
            && header.ends_with(
                "\tPartitionCount: 2\tReplicationFactor: 1\tConfigs: segment.bytes=1048576"
            ),
        "{out}"
    );
    let (ok, out, _) = k("topics --describe --under-replicated-partitions");
    assert!(
        ok && out.trim().is_empty(),
        "one broker, RF 1: nothing under-replicated: {out}"
    );
    let (ok, out, _) = k("topics --describe --unavailable-partitions");
    assert!(ok && out.trim().is_empty(), "{out}");
    assert!(k("topics --alter --topic nope --partitions 3 --if-exists").0);
    let (ok, _, err) = k("topics --delete --topic nope");
    assert!(!ok && err.contains("error code 3"), "{err}");
    let (ok, _, err) = k("topics --delete --topic __consumer_offsets");
    assert!(!ok && err.contains("internal topic"), "{err}");
    let (ok, _, err) = k("topics");
    assert!(!ok && err.contains("topics needs an action"), "{err}");

    // kafka-configs.sh: topic overrides and their synonyms.
    let (ok, out, err) = k("configs --entity-type topics --entity-name ct --alter --add-config retention.ms=60000,max.message.bytes=2000000");
    assert!(
        ok && out.contains("Completed updating config for topic ct."),
        "{out}{err}"
    );
    let (ok, out, _) = k("configs --entity-type topics --entity-name ct --describe");
    assert!(
        ok && out.starts_with("Dynamic configs for topic ct are:\n"),
        "{out}"
    );
    assert!(out.contains("  retention.ms=60000 sensitive=false synonyms={DYNAMIC_TOPIC_CONFIG:retention.ms=60000, DEFAULT_CONFIG:log.retention.ms=604800000}"), "{out}");
    assert!(out.contains("  segment.bytes=1048576 "), "{out}");
    let (ok, _, err) = k(
        "configs --entity-type topics --entity-name ct --alter --add-config cleanup.policy=shred",
    );
    assert!(
        !ok && err.contains("delete, compact or compact,delete"),
        "{err}"
    );
    // Compaction is a policy like the others (kafka-configs.sh's list syntax).
    let (ok, out, err) = k("configs --entity-type topics --entity-name ct --alter --add-config cleanup.policy=[compact,delete],min.cleanable.dirty.ratio=0.1");
    assert!(ok, "{out}{err}");
    let (ok, out, _) = k("configs --entity-type topics --entity-name ct --describe");
    assert!(
        ok && out.contains("  cleanup.policy=compact,delete ")
            && out.contains("  min.cleanable.dirty.ratio=0.1 "),
        "{out}"
    );
    let (ok, _, err) = k("configs --entity-type topics --entity-name ct --alter --delete-config cleanup.policy,min.cleanable.dirty.ratio");
    assert!(ok, "{err}");

    // Dynamic broker configs: the cluster default and this broker's own, applied at once.
    let (ok, out, err) = k("configs --entity-type brokers --entity-default --alter --add-config log.retention.ms=3600000,min.insync.replicas=2");
    assert!(
        ok && out.contains("Completed updating default config for brokers in the cluster."),
        "{out}{err}"
    );
    let (ok, out, err) = k("configs --entity-type brokers --entity-name 1 --alter --add-config log.retention.bytes=1000000");
    assert!(
        ok && out.contains("Completed updating config for broker 1."),
        "{out}{err}"
    );
    let (ok, out, _) = k("configs --entity-type brokers --entity-default --describe");
    assert!(
        ok && out.contains("Default configs for brokers in the cluster are:")
            && out.contains("  log.retention.ms=3600000 ")
            && !out.contains("log.retention.bytes"),
        "{out}"
    );
    let (ok, out, _) = k("configs --entity-type brokers --entity-name 1 --describe");
    assert!(
        ok && out.contains("Dynamic configs for broker 1 are:")
            && out.contains("  log.retention.bytes=1000000 ")
            && !out.contains("min.insync.replicas"),
        "only the broker's own dynamic configs (the default's are the default's): {out}"
    );
    let (ok, out, _) = k("configs --entity-type brokers --entity-name 1 --describe --all");
    assert!(
        ok && out.contains("  min.insync.replicas=2 sensitive=false synonyms={}"),
        "{out}"
    );
    let (ok, out, _) = k("topics --describe --topic ct");
    assert!(
        ok && out.lines().next().unwrap_or("").contains("Configs: ")
            && out.contains("min.insync.replicas=2")
            && out.contains("retention.ms=60000"),
        "Configs: lists every value that is not Kafka's default: {out}"
    );
    let (ok, out, _) = k("configs --entity-type topics --entity-name ct --describe --all");
    assert!(ok && out.contains("  min.insync.replicas=2 sensitive=false synonyms={DYNAMIC_DEFAULT_BROKER_CONFIG:min.insync.replicas=2"), "the topic falls back to the dynamic default: {out}");
    // min.insync.replicas=2 on a one-broker cluster: acks=all is refused, then accepted once
    // the dynamic default is removed, without a restart.
    let produce = || {
        run(
            "kcat",
            &[
                "-b",
                &b,
                "-P",
                "-t",
                "ct",
                "-p",
                "0",
                "-X",
                "acks=all",
                "-X",
                "message.timeout.ms=3000",
            ],
            Some("x\n"),
        )
    };
    let (ok, _, err) = produce();
    assert!(
        !ok || err.contains("Delivery failed"),
        "acks=all with 1 of 2 in-sync replicas: {err}"
    );
    let (ok, out, err) = k("configs --entity-type brokers --entity-default --alter --delete-config min.insync.replicas");
    assert!(ok, "{out}{err}");
    let (ok, _, err) = produce();
    assert!(ok && !err.contains("Delivery failed"), "{err}");
    let (ok, _, err) =
        k("configs --entity-type brokers --entity-name 1 --alter --add-config num.partitions=3");
    assert!(
        !ok && err.contains("Cannot update num.partitions without a restart")
            && err.contains("INVALID_CONFIG"),
        "{err}"
    );
    let (ok, _, err) = k("configs --entity-type users --entity-name u --describe");
    assert!(
        !ok && err.contains("no SCRAM credential for user u"),
        "{err}"
    );
    let (ok, _, err) = k("configs --entity-type clients --entity-name c --describe");
    assert!(!ok && err.contains("not implemented"), "{err}");
}

#[test]
fn metadata_quorum_through_a_broker_and_a_follower_shows_the_leaders_view() {
    let dir = scratch("quorum-tool");
    let broker_port = free_port();
    let mut cluster = common::build_cluster(&dir, 4, |i, _, port| {
        if i < 3 {
            format!(
                "process.roles=controller\nlisteners=CONTROLLER://127.0.0.1:{port}\n\
                 controller.listener.names=CONTROLLER\n"
            )
        } else {
            format!(
                "process.roles=broker\nlisteners=PLAINTEXT://127.0.0.1:{broker_port}\n\
                 controller.listener.names=CONTROLLER\n"
            )
        }
    });
    for i in 0..4 {
        cluster.start(i);
    }
    let broker = format!("127.0.0.1:{broker_port}");
    let describe = |flag: &str, addr: &str, extra: &[&str]| {
        let mut args = vec!["metadata-quorum", flag, addr, "describe", "--status"];
        args.extend_from_slice(extra);
        ketch(&args)
    };
    let voters = |out: &str| -> Vec<i32> {
        let mut ids: Vec<i32> = out
            .lines()
            .find_map(|l| l.strip_prefix("CurrentVoters:"))
            .map(|l| {
                l.trim()
                    .trim_matches(['[', ']'])
                    .split(',')
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    // Every view names the leader the members agree on. A re-election between two reads (the
    // box may be busy) makes an attempt fail; it is tried again with the new leader.
    let attempt = || -> Result<(), String> {
        let (leader, _, _) = cluster.wait_for_leader(0, Duration::from_secs(20));
        let leader_line = format!("LeaderId:               {leader}");
        // Through the broker (forwarded to the leader), once the broker follows the log.
        let (ok, out, err) = describe("--bootstrap-server", &broker, &[]);
        if !(ok
            && out.contains("CurrentObservers:       [4]")
            && out.contains(&leader_line)
            && voters(&out) == [1, 2, 3])
        {
            return Err(format!("via the broker: {out}{err}"));
        }
        for (i, port) in cluster.ports.iter().enumerate() {
            let addr = format!("127.0.0.1:{port}");
            let (ok, out, err) = describe("--bootstrap-controller", &addr, &[]);
            if !(ok && out.contains(&leader_line) && !out.contains("unknown")) {
                return Err(format!(
                    "node {}: a follower forwards to the leader: {out}{err}",
                    i + 1
                ));
            }
            let (ok, out, err) = describe("--bootstrap-controller", &addr, &["--local"]);
            if !ok || out.contains("MaxFollowerLag:         unknown") != (i as i32 + 1 != leader) {
                return Err(format!("--local is node {}'s own view: {out}{err}", i + 1));
            }
        }
        Ok(())
    };
    let start = Instant::now();
    while let Err(e) = attempt() {
        assert!(start.elapsed() < Duration::from_secs(30), "{e}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, _, err) = describe("--bootstrap-controller", &broker, &[]);
    assert!(
        !ok && err.contains("is a broker's client listener"),
        "{err}"
    );
    let (ok, _, err) = ketch(&[
        "topics",
        "--bootstrap-server",
        &format!("127.0.0.1:{}", cluster.ports[0]),
        "--list",
    ]);
    assert!(!ok && err.contains("is a controller listener"), "{err}");
}

#[test]
fn get_offsets_and_dump_log_as_kafkas_tools() {
    let (node, b) = node_with_topic("offsets-tool", "dl", 2);
    let (ok, _, err) = run(
        "kcat",
        &["-b", &b, "-P", "-t", "dl", "-p", "0", "-K", ":"],
        Some("a:1\nb:2\nc:3\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = ketch(&["get-offsets", "--bootstrap-server", &b, "--topic", "dl"]);
    assert!(ok && out == "dl:0:3\ndl:1:0\n", "{out}{err}");
    let (ok, out, _) = ketch(&[
        "get-offsets",
        "--bootstrap-server",
        &b,
        "--topic",
        "dl",
        "--partitions",
        "0",
        "--time",
        "earliest",
    ]);
    assert!(ok && out == "dl:0:0\n", "{out}");
    let (ok, _, err) = ketch(&[
        "get-offsets",
        "--bootstrap-server",
        &b,
        "--topic",
        "dl",
        "--time",
        "soon",
    ]);
    assert!(!ok && err.contains("--time takes"), "{err}");

    let segment = node.dir.join("data/dl-0/00000000000000000000.log");
    let (ok, out, err) = ketch(&[
        "dump-log",
        "--files",
        segment.to_str().unwrap(),
        "--print-data-log",
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("Log starting offset: 0"), "{out}");
    assert!(
        out.contains("baseOffset: 0 lastOffset: 2 count: 3 baseSequence:")
            && out.contains(" position: 0 CreateTime: ")
            && out.contains("compresscodec: none crc: ")
            && out.contains("isvalid: true"),
        "{out}"
    );
    assert!(
        out.contains("| offset: 1 CreateTime: ")
            && out.contains("keySize: 1 valueSize: 1 sequence: ")
            && out.contains(" key: b payload: 2"),
        "{out}"
    );
    // A flipped byte fails the CRC check; trailing garbage is reported.
    let mut bytes = std::fs::read(&segment).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 9, 0]);
    let copy = node.dir.join("00000000000000000000.log");
    std::fs::write(&copy, &bytes).unwrap();
    let (ok, out, err) = ketch(&["dump-log", "--files", copy.to_str().unwrap()]);
    assert!(
        !ok && out.contains("isvalid: false (CRC-32C mismatch"),
        "{out}{err}"
    );
    assert!(
        out.contains("Found 9 invalid bytes at the end of 00000000000000000000.log"),
        "{out}"
    );
    // kafka-log-dirs.sh: the JSON document, sizes as on disk.
    let (ok, out, err) = ketch(&[
        "log-dirs",
        "--bootstrap-server",
        &b,
        "--describe",
        "--topic-list",
        "dl",
    ]);
    assert!(ok, "{out}{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("Querying brokers for log directories information")
    );
    assert_eq!(
        lines.next(),
        Some("Received log directory information from brokers 1")
    );
    let doc: serde_json::Value = serde_json::from_str(lines.next().unwrap_or("")).unwrap();
    let dir = &doc["brokers"][0]["logDirs"][0];
    assert_eq!(
        dir["logDir"],
        node.dir.join("data").display().to_string(),
        "{doc}"
    );
    let partitions = dir["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 2, "dl's two partitions only: {doc}");
    assert_eq!(partitions[0]["partition"], "dl-0");
    assert_eq!(
        partitions[0]["size"].as_u64(),
        Some(std::fs::metadata(&segment).unwrap().len()),
        "{doc}"
    );
    // The indexes: enough small batches into dl-1 for several entries, flushed by a stop.
    let lines: String = (0..400).map(|i| format!("{i:0>100}\n")).collect();
    let (ok, _, err) = run(
        "kcat",
        &[
            "-b",
            &b,
            "-P",
            "-t",
            "dl",
            "-p",
            "1",
            "-X",
            "batch.num.messages=20",
        ],
        Some(&lines),
    );
    assert!(ok, "{err}");
    let mut node = node;
    assert!(node.stop().success());
    let data = node.dir.join("data/dl-1");
    let index = data.join("00000000000000000000.index");
    let (ok, out, err) = ketch(&["dump-log", "--files", index.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    let entries: Vec<&str> = out.lines().skip(1).collect();
    assert!(
        entries.len() >= 2
            && entries
                .iter()
                .all(|l| l.starts_with("offset: ") && l.contains(" position: ")),
        "{out}"
    );
    let timeindex = data.join("00000000000000000000.timeindex");
    let (ok, out, err) = ketch(&["dump-log", "--files", timeindex.to_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert!(
        out.lines()
            .skip(1)
            .all(|l| l.starts_with("timestamp: ") && l.contains(" offset: ")),
        "{out}"
    );
    // An entry pointing at the wrong batch is a mismatch (exit 1), checked against the segment.
    let bad = node.dir.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(
        data.join("00000000000000000000.log"),
        bad.join("00000000000000000000.log"),
    )
    .unwrap();
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[7] = bytes[7].wrapping_add(1); // the first entry's position, one byte on
    let bad_index = bad.join("00000000000000000000.index");
    std::fs::write(&bad_index, &bytes).unwrap();
    let (ok, out, err) = ketch(&["dump-log", "--files", bad_index.to_str().unwrap()]);
    assert!(
        !ok && out.contains("Mismatches in :") && out.contains("no valid batch at position"),
        "{out}{err}"
    );
    let (ok, _, err) = ketch(&[
        "dump-log",
        "--files",
        data.join("partition.metadata").to_str().unwrap(),
    ]);
    assert!(
        !ok && err.contains("reads .log, .index and .timeindex"),
        "{err}"
    );
}

#[test]
fn console_tools_take_kafkas_properties_partitions_and_offsets() {
    let (_node, b) = node_with_topic("console-tool", "cc", 3);
    // Keyless records: sticky per batch.size, so they spread over the partitions.
    let lines: String = (0..3000).map(|i| format!("{i}\n")).collect();
    let (ok, _, err) = run(
        KETCH,
        &[
            "console-producer",
            "--bootstrap-server",
            &b,
            "--topic",
            "cc",
            "--producer-property",
            "batch.size=2000",
        ],
        Some(&lines),
    );
    assert!(ok, "{err}");
    let (_, out, _) = ketch(&["get-offsets", "--bootstrap-server", &b, "--topic", "cc"]);
    let ends: Vec<u64> = out
        .lines()
        .filter_map(|l| l.rsplit(':').next()?.parse().ok())
        .collect();
    assert_eq!(ends.iter().sum::<u64>(), 3000, "{out}");
    assert!(
        ends.iter().all(|n| *n > 0),
        "every partition got keyless records: {out}"
    );
    // Keys (murmur2 partitioned) and a null value through null.marker.
    let (ok, _, err) = run(
        KETCH,
        &[
            "console-producer",
            "--bootstrap-server",
            &b,
            "--topic",
            "cc",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
            "--property",
            "null.marker=NULL",
        ],
        Some("k1:v1\nk1:NULL\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = run(
        "kcat",
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "cc",
            "-o",
            "beginning",
            "-e",
            "-q",
            "-f",
            "%k=%S %p\n",
        ],
        None,
    );
    assert!(ok, "{err}");
    let keyed: Vec<&str> = out.lines().filter(|l| l.starts_with("k1=")).collect();
    assert_eq!(keyed.len(), 2, "{out}");
    assert!(
        keyed[0].ends_with(keyed[1].rsplit(' ').next().unwrap()),
        "one key, one partition: {keyed:?}"
    );
    assert!(
        keyed[1].starts_with("k1=-1 "),
        "kcat prints a null value's size as -1: {keyed:?}"
    );

    // The formatter's columns, a partition and an offset.
    let (ok, out, err) = ketch(&[
        "console-consumer",
        "--bootstrap-server",
        &b,
        "--topic",
        "cc",
        "--partition",
        "0",
        "--offset",
        "2",
        "--max-messages",
        "2",
        "--property",
        "print.timestamp=true",
        "--property",
        "print.partition=true",
        "--property",
        "print.offset=true",
        "--property",
        "print.key=true",
        "--property",
        "key.separator=|",
    ]);
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0][0].starts_with("CreateTime:")
            && rows[0][1] == "Partition:0"
            && rows[0][2] == "Offset:2"
            && rows[0][3] == "null",
        "{out}"
    );
    assert_eq!(rows[1][2], "Offset:3", "{out}");
    // An offset past the log follows auto.offset.reset.
    let (ok, out, err) = ketch(&[
        "console-consumer",
        "--bootstrap-server",
        &b,
        "--topic",
        "cc",
        "--partition",
        "1",
        "--offset",
        "99999",
        "--max-messages",
        "1",
        "--consumer-property",
        "auto.offset.reset=earliest",
        "--property",
        "print.offset=true",
        "--property",
        "print.value=false",
    ]);
    assert!(ok && out == "Offset:0\n", "{out}{err}");
    assert!(
        err.contains(
            "Fetch position 99999 is out of range for partition cc-1, resetting offset to 0"
        ),
        "{err}"
    );
    let (ok, _, err) = ketch(&[
        "console-consumer",
        "--bootstrap-server",
        &b,
        "--topic",
        "cc",
        "--partition",
        "1",
        "--offset",
        "99999",
        "--max-messages",
        "1",
        "--consumer-property",
        "auto.offset.reset=none",
    ]);
    assert!(!ok && err.contains("OFFSET_OUT_OF_RANGE"), "{err}");
    for (flag, prop) in [
        ("--property", "frobnicate=1"),
        ("--consumer-property", "fetch.min.bytes=1"),
    ] {
        let (ok, _, err) = ketch(&[
            "console-consumer",
            "--bootstrap-server",
            &b,
            "--topic",
            "cc",
            flag,
            prop,
        ]);
        assert!(!ok && err.contains("unknown property"), "{err}");
    }
    let (ok, _, err) = run(
        KETCH,
        &[
            "console-producer",
            "--bootstrap-server",
            &b,
            "--topic",
            "cc",
            "--producer-property",
            "linger.ms=5",
        ],
        Some(""),
    );
    assert!(!ok && err.contains("unknown property"), "{err}");
}

/// `ketch delete-records` on one node: the log start moves inside a batch, kcat reads from it,
/// a fetch below it is out of range, and the start survives a SIGKILL (it is checkpointed in
/// `log-start-offset-checkpoint` before the answer). Bad JSON and duplicates are refused.
#[test]
fn delete_records_moves_the_log_start_and_survives_a_kill() {
    let (mut node, b) = node_with_topic("delrec", "dr", 1);
    // One batch of ten records: the new start lies inside it.
    let lines: String = (0..10).map(|i| format!("v{i}\n")).collect();
    let (ok, _, err) = run(
        "kcat",
        &["-b", &b, "-P", "-t", "dr", "-p", "0"],
        Some(&lines),
    );
    assert!(ok, "{err}");
    let file = node.dir.join("offsets.json");
    std::fs::write(
        &file,
        r#"{"partitions": [{"topic": "dr", "partition": 0, "offset": 4}], "version": 1}"#,
    )
    .unwrap();
    let file_arg = file.to_string_lossy().to_string();
    let delete = || {
        ketch(&[
            "delete-records",
            "--bootstrap-server",
            &b,
            "--offset-json-file",
            &file_arg,
        ])
    };
    let (ok, out, err) = delete();
    assert!(ok, "{out}{err}");
    assert_eq!(
        out,
        "Executing records delete operation\nRecords delete operation completed:\npartition: dr-0\tlow_watermark: 4\n"
    );
    let check = |b: &str| {
        let (_, out, _) = ketch(&[
            "get-offsets",
            "--bootstrap-server",
            b,
            "--topic",
            "dr",
            "--time",
            "earliest",
        ]);
        assert_eq!(out.trim(), "dr:0:4");
        let out = common::kcat_read_all(b, "dr");
        assert_eq!(out, "4 v4\n5 v5\n6 v6\n7 v7\n8 v8\n9 v9\n");
    };
    check(&b);
    node.kill();
    node.start();
    check(&b);
    // A fetch below the start: out of range (kcat resets to the end and says why).
    let (_, _, err) = run("kcat", &["-C", "-b", &b, "-t", "dr", "-o", "2", "-e"], None);
    assert!(err.contains("Offset out of range"), "{err}");
    std::fs::write(
        &file,
        r#"{"partitions": [{"topic": "dr", "partition": 0, "offset": 5}, {"topic": "dr", "partition": 0, "offset": 6}]}"#,
    )
    .unwrap();
    let (ok, _, err) = delete();
    assert!(
        !ok && err.contains("duplicate topic partitions: dr-0"),
        "{err}"
    );
    std::fs::write(&file, r#"{"partitions": [{"topic": "dr"}]}"#).unwrap();
    let (ok, _, err) = delete();
    assert!(!ok && err.contains("needs \"topic\""), "{err}");
}
