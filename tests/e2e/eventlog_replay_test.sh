#!/usr/bin/env bash
# `wardenctl eventlog replay` on every shared firmware log prints the PCRs of its expected YAML.
# Usage: eventlog_replay_test.sh WARDENCTL TESTDATA_DIR
set -euo pipefail
wardenctl=$1
dir=$2/eventlog
fail=0
for log in "$dir"/*.bin; do
  name=$(basename "$log")
  out=$("$wardenctl" eventlog replay "$log" 2>/dev/null) || { echo "FAIL $name: exit $?"; fail=1; continue; }
  /usr/bin/python3 - "$dir/expected/$name.yaml" "$out" "$name" <<'PY' || fail=1
import re, sys
yaml, out, name = sys.argv[1], sys.argv[2], sys.argv[3]
got, bank = {}, None
for line in out.splitlines():
    m = re.match(r'^(\w+):$', line)
    if m: bank = m.group(1); continue
    m = re.match(r'^\s+(\d+) : 0x([0-9A-Fa-f]+)$', line)
    if m: got[(bank, int(m.group(1)))] = m.group(2).lower()
want, bank, inp = {}, None, False
for line in open(yaml):
    line = line.rstrip('\n')
    if line == 'pcrs:': inp = True; continue
    if not inp: continue
    m = re.match(r'^  (\w+):\s*$', line)
    if m: bank = m.group(1); continue
    m = re.match(r'^    (\d+)\s*:\s*0x([0-9a-fA-F]+)\s*$', line)
    if m: want[(bank, int(m.group(1)))] = m.group(2).lower()
bad = [k for k, v in want.items() if got.get(k) != v]
if bad:
    print(f"FAIL {name}: {bad[:5]}")
    sys.exit(1)
print(f"ok {name}: {len(want)} PCRs")
PY
done
exit $fail
