//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/*`, which `cargo fuzz cmin` may
//! rename or thin) and the crash regressions (`fuzz/regressions/<target>/*`, kept by name, one
//! per bug found) through the same entry points the cargo-fuzz targets use, on stable Rust.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let dir = root.join("corpus").join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!entries.is_empty(), "no corpus for {target}");
    if let Ok(regressions) = std::fs::read_dir(root.join("regressions").join(target)) {
        entries.extend(regressions.map(|e| e.unwrap().path()));
    }
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} fails", path.display());
    }
}

#[test]
fn record_batch_corpus() {
    replay("record_batch", ketch::fuzzing::record_batch);
}

#[test]
fn segment_recovery_corpus() {
    replay("segment_recovery", ketch::fuzzing::segment_recovery);
}

#[test]
fn properties_corpus() {
    replay("properties", ketch::fuzzing::properties);
}

#[test]
fn request_corpus() {
    replay("request", ketch::fuzzing::request);
}

#[test]
fn metadata_records_corpus() {
    replay("metadata_records", ketch::fuzzing::metadata_records);
}

#[test]
fn snapshot_file_corpus() {
    replay("snapshot_file", ketch::fuzzing::snapshot_file);
}

#[test]
fn decoded_batch_corpus() {
    replay("decoded_batch", ketch::fuzzing::decoded_batch);
}

#[test]
fn sasl_corpus() {
    replay("sasl", ketch::fuzzing::sasl);
}

#[test]
fn scram_corpus() {
    replay("scram", ketch::fuzzing::scram);
}
