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
mod cluster;
#[cfg(madsim)]
mod kafka;
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
    /// What to simulate: `storage` (log durability), `quorum` (the KRaft quorum) or `cluster`
    /// (whole nodes with Kafka clients).
    #[arg(long, default_value = "storage")]
    scenario: String,
    /// Plant a deliberate bug the checks must catch: `ack-before-fsync` (storage),
    /// `skip-metadata-flush` (quorum), `ack-before-isr`, `hw-from-non-isr`,
    /// `truncate-below-hw`, `fetch-above-hw`, `leader-outside-isr`, `commit-before-append`,
    /// `lso-is-hw`, `aborted-index-lost`, `skip-txn-verification`
    /// (cluster).
    #[arg(long)]
    plant: Option<String>,
    /// With --seeds: child processes at once (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
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
    line.push_str("  (nodes' logs: KETCH_SIM_LOG=info; every event: --verbose)");
    line
}

/// Real time, for the campaign runner's progress and speed (the parent process runs no
/// simulation; only the children do).
#[allow(clippy::disallowed_methods)]
fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// A seed's child running longer than this (real time) is killed and counts as failed.
const SEED_WALL_LIMIT: std::time::Duration = std::time::Duration::from_secs(180);

/// What one seed's child process showed.
struct Outcome {
    seed: u64,
    passed: bool,
    first_violation: String,
    wall: std::time::Duration,
}

fn outcome_of(seed: u64, status: std::process::ExitStatus, stdout: &str, stderr: &str) -> Outcome {
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
        .unwrap_or_else(|| format!("(no violation line; exit {status})"));
    Outcome {
        seed,
        passed: status.success(),
        first_violation,
        wall: std::time::Duration::ZERO,
    }
}

/// Runs each seed of the range in a child process of its own (madsim keeps state in statics),
/// `--jobs` at a time, and reports the failures. Each child writes to files, so a chatty one
/// never blocks on a full pipe; the files of passing seeds are removed.
fn run_range(args: &Args, from: u64, to: u64) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot find own executable: {e}");
            return 2;
        }
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let dir = std::env::temp_dir().join(format!("ketch-sim-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return 2;
    }
    let started = wall_now();
    let mut next = from;
    let mut running: Vec<(u64, std::process::Child, std::time::Instant)> = Vec::new();
    let mut done: Vec<Outcome> = Vec::new();
    let mut last_progress = wall_now();
    loop {
        let caught = args.expect_failure && done.iter().any(|o| !o.passed);
        while running.len() < jobs && next < to && !caught {
            let seed = next;
            next += 1;
            let (Ok(out), Ok(err)) = (
                std::fs::File::create(dir.join(format!("{seed}.out"))),
                std::fs::File::create(dir.join(format!("{seed}.err"))),
            ) else {
                eprintln!("cannot create output files in {}", dir.display());
                return 2;
            };
            let mut cmd = std::process::Command::new(&exe);
            cmd.arg("--seed").arg(seed.to_string());
            cmd.arg("--scenario").arg(&args.scenario);
            cmd.arg("--duration-s").arg(args.duration_s.to_string());
            if let Some(bug) = &args.plant {
                cmd.arg("--plant").arg(bug);
            }
            cmd.stdout(out).stderr(err);
            match cmd.spawn() {
                Ok(child) => running.push((seed, child, wall_now())),
                Err(e) => {
                    eprintln!("seed {seed}: could not run: {e}");
                    return 2;
                }
            }
        }
        if running.is_empty() {
            break;
        }
        let mut i = 0;
        while i < running.len() {
            match running[i].1.try_wait() {
                Ok(Some(status)) => {
                    let (seed, _, t0) = running.swap_remove(i);
                    let read = |ext: &str| {
                        std::fs::read_to_string(dir.join(format!("{seed}.{ext}")))
                            .unwrap_or_default()
                    };
                    let mut o = outcome_of(seed, status, &read("out"), &read("err"));
                    o.wall = t0.elapsed();
                    if o.passed {
                        let _ = std::fs::remove_file(dir.join(format!("{seed}.out")));
                        let _ = std::fs::remove_file(dir.join(format!("{seed}.err")));
                    } else if !args.expect_failure {
                        println!("seed {seed} FAILED: {}", o.first_violation);
                        println!("  {}", replay_line(args, seed));
                        println!("  output kept in {}/{seed}.out and .err", dir.display());
                    }
                    done.push(o);
                }
                Ok(None) if running[i].2.elapsed() > SEED_WALL_LIMIT => {
                    // A run whose virtual time goes on forever (a loop that never ends) is a
                    // failure of its own, not a stuck campaign.
                    let _ = running[i].1.kill();
                    let _ = running[i].1.wait();
                    let (seed, _, t0) = running.swap_remove(i);
                    let o = Outcome {
                        seed,
                        passed: false,
                        first_violation: format!(
                            "TIMEOUT: no end after {SEED_WALL_LIMIT:?} of real time"
                        ),
                        wall: t0.elapsed(),
                    };
                    if !args.expect_failure {
                        println!("seed {seed} FAILED: {}", o.first_violation);
                        println!("  {}", replay_line(args, seed));
                    }
                    done.push(o);
                }
                Ok(None) => i += 1,
                Err(e) => {
                    eprintln!("waiting for a seed: {e}");
                    return 2;
                }
            }
        }
        if last_progress.elapsed() >= std::time::Duration::from_secs(10) {
            last_progress = wall_now();
            let failed = done.iter().filter(|o| !o.passed).count();
            println!(
                "progress: {} of {} seeds done, {failed} failed, {:.0} s",
                done.len(),
                to - from,
                started.elapsed().as_secs_f64()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = std::fs::remove_dir(&dir); // only if empty: failing seeds' files stay
    done.sort_by_key(|o| o.seed);
    let failed: Vec<&Outcome> = done.iter().filter(|o| !o.passed).collect();
    let wall = started.elapsed().as_secs_f64();
    let cpu: f64 = done.iter().map(|o| o.wall.as_secs_f64()).sum();
    let per_core = if cpu > 0.0 {
        done.len() as f64 / cpu
    } else {
        0.0
    };
    if args.expect_failure {
        return match failed.first() {
            Some(o) => {
                println!(
                    "planted bug caught at seed {}, after {} seeds: {}",
                    o.seed,
                    o.seed - from + 1,
                    o.first_violation
                );
                0
            }
            None => {
                println!("planted bug NOT caught in seeds {from}..{to}");
                1
            }
        };
    }
    println!(
        "{} passed, {} failed; {:.1} s wall with {jobs} jobs, {per_core:.2} seeds/s per job",
        done.len() - failed.len(),
        failed.len(),
        wall
    );
    if !failed.is_empty() {
        let seeds: Vec<String> = failed.iter().map(|o| o.seed.to_string()).collect();
        println!("failed seeds: {}", seeds.join(" "));
    }
    i32::from(!failed.is_empty())
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
    // The run gets a thread of its own: madsim seeds std's hash map keys from the run's seed
    // at the first RandomState of the thread the runtime starts on, and the log subscriber
    // made above already took the main thread's, at random. On the main thread a replay with
    // KETCH_SIM_LOG set was another run than the one without.
    #[allow(clippy::disallowed_methods)] // outside the runtime, which starts on this thread
    let run = std::thread::spawn(move || run_one(args));
    if run.join().is_err() {
        std::process::exit(101); // the panic was printed: an invariant failed
    }
}

fn run_one(args: Args) {
    // The first line replays the run; for the cluster it also says what the seed drew.
    #[cfg(madsim)]
    if args.scenario == "cluster" {
        println!(
            "{} | mix: {}",
            replay_line(&args, args.seed),
            cluster::Mix::draw(args.seed)
        );
    } else {
        println!("{}", replay_line(&args, args.seed));
    }
    #[cfg(not(madsim))]
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
        if args.scenario == "cluster" {
            let bugs = match args.plant.as_deref() {
                None => ketch::model::bugs::ClusterBugs::default(),
                Some(name) => match ketch::model::bugs::ClusterBugs::named(name) {
                    Some(b) => b,
                    None => {
                        eprintln!(
                            "unknown planted bug '{name}' for the cluster (known: {})",
                            ketch::model::bugs::ClusterBugs::NAMES.join(", ")
                        );
                        std::process::exit(2);
                    }
                },
            };
            finish(cluster::run(cluster::Options {
                seed: args.seed,
                duration_s: args.duration_s,
                verbose: args.verbose,
                bugs,
            }));
        }
        if args.scenario != "storage" {
            eprintln!(
                "unknown scenario '{}' (known: storage, quorum, cluster)",
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
