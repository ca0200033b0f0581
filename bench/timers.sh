#!/usr/bin/env bash
# Timers due in the same second (issue 5): start N instances of bench/models/timer.bpmn whose
# timer is due at one instant DUE, wait, and report how late they fired (p50/p99/max of
# ended_at - DUE), how many fired, whether any fired twice (two COMPLETED history entries of
# the timer element) and the group commits of the firing phase (from /metrics). Runs its own
# `pythmata serve` on SQLite in a temp dir (stopped by PID); PYTHMATA_* settings in the
# environment reach it (e.g. PYTHMATA_TIMER_BATCH_SIZE).
#   bash bench/timers.sh [N=100000]      env: TIMER_LEAD_S (seconds from now to DUE),
#                                             TIMER_WAIT_S (longest wait after DUE, 300),
#                                             PYTHMATA_BIN (the binary, build/release/pythmata),
#                                             TIMER_STORE (sqlite, or pg: its own PostgreSQL 15,
#                                             fsync on, in the temp dir, stopped by PID),
#                                             TIMER_OUT (the results dir; bench/run.sh sets it)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
N=${1:-100000}
LEAD=${TIMER_LEAD_S:-$((N / 1000 + 20))}
WAIT=${TIMER_WAIT_S:-300}
BIN_SRC=${PYTHMATA_BIN:-$ROOT/build/release/pythmata}
OUT=${TIMER_OUT:-$ROOT/build/bench/results/timers-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
TMP=$(mktemp -d /tmp/pythmata-timers-XXXXXX)
cp "$BIN_SRC" "$TMP/pythmata"
STORE=${TIMER_STORE:-sqlite}
SERVER_PID=""
PG_PID=""
stop_pid() {
    if [ -n "$1" ] && kill -0 "$1" 2>/dev/null; then
        kill -TERM "$1" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$1" 2>/dev/null || true
    fi
}
cleanup() {
    stop_pid "$SERVER_PID"
    stop_pid "$PG_PID"
    rm -rf "$TMP"
}
trap cleanup EXIT
if [ "$STORE" = pg ]; then
    PG_BIN=/usr/lib/postgresql/15/bin
    PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    mkdir -p "$TMP/pg"
    RUNAS=()
    if [ "$(id -u)" = 0 ]; then
        chmod 755 "$TMP"
        chown postgres: "$TMP/pg"
        RUNAS=(runuser -u postgres --)
    fi
    "${RUNAS[@]}" "$PG_BIN/initdb" -D "$TMP/pg/data" -U postgres -A trust -E UTF8 --locale=C \
        >"$OUT/initdb.log" 2>&1
    "${RUNAS[@]}" "$PG_BIN/postgres" -D "$TMP/pg/data" -p "$PG_PORT" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories= -c fsync=on -c synchronous_commit=on \
        -c shared_buffers=128MB -c logging_collector=off >"$OUT/postgres.log" 2>&1 &
    PG_PID=$!
    for _ in $(seq 1 100); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
        sleep 0.1
    done
    "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres timers
    DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/timers"
else
    DB=$TMP/timers.db
    DB_URL="sqlite://$DB"
fi
PYTHMATA_HTTP_PORT=0 PYTHMATA_DB_URL="$DB_URL" PYTHMATA_LOG_LEVEL=warn \
    PYTHMATA_ACCESS_LOG=false "$TMP/pythmata" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 100); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$OUT/server.log" | sed 's/.*://') || true
    [ -n "${PORT:-}" ] && break
    sleep 0.1
done
BASE=http://127.0.0.1:$PORT
curl -sf -o /dev/null -X POST -H 'Content-Type: application/xml' \
    --data-binary "@$ROOT/bench/models/timer.bpmn" "$BASE/api/v1/processes"
DUE_MS=$(( ($(date +%s) + LEAD) * 1000 ))
DUE_ISO=$(date -u -d "@$((DUE_MS / 1000))" +%Y-%m-%dT%H:%M:%SZ)
echo "starting $N instances ($STORE), timers due at $DUE_ISO (in ${LEAD}s)" | tee "$OUT/report.txt"
T0=$(date +%s.%N)
TIMER_COUNT=$N TIMER_DUE=$DUE_ISO TIMER_THREADS=2 wrk -t2 -c50 -d$((LEAD - 5))s --timeout 10s \
    -s "$ROOT/bench/timers.lua" "$BASE" >"$OUT/wrk.txt" 2>&1 || true
grep RESULT "$OUT/wrk.txt" | tee -a "$OUT/report.txt"
q() {
    if [ "$STORE" = pg ]; then
        psql -At -h 127.0.0.1 -p "$PG_PORT" -U postgres timers -c "$1" | tail -1
    else
        sqlite3 -readonly "$DB" "PRAGMA busy_timeout=5000; $1" | tail -1
    fi
}
WAITING=$(q "SELECT count(*) FROM instances WHERE process_key='timerbench' AND status='RUNNING'")
echo "waiting before DUE: $WAITING (start phase took $(echo "$(date +%s.%N) - $T0" | bc) s)" | tee -a "$OUT/report.txt"
batch_metrics() {
    curl -sf "$BASE/metrics" | grep -E '^pythmata_batch_(size|commit_seconds)_(sum|count) ' || true
}
METRICS_BEFORE=$(batch_metrics)
while [ "$(date +%s)" -lt $((DUE_MS / 1000)) ]; do sleep 0.5; done
for _ in $(seq 1 $((WAIT / 2))); do
    left=$(q "SELECT count(*) FROM instances WHERE process_key='timerbench' AND status='RUNNING'")
    [ "$left" = 0 ] && break
    sleep 2
done
TOTAL=$(q "SELECT count(*) FROM instances WHERE process_key='timerbench'")
FIRED=$(q "SELECT count(*) FROM instances WHERE process_key='timerbench' AND status='COMPLETED'")
pct() {
    q "SELECT ended_at - $DUE_MS FROM instances WHERE process_key='timerbench' AND status='COMPLETED'
       ORDER BY ended_at LIMIT 1 OFFSET (SELECT CAST(($1 / 100.0) * (count(*) - 1) AS int)
       FROM instances WHERE process_key='timerbench' AND status='COMPLETED')"
}
EARLY=$(q "SELECT count(*) FROM instances WHERE process_key='timerbench' AND status='COMPLETED' AND ended_at < $DUE_MS")
# History is one row per instance per commit, its entries a JSON array (migration 0005; a
# json column on PostgreSQL since migration 0007); an entry is [element_id, element_type, name,
# event, at], or an object with those keys in rows of earlier builds.
if [ "$STORE" = pg ]; then
    ENTRIES="history h, json_array_elements(h.events) e
           WHERE coalesce(e->>0, e->>'element_id') = 'wait'
             AND coalesce(e->>3, e->>'event') = 'COMPLETED'"
else
    ENTRIES="history h, json_each(h.events) e
           WHERE coalesce(json_extract(e.value, '\$[0]'),
                          json_extract(e.value, '\$.element_id')) = 'wait'
             AND coalesce(json_extract(e.value, '\$[3]'),
                          json_extract(e.value, '\$.event')) = 'COMPLETED'"
fi
TWICE=$(q "SELECT count(*) FROM (SELECT h.instance_id FROM $ENTRIES
           GROUP BY h.instance_id HAVING count(*) > 1) AS twice")
# The timer's COMPLETED entries in all: one per fired instance, or the query above sees nothing.
WAIT_COMPLETED=$(q "SELECT count(*) FROM $ENTRIES")
# Group commits of the firing phase (metrics after minus before DUE): how many firings each
# carried and how long each took.
METRICS_AFTER=$(batch_metrics)
{
    printf '%s\n%s\n' "$METRICS_BEFORE" "$METRICS_AFTER" | awk '
        { if ($1 in v) d[$1] = $2 - v[$1]; else v[$1] = $2 }
        END {
            n = d["pythmata_batch_size_count"]
            if (n > 0)
                printf "firing phase: commits=%d mean_batch=%.1f mean_commit_ms=%.2f\n", n,
                    d["pythmata_batch_size_sum"] / n,
                    1000 * d["pythmata_batch_commit_seconds_sum"] / d["pythmata_batch_commit_seconds_count"] }'
    echo "instances=$TOTAL fired=$FIRED early=$EARLY fired_twice=$TWICE wait_completed=$WAIT_COMPLETED"
    echo "lateness_ms p50=$(pct 50) p99=$(pct 99) max=$(pct 100) min=$(pct 0)"
} | tee -a "$OUT/report.txt"
