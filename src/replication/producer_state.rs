//! Idempotent producers' state on one partition (KIP-98): for each producer id, its epoch and
//! its last five batches' sequence ranges and offsets. A leader checks every batch of an
//! idempotent producer against it before appending: a retry of one of those five batches is a
//! duplicate (answered with the original offset, not appended again), a gap in the sequence is
//! OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch is INVALID_PRODUCER_EPOCH (fenced). Sans-IO:
//! the broker feeds it batch headers and stores its snapshots.

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
}

impl SequenceError {
    pub fn code(&self) -> i16 {
        match self {
            SequenceError::OutOfOrder { .. } => ResponseError::OutOfOrderSequenceNumber.code(),
            SequenceError::Fenced { .. } => ResponseError::InvalidProducerEpoch.code(),
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

    /// Records an appended batch (also used when rebuilding from the log).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchRange) {
        let p = self.producers.entry(producer_id).or_default();
        if epoch != p.epoch {
            p.epoch = epoch;
            p.batches.clear();
        }
        p.batches.push_back(batch);
        while p.batches.len() > BATCHES_PER_PRODUCER {
            p.batches.pop_front();
        }
    }

    /// Forgets batches at or past `offset` (the log was truncated there).
    pub fn truncate_to(&mut self, offset: i64) {
        for p in self.producers.values_mut() {
            p.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, p| !p.batches.is_empty());
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

    #[test]
    fn truncation_forgets_batches_past_the_new_end() {
        let mut s = ProducerStates::new();
        s.record(1, 0, range(0, 4, 0));
        s.record(1, 0, range(5, 9, 5));
        s.truncate_to(5);
        assert_eq!(s.check(1, 0, 5, 9), Ok(Verdict::Append));
    }
}
