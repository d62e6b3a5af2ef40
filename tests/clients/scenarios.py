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
        ConfigEntry("compression.type", "gzip", incremental_operation=AlterConfigOpType.SET)])
    try:
        for f in admin.incremental_alter_configs([bad]).values():
            f.result(timeout=15)
        raise AssertionError("compression.type=gzip was accepted")
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


def segment_bytes(data_dir, topic):
    """Bytes of the partition's segment files on disk."""
    import os
    d = os.path.join(data_dir, f"{topic}-0")
    return sum(os.path.getsize(os.path.join(d, n)) for n in os.listdir(d) if n.endswith(".log"))


def restore_table(bootstrap, topic, client):
    """A Kafka Streams-style restore: read the changelog from offset 0 to its end, keeping the
    last value of each key and forgetting a key at its tombstone. Returns (table, records read,
    offsets read)."""
    table, offsets = {}, []
    if client == "kafka-python":
        c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=3000)
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek(tp, 0)
        end = c.end_offsets([tp])[tp]
        # Poll to the end offset under a deadline rather than until a quiet spell: a slow
        # fetch on a loaded machine must not end the restore early.
        deadline = time.time() + 20
        while c.position(tp) < end and time.time() < deadline:
            for m in c.poll(timeout_ms=500).get(tp, []):
                offsets.append(m.offset)
                if m.value is None:
                    table.pop(m.key, None)
                else:
                    table[m.key] = m.value
        assert c.position(tp) >= end, ("restore did not reach the end", c.position(tp), end)
        c.close()
    else:
        c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"restore-{time.time()}",
                      "enable.auto.commit": False, "enable.partition.eof": True})
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.time() + 20
        eof = False
        while not eof and time.time() < deadline:
            m = c.poll(0.5)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    eof = True
                    continue
                raise KafkaException(m.error())
            offsets.append(m.offset())
            if m.value() is None:
                table.pop(m.key(), None)
            else:
                table[m.key()] = m.value()
        assert eof, ("restore did not reach the end", offsets[-1:])
        c.close()
    return table, len(offsets), offsets


def compaction(bootstrap, topic, data_dir):
    """A compacted topic written by kafka-python (gzip) and confluent-kafka (snappy, lz4, zstd)
    with many updates to few keys, and tombstones for two of them: it shrinks on disk, and a
    restore from offset 0 with either client gets exactly the latest table. After
    delete.retention.ms and one more clean the tombstones are gone too."""
    create(bootstrap, topic, 1, **{"cleanup.policy": "compact", "segment.bytes": "8192",
                                   "min.cleanable.dirty.ratio": "0.01",
                                   "delete.retention.ms": "2000"})
    import random
    rng = random.Random(14)  # incompressible values, so the size on disk is the records'
    expected = {}
    written = 0
    kp = KafkaProducer(bootstrap_servers=bootstrap, compression_type="gzip", linger_ms=5)
    for i in range(1500):
        k, v = f"k{i % 10}".encode(), f"kp-{i}-".encode() + rng.randbytes(150)
        kp.send(topic, key=k, value=v)
        expected[k] = v
        written += len(v)
    kp.flush()
    kp.close()
    for codec in ["snappy", "lz4", "zstd"]:
        p = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                      "linger.ms": 5})
        for i in range(500):
            k, v = f"k{i % 10}".encode(), f"{codec}-{i}-".encode() + rng.randbytes(150)
            p.produce(topic, key=k, value=v)
            expected[k] = v
            written += len(v)
        assert p.flush(15) == 0
    # Keyless records are refused on a compacted topic, as Kafka refuses them.
    p = Producer({"bootstrap.servers": bootstrap})
    errors = []
    p.produce(topic, value=b"no key", on_delivery=lambda err, msg: errors.append(err))
    p.flush(15)
    assert errors and errors[0] is not None and errors[0].code() == KafkaError.INVALID_RECORD, errors
    for k in [b"k8", b"k9"]:
        p.produce(topic, key=k, value=None)
        expected.pop(k)
    assert p.flush(15) == 0
    # 3000 values of about 160 bytes went in; ten keys' worth plus the active segment (at most
    # segment.bytes, never cleaned) may stay.
    deadline = time.time() + 30
    while segment_bytes(data_dir, topic) > written // 10 and time.time() < deadline:
        time.sleep(0.2)
    after = segment_bytes(data_dir, topic)
    assert after <= written // 10, (written, after)
    tables = {}
    for client in ["kafka-python", "confluent-kafka"]:
        table, read, offsets = restore_table(bootstrap, topic, client)
        assert table == expected, (client, sorted(table), sorted(expected))
        assert read < 3000, (client, read)
        assert offsets == sorted(offsets), client
        tables[client] = read
    # A tombstone outlives the clean that first keeps it (once it is out of the active
    # segment) by delete.retention.ms; a later clean removes it. Updates to other keys keep
    # the log dirty, so cleans keep coming.
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    deadline = time.time() + 40
    keys_seen = None
    first_check = time.time() + 2.5
    n = 0
    while time.time() < deadline:
        for _ in range(60):
            k, v = f"k{n % 3}".encode(), f"late-{n}-".encode() + rng.randbytes(150)
            p.produce(topic, key=k, value=v)
            expected[k] = v
            n += 1
        assert p.flush(15) == 0
        time.sleep(0.5)
        if time.time() < first_check:
            continue
        # The whole log is read, to its end offset, so an early quiet spell cannot make the
        # tombstones look gone.
        c = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                          enable_auto_commit=False)
        tp = KTopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        end = c.end_offsets([tp])[tp]
        keys_seen = set()
        read_until = time.time() + 20
        while c.position(tp) < end and time.time() < read_until:
            keys_seen |= {m.key for m in c.poll(timeout_ms=500).get(tp, [])}
        assert c.position(tp) >= end, ("did not read to the end", c.position(tp), end)
        c.close()
        if b"k8" not in keys_seen and b"k9" not in keys_seen:
            break
        time.sleep(0.5)
    assert b"k8" not in keys_seen and b"k9" not in keys_seen, keys_seen
    table, _, _ = restore_table(bootstrap, topic, "confluent-kafka")
    assert table == expected, (sorted(table), sorted(expected))
    out(written=written, after=after, read=tables)


def idle_group(bootstrap, topic, phase):
    """A group commits once and goes idle while another group's commits roll
    __consumer_offsets' segments and retention (log.retention.ms, tiny in this test's broker)
    runs: compaction, not retention, governs __consumer_offsets, so the idle group's offsets
    are still there after the broker restarts and reloads its groups."""
    tp = KTopicPartition(topic, 0)
    if phase == "commit":
        create(bootstrap, topic, 1)
        p = KafkaProducer(bootstrap_servers=bootstrap)
        for i in range(10):
            p.send(topic, value=str(i).encode())
        p.flush()
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id="idle",
                          enable_auto_commit=False)
        c.assign([tp])
        from kafka.structs import OffsetAndMetadata
        c.commit({tp: OffsetAndMetadata(7, "", -1)})
        c.close()
        # The busy group must share the idle group's __consumer_offsets partition (Kafka's
        # abs(String.hashCode) % partitions; this test's broker has 5), so that its commits
        # roll that partition's segments.
        def partition_of(group):
            h = 0
            for ch in group:
                h = (31 * h + ord(ch)) & 0xFFFFFFFF
            return (h & 0x7FFFFFFF) % 5
        busy_id = next(f"busy-{n}" for n in range(1000)
                       if partition_of(f"busy-{n}") == partition_of("idle"))
        busy = KafkaConsumer(bootstrap_servers=bootstrap, group_id=busy_id,
                             enable_auto_commit=False)
        busy.assign([tp])
        for i in range(400):
            busy.commit({tp: OffsetAndMetadata(i % 10, "x" * 100, -1)})
        busy.close()
        out(partition=partition_of("idle"))
    else:
        c = KafkaConsumer(bootstrap_servers=bootstrap, group_id="idle",
                          enable_auto_commit=False)
        committed = None
        for _ in range(50):
            try:
                committed = c.committed(tp)
                break
            except Exception:  # the coordinator may still be loading
                time.sleep(0.2)
        c.close()
        assert committed == 7, committed
        out(committed=committed)


def read_values(bootstrap, topic, isolation, idle_s=3.0, timeout_s=30):
    """Every record value of the topic with confluent-kafka at `isolation`, read until
    `idle_s` pass without one."""
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"read-{isolation}-{topic}-{time.time()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": isolation,
    })
    c.subscribe([topic])
    got = []
    last = time.time()
    deadline = time.time() + timeout_s
    while time.time() - last < idle_s and time.time() < deadline:
        m = c.poll(0.3)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(m.error())
        got.append(m.value().decode())
        last = time.time()
    c.close()
    return got


def transactions(bootstrap, topic):
    """confluent-kafka's transactional producer over 3 partitions: commits, an abort, a
    transaction left open (read_committed must stop below it), and a zombie fenced by a second
    producer with the same transactional.id (its open transaction is aborted)."""
    create(bootstrap, topic, 3)
    tid = f"tx-{topic}"

    def producer():
        p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                      "transaction.timeout.ms": 60000})
        p.init_transactions(15)
        return p

    def txn(p, prefix, n, commit):
        p.begin_transaction()
        for i in range(n):
            p.produce(topic, key=f"{prefix}-{i}", value=f"{prefix}-{i}", partition=i % 3)
        if commit:
            p.commit_transaction(15)
        else:
            # Flushed first: an abort purges what the client has not sent yet, and the
            # aborted records must reach the log for read_committed to have to skip them.
            p.flush(15)
            p.abort_transaction(15)

    p1 = producer()
    txn(p1, "c1", 30, True)
    txn(p1, "a2", 20, False)
    txn(p1, "c3", 25, True)
    # An open transaction: flushed, neither committed nor aborted.
    p1.begin_transaction()
    for i in range(10):
        p1.produce(topic, value=f"o4-{i}", partition=i % 3)
    p1.flush(15)
    committed_while_open = read_values(bootstrap, topic, "read_committed")
    uncommitted_while_open = read_values(bootstrap, topic, "read_uncommitted")
    p1.commit_transaction(15)
    # A zombie: p1's next transaction is aborted when p2 starts with the same id.
    p1.begin_transaction()
    for i in range(5):
        p1.produce(topic, value=f"z5-{i}", partition=i % 3)
    p1.flush(15)
    p2 = producer()
    fenced = None
    try:
        p1.commit_transaction(15)
    except KafkaException as e:
        fenced = e.args[0].name()
    txn(p2, "c6", 7, True)
    committed = read_values(bootstrap, topic, "read_committed")
    uncommitted = read_values(bootstrap, topic, "read_uncommitted")
    prefixes = lambda vs: sorted({v.split("-")[0] for v in vs})
    assert len(set(committed)) == len(committed), "duplicates under read_committed"
    out(
        committed_while_open=len(committed_while_open),
        committed_while_open_prefixes=prefixes(committed_while_open),
        uncommitted_while_open=len(uncommitted_while_open),
        committed=len(committed),
        committed_prefixes=prefixes(committed),
        uncommitted=len(uncommitted),
        uncommitted_prefixes=prefixes(uncommitted),
        fenced=fenced,
    )


def hang(bootstrap, topic, tid, timeout_ms):
    """A transactional producer writes 5 records to partition 0 in a transaction and dies
    without ending it."""
    import os
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid,
                  "transaction.timeout.ms": int(timeout_ms)})
    p.init_transactions(15)
    p.begin_transaction()
    for i in range(5):
        p.produce(topic, value=f"{tid}-{i}", partition=0)
    p.flush(15)
    out(hung=tid)
    os._exit(0)


def commit(bootstrap, topic, tid, n):
    """One committed transaction of `n` records on partition 0."""
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": tid})
    p.init_transactions(15)
    p.begin_transaction()
    for i in range(int(n)):
        p.produce(topic, value=f"{tid}-{i}", partition=0)
    p.commit_transaction(15)
    out(committed=int(n))


SCENARIOS = {
    "transactions": transactions,
    "hang": hang,
    "commit": commit,
    "compaction": compaction,
    "idle-group": idle_group,
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
