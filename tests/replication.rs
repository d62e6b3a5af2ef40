//! Replication end to end: three combined `ketch` nodes on 127.0.0.1 with an RF=3 topic and
//! `min.insync.replicas=2`, a real idempotent acks=all producer (confluent-kafka, librdkafka),
//! and faults from outside: SIGKILL and restart, SIGSTOP past `replica.lag.time.max.ms` and
//! SIGCONT, two of three brokers down, everything killed at once. After healing, every
//! replica's log is read from disk and checked: every acknowledged record is there exactly
//! once, at the offset it was acknowledged at, in the order it was sent, on every replica;
//! the replicas' logs are byte-identical.
//!
//! The seeded chaos test draws its schedule from the seed (`KETCH_CHAOS_SEEDS=a..b` runs
//! more) and reports the anomalies Jepsen names: lost, duplicated, moved, reordered.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{python, Cluster, KETCH};
use kafka_protocol::messages::{AlterPartitionRequest, ApiKey, RequestKind, ResponseKind};
use ketch::protocol::record_batch::{records, RecordBatch};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOPIC_PARTITIONS: i32 = 3;

/// Faster failure detection than the defaults, so a test takes seconds, not minutes.
const FAST: &str = "broker.heartbeat.interval.ms=300\nbroker.session.timeout.ms=3000\n\
                    replica.lag.time.max.ms=2000\ngroup.initial.rebalance.delay.ms=0\n";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/replication.py")
}

/// A cluster whose brokers are nodes `first_broker..first_broker + 3` (broker id = index + 1).
struct Replicated {
    cluster: Cluster,
    /// The client listener of each node (0 for a controller-only node).
    client_ports: Vec<u16>,
    first_broker: usize,
}

impl Replicated {
    /// Three combined nodes (broker and controller each).
    fn new(name: &str, extra: &str) -> Replicated {
        Replicated::build(name, extra, false)
    }

    /// Three controllers (nodes 1-3) and three brokers (nodes 4-6): brokers can go down
    /// without taking the metadata quorum with them.
    fn split(name: &str, extra: &str) -> Replicated {
        Replicated::build(name, extra, true)
    }

    fn build(name: &str, extra: &str, split: bool) -> Replicated {
        let dir = std::env::temp_dir().join(format!("ketch-repl-{name}-{}", std::process::id()));
        let nodes = if split { 6 } else { 3 };
        let first_broker = if split { 3 } else { 0 };
        let client_ports: Vec<u16> = (0..nodes)
            .map(|i| {
                if i >= first_broker {
                    common::free_port()
                } else {
                    0
                }
            })
            .collect();
        let ports = client_ports.clone();
        let cluster = common::build_cluster(&dir, nodes, |i, _, port| {
            if !split {
                format!(
                    "process.roles=broker,controller\n\
                     listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{port}\n\
                     controller.listener.names=CONTROLLER\n{FAST}{extra}",
                    ports[i]
                )
            } else if i < 3 {
                format!(
                    "process.roles=controller\nlisteners=CONTROLLER://127.0.0.1:{port}\n\
                     controller.listener.names=CONTROLLER\n{FAST}{extra}"
                )
            } else {
                format!(
                    "process.roles=broker\nlisteners=PLAINTEXT://127.0.0.1:{}\n\
                     controller.listener.names=CONTROLLER\n{FAST}{extra}",
                    ports[i]
                )
            }
        });
        Replicated {
            cluster,
            client_ports,
            first_broker,
        }
    }

    /// The node index of broker `id`.
    fn node_of(&self, id: i32) -> usize {
        (id - 1) as usize
    }

    /// Broker node indexes.
    fn brokers(&self) -> std::ops::Range<usize> {
        self.first_broker..self.first_broker + 3
    }

    fn bootstrap(&self) -> String {
        self.client_ports
            .iter()
            .filter(|p| **p > 0)
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client listener of a running node.
    fn live_bootstrap(&self) -> String {
        self.brokers()
            .filter(|i| self.cluster.children[*i].is_some())
            .map(|i| format!("127.0.0.1:{}", self.client_ports[i]))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn start_all(&mut self) {
        for i in 0..self.cluster.children.len() {
            if self.cluster.children[i].is_none() {
                self.cluster.start(i);
            }
        }
    }

    fn signal(&self, i: usize, sig: &str) {
        if let Some(c) = &self.cluster.children[i] {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    fn ketch(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(KETCH).args(args).output().unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    /// `ketch delete-records` with the offsets in `file`.
    fn delete_records(&self, file: &Path) -> (bool, String) {
        self.ketch(&[
            "delete-records",
            "--bootstrap-server",
            &self.live_bootstrap(),
            "--offset-json-file",
            &file.to_string_lossy(),
        ])
    }

    /// `ketch get-offsets --time earliest` of `topic`: `topic:partition:offset` lines.
    fn earliest(&self, topic: &str) -> String {
        let (_, out) = self.ketch(&[
            "get-offsets",
            "--bootstrap-server",
            &self.live_bootstrap(),
            "--topic",
            topic,
            "--time",
            "earliest",
        ]);
        out.trim().to_string()
    }

    /// (leader, ISR) of each partition of `topic`, as `ketch topics --describe` shows it.
    fn describe(&self, topic: &str) -> BTreeMap<i32, (i32, Vec<i32>)> {
        let (_, out) = self.ketch(&[
            "topics",
            "--bootstrap-server",
            &self.live_bootstrap(),
            "--describe",
            "--topic",
            topic,
        ]);
        let mut map = BTreeMap::new();
        for line in out.lines() {
            let field = |name: &str| {
                line.split('\t')
                    .find_map(|f| f.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let (Some(p), Some(l), Some(isr)) =
                (field("Partition:"), field("Leader:"), field("Isr:"))
            else {
                continue;
            };
            let isr = isr
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect();
            if let (Ok(p), Ok(l)) = (p.parse(), l.parse()) {
                map.insert(p, (l, isr));
            }
        }
        map
    }

    /// Waits until `check` holds for the topic's partitions.
    fn wait_for(
        &self,
        topic: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&BTreeMap<i32, (i32, Vec<i32>)>) -> bool,
    ) -> BTreeMap<i32, (i32, Vec<i32>)> {
        let start = Instant::now();
        loop {
            let d = self.describe(topic);
            if !d.is_empty() && check(&d) {
                return d;
            }
            assert!(
                start.elapsed() < timeout,
                "{what} within {timeout:?}: last {d:?}; logs in {}",
                self.cluster.dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait_full_isr(&self, topic: &str, timeout: Duration) {
        self.wait_for(topic, timeout, "every ISR full", |d| {
            d.values().all(|(l, isr)| *l > 0 && isr.len() == 3)
        });
    }

    fn create_topic(&self, topic: &str, partitions: i32, configs: &[&str]) {
        let start = Instant::now();
        loop {
            let first = self.live_bootstrap();
            let mut args = vec![
                "topics",
                "--bootstrap-server",
                &first,
                "--create",
                "--topic",
                topic,
                "--replication-factor",
                "3",
            ];
            let p = partitions.to_string();
            args.extend(["--partitions", &p]);
            for c in configs {
                args.extend(["--config", c]);
            }
            let (ok, out) = self.ketch(&args);
            if ok {
                break;
            }
            // Until all three brokers are registered and unfenced, RF=3 cannot be placed.
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "topic not created: {out}"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        self.wait_full_isr(topic, Duration::from_secs(20));
    }

    fn data_dir(&self, i: usize) -> PathBuf {
        self.cluster.dir.join(format!("data-{}", i + 1))
    }
}

/// A running producer of tests/clients/replication.py.
struct ProducerRun {
    child: Child,
}

impl ProducerRun {
    fn start(bootstrap: &str, topic: &str, seconds: u64) -> ProducerRun {
        let child = Command::new(python())
            .arg(script())
            .args(["produce", bootstrap, topic, &seconds.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        ProducerRun { child }
    }

    /// Waits for it to finish; (value → (partition, offset)) of every acknowledged record, and
    /// how many were sent.
    fn finish(self) -> (BTreeMap<u64, (i32, i64)>, u64, usize) {
        let out = self.child.wait_with_output().unwrap();
        let mut acked = BTreeMap::new();
        let mut sent = 0;
        let mut failed = 0;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if let Some(value) = v["ack"].as_str() {
                // librdkafka can report a delivery without its offset (None in Python): such
                // a record is checked for being there once, not for where.
                acked.insert(
                    value.parse().unwrap(),
                    (
                        v["partition"].as_i64().unwrap() as i32,
                        v["offset"].as_i64().unwrap_or(-1),
                    ),
                );
            } else if v.get("fail").is_some() {
                failed += 1;
            } else if let Some(n) = v["done"].as_u64() {
                sent = n;
            }
        }
        (acked, sent, failed)
    }
}

/// A replica's log of one partition as read from its segment files: (offset → value), and the
/// raw bytes of every batch in order.
type ReplicaLog = (BTreeMap<i64, Vec<u8>>, Vec<u8>);

fn read_log(dir: &Path) -> ReplicaLog {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    segments.retain(|p| p.extension().is_some_and(|e| e == "log"));
    segments.sort();
    let mut values = BTreeMap::new();
    let mut bytes = Vec::new();
    for s in segments {
        let data = std::fs::read(&s).unwrap();
        let mut rest = &data[..];
        while !rest.is_empty() {
            let Ok((batch, tail)) = RecordBatch::parse(rest, usize::MAX) else {
                break;
            };
            bytes.extend_from_slice(&rest[..rest.len() - tail.len()]);
            for r in records(&batch).unwrap() {
                values.insert(
                    batch.base_offset() + r.offset_delta,
                    r.value.unwrap_or_default().to_vec(),
                );
            }
            rest = tail;
        }
    }
    (values, bytes)
}

/// Jepsen's anomalies among acknowledged writes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Anomalies {
    /// Acknowledged, found nowhere in the partition.
    lost: Vec<u64>,
    /// Present at more than one offset.
    duplicated: Vec<u64>,
    /// Present, but not at the offset it was acknowledged at.
    moved: Vec<u64>,
    /// In a partition, a later-sent value at a lower offset.
    reordered: usize,
    /// Replicas whose logs differ from the first replica's.
    diverged: Vec<String>,
}

/// Reads every replica's log of `topic` and checks the acknowledged writes against them.
fn check(r: &Replicated, topic: &str, acked: &BTreeMap<u64, (i32, i64)>) -> Anomalies {
    let mut a = Anomalies::default();
    for p in 0..TOPIC_PARTITIONS {
        let logs: Vec<ReplicaLog> = r
            .brokers()
            .map(|i| read_log(&r.data_dir(i).join(format!("{topic}-{p}"))))
            .collect();
        for (i, log) in logs.iter().enumerate().skip(1) {
            if log.1 != logs[0].1 {
                a.diverged.push(format!(
                    "{topic}-{p} on node {} ({} records) differs from node 1 ({} records)",
                    i + 1,
                    log.0.len(),
                    logs[0].0.len()
                ));
            }
        }
        let log = &logs[0].0;
        let mut where_found: BTreeMap<u64, Vec<i64>> = BTreeMap::new();
        for (offset, value) in log {
            if let Some(v) = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
                where_found.entry(v).or_default().push(*offset);
            }
        }
        let mut last = None;
        for value in log.values() {
            let Some(v) = std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            if last.is_some_and(|l| v < l) {
                a.reordered += 1;
            }
            last = Some(v);
        }
        for (value, (partition, offset)) in acked {
            if *partition != p {
                continue;
            }
            match where_found.get(value).map(Vec::as_slice) {
                None => a.lost.push(*value),
                Some([o]) if o == offset || *offset < 0 => {}
                Some([_]) => a.moved.push(*value),
                Some(_) => a.duplicated.push(*value),
            }
        }
    }
    a
}

/// Kills everything, then reads and checks the logs.
fn stop_and_check(mut r: Replicated, topic: &str, acked: &BTreeMap<u64, (i32, i64)>) {
    // Followers fetch what the leader still has above their ends.
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..r.cluster.children.len() {
        r.signal(i, "-CONT");
        r.cluster.kill(i);
    }
    let anomalies = check(&r, topic, acked);
    assert_eq!(
        anomalies,
        Anomalies::default(),
        "acknowledged writes not kept; logs in {}",
        r.cluster.dir.display()
    );
    let _ = std::fs::remove_dir_all(&r.cluster.dir);
}

/// The issue's scenario: the leader SIGKILLed and restarted, a follower SIGSTOPped past
/// `replica.lag.time.max.ms` (the ISR shrinks) and resumed (it grows back), all under an
/// idempotent acks=all producer.
#[test]
fn acknowledged_writes_survive_a_leader_kill_and_a_paused_follower() {
    let mut r = Replicated::new("failover", "");
    r.start_all();
    r.create_topic("orders", TOPIC_PARTITIONS, &["min.insync.replicas=2"]);
    let producer = ProducerRun::start(&r.bootstrap(), "orders", 16);
    std::thread::sleep(Duration::from_secs(3));

    let leader = r.describe("orders")[&0].0;
    let victim = (leader - 1) as usize;
    r.cluster.kill(victim);
    let moved = r.wait_for("orders", Duration::from_secs(15), "a new leader", |d| {
        d[&0].0 > 0 && d[&0].0 != leader
    });
    eprintln!("after SIGKILL of {leader}: {moved:?}");
    std::thread::sleep(Duration::from_secs(1));
    r.cluster.start(victim);
    r.wait_full_isr("orders", Duration::from_secs(20));

    // A follower of partition 0 stops fetching: out of the ISR, then back.
    let d = r.describe("orders");
    let follower = d[&0].1.iter().copied().find(|b| *b != d[&0].0).unwrap();
    r.signal((follower - 1) as usize, "-STOP");
    r.wait_for(
        "orders",
        Duration::from_secs(15),
        "the ISR to shrink",
        |d| !d[&0].1.contains(&follower),
    );
    r.signal((follower - 1) as usize, "-CONT");
    r.wait_full_isr("orders", Duration::from_secs(20));

    let (acked, sent, failed) = producer.finish();
    eprintln!("sent {sent}, acknowledged {}, failed {failed}", acked.len());
    assert!(acked.len() > 1000, "too few acknowledged: {}", acked.len());
    r.wait_full_isr("orders", Duration::from_secs(20));
    stop_and_check(r, "orders", &acked);
}

fn try_produce(r: &Replicated, topic: &str, acks: &str) -> Value {
    let out = Command::new(python())
        .arg(script())
        .args(["try", &r.live_bootstrap(), topic, acks])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or("")
        .to_string();
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

/// With two of three brokers down (the controllers, separate, still up), acks=all is refused
/// (NOT_ENOUGH_REPLICAS) and acks=1 still works; when they return, the ISR is full again.
#[test]
fn two_brokers_down_refuse_acks_all_and_keep_acks_one() {
    let mut r = Replicated::split("minisr", "");
    r.start_all();
    r.create_topic("m", 1, &["min.insync.replicas=2"]);
    let leader = r.describe("m")[&0].0;
    for b in (4..=6).filter(|b| *b != leader) {
        r.cluster.kill(r.node_of(b));
    }
    r.wait_for(
        "m",
        Duration::from_secs(20),
        "the ISR to shrink to the leader",
        |d| d[&0].1 == vec![leader],
    );
    let all = try_produce(&r, "m", "all");
    assert_eq!(all["error"], "NOT_ENOUGH_REPLICAS", "{all}");
    let one = try_produce(&r, "m", "1");
    assert_eq!(one["error"], Value::Null, "{one}");
    r.start_all();
    r.wait_full_isr("m", Duration::from_secs(30));
    let all = try_produce(&r, "m", "all");
    assert_eq!(all["error"], Value::Null, "{all}");
    stop_all(r);
}

fn stop_all(mut r: Replicated) {
    for i in 0..r.cluster.children.len() {
        r.cluster.kill(i);
    }
    let _ = std::fs::remove_dir_all(&r.cluster.dir);
}

/// An old leader that wrote records no follower fetched (acks=1, followers paused) comes back
/// after a new leader took over and wrote others: it truncates its own at the diverging epoch
/// and ends up with the new leader's log, byte for byte.
#[test]
fn a_returning_old_leader_truncates_what_the_new_leader_never_had() {
    let mut r = Replicated::new("truncate", "replica.lag.time.max.ms=30000\n");
    r.start_all();
    r.create_topic("t", 1, &[]);
    let leader = r.describe("t")[&0].0;
    let followers: Vec<i32> = (1..=3).filter(|b| *b != leader).collect();
    for f in &followers {
        r.signal((*f - 1) as usize, "-STOP");
    }
    // Written to the old leader only (acks=1; the ISR has not shrunk yet).
    for _ in 0..5 {
        assert_eq!(try_produce(&r, "t", "1")["error"], Value::Null);
    }
    r.cluster.kill((leader - 1) as usize);
    for f in &followers {
        r.signal((*f - 1) as usize, "-CONT");
    }
    r.wait_for("t", Duration::from_secs(20), "a new leader", |d| {
        d[&0].0 > 0 && d[&0].0 != leader
    });
    for _ in 0..3 {
        assert_eq!(try_produce(&r, "t", "all")["error"], Value::Null);
    }
    r.cluster.start((leader - 1) as usize);
    r.wait_full_isr("t", Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(2));
    for i in 0..3 {
        r.cluster.kill(i);
    }
    let logs: Vec<_> = (0..3)
        .map(|i| read_log(&r.data_dir(i).join("t-0")))
        .collect();
    assert!(logs.iter().all(|l| l.1 == logs[0].1), "replicas differ");
    // The new leader's three records are there; of the old leader's five, at most the one a
    // follower's fetch in flight took before the pause (it then had it when it took over).
    let n = logs[0].0.len();
    assert!((3..=4).contains(&n), "{n} records");
    let old_log =
        std::fs::read_to_string(r.cluster.dir.join(format!("node-{leader}.log"))).unwrap();
    assert!(
        old_log.contains("follower log truncated"),
        "the old leader did not truncate"
    );
    let _ = std::fs::remove_dir_all(&r.cluster.dir);
}

/// Committed consumer group offsets survive SIGKILL of the group coordinator's broker:
/// `__consumer_offsets` has three replicas and the new coordinator loads them.
#[test]
fn group_offsets_survive_the_coordinators_death() {
    let mut r = Replicated::new("groups", "offsets.topic.num.partitions=3\n");
    r.start_all();
    r.create_topic("g", 1, &[]);
    let lines: String = (0..20).map(|i| format!("v{i}\n")).collect();
    let mut producer = Command::new(KETCH)
        .args([
            "console-producer",
            "--bootstrap-server",
            &r.bootstrap(),
            "--topic",
            "g",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    producer
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(producer.wait().unwrap().success());
    let (ok, out) = r.ketch(&[
        "console-consumer",
        "--bootstrap-server",
        &r.bootstrap(),
        "--topic",
        "g",
        "--group",
        "survivors",
        "--from-beginning",
        "--max-messages",
        "12",
        "--timeout-ms",
        "10000",
    ]);
    assert!(ok, "{out}");
    r.wait_full_isr("__consumer_offsets", Duration::from_secs(20));
    let committed = |r: &Replicated| {
        let (_, out) = r.ketch(&[
            "consumer-groups",
            "--bootstrap-server",
            &r.live_bootstrap(),
            "--describe",
            "--group",
            "survivors",
        ]);
        out
    };
    let before = committed(&r);
    assert!(before.contains("12"), "{before}");
    // The coordinator leads the group's __consumer_offsets partition.
    let partition = java_hash("survivors").unsigned_abs() as i32 % 3;
    let coordinator = r.describe("__consumer_offsets")[&partition].0;
    r.cluster.kill((coordinator - 1) as usize);
    r.wait_for(
        "__consumer_offsets",
        Duration::from_secs(20),
        "a new coordinator",
        |d| d[&partition].0 > 0 && d[&partition].0 != coordinator,
    );
    let start = Instant::now();
    loop {
        let after = committed(&r);
        if after.lines().any(|l| l.contains("g") && l.contains("12")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "offsets lost after the coordinator died:\nbefore:\n{before}\nafter:\n{after}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    stop_all(r);
}

/// The committed input position the EOS worker last wrote, or 0.
fn eos_progress(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Kills the leader of `topic`-`partition`, waits for another leader, and starts it again.
fn bounce_leader_of(r: &mut Replicated, topic: &str, partition: i32) -> i32 {
    let leader = r.describe(topic)[&partition].0;
    r.cluster.kill(r.node_of(leader));
    r.wait_for(topic, Duration::from_secs(20), "a new leader", |d| {
        d[&partition].0 > 0 && d[&partition].0 != leader
    });
    r.cluster.start(r.node_of(leader));
    leader
}

/// Consume-transform-produce exactly once (KIP-98, KIP-447) across SIGKILLs of the output
/// partition's leader, the transaction coordinator and the group coordinator. The worker runs
/// under a watchdog that SIGKILLs it after 30 s without a commit: librdkafka (2.16.0) can keep a
/// dead group coordinator cached after dropping its broker and wait in
/// `send_offsets_to_transaction` forever (confluentinc/librdkafka#5511, #5456; its log shows no
/// FindCoordinator for the group after AddOffsetsToTxn). That happened in about one run in
/// four; the killed worker is then one more zombie for the check below. A kill counts as that
/// stall only if the worker's stack, dumped just before, is in `send_offsets_to_transaction`;
/// a stall anywhere else fails the test.
#[test]
fn consume_transform_produce_is_exactly_once_across_leader_and_coordinator_kills() {
    let mut r = Replicated::new(
        "eos",
        "offsets.topic.num.partitions=3\ntransaction.state.log.num.partitions=3\n",
    );
    r.start_all();
    r.create_topic("in", 1, &[]);
    r.create_topic("out", 1, &[]);
    const TOTAL: u64 = 300;
    let lines: String = (0..TOTAL).map(|i| format!("{i}\n")).collect();
    let mut producer = Command::new(KETCH)
        .args([
            "console-producer",
            "--bootstrap-server",
            &r.bootstrap(),
            "--topic",
            "in",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    producer
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(producer.wait().unwrap().success());
    let progress = r.cluster.dir.join("eos-progress");
    let worker = Command::new(python())
        .arg(script())
        .args([
            "eos",
            &r.bootstrap(),
            "in",
            "out",
            "eos",
            &TOTAL.to_string(),
            progress.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(r.cluster.dir.join("eos-worker.log")).unwrap())
        .spawn()
        .unwrap();
    let dir = r.cluster.dir.clone();
    let wait_progress = |at_least: u64| {
        let start = Instant::now();
        while eos_progress(&progress) < at_least {
            assert!(
                start.elapsed() < Duration::from_secs(90),
                "the worker is stuck at {} (logs in {})",
                eos_progress(&progress),
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // SIGKILL the leader of the output partition mid-stream, then the transaction
    // coordinator (the leader of the worker's __transaction_state partition), then the group
    // coordinator (the leader of the group's __consumer_offsets partition).
    wait_progress(50);
    let out_leader = bounce_leader_of(&mut r, "out", 0);
    wait_progress(120);
    r.wait_full_isr("__transaction_state", Duration::from_secs(30));
    let state_partition = java_hash("eos-worker").unsigned_abs() as i32 % 3;
    let coordinator = bounce_leader_of(&mut r, "__transaction_state", state_partition);
    wait_progress(200);
    r.wait_full_isr("__consumer_offsets", Duration::from_secs(30));
    let offsets_partition = java_hash("eos").unsigned_abs() as i32 % 3;
    let group_coordinator = bounce_leader_of(&mut r, "__consumer_offsets", offsets_partition);
    // The worker ends by itself once it has committed everything; a stuck one is killed.
    let mut worker = worker;
    let start = Instant::now();
    while worker.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = worker.kill();
    let out = worker.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "worker failed: {report} (logs in {})",
        r.cluster.dir.display()
    );
    let read = Command::new(python())
        .arg(script())
        .args(["read-committed", &r.live_bootstrap(), "out"])
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&read.stdout).to_string();
    let v: Value = serde_json::from_str(line.trim()).unwrap();
    let values: Vec<String> = v["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    let expected: Vec<String> = (0..TOTAL).map(|i| format!("x-{i}")).collect();
    // Exactly once, in input order: nothing lost, nothing duplicated by the restarts.
    assert_eq!(
        values.len(),
        expected.len(),
        "read_committed saw {} records",
        values.len()
    );
    assert_eq!(values, expected);
    // The librdkafka stall comes at most once, after the group coordinator's death; more
    // kills would be the broker's doing.
    let counted = |key: &str| {
        serde_json::from_str::<Value>(report.trim())
            .ok()
            .and_then(|v| v[key].as_u64())
            .unwrap_or(u64::MAX)
    };
    let kills = counted("watchdog_kills");
    assert!(
        kills <= 1,
        "the watchdog killed the worker {kills} times: {report}"
    );
    // A worker stuck anywhere but in librdkafka's send_offsets_to_transaction is a finding.
    let other = counted("other_stalls");
    assert_eq!(
        other,
        0,
        "the worker stalled elsewhere: {report} (logs in {})",
        r.cluster.dir.display()
    );
    eprintln!(
        "eos: out leader {out_leader}, transaction coordinator {coordinator} and group \
         coordinator {group_coordinator} were killed; worker: {report}"
    );
    stop_all(r);
}

fn java_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32))
}

/// One seeded chaos run: kills, pauses, restarts and (once) everything killed at once under
/// the producer, then healing and the check.
fn chaos(seed: u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut r = Replicated::new(&format!("chaos-{seed}"), "");
    r.start_all();
    r.create_topic("chaos", TOPIC_PARTITIONS, &["min.insync.replicas=2"]);
    let run_s = 14;
    let producer = ProducerRun::start(&r.bootstrap(), "chaos", run_s);
    let start = Instant::now();
    let mut killed_all = false;
    let mut paused: Vec<Option<Instant>> = vec![None; 3];
    let mut down: Vec<Option<Instant>> = vec![None; 3];
    let mut log = Vec::new();
    while start.elapsed() < Duration::from_secs(run_s - 2) {
        std::thread::sleep(Duration::from_millis(rng.gen_range(500..2000)));
        let now = Instant::now();
        for i in 0..3 {
            if down[i].is_some_and(|t| now >= t) {
                down[i] = None;
                r.cluster.start(i);
                log.push(format!("{:?} start {}", start.elapsed(), i + 1));
            }
            if paused[i].is_some_and(|t| now >= t) {
                paused[i] = None;
                r.signal(i, "-CONT");
                log.push(format!("{:?} resume {}", start.elapsed(), i + 1));
            }
        }
        let i = rng.gen_range(0..3);
        if down[i].is_some() || paused[i].is_some() {
            continue;
        }
        // At most one node out at a time, so two replicas stay in sync (min.insync=2), except
        // for the kill of everything.
        let out = (0..3)
            .filter(|j| down[*j].is_some() || paused[*j].is_some())
            .count();
        match rng.gen_range(0..10) {
            0..=3 if out == 0 => {
                r.cluster.kill(i);
                down[i] = Some(now + Duration::from_millis(rng.gen_range(500..3000)));
                log.push(format!("{:?} SIGKILL {}", start.elapsed(), i + 1));
            }
            4..=6 if out == 0 => {
                r.signal(i, "-STOP");
                paused[i] = Some(now + Duration::from_millis(rng.gen_range(500..4000)));
                log.push(format!("{:?} SIGSTOP {}", start.elapsed(), i + 1));
            }
            7 if !killed_all && out == 0 => {
                killed_all = true;
                for (j, until) in down.iter_mut().enumerate() {
                    r.cluster.kill(j);
                    *until = Some(now + Duration::from_millis(rng.gen_range(300..1500)));
                }
                log.push(format!("{:?} SIGKILL all", start.elapsed()));
            }
            _ => {}
        }
    }
    for i in 0..3 {
        r.signal(i, "-CONT");
    }
    r.start_all();
    let (acked, sent, failed) = producer.finish();
    eprintln!(
        "chaos seed {seed}: {}\nsent {sent}, acknowledged {}, failed {failed}",
        log.join("; "),
        acked.len()
    );
    r.wait_full_isr("chaos", Duration::from_secs(40));
    stop_and_check(r, "chaos", &acked);
}

#[test]
fn seeded_chaos_keeps_every_acknowledged_write() {
    let seeds = std::env::var("KETCH_CHAOS_SEEDS").unwrap_or_else(|_| "1..3".into());
    let (a, b) = seeds.split_once("..").expect("KETCH_CHAOS_SEEDS=a..b");
    for seed in a.parse::<u64>().unwrap()..b.parse::<u64>().unwrap() {
        chaos(seed);
    }
}

/// One request to `addr` and its answer (the library's own one-shot client).
fn call(addr: &str, api_key: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    ketch::runtime::block_on(ketch::wire::call_once(
        &ketch::wire::Connector::plain(),
        addr,
        "bad-input",
        api_key,
        version,
        &body,
        16 << 20,
        Duration::from_secs(5),
    ))
    .unwrap()
    .unwrap_or_else(|| panic!("no answer to {api_key:?} from {addr}"))
}

/// The active controller's answer to an AlterPartition: every controller is asked until one
/// does not say NOT_CONTROLLER.
fn alter_partition(r: &Replicated, body: AlterPartitionRequest) -> i16 {
    for port in &r.cluster.ports {
        let answer = call(
            &format!("127.0.0.1:{port}"),
            ApiKey::AlterPartition,
            2,
            RequestKind::AlterPartition(body.clone()),
        );
        let ResponseKind::AlterPartition(a) = answer else {
            panic!("not an AlterPartition answer");
        };
        if a.error_code == 41 {
            continue;
        }
        if a.error_code != 0 {
            return a.error_code;
        }
        return a.topics[0].partitions[0].error_code;
    }
    panic!("no active controller");
}

/// Section 7 of the replication issue: requests that break the replication protocol get
/// Kafka's error codes and change nothing.
#[test]
fn bad_replication_requests_get_kafkas_errors_and_change_nothing() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    let mut r = Replicated::new("badinput", "");
    r.start_all();
    r.create_topic("bad", 1, &[]);
    assert_eq!(try_produce(&r, "bad", "all")["error"], Value::Null);
    let before = r.describe("bad");
    let (leader, isr) = before[&0].clone();
    let follower = isr.iter().copied().find(|b| *b != leader).unwrap();
    let leader_addr = format!("127.0.0.1:{}", r.client_ports[r.node_of(leader)]);
    let name = TopicName(StrBytes::from_static_str("bad"));
    let ResponseKind::Metadata(m) = call(
        &leader_addr,
        ApiKey::Metadata,
        12,
        RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name.clone())),
        ]))),
    ) else {
        panic!("not a Metadata answer");
    };
    let topic_id = m.topics[0].topic_id;
    let leader_epoch = m.topics[0].partitions[0].leader_epoch;
    let alter = |broker: i32, leader_epoch: i32, partition_epoch: i32, isr: &[i32]| {
        AlterPartitionRequest::default()
            .with_broker_id(BrokerId(broker))
            .with_broker_epoch(-1)
            .with_topics(vec![alter_partition_request::TopicData::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    alter_partition_request::PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_epoch(leader_epoch)
                        .with_new_isr(isr.iter().map(|b| BrokerId(*b)).collect())
                        .with_partition_epoch(partition_epoch),
                ])])
    };
    // A stale partition epoch, a stale leader epoch, a non-leader, an ineligible replica.
    assert_eq!(
        alter_partition(&r, alter(leader, leader_epoch, 7, &[leader])),
        95
    );
    assert_eq!(
        alter_partition(&r, alter(leader, leader_epoch + 3, 0, &[leader])),
        74
    );
    assert_eq!(
        alter_partition(&r, alter(follower, leader_epoch, 0, &[follower])),
        6
    );
    assert_eq!(
        alter_partition(&r, alter(leader, leader_epoch, 0, &[leader, 9])),
        107
    );

    let fetch = |replica: i32, offset: i64, last_epoch: i32| {
        let ResponseKind::Fetch(f) = call(
            &leader_addr,
            ApiKey::Fetch,
            12,
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_replica_id(BrokerId(replica))
                    .with_max_wait_ms(0)
                    .with_max_bytes(1 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(name.clone())
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(offset)
                            .with_last_fetched_epoch(last_epoch)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20)])]),
            ),
        ) else {
            panic!("not a Fetch answer");
        };
        f.responses[0].partitions[0].error_code
    };
    // A replica id that is not a replica; a follower fetch past the leader's log end.
    assert_eq!(fetch(9, 0, -1), 6);
    assert_eq!(fetch(follower, 1000, -1), 1);

    let epoch_end = |current: i32, epoch: i32| {
        let ResponseKind::OffsetForLeaderEpoch(o) = call(
            &leader_addr,
            ApiKey::OffsetForLeaderEpoch,
            4,
            RequestKind::OffsetForLeaderEpoch(OffsetForLeaderEpochRequest::default().with_topics(
                vec![offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(name.clone())
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current)
                            .with_leader_epoch(epoch),
                    ])],
            )),
        ) else {
            panic!("not an OffsetForLeaderEpoch answer");
        };
        let p = &o.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    // The current epoch ends at the log end (one record); an epoch before any is undefined;
    // a client's newer or older view of the leader epoch is refused.
    assert_eq!(epoch_end(leader_epoch, leader_epoch), (0, leader_epoch, 1));
    assert_eq!(epoch_end(-1, -5), (0, -1, -1));
    // UNKNOWN_LEADER_EPOCH is 75 in Kafka's protocol (the issue text says 76).
    assert_eq!(epoch_end(leader_epoch + 1, 0).0, 75);
    if leader_epoch > 0 {
        assert_eq!(epoch_end(leader_epoch - 1, 0).0, 74);
    }

    // Nothing changed.
    assert_eq!(r.describe("bad"), before);
    assert_eq!(try_produce(&r, "bad", "all")["error"], Value::Null);
    stop_all(r);
}

/// `ketch leader-election --election-type PREFERRED` (ElectLeaders, KIP-460) moves leadership
/// back to the preferred replica once it is in the ISR again (automatic rebalancing is off here
/// so the tool is what moves it).
#[test]
fn a_preferred_election_moves_leadership_back() {
    let mut r = Replicated::new("preferred", "auto.leader.rebalance.enable=false\n");
    r.start_all();
    r.create_topic("p", 1, &[]);
    let preferred = r.describe("p")[&0].0;
    r.cluster.kill(r.node_of(preferred));
    r.wait_for("p", Duration::from_secs(20), "a new leader", |d| {
        d[&0].0 > 0 && d[&0].0 != preferred
    });
    r.cluster.start(r.node_of(preferred));
    r.wait_full_isr("p", Duration::from_secs(30));
    assert_ne!(
        r.describe("p")[&0].0,
        preferred,
        "nothing moved it back yet"
    );
    let b = r.live_bootstrap();
    let (ok, out) = r.ketch(&[
        "leader-election",
        "--bootstrap-server",
        &b,
        "--election-type",
        "PREFERRED",
        "--all-topic-partitions",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Successfully completed leader election (PREFERRED) for partitions")
            && out.contains("p-0"),
        "{out}"
    );
    r.wait_for(
        "p",
        Duration::from_secs(10),
        "the preferred leader back",
        |d| d[&0].0 == preferred,
    );
    let (ok, out) = r.ketch(&[
        "leader-election",
        "--bootstrap-server",
        &b,
        "--election-type",
        "PREFERRED",
        "--topic",
        "p",
        "--partition",
        "0",
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("Valid replica already elected for partitions p-0"),
        "{out}"
    );
    assert_eq!(try_produce(&r, "p", "all")["error"], Value::Null);
    stop_all(r);
}

/// DeleteRecords (`ketch delete-records`, as kafka-delete-records.sh) on an RF=3 topic: the
/// answer's low watermark reaches the asked offset only once every replica has moved its log
/// start (followers take the leader's from their fetches), so a new leader after a SIGKILL of
/// the old one starts at the same offset; an offset past the high watermark is refused.
#[test]
fn delete_records_moves_every_replicas_log_start() {
    let mut r = Replicated::new("delrec", "");
    r.start_all();
    r.create_topic("d", 1, &[]);
    for _ in 0..10 {
        assert_eq!(try_produce(&r, "d", "all")["error"], Value::Null);
    }
    let file = r.cluster.dir.join("offsets.json");
    let write = |offset: i64| {
        std::fs::write(
            &file,
            format!(r#"{{"partitions": [{{"topic": "d", "partition": 0, "offset": {offset}}}], "version": 1}}"#),
        )
        .unwrap();
    };
    write(6);
    let (ok, out) = r.delete_records(&file);
    assert!(ok, "{out}");
    assert!(out.contains("partition: d-0\tlow_watermark: 6"), "{out}");
    assert_eq!(r.earliest("d"), "d:0:6");
    let leader = r.describe("d")[&0].0;
    r.cluster.kill(r.node_of(leader));
    r.wait_for("d", Duration::from_secs(20), "a new leader", |d| {
        d[&0].0 > 0 && d[&0].0 != leader
    });
    assert_eq!(r.earliest("d"), "d:0:6", "the new leader's log start");
    write(1_000);
    let (ok, out) = r.delete_records(&file);
    assert!(!ok, "{out}");
    assert!(
        out.contains("partition: d-0\terror: OFFSET_OUT_OF_RANGE"),
        "{out}"
    );
    stop_all(r);
}

/// A follower that was down while DeleteRecords moved the log start into the middle of a
/// batch comes back below that start: it resets its log to the leader's start, is sent the
/// whole batch holding it (which begins below), starts its log at the batch's base keeping the
/// start (as Kafka's followers do), rejoins the ISR, and once it alone is left it serves from
/// that start.
#[test]
fn a_follower_behind_a_deleted_start_inside_a_batch_catches_up_from_it() {
    let mut r = Replicated::split("delrec-behind", "");
    r.start_all();
    r.create_topic("d", 1, &[]);
    let (leader, isr) = r.describe("d")[&0].clone();
    let behind = *isr.iter().find(|b| **b != leader).unwrap();
    r.cluster.kill(r.node_of(behind));
    r.wait_for(
        "d",
        Duration::from_secs(20),
        "the ISR without the stopped follower",
        |d| !d[&0].1.contains(&behind),
    );
    // One batch of ten records (kcat sends them together; acks=all by default).
    let lines: String = (0..10).map(|i| format!("v{i}\n")).collect();
    let (ok, _, err) = common::run(
        "kcat",
        &["-b", &r.live_bootstrap(), "-P", "-t", "d", "-p", "0"],
        Some(&lines),
    );
    assert!(ok, "{err}");
    let file = r.cluster.dir.join("offsets.json");
    std::fs::write(
        &file,
        r#"{"partitions": [{"topic": "d", "partition": 0, "offset": 4}], "version": 1}"#,
    )
    .unwrap();
    let (ok, out) = r.delete_records(&file);
    assert!(ok && out.contains("low_watermark: 4"), "{out}");
    r.cluster.start(r.node_of(behind));
    r.wait_full_isr("d", Duration::from_secs(30));
    for b in (4..=6).filter(|b| *b != behind) {
        r.cluster.kill(r.node_of(b));
    }
    r.wait_for(
        "d",
        Duration::from_secs(20),
        "the returned follower leading",
        |d| d[&0].0 == behind,
    );
    assert_eq!(r.earliest("d"), "d:0:4");
    let out = common::kcat_read_all(&r.live_bootstrap(), "d");
    assert_eq!(out, "4 v4\n5 v5\n6 v6\n7 v7\n8 v8\n9 v9\n");
    let log = std::fs::read_to_string(r.cluster.dir.join(format!("node-{behind}.log"))).unwrap();
    assert!(log.contains("the log starts over at its base"), "{log}");
    stop_all(r);
}
