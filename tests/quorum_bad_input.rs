//! Hostile and mistaken input on the controller listener of a real `ketch server`: garbage, a
//! length prefix over the limit, a request from another cluster, a vote from a non-voter, a
//! fetch with a stale epoch, an ApiVersions version from the future. Each gets Kafka's error
//! code or loses only its own connection, and the node keeps serving.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};
use ketch::model::NodeId;
use ketch::protocol::frame::{decode_response, encode_request};
use ketch::quorum::wire::{request_to_wire, response_from_wire};
use ketch::raft::{Message, RaftError};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::KETCH;

struct Node(Child);
impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_single_node(dir: &std::path::Path) -> (Node, u16, String) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let port = common::free_port();
    let config = dir.join("server.properties");
    std::fs::write(
        &config,
        format!(
            "process.roles=controller\nnode.id=1\ncontroller.quorum.voters=1@127.0.0.1:{port}\n\
             listeners=CONTROLLER://127.0.0.1:{port}\ncontroller.listener.names=CONTROLLER\nlog.dirs={}\n",
            dir.join("data").display()
        ),
    )
    .unwrap();
    let cluster_id = "MkU3OEVBNTcwNTJENDM2Qg".to_string();
    assert!(Command::new(KETCH)
        .args(["storage", "format", "-t", &cluster_id, "-c"])
        .arg(&config)
        .status()
        .unwrap()
        .success());
    let log = std::fs::File::create(dir.join("node.log")).unwrap();
    let child = Command::new(KETCH)
        .arg("server")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    (Node(child), port, cluster_id)
}

fn connect(port: u16) -> TcpStream {
    let start = Instant::now();
    loop {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", port)) {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            return s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the node never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn read_frame(s: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).ok()?;
    Some(Bytes::from(body))
}

/// Sends a quorum message as a Kafka request and returns the core's view of the answer.
fn exchange(port: u16, message: &Message, cluster_id: &str) -> Message {
    let (api_key, version, body) = request_to_wire(NodeId(1), message, cluster_id).unwrap();
    let mut s = connect(port);
    s.write_all(&encode_request(9, "test", api_key, version, &body).unwrap())
        .unwrap();
    let frame = read_frame(&mut s).expect("an answer");
    let (correlation_id, response) = decode_response(api_key, version, frame).unwrap();
    assert_eq!(correlation_id, 9);
    response_from_wire(message, response).unwrap()
}

fn leader_epoch(port: u16) -> i32 {
    let start = Instant::now();
    loop {
        let out = Command::new(KETCH)
            .args([
                "metadata-quorum",
                "--bootstrap-server",
                &format!("127.0.0.1:{port}"),
                "describe",
                "--status",
            ])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if text.contains("LeaderId:               1") {
            let epoch = text
                .lines()
                .find(|l| l.starts_with("LeaderEpoch:"))
                .unwrap();
            return epoch.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no leader: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn bad_input_gets_an_error_or_loses_its_connection_and_the_node_keeps_serving() {
    let dir = std::env::temp_dir().join(format!("ketch-quorum-bad-{}", std::process::id()));
    let (_node, port, cluster_id) = start_single_node(&dir);
    let epoch = leader_epoch(port);

    // Garbage: the connection is closed.
    let mut s = connect(port);
    s.write_all(b"\x00\x00\x00\x10this is not kafka").unwrap();
    assert!(read_frame(&mut s).is_none());
    // A length prefix of 2 GiB - 1: refused before anything is allocated for it.
    let mut s = connect(port);
    s.write_all(&i32::MAX.to_be_bytes()).unwrap();
    assert!(read_frame(&mut s).is_none());

    // Another cluster: error 104 (INCONSISTENT_CLUSTER_ID).
    let vote = Message::VoteRequest {
        epoch: epoch + 1,
        candidate: NodeId(1),
        last_epoch: 0,
        end_offset: 0,
        pre_vote: true,
    };
    match exchange(port, &vote, "AAAAAAAAAAAAAAAAAAAAAA") {
        Message::VoteResponse {
            granted: false,
            error: Some(RaftError::InconsistentClusterId),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // A vote from a node that is not a voter: error 94 (INCONSISTENT_VOTER_SET).
    let vote = Message::VoteRequest {
        epoch: epoch + 1,
        candidate: NodeId(99),
        last_epoch: 9,
        end_offset: 999,
        pre_vote: false,
    };
    match exchange(port, &vote, &cluster_id) {
        Message::VoteResponse {
            granted: false,
            error: Some(RaftError::InconsistentVoterSet),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // A fetch in an epoch older than the leader's: error 74 (FENCED_LEADER_EPOCH).
    let fetch = Message::FetchRequest {
        epoch: epoch - 1,
        replica: NodeId(7),
        fetch_offset: 0,
        last_fetched_epoch: 0,
    };
    match exchange(port, &fetch, &cluster_id) {
        Message::FetchResponse {
            error: Some(RaftError::FencedLeaderEpoch),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // A snapshot the leader does not hold: error 98 (SNAPSHOT_NOT_FOUND).
    let fetch_snapshot = Message::FetchSnapshotRequest {
        epoch,
        replica: NodeId(7),
        snapshot: ketch::raft::SnapshotId {
            end_offset: 1_000_000,
            epoch,
        },
        position: 0,
    };
    match exchange(port, &fetch_snapshot, &cluster_id) {
        Message::FetchSnapshotResponse {
            error: Some(RaftError::SnapshotNotFound),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    // ApiVersions from the future: error 35 and the full list, in a v0 answer (KIP-511).
    let mut s = connect(port);
    let body = RequestKind::ApiVersions(Default::default());
    let mut frame = encode_request(5, "test", ApiKey::ApiVersions, 3, &body)
        .unwrap()
        .to_vec();
    frame[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&frame).unwrap();
    let (_, response) =
        decode_response(ApiKey::ApiVersions, 0, read_frame(&mut s).unwrap()).unwrap();
    let ResponseKind::ApiVersions(r) = response else {
        panic!()
    };
    assert_eq!(r.error_code, 35);
    assert!(r.api_keys.iter().any(|k| k.api_key == ApiKey::Vote as i16));

    // Still serving, still the same leader.
    assert_eq!(leader_epoch(port), epoch);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A 20-byte Vote request whose topics array claims 0xFFFFFFEF elements once made
/// `kafka-protocol` call `Vec::with_capacity` for ~343 GB and abort the process; the vendored
/// codec now checks the count against the bytes left, and the connection is closed.
#[test]
fn a_request_claiming_a_huge_array_does_not_kill_the_node() {
    let dir = std::env::temp_dir().join(format!("ketch-quorum-huge-{}", std::process::id()));
    let (_node, port, _) = start_single_node(&dir);
    let epoch = leader_epoch(port);
    // Request header v2 for Vote (52) v2, then: null cluster id, voter id 1, and a compact
    // array length (varint of n + 1) of 0xFFFFFFF0.
    let mut msg = Vec::new();
    msg.extend_from_slice(&52i16.to_be_bytes());
    msg.extend_from_slice(&2i16.to_be_bytes());
    msg.extend_from_slice(&7i32.to_be_bytes());
    msg.extend_from_slice(&4i16.to_be_bytes());
    msg.extend_from_slice(b"test");
    msg.push(0); // no tagged fields
    msg.push(0); // cluster id: null
    msg.extend_from_slice(&1i32.to_be_bytes());
    msg.extend_from_slice(&[0xF0, 0xFF, 0xFF, 0xFF, 0x0F]);
    let mut s = connect(port);
    s.write_all(&(msg.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&msg).unwrap();
    let _ = read_frame(&mut s);
    assert_eq!(
        leader_epoch(port),
        epoch,
        "the node must survive and keep serving"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
