//! Idempotent producers' state on one partition (KIP-98): for each producer id, its epoch and
//! its last five batches' sequence ranges and offsets. A leader checks every batch of an
//! idempotent producer against it before appending: a retry of one of those five batches is a
//! duplicate (answered with the original offset, not appended again), a gap in the sequence is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch is INVALID_PRODUCER_EPOCH (fenced). Sans-IO:
//! the broker feeds it batch headers and stores its snapshots.
//!
//! Transactions (KIP-98): a producer's transactional batches open a transaction at the first
//! one's offset, which stays open until the coordinator's marker (a control batch, commit or
//! abort) arrives. The first offset of the oldest open transaction bounds the last stable
//! offset; each abort marker applied yields (producer, first offset, marker offset), which the
//! broker writes to the log's aborted-transaction index (`.txnindex`), so a `read_committed`
//! fetch can name what to skip.

use kafka_protocol::error::ResponseError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `max.in.flight.requests.per.connection` limit for idempotence).
pub const BATCHES_PER_PRODUCER: usize = 5;

/// One idempotent batch as appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRange {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Producer {
    epoch: i16,
    batches: VecDeque<BatchRange>,
    /// The first offset of its open transaction.
    #[serde(default)]
    ongoing_first_offset: Option<i64>,
    /// The highest transaction coordinator epoch a marker came with: markers of an older
    /// coordinator (one that lost its partition) are fenced.
    #[serde(default = "no_coordinator_epoch")]
    coordinator_epoch: i32,
    /// The offset of the last batch or marker it wrote (for DescribeProducers and expiry).
    #[serde(default)]
    last_offset: i64,
    /// That batch's max timestamp (DescribeProducers).
    #[serde(default)]
    last_timestamp_ms: i64,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

/// What kind of producer batch the state is told of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchKind {
    /// An idempotent batch outside any transaction.
    Idempotent,
    /// A transactional batch: opens the producer's transaction if none is open.
    Transactional,
    /// A transaction marker (control batch): ends the producer's open transaction.
    Marker {
        commit: bool,
        coordinator_epoch: i32,
    },
}

/// One producer batch as the state needs it: producer id and epoch, its sequences and
/// offsets (a marker's sequences are meaningless), and its kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub range: BatchRange,
    pub kind: BatchKind,
    /// The batch's max timestamp.
    pub max_timestamp_ms: i64,
}

/// One producer as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerInfo {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp_ms: i64,
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction, or -1.
    pub txn_start_offset: i64,
}

/// One aborted transaction (what Kafka's `.txnindex` entry holds): its records lie in
/// `first_offset..last_offset`, and `last_offset` is its abort marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedRange {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    #[error(
        "out of order sequence number for producer {producer_id}: expected {expected}, got {got}"
    )]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id} epoch {got} is older than the current {current}: fenced")]
    Fenced {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    #[error("producer {producer_id} sent a non-transactional batch while its transaction is open")]
    TransactionOpen { producer_id: i64 },
    #[error("transaction marker for producer {producer_id} from coordinator epoch {got}, older than {current}")]
    CoordinatorFenced {
        producer_id: i64,
        current: i32,
        got: i32,
    },
    #[error("producer {producer_id}'s transactional batch would open a transaction its coordinator did not verify this partition is in")]
    NotVerified { producer_id: i64 },
}

impl SequenceError {
    pub fn code(&self) -> i16 {
        match self {
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            SequenceError::Fenced { .. } => ResponseError::InvalidProducerEpoch.code(),
            SequenceError::TransactionOpen { .. } | SequenceError::NotVerified { .. } => {
                ResponseError::InvalidTxnState.code()
            }
            SequenceError::CoordinatorFenced { .. } => {
                ResponseError::TransactionCoordinatorFenced.code()
            }
        }
    }
}

/// What to do with a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Append,
    /// Already appended at this first offset: answer success with it, append nothing.
    Duplicate {
        first_offset: i64,
    },
}

/// The last sequence of a batch that starts at `first_seq` and holds `last_offset_delta + 1`
/// records; sequences wrap from i32::MAX to 0.
pub fn last_sequence(first_seq: i32, last_offset_delta: i32) -> i32 {
    ((i64::from(first_seq) + i64::from(last_offset_delta)) % (i64::from(i32::MAX) + 1)) as i32
}

fn next_sequence(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: BTreeMap<i64, Producer>,
    /// Aborted transactions as snapshots of an earlier ketch kept them (before the log had a
    /// `.txnindex`): read, never written, and handed to the log once (see
    /// [`ProducerStates::take_legacy_aborted`]).
    #[serde(default, rename = "aborted", skip_serializing)]
    legacy_aborted: Vec<AbortedRange>,
    /// Transactions whose marker is written but maybe not yet replicated, as (first offset,
    /// marker offset): they stay unstable until the high watermark passes the marker, as in
    /// Kafka, so a failover that loses the marker never moves the last stable offset back.
    #[serde(default)]
    ended: Vec<(i64, i64)>,
}

impl ProducerStates {
    pub fn new() -> ProducerStates {
        ProducerStates::default()
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks a batch of producer `producer_id` at `epoch` with sequences
    /// `first_seq..=last_seq`. A producer not known here (new, or its history was lost to
    /// retention or predates the recovered window) is accepted from any sequence.
    pub fn check(
        &self,
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: i32,
    ) -> Result<Verdict, SequenceError> {
        let Some(p) = self.producers.get(&producer_id) else {
            return Ok(Verdict::Append);
        };
        if epoch < p.epoch {
            return Err(SequenceError::Fenced {
                producer_id,
                current: p.epoch,
                got: epoch,
            });
        }
        if first_seq < 0 {
            // No sequence (the group coordinator's transactional offset commits): only the
            // epoch is checked.
            return Ok(Verdict::Append);
        }
        if epoch > p.epoch {
            // A new epoch starts its sequences over.
            return if first_seq == 0 {
                Ok(Verdict::Append)
            } else {
                Err(SequenceError::OutOfOrder {
                    producer_id,
                    expected: 0,
                    got: first_seq,
                })
            };
        }
        if let Some(b) = p
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Ok(Verdict::Duplicate {
                first_offset: b.first_offset,
            });
        }
        let expected = p.batches.back().map_or(0, |b| next_sequence(b.last_seq));
        if p.batches.is_empty() || first_seq == expected {
            Ok(Verdict::Append)
        } else {
            Err(SequenceError::OutOfOrder {
                producer_id,
                expected,
                got: first_seq,
            })
        }
    }

    /// Whether `producer_id` has a transaction open here at `epoch`: its further
    /// transactional batches join it and need no verification (KIP-890).
    pub fn in_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|p| p.epoch == epoch && p.ongoing_first_offset.is_some())
    }

    /// Refuses a non-transactional batch from a producer with an open transaction, as Kafka
    /// does (INVALID_TXN_STATE): its records would be neither in the transaction nor
    /// visible before it ends.
    pub fn check_not_in_transaction(
        &self,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(), SequenceError> {
        match self.producers.get(&producer_id) {
            Some(p) if p.epoch == epoch && p.ongoing_first_offset.is_some() => {
                Err(SequenceError::TransactionOpen { producer_id })
            }
            _ => Ok(()),
        }
    }

    /// Checks a transaction marker for `producer_id` at `epoch` from a coordinator at
    /// `coordinator_epoch`: an older producer epoch is fenced (the coordinator bumps the
    /// epoch before it aborts a fenced producer's transaction), so is an older coordinator.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), SequenceError> {
        let Some(p) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        if epoch < p.epoch {
            return Err(SequenceError::Fenced {
                producer_id,
                current: p.epoch,
                got: epoch,
            });
        }
        if coordinator_epoch < p.coordinator_epoch {
            return Err(SequenceError::CoordinatorFenced {
                producer_id,
                current: p.coordinator_epoch,
                got: coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records an appended idempotent batch (also used when rebuilding from the log).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchRange) {
        let _not_a_marker = self.apply(&ProducerBatch {
            producer_id,
            epoch,
            range: batch,
            kind: BatchKind::Idempotent,
            max_timestamp_ms: -1,
        });
    }

    /// Records an appended producer batch of any kind (also used when rebuilding from the log).
    /// An abort marker that ends an open transaction returns it, for the log's aborted index.
    #[must_use = "an aborted transaction belongs in the log's aborted-transaction index"]
    pub fn apply(&mut self, b: &ProducerBatch) -> Option<AbortedRange> {
        let p = self.producers.entry(b.producer_id).or_default();
        if b.epoch != p.epoch {
            p.epoch = b.epoch;
            p.batches.clear();
        }
        p.last_offset = b.range.last_offset;
        p.last_timestamp_ms = b.max_timestamp_ms;
        match b.kind {
            BatchKind::Idempotent | BatchKind::Transactional => {
                if b.kind == BatchKind::Transactional && p.ongoing_first_offset.is_none() {
                    p.ongoing_first_offset = Some(b.range.first_offset);
                }
                if b.range.first_seq >= 0 {
                    // (no sequence to remember otherwise)
                    p.batches.push_back(b.range);
                    while p.batches.len() > BATCHES_PER_PRODUCER {
                        p.batches.pop_front();
                    }
                }
                None
            }
            BatchKind::Marker {
                commit,
                coordinator_epoch,
            } => {
                p.coordinator_epoch = p.coordinator_epoch.max(coordinator_epoch);
                let first_offset = p.ongoing_first_offset.take()?;
                self.ended.push((first_offset, b.range.first_offset));
                (!commit).then_some(AbortedRange {
                    producer_id: b.producer_id,
                    first_offset,
                    last_offset: b.range.first_offset,
                })
            }
        }
    }

    /// The first offset of the oldest transaction that is open, or whose marker is not below
    /// `high_watermark` yet: the last stable offset is at most it.
    pub fn first_unstable_offset(&self, high_watermark: i64) -> Option<i64> {
        let open = self
            .producers
            .values()
            .filter_map(|p| p.ongoing_first_offset);
        let ending = self
            .ended
            .iter()
            .filter(|(_, marker)| *marker >= high_watermark)
            .map(|(first, _)| *first);
        open.chain(ending).min()
    }

    /// Forgets ended transactions whose marker is below `high_watermark` (replicated).
    pub fn settle(&mut self, high_watermark: i64) {
        self.ended.retain(|(_, marker)| *marker >= high_watermark);
    }

    /// Each producer, for DescribeProducers.
    pub fn describe(&self) -> Vec<ProducerInfo> {
        self.producers
            .iter()
            .map(|(id, p)| ProducerInfo {
                producer_id: *id,
                epoch: p.epoch,
                last_sequence: p.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp_ms: p.last_timestamp_ms,
                coordinator_epoch: p.coordinator_epoch,
                txn_start_offset: p.ongoing_first_offset.unwrap_or(-1),
            })
            .collect()
    }

    /// The aborted transactions a snapshot of an earlier ketch held (empty after the first
    /// call, and for every snapshot this one writes).
    pub fn take_legacy_aborted(&mut self) -> Vec<AbortedRange> {
        std::mem::take(&mut self.legacy_aborted)
    }
}

/// KIP-890's verification guards ("Transactions Server-Side Defense"), one per producer: a
/// leader makes one before it asks the coordinator whether this partition is in the
/// producer's open transaction, and appends a batch that would open a transaction here only
/// if the guard it was asked under is still the producer's. A marker for the producer drops
/// its guard, so an answer that was true when given but is stale by the time the batch is
/// appended (the transaction ended meanwhile) cannot open a transaction no coordinator will
/// ever end: the hanging transaction that holds the last stable offset for good. Memory only:
/// a leader that restarts or is elected has none, and asks again.
/// A guard no verification is ever made under.
const NO_GUARD: u64 = 0;
/// How many producers may have a verification guard at once.
const MAX_GUARDS: usize = 65_536;

#[derive(Clone, Debug, Default)]
pub struct Verifications {
    guards: BTreeMap<i64, (i16, u64)>,
    next_guard: u64,
}

impl Verifications {
    /// The guard to verify `producer_id` at `epoch` under: its current one if it has one at
    /// that epoch (concurrent requests share it, as in Kafka), else a new one. An older epoch
    /// (a fenced producer still retrying) gets a guard that never holds and replaces nothing:
    /// it must not take the current epoch's guard away.
    pub fn start(&mut self, producer_id: i64, epoch: i16) -> u64 {
        if let Some((e, g)) = self.guards.get(&producer_id) {
            if *e == epoch {
                return *g;
            }
            if *e > epoch {
                return NO_GUARD;
            }
        }
        // Bounded: a guard left by a producer that never wrote (or made up by a client) goes
        // first; a real producer whose guard went is refused once and retries.
        if self.guards.len() >= MAX_GUARDS {
            if let Some(oldest) = self
                .guards
                .iter()
                .min_by_key(|(_, (_, g))| *g)
                .map(|(pid, _)| *pid)
            {
                self.guards.remove(&oldest);
            }
        }
        self.next_guard += 1;
        let guard = self.next_guard;
        self.guards.insert(producer_id, (epoch, guard));
        guard
    }

    /// Whether `guard` is still `producer_id`'s guard at `epoch`.
    pub fn holds(&self, producer_id: i64, epoch: i16, guard: u64) -> bool {
        self.guards.get(&producer_id) == Some(&(epoch, guard))
    }

    /// A marker for `producer_id` was written: whatever was verified before is stale.
    pub fn forget(&mut self, producer_id: i64) {
        self.guards.remove(&producer_id);
    }

    pub fn clear(&mut self) {
        self.guards.clear();
    }

    pub fn len(&self) -> usize {
        self.guards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.guards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchRange {
        BatchRange {
            first_seq,
            last_seq,
            first_offset,
            last_offset: first_offset + i64::from(last_seq - first_seq),
        }
    }

    #[test]
    fn retries_of_the_last_five_batches_are_duplicates() {
        let mut s = ProducerStates::new();
        for i in 0..7 {
            assert_eq!(s.check(1, 0, i * 10, i * 10 + 9), Ok(Verdict::Append));
            s.record(1, 0, range(i * 10, i * 10 + 9, i64::from(i) * 100));
        }
        // Batches 2..=6 are remembered; 0 and 1 fell out of the window.
        assert_eq!(
            s.check(1, 0, 60, 69),
            Ok(Verdict::Duplicate { first_offset: 600 })
        );
        assert_eq!(
            s.check(1, 0, 20, 29),
            Ok(Verdict::Duplicate { first_offset: 200 })
        );
        assert!(matches!(
            s.check(1, 0, 10, 19),
            Err(SequenceError::OutOfOrder { expected: 70, .. })
        ));
        assert_eq!(s.check(1, 0, 70, 70), Ok(Verdict::Append));
    }

    #[test]
    fn a_gap_is_out_of_order_and_an_old_epoch_is_fenced() {
        let mut s = ProducerStates::new();
        s.record(7, 3, range(0, 4, 0));
        assert_eq!(s.check(7, 3, 6, 6).map_err(|e| e.code()), Err(45));
        assert_eq!(s.check(7, 2, 5, 5).map_err(|e| e.code()), Err(47));
        // A bumped epoch restarts at 0.
        assert_eq!(s.check(7, 4, 0, 3), Ok(Verdict::Append));
        assert_eq!(s.check(7, 4, 5, 6).map_err(|e| e.code()), Err(45));
        // Unknown producers start anywhere (their history may be gone).
        assert_eq!(s.check(8, 0, 42, 42), Ok(Verdict::Append));
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
        assert_eq!(last_sequence(i32::MAX, 1), 0);
        let mut s = ProducerStates::new();
        s.record(1, 0, range(i32::MAX - 1, i32::MAX, 0));
        assert_eq!(s.check(1, 0, 0, 3), Ok(Verdict::Append));
    }

    fn marker(pid: i64, epoch: i16, commit: bool, offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            range: BatchRange {
                first_seq: -1,
                last_seq: -1,
                first_offset: offset,
                last_offset: offset,
            },
            kind: BatchKind::Marker {
                commit,
                coordinator_epoch: 3,
            },
            max_timestamp_ms: 0,
        }
    }

    fn txn(pid: i64, epoch: i16, first_seq: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            range: range(first_seq, first_seq + 1, first_offset),
            kind: BatchKind::Transactional,
            max_timestamp_ms: 0,
        }
    }

    // KIP-98: the LSO is bounded by the oldest open transaction; an abort marker records
    // the aborted range, a commit marker nothing.
    #[test]
    fn open_transactions_bound_the_lso_and_aborts_are_indexed() {
        let mut s = ProducerStates::new();
        assert_eq!(s.apply(&txn(1, 0, 0, 10)), None);
        assert_eq!(s.apply(&txn(2, 0, 0, 12)), None);
        assert_eq!(s.apply(&txn(1, 0, 2, 14)), None);
        assert_eq!(s.first_unstable_offset(i64::MAX), Some(10));
        let aborted = AbortedRange {
            producer_id: 1,
            first_offset: 10,
            last_offset: 16,
        };
        assert_eq!(s.apply(&marker(1, 0, false, 16)), Some(aborted));
        // Until the high watermark passes its marker, an ended transaction is unstable.
        assert_eq!(s.first_unstable_offset(16), Some(10));
        assert_eq!(s.first_unstable_offset(17), Some(12));
        // A commit yields nothing; a second marker with no open transaction neither.
        assert_eq!(s.apply(&marker(2, 0, true, 17)), None);
        assert_eq!(s.apply(&marker(1, 0, false, 18)), None);
        assert_eq!(s.first_unstable_offset(17), Some(12));
        assert_eq!(s.first_unstable_offset(18), None);
        s.settle(18);
        assert_eq!(s.first_unstable_offset(0), None);
        // Sequences go on across transactions in one epoch.
        assert_eq!(s.check(1, 0, 4, 5), Ok(Verdict::Append));
    }

    #[test]
    fn a_verification_guard_is_shared_until_a_marker_or_a_new_epoch_replaces_it() {
        let mut v = Verifications::default();
        let g = v.start(1, 0);
        assert_eq!(v.start(1, 0), g, "concurrent requests share the guard");
        assert!(v.holds(1, 0, g));
        assert!(!v.holds(1, 1, g));
        assert!(!v.holds(2, 0, g));
        v.forget(1);
        assert!(!v.holds(1, 0, g), "a marker makes the verification stale");
        let g2 = v.start(1, 0);
        assert_ne!(g2, g);
        let g3 = v.start(1, 1);
        assert!(!v.holds(1, 0, g2) && v.holds(1, 1, g3));
        // A fenced producer's older epoch neither gets a working guard nor takes this one.
        let stale = v.start(1, 0);
        assert!(!v.holds(1, 0, stale) && v.holds(1, 1, g3));
        let mut s = ProducerStates::new();
        assert!(!s.in_transaction(1, 0));
        let _ = s.apply(&txn(1, 0, 0, 10));
        assert!(s.in_transaction(1, 0));
        assert!(!s.in_transaction(1, 1));
        let _ = s.apply(&marker(1, 0, true, 11));
        assert!(!s.in_transaction(1, 0));
    }

    #[test]
    fn a_snapshot_of_an_earlier_ketch_hands_its_aborted_list_over_once() {
        let old =
            r#"{"producers":{},"aborted":[{"producer_id":3,"first_offset":1,"last_offset":4}]}"#;
        let mut s: ProducerStates = serde_json::from_str(old).unwrap();
        let entry = AbortedRange {
            producer_id: 3,
            first_offset: 1,
            last_offset: 4,
        };
        assert_eq!(s.take_legacy_aborted(), vec![entry]);
        assert!(s.take_legacy_aborted().is_empty());
        assert!(!serde_json::to_string(&s).unwrap().contains("aborted"));
    }

    #[test]
    fn markers_of_older_producer_or_coordinator_epochs_are_fenced() {
        let mut s = ProducerStates::new();
        let _ = s.apply(&txn(1, 2, 0, 0));
        let _ = s.apply(&marker(1, 3, false, 2));
        assert_eq!(s.check_marker(1, 2, 3).map_err(|e| e.code()), Err(47));
        assert_eq!(s.check_marker(1, 3, 2).map_err(|e| e.code()), Err(52));
        assert_eq!(s.check_marker(1, 3, 3), Ok(()));
        // The bumped epoch fences the old producer's data too.
        assert!(matches!(
            s.check(1, 2, 2, 2),
            Err(SequenceError::Fenced { .. })
        ));
    }
}
