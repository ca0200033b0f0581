"""The distinct statements with parameters ($1...) in PostgreSQL's stderr logs, each with the
values of one run: bench/plans/review.sh, from logs written with log_statement=all.
usage: statements.py 'LOG_GLOB' OUT.json"""
import glob
import json
import re
import sys

found = {}
current = None


def flush():
    global current
    if current and '$1' in current['sql']:
        key = re.sub(r'\s+', ' ', current['sql']).strip()
        if key not in found or (not found[key] and current.get('params')):
            found[key] = current.get('params', {})
    current = None


for path in sorted(glob.glob(sys.argv[1])):
    for line in open(path, errors='replace'):
        line = line.rstrip('\n')
        m = re.search(r'LOG:  execute [^:]*: (.*)$', line)
        if m:
            flush()
            current = {'sql': m.group(1), 'in_sql': True}
            continue
        m = re.search(r'DETAIL:  [Pp]arameters: (.*)$', line)
        if m and current is not None:
            params = {}
            for p in re.finditer(r"\$(\d+) = (NULL|'((?:[^']|'')*)')", m.group(1)):
                params[p.group(1)] = None if p.group(2) == 'NULL' else p.group(3).replace("''", "'")
            current['params'] = params
            current['in_sql'] = False
            continue
        if line.startswith('\t') and current is not None and current['in_sql']:
            current['sql'] += ' ' + line.strip()
            continue
        if re.match(r'^\d{4}-\d\d-\d\d ', line):
            flush()
flush()
json.dump([{'sql': k, 'params': v} for k, v in sorted(found.items())], open(sys.argv[2], 'w'),
          indent=1)
print(f'{len(found)} distinct statements with parameters')
