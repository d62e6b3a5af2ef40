//! The cluster simulation: whole `ketch server` nodes (quorum, controller, broker, replication,
//! groups) started through `ketch::node::run` on madsim TCP with a [`SimDisk`] and a skewed clock
//! each, and simulated Kafka clients on a node of their own that talk to the brokers' client
//! listeners as real clients do: an admin creating the topic (and in some seeds growing it,
//! changing its configs and deleting records below part of what the consumer read while the
//! workload runs, with DeleteRecords), idempotent acks=all producers that retry the
//! same batch until it is acknowledged, a plain acks=1 and an acks=0 producer, and a consumer
//! that reads every partition from its leader and commits its positions in a group. In most
//! seeds, transactional producers (each its own `transactional.id`, through the transaction
//! coordinator: InitProducerId, AddPartitionsToTxn, transactional batches, EndTxn commit or
//! abort, starting over with a fenced epoch after any fatal error) write into the same topic,
//! and a read_committed consumer reads beside the plain one.
//!
//! Each seed draws its own mix (printed first): node count, separate controllers or combined
//! nodes, partitions, replication factor, `min.insync.replicas`, flush mode, segment size,
//! timeouts, fault rates. Faults: power loss (unsynced writes lost or torn) and process crashes
//! (page cache kept), one-way and symmetric link clogs, isolating a partition leader or the active
//! controller, pauses past the session and lag timeouts, clock skew, drift and jumps, fsync errors
//! and ENOSPC (the node stops; the supervisor restarts it as an operator would); in some seeds,
//! BUGGIFY pauses inside the nodes (`ketch::runtime::buggify_delay`).
//!
//! Checked while it runs: at most one leader per partition leader epoch as Metadata shows it, the
//! leader in the ISR and the ISR within the replicas; at most one active controller per epoch; a
//! consumer never reads at or above the high watermark its fetch reported, never sees a
//! partition's records out of order, and never sees two values at one offset; a committed group
//! offset never reads back lower than one acknowledged earlier; read_committed never reads at or
//! above the last stable offset, which never passes the high watermark nor goes back within a
//! leader epoch, and never reads a record of a transaction whose commit was not sent. Then
//! everything heals, and within
//! [`LIVENESS_BOUND`] every partition has a leader and a full ISR on every broker's Metadata, the
//! producers' pending writes complete and the consumer catches up. The final logs (read from the
//! leaders) must hold every acknowledged acks=all write at its acknowledged offset, each value
//! once, offsets contiguous from 0, and every record a consumer saw. With transactions, the
//! read_committed consumer must reach the high watermarks too (no transaction left hanging),
//! and the final logs, each record's outcome read from the markers alone, must show every
//! transaction all or nothing, every transaction whose commit succeeded whole and committed, no
//! committed record of one whose commit was never sent, and read_committed having read exactly
//! the committed and non-transactional records below its position.
//!
//! Durability rules, as the README states them: with `log.flush.interval.messages=1` nothing
//! acknowledged may ever be lost. With the page cache (the default) a process crash loses
//! nothing, but a power loss can: a write may be lost only if a replica of its partition lost
//! power after it was acknowledged (that replica may have been the whole ISR by then). The checker
//! excuses such a loss, counts it, and flags every other; seeds without power loss are held to
//! the full rule.

use crate::kafka::{self, View, NETWORK};
use crate::{fnv, Report};
use bytes::Bytes;
use ketch::client::Client;
use ketch::model::bugs::ClusterBugs;
use ketch::model::config::ServerConfig;
use ketch::model::Uuid;
use ketch::node::{self, NodeEnv};
use ketch::protocol::record_batch::{build_batch, set_producer, set_transactional_producer};
use ketch::quorum::QuorumStatus;
use ketch::raft::{Epoch, Role};
use ketch::runtime::{Clock, Disk, DiskFaults, SimDisk};
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub struct Options {
    pub seed: u64,
    pub duration_s: u64,
    pub verbose: bool,
    pub bugs: ClusterBugs,
}

/// After healing: every partition led with a full ISR, pending writes done and the consumer
/// caught up within this much virtual time. It covers a restarted node's recovery and
/// registration, the broker session timeout (at most 6 s) for a fencing still under way, three
/// election rounds (at most 3 × 2 × 1 s), the follower catching up and its ISR expansion going
/// through the controller, and the producers' retry backoff.
pub const LIVENESS_BOUND: Duration = Duration::from_secs(30);
const CLUSTER_ID: &str = "Y2x1c3Rlci1zaW11bGF0aW8";
const CONTROLLER_PORT: u16 = 9093;
const CLIENT_PORT: u16 = 9092;

/// What one seed runs: drawn from the seed alone.
#[derive(Clone, Debug)]
pub struct Mix {
    /// Controller (voter) count; the first nodes.
    pub voters: usize,
    /// Nodes with the broker role.
    pub brokers: usize,
    /// Controllers are controller-only nodes (else the voters are combined nodes).
    pub separate: bool,
    pub partitions: i32,
    pub replication_factor: i16,
    pub min_insync: i16,
    /// `log.flush.interval.messages=1`: every replica fsyncs before it counts a write.
    pub fsync: bool,
    pub segment_bytes: u64,
    pub election_timeout_ms: u64,
    pub session_timeout_ms: u64,
    pub lag_max_ms: u64,
    pub producers: usize,
    pub crash_p: f64,
    /// Of the crashes, the share that are power losses (the rest keep the page cache).
    pub power_share: f64,
    pub clog_p: f64,
    pub pause_p: f64,
    pub jump_p: f64,
    pub disk_faults: DiskFaults,
    /// Each node's clock: (wall offset ms, drift ppm).
    pub skews: Vec<(i64, i64)>,
    /// BUGGIFY: seeded pauses inside the nodes where ordering matters
    /// (`ketch::runtime::buggify_delay`).
    pub buggify: bool,
    /// The admin adds partitions to the topic and changes its `min.insync.replicas` or
    /// `segment.bytes` while the workload runs.
    pub admin_changes: bool,
    /// The topic is `cleanup.policy=compact,delete` and cleaned eagerly, every record keyed by
    /// its unique value: the latest value of every key is every record, so compaction must
    /// keep them all, while the cleaner regroups and swaps segments on every replica under
    /// the faults (the checks of the byte-identical replicas and of every acknowledged write
    /// then cover its swaps). `__consumer_offsets` is compacted in every run.
    pub compact: bool,
    /// Transactional producers (each its own `transactional.id`) write transactions of 1-3
    /// partitions into the topic, committing most and aborting some, and a read_committed
    /// consumer reads beside the plain one (0 in seeds without transactions).
    pub txn_producers: usize,
}

impl Mix {
    pub fn draw(seed: u64) -> Mix {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC1_0573);
        let separate = rng.gen_bool(0.2);
        let (voters, brokers) = if separate {
            (3, 3)
        } else {
            let brokers = rng.gen_range(3..=5);
            let voters = if brokers == 5 && rng.gen_bool(0.5) {
                5
            } else {
                3
            };
            (voters, brokers)
        };
        let replication_factor = if rng.gen_bool(0.8) { 3 } else { 2 };
        let min_insync = if rng.gen_bool(0.75) { 2 } else { 1 };
        let nodes = if separate { voters + brokers } else { brokers };
        let fault_heavy = rng.gen_bool(0.5);
        let scale = if fault_heavy { 1.0 } else { 0.4 };
        let disk_faults = if rng.gen_bool(0.15) {
            DiskFaults {
                fsync_error_ppm: rng.gen_range(0..300),
                enospc_ppm: rng.gen_range(0..100),
                read_bitflip_ppm: 0,
            }
        } else {
            DiskFaults::default()
        };
        let mut mix = Mix {
            voters,
            brokers,
            separate,
            partitions: rng.gen_range(1..=4),
            replication_factor,
            min_insync,
            fsync: rng.gen_bool(0.5),
            segment_bytes: if rng.gen_bool(0.5) {
                rng.gen_range(2_048..16_384)
            } else {
                1 << 20
            },
            election_timeout_ms: if rng.gen_bool(0.5) {
                1_000
            } else {
                rng.gen_range(300..1_000)
            },
            session_timeout_ms: rng.gen_range(2_000..6_000),
            lag_max_ms: rng.gen_range(1_000..10_000),
            producers: rng.gen_range(1..=3),
            crash_p: rng.gen_range(0.005..0.04) * scale,
            power_share: rng.gen_range(0.0..1.0),
            clog_p: rng.gen_range(0.0..0.05) * scale,
            pause_p: rng.gen_range(0.0..0.02) * scale,
            jump_p: if rng.gen_bool(0.5) { 0.01 } else { 0.0 },
            disk_faults,
            skews: (0..nodes)
                .map(|_| (rng.gen_range(-5_000..5_000), rng.gen_range(-30_000..30_000)))
                .collect(),
            buggify: false,
            admin_changes: false,
            compact: false,
            txn_producers: 0,
        };
        // Drawn last, so that the draws before them stay what they were for older seeds.
        mix.buggify = rng.gen_bool(0.5);
        mix.admin_changes = rng.gen_bool(0.5);
        mix.compact = rng.gen_bool(0.4);
        mix.txn_producers = if rng.gen_bool(0.6) {
            rng.gen_range(1..=2)
        } else {
            0
        };
        mix
    }

    pub fn nodes(&self) -> usize {
        if self.separate {
            self.voters + self.brokers
        } else {
            self.brokers
        }
    }

    fn is_broker(&self, i: usize) -> bool {
        !self.separate || i >= self.voters
    }

    fn is_voter(&self, i: usize) -> bool {
        i < self.voters
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} voters, {} brokers; topic of {} partitions RF={} min.insync={}; {}; segments {} B; election {} ms, session {} ms, lag {} ms; {} idempotent producers; crash p={:.3} ({:.0}% power loss), clog p={:.3}, pause p={:.3}, clock jumps p={}, fsync EIO {} ppm, ENOSPC {} ppm{}{}{}; {} transactional producers",
            if self.separate { "separate:" } else { "combined:" },
            self.voters,
            self.brokers,
            self.partitions,
            self.replication_factor,
            self.min_insync,
            if self.fsync { "fsync per write" } else { "page cache" },
            self.segment_bytes,
            self.election_timeout_ms,
            self.session_timeout_ms,
            self.lag_max_ms,
            self.producers,
            self.crash_p,
            self.power_share * 100.0,
            self.clog_p,
            self.pause_p,
            self.jump_p,
            self.disk_faults.fsync_error_ppm,
            self.disk_faults.enospc_ppm,
            if self.buggify { "; buggify" } else { "" },
            if self.admin_changes { "; admin changes" } else { "" },
            if self.compact { "; compacted" } else { "" },
            self.txn_producers,
        )
    }
}

/// An acknowledged record.
#[derive(Clone, Debug)]
struct Ack {
    partition: i32,
    /// -1 when the broker acknowledged a retry as a duplicate without its offset.
    offset: i64,
    value: String,
    /// When its first attempt was sent: a power loss after it may have hit the write, even one
    /// before the answer arrived.
    at_ms: u64,
    /// The node id the write was sent to (its leader).
    leader: i32,
    acks_all: bool,
}

/// A commit the coordinator acknowledged.
#[derive(Clone, Debug)]
struct CommitAck {
    offset: i64,
    /// When the commit was sent.
    at_ms: u64,
    coordinator: String,
}

/// What a transactional producer knows of one of its transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxnFate {
    /// Being written; no EndTxn sent. Ends as aborted (EndTxn abort answered, or the
    /// producer's next InitProducerId, which aborts what its id left open, answered).
    Open,
    /// EndTxn commit sent, no success seen: committed or aborted, but all or nothing.
    CommitSent,
    Committed,
    Aborted,
}

#[derive(Clone, Debug)]
struct Txn {
    /// Its records: (partition, acknowledged offset or -1, value).
    values: Vec<(i32, i64, String)>,
    fate: TxnFate,
    /// When it began (its AddPartitionsToTxn was first sent; ms since the start): a power
    /// loss since may have taken any of the coordinator's records of it.
    started_ms: u64,
    /// Records of a batch sent after its EndTxn succeeded, as a late retry arrives (partition,
    /// value): each may be absent, but if present it shares the transaction's fate and lies
    /// before the transaction's marker in its partition (KIP-890: a late batch never opens a
    /// transaction of its own).
    late: Vec<(i32, String)>,
}

/// A transactional record's value is `t{producer}-{transaction}-{partition}-{index}`.
fn txn_of(value: &str) -> Option<(usize, u64)> {
    let mut parts = value.strip_prefix('t')?.split('-');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// The placeholder a transaction marker takes in a final log's records (offsets stay
/// contiguous, and no value is ever one).
fn marker_value(p: i32, offset: i64, commit: bool) -> String {
    format!(
        "{} marker {p}@{offset}",
        if commit { "commit" } else { "abort" }
    )
}

struct Shared {
    mix: Mix,
    verbose: bool,
    start: Option<madsim::time::Instant>,
    trace: u64,
    events: u64,
    violations: Vec<String>,
    disks: Vec<SimDisk>,
    clocks: Vec<Clock>,
    incarnation: Vec<u64>,
    /// The node's process ended by itself (a disk error stops it): the supervisor restarts it.
    stopped: Vec<bool>,
    /// When each node lost power (ms since the start).
    power_losses: Vec<Vec<u64>>,
    crashes: u64,
    /// Active controller per quorum epoch.
    controllers: BTreeMap<Epoch, usize>,
    /// Each partition's replicas, as Metadata first showed them.
    replicas: BTreeMap<i32, Vec<i32>>,
    /// (partition, leader epoch) → leader, from every Metadata answer seen.
    leaders: BTreeMap<(i32, i32), i32>,
    topic_ready: bool,
    /// The topic's partitions the clients use: the mix's, and then what the admin's
    /// CreatePartitions made once every new one had a leader.
    partitions: i32,
    /// The admin has a change under way (the liveness phase waits for it to settle).
    admin_pending: bool,
    /// When everything was healed (virtual time since the start): the liveness phase begins.
    healed_at: Option<Duration>,
    checks_done: bool,
    stop_producing: bool,
    stop_consuming: bool,
    producers_running: usize,
    acked: Vec<Ack>,
    /// What the consumer read: partition → offset → value.
    polled: BTreeMap<i32, BTreeMap<i64, String>>,
    /// The consumer's position per partition.
    consumed: BTreeMap<i32, i64>,
    /// The largest offset the admin sent a DeleteRecords for, per partition, whether or not it
    /// was answered: records below it may be gone.
    deleted_below: BTreeMap<i32, i64>,
    /// Acknowledged commits per partition, in order.
    commits: BTreeMap<i32, Vec<CommitAck>>,
    /// Offsets of commits that got no answer, per partition: they may land late.
    commits_in_doubt: BTreeMap<i32, BTreeSet<i64>>,
    commit_checks: u64,
    /// The transactional producers' transactions: (producer, number) → what became of it.
    txns: BTreeMap<(usize, u64), Txn>,
    /// What the read_committed consumer read: partition → offset → value.
    rc_polled: BTreeMap<i32, BTreeMap<i64, String>>,
    /// The read_committed consumer's position per partition.
    rc_consumed: BTreeMap<i32, i64>,
    /// Partitions where the read_committed consumer skipped records (a reset after
    /// DeleteRecords or an excused loss): what it read there is not checked for completeness.
    rc_skipped: BTreeSet<i32>,
    /// The highest last stable offset a read_committed fetch reported per (partition, leader
    /// epoch).
    lso: BTreeMap<(i32, i32), i64>,
    counts: Counts,
}

#[derive(Default)]
struct Counts {
    consumer_resets: u64,
    admin_changes: u64,
    /// DeleteRecords answered with the asked low watermark.
    records_deleted: u64,
    produce_attempts: u64,
    produce_errors: u64,
    producer_resets: u64,
    records_polled: u64,
    out_of_range: u64,
    excused_losses: u64,
    clogs: u64,
    pauses: u64,
    disk_stops: u64,
    /// Batches sent with acks=0.
    acks0_sent: u64,
    /// Caught-up replica logs compared byte for byte at the end.
    replicas_compared: u64,
    txn_resets: u64,
    /// Late transactional batches (sent after EndTxn succeeded) appended into their
    /// transaction before its marker, and refused after it (KIP-890).
    txn_late_joined: u64,
    txn_late_refused: u64,
    rc_polled: u64,
}

type World = Arc<Mutex<Shared>>;

fn lock(world: &World) -> MutexGuard<'_, Shared> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, i as u8 + 1))
}

fn client_ip() -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 2, 1))
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.start.map_or(0, |s| s.elapsed().as_millis() as u64)
    }

    fn event(&mut self, node: usize, what: &str) {
        self.events += 1;
        self.trace = fnv(self.trace, what.as_bytes());
        self.trace = fnv(self.trace, &(node as u64).to_le_bytes());
        if self.verbose {
            println!("{:>8} ms n{} {what}", self.now_ms(), node + 1);
        }
    }

    fn violation(&mut self, what: String) {
        self.event(usize::MAX, &format!("VIOLATION {what}"));
        self.violations.push(what);
    }

    /// Whether losing a write to `partition` sent at `at_ms` is allowed by the
    /// durability rules: only with the page cache, and only if a replica of the partition lost
    /// power since (it may have been the whole ISR then: it comes back without what the OS had
    /// not written out, leads, and the others truncate to it).
    fn loss_excused(&self, partition: Option<i32>, at_ms: u64) -> bool {
        if self.mix.fsync {
            return false;
        }
        let replicas: Vec<i32> = match partition.and_then(|p| self.replicas.get(&p)) {
            Some(r) => r.clone(),
            None => (1..=self.power_losses.len() as i32).collect(),
        };
        replicas.iter().any(|r| {
            usize::try_from(r - 1)
                .ok()
                .and_then(|i| self.power_losses.get(i))
                .is_some_and(|l| l.iter().any(|t| *t >= at_ms))
        })
    }

    /// Metadata as a client saw it: one leader per leader epoch, the leader in the ISR, the ISR
    /// within the replicas.
    fn observe_view(&mut self, from: &str, v: &View) {
        for (p, pv) in &v.partitions {
            if pv.error != 0 || pv.leader < 0 {
                continue;
            }
            match self.leaders.get(&(*p, pv.leader_epoch)) {
                Some(l) if *l != pv.leader => {
                    let l = *l;
                    self.violation(format!(
                        "partition {p}: two leaders in leader epoch {}: {l} and {} (Metadata from {from})",
                        pv.leader_epoch, pv.leader
                    ));
                }
                Some(_) => {}
                None => {
                    self.leaders.insert((*p, pv.leader_epoch), pv.leader);
                    let what = format!(
                        "partition {p}: leader {} at epoch {}, ISR {:?}",
                        pv.leader, pv.leader_epoch, pv.isr
                    );
                    self.event(usize::MAX, &what);
                }
            }
            self.replicas
                .entry(*p)
                .or_insert_with(|| pv.replicas.clone());
            if !pv.isr.contains(&pv.leader) {
                self.violation(format!(
                    "partition {p}: leader {} outside the ISR {:?} at epoch {} (Metadata from {from})",
                    pv.leader, pv.isr, pv.leader_epoch
                ));
            }
            if let Some(r) = pv.isr.iter().find(|r| !pv.replicas.contains(r)) {
                self.violation(format!(
                    "partition {p}: ISR member {r} not a replica {:?} (Metadata from {from})",
                    pv.replicas
                ));
            }
        }
    }

    fn observe_quorum(&mut self, i: usize, s: &QuorumStatus) {
        if s.role != Role::Leader {
            return;
        }
        match self.controllers.get(&s.epoch) {
            Some(c) if *c != i => {
                let c = *c;
                self.violation(format!(
                    "two active controllers in epoch {}: nodes {} and {}",
                    s.epoch,
                    c + 1,
                    i + 1
                ));
            }
            Some(_) => {}
            None => {
                self.controllers.insert(s.epoch, i);
                self.event(i, &format!("active controller of epoch {}", s.epoch));
            }
        }
    }

    /// A consumer's fetch answer: records below the reported high watermark, in order, one value
    /// per offset across all fetches.
    fn observe_fetch(&mut self, p: i32, from_offset: i64, f: &kafka::Fetched) {
        if let Some(e) = &f.malformed {
            self.violation(format!(
                "partition {p}: malformed batch in a fetch answer: {e}"
            ));
        }
        let mut last = -1i64;
        for (offset, value) in &f.records {
            if *offset >= f.high_watermark {
                self.violation(format!(
                    "partition {p}: consumer read offset {offset} at or above the high watermark {} the same fetch reported",
                    f.high_watermark
                ));
            }
            if *offset <= last {
                self.violation(format!(
                    "partition {p}: records out of order in one fetch: {offset} after {last}"
                ));
            }
            last = *offset;
            if *offset < from_offset {
                continue; // the head of the batch holding the position
            }
            self.counts.records_polled += 1;
            if let Some(v) = read_once(self.polled.entry(p).or_default(), *offset, value) {
                self.violation(format!(
                    "partition {p}: offset {offset} read as {v} and later as {value}"
                ));
            }
        }
    }
}

impl Shared {
    /// A read_committed fetch answer from the leader of `leader_epoch`: nothing at or above
    /// the last stable offset it reported, which never exceeds the high watermark and never
    /// goes back within one leader epoch; no record of a transaction whose commit was never
    /// sent (open or aborted); one value per offset across all fetches.
    fn observe_committed_fetch(
        &mut self,
        p: i32,
        leader_epoch: i32,
        from_offset: i64,
        f: &kafka::Fetched,
    ) {
        if let Some(e) = &f.malformed {
            self.violation(format!(
                "partition {p}: malformed batch in a read_committed fetch answer: {e}"
            ));
        }
        let lso = f.last_stable_offset;
        if lso < 0 || lso > f.high_watermark {
            self.violation(format!(
                "partition {p}: a read_committed fetch reported last stable offset {lso} with high watermark {}",
                f.high_watermark
            ));
        }
        let seen = self.lso.entry((p, leader_epoch)).or_insert(lso);
        if lso < *seen {
            let before = *seen;
            self.violation(format!(
                "partition {p}: the last stable offset went back from {before} to {lso} in leader epoch {leader_epoch}"
            ));
        } else {
            *seen = lso;
        }
        for (offset, value) in &f.records {
            if *offset >= lso {
                self.violation(format!(
                    "partition {p}: read_committed read {value} at offset {offset}, at or above the last stable offset {lso} of the same fetch"
                ));
            }
            if *offset < from_offset {
                continue;
            }
            if let Some(id) = txn_of(value) {
                let fate = self.txns.get(&id).map(|t| t.fate);
                let since_ms = self.txns.get(&id).map_or(0, |t| t.started_ms);
                if matches!(fate, None | Some(TxnFate::Open | TxnFate::Aborted)) {
                    let what = format!(
                        "partition {p}: read_committed read {value} at offset {offset}, of a transaction whose commit was never sent ({fate:?})"
                    );
                    self.uncommitted_read(since_ms, what);
                }
            }
            self.counts.rc_polled += 1;
            if let Some(v) = read_once(self.rc_polled.entry(p).or_default(), *offset, value) {
                self.violation(format!(
                    "partition {p}: read_committed read offset {offset} as {v} and later as {value}"
                ));
            }
        }
    }

    /// An aborted or never-committed record read as committed. The one way it can happen
    /// without a bug is the page-cache rule: a power loss can take the coordinator's record of
    /// a transaction (its abort or its very start) from every replica of its state partition,
    /// and the producer's next epoch then carries the forgotten records into a commit. Only a
    /// power loss since the transaction began (`since_ms`) can have taken them.
    fn uncommitted_read(&mut self, since_ms: u64, what: String) {
        if self.loss_excused(None, since_ms) {
            self.counts.excused_losses += 1;
            self.event(usize::MAX, &what);
        } else {
            self.violation(what);
        }
    }
}

/// Records what a consumer read at `offset`; the value read there before, if it differs (one
/// value per offset across all fetches).
fn read_once(seen: &mut BTreeMap<i64, String>, offset: i64, value: &str) -> Option<String> {
    match seen.get(&offset) {
        Some(v) if v != value => Some(v.clone()),
        Some(_) => None,
        None => {
            seen.insert(offset, value.to_string());
            None
        }
    }
}

/// The node's `server.properties`, from Kafka's keys.
fn node_config(mix: &Mix, i: usize) -> Result<ServerConfig, String> {
    let quorum: Vec<String> = (0..mix.voters)
        .map(|v| format!("{}@{}:{CONTROLLER_PORT}", v + 1, ip(v)))
        .collect();
    let (roles, listeners) = match (mix.is_voter(i), mix.is_broker(i)) {
        (true, true) => (
            "broker,controller",
            format!("PLAINTEXT://:{CLIENT_PORT},CONTROLLER://:{CONTROLLER_PORT}"),
        ),
        (true, false) => ("controller", format!("CONTROLLER://:{CONTROLLER_PORT}")),
        _ => ("broker", format!("PLAINTEXT://:{CLIENT_PORT}")),
    };
    let mut text = format!(
        "process.roles={roles}\nnode.id={}\ncontroller.quorum.voters={}\nlisteners={listeners}\n\
         controller.listener.names=CONTROLLER\nlog.dirs=/data\n\
         controller.quorum.election.timeout.ms={}\ncontroller.quorum.fetch.timeout.ms={}\n\
         broker.heartbeat.interval.ms=300\nbroker.session.timeout.ms={}\n\
         min.insync.replicas={}\ndefault.replication.factor={}\nreplica.lag.time.max.ms={}\n\
         offsets.topic.num.partitions=2\noffsets.topic.replication.factor={}\n\
         log.segment.bytes={}\ngroup.initial.rebalance.delay.ms=0\nauto.create.topics.enable=false\n\
         metadata.log.segment.bytes=16384\n",
        i + 1,
        quorum.join(","),
        mix.election_timeout_ms,
        2 * mix.election_timeout_ms,
        mix.session_timeout_ms,
        mix.min_insync,
        mix.replication_factor,
        mix.lag_max_ms,
        mix.replication_factor,
        mix.segment_bytes,
    );
    if mix.is_broker(i) {
        text.push_str(&format!(
            "advertised.listeners=PLAINTEXT://{}:{CLIENT_PORT}\n",
            ip(i)
        ));
    }
    if mix.fsync {
        text.push_str("log.flush.interval.messages=1\n");
    }
    if mix.txn_producers > 0 {
        // A few state partitions replicated as the topic is, and timed-out transactions
        // aborted within a second or so.
        text.push_str(&format!(
            "transaction.state.log.num.partitions=3\ntransaction.state.log.replication.factor={}\n\
             transaction.state.log.min.isr={}\n\
             transaction.abort.timed.out.transaction.cleanup.interval.ms=1000\n",
            mix.replication_factor, mix.min_insync
        ));
    }
    if mix.compact {
        text.push_str(
            "log.cleanup.policy=compact,delete\nlog.cleaner.min.cleanable.ratio=0.01\n\
             log.cleaner.backoff.ms=100\n",
        );
    }
    ServerConfig::parse(&text)
        .map(|(config, _)| config)
        .map_err(|e| e.to_string())
}

async fn node_main(world: World, i: usize, seed: u64, bugs: ClusterBugs) {
    let (disk, clock, incarnation, config) = {
        let mut w = lock(&world);
        w.incarnation[i] += 1;
        w.stopped[i] = false;
        let inc = w.incarnation[i];
        w.event(i, &format!("start #{inc}"));
        let config = node_config(&w.mix, i);
        (w.disks[i].clone(), w.clocks[i].clone(), inc, config)
    };
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            let mut w = lock(&world);
            w.violation(format!(
                "node {}: the simulator's config is refused: {e}",
                i + 1
            ));
            return;
        }
    };
    let disk: Arc<dyn Disk> = Arc::new(disk);
    let dir_id = Uuid::from_random([i as u8 + 11; 16]);
    if let Err(e) = node::format_storage(&disk, &config, CLUSTER_ID, true, |_| Ok(dir_id)) {
        let mut w = lock(&world);
        w.event(i, &format!("cannot format: {e}"));
        w.stopped[i] = true;
        return;
    }
    let observer_world = Arc::clone(&world);
    let env = NodeEnv {
        disk,
        clock,
        seed: seed ^ (i as u64) << 40 ^ incarnation << 20,
        incarnation_id: uuid::Uuid::from_u64_pair(seed ^ i as u64, incarnation),
        observer: Some(Arc::new(move |s: &QuorumStatus| {
            lock(&observer_world).observe_quorum(i, s)
        })),
        proposals: None,
        quorum_bugs: Default::default(),
        bugs,
    };
    let outcome = node::run(config, env, std::future::pending()).await;
    let mut w = lock(&world);
    match outcome {
        Ok(()) => w.event(i, "stopped"),
        Err(e) => w.event(i, &format!("stopped: {e}")),
    }
    w.stopped[i] = true;
}

fn bootstrap(mix: &Mix) -> String {
    (0..mix.nodes())
        .filter(|i| mix.is_broker(*i))
        .map(|i| format!("{}:{CLIENT_PORT}", ip(i)))
        .collect::<Vec<_>>()
        .join(",")
}

fn new_client(world: &World, name: &str) -> Client {
    let mix = lock(world).mix.clone();
    let mut c = Client::new(&bootstrap(&mix), name);
    c.set_timeout(Duration::from_secs(5));
    c
}

/// Metadata from any broker, observed by the checker.
async fn refresh(world: &World, client: &mut Client) -> Option<View> {
    let v = kafka::metadata(client, None).await.ok()?;
    lock(world).observe_view("a bootstrap broker", &v);
    Some(v)
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

async fn admin(world: World, seed: u64) {
    let mut client = new_client(&world, "sim-admin");
    client.set_timeout(Duration::from_secs(2));
    let (partitions, rf) = {
        let w = lock(&world);
        (w.mix.partitions, w.mix.replication_factor)
    };
    loop {
        let code = kafka::create_topic(&mut client, partitions, rf).await;
        // 36: TOPIC_ALREADY_EXISTS (an earlier attempt that timed out went through).
        if code == 0 || code == 36 {
            break;
        }
        lock(&world).event(usize::MAX, &format!("CreateTopics: error {code}"));
        sleep_ms(200).await;
    }
    // Usable once every partition has a leader.
    loop {
        if let Some(v) = refresh(&world, &mut client).await {
            if v.partitions.len() == partitions as usize
                && v.partitions.values().all(|p| p.error == 0 && p.leader >= 0)
            {
                let mut w = lock(&world);
                w.topic_ready = true;
                w.event(usize::MAX, "topic ready");
                break;
            }
        }
        sleep_ms(100).await;
    }
    if lock(&world).mix.admin_changes {
        admin_changes(&world, &mut client, seed).await;
    }
}

/// While the workload runs (until the heal): now and then add partitions to the topic, or change
/// its `min.insync.replicas` or `segment.bytes`, as an operator would. Each change is retried
/// until it is known to have happened; new partitions join the workload once all are led.
async fn admin_changes(world: &World, client: &mut Client, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xAD);
    let rf = lock(world).mix.replication_factor;
    loop {
        sleep_ms(rng.gen_range(1_000..6_000)).await;
        let (healed, partitions) = {
            let w = lock(world);
            (w.healed_at.is_some(), w.partitions)
        };
        if healed {
            return;
        }
        lock(world).admin_pending = true;
        if rng.gen_bool(0.4) && partitions < 8 {
            let target = partitions + rng.gen_range(1..=2);
            loop {
                let code = kafka::create_partitions(client, target).await;
                // 37: INVALID_PARTITIONS, the topic has `target` already (an earlier attempt
                // that got no answer went through).
                if code == 0 || code == 37 {
                    break;
                }
                lock(world).event(usize::MAX, &format!("CreatePartitions: error {code}"));
                sleep_ms(200).await;
            }
            loop {
                if let Some(v) = refresh(world, client).await {
                    if v.partitions.len() == target as usize
                        && v.partitions.values().all(|p| p.error == 0 && p.leader >= 0)
                    {
                        break;
                    }
                }
                sleep_ms(100).await;
            }
            let mut w = lock(world);
            w.partitions = target;
            w.counts.admin_changes += 1;
            w.event(usize::MAX, &format!("topic grown to {target} partitions"));
        } else if rng.gen_bool(0.3) {
            delete_records(world, client, &mut rng, partitions).await;
        } else {
            let (key, value) = if rng.gen_bool(0.6) {
                ("min.insync.replicas", rng.gen_range(1..=rf).to_string())
            } else {
                ("segment.bytes", rng.gen_range(2_048..65_536).to_string())
            };
            loop {
                let code = kafka::set_topic_config(client, key, &value).await;
                if code == 0 {
                    break;
                }
                lock(world).event(
                    usize::MAX,
                    &format!("IncrementalAlterConfigs: error {code}"),
                );
                sleep_ms(200).await;
            }
            let mut w = lock(world);
            w.counts.admin_changes += 1;
            w.event(usize::MAX, &format!("topic config {key}={value}"));
        }
        lock(world).admin_pending = false;
    }
}

/// DeleteRecords below part of what the consumer has read of one partition (so below a high
/// watermark a leader reported), sent to its leader until answered or refused for good. The
/// offset counts as possibly deleted from the moment it is sent.
async fn delete_records(world: &World, client: &mut Client, rng: &mut ChaCha8Rng, partitions: i32) {
    let p = rng.gen_range(0..partitions);
    let read = lock(world).consumed.get(&p).copied().unwrap_or(0);
    let target = (read as f64 * rng.gen_range(0.3..1.0)) as i64;
    if target <= 0 {
        return;
    }
    {
        let mut w = lock(world);
        let below = w.deleted_below.entry(p).or_insert(0);
        *below = (*below).max(target);
    }
    for _ in 0..10 {
        let Some(v) = refresh(world, client).await else {
            sleep_ms(200).await;
            continue;
        };
        let Some((addr, leader, _)) = v.leader_addr(p) else {
            sleep_ms(200).await;
            continue;
        };
        let (code, low) = kafka::delete_records(client, &addr, p, target).await;
        let mut w = lock(world);
        match code {
            0 => {
                if low < target {
                    w.violation(format!(
                        "partition {p}: DeleteRecords below {target} answered with the low watermark {low}"
                    ));
                }
                w.counts.records_deleted += 1;
                w.counts.admin_changes += 1;
                w.event(
                    usize::MAX,
                    &format!("partition {p}: records below {target} deleted (node {leader}, low watermark {low})"),
                );
                return;
            }
            // OFFSET_OUT_OF_RANGE: a new leader's high watermark has not caught up yet;
            // REQUEST_TIMED_OUT: a replica did not move its start in time (it may be down).
            1 | 7 => {
                w.event(
                    usize::MAX,
                    &format!("partition {p}: DeleteRecords below {target}: error {code}"),
                );
                return;
            }
            _ => {
                drop(w);
                sleep_ms(200).await;
            }
        }
    }
}

fn retriable(code: i16) -> bool {
    // NETWORK, UNKNOWN_TOPIC_OR_PARTITION 3, LEADER_NOT_AVAILABLE 5, NOT_LEADER_OR_FOLLOWER 6,
    // REQUEST_TIMED_OUT 7, NOT_ENOUGH_REPLICAS 19 / _AFTER_APPEND 20, KAFKA_STORAGE_ERROR 56,
    // FENCED / UNKNOWN_LEADER_EPOCH 74 / 75, COORDINATOR_NOT_AVAILABLE 15, NOT_COORDINATOR 16,
    // COORDINATOR_LOAD_IN_PROGRESS 14.
    matches!(
        code,
        NETWORK | 3 | 5 | 6 | 7 | 14 | 15 | 16 | 19 | 20 | 56 | 74 | 75
    )
}

/// The topic's partition count while producers should go on; `None` once they must stop.
fn producing(world: &World) -> Option<i32> {
    let w = lock(world);
    (!w.stop_producing).then_some(w.partitions)
}

async fn init_producer(world: &World, client: &mut Client) -> Option<(i64, i16)> {
    loop {
        let (code, pid, epoch) = kafka::init_producer_id(client).await;
        if code == 0 {
            return Some((pid, epoch));
        }
        lock(world).event(usize::MAX, &format!("InitProducerId: error {code}"));
        if lock(world).stop_producing {
            return None;
        }
        sleep_ms(200).await;
    }
}

/// An idempotent acks=all producer: one batch in flight, retried with the same sequence until it
/// is acknowledged, as Kafka's producer does with `enable.idempotence=true`.
async fn idempotent_producer(world: World, k: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1D3 ^ (k as u64) << 32);
    let mut client = new_client(&world, &format!("sim-idempotent-{k}"));
    let Some((mut pid, mut epoch)) = init_producer(&world, &mut client).await else {
        lock(&world).producers_running -= 1;
        return;
    };
    let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
    let mut view = View::default();
    for n in 0u64.. {
        let Some(partitions) = producing(&world) else {
            break;
        };
        let p = ((n as usize + k) % partitions as usize) as i32;
        let count = rng.gen_range(1..=3usize);
        let values: Vec<String> = (0..count).map(|j| format!("i{k}-{n}-{j}")).collect();
        let keyed = lock(&world).mix.compact;
        let recs: Vec<(Option<&[u8]>, &[u8])> = values
            .iter()
            .map(|v| (keyed.then_some(v.as_bytes()), v.as_bytes()))
            .collect();
        let plain = build_batch(0, 1_700_000_000_000 + n as i64, &recs);
        let mut attempt = 0u64;
        let mut sequence_errors = 0;
        // Any attempt may be the one appended: power lost after the first counts.
        let mut first_sent_ms: Option<u64> = None;
        loop {
            attempt += 1;
            let mut batch = plain.clone();
            let seq = *sequences.get(&p).unwrap_or(&0);
            set_producer(&mut batch, pid, epoch, seq);
            let Some((addr, leader, _)) = view.leader_addr(p) else {
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
                sleep_ms(rng.gen_range(50..200)).await;
                continue;
            };
            {
                let mut w = lock(&world);
                w.counts.produce_attempts += 1;
                first_sent_ms.get_or_insert(w.now_ms());
            }
            let (code, base) = kafka::produce(&mut client, &addr, p, -1, Bytes::from(batch)).await;
            match code {
                0 | 46 => {
                    let mut w = lock(&world);
                    let at_ms = first_sent_ms.unwrap_or(0);
                    for (j, value) in values.iter().enumerate() {
                        w.acked.push(Ack {
                            partition: p,
                            offset: if code == 0 && base >= 0 {
                                base + j as i64
                            } else {
                                -1
                            },
                            value: value.clone(),
                            at_ms,
                            leader,
                            acks_all: true,
                        });
                    }
                    let what = format!("p{p}: {} acked at {base} (attempt {attempt})", values[0]);
                    w.event(usize::MAX, &what);
                    sequences.insert(p, seq + count as i32);
                    break;
                }
                // OUT_OF_ORDER_SEQUENCE_NUMBER 45, INVALID_PRODUCER_EPOCH 47,
                // UNKNOWN_PRODUCER_ID 59: the broker's state of this producer is not what the
                // producer holds. A deposed leader that has not heard of it yet answers so too,
                // so the batch is retried a few times on fresh Metadata first. Then, as Kafka's
                // producer does, the batch fails (it may or may not be in the log: an earlier
                // attempt without an answer may have been appended) and the producer resets its
                // id; the batch's values are never acknowledged, so the checker only requires
                // them to be in the log at most once.
                45 | 47 | 59 if sequence_errors < 5 => {
                    sequence_errors += 1;
                    lock(&world).counts.produce_errors += 1;
                    sleep_ms(rng.gen_range(50..300)).await;
                    if let Some(v) = refresh(&world, &mut client).await {
                        view = v;
                    }
                }
                45 | 47 | 59 => {
                    {
                        let mut w = lock(&world);
                        w.counts.producer_resets += 1;
                        w.event(
                            usize::MAX,
                            &format!("producer {k}: error {code}, batch failed, new id"),
                        );
                    }
                    let Some((p2, e2)) = init_producer(&world, &mut client).await else {
                        break;
                    };
                    (pid, epoch) = (p2, e2);
                    sequences.clear();
                    break;
                }
                _ => {
                    {
                        let mut w = lock(&world);
                        w.counts.produce_errors += 1;
                        let what = if retriable(code) {
                            format!(
                                "p{p}: producer {k} retries after error {code} from node {leader}"
                            )
                        } else {
                            format!(
                                "p{p}: producer {k}: unexpected error {code} from node {leader}"
                            )
                        };
                        w.event(usize::MAX, &what);
                    }
                    sleep_ms(rng.gen_range(20..200)).await;
                    if let Some(v) = refresh(&world, &mut client).await {
                        view = v;
                    }
                }
            }
        }
        sleep_ms(rng.gen_range(5..40)).await;
    }
    lock(&world).producers_running -= 1;
}

/// Whether a transactional producer's request is worth retrying as is: the retriable codes,
/// COORDINATOR_LOAD_IN_PROGRESS and CONCURRENT_TRANSACTIONS 51 (the coordinator is still
/// ending the previous transaction, or this one).
fn txn_retriable(code: i16) -> bool {
    retriable(code) || code == 51
}

/// A transactional producer, as Kafka's transactional producer drives the coordinator:
/// FindCoordinator (key type 1) and InitProducerId for its `transactional.id`, then
/// transactions of 1-3 partitions: AddPartitionsToTxn, one acks=all batch of 1-3 records to
/// each (idempotent: retried with the same sequence until acknowledged), and EndTxn, commit
/// mostly. Any error that is not retriable abandons the transaction and the producer starts
/// again with InitProducerId, which fences its old epoch and aborts what it left open, as
/// Kafka's producer does after a fatal error. It stops only between transactions, with none
/// left open.
async fn transactional_producer(world: World, k: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7C ^ (k as u64) << 36);
    let tid = format!("sim-txn-{k}");
    let mut client = new_client(&world, &tid);
    let mut coordinator: Option<String> = None;
    let mut view = View::default();
    let mut n = 0u64;
    'incarnation: loop {
        let producer = loop {
            let addr = match &coordinator {
                Some(a) => a.clone(),
                None => {
                    let (code, a) = kafka::find_transaction_coordinator(&mut client, &tid).await;
                    if code != 0 {
                        sleep_ms(rng.gen_range(50..200)).await;
                        continue;
                    }
                    coordinator = Some(a.clone());
                    a
                }
            };
            let (code, pid, epoch) =
                kafka::init_transactional_producer(&mut client, &addr, &tid, 10_000).await;
            if code == 0 {
                break (pid, epoch);
            }
            lock(&world).event(usize::MAX, &format!("{tid}: InitProducerId: error {code}"));
            if !txn_retriable(code) || matches!(code, NETWORK | 15 | 16) {
                coordinator = None;
            }
            sleep_ms(rng.gen_range(50..200)).await;
        };
        {
            // The answer means the coordinator ended whatever this id had open: as aborted,
            // since no commit was sent for it.
            let mut w = lock(&world);
            for ((pk, _), t) in w.txns.iter_mut() {
                if *pk == k && t.fate == TxnFate::Open {
                    t.fate = TxnFate::Aborted;
                }
            }
            let what = format!("{tid}: producer id {} epoch {}", producer.0, producer.1);
            w.event(usize::MAX, &what);
        }
        let mut sequences: BTreeMap<i32, i32> = BTreeMap::new();
        loop {
            let Some(partitions) = producing(&world) else {
                break 'incarnation;
            };
            n += 1;
            let mut chosen: BTreeSet<i32> = BTreeSet::new();
            for _ in 0..rng.gen_range(1..=3) {
                chosen.insert(rng.gen_range(0..partitions));
            }
            let chosen: Vec<i32> = chosen.into_iter().collect();
            {
                let mut w = lock(&world);
                let started_ms = w.now_ms();
                w.txns.insert(
                    (k, n),
                    Txn {
                        values: Vec::new(),
                        fate: TxnFate::Open,
                        started_ms,
                        late: Vec::new(),
                    },
                );
            }
            // AddPartitionsToTxn, then one batch to each partition.
            let mut added = false;
            for _ in 0..100 {
                let Some(addr) = coordinator.clone() else {
                    break;
                };
                let code =
                    kafka::add_partitions_to_txn(&mut client, &addr, &tid, producer, &chosen).await;
                if code == 0 {
                    added = true;
                    break;
                }
                if !txn_retriable(code) {
                    lock(&world).event(
                        usize::MAX,
                        &format!("{tid}: AddPartitionsToTxn: error {code}"),
                    );
                    break;
                }
                if matches!(code, NETWORK | 15 | 16) {
                    let (c, a) = kafka::find_transaction_coordinator(&mut client, &tid).await;
                    coordinator = (c == 0).then_some(a);
                }
                sleep_ms(rng.gen_range(30..150)).await;
            }
            if !added {
                lock(&world).counts.txn_resets += 1;
                coordinator = None;
                continue 'incarnation;
            }
            for p in &chosen {
                let count = rng.gen_range(1..=3usize);
                let values: Vec<String> = (0..count).map(|j| format!("t{k}-{n}-{p}-{j}")).collect();
                let keyed = lock(&world).mix.compact;
                let recs: Vec<(Option<&[u8]>, &[u8])> = values
                    .iter()
                    .map(|v| (keyed.then_some(v.as_bytes()), v.as_bytes()))
                    .collect();
                let mut plain = build_batch(0, 1_700_000_000_000 + n as i64, &recs);
                set_transactional_producer(&mut plain, producer.0, producer.1);
                let seq = *sequences.get(p).unwrap_or(&0);
                set_producer(&mut plain, producer.0, producer.1, seq);
                if let Some(t) = lock(&world).txns.get_mut(&(k, n)) {
                    t.values.extend(values.iter().map(|v| (*p, -1, v.clone())));
                }
                let mut acked = false;
                for _ in 0..100 {
                    let Some((addr, leader, _)) = view.leader_addr(*p) else {
                        if let Some(v) = refresh(&world, &mut client).await {
                            view = v;
                        }
                        sleep_ms(rng.gen_range(50..200)).await;
                        continue;
                    };
                    lock(&world).counts.produce_attempts += 1;
                    let (code, base) = kafka::produce_as(
                        &mut client,
                        &addr,
                        *p,
                        -1,
                        Bytes::from(plain.clone()),
                        Some(&tid),
                    )
                    .await;
                    if code == 0 || code == 46 {
                        let mut w = lock(&world);
                        if let Some(t) = w.txns.get_mut(&(k, n)) {
                            for (j, v) in values.iter().enumerate() {
                                if let Some(e) = t.values.iter_mut().find(|e| &e.2 == v) {
                                    e.1 = if code == 0 && base >= 0 {
                                        base + j as i64
                                    } else {
                                        -1
                                    };
                                }
                            }
                        }
                        let what = format!("p{p}: {} acked at {base} by node {leader}", values[0]);
                        w.event(usize::MAX, &what);
                        acked = true;
                        break;
                    }
                    lock(&world).counts.produce_errors += 1;
                    if !retriable(code) {
                        lock(&world).event(
                            usize::MAX,
                            &format!("{tid}: p{p}: produce error {code} from node {leader}"),
                        );
                        break;
                    }
                    sleep_ms(rng.gen_range(20..200)).await;
                    if let Some(v) = refresh(&world, &mut client).await {
                        view = v;
                    }
                }
                if !acked {
                    lock(&world).counts.txn_resets += 1;
                    continue 'incarnation;
                }
                sequences.insert(*p, seq + count as i32);
            }
            let commit = rng.gen_bool(0.75);
            if commit {
                if let Some(t) = lock(&world).txns.get_mut(&(k, n)) {
                    t.fate = TxnFate::CommitSent;
                }
            }
            let mut ended = false;
            for _ in 0..100 {
                let addr = match &coordinator {
                    Some(a) => a.clone(),
                    None => {
                        let (c, a) = kafka::find_transaction_coordinator(&mut client, &tid).await;
                        if c != 0 {
                            sleep_ms(rng.gen_range(50..200)).await;
                            continue;
                        }
                        coordinator = Some(a.clone());
                        a
                    }
                };
                let code = kafka::end_txn(&mut client, &addr, &tid, producer, commit).await;
                if code == 0 {
                    ended = true;
                    break;
                }
                if !txn_retriable(code) {
                    lock(&world).event(usize::MAX, &format!("{tid}: EndTxn: error {code}"));
                    break;
                }
                if matches!(code, NETWORK | 15 | 16) {
                    coordinator = None;
                }
                sleep_ms(rng.gen_range(30..150)).await;
            }
            {
                let mut w = lock(&world);
                if let Some(t) = w.txns.get_mut(&(k, n)) {
                    if ended {
                        t.fate = if commit {
                            TxnFate::Committed
                        } else {
                            TxnFate::Aborted
                        };
                    }
                }
                let what = format!(
                    "{tid}: transaction {n} on {chosen:?}: {} {}",
                    if commit { "commit" } else { "abort" },
                    if ended { "done" } else { "failed" }
                );
                w.event(usize::MAX, &what);
            }
            if !ended {
                lock(&world).counts.txn_resets += 1;
                continue 'incarnation;
            }
            // Now and then a batch of this transaction arrives late, after EndTxn succeeded
            // (a retry stuck in the network), with the next sequence: before the marker it
            // joins the transaction; after it, its coordinator must refuse it
            // (INVALID_TXN_STATE), or it would open a transaction nobody ends (KIP-890).
            if rng.gen_bool(0.25) {
                let p = chosen[rng.gen_range(0..chosen.len())];
                if let Some((addr, leader, _)) = view.leader_addr(p) {
                    let value = format!("t{k}-{n}-{p}-late");
                    let seq = *sequences.get(&p).unwrap_or(&0);
                    let keyed = lock(&world).mix.compact;
                    let mut batch = build_batch(
                        0,
                        1_700_000_000_000 + n as i64,
                        &[(keyed.then_some(value.as_bytes()), value.as_bytes())],
                    );
                    set_transactional_producer(&mut batch, producer.0, producer.1);
                    set_producer(&mut batch, producer.0, producer.1, seq);
                    if let Some(t) = lock(&world).txns.get_mut(&(k, n)) {
                        t.late.push((p, value.clone()));
                    }
                    // NOT_ENOUGH_REPLICAS (the coordinator is still writing the markers, or
                    // out of reach) is retried, as a producer retries it.
                    let mut code = NETWORK;
                    for _ in 0..20 {
                        let base;
                        (code, base) = kafka::produce_as(
                            &mut client,
                            &addr,
                            p,
                            -1,
                            Bytes::from(batch.clone()),
                            Some(&tid),
                        )
                        .await;
                        lock(&world).event(
                            usize::MAX,
                            &format!(
                                "p{p}: late {value}: error {code} at {base} from node {leader}"
                            ),
                        );
                        if code != 19 {
                            break;
                        }
                        sleep_ms(rng.gen_range(20..100)).await;
                    }
                    match code {
                        0 => {
                            lock(&world).counts.txn_late_joined += 1;
                            sequences.insert(p, seq + 1);
                        }
                        // INVALID_TXN_STATE: refused; the sequence was not used.
                        48 => lock(&world).counts.txn_late_refused += 1,
                        // Whether it was written is unknown, and with it the next sequence:
                        // start over with a new epoch.
                        _ => {
                            lock(&world).counts.txn_resets += 1;
                            continue 'incarnation;
                        }
                    }
                }
            }
            sleep_ms(rng.gen_range(10..100)).await;
        }
    }
    lock(&world).producers_running -= 1;
}

/// A read_committed consumer: reads every partition from its leader at isolation level 1,
/// dropping aborted transactions as Kafka's consumer does, and follows leader changes.
async fn committed_consumer(world: World, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x4C);
    let mut client = new_client(&world, "sim-read-committed");
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut view = View::default();
    loop {
        let (stop, partitions) = {
            let w = lock(&world);
            (w.stop_consuming, w.partitions)
        };
        if stop {
            return;
        }
        for p in 0..partitions {
            let position = *positions.entry(p).or_insert(0);
            let Some((addr, _, epoch)) = view.leader_addr(p) else {
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
                sleep_ms(50).await;
                continue;
            };
            let f = kafka::fetch_isolated(&mut client, &addr, p, position, epoch, 100, true).await;
            match f.error {
                0 => {
                    let mut w = lock(&world);
                    w.observe_committed_fetch(p, epoch, position, &f);
                    if let Some(next) = f.next_offset.filter(|n| *n > position) {
                        positions.insert(p, next);
                    }
                    w.rc_consumed.insert(p, positions[&p]);
                }
                1 => {
                    // Out of range: below a DeleteRecords offset (read from the log start) or
                    // past a log that lost power (excused; from the end). The plain consumer
                    // judges whether it was legitimate.
                    let (deleted_below, excused) = {
                        let w = lock(&world);
                        (
                            w.deleted_below.get(&p).copied().unwrap_or(0),
                            w.loss_excused(Some(p), 0),
                        )
                    };
                    let to = if position < deleted_below {
                        kafka::earliest_offset(&mut client, &addr, p).await
                    } else if excused {
                        kafka::latest_offset(&mut client, &addr, p).await
                    } else {
                        (NETWORK, -1)
                    };
                    if to.0 == 0 && to.1 >= 0 && to.1 != position {
                        let mut w = lock(&world);
                        w.rc_skipped.insert(p);
                        if to.1 < position {
                            if let Some(seen) = w.rc_polled.get_mut(&p) {
                                seen.split_off(&to.1);
                            }
                        }
                        w.event(
                            usize::MAX,
                            &format!("partition {p}: read_committed consumer reset to {}", to.1),
                        );
                        positions.insert(p, to.1);
                        w.rc_consumed.insert(p, to.1);
                    }
                }
                _ => {}
            }
            if f.error != 0 {
                sleep_ms(rng.gen_range(20..100)).await;
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
            }
        }
        sleep_ms(rng.gen_range(5..30)).await;
    }
}

/// A plain acks=1 producer: each batch sent once, no retries. Its acknowledged records may be
/// lost on failover (acks=1), but one found in the final log must be at its acknowledged offset.
async fn plain_producer(world: World, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA1);
    let mut client = new_client(&world, "sim-acks1");
    let mut view = View::default();
    for n in 0u64.. {
        let Some(partitions) = producing(&world) else {
            break;
        };
        let p = (n % partitions as u64) as i32;
        let value = format!("a-{n}");
        let key = lock(&world).mix.compact.then_some(value.as_bytes());
        let batch = build_batch(0, 1_700_000_000_000, &[(key, value.as_bytes())]);
        match view.leader_addr(p) {
            None => {
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
            }
            Some((addr, leader, _)) => {
                let sent_ms = lock(&world).now_ms();
                let (code, base) =
                    kafka::produce(&mut client, &addr, p, 1, Bytes::from(batch)).await;
                if code == 0 {
                    let mut w = lock(&world);
                    let at_ms = sent_ms;
                    w.acked.push(Ack {
                        partition: p,
                        offset: base,
                        value,
                        at_ms,
                        leader,
                        acks_all: false,
                    });
                } else if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
            }
        }
        sleep_ms(rng.gen_range(10..80)).await;
    }
    lock(&world).producers_running -= 1;
}

/// An acks=0 producer: each batch written once and never answered. Nothing is promised about
/// its records; the checks that hold for every record (each value once, offsets contiguous,
/// what was read is in the final log) hold for them too. A broker that refuses one closes the
/// connection (as Kafka does), which is how this producer, like Kafka's, learns to look again.
async fn acks0_producer(world: World, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xA0);
    let mut client = new_client(&world, "sim-acks0");
    let mut view = View::default();
    for n in 0u64.. {
        let Some(partitions) = producing(&world) else {
            break;
        };
        let p = (n % partitions as u64) as i32;
        match view.leader_addr(p) {
            Some((addr, _, _)) => {
                let value = format!("z-{n}");
                let key = lock(&world).mix.compact.then_some(value.as_bytes());
                let batch = build_batch(0, 1_700_000_000_000, &[(key, value.as_bytes())]);
                lock(&world).counts.acks0_sent += 1;
                if kafka::produce_acks0(&mut client, &addr, p, Bytes::from(batch))
                    .await
                    .is_err()
                {
                    if let Some(v) = refresh(&world, &mut client).await {
                        view = v;
                    }
                }
            }
            None => {
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
            }
        }
        // Metadata now and then, as a producer's metadata.max.age.ms does.
        if n % 16 == 15 {
            if let Some(v) = refresh(&world, &mut client).await {
                view = v;
            }
        }
        sleep_ms(rng.gen_range(30..150)).await;
    }
    lock(&world).producers_running -= 1;
}

/// Reads every partition from its leader, following leader changes, and commits its positions
/// in the group every few hundred ms; reads the group's offsets back every second.
async fn consumer(world: World, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xC0);
    let mut client = new_client(&world, "sim-consumer");
    let mut coordinator_client = new_client(&world, "sim-committer");
    let mut positions: BTreeMap<i32, i64> = BTreeMap::new();
    let mut view = View::default();
    let mut coordinator: Option<String> = None;
    let mut last_commit_ms = 0u64;
    let mut last_check_ms = 0u64;
    loop {
        let (stop, partitions) = {
            let w = lock(&world);
            (w.stop_consuming, w.partitions)
        };
        if stop {
            return;
        }
        for p in 0..partitions {
            positions.entry(p).or_insert(0);
            // A position past a log that lost power is reset as `auto.offset.reset=latest`
            // does (seed 62): from this leader.
            let mut reset_from: Option<String> = None;
            // A position below a log start DeleteRecords moved: `auto.offset.reset=earliest`.
            let mut reset_to_start_from: Option<String> = None;
            let Some((addr, _, epoch)) = view.leader_addr(p) else {
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
                sleep_ms(50).await;
                continue;
            };
            let position = positions[&p];
            let f = kafka::fetch(&mut client, &addr, p, position, epoch, 100).await;
            {
                let mut w = lock(&world);
                match f.error {
                    0 => {
                        w.observe_fetch(p, position, &f);
                        // Past the last batch, markers included.
                        if let Some(next) = f.next_offset.filter(|n| *n > position) {
                            positions.insert(p, next);
                        }
                        w.consumed.insert(p, positions[&p]);
                    }
                    1 => {
                        // OFFSET_OUT_OF_RANGE at a position below a high watermark the cluster
                        // reported: a real consumer would reset (skip or re-read) here.
                        // Legitimate only if the records below it were lost.
                        w.counts.out_of_range += 1;
                        let what = format!(
                            "partition {p}: OFFSET_OUT_OF_RANGE at position {position}, below a high watermark a leader reported, from {addr}"
                        );
                        // From a deposed leader that has not heard of it (isolated), an
                        // answer about its own shorter log is what Kafka gives too.
                        let newest = w
                            .leaders
                            .keys()
                            .filter(|(q, _)| *q == p)
                            .map(|(_, e)| *e)
                            .max()
                            .unwrap_or(-1);
                        if position < w.deleted_below.get(&p).copied().unwrap_or(0) {
                            w.event(
                                usize::MAX,
                                &format!("{what} (below a DeleteRecords offset)"),
                            );
                            reset_to_start_from = Some(addr.clone());
                            // Or past the log's end, which a power loss cut below the
                            // position: only the reset to the latest offset moves it
                            // (seed 201 asked for the earliest for ever).
                            if w.loss_excused(Some(p), 0) {
                                reset_from = Some(addr.clone());
                            }
                        } else if w.loss_excused(Some(p), 0) {
                            w.event(usize::MAX, &what);
                            reset_from = Some(addr.clone());
                        } else if epoch < newest {
                            w.event(usize::MAX, &what);
                        } else {
                            w.violation(what);
                        }
                    }
                    _ => {}
                }
            }
            if let Some(addr) = reset_to_start_from {
                let (code, earliest) = kafka::earliest_offset(&mut client, &addr, p).await;
                if code == 0 && earliest > positions[&p] {
                    let mut w = lock(&world);
                    w.counts.consumer_resets += 1;
                    w.event(
                        usize::MAX,
                        &format!("partition {p}: consumer reset to {earliest} (earliest)"),
                    );
                    positions.insert(p, earliest);
                    w.consumed.insert(p, earliest);
                }
            }
            if let Some(addr) = reset_from {
                let (code, latest) = kafka::latest_offset(&mut client, &addr, p).await;
                if code == 0 && latest >= 0 && latest < positions[&p] {
                    let mut w = lock(&world);
                    // What was read at and past it was lost (the loss is excused): the offsets
                    // will be written again, with other records.
                    if let Some(seen) = w.polled.get_mut(&p) {
                        seen.split_off(&latest);
                    }
                    // Its commits from before the reset are superseded: the group's offset
                    // goes back on purpose.
                    w.commits.remove(&p);
                    w.counts.consumer_resets += 1;
                    w.event(
                        usize::MAX,
                        &format!("partition {p}: consumer reset to {latest} (latest)"),
                    );
                    positions.insert(p, latest);
                    w.consumed.insert(p, latest);
                }
            }
            if f.error != 0 {
                sleep_ms(rng.gen_range(20..100)).await;
                if let Some(v) = refresh(&world, &mut client).await {
                    view = v;
                }
            }
        }
        let now = lock(&world).now_ms();
        if now >= last_commit_ms + 300 {
            last_commit_ms = now;
            let addr = match &coordinator {
                Some(a) => a.clone(),
                None => {
                    let (code, a) = kafka::find_coordinator(&mut coordinator_client).await;
                    if code != 0 {
                        continue;
                    }
                    coordinator = Some(a.clone());
                    a
                }
            };
            let sent_ms = lock(&world).now_ms();
            let codes = kafka::commit(&mut coordinator_client, &addr, &positions).await;
            let mut w = lock(&world);
            let at_ms = sent_ms;
            for (p, code) in &codes {
                if *code == 0 {
                    let offset = positions[p];
                    w.commits.entry(*p).or_default().push(CommitAck {
                        offset,
                        at_ms,
                        coordinator: addr.clone(),
                    });
                } else {
                    if *code == NETWORK {
                        // No answer: the coordinator may still apply it, later than commits
                        // sent after it on a new connection (Kafka orders requests only
                        // within a connection).
                        w.commits_in_doubt
                            .entry(*p)
                            .or_default()
                            .insert(positions[p]);
                    }
                    coordinator = None;
                }
            }
        }
        if now >= last_check_ms + 1_000 {
            last_check_ms = now;
            if let Some(addr) = coordinator.clone() {
                let wanted: Vec<i32> = (0..partitions).collect();
                // What was acknowledged before the request went out must be there.
                let before: BTreeMap<i32, CommitAck> = {
                    let w = lock(&world);
                    w.commits
                        .iter()
                        .filter_map(|(p, l)| {
                            l.iter().max_by_key(|c| c.offset).map(|c| (*p, c.clone()))
                        })
                        .collect()
                };
                let (code, got) = kafka::committed(&mut coordinator_client, &addr, &wanted).await;
                if code == 0 {
                    let mut w = lock(&world);
                    w.commit_checks += 1;
                    for (p, acked) in &before {
                        let Some((pcode, offset)) = got.get(p) else {
                            continue;
                        };
                        let in_doubt = w
                            .commits_in_doubt
                            .get(p)
                            .is_some_and(|d| d.contains(offset));
                        if *pcode == 0 && *offset < acked.offset && !in_doubt {
                            if w.loss_excused(None, acked.at_ms) {
                                w.counts.excused_losses += 1;
                            } else {
                                w.violation(format!(
                                    "group offset of partition {p} reads {offset} from {addr} after {} was acknowledged by {} at {} ms",
                                    acked.offset, acked.coordinator, acked.at_ms
                                ));
                            }
                        }
                    }
                } else {
                    coordinator = None;
                }
            }
        }
        sleep_ms(rng.gen_range(5..30)).await;
    }
}

async fn clients(world: World, seed: u64) {
    madsim::task::spawn(admin(Arc::clone(&world), seed));
    // The workload starts once the topic is usable; a seed whose faults keep the admin from
    // creating it before the heal runs no workload, and the liveness phase checks the topic.
    loop {
        let started = {
            let w = lock(&world);
            w.topic_ready || w.healed_at.is_some()
        };
        if started {
            break;
        }
        sleep_ms(50).await;
    }
    if lock(&world).healed_at.is_none() {
        let producers = lock(&world).mix.producers;
        let txn_producers = lock(&world).mix.txn_producers;
        lock(&world).producers_running = producers + 2 + txn_producers;
        for k in 0..producers {
            madsim::task::spawn(idempotent_producer(Arc::clone(&world), k, seed));
        }
        for k in 0..txn_producers {
            madsim::task::spawn(transactional_producer(Arc::clone(&world), k, seed));
        }
        madsim::task::spawn(plain_producer(Arc::clone(&world), seed));
        madsim::task::spawn(acks0_producer(Arc::clone(&world), seed));
    }
    madsim::task::spawn(consumer(Arc::clone(&world), seed));
    if lock(&world).mix.txn_producers > 0 {
        madsim::task::spawn(committed_consumer(Arc::clone(&world), seed));
    }
    let healed = loop {
        if let Some(t) = lock(&world).healed_at {
            break t;
        }
        sleep_ms(50).await;
    };
    let (start, mix) = {
        let w = lock(&world);
        (w.start, w.mix.clone())
    };
    if let Some(start) = start {
        liveness_and_final_checks(&world, healed, start, &mix).await;
    }
    lock(&world).checks_done = true;
    std::future::pending::<()>().await;
}

/// The most recent leader a client saw for each partition.
fn known_leaders(w: &Shared) -> BTreeMap<i32, i32> {
    let mut out = BTreeMap::new();
    for ((p, _), l) in &w.leaders {
        out.insert(*p, *l); // ordered by epoch: the last one wins
    }
    out
}

fn power_off(world: &World, handle: &Handle, id: madsim::task::NodeId, i: usize, why: &str) {
    handle.kill(id);
    let mut w = lock(world);
    w.crashes += 1;
    w.disks[i].crash();
    let now = w.now_ms();
    w.power_losses[i].push(now);
    w.event(i, &format!("power loss ({why})"));
}

async fn supervise(world: World, seed: u64, duration_s: u64, bugs: ClusterBugs) {
    #[allow(clippy::disallowed_methods)] // madsim's virtual clock
    let start = madsim::time::Instant::now();
    let mix = {
        let mut w = lock(&world);
        w.start = Some(start);
        w.clocks = w
            .mix
            .skews
            .iter()
            .map(|(offset_ms, drift_ppm)| Clock::skewed(*offset_ms, *drift_ppm))
            .collect();
        w.mix.clone()
    };
    let handle = Handle::current();
    let net = NetSim::current();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5E_4515);
    let nodes = mix.nodes();
    let mut ids = Vec::new();
    for i in 0..nodes {
        let w = Arc::clone(&world);
        let node = handle
            .create_node()
            .name(format!("n{}", i + 1))
            .ip(ip(i))
            .init(move || node_main(Arc::clone(&w), i, seed, bugs))
            .build();
        ids.push(node.id());
    }
    {
        let w = Arc::clone(&world);
        handle
            .create_node()
            .name("clients")
            .ip(client_ip())
            .init(move || clients(Arc::clone(&w), seed))
            .build();
    }
    // Disk faults start once the cluster had a moment to form (a node that fails its very
    // first fsync only tests the restart loop).
    let mut disk_faults_on = false;
    let mut down_until: Vec<Option<Duration>> = vec![None; nodes];
    let mut paused_until: Vec<Option<Duration>> = vec![None; nodes];
    let mut clogged: BTreeSet<(usize, usize)> = BTreeSet::new();
    while start.elapsed() < Duration::from_secs(duration_s) {
        sleep_ms(rng.gen_range(20..120)).await;
        let now = start.elapsed();
        if !disk_faults_on && now > Duration::from_secs(3) {
            disk_faults_on = true;
            for d in &lock(&world).disks {
                d.set_faults(mix.disk_faults);
            }
        }
        for i in 0..nodes {
            if down_until[i].is_some_and(|t| now >= t) {
                down_until[i] = None;
                handle.restart(ids[i]);
            }
            if paused_until[i].is_some_and(|t| now >= t) {
                paused_until[i] = None;
                handle.resume(ids[i]);
                lock(&world).event(i, "resumed");
            }
            // A node that stopped by itself (a disk error): its disk is treated as having lost
            // power, and it is started again a little later.
            if down_until[i].is_none() && lock(&world).stopped[i] {
                lock(&world).counts.disk_stops += 1;
                power_off(&world, &handle, ids[i], i, "stopped by a disk error");
                down_until[i] = Some(now + Duration::from_millis(rng.gen_range(100..2_000)));
            }
        }
        let up = |i: usize, d: &[Option<Duration>], p: &[Option<Duration>]| {
            d[i].is_none() && p[i].is_none()
        };
        if rng.gen_bool(mix.crash_p) {
            let i = rng.gen_range(0..nodes);
            if up(i, &down_until, &paused_until) {
                if rng.gen_bool(mix.power_share) {
                    power_off(&world, &handle, ids[i], i, "fault");
                } else {
                    handle.kill(ids[i]);
                    let mut w = lock(&world);
                    w.crashes += 1;
                    w.event(i, "process crash (page cache kept)");
                }
                down_until[i] = Some(now + Duration::from_millis(rng.gen_range(10..4_000)));
            }
        }
        if rng.gen_bool(mix.clog_p) {
            let isolate = |l: usize, what: &str, clogged: &mut BTreeSet<(usize, usize)>| {
                for o in 0..nodes {
                    if o != l {
                        net.clog_link(ids[l], ids[o]);
                        net.clog_link(ids[o], ids[l]);
                        clogged.insert((l, o));
                        clogged.insert((o, l));
                    }
                }
                lock(&world).event(l, what);
            };
            lock(&world).counts.clogs += 1;
            match rng.gen_range(0..5) {
                0 => {
                    let (a, b) = (rng.gen_range(0..nodes), rng.gen_range(0..nodes));
                    if a != b {
                        net.clog_link(ids[a], ids[b]);
                        clogged.insert((a, b));
                        lock(&world).event(a, &format!("link to n{} clogged one way", b + 1));
                    }
                }
                1 => {
                    let (a, b) = (rng.gen_range(0..nodes), rng.gen_range(0..nodes));
                    if a != b {
                        net.clog_link(ids[a], ids[b]);
                        net.clog_link(ids[b], ids[a]);
                        clogged.insert((a, b));
                        clogged.insert((b, a));
                        lock(&world).event(a, &format!("link with n{} clogged both ways", b + 1));
                    }
                }
                2 => {
                    let leaders = known_leaders(&lock(&world));
                    let pick = rng.gen_range(0..mix.partitions);
                    if let Some(l) = leaders.get(&pick) {
                        if let Ok(l) = usize::try_from(l - 1) {
                            if l < nodes {
                                isolate(l, "partition leader isolated", &mut clogged);
                            }
                        }
                    }
                }
                3 => {
                    let active = lock(&world).controllers.values().last().copied();
                    if let Some(c) = active {
                        isolate(c, "active controller isolated", &mut clogged);
                    }
                }
                _ => {
                    for (a, b) in std::mem::take(&mut clogged) {
                        net.unclog_link(ids[a], ids[b]);
                    }
                    lock(&world).event(0, "links healed");
                }
            }
        }
        if rng.gen_bool(mix.pause_p) {
            let i = rng.gen_range(0..nodes);
            if up(i, &down_until, &paused_until) {
                handle.pause(ids[i]);
                // Up to past the session and lag timeouts.
                let ms = rng.gen_range(300..mix.session_timeout_ms.max(mix.lag_max_ms) + 2_000);
                paused_until[i] = Some(now + Duration::from_millis(ms));
                let mut w = lock(&world);
                w.counts.pauses += 1;
                w.event(i, &format!("paused for {ms} ms"));
            }
        }
        if rng.gen_bool(mix.jump_p) {
            let i = rng.gen_range(0..nodes);
            let jump_ms = rng.gen_range(-30_000i64..30_000);
            let mut w = lock(&world);
            w.clocks[i].jump_wall_ms(jump_ms);
            w.event(i, &format!("wall clock jumps {jump_ms} ms"));
        }
    }
    // Liveness: heal everything, stop new writes, and wait for the cluster to settle.
    for (a, b) in std::mem::take(&mut clogged) {
        net.unclog_link(ids[a], ids[b]);
    }
    {
        let w = lock(&world);
        for d in &w.disks {
            d.set_faults(DiskFaults::default());
        }
    }
    for i in 0..nodes {
        if paused_until[i].take().is_some() {
            handle.resume(ids[i]);
        }
        if down_until[i].take().is_some() || lock(&world).stopped[i] {
            handle.restart(ids[i]);
        }
    }
    {
        let mut w = lock(&world);
        w.healed_at = Some(start.elapsed());
        w.stop_producing = true;
        w.event(0, "healed; producers finish their pending writes");
    }
    // The checker runs on the clients' node (madsim's main task has no address to connect
    // from); it ends within the liveness bound, which it enforces itself.
    while !lock(&world).checks_done {
        if start.elapsed() > Duration::from_secs(duration_s) + 2 * LIVENESS_BOUND {
            lock(&world).violation("the final checks did not finish (a client stuck)".into());
            break;
        }
        // A node whose disk error came before the heal can finish stopping after it (its
        // controlled shutdown takes up to 3 s): it is started again too (seed 276).
        for (i, id) in ids.iter().enumerate() {
            if lock(&world).stopped[i] {
                lock(&world).counts.disk_stops += 1;
                power_off(&world, &handle, *id, i, "stopped by a disk error");
                handle.restart(*id);
                lock(&world).stopped[i] = false;
            }
        }
        sleep_ms(100).await;
    }
}

/// The final reads and checks, after healing.
async fn liveness_and_final_checks(
    world: &World,
    healed: Duration,
    start: madsim::time::Instant,
    mix: &Mix,
) {
    let deadline = healed + LIVENESS_BOUND;
    let mut client = new_client(world, "sim-checker");
    let brokers: Vec<String> = (0..mix.nodes())
        .filter(|i| mix.is_broker(*i))
        .map(|i| format!("{}:{CLIENT_PORT}", ip(i)))
        .collect();
    // 1. Every broker shows every partition led, with its full ISR, all alike; producers done.
    let mut settled: Option<View> = None;
    let mut last_problem = String::new();
    while start.elapsed() < deadline {
        sleep_ms(200).await;
        if !lock(world).topic_ready {
            last_problem = "the topic was never created and led".to_string();
            continue;
        }
        let (running, admin_pending, partitions) = {
            let w = lock(world);
            (w.producers_running, w.admin_pending, w.partitions)
        };
        if running > 0 {
            last_problem = format!("{running} producers still have a write pending");
            continue;
        }
        if admin_pending {
            last_problem = "the admin's change is still under way".to_string();
            continue;
        }
        let mut views = Vec::new();
        for b in &brokers {
            match kafka::metadata_all(&mut client, b).await {
                Ok(v) => {
                    lock(world).observe_view(b, &v);
                    views.push(v);
                }
                Err(_) => {
                    last_problem = format!("no Metadata from {b}");
                    break;
                }
            }
        }
        if views.len() < brokers.len() {
            continue;
        }
        let full = |v: &View| {
            v.partitions.len() == partitions as usize
                && v.partitions.values().all(|p| {
                    let mut isr = p.isr.clone();
                    let mut replicas = p.replicas.clone();
                    isr.sort_unstable();
                    replicas.sort_unstable();
                    p.error == 0 && p.leader >= 0 && isr == replicas
                })
        };
        if let Some(v) = views.iter().find(|v| !full(v)) {
            last_problem = format!("partitions not all led with a full ISR: {:?}", v.partitions);
            continue;
        }
        // Every broker's image converges to the same one: the same live brokers, and every
        // topic (the internal ones too) with the same leaders, epochs, replicas and ISRs.
        if let Some(v) = views.iter().find(|v| {
            v.partitions != views[0].partitions
                || v.brokers != views[0].brokers
                || v.others != views[0].others
        }) {
            last_problem = format!(
                "brokers' Metadata differ: {:?} / {:?} against {:?} / {:?}",
                v.brokers, v.others, views[0].brokers, views[0].others
            );
            continue;
        }
        settled = views.into_iter().next();
        break;
    }
    let partitions = lock(world).partitions;
    let Some(view) = settled else {
        lock(world).violation(format!(
            "liveness: not settled within {LIVENESS_BOUND:?} of healing: {last_problem}"
        ));
        lock(world).stop_consuming = true;
        return;
    };
    // 2. The final logs, read from the leaders below their high watermarks (a leader whose
    // partition state is a moment behind the Metadata it serves answers 6 or 74: retried).
    let mut logs: BTreeMap<i32, (i64, BTreeMap<i64, String>)> = BTreeMap::new();
    let mut batches: BTreeMap<i32, BTreeMap<i64, kafka::BatchMeta>> = BTreeMap::new();
    let mut view = view;
    // A new leader's high watermark starts from what it had as a follower and catches up once
    // its followers fetch again (a follower still in the ISR whose connection was clogged can
    // take until `replica.lag.time.max.ms` to fetch or leave): reading at the first one seen
    // stops short of committed data (seed 527). Wait until every partition's covers everything
    // acknowledged with acks=all and everything a consumer read, and stood still for 1.5 s.
    let required: BTreeMap<i32, i64> = {
        let w = lock(world);
        let mut r: BTreeMap<i32, i64> = BTreeMap::new();
        for a in w
            .acked
            .iter()
            .filter(|a| a.acks_all && !w.loss_excused(Some(a.partition), a.at_ms))
        {
            let e = r.entry(a.partition).or_default();
            *e = (*e).max(a.offset + 1);
        }
        // And the records of every transaction whose commit succeeded.
        for t in w.txns.values().filter(|t| t.fate == TxnFate::Committed) {
            for (p, offset, _) in &t.values {
                if *offset >= 0 && !w.loss_excused(Some(*p), 0) {
                    let e = r.entry(*p).or_default();
                    *e = (*e).max(offset + 1);
                }
            }
        }
        for (p, seen) in &w.polled {
            if let Some((o, _)) = seen.last_key_value() {
                if !w.loss_excused(Some(*p), 0) {
                    let e = r.entry(*p).or_default();
                    *e = (*e).max(o + 1);
                }
            }
        }
        r
    };
    let mut stable_since = start.elapsed();
    let mut last_hws: BTreeMap<i32, i64> = BTreeMap::new();
    while start.elapsed() < deadline {
        let covered = required
            .iter()
            .all(|(p, r)| last_hws.get(p).is_some_and(|hw| hw >= r));
        if covered && start.elapsed() >= stable_since + Duration::from_millis(1_500) {
            break;
        }
        sleep_ms(250).await;
        let mut hws = BTreeMap::new();
        for p in 0..partitions {
            if let Some((addr, _, epoch)) = view.leader_addr(p) {
                let f = kafka::fetch(&mut client, &addr, p, 0, epoch, 0).await;
                hws.insert(p, if f.error == 0 { f.high_watermark } else { -1 });
            }
        }
        if hws != last_hws {
            stable_since = start.elapsed();
            last_hws = hws;
        }
    }
    // The read itself gets its own 10 s, so a high watermark that never covered what was
    // acknowledged shows as the writes it lost.
    let read_deadline = start.elapsed().max(deadline) + Duration::from_secs(10);
    for p in 0..partitions {
        let need = required.get(&p).copied().unwrap_or(0);
        let read = read_final(world, &mut client, &mut view, p, need, start, read_deadline).await;
        batches.insert(p, read.batches);
        logs.insert(p, (read.hw, read.records));
    }
    // 3. The consumer catches up with the final high watermarks.
    loop {
        let caught_up = {
            let w = lock(world);
            logs.iter()
                .all(|(p, (hw, _))| w.consumed.get(p).is_some_and(|c| c >= hw))
        };
        if caught_up {
            break;
        }
        if start.elapsed() >= read_deadline + Duration::from_secs(10) {
            let consumed = lock(world).consumed.clone();
            lock(world).violation(format!(
                "liveness: the consumer did not catch up within {LIVENESS_BOUND:?}: at {consumed:?}"
            ));
            break;
        }
        sleep_ms(100).await;
    }
    // 4. With transactions, the read_committed consumer catches up too: every transaction
    // below the final high watermarks ends (the producers ended theirs; the coordinator aborts
    // what timed out) and its markers reach the ISR, so the last stable offset reaches them.
    if mix.txn_producers > 0 {
        // It has been reading all along: it gets what the plain consumer got, which keeps
        // the checks within the supervisor's bound (seed 842).
        let rc_deadline = read_deadline + Duration::from_secs(10);
        loop {
            let behind: BTreeMap<i32, (i64, i64)> = {
                let w = lock(world);
                logs.iter()
                    .filter_map(|(p, (hw, _))| {
                        let at = w.rc_consumed.get(p).copied().unwrap_or(0);
                        (at < *hw).then_some((*p, (at, *hw)))
                    })
                    .collect()
            };
            if behind.is_empty() {
                break;
            }
            if start.elapsed() >= rc_deadline {
                let what = format!(
                    "liveness: the read_committed consumer did not reach the high watermarks within {LIVENESS_BOUND:?} of healing (partition: (position, high watermark)): {behind:?}"
                );
                // A power loss can make the coordinator forget a transaction it had begun:
                // it then hangs until an operator aborts it, in Kafka as here.
                lock(world).uncommitted_read(0, what);
                break;
            }
            sleep_ms(100).await;
        }
    }
    // The consumers can read past a final log read too early: a leader whose high watermark
    // was stuck (an ISR below min.insync.replicas) let them through only later (seed 10450),
    // and markers written after the read count in their positions. Such a partition is read
    // again up to where they got.
    let past: Vec<(i32, i64)> = {
        let w = lock(world);
        logs.iter()
            .filter_map(|(p, (hw, _))| {
                let polled = w
                    .polled
                    .get(p)
                    .and_then(|s| s.last_key_value())
                    .map_or(0, |(o, _)| o + 1);
                let seen = polled
                    .max(w.consumed.get(p).copied().unwrap_or(0))
                    .max(w.rc_consumed.get(p).copied().unwrap_or(0));
                // With transactions every partition is read again: markers written after the
                // first read can sit at its high watermark, where no position passes it.
                (seen > *hw || w.mix.txn_producers > 0).then_some((*p, seen.max(*hw)))
            })
            .collect()
    };
    for (p, seen) in past {
        let until = start.elapsed() + Duration::from_secs(10);
        let read = read_final(world, &mut client, &mut view, p, seen, start, until).await;
        batches.insert(p, read.batches);
        logs.insert(p, (read.hw, read.records));
    }
    let mut w = lock(world);
    w.stop_consuming = true;
    check_final_logs(&mut w, &logs);
    check_replicas_identical(&mut w, &view, &logs);
    if mix.txn_producers > 0 {
        check_transactions(&mut w, &logs, &batches);
    }
}

/// Reads partition `p` from its leader, from offset 0 to its high watermark, until that covers
/// `need` or `until` passes: (high watermark, records). A partition not readable at all is a
/// liveness violation.
#[allow(clippy::too_many_arguments)]
async fn read_final(
    world: &World,
    client: &mut Client,
    view: &mut View,
    p: i32,
    need: i64,
    start: madsim::time::Instant,
    until: Duration,
) -> FinalLog {
    let mut records = BTreeMap::new();
    let mut batches = BTreeMap::new();
    let mut position = 0i64;
    let mut hw = -1;
    let mut last_error = 0;
    while start.elapsed() < until {
        // Settled Metadata can still go stale (a new controller fences brokers whose sessions
        // it did not see, and elects again: seed 1840): wait for a leader.
        let Some((addr, _, epoch)) = view.leader_addr(p) else {
            last_error = kafka_protocol::error::ResponseError::LeaderNotAvailable.code();
            sleep_ms(100).await;
            if let Some(v) = refresh(world, client).await {
                *view = v;
            }
            continue;
        };
        let f = kafka::fetch(client, &addr, p, position, epoch, 0).await;
        let deleted_below = lock(world).deleted_below.get(&p).copied().unwrap_or(0);
        if f.error == 1 && position < deleted_below {
            // Below the log start DeleteRecords moved: read from it.
            let (code, earliest) = kafka::earliest_offset(client, &addr, p).await;
            if code == 0 && earliest > position {
                position = earliest;
                continue;
            }
        }
        if f.error != 0 {
            last_error = f.error;
            sleep_ms(100).await;
            if let Some(v) = refresh(world, client).await {
                *view = v;
            }
            continue;
        }
        last_error = 0;
        hw = f.high_watermark;
        for (o, v) in &f.records {
            if *o >= position {
                records.insert(*o, v.clone());
            }
        }
        for b in f.batches.iter().filter(|b| b.last_offset >= position) {
            if let Some(commit) = b.marker {
                records.insert(b.base_offset, marker_value(p, b.base_offset, commit));
            }
            batches.insert(b.base_offset, b.clone());
        }
        // A leader elected after the high watermarks were seen can start below them and catch
        // up as its followers fetch: read on until the high watermark covers what is required.
        match f.next_offset {
            Some(next) if next > position => position = next,
            _ if hw >= need => break,
            _ => {
                sleep_ms(100).await;
                continue;
            }
        }
        if position >= hw && hw >= need {
            break;
        }
    }
    if last_error != 0 || hw < 0 {
        lock(world).violation(format!(
            "liveness: partition {p} not readable to its end within {LIVENESS_BOUND:?} of healing (last error {last_error})"
        ));
    }
    FinalLog {
        hw,
        records,
        batches,
    }
}

/// One partition's final log as read from its leader.
struct FinalLog {
    hw: i64,
    /// Offset → value; a transaction marker as [`marker_value`].
    records: BTreeMap<i64, String>,
    /// Base offset → batch.
    batches: BTreeMap<i64, kafka::BatchMeta>,
}

/// The record batches of one replica's log of `partition`, as its disk holds them now
/// (written, flushed or not): (base offset, last offset, bytes), in offset order.
fn replica_batches(disk: &SimDisk, partition: i32) -> Result<Vec<(i64, i64, Vec<u8>)>, String> {
    let dir = std::path::PathBuf::from(format!("/data/{}-{partition}", kafka::TOPIC));
    // No directory yet: a replica that has not opened the partition holds nothing (it can be
    // in the ISR from the topic's creation while nothing was written: seed 161).
    if !disk.is_dir(&dir) {
        return Ok(Vec::new());
    }
    let names = disk
        .list(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut batches = Vec::new();
    // Segment names are zero-padded base offsets: name order is offset order.
    for name in names.iter().filter(|n| n.ends_with(".log")) {
        let path = dir.join(name);
        let bytes = disk
            .read_file(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut at = 0usize;
        while at + 27 <= bytes.len() {
            let field = |from: usize, n: usize| &bytes[at + from..at + from + n];
            let base = i64::from_be_bytes(field(0, 8).try_into().unwrap_or_default());
            let length = i32::from_be_bytes(field(8, 4).try_into().unwrap_or_default());
            let delta = i32::from_be_bytes(field(23, 4).try_into().unwrap_or_default());
            let end = at + 12 + usize::try_from(length).unwrap_or(0);
            if length < 49 || end > bytes.len() {
                return Err(format!("{}: no whole batch at byte {at}", path.display()));
            }
            batches.push((base, base + i64::from(delta), bytes[at..end].to_vec()));
            at = end;
        }
        if at != bytes.len() {
            return Err(format!(
                "{}: {} stray bytes at the end",
                path.display(),
                bytes.len() - at
            ));
        }
    }
    Ok(batches)
}

/// The ISR replicas of a settled partition hold the same bytes below the final high watermark
/// (from the highest log start among them): followers append the leader's batches verbatim,
/// so any difference is a replica that diverged and was never truncated back. Every batch a
/// replica holds there must be byte-identical to the fullest copy's, and a caught-up replica
/// must hold all of them.
fn check_replicas_identical(
    w: &mut Shared,
    view: &View,
    logs: &BTreeMap<i32, (i64, BTreeMap<i64, String>)>,
) {
    let mut findings = Vec::new();
    for (p, (hw, _)) in logs {
        let Some(pv) = view.partitions.get(p) else {
            continue;
        };
        let mut copies = Vec::new();
        for r in &pv.isr {
            let Some(disk) = usize::try_from(*r - 1).ok().and_then(|i| w.disks.get(i)) else {
                continue;
            };
            match replica_batches(disk, *p) {
                Ok(batches) => copies.push((*r, batches)),
                Err(e) => findings.push(format!("partition {p}, replica {r}: {e}")),
            }
        }
        // Below a log start DeleteRecords moved, a replica may keep batches that diverged
        // (its truncation stops at the leader's earliest cached epoch, as Kafka's does): no
        // reader sees them, so the comparison starts above.
        let from = copies
            .iter()
            .filter_map(|(_, b)| b.first().map(|(base, _, _)| *base))
            .max()
            .unwrap_or(0)
            .max(w.deleted_below.get(p).copied().unwrap_or(0));
        let below = |batches: &[(i64, i64, Vec<u8>)]| -> BTreeMap<i64, Vec<u8>> {
            batches
                .iter()
                .filter(|(base, last, _)| *base >= from && *last < *hw)
                .map(|(base, _, bytes)| (*base, bytes.clone()))
                .collect()
        };
        // A replica the Metadata still lists in the ISR may be catching up after a restart
        // (its power-lost pages gone): it must hold a prefix of the others' bytes, and once it
        // is caught up (it holds the batch ending at the high watermark) all of them.
        let caught_up =
            |batches: &[(i64, i64, Vec<u8>)]| batches.iter().any(|(_, last, _)| *last + 1 == *hw);
        let Some((reference_replica, reference)) = copies
            .iter()
            .max_by_key(|(_, b)| below(b).len())
            .map(|(r, b)| (*r, below(b)))
        else {
            continue;
        };
        for (r, batches) in &copies {
            let mine = below(batches);
            let differs = mine
                .iter()
                .find(|(base, bytes)| reference.get(base) != Some(*bytes))
                .map(|(base, _)| *base);
            let short = caught_up(batches) && mine.len() != reference.len();
            if differs.is_some() || short {
                findings.push(format!(
                    "partition {p}: replicas {reference_replica} and {r} differ below the high watermark {hw} \
                     ({} and {} batches from offset {from}; first difference at batch offset {:?})",
                    reference.len(),
                    mine.len(),
                    differs
                ));
            }
            if caught_up(batches) || *hw == from {
                w.counts.replicas_compared += 1;
            }
        }
    }
    for v in findings {
        w.violation(v);
    }
}

fn check_final_logs(w: &mut Shared, logs: &BTreeMap<i32, (i64, BTreeMap<i64, String>)>) {
    // Offsets contiguous from the log start (no retention or compaction here), which lies at
    // or below the largest DeleteRecords offset (0 without one); each value once.
    let mut where_is: BTreeMap<&str, (i32, i64)> = BTreeMap::new();
    let mut findings = Vec::new();
    for (p, (hw, records)) in logs {
        let deleted_below = w.deleted_below.get(p).copied().unwrap_or(0);
        let first = records.keys().next().copied().unwrap_or(*hw);
        if first > deleted_below {
            findings.push(format!(
                "partition {p}: the final log starts at {first}, above every DeleteRecords offset ({deleted_below})"
            ));
        }
        let mut expected = first;
        for (o, v) in records {
            if *o != expected {
                findings.push(format!(
                    "partition {p}: offsets not contiguous: {o} follows {}",
                    expected - 1
                ));
            }
            expected = o + 1;
            if let Some((p2, o2)) = where_is.insert(v, (*p, *o)) {
                findings.push(format!(
                    "duplicate: {v} at partition {p2} offset {o2} and partition {p} offset {o}"
                ));
            }
        }
        if expected < *hw {
            findings.push(format!(
                "partition {p}: the final log ends at {expected}, below its high watermark {hw}"
            ));
        }
    }
    for v in findings {
        w.violation(v);
    }
    // Every acknowledged acks=all write, at its offset; acks=1 ones where they were said to be.
    let acked = std::mem::take(&mut w.acked);
    let mut lost = 0;
    for a in &acked {
        let found = where_is.get(a.value.as_str()).copied();
        match found {
            Some((p, o)) if p == a.partition && (a.offset < 0 || o == a.offset) => {}
            Some((p, o)) => w.violation(format!(
                "{} acknowledged at partition {} offset {} is at partition {p} offset {o}",
                a.value, a.partition, a.offset
            )),
            None if !a.acks_all => {}
            None if a.offset >= 0
                && a.offset < w.deleted_below.get(&a.partition).copied().unwrap_or(0) => {}
            None if w.loss_excused(Some(a.partition), a.at_ms) => w.counts.excused_losses += 1,
            None => {
                lost += 1;
                if lost <= 5 {
                    w.violation(format!(
                        "lost write: {} acknowledged (acks=all) by node {} at partition {} offset {} at {} ms is not in the final log",
                        a.value, a.leader, a.partition, a.offset, a.at_ms
                    ));
                }
            }
        }
    }
    if lost > 5 {
        w.violation(format!("{lost} acknowledged writes lost in all"));
    }
    w.acked = acked;
    // Every record a consumer saw is in the final log, the same.
    let polled = std::mem::take(&mut w.polled);
    let mut unseen = 0;
    for (p, seen) in &polled {
        let Some((_, records)) = logs.get(p) else {
            continue;
        };
        let deleted_below = w.deleted_below.get(p).copied().unwrap_or(0);
        for (o, v) in seen {
            if *o < deleted_below && records.get(o).is_none() {
                continue; // deleted by DeleteRecords
            }
            if records.get(o) != Some(v) {
                unseen += 1;
                if unseen <= 5 {
                    let what = format!(
                        "partition {p}: the consumer read {v} at offset {o}; the final log (to {}) has {:?}",
                        logs.get(p).map_or(-1, |l| l.0),
                        records.get(o)
                    );
                    if !w.loss_excused(Some(*p), 0) {
                        w.violation(what);
                    } else {
                        // Page cache with power losses: what a consumer read below the high
                        // watermark can be gone if every replica that held it lost power.
                        w.counts.excused_losses += 1;
                        w.event(usize::MAX, &what);
                    }
                }
            }
        }
    }
    w.polled = polled;
}

/// What the markers in a final log make of a transactional record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Committed,
    Aborted,
    /// No marker of its producer follows it.
    Open,
}

/// The batches of the producer of the batch holding `offset` in partition `p`, from it to its
/// next marker: what a finding about its outcome needs.
fn producer_history(
    batches: &BTreeMap<i32, BTreeMap<i64, kafka::BatchMeta>>,
    p: i32,
    offset: i64,
) -> String {
    let Some(list) = batches.get(&p) else {
        return String::new();
    };
    let Some((_, first)) = list.range(..=offset).next_back() else {
        return String::new();
    };
    let mut out = format!("producer {} in partition {p}:", first.producer_id);
    for b in list
        .range(first.base_offset..)
        .map(|(_, b)| b)
        .filter(|b| b.producer_id == first.producer_id)
        .take(8)
    {
        let what = match b.marker {
            Some(true) => "COMMIT",
            Some(false) => "ABORT",
            None if b.transactional => "txn",
            None => "plain",
        };
        out.push_str(&format!(
            " {}..{} epoch {} {what};",
            b.base_offset, b.last_offset, b.producer_epoch
        ));
        if b.marker.is_some() {
            break;
        }
    }
    out
}

/// The transactions, judged from the final logs, where each transactional record's outcome is
/// read from the markers alone (the next marker of its producer in its partition), not from
/// the broker's aborted index:
/// - every transaction is all or nothing: no committed record beside an aborted or open one;
/// - a transaction whose EndTxn commit succeeded has every record, committed;
/// - no record of a transaction whose commit was never sent is committed;
/// - no transaction is left open;
/// - the read_committed consumer read exactly the committed and non-transactional records
///   below its position: each one it read is in the log, committed, and none was skipped.
fn check_transactions(
    w: &mut Shared,
    logs: &BTreeMap<i32, (i64, BTreeMap<i64, String>)>,
    batches: &BTreeMap<i32, BTreeMap<i64, kafka::BatchMeta>>,
) {
    let mut outcome: BTreeMap<(i32, i64), Outcome> = BTreeMap::new();
    // (partition, offset) of a transactional record → the offset of the marker that ends it
    // (absent: none does).
    let mut closing: BTreeMap<(i32, i64), i64> = BTreeMap::new();
    for (p, list) in batches {
        // Producer id → the offset ranges of its transactional batches since its last marker.
        let mut open: BTreeMap<i64, Vec<(i64, i64)>> = BTreeMap::new();
        for b in list.values() {
            match b.marker {
                Some(commit) => {
                    let o = if commit {
                        Outcome::Committed
                    } else {
                        Outcome::Aborted
                    };
                    for (from, to) in open.remove(&b.producer_id).unwrap_or_default() {
                        for offset in from..=to {
                            outcome.insert((*p, offset), o);
                            closing.insert((*p, offset), b.base_offset);
                        }
                    }
                }
                None if b.transactional => open
                    .entry(b.producer_id)
                    .or_default()
                    .push((b.base_offset, b.last_offset)),
                None => {}
            }
        }
        for (from, to) in open.into_values().flatten() {
            for offset in from..=to {
                outcome.insert((*p, offset), Outcome::Open);
            }
        }
    }
    let mut where_is: BTreeMap<&str, (i32, i64)> = BTreeMap::new();
    for (p, (_, records)) in logs {
        for (o, v) in records {
            where_is.insert(v.as_str(), (*p, *o));
        }
    }
    let txns = std::mem::take(&mut w.txns);
    let mut reported = 0usize;
    let mut report = |w: &mut Shared, excused: bool, what: String| {
        if excused {
            w.counts.excused_losses += 1;
            w.event(usize::MAX, &what);
        } else {
            reported += 1;
            if reported <= 8 {
                w.violation(what);
            }
        }
    };
    for ((k, n), t) in &txns {
        let mut committed = Vec::new();
        let mut other = Vec::new();
        for (p, acked_offset, v) in &t.values {
            let deleted_below = w.deleted_below.get(p).copied().unwrap_or(0);
            match where_is.get(v.as_str()) {
                Some(at) => {
                    let o = outcome.get(at).copied().unwrap_or(Outcome::Open);
                    if o == Outcome::Committed {
                        committed.push(v.as_str());
                    } else {
                        other.push((v.as_str(), o));
                    }
                    if o == Outcome::Open {
                        let excused = w.loss_excused(None, t.started_ms);
                        report(
                            w,
                            excused,
                            format!(
                                "transaction t{k}-{n}: {v} at partition {} offset {} is still open at the end; {}",
                                at.0,
                                at.1,
                                producer_history(batches, at.0, at.1)
                            ),
                        );
                    }
                }
                None if t.fate == TxnFate::Committed => {
                    // Gone below a DeleteRecords offset, or lost by the page-cache rule (its
                    // batch was acknowledged before the commit was sent).
                    let deleted = deleted_below > 0 && *acked_offset < deleted_below;
                    if !deleted {
                        let excused = w.loss_excused(Some(*p), 0);
                        report(
                            w,
                            excused,
                            format!(
                                "transaction t{k}-{n}, committed: {v} (acknowledged at partition {p} offset {acked_offset}) is not in the final log"
                            ),
                        );
                    }
                }
                None => {}
            }
        }
        // A batch that arrived after EndTxn succeeded may be absent; if present it belongs to
        // the transaction: ended by the same marker as the transaction's own record in its
        // partition, never by a later one or none (a transaction of its own, KIP-890).
        for (p, v) in &t.late {
            let Some(at) = where_is.get(v.as_str()) else {
                continue;
            };
            let o = outcome.get(at).copied().unwrap_or(Outcome::Open);
            if o == Outcome::Committed {
                committed.push(v.as_str());
            } else {
                other.push((v.as_str(), o));
            }
            let own = t
                .values
                .iter()
                .filter(|(q, _, _)| q == p)
                .find_map(|(_, _, own)| where_is.get(own.as_str()));
            if let Some(own) = own {
                if closing.get(own) != closing.get(at) {
                    let excused = w.loss_excused(None, t.started_ms);
                    report(
                        w,
                        excused,
                        format!(
                            "transaction t{k}-{n}: the late {v} at partition {p} offset {} is ended by the marker at {:?}, the transaction's own record at {} by the one at {:?}; {}",
                            at.1,
                            closing.get(at),
                            own.1,
                            closing.get(own),
                            producer_history(batches, at.0, at.1)
                        ),
                    );
                }
            }
        }
        if !committed.is_empty() && !other.is_empty() {
            let excused = w.loss_excused(None, t.started_ms);
            report(
                w,
                excused,
                format!(
                    "transaction t{k}-{n} ({:?}) is not all or nothing: {committed:?} committed, {other:?} not",
                    t.fate
                ),
            );
        }
        match t.fate {
            TxnFate::Committed if !other.is_empty() => {
                // A power loss that took the coordinator's records of this transaction leaves
                // its state at the previous transaction's CompleteCommit, and EndTxn commit is
                // then answered as a retry of that one (as in Kafka): excused from its start.
                let excused = w.loss_excused(None, t.started_ms);
                report(
                    w,
                    excused,
                    format!("transaction t{k}-{n}: its commit succeeded, yet {other:?} are not committed"),
                );
            }
            TxnFate::Open | TxnFate::Aborted if !committed.is_empty() => {
                let excused = w.loss_excused(None, t.started_ms);
                let history = committed
                    .first()
                    .and_then(|v| where_is.get(v))
                    .map(|(p, o)| producer_history(batches, *p, *o))
                    .unwrap_or_default();
                report(
                    w,
                    excused,
                    format!(
                        "transaction t{k}-{n} ({:?}, no commit sent): {committed:?} are committed; {history}",
                        t.fate
                    ),
                );
            }
            _ => {}
        }
    }
    // The read_committed consumer against the log.
    let rc_polled = std::mem::take(&mut w.rc_polled);
    for (p, (_, records)) in logs {
        let deleted_below = w.deleted_below.get(p).copied().unwrap_or(0);
        let seen = rc_polled.get(p);
        let lossy = w.loss_excused(Some(*p), 0);
        for (o, v) in seen.into_iter().flatten() {
            match records.get(o) {
                None if *o < deleted_below => {}
                Some(x) if x == v => {
                    if txn_of(v).is_some() && outcome.get(&(*p, *o)) != Some(&Outcome::Committed) {
                        let excused = w.loss_excused(
                            None,
                            txn_of(v)
                                .and_then(|id| txns.get(&id))
                                .map_or(0, |t| t.started_ms),
                        );
                        report(
                            w,
                            excused,
                            format!(
                                "partition {p}: read_committed read {v} at offset {o}, which the final log's markers leave {:?}",
                                outcome.get(&(*p, *o))
                            ),
                        );
                    }
                }
                x => report(
                    w,
                    lossy,
                    format!(
                        "partition {p}: read_committed read {v} at offset {o}; the final log has {x:?}"
                    ),
                ),
            }
        }
        if w.rc_skipped.contains(p) || lossy {
            continue;
        }
        let position = w.rc_consumed.get(p).copied().unwrap_or(0);
        for (o, v) in records.range(..position) {
            let marker = batches
                .get(p)
                .and_then(|b| b.range(..=*o).next_back())
                .is_some_and(|(_, b)| b.marker.is_some() && b.last_offset >= *o);
            let visible = !marker
                && (txn_of(v).is_none() || outcome.get(&(*p, *o)) == Some(&Outcome::Committed));
            if visible && seen.and_then(|s| s.get(o)) != Some(v) {
                report(
                    w,
                    false,
                    format!(
                        "partition {p}: read_committed passed {v} at offset {o} (committed or not transactional) without reading it"
                    ),
                );
            }
        }
    }
    if reported > 8 {
        w.violation(format!("{reported} transaction findings in all"));
    }
    w.rc_polled = rc_polled;
    w.txns = txns;
}

pub fn run(options: Options) -> Report {
    let mix = Mix::draw(options.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0xD15C);
    let nodes = mix.nodes();
    let world: World = Arc::new(Mutex::new(Shared {
        mix: mix.clone(),
        verbose: options.verbose,
        start: None,
        trace: 0xcbf2_9ce4_8422_2325,
        events: 0,
        violations: Vec::new(),
        disks: (0..nodes)
            .map(|_| SimDisk::new(rng.gen(), DiskFaults::default()))
            .collect(),
        clocks: Vec::new(),
        incarnation: vec![0; nodes],
        stopped: vec![false; nodes],
        power_losses: vec![Vec::new(); nodes],
        crashes: 0,
        controllers: BTreeMap::new(),
        leaders: BTreeMap::new(),
        replicas: BTreeMap::new(),
        topic_ready: false,
        partitions: mix.partitions,
        admin_pending: false,
        deleted_below: BTreeMap::new(),
        healed_at: None,
        checks_done: false,
        stop_producing: false,
        stop_consuming: false,
        producers_running: 0,
        acked: Vec::new(),
        polled: BTreeMap::new(),
        consumed: BTreeMap::new(),
        commits: BTreeMap::new(),
        commits_in_doubt: BTreeMap::new(),
        commit_checks: 0,
        txns: BTreeMap::new(),
        rc_polled: BTreeMap::new(),
        rc_consumed: BTreeMap::new(),
        rc_skipped: BTreeSet::new(),
        lso: BTreeMap::new(),
        counts: Counts::default(),
    }));
    let runtime = Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    let w = Arc::clone(&world);
    let (seed, duration_s, bugs) = (options.seed, options.duration_s, options.bugs);
    let buggify = mix.buggify;
    ketch::runtime::set_buggify(buggify);
    runtime.block_on(async move { supervise(w, seed, duration_s, bugs).await });
    let w = lock(&world);
    let mut trace = w.trace;
    for d in &w.disks {
        trace = fnv(trace, &d.trace_hash().to_le_bytes());
    }
    let acked_all = w.acked.iter().filter(|a| a.acks_all).count();
    let c = &w.counts;
    Report {
        violations: w.violations.clone(),
        summary: format!(
            "seed {}: {} events, {} crashes ({} power losses, {} disk-error stops), {} clogs, {} pauses; {} controller epochs, {} partition leader epochs; {} acks=all and {} acks=1 records acknowledged, {} sent with acks=0 ({} produce attempts, {} retried errors, {} producer resets), {} records polled, {} OFFSET_OUT_OF_RANGE ({} consumer resets), {} commits acknowledged, {} commit read-backs; {} admin changes ({} DeleteRecords); {} caught-up replica logs compared; {} transactions ({} committed, {} aborted, {} in doubt, {} producer restarts; late batches: {} joined, {} refused), {} records read committed; {} losses excused by the page-cache rule; {} violations",
            options.seed,
            w.events,
            w.crashes,
            w.power_losses.iter().map(Vec::len).sum::<usize>(),
            c.disk_stops,
            c.clogs,
            c.pauses,
            w.controllers.len(),
            w.leaders.len(),
            acked_all,
            w.acked.len() - acked_all,
            c.acks0_sent,
            c.produce_attempts,
            c.produce_errors,
            c.producer_resets,
            c.records_polled,
            c.out_of_range,
            c.consumer_resets,
            w.commits.values().map(Vec::len).sum::<usize>(),
            w.commit_checks,
            c.admin_changes,
            c.records_deleted,
            c.replicas_compared,
            w.txns.len(),
            w.txns.values().filter(|t| t.fate == TxnFate::Committed).count(),
            w.txns.values().filter(|t| t.fate == TxnFate::Aborted).count(),
            w.txns.values().filter(|t| t.fate == TxnFate::CommitSent).count(),
            c.txn_resets,
            c.txn_late_joined,
            c.txn_late_refused,
            c.rc_polled,
            c.excused_losses,
            w.violations.len()
        ),
        trace_hash: trace,
    }
}
