#!/usr/bin/env bash
# Mirror mode figures (issue 5): how long imaged takes to mirror a containerd
# that already holds N images (x3 names), how long a restart of imaged takes
# to converge when nothing changed, and the lag from a containerd image
# event to imaged's index under a burst of imports.
#
#   tools/bench/mirror_bench.sh IMAGED IMAGECTL CONTAINERD_ROOT [BURST]
#
# CONTAINERD_ROOT is a containerd root holding the images, e.g. the one
# `cri_scale_bench --systems containerd --images N --keep` leaves in
# /var/tmp/imaged-cri-scale-N/containerd/root. It is copied, not changed.
# containerd runs with its CRI plugin off (only its Images, Content and
# Events APIs matter here). BURST (default 500) images are then imported
# with one `ctr images import` while imaged follows.
set -euo pipefail

IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
TEMPLATE=$(realpath "$3")
BURST=${4:-500}
source "$(dirname "$0")/../testing/e2e_lib.sh"
e2e_init

CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
mkdir -p "$CTRD_DIR"
cp -a "$TEMPLATE" "$CTRD_DIR/root"
cat >"$CTRD_DIR/config.toml" <<EOF
version = 2
root = "$CTRD_DIR/root"
state = "$CTRD_DIR/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$E2E_SOCKDIR/containerd.ttrpc"
[debug]
  address = "$E2E_SOCKDIR/containerd.debug"
  level = "warn"
[plugins."io.containerd.internal.v1.opt"]
  path = "$CTRD_DIR/opt"
EOF
containerd --config "$CTRD_DIR/config.toml" >"$E2E_TMP/containerd.log" 2>&1 &
e2e_track $!
E2E_LOGS+=("$E2E_TMP/containerd.log")
wait_for "containerd" 60 ctr --address "$CTRD_SOCK" version
records=$(ctr --address "$CTRD_SOCK" -n k8s.io images ls -q | wc -l)

ic() { "$IMAGECTL" --address "$E2E_SOCKDIR/imaged.sock" "$@"; }
now_ms() { date +%s%3N; }

# start_mirror: starts imaged in mirror mode; sets ELAPSED_MS (start to
# connected, i.e. the initial sync done) and SYNC (its log line).
start_mirror() {
  local t0
  t0=$(now_ms)
  start_imaged "$E2E_TMP/imaged" "$E2E_SOCKDIR/imaged.sock" --containerd-address "$CTRD_SOCK"
  wait_for "the mirror to connect" 600 ic mirror
  ELAPSED_MS=$(($(now_ms) - t0))
  SYNC=$(grep 'mirror: k8s.io:' "$IMAGED_LOG" | tail -1 | sed 's/^imaged: mirror: //')
}

start_mirror
first=$ELAPSED_MS
first_sync=$SYNC
stop_imaged
start_mirror
again=$ELAPSED_MS
again_sync=$SYNC

# The burst: BURST new images in one import, followed by events.
layout="$E2E_TMP/burst"
OCI_QUICK_ENTRIES=()
for i in $(seq 1 "$BURST"); do oci_quick_image "$layout" "docker.io/burst/img-$i:1" 1024; done
oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
oci_archive "$layout" "$E2E_TMP/burst.tar"
t0=$(now_ms)
ctr --address "$CTRD_SOCK" -n k8s.io images import --no-unpack "$E2E_TMP/burst.tar" >/dev/null
t_import=$(now_ms)
all_there() { [ "$(ic ls -n k8s.io 'name~="^docker.io/burst/"' | grep -c 'docker.io/burst/')" -ge "$BURST" ]; }
wait_for "the burst in imaged's index" 600 all_there
t1=$(now_ms)
lag=$(ic mirror | grep 'events applied')

echo "| containerd records | first mirror (start to connected) | its sync | restart, nothing changed | its sync |"
echo "|---:|---:|---|---:|---|"
echo "| $records | ${first} ms | $first_sync | ${again} ms | $again_sync |"
echo
echo "burst of $BURST imports (one ctr images import): import took $((t_import - t0)) ms; all in imaged's index $((t1 - t0)) ms after it started"
echo "$lag"
stop_imaged
e2e_pass
