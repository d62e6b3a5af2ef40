//! [`RaftNode`]: one quorum member's state machine. Messages and ticks in; state to persist, log
//! flushes and messages to send out, through [`Ready`].
//!
//! Durability order, which the shell must follow for every [`Ready`]: first make
//! `persist_state` durable, then flush the log if `flush_log` (and report it with
//! [`RaftNode::on_log_flushed`]), and only then send `messages`. A vote is therefore never sent
//! before it is on disk, and a follower's fetch offset is always durable when it is reported.

use super::{Entry, Epoch, LogFailure, Message, RaftError, RaftLog, SnapshotId};
use crate::model::NodeId;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

/// The quorum's settings (Kafka's `controller.quorum.*` keys).
#[derive(Clone, Debug)]
pub struct Config {
    pub node_id: NodeId,
    /// `controller.quorum.voters`. A node not in it is an observer: it replicates, never votes.
    pub voters: BTreeSet<NodeId>,
    /// `controller.quorum.election.timeout.ms`: an election starts after a random wait in
    /// [T, 2T).
    pub election_timeout_ms: u64,
    /// `controller.quorum.fetch.timeout.ms`: a follower that hears nothing from its leader for this
    /// long looks for a new one; a leader not fetched from by a majority for this long resigns.
    pub fetch_timeout_ms: u64,
    /// How long the leader holds a fetch that has nothing new (long poll).
    pub fetch_max_wait_ms: u64,
    pub max_fetch_entries: usize,
    /// The most snapshot bytes a FetchSnapshot answer carries.
    pub max_snapshot_chunk_bytes: usize,
    pub bugs: RaftBugs,
}

impl Config {
    pub fn new(node_id: NodeId, voters: BTreeSet<NodeId>) -> Config {
        Config {
            node_id,
            voters,
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            fetch_max_wait_ms: 500,
            max_fetch_entries: 512,
            max_snapshot_chunk_bytes: 1 << 20,
            bugs: RaftBugs::default(),
        }
    }
}

/// Deliberate bugs for the simulation to catch. Always off outside tests and the simulator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftBugs {
    /// Grant a vote without persisting it first.
    pub vote_not_persisted: bool,
    /// Advance the high watermark over entries of older epochs only (Raft §5.4.2).
    pub hw_on_stale_epoch: bool,
}

/// What must survive a restart (Kafka's `quorum-state` file).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumState {
    pub epoch: Epoch,
    pub voted_for: Option<NodeId>,
    pub leader: Option<NodeId>,
}

/// The role, for callers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Unattached,
    Prospective,
    Candidate,
    Leader,
    Follower,
}

/// What the shell must do next, in order: persist, flush, send.
#[derive(Debug, Default)]
pub struct Ready {
    pub persist_state: Option<QuorumState>,
    pub flush_log: bool,
    pub messages: Vec<(NodeId, Message)>,
    /// A snapshot fetched from the leader replaced the log (already durable): the state
    /// machine must reload from it and go on from its end offset.
    pub snapshot_installed: Option<SnapshotId>,
}

impl Ready {
    pub fn is_empty(&self) -> bool {
        self.persist_state.is_none()
            && !self.flush_log
            && self.messages.is_empty()
            && self.snapshot_installed.is_none()
    }
}

/// A snapshot being downloaded from the leader, chunk by chunk.
#[derive(Debug)]
struct SnapshotDownload {
    id: SnapshotId,
    bytes: Vec<u8>,
}

/// Why a snapshot was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("a snapshot must end at a committed offset held in the log: {end_offset} is not in [{start}, {high_watermark}]")]
    OutOfRange {
        end_offset: u64,
        start: u64,
        high_watermark: u64,
    },
    #[error(transparent)]
    Log(#[from] LogFailure),
}

#[derive(Debug)]
struct Progress {
    /// Offset the replica will fetch next: everything below is durable on it.
    fetch_offset: u64,
    last_fetch_ms: Option<u64>,
    /// High watermark last sent to it, so a fetch with nothing new can wait.
    last_sent_hw: u64,
    last_begin_epoch_ms: Option<u64>,
}

#[derive(Debug)]
struct Parked {
    fetch_offset: u64,
    last_fetched_epoch: Epoch,
    deadline_ms: u64,
}

#[derive(Debug)]
enum State {
    Unattached {
        election_deadline_ms: u64,
        /// Observers (and voters with no leader) look for the leader by fetching from voters.
        probe_sent_ms: Option<u64>,
    },
    Prospective {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        deadline_ms: u64,
        /// The leader whose silence started this election: voters still naming it are behind,
        /// and following it again would go round in circles.
        lost_leader: Option<NodeId>,
    },
    Candidate {
        granted: BTreeSet<NodeId>,
        rejected: BTreeSet<NodeId>,
        deadline_ms: u64,
    },
    Leader {
        /// Offset of this epoch's first entry: the high watermark may only pass it.
        epoch_start_offset: u64,
        since_ms: u64,
        replicas: BTreeMap<NodeId, Progress>,
        parked: BTreeMap<NodeId, Parked>,
    },
    Follower {
        leader: NodeId,
        fetch_deadline_ms: u64,
        fetch_sent_ms: Option<u64>,
        /// Set while the leader's snapshot is being fetched instead of entries.
        download: Option<SnapshotDownload>,
    },
}

/// Why a proposal was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader (leader: {leader:?}, epoch {epoch})")]
    NotLeader {
        leader: Option<NodeId>,
        epoch: Epoch,
    },
    #[error(transparent)]
    Log(#[from] LogFailure),
}

pub struct RaftNode<L: RaftLog> {
    config: Config,
    log: L,
    rng: ChaCha8Rng,
    quorum: QuorumState,
    state: State,
    high_watermark: u64,
    /// The log is durable below this offset.
    flushed_offset: u64,
    ready: Ready,
}

/// The payload of the entry a new leader writes first (KRaft's LeaderChangeMessage): it gives
/// the epoch an entry of its own, which the high watermark must cover before it counts.
pub const LEADER_CHANGE: &[u8] = b"\x00leader-change";

impl<L: RaftLog> RaftNode<L> {
    /// A node starting from its durable state and recovered log.
    pub fn new(
        config: Config,
        log: L,
        durable: QuorumState,
        now_ms: u64,
        seed: u64,
    ) -> RaftNode<L> {
        let flushed_offset = log.end_offset();
        // A snapshot holds only committed entries.
        let high_watermark = log.latest_snapshot().map_or(0, |s| s.end_offset);
        let mut node = RaftNode {
            config,
            log,
            rng: ChaCha8Rng::seed_from_u64(seed),
            quorum: durable.clone(),
            state: State::Unattached {
                election_deadline_ms: now_ms,
                probe_sent_ms: None,
            },
            high_watermark,
            flushed_offset,
            ready: Ready::default(),
        };
        let me = node.config.node_id;
        match durable.leader {
            // A leader that restarts cannot know whether the quorum moved on: it resigns, and
            // says so, so the others need not wait out their fetch timeout.
            Some(leader) if leader == me => {
                node.state = State::Unattached {
                    election_deadline_ms: now_ms + node.random_election_timeout(),
                    probe_sent_ms: None,
                };
                node.broadcast_to_voters(Message::EndQuorumEpoch {
                    epoch: durable.epoch,
                    leader: me,
                    preferred_successors: Vec::new(),
                });
            }
            Some(leader) => {
                node.state = State::Follower {
                    leader,
                    fetch_deadline_ms: now_ms + node.config.fetch_timeout_ms,
                    fetch_sent_ms: None,
                    download: None,
                };
                node.maybe_send_fetch(now_ms);
            }
            None => {
                let deadline = now_ms + node.random_election_timeout();
                node.state = State::Unattached {
                    election_deadline_ms: deadline,
                    probe_sent_ms: None,
                };
            }
        }
        node
    }

    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }
    pub fn epoch(&self) -> Epoch {
        self.quorum.epoch
    }
    pub fn leader(&self) -> Option<NodeId> {
        self.quorum.leader
    }
    pub fn quorum_state(&self) -> &QuorumState {
        &self.quorum
    }
    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }
    pub fn log(&self) -> &L {
        &self.log
    }
    /// The log, for the shell to flush (and nothing else: appends and truncations are the
    /// core's).
    pub fn log_mut(&mut self) -> &mut L {
        &mut self.log
    }
    /// Stops the node and hands back its log (a crash, in the simulation).
    pub fn into_log(self) -> L {
        self.log
    }
    pub fn is_voter(&self) -> bool {
        self.config.voters.contains(&self.config.node_id)
    }
    pub fn role(&self) -> Role {
        match self.state {
            State::Unattached { .. } => Role::Unattached,
            State::Prospective { .. } => Role::Prospective,
            State::Candidate { .. } => Role::Candidate,
            State::Leader { .. } => Role::Leader,
            State::Follower { .. } => Role::Follower,
        }
    }

    /// What a leader knows of each replica: `(id, fetch offset, ms since its last fetch)`;
    /// `None` on a node that is not the leader. The leader itself is listed with its log end.
    pub fn replica_progress(&self, now_ms: u64) -> Option<Vec<(NodeId, u64, Option<u64>)>> {
        let State::Leader { replicas, .. } = &self.state else {
            return None;
        };
        let mut out = vec![(self.config.node_id, self.log.end_offset(), Some(0))];
        for (id, p) in replicas {
            out.push((
                *id,
                p.fetch_offset,
                p.last_fetch_ms.map(|t| now_ms.saturating_sub(t)),
            ));
        }
        Some(out)
    }

    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.config.voters
    }

    /// Everything to do since the last call.
    pub fn take_ready(&mut self) -> Ready {
        std::mem::take(&mut self.ready)
    }

    fn majority(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    fn random_election_timeout(&mut self) -> u64 {
        // The only voter has no one to split a vote with, nor anyone to wait for.
        if self.config.voters.len() == 1 && self.is_voter() {
            return 0;
        }
        let t = self.config.election_timeout_ms.max(1);
        t + self.rng.gen_range(0..t)
    }

    fn persist(&mut self) {
        self.ready.persist_state = Some(self.quorum.clone());
    }

    fn send(&mut self, to: NodeId, message: Message) {
        self.ready.messages.push((to, message));
    }

    fn broadcast_to_voters(&mut self, message: Message) {
        let me = self.config.node_id;
        let others: Vec<NodeId> = self
            .config
            .voters
            .iter()
            .copied()
            .filter(|v| *v != me)
            .collect();
        for v in others {
            self.send(v, message.clone());
        }
    }

    /// The leader to point others at: only one this node is following or is.
    fn leader_hint(&self) -> Option<NodeId> {
        match &self.state {
            State::Leader { .. } => Some(self.config.node_id),
            State::Follower { leader, .. } => Some(*leader),
            _ => None,
        }
    }

    /// (last epoch, end offset) of the log: how up to date it is, compared lexicographically.
    fn log_position(&self) -> (Epoch, u64) {
        (self.log.last_epoch(), self.log.end_offset())
    }

    // ---- transitions -------------------------------------------------------------------

    fn become_unattached(&mut self, epoch: Epoch, now_ms: u64) {
        assert!(epoch >= self.quorum.epoch, "epochs never go back");
        if epoch > self.quorum.epoch {
            self.quorum = QuorumState {
                epoch,
                voted_for: None,
                leader: None,
            };
            self.persist();
        }
        self.state = State::Unattached {
            election_deadline_ms: now_ms + self.random_election_timeout(),
            probe_sent_ms: None,
        };
    }

    fn become_follower(&mut self, epoch: Epoch, leader: NodeId, now_ms: u64) {
        assert!(epoch >= self.quorum.epoch, "epochs never go back");
        assert_ne!(leader, self.config.node_id, "a node never follows itself");
        if epoch > self.quorum.epoch {
            self.quorum.voted_for = None;
        }
        if epoch != self.quorum.epoch || self.quorum.leader != Some(leader) {
            assert!(
                epoch > self.quorum.epoch || self.quorum.leader.is_none(),
                "two leaders in epoch {epoch}: {:?} and {leader}",
                self.quorum.leader
            );
            self.quorum.epoch = epoch;
            self.quorum.leader = Some(leader);
            self.persist();
        }
        self.state = State::Follower {
            leader,
            fetch_deadline_ms: now_ms + self.config.fetch_timeout_ms,
            fetch_sent_ms: None,
            download: None,
        };
        self.maybe_send_fetch(now_ms);
    }

    fn become_prospective(&mut self, now_ms: u64) -> Result<(), LogFailure> {
        let me = self.config.node_id;
        let mut granted = BTreeSet::new();
        granted.insert(me);
        let lost_leader = match &self.state {
            State::Prospective { lost_leader, .. } => *lost_leader,
            _ => self.quorum.leader,
        };
        self.state = State::Prospective {
            granted,
            rejected: BTreeSet::new(),
            deadline_ms: now_ms + self.random_election_timeout(),
            lost_leader,
        };
        let (last_epoch, end_offset) = self.log_position();
        self.broadcast_to_voters(Message::VoteRequest {
            epoch: self.quorum.epoch + 1,
            candidate: me,
            last_epoch,
            end_offset,
            pre_vote: true,
        });
        self.maybe_win_pre_vote(now_ms)
    }

    fn maybe_win_pre_vote(&mut self, now_ms: u64) -> Result<(), LogFailure> {
        if let State::Prospective {
            granted, rejected, ..
        } = &self.state
        {
            if granted.len() >= self.majority() {
                return self.become_candidate(now_ms);
            }
            if rejected.len() >= self.majority() {
                // Lost: wait a random while before trying again.
                let epoch = self.quorum.epoch;
                self.become_unattached(epoch, now_ms);
            }
        }
        Ok(())
    }

    fn become_candidate(&mut self, now_ms: u64) -> Result<(), LogFailure> {
        let me = self.config.node_id;
        self.quorum = QuorumState {
            epoch: self.quorum.epoch + 1,
            voted_for: Some(me),
            leader: None,
        };
        self.persist();
        let mut granted = BTreeSet::new();
        granted.insert(me);
        self.state = State::Candidate {
            granted,
            rejected: BTreeSet::new(),
            deadline_ms: now_ms + self.random_election_timeout(),
        };
        let (last_epoch, end_offset) = self.log_position();
        self.broadcast_to_voters(Message::VoteRequest {
            epoch: self.quorum.epoch,
            candidate: me,
            last_epoch,
            end_offset,
            pre_vote: false,
        });
        self.maybe_win_election(now_ms)
    }

    fn maybe_win_election(&mut self, now_ms: u64) -> Result<(), LogFailure> {
        if let State::Candidate { granted, .. } = &self.state {
            if granted.len() >= self.majority() {
                return self.become_leader(now_ms);
            }
        }
        Ok(())
    }

    fn become_leader(&mut self, now_ms: u64) -> Result<(), LogFailure> {
        let me = self.config.node_id;
        assert_eq!(self.quorum.voted_for, Some(me), "a leader voted for itself");
        self.quorum.leader = Some(me);
        self.persist();
        let epoch_start_offset = self.log.end_offset();
        let replicas = self
            .config
            .voters
            .iter()
            .filter(|v| **v != me)
            .map(|v| {
                (
                    *v,
                    Progress {
                        fetch_offset: 0,
                        last_fetch_ms: None,
                        last_sent_hw: 0,
                        last_begin_epoch_ms: Some(now_ms),
                    },
                )
            })
            .collect();
        self.state = State::Leader {
            epoch_start_offset,
            since_ms: now_ms,
            replicas,
            parked: BTreeMap::new(),
        };
        self.append_as_leader(LEADER_CHANGE.to_vec())?;
        self.broadcast_to_voters(Message::BeginQuorumEpoch {
            epoch: self.quorum.epoch,
            leader: me,
        });
        Ok(())
    }

    fn append_as_leader(&mut self, data: Vec<u8>) -> Result<u64, LogFailure> {
        let offset = self.log.end_offset();
        let entry = Entry {
            offset,
            epoch: self.quorum.epoch,
            data,
        };
        self.log.append(std::slice::from_ref(&entry))?;
        self.ready.flush_log = true;
        Ok(offset)
    }

    // ---- inputs ------------------------------------------------------------------------

    /// Appends `data` as the leader. Returns its offset; it is committed once the high
    /// watermark passes it.
    pub fn propose(&mut self, data: Vec<u8>, now_ms: u64) -> Result<u64, ProposeError> {
        if !matches!(self.state, State::Leader { .. }) {
            return Err(ProposeError::NotLeader {
                leader: self.quorum.leader,
                epoch: self.quorum.epoch,
            });
        }
        let offset = self.append_as_leader(data)?;
        self.answer_parked(now_ms, true);
        Ok(offset)
    }

    /// The shell made the log durable up to `offset`.
    pub fn on_log_flushed(&mut self, offset: u64, now_ms: u64) {
        self.flushed_offset = self.flushed_offset.max(offset.min(self.log.end_offset()));
        if matches!(self.state, State::Leader { .. }) {
            self.maybe_advance_high_watermark(now_ms);
        } else {
            self.maybe_send_fetch(now_ms);
        }
    }

    /// Stores a snapshot of the state machine holding every entry below `end_offset`, which
    /// must be committed and held in the log; the log may then drop the entries it covers.
    pub fn create_snapshot(
        &mut self,
        end_offset: u64,
        bytes: &[u8],
    ) -> Result<SnapshotId, SnapshotError> {
        let start = self.log.start_offset();
        let out_of_range = SnapshotError::OutOfRange {
            end_offset,
            start,
            high_watermark: self.high_watermark,
        };
        if end_offset > self.high_watermark || end_offset > self.flushed_offset {
            return Err(out_of_range);
        }
        let epoch = if end_offset > start {
            match self.log.read(end_offset - 1, 1).first() {
                Some(e) if e.offset == end_offset - 1 => e.epoch,
                _ => return Err(out_of_range),
            }
        } else {
            match self.log.latest_snapshot() {
                Some(s) if s.end_offset == end_offset => return Ok(s),
                _ => return Err(out_of_range),
            }
        };
        let id = SnapshotId { end_offset, epoch };
        self.log.store_snapshot(id, bytes)?;
        assert!(
            self.log.start_offset() <= end_offset,
            "the log dropped entries past its snapshot"
        );
        Ok(id)
    }
    /// Time passes.
    pub fn tick(&mut self, now_ms: u64) -> Result<(), LogFailure> {
        let voter = self.is_voter();
        match &mut self.state {
            State::Unattached {
                election_deadline_ms,
                probe_sent_ms,
            } => {
                if voter && now_ms >= *election_deadline_ms {
                    return self.become_prospective(now_ms);
                }
                // An observer looks for the leader by asking a voter (a non-leader answers with a
                // hint). Voters do not: they wait to be told (BeginQuorumEpoch) or elect. Taking
                // hints from other followers would let a dead leader recruit followers forever.
                let retry_ms = self.config.fetch_max_wait_ms * 2;
                if !voter && probe_sent_ms.is_none_or(|t| now_ms >= t + retry_ms) {
                    *probe_sent_ms = Some(now_ms);
                    let others: Vec<NodeId> = self
                        .config
                        .voters
                        .iter()
                        .copied()
                        .filter(|v| *v != self.config.node_id)
                        .collect();
                    if !others.is_empty() {
                        let to = others[self.rng.gen_range(0..others.len())];
                        let message = self.fetch_request();
                        self.send(to, message);
                    }
                }
            }
            State::Prospective { deadline_ms, .. } | State::Candidate { deadline_ms, .. } => {
                if now_ms >= *deadline_ms {
                    // No decision in time: try again, with a pre-vote first.
                    return self.become_prospective(now_ms);
                }
            }
            State::Follower {
                fetch_deadline_ms,
                fetch_sent_ms,
                ..
            } => {
                if now_ms >= *fetch_deadline_ms {
                    if voter {
                        return self.become_prospective(now_ms);
                    }
                    let epoch = self.quorum.epoch;
                    self.become_unattached(epoch, now_ms);
                    return Ok(());
                }
                // A fetch (or its answer) that got lost is sent again.
                if fetch_sent_ms.is_some_and(|t| now_ms >= t + 2 * self.config.fetch_max_wait_ms) {
                    *fetch_sent_ms = None;
                }
                self.maybe_send_fetch(now_ms);
            }
            State::Leader { .. } => {
                self.answer_parked(now_ms, false);
                self.resend_begin_quorum_epoch(now_ms);
                if !self.check_quorum(now_ms) {
                    self.resign(now_ms);
                }
            }
        }
        Ok(())
    }

    /// Handles a message from `from`.
    pub fn step(&mut self, from: NodeId, message: Message, now_ms: u64) -> Result<(), LogFailure> {
        match message {
            Message::VoteRequest {
                epoch,
                candidate,
                last_epoch,
                end_offset,
                pre_vote,
            } => {
                self.on_vote_request(
                    from,
                    epoch,
                    candidate,
                    (last_epoch, end_offset),
                    pre_vote,
                    now_ms,
                );
                Ok(())
            }
            Message::VoteResponse {
                epoch,
                granted,
                pre_vote,
                leader,
                ..
            } => self.on_vote_response(from, epoch, granted, pre_vote, leader, now_ms),
            Message::BeginQuorumEpoch { epoch, leader } => {
                let error = if epoch < self.quorum.epoch {
                    Some(RaftError::FencedLeaderEpoch)
                } else if !self.config.voters.contains(&leader) || leader == self.config.node_id {
                    Some(RaftError::InconsistentVoterSet)
                } else {
                    if !(matches!(self.state, State::Follower { leader: l, .. } if l == leader)
                        && epoch == self.quorum.epoch)
                    {
                        self.become_follower(epoch, leader, now_ms);
                    }
                    None
                };
                let epoch = self.quorum.epoch;
                self.send(from, Message::BeginQuorumEpochResponse { epoch, error });
                Ok(())
            }
            Message::EndQuorumEpoch {
                epoch,
                leader,
                preferred_successors,
            } => {
                let error = if epoch < self.quorum.epoch {
                    Some(RaftError::FencedLeaderEpoch)
                } else {
                    if epoch > self.quorum.epoch {
                        self.become_unattached(epoch, now_ms);
                    }
                    let following = matches!(self.state, State::Follower { leader: l, .. } if l == leader)
                        || (matches!(self.state, State::Unattached { .. })
                            && epoch == self.quorum.epoch);
                    if following && self.is_voter() {
                        // Elect soon: at once if named a successor, else after a short wait.
                        let wait = if preferred_successors.contains(&self.config.node_id) {
                            0
                        } else {
                            self.rng
                                .gen_range(0..self.config.election_timeout_ms.max(1))
                        };
                        self.state = State::Unattached {
                            election_deadline_ms: now_ms + wait,
                            probe_sent_ms: None,
                        };
                    }
                    None
                };
                let epoch = self.quorum.epoch;
                self.send(from, Message::EndQuorumEpochResponse { epoch, error });
                Ok(())
            }
            Message::BeginQuorumEpochResponse { epoch, .. }
            | Message::EndQuorumEpochResponse { epoch, .. } => {
                if epoch > self.quorum.epoch {
                    self.become_unattached(epoch, now_ms);
                }
                Ok(())
            }
            Message::FetchRequest {
                epoch,
                replica,
                fetch_offset,
                last_fetched_epoch,
            } => {
                self.on_fetch_request(
                    from,
                    epoch,
                    replica,
                    fetch_offset,
                    last_fetched_epoch,
                    now_ms,
                );
                Ok(())
            }
            message @ Message::FetchResponse { .. } => {
                self.on_fetch_response(from, message, now_ms)
            }
            Message::FetchSnapshotRequest {
                epoch,
                replica,
                snapshot,
                position,
            } => {
                self.on_fetch_snapshot_request(from, epoch, replica, snapshot, position, now_ms);
                Ok(())
            }
            message @ Message::FetchSnapshotResponse { .. } => {
                self.on_fetch_snapshot_response(from, message, now_ms)
            }
        }
    }

    fn on_vote_request(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        candidate: NodeId,
        candidate_log: (Epoch, u64),
        pre_vote: bool,
        now_ms: u64,
    ) {
        let reply = |node: &Self, granted: bool, error: Option<RaftError>| Message::VoteResponse {
            epoch: node.quorum.epoch,
            granted,
            pre_vote,
            leader: node.leader_hint(),
            error,
        };
        if !self.config.voters.contains(&candidate) || !self.is_voter() {
            let r = reply(self, false, Some(RaftError::InconsistentVoterSet));
            self.send(from, r);
            return;
        }
        let up_to_date = candidate_log >= self.log_position();
        if pre_vote {
            // KIP-996: nobody changes epoch or records anything for a pre-vote. Refuse while a
            // leader is alive, so a node that was cut off cannot disrupt a working quorum.
            let leader_alive = match &self.state {
                State::Leader { .. } => true,
                State::Follower {
                    fetch_deadline_ms, ..
                } => now_ms < *fetch_deadline_ms,
                _ => false,
            };
            let epoch_ok = epoch > self.quorum.epoch
                || (epoch == self.quorum.epoch
                    && self.quorum.leader.is_none()
                    && self.quorum.voted_for.is_none_or(|v| v == candidate));
            let granted = up_to_date && !leader_alive && epoch_ok;
            let r = reply(self, granted, None);
            self.send(from, r);
            return;
        }
        if epoch < self.quorum.epoch {
            let r = reply(self, false, Some(RaftError::FencedLeaderEpoch));
            self.send(from, r);
            return;
        }
        if epoch > self.quorum.epoch {
            self.become_unattached(epoch, now_ms);
        }
        let free =
            self.quorum.leader.is_none() && self.quorum.voted_for.is_none_or(|v| v == candidate);
        let granted = up_to_date && free;
        if granted && self.quorum.voted_for != Some(candidate) {
            self.quorum.voted_for = Some(candidate);
            // The vote goes to disk before the answer goes out (the shell persists first).
            if !(cfg!(any(test, feature = "planted-bugs")) && self.config.bugs.vote_not_persisted) {
                self.persist();
            }
            if let State::Unattached {
                election_deadline_ms,
                ..
            } = &mut self.state
            {
                *election_deadline_ms = now_ms + self.config.election_timeout_ms;
            }
        }
        let r = reply(self, granted, None);
        self.send(from, r);
    }

    fn on_vote_response(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        granted: bool,
        pre_vote: bool,
        leader: Option<NodeId>,
        now_ms: u64,
    ) -> Result<(), LogFailure> {
        if epoch > self.quorum.epoch {
            match leader {
                Some(l) if l != self.config.node_id && self.config.voters.contains(&l) => {
                    self.become_follower(epoch, l, now_ms)
                }
                _ => self.become_unattached(epoch, now_ms),
            }
            return Ok(());
        }
        match &mut self.state {
            State::Prospective {
                granted: g,
                rejected,
                lost_leader,
                ..
            } if pre_vote => {
                if granted {
                    g.insert(from);
                } else {
                    rejected.insert(from);
                    // A voter that follows a live leader of our own epoch points us to it.
                    let lost = *lost_leader;
                    let me = self.config.node_id;
                    if let Some(l) = leader
                        .filter(|l| *l != me && epoch == self.quorum.epoch && Some(*l) != lost)
                    {
                        self.become_follower(epoch, l, now_ms);
                        return Ok(());
                    }
                }
                self.maybe_win_pre_vote(now_ms)
            }
            State::Candidate {
                granted: g,
                rejected,
                ..
            } if !pre_vote && epoch == self.quorum.epoch => {
                if granted {
                    g.insert(from);
                } else {
                    rejected.insert(from);
                }
                self.maybe_win_election(now_ms)
            }
            _ => Ok(()),
        }
    }

    fn fetch_request(&self) -> Message {
        Message::FetchRequest {
            epoch: self.quorum.epoch,
            replica: self.config.node_id,
            fetch_offset: self.log.end_offset(),
            last_fetched_epoch: self.log.last_epoch(),
        }
    }

    /// A follower fetches when it has none in flight and its log is durable to its end; while
    /// it downloads a snapshot, it fetches the next chunk instead.
    fn maybe_send_fetch(&mut self, now_ms: u64) {
        let durable = self.flushed_offset >= self.log.end_offset();
        let mut message = self.fetch_request();
        let (epoch, me) = (self.quorum.epoch, self.config.node_id);
        if let State::Follower {
            leader,
            fetch_sent_ms,
            download,
            ..
        } = &mut self.state
        {
            if let Some(d) = download {
                message = Message::FetchSnapshotRequest {
                    epoch,
                    replica: me,
                    snapshot: d.id,
                    position: d.bytes.len() as u64,
                };
            }
            if fetch_sent_ms.is_none() && durable {
                *fetch_sent_ms = Some(now_ms);
                let to = *leader;
                self.send(to, message);
            }
        }
    }

    fn fetch_error(&self, error: RaftError, answers: (u64, Epoch)) -> Message {
        Message::FetchResponse {
            epoch: self.quorum.epoch,
            answers,
            leader: self.leader_hint(),
            high_watermark: self.high_watermark,
            entries: Vec::new(),
            diverging: None,
            snapshot: None,
            error: Some(error),
        }
    }
    /// The leader's answer to a fetch it accepted: entries from `fetch_offset`, or the latest
    /// snapshot if the log no longer holds that offset.
    fn fetch_answer(&self, fetch_offset: u64, last_fetched_epoch: Epoch, hw: u64) -> Message {
        let below_start = fetch_offset < self.log.start_offset();
        let entries = if below_start {
            Vec::new()
        } else {
            self.log.read(fetch_offset, self.config.max_fetch_entries)
        };
        Message::FetchResponse {
            epoch: self.quorum.epoch,
            answers: (fetch_offset, last_fetched_epoch),
            leader: Some(self.config.node_id),
            high_watermark: hw,
            entries,
            diverging: None,
            snapshot: if below_start {
                self.log.latest_snapshot()
            } else {
                None
            },
            error: None,
        }
    }

    fn on_fetch_request(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        replica: NodeId,
        fetch_offset: u64,
        last_fetched_epoch: Epoch,
        now_ms: u64,
    ) {
        if !matches!(self.state, State::Leader { .. }) {
            let error = if epoch < self.quorum.epoch {
                RaftError::FencedLeaderEpoch
            } else if epoch > self.quorum.epoch {
                RaftError::UnknownLeaderEpoch
            } else {
                RaftError::NotLeaderOrFollower
            };
            let r = self.fetch_error(error, (fetch_offset, last_fetched_epoch));
            self.send(from, r);
            return;
        }
        if epoch != self.quorum.epoch {
            let error = if epoch < self.quorum.epoch {
                RaftError::FencedLeaderEpoch
            } else {
                RaftError::UnknownLeaderEpoch
            };
            let r = self.fetch_error(error, (fetch_offset, last_fetched_epoch));
            self.send(from, r);
            return;
        }
        // Log matching: the fetcher's last epoch must end where ours does, or later.
        let start = self.log.start_offset();
        let snapshot = self.log.latest_snapshot();
        let (our_epoch, our_end) = self.log.end_offset_for_epoch(last_fetched_epoch);
        let diverged = fetch_offset > self.log.end_offset()
            || (fetch_offset > 0 && (our_epoch != last_fetched_epoch || our_end < fetch_offset));
        // Only the snapshot can bring up a fetcher whose offset the log no longer holds, or
        // whose log diverges below what the log still knows of epochs (KIP-630).
        let needs_snapshot = start > 0
            && (fetch_offset < start
                || (diverged && (our_epoch == 0 || our_end < start))
                || (fetch_offset == start
                    && snapshot
                        .is_none_or(|s| s.end_offset != start || s.epoch != last_fetched_epoch)));
        if needs_snapshot && snapshot.is_some() {
            let r = Message::FetchResponse {
                epoch: self.quorum.epoch,
                answers: (fetch_offset, last_fetched_epoch),
                leader: Some(self.config.node_id),
                high_watermark: self.high_watermark,
                entries: Vec::new(),
                diverging: None,
                snapshot,
                error: None,
            };
            self.note_fetch(replica, now_ms);
            self.send(from, r);
            return;
        }
        if diverged {
            let r = Message::FetchResponse {
                epoch: self.quorum.epoch,
                answers: (fetch_offset, last_fetched_epoch),
                leader: Some(self.config.node_id),
                high_watermark: self.high_watermark,
                entries: Vec::new(),
                diverging: Some((our_epoch, our_end)),
                snapshot: None,
                error: None,
            };
            self.send(from, r);
            return;
        }
        self.note_fetch(replica, now_ms);
        if let State::Leader {
            replicas, parked, ..
        } = &mut self.state
        {
            if let Some(progress) = replicas.get_mut(&replica) {
                progress.fetch_offset = fetch_offset;
            }
            let replaced = parked.insert(
                replica,
                Parked {
                    fetch_offset,
                    last_fetched_epoch,
                    deadline_ms: now_ms + self.config.fetch_max_wait_ms,
                },
            );
            // Every fetch gets exactly one answer: the shell pairs answers with requests in
            // order, so silently replacing a held fetch would hand this fetch's answer to the
            // older request (whose sender may have given up) — and every later one too (found
            // by the quorum simulation: an observer never caught up again).
            if let Some(old) = replaced {
                let hw = self.high_watermark;
                if let Some(progress) = replicas.get_mut(&replica) {
                    progress.last_sent_hw = hw;
                }
                let m = self.fetch_answer(old.fetch_offset, old.last_fetched_epoch, hw);
                self.send(replica, m);
            }
        }
        self.maybe_advance_high_watermark(now_ms);
        self.answer_parked(now_ms, false);
    }

    /// Answers held fetches that now have something to say (new entries, a new high
    /// watermark), or whose wait is over; with `all`, every one with new entries.
    fn answer_parked(&mut self, now_ms: u64, _all: bool) {
        let end = self.log.end_offset();
        let hw = self.high_watermark;
        let State::Leader {
            replicas, parked, ..
        } = &mut self.state
        else {
            return;
        };
        let due: Vec<NodeId> = parked
            .iter()
            .filter(|(r, p)| {
                let sent_hw = replicas.get(r).map_or(0, |x| x.last_sent_hw);
                p.fetch_offset < end || sent_hw != hw || now_ms >= p.deadline_ms
            })
            .map(|(r, _)| *r)
            .collect();
        let mut answers = Vec::new();
        for r in due {
            let Some(p) = parked.remove(&r) else { continue };
            if let Some(progress) = replicas.get_mut(&r) {
                progress.last_sent_hw = hw;
            }
            answers.push((r, p.fetch_offset, p.last_fetched_epoch));
        }
        for (r, fetch_offset, last_fetched_epoch) in answers {
            let m = self.fetch_answer(fetch_offset, last_fetched_epoch, hw);
            self.send(r, m);
        }
    }
    /// A replica was heard from: it counts for check-quorum.
    fn note_fetch(&mut self, replica: NodeId, now_ms: u64) {
        if let State::Leader { replicas, .. } = &mut self.state {
            let progress = replicas.entry(replica).or_insert(Progress {
                fetch_offset: 0,
                last_fetch_ms: None,
                last_sent_hw: 0,
                last_begin_epoch_ms: None,
            });
            progress.last_fetch_ms = Some(now_ms);
        }
    }
    fn on_fetch_snapshot_request(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        replica: NodeId,
        snapshot: SnapshotId,
        position: u64,
        now_ms: u64,
    ) {
        let is_leader = matches!(self.state, State::Leader { .. });
        let error = if epoch < self.quorum.epoch {
            Some(RaftError::FencedLeaderEpoch)
        } else if epoch > self.quorum.epoch {
            Some(RaftError::UnknownLeaderEpoch)
        } else if !is_leader {
            Some(RaftError::NotLeaderOrFollower)
        } else {
            None
        };
        let chunk =
            self.log
                .read_snapshot(snapshot, position, self.config.max_snapshot_chunk_bytes);
        let (error, size, bytes) = match (error, chunk) {
            (Some(e), _) => (Some(e), 0, Vec::new()),
            (None, None) => (Some(RaftError::SnapshotNotFound), 0, Vec::new()),
            (None, Some((_, size))) if position > size => {
                (Some(RaftError::PositionOutOfRange), size, Vec::new())
            }
            (None, Some((bytes, size))) => (None, size, bytes),
        };
        if error.is_none() {
            self.note_fetch(replica, now_ms);
        }
        let m = Message::FetchSnapshotResponse {
            epoch: self.quorum.epoch,
            leader: self.leader_hint(),
            snapshot,
            size,
            position,
            bytes,
            error,
        };
        self.send(from, m);
    }
    /// An answer from a newer epoch: follow the leader it names, if that can be a leader here,
    /// else wait unattached in that epoch.
    fn enter_newer_epoch(&mut self, epoch: Epoch, leader: Option<NodeId>, now_ms: u64) {
        let me = self.config.node_id;
        match leader.filter(|l| *l != me && self.config.voters.contains(l)) {
            Some(l) => self.become_follower(epoch, l, now_ms),
            None => self.become_unattached(epoch, now_ms),
        }
    }
    fn on_fetch_snapshot_response(
        &mut self,
        from: NodeId,
        message: Message,
        now_ms: u64,
    ) -> Result<(), LogFailure> {
        let Message::FetchSnapshotResponse {
            epoch,
            leader,
            snapshot,
            size,
            position,
            bytes,
            error,
        } = message
        else {
            return Ok(());
        };
        if epoch > self.quorum.epoch {
            self.enter_newer_epoch(epoch, leader, now_ms);
            return Ok(());
        }
        let State::Follower {
            leader: following,
            fetch_deadline_ms,
            fetch_sent_ms,
            download,
        } = &mut self.state
        else {
            return Ok(());
        };
        if epoch < self.quorum.epoch || *following != from {
            return Ok(());
        }
        let Some(d) = download else {
            return Ok(());
        };
        if d.id != snapshot || d.bytes.len() as u64 != position {
            return Ok(()); // an answer to an older request
        }
        *fetch_sent_ms = None;
        if error.is_some() {
            // The leader moved on to a newer snapshot (or lost it): fetch again to learn which.
            *download = None;
            self.maybe_send_fetch(now_ms);
            return Ok(());
        }
        *fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms;
        d.bytes.extend_from_slice(&bytes);
        let total = d.bytes.len() as u64;
        if total > size || (bytes.is_empty() && total < size) {
            // A leader that sends more than the size it states, or nothing before the end,
            // cannot be followed chunk by chunk: start the download over.
            *download = None;
        } else if total == size {
            let Some(d) = download.take() else {
                return Ok(());
            };
            assert!(
                d.id.end_offset >= self.high_watermark,
                "a snapshot at {} would take the high watermark back from {}",
                d.id.end_offset,
                self.high_watermark
            );
            self.log.install_snapshot(d.id, &d.bytes)?;
            self.flushed_offset = d.id.end_offset;
            self.high_watermark = d.id.end_offset;
            self.ready.snapshot_installed = Some(d.id);
        }
        self.maybe_send_fetch(now_ms);
        Ok(())
    }

    fn on_fetch_response(
        &mut self,
        from: NodeId,
        message: Message,
        now_ms: u64,
    ) -> Result<(), LogFailure> {
        let Message::FetchResponse {
            epoch,
            answers,
            leader,
            high_watermark,
            entries,
            diverging,
            snapshot,
            error,
        } = message
        else {
            return Ok(());
        };
        let me = self.config.node_id;
        let voters = self.config.voters.clone();
        let valid_leader = |l: NodeId| l != me && voters.contains(&l);
        if epoch > self.quorum.epoch {
            self.enter_newer_epoch(epoch, leader, now_ms);
            if error.is_some() || leader != Some(from) {
                return Ok(());
            }
        } else if epoch < self.quorum.epoch {
            return Ok(()); // stale
        }
        if error.is_some() {
            match (&self.state, leader.filter(|l| valid_leader(*l))) {
                (State::Follower { leader: l, .. }, Some(hint)) if *l == hint => {
                    if let State::Follower { fetch_sent_ms, .. } = &mut self.state {
                        *fetch_sent_ms = None;
                    }
                }
                (State::Leader { .. } | State::Candidate { .. }, _) => {}
                (_, Some(hint)) if self.quorum.leader.is_none_or(|l| l == hint) => {
                    self.become_follower(epoch, hint, now_ms);
                }
                _ => {
                    if let State::Follower { fetch_sent_ms, .. } = &mut self.state {
                        *fetch_sent_ms = None;
                    }
                }
            }
            return Ok(());
        }
        // A good answer from the leader of our epoch, to the fetch this node has out: an answer
        // to an older fetch (the log has moved since) says nothing about the log as it is.
        if leader != Some(from) || !valid_leader(from) {
            return Ok(());
        }
        if answers != (self.log.end_offset(), self.log.last_epoch()) {
            return Ok(());
        }
        match &self.state {
            State::Follower { leader: l, .. } if *l == from => {}
            State::Unattached { .. } | State::Prospective { .. }
                if self.quorum.leader.is_none_or(|l| l == from) =>
            {
                self.become_follower(epoch, from, now_ms);
            }
            _ => return Ok(()),
        }
        if let State::Follower {
            fetch_deadline_ms,
            fetch_sent_ms,
            ..
        } = &mut self.state
        {
            *fetch_deadline_ms = now_ms + self.config.fetch_timeout_ms;
            *fetch_sent_ms = None;
        }
        if let Some(id) = snapshot {
            // Nothing of this log was matched against the leader's: its high watermark says
            // nothing about these entries (found by the simulation: a follower took it over
            // entries of an old epoch).
            if let State::Follower { download, .. } = &mut self.state {
                *download = Some(SnapshotDownload {
                    id,
                    bytes: Vec::new(),
                });
            }
            self.maybe_send_fetch(now_ms);
            return Ok(());
        } else if let Some((div_epoch, div_end)) = diverging {
            let (_, our_end) = self.log.end_offset_for_epoch(div_epoch);
            let truncate_to = div_end.min(our_end).min(self.log.end_offset());
            assert!(
                truncate_to >= self.high_watermark,
                "truncation to {truncate_to} below the high watermark {}",
                self.high_watermark
            );
            self.log.truncate_to(truncate_to)?;
            self.flushed_offset = self.flushed_offset.min(truncate_to);
            // The truncation point only bounds the common prefix from above: what is left may
            // still differ from the leader's log (an older epoch's entries), so the leader's
            // high watermark says nothing about it until a fetch from here is accepted (found
            // by the simulation, seed 8131: a follower took entries of a dead epoch as
            // committed).
            self.maybe_send_fetch(now_ms);
            return Ok(());
        } else if let Some(first) = entries.first() {
            if first.offset == self.log.end_offset() {
                self.log.append(&entries)?;
                self.ready.flush_log = true;
            }
        }
        // The leader accepted this fetch's position, so the log matches the leader's up to its
        // end: the leader's high watermark holds for it.
        let hw = high_watermark.min(self.log.end_offset());
        if hw > self.high_watermark {
            self.high_watermark = hw;
        }
        self.maybe_send_fetch(now_ms);
        Ok(())
    }

    fn maybe_advance_high_watermark(&mut self, now_ms: u64) {
        let me = self.config.node_id;
        let flushed = self.flushed_offset;
        let majority = self.majority();
        let State::Leader {
            epoch_start_offset,
            replicas,
            ..
        } = &self.state
        else {
            return;
        };
        let mut offsets: Vec<u64> = self
            .config
            .voters
            .iter()
            .map(|v| {
                if *v == me {
                    flushed
                } else {
                    replicas.get(v).map_or(0, |p| p.fetch_offset)
                }
            })
            .collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = offsets.get(majority - 1) else {
            return;
        };
        // Only an entry of this epoch may be committed by counting replicas (Raft §5.4.2);
        // older entries are committed with it.
        let covers_own_epoch = candidate > *epoch_start_offset;
        let stale_bug =
            cfg!(any(test, feature = "planted-bugs")) && self.config.bugs.hw_on_stale_epoch;
        if candidate > self.high_watermark && (covers_own_epoch || stale_bug) {
            self.high_watermark = candidate;
            self.answer_parked(now_ms, false);
        }
    }

    fn resend_begin_quorum_epoch(&mut self, now_ms: u64) {
        let interval = self.config.election_timeout_ms;
        let epoch = self.quorum.epoch;
        let me = self.config.node_id;
        let State::Leader { replicas, .. } = &mut self.state else {
            return;
        };
        let mut to = Vec::new();
        for (id, p) in replicas.iter_mut() {
            let silent = p.last_fetch_ms.is_none_or(|t| now_ms >= t + interval);
            let due = p.last_begin_epoch_ms.is_none_or(|t| now_ms >= t + interval);
            if silent && due && self.config.voters.contains(id) {
                p.last_begin_epoch_ms = Some(now_ms);
                to.push(*id);
            }
        }
        for id in to {
            self.send(id, Message::BeginQuorumEpoch { epoch, leader: me });
        }
    }

    /// Whether a majority of voters (counting this leader) fetched within the fetch timeout.
    fn check_quorum(&self, now_ms: u64) -> bool {
        let State::Leader {
            since_ms, replicas, ..
        } = &self.state
        else {
            return true;
        };
        if now_ms < since_ms + self.config.fetch_timeout_ms {
            return true;
        }
        let recent = replicas
            .iter()
            .filter(|(id, p)| {
                self.config.voters.contains(id)
                    && p.last_fetch_ms
                        .is_some_and(|t| now_ms < t + self.config.fetch_timeout_ms)
            })
            .count();
        recent + 1 >= self.majority()
    }

    fn resign(&mut self, now_ms: u64) {
        let epoch = self.quorum.epoch;
        let me = self.config.node_id;
        self.broadcast_to_voters(Message::EndQuorumEpoch {
            epoch,
            leader: me,
            preferred_successors: Vec::new(),
        });
        // Still epoch `epoch`, in which this node voted for itself: it cannot vote again here.
        self.state = State::Unattached {
            election_deadline_ms: now_ms + self.random_election_timeout(),
            probe_sent_ms: None,
        };
    }
}
