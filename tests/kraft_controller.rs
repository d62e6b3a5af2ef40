//! The controller on a real three-node quorum, driven over the wire the way a broker and an
//! admin client drive Kafka's: a broker registers and heartbeats (BrokerRegistration 62,
//! BrokerHeartbeat 63), topics are created (CreateTopics 19), the metadata survives the death
//! of the active controller, and a broker that stops heartbeating is fenced.
#![allow(clippy::disallowed_methods)] // black-box tests wait on real time

mod common;

use bytes::Bytes;
use common::make_cluster;
use kafka_protocol::messages::{
    broker_registration_request, create_partitions_request, create_topics_request, ApiKey,
    BrokerHeartbeatRequest, BrokerId, BrokerRegistrationRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteTopicsRequest, RequestKind, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use ketch::protocol::frame::{decode_response, encode_request};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn call(port: u16, api_key: ApiKey, version: i16, body: &RequestKind) -> Option<ResponseKind> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(&encode_request(1, "test-broker", api_key, version, body).ok()?)
        .ok()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).ok()?;
    decode_response(api_key, version, Bytes::from(frame))
        .ok()
        .map(|(_, r)| r)
}

fn error_code(r: &ResponseKind) -> i16 {
    match r {
        ResponseKind::BrokerRegistration(r) => r.error_code,
        ResponseKind::BrokerHeartbeat(r) => r.error_code,
        ResponseKind::CreateTopics(r) => r.topics.first().map_or(-1, |t| t.error_code),
        ResponseKind::DeleteTopics(r) => r.responses.first().map_or(-1, |t| t.error_code),
        ResponseKind::CreatePartitions(r) => r.results.first().map_or(-1, |t| t.error_code),
        _ => -1,
    }
}

/// Sends to every controller until the active one answers (others say NOT_CONTROLLER, 41).
fn to_active(
    ports: &[u16],
    alive: &[bool],
    api_key: ApiKey,
    version: i16,
    body: &RequestKind,
) -> ResponseKind {
    let start = Instant::now();
    loop {
        for (port, up) in ports.iter().zip(alive) {
            if !up {
                continue;
            }
            if let Some(r) = call(*port, api_key, version, body) {
                if error_code(&r) != 41 {
                    return r;
                }
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no active controller answered {api_key:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn create_topic(name: &str, partitions: i32, rf: i16) -> RequestKind {
    RequestKind::CreateTopics(
        CreateTopicsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)]),
    )
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.into()))
}

fn delete_topic(name: &str) -> RequestKind {
    RequestKind::DeleteTopics(
        DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(name)])
            .with_timeout_ms(5000),
    )
}

fn grow_topic(name: &str, count: i32) -> RequestKind {
    RequestKind::CreatePartitions(
        CreatePartitionsRequest::default()
            .with_timeout_ms(5000)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(topic_name(name))
                    .with_count(count),
            ]),
    )
}

fn heartbeat(broker_epoch: i64, offset: i64) -> RequestKind {
    RequestKind::BrokerHeartbeat(
        BrokerHeartbeatRequest::default()
            .with_broker_id(BrokerId(100))
            .with_broker_epoch(broker_epoch)
            .with_current_metadata_offset(offset),
    )
}

#[test]
fn brokers_register_topics_are_created_and_metadata_survives_failover() {
    let dir = std::env::temp_dir().join(format!("ketch-controller-{}", std::process::id()));
    let mut cluster = make_cluster(&dir, "broker.session.timeout.ms=3000\n");
    for i in 0..3 {
        cluster.start(i);
    }
    let (leader, epoch, _) = cluster.wait_for_leader(0, Duration::from_secs(20));
    let ports = cluster.ports.clone();
    let mut alive = vec![true; 3];

    // No broker yet: nowhere to place a replica (INVALID_REPLICATION_FACTOR, 38).
    let r = to_active(
        &ports,
        &alive,
        ApiKey::CreateTopics,
        7,
        &create_topic("early", 1, 1),
    );
    assert_eq!(error_code(&r), 38, "{r:?}");

    // A broker registers: it gets a broker epoch and starts fenced.
    let registration = RequestKind::BrokerRegistration(
        BrokerRegistrationRequest::default()
            .with_broker_id(BrokerId(100))
            .with_cluster_id(StrBytes::from_string("ignored".into()))
            .with_incarnation_id(uuid::Uuid::from_u128(0x1234))
            .with_listeners(vec![broker_registration_request::Listener::default()
                .with_name(StrBytes::from_static_str("PLAINTEXT"))
                .with_host(StrBytes::from_static_str("localhost"))
                .with_port(9092)]),
    );
    let ResponseKind::BrokerRegistration(reg) =
        to_active(&ports, &alive, ApiKey::BrokerRegistration, 4, &registration)
    else {
        panic!("not a registration response")
    };
    assert_eq!(reg.error_code, 0);
    let broker_epoch = reg.broker_epoch;
    assert!(broker_epoch > 0);
    // Caught up with its own registration: unfenced.
    let ResponseKind::BrokerHeartbeat(hb) = to_active(
        &ports,
        &alive,
        ApiKey::BrokerHeartbeat,
        1,
        &heartbeat(broker_epoch, broker_epoch),
    ) else {
        panic!()
    };
    assert_eq!(
        (hb.error_code, hb.is_caught_up, hb.is_fenced),
        (0, true, false),
        "{hb:?}"
    );
    // A stale epoch is refused (STALE_BROKER_EPOCH, 77).
    let r = to_active(
        &ports,
        &alive,
        ApiKey::BrokerHeartbeat,
        1,
        &heartbeat(broker_epoch + 1000, broker_epoch),
    );
    assert_eq!(error_code(&r), 77);

    let ResponseKind::CreateTopics(created) = to_active(
        &ports,
        &alive,
        ApiKey::CreateTopics,
        7,
        &create_topic("orders", 3, 1),
    ) else {
        panic!()
    };
    let t = &created.topics[0];
    assert_eq!(
        (t.error_code, t.num_partitions, t.replication_factor),
        (0, 3, 1),
        "{t:?}"
    );
    assert!(!t.topic_id.is_nil());
    let r = to_active(
        &ports,
        &alive,
        ApiKey::CreateTopics,
        7,
        &create_topic("orders", 3, 1),
    );
    assert_eq!(error_code(&r), 36, "TOPIC_ALREADY_EXISTS");
    // CreatePartitions grows it; shrinking is refused (INVALID_PARTITIONS, 37).
    let grow = |n| {
        to_active(
            &ports,
            &alive,
            ApiKey::CreatePartitions,
            3,
            &grow_topic("orders", n),
        )
    };
    assert_eq!(error_code(&grow(5)), 0);
    assert_eq!(error_code(&grow(2)), 37);
    // DeleteTopics removes a topic; deleting it again: UNKNOWN_TOPIC_OR_PARTITION (3).
    let create = to_active(
        &ports,
        &alive,
        ApiKey::CreateTopics,
        7,
        &create_topic("doomed", 1, 1),
    );
    assert_eq!(error_code(&create), 0);
    let delete = || {
        to_active(
            &ports,
            &alive,
            ApiKey::DeleteTopics,
            5,
            &delete_topic("doomed"),
        )
    };
    assert_eq!(error_code(&delete()), 0);
    assert_eq!(error_code(&delete()), 3);

    // The active controller dies; the new one has replayed the metadata log.
    cluster.kill((leader - 1) as usize);
    alive[(leader - 1) as usize] = false;
    cluster.wait_for_leader(epoch, Duration::from_secs(20));
    let r = to_active(
        &ports,
        &alive,
        ApiKey::CreateTopics,
        7,
        &create_topic("orders", 3, 1),
    );
    assert_eq!(error_code(&r), 36, "the topic survived the failover");
    let r = to_active(
        &ports,
        &alive,
        ApiKey::CreatePartitions,
        3,
        &grow_topic("orders", 5),
    );
    assert_eq!(error_code(&r), 37, "and so did its 5 partitions");
    let r = to_active(
        &ports,
        &alive,
        ApiKey::DeleteTopics,
        5,
        &delete_topic("doomed"),
    );
    assert_eq!(error_code(&r), 3, "and so did the deletion");
    let ResponseKind::BrokerHeartbeat(hb) = to_active(
        &ports,
        &alive,
        ApiKey::BrokerHeartbeat,
        1,
        &heartbeat(broker_epoch, broker_epoch),
    ) else {
        panic!()
    };
    assert_eq!(
        (hb.error_code, hb.is_fenced),
        (0, false),
        "the registration survived: {hb:?}"
    );

    // The broker goes silent past broker.session.timeout.ms: fenced, so nothing can be placed.
    std::thread::sleep(Duration::from_millis(4_500));
    let r = to_active(
        &ports,
        &alive,
        ApiKey::CreateTopics,
        7,
        &create_topic("later", 1, 1),
    );
    assert_eq!(error_code(&r), 38, "the silent broker was fenced: {r:?}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Combined nodes register their broker half by themselves; `ketch topics` then creates a topic
/// with three replicas, which needs all three brokers registered and unfenced.
#[test]
fn combined_nodes_register_as_brokers_and_ketch_topics_creates_topics() {
    let dir = std::env::temp_dir().join(format!("ketch-combined-{}", std::process::id()));
    let mut cluster = common::make_combined_cluster(&dir, "broker.heartbeat.interval.ms=200\n");
    for i in 0..3 {
        cluster.start(i);
    }
    cluster.wait_for_leader(0, Duration::from_secs(20));
    let start = Instant::now();
    let created = loop {
        let (ok, out) = common::topics(
            &cluster,
            &[
                "--create",
                "--topic",
                "events",
                "--partitions",
                "3",
                "--replication-factor",
                "3",
            ],
        );
        if ok {
            break out;
        }
        // Until all three brokers are unfenced the controller cannot place three replicas.
        assert!(out.contains("error code 38"), "{out}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "brokers never registered: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(created.contains("Created topic events."), "{created}");
    let (ok, out) = common::topics(
        &cluster,
        &["--create", "--topic", "events", "--partitions", "3"],
    );
    assert!(
        !ok && out.contains("already exists") && out.contains("error code 36"),
        "{out}"
    );
    let (ok, out) = common::topics(
        &cluster,
        &["--alter", "--topic", "events", "--partitions", "6"],
    );
    assert!(ok, "{out}");
    let (ok, out) = common::topics(&cluster, &["--delete", "--topic", "events"]);
    assert!(ok, "{out}");
    let (ok, out) = common::topics(&cluster, &["--delete", "--topic", "events"]);
    assert!(!ok && out.contains("error code 3"), "{out}");
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
}
