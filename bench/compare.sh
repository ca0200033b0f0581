#!/usr/bin/env bash
# Side-by-side comparison of server binaries or settings on this noisy 2-core machine: the
# variants are run one after the other, round after round (A B A B ...), each on a fresh database
# of ONE PostgreSQL 15 that this script starts (temp dir, fsync on, stopped by PID; or a fresh
# SQLite file, COMPARE_STORE=sqlite), and each run
# reports ops/s, p99, and the CPU of PostgreSQL and of the server per operation (clock ticks of
# their process trees over the measured run): CPU per op moves much less than ops/s when the
# host's other tenants take cores. The summary gives the medians per variant and case.
#
#   bash bench/compare.sh VARIANT...
#     VARIANT = "LABEL=BINARY [NAME=VALUE ...]", e.g.
#       bash bench/compare.sh old=/tmp/pythmata-old new=build/release/pythmata
#       bash bench/compare.sh "pool128=build/release/pythmata" \
#                             "pool4=build/release/pythmata PYTHMATA_BLOCKING_THREADS=4"
#   Environment: COMPARE_CASES   among straight usertask usertask_lookup get_task get_instance health
#                                (default "straight usertask")
#                COMPARE_ROUNDS  rounds of every variant and case (3)
#                COMPARE_DURATION measured wrk time per run (10s; 3 s of warm-up before)
#                COMPARE_CONNS   wrk connections (50); wrk -t2 always
#                COMPARE_STORE   pg (default) or sqlite: a fresh SQLite file per run instead (the
#                                PostgreSQL column is then 0)
# Results: build/bench/compare/<stamp>/ (results.csv, summary.md, wrk and server logs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_BIN=/usr/lib/postgresql/15/bin
CASES=${COMPARE_CASES:-straight usertask}
ROUNDS=${COMPARE_ROUNDS:-3}
DURATION=${COMPARE_DURATION:-10s}
CONNS=${COMPARE_CONNS:-50}
STORE=${COMPARE_STORE:-pg}
[ $# -ge 1 ] || { sed -n 2,20p "$0"; exit 2; }
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=$ROOT/build/bench/compare/$STAMP
mkdir -p "$OUT"
log() { echo "[compare $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
source "$ROOT/bench/lib.sh"
bench_begin pythmata-compare

# Each variant's binary is copied first: a rebuild during the comparison changes nothing.
LABELS=()
declare -A BIN ENVS
n=0
for variant in "$@"; do
    read -r head rest <<<"$variant"
    label=${head%%=*}
    src=${head#*=}
    [ -x "$src" ] || { echo "not an executable: $src" >&2; exit 2; }
    n=$((n + 1))
    cp "$src" "$TMP/pythmata-$n"
    LABELS+=("$label")
    BIN[$label]=$TMP/pythmata-$n
    ENVS[$label]=${rest:-}
done

PG_PID=""
if [ "$STORE" = pg ]; then
    start_postgres
    PSQL=("$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)
fi
echo "variant,case,round,ops_per_s,p99_ms,pg_us_per_op,server_us_per_op,peak_rss_kb" \
    >"$OUT/results.csv"
{
    echo "# bench/compare.sh $STAMP"
    echo "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
    for label in "${LABELS[@]}"; do echo "variant $label: $(basename "${BIN[$label]}") ${ENVS[$label]}"; done
    echo "store=$STORE cases=$CASES rounds=$ROUNDS duration=$DURATION conns=$CONNS"
} >"$OUT/machine.txt"

# one_run LABEL CASE ROUND: a fresh database and server, warm-up, the measured run.
one_run() {
    local label=$1 case=$2 round=$3 db="cmp_${RANDOM}_$round" port srv model target url
    if [ "$STORE" = pg ]; then
        "${PSQL[@]}" -c "CREATE DATABASE $db" >/dev/null
        url="postgresql://postgres@127.0.0.1:$PG_PORT/$db"
    else
        url="sqlite://$TMP/$db.db"
    fi
    port=$(free_port)
    # shellcheck disable=SC2086
    env ${ENVS[$label]} PYTHMATA_HTTP_PORT="$port" PYTHMATA_HTTP_HOST=127.0.0.1 \
        PYTHMATA_DB_URL="$url" PYTHMATA_ACCESS_LOG=false \
        PYTHMATA_LOG_LEVEL=warn "${BIN[$label]}" serve >"$OUT/server_${label}_${case}_$round.log" 2>&1 &
    srv=$!
    PIDS+=("$srv")
    wait_http "http://127.0.0.1:$port/health" "$srv" || { log "server $label did not start"; exit 1; }
    local base=http://127.0.0.1:$port script=request.lua wenv=()
    model=straight
    [ "$case" = straight ] || model=usertask
    curl -sf -o /dev/null -X POST -H 'Content-Type: application/xml' \
        --data-binary "@$ROOT/bench/models/$model.bpmn" "$base/api/v1/processes"
    case $case in
    straight)
        wenv=(WRK_METHOD=POST WRK_STATUS=201 WRK_EXPECT='"COMPLETED"'
              WRK_PATH=/api/v1/processes/straight/instances) ;;
    usertask) script=usertask.lua ;;
    usertask_lookup) script=usertask.lua wenv=(WRK_PAIR=lookup) ;;
    get_task | get_instance)
        local id
        id=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"variables":{"amount":1}}' \
            "$base/api/v1/processes/usertask/instances" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["id"])')
        target=/api/v1/instances/$id
        [ "$case" = get_task ] && target="/api/v1/tasks?instance_id=$id"
        wenv=(WRK_METHOD=GET WRK_STATUS=200 WRK_PATH="$target") ;;
    health) wenv=(WRK_METHOD=GET WRK_STATUS=200 WRK_PATH=/health) ;;
    *) log "unknown case $case"; exit 2 ;;
    esac
    env "${wenv[@]}" wrk -t2 -c"$CONNS" -d3s -s "$ROOT/bench/$script" "$base" >/dev/null 2>&1 || true
    local raw=$OUT/wrk_${label}_${case}_$round.txt pg0 sv0 pg1 sv1
    pg0=0
    [ -n "$PG_PID" ] && pg0=$(tree_ticks "$PG_PID")
    sv0=$(tree_ticks "$srv")
    env "${wenv[@]}" wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s "$ROOT/bench/$script" "$base" \
        >"$raw" 2>&1 || true
    pg1=0
    [ -n "$PG_PID" ] && pg1=$(tree_ticks "$PG_PID")
    sv1=$(tree_ticks "$srv")
    local rss
    rss=$(awk '/^VmHWM/{print $2}' "/proc/$srv/status")
    stop_pid "$srv"
    if [ "$STORE" = pg ]; then
        "${PSQL[@]}" -c "DROP DATABASE $db" >/dev/null
    else
        rm -f "$TMP/$db.db"*
    fi
    python3 - "$raw" "$label" "$case" "$round" "$((pg1 - pg0))" "$((sv1 - sv0))" "$rss" \
        "$(getconf CLK_TCK)" >>"$OUT/results.csv" <<'EOF'
import re, sys
raw, label, case, rnd, pg, sv, rss, hz = sys.argv[1:]
text = open(raw).read()
m = re.search(r"RESULT (.*)", text)
fields = dict(kv.split("=", 1) for kv in m.group(1).split()) if m else {}
ops = float(fields.get("ops_per_s", 0))
duration = float(fields.get("duration_s", 0)) or 1.0
per_op = lambda ticks: 1e6 * int(ticks) / int(hz) / (ops * duration) if ops else 0.0
print(f"{label},{case},{rnd},{ops:.1f},{fields.get('p99_ms', '')},{per_op(pg):.1f},{per_op(sv):.1f},{rss}")
EOF
    log "$(tail -1 "$OUT/results.csv")"
}

for round in $(seq 1 "$ROUNDS"); do
    for case in $CASES; do
        for label in "${LABELS[@]}"; do
            one_run "$label" "$case" "$round"
        done
    done
done

python3 - "$OUT/results.csv" >"$OUT/summary.md" <<'EOF'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
cases = list(dict.fromkeys(r["case"] for r in rows))
labels = list(dict.fromkeys(r["variant"] for r in rows))
print("| case | variant | ops/s (median; runs) | p99 ms | PostgreSQL µs/op | server µs/op | peak RSS MB |")
print("|---|---|---|---|---|---|---|")
for case in cases:
    for label in labels:
        sel = [r for r in rows if r["case"] == case and r["variant"] == label]
        if not sel:
            continue
        med = lambda k: statistics.median(float(r[k] or 0) for r in sel)
        runs = " / ".join(f"{float(r['ops_per_s']):,.0f}" for r in sel)
        print(f"| {case} | {label} | {med('ops_per_s'):,.0f} ({runs}) | {med('p99_ms'):.1f} | "
              f"{med('pg_us_per_op'):.0f} | {med('server_us_per_op'):.0f} | {med('peak_rss_kb') / 1024:.1f} |")
EOF
cat "$OUT/summary.md"
log "results in $OUT"
