//! The storage simulation: N nodes each append to a partition log through the real log writer
//! (group commit) over a [`SimDisk`], while the seed crashes and restarts them, injects disk
//! faults (fsync errors, ENOSPC, bit flips on read) and skews and jumps their clocks.
//!
//! Invariant (checked when every node restarts, and at the end after a power loss of every
//! node): each append that was acknowledged is in the log, at the offsets it was given, with the
//! bytes it was given. Acknowledged appends never overlap.

use crate::{fnv, Report};
use ketch::broker::log_writer::{read_log, LogWriter, PlantedBugs, SharedLog};
use ketch::log::{FlushPolicy, Log, LogConfig, LogDir, LogError, MetaProperties};
use ketch::model::{NodeId, TopicPartition, Uuid};
use ketch::protocol::record_batch::{
    build_batch, set_base_offset, set_partition_leader_epoch, RecordBatch,
};
use ketch::runtime::{Clock, Disk, DiskFaults, SimDisk};
use madsim::runtime::{Handle, Runtime};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

pub struct Options {
    pub seed: u64,
    pub duration_s: u64,
    pub plant_ack_before_fsync: bool,
    pub verbose: bool,
}

const CLUSTER_ID: &str = "c2ltdWxhdGVkLWNsdXN0ZQ";
const LEADER_EPOCH: i32 = 1;

fn data_dir() -> PathBuf {
    PathBuf::from("/data")
}

fn topic_partition() -> TopicPartition {
    TopicPartition::new("sim", 0)
}

/// The run's swarm parameters, all drawn from the seed.
#[derive(Debug, Clone)]
struct Swarm {
    nodes: usize,
    producers_per_node: usize,
    faults: DiskFaults,
    mean_crash_interval_ms: u64,
    max_down_ms: u64,
    segment_bytes_max: u64,
    max_batch_records: usize,
    max_value_bytes: usize,
    clock_jumps: bool,
}

impl Swarm {
    fn draw(rng: &mut ChaCha8Rng) -> Swarm {
        let mut ppm = |max: u32| {
            if rng.gen_bool(0.5) {
                rng.gen_range(0..=max)
            } else {
                0
            }
        };
        let faults = DiskFaults {
            fsync_error_ppm: ppm(5_000),
            enospc_ppm: ppm(5_000),
            read_bitflip_ppm: ppm(2_000),
        };
        Swarm {
            nodes: 3,
            producers_per_node: rng.gen_range(1..=4),
            faults,
            mean_crash_interval_ms: rng.gen_range(300..3_000),
            max_down_ms: rng.gen_range(10..2_000),
            segment_bytes_max: rng.gen_range(4_096..65_536),
            max_batch_records: rng.gen_range(1..20),
            max_value_bytes: rng.gen_range(1..2_000),
            clock_jumps: rng.gen_bool(0.5),
        }
    }
}

/// An acknowledged append: where it went and what it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Acked {
    last_offset: u64,
    fingerprint: u64,
}

/// State shared by the supervisor and the nodes; it lives outside the nodes, so it survives
/// their crashes, as the clients and the disks of a real cluster would.
struct Shared {
    disks: Vec<SimDisk>,
    /// Clocks are made inside the simulation (a clock made outside reads the real time).
    clocks: Vec<Clock>,
    skews: Vec<(i64, i64)>,
    /// Per node: acknowledged appends by first offset.
    acked: Vec<BTreeMap<u64, Acked>>,
    /// Per node: how many times it has started.
    incarnations: Vec<u64>,
    /// Per node: it stopped by itself (fatal disk error) and wants a restart.
    stopped: Vec<bool>,
    violations: Vec<String>,
    trace: u64,
    events: u64,
    acks: u64,
    append_errors: u64,
    crashes: u64,
    fatal_stops: u64,
    refused_opens: u64,
    repairs: u64,
    verbose: bool,
}

impl Shared {
    fn event(&mut self, node: usize, what: &str) {
        self.events += 1;
        #[allow(clippy::disallowed_methods)] // madsim's virtual clock
        let now = madsim::time::Instant::now();
        let line = format!("{:?} n{node} {what}", now.elapsed());
        self.trace = fnv(self.trace, what.as_bytes());
        self.trace = fnv(self.trace, &(node as u64).to_le_bytes());
        if self.verbose {
            println!("{line}");
        }
    }

    fn violation(&mut self, node: usize, what: String) {
        self.event(node, &format!("VIOLATION {what}"));
        self.violations.push(format!("node {node}: {what}"));
    }
}

type World = Arc<Mutex<Shared>>;

fn lock(world: &World) -> MutexGuard<'_, Shared> {
    world.lock().unwrap_or_else(PoisonError::into_inner)
}

fn log_config(swarm: &Swarm) -> LogConfig {
    LogConfig {
        segment_bytes_max: swarm.segment_bytes_max,
        segment_ms: 10_000,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 1024,
        max_batch_bytes: 1 << 20,
        flush: FlushPolicy::EveryAppend,
        ..LogConfig::default()
    }
}

/// Checks that every acknowledged append of `node` is in `log` exactly. Faults are off while
/// checking: the check reads, and a flipped bit on the checker's read is not data loss.
fn verify(world: &World, node: usize, log: &Log, when: &str) {
    let (acked, disk) = {
        let w = lock(world);
        (w.acked[node].clone(), w.disks[node].clone())
    };
    let mut problems = Vec::new();
    for (first, a) in &acked {
        match log.read(*first, 1, None) {
            Ok(bytes) if bytes.is_empty() => problems.push(format!(
                "{when}: acked batch {first}..={} lost: the log ends at {}",
                a.last_offset,
                log.log_end_offset()
            )),
            Ok(bytes) => match RecordBatch::parse(&bytes, usize::MAX) {
                Ok((batch, _)) => {
                    if batch.base_offset() as u64 != *first
                        || batch.last_offset() as u64 != a.last_offset
                    {
                        problems.push(format!(
                            "{when}: acked batch {first}..={} reads back as {}..={}",
                            a.last_offset,
                            batch.base_offset(),
                            batch.last_offset()
                        ));
                    } else if fnv(0, batch.as_bytes()) != a.fingerprint {
                        problems.push(format!(
                            "{when}: acked batch {first}..={} has other bytes",
                            a.last_offset
                        ));
                    }
                }
                Err(e) => problems.push(format!("{when}: acked batch at {first} unreadable: {e}")),
            },
            Err(e) => problems.push(format!(
                "{when}: acked batch {first}..={} lost (log holds [{}, {})): {e}",
                a.last_offset,
                log.log_start_offset(),
                log.log_end_offset()
            )),
        }
    }
    let _ = disk;
    let mut w = lock(world);
    let count = acked.len();
    w.event(node, &format!("verified {count} acked batches {when}"));
    for p in problems {
        w.violation(node, p);
    }
}

fn open_log(world: &World, node: usize, swarm: &Swarm) -> Result<(LogDir, Log), LogError> {
    let disk = lock(world).disks[node].clone();
    let disk_arc: Arc<dyn Disk> = Arc::new(disk);
    let meta = MetaProperties {
        cluster_id: CLUSTER_ID.to_string(),
        node_id: NodeId(node as i32),
        directory_id: Uuid::from_random([node as u8 + 1; 16]),
    };
    LogDir::format(Arc::clone(&disk_arc), &data_dir(), &meta, true)?;
    let config = log_config(swarm);
    let (dir, mut logs, notes) = LogDir::open(
        Arc::clone(&disk_arc),
        &data_dir(),
        Some(CLUSTER_ID),
        NodeId(node as i32),
        |_| config.clone(),
    )?;
    {
        let mut w = lock(world);
        for n in &notes {
            w.repairs += 1;
            w.event(node, &format!("recovery: {n}"));
        }
    }
    let log = match logs.remove(&topic_partition()) {
        Some(log) => log,
        None => dir.create_log(&topic_partition(), config)?,
    };
    Ok((dir, log))
}

/// One node's life from a (re)start to its crash.
async fn node_main(world: World, node: usize, swarm: Swarm, seed: u64, bugs: PlantedBugs) {
    let (incarnation, clock, disk) = {
        let mut w = lock(&world);
        w.incarnations[node] += 1;
        let inc = w.incarnations[node];
        w.event(node, &format!("start #{inc}"));
        (inc, w.clocks[node].clone(), w.disks[node].clone())
    };
    // Recovery runs with faults on (it must cope); the check after it with them off.
    let opened = open_log(&world, node, &swarm);
    let (dir, log) = match opened {
        Ok(x) => x,
        Err(e) => {
            let mut w = lock(&world);
            w.refused_opens += 1;
            w.event(node, &format!("refused to open: {e}"));
            w.stopped[node] = true;
            return;
        }
    };
    disk.set_faults(DiskFaults::default());
    verify(&world, node, &log, &format!("after start #{incarnation}"));
    disk.set_faults(swarm.faults);

    let log: SharedLog = Arc::new(std::sync::RwLock::new(Some(log)));
    let (writer, writer_task) = LogWriter::spawn(Arc::clone(&log), clock.clone(), bugs);
    for p in 0..swarm.producers_per_node {
        let writer = writer.clone();
        let world = Arc::clone(&world);
        let swarm = swarm.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(
            seed ^ ((node as u64) << 48) ^ (incarnation << 32) ^ p as u64,
        );
        ketch::runtime::spawn(async move {
            let mut serial = 0u64;
            loop {
                tokio::time::sleep(Duration::from_millis(rng.gen_range(1..50))).await;
                serial += 1;
                let records = rng.gen_range(1..=swarm.max_batch_records);
                let value_len = rng.gen_range(0..=swarm.max_value_bytes);
                let tag = format!("n{node}i{incarnation}p{p}s{serial}");
                let values: Vec<Vec<u8>> = (0..records)
                    .map(|r| {
                        let mut v = format!("{tag}r{r}").into_bytes();
                        v.resize(value_len.max(v.len()), b'x');
                        v
                    })
                    .collect();
                let recs: Vec<(Option<&[u8]>, &[u8])> =
                    values.iter().map(|v| (None, &v[..])).collect();
                let data = build_batch(0, 1_000 + serial as i64, &recs);
                let expected = data.clone();
                match writer.append(data, Some(LEADER_EPOCH)).await {
                    Ok(info) => {
                        let mut stored = expected;
                        set_base_offset(&mut stored, info.first_offset as i64);
                        set_partition_leader_epoch(&mut stored, LEADER_EPOCH);
                        let mut w = lock(&world);
                        w.acks += 1;
                        // Acknowledged ranges never overlap: check against the neighbours.
                        let overlap = w.acked[node]
                            .range(..=info.last_offset)
                            .next_back()
                            .filter(|(f, a)| {
                                **f <= info.last_offset && a.last_offset >= info.first_offset
                            })
                            .map(|(f, a)| (*f, a.last_offset));
                        if let Some((f, l)) = overlap {
                            w.violation(
                                node,
                                format!(
                                    "ack {}..={} overlaps the earlier ack {f}..={l}",
                                    info.first_offset, info.last_offset
                                ),
                            );
                        }
                        w.acked[node].insert(
                            info.first_offset,
                            Acked {
                                last_offset: info.last_offset,
                                fingerprint: fnv(0, &stored),
                            },
                        );
                        w.event(
                            node,
                            &format!("ack {}..={} {tag}", info.first_offset, info.last_offset),
                        );
                    }
                    Err(e) => {
                        let mut w = lock(&world);
                        w.append_errors += 1;
                        w.event(node, &format!("append failed {tag}: {e}"));
                    }
                }
            }
        });
    }
    // Checkpoint recovery points now and then, as the broker will.
    {
        let log = Arc::clone(&log);
        let world = Arc::clone(&world);
        ketch::runtime::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(700)).await;
                let result = {
                    let guard = read_log(&log);
                    let tp = topic_partition();
                    match guard.as_ref() {
                        Some(l) => dir.write_recovery_points([(&tp, l)]),
                        None => Ok(()),
                    }
                };
                if let Err(e) = result {
                    lock(&world).event(node, &format!("checkpoint failed: {e}"));
                }
            }
        });
    }
    match writer_task.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            let mut w = lock(&world);
            w.fatal_stops += 1;
            w.event(node, &format!("log writer stopped on a fatal error: {e}"));
            w.stopped[node] = true;
        }
        Err(e) => {
            let mut w = lock(&world);
            w.event(node, &format!("log writer task failed: {e}"));
            w.stopped[node] = true;
        }
    }
    drop(writer);
    std::future::pending::<()>().await;
}

async fn supervise(world: World, swarm: Swarm, seed: u64, duration_s: u64, bugs: PlantedBugs) {
    {
        let mut w = lock(&world);
        w.clocks = w
            .skews
            .iter()
            .map(|(offset_ms, drift_ppm)| Clock::skewed(*offset_ms, *drift_ppm))
            .collect();
    }
    let handle = Handle::current();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5EED_5EED);
    let mut nodes = Vec::new();
    for n in 0..swarm.nodes {
        let world = Arc::clone(&world);
        let swarm = swarm.clone();
        let node = handle
            .create_node()
            .name(format!("n{n}"))
            .ip(format!("10.0.0.{}", n + 1)
                .parse()
                .unwrap_or([10, 0, 0, 1].into()))
            .init(move || node_main(Arc::clone(&world), n, swarm.clone(), seed, bugs))
            .build();
        nodes.push(node.id());
    }
    // Safety phase: crashes, restarts, clock jumps.
    let mut down_until: Vec<Option<Duration>> = vec![None; swarm.nodes];
    #[allow(clippy::disallowed_methods)] // madsim's virtual clock
    let start = madsim::time::Instant::now();
    let end = Duration::from_secs(duration_s);
    loop {
        let step = Duration::from_millis(rng.gen_range(10..200));
        tokio::time::sleep(step).await;
        let now = start.elapsed();
        if now >= end {
            break;
        }
        for n in 0..swarm.nodes {
            // A node that stopped by itself is crashed and will restart.
            let stopped = std::mem::take(&mut lock(&world).stopped[n]);
            if stopped && down_until[n].is_none() {
                crash(&world, &handle, nodes[n], n, "after a fatal stop");
                down_until[n] =
                    Some(now + Duration::from_millis(rng.gen_range(1..=swarm.max_down_ms)));
            }
            if let Some(t) = down_until[n] {
                if now >= t {
                    down_until[n] = None;
                    handle.restart(nodes[n]);
                }
            }
        }
        let crash_p = step.as_millis() as f64 / swarm.mean_crash_interval_ms as f64;
        if rng.gen_bool(crash_p.min(1.0)) {
            let n = rng.gen_range(0..swarm.nodes);
            if down_until[n].is_none() {
                crash(&world, &handle, nodes[n], n, "power loss");
                down_until[n] =
                    Some(now + Duration::from_millis(rng.gen_range(1..=swarm.max_down_ms)));
            }
        }
        if swarm.clock_jumps && rng.gen_bool(0.02) {
            let n = rng.gen_range(0..swarm.nodes);
            let jump_ms = rng.gen_range(-60_000i64..60_000);
            let mut w = lock(&world);
            w.clocks[n].jump_wall_ms(jump_ms);
            w.event(n, &format!("wall clock jumps {jump_ms} ms"));
        }
    }
    // Final check: every node loses power at once; then each disk is recovered and checked
    // with no faults, outside any node.
    for n in 0..swarm.nodes {
        if down_until[n].is_none() {
            crash(&world, &handle, nodes[n], n, "final power loss");
        }
    }
    for n in 0..swarm.nodes {
        let disk = lock(&world).disks[n].clone();
        disk.set_faults(DiskFaults::default());
        let opened = open_log(&world, n, &swarm);
        match opened {
            Ok((_, log)) => verify(&world, n, &log, "after the final power loss"),
            Err(e) => {
                lock(&world).violation(n, format!("cannot recover after the final power loss: {e}"))
            }
        }
    }
}

fn crash(world: &World, handle: &Handle, id: madsim::task::NodeId, n: usize, why: &str) {
    handle.kill(id);
    let mut w = lock(world);
    w.crashes += 1;
    w.disks[n].crash();
    w.event(n, &format!("crash ({why})"));
}

pub fn run(options: Options) -> Report {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let swarm = Swarm::draw(&mut rng);
    let bugs = PlantedBugs {
        ack_before_fsync: options.plant_ack_before_fsync,
    };
    let mut disks = Vec::new();
    let mut skews = Vec::new();
    for n in 0..swarm.nodes {
        disks.push(SimDisk::new(rng.gen(), swarm.faults));
        let offset_ms = rng.gen_range(-5_000i64..5_000);
        let drift_ppm = rng.gen_range(-500i64..500);
        skews.push((offset_ms, drift_ppm));
        let _ = n;
    }
    let world: World = Arc::new(Mutex::new(Shared {
        disks,
        clocks: Vec::new(),
        skews,
        acked: vec![BTreeMap::new(); swarm.nodes],
        incarnations: vec![0; swarm.nodes],
        stopped: vec![false; swarm.nodes],
        violations: Vec::new(),
        trace: 0xcbf2_9ce4_8422_2325,
        events: 0,
        acks: 0,
        append_errors: 0,
        crashes: 0,
        fatal_stops: 0,
        refused_opens: 0,
        repairs: 0,
        verbose: options.verbose,
    }));
    if options.verbose {
        println!("swarm: {swarm:?}");
    }
    let runtime = Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    let w = Arc::clone(&world);
    let sw = swarm.clone();
    runtime.block_on(async move { supervise(w, sw, options.seed, options.duration_s, bugs).await });
    let w = lock(&world);
    let mut trace = w.trace;
    let mut disk_stats = Vec::new();
    for d in &w.disks {
        trace = fnv(trace, &d.trace_hash().to_le_bytes());
        disk_stats.push(d.stats());
    }
    let total = |f: fn(&ketch::runtime::SimDiskStats) -> u64| disk_stats.iter().map(f).sum::<u64>();
    let summary = format!(
        "seed {}: {} events, {} acked appends, {} append errors, {} crashes, {} fatal stops, {} refused opens, {} recovery repairs; disk: {} writes lost and {} torn on crash, {} fsync errors, {} ENOSPC, {} read bit flips; {} violations",
        options.seed,
        w.events,
        w.acks,
        w.append_errors,
        w.crashes,
        w.fatal_stops,
        w.refused_opens,
        w.repairs,
        total(|s| s.writes_lost_on_crash),
        total(|s| s.writes_torn_on_crash),
        total(|s| s.fsync_errors),
        total(|s| s.enospc_errors),
        total(|s| s.read_bitflips),
        w.violations.len()
    );
    let _ = Path::new("/");
    Report {
        violations: w.violations.clone(),
        summary,
        trace_hash: trace,
    }
}
