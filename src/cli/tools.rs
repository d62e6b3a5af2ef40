//! Small operator tools, each as its Kafka namesake: `delete-records` (kafka-delete-records.sh:
//! a JSON file of partitions and offsets, sent to each leader), `log-dirs` (kafka-log-dirs.sh),
//! `get-offsets` (kafka-get-offsets.sh:
//! `topic:partition:offset` per partition at a time) and `dump-log` (kafka-dump-log.sh: the
//! batches of segment files, offline, with their CRC checked and optionally the records).

use super::console::list_offsets;
use crate::client::{broker_addr, error_name, Client};
use crate::protocol::record_batch::{records, BatchHeader, RecordBatch};
use crate::runtime::{self, Disk, RealDisk};
use std::collections::BTreeMap;
use std::path::Path;

/// `--time`: latest (-1), earliest (-2), max-timestamp (-3) or a timestamp in ms.
pub fn parse_time(text: &str) -> Result<i64, String> {
    match text {
        "latest" => Ok(-1),
        "earliest" => Ok(-2),
        "max-timestamp" => Ok(-3),
        n => n
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= -3)
            .ok_or_else(|| {
                format!("--time takes -1/latest, -2/earliest, -3/max-timestamp or a timestamp in ms, not '{n}'")
            }),
    }
}

/// `ketch get-offsets --bootstrap-server B [--topic T] [--partitions 0,1] [--time -1]`.
pub fn get_offsets(
    bootstrap: &str,
    topic: Option<&str>,
    partitions: Option<&[i32]>,
    time: i64,
    exclude_internal: bool,
) -> Result<(), String> {
    runtime::block_on(async move {
        let mut client = Client::new(bootstrap, "ketch-get-offsets");
        let wanted = topic.map(|t| vec![t.to_string()]);
        let m = client.metadata(wanted.as_deref()).await?;
        let mut topics: Vec<_> = m.topics.iter().collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        for t in topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            if t.error_code != 0 {
                return Err(format!("topic '{name}': {}", error_name(t.error_code)));
            }
            if exclude_internal && t.is_internal {
                continue;
            }
            let mut leaders = BTreeMap::new();
            for p in &t.partitions {
                if partitions.is_some_and(|ps| !ps.contains(&p.partition_index)) {
                    continue;
                }
                let addr = broker_addr(&m, p.leader_id.0)
                    .ok_or_else(|| format!("{name}-{} has no leader", p.partition_index))?;
                leaders.insert(p.partition_index, addr);
            }
            if let Some(p) = partitions.and_then(|ps| {
                ps.iter()
                    .find(|p| !t.partitions.iter().any(|x| x.partition_index == **p))
            }) {
                return Err(format!("topic '{name}' has no partition {p}"));
            }
            let offsets = list_offsets(&mut client, &leaders, &name, time).await?;
            for (p, offset) in offsets {
                // No offset for the time: Kafka's tool prints nothing for that partition.
                if offset >= 0 {
                    println!("{name}:{p}:{offset}");
                }
            }
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

fn codec(compression: u8) -> &'static str {
    match compression {
        0 => "none",
        1 => "gzip",
        2 => "snappy",
        3 => "lz4",
        4 => "zstd",
        _ => "unknown",
    }
}

/// `ketch dump-log --files F[,F…] [--print-data-log]`: each `.log` segment's batches.
/// Returns an error when a file holds an invalid batch or trailing bytes (after printing it).
pub fn dump_log(files: &[String], print_data: bool) -> Result<(), String> {
    let disk = RealDisk;
    let mut problems = Vec::new();
    for file in files {
        let path = Path::new(file);
        println!("Dumping {file}");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let (stem, kind) = match name.rsplit_once('.') {
            Some((stem, kind @ ("log" | "index" | "timeindex"))) => (stem, kind),
            _ => {
                return Err(format!(
                    "{file}: dump-log reads .log, .index and .timeindex files"
                ))
            }
        };
        let base: u64 = stem.parse().map_err(|_| {
            format!(
                "{file}: a segment is named by its base offset, e.g. 00000000000000000000.{kind}"
            )
        })?;
        if kind != "log" {
            let segment = path.with_extension("log");
            problems.extend(dump_index(
                &disk,
                path,
                &segment,
                base,
                kind == "timeindex",
            )?);
            continue;
        }
        println!("Log starting offset: {base}");
        let bytes = disk.read_file(path).map_err(|e| format!("{file}: {e}"))?;
        let mut position = 0usize;
        while position < bytes.len() {
            let rest = &bytes[position..];
            let header = match BatchHeader::parse(rest, usize::MAX) {
                Ok(h) if h.size() <= rest.len() => h,
                _ => {
                    println!("Found {} invalid bytes at the end of {name}", rest.len());
                    problems.push(format!(
                        "{file}: {} invalid bytes at position {position}",
                        rest.len()
                    ));
                    break;
                }
            };
            let size = header.size();
            match RecordBatch::parse(&rest[..size], usize::MAX) {
                Ok((batch, _)) => {
                    let count = batch.records_count();
                    let time_kind = if batch.is_log_append_time() {
                        "LogAppendTime"
                    } else {
                        "CreateTime"
                    };
                    // Sequences wrap at i32::MAX back to 0, as Kafka's do.
                    let wrap = |base: i32, delta: i64| {
                        ((i64::from(base) + delta) % (i64::from(i32::MAX) + 1)) as i32
                    };
                    let last_sequence = if batch.base_sequence() >= 0 {
                        wrap(batch.base_sequence(), i64::from(batch.last_offset_delta()))
                    } else {
                        -1
                    };
                    println!(
                        "baseOffset: {} lastOffset: {} count: {count} baseSequence: {} \
                         lastSequence: {last_sequence} producerId: {} producerEpoch: {} \
                         partitionLeaderEpoch: {} isTransactional: {} isControl: {} \
                         deleteHorizonMs: OptionalLong.empty position: {position} {}: {} \
                         size: {size} magic: 2 compresscodec: {} \
                         crc: {} isvalid: true",
                        batch.base_offset(),
                        batch.last_offset(),
                        batch.base_sequence(),
                        batch.producer_id(),
                        batch.producer_epoch(),
                        batch.partition_leader_epoch(),
                        batch.is_transactional(),
                        batch.is_control(),
                        time_kind,
                        batch.max_timestamp(),
                        codec(batch.compression()),
                        batch.crc(),
                    );
                    if print_data {
                        match records(&batch) {
                            Ok(rs) => {
                                for r in rs {
                                    let sequence = if batch.base_sequence() >= 0 {
                                        wrap(batch.base_sequence(), r.offset_delta)
                                    } else {
                                        -1
                                    };
                                    let len = |b: Option<&[u8]>| b.map_or(-1, |b| b.len() as i64);
                                    let mut line = format!(
                                        "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {sequence} headerKeys: []",
                                        batch.base_offset().saturating_add(r.offset_delta),
                                        time_kind,
                                        // LogAppendTime: every record has the batch's time.
                                        if batch.is_log_append_time() {
                                            batch.max_timestamp()
                                        } else {
                                            batch.base_timestamp().saturating_add(r.timestamp_delta)
                                        },
                                        len(r.key),
                                        len(r.value),
                                    );
                                    if let Some(k) = r.key {
                                        line.push_str(&format!(
                                            " key: {}",
                                            String::from_utf8_lossy(k)
                                        ));
                                    }
                                    line.push_str(&format!(
                                        " payload: {}",
                                        r.value
                                            .map_or("null".into(), |v| String::from_utf8_lossy(v)
                                                .into_owned())
                                    ));
                                    println!("{line}");
                                }
                            }
                            Err(e) => println!("| (records not shown: {e})"),
                        }
                    }
                }
                Err(e) => {
                    println!(
                        "baseOffset: ? lastOffset: {} position: {position} size: {size} isvalid: false ({e})",
                        header.last_offset()
                    );
                    problems.push(format!("{file}: invalid batch at position {position}: {e}"));
                }
            }
            position += size;
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// The batch of `segment` (its bytes) starting at `position`: (last offset, max timestamp).
fn batch_at(segment: &[u8], position: usize) -> Option<(i64, i64)> {
    let (batch, _) = RecordBatch::parse(segment.get(position..)?, usize::MAX).ok()?;
    Some((batch.last_offset(), batch.max_timestamp()))
}

/// An `.index` (`offset: O position: P`) or `.timeindex` (`timestamp: T offset: O`) file, as
/// kafka-dump-log.sh prints it, each entry checked against the segment beside it when there is
/// one (an offset entry must point at the batch ending at its offset; a time entry must hold
/// that batch's max timestamp and rise). Returns the mismatches, which it also prints.
fn dump_index(
    disk: &RealDisk,
    path: &Path,
    segment: &Path,
    base: u64,
    time: bool,
) -> Result<Vec<String>, String> {
    let file = path.display().to_string();
    let bytes = disk.read_file(path).map_err(|e| format!("{file}: {e}"))?;
    let log = disk.read_file(segment).ok();
    let entry_size = if time { 12 } else { 8 };
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    // (offset, log batch last offset) / (timestamp, what the log says), as Kafka reports them.
    let mut mismatches: Vec<String> = Vec::new();
    let mut positions: BTreeMap<i64, usize> = BTreeMap::new();
    if time {
        // Where each batch ends, to find a time entry's batch by its offset.
        if let Some(log) = &log {
            let mut at = 0usize;
            while let Ok(h) = BatchHeader::parse(&log[at..], usize::MAX) {
                positions.insert(h.last_offset(), at);
                at += h.size();
                if at >= log.len() {
                    break;
                }
            }
        }
    }
    let mut previous_timestamp: Option<i64> = None;
    for (i, e) in bytes.chunks(entry_size).enumerate() {
        if e.len() < entry_size {
            mismatches.push(format!("{} trailing bytes", e.len()));
            break;
        }
        if time {
            let mut ts = [0u8; 8];
            ts.copy_from_slice(&e[..8]);
            let timestamp = i64::from_be_bytes(ts);
            let offset = base as i64 + i64::from(be32(&e[8..]));
            if i > 0 && timestamp == 0 && be32(&e[8..]) == 0 {
                break; // a zero-filled tail
            }
            println!("timestamp: {timestamp} offset: {offset}");
            if let Some(prev) = previous_timestamp.filter(|p| timestamp <= *p) {
                mismatches.push(format!(
                    "Found out of order timestamp: Index timestamp: {timestamp}, Previously indexed timestamp: {prev}"
                ));
            }
            previous_timestamp = Some(timestamp);
            if let Some(log) = &log {
                match positions.get(&offset).and_then(|p| batch_at(log, *p)) {
                    Some((_, max)) if max == timestamp => {}
                    Some((_, max)) => mismatches.push(format!(
                        "Found timestamp mismatch: Index timestamp: {timestamp}, log timestamp: {max}"
                    )),
                    None => mismatches.push(format!(
                        "Index offset: {offset}, no batch of the log ends there"
                    )),
                }
            }
        } else {
            let offset = base as i64 + i64::from(be32(e));
            let position = be32(&e[4..]) as usize;
            if i > 0 && position == 0 {
                break; // a zero-filled tail
            }
            println!("offset: {offset} position: {position}");
            if let Some(log) = &log {
                match batch_at(log, position) {
                    Some((last, _)) if last == offset => {}
                    Some((last, _)) => {
                        mismatches.push(format!("Index offset: {offset}, log offset: {last}"))
                    }
                    None => mismatches.push(format!(
                        "Index offset: {offset}, no valid batch at position {position}"
                    )),
                }
            }
        }
    }
    if log.is_none() {
        println!("(no {} beside it: entries not checked)", segment.display());
    }
    if !mismatches.is_empty() {
        println!("Mismatches in :{file}");
        for m in &mismatches {
            println!("  {m}");
        }
    }
    Ok(mismatches
        .into_iter()
        .map(|m| format!("{file}: {m}"))
        .collect())
}

/// `ketch log-dirs --bootstrap-server B --describe [--broker-list 1,2] [--topic-list t1,t2]`:
/// each broker's DescribeLogDirs, printed as kafka-log-dirs.sh prints it (a JSON document).
pub fn log_dirs(
    bootstrap: &str,
    brokers: Option<&[i32]>,
    topics: Option<&[String]>,
) -> Result<(), String> {
    use kafka_protocol::messages::{
        describe_log_dirs_request::DescribableLogDirTopic, ApiKey, DescribeLogDirsRequest,
        RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    runtime::block_on(async move {
        let mut client = Client::new(bootstrap, "ketch-log-dirs");
        let m = client.metadata(None).await?;
        // The partitions asked about: every partition of the named topics (null: all).
        let request_topics = topics.map(|names| {
            m.topics
                .iter()
                .filter(|t| t.name.as_ref().is_some_and(|n| names.iter().any(|x| x == n.as_str())))
                .map(|t| {
                    DescribableLogDirTopic::default()
                        .with_topic(TopicName(StrBytes::from_string(
                            t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                        )))
                        .with_partitions(t.partitions.iter().map(|p| p.partition_index).collect())
                })
                .collect::<Vec<_>>()
        });
        let mut targets: Vec<(i32, String)> = m
            .brokers
            .iter()
            .filter(|b| brokers.is_none_or(|ids| ids.contains(&b.node_id.0)))
            .map(|b| (b.node_id.0, format!("{}:{}", b.host, b.port)))
            .collect();
        targets.sort();
        if let Some(missing) = brokers.and_then(|ids| ids.iter().find(|id| !targets.iter().any(|(t, _)| t == *id))) {
            return Err(format!("broker {missing} is not in the cluster's metadata"));
        }
        println!("Querying brokers for log directories information");
        let mut out = Vec::new();
        for (id, addr) in &targets {
            let body = RequestKind::DescribeLogDirs(
                DescribeLogDirsRequest::default().with_topics(request_topics.clone()),
            );
            let ResponseKind::DescribeLogDirs(r) =
                client.send(addr, ApiKey::DescribeLogDirs, 4, &body).await?
            else {
                return Err("not a DescribeLogDirs response".into());
            };
            let dirs: Vec<serde_json::Value> = r
                .results
                .iter()
                .map(|d| {
                    let partitions: Vec<serde_json::Value> = d
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions.iter().map(move |p| {
                                serde_json::json!({
                                    "partition": format!("{}-{}", t.name.0, p.partition_index),
                                    "size": p.partition_size,
                                    "offsetLag": p.offset_lag,
                                    "isFuture": p.is_future_key,
                                })
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "partitions": partitions,
                        "error": if d.error_code == 0 { serde_json::Value::Null } else { error_name(d.error_code).into() },
                        "logDir": d.log_dir.to_string(),
                    })
                })
                .collect();
            out.push(serde_json::json!({ "broker": id, "logDirs": dirs }));
        }
        let ids: Vec<String> = targets.iter().map(|(id, _)| id.to_string()).collect();
        println!("Received log directory information from brokers {}", ids.join(","));
        println!("{}", serde_json::json!({ "brokers": out, "version": 1 }));
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

/// `ketch delete-records --bootstrap-server B --offset-json-file F`, as
/// kafka-delete-records.sh: F holds `{"partitions": [{"topic": T, "partition": P, "offset":
/// O}, …], "version": 1}` (offset -1: the high watermark); each partition's leader moves its log
/// start there. Prints each partition's low watermark, or its error (then exits 1).
pub fn delete_records(bootstrap: &str, offset_json_file: &str) -> Result<(), String> {
    use kafka_protocol::messages::{
        delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
        ApiKey, DeleteRecordsRequest, RequestKind, ResponseKind, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;
    let bytes = RealDisk
        .read_file(Path::new(offset_json_file))
        .map_err(|e| format!("{offset_json_file}: {e}"))?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{offset_json_file}: not UTF-8"))?;
    let wanted =
        parse_delete_records_json(&text).map_err(|e| format!("{offset_json_file}: {e}"))?;
    runtime::block_on(async move {
        let mut client = Client::new(bootstrap, "ketch-delete-records");
        let topics: Vec<String> = wanted
            .iter()
            .map(|(t, _, _)| t.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let m = client.metadata(Some(&topics)).await?;
        // leader address → topic → [(partition, offset)]
        let mut by_leader: BTreeMap<String, BTreeMap<String, Vec<(i32, i64)>>> = BTreeMap::new();
        let mut results: BTreeMap<(String, i32), Result<i64, String>> = BTreeMap::new();
        for (topic, partition, offset) in &wanted {
            let meta = m
                .topics
                .iter()
                .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic));
            let leader = match meta {
                Some(t) if t.error_code != 0 => Err(error_name(t.error_code).to_string()),
                None => Err("UNKNOWN_TOPIC_OR_PARTITION".to_string()),
                Some(t) => match t
                    .partitions
                    .iter()
                    .find(|p| p.partition_index == *partition)
                {
                    None => Err("UNKNOWN_TOPIC_OR_PARTITION".to_string()),
                    Some(p) => broker_addr(&m, p.leader_id.0)
                        .ok_or_else(|| "LEADER_NOT_AVAILABLE".to_string()),
                },
            };
            match leader {
                Ok(addr) => by_leader
                    .entry(addr)
                    .or_default()
                    .entry(topic.clone())
                    .or_default()
                    .push((*partition, *offset)),
                Err(e) => {
                    results.insert((topic.clone(), *partition), Err(e));
                }
            }
        }
        println!("Executing records delete operation");
        for (addr, topics) in &by_leader {
            let request = DeleteRecordsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(
                    topics
                        .iter()
                        .map(|(name, ps)| {
                            DeleteRecordsTopic::default()
                                .with_name(TopicName(StrBytes::from_string(name.clone())))
                                .with_partitions(
                                    ps.iter()
                                        .map(|(p, o)| {
                                            DeleteRecordsPartition::default()
                                                .with_partition_index(*p)
                                                .with_offset(*o)
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
            let ResponseKind::DeleteRecords(r) = client
                .send(
                    addr,
                    ApiKey::DeleteRecords,
                    2,
                    &RequestKind::DeleteRecords(request),
                )
                .await?
            else {
                return Err("not a DeleteRecords response".into());
            };
            for t in &r.topics {
                for p in &t.partitions {
                    let outcome = if p.error_code == 0 {
                        Ok(p.low_watermark)
                    } else {
                        Err(error_name(p.error_code).to_string())
                    };
                    results.insert((t.name.to_string(), p.partition_index), outcome);
                }
            }
        }
        println!("Records delete operation completed:");
        let mut failed = false;
        for (topic, partition, _) in &wanted {
            match results.get(&(topic.clone(), *partition)) {
                Some(Ok(low)) => println!("partition: {topic}-{partition}\tlow_watermark: {low}"),
                Some(Err(e)) => {
                    failed = true;
                    println!("partition: {topic}-{partition}\terror: {e}");
                }
                None => {
                    failed = true;
                    println!("partition: {topic}-{partition}\terror: no answer from its leader");
                }
            }
        }
        if failed {
            return Err("some partitions' records were not deleted".into());
        }
        Ok(())
    })
    .map_err(|e| e.to_string())?
}

/// The `--offset-json-file` document: (topic, partition, offset) in file order; duplicates and
/// offsets below -1 are refused, as kafka-delete-records.sh does.
pub fn parse_delete_records_json(text: &str) -> Result<Vec<(String, i32, i64)>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let entries = doc
        .get("partitions")
        .and_then(|p| p.as_array())
        .ok_or("expected {\"partitions\": [{\"topic\": …, \"partition\": …, \"offset\": …}], \"version\": 1}")?;
    if let Some(v) = doc.get("version") {
        if v.as_i64() != Some(1) {
            return Err(format!("unsupported version {v} (expected 1)"));
        }
    }
    let mut out: Vec<(String, i32, i64)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let topic = e.get("topic").and_then(|t| t.as_str());
        let partition = e
            .get("partition")
            .and_then(|p| p.as_i64())
            .and_then(|p| i32::try_from(p).ok());
        let offset = e.get("offset").and_then(|o| o.as_i64());
        let (Some(topic), Some(partition), Some(offset)) = (topic, partition, offset) else {
            return Err(format!(
                "partitions[{i}] needs \"topic\" (a string), \"partition\" and \"offset\" (integers)"
            ));
        };
        if offset < -1 {
            return Err(format!(
                "{topic}-{partition}: offset {offset} (use -1 for the high watermark)"
            ));
        }
        if out.iter().any(|(t, p, _)| t == topic && *p == partition) {
            return Err(format!(
                "Offset json file contains duplicate topic partitions: {topic}-{partition}"
            ));
        }
        out.push((topic.to_string(), partition, offset));
    }
    if out.is_empty() {
        return Err("no partitions given".into());
    }
    Ok(out)
}
