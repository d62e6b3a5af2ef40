//! Metadata records: what the metadata log and snapshots hold, in Kafka's own binary form
//! (KIP-631's record types and schemas, framed as `ApiMessageAndVersion`), so Kafka's tools can
//! read them. The JSON form earlier ketch versions wrote still decodes.

use crate::model::Uuid;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// RegisterBrokerRecord: a broker (re)registers; it starts fenced.
    RegisterBroker {
        broker_id: i32,
        /// Changes at every process start; a heartbeat from an older one is refused.
        incarnation_id: String,
        /// The broker epoch: the metadata offset of this record.
        broker_epoch: i64,
        endpoints: Vec<Endpoint>,
        rack: Option<String>,
    },
    UnregisterBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    FenceBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    UnfenceBroker {
        broker_id: i32,
        broker_epoch: i64,
    },
    Topic {
        name: String,
        topic_id: String,
    },
    Partition {
        topic_id: String,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    },
    /// PartitionChangeRecord: a new ISR and/or leader. A leader change bumps the leader epoch;
    /// any change bumps the partition epoch.
    PartitionChange {
        topic_id: String,
        partition: i32,
        isr: Option<Vec<i32>>,
        leader: Option<i32>,
    },
    RemoveTopic {
        topic_id: String,
    },
    /// ConfigRecord: a topic or broker config set (`value` Some) or removed (None).
    Config {
        resource: String,
        name: String,
        key: String,
        value: Option<String>,
    },
    /// ProducerIdsRecord: the next block of producer ids starts here.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// UserScramCredentialRecord (KIP-554): a user's SCRAM credential for one mechanism
    /// (Kafka's ids: 1 SCRAM-SHA-256, 2 SCRAM-SHA-512), never the password.
    UserScramCredential {
        name: String,
        mechanism: i8,
        salt: Vec<u8>,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// RemoveUserScramCredentialRecord.
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
    /// AccessControlEntryRecord: one ACL (Kafka's enum ids for resource type, pattern type,
    /// operation and permission), identified by `id`.
    AccessControlEntry {
        id: String,
        resource_type: i8,
        resource_name: String,
        pattern_type: i8,
        principal: String,
        host: String,
        operation: i8,
        permission_type: i8,
    },
    /// RemoveAccessControlEntryRecord.
    RemoveAccessControlEntry {
        id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a metadata record: {0}")]
pub struct RecordError(String);

impl MetadataRecord {
    /// Kafka's own bytes for this record: `ApiMessageAndVersion` as the metadata log and
    /// snapshots hold it (frame version 1, the record's api key and version as unsigned
    /// varints, then the record's flexible-version body). Fails only on an id that is not a
    /// UUID or a config resource Kafka has no type for, which the controller never makes.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        kafka_binary::encode(self)
    }

    /// Kafka's bytes, or (first byte `{`) the JSON form metadata logs of earlier ketch
    /// versions hold.
    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordError> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes).map_err(|e| RecordError(e.to_string()));
        }
        kafka_binary::decode(bytes)
    }

    /// This record as one metadata log entry: `continued` when more records of the same
    /// operation follow it (see [`OperationBuffer`]), marked by a leading [`CONTINUED`] byte.
    pub fn encode_entry(&self, continued: bool) -> Result<Vec<u8>, RecordError> {
        let bytes = self.encode()?;
        if !continued {
            return Ok(bytes);
        }
        let mut entry = Vec::with_capacity(bytes.len() + 1);
        entry.push(CONTINUED);
        entry.extend_from_slice(&bytes);
        Ok(entry)
    }

    /// A metadata log entry: its record, and whether more of its operation follow.
    pub fn decode_entry(bytes: &[u8]) -> Result<(MetadataRecord, bool), RecordError> {
        match bytes.split_first() {
            Some((&CONTINUED, rest)) => Ok((MetadataRecord::decode(rest)?, true)),
            _ => Ok((MetadataRecord::decode(bytes)?, false)),
        }
    }
}

/// The first byte of a metadata log entry whose operation goes on in the next entry. Kafka's
/// frames start with frame version 1 and the JSON form of old logs with `{`: 0 is neither.
pub const CONTINUED: u8 = 0;

/// Makes an operation's records (a topic and its partitions, a broker's fencing and the
/// leaderships it moves) take effect together, as Kafka's atomic record batches do. Each record
/// is its own Raft entry, so a controller that fails over between them left a prefix in the log
/// that the next leader committed: a topic with none or some of its partitions, never led, that
/// a retried CreateTopics called existing (cluster simulation, seeds 4744 and 12 more in 10 000).
/// Entries marked continued are held here until the operation's last entry arrives; a leader
/// change before that (the next leader's LeaderChange entry) means the operation was cut short
/// and never will complete, and what was held is dropped.
#[derive(Debug, Clone, Default)]
pub struct OperationBuffer {
    held: Vec<(i64, MetadataRecord)>,
}

impl OperationBuffer {
    /// The entry at `offset`: the records now ready to apply, in order (none while its
    /// operation goes on).
    pub fn push(
        &mut self,
        offset: i64,
        entry: &[u8],
    ) -> Result<Vec<(i64, MetadataRecord)>, RecordError> {
        let (record, continued) = MetadataRecord::decode_entry(entry)?;
        self.held.push((offset, record));
        if continued {
            return Ok(Vec::new());
        }
        Ok(std::mem::take(&mut self.held))
    }

    /// A leader change: an operation still open was cut short. Returns how many records of
    /// it are dropped.
    pub fn leader_change(&mut self) -> usize {
        std::mem::take(&mut self.held).len()
    }

    /// Whether an operation is open (a snapshot must not be taken in the middle of one).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// Kafka's metadata record schemas (`metadata/src/main/resources/common/metadata/*.json`),
/// written by hand for the records ketch makes: each is flexible from version 0, so strings and
/// arrays are compact (length + 1 as an unsigned varint) and every struct ends with its tagged
/// fields.
mod kafka_binary {
    use super::{Endpoint, MetadataRecord, RecordError};
    use crate::model::Uuid;

    const FRAME_VERSION: u64 = 1;
    const REGISTER_BROKER: u64 = 0;
    const UNREGISTER_BROKER: u64 = 1;
    const TOPIC: u64 = 2;
    const PARTITION: u64 = 3;
    const CONFIG: u64 = 4;
    const PARTITION_CHANGE: u64 = 5;
    const FENCE_BROKER: u64 = 7;
    const UNFENCE_BROKER: u64 = 8;
    const REMOVE_TOPIC: u64 = 9;
    const USER_SCRAM_CREDENTIAL: u64 = 11;
    const PRODUCER_IDS: u64 = 15;
    const ACCESS_CONTROL_ENTRY: u64 = 18;
    const REMOVE_ACCESS_CONTROL_ENTRY: u64 = 19;
    const REMOVE_USER_SCRAM_CREDENTIAL: u64 = 22;
    /// RegisterBrokerRecord is written at version 1 (InControlledShutdown); the others at 0.
    const REGISTER_BROKER_VERSION: u64 = 1;
    /// ConfigResource.Type.
    const RESOURCE_TOPIC: i8 = 2;
    const RESOURCE_BROKER: i8 = 4;
    /// PartitionChangeRecord's Leader when it did not change.
    const LEADER_UNCHANGED: i32 = -2;

    fn error(what: impl Into<String>) -> RecordError {
        RecordError(what.into())
    }

    fn topic_uuid(id: &str) -> Result<[u8; 16], RecordError> {
        Uuid::parse(id)
            .map(|u| u.0)
            .map_err(|e| error(e.to_string()))
    }

    /// The hyphenated lower-case form only, so that decoding gives back the same string.
    fn incarnation_uuid(id: &str) -> Result<[u8; 16], RecordError> {
        match uuid::Uuid::parse_str(id) {
            Ok(u) if u.to_string() == id => Ok(*u.as_bytes()),
            _ => Err(error(format!(
                "incarnation id '{id}' is not a hyphenated lower-case UUID"
            ))),
        }
    }

    fn security_protocol(listener: &str) -> i16 {
        match listener {
            "SSL" => 1,
            "SASL_PLAINTEXT" => 2,
            "SASL_SSL" => 3,
            _ => 0, // PLAINTEXT, and listener names that map to it
        }
    }

    #[derive(Default)]
    struct Writer(Vec<u8>);

    impl Writer {
        fn uvarint(&mut self, mut v: u64) {
            while v >= 0x80 {
                self.0.push((v as u8) | 0x80);
                v >>= 7;
            }
            self.0.push(v as u8);
        }
        fn bytes(&mut self, b: &[u8]) {
            self.0.extend_from_slice(b);
        }
        fn i8(&mut self, v: i8) {
            self.bytes(&v.to_be_bytes());
        }
        fn i16(&mut self, v: i16) {
            self.bytes(&v.to_be_bytes());
        }
        fn u16(&mut self, v: u16) {
            self.bytes(&v.to_be_bytes());
        }
        fn i32(&mut self, v: i32) {
            self.bytes(&v.to_be_bytes());
        }
        fn i64(&mut self, v: i64) {
            self.bytes(&v.to_be_bytes());
        }
        fn bool(&mut self, v: bool) {
            self.0.push(u8::from(v));
        }
        fn string(&mut self, s: &str) {
            self.uvarint(s.len() as u64 + 1);
            self.bytes(s.as_bytes());
        }
        fn nullable_string(&mut self, s: Option<&str>) {
            match s {
                Some(s) => self.string(s),
                None => self.uvarint(0),
            }
        }
        fn compact_bytes(&mut self, b: &[u8]) {
            self.uvarint(b.len() as u64 + 1);
            self.bytes(b);
        }
        fn i32_array(&mut self, v: &[i32]) {
            self.uvarint(v.len() as u64 + 1);
            for x in v {
                self.i32(*x);
            }
        }
        fn no_tagged_fields(&mut self) {
            self.uvarint(0);
        }
    }

    pub fn encode(record: &MetadataRecord) -> Result<Vec<u8>, RecordError> {
        let mut w = Writer::default();
        w.uvarint(FRAME_VERSION);
        match record {
            MetadataRecord::RegisterBroker {
                broker_id,
                incarnation_id,
                broker_epoch,
                endpoints,
                rack,
            } => {
                w.uvarint(REGISTER_BROKER);
                w.uvarint(REGISTER_BROKER_VERSION);
                w.i32(*broker_id);
                w.bytes(&incarnation_uuid(incarnation_id)?);
                w.i64(*broker_epoch);
                w.uvarint(endpoints.len() as u64 + 1);
                for e in endpoints {
                    w.string(&e.name);
                    w.string(&e.host);
                    w.u16(e.port);
                    w.i16(security_protocol(&e.name));
                    w.no_tagged_fields();
                }
                w.uvarint(1); // Features: none
                w.nullable_string(rack.as_deref());
                w.bool(true); // Fenced: a registration starts fenced
                w.bool(false); // InControlledShutdown
                w.no_tagged_fields();
            }
            MetadataRecord::UnregisterBroker {
                broker_id,
                broker_epoch,
            } => {
                w.uvarint(UNREGISTER_BROKER);
                w.uvarint(0);
                w.i32(*broker_id);
                w.i64(*broker_epoch);
                w.no_tagged_fields();
            }
            MetadataRecord::FenceBroker {
                broker_id,
                broker_epoch,
            }
            | MetadataRecord::UnfenceBroker {
                broker_id,
                broker_epoch,
            } => {
                let fence = matches!(record, MetadataRecord::FenceBroker { .. });
                w.uvarint(if fence { FENCE_BROKER } else { UNFENCE_BROKER });
                w.uvarint(0);
                w.i32(*broker_id);
                w.i64(*broker_epoch);
                w.no_tagged_fields();
            }
            MetadataRecord::Topic { name, topic_id } => {
                w.uvarint(TOPIC);
                w.uvarint(0);
                w.string(name);
                w.bytes(&topic_uuid(topic_id)?);
                w.no_tagged_fields();
            }
            MetadataRecord::Partition {
                topic_id,
                partition,
                replicas,
                isr,
                leader,
                leader_epoch,
                partition_epoch,
            } => {
                w.uvarint(PARTITION);
                w.uvarint(0);
                w.i32(*partition);
                w.bytes(&topic_uuid(topic_id)?);
                w.i32_array(replicas);
                w.i32_array(isr);
                w.i32_array(&[]); // RemovingReplicas
                w.i32_array(&[]); // AddingReplicas
                w.i32(*leader);
                w.i32(*leader_epoch);
                w.i32(*partition_epoch);
                w.no_tagged_fields(); // LeaderRecoveryState (tag 0) at its default, 0
            }
            MetadataRecord::PartitionChange {
                topic_id,
                partition,
                isr,
                leader,
            } => {
                w.uvarint(PARTITION_CHANGE);
                w.uvarint(0);
                w.i32(*partition);
                w.bytes(&topic_uuid(topic_id)?);
                // Isr (tag 0) and Leader (tag 1) are tagged, written only when they changed.
                let count = u64::from(isr.is_some()) + u64::from(leader.is_some());
                w.uvarint(count);
                if let Some(isr) = isr {
                    let mut field = Writer::default();
                    field.i32_array(isr);
                    w.uvarint(0);
                    w.uvarint(field.0.len() as u64);
                    w.bytes(&field.0);
                }
                if let Some(leader) = leader {
                    if *leader < -1 {
                        // -2 is Kafka's "unchanged", and no other negative id is a leader.
                        return Err(error(format!("leader {leader} is not a broker id or -1")));
                    }
                    w.uvarint(1);
                    w.uvarint(4);
                    w.i32(*leader);
                }
            }
            MetadataRecord::RemoveTopic { topic_id } => {
                w.uvarint(REMOVE_TOPIC);
                w.uvarint(0);
                w.bytes(&topic_uuid(topic_id)?);
                w.no_tagged_fields();
            }
            MetadataRecord::Config {
                resource,
                name,
                key,
                value,
            } => {
                let resource_type = match resource.as_str() {
                    "topic" => RESOURCE_TOPIC,
                    "broker" => RESOURCE_BROKER,
                    other => return Err(error(format!("no Kafka resource type for '{other}'"))),
                };
                w.uvarint(CONFIG);
                w.uvarint(0);
                w.i8(resource_type);
                w.string(name);
                w.string(key);
                w.nullable_string(value.as_deref());
                w.no_tagged_fields();
            }
            MetadataRecord::ProducerIds {
                broker_id,
                next_producer_id,
            } => {
                w.uvarint(PRODUCER_IDS);
                w.uvarint(0);
                w.i32(*broker_id);
                w.i64(-1); // BrokerEpoch: not kept
                w.i64(*next_producer_id);
                w.no_tagged_fields();
            }
            MetadataRecord::UserScramCredential {
                name,
                mechanism,
                salt,
                stored_key,
                server_key,
                iterations,
            } => {
                w.uvarint(USER_SCRAM_CREDENTIAL);
                w.uvarint(0);
                w.string(name);
                w.i8(*mechanism);
                w.compact_bytes(salt);
                w.compact_bytes(stored_key);
                w.compact_bytes(server_key);
                w.i32(*iterations);
                w.no_tagged_fields();
            }
            MetadataRecord::RemoveUserScramCredential { name, mechanism } => {
                w.uvarint(REMOVE_USER_SCRAM_CREDENTIAL);
                w.uvarint(0);
                w.string(name);
                w.i8(*mechanism);
                w.no_tagged_fields();
            }
            MetadataRecord::AccessControlEntry {
                id,
                resource_type,
                resource_name,
                pattern_type,
                principal,
                host,
                operation,
                permission_type,
            } => {
                w.uvarint(ACCESS_CONTROL_ENTRY);
                w.uvarint(0);
                w.bytes(&topic_uuid(id)?);
                w.i8(*resource_type);
                w.string(resource_name);
                w.i8(*pattern_type);
                w.string(principal);
                w.string(host);
                w.i8(*operation);
                w.i8(*permission_type);
                w.no_tagged_fields();
            }
            MetadataRecord::RemoveAccessControlEntry { id } => {
                w.uvarint(REMOVE_ACCESS_CONTROL_ENTRY);
                w.uvarint(0);
                w.bytes(&topic_uuid(id)?);
                w.no_tagged_fields();
            }
        }
        Ok(w.0)
    }

    struct Reader<'a>(&'a [u8]);

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
            if n > self.0.len() {
                return Err(error(format!(
                    "truncated: {n} bytes wanted, {} left",
                    self.0.len()
                )));
            }
            let (head, tail) = self.0.split_at(n);
            self.0 = tail;
            Ok(head)
        }
        /// Kafka's unsigned varints hold 32 bits: at most 5 bytes.
        fn uvarint(&mut self) -> Result<u64, RecordError> {
            let mut v: u64 = 0;
            for i in 0..5 {
                let b = self.take(1)?[0];
                v |= u64::from(b & 0x7f) << (7 * i);
                if b & 0x80 == 0 {
                    return if v <= u64::from(u32::MAX) {
                        Ok(v)
                    } else {
                        Err(error("varint over 32 bits"))
                    };
                }
            }
            Err(error("varint longer than 5 bytes"))
        }
        fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
            let mut out = [0u8; N];
            out.copy_from_slice(self.take(N)?);
            Ok(out)
        }
        fn i8(&mut self) -> Result<i8, RecordError> {
            Ok(i8::from_be_bytes(self.array()?))
        }
        fn i16(&mut self) -> Result<i16, RecordError> {
            Ok(i16::from_be_bytes(self.array()?))
        }
        fn u16(&mut self) -> Result<u16, RecordError> {
            Ok(u16::from_be_bytes(self.array()?))
        }
        fn i32(&mut self) -> Result<i32, RecordError> {
            Ok(i32::from_be_bytes(self.array()?))
        }
        fn i64(&mut self) -> Result<i64, RecordError> {
            Ok(i64::from_be_bytes(self.array()?))
        }
        fn bool(&mut self) -> Result<bool, RecordError> {
            match self.take(1)?[0] {
                0 => Ok(false),
                1 => Ok(true),
                b => Err(error(format!("bool byte {b}"))),
            }
        }
        fn nullable_string(&mut self) -> Result<Option<String>, RecordError> {
            let len = self.uvarint()?;
            if len == 0 {
                return Ok(None);
            }
            let bytes = self.take((len - 1) as usize)?;
            String::from_utf8(bytes.to_vec())
                .map(Some)
                .map_err(|_| error("string not UTF-8"))
        }
        fn string(&mut self) -> Result<String, RecordError> {
            self.nullable_string()?
                .ok_or_else(|| error("null where a string is required"))
        }
        fn compact_bytes(&mut self) -> Result<Vec<u8>, RecordError> {
            let len = self.uvarint()?;
            if len == 0 {
                return Err(error("null where bytes are required"));
            }
            Ok(self.take((len - 1) as usize)?.to_vec())
        }
        /// The element count of a compact array, checked against the bytes left (each element
        /// takes at least `min_element_bytes`): a lying count is an error, not an allocation.
        fn array_len(&mut self, min_element_bytes: usize) -> Result<Option<usize>, RecordError> {
            let len = self.uvarint()?;
            if len == 0 {
                return Ok(None);
            }
            let count = (len - 1) as usize;
            if count.saturating_mul(min_element_bytes.max(1)) > self.0.len() {
                return Err(error(format!("array of {count} claims more than is left")));
            }
            Ok(Some(count))
        }
        fn i32_array(&mut self) -> Result<Option<Vec<i32>>, RecordError> {
            let Some(count) = self.array_len(4)? else {
                return Ok(None);
            };
            (0..count)
                .map(|_| self.i32())
                .collect::<Result<_, _>>()
                .map(Some)
        }
        fn required_i32_array(&mut self) -> Result<Vec<i32>, RecordError> {
            self.i32_array()?
                .ok_or_else(|| error("null where an array is required"))
        }
        fn topic_id(&mut self) -> Result<String, RecordError> {
            Ok(Uuid(self.array()?).to_string())
        }
        /// The tagged fields: each `(tag, bytes)` to `field`, which ignores tags it does not
        /// know (as Kafka does). Tags must increase.
        fn tagged_fields(
            &mut self,
            mut field: impl FnMut(u64, &'a [u8]) -> Result<(), RecordError>,
        ) -> Result<(), RecordError> {
            let count = self.uvarint()?;
            let mut last: Option<u64> = None;
            for _ in 0..count {
                let tag = self.uvarint()?;
                if last.is_some_and(|l| tag <= l) {
                    return Err(error(format!("tagged field {tag} out of order")));
                }
                last = Some(tag);
                let size = self.uvarint()? as usize;
                let data = self.take(size)?;
                field(tag, data)?;
            }
            Ok(())
        }
        fn no_more(&self) -> Result<(), RecordError> {
            if self.0.is_empty() {
                Ok(())
            } else {
                Err(error(format!("{} bytes after the record", self.0.len())))
            }
        }
    }

    fn ignore_tags(_: u64, _: &[u8]) -> Result<(), RecordError> {
        Ok(())
    }

    pub fn decode(bytes: &[u8]) -> Result<MetadataRecord, RecordError> {
        let mut r = Reader(bytes);
        let frame = r.uvarint()?;
        if frame != FRAME_VERSION {
            return Err(error(format!("frame version {frame}, only 1 is known")));
        }
        let api_key = r.uvarint()?;
        let version = r.uvarint()?;
        let unknown = || {
            error(format!(
                "record type {api_key} version {version} is unknown"
            ))
        };
        let record = match (api_key, version) {
            (REGISTER_BROKER, 0..=3) => {
                let broker_id = r.i32()?;
                if version >= 2 {
                    r.bool()?; // IsMigratingZkBroker
                }
                let incarnation_id = uuid::Uuid::from_bytes(r.array()?).to_string();
                let broker_epoch = r.i64()?;
                let count = r.array_len(8)?.unwrap_or(0);
                let mut endpoints = Vec::with_capacity(count);
                for _ in 0..count {
                    let name = r.string()?;
                    let host = r.string()?;
                    let port = r.u16()?;
                    r.i16()?; // SecurityProtocol
                    r.tagged_fields(ignore_tags)?;
                    endpoints.push(Endpoint { name, host, port });
                }
                let features = r.array_len(6)?.unwrap_or(0);
                for _ in 0..features {
                    r.string()?;
                    r.i16()?;
                    r.i16()?;
                    r.tagged_fields(ignore_tags)?;
                }
                let rack = r.nullable_string()?;
                r.bool()?; // Fenced: a registration applies as fenced regardless
                if version >= 1 {
                    r.bool()?; // InControlledShutdown
                }
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::RegisterBroker {
                    broker_id,
                    incarnation_id,
                    broker_epoch,
                    endpoints,
                    rack,
                }
            }
            (UNREGISTER_BROKER | FENCE_BROKER | UNFENCE_BROKER, 0) => {
                let broker_id = r.i32()?;
                let broker_epoch = r.i64()?;
                r.tagged_fields(ignore_tags)?;
                match api_key {
                    UNREGISTER_BROKER => MetadataRecord::UnregisterBroker {
                        broker_id,
                        broker_epoch,
                    },
                    FENCE_BROKER => MetadataRecord::FenceBroker {
                        broker_id,
                        broker_epoch,
                    },
                    _ => MetadataRecord::UnfenceBroker {
                        broker_id,
                        broker_epoch,
                    },
                }
            }
            (TOPIC, 0) => {
                let name = r.string()?;
                let topic_id = r.topic_id()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::Topic { name, topic_id }
            }
            (PARTITION, 0) => {
                let partition = r.i32()?;
                let topic_id = r.topic_id()?;
                let replicas = r.required_i32_array()?;
                let isr = r.required_i32_array()?;
                let removing = r.required_i32_array()?;
                let adding = r.required_i32_array()?;
                if !removing.is_empty() || !adding.is_empty() {
                    return Err(error("partition reassignment is not supported"));
                }
                let leader = r.i32()?;
                let leader_epoch = r.i32()?;
                let partition_epoch = r.i32()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::Partition {
                    topic_id,
                    partition,
                    replicas,
                    isr,
                    leader,
                    leader_epoch,
                    partition_epoch,
                }
            }
            (PARTITION_CHANGE, 0) => {
                let partition = r.i32()?;
                let topic_id = r.topic_id()?;
                let mut isr = None;
                let mut leader = None;
                r.tagged_fields(|tag, data| {
                    let mut field = Reader(data);
                    match tag {
                        0 => isr = field.i32_array()?,
                        1 => leader = Some(field.i32()?).filter(|l| *l != LEADER_UNCHANGED),
                        // Replicas, RemovingReplicas, AddingReplicas: reassignment.
                        2..=4 => return Err(error("partition reassignment is not supported")),
                        _ => return Ok(()),
                    }
                    field.no_more()
                })?;
                MetadataRecord::PartitionChange {
                    topic_id,
                    partition,
                    isr,
                    leader,
                }
            }
            (REMOVE_TOPIC, 0) => {
                let topic_id = r.topic_id()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::RemoveTopic { topic_id }
            }
            (CONFIG, 0) => {
                let resource = match r.i8()? {
                    RESOURCE_TOPIC => "topic",
                    RESOURCE_BROKER => "broker",
                    other => return Err(error(format!("config resource type {other}"))),
                };
                let name = r.string()?;
                let key = r.string()?;
                let value = r.nullable_string()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::Config {
                    resource: resource.to_string(),
                    name,
                    key,
                    value,
                }
            }
            (PRODUCER_IDS, 0) => {
                let broker_id = r.i32()?;
                r.i64()?; // BrokerEpoch
                let next_producer_id = r.i64()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::ProducerIds {
                    broker_id,
                    next_producer_id,
                }
            }
            (USER_SCRAM_CREDENTIAL, 0) => {
                let name = r.string()?;
                let mechanism = r.i8()?;
                let salt = r.compact_bytes()?;
                let stored_key = r.compact_bytes()?;
                let server_key = r.compact_bytes()?;
                let iterations = r.i32()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::UserScramCredential {
                    name,
                    mechanism,
                    salt,
                    stored_key,
                    server_key,
                    iterations,
                }
            }
            (REMOVE_USER_SCRAM_CREDENTIAL, 0) => {
                let name = r.string()?;
                let mechanism = r.i8()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::RemoveUserScramCredential { name, mechanism }
            }
            (ACCESS_CONTROL_ENTRY, 0) => {
                let id = r.topic_id()?;
                let resource_type = r.i8()?;
                let resource_name = r.string()?;
                let pattern_type = r.i8()?;
                let principal = r.string()?;
                let host = r.string()?;
                let operation = r.i8()?;
                let permission_type = r.i8()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::AccessControlEntry {
                    id,
                    resource_type,
                    resource_name,
                    pattern_type,
                    principal,
                    host,
                    operation,
                    permission_type,
                }
            }
            (REMOVE_ACCESS_CONTROL_ENTRY, 0) => {
                let id = r.topic_id()?;
                r.tagged_fields(ignore_tags)?;
                MetadataRecord::RemoveAccessControlEntry { id }
            }
            _ => return Err(unknown()),
        };
        r.no_more()?;
        Ok(record)
    }
}

/// A fresh topic id from 16 random bytes (the caller's seeded RNG).
pub fn topic_id(random: [u8; 16]) -> String {
    Uuid::from_random(random).to_string()
}
