//! The rebalance protocol as Kafka's clients drive it (KIP-394 member ids, KIP-345 static
//! members), against the coordinator core.

use super::coordinator::*;
use rand::SeedableRng;

fn coordinator(initial_delay_ms: u64) -> Coordinator {
    Coordinator::new(
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: initial_delay_ms,
        },
        rand_chacha::ChaCha8Rng::seed_from_u64(7),
    )
}

fn join_request(member_id: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: "g".into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_string),
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol {
            name: "range".into(),
            metadata: b"sub".to_vec(),
        }],
        require_known_member_id: true,
    }
}

fn join_reply(fx: &Effects, token: Token) -> JoinResponse {
    fx.replies
        .iter()
        .find_map(|(t, r)| match r {
            Reply::Join(j) if *t == token => Some(j.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no join reply for token {token}: {fx:?}"))
}

fn sync_reply(fx: &Effects, token: Token) -> SyncResponse {
    fx.replies
        .iter()
        .find_map(|(t, r)| match r {
            Reply::Sync(s) if *t == token => Some(s.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync reply for token {token}: {fx:?}"))
}

fn sync_request(
    member_id: &str,
    generation: i32,
    assignments: Vec<(String, Vec<u8>)>,
) -> SyncRequest {
    SyncRequest {
        group_id: "g".into(),
        generation_id: generation,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        assignments,
    }
}

/// KIP-394: first join gets a member id; the rejoin with it completes the rebalance.
fn join_alone(c: &mut Coordinator, now: u64) -> String {
    let fx = c.join(now, 1, join_request("", None));
    let r = join_reply(&fx, 1);
    assert_eq!(r.error, MEMBER_ID_REQUIRED);
    let id = r.member_id;
    let fx = c.join(now, 2, join_request(&id, None));
    let r = join_reply(&fx, 2);
    assert_eq!(
        (r.error, r.generation_id, r.leader.as_str()),
        (NONE, 1, id.as_str())
    );
    assert_eq!(r.members.len(), 1, "the leader sees the members");
    let fx = c.sync(
        now,
        3,
        sync_request(&id, 1, vec![(id.clone(), b"all".to_vec())]),
    );
    assert_eq!(sync_reply(&fx, 3).assignment, b"all");
    assert_eq!(fx.writes.len(), 1, "the group's metadata is stored");
    id
}

#[test]
fn a_second_member_triggers_a_rebalance_both_rejoin() {
    let mut c = coordinator(0);
    let a = join_alone(&mut c, 0);
    let fx = c.join(10, 10, join_request("", None));
    let b = join_reply(&fx, 10).member_id;
    let fx = c.join(10, 11, join_request(&b, None));
    assert!(fx.replies.is_empty(), "b waits for a to rejoin");
    assert_eq!(c.heartbeat(20, "g", 1, &a, None), REBALANCE_IN_PROGRESS);
    let fx = c.join(30, 12, join_request(&a, None));
    let ra = join_reply(&fx, 12);
    let rb = join_reply(&fx, 11);
    assert_eq!((ra.generation_id, rb.generation_id), (2, 2));
    assert_eq!(ra.leader, a, "the leader stays");
    assert_eq!((ra.members.len(), rb.members.len()), (2, 0));
    // The follower's sync waits for the leader's.
    let fx = c.sync(40, 13, sync_request(&b, 2, vec![]));
    assert!(fx.replies.is_empty());
    let fx = c.sync(
        41,
        14,
        sync_request(
            &a,
            2,
            vec![(a.clone(), b"p0".to_vec()), (b.clone(), b"p1".to_vec())],
        ),
    );
    assert_eq!(sync_reply(&fx, 13).assignment, b"p1");
    assert_eq!(sync_reply(&fx, 14).assignment, b"p0");
    assert_eq!(c.heartbeat(50, "g", 2, &b, None), NONE);
    assert_eq!(c.heartbeat(50, "g", 1, &b, None), ILLEGAL_GENERATION);
}

#[test]
fn a_silent_member_expires_and_the_rest_rebalance() {
    let mut c = coordinator(0);
    let a = join_alone(&mut c, 0);
    let fx = c.join(0, 10, join_request("", None));
    let b = join_reply(&fx, 10).member_id;
    c.join(0, 11, join_request(&b, None));
    let fx = c.join(0, 12, join_request(&a, None));
    assert_eq!(join_reply(&fx, 12).generation_id, 2);
    // b keeps heartbeating; a goes silent past its 10 s session.
    for t in (1_000..=11_000).step_by(1_000) {
        let _ = c.heartbeat(t, "g", 2, &b, None);
        let fx = c.tick(t);
        assert!(fx.replies.is_empty());
    }
    let fx = c.tick(12_000);
    assert!(fx.replies.is_empty());
    assert_eq!(c.group("g").map(|g| g.members.len()), Some(1));
    assert_eq!(c.heartbeat(12_001, "g", 2, &b, None), REBALANCE_IN_PROGRESS);
    let fx = c.join(12_002, 13, join_request(&b, None));
    let r = join_reply(&fx, 13);
    assert_eq!((r.generation_id, r.leader.as_str()), (3, b.as_str()));
}

#[test]
fn the_initial_delay_holds_the_first_rebalance() {
    let mut c = coordinator(3_000);
    let fx = c.join(0, 1, join_request("", None));
    let a = join_reply(&fx, 1).member_id;
    let fx = c.join(0, 2, join_request(&a, None));
    assert!(fx.replies.is_empty(), "a new group waits for more members");
    assert!(c.tick(2_999).replies.is_empty());
    let fx = c.tick(3_000);
    assert_eq!(join_reply(&fx, 2).generation_id, 1);
}

#[test]
fn a_static_member_restarting_keeps_its_assignment_without_a_rebalance() {
    let mut c = coordinator(0);
    let fx = c.join(0, 1, join_request("", Some("i1")));
    let r = join_reply(&fx, 1);
    assert_eq!(r.generation_id, 1);
    let first = r.member_id;
    c.sync(
        0,
        2,
        sync_request(&first, 1, vec![(first.clone(), b"mine".to_vec())]),
    );
    // The same instance comes back with a fresh process (no member id).
    let fx = c.join(100, 3, join_request("", Some("i1")));
    let r = join_reply(&fx, 3);
    assert_eq!(r.generation_id, 1, "no new generation");
    assert_ne!(r.member_id, first);
    let fx = c.sync(100, 4, sync_request(&r.member_id, 1, vec![]));
    assert_eq!(sync_reply(&fx, 4).assignment, b"mine");
    // The old incarnation is fenced.
    assert_eq!(c.heartbeat(101, "g", 1, &first, None), UNKNOWN_MEMBER_ID);
}

#[test]
fn leaving_rebalances_and_the_last_leaving_empties_the_group() {
    let mut c = coordinator(0);
    let a = join_alone(&mut c, 0);
    let (top, errors, _) = c.leave(10, "g", &[(a.clone(), None)]);
    assert_eq!((top, errors), (NONE, vec![NONE]));
    let g = c.group("g").map(|g| (g.state, g.generation));
    assert_eq!(g, Some((State::Empty, 2)));
    let (top, _, _) = c.leave(10, "g", &[(a, None)]);
    assert_eq!(top, UNKNOWN_MEMBER_ID);
}

#[test]
fn offset_commits_follow_kafkas_membership_rules() {
    let mut c = coordinator(0);
    // A standalone consumer commits to a group nobody joined.
    assert_eq!(c.check_commit("solo", -1, "", None), NONE);
    let offsets = [CommitOffset {
        topic: "t".into(),
        partition: 0,
        offset: 42,
        leader_epoch: 3,
        metadata: "m".into(),
    }];
    assert_eq!(c.commit_writes("solo", &offsets, 5).len(), 1);
    c.apply_commit("solo", &offsets, 5);
    let got = c.fetch_offsets("solo", Some(&[("t".into(), 0), ("t".into(), 1)]));
    assert_eq!(
        (got[0].offset, got[0].leader_epoch, got[1].offset),
        (42, 3, -1)
    );
    let a = join_alone(&mut c, 0);
    assert_eq!(c.check_commit("g", 1, &a, None), NONE);
    assert_eq!(c.check_commit("g", 0, &a, None), ILLEGAL_GENERATION);
    assert_eq!(c.check_commit("g", 1, "stranger", None), UNKNOWN_MEMBER_ID);
    assert_eq!(
        c.check_commit("g", -1, "", None),
        UNKNOWN_MEMBER_ID,
        "the group has members"
    );
    assert_eq!(c.delete_group("g").0, NON_EMPTY_GROUP);
    let (code, writes) = c.delete_group("solo");
    assert_eq!(
        (code, writes.len()),
        (NONE, 2),
        "an offset and the metadata tombstone"
    );
}

#[test]
fn a_reloaded_group_has_its_offsets_and_generation() {
    use super::records::{GroupKey, GroupValue, OffsetValue};
    let mut c = coordinator(0);
    let key = GroupKey::Offset {
        group: "g".into(),
        topic: "t".into(),
        partition: 1,
    };
    let value = OffsetValue {
        offset: 9,
        leader_epoch: 0,
        metadata: String::new(),
        commit_timestamp_ms: 1,
    };
    c.load(&key, Some(&value.encode()));
    let meta = GroupValue {
        protocol_type: "consumer".into(),
        generation: 4,
        protocol: None,
        leader: None,
        state_timestamp_ms: 0,
        members: vec![],
    };
    c.load(
        &GroupKey::Metadata { group: "g".into() },
        Some(&meta.encode()),
    );
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 9);
    assert_eq!(c.group("g").map(|g| g.generation), Some(4));
    c.load(&key, None);
    assert!(c.fetch_offsets("g", None).is_empty());
}

// KIP-447 / Kafka's GroupCoordinator: a TxnOffsetCommit is checked for its member and
// generation only; pending offsets become visible on the commit marker, and go on abort.
#[test]
fn transactional_offsets_are_checked_as_kafka_and_visible_only_after_commit() {
    let mut c = coordinator(0);
    assert_eq!(c.check_txn_commit("g", -1, "", None), NONE);
    assert_eq!(c.check_txn_commit("g", -1, "m", None), UNKNOWN_MEMBER_ID);
    assert_eq!(c.check_txn_commit("g", 3, "", None), ILLEGAL_GENERATION);
    let offset = |o: i64| CommitOffset {
        topic: "t".into(),
        partition: 0,
        offset: o,
        leader_epoch: -1,
        metadata: String::new(),
    };
    c.apply_txn_commit(7, "g", &[offset(10)], 1);
    assert!(c.has_pending_offset("g", "t", 0));
    assert_eq!(c.fetch_offsets("g", None).len(), 0);
    c.complete_txn(7, true, |_| true);
    assert!(!c.has_pending_offset("g", "t", 0));
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 10);
    c.apply_txn_commit(8, "g", &[offset(20)], 2);
    c.complete_txn(8, false, |_| true);
    assert_eq!(c.fetch_offsets("g", None)[0].offset, 10);
    // A marker on another partition leaves this partition's groups pending.
    c.apply_txn_commit(9, "g", &[offset(30)], 3);
    c.complete_txn(9, true, |g| g != "g");
    assert!(c.has_pending_offset("g", "t", 0));
}
