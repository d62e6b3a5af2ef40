"""Client scenarios against a running ketch broker, run by tests/clients.rs with real Kafka
clients (kafka-python, confluent-kafka). Each scenario asserts what it checks and exits
non-zero on failure; what the Rust side needs is printed as one JSON line."""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KTopicPartition
from kafka.errors import MessageSizeTooLargeError
from kafka.admin import NewTopic as KNewTopic


def out(**kw):
    print(json.dumps(kw), flush=True)


def create(bootstrap, topic, partitions, **configs):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, partitions, 1, config=configs)])
    for f in fs.values():
        f.result(timeout=15)


def consume_all(bootstrap, topic, expected, group=None, timeout_s=20, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group or f"check-{topic}-{time.time()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    }
    conf.update(extra)
    c = Consumer(conf)
    c.subscribe([topic])
    got = []
    deadline = time.time() + timeout_s
    while len(got) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(m.error())
        got.append(m)
    return c, got


def groups_phase1(bootstrap, topic):
    """Produce 100 records, consume 60 in a group, commit exactly those, close."""
    create(bootstrap, topic, 3)
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(100):
        p.send(topic, key=str(i).encode(), value=f"r{i}".encode())
    p.flush()
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="resume",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=15000)
    seen = []
    for m in c:
        seen.append(m.value.decode())
        if len(seen) == 60:
            break
    assert len(seen) == 60, len(seen)
    c.commit()
    committed = {tp.partition: c.committed(tp) for tp in c.assignment()}
    c.close()
    out(seen=seen, committed=committed)


def groups_phase2(bootstrap, topic, committed_json):
    """After a broker restart: the group resumes at exactly the committed offsets."""
    committed = {int(k): v for k, v in json.loads(committed_json).items()}
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="resume",
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=8000)
    first = {}
    rest = []
    for m in c:
        first.setdefault(m.partition, m.offset)
        rest.append(m.value.decode())
    now = {tp.partition: c.committed(tp) for tp in c.assignment()}
    c.close()
    for partition, offset in first.items():
        assert offset == committed.get(partition, 0), (partition, offset, committed)
    assert all(now[p] == committed[p] for p in committed), (now, committed)
    out(rest=rest)


def compression(bootstrap, topic):
    """Each codec through confluent-kafka, consumed back by kafka-python."""
    create(bootstrap, topic, 4)
    sent = {}
    for partition, codec in enumerate(["gzip", "snappy", "lz4", "zstd"]):
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "linger.ms": 50, "batch.num.messages": 1000})
        values = [f"{codec}-{i}-" + "x" * (i % 50) for i in range(200)]
        for v in values:
            p.produce(topic, value=v.encode(), partition=partition)
        assert p.flush(15) == 0
        sent[partition] = values
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=5000)
    c.assign([KTopicPartition(topic, i) for i in range(4)])
    got = {}
    for m in c:
        got.setdefault(m.partition, []).append(m.value.decode())
    c.close()
    for partition, values in sent.items():
        assert got.get(partition) == values, partition
    out(ok=True)


def large_and_limits(bootstrap, topic):
    """A 1 MiB record under a topic limit of 2 MiB passes; over the broker default it is
    refused with MESSAGE_TOO_LARGE."""
    create(bootstrap, topic, 1, **{"max.message.bytes": str(2 * 1024 * 1024)})
    big = b"y" * (1024 * 1024)
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    p.send(topic, value=big).get(timeout=15)
    c, got = consume_all(bootstrap, topic, 1, **{"fetch.max.bytes": 4 * 1024 * 1024})
    c.close()
    assert len(got) == 1 and got[0].value() == big
    # The default topic limit (message.max.bytes, 1 MiB + 12) refuses a 1.5 MiB batch.
    create(bootstrap, topic + "-small", 1)
    try:
        p.send(topic + "-small", value=b"z" * (1536 * 1024)).get(timeout=15)
        raise AssertionError("a batch over max.message.bytes was accepted")
    except MessageSizeTooLargeError as e:
        out(refused=str(e))


def auto_create(bootstrap, topic):
    p = KafkaProducer(bootstrap_servers=bootstrap)
    p.send(topic, value=b"hello").get(timeout=15)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    assert topic in admin.list_topics()
    out(ok=True)


def timestamps(bootstrap, topic):
    create(bootstrap, topic, 1)
    p = KafkaProducer(bootstrap_servers=bootstrap)
    base = 1_700_000_000_000
    for i in range(10):
        p.send(topic, value=f"t{i}".encode(), timestamp_ms=base + i * 1000).get(timeout=15)
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = KTopicPartition(topic, 0)
    found = c.offsets_for_times({tp: base + 4500})[tp]
    assert found.offset == 5 and found.timestamp == base + 5000, found
    assert c.offsets_for_times({tp: base + 99_000})[tp] is None
    assert c.beginning_offsets([tp])[tp] == 0 and c.end_offsets([tp])[tp] == 10
    c.close()
    out(ok=True)


def recreate(bootstrap, topic):
    """Delete a topic with data and create it again: the new one starts empty."""
    create(bootstrap, topic, 1)
    p = KafkaProducer(bootstrap_servers=bootstrap)
    for i in range(5):
        p.send(topic, value=b"old").get(timeout=15)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.delete_topics([topic])
    for _ in range(50):
        if topic not in admin.list_topics():
            break
        time.sleep(0.1)
    create(bootstrap, topic, 1)
    p.send(topic, value=b"new").get(timeout=15)
    c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      consumer_timeout_ms=3000)
    c.assign([KTopicPartition(topic, 0)])
    values = [m.value for m in c]
    c.close()
    assert values == [b"new"], values
    out(ok=True)


def idempotent_produce(bootstrap, topic, count):
    """An idempotent producer sends `count` numbered records (the test restarts the broker
    meanwhile); prints which were acknowledged."""
    create(bootstrap, topic, 2)
    acked = []
    failed = []

    def report(err, msg):
        (failed if err else acked).append(int(msg.value()))

    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "linger.ms": 2, "message.timeout.ms": 60000, "retry.backoff.ms": 100})
    for i in range(count):
        while True:
            try:
                p.produce(topic, value=str(i).encode(), key=str(i % 7).encode(),
                          on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
        if i % 100 == 0:
            time.sleep(0.02)
    p.flush(90)
    out(acked=len(acked), failed=len(failed), acked_ids=sorted(acked))


def read_ids(bootstrap, topic, expected):
    """Every record of the topic, read until 3 s pass without one (so duplicates beyond
    `expected` show up too)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{time.time()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    ids = []
    idle_since = time.time()
    deadline = time.time() + 60
    while time.time() - idle_since < 3 and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        ids.append(int(m.value()))
        idle_since = time.time()
    c.close()
    assert len(ids) >= int(expected), (len(ids), expected)
    out(ids=ids)


def configs(bootstrap, topic):
    """IncrementalAlterConfigs through confluent-kafka: a topic's retention is changed, shown by
    DescribeConfigs as a topic override, and applied: old segments go."""
    from confluent_kafka.admin import (AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource)
    create(bootstrap, topic, 1, **{"segment.bytes": "2048"})
    p = KafkaProducer(bootstrap_servers=bootstrap)
    old = int(time.time() * 1000) - 3_600_000  # an hour ago
    for i in range(40):
        p.send(topic, value=b"v" * 200, timestamp_ms=old).get(timeout=15)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("retention.ms", "60000", incremental_operation=AlterConfigOpType.SET)])
    for f in admin.incremental_alter_configs([resource]).values():
        f.result(timeout=15)
    described = admin.describe_configs([ConfigResource("TOPIC", topic)])
    entries = list(described.values())[0].result(timeout=15)
    assert entries["retention.ms"].value == "60000", entries["retention.ms"]
    assert entries["retention.ms"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    assert entries["cleanup.policy"].source == ConfigSource.DEFAULT_CONFIG.value
    # A value ketch would not honour is refused, not ignored.
    bad = ConfigResource("TOPIC", topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.SET)])
    try:
        for f in admin.incremental_alter_configs([bad]).values():
            f.result(timeout=15)
        raise AssertionError("cleanup.policy=compact was accepted")
    except KafkaException as e:
        refused = str(e)
    # Retention (checked every 500 ms in this test's broker) deletes the expired segments.
    c = KafkaConsumer(bootstrap_servers=bootstrap)
    tp = KTopicPartition(topic, 0)
    start = 0
    for _ in range(100):
        start = c.beginning_offsets([tp])[tp]
        if start > 0:
            break
        time.sleep(0.1)
    assert start > 0, "retention deleted nothing"
    assert c.end_offsets([tp])[tp] == 40
    c.close()
    out(log_start=start, refused=refused)


def cooperative(bootstrap, topic):
    """Two confluent-kafka consumers with the cooperative-sticky assignor share a group: each
    ends up with partitions, and together they read every record exactly once."""
    create(bootstrap, topic, 4)
    conf = {"bootstrap.servers": bootstrap, "group.id": "coop", "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky", "enable.auto.commit": False,
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 500}
    consumers = [Consumer(conf), Consumer(conf)]
    for c in consumers:
        c.subscribe([topic])
    deadline = time.time() + 30
    # Both members hold partitions before anything is produced (the second join moves some
    # partitions over incrementally), so each record is read once.
    while time.time() < deadline and not (
            all(c.assignment() for c in consumers)
            and sum(len(c.assignment()) for c in consumers) == 4):
        for c in consumers:
            c.poll(0.1)
    p = Producer({"bootstrap.servers": bootstrap})
    for i in range(400):
        p.produce(topic, value=str(i).encode(), partition=i % 4)
    assert p.flush(15) == 0
    seen = {0: [], 1: []}
    while sum(len(v) for v in seen.values()) < 400 and time.time() < deadline:
        for i, c in enumerate(consumers):
            m = c.poll(0.1)
            if m is not None and not m.error():
                seen[i].append(int(m.value()))
    assignments = [sorted(tp.partition for tp in c.assignment()) for c in consumers]
    for c in consumers:
        c.close()
    everything = sorted(seen[0] + seen[1])
    assert everything == list(range(400)), (len(everything), len(set(everything)))
    assert all(assignments) and sorted(assignments[0] + assignments[1]) == [0, 1, 2, 3], assignments
    out(assignments=assignments, per_consumer=[len(seen[0]), len(seen[1])])


SCENARIOS = {
    "cooperative": cooperative,
    "configs": configs,
    "groups-phase1": groups_phase1,
    "groups-phase2": groups_phase2,
    "compression": compression,
    "large-and-limits": large_and_limits,
    "auto-create": auto_create,
    "timestamps": timestamps,
    "recreate": recreate,
    "idempotent-produce": lambda b, t, n: idempotent_produce(b, t, int(n)),
    "read-ids": lambda b, t, n: read_ids(b, t, int(n)),
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
