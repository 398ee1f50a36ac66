#!/usr/bin/env bash
# One collection of a large sweep, with a writer beside it: imaged's peak
# resident size while the pass runs, and how long the writer's calls wait.
#
# The root is a copy of ROOT (left as it was). A root worth sweeping is one
# cri_scale_bench loaded without gc.ref labels, so that a pass removes every
# config (read by the image's three names, which are re-indexed with each
# removal) and layer, up to the pass's budget of 20,000 blobs:
#
#   bazel build //plugin:imaged //tools/imagectl:imagectl //tools/bench:cri_scale_bench
#   bazel-bin/tools/bench/cri_scale_bench --imaged bazel-bin/plugin/imaged --images 30000 \
#     --systems imaged --no-gc-labels --keep --workdir /var/tmp/gc-sweep-30k \
#     --list-calls 1 --list-seconds 0.1 --status-seconds 0.1 --mixed-seconds 0.1
#   tools/bench/gc_sweep.sh bazel-bin/plugin/imaged bazel-bin/tools/imagectl/imagectl \
#     /var/tmp/gc-sweep-30k/imaged registry.example.com/bench/app-016809:v1
#
# The writer tags IMAGE again and again with ctr (Images.Create, which waits
# for the collector's exclusive moments), one call at a time, from 2 s
# before the pass to its end. Prints the pass's report, the resident size
# before, at most during (sampled every 20 ms) and after, and the tags'
# median and longest latency.
set -euo pipefail

IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
SOURCE=$3
IMAGE=$4
LIB="$(dirname "$0")/../testing"
source "$LIB/e2e_lib.sh"
e2e_init
require_tools ctr

ROOT="$E2E_TMP/root"
cp -a "$SOURCE" "$ROOT"
echo 'gc_delay = "1h"' >"$E2E_TMP/config.toml"  # no pass but the one asked for
start_imaged "$ROOT" "$E2E_SOCKDIR/imaged.sock" --config "$E2E_TMP/config.toml"
rss() { awk '/VmRSS/ { print $2 }' "/proc/$IMAGED_PID/status"; }
sleep 3  # start-up settles (its pages given back)
before=$(rss)

peak=0
(
  while [ ! -e "$E2E_TMP/stop" ]; do
    r=$(rss) || break
    [ "$r" -gt "$peak" ] && { peak=$r; echo "$peak" >"$E2E_TMP/peak"; }
    sleep 0.02
  done
) &
sampler=$!
e2e_track "$sampler"
(
  i=0
  while [ ! -e "$E2E_TMP/stop" ]; do
    i=$((i + 1))
    s=$(date +%s%N)
    timeout 120 ctr --address "$IMAGED_SOCK" -n k8s.io images tag "$IMAGE" \
      "docker.io/library/gc-sweep:$i" >/dev/null
    echo $((($(date +%s%N) - s) / 1000000))
  done >"$E2E_TMP/latency"
) &
writer=$!
e2e_track "$writer"
sleep 2
timeout 600 "$IMAGECTL" --address "$IMAGED_SOCK" gc  # a pass of 20,000 blobs: 9-17 s here
touch "$E2E_TMP/stop"
wait "$writer" "$sampler"
sleep 1
echo "resident: $((before / 1024)) MiB before, $(($(cat "$E2E_TMP/peak") / 1024)) MiB at most, $(($(rss) / 1024)) MiB after"
sort -n "$E2E_TMP/latency" | awk '{ a[NR] = $1 } END {
  printf "writer: %d tags, median %d ms, longest %d ms\n", NR, a[int((NR + 1) / 2)], a[NR] }'
stop_imaged
