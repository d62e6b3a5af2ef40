//! `ketch bench produce` and `ketch bench consume`, in the style of Kafka's
//! `kafka-producer-perf-test.sh` and `kafka-consumer-perf-test.sh`: records/s, MB/s and (for
//! produce) latency percentiles, with a progress line every second. Measurements, not tests.
//!
//! The producer sends ready-made uncompressed batches (`--batch-records` records of
//! `--record-size` bytes, built once, as a client with pre-serialised data would) over
//! `--connections` connections (at least one per partition; connection `c` produces to
//! partition `c % partitions` on its leader), one request in flight on each. Retriable errors
//! (a leader that moved or died, too few in-sync replicas) are retried after a metadata
//! refresh, as Kafka's producer does; the longest gap between two acknowledgements is
//! reported (a leader failover shows there). The consumer reads partition 0. Latency is per request, from
//! send to acknowledgement; every record of a batch shares its batch's latency.

use crate::client::{error_name, Client};
use crate::protocol::record_batch::{encode_batch, RecordBatch, RecordRef};
use crate::runtime::{self, Clock};
use bytes::Bytes;
use kafka_protocol::messages::{
    fetch_request, produce_request, ApiKey, BrokerId, FetchRequest, ProduceRequest, RequestKind,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub struct ProduceBench {
    pub bootstrap: String,
    pub topic: String,
    pub num_records: u64,
    pub record_size: usize,
    pub batch_records: usize,
    pub acks: i16,
    pub connections: usize,
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

/// Every partition of `topic` and its leader's address.
async fn partition_leaders(
    client: &mut Client,
    topic: &str,
) -> Result<BTreeMap<i32, String>, String> {
    for _ in 0..100 {
        let m = client.metadata(Some(&[topic.to_string()])).await?;
        if let Some(t) = m.topics.first() {
            let leaders: BTreeMap<i32, String> = t
                .partitions
                .iter()
                .filter_map(|p| {
                    crate::client::broker_addr(&m, p.leader_id.0).map(|a| (p.partition_index, a))
                })
                .collect();
            if !leaders.is_empty() && leaders.len() == t.partitions.len() {
                return Ok(leaders);
            }
        }
        runtime::sleep(Duration::from_millis(100)).await;
    }
    Err(format!(
        "topic '{topic}' has no partitions that all have a leader (create it first)"
    ))
}

/// Errors a producer retries after refreshing metadata (as Kafka's producer does).
fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 19 | 20 | 74 | 75)
}

pub fn produce(o: ProduceBench) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(&o.bootstrap, "ketch-producer-perf");
        let leaders = partition_leaders(&mut client, &o.topic).await?;
        let partitions: Vec<i32> = leaders.keys().copied().collect();
        let value = vec![b'x'; o.record_size];
        let records: Vec<RecordRef<'_>> = (0..o.batch_records.max(1))
            .map(|_| (None, Some(value.as_slice())))
            .collect();
        let batch = Bytes::from(encode_batch(0, Clock::system().wall_ms(), &records));
        let batches = o.num_records.div_ceil(o.batch_records.max(1) as u64);
        let next = Arc::new(AtomicU64::new(0));
        let done_records = Arc::new(AtomicU64::new(0));
        let retries = Arc::new(AtomicU64::new(0));
        let clock = Clock::system();
        let start = clock.monotonic_ms();
        // The time of the last acknowledgement and the longest gap between two (a leader's
        // failover shows as that gap), in µs since the start.
        let last_ack = Arc::new(AtomicU64::new(0));
        let max_gap = Arc::new(AtomicU64::new(0));
        let start_us = clock.monotonic().as_micros() as u64;
        // Records spread over every partition, as Kafka's perf tool does: connection `c`
        // produces to partition `c % partitions` (at least one connection per partition).
        let connections = o.connections.max(partitions.len()).max(1);
        let mut tasks = Vec::new();
        for c in 0..connections {
            let partition = partitions[c % partitions.len()];
            let next = Arc::clone(&next);
            let done_records = Arc::clone(&done_records);
            let retries = Arc::clone(&retries);
            let last_ack = Arc::clone(&last_ack);
            let max_gap = Arc::clone(&max_gap);
            let batch = batch.clone();
            let mut leader = leaders.get(&partition).cloned().unwrap_or_default();
            let bootstrap = o.bootstrap.clone();
            let topic = o.topic.clone();
            let (acks, per_batch) = (o.acks, o.batch_records.max(1) as u64);
            tasks.push(runtime::spawn(async move {
                let mut client = Client::new(&bootstrap, &format!("ketch-producer-perf-{c}"));
                let clock = Clock::system();
                let mut latencies_us = Vec::new();
                let body = RequestKind::Produce(
                    ProduceRequest::default()
                        .with_acks(acks)
                        .with_timeout_ms(30_000)
                        .with_topic_data(vec![produce_request::TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(topic.clone())))
                            .with_partition_data(vec![
                                produce_request::PartitionProduceData::default()
                                    .with_index(partition)
                                    .with_records(Some(batch)),
                            ])]),
                );
                while next.fetch_add(1, Ordering::Relaxed) < batches {
                    loop {
                        let sent = clock.monotonic().as_micros() as u64;
                        let code = match client.send(&leader, ApiKey::Produce, 9, &body).await {
                            Ok(ResponseKind::Produce(r)) => r
                                .responses
                                .iter()
                                .flat_map(|t| t.partition_responses.iter())
                                .map(|p| p.error_code)
                                .find(|c| *c != 0)
                                .unwrap_or(0),
                            Ok(_) => -1,
                            // The connection failed (a leader that died): retried below.
                            Err(_) => 6,
                        };
                        if code == 0 {
                            let now = clock.monotonic().as_micros() as u64;
                            latencies_us.push(now.saturating_sub(sent));
                            let since = now - start_us;
                            let previous = last_ack.fetch_max(since, Ordering::Relaxed);
                            if since > previous {
                                max_gap.fetch_max(since - previous, Ordering::Relaxed);
                            }
                            break;
                        }
                        if !retriable(code) {
                            return Err(format!("produce failed: {}", error_name(code)));
                        }
                        retries.fetch_add(1, Ordering::Relaxed);
                        runtime::sleep(Duration::from_millis(50)).await;
                        if let Ok(l) = partition_leaders(&mut client, &topic).await {
                            if let Some(addr) = l.get(&partition) {
                                leader = addr.clone();
                            }
                        }
                    }
                    done_records.fetch_add(per_batch, Ordering::Relaxed);
                }
                Ok::<Vec<u64>, String>(latencies_us)
            }));
        }
        let progress = {
            let done_records = Arc::clone(&done_records);
            let record_size = o.record_size as f64;
            runtime::spawn(async move {
                let clock = Clock::system();
                let mut last = (clock.monotonic_ms(), 0u64);
                loop {
                    runtime::sleep(Duration::from_secs(1)).await;
                    let now = (clock.monotonic_ms(), done_records.load(Ordering::Relaxed));
                    let secs = (now.0 - last.0) as f64 / 1000.0;
                    let n = (now.1 - last.1) as f64;
                    eprintln!(
                        "{} records sent, {:.1} records/sec ({:.2} MB/sec)",
                        now.1,
                        n / secs,
                        n * record_size / secs / 1e6
                    );
                    last = now;
                }
            })
        };
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await.map_err(|e| e.to_string())??);
        }
        progress.abort();
        let secs = (clock.monotonic_ms() - start) as f64 / 1000.0;
        let n = done_records.load(Ordering::Relaxed) as f64;
        latencies.sort_unstable();
        let avg = latencies.iter().sum::<u64>() as f64 / latencies.len().max(1) as f64 / 1000.0;
        println!(
            "{} records sent, {:.1} records/sec ({:.2} MB/sec), {avg:.2} ms avg latency, {:.2} ms max latency, {:.2} ms 50th, {:.2} ms 99th, {:.2} ms 99.9th.",
            n as u64,
            n / secs,
            n * o.record_size as f64 / secs / 1e6,
            latencies.last().copied().unwrap_or(0) as f64 / 1000.0,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.999),
        );
        println!(
            "{} partitions over {connections} connections; {} retried requests; longest gap between acknowledgements {:.1} ms",
            partitions.len(),
            retries.load(Ordering::Relaxed),
            max_gap.load(Ordering::Relaxed) as f64 / 1000.0
        );
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

pub struct ConsumeBench {
    pub bootstrap: String,
    pub topic: String,
    pub num_records: u64,
    pub fetch_max_bytes: i32,
}

pub fn consume(o: ConsumeBench) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(&o.bootstrap, "ketch-consumer-perf");
        let leader = partition_leaders(&mut client, &o.topic)
            .await?
            .remove(&0)
            .ok_or("the topic has no partition 0")?;
        let clock = Clock::system();
        let start = clock.monotonic_ms();
        let mut last = (start, 0u64, 0u64);
        let (mut records, mut bytes, mut offset) = (0u64, 0u64, 0i64);
        let mut fetches = 0u64;
        while records < o.num_records {
            let body = RequestKind::Fetch(
                FetchRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(o.fetch_max_bytes)
                    .with_session_epoch(-1)
                    .with_topics(vec![fetch_request::FetchTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(o.topic.clone())))
                        .with_partitions(vec![fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(o.fetch_max_bytes)])]),
            );
            let ResponseKind::Fetch(r) = client.send(&leader, ApiKey::Fetch, 12, &body).await?
            else {
                return Err("not a Fetch response".into());
            };
            fetches += 1;
            let mut got = 0;
            for p in r.responses.iter().flat_map(|t| t.partitions.iter()) {
                if p.error_code != 0 {
                    return Err(format!("fetch failed: {}", error_name(p.error_code)));
                }
                let Some(data) = &p.records else { continue };
                let mut rest = data.as_ref();
                // Count records from the batch headers; the payload is not decoded.
                while let Ok((batch, tail)) = RecordBatch::parse(rest, usize::MAX) {
                    if batch.last_offset() >= offset {
                        records += (batch.last_offset() + 1 - offset.max(batch.base_offset())) as u64;
                        bytes += batch.size() as u64;
                        offset = batch.last_offset() + 1;
                        got += 1;
                    }
                    rest = tail;
                }
            }
            if got == 0 {
                return Err(format!(
                    "the topic ended at offset {offset} before {} records",
                    o.num_records
                ));
            }
            let now = clock.monotonic_ms();
            if now - last.0 >= 1000 {
                let secs = (now - last.0) as f64 / 1000.0;
                eprintln!(
                    "{records} records read, {:.1} records/sec ({:.2} MB/sec)",
                    (records - last.1) as f64 / secs,
                    (bytes - last.2) as f64 / secs / 1e6
                );
                last = (now, records, bytes);
            }
        }
        let secs = ((clock.monotonic_ms() - start) as f64 / 1000.0).max(0.001);
        println!(
            "{records} records, {:.2} MB read in {secs:.2} s: {:.1} records/sec, {:.2} MB/sec, {fetches} fetches",
            bytes as f64 / 1e6,
            records as f64 / secs,
            bytes as f64 / secs / 1e6
        );
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

pub struct TopicsBench {
    /// Every controller, comma-separated: the active one is found by asking.
    pub bootstrap_controllers: String,
    pub count: usize,
    pub partitions: i32,
    pub replication_factor: i16,
}

/// `ketch bench topics`: creates `count` topics one at a time through CreateTopics to the
/// active controller, which answers once the topic's records are committed by the quorum, then
/// deletes them the same way; prints latency percentiles of each (metadata commit latency as a
/// client sees it).
pub fn topics(o: TopicsBench) -> Result<(), String> {
    use kafka_protocol::messages::{
        create_topics_request, CreateTopicsRequest, DeleteTopicsRequest,
    };
    let prefix = format!("bench-topic-{}", Clock::system().wall_ms());
    let create = |i: usize| {
        RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![create_topics_request::CreatableTopic::default()
                    .with_name(TopicName(StrBytes::from_string(format!("{prefix}-{i}"))))
                    .with_num_partitions(o.partitions)
                    .with_replication_factor(o.replication_factor)]),
        )
    };
    let delete = |i: usize| {
        RequestKind::DeleteTopics(
            DeleteTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topic_names(vec![TopicName(StrBytes::from_string(format!(
                    "{prefix}-{i}"
                )))]),
        )
    };
    let error_of = |r: &ResponseKind| match r {
        ResponseKind::CreateTopics(r) => r.topics.first().map_or(-1, |t| t.error_code),
        ResponseKind::DeleteTopics(r) => r.responses.first().map_or(-1, |t| t.error_code),
        _ => -1,
    };
    runtime::block_on(async {
        // The active controller answers the first creation; the others say NOT_CONTROLLER (41).
        let mut active = None;
        for addr in o.bootstrap_controllers.split(',').map(str::trim) {
            let Ok(mut stream) = crate::client::tools_connector().connect(addr).await else {
                continue;
            };
            let r = controller_call(&mut stream, ApiKey::CreateTopics, 7, create(0)).await?;
            match error_of(&r) {
                0 => {
                    active = Some((addr.to_string(), stream));
                    break;
                }
                41 => continue,
                code => return Err(format!("creating the first topic: {} ({code})", error_name(code))),
            }
        }
        let (addr, mut stream) =
            active.ok_or("no active controller among --bootstrap-controller")?;
        let clock = Clock::system();
        let mut created_us = Vec::with_capacity(o.count);
        let started = clock.monotonic();
        for i in 1..o.count {
            let sent = clock.monotonic();
            let r = controller_call(&mut stream, ApiKey::CreateTopics, 7, create(i)).await?;
            if error_of(&r) != 0 {
                return Err(format!("creating topic {i}: error {}", error_of(&r)));
            }
            created_us.push((clock.monotonic() - sent).as_micros() as u64);
        }
        let create_s = (clock.monotonic() - started).as_secs_f64();
        let mut deleted_us = Vec::with_capacity(o.count);
        for i in 0..o.count {
            let sent = clock.monotonic();
            let r = controller_call(&mut stream, ApiKey::DeleteTopics, 5, delete(i)).await?;
            if error_of(&r) != 0 {
                return Err(format!("deleting topic {i}: error {}", error_of(&r)));
            }
            deleted_us.push((clock.monotonic() - sent).as_micros() as u64);
        }
        created_us.sort_unstable();
        deleted_us.sort_unstable();
        println!(
            "active controller {addr}: {} topics of {} partitions × {} replicas, one request at a time",
            o.count, o.partitions, o.replication_factor
        );
        for (what, us) in [("create", &created_us), ("delete", &deleted_us)] {
            println!(
                "{what}: {} requests, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
                us.len(),
                percentile(us, 0.50),
                percentile(us, 0.99),
                us.last().copied().unwrap_or(0) as f64 / 1000.0
            );
        }
        println!(
            "{:.0} topics/s created one at a time",
            created_us.len() as f64 / create_s.max(1e-9)
        );
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

/// One request and its answer on an open controller connection.
async fn controller_call(
    stream: &mut crate::runtime::net::Stream,
    api_key: ApiKey,
    version: i16,
    body: RequestKind,
) -> Result<ResponseKind, String> {
    use crate::protocol::frame::{decode_response, encode_request};
    use crate::runtime::net::{read_frame, write_frame};
    let frame =
        encode_request(1, "ketch-bench", api_key, version, &body).map_err(|e| e.to_string())?;
    write_frame(stream, &frame)
        .await
        .map_err(|e| e.to_string())?;
    let answer = read_frame(stream, 16 << 20)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("connection closed")?;
    decode_response(api_key, version, answer)
        .map(|(_, r)| r)
        .map_err(|e| e.to_string())
}
