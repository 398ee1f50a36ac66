#!/usr/bin/env bash
# Mirror mode when containerd misbehaves (Debian's real containerd 1.6):
#   hung (SIGSTOP; its socket stays open): imaged says "not answering" within
#     a deadline, an ImageStatus miss answers "not present" within its
#     budget, ListImages and hits stay fast with 50 misses in flight,
#     RemoveImage fails within its deadline and changes nothing here, SIGCONT
#     recovers without a restart, and SIGTERM during the hang exits within
#     shutdown_timeout + 1 s;
#   killed and restarted in a loop: no read fails;
#   slow (every answer 200 ms late, through tools/testing/slow_socket.py):
#     reads stay fast and the mirror still follows;
#   hung while imaged pulls into it: PullImage fails within its deadline.
# The metrics say so: containerd not answering, timeouts per method, misses
# by outcome.
#
#   mirror_fault_test.sh IMAGED IMAGECTL CRI_LOAD
set -euo pipefail

LIB="${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing"
source "$LIB/e2e_lib.sh"
source "$LIB/registry_lib.sh"
IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
CRI_LOAD=$(realpath "$3")
e2e_init
require_tools containerd ctr tar python3 curl docker-registry skopeo umoci

CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
SLOW_SOCK="$E2E_SOCKDIR/slow.sock"
CONTAINERD_LOG="$E2E_TMP/containerd.log"
E2E_LOGS+=("$CONTAINERD_LOG")
ROOT="$E2E_TMP/imaged-root"
SOCK="$E2E_SOCKDIR/imaged.sock"

# Short deadlines so the test runs in seconds; the defaults are 5 s, 60 s, 2 s, 10 s.
CONFIG="$E2E_TMP/imaged.toml"
cat >"$CONFIG" <<'EOF'
containerd_timeout = "1s"
containerd_list_timeout = "2s"
mirror_miss_budget = "1s"
shutdown_timeout = "3s"
EOF

ctrd() { ctr --address "$CTRD_SOCK" -n k8s.io "$@"; }
ic() { "$IMAGECTL" --address "$SOCK" "$@"; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

start_containerd() {
  e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$CONTAINERD_LOG"
  e2e_require_cri "$CTRD_SOCK"
}

# An OCI archive of N quick images named docker.io/mirror/NAME-i:1.
make_archive() {
  local name=$1 count=$2 layout="$E2E_TMP/$1"
  OCI_QUICK_ENTRIES=()
  for i in $(seq 1 "$count"); do oci_quick_image "$layout" "docker.io/mirror/$name-$i:1" 4096; done
  oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
  oci_archive "$layout" "$E2E_TMP/$name.tar"
}

import() {
  make_archive "$1" "$2"
  must "ctr images import $1" ctrd images import --no-unpack "$E2E_TMP/$1.tar" >/dev/null
  listed() { ic images | grep -q "docker.io/mirror/$1-$2 "; }
  wait_for "imaged to list $1-$2" 15 listed "$1" "$2"
}

mirror_says() { ic mirror 2>&1 || true; }
answering() { ic mirror >/dev/null 2>&1; }
not_answering() { mirror_says | grep -q "containerd: not answering"; }

# cri_load's "KIND ... max_ms=X" as whole milliseconds.
max_ms() { awk -v k="$1" '$1 == k { for (i = 2; i <= NF; i++) if ($i ~ /^max_ms=/) { split($i, a, "="); printf "%d", a[2] } }' <<<"$2"; }

assert_below() {  # WHAT LIMIT VALUE
  [ -n "$3" ] && [ "$3" -lt "$2" ] || fail "$1: $3 ms, expected under $2 ms"
  echo "    $1: $3 ms (limit $2 ms)"
}

# reads_stay_fast WHAT MISSES: cri_load for 3-4 s with MISSES miss callers;
# no call fails, ListImages and hits stay under 1 s, misses under 2.5 s.
reads_stay_fast() {
  local out
  out=$("$CRI_LOAD" --address "$SOCK" --hit docker.io/mirror/hang-1:1 --misses "$2" --duration "$3") ||
    fail "cri_load saw failures with containerd $1:
$out"
  echo "$out"
  assert_below "ListImages, slowest" 1000 "$(max_ms list "$out")"
  assert_below "ImageStatus hit, slowest" 1000 "$(max_ms hit "$out")"
  assert_below "ImageStatus miss, slowest" 2500 "$(max_ms miss "$out")"
}

step "containerd with its CRI plugin; imaged mirroring it with 1 s deadlines"
e2e_cri_plugin_toml native | e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK"
start_containerd
start_imaged "$ROOT" "$SOCK" --config "$CONFIG" --containerd-address "$CTRD_SOCK" \
  --upstream-cri-address "$CTRD_SOCK" --metrics-address 127.0.0.1:0
wait_for "the mirror to connect" 30 ic mirror
METRICS_PORT=$(sed -n 's/^imaged: metrics on port \([0-9]*\).*/\1/p' "$IMAGED_LOG")
metric() { curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
import hang 2
assert_contains "imagectl mirror" "$(ic mirror)" "containerd: answering"

step "containerd hung (SIGSTOP): imaged says so within a deadline and a heartbeat"
kill -STOP "$CONTAINERD_PID"
t0=$(now_ms)
wait_for "imagectl mirror to say containerd is not answering" 10 not_answering
assert_below "time to report it" 3500 $(($(now_ms) - t0))
assert_contains "imagectl mirror" "$(mirror_says)" "connected: yes"

step "an ImageStatus miss answers 'not present' within its budget"
t0=$(now_ms)
out=$("$CRI_LOAD" --address "$SOCK" --list-callers 0 --misses 1 --duration 1ms)
echo "$out"
assert_below "the miss" 2000 "$(max_ms miss "$out")"
assert_below "the whole call" 4000 $(($(now_ms) - t0))

step "ListImages and ImageStatus hits stay fast with 50 misses in flight"
reads_stay_fast hung 50 4s

step "RemoveImage fails within its deadline and removes nothing here"
t0=$(now_ms)
out=$(must_fail "imagectl rmi while containerd hangs" ic rmi docker.io/mirror/hang-2:1)
assert_below "RemoveImage" 4000 $(($(now_ms) - t0))
grep -Eq "DEADLINE_EXCEEDED|UNAVAILABLE|deadline|not answering|Deadline" <<<"$out" ||
  fail "RemoveImage's error does not say containerd timed out: $out"
assert_contains "imagectl images after the failed rmi" "$(ic images)" "docker.io/mirror/hang-2"
assert_eq "metric imaged_mirror_containerd_answering" 0 "$(metric imaged_mirror_containerd_answering)"
[ "$(metric 'imaged_mirror_containerd_timeouts_total{method="Images/Get"}')" -ge 1 ] ||
  fail "no Images/Get timeout counted: $(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep mirror)"
[ "$(metric 'imaged_mirror_misses_total{outcome="queue_full"}')" -ge 1 ] ||
  fail "no miss answered for a full queue: $(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep mirror)"
[ "$(metric 'imaged_mirror_misses_total{outcome="over_budget"}')" -ge 1 ] ||
  fail "no miss answered over budget: $(curl -s "http://127.0.0.1:$METRICS_PORT/metrics" | grep mirror)"

step "SIGCONT: answering again without a restart; both sides agree on hang-2"
kill -CONT "$CONTAINERD_PID"
wait_for "imagectl mirror to say containerd answers" 10 answering
# containerd may still carry out the delete it was sent before it stopped;
# either way imaged ends up where containerd is.
agree() {
  [ "$(ctrd images ls -q | grep -c '^docker.io/mirror/hang-2:1$')" == \
    "$(ic images | grep -c 'docker.io/mirror/hang-2 ')" ]
}
wait_for "imaged and containerd to agree on hang-2" 15 agree
import after 1
must "imagectl inspecti after the hang" ic inspecti docker.io/mirror/after-1:1 >/dev/null

step "containerd killed and restarted in a loop: no read fails"
"$CRI_LOAD" --address "$SOCK" --hit docker.io/mirror/hang-1:1 --misses 4 --duration 14s \
  >"$E2E_TMP/loop.out" 2>&1 &
load_pid=$!
e2e_track "$load_pid"
for round in 1 2 3; do
  sleep 1
  kill -KILL "$CONTAINERD_PID"
  e2e_wait_gone "$CONTAINERD_PID" 10 || fail "containerd survived kill -9"
  e2e_reap "$CONTAINERD_PID"
  sleep 1
  start_containerd
done
e2e_wait_gone "$load_pid" 30 || fail "cri_load did not finish"
e2e_reap "$load_pid"
cat "$E2E_TMP/loop.out"
assert_eq "cri_load's exit status across containerd restarts" 0 "$E2E_STATUS"
wait_for "the mirror to reconnect" 60 ic mirror
import restarted 1

step "a slow containerd (every answer 200 ms late): reads stay fast, the mirror follows"
stop_imaged
python3 "$LIB/slow_socket.py" --listen "$SLOW_SOCK" --upstream "$CTRD_SOCK" --delay-ms 200 &
slow_pid=$!
e2e_track "$slow_pid"
wait_for "the slow proxy" 10 test -S "$SLOW_SOCK"
start_imaged "$ROOT" "$SOCK" --config "$CONFIG" --containerd-address "$SLOW_SOCK"
wait_for "the mirror to connect through the slow proxy" 60 ic mirror
reads_stay_fast slow 8 3s
import slow 1
assert_contains "imagectl mirror" "$(ic mirror)" "containerd: answering"

step "PullImage into a hung containerd (imaged pulls) fails within its deadline"
start_registry plain
build_image "$E2E_TMP/app" v1 1 50000
push_image "$E2E_TMP/app:v1" "$REGISTRY_PLAIN_ADDR/team/app:v1" --format oci
kill -STOP "$CONTAINERD_PID"
t0=$(now_ms)
out=$(must_fail "imagectl pull into a hung containerd" ic pull "$REGISTRY_PLAIN_ADDR/team/app:v1")
# Each call to containerd waits 1 s at most, plus the proxy's 200 ms.
assert_below "PullImage" 8000 $(($(now_ms) - t0))
grep -Eq "DEADLINE_EXCEEDED|UNAVAILABLE|deadline|Deadline" <<<"$out" ||
  fail "PullImage's error does not say containerd timed out: $out"
kill -CONT "$CONTAINERD_PID"
wait_for "containerd to answer again" 15 answering
out=$(must "imagectl pull once containerd answers" ic pull "$REGISTRY_PLAIN_ADDR/team/app:v1")
assert_contains "the pulled image" "$(ic images)" "$REGISTRY_PLAIN_ADDR/team/app"

step "SIGTERM while containerd hangs exits within shutdown_timeout + 1 s"
stop_imaged
kill -TERM "$slow_pid"
e2e_wait_gone "$slow_pid" 10 || kill -KILL "$slow_pid"
e2e_reap "$slow_pid"
start_imaged "$ROOT" "$SOCK" --config "$CONFIG" --containerd-address "$CTRD_SOCK" \
  --upstream-cri-address "$CTRD_SOCK"
wait_for "the mirror to connect" 30 ic mirror
kill -STOP "$CONTAINERD_PID"
# In flight at SIGTERM: misses, a RemoveImage, and a PullImage forwarded to
# containerd's CRI (no deadline of its own but upstream_pull_timeout), which
# holds its handler past the drain.
"$CRI_LOAD" --address "$SOCK" --misses 20 --duration 10s >/dev/null 2>&1 &
load_pid=$!
ic rmi docker.io/mirror/hang-1:1 >/dev/null 2>&1 &
rmi_pid=$!
ic pull 127.0.0.1:1/nothing/here:1 >/dev/null 2>&1 &
pull_pid=$!
for pid in "$load_pid" "$rmi_pid" "$pull_pid"; do e2e_track "$pid"; done
sleep 1
t0=$(now_ms)
kill -TERM "$IMAGED_PID"
e2e_wait_gone "$IMAGED_PID" 10 || fail "imaged still running 10 s after SIGTERM"
assert_below "SIGTERM to exit (shutdown_timeout 3 s)" 4000 $(($(now_ms) - t0))
e2e_reap "$IMAGED_PID"
assert_eq "imaged's exit status" 0 "$E2E_STATUS"
IMAGED_PID=""
kill -CONT "$CONTAINERD_PID"
for pid in "$load_pid" "$rmi_pid" "$pull_pid"; do
  e2e_wait_gone "$pid" 30 || true
  e2e_reap "$pid"
done
e2e_stop_containerd
e2e_pass
