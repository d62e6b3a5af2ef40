#!/usr/bin/env bash
# Rebuilds fuzz/corpus/request from real clients (kcat, kafka-python, confluent-kafka) talking
# to a ketch broker through fuzz/capture_requests.py. Needs a release build, kcat and a Python
# with the clients (KETCH_PYTHON, default target/client-venv/bin/python; ci/test makes it).
set -euo pipefail
cd "$(dirname "$0")/.."
py="${KETCH_PYTHON:-target/client-venv/bin/python}"
ketch=target/release/ketch
out=fuzz/corpus/request
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
cat > "$work/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:19094
listeners=PLAINTEXT://127.0.0.1:19093,CONTROLLER://127.0.0.1:19094
advertised.listeners=PLAINTEXT://127.0.0.1:19092
controller.listener.names=CONTROLLER
log.dirs=$work/data
group.initial.rebalance.delay.ms=0
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
PROPS
"$ketch" storage format -t "$("$ketch" storage random-uuid)" -c "$work/server.properties" >/dev/null
"$ketch" server "$work/server.properties" 2>"$work/server.log" &
sleep 1
b=127.0.0.1:19092
capture() {
  local tag=$1; shift
  python3 fuzz/capture_requests.py --listen 19092 --upstream 127.0.0.1:19093 --out "$out" --tag "$tag" &
  local proxy=$!
  sleep 0.3
  "$@" || echo "capture $tag: the client failed" >&2
  kill $proxy; wait $proxy 2>/dev/null || true
}
capture kcat bash -c "
  printf 'a\tone\nb\ttwo\n' | kcat -b $b -P -t cap-kcat -K '\t' -z gzip
  kcat -b $b -C -t cap-kcat -o beginning -e -q
  kcat -b $b -L -q >/dev/null
  kcat -b $b -G cap-kcat-group -o beginning -e -q cap-kcat >/dev/null"
capture kafka-python "$py" - "$b" <<'PY'
import sys
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic, ConfigResource
b = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=b)
admin.create_topics([NewTopic("cap-py", 2, 1)])
admin.describe_configs([ConfigResource("TOPIC", "cap-py")])
p = KafkaProducer(bootstrap_servers=b, acks="all", compression_type="gzip")
for i in range(10):
    p.send("cap-py", key=b"k", value=b"v%d" % i)
p.flush()
c = KafkaConsumer("cap-py", bootstrap_servers=b, group_id="cap-py-group",
                  auto_offset_reset="earliest", consumer_timeout_ms=3000)
for _ in c:
    pass
c.commit()
c.close()
admin.list_consumer_groups()
admin.describe_consumer_groups(["cap-py-group"])
admin.delete_topics(["cap-py"])
PY
capture confluent-kafka "$py" - "$b" <<'PY'
import sys, time
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic, ConfigResource
b = sys.argv[1]
a = AdminClient({"bootstrap.servers": b})
for f in a.create_topics([NewTopic("cap-ck", 2, 1)]).values():
    f.result()
p = Producer({"bootstrap.servers": b, "enable.idempotence": True, "compression.type": "zstd"})
for i in range(10):
    p.produce("cap-ck", value=b"v%d" % i)
p.flush()
c = Consumer({"bootstrap.servers": b, "group.id": "cap-ck-group", "auto.offset.reset": "earliest"})
c.subscribe(["cap-ck"])
end = time.time() + 5
while time.time() < end:
    c.poll(0.2)
try:
    c.commit(asynchronous=False)
except Exception as e:
    print("commit:", e)
c.close()
for f in a.describe_configs([ConfigResource("TOPIC", "cap-ck")]).values():
    f.result()
PY
echo "corpus: $(ls "$out" | wc -l) request frames in $out"
