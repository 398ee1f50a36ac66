#!/usr/bin/env bash
# Disk use over many import-and-remove cycles: each cycle imports a distinct
# image (imagectl import of an OCI archive: config, a 64 KiB layer,
# manifest) and removes it through CRI RemoveImage, which returns after the
# collection. With collection working, blobs/ stays empty between cycles and
# RocksDB's directory stays flat (its tombstones compacted away).
#
#   bazel build //plugin:imaged //tools/imagectl:imagectl
#   tools/bench/gc_cycles.sh bazel-bin/plugin/imaged bazel-bin/tools/imagectl/imagectl [CYCLES] [EVERY]
#
# Prints a Markdown table: cycle, files and bytes under blobs/, bytes under
# meta/ (RocksDB: SSTs, WAL, manifest), imaged's RSS.
set -euo pipefail

IMAGED=$(realpath "$1")
IMAGECTL=$(realpath "$2")
shift 2
LIB="$(dirname "$0")/../testing"
CYCLES=${1:-1000}
EVERY=${2:-100}
source "$LIB/e2e_lib.sh"
e2e_init

ROOT="$E2E_TMP/root"
start_imaged "$ROOT" "$E2E_SOCKDIR/imaged.sock"
ic() { "$IMAGECTL" --address "$IMAGED_SOCK" "$@"; }

row() {
  local files bytes meta rss
  files=$(find "$ROOT/blobs/sha256" -type f | wc -l)
  bytes=$(du -sb "$ROOT/blobs" | cut -f1)
  meta=$(du -sb "$ROOT/meta" | cut -f1)
  rss=$(awk '/VmRSS/ { print $2 }' "/proc/$IMAGED_PID/status")
  printf '| %d | %d | %d | %d | %d |\n' "$1" "$files" "$bytes" "$meta" "$rss"
}

echo "| cycle | files in blobs/ | bytes in blobs/ | bytes in meta/ | imaged RSS (KiB) |"
echo "|---:|---:|---:|---:|---:|"
row 0
start=$SECONDS
for i in $(seq 1 "$CYCLES"); do
  layout="$E2E_TMP/img"
  rm -rf "$layout"
  OCI_QUICK_ENTRIES=()
  oci_quick_image "$layout" "docker.io/imaged/cycle:$i" 65536
  oci_index_json "${OCI_QUICK_ENTRIES[@]}" >"$layout/index.json"
  oci_archive "$layout" "$E2E_TMP/img.tar"
  ic import "$E2E_TMP/img.tar" >/dev/null
  ic rmi "docker.io/imaged/cycle:$i" >/dev/null
  if [ $((i % EVERY)) -eq 0 ]; then row "$i"; fi
done
echo
echo "$CYCLES cycles in $((SECONDS - start)) s"
stop_imaged
e2e_pass
