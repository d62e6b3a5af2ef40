//! The records of `__consumer_offsets`, in Kafka's own binary schemas (so Kafka's tools and
//! formatters read them): offset commits (key version 1: group, topic, partition; value
//! version 3: offset, leader epoch, metadata, commit timestamp) and group metadata (key
//! version 2: group; value version 3: protocol type, generation, protocol, leader, state
//! timestamp, members). A `None` value is a tombstone. Decoding checks every length against
//! what is left and never panics.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Metadata {
        group: String,
    },
}

impl GroupKey {
    pub fn group(&self) -> &str {
        match self {
            GroupKey::Offset { group, .. } | GroupKey::Metadata { group } => group,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed __consumer_offsets record: {0}")]
pub struct GroupRecordError(pub(crate) String);

pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    out.extend_from_slice(&(len as i16).to_be_bytes());
    out.extend_from_slice(&bytes[..len]);
}

fn put_nullable_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(out, s),
        None => out.extend_from_slice(&(-1i16).to_be_bytes()),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], GroupRecordError> {
        if self.0.len() < n {
            return Err(GroupRecordError("truncated".into()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    pub(crate) fn i16(&mut self) -> Result<i16, GroupRecordError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn i32(&mut self) -> Result<i32, GroupRecordError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, GroupRecordError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn nullable_str(&mut self) -> Result<Option<String>, GroupRecordError> {
        let len = self.i16()?;
        if len < 0 {
            return Ok(None);
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec())
            .map(Some)
            .map_err(|_| GroupRecordError("string is not UTF-8".into()))
    }
    pub(crate) fn str(&mut self) -> Result<String, GroupRecordError> {
        self.nullable_str()?
            .ok_or_else(|| GroupRecordError("null string".into()))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, GroupRecordError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(Vec::new());
        }
        Ok(self.take(len as usize)?.to_vec())
    }
}

impl GroupKey {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            GroupKey::Offset {
                group,
                topic,
                partition,
            } => {
                out.extend_from_slice(&1i16.to_be_bytes());
                put_str(&mut out, group);
                put_str(&mut out, topic);
                out.extend_from_slice(&partition.to_be_bytes());
            }
            GroupKey::Metadata { group } => {
                out.extend_from_slice(&2i16.to_be_bytes());
                put_str(&mut out, group);
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<GroupKey, GroupRecordError> {
        let mut r = Reader(bytes);
        match r.i16()? {
            0 | 1 => Ok(GroupKey::Offset {
                group: r.str()?,
                topic: r.str()?,
                partition: r.i32()?,
            }),
            2 => Ok(GroupKey::Metadata { group: r.str()? }),
            v => Err(GroupRecordError(format!("unknown key version {v}"))),
        }
    }
}

impl OffsetValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&3i16.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.leader_epoch.to_be_bytes());
        put_str(&mut out, &self.metadata);
        out.extend_from_slice(&self.commit_timestamp_ms.to_be_bytes());
        out
    }

    /// Versions 0 to 3 (1 adds an expire timestamp, 3 the leader epoch and drops it).
    pub fn decode(bytes: &[u8]) -> Result<OffsetValue, GroupRecordError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        let offset = r.i64()?;
        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
        let metadata = r.str()?;
        let commit_timestamp_ms = r.i64()?;
        if !(0..=3).contains(&version) {
            return Err(GroupRecordError(format!(
                "unknown offset value version {version}"
            )));
        }
        Ok(OffsetValue {
            offset,
            leader_epoch,
            metadata,
            commit_timestamp_ms,
        })
    }
}

impl GroupValue {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&3i16.to_be_bytes());
        put_str(&mut out, &self.protocol_type);
        out.extend_from_slice(&self.generation.to_be_bytes());
        put_nullable_str(&mut out, self.protocol.as_deref());
        put_nullable_str(&mut out, self.leader.as_deref());
        out.extend_from_slice(&self.state_timestamp_ms.to_be_bytes());
        out.extend_from_slice(&(self.members.len() as i32).to_be_bytes());
        for m in &self.members {
            put_str(&mut out, &m.member_id);
            put_nullable_str(&mut out, m.group_instance_id.as_deref());
            put_str(&mut out, &m.client_id);
            put_str(&mut out, &m.client_host);
            out.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
            out.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
            put_bytes(&mut out, &m.subscription);
            put_bytes(&mut out, &m.assignment);
        }
        out
    }

    /// Version 3 (what ketch writes).
    pub fn decode(bytes: &[u8]) -> Result<GroupValue, GroupRecordError> {
        let mut r = Reader(bytes);
        let version = r.i16()?;
        if version != 3 {
            return Err(GroupRecordError(format!(
                "group metadata value version {version} is not read"
            )));
        }
        let protocol_type = r.str()?;
        let generation = r.i32()?;
        let protocol = r.nullable_str()?;
        let leader = r.nullable_str()?;
        let state_timestamp_ms = r.i64()?;
        let count = r.i32()?;
        let mut members = Vec::new();
        for _ in 0..count.max(0) {
            members.push(MemberValue {
                member_id: r.str()?,
                group_instance_id: r.nullable_str()?,
                client_id: r.str()?,
                client_host: r.str()?,
                rebalance_timeout_ms: r.i32()?,
                session_timeout_ms: r.i32()?,
                subscription: r.bytes()?,
                assignment: r.bytes()?,
            });
        }
        Ok(GroupValue {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp_ms,
            members,
        })
    }
}

/// Java's `String.hashCode` of `s` (over UTF-16 code units, wrapping): Kafka places a group on
/// `__consumer_offsets` partition `abs(hash) % partitions` with it, and so must we for tools
/// that compute the coordinator themselves.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group`.
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    (java_string_hash(group) & 0x7fff_ffff) % partitions.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn partition_matches_kafka() {
        // "hello".hashCode() in Java is 99162322.
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(partition_for("hello", 50), 99_162_322 % 50);
        // Negative hashes are masked, as Kafka's Utils.abs does.
        let h = java_string_hash("console-consumer-12345");
        assert_eq!(
            partition_for("console-consumer-12345", 50),
            (h & 0x7fff_ffff) % 50
        );
    }

    proptest! {
        #[test]
        fn records_round_trip(group in ".{0,20}", topic in ".{1,20}", partition in any::<i32>(),
                              offset in any::<i64>(), epoch in any::<i32>(), meta in ".{0,20}",
                              ts in any::<i64>(), generation in any::<i32>()) {
            let key = GroupKey::Offset { group: group.clone(), topic, partition };
            prop_assert_eq!(GroupKey::decode(&key.encode()), Ok(key));
            let value = OffsetValue { offset, leader_epoch: epoch, metadata: meta.clone(), commit_timestamp_ms: ts };
            prop_assert_eq!(OffsetValue::decode(&value.encode()), Ok(value));
            let g = GroupValue {
                protocol_type: "consumer".into(), generation, protocol: Some("range".into()),
                leader: None, state_timestamp_ms: ts,
                members: vec![MemberValue { member_id: meta, group_instance_id: None,
                    client_id: "c".into(), client_host: "/h".into(), rebalance_timeout_ms: 1,
                    session_timeout_ms: 2, subscription: vec![1, 2], assignment: vec![] }],
            };
            prop_assert_eq!(GroupValue::decode(&g.encode()), Ok(g));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = GroupKey::decode(&bytes);
            let _ = OffsetValue::decode(&bytes);
            let _ = GroupValue::decode(&bytes);
        }
    }
}
