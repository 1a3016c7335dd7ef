#!/usr/bin/env bash
# Each shipped unit must score an exposure of 2.0 or lower in systemd-analyze security, and the
# agent unit must keep the settings the TPM and workload identity depend on.
set -euo pipefail
dir=$1
status=0
for unit in "$dir"/wardend.service "$dir"/warden-issuer.service; do
  out=$(systemd-analyze security --offline=true --threshold=20 "$unit" 2>&1) || {
    echo "FAIL: $(basename "$unit") scores above 2.0:"; echo "$out" | grep -E '✗|Overall'; status=1; continue; }
  echo "$out" | tail -n 1
done
grep -q '^DeviceAllow=/dev/tpmrm0 rw$' "$dir/wardend.service" || { echo "FAIL: wardend must allow /dev/tpmrm0"; status=1; }
grep -q '^DevicePolicy=closed$' "$dir/wardend.service" || { echo "FAIL: wardend DevicePolicy=closed"; status=1; }
for forbidden in '^PrivateDevices=yes' '^PrivateUsers=yes' '^ProtectProc=invisible'; do
  if grep -q "$forbidden" "$dir/wardend.service"; then
    echo "FAIL: wardend.service must not set ${forbidden#^} (breaks the TPM or workload identity)"; status=1
  fi
done
grep -q '^Type=notify$' "$dir/wardend.service" || { echo "FAIL: wardend Type=notify"; status=1; }
# The API's default limits (1024 + 64 connections + the daemon's own) exceed a soft limit of 1024.
nofile=$(sed -n 's/^LimitNOFILE=\([0-9]*\)$/\1/p' "$dir/wardend.service")
if [ -z "$nofile" ] || [ "$nofile" -lt $((1024 + 64 + 256)) ]; then
  echo "FAIL: wardend.service needs LimitNOFILE= of at least 1344 (found '${nofile}')"; status=1
fi
# Loopback-only egress must say how to allow a remote issuer, where an operator looks first.
if grep -q '^IPAddressDeny=any$' "$dir/wardend.service"; then
  grep -q '^# .*IPAddressAllow=' "$dir/wardend.service" ||
    { echo "FAIL: wardend.service denies egress without documenting the IPAddressAllow= drop-in"; status=1; }
fi
grep -q '^Type=notify$' "$dir/warden-issuer.service" || { echo "FAIL: warden-issuer Type=notify"; status=1; }
exit $status
