//! Bad input on the Kafka client listener: each bad connection gets an error or is closed, and
//! the broker keeps serving everyone else (checked with kcat after each case).
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use common::{request, Node};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

fn connect(node: &Node) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

/// Reads until the broker closes the connection; fails if it answers instead or stays open.
fn expect_closed(mut s: TcpStream, what: &str) {
    let mut buf = [0u8; 64];
    match s.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("{what}: expected the connection closed, got {other:?}"),
    }
}

fn read_response(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    body
}

fn still_serving(node: &Node) {
    let out = Command::new("kcat")
        .args(["-b", &node.bootstrap(), "-L", "-m", "5"])
        .output()
        .expect("kcat is not installed (ci/test installs the Debian package)");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(" 1 brokers:"),
        "the broker stopped serving; logs in {}",
        node.dir.display()
    );
}

#[test]
fn bad_connections_are_closed_and_the_broker_keeps_serving() {
    let node = Node::new("bad-input", "socket.request.max.bytes=1048576\n");

    // Garbage: an API key that does not exist.
    let mut s = connect(&node);
    s.write_all(&[0, 0, 0, 8, 0x77, 0x77, 0, 0, 0, 0, 0, 1])
        .unwrap();
    expect_closed(s, "unknown api key");
    still_serving(&node);

    // A length prefix over socket.request.max.bytes: closed before any body is read.
    let mut s = connect(&node);
    s.write_all(&0x7fff_ffffi32.to_be_bytes()).unwrap();
    expect_closed(s, "2 GiB claim");
    still_serving(&node);

    // A negative length.
    let mut s = connect(&node);
    s.write_all(&(-5i32).to_be_bytes()).unwrap();
    expect_closed(s, "negative length");

    // An unsupported Produce version (v1: below what is advertised).
    let mut s = connect(&node);
    s.write_all(&request(0, 1, 7, &[])).unwrap();
    expect_closed(s, "unsupported produce version");
    still_serving(&node);

    // A truncated body: the header promises more than comes, then the client goes away.
    let mut s = connect(&node);
    let full = request(3, 1, 9, &[0, 0, 0, 1, 0, 5, b'a']);
    s.write_all(&full[..full.len() - 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    expect_closed(s, "truncated body");

    // A small Metadata request whose topic array claims 2^31-1 entries.
    let mut s = connect(&node);
    s.write_all(&request(3, 1, 11, &0x7fff_ffffi32.to_be_bytes()))
        .unwrap();
    expect_closed(s, "huge array claim");
    still_serving(&node);

    // An unsupported ApiVersions version is answered (KIP-511): error 35 and the list, v0 header.
    let mut s = connect(&node);
    s.write_all(&request(18, 99, 13, &[])).unwrap();
    let r = read_response(&mut s);
    assert_eq!(i32::from_be_bytes(r[0..4].try_into().unwrap()), 13);
    assert_eq!(i16::from_be_bytes(r[4..6].try_into().unwrap()), 35);
    let count = i32::from_be_bytes(r[6..10].try_into().unwrap());
    assert!(count > 10, "the full list of APIs: {count}");

    // A request before ApiVersions is served (Kafka does not require ApiVersions first):
    // Metadata v1 for all topics (null array).
    s.write_all(&request(3, 1, 14, &(-1i32).to_be_bytes()))
        .unwrap();
    let r = read_response(&mut s);
    assert_eq!(i32::from_be_bytes(r[0..4].try_into().unwrap()), 14);
    // brokers array: one broker.
    assert_eq!(i32::from_be_bytes(r[4..8].try_into().unwrap()), 1);

    // Valid and invalid interleaved on one connection: the valid ones are answered, the first
    // invalid one closes it.
    s.write_all(&request(18, 0, 15, &[])).unwrap();
    let r = read_response(&mut s);
    assert_eq!(i32::from_be_bytes(r[0..4].try_into().unwrap()), 15);
    s.write_all(&[0, 0, 0, 8, 0x66, 0x66, 0, 0, 0, 0, 0, 16])
        .unwrap();
    expect_closed(s, "invalid after valid");
    still_serving(&node);
}

/// Produce v3 of `records` to partition 0 of `topic` with `acks`.
fn produce_v3(topic: &str, acks: i16, records: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    b.extend_from_slice(&acks.to_be_bytes());
    b.extend_from_slice(&5_000i32.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // one topic
    b.extend_from_slice(&(topic.len() as i16).to_be_bytes());
    b.extend_from_slice(topic.as_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // one partition
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(records);
    b
}

/// acks=0 gets no answer; a refused one closes the connection, as Kafka does, since that is
/// how a producer that reads no answers learns to refresh its metadata.
#[test]
fn acks_zero_is_unanswered_and_a_refused_one_closes_the_connection() {
    let node = Node::new("acks-zero", "");
    let b = node.bootstrap();
    let (ok, out, err) = node.ketch(
        &[
            "topics",
            "--bootstrap-server",
            &b,
            "--create",
            "--topic",
            "zero",
            "--partitions",
            "1",
            "--replication-factor",
            "1",
        ],
        None,
    );
    assert!(ok, "{out}{err}");
    let batch = ketch::protocol::record_batch::build_batch(0, 1_700_000_000_000, &[(None, b"v")]);

    // Accepted: no answer, and the connection goes on (the next request's answer is the next
    // thing on it).
    let mut s = connect(&node);
    s.write_all(&request(0, 3, 21, &produce_v3("zero", 0, &batch)))
        .unwrap();
    s.write_all(&request(18, 0, 22, &[])).unwrap();
    let r = read_response(&mut s);
    assert_eq!(i32::from_be_bytes(r[0..4].try_into().unwrap()), 22);

    // Refused (no such topic): closed, and the broker serves everyone else.
    s.write_all(&request(0, 3, 23, &produce_v3("no-such-topic", 0, &batch)))
        .unwrap();
    expect_closed(s, "refused acks=0 produce");
    still_serving(&node);

    // The accepted record is there.
    let out = Command::new("kcat")
        .args(["-b", &b, "-C", "-t", "zero", "-o", "beginning", "-e", "-q"])
        .output()
        .expect("kcat");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
}
