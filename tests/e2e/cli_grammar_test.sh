#!/usr/bin/env bash
# One grammar for wardenctl (issue 27): every command's --help shows its options and an example;
# group options work after the subcommand; the scripts/demo environment variables are defaults;
# the README's offline example commands run on the test data.
# Usage: cli_grammar_test.sh WARDENCTL REPO_DIR
set -uo pipefail
ctl=$1
repo=$2
data=$repo/tests/data/eventlog
fail=0
no() { echo "FAIL: $*"; fail=1; }

for cmd in "" eventlog "eventlog show" "eventlog replay" ima "ima replay" tpm "tpm info" "tpm ek" \
  "tpm pcrs" "tpm quote" "tpm seal" "tpm unseal" token "token inspect" "token verify" status \
  identity proof secret "secret get" "secret put" revoke reattest; do
  # shellcheck disable=SC2086
  help=$("$ctl" $cmd --help 2>&1) || no "wardenctl $cmd --help exits non-zero"
  grep -q "^Options:" <<<"$help" || no "wardenctl $cmd --help lists no options"
  [[ -z $cmd ]] || grep -q "^  wardenctl $cmd" <<<"$help" || no "wardenctl $cmd --help has no example"
done

# A dead TCTI: the parser must accept the option in either place and hand it to the TSS.
dead=mssim:host=127.0.0.1,port=1
for args in "tpm --tcti $dead info" "tpm info --tcti $dead" "tpm pcrs --pcrs sha256:0 --tcti $dead"; do
  # shellcheck disable=SC2086
  err=$("$ctl" $args 2>&1 >/dev/null) && no "wardenctl $args succeeded against a dead TCTI"
  grep -qi "not expected\|Run with --help" <<<"$err" && no "wardenctl $args: refused by the parser: $err"
  grep -q "port 1" <<<"$err" || no "wardenctl $args: did not try the TCTI: $err"
done
err=$(WARDEN_TCTI=$dead "$ctl" tpm info 2>&1 >/dev/null)
grep -q "port 1" <<<"$err" || no "WARDEN_TCTI is not the default TCTI: $err"
err=$(WARDEN_WORKLOAD_SOCKET=/nonexistent/w.sock "$ctl" identity 2>&1 >/dev/null)
grep -q "/nonexistent/w.sock" <<<"$err" || no "WARDEN_WORKLOAD_SOCKET ignored: $err"
err=$(WARDEN_ADMIN_SOCKET=/nonexistent/a.sock "$ctl" status 2>&1 >/dev/null)
grep -q "/nonexistent/a.sock" <<<"$err" || no "WARDEN_ADMIN_SOCKET ignored: $err"
err=$(WARDEN_WORKLOAD_SOCKET=/nonexistent/w.sock "$ctl" identity --socket /nonexistent/x.sock 2>&1)
grep -q "/nonexistent/x.sock" <<<"$err" || no "--socket does not override WARDEN_WORKLOAD_SOCKET: $err"
"$ctl" token verify --help | grep -q -- "--leeway" || no "token verify has no --leeway"
"$ctl" token verify --leeway 99999 --jwks x x >/dev/null 2>&1 && no "--leeway accepts 99999"

# The README's offline examples, their placeholders filled from the test data.
grep -E '^wardenctl (eventlog|ima) ' "$repo/README.md" | sed -E 's/ *#.*//; s/ \[--json\]/ --json/' |
  while read -r line; do
    line=${line//\/sys\/kernel\/security\/tpm0\/binary_bios_measurements/$data/event-arch-linux.bin}
    line=${line//FILE/$data/event-arch-linux.bin}
    if [[ $line == *"ima replay"* ]]; then
      list=$(mktemp)
      # shellcheck disable=SC2016
      /usr/bin/python3 -c '
import hashlib, struct, sys
d = hashlib.sha256(b"x").digest()
data = struct.pack("<I", 40) + b"sha256:\0" + d + struct.pack("<I", 15) + b"boot_aggregate\0"
sys.stdout.write("10 %s ima-ng sha256:%s boot_aggregate\n" % (hashlib.sha1(data).hexdigest(), d.hex()))
' >"$list"
      line="wardenctl ima replay $list"
    fi
    # shellcheck disable=SC2086
    "$ctl" ${line#wardenctl } >/dev/null || { echo "FAIL: README example: $line"; exit 1; }
  done || fail=1
exit $fail
