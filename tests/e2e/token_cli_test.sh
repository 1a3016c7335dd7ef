#!/usr/bin/env bash
# wardenctl token inspect/verify on the signed CWT of RFC 8392 appendix A.3 (key A.2.3): valid at
# its issue time, and each way it can be invalid gives the reason a person understands.
set -uo pipefail
wardenctl=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
echo "d28443a10126a104524173796d6d657472696345434453413235365850a70175636f61703a2f2f61732e6578616d706c652e636f6d02656572696b77037818636f61703a2f2f6c696768742e6578616d706c652e636f6d041a5612aeb0051a5610d9f0061a5610d9f007420b7158405427c1ff28d23fbad1f29c4c7c6a555e601d6fa29f9179bc3d7438bacaca5acd08c8d4d4f96131680c429a01f85951ecee743a52b9b63632c57209120e1c9e30" >"$dir/cwt.hex"
cat >"$dir/jwks.json" <<'JSON'
{"keys":[{"kty":"EC","crv":"P-256","kid":"AsymmetricECDSA256","x":"FDMpzOeGjkFpJ1mc9lo0884v_aVafspp7YkZo5TULw8","y":"YPfxp4DYp4O_t6LdayeW6BKNu87509Fo25Uplxo257k"}]}
JSON
sed 's/AsymmetricECDSA256/another-key/' "$dir/jwks.json" >"$dir/other.json"
# Tamper with the last signature byte (…30 -> …31).
sed 's/30$/31/' "$dir/cwt.hex" >"$dir/tampered.hex"
at=1443945044
status=0
expect() {  # expect <exit 0|fail> <text in output or -> <args...>
  local want=$1 text=$2
  shift 2
  out=$("$wardenctl" "$@" 2>&1)
  rc=$?
  if [ "$want" = 0 ] && [ $rc -ne 0 ]; then echo "FAIL: $* exited $rc: $out"; status=1; fi
  if [ "$want" = fail ] && [ $rc -eq 0 ]; then echo "FAIL: $* accepted an invalid token"; status=1; fi
  if [ "$text" != - ] && ! grep -qi -- "$text" <<<"$out"; then
    echo "FAIL: $* did not say \"$text\": $out"; status=1
  fi
}
expect 0 erikw token inspect "$dir/cwt.hex"
expect 0 - token verify "$dir/cwt.hex" --jwks "$dir/jwks.json" --at $at --aud coap://light.example.com
expect fail expired token verify "$dir/cwt.hex" --jwks "$dir/jwks.json"
expect fail "not yet valid" token verify "$dir/cwt.hex" --jwks "$dir/jwks.json" --at 1443940000
expect fail audience token verify "$dir/cwt.hex" --jwks "$dir/jwks.json" --at $at --aud https://other
expect fail signature token verify "$dir/tampered.hex" --jwks "$dir/jwks.json" --at $at
expect fail kid token verify "$dir/cwt.hex" --jwks "$dir/other.json" --at $at
exit $status
