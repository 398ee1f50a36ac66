#!/usr/bin/env bash
# End-to-end: Debian's real `ctr` (containerd 1.6 client) drives imaged's
# Content API over its unix socket: ingest, ls, get, label, rm, active and
# resumed ingests, namespace isolation, restart durability, SIGTERM shutdown.
#
#   ctr_content_test.sh IMAGED_BINARY        (Bazel passes $(rootpath //plugin:imaged))
set -euo pipefail

IMAGED=$(realpath "${1:-${IMAGED:?usage: $0 IMAGED_BINARY}}")
source "${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing/e2e_lib.sh"

e2e_init
require_tools ctr sha256sum cmp awk mkfifo
ROOT="$E2E_TMP/root"
SOCK="$E2E_SOCKDIR/imaged.sock"

# ctr against imaged in namespace $1 (ctr always sends containerd-namespace).
ctr_ns() {
  local ns=$1
  shift
  ctr --address "$SOCK" --namespace "$ns" "$@"
}

# ---------------------------------------------------------------------------
# Reading ctr's tables. ctr prints them with tabwriter, padding with tabs, so
# runs of tabs separate columns and the AGE column ("Less than a second") has
# spaces but no tab.

# Prints the `content ls` row for digest $2 in namespace $1 (empty if absent).
ls_row() {
  local out
  out=$(must "content ls in namespace $1" ctr_ns "$1" content ls)
  awk -F'\t+' -v d="$2" '$1 == d' <<<"$out"
}

# Prints column $3 (2 = SIZE, 4 = LABELS) of digest $2's `content ls` row.
ls_field() {
  ls_row "$1" "$2" | awk -F'\t+' -v f="$3" '{ print $f }'
}

# Prints the SIZE (offset) column of ingest ref $2's `content active` row.
active_offset() {
  local out
  out=$(must "content active in namespace $1" ctr_ns "$1" content active)
  awk -F'\t+' -v r="$2" '$1 == r { print $2 }' <<<"$out"
}

# ctr shows sizes with go-units HumanSize: decimal units, 4 significant digits.
human_size() {
  awk -v n="$1" 'BEGIN {
    split("B kB MB GB TB", unit, " "); i = 1
    while (n >= 1000 && i < 5) { n /= 1000; i++ }
    printf "%.4g%s\n", n, unit[i] }'
}

# Inverse of human_size, approximately (to the 4 digits ctr kept).
human_bytes() {
  awk -v s="$1" 'BEGIN {
    m["B"] = 1; m["kB"] = 1e3; m["MB"] = 1e6; m["GB"] = 1e9
    match(s, /^[0-9.]+/); n = substr(s, 1, RLENGTH); u = substr(s, RLENGTH + 1)
    if (!(u in m) || RLENGTH <= 0) { print -1; exit }
    printf "%d\n", n * m[u] }'
}

# ---------------------------------------------------------------------------
# Steps

# ingest_blob NS REF FILE: ingest with the expected digest and size.
ingest_blob() {
  must "ingest $3 as $2 in namespace $1" ctr_ns "$1" content ingest \
    --expected-digest "$(digest_of "$3")" --expected-size "$(size_of "$3")" "$2" <"$3" >/dev/null
}

# Checks that namespace $1 lists blob $2 with its size, and serves its bytes.
check_blob() {
  local ns=$1 file=$2 digest row got
  digest=$(digest_of "$file")
  row=$(ls_row "$ns" "$digest")
  [ -n "$row" ] || fail "content ls -n $ns: expected a row for $digest ($file); got:
$(ctr_ns "$ns" content ls 2>&1)"
  got=$(ls_field "$ns" "$digest" 2)
  assert_eq "content ls -n $ns SIZE of $digest" "$(human_size "$(size_of "$file")")" "$got"
  must "content get -n $ns $digest" ctr_ns "$ns" content get "$digest" >"$E2E_TMP/got"
  assert_same_bytes "content get -n $ns $digest" "$file" "$E2E_TMP/got"
}

blob_path() {
  echo "$ROOT/blobs/sha256/${1#sha256:}"
}

# Succeeds when `content active` in namespace $1 shows ref $2 at offset $3
# (as ctr prints it).
offset_is() {
  [ "$(active_offset "$1" "$2")" == "$3" ]
}

# interrupt_ingest NS REF FILE BYTES
# Starts `ctr content ingest REF` reading from a FIFO, feeds it the first
# BYTES of FILE, waits until imaged reports all of them written, then kills
# ctr with SIGKILL so the ingest is left half-written, as after a crash.
# BYTES must be a multiple of 1 MiB: ctr fills a 1 MiB buffer before each
# write, so only then does every fed byte reach imaged, and nothing is still
# in flight when ctr dies (the offset seen afterwards is stable).
interrupt_ingest() {
  local ns=$1 ref=$2 file=$3 bytes=$4
  local fifo="$E2E_TMP/fifo.$ref" pid
  mkfifo "$fifo"
  ctr_ns "$ns" content ingest --expected-digest "$(digest_of "$file")" \
    --expected-size "$(size_of "$file")" "$ref" <"$fifo" >"$E2E_TMP/ingest.$ref.log" 2>&1 &
  pid=$!
  e2e_track "$pid"
  exec 3>"$fifo"
  head -c "$bytes" "$file" >&3
  wait_for "content active to show $ref at offset $(human_size "$bytes")" 30 \
    offset_is "$ns" "$ref" "$(human_size "$bytes")"
  kill -KILL "$pid"
  e2e_reap "$pid"
  exec 3>&-
  rm -f "$fifo"
}

# assert_partial NS REF TOTAL: `content active` lists REF with 0 < offset < TOTAL.
assert_partial() {
  local ns=$1 ref=$2 total=$3 off bytes
  off=$(active_offset "$ns" "$ref")
  [ -n "$off" ] || fail "content active -n $ns: expected ref $ref after the interrupted ingest; got:
$(ctr_ns "$ns" content active 2>&1)"
  bytes=$(human_bytes "$off")
  [ "$bytes" -gt 0 ] && [ "$bytes" -lt "$total" ] ||
    fail "content active -n $ns: expected $ref with a partial offset (0 < offset < $total bytes), got '$off'"
  echo "    $ref is active at offset $off of $(human_size "$total")"
}

# ---------------------------------------------------------------------------

step "start imaged on $SOCK"
start_imaged "$ROOT" "$SOCK"

step "ingest blobs with --expected-digest/--expected-size, and one without"
random_blob "$E2E_TMP/small" 100000  # a file: over IMAGED_INLINE_MAX
random_blob "$E2E_TMP/chunky" $((1024 * 1024 + 17))  # crosses ctr's 1 MiB write size
: >"$E2E_TMP/empty"
printf 'hello, imaged\n' >"$E2E_TMP/plain"
ingest_blob default e2e-small "$E2E_TMP/small"
ingest_blob default e2e-chunky "$E2E_TMP/chunky"
ingest_blob default e2e-empty "$E2E_TMP/empty"
must "ingest without expected digest" ctr_ns default content ingest e2e-plain \
  <"$E2E_TMP/plain" >/dev/null
SMALL=$(digest_of "$E2E_TMP/small")
CHUNKY=$(digest_of "$E2E_TMP/chunky")
PLAIN=$(digest_of "$E2E_TMP/plain")

step "content ls lists each blob with its size; content get returns the same bytes"
for f in small chunky empty plain; do
  check_blob default "$E2E_TMP/$f"
  assert_blob_layout "blob of $f" "$ROOT" "$(digest_of "$E2E_TMP/$f")" "$(size_of "$E2E_TMP/$f")"
done
active=$(must "content active" ctr_ns default content active)
assert_not_contains "content active after committed ingests" "$active" "e2e-"

step "a wrong --expected-digest is refused and nothing is committed"
# (A digest the store already holds would be answered "already exists"
# before any byte is sent, which ctr treats as success, as containerd does.)
random_blob "$E2E_TMP/wrong" 100
WRONG="sha256:$(printf 'not these bytes' | sha256sum | cut -d' ' -f1)"
msg=$(must_fail "ingest with a wrong expected digest" ctr_ns default content ingest \
  --expected-digest "$WRONG" --expected-size 100 e2e-wrong <"$E2E_TMP/wrong")
assert_contains "error for a wrong expected digest" "$msg" "$WRONG"
assert_eq "content ls row for the refused blob" "" "$(ls_row default "$(digest_of "$E2E_TMP/wrong")")"

step "content label sets a label, content ls shows it, an empty value clears it"
out=$(must "content label set" ctr_ns default content label "$SMALL" e2e.test/role=fixture)
assert_eq "labels printed by content label" "e2e.test/role=fixture" "$out"
assert_eq "content ls LABELS after setting" "e2e.test/role=fixture" "$(ls_field default "$SMALL" 4)"
out=$(must "content label clear" ctr_ns default content label "$SMALL" e2e.test/role=)
assert_eq "labels printed after clearing" "" "$out"
assert_eq "content ls LABELS after clearing" "-" "$(ls_field default "$SMALL" 4)"

step "namespace 'other' sees none of default's blobs"
other=$(must "content ls -n other" ctr_ns other content ls -q)
for d in "$SMALL" "$CHUNKY" "$PLAIN"; do
  assert_not_contains "content ls -n other" "$other" "$d"
done
msg=$(must_fail "content get -n other of a default blob" ctr_ns other content get "$SMALL")
assert_contains "error for another namespace's blob" "$msg" "not found"

step "ingesting a digest that another namespace already holds works"
ingest_blob other e2e-small "$E2E_TMP/small"
check_blob other "$E2E_TMP/small"

step "content rm: gone from ls; the file stays while another namespace holds it"
must "content rm -n default small" ctr_ns default content rm "$SMALL" >/dev/null
assert_eq "content ls row for removed $SMALL" "" "$(ls_row default "$SMALL")"
msg=$(must_fail "content get of a removed blob" ctr_ns default content get "$SMALL")
assert_contains "error for a removed blob" "$msg" "not found"
assert_file_exists "blob still held by namespace other" "$(blob_path "$SMALL")"
check_blob other "$E2E_TMP/small"
must "content rm -n other small" ctr_ns other content rm "$SMALL" >/dev/null
assert_no_file "blob file after the last namespace removed it" "$(blob_path "$SMALL")"
must "content rm -n default chunky" ctr_ns default content rm "$CHUNKY" >/dev/null
assert_eq "content ls row for removed $CHUNKY" "" "$(ls_row default "$CHUNKY")"
assert_no_file "blob file of a blob only default held" "$(blob_path "$CHUNKY")"

step "invalid and unknown digests fail with clear errors"
msg=$(must_fail "content get of a malformed digest" ctr_ns default content get sha256:not-a-digest)
assert_contains "ctr's error for a malformed digest" "$msg" "invalid checksum digest"
# sha512 is well-formed, so ctr sends it and imaged must answer.
SHA512="sha512:$(printf x | sha512sum | cut -d' ' -f1)"
msg=$(must_fail "content get of a sha512 digest" ctr_ns default content get "$SHA512")
assert_contains "imaged's error for a sha512 digest" "$msg" "$SHA512"
UNKNOWN="sha256:$(printf 'never ingested' | sha256sum | cut -d' ' -f1)"
msg=$(must_fail "content get of an unknown digest" ctr_ns default content get "$UNKNOWN")
assert_contains "imaged's error for an unknown digest" "$msg" "$UNKNOWN: not found"

step "an ingest killed halfway is listed by content active, then resumes"
random_blob "$E2E_TMP/big" $((8 * 1024 * 1024))
BIG=$(digest_of "$E2E_TMP/big")
interrupt_ingest default e2e-big "$E2E_TMP/big" $((3 * 1024 * 1024))
assert_partial default e2e-big $((8 * 1024 * 1024))
assert_eq "content ls row for the unfinished blob" "" "$(ls_row default "$BIG")"
# ctr's WriteBlob asks imaged for the ref's offset and seeks stdin past it.
ingest_blob default e2e-big "$E2E_TMP/big"
assert_eq "content active row for e2e-big after it completed" "" "$(active_offset default e2e-big)"
check_blob default "$E2E_TMP/big"

step "restart imaged on the same root: blobs, labels and a partial ingest survive"
must "label before restart" ctr_ns default content label "$BIG" e2e.test/kept=yes >/dev/null
random_blob "$E2E_TMP/big2" $((4 * 1024 * 1024))
interrupt_ingest default e2e-restart "$E2E_TMP/big2" $((3 * 1024 * 1024))
offset_before=$(active_offset default e2e-restart)
stop_imaged
start_imaged "$ROOT" "$SOCK"
for f in empty plain big; do
  check_blob default "$E2E_TMP/$f"
done
assert_eq "label of $BIG after restart" "e2e.test/kept=yes" "$(ls_field default "$BIG" 4)"
assert_eq "removed blob after restart" "" "$(ls_row default "$SMALL")"
assert_eq "content active offset of e2e-restart across the restart" \
  "$offset_before" "$(active_offset default e2e-restart)"
ingest_blob default e2e-restart "$E2E_TMP/big2"
check_blob default "$E2E_TMP/big2"

step "SIGTERM stops imaged cleanly and removes the socket"
stop_imaged

e2e_pass
