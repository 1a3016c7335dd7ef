#!/usr/bin/env bash
# Each binary answers --help and --version and names itself; an unknown option fails.
set -euo pipefail
status=0
for bin in "$@"; do
  name=$(basename "$bin")
  "$bin" --help | grep -q "^$name" || { echo "FAIL: $name --help does not start with its name"; status=1; }
  "$bin" --version | grep -Eq '^[0-9]+\.[0-9]+\.[0-9]+$' || { echo "FAIL: $name --version"; status=1; }
  if "$bin" --no-such-option >/dev/null 2>&1; then echo "FAIL: $name accepted a bad option"; status=1; fi
done
exit $status
