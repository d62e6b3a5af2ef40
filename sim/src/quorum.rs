//! The quorum simulation: 3 or 5 voters and 0 to 2 observers run as real nodes, started through
//! `ketch::node::run` as `ketch server` starts them (the quorum shell with Kafka messages over
//! madsim's TCP, the metadata log and quorum-state file over a [`SimDisk`], and the broker with
//! its lifecycle: registrations, heartbeats and fencing go through the controller) while
//! the seed crashes them (power loss), partitions links one way or both, isolates the leader,
//! pauses nodes past the election timeout and gives each node its own clock rate. Metadata log
//! segments are tiny and most seeds snapshot every few hundred bytes of records, so members
//! that fall behind install their leader's snapshot (FetchSnapshot) under the same faults.
//!
//! Checked at every step of every node (through the shell's observer): at most one leader per
//! epoch; at most one vote per voter per epoch and a node's epoch never decreasing, across
//! restarts too (voters are sometimes crashed right after they vote); its high watermark never
//! decreases within a run of it. At the end, after healing: a leader and a new commit on every
//! node within [`LIVENESS_BOUND`]; then every node loses power, and every committed proposal is
//! found on a majority of the recovered metadata logs, with no log holding another entry at
//! its offset.

use crate::{fnv, Report};
use ketch::controller::{image_from_records, MetadataImage, MetadataRecord};
use ketch::log::{Log, LogConfig, LogDir, MetaProperties};
use ketch::model::config::ServerConfig;
use ketch::model::{NodeId, TopicPartition, Uuid, METADATA_TOPIC};
use ketch::node::{self, NodeEnv};
use ketch::quorum::snapshot_file;
use ketch::quorum::storage::DiskRaftLog;
use ketch::quorum::{proposal_channel, QuorumBugs, QuorumHandle, QuorumStatus};
use ketch::raft::{Epoch, RaftLog, Role};
use ketch::runtime::{Clock, Disk, DiskFaults, SimDisk};
use madsim::net::NetSim;
use madsim::runtime::{Handle, Runtime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub struct Options {
    pub seed: u64,
    pub duration_s: u64,
    pub verbose: bool,
    pub bugs: QuorumBugs,
}

/// After healing, a leader and a commit on every node within: a fetch timeout to notice, three
/// election rounds of at most twice the election timeout, and a replication round trip.
const LIVENESS_BOUND: Duration = Duration::from_secs(12);
const CLUSTER_ID: &str = "cXVvcnVtLXNpbXVsYXRpbw";
const PORT: u16 = 9093;

struct Shared {
    voters: usize,
    /// Voters, then observers (broker-only nodes).
    nodes: usize,
    disks: Vec<SimDisk>,
    /// Clocks are made inside the simulation (a clock made outside reads the real time).
    clocks: Vec<Clock>,
    skews: Vec<(i64, i64)>,
    handles: Vec<Option<QuorumHandle>>,
    status: Vec<Option<QuorumStatus>>,
    max_epoch: Vec<Epoch>,
    incarnation: Vec<u64>,
    leaders: BTreeMap<Epoch, NodeId>,
    /// Proposals appended by a leader: (node, epoch) → offset → data.
    proposed: BTreeMap<(usize, Epoch), BTreeMap<u64, Vec<u8>>>,
    /// Proposals known committed: offset → data.
    committed: BTreeMap<u64, Vec<u8>>,
    /// The highest high watermark any leader reported: everything below it was committed.
    max_leader_hw: u64,
    /// Controller records among the committed entries one disk replayed after its snapshot:
    /// (registrations, fencings, unfencings).
    controller_records: (u64, u64, u64),
    violations: Vec<String>,
    trace: u64,
    events: u64,
    crashes: u64,
    verbose: bool,
    bugs: QuorumBugs,
    /// `metadata.log.max.record.bytes.between.snapshots` for this run.
    snapshot_interval_bytes: u64,
    /// Snapshots installed from a leader, over all nodes; the highest log start seen.
    snapshots_installed: u64,
    max_log_start: u64,
    /// Brokers registered in the image all disks agree on at the end.
    final_brokers: usize,
    /// Each voter's vote in each epoch, as its status showed it.
    votes: BTreeMap<(usize, Epoch), NodeId>,
    /// Nodes to crash as soon as the supervisor sees them: each vote for another node puts its
    /// voter here with `crash_after_vote_p` while faults run (where an unpersisted vote shows).
    crash_requests: Vec<usize>,
    crash_after_vote_p: f64,
    faults_on: bool,
    rng: ChaCha8Rng,
}

type World = Arc<Mutex<Shared>>;

fn lock(world: &World) -> MutexGuard<'_, Shared> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn event(&mut self, node: usize, what: &str) {
        self.events += 1;
        self.trace = fnv(self.trace, what.as_bytes());
        self.trace = fnv(self.trace, &(node as u64).to_le_bytes());
        if self.verbose {
            println!(
                "{:>8} ms n{} {what}",
                madsim::time::TimeHandle::current().elapsed().as_millis(),
                node + 1
            );
        }
    }

    fn violation(&mut self, node: usize, what: String) {
        self.event(node, &format!("VIOLATION {what}"));
        self.violations.push(format!("node {}: {what}", node + 1));
    }

    /// The observer: every status of every node passes through here.
    fn observe(&mut self, i: usize, s: &QuorumStatus) {
        if s.epoch < self.max_epoch[i] {
            self.violation(
                i,
                format!("epoch went back from {} to {}", self.max_epoch[i], s.epoch),
            );
        }
        self.max_epoch[i] = self.max_epoch[i].max(s.epoch);
        if s.role == Role::Leader {
            match self.leaders.get(&s.epoch) {
                Some(l) if *l != s.node_id => {
                    let l = *l;
                    self.violation(
                        i,
                        format!("two leaders in epoch {}: {l} and {}", s.epoch, s.node_id),
                    );
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(s.epoch, s.node_id);
                    self.event(i, &format!("leader of epoch {}", s.epoch));
                }
            }
        }
        // One vote per voter per epoch, across restarts too (a vote not persisted before it
        // was sent would show as a second one after a crash).
        if let Some(v) = s.voted_for {
            match self.votes.get(&(i, s.epoch)) {
                Some(earlier) if *earlier != v => {
                    let earlier = *earlier;
                    self.violation(
                        i,
                        format!(
                            "voted twice in epoch {}: for {earlier} and for {v}",
                            s.epoch
                        ),
                    );
                }
                Some(_) => {}
                None => {
                    self.votes.insert((i, s.epoch), v);
                    if self.faults_on
                        && v != s.node_id
                        && self.rng.gen_bool(self.crash_after_vote_p)
                    {
                        self.crash_requests.push(i);
                    }
                }
            }
        }
        let installed_before = self.status[i].as_ref().map_or(0, |p| p.snapshots_installed);
        self.snapshots_installed += s.snapshots_installed.saturating_sub(installed_before);
        self.max_log_start = self.max_log_start.max(s.log_start);
        if let Some(prev) = &self.status[i] {
            if s.high_watermark < prev.high_watermark {
                self.violation(
                    i,
                    format!(
                        "high watermark went back from {} to {}",
                        prev.high_watermark, s.high_watermark
                    ),
                );
            }
        }
        // A leader whose high watermark passed its own proposals has committed them.
        if s.role == Role::Leader {
            self.max_leader_hw = self.max_leader_hw.max(s.high_watermark);
            let mut newly = Vec::new();
            if let Some(mine) = self.proposed.get_mut(&(i, s.epoch)) {
                let done: Vec<u64> = mine.range(..s.high_watermark).map(|(o, _)| *o).collect();
                for offset in done {
                    if let Some(data) = mine.remove(&offset) {
                        newly.push((offset, data));
                    }
                }
            }
            {
                for (offset, data) in newly {
                    {
                        match self.committed.get(&offset) {
                            Some(other) if *other != data => {
                                let (a, b) = (
                                    String::from_utf8_lossy(other).to_string(),
                                    String::from_utf8_lossy(&data).to_string(),
                                );
                                self.violation(
                                    i,
                                    format!("offset {offset} committed twice: {a} and {b}"),
                                );
                            }
                            _ => {
                                self.committed.insert(offset, data);
                            }
                        }
                    }
                }
            }
        }
        self.status[i] = Some(s.clone());
    }
}

fn metadata_dir() -> PathBuf {
    PathBuf::from("/meta")
}

fn ip(i: usize) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 1, i as u8 + 1))
}

/// Metadata log segments this small roll often, so snapshots let whole segments go and
/// lagging members must fetch a snapshot.
const SIM_METADATA_SEGMENT_BYTES: u64 = 2048;

fn metadata_log_config() -> LogConfig {
    LogConfig {
        segment_bytes_max: SIM_METADATA_SEGMENT_BYTES,
        ..LogConfig::default()
    }
}

fn open_metadata_log(disk: &SimDisk, i: usize) -> Result<Log, String> {
    let disk: Arc<dyn Disk> = Arc::new(disk.clone());
    let meta = MetaProperties {
        cluster_id: CLUSTER_ID.into(),
        node_id: NodeId(i as i32 + 1),
        directory_id: Uuid::from_random([i as u8 + 7; 16]),
    };
    LogDir::format(Arc::clone(&disk), &metadata_dir(), &meta, true).map_err(|e| e.to_string())?;
    let (dir, mut logs, _) = LogDir::open(
        Arc::clone(&disk),
        &metadata_dir(),
        Some(CLUSTER_ID),
        meta.node_id,
        |_| metadata_log_config(),
    )
    .map_err(|e| e.to_string())?;
    let tp = TopicPartition::new(METADATA_TOPIC, 0);
    match logs.remove(&tp) {
        Some(log) => Ok(log),
        None => dir
            .create_log(&tp, metadata_log_config())
            .map_err(|e| e.to_string()),
    }
}

/// The node's `server.properties`: voters are combined nodes (controller listener on
/// [`PORT`]), the rest broker-only observers; tiny metadata segments and the run's snapshot
/// interval and election timeout.
fn node_config(
    i: usize,
    voters: usize,
    election_timeout_ms: u64,
    snapshot_interval_bytes: u64,
) -> Result<ServerConfig, String> {
    let quorum: Vec<String> = (0..voters)
        .map(|v| format!("{}@{}:{PORT}", v + 1, ip(v)))
        .collect();
    let (roles, listeners) = if i < voters {
        (
            "broker,controller",
            format!("PLAINTEXT://:9092,CONTROLLER://:{PORT}"),
        )
    } else {
        ("broker", "PLAINTEXT://:9092".to_string())
    };
    let text = format!(
        "process.roles={roles}\nnode.id={}\ncontroller.quorum.voters={}\nlisteners={listeners}\n\
         advertised.listeners=PLAINTEXT://{}:9092\ncontroller.listener.names=CONTROLLER\n\
         log.dirs={}\ncontroller.quorum.election.timeout.ms={election_timeout_ms}\n\
         controller.quorum.fetch.timeout.ms={}\nbroker.heartbeat.interval.ms=300\n\
         metadata.log.segment.bytes={SIM_METADATA_SEGMENT_BYTES}\n\
         metadata.log.max.record.bytes.between.snapshots={snapshot_interval_bytes}\n",
        i + 1,
        quorum.join(","),
        ip(i),
        metadata_dir().display(),
        2 * election_timeout_ms,
    );
    ServerConfig::parse(&text)
        .map(|(config, _)| config)
        .map_err(|e| e.to_string())
}

/// One node, started through the same wiring as `ketch server` ([`ketch::node::run`]), with
/// the simulator's disk, clock, seed, observer and workload.
async fn node_main(world: World, i: usize, seed: u64, election_timeout_ms: u64) {
    let (disk, clock, voters, incarnation, bugs, snapshot_interval_bytes) = {
        let mut w = lock(&world);
        w.incarnation[i] += 1;
        w.status[i] = None;
        let inc = w.incarnation[i];
        w.event(i, &format!("start #{inc}"));
        (
            w.disks[i].clone(),
            w.clocks[i].clone(),
            w.voters,
            inc,
            w.bugs,
            w.snapshot_interval_bytes,
        )
    };
    let config = match node_config(i, voters, election_timeout_ms, snapshot_interval_bytes) {
        Ok(c) => c,
        Err(e) => {
            lock(&world).event(i, &format!("bad config: {e}"));
            return;
        }
    };
    let disk: Arc<dyn Disk> = Arc::new(disk);
    // Formatted once; later starts find it formatted (ignored) as a restarted server would.
    let dir_id = Uuid::from_random([i as u8 + 7; 16]);
    if let Err(e) = node::format_storage(&disk, &config, CLUSTER_ID, true, |_| Ok(dir_id)) {
        lock(&world).event(i, &format!("cannot format: {e}"));
        return;
    }
    let (handle, proposals) = proposal_channel();
    lock(&world).handles[i] = Some(handle);
    let observer_world = Arc::clone(&world);
    let env = NodeEnv {
        disk,
        clock,
        seed: seed ^ (i as u64) << 40 ^ incarnation << 20,
        incarnation_id: uuid::Uuid::from_u64_pair(seed ^ i as u64, incarnation),
        observer: Some(Arc::new(move |s: &QuorumStatus| {
            lock(&observer_world).observe(i, s)
        })),
        proposals: Some(proposals),
        quorum_bugs: bugs,
        bugs: Default::default(),
    };
    if let Err(e) = node::run(config, env, std::future::pending()).await {
        lock(&world).event(i, &format!("stopped: {e}"));
    }
}

fn marker_record() -> Vec<u8> {
    MetadataRecord::Config {
        resource: "topic".into(),
        name: "sim-workload".into(),
        key: "marker".into(),
        value: Some("marker".into()),
    }
    .encode()
    .expect("a topic config record encodes")
}

fn crash(world: &World, handle: &Handle, id: madsim::task::NodeId, i: usize, why: &str) {
    handle.kill(id);
    let mut w = lock(world);
    w.crashes += 1;
    w.disks[i].crash();
    w.handles[i] = None;
    w.status[i] = None;
    w.event(i, &format!("crash ({why})"));
}

fn leader_now(world: &World) -> Option<usize> {
    let w = lock(world);
    (0..w.voters).find(|i| {
        w.status[*i]
            .as_ref()
            .is_some_and(|s| s.role == Role::Leader)
    })
}

async fn propose_on_leader(world: &World, data: Vec<u8>) -> Option<(usize, u64, Epoch)> {
    let i = leader_now(world)?;
    let handle = lock(world).handles[i].clone()?;
    let (offset, epoch) = handle.propose(data.clone()).await.ok()?;
    lock(world)
        .proposed
        .entry((i, epoch))
        .or_default()
        .insert(offset, data);
    Some((i, offset, epoch))
}

async fn supervise(world: World, seed: u64, duration_s: u64, election_timeout_ms: u64) {
    {
        let mut w = lock(&world);
        w.clocks = w
            .skews
            .iter()
            .map(|(offset_ms, drift_ppm)| Clock::skewed(*offset_ms, *drift_ppm))
            .collect();
    }
    let handle = Handle::current();
    let net = NetSim::current();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0051_0E11);
    let (voters, nodes) = {
        let w = lock(&world);
        (w.voters, w.nodes)
    };
    let mut ids = Vec::new();
    for i in 0..nodes {
        let w = Arc::clone(&world);
        let node = handle
            .create_node()
            .name(format!("n{}", i + 1))
            .ip(ip(i))
            .init(move || node_main(Arc::clone(&w), i, seed, election_timeout_ms))
            .build();
        ids.push(node.id());
    }
    let crash_p = rng.gen_range(0.0..0.08);
    let partition_p = rng.gen_range(0.0..0.08);
    let pause_p = rng.gen_range(0.0..0.03);
    let mut down_until: Vec<Option<Duration>> = vec![None; nodes];
    let mut paused_until: Vec<Option<Duration>> = vec![None; nodes];
    let mut clogged: BTreeSet<(usize, usize)> = BTreeSet::new();
    #[allow(clippy::disallowed_methods)] // madsim's virtual clock
    let start = madsim::time::Instant::now();
    let mut serial = 0u64;
    while start.elapsed() < Duration::from_secs(duration_s) {
        // Wait in 5 ms steps, crashing voters right after a vote as the observer asks.
        let wait_ms = rng.gen_range(20..120);
        for _ in 0..wait_ms / 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            let requests = std::mem::take(&mut lock(&world).crash_requests);
            for i in requests {
                if down_until[i].is_none() && paused_until[i].is_none() {
                    crash(&world, &handle, ids[i], i, "power loss right after a vote");
                    let now = start.elapsed();
                    down_until[i] = Some(now + Duration::from_millis(rng.gen_range(10..300)));
                }
            }
        }
        let now = start.elapsed();
        serial += 1;
        // Proposals run on their own so a stuck leader does not stall the faults.
        let w = Arc::clone(&world);
        madsim::task::spawn(async move {
            let record = MetadataRecord::Config {
                resource: "topic".into(),
                name: "sim-workload".into(),
                key: format!("p{serial}"),
                value: Some(serial.to_string()),
            };
            // A topic config Kafka's record form can hold (for a topic that need not exist).
            if let Ok(bytes) = record.encode() {
                let _ = propose_on_leader(&w, bytes).await;
            }
        });
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
        }
        if rng.gen_bool(crash_p) {
            let i = rng.gen_range(0..nodes);
            if down_until[i].is_none() && paused_until[i].is_none() {
                crash(&world, &handle, ids[i], i, "power loss");
                down_until[i] = Some(now + Duration::from_millis(rng.gen_range(10..3_000)));
            }
        }
        if rng.gen_bool(partition_p) {
            let kind = rng.gen_range(0..4);
            let mut w = lock(&world);
            match kind {
                0 => {
                    let (a, b) = (rng.gen_range(0..nodes), rng.gen_range(0..nodes));
                    if a != b {
                        net.clog_link(ids[a], ids[b]);
                        clogged.insert((a, b));
                        w.event(a, &format!("link to n{} clogged one way", b + 1));
                    }
                }
                1 => {
                    let (a, b) = (rng.gen_range(0..nodes), rng.gen_range(0..nodes));
                    if a != b {
                        net.clog_link(ids[a], ids[b]);
                        net.clog_link(ids[b], ids[a]);
                        clogged.insert((a, b));
                        clogged.insert((b, a));
                        w.event(a, &format!("link with n{} clogged both ways", b + 1));
                    }
                }
                2 => {
                    drop(w);
                    if let Some(l) = leader_now(&world) {
                        for o in 0..nodes {
                            if o != l {
                                net.clog_link(ids[l], ids[o]);
                                net.clog_link(ids[o], ids[l]);
                                clogged.insert((l, o));
                                clogged.insert((o, l));
                            }
                        }
                        lock(&world).event(l, "leader isolated");
                    }
                }
                _ => {
                    for (a, b) in std::mem::take(&mut clogged) {
                        net.unclog_link(ids[a], ids[b]);
                    }
                    w.event(0, "links healed");
                }
            }
        }
        if rng.gen_bool(pause_p) {
            let i = rng.gen_range(0..nodes);
            if down_until[i].is_none() && paused_until[i].is_none() {
                handle.pause(ids[i]);
                paused_until[i] = Some(now + Duration::from_millis(rng.gen_range(500..5_000)));
                lock(&world).event(i, "paused");
            }
        }
    }
    // Liveness: heal everything, then a leader and a commit everywhere within the bound.
    for (a, b) in std::mem::take(&mut clogged) {
        net.unclog_link(ids[a], ids[b]);
    }
    for i in 0..nodes {
        if paused_until[i].take().is_some() {
            handle.resume(ids[i]);
        }
        if down_until[i].take().is_some() {
            handle.restart(ids[i]);
        }
    }
    {
        let mut w = lock(&world);
        w.faults_on = false;
        w.crash_requests.clear();
        w.event(0, "healed");
    }
    let healed = start.elapsed();
    let mut done = false;
    while start.elapsed() < healed + LIVENESS_BOUND && !done {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if let Some((proposer, offset, epoch)) = propose_on_leader(&world, marker_record()).await {
            let deadline = healed + LIVENESS_BOUND;
            while start.elapsed() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let w = lock(&world);
                let everywhere = (0..nodes).all(|i| {
                    w.status[i]
                        .as_ref()
                        .is_some_and(|s| s.high_watermark > offset)
                });
                if everywhere
                    && w.committed
                        .get(&offset)
                        .is_some_and(|d| d == &marker_record())
                {
                    done = true;
                    break;
                }
                let still_leads = w.status[proposer]
                    .as_ref()
                    .is_some_and(|s| s.role == Role::Leader && s.epoch == epoch);
                if !still_leads && !w.committed.contains_key(&offset) {
                    break; // its leader lost office before committing it: propose again
                }
            }
        }
    }
    if !done {
        let mut w = lock(&world);
        let view: Vec<String> = (0..nodes)
            .map(|i| {
                format!(
                    "{:?}",
                    w.status[i].as_ref().map(|s| (
                        s.role,
                        s.epoch,
                        s.leader,
                        s.high_watermark,
                        s.log_end
                    ))
                )
            })
            .collect();
        w.violation(
            0,
            format!(
                "liveness: no commit on every node within {LIVENESS_BOUND:?} of healing: {view:?}"
            ),
        );
    }
    // Power loss everywhere, then every committed proposal must be on a majority of disks.
    for (i, id) in ids.iter().enumerate() {
        crash(&world, &handle, *id, i, "final power loss");
    }
    let (disks, committed) = {
        let w = lock(&world);
        (w.disks.clone(), w.committed.clone())
    };
    // What each disk holds after recovery: its snapshot (as an image) and the entries after it.
    let mut disks_held: Vec<Held> = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        d.set_faults(DiskFaults::default());
        let disk: Arc<dyn Disk> = Arc::new(d.clone());
        let opened = open_metadata_log(d, i)
            .and_then(|l| DiskRaftLog::open(l, disk).map_err(|e| e.to_string()))
            .and_then(|l| {
                let snapshot = match l.read_latest_snapshot() {
                    None => None,
                    Some(read) => {
                        let (id, bytes) = read.map_err(|e| e.to_string())?;
                        let records = snapshot_file::decode(&bytes).map_err(|e| e.to_string())?;
                        let image = image_from_records(&records, id.end_offset as i64 - 1)
                            .map_err(|e| e.to_string())?;
                        Some((id.end_offset, image))
                    }
                };
                let entries = l.read(l.start_offset(), usize::MAX);
                Ok(Held { snapshot, entries })
            });
        match opened {
            Ok(held) => disks_held.push(held),
            Err(e) => {
                lock(&world).violation(
                    i,
                    format!("metadata log unreadable after the final power loss: {e}"),
                );
                disks_held.push(Held {
                    snapshot: None,
                    entries: Vec::new(),
                });
            }
        }
    }
    let mut w = lock(&world);
    // Every committed entry, not only the workload's: the same on every disk that has it, on a
    // majority of the voters' disks (in the log, or covered by the disk's snapshot), and a
    // sequence of records the metadata image accepts.
    let max_hw = w.max_leader_hw;
    for offset in 0..max_hw {
        let present: Vec<(usize, &ketch::raft::Entry)> = disks_held
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.entry(offset).map(|e| (i, e)))
            .collect();
        if let Some((_, first)) = present.first() {
            if let Some((i, other)) = present.iter().find(|(_, e)| e != first) {
                let i = *i;
                let what = format!(
                    "committed offset {offset} differs: {:?} vs {:?}",
                    first.epoch, other.epoch
                );
                w.violation(i, what);
            }
        }
        let holders = disks_held
            .iter()
            .take(voters)
            .filter(|h| h.entry(offset).is_some() || h.covers(offset))
            .count();
        if holders < voters / 2 + 1 {
            w.violation(
                0,
                format!(
                    "committed offset {offset} survives on {holders} of {voters} voters' disks"
                ),
            );
        }
    }
    // Log matching, committed or not: two disks whose entries at one offset have the same epoch
    // hold the same entries at every offset below it that both hold.
    for a in 0..disks_held.len() {
        for b in a + 1..disks_held.len() {
            let (ea, eb) = (&disks_held[a].entries, &disks_held[b].entries);
            let (Some(fa), Some(fb)) = (ea.first(), eb.first()) else {
                continue;
            };
            let from = fa.offset.max(fb.offset);
            let to = (fa.offset + ea.len() as u64).min(fb.offset + eb.len() as u64);
            fn at(l: &Held, o: u64) -> Option<(Epoch, &[u8])> {
                l.entry(o).map(|e| (e.epoch, &e.data[..]))
            }
            let Some(matched) = (from..to).rev().find(|o| {
                at(&disks_held[a], *o).map(|x| x.0) == at(&disks_held[b], *o).map(|x| x.0)
            }) else {
                continue;
            };
            if let Some(o) =
                (from..=matched).find(|o| at(&disks_held[a], *o) != at(&disks_held[b], *o))
            {
                w.violation(
                    b,
                    format!(
                        "log matching: disks of nodes {} and {} agree on the epoch at offset {matched} but differ at {o}",
                        a + 1,
                        b + 1
                    ),
                );
            }
        }
    }
    // Each disk's snapshot plus its entries replays into an image; disks that hold everything
    // below the highest high watermark must agree on the image there.
    let mut images_at_hw: Vec<(usize, MetadataImage)> = Vec::new();
    for (i, held) in disks_held.iter().enumerate() {
        let (from, mut image) = match &held.snapshot {
            Some((end, image)) => (*end, image.clone()),
            None => (0, MetadataImage::new()),
        };
        let mut next = from;
        let mut failed = false;
        let mut counts = (0u64, 0u64, 0u64);
        let mut ops = ketch::controller::OperationBuffer::default();
        for e in held
            .entries
            .iter()
            .filter(|e| e.offset >= from && e.offset < max_hw)
        {
            if e.offset != next {
                break; // the log starts after the snapshot's end: nothing more to replay here
            }
            next = e.offset + 1;
            if e.data == ketch::raft::LEADER_CHANGE {
                ops.leader_change();
                continue;
            }
            // An operation's records apply together, once its last entry is in (as the
            // product's replay does).
            let ready = match ops.push(e.offset as i64, &e.data) {
                Ok(ready) => ready,
                Err(err) => {
                    w.violation(i, format!("committed metadata does not replay: {err}"));
                    failed = true;
                    break;
                }
            };
            for (offset, r) in ready {
                if let Err(err) = image.apply(offset, &r) {
                    w.violation(i, format!("committed metadata does not replay: {err}"));
                    failed = true;
                    break;
                }
                match r {
                    MetadataRecord::RegisterBroker { .. } => counts.0 += 1,
                    MetadataRecord::FenceBroker { .. } => counts.1 += 1,
                    MetadataRecord::UnfenceBroker { .. } => counts.2 += 1,
                    _ => {}
                }
            }
            if failed {
                break;
            }
        }
        // Reported from the disk that replayed the most (the others start at later snapshots).
        let total = |c: (u64, u64, u64)| c.0 + c.1 + c.2;
        if total(counts) > total(w.controller_records) {
            w.controller_records = counts;
        }
        if !failed && next >= max_hw {
            image.offset = max_hw as i64 - 1;
            images_at_hw.push((i, image));
        }
    }
    if let Some((_, image)) = images_at_hw.first() {
        w.final_brokers = image.brokers.len();
    }
    if let Some((first, image)) = images_at_hw.first() {
        for (i, other) in &images_at_hw[1..] {
            if other != image {
                w.violation(
                    *i,
                    format!(
                        "metadata image at offset {max_hw} differs from node {}'s",
                        first + 1
                    ),
                );
            }
        }
    }
    for (offset, data) in &committed {
        let mut holders = 0;
        for (i, held) in disks_held.iter().enumerate() {
            match held.entry(*offset) {
                Some(e) if e.data == *data => holders += usize::from(i < voters),
                Some(e) => {
                    let (a, b) = (
                        String::from_utf8_lossy(&e.data).to_string(),
                        String::from_utf8_lossy(data).to_string(),
                    );
                    w.violation(i, format!("committed offset {offset} holds {a}, not {b}"));
                }
                None if held.covers(*offset) => holders += usize::from(i < voters),
                None => {}
            }
        }
        if holders < voters / 2 + 1 {
            w.violation(
                0,
                format!("committed offset {offset} survives on {holders} of {voters} disks"),
            );
        }
    }
}

/// A disk's metadata after recovery.
struct Held {
    /// The snapshot's end offset and the image it rebuilds.
    snapshot: Option<(u64, MetadataImage)>,
    entries: Vec<ketch::raft::Entry>,
}

impl Held {
    fn entry(&self, offset: u64) -> Option<&ketch::raft::Entry> {
        let first = self.entries.first()?.offset;
        self.entries
            .get(usize::try_from(offset.checked_sub(first)?).ok()?)
    }

    fn covers(&self, offset: u64) -> bool {
        self.snapshot.as_ref().is_some_and(|(end, _)| offset < *end)
    }
}

pub fn run(options: Options) -> Report {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let voters = if rng.gen_bool(0.5) { 3 } else { 5 };
    let nodes = voters + rng.gen_range(0..=2);
    let election_timeout_ms = if rng.gen_bool(0.5) {
        1_000
    } else {
        rng.gen_range(200..1_000)
    };
    let mut disks = Vec::new();
    let mut skews = Vec::new();
    for _ in 0..nodes {
        disks.push(SimDisk::new(rng.gen(), DiskFaults::default()));
        skews.push((rng.gen_range(-5_000..5_000), rng.gen_range(-30_000..30_000)));
    }
    // Snapshots every few hundred bytes of records in most runs, never in some; from a stream
    // of its own so the rest of a seed's schedule stays as it was.
    let mut snapshot_rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5_4A95);
    let crash_after_vote_p = snapshot_rng.gen_range(0.0..0.5);
    let snapshot_interval_bytes = if snapshot_rng.gen_bool(0.2) {
        u64::MAX
    } else {
        snapshot_rng.gen_range(256..4096)
    };
    let world: World = Arc::new(Mutex::new(Shared {
        voters,
        nodes,
        disks,
        clocks: Vec::new(),
        skews,
        handles: vec![None; nodes],
        status: vec![None; nodes],
        max_epoch: vec![0; nodes],
        incarnation: vec![0; nodes],
        leaders: BTreeMap::new(),
        proposed: BTreeMap::new(),
        committed: BTreeMap::new(),
        max_leader_hw: 0,
        controller_records: (0, 0, 0),
        violations: Vec::new(),
        trace: 0xcbf2_9ce4_8422_2325,
        events: 0,
        crashes: 0,
        verbose: options.verbose,
        bugs: options.bugs,
        snapshot_interval_bytes,
        snapshots_installed: 0,
        max_log_start: 0,
        final_brokers: 0,
        votes: BTreeMap::new(),
        crash_requests: Vec::new(),
        crash_after_vote_p,
        faults_on: true,
        rng: ChaCha8Rng::seed_from_u64(options.seed ^ 0x0007_0735),
    }));
    let runtime = Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    let w = Arc::clone(&world);
    runtime.block_on(async move {
        supervise(w, options.seed, options.duration_s, election_timeout_ms).await
    });
    let w = lock(&world);
    let mut trace = w.trace;
    for d in &w.disks {
        trace = fnv(trace, &d.trace_hash().to_le_bytes());
    }
    Report {
        violations: w.violations.clone(),
        summary: format!(
            "seed {}: quorum of {voters} voters and {} observers, election timeout {election_timeout_ms} ms: {} events, {} crashes, {} epochs with a leader, {} entries committed ({} registrations, {} fencings, {} unfencings replayed after a snapshot; {} brokers in the final image), log start up to {}, {} snapshots installed; {} violations",
            options.seed,
            nodes - voters,
            w.events,
            w.crashes,
            w.leaders.len(),
            w.committed.len(),
            w.controller_records.0,
            w.controller_records.1,
            w.controller_records.2,
            w.final_brokers,
            w.max_log_start,
            w.snapshots_installed,
            w.violations.len()
        ),
        trace_hash: trace,
    }
}
