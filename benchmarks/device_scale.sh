#!/usr/bin/env bash
# Workers and the brief's scale on a many-core machine, in one bounded run (about 7.5 min):
#
#   1 single  one process's saturation at 1,000 weddings x 10 (benchmarks.product's steps:
#             the highest offered rate with echo p99 < 100 ms and nothing lost) = S
#   2 w2, 3 w4, 4 w8
#             the same scenario on N workers (crdt-server serve --workers N, the Redis bus),
#             offered 0.85, 1.0 and 1.15 x N x S: the goal is the 0.85 step sustained
#   5 scale   5,000 weddings x 10 = 50,000 connections on 8 workers, 16,700 updates/s (a
#             million a minute) for 30 s: echo p99 < 100 ms, nothing lost, every room stored
#
# Each phase is bounded (what is left of BUDGET_S) and writes its log to $OUT as it goes;
# results.jsonl gets each phase's JSON, summary.txt the table. Every process a phase leaves
# behind (found by DEVICE_SCALE_PHASE in its environment) is ended by PID before the next.
#
#   bash benchmarks/device_scale.sh                   # the device: wheels from .device/whl
#   SMALL=1 PY=.venv/bin/python bash benchmarks/device_scale.sh   # a 2-core smoke run
#
# Needs .device/ (ignored, carried): whl/ (every runtime dependency as CPython 3.12
# manylinux wheels, installed to /tmp/site unless PY is given) and redis/ (a redis-server
# binary with the libraries it may lack in redis/lib). Environment: OUT (default
# build/device-scale), PY (a Python with the dependencies: no install), PYTHON (the one to
# install the wheels for, python3) and SITE (where, /tmp/site), SMALL, BUDGET_S, REDIS_PORT,
# RATES1, FRACTIONS, STEP_S, WORKER_COUNTS, SCALE_RATE, BENCH_AGENT_LOOP.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
DEV=${DEVICE_DIR:-$ROOT/.device}
OUT=${OUT:-$ROOT/build/device-scale}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/device-scale.XXXXXX)
START=$(date +%s)
export PYTHONUNBUFFERED=1
# The load generator's processes run on asyncio's own loop (as every earlier figure was
# taken); BENCH_AGENT_LOOP=uvloop runs them on uvloop (no cheaper per update on 2 cores:
# 8-9 % of a core at 300 updates/s against asyncio's 6-7 %).

if [ "${SMALL:-0}" = 1 ]; then
  BUDGET_S=${BUDGET_S:-240}; WEDDINGS=100; SCALE_WEDDINGS=200; SCALE_RATE=${SCALE_RATE:-200}
  SCALE_WORKERS=2; WORKER_COUNTS=${WORKER_COUNTS:-2}; STEP_S=${STEP_S:-4}; SCALE_S=10
  RATES1=${RATES1:-100,200,400}; RAMP=500; AGENTS1=1; AGENTS_W=1; AGENTS_SCALE=1
  CAP1=70; CAPW=60; CAPS=70
else
  BUDGET_S=${BUDGET_S:-460}; WEDDINGS=1000; SCALE_WEDDINGS=5000; SCALE_RATE=${SCALE_RATE:-16700}
  SCALE_WORKERS=8; WORKER_COUNTS=${WORKER_COUNTS:-2 4 8}; STEP_S=${STEP_S:-6}; SCALE_S=30
  RATES1=${RATES1:-1000,1500,2000,2500,3000,3500,4000,4600,5300,6100,7000}; RAMP=4000
  AGENTS1=4; AGENTS_W=; AGENTS_SCALE=7
  CAP1=125; CAPW=70; CAPS=125
fi
FRACTIONS=${FRACTIONS:-0.85,1.0,1.15}
REDIS_PORT=${REDIS_PORT:-6390}

left() { echo $((BUDGET_S - ($(date +%s) - START))); }

# -- the machine -------------------------------------------------------------------------
ulimit -n 1048576 2>/dev/null || ulimit -n 524288 2>/dev/null || ulimit -n 65536 2>/dev/null
if [ "$(id -u)" = 0 ] && [ "${SMALL:-0}" != 1 ]; then  # the device: a bare machine, as root
  sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 \
    net.ipv4.ip_local_port_range="1024 65000" 2>/dev/null || true
fi
{
  echo "date: $(date -u +%FT%TZ)  commit: ${COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')}"
  echo "nproc: $(nproc)  loadavg: $(cat /proc/loadavg)"
  grep -m1 'model name' /proc/cpuinfo
  free -g | head -2
  echo "uname: $(uname -srm)  ulimit -n: $(ulimit -n)"
  echo "somaxconn: $(cat /proc/sys/net/core/somaxconn)  ports: $(cat /proc/sys/net/ipv4/ip_local_port_range)"
} >"$OUT/machine.txt" 2>&1

# -- Python and the wheels ---------------------------------------------------------------
if [ -n "${PY:-}" ]; then
  echo "python: $PY (given: no install)" >>"$OUT/machine.txt"
else
  PY=${PYTHON:-python3}
  SITE=${SITE:-/tmp/site}
  t=$(date +%s)
  if ! $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$SITE" "$DEV"/whl/*.whl >>"$OUT/machine.txt" 2>&1; then
    echo "wheels did not install" | tee -a "$OUT/machine.txt"; exit 3
  fi
  export PYTHONPATH=$SITE:$ROOT
  echo "wheels installed in $(( $(date +%s) - t )) s" >>"$OUT/machine.txt"
fi
$PY -c 'import sys, pycrdt, redis, hiredis, uvloop, starlette, uvicorn, aiohttp, crdt_server.app
print("python", sys.version.split()[0], "pycrdt", pycrdt.__version__ if hasattr(pycrdt, "__version__") else "?", "redis-py", redis.__version__, "uvloop", uvloop.__version__)' \
  >>"$OUT/machine.txt" 2>&1 || { echo "imports failed" | tee -a "$OUT/machine.txt"; exit 3; }

# -- Redis (the workers' bus) -------------------------------------------------------------
LD_LIBRARY_PATH="$DEV/redis/lib" "$DEV/redis/redis-server" --port "$REDIS_PORT" \
  --bind 127.0.0.1 --save '' --appendonly no --daemonize no --databases 16 \
  --maxclients 10000 --logfile "$WORK/redis.log" &
REDIS_PID=$!
trap 'kill $REDIS_PID 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 50); do
  $PY -c "import redis; redis.Redis(port=$REDIS_PORT).ping()" 2>/dev/null && break
  sleep 0.2
done
$PY -c "import redis; print('redis', redis.Redis(port=$REDIS_PORT).info('server')['redis_version'], 'on', $REDIS_PORT)" \
  >>"$OUT/machine.txt" 2>&1 || { echo "redis did not start" | tee -a "$OUT/machine.txt"; cat "$WORK/redis.log"; exit 3; }
echo "set up by $(( $(date +%s) - START )) s; loadavg $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"
cat "$OUT/machine.txt"

# -- phases ------------------------------------------------------------------------------
# End, by PID, every process a phase left (DEVICE_SCALE_PHASE in their environment; not this shell or Redis).
sweep() {
  local pids=() p
  for p in /proc/[0-9]*; do
    p=${p#/proc/}
    [ "$p" = $$ ] || [ "$p" = "$REDIS_PID" ] && continue
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "DEVICE_SCALE_PHASE=$1" && pids+=("$p")
  done
  [ ${#pids[@]} -gt 0 ] && { echo "sweep $1: ending ${pids[*]}"; kill -9 "${pids[@]}" 2>/dev/null; }
  return 0
}

# phase NAME CAP_S WORKERS DB ARGS...: benchmarks.product under a time bound.
phase() {
  local name=$1 cap=$2 workers=$3 db=$4; shift 4
  local t; t=$(left); [ "$t" -gt "$cap" ] && t=$cap
  if [ "$t" -lt 30 ]; then
    echo "{\"phase\": \"$name\", \"skipped\": \"out of time ($t s left)\"}" >>"$OUT/results.jsonl"
    echo "== $name skipped: $t s left"; return 0
  fi
  echo "== $name: workers $workers, bound $t s, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/$name.log"
  local t0; t0=$(date +%s)
  set -o pipefail
  DEVICE_SCALE_PHASE=$name timeout -k 8 "$t" $PY -m benchmarks.product --servers ours \
    --workers "$workers" --redis-url "redis://127.0.0.1:$REDIS_PORT/$db" --no-cold-start \
    --step-seconds "$STEP_S" --grace 5 --ramp-rate "$RAMP" --json "$WORK/$name.json" "$@" \
    2>&1 | tee -a "$OUT/$name.log"
  local rc=$?
  set +o pipefail
  sweep "$name" | tee -a "$OUT/$name.log"
  echo "== $name: rc $rc in $(( $(date +%s) - t0 )) s, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/$name.log"
  $PY - "$name" "$workers" "$rc" "$WORK/$name.json" "$OUT/results.jsonl" <<'EOF'
import json, sys
name, workers, rc, src, dst = sys.argv[1:]
try:
    with open(src) as f:
        result = json.load(f)
except (OSError, ValueError) as exc:
    result = {"error": f"no JSON: {exc}"}
with open(dst, "a") as f:
    f.write(json.dumps({"phase": name, "workers": int(workers), "rc": int(rc), "result": result}) + "\n")
EOF
}

sustained() {  # a phase's highest sustained step; else (kept) the highest kept up with
  $PY - "$OUT/results.jsonl" "$1" "$OUT/$1.log" <<'EOF'
import json, re, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
steps = [s for row in rows if row.get("phase") == sys.argv[2]
         for server in (row.get("result") or {}).values() if isinstance(server, dict)
         for s in server.get("steps", [])]
if not steps:  # cut at its bound before its JSON: the steps it printed
    line = re.compile(r"offered (\d+)/s: sent (\d+)/s, .*lost (\d+), missing (\d+), .*-> (ok|NOT)")
    for m in map(line.search, open(sys.argv[3], errors="replace")):
        if m:
            steps.append({"rate": float(m[1]), "sent_per_s": float(m[2]), "lost": int(m[3]),
                          "missing": int(m[4]), "ok": m[5] == "ok"})
ok = [s["rate"] for s in steps if s.get("ok")]
kept = [s["rate"] for s in steps
        if not s["lost"] and not s["missing"] and s["sent_per_s"] >= 0.95 * s["rate"]]
if ok:
    print(f"{max(ok):.0f} measured")
elif kept:
    print(f"{max(kept):.0f} kept")
else:
    print("0 none")
EOF
}

agents_for() {  # load-generator processes beside N workers (the rest of the cores)
  if [ -n "$AGENTS_W" ]; then echo "$AGENTS_W"; return; fi
  local n=$(( $(nproc) - $1 - 2 )); [ "$n" -lt 2 ] && n=2; [ "$n" -gt 7 ] && n=7; echo "$n"
}

: >"$OUT/results.jsonl"
phase single "$CAP1" 1 1 --weddings "$WEDDINGS" --agents "$AGENTS1" --rates "$RATES1"
read -r S SOURCE <<<"$(sustained single)"
case $SOURCE in
  kept) SOURCE="no step under 100 ms p99: the highest step kept up with, nothing lost";;
  none) S=${S_FALLBACK:-1000}; SOURCE="no step kept up with: S_FALLBACK";;
esac
echo "== one process sustained S = $S updates/s ($SOURCE)"
db=2
for n in $WORKER_COUNTS; do
  rates=$($PY -c "print(','.join(str(round(float(f) * $n * $S)) for f in '$FRACTIONS'.split(',')))")
  phase "w$n" "$CAPW" "$n" "$db" --weddings "$WEDDINGS" --agents "$(agents_for "$n")" --rates "$rates"
  db=$((db + 1))
done
phase scale "$CAPS" "$SCALE_WORKERS" "$db" --weddings "$SCALE_WEDDINGS" \
  --agents "$AGENTS_SCALE" --rates "$SCALE_RATE" --step-seconds "$SCALE_S"

# -- summary -----------------------------------------------------------------------------
$PY - "$OUT/results.jsonl" "$S" "$SOURCE" "$FRACTIONS" <<'EOF' | tee "$OUT/summary.txt"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
S, source, fractions = float(sys.argv[2]), sys.argv[3], sys.argv[4]
print(f"one process's saturation S = {S:.0f} updates/s ({source}); goal: N workers sustain "
      f">= 0.85 x N x S (steps at {fractions} x N x S)\n")
print("| phase | workers | step offered/s | sent/s | echo p50 ms | echo p99 ms | delivery p99 ms "
      "| lost | missing | late | closed | server ms/update | server CPU % | generator CPU % | "
      "ok | load |")
print("|" + "---|" * 16)
for row in rows:
    if "skipped" in row:
        print(f"| {row['phase']} | | skipped: {row['skipped']} |" + " |" * 13)
        continue
    for name, r in (row.get("result") or {}).items():
        if not isinstance(r, dict):
            print(f"| {row['phase']} | {row['workers']} | {name}: {r} |" + " |" * 13)
            continue
        for s in r.get("steps", []):
            f = lambda v, p=1: "-" if v is None else f"{v:.{p}f}"
            gen = "+".join(f"{g:.0f}" for g in s.get("generator_pct", []))
            print(f"| {row['phase']} | {row['workers']} | {s['rate']:.0f} | {f(s['sent_per_s'], 0)} "
                  f"| {f(s['echo_p50'])} | {f(s['echo_p99'])} | {f(s['delivery_p99'])} "
                  f"| {s['lost']} | {s['missing']} | {s['late']} | {s['closed']} "
                  f"| {f(s['server_ms_per_update'], 3)} | {f(s['server_pct'], 0)} | {gen} "
                  f"| {'yes' if s['ok'] else 'NO'} | {s['load']} |")
print()
for row in rows:
    if "skipped" in row:
        continue
    for name, r in (row.get("result") or {}).items():
        if isinstance(r, dict):
            ok = [s["rate"] for s in r.get("steps", []) if s.get("ok")]
            best = max(ok, default=0.0)
            n = row["workers"]
            goal = ""
            if row["phase"].startswith("w") and S:
                goal = (f"; {best / (n * S):.2f} x N x S (goal >= 0.85: "
                        f"{'met' if best >= 0.85 * n * S - 0.5 else 'NOT met'})")
            mem = (r.get("memory") or {}).get("per_connection_kib")
            busy = [s["rate"] for s in r.get("steps", [])
                    if max(s.get("generator_pct") or [0]) >= 90]
            print(f"- {row['phase']} ({name}, rc {row['rc']}): highest sustained step "
                  f"{best:.0f}/s{goal}; {r.get('verified')}; server RSS per connection "
                  f"{mem if mem is None else round(mem, 1)} KiB")
            if busy:
                print(f"  load generator at >= 90 % of a core in steps {busy}: those steps "
                      "measure the generator as much as the server")
        else:
            print(f"- {row['phase']}: {r}")
    if row.get("rc"):
        print(f"  ({row['phase']} exited {row['rc']}: 124 = cut at its time bound, 1 = a loss,"
              " a failed server or a step not sustained is in its log)")
EOF
echo "redis log tail:" >>"$OUT/summary.txt"; tail -5 "$WORK/redis.log" >>"$OUT/summary.txt" 2>/dev/null
echo "total $(( $(date +%s) - START )) s; loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.txt"
