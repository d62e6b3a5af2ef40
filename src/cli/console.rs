//! `ketch console-producer` and `ketch console-consumer`, as Kafka's quickstart scripts:
//! lines from stdin become records (optionally `key<sep>value`), partitioned as Kafka's default
//! partitioner does (murmur2 of the key; keyless records spread round-robin per batch); the
//! consumer prints values from every partition, from the beginning or the end, and with
//! `--group` starts at the group's committed offsets and commits as it goes (as a standalone
//! consumer: no group membership, generation -1). The consumer decodes uncompressed batches
//! only; compressed ones are reported and skipped (the tools carry no codecs).

use crate::client::{broker_addr, error_name, Client};
use crate::protocol::record_batch::{encode_batch, records, RecordBatch, RecordRef};
use crate::runtime::{self, Clock};
use bytes::Bytes;
use kafka_protocol::messages::{
    fetch_request, list_offsets_request, offset_commit_request, offset_fetch_request,
    produce_request, ApiKey, BrokerId, FetchRequest, FindCoordinatorRequest, GroupId,
    ListOffsetsRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

/// Kafka's `Utils.murmur2`, which its default partitioner applies to keys.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

struct Layout {
    /// partition → leader address
    leaders: BTreeMap<i32, String>,
}

async fn layout(client: &mut Client, topic: &str, create: bool) -> Result<Layout, String> {
    for _ in 0..50 {
        let m = client
            .metadata_creating(Some(&[topic.to_string()]), create)
            .await?;
        let Some(t) = m.topics.first() else {
            return Err("empty Metadata response".into());
        };
        if t.error_code == 3 {
            return Err(format!("topic '{topic}' does not exist"));
        }
        // Not retriable: an illegal name, a refused auto-creation.
        if t.error_code == 17 {
            return Err(format!(
                "topic '{topic}': INVALID_TOPIC_EXCEPTION (a topic name is 1 to 249 characters \
                 of [a-zA-Z0-9._-], and not '.' or '..')"
            ));
        }
        if matches!(t.error_code, 29 | 37 | 38 | 40 | 42) {
            return Err(format!(
                "topic '{topic}': {}",
                crate::client::error_name(t.error_code)
            ));
        }
        let leaders: BTreeMap<i32, String> = t
            .partitions
            .iter()
            .filter_map(|p| Some((p.partition_index, broker_addr(&m, p.leader_id.0)?)))
            .collect();
        if t.error_code == 0 && !leaders.is_empty() && leaders.len() == t.partitions.len() {
            return Ok(Layout { leaders });
        }
        runtime::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("topic '{topic}' has partitions without a leader"))
}

type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

pub struct ProducerOptions {
    pub bootstrap: String,
    pub topic: String,
    pub key_separator: Option<String>,
    /// A key or value equal to this is sent as null.
    pub null_marker: Option<String>,
    pub acks: i16,
    pub client_id: String,
    /// Keyless records stick to one partition until this many bytes went to it (Kafka's
    /// built-in sticky partitioner, KIP-794, switches partitions per batch.size).
    pub batch_bytes: usize,
}

pub fn produce(o: ProducerOptions) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(&o.bootstrap, &o.client_id);
        let layout = layout(&mut client, &o.topic, true).await?;
        let partitions: Vec<i32> = layout.leaders.keys().copied().collect();
        // The sticky partition for keyless records and the bytes it has taken.
        let mut sticky = 0usize;
        let mut sticky_bytes = 0usize;
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut sent = 0usize;
        loop {
            // Up to 500 lines per request.
            let mut by_partition: BTreeMap<i32, Vec<KeyValue>> = BTreeMap::new();
            let mut n = 0;
            for line in lines.by_ref() {
                let line = line.map_err(|e| e.to_string())?;
                let (key, value) = match &o.key_separator {
                    Some(sep) => match line.split_once(sep.as_str()) {
                        Some((k, v)) => (Some(k.as_bytes().to_vec()), v.as_bytes().to_vec()),
                        None => (None, line.into_bytes()),
                    },
                    None => (None, line.into_bytes()),
                };
                let is_null =
                    |b: &[u8]| o.null_marker.as_deref().is_some_and(|m| m.as_bytes() == b);
                let key = key.filter(|k| !is_null(k));
                let value = (!is_null(&value)).then_some(value);
                let partition = match &key {
                    Some(k) => {
                        let i = (murmur2(k) & 0x7fff_ffff) as usize % partitions.len().max(1);
                        partitions[i]
                    }
                    None => {
                        if sticky_bytes >= o.batch_bytes {
                            sticky += 1;
                            sticky_bytes = 0;
                        }
                        sticky_bytes += value.as_ref().map_or(0, Vec::len);
                        partitions[sticky % partitions.len().max(1)]
                    }
                };
                by_partition
                    .entry(partition)
                    .or_default()
                    .push((key, value));
                n += 1;
                if n >= 500 {
                    break;
                }
            }
            if n == 0 {
                break;
            }
            let now = Clock::system().wall_ms();
            for (partition, recs) in by_partition {
                let refs: Vec<RecordRef<'_>> = recs
                    .iter()
                    .map(|(k, v)| (k.as_deref(), v.as_deref()))
                    .collect();
                let batch = encode_batch(0, now, &refs);
                let body = RequestKind::Produce(
                    ProduceRequest::default()
                        .with_acks(o.acks)
                        .with_timeout_ms(30_000)
                        .with_topic_data(vec![produce_request::TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(o.topic.clone())))
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(partition)
                                    .with_records(Some(Bytes::from(batch))),
                            ])]),
                );
                let addr = layout.leaders.get(&partition).cloned().ok_or("no leader")?;
                if o.acks == 0 {
                    // No answer comes: write the request and move on.
                    let _ = tokio::time::timeout(
                        Duration::from_millis(200),
                        client.send(&addr, ApiKey::Produce, 9, &body),
                    )
                    .await;
                    continue;
                }
                let ResponseKind::Produce(r) =
                    client.send(&addr, ApiKey::Produce, 9, &body).await?
                else {
                    return Err("not a Produce response".into());
                };
                for t in &r.responses {
                    for p in &t.partition_responses {
                        if p.error_code != 0 {
                            return Err(format!(
                                "producing to {}-{} failed: {} ({}){}",
                                o.topic,
                                p.index,
                                error_name(p.error_code),
                                p.error_code,
                                p.error_message
                                    .as_ref()
                                    .map(|m| format!(": {m}"))
                                    .unwrap_or_default()
                            ));
                        }
                    }
                }
                sent += recs.len();
            }
        }
        eprintln!("{sent} records sent");
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

/// Where a consumer without a committed offset starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Earliest,
    Latest,
    Offset(i64),
}

/// `auto.offset.reset`: where a position outside the log goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    Earliest,
    Latest,
    None,
}

/// Kafka's DefaultMessageFormatter: `CreateTime:ts`, `Partition:p`, `Offset:o`, key, value,
/// each printed one separated by `key.separator`, the record ended by `line.separator`.
pub struct Format {
    pub key: bool,
    pub value: bool,
    pub partition: bool,
    pub offset: bool,
    pub timestamp: bool,
    pub key_separator: String,
    pub line_separator: String,
    pub null_literal: String,
}

pub struct ConsumerOptions {
    pub bootstrap: String,
    pub topic: String,
    pub start: StartAt,
    pub reset: Reset,
    /// Only this partition.
    pub partition: Option<i32>,
    pub group: Option<String>,
    pub max_messages: Option<usize>,
    pub timeout_ms: Option<u64>,
    pub client_id: String,
    pub format: Format,
}

async fn coordinator(client: &mut Client, group: &str) -> Result<String, String> {
    for _ in 0..50 {
        let body = RequestKind::FindCoordinator(
            FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string())),
        );
        if let ResponseKind::FindCoordinator(r) =
            client.send_any(ApiKey::FindCoordinator, 3, &body).await?
        {
            if r.error_code == 0 {
                return Ok(format!("{}:{}", r.host, r.port));
            }
        }
        runtime::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no coordinator for group '{group}'"))
}

pub async fn committed_offsets(
    client: &mut Client,
    coordinator: &str,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, String> {
    let body = RequestKind::OffsetFetch(
        OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![
                offset_fetch_request::OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_indexes(partitions.to_vec()),
            ])),
    );
    let mut attempts = 0;
    let r = loop {
        let ResponseKind::OffsetFetch(r) = client
            .send(coordinator, ApiKey::OffsetFetch, 7, &body)
            .await?
        else {
            return Err("not an OffsetFetch response".into());
        };
        // COORDINATOR_LOAD_IN_PROGRESS and NOT_COORDINATOR pass: the group is being loaded.
        attempts += 1;
        if matches!(r.error_code, 14 | 16) && attempts < 50 {
            runtime::sleep(Duration::from_millis(100)).await;
            continue;
        }
        break r;
    };
    if r.error_code != 0 {
        return Err(format!(
            "OffsetFetch: {} ({})",
            error_name(r.error_code),
            r.error_code
        ));
    }
    Ok(r.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.committed_offset))
        .collect())
}

pub async fn commit_offsets(
    client: &mut Client,
    coordinator: &str,
    group: &str,
    topic: &str,
    offsets: &BTreeMap<i32, i64>,
) -> Result<(), String> {
    let body = RequestKind::OffsetCommit(
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(
                        offsets
                            .iter()
                            .map(|(p, o)| {
                                offset_commit_request::OffsetCommitRequestPartition::default()
                                    .with_partition_index(*p)
                                    .with_committed_offset(*o)
                                    .with_committed_metadata(Some(StrBytes::from_static_str("")))
                            })
                            .collect(),
                    ),
            ]),
    );
    let ResponseKind::OffsetCommit(r) = client
        .send(coordinator, ApiKey::OffsetCommit, 8, &body)
        .await?
    else {
        return Err("not an OffsetCommit response".into());
    };
    for t in &r.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                return Err(format!(
                    "committing {topic}-{}: {} ({})",
                    p.partition_index,
                    error_name(p.error_code),
                    p.error_code
                ));
            }
        }
    }
    Ok(())
}

/// Earliest (-2) or latest (-1) offsets of `partitions`, asking each leader.
pub async fn list_offsets(
    client: &mut Client,
    leaders: &BTreeMap<i32, String>,
    topic: &str,
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>, String> {
    let mut out = BTreeMap::new();
    for (p, addr) in leaders {
        let body = RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(*p)
                            .with_timestamp(timestamp),
                    ])]),
        );
        let ResponseKind::ListOffsets(r) = client.send(addr, ApiKey::ListOffsets, 7, &body).await?
        else {
            return Err("not a ListOffsets response".into());
        };
        for t in &r.topics {
            for x in &t.partitions {
                if x.error_code != 0 {
                    return Err(format!(
                        "ListOffsets {topic}-{p}: {}",
                        error_name(x.error_code)
                    ));
                }
                out.insert(x.partition_index, x.offset);
            }
        }
    }
    Ok(out)
}

pub fn consume(o: ConsumerOptions) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(&o.bootstrap, &o.client_id);
        let mut layout = layout(&mut client, &o.topic, false).await?;
        if let Some(p) = o.partition {
            if !layout.leaders.contains_key(&p) {
                return Err(format!("topic '{}' has no partition {p}", o.topic));
            }
            layout.leaders.retain(|x, _| *x == p);
        }
        let partitions: Vec<i32> = layout.leaders.keys().copied().collect();
        let mut positions = match o.start {
            StartAt::Earliest => list_offsets(&mut client, &layout.leaders, &o.topic, -2).await?,
            StartAt::Latest => list_offsets(&mut client, &layout.leaders, &o.topic, -1).await?,
            StartAt::Offset(n) => partitions.iter().map(|p| (*p, n)).collect(),
        };
        let coordinator = match &o.group {
            Some(g) => {
                let c = coordinator(&mut client, g).await?;
                let committed = committed_offsets(&mut client, &c, g, &o.topic, &partitions).await?;
                for (p, off) in committed {
                    if off >= 0 {
                        positions.insert(p, off);
                    }
                }
                Some(c)
            }
            None => None,
        };
        let clock = Clock::system();
        let started = clock.monotonic_ms();
        let mut last_data = started;
        let mut printed = 0usize;
        let mut skipped_compressed = 0usize;
        let stdout = std::io::stdout();
        'outer: loop {
            if o.max_messages.is_some_and(|m| printed >= m) {
                break;
            }
            if o
                .timeout_ms
                .is_some_and(|t| clock.monotonic_ms().saturating_sub(last_data) >= t)
            {
                break;
            }
            // One fetch per leader for its partitions.
            let mut by_leader: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for (p, addr) in &layout.leaders {
                by_leader.entry(addr.clone()).or_default().push(*p);
            }
            let mut got_any = false;
            for (addr, ps) in by_leader {
                let body = RequestKind::Fetch(
                    FetchRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_max_wait_ms(500)
                        .with_min_bytes(1)
                        .with_max_bytes(50 << 20)
                        .with_session_epoch(-1)
                        .with_topics(vec![fetch_request::FetchTopic::default()
                            .with_topic(TopicName(StrBytes::from_string(o.topic.clone())))
                            .with_partitions(
                                ps.iter()
                                    .map(|p| {
                                        fetch_request::FetchPartition::default()
                                            .with_partition(*p)
                                            .with_fetch_offset(*positions.get(p).unwrap_or(&0))
                                            .with_partition_max_bytes(1 << 20)
                                    })
                                    .collect(),
                            )]),
                );
                let ResponseKind::Fetch(r) = client.send(&addr, ApiKey::Fetch, 12, &body).await?
                else {
                    return Err("not a Fetch response".into());
                };
                for t in &r.responses {
                    for p in &t.partitions {
                        // Outside the log: auto.offset.reset, as Kafka's consumer does.
                        if p.error_code == 1 && o.reset != Reset::None {
                            let at = if o.reset == Reset::Earliest { -2 } else { -1 };
                            let one: BTreeMap<i32, String> = layout
                                .leaders
                                .iter()
                                .filter(|(x, _)| **x == p.partition_index)
                                .map(|(x, a)| (*x, a.clone()))
                                .collect();
                            let reset = list_offsets(&mut client, &one, &o.topic, at).await?;
                            if let Some(to) = reset.get(&p.partition_index) {
                                eprintln!(
                                    "Fetch position {} is out of range for partition {}-{}, resetting offset to {to}",
                                    positions.get(&p.partition_index).copied().unwrap_or(-1),
                                    o.topic,
                                    p.partition_index
                                );
                                positions.insert(p.partition_index, *to);
                            }
                            continue;
                        }
                        if p.error_code != 0 {
                            return Err(format!(
                                "fetching {}-{}: {}",
                                o.topic,
                                p.partition_index,
                                error_name(p.error_code)
                            ));
                        }
                        let Some(bytes) = &p.records else { continue };
                        let mut rest = bytes.as_ref();
                        let mut out = stdout.lock();
                        while !rest.is_empty() {
                            let Ok((batch, tail)) = RecordBatch::parse(rest, usize::MAX) else {
                                break;
                            };
                            rest = tail;
                            let position = positions.entry(p.partition_index).or_insert(0);
                            if batch.last_offset() < *position {
                                continue;
                            }
                            got_any = true;
                            if batch.is_control() {
                                *position = batch.last_offset() + 1;
                                continue;
                            }
                            let Ok(list) = records(&batch) else {
                                skipped_compressed += 1;
                                *position = batch.last_offset() + 1;
                                continue;
                            };
                            for rec in list {
                                let offset = batch.base_offset() + rec.offset_delta;
                                if offset < *position {
                                    continue;
                                }
                                if o.max_messages.is_some_and(|m| printed >= m) {
                                    break 'outer;
                                }
                                let f = &o.format;
                                let text = |b: Option<&[u8]>| {
                                    b.map_or(f.null_literal.clone(), |b| {
                                        String::from_utf8_lossy(b).into_owned()
                                    })
                                };
                                let mut columns = Vec::new();
                                if f.timestamp {
                                    let kind = if batch.is_log_append_time() {
                                        "LogAppendTime"
                                    } else {
                                        "CreateTime"
                                    };
                                    let ts = batch.base_timestamp() + rec.timestamp_delta;
                                    columns.push(format!("{kind}:{ts}"));
                                }
                                if f.partition {
                                    columns.push(format!("Partition:{}", p.partition_index));
                                }
                                if f.offset {
                                    columns.push(format!("Offset:{offset}"));
                                }
                                if f.key {
                                    columns.push(text(rec.key));
                                }
                                if f.value {
                                    columns.push(text(rec.value));
                                }
                                let _ = write!(
                                    out,
                                    "{}{}",
                                    columns.join(&f.key_separator),
                                    f.line_separator
                                );
                                printed += 1;
                                *position = offset + 1;
                            }
                        }
                        let _ = out.flush();
                    }
                }
            }
            if got_any {
                last_data = clock.monotonic_ms();
                if let (Some(c), Some(g)) = (&coordinator, &o.group) {
                    commit_offsets(&mut client, c, g, &o.topic, &positions).await?;
                }
            }
        }
        if let (Some(c), Some(g)) = (&coordinator, &o.group) {
            commit_offsets(&mut client, c, g, &o.topic, &positions).await?;
        }
        if skipped_compressed > 0 {
            eprintln!("{skipped_compressed} compressed batches skipped (the console consumer decodes uncompressed batches only)");
        }
        eprintln!("Processed a total of {printed} messages");
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::murmur2;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            -58_897_971
        );
        assert_eq!(murmur2(b"abc"), 479_470_107);
    }
}
