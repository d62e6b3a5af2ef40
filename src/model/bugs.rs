//! Deliberate bugs the simulator plants in the data plane and the controller, to show that its
//! checks catch them (SIMULATION.md: "the harness must prove it can fail"). A plain set of
//! switches, read only where each bug lives and only when the crate is built with the
//! `planted-bugs` feature (`sim/` alone turns it on); every release build ignores them.

/// Which planted bugs are on; all off by default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClusterBugs {
    /// Answer acks=all once the leader has the batch, before the ISR has it.
    pub ack_before_isr: bool,
    /// Advance the high watermark to the fastest follower's log end, in the ISR or not.
    pub hw_from_non_isr: bool,
    /// A follower truncating on a diverging epoch cuts one batch below its high watermark.
    pub truncate_below_hw: bool,
    /// Serve consumers' fetches up to the log end instead of the high watermark.
    pub fetch_above_hw: bool,
    /// When a leader is fenced, the controller elects a live replica outside the ISR.
    pub leader_outside_isr: bool,
    /// Answer an offset commit as stored whatever became of its record: the answer no longer
    /// waits for the append to reach the ISR, nor for it to succeed.
    pub commit_before_append: bool,
    /// Bound read_committed fetches by the high watermark instead of the last stable offset.
    pub lso_is_hw: bool,
    /// Answer read_committed fetches with no aborted transactions.
    pub aborted_index_lost: bool,
    /// Append a transactional batch that opens a transaction whether or not its coordinator
    /// verified the partition is in one (KIP-890 off).
    pub skip_txn_verification: bool,
}

impl ClusterBugs {
    /// The names `ketch-sim --plant` takes, in the order the simulator documents them.
    pub const NAMES: [&'static str; 9] = [
        "ack-before-isr",
        "hw-from-non-isr",
        "truncate-below-hw",
        "fetch-above-hw",
        "leader-outside-isr",
        "commit-before-append",
        "lso-is-hw",
        "aborted-index-lost",
        "skip-txn-verification",
    ];

    /// The set with the one bug `name` on; `None` for a name that is not one of [`Self::NAMES`].
    pub fn named(name: &str) -> Option<ClusterBugs> {
        let mut b = ClusterBugs::default();
        match name {
            "ack-before-isr" => b.ack_before_isr = true,
            "hw-from-non-isr" => b.hw_from_non_isr = true,
            "truncate-below-hw" => b.truncate_below_hw = true,
            "fetch-above-hw" => b.fetch_above_hw = true,
            "leader-outside-isr" => b.leader_outside_isr = true,
            "commit-before-append" => b.commit_before_append = true,
            "lso-is-hw" => b.lso_is_hw = true,
            "aborted-index-lost" => b.aborted_index_lost = true,
            "skip-txn-verification" => b.skip_txn_verification = true,
            _ => return None,
        }
        Some(b)
    }

    /// Whether bug `on` is live: set, and compiled in.
    pub fn live(on: bool) -> bool {
        cfg!(feature = "planted-bugs") && on
    }
}

#[cfg(test)]
mod tests {
    use super::ClusterBugs;

    #[test]
    fn every_name_turns_on_exactly_one_bug() {
        for name in ClusterBugs::NAMES {
            let b = ClusterBugs::named(name).unwrap();
            assert_ne!(b, ClusterBugs::default(), "{name}");
        }
        assert!(ClusterBugs::named("no-such-bug").is_none());
    }
}
