"""EXPLAIN of every statement of statements.py's list on the review database, once with a
generic plan (what the pool's connections use, db_plan_cache_mode = force_generic_plan) and once
with a custom plan for the logged values; prints both costs and flags a generic plan that costs
more than 5x the custom one and more than 1000, or that scans a large table sequentially, of
the statements that run on generic plans in production (statements.py tells which); the others
are listed as `custom`.
usage: explain.py STATEMENTS.json PLANS.json  (env PGPORT: the review database's port)"""
import json
import os
import re
import subprocess
import sys

SKIP = re.compile(r'\b(pg_\w+|schema_migrations|information_schema)\b|^\s*(CREATE|ALTER|DROP)\b',
                  re.I)
LARGE = ('instances', 'history', 'jobs', 'user_tasks', 'message_subscriptions',
         'signal_subscriptions')


def literal(value):
    return 'NULL' if value is None else "'" + value.replace("'", "''") + "'"


def explain(sql, args, mode):
    script = (f"BEGIN; SET LOCAL plan_cache_mode = {mode}; PREPARE s AS {sql};\n"
              f"EXPLAIN EXECUTE s({args});\nROLLBACK;\n")
    run = subprocess.run(['psql', '-X', '-q', '-At', '-h', '127.0.0.1', '-p', os.environ['PGPORT'],
                          '-U', 'postgres', 'review'], input=script, capture_output=True, text=True)
    if 'ERROR' in run.stderr:
        return None, run.stderr.strip().splitlines()[0]
    m = re.search(r'cost=[\d.]+\.\.([\d.]+)', run.stdout)
    return (float(m.group(1)) if m else None), run.stdout.strip()


results = []
for s in json.load(open(sys.argv[1])):
    sql = s['sql']
    if SKIP.search(sql):
        continue
    n = max(int(x) for x in re.findall(r'\$(\d+)', sql))
    args = ', '.join(literal(s['params'].get(str(k))) for k in range(1, n + 1))
    generic, generic_plan = explain(sql, args, 'force_generic_plan')
    custom, custom_plan = explain(sql, args, 'force_custom_plan')
    seq = [t for t in LARGE if f'Seq Scan on {t} ' in (generic_plan or '')]
    in_production = s.get('generic_in_production', True)
    flag = in_production and (bool(seq) or bool(generic is not None and custom and
                                                 generic > 5 * custom and generic > 1000))
    results.append({'sql': sql, 'generic_in_production': in_production,
                    'generic_cost': generic, 'custom_cost': custom, 'flag': flag,
                    'seq_scans': seq, 'generic_plan': generic_plan, 'custom_plan': custom_plan})
json.dump(results, open(sys.argv[2], 'w'), indent=1)
for r in sorted(results, key=lambda r: (not r['flag'], r['sql'])):
    mark = '!!' if r['flag'] else ('  ' if r['generic_in_production'] else 'c ')
    print(f"{mark} generic {r['generic_cost']!s:>10} custom {r['custom_cost']!s:>10}"
          f"{' seq scan: ' + ','.join(r['seq_scans']) if r['seq_scans'] else ''}"
          f" | {r['sql'][:150]}")
print(f"{sum(r['flag'] for r in results)} flagged of {len(results)} ('c': planned with its values "
      f"in production, not flagged); plans in {sys.argv[2]}")
