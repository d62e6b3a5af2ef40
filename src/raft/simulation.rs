//! A seeded simulation of a quorum of [`RaftNode`]s over an in-memory network that drops, delays
//! and reorders messages, with link partitions (one-way and symmetric, leader isolation), crashes
//! that lose unflushed log entries and unpersisted quorum state, pauses longer than the election
//! timeout, and per-node clock rates (Kafka's `RaftEventSimulationTest`, in our terms).
//!
//! Checked after every step: at most one leader per epoch; a node's epoch never decreases; one
//! vote per voter per epoch; log matching; committed entries identical on every node; the high
//! watermark monotonic. After the fault phase everything heals and a leader must be elected and
//! a new proposal committed on every node within [`LIVENESS_BOUND_MS`] of virtual time.

use super::node::{Config, QuorumState, RaftBugs, RaftNode, Role};
use super::{Entry, Epoch, MemLog, Message, RaftLog, SnapshotId};
use crate::model::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// After healing: a leader within 3 election rounds (each at most 2 × election timeout) after a
/// fetch timeout, plus a round trip to commit: 3 × 2 × 1000 + 2000 + slack = 10 s.
pub const LIVENESS_BOUND_MS: u64 = 10_000;
const STEP_MS: u64 = 5;

struct SimNode {
    id: NodeId,
    node: Option<RaftNode<MemLog>>,
    /// The log while the node is down.
    parked_log: Option<MemLog>,
    durable: QuorumState,
    rate_ppm: i64,
    offset_ms: u64,
    down_until: Option<u64>,
    paused_until: Option<u64>,
    incarnation: u64,
    last_hw: u64,
    /// The node's state machine: every committed entry below `applied` folded into
    /// `state_hash`, in order (from the log, or a snapshot).
    applied: u64,
    state_hash: u64,
    max_durable_epoch: Epoch,
}

/// The state machine's hash before any entry.
const EMPTY_STATE: u64 = 0xcbf2_9ce4_8422_2325;

fn fold_entry(hash: u64, e: &Entry) -> u64 {
    let h = fnv(hash, &e.offset.to_le_bytes());
    let h = fnv(h, &e.epoch.to_le_bytes());
    fnv(h, &e.data)
}

/// A snapshot's bytes: the offset and hash it stands for, and the hash again as padding so that
/// it takes several FetchSnapshot chunks.
fn snapshot_bytes(end_offset: u64, hash: u64) -> Vec<u8> {
    let mut b = end_offset.to_le_bytes().to_vec();
    for _ in 0..4 {
        b.extend_from_slice(&hash.to_le_bytes());
    }
    b
}

fn parse_snapshot(bytes: &[u8]) -> Option<(u64, u64)> {
    if bytes.len() != 40 {
        return None;
    }
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let hash = word(1);
    (word(2) == hash && word(3) == hash && word(4) == hash).then_some((word(0), hash))
}

struct InFlight {
    deliver_at: u64,
    seq: u64,
    from: usize,
    to: usize,
    message: Message,
}

pub struct Outcome {
    pub violations: Vec<String>,
    pub leaders_elected: usize,
    pub committed: usize,
    /// Snapshots fetched from a leader and installed.
    pub snapshots_installed: usize,
    pub trace_hash: u64,
}

struct Sim {
    rng: ChaCha8Rng,
    now_ms: u64,
    nodes: Vec<SimNode>,
    voters: BTreeSet<NodeId>,
    net: Vec<InFlight>,
    seq: u64,
    blocked: BTreeSet<(usize, usize)>,
    drop_ppm: u32,
    max_delay_ms: u64,
    crash_after_vote: f64,
    election_timeout_ms: u64,
    rule_checks: bool,
    bugs: RaftBugs,
    seed: u64,
    // checks
    leaders: BTreeMap<Epoch, NodeId>,
    votes: BTreeMap<(NodeId, Epoch), NodeId>,
    committed: Vec<Entry>,
    /// `committed_hash[k]`: the state after the first `k` committed entries.
    committed_hash: Vec<u64>,
    /// Committed entries between a node's snapshots (0: no snapshots in this run).
    snapshot_every: u64,
    /// Entries per fetch answer: small in half the runs, so that a follower can hold a new
    /// leader's older entries without its LeaderChange entry (Raft's figure 8).
    max_fetch_entries: usize,
    snapshots_installed: usize,
    violations: Vec<String>,
    crashes: usize,
    proposals: u64,
    trace: u64,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

impl Sim {
    fn local_now(&self, i: usize) -> u64 {
        let n = &self.nodes[i];
        let scaled = (i128::from(self.now_ms) * (1_000_000 + i128::from(n.rate_ppm))) / 1_000_000;
        n.offset_ms + scaled.max(0) as u64
    }

    fn config(&self, id: NodeId) -> Config {
        let mut c = Config::new(id, self.voters.clone());
        c.bugs = self.bugs;
        c.election_timeout_ms = self.election_timeout_ms;
        c.fetch_timeout_ms = 2 * self.election_timeout_ms;
        c.max_snapshot_chunk_bytes = 16;
        c.max_fetch_entries = self.max_fetch_entries;
        c
    }

    fn start(&mut self, i: usize) {
        let log = self.nodes[i].parked_log.take().unwrap_or_default();
        let now = self.local_now(i);
        let config = self.config(self.nodes[i].id);
        let durable = self.nodes[i].durable.clone();
        let n = &mut self.nodes[i];
        n.incarnation += 1;
        let seed = self.seed ^ (i as u64) << 40 ^ n.incarnation << 20;
        n.node = Some(RaftNode::new(config, log, durable, now, seed));
        n.last_hw = 0;
        // The state machine restarts from the durable snapshot, or from nothing.
        let snapshot = n
            .node
            .as_ref()
            .and_then(|x| x.log().snapshot().map(|(_, b)| parse_snapshot(b)));
        (n.applied, n.state_hash) = match snapshot {
            Some(Some(state)) => state,
            Some(None) => {
                self.violations
                    .push(format!("node {}: its snapshot does not parse", n.id));
                (0, EMPTY_STATE)
            }
            None => (0, EMPTY_STATE),
        };
        n.down_until = None;
        self.pump(i);
    }

    fn crash(&mut self, i: usize, down_ms: u64) {
        let Some(node) = self.nodes[i].node.take() else {
            return;
        };
        let mut log = node.into_log();
        let unflushed = (log.end_offset() - log.durable_end()) as usize;
        let keep = self.rng.gen_range(0..=unflushed);
        log.crash(keep);
        self.crashes += 1;
        self.trace = fnv(self.trace, &[0xC, i as u8]);
        let n = &mut self.nodes[i];
        n.parked_log = Some(log);
        n.down_until = Some(self.now_ms + down_ms);
        // Messages in flight to a dead node are lost with its sockets.
        self.net.retain(|m| m.to != i);
    }

    /// Carries out a node's Ready until it has nothing more: persist, flush, send.
    fn pump(&mut self, i: usize) {
        loop {
            let now = self.local_now(i);
            let Some(node) = self.nodes[i].node.as_mut() else {
                return;
            };
            let ready = node.take_ready();
            if ready.is_empty() {
                return;
            }
            if let Some(id) = ready.snapshot_installed {
                self.on_snapshot_installed(i, id);
            }
            if let Some(state) = ready.persist_state {
                self.nodes[i].durable = state;
            }
            let node = match self.nodes[i].node.as_mut() {
                Some(n) => n,
                None => return,
            };
            if ready.flush_log {
                let flushed = node.log_mut().flush();
                node.on_log_flushed(flushed, now);
            }
            // The shell has persisted what the core asked for; if the core's state differs
            // from what is on disk now, a message may already depend on state that a crash
            // would forget.
            if let Some(node) = self.nodes[i].node.as_ref() {
                if self.rule_checks
                    && *node.quorum_state() != self.nodes[i].durable
                    && !ready.messages.is_empty()
                {
                    self.violations.push(format!(
                        "node {}: sends messages while its quorum state {:?} is not durable (disk has {:?})",
                        self.nodes[i].id,
                        node.quorum_state(),
                        self.nodes[i].durable
                    ));
                }
            }
            let from_id = self.nodes[i].id;
            let mut voted = false;
            for (to, message) in ready.messages {
                voted |= matches!(
                    message,
                    Message::VoteResponse {
                        granted: true,
                        pre_vote: false,
                        ..
                    }
                );
                self.record_vote(from_id, to, &message);
                self.transmit(i, to, message);
            }
            // Crash points right after a vote left: where a vote that was not persisted shows.
            if voted && self.rng.gen_bool(self.crash_after_vote) {
                let down = self.rng.gen_range(0..300);
                self.crash(i, down);
                return;
            }
        }
    }

    /// A node replaced its log with the leader's snapshot: its state machine becomes the
    /// snapshot's, which must be the committed prefix's state.
    fn on_snapshot_installed(&mut self, i: usize, id: SnapshotId) {
        self.snapshots_installed += 1;
        let n = &mut self.nodes[i];
        let bytes = n.node.as_ref().and_then(|x| x.log().snapshot().cloned());
        let Some((held, bytes)) = bytes else {
            self.violations.push(format!(
                "node {}: installed snapshot {id:?} is not held",
                n.id
            ));
            return;
        };
        match parse_snapshot(&bytes) {
            Some((end, hash)) if held == id && end == id.end_offset => {
                match self.committed_hash.get(end as usize) {
                    Some(h) if *h == hash => {}
                    other => self.violations.push(format!(
                        "node {}: installed a snapshot at {end} whose state {hash:#x} is not the committed prefix's ({other:?})",
                        n.id
                    )),
                }
                n.applied = end;
                n.state_hash = hash;
            }
            _ => self.violations.push(format!(
                "node {}: installed snapshot {id:?} is damaged",
                n.id
            )),
        }
    }

    fn record_vote(&mut self, voter: NodeId, candidate: NodeId, message: &Message) {
        if let Message::VoteResponse {
            epoch,
            granted: true,
            pre_vote: false,
            ..
        } = message
        {
            match self.votes.get(&(voter, *epoch)) {
                Some(c) if *c != candidate => self.violations.push(format!(
                    "node {voter} voted twice in epoch {epoch}: for {c} and for {candidate}"
                )),
                _ => {
                    self.votes.insert((voter, *epoch), candidate);
                }
            }
        }
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }

    fn transmit(&mut self, from: usize, to: NodeId, message: Message) {
        let Some(to) = self.index_of(to) else { return };
        self.seq += 1;
        if self.blocked.contains(&(from, to))
            || (self.drop_ppm > 0 && self.rng.gen_range(0..1_000_000) < self.drop_ppm)
        {
            return;
        }
        let delay = self.rng.gen_range(1..=self.max_delay_ms.max(1));
        self.net.push(InFlight {
            deliver_at: self.now_ms + delay,
            seq: self.seq,
            from,
            to,
            message,
        });
    }

    fn step(&mut self) {
        self.now_ms += STEP_MS;
        // Deliver what is due, in (time, send order).
        self.net.sort_by_key(|m| (m.deliver_at, m.seq));
        let mut due = Vec::new();
        let mut later = Vec::new();
        for m in self.net.drain(..) {
            let paused = self.nodes[m.to]
                .paused_until
                .is_some_and(|t| self.now_ms < t);
            if m.deliver_at <= self.now_ms && !paused {
                due.push(m);
            } else {
                later.push(m);
            }
        }
        self.net = later;
        for m in due {
            let now = self.local_now(m.to);
            let from_id = self.nodes[m.from].id;
            self.trace = fnv(self.trace, &[m.from as u8, m.to as u8]);
            self.trace = fnv(self.trace, &m.message.epoch().to_le_bytes());
            if let Some(node) = self.nodes[m.to].node.as_mut() {
                if let Err(e) = node.step(from_id, m.message, now) {
                    self.violations.push(format!("log failure: {e}"));
                }
                self.pump(m.to);
            }
        }
        for i in 0..self.nodes.len() {
            if self.nodes[i].paused_until.is_some_and(|t| self.now_ms < t) {
                continue;
            }
            self.nodes[i].paused_until = None;
            if self.nodes[i].down_until.is_some_and(|t| self.now_ms >= t) {
                self.start(i);
            }
            let now = self.local_now(i);
            if let Some(node) = self.nodes[i].node.as_mut() {
                if let Err(e) = node.tick(now) {
                    self.violations.push(format!("log failure: {e}"));
                }
                self.pump(i);
            }
        }
        self.check();
    }

    fn propose(&mut self) {
        for i in 0..self.nodes.len() {
            let now = self.local_now(i);
            if let Some(node) = self.nodes[i].node.as_mut() {
                if node.role() == Role::Leader {
                    self.proposals += 1;
                    let data = format!("p{}", self.proposals).into_bytes();
                    let _ = node.propose(data, now);
                    self.pump(i);
                }
            }
        }
    }

    fn check(&mut self) {
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id;
            let durable_epoch = self.nodes[i].durable.epoch;
            if durable_epoch < self.nodes[i].max_durable_epoch {
                self.violations.push(format!(
                    "node {id}: durable epoch went back from {} to {durable_epoch}",
                    self.nodes[i].max_durable_epoch
                ));
            }
            self.nodes[i].max_durable_epoch = self.nodes[i].max_durable_epoch.max(durable_epoch);
            let Some(node) = self.nodes[i].node.as_ref() else {
                continue;
            };
            if node.epoch() < durable_epoch {
                self.violations.push(format!(
                    "node {id}: epoch {} below its durable {durable_epoch}",
                    node.epoch()
                ));
            }
            if node.role() == Role::Leader {
                match self.leaders.get(&node.epoch()) {
                    Some(l) if *l != id => self.violations.push(format!(
                        "two leaders in epoch {}: {l} and {id}",
                        node.epoch()
                    )),
                    None => {
                        self.leaders.insert(node.epoch(), id);
                    }
                    _ => {}
                }
            }
            let hw = node.high_watermark();
            if self.rule_checks
                && node.role() == Role::Leader
                && hw > self.nodes[i].last_hw
                && hw > node.log().start_offset()
            {
                let last = node.log().read(hw - 1, 1);
                if last.first().is_none_or(|e| e.epoch != node.epoch()) {
                    self.violations.push(format!(
                        "node {id}: as leader of epoch {} advanced the high watermark to {hw}, over entries of older epochs only",
                        node.epoch()
                    ));
                }
            }
            if hw < self.nodes[i].last_hw {
                self.violations.push(format!(
                    "node {id}: high watermark went back from {} to {hw}",
                    self.nodes[i].last_hw
                ));
            }
            // Committed entries are the same everywhere; the state machine applies them.
            let from = self.nodes[i].applied;
            if from < node.log().start_offset() {
                self.violations.push(format!(
                    "node {id}: entries {from}..{} went from the log before they were applied",
                    node.log().start_offset()
                ));
                continue;
            }
            let entries = node.log().read(from, (hw - from.min(hw)) as usize);
            let mut problems = Vec::new();
            let mut state = self.nodes[i].state_hash;
            for e in &entries {
                state = fold_entry(state, e);
                match self.committed.get(e.offset as usize) {
                    Some(c) if c != e => problems.push(format!(
                        "node {id}: committed offset {} is {:?}/{:?} here but {:?}/{:?} elsewhere",
                        e.offset,
                        e.epoch,
                        String::from_utf8_lossy(&e.data),
                        c.epoch,
                        String::from_utf8_lossy(&c.data)
                    )),
                    Some(_) => {}
                    None if e.offset as usize == self.committed.len() => {
                        self.committed.push(e.clone());
                        self.committed_hash.push(state);
                    }
                    None => problems.push(format!(
                        "node {id}: committed offset {} beyond the known prefix",
                        e.offset
                    )),
                }
            }
            if entries.len() as u64 != hw - from.min(hw) {
                problems.push(format!(
                    "node {id}: high watermark {hw} past its log end {}",
                    node.log().end_offset()
                ));
            }
            if problems.is_empty() && !entries.is_empty() {
                let last = entries.len() - 1;
                let applied = entries[last].offset + 1;
                if self.committed_hash.get(applied as usize) != Some(&state) {
                    problems.push(format!("node {id}: state at {applied} differs"));
                }
                self.nodes[i].applied = applied;
                self.nodes[i].state_hash = state;
            }
            self.violations.extend(problems);
            self.nodes[i].last_hw = hw;
            self.maybe_snapshot(i);
        }
    }

    /// Every `snapshot_every` applied entries a node snapshots its state machine; the log drops
    /// what the snapshot covers.
    fn maybe_snapshot(&mut self, i: usize) {
        let every = self.snapshot_every;
        let n = &mut self.nodes[i];
        let Some(node) = n.node.as_mut() else {
            return;
        };
        let last = node.log().latest_snapshot().map_or(0, |s| s.end_offset);
        if every == 0 || n.applied < last + every {
            return;
        }
        match node.create_snapshot(n.applied, &snapshot_bytes(n.applied, n.state_hash)) {
            Ok(_) | Err(super::SnapshotError::OutOfRange { .. }) => {}
            Err(e) => self.violations.push(format!("node {}: {e}", n.id)),
        }
    }

    fn print_trace(&self) {
        let nodes: Vec<_> = self
            .nodes
            .iter()
            .filter_map(|n| n.node.as_ref())
            .map(|n| {
                (
                    n.node_id().0,
                    n.role(),
                    n.epoch(),
                    n.leader().map(|l| l.0),
                    n.high_watermark(),
                    n.log().end_offset(),
                )
            })
            .collect();
        eprintln!("t={} {nodes:?}", self.now_ms);
    }

    /// Log matching: two logs with an entry of the same offset and epoch agree on everything
    /// before it.
    fn check_log_matching(&mut self) {
        // Logs may start at different offsets (after snapshots): compare where both hold entries.
        let logs: Vec<(NodeId, Vec<Entry>)> = self
            .nodes
            .iter()
            .filter_map(|n| {
                let log = n.node.as_ref().map(|x| x.log()).or(n.parked_log.as_ref())?;
                Some((n.id, log.entries().to_vec()))
            })
            .collect();
        for a in 0..logs.len() {
            for b in a + 1..logs.len() {
                let (ia, la) = &logs[a];
                let (ib, lb) = &logs[b];
                let start = |l: &[Entry]| l.first().map_or(0, |e| e.offset);
                let from = start(la).max(start(lb));
                let la = &la[(from - start(la)).min(la.len() as u64) as usize..];
                let lb = &lb[(from - start(lb)).min(lb.len() as u64) as usize..];
                let n = la.len().min(lb.len());
                if let Some(o) = (0..n).rev().find(|&o| la[o].epoch == lb[o].epoch) {
                    if la[..=o] != lb[..=o] {
                        let first = from + (0..=o).find(|&x| la[x] != lb[x]).unwrap_or(0) as u64;
                        self.violations.push(format!(
                            "log matching: nodes {ia} and {ib} agree on the epoch at offset {o} but differ at offset {first}"
                        ));
                    }
                }
            }
        }
    }
}

/// Runs one seed. Everything (cluster size, faults, timings) is drawn from it.
pub fn run(seed: u64, bugs: RaftBugs, fault_ms: u64) -> Outcome {
    run_with(seed, bugs, fault_ms, true)
}

/// As [`run`]; without `rule_checks` only the consequences are checked (two leaders in an
/// epoch, a double vote, committed entries that differ, logs that do not match), not the rules
/// whose breach leads to them (state durable before sending; a leader's high watermark ends in
/// its own epoch). Used to show the consequences are reachable, not merely the rules checkable.
pub fn run_with(seed: u64, bugs: RaftBugs, fault_ms: u64, rule_checks: bool) -> Outcome {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let voter_count = if rng.gen_bool(0.5) { 3 } else { 5 };
    let observer_count = rng.gen_range(0..=2);
    let voters: BTreeSet<NodeId> = (1..=voter_count).map(NodeId).collect();
    let mut nodes = Vec::new();
    for id in 1..=(voter_count + observer_count) {
        nodes.push(SimNode {
            id: NodeId(id),
            node: None,
            parked_log: Some(MemLog::new()),
            durable: QuorumState::default(),
            rate_ppm: rng.gen_range(-50_000..50_000),
            offset_ms: rng.gen_range(0..1_000_000),
            down_until: None,
            paused_until: None,
            incarnation: 0,
            last_hw: 0,
            applied: 0,
            state_hash: EMPTY_STATE,
            max_durable_epoch: 0,
        });
    }
    let drop_ppm = if rng.gen_bool(0.5) {
        rng.gen_range(0..200_000)
    } else {
        0
    };
    let max_delay_ms = rng.gen_range(1..60);
    let calm = std::env::var("RAFT_SIM_CALM").is_ok();
    let drop_ppm = if calm { 0 } else { drop_ppm };
    let crash_rate = if calm { 0.0 } else { rng.gen_range(0.0..0.5) };
    let partition_rate = if calm { 0.0 } else { rng.gen_range(0.0..0.5) };
    let pause_rate = if calm { 0.0 } else { rng.gen_range(0.0..0.2) };
    let crash_after_vote = if calm { 0.0 } else { rng.gen_range(0.0..0.3) };
    // Short election timeouts against slow links give split votes and quick leader turnover.
    let election_timeout_ms = if rng.gen_bool(0.5) {
        1_000
    } else {
        rng.gen_range(100..1_000)
    };
    // Most runs snapshot, some often, so that fetchers fall behind a leader's log start. Drawn
    // from a stream of its own, so that the rest of a seed's schedule is what it was before
    // snapshots existed.
    let mut snapshot_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5_4A95);
    let snapshot_every =
        if std::env::var("RAFT_SIM_NO_SNAPSHOTS").is_ok() || snapshot_rng.gen_bool(0.25) {
            0
        } else {
            snapshot_rng.gen_range(3..40)
        };
    let max_fetch_entries = if snapshot_rng.gen_bool(0.5) {
        snapshot_rng.gen_range(4..17)
    } else {
        512
    };
    let mut sim = Sim {
        rng,
        now_ms: 0,
        nodes,
        voters,
        net: Vec::new(),
        seq: 0,
        blocked: BTreeSet::new(),
        drop_ppm,
        max_delay_ms,
        crash_after_vote,
        election_timeout_ms,
        rule_checks,
        bugs,
        seed,
        leaders: BTreeMap::new(),
        votes: BTreeMap::new(),
        committed: Vec::new(),
        committed_hash: vec![EMPTY_STATE],
        snapshot_every,
        max_fetch_entries,
        snapshots_installed: 0,
        violations: Vec::new(),
        crashes: 0,
        proposals: 0,
        trace: 0xcbf2_9ce4_8422_2325,
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for i in 0..sim.nodes.len() {
            sim.start(i);
        }
        // RAFT_SIM_TRACE=1 prints every node's state twice a virtual second.
        let tracing = std::env::var("RAFT_SIM_TRACE").is_ok();
        // Safety phase.
        while sim.now_ms < fault_ms && sim.violations.is_empty() {
            sim.step();
            if tracing && sim.now_ms % 500 == 0 {
                sim.print_trace();
            }
            if sim.now_ms % 50 == 0 {
                sim.propose();
            }
            if sim.now_ms % 250 == 0 {
                inject_fault(&mut sim, crash_rate, partition_rate, pause_rate);
            }
            if sim.now_ms % 500 == 0 {
                sim.check_log_matching();
            }
        }
        // Liveness phase: heal everything, then require a leader and a commit everywhere.
        sim.blocked.clear();
        sim.drop_ppm = 0;
        for i in 0..sim.nodes.len() {
            sim.nodes[i].paused_until = None;
            if sim.nodes[i].node.is_none() {
                sim.start(i);
            }
        }
        let healed_at = sim.now_ms;
        // The marker proposal: (offset, epoch, proposer).
        let mut marker: Option<(u64, Epoch, usize)> = None;
        let voters_now = sim.voters.clone();
        while sim.violations.is_empty() {
            sim.step();
            if tracing && sim.now_ms % 500 == 0 {
                sim.print_trace();
            }
            if sim.now_ms - healed_at > LIVENESS_BOUND_MS {
                sim.violations.push(format!(
                    "liveness: no leader with a commit on every node within {LIVENESS_BOUND_MS} ms of healing (leaders: {:?})",
                    sim.nodes.iter().filter_map(|n| n.node.as_ref()).map(|n| (n.node_id(), n.role(), n.epoch(), n.high_watermark(), n.log().end_offset())).collect::<Vec<_>>()
                ));
                break;
            }
            if marker.is_none() {
                for i in 0..sim.nodes.len() {
                    let now = sim.local_now(i);
                    if let Some(node) = sim.nodes[i].node.as_mut() {
                        if node.role() == Role::Leader && voters_now.contains(&node.node_id()) {
                            let epoch = node.epoch();
                            marker = node
                                .propose(b"marker".to_vec(), now)
                                .ok()
                                .map(|m| (m, epoch, i));
                            sim.pump(i);
                            break;
                        }
                    }
                }
            }
            if let Some((m, epoch, proposer)) = marker {
                let everywhere = sim
                    .nodes
                    .iter()
                    .all(|n| n.node.as_ref().is_some_and(|x| x.high_watermark() > m));
                let committed_marker = sim.committed.get(m as usize).map(|e| e.data == b"marker");
                let proposer_still_leads = sim.nodes[proposer]
                    .node
                    .as_ref()
                    .is_some_and(|x| x.role() == Role::Leader && x.epoch() == epoch);
                let still_there = committed_marker.unwrap_or(proposer_still_leads);
                if !still_there {
                    marker = None; // lost to a leader change before it committed: propose again
                } else if everywhere {
                    break;
                }
            }
        }
        sim.check_log_matching();
    }));
    if let Err(panic) = result {
        let what = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        sim.violations.push(format!(
            "panic (an invariant asserted in production code): {what}"
        ));
    }
    for (e, l) in &sim.leaders {
        sim.trace = fnv(sim.trace, &e.to_le_bytes());
        sim.trace = fnv(sim.trace, &l.0.to_le_bytes());
    }
    Outcome {
        violations: sim.violations,
        leaders_elected: sim.leaders.len(),
        committed: sim.committed.len(),
        snapshots_installed: sim.snapshots_installed,
        trace_hash: sim.trace,
    }
}

fn inject_fault(sim: &mut Sim, crash_rate: f64, partition_rate: f64, pause_rate: f64) {
    let n = sim.nodes.len();
    if sim.rng.gen_bool(crash_rate) {
        let i = sim.rng.gen_range(0..n);
        let down = sim.rng.gen_range(0..3_000);
        sim.crash(i, down);
    }
    if sim.rng.gen_bool(partition_rate) {
        match sim.rng.gen_range(0..4) {
            0 => {
                let a = sim.rng.gen_range(0..n);
                let b = sim.rng.gen_range(0..n);
                sim.blocked.insert((a, b)); // one way
            }
            1 => {
                let a = sim.rng.gen_range(0..n);
                let b = sim.rng.gen_range(0..n);
                sim.blocked.insert((a, b));
                sim.blocked.insert((b, a));
            }
            2 => {
                // Isolate a leader, if there is one.
                let leader = sim
                    .nodes
                    .iter()
                    .position(|x| x.node.as_ref().is_some_and(|r| r.role() == Role::Leader));
                if let Some(l) = leader {
                    for o in 0..n {
                        sim.blocked.insert((l, o));
                        sim.blocked.insert((o, l));
                    }
                }
            }
            _ => sim.blocked.clear(),
        }
    }
    if sim.rng.gen_bool(pause_rate) {
        let i = sim.rng.gen_range(0..n);
        let until = sim.now_ms + sim.rng.gen_range(500..5_000);
        sim.nodes[i].paused_until = Some(until);
    }
}
