# Shared helpers for imaged's end-to-end tests (testdata/*_test.sh).
# Source it (the sh_library //tools/testing:e2e_lib) from a script that runs
# under `set -euo pipefail`:
#
#   source "${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing/e2e_lib.sh"
#   e2e_init
#   start_imaged "$E2E_TMP/root" "$E2E_SOCKDIR/imaged.sock"
#   ...
#   stop_imaged
#   e2e_pass
#
# Everything a test starts is recorded with e2e_track, and the EXIT trap that
# e2e_init installs kills whatever is still running and removes the temporary
# directories, so a failed assertion never leaves a daemon or a socket behind.

# Directories made by e2e_init.
E2E_TMP=""      # scratch files: blobs, logs, roots (under $TEST_TMPDIR when Bazel runs us)
E2E_SOCKDIR=""  # unix sockets only: a short /tmp path, since sun_path holds 108 bytes
# PIDs of every background process the test started, in start order.
E2E_PIDS=()
E2E_STATUS=0    # exit status of the last process e2e_reap waited for
# Log files worth showing when a test fails.
E2E_LOGS=()

# The imaged currently running (start_imaged / stop_imaged).
IMAGED_PID=""
IMAGED_SOCK=""
IMAGED_LOG=""

# ---------------------------------------------------------------------------
# Setup, teardown, failure reporting

# Makes the temporary directories and installs the cleanup trap.
e2e_init() {
  E2E_TMP=$(mktemp -d "${TEST_TMPDIR:-/tmp}/e2e.XXXXXX")
  E2E_SOCKDIR=$(mktemp -d /tmp/imaged-e2e.XXXXXX)
  trap e2e_cleanup EXIT
  # Bazel's TERM on timeout should still run the cleanup.
  trap 'exit 143' TERM
  trap 'exit 130' INT
}

# Registers a background process so that cleanup kills it if it is still alive.
e2e_track() {
  E2E_PIDS+=("$1")
}

e2e_alive() {
  kill -0 "$1" 2>/dev/null
}

# Waits for tracked process $1 to exit, stops tracking it (so cleanup never
# signals a PID the kernel may have handed to someone else since) and sets
# E2E_STATUS to its exit status.
e2e_reap() {
  local pid=$1 kept=() p
  E2E_STATUS=0
  wait "$pid" 2>/dev/null || E2E_STATUS=$?
  for p in "${E2E_PIDS[@]}"; do
    [ "$p" == "$pid" ] || kept+=("$p")
  done
  E2E_PIDS=("${kept[@]}")
}

# EXIT trap: on failure show the daemons' logs, then stop every tracked
# process (TERM, then KILL after a grace period) and remove the temp dirs.
e2e_cleanup() {
  local rc=$?
  set +e
  if [ "$rc" -ne 0 ]; then
    e2e_dump_logs
  fi
  local pid
  for pid in "${E2E_PIDS[@]}"; do
    e2e_alive "$pid" && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "${E2E_PIDS[@]}"; do
    e2e_wait_gone "$pid" 10 || kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [ -n "$E2E_SOCKDIR" ] && rm -rf "$E2E_SOCKDIR"
  [ -n "$E2E_TMP" ] && rm -rf "$E2E_TMP"
  exit "$rc"
}

# Prints the tail of every registered log, and keeps a full copy in Bazel's
# undeclared outputs (bazel-testlogs/.../test.outputs/) when there is one.
e2e_dump_logs() {
  local log
  for log in "${E2E_LOGS[@]}"; do
    [ -f "$log" ] || continue
    # containerd's 40-odd "loading plugin" lines would crowd out the rest.
    echo "----- last 40 lines of $log (\"loading plugin\" lines left out) -----" >&2
    grep -v 'msg="loading plugin' "$log" | tail -n 40 >&2
    if [ -n "${TEST_UNDECLARED_OUTPUTS_DIR:-}" ]; then
      cp "$log" "$TEST_UNDECLARED_OUTPUTS_DIR/$(basename "$log")" 2>/dev/null
    fi
  done
}

# Waits up to $2 seconds for process $1 to exit; non-zero if it is still alive.
e2e_wait_gone() {
  local pid=$1 deadline=$((SECONDS + $2))
  while e2e_alive "$pid"; do
    [ "$SECONDS" -ge "$deadline" ] && return 1
    sleep 0.1
  done
  return 0
}

# Prints a banner so the test log reads as a list of steps.
step() {
  echo "=== [${SECONDS}s] $*"
}

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

e2e_pass() {
  echo "PASS: $(basename "$0") (${SECONDS}s)"
}

# Fails early, with the fix, when a tool the test drives is missing.
require_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null ||
      fail "required tool '$tool' is not on PATH ($PATH); tools/install_deps.sh installs it"
  done
}

# Polls `"$@"` every 0.1s until it succeeds or $2 seconds pass.
#   wait_for DESCRIPTION TIMEOUT_SECONDS command...
wait_for() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$deadline" ] && fail "timed out after ${timeout}s waiting for: $what"
    sleep 0.1
  done
}

# ---------------------------------------------------------------------------
# Assertions. Each names what it checked, the expected and the actual value.

assert_eq() {
  local what=$1 expected=$2 actual=$3
  [ "$expected" == "$actual" ] ||
    fail "$what: expected '$expected', got '$actual'"
}

# assert_contains WHAT HAYSTACK NEEDLE: NEEDLE is a fixed string.
assert_contains() {
  local what=$1 haystack=$2 needle=$3
  grep -qF -- "$needle" <<<"$haystack" ||
    fail "$what: expected output to contain '$needle'; got:
$haystack"
}

assert_not_contains() {
  local what=$1 haystack=$2 needle=$3
  if grep -qF -- "$needle" <<<"$haystack"; then
    fail "$what: expected output NOT to contain '$needle'; got:
$haystack"
  fi
}

assert_file_exists() {
  [ -e "$2" ] || fail "$1: expected file $2 to exist; directory has: $(ls -A "$(dirname "$2")" 2>&1 | tr '\n' ' ')"
}

assert_no_file() {
  [ ! -e "$2" ] && [ ! -L "$2" ] || fail "$1: expected $2 to be gone, but it exists: $(ls -la "$2" 2>&1)"
}

# Blobs of at most this many bytes are rows of imaged's metadata database,
# not files under <root>/blobs/sha256 (RocksDbContentStoreOptions in
# store/rocksdb_content_store.h).
IMAGED_INLINE_MAX=65536

# assert_blob_layout WHAT ROOT DIGEST SIZE: a blob over IMAGED_INLINE_MAX is
# a file under ROOT/blobs/sha256; a smaller one is not (it is a row). Whether
# it is stored at all the caller checks by reading it back.
assert_blob_layout() {
  local what=$1 file="$2/blobs/sha256/${3#sha256:}" size=$4
  if [ "$size" -gt "$IMAGED_INLINE_MAX" ]; then
    assert_file_exists "$what (a file: $size bytes)" "$file"
  else
    assert_no_file "$what (a metadata row: $size bytes, no file)" "$file"
  fi
}

# assert_same_bytes WHAT EXPECTED_FILE ACTUAL_FILE
assert_same_bytes() {
  local what=$1 expected=$2 actual=$3 diff
  diff=$(cmp -- "$expected" "$actual" 2>&1) ||
    fail "$what: bytes differ (expected $(wc -c <"$expected") bytes from $expected, got $(wc -c <"$actual") bytes): $diff"
}

# Runs a command that must succeed. Its stdout passes through untouched
# (binary-safe, so `must ... content get D >file` works); on failure the test
# fails with the command, its exit status and its stderr.
#   out=$(must "list content" ctr ... content ls)
must() {
  local what=$1
  shift
  local err rc=0
  err=$(mktemp "$E2E_TMP/stderr.XXXXXX")
  "$@" 2>"$err" || rc=$?
  if [ "$rc" -ne 0 ]; then
    fail "$what: \`$*\` exited $rc, expected success; stderr: $(cat "$err")"
  fi
  rm -f "$err"
}

# Runs a command that must fail; prints its combined stdout+stderr so the
# caller can check the error message.
#   msg=$(must_fail "get unknown digest" ctr ... content get sha256:...)
must_fail() {
  local what=$1
  shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" -eq 0 ]; then
    fail "$what: \`$*\` succeeded, expected it to fail; output: $out"
  fi
  printf '%s' "$out"
}

# ---------------------------------------------------------------------------
# Blobs

# Prints "sha256:<hex>" of a file.
digest_of() {
  echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

size_of() {
  stat -c %s "$1"
}

# Writes $2 random bytes to $1.
random_blob() {
  head -c "$2" /dev/urandom >"$1"
}

# ---------------------------------------------------------------------------
# imaged

# start_imaged ROOT SOCKET [extra flags...]
# Starts imaged in the background and returns once it has logged
# "serving on unix:SOCKET" and the socket accepts connections.
start_imaged() {
  local root=$1 sock=$2
  shift 2
  [ -x "${IMAGED:-}" ] || fail "IMAGED must name the imaged binary (got '${IMAGED:-}')"
  IMAGED_SOCK=$sock
  IMAGED_LOG="$E2E_TMP/imaged.$(date +%s%N).log"
  E2E_LOGS+=("$IMAGED_LOG")
  : >"$IMAGED_LOG"  # exists before the first grep below, whoever runs first
  "$IMAGED" --root "$root" --address "$sock" "$@" >"$IMAGED_LOG" 2>&1 &
  IMAGED_PID=$!
  e2e_track "$IMAGED_PID"
  local deadline=$((SECONDS + 30))
  until grep -qF "imaged: serving on unix:$sock" "$IMAGED_LOG" && [ -S "$sock" ]; do
    if ! e2e_alive "$IMAGED_PID"; then
      e2e_reap "$IMAGED_PID"
      fail "imaged exited with status $E2E_STATUS before serving on $sock; its log:
$(cat "$IMAGED_LOG")"
    fi
    [ "$SECONDS" -ge "$deadline" ] && fail "imaged did not log 'serving on unix:$sock' within 30s"
    sleep 0.05
  done
}

# Sends SIGTERM and checks what the brief promises: a clean exit (status 0)
# within 30s and the socket file removed.
stop_imaged() {
  [ -n "$IMAGED_PID" ] || fail "stop_imaged: imaged is not running"
  kill -TERM "$IMAGED_PID"
  e2e_wait_gone "$IMAGED_PID" 30 || fail "imaged (pid $IMAGED_PID) still running 30s after SIGTERM"
  e2e_reap "$IMAGED_PID"
  assert_eq "imaged exit status after SIGTERM" 0 "$E2E_STATUS"
  assert_contains "imaged log after SIGTERM" "$(cat "$IMAGED_LOG")" "imaged: stopped"
  assert_no_file "imaged's socket after SIGTERM" "$IMAGED_SOCK"
  IMAGED_PID=""
}

# ---------------------------------------------------------------------------
# Debian's containerd, on a root of the test's own

# The containerd currently running (e2e_start_containerd / e2e_stop_containerd).
CONTAINERD_PID=""

# e2e_containerd_config DIR SOCK [PLUGIN_ID...] < EXTRA_TOML
# Writes DIR/config.toml: root, state and opt under DIR, gRPC on SOCK, ttrpc
# and debug sockets in E2E_SOCKDIR; the snapshotters that cannot run here
# and the PLUGIN_IDs disabled; then the TOML on stdin (plugin sections).
e2e_containerd_config() {
  local dir=$1 sock=$2 id
  shift 2
  mkdir -p "$dir"
  {
    printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\ndisabled_plugins = [\n' "$dir" "$dir"
    for id in io.containerd.snapshotter.v1.aufs io.containerd.snapshotter.v1.btrfs \
      io.containerd.snapshotter.v1.devmapper io.containerd.snapshotter.v1.zfs "$@"; do
      printf '  "%s",\n' "$id"
    done
    printf ']\n\n[grpc]\n  address = "%s"\n\n' "$sock"
    printf '[ttrpc]\n  address = "%s/containerd.ttrpc"\n\n' "$E2E_SOCKDIR"
    printf '[debug]\n  address = "%s/containerd.debug"\n  level = "info"\n\n' "$E2E_SOCKDIR"
    printf '[plugins."io.containerd.internal.v1.opt"]\n  path = "%s/opt"\n\n' "$dir"
    cat
  } >"$dir/config.toml"
}

# e2e_cri_plugin_toml SNAPSHOTTER [SANDBOX_IMAGE]: the [plugins] section that makes
# containerd 1.6.20's CRI plugin load here as root (`ctr plugins ls`: cri ok),
# for e2e_containerd_config's stdin. The plugin needs nothing beyond its
# defaults; disable_cgroup and restrict_oom_score_adj, which matter only for
# running containers, let it start where cgroups or oom_score_adj are
# restricted. The CNI error it logs at start ("no network config found in
# /etc/cni/net.d") does not stop it. With no config_path, its CRI pulls over
# plain http from localhost and loopback hosts. SANDBOX_IMAGE replaces the
# pause image (which would come from registry.k8s.io) for tests that run pods.
e2e_cri_plugin_toml() {
  printf '[plugins."io.containerd.grpc.v1.cri"]\n  disable_cgroup = true\n'
  printf '  restrict_oom_score_adj = true\n'
  if [ -n "${2:-}" ]; then printf '  sandbox_image = "%s"\n' "$2"; fi
  printf '  [plugins."io.containerd.grpc.v1.cri".containerd]\n    snapshotter = "%s"\n' "$1"
}

# e2e_start_containerd DIR SOCK LOG
# Starts containerd on DIR/config.toml, appending its output to LOG, and
# returns once `ctr version` answers on SOCK (60 s), with CONTAINERD_PID set.
e2e_start_containerd() {
  local dir=$1 sock=$2 log=$3
  containerd --config "$dir/config.toml" >>"$log" 2>&1 &
  CONTAINERD_PID=$!
  e2e_track "$CONTAINERD_PID"
  local deadline=$((SECONDS + 60))
  until ctr --address "$sock" version >/dev/null 2>&1; do
    if ! e2e_alive "$CONTAINERD_PID"; then
      e2e_reap "$CONTAINERD_PID"
      fail "containerd exited with status $E2E_STATUS before answering \`ctr version\` on $sock"
    fi
    [ "$SECONDS" -ge "$deadline" ] && fail "containerd did not answer \`ctr version\` within 60s"
    sleep 0.2
  done
}

# e2e_require_cri SOCK: containerd's CRI plugin loaded ("ok" in `ctr plugins ls`).
e2e_require_cri() {
  local row
  row=$(ctr --address "$1" plugins ls | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" { print $NF }')
  [ "$row" == ok ] || fail "containerd's CRI plugin is '$row' in \`ctr plugins ls\`, not ok"
}

# Sends SIGTERM and waits (30 s) for containerd to exit; its status is in E2E_STATUS.
e2e_stop_containerd() {
  [ -n "$CONTAINERD_PID" ] || fail "e2e_stop_containerd: containerd is not running"
  kill -TERM "$CONTAINERD_PID"
  e2e_wait_gone "$CONTAINERD_PID" 30 || fail "containerd still running 30s after SIGTERM"
  e2e_reap "$CONTAINERD_PID"
  CONTAINERD_PID=""
}

# ---------------------------------------------------------------------------
# A small OCI image

# make_oci_archive WORKDIR ARCHIVE IMAGE_NAME
# Builds a one-layer OCI image with umoci and tars the layout into an OCI
# archive that `ctr images import` accepts. The index.json entry carries the
# tag as org.opencontainers.image.ref.name (what umoci writes) and the full
# name as io.containerd.image.name, which ctr prefers over --base-name.
# Sets OCI_MANIFEST, OCI_CONFIG, OCI_LAYERS (array) and OCI_LAYOUT (the
# layout directory, whose blobs/sha256/ holds each blob's expected bytes).
make_oci_archive() {
  local work=$1 archive=$2 name=$3
  local tag=${name##*:}
  OCI_LAYOUT="$work/layout"
  mkdir -p "$work/rootfs/etc"
  echo "hello from imaged's e2e test" >"$work/rootfs/etc/imaged-e2e"
  head -c 4096 /dev/urandom >"$work/rootfs/etc/imaged-e2e.bin"
  must "umoci init" umoci init --layout "$OCI_LAYOUT" >/dev/null
  must "umoci new" umoci new --image "$OCI_LAYOUT:$tag" >/dev/null
  must "umoci insert" umoci insert --rootless --image "$OCI_LAYOUT:$tag" \
    "$work/rootfs/etc" /etc >/dev/null
  # insert leaves the superseded manifest and config behind; drop them so the
  # archive holds exactly the image's blobs.
  must "umoci gc" umoci gc --layout "$OCI_LAYOUT" >/dev/null

  local index manifest_size
  index=$(cat "$OCI_LAYOUT/index.json")
  OCI_MANIFEST=$(json_digests <<<"$index")
  [ "$(wc -w <<<"$OCI_MANIFEST")" -eq 1 ] ||
    fail "make_oci_archive: expected one manifest in umoci's index.json, got: $index"
  manifest_size=$(size_of "$OCI_LAYOUT/blobs/sha256/${OCI_MANIFEST#sha256:}")
  # Rewritten by hand (no jq on the machine): one manifest, both names.
  cat >"$OCI_LAYOUT/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"$OCI_MANIFEST","size":$manifest_size,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"$tag"}}]}
EOF

  # The manifest names the config first, then the layers in order.
  local digests
  digests=($(json_digests <"$OCI_LAYOUT/blobs/sha256/${OCI_MANIFEST#sha256:}"))
  OCI_CONFIG=${digests[0]}
  OCI_LAYERS=("${digests[@]:1}")
  [ "${#OCI_LAYERS[@]}" -ge 1 ] || fail "make_oci_archive: umoci's manifest has no layer"

  tar -C "$OCI_LAYOUT" -cf "$archive" oci-layout index.json blobs
}

# Prints every "digest" value of the JSON on stdin, one per line, in order.
json_digests() {
  grep -oE '"digest" *: *"sha256:[0-9a-f]{64}"' | grep -oE 'sha256:[0-9a-f]{64}'
}

# ---------------------------------------------------------------------------
# OCI layouts holding several images (index.json written by hand)

# oci_add_image LAYOUT WORKDIR USER OS/ARCH
# Builds a one-layer image with umoci in its own layout under WORKDIR (empty
# or missing; its name goes into the layer so every image's layer differs),
# sets the config's User (when USER is not empty) and platform, and copies its
# blobs into LAYOUT (made if missing). LAYOUT's index.json is left alone:
# write it with oci_index_json. umoci writes linux/amd64 configs on this
# machine; the platform is set only when the config says something else.
# Sets OCI_MANIFEST, OCI_CONFIG and OCI_LAYERS (array), as make_oci_archive.
oci_add_image() {
  local layout=$1 work=$2 user=$3 platform=$4
  local os=${platform%%/*} arch=${platform#*/}
  local own="$work/layout" image="$work/layout:img" config_json
  mkdir -p "$work/rootfs/etc"
  echo "imaged e2e image $(basename "$work")" >"$work/rootfs/etc/imaged-e2e"
  must "umoci init" umoci init --layout "$own" >/dev/null
  must "umoci new" umoci new --image "$image" >/dev/null
  must "umoci insert" umoci insert --rootless --image "$image" "$work/rootfs/etc" /etc >/dev/null
  if [ -n "$user" ]; then
    must "umoci config --config.user $user" umoci config --image "$image" --config.user "$user" >/dev/null
  fi
  must "umoci gc" umoci gc --layout "$own" >/dev/null
  oci_read_single_image "$own"
  config_json=$(cat "$own/blobs/sha256/${OCI_CONFIG#sha256:}")
  if ! grep -qF "\"os\":\"$os\"" <<<"$config_json" || ! grep -qF "\"architecture\":\"$arch\"" <<<"$config_json"; then
    must "umoci config --os $os --architecture $arch" \
      umoci config --image "$image" --os "$os" --architecture "$arch" >/dev/null
    must "umoci gc" umoci gc --layout "$own" >/dev/null
    oci_read_single_image "$own"
    config_json=$(cat "$own/blobs/sha256/${OCI_CONFIG#sha256:}")
    if ! grep -qF "\"os\":\"$os\"" <<<"$config_json" || ! grep -qF "\"architecture\":\"$arch\"" <<<"$config_json"; then
      fail "oci_add_image: expected a $platform config after umoci config, got: $config_json"
    fi
  fi
  mkdir -p "$layout/blobs/sha256"
  cp "$own/oci-layout" "$layout/oci-layout"
  cp "$own/blobs/sha256/"* "$layout/blobs/sha256/"
}

# oci_read_single_image LAYOUT: sets OCI_MANIFEST, OCI_CONFIG and OCI_LAYERS
# from a layout whose index.json names exactly one manifest.
oci_read_single_image() {
  local layout=$1 index digests
  index=$(cat "$layout/index.json")
  OCI_MANIFEST=$(json_digests <<<"$index")
  [ "$(wc -w <<<"$OCI_MANIFEST")" -eq 1 ] ||
    fail "oci_read_single_image: expected one manifest in $layout/index.json, got: $index"
  mapfile -t digests < <(json_digests <"$layout/blobs/sha256/${OCI_MANIFEST#sha256:}")
  OCI_CONFIG=${digests[0]}
  OCI_LAYERS=("${digests[@]:1}")
  [ "${#OCI_LAYERS[@]}" -ge 1 ] || fail "oci_read_single_image: the manifest in $layout has no layer"
}

# oci_add_blob LAYOUT FILE: copies FILE into LAYOUT's blobs; prints its digest.
oci_add_blob() {
  local layout=$1 file=$2 digest
  digest=$(digest_of "$file")
  mkdir -p "$layout/blobs/sha256"
  cp "$file" "$layout/blobs/sha256/${digest#sha256:}"
  echo "$digest"
}

# oci_blob_bytes LAYOUT DIGEST...: prints the sum of those blobs' sizes.
oci_blob_bytes() {
  local layout=$1 total=0 d
  shift
  for d in "$@"; do
    total=$((total + $(size_of "$layout/blobs/sha256/${d#sha256:}")))
  done
  echo "$total"
}

# oci_descriptor LAYOUT MEDIA_TYPE DIGEST [MEMBER...]
# Prints a descriptor of blob DIGEST of LAYOUT (its size read from the file),
# with each MEMBER ('"key":json', e.g. from oci_name_annotations or
# oci_platform) appended.
oci_descriptor() {
  local layout=$1 media_type=$2 digest=$3 member
  shift 3
  local file="$layout/blobs/sha256/${digest#sha256:}"
  [ -f "$file" ] || fail "oci_descriptor: $digest is not a blob of $layout"
  printf '{"mediaType":"%s","digest":"%s","size":%d' "$media_type" "$digest" "$(size_of "$file")"
  for member in "$@"; do
    printf ',%s' "$member"
  done
  printf '}'
}

# oci_name_annotations NAME: the annotations member of an index.json entry:
# the full name as io.containerd.image.name (which ctr import uses) and the
# tag as org.opencontainers.image.ref.name.
oci_name_annotations() {
  printf '"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}' \
    "$1" "${1##*:}"
}

# oci_platform OS/ARCH: the platform member of a manifest descriptor.
oci_platform() {
  printf '"platform":{"architecture":"%s","os":"%s"}' "${1#*/}" "${1%%/*}"
}

# oci_index_json DESCRIPTOR...: prints an OCI image index of the descriptors
# (for index.json, or a multi-platform index blob for oci_add_blob).
oci_index_json() {
  local IFS=,
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[%s]}\n' "$*"
}

# oci_quick_image LAYOUT NAME LAYER_BYTES [SHARED_LAYER_FILE]
# Adds to LAYOUT (made if missing) an image NAME without umoci, fast enough
# for hundreds: an uncompressed layer (a tar of one file of LAYER_BYTES random
# bytes), optionally a second, shared layer (an existing tar file), a
# linux/amd64 config naming their diff IDs and a manifest. Appends its
# index.json descriptor to OCI_QUICK_ENTRIES (write index.json with
# `oci_index_json "${OCI_QUICK_ENTRIES[@]}" >LAYOUT/index.json`). Sets
# OCI_MANIFEST, OCI_CONFIG and OCI_LAYERS, as make_oci_archive.
OCI_QUICK_ENTRIES=()
oci_quick_image() {
  local layout=$1 name=$2 bytes=$3 shared=${4:-}
  local work
  work=$(mktemp -d "$E2E_TMP/quick.XXXXXX")
  mkdir -p "$work/root" "$layout/blobs/sha256"
  [ -f "$layout/oci-layout" ] || echo '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
  head -c "$bytes" /dev/urandom >"$work/root/data"
  tar -C "$work/root" -cf "$work/layer.tar" data
  OCI_LAYERS=()
  [ -n "$shared" ] && OCI_LAYERS+=("$(oci_add_blob "$layout" "$shared")")
  OCI_LAYERS+=("$(oci_add_blob "$layout" "$work/layer.tar")")
  local diff_ids="" layers="" d
  for d in "${OCI_LAYERS[@]}"; do
    diff_ids+="${diff_ids:+,}\"$d\""
    layers+="${layers:+,}$(oci_descriptor "$layout" application/vnd.oci.image.layer.v1.tar "$d")"
  done
  printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":[%s]}}' \
    "$diff_ids" >"$work/config.json"
  OCI_CONFIG=$(oci_add_blob "$layout" "$work/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
    "$(oci_descriptor "$layout" application/vnd.oci.image.config.v1+json "$OCI_CONFIG")" "$layers" \
    >"$work/manifest.json"
  OCI_MANIFEST=$(oci_add_blob "$layout" "$work/manifest.json")
  OCI_QUICK_ENTRIES+=("$(oci_descriptor "$layout" application/vnd.oci.image.manifest.v1+json \
    "$OCI_MANIFEST" "$(oci_name_annotations "$name")")")
  rm -rf "$work"
}

# oci_archive LAYOUT ARCHIVE: tars the layout as `ctr images import` wants it.
oci_archive() {
  tar -C "$1" -cf "$2" oci-layout index.json blobs
}

# ---------------------------------------------------------------------------
# Reading pretty-printed JSON (imagectl's output) without jq

# Prints "PATH<TAB>VALUE" for every scalar of the JSON on stdin, which must
# hold one member or element per line (as imagectl and `jq .` print it):
#   status.uid.value	"1000"
#   status.repoTags.0	"docker.io/library/alpha:1"
# VALUE is raw JSON: strings keep their quotes, so an empty string ("")
# differs from an absent member (no line). Empty {} and [] are scalars.
json_flatten() {
  awk '
    function path(key,   p, i) {
      p = ""
      for (i = 2; i <= depth; i++) p = p stack[i] "."
      return p key
    }
    {
      line = $0
      sub(/^[ \t]+/, "", line)
      sub(/[ \t]+$/, "", line)
      sub(/,$/, "", line)
      if (line == "") next
      c = substr(line, 1, 1)
      if (c == "}" || c == "]") { depth--; next }
      if (match(line, /^"([^"\\]|\\.)*": /)) {
        key = substr(line, 2, RLENGTH - 4)
        val = substr(line, RLENGTH + 1)
      } else {
        key = idx[depth]++
        val = line
      }
      if (val == "{" || val == "[") {
        stack[++depth] = key
        idx[depth] = 0
        next
      }
      print path(key) "\t" val
    }'
}

# json_get PATH: prints the raw JSON value at PATH (e.g. status.uid.value) of
# the pretty-printed JSON on stdin; nothing when it is absent.
json_get() {
  json_flatten | awk -F'\t' -v p="$1" '$1 == p { print substr($0, length($1) + 2) }'
}

# json_list PATH: prints each element of the array at PATH, one per line.
json_list() {
  json_flatten | awk -F'\t' -v p="$1." \
    'index($1, p) == 1 && substr($1, length(p) + 1) ~ /^[0-9]+$/ { print substr($0, length($1) + 2) }'
}
