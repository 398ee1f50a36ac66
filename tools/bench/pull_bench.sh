#!/usr/bin/env bash
# Pull throughput from a loopback registry (issue 4): imaged's CRI PullImage
# against `skopeo copy` to an OCI directory and against containerd's own CRI
# PullImage (Debian's containerd 1.6), measured in the same run on the same
# image. Figures go to docs/benchmarks.md ("Pull throughput (issue 4)").
#
#   bazel run -c opt //tools/bench:pull_bench -- [--layers N] [--layer-mib M] [--runs K]
#       [--tools imaged,skopeo,cri,ctr-pull,ctr-fetch,ctr-pull-proxy,cri-proxy]
#   pull_bench.sh IMAGED IMAGECTL [options]     (without Bazel)
#
# One run:
#  1. Debian's docker-registry on 127.0.0.1 (registry_lib.sh's start_registry,
#     plain HTTP, no auth); an image of N layers of M MiB of random
#     (incompressible) bytes each, built with umoci and pushed with skopeo.
#  2. K rounds; in each, every tool pulls the image from a clean state (fresh
#     root or directory, daemon started before the clock starts, `sync`
#     before each pull so one tool's dirty pages do not slow the next). The
#     order of the tools rotates from round to round. Timed (wall clock):
#       imaged     `imagectl pull REF` against a fresh imaged (CRI PullImage:
#                  fetch, verify, store blobs fsynced, write the image record)
#       skopeo     `skopeo copy docker://REF oci:DIR:TAG` to a fresh directory
#                  (fetch, verify, write files; skopeo 1.9.3 fsyncs the blobs)
#       cri        `imagectl --address <containerd.sock> pull REF` against a
#                  fresh containerd with its CRI plugin: containerd's own
#                  PullImage, which fetches AND unpacks every layer into its
#                  overlayfs snapshotter before it answers
#       ctr-pull   `ctr -n k8s.io images pull --plain-http REF` against a fresh
#                  containerd (ctr fetches client-side and writes through the
#                  Content API, then unpacks to overlayfs)
#       ctr-fetch  `ctr -n k8s.io content fetch --plain-http REF` (the same
#                  fetch, no unpack)
#       ctr-pull-proxy, cri-proxy
#                  ctr-pull and cri with containerd's content store being a
#                  fresh imaged ([proxy_plugins], its built-in store
#                  disabled): every blob written and read through imaged
#  3. A Markdown table (median seconds, MiB/s of the image's bytes, ratio to
#     imaged, CPU seconds of client plus daemon, which a loaded machine
#     disturbs less than wall time) and the machine's facts.
# Every process started here is stopped by e2e_lib's EXIT trap.
set -euo pipefail
export LC_ALL=C

usage() {
  cat >&2 <<'EOF'
usage: pull_bench.sh IMAGED IMAGECTL [--layers N] [--layer-mib M] [--runs K] [--tools LIST]
  --layers N      layers in the image (default 5)
  --layer-mib M   MiB of random bytes per layer (default 40)
  --runs K        rounds; every tool pulls once per round (default 3)
  --tools LIST    comma-separated subset of imaged,skopeo,cri,ctr-pull,ctr-fetch,
                  ctr-pull-proxy,cri-proxy (default all)
EOF
  exit 2
}

# The helpers: next to this script in Bazel's runfiles (bazel run's working
# directory is the workspace's runfiles tree), or in the source tree.
find_lib() {
  local d
  for d in "${RUNFILES_DIR:+$RUNFILES_DIR/imaged/tools/testing}" \
    "$0.runfiles/imaged/tools/testing" \
    "$PWD/tools/testing" \
    "$(dirname "$0")/../testing"; do
    [ -n "$d" ] && [ -f "$d/e2e_lib.sh" ] && [ -f "$d/registry_lib.sh" ] && {
      echo "$d"
      return
    }
  done
  echo "pull_bench: cannot find tools/testing/{e2e_lib,registry_lib}.sh" >&2
  exit 2
}
LIB=$(find_lib)
# shellcheck source=../testing/e2e_lib.sh
source "$LIB/e2e_lib.sh"
# shellcheck source=../testing/registry_lib.sh
source "$LIB/registry_lib.sh"

[ $# -ge 2 ] || usage
# shellcheck disable=SC2034  # start_imaged runs $IMAGED
IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
shift 2
LAYERS=5
LAYER_MIB=40
RUNS=3
TOOLS=imaged,skopeo,cri,ctr-pull,ctr-fetch,ctr-pull-proxy,cri-proxy
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) LAYERS=${2:?}; shift 2 ;;
    --layer-mib) LAYER_MIB=${2:?}; shift 2 ;;
    --runs) RUNS=${2:?}; shift 2 ;;
    --tools) TOOLS=${2:?}; shift 2 ;;
    -h | --help) usage ;;
    *) echo "pull_bench: unknown option '$1'" >&2; usage ;;
  esac
done
[[ $LAYERS =~ ^[1-9][0-9]*$ && $LAYER_MIB =~ ^[1-9][0-9]*$ && $RUNS =~ ^[1-9][0-9]*$ ]] ||
  usage
IFS=, read -r -a TOOL_LIST <<<"$TOOLS"
for t in "${TOOL_LIST[@]}"; do
  case "$t" in imaged | skopeo | cri | ctr-pull | ctr-fetch | ctr-pull-proxy | cri-proxy) ;; *) echo "pull_bench: unknown tool '$t'" >&2; usage ;; esac
done

# Scratch space on the disk (not a tmpfs): every tool writes its copy there.
# (e2e_init makes its temp dir under $TEST_TMPDIR.)
# shellcheck disable=SC2034
TEST_TMPDIR=${PULL_BENCH_TMPDIR:-/var/tmp}
e2e_init
require_tools docker-registry skopeo umoci containerd ctr curl
[ "$(id -u)" -eq 0 ] || fail "run as root: containerd's snapshotters and CRI plugin need it"

REPO=bench/pull
TAG=v1
log() { echo "[$(date +%T)] $*" >&2; }

# ---------------------------------------------------------------------------
# Timing

declare -A TIMES=()   # tool key -> space-separated wall seconds, one per round
declare -A CPUS=()    # tool key -> space-separated CPU seconds, one per round
declare -A IMAGED_CPUS=()  # proxy tool key -> imaged's own CPU seconds, one per round
ELAPSED=""
CPU_USED=""
IMAGED_CPU_USED=""  # imaged's own share of CPU_USED, when containerd runs on it
PROXY_IMAGED_PID=""  # that imaged, while a proxy row's daemons run
SERVER_PID=""  # the daemons that do the pull's work (imaged, containerd), if any
CLK_TCK=$(getconf CLK_TCK)

# CPU time, in clock ticks, of this shell's reaped children (the timed client
# command, once it has exited) and of the SERVER_PID processes (all their
# threads, and their children they have reaped).
children_ticks() {
  awk '{ print $16 + $17 }' "/proc/$$/stat"
}
server_ticks() {
  local p t=0
  for p in $SERVER_PID; do
    t=$((t + $(pid_ticks "$p")))
  done
  echo "$t"
}
pid_ticks() {
  awk '{ print $14 + $15 + $16 + $17 }' "/proc/$1/stat"
}

# timed LOG CMD...: runs CMD with its output appended to LOG; sets ELAPSED
# (seconds, wall clock) and CPU_USED (user + system seconds of CMD and of
# SERVER_PID while CMD ran). Fails the benchmark, showing LOG, if CMD fails.
timed() {
  local out=$1 t0 t1 c0 c1 s0 s1 i0=0 i1=0 rc=0
  shift
  echo "\$ $*" >>"$out"
  [ -z "$PROXY_IMAGED_PID" ] || i0=$(pid_ticks "$PROXY_IMAGED_PID")
  s0=$(server_ticks)
  c0=$(children_ticks)
  t0=$EPOCHREALTIME
  "$@" >>"$out" 2>&1 || rc=$?
  t1=$EPOCHREALTIME
  c1=$(children_ticks)
  s1=$(server_ticks)
  [ -z "$PROXY_IMAGED_PID" ] || i1=$(pid_ticks "$PROXY_IMAGED_PID")
  [ "$rc" -eq 0 ] || fail "\`$*\` exited $rc; its output:
$(tail -n 30 "$out")"
  ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  CPU_USED=$(awk -v c=$((c1 - c0 + s1 - s0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", c / hz }')
  IMAGED_CPU_USED=""
  [ -z "$PROXY_IMAGED_PID" ] ||
    IMAGED_CPU_USED=$(awk -v c=$((i1 - i0)) -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", c / hz }')
}

record() {  # KEY: files ELAPSED and CPU_USED under KEY
  TIMES[$1]="${TIMES[$1]:-}${TIMES[$1]:+ }$ELAPSED"
  CPUS[$1]="${CPUS[$1]:-}${CPUS[$1]:+ }$CPU_USED"
  if [ -n "$IMAGED_CPU_USED" ]; then
    IMAGED_CPUS[$1]="${IMAGED_CPUS[$1]:-}${IMAGED_CPUS[$1]:+ }$IMAGED_CPU_USED"
    log "  $1: $ELAPSED s, $CPU_USED CPU s (imaged $IMAGED_CPU_USED)"
  else
    log "  $1: $ELAPSED s, $CPU_USED CPU s"
  fi
}

median() {
  tr ' ' '\n' <<<"$1" | sort -g | awk '{ v[NR] = $1 } END {
    if (NR % 2) printf "%.2f", v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Flushes everything dirty so that the next pull does not pay for the last
# one's writeback (and waits a moment for the disk to settle).
settle() {
  sync
  sleep 1
}

# ---------------------------------------------------------------------------
# containerd with its CRI plugin, all of its state under $E2E_TMP

CTRD_DIR=""
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"

# containerd with its CRI plugin (e2e_cri_plugin_toml). The snapshotter is
# named although overlayfs is the default, since the figures depend on it.
# With PROXY_SOCK set, its content store is the imaged there: a
# [proxy_plugins] entry, and the built-in store disabled so the metadata
# plugin cannot pick it (testdata/containerd_proxy_test.sh says why).
PROXY_SOCK=""
write_containerd_config() {
  if [ -z "$PROXY_SOCK" ]; then
    e2e_cri_plugin_toml overlayfs | e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK"
    return
  fi
  {
    e2e_cri_plugin_toml overlayfs
    printf '\n[proxy_plugins]\n  [proxy_plugins.imaged]\n    type = "content"\n    address = "%s"\n' \
      "$PROXY_SOCK"
  } | e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK" io.containerd.content.v1.content
}

# Starts a containerd on a fresh root; returns once it answers and its CRI
# plugin is loaded.
start_containerd() {
  local log
  CTRD_DIR=$(mktemp -d "$E2E_TMP/containerd.XXXXXX")
  log="$CTRD_DIR/containerd.log"
  E2E_LOGS+=("$log")
  write_containerd_config
  e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$log"
  SERVER_PID=$CONTAINERD_PID
  e2e_require_cri "$CTRD_SOCK"
}

# Stops containerd and removes its root (after checking that nothing is
# still mounted below it).
stop_containerd() {
  SERVER_PID=""
  e2e_stop_containerd
  local m
  while read -r m; do
    umount "$m" || fail "cannot unmount $m left by containerd"
  done < <(awk -v d="$CTRD_DIR/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
  rm -rf "$CTRD_DIR"
}

# expect_snapshots WHAT: containerd unpacked every layer (one committed
# overlayfs snapshot per layer in namespace k8s.io).
expect_snapshots() {
  local n
  n=$(ctr --address "$CTRD_SOCK" -n k8s.io snapshots --snapshotter overlayfs ls | awk 'NR > 1 && $NF == "Committed"' | wc -l)
  assert_eq "overlayfs snapshots containerd holds after $1" "$LAYERS" "$n"
}

# ---------------------------------------------------------------------------
# One pull per tool

# expect_image_id LOG: the last line of an imagectl pull names the pushed config.
expect_image_id() {
  local got
  got=$(sed -n 's/^Image is up to date for //p' "$1" | tail -n 1)
  assert_eq "image ID the pull reported" "$IMAGE_CONFIG" "$got"
}

bench_imaged() {
  local round=$1
  local root="$E2E_TMP/imaged-root" out="$E2E_TMP/imaged.$round.out"
  rm -rf "$root"
  start_imaged "$root" "$E2E_SOCKDIR/imaged.sock"
  SERVER_PID=$IMAGED_PID
  settle
  : >"$out"
  timed "$out" "$IMAGECTL" --address "$IMAGED_SOCK" pull "$REF"
  expect_image_id "$out"
  record imaged
  SERVER_PID=""
  stop_imaged
  cp "$IMAGED_LOG" "$E2E_TMP/imaged.$round.log"
  rm -rf "$root"
}

bench_skopeo() {
  local round=$1
  local dir="$E2E_TMP/skopeo-oci" out="$E2E_TMP/skopeo.$round.out"
  rm -rf "$dir"
  settle
  : >"$out"
  timed "$out" skopeo --insecure-policy copy --quiet --src-tls-verify=false \
    --src-authfile "$E2E_TMP/empty-auth.json" "docker://$REF" "oci:$dir:$TAG"
  record skopeo
  [ "$(du -sb "$dir/blobs" | cut -f1)" -ge "$IMAGE_BYTES" ] ||
    fail "skopeo's OCI dir holds $(du -sb "$dir/blobs" | cut -f1) bytes, expected at least $IMAGE_BYTES"
  rm -rf "$dir"
}

bench_cri() {
  local round=$1
  local out="$E2E_TMP/cri.$round.out"
  start_containerd
  settle
  : >"$out"
  timed "$out" "$IMAGECTL" --address "$CTRD_SOCK" pull "$REF"
  expect_image_id "$out"
  record cri
  expect_snapshots "its CRI pull"
  stop_containerd
}

bench_ctr_pull() {
  local round=$1
  local out="$E2E_TMP/ctr-pull.$round.out"
  start_containerd
  settle
  : >"$out"
  timed "$out" ctr --address "$CTRD_SOCK" -n k8s.io images pull --plain-http "$REF"
  record ctr-pull
  expect_snapshots "ctr images pull"
  stop_containerd
}

# start_proxied_containerd ROUND: a fresh imaged, and a fresh containerd
# whose content store it is; both count as the pull's daemons.
start_proxied_containerd() {
  local root="$E2E_TMP/proxy-root"
  rm -rf "$root"
  start_imaged "$root" "$E2E_SOCKDIR/imaged.sock" --content-proxy
  PROXY_SOCK=$IMAGED_SOCK
  start_containerd
  PROXY_SOCK=""
  SERVER_PID="$CONTAINERD_PID $IMAGED_PID"
  PROXY_IMAGED_PID=$IMAGED_PID
  local row
  row=$(ctr --address "$CTRD_SOCK" plugins ls | awk '$1 == "io.containerd.content.v1" { print $2, $NF }')
  assert_eq "containerd's content plugin (ID STATUS)" "imaged ok" "$row"
}

stop_proxied_containerd() {
  PROXY_IMAGED_PID=""
  stop_containerd
  stop_imaged
  rm -rf "$E2E_TMP/proxy-root"
}

bench_ctr_pull_proxy() {
  local round=$1
  local out="$E2E_TMP/ctr-pull-proxy.$round.out"
  start_proxied_containerd
  settle
  : >"$out"
  timed "$out" ctr --address "$CTRD_SOCK" -n k8s.io images pull --plain-http "$REF"
  record ctr-pull-proxy
  expect_snapshots "ctr images pull through imaged"
  stop_proxied_containerd
}

bench_cri_proxy() {
  local round=$1
  local out="$E2E_TMP/cri-proxy.$round.out"
  start_proxied_containerd
  settle
  : >"$out"
  timed "$out" "$IMAGECTL" --address "$CTRD_SOCK" pull "$REF"
  expect_image_id "$out"
  record cri-proxy
  expect_snapshots "its CRI pull through imaged"
  stop_proxied_containerd
}

bench_ctr_fetch() {
  local round=$1
  local out="$E2E_TMP/ctr-fetch.$round.out"
  start_containerd
  settle
  : >"$out"
  timed "$out" ctr --address "$CTRD_SOCK" -n k8s.io content fetch --plain-http "$REF"
  record ctr-fetch
  stop_containerd
}

# ---------------------------------------------------------------------------

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "registry and a $LAYERS x $LAYER_MIB MiB image"
start_registry bench
echo '{"auths":{}}' >"$E2E_TMP/empty-auth.json"
build_image "$E2E_TMP/layout" "$TAG" "$LAYERS" $((LAYER_MIB << 20))
push_image "$E2E_TMP/layout:$TAG" "$REGISTRY_BENCH_ADDR/$REPO:$TAG"
REF="$REGISTRY_BENCH_ADDR/$REPO:$TAG"
IMAGE_BYTES=$(($(oci_blob_bytes "$E2E_TMP/layout" "$IMAGE_CONFIG" "${IMAGE_LAYERS[@]}") + IMAGE_MANIFEST_SIZE))
rm -rf "$E2E_TMP/layout"
log "pushed $REF ($PUSHED_DIGEST): $IMAGE_BYTES bytes in $((${#IMAGE_LAYERS[@]} + 2)) blobs"

for ((round = 1; round <= RUNS; round++)); do
  # Rotate the order so no tool always goes first (or right after another).
  n=${#TOOL_LIST[@]}
  for ((k = 0; k < n; k++)); do
    tool=${TOOL_LIST[$(((round - 1 + k) % n))]}
    log "round $round/$RUNS: $tool"
    "bench_${tool//-/_}" "$round"
  done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------
# Report

declare -A LABEL=(
  [imaged]="imaged CRI PullImage (\`imagectl pull\`)"
  [skopeo]="\`skopeo copy\` to an OCI dir"
  [cri]="containerd CRI PullImage (\`imagectl pull\`; fetch + unpack to overlayfs)"
  [ctr-pull]="\`ctr images pull --plain-http\` (fetch + unpack to overlayfs)"
  [ctr-fetch]="\`ctr content fetch --plain-http\` (fetch only)"
  [ctr-pull-proxy]="\`ctr images pull --plain-http\`, containerd's content store imaged (fetch + unpack)"
  [cri-proxy]="containerd CRI PullImage, its content store imaged (fetch + unpack)"
)
MIB=$(awk -v b="$IMAGE_BYTES" 'BEGIN { printf "%.1f", b / 1048576 }')
IMAGED_MEDIAN=""
[ -n "${TIMES[imaged]:-}" ] && IMAGED_MEDIAN=$(median "${TIMES[imaged]}")

echo
echo "Image: $LAYERS layers x $LAYER_MIB MiB random bytes (gzip, as umoci writes them), $IMAGE_BYTES bytes ($MIB MiB) in all; runs: $RUNS"
echo
echo "| tool | runs | median s | MiB/s | time / imaged's time | CPU s (median) | all runs: wall s | all runs: CPU s |"
echo "|---|---|---|---|---|---|---|---|"
for t in "${TOOL_LIST[@]}"; do
  m=$(median "${TIMES[$t]}")
  rate=$(awk -v b="$MIB" -v s="$m" 'BEGIN { printf "%.0f", b / s }')
  ratio="-"
  [ -n "$IMAGED_MEDIAN" ] && ratio=$(awk -v a="$m" -v b="$IMAGED_MEDIAN" 'BEGIN { printf "%.2f", a / b }')
  printf '| %s | %d | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$t]}" "$(wc -w <<<"${TIMES[$t]}")" \
    "$m" "$rate" "$ratio" "$(median "${CPUS[$t]}")" "${TIMES[$t]}" "${CPUS[$t]}"
done
echo
echo "CPU s: user + system seconds of the client command and of the daemons that served it (imaged, containerd, or both for the proxy rows) while the pull ran; not the registry's."
for t in "${TOOL_LIST[@]}"; do
  [ -n "${IMAGED_CPUS[$t]:-}" ] || continue
  echo "Of that, imaged's own in ${LABEL[$t]}: median $(median "${IMAGED_CPUS[$t]}") s (all runs: ${IMAGED_CPUS[$t]})."
done
echo
echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r), scratch on $(df -T "$E2E_TMP" | awk 'NR == 2 { print $2 " (" $1 ")" }'); load average $LOAD_START at start, $LOAD_END at end."
commit=""
if [ -n "${BUILD_WORKSPACE_DIRECTORY:-}" ] &&
  commit=$(git -C "$BUILD_WORKSPACE_DIRECTORY" rev-parse --short HEAD 2>/dev/null); then
  git -C "$BUILD_WORKSPACE_DIRECTORY" diff --quiet HEAD -- api cri plugin store tools/imagectl ||
    commit+=" with uncommitted changes to its sources"
fi
echo "Versions: imaged ${commit:-(unknown commit)}; $(containerd --version | awk '{ print $1 " " $NF }'); $(skopeo --version); $(docker-registry --version 2>&1 | awk '{ print $1 " " $3 }'); $(umoci --version)."
