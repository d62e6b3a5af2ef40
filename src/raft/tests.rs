//! Tests of the quorum core: the seeded simulation over many seeds, determinism, the planted
//! bugs it must catch, and unit tests of single rules (cited by KIP section).

use super::node::{Config, QuorumState, RaftBugs, RaftNode, Role};
use super::simulation;
use super::{MemLog, Message, RaftLog};
use crate::model::NodeId;
use std::collections::BTreeSet;

fn seeds() -> std::ops::Range<u64> {
    let first = std::env::var("RAFT_SIM_FIRST")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let count: u64 = std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    first..first + count
}

#[test]
fn simulation_holds_every_invariant_over_many_seeds() {
    let mut elected = 0;
    let mut committed = 0;
    let mut installed = 0;
    let range = seeds();
    let runs = range.end - range.start;
    for seed in range {
        let outcome = simulation::run(seed, RaftBugs::default(), 20_000);
        assert!(
            outcome.violations.is_empty(),
            "seed {seed}: {:?}",
            &outcome.violations[..outcome.violations.len().min(3)]
        );
        elected += outcome.leaders_elected;
        committed += outcome.committed;
        installed += outcome.snapshots_installed;
    }
    // The runs did something: leaders came and went, entries committed, and followers that
    // fell behind a leader's snapshot fetched it.
    eprintln!("{runs} seeds: {elected} leaders, {committed} entries committed, {installed} snapshots installed");
    assert!(elected as u64 > runs);
    assert!(committed as u64 > 10 * runs);
    assert!(installed as u64 > runs / 10);
}

#[test]
fn the_same_seed_replays_the_same_run() {
    for seed in [3, 17] {
        let a = simulation::run(seed, RaftBugs::default(), 10_000);
        let b = simulation::run(seed, RaftBugs::default(), 10_000);
        assert_eq!(a.trace_hash, b.trace_hash);
        assert_eq!(a.committed, b.committed);
    }
}

fn first_catching_seed(bugs: RaftBugs, limit: u64, rule_checks: bool) -> Option<(u64, String)> {
    (0..limit).find_map(|seed| {
        let outcome = simulation::run_with(seed, bugs, 20_000, rule_checks);
        outcome.violations.first().map(|v| (seed, v.clone()))
    })
}

#[test]
fn planted_bug_vote_not_persisted_is_caught() {
    let caught = first_catching_seed(
        RaftBugs {
            vote_not_persisted: true,
            ..RaftBugs::default()
        },
        200,
        true,
    );
    eprintln!("vote_not_persisted caught: {caught:?}");
    assert!(
        caught.is_some(),
        "a vote not persisted before it is sent went unnoticed for 200 seeds"
    );
}

#[test]
fn planted_bug_high_watermark_on_stale_epoch_is_caught() {
    let caught = first_catching_seed(
        RaftBugs {
            hw_on_stale_epoch: true,
            ..RaftBugs::default()
        },
        500,
        true,
    );
    eprintln!("hw_on_stale_epoch caught: {caught:?}");
    assert!(
        caught.is_some(),
        "a high watermark advanced on an older epoch's entry went unnoticed for 500 seeds"
    );
}

fn voters(n: i32) -> BTreeSet<NodeId> {
    (1..=n).map(NodeId).collect()
}

fn node(id: i32, n: i32) -> RaftNode<MemLog> {
    RaftNode::new(
        Config::new(NodeId(id), voters(n)),
        MemLog::new(),
        QuorumState::default(),
        0,
        id as u64,
    )
}

#[test]
fn a_single_voter_elects_itself_and_commits_after_flushing() {
    let mut n = node(1, 1);
    n.tick(5_000).unwrap();
    assert_eq!(n.role(), Role::Leader);
    let ready = n.take_ready();
    assert_eq!(
        ready.persist_state.as_ref().map(|s| s.leader),
        Some(Some(NodeId(1)))
    );
    assert!(ready.flush_log, "the leader-change entry must be flushed");
    assert_eq!(
        n.high_watermark(),
        0,
        "nothing is committed before it is durable"
    );
    let flushed = n.log_mut().flush();
    n.on_log_flushed(flushed, 5_000);
    assert_eq!(n.high_watermark(), 1);
}

/// KIP-595 "Vote": a voter grants one vote per epoch, and only to a log at least as up to date.
#[test]
fn one_vote_per_epoch_and_only_for_an_up_to_date_log() {
    let mut n = node(1, 3);
    let vote = |candidate: i32, end_offset: u64| Message::VoteRequest {
        epoch: 1,
        candidate: NodeId(candidate),
        last_epoch: 0,
        end_offset,
        pre_vote: false,
    };
    n.step(NodeId(2), vote(2, 0), 10).unwrap();
    let ready = n.take_ready();
    assert_eq!(
        ready.persist_state.as_ref().and_then(|s| s.voted_for),
        Some(NodeId(2)),
        "the vote is persisted"
    );
    assert!(matches!(
        ready.messages[0].1,
        Message::VoteResponse { granted: true, .. }
    ));
    n.step(NodeId(3), vote(3, 0), 11).unwrap();
    assert!(matches!(
        n.take_ready().messages[0].1,
        Message::VoteResponse { granted: false, .. }
    ));
    // Same candidate asking again (a retry) is granted again.
    n.step(NodeId(2), vote(2, 0), 12).unwrap();
    assert!(matches!(
        n.take_ready().messages[0].1,
        Message::VoteResponse { granted: true, .. }
    ));
}

/// KIP-996: a pre-vote changes nothing on the voter and is refused while a leader is alive.
#[test]
fn pre_votes_change_nothing_and_are_refused_while_the_leader_is_alive() {
    let mut n = node(1, 3);
    n.step(
        NodeId(2),
        Message::BeginQuorumEpoch {
            epoch: 4,
            leader: NodeId(2),
        },
        10,
    )
    .unwrap();
    assert_eq!(n.role(), Role::Follower);
    n.take_ready();
    let pre_vote = Message::VoteRequest {
        epoch: 5,
        candidate: NodeId(3),
        last_epoch: 0,
        end_offset: 0,
        pre_vote: true,
    };
    n.step(NodeId(3), pre_vote.clone(), 20).unwrap();
    let ready = n.take_ready();
    assert!(ready.persist_state.is_none());
    assert!(matches!(
        ready.messages[0].1,
        Message::VoteResponse { granted: false, .. }
    ));
    assert_eq!(n.epoch(), 4);
    // Once the leader has been silent for the fetch timeout, the pre-vote is granted.
    n.step(NodeId(3), pre_vote, 10 + 2_001).unwrap();
    let ready = n.take_ready();
    assert!(ready.messages.iter().any(|(_, m)| matches!(
        m,
        Message::VoteResponse {
            granted: true,
            pre_vote: true,
            ..
        }
    )));
    assert_eq!(n.epoch(), 4, "a pre-vote does not bump the epoch");
}

/// KIP-595 "Fetch": a follower whose log diverges is told the diverging epoch and end offset,
/// truncates, and fetches again from there.
#[test]
fn a_diverging_follower_truncates_to_the_leaders_epoch_end() {
    use super::Entry;
    let mut log = MemLog::new();
    log.append(&[
        Entry {
            offset: 0,
            epoch: 1,
            data: b"a".to_vec(),
        },
        Entry {
            offset: 1,
            epoch: 2,
            data: b"stale".to_vec(),
        },
        Entry {
            offset: 2,
            epoch: 2,
            data: b"stale".to_vec(),
        },
    ])
    .unwrap();
    log.flush();
    let durable = QuorumState {
        epoch: 3,
        voted_for: None,
        leader: Some(NodeId(2)),
    };
    let mut f = RaftNode::new(Config::new(NodeId(1), voters(3)), log, durable, 0, 1);
    let ready = f.take_ready();
    assert!(matches!(
        ready.messages[0].1,
        Message::FetchRequest {
            fetch_offset: 3,
            last_fetched_epoch: 2,
            ..
        }
    ));
    f.step(
        NodeId(2),
        Message::FetchResponse {
            epoch: 3,
            answers: (3, 2),
            leader: Some(NodeId(2)),
            high_watermark: 5,
            entries: vec![],
            diverging: Some((1, 1)),
            snapshot: None,
            error: None,
        },
        10,
    )
    .unwrap();
    assert_eq!(f.log().end_offset(), 1);
    // What is left after truncating is not yet known to match the leader's log: the leader's
    // high watermark must wait for an accepted fetch (simulation seed 8131).
    assert_eq!(f.high_watermark(), 0);
    let ready = f.take_ready();
    assert!(matches!(
        ready.messages[0].1,
        Message::FetchRequest {
            fetch_offset: 1,
            last_fetched_epoch: 1,
            ..
        }
    ));
}

/// KIP-595 check-quorum: a leader that no majority fetches from resigns.
#[test]
fn a_leader_without_a_fetching_majority_resigns() {
    let mut n = node(1, 3);
    n.tick(5_000).unwrap();
    let ready = n.take_ready();
    let pre_votes: Vec<NodeId> = ready.messages.iter().map(|(to, _)| *to).collect();
    for v in pre_votes {
        n.step(
            v,
            Message::VoteResponse {
                epoch: 0,
                granted: true,
                pre_vote: true,
                leader: None,
                error: None,
            },
            5_001,
        )
        .unwrap();
    }
    n.take_ready();
    n.step(
        NodeId(2),
        Message::VoteResponse {
            epoch: 1,
            granted: true,
            pre_vote: false,
            leader: None,
            error: None,
        },
        5_002,
    )
    .unwrap();
    assert_eq!(n.role(), Role::Leader);
    n.tick(5_002 + 1_000).unwrap();
    assert_eq!(n.role(), Role::Leader);
    n.tick(5_002 + 2_001).unwrap();
    assert_eq!(
        n.role(),
        Role::Unattached,
        "no fetches for a fetch timeout: resign"
    );
    assert!(n
        .take_ready()
        .messages
        .iter()
        .any(|(_, m)| matches!(m, Message::EndQuorumEpoch { .. })));
}

/// The planted bugs also show as what they do to a cluster, not only as broken rules: with the
/// rule checks off, a double vote, and a committed entry lost (which the production assertion
/// against truncating below the high watermark reports). First seen at seeds 695 and 1371 once
/// half the runs fetch only 4 to 16 entries at a time (with whole-log fetches a follower always
/// receives a new leader's LeaderChange entry with the older ones, so the stale-epoch rule never
/// mattered). The consequences first seen at seeds 260 and 1006, when this was written, came
/// from a real bug instead: a follower took the leader's high watermark right after truncating
/// on a diverging answer (now fixed). The bounds leave room for the schedule to shift.
#[test]
fn planted_bugs_show_their_consequences() {
    for (name, bugs, limit) in [
        (
            "vote_not_persisted",
            RaftBugs {
                vote_not_persisted: true,
                ..RaftBugs::default()
            },
            2_000,
        ),
        (
            "hw_on_stale_epoch",
            RaftBugs {
                hw_on_stale_epoch: true,
                ..RaftBugs::default()
            },
            8_000,
        ),
    ] {
        let caught = first_catching_seed(bugs, limit, false);
        eprintln!("{name}: consequence first seen {caught:?}");
        assert!(
            caught.is_some(),
            "{name}: no consequence within {limit} seeds"
        );
    }
}

/// KIP-630: a leader whose log starts past a follower's fetch offset answers with its latest
/// snapshot id; the follower fetches the snapshot chunk by chunk (FetchSnapshot), installs it,
/// reports it to the shell, takes its end as committed, and fetches entries from there.
#[test]
fn a_follower_behind_the_leaders_log_start_installs_its_snapshot() {
    use super::{Entry, SnapshotId};
    // Leader 1 of a 3-voter quorum with entries 0..10 committed, then snapshotted at 8.
    let mut leader = node(1, 3);
    leader.tick(5_000).unwrap();
    let voted = leader.take_ready();
    for (to, m) in voted.messages {
        if let Message::VoteRequest { .. } = m {
            // A pre-vote's voter answers in its own (current) epoch.
            let granted = Message::VoteResponse {
                epoch: leader.epoch(),
                granted: true,
                pre_vote: true,
                leader: None,
                error: None,
            };
            leader.step(to, granted, 5_001).unwrap();
        }
    }
    for (to, m) in leader.take_ready().messages {
        if let Message::VoteRequest { epoch, .. } = m {
            let granted = Message::VoteResponse {
                epoch,
                granted: true,
                pre_vote: false,
                leader: None,
                error: None,
            };
            leader.step(to, granted, 5_002).unwrap();
        }
    }
    assert_eq!(leader.role(), Role::Leader);
    let epoch = leader.epoch();
    for i in 0..9 {
        leader.propose(format!("e{i}").into_bytes(), 5_010).unwrap();
    }
    let flushed = leader.log_mut().flush();
    leader.on_log_flushed(flushed, 5_010);
    // Voter 3 has everything: the high watermark reaches the end.
    leader
        .step(
            NodeId(3),
            Message::FetchRequest {
                epoch,
                replica: NodeId(3),
                fetch_offset: 10,
                last_fetched_epoch: epoch,
            },
            5_020,
        )
        .unwrap();
    assert_eq!(leader.high_watermark(), 10);
    leader.take_ready();
    assert!(
        leader.create_snapshot(11, b"x").is_err(),
        "a snapshot past the high watermark is refused"
    );
    let snapshot_bytes: Vec<u8> = (0..40u8).collect();
    let id = leader.create_snapshot(8, &snapshot_bytes).unwrap();
    assert_eq!(
        id,
        SnapshotId {
            end_offset: 8,
            epoch
        }
    );
    assert_eq!(leader.log().start_offset(), 8);

    // Follower 2 has nothing: its fetch from 0 gets the snapshot id, not entries.
    let mut follower = node(2, 3);
    follower
        .step(
            NodeId(1),
            Message::BeginQuorumEpoch {
                epoch,
                leader: NodeId(1),
            },
            5_030,
        )
        .unwrap();
    let mut to_leader: Vec<Message> = follower
        .take_ready()
        .messages
        .into_iter()
        .filter(|(to, _)| *to == NodeId(1))
        .map(|(_, m)| m)
        .collect();
    let mut chunks = 0;
    let mut installed = None;
    for round in 0..20 {
        let Some(request) = to_leader.pop() else {
            break;
        };
        if matches!(request, Message::FetchSnapshotRequest { .. }) {
            chunks += 1;
        }
        leader.step(NodeId(2), request, 5_040 + round).unwrap();
        for (to, answer) in leader.take_ready().messages {
            if to == NodeId(2) {
                follower.step(NodeId(1), answer, 5_040 + round).unwrap();
            }
        }
        let ready = follower.take_ready();
        if let Some(i) = ready.snapshot_installed {
            installed = Some(i);
        }
        to_leader.extend(
            ready
                .messages
                .into_iter()
                .filter(|(to, _)| *to == NodeId(1))
                .map(|(_, m)| m),
        );
        if follower.log().end_offset() == 10 {
            break;
        }
    }
    // Config::new's chunk size is 1 MiB, so the 40 bytes came in one chunk.
    assert_eq!(chunks, 1);
    assert_eq!(installed, Some(id), "the shell is told to reload");
    assert_eq!(
        follower.log().snapshot().map(|(i, b)| (*i, b.clone())),
        Some((id, snapshot_bytes))
    );
    assert!(follower.high_watermark() >= 8);
    assert_eq!(follower.log().start_offset(), 8);
    assert_eq!(
        follower.log().read(8, 10),
        leader.log().read(8, 10),
        "after the snapshot, the entries"
    );
    assert_eq!(
        follower.log().read(9, 1),
        vec![Entry {
            offset: 9,
            epoch,
            data: b"e8".to_vec()
        }]
    );
}

/// FetchSnapshot errors: a position past the end, and a snapshot the leader no longer holds.
#[test]
fn fetch_snapshot_refuses_unknown_snapshots_and_positions_past_the_end() {
    use super::{RaftError, SnapshotId};
    let mut n = node(1, 1);
    n.tick(5_000).unwrap();
    n.propose(b"a".to_vec(), 5_000).unwrap();
    let flushed = n.log_mut().flush();
    n.on_log_flushed(flushed, 5_000);
    n.take_ready();
    let id = n.create_snapshot(2, b"0123456789").unwrap();
    let ask = |snapshot: SnapshotId, position: u64| Message::FetchSnapshotRequest {
        epoch: 1,
        replica: NodeId(9),
        snapshot,
        position,
    };
    let error_of = |n: &mut RaftNode<MemLog>, m: Message| match n.take_ready().messages.pop() {
        Some((_, Message::FetchSnapshotResponse { error, bytes, .. })) => (error, bytes),
        other => panic!("{other:?} after {m:?}"),
    };
    n.step(NodeId(9), ask(id, 4), 5_001).unwrap();
    assert_eq!(error_of(&mut n, ask(id, 4)), (None, b"456789".to_vec()));
    n.step(NodeId(9), ask(id, 11), 5_002).unwrap();
    assert_eq!(
        error_of(&mut n, ask(id, 11)).0,
        Some(RaftError::PositionOutOfRange)
    );
    let gone = SnapshotId {
        end_offset: 1,
        epoch: 1,
    };
    n.step(NodeId(9), ask(gone, 0), 5_003).unwrap();
    assert_eq!(
        error_of(&mut n, ask(gone, 0)).0,
        Some(RaftError::SnapshotNotFound)
    );
}
