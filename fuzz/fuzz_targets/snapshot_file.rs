#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ketch::fuzzing::snapshot_file(data);
});
