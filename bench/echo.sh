#!/usr/bin/env bash
# Echo benchmark (issue 9): Scipio's echo sample beside the C liburing echo server and the idiomatic .NET
# System.Net.Sockets echo server, all driven by the same closed-loop ping-pong load generator in the same run.
#
#   bench/echo.sh                 # full run: {1,16,256} conns x {64 B, 4 KiB}, 3 reps x 5 s per server (~8 min)
#   QUICK=1 bench/echo.sh         # smoke run: 1 rep x 1 s, 0.5 s warm-up (~1 min)
#   bench/echo.sh --report FILE   # print the tables again from a raw CSV of an earlier run
#
# Every server runs alone, pinned with `taskset -c $SERVER_CPU` (one core, one shard for Scipio); the load generator
# runs pinned with `taskset -c $CLIENT_CPU`. Each server is started fresh for every test, on a port nobody uses,
# and stopped (by its own PID) afterwards; the servers are interleaved within each configuration (the order
# rotates each repetition) so that the machine's slow moments hit all of them. Figures are medians over REPS.
# Server CPU is read from /proc/PID/stat (utime+stime, every thread) over the measured window.
#
# The tools (../shared/tools: loadgen, c-uring-echo, c-epoll-echo, dotnet-sockets-echo) are built into $BUILD,
# outside the repository (shared/ is read-only; and a C# project copied under bench/ would be compiled into
# Scipio.Bench). Missing prerequisites (gcc, liburing-dev, dotnet, taskset, 2 CPUs) are reported and the script
# exits 0: it is a manual benchmark, never a CI gate.
#
# Environment (defaults in brackets):
#   REPS [3]  SECS [5]  WARMUP [1]    repetitions; measured and warm-up seconds per test (loadgen -d / -w)
#   QUICK=1                           REPS=1 SECS=1 WARMUP=0.5, no quiet-machine wait, no retries
#   CONNS ["1 16 256"]  MSGS ["64 4096"]
#   SERVERS ["scipio c-uring dotnet"] which servers, in this order; EPOLL=1 appends c-epoll and scipio-epoll
#                                     (the Scipio sample on its epoll backend: SCIPIO_BACKEND=epoll)
#   SERVER_CPU [0]  CLIENT_CPU [1]  BASE_PORT [17300]
#   BUILD [/tmp/scipio-echo-bench]    build folder; raw CSV -> $BUILD/results/echo-<time>.csv, tables -> .md
#   TOOLS [<repo>/../shared/tools]
#   LOADGEN_ARGS [""]                 extra loadgen flags (-b busy-poll, -s single-shot receive)
#   QUIET_MAX_PCT [10]  QUIET_WAIT_S [30]   before each test, wait (at most QUIET_WAIT_S) until other processes
#                                     use less than QUIET_MAX_PCT of a CPU; 0 s = no wait
#   FOREIGN_MAX_PCT [20]  ATTEMPTS [3]  a test during which other processes used more than FOREIGN_MAX_PCT of a CPU
#                                     is run again, up to ATTEMPTS times in all; the quietest attempt counts
#   SKIP_BUILD=1                      reuse what is in $BUILD
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
TOOLS=${TOOLS:-$ROOT/../shared/tools}
BUILD=${BUILD:-/tmp/scipio-echo-bench}
if [[ ${QUICK:-0} == 1 ]]; then
  REPS=${REPS:-1}; SECS=${SECS:-1}; WARMUP=${WARMUP:-0.5}; QUIET_WAIT_S=${QUIET_WAIT_S:-0}; ATTEMPTS=${ATTEMPTS:-1}
fi
REPS=${REPS:-3}
SECS=${SECS:-5}
WARMUP=${WARMUP:-1}
CONNS=${CONNS:-"1 16 256"}
MSGS=${MSGS:-"64 4096"}
SERVERS=${SERVERS:-"scipio c-uring dotnet"}
[[ ${EPOLL:-0} == 1 && " $SERVERS " != *" c-epoll "* ]] && SERVERS="$SERVERS c-epoll"
[[ ${EPOLL:-0} == 1 && " $SERVERS " != *" scipio-epoll "* ]] && SERVERS="$SERVERS scipio-epoll"
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
BASE_PORT=${BASE_PORT:-17300}
LOADGEN_ARGS=${LOADGEN_ARGS:-}
QUIET_MAX_PCT=${QUIET_MAX_PCT:-10}
QUIET_WAIT_S=${QUIET_WAIT_S:-30}
FOREIGN_MAX_PCT=${FOREIGN_MAX_PCT:-20}
ATTEMPTS=${ATTEMPTS:-3}
READY_TIMEOUT_S=${READY_TIMEOUT_S:-60}
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

log() { echo "echo-bench: $*" >&2; }
skip_all() { log "$*"; log "nothing measured (this is not an error)."; exit 0; }

# ---------------------------------------------------------------------------------------------------------------
# Report: medians per configuration and server from a raw CSV (also usable alone: --report FILE)
# ---------------------------------------------------------------------------------------------------------------
report() { # $1 = csv; prints markdown tables
  awk -F, -v servers="$SERVERS" -v fmax="$FOREIGN_MAX_PCT" '
    function median(key,   n, i, j, t, a) {
      n = cnt[key]; if (n == 0) return "";
      for (i = 1; i <= n; i++) a[i] = val[key, i] + 0;
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(key, v) { if (v == "" || v == "NA") return; cnt[key]++; val[key, cnt[key]] = v }
    function krps(v) { return v == "" ? "—" : (v >= 1000 ? sprintf("%.1fk", v / 1000) : sprintf("%.0f", v)) }
    function lat(a, b) { return (a == "" || b == "") ? "—" : sprintf("%.0f / %.0f", a, b) }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "—" : sprintf("%.2f×", a / b) }
    function num(v, f) { return v == "" ? "—" : sprintf(f, v) }
    function label(c, m) { return c " × " (m % 1024 == 0 ? (m / 1024) " KiB" : m " B") }
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    {  # a test repeated because the machine was busy: its quietest successful attempt counts
      key = $col["rep"] SUBSEP $col["conns"] SUBSEP $col["msg"] SUBSEP $col["server"]
      ok = ($col["rc"] == 0 && $col["rps"] != "" && $col["rps"] != "NA")
      if (!(key in row)) { keys[++nkeys] = key; row[key] = $0; rok[key] = ok; rf[key] = $col["foreign_pct"] + 0; next }
      if ((ok && !rok[key]) || (ok == rok[key] && $col["foreign_pct"] + 0 < rf[key])) {
        row[key] = $0; rok[key] = ok; rf[key] = $col["foreign_pct"] + 0 }
    }
    END {
      for (r = 1; r <= nkeys; r++) {
        $0 = row[keys[r]]
        if ($col["rc"] != 0 || $col["rps"] == "" || $col["rps"] == "NA") { bad[$col["server"]]++; continue }
        cfg = $col["conns"] SUBSEP $col["msg"]; s = $col["server"]
        if (!(cfg in seencfg)) { seencfg[cfg] = 1; cfgs[++ncfg] = cfg }
        seen[s] = 1
        if ($col["foreign_pct"] + 0 > fmax) busy++
        add(cfg SUBSEP s SUBSEP "rps", $col["rps"]);   add(cfg SUBSEP s SUBSEP "p50", $col["p50_us"])
        add(cfg SUBSEP s SUBSEP "p99", $col["p99_us"]); add(cfg SUBSEP s SUBSEP "cpu", $col["srv_cpu_us_per_req"])
        add(cfg SUBSEP s SUBSEP "lg", $col["loadgen_busy_pct"]); add(cfg SUBSEP "foreign", $col["foreign_pct"])
        add(cfg SUBSEP s SUBSEP "srvpct", $col["srv_cpu_pct"])
      }
      if (ncfg == 0) { print "(no successful measurements)"; exit }
      ns = split(servers, order, " "); k = 0
      for (i = 1; i <= ns; i++) if (order[i] in seen) list[++k] = order[i]
      for (s in seen) { f = 0; for (i = 1; i <= k; i++) if (list[i] == s) f = 1; if (!f) list[++k] = s }
      # requests/s and latency
      hdr = "| config | scipio rps | p50/p99 µs | c-uring rps | p50/p99 µs | dotnet rps | p50/p99 µs |"
      sep = "|---|---:|---:|---:|---:|---:|---:|"
      extra = 0
      for (i = 1; i <= k; i++) if (list[i] != "scipio" && list[i] != "c-uring" && list[i] != "dotnet") {
        ex[++extra] = list[i]; hdr = hdr " " list[i] " rps | p50/p99 µs |"; sep = sep "---:|---:|" }
      print hdr " scipio ÷ C | scipio ÷ .NET |"; print sep "---:|---:|"
      for (c = 1; c <= ncfg; c++) {
        cfg = cfgs[c]; split(cfg, cm, SUBSEP); line = "| " label(cm[1], cm[2]) " |"
        for (i = 1; i <= 3; i++) {
          s = (i == 1) ? "scipio" : (i == 2) ? "c-uring" : "dotnet"; b = cfg SUBSEP s SUBSEP
          line = line " " krps(median(b "rps")) " | " lat(median(b "p50"), median(b "p99")) " |"
        }
        for (i = 1; i <= extra; i++) { b = cfg SUBSEP ex[i] SUBSEP
          line = line " " krps(median(b "rps")) " | " lat(median(b "p50"), median(b "p99")) " |" }
        sr = median(cfg SUBSEP "scipio" SUBSEP "rps")
        line = line " " ratio(sr, median(cfg SUBSEP "c-uring" SUBSEP "rps")) " | " ratio(sr, median(cfg SUBSEP "dotnet" SUBSEP "rps")) " |"
        print line
      }
      # CPU per request
      print ""
      hdr = "| config |"; sep = "|---|"
      for (i = 1; i <= k; i++) { hdr = hdr " " list[i] " |"; sep = sep "---:|" }
      print "Server CPU time per request, µs (in brackets: the server'"'"'s CPU use, % of one core); the load generator'"'"'s CPU use (highest median among the servers; near 100% it is the bottleneck); CPU time on the two CPUs that neither used (other processes, interrupts), % of one CPU:"
      print ""
      print hdr " loadgen CPU % | other CPU % |"; print sep "---:|---:|"
      for (c = 1; c <= ncfg; c++) {
        cfg = cfgs[c]; split(cfg, cm, SUBSEP); line = "| " label(cm[1], cm[2]) " |"; lg = ""
        for (i = 1; i <= k; i++) { b = cfg SUBSEP list[i] SUBSEP; v = median(b "cpu"); p = median(b "srvpct")
          line = line " " (v == "" ? "—" : sprintf("%.2f (%.0f%%)", v, p)) " |"
          l = median(b "lg"); if (l != "" && (lg == "" || l > lg)) lg = l }
        print line " " num(lg, "%.0f") " | " num(median(cfg SUBSEP "foreign"), "%.0f") " |"
      }
      if (busy) printf "\n%d of the tests ran while other processes used more than %d%% of a CPU: treat those figures with care.\n", busy, fmax
      nb = 0; for (s in bad) nb += bad[s]
      if (nb) { printf "\nFailed tests (left out): "; for (s in bad) printf "%s %d  ", s, bad[s]; print "" }
    }' "$1"
}

if [[ ${1:-} == --report ]]; then
  [[ -f ${2:-} ]] || { echo "usage: $0 --report RAW.csv" >&2; exit 2; }
  report "$2"; exit 0
fi

# ---------------------------------------------------------------------------------------------------------------
# Prerequisites and builds
# ---------------------------------------------------------------------------------------------------------------
command -v taskset >/dev/null || skip_all "taskset not found (util-linux); cannot pin server and load generator."
NCPU=$(nproc --all 2>/dev/null || echo 1)
(( NCPU >= 2 )) || skip_all "needs 2 CPUs (server on CPU $SERVER_CPU, load on CPU $CLIENT_CPU); this machine has $NCPU."
command -v ss >/dev/null || skip_all "ss (iproute2) not found; it is used to find free ports and see when a server listens."
[[ -d $TOOLS/loadgen ]] || skip_all "tools not found at $TOOLS (set TOOLS=<path to shared/tools>)."

BIN=$BUILD/bin
LOGS=$BUILD/logs
RESULTS=$BUILD/results
mkdir -p "$BIN" "$LOGS" "$RESULTS"

if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  if ! command -v gcc >/dev/null || ! command -v make >/dev/null; then
    skip_all "gcc/make not found: install them with 'apt-get install -y gcc make liburing-dev' to build the load generator and the C servers."
  fi
  if ! echo '#include <liburing.h>' | gcc -E -x c - >/dev/null 2>&1; then
    skip_all "liburing headers not found: install them with 'apt-get install -y liburing-dev' to build the load generator and the C servers."
  fi
  log "building C tools into $BIN"
  if ! make -s -C "$TOOLS" OUT="$BIN" >"$LOGS/build-c.log" 2>&1; then
    tail -20 "$LOGS/build-c.log" >&2
    skip_all "building the C tools failed (log: $LOGS/build-c.log)."
  fi
fi
[[ -x $BIN/loadgen ]] || skip_all "no load generator at $BIN/loadgen."

declare -A CMD SKIPPED
have_dotnet=0; command -v dotnet >/dev/null && have_dotnet=1

# .NET baseline: copied out of shared/ (read-only) and published in the build folder.
if [[ " $SERVERS " == *" dotnet "* ]]; then
  if (( ! have_dotnet )); then SKIPPED[dotnet]="dotnet not found"
  elif [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "publishing dotnet-sockets-echo into $BUILD/dotnet-sockets-echo"
    rm -rf "$BUILD/src/dotnet-sockets-echo" && mkdir -p "$BUILD/src"
    cp -r "$TOOLS/dotnet-sockets-echo" "$BUILD/src/" && chmod -R u+w "$BUILD/src/dotnet-sockets-echo"
    if ! dotnet publish "$BUILD/src/dotnet-sockets-echo" -c Release -o "$BUILD/dotnet-sockets-echo" \
         >"$LOGS/build-dotnet.log" 2>&1; then
      tail -20 "$LOGS/build-dotnet.log" >&2; SKIPPED[dotnet]="publish failed (log: $LOGS/build-dotnet.log)"
    fi
  fi
fi

# Scipio: samples/Echo, published into the build folder.
if [[ " $SERVERS " == *" scipio "* || " $SERVERS " == *" scipio-epoll "* ]]; then
  if [[ ! -d $ROOT/samples/Echo ]]; then SKIPPED[scipio]="samples/Echo not found in this checkout"
  elif (( ! have_dotnet )); then SKIPPED[scipio]="dotnet not found"
  elif [[ ${SKIP_BUILD:-0} != 1 ]]; then
    log "publishing samples/Echo into $BUILD/scipio-echo"
    rm -rf "$BUILD/scipio-echo"
    # --artifacts-path: intermediate files in the build folder too, not in the checkout's obj/ (a build running
    # there at the same time would trip over them)
    if ! dotnet publish "$ROOT/samples/Echo" -c Release -o "$BUILD/scipio-echo" --artifacts-path "$BUILD/artifacts" \
         >"$LOGS/build-scipio.log" 2>&1; then
      tail -20 "$LOGS/build-scipio.log" >&2; SKIPPED[scipio]="publish failed (log: $LOGS/build-scipio.log)"
    fi
  fi
fi

# The command to start a published .NET app: its apphost if there is one, else `dotnet X.dll`.
dotnet_app() { # $1 = publish folder, $2.. = preferred assembly names
  local dir=$1; shift; local n rc
  for n in "$@" $(cd "$dir" 2>/dev/null && ls *.runtimeconfig.json 2>/dev/null | sed 's/\.runtimeconfig\.json$//'); do
    [[ -x $dir/$n && -f $dir/$n.dll ]] && { echo "$dir/$n"; return 0; }
    [[ -f $dir/$n.dll && -f $dir/$n.runtimeconfig.json ]] && { echo "dotnet $dir/$n.dll"; return 0; }
  done
  return 1
}

for s in $SERVERS; do
  [[ -n ${SKIPPED[$s]:-} ]] && continue
  case $s in
    scipio)  app=$(dotnet_app "$BUILD/scipio-echo" Scipio.Echo Echo) && CMD[$s]="$app --port {PORT} --shards 1" \
               || SKIPPED[$s]="no published app in $BUILD/scipio-echo" ;;
    scipio-epoll) app=$(dotnet_app "$BUILD/scipio-echo" Scipio.Echo Echo) && CMD[$s]="env SCIPIO_BACKEND=epoll $app --port {PORT} --shards 1" \
               || SKIPPED[$s]="no published app in $BUILD/scipio-echo" ;;
    dotnet)  app=$(dotnet_app "$BUILD/dotnet-sockets-echo" dotnet-sockets-echo) && CMD[$s]="$app {PORT}" \
               || SKIPPED[$s]="no published app in $BUILD/dotnet-sockets-echo" ;;
    c-uring) [[ -x $BIN/c-uring-echo ]] && CMD[$s]="$BIN/c-uring-echo {PORT}" || SKIPPED[$s]="not built" ;;
    c-epoll) [[ -x $BIN/c-epoll-echo ]] && CMD[$s]="$BIN/c-epoll-echo {PORT}" || SKIPPED[$s]="not built" ;;
    *)       SKIPPED[$s]="unknown server (known: scipio scipio-epoll c-uring dotnet c-epoll)" ;;
  esac
done
RUN_SERVERS=()
for s in $SERVERS; do
  if [[ -n ${SKIPPED[$s]:-} ]]; then log "skipping $s: ${SKIPPED[$s]}"; else RUN_SERVERS+=("$s"); fi
done
(( ${#RUN_SERVERS[@]} > 0 )) || skip_all "no server to measure."

# ---------------------------------------------------------------------------------------------------------------
# Running one test
# ---------------------------------------------------------------------------------------------------------------
SPID=""; LPID=""
stop_server() {
  [[ -n $SPID ]] || return 0
  kill "$SPID" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$SPID" 2>/dev/null && kill -9 "$SPID" 2>/dev/null
  wait "$SPID" 2>/dev/null; SPID=""
}
cleanup() { [[ -n $LPID ]] && kill "$LPID" 2>/dev/null; stop_server; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

NEXT_PORT=$BASE_PORT
free_port() { # a port with no socket at all (listening, connected or TIME_WAIT) on it
  local p=$NEXT_PORT
  while [[ -n $(ss -Htan "( sport = :$p or dport = :$p )" 2>/dev/null) ]]; do p=$((p + 1)); done
  NEXT_PORT=$((p + 1)); (( NEXT_PORT > BASE_PORT + 2000 )) && NEXT_PORT=$BASE_PORT
  echo "$p"
}

echo_probe() { # connects, sends one byte and expects it back within 2 s
  local fd c=""
  exec {fd}<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
  printf 'p' >&"$fd" 2>/dev/null
  IFS= read -r -t 2 -n 1 -u "$fd" c 2>/dev/null
  exec {fd}>&-
  [[ $c == p ]]
}

start_server() { # $1 = server, $2 = port, $3 = log; sets SPID; returns 1 if it does not come up
  local s=$1 port=$2 slog=$3 cmd deadline
  cmd=${CMD[$s]//\{PORT\}/$port}
  # shellcheck disable=SC2086  # the command is split into words on purpose
  ( exec taskset -c "$SERVER_CPU" $cmd ) >"$slog" 2>&1 </dev/null &
  SPID=$!
  deadline=$(( $(date +%s) + READY_TIMEOUT_S ))
  while (( $(date +%s) < deadline )); do
    kill -0 "$SPID" 2>/dev/null || { log "$s exited at start; its output:"; tail -5 "$slog" >&2; SPID=""; return 1; }
    if [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]] && echo_probe "$port"; then return 0; fi
    sleep 0.02
  done
  log "$s did not answer on port $port within ${READY_TIMEOUT_S}s; its output:"; tail -5 "$slog" >&2
  stop_server; return 1
}

proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }  # jiffies, no idle/steal
now() { date +%s.%N; }

wait_quiet() { # until CPU used by others than the server (over 0.5 s) < QUIET_MAX_PCT, at most QUIET_WAIT_S
  (( QUIET_WAIT_S > 0 )) || return 0
  local start=$SECONDS b0 b1 s0 s1 f
  while :; do
    b0=$(( $(cpu_busy "$SERVER_CPU") + $(cpu_busy "$CLIENT_CPU") )); s0=$(proc_ticks "$SPID"); sleep 0.5
    b1=$(( $(cpu_busy "$SERVER_CPU") + $(cpu_busy "$CLIENT_CPU") )); s1=$(proc_ticks "$SPID")
    f=$(( (b1 - b0 - (s1 - s0)) * 200 / HZ ))
    (( f < QUIET_MAX_PCT )) && return 0
    if (( SECONDS - start >= QUIET_WAIT_S )); then log "  machine not quiet (others use ${f}% of a CPU); running anyway"; return 0; fi
    (( (SECONDS - start) % 30 < 2 && SECONDS - start >= 2 )) && log "  waiting for a quiet machine (others use ${f}% of a CPU)"
    sleep 1
  done
}

CSV_HEADER="ts,rep,attempt,conns,msg,server,port,rc,reqs,rps,p50_us,p99_us,p999_us,srv_cpu_pct,srv_cpu_us_per_req,srv_threads,loadgen_busy_pct,cpu${SERVER_CPU}_busy_pct,cpu${CLIENT_CPU}_busy_pct,foreign_pct,window_s"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RAW=$RESULTS/echo-$STAMP.csv
MD=$RESULTS/echo-$STAMP.md
echo "$CSV_HEADER" >"$RAW"

field() { sed -nE "s/.*(^| )$1=([^ ]+).*/\2/p" <<<"$2" | head -1; }

run_one() { # $1 = rep, $2 = server, $3 = conns, $4 = msg, $5 = attempt; appends a CSV row, sets RC and FOREIGN
  local rep=$1 s=$2 c=$3 m=$4 attempt=$5 port slog lout lerr rc=1
  port=$(free_port); slog="$LOGS/$s-$c-$m-r$rep.log"; lout="$LOGS/loadgen.out"; lerr="$LOGS/loadgen.err"
  local line="" lgl="" reqs="" rps="" p50="" p99="" p999="" spct="" scpu="" thr="" lg="" b0p="" b1p="" foreign="" win=""
  if start_server "$s" "$port" "$slog"; then
    wait_quiet
    # shellcheck disable=SC2086
    taskset -c "$CLIENT_CPU" "$BIN/loadgen" -p "$port" -c "$c" -m "$m" -d "$SECS" -w "$WARMUP" $LOADGEN_ARGS \
      >"$lout" 2>"$lerr" &
    LPID=$!
    sleep "$WARMUP"   # the measured window starts after loadgen's warm-up
    local t0 s0 a0 c0 t1 s1 a1 c1
    t0=$(now); s0=$(proc_ticks "$SPID"); a0=$(cpu_busy "$SERVER_CPU"); c0=$(cpu_busy "$CLIENT_CPU")
    wait "$LPID"; rc=$?; LPID=""
    t1=$(now); s1=$(proc_ticks "$SPID"); a1=$(cpu_busy "$SERVER_CPU"); c1=$(cpu_busy "$CLIENT_CPU")
    thr=$(awk '/^Threads:/ { print $2 }' "/proc/$SPID/status" 2>/dev/null)
    kill -0 "$SPID" 2>/dev/null || { log "  $s died during the test"; (( rc == 0 )) && rc=99; }
    stop_server
    line=$(grep -m1 '^conns=' "$lout"); lgl=$(grep -m1 '^loadgen_cpu' "$lerr")
    [[ -z $line ]] && (( rc == 0 )) && rc=98
    if (( rc != 0 )); then log "  loadgen failed (rc=$rc): $(grep -v '^loadgen_cpu' "$lerr" | tail -2 | tr '\n' ' ')"; fi
    reqs=$(field reqs "$line"); rps=$(field rps "$line"); p50=$(field p50_us "$line")
    p99=$(field p99_us "$line"); p999=$(field p999_us "$line"); lg=$(field busy_pct "$lgl")
    read -r win spct scpu b0p b1p foreign < <(awk -v t0="$t0" -v t1="$t1" -v ds="$((s1 - s0))" -v hz="$HZ" \
      -v da="$((a1 - a0))" -v dc="$((c1 - c0))" -v secs="$SECS" -v reqs="${reqs:-0}" -v lg="${lg:-0}" 'BEGIN {
        w = t1 - t0; if (w <= 0) w = 0.001
        sp = 100 * ds / hz / w; ap = 100 * da / hz / w; cp = 100 * dc / hz / w
        us = (reqs > 0) ? (sp / 100) * secs * 1e6 / reqs : "NA"     # server CPU rate x measured seconds / requests
        f = ap + cp - sp - lg; if (f < 0) f = 0
        printf "%.3f %.1f %s %.1f %.1f %.1f\n", w, sp, (us == "NA" ? us : sprintf("%.3f", us)), ap, cp, f }')
  else
    rc=97
  fi
  RC=$rc; FOREIGN=${foreign:-0}
  echo "$(date -u +%FT%TZ),$rep,$attempt,$c,$m,$s,$port,$rc,$reqs,$rps,$p50,$p99,$p999,$spct,$scpu,$thr,$lg,$b0p,$b1p,$foreign,$win" >>"$RAW"
  if (( rc == 0 )); then
    log "$(printf '  rep %d %-8s %3d x %4d B: %8s req/s  p50 %6s µs  p99 %6s µs  server %5s%% CPU %6s µs/req  loadgen %s%%  others %s%%' \
      "$rep" "$s" "$c" "$m" "$rps" "$p50" "$p99" "$spct" "$scpu" "$lg" "$foreign")"
  fi
}

# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------
ncfg=$(( $(wc -w <<<"$CONNS") * $(wc -w <<<"$MSGS") ))
est=$(awk -v n="$(( ncfg * REPS * ${#RUN_SERVERS[@]} ))" -v s="$SECS" -v w="$WARMUP" 'BEGIN { printf "%.0f", n * (s + w + 1.5) / 60 }')
log "servers: ${RUN_SERVERS[*]}; $ncfg configurations x $REPS reps x ${SECS}s (+${WARMUP}s warm-up): about $est min"
log "raw rows -> $RAW"

for c in $CONNS; do
  for m in $MSGS; do
    for ((rep = 1; rep <= REPS; rep++)); do
      n=${#RUN_SERVERS[@]}
      for ((i = 0; i < n; i++)); do
        for ((attempt = 1; attempt <= ATTEMPTS; attempt++)); do
          run_one "$rep" "${RUN_SERVERS[$(( (i + rep - 1) % n ))]}" "$c" "$m" "$attempt"
          (( RC != 0 )) && break   # a server that fails will fail again
          awk -v f="$FOREIGN" -v m="$FOREIGN_MAX_PCT" 'BEGIN { exit !(f <= m) }' && break
          (( attempt < ATTEMPTS )) && log "  other processes used ${FOREIGN}% of a CPU meanwhile: running it again"
        done
      done
    done
  done
done

{
  echo "## Echo benchmark"
  echo
  echo "$(date -u '+%F %H:%M UTC'); $(nproc --all) CPUs ($(sed -nE 's/^model name\s*: //p' /proc/cpuinfo | head -1)); kernel $(uname -r);"\
       ".NET $( (( have_dotnet )) && dotnet --version 2>/dev/null || echo '—')."
  echo "Ping-pong echo over loopback TCP: each server alone on CPU $SERVER_CPU (\`taskset -c $SERVER_CPU\`; Scipio with"\
       "\`--shards 1\`), the load generator (one thread, io_uring) on CPU $CLIENT_CPU; closed loop, one message in flight"\
       "per connection. Medians of $REPS × ${SECS} s after ${WARMUP} s of warm-up, servers interleaved and restarted"\
       "for every test. Latency is the generator's round trip (p50 / p99, µs). ÷ columns are requests/s ratios."\
       "$( (( QUIET_WAIT_S > 0 )) && echo "Before each test the bench waited (up to ${QUIET_WAIT_S} s) for other processes to use < ${QUIET_MAX_PCT}% of a CPU.")"\
       "$( (( ATTEMPTS > 1 )) && echo "A test during which they used > ${FOREIGN_MAX_PCT}% was run again (at most ${ATTEMPTS} attempts in all; the quietest counts).")" \
    | sed -E 's/ +$//; s/  +/ /g'
  [[ -n $LOADGEN_ARGS ]] && echo "Load generator flags: \`$LOADGEN_ARGS\`."
  for s in $SERVERS; do [[ -n ${SKIPPED[$s]:-} ]] && echo "Not measured: $s (${SKIPPED[$s]})."; done
  echo
  report "$RAW"
  echo
  echo "Raw rows: \`$RAW\`."
} | tee "$MD"
exit 0
