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

  replication.py eos BOOTSTRAP IN OUT GROUP TOTAL PROGRESS_FILE
      A consume-transform-produce worker (KIP-98, KIP-447): reads IN in GROUP with
      read_committed, writes "x-" + each value to OUT in transactions of five records, and
      commits its input offsets in the same transaction (send_offsets_to_transaction). Any
      error starts it over with a fresh consumer and producer of the same transactional.id
      (which fences the old one and aborts its open transaction). Writes the committed input
      position to PROGRESS_FILE after each commit; exits once it reaches TOTAL, printing
      {"restarts": n, "transactions": n, "watchdog_kills": n}. It runs under a watchdog that
      SIGKILLs a worker stuck for 30 s and starts another (a librdkafka bug: see `eos`).

  replication.py read-committed BOOTSTRAP TOPIC
      Every value of TOPIC under read_committed, read until 5 s pass without one:
      {"values": [...]}.
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition


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


# How long the worker may go without committing before the watchdog kills it.
EOS_STALL_S = 30


def eos(bootstrap, topic_in, topic_out, group, total, progress_file):
    """Runs `eos-worker` under a watchdog: a worker that commits nothing for EOS_STALL_S is
    SIGKILLed and started again, as an operator's supervisor would. It works around a
    librdkafka bug, not a broker one: after the group coordinator's broker dies and drops out
    of Metadata, librdkafka can keep it cached as the coordinator while it has decommissioned
    the broker's thread, and send_offsets_to_transaction then waits forever, ignoring its
    timeout (confluentinc/librdkafka#5511 and #5456; librdkafka sends no FindCoordinator for the
    group after AddOffsetsToTxn). A killed worker is a zombie like any other: the next one's
    InitProducerId fences it and aborts its open transaction, and the test's exactly-once check
    covers that too."""
    import ctypes
    import signal
    import subprocess
    deadline = time.time() + 240
    # A kill is counted as librdkafka's stall only if the stuck worker's stack (dumped on
    # SIGUSR1 just before the kill) is inside send_offsets_to_transaction; any other is
    # counted apart, and the test allows none of those.
    totals = {"restarts": 0, "transactions": 0, "watchdog_kills": 0, "other_stalls": 0}
    stack_file = progress_file + ".stack"

    def die_with_parent():
        # PR_SET_PDEATHSIG: the worker dies with the watchdog (the test kills only this one).
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)

    def progress():
        try:
            with open(progress_file) as f:
                return f.read().strip()
        except OSError:
            return ""

    while time.time() < deadline:
        child = subprocess.Popen(
            [sys.executable, __file__, "eos-worker", bootstrap, topic_in, topic_out, group,
             total, progress_file],
            stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
        seen, since = progress(), time.time()
        while child.poll() is None and time.time() < deadline:
            time.sleep(0.2)
            now = progress()
            if now != seen:
                seen, since = now, time.time()
            elif time.time() - since > EOS_STALL_S:
                child.send_signal(signal.SIGUSR1)
                time.sleep(1)
                try:
                    with open(stack_file) as f:
                        stack = f.read()
                except OSError:
                    stack = ""
                librdkafka = "in in_send_offsets_to_transaction" in stack
                print(f"watchdog: no commit for {EOS_STALL_S} s at {seen}, "
                      f"{'in send_offsets_to_transaction' if librdkafka else 'elsewhere'}: "
                      f"killing the worker; its stack:\n{stack}", file=sys.stderr, flush=True)
                child.kill()
                totals["watchdog_kills" if librdkafka else "other_stalls"] += 1
                break
        if child.poll() is None:
            child.kill()
        report, _ = child.communicate()
        if child.returncode == 0:
            last = json.loads(report.strip().splitlines()[-1])
            totals["restarts"] += last["restarts"]
            totals["transactions"] += last["transactions"]
            out(**totals)
            return
    sys.exit(f"the worker did not finish in time: {totals}")


def in_send_offsets_to_transaction(producer, offsets, group_metadata):
    """A Python frame of its own, so that a stack dump names where the worker waits."""
    producer.send_offsets_to_transaction(offsets, group_metadata, 30)


def eos_worker(bootstrap, topic_in, topic_out, group, total, progress_file):
    import faulthandler
    import os
    import signal
    # Where a stuck worker waits, for the watchdog (SIGUSR1) and in its log.
    stack = open(progress_file + ".stack", "w")
    faulthandler.register(signal.SIGUSR1, file=stack, all_threads=True)
    debug = {"debug": os.environ["KETCH_EOS_DEBUG"]} if os.environ.get("KETCH_EOS_DEBUG") else {}
    total = int(total)
    restarts = 0
    transactions = 0
    deadline = time.time() + 240
    while time.time() < deadline:
        consumer = producer = None
        try:
            consumer = Consumer({
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                # A killed worker's member must expire before its successor can join: the
                # default 45 s outlasts the watchdog.
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
            })
            producer = Producer({
                "bootstrap.servers": bootstrap,
                "transactional.id": f"{group}-worker",
                "transaction.timeout.ms": 20000,
                **debug,
            })
            producer.init_transactions(30)
            consumer.subscribe([topic_in])
            while True:
                msgs = consumer.consume(5, timeout=1.0)
                msgs = [m for m in msgs if m.error() is None]
                if not msgs:
                    position = consumer.position([TopicPartition(topic_in, 0)])[0].offset
                    if position >= total:
                        out(restarts=restarts, transactions=transactions)
                        return
                    continue
                producer.begin_transaction()
                for m in msgs:
                    producer.produce(topic_out, value=b"x-" + m.value())
                in_send_offsets_to_transaction(
                    producer,
                    consumer.position(consumer.assignment()),
                    consumer.consumer_group_metadata(),
                )
                producer.commit_transaction(30)
                transactions += 1
                position = max(m.offset() for m in msgs) + 1
                with open(progress_file, "w") as f:
                    f.write(str(position))
                time.sleep(0.05)
        except KafkaException as e:
            print(f"restarting after: {e}", file=sys.stderr, flush=True)
            restarts += 1
            time.sleep(0.5)
        finally:
            if consumer is not None:
                try:
                    consumer.close()
                except Exception:
                    pass
    sys.exit("the worker did not finish in time")


def read_committed(bootstrap, topic):
    c = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"check-{topic}-{time.time()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    c.subscribe([topic])
    values = []
    last = time.time()
    while time.time() - last < 5:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        values.append(m.value().decode())
        last = time.time()
    c.close()
    out(values=values)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "produce":
        produce(sys.argv[2], sys.argv[3], float(sys.argv[4]), *(sys.argv[5:6]))
    elif cmd == "try":
        try_one(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "eos":
        eos(*sys.argv[2:8])
    elif cmd == "eos-worker":
        eos_worker(*sys.argv[2:8])
    elif cmd == "read-committed":
        read_committed(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")
