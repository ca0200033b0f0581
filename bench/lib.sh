# Shared pieces of the benchmark scripts (bench/run.sh, bench/replicas.sh), sourced after the
# script has set OUT (its results directory) and PG_BIN. Provides:
#   bench_begin PREFIX       a temp dir in $TMP; every PID appended to PIDS is stopped on exit
#   stop_pid PID             TERM, up to 5 s, then KILL; reaps it
#   free_port                a free loopback TCP port
#   wait_http URL PID        until URL answers 2xx (15 s), or PID died
#   tree_ticks PID...        CPU clock ticks used by the process trees (children included)
#   start_postgres           PostgreSQL 15 in $TMP/pg on a free port, fsync and synchronous_commit
#                            on: sets PG_PORT and PG_PID
#   start_redis              redis-server on a free port, no persistence: sets REDIS_PORT,
#                            REDIS_PID
# Logs go to $OUT (initdb.log, postgres.log, redis.log); `log` must be defined by the script.

stop_pid() {
    local pid=$1
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local pid
    for pid in "${PIDS[@]:-}"; do
        [ -n "$pid" ] && stop_pid "$pid"
    done
    rm -rf "$TMP"
}

bench_begin() {  # PREFIX
    PIDS=()
    TMP=$(mktemp -d "/tmp/$1-XXXXXX")
    chmod 755 "$TMP"
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_http() {  # url pid
    for _ in $(seq 1 150); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# CPU accounting: clock ticks used by process trees (each PID and its children: runuser ->
# postmaster -> backends, nginx and its workers), so a figure taken on a busy machine can still be
# compared: read before and after a measured run.
tree_ticks() {  # PID...
    local pids="$*" frontier="$*" next p t total=0
    while [ -n "$frontier" ]; do
        next=""
        for p in $frontier; do
            next="$next $(pgrep -P "$p" 2>/dev/null | tr '\n' ' ')"
        done
        frontier=$(echo $next)
        pids="$pids $frontier"
    done
    for p in $pids; do
        # utime + stime, plus cutime + cstime: the CPU of backends that exited and were reaped
        t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)
        total=$((total + ${t:-0}))
    done
    echo "$total"
}

start_postgres() {
    PG_PORT=$(free_port)
    local dir=$TMP/pg
    mkdir -p "$dir"
    local runas=()
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$dir"
        runas=(runuser -u postgres --)
    fi
    log "initdb in $dir"
    "${runas[@]}" "$PG_BIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C \
        >"$OUT/initdb.log" 2>&1
    "${runas[@]}" "$PG_BIN/postgres" -D "$dir/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories= -c fsync=on -c synchronous_commit=on -c max_connections=100 \
        -c shared_buffers=128MB -c logging_collector=off >"$OUT/postgres.log" 2>&1 &
    PG_PID=$!
    PIDS+=("$PG_PID")
    for _ in $(seq 1 100); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { echo "PostgreSQL did not start" >&2; exit 1; }
    log "PostgreSQL pid $PG_PID on port $PG_PORT (fsync=on, synchronous_commit=on)"
}

start_redis() {
    REDIS_PORT=$(free_port)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
        --dir "$TMP" >"$OUT/redis.log" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 1 50); do
        redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break
        sleep 0.1
    done
    log "redis pid $REDIS_PID on port $REDIS_PORT"
}
