//! A partition leader's view of its replicas (Kafka's `Partition` + `Replica` state on the
//! leader): each follower's log end offset as its fetches report it and when it last caught up,
//! the in-sync replica set, and the high watermark. Sans-IO: offsets and times come in, ISR
//! changes to propose come out; the shell sends them to the controller (AlterPartition, KIP-497)
//! and reports back what the controller decided.
//!
//! Rules:
//! - The high watermark is the smallest log end offset over the ISR, including the leader's own
//!   (its durable end when the log fsyncs before acknowledging). It never moves backwards and
//!   never passes the leader's log end.
//! - KIP-966 strict min-ISR: it does not advance while the ISR is smaller than
//!   `min.insync.replicas`, so an acks=all write is never acknowledged with fewer copies.
//! - While an ISR change is in flight the "maximal" ISR (the committed one together with what
//!   is proposed) counts for the high watermark, as Kafka does: a shrink does not let it move
//!   before the controller agrees, an expansion waits for the new member too.
//! - A follower is caught up when a fetch asks for an offset at or past the leader's log end as
//!   of its previous fetch (Kafka's `lastCaughtUpTimeMs`). One that has not caught up for
//!   `replica.lag.time.max.ms` leaves the ISR; one outside it whose log end reaches the high
//!   watermark (and this leader's epoch start) joins again.

use std::collections::BTreeMap;

/// What the leader knows of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The follower's log end offset (its last fetch offset); `None` before any fetch.
    pub log_end: Option<u64>,
    /// When the follower last caught up (monotonic ms).
    pub last_caught_up_ms: u64,
    /// The leader's log end when the follower last fetched (what the next fetch must reach).
    pub leader_end_at_last_fetch: u64,
    pub last_fetch_ms: Option<u64>,
    /// The follower's log start offset as its fetches report it; `None` before any.
    pub log_start: Option<u64>,
}

/// What became of an ISR change sent to the controller, as the shell reads its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IsrAnswer {
    /// Committed: the partition's ISR at `partition_epoch`.
    Committed { isr: Vec<i32>, partition_epoch: i32 },
    /// Refused, with nothing applied at this leader's partition epoch (INELIGIBLE_REPLICA,
    /// OPERATION_NOT_ATTEMPTED): [`LeaderState::on_isr_change_failed`].
    NotApplied,
    /// Refused because the partition moved on: [`LeaderState::on_isr_change_stale`].
    Stale,
    /// No answer (or NOT_CONTROLLER, or an error that may pass): [`LeaderState::on_isr_change_lost`].
    Lost,
}

/// An ISR change waiting for the controller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingIsr {
    pub isr: Vec<i32>,
    /// The partition epoch it was proposed against.
    pub partition_epoch: i32,
}

#[derive(Clone, Debug)]
pub struct LeaderState {
    node_id: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
    pending: Option<PendingIsr>,
    /// The proposal in flight got no answer: it may have been committed, so it stays pending
    /// (the high watermark keeps counting the ISR it adds) and is sent again.
    resend_pending: bool,
    followers: BTreeMap<i32, FollowerProgress>,
    /// This leader's own log end as counted for the high watermark.
    leader_end: u64,
    /// The offset this leader's epoch starts at: a follower joining the ISR must reach it.
    epoch_start: u64,
    high_watermark: u64,
    min_isr: usize,
    lag_max_ms: u64,
    /// Planted bug (simulator only): the high watermark follows the fastest follower.
    hw_from_non_isr: bool,
}

impl LeaderState {
    /// Takes over at `leader_epoch` with the log ending at `log_end` and the high watermark the
    /// replica had (it only grows from there). Followers in the ISR count as caught up now.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node_id: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        log_end: u64,
        high_watermark: u64,
        min_isr: usize,
        lag_max_ms: u64,
        now_ms: u64,
    ) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|r| **r != node_id)
            .map(|r| {
                (
                    *r,
                    FollowerProgress {
                        log_end: None,
                        last_caught_up_ms: if isr.contains(r) { now_ms } else { 0 },
                        leader_end_at_last_fetch: log_end,
                        last_fetch_ms: None,
                        log_start: None,
                    },
                )
            })
            .collect();
        let mut state = LeaderState {
            node_id,
            leader_epoch,
            partition_epoch,
            replicas,
            isr,
            pending: None,
            resend_pending: false,
            followers,
            leader_end: log_end,
            epoch_start: log_end,
            high_watermark: high_watermark.min(log_end),
            min_isr: min_isr.max(1),
            lag_max_ms,
            hw_from_non_isr: false,
        };
        state.advance_high_watermark();
        state
    }

    /// Plants the `hw-from-non-isr` bug (the caller checks the `planted-bugs` feature).
    pub fn plant_hw_from_non_isr(&mut self, on: bool) {
        self.hw_from_non_isr = on;
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    pub fn high_watermark(&self) -> u64 {
        self.high_watermark
    }

    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn replicas(&self) -> &[i32] {
        &self.replicas
    }

    pub fn pending(&self) -> Option<&PendingIsr> {
        self.pending.as_ref()
    }

    pub fn follower(&self, id: i32) -> Option<&FollowerProgress> {
        self.followers.get(&id)
    }

    pub fn min_isr(&self) -> usize {
        self.min_isr
    }

    /// New `min.insync.replicas` and `replica.lag.time.max.ms` (a config change). Returns
    /// whether the high watermark moved, which a lower `min.insync.replicas` can do.
    pub fn set_limits(&mut self, min_isr: usize, lag_max_ms: u64) -> bool {
        self.min_isr = min_isr.max(1);
        self.lag_max_ms = lag_max_ms;
        self.advance_high_watermark()
    }

    /// The committed ISR together with a proposal in flight: what the high watermark waits for.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut all = self.isr.clone();
        if let Some(p) = &self.pending {
            for r in &p.isr {
                if !all.contains(r) {
                    all.push(*r);
                }
            }
        }
        all
    }

    /// Whether an acks=all write may be appended now: the committed ISR is at least
    /// `min.insync.replicas` (NOT_ENOUGH_REPLICAS otherwise).
    pub fn enough_in_sync(&self) -> bool {
        self.isr.len() >= self.min_isr
    }

    fn log_end_of(&self, id: i32) -> u64 {
        if id == self.node_id {
            self.leader_end
        } else {
            self.followers.get(&id).and_then(|f| f.log_end).unwrap_or(0)
        }
    }

    /// Recomputes the high watermark; returns whether it moved.
    fn advance_high_watermark(&mut self) -> bool {
        let isr = self.maximal_isr();
        if isr.len() < self.min_isr || !isr.contains(&self.node_id) {
            return false;
        }
        let mut candidate = isr.iter().map(|r| self.log_end_of(*r)).min().unwrap_or(0);
        if self.hw_from_non_isr {
            // The planted bug: the fastest follower, in the ISR or not, is enough.
            let fastest = self
                .followers
                .values()
                .filter_map(|f| f.log_end)
                .max()
                .unwrap_or(0);
            candidate = candidate.max(fastest.min(self.leader_end));
        }
        assert!(
            candidate <= self.leader_end,
            "high watermark candidate beyond the leader's log end"
        );
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            true
        } else {
            false
        }
    }

    /// The leader's own log end grew (after the write, and the fsync if one is promised).
    /// Returns whether the high watermark moved.
    pub fn on_local_append(&mut self, log_end: u64) -> bool {
        if log_end > self.leader_end {
            self.leader_end = log_end;
        }
        self.advance_high_watermark()
    }

    /// A follower fetched at `fetch_offset` (its log end, durable as its config promises) while
    /// the leader's log ended at `leader_end`. Returns whether the high watermark moved.
    pub fn on_follower_fetch(
        &mut self,
        id: i32,
        fetch_offset: u64,
        leader_end: u64,
        now_ms: u64,
    ) -> bool {
        let Some(f) = self.followers.get_mut(&id) else {
            return false;
        };
        // A fetch at or past the leader's end (now, or as of the previous fetch) is caught up.
        if fetch_offset >= leader_end || fetch_offset >= f.leader_end_at_last_fetch {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        }
        f.leader_end_at_last_fetch = leader_end;
        f.last_fetch_ms = Some(now_ms);
        // A fetch offset beyond the leader's end is refused before it gets here.
        f.log_end = Some(fetch_offset.min(leader_end));
        self.advance_high_watermark()
    }

    /// A follower's fetch reported its log start offset. Returns whether it moved.
    pub fn on_follower_log_start(&mut self, replica: i32, log_start: u64) -> bool {
        match self.followers.get_mut(&replica) {
            Some(f) if f.log_start != Some(log_start) => {
                f.log_start = Some(log_start);
                true
            }
            _ => false,
        }
    }

    /// DeleteRecords' low watermark (Kafka's `lowWatermarkIfLeader`): the smallest log start
    /// over this leader (`own_log_start`) and every follower `live` says is alive, a follower
    /// that has reported none counting as 0 — a DeleteRecords waits until each live replica
    /// has moved its start.
    pub fn low_watermark(&self, own_log_start: u64, live: impl Fn(i32) -> bool) -> u64 {
        self.followers
            .iter()
            .filter(|(r, _)| live(**r))
            .map(|(_, f)| f.log_start.unwrap_or(0))
            .fold(own_log_start, u64::min)
    }

    /// The ISR change to propose now, if any (and none is in flight): followers that have not
    /// caught up for `replica.lag.time.max.ms` out, followers that reached the high watermark
    /// in. Marks it pending.
    pub fn propose_isr_change(&mut self, now_ms: u64) -> Option<PendingIsr> {
        if self.pending.is_some() {
            if std::mem::take(&mut self.resend_pending) {
                return self.pending.clone();
            }
            return None;
        }
        let mut isr = self.isr.clone();
        let lagging: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|r| *r != self.node_id)
            .filter(|r| {
                self.followers
                    .get(r)
                    .is_some_and(|f| now_ms.saturating_sub(f.last_caught_up_ms) > self.lag_max_ms)
            })
            .collect();
        isr.retain(|r| !lagging.contains(r));
        for (id, f) in &self.followers {
            let end = f.log_end.unwrap_or(0);
            let caught_up = now_ms.saturating_sub(f.last_caught_up_ms) <= self.lag_max_ms;
            if !isr.contains(id)
                && f.log_end.is_some()
                && end >= self.high_watermark
                && end >= self.epoch_start
                && caught_up
            {
                isr.push(*id);
            }
        }
        if isr == self.isr {
            return None;
        }
        isr.sort_unstable();
        let pending = PendingIsr {
            isr,
            partition_epoch: self.partition_epoch,
        };
        self.pending = Some(pending.clone());
        Some(pending)
    }

    /// The controller's answer or the image gave the partition's ISR at `partition_epoch`.
    /// A newer epoch replaces what this leader had; the proposal in flight ends either way.
    /// Returns whether the high watermark moved.
    pub fn on_isr_committed(&mut self, isr: Vec<i32>, partition_epoch: i32) -> bool {
        if partition_epoch < self.partition_epoch {
            return false;
        }
        if partition_epoch > self.partition_epoch
            || self.pending.as_ref().is_some_and(|p| p.isr == isr)
        {
            self.pending = None;
        }
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        self.advance_high_watermark()
    }

    /// The controller refused the proposal in flight and said it applied nothing at the
    /// partition epoch this leader has (INELIGIBLE_REPLICA, OPERATION_NOT_ATTEMPTED): forget it
    /// so the next check proposes anew, as Kafka resets to the last committed state only for
    /// these two answers.
    pub fn on_isr_change_failed(&mut self) {
        self.pending = None;
        self.resend_pending = false;
    }

    /// The controller refused the proposal in flight because the partition moved on (another
    /// leader epoch, another partition epoch, the topic gone). An earlier copy of this same
    /// proposal, whose answer was lost, may have been committed before it moved on, so the
    /// proposal stays pending (its ISR keeps counting for the high watermark) and is not sent
    /// again: the metadata image will bring the partition as it stands, which ends it
    /// ([`Self::on_isr_committed`] with a newer partition epoch) or this leadership. Forgetting
    /// it let a leader cut off from the controller advance the high watermark alone past a
    /// follower the controller had added and then elected (cluster simulation, seed 50378).
    pub fn on_isr_change_stale(&mut self) {
        self.resend_pending = false;
    }

    /// The proposal in flight got no answer: the controller may have committed it, so it is
    /// kept (and the ISR it would add kept counting for the high watermark) and sent again at
    /// the next check, as Kafka's leaders do (KIP-497). Forgetting it let a leader advance the
    /// high watermark past a follower the controller had in fact added to the ISR, which the
    /// controller later elected without those records (cluster simulation, seed 11928).
    pub fn on_isr_change_lost(&mut self) {
        if self.pending.is_some() {
            self.resend_pending = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn leader(isr: Vec<i32>, min_isr: usize) -> LeaderState {
        LeaderState::new(1, 5, 0, vec![1, 2, 3], isr, 0, 0, min_isr, 1000, 0)
    }

    #[test]
    fn an_unanswered_isr_expansion_stays_pending_and_is_sent_again() {
        // ISR [1]; replica 2 catches up and is proposed into the ISR.
        let mut l = leader(vec![1], 1);
        l.on_local_append(10);
        assert_eq!(l.high_watermark(), 10);
        l.on_follower_fetch(2, 10, 10, 1);
        let p = l.propose_isr_change(1).unwrap();
        assert_eq!(p.isr, vec![1, 2]);
        // The answer is lost: the controller may have added 2, so the high watermark still
        // waits for it, and the same proposal goes out again.
        l.on_isr_change_lost();
        l.on_local_append(20);
        assert_eq!(l.high_watermark(), 10, "replica 2 may be in the ISR");
        assert_eq!(l.propose_isr_change(2), Some(p.clone()));
        assert_eq!(l.propose_isr_change(3), None, "once per lost answer");
        // A refusal forgets it: then the committed ISR alone counts.
        l.on_isr_change_failed();
        assert_eq!(l.high_watermark(), 10);
        l.on_local_append(30);
        assert_eq!(l.high_watermark(), 30);
    }

    #[test]
    fn the_low_watermark_is_the_smallest_log_start_of_the_live_replicas() {
        let mut l = leader(vec![1, 2, 3], 1);
        assert_eq!(l.low_watermark(10, |_| true), 0, "no follower has reported");
        assert!(l.on_follower_log_start(2, 10));
        assert!(!l.on_follower_log_start(2, 10), "unchanged");
        assert_eq!(l.low_watermark(10, |_| true), 0, "replica 3 has not");
        assert!(l.on_follower_log_start(3, 7));
        assert_eq!(l.low_watermark(10, |_| true), 7);
        assert_eq!(
            l.low_watermark(10, |r| r != 3),
            10,
            "a dead replica does not count"
        );
        assert!(!l.on_follower_log_start(9, 1), "not a replica");
    }

    #[test]
    fn a_refusal_after_a_lost_answer_keeps_the_expansion_until_the_image_says() {
        // Replica 2 is proposed into ISR [1]; the answer is lost, and the resend is refused
        // because the partition moved on (NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH,
        // INVALID_UPDATE_VERSION): the first copy may have been committed.
        let mut l = leader(vec![1], 1);
        l.on_local_append(10);
        l.on_follower_fetch(2, 10, 10, 1);
        let p = l.propose_isr_change(1).unwrap();
        l.on_isr_change_lost();
        assert_eq!(l.propose_isr_change(2), Some(p));
        l.on_isr_change_stale();
        l.on_local_append(20);
        assert_eq!(l.high_watermark(), 10, "replica 2 may be in the ISR");
        assert_eq!(l.propose_isr_change(3), None, "not sent again");
        assert_eq!(l.maximal_isr(), vec![1, 2]);
        // The image brings the partition as the controller has it: the expansion was
        // committed, and replica 2 now counts as a member.
        assert!(!l.on_isr_committed(vec![1, 2], 1));
        assert!(l.pending().is_none());
        l.on_follower_fetch(2, 20, 20, 4);
        assert_eq!(l.high_watermark(), 20);
    }

    #[test]
    fn high_watermark_is_the_slowest_in_sync_replica() {
        let mut l = leader(vec![1, 2, 3], 2);
        l.on_local_append(10);
        assert_eq!(l.high_watermark(), 0);
        l.on_follower_fetch(2, 10, 10, 1);
        assert_eq!(l.high_watermark(), 0, "replica 3 has not fetched");
        l.on_follower_fetch(3, 4, 10, 1);
        assert_eq!(l.high_watermark(), 4);
        // Replica 3 lags past replica.lag.time.max.ms: out of the ISR once the controller
        // agrees; until then the high watermark still waits for it.
        l.on_follower_fetch(2, 10, 10, 1200);
        assert_eq!(l.propose_isr_change(900), None, "nobody lags yet");
        let p = l.propose_isr_change(1500).unwrap();
        assert_eq!(p.isr, vec![1, 2]);
        l.on_follower_fetch(2, 10, 10, 1500);
        assert_eq!(l.high_watermark(), 4);
        assert!(l.on_isr_committed(vec![1, 2], 1));
        assert_eq!(l.high_watermark(), 10);
        // It comes back once it reaches the high watermark.
        l.on_follower_fetch(3, 10, 10, 1600);
        assert_eq!(l.propose_isr_change(1600).unwrap().isr, vec![1, 2, 3]);
    }

    #[test]
    fn below_min_isr_the_high_watermark_stays() {
        let mut l = leader(vec![1], 2);
        l.on_local_append(10);
        assert_eq!(l.high_watermark(), 0);
        assert!(!l.enough_in_sync());
        let mut alone = leader(vec![1], 1);
        alone.on_local_append(10);
        assert_eq!(alone.high_watermark(), 10);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Append(u64),
        Fetch(i32, u64),
        Tick(u64),
        /// The controller commits the proposal in flight and the leader hears so.
        Commit,
        /// The controller commits it but the answer is lost.
        CommitLost,
        /// The request is lost before the controller sees it.
        Lose,
        /// The controller refuses it: INELIGIBLE_REPLICA when it is at the leader's
        /// partition epoch, otherwise (it moved on) INVALID_UPDATE_VERSION.
        Refuse,
        /// The metadata image brings the partition as the controller has it.
        Image,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u64..20).prop_map(Op::Append),
            (2i32..=3, 0u64..200).prop_map(|(r, o)| Op::Fetch(r, o)),
            (1u64..800).prop_map(Op::Tick),
            Just(Op::Commit),
            Just(Op::CommitLost),
            Just(Op::Lose),
            Just(Op::Refuse),
            Just(Op::Image),
        ]
    }

    proptest! {
        /// Against a model of the replicas' logs: the high watermark never goes back, never
        /// passes the log end of a member of the ISR it was computed over, and every offset
        /// below it (an acks=all write, acknowledged) is on every member of the committed ISR
        /// — so a new leader chosen from the ISR has it.
        #[test]
        fn high_watermark_rules_hold(ops in proptest::collection::vec(op(), 1..200), min_isr in 1usize..=3) {
            let mut l = leader(vec![1, 2, 3], min_isr);
            // Each replica's log end in the model; followers copy the leader's log.
            let mut ends: BTreeMap<i32, u64> = [(1, 0), (2, 0), (3, 0)].into_iter().collect();
            let mut now = 0u64;
            let mut hw = 0u64;
            // The controller's view: the ISR it has committed and at which partition epoch.
            let mut ctl_isr = vec![1, 2, 3];
            let mut ctl_epoch = 0;
            for op in ops {
                match op {
                    Op::Append(n) => {
                        let e = ends[&1] + n;
                        ends.insert(1, e);
                        l.on_local_append(e);
                    }
                    Op::Fetch(r, want) => {
                        // A follower fetches at its end and then holds what it was sent.
                        let leader_end = ends[&1];
                        let at = ends[&r];
                        l.on_follower_fetch(r, at, leader_end, now);
                        ends.insert(r, (at + want).min(leader_end).max(at));
                    }
                    Op::Tick(ms) => {
                        now += ms;
                        let _ = l.propose_isr_change(now);
                    }
                    Op::Commit | Op::CommitLost => {
                        if let Some(p) = l.pending().cloned() {
                            if p.partition_epoch == ctl_epoch {
                                ctl_isr = p.isr.clone();
                                ctl_epoch += 1;
                                if matches!(op, Op::Commit) {
                                    l.on_isr_committed(p.isr, ctl_epoch);
                                } else {
                                    l.on_isr_change_lost();
                                }
                            } else if p.partition_epoch + 1 == ctl_epoch && p.isr == ctl_isr {
                                // A resend of what was committed: the controller says so.
                                l.on_isr_committed(ctl_isr.clone(), ctl_epoch);
                            } else {
                                l.on_isr_change_stale();
                            }
                        }
                    }
                    Op::Lose => l.on_isr_change_lost(),
                    Op::Refuse => {
                        if let Some(p) = l.pending().cloned() {
                            if p.partition_epoch == ctl_epoch {
                                l.on_isr_change_failed();
                            } else {
                                l.on_isr_change_stale();
                            }
                        }
                    }
                    Op::Image => {
                        l.on_isr_committed(ctl_isr.clone(), ctl_epoch);
                    }
                }
                prop_assert!(l.high_watermark() >= hw, "high watermark went back");
                if l.high_watermark() > hw {
                    prop_assert!(l.maximal_isr().len() >= min_isr, "advanced below min.insync");
                }
                hw = l.high_watermark();
                prop_assert!(hw <= ends[&1]);
                for r in l.isr() {
                    prop_assert!(ends[r] >= hw, "ISR member {} holds {} < hw {}", r, ends[r], hw);
                }
                // The controller may elect any member of the ISR it committed, whatever this
                // leader has heard of it.
                for r in &ctl_isr {
                    prop_assert!(ends[r] >= hw, "committed ISR member {} holds {} < hw {}", r, ends[r], hw);
                }
            }
        }
    }
}
