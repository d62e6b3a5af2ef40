//! Hostile clients against the real binary (issue: fuzzing and hostile clients, §3): a
//! slow-loris client, a client that opens connections up to `max.connections`, a client that
//! never reads its responses. In each case a well-behaved client keeps producing and consuming
//! with normal latency, and the broker's memory stays bounded: per connection, one request
//! (at most `socket.request.max.bytes`, held as it arrives) and one response being written,
//! because a connection's next request is not read before its previous answer is written.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{request, Node};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Metadata v1 for all topics on a fresh connection, timed.
fn metadata_round_trip(stream: &mut TcpStream, correlation_id: i32) -> Duration {
    let start = Instant::now();
    stream
        .write_all(&request(3, 1, correlation_id, &(-1i32).to_be_bytes()))
        .unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    assert_eq!(
        i32::from_be_bytes(body[0..4].try_into().unwrap()),
        correlation_id
    );
    start.elapsed()
}

/// A well-behaved client: produce and consume a few lines with the ketch tools; the time taken.
fn produce_and_consume(node: &Node, topic: &str) -> Duration {
    let start = Instant::now();
    let b = node.bootstrap();
    let (ok, _, err) = node.ketch(
        &[
            "console-producer",
            "--bootstrap-server",
            &b,
            "--topic",
            topic,
        ],
        Some("one\ntwo\nthree\n"),
    );
    assert!(ok, "{err}");
    let (ok, out, err) = node.ketch(
        &[
            "console-consumer",
            "--bootstrap-server",
            &b,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            "3",
            "--timeout-ms",
            "10000",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 3, "{out}");
    start.elapsed()
}

fn rss_kib(node: &Node) -> u64 {
    let pid = node.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

#[test]
fn a_slow_loris_client_does_not_slow_anyone_else() {
    let node = Node::new("slow-loris", "");
    let baseline = produce_and_consume(&node, "calm");
    // Ten connections each send a request one byte at a time, 1 byte per second.
    let mut loris: Vec<TcpStream> = (0..10).map(|_| connect(&node)).collect();
    let frame = request(3, 1, 1, &(-1i32).to_be_bytes());
    for byte in frame.iter().take(3) {
        for s in &mut loris {
            s.write_all(&[*byte]).unwrap();
        }
        let during = produce_and_consume(&node, "busy");
        assert!(
            during < baseline * 5 + Duration::from_secs(2),
            "a well-behaved client took {during:?} (baseline {baseline:?})"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn connections_over_max_connections_are_refused_and_existing_clients_keep_working() {
    let node = Node::new("connection-limit", "max.connections=20\n");
    // A client that was connected before the flood.
    let mut existing = connect(&node);
    metadata_round_trip(&mut existing, 1);
    // The attacker opens connections until they are refused.
    let mut flood = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut s = connect(&node);
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(&request(18, 0, 7, &[])).unwrap();
        let mut buf = [0u8; 4];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => refused += 1,
            Ok(_) => flood.push(s),
        }
    }
    assert_eq!(
        flood.len(),
        19,
        "20 connections in all, the existing one included"
    );
    assert_eq!(refused, 21);
    // The existing client is still served, promptly.
    let t = metadata_round_trip(&mut existing, 2);
    assert!(t < Duration::from_secs(1), "{t:?}");
    // Once the attacker lets go, new clients get in again.
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    let mut fresh = connect(&node);
    metadata_round_trip(&mut fresh, 3);
}

#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    let node = Node::new("never-reads", "");
    // A topic with ~8 MiB of data.
    let line = "x".repeat(1000);
    let input: String = (0..8000).map(|_| format!("{line}\n")).collect();
    let (ok, _, err) = node.ketch(
        &[
            "console-producer",
            "--bootstrap-server",
            &node.bootstrap(),
            "--topic",
            "big",
        ],
        Some(&input),
    );
    assert!(ok, "{err}");
    let before = rss_kib(&node);
    // Ten connections each pipeline 200 Fetch v4 requests for 8 MiB and never read.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i32).to_be_bytes()); // replica id
    body.extend_from_slice(&0i32.to_be_bytes()); // max wait
    body.extend_from_slice(&1i32.to_be_bytes()); // min bytes
    body.extend_from_slice(&(8i32 << 20).to_be_bytes()); // max bytes
    body.push(0); // isolation level
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&3i16.to_be_bytes());
    body.extend_from_slice(b"big");
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes()); // partition 0
    body.extend_from_slice(&0i64.to_be_bytes()); // fetch offset
    body.extend_from_slice(&(8i32 << 20).to_be_bytes()); // partition max bytes
    let fetch = request(1, 4, 9, &body);
    let mut sinks = Vec::new();
    for _ in 0..10 {
        let mut s = connect(&node);
        s.set_write_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        for _ in 0..200 {
            // The broker stops reading once its answers back up; our writes then block.
            if s.write_all(&fetch).is_err() {
                break;
            }
        }
        sinks.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let during = rss_kib(&node);
    // Per connection at most one response in flight (~8 MiB here) plus socket buffers: 10
    // connections stay well under 10 x 2 x 8 MiB, however many requests they queued.
    let grown_mib = during.saturating_sub(before) / 1024;
    assert!(grown_mib < 200, "memory grew by {grown_mib} MiB");
    let t = produce_and_consume(&node, "others");
    assert!(t < Duration::from_secs(10), "{t:?}");
    eprintln!(
        "never-reading clients: RSS {before} KiB before, {during} KiB during (+{grown_mib} MiB)"
    );
}
