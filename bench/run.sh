#!/usr/bin/env bash
# make bench: the whole benchmark suite, bounded (about 9 minutes with the defaults).
#
# Starts its own PostgreSQL 15 (initdb as the postgres user in a temp dir, fsync on) and
# redis-server on free loopback ports, then for each configuration
#   pg        PostgreSQL, in-process definition cache only
#   pg_redis  PostgreSQL with the Redis definition cache
#   sqlite    the embedded default (a file under the run's temp dir)
# starts `pythmata serve` (a copy of build/release/pythmata taken at the start), deploys
# bench/models, and puts wrk on it: GET /health (the machine's ceiling), straight and parallel
# starts at c=50 and c=400, user task start+complete pairs (2 requests: the start answer names
# the task; at c=50 and, on pg, c=400; usertask_lookup: 3 requests, GET /tasks asked for the task
# id), GET /api/v1/processes. Then the peer
# (../shared/peers/bpmn-engine, copied to build/bench/peer and `npm ci` there) under the same wrk
# load, the engine Google Benchmarks, and locust headless. Every process it starts is stopped by
# its PID (trap). Results: build/bench/results/<stamp>/ (results.csv, summary.md, raw logs,
# metrics) and docs/bench-throughput.png; build/bench/results/latest points at the last run.
#
# Environment (all optional):
#   BENCH_DURATION  wrk measuring time per case (10s)     BENCH_WARMUP  wrk warm-up (2s)
#   BENCH_THREADS   wrk threads (2)                       BENCH_TIMEOUT wrk --timeout (10s)
#   BENCH_ONLY      regex on "config/case/conns" to run a subset, e.g. 'pg/straight/50'
#   BENCH_REPEAT    run every selected wrk case this many times (1); the summary takes medians
#   BENCH_SKIP      words among: peer gbench locust plot
#   BENCH_MEMORY    N: also start straight instances on PostgreSQL until N completed, VmRSS
#                   after every 10 s slice in memory.csv (1,000,000 takes ~8 minutes more)
#   BENCH_MEMORY_WAITING  N: the same with user-task instances that are started and left
#                   waiting (never completed) until N wait, in memory_waiting.csv
#   BENCH_TIMERS    N: also bench/timers.sh N (N timers due at one instant) on its own store,
#                   BENCH_TIMERS_STORE (pg, or sqlite), results in timers/ (100,000 takes ~3
#                   minutes more); the summary checks the timer targets from its report
#   BENCH_PERF      set: perf record -g the server during each measured run (perf_*.txt)
#   PYTHMATA_BIN    the server binary (build/release/pythmata)
#   ENGINE_BENCH    the Google Benchmark binary (build/release/bench/engine_bench)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-2s}
THREADS=${BENCH_THREADS:-2}
WRK_TIMEOUT=${BENCH_TIMEOUT:-10s}
ONLY=${BENCH_ONLY:-}
REPEAT=${BENCH_REPEAT:-1}
SKIP=${BENCH_SKIP:-}
SRC_BIN=${PYTHMATA_BIN:-$ROOT/build/release/pythmata}
ENGINE_BENCH=${ENGINE_BENCH:-$ROOT/build/release/bench/engine_bench}
PG_BIN=/usr/lib/postgresql/15/bin
PEER_SRC=$ROOT/../shared/peers/bpmn-engine

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/build/bench/results/$STAMP
mkdir -p "$OUT"
ln -sfn "$STAMP" "$ROOT/build/bench/results/latest"
CSV=$OUT/results.csv
echo "config,case,conns,run,rps,ops_per_s,p50_ms,p99_ms,max_ms,good,bad,socket_errors,timeouts,peak_rss_kb,server_cpu_pct,db_cpu_pct,machine_busy_pct" >"$CSV"

for tool in wrk curl python3 redis-server; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x "$SRC_BIN" ] || { echo "no server binary at $SRC_BIN: run make build" >&2; exit 1; }
[ -x "$PG_BIN/postgres" ] || { echo "PostgreSQL 15 is not installed" >&2; exit 1; }

skipped() { [[ " $SKIP " == *" $1 "* ]]; }
log() { echo "[bench $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

# ---- process bookkeeping: every PID we start is stopped on exit ------------------------------
source "$ROOT/bench/lib.sh"
bench_begin pythmata-bench

# The binary may be rebuilt by someone else while we measure: use a copy taken now.
BIN=$TMP/pythmata
cp "$SRC_BIN" "$BIN"

# ---- machine ----------------------------------------------------------------------------------
{
    echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "cores=$(nproc)"
    echo "mem=$(free -g | awk '/^Mem:/{print $2" GiB"}')"
    echo "kernel=$(uname -r)"
    echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "wrk=$(wrk --version 2>&1 | head -1 | awk '{print $2}')"
    echo "settings=duration $DURATION warm-up $WARMUP threads $THREADS timeout $WRK_TIMEOUT repeat $REPEAT"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# ---- PostgreSQL (fsync on) and Redis ---------------------------------------------------------
start_postgres
for db in bench_pg bench_pg_redis "bench_pg_memory_$$" "bench_pg_waiting_$$"; do
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "$db"
done

start_redis

# ---- wrk cases --------------------------------------------------------------------------------
SERVER_PID=""
BASE=""

machine_ticks() {  # prints "busy total"
    awk '/^cpu /{busy = $2 + $3 + $4 + $7 + $8 + $9; total = busy + $5 + $6; print busy, total}' /proc/stat
}

# run_case CONFIG CASE CONNS SCRIPT [VAR=VALUE...]: warm-up, then measure; appends to the CSV.
run_case() {
    local config=$1 case=$2 conns=$3 script=$4
    shift 4
    local key="$config/$case/$conns"
    if [ -n "$ONLY" ] && ! [[ "$key" =~ $ONLY ]]; then
        return 0
    fi
    local run
    for run in $(seq 1 "$REPEAT"); do
        local raw="$OUT/wrk_${config}_${case}_c${conns}_r${run}.txt"
        env "$@" wrk -t"$THREADS" -c"$conns" -d"$WARMUP" --timeout "$WRK_TIMEOUT" \
            -s "$ROOT/bench/$script" "$BASE" >/dev/null 2>&1 || true
        sleep 1
        echo "# wrk -t$THREADS -c$conns -d$DURATION --timeout $WRK_TIMEOUT --latency -s bench/$script $BASE ($*)" >"$raw"
        local perf_pid=""
        if [ -n "${BENCH_PERF:-}" ] && command -v perf >/dev/null; then
            # CPU profile of the server during the measured run (call graphs, 499 Hz).
            perf record -F 499 -g -p "$SERVER_PID" -o "$OUT/perf_${config}_${case}_c${conns}.data" \
                -- sleep "${DURATION%s}" >/dev/null 2>&1 &
            perf_pid=$!
            PIDS+=("$perf_pid")
        fi
        local srv0 db0 m0 t0 srv1 db1 m1 t1
        srv0=$(tree_ticks "$SERVER_PID")
        db0=$( [ "$config" = pg ] || [ "$config" = pg_redis ] && tree_ticks "$PG_PID" || echo 0)
        read -r m0 t0 < <(machine_ticks)
        env "$@" wrk -t"$THREADS" -c"$conns" -d"$DURATION" --timeout "$WRK_TIMEOUT" --latency \
            -s "$ROOT/bench/$script" "$BASE" >>"$raw" 2>&1 || true
        srv1=$(tree_ticks "$SERVER_PID")
        db1=$( [ "$config" = pg ] || [ "$config" = pg_redis ] && tree_ticks "$PG_PID" || echo 0)
        read -r m1 t1 < <(machine_ticks)
        # Shares of the whole machine (2 cores = 100 %) over the measured run.
        local cpu_cols
        cpu_cols=$(python3 -c "import sys; a=[int(x) for x in sys.argv[1:]]; w=max(a[7]-a[6],1); print(f'{100*(a[1]-a[0])/w:.1f},{100*(a[3]-a[2])/w:.1f},{100*(a[5]-a[4])/w:.1f}')" \
            "$srv0" "$srv1" "$db0" "$db1" "$m0" "$m1" "$t0" "$t1")
        if [ -n "$perf_pid" ]; then
            wait "$perf_pid" 2>/dev/null || true
            perf report -i "$OUT/perf_${config}_${case}_c${conns}.data" --no-children --stdio \
                --percent-limit 0.7 -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -60 \
                >"$OUT/perf_${config}_${case}_c${conns}.txt" || true
        fi
        local hwm
        hwm=$(awk '/^VmHWM/{print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
        python3 - "$raw" "$config" "$case" "$conns" "$run" "$hwm" "$cpu_cols" >>"$CSV" <<'PY'
import sys
raw, config, case, conns, run, hwm, cpu = sys.argv[1:]
r = {}
for line in open(raw):
    if line.startswith("RESULT "):
        r = dict(kv.split("=", 1) for kv in line.split()[1:])
if not r:
    print(f"{config},{case},{conns},{run},0,0,,,,0,0,0,0,{hwm},{cpu}")
else:
    sock = int(r["connect_err"]) + int(r["read_err"]) + int(r["write_err"])
    print(f"{config},{case},{conns},{run},{r['rps']},{r['ops_per_s']},{r['p50_ms']},{r['p99_ms']},"
          f"{r['max_ms']},{r['good']},{r['bad']},{sock},{r['timeouts']},{hwm},{cpu}")
PY
        log "$key run $run: $(grep -h '^RESULT' "$raw" | cut -d' ' -f4-5,9,11-13) cpu server,db,machine=$cpu_cols"
        grep -h '^FIRST_BAD' "$raw" >&2 || true
        sleep 1
    done
}

START=(WRK_METHOD=POST WRK_STATUS=201 WRK_EXPECT='"COMPLETED"')

start_server() {  # CONFIG DB_URL [REDIS_URL]
    local config=$1 db=$2 redis=${3:-}
    local log_file=$OUT/server_$config.log
    PYTHMATA_HTTP_PORT=0 PYTHMATA_DB_URL="$db" PYTHMATA_REDIS_URL="$redis" \
        PYTHMATA_LOG_LEVEL=warn PYTHMATA_ACCESS_LOG=false "$BIN" serve >"$log_file" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local port=""
    for _ in $(seq 1 100); do
        port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log_file" | head -1 | sed 's/.*://') || true
        [ -n "$port" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "server ($config) did not start:" >&2; cat "$log_file" >&2; exit 1; }
    BASE=http://127.0.0.1:$port
    wait_http "$BASE/health" "$SERVER_PID" || { echo "server ($config) not healthy" >&2; exit 1; }
    local m
    for m in straight parallel usertask order_process; do
        curl -sf -o /dev/null -X POST -H 'Content-Type: application/xml' \
            --data-binary "@$ROOT/bench/models/$m.bpmn" "$BASE/api/v1/processes" ||
            { echo "deploy of $m failed on $config" >&2; exit 1; }
    done
    # A smoke check that the models do the peer's work: straight ends with counter 5, path high.
    curl -sf -X POST -H 'Content-Type: application/json' -d '{"variables":{"amount":150}}' \
        "$BASE/api/v1/processes/straight/instances" >"$OUT/smoke_$config.json"
    grep -q '"counter":5' "$OUT/smoke_$config.json" && grep -q '"path":"high"' "$OUT/smoke_$config.json" ||
        { echo "straight did not end with counter=5 path=high on $config" >&2; exit 1; }
    log "server $config pid $SERVER_PID at $BASE"
}

stop_server() {  # CONFIG
    curl -sf "$BASE/metrics" >"$OUT/metrics_$1.txt" 2>/dev/null || true
    grep -E '^(VmHWM|VmRSS)' "/proc/$SERVER_PID/status" >"$OUT/rss_$1.txt" 2>/dev/null || true
    stop_pid "$SERVER_PID"
}

our_cases() {  # CONFIG LIST-OF-CASES
    local config=$1
    shift
    local c
    for c in "$@"; do
        case $c in
        health50) run_case "$config" health 50 request.lua WRK_METHOD=GET WRK_PATH=/health WRK_STATUS=200 ;;
        health400) run_case "$config" health 400 request.lua WRK_METHOD=GET WRK_PATH=/health WRK_STATUS=200 ;;
        straight50) run_case "$config" straight 50 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/straight/instances ;;
        straight400) run_case "$config" straight 400 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/straight/instances ;;
        parallel50) run_case "$config" parallel 50 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/parallel/instances ;;
        parallel400) run_case "$config" parallel 400 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/parallel/instances ;;
        usertask50) run_case "$config" usertask 50 usertask.lua ;;
        usertask400) run_case "$config" usertask 400 usertask.lua ;;
        usertask_lookup50) run_case "$config" usertask_lookup 50 usertask.lua WRK_PAIR=lookup ;;
        processes50) run_case "$config" processes 50 request.lua WRK_METHOD=GET WRK_PATH=/api/v1/processes WRK_STATUS=200 WRK_EXPECT='"items"' ;;
        esac
    done
}

PG_URL=postgresql://postgres@127.0.0.1:$PG_PORT
SQLITE_DIR=$TMP/sqlite
mkdir -p "$SQLITE_DIR"

start_server pg "$PG_URL/bench_pg"
our_cases pg health50 health400 straight50 straight400 parallel50 parallel400 usertask50 usertask400 usertask_lookup50 processes50
stop_server pg

# Optional (beyond the 10-minute budget): RSS against completed instances on the pg server.
# BENCH_MEMORY=1000000 starts straight instances with wrk in 10 s slices until that many have
# completed, and records VmRSS after each slice in memory.csv.
# memory_slices NAME LIMIT PATH EXPECT: wrk -c50 in 10 s slices of POST PATH until LIMIT replies
# held EXPECT, VmRSS and VmHWM of the server after each slice in NAME.csv.
memory_slices() {
    local name=$1 limit=$2 path=$3 expect=$4 done_total=0 t_start n rss hwm
    t_start=$(date +%s)
    echo "instances,vmrss_kb,vmhwm_kb,elapsed_s" >"$OUT/$name.csv"
    while [ "$done_total" -lt "$limit" ]; do
        WRK_METHOD=POST WRK_STATUS=201 WRK_EXPECT="$expect" WRK_PATH="$path" \
            wrk -t"$THREADS" -c50 -d10s --timeout "$WRK_TIMEOUT" -s "$ROOT/bench/request.lua" "$BASE" \
            >"$OUT/${name}_slice.txt" 2>&1 || true
        n=$(grep -o 'good=[0-9]*' "$OUT/${name}_slice.txt" | head -1 | cut -d= -f2)
        [ -n "$n" ] && [ "$n" -gt 0 ] || { log "$name: a slice made nothing, stopping"; break; }
        done_total=$((done_total + n))
        rss=$(awk '/^VmRSS/{print $2}' "/proc/$SERVER_PID/status")
        hwm=$(awk '/^VmHWM/{print $2}' "/proc/$SERVER_PID/status")
        echo "$done_total,$rss,$hwm,$(( $(date +%s) - t_start ))" >>"$OUT/$name.csv"
        log "$name: $done_total instances, VmRSS $rss kB, VmHWM $hwm kB"
    done
}

if [ -n "${BENCH_MEMORY:-}" ]; then
    start_server pg_memory "$PG_URL/bench_pg_memory_$$"
    memory_slices memory "$BENCH_MEMORY" /api/v1/processes/straight/instances '"COMPLETED"'
    stop_server pg_memory
fi
# Waiting instances live in the store: RSS should not follow their number either.
if [ -n "${BENCH_MEMORY_WAITING:-}" ]; then
    start_server pg_waiting "$PG_URL/bench_pg_waiting_$$"
    memory_slices memory_waiting "$BENCH_MEMORY_WAITING" /api/v1/processes/usertask/instances \
        '"RUNNING"'
    stop_server pg_waiting
fi

# Timers due at one instant: bench/timers.sh on its own store and server (it starts and stops
# both by PID), so that no other case's load shares its firing phase.
if [ -n "${BENCH_TIMERS:-}" ]; then
    log "timers: $BENCH_TIMERS due at one instant (${BENCH_TIMERS_STORE:-pg})"
    TIMER_OUT="$OUT/timers" TIMER_STORE="${BENCH_TIMERS_STORE:-pg}" PYTHMATA_BIN="$BIN" \
        bash "$ROOT/bench/timers.sh" "$BENCH_TIMERS" >"$OUT/timers.log" 2>&1 ||
        log "timers: failed, see timers.log"
fi

start_server pg_redis "$PG_URL/bench_pg_redis" "redis://127.0.0.1:$REDIS_PORT"
our_cases pg_redis straight50 straight400 parallel50 usertask50 processes50
stop_server pg_redis

start_server sqlite "sqlite://$SQLITE_DIR/bench.db"
our_cases sqlite health50 straight50 straight400 parallel50 parallel400 usertask50 processes50
stop_server sqlite
SERVER_PID=""

# ---- the peer: bpmn-engine behind node:http, same wrk load -----------------------------------
if ! skipped peer; then
    PEER=$ROOT/build/bench/peer
    if [ ! -d "$PEER_SRC" ]; then
        log "peer not found at $PEER_SRC: skipped"
    else
        mkdir -p "$PEER"
        cp "$PEER_SRC"/{package.json,package-lock.json,engine-lib.js,server.js,straight.bpmn,parallel.bpmn,usertask.bpmn} "$PEER/"
        if [ ! -d "$PEER/node_modules" ] || ! cmp -s "$PEER_SRC/package-lock.json" "$PEER/node_modules/.package-lock.json.bench"; then
            (cd "$PEER" && npm ci --no-audit --no-fund >"$OUT/npm_ci.log" 2>&1) &&
                cp "$PEER_SRC/package-lock.json" "$PEER/node_modules/.package-lock.json.bench"
        fi
        # node:http keeps working through requests whose client has gone (a warm-up or an
        # earlier case leaves a backlog of seconds at ~50 inst/s), so every case gets a fresh
        # peer process: no case inherits another's queue.
        peer_case() {  # CASE CONNS SCRIPT VARS...
            local key="peer/$1/$2"
            if [ -n "$ONLY" ] && ! [[ "$key" =~ $ONLY ]]; then
                return 0
            fi
            local port
            port=$(free_port)
            (cd "$PEER" && PORT=$port exec node server.js) >>"$OUT/server_peer.log" 2>&1 &
            SERVER_PID=$!
            PIDS+=("$SERVER_PID")
            BASE=http://127.0.0.1:$port
            if wait_http "$BASE/health" "$SERVER_PID"; then
                run_case peer "$@"
                grep -E '^(VmHWM|VmRSS)' "/proc/$SERVER_PID/status" >"$OUT/rss_peer_$1_c$2.txt" 2>/dev/null || true
            else
                log "peer did not start (see server_peer.log): $key skipped"
            fi
            stop_pid "$SERVER_PID"
            SERVER_PID=""
        }
        log "peer: bpmn-engine $(node -p "require('$PEER/node_modules/bpmn-engine/package.json').version" 2>/dev/null) on node $(node --version)"
        peer_case health 50 request.lua WRK_METHOD=GET WRK_PATH=/health WRK_STATUS=200
        peer_case straight 50 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/straight/instances
        peer_case straight 400 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/straight/instances
        peer_case parallel 50 request.lua "${START[@]}" WRK_PATH=/api/v1/processes/parallel/instances
        peer_case usertask 50 usertask.lua WRK_FLAVOR=peer
    fi
fi

# ---- engine-only Google Benchmarks -----------------------------------------------------------
if ! skipped gbench && [ -z "$ONLY" ]; then
    if [ -x "$ENGINE_BENCH" ]; then
        log "engine Google Benchmarks"
        "$ENGINE_BENCH" --benchmark_min_time=1 --benchmark_out="$OUT/engine_bench.json" \
            --benchmark_out_format=json >"$OUT/engine_bench.txt" 2>&1 || true
        cat "$OUT/engine_bench.txt" >&2
    else
        log "no engine_bench binary at $ENGINE_BENCH (build target engine_bench): skipped"
    fi
fi

# ---- locust, headless, short and bounded (against SQLite) -------------------------------------
if ! skipped locust && [ -z "$ONLY" ] && command -v locust >/dev/null; then
    start_server locust "sqlite://$SQLITE_DIR/locust.db"
    log "locust headless, 50 users, 20 s"
    timeout 60 locust -f "$ROOT/bench/locustfile.py" --headless -u 50 -r 25 -t 20s \
        --host "$BASE" --csv "$OUT/locust" --only-summary >"$OUT/locust.txt" 2>&1 || true
    tail -n 25 "$OUT/locust.txt" >&2
    stop_server locust
    SERVER_PID=""
fi

# ---- summary table and plot ------------------------------------------------------------------
python3 "$ROOT/bench/summarize.py" "$OUT" | tee "$OUT/summary.md"
if ! skipped plot && command -v gnuplot >/dev/null && [ -s "$OUT/plot_throughput.dat" ]; then
    gnuplot -e "outdir='$OUT'; png='$ROOT/docs/bench-throughput.png'" "$ROOT/bench/throughput.gp" &&
        log "plot: docs/bench-throughput.png"
fi
log "results in $OUT"
