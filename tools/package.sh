#!/usr/bin/env bash
# Builds imaged_<version>_<arch>.deb with dpkg-deb and checks it with lintian
# (errors fail). The version is what `imaged --version` says.
#
#   tools/package.sh [--out DIR] [--imaged PATH --imagectl PATH] [--no-lintian]
#
# Without --imaged/--imagectl it installs what is missing and builds both with
# Bazel (-c opt). The package holds /usr/bin/imaged and /usr/bin/imagectl
# (stripped), /etc/imaged/config.toml (a conffile: every key commented with
# its default), the systemd units imaged.service and imaged-mirror.service,
# a tmpfiles.d entry for /run/imaged, the state directory /var/lib/imaged,
# a man page for each binary, and Depends computed by dpkg-shlibdeps.
# Files come from tools/package/.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD/tools/package
out=$PWD imaged="" imagectl="" lint=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=${2:?}; shift 2 ;;
    --imaged) imaged=${2:?}; shift 2 ;;
    --imagectl) imagectl=${2:?}; shift 2 ;;
    --no-lintian) lint=0; shift ;;
    *) echo "usage: tools/package.sh [--out DIR] [--imaged PATH --imagectl PATH] [--no-lintian]" >&2; exit 2 ;;
  esac
done
if [ -z "$imaged" ] || [ -z "$imagectl" ]; then
  bash tools/install_deps.sh
  bazel build -c opt //plugin:imaged //tools/imagectl:imagectl
  imaged=bazel-bin/plugin/imaged imagectl=bazel-bin/tools/imagectl/imagectl
fi

read -r _ version _ commit < <("$imaged" --version)
commit=${commit%)}
arch=$(dpkg --print-architecture)
deb="$out/imaged_${version}_${arch}.deb"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
umask 022
install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/imaged" "$root/lib/systemd/system" \
  "$root/usr/lib/tmpfiles.d" "$root/usr/share/man/man1" "$root/usr/share/doc/imaged" \
  "$root/var/lib/imaged"
install -m 755 "$imaged" "$root/usr/bin/imaged"
install -m 755 "$imagectl" "$root/usr/bin/imagectl"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/imaged" \
  "$root/usr/bin/imagectl"
install -m 644 "$src/config.toml" "$root/etc/imaged/config.toml"
install -m 644 "$src/imaged.service" "$src/imaged-mirror.service" "$root/lib/systemd/system/"
install -m 644 "$src/tmpfiles.conf" "$root/usr/lib/tmpfiles.d/imaged.conf"
for page in imaged imagectl; do
  gzip -9n -c "$src/$page.1" >"$root/usr/share/man/man1/$page.1.gz"
done
install -m 644 "$src/copyright" "$root/usr/share/doc/imaged/copyright"
{
  echo "imaged ($version) unstable; urgency=medium"
  echo
  echo "  * Release $version, built from commit $commit."
  echo
  echo " -- imaged team <imaged-team@example.org>  $(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}")"
} | gzip -9n >"$root/usr/share/doc/imaged/changelog.gz"
chmod 644 "$root"/usr/share/man/man1/*.gz "$root/usr/share/doc/imaged/changelog.gz"

# Depends: what the two binaries link, as Debian's shlibs and symbols files say.
mkdir -p "$stage/debian"
printf 'Source: imaged\n\nPackage: imaged\nArchitecture: any\n' >"$stage/debian/control"
depends=$(cd "$stage" && dpkg-shlibdeps -O -e root/usr/bin/imaged -e root/usr/bin/imagectl 2>/dev/null |
  sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

cat >"$root/DEBIAN/control" <<CONTROL
Package: imaged
Version: $version
Architecture: $arch
Maintainer: imaged team <imaged-team@example.org>
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: $depends
Section: admin
Priority: optional
Description: containerd image and content metadata service with a CRI image index
 imaged serves containerd's Images, Content, Leases and Events APIs and the
 Kubernetes CRI ImageService on a unix socket, keeping image metadata in
 RocksDB so that kubelet's ListImages and ImageStatus are answered from a
 persistent index. It can run alone (as containerd's content store or as
 kubelet's image service) or mirror a running containerd.
 .
 imagectl is its command-line client.
CONTROL
echo /etc/imaged/config.toml >"$root/DEBIAN/conffiles"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
  >"$root/DEBIAN/md5sums"
chmod 644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "package: $deb"
if [ "$lint" = 1 ]; then
  lintian --fail-on error --suppress-tags-from-file /dev/null "$deb"
  echo "package: lintian reports no errors"
fi
