#!/usr/bin/env bash
# Plan review (session 7, docs/benchmarks.md): the pool's PostgreSQL connections plan every
# statement with parameters generically (db_plan_cache_mode = force_generic_plan), prepared or
# not. This script collects every such statement the store sends, EXPLAINs each on a large,
# skewed database with a generic and with a custom plan, and flags the generic plans that scan a
# large table or cost far more than the custom one. A statement run in a plan_with_values
# transaction (the lists, the retention sweep, DELETE /processes) gets custom plans in
# production: a flag on one of those is expected.
#   bash bench/plans/review.sh        env: PYTHMATA_BIN (build/release/pythmata),
#                                          PLANS_SCALE (seconds of each load, x; default 1:
#                                          ~650,000 instances, ~100,000 jobs),
#                                          PLANS_CTEST (ctest arguments that select the tests
#                                          whose statements are reviewed; default: all but fuzz),
#                                          PLANS_STATEMENTS (an earlier run's statements.json:
#                                          skips the tests)
# Needs the build (the test binaries), wrk and PostgreSQL 15. Takes ~8 minutes at scale 1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE=$ROOT/bench/plans
BIN=${PYTHMATA_BIN:-$ROOT/build/release/pythmata}
SCALE=${PLANS_SCALE:-1}
PG_BIN=/usr/lib/postgresql/15/bin
OUT=${PLANS_OUT:-$ROOT/build/bench/plans-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$OUT/review.log"; }
source "$ROOT/bench/lib.sh"
bench_begin pythmata-plans

# 1. The statements: the test suite with every test cluster logging its statements.
if [ -n "${PLANS_STATEMENTS:-}" ]; then
    cp "$PLANS_STATEMENTS" "$OUT/statements.json"  # an earlier run's list
else
    mkdir -p "$TMP/logs"
    chmod 777 "$TMP/logs"
    log "running the tests with statement logs (${PLANS_CTEST:--E fuzz})"
    # shellcheck disable=SC2086
    PYTHMATA_TEST_PG_LOG_DIR=$TMP/logs ctest --test-dir "$ROOT/build/release" -j "$(nproc)" \
        --timeout 600 ${PLANS_CTEST:--E fuzz} >"$OUT/ctest.log" 2>&1 ||
        log "some tests failed (see ctest.log)"
    python3 "$HERE/statements.py" "$TMP/logs/*.log" "$OUT/statements.json" |
        tee -a "$OUT/review.log"
fi

# 2. The database: our own server fills it over HTTP.
start_postgres
export PGPORT=$PG_PORT
"$PG_BIN/createdb" -h 127.0.0.1 -U postgres review
PORT=$(free_port)
PYTHMATA_HTTP_PORT=$PORT PYTHMATA_DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/review" \
    PYTHMATA_ACCESS_LOG=false PYTHMATA_LOG_LEVEL=warn "$BIN" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
BASE=http://127.0.0.1:$PORT
wait_http "$BASE/health" "$SERVER_PID" || { log "the server did not start"; exit 1; }
for model in "$ROOT"/bench/models/{straight,usertask,timer}.bpmn "$HERE/waits.bpmn"; do
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/xml' --data-binary "@$model" \
        "$BASE/api/v1/processes"
done
load() {  # PROC SECONDS [connections]
    local secs
    secs=$(python3 -c "print(max(1, round($2 * $SCALE)))")
    local conns=${3:-50}
    PROC=$1 wrk -t"$((conns < 2 ? 1 : 2))" -c"$conns" -d"${secs}s" -s "$HERE/start.lua" "$BASE" | grep -E 'Requests/sec' |
        sed "s/^/$1: /" | tee -a "$OUT/review.log"
}
log "filling the database"
load straight 60
secs=$(python3 -c "print(max(1, round(40 * $SCALE)))")
wrk -t2 -c50 -d"${secs}s" -s "$ROOT/bench/usertask.lua" "$BASE" | grep RESULT | sed 's/^/usertask pairs: /' |
    tee -a "$OUT/review.log"
load usertask 10
load timerbench 15
load msgwait 8
load sigwait 2
load jobwait 5
load rarejob 1 1
stop_pid "$SERVER_PID"
# Some jobs activated by a worker (locked), as in production; then fresh statistics.
psql -X -q -h 127.0.0.1 -U postgres review \
    -c "UPDATE jobs SET lock_owner = 'w', lock_expires_at = 4102444800000 WHERE id IN
        (SELECT id FROM jobs WHERE type = 'charge' LIMIT 2000)" -c "VACUUM ANALYZE" \
    -c "SELECT status, process_key, count(*) FROM instances GROUP BY 1, 2 ORDER BY 1, 2" \
    -c "SELECT kind, type, count(*) FROM jobs GROUP BY 1, 2 ORDER BY 1, 2" | tee -a "$OUT/review.log"

# 3. The plans.
log "explaining"
python3 "$HERE/explain.py" "$OUT/statements.json" "$OUT/plans.json" | tee "$OUT/report.txt"
log "report in $OUT/report.txt"
