#!/usr/bin/env bash
# PostgreSQL's own floor for a user task pair (issue 5's 5,000 pairs/s target): pgbench, with no
# Pythmata server and no HTTP, runs the database work of user task pairs on our schema, as
# batches of B pairs like the server's group commit: one transaction inserting B instances and
# their B open tasks; with FLOOR_READ=1, one read of the B task pages (what a client that asks
# GET /tasks for the task id adds: bench case usertask_lookup; the start answer names the task,
# so bench/usertask.lua does not ask); one transaction completing the B tasks,
# updating the B instances to COMPLETED and inserting their history. Rows are the sizes the
# server writes for bench/models/usertask.bpmn (measured on a bench database). The statements
# find the instances' tasks by instance alone (no state = 'OPEN' literal, which can lead a
# generic plan to scan every OPEN entry of user_tasks_state_idx: see docs/benchmarks.md,
# "Session 11"). What this
# measures is what the schema and PostgreSQL cost per pair at best (fewer round trips than the
# server, no JSON or protocol work of ours), and so the most pairs/s this machine could reach
# with the rest of the work (server, wrk) on the same two cores.
#   bash bench/pg_floor.sh            env: FLOOR_BATCHES ("1 5 10 20 50": pairs per transaction),
#                                          FLOOR_CONNS (4: about the commits the server has in flight), FLOOR_SECONDS (10),
#                                          FLOOR_READ (0; 1 adds the task page read),
#                                          FLOOR_ROUNDS (3), PYTHMATA_BIN (build/release/pythmata)
# Needs PostgreSQL 15 (with pgbench) and the Release build (it migrates the schema). ~3 minutes
# with the defaults. "machine busy" is user + nice + system time of all cores over the run (/proc/stat).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${PYTHMATA_BIN:-$ROOT/build/release/pythmata}
BATCHES=${FLOOR_BATCHES:-1 5 10 20 50}
CONNS=${FLOOR_CONNS:-4}
SECONDS_PER_RUN=${FLOOR_SECONDS:-10}
ROUNDS=${FLOOR_ROUNDS:-3}
READ=${FLOOR_READ:-0}
PG_BIN=/usr/lib/postgresql/15/bin
OUT=${FLOOR_OUT:-$ROOT/build/bench/pg-floor-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
log() { echo "[pg-floor $(date -u +%H:%M:%S)] $*" | tee -a "$OUT/run.log" >&2; }
source "$ROOT/bench/lib.sh"
bench_begin pythmata-floor
[ -x "$BIN" ] || { echo "no server binary at $BIN (make build)" >&2; exit 2; }

start_postgres
PSQL=("$PG_BIN/psql" -qAt -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres)

# The schema as the server migrates it, and the usertask definition to point instances at.
port=$(free_port)
PYTHMATA_HTTP_PORT=$port PYTHMATA_DB_URL="postgresql://postgres@127.0.0.1:$PG_PORT/postgres" \
    PYTHMATA_ACCESS_LOG=false PYTHMATA_LOG_LEVEL=warn "$BIN" serve >"$OUT/server.log" 2>&1 &
srv=$!
PIDS+=("$srv")
wait_http "http://127.0.0.1:$port/health" "$srv" || { echo "server did not start" >&2; exit 1; }
curl -sf -o /dev/null -X POST -H 'Content-Type: application/xml' \
    --data-binary "@$ROOT/bench/models/usertask.bpmn" "http://127.0.0.1:$port/api/v1/processes"
stop_pid "$srv"
definition=$("${PSQL[@]}" -c "SELECT id FROM definitions WHERE key = 'usertask'")
log "schema migrated; usertask definition $definition"

# One pair = the rows the server writes for it (sizes as on a bench database: state 65 bytes
# while waiting and 36 when done, history's first commit in the row and 3 entries after).
cat >"$OUT/pairs.sql" <<'SQL'
\set base random(1, 1000000000000)
BEGIN;
INSERT INTO instances (id, definition_id, process_key, process_version, status, variables, state,
    version, active_elements, created_at, updated_at, history_entries, history_events)
  SELECT md5(:base || '-' || g)::uuid, :definition, 'usertask', 1, 'RUNNING', '{"amount": 150}',
    decode(repeat('ab', 65), 'hex'), 0, '["approve"]', 1800000000000, 1800000000000, 3,
    ('[' || repeat('["start","startEvent","Start","STARTED",1800000000000],', 2)
     || '["approve","userTask","Approve","STARTED",1800000000000]]')::json
  FROM generate_series(1, :batch) g;
INSERT INTO user_tasks (id, instance_id, wait_id, element_id, name, candidate_groups, state,
    created_at)
  SELECT md5('t' || :base || '-' || g)::uuid, md5(:base || '-' || g)::uuid, 1, 'approve',
    'Approve', '[]', 'OPEN', 1800000000000
  FROM generate_series(1, :batch) g;
COMMIT;
\if :read
SELECT t.id, t.instance_id, t.element_id, t.name, t.state, t.created_at FROM user_tasks t
  WHERE t.instance_id = ANY (ARRAY(SELECT md5(:base || '-' || g)::uuid
                                     FROM generate_series(1, :batch) g));
\endif
BEGIN;
UPDATE user_tasks SET state = 'COMPLETED', completed_at = 1800000000001
  WHERE instance_id = ANY (ARRAY(SELECT md5(:base || '-' || g)::uuid
                                   FROM generate_series(1, :batch) g))
    AND wait_id = 1;
UPDATE instances SET status = 'COMPLETED', variables = '{"amount": 150, "approved": true}',
    state = decode(repeat('cd', 36), 'hex'), version = 1, active_elements = '[]',
    updated_at = 1800000000001, ended_at = 1800000000001
  WHERE id = ANY (ARRAY(SELECT md5(:base || '-' || g)::uuid FROM generate_series(1, :batch) g))
    AND version = 0;
INSERT INTO history (instance_id, entries, events)
  SELECT md5(:base || '-' || g)::uuid, 3,
    ('[' || repeat('["approve","userTask","Approve","COMPLETED",1800000000001],', 2)
     || '["end","endEvent","End","COMPLETED",1800000000001]]')::json
  FROM generate_series(1, :batch) g;
COMMIT;
SQL

# The sessions plan as the server's pool does for its batch statements (pg::join_by_index():
# generic plans, index probes only): a generic plan made on the empty table after TRUNCATE
# would otherwise scan the table, which then grows under it.
hz=$(getconf CLK_TCK)
echo "batch,round,pairs_per_s,pg_us_per_pair,pgbench_us_per_pair,machine_busy_pct" >"$OUT/results.csv"
for round in $(seq 1 "$ROUNDS"); do
    for batch in $BATCHES; do
        "${PSQL[@]}" -c "TRUNCATE instances, user_tasks, history CASCADE" >/dev/null
        "${PSQL[@]}" -c "CHECKPOINT" >/dev/null
        read -r _ u0 n0 s0 _ < <(head -1 /proc/stat)
        pg0=$(tree_ticks "$PG_PID")
        c0=$(awk '{print $16 + $17}' "/proc/$$/stat")  # waited children: pgbench
        PGOPTIONS="-c plan_cache_mode=force_generic_plan -c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off" "$PG_BIN/pgbench" -n -M prepared -h 127.0.0.1 -p "$PG_PORT" -U postgres -c "$CONNS" -j 2 \
            -T "$SECONDS_PER_RUN" -D batch="$batch" -D definition="$definition" -D read="$READ" \
            -f "$OUT/pairs.sql" postgres >"$OUT/pgbench-$batch-$round.log" 2>&1 &
        bench=$!
        wait "$bench"
        pg1=$(tree_ticks "$PG_PID")
        read -r _ u1 n1 s1 _ < <(head -1 /proc/stat)
        c1=$(awk '{print $16 + $17}' "/proc/$$/stat")
        tps=$(awk '/^tps = /{print $3; exit}' "$OUT/pgbench-$batch-$round.log")
        [ -n "$tps" ] || { cat "$OUT/pgbench-$batch-$round.log" >&2; exit 1; }
        python3 - "$batch" "$round" "$tps" "$((pg1 - pg0))" "$hz" "$SECONDS_PER_RUN" \
            "$((u1 + n1 + s1 - u0 - n0 - s0))" "$(nproc)" "$((c1 - c0))" >>"$OUT/results.csv" <<'PY'
import sys
batch, rnd, tps, pg_ticks, hz, secs, busy_ticks, cores, bench_ticks = sys.argv[1:]
pairs = float(tps) * int(batch)
total = pairs * float(secs)
pg_us = 1e6 * int(pg_ticks) / int(hz) / total
bench_us = 1e6 * int(bench_ticks) / int(hz) / total
busy = 100.0 * int(busy_ticks) / (int(hz) * float(secs) * int(cores))
print(f"{batch},{rnd},{pairs:.0f},{pg_us:.0f},{bench_us:.0f},{busy:.0f}")
PY
        log "batch $batch round $round: $(tail -1 "$OUT/results.csv")"
    done
done

python3 - "$OUT/results.csv" >"$OUT/summary.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print("| pairs per transaction | pairs/s (median) | PostgreSQL µs per pair (median) | pgbench µs per pair | machine busy % | runs |")
print("|---|---|---|---|---|---|")
for batch in sorted({int(r["batch"]) for r in rows}):
    mine = [r for r in rows if int(r["batch"]) == batch]
    pairs = [float(r["pairs_per_s"]) for r in mine]
    pg = [float(r["pg_us_per_pair"]) for r in mine]
    busy = [float(r["machine_busy_pct"]) for r in mine]
    bench = [float(r["pgbench_us_per_pair"]) for r in mine]
    print(f"| {batch} | {statistics.median(pairs):,.0f} | {statistics.median(pg):.0f} | "
          f"{statistics.median(bench):.0f} | "
          f"{statistics.median(busy):.0f} | {' / '.join(f'{p:,.0f}' for p in pairs)} |")
PY
cat "$OUT/summary.md"
log "results in $OUT"
