#!/usr/bin/env bash
# Throughput with 1, 2 and 3 `pythmata serve` replicas on one PostgreSQL (and one Redis) behind
# nginx (docker/nginx.conf adapted to loopback and to N backends), bounded (about 4 minutes).
#
# Starts its own PostgreSQL 15 (initdb in a temp dir, fsync on, synchronous_commit on) and
# redis-server on free loopback ports. For each configuration
#   direct1  one replica, wrk straight at it (no nginx: the proxy's own cost)
#   nginx1   one replica behind nginx
#   nginx2   two replicas behind nginx (round-robin)
#   nginx3   three replicas behind nginx (round-robin)
# it creates a fresh database, starts the replicas (a copy of build/release/pythmata taken at the
# start) and nginx, deploys bench/models/straight.bpmn, warms up, and runs wrk once
# (bench/request.lua: POST /api/v1/processes/straight/instances, a good answer is a 201 holding
# "COMPLETED") at c=50; BENCH_REPEAT rounds (3) over all four, so drift in the machine's other
# load spreads over every configuration. Every process it starts is stopped by its PID (trap).
# Results: build/bench/replicas/<stamp>/ (results.csv, summary.md with medians, raw wrk output,
# server and nginx logs); build/bench/replicas/latest points at the last run.
#
# Environment (all optional):
#   BENCH_DURATION  wrk measuring time per run (10s)   BENCH_WARMUP  wrk warm-up (3s)
#   BENCH_THREADS   wrk threads (2)                     BENCH_CONNS   wrk connections (50)
#   BENCH_REPEAT    rounds (3): runs per configuration          BENCH_ONLY    regex on the config name
#   PYTHMATA_BIN    the server binary (build/release/pythmata)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

DURATION=${BENCH_DURATION:-10s}
WARMUP=${BENCH_WARMUP:-3s}
THREADS=${BENCH_THREADS:-2}
CONNS=${BENCH_CONNS:-50}
REPEAT=${BENCH_REPEAT:-3}
ONLY=${BENCH_ONLY:-}
SRC_BIN=${PYTHMATA_BIN:-$ROOT/build/release/pythmata}
PG_BIN=/usr/lib/postgresql/15/bin
NGINX=/usr/sbin/nginx

for tool in wrk curl python3 redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/install-deps.sh" >&2; exit 1; }
done
[ -x "$NGINX" ] || { echo "nginx is not installed: run scripts/install-deps.sh" >&2; exit 1; }
[ -x "$SRC_BIN" ] || { echo "no server binary at $SRC_BIN: run make build" >&2; exit 1; }
[ -x "$PG_BIN/postgres" ] || { echo "PostgreSQL 15 is not installed" >&2; exit 1; }

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/build/bench/replicas/$STAMP
mkdir -p "$OUT"
ln -sfn "$STAMP" "$ROOT/build/bench/replicas/latest"
CSV=$OUT/results.csv
echo "config,replicas,run,rps,ops_per_s,p50_ms,p99_ms,max_ms,good,bad,socket_errors,timeouts,server_cpu_ms_per_op,nginx_cpu_ms_per_op,db_cpu_ms_per_op,load1,commands_per_commit" >"$CSV"
log() { echo "[replicas $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }

# ---- process bookkeeping: every PID we start is stopped on exit ------------------------------
source "$ROOT/bench/lib.sh"
bench_begin pythmata-replicas

BIN=$TMP/pythmata
cp "$SRC_BIN" "$BIN"

# CPU accounting, so that a figure taken on a busy machine can still be compared: clock ticks
# used by process trees (PID and its children: the postmaster and its backends, nginx and its
# workers) over the measured run, divided by the good answers = CPU milliseconds per start.
CLK_TCK=$(getconf CLK_TCK)

{
    echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "cores=$(nproc)"
    echo "git=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "nginx=$($NGINX -v 2>&1 | sed 's/.*nginx\///')"
    echo "settings=duration $DURATION warm-up $WARMUP threads $THREADS conns $CONNS repeat $REPEAT"
} >"$OUT/machine.txt"
cat "$OUT/machine.txt" >&2

# Sum over the replicas of pythmata_batch_size_sum and _count (commands, group commits): the
# mean group commit size of a run is the difference of two readings.
batch_totals() {
    local port sum=0 count=0 s c
    for port in "${PORTS[@]}"; do
        read -r s c < <(curl -sf "http://127.0.0.1:$port/metrics" |
            awk '/^pythmata_batch_size_sum /{s=$2} /^pythmata_batch_size_count /{c=$2} END{printf "%d %d\n", s, c}')
        sum=$((sum + ${s:-0}))
        count=$((count + ${c:-0}))
    done
    echo "$sum $count"
}

# ---- PostgreSQL (fsync on) and Redis ---------------------------------------------------------
start_postgres

start_redis

# ---- one configuration ------------------------------------------------------------------------
RUN_PIDS=()  # the replicas and nginx of the configuration being measured
PORTS=()

start_replicas() {  # CONFIG COUNT DB
    local config=$1 count=$2 db=$3 i
    PORTS=()
    REPLICA_PIDS=()
    NGINX_PID=""
    for i in $(seq 1 "$count"); do
        local log_file=$OUT/server_${config}_$i.log
        # 3 replicas x (10 + 10) connections stay below max_connections=100.
        PYTHMATA_HTTP_PORT=0 PYTHMATA_DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/$db" \
            PYTHMATA_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" PYTHMATA_LOG_LEVEL=warn \
            PYTHMATA_ACCESS_LOG=false PYTHMATA_DB_POOL_SIZE=10 PYTHMATA_DB_MAX_OVERFLOW=10 \
            "$BIN" serve >"$log_file" 2>&1 &
        local pid=$!
        PIDS+=("$pid")
        RUN_PIDS+=("$pid")
        REPLICA_PIDS+=("$pid")
        local port=""
        for _ in $(seq 1 100); do
            port=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$log_file" | head -1 | sed 's/.*://') || true
            [ -n "$port" ] && break
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        [ -n "$port" ] || { echo "replica $i of $config did not start:" >&2; cat "$log_file" >&2; exit 1; }
        wait_http "http://127.0.0.1:$port/health" "$pid" || { echo "replica $i not healthy" >&2; exit 1; }
        PORTS+=("$port")
        log "$config: replica $i pid $pid on port $port"
    done
}

# docker/nginx.conf with its three backends replaced by the replicas' loopback ports, its listen
# port and /tmp paths moved, and no access log (it would cost the proxy a write per request).
start_nginx() {  # CONFIG
    local config=$1 dir=$TMP/nginx_$1
    mkdir -p "$dir"
    chmod 755 "$dir"
    NGINX_PORT=$(free_port)
    python3 - "$ROOT/docker/nginx.conf" "$dir" "$NGINX_PORT" "${PORTS[@]}" >"$dir/nginx.conf" <<'PY'
import re, sys
conf, dir_, port, backends = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3], sys.argv[4:]
lines = re.findall(r"^ *server [A-Za-z0-9_.-]+:8000 [^\n]*\n", conf, re.M)
if len(lines) != 3:
    sys.exit("docker/nginx.conf does not have 3 backends")
indent = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
options = lines[0].strip().split(" ", 2)[2]  # "max_fails=3 fail_timeout=10s;"
new = "".join(f"{indent}server 127.0.0.1:{b} {options}\n" for b in backends)
conf = conf.replace("".join(lines), new)
if "listen 8080;" not in conf:
    sys.exit("docker/nginx.conf has no 'listen 8080;'")
conf = conf.replace("listen 8080;", f"listen 127.0.0.1:{port};")
conf = conf.replace("/tmp/", dir_ + "/").replace("access_log /dev/stdout;", "access_log off;")
print(conf)
PY
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e stderr -g 'daemon off;' >"$OUT/nginx_$config.log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    RUN_PIDS+=("$pid")
    NGINX_PID=$pid
    wait_http "http://127.0.0.1:$NGINX_PORT/health" "$pid" ||
        { echo "nginx did not start:" >&2; cat "$OUT/nginx_$config.log" >&2; exit 1; }
    log "$config: nginx pid $pid on port $NGINX_PORT ($(nproc) workers) in front of ${PORTS[*]}"
}

measure() {  # CONFIG REPLICAS BASE RUN
    local config=$1 replicas=$2 base=$3 run=$4
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/xml' \
        --data-binary "@$ROOT/bench/models/straight.bpmn" "$base/api/v1/processes" ||
        { echo "deploy of straight failed on $config" >&2; exit 1; }
    export WRK_METHOD=POST WRK_STATUS=201 WRK_EXPECT='"COMPLETED"' \
        WRK_PATH=/api/v1/processes/straight/instances
    wrk -t"$THREADS" -c"$CONNS" -d"$WARMUP" -s "$ROOT/bench/request.lua" "$base" >/dev/null 2>&1 || true
    sleep 1
    local raw=$OUT/wrk_${config}_r$run.txt
    echo "# wrk -t$THREADS -c$CONNS -d$DURATION --latency -s bench/request.lua $base (straight starts)" >"$raw"
    local srv0 ngx0 db0 srv1 ngx1 db1 cmd0 commits0 cmd1 commits1
    read -r cmd0 commits0 < <(batch_totals)
    srv0=$(tree_ticks "${REPLICA_PIDS[@]}")
    ngx0=$( [ -n "$NGINX_PID" ] && tree_ticks "$NGINX_PID" || echo 0)
    db0=$(tree_ticks "$PG_PID")
    wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$ROOT/bench/request.lua" "$base" \
        >>"$raw" 2>&1 || true
    srv1=$(tree_ticks "${REPLICA_PIDS[@]}")
    ngx1=$( [ -n "$NGINX_PID" ] && tree_ticks "$NGINX_PID" || echo 0)
    db1=$(tree_ticks "$PG_PID")
    read -r cmd1 commits1 < <(batch_totals)
    python3 - "$raw" "$config" "$replicas" "$run" "$CLK_TCK" "$srv0" "$srv1" "$ngx0" "$ngx1" \
        "$db0" "$db1" "$(cut -d' ' -f1 /proc/loadavg)" "$cmd0" "$cmd1" "$commits0" "$commits1" \
        >>"$CSV" <<'PY'
import sys
raw, config, replicas, run, tck = sys.argv[1:6]
srv0, srv1, ngx0, ngx1, db0, db1 = (int(x) for x in sys.argv[6:12])
load1 = sys.argv[12]
cmd0, cmd1, commits0, commits1 = (int(x) for x in sys.argv[13:17])
per_commit = f"{(cmd1 - cmd0) / max(commits1 - commits0, 1):.1f}"
r = {}
for line in open(raw):
    if line.startswith("RESULT "):
        r = dict(kv.split("=", 1) for kv in line.split()[1:])
if not r:
    print(f"{config},{replicas},{run},0,0,,,,0,0,0,0,,,,{load1},{per_commit}")
else:
    sock = int(r["connect_err"]) + int(r["read_err"]) + int(r["write_err"])
    good = max(int(r["good"]), 1)
    per_op = lambda a, b: f"{(b - a) * 1000 / int(tck) / good:.3f}"
    print(f"{config},{replicas},{run},{r['rps']},{r['ops_per_s']},{r['p50_ms']},{r['p99_ms']},"
          f"{r['max_ms']},{r['good']},{r['bad']},{sock},{r['timeouts']},"
          f"{per_op(srv0, srv1)},{per_op(ngx0, ngx1)},{per_op(db0, db1)},{load1},{per_commit}")
PY
    log "$config run $run: $(grep -h '^RESULT' "$raw" | cut -d' ' -f6,8,10-13)" \
        "cpu ms/start server,nginx,db=$(tail -1 "$CSV" | cut -d, -f13-15)" \
        "load1=$(tail -1 "$CSV" | cut -d, -f16) commands/commit=$(tail -1 "$CSV" | cut -d, -f17)"
    grep -h '^FIRST_BAD' "$raw" >&2 || true
    unset WRK_METHOD WRK_STATUS WRK_EXPECT WRK_PATH
}

stop_run() {
    local pid
    for pid in "${RUN_PIDS[@]:-}"; do
        [ -n "$pid" ] && stop_pid "$pid"
    done
    RUN_PIDS=()
}

run_config() {  # CONFIG REPLICAS VIA(direct|nginx) RUN
    local config=$1 replicas=$2 via=$3 run=$4
    if [ -n "$ONLY" ] && ! [[ "$config" =~ $ONLY ]]; then
        return 0
    fi
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres "bench_${config}_$run"
    redis-cli -p "$REDIS_PORT" flushall >/dev/null
    start_replicas "$config" "$replicas" "bench_${config}_$run"
    local base=http://127.0.0.1:${PORTS[0]}
    if [ "$via" = nginx ]; then
        start_nginx "$config"
        base=http://127.0.0.1:$NGINX_PORT
    fi
    measure "$config" "$replicas" "$base" "$run"
    stop_run
}

# Rounds, not runs in a row: the machine's other load drifts, and each round measures every
# configuration once (fresh database and processes each time).
for round in $(seq 1 "$REPEAT"); do
    run_config direct1 1 direct "$round"
    run_config nginx1 1 nginx "$round"
    run_config nginx2 2 nginx "$round"
    run_config nginx3 3 nginx "$round"
done

# ---- medians ----------------------------------------------------------------------------------
python3 - "$CSV" >"$OUT/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| config | replicas | runs | starts/s (median) | each run | p50 ms | p99 ms | CPU ms per start: replicas / nginx / PostgreSQL (median) | commands per group commit (median) | load1 during runs | bad | socket errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for config in dict.fromkeys(r["config"] for r in rows):
    rs = [r for r in rows if r["config"] == config]
    ops = [float(r["ops_per_s"]) for r in rs]
    med = statistics.median(ops)
    mid = min(rs, key=lambda r: abs(float(r["ops_per_s"]) - med))
    cpu = lambda col: statistics.median(float(r[col] or 0) for r in rs)
    print(f"| {config} | {rs[0]['replicas']} | {len(rs)} | {med:.0f} | "
          f"{' / '.join(f'{o:.0f}' for o in ops)} | {mid['p50_ms']} | {mid['p99_ms']} | "
          f"{cpu('server_cpu_ms_per_op'):.2f} / {cpu('nginx_cpu_ms_per_op'):.2f} / "
          f"{cpu('db_cpu_ms_per_op'):.2f} | {cpu('commands_per_commit'):.1f} | "
          f"{' / '.join(r['load1'] for r in rs)} | "
          f"{sum(int(r['bad']) for r in rs)} | {sum(int(r['socket_errors']) for r in rs)} |")
PY
cat "$OUT/summary.md" >&2
log "results in $OUT"
