//! The transaction coordinator, sans-IO (KIP-98): for each transactional id this broker
//! coordinates, its producer id and epoch, timeout, state and partitions, and the transitions
//! InitProducerId, AddPartitionsToTxn / AddOffsetsToTxn, EndTxn, marker completion and
//! timeouts make. Each operation checks the request against the current state and returns the
//! new state without applying it: the broker shell (`broker/transactions.rs`) appends its
//! record to `__transaction_state` and only then [`TxnCoordinator::commit`]s it, so nothing is
//! answered from a state the log does not hold (Kafka's prepare/complete transition).
//!
//! The records are Kafka's own (`TransactionLogKey` v0: the transactional id;
//! `TransactionLogValue` v0: producer id, epoch, timeout, status, partitions, last update and
//! start timestamps), so Kafka's tools read them. Decoding never panics.
//!
//! Owns no IO and no clock: times come in as milliseconds.

use super::records::{put_str, GroupRecordError, Reader};
use kafka_protocol::error::ResponseError;
use std::collections::{BTreeMap, BTreeSet};

pub const INVALID_PRODUCER_ID_MAPPING: i16 = ResponseError::InvalidProducerIdMapping.code();
pub const PRODUCER_FENCED: i16 = ResponseError::ProducerFenced.code();
pub const CONCURRENT_TRANSACTIONS: i16 = ResponseError::ConcurrentTransactions.code();
pub const INVALID_TXN_STATE: i16 = ResponseError::InvalidTxnState.code();
pub const INVALID_TRANSACTION_TIMEOUT: i16 = ResponseError::InvalidTransactionTimeout.code();

/// Kafka's transaction states, with their ids in `TransactionLogValue.TransactionStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TxnState> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The name Kafka's tools print (DescribeTransactions, ListTransactions).
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// Markers are being written: the transaction is neither open nor finished.
    pub fn is_prepared(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// One transactional id's state, as its latest `__transaction_state` record holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMeta {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    /// The partitions of the open (or ending) transaction, as (topic, partition).
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    /// When the open transaction began (its first AddPartitionsToTxn), else -1.
    pub start_ms: i64,
}

/// `TransactionLogKey` v0.
pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_str(&mut out, transactional_id);
    out
}

pub fn decode_key(bytes: &[u8]) -> Result<String, GroupRecordError> {
    let mut r = Reader(bytes);
    let version = r.i16()?;
    if version != 0 {
        return Err(GroupRecordError(format!(
            "transaction log key version {version}"
        )));
    }
    r.str()
}

impl TxnMeta {
    /// `TransactionLogValue` v0.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&0i16.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.timeout_ms.to_be_bytes());
        out.push(self.state.id() as u8);
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &self.partitions {
            by_topic.entry(t).or_default().push(*p);
        }
        out.extend_from_slice(&(by_topic.len() as i32).to_be_bytes());
        for (t, ps) in by_topic {
            put_str(&mut out, t);
            out.extend_from_slice(&(ps.len() as i32).to_be_bytes());
            for p in ps {
                out.extend_from_slice(&p.to_be_bytes());
            }
        }
        out.extend_from_slice(&self.last_update_ms.to_be_bytes());
        out.extend_from_slice(&self.start_ms.to_be_bytes());
        out
    }

    /// Reads value versions 0 and 1 (1 is flexible: compact strings and arrays, tagged
    /// fields, which are skipped).
    pub fn decode(bytes: &[u8]) -> Result<TxnMeta, GroupRecordError> {
        let bad = |what: &str| GroupRecordError(what.to_string());
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if version != 0 {
            return Err(bad("transaction log value version other than 0"));
        }
        let producer_id = r.i64()?;
        let producer_epoch = r.i16()?;
        let timeout_ms = r.i32()?;
        let status = r.take(1)?[0] as i8;
        let state = TxnState::from_id(status).ok_or_else(|| bad("unknown transaction status"))?;
        let topics = r.i32()?;
        let mut partitions = BTreeSet::new();
        for _ in 0..topics.max(0) {
            let topic = r.str()?;
            let count = r.i32()?;
            if count < 0 || count as usize > r.0.len() / 4 {
                return Err(bad("partition count larger than the record"));
            }
            for _ in 0..count {
                partitions.insert((topic.clone(), r.i32()?));
            }
        }
        let last_update_ms = r.i64()?;
        let start_ms = r.i64()?;
        Ok(TxnMeta {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
        })
    }
}

/// A state to write and then commit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub transactional_id: String,
    pub meta: TxnMeta,
}

/// What InitProducerId decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InitOutcome {
    /// Write this, then answer with its producer id and epoch.
    Write(Transition),
    /// Write this (the old producer fenced: its open transaction aborted with a bumped epoch),
    /// send its markers, and answer CONCURRENT_TRANSACTIONS: the client retries.
    Fence(Transition),
    /// A retry of an InitProducerId whose answer was lost: answer with this id and epoch.
    Unchanged(i64, i16),
    Error(i16),
}

/// What EndTxn or AddPartitionsToTxn decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Write this, then answer success (and, for a prepared state, write the markers).
    Write(Transition),
    /// Nothing to write: answer success (a retry of what already happened).
    Done,
    Error(i16),
}

#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i32,
}

pub struct TxnCoordinator {
    config: TxnConfig,
    txns: BTreeMap<String, TxnMeta>,
}

impl TxnCoordinator {
    pub fn new(config: TxnConfig) -> TxnCoordinator {
        TxnCoordinator {
            config,
            txns: BTreeMap::new(),
        }
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TxnMeta> {
        self.txns.get(transactional_id)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &TxnMeta)> {
        self.txns.iter()
    }

    /// A record replayed from the log (`None`: a tombstone).
    pub fn load(&mut self, transactional_id: String, meta: Option<TxnMeta>) {
        match meta {
            Some(m) => {
                self.txns.insert(transactional_id, m);
            }
            None => {
                self.txns.remove(&transactional_id);
            }
        }
    }

    /// Forgets the ids `belongs` names (their partition moved away or is being reloaded).
    pub fn unload(&mut self, belongs: impl Fn(&str) -> bool) {
        self.txns.retain(|id, _| !belongs(id));
    }

    /// Applies a transition its record was stored for.
    pub fn commit(&mut self, t: Transition) {
        self.txns.insert(t.transactional_id, t.meta);
    }

    /// Whether InitProducerId for `transactional_id` needs a fresh producer id: the id is
    /// new, or its epoch is exhausted.
    pub fn needs_producer_id(&self, transactional_id: &str) -> bool {
        self.txns
            .get(transactional_id)
            .is_none_or(|m| m.producer_epoch >= i16::MAX - 1)
    }

    /// InitProducerId with a transactional id. `fresh_producer_id` is given when
    /// [`needs_producer_id`](Self::needs_producer_id) said so. `given` is the producer's own
    /// (id, epoch) when it asks to bump (KIP-360), else (-1, -1).
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        given: (i64, i16),
        fresh_producer_id: Option<i64>,
        now_ms: i64,
    ) -> InitOutcome {
        if timeout_ms <= 0 || timeout_ms > self.config.max_timeout_ms {
            return InitOutcome::Error(INVALID_TRANSACTION_TIMEOUT);
        }
        let fresh = |pid: Option<i64>| {
            pid.map(|producer_id| TxnMeta {
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                last_update_ms: now_ms,
                start_ms: -1,
            })
        };
        let Some(m) = self.txns.get(transactional_id) else {
            return match fresh(fresh_producer_id) {
                Some(meta) => InitOutcome::Write(Transition {
                    transactional_id: transactional_id.to_string(),
                    meta,
                }),
                None => InitOutcome::Error(ResponseError::CoordinatorNotAvailable.code()),
            };
        };
        if given.0 == m.producer_id
            && given.1 >= 0
            && given.1.checked_add(1) == Some(m.producer_epoch)
            && m.state == TxnState::Empty
        {
            // The producer asked to bump from its epoch, which is done: its answer was lost.
            return InitOutcome::Unchanged(m.producer_id, m.producer_epoch);
        }
        if given.0 >= 0 && (given.0 != m.producer_id || given.1 != m.producer_epoch) {
            // Only the current producer may ask for its own epoch to be bumped.
            return InitOutcome::Error(PRODUCER_FENCED);
        }
        match m.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                InitOutcome::Error(CONCURRENT_TRANSACTIONS)
            }
            TxnState::Ongoing => {
                // A new producer instance fences the old one: its transaction is aborted at
                // a bumped epoch, so the old producer's writes and markers are refused.
                let mut meta = m.clone();
                meta.producer_epoch = m.producer_epoch.saturating_add(1);
                meta.state = TxnState::PrepareAbort;
                meta.last_update_ms = now_ms;
                InitOutcome::Fence(Transition {
                    transactional_id: transactional_id.to_string(),
                    meta,
                })
            }
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {
                let meta = if m.producer_epoch >= i16::MAX - 1 {
                    match fresh(fresh_producer_id) {
                        Some(meta) => meta,
                        None => {
                            return InitOutcome::Error(
                                ResponseError::CoordinatorNotAvailable.code(),
                            )
                        }
                    }
                } else {
                    TxnMeta {
                        producer_id: m.producer_id,
                        producer_epoch: m.producer_epoch + 1,
                        timeout_ms,
                        state: TxnState::Empty,
                        partitions: BTreeSet::new(),
                        last_update_ms: now_ms,
                        start_ms: -1,
                    }
                };
                InitOutcome::Write(Transition {
                    transactional_id: transactional_id.to_string(),
                    meta,
                })
            }
        }
    }

    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
    ) -> Result<&TxnMeta, i16> {
        let m = self
            .txns
            .get(transactional_id)
            .ok_or(INVALID_PRODUCER_ID_MAPPING)?;
        if m.producer_id != producer_id {
            return Err(INVALID_PRODUCER_ID_MAPPING);
        }
        if m.producer_epoch != epoch {
            return Err(PRODUCER_FENCED);
        }
        Ok(m)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
    /// partition): the partitions join the transaction, which opens if it was not.
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Outcome {
        let m = match self.check_producer(transactional_id, producer_id, epoch) {
            Ok(m) => m,
            Err(code) => return Outcome::Error(code),
        };
        if m.state.is_prepared() || m.state == TxnState::PrepareEpochFence {
            return Outcome::Error(CONCURRENT_TRANSACTIONS);
        }
        if m.state == TxnState::Dead {
            return Outcome::Error(INVALID_TXN_STATE);
        }
        if m.state == TxnState::Ongoing && partitions.iter().all(|p| m.partitions.contains(p)) {
            return Outcome::Done;
        }
        let mut meta = m.clone();
        if m.state != TxnState::Ongoing {
            meta.partitions.clear();
            meta.start_ms = now_ms;
        }
        meta.state = TxnState::Ongoing;
        meta.partitions.extend(partitions.iter().cloned());
        meta.last_update_ms = now_ms;
        Outcome::Write(Transition {
            transactional_id: transactional_id.to_string(),
            meta,
        })
    }

    /// AddPartitionsToTxn v4 with `verify_only` (KIP-890, sent by a partition leader before
    /// it appends a producer's first transactional batch): is each partition in the
    /// producer's open transaction? Writes nothing. A wrong producer id, an older epoch or an
    /// ending transaction fails every partition, as in Kafka; a partition not in the open
    /// transaction (or no transaction open) is INVALID_TXN_STATE, so a produce that arrives
    /// after its transaction ended never opens a transaction no coordinator will end.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<i16>, i16> {
        let m = self.check_producer(transactional_id, producer_id, epoch)?;
        if m.state.is_prepared() || m.state == TxnState::PrepareEpochFence {
            return Err(CONCURRENT_TRANSACTIONS);
        }
        Ok(partitions
            .iter()
            .map(|p| {
                if m.state == TxnState::Ongoing && m.partitions.contains(p) {
                    0
                } else {
                    INVALID_TXN_STATE
                }
            })
            .collect())
    }

    /// EndTxn: an open transaction is prepared to commit or abort; a retry of an ending or
    /// ended one is answered as Kafka does.
    pub fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Outcome {
        let m = match self.check_producer(transactional_id, producer_id, epoch) {
            Ok(m) => m,
            Err(code) => return Outcome::Error(code),
        };
        match (m.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut meta = m.clone();
                meta.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                meta.last_update_ms = now_ms;
                Outcome::Write(Transition {
                    transactional_id: transactional_id.to_string(),
                    meta,
                })
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Outcome::Done,
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Outcome::Error(CONCURRENT_TRANSACTIONS)
            }
            _ => Outcome::Error(INVALID_TXN_STATE),
        }
    }

    /// Every marker of a prepared transaction is written: it completes (partitions cleared).
    /// `prepared` is the state the markers were written for; `None` if the state is no longer
    /// exactly that (another completion, a reload, or the producer's next transaction, which
    /// has the same producer id and epoch and may be prepared too: completing that one would
    /// leave the partitions only it has unmarked).
    pub fn complete(
        &self,
        transactional_id: &str,
        prepared: &TxnMeta,
        now_ms: i64,
    ) -> Option<Transition> {
        let m = self.txns.get(transactional_id)?;
        if m != prepared || !m.state.is_prepared() {
            return None;
        }
        let mut meta = m.clone();
        meta.state = if m.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.last_update_ms = now_ms;
        meta.start_ms = -1;
        Some(Transition {
            transactional_id: transactional_id.to_string(),
            meta,
        })
    }

    /// Open transactions past their timeout, each as the abort that fences its producer
    /// (epoch bumped, as Kafka aborts a timed-out transaction), and prepared ones whose
    /// markers must be (re)sent are the shell's to find with [`prepared`](Self::prepared).
    pub fn expired(&self, now_ms: i64) -> Vec<Transition> {
        self.txns
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && m.start_ms >= 0
                    && now_ms.saturating_sub(m.start_ms) > i64::from(m.timeout_ms)
            })
            .map(|(id, m)| {
                let mut meta = m.clone();
                meta.producer_epoch = m.producer_epoch.saturating_add(1);
                meta.state = TxnState::PrepareAbort;
                meta.last_update_ms = now_ms;
                Transition {
                    transactional_id: id.clone(),
                    meta,
                }
            })
            .collect()
    }

    /// Transactions whose markers are being written (after a reload, they must be resent).
    pub fn prepared(&self) -> Vec<Transition> {
        self.txns
            .iter()
            .filter(|(_, m)| m.state.is_prepared())
            .map(|(id, m)| Transition {
                transactional_id: id.clone(),
                meta: m.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator() -> TxnCoordinator {
        TxnCoordinator::new(TxnConfig {
            max_timeout_ms: 900_000,
        })
    }

    fn apply(c: &mut TxnCoordinator, o: InitOutcome) -> TxnMeta {
        match o {
            InitOutcome::Write(t) | InitOutcome::Fence(t) => {
                let m = t.meta.clone();
                c.commit(t);
                m
            }
            InitOutcome::Error(e) => panic!("error {e}"),
            InitOutcome::Unchanged(..) => panic!("unchanged"),
        }
    }

    fn write(c: &mut TxnCoordinator, o: Outcome) -> TxnMeta {
        match o {
            Outcome::Write(t) => {
                let m = t.meta.clone();
                c.commit(t);
                m
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn records_round_trip_in_kafkas_schema() {
        let meta = TxnMeta {
            producer_id: 4000,
            producer_epoch: 7,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("a".to_string(), 0),
                ("a".to_string(), 2),
                ("b".to_string(), 1),
            ]
            .into_iter()
            .collect(),
            last_update_ms: 1_700_000_000_123,
            start_ms: 1_700_000_000_000,
        };
        let bytes = meta.encode();
        // version, pid, epoch, timeout, status, 2 topics: "a" [0, 2], "b" [1], two times.
        assert_eq!(
            bytes.len(),
            2 + 8 + 2 + 4 + 1 + 4 + (2 + 1 + 4 + 8) + (2 + 1 + 4 + 4) + 16
        );
        assert_eq!(TxnMeta::decode(&bytes), Ok(meta));
        assert_eq!(decode_key(&encode_key("tx-1")).as_deref(), Ok("tx-1"));
        for cut in 0..bytes.len() {
            assert!(TxnMeta::decode(&bytes[..cut]).is_err());
        }
    }

    // KIP-98: a second InitProducerId bumps the epoch; the old epoch is fenced everywhere.
    #[test]
    fn a_new_producer_instance_fences_the_old_one_and_aborts_its_transaction() {
        let mut c = coordinator();
        let m = {
            let o = c.init_producer_id("t", 60_000, (-1, -1), Some(9), 0);
            apply(&mut c, o)
        };
        assert_eq!((m.producer_id, m.producer_epoch), (9, 0));
        let parts = [("x".to_string(), 0)];
        {
            let o = c.add_partitions("t", 9, 0, &parts, 10);
            write(&mut c, o)
        };
        // The zombie's replacement starts: the open transaction is aborted at epoch 1.
        let fenced = {
            let o = c.init_producer_id("t", 60_000, (-1, -1), None, 20);
            apply(&mut c, o)
        };
        assert_eq!(
            (fenced.state, fenced.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
        assert_eq!(
            c.end_txn("t", 9, 0, true, 21),
            Outcome::Error(PRODUCER_FENCED)
        );
        assert_eq!(
            c.init_producer_id("t", 60_000, (-1, -1), None, 22),
            InitOutcome::Error(CONCURRENT_TRANSACTIONS)
        );
        let prepared = c.get("t").cloned().unwrap();
        let done = c.complete("t", &prepared, 30).map(|t| {
            c.commit(t.clone());
            t.meta
        });
        assert_eq!(done.map(|m| m.state), Some(TxnState::CompleteAbort));
        let m = {
            let o = c.init_producer_id("t", 60_000, (-1, -1), None, 40);
            apply(&mut c, o)
        };
        assert_eq!(
            (m.producer_id, m.producer_epoch, m.state),
            (9, 2, TxnState::Empty)
        );
        assert_eq!(
            c.add_partitions("t", 9, 1, &parts, 50),
            Outcome::Error(PRODUCER_FENCED)
        );
    }

    #[test]
    fn a_retried_epoch_bump_gets_the_epoch_it_already_made() {
        let mut c = coordinator();
        let o = c.init_producer_id("t", 60_000, (-1, -1), Some(5), 0);
        apply(&mut c, o);
        let o = c.init_producer_id("t", 60_000, (5, 0), None, 1);
        let m = apply(&mut c, o);
        assert_eq!(m.producer_epoch, 1);
        assert_eq!(
            c.init_producer_id("t", 60_000, (5, 0), None, 2),
            InitOutcome::Unchanged(5, 1)
        );
        assert_eq!(
            c.init_producer_id("t", 60_000, (6, 1), None, 2),
            InitOutcome::Error(PRODUCER_FENCED)
        );
    }

    #[test]
    fn end_txn_prepares_and_retries_are_answered_as_kafka_does() {
        let mut c = coordinator();
        {
            let o = c.init_producer_id("t", 60_000, (-1, -1), Some(1), 0);
            apply(&mut c, o)
        };
        assert_eq!(
            c.end_txn("t", 1, 0, true, 1),
            Outcome::Error(INVALID_TXN_STATE)
        );
        {
            let o = c.add_partitions("t", 1, 0, &[("x".into(), 0)], 2);
            write(&mut c, o)
        };
        assert_eq!(
            c.add_partitions("t", 1, 0, &[("x".into(), 0)], 3),
            Outcome::Done
        );
        let m = {
            let o = c.end_txn("t", 1, 0, true, 4);
            write(&mut c, o)
        };
        assert_eq!(m.state, TxnState::PrepareCommit);
        assert_eq!(
            c.end_txn("t", 1, 0, true, 5),
            Outcome::Error(CONCURRENT_TRANSACTIONS)
        );
        assert_eq!(
            c.add_partitions("t", 1, 0, &[("y".into(), 0)], 5),
            Outcome::Error(CONCURRENT_TRANSACTIONS)
        );
        let mut stale = c.get("t").cloned().unwrap();
        stale.start_ms += 1;
        assert_eq!(
            c.complete("t", &stale, 6),
            None,
            "another transaction's markers"
        );
        let prepared = c.get("t").cloned().unwrap();
        let t = c.complete("t", &prepared, 6).map(|t| {
            c.commit(t.clone());
            t.meta
        });
        assert_eq!(
            t.map(|m| (m.state, m.partitions.len())),
            Some((TxnState::CompleteCommit, 0))
        );
        assert_eq!(c.end_txn("t", 1, 0, true, 7), Outcome::Done);
        assert_eq!(
            c.end_txn("t", 1, 0, false, 7),
            Outcome::Error(INVALID_TXN_STATE)
        );
        assert_eq!(
            c.end_txn("t", 2, 0, true, 7),
            Outcome::Error(INVALID_PRODUCER_ID_MAPPING)
        );
        // The next transaction starts afresh with only its own partitions.
        let m = {
            let o = c.add_partitions("t", 1, 0, &[("y".into(), 1)], 8);
            write(&mut c, o)
        };
        assert_eq!(m.partitions.len(), 1);
        assert_eq!(m.start_ms, 8);
    }

    /// KIP-890 ("Transactions Server-Side Defense"): a partition leader's check that a
    /// partition is in the producer's open transaction.
    #[test]
    fn verification_answers_whether_a_partition_is_in_the_open_transaction() {
        let mut c = coordinator();
        {
            let o = c.init_producer_id("t", 60_000, (-1, -1), Some(1), 0);
            apply(&mut c, o)
        };
        let x0 = [("x".to_string(), 0)];
        let both = [("x".to_string(), 0), ("x".to_string(), 1)];
        // No transaction open: nothing verifies.
        assert_eq!(
            c.verify_partitions("t", 1, 0, &x0),
            Ok(vec![INVALID_TXN_STATE])
        );
        {
            let o = c.add_partitions("t", 1, 0, &x0, 2);
            write(&mut c, o)
        };
        assert_eq!(
            c.verify_partitions("t", 1, 0, &both),
            Ok(vec![0, INVALID_TXN_STATE])
        );
        assert_eq!(
            c.verify_partitions("t", 2, 0, &x0),
            Err(INVALID_PRODUCER_ID_MAPPING)
        );
        assert_eq!(c.verify_partitions("t", 1, 1, &x0), Err(PRODUCER_FENCED));
        assert_eq!(
            c.verify_partitions("u", 1, 0, &x0),
            Err(INVALID_PRODUCER_ID_MAPPING)
        );
        // Ending: the answer would not hold (Kafka says CONCURRENT_TRANSACTIONS).
        {
            let o = c.end_txn("t", 1, 0, false, 3);
            write(&mut c, o)
        };
        assert_eq!(
            c.verify_partitions("t", 1, 0, &x0),
            Err(CONCURRENT_TRANSACTIONS)
        );
        let prepared = c.get("t").cloned().unwrap();
        if let Some(t) = c.complete("t", &prepared, 4) {
            c.commit(t);
        }
        // Ended: a late batch of the old transaction is not in any transaction.
        assert_eq!(
            c.verify_partitions("t", 1, 0, &x0),
            Ok(vec![INVALID_TXN_STATE])
        );
    }

    #[test]
    fn timeouts_abort_with_a_bumped_epoch_and_bad_timeouts_are_refused() {
        let mut c = coordinator();
        assert_eq!(
            c.init_producer_id("t", 900_001, (-1, -1), Some(1), 0),
            InitOutcome::Error(INVALID_TRANSACTION_TIMEOUT)
        );
        {
            let o = c.init_producer_id("t", 1_000, (-1, -1), Some(1), 0);
            apply(&mut c, o)
        };
        {
            let o = c.add_partitions("t", 1, 0, &[("x".into(), 0)], 100);
            write(&mut c, o)
        };
        assert!(c.expired(1_100).is_empty());
        let expired = c.expired(1_101);
        assert_eq!(expired.len(), 1);
        assert_eq!(
            (expired[0].meta.state, expired[0].meta.producer_epoch),
            (TxnState::PrepareAbort, 1)
        );
    }
}
