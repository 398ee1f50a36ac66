#!/usr/bin/env bash
# Mirror mode's read latency while containerd is healthy, slow and hung
# (issue 12; docs/benchmarks.md "Mirror mode when containerd misbehaves"):
# ListImages, an ImageStatus hit and an ImageStatus miss, p50 and p99, one
# caller of each at a time, with imaged's default deadlines
# (containerd_timeout 5 s, mirror_miss_budget 2 s).
#
#   bazel run -c opt //tools/bench:mirror_fault_bench -- [--images N] [--seconds S]
#   mirror_fault_bench.sh IMAGED CRI_LOAD [--images N] [--seconds S]   (without Bazel)
#
# containerd (Debian's, CRI plugin off) gets N images (default 1000) with one
# `ctr images import`; imaged mirrors them. Then, S seconds each (default 10):
#   healthy   containerd as it is
#   slow      imaged talks to containerd through tools/testing/slow_socket.py,
#             every answer 200 ms late
#   hung      containerd SIGSTOPped (its socket stays open)
#   hung, 50 misses in flight   the same, with 50 callers asking for names
#             nobody has
# Prints one Markdown table. Needs root, containerd, ctr and python3.
set -euo pipefail

IMAGED=$(realpath "$1")
CRI_LOAD=$(realpath "$2")
shift 2
IMAGES=1000
SECONDS_EACH=10
while [ $# -gt 0 ]; do
  case "$1" in
    --images) IMAGES=$2; shift 2 ;;
    --seconds) SECONDS_EACH=$2; shift 2 ;;
    *) echo "usage: mirror_fault_bench.sh IMAGED CRI_LOAD [--images N] [--seconds S]" >&2; exit 2 ;;
  esac
done

find_lib() {
  local d
  for d in "${RUNFILES_DIR:+$RUNFILES_DIR/imaged/tools/testing}" \
    "$0.runfiles/imaged/tools/testing" "$PWD/tools/testing" "$(dirname "$0")/../testing"; do
    [ -n "$d" ] && [ -f "$d/e2e_lib.sh" ] && { echo "$d"; return; }
  done
  echo "mirror_fault_bench: cannot find tools/testing/e2e_lib.sh" >&2
  exit 2
}
LIB=$(find_lib)
source "$LIB/e2e_lib.sh"
e2e_init
require_tools containerd ctr python3

CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
SLOW_SOCK="$E2E_SOCKDIR/slow.sock"
SOCK="$E2E_SOCKDIR/imaged.sock"
E2E_LOGS+=("$E2E_TMP/containerd.log")
e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK" io.containerd.grpc.v1.cri </dev/null
e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$E2E_TMP/containerd.log"

step "$IMAGES images into containerd"
layout="$E2E_TMP/images"
OCI_QUICK_ENTRIES=()
for i in $(seq 1 "$IMAGES"); do oci_quick_image "$layout" "docker.io/bench/img-$i:1" 512; done
oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
oci_archive "$layout" "$E2E_TMP/images.tar"
must "ctr images import" ctr --address "$CTRD_SOCK" -n k8s.io images import --no-unpack "$E2E_TMP/images.tar" >/dev/null

start_mirror() {
  start_imaged "$E2E_TMP/imaged" "$SOCK" --containerd-address "$1"
  wait_for "the mirror's first sync" 600 grep -q 'mirror: k8s.io:' "$IMAGED_LOG"
}

# field KIND NAME OUTPUT: cri_load's value of NAME for KIND, e.g. p50_ms.
field() { awk -v k="$1" -v f="$2" '$1 == k { for (i = 2; i <= NF; i++) { split($i, a, "="); if (a[1] == f) print a[2] } }' <<<"$3"; }
ROWS=()
measure() {
  local what=$1 misses=$2 out
  out=$("$CRI_LOAD" --address "$SOCK" --hit docker.io/bench/img-1:1 --misses "$misses" \
    --duration "${SECONDS_EACH}s") || true
  echo "$out" >&2
  ROWS+=("| $what | $(field list p50_ms "$out") / $(field list p99_ms "$out") | $(field hit p50_ms "$out") / $(field hit p99_ms "$out") | $(field miss p50_ms "$out") / $(field miss p99_ms "$out") | $(field list errors "$out")+$(field hit errors "$out")+$(field miss errors "$out") |")
}

step "healthy"
start_mirror "$CTRD_SOCK"
measure "healthy" 1
stop_imaged

step "slow (+200 ms per answer)"
python3 "$LIB/slow_socket.py" --listen "$SLOW_SOCK" --upstream "$CTRD_SOCK" --delay-ms 200 &
slow_pid=$!
e2e_track "$slow_pid"
wait_for "the slow proxy" 10 test -S "$SLOW_SOCK"
start_mirror "$SLOW_SOCK"
measure "slow (+200 ms)" 1
stop_imaged
kill -TERM "$slow_pid"; e2e_wait_gone "$slow_pid" 10 || true; e2e_reap "$slow_pid"

step "hung (SIGSTOP)"
start_mirror "$CTRD_SOCK"
kill -STOP "$CONTAINERD_PID"
measure "hung" 1
measure "hung, 50 misses in flight" 50
kill -CONT "$CONTAINERD_PID"
stop_imaged
e2e_stop_containerd

echo
echo "$IMAGES images; ms, p50 / p99; one caller each of ListImages, ImageStatus of a present image, ImageStatus of names nobody has (the last row: 50 such callers), ${SECONDS_EACH} s per row"
echo
echo "| containerd | ListImages | ImageStatus hit | ImageStatus miss | errors |"
echo "|---|---:|---:|---:|---:|"
printf '%s\n' "${ROWS[@]}"
