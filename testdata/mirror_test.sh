#!/usr/bin/env bash
# Mirror mode against Debian's real containerd 1.6 with its CRI plugin: imaged
# follows containerd's images (ctr import, tag, label, rm) and its CRI answers
# match containerd's own CRI field by field after each step (cri_compare);
# imaged killed, containerd changed, imaged restarted: the mirror converges
# writing only what changed; containerd stopped: imaged keeps answering and
# says it is disconnected; containerd restarted: imaged resyncs; CRI
# RemoveImage through imaged removes the image from containerd; PullImage
# through imaged, forwarded to containerd's CRI (which unpacks) and without
# an upstream CRI (written into containerd by imaged), from a loopback
# docker-registry: visible in imaged at once, usable in containerd;
# ImageFsInfo names containerd's image filesystem (its CRI's mountpoint) in
# both, and its used bytes follow a pull and a removal.
#
#   mirror_test.sh IMAGED IMAGECTL CRI_COMPARE
set -euo pipefail

LIB="${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing"
source "$LIB/e2e_lib.sh"
source "$LIB/registry_lib.sh"
IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
CRI_COMPARE=$(realpath "$3")
e2e_init
require_tools containerd ctr tar docker-registry skopeo umoci

CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
CONTAINERD_LOG="$E2E_TMP/containerd.log"
E2E_LOGS+=("$CONTAINERD_LOG")
ROOT="$E2E_TMP/imaged-root"
SOCK="$E2E_SOCKDIR/imaged.sock"

ctrd() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }
ic() { "$IMAGECTL" --address "$SOCK" "$@"; }

# containerd with its CRI plugin, everything under the temp dir.
write_containerd_config() {
  e2e_cri_plugin_toml native | e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK"
}

start_containerd() {
  e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$CONTAINERD_LOG"
  e2e_require_cri "$CTRD_SOCK"
}

stop_containerd() {
  e2e_stop_containerd
}

# same_answers STEP: imaged's CRI and containerd's agree (containerd's CRI
# learns of image events asynchronously, so this waits up to 15 s). Two
# fields containerd 1.6.20's CRI leaves unset and imaged fills as later CRI
# versions do are compared apart: pinned (from io.cri-containerd.pinned) and
# spec (spec.image = the image ID).
same_answers() {
  local out deadline=$((SECONDS + 15))
  until out=$("$CRI_COMPARE" --ignore pinned --ignore spec "$SOCK" "$CTRD_SOCK" 2>&1); do
    [ "$SECONDS" -ge "$deadline" ] && fail "$1: imaged's CRI and containerd's differ:
$out"
    sleep 0.2
  done
  echo "    $1: $(tail -1 <<<"$out")"
}

# An OCI archive of N quick images named docker.io/mirror/NAME-i:1.
make_archive() {
  local name=$1 count=$2 layout="$E2E_TMP/$1"
  OCI_QUICK_ENTRIES=()
  for i in $(seq 1 "$count"); do oci_quick_image "$layout" "docker.io/mirror/$name-$i:1" 4096; done
  oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
  oci_archive "$layout" "$E2E_TMP/$name.tar"
}

step "containerd with its CRI plugin; imaged mirroring its k8s.io namespace"
write_containerd_config
start_containerd
start_imaged "$ROOT" "$SOCK" --containerd-address "$CTRD_SOCK" --upstream-cri-address "$CTRD_SOCK"
wait_for "the mirror to connect" 30 ic mirror
same_answers "empty"

step "ctr images import: both CRIs list the images the same"
make_archive first 3
must "ctr images import" ctrd images import --no-unpack "$E2E_TMP/first.tar" >/dev/null
same_answers "after import"
assert_contains "imagectl images" "$(ic images)" "docker.io/mirror/first-1"

step "ctr images tag, label pinned, rm"
must "ctr images tag" ctrd images tag docker.io/mirror/first-1:1 docker.io/mirror/retag:2 >/dev/null
same_answers "after tag"
must "ctr images label" ctrd images label docker.io/mirror/first-2:1 io.cri-containerd.pinned=pinned >/dev/null
same_answers "after label"
assert_contains "imaged reports the pinned label" "$(ic inspecti docker.io/mirror/first-2:1)" '"pinned": true'
must "ctr images rm" ctrd images rm docker.io/mirror/first-3:1 >/dev/null
same_answers "after rm"

step "kill imaged, change containerd, restart: only the changes are written"
kill -KILL "$IMAGED_PID"
e2e_wait_gone "$IMAGED_PID" 10 || fail "imaged survived kill -9"
e2e_reap "$IMAGED_PID"
IMAGED_PID=""
make_archive second 2
must "ctr images import" ctrd images import --no-unpack "$E2E_TMP/second.tar" >/dev/null
must "ctr images rm" ctrd images rm docker.io/mirror/retag:2 >/dev/null
must "ctr images label" ctrd images label docker.io/mirror/first-1:1 team=blue >/dev/null
# containerd's CRI adds an ID record for each imported image, shortly after.
nine_records() { [ "$(ctrd images ls -q | wc -l)" -eq 9 ]; }
wait_for "containerd's CRI to name the new images" 15 nine_records
start_imaged "$ROOT" "$SOCK" --containerd-address "$CTRD_SOCK" --upstream-cri-address "$CTRD_SOCK"
wait_for "the mirror to connect" 30 ic mirror
sync_line=$(grep 'mirror: k8s.io:' "$IMAGED_LOG" | tail -1)
# Written: the relabelled tag, the 2 imported tags and their 2 ID records;
# deleted: the removed tag; untouched: the other tag and the 3 older IDs.
assert_contains "the restart's sync" "$sync_line" "9 records in containerd, 4 unchanged, 5 written, 1 deleted"
same_answers "after the restart"

step "containerd stopped: imaged keeps answering and says it is disconnected"
before=$(ic images)
stop_containerd
wait_for "the mirror to notice" 30 bash -c "! '$IMAGECTL' --address '$SOCK' mirror"
assert_eq "imagectl images with containerd down" "$before" "$(ic images)"
assert_contains "imagectl mirror" "$(ic mirror 2>&1 || true)" "connected: no"
must "imagectl inspecti while containerd is down" ic inspecti docker.io/mirror/first-1:1 >/dev/null

step "containerd restarted: imaged resyncs"
start_containerd
wait_for "the mirror to reconnect" 60 ic mirror
make_archive third 1
must "ctr images import" ctrd images import --no-unpack "$E2E_TMP/third.tar" >/dev/null
same_answers "after containerd's restart"

step "CRI RemoveImage through imaged removes the image from containerd"
must "imagectl rmi" ic rmi docker.io/mirror/second-1:1 >/dev/null
assert_not_contains "ctr images ls" "$(ctrd images ls -q)" "docker.io/mirror/second-1:1"
same_answers "after rmi through imaged"

step "read-your-writes: ImageStatus right after an import finds the image"
# Asked at once, before the import's event may have reached the mirror: a
# miss asks containerd before answering "no such image".
make_archive fourth 1
must "ctr images import" ctrd images import --no-unpack "$E2E_TMP/fourth.tar" >/dev/null
must "imagectl inspecti (read-your-writes)" ic inspecti docker.io/mirror/fourth-1:1 >/dev/null

# fs_of SOCK mountpoint|used: image_filesystems[0] of a CRI endpoint's ImageFsInfo.
fs_of() {
  "$IMAGECTL" --address "$1" imagefsinfo | python3 -c '
import json, sys
fs = json.load(sys.stdin)["status"]["imageFilesystems"][0]
print(fs["fsId"]["mountpoint"] if sys.argv[1] == "mountpoint" else fs["usedBytes"]["value"])' "$2"
}
used_above() { [ "$(fs_of "$SOCK" used)" -gt "$1" ]; }
used_below() { [ "$(fs_of "$SOCK" used)" -lt "$1" ]; }

step "PullImage forwarded to containerd's CRI: unpacked there, listed here at once"
used_before=$(fs_of "$SOCK" used)
start_registry plain
build_image "$E2E_TMP/app" v1 2 100000
APP_CONFIG=$IMAGE_CONFIG
push_image "$E2E_TMP/app:v1" "$REGISTRY_PLAIN_ADDR/team/app:v1" --format oci
out=$(must "imagectl pull (forwarded)" ic pull "$REGISTRY_PLAIN_ADDR/team/app:v1")
assert_contains "pull answer" "$out" "$APP_CONFIG"
assert_contains "imagectl images right after the pull" "$(ic images)" "$REGISTRY_PLAIN_ADDR/team/app"
unpacked=$(CONTAINERD_SNAPSHOTTER=native ctrd images check 2>/dev/null | awk -v n="$REGISTRY_PLAIN_ADDR/team/app:v1" '$1 == n { print $NF }')
assert_eq "containerd unpacked the pulled image" "true" "$unpacked"
same_answers "after the forwarded pull"
assert_eq "ImageFsInfo mountpoint (forwarded)" "$(fs_of "$CTRD_SOCK" mountpoint)" "$(fs_of "$SOCK" mountpoint)"
# containerd's CRI measures its snapshots every 10 s.
wait_for "ImageFsInfo's used bytes to grow after the pull" 30 used_above "$used_before"

step "PullImage without an upstream CRI: imaged writes the image into containerd"
stop_imaged
printf 'containerd_root = "%s/root"\ncontainerd_snapshotter = "native"\n' "$CTRD_DIR" >"$E2E_TMP/disk.toml"
start_imaged "$ROOT" "$SOCK" --config "$E2E_TMP/disk.toml" --containerd-address "$CTRD_SOCK"
wait_for "the mirror to connect" 30 ic mirror
assert_eq "ImageFsInfo mountpoint (measured)" "$(fs_of "$CTRD_SOCK" mountpoint)" "$(fs_of "$SOCK" mountpoint)"
used_before=$(fs_of "$SOCK" used)
build_image "$E2E_TMP/other" v1 1 50000
OTHER_CONFIG=$IMAGE_CONFIG
push_image "$E2E_TMP/other:v1" "$REGISTRY_PLAIN_ADDR/team/other:v1" --format oci
out=$(must "imagectl pull (into containerd)" ic pull "$REGISTRY_PLAIN_ADDR/team/other:v1")
assert_contains "pull answer" "$out" "$OTHER_CONFIG"
names=$(ctrd images ls -q)
assert_contains "containerd's records" "$names" "$REGISTRY_PLAIN_ADDR/team/other:v1"
assert_contains "containerd's records" "$names" "$OTHER_CONFIG"
assert_contains "imagectl images" "$(ic images)" "$REGISTRY_PLAIN_ADDR/team/other"
assert_eq "leases left in containerd" "" "$(ctrd leases ls -q | grep imaged-pull || true)"
same_answers "after the pull into containerd"
wait_for "ImageFsInfo's used bytes to grow after the pull" 15 used_above "$used_before"
used_pulled=$(fs_of "$SOCK" used)
must "imagectl rmi (into containerd)" ic rmi "$REGISTRY_PLAIN_ADDR/team/other:v1" >/dev/null
wait_for "ImageFsInfo's used bytes to shrink after the removal" 15 used_below "$used_pulled"

stop_imaged
stop_containerd
e2e_pass
