#!/usr/bin/env bash
# End-to-end: images move between imaged and Debian's real containerd 1.6
# through archive files, with the same image IDs both ways:
#   1. an OCI archive built with umoci -> `imagectl import` -> `imagectl
#      export` -> skopeo reads it (oci-archive:) -> `ctr images import` into
#      a containerd started here (and unpacked with the native snapshotter):
#      same manifest digest, same config digest (image ID);
#   2. a two-platform image in containerd -> `ctr images export` (which
#      writes the amd64 platform only) -> `imagectl import`: same image ID;
#   3. a docker-save archive (synthesised from a umoci image) -> both `ctr
#      images import` and `imagectl import`: the same generated Docker
#      manifest digest and the same image ID;
#   4. broken input: a truncated archive and an unknown image fail with a
#      clear message and change nothing.
#
#   archive_test.sh IMAGED_BINARY IMAGECTL_BINARY
#   (Bazel passes $(rootpath //plugin:imaged) $(rootpath //tools/imagectl:imagectl))
set -euo pipefail

IMAGED=$(realpath "${1:-${IMAGED:?usage: $0 IMAGED_BINARY IMAGECTL_BINARY}}")
IMAGECTL=$(realpath "${2:-${IMAGECTL:?usage: $0 IMAGED_BINARY IMAGECTL_BINARY}}")
source "${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing/e2e_lib.sh"

e2e_init
require_tools containerd ctr umoci skopeo tar gzip sha256sum awk cmp
SOCK="$E2E_SOCKDIR/imaged.sock"
CTRD_DIR="$E2E_TMP/containerd"
CTRD_SOCK="$E2E_SOCKDIR/containerd.sock"
CONTAINERD_LOG="$E2E_TMP/containerd.log"
E2E_LOGS+=("$CONTAINERD_LOG")
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json

FROM_IMAGED=docker.io/imaged/from-imaged:v1   # imaged -> containerd
FROM_CTR=docker.io/imaged/from-ctr:v2         # containerd -> imaged, two platforms
DOCKER_SAVE=docker.io/imaged/docker-save:v3   # a docker-save archive into both

imagectl() {
  "$IMAGECTL" -a "$SOCK" "$@"
}

# ctr against the containerd started here, in the CRI namespace.
ctr_ctrd() {
  ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"
}

# containerd with its own content store, everything under the temp dir; CRI
# is off (it wants networking) and so are the snapshotters that only log
# "not supported" here; native unpacks the imported layers.
start_containerd() {
  e2e_containerd_config "$CTRD_DIR" "$CTRD_SOCK" io.containerd.grpc.v1.cri \
    io.containerd.snapshotter.v1.overlayfs </dev/null
  e2e_start_containerd "$CTRD_DIR" "$CTRD_SOCK" "$CONTAINERD_LOG"
}

stop_containerd() {
  e2e_stop_containerd
  assert_eq "containerd exit status after SIGTERM" 0 "$E2E_STATUS"
}

# The DIGEST column of `ctr images ls` for image $1 in containerd.
ctrd_target() {
  must "ctr images ls" ctr_ctrd images ls | awk -v n="$1" '$1 == n { print $3 }'
}

# The config digest (image ID) of manifest $1 as containerd stores it.
ctrd_config_of() {
  must "ctr content get $1" ctr_ctrd content get "$1" | json_digests | head -n 1
}

# The target digest of record $1 in imaged (imagectl ls: NAME TARGET ...).
imaged_target() {
  must "imagectl ls" imagectl ls | awk -v n="$1" '$1 == n { print $2 }'
}

# Checks that `imagectl images -q` lists image ID $1 and that `imagectl
# images` shows it under repository $2, tag $3.
assert_imaged_image() {
  local id=$1 repo=$2 tag=$3 ids row
  ids=$(must "imagectl images -q" imagectl images -q)
  assert_contains "imagectl images -q" "$ids" "$id"
  row=$(must "imagectl images" imagectl images | awk -v r="$repo" -v t="$tag" '$1 == r && $2 == t { print $3 }')
  assert_eq "IMAGE ID column of \`imagectl images\` for $repo:$tag" "${id:7:13}" "$row"
}

# ---------------------------------------------------------------------------

step "start imaged and containerd"
start_imaged "$E2E_TMP/imaged-root" "$SOCK"
start_containerd

step "1. umoci builds $FROM_IMAGED; imagectl import puts it into imaged"
make_oci_archive "$E2E_TMP/one" "$E2E_TMP/one.tar" "$FROM_IMAGED"
ONE_MANIFEST=$OCI_MANIFEST
ONE_CONFIG=$OCI_CONFIG
out=$(must "imagectl import" imagectl import "$E2E_TMP/one.tar")
assert_contains "imagectl import output" "$out" "$(printf '%s\t%s\t%s' "$FROM_IMAGED" "$ONE_MANIFEST" "$ONE_CONFIG")"
assert_imaged_image "$ONE_CONFIG" docker.io/imaged/from-imaged v1

step "1. imagectl export writes an OCI archive"
must "imagectl export" imagectl export "$FROM_IMAGED" "$E2E_TMP/export.tar" >/dev/null
listing=$(tar -tf "$E2E_TMP/export.tar")
assert_eq "first entries of the export" "oci-layout index.json manifest.json" "$(head -n 3 <<<"$listing" | tr '\n' ' ' | sed 's/ $//')"
for d in "$ONE_MANIFEST" "$ONE_CONFIG" "${OCI_LAYERS[@]}"; do
  assert_contains "blobs of the export" "$listing" "blobs/sha256/${d#sha256:}"
done
index=$(tar -xOf "$E2E_TMP/export.tar" index.json)
assert_contains "export's index.json" "$index" "\"io.containerd.image.name\":\"$FROM_IMAGED\""
assert_contains "export's index.json" "$index" '"org.opencontainers.image.ref.name":"v1"'

step "1. skopeo reads imaged's export"
must "skopeo inspect --raw" skopeo inspect --raw "oci-archive:$E2E_TMP/export.tar" >"$E2E_TMP/skopeo-manifest"
assert_eq "digest of the manifest skopeo reads" "$ONE_MANIFEST" "$(digest_of "$E2E_TMP/skopeo-manifest")"
must "skopeo inspect --config --raw" skopeo inspect --config --raw "oci-archive:$E2E_TMP/export.tar" >"$E2E_TMP/skopeo-config"
assert_eq "digest of the config skopeo reads" "$ONE_CONFIG" "$(digest_of "$E2E_TMP/skopeo-config")"
must "skopeo copy to an OCI layout" skopeo --insecure-policy copy -q \
  "oci-archive:$E2E_TMP/export.tar" "oci:$E2E_TMP/skopeo-layout:v1"
for d in "$ONE_MANIFEST" "$ONE_CONFIG" "${OCI_LAYERS[@]}"; do
  assert_same_bytes "blob $d copied by skopeo" "$OCI_LAYOUT/blobs/sha256/${d#sha256:}" \
    "$E2E_TMP/skopeo-layout/blobs/sha256/${d#sha256:}"
done

step "1. ctr images import of imaged's export into containerd: same target, same image ID"
must "ctr images import" ctr_ctrd images import --snapshotter native "$E2E_TMP/export.tar" >/dev/null
assert_eq "containerd's target for $FROM_IMAGED" "$ONE_MANIFEST" "$(ctrd_target "$FROM_IMAGED")"
assert_eq "containerd's config digest (image ID) for $FROM_IMAGED" "$ONE_CONFIG" "$(ctrd_config_of "$ONE_MANIFEST")"
assert_eq "imaged's target for $FROM_IMAGED" "$ONE_MANIFEST" "$(imaged_target "$FROM_IMAGED")"

step "2. a two-platform image in containerd; ctr images export writes amd64 only"
LAYOUT="$E2E_TMP/two-layout"
oci_add_image "$LAYOUT" "$E2E_TMP/two-amd64" "" linux/amd64
TWO_AMD64_MANIFEST=$OCI_MANIFEST
TWO_AMD64_CONFIG=$OCI_CONFIG
oci_add_image "$LAYOUT" "$E2E_TMP/two-arm64" "" linux/arm64
TWO_ARM64_MANIFEST=$OCI_MANIFEST
oci_index_json \
  "$(oci_descriptor "$LAYOUT" $MT_MANIFEST "$TWO_ARM64_MANIFEST" "$(oci_platform linux/arm64)")" \
  "$(oci_descriptor "$LAYOUT" $MT_MANIFEST "$TWO_AMD64_MANIFEST" "$(oci_platform linux/amd64)")" \
  >"$E2E_TMP/two-index.json"
TWO_INDEX=$(oci_add_blob "$LAYOUT" "$E2E_TMP/two-index.json")
oci_index_json "$(oci_descriptor "$LAYOUT" application/vnd.oci.image.index.v1+json "$TWO_INDEX" \
  "$(oci_name_annotations "$FROM_CTR")")" >"$LAYOUT/index.json"
oci_archive "$LAYOUT" "$E2E_TMP/two.tar"
must "ctr images import (two platforms)" ctr_ctrd images import --all-platforms --no-unpack "$E2E_TMP/two.tar" >/dev/null
must "ctr images export" ctr_ctrd images export "$E2E_TMP/from-ctr.tar" "$FROM_CTR"
assert_not_contains "ctr's export holds no arm64 manifest" "$(tar -tf "$E2E_TMP/from-ctr.tar")" \
  "${TWO_ARM64_MANIFEST#sha256:}"

step "2. imagectl import of ctr's export: same target, same image ID as containerd"
out=$(must "imagectl import (ctr's export)" imagectl import "$E2E_TMP/from-ctr.tar")
assert_contains "imagectl import output" "$out" "$(printf '%s\t%s\t%s' "$FROM_CTR" "$TWO_INDEX" "$TWO_AMD64_CONFIG")"
assert_eq "imaged's target for $FROM_CTR" "$(ctrd_target "$FROM_CTR")" "$(imaged_target "$FROM_CTR")"
assert_eq "containerd's config digest for the amd64 manifest" "$TWO_AMD64_CONFIG" "$(ctrd_config_of "$TWO_AMD64_MANIFEST")"
assert_imaged_image "$TWO_AMD64_CONFIG" docker.io/imaged/from-ctr v2

step "3. a docker-save archive imports into both with the same manifest and image ID"
# From a umoci image: the config as <hex>.json, the layer uncompressed as
# <id>/layer.tar, manifest.json last, as `docker save` writes them.
make_oci_archive "$E2E_TMP/three" "$E2E_TMP/three-oci.tar" "$DOCKER_SAVE"
THREE_CONFIG=$OCI_CONFIG
SAVE="$E2E_TMP/save"
mkdir -p "$SAVE/layer0"
cp "$OCI_LAYOUT/blobs/sha256/${OCI_CONFIG#sha256:}" "$SAVE/${OCI_CONFIG#sha256:}.json"
gzip -dc "$OCI_LAYOUT/blobs/sha256/${OCI_LAYERS[0]#sha256:}" >"$SAVE/layer0/layer.tar"
printf '[{"Config":"%s.json","RepoTags":["imaged/docker-save:v3"],"Layers":["layer0/layer.tar"]}]' \
  "${OCI_CONFIG#sha256:}" >"$SAVE/manifest.json"
tar -C "$SAVE" -cf "$E2E_TMP/docker-save.tar" "${OCI_CONFIG#sha256:}.json" layer0 manifest.json
must "ctr images import (docker-save)" ctr_ctrd images import --no-unpack "$E2E_TMP/docker-save.tar" >/dev/null
must "imagectl import (docker-save)" imagectl import "$E2E_TMP/docker-save.tar" >/dev/null
save_target=$(ctrd_target "$DOCKER_SAVE")
[ -n "$save_target" ] || fail "containerd has no $DOCKER_SAVE after importing the docker-save archive"
assert_eq "imaged's generated manifest for $DOCKER_SAVE (containerd's)" "$save_target" "$(imaged_target "$DOCKER_SAVE")"
assert_eq "containerd's config digest for $DOCKER_SAVE" "$THREE_CONFIG" "$(ctrd_config_of "$save_target")"
assert_imaged_image "$THREE_CONFIG" docker.io/imaged/docker-save v3

step "4. a truncated archive and an unknown image fail and change nothing"
before=$(must "imagectl ls" imagectl ls)
head -c 3000 "$E2E_TMP/export.tar" >"$E2E_TMP/truncated.tar"
# Into a namespace of its own, so the blobs imaged holds already do not help.
msg=$(must_fail "imagectl import of a truncated archive" imagectl import -n broken "$E2E_TMP/truncated.tar")
assert_contains "error for a truncated archive" "$msg" "truncated.tar"
assert_contains "error for a truncated archive" "$msg" "truncated"
assert_eq "records in namespace broken" "" "$(must "imagectl ls -n broken" imagectl ls -n broken | awk 'NR > 1')"
msg=$(must_fail "imagectl export of an unknown image" imagectl export no/such:image "$E2E_TMP/none.tar")
assert_contains "error for an unknown image" "$msg" "no/such:image"
assert_no_file "archive of a failed export" "$E2E_TMP/none.tar"
assert_eq "imagectl ls after the failures" "$before" "$(must "imagectl ls" imagectl ls)"

step "stop containerd, then imaged"
stop_containerd
stop_imaged

e2e_pass
