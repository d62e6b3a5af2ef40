"""Security scenarios against a running ketch, run by tests/security.rs with real clients
(confluent-kafka, kafka-python). Client settings come as one JSON object of librdkafka keys;
each scenario prints one JSON line: what it did, or the error the client reported."""

import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer


def out(**kw):
    print(json.dumps(kw), flush=True)


def roundtrip(bootstrap, topic, n, settings):
    """Produces `n` records with acks=all (idempotent) and reads them back with a group:
    {"produced": n, "consumed": n}, or {"error": ...} from the first failure."""
    n = int(n)
    extra = json.loads(settings)
    base = {"bootstrap.servers": bootstrap, **extra}
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(str(err))

    p = Producer({**base, "enable.idempotence": True, "acks": "all",
                  "message.timeout.ms": 10000, "error_cb": lambda e: errors.append(str(e))})
    for i in range(n):
        p.produce(topic, value=f"r{i}".encode(), on_delivery=report)
    left = p.flush(15)
    if left or errors:
        out(error=(errors or [f"{left} not delivered"])[0])
        return
    c = Consumer({**base, "group.id": f"sec-{uuid.uuid4()}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": True})
    c.subscribe([topic])
    got = set()
    deadline = time.time() + 20
    while len(got) < n and time.time() < deadline:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            out(error=str(m.error()))
            return
        got.add(m.value())
    c.close()
    out(produced=n, consumed=len(got))


def slow_roundtrip(bootstrap, topic, n, settings):
    """One producer and one consumer on kept connections for about ten seconds: a record a
    second, each read back before the next: {"produced": n, "consumed": n}."""
    n = int(n)
    extra = json.loads(settings)
    base = {"bootstrap.servers": bootstrap, **extra}
    p = Producer({**base, "acks": "all"})
    c = Consumer({**base, "group.id": f"slow-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = 0
    for i in range(n):
        p.produce(topic, value=f"s{i}".encode())
        if p.flush(10):
            out(error=f"record {i} not delivered")
            return
        deadline = time.time() + 10
        while time.time() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got += 1
                break
        time.sleep(1)
    c.close()
    out(produced=n, consumed=got)


def count(bootstrap, topic, expected, settings):
    """Reads `topic` from the beginning with a new group until `expected` distinct records or
    20 s: {"count": how many}."""
    expected = int(expected)
    extra = json.loads(settings)
    c = Consumer({"bootstrap.servers": bootstrap, **extra, "group.id": f"count-{uuid.uuid4()}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got = set()
    deadline = time.time() + 20
    while len(got) < expected and time.time() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.add(m.value())
    c.close()
    out(count=len(got))


def refused(bootstrap, settings):
    """A client that should not get in: asks for metadata for a few seconds. {"refused": true}
    if it never got an answer, else {"refused": false}."""
    from confluent_kafka.admin import AdminClient
    extra = json.loads(settings)
    errors = []
    admin = AdminClient({"bootstrap.servers": bootstrap, **extra,
                         "error_cb": lambda e: errors.append(str(e))})
    try:
        admin.list_topics(timeout=4)
        out(refused=False)
    except KafkaException as e:
        out(refused=True, error=str(e), logged=errors[:3])


def kafka_python_roundtrip(bootstrap, topic, n, settings):
    """kafka-python: produce `n` records and read them back. Settings are kafka-python's
    keyword arguments (security_protocol, ssl_cafile, ...)."""
    from kafka import KafkaConsumer, KafkaProducer
    n = int(n)
    extra = json.loads(settings)
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **extra)
    for i in range(n):
        p.send(topic, f"k{i}".encode()).get(timeout=15)
    p.close()
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                      group_id=f"sec-kp-{uuid.uuid4()}", consumer_timeout_ms=8000, **extra)
    got = {m.value for m in c}
    c.close()
    out(produced=n, consumed=len(got))


def produce_one(bootstrap, topic, settings):
    """One record: {"error": null} when acknowledged, else the error's name."""
    extra = json.loads(settings)
    result = {}

    def report(err, _msg):
        result["error"] = err.name() if err is not None else None

    p = Producer({"bootstrap.servers": bootstrap, **extra, "message.timeout.ms": 8000,
                  "retries": 0})
    p.produce(topic, value=b"x", on_delivery=report)
    p.flush(10)
    out(error=result.get("error", "NOT_DELIVERED"))


def consume_group(bootstrap, topic, group, expected, settings):
    """Reads `topic` in `group` from the beginning (committing): {"consumed": n, "error": …}
    with the first error the consumer reported, if any."""
    expected = int(expected)
    extra = json.loads(settings)
    c = Consumer({"bootstrap.servers": bootstrap, **extra, "group.id": group,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic])
    got, error = 0, None
    deadline = time.time() + 12
    while got < expected and time.time() < deadline and error is None:
        m = c.poll(0.5)
        if m is None:
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                continue
            error = m.error().name()
            break
        got += 1
    if got and error is None:
        try:
            c.commit(asynchronous=False)
        except KafkaException as e:
            error = e.args[0].name()
    c.close()
    out(consumed=got, error=error)


def list_topics(bootstrap, settings):
    """The topics Metadata shows: {"topics": [...]}."""
    from confluent_kafka.admin import AdminClient
    extra = json.loads(settings)
    md = AdminClient({"bootstrap.servers": bootstrap, **extra}).list_topics(timeout=10)
    out(topics=sorted(t for t in md.topics if not t.startswith("__")))


def admin_topics(bootstrap, op, names, settings):
    """Creates or deletes the comma-separated topics in one request with confluent-kafka's
    AdminClient: {"results": {topic: null or the error's name}}."""
    from confluent_kafka.admin import AdminClient, NewTopic
    extra = json.loads(settings)
    a = AdminClient({"bootstrap.servers": bootstrap, **extra})
    names = names.split(",")
    if op == "create":
        futures = a.create_topics([NewTopic(n, 1, 1) for n in names], operation_timeout=10)
    else:
        futures = a.delete_topics(names, operation_timeout=10)
    results = {}
    for name, f in futures.items():
        try:
            f.result(15)
            results[name] = None
        except KafkaException as e:
            results[name] = e.args[0].name()
    out(results=results)


SCENARIOS = {
    "admin-topics": admin_topics,
    "produce-one": produce_one,
    "consume-group": consume_group,
    "list-topics": list_topics,
    "roundtrip": roundtrip,
    "refused": refused,
    "count": count,
    "slow-roundtrip": slow_roundtrip,
    "kafka-python-roundtrip": kafka_python_roundtrip,
}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](*sys.argv[2:])
