//! The active controller: validates commands against the image and turns them into records.
//! Records it makes are applied to its own image at once, at the metadata log offsets they will
//! get (from [`Controller::next_offset`], which the shell keeps equal to the log end with
//! [`Controller::align`] and honours by proposing them at once, in order), so commands that
//! follow see them. When the shell loses leadership it calls [`Controller::reset`] and rebuilds
//! the image from committed records with [`Controller::replay`]; records that never committed
//! are forgotten.

use super::image::{ApplyError, MetadataImage, PartitionRegistration};
use super::records::{topic_id, Endpoint, MetadataRecord};
use crate::model::bugs::ClusterBugs;
use kafka_protocol::error::ResponseError;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub session_timeout_ms: u64,
    /// `num.partitions`.
    pub default_partitions: i32,
    /// `default.replication.factor`.
    pub default_replication_factor: i16,
    /// `unclean.leader.election.enable` (topics may override): a partition with no live ISR
    /// member may be led by any live replica.
    pub unclean_leader_election: bool,
    /// `auto.leader.rebalance.enable`: move leadership back to preferred replicas.
    pub auto_leader_rebalance: bool,
    /// `leader.imbalance.check.interval.seconds`, in ms.
    pub leader_imbalance_check_interval_ms: u64,
    /// `leader.imbalance.per.broker.percentage`: a broker leading fewer than this share of the
    /// partitions it is preferred for below what it should triggers preferred elections.
    pub leader_imbalance_per_broker_percentage: u64,
    /// In a combined node, the broker in this controller's own process: (node id, incarnation
    /// id). Its registration replaces an older incarnation at once, since that one cannot be
    /// alive while this process is the node (anyone else's waits out the old session).
    pub colocated_broker: Option<(i32, String)>,
    /// Planted bugs (simulator only): `leader_outside_isr`.
    pub bugs: crate::model::bugs::ClusterBugs,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            session_timeout_ms: 9_000,
            default_partitions: 1,
            default_replication_factor: 1,
            unclean_leader_election: false,
            auto_leader_rebalance: true,
            leader_imbalance_check_interval_ms: 300_000,
            leader_imbalance_per_broker_percentage: 10,
            colocated_broker: None,
            bugs: Default::default(),
        }
    }
}

/// Producer ids handed to a broker at a time (Kafka's block size).
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// A refused command, with the Kafka error it maps to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    TopicAlreadyExists(String),
    #[error("{0}")]
    InvalidPartitions(String),
    #[error("{0}")]
    InvalidReplicationFactor(String),
    #[error("{0}")]
    InvalidTopic(String),
    #[error("{0}")]
    UnknownTopic(String),
    #[error("{0}")]
    StaleBrokerEpoch(String),
    #[error("{0}")]
    DuplicateBrokerRegistration(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    UnknownTopicId(String),
    #[error("{0}")]
    UnknownPartition(String),
    #[error("{0}")]
    NotLeader(String),
    #[error("{0}")]
    FencedLeaderEpoch(String),
    #[error("{0}")]
    InvalidUpdateVersion(String),
    #[error("{0}")]
    IneligibleReplica(String),
    #[error("{0}")]
    ElectionNotNeeded(String),
    #[error("{0}")]
    PreferredLeaderNotAvailable(String),
    #[error("{0}")]
    EligibleLeadersNotAvailable(String),
    #[error("{0}")]
    UnsupportedSaslMechanism(String),
    #[error("{0}")]
    UnacceptableCredential(String),
    #[error("{0}")]
    ResourceNotFound(String),
    #[error("{0}")]
    DuplicateResource(String),
}

/// AlterUserScramCredentials' answer per user.
pub type ScramResults = Vec<(String, Result<(), ApiError>)>;

/// One change AlterUserScramCredentials asks for: a user's credential for a mechanism set
/// (`Some`, computed from the salted password by the shell) or deleted (`None`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramChange {
    pub user: String,
    pub mechanism: i8,
    pub credential: Option<super::image::ScramCredential>,
}

/// One ConfigRecord per change of `resource` `name` (a `None` value deletes the key).
fn config_records(
    resource: &str,
    name: &str,
    changes: &[(String, Option<String>)],
) -> Vec<MetadataRecord> {
    changes
        .iter()
        .map(|(key, value)| MetadataRecord::Config {
            resource: resource.to_string(),
            name: name.to_string(),
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

impl ApiError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            ApiError::TopicAlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            ApiError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
            ApiError::InvalidReplicationFactor(_) => ResponseError::InvalidReplicationFactor.code(),
            ApiError::InvalidTopic(_) => ResponseError::InvalidTopicException.code(),
            ApiError::UnknownTopic(_) => ResponseError::UnknownTopicOrPartition.code(),
            ApiError::StaleBrokerEpoch(_) => ResponseError::StaleBrokerEpoch.code(),
            ApiError::DuplicateBrokerRegistration(_) => {
                ResponseError::DuplicateBrokerRegistration.code()
            }
            ApiError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            ApiError::UnsupportedSaslMechanism(_) => ResponseError::UnsupportedSaslMechanism.code(),
            ApiError::UnacceptableCredential(_) => ResponseError::UnacceptableCredential.code(),
            ApiError::ResourceNotFound(_) => ResponseError::ResourceNotFound.code(),
            ApiError::DuplicateResource(_) => ResponseError::DuplicateResource.code(),
            ApiError::InvalidRequest(_) => ResponseError::InvalidRequest.code(),
            ApiError::UnknownTopicId(_) => ResponseError::UnknownTopicId.code(),
            ApiError::UnknownPartition(_) => ResponseError::UnknownTopicOrPartition.code(),
            ApiError::NotLeader(_) => ResponseError::NotLeaderOrFollower.code(),
            ApiError::FencedLeaderEpoch(_) => ResponseError::FencedLeaderEpoch.code(),
            ApiError::InvalidUpdateVersion(_) => ResponseError::InvalidUpdateVersion.code(),
            ApiError::IneligibleReplica(_) => ResponseError::IneligibleReplica.code(),
            ApiError::ElectionNotNeeded(_) => ResponseError::ElectionNotNeeded.code(),
            ApiError::PreferredLeaderNotAvailable(_) => {
                ResponseError::PreferredLeaderNotAvailable.code()
            }
            ApiError::EligibleLeadersNotAvailable(_) => {
                ResponseError::EligibleLeadersNotAvailable.code()
            }
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTopic {
    pub name: String,
    /// -1: `num.partitions`.
    pub partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shutdown: bool,
}

pub struct Controller {
    config: ControllerConfig,
    image: MetadataImage,
    /// Last heartbeat (or registration) of each broker, in the controller's monotonic ms.
    sessions: BTreeMap<i32, u64>,
    rng: ChaCha8Rng,
    /// The metadata log offset the next record made here will have.
    next_offset: i64,
    /// Unclean elections made since the shell last asked (topic, partition, new leader): each
    /// is worth a line in the log, acknowledged records may be lost.
    unclean_elections: Vec<(String, i32, i32)>,
    /// When leader imbalance was last checked (monotonic ms).
    last_imbalance_check_ms: Option<u64>,
}

/// Which leader ElectLeaders (KIP-460) asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Election {
    /// The first replica, if it is in the ISR and unfenced.
    Preferred,
    /// For a partition without a leader: an ISR member if one is live, else any live replica
    /// (losing what it lacks).
    Unclean,
}

/// Kafka's topic name rule: 1 to 249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), ApiError> {
    let legal = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if name.is_empty() || name.len() > 249 || !legal || name == "." || name == ".." {
        return Err(ApiError::InvalidTopic(format!(
            "topic name '{name}' is illegal: it must be 1 to 249 characters of [a-zA-Z0-9._-], and not '.' or '..'"
        )));
    }
    Ok(())
}

impl Controller {
    pub fn new(config: ControllerConfig, seed: u64) -> Controller {
        Controller {
            config,
            image: MetadataImage::new(),
            sessions: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
            next_offset: 0,
            unclean_elections: Vec::new(),
            last_imbalance_check_ms: None,
        }
    }

    /// The offset the next record made here will have.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The metadata log's next offset is `next_offset` (entries that are not records, such as a
    /// leader's LeaderChange, take offsets too).
    pub fn align(&mut self, next_offset: i64) {
        assert!(
            next_offset > self.image.offset,
            "records already applied past {next_offset}"
        );
        self.next_offset = next_offset;
    }

    /// Forgets what it made (leadership lost, or a snapshot replaced the log) and starts again
    /// from `image`, a committed one; the records after it are replayed.
    pub fn reset_to(&mut self, image: MetadataImage) {
        self.next_offset = image.offset + 1;
        self.image = image;
        self.sessions.clear();
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Applies a committed record: how every node, active or not, follows the metadata log.
    pub fn replay(&mut self, offset: i64, record: &MetadataRecord) -> Result<(), ApplyError> {
        self.image.apply(offset, record)?;
        self.next_offset = self.next_offset.max(offset + 1);
        Ok(())
    }

    /// Becoming active: every registered broker gets a full session from now, since the
    /// heartbeats the previous controller saw are not known here.
    pub fn activate(&mut self, now_ms: u64) {
        self.sessions = self.image.brokers.keys().map(|b| (*b, now_ms)).collect();
    }

    /// Unfenced brokers that have not heartbeated since `since_ms` (this controller's
    /// activation, which gave every broker a fresh session): (id, epoch, endpoints). The shell
    /// may check whether they are there at all rather than wait their session out.
    pub fn silent_brokers(&self, since_ms: u64) -> Vec<(i32, i64, Vec<Endpoint>)> {
        self.image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                self.sessions
                    .get(&b.broker_id)
                    .is_some_and(|t| *t <= since_ms)
            })
            .map(|b| (b.broker_id, b.broker_epoch, b.endpoints.clone()))
            .collect()
    }

    /// Applies records this controller made, at the offsets they will have in the log.
    fn commit_locally(&mut self, records: &[MetadataRecord]) -> Result<(), ApplyError> {
        for r in records {
            self.image.apply(self.next_offset, r)?;
            self.next_offset += 1;
        }
        Ok(())
    }

    fn finish(&mut self, records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
        // Records made from the image's own state always apply, and encode (their ids are
        // UUIDs, their config resources Kafka's); a failure is a bug here.
        if let Err(e) = self.commit_locally(&records) {
            panic!("the controller made a record its own image refuses: {e}");
        }
        for r in &records {
            if let Err(e) = r.encode() {
                panic!("the controller made a record it cannot encode: {e}");
            }
        }
        records
    }

    pub fn register_broker(
        &mut self,
        broker_id: i32,
        incarnation_id: &str,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
        now_ms: u64,
    ) -> Result<(Vec<MetadataRecord>, i64), ApiError> {
        // The record holds it as a UUID (Kafka's RegisterBrokerRecord).
        if uuid::Uuid::parse_str(incarnation_id)
            .map(|u| u.to_string())
            .as_deref()
            != Ok(incarnation_id)
        {
            return Err(ApiError::InvalidRequest(format!(
                "incarnation id '{incarnation_id}' is not a hyphenated lower-case UUID"
            )));
        }
        if let Some(existing) = self.image.brokers.get(&broker_id) {
            let alive = self
                .sessions
                .get(&broker_id)
                .is_some_and(|t| now_ms < t + self.config.session_timeout_ms);
            let colocated = self
                .config
                .colocated_broker
                .as_ref()
                .is_some_and(|(id, inc)| *id == broker_id && inc == incarnation_id);
            if existing.incarnation_id != incarnation_id && alive && !existing.fenced && !colocated
            {
                return Err(ApiError::DuplicateBrokerRegistration(format!(
                    "another broker {broker_id} (incarnation {}) is registered and alive",
                    existing.incarnation_id
                )));
            }
        }
        // A re-registering broker is a new process that may have lost unflushed data: it leaves
        // the ISRs and leaderships it held (as if fenced) before it registers again, fenced.
        let mut records = if self.image.brokers.contains_key(&broker_id) {
            self.fence_records(broker_id)
        } else {
            Vec::new()
        };
        let broker_epoch = self.next_offset + records.len() as i64;
        records.push(MetadataRecord::RegisterBroker {
            broker_id,
            incarnation_id: incarnation_id.to_string(),
            broker_epoch,
            endpoints,
            rack,
        });
        self.sessions.insert(broker_id, now_ms);
        Ok((self.finish(records), broker_epoch))
    }

    /// Hands broker `broker_id` the next block of producer ids (AllocateProducerIds, KIP-730):
    /// returns the records and the block's first id and length.
    pub fn allocate_producer_ids(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<(Vec<MetadataRecord>, i64, i32), ApiError> {
        match self.image.brokers.get(&broker_id) {
            Some(b) if b.broker_epoch == broker_epoch => {}
            _ => {
                return Err(ApiError::StaleBrokerEpoch(format!(
                    "broker {broker_id} is not registered at epoch {broker_epoch}"
                )))
            }
        }
        let start = self.image.next_producer_id;
        let records = self.finish(vec![MetadataRecord::ProducerIds {
            broker_id,
            next_producer_id: start + PRODUCER_ID_BLOCK,
        }]);
        Ok((records, start, PRODUCER_ID_BLOCK as i32))
    }

    pub fn heartbeat(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        metadata_offset: i64,
        want_fence: bool,
        want_shutdown: bool,
        now_ms: u64,
    ) -> Result<(HeartbeatReply, Vec<MetadataRecord>), ApiError> {
        let Some(b) = self.image.brokers.get(&broker_id) else {
            return Err(ApiError::StaleBrokerEpoch(format!(
                "broker {broker_id} is not registered"
            )));
        };
        if b.broker_epoch != broker_epoch {
            return Err(ApiError::StaleBrokerEpoch(format!(
                "broker {broker_id} is at epoch {}, not {broker_epoch}",
                b.broker_epoch
            )));
        }
        let fenced = b.fenced;
        self.sessions.insert(broker_id, now_ms);
        // Caught up: the broker has replayed the metadata log as far as this controller had
        // when it registered it, at least (KIP-631 uses the registration's offset).
        let is_caught_up = metadata_offset >= broker_epoch;
        let mut records = Vec::new();
        if fenced && is_caught_up && !want_fence && !want_shutdown {
            records.push(MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            });
            // Partitions left without a leader that this broker can lead get it back.
            let mut unclean = Vec::new();
            for topic in self.image.topics.values() {
                for (index, p) in &topic.partitions {
                    if p.leader == -1 && p.isr.contains(&broker_id) {
                        records.push(MetadataRecord::PartitionChange {
                            topic_id: topic.topic_id.clone(),
                            partition: *index,
                            isr: None,
                            leader: Some(broker_id),
                        });
                    } else if p.leader == -1
                        && p.replicas.contains(&broker_id)
                        && self.unclean_allowed(&topic.name)
                    {
                        unclean.push((topic.name.clone(), *index, broker_id));
                        records.push(MetadataRecord::PartitionChange {
                            topic_id: topic.topic_id.clone(),
                            partition: *index,
                            isr: Some(vec![broker_id]),
                            leader: Some(broker_id),
                        });
                    }
                }
            }
            self.unclean_elections.extend(unclean);
        } else if !fenced && (want_fence || want_shutdown) {
            records = self.fence_records(broker_id);
        }
        let records = self.finish(records);
        let is_fenced = self.image.brokers.get(&broker_id).is_none_or(|b| b.fenced);
        Ok((
            HeartbeatReply {
                is_caught_up,
                is_fenced,
                should_shutdown: want_shutdown,
            },
            records,
        ))
    }

    /// A partition leader's ISR change (AlterPartition, KIP-497): only from the partition's
    /// leader at its current leader epoch (FENCED_LEADER_EPOCH otherwise) and partition epoch
    /// (INVALID_UPDATE_VERSION: the leader has not seen the latest change), to an ISR of
    /// unfenced replicas holding the leader (INELIGIBLE_REPLICA). Returns the PartitionChange
    /// (none if nothing changes) and the partition as it then stands.
    #[allow(clippy::too_many_arguments)]
    pub fn alter_partition(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        topic_id: &str,
        partition: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        new_isr: &[i32],
    ) -> Result<(Vec<MetadataRecord>, PartitionRegistration), ApiError> {
        match self.image.brokers.get(&broker_id) {
            Some(b) if b.broker_epoch == broker_epoch || broker_epoch < 0 => {}
            _ => {
                return Err(ApiError::StaleBrokerEpoch(format!(
                    "broker {broker_id} is not registered at epoch {broker_epoch}"
                )))
            }
        }
        let topic = self
            .image
            .topics
            .get(topic_id)
            .ok_or_else(|| ApiError::UnknownTopicId(format!("no topic with id {topic_id}")))?;
        let p = topic.partitions.get(&partition).ok_or_else(|| {
            ApiError::UnknownPartition(format!("{} has no partition {partition}", topic.name))
        })?;
        if p.leader != broker_id {
            return Err(ApiError::NotLeader(format!(
                "broker {broker_id} does not lead {}-{partition} (broker {} does)",
                topic.name, p.leader
            )));
        }
        if leader_epoch != p.leader_epoch {
            return Err(ApiError::FencedLeaderEpoch(format!(
                "leader epoch {leader_epoch}, the partition is at {}",
                p.leader_epoch
            )));
        }
        // A resend of the change that made the current partition epoch (its answer was lost):
        // the partition already is what the leader asked for, so say so instead of refusing,
        // and the leader stops counting on an ISR it may have lost.
        let mut asked = new_isr.to_vec();
        asked.sort_unstable();
        let mut current = p.isr.clone();
        current.sort_unstable();
        if partition_epoch + 1 == p.partition_epoch && asked == current {
            return Ok((Vec::new(), p.clone()));
        }
        if partition_epoch != p.partition_epoch {
            return Err(ApiError::InvalidUpdateVersion(format!(
                "partition epoch {partition_epoch}, the partition is at {}",
                p.partition_epoch
            )));
        }
        let mut isr = new_isr.to_vec();
        isr.sort_unstable();
        isr.dedup();
        if isr.len() != new_isr.len() || !isr.contains(&broker_id) {
            return Err(ApiError::InvalidRequest(format!(
                "ISR {new_isr:?} must name distinct replicas, the leader among them"
            )));
        }
        for r in &isr {
            let eligible =
                p.replicas.contains(r) && self.image.brokers.get(r).is_some_and(|b| !b.fenced);
            if !eligible && !p.isr.contains(r) {
                return Err(ApiError::IneligibleReplica(format!(
                    "broker {r} is not an unfenced replica of {}-{partition}",
                    topic.name
                )));
            }
        }
        let mut current = p.isr.clone();
        current.sort_unstable();
        if current == isr {
            return Ok((Vec::new(), p.clone()));
        }
        let record = MetadataRecord::PartitionChange {
            topic_id: topic_id.to_string(),
            partition,
            isr: Some(isr),
            leader: None,
        };
        let records = self.finish(vec![record]);
        let now = self
            .image
            .topics
            .get(topic_id)
            .and_then(|t| t.partitions.get(&partition))
            .cloned()
            .ok_or_else(|| ApiError::UnknownPartition("partition vanished".into()))?;
        Ok((records, now))
    }

    /// ElectLeaders for one partition (KIP-460): the records, or why no election happens
    /// (ELECTION_NOT_NEEDED, PREFERRED_LEADER_NOT_AVAILABLE, ELIGIBLE_LEADERS_NOT_AVAILABLE,
    /// UNKNOWN_TOPIC_OR_PARTITION).
    pub fn elect_leader(
        &mut self,
        topic: &str,
        partition: i32,
        election: Election,
    ) -> Result<Vec<MetadataRecord>, ApiError> {
        let t = self
            .image
            .topic_by_name(topic)
            .ok_or_else(|| ApiError::UnknownPartition(format!("no topic {topic}")))?;
        let p = t.partitions.get(&partition).ok_or_else(|| {
            ApiError::UnknownPartition(format!("{topic} has no partition {partition}"))
        })?;
        let live = |id: &i32| self.image.brokers.get(id).is_some_and(|b| !b.fenced);
        let topic_id = t.topic_id.clone();
        let change = match election {
            Election::Preferred => {
                let preferred = p.replicas.first().copied().unwrap_or(-1);
                if p.leader == preferred {
                    return Err(ApiError::ElectionNotNeeded(format!(
                        "{topic}-{partition} is led by its preferred replica {preferred}"
                    )));
                }
                if !p.isr.contains(&preferred) || !live(&preferred) {
                    return Err(ApiError::PreferredLeaderNotAvailable(format!(
                        "the preferred replica {preferred} of {topic}-{partition} is not a live member of the ISR"
                    )));
                }
                (preferred, None)
            }
            Election::Unclean => {
                if p.leader >= 0 {
                    return Err(ApiError::ElectionNotNeeded(format!(
                        "{topic}-{partition} has a leader ({})",
                        p.leader
                    )));
                }
                match p.isr.iter().copied().find(live) {
                    Some(r) => (r, None),
                    None => {
                        let r = p.replicas.iter().copied().find(live).ok_or_else(|| {
                            ApiError::EligibleLeadersNotAvailable(format!(
                                "no replica of {topic}-{partition} is live"
                            ))
                        })?;
                        self.unclean_elections
                            .push((topic.to_string(), partition, r));
                        (r, Some(vec![r]))
                    }
                }
            }
        };
        Ok(self.finish(vec![MetadataRecord::PartitionChange {
            topic_id,
            partition,
            isr: change.1,
            leader: Some(change.0),
        }]))
    }

    /// `auto.leader.rebalance.enable`: every `leader.imbalance.check.interval.seconds`, for each
    /// broker leading fewer of the partitions it is the preferred replica of than
    /// `leader.imbalance.per.broker.percentage` allows, a preferred election for each of those
    /// partitions it can take (in the ISR, unfenced).
    fn rebalance_leaders(&mut self, now_ms: u64) -> Vec<MetadataRecord> {
        if !self.config.auto_leader_rebalance {
            return Vec::new();
        }
        let last = *self.last_imbalance_check_ms.get_or_insert(now_ms);
        if now_ms.saturating_sub(last) < self.config.leader_imbalance_check_interval_ms {
            return Vec::new();
        }
        self.last_imbalance_check_ms = Some(now_ms);
        // preferred broker → (partitions it is preferred for, those it does not lead)
        let mut by_broker: BTreeMap<i32, (u64, Vec<(String, i32)>)> = BTreeMap::new();
        for t in self.image.topics.values() {
            for (index, p) in &t.partitions {
                let Some(preferred) = p.replicas.first().copied() else {
                    continue;
                };
                let e = by_broker.entry(preferred).or_default();
                e.0 += 1;
                if p.leader != preferred {
                    e.1.push((t.name.clone(), *index));
                }
            }
        }
        let mut records = Vec::new();
        for (total, off) in by_broker.into_values() {
            if total == 0
                || (off.len() as u64) * 100
                    <= total * self.config.leader_imbalance_per_broker_percentage
            {
                continue;
            }
            for (topic, partition) in off {
                if let Ok(made) = self.elect_leader(&topic, partition, Election::Preferred) {
                    records.extend(made);
                }
            }
        }
        records
    }

    /// Unclean elections made since the last call.
    pub fn take_unclean_elections(&mut self) -> Vec<(String, i32, i32)> {
        std::mem::take(&mut self.unclean_elections)
    }

    /// Whether `topic` may elect a leader outside its ISR.
    fn unclean_allowed(&self, topic: &str) -> bool {
        self.image
            .configs
            .get(&("topic".to_string(), topic.to_string()))
            .and_then(|c| c.get("unclean.leader.election.enable"))
            .map_or(self.config.unclean_leader_election, |v| v.trim() == "true")
    }

    /// The broker is gone (its heartbeat connection closed, or its listeners refuse
    /// connections): if it is registered at `broker_epoch` and unfenced, fence it now and move
    /// its leaderships (as a session expiry would, sooner).
    pub fn connection_lost(&mut self, broker_id: i32, broker_epoch: i64) -> Vec<MetadataRecord> {
        let live = self
            .image
            .brokers
            .get(&broker_id)
            .is_some_and(|b| b.broker_epoch == broker_epoch && !b.fenced);
        if !live {
            return Vec::new();
        }
        let records = self.fence_records(broker_id);
        self.finish(records)
    }

    /// Fences brokers whose session expired and moves their partitions' leadership.
    pub fn tick(&mut self, now_ms: u64) -> Vec<MetadataRecord> {
        let expired: Vec<i32> = self
            .image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                self.sessions
                    .get(&b.broker_id)
                    .is_none_or(|t| now_ms >= t + self.config.session_timeout_ms)
            })
            .map(|b| b.broker_id)
            .collect();
        let mut all = Vec::new();
        for broker in expired {
            let records = self.fence_records(broker);
            all.extend(self.finish(records));
        }
        all.extend(self.rebalance_leaders(now_ms));
        all
    }

    /// FenceBroker, plus a PartitionChange for each partition the broker is in the ISR of: out
    /// of the ISR (unless it is the last member, which stays as the only copy known complete),
    /// and, where it led, leadership to the first unfenced ISR member, or none.
    fn fence_records(&mut self, broker_id: i32) -> Vec<MetadataRecord> {
        let Some(b) = self.image.brokers.get(&broker_id) else {
            return Vec::new();
        };
        let mut unclean = Vec::new();
        let mut records = vec![MetadataRecord::FenceBroker {
            broker_id,
            broker_epoch: b.broker_epoch,
        }];
        let unfenced =
            |id: &i32| *id != broker_id && self.image.brokers.get(id).is_some_and(|x| !x.fenced);
        for topic in self.image.topics.values() {
            for (index, p) in &topic.partitions {
                if !p.isr.contains(&broker_id) && p.leader != broker_id {
                    continue;
                }
                let mut isr: Vec<i32> = p.isr.iter().copied().filter(|r| *r != broker_id).collect();
                if isr.is_empty() {
                    isr = p.isr.clone();
                }
                let mut leader = if p.leader == broker_id || p.leader == -1 {
                    isr.iter().copied().find(unfenced).unwrap_or(-1)
                } else {
                    p.leader
                };
                if ClusterBugs::live(self.config.bugs.leader_outside_isr) && p.leader == broker_id {
                    // The planted bug: a live replica outside the ISR leads (the ISR unchanged).
                    if let Some(r) = p
                        .replicas
                        .iter()
                        .copied()
                        .find(|r| unfenced(r) && !isr.contains(r))
                    {
                        leader = r;
                    }
                }
                if leader == -1 && self.unclean_allowed(&topic.name) {
                    // Unclean: any live replica, which becomes the whole ISR (what it lacks
                    // is lost).
                    if let Some(r) = p.replicas.iter().copied().find(unfenced) {
                        unclean.push((topic.name.clone(), *index, r));
                        leader = r;
                        isr = vec![r];
                    }
                }
                records.push(MetadataRecord::PartitionChange {
                    topic_id: topic.topic_id.clone(),
                    partition: *index,
                    isr: (isr != p.isr).then_some(isr),
                    leader: (leader != p.leader).then_some(leader),
                });
            }
        }
        self.unclean_elections.extend(unclean);
        records
    }

    /// Replica placement: unfenced brokers in id order, starting at a random one for each topic
    /// and moving one along for each partition, so replicas and leaders spread.
    fn place(
        &mut self,
        partitions: i32,
        replication_factor: usize,
        first_index: i32,
    ) -> Result<Vec<Vec<i32>>, ApiError> {
        let brokers = self.image.unfenced_brokers();
        if replication_factor == 0 || replication_factor > brokers.len() {
            return Err(ApiError::InvalidReplicationFactor(format!(
                "Replication factor: {replication_factor} larger than available brokers: {}.",
                brokers.len()
            )));
        }
        let start = self.rng.gen_range(0..brokers.len());
        Ok((0..partitions)
            .map(|p| {
                let base = start + (first_index + p) as usize;
                (0..replication_factor)
                    .map(|i| brokers[(base + i) % brokers.len()])
                    .collect()
            })
            .collect())
    }

    pub fn create_topics(
        &mut self,
        topics: &[CreateTopic],
    ) -> Vec<Result<Vec<MetadataRecord>, ApiError>> {
        topics.iter().map(|t| self.create_topic(t)).collect()
    }

    fn create_topic(&mut self, t: &CreateTopic) -> Result<Vec<MetadataRecord>, ApiError> {
        validate_topic_name(&t.name)?;
        if self.image.topic_by_name(&t.name).is_some() {
            return Err(ApiError::TopicAlreadyExists(format!(
                "Topic '{}' already exists.",
                t.name
            )));
        }
        let partitions = if t.partitions == -1 {
            self.config.default_partitions
        } else {
            t.partitions
        };
        if partitions < 1 {
            return Err(ApiError::InvalidPartitions(format!(
                "Number of partitions was set to an invalid non-positive value: {partitions}."
            )));
        }
        let rf = if t.replication_factor == -1 {
            self.config.default_replication_factor
        } else {
            t.replication_factor
        };
        if rf < 1 {
            return Err(ApiError::InvalidReplicationFactor(format!(
                "Replication factor must be larger than 0, not {rf}."
            )));
        }
        for (key, value) in &t.configs {
            super::topic_configs::validate_topic_config(key, value)
                .map_err(ApiError::InvalidConfig)?;
        }
        let placement = self.place(partitions, rf as usize, 0)?;
        let id = topic_id(self.rng.gen());
        let mut records = vec![MetadataRecord::Topic {
            name: t.name.clone(),
            topic_id: id.clone(),
        }];
        for (index, replicas) in placement.into_iter().enumerate() {
            records.push(MetadataRecord::Partition {
                topic_id: id.clone(),
                partition: index as i32,
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            });
        }
        for (key, value) in &t.configs {
            records.push(MetadataRecord::Config {
                resource: "topic".into(),
                name: t.name.clone(),
                key: key.clone(),
                value: Some(value.clone()),
            });
        }
        Ok(self.finish(records))
    }

    /// IncrementalAlterConfigs on a topic: each key set (`Some`) or deleted (`None`), all or
    /// nothing.
    pub fn alter_topic_configs(
        &mut self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<MetadataRecord>, ApiError> {
        if self.image.topic_by_name(name).is_none() {
            return Err(ApiError::UnknownTopic(format!(
                "Topic {name} does not exist."
            )));
        }
        for (key, value) in changes {
            match value {
                Some(v) => super::topic_configs::validate_topic_config(key, v),
                None => super::topic_configs::validate_topic_config(
                    key,
                    super::topic_configs::TOPIC_CONFIGS
                        .iter()
                        .find(|(k, ..)| k == key)
                        .map_or("", |c| c.2),
                ),
            }
            .map_err(ApiError::InvalidConfig)?;
        }
        Ok(self.finish(config_records("topic", name, changes)))
    }

    /// IncrementalAlterConfigs on a broker (`name` an id) or the cluster default (`name` ""):
    /// each key set or deleted, all or nothing.
    pub fn alter_broker_configs(
        &mut self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<Vec<MetadataRecord>, ApiError> {
        if !name.is_empty() && name.parse::<i32>().map_or(true, |id| id < 0) {
            return Err(ApiError::InvalidConfig(format!(
                "'{name}' is not a broker id (or \"\" for the cluster-wide default)"
            )));
        }
        for (key, value) in changes {
            match value {
                Some(v) => super::topic_configs::validate_broker_config(key, v),
                None => super::topic_configs::DYNAMIC_BROKER_CONFIGS
                    .iter()
                    .any(|(k, _)| k == key)
                    .then_some(())
                    .ok_or_else(|| format!("{key} is not a dynamic broker config")),
            }
            .map_err(ApiError::InvalidConfig)?;
        }
        Ok(self.finish(config_records("broker", name, changes)))
    }

    /// CreateAcls: each (already validated) ACL gets a fresh id and a record; one that exists
    /// already is not added twice (Kafka's answer is success either way).
    pub fn create_acls(&mut self, acls: &[super::image::AclEntry]) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        let mut made: Vec<&super::image::AclEntry> = Vec::new();
        for a in acls {
            if self.image.acls.values().any(|e| e == a) || made.contains(&a) {
                continue;
            }
            made.push(a);
            records.push(MetadataRecord::AccessControlEntry {
                id: topic_id(self.rng.gen()),
                resource_type: a.resource_type,
                resource_name: a.resource_name.clone(),
                pattern_type: a.pattern_type,
                principal: a.principal.clone(),
                host: a.host.clone(),
                operation: a.operation,
                permission_type: a.permission_type,
            });
        }
        self.finish(records)
    }

    /// DeleteAcls: the ACLs with these ids (those still there) go.
    pub fn delete_acls(&mut self, ids: &[String]) -> Vec<MetadataRecord> {
        let mut seen = BTreeSet::new();
        let records = ids
            .iter()
            .filter(|id| self.image.acls.contains_key(*id) && seen.insert(id.to_string()))
            .map(|id| MetadataRecord::RemoveAccessControlEntry { id: id.clone() })
            .collect();
        self.finish(records)
    }

    /// Records given at format time (`--add-scram`), for an empty metadata log.
    pub fn bootstrap(&mut self, records: Vec<MetadataRecord>) -> Vec<MetadataRecord> {
        self.finish(records)
    }

    /// AlterUserScramCredentials (KIP-554), as Kafka's controller decides it: one answer per
    /// user; a user with any bad change (a mechanism Kafka does not define, iterations outside
    /// 4096..=16384, an empty name, a deletion of nothing, the same mechanism twice) changes
    /// nothing, the others are all recorded.
    pub fn alter_scram(&mut self, changes: &[ScramChange]) -> (ScramResults, Vec<MetadataRecord>) {
        let mut by_user: BTreeMap<&str, Vec<&ScramChange>> = BTreeMap::new();
        for c in changes {
            by_user.entry(c.user.as_str()).or_default().push(c);
        }
        let mut results = Vec::new();
        let mut records = Vec::new();
        for (user, ops) in by_user {
            let mut seen = BTreeSet::new();
            let checked: Result<Vec<MetadataRecord>, ApiError> = ops
                .iter()
                .map(|c| {
                    if user.is_empty() {
                        return Err(ApiError::UnacceptableCredential(
                            "the user name is empty".into(),
                        ));
                    }
                    if !(1..=2).contains(&c.mechanism) {
                        return Err(ApiError::UnsupportedSaslMechanism(format!(
                            "unknown SCRAM mechanism {}",
                            c.mechanism
                        )));
                    }
                    if !seen.insert(c.mechanism) {
                        return Err(ApiError::DuplicateResource(format!(
                            "more than one change of {user}'s mechanism {}",
                            c.mechanism
                        )));
                    }
                    match &c.credential {
                        Some(cred) => {
                            if !(4096..=16384).contains(&cred.iterations) {
                                return Err(ApiError::UnacceptableCredential(format!(
                                    "iterations {} outside 4096..=16384",
                                    cred.iterations
                                )));
                            }
                            if cred.salt.is_empty() {
                                return Err(ApiError::UnacceptableCredential(
                                    "an empty salt".into(),
                                ));
                            }
                            Ok(MetadataRecord::UserScramCredential {
                                name: user.to_string(),
                                mechanism: c.mechanism,
                                salt: cred.salt.clone(),
                                stored_key: cred.stored_key.clone(),
                                server_key: cred.server_key.clone(),
                                iterations: cred.iterations,
                            })
                        }
                        None if self
                            .image
                            .scram
                            .contains_key(&(user.to_string(), c.mechanism)) =>
                        {
                            Ok(MetadataRecord::RemoveUserScramCredential {
                                name: user.to_string(),
                                mechanism: c.mechanism,
                            })
                        }
                        None => Err(ApiError::ResourceNotFound(format!(
                            "{user} has no credential for mechanism {}",
                            c.mechanism
                        ))),
                    }
                })
                .collect();
            match checked {
                Ok(made) => {
                    records.extend(made);
                    results.push((user.to_string(), Ok(())));
                }
                Err(e) => results.push((user.to_string(), Err(e))),
            }
        }
        let records = self.finish(records);
        (results, records)
    }

    pub fn delete_topics(
        &mut self,
        names: &[String],
    ) -> Vec<Result<Vec<MetadataRecord>, ApiError>> {
        names
            .iter()
            .map(|name| {
                let topic = self.image.topic_by_name(name).ok_or_else(|| {
                    ApiError::UnknownTopic(format!("This server does not host this topic: {name}"))
                })?;
                // The group coordinator's log: deleting it loses every group's offsets.
                if crate::model::is_internal_topic(name) {
                    return Err(ApiError::InvalidRequest(format!(
                        "Topic {name} is a kafka internal topic and is not allowed to be \
                         marked for deletion."
                    )));
                }
                let records = vec![MetadataRecord::RemoveTopic {
                    topic_id: topic.topic_id.clone(),
                }];
                Ok(self.finish(records))
            })
            .collect()
    }

    /// CreatePartitions: grows `name` to `count` partitions.
    pub fn create_partitions(
        &mut self,
        name: &str,
        count: i32,
    ) -> Result<Vec<MetadataRecord>, ApiError> {
        let topic = self.image.topic_by_name(name).ok_or_else(|| {
            ApiError::UnknownTopic(format!("This server does not host this topic: {name}"))
        })?;
        let current = topic.partitions.len() as i32;
        if count <= current {
            return Err(ApiError::InvalidPartitions(format!(
                "Topic currently has {current} partitions, which is higher than the requested {count}."
            )));
        }
        let rf = topic
            .partitions
            .values()
            .next()
            .map_or(1, |p| p.replicas.len());
        let topic_id = topic.topic_id.clone();
        let placement = self.place(count - current, rf, current)?;
        let records = placement
            .into_iter()
            .enumerate()
            .map(|(i, replicas)| MetadataRecord::Partition {
                topic_id: topic_id.clone(),
                partition: current + i as i32,
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
                partition_epoch: 0,
            })
            .collect();
        Ok(self.finish(records))
    }
}
