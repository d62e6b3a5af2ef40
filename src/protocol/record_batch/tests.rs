//! Checks of the batch view against bytes from outside this codebase: batches built by a real
//! client (kafka-python 3.0.12's `DefaultRecordBatchBuilder`, captured as hex) and the CRC-32C
//! check value from the CRC catalogue.

use super::*;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Two records, keys "key-0" and null, values "hello" and "world" (the second with header
/// h=v), timestamps 1700000000000 and +5, no producer id, uncompressed.
const KAFKA_PYTHON_PLAIN: &str = "00000000000000000000005200000000022a2226440000000000010000018bcfe568000000018bcfe56805ffffffffffffffffffffffffffff00000002200000000a6b65792d300a68656c6c6f001e000a02010a776f726c640202680276";
/// Three records, gzip, producer id 42, epoch 3, base sequence 7, timestamps 1700000001000+i.
const KAFKA_PYTHON_GZIP: &str = "0000000000000000000000620000000002e073239c0001000000020000018bcfe56be80000018bcfe56bea000000000000002a000300000007000000031f8b0800d810076b02ff8b616060600c2833200e32c430303101951b120781ca595880ca8d88830c00197a51958d000000";

#[test]
fn crc32c_check_value() {
    // "123456789" → 0xE3069283 is the catalogued check value of CRC-32C (Castagnoli).
    assert_eq!(crc32c::crc32c(b"123456789"), 0xE306_9283);
}

#[test]
fn parses_a_batch_from_kafka_python() {
    let bytes = unhex(KAFKA_PYTHON_PLAIN);
    let (batch, rest) = RecordBatch::parse(&bytes, 1 << 20).unwrap();
    assert!(rest.is_empty());
    assert_eq!(batch.size(), bytes.len());
    assert_eq!(batch.base_offset(), 0);
    assert_eq!(batch.last_offset_delta(), 1);
    assert_eq!(batch.records_count(), 2);
    assert_eq!(batch.base_timestamp(), 1_700_000_000_000);
    assert_eq!(batch.max_timestamp(), 1_700_000_000_005);
    assert_eq!(batch.producer_id(), -1);
    assert_eq!(batch.compression(), 0);
    assert_eq!(batch.crc(), 0x2a22_2644);
}

#[test]
fn parses_a_compressed_idempotent_batch_from_kafka_python() {
    let bytes = unhex(KAFKA_PYTHON_GZIP);
    let (batch, _) = RecordBatch::parse(&bytes, 1 << 20).unwrap();
    assert_eq!(batch.compression(), 1);
    assert_eq!(batch.producer_id(), 42);
    assert_eq!(batch.producer_epoch(), 3);
    assert_eq!(batch.base_sequence(), 7);
    assert_eq!(batch.records_count(), 3);
    assert_eq!(batch.last_offset(), 2);
    assert_eq!(batch.max_timestamp(), 1_700_000_001_002);
}

#[test]
fn our_builder_matches_kafka_python_byte_for_byte_on_a_simple_batch() {
    // Same fields as kafka-python's builder would write for one keyed record.
    let ours = build_batch(0, 1_700_000_000_000, &[(Some(b"key-0"), b"hello")]);
    let (batch, _) = RecordBatch::parse(&ours, 1 << 20).unwrap();
    assert_eq!(batch.records_count(), 1);
    // The first record's bytes equal kafka-python's first record (length varint through headers).
    let theirs = unhex(KAFKA_PYTHON_PLAIN);
    assert_eq!(
        &ours[HEADER_LEN..],
        &theirs[HEADER_LEN..HEADER_LEN + ours.len() - HEADER_LEN]
    );
}

#[test]
fn rewriting_offset_and_epoch_keeps_the_crc_valid() {
    let mut bytes = unhex(KAFKA_PYTHON_PLAIN);
    set_base_offset(&mut bytes, 1234);
    set_partition_leader_epoch(&mut bytes, 7);
    let (batch, _) = RecordBatch::parse(&bytes, 1 << 20).unwrap();
    assert_eq!(batch.base_offset(), 1234);
    assert_eq!(batch.last_offset(), 1235);
    assert_eq!(batch.partition_leader_epoch(), 7);
}

#[test]
fn every_single_bit_flip_in_the_crc_range_is_caught() {
    let bytes = unhex(KAFKA_PYTHON_PLAIN);
    for bit in OFF_ATTRIBUTES * 8..bytes.len() * 8 {
        let mut b = bytes.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(RecordBatch::parse(&b, 1 << 20).is_err(), "bit {bit}");
    }
}

#[test]
fn rejects_truncation_bad_magic_and_oversize() {
    let bytes = unhex(KAFKA_PYTHON_PLAIN);
    for len in 0..bytes.len() {
        assert!(
            RecordBatch::parse(&bytes[..len], 1 << 20).is_err(),
            "len {len}"
        );
    }
    let mut b = bytes.clone();
    b[OFF_MAGIC] = 1;
    assert_eq!(
        RecordBatch::parse(&b, 1 << 20).unwrap_err(),
        BatchError::BadMagic(1)
    );
    assert!(matches!(
        RecordBatch::parse(&bytes, 50).unwrap_err(),
        BatchError::TooLarge { .. }
    ));
    let mut b = bytes;
    b[OFF_BATCH_LENGTH..OFF_BATCH_LENGTH + 4].copy_from_slice(&(-5i32).to_be_bytes());
    assert_eq!(
        RecordBatch::parse(&b, 1 << 20).unwrap_err(),
        BatchError::LengthTooSmall(-5)
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
        let _ = RecordBatch::parse(&bytes, 1 << 20);
    }
}

#[test]
fn records_of_a_kafka_python_batch() {
    let bytes = unhex(KAFKA_PYTHON_PLAIN);
    let (batch, _) = RecordBatch::parse(&bytes, 1 << 20).unwrap();
    let recs = records(&batch).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].key, Some(&b"key-0"[..]));
    assert_eq!(recs[0].value, Some(&b"hello"[..]));
    assert_eq!(recs[1].key, None);
    assert_eq!(recs[1].value, Some(&b"world"[..]));
    assert_eq!(recs[1].offset_delta, 1);
    assert_eq!(recs[1].timestamp_delta, 5);
    // Compressed batches are refused, not misread.
    let gz = unhex(KAFKA_PYTHON_GZIP);
    assert!(records(&RecordBatch::parse(&gz, 1 << 20).unwrap().0).is_err());
}

proptest::proptest! {
    #[test]
    fn records_round_trip_through_our_builder(values in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 1..20)) {
        let recs: Vec<(Option<&[u8]>, &[u8])> = values.iter().map(|v| (None, &v[..])).collect();
        let bytes = build_batch(0, 0, &recs);
        let (batch, _) = RecordBatch::parse(&bytes, usize::MAX).unwrap();
        let got = records(&batch).unwrap();
        proptest::prop_assert_eq!(got.len(), values.len());
        for (g, v) in got.iter().zip(&values) {
            proptest::prop_assert_eq!(g.value, Some(&v[..]));
        }
    }
}

mod decoded_batches {
    use super::super::decoded::{
        decode, encode, DecodedBatch, OwnedRecord, GZIP, LZ4, SNAPPY, ZSTD,
    };
    use super::*;

    #[test]
    fn a_kafka_python_gzip_batch_decodes() {
        let gz = unhex(KAFKA_PYTHON_GZIP);
        let d = decode(&RecordBatch::parse(&gz, 1 << 20).unwrap().0).unwrap();
        assert_eq!(d.compression(), GZIP);
        assert_eq!(
            (d.producer_id, d.producer_epoch, d.base_sequence),
            (42, 3, 7)
        );
        assert_eq!(d.records.len(), 3);
        for (i, r) in d.records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            assert_eq!(r.timestamp_ms, 1_700_000_001_000 + i as i64);
        }
    }

    #[test]
    fn an_uncompressed_client_batch_re_encodes_to_the_same_bytes() {
        let bytes = unhex(KAFKA_PYTHON_PLAIN);
        let d = decode(&RecordBatch::parse(&bytes, 1 << 20).unwrap().0).unwrap();
        assert_eq!(d.records[1].headers_raw, vec![2, 2, b'h', 2, b'v']);
        assert_eq!(encode(&d).unwrap(), bytes);
    }

    #[test]
    fn garbage_records_are_an_error_not_a_panic() {
        let mut bytes = unhex(KAFKA_PYTHON_PLAIN);
        // Claim a longer first record than there is, and fix the CRC so only the records lie.
        bytes[HEADER_LEN] = 0x7e;
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(decode(&RecordBatch::parse(&bytes, 1 << 20).unwrap().0).is_err());
    }

    proptest::proptest! {
        /// Every codec: what is encoded decodes to the same batch, with offsets and timestamps
        /// kept across a base timestamp that is not the first record's (a delete horizon).
        #[test]
        fn every_codec_round_trips(
            codec in proptest::sample::select(vec![0u8, GZIP, SNAPPY, LZ4, ZSTD]),
            recs in proptest::collection::vec((proptest::option::of(proptest::collection::vec(0u8..4, 0..8)), proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..3000)), 0i64..5000), 0..40),
            base_ts in 0i64..10_000_000,
        ) {
            let records: Vec<OwnedRecord> = recs.iter().enumerate().map(|(i, (k, v, ts))| OwnedRecord {
                offset: 100 + 2 * i as i64,
                timestamp_ms: 1_000_000 + ts,
                key: k.clone(),
                value: v.clone(),
                headers_raw: vec![0],
            }).collect();
            let b = DecodedBatch {
                base_offset: 100,
                partition_leader_epoch: 7,
                attributes: i16::from(codec),
                last_offset_delta: 2 * recs.len() as i32 + 5,
                base_timestamp_ms: base_ts,
                max_timestamp_ms: 1_005_000,
                producer_id: 9,
                producer_epoch: 1,
                base_sequence: 3,
                records,
            };
            let bytes = encode(&b).unwrap();
            let (batch, rest) = RecordBatch::parse(&bytes, usize::MAX).unwrap();
            proptest::prop_assert!(rest.is_empty());
            proptest::prop_assert_eq!(batch.last_offset(), 100 + 2 * recs.len() as i64 + 5);
            proptest::prop_assert_eq!(decode(&batch).unwrap(), b);
        }
    }
}
