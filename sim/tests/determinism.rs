//! The simulator replays bit for bit: the same seed twice gives the same trace hash (the last
//! line it prints), and another seed gives another. Runs only in madsim mode, where the
//! simulator exists.
#![cfg(madsim)]

use std::process::Command;

fn trace_hash(seed: u64, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ketch-sim"))
        .args(["--seed", &seed.to_string(), "--duration-s", "10"])
        .args(extra)
        .output()
        .expect("run ketch-sim");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let first = stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("replay: "),
        "the first line replays the run: {first}"
    );
    assert!(first.contains(&format!("--seed {seed}")), "{first}");
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(
        last.starts_with("trace-hash: "),
        "the last line is the trace hash: {stdout}"
    );
    last
}

#[test]
fn same_seed_same_trace_hash() {
    for seed in [1, 42, 1234] {
        assert_eq!(
            trace_hash(seed, &[]),
            trace_hash(seed, &[]),
            "seed {seed} is not deterministic"
        );
    }
}

#[test]
fn the_quorum_scenario_replays_too() {
    let quorum = ["--scenario", "quorum"];
    for seed in [3, 77] {
        assert_eq!(
            trace_hash(seed, &quorum),
            trace_hash(seed, &quorum),
            "quorum seed {seed} is not deterministic"
        );
    }
    assert_ne!(trace_hash(3, &quorum), trace_hash(4, &quorum));
}

#[test]
fn different_seeds_different_traces() {
    assert_ne!(trace_hash(1, &[]), trace_hash(2, &[]));
}

#[test]
fn a_planted_bug_changes_the_run_and_is_reported() {
    // Find a seed that catches ack-before-fsync among the first 20, and check its replay
    // reproduces the violation.
    let caught = (0..20).find(|seed| {
        let out = Command::new(env!("CARGO_BIN_EXE_ketch-sim"))
            .args(["--seed", &seed.to_string(), "--plant", "ack-before-fsync"])
            .output()
            .expect("run ketch-sim");
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("VIOLATION")
    });
    assert!(caught.is_some(), "ack-before-fsync not caught in 20 seeds");
}

#[test]
fn the_cluster_scenario_replays_too_with_logs_on() {
    let cluster = ["--scenario", "cluster"];
    for seed in [5, 36] {
        let first = trace_hash(seed, &cluster);
        assert_eq!(
            first,
            trace_hash(seed, &cluster),
            "cluster seed {seed} is not deterministic"
        );
        // A replay with the nodes' logs printed is the same run (the subscriber must not move
        // the run's random draws).
        let logged = Command::new(env!("CARGO_BIN_EXE_ketch-sim"))
            .args(["--seed", &seed.to_string(), "--duration-s", "10"])
            .args(cluster)
            .env("KETCH_SIM_LOG", "ketch=debug")
            .output()
            .expect("run ketch-sim");
        let stdout = String::from_utf8_lossy(&logged.stdout).to_string();
        assert_eq!(
            stdout.lines().last().unwrap_or_default(),
            first,
            "cluster seed {seed} with logs is another run"
        );
        assert!(
            !logged.stderr.is_empty(),
            "KETCH_SIM_LOG printed no node logs"
        );
    }
    assert_ne!(trace_hash(5, &cluster), trace_hash(6, &cluster));
    let first_line = Command::new(env!("CARGO_BIN_EXE_ketch-sim"))
        .args(["--seed", "5", "--duration-s", "10"])
        .args(cluster)
        .output()
        .expect("run ketch-sim");
    let stdout = String::from_utf8_lossy(&first_line.stdout).to_string();
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.contains("| mix: "),
        "the first line shows the seed's mix: {first}"
    );
}
