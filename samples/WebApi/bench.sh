#!/usr/bin/env bash
# wrk against the WebApi sample: Kestrel on Scipio shards (UseScipio) beside Kestrel's default Sockets transport, the
# same program and process settings with one switch (--transport), in the same run.
#
#   samples/WebApi/bench.sh                 # 3 repetitions x 10 s per test (~6 min)
#   QUICK=1 samples/WebApi/bench.sh         # 1 repetition x 3 s
#   samples/WebApi/bench.sh --report FILE   # print the table again from an earlier run's CSV
#
# The server runs pinned to one core (taskset -c $SERVER_CPU; one shard for Scipio, a ThreadPool on that core for
# Sockets); wrk runs pinned to another (taskset -c $CLIENT_CPU, one thread). Tests: /plaintext and /json at 16 and 256
# connections, and /plaintext pipelined 16 deep (a wrk Lua script) at 256. Each server is started fresh for each
# repetition, warmed up, then measured; the order of the transports alternates between repetitions. Figures are
# medians over REPS: requests/s and wrk's p99 latency, with the ratio Scipio / Sockets (for p99, lower is better).
# Each server's run (start, warm-up, the five tests, stop) holds /tmp/scipio-bench.lock (flock), so benchmarks of
# other sessions on this machine never overlap with it.
#
# Environment (defaults in brackets): REPS [3]  SECS [10]  WARMUP [5]  SERVER_CPU [0]  CLIENT_CPU [1]  PORT [5290]
#   OUT [/tmp/scipio-webapi-bench]  SKIP_BUILD=1 (use the sample as built)  LOCK [/tmp/scipio-bench.lock]
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
if [[ ${QUICK:-0} == 1 ]]; then REPS=${REPS:-1}; SECS=${SECS:-3}; WARMUP=${WARMUP:-2}; fi
REPS=${REPS:-3}
SECS=${SECS:-10}
WARMUP=${WARMUP:-5}
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
PORT=${PORT:-5290}
OUT=${OUT:-/tmp/scipio-webapi-bench}
LOCK=${LOCK:-/tmp/scipio-bench.lock}
DLL=$ROOT/samples/WebApi/bin/Release/net10.0/Scipio.WebApi.dll
TESTS=("plaintext 16" "plaintext 256" "json 16" "json 256" "pipelined 256")

log() { echo "webapi-bench: $*" >&2; }

# Medians per (test, transport) from the CSV, as a markdown table with the ratios.
report() {
  awk -F, '
    function median(k,   n, i, j, t, a) {
      n = cnt[k]; if (n == 0) return "";
      for (i = 1; i <= n; i++) a[i] = val[k, i] + 0;
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR > 1 && $5 != "" {
      key = $3 " " $4; if (!(key in seen)) { seen[key] = 1; order[++tests] = key }
      k = key SUBSEP $2; cnt[k "r"]++; val[k "r", cnt[k "r"]] = $5
      if ($6 + 0 > 0) { cnt[k "p"]++; val[k "p", cnt[k "p"]] = $6 }
      if ($1 > reps) reps = $1
    }
    END {
      printf "| test | connections | Scipio req/s | Sockets req/s | ratio | Scipio p99 | Sockets p99 | p99 ratio |\n"
      printf "|---|---:|---:|---:|---:|---:|---:|---:|\n"
      for (i = 1; i <= tests; i++) {
        split(order[i], f, " ")
        sr = median(order[i] SUBSEP "scipio" "r"); kr = median(order[i] SUBSEP "sockets" "r")
        sp = median(order[i] SUBSEP "scipio" "p"); kp = median(order[i] SUBSEP "sockets" "p")
        name = f[1] == "pipelined" ? "plaintext, pipelined 16 deep" : "/" f[1]
        # With the pipelining script wrk may print 0.00us for the percentiles above the median: shown as n/a.
        ps = sp > 0 ? sprintf("%.2f ms", sp) : "n/a"; pk = kp > 0 ? sprintf("%.2f ms", kp) : "n/a"
        pr = (sp > 0 && kp > 0) ? sprintf("%.2f×", sp / kp) : "n/a"
        printf "| %s | %s | %.0f | %.0f | %.2f× | %s | %s | %s |\n", name, f[2], sr, kr, (kr ? sr / kr : 0), ps, pk, pr
      }
      printf "\nMedians of %d repetition(s).\n", reps
    }' "$1"
}

if [[ ${1:-} == --report ]]; then report "$2"; exit 0; fi

command -v wrk >/dev/null || { log "wrk is not installed: apt-get install -y wrk. Nothing measured."; exit 0; }
command -v taskset >/dev/null || { log "taskset is missing (util-linux). Nothing measured."; exit 0; }
command -v flock >/dev/null || { log "flock is missing (util-linux). Nothing measured."; exit 0; }
if (( $(nproc --all) < 2 )); then log "needs 2 CPUs (server and client on their own). Nothing measured."; exit 0; fi

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  dotnet build "$ROOT/samples/WebApi/WebApi.csproj" -c Release -nologo -v quiet -clp:ErrorsOnly || { log "build failed"; exit 1; }
fi
mkdir -p "$OUT"
LUA=$OUT/pipeline.lua
cat > "$LUA" <<'EOF'
-- wrk: sends `depth` requests back to back on each connection before reading (HTTP/1.1 pipelining).
init = function(args)
  local depth = tonumber(args[1]) or 1
  local r = {}
  for i = 1, depth do r[i] = wrk.format() end
  req = table.concat(r)
end
request = function() return req end
EOF
CSV=$OUT/webapi-$(date +%Y%m%d-%H%M%S).csv
echo "rep,transport,test,connections,rps,p99_ms" > "$CSV"

# Runs wrk (pinned); prints "rps p99_ms". A fourth argument, the pipelining depth, runs it through the Lua script.
run_wrk() { # $1 seconds, $2 connections, $3 path, [$4 depth]
  local secs=$1 conns=$2 path=$3 script=()
  [[ -n ${4:-} ]] && script=(-s "$LUA" "http://127.0.0.1:$PORT$path" -- "$4")
  [[ -z ${4:-} ]] && script=("http://127.0.0.1:$PORT$path")
  taskset -c "$CLIENT_CPU" wrk -t1 -c"$conns" -d"${secs}s" --latency "${script[@]}" 2>&1 |
    awk '
      /Requests\/sec:/ { rps = $2 }
      /^ +99%/ { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
                 ms = (u == "us") ? v / 1000 : (u == "s") ? v * 1000 : (u == "m") ? v * 60000 : v; p99 = ms }
      END { printf "%s %s\n", rps, p99 }'
}

start_server() { # $1 transport; waits until it answers
  taskset -c "$SERVER_CPU" dotnet "$DLL" --urls "http://127.0.0.1:$PORT" --shards 1 --transport "$1" > "$OUT/server-$1.log" 2>&1 9>&- &
  SERVER=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$PORT/plaintext" > /dev/null && return 0
    kill -0 "$SERVER" 2>/dev/null || break
    sleep 0.1
  done
  log "the $1 server did not start (see $OUT/server-$1.log)"; return 1
}

stop_server() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; }
trap 'stop_server' EXIT

log "server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU; $REPS repetition(s) x ${SECS}s; raw results in $CSV"
for rep in $(seq "$REPS"); do
  order="scipio sockets"; (( rep % 2 == 0 )) && order="sockets scipio"
  for transport in $order; do
    exec 9> "$LOCK"
    flock 9 # wait for other sessions' benchmarks; held for this server's whole run
    start_server "$transport" || exit 1
    run_wrk "$WARMUP" 256 /plaintext > /dev/null
    run_wrk "$WARMUP" 256 /json > /dev/null
    for t in "${TESTS[@]}"; do
      read -r name conns <<< "$t"
      if [[ $name == pipelined ]]; then result=$(run_wrk "$SECS" "$conns" /plaintext 16)
      else result=$(run_wrk "$SECS" "$conns" "/$name"); fi
      read -r rps p99 <<< "$result"
      log "rep $rep $transport $name c$conns: $rps req/s, p99 $p99 ms"
      echo "$rep,$transport,$name,$conns,$rps,$p99" >> "$CSV"
    done
    stop_server
    exec 9>&- # let other sessions in between servers
  done
done
echo
echo "Machine: $(nproc --all) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(uname -r); server on CPU $SERVER_CPU, wrk on CPU $CLIENT_CPU"
report "$CSV" | tee "${CSV%.csv}.md"
