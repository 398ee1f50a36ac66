#!/usr/bin/env bash
# End-to-end: Debian's real containerd 1.6 uses imaged as its content store
# through a [proxy_plugins] entry, and `ctr images import` of an OCI archive
# lands every blob in imaged's root (<root>/blobs/sha256/, small ones as rows
# of its metadata database).
#
# imaged's own collector leaves those blobs alone (they belong to
# containerd, whose collector removes them through the proxy).
#
#   containerd_proxy_test.sh IMAGED IMAGECTL   (Bazel passes their rootpaths)
set -euo pipefail

IMAGED=$(realpath "${1:-${IMAGED:?usage: $0 IMAGED IMAGECTL}}")
IMAGECTL=$(realpath "${2:?usage: $0 IMAGED IMAGECTL}")
source "${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing/e2e_lib.sh"

e2e_init
require_tools containerd ctr umoci tar sha256sum cmp awk
IMAGED_ROOT="$E2E_TMP/imaged-root"
IMAGED_SOCK="$E2E_SOCKDIR/imaged.sock"
CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
IMAGE=docker.io/imaged/e2e:v1

CONTAINERD_LOG="$E2E_TMP/containerd.log"
E2E_LOGS+=("$CONTAINERD_LOG")

# ctr against containerd (not imaged) in namespace default.
ctr_containerd() {
  ctr --address "$CTRD_SOCK" --namespace default "$@"
}

# Writes containerd's config. Everything it owns lives in the temp dir: root,
# state, the gRPC, ttrpc and debug sockets, and the "opt" plugin's directory
# (by default /opt/containerd), so nothing touches the host's containerd.
#
# Why the content store is imaged: containerd 1.6 registers each
# [proxy_plugins] entry of type "content" as a plugin of type
# io.containerd.content.v1 (services/server/server.go, LoadPlugins), next to
# its built-in local store "io.containerd.content.v1.content". The metadata
# plugin (bolt) takes `ic.Get(plugin.ContentPlugin)`, which returns the first
# entry of a Go map holding both, i.e. either one at random. Disabling the
# built-in store leaves the proxy as the only content plugin, so every blob
# containerd reads or writes goes to imaged. CRI is disabled because this test
# does not need it and it wants to set up networking. Snapshotters that only
# log "not supported" on this machine are disabled to keep the log readable;
# native stays, because the metadata plugin wants at least one snapshotter.
write_containerd_config() {
  e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK" io.containerd.content.v1.content \
    io.containerd.grpc.v1.cri io.containerd.snapshotter.v1.overlayfs <<EOF
[proxy_plugins]
  [proxy_plugins.imaged]
    type = "content"
    address = "$IMAGED_SOCK"
EOF
}

start_containerd() {
  e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$CONTAINERD_LOG"
}

stop_containerd() {
  e2e_stop_containerd
  assert_eq "containerd exit status after SIGTERM" 0 "$E2E_STATUS"
}

# Checks from containerd's own introspection that the proxy is its content
# plugin and the built-in local store is not loaded.
check_content_plugins() {
  local plugins row
  plugins=$(must "ctr plugins ls" ctr_containerd plugins ls)
  row=$(awk '$1 == "io.containerd.content.v1" { print $2, $NF }' <<<"$plugins")
  assert_eq "content plugins in \`ctr plugins ls\` (ID STATUS)" "imaged ok" "$row"
}

blob_path() {
  echo "$IMAGED_ROOT/blobs/sha256/${1#sha256:}"
}

# check_image_blob NAME DIGEST: the blob is in imaged's root (a file with the
# archive's bytes, or a row when small), and containerd serves the same bytes
# back (from imaged: it has no content store of its own).
check_image_blob() {
  local name=$1 digest=$2 expected
  expected="$OCI_LAYOUT/blobs/sha256/${digest#sha256:}"
  assert_blob_layout "$name blob $digest in imaged's root" "$IMAGED_ROOT" "$digest" \
    "$(size_of "$expected")"
  if [ -e "$(blob_path "$digest")" ]; then
    assert_same_bytes "$name blob file in imaged's root" "$expected" "$(blob_path "$digest")"
  fi
  must "ctr content get $name" ctr_containerd content get "$digest" >"$E2E_TMP/got"
  assert_same_bytes "\`ctr -a containerd content get\` of the $name $digest" "$expected" "$E2E_TMP/got"
  echo "    $name $digest: $(size_of "$expected") bytes, in imaged and served by containerd"
}

# ---------------------------------------------------------------------------

step "start imaged on $IMAGED_SOCK"
start_imaged "$IMAGED_ROOT" "$IMAGED_SOCK"

step "start containerd with imaged as its content proxy"
write_containerd_config
start_containerd
check_content_plugins

step "build a one-layer OCI archive with umoci"
make_oci_archive "$E2E_TMP/image" "$E2E_TMP/image.tar" "$IMAGE"
echo "    manifest $OCI_MANIFEST, config $OCI_CONFIG, layers ${OCI_LAYERS[*]}"

step "ctr images import --no-unpack through containerd"
must "ctr images import" ctr_containerd images import --no-unpack "$E2E_TMP/image.tar" >/dev/null

step "every blob of the image is in imaged and containerd serves it"
check_image_blob manifest "$OCI_MANIFEST"
check_image_blob config "$OCI_CONFIG"
for layer in "${OCI_LAYERS[@]}"; do
  check_image_blob layer "$layer"
done
# The proper proof that the local store was bypassed: it never made its dir.
assert_no_file "containerd's local content store" "$CTRD_DIR/root/io.containerd.content.v1.content"

step "ctr images ls lists the image"
images=$(must "ctr images ls" ctr_containerd images ls)
row=$(awk -v n="$IMAGE" '$1 == n { print $1, $3 }' <<<"$images")
assert_eq "\`ctr images ls\` row for $IMAGE (REF DIGEST)" "$IMAGE $OCI_MANIFEST" "$row"

step "containerd's proxy sends no namespace header, so imaged files it under namespace \"\""
direct=$(must "ctr -a imaged -n default content ls" \
  ctr --address "$IMAGED_SOCK" --namespace default content ls -q)
assert_not_contains "imaged's namespace default (the proxy's blobs belong to \"\")" \
  "$direct" "$OCI_MANIFEST"

step "imaged's collector leaves containerd's blobs alone"
gc_report=$(must "imagectl gc" "$IMAGECTL" --address "$IMAGED_SOCK" gc)
assert_contains "imagectl gc" "$gc_report" "removed 0 blobs"
for digest in "$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[@]}"; do
  must "ctr content get $digest after imaged's collection" ctr_containerd content get "$digest" \
    >/dev/null
  assert_blob_layout "blob $digest after imaged's collection" "$IMAGED_ROOT" "$digest" \
    "$(size_of "$OCI_LAYOUT/blobs/sha256/${digest#sha256:}")"
done
assert_contains "imagectl du" "$("$IMAGECTL" --address "$IMAGED_SOCK" du)" "(content proxy)"

step "ctr images rm --sync: containerd's GC deletes the blobs from imaged"
must "ctr images rm" ctr_containerd images rm --sync "$IMAGE" >/dev/null
for digest in "$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[@]}"; do
  assert_no_file "blob $digest after the image was removed and GC ran" "$(blob_path "$digest")"
done
usage=$(must "imagectl du" "$IMAGECTL" --address "$IMAGED_SOCK" du)
assert_contains "imagectl du after containerd's GC" "$usage" "on disk: 0 files"
assert_contains "imagectl du after containerd's GC" "$usage" "in the metadata database: 0 blobs"

step "stop containerd, then imaged, with SIGTERM"
stop_containerd
stop_imaged

e2e_pass
