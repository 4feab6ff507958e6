#!/usr/bin/env bash
# The key-value sample beside redis-server and Garnet, measured with redis-benchmark (issue 13), through the shared
# yardstick ../shared/tools/kv (run.sh runs the matrix, report.py prints the medians):
#
#   samples/KeyValue/bench.sh                      # full run: 3 reps, interleaved (~20 min)
#   REPS=1 SCALE=0.2 samples/KeyValue/bench.sh     # smoke run (~3 min)
#   samples/KeyValue/bench.sh --report OUT/raw.csv # the tables again, from an earlier run
#
# Every server runs alone on SERVER_CPU (the sample with --shards 1: one shard, pinned there), redis-benchmark
# (single-threaded) on CLIENT_CPU: `-t set,get -d 64 -r 100000` with 50 clients at pipeline 1 and 16, 1 client, and
# 256 clients at pipeline 1; each server is started fresh per repetition, warmed up, and the order rotates. Server CPU
# per request comes from /proc/PID/stat over each test. The whole run holds the lock file LOCK, so that it never
# overlaps another benchmark on this machine.
#
# Environment (defaults in brackets):
#   OUT [/tmp/scipio-kv-bench-<time>]   raw.csv, logs, report.md (shared/ is read-only: never write there)
#   REPS [3]  SCALE [1]                  repetitions; a factor on every request count
#   TESTS ["set get"]                    which redis-benchmark tests
#   SERVERS ["scipio redis garnet"]      which servers; "garnet-inline" adds Garnet with
#                                        DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1
#   SERVER_CPU [0]  CLIENT_CPU [1]  BASE_PORT [17100]
#   LOCK [/tmp/scipio-bench.lock]        empty: no lock
#   TOOLS [<repo>/../shared/tools]  GARNET [/tmp/garnet/garnet-server]
#   SCIPIO_ARGS [""]                     extra options for the sample (--spin-us N, …)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TOOLS=${TOOLS:-$ROOT/../shared/tools}
KV=$TOOLS/kv
LOCK=${LOCK-/tmp/scipio-bench.lock}
GARNET=${GARNET:-/tmp/garnet/garnet-server}
SERVERS=${SERVERS:-"scipio redis garnet"}
SCIPIO_ARGS=${SCIPIO_ARGS:-}

log() { echo "kv-bench: $*" >&2; }

# Ratios of the sample to each peer, per test and configuration: requests/s, server CPU per request, p99.
ratios() { # $1 = raw.csv
  python3 - "$1" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
best = {}
for r in rows:  # of a test's attempts, the one with the least foreign CPU (as report.py)
    k = (r["rep"], r["server"], r["config"], r["test"])
    if k not in best or float(r["foreign_pct"] or 0) < float(best[k]["foreign_pct"] or 0): best[k] = r
def f(x):
    try: return float(x)
    except (TypeError, ValueError): return None
def med(server, cfg, test, fn):
    xs = [fn(r) for (rep, s, c, t), r in best.items() if s == server and c == cfg and t == test]
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
servers = list(dict.fromkeys(r["server"] for r in best.values()))
peers = [s for s in servers if s != "scipio"]
if "scipio" not in servers or not peers: sys.exit(0)
rps = lambda r: f(r["rps"])
cpu = lambda r: f(r["srv_cpu_pct"]) / 100 / f(r["rps"]) * 1e6 if f(r["rps"]) and f(r["srv_cpu_pct"]) is not None else None
p99 = lambda r: f(r["p99_ms"])
print("### Ratios (scipio ÷ peer, medians): requests/s, server CPU µs per request (lower is better), p99\n")
print("| config | test | " + " | ".join(f"÷ {p}: rps / CPU per req / p99" for p in peers) + " |")
print("|---|---|" + "---|" * len(peers))
for cfg in dict.fromkeys(r["config"] for r in best.values()):
    for test in dict.fromkeys(r["test"] for r in best.values()):
        cells = []
        for p in peers:
            def ratio(fn):
                a, b = med("scipio", cfg, test, fn), med(p, cfg, test, fn)
                return f"{a / b:.2f}×" if a is not None and b else "—"
            cells.append(f"{ratio(rps)} / {ratio(cpu)} / {ratio(p99)}")
        print(f"| {cfg} | {test.upper()} | " + " | ".join(cells) + " |")
EOF
}

if [[ ${1:-} == --report ]]; then
  python3 "$KV/report.py" "$2"
  ratios "$2"
  exit 0
fi

# Prerequisites: what is missing is reported with how to get it; a missing peer is left out of the run.
[[ -d $KV ]] || { log "the yardstick $KV is missing (../shared/tools); nothing measured"; exit 0; }
command -v taskset >/dev/null || { log "taskset is missing (apt-get install util-linux); nothing measured"; exit 0; }
if ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
  log "redis-benchmark / redis-cli are missing: apt-get install redis-tools (or run $KV/setup.sh); nothing measured"
  exit 0
fi
(( $(nproc) >= 2 )) || log "only $(nproc) CPU: the client and the server share it; figures mean little"

DLL=$HERE/bin/Release/net10.0/Scipio.KeyValue.dll
log "building the sample (Release)"
dotnet build "$HERE/KeyValue.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly >&2

OUT=${OUT:-/tmp/scipio-kv-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
list=$OUT/servers.txt
: > "$list"
for s in $SERVERS; do
  case $s in
    scipio) echo "scipio=dotnet $DLL --port {PORT} --bind 127.0.0.1 --shards 1 $SCIPIO_ARGS" >> "$list" ;;
    redis)
      if command -v redis-server >/dev/null; then
        echo "redis=redis-server --port {PORT} --bind 127.0.0.1 --save '' --appendonly no --daemonize no" >> "$list"
      else log "redis-server is missing (apt-get install redis-server): left out"; fi ;;
    garnet | garnet-inline)
      if [[ -x $GARNET ]]; then
        env=""; [[ $s == garnet-inline ]] && env="DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1 "
        echo "$s=$env$GARNET --port {PORT} --bind 127.0.0.1 -q" >> "$list"
      else log "Garnet is missing (dotnet tool install --tool-path /tmp/garnet garnet-server --version 2.2.8): left out"; fi ;;
    *) log "unknown server $s (scipio, redis, garnet, garnet-inline)"; exit 2 ;;
  esac
done
log "servers: $(cut -d= -f1 "$list" | tr '\n' ' ')→ $OUT"

run=(env OUT="$OUT" SERVERS_FILE="$list" GARNET="$GARNET" bash "$KV/run.sh")
if [[ -n $LOCK ]]; then
  log "waiting for the benchmark lock $LOCK"
  flock "$LOCK" "${run[@]}"
else
  "${run[@]}"
fi

{
  echo "# redis-benchmark -t set,get -d 64 -r 100000; server on CPU ${SERVER_CPU:-0}, client on CPU ${CLIENT_CPU:-1}; $(date -u +%F)"
  echo
  python3 "$KV/report.py" "$OUT/raw.csv"
  echo
  ratios "$OUT/raw.csv"
} | tee "$OUT/report.md"
log "report: $OUT/report.md"
