//! Benchmarks behind `ketch bench …`: measurements printed for a person, never assertions.
//!
//! Each log benchmark runs beside a baseline doing the same bytes through the same
//! [`RealDisk`] calls without the log, in the same run, so the two numbers are comparable.

use crate::broker::log_writer::{LogWriter, PlantedBugs};
use crate::log::{FlushPolicy, Log, LogConfig};
use crate::protocol::record_batch::build_batch;
use crate::runtime::{Clock, Disk, RealDisk};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One batch of `records` records of `record_bytes` bytes each.
pub fn sample_batch(records: usize, record_bytes: usize) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|i| {
            let mut v = vec![b'a' + (i % 26) as u8; record_bytes];
            v[..8].copy_from_slice(&(i as u64).to_be_bytes());
            v
        })
        .collect();
    let recs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, &v[..])).collect();
    build_batch(0, 1_700_000_000_000, &recs)
}

fn mib_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / elapsed.as_secs_f64().max(1e-9)
}

fn fresh_dir(disk: &RealDisk, dir: &Path) -> BenchResult<()> {
    if disk.exists(dir) {
        disk.remove_dir_all(dir)?;
    }
    disk.create_dir_all(dir)?;
    Ok(())
}

/// Benchmarks report any failure as text; there is nothing to recover.
pub type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

pub struct AppendBenchOptions {
    pub total_bytes: u64,
    pub records_per_batch: usize,
    pub record_bytes: usize,
    pub producers: usize,
    /// Bytes for the fsync runs (slower, so smaller).
    pub fsync_total_bytes: u64,
}

/// Log append throughput: no fsync, and fsync with group commit; each next to a raw write.
pub async fn log_append(dir: &Path, opts: AppendBenchOptions) -> BenchResult<()> {
    let disk = RealDisk;
    let clock = Clock::system();
    let batch = sample_batch(opts.records_per_batch, opts.record_bytes);
    let batch_bytes = batch.len() as u64;
    let batches = (opts.total_bytes / batch_bytes).max(1);
    let bytes = batches * batch_bytes;
    println!(
        "log append: {batches} batches of {batch_bytes} bytes ({} records of {} bytes), {:.0} MiB, in {}",
        opts.records_per_batch,
        opts.record_bytes,
        bytes as f64 / 1048576.0,
        dir.display()
    );

    // Raw (the same bytes, sequential pwrite, no log) and the log, alternately, twice: the
    // first writes of a run pay for warming the page cache and the allocator; keep the best.
    let shared: Arc<dyn Disk> = Arc::new(RealDisk);
    let config = LogConfig {
        flush: FlushPolicy::Interval {
            messages: u64::MAX,
            interval_ms: u64::MAX,
        },
        retention_ms: -1,
        ..LogConfig::default()
    };
    let mut raw_time = Duration::MAX;
    let mut log_time = Duration::MAX;
    for _round in 0..2 {
        fresh_dir(&disk, dir)?;
        let raw = disk.create(&dir.join("raw.bin"))?;
        let t0 = clock.monotonic();
        for i in 0..batches {
            raw.write_at(&batch, i * batch_bytes)?;
        }
        raw_time = raw_time.min(clock.monotonic() - t0);
        drop(raw);

        fresh_dir(&disk, dir)?;
        let (mut log, _) = Log::open(Arc::clone(&shared), &dir.join("bench-0"), config.clone(), 0)?;
        let mut buf = batch.clone();
        let t0 = clock.monotonic();
        for _ in 0..batches {
            log.append(&mut buf, Some(0), 0)?;
        }
        log_time = log_time.min(clock.monotonic() - t0);
    }
    let raw_rate = mib_per_s(bytes, raw_time);
    let log_rate = mib_per_s(bytes, log_time);
    println!(
        "  no fsync : raw write {raw_rate:8.1} MiB/s | log append {log_rate:8.1} MiB/s ({:.1}% of raw, {:.0} batches/s)",
        100.0 * log_rate / raw_rate,
        batches as f64 / log_time.as_secs_f64()
    );

    // Fsync: raw write + fdatasync per batch, then the log with group commit.
    let sync_batches = (opts.fsync_total_bytes / batch_bytes).max(1);
    let sync_bytes = sync_batches * batch_bytes;
    fresh_dir(&disk, dir)?;
    let raw = disk.create(&dir.join("raw.bin"))?;
    let t0 = clock.monotonic();
    for i in 0..sync_batches {
        raw.write_at(&batch, i * batch_bytes)?;
        raw.sync()?;
    }
    let raw_sync_time = clock.monotonic() - t0;
    drop(raw);
    let raw_sync_rate = mib_per_s(sync_bytes, raw_sync_time);

    fresh_dir(&disk, dir)?;
    let config = LogConfig {
        flush: FlushPolicy::EveryAppend,
        retention_ms: -1,
        ..LogConfig::default()
    };
    let (log, _) = Log::open(Arc::clone(&shared), &dir.join("bench-0"), config, 0)?;
    let log = Arc::new(std::sync::RwLock::new(Some(log)));
    let (writer, task) = LogWriter::spawn(Arc::clone(&log), clock.clone(), PlantedBugs::default());
    let per_producer = sync_batches / opts.producers as u64;
    let t0 = clock.monotonic();
    let mut producers = Vec::new();
    for _ in 0..opts.producers {
        let writer = writer.clone();
        let batch = batch.clone();
        producers.push(crate::runtime::spawn(async move {
            let mut latencies_us = Vec::with_capacity(per_producer as usize);
            let clock = Clock::system();
            for _ in 0..per_producer {
                let start = clock.monotonic();
                writer
                    .append(batch.clone(), Some(0))
                    .await
                    .map_err(|e| e.to_string())?;
                latencies_us.push((clock.monotonic() - start).as_micros() as u64);
            }
            Ok::<Vec<u64>, String>(latencies_us)
        }));
    }
    let mut latencies = Vec::new();
    for p in producers {
        latencies.extend(p.await.map_err(|e| e.to_string())??);
    }
    let group_time = clock.monotonic() - t0;
    let groups = writer
        .stats()
        .groups
        .load(std::sync::atomic::Ordering::Relaxed);
    let appends = writer
        .stats()
        .appends
        .load(std::sync::atomic::Ordering::Relaxed);
    drop(writer);
    task.await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    latencies.sort_unstable();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let group_bytes = per_producer * opts.producers as u64 * batch_bytes;
    let group_rate = mib_per_s(group_bytes, group_time);
    println!(
        "  fsync    : raw write+fdatasync per batch {raw_sync_rate:8.1} MiB/s | log group commit, {} producers {group_rate:8.1} MiB/s ({:.1}x raw); append latency p50 {} us, p99 {} us; {appends} appends in {groups} fsync groups",
        opts.producers,
        group_rate / raw_sync_rate,
        pct(0.5),
        pct(0.99)
    );
    fresh_dir(&disk, dir)?;
    disk.remove_dir_all(dir)?;
    Ok(())
}

/// Recovery time of a log of `size_bytes`: after a clean shutdown, and after a crash with
/// unflushed tails of several sizes (simulated by reopening from an older recovery point, which
/// is exactly what a crash leaves: the checkpoint lags the data on disk).
pub fn log_recovery(dir: &Path, size_bytes: u64, segment_bytes: u64) -> BenchResult<()> {
    let disk = RealDisk;
    let clock = Clock::system();
    let shared: Arc<dyn Disk> = Arc::new(RealDisk);
    let batch = sample_batch(16, 1024);
    let batch_bytes = batch.len() as u64;
    let records_per_batch = 16u64;
    let batches = (size_bytes / batch_bytes).max(1);
    let config = LogConfig {
        segment_bytes_max: segment_bytes,
        retention_ms: -1,
        ..LogConfig::default()
    };
    fresh_dir(&disk, dir)?;
    let log_dir = dir.join("bench-0");
    let (mut log, _) = Log::open(Arc::clone(&shared), &log_dir, config.clone(), 0)?;
    let mut buf = batch.clone();
    for _ in 0..batches {
        log.append(&mut buf, Some(0), 0)?;
    }
    let end = log.close()?;
    println!(
        "log recovery: {:.0} MiB in {} segment(s) of up to {} MiB, {} offsets (files in the page cache)",
        (batches * batch_bytes) as f64 / 1048576.0,
        batches * batch_bytes / segment_bytes + 1,
        segment_bytes >> 20,
        end
    );
    let t0 = clock.monotonic();
    let (log, notes) = Log::open(Arc::clone(&shared), &log_dir, config.clone(), end)?;
    let clean = clock.monotonic() - t0;
    assert_eq!(log.log_end_offset(), end, "recovery lost data");
    drop(log);
    println!(
        "  after a clean shutdown: {:8.2} ms ({} repairs)",
        clean.as_secs_f64() * 1e3,
        notes.len()
    );
    for tail_mib in [0u64, 16, 64, 256] {
        let tail_batches = (tail_mib << 20) / batch_bytes;
        if tail_batches > batches {
            continue;
        }
        let recovery_point = (batches - tail_batches) * records_per_batch;
        let t0 = clock.monotonic();
        let (log, _) = Log::open(
            Arc::clone(&shared),
            &log_dir,
            config.clone(),
            recovery_point,
        )?;
        let took = clock.monotonic() - t0;
        assert_eq!(log.log_end_offset(), end, "recovery lost data");
        drop(log);
        println!(
            "  after a crash with {tail_mib:3} MiB unflushed: {:8.2} ms ({:.0} MiB/s scanned)",
            took.as_secs_f64() * 1e3,
            mib_per_s(tail_batches * batch_bytes, took)
        );
    }
    disk.remove_dir_all(dir)?;
    Ok(())
}

/// Three quorum members on loopback in this process (real TCP, real disk): time to the first
/// leader, commit latency of `proposals` sequential metadata entries (propose on the leader until
/// its high watermark passes the entry, which needs a majority's fsync), and the time from the
/// leader's death (its tasks aborted, sockets closed, as a SIGKILL leaves them) to a new leader
/// with the defaults (election timeout 1 s, fetch timeout 2 s).
pub async fn quorum(dir: &Path, proposals: usize) -> BenchResult<()> {
    use crate::log::{LogDir, MetaProperties};
    use crate::model::METADATA_TOPIC;
    use crate::model::{NodeId, TopicPartition, Uuid};
    use crate::quorum::storage::METADATA_LOG_DIR_NAME;
    use crate::quorum::{self as quorum_server, proposal_channel, QuorumConfig, QuorumStatus};
    use crate::raft::Role;
    use std::collections::BTreeMap;

    let disk = RealDisk;
    fresh_dir(&disk, dir)?;
    let clock = Clock::system();
    let mut ports = Vec::new();
    for _ in 0..3 {
        // Ask the OS for a free port, then let it go for the member to take.
        let l = crate::runtime::net::TcpListener::bind("127.0.0.1:0").await?;
        ports.push(l.local_addr()?.port());
    }
    let voters: BTreeMap<NodeId, (String, u16)> = (0..3)
        .map(|i| (NodeId(i as i32 + 1), ("127.0.0.1".to_string(), ports[i])))
        .collect();
    let status: Arc<Mutex<BTreeMap<NodeId, QuorumStatus>>> = Arc::default();
    let changed = Arc::new(tokio::sync::Notify::new());
    let mut members = Vec::new();
    let shared: Arc<dyn Disk> = Arc::new(RealDisk);
    let started = clock.monotonic();
    for (i, port) in ports.iter().copied().enumerate() {
        let node_id = NodeId(i as i32 + 1);
        let meta_dir = dir.join(format!("node-{}", i + 1));
        let meta = MetaProperties {
            cluster_id: "YmVuY2gtcXVvcnVtLWlkAA".into(),
            node_id,
            directory_id: Uuid::from_random([i as u8; 16]),
        };
        LogDir::format(Arc::clone(&shared), &meta_dir, &meta, false)?;
        let (log_dir, _, _) = LogDir::open(Arc::clone(&shared), &meta_dir, None, node_id, |_| {
            LogConfig::default()
        })?;
        let log = log_dir.create_log(
            &TopicPartition::new(METADATA_TOPIC, 0),
            LogConfig::default(),
        )?;
        let (handle, rx) = proposal_channel();
        let status2 = Arc::clone(&status);
        let changed2 = Arc::clone(&changed);
        let config = QuorumConfig {
            node_id,
            cluster_id: meta.cluster_id.clone(),
            voters: voters.clone(),
            listen: Some(("127.0.0.1".into(), port)),
            listener_name: "CONTROLLER".into(),
            listener_security: Default::default(),
            bootstrap_records: Vec::new(),
            authorizer: None,
            connector: crate::wire::Connector::plain(),
            max_connections: 1000,
            metadata_dir: meta_dir.join(METADATA_LOG_DIR_NAME),
            election_timeout_ms: 1000,
            fetch_timeout_ms: 2000,
            snapshot_interval_bytes: 20 << 20,
            snapshot_interval_ms: 3_600_000,
            controller: Default::default(),
            observer: Some(Arc::new(move |s: &QuorumStatus| {
                let mut map = status2
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if map.get(&s.node_id) != Some(s) {
                    map.insert(s.node_id, s.clone());
                    changed2.notify_waiters();
                }
            })),
            image: None,
            bugs: Default::default(),
        };
        let task = crate::runtime::spawn(quorum_server::run(
            config,
            Arc::clone(&shared),
            log,
            clock.clone(),
            i as u64 + 1,
            rx,
            std::future::pending(),
        ));
        members.push((handle, task));
    }
    let leader_of = |status: &Mutex<BTreeMap<NodeId, QuorumStatus>>, alive: &[bool]| {
        let map = status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.values()
            .find(|s| s.role == Role::Leader && alive[(s.node_id.0 - 1) as usize])
            .map(|s| (s.node_id, s.epoch))
    };
    // Wakes on the next status change, or after 20 ms at the latest.
    let wait_change = |changed: Arc<tokio::sync::Notify>| async move {
        let _ = tokio::time::timeout(Duration::from_millis(20), changed.notified()).await;
    };
    let mut alive = [true; 3];
    let (leader, epoch) = loop {
        if let Some(l) = leader_of(&status, &alive) {
            break l;
        }
        wait_change(Arc::clone(&changed)).await;
    };
    let first_leader = clock.monotonic() - started;
    println!(
        "quorum of 3 on loopback, data in {}: first leader (node {leader}, epoch {epoch}) after {:.0} ms",
        dir.display(),
        first_leader.as_secs_f64() * 1e3
    );
    let handle = members[(leader.0 - 1) as usize].0.clone();
    let mut latencies_us = Vec::with_capacity(proposals);
    for n in 0..proposals {
        let t0 = clock.monotonic();
        // A real metadata record (a config change), as the controller would write.
        let record = crate::controller::MetadataRecord::Config {
            resource: "topic".into(),
            name: "ketch-bench-quorum".into(),
            key: format!("k{n}"),
            value: Some(n.to_string()),
        };
        let (offset, _) = handle.propose(record.encode()?).await?;
        loop {
            // Registered before the check, so a change in between is not missed.
            let notified = changed.notified();
            let committed = {
                let map = status
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                map.get(&leader).is_some_and(|s| s.high_watermark > offset)
            };
            if committed {
                break;
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
        latencies_us.push((clock.monotonic() - t0).as_micros() as u64);
    }
    latencies_us.sort_unstable();
    let pct = |p: f64| {
        latencies_us[((latencies_us.len() as f64 * p) as usize).min(latencies_us.len() - 1)]
    };
    println!(
        "  commit latency of {proposals} sequential entries: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(0.5) as f64 / 1e3,
        pct(0.99) as f64 / 1e3,
        pct(1.0) as f64 / 1e3
    );
    // The leader dies: its tasks go, its sockets close.
    members[(leader.0 - 1) as usize].1.abort();
    alive[(leader.0 - 1) as usize] = false;
    let t0 = clock.monotonic();
    let (new_leader, new_epoch) = loop {
        if let Some((l, e)) = leader_of(&status, &alive) {
            if e > epoch {
                break (l, e);
            }
        }
        wait_change(Arc::clone(&changed)).await;
        if clock.monotonic() - t0 > Duration::from_secs(30) {
            return Err("no new leader within 30 s".into());
        }
    };
    println!(
        "  leader {leader} killed: node {new_leader} leads epoch {new_epoch} after {:.0} ms",
        (clock.monotonic() - t0).as_secs_f64() * 1e3
    );
    for (_, task) in &members {
        task.abort();
    }
    disk.remove_dir_all(dir)?;
    Ok(())
}

pub struct CleanerBenchOptions {
    pub size_bytes: u64,
    pub keys: u64,
    pub record_bytes: usize,
    pub segment_bytes: u64,
    /// `log.cleaner.io.max.bytes.per.second` for the throttled run.
    pub throttle_bytes_per_second: u64,
}

/// A compacted log of `size_bytes` of updates to `keys` keys (16 records a batch, in
/// `codec`), rolled so all of it is cleanable.
fn compacted_log(
    shared: &Arc<dyn Disk>,
    dir: &Path,
    opts: &CleanerBenchOptions,
    codec: u8,
) -> BenchResult<Log> {
    use crate::protocol::record_batch::decoded::{encode, DecodedBatch, OwnedRecord};
    let config = LogConfig {
        segment_bytes_max: opts.segment_bytes,
        retention_ms: -1,
        offset_gaps_allowed: true,
        cleanup: crate::log::CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio_ppm: 0,
        ..LogConfig::default()
    };
    let (mut log, _) = Log::open(Arc::clone(shared), dir, config, 0)?;
    let mut n = 0u64;
    while log.size_bytes() < opts.size_bytes {
        let base = log.log_end_offset() as i64;
        let records = (0..16)
            .map(|i| {
                n += 1;
                // Values vary (xorshift), so compressed batches are not trivially small.
                let mut v = vec![0u8; opts.record_bytes];
                let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for b in v.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = b'a' + (x % 16) as u8;
                }
                OwnedRecord {
                    offset: base + i,
                    timestamp_ms: 1_700_000_000_000,
                    key: Some(format!("key-{}", (n * 7919) % opts.keys).into_bytes()),
                    value: Some(v),
                    headers_raw: vec![0],
                }
            })
            .collect();
        let mut batch = encode(&DecodedBatch {
            base_offset: base,
            partition_leader_epoch: 0,
            attributes: i16::from(codec),
            last_offset_delta: 15,
            base_timestamp_ms: 1_700_000_000_000,
            max_timestamp_ms: 1_700_000_000_000,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            records,
        })?;
        log.append(&mut batch, Some(0), 1_700_000_000_000)?;
    }
    log.roll()?;
    log.flush()?;
    Ok(log)
}

/// Cleaner throughput (MiB/s of dirty log read and rewritten) for each codec, then the append
/// latency a producer sees on the same disk while a clean runs the way the broker runs it
/// (steps outside the log's lock, each group swapped in under it), unthrottled and throttled,
/// beside no clean at all.
pub async fn cleaner(dir: &Path, opts: CleanerBenchOptions) -> BenchResult<()> {
    use crate::log::Step;
    let disk = RealDisk;
    let clock = Clock::system();
    let shared: Arc<dyn Disk> = Arc::new(RealDisk);
    fresh_dir(&disk, dir)?;
    println!(
        "cleaner: {} MiB of 16-record batches of {}-byte values, {} keys, segments of {} MiB",
        opts.size_bytes >> 20,
        opts.record_bytes,
        opts.keys,
        opts.segment_bytes >> 20
    );
    for (name, codec) in [("none", 0u8), ("lz4", 3), ("zstd", 4), ("gzip", 1)] {
        let mut log = compacted_log(&shared, &dir.join(format!("clean-{name}")), &opts, codec)?;
        let before = log.size_bytes();
        let end = log.log_end_offset();
        let t0 = clock.monotonic();
        let r = log.clean_now(0, end)?;
        let took = clock.monotonic() - t0;
        println!(
            "  {name:>5}: {:7.1} MiB/s of dirty log ({:.0} MiB in {:.2} s), {} -> {} KiB, {} records removed",
            mib_per_s(before, took),
            before as f64 / 1048576.0,
            took.as_secs_f64(),
            before >> 10,
            log.size_bytes() >> 10,
            r.records_removed
        );
    }
    // Append latency during a clean: a producer appends 16 KiB batches to a second log on the
    // same disk while the first is cleaned.
    let batch = sample_batch(16, 1024);
    for (label, throttle) in [
        ("no clean", None),
        ("clean, unthrottled", Some(None)),
        (
            "clean, throttled",
            Some(Some(opts.throttle_bytes_per_second)),
        ),
    ] {
        let table = Arc::new(std::sync::RwLock::new(compacted_log(
            &shared,
            &dir.join("latency-table"),
            &opts,
            0,
        )?));
        let produced = {
            let config = LogConfig {
                segment_bytes_max: opts.segment_bytes,
                retention_ms: -1,
                ..LogConfig::default()
            };
            let p = dir.join("latency-produce");
            if disk.exists(&p) {
                disk.remove_dir_all(&p)?;
            }
            Arc::new(std::sync::RwLock::new(
                Log::open(Arc::clone(&shared), &p, config, 0)?.0,
            ))
        };
        let cleaning_done = Arc::new(std::sync::atomic::AtomicBool::new(throttle.is_none()));
        let cleaner_task = {
            let table = Arc::clone(&table);
            let done = Arc::clone(&cleaning_done);
            let clock = clock.clone();
            crate::runtime::spawn(async move {
                let Some(rate) = throttle else {
                    return (0u64, Duration::ZERO, Duration::MAX);
                };
                let throttle = crate::broker::cleaner::Throttle::new(rate);
                // Give the producer a moment to start, so the window holds the whole clean.
                crate::runtime::sleep(Duration::from_millis(200)).await;
                let t0 = clock.monotonic();
                let mut bytes = 0;
                let end = table.read().map(|l| l.log_end_offset()).unwrap_or(0);
                let cleaning = table
                    .read()
                    .ok()
                    .and_then(|l| l.start_cleaning(0, end, true));
                let mut cleaning = cleaning;
                while let Some(mut c) = cleaning.take() {
                    let budget = throttle.step_bytes();
                    let (c2, step) = crate::runtime::blocking(move || {
                        let s = c.step(budget);
                        (c, s)
                    })
                    .await;
                    c = c2;
                    match step {
                        Ok(Step::Progress(n)) => {
                            bytes += n;
                            let wait = throttle.delay_after(n, clock.monotonic_ms());
                            if !wait.is_zero() {
                                crate::runtime::sleep(wait).await;
                            }
                            cleaning = Some(c);
                        }
                        Ok(Step::Group(g)) => {
                            let t = Arc::clone(&table);
                            let _ = crate::runtime::blocking(move || {
                                t.write().ok().map(|mut l| l.install_cleaned(g))
                            })
                            .await;
                            cleaning = Some(c);
                        }
                        Ok(Step::Done) | Err(_) => {}
                    }
                }
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                (bytes, t0, clock.monotonic())
            })
        };
        // The producer: appends until the clean is done (and at least 2 s), timing each.
        let producer = {
            let produced = Arc::clone(&produced);
            let done = Arc::clone(&cleaning_done);
            let clock = clock.clone();
            let batch = batch.clone();
            crate::runtime::blocking(move || {
                let mut latencies_us = Vec::new();
                let t0 = clock.monotonic();
                let mut buf = batch.clone();
                while !done.load(std::sync::atomic::Ordering::SeqCst)
                    || clock.monotonic() - t0 < Duration::from_secs(2)
                {
                    let a = clock.monotonic();
                    if let Ok(mut log) = produced.write() {
                        buf.copy_from_slice(&batch);
                        let _ = log.append(&mut buf, Some(0), 0);
                        let _ = log.flush();
                    }
                    latencies_us.push((a, (clock.monotonic() - a).as_micros() as u64));
                    if clock.monotonic() - t0 > Duration::from_secs(120) {
                        break;
                    }
                }
                latencies_us
            })
        };
        let (timed, cleaned) = (producer.await, cleaner_task.await);
        let (clean_bytes, clean_from, clean_to) =
            cleaned.unwrap_or((0, Duration::ZERO, Duration::MAX));
        let clean_took = clean_to.saturating_sub(clean_from);
        // Only the appends made while the clean ran (all of them without a clean).
        let mut latencies_us: Vec<u64> = timed
            .iter()
            .filter(|(at, _)| *at >= clean_from && *at <= clean_to)
            .map(|(_, us)| *us)
            .collect();
        if latencies_us.is_empty() {
            latencies_us.push(0);
        }
        latencies_us.sort_unstable();
        let pct = |p: f64| {
            latencies_us[((latencies_us.len() as f64 * p) as usize).min(latencies_us.len() - 1)]
        };
        let rate = match throttle {
            Some(Some(r)) => format!(" at {} MiB/s", r >> 20),
            _ => String::new(),
        };
        println!(
            "  {label}{rate}: fsynced appends p50 {} us, p99 {} us, max {} us over {} appends made while it ran{}",
            pct(0.5),
            pct(0.99),
            latencies_us.last().copied().unwrap_or(0),
            latencies_us.len(),
            if throttle.is_some() {
                format!(
                    "; cleaner read {:.0} MiB in {:.2} s ({:.1} MiB/s)",
                    clean_bytes as f64 / 1048576.0,
                    clean_took.as_secs_f64(),
                    mib_per_s(clean_bytes, clean_took)
                )
            } else {
                String::new()
            }
        );
        drop(table);
        drop(produced);
        disk.remove_dir_all(&dir.join("latency-table"))?;
    }
    disk.remove_dir_all(dir)?;
    Ok(())
}
