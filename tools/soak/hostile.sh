#!/usr/bin/env bash
# Hostile-client soak (not in CI): tools/soak/hostile_client sends malformed,
# mutated and oversized requests to every method of one imaged for 10
# minutes, while its probe thread times ordinary calls; this script samples
# imaged's RSS and open fds every 30 s, and again after a minute idle.
#
#   tools/soak/hostile.sh [--duration 10m] [--threads 8]
#
# Builds //plugin:imaged and //tools/soak:hostile_client with bazel unless
# IMAGED and HOSTILE_CLIENT name prebuilt binaries. Fails when imaged dies,
# the client sees a code a bad request must not get or a message over
# 1 KiB, a probe call fails or takes 10 s or more, Admin.CheckIndex finds a
# problem, protobuf's log lines about refused requests are not held to 10 a
# minute, imaged's RSS after a minute idle is 25% over its RSS at 60 s (or
# it holds 16 more fds), or imaged does not stop cleanly on SIGTERM.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$REPO/tools/testing/e2e_lib.sh"
source "$HERE/soak_lib.sh"

soak_options 8 "$@"
soak_binaries "$REPO" HOSTILE_CLIENT //tools/soak:hostile_client

e2e_init
soak_root hostile
trap 'rc=$?; set +e; rm -rf "$ROOT"; (exit $rc); e2e_cleanup' EXIT

step "imaged on $ROOT; $THREADS hostile clients and a probe for $DURATION"
start_imaged "$ROOT" "$E2E_SOCKDIR/imaged.sock"
OUT=$E2E_TMP/hostile.out
"$HOSTILE_CLIENT" --address "$IMAGED_SOCK" --threads "$THREADS" --duration "${SECONDS_TOTAL}s" \
  >"$OUT" 2>"$E2E_TMP/hostile.err" &
CLIENT_PID=$!
e2e_track "$CLIENT_PID"

soak_sample 0s
START=$SECONDS
for ((t = 30; t <= SECONDS_TOTAL; t += 30)); do
  while ((SECONDS - START < t)) && e2e_alive "$CLIENT_PID"; do sleep 1; done
  e2e_alive "$CLIENT_PID" || break
  e2e_alive "$IMAGED_PID" || fail "imaged exited under the hostile load: $(tail -n 20 "$IMAGED_LOG")"
  soak_sample "${t}s"
done
e2e_reap "$CLIENT_PID"
CLIENT_STATUS=$E2E_STATUS
e2e_alive "$IMAGED_PID" || fail "imaged exited under the hostile load: $(tail -n 20 "$IMAGED_LOG")"
soak_sample end
sleep 60
soak_sample idle-60s

step "per method: calls and codes; probes"
cat "$OUT"
echo
soak_table when
# From the 60 s sample to the one after a minute idle: what the load left.
soak_growth

step "SIGTERM stops imaged cleanly"
T0=$(date +%s%N)
stop_imaged
echo "    stopped in $((($(date +%s%N) - T0) / 1000000)) ms"
# Protobuf logs a line per request with a string that is not UTF-8; imaged
# lets 10 a minute through (plugin/log_limit.h).
PB_LINES=$(grep -c '^imaged: protobuf' "$IMAGED_LOG" || true)
echo "    imaged's log: $(wc -l <"$IMAGED_LOG") lines, $PB_LINES from protobuf"
((PB_LINES <= (SECONDS_TOTAL / 60 + 2) * 11)) || fail "protobuf wrote $PB_LINES lines to imaged's log"
if [ "$CLIENT_STATUS" -ne 0 ]; then
  head -n 30 "$E2E_TMP/hostile.err" >&2
  fail "hostile_client exited $CLIENT_STATUS (see above)"
fi
worst=$(sed -n 's/^summary .*probe_max_ms=\([0-9]*\).*/\1/p' "$OUT")
[ "${worst:-0}" -lt 10000 ] || fail "a probe call took ${worst} ms"
[ -z "$GROWTH" ] || fail "imaged grew under the load and kept it:$GROWTH"
e2e_pass
