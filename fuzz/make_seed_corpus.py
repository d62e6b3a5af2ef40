#!/usr/bin/env python3
"""Writes the named seed inputs of fuzz/corpus/ (the rest of the corpus is what libFuzzer found)
and the regression inputs of fuzz/regressions/ that were rebuilt by hand.

Record batches come from a real client's encoder, kafka-python's DefaultRecordBatchBuilder
(pip install kafka-python); segments are those batches laid end to end with a Kafka-format
offset index; properties files are Kafka's quickstart config and escape cases.
"""
import os
import struct

from kafka.record.default_records import DefaultRecordBatchBuilder

HERE = os.path.dirname(os.path.abspath(__file__))


def batch(base, n, compression=0, producer_id=-1):
    b = DefaultRecordBatchBuilder(
        magic=2, compression_type=compression, is_transactional=False,
        producer_id=producer_id, producer_epoch=0 if producer_id >= 0 else -1,
        base_sequence=0 if producer_id >= 0 else -1, batch_size=1 << 20)
    for i in range(n):
        b.append(i, timestamp=1700000000000 + i, key=(b"k%d" % i if i % 2 else None),
                 value=b"value-%d-" % i * (i + 1), headers=[("h", b"v")] if i == 1 else [])
    raw = bytearray(b.build())
    struct.pack_into(">q", raw, 0, base)
    return bytes(raw)


def write(target, name, data, kind="corpus"):
    path = os.path.join(HERE, kind, target, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


for name, data in [("seed-plain-2", batch(0, 2)), ("seed-gzip-5", batch(0, 5, 1)),
                   ("seed-idempotent-3", batch(7, 3, 0, 42)), ("seed-one", batch(0, 1))]:
    write("record_batch", name, data)

segment, index, offset = b"", b"", 0
for i in range(8):
    n = 1 + i % 3
    if i in (3, 6):
        index += struct.pack(">II", offset + n - 1, len(segment))
    segment += batch(offset, n)
    offset += n
write("segment_recovery", "seed-8-batches", struct.pack(">H", len(segment)) + segment + index)
write("segment_recovery", "seed-torn-tail", struct.pack(">H", len(segment) - 7) + segment[:-7])
write("segment_recovery", "seed-bad-index", struct.pack(">H", len(segment)) + segment + struct.pack(">II", 99, 5))

write("properties", "seed-quickstart", b"process.roles=broker,controller\nnode.id=1\n"
      b"controller.quorum.voters=1@localhost:9093\nlisteners=PLAINTEXT://:9092,CONTROLLER://:9093\n"
      b"controller.listener.names=CONTROLLER\nlog.dirs=/tmp/kraft-combined-logs\n")
write("properties", "seed-escapes", b"# c\n! c\nkey\\ with\\ spaces = v\\u0041lue\\\n  continued\nk2:v2\nk3 v3\n")
write("properties", "vertical-tab-key", b"\x0b#`t:/\n", kind="regressions")
