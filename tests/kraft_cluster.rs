//! A real three-node KRaft quorum of the `ketch` binary on 127.0.0.1, plus a broker-only node
//! that observes it: format, start, see a leader, SIGKILL it, see a new leader in a later epoch,
//! restart the old one and see it rejoin as a follower that catches up with the leader's log,
//! and see the observer replicate the metadata log without voting.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::make_cluster;
use std::time::{Duration, Instant};

#[test]
fn a_three_node_quorum_elects_fails_over_and_rejoins() {
    let dir = std::env::temp_dir().join(format!("ketch-kraft-{}", std::process::id()));
    let mut cluster = make_cluster(&dir, "");
    for i in 0..4 {
        cluster.start(i);
    }
    let (leader, epoch, took) = cluster.wait_for_leader(0, Duration::from_secs(20));
    eprintln!("leader {leader} in epoch {epoch} after {took:?}");

    // SIGKILL the leader: the others elect a new one in a later epoch.
    cluster.kill((leader - 1) as usize);
    let (new_leader, new_epoch, failover) = cluster.wait_for_leader(epoch, Duration::from_secs(20));
    eprintln!(
        "after SIGKILL of {leader}: leader {new_leader} in epoch {new_epoch} after {failover:?}"
    );
    assert_ne!(new_leader, leader);

    // The old leader comes back as a follower and catches up with the leader's log.
    cluster.start((leader - 1) as usize);
    let start = Instant::now();
    loop {
        let rows = cluster.replication((new_leader - 1) as usize);
        let leader_end = rows.iter().find(|r| r.2 == "Leader").map(|r| r.1);
        let old = rows.iter().find(|r| r.0 == leader);
        if let (Some(end), Some(old)) = (leader_end, old) {
            if old.1 == end && old.2 == "Follower" && end > 0 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node {leader} did not catch up: {rows:?}; logs in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (l, e, _) = cluster
        .status((leader - 1) as usize)
        .expect("the old leader answers");
    assert_eq!(
        (l, e),
        (new_leader, new_epoch),
        "the old leader follows the new one"
    );

    // The broker-only node replicates the metadata log as an observer, and is not a voter.
    let start = Instant::now();
    loop {
        let rows = cluster.replication((new_leader - 1) as usize);
        let leader_end = rows.iter().find(|r| r.2 == "Leader").map(|r| r.1);
        if let (Some(end), Some(observer)) = (leader_end, rows.iter().find(|r| r.0 == 4)) {
            assert_eq!(observer.2, "Observer", "{rows:?}");
            if observer.1 == end {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "observer 4 did not catch up: {rows:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
