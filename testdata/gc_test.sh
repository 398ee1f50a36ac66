#!/usr/bin/env bash
# Garbage collection end to end, with Debian's ctr and imagectl against
# imaged: a `ctr images rm --sync` removes an image's own blobs from disk
# while a layer another image shares stays; CRI RemoveImage (imagectl rmi)
# returns with the space free; an expired lease is collected; an import
# under its lease survives collections running all the while; imagectl du
# and gc report per namespace; kill -9 during a sweep, restart: every image
# complete, the index clean, no file without a row.
#
#   gc_test.sh IMAGED IMAGECTL
set -euo pipefail

source "${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing/e2e_lib.sh"
IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
e2e_init
require_tools ctr tar

ROOT="$E2E_TMP/root"
SOCK="$E2E_SOCKDIR/imaged.sock"
start_imaged "$ROOT" "$SOCK"
ic() { "$IMAGECTL" --address "$SOCK" "$@"; }
ctr_k8s() { ctr --address "$SOCK" -n k8s.io "$@"; }
# A blob's bytes are stored: its file, or, for a small one, its row of the
# metadata database, which goes in the same write as its last content row.
on_disk() {
  [ -f "$ROOT/blobs/sha256/${1#sha256:}" ] || ctr_k8s content get "$1" >/dev/null 2>&1
}
# A count from `imagectl du`'s summary ("on disk: N files, ...; in the
# metadata database: M blobs, ..."): du_count files, du_count blobs.
du_count() { ic du | tail -1 | sed -n "s/.*[^0-9]\([0-9][0-9]*\) $1,.*/\1/p"; }
du_files_are_on_disk() {
  [ "$(du_count files)" == "$(find "$ROOT/blobs/sha256" -type f | wc -l)" ]
}
# Blobs stored once each: the files, which must be all `imagectl du` counts
# as files, and the rows it counts in the metadata database. A sweep updates
# the counters before it unlinks: a moment is allowed for the two to agree.
stored_blobs() {
  wait_for "imagectl du's file count to equal the files in blobs/sha256" 5 du_files_are_on_disk
  echo $(($(du_count files) + $(du_count blobs)))
}

# every_image_complete: every image's manifest, config and layers are rows
# of the namespace and stored (ctr images check would also ask a
# snapshotter, which imaged does not serve).
every_image_complete() {
  local rows target d
  rows=$(ctr_k8s content ls -q)
  while read -r target; do
    [ -n "$target" ] || continue
    for d in "$target" $(ctr_k8s content get "$target" | json_digests); do
      grep -qx "$d" <<<"$rows" || fail "image target $target: $d has no content row"
      on_disk "$d" || fail "image target $target: $d is not stored"
    done
  done < <(ctr_k8s images ls | awk 'NR > 1 { print $3 }' | sort -u)
}

step "two images sharing a layer; removing one with --sync frees only its own blobs"
LAYOUT="$E2E_TMP/shared"
head -c 100000 /dev/urandom >"$E2E_TMP/base-data"
tar -C "$E2E_TMP" -cf "$E2E_TMP/base.tar" base-data
oci_quick_image "$LAYOUT" docker.io/imaged/gc-a:1 50000 "$E2E_TMP/base.tar"
A=("$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[1]}")
SHARED=${OCI_LAYERS[0]}
oci_quick_image "$LAYOUT" docker.io/imaged/gc-b:1 50000 "$E2E_TMP/base.tar"
B=("$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[1]}")
oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$LAYOUT/index.json"
oci_archive "$LAYOUT" "$E2E_TMP/shared.tar"
must "imagectl import" ic import "$E2E_TMP/shared.tar" >/dev/null
assert_eq "blobs stored after the import" 7 "$(stored_blobs)"
must "ctr images rm --sync" ctr_k8s images rm --sync docker.io/imaged/gc-a:1 >/dev/null
for d in "${A[@]}"; do
  on_disk "$d" && fail "blob $d of the removed image is still on disk after rm --sync"
done
on_disk "$SHARED" || fail "the shared layer $SHARED went with the first image"
for d in "${B[@]}"; do on_disk "$d" || fail "blob $d of the kept image is gone"; done
every_image_complete

step "CRI RemoveImage returns with the space free"
must "imagectl rmi" ic rmi docker.io/imaged/gc-b:1 >/dev/null
assert_eq "blobs stored after rmi of the last image" 0 "$(stored_blobs)"
usage=$(ic du)
assert_contains "imagectl du" "$usage" "on disk: 0 files"
assert_contains "imagectl du" "$usage" "in the metadata database: 0 blobs"

step "an expired lease is collected; imagectl gc reports it"
# In a namespace of its own, where no delete schedules a pass before ours.
must "ctr leases create" ctr --address "$SOCK" -n gc-test leases create --id short-lived --expires 1s >/dev/null
must "ctr leases create" ctr --address "$SOCK" -n gc-test leases create --id long-lived --expires 1h >/dev/null
sleep 1.5
report=$(must "imagectl gc" ic gc -n gc-test)
assert_contains "imagectl gc" "$report" "1 expired leases"
leases=$(ctr --address "$SOCK" -n gc-test leases ls)
assert_not_contains "ctr leases ls" "$leases" "short-lived"
assert_contains "ctr leases ls" "$leases" "long-lived"

step "an import under its lease survives collections running all the while"
BIG="$E2E_TMP/big"
OCI_QUICK_ENTRIES=()
for i in 1 2 3; do oci_quick_image "$BIG" "docker.io/imaged/big:$i" 20000000; done
oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$BIG/index.json"
oci_archive "$BIG" "$E2E_TMP/big.tar"
ic import "$E2E_TMP/big.tar" >"$E2E_TMP/import.out" 2>&1 &
import_pid=$!
e2e_track "$import_pid"
passes=0
while e2e_alive "$import_pid"; do
  ic gc >/dev/null || fail "imagectl gc failed during the import"
  passes=$((passes + 1))
  sleep 0.05
done
wait "$import_pid" || fail "the import failed while collections ran: $(cat "$E2E_TMP/import.out")"
echo "    $passes collections ran during the import"
[ "$passes" -ge 2 ] || fail "the import finished before two collections could run ($passes)"
every_image_complete
must "imagectl gc" ic gc >/dev/null
every_image_complete
assert_eq "blobs stored of the three imported images" 9 "$(stored_blobs)"
usage=$(must "imagectl du" ic du)
assert_contains "imagectl du" "$usage" "k8s.io"

step "kill -9 during a sweep: restart, every image complete, index clean, no stray file"
MANY="$E2E_TMP/many"
OCI_QUICK_ENTRIES=()
for i in $(seq 1 150); do oci_quick_image "$MANY" "docker.io/imaged/many:$i" 2000; done
oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$MANY/index.json"
oci_archive "$MANY" "$E2E_TMP/many.tar"
for round in 1 2 3; do
  must "imagectl import (round $round)" ic import "$E2E_TMP/many.tar" >/dev/null
  names=$(ctr_k8s images ls -q | grep 'imaged/many:' | head -120)
  # Deletes without --sync leave the collection to the scheduler (1s later).
  must "ctr images rm" ctr_k8s images rm $names >/dev/null
  ic gc >/dev/null 2>&1 &
  sleep "0.0$((RANDOM % 10))"
  kill -KILL "$IMAGED_PID"
  e2e_wait_gone "$IMAGED_PID" 10 || fail "imaged survived kill -9"
  e2e_reap "$IMAGED_PID"
  wait || true  # the imagectl gc the kill cut off
  IMAGED_PID=""
  start_imaged "$ROOT" "$SOCK"
  must "imagectl check (round $round)" ic check >/dev/null
  every_image_complete
  rows=$(ctr_k8s content ls -q | wc -l)
  assert_eq "stored blobs vs content rows after the restart (round $round)" "$rows" "$(stored_blobs)"
done
must "imagectl gc" ic gc >/dev/null
rows=$(ctr_k8s content ls -q | wc -l)
assert_eq "stored blobs vs content rows after a last collection" "$rows" "$(stored_blobs)"
every_image_complete

stop_imaged
e2e_pass
