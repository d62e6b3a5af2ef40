"""Producers and checks for tests/replication.rs, with confluent-kafka (librdkafka) as a user
runs it against a replicated ketch cluster.

  replication.py produce BOOTSTRAP TOPIC SECONDS [acks]
      An idempotent producer (enable.idempotence, acks=all unless told) sending values
      "0", "1", ... for SECONDS, a few hundred a second, keyed so they spread over the
      partitions. Prints one JSON line per delivery report:
        {"ack": value, "partition": p, "offset": o}  or  {"fail": value, "error": "..."}
      and a final {"done": sent}.

  replication.py try BOOTSTRAP TOPIC ACKS
      Sends one record with `ACKS` and prints {"error": name or null, "offset": o}.
"""

import json
import sys
import time

from confluent_kafka import KafkaError, Producer


def out(**kw):
    print(json.dumps(kw), flush=True)


def produce(bootstrap, topic, seconds, acks="all"):
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": acks == "all",
            "acks": acks,
            "linger.ms": 5,
            # Long enough to ride out a failover (session timeout, election, ISR changes).
            "message.timeout.ms": 60000,
            "request.timeout.ms": 10000,
            "topic.metadata.refresh.interval.ms": 1000,
            "retry.backoff.ms": 100,
        }
    )

    def report(err, msg):
        value = msg.value().decode()
        if err is None:
            out(ack=value, partition=msg.partition(), offset=msg.offset())
        else:
            out(fail=value, error=err.name())

    sent = 0
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            p.produce(topic, key=str(sent % 7).encode(), value=str(sent).encode(), on_delivery=report)
            sent += 1
        except BufferError:
            p.poll(0.05)
            continue
        p.poll(0)
        time.sleep(0.003)
    remaining = p.flush(90)
    out(done=sent, unflushed=remaining)


def try_one(bootstrap, topic, acks):
    p = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": acks,
            "message.timeout.ms": 6000,
            "request.timeout.ms": 3000,
            "retries": 0,
        }
    )
    result = {}

    def report(err, msg):
        result["error"] = None if err is None else err.name()
        result["offset"] = msg.offset() if err is None else -1

    p.produce(topic, value=b"probe", on_delivery=report)
    p.flush(15)
    out(**result)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "produce":
        produce(sys.argv[2], sys.argv[3], float(sys.argv[4]), *(sys.argv[5:6]))
    elif cmd == "try":
        try_one(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(f"unknown command {cmd}")
