//! Tests of the controller: each rule on its own, and a property test that the records are the
//! whole truth (replaying them into an empty image gives the controller's image) and that the
//! image's invariants hold after any sequence of commands.

use super::logic::validate_topic_name;
use super::*;
use proptest::prelude::*;

/// A broker process's incarnation id: a UUID, as on the wire.
fn incarnation(n: u64) -> String {
    format!("00000000-0000-4000-8000-{n:012x}")
}

fn endpoint(port: u16) -> Vec<Endpoint> {
    vec![Endpoint {
        name: "PLAINTEXT".into(),
        host: "localhost".into(),
        port,
    }]
}

/// A controller with `n` registered, caught-up, unfenced brokers (ids 1..=n).
fn with_brokers(n: i32) -> (Controller, Vec<MetadataRecord>) {
    let mut c = Controller::new(ControllerConfig::default(), 7);
    let mut log = Vec::new();
    for id in 1..=n {
        let (records, epoch) = c
            .register_broker(
                id,
                &incarnation(id as u64),
                endpoint(9000 + id as u16),
                None,
                0,
            )
            .unwrap();
        log.extend(records);
        let (reply, records) = c
            .heartbeat(id, epoch, c.image().offset, false, false, 0)
            .unwrap();
        assert!(reply.is_caught_up && !reply.is_fenced);
        log.extend(records);
    }
    (c, log)
}

fn topic(name: &str, partitions: i32, rf: i16) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        partitions,
        replication_factor: rf,
        configs: vec![],
    }
}

#[test]
fn a_broker_is_fenced_until_it_heartbeats_caught_up() {
    let mut c = Controller::new(ControllerConfig::default(), 1);
    let (_, epoch) = c
        .register_broker(1, &incarnation(1), endpoint(9092), None, 0)
        .unwrap();
    assert!(
        c.image().brokers[&1].fenced,
        "KIP-631: a registered broker starts fenced"
    );
    let (reply, records) = c.heartbeat(1, epoch, epoch - 1, false, false, 10).unwrap();
    assert!(!reply.is_caught_up && reply.is_fenced && records.is_empty());
    let (reply, records) = c.heartbeat(1, epoch, epoch, false, false, 20).unwrap();
    assert!(reply.is_caught_up && !reply.is_fenced);
    assert_eq!(
        records,
        vec![MetadataRecord::UnfenceBroker {
            broker_id: 1,
            broker_epoch: epoch
        }]
    );
    assert!(matches!(
        c.heartbeat(1, epoch + 5, epoch, false, false, 30),
        Err(ApiError::StaleBrokerEpoch(_))
    ));
}

#[test]
fn a_live_broker_id_cannot_be_taken_by_another_process() {
    let (mut c, _) = with_brokers(1);
    let err = c
        .register_broker(1, &incarnation(99), endpoint(1), None, 100)
        .unwrap_err();
    assert_eq!(err.code(), 101);
    // An incarnation id must be a UUID (the record holds it as one).
    let err = c
        .register_broker(2, "not-a-uuid", endpoint(1), None, 100)
        .unwrap_err();
    assert_eq!(err.code(), 42);
    // After its session expired it can.
    c.tick(100_000);
    assert!(c
        .register_broker(1, &incarnation(99), endpoint(1), None, 100_001)
        .is_ok());
}

/// A new active controller gives every broker a fresh session; the brokers that stay silent
/// after it are the ones the shell probes, and one found gone is fenced at once (its
/// leaderships move) instead of a session later.
#[test]
fn brokers_silent_since_activation_can_be_fenced_at_once() {
    let (mut c, _) = with_brokers(3);
    c.create_topics(&[topic("a", 1, 3)]).pop().unwrap().unwrap();
    c.activate(1_000);
    let epoch2 = c.image().brokers[&2].broker_epoch;
    c.heartbeat(2, epoch2, c.image().offset, false, false, 1_100)
        .unwrap();
    let silent: Vec<i32> = c.silent_brokers(1_000).iter().map(|b| b.0).collect();
    assert_eq!(silent, vec![1, 3]);
    let leader = c.image().topic_by_name("a").unwrap().partitions[&0].leader;
    let epoch = c.image().brokers[&leader].broker_epoch;
    // A stale epoch changes nothing; the live one fences and moves leadership.
    assert!(c.connection_lost(leader, epoch - 1).is_empty());
    assert!(!c.connection_lost(leader, epoch).is_empty());
    assert!(c.image().brokers[&leader].fenced);
    let p = &c.image().topic_by_name("a").unwrap().partitions[&0];
    assert_ne!(p.leader, leader);
    assert!(!p.isr.contains(&leader));
}

/// A combined node restarted after a crash: its controller knows the broker registering with
/// its own node id and this process's incarnation is itself, so the dead incarnation's session
/// is not waited out (anyone else's is).
#[test]
fn a_combined_nodes_own_broker_replaces_its_dead_incarnation_at_once() {
    let config = ControllerConfig {
        colocated_broker: Some((1, incarnation(77))),
        ..ControllerConfig::default()
    };
    let mut c = Controller::new(config, 7);
    for id in 1..=2 {
        let (_, epoch) = c
            .register_broker(id, &incarnation(id as u64), endpoint(9000), None, 0)
            .unwrap();
        c.heartbeat(id, epoch, c.image().offset, false, false, 0)
            .unwrap();
    }
    assert_eq!(
        c.register_broker(2, &incarnation(77), endpoint(1), None, 100)
            .unwrap_err()
            .code(),
        101
    );
    let (records, epoch) = c
        .register_broker(1, &incarnation(77), endpoint(1), None, 100)
        .unwrap();
    assert!(!records.is_empty());
    assert_eq!(c.image().brokers[&1].incarnation_id, incarnation(77));
    assert_eq!(c.image().brokers[&1].broker_epoch, epoch);
}

#[test]
fn topics_spread_replicas_and_leaders_over_unfenced_brokers() {
    let (mut c, _) = with_brokers(3);
    c.create_topics(&[topic("orders", 6, 3)])[0]
        .as_ref()
        .unwrap();
    let t = c.image().topic_by_name("orders").unwrap();
    assert_eq!(t.partitions.len(), 6);
    let mut leaders = std::collections::BTreeMap::new();
    for p in t.partitions.values() {
        assert_eq!(p.replicas.len(), 3);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, p.replicas[0]);
        *leaders.entry(p.leader).or_insert(0) += 1;
    }
    assert_eq!(
        leaders.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "leaders spread evenly"
    );
}

#[test]
fn create_topic_errors_carry_kafkas_codes() {
    let (mut c, _) = with_brokers(1);
    let results = c.create_topics(&[
        topic("a", 1, 3),
        topic("b", 0, 1),
        topic("bad name!", 1, 1),
        topic("c", -1, -1),
    ]);
    assert_eq!(results[0].as_ref().unwrap_err().code(), 38);
    assert!(results[0]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("larger than available brokers: 1"));
    assert_eq!(results[1].as_ref().unwrap_err().code(), 37);
    assert_eq!(results[2].as_ref().unwrap_err().code(), 17);
    assert!(
        results[3].is_ok(),
        "defaults from num.partitions and default.replication.factor"
    );
    assert_eq!(
        c.create_topics(&[topic("c", 1, 1)])[0]
            .as_ref()
            .unwrap_err()
            .code(),
        36
    );
    assert!(validate_topic_name(&"x".repeat(249)).is_ok());
    assert!(validate_topic_name(&"x".repeat(250)).is_err());
    assert!(validate_topic_name("..").is_err());
}

#[test]
fn a_silent_broker_is_fenced_and_its_partitions_get_new_leaders_from_the_isr() {
    let (mut c, _) = with_brokers(3);
    c.create_topics(&[topic("t", 3, 3)])[0].as_ref().unwrap();
    let before = c.image().topic_by_name("t").unwrap().clone();
    // Brokers 2 and 3 keep heartbeating; broker 1 goes silent.
    for id in [2, 3] {
        let epoch = c.image().brokers[&id].broker_epoch;
        c.heartbeat(id, epoch, c.image().offset, false, false, 8_000)
            .unwrap();
    }
    let records = c.tick(9_500);
    assert!(matches!(
        records[0],
        MetadataRecord::FenceBroker { broker_id: 1, .. }
    ));
    let after = c.image().topic_by_name("t").unwrap();
    for (i, p) in &after.partitions {
        assert!(!p.isr.contains(&1), "fenced broker out of the ISR");
        assert_ne!(p.leader, 1);
        assert!(p.isr.contains(&p.leader));
        let was = &before.partitions[i];
        if was.leader == 1 {
            assert_eq!(
                p.leader_epoch,
                was.leader_epoch + 1,
                "a leader change bumps the leader epoch"
            );
        } else {
            assert_eq!(p.leader, was.leader);
        }
    }
}

#[test]
fn the_last_isr_member_stays_and_a_partition_without_a_live_replica_has_no_leader() {
    let (mut c, _) = with_brokers(1);
    c.create_topics(&[topic("solo", 1, 1)])[0].as_ref().unwrap();
    c.tick(100_000);
    let p = &c.image().topic_by_name("solo").unwrap().partitions[&0];
    assert_eq!(p.isr, vec![1]);
    assert_eq!(p.leader, -1);
}

#[test]
fn delete_and_grow_topics() {
    let (mut c, _) = with_brokers(2);
    c.create_topics(&[topic("t", 2, 2)])[0].as_ref().unwrap();
    c.create_partitions("t", 5).unwrap();
    assert_eq!(c.image().topic_by_name("t").unwrap().partitions.len(), 5);
    assert_eq!(c.create_partitions("t", 3).unwrap_err().code(), 37);
    assert_eq!(c.create_partitions("nope", 3).unwrap_err().code(), 3);
    c.delete_topics(&["t".to_string()])[0].as_ref().unwrap();
    assert!(c.image().topic_by_name("t").is_none());
    assert_eq!(
        c.delete_topics(&["t".to_string()])[0]
            .as_ref()
            .unwrap_err()
            .code(),
        3
    );
    // A deleted name can be used again, with a new id.
    c.create_topics(&[topic("t", 1, 1)])[0].as_ref().unwrap();
    // The offsets topic is internal: never deleted.
    c.create_topics(&[topic("__consumer_offsets", 2, 1)])[0]
        .as_ref()
        .unwrap();
    let refused = c.delete_topics(&["__consumer_offsets".to_string()]);
    assert_eq!(refused[0].as_ref().unwrap_err().code(), 42);
    assert!(c.image().topic_by_name("__consumer_offsets").is_some());
}

#[test]
fn dynamic_broker_configs_are_checked_and_recorded() {
    let (mut c, _) = with_brokers(1);
    let set = |k: &str, v: &str| vec![(k.to_string(), Some(v.to_string()))];
    c.alter_broker_configs("", &set("log.retention.ms", "60000"))
        .unwrap();
    c.alter_broker_configs("1", &set("min.insync.replicas", "2"))
        .unwrap();
    assert_eq!(
        c.image().configs[&("broker".to_string(), String::new())]["log.retention.ms"],
        "60000"
    );
    assert_eq!(
        c.image().configs[&("broker".to_string(), "1".to_string())]["min.insync.replicas"],
        "2"
    );
    for (name, key, value) in [
        ("", "num.partitions", "3"),
        ("", "log.retention.ms", "soon"),
        ("x", "log.retention.ms", "1"),
    ] {
        assert_eq!(
            c.alter_broker_configs(name, &set(key, value))
                .unwrap_err()
                .code(),
            40,
            "{name} {key}={value}"
        );
    }
    c.alter_broker_configs("", &[("log.retention.ms".to_string(), None)])
        .unwrap();
    assert!(!c
        .image()
        .configs
        .contains_key(&("broker".to_string(), String::new())));
}

/// KIP-554's and the authorizer's records: Kafka's layouts, applied to the image and kept by
/// a snapshot.
#[test]
fn scram_and_acl_records_encode_apply_and_snapshot() {
    use crate::controller::image::MetadataImage;
    let records = [
        MetadataRecord::UserScramCredential {
            name: "alice".into(),
            mechanism: 2,
            salt: vec![1, 2, 3],
            stored_key: vec![4; 64],
            server_key: vec![5; 64],
            iterations: 8192,
        },
        MetadataRecord::AccessControlEntry {
            id: "AAAAAAAAAAAAAAAAAAAAAQ".into(),
            resource_type: 2,
            resource_name: "orders".into(),
            pattern_type: 3,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        },
    ];
    let bytes = records[0].encode().unwrap();
    // Frame version 1, api key 11, version 0, then the name as a compact string.
    assert_eq!(&bytes[..4], &[1, 11, 0, 6]);
    let mut image = MetadataImage::new();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(&MetadataRecord::decode(&r.encode().unwrap()).unwrap(), r);
        image.apply(i as i64, r).unwrap();
    }
    assert_eq!(image.scram[&("alice".to_string(), 2)].iterations, 8192);
    assert_eq!(image.acls.len(), 1);
    let again = crate::controller::snapshot::image_from_records(
        &crate::controller::snapshot::image_records(&image),
        1,
    )
    .unwrap();
    assert_eq!(again.scram, image.scram);
    assert_eq!(again.acls, image.acls);
    for (i, r) in [
        MetadataRecord::RemoveUserScramCredential {
            name: "alice".into(),
            mechanism: 2,
        },
        MetadataRecord::RemoveAccessControlEntry {
            id: "AAAAAAAAAAAAAAAAAAAAAQ".into(),
        },
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(&MetadataRecord::decode(&r.encode().unwrap()).unwrap(), r);
        image.apply(2 + i as i64, r).unwrap();
    }
    assert!(image.scram.is_empty() && image.acls.is_empty());
}

#[test]
fn records_survive_their_encoding() {
    let (_, log) = with_brokers(2);
    for r in log {
        assert_eq!(MetadataRecord::decode(&r.encode().unwrap()).unwrap(), r);
    }
    assert!(MetadataRecord::decode(b"{\"type\":\"Nope\"}").is_err());
    assert!(MetadataRecord::decode(b"garbage").is_err());
}

/// Kafka's bytes, field by field from its schemas (TopicRecord v0, FenceBrokerRecord v0,
/// PartitionChangeRecord v0 with its tagged Isr and Leader): frame version 1, api key, version,
/// then the flexible body.
#[test]
fn records_are_kafkas_bytes() {
    let id: Vec<u8> = (0u8..16).collect();
    let topic_id = crate::model::Uuid(id.clone().try_into().unwrap()).to_string();
    let topic = MetadataRecord::Topic {
        name: "foo".into(),
        topic_id: topic_id.clone(),
    };
    let mut want = vec![1, 2, 0, 4, b'f', b'o', b'o'];
    want.extend(&id);
    want.push(0);
    assert_eq!(topic.encode().unwrap(), want);

    let fence = MetadataRecord::FenceBroker {
        broker_id: 1,
        broker_epoch: 5,
    };
    assert_eq!(
        fence.encode().unwrap(),
        vec![1, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0]
    );

    let change = MetadataRecord::PartitionChange {
        topic_id: topic_id.clone(),
        partition: 0,
        isr: Some(vec![1, 2]),
        leader: Some(2),
    };
    let mut want = vec![1, 5, 0, 0, 0, 0, 0];
    want.extend(&id);
    want.extend([2, 0, 9, 3, 0, 0, 0, 1, 0, 0, 0, 2, 1, 4, 0, 0, 0, 2]);
    assert_eq!(change.encode().unwrap(), want);
    assert_eq!(MetadataRecord::decode(&want).unwrap(), change);

    // A Leader of -2 ("unchanged") and unknown tags decode to no change.
    let mut kafka = vec![1, 5, 0, 0, 0, 0, 0];
    kafka.extend(&id);
    kafka.extend([2, 1, 4, 0xff, 0xff, 0xff, 0xfe, 6, 1, 0]);
    assert_eq!(
        MetadataRecord::decode(&kafka).unwrap(),
        MetadataRecord::PartitionChange {
            topic_id,
            partition: 0,
            isr: None,
            leader: None,
        }
    );
    // Cut short anywhere, or with a byte too many: refused.
    for cut in 0..want.len() {
        assert!(MetadataRecord::decode(&want[..cut]).is_err(), "cut {cut}");
    }
    let mut long = want.clone();
    long.push(0);
    assert!(MetadataRecord::decode(&long).is_err());
    // Records of earlier ketch versions (JSON) still decode.
    let json = br#"{"type":"FenceBroker","broker_id":1,"broker_epoch":5}"#;
    assert_eq!(MetadataRecord::decode(json).unwrap(), fence);
}

#[derive(Debug, Clone)]
enum Command {
    Register(i32),
    Heartbeat(i32, bool),
    Tick(u64),
    Create(u8, i32, i16),
    Delete(u8),
    Grow(u8, i32),
    /// Set (`Some`) or remove `retention.ms` on a topic.
    Config(u8, Option<u32>),
    ProducerIds(i32),
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (1i32..6).prop_map(Command::Register),
        ((1i32..6), any::<bool>()).prop_map(|(b, f)| Command::Heartbeat(b, f)),
        (0u64..20_000).prop_map(Command::Tick),
        (0u8..5, 1i32..5, 1i16..4).prop_map(|(t, p, r)| Command::Create(t, p, r)),
        (0u8..5).prop_map(Command::Delete),
        (0u8..5, 1i32..8).prop_map(|(t, n)| Command::Grow(t, n)),
        (0u8..5, proptest::option::of(1u32..1_000_000)).prop_map(|(t, v)| Command::Config(t, v)),
        (1i32..6).prop_map(Command::ProducerIds),
    ]
}

proptest! {
    #[test]
    fn replaying_the_records_rebuilds_the_image_and_invariants_hold(commands in proptest::collection::vec(command(), 1..60)) {
        let mut c = Controller::new(ControllerConfig::default(), 3);
        let mut log: Vec<MetadataRecord> = Vec::new();
        let mut now = 0u64;
        for cmd in commands {
            now += 100;
            let records = match cmd {
                Command::Register(b) => c.register_broker(b, &incarnation(b as u64 * 1_000_000 + now), endpoint(1), None, now).map(|r| r.0).unwrap_or_default(),
                Command::Heartbeat(b, fence) => {
                    let epoch = c.image().brokers.get(&b).map_or(-1, |x| x.broker_epoch);
                    c.heartbeat(b, epoch, c.image().offset, fence, false, now).map(|r| r.1).unwrap_or_default()
                }
                Command::Tick(dt) => { now += dt; c.tick(now) }
                Command::Create(t, p, r) => c.create_topics(&[topic(&format!("t{t}"), p, r)]).pop().and_then(Result::ok).unwrap_or_default(),
                Command::Delete(t) => c.delete_topics(&[format!("t{t}")]).pop().and_then(Result::ok).unwrap_or_default(),
                Command::Grow(t, n) => c.create_partitions(&format!("t{t}"), n).unwrap_or_default(),
                Command::Config(t, v) => c
                    .alter_topic_configs(&format!("t{t}"), &[("retention.ms".to_string(), v.map(|v| v.to_string()))])
                    .unwrap_or_default(),
                Command::ProducerIds(b) => {
                    let epoch = c.image().brokers.get(&b).map_or(-1, |x| x.broker_epoch);
                    c.allocate_producer_ids(b, epoch).map(|r| r.0).unwrap_or_default()
                }
            };
            log.extend(records);
            // Invariants of the image.
            for t in c.image().topics.values() {
                for p in t.partitions.values() {
                    prop_assert!(p.isr.iter().all(|r| p.replicas.contains(r)));
                    prop_assert!(!p.isr.is_empty());
                    prop_assert!(p.leader == -1 || p.isr.contains(&p.leader));
                    if p.leader != -1 {
                        // A leader was chosen among unfenced brokers, or is a broker since fenced
                        // whose fencing moved it (checked above): never a fenced leader.
                        prop_assert!(c.image().brokers.get(&p.leader).is_some_and(|b| !b.fenced));
                    }
                }
            }
        }
        let mut replayed = MetadataImage::new();
        for (offset, r) in log.iter().enumerate() {
            let decoded = MetadataRecord::decode(&r.encode().unwrap()).unwrap();
            replayed.apply(offset as i64, &decoded).unwrap();
        }
        prop_assert_eq!(&replayed, c.image());
        // A snapshot's records rebuild the same image (KIP-630).
        let snapshot = image_records(c.image());
        let rebuilt = image_from_records(&snapshot, c.image().offset).unwrap();
        prop_assert_eq!(&rebuilt, c.image());
    }
}

/// KIP-497: AlterPartition only from the leader at its epochs, to an ISR of live replicas.
#[test]
fn isr_changes_come_from_the_leader_at_its_epochs() {
    let (mut c, _) = with_brokers(3);
    c.create_topics(&[topic("a", 1, 3)]).pop().unwrap().unwrap();
    let t = c.image().topic_by_name("a").unwrap().clone();
    let p = t.partitions[&0].clone();
    let (leader, follower) = (p.leader, p.replicas[1]);
    let epoch = c.image().brokers[&leader].broker_epoch;
    let shrunk: Vec<i32> = p.isr.iter().copied().filter(|r| *r != follower).collect();
    let refused = |c: &mut Controller, broker, le, pe, isr: &[i32]| {
        c.alter_partition(broker, -1, &t.topic_id, 0, le, pe, isr)
            .unwrap_err()
            .code()
    };
    assert_eq!(refused(&mut c, follower, p.leader_epoch, 0, &shrunk), 6);
    assert_eq!(refused(&mut c, leader, p.leader_epoch + 1, 0, &shrunk), 74);
    assert_eq!(refused(&mut c, leader, p.leader_epoch, 3, &shrunk), 95);
    assert_eq!(
        refused(&mut c, leader, p.leader_epoch, 0, &[leader, 42]),
        107
    );
    let (records, now) = c
        .alter_partition(leader, epoch, &t.topic_id, 0, p.leader_epoch, 0, &shrunk)
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(now.partition_epoch, 1);
    assert_eq!(
        now.leader_epoch, p.leader_epoch,
        "an ISR change keeps the leader epoch"
    );
    let mut sorted = shrunk.clone();
    sorted.sort_unstable();
    assert_eq!(now.isr, sorted);
}

/// ElectLeaders and auto.leader.rebalance.enable move leadership back to the preferred replica
/// once it is back in the ISR; an unclean election leads a partition whose ISR is dead.
#[test]
fn preferred_and_unclean_elections() {
    let config = ControllerConfig {
        leader_imbalance_check_interval_ms: 1000,
        ..ControllerConfig::default()
    };
    let mut c = Controller::new(config, 3);
    for id in 1..=3 {
        let (_, epoch) = c
            .register_broker(id, &incarnation(id as u64), endpoint(9000), None, 0)
            .unwrap();
        c.heartbeat(id, epoch, c.image().offset, false, false, 0)
            .unwrap();
    }
    c.create_topics(&[topic("a", 1, 3)]).pop().unwrap().unwrap();
    let p = c.image().topic_by_name("a").unwrap().partitions[&0].clone();
    let preferred = p.replicas[0];
    assert_eq!(
        c.elect_leader("a", 0, Election::Preferred)
            .unwrap_err()
            .code(),
        84,
        "ELECTION_NOT_NEEDED"
    );
    // The preferred leader's session expires: leadership moves; it stays out of the ISR.
    for id in (1..=3).filter(|b| *b != preferred) {
        let e = c.image().brokers[&id].broker_epoch;
        c.heartbeat(id, e, c.image().offset, false, false, 20_000)
            .unwrap();
    }
    c.tick(20_000);
    let moved = c.image().topic_by_name("a").unwrap().partitions[&0].clone();
    assert_ne!(moved.leader, preferred);
    assert_eq!(
        c.elect_leader("a", 0, Election::Preferred)
            .unwrap_err()
            .code(),
        80,
        "PREFERRED_LEADER_NOT_AVAILABLE"
    );
    // Back, unfenced, and (as its leader would make it) in the ISR again: the imbalance check
    // moves leadership back.
    let e = c.image().brokers[&preferred].broker_epoch;
    c.heartbeat(preferred, e, c.image().offset, false, false, 20_500)
        .unwrap();
    let tid = c.image().topic_by_name("a").unwrap().topic_id.clone();
    let now = c.image().topic_by_name("a").unwrap().partitions[&0].clone();
    c.alter_partition(
        now.leader,
        -1,
        &tid,
        0,
        now.leader_epoch,
        now.partition_epoch,
        &[1, 2, 3],
    )
    .unwrap();
    for id in 1..=3 {
        let e = c.image().brokers[&id].broker_epoch;
        c.heartbeat(id, e, c.image().offset, false, false, 21_000)
            .unwrap();
    }
    c.tick(21_000);
    let back = c.image().topic_by_name("a").unwrap().partitions[&0].clone();
    assert_eq!(back.leader, preferred);
    assert!(
        back.leader_epoch > now.leader_epoch,
        "every leader change bumps the epoch"
    );
    assert_eq!(
        c.elect_leader("a", 0, Election::Unclean)
            .unwrap_err()
            .code(),
        84,
        "a partition with a leader needs no unclean election"
    );
}

/// An operation's entries apply together: a topic's records held until the last one, and
/// dropped if a leader change cuts the operation short (a controller that failed over between
/// them must not leave a topic without its partitions).
#[test]
fn an_operation_applies_whole_or_not_at_all() {
    let (mut c, log) = with_brokers(3);
    let made = c.create_topics(&[topic("t", 3, 3)]).remove(0).unwrap();
    assert!(made.len() >= 4, "a topic record and one per partition");
    let entries: Vec<Vec<u8>> = made
        .iter()
        .enumerate()
        .map(|(i, r)| r.encode_entry(i + 1 < made.len()).unwrap())
        .collect();
    let base = log.len() as i64;
    let replay_brokers = |image: &mut MetadataImage| {
        for (o, r) in log.iter().enumerate() {
            image.apply(o as i64, r).unwrap();
        }
    };

    // Whole: nothing until the last entry, then everything, at the entries' offsets.
    let mut image = MetadataImage::new();
    replay_brokers(&mut image);
    let mut ops = OperationBuffer::default();
    for (i, e) in entries.iter().enumerate() {
        let ready = ops.push(base + i as i64, e).unwrap();
        if i + 1 < entries.len() {
            assert!(ready.is_empty() && !ops.is_empty());
        } else {
            assert_eq!(ready.len(), made.len());
            for (o, r) in ready {
                image.apply(o, &r).unwrap();
            }
        }
    }
    assert!(ops.is_empty());
    assert_eq!(
        image.topic_by_name("t").map(|t| t.partitions.len()),
        Some(3)
    );

    // Cut short: the prefix is dropped at the leader change, and what follows applies alone.
    let mut image = MetadataImage::new();
    replay_brokers(&mut image);
    let mut ops = OperationBuffer::default();
    for (i, e) in entries.iter().take(2).enumerate() {
        assert!(ops.push(base + i as i64, e).unwrap().is_empty());
    }
    assert_eq!(ops.leader_change(), 2);
    assert!(ops.is_empty());
    assert!(image.topic_by_name("t").is_none());
    let single = made[0].encode_entry(false).unwrap();
    assert_eq!(
        MetadataRecord::decode_entry(&single).unwrap(),
        (made[0].clone(), false)
    );
    assert_eq!(ops.push(base + 10, &single).unwrap().len(), 1);
}
