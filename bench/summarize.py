#!/usr/bin/env python3
"""Summary of one bench/run.sh run: reads OUT/results.csv (one row per wrk run), prints a
markdown report (medians over repeated runs), checks the targets of issue 5 that the run measured,
and writes OUT/plot_throughput.dat for bench/throughput.gp.

Usage: python3 bench/summarize.py build/bench/results/<stamp>
"""
import csv
import json
import os
import statistics
import sys

out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))

NUM = ["rps", "ops_per_s", "p50_ms", "p99_ms", "max_ms", "good", "bad", "socket_errors",
       "timeouts", "peak_rss_kb"]


def fnum(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


groups = {}
for r in rows:
    groups.setdefault((r["config"], r["case"], int(r["conns"])), []).append(r)

CORES = os.cpu_count() or 1

# Medians per (config, case, conns); errors are summed over the runs, RSS is the largest.
cells = {}
for key, rs in groups.items():
    cell = {"runs": len(rs)}
    for k in ["rps", "ops_per_s", "p50_ms", "p99_ms", "max_ms"]:
        cell[k] = statistics.median(fnum(r[k]) for r in rs)
    for k in ["good", "bad", "socket_errors", "timeouts"]:
        cell[k] = sum(int(fnum(r[k])) if r[k] else 0 for r in rs)
    cell["peak_rss_kb"] = max(fnum(r["peak_rss_kb"]) for r in rs)
    for k in ["server_cpu_pct", "db_cpu_pct", "machine_busy_pct"]:
        cell[k] = statistics.median(fnum(r.get(k)) for r in rs)
    cell["all_ops"] = [fnum(r["ops_per_s"]) for r in rs]
    # CPU time per op (µs): the steadier figure when other work shares the machine.
    for k, pct in [("server_us", "server_cpu_pct"), ("db_us", "db_cpu_pct")]:
        per_run = [fnum(r.get(pct)) / 100 * CORES * 1e6 / fnum(r["ops_per_s"])
                   for r in rs if fnum(r["ops_per_s"]) > 0 and fnum(r.get(pct)) == fnum(r.get(pct))]
        cell[k] = statistics.median(per_run) if per_run else None
    cells[key] = cell


def ceiling(config, conns):
    """GET /health of our server at the same connections: same config if measured, else any."""
    if config == "peer":
        c = cells.get(("peer", "health", conns))
        return c["rps"] if c else None
    for cfg in [config, "pg", "sqlite", "pg_redis"]:
        c = cells.get((cfg, "health", conns))
        if c:
            return c["rps"]
    return None


def fmt(v, digits=0):
    if v is None or v != v:
        return "–"
    return f"{v:,.{digits}f}"


UNIT = {"usertask": "pairs/s", "usertask_lookup": "pairs/s", "health": "req/s", "processes": "req/s"}
order = {"pg": 0, "pg_redis": 1, "sqlite": 2, "peer": 3}
case_order = {"health": 0, "straight": 1, "parallel": 2, "usertask": 3, "usertask_lookup": 4,
              "processes": 5}

lines = []
machine = os.path.join(out, "machine.txt")
if os.path.exists(machine):
    lines.append("```")
    lines += [line.rstrip() for line in open(machine)]
    lines.append("```")
    lines.append("")

lines.append("| config | case | c | ops/s | unit | req/s | p50 ms | p99 ms | max ms | bad | sock err | "
             "timeouts | share of ceiling | ours / peer | peak RSS MB | CPU % server / db / machine | "
             "CPU µs per op server / db | runs |")
lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for key in sorted(cells, key=lambda k: (order.get(k[0], 9), case_order.get(k[1], 9), k[2])):
    config, case, conns = key
    c = cells[key]
    ceil = ceiling(config, conns)
    share = c["rps"] / ceil if ceil and case != "health" else None
    peer = cells.get(("peer", case, conns))
    ratio = (c["ops_per_s"] / peer["ops_per_s"]
             if peer and peer["ops_per_s"] > 0 and config != "peer" else None)
    ops = c["ops_per_s"]
    runs = str(c["runs"]) if c["runs"] == 1 else f"{c['runs']} (ops/s " + \
        " / ".join(fmt(x) for x in c["all_ops"]) + ")"
    lines.append(
        f"| {config} | {case} | {conns} | {fmt(ops)} | {UNIT.get(case, 'inst/s')} | {fmt(c['rps'])} | "
        f"{fmt(c['p50_ms'], 2)} | {fmt(c['p99_ms'], 2)} | {fmt(c['max_ms'], 1)} | {c['bad']} | "
        f"{c['socket_errors']} | {c['timeouts']} | {fmt(share * 100, 1) + ' %' if share else '–'} | "
        f"{fmt(ratio, 1) + '×' if ratio else '–'} | {fmt(c['peak_rss_kb'] / 1024, 1)} | "
        f"{fmt(c['server_cpu_pct'])} / {fmt(c['db_cpu_pct']) if config in ('pg', 'pg_redis') else '–'} / "
        f"{fmt(c['machine_busy_pct'])} | {fmt(c['server_us'])} / "
        f"{fmt(c['db_us']) if config in ('pg', 'pg_redis') else '–'} | {runs} |")
lines.append("")
lines.append("ops/s: completed instances per second for starts (201 with COMPLETED only), start+complete "
             "pairs per second for usertask (2 requests per pair: the start answer names the task; "
             "usertask_lookup asks GET /tasks for it, 3 requests; 2 on the peer), replies per "
             "second otherwise. Latencies are per request. Share of ceiling: req/s over GET /health req/s "
             "of the same server at the same connections. Peak RSS: VmHWM of the server after the case. "
             "CPU: shares of the whole 2-core machine (100 % = both cores) used during the measured run by "
             "the server, by PostgreSQL (postmaster and backends) and by everything (wrk and other "
             "agents' work included). CPU µs per op: that CPU time over the ops of the run (median "
             "of the runs), which moves less than ops/s when other work shares the machine.")
lines.append("")

# ---- targets of issue 5 that a run can check ----------------------------------------------------
def target(name, ok, detail):
    state = "–" if ok is None else ("met" if ok else "MISSED")
    lines.append(f"| {name} | {state} | {detail} |")


lines.append("| target (issue 5) | state | measured |")
lines.append("|---|---|---|")
s = cells.get(("pg", "straight", 50))
p = cells.get(("peer", "straight", 50))
if s:
    target("straight, PostgreSQL, c=50: ≥ 10,000 inst/s", s["ops_per_s"] >= 10000, f"{fmt(s['ops_per_s'])} inst/s")
    target("straight, PostgreSQL, c=50: p99 ≤ 20 ms", s["p99_ms"] <= 20, f"p99 {fmt(s['p99_ms'], 2)} ms")
    errs = s["bad"] + s["socket_errors"] + s["timeouts"]
    target("straight, PostgreSQL, c=50: no errors", errs == 0, f"{errs} bad/socket errors/timeouts")
    if p and p["ops_per_s"] > 0:
        r = s["ops_per_s"] / p["ops_per_s"]
        target("straight, PostgreSQL, c=50: ≥ 150 × the peer", r >= 150, f"{fmt(r, 1)}× ({fmt(p['ops_per_s'], 1)} inst/s peer)")
q = cells.get(("sqlite", "straight", 50))
if q:
    target("straight, SQLite, c=50: ≥ 5,000 inst/s", q["ops_per_s"] >= 5000, f"{fmt(q['ops_per_s'])} inst/s")
# The target names no concurrency: the best of the connection counts measured, each shown.
pairs = sorted((conns, c) for (cfg, case, conns), c in cells.items() if cfg == "pg" and case == "usertask")
if pairs:
    best = max(c["ops_per_s"] for _, c in pairs)
    target("user task start+complete, PostgreSQL: ≥ 5,000 pairs/s", best >= 5000,
           ", ".join(f"{fmt(c['ops_per_s'])} pairs/s at c={conns} (p99 {fmt(c['p99_ms'], 1)} ms)"
                     for conns, c in pairs))
g = cells.get(("pg", "processes", 50))
h = cells.get(("pg", "health", 50))
if g and h:
    target("GET /api/v1/processes ≥ ½ GET /health (c=50)", g["rps"] >= 0.5 * h["rps"],
           f"{fmt(g['rps'])} vs {fmt(h['rps'])} req/s ({fmt(100 * g['rps'] / h['rps'], 1)} %)")


def memory_growth(name):
    """VmRSS at the first slice with ≥ 100,000 instances and at the last one (BENCH_MEMORY*)."""
    path = os.path.join(out, name + ".csv")
    if not os.path.exists(path):
        return None
    slices = [(int(r["instances"]), int(r["vmrss_kb"])) for r in csv.DictReader(open(path))]
    first = next((sl for sl in slices if sl[0] >= 100000), None)
    if not first or slices[-1][0] <= first[0]:
        return None
    return first, slices[-1]


m = memory_growth("memory")
if m:
    (n0, r0), (n1, r1) = m
    growth = 100.0 * (r1 - r0) / r0
    target("memory: RSS flat within 10 % from 100k to 1M completed instances",
           abs(growth) <= 10 if n1 >= 1000000 else None,
           f"{fmt(r0 / 1024, 1)} MB at {fmt(n0)}, {fmt(r1 / 1024, 1)} MB at {fmt(n1)} ({growth:+.1f} %)")
w = memory_growth("memory_waiting")
if w:
    (n0, r0), (n1, r1) = w
    target("memory: waiting instances live in the store, not in RAM", None,
           f"{fmt(r0 / 1024, 1)} MB at {fmt(n0)} waiting, {fmt(r1 / 1024, 1)} MB at {fmt(n1)} "
           f"({100.0 * (r1 - r0) / r0:+.1f} %)")
report = os.path.join(out, "timers", "report.txt")
if os.path.exists(report):
    kv = {}
    for line in open(report):
        for word in line.split():
            if "=" in word:
                k, _, v = word.partition("=")
                kv[k] = v
    try:
        n, fired = int(kv["instances"]), int(kv["fired"])
        twice, early = int(kv["fired_twice"]), int(kv["early"])
        # Each fired timer leaves one COMPLETED history entry: fewer means the twice-check's
        # query did not see the entries, and "none twice" would prove nothing.
        completed = int(kv["wait_completed"])
        p99 = float(kv["p99"])
        full = n >= 99999  # wrk loses one request of 100,000 (see docs/benchmarks.md, "Timers")
        target(f"{fmt(n)} timers due in one second: all fire, none twice",
               (fired == n and twice == 0 and early == 0 and completed == fired) if full
               else None,
               f"{fmt(fired)} fired, {early} early, {twice} twice, "
               f"{fmt(completed)} timer completions in the history")
        target(f"{fmt(n)} timers due in one second: p99 lateness ≤ 100 ms",
               p99 <= 100 if full else None,
               f"p50 {fmt(float(kv['p50']))} ms, p99 {fmt(p99)} ms, max {fmt(float(kv['max']))} ms")
    except (KeyError, ValueError):
        target("timers due in one second", None, "timers/report.txt is incomplete (see timers.log)")
lines.append("")

# ---- RSS per server --------------------------------------------------------------------------
rss_lines = []
for fname in sorted(os.listdir(out)):
    if fname.startswith("rss_") and fname.endswith(".txt"):
        name, path = fname[4:-4], os.path.join(out, fname)
        kv = dict(line.split(":", 1) for line in open(path) if ":" in line)
        rss_lines.append(f"| {name} | {kv.get('VmHWM', '').strip()} | {kv.get('VmRSS', '').strip()} |")
if rss_lines:
    lines.append("| server | peak RSS (VmHWM) | RSS at the end |")
    lines.append("|---|---|---|")
    lines += rss_lines
    lines.append("")

# ---- engine Google Benchmarks -----------------------------------------------------------------
gb = os.path.join(out, "engine_bench.json")
if os.path.exists(gb):
    try:
        data = json.load(open(gb))
        lines.append("| engine benchmark (one core, in process) | items/s | ns per item |")
        lines.append("|---|---|---|")
        for b in data.get("benchmarks", []):
            ips = b.get("items_per_second")
            lines.append(f"| {b['name']} | {fmt(ips)} | {fmt(1e9 / ips if ips else None)} |")
        lines.append("")
    except (ValueError, KeyError):
        pass

# ---- locust -----------------------------------------------------------------------------------
ls = os.path.join(out, "locust_stats.csv")
if os.path.exists(ls):
    lines.append("| locust (headless, 50 users) | requests | failures | req/s | p50 ms | p99 ms |")
    lines.append("|---|---|---|---|---|---|")
    for r in csv.DictReader(open(ls)):
        lines.append(f"| {r['Type']} {r['Name']} | {r['Request Count']} | {r['Failure Count']} | "
                     f"{fmt(fnum(r['Requests/s']), 1)} | {r['50%']} | {r['99%']} |")
    lines.append("")

print("\n".join(lines))

# ---- plot data: throughput and p99 against connections -----------------------------------------
series = [("pg", "health"), ("pg", "straight"), ("pg", "parallel"), ("pg_redis", "straight"),
          ("sqlite", "straight"), ("sqlite", "parallel"), ("peer", "straight")]
conns = sorted({k[2] for k in cells})
with open(os.path.join(out, "plot_throughput.dat"), "w") as f:
    f.write("# conns " + " ".join(f"{c}_{k}_ops {c}_{k}_p99" for c, k in series) + "\n")
    for n in conns:
        vals = []
        for c, k in series:
            cell = cells.get((c, k, n))
            vals += [fmt(cell["ops_per_s"], 1).replace(",", "") if cell else "NaN",
                     fmt(cell["p99_ms"], 2).replace(",", "") if cell else "NaN"]
        f.write(f"{n} " + " ".join(v if v != "–" else "NaN" for v in vals) + "\n")
