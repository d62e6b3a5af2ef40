//! Tests of compaction against a map model: random puts and deletes in batches (in every codec),
//! rolls, cleans and power cuts at any operation of a clean (the disk stops mid-clean, then
//! crashes). After each step, reading the log from any offset must give, for every key, its
//! latest value at or after that offset, with offsets unchanged; a tombstone may vanish only
//! after `delete.retention.ms`, and a deleted key never comes back.

use super::cleaner::decode_all;
use super::*;
use crate::protocol::record_batch::decoded::{self, DecodedBatch, OwnedRecord};
use crate::runtime::{Disk, DiskFaults, DiskFile, SimDisk};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

const DELETE_RETENTION_MS: i64 = 1_000;

fn dir() -> PathBuf {
    PathBuf::from("/data/compacted-0")
}

fn config(segment_bytes_max: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes: 256,
        retention_ms: -1,
        offset_gaps_allowed: true,
        cleanup: CleanupPolicy::COMPACT,
        min_cleanable_dirty_ratio_ppm: 0,
        delete_retention_ms: DELETE_RETENTION_MS,
        ..LogConfig::default()
    }
}

/// A disk whose power is cut after a number of operations: from then on every mutating call
/// fails, so a clean stops exactly there; the test then crashes the [`SimDisk`] under it.
#[derive(Debug, Clone)]
struct PowerCut {
    inner: SimDisk,
    ops_left: Arc<AtomicI64>,
}

impl PowerCut {
    fn tick(&self) -> io::Result<()> {
        if self.ops_left.fetch_sub(1, Ordering::SeqCst) <= 0 {
            Err(io::Error::other("power cut"))
        } else {
            Ok(())
        }
    }
}

#[derive(Debug)]
struct CutFile {
    inner: Arc<dyn DiskFile>,
    cut: PowerCut,
}

impl DiskFile for CutFile {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.inner.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.cut.tick()?;
        self.inner.write_at(buf, offset)
    }
    fn sync(&self) -> io::Result<()> {
        self.cut.tick()?;
        self.inner.sync()
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.cut.tick()?;
        self.inner.truncate(len)
    }
}

impl Disk for PowerCut {
    fn create(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        self.tick()?;
        let inner = self.inner.create(path)?;
        Ok(Arc::new(CutFile {
            inner,
            cut: self.clone(),
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn DiskFile>> {
        let inner = self.inner.open(path)?;
        Ok(Arc::new(CutFile {
            inner,
            cut: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.remove(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.remove_dir_all(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.tick()?;
        self.inner.sync_dir(dir)
    }
}

#[derive(Debug, Clone)]
enum Op {
    /// Records (key, value or tombstone) in one batch of a codec.
    Batch(Vec<(u8, Option<u16>)>, u8),
    Roll,
    /// Advance the clock by this much, then clean.
    Clean(i64),
    /// Clean with the power cut after this many operations, then crash and reopen.
    CutClean(i64, u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (proptest::collection::vec((0u8..6, proptest::option::weighted(0.8, 0u16..1000)), 1..6),
              proptest::sample::select(vec![0u8, 1, 2, 3, 4]))
            .prop_map(|(r, c)| Op::Batch(r, c)),
        2 => Just(Op::Roll),
        2 => (0i64..800).prop_map(Op::Clean),
        2 => (0i64..800, 0u16..40).prop_map(|(t, n)| Op::CutClean(t, n)),
    ]
}

/// One record the model knows: where it is, what it says, and when it was written.
#[derive(Debug, Clone)]
struct Written {
    offset: u64,
    key: u8,
    value: Option<u16>,
    written_ms: i64,
}

fn value_bytes(key: u8, v: u16) -> Vec<u8> {
    let mut b = format!("{key}={v}:").into_bytes();
    b.resize(40, b'x');
    b
}

fn encode_records(base: u64, now_ms: i64, records: &[(u8, Option<u16>)], codec: u8) -> Vec<u8> {
    let recs = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| OwnedRecord {
            offset: base as i64 + i as i64,
            timestamp_ms: now_ms,
            key: Some(vec![b'k', *k]),
            value: v.map(|v| value_bytes(*k, v)),
            headers_raw: vec![0],
        })
        .collect::<Vec<_>>();
    decoded::encode(&DecodedBatch {
        base_offset: base as i64,
        partition_leader_epoch: 0,
        attributes: i16::from(codec),
        last_offset_delta: records.len() as i32 - 1,
        base_timestamp_ms: now_ms,
        max_timestamp_ms: now_ms,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
        records: recs,
    })
    .unwrap()
}

/// Every record the log holds from `from` on, in order, as (offset, key, value).
fn read_from(log: &Log, from: u64) -> Vec<(u64, u8, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    let mut offset = from;
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 16, None).unwrap();
        if bytes.is_empty() {
            break;
        }
        let mut next = offset;
        let mut rest = &bytes[..];
        while let Ok((b, tail)) =
            crate::protocol::record_batch::RecordBatch::parse(rest, usize::MAX)
        {
            next = b.last_offset() as u64 + 1;
            rest = tail;
        }
        for d in decode_all(&bytes) {
            for r in d.records {
                if r.offset as u64 >= from {
                    let key = r.key.as_ref().map_or(255, |k| k[1]);
                    out.push((r.offset as u64, key, r.value));
                }
            }
        }
        assert!(next > offset, "reads make progress");
        offset = next;
    }
    out
}

/// The model check: see the module docs.
fn check(log: &Log, model: &[Written], now_ms: i64) -> Result<(), TestCaseError> {
    let end = model.last().map_or(0, |w| w.offset + 1);
    prop_assert_eq!(log.log_end_offset(), end, "log end");
    let all = read_from(log, 0);
    // Nothing invented, nothing moved, order kept.
    let by_offset: BTreeMap<u64, &Written> = model.iter().map(|w| (w.offset, w)).collect();
    let mut last = None;
    for (offset, key, value) in &all {
        let w = by_offset.get(offset);
        prop_assert!(
            w.is_some(),
            "offset {} is not a record the model wrote",
            offset
        );
        let w = w.unwrap();
        prop_assert_eq!(*key, w.key);
        prop_assert_eq!(value.clone(), w.value.map(|v| value_bytes(w.key, v)));
        prop_assert!(last < Some(*offset), "offsets in order");
        last = Some(*offset);
    }
    let mut latest: BTreeMap<u8, &Written> = BTreeMap::new();
    for w in model {
        latest.insert(w.key, w);
    }
    // From every offset: each key's latest record at or after it is there.
    let starts: Vec<u64> = (0..=end).step_by(((end / 25) as usize).max(1)).collect();
    for from in starts {
        let seen: Vec<_> = all.iter().filter(|(o, ..)| *o >= from).collect();
        for (key, w) in &latest {
            if w.offset < from {
                continue;
            }
            let last_seen = seen.iter().rev().find(|(_, k, _)| k == key);
            match (last_seen, w.value) {
                (Some((o, ..)), _) => {
                    prop_assert_eq!(*o, w.offset, "key {}: latest is {}", key, w.offset)
                }
                (None, None) => {
                    prop_assert!(
                        now_ms >= w.written_ms + DELETE_RETENTION_MS,
                        "key {}: tombstone at {} gone after {} ms",
                        key,
                        w.offset,
                        now_ms - w.written_ms
                    );
                }
                (None, Some(_)) => {
                    prop_assert!(false, "key {}: latest value at {} lost", key, w.offset)
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
    #[test]
    fn compaction_keeps_the_latest_value_of_every_key(
        seed in any::<u64>(),
        segment_bytes in 300u64..2000,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let sim = SimDisk::new(seed, DiskFaults::default());
        let ops_left = Arc::new(AtomicI64::new(i64::MAX));
        let disk: Arc<dyn Disk> = Arc::new(PowerCut { inner: sim.clone(), ops_left: Arc::clone(&ops_left) });
        let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), config(segment_bytes), 0).unwrap();
        let mut model: Vec<Written> = Vec::new();
        let mut now_ms = 1_000_000i64;
        let mut cleaned_any = false;
        for op in ops {
            match op {
                Op::Batch(records, codec) => {
                    now_ms += 10;
                    let base = log.log_end_offset();
                    let mut bytes = encode_records(base, now_ms, &records, codec);
                    log.append(&mut bytes, Some(0), now_ms).unwrap();
                    // Durable at once: the test is of the cleaner, not of unsynced appends.
                    log.flush().unwrap();
                    for (i, (k, v)) in records.iter().enumerate() {
                        model.push(Written { offset: base + i as u64, key: *k, value: *v, written_ms: now_ms });
                    }
                }
                Op::Roll => log.roll().unwrap(),
                Op::Clean(dt) => {
                    now_ms += dt;
                    let end = log.log_end_offset();
                    let report = log.clean_now(now_ms, end).unwrap();
                    cleaned_any |= report.segments_cleaned > 0;
                }
                Op::CutClean(dt, after) => {
                    now_ms += dt;
                    let end = log.log_end_offset();
                    ops_left.store(i64::from(after), Ordering::SeqCst);
                    let result = log.clean_now(now_ms, end);
                    ops_left.store(i64::MAX, Ordering::SeqCst);
                    if result.is_err() {
                        drop(log);
                        sim.crash();
                        let flushed = model.last().map_or(0, |w| w.offset + 1);
                        log = Log::open(Arc::clone(&disk), &dir(), config(segment_bytes), flushed).unwrap().0;
                    }
                }
            }
            check(&log, &model, now_ms)?;
        }
        // A final clean long after everything: the table is exactly the model's, minus the
        // tombstones that had their time.
        now_ms += 10 * DELETE_RETENTION_MS;
        log.roll().unwrap();
        let end = log.log_end_offset();
        log.clean_now(now_ms, end).unwrap();
        log.clean_now(now_ms + 1, end).unwrap();
        check(&log, &model, now_ms)?;
        let _ = cleaned_any;
    }
}

#[test]
fn a_compacted_log_shrinks_keeps_offsets_and_reopens() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(7, DiskFaults::default()));
    let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), config(4096), 0).unwrap();
    for i in 0..400u16 {
        let mut b = encode_records(
            log.log_end_offset(),
            1000 + i64::from(i),
            &[((i % 4) as u8, Some(i))],
            0,
        );
        log.append(&mut b, Some(0), 1000).unwrap();
    }
    log.roll().unwrap();
    let before = log.size_bytes();
    let report = log.clean_now(2000, log.log_end_offset()).unwrap();
    assert!(report.segments_cleaned > 1, "{report:?}");
    assert!(
        log.size_bytes() < before / 4,
        "{} of {before} bytes left",
        log.size_bytes()
    );
    let got = read_from(&log, 0);
    let offsets: Vec<u64> = got.iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![396, 397, 398, 399]);
    let end = log.close().unwrap();
    let (log, notes) = Log::open(Arc::clone(&disk), &dir(), config(4096), end).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    assert_eq!(read_from(&log, 0).len(), 4);
    assert_eq!(
        read_from(&log, 5).len(),
        4,
        "a read from inside a gap starts at the next record"
    );
    assert_eq!(log.log_end_offset(), 400);
}

/// Kafka keeps each producer's last batch through compaction, empty if need be, so that the
/// producer's sequence numbers (and so its idempotence) survive: base sequence and last
/// offset delta stay.
#[test]
fn a_producers_last_batch_stays_when_all_its_records_are_superseded() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(9, DiskFaults::default()));
    let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), config(1 << 20), 0).unwrap();
    let batch = |log: &Log, pid: i64, seq: i32, keys: &[u8]| {
        let base = log.log_end_offset() as i64;
        decoded::encode(&DecodedBatch {
            base_offset: base,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: keys.len() as i32 - 1,
            base_timestamp_ms: 5,
            max_timestamp_ms: 5,
            producer_id: pid,
            producer_epoch: 2,
            base_sequence: seq,
            records: keys
                .iter()
                .enumerate()
                .map(|(i, k)| OwnedRecord {
                    offset: base + i as i64,
                    timestamp_ms: 5,
                    key: Some(vec![*k]),
                    value: Some(vec![pid as u8]),
                    headers_raw: vec![0],
                })
                .collect(),
        })
        .unwrap()
    };
    for (pid, seq, keys) in [(5, 0, &b"ab"[..]), (5, 2, b"ab"), (7, 0, b"abc")] {
        let mut b = batch(&log, pid, seq, keys);
        log.append(&mut b, Some(0), 5).unwrap();
    }
    let mut tail = batch(&log, 8, 0, b"z");
    log.append(&mut tail, Some(0), 5).unwrap();
    log.roll().unwrap();
    let end = log.log_end_offset();
    log.clean_now(10, end).unwrap();
    let bytes = log.read(0, 1 << 20, None).unwrap();
    let batches = decode_all(&bytes);
    let summary: Vec<(i64, i64, i32, i32, usize)> = batches
        .iter()
        .map(|b| {
            (
                b.base_offset,
                b.producer_id,
                b.base_sequence,
                b.last_offset_delta,
                b.records.len(),
            )
        })
        .collect();
    // Producer 5's first batch goes; its last stays, empty, with its sequence range; producer
    // 7's batch and the last one stay whole.
    assert_eq!(
        summary,
        vec![(2, 5, 2, 1, 0), (4, 7, 0, 2, 3), (7, 8, 0, 0, 1)]
    );
}

/// A read that meets only empty batches goes on to the next segment, but never past a batch of
/// its own segment that it could not fit (that batch would be skipped).
#[test]
fn a_read_past_empty_batches_skips_nothing() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(11, DiskFaults::default()));
    let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), config(1 << 20), 0).unwrap();
    let empty = |base: u64| {
        decoded::encode(&DecodedBatch {
            base_offset: base as i64,
            partition_leader_epoch: 0,
            attributes: 0,
            last_offset_delta: 0,
            base_timestamp_ms: 1,
            max_timestamp_ms: 1,
            producer_id: 3,
            producer_epoch: 0,
            base_sequence: base as i32,
            records: Vec::new(),
        })
        .unwrap()
    };
    for _ in 0..2 {
        let mut b = empty(log.log_end_offset());
        log.append(&mut b, Some(0), 1).unwrap();
    }
    let mut big = encode_records(log.log_end_offset(), 1, &[(1, Some(7)); 20], 0);
    log.append(&mut big, Some(0), 1).unwrap();
    log.roll().unwrap();
    let mut next = encode_records(log.log_end_offset(), 1, &[(2, Some(8))], 0);
    log.append(&mut next, Some(0), 1).unwrap();
    // Room for the two empty batches and a small batch, not for the big one.
    let got = log.read(0, 2 * 61 + 200, None).unwrap();
    let offsets: Vec<(i64, usize)> = decode_all(&got)
        .iter()
        .map(|b| (b.base_offset, b.records.len()))
        .collect();
    assert_eq!(
        offsets,
        vec![(0, 0), (1, 0)],
        "stops before the batch it cannot fit"
    );
    let got = log.read(2, 2 * 61 + 200, None).unwrap();
    assert_eq!(
        decode_all(&got)[0].base_offset,
        2,
        "the big batch comes next, whole"
    );
    // With room for everything, the empty batches and the big one come in one read (the
    // read stops at the first batch with records).
    let got = log.read(0, 1 << 20, None).unwrap();
    assert_eq!(decode_all(&got).len(), 3);
}

/// The aborted-transaction index moves into the segment a clean merges, and a power cut at
/// any step of the clean and its swap, then a crash, leaves every entry in place.
#[test]
fn aborted_transactions_survive_a_clean_cut_at_every_step() {
    use crate::protocol::record_batch::{encode_batch, marker_batch, set_transactional_producer};
    let mut completed_at = None;
    for run in 0..200 * 16i64 {
        // Sixteen crashes (which keep a random prefix of the unsynced renames) per cut point.
        let cut_after = run / 16;
        let sim = SimDisk::new(run as u64, DiskFaults::default());
        let ops_left = Arc::new(AtomicI64::new(i64::MAX));
        let disk: Arc<dyn Disk> = Arc::new(PowerCut {
            inner: sim.clone(),
            ops_left: Arc::clone(&ops_left),
        });
        let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), config(4096), 0).unwrap();
        let mut expected = Vec::new();
        for pid in 1..=5i64 {
            let first = log.log_end_offset() as i64;
            for _ in 0..2 {
                let mut b = encode_batch(0, 5, &[(Some(b"k"), Some(b"in a transaction"))]);
                set_transactional_producer(&mut b, pid, 0);
                log.append(&mut b, Some(0), 5).unwrap();
            }
            // A plain record of the same key, which the clean supersedes.
            let mut plain = encode_batch(0, 5, &[(Some(b"p"), Some(b"plain"))]);
            log.append(&mut plain, Some(0), 5).unwrap();
            let abort = pid % 2 == 1;
            let mut m = marker_batch(pid, 0, 0, !abort, 5);
            let at = log.append(&mut m, Some(0), 5).unwrap().first_offset as i64;
            if abort {
                let e = AbortedTxn {
                    producer_id: pid,
                    first_offset: first,
                    last_offset: at,
                    last_stable_offset: at + 1,
                };
                log.append_aborted(e);
                expected.push(e);
            }
            log.roll().unwrap();
        }
        let end = log.log_end_offset();
        log.flush().unwrap();
        ops_left.store(cut_after, Ordering::SeqCst);
        let result = log.clean_now(10, end);
        ops_left.store(i64::MAX, Ordering::SeqCst);
        if let Ok(r) = &result {
            assert!(r.segments_cleaned > 1, "the clean merged nothing: {r:?}");
        }
        drop(log);
        sim.crash();
        let (log, _) = Log::open(Arc::clone(&disk), &dir(), config(4096), end).unwrap();
        assert_eq!(
            log.all_aborted(),
            expected,
            "power cut after {cut_after} operations"
        );
        // A read from the start names the aborted ones, one from past the first marker not it.
        assert_eq!(log.aborted_between(0, end as i64), expected);
        assert_eq!(
            log.aborted_between(expected[0].last_offset + 1, end as i64),
            expected[1..].to_vec()
        );
        if result.is_ok() {
            let n = completed_at.get_or_insert(cut_after);
            if cut_after > *n + 2 {
                break;
            }
        }
    }
    assert!(completed_at.is_some(), "no clean ever completed");
}
