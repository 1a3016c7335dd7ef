#!/usr/bin/env bash
# Builds the Debian packages (scripts/package, which also runs lintian) from the programs of the
# build under test, installs them into a throwaway root with dpkg --root, and checks files, modes,
# users and that nothing got enabled.
#   package_test.sh <source dir> <cmake build dir>
set -euo pipefail
src=$1
bin=$2
"$src/scripts/package" --prebuilt "$bin"
pkgs=("$bin"/packages/wardend_*.deb "$bin"/packages/warden-issuer_*.deb)
R=$(mktemp -d)
trap 'rm -rf "$R"' EXIT
mkdir -p "$R"/var/lib/dpkg/{info,updates,triggers} "$R"/etc "$R"/var/log
touch "$R"/var/lib/dpkg/status "$R"/var/lib/dpkg/available
printf 'root:x:0:0:root:/root:/bin/bash\n' >"$R/etc/passwd"
printf 'root:x:0:\ntss:x:113:\n' >"$R/etc/group"
printf 'root:*::0:::::\n' >"$R/etc/shadow"
cp "$R/etc/group" "$R/etc/gshadow"
host_users_before=$(getent passwd | grep -c '^warden' || true)
# Maintainer scripts honour DPKG_ROOT, so they run outside the root but act inside it.
dpkg --root="$R" --force-script-chrootless --force-depends --log="$R/dpkg.log" -i "${pkgs[@]}" >/dev/null

status=0
expect_mode() {  # expect_mode <path> <octal mode>
  local got
  got=$(stat -c '%a' "$R$1" 2>/dev/null || echo missing)
  [ "$got" = "$2" ] || { echo "FAIL: $1 mode $got, expected $2"; status=1; }
}
expect_mode /usr/sbin/wardend 755
expect_mode /usr/bin/wardenctl 755
expect_mode /usr/libexec/warden/wardenctl-full 755
# The small wardenctl hands the online commands to wardenctl-full in ../libexec/warden.
"$R/usr/bin/wardenctl" status --help >/dev/null 2>&1 \
  || { echo "FAIL: the installed wardenctl cannot run 'status --help' (wardenctl-full)"; status=1; }
expect_mode /usr/sbin/warden-issuer 755
expect_mode /lib/systemd/system/wardend.service 644
expect_mode /lib/systemd/system/warden-issuer.service 644
expect_mode /usr/lib/sysusers.d/wardend.conf 644
expect_mode /usr/lib/tmpfiles.d/wardend.conf 644
expect_mode /var/lib/warden 700
expect_mode /etc/warden/agent.toml 644
expect_mode /etc/warden/issuer.toml 644
# Shipped configs are conffiles: an upgrade never overwrites an operator's edits.
dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Conffiles}\n' wardend | grep -q '/etc/warden/agent.toml' \
  || { echo "FAIL: /etc/warden/agent.toml is not a conffile of wardend"; status=1; }
dpkg-query --admindir="$R/var/lib/dpkg" -W -f='${Conffiles}\n' warden-issuer | grep -q '/etc/warden/issuer.toml' \
  || { echo "FAIL: /etc/warden/issuer.toml is not a conffile of warden-issuer"; status=1; }
[ -f "$R/usr/share/man/man8/wardend.8.gz" ] || { echo "FAIL: no wardend man page"; status=1; }
grep -q '^warden:' "$R/etc/passwd" || { echo "FAIL: user warden not created"; status=1; }
grep -q '^warden-issuer:' "$R/etc/passwd" || { echo "FAIL: user warden-issuer not created"; status=1; }
grep -q '^tss:x:113:warden$' "$R/etc/group" || { echo "FAIL: warden not in group tss"; status=1; }
[ "$(stat -c '%u' "$R/var/lib/warden")" = "$(awk -F: '$1=="warden"{print $3}' "$R/etc/passwd")" ] \
  || { echo "FAIL: /var/lib/warden not owned by warden"; status=1; }
if find "$R/etc/systemd" -name '*.service' 2>/dev/null | grep -q .; then
  echo "FAIL: installing enabled a unit:"; find "$R/etc/systemd" -name '*.service'; status=1
fi
host_users_after=$(getent passwd | grep -c '^warden' || true)
[ "$host_users_before" = "$host_users_after" ] || { echo "FAIL: users leaked onto the host"; status=1; }
[ $status -eq 0 ] && echo "packages install cleanly into $R"
exit $status
