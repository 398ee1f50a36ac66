#!/usr/bin/env bash
# Load soak (not in CI): 32 clients over every service of one imaged for 10
# minutes; errors by gRPC code and latency per method, and imaged's RSS and
# open fds each minute.
#
#   tools/soak/load.sh [--duration 10m] [--threads 32]
#
# Builds //plugin:imaged and //tools/soak:soak_client with bazel unless IMAGED
# and SOAK_CLIENT name prebuilt binaries. Needs ctr, docker-registry, skopeo.
#
# A docker-registry on 127.0.0.1 holds 4 images, which the threads share (so
# pulls and removes of one image race), and two OCI archives are made for
# `ctr images import`. Each `soak_client load` thread runs the mixed workload
# (see soak_client.cc): CRI ListImages, ImageStatus (hits and misses),
# PullImage and RemoveImage; ctr imports; Images Get/Create/List/Delete;
# Content writes (some interrupted and resumed), reads (hashed) and deletes;
# Leases Create/AddResource/List/Delete and writes under a lease;
# Admin.GarbageCollect of one namespace or all.
#
# Expected non-OK codes (anything else is an error and fails the run):
#   Content.Write(interrupted)  Cancelled      we cancel the stream on purpose
#   Content.Write(resume)       Unavailable    "ref locked": the resume came before imaged
#                                              saw the interrupted stream end (containerd
#                                              does the same; the ingest is resumed later)
#                               AlreadyExists  (only after a crash: not here)
#   CRI.RemoveImage             NotFound       another thread removed it first
#
# Every minute it samples VmRSS (/proc/PID/status) and the open fds
# (/proc/PID/fd) of imaged; after the run it prints them as a table and fails
# when, after the 2-minute warm-up, the fds grew by more than 16 or the RSS
# by more than 25%. Then imaged must stop cleanly on SIGTERM.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$REPO/tools/testing/e2e_lib.sh"
source "$REPO/tools/testing/registry_lib.sh"
source "$HERE/soak_lib.sh"

soak_options 32 "$@"
soak_binaries "$REPO" SOAK_CLIENT //tools/soak:soak_client

e2e_init
require_tools ctr docker-registry skopeo tar sha256sum
soak_root load-soak
trap 'rc=$?; set +e; rm -rf "$ROOT"; (exit $rc); e2e_cleanup' EXIT

step "registry on 127.0.0.1 with 4 images, and 2 OCI archives"
start_registry soak
R=$REGISTRY_SOAK_ADDR
PULLS=()
for i in 0 1 2 3; do soak_push "i$i" "$R/soak/shared-$i:v1" $((256 << 10)); done
ARCHIVES=()
soak_archive docker.io/soak/alpha:1 docker.io/soak/beta:1
soak_archive docker.io/soak/gamma:1

step "imaged on $ROOT; $THREADS clients for $DURATION"
start_imaged "$ROOT" "$E2E_SOCKDIR/imaged.sock"
LOAD_OUT=$E2E_TMP/load.out
"$SOAK_CLIENT" load --address "$IMAGED_SOCK" --threads "$THREADS" --duration "$DURATION" \
  "${PULLS[@]}" "${ARCHIVES[@]}" >"$LOAD_OUT" 2>"$E2E_TMP/load.err" &
LOAD_PID=$!
e2e_track "$LOAD_PID"

soak_sample 0
START=$SECONDS
for ((m = 1; m * 60 <= SECONDS_TOTAL; m++)); do
  while ((SECONDS - START < m * 60)); do sleep 1; done
  e2e_alive "$IMAGED_PID" || fail "imaged exited during the load: $(tail -n 20 "$IMAGED_LOG")"
  soak_sample "$m"
done
e2e_reap "$LOAD_PID"
LOAD_STATUS=$E2E_STATUS
soak_sample end

step "per method: calls, latency (ms), non-OK codes"
grep -v '^summary' "$LOAD_OUT"
echo
soak_table minute
soak_growth
grep '^summary' "$LOAD_OUT"

step "SIGTERM stops imaged cleanly"
stop_imaged
if [ "$LOAD_STATUS" -ne 0 ]; then
  head -n 30 "$E2E_TMP/load.err" >&2
  fail "soak_client load exited $LOAD_STATUS (unexpected errors above)"
fi
[ -z "$GROWTH" ] || fail "imaged grew after warm-up:$GROWTH"
e2e_pass
