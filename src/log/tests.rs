//! Tests of the partition log: a model-based property test against an in-memory `Vec` of
//! batches (with crashes that lose, tear or keep unsynced writes), recovery from arbitrary
//! corruption, and unit tests of retention, timestamps and the directory files.

use super::*;
use crate::model::{NodeId, TopicPartition, Uuid};
use crate::protocol::record_batch::{build_batch, RecordBatch};
use crate::runtime::{Disk, DiskFaults, SimDisk};
use proptest::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

fn dir() -> PathBuf {
    PathBuf::from("/data/t-0")
}

fn small_config(segment_bytes_max: u64, index_interval_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes_max,
        index_interval_bytes,
        retention_ms: -1,
        retention_bytes: -1,
        ..LogConfig::default()
    }
}

/// A batch whose contents are unique to `serial`, so a resurrected or misplaced batch shows.
fn batch(serial: u64, records: usize, value_len: usize, timestamp_ms: i64) -> Vec<u8> {
    let values: Vec<Vec<u8>> = (0..records)
        .map(|r| {
            let mut v = format!("{serial}:{r}:").into_bytes();
            v.resize(value_len.max(v.len()), b'a' + (serial % 26) as u8);
            v
        })
        .collect();
    let recs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, &v[..])).collect();
    build_batch(0, timestamp_ms, &recs)
}

/// Splits a buffer of whole batches into (base offset, last offset, bytes).
fn split(mut bytes: &[u8]) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (b, rest) =
            RecordBatch::parse(bytes, usize::MAX).expect("log returned an invalid batch");
        out.push((
            b.base_offset() as u64,
            b.last_offset() as u64,
            b.as_bytes().to_vec(),
        ));
        bytes = rest;
    }
    out
}

fn read_all(log: &Log) -> Vec<(u64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log.read(offset, 1 << 16, None).unwrap();
        let batches = split(&bytes);
        assert!(!batches.is_empty(), "no progress reading at {offset}");
        offset = batches.last().unwrap().1 + 1;
        out.extend(batches);
    }
    out
}

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: usize,
        value_len: usize,
    },
    Flush,
    Checkpoint,
    Read {
        pick: usize,
        max_bytes: usize,
    },
    Truncate {
        pick: usize,
    },
    Roll,
    RetainBytes {
        keep: u64,
    },
    /// DeleteRecords: the log start moves to an offset anywhere in the log (its checkpoint is
    /// written at once, so a crash keeps it).
    DeleteRecords {
        pick: usize,
    },
    Crash,
    CleanReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1usize..6, 0usize..1500).prop_map(|(records, value_len)| Op::Append { records, value_len }),
        3 => Just(Op::Flush),
        1 => Just(Op::Checkpoint),
        4 => (any::<usize>(), 1usize..8000).prop_map(|(pick, max_bytes)| Op::Read { pick, max_bytes }),
        1 => any::<usize>().prop_map(|pick| Op::Truncate { pick }),
        1 => Just(Op::Roll),
        1 => (0u64..20_000).prop_map(|keep| Op::RetainBytes { keep }),
        1 => any::<usize>().prop_map(|pick| Op::DeleteRecords { pick }),
        2 => Just(Op::Crash),
        1 => Just(Op::CleanReopen),
    ]
}

struct Model {
    batches: Vec<(u64, u64, Vec<u8>)>,
    start: u64,
    end: u64,
    /// Every batch with last offset below this was fsynced.
    flushed: u64,
    /// The recovery point the "broker" last checkpointed.
    checkpoint: u64,
}

fn check_matches(log: &Log, model: &Model) {
    assert_eq!(log.log_start_offset(), model.start, "log start");
    assert_eq!(log.log_end_offset(), model.end, "log end");
    assert!(log.log_start_offset() <= log.flushed_offset() || log.flushed_offset() == 0);
    assert!(log.flushed_offset() <= log.log_end_offset());
    assert_eq!(read_all(log), model.batches, "contents");
}

fn run_model(seed: u64, segment_bytes_max: u64, index_interval_bytes: u64, ops: Vec<Op>) {
    let sim = SimDisk::new(seed, DiskFaults::default());
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let config = small_config(segment_bytes_max, index_interval_bytes);
    let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), config.clone(), 0).unwrap();
    let mut model = Model {
        batches: Vec::new(),
        start: 0,
        end: 0,
        flushed: 0,
        checkpoint: 0,
    };
    let mut serial = 0u64;
    for op in ops {
        match op {
            Op::Append { records, value_len } => {
                serial += 1;
                let mut data = batch(serial, records, value_len, 1_000 + serial as i64);
                let info = log.append(&mut data, Some(1), 0).unwrap();
                assert_eq!(info.first_offset, model.end, "offsets are contiguous");
                assert_eq!(info.last_offset, model.end + records as u64 - 1);
                model
                    .batches
                    .push((info.first_offset, info.last_offset, data));
                model.end = info.last_offset + 1;
            }
            Op::Flush => {
                model.flushed = log.flush().unwrap();
                assert_eq!(model.flushed, model.end);
            }
            Op::Checkpoint => model.checkpoint = log.flushed_offset(),
            Op::Read { pick, max_bytes } => {
                if model.batches.is_empty() {
                    continue;
                }
                let (base, last, _) = &model.batches[pick % model.batches.len()];
                let offset = (base + (pick as u64 % (last - base + 1))).max(model.start);
                let got = split(&log.read(offset, max_bytes, None).unwrap());
                let i = model.batches.iter().position(|b| b.1 >= offset).unwrap();
                assert!(
                    !got.is_empty(),
                    "a read inside the log returns at least one batch"
                );
                assert_eq!(
                    got[0].0, model.batches[i].0,
                    "a read inside a batch returns that batch"
                );
                assert_eq!(
                    &got[..],
                    &model.batches[i..i + got.len()],
                    "reads return what was appended"
                );
                let total: usize = got.iter().map(|b| b.2.len()).sum();
                assert!(
                    got.len() == 1 || total <= max_bytes,
                    "max_bytes respected beyond the first batch"
                );
            }
            Op::Truncate { pick } => {
                let offset = model.start + pick as u64 % (model.end - model.start + 1);
                let new_end = log.truncate_to(offset).unwrap();
                model.batches.retain(|b| b.1 < offset);
                model.end = model.batches.last().map_or(model.start, |b| b.1 + 1);
                if offset <= model.start {
                    model.end = model.start;
                }
                assert_eq!(new_end, model.end);
                model.flushed = model.flushed.min(new_end);
                model.checkpoint = model.checkpoint.min(new_end);
            }
            Op::Roll => log.roll().unwrap(),
            Op::RetainBytes { keep } => {
                let mut c = log.config().clone();
                c.retention_bytes = keep as i64;
                log.set_config(c);
                let report = log.apply_retention(0, log.log_end_offset()).unwrap();
                assert!(report.log_start_offset >= model.start);
                model.start = report.log_start_offset;
                model.batches.retain(|b| b.1 >= model.start);
                assert!(model
                    .batches
                    .first()
                    .is_none_or(|b| b.0 <= model.start && model.start <= b.1));
                log.set_config(config.clone());
            }
            Op::DeleteRecords { pick } => {
                let offset = model.start + pick as u64 % (model.end - model.start + 1);
                let start = log.advance_start_to(offset).unwrap();
                model.start = model.start.max(offset);
                assert_eq!(start, model.start);
                model.batches.retain(|b| b.1 >= model.start);
                model.flushed = model.flushed.max(model.start);
            }
            Op::Crash => {
                drop(log);
                sim.crash();
                let (mut reopened, _) =
                    Log::open(Arc::clone(&disk), &dir(), config.clone(), model.checkpoint).unwrap();
                // The checkpointed log start, as LogDir::open applies it.
                if model.start > reopened.log_end_offset() {
                    reopened.reset_to(model.start).unwrap();
                } else {
                    reopened.advance_start_to(model.start).unwrap();
                }
                log = reopened;
                let got = read_all(&log);
                // What survives is a prefix of what was written, and holds everything fsynced.
                assert!(got.len() <= model.batches.len());
                assert_eq!(
                    &got[..],
                    &model.batches[..got.len()],
                    "recovered data is a prefix of the appends"
                );
                let durable = model.batches.iter().filter(|b| b.1 < model.flushed).count();
                assert!(
                    got.len() >= durable,
                    "lost fsynced batches: kept {} of {durable}",
                    got.len()
                );
                model.batches.truncate(got.len());
                model.end = log.log_end_offset();
                assert_eq!(
                    model.end,
                    model.batches.last().map_or(model.start, |b| b.1 + 1)
                );
                model.flushed = model.end;
            }
            Op::CleanReopen => {
                let flushed = log.close().unwrap();
                let (mut reopened, notes) =
                    Log::open(Arc::clone(&disk), &dir(), config.clone(), flushed).unwrap();
                reopened.advance_start_to(model.start).unwrap();
                assert!(
                    notes.is_empty(),
                    "a clean reopen repairs nothing: {notes:?}"
                );
                log = reopened;
                model.flushed = flushed;
                model.checkpoint = flushed;
            }
        }
        check_matches(&log, &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn log_behaves_like_a_vec_of_batches_across_crashes(
        seed in any::<u64>(),
        segment_bytes_max in 2_000u64..40_000,
        index_interval_bytes in 100u64..5_000,
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        run_model(seed, segment_bytes_max, index_interval_bytes, ops);
    }
}

/// The batches with their partition leader epoch (the one field outside the CRC) zeroed.
fn without_leader_epoch(batches: &[(u64, u64, Vec<u8>)]) -> Vec<(u64, u64, Vec<u8>)> {
    batches
        .iter()
        .map(|(base, last, bytes)| {
            let mut bytes = bytes.clone();
            bytes[12..16].fill(0);
            (*base, *last, bytes)
        })
        .collect()
}

/// A log with a few segments, closed cleanly; returns the disk and the bytes of every batch.
type Batches = Vec<(u64, u64, Vec<u8>)>;

fn written_log(seed: u64) -> (SimDisk, Batches, u64) {
    let sim = SimDisk::new(seed, DiskFaults::default());
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut log, _) = Log::open(Arc::clone(&disk), &dir(), small_config(4_000, 300), 0).unwrap();
    for i in 0..30 {
        let mut data = batch(i, 1 + (i as usize % 3), 200, 10_000 + i as i64 * 10);
        log.append(&mut data, None, 0).unwrap();
    }
    let all = read_all(&log);
    let end = log.close().unwrap();
    (sim, all, end)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Recovery never panics whatever bytes a file holds, never returns a batch whose CRC fails,
    /// and never silently drops data below the recovery point: it either keeps it or refuses.
    #[test]
    fn recovery_survives_arbitrary_corruption(
        seed in any::<u64>(),
        file_pick in 0usize..100,
        overwrite in any::<bool>(),
        at in any::<usize>(),
        garbage in proptest::collection::vec(any::<u8>(), 1..300),
        trust_all in any::<bool>(),
    ) {
        let (sim, all, end) = written_log(seed);
        let disk: Arc<dyn Disk> = Arc::new(sim.clone());
        let files = disk.list(&dir()).unwrap();
        let name = &files[file_pick % files.len()];
        let path = dir().join(name);
        let mut bytes = disk.read_file(&path).unwrap();
        if overwrite && !bytes.is_empty() {
            let start = at % bytes.len();
            for (i, g) in garbage.iter().enumerate() {
                if let Some(b) = bytes.get_mut(start + i) { *b = *g; }
            }
        } else {
            bytes.extend_from_slice(&garbage);
        }
        sim.overwrite_for_test(&path, bytes).unwrap();
        let recovery_point = if trust_all { end } else { 0 };
        match Log::open(Arc::clone(&disk), &dir(), small_config(4_000, 300), recovery_point) {
            Ok((log, _)) if !trust_all => {
                // Everything was scanned: what is kept is a CRC-valid prefix of what was written.
                let got = read_all(&log); // read_all checks every CRC
                prop_assert!(got.len() <= all.len());
                // The partition leader epoch (bytes 12..16) is outside the CRC by Kafka's design
                // (a leader stamps it after the producer's CRC): a flipped byte there cannot be
                // seen, so it is left out of the comparison.
                prop_assert_eq!(without_leader_epoch(&got), without_leader_epoch(&all[..got.len()]));
            }
            Ok((log, _)) => {
                // The corruption is below the recovery point, which open does not re-read (that
                // is what makes a clean start fast). Reads must still never serve a batch out of
                // place: each is the original, or fails its CRC (clients check it), or the read
                // reports corruption. A corrupt index never changes what is served.
                let mut offset = log.log_start_offset();
                let mut served = 0;
                while offset < log.log_end_offset() {
                    let bytes = match log.read(offset, 1 << 16, None) {
                        Ok(b) => b,
                        Err(LogError::Corrupt { .. }) => { prop_assert!(name.ends_with(".log")); break; }
                        Err(e) => { prop_assert!(false, "unexpected error {e}"); unreachable!() }
                    };
                    prop_assert!(!bytes.is_empty());
                    let mut rest = &bytes[..];
                    while !rest.is_empty() {
                        let header = crate::protocol::record_batch::BatchHeader::parse(rest, usize::MAX).unwrap();
                        let original = &all[served];
                        let here = &rest[..header.size()];
                        let mut masked = here.to_vec();
                        masked[12..16].copy_from_slice(&original.2[12..16]);
                        if masked != original.2 {
                            prop_assert!(name.ends_with(".log"), "index corruption changed served data");
                            prop_assert_eq!(header.base_offset as u64, original.0);
                            prop_assert!(RecordBatch::parse(here, usize::MAX).is_err());
                        }
                        offset = header.last_offset() as u64 + 1;
                        served += 1;
                        rest = &rest[header.size()..];
                    }
                }
            }
            Err(LogError::Corrupt { .. }) => prop_assert!(trust_all),
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

#[test]
fn reads_by_offset_return_the_whole_batch_holding_it() {
    let (sim, all, _) = written_log(1);
    let disk: Arc<dyn Disk> = Arc::new(sim);
    let (log, _) = Log::open(disk, &dir(), small_config(4_000, 300), u64::MAX).unwrap();
    assert!(
        log.segment_base_offsets().len() > 3,
        "the test wants several segments"
    );
    for (base, last, bytes) in &all {
        for offset in *base..=*last {
            let got = log.read(offset, 1, None).unwrap();
            assert_eq!(&got, bytes, "offset {offset}");
        }
    }
    assert!(log
        .read(log.log_end_offset(), 100, None)
        .unwrap()
        .is_empty());
    assert!(matches!(
        log.read(log.log_end_offset() + 1, 100, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Nothing at or past max_offset (a high watermark) is returned.
    let (b1, _, _) = all[1];
    assert!(log.read(b1, 100, Some(b1)).unwrap().is_empty());
}

#[test]
fn offsets_are_assigned_from_the_log_end_and_multi_batch_appends_are_atomic() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(2, DiskFaults::default()));
    let (mut log, _) = Log::open(disk, &dir(), small_config(1 << 20, 4096), 0).unwrap();
    let mut two = batch(1, 3, 10, 5);
    two.extend(batch(2, 2, 10, 6));
    let info = log.append(&mut two, Some(7), 0).unwrap();
    assert_eq!(
        (info.first_offset, info.last_offset, info.batches),
        (0, 4, 2)
    );
    let got = split(&log.read(0, 1 << 20, None).unwrap());
    assert_eq!(
        got.iter().map(|b| (b.0, b.1)).collect::<Vec<_>>(),
        vec![(0, 2), (3, 4)]
    );
    assert_eq!(
        RecordBatch::parse(&got[1].2, usize::MAX)
            .unwrap()
            .0
            .partition_leader_epoch(),
        7
    );
    // A bad second batch rejects the whole append.
    let mut bad = batch(3, 1, 10, 7);
    let mut corrupt = batch(4, 1, 10, 8);
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    bad.extend(corrupt);
    assert!(matches!(
        log.append(&mut bad, None, 0),
        Err(LogError::InvalidBatch { .. })
    ));
    assert_eq!(log.log_end_offset(), 5);
    // Trailing bytes that are not a whole batch are rejected too.
    let mut short = batch(5, 1, 10, 9);
    short.extend_from_slice(&[0, 0, 0]);
    assert!(log.append(&mut short, None, 0).is_err());
    let mut empty = Vec::new();
    assert!(matches!(
        log.append(&mut empty, None, 0),
        Err(LogError::EmptyAppend)
    ));
}

#[test]
fn verbatim_appends_must_continue_the_log() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(2, DiskFaults::default()));
    let (mut log, _) = Log::open(disk, &dir(), small_config(1 << 20, 4096), 0).unwrap();
    let mut b = batch(1, 2, 10, 5);
    crate::protocol::record_batch::set_base_offset(&mut b, 0);
    log.append_verbatim(&b, 0).unwrap();
    crate::protocol::record_batch::set_base_offset(&mut b, 5);
    assert!(matches!(
        log.append_verbatim(&b, 0),
        Err(LogError::NonContiguous {
            expected: 2,
            got: 5
        })
    ));
}

#[test]
fn time_retention_deletes_old_segments_but_not_the_active_one_or_unreplicated_data() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(3, DiskFaults::default()));
    let mut config = small_config(1_000, 4096);
    config.retention_ms = 1_000;
    let (mut log, _) = Log::open(disk, &dir(), config, 0).unwrap();
    for i in 0..20 {
        let mut b = batch(i, 1, 300, 10_000 + i as i64 * 100);
        log.append(&mut b, None, 0).unwrap();
    }
    let segments = log.segment_base_offsets().len();
    assert!(segments > 4);
    // At t=11_650 batches with timestamps below 10_650 are over a second old.
    let report = log.apply_retention(11_650, 3).unwrap();
    assert!(report.segments_deleted > 0);
    assert!(
        log.log_start_offset() <= 3,
        "nothing at or above the high watermark goes"
    );
    let report = log.apply_retention(11_650, u64::MAX).unwrap();
    assert!(log
        .segment_base_offsets()
        .iter()
        .all(|&b| b >= report.log_start_offset));
    let (max_ts, _) = log.max_timestamp().unwrap();
    assert_eq!(max_ts, 10_000 + 19 * 100);
    // Far in the future everything but the active segment has expired.
    log.apply_retention(1_000_000, u64::MAX).unwrap();
    assert_eq!(log.segment_base_offsets().len(), 1);
    assert!(!log
        .read(log.log_start_offset(), 1 << 20, None)
        .unwrap()
        .is_empty());
}

#[test]
fn segment_ms_rolls_by_the_first_batch_timestamp() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(4, DiskFaults::default()));
    let mut config = small_config(1 << 20, 4096);
    config.segment_ms = 1_000;
    let (mut log, _) = Log::open(disk, &dir(), config, 0).unwrap();
    log.append(&mut batch(1, 1, 10, 5_000), None, 5_000)
        .unwrap();
    log.append(&mut batch(2, 1, 10, 5_500), None, 5_900)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0]);
    log.append(&mut batch(3, 1, 10, 6_100), None, 6_100)
        .unwrap();
    assert_eq!(log.segment_base_offsets(), vec![0, 2]);
}

#[test]
fn find_by_timestamp_returns_the_first_batch_at_or_after_it() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(5, DiskFaults::default()));
    let (mut log, _) = Log::open(disk, &dir(), small_config(2_000, 200), 0).unwrap();
    for i in 0..40i64 {
        log.append(&mut batch(i as u64, 2, 100, 1_000 + i * 10), None, 0)
            .unwrap();
    }
    for i in 0..40i64 {
        let b = log
            .find_by_timestamp(1_000 + i * 10 - 5, 0)
            .unwrap()
            .unwrap();
        assert_eq!(
            RecordBatch::parse(&b, usize::MAX).unwrap().0.base_offset(),
            i * 2
        );
        let b = log.find_by_timestamp(1_000 + i * 10, 0).unwrap().unwrap();
        assert_eq!(
            RecordBatch::parse(&b, usize::MAX).unwrap().0.base_offset(),
            i * 2
        );
    }
    assert!(log.find_by_timestamp(5_000, 0).unwrap().is_none());
}

#[test]
fn a_clean_reopen_trusts_the_indexes_and_a_bad_index_is_rebuilt() {
    let (sim, all, end) = written_log(6);
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    // Scramble the first segment's index: entries out of order.
    let index = dir().join(format!("{:020}.index", 0));
    sim.overwrite_for_test(&index, vec![0, 0, 0, 9, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 5])
        .unwrap();
    let (log, _) = Log::open(Arc::clone(&disk), &dir(), small_config(4_000, 300), end).unwrap();
    assert_eq!(read_all(&log), all);
}

#[test]
fn meta_properties_round_trip_and_reject_other_clusters_and_nodes() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(7, DiskFaults::default()));
    let path = PathBuf::from("/data");
    let meta = MetaProperties {
        cluster_id: "MkU3OEVBNTcwNTJENDM2Qg".into(),
        node_id: NodeId(1),
        directory_id: Uuid::from_random([9; 16]),
    };
    assert!(matches!(
        LogDir::open(Arc::clone(&disk), &path, None, NodeId(1), |_| {
            LogConfig::default()
        }),
        Err(LogError::BadDirectory { .. })
    ));
    assert!(LogDir::format(Arc::clone(&disk), &path, &meta, false).unwrap());
    assert!(
        LogDir::format(Arc::clone(&disk), &path, &meta, false).is_err(),
        "refuses a formatted dir"
    );
    assert!(!LogDir::format(Arc::clone(&disk), &path, &meta, true).unwrap());
    let (dir, logs, _) = LogDir::open(
        Arc::clone(&disk),
        &path,
        Some("MkU3OEVBNTcwNTJENDM2Qg"),
        NodeId(1),
        |_| LogConfig::default(),
    )
    .unwrap();
    assert_eq!(dir.meta(), &meta);
    assert!(logs.is_empty());
    let err = LogDir::open(
        Arc::clone(&disk),
        &path,
        Some("AAAAAAAAAAAAAAAAAAAAAA"),
        NodeId(1),
        |_| LogConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("meta.properties") && err.contains("another cluster"),
        "{err}"
    );
    let err = LogDir::open(Arc::clone(&disk), &path, None, NodeId(2), |_| {
        LogConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("node 1"), "{err}");
}

#[test]
fn log_dir_checkpoints_recovery_points_and_reopens_logs() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(8, DiskFaults::default()));
    let path = PathBuf::from("/data");
    let meta = MetaProperties {
        cluster_id: "c".into(),
        node_id: NodeId(3),
        directory_id: Uuid::ZERO,
    };
    LogDir::format(Arc::clone(&disk), &path, &meta, false).unwrap();
    let (dir, _, _) = LogDir::open(Arc::clone(&disk), &path, Some("c"), NodeId(3), |_| {
        LogConfig::default()
    })
    .unwrap();
    let tp = TopicPartition::new("orders", 2);
    let mut log = dir.create_log(&tp, LogConfig::default()).unwrap();
    log.append(&mut batch(1, 4, 10, 1), None, 0).unwrap();
    log.flush().unwrap();
    let mut logs = std::collections::BTreeMap::new();
    logs.insert(tp.clone(), log);
    dir.write_recovery_points(&logs).unwrap();
    let points =
        read_offset_checkpoint(disk.as_ref(), &path.join(RECOVERY_POINT_CHECKPOINT)).unwrap();
    assert_eq!(points.get(&tp), Some(&4));
    drop(logs);
    let (dir, logs, _) = LogDir::open(Arc::clone(&disk), &path, Some("c"), NodeId(3), |_| {
        LogConfig::default()
    })
    .unwrap();
    assert_eq!(logs[&tp].log_end_offset(), 4);
    let log = logs.into_values().next().unwrap();
    dir.delete_log(log).unwrap();
    assert!(!disk.exists(&path.join("orders-2")));
}

#[test]
fn malformed_checkpoint_files_name_the_file_and_line() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(9, DiskFaults::default()));
    disk.create_dir_all(&PathBuf::from("/d")).unwrap();
    let path = PathBuf::from("/d/recovery-point-offset-checkpoint");
    for (text, line) in [
        ("1\n0\n", 1),
        ("0\nx\n", 2),
        ("0\n1\nt 0\n", 3),
        ("0\n2\nt 0 5\n", 2),
    ] {
        disk.write_file_atomic(&path, text.as_bytes()).unwrap();
        let err = read_offset_checkpoint(disk.as_ref(), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("recovery-point-offset-checkpoint")
                && err.contains(&format!("line {line}")),
            "{err}"
        );
    }
}

#[test]
fn a_fsync_failure_is_reported_not_swallowed() {
    let sim = SimDisk::new(10, DiskFaults::default());
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let (mut log, _) = Log::open(disk, &dir(), small_config(1 << 20, 4096), 0).unwrap();
    log.append(&mut batch(1, 1, 10, 1), None, 0).unwrap();
    sim.set_faults(DiskFaults {
        fsync_error_ppm: 1_000_000,
        ..DiskFaults::default()
    });
    assert!(matches!(log.flush(), Err(LogError::Io { .. })));
    assert_eq!(
        log.flushed_offset(),
        0,
        "a failed flush does not advance the flushed offset"
    );
}

#[test]
fn recovery_rereads_a_batch_once_when_a_bit_flips_on_the_way_in() {
    let (sim, all, end) = written_log(11);
    sim.set_faults(DiskFaults {
        read_bitflip_ppm: 200_000,
        ..DiskFaults::default()
    });
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let mut opened = 0;
    for _ in 0..20 {
        // Trusting the checkpoint: a flip that survives the re-reads is reported, never cut.
        match Log::open(Arc::clone(&disk), &dir(), small_config(4_000, 300), end) {
            Ok((log, notes)) => {
                sim.set_faults(DiskFaults::default());
                assert_eq!(read_all(&log), all, "notes: {notes:?}");
                opened += 1;
                sim.set_faults(DiskFaults {
                    read_bitflip_ppm: 200_000,
                    ..DiskFaults::default()
                });
            }
            Err(LogError::Corrupt { .. }) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert!(opened > 0);
}

/// Fuzz regression: a segment named `…0.log` whose first batch claims base offset 5. A scan from
/// the segment's start must find the segment's own base offset first, so the batch is cut.
#[test]
fn a_segment_whose_first_batch_is_not_at_its_base_offset_is_cut() {
    let sim = SimDisk::new(12, DiskFaults::default());
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    disk.create_dir_all(&dir()).unwrap();
    let mut b = batch(1, 2, 10, 1);
    crate::protocol::record_batch::set_base_offset(&mut b, 5);
    disk.create(&dir().join(format!("{:020}.log", 0)))
        .unwrap()
        .write_at(&b, 0)
        .unwrap();
    let (log, notes) = Log::open(Arc::clone(&disk), &dir(), small_config(1 << 20, 64), 0).unwrap();
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(notes.len(), 1, "{notes:?}");
}

/// Fuzz regression: a trusted index entry pointing at bytes that parse as a batch header with
/// the wrong offsets must make reads report corruption, not return nothing forever.
#[test]
fn a_read_through_a_lying_index_reports_corruption_instead_of_returning_nothing() {
    let (sim, all, end) = written_log(13);
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = disk.read_file(&seg).unwrap();
    // Give the second batch an absurd base offset (outside the CRC, so only offsets tell).
    let second = all[0].2.len();
    bytes[second..second + 8].copy_from_slice(&(1u64 << 40).to_be_bytes());
    sim.overwrite_for_test(&seg, bytes).unwrap();
    let (log, _) = Log::open(Arc::clone(&disk), &dir(), small_config(4_000, 300), end).unwrap();
    assert!(matches!(
        log.read(all[1].0, 1, None),
        Err(LogError::Corrupt { .. })
    ));
}

/// Fuzz regression: in the trusted region a batch header that claims more bytes than the segment
/// holds must make the read fail, not return nothing.
#[test]
fn a_trusted_batch_claiming_bytes_past_the_segment_end_is_reported() {
    let (sim, _all, end) = written_log(14);
    let disk: Arc<dyn Disk> = Arc::new(sim.clone());
    let seg = dir().join(format!("{:020}.log", 0));
    let mut bytes = disk.read_file(&seg).unwrap();
    bytes[8..12].copy_from_slice(&100_000i32.to_be_bytes()); // batchLength, outside the CRC
    sim.overwrite_for_test(&seg, bytes).unwrap();
    let (log, _) = Log::open(Arc::clone(&disk), &dir(), small_config(4_000, 300), end).unwrap();
    assert!(matches!(
        log.read(0, 1 << 16, None),
        Err(LogError::Corrupt { .. })
    ));
}

#[test]
fn delete_records_moves_the_log_start_inside_a_segment_and_survives_a_reopen() {
    let disk: Arc<dyn Disk> = Arc::new(SimDisk::new(9, DiskFaults::default()));
    let path = PathBuf::from("/data");
    let meta = MetaProperties {
        cluster_id: "c".into(),
        node_id: NodeId(1),
        directory_id: Uuid::ZERO,
    };
    LogDir::format(Arc::clone(&disk), &path, &meta, false).unwrap();
    let open = || {
        LogDir::open(Arc::clone(&disk), &path, Some("c"), NodeId(1), |_| {
            small_config(1_000, 4096)
        })
        .unwrap()
    };
    let (dir, _, _) = open();
    let tp = TopicPartition::new("t", 0);
    let mut log = dir.create_log(&tp, small_config(1_000, 4096)).unwrap();
    for i in 0..20 {
        log.append(&mut batch(i, 2, 100, 1), None, 0).unwrap();
    }
    log.flush().unwrap();
    let bases = log.segment_base_offsets();
    assert!(bases.len() > 3, "{bases:?}");
    // Inside the third segment, on an odd offset (inside a two-record batch).
    let target = bases[2] + 3;
    assert_eq!(log.advance_start_to(target).unwrap(), target);
    assert_eq!(log.log_start_offset(), target);
    assert!(log.start_inside_segment());
    assert_eq!(
        log.segment_base_offsets()[0],
        bases[2],
        "whole segments below go"
    );
    assert!(matches!(
        log.read(target - 1, 1 << 16, None),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // The batch holding the start comes back whole, as Kafka's fetch returns it.
    let first = split(&log.read(target, 1 << 16, None).unwrap());
    assert!(first[0].0 < target && first[0].1 >= target);
    // Never backwards, never past the end.
    assert_eq!(log.advance_start_to(1).unwrap(), target);
    let end = log.log_end_offset();
    assert_eq!(log.advance_start_to(end + 10).unwrap(), end);
    let starts = std::collections::BTreeMap::from([(tp.clone(), log.log_start_offset())]);
    dir.write_log_starts(&starts).unwrap();
    drop(log);
    let (dir, logs, _) = open();
    assert_eq!(
        logs[&tp].log_start_offset(),
        end,
        "the checkpoint gives it back"
    );
    assert_eq!(logs[&tp].log_end_offset(), end);
    // A checkpointed start beyond what survived: the log starts empty there.
    let mut starts = std::collections::BTreeMap::new();
    starts.insert(tp.clone(), end + 5);
    write_offset_checkpoint(disk.as_ref(), &path.join(LOG_START_CHECKPOINT), &starts).unwrap();
    drop((dir, logs));
    let (_, logs, notes) = open();
    assert_eq!(logs[&tp].log_start_offset(), end + 5);
    assert_eq!(logs[&tp].log_end_offset(), end + 5);
    assert!(
        notes.iter().any(|n| n.contains("starting empty")),
        "{notes:?}"
    );
}
