//! A real three-node KRaft quorum of the `ketch` binary on 127.0.0.1, plus a broker-only node
//! that observes it: format, start, see a leader, SIGKILL it, see a new leader in a later epoch,
//! restart the old one and see it rejoin as a follower that catches up with the leader's log,
//! and see the observer replicate the metadata log without voting; and a member far behind
//! catch up from the leader's snapshot.
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

/// KIP-630 end to end: with tiny metadata segments and snapshots every 2 KiB of records, a
/// member that was down while 40 topics were created finds the leader's log starting past its
/// own end; it fetches the leader's snapshot (FetchSnapshot), loads it, catches up, and then
/// serves all 40 topics to clients from the image the snapshot rebuilt.
#[test]
fn a_member_far_behind_catches_up_from_the_leaders_snapshot() {
    let dir = std::env::temp_dir().join(format!("ketch-snapshot-{}", std::process::id()));
    let mut cluster = common::make_combined_cluster(
        &dir,
        "broker.heartbeat.interval.ms=200\n\
         metadata.log.segment.bytes=1024\n\
         metadata.log.max.record.bytes.between.snapshots=2048\n",
    );
    for i in 0..3 {
        cluster.start(i);
    }
    let (leader, _, _) = cluster.wait_for_leader(0, Duration::from_secs(20));
    // The victim is a follower, so the leader (and its log) stays put.
    let victim = (0..3).find(|i| *i as i32 + 1 != leader).unwrap();
    cluster.kill(victim);
    let start = Instant::now();
    for t in 0..40 {
        let name = format!("topic-{t:02}");
        loop {
            let (ok, out) = common::topics(
                &cluster,
                &[
                    "--create",
                    "--topic",
                    &name,
                    "--partitions",
                    "1",
                    "--replication-factor",
                    "1",
                ],
            );
            if ok {
                break;
            }
            // Until a broker is unfenced the controller cannot place a replica.
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "creating {name}: {out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    // The leader took snapshots and dropped the metadata log's first segments.
    let leader_meta = dir
        .join(format!("data-{leader}"))
        .join("__cluster_metadata-0");
    let names: Vec<String> = std::fs::read_dir(&leader_meta)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.ends_with(".checkpoint")),
        "no snapshot in {names:?}"
    );
    assert!(
        !names.iter().any(|n| n == "00000000000000000000.log"),
        "the first segment is still there: {names:?}"
    );

    cluster.start(victim);
    let victim_id = victim as i32 + 1;
    let start = Instant::now();
    loop {
        let rows = cluster.replication((leader - 1) as usize);
        let leader_end = rows.iter().find(|r| r.2 == "Leader").map(|r| r.1);
        let caught_up = rows
            .iter()
            .find(|r| r.0 == victim_id)
            .is_some_and(|r| Some(r.1) == leader_end && r.2 == "Follower");
        if caught_up {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node {victim_id} did not catch up: {rows:?}; logs in {}",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = std::fs::read_to_string(dir.join(format!("node-{victim_id}.log"))).unwrap();
    assert!(
        log.contains("metadata image replaced by the leader's snapshot"),
        "node {victim_id} caught up without a snapshot: {log}"
    );
    // Its broker serves every topic, from the image the snapshot rebuilt.
    let config = std::fs::read_to_string(cluster.config_path(victim)).unwrap();
    let plaintext = config
        .split([',', '\n'])
        .find_map(|part| part.split("PLAINTEXT://").nth(1))
        .unwrap()
        .to_string();
    let start = Instant::now();
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ketch"))
            .args(["topics", "--bootstrap-server", &plaintext, "--list"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout).to_string();
        let count = listed.lines().filter(|l| l.starts_with("topic-")).count();
        if count == 40 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "node {victim_id} lists {count} topics: {listed}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
