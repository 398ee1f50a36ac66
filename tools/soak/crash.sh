#!/usr/bin/env bash
# Crash soak (not in CI): imaged under a mixed load is killed with SIGKILL at
# a random moment, restarted on the same root, and checked, over and over.
#
#   tools/soak/crash.sh [--kills 1000] [--threads 4] [--min-delay-ms 200] [--max-delay-ms 3000]
#
# Builds //plugin:imaged and //tools/soak:soak_client with bazel unless IMAGED
# and SOAK_CLIENT name prebuilt binaries. Needs ctr, docker-registry, skopeo.
#
# Once: a docker-registry on 127.0.0.1 with 2 images per load thread (pushed
# with skopeo), and two OCI archives for `ctr images import`. Then per kill:
#   1. start imaged on ROOT (under /dev/shm) and run `soak_client verify`:
#      everything the journal says was acknowledged is there and intact,
#      acknowledged deletes stayed deleted, every blob Content.List shows
#      reads back and hashes to its digest, Admin.CheckIndex is clean and
#      Admin.DiskUsage equals the files under ROOT/blobs/sha256;
#   2. run `soak_client load --crash` (content writes, interrupted writes and
#      their resumes, ctr imports, Images tags and deletes, CRI PullImage and
#      RemoveImage, leases, Admin.GarbageCollect), journalling what imaged
#      acknowledges;
#   3. SIGKILL imaged after a random delay, then stop the client (SIGTERM: the
#      calls in flight fail at once, and are journalled as "maybe").
# A last verify follows the last kill. Prints a summary; on the first
# violation (or an error a kill does not explain) it stops, exits 1 and keeps
# the work directory (root, journal, imaged and client logs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
source "$REPO/tools/testing/e2e_lib.sh"
source "$REPO/tools/testing/registry_lib.sh"
source "$HERE/soak_lib.sh"

KILLS=1000 THREADS=4 MIN_DELAY_MS=200 MAX_DELAY_MS=3000
while [ $# -gt 0 ]; do
  case "$1" in
    --kills) KILLS=${2:?}; shift 2 ;;
    --threads) THREADS=${2:?}; shift 2 ;;
    --min-delay-ms) MIN_DELAY_MS=${2:?}; shift 2 ;;
    --max-delay-ms) MAX_DELAY_MS=${2:?}; shift 2 ;;
    *) echo "usage: $0 [--kills N] [--threads N] [--min-delay-ms MS] [--max-delay-ms MS]" >&2; exit 2 ;;
  esac
done

soak_binaries "$REPO" SOAK_CLIENT //tools/soak:soak_client

# Scratch (registry, images) goes where e2e_lib puts it and is removed at
# exit; the work directory (root, journal, logs) is kept when a check fails.
e2e_init
require_tools ctr docker-registry skopeo tar sha256sum
WORK=$(mktemp -d /dev/shm/imaged-crash-soak.XXXXXX 2>/dev/null || mktemp -d /tmp/imaged-crash-soak.XXXXXX)
ROOT=$WORK/root
JOURNAL=$WORK/journal
SOCK=$E2E_SOCKDIR/imaged.sock
LOAD_PID=""
crash_cleanup() {
  local rc=$?
  set +e
  [ -n "$LOAD_PID" ] && kill -TERM "$LOAD_PID" 2>/dev/null
  if [ "$rc" -eq 0 ]; then
    rm -rf "$WORK"
  else
    cp "$E2E_TMP"/imaged.*.log "$WORK/" 2>/dev/null
    echo "crash soak: kept $WORK (root/, journal, imaged.*.log, load.log, verify.log)" >&2
  fi
  (exit "$rc")
  e2e_cleanup
}
trap crash_cleanup EXIT

step "registry on 127.0.0.1 with 2 images per thread, and 2 OCI archives"
start_registry soak
R=$REGISTRY_SOAK_ADDR
PULLS=()
for ((t = 0; t < THREADS; t++)); do
  # soak_client gives thread T the references whose position modulo
  # THREADS is T: each image has one owner.
  for j in 0 1; do soak_push "t$t-$j" "$R/soak/t$t-$j:v1" $((64 << 10)); done
done
ARCHIVES=()
soak_archive docker.io/soak/alpha:1 docker.io/soak/beta:1
soak_archive docker.io/soak/gamma:1

# Totals for the summary.
ACKED=0 OBJECTS=0 BLOBS_READ=0 SETTLED=0 UNEXPECTED=0 KILLED=0
declare -A VIOLATIONS=()

summary() {
  echo "crash soak: kills=$KILLED acknowledged=$ACKED objects_verified=$OBJECTS settled_maybes=$SETTLED" \
    "blobs_read_back=$BLOBS_READ load_unexpected_errors=$UNEXPECTED"
  local kind
  for kind in "${!VIOLATIONS[@]}"; do echo "  failures $kind: ${VIOLATIONS[$kind]}"; done
  [ ${#VIOLATIONS[@]} -gt 0 ] || echo "  failures: none"
}

# verify_field NAME < VERIFY_OUTPUT: the number after NAME= in the "verify" line (0 if none).
verify_field() {
  awk -v k="$1=" '$1 == "verify" { for (i = 2; i <= NF; i++) if (index($i, k) == 1) v = substr($i, length(k) + 1) }
    END { print v + 0 }'
}

# Runs verify against the running imaged; stops the soak on a violation.
verify() {
  local out rc=0 kind
  out=$("$SOAK_CLIENT" verify --address "$SOCK" --journal "$JOURNAL" --root "$ROOT" 2>&1) || rc=$?
  printf '%s\n' "$out" >"$WORK/verify.log"
  OBJECTS=$((OBJECTS + $(verify_field objects <<<"$out")))
  SETTLED=$((SETTLED + $(verify_field settled <<<"$out")))
  BLOBS_READ=$((BLOBS_READ + $(verify_field blobs_read <<<"$out")))
  if [ "$rc" -ne 0 ]; then
    for kind in $(sed -n 's/^VIOLATION \([^:]*\):.*/\1/p' <<<"$out"); do
      VIOLATIONS[$kind]=$((${VIOLATIONS[$kind]:-0} + 1))
    done
    [ ${#VIOLATIONS[@]} -gt 0 ] || VIOLATIONS[verify-exit-$rc]=1
    printf '%s\n' "$out" | head -n 40 >&2
    summary
    fail "verify after kill $KILLED found violations (imaged log: $IMAGED_LOG)"
  fi
}

# Keeps only the logs of this cycle and the one before (a failure shows both).
PREV_LOG=""
rotate_logs() {
  [ -n "$PREV_LOG" ] && rm -f "$PREV_LOG"
  PREV_LOG=$IMAGED_LOG
  E2E_LOGS=("$IMAGED_LOG")
}

step "$KILLS kills, $THREADS load threads, delay ${MIN_DELAY_MS}-${MAX_DELAY_MS} ms; work dir $WORK"
: >"$JOURNAL"
START=$SECONDS
for ((k = 1; k <= KILLS; k++)); do
  start_imaged "$ROOT" "$SOCK"
  rotate_logs
  verify
  "$SOAK_CLIENT" load --crash --address "$SOCK" --threads "$THREADS" --duration 1h \
    --journal "$JOURNAL" "${PULLS[@]}" "${ARCHIVES[@]}" >"$WORK/load.log" 2>&1 &
  LOAD_PID=$!
  e2e_track "$LOAD_PID"
  delay=$((MIN_DELAY_MS + (RANDOM * 32768 + RANDOM) % (MAX_DELAY_MS - MIN_DELAY_MS + 1)))
  sleep "$((delay / 1000)).$(printf %03d $((delay % 1000)))"
  kill -KILL "$IMAGED_PID"
  e2e_reap "$IMAGED_PID"
  KILLED=$k
  kill -TERM "$LOAD_PID" 2>/dev/null || true
  e2e_reap "$LOAD_PID"
  LOAD_PID=""
  acked=$(sed -n 's/^summary acked=\([0-9]*\) unexpected=\([0-9]*\)$/\1 \2/p' "$WORK/load.log")
  # Killed by the TERM before it could install its handler: it made no call.
  [ -z "$acked" ] && [ "$E2E_STATUS" -eq 143 ] && acked="0 0"
  [ -n "$acked" ] || { summary; fail "soak_client load printed no summary (exit $E2E_STATUS): $(tail -n 20 "$WORK/load.log")"; }
  ACKED=$((ACKED + ${acked% *}))
  if [ "${acked#* }" -ne 0 ]; then
    UNEXPECTED=$((UNEXPECTED + ${acked#* }))
    VIOLATIONS[unexpected-error]=${acked#* }
    grep -v '^ \|^method\|^summary' "$WORK/load.log" | head -n 20 >&2
    summary
    fail "kill $k: the load saw errors a kill does not explain (see $WORK/load.log)"
  fi
  if ((k % 50 == 0)); then
    echo "    kill $k: $((SECONDS - START)) s, acknowledged $ACKED, objects verified $OBJECTS"
  fi
done
start_imaged "$ROOT" "$SOCK"
rotate_logs
verify
stop_imaged
echo "    $KILLED kills in $((SECONDS - START)) s ($(awk -v s=$((SECONDS - START)) -v k="$KILLED" 'BEGIN { printf "%.2f", s / k }') s per cycle)"
summary
e2e_pass
