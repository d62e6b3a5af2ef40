//! `ketch-sim`: seeded runs of ketch nodes inside madsim, with crashes, disk faults and clock
//! skew drawn from the seed, and invariants checked as the run goes.
//!
//! Build and run it in madsim mode, in its own target directory:
//!
//! ```text
//! RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim cargo run -p ketch-sim --release -- --seed 7
//! ```
//!
//! The first line printed replays the run; the last is a hash of the whole event trace, equal for
//! equal seeds. `--seeds A..B` runs a range, one process per seed (madsim keeps some state in
//! statics, so seeds never share a process). `--plant <bug>` turns on a deliberate bug that the
//! checks must catch.

#[cfg(madsim)]
mod quorum;
#[cfg(madsim)]
mod storage;

/// FNV-1a, folding `bytes` into the running trace hash `h`.
pub fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// What a run found.
pub struct Report {
    pub violations: Vec<String>,
    pub summary: String,
    pub trace_hash: u64,
}

use clap::Parser;

#[derive(Parser, Debug, Clone)]
#[command(about = "Deterministic simulation of ketch under madsim")]
struct Args {
    /// Run one seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run a range of seeds `A..B` (B excluded), each in its own process.
    #[arg(long)]
    seeds: Option<String>,
    /// What to simulate: `storage` (log durability) or `quorum` (the KRaft quorum).
    #[arg(long, default_value = "storage")]
    scenario: String,
    /// Plant a deliberate bug the checks must catch: `ack-before-fsync` (storage),
    /// `skip-metadata-flush` (quorum).
    #[arg(long)]
    plant: Option<String>,
    /// Virtual seconds of faults before the final check.
    #[arg(long, default_value_t = 30)]
    duration_s: u64,
    /// With --seeds: succeed only if at least one seed fails (to show a planted bug is caught).
    #[arg(long)]
    expect_failure: bool,
    /// Print every event, not only the summary.
    #[arg(long)]
    verbose: bool,
}

fn parse_range(s: &str) -> Option<(u64, u64)> {
    let (a, b) = s.split_once("..")?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

fn replay_line(args: &Args, seed: u64) -> String {
    let mut line = format!(
        "replay: RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim cargo run -p ketch-sim --release -- --scenario {} --seed {seed} --duration-s {}",
        args.scenario, args.duration_s
    );
    if let Some(bug) = &args.plant {
        line.push_str(&format!(" --plant {bug}"));
    }
    line
}

/// Runs each seed of the range in a child process and reports the failures.
fn run_range(args: &Args, from: u64, to: u64) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find own executable: {e}");
            return 2;
        }
    };
    let mut failed = Vec::new();
    let mut passed = 0u64;
    for seed in from..to {
        if args.expect_failure && !failed.is_empty() {
            break; // caught: no need to run the rest
        }
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--seed").arg(seed.to_string());
        cmd.arg("--scenario").arg(&args.scenario);
        cmd.arg("--duration-s").arg(args.duration_s.to_string());
        if let Some(bug) = &args.plant {
            cmd.arg("--plant").arg(bug);
        }
        match cmd.output() {
            Ok(out) if out.status.success() => passed += 1,
            Ok(out) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let stderr = String::from_utf8_lossy(&out.stderr);
                // A violation the checks found, or an invariant asserted in production code.
                let panic = stderr
                    .lines()
                    .position(|l| l.contains("panicked at"))
                    .map(|i| {
                        let lines: Vec<&str> = stderr.lines().collect();
                        format!("PANIC {} {}", lines[i], lines.get(i + 1).unwrap_or(&""))
                    });
                let first_violation = stdout
                    .lines()
                    .find(|l| l.contains("VIOLATION"))
                    .map(str::to_string)
                    .or(panic)
                    .unwrap_or_else(|| "(no violation line)".to_string());
                if !args.expect_failure {
                    println!("seed {seed} FAILED: {first_violation}");
                    println!("  {}", replay_line(args, seed));
                }
                failed.push((seed, first_violation));
            }
            Err(e) => {
                eprintln!("seed {seed}: could not run: {e}");
                failed.push((seed, e.to_string()));
            }
        }
    }
    if !args.expect_failure {
        println!("{passed} passed, {} failed", failed.len());
    }
    if args.expect_failure {
        match failed.first() {
            Some((seed, why)) => {
                println!(
                    "planted bug caught at seed {seed}, after {} seeds: {why}",
                    seed - from + 1
                );
                0
            }
            None => {
                println!("planted bug NOT caught in seeds {from}..{to}");
                1
            }
        }
    } else if failed.is_empty() {
        0
    } else {
        1
    }
}

#[cfg(madsim)]
fn finish(report: Report) -> ! {
    for v in &report.violations {
        println!("VIOLATION: {v}");
    }
    println!("{}", report.summary);
    println!("trace-hash: {:016x}", report.trace_hash);
    std::process::exit(if report.violations.is_empty() { 0 } else { 1 });
}

fn main() {
    let args = Args::parse();
    // The nodes' own logs, for replaying one seed by hand: KETCH_SIM_LOG=ketch=debug.
    if let Ok(filter) = std::env::var("KETCH_SIM_LOG") {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .init();
    }
    if let Some(range) = &args.seeds {
        let Some((from, to)) = parse_range(range) else {
            eprintln!("--seeds takes A..B, e.g. 0..100");
            std::process::exit(2);
        };
        std::process::exit(run_range(&args, from, to));
    }
    println!("{}", replay_line(&args, args.seed));
    #[cfg(madsim)]
    {
        if args.scenario == "quorum" {
            let bugs = ketch::quorum::QuorumBugs {
                skip_log_flush: match args.plant.as_deref() {
                    None => false,
                    Some("skip-metadata-flush") => true,
                    Some(other) => {
                        eprintln!("unknown planted bug '{other}' for the quorum (known: skip-metadata-flush)");
                        std::process::exit(2);
                    }
                },
            };
            let report = quorum::run(quorum::Options {
                seed: args.seed,
                duration_s: args.duration_s,
                verbose: args.verbose,
                bugs,
            });
            finish(report);
        }
        if args.scenario != "storage" {
            eprintln!(
                "unknown scenario '{}' (known: storage, quorum)",
                args.scenario
            );
            std::process::exit(2);
        }
        let options = storage::Options {
            seed: args.seed,
            duration_s: args.duration_s,
            plant_ack_before_fsync: match args.plant.as_deref() {
                None => false,
                Some("ack-before-fsync") => true,
                Some(other) => {
                    eprintln!("unknown planted bug '{other}' (known: ack-before-fsync)");
                    std::process::exit(2);
                }
            },
            verbose: args.verbose,
        };
        finish(storage::run(options));
    }
    #[cfg(not(madsim))]
    {
        eprintln!(
            "ketch-sim runs only in madsim mode: RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target/sim cargo run -p ketch-sim --release -- --seed N"
        );
        std::process::exit(2);
    }
}
