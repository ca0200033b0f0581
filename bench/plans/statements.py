"""The distinct statements with parameters ($1...) in PostgreSQL's stderr logs, each with the
values of one run, and whether it ran on a generic plan in production: a statement run in a
transaction after `SET LOCAL plan_cache_mode = force_custom_plan` (the store's
plan_with_values) is planned with its values; anything else on the pool's connections is
planned generically (db_plan_cache_mode). bench/plans/review.sh, from logs written with
log_statement=all.
usage: statements.py 'LOG_GLOB' OUT.json"""
import glob
import json
import re
import sys

found = {}       # text -> {'params': {...}, 'generic': bool}
mode = {}        # (log file, backend pid) -> plan_cache_mode set for the open transaction
current = None

LINE = re.compile(r'^\d{4}-\d\d-\d\d [\d:.]+ \w+ \[(\d+)\] ')


def flush():
    global current
    if current and '$1' in current['sql']:
        key = re.sub(r'\s+', ' ', current['sql']).strip()
        entry = found.setdefault(key, {'params': {}, 'generic': False})
        if not entry['params'] and current.get('params'):
            entry['params'] = current['params']
        if current['mode'] != 'force_custom_plan':
            entry['generic'] = True
    current = None


for path in sorted(glob.glob(sys.argv[1])):
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        m = re.search(r'DETAIL:  [Pp]arameters: (.*)$', line)
        if m and current is not None:
            params = {}
            for p in re.finditer(r"\$(\d+) = (NULL|'((?:[^']|'')*)')", m.group(1)):
                params[p.group(1)] = None if p.group(2) == 'NULL' else p.group(3).replace("''", "'")
            current['params'] = params
            current['in_sql'] = False
            continue
        head = LINE.match(line)
        if head:
            flush()
            backend = (path, head.group(1))
            m = re.search(r'LOG:  statement: (.*)$', line)
            if m:
                text = m.group(1)
                if re.match(r'(BEGIN|COMMIT|ROLLBACK|END)\b', text, re.I):
                    mode.pop(backend, None)
                m2 = re.search(r'SET LOCAL plan_cache_mode = (\w+)', text)
                if m2:
                    mode[backend] = m2.group(1)
                continue
            m = re.search(r'LOG:  execute [^:]*: (.*)$', line)
            if m:
                current = {'sql': m.group(1), 'in_sql': True, 'mode': mode.get(backend)}
            continue
        if line.startswith('\t') and current is not None and current['in_sql']:
            current['sql'] += ' ' + line.strip()
flush()
json.dump([{'sql': k, 'params': v['params'], 'generic_in_production': v['generic']}
           for k, v in sorted(found.items())], open(sys.argv[2], 'w'), indent=1)
print(f'{len(found)} distinct statements with parameters, '
      f'{sum(not v["generic"] for v in found.values())} of them always planned with their values')
