"""Transactional produce against a running ketch (or Kafka) cluster, with confluent-kafka:
a benchmark, not a test (README, "Benchmarks").

  bench_transactions.py BOOTSTRAP TOPIC SECONDS

Creates nothing: TOPIC must exist (e.g. RF=3, 3 partitions). For SECONDS each, measures
  - plain idempotent produce (acks=all), records/s;
  - transactional produce in transactions of 100 and of 1000 records, records/s and
    transactions/s (commit latency p50/p99);
  - the end-to-end latency a read_committed consumer sees: from a record's produce call to
    its arrival, for records in committed transactions of 10 (p50/p99).
Records are 100 bytes. Prints one JSON line per measurement.
"""

import json
import statistics
import sys
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

VALUE = b"x" * 100


def out(**kw):
    print(json.dumps(kw), flush=True)


def pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * p))] * 1000, 2)


def idempotent(bootstrap, topic, seconds):
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                  "linger.ms": 5, "acks": "all"})
    n = 0
    start = time.time()
    while time.time() - start < seconds:
        for _ in range(1000):
            while True:
                try:
                    p.produce(topic, VALUE)
                    break
                except BufferError:
                    p.poll(0.01)
            n += 1
        p.poll(0)
    p.flush(60)
    elapsed = time.time() - start
    out(mode="idempotent", records=n, records_per_s=round(n / elapsed))


def transactional(bootstrap, topic, seconds, size):
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4()}",
                  "linger.ms": 5})
    p.init_transactions(30)
    n = 0
    txns = 0
    commits = []
    start = time.time()
    while time.time() - start < seconds:
        p.begin_transaction()
        for _ in range(size):
            while True:
                try:
                    p.produce(topic, VALUE)
                    break
                except BufferError:
                    p.poll(0.01)
        t0 = time.time()
        p.commit_transaction(60)
        commits.append(time.time() - t0)
        n += size
        txns += 1
    elapsed = time.time() - start
    out(mode=f"transactional-{size}", records=n, records_per_s=round(n / elapsed),
        transactions_per_s=round(txns / elapsed, 1),
        commit_ms_p50=pct(commits, 0.5), commit_ms_p99=pct(commits, 0.99))


def end_to_end(bootstrap, topic, seconds):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4()}",
                  "isolation.level": "read_committed", "enable.auto.commit": False,
                  "fetch.wait.max.ms": 10})
    md = c.list_topics(topic, timeout=10).topics[topic]
    parts = [TopicPartition(topic, p) for p in md.partitions]
    ends = [c.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
    c.assign([TopicPartition(topic, tp.partition, end) for tp, end in zip(parts, ends)])
    latencies = []
    done = threading.Event()

    def consume():
        while not done.is_set():
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            sent = float(m.value().split(b" ")[0])
            latencies.append(time.time() - sent)

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(2)
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-{uuid.uuid4()}",
                  "linger.ms": 0})
    p.init_transactions(30)
    start = time.time()
    while time.time() - start < seconds:
        p.begin_transaction()
        for _ in range(10):
            p.produce(topic, f"{time.time()} ".encode() + VALUE)
        p.commit_transaction(60)
        time.sleep(0.01)
    time.sleep(3)
    done.set()
    t.join()
    c.close()
    out(mode="read_committed-end-to-end", records=len(latencies),
        latency_ms_p50=pct(latencies, 0.5), latency_ms_p99=pct(latencies, 0.99),
        latency_ms_mean=round(statistics.mean(latencies) * 1000, 2) if latencies else None)


if __name__ == "__main__":
    bootstrap, topic, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    idempotent(bootstrap, topic, seconds)
    transactional(bootstrap, topic, seconds, 100)
    transactional(bootstrap, topic, seconds, 1000)
    end_to_end(bootstrap, topic, seconds)
