//! The broker against real Kafka clients, as a user runs them: the `ketch` binary, kcat
//! (librdkafka), kafka-python and confluent-kafka (from `tests/clients/scenarios.py`).
//! `ci/test` installs them; the interpreter is `$KETCH_PYTHON` or `target/client-venv`.
//! A missing client fails the test with what to install: these tests never skip.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{python, Node};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs a scenario of tests/clients/scenarios.py; returns its JSON line.
fn scenario(node: &Node, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/scenarios.py");
    let out = Command::new(python())
        .arg(script)
        .arg(args[0])
        .arg(node.bootstrap())
        .args(&args[1..])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "scenario {args:?} failed:\n{stdout}\n{}\nbroker logs in {}",
        String::from_utf8_lossy(&out.stderr),
        node.dir.display()
    );
    let line = stdout.lines().last().unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("scenario output {line:?}: {e}"))
}

fn kcat(args: &[&str], stdin: Option<&str>) -> String {
    let (ok, out, err) = common::run("kcat", args, stdin);
    assert!(ok, "kcat {args:?}: {err}");
    out
}

#[test]
fn quickstart_with_the_ketch_cli_and_a_graceful_stop() {
    let mut node = Node::new("quickstart", "");
    let b = node.bootstrap();
    let (ok, out, err) = node.ketch(
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--create",
            "--topic",
            "quickstart",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let (ok, out, _) = node.ketch(
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--describe",
            "--topic",
            "quickstart",
        ],
        None,
    );
    assert!(ok);
    assert!(out.contains("PartitionCount: 3"), "{out}");
    let lines: Vec<String> = (0..30).map(|i| format!("k{}:event {i}", i % 5)).collect();
    let (ok, _, err) = node.ketch(
        &[
            "console-producer",
            "--bootstrap-server",
            &b,
            "--topic",
            "quickstart",
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=:",
        ],
        Some(&(lines.join("\n") + "\n")),
    );
    assert!(ok, "{err}");
    let consume_all = |node: &Node| {
        let (ok, out, err) = node.ketch(
            &[
                "console-consumer",
                "--bootstrap-server",
                &b,
                "--topic",
                "quickstart",
                "--from-beginning",
                "--max-messages",
                "30",
                "--timeout-ms",
                "10000",
            ],
            None,
        );
        assert!(ok, "{err}");
        out
    };
    let out = consume_all(&node);
    let mut got: Vec<&str> = out.lines().collect();
    let mut want: Vec<String> = (0..30).map(|i| format!("event {i}")).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // SIGTERM: in-flight work finishes, logs are flushed, exit 0; the data is there after.
    let status = node.stop();
    assert!(status.success(), "exit status {status:?}");
    node.start();
    let out = consume_all(&node);
    assert_eq!(out.lines().count(), 30);
}

#[test]
fn kcat_produces_consumes_and_lists() {
    let node = Node::new("kcat", "");
    let b = node.bootstrap();
    let input: String = (0..50)
        .map(|i| format!("key{}\tvalue-{i}\n", i % 4))
        .collect();
    kcat(&["-b", &b, "-P", "-t", "kc", "-K", "\t"], Some(&input));
    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            "kc",
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k=%s\n",
        ],
        None,
    );
    let mut got: Vec<&str> = out.lines().collect();
    got.sort();
    let mut want: Vec<String> = (0..50).map(|i| format!("key{}=value-{i}", i % 4)).collect();
    want.sort();
    assert_eq!(got, want);
    let meta = kcat(&["-b", &b, "-L"], None);
    assert!(meta.contains("topic \"kc\""), "{meta}");
    // A consumer group through librdkafka: everything once, then nothing new for the group.
    let first = kcat(
        &[
            "-b",
            &b,
            "-G",
            "kcat-group",
            "-o",
            "beginning",
            "-e",
            "-c",
            "50",
            "kc",
        ],
        None,
    );
    assert_eq!(first.lines().count(), 50);
}

#[test]
fn a_group_resumes_at_its_committed_offsets_after_a_broker_kill() {
    let mut node = Node::new("groups", "");
    let phase1 = scenario(&node, &["groups-phase1", "resume-topic"]);
    let committed = phase1["committed"].to_string();
    node.kill(); // SIGKILL: no flush, no checkpoint
    node.start();
    let phase2 = scenario(&node, &["groups-phase2", "resume-topic", &committed]);
    // Together the two phases saw every record exactly once.
    let mut all: Vec<String> = phase1["seen"]
        .as_array()
        .unwrap()
        .iter()
        .chain(phase2["rest"].as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    all.sort();
    let mut want: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn an_idempotent_producer_across_a_broker_kill_writes_no_duplicates() {
    let mut node = Node::new("idempotent", "");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/scenarios.py");
    let producer = Command::new(python())
        .arg(&script)
        .args(["idempotent-produce", &node.bootstrap(), "idem", "3000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the broker while the producer is sending; librdkafka retries what was in flight.
    std::thread::sleep(Duration::from_millis(1500));
    node.kill();
    std::thread::sleep(Duration::from_millis(300));
    node.start();
    let out = producer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    let acked: Vec<i64> = report["acked_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(acked.len(), 3000);
    let read = scenario(&node, &["read-ids", "idem", "3000"]);
    let mut ids: Vec<i64> = read["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    let total = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(total, ids.len(), "duplicates were written");
    assert_eq!(ids, acked, "acknowledged records are missing");
}

#[test]
fn compressed_batches_pass_through_and_decode() {
    let node = Node::new("compression", "");
    scenario(&node, &["compression", "codecs"]);
    // Stored as produced: the batches on disk carry each codec (1 gzip, 2 snappy, 3 lz4,
    // 4 zstd), never recompressed. (librdkafka sends a batch uncompressed when compressing
    // does not shrink it, so codec 0 may appear too.)
    for (partition, codec) in [(0, 1u8), (1, 2), (2, 3), (3, 4)] {
        let segment = node
            .dir
            .join(format!("data/codecs-{partition}/00000000000000000000.log"));
        let bytes = std::fs::read(&segment).unwrap();
        let mut codecs = Vec::new();
        let mut at = 0;
        while at + 61 <= bytes.len() {
            let length = i32::from_be_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            codecs.push(bytes[at + 22] & 0x07); // attributes: bytes 21..23 of a batch
            at += 12 + length;
        }
        assert!(codecs.contains(&codec), "{}: {codecs:?}", segment.display());
        assert!(codecs.iter().all(|c| *c == codec || *c == 0), "{codecs:?}");
    }
}

#[test]
fn large_records_limits_auto_creation_timestamps_and_recreation() {
    let node = Node::new("misc", "");
    let limits = scenario(&node, &["large-and-limits", "big"]);
    assert!(
        limits["refused"]
            .as_str()
            .unwrap_or("")
            .contains("MessageSizeTooLarge"),
        "{limits}"
    );
    scenario(&node, &["auto-create", "made-on-demand"]);
    scenario(&node, &["timestamps", "times"]);
    scenario(&node, &["recreate", "again"]);
}

#[test]
fn topic_configs_are_altered_described_and_applied() {
    let node = Node::new("configs", "log.retention.check.interval.ms=500\n");
    let r = scenario(&node, &["configs", "retained"]);
    assert!(r["log_start"].as_i64().unwrap() > 0, "{r}");
    assert!(
        r["refused"].as_str().unwrap().contains("compression.type"),
        "{r}"
    );
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_per_key_for_real_clients() {
    let node = Node::new("compaction", "log.cleaner.backoff.ms=200\n");
    let data = node.dir.join("data");
    let r = scenario(&node, &["compaction", "table", data.to_str().unwrap()]);
    eprintln!("compaction: {r}");
}

#[test]
fn an_idle_group_keeps_its_offsets_past_retention() {
    // Everything rolls every 2 KiB and retention deletes what is older than a second, checked
    // every 200 ms; __consumer_offsets is compacted instead, so the idle group's commit stays.
    let mut node = Node::new(
        "idle-group",
        "log.segment.bytes=2048\nlog.retention.ms=1000\nlog.retention.check.interval.ms=200\n\
         log.cleaner.backoff.ms=200\n",
    );
    let r_commit = scenario(&node, &["idle-group", "idle", "commit"]);
    std::thread::sleep(Duration::from_secs(3));
    let partition = r_commit["partition"].as_i64().unwrap();
    let offsets_dir = node
        .dir
        .join(format!("data/__consumer_offsets-{partition}"));
    let segments = std::fs::read_dir(&offsets_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    node.kill();
    node.start();
    let r = scenario(&node, &["idle-group", "idle", "check"]);
    assert_eq!(r["committed"], 7, "{r}");
    eprintln!("__consumer_offsets-{partition} had {segments} segments before the restart");
}

#[test]
fn cooperative_sticky_consumers_share_a_topic() {
    let node = Node::new("cooperative", "");
    let r = scenario(&node, &["cooperative", "shared"]);
    assert_eq!(r["assignments"].as_array().map(|a| a.len()), Some(2), "{r}");
}

/// Counts the records kcat reads from the whole topic at `isolation`.
fn kcat_count(node: &Node, topic: &str, isolation: &str) -> usize {
    let b = node.bootstrap();
    let out = kcat(
        &[
            "-b",
            &b,
            "-C",
            "-t",
            topic,
            "-e",
            "-q",
            "-X",
            &format!("isolation.level={isolation}"),
        ],
        None,
    );
    out.lines().count()
}

#[test]
fn transactions_commit_abort_and_fence_for_real_clients_and_survive_a_sigkill() {
    let mut node = Node::new("transactions", "");
    let r = scenario(&node, &["transactions", "txn"]);
    // Committed: c1 (30), c3 (25), o4 (10, committed after being read while open), c6 (7).
    // Aborted: a2 (20), and z5 (5), the zombie's transaction its successor aborted.
    assert_eq!(r["committed_while_open"], 55, "{r}");
    assert_eq!(r["uncommitted_while_open"], 85, "{r}");
    assert_eq!(r["committed"], 72, "{r}");
    assert_eq!(
        r["committed_prefixes"],
        serde_json::json!(["c1", "c3", "c6", "o4"]),
        "{r}"
    );
    assert_eq!(r["uncommitted"], 97, "{r}");
    assert_eq!(r["fenced"], "_FENCED", "{r}");
    // kcat (the librdkafka Debian ships) agrees, before and after a SIGKILL: the aborted
    // transactions are recovered from the producer state and the log.
    assert_eq!(kcat_count(&node, "txn", "read_committed"), 72);
    assert_eq!(kcat_count(&node, "txn", "read_uncommitted"), 97);
    node.kill();
    node.start();
    assert_eq!(kcat_count(&node, "txn", "read_committed"), 72);
    assert_eq!(kcat_count(&node, "txn", "read_uncommitted"), 97);
    // A clean stop leaves the aborted transactions in Kafka's `.txnindex` files (34 bytes an
    // entry): a2 and z5 each wrote to all three partitions, and the rebuild after the SIGKILL
    // made none twice. The next start reads them.
    assert!(node.stop().success());
    let mut entries = 0;
    for part in std::fs::read_dir(node.dir.join("data")).unwrap() {
        let part = part.unwrap().path();
        if !part
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("txn-")
        {
            continue;
        }
        for f in std::fs::read_dir(&part).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "txnindex") {
                let len = std::fs::metadata(&f).unwrap().len();
                assert_eq!(len % 34, 0, "{}", f.display());
                entries += len / 34;
            }
        }
    }
    assert_eq!(entries, 6, "aborted-transaction index entries");
    node.start();
    assert_eq!(kcat_count(&node, "txn", "read_committed"), 72);
    assert_eq!(kcat_count(&node, "txn", "read_uncommitted"), 97);
}

#[test]
fn a_hanging_transaction_is_aborted_by_its_timeout_or_by_ketch_transactions() {
    let node = Node::new(
        "hanging",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=300\n",
    );
    let b = node.bootstrap();
    let tool = |args: &[&str]| {
        let mut all = vec!["transactions", "--bootstrap-server", &b];
        all.extend_from_slice(args);
        let (ok, out, err) = node.ketch(&all, None);
        assert!(ok, "ketch {all:?}: {out}{err}");
        out
    };
    let (ok, out, err) = node.ketch(
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--create",
            "--topic",
            "hang",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    // A producer dies inside a transaction (offsets 0-4); another commits 3 records after it.
    scenario(&node, &["hang", "hang", "h1", "60000"]);
    scenario(&node, &["commit", "hang", "c1", "3"]);
    // The open transaction holds the last stable offset at 0.
    assert_eq!(kcat_count(&node, "hang", "read_committed"), 0);
    assert_eq!(kcat_count(&node, "hang", "read_uncommitted"), 8);
    let producers = tool(&["describe-producers", "--topic", "hang", "--partition", "0"]);
    assert!(
        producers.lines().any(|l| l.split('\t').nth(5) == Some("0")),
        "no producer with a transaction open at offset 0:\n{producers}"
    );
    let listed = tool(&["list"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("h1\t") && l.ends_with("\tOngoing")),
        "{listed}"
    );
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("c1\t") && l.ends_with("\tCompleteCommit")),
        "{listed}"
    );
    // kafka-transactions.sh abort, by the transaction's start offset.
    tool(&[
        "abort",
        "--topic",
        "hang",
        "--partition",
        "0",
        "--start-offset",
        "0",
    ]);
    assert_eq!(kcat_count(&node, "hang", "read_committed"), 3);
    // A transaction whose producer died is aborted by its coordinator once its
    // transaction.timeout.ms passes, and the records committed after it become readable.
    scenario(&node, &["hang", "hang", "h2", "2000"]);
    scenario(&node, &["commit", "hang", "c1", "2"]);
    assert_eq!(kcat_count(&node, "hang", "read_committed"), 3);
    let start = std::time::Instant::now();
    while kcat_count(&node, "hang", "read_committed") < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the timed-out transaction still holds the last stable offset"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let described = tool(&["describe", "--transactional-id", "h2"]);
    let row: Vec<&str> = described.lines().nth(1).unwrap_or("").split('\t').collect();
    // Aborted with its epoch bumped (the dead producer is fenced).
    assert_eq!(row.get(3), Some(&"1"), "{described}");
    assert_eq!(row.get(4), Some(&"CompleteAbort"), "{described}");
    assert_eq!(kcat_count(&node, "hang", "read_committed"), 5);
}

/// One request to `addr` and its answer, through the library's one-shot client.
fn call(
    addr: &str,
    api_key: kafka_protocol::messages::ApiKey,
    version: i16,
    body: kafka_protocol::messages::RequestKind,
) -> kafka_protocol::messages::ResponseKind {
    ketch::runtime::block_on(ketch::wire::call_once(
        &ketch::wire::Connector::plain(),
        addr,
        "kip-890-test",
        api_key,
        version,
        &body,
        16 << 20,
        Duration::from_secs(10),
    ))
    .unwrap()
    .unwrap_or_else(|| panic!("no answer to {api_key:?} from {addr}"))
}

/// A transactional batch of one record for `producer` at base sequence `seq`, produced
/// (acks=all) to `topic`-`partition` with `transactional_id`: the error code.
fn produce_transactional(
    addr: &str,
    transactional_id: Option<&str>,
    producer: (i64, i16),
    seq: i32,
    topic: &str,
    partition: i32,
    value: &str,
) -> i16 {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use ketch::protocol::record_batch::{build_batch, set_producer, set_transactional_producer};
    let mut batch = build_batch(0, 1_700_000_000_000, &[(None, value.as_bytes())]);
    set_transactional_producer(&mut batch, producer.0, producer.1);
    set_producer(&mut batch, producer.0, producer.1, seq);
    let body = ProduceRequest::default()
        .with_transactional_id(
            transactional_id.map(|t| TransactionalId(StrBytes::from_string(t.to_string()))),
        )
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch.into())),
            ])]);
    let ResponseKind::Produce(r) = call(addr, ApiKey::Produce, 9, RequestKind::Produce(body))
    else {
        panic!("not a Produce answer");
    };
    r.responses[0].partition_responses[0].error_code
}

/// A Produce naming `topic`-`partition` twice: first with no records, then with a
/// transactional batch of `producer` at sequence 0. The second entry's error code.
fn produce_listed_twice(
    addr: &str,
    transactional_id: &str,
    producer: (i64, i16),
    topic: &str,
    partition: i32,
) -> i16 {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    use ketch::protocol::record_batch::{build_batch, set_producer, set_transactional_producer};
    let mut batch = build_batch(0, 1_700_000_000_000, &[(None, b"twice".as_slice())]);
    set_transactional_producer(&mut batch, producer.0, producer.1);
    set_producer(&mut batch, producer.0, producer.1, 0);
    let entry = |records: Option<bytes::Bytes>| {
        produce_request::PartitionProduceData::default()
            .with_index(partition)
            .with_records(records)
    };
    let body = ProduceRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        ))))
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![entry(None), entry(Some(batch.into()))])]);
    let ResponseKind::Produce(r) = call(addr, ApiKey::Produce, 9, RequestKind::Produce(body))
    else {
        panic!("not a Produce answer");
    };
    r.responses[0].partition_responses[1].error_code
}

/// KIP-890's server-side defence, as a transactional producer's requests reach the broker:
/// a batch for a partition its transaction never added, a batch that arrives after its
/// transaction ended, and one without a transactional id are refused with INVALID_TXN_STATE
/// and written nowhere, so the last stable offset is never held by a transaction no
/// coordinator will end (kcat's read_committed consumer reads everything committed). With
/// `transaction.partition.verification.enable=false` the same late batch is appended and
/// holds the last stable offset, which is what the defence is for.
#[test]
fn a_late_or_stray_transactional_batch_cannot_open_a_transaction() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    const INVALID_TXN_STATE: i16 = 48;
    let run = |name: &str, extra: &str| -> (Vec<i16>, usize, usize) {
        let node = Node::new(name, extra);
        let b = node.bootstrap();
        let (ok, out, err) = node.ketch(
            &[
                "topics",
                "--bootstrap-server",
                &b,
                "--create",
                "--topic",
                "late",
                "--partitions",
                "2",
            ],
            None,
        );
        assert!(ok, "{out}{err}");
        let tid = || TransactionalId(StrBytes::from_string("late-1".to_string()));
        // A single node coordinates everything; the first FindCoordinator creates the state
        // topic, so ask until the coordinator is ready.
        let mut producer = (-1, -1);
        for _ in 0..100 {
            call(
                &b,
                ApiKey::FindCoordinator,
                4,
                RequestKind::FindCoordinator(
                    FindCoordinatorRequest::default()
                        .with_key_type(1)
                        .with_coordinator_keys(vec![StrBytes::from_static_str("late-1")]),
                ),
            );
            let ResponseKind::InitProducerId(r) = call(
                &b,
                ApiKey::InitProducerId,
                1,
                RequestKind::InitProducerId(
                    InitProducerIdRequest::default()
                        .with_transactional_id(Some(tid()))
                        .with_transaction_timeout_ms(60_000),
                ),
            ) else {
                panic!("not an InitProducerId answer");
            };
            if r.error_code == 0 {
                producer = (r.producer_id.0, r.producer_epoch);
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(producer.0 >= 0, "no producer id");
        let ResponseKind::AddPartitionsToTxn(r) = call(
            &b,
            ApiKey::AddPartitionsToTxn,
            3,
            RequestKind::AddPartitionsToTxn(
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(tid())
                    .with_v3_and_below_producer_id(ProducerId(producer.0))
                    .with_v3_and_below_producer_epoch(producer.1)
                    .with_v3_and_below_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                            .with_name(TopicName(StrBytes::from_static_str("late")))
                            .with_partitions(vec![0]),
                    ]),
            ),
        ) else {
            panic!("not an AddPartitionsToTxn answer");
        };
        assert_eq!(
            r.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
            0
        );
        let mut codes = vec![
            // In the transaction: appended.
            produce_transactional(&b, Some("late-1"), producer, 0, "late", 0, "in"),
            // Never added to it.
            produce_transactional(&b, Some("late-1"), producer, 0, "late", 1, "stray"),
        ];
        let ResponseKind::EndTxn(r) = call(
            &b,
            ApiKey::EndTxn,
            3,
            RequestKind::EndTxn(
                EndTxnRequest::default()
                    .with_transactional_id(tid())
                    .with_producer_id(ProducerId(producer.0))
                    .with_producer_epoch(producer.1)
                    .with_committed(true),
            ),
        ) else {
            panic!("not an EndTxn answer");
        };
        assert_eq!(r.error_code, 0);
        // The commit marker is on partition 0 once read_committed sees the record.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while kcat_count(&node, "late", "read_committed") < 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the commit never became visible"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        // The same producer's next batch arrives late, after its transaction ended; then one
        // without a transactional id.
        codes.push(produce_transactional(
            &b,
            Some("late-1"),
            producer,
            1,
            "late",
            0,
            "late",
        ));
        codes.push(produce_transactional(
            &b, None, producer, 2, "late", 0, "no id",
        ));
        // The stray batch again, behind an empty entry for the same partition in the same
        // request: the second entry is verified too.
        codes.push(produce_listed_twice(&b, "late-1", producer, "late", 1));
        (
            codes,
            kcat_count(&node, "late", "read_committed"),
            kcat_count(&node, "late", "read_uncommitted"),
        )
    };
    let (codes, committed, uncommitted) = run("kip890-on", "");
    assert_eq!(
        codes,
        vec![
            0,
            INVALID_TXN_STATE,
            INVALID_TXN_STATE,
            INVALID_TXN_STATE,
            INVALID_TXN_STATE
        ]
    );
    assert_eq!(
        (committed, uncommitted),
        (1, 1),
        "nothing but the committed record"
    );
    // Without the defence: the stray batch opens a transaction on partition 1 and the late
    // one another on partition 0; nothing will ever end them, so read_committed stops at
    // them (the batch without an id then joins the late one's open transaction).
    let (codes, committed, uncommitted) = run(
        "kip890-off",
        "transaction.partition.verification.enable=false\n",
    );
    // (The batch listed twice repeats the stray one's sequence: a duplicate, not appended.)
    assert_eq!(codes, vec![0, 0, 0, 0, 0]);
    assert_eq!((committed, uncommitted), (1, 4));
}
