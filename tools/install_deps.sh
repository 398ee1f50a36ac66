#!/usr/bin/env bash
# Installs what building, running and testing imaged needs, from Debian's archive.
# Idempotent: packages already present are skipped, so a warm machine pays one dpkg query.
set -euo pipefail

packages=(
  bazel-bootstrap bazel-platforms default-jdk-headless
  build-essential pkg-config git
  protobuf-compiler libprotobuf-dev libprotoc-dev protobuf-compiler-grpc libgrpc++-dev libgrpc-dev
  librocksdb-dev libabsl-dev libre2-dev libssl-dev libcurl4-openssl-dev libarchive-dev
  libtomlplusplus-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang-14 libclang-rt-14-dev
  containerd docker-registry umoci skopeo
  python3 openssl curl apache2-utils
  gnuplot-nox lintian
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install_deps: missing packages (run as root to install): ${missing[*]}" >&2
    exit 1
  fi
  echo "install_deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The upstream containerd .proto files, for the wire-compatibility test only:
# the -dev package is extracted, not installed, so its Go dependencies stay out.
upstream=/var/cache/imaged/containerd-dev
if [ ! -d "$upstream/usr/share/gocode/src/github.com/containerd/containerd/api" ]; then
  tmp=$(mktemp -d) && chmod 755 "$tmp"
  # A machine whose packages were all present may have no package lists yet.
  (cd "$tmp" && { apt-get download -qq golang-github-containerd-containerd-dev >/dev/null 2>&1 ||
                  { apt-get update -qq && apt-get download -qq golang-github-containerd-containerd-dev >/dev/null; }; })
  mkdir -p "$upstream"
  dpkg-deb -x "$tmp"/golang-github-containerd-containerd-dev_*.deb "$upstream"
  rm -rf "$tmp"
fi
