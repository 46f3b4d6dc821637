#!/usr/bin/env bash
# The ETL's cycle at scale, against Debian's Prometheus (a benchmark, not a test):
#
#   scripts/bench_scale.sh N [SERIES_PER_NAME]      # e.g. 10000 100, or 15000 15000
#   BIG=20000 scripts/bench_scale.sh 100000 100     # one name of 20 000, the rest by 100
#
# Backfills N series (BIG of them under one metric name, the others SERIES_PER_NAME under
# each name, 100 by default) of HOURS (13) hours of one-minute samples with promtool,
# starts Prometheus on them, and prints in one run:
#   - Prometheus's own evaluation of the ETL's window queries (the same PromQL, one
#     query per name and segment of its windows, 8 at once; the faster of two runs): the
#     baseline; and of the whole-window queries (1 h, 3 h, 12 h) the ETL made before;
#   - the statistics cycle of `slamon up` against it (its "etl cycle done" log line) and
#     its ratio to the baseline;
#   - the metadata cycle ("metadata cycle done");
#   - the peak RSS of `slamon up` (VmHWM) over both cycles;
#   - then, with a Kafka on KAFKA_BOOTSTRAP_SERVERS (127.0.0.1:9092 by default, e.g. tansu
#     from scripts/services.sh start; INSTANCES=0 skips it), INSTANCES (2) `slamon etl`
#     processes sharing the series through their consumer group: each one's share of the
#     series, its statistics cycle at steady state and its peak RSS.
# Needs prometheus and promtool (scripts/services.sh install) and python3; builds slamon
# in release mode. Uses ports picked free and a topic of its own; leaves no process behind.
set -euo pipefail

N=${1:?usage: scripts/bench_scale.sh N [SERIES_PER_NAME]}
PER_NAME=${2:-100}
BIG=${BIG:-0}
HOURS=${HOURS:-13}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
say() { echo "bench_scale: $*" >&2; }

say "building slamon (release)"
(cd "$ROOT" && cargo build --release -q -p slamon)
SLAMON="$ROOT/target/release/slamon"

say "writing $N series × $HOURS h of one-minute samples"
python3 - "$WORK/series.om" "$N" "$PER_NAME" "$HOURS" "$BIG" "$WORK/names" <<'PY'
import math, sys, time
path, n, per_name, hours, big = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
end = int(time.time()) // 60 * 60 - 60
start = end - hours * 3600
# the series of each name, as ranges of series numbers: BIG first, then PER_NAME each
bounds = [0] + ([min(big, n)] if big > 0 else [])
while bounds[-1] < n:
    bounds.append(min(n, bounds[-1] + per_name))
with open(sys.argv[6], "w") as names:
    names.write("\n".join(f"bench_scale_{k}" for k in range(len(bounds) - 1)) + "\n")
with open(path, "w") as f:
    for k in range(len(bounds) - 1):
        name = f"bench_scale_{k}"
        f.write(f"# TYPE {name} gauge\n")
        for i in range(bounds[k], bounds[k + 1]):
            phase = (i % 97) / 97 * 2 * math.pi
            lines = []
            for t in range(start, end + 1, 60):
                v = 50 + 20 * math.sin(2 * math.pi * t / 86400 + phase) + (i % 13)
                lines.append(f'{name}{{instance="host-{i}:9100",job="bench"}} {v:.3f} {t}\n')
            f.write("".join(lines))
    f.write("# EOF\n")
PY

say "backfilling with promtool"
promtool tsdb create-blocks-from openmetrics "$WORK/series.om" "$WORK/tsdb" >/dev/null
rm -f "$WORK/series.om"

PROM_PORT=$(free_port)
printf 'global:\n  scrape_interval: 1m\nscrape_configs: []\n' >"$WORK/prometheus.yml"
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/tsdb" \
  --storage.tsdb.retention.time=30d --web.listen-address="127.0.0.1:$PROM_PORT" \
  --query.max-samples=500000000 >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
PROM="http://127.0.0.1:$PROM_PORT"
for _ in $(seq 1 120); do curl -fsS "$PROM/-/ready" >/dev/null 2>&1 && break; sleep 0.5; done

say "timing Prometheus's own evaluation of the window queries"
# slamon's queries: per name, its three segments (the last hour, the 2 h before, the 9 h
# before those; the windows are merged from them); then the three whole windows, as
# slamon asked before, then the segments again (the page cache warm for both)
read -r BASELINE WHOLE BASELINE2 < <(python3 - "$PROM" "$WORK/names" <<'PY'
import concurrent.futures, sys, time, urllib.parse, urllib.request
prom = sys.argv[1]
names = open(sys.argv[2]).read().split()
aggs = ["min", "max", "avg", "stddev", "count"]
def expr(name, rng):
    sel = '{__name__="%s"}%s' % (name, rng)
    return " or ".join(f'label_replace({a}_over_time({sel}), "__slamon_agg", "{a}", "", "")' for a in aggs)
at = time.time()
def run(q):
    data = urllib.parse.urlencode({"query": q, "time": f"{at:.3f}"}).encode()
    with urllib.request.urlopen(f"{prom}/api/v1/query", data, timeout=600) as r:
        body = r.read()
    assert b'"success"' in body[:40], body[:200]
def timed(ranges):
    queries = [expr(name, r) for name in names for r in ranges]
    began = time.time()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(run, queries))
    return time.time() - began
segments = ["[3599999ms]", "[7199999ms] offset 3600000ms", "[32399999ms] offset 10800000ms"]
first = timed(segments)
whole = timed(["[1h]", "[3h]", "[12h]"])
again = timed(segments)
print(f"{min(first, again):.2f} {whole:.2f} {max(first, again):.2f}")
PY
)

say "running slamon up against it"
DATA="$WORK/data"
LOG="$WORK/slamon.log"
env PROMETHEUS_URL="$PROM" SLAMON_DATA_DIR="$DATA" RUST_LOG=info,slamon_etl=debug \
  SLAMON_QUERY_API_LISTEN="127.0.0.1:$(free_port)" SLAMON_SLA_MANAGER_LISTEN="127.0.0.1:$(free_port)" \
  SLAMON_GRPC_LISTEN="127.0.0.1:$(free_port)" SLAMON_EXPORTER_LISTEN="127.0.0.1:$(free_port)" \
  SLAMON_REGISTRY_LISTEN="127.0.0.1:$(free_port)" SLAMON_SERIES_LOOKBACK=24h \
  "$SLAMON" up >"$LOG" 2>&1 &
SLAMON_PID=$!
PIDS+=("$SLAMON_PID")
deadline=$((SECONDS + ${BENCH_TIMEOUT:-1800}))
until grep -qs "etl cycle done" "$LOG" && grep -qs "metadata cycle done" "$LOG"; do
  if ! kill -0 "$SLAMON_PID" 2>/dev/null; then say "slamon exited:"; tail -20 "$LOG" >&2; exit 1; fi
  if ((SECONDS > deadline)); then say "no cycle within the timeout:"; tail -20 "$LOG" >&2; exit 1; fi
  sleep 1
done
PEAK_KB=$(awk '/VmHWM/ {print $2}' "/proc/$SLAMON_PID/status")
# the first line of each, in seconds ("elapsed=3.81s", "elapsed=812ms", "elapsed=1m 2s" as humantime prints Debug)
seconds() { grep -m1 "$1" "$LOG" | sed -E 's/.*elapsed=([0-9.]+)(ms|s|µs).*/\1 \2/' |
  awk '{ if ($2 == "ms") print $1 / 1000; else if ($2 == "µs") print $1 / 1e6; else print $1 }'; }
CYCLE=$(seconds "etl cycle done")
METADATA=$(seconds "metadata cycle done")
REPORT=$(grep -m1 "etl cycle done" "$LOG" | sed -E 's/.*report=CycleReport \{ ([^}]*)\}.*/\1/')

echo "| series | per name | largest name | statistics cycle s | Prometheus's own evaluation s | ratio | metadata cycle s | peak RSS MB |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
awk -v n="$N" -v p="$PER_NAME" -v g="$BIG" -v c="$CYCLE" -v b="$BASELINE" -v m="$METADATA" -v r="$PEAK_KB" \
  'BEGIN { if (g < p) g = p; if (g > n) g = n;
           printf "| %d | %d | %d | %.2f | %.2f | %.2f | %.2f | %.0f |\n", n, p, g, c, b, c / b, m, r / 1024 }'
echo "Prometheus's own evaluation: the segment queries (slamon's) $BASELINE and $BASELINE2 s, the whole windows (1 h, 3 h, 12 h) $WHOLE s"
echo "first cycle: $REPORT"
# the phases of the first cycle, in seconds (etl_cycle_phase_seconds)
# (the first line of each phase: the first cycle has no SLA phase while no SLA set is known)
echo "first cycle's phases: $(grep "etl cycle phase done" "$LOG" |
  sed -E 's/.*phase="?([a-z]+)"? secs=([0-9.]+).*/\1 \2/' |
  awk '!seen[$1]++ && $1 != "sla" { printf "%s%s %.2f s", sep, $1, $2; sep = ", " }')"

INSTANCES=${INSTANCES:-2}
KAFKA=${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:9092}
if ((INSTANCES < 1)) || ! (exec 3<>"/dev/tcp/${KAFKA%%:*}/${KAFKA##*:}") 2>/dev/null; then
  say "no Kafka at $KAFKA (or INSTANCES=0): no run of several ETL instances"
  exit 0
fi
kill "$SLAMON_PID" 2>/dev/null || true
wait "$SLAMON_PID" 2>/dev/null || true
say "running $INSTANCES slamon etl instances on the Kafka at $KAFKA"
RUN="bench-scale-$$-$(date +%s)"
REGISTRY_PORT=$(free_port)
SLAMON_DATA_DIR="$WORK/registry" SLAMON_REGISTRY_LISTEN="127.0.0.1:$REGISTRY_PORT" "$SLAMON" registry \
  >"$WORK/registry.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$REGISTRY_PORT") 2>/dev/null && break; sleep 0.2; done
export SLAMON_EVENT_LOG=kafka KAFKA_BOOTSTRAP_SERVERS="$KAFKA" SLAMON_TOPIC="$RUN" SLAMON_ETL_GROUP="$RUN" \
  SCHEMA_REGISTRY_URL="http://127.0.0.1:$REGISTRY_PORT" PROMETHEUS_URL="$PROM" SLAMON_SERIES_LOOKBACK=24h \
  SLAMON_ETL_PERIOD=${ETL_PERIOD:-30s} SLAMON_SLA_MANAGER_GRPC_URL=http://127.0.0.1:1 RUST_LOG=info \
  SLAMON_TOPIC_PARTITIONS=4
"$SLAMON" init >"$WORK/init.log" 2>&1 || { tail -5 "$WORK/init.log" >&2; exit 1; }
ETL_PIDS=()
for i in $(seq 1 "$INSTANCES"); do
  HOSTNAME="bench-$i" SLAMON_DATA_DIR="$WORK/etl-$i" SLAMON_EXPORTER_LISTEN="127.0.0.1:$(free_port)" \
    "$SLAMON" etl >"$WORK/etl-$i.log" 2>&1 &
  ETL_PIDS+=($!)
  PIDS+=($!)
done
# steady state: two cycles of each instance over a share (not every series) after the
# group formed; the last one is reported
shares() { grep -s "etl cycle done" "$1" | grep -v "owned_series: $N," || true; }
deadline=$((SECONDS + ${BENCH_TIMEOUT:-1800}))
for i in $(seq 1 "$INSTANCES"); do
  until (($(shares "$WORK/etl-$i.log" | wc -l) >= 2)); do
    if ! kill -0 "${ETL_PIDS[$((i - 1))]}" 2>/dev/null; then say "etl $i exited:"; tail -20 "$WORK/etl-$i.log" >&2; exit 1; fi
    if ((SECONDS > deadline)); then say "no steady cycle of etl $i:"; tail -5 "$WORK/etl-$i.log" >&2; exit 1; fi
    sleep 1
  done
done
echo
echo "| ETL instance | owned series | of series | statistics cycle s | ratio to Prometheus's own (all series) | peak RSS MB |"
echo "| --- | --- | --- | --- | --- | --- |"
TOTAL=0
for i in $(seq 1 "$INSTANCES"); do
  LINE=$(shares "$WORK/etl-$i.log" | tail -1)
  OWNED=$(sed -E 's/.*owned_series: ([0-9]+).*/\1/' <<<"$LINE")
  TOTAL=$((TOTAL + OWNED))
  ELAPSED=$(sed -E 's/.*elapsed=([0-9.]+)(ms|s|µs).*/\1 \2/' <<<"$LINE" |
    awk '{ if ($2 == "ms") print $1 / 1000; else if ($2 == "µs") print $1 / 1e6; else print $1 }')
  RSS=$(awk '/VmHWM/ {print $2}' "/proc/${ETL_PIDS[$((i - 1))]}/status")
  awk -v i="$i" -v o="$OWNED" -v n="$N" -v c="$ELAPSED" -v b="$BASELINE" -v r="$RSS" \
    'BEGIN { printf "| %d | %d | %d | %.2f | %.2f | %.0f |\n", i, o, n, c, c / b, r / 1024 }'
done
echo "shares add up to $TOTAL of $N series"
