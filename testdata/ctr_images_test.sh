#!/usr/bin/env bash
# End-to-end: Debian's real `ctr` (containerd 1.6 client) writes image records
# through imaged's Images, Content and Leases APIs in namespace k8s.io, and
# after every step imagectl's CRI answers (runtime.v1.ImageService on the same
# socket) already reflect it: import of a multi-image OCI archive (one image
# multi-platform), pinning by label, tagging, ctr rm and CRI RemoveImage,
# records waiting for a missing blob, image filesystem usage, and a restart.
# There is no sleep or retry between a ctr call and the CRI check after it:
# the index changes in the same write as the record.
#
#   ctr_images_test.sh IMAGED_BINARY IMAGECTL_BINARY
#   (Bazel passes $(rootpath //plugin:imaged) $(rootpath //tools/imagectl:imagectl))
set -euo pipefail

IMAGED=$(realpath "${1:-${IMAGED:?usage: $0 IMAGED_BINARY IMAGECTL_BINARY}}")
IMAGECTL=$(realpath "${2:-${IMAGECTL:?usage: $0 IMAGED_BINARY IMAGECTL_BINARY}}")
source "${TEST_SRCDIR:-$(dirname "$0")/..}/${TEST_WORKSPACE:-.}/tools/testing/e2e_lib.sh"

e2e_init
require_tools ctr umoci tar sha256sum awk sort
ROOT="$E2E_TMP/root"
SOCK="$E2E_SOCKDIR/imaged.sock"

ALPHA=docker.io/library/alpha:1      # User "1000": a uid
ALPHA_LATEST=docker.io/library/alpha:latest
BETA=docker.io/example/beta:2        # User "nobody": a username
GAMMA=docker.io/example/gamma:3      # an index of linux/amd64 and linux/arm64
DELTA=docker.io/example/delta:4      # its config is not in its archive
MT_MANIFEST=application/vnd.oci.image.manifest.v1+json
MT_INDEX=application/vnd.oci.image.index.v1+json

# ctr against imaged in the CRI namespace.
ctr_k8s() {
  ctr --address "$SOCK" --namespace k8s.io "$@"
}

imagectl() {
  "$IMAGECTL" -a "$SOCK" "$@"
}

# Prints the IMAGE ID column of `imagectl images` for repository $1, tag $2
# (empty if there is no such row). Columns are separated by runs of spaces.
cri_row_id() {
  local out
  out=$(must "imagectl images" imagectl images)
  awk -v r="$1" -v t="$2" 'NR > 1 && $1 == r && $2 == t { print $3 }' <<<"$out"
}

# Checks that `imagectl images` has a row REPO TAG with the short ID of $3.
assert_cri_row() {
  local repo=$1 tag=$2 id=$3 got
  got=$(cri_row_id "$repo" "$tag")
  [ "$got" == "${id:7:13}" ] || fail "imagectl images: expected row '$repo $tag' with IMAGE ID ${id:7:13} ($id); got ID '$got' in:
$(imagectl images 2>&1)"
}

assert_no_cri_row() {
  local got
  got=$(cri_row_id "$1" "$2")
  [ -z "$got" ] || fail "imagectl images: expected no row '$1 $2', got one with IMAGE ID '$got' in:
$(imagectl images 2>&1)"
}

# Checks that `imagectl images -q` prints exactly the image IDs given.
assert_cri_ids() {
  local expected actual
  expected=$(printf '%s\n' "$@" | sort)
  actual=$(must "imagectl images -q" imagectl images -q | sort)
  [ "$expected" == "$actual" ] || fail "imagectl images -q: expected exactly these $# image IDs:
$expected
got $(grep -c . <<<"$actual") lines:
$actual"
}

# Prints `imagectl inspecti REF` (JSON); fails the test if imagectl does.
inspect() {
  must "imagectl inspecti $1" imagectl inspecti "$1"
}

# inspect_field REF PATH: the raw JSON value at PATH of `imagectl inspecti REF`.
inspect_field() {
  inspect "$1" | json_get "$2"
}

assert_inspect() {
  local ref=$1 path=$2 expected=$3
  assert_eq "imagectl inspecti $ref: $path" "$expected" "$(inspect_field "$ref" "$path")"
}

# Checks that `imagectl inspecti REF` answers "no such image".
assert_no_image() {
  local msg
  msg=$(must_fail "imagectl inspecti $1 (expected no such image)" imagectl inspecti "$1")
  assert_contains "imagectl inspecti $1" "$msg" "no such image"
}

# Prints `ctr images ls -q` (record names), one per line.
ctr_names() {
  must "ctr images ls -q" ctr_k8s images ls -q
}

# assert_ctr_lists WHAT NAME / assert_ctr_lists_not WHAT NAME: `ctr images
# ls -q` has (has no) line that is exactly NAME.
assert_ctr_lists() {
  local names
  names=$(ctr_names)
  grep -qxF -- "$2" <<<"$names" || fail "$1: expected ctr images ls -q to list '$2'; got:
$names"
}

assert_ctr_lists_not() {
  local names
  names=$(ctr_names)
  if grep -qxF -- "$2" <<<"$names"; then
    fail "$1: expected ctr images ls -q NOT to list '$2'; got:
$names"
  fi
}

# Checks that `imagectl check` finds no index problem and no unresolved record,
# and that it counts $1 records.
assert_check_clean() {
  local out
  out=$(must "imagectl check" imagectl check)
  assert_eq "imagectl check summary" "records: $1, resolved: $1, unresolved: 0" "$(head -n 1 <<<"$out")"
  assert_not_contains "imagectl check" "$out" "problem:"
  assert_not_contains "imagectl check" "$out" "unresolved: k8s.io/"
}

# ---------------------------------------------------------------------------

step "build a multi-image OCI archive with umoci (one image is an amd64+arm64 index)"
LAYOUT="$E2E_TMP/multi"
oci_add_image "$LAYOUT" "$E2E_TMP/alpha" 1000 linux/amd64
ALPHA_MANIFEST=$OCI_MANIFEST
ALPHA_ID=$OCI_CONFIG
ALPHA_SIZE=$(oci_blob_bytes "$LAYOUT" "$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[@]}")
oci_add_image "$LAYOUT" "$E2E_TMP/beta" nobody linux/amd64
BETA_MANIFEST=$OCI_MANIFEST
BETA_ID=$OCI_CONFIG
BETA_SIZE=$(oci_blob_bytes "$LAYOUT" "$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[@]}")
oci_add_image "$LAYOUT" "$E2E_TMP/gamma-amd64" "" linux/amd64
GAMMA_AMD64_MANIFEST=$OCI_MANIFEST
GAMMA_ID=$OCI_CONFIG
GAMMA_AMD64_BYTES=$(oci_blob_bytes "$LAYOUT" "$OCI_MANIFEST" "$OCI_CONFIG" "${OCI_LAYERS[@]}")
oci_add_image "$LAYOUT" "$E2E_TMP/gamma-arm64" "" linux/arm64
GAMMA_ARM64_MANIFEST=$OCI_MANIFEST
GAMMA_ARM64_ID=$OCI_CONFIG
# The arm64 manifest first, so that taking the first entry would be caught.
# (Descriptors go through variables so that a failure in one stops the test.)
arm64=$(oci_descriptor "$LAYOUT" $MT_MANIFEST "$GAMMA_ARM64_MANIFEST" "$(oci_platform linux/arm64)")
amd64=$(oci_descriptor "$LAYOUT" $MT_MANIFEST "$GAMMA_AMD64_MANIFEST" "$(oci_platform linux/amd64)")
oci_index_json "$arm64" "$amd64" >"$E2E_TMP/gamma-index.json"
GAMMA_INDEX=$(oci_add_blob "$LAYOUT" "$E2E_TMP/gamma-index.json")
# As containerd's CRI counts it: the index, the chosen manifest, its config and layers.
GAMMA_SIZE=$(($(oci_blob_bytes "$LAYOUT" "$GAMMA_INDEX") + GAMMA_AMD64_BYTES))
alpha=$(oci_descriptor "$LAYOUT" $MT_MANIFEST "$ALPHA_MANIFEST" "$(oci_name_annotations $ALPHA)")
beta=$(oci_descriptor "$LAYOUT" $MT_MANIFEST "$BETA_MANIFEST" "$(oci_name_annotations $BETA)")
gamma=$(oci_descriptor "$LAYOUT" $MT_INDEX "$GAMMA_INDEX" "$(oci_name_annotations $GAMMA)")
oci_index_json "$alpha" "$beta" "$gamma" >"$LAYOUT/index.json"
oci_archive "$LAYOUT" "$E2E_TMP/images.tar"
[ "$GAMMA_ID" != "$GAMMA_ARM64_ID" ] || fail "the amd64 and arm64 configs of gamma should differ"
echo "    alpha $ALPHA_ID, beta $BETA_ID, gamma $GAMMA_ID (arm64: $GAMMA_ARM64_ID)"

step "start imaged on $SOCK"
start_imaged "$ROOT" "$SOCK"
assert_cri_ids  # nothing yet
assert_check_clean 0

step "ctr images import --no-unpack: ctr lists the names, CRI lists the images at once"
must "ctr images import" ctr_k8s images import --no-unpack "$E2E_TMP/images.tar" >/dev/null
for name in $ALPHA $BETA $GAMMA; do
  assert_ctr_lists "after import" "$name"
done
assert_cri_row docker.io/library/alpha 1 "$ALPHA_ID"
assert_cri_row docker.io/example/beta 2 "$BETA_ID"
assert_cri_row docker.io/example/gamma 3 "$GAMMA_ID"
assert_cri_ids "$ALPHA_ID" "$BETA_ID" "$GAMMA_ID"

step "imagectl inspecti: uid or username, size, repo tags; by full and truncated ID"
assert_inspect alpha:1 status.id "\"$ALPHA_ID\""
assert_inspect alpha:1 status.username '""'
assert_inspect alpha:1 status.uid.value '"1000"'
assert_inspect alpha:1 status.size "\"$ALPHA_SIZE\""
assert_inspect alpha:1 status.pinned false
assert_eq "imagectl inspecti alpha:1: repoTags" "\"$ALPHA\"" "$(inspect alpha:1 | json_list status.repoTags)"
assert_inspect alpha:1 info.imageSpec.config.User '"1000"'
assert_inspect example/beta:2 status.id "\"$BETA_ID\""
assert_inspect example/beta:2 status.username '"nobody"'
assert_inspect example/beta:2 status.uid null
assert_inspect example/beta:2 status.size "\"$BETA_SIZE\""
assert_inspect "$ALPHA_ID" status.id "\"$ALPHA_ID\""
assert_inspect "${BETA_ID:7:12}" status.id "\"$BETA_ID\""
assert_inspect "${BETA_ID:7:12}" status.username '"nobody"'

step "the multi-platform image resolves to its linux/amd64 config"
assert_inspect example/gamma:3 status.id "\"$GAMMA_ID\""
assert_inspect example/gamma:3 info.imageSpec.architecture '"amd64"'
assert_inspect example/gamma:3 status.size "\"$GAMMA_SIZE\""
assert_inspect "$GAMMA_ID" status.id "\"$GAMMA_ID\""
assert_no_image "$GAMMA_ARM64_ID"

step "ctr images label io.cri-containerd.pinned: CRI pinned follows it"
must "ctr images label pinned" ctr_k8s images label $ALPHA io.cri-containerd.pinned=pinned >/dev/null
assert_inspect alpha:1 status.pinned true
must "ctr images label pinned=" ctr_k8s images label $ALPHA io.cri-containerd.pinned= >/dev/null
assert_inspect alpha:1 status.pinned false

step "ctr images tag: both tags under one image ID"
must "ctr images tag" ctr_k8s images tag $ALPHA $ALPHA_LATEST >/dev/null
assert_ctr_lists "after tag" "$ALPHA_LATEST"
assert_ctr_lists "after tag" "$ALPHA"
assert_cri_row docker.io/library/alpha 1 "$ALPHA_ID"
assert_cri_row docker.io/library/alpha latest "$ALPHA_ID"
assert_cri_ids "$ALPHA_ID" "$BETA_ID" "$GAMMA_ID"
assert_inspect alpha status.id "\"$ALPHA_ID\""
assert_eq "imagectl inspecti alpha: repoTags" "\"$ALPHA\"
\"$ALPHA_LATEST\"" "$(inspect alpha | json_list status.repoTags | sort)"

step "ctr images rm of one tag keeps the image; imagectl rmi removes every name"
must "ctr images rm $ALPHA" ctr_k8s images rm $ALPHA >/dev/null
assert_ctr_lists_not "after ctr images rm $ALPHA" "$ALPHA"
assert_ctr_lists "after ctr images rm $ALPHA" "$ALPHA_LATEST"
assert_no_cri_row docker.io/library/alpha 1
assert_cri_row docker.io/library/alpha latest "$ALPHA_ID"
assert_cri_ids "$ALPHA_ID" "$BETA_ID" "$GAMMA_ID"
assert_no_image alpha:1
assert_eq "imagectl inspecti alpha after rm of :1: repoTags" "\"$ALPHA_LATEST\"" \
  "$(inspect alpha | json_list status.repoTags)"
# Tag it again so that RemoveImage has two names to remove.
must "ctr images tag (again)" ctr_k8s images tag $ALPHA_LATEST $ALPHA >/dev/null
assert_cri_row docker.io/library/alpha 1 "$ALPHA_ID"
out=$(must "imagectl rmi alpha" imagectl rmi alpha)
assert_eq "imagectl rmi alpha" "Deleted: alpha" "$out"
names=$(ctr_names)
assert_not_contains "ctr images ls -q after imagectl rmi" "$names" "alpha"
assert_not_contains "ctr images ls -q after imagectl rmi" "$names" "$ALPHA_ID"
assert_ctr_lists "after imagectl rmi alpha" "$BETA"
assert_ctr_lists "after imagectl rmi alpha" "$GAMMA"
assert_no_cri_row docker.io/library/alpha 1
assert_no_cri_row docker.io/library/alpha latest
assert_cri_ids "$BETA_ID" "$GAMMA_ID"
out=$(must "imagectl rmi alpha (again: idempotent)" imagectl rmi alpha)
assert_eq "imagectl rmi alpha again" "Deleted: alpha" "$out"
assert_no_image alpha
assert_no_image "$ALPHA_ID"
assert_cri_ids "$BETA_ID" "$GAMMA_ID"

step "imagectl check: clean; a record whose config is missing is listed as unresolved"
assert_check_clean 2
# A second archive whose manifest names a config the archive does not hold:
# ctr import writes the blobs it has and the record; imaged keeps the record
# unresolved until the config arrives.
BROKEN="$E2E_TMP/broken"
oci_add_image "$BROKEN" "$E2E_TMP/delta" "" linux/amd64
DELTA_ID=$OCI_CONFIG
DELTA_CONFIG="$E2E_TMP/delta-config.json"
mv "$BROKEN/blobs/sha256/${DELTA_ID#sha256:}" "$DELTA_CONFIG"
delta=$(oci_descriptor "$BROKEN" $MT_MANIFEST "$OCI_MANIFEST" "$(oci_name_annotations $DELTA)")
oci_index_json "$delta" >"$BROKEN/index.json"
oci_archive "$BROKEN" "$E2E_TMP/broken.tar"
must "ctr images import of an archive without a config" \
  ctr_k8s images import --no-unpack "$E2E_TMP/broken.tar" >/dev/null
assert_ctr_lists "after the import without a config" "$DELTA"
out=$(must "imagectl check with an unresolved record" imagectl check)
assert_eq "imagectl check summary" "records: 3, resolved: 2, unresolved: 1" "$(head -n 1 <<<"$out")"
assert_not_contains "imagectl check" "$out" "problem:"
assert_contains "imagectl check" "$out" "unresolved: k8s.io/$DELTA: "
assert_contains "imagectl check: the reason names the missing config" \
  "$(grep -F "unresolved: k8s.io/$DELTA: " <<<"$out")" "$DELTA_ID"
assert_no_image example/delta:4
assert_cri_ids "$BETA_ID" "$GAMMA_ID"

step "the missing config arrives through ctr content ingest: CRI lists the image at once"
must "ctr content ingest delta's config" ctr_k8s content ingest \
  --expected-digest "$DELTA_ID" --expected-size "$(size_of "$DELTA_CONFIG")" delta-config \
  <"$DELTA_CONFIG" >/dev/null
assert_cri_row docker.io/example/delta 4 "$DELTA_ID"
assert_cri_ids "$BETA_ID" "$GAMMA_ID" "$DELTA_ID"
assert_inspect example/delta:4 status.id "\"$DELTA_ID\""
assert_check_clean 3

step "imagectl imagefsinfo: imaged's root, and the bytes and files of its blobs"
fsinfo=$(must "imagectl imagefsinfo" imagectl imagefsinfo)
assert_eq "imagefsinfo mountpoint" "\"$ROOT\"" \
  "$(json_get status.imageFilesystems.0.fsId.mountpoint <<<"$fsinfo")"
used=$(json_get status.imageFilesystems.0.usedBytes.value <<<"$fsinfo")
used=${used//\"/}
[ -n "$used" ] && [ "$used" -gt 0 ] || fail "imagefsinfo usedBytes: expected > 0, got '$used' in:
$fsinfo"
# A collection scheduled by the removals above may run between the two
# reads; the answer must match the files, and the small blobs kept as rows
# of the metadata database (their bytes as `imagectl du` counts them), once
# it is done.
fs_matches_files() {
  local info du bytes files rows
  info=$(imagectl imagefsinfo) || return 1
  du=$(imagectl du | tail -1) || return 1
  rows=$(sed -n 's/.*in the metadata database: [0-9]* blobs, [^ ]* (\([0-9]*\) bytes).*/\1/p' <<<"$du")
  [ -n "$rows" ] || return 1
  bytes=$(find "$ROOT/blobs/sha256" -type f -printf '%s\n' | awk '{ n += $1 } END { print n + 0 }')
  files=$(find "$ROOT/blobs/sha256" -type f | wc -l)
  [ "\"$((bytes + rows))\"" == "$(json_get status.imageFilesystems.0.usedBytes.value <<<"$info")" ] &&
    [ "\"$files\"" == "$(json_get status.imageFilesystems.0.inodesUsed.value <<<"$info")" ]
}
wait_for "imagefsinfo usedBytes and inodesUsed to equal the files and the rows imagectl du counts" 10 \
  fs_matches_files

step "restart imaged on the same root: the CRI view is the same"
images_before=$(must "imagectl images before restart" imagectl images)
ids_before=$(must "imagectl images -q before restart" imagectl images -q)
records_before=$(must "imagectl ls before restart" imagectl ls)
beta_before=$(inspect example/beta:2)
stop_imaged
start_imaged "$ROOT" "$SOCK"
assert_eq "imagectl images after restart" "$images_before" "$(must "imagectl images" imagectl images)"
assert_eq "imagectl images -q after restart" "$ids_before" "$(must "imagectl images -q" imagectl images -q)"
assert_eq "imagectl ls after restart" "$records_before" "$(must "imagectl ls" imagectl ls)"
assert_eq "imagectl inspecti example/beta:2 after restart" "$beta_before" "$(inspect example/beta:2)"
assert_check_clean 3
assert_no_image alpha

step "SIGTERM stops imaged cleanly"
stop_imaged

e2e_pass
