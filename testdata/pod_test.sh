#!/usr/bin/env bash
# A pod, as kubelet runs one, with imaged (mirror mode) as the image endpoint
# and Debian's containerd 1.6 as the runtime endpoint: ImageStatus (a miss),
# PullImage, RunPodSandbox (host network), CreateContainer, StartContainer,
# the container exits 0 and its log says so, then the container, the sandbox
# and (through imaged) the image are removed. Once with PullImage forwarded
# to containerd's CRI, once with imaged pulling into containerd itself (then
# containerd unpacks when it creates the container). The images hold static
# binaries built here (cc -static) and come from a loopback docker-registry;
# the pause image too.
#
#   pod_test.sh IMAGED IMAGECTL CRI_POD
set -euo pipefail

LIB="${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing"
source "$LIB/e2e_lib.sh"
source "$LIB/registry_lib.sh"
IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
CRI_POD=$(realpath "$3")
e2e_init
require_tools containerd ctr runc cc docker-registry skopeo umoci

CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
CONTAINERD_LOG="$E2E_TMP/containerd.log"
E2E_LOGS+=("$CONTAINERD_LOG")
ROOT="$E2E_TMP/imaged-root"
SOCK="$E2E_SOCKDIR/imaged.sock"

# image_with DIR TAG BINARY: an OCI image whose only layer is BINARY at
# /BINARY's-name, run as its command.
image_with() {
  local dir=$1 tag=$2 bin=$3 name scratch
  name=$(basename "$bin")
  scratch=$(mktemp -d "$E2E_TMP/layer.XXXXXX")
  cp "$bin" "$scratch/$name"
  [ -f "$dir/index.json" ] || must "umoci init $dir" umoci init --layout "$dir" >/dev/null
  must "umoci new $dir:$tag" umoci new --image "$dir:$tag" >/dev/null
  must "umoci insert $name" umoci insert --rootless --image "$dir:$tag" "$scratch/$name" "/$name" >/dev/null
  must "umoci config $dir:$tag" umoci config --image "$dir:$tag" --config.cmd "/$name" >/dev/null
  must "add mediaType to $dir:$tag" _registry_add_media_type "$dir" "$tag"
}

step "static hello and pause binaries, as images in a loopback registry"
cat >"$E2E_TMP/hello.c" <<'C'
#include <unistd.h>
int main(void) {
  static const char msg[] = "hello from a pod whose image imaged pulled\n";
  return write(1, msg, sizeof msg - 1) == sizeof msg - 1 ? 0 : 1;
}
C
cat >"$E2E_TMP/pause.c" <<'C'
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
static void done(int sig) { (void)sig; _exit(0); }
int main(void) {
  signal(SIGTERM, done);
  signal(SIGINT, done);
  for (;;) pause();
}
C
must "cc -static hello" cc -static -O2 -o "$E2E_TMP/hello" "$E2E_TMP/hello.c"
must "cc -static pause" cc -static -O2 -o "$E2E_TMP/pause" "$E2E_TMP/pause.c"
start_registry plain
REG=$REGISTRY_PLAIN_ADDR
image_with "$E2E_TMP/images" hello "$E2E_TMP/hello"
image_with "$E2E_TMP/images" pause "$E2E_TMP/pause"
push_image "$E2E_TMP/images:hello" "$REG/e2e/hello:1" --format oci
push_image "$E2E_TMP/images:pause" "$REG/e2e/pause:1" --format oci

step "containerd with its CRI plugin (pause image from the loopback registry)"
e2e_cri_plugin_toml native "$REG/e2e/pause:1" | e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK"
e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$CONTAINERD_LOG"
e2e_require_cri "$CTRD_SOCK"

run_pod() {
  local mode=$1 out
  out=$("$CRI_POD" --image-endpoint "$SOCK" --runtime-endpoint "$CTRD_SOCK" \
    --image "$REG/e2e/hello:1" --log-dir "$E2E_TMP/pods-$mode" \
    --expect-log "hello from a pod whose image imaged pulled" 2>&1) ||
    fail "the pod ($mode) failed:
$out"
  echo "$out" | sed 's/^/    /'
  assert_contains "ImageStatus before the pull" "$out" "ImageStatus $REG/e2e/hello:1: not present"
  assert_contains "the container" "$out" "ContainerStatus: exited 0"
  assert_contains "the image's removal" "$out" "RemoveImage: ok; ImageStatus: not present"
  assert_not_contains "containerd's records after RemoveImage" \
    "$(ctr --address "$CTRD_SOCK" -n k8s.io images ls -q)" "$REG/e2e/hello:1"
}

step "a pod with PullImage forwarded to containerd's CRI"
start_imaged "$ROOT" "$SOCK" --containerd-address "$CTRD_SOCK" --upstream-cri-address "$CTRD_SOCK"
wait_for "the mirror to connect" 30 "$IMAGECTL" --address "$SOCK" mirror
run_pod forwarded
stop_imaged

step "a pod with imaged pulling into containerd (containerd unpacks at CreateContainer)"
start_imaged "$ROOT" "$SOCK" --containerd-address "$CTRD_SOCK"
wait_for "the mirror to connect" 30 "$IMAGECTL" --address "$SOCK" mirror
run_pod imaged-pull
stop_imaged

e2e_stop_containerd
e2e_pass
