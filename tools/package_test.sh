#!/usr/bin/env bash
# The Debian package as an operator meets it: built from the binaries under
# test (lintian: no errors), installed with dpkg -i, the installed imaged run
# on a temp root with the packaged config and asked by the installed
# imagectl, then removed with dpkg -r, which must leave nothing but the
# conffile. The machine is left as found (the package purged). Needs root;
# refuses to touch an imaged package that was installed before it ran.
set -euo pipefail
package_sh=$1 imaged=$2 imagectl=$3

fail() { echo "FAIL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "installing a package needs root"
if dpkg-query -W -f='${Status}' imaged 2>/dev/null | grep -q 'ok \(installed\|config-files\)'; then
  fail "an imaged package is already on this machine; remove it (dpkg --purge imaged) to run this test"
fi

dir=$(mktemp -d /tmp/imaged-package.XXXXXX)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true
  dpkg --purge imaged >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

bash "$package_sh" --out "$dir" --imaged "$imaged" --imagectl "$imagectl" 2>&1 |
  grep -v 'running with root privileges' || fail "tools/package.sh failed"
deb=$(ls "$dir"/imaged_*_"$(dpkg --print-architecture)".deb)

dpkg -i "$deb" >/dev/null || fail "dpkg -i $deb failed"
files=$(dpkg -L imaged)
for want in /usr/bin/imaged /usr/bin/imagectl /etc/imaged/config.toml \
    /lib/systemd/system/imaged.service /lib/systemd/system/imaged-mirror.service \
    /usr/lib/tmpfiles.d/imaged.conf /usr/share/man/man1/imaged.1.gz \
    /usr/share/man/man1/imagectl.1.gz /usr/share/doc/imaged/copyright /var/lib/imaged; do
  grep -qx "$want" <<<"$files" || fail "the package lacks $want"
  [ -e "$want" ] || fail "$want is not on disk after dpkg -i"
done
[ "$(cat /var/lib/dpkg/info/imaged.conffiles)" = /etc/imaged/config.toml ] ||
  fail "config.toml is not the conffile"
/usr/bin/imaged --version | grep -q "^imaged $(dpkg-query -W -f='${Version}' imaged) (commit " ||
  fail "imaged --version does not say the package's version: $(/usr/bin/imaged --version)"

# The installed binaries, the packaged config (every key commented: the
# defaults), a temp root and socket.
/usr/bin/imaged --config /etc/imaged/config.toml --root "$dir/root" --address "$dir/imaged.sock" \
  2>"$dir/imaged.log" &
pid=$!
for _ in $(seq 1 100); do [ -S "$dir/imaged.sock" ] && break; sleep 0.05; done
[ -S "$dir/imaged.sock" ] || fail "the installed imaged did not serve: $(cat "$dir/imaged.log")"
/usr/bin/imagectl -a "$dir/imaged.sock" images | grep -q '^IMAGE' ||
  fail "the installed imagectl got no image list"
/usr/bin/imagectl -a "$dir/imaged.sock" du >/dev/null || fail "imagectl du failed"
kill -TERM "$pid"
wait "$pid" || fail "imaged did not exit cleanly on SIGTERM: $(cat "$dir/imaged.log")"
pid=""

dpkg -r imaged >/dev/null || fail "dpkg -r failed"
[ "$(dpkg-query -W -f='${Status}' imaged)" = "deinstall ok config-files" ] ||
  fail "after dpkg -r the package is '$(dpkg-query -W -f='${Status}' imaged)'"
while read -r f; do
  case "$f" in
    /etc/imaged/config.toml) [ -f "$f" ] || fail "dpkg -r removed the conffile" ;;
    /etc/imaged|/etc) ;;
    *) if [ -f "$f" ] || { [ -d "$f" ] && [[ $f == */imaged* ]]; }; then
         fail "$f is still there after dpkg -r"
       fi ;;
  esac
done <<<"$files"
dpkg --purge imaged >/dev/null
[ ! -e /etc/imaged/config.toml ] || fail "dpkg --purge left the conffile"
echo "package_test: passed"
